//! Beside the event path, the performance collectors: every
//! `perf.interval_s` the agent reads the scheduler sensors' maps ([`sched`]:
//! run-queue latency per cgroup, CPU steal, the perf history `vigil report`
//! draws) and the perfsys maps ([`perfsys`]: failing syscalls, TCP
//! retransmits, block I/O latency, vigil's own cost). Their records go to
//! [`crate::encode`] and the outputs like any event.
//!
//! The scheduler collector's items are re-exported here (`perf::History`, ...).

pub mod perfsys;
pub mod sched;

pub use sched::*;
