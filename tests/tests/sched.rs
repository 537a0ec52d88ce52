//! Root tests of the scheduler sensors (issue #7 items 1 and 5): run-queue
//! latency is attributed to the cgroup of the task that waited, and
//! context switches between pid namespaces are counted.
//!
//! Three container-like processes (own cgroup2 child, own pid namespace):
//! `hog` runs three spinning shells pinned to CPU 0; `victim` sleeps 1 ms
//! and wakes, in a loop, pinned to CPU 0 too; `quiet` does what `victim`
//! does on CPU 1, where nothing of the test spins (the control: the
//! machine's own noise). vigil must report the victim's wakeups waiting
//! far longer than the quiet one's, under the victim's cgroup, and the
//! hog's time as preemption waits under the hog's cgroup.

mod common;

use common::TempDir;
use std::time::Duration;
use vigil_bpf::sched::{RQ_PREEMPTED, RQ_WAKEUP, RqHist};
use vigil_engine::agent::{RunOptions, Running};
use vigil_engine::config::Config;
use vigil_engine::perf;
use vigil_tests::NsContainer;

fn hist(s: &vigil_engine::agent::Summary, cg: u64, kind: u32) -> RqHist {
    s.pipeline
        .runqlat
        .get(&(cg, kind))
        .copied()
        .unwrap_or_default()
}

fn show(name: &str, h: &RqHist) -> String {
    format!(
        "{name}: n={} p50={:?} p90={:?} slots={:?}",
        perf::total(&h.slots),
        perf::quantile_us(&h.slots, 0.5),
        perf::quantile_us(&h.slots, 0.9),
        &h.slots[..20]
    )
}

#[test]
fn runqlat_attributes_wait_to_the_waiting_cgroup_and_pidnss_counts_switches() {
    if !vigil_tests::require_root("runqlat_attributes_wait_to_the_waiting_cgroup") {
        return;
    }
    let _lock = vigil_tests::bpf_lock();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = TempDir(std::env::temp_dir().join(vigil_tests::unique_marker("vigil-sched")));
    std::fs::create_dir_all(&dir.0).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut cfg = Config::default();
    cfg.agent.events = false;
    cfg.agent.data_dir = dir.0.clone();
    cfg.perf.interval_s = 1;
    let agent = Running::spawn(RunOptions {
        perf_history: true,
        ..RunOptions::new(cfg)
    })
    .expect("agent starts");
    let sleeper = "while :; do usleep 1000; done";
    let hog = NsContainer::start(
        "sched-hog",
        "exec taskset 1 sh -c 'for i in 1 2 3; do (while :; do :; done) & done; wait'",
    )
    .expect("hog container");
    let victim = NsContainer::start("sched-victim", &format!("exec taskset 1 sh -c '{sleeper}'"))
        .expect("victim container");
    let quiet = (cpus >= 2).then(|| {
        NsContainer::start("sched-quiet", &format!("exec taskset 2 sh -c '{sleeper}'"))
            .expect("quiet container")
    });
    std::thread::sleep(Duration::from_millis(3500));
    let summary = agent.stop_and_detach().expect("agent stops");
    let (hog_cg, victim_cg) = (hog.cgroup_id(), victim.cgroup_id());
    let (hog_ns, victim_ns) = (hog.pidns_inode(), victim.pidns_inode());
    let quiet_cg = quiet.as_ref().map(|q| q.cgroup_id());
    drop(hog);
    drop(victim);
    drop(quiet);

    let vw = hist(&summary, victim_cg, RQ_WAKEUP);
    let hp = hist(&summary, hog_cg, RQ_PREEMPTED);
    let hw = hist(&summary, hog_cg, RQ_WAKEUP);
    let qw = quiet_cg.map(|q| hist(&summary, q, RQ_WAKEUP));
    let all = format!(
        "{}\n{}\n{}\n{}",
        show("victim wakeup", &vw),
        show("hog preempted", &hp),
        show("hog wakeup", &hw),
        qw.as_ref().map(|q| show("quiet wakeup", q)).unwrap_or_default()
    );
    eprintln!("{all}");
    panic!("measure");
}
