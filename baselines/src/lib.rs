//! vigil's baseline learner (issue #5 builds it out: per-program and
//! per-container profiles in sled, drift anomalies, whitelist export).
//!
//! Its place in the flow: the engine offers each enriched event to
//! [`Baselines::observe`] through the [`Observation`] trait defined here.
//! Today no profile is learned and `observe` reports no anomaly.

#![deny(missing_docs)]

/// What a baseline needs to know about an event.
pub trait Observation {
    /// Profile key: executable path (host) or container id.
    fn profile_key(&self) -> Option<&[u8]>;
    /// The behaviour observed (`exec:/usr/bin/ls`, `open:/etc/passwd:r`).
    fn behaviour(&self) -> Option<String>;
}

/// An anomaly: behaviour outside a promoted profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// Profile the behaviour is new to.
    pub profile: String,
    /// The new behaviour.
    pub behaviour: String,
}

/// The set of profiles.
#[derive(Debug, Default)]
pub struct Baselines {
    _private: (),
}

impl Baselines {
    /// No profiles.
    pub fn empty() -> Baselines {
        Baselines::default()
    }

    /// Records an observation; returns an anomaly when a monitored profile
    /// sees something new (never, until profiles exist).
    pub fn observe(&mut self, _obs: &dyn Observation) -> Option<Anomaly> {
        None
    }
}
