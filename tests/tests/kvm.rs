//! KVM exits as root: a tiny guest
//! (`tests/fixtures/kvmtiny.c`, compiled here with clang) makes N port-I/O
//! exits; vigil's per-VM counters, kept in a BPF map with no event per exit,
//! must equal exactly what the guest made.

use std::path::PathBuf;
use std::process::Command;
use vigil_engine::agent::{RunOptions, Running};
use vigil_engine::config::Config;

mod common;
use common::TempDir;

#[test]
fn kvm_port_io_exits_are_counted_exactly_per_vm() {
    if !vigil_tests::require_root("kvm_port_io_exits_are_counted_exactly_per_vm") {
        return;
    }
    assert!(
        std::path::Path::new("/dev/kvm").exists(),
        "/dev/kvm is missing: this machine kind is expected to run KVM guests"
    );
    let _lock = vigil_tests::bpf_lock();
    let dir = TempDir(std::env::temp_dir().join(vigil_tests::unique_marker("vigil-kvm")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/kvmtiny.c");
    let bin = dir.0.join("kvmtiny");
    let cc = if Command::new("clang-19").arg("--version").output().is_ok() {
        "clang-19"
    } else {
        "cc"
    };
    let st = Command::new(cc)
        .arg("-O2")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "{cc} failed to build kvmtiny");

    let mut cfg = Config::default();
    cfg.agent.events = false;
    cfg.agent.housekeeping_interval_s = 1;
    let agent = Running::spawn(RunOptions::new(cfg)).expect("agent starts");
    let n = 50u64;
    let child = Command::new(&bin).arg(n.to_string()).output().unwrap();
    let pid = {
        // the pid is the child's; Command::output waited for it
        let out = String::from_utf8_lossy(&child.stdout).to_string();
        assert!(
            child.status.success(),
            "kvmtiny failed: {out} {}",
            String::from_utf8_lossy(&child.stderr)
        );
        out
    };
    let _ = pid;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let summary = agent.stop_and_detach().expect("agent stops");
    // The guest's VM process: the one with port 0x11 (its "done" port) once.
    let vm: Vec<u32> = summary
        .pipeline
        .kvm
        .iter()
        .filter(|(k, c)| k.1 == vigil_bpf::abi::kvm::PIO && k.2 == 0x11 && **c == 1)
        .map(|(k, _)| k.0)
        .collect();
    assert_eq!(vm.len(), 1, "kvm counts: {:?}", summary.pipeline.kvm);
    let pio10 = summary
        .pipeline
        .kvm
        .get(&(vm[0], vigil_bpf::abi::kvm::PIO, 0x10))
        .copied()
        .unwrap_or(0);
    assert_eq!(
        pio10, n,
        "port 0x10 exits counted for the guest: {:?}",
        summary.pipeline.kvm
    );
    let rendered = summary.render();
    assert!(
        rendered.contains(&format!("kvm: VM process {}: ", vm[0])),
        "{rendered}"
    );
}
