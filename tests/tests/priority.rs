//! Priority delivery, as root: a one-page bulk ring flooded by opens of
//! distinct missing files below /etc/ (records `--events` delivers), while
//! other processes perform a known number of alert-worthy actions. Every
//! action must alert, the bulk drops must be counted, the flooding
//! processes must be demoted past their priority budget, and the records
//! after a loss must say so.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;
use vigil_bpf::abi::kind;
use vigil_engine::agent::{RunOptions, Running};
use vigil_engine::config::Config;
use vigil_outputs::JsonLines;
use vigil_rules::Loader;

mod common;
use common::{Shared, TempDir};

const ROUNDS: usize = 5;

/// The agent with the built-in rules and `cfg`, its JSON lines captured.
fn start_agent(cfg: Config) -> (Running, Shared) {
    let mut l = Loader::new();
    l.add_builtin();
    let (set, report) = l.load();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let out = Shared::default();
    let sink = JsonLines::writer(Box::new(out.clone()), "test");
    let running = Running::spawn(RunOptions {
        sink: Some(Box::new(sink)),
        rules: Some(Arc::new(set)),
        ..RunOptions::new(cfg)
    })
    .unwrap_or_else(|e| panic!("agent failed to start: {e}"));
    (running, out)
}

#[test]
fn alerts_survive_a_flood_that_overflows_the_bulk_ring() {
    let test = "alerts_survive_a_flood_that_overflows_the_bulk_ring";
    if !vigil_tests::require_root(test) {
        return;
    }
    let _lock = vigil_tests::bpf_lock();
    let mut cfg = Config::default();
    cfg.agent.events = true;
    cfg.agent.housekeeping_interval_s = 1;
    // One page of bulk ring and a slow drain: the flood must overflow it.
    cfg.sensors.ring_buffer_bytes = 4096;
    cfg.sensors.wakeup_bytes = 2048;
    cfg.sensors.drain_interval_ms = 200;
    let (running, out) = start_agent(cfg);

    let dir = TempDir(PathBuf::from(format!(
        "/dev/shm/{}",
        vigil_tests::unique_marker("vg-prio")
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let marker = vigil_tests::unique_marker("prioflood");
    let flooders: Vec<Child> = (0..3)
        .map(|i| {
            Command::new(common::trigger_bin())
                .args(["open-burst", &format!("/etc/{marker}-{i}"), "200000"])
                .spawn()
                .unwrap()
        })
        .collect();
    let flood_pids: Vec<u32> = flooders.iter().map(Child::id).collect();
    std::thread::sleep(Duration::from_millis(50));

    // (rule, pid) of every alert-worthy action, each from its own process.
    let mut want: Vec<(&str, u32)> = Vec::new();
    for r in 0..ROUNDS {
        let exe = dir.0.join(format!("run-{r}"));
        std::fs::copy("/bin/true", &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let c = Command::new(&exe).spawn().unwrap();
        want.push(("exec_from_temp_dir", c.id()));
        c.wait_with_output().unwrap();

        let (pid, _) = common::trigger(&["open", "/etc/shadow"]);
        want.push(("shadow_file_read", pid));

        let f = dir.0.join(format!("suid-{r}"));
        std::fs::write(&f, b"x").unwrap();
        let c = Command::new("chmod").arg("u+s").arg(&f).spawn().unwrap();
        want.push(("setuid_bit_set", c.id()));
        assert!(c.wait_with_output().unwrap().status.success());
    }
    for mut c in flooders {
        c.wait().unwrap();
    }
    // Every alert arrives (the slow drain delivers within a few intervals).
    let missing = || {
        let recs = out.records();
        want.iter()
            .filter(|(rule, pid)| {
                !recs
                    .iter()
                    .any(|a| a["rule"]["id"] == *rule && a["process"]["pid"] == *pid)
            })
            .copied()
            .collect::<Vec<_>>()
    };
    let _ = vigil_tests::wait_for(Duration::from_secs(15), || {
        missing().is_empty().then_some(())
    });
    let summary = running.stop_and_detach().unwrap();
    assert_eq!(
        missing(),
        Vec::<(&str, u32)>::new(),
        "alerts lost under the flood"
    );
    let open = summary.kernel.get(&kind::OPEN).copied().unwrap_or_default();
    assert!(open.dropped > 0, "the bulk ring must overflow: {open:?}");
    assert!(
        open.demoted > 0,
        "the flooders must exceed their priority budget: {open:?}"
    );
    let prio_drops: u64 = summary.kernel.values().map(|c| c.dropped_prio).sum();
    assert_eq!(prio_drops, 0, "nothing lost on the priority ring");
    // Records after a bulk loss carry vigil.after_loss: the flooders' opens.
    let recs = out.records();
    assert!(
        recs.iter().any(|e| e["vigil"]["after_loss"] == true
            && flood_pids.iter().any(|p| e["process"]["pid"] == *p)),
        "some record after a loss carries vigil.after_loss"
    );
    let rendered = summary.render();
    assert!(
        rendered.contains("dropped on the priority ring"),
        "{rendered}"
    );
}

/// The per-process priority budget holds for a process whose threads race
/// for it on both CPUs: of the candidate records of a two-thread burst, at
/// most the burst plus one per interval of the process's lifetime (plus
/// the first) reach the priority ring; the rest are demoted and counted.
#[test]
fn threads_of_one_process_never_exceed_its_priority_budget() {
    let test = "threads_of_one_process_never_exceed_its_priority_budget";
    if !vigil_tests::require_root(test) {
        return;
    }
    let _lock = vigil_tests::bpf_lock();
    const RATE: u64 = 20_000;
    const BURST: u64 = 1;
    const THREADS: usize = 2;
    const PER_THREAD: u64 = 40_000;
    let mut cfg = Config::default();
    cfg.agent.events = true;
    cfg.sensors.priority_rate = RATE as u32;
    cfg.sensors.priority_burst = BURST as u32;
    let (running, _out) = start_agent(cfg);
    let marker = vigil_tests::unique_marker("budgetrace");
    let t0 = std::time::Instant::now();
    let st = Command::new(common::trigger_bin())
        .args([
            "open-burst-threads",
            &format!("/etc/{marker}"),
            &PER_THREAD.to_string(),
            &THREADS.to_string(),
        ])
        .status()
        .unwrap();
    let life = t0.elapsed();
    assert!(st.success());
    let summary = running.stop_and_detach().unwrap();
    let n = PER_THREAD * THREADS as u64;
    let interval_ns = 1_000_000_000 / RATE;
    // every slot the schedule can hand out in the process's lifetime
    let allowance = BURST + life.as_nanos() as u64 / interval_ns + 1;
    // (demotions of other processes only add to the count)
    let d = summary
        .kernel
        .get(&kind::OPEN)
        .map(|o| o.demoted)
        .unwrap_or(0);
    assert!(
        d + allowance >= n,
        "{d} of {n} opens demoted in {life:?}: {} reached the priority ring, \
         the budget allows at most {allowance}",
        n - d.min(n)
    );
    // and the budget did bind: most of the burst went to the bulk ring
    assert!(
        d > 0,
        "no open demoted: {:?}",
        summary.kernel.get(&kind::OPEN)
    );
}
