//! Root test: the bpf_stats helper (`vigil-stats`, the agent's child that
//! keeps CAP_SYS_ADMIN to hand out BPF_ENABLE_STATS descriptors) is vigil
//! itself. With `--events`, its bpf(2) calls of every sampling window,
//! its capset and capability checks (CAP_SETPCAP at start, CAP_SYS_ADMIN
//! per window) and its exit leave no record, while a bpf(2) call of
//! another process does.

use std::time::{Duration, Instant};

mod common;
use common::{require_root, spawn_with_stderr, stats_helper_of, wait_line};

#[test]
fn the_bpf_stats_helper_is_vigil_itself_and_leaves_no_event_record() {
    if !require_root("the_bpf_stats_helper_is_vigil_itself_and_leaves_no_event_record") {
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "vigil-test-marker-statshelper-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("events.json");
    let cfg = dir.join("vigil.toml");
    // A 1 s bpf_stats window in every 2 s interval: a BPF_ENABLE_STATS
    // from the helper every 2 s.
    std::fs::write(
        &cfg,
        "[sensors]\ndrain_interval_ms = 5\nbpf_stats_sample_ms = 1000\n[perf]\ninterval_s = 2\n",
    )
    .unwrap();
    let (mut child, rx) = spawn_with_stderr(
        common::vigil()
            .arg("--config")
            .arg(&cfg)
            .args(["run", "--events", "--no-baselines", "-o"])
            .arg(&out),
    );
    let pid = child.id();
    let result = std::panic::catch_unwind(|| {
        wait_line(&rx, "sensors live", Duration::from_secs(30));
        wait_line(&rx, "dropped", Duration::from_secs(10));
        let helper = stats_helper_of(pid).expect("the bpf_stats helper runs as vigil's child");
        // Three sampling windows at least, and a bpf(2) call of our own
        // after the last: the control.
        std::thread::sleep(Duration::from_secs(7));
        drop(vigil_rootgate::bpf::create_array_map(b"vg_statstest").expect("bpf(BPF_MAP_CREATE)"));
        let me = std::process::id();
        let end = Instant::now() + Duration::from_secs(15);
        let recs = loop {
            let recs: Vec<serde_json::Value> = std::fs::read_to_string(&out)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            if recs
                .iter()
                .any(|r| r["event"]["action"] == "bpf" && r["process"]["pid"] == me)
            {
                break recs;
            }
            assert!(
                Instant::now() < end,
                "no bpf record of this test's BPF_MAP_CREATE ({} records)",
                recs.len()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        (helper, recs)
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    let said: Vec<String> = rx.try_iter().collect();
    let (helper, _) = match result {
        Ok(x) => x,
        Err(e) => std::panic::resume_unwind(e),
    };
    assert!(st.success(), "vigil exited with {st}");
    assert!(
        !said.iter().any(|l| l.starts_with("vigil: bpf_stats:")),
        "bpf_stats sampling failed, so the helper made no calls: {said:?}"
    );
    // Everything written, shutdown included (the helper's exit).
    let recs: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // Event records only: the kmem tool's metric records still name the
    // helper's kernel allocations by process (a metric, not an event).
    let of_helper: Vec<&serde_json::Value> = recs
        .iter()
        .filter(|r| r["event"]["kind"] == "event")
        .filter(|r| {
            r["process"]["pid"] == helper
                || r["process"]["name"] == "vigil-stats"
                || r["process"]["parent"]["pid"] == pid
        })
        .collect();
    assert!(
        of_helper.is_empty(),
        "records of the helper (pid {helper}): {of_helper:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
