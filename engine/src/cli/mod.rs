//! The `vigil` command line: argument parsing and one module per command.
//! `run`/`record` start the agent ([`crate::pipeline`]), `replay` runs a
//! capture through it ([`crate::capture`]); the others work offline.

pub mod baseline_cmd;
pub mod probe;
pub mod report;
