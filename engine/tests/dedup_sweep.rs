//! Root test of the kernel-side dedup map's sweep (`Sensors::sweep_dedup`,
//! the agent's housekeeping): the keys of a process that exited are
//! removed and their suppressed repeats counted; the keys of a live
//! process stay. The keys come from real failing opens of distinct paths
//! below a report path, each of which the open sensor remembers.

use std::process::Command;
use vigil_bpf::{Interest, SensorConfig, Sensors};

mod common;
use common::require_root;

#[test]
fn sweep_removes_the_keys_of_exited_processes_only() {
    if !require_root("sweep_removes_the_keys_of_exited_processes_only") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vigil-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let interest = Interest {
        report_paths: vec![format!("{}/", dir.display())],
        ..Interest::default()
    };
    // The agent's own process is never sensed (`self_tgid`); this test
    // is the process whose live keys must survive, so it is not "self".
    let cfg = SensorConfig {
        self_tgid: 0,
        ..SensorConfig::default()
    };
    let mut sensors = Sensors::load(&cfg, &interest).expect("load sensors");
    // A shell that opens 3,000 distinct missing files (each a new key) and
    // opens the first one again 5 times (repeats: suppressed, counted).
    let n = 3000;
    let script = format!(
        "for i in $(seq 1 {n}); do true < {d}/gone-$i; done 2>/dev/null; for i in 1 2 3 4 5; do true < {d}/gone-1; done 2>/dev/null; true",
        d = dir.display()
    );
    let child = Command::new("/bin/sh")
        .args(["-c", &script])
        .spawn()
        .expect("sh");
    let child_pid = child.id();
    let out = child.wait_with_output().expect("wait sh");
    assert!(out.status.success());
    // and this (live) process: 100 keys of its own
    let me = std::process::id();
    for i in 0..100 {
        let _ = std::fs::File::open(dir.join(format!("mine-{i}")));
    }
    // The closure is asked once per process that owns a key: who it is
    // asked about tells whose keys the map holds.
    let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let exists = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    // the shell is gone: its keys go, ours stay
    let (removed, suppressed) = sensors
        .sweep_dedup(|pid| {
            asked.borrow_mut().insert(pid);
            pid != child_pid && exists(pid)
        })
        .expect("sweep");
    assert!(
        asked.borrow().contains(&child_pid) && asked.borrow().contains(&me),
        "the sweep was asked about {:?}, not the shell {child_pid} and this process {me}",
        asked.borrow()
    );
    assert!(
        removed >= n,
        "{removed} keys removed, expected at least the shell's {n}"
    );
    assert!(
        suppressed >= 5,
        "{suppressed} suppressed repeats counted, expected at least the shell's 5"
    );
    // a second sweep finds no key of the shell and still those of this
    // process, which it now treats as gone: at least its 100 removed
    asked.borrow_mut().clear();
    let (again, _) = sensors
        .sweep_dedup(|pid| {
            asked.borrow_mut().insert(pid);
            pid != me && exists(pid)
        })
        .expect("sweep");
    assert!(
        !asked.borrow().contains(&child_pid),
        "the shell's keys survived the sweep"
    );
    assert!(
        asked.borrow().contains(&me),
        "this live process's keys were swept"
    );
    assert!(
        again >= 100,
        "{again} keys removed, expected this process's 100"
    );
    // and none of this process's is left
    asked.borrow_mut().clear();
    sensors
        .sweep_dedup(|pid| {
            asked.borrow_mut().insert(pid);
            exists(pid)
        })
        .expect("sweep");
    assert!(
        !asked.borrow().contains(&me),
        "this process's keys survived their sweep"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
