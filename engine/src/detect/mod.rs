//! Stage 3, detection: the enriched event is matched against the rules
//! ([`rules`]: loading rule sources, the rule engine's view of an event,
//! alert records) and fed to the baselines ([`learn`]: observations in,
//! anomalies out as alerts). Alerts and events go next to
//! [`crate::encode`] and the outputs.
//!
//! The rules glue's items are re-exported here (`detect::load_rules`, ...).

pub mod learn;
pub mod response;
pub mod rules;
pub mod tuning;

pub use rules::*;
