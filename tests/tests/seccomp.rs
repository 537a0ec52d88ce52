//! Seccomp round trip as root, learned for real: the agent runs with
//! baselines while a busybox workload runs in runc containers; the kernel's
//! syscall-set sensor learns what busybox does; the exported OCI seccomp
//! profile then lets runc run the same workload (with and without
//! noNewPrivileges) and denies a syscall outside the learned set.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use vigil_baselines::Baselines;
use vigil_engine::agent::{RunOptions, Running};
use vigil_engine::config::Config;

mod common;
use common::TempDir;

/// Deletes the container however the test ends.
struct Ctr(String);
impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["delete", "-f", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `script` in the container; returns (success, stdout, stderr), at
/// most 4 KiB of each, and kills the container after 30 s.
fn run(
    bundle: &Path,
    id: &str,
    script: &str,
    nnp: bool,
    seccomp: &serde_json::Value,
) -> (bool, String, String) {
    let cfg_path = bundle.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    c["process"]["args"] = serde_json::json!(["sh", "-c", script]);
    c["process"]["noNewPrivileges"] = serde_json::json!(nnp);
    c["linux"]["seccomp"] = seccomp.clone();
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    let _guard = Ctr(id.to_string());
    let (out_p, err_p) = (
        bundle.join(format!("{id}.out")),
        bundle.join(format!("{id}.err")),
    );
    let mut child = Command::new("runc")
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_p).unwrap())
        .stderr(std::fs::File::create(&err_p).unwrap())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let ok = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.success();
        }
        if start.elapsed() > std::time::Duration::from_secs(30) {
            let _ = Command::new("runc").args(["delete", "-f", id]).status();
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let head = |p: &Path| {
        let mut b = std::fs::read(p).unwrap_or_default();
        b.truncate(4096);
        String::from_utf8_lossy(&b).into_owned()
    };
    (ok, head(&out_p), head(&err_p))
}

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
    let rootfs = tmp.0.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
    std::fs::copy(rootfs_src.join("bin/busybox"), rootfs.join("bin/busybox")).unwrap();
    for l in ["sh", "cat", "echo", "mkdir"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(l)).unwrap();
    }
    std::fs::write(rootfs.join("etc/hostname"), "vigil-seccomp\n").unwrap();
    let bundle = tmp.0.join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    let st = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .status()
        .unwrap();
    assert!(st.success());
    let cfg_path = bundle.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    c["root"] = serde_json::json!({"path": rootfs, "readonly": true});
    c["process"]["terminal"] = serde_json::json!(false);
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
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
        let (ok, out, err) = run(&bundle, &id(&format!("learn{i}")), workload, true, &none);
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
        let (ok, out, err) = run(&bundle, &id(&format!("ok{nnp}")), workload, nnp, &seccomp);
        assert!(
            ok && out == "hi\nvigil-seccomp\n",
            "noNewPrivileges={nnp}: ok={ok}\nstdout: {out}\nstderr: {err}\nprofile: {json}"
        );
    }
    // 4. ... and a syscall it never made is denied.
    let (_, out, err) = run(
        &bundle,
        &id("deny"),
        "mkdir /dev/shm/x || echo DENIED",
        true,
        &seccomp,
    );
    assert_eq!(out, "DENIED\n", "mkdir was not denied (stderr: {err})");
}
