//! Seccomp round trip as root: the profile exported for a learned syscall
//! set lets runc start the workload (with and without noNewPrivileges), and
//! a syscall outside the set is denied.
//!
//! The learned set stands in for what the syscall sensor records: it is what
//! `strace -f` shows Debian's busybox-static (1.37) making after its execve
//! for the workloads `sh -c 'echo hi; cat /etc/hostname'` and
//! `sh -c 'mkdir DIR && echo MADE'` (the shell forks and waits for `mkdir`),
//! less `mkdir` itself: the new behaviour the profile must deny. Needs root, `runc`
//! and `/usr/bin/busybox` (static); skips loudly without them, and fails
//! instead under `VIGIL_REQUIRE_ROOT_TESTS=1`.

use std::path::Path;
use std::process::{Command, Stdio};

use vigil_baselines::{Baselines, Config, ExeIdentity, SYSCALL_WORDS, Subject, syscall_number};

const LEARNED: &[&str] = &[
    "arch_prctl",
    "brk",
    "clone",
    "close",
    "execve",
    "exit_group",
    "getcwd",
    "getpid",
    "getppid",
    "getrandom",
    "getuid",
    "mprotect",
    "newfstatat",
    "openat",
    "prctl",
    "prlimit64",
    "readlink",
    "rseq",
    "rt_sigaction",
    "rt_sigreturn",
    "sendfile",
    "set_robust_list",
    "set_tid_address",
    "uname",
    "wait4",
    "write",
];

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Deletes the container however the test ends.
struct Ctr(String);
impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["delete", "-f", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `script` in the container; returns (success, stdout, stderr), at
/// most 4 KiB of each, and kills the container after 30 s.
fn run(
    bundle: &Path,
    id: &str,
    script: &str,
    nnp: bool,
    seccomp: &serde_json::Value,
) -> (bool, String, String) {
    let cfg_path = bundle.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    c["process"]["args"] = serde_json::json!(["sh", "-c", script]);
    c["process"]["noNewPrivileges"] = serde_json::json!(nnp);
    c["linux"]["seccomp"] = seccomp.clone();
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    let _guard = Ctr(id.to_string());
    let (out_p, err_p) = (
        bundle.join(format!("{id}.out")),
        bundle.join(format!("{id}.err")),
    );
    let mut child = Command::new("runc")
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_p).unwrap())
        .stderr(std::fs::File::create(&err_p).unwrap())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let ok = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.success();
        }
        if start.elapsed() > std::time::Duration::from_secs(30) {
            let _ = Command::new("runc").args(["delete", "-f", id]).status();
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let head = |p: &Path| {
        let mut b = std::fs::read(p).unwrap_or_default();
        b.truncate(4096);
        String::from_utf8_lossy(&b).into_owned()
    };
    (ok, head(&out_p), head(&err_p))
}

#[test]
fn runc_runs_the_workload_under_the_exported_profile_and_denies_the_rest() {
    let name = "runc_runs_the_workload_under_the_exported_profile_and_denies_the_rest";
    let busybox = Path::new("/usr/bin/busybox");
    if !vigil_rootgate::require_root(name)
        || !vigil_rootgate::require(
            name,
            "needs runc and /usr/bin/busybox (busybox-static; scripts/install-deps.sh installs both)",
            have("runc") && busybox.exists(),
        )
    {
        return;
    }
    // The learned profile and its export.
    let mut b = Baselines::in_memory(Config::default());
    let subject = Subject {
        executable: b"/bin/busybox",
        identity: ExeIdentity::Unknown,
        container: None,
    };
    let mut set = [0u64; SYSCALL_WORDS];
    for n in LEARNED {
        let nr = syscall_number(n).unwrap();
        set[usize::from(nr / 64)] |= 1 << (nr % 64);
    }
    b.observe_syscalls(&subject, 0, &set);
    let json = b.export_seccomp("exe:/bin/busybox").unwrap();
    let seccomp: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(!json.contains("\"mkdir\""));

    // A busybox bundle.
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
    std::fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
    for l in ["sh", "cat", "echo", "mkdir"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(l)).unwrap();
    }
    std::fs::write(rootfs.join("etc/hostname"), "vigil-seccomp\n").unwrap();
    let bundle = tmp.path().join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    let st = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .status()
        .unwrap();
    assert!(st.success());
    let cfg_path = bundle.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    c["root"] = serde_json::json!({"path": rootfs, "readonly": true});
    c["process"]["terminal"] = serde_json::json!(false);
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();

    let id = |n: &str| format!("vigil-baselines-{}-{n}", std::process::id());
    for nnp in [true, false] {
        let (ok, out, err) = run(
            &bundle,
            &id(&format!("ok{nnp}")),
            "echo hi; cat /etc/hostname",
            nnp,
            &seccomp,
        );
        assert!(
            ok && out == "hi\nvigil-seccomp\n",
            "noNewPrivileges={nnp}: ok={ok}\nstdout: {out}\nstderr: {err}"
        );
    }
    // mkdir on the writable /dev/shm tmpfs: denied by the learned profile
    // (no redirections in the script: dup2 is outside the set too) ...
    let (_, out, err) = run(
        &bundle,
        &id("deny"),
        "mkdir /dev/shm/x || echo DENIED",
        true,
        &seccomp,
    );
    assert_eq!(out, "DENIED\n", "mkdir was not denied (stderr: {err})");
    // ... and allowed once the profile has learned it (the control).
    let mut with_mkdir = seccomp.clone();
    with_mkdir["syscalls"][0]["names"]
        .as_array_mut()
        .unwrap()
        .push("mkdir".into());
    let (ok, out, err) = run(
        &bundle,
        &id("allow"),
        "mkdir /dev/shm/x && echo MADE",
        true,
        &with_mkdir,
    );
    assert!(
        ok && out == "MADE\n",
        "control: ok={ok} stdout: {out} stderr: {err}"
    );
}
