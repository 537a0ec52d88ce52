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
use common::RulesAgent as Agent;

/// Runs a command to completion and returns its pid (the exec'd program's).
fn run(argv: &[&str]) -> u32 {
    let child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let pid = child.id();
    child.wait_with_output().unwrap();
    pid
}

fn tool(p: &str) -> &str {
    assert!(Path::new(p).exists(), "{p} is needed by this test");
    p
}

struct Cleanup(Vec<PathBuf>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
            let _ = std::fs::remove_dir_all(p);
        }
    }
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
}
