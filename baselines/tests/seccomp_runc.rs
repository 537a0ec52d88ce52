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

#[test]
fn runc_runs_the_workload_under_the_exported_profile_and_denies_the_rest() {
    let name = "runc_runs_the_workload_under_the_exported_profile_and_denies_the_rest";
    let busybox = Path::new("/usr/bin/busybox");
    if !vigil_rootgate::require_root(name)
        || !vigil_rootgate::require(
            name,
            "needs runc and /usr/bin/busybox (busybox-static; scripts/install-deps.sh installs both)",
            vigil_rootgate::runc::available() && busybox.exists(),
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
    let bundle = vigil_rootgate::runc::Bundle::busybox(
        tmp.path(),
        busybox,
        &["sh", "cat", "echo", "mkdir"],
        "vigil-seccomp",
    );

    let id = |n: &str| format!("vigil-baselines-{}-{n}", std::process::id());
    for nnp in [true, false] {
        let (ok, out, err) = bundle.run(
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
    let (_, out, err) = bundle.run(
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
    let (ok, out, err) = bundle.run(
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
