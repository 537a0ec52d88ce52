//! The shipped unit's `SystemCallFilter=` allow list is enough for the
//! agent, as root: the test reads the lines from `packaging/vigil.service`,
//! expands the groups with `systemd-analyze syscall-filter` the way systemd
//! does, and runs `vigil run` with every optional sensor and tool on under a
//! seccomp filter that kills the process on any other system call
//! (stricter than the unit's EPERM, so a miss cannot go unnoticed). The
//! agent must start, alert on real behaviour, reload on SIGHUP, serve
//! metrics and stop cleanly; a denied call made under the same filter must
//! kill its caller, so the filter is not vacuous.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{require_root, spawn_with_stderr, stop_cleanly, wait_line};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/vigil.service");
const UNISTD: &str = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";

/// Members of a group (`@name`), expanded recursively, or the name itself.
fn expand(name: &str, out: &mut BTreeSet<String>) {
    if !name.starts_with('@') {
        out.insert(name.to_string());
        return;
    }
    let o = Command::new("systemd-analyze")
        .args(["syscall-filter", name])
        .output()
        .expect("systemd-analyze (scripts/install-deps.sh installs systemd)");
    assert!(o.status.success(), "systemd-analyze syscall-filter {name}");
    let text = String::from_utf8(o.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().map(str::trim), Some(name), "{text}");
    for l in lines {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        expand(l, out);
    }
}

/// The allowed set the unit's `SystemCallFilter=` lines give, in order: the
/// first allow line sets the list, `~` lines take names out of it.
fn unit_allow_list() -> BTreeSet<String> {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let mut allowed = BTreeSet::new();
    let mut lines = 0;
    for l in unit.lines() {
        let Some(v) = l.strip_prefix("SystemCallFilter=") else {
            continue;
        };
        lines += 1;
        let (deny, v) = match v.strip_prefix('~') {
            Some(v) => (true, v),
            None => (false, v),
        };
        assert!(
            deny || lines == 1,
            "the allow list must be the first SystemCallFilter= line"
        );
        let mut set = BTreeSet::new();
        for n in v.split_whitespace() {
            expand(n, &mut set);
        }
        if deny {
            allowed.retain(|n| !set.contains(n));
        } else {
            allowed.extend(set);
        }
    }
    assert!(lines >= 1 && !allowed.is_empty(), "no allow list in {UNIT}");
    allowed
}

/// x86-64 system call numbers by name, from the kernel headers.
fn syscall_numbers() -> BTreeMap<String, u32> {
    let text = std::fs::read_to_string(UNISTD)
        .unwrap_or_else(|e| panic!("{UNISTD}: {e} (linux-libc-dev, via libbpf-dev)"));
    text.lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("#define __NR_")?.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

/// A classic BPF seccomp program: x86-64 only, no x32, the listed numbers
/// allowed, anything else kills the process.
fn filter(allowed: &[u32]) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const X32_BIT: u32 = 0x4000_0000;
    const KILL_PROCESS: u32 = 0x8000_0000;
    const ALLOW: u32 = 0x7fff_0000;
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut p = vec![
        ins(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        ins(JEQ, 1, 0, AUDIT_ARCH_X86_64),
        ins(RET, 0, 0, KILL_PROCESS),
        ins(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        ins(JGE, 0, 1, X32_BIT),
        ins(RET, 0, 0, KILL_PROCESS),
    ];
    for &nr in allowed {
        p.push(ins(JEQ, 0, 1, nr));
        p.push(ins(RET, 0, 0, ALLOW));
    }
    p.push(ins(RET, 0, 0, KILL_PROCESS));
    p
}

/// `cmd`, run under `prog` (installed between fork and exec, after
/// `PR_SET_NO_NEW_PRIVS`, as the unit's `NoNewPrivileges=yes` does).
fn confine(cmd: &mut Command, prog: Vec<libc::sock_filter>) -> &mut Command {
    // SAFETY: only async-signal-safe calls (prctl) between fork and exec;
    // `prog` lives in the closure, which outlives the call.
    unsafe {
        cmd.pre_exec(move || {
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &fprog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

fn tmpdir() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = std::env::temp_dir().join(format!("vigil-scfilter-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("data")).unwrap();
    std::fs::set_permissions(d.join("data"), std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

fn records(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn the_agent_runs_under_the_units_system_call_allow_list() {
    if !require_root("the_agent_runs_under_the_units_system_call_allow_list") {
        return;
    }
    let names = unit_allow_list();
    let numbers = syscall_numbers();
    // Names of other architectures (`arm_fadvise64_64`, `_llseek`) have no
    // x86-64 number; everything vigil needs must have one.
    for n in ["bpf", "perf_event_open", "mount", "read", "execve"] {
        assert!(names.contains(n), "{n} not allowed by {UNIT}");
    }
    for n in [
        "swapoff",
        "init_module",
        "reboot",
        "chown",
        "setuid",
        "add_key",
    ] {
        assert!(!names.contains(n), "{n} allowed by {UNIT}");
    }
    let allowed: Vec<u32> = names
        .iter()
        .filter_map(|n| numbers.get(n).copied())
        .collect();
    assert!(allowed.len() > 250, "{} calls allowed", allowed.len());

    // Not vacuous: a call outside the list kills its caller (swapoff(2) is
    // in @swap), while one inside it does not.
    let st = confine(&mut Command::new("swapoff"), filter(&allowed))
        .arg("/nonexistent-vigil-swap")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.signal(), Some(libc::SIGSYS), "swapoff: {st}");
    let st = confine(&mut Command::new("true"), filter(&allowed))
        .status()
        .unwrap();
    assert!(st.success(), "true under the filter: {st}");

    let dir = tmpdir();
    let cfg = dir.join("vigil.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\ndata_dir = \"{}\"\n[perf]\ninterval_s = 1\nsyscalls = \"all\"\n\
             kmem = true\nslabratetop = true\nmemleak = true\noverlayfs = true\nkpages = true\nprofile = true\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let out = dir.join("out.json");
    let port = 19000 + (std::process::id() % 500) as u16;
    let metrics = format!("127.0.0.1:{port}");
    let (mut child, rx) = spawn_with_stderr(
        confine(&mut common::vigil(), filter(&allowed))
            .arg("--config")
            .arg(&cfg)
            .args(["run", "--events", "--metrics", &metrics, "-o"])
            .arg(&out)
            // A remote sink that refuses: the reconnect and spool paths run too.
            .args(["-o", "syslog+tcp://127.0.0.1:1?format=json"])
            .stdout(Stdio::null()),
    );
    wait_line(&rx, "vigil: ready", Duration::from_secs(90));

    // Real behaviour the default rules alert on.
    let shm = PathBuf::from(format!("/dev/shm/vigil-scf-{}", std::process::id()));
    std::fs::copy("/bin/true", &shm).unwrap();
    assert!(Command::new(&shm).status().unwrap().success());
    let _ = std::fs::remove_file(&shm);
    let _ = Command::new("cat")
        .arg("/etc/shadow")
        .stdout(Stdio::null())
        .status();
    let _ = Command::new("unshare").args(["-n", "true"]).status();
    let scrape = || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&metrics).expect("metrics");
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    };
    assert!(scrape().contains("vigil_sensor_events_total"));
    std::thread::sleep(Duration::from_secs(3));
    // SIGHUP reloads the rules and reopens the outputs.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    wait_line(&rx, "vigil: rules reloaded", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    assert!(scrape().contains("vigil_alerts_total"));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the agent died under the filter"
    );
    // Killed by SIGSYS here: a system call outside the unit's allow list.
    stop_cleanly(&mut child, Duration::from_secs(60));

    let recs = records(&out);
    let alerts: Vec<&serde_json::Value> = recs
        .iter()
        .filter(|r| r["event"]["kind"] == "alert")
        .collect();
    let exe = shm.to_str().unwrap();
    assert!(
        alerts.iter().any(|a| a["process"]["executable"] == exe),
        "no alert for the exec from /dev/shm"
    );
    assert!(
        alerts
            .iter()
            .any(|a| a["file"]["path"] == "/etc/shadow" && a["process"]["name"] == "cat"),
        "no alert for the shadow read"
    );
    let datasets: BTreeSet<&str> = recs
        .iter()
        .filter_map(|r| r["event"]["dataset"].as_str())
        .collect();
    for d in ["vigil.runqlat", "vigil.syscalls"] {
        assert!(datasets.contains(d), "no {d} record: {datasets:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
