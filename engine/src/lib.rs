//! vigil's engine: wires the sensors (`vigil-bpf`), enrichment, the rule
//! engine (`vigil-rules`), baselines (`vigil-baselines`) and outputs
//! (`vigil-outputs`), and holds the `vigil` binary.
//!
//! The modules follow an event's way from the kernel to an output:
//!
//! ```text
//! bpf/ (C) -> ring buffer -> pipeline/  agent loop: read, decode, drive the stages
//!                              |
//!                              v
//!                            enrich/    process table, users, containers, DNS, host
//!                              |
//!                              v
//!                            detect/    rules, baselines -> alerts
//!                              |
//!                              v
//!                            encode/    ECS JSON
//!                              |
//!                              v
//!                            outputs (vigil-outputs): stdout, files, syslog
//!
//! beside the path:  perf/     scheduler and system collectors (records -> encode/)
//!                   capture/  record raw events to a file; replay one through pipeline/
//!                   cli/      the `vigil` commands; config.rs: the TOML configuration
//! ```
//!
//! One module, [`event`], owns the event model (the enriched `Event`, the
//! container lifecycle records and escapes): the stages import it, not
//! each other.
//!
//! The modules are also reachable by their short names at the crate root
//! (`vigil_engine::agent`, `vigil_engine::ecs`, ...).

#![deny(missing_docs)]

pub mod capture;
pub mod cli;
pub mod config;
pub mod detect;
pub mod encode;
pub mod enrich;
pub mod event;
pub mod logging;
pub mod perf;
pub mod pipeline;

pub use capture::replay;
pub use cli::{baseline_cmd, probe, report};
pub use detect::learn;
pub use encode::ecs;
pub use enrich::{container, dns, hash, host, lifecycle, userns};
pub use perf::perfsys;
pub use pipeline::{agent, privs, telemetry};
