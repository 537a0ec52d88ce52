//! Record and replay: `vigil record` writes the raw kernel records and the
//! host answers enrichment needed to a capture file ([`mod@format`]); `vigil
//! replay` ([`replay`]) feeds a capture back through the same pipeline
//! ([`crate::pipeline`]: enrich, detect, encode) offline and without root.
//!
//! The capture format's items are re-exported here (`capture::frame`, ...).

pub mod alert;
pub mod format;
pub mod replay;

pub use format::*;
