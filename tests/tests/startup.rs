//! As root: the pipeline reads the ring buffer as soon as the agent is up.
//! An exec done the moment the agent reports its sensors live is enriched
//! and emitted within a bound of the exec, with the default configuration
//! (its performance objects, whose loading and verification take hundreds
//! of milliseconds, load after that moment).

use std::sync::mpsc::channel;
use std::time::{Duration, Instant};
use vigil_engine::agent::{RunOptions, Running, boot_now_ns};
use vigil_engine::config::Config;

/// How late an exec record may be emitted after the exec (kernel time of
/// the exec to the record leaving the pipeline), right after start. The
/// ring is drained every 5 ms here; the rest is the seed of the process
/// table and the enrichment on a shared 2-core host.
const BOUND_MS: u64 = 250;

#[test]
fn an_exec_right_after_sensors_live_is_emitted_within_the_bound() {
    if !vigil_tests::require_root("an_exec_right_after_sensors_live_is_emitted_within_the_bound") {
        return;
    }
    let _lock = vigil_tests::bpf_lock();
    let mut cfg = Config::default();
    cfg.agent.events = true;
    cfg.sensors.drain_interval_ms = 5;
    // the default performance objects load after start: the test is about
    // them not holding up the events
    assert!(
        cfg.perf.runqlat && cfg.perf.perfsys_on(),
        "defaults changed"
    );
    let (tx, rx) = channel();
    let agent = Running::spawn(RunOptions {
        tap: Some(tx),
        ..RunOptions::new(cfg)
    })
    .expect("agent starts");
    // "sensors live": now.
    let marker = vigil_tests::unique_marker("startup");
    let st = std::process::Command::new("/bin/true")
        .arg(&marker)
        .status()
        .expect("run /bin/true");
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = None;
    while Instant::now() < deadline {
        let Ok(ev) = rx.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        let seen_ns = boot_now_ns();
        let ours = ev.k.hdr.kind == vigil_bpf::abi::kind::EXEC
            && ev.process.as_ref().is_some_and(|p| {
                p.cmdline
                    .windows(marker.len())
                    .any(|w| w == marker.as_bytes())
            });
        if ours {
            got = Some((ev.k.hdr.ts_ns, seen_ns));
            break;
        }
    }
    let summary = agent.stop().expect("agent stops");
    let (exec_ns, seen_ns) =
        got.unwrap_or_else(|| panic!("no exec record of /bin/true {marker}\n{}", summary.render()));
    let late_ms = seen_ns.saturating_sub(exec_ns) / 1_000_000;
    eprintln!("exec record emitted {late_ms} ms after the exec (bound {BOUND_MS} ms)");
    assert!(
        late_ms <= BOUND_MS,
        "exec record emitted {late_ms} ms after the exec, past {BOUND_MS} ms"
    );
}
