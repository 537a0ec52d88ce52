//! End to end as root: the environment at exec, timestamps set by the
//! utimes family, process_vm_readv/writev and signals between processes,
//! each performed for real, raise the built-in rules of
//! `rules/builtin/syscalls.yaml` with the event's process context.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;
use common::Cleanup;
use common::RulesAgent as Agent;

/// Runs a command to completion and returns its pid (the exec'd program's).
fn run(cmd: &mut Command) -> u32 {
    common::run_quiet(cmd).0
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(vigil_tests::unique_marker(tag));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

#[test]
fn environment_at_exec_raises_injection_and_history_alerts() {
    let Some(agent) = Agent::start(
        "environment_at_exec_raises_injection_and_history_alerts",
        None,
    ) else {
        return;
    };
    let dir = scratch_dir("vg-env");
    let _c = Cleanup(vec![dir.clone()]);
    // The library need not exist: the loader complains and runs the program.
    let lib = dir.join("inject.so");
    let lib = lib.to_str().unwrap();
    let pid = run(Command::new("/bin/true").env("LD_PRELOAD", lib));
    let a = agent.expect("ld_preload_env_injection", |a| a["process"]["pid"] == pid);
    assert_eq!(a["vigil"]["env"]["LD_PRELOAD"], lib, "{a}");
    assert!(
        a["process"]["env_vars"]
            .as_array()
            .is_some_and(|v| v.iter().any(|e| *e == format!("LD_PRELOAD={lib}"))),
        "{a}"
    );
    assert_eq!(a["process"]["executable"], "/usr/bin/true", "{a}");

    // LD_AUDIT through env(1): the exec of `true` carries it.
    let pid_env = run(Command::new("/usr/bin/env").args([&format!("LD_AUDIT={lib}"), "/bin/true"]));
    let a = agent.expect("ld_preload_env_injection", |a| {
        a["process"]["pid"] == pid_env
    });
    assert_eq!(a["vigil"]["env"]["LD_AUDIT"], lib, "{a}");
    assert_eq!(a["process"]["name"], "true", "{a}");

    // A library search path in a temporary directory.
    let pid = run(Command::new("/bin/true").env("LD_LIBRARY_PATH", "/usr/lib:/dev/shm"));
    let a = agent.expect("ld_library_path_temp_dir", |a| a["process"]["pid"] == pid);
    assert_eq!(
        a["vigil"]["env"]["LD_LIBRARY_PATH"], "/usr/lib:/dev/shm",
        "{a}"
    );

    // History switched off in a shell's environment.
    let pid = run(Command::new("/bin/sh")
        .args(["-c", "true"])
        .env("HISTFILE", "/dev/null")
        .env("HISTSIZE", "0"));
    let a = agent.expect("history_disabled_env", |a| a["process"]["pid"] == pid);
    assert_eq!(a["vigil"]["env"]["HISTFILE"], "/dev/null", "{a}");
    assert_eq!(a["vigil"]["env"]["HISTSIZE"], "0", "{a}");
    assert_eq!(a["process"]["name"], "sh", "{a}");

    // Benign preloads and harmless values raise nothing: checked after a
    // later alert, so their records had time to arrive.
    let benign = run(Command::new("/bin/true").env(
        "LD_PRELOAD",
        "/usr/lib/x86_64-linux-gnu/libfakeroot/libfakeroot-sysv.so",
    ));
    let kept = run(Command::new("/bin/sh")
        .args(["-c", "true"])
        .env("HISTSIZE", "1000"));
    let marker = run(Command::new("/bin/true").env("LD_PRELOAD", lib));
    agent.expect("ld_preload_env_injection", |a| {
        a["process"]["pid"] == marker
    });
    for r in agent.out.records() {
        assert!(
            r["process"]["pid"] != benign && r["process"]["pid"] != kept,
            "benign environment raised {r}"
        );
    }
}

/// A kept variable behind padding: behind 20,000 bytes of one variable
/// (past the old 8 KiB copy) it is still found, the kernel walks entry by
/// entry and copies only the kept ones; behind more entries than the walk
/// takes steps it is unseen, but the exec says `vigil.env.truncated`, so a
/// rule sees the evasion.
#[test]
fn environment_padding_is_scanned_or_flagged() {
    let dir = scratch_dir("vg-envpad");
    let _c = Cleanup(vec![dir.clone()]);
    let rules = dir.join("envpad.yaml");
    std::fs::write(
        &rules,
        "- rule: test_env_truncated\n  severity: high\n  condition: event.action = exec and vigil.env.truncated = true\n  output: environment past the walk's bound\n",
    )
    .unwrap();
    let Some(agent) = Agent::start("environment_padding_is_scanned_or_flagged", Some(&rules))
    else {
        return;
    };
    let lib = dir.join("evil.so");
    let lib = lib.to_str().unwrap();
    // 20,000 bytes of padding first (the environment is in name order):
    // found, not truncated
    let pid = run(Command::new("/bin/true")
        .env_clear()
        .env("AAPAD", "x".repeat(20_000))
        .env("LD_PRELOAD", lib));
    let a = agent.expect("ld_preload_env_injection", |a| a["process"]["pid"] == pid);
    assert_eq!(a["vigil"]["env"]["LD_PRELOAD"], lib, "{a}");
    assert!(a["vigil"]["env"]["truncated"].is_null(), "{a}");
    // 600 entries first: past the walk's 512 steps, flagged
    let mut many = Command::new("/bin/true");
    many.env_clear();
    for i in 0..600 {
        many.env(format!("A{i:03}"), "1");
    }
    let far = run(many.env("LD_PRELOAD", lib));
    let t = agent.expect("test_env_truncated", |a| a["process"]["pid"] == far);
    assert_eq!(t["vigil"]["env"]["truncated"], true, "{t}");
    // an ordinary environment is not flagged
    let plain = run(Command::new("/bin/true").env_clear().env("HOME", "/root"));
    let marker = run(Command::new("/bin/true").env("LD_PRELOAD", lib));
    agent.expect("ld_preload_env_injection", |a| {
        a["process"]["pid"] == marker
    });
    for r in agent.out.records() {
        assert!(
            !(r["rule"]["id"] == "test_env_truncated" && r["process"]["pid"] == plain),
            "plain environment flagged: {r}"
        );
    }
}

#[test]
fn timestamps_set_on_system_files_raise_timestomp_alerts() {
    let Some(agent) = Agent::start(
        "timestamps_set_on_system_files_raise_timestomp_alerts",
        None,
    ) else {
        return;
    };
    let f = PathBuf::from(format!("/etc/{}", vigil_tests::unique_marker("vg-ts")));
    let _c = Cleanup(vec![f.clone()]);
    std::fs::write(&f, "x").unwrap();
    let path = f.to_str().unwrap();

    // Set to now: a plain touch is not timestomping.
    let now = run(Command::new("/usr/bin/touch").arg(path));

    // touch -d: open + futimens (utimensat on the descriptor).
    let pid = run(Command::new("/usr/bin/touch").args(["-d", "2001-02-03 04:05:06", path]));
    let a = agent.expect("timestomp_sensitive_file", |a| a["process"]["pid"] == pid);
    let mtime = std::fs::metadata(&f).unwrap().mtime();
    assert_eq!(a["file"]["path"], path, "{a}");
    assert_eq!(a["event"]["action"], "utimes", "{a}");
    assert_eq!(a["vigil"]["file_change"]["times"], "set", "{a}");
    assert_eq!(a["vigil"]["file_change"]["mtime"], mtime, "{a}");
    assert_eq!(a["process"]["name"], "touch", "{a}");

    // A program, not touch: os.utime by name (utimensat with a path).
    let pid = run(Command::new(python()).args([
        "-c",
        "import os, sys; os.utime(sys.argv[1], (1000000000, 1000000000))",
        path,
    ]));
    let a = agent.expect("timestomp_sensitive_file", |a| a["process"]["pid"] == pid);
    assert_eq!(a["file"]["path"], path, "{a}");
    assert_eq!(a["vigil"]["file_change"]["mtime"], 1_000_000_000, "{a}");
    assert_eq!(a["vigil"]["file_change"]["syscall"], "utimensat", "{a}");

    for r in agent.out.records() {
        assert!(
            r["process"]["pid"] != now || r["rule"]["id"] != "timestomp_sensitive_file",
            "touch to now raised {r}"
        );
    }
}

/// Reads 64 bytes of a writable mapping of `pid` with process_vm_readv and
/// writes them back with process_vm_writev (the target is unchanged).
const VM_SCRIPT: &str = r#"
import ctypes, sys
pid = int(sys.argv[1])
for line in open(f"/proc/{pid}/maps"):
    f = line.split()
    if f[1].startswith("rw"):
        addr = int(f[0].split("-")[0], 16)
        break
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(64)
local = iovec(ctypes.cast(buf, ctypes.c_void_p), 64)
remote = iovec(addr, 64)
libc = ctypes.CDLL(None, use_errno=True)
libc.process_vm_readv.restype = ctypes.c_ssize_t
libc.process_vm_writev.restype = ctypes.c_ssize_t
r = libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
w = libc.process_vm_writev(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
assert r == 64 and w == 64, (r, w, ctypes.get_errno())
"#;

#[test]
fn process_vm_readv_and_writev_raise_memory_alerts() {
    let Some(agent) = Agent::start("process_vm_readv_and_writev_raise_memory_alerts", None) else {
        return;
    };
    let mut target = Command::new("/usr/bin/sleep").arg("30").spawn().unwrap();
    let tpid = target.id();
    std::thread::sleep(Duration::from_millis(200));
    let out = Command::new(python())
        .args(["-c", VM_SCRIPT, &tpid.to_string()])
        .output()
        .unwrap();
    let _ = target.kill();
    let _ = target.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = agent.expect("process_memory_read", |a| {
        a["vigil"]["ptrace"]["target_pid"] == tpid
    });
    assert_eq!(read["event"]["action"], "process-vm-readv", "{read}");
    assert_eq!(read["event"]["outcome"], "success", "{read}");
    assert_eq!(
        read["vigil"]["ptrace"]["target_executable"], "/usr/bin/sleep",
        "{read}"
    );
    assert!(
        read["process"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("python")),
        "{read}"
    );
    let write = agent.expect("process_memory_write", |a| {
        a["vigil"]["ptrace"]["target_pid"] == tpid
    });
    assert_eq!(write["event"]["action"], "process-vm-writev", "{write}");
    assert_eq!(write["process"]["pid"], read["process"]["pid"], "{write}");
}

#[test]
fn signal_to_a_service_raises_alert_but_not_to_own_child() {
    let Some(agent) = Agent::start(
        "signal_to_a_service_raises_alert_but_not_to_own_child",
        None,
    ) else {
        return;
    };
    let dir = scratch_dir("vg-sig");
    let _c = Cleanup(vec![dir.clone()]);
    // A stand-in service: sleep under the name of a protected service.
    let svc = dir.join("cron");
    std::fs::copy("/usr/bin/sleep", &svc).unwrap();
    let svc_s = svc.to_str().unwrap();

    // A shell killing its own child: not reported by the sensor.
    let out = Command::new("/bin/sh")
        .args(["-c", &format!("{svc_s} 30 & echo $!; kill -TERM $!; wait")])
        .output()
        .unwrap();
    let own_child: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();

    // kill(1) signalling a process that is not its child.
    let mut service = Command::new(&svc).arg("30").spawn().unwrap();
    let spid = service.id();
    std::thread::sleep(Duration::from_millis(200));
    let killer = run(Command::new("/usr/bin/kill").args(["-TERM", &spid.to_string()]));
    let _ = service.wait();
    let a = agent.expect("service_killed_by_signal", |a| {
        a["process"]["pid"] == killer
    });
    assert_eq!(a["event"]["action"], "signal", "{a}");
    assert_eq!(a["vigil"]["signal"]["name"], "SIGTERM", "{a}");
    assert_eq!(a["vigil"]["signal"]["target_tgid"], spid, "{a}");
    assert_eq!(a["vigil"]["signal"]["target_name"], "cron", "{a}");
    assert_eq!(a["vigil"]["signal"]["target_executable"], svc_s, "{a}");
    assert_eq!(a["process"]["name"], "kill", "{a}");
    for r in agent.out.records() {
        assert!(
            r["vigil"]["signal"]["target_tgid"] != own_child,
            "a signal to the sender's own child was reported: {r}"
        );
    }
}
