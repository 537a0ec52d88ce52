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
