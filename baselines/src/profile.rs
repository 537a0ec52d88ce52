//! One profile's learned sets and mode, and the learning/monitoring rules.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::observation::{SYSCALL_WORDS, SyscallSet};

/// Kinds of learned behaviour; each has its own set (and sled tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Executables spawned (item: generalised child path).
    Spawn,
    /// Files opened (item: generalised path; access bits kept per entry).
    File,
    /// Outbound connections (item: `tcp/203.0.113.5:443`, `udp/[::1]:53`).
    Connect,
    /// Listening ports (item: `tcp/8080`).
    Listen,
    /// Inbound connections (item: `tcp/8080`, or `tcp/8080 from 198.51.100.7`
    /// when inbound peers are learned; the ephemeral remote port never is).
    Accept,
    /// Capabilities used (item: `CAP_NET_BIND_SERVICE`).
    Capability,
    /// uid transitions (item: `0->33`).
    Uid,
    /// Syscalls made (item: syscall name, or `sys_<n>` if unknown).
    Syscall,
}

impl Kind {
    /// Kinds stored as item sets (all but [`Kind::Syscall`], a bitmap).
    pub const SETS: [Kind; 7] = [
        Kind::Spawn,
        Kind::File,
        Kind::Connect,
        Kind::Listen,
        Kind::Accept,
        Kind::Capability,
        Kind::Uid,
    ];

    /// Every kind.
    pub const ALL: [Kind; 8] = [
        Kind::Spawn,
        Kind::File,
        Kind::Connect,
        Kind::Listen,
        Kind::Accept,
        Kind::Capability,
        Kind::Uid,
        Kind::Syscall,
    ];

    /// Lower-case name (also the sled tree name).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Spawn => "spawn",
            Kind::File => "file",
            Kind::Connect => "connect",
            Kind::Listen => "listen",
            Kind::Accept => "accept",
            Kind::Capability => "capability",
            Kind::Uid => "uid",
            Kind::Syscall => "syscall",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a profile does with behaviour outside its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Records everything; reports nothing.
    #[default]
    Learning,
    /// Reports each new item once, then records it as seen since promotion.
    Monitoring,
    /// Reports new items (once per agent run) and never adds to the baseline.
    Locked,
}

impl Mode {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Learning => "learning",
            Mode::Monitoring => "monitoring",
            Mode::Locked => "locked",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Entry flag: the item was first seen after promotion.
pub(crate) const F_SINCE_PROMOTION: u8 = 1;

/// One learned item's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: u64,
    /// Files: every access seen.
    pub access: u8,
    /// Files: access bits first seen after promotion.
    pub new_access: u8,
    /// `F_*` flags.
    pub flags: u8,
}

impl Entry {
    pub(crate) const ENCODED_LEN: usize = 27;

    pub(crate) fn new(now: i64, access: u8, flags: u8) -> Entry {
        Entry {
            first_seen: now,
            last_seen: now,
            count: 1,
            access,
            new_access: 0,
            flags,
        }
    }

    pub(crate) fn since_promotion(&self) -> bool {
        self.flags & F_SINCE_PROMOTION != 0
    }

    pub(crate) fn encode(&self) -> [u8; Entry::ENCODED_LEN] {
        let mut b = [0u8; Entry::ENCODED_LEN];
        b[0..8].copy_from_slice(&self.first_seen.to_le_bytes());
        b[8..16].copy_from_slice(&self.last_seen.to_le_bytes());
        b[16..24].copy_from_slice(&self.count.to_le_bytes());
        b[24] = self.access;
        b[25] = self.new_access;
        b[26] = self.flags;
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Entry> {
        if b.len() != Entry::ENCODED_LEN {
            return None;
        }
        let i = |r: std::ops::Range<usize>| i64::from_le_bytes(b[r].try_into().unwrap_or_default());
        Some(Entry {
            first_seen: i(0..8),
            last_seen: i(8..16),
            count: i(16..24) as u64,
            access: b[24],
            new_access: b[25],
            flags: b[26],
        })
    }

    /// Union-merge (imports): first seen is the earliest, last seen the
    /// latest, counts add up, access bits join.
    pub(crate) fn merge(&mut self, o: &Entry) {
        self.first_seen = self.first_seen.min(o.first_seen);
        self.last_seen = self.last_seen.max(o.last_seen);
        self.count = self.count.saturating_add(o.count);
        self.access |= o.access;
    }
}

/// Persisted per-profile state besides the sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub mode: Mode,
    pub created_ns: i64,
    pub last_seen_ns: i64,
    /// Last time learning added something (the quiet period counts from here).
    pub last_new_ns: i64,
    pub observations: u64,
    pub promoted_ns: Option<i64>,
    /// First event loss while this profile was learning.
    pub lossy_since_ns: Option<i64>,
    /// Latest event loss while this profile was learning.
    pub last_loss_ns: Option<i64>,
    /// Events the ring buffer dropped while this profile was learning.
    pub lost_events: u64,
    /// `observations` when the latest loss was noted.
    #[serde(default)]
    pub observations_at_loss: u64,
    /// New items not recorded because a set was full.
    #[serde(default)]
    pub overflowed: u64,
    /// Process names seen running this profile's executable (comm, and
    /// `argv[0]`'s file name when it differs), escaped, at most
    /// [`MAX_NAMES`], in the order first seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

/// Process names kept per profile.
pub(crate) const MAX_NAMES: usize = 8;
/// Longest process name kept (bytes).
pub(crate) const MAX_NAME_LEN: usize = 64;

impl Meta {
    /// Adds a process name if new (and there is room); true if added.
    pub(crate) fn note_name(&mut self, name: &[u8]) -> bool {
        if name.is_empty() || self.names.len() >= MAX_NAMES {
            return false;
        }
        let name = &name[..name.len().min(MAX_NAME_LEN)];
        let e = crate::generalise::escape(name);
        if self.names.contains(&e) {
            return false;
        }
        self.names.push(e);
        true
    }
}

impl Meta {
    pub(crate) fn new(now: i64) -> Meta {
        Meta {
            mode: Mode::Learning,
            created_ns: now,
            last_seen_ns: now,
            last_new_ns: now,
            observations: 0,
            promoted_ns: None,
            lossy_since_ns: None,
            last_loss_ns: None,
            lost_events: 0,
            observations_at_loss: 0,
            overflowed: 0,
            names: Vec::new(),
        }
    }
}

/// Learned syscalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Syscalls {
    pub learned: SyscallSet,
    /// Subset first seen after promotion.
    pub since: SyscallSet,
}

impl Syscalls {
    pub(crate) const ENCODED_LEN: usize = 2 * SYSCALL_WORDS * 8;

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::ENCODED_LEN);
        for w in self.learned.iter().chain(self.since.iter()) {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Syscalls> {
        if b.len() != Self::ENCODED_LEN {
            return None;
        }
        let mut s = Syscalls::default();
        for (i, c) in b.chunks_exact(8).enumerate() {
            let w = u64::from_le_bytes(c.try_into().ok()?);
            if i < SYSCALL_WORDS {
                s.learned[i] = w;
            } else {
                s.since[i - SYSCALL_WORDS] = w;
            }
        }
        Some(s)
    }
}

/// Encodes a set as `[u16 LE item length][item][entry]...`, items sorted
/// (deterministic bytes for identical sets).
pub(crate) fn encode_set(set: &HashMap<Box<[u8]>, Entry>) -> Vec<u8> {
    let mut items: Vec<(&Box<[u8]>, &Entry)> = set.iter().collect();
    items.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let len: usize = items
        .iter()
        .map(|(k, _)| 2 + k.len() + Entry::ENCODED_LEN)
        .sum();
    let mut v = Vec::with_capacity(len);
    for (k, e) in items {
        v.extend_from_slice(&(k.len() as u16).to_le_bytes());
        v.extend_from_slice(k);
        v.extend_from_slice(&e.encode());
    }
    v
}

/// Reverses [`encode_set`]; `None` if malformed.
pub(crate) fn decode_set(mut b: &[u8]) -> Option<HashMap<Box<[u8]>, Entry>> {
    let mut m = HashMap::new();
    while !b.is_empty() {
        let n = usize::from(u16::from_le_bytes([*b.first()?, *b.get(1)?]));
        let item = b.get(2..2 + n)?;
        let e = Entry::decode(b.get(2 + n..2 + n + Entry::ENCODED_LEN)?)?;
        m.insert(item.into(), e);
        b = &b[2 + n + Entry::ENCODED_LEN..];
    }
    Some(m)
}

/// Iterates the numbers set in a bitmap.
pub(crate) fn bits(set: &SyscallSet) -> impl Iterator<Item = u16> + '_ {
    set.iter().enumerate().flat_map(|(i, &w)| {
        (0..64u16)
            .filter(move |b| w & (1u64 << b) != 0)
            .map(move |b| i as u16 * 64 + b)
    })
}

/// A profile in memory.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    pub key: Box<[u8]>,
    pub meta: Meta,
    pub sets: [HashMap<Box<[u8]>, Entry>; 7],
    pub syscalls: Syscalls,
    /// Sets (bit per `Kind::index`) to write at the next flush.
    pub dirty_kinds: u8,
    /// Sets whose counters changed since they were last marked dirty.
    pub touched_kinds: u8,
    /// When counters were last marked for writing (ns since the epoch).
    pub soft_at: i64,
    pub meta_dirty: bool,
    pub syscalls_dirty: bool,
    /// On the engine's dirty list.
    pub queued: bool,
    /// Locked mode: what was reported this run (bounded).
    pub reported: HashSet<(Kind, Box<[u8]>, u8)>,
}

/// Result of offering one item to a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Already known (counters updated).
    Known,
    /// Learned (learning mode; no anomaly).
    Learned,
    /// Outside the baseline: report it (with the new access bits, files).
    New(u8),
}

/// Limits applied while recording.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Counters of known items are written at most this often (ns).
    pub refresh_ns: i64,
    pub max_items: usize,
    pub locked_report_limit: usize,
}

impl Profile {
    pub(crate) fn new(key: &[u8], now: i64) -> Profile {
        Profile {
            key: key.into(),
            meta: Meta::new(now),
            sets: Default::default(),
            syscalls: Syscalls::default(),
            dirty_kinds: 0,
            touched_kinds: 0,
            soft_at: now,
            meta_dirty: true,
            syscalls_dirty: false,
            queued: false,
            reported: HashSet::new(),
        }
    }

    fn mark(&mut self, kind: Kind) {
        self.dirty_kinds |= 1 << kind.index();
        self.meta_dirty = true;
    }

    /// Offers one item. `access` is 0 except for files.
    pub(crate) fn record(
        &mut self,
        kind: Kind,
        item: &[u8],
        access: u8,
        now: i64,
        lim: Limits,
    ) -> Outcome {
        let mode = self.meta.mode;
        let set = &mut self.sets[kind.index()];
        if let Some(e) = set.get_mut(item) {
            let fresh = access & !e.access;
            if mode == Mode::Locked && fresh != 0 {
                return self.locked_report(kind, item, fresh, lim);
            }
            e.last_seen = now;
            e.count += 1;
            e.access |= access;
            let out = match (fresh, mode) {
                (0, _) => Outcome::Known,
                (_, Mode::Learning) => {
                    self.meta.last_new_ns = now;
                    Outcome::Learned
                }
                (f, _) => {
                    e.new_access |= f;
                    Outcome::New(f)
                }
            };
            if out == Outcome::Known {
                self.touched_kinds |= 1 << kind.index();
            } else {
                self.mark(kind);
            }
            return out;
        }
        match mode {
            Mode::Locked => self.locked_report(kind, item, access, lim),
            Mode::Learning | Mode::Monitoring => {
                if set.len() >= lim.max_items {
                    self.meta.overflowed += 1;
                    return if mode == Mode::Learning {
                        Outcome::Known
                    } else {
                        Outcome::New(access)
                    };
                }
                let flags = if mode == Mode::Monitoring {
                    F_SINCE_PROMOTION
                } else {
                    0
                };
                let mut e = Entry::new(now, access, flags);
                if mode == Mode::Monitoring {
                    e.new_access = access;
                }
                set.insert(item.into(), e);
                self.mark(kind);
                if mode == Mode::Learning {
                    self.meta.last_new_ns = now;
                    Outcome::Learned
                } else {
                    Outcome::New(access)
                }
            }
        }
    }

    fn locked_report(&mut self, kind: Kind, item: &[u8], access: u8, lim: Limits) -> Outcome {
        if self.reported.len() >= lim.locked_report_limit {
            return Outcome::New(access);
        }
        if self.reported.insert((kind, item.into(), access)) {
            Outcome::New(access)
        } else {
            Outcome::Known
        }
    }

    /// Offers a syscall bitmap; returns the numbers outside the baseline.
    pub(crate) fn record_syscalls(&mut self, set: &SyscallSet, now: i64) -> SyscallSet {
        let mut fresh = [0u64; SYSCALL_WORDS];
        let mut any = false;
        for (i, f) in fresh.iter_mut().enumerate() {
            *f = set[i] & !self.syscalls.learned[i];
            any |= *f != 0;
        }
        if !any {
            return [0; SYSCALL_WORDS];
        }
        match self.meta.mode {
            Mode::Learning => {
                for (l, f) in self.syscalls.learned.iter_mut().zip(fresh) {
                    *l |= f;
                }
                self.meta.last_new_ns = now;
                self.syscalls_dirty = true;
                self.meta_dirty = true;
                [0; SYSCALL_WORDS]
            }
            Mode::Monitoring => {
                for (i, f) in fresh.iter().enumerate() {
                    self.syscalls.learned[i] |= f;
                    self.syscalls.since[i] |= f;
                }
                self.syscalls_dirty = true;
                fresh
            }
            Mode::Locked => {
                // Report each syscall once per run.
                let mut out = [0u64; SYSCALL_WORDS];
                for n in bits(&fresh) {
                    let key: Box<[u8]> = n.to_le_bytes().into();
                    if self.reported.len() >= 1 << 16
                        || self.reported.insert((Kind::Syscall, key, 0))
                    {
                        out[usize::from(n / 64)] |= 1 << (n % 64);
                    }
                }
                out
            }
        }
    }

    /// Marks counters of touched sets for writing if `refresh` has passed
    /// since they last were; true if anything is now due for a flush.
    pub(crate) fn settle(&mut self, now: i64, refresh: i64) -> bool {
        if now - self.soft_at >= refresh {
            self.dirty_kinds |= self.touched_kinds;
            self.touched_kinds = 0;
            self.meta_dirty = true;
            self.soft_at = now;
        }
        self.dirty_kinds != 0 || self.meta_dirty || self.syscalls_dirty
    }

    /// Marks everything for writing (operations rewrite whole profiles).
    pub(crate) fn mark_all(&mut self) {
        self.dirty_kinds = (1 << Kind::SETS.len()) - 1;
        self.meta_dirty = true;
        self.syscalls_dirty = true;
    }

    /// Moves to monitoring/locked: everything learned so far is the baseline.
    pub(crate) fn promote(&mut self, mode: Mode, now: i64) {
        self.meta.mode = mode;
        self.meta.promoted_ns = Some(now);
        self.meta_dirty = true;
        self.accept_all();
    }

    /// Back to learning: items seen since promotion join the baseline.
    pub(crate) fn demote(&mut self, now: i64) {
        self.meta.mode = Mode::Learning;
        self.meta.promoted_ns = None;
        self.meta.last_new_ns = now;
        self.meta_dirty = true;
        self.accept_all();
    }

    fn accept_all(&mut self) {
        self.reported.clear();
        for set in &mut self.sets {
            for e in set.values_mut() {
                e.flags &= !F_SINCE_PROMOTION;
                e.new_access = 0;
            }
        }
        self.syscalls.since = [0; SYSCALL_WORDS];
    }

    /// Forgets everything learned; learning starts again.
    pub(crate) fn reset(&mut self, now: i64) {
        let key = std::mem::take(&mut self.key);
        *self = Profile::new(&key, now);
    }

    /// Generalises the path items (files, spawns) again with this build's
    /// rules (a database migration); items that become one are merged: the
    /// earliest first seen, the latest last seen, counts added, and an item
    /// or access bit is in the baseline if either was.
    pub(crate) fn regeneralise(&mut self) {
        for kind in [Kind::File, Kind::Spawn] {
            let set = std::mem::take(&mut self.sets[kind.index()]);
            let mut out: HashMap<Box<[u8]>, Entry> = HashMap::with_capacity(set.len());
            for (item, e) in set {
                let g: Box<[u8]> = crate::generalise::generalise_path(&item).into();
                match out.get_mut(&g) {
                    None => {
                        out.insert(g, e);
                    }
                    Some(have) => {
                        let base = (have.access & !have.new_access) | (e.access & !e.new_access);
                        let since = have.since_promotion() && e.since_promotion();
                        have.merge(&e);
                        have.new_access = have.access & !base;
                        if since {
                            have.flags |= F_SINCE_PROMOTION;
                        } else {
                            have.flags &= !F_SINCE_PROMOTION;
                        }
                    }
                }
            }
            self.sets[kind.index()] = out;
        }
    }

    /// Items per kind (syscalls counted by number).
    pub(crate) fn counts(&self) -> [usize; 8] {
        let mut c = [0; 8];
        for k in Kind::SETS {
            c[k.index()] = self.sets[k.index()].len();
        }
        c[Kind::Syscall.index()] = bits(&self.syscalls.learned).count();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_encoding_round_trips() {
        let e = Entry {
            first_seen: -5,
            last_seen: i64::MAX,
            count: 7,
            access: 3,
            new_access: 2,
            flags: F_SINCE_PROMOTION,
        };
        assert_eq!(Entry::decode(&e.encode()), Some(e));
        assert_eq!(Entry::decode(&[0; 5]), None);
        let mut s = Syscalls::default();
        s.learned[0] = 0b1011;
        s.since[7] = 1 << 63;
        assert_eq!(Syscalls::decode(&s.encode()), Some(s));
        assert_eq!(bits(&s.since).collect::<Vec<_>>(), vec![511]);
        let mut set = HashMap::new();
        set.insert(b"/etc/passwd"[..].into(), e);
        set.insert(b""[..].into(), Entry::new(1, 0, 0));
        let enc = encode_set(&set);
        assert_eq!(decode_set(&enc), Some(set));
        assert_eq!(decode_set(&enc[..enc.len() - 1]), None);
        assert_eq!(decode_set(&[]), Some(HashMap::new()));
    }
}
