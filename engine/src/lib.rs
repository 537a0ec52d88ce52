//! vigil's engine: wires the sensors (`vigil-bpf`), enrichment, the rule
//! engine (`vigil-rules`), baselines (`vigil-baselines`) and outputs
//! (`vigil-outputs`), and holds the `vigil` binary.
//!
//! ```text
//! bpf/ (C) -> ring buffer -> decode -> enrich (process table, users,
//!   containers) -> rules / baselines -> ECS JSON -> sinks
//! ```

#![deny(missing_docs)]

pub mod agent;
pub mod baseline_cmd;
pub mod capture;
pub mod config;
pub mod container;
pub mod detect;
pub mod dns;
pub mod ecs;
pub mod enrich;
pub mod host;
pub mod learn;
pub mod lifecycle;
pub mod perf;
pub mod perfsys;
pub mod privs;
pub mod probe;
pub mod replay;
pub mod report;
pub mod telemetry;
pub mod userns;
