//! Beside the event path, the performance collectors: every
//! `perf.interval_s` the agent reads the scheduler sensors' maps ([`sched`]:
//! run-queue latency per cgroup, CPU steal, the perf history `vigil report`
//! draws), the perfsys maps ([`perfsys`]: failing syscalls, TCP
//! retransmits, block I/O latency, vigil's own cost) and the kernel-work
//! tools' maps ([`ktools`]: kmem, kpages, slabratetop, numamove, workq,
//! softirqs, hardirqs, tasklets, behind the one [`collector::Collector`]
//! shape). Their records go to [`crate::encode`] and the outputs like any
//! event.
//!
//! The scheduler collector's items are re-exported here (`perf::History`, ...).

pub mod collector;
pub mod ktools;
pub mod perfsys;
pub mod profile;
pub mod sched;
pub mod symbolize;

pub use sched::*;

/// Checks `text` against the golden file `engine/tests/golden/<name>`
/// byte for byte (writing it there first when `VIGIL_BLESS` is set).
#[cfg(test)]
pub(crate) fn assert_golden(name: &str, text: &[u8]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("VIGIL_BLESS").is_some() {
        std::fs::write(&path, text).unwrap();
    }
    let want = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        String::from_utf8_lossy(text),
        String::from_utf8_lossy(&want)
    );
}
