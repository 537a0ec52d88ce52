//! vigil's rule engine (issue #4 builds it out: vigil YAML rules and native
//! Sigma compiled to one multi-pattern matcher).
//!
//! Its place in the flow: the engine hands every enriched event to
//! [`RuleSet::evaluate`] through the [`Fields`] trait, which this crate
//! defines and the engine implements, so this leaf crate does not depend on
//! the engine's event type (ripgrep's `matcher` / `regex` split).
//!
//! Today the set holds no rules: `evaluate` returns no matches and the
//! engine's default output (alerts only) is therefore silent until rules
//! land. This is deliberate and documented in the README.

#![deny(missing_docs)]

/// A field value as rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// Bytes (paths, command lines; need not be UTF-8).
    Str(&'a [u8]),
    /// Integer (pids, ports, uids).
    Int(i64),
}

/// Access to an event's fields by their ECS names (`process.executable`).
pub trait Fields {
    /// The event category (`process`, `file`, `network`, ...).
    fn category(&self) -> &str;
    /// The value of a field, if the event has it.
    fn field(&self, name: &str) -> Option<Value<'_>>;
}

/// A rule that matched an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Rule id.
    pub id: String,
    /// Rule name.
    pub name: String,
    /// Severity (`low`, `medium`, `high`, `critical`).
    pub severity: String,
}

/// A compiled set of rules.
#[derive(Debug, Default)]
pub struct RuleSet {
    _private: (),
}

impl RuleSet {
    /// A set with no rules.
    pub fn empty() -> RuleSet {
        RuleSet::default()
    }

    /// Number of rules loaded.
    pub fn len(&self) -> usize {
        0
    }

    /// Whether no rule is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rules matching `event`.
    pub fn evaluate(&self, _event: &dyn Fields) -> Vec<Match> {
        Vec::new()
    }
}
