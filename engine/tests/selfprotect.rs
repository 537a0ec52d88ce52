//! Root test of the real binary's self-protection: a
//! ptrace of vigil, a SIGSTOP sent to it and an open of its /proc
//! directory each raise the `vigil_tampering` alert; heartbeats arrive on
//! schedule; after start-up it holds only the capabilities it still uses.

use std::process::{Command, Stdio};

mod common;
use common::{require_root, spawn_with_stderr, stats_helper_of, wait_line};
use std::time::{Duration, Instant};

#[test]
fn tampering_with_vigil_raises_alerts_and_heartbeats_arrive() {
    if !require_root("tampering_with_vigil_raises_alerts_and_heartbeats_arrive") {
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "vigil-test-marker-selfprotect-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("alerts.json");
    let cfg = dir.join("vigil.toml");
    std::fs::write(
        &cfg,
        "[agent]\nhousekeeping_interval_s = 1\nheartbeat_interval_s = 1\n[sensors]\ndrain_interval_ms = 5\n[perf]\ninterval_s = 2\n",
    )
    .unwrap();
    let (mut child, rx) = spawn_with_stderr(
        common::vigil()
            .arg("--config")
            .arg(&cfg)
            .args(["run", "--no-baselines", "-o"])
            .arg(&out),
    );
    let pid = child.id() as i32;
    let result = std::panic::catch_unwind(|| {
        wait_line(&rx, "sensors live", Duration::from_secs(30));
        // 0. Once running, it holds only the capabilities it still uses.
        wait_line(&rx, "dropped", Duration::from_secs(10));
        // Capabilities are per thread: every thread, not only the main
        // one, must have dropped them.
        let keep: u64 = (1 << 2) | (1 << 19) | (1 << 38) | (1 << 39);
        let mut threads = 0;
        for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let t = t.unwrap().file_name().to_string_lossy().into_owned();
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/task/{t}/status")) else {
                continue; // the thread ended meanwhile
            };
            let field = |name: &str| {
                let l = status.lines().find(|l| l.starts_with(name)).unwrap();
                u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap()
            };
            let comm = status.lines().next().unwrap_or("").to_string();
            assert_eq!(
                field("CapEff:"),
                keep,
                "effective set of thread {t} ({comm})"
            );
            assert_eq!(
                field("CapPrm:"),
                keep,
                "permitted set of thread {t} ({comm})"
            );
            assert_eq!(
                field("CapBnd:") & !keep,
                0,
                "bounding set of thread {t} ({comm})"
            );
            threads += 1;
        }
        assert!(threads >= 2, "vigil runs its sinks on their own threads");
        // The bpf_stats helper: a child holding CAP_SYS_ADMIN alone,
        // no-new-privs, one descriptor (its socket).
        let helper =
            stats_helper_of(pid as u32).expect("the bpf_stats helper runs as vigil's child");
        let st = std::fs::read_to_string(format!("/proc/{helper}/status")).unwrap();
        let hfield = |name: &str| {
            let l = st.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap()
        };
        assert_eq!(hfield("CapEff:"), 1 << 21, "helper: CAP_SYS_ADMIN only");
        assert_eq!(hfield("CapPrm:"), 1 << 21, "helper: CAP_SYS_ADMIN only");
        assert_eq!(hfield("CapBnd:"), 1 << 21, "helper: bounding set");
        assert!(st.lines().any(|l| l == "NoNewPrivs:\t1"), "{st}");
        let fds: Vec<String> = std::fs::read_dir(format!("/proc/{helper}/fd"))
            .unwrap()
            .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
            .collect();
        assert_eq!(fds, vec!["3".to_string()], "helper holds only its socket");
        // 0. Process listers read its public files (ps reads environ, lsof
        // maps and the fd/ listing): no tampering.
        for (cmd, args) in [
            ("ps", vec!["aux".to_string()]),
            ("cat", vec![format!("/proc/{pid}/environ")]),
            ("lsof", vec!["-p".to_string(), pid.to_string()]),
        ] {
            let _ = Command::new(cmd)
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // 1. Someone opens its memory.
        let st = Command::new("dd")
            .args([format!("if=/proc/{pid}/mem"), "count=0".to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        // 2. Someone attaches with ptrace (and lets go).
        // SAFETY: attaching to and detaching from our own child.
        unsafe {
            assert_eq!(libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0), 0);
            let mut st = 0;
            libc::waitpid(pid, &mut st, libc::__WALL);
            libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
        }
        // 3. Someone (not its parent) stops and resumes it.
        for sig in ["-STOP", "-CONT"] {
            let st = Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .unwrap();
            assert!(st.success());
        }
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let recs: Vec<serde_json::Value> = std::fs::read_to_string(&out)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let tamper: Vec<&serde_json::Value> = recs
                .iter()
                .filter(|r| r["rule"]["id"] == "vigil_tampering")
                .collect();
            let has = |a: &str| tamper.iter().any(|r| r["event"]["action"] == a);
            let beats = recs
                .iter()
                .filter(|r| r["event"]["action"] == "heartbeat")
                .count();
            if has("open") && has("ptrace") && has("signal") && beats >= 2 {
                let sig = tamper
                    .iter()
                    .find(|r| r["event"]["action"] == "signal")
                    .unwrap();
                assert_eq!(sig["vigil"]["signal"]["name"], "SIGSTOP", "{sig}");
                assert_eq!(sig["vigil"]["severity"], "critical");
                let open = tamper
                    .iter()
                    .find(|r| r["event"]["action"] == "open")
                    .unwrap();
                assert_eq!(open["file"]["path"], format!("/proc/{pid}/mem"));
                for r in tamper.iter().filter(|r| r["event"]["action"] == "open") {
                    let p = r["file"]["path"].as_str().unwrap_or("");
                    assert!(
                        !p.ends_with("/environ") && !p.ends_with("/maps") && !p.ends_with("/stat"),
                        "process listing raised tampering: {r}"
                    );
                }
                break;
            }
            assert!(
                Instant::now() < end,
                "missing: open={} ptrace={} signal={} heartbeats={beats}; records: {recs:#?}",
                has("open"),
                has("ptrace"),
                has("signal")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let st = child.wait().unwrap();
    // Sampling went on after the capability drop.
    let said: Vec<String> = rx.try_iter().collect();
    assert!(
        !said.iter().any(|l| l.starts_with("vigil: bpf_stats:")),
        "bpf_stats sampling failed: {said:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(st.success(), "vigil exited with {st}");
}
