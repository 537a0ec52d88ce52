//! Root test: a promoted baseline in `locked` mode kills a learned program
//! that spawns a child it never spawned while learning (drift -> kill, from
//! userspace: the alert says `vigil.response.how: userspace`), and the new
//! child with it; the same profile in `monitoring` mode only reports.
//! The new child is a file whose hash takes longer than `hash.wait_ms`:
//! the kill does not wait for it (the baseline judges the exec before the
//! hash wait), where with pipeline workers (the baseline after the wait)
//! it does.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use vigil_baselines::{Baselines, Mode};
use vigil_engine::agent::{RunOptions, Running};
use vigil_engine::config::Config;
use vigil_outputs::JsonLines;

mod common;
use common::{Shared, TempDir};

/// Runs the agent with baselines from `db` while `work` runs; returns what
/// it wrote.
fn with_agent(cfg: &Config, db: &Path, work: impl FnOnce()) -> Vec<serde_json::Value> {
    let b = Baselines::open(db, cfg.baselines.learner()).expect("open baselines");
    let out = Shared::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let agent = Running::spawn(RunOptions {
        sink: Some(Box::new(JsonLines::writer(Box::new(out.clone()), "test"))),
        baselines: Some(b),
        tap: Some(tx),
        ..RunOptions::new(cfg.clone())
    })
    .expect("agent starts");
    // the agent is reading events once it has handled the exec of a
    // /bin/true of ours (the kill latency below counts from the event)
    let t = Command::new("/bin/true").spawn().unwrap();
    let pid = t.id();
    let _ = t.wait_with_output();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(ev) if ev.k.hdr.pid == pid => break,
            Ok(_) => {}
            Err(e) => panic!("the agent handled no event of ours: {e}"),
        }
    }
    // the hash waits of that exec (its parent, this test binary, hashed
    // once) spent part of this second's wait budget (200 ms a second): let
    // it renew, so the work's exec waits as long as hash.wait_ms says
    std::thread::sleep(Duration::from_millis(1100));
    work();
    std::thread::sleep(Duration::from_millis(500));
    agent.stop_and_detach().expect("agent stops");
    out.records()
}

fn spawn_anomalies(recs: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    recs.iter()
        .filter(|r| r["rule"]["id"] == "baseline.spawn")
        .collect()
}

#[test]
fn a_locked_baseline_kills_a_learned_program_that_spawns_a_new_child() {
    if !vigil_tests::require_root(
        "a_locked_baseline_kills_a_learned_program_that_spawns_a_new_child",
    ) {
        return;
    }
    let _lock = vigil_tests::bpf_lock();
    let dir = TempDir(PathBuf::from(format!(
        "/run/{}",
        vigil_tests::unique_marker("vigil-locked-test")
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    // the learned program: a shell of its own (its own profile)
    let prog = dir.0.join("prog");
    std::fs::copy("/bin/sh", &prog).unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let marker = dir.0.join("marker");
    let db = dir.0.join("db");
    let mut cfg = Config::default();
    cfg.agent.events = false;
    cfg.agent.housekeeping_interval_s = 1;
    cfg.sensors.drain_interval_ms = 5;
    cfg.baselines.auto_promote = false;
    cfg.rules.builtin = false;
    // the exec of the new child waits this long for its hash (the padded
    // file below hashes for longer): the drift kill must not
    cfg.hash.wait_ms = 200;
    cfg.hash.max_bytes = 512 << 20;

    // 1. Learn: it runs /bin/true (forked, then exec'd) and nothing else.
    let recs = with_agent(&cfg, &db, || {
        for _ in 0..3 {
            let st = Command::new(&prog)
                .args(["-c", "/bin/true; :"])
                .status()
                .unwrap();
            assert!(st.success());
        }
    });
    assert!(
        spawn_anomalies(&recs).is_empty(),
        "learning raised anomalies"
    );
    let mut b = Baselines::open(&db, cfg.baselines.learner()).unwrap();
    let key = b
        .list()
        .into_iter()
        .map(|s| s.profile)
        .find(|k| k.starts_with(&format!("exe:{}@i", prog.display())))
        .expect("a profile of the program");
    let learned = b.show(&key).unwrap();
    assert!(
        learned.spawn.iter().any(|i| i.item == "/usr/bin/true"),
        "{learned:?}"
    );
    b.promote(&key, Mode::Locked, 1).unwrap();
    drop(b);

    // 2. Locked: a new child (sleep, padded to 256 MiB: its SHA-256 takes
    // longer than hash.wait_ms) kills the program before it goes on.
    let big = dir.0.join("sleep-big");
    let mut img = std::fs::read("/bin/sleep").unwrap();
    img.resize(img.len() + (256 << 20), 0);
    std::fs::write(&big, img).unwrap();
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = format!(
        "/bin/true; {} 5; echo ran > {}",
        big.display(),
        marker.display()
    );
    // One locked run: the program is killed at the new child; returns the
    // kill's latency (exec event to signal), ns.
    let locked_run = |cfg: &Config| -> u64 {
        let mut status = None;
        let mut took = Duration::ZERO;
        let recs = with_agent(cfg, &db, || {
            let t = std::time::Instant::now();
            status = Some(Command::new(&prog).args(["-c", &script]).status().unwrap());
            took = t.elapsed();
        });
        let st = status.unwrap();
        assert_eq!(st.signal(), Some(libc::SIGKILL), "killed: {st:?}");
        assert!(
            took < Duration::from_secs(5),
            "before the sleep ended: {took:?}"
        );
        assert!(!marker.exists(), "the program never went on");
        let a = spawn_anomalies(&recs);
        assert_eq!(a.len(), 1, "{a:#?}");
        let a = a[0];
        assert_eq!(a["vigil"]["baseline"]["profile"], key.as_str(), "{a}");
        assert_eq!(a["vigil"]["baseline"]["mode"], "locked", "{a}");
        assert!(
            a["vigil"]["baseline"]["item"]
                .as_str()
                .is_some_and(|i| i.ends_with("/sleep-big")),
            "{a}"
        );
        assert_eq!(a["vigil"]["response"]["action"], "kill", "{a}");
        assert_eq!(a["vigil"]["response"]["outcome"], "killed", "{a}");
        assert_eq!(a["vigil"]["response"]["how"], "userspace", "{a}");
        assert_eq!(a["vigil"]["response"]["child_outcome"], "killed", "{a}");
        a["vigil"]["response"]["latency_ns"].as_u64().unwrap()
    };
    // With pipeline workers the baseline sees an exec after its hash wait
    // (earlier events of the process may still be queued for a worker):
    // that run shows what the wait costs the kill here. One pipeline (the
    // default) judges the exec before the wait.
    let mut workers = cfg.clone();
    workers.pipeline.workers = 2;
    let after_wait = locked_run(&workers);
    let before_wait = locked_run(&cfg);
    eprintln!(
        "locked drift kill latency (userspace, exec event to signal), hash.wait_ms {}: {} us judged before the hash wait (1 pipeline), {} us after it (2 workers)",
        cfg.hash.wait_ms,
        before_wait / 1000,
        after_wait / 1000
    );
    assert!(
        after_wait >= cfg.hash.wait_ms * 1_000_000 / 2,
        "the hash of the new child did not make the exec wait ({} us): the test proves nothing",
        after_wait / 1000
    );
    assert!(
        before_wait < cfg.hash.wait_ms * 1_000_000 / 2,
        "the kill waited for the hash: {} us",
        before_wait / 1000
    );

    // 3. Monitoring: the same drift is only reported.
    let mut b = Baselines::open(&db, cfg.baselines.learner()).unwrap();
    b.promote(&key, Mode::Monitoring, 2).unwrap();
    drop(b);
    let script = format!("/bin/true; /bin/sleep 0.2; echo ran > {}", marker.display());
    let mut status = None;
    let recs = with_agent(&cfg, &db, || {
        status = Some(Command::new(&prog).args(["-c", &script]).status().unwrap());
    });
    assert!(status.unwrap().success(), "not killed in monitoring mode");
    assert!(marker.exists(), "the program went on");
    let a = spawn_anomalies(&recs);
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0]["vigil"]["baseline"]["mode"], "monitoring", "{}", a[0]);
    assert!(a[0]["vigil"]["response"].is_null(), "{}", a[0]);
}
