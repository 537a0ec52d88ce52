//! The record model every encoder consumes.
//!
//! A [`Record`] borrows everything from the caller: the engine fills one on
//! its stack per alert (no allocation beyond the ECS JSON it already built)
//! and hands it to [`crate::Outputs::submit`], which encodes it once per
//! sink and copies only the encoded bytes into that sink's queue.

use std::fmt;
use std::str::FromStr;

/// How bad a record is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Severity {
    /// Informational (events, metrics).
    #[default]
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// All severities, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowercase name (`info`, `low`, `medium`, `high`, `critical`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The syslog severity (RFC 5424 §6.2.1): info 6 (Informational),
    /// low 5 (Notice), medium 4 (Warning), high 3 (Error), critical 2
    /// (Critical). Alert (1) and Emergency (0) are left to the system.
    pub fn syslog(self) -> u8 {
        match self {
            Severity::Info => 6,
            Severity::Low => 5,
            Severity::Medium => 4,
            Severity::High => 3,
            Severity::Critical => 2,
        }
    }

    /// The CEF severity 0-10: info 1, low 3, medium 5, high 8, critical 10
    /// (CEF's bands: 0-3 Low, 4-6 Medium, 7-8 High, 9-10 Very-High).
    pub fn cef(self) -> u8 {
        match self {
            Severity::Info => 1,
            Severity::Low => 3,
            Severity::Medium => 5,
            Severity::High => 8,
            Severity::Critical => 10,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown severity `{s}` (info, low, medium, high, critical)"))
    }
}

/// ECS `event.kind` of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Kind {
    /// A rule or baseline fired.
    #[default]
    Alert,
    /// A plain event (with `--events`).
    Event,
    /// A metric or health record (drops, performance findings).
    Metric,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 3] = [Kind::Alert, Kind::Event, Kind::Metric];

    /// `alert`, `event` or `metric`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Alert => "alert",
            Kind::Event => "event",
            Kind::Metric => "metric",
        }
    }

    /// Bit for kind sets ([`crate::Filter`]).
    pub(crate) fn bit(self) -> u8 {
        match self {
            Kind::Alert => 1,
            Kind::Event => 2,
            Kind::Metric => 4,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown event kind `{s}` (alert, event, metric)"))
    }
}

/// The value of an extra field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// Bytes (usually UTF-8; anything else is replaced by U+FFFD on output).
    Str(&'a [u8]),
    /// An unsigned number.
    U64(u64),
    /// A signed number.
    I64(i64),
    /// A boolean.
    Bool(bool),
}

impl<'a> Value<'a> {
    /// A string value.
    pub fn str(s: &'a str) -> Value<'a> {
        Value::Str(s.as_bytes())
    }

    /// Appends the value's text (numbers in decimal, booleans as
    /// `true`/`false`, strings as they are) to `out`.
    pub(crate) fn text_into(&self, out: &mut Vec<u8>) {
        match *self {
            Value::Str(s) => out.extend_from_slice(s),
            Value::U64(v) => crate::json::write_u64(out, v),
            Value::I64(v) => {
                if v < 0 {
                    out.push(b'-');
                }
                crate::json::write_u64(out, v.unsigned_abs());
            }
            Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        }
    }
}

/// One record to deliver, borrowed from the caller.
///
/// Build it with a struct literal and `..Record::default()`:
///
/// ```
/// use vigil_outputs::{Kind, Record, Severity, Value};
/// let json = br#"{"event":{"kind":"alert"}}"#;
/// let extra = [("process.command_line", Value::str("cat /etc/shadow")),
///              ("user.id", Value::U64(0))];
/// let rec = Record {
///     time_ns: 1_764_034_784_123_456_789,
///     kind: Kind::Alert,
///     severity: Severity::High,
///     rule_id: Some("shadow_read"),
///     rule_name: Some("Read of /etc/shadow"),
///     message: b"cat read /etc/shadow",
///     host: "web-1",
///     pid: Some(4242),
///     executable: Some(b"/usr/bin/cat"),
///     fields: &extra,
///     json,
///     ..Record::default()
/// };
/// assert_eq!(rec.severity.syslog(), 3);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Record<'a> {
    /// When it happened, nanoseconds since the Unix epoch (UTC).
    pub time_ns: u64,
    /// ECS `event.kind`.
    pub kind: Kind,
    /// Severity (alerts: the rule's; events and metrics: usually info).
    pub severity: Severity,
    /// `rule.id` (RFC 5424 MSGID, CEF Signature ID).
    pub rule_id: Option<&'a str>,
    /// `rule.name` (CEF Name).
    pub rule_name: Option<&'a str>,
    /// `rule.ruleset`.
    pub ruleset: Option<&'a str>,
    /// A one-line human summary (`message`), syslog MSG.
    pub message: &'a [u8],
    /// `host.name` of the machine the record is about (syslog HOSTNAME).
    pub host: &'a str,
    /// `process.pid` of the process the record is about.
    pub pid: Option<u32>,
    /// `process.executable`.
    pub executable: Option<&'a [u8]>,
    /// Further ECS fields, in the order they should appear in RFC 5424
    /// structured data and CEF extensions (see `docs/outputs.md` for the
    /// CEF mapping of each ECS name).
    pub fields: &'a [(&'a str, Value<'a>)],
    /// The complete ECS JSON object (no trailing newline); the JSON
    /// encoder passes it through unchanged.
    pub json: &'a [u8],
}
