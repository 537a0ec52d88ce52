//! Documents: what `show`, `diff` and `list` return and what the YAML
//! whitelist export/import reads and writes.
//!
//! Items are text: paths and other byte strings go through
//! [`crate::escape`] (`\\` and `\xNN` for bytes that are not printable
//! UTF-8), so non-UTF-8 paths survive a YAML round trip exactly.

use serde::{Deserialize, Serialize};

use crate::profile::{Kind, Mode};

/// Version of the YAML whitelist format.
pub const WHITELIST_FORMAT: u32 = 1;

/// A YAML whitelist file: one or more profiles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Whitelist {
    /// Format version ([`WHITELIST_FORMAT`]).
    pub vigil_baselines: u32,
    /// The profiles.
    pub profiles: Vec<ProfileDoc>,
}

/// One learned item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDoc {
    /// The item in generalised, escaped text form (see [`Kind`]).
    pub item: String,
    /// Files: access modes seen (`r`, `w`, `x`, `c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
    /// First seen, ns since the epoch.
    pub first_seen_ns: i64,
    /// Last seen, ns since the epoch.
    pub last_seen_ns: i64,
    /// Times seen.
    pub count: u64,
    /// First seen after promotion (reported as an anomaly then).
    #[serde(default, skip_serializing_if = "is_false")]
    pub since_promotion: bool,
    /// Files: access modes first seen after promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_access: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One profile with its sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProfileDoc {
    /// Profile key (escaped; see [`crate::profile_keys`]).
    pub profile: String,
    /// Mode.
    pub mode: Mode,
    /// Created, ns since the epoch.
    pub created_ns: i64,
    /// Last observation, ns since the epoch.
    pub last_seen_ns: i64,
    /// Observations counted.
    pub observations: u64,
    /// Promoted at, ns since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_ns: Option<i64>,
    /// First event loss while learning, ns since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lossy_since_ns: Option<i64>,
    /// Events lost while learning.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lost_events: u64,
    /// Process names seen running it (comm, `argv[0]`'s file name), escaped:
    /// `redis-server` for Debian's `/usr/bin/redis-check-rdb`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Executables spawned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spawn: Vec<ItemDoc>,
    /// Files opened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file: Vec<ItemDoc>,
    /// Outbound connections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connect: Vec<ItemDoc>,
    /// Listening ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<ItemDoc>,
    /// Inbound connections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept: Vec<ItemDoc>,
    /// Capabilities used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capability: Vec<ItemDoc>,
    /// uid transitions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid: Vec<ItemDoc>,
    /// Syscall names (x86_64; `sys_<n>` for numbers without a name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<String>,
    /// Syscalls first seen after promotion (a subset of `syscalls`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscalls_since_promotion: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ProfileDoc {
    /// The item list of a set kind (`None` for [`Kind::Syscall`]).
    pub fn set(&self, kind: Kind) -> Option<&Vec<ItemDoc>> {
        Some(match kind {
            Kind::Spawn => &self.spawn,
            Kind::File => &self.file,
            Kind::Connect => &self.connect,
            Kind::Listen => &self.listen,
            Kind::Accept => &self.accept,
            Kind::Capability => &self.capability,
            Kind::Uid => &self.uid,
            Kind::Syscall => return None,
        })
    }

    pub(crate) fn set_mut(&mut self, kind: Kind) -> Option<&mut Vec<ItemDoc>> {
        Some(match kind {
            Kind::Spawn => &mut self.spawn,
            Kind::File => &mut self.file,
            Kind::Connect => &mut self.connect,
            Kind::Listen => &mut self.listen,
            Kind::Accept => &mut self.accept,
            Kind::Capability => &mut self.capability,
            Kind::Uid => &mut self.uid,
            Kind::Syscall => return None,
        })
    }
}

/// One line of `vigil baseline list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileSummary {
    /// Profile key (escaped).
    pub profile: String,
    /// Mode.
    pub mode: Mode,
    /// Created, ns since the epoch.
    pub created_ns: i64,
    /// Last observation, ns since the epoch.
    pub last_seen_ns: i64,
    /// Last time learning added an item, ns since the epoch.
    pub last_new_ns: i64,
    /// Promoted at.
    pub promoted_ns: Option<i64>,
    /// Observations counted.
    pub observations: u64,
    /// Items per kind, in [`Kind::ALL`] order.
    pub counts: [usize; 8],
    /// Items (and syscalls) first seen after promotion.
    pub since_promotion: usize,
    /// Events were lost while this profile learned (first loss).
    pub lossy_since_ns: Option<i64>,
    /// Events lost while learning.
    pub lost_events: u64,
    /// New items not recorded because a set was full.
    pub overflowed: u64,
    /// Process names seen running it (comm, `argv[0]`'s file name), escaped.
    pub names: Vec<String>,
    /// Whether it looks stable enough to promote.
    pub readiness: Readiness,
}

/// Whether a profile looks stable enough to promote (`vigil baseline list`,
/// column `ready`): the conditions of automatic promotion
/// ([`crate::Config::quiet_period`], [`crate::Config::min_observations`],
/// no overflow, a loss-free quiet period after any event loss), judged at
/// the time `list` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// Already promoted (monitoring or locked). Shown `-`.
    Promoted,
    /// Nothing new for a quiet period, enough observations: promote it (an
    /// agent with `auto_promote` does at its next tick). Shown `yes`.
    Ready,
    /// Learned something new (or lost events) less than a quiet period
    /// ago: ready in this many ns if nothing new comes. Shown `~12m` (one
    /// word, so the table splits on whitespace).
    Quiet {
        /// Time left, ns.
        remaining_ns: i64,
    },
    /// Quiet, but fewer observations than needed. Shown `obs+37`.
    Observations {
        /// Observations still needed.
        missing: u64,
    },
    /// A set reached `max_items_per_set`: too varied to promote
    /// automatically; review it. Shown `full`.
    Overflowed,
}

impl Readiness {
    /// The `ready` column's text.
    pub fn label(&self) -> String {
        match self {
            Readiness::Promoted => "-".into(),
            Readiness::Ready => "yes".into(),
            Readiness::Quiet { remaining_ns } => format!("~{}", human_duration(*remaining_ns)),
            Readiness::Observations { missing } => format!("obs+{missing}"),
            Readiness::Overflowed => "full".into(),
        }
    }
}

/// Renders `list` output as a table (`age` and `quiet` relative to `now_ns`;
/// `ready` as [`Readiness::label`]; `names` comma-separated).
pub fn render_list(rows: &[ProfileSummary], now_ns: i64) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:>8} {:>8} {:<8} {:>9} {:>6} {:>6} {:>6} {:>6} {:>6} {:>4} {:>4} {:>4} {:>5} {:<5} {:<16} profile",
        "mode",
        "age",
        "quiet",
        "ready",
        "obs",
        "spawn",
        "file",
        "conn",
        "listen",
        "accept",
        "cap",
        "uid",
        "sys",
        "new",
        "loss",
        "names"
    );
    for r in rows {
        let c = r.counts;
        let _ = writeln!(
            s,
            "{:<10} {:>8} {:>8} {:<8} {:>9} {:>6} {:>6} {:>6} {:>6} {:>6} {:>4} {:>4} {:>4} {:>5} {:<5} {:<16} {}",
            r.mode.name(),
            human_duration(now_ns - r.created_ns),
            human_duration(now_ns - r.last_new_ns),
            r.readiness.label(),
            r.observations,
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            c[6],
            c[7],
            r.since_promotion,
            if r.lossy_since_ns.is_some() {
                "yes"
            } else {
                "no"
            },
            if r.names.is_empty() {
                "-".to_string()
            } else {
                r.names.join(",")
            },
            r.profile
        );
    }
    s
}

/// `90s`, `12m`, `5h`, `3d`.
pub fn human_duration(ns: i64) -> String {
    let s = ns.max(0) / 1_000_000_000;
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}
