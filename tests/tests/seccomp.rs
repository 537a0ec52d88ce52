//! Seccomp round trip as root, learned for real: the agent runs with
//! baselines while a busybox workload runs in runc containers; the kernel's
//! syscall-set sensor learns what busybox does; the exported OCI seccomp
//! profile then lets runc run the same workload (with and without
//! noNewPrivileges) and denies a syscall outside the learned set.

use std::time::Duration;
use vigil_baselines::Baselines;
use vigil_engine::agent::{RunOptions, Running};
use vigil_engine::config::Config;

mod common;
use common::TempDir;

#[test]
fn seccomp_profile_learned_by_the_sensor_runs_the_workload_and_denies_the_rest() {
    if !vigil_tests::require_root(
        "seccomp_profile_learned_by_the_sensor_runs_the_workload_and_denies_the_rest",
    ) {
        return;
    }
    let _lock = vigil_tests::bpf_lock();
    let rootfs_src = vigil_tests::busybox_rootfs();
    let tmp = TempDir(std::env::temp_dir().join(vigil_tests::unique_marker("vigil-seccomp")));
    std::fs::create_dir_all(&tmp.0).unwrap();
    let bundle = vigil_rootgate::runc::Bundle::busybox(
        &tmp.0,
        &rootfs_src.join("bin/busybox"),
        &["sh", "cat", "echo", "mkdir"],
        "vigil-seccomp",
    );
    let id = |n: &str| format!("vigil-seccomp-{}-{n}", std::process::id());
    let workload = "echo hi; cat /etc/hostname";
    let none = serde_json::Value::Null;

    // 1. Learn: the agent runs with baselines; the workload runs a few times
    //    (the first run of a new binary is learned from when vigil saw its
    //    exec; later runs from their exec on, in the kernel).
    let mut cfg = Config::default();
    cfg.agent.events = false;
    cfg.agent.housekeeping_interval_s = 1;
    cfg.sensors.drain_interval_ms = 5;
    cfg.baselines.auto_promote = false;
    cfg.baselines.syscalls = true;
    let db = tmp.0.join("db");
    let b = Baselines::open(&db, cfg.baselines.learner()).unwrap();
    let agent = Running::spawn(RunOptions {
        baselines: Some(b),
        ..RunOptions::new(cfg.clone())
    })
    .expect("agent starts");
    for i in 0..4 {
        let (ok, out, err) = bundle.run(&id(&format!("learn{i}")), workload, true, &none);
        assert!(
            ok && out == "hi\nvigil-seccomp\n",
            "learning run {i}: {out} {err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    agent.stop_and_detach().expect("agent stops");

    // 2. Export the profile of busybox that learned the most syscalls.
    let b = Baselines::open(&db, cfg.baselines.learner()).unwrap();
    let best = b
        .list()
        .into_iter()
        .filter(|s| s.profile.contains("/bin/busybox"))
        .map(|s| {
            let n = b.show(&s.profile).map(|d| d.syscalls.len()).unwrap_or(0);
            (n, s.profile)
        })
        .max()
        .expect("a busybox profile was learned");
    assert!(
        best.0 >= 10,
        "only {} syscalls learned for {}",
        best.0,
        best.1
    );
    eprintln!("learned {} syscalls for {}", best.0, best.1);
    let json = b.export_seccomp(&best.1).unwrap();
    drop(b);
    let seccomp: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        !json.contains("\"mkdir\""),
        "mkdir was never made, yet learned"
    );

    // 3. The same workload runs under the learned profile ...
    for nnp in [true, false] {
        let (ok, out, err) = bundle.run(&id(&format!("ok{nnp}")), workload, nnp, &seccomp);
        assert!(
            ok && out == "hi\nvigil-seccomp\n",
            "noNewPrivileges={nnp}: ok={ok}\nstdout: {out}\nstderr: {err}\nprofile: {json}"
        );
    }
    // 4. ... and a syscall it never made is denied.
    let (_, out, err) = bundle.run(
        &id("deny"),
        "mkdir /dev/shm/x || echo DENIED",
        true,
        &seccomp,
    );
    assert_eq!(out, "DENIED\n", "mkdir was not denied (stderr: {err})");
}
