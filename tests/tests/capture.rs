//! Root test: a capture around each alert. An alert names its capture file
//! (`vigil.capture.path`, 0600 under the data directory); replaying it
//! shows the alerting exec and records from before it, and `--tree` shows
//! the process; under an alert storm the captures directory stays under
//! its size cap.

mod common;

use common::{Shared, TempDir};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use vigil_bpf::abi::kind;
use vigil_engine::agent::{RunOptions, Running};
use vigil_engine::config::Config;

#[test]
fn alert_writes_a_capture_that_replays_and_the_dir_cap_holds() {
    if !vigil_tests::require_root("alert_capture") {
        return;
    }
    let _lock = vigil_tests::bpf_lock();
    let m = vigil_tests::unique_marker("cap");
    let data = TempDir(std::env::temp_dir().join(format!("vigil-capdata-{m}")));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&data.0)
        .unwrap();
    let bin_dir = TempDir(std::env::temp_dir().join(format!("vigil-capbin-{m}")));
    std::fs::create_dir_all(&bin_dir.0).unwrap();
    let bin_dir_c = std::fs::canonicalize(&bin_dir.0).unwrap();
    let prog = bin_dir_c.join("prog");
    std::fs::copy("/bin/true", &prog).unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rules = format!(
        "- rule: test_capture\n  severity: high\n  condition: event.action = exec and process.executable startswith '{}/'\n",
        bin_dir_c.display()
    );
    let mut l = vigil_rules::Loader::new();
    l.add_source("capture-test.yaml", &rules);
    let (set, report) = l.load();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let set = Arc::new(set);
    let cap_bytes: u64 = 400_000;
    let mut cfg = Config::default();
    cfg.agent.data_dir = data.0.clone();
    cfg.agent.events = false;
    cfg.agent.housekeeping_interval_s = 1;
    cfg.sensors.drain_interval_ms = 5;
    cfg.baselines.enabled = false;
    cfg.outputs.rate_limit_burst = 0;
    cfg.capture.before_s = 30;
    cfg.capture.after_s = 1;
    cfg.capture.min_interval_s = 0;
    cfg.capture.max_dir_bytes = cap_bytes;
    let out = Shared::default();
    let sink = vigil_outputs::JsonLines::writer(Box::new(out.clone()), "test");
    let agent = Running::spawn(RunOptions {
        sink: Some(Box::new(sink)),
        rules: Some(set.clone()),
        perf_history: true,
        ..RunOptions::new(cfg.clone())
    })
    .expect("agent starts");
    // records before the alert: a few execs of /bin/true
    for _ in 0..5 {
        Command::new("/bin/true").status().unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let child = Command::new(&prog).spawn().unwrap();
    let alert_pid = child.id();
    let st = child.wait_with_output().unwrap().status;
    assert!(st.success());
    let a = vigil_tests::wait_for(Duration::from_secs(10), || {
        out.records()
            .into_iter()
            .find(|r| r["rule"]["id"] == "test_capture" && r["process"]["pid"] == alert_pid)
    })
    .expect("the alert");
    let path = a["vigil"]["capture"]["path"]
        .as_str()
        .expect("the alert names its capture")
        .to_string();
    let path = std::path::PathBuf::from(path);
    assert!(
        path.starts_with(data.0.join("captures")),
        "{}",
        path.display()
    );
    // after_s = 1: the capture ends a second later
    std::thread::sleep(Duration::from_millis(2500));

    // replay it (closed and flushed by now)
    {
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "capture file mode");
        let (tx, rx) = std::sync::mpsc::channel();
        let mut rcfg = cfg.clone();
        rcfg.agent.events = true;
        let sum = vigil_engine::replay::replay_with(
            &path,
            &rcfg,
            Some(set.clone()),
            None,
            Some(tx),
            |_, _| {},
        )
        .expect("replay reads the capture");
        assert!(sum.pipeline.alerts >= 1, "the alert replays");
        let evs: Vec<_> = rx.try_iter().collect();
        let i = evs
            .iter()
            .position(|e| e.k.hdr.kind == kind::EXEC && e.k.hdr.pid == alert_pid)
            .expect("the alerting exec is in the capture");
        assert!(
            evs[..i].iter().any(|e| e.k.hdr.kind == kind::EXEC
                && e.process
                    .as_ref()
                    .is_some_and(|p| &p.exe[..] == b"/usr/bin/true" || &p.exe[..] == b"/bin/true")),
            "records from before the alert are in the capture"
        );
        let tree = vigil_engine::capture::replay::render_tree(&evs, alert_pid);
        assert!(
            tree.contains(&format!("{alert_pid} {}", prog.display())),
            "{tree}"
        );
        assert!(tree.contains("| "), "events listed: {tree}");
    }
    // the storm: 40 alerts, a capture each (min_interval 0, after 1 s
    // overlapping: the ones within a capture share it)
    for _ in 0..40 {
        Command::new(&prog).status().unwrap();
        std::thread::sleep(Duration::from_millis(60));
    }
    let summary = agent.stop().expect("agent stops");
    use std::os::unix::fs::MetadataExt;
    let mode = std::fs::metadata(data.0.join("captures")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700, "captures directory");
    let total = vigil_engine::capture::alert::dir_bytes(&data.0.join("captures"));
    assert!(
        total <= cap_bytes,
        "captures dir {total} bytes, cap {cap_bytes}; {:?}",
        summary.pipeline.capture
    );
    assert!(
        summary.pipeline.capture.files >= 2,
        "{:?}",
        summary.pipeline.capture
    );
}
