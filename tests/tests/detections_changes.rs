//! End to end as root: ownership and mode changes of sensitive files,
//! setuid bits, world-writable system files, kernel parameters written by
//! `sysctl -w` and by a shell redirection, programs run from hidden paths,
//! journald drop-ins, trust store files, archivers reading credentials and
//! one process overwriting many existing files, each performed with the
//! real tool (every change undone, or a value written back unchanged), raise
//! the built-in rules of `rules/builtin/changes.yaml` (and their kin) with
//! the process that did it; a benign workload of the same shapes raises
//! none of them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;
use common::RulesAgent as Agent;
use common::{Cleanup, argv as cmd, run_ok as run, tee};

fn scratch_dir(base: &Path, tag: &str) -> PathBuf {
    let dir = base.join(vigil_tests::unique_marker(tag));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `p` itself when it is a path, else its first match on `PATH`.
fn which(p: &str) -> PathBuf {
    if p.contains('/') {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(p))
                .find(|c| c.exists())
        })
        .unwrap_or_else(|| PathBuf::from(p))
}

fn python() -> &'static str {
    // the interpreter itself (a pyenv shim is a script that execs it)
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

#[test]
fn permission_and_kernel_parameter_changes_raise_alerts() {
    let Some(agent) = Agent::start("permission_and_kernel_parameter_changes_raise_alerts", None)
    else {
        return;
    };
    // chmod and chown of /etc/shadow to the mode and owner it already has.
    let md = std::fs::metadata("/etc/shadow").unwrap();
    let mode = format!("{:o}", md.mode() & 0o7777);
    let pid = run(&mut cmd(&["/usr/bin/chmod", &mode, "/etc/shadow"]));
    let a = agent.expect("sensitive_file_permissions_changed", |a| {
        a["process"]["pid"] == pid
    });
    assert_eq!(a["event"]["action"], "chmod", "{a}");
    assert_eq!(a["file"]["path"], "/etc/shadow", "{a}");
    assert_eq!(a["process"]["executable"], "/usr/bin/chmod", "{a}");
    assert_eq!(
        a["vigil"]["file_change"]["mode"],
        format!("{:04o}", md.mode() & 0o7777),
        "{a}"
    );
    let owner = format!("{}:{}", md.uid(), md.gid());
    let pid = run(&mut cmd(&["/usr/bin/chown", &owner, "/etc/shadow"]));
    let a = agent.expect("sensitive_file_permissions_changed", |a| {
        a["process"]["pid"] == pid
    });
    assert_eq!(a["event"]["action"], "chown", "{a}");
    assert_eq!(a["process"]["name"], "chown", "{a}");
    assert_eq!(a["vigil"]["file_change"]["uid"], md.uid(), "{a}");

    // chmod u+s on a scratch copy of a binary.
    let dir = scratch_dir(&std::env::temp_dir(), "vg-chg");
    let sys = scratch_dir(Path::new("/usr/local/lib"), "vg-chg");
    let _c = Cleanup(vec![dir.clone(), sys.clone()]);
    let bin = dir.join("helper");
    std::fs::copy("/usr/bin/true", &bin).unwrap();
    let pid = run(&mut cmd(&["/usr/bin/chmod", "u+s", bin.to_str().unwrap()]));
    let a = agent.expect("setuid_bit_set", |a| a["process"]["pid"] == pid);
    assert_eq!(a["file"]["path"], bin.to_str().unwrap(), "{a}");
    assert_eq!(a["vigil"]["file_change"]["setid"], true, "{a}");

    // A file below /usr made writable by everyone.
    let f = sys.join("data");
    std::fs::write(&f, "x").unwrap();
    let pid = run(&mut cmd(&["/usr/bin/chmod", "o+w", f.to_str().unwrap()]));
    let a = agent.expect("system_file_made_world_writable", |a| {
        a["process"]["pid"] == pid
    });
    assert_eq!(a["file"]["path"], f.to_str().unwrap(), "{a}");

    // Kernel parameters written back unchanged: by a shell redirection ...
    let aslr = std::fs::read_to_string("/proc/sys/kernel/randomize_va_space").unwrap();
    let script = format!("echo {} > /proc/sys/kernel/randomize_va_space", aslr.trim());
    let pid = run(&mut cmd(&["/bin/sh", "-c", &script]));
    let a = agent.expect("security_sysctl_changed", |a| a["process"]["pid"] == pid);
    assert_eq!(
        a["file"]["path"], "/proc/sys/kernel/randomize_va_space",
        "{a}"
    );
    let fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let script = format!("echo {} > /proc/sys/net/ipv4/ip_forward", fwd.trim());
    let pid = run(&mut cmd(&["/bin/sh", "-c", &script]));
    agent.expect("ip_forwarding_enabled", |a| a["process"]["pid"] == pid);
    // ... and by sysctl -w.
    let arg = format!("net.ipv4.ip_forward={}", fwd.trim());
    let pid = run(&mut cmd(&["/usr/sbin/sysctl", "-w", &arg]));
    let a = agent.expect("ip_forwarding_enabled", |a| a["process"]["pid"] == pid);
    assert_eq!(a["process"]["name"], "sysctl", "{a}");

    // A program dropped in a hidden directory and run.
    let hidden = dir.join(".cache-x");
    std::fs::create_dir_all(&hidden).unwrap();
    let payload = hidden.join("kworker");
    std::fs::copy("/usr/bin/true", &payload).unwrap();
    let pid = run(&mut cmd(&[payload.to_str().unwrap()]));
    let a = agent.expect("exec_hidden_path", |a| a["process"]["pid"] == pid);
    assert_eq!(a["process"]["executable"], payload.to_str().unwrap(), "{a}");

    // A journald drop-in (journald is not reloaded: nothing takes effect).
    let dropdir = Path::new("/etc/systemd/journald.conf.d");
    let made_dir = !dropdir.exists() && std::fs::create_dir_all(dropdir).is_ok();
    let conf = dropdir.join(format!("{}.conf", vigil_tests::unique_marker("vg")));
    let _c2 = Cleanup(if made_dir {
        vec![conf.clone(), dropdir.to_path_buf()]
    } else {
        vec![conf.clone()]
    });
    let pid = tee(&conf, "# vigil test\n");
    let a = agent.expect("logging_config_modified", |a| a["process"]["pid"] == pid);
    assert_eq!(a["file"]["path"], conf.to_str().unwrap(), "{a}");
}

/// Python that overwrites the files given on the command line in place
/// (`r+b`), renames them to `NAME.locked` (`rename`), reads each and writes
/// it back truncated (`rewrite`), or creates new files (`create`).
const OVERWRITER: &str = r#"
import os, sys
mode, files = sys.argv[1], sys.argv[2:]
for f in files:
    if mode == "r+b":
        with open(f, "r+b") as h:
            d = h.read(); h.seek(0); h.write(bytes(b ^ 0x5a for b in d))
    elif mode == "rename":
        os.rename(f, f + ".locked")
    elif mode == "rewrite":
        with open(f, "rb") as h:
            d = h.read()
        with open(f, "wb") as h:
            h.write(d[::-1])
    elif mode == "create":
        fd = os.open(f + ".new", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"new"); os.close(fd)
"#;

fn make_files(dir: &Path, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("doc{i}.txt"));
            std::fs::write(&p, format!("document {i}\n")).unwrap();
            p.to_str().unwrap().to_string()
        })
        .collect()
}

fn overwrite(mode: &str, files: &[String]) -> u32 {
    let mut c = Command::new(python());
    c.arg("-c").arg(OVERWRITER).arg(mode).args(files);
    run(&mut c)
}

#[test]
fn overwrites_archives_and_trust_store_raise_alerts_and_benign_work_does_not() {
    let Some(agent) = Agent::start(
        "overwrites_archives_and_trust_store_raise_alerts_and_benign_work_does_not",
        None,
    ) else {
        return;
    };
    let tmp = scratch_dir(&std::env::temp_dir(), "vg-ovw");
    let home = scratch_dir(Path::new("/root"), "vg-ovw");
    let cert = PathBuf::from(format!(
        "/etc/ssl/certs/{}.pem",
        vigil_tests::unique_marker("vg")
    ));
    let _c = Cleanup(vec![tmp.clone(), home.clone(), cert.clone()]);

    // Benign first: new files created (O_CREAT, no truncation), a tree
    // copied, sixty files edited by one sed -i, an archive of them, chmod
    // of ordinary files.
    let files = make_files(&tmp.join("a").tap_mkdir(), 60);
    let mut benign = vec![overwrite("create", &files)];
    let copy = tmp.join("copy");
    benign.push(run(&mut cmd(&[
        "/usr/bin/cp",
        "-r",
        tmp.join("a").to_str().unwrap(),
        copy.to_str().unwrap(),
    ])));
    let mut sed = cmd(&["/usr/bin/sed", "-i", "s/document/page/"]);
    sed.args(&files);
    benign.push(run(&mut sed));
    benign.push(run(&mut cmd(&[
        "/usr/bin/tar",
        "-cf",
        tmp.join("a.tar").to_str().unwrap(),
        "-C",
        tmp.to_str().unwrap(),
        "a",
    ])));
    let mut chmod = cmd(&["/usr/bin/chmod", "644"]);
    chmod.args(&files);
    benign.push(run(&mut chmod));

    // In place (r+b) in /tmp: 60 files, the alert at the 50th.
    let victims = make_files(&tmp.join("b").tap_mkdir(), 60);
    let pid = overwrite("r+b", &victims);
    let a = agent.expect("mass_file_overwrite", |a| a["process"]["pid"] == pid);
    assert_eq!(a["vigil"]["file"]["overwrites"], 50, "{a}");
    // the interpreter's real file (/usr/bin/python3 is a symlink)
    let exe = std::fs::canonicalize(which(python())).unwrap();
    assert_eq!(a["process"]["executable"], exe.to_str().unwrap(), "{a}");
    assert!(
        a["file"]["path"]
            .as_str()
            .is_some_and(|p| p.starts_with(tmp.join("b").to_str().unwrap())),
        "{a}"
    );
    // Renamed to NAME.locked.
    let victims = make_files(&tmp.join("c").tap_mkdir(), 55);
    let pid = overwrite("rename", &victims);
    let a = agent.expect("mass_file_overwrite", |a| a["process"]["pid"] == pid);
    assert!(
        a["file"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with(".locked")),
        "{a}"
    );
    // Read, then written back truncated, below /root (reads are reported there).
    let victims = make_files(&home.join("d").tap_mkdir(), 55);
    let pid = overwrite("rewrite", &victims);
    agent.expect("mass_file_overwrite", |a| a["process"]["pid"] == pid);

    // An archiver reading the password hashes (the archive stays in scratch).
    let pid = run(&mut cmd(&[
        "/usr/bin/tar",
        "-cf",
        tmp.join("s.tar").to_str().unwrap(),
        "/etc/shadow",
    ]));
    let a = agent.expect("archiver_read_credentials", |a| a["process"]["pid"] == pid);
    assert_eq!(a["file"]["path"], "/etc/shadow", "{a}");
    assert_eq!(a["process"]["name"], "tar", "{a}");

    // A file written into the generated trust store directory.
    if cert.parent().unwrap().is_dir() {
        let pid = tee(&cert, "not a certificate\n");
        let a = agent.expect("trust_bundle_modified", |a| a["process"]["pid"] == pid);
        assert_eq!(a["file"]["path"], cert.to_str().unwrap(), "{a}");
    }

    // The benign processes raised none of the new alerts (their events
    // came before the ones above, which have been seen).
    std::thread::sleep(Duration::from_millis(500));
    let new_rules = [
        "mass_file_overwrite",
        "sensitive_file_permissions_changed",
        "system_file_made_world_writable",
        "archiver_read_credentials",
        "trust_bundle_modified",
        "ip_forwarding_enabled",
    ];
    let bad: Vec<_> = agent
        .out
        .records()
        .into_iter()
        .filter(|a| {
            new_rules.iter().any(|r| a["rule"]["id"] == *r)
                && benign.iter().any(|p| a["process"]["pid"] == *p)
        })
        .map(|a| a["message"].clone())
        .collect();
    assert!(bad.is_empty(), "benign work raised: {bad:#?}");
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}
impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
