//! Stage 2, enrichment: a decoded kernel record becomes an `Event` with its
//! process (the process table kept by fork/exec/exit, [`process`]), user
//! names ([`userns`] inside user namespaces), container ([`container`],
//! lifecycle and escapes in [`lifecycle`]) and the domain a connection went
//! to ([`dns`]). Everything read from the host goes through [`host`], so a
//! capture can replay it. The event goes next to [`crate::detect`] and
//! [`crate::encode`].
//!
//! The process table's items are re-exported here (`enrich::Event`, ...).

pub mod container;
pub mod dns;
pub mod dnsnames;
pub mod hash;
pub mod host;
pub mod idmap;
pub mod lifecycle;
pub mod overwrite;
pub mod process;
pub mod userns;

pub use process::*;
