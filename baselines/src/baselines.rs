//! The learner: profiles in memory, the hot-path `observe`, loss notes,
//! auto-promotion, flushing to sled, and the operations behind
//! `vigil baseline ...`.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::doc::{ItemDoc, ProfileDoc, ProfileSummary, Readiness, WHITELIST_FORMAT, Whitelist};
use crate::error::{Error, Result};
use crate::generalise::{escape, generalise_into_for, unescape};
use crate::key::{ContainerKeying, primary_into, sub_into};
use crate::names::{capability_name, syscall_name, syscall_number};
use crate::observation::{Access, Behaviour, Observation, SYSCALL_WORDS, Subject, SyscallSet};
use crate::profile::{Entry, F_SINCE_PROMOTION, Kind, Limits, Mode, Outcome, Profile, bits};
use crate::store::Store;

/// Learner settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Automatic promotion needs this long without new behaviour (and, after
    /// an event loss, this long since the loss).
    pub quiet_period: Duration,
    /// ... and at least this many observations (after the latest loss, if any).
    pub min_observations: u64,
    /// Promote automatically at all (`tick` does nothing when false).
    pub auto_promote: bool,
    /// Mode automatic promotion moves to.
    pub auto_promote_to: Mode,
    /// How container profiles are keyed.
    pub container_keying: ContainerKeying,
    /// Learn the remote address of inbound connections (`tcp/443 from
    /// 198.51.100.7`). Off by default: servers accept from anyone.
    pub learn_inbound_peers: bool,
    /// An anomaly is flagged `events_lost` if a loss was noted within this
    /// time of it.
    pub loss_window: Duration,
    /// sled page cache in bytes (sled's own default is 1 GiB).
    pub cache_capacity: u64,
    /// Counters (count, last seen) of already-known items are written at
    /// most this often per profile; new items and mode changes are written
    /// at the next flush. Bounds write amplification on a busy host.
    pub refresh_interval: Duration,
    /// Items kept per set per profile; past it new items are not learned,
    /// counted in `overflowed`, and block automatic promotion.
    pub max_items_per_set: usize,
    /// Locked profiles report each new item once per run, remembering at
    /// most this many per profile (past it every occurrence is reported).
    pub locked_report_limit: usize,
    /// Profiles kept at most; observations of further new profiles are
    /// dropped and counted ([`Baselines::dropped_observations`]).
    pub max_profiles: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            quiet_period: Duration::from_secs(30 * 60),
            min_observations: 100,
            auto_promote: true,
            auto_promote_to: Mode::Monitoring,
            container_keying: ContainerKeying::Image,
            learn_inbound_peers: false,
            loss_window: Duration::from_secs(10),
            cache_capacity: 16 << 20,
            refresh_interval: Duration::from_secs(60),
            max_items_per_set: 10_000,
            locked_report_limit: 4096,
            max_profiles: 20_000,
        }
    }
}

/// Longest item kept (bytes); longer ones (no real path is) are cut here.
pub const MAX_ITEM_LEN: usize = 4096;

fn ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Behaviour outside a promoted baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// Profile key (escaped text).
    pub profile: String,
    /// The profile's mode (monitoring or locked).
    pub mode: Mode,
    /// What kind of behaviour.
    pub kind: Kind,
    /// The new item, generalised and escaped (`/proc/*/stat`, `tcp/10.0.0.9:22`,
    /// `CAP_SYS_ADMIN`, `ptrace`).
    pub item: String,
    /// Files: the access modes that are new (`w` for a file only read before).
    pub access: Option<Access>,
    /// When, ns since the epoch.
    pub unix_ns: i64,
    /// The ring buffer dropped events within [`Config::loss_window`] of this
    /// anomaly: other anomalies may have been missed.
    pub events_lost: bool,
    /// Events were lost while this profile was learning: the baseline may
    /// lack items, so this anomaly may be a false positive.
    pub baseline_lossy: bool,
}

/// The profile(s) of a subject, resolved once (per exec) so that each event
/// of that process skips the key derivation and lookup: see
/// [`Baselines::resolve`]. Valid only for the [`Baselines`] that made it
/// (profiles are never removed, so it stays valid for its lifetime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileRef {
    primary: u32,
    sub: Option<u32>,
}

/// What `flush` wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Profiles written.
    pub profiles: usize,
    /// Learned sets (one per profile and kind) written.
    pub sets: usize,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Profiles that did not exist before.
    pub created: Vec<String>,
    /// Profiles merged into.
    pub merged: Vec<String>,
    /// Items not in the profile before.
    pub new_items: usize,
}

/// All profiles: the learner the engine feeds and the CLI operates on.
pub struct Baselines {
    cfg: Config,
    store: Option<Store>,
    profiles: Vec<Profile>,
    index: HashMap<Box<[u8]>, usize>,
    queue: Vec<usize>,
    last_loss_ns: Option<i64>,
    loss_dirty: bool,
    key_buf: Vec<u8>,
    item_buf: Vec<u8>,
    dropped: u64,
}

impl std::fmt::Debug for Baselines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Baselines")
            .field("profiles", &self.profiles.len())
            .field("persistent", &self.store.is_some())
            .finish()
    }
}

impl Default for Baselines {
    fn default() -> Baselines {
        Baselines::in_memory(Config::default())
    }
}

impl Baselines {
    /// No profiles, nothing persisted, default settings.
    pub fn empty() -> Baselines {
        Baselines::default()
    }

    /// Learner without storage (replays, tests).
    pub fn in_memory(cfg: Config) -> Baselines {
        Baselines {
            cfg,
            store: None,
            profiles: Vec::new(),
            index: HashMap::new(),
            queue: Vec::new(),
            last_loss_ns: None,
            loss_dirty: false,
            key_buf: Vec::new(),
            item_buf: Vec::new(),
            dropped: 0,
        }
    }

    /// Opens (creating if needed) the database in `dir` and loads every
    /// profile. `dir` is created 0700; one that group or others can access
    /// is refused; files are made 0600. A newer, unknown or corrupt database
    /// is an error and is not modified. An older schema is migrated: file
    /// and spawn items are generalised again by this build's rules (items
    /// that become one are merged), written in one transaction, and only
    /// then is the schema version raised.
    pub fn open(dir: &Path, cfg: Config) -> Result<Baselines> {
        Baselines::open_inner(dir, cfg, true)
    }

    fn open_inner(dir: &Path, cfg: Config, write: bool) -> Result<Baselines> {
        let store = Store::open(dir, cfg.cache_capacity)?;
        let (profiles, last_loss) = store.load()?;
        let mut b = Baselines::in_memory(cfg);
        for p in profiles {
            b.index.insert(p.key.clone(), b.profiles.len());
            b.profiles.push(p);
        }
        b.last_loss_ns = last_loss;
        let migrate = store.schema() < crate::store::SCHEMA_VERSION;
        b.store = Some(store);
        if migrate {
            for p in &mut b.profiles {
                p.regeneralise();
            }
            if !write {
                return Ok(b);
            }
            let all: Vec<usize> = (0..b.profiles.len()).collect();
            b.persist_now(&all)?;
            if let Some(s) = &mut b.store {
                s.set_current_schema()?;
            }
        }
        Ok(b)
    }

    /// Loads every profile of the database in `dir` into memory and closes
    /// the database again: checking against it (offline replays) never
    /// writes to it, and [`Baselines::flush`] of the result persists
    /// nothing. A missing `dir` gives no profiles. The same checks as
    /// [`Baselines::open`] apply (permissions, schema); an older schema is
    /// migrated in memory only. A database held open by a running agent is
    /// an error (sled locks it).
    pub fn snapshot(dir: &Path, cfg: Config) -> Result<Baselines> {
        if !dir.exists() {
            return Ok(Baselines::in_memory(cfg));
        }
        let mut b = Baselines::open_inner(dir, cfg, false)?;
        b.store = None;
        Ok(b)
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Number of profiles.
    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    /// Items held in memory over every profile's sets (each set is capped
    /// at [`Config::max_items_per_set`]).
    pub fn items(&self) -> usize {
        self.profiles
            .iter()
            .map(|p| p.sets.iter().map(|s| s.len()).sum::<usize>() + p.reported.len())
            .sum()
    }

    /// No profiles.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    /// Bytes the database takes on disk (0 in memory).
    pub fn size_on_disk(&self) -> Result<u64> {
        self.store.as_ref().map_or(Ok(0), Store::size_on_disk)
    }

    /// Observations dropped because [`Config::max_profiles`] was reached.
    pub fn dropped_observations(&self) -> u64 {
        self.dropped
    }

    /// The profile for `key`, created if there is room.
    fn profile_for(&mut self, key: &[u8], now: i64) -> Option<usize> {
        if let Some(&i) = self.index.get(key) {
            return Some(i);
        }
        if self.profiles.len() >= self.cfg.max_profiles {
            self.dropped += 1;
            return None;
        }
        Some(self.profile_at(key, now))
    }

    fn profile_at(&mut self, key: &[u8], now: i64) -> usize {
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        let mut p = Profile::new(key, now);
        // Events of this profile may have been among those just lost.
        if let Some(l) = self.last_loss_ns
            && now - l < ns(self.cfg.quiet_period)
        {
            p.meta.lossy_since_ns = Some(l);
            p.meta.last_loss_ns = Some(l);
            p.meta.observations_at_loss = 0;
        }
        let i = self.profiles.len();
        self.index.insert(key.into(), i);
        self.profiles.push(p);
        i
    }

    fn enqueue(&mut self, i: usize) {
        let p = &mut self.profiles[i];
        if !p.queued {
            p.queued = true;
            self.queue.push(i);
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            refresh_ns: ns(self.cfg.refresh_interval),
            max_items: self.cfg.max_items_per_set,
            locked_report_limit: self.cfg.locked_report_limit,
        }
    }

    /// Records one observation in the subject's profile(s) (the executable's,
    /// or the container's and its per-executable sub-profile) and returns
    /// what is outside a promoted baseline. Learning profiles never report.
    /// Nothing is written to disk here; see [`Baselines::flush`].
    pub fn observe(&mut self, obs: &Observation<'_>) -> Vec<Anomaly> {
        self.observe_for(obs, &|_| false)
    }

    /// [`Baselines::observe`] knowing the ids of the observed process:
    /// `is_pid(n)` says whether `n` is its pid, a thread's id, its parent's
    /// pid or a pid of a process of the same profile (in the pid namespace the
    /// process sees, or the host's). Digit runs of paths equal to one are
    /// generalised whatever their length (see [`crate::generalise_path_for`]).
    pub fn observe_for(
        &mut self,
        obs: &Observation<'_>,
        is_pid: &dyn Fn(u32) -> bool,
    ) -> Vec<Anomaly> {
        let mut out = Vec::new();
        if let Behaviour::Syscalls { set } = obs.behaviour {
            self.syscalls_each(&obs.subject, obs.unix_ns, set, &mut out);
            return out;
        }
        let mut item = std::mem::take(&mut self.item_buf);
        item.clear();
        let (kind, access, path) = self.item_of(&obs.behaviour, &mut item);
        let item_bytes: &[u8] = match path {
            // generalise_into_for leaves `item` holding the changed form, if any
            Some(p) if generalise_into_for(p, is_pid, &mut item) => &item,
            Some(p) => p,
            None => &item,
        };
        let item_bytes = &item_bytes[..item_bytes.len().min(MAX_ITEM_LEN)];
        let mut key = std::mem::take(&mut self.key_buf);
        primary_into(&mut key, &obs.subject, self.cfg.container_keying);
        self.offer(&key, kind, item_bytes, access, obs.unix_ns, &mut out);
        if sub_into(&mut key, &obs.subject, self.cfg.container_keying) {
            self.offer(&key, kind, item_bytes, access, obs.unix_ns, &mut out);
        }
        self.key_buf = key;
        self.item_buf = item;
        out
    }

    /// Resolves (creating if needed) the profiles of a subject. The engine can
    /// keep the result with its process-table entry and call
    /// [`Baselines::observe_ref`] for each event of that process. `None` when
    /// [`Config::max_profiles`] is reached.
    pub fn resolve(&mut self, subject: &Subject<'_>, unix_ns: i64) -> Option<ProfileRef> {
        let mut key = std::mem::take(&mut self.key_buf);
        primary_into(&mut key, subject, self.cfg.container_keying);
        let primary = self.profile_for(&key, unix_ns);
        let sub = if sub_into(&mut key, subject, self.cfg.container_keying) {
            self.profile_for(&key, unix_ns)
        } else {
            None
        };
        self.key_buf = key;
        Some(ProfileRef {
            primary: u32::try_from(primary?).ok()?,
            sub: sub.and_then(|i| u32::try_from(i).ok()),
        })
    }

    /// [`Baselines::observe`] for a resolved subject (same results, without
    /// deriving and looking up the profile keys).
    pub fn observe_ref(
        &mut self,
        r: ProfileRef,
        unix_ns: i64,
        behaviour: &Behaviour<'_>,
    ) -> Vec<Anomaly> {
        self.observe_ref_for(r, unix_ns, behaviour, &|_| false)
    }

    /// [`Baselines::observe_ref`] knowing the ids of the observed process
    /// (see [`Baselines::observe_for`]).
    pub fn observe_ref_for(
        &mut self,
        r: ProfileRef,
        unix_ns: i64,
        behaviour: &Behaviour<'_>,
        is_pid: &dyn Fn(u32) -> bool,
    ) -> Vec<Anomaly> {
        let mut out = Vec::new();
        let n = self.profiles.len();
        let idx = [Some(r.primary as usize), r.sub.map(|s| s as usize)];
        if let Behaviour::Syscalls { set } = behaviour {
            for i in idx.into_iter().flatten().filter(|&i| i < n) {
                self.syscalls_at(i, unix_ns, set, &mut out);
            }
            return out;
        }
        let mut item = std::mem::take(&mut self.item_buf);
        item.clear();
        let (kind, access, path) = self.item_of(behaviour, &mut item);
        let item_bytes: &[u8] = match path {
            Some(p) if generalise_into_for(p, is_pid, &mut item) => &item,
            Some(p) => p,
            None => &item,
        };
        let item_bytes = &item_bytes[..item_bytes.len().min(MAX_ITEM_LEN)];
        for i in idx.into_iter().flatten().filter(|&i| i < n) {
            self.offer_at(i, kind, item_bytes, access, unix_ns, &mut out);
        }
        self.item_buf = item;
        out
    }

    /// Records a syscall bitmap (as read from the per-profile BPF map) for
    /// the subject's profile(s); returns the syscalls outside a promoted
    /// baseline, one anomaly each.
    pub fn observe_syscalls(
        &mut self,
        subject: &Subject<'_>,
        unix_ns: i64,
        set: &SyscallSet,
    ) -> Vec<Anomaly> {
        let mut out = Vec::new();
        self.syscalls_each(subject, unix_ns, set, &mut out);
        out
    }

    /// Records a syscall bitmap for one profile named by its raw key (the
    /// engine keys its BPF map by profile).
    pub fn observe_syscalls_key(
        &mut self,
        key: &[u8],
        unix_ns: i64,
        set: &SyscallSet,
    ) -> Vec<Anomaly> {
        let mut out = Vec::new();
        self.syscalls_one(key, unix_ns, set, &mut out);
        out
    }

    fn syscalls_each(
        &mut self,
        s: &Subject<'_>,
        now: i64,
        set: &SyscallSet,
        out: &mut Vec<Anomaly>,
    ) {
        let mut key = std::mem::take(&mut self.key_buf);
        primary_into(&mut key, s, self.cfg.container_keying);
        self.syscalls_one(&key, now, set, out);
        if sub_into(&mut key, s, self.cfg.container_keying) {
            self.syscalls_one(&key, now, set, out);
        }
        self.key_buf = key;
    }

    fn syscalls_one(&mut self, key: &[u8], now: i64, set: &SyscallSet, out: &mut Vec<Anomaly>) {
        if let Some(i) = self.profile_for(key, now) {
            self.syscalls_at(i, now, set, out);
        }
    }

    fn syscalls_at(&mut self, i: usize, now: i64, set: &SyscallSet, out: &mut Vec<Anomaly>) {
        let refresh = ns(self.cfg.refresh_interval);
        let p = &mut self.profiles[i];
        p.meta.observations += 1;
        p.meta.last_seen_ns = p.meta.last_seen_ns.max(now);
        let fresh = p.record_syscalls(set, now);
        let mode = p.meta.mode;
        let lossy = p.meta.lossy_since_ns.is_some();
        if p.settle(now, refresh) {
            self.enqueue(i);
        }
        for nr in bits(&fresh) {
            let item = syscall_name(nr).map_or_else(|| format!("sys_{nr}"), str::to_string);
            out.push(self.anomaly(i, mode, Kind::Syscall, item, None, now, lossy));
        }
    }

    /// Encodes the item of a behaviour into `buf`; a path is returned
    /// separately so it can be generalised without a copy.
    fn item_of<'b>(&self, b: &Behaviour<'b>, buf: &mut Vec<u8>) -> (Kind, u8, Option<&'b [u8]>) {
        match *b {
            Behaviour::Spawn { child } => (Kind::Spawn, 0, Some(child)),
            Behaviour::Open { path, access } => (Kind::File, access.0 & Access::ALL.0, Some(path)),
            Behaviour::Connect {
                ip,
                port,
                transport,
            } => {
                let _ = match ip {
                    std::net::IpAddr::V4(a) => write!(buf, "{transport}/{a}:{port}"),
                    std::net::IpAddr::V6(a) => write!(buf, "{transport}/[{a}]:{port}"),
                };
                (Kind::Connect, 0, None)
            }
            Behaviour::Listen { port, transport } => {
                let _ = write!(buf, "{transport}/{port}");
                (Kind::Listen, 0, None)
            }
            Behaviour::Accept {
                peer,
                port,
                transport,
            } => {
                let _ = write!(buf, "{transport}/{port}");
                if let (true, Some(ip)) = (self.cfg.learn_inbound_peers, peer) {
                    let _ = write!(buf, " from {ip}");
                }
                (Kind::Accept, 0, None)
            }
            Behaviour::Capability { cap } => {
                buf.extend_from_slice(capability_name(cap).as_bytes());
                (Kind::Capability, 0, None)
            }
            Behaviour::UidChange { from, to } => {
                let _ = write!(buf, "{from}->{to}");
                (Kind::Uid, 0, None)
            }
            Behaviour::Syscalls { .. } => (Kind::Syscall, 0, None),
        }
    }

    fn offer(
        &mut self,
        key: &[u8],
        kind: Kind,
        item: &[u8],
        access: u8,
        now: i64,
        out: &mut Vec<Anomaly>,
    ) {
        if let Some(i) = self.profile_for(key, now) {
            self.offer_at(i, kind, item, access, now, out);
        }
    }

    fn offer_at(
        &mut self,
        i: usize,
        kind: Kind,
        item: &[u8],
        access: u8,
        now: i64,
        out: &mut Vec<Anomaly>,
    ) {
        let lim = self.limits();
        let p = &mut self.profiles[i];
        p.meta.observations += 1;
        p.meta.last_seen_ns = p.meta.last_seen_ns.max(now);
        let outcome = p.record(kind, item, access, now, lim);
        let (mode, lossy) = (p.meta.mode, p.meta.lossy_since_ns.is_some());
        if p.settle(now, lim.refresh_ns) {
            self.enqueue(i);
        }
        if let Outcome::New(a) = outcome {
            let access = (kind == Kind::File).then_some(Access(a));
            out.push(self.anomaly(i, mode, kind, escape(item), access, now, lossy));
        }
    }

    #[allow(clippy::too_many_arguments)] // one record's fields, named at the call sites
    fn anomaly(
        &self,
        i: usize,
        mode: Mode,
        kind: Kind,
        item: String,
        access: Option<Access>,
        now: i64,
        baseline_lossy: bool,
    ) -> Anomaly {
        let events_lost = self
            .last_loss_ns
            .is_some_and(|l| (now - l).abs() <= ns(self.cfg.loss_window));
        Anomaly {
            profile: escape(&self.profiles[i].key),
            mode,
            kind,
            item,
            access,
            unix_ns: now,
            events_lost,
            baseline_lossy,
        }
    }

    /// The engine reports that the ring buffer dropped `count` events at
    /// `unix_ns`. Every profile learning now records the loss and will not be
    /// promoted automatically before a full loss-free quiet period (with
    /// [`Config::min_observations`] observations) has passed after it;
    /// profiles created within a quiet period after the loss inherit it.
    pub fn note_loss(&mut self, unix_ns: i64, count: u64) {
        self.last_loss_ns = Some(self.last_loss_ns.map_or(unix_ns, |l| l.max(unix_ns)));
        self.loss_dirty = true;
        for i in 0..self.profiles.len() {
            let p = &mut self.profiles[i];
            if p.meta.mode != Mode::Learning {
                continue;
            }
            p.meta.lossy_since_ns.get_or_insert(unix_ns);
            p.meta.last_loss_ns = Some(p.meta.last_loss_ns.map_or(unix_ns, |l| l.max(unix_ns)));
            p.meta.lost_events = p.meta.lost_events.saturating_add(count);
            p.meta.observations_at_loss = p.meta.observations;
            p.meta_dirty = true;
            self.enqueue(i);
        }
    }

    /// How close a profile is to automatic promotion at `now` (the same
    /// conditions as [`Baselines::tick`]).
    fn readiness(&self, p: &Profile, now: i64) -> Readiness {
        let quiet = ns(self.cfg.quiet_period);
        let m = &p.meta;
        if m.mode != Mode::Learning {
            return Readiness::Promoted;
        }
        if m.overflowed > 0 {
            return Readiness::Overflowed;
        }
        let since = m
            .last_loss_ns
            .map_or(m.last_new_ns, |l| l.max(m.last_new_ns));
        if now - since < quiet {
            return Readiness::Quiet {
                remaining_ns: quiet - (now - since),
            };
        }
        let have = match m.last_loss_ns {
            Some(_) => m.observations.saturating_sub(m.observations_at_loss),
            None => m.observations,
        };
        if have < self.cfg.min_observations {
            return Readiness::Observations {
                missing: self.cfg.min_observations - have,
            };
        }
        Readiness::Ready
    }

    /// Notes a process name (comm, or `argv[0]`'s file name) seen running the
    /// profile(s) of `r`: `list` and `show` name them, so a service is found
    /// by the name its operator knows (Debian's `redis-server` runs the file
    /// `/usr/bin/redis-check-rdb`). At most 8 names of 64 bytes per profile;
    /// cheap when already known (call it per exec).
    pub fn note_name(&mut self, r: ProfileRef, name: &[u8]) {
        let n = self.profiles.len();
        for i in [Some(r.primary as usize), r.sub.map(|s| s as usize)]
            .into_iter()
            .flatten()
            .filter(|&i| i < n)
        {
            if self.profiles[i].meta.note_name(name) {
                self.profiles[i].meta_dirty = true;
                self.enqueue(i);
            }
        }
    }

    /// Whether the profile at `i` may be promoted automatically at `now`.
    fn ripe(&self, p: &Profile, now: i64) -> bool {
        let quiet = ns(self.cfg.quiet_period);
        let m = &p.meta;
        m.mode == Mode::Learning
            && m.overflowed == 0
            && m.observations >= self.cfg.min_observations
            && now - m.last_new_ns >= quiet
            && m.last_loss_ns.is_none_or(|l| {
                now - l >= quiet
                    && m.observations.saturating_sub(m.observations_at_loss)
                        >= self.cfg.min_observations
            })
    }

    /// Promotes every learning profile that has been quiet long enough with
    /// enough observations (and no recent loss); returns their keys. Each
    /// promotion is written and flushed before this returns. Call it every
    /// few seconds (with `now` = wall clock, ns since the epoch).
    pub fn tick(&mut self, now_ns: i64) -> Result<Vec<String>> {
        if !self.cfg.auto_promote {
            return Ok(Vec::new());
        }
        let ripe: Vec<usize> = (0..self.profiles.len())
            .filter(|&i| self.ripe(&self.profiles[i], now_ns))
            .collect();
        if ripe.is_empty() {
            return Ok(Vec::new());
        }
        let to = self.cfg.auto_promote_to;
        for &i in &ripe {
            self.profiles[i].promote(to, now_ns);
        }
        self.persist_now(&ripe)?;
        Ok(ripe
            .iter()
            .map(|&i| escape(&self.profiles[i].key))
            .collect())
    }

    /// Writes every changed profile in one sled transaction and flushes sled.
    /// Call it every few seconds and on shutdown. On error nothing is marked
    /// clean, so the next flush retries.
    pub fn flush(&mut self) -> Result<FlushStats> {
        let Some(store) = &self.store else {
            self.clear_dirty_all();
            return Ok(FlushStats::default());
        };
        if self.queue.is_empty() && !self.loss_dirty {
            return Ok(FlushStats::default());
        }
        let ps: Vec<&Profile> = self.queue.iter().map(|&i| &self.profiles[i]).collect();
        let stats = FlushStats {
            profiles: ps.len(),
            sets: ps.iter().map(|p| p.dirty_kinds.count_ones() as usize).sum(),
        };
        store.write(&ps, self.loss_dirty.then_some(self.last_loss_ns).flatten())?;
        self.clear_dirty_all();
        Ok(stats)
    }

    fn clear_dirty_all(&mut self) {
        for i in std::mem::take(&mut self.queue) {
            clear_dirty(&mut self.profiles[i]);
            self.profiles[i].queued = false;
        }
        self.loss_dirty = false;
    }

    /// Rewrites the given profiles completely and flushes (operations).
    fn persist_now(&mut self, idx: &[usize]) -> Result<()> {
        for &i in idx {
            self.profiles[i].mark_all();
        }
        if let Some(store) = &self.store {
            let ps: Vec<&Profile> = idx.iter().map(|&i| &self.profiles[i]).collect();
            store.write(&ps, None)?;
        }
        for &i in idx {
            clear_dirty(&mut self.profiles[i]);
        }
        Ok(())
    }

    fn lookup(&self, profile: &str) -> Result<usize> {
        let key = unescape(profile).ok_or_else(|| Error::NoSuchProfile(profile.into()))?;
        self.index
            .get(&key[..])
            .copied()
            .ok_or_else(|| Error::NoSuchProfile(profile.into()))
    }

    /// The primary profile of a resolved reference: its name as `vigil
    /// baseline list` prints it, and its mode.
    pub fn profile_of_ref(&self, r: ProfileRef) -> Option<(String, Mode)> {
        let p = self.profiles.get(r.primary as usize)?;
        Some((escape(&p.key), p.meta.mode))
    }

    /// Whether what is learned is stored (opened with [`Baselines::open`]).
    pub fn is_persistent(&self) -> bool {
        self.store.is_some()
    }

    /// The mode of a profile by raw key (the engine enables the syscall
    /// sensor only for profiles that are learning).
    pub fn mode_of(&self, key: &[u8]) -> Option<Mode> {
        self.index.get(key).map(|&i| self.profiles[i].meta.mode)
    }

    /// Raw keys of the profiles in a mode.
    pub fn keys_in_mode(&self, mode: Mode) -> Vec<Vec<u8>> {
        self.profiles
            .iter()
            .filter(|p| p.meta.mode == mode)
            .map(|p| p.key.to_vec())
            .collect()
    }

    /// Every profile, sorted by key (`vigil baseline list`), with its
    /// readiness judged now (wall clock); see [`Baselines::list_at`].
    pub fn list(&self) -> Vec<ProfileSummary> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, ns);
        self.list_at(now)
    }

    /// Every profile, sorted by key, with its readiness at `now_ns`.
    pub fn list_at(&self, now_ns: i64) -> Vec<ProfileSummary> {
        let mut v: Vec<ProfileSummary> = self
            .profiles
            .iter()
            .map(|p| ProfileSummary {
                profile: escape(&p.key),
                mode: p.meta.mode,
                created_ns: p.meta.created_ns,
                last_seen_ns: p.meta.last_seen_ns,
                last_new_ns: p.meta.last_new_ns,
                promoted_ns: p.meta.promoted_ns,
                observations: p.meta.observations,
                counts: p.counts(),
                since_promotion: p
                    .sets
                    .iter()
                    .flat_map(|s| s.values())
                    .filter(|e| e.since_promotion() || e.new_access != 0)
                    .count()
                    + bits(&p.syscalls.since).count(),
                lossy_since_ns: p.meta.lossy_since_ns,
                lost_events: p.meta.lost_events,
                overflowed: p.meta.overflowed,
                names: p.meta.names.clone(),
                readiness: self.readiness(p, now_ns),
            })
            .collect();
        v.sort_by(|a, b| a.profile.cmp(&b.profile));
        v
    }

    /// Everything a profile learned (`vigil baseline show`).
    pub fn show(&self, profile: &str) -> Result<ProfileDoc> {
        let i = self.lookup(profile)?;
        Ok(to_doc(&self.profiles[i], DocFilter::All))
    }

    /// What a promoted profile saw since promotion (`vigil baseline diff`).
    pub fn diff(&self, profile: &str) -> Result<ProfileDoc> {
        let i = self.lookup(profile)?;
        Ok(to_doc(&self.profiles[i], DocFilter::SincePromotion))
    }

    /// The reviewed baseline only (exports): items seen since promotion are
    /// left out until the profile is promoted again or demoted.
    pub fn baseline(&self, profile: &str) -> Result<ProfileDoc> {
        let i = self.lookup(profile)?;
        Ok(to_doc(&self.profiles[i], DocFilter::Baseline))
    }

    /// Promotes a profile to `mode` (monitoring or locked; learning demotes):
    /// what it has learned, including anything seen since an earlier
    /// promotion, becomes its baseline. Written and flushed before returning.
    pub fn promote(&mut self, profile: &str, mode: Mode, now_ns: i64) -> Result<()> {
        let i = self.lookup(profile)?;
        if mode == Mode::Learning {
            self.profiles[i].demote(now_ns);
        } else {
            self.profiles[i].promote(mode, now_ns);
        }
        self.persist_now(&[i])
    }

    /// Back to learning (items seen since promotion join the baseline; the
    /// quiet period starts again). Written and flushed before returning.
    pub fn demote(&mut self, profile: &str, now_ns: i64) -> Result<()> {
        self.promote(profile, Mode::Learning, now_ns)
    }

    /// Forgets what a profile learned; it starts learning again. Written and
    /// flushed before returning.
    pub fn reset(&mut self, profile: &str, now_ns: i64) -> Result<()> {
        let i = self.lookup(profile)?;
        self.profiles[i].reset(now_ns);
        self.persist_now(&[i])
    }

    /// YAML whitelist of the given profiles (all if empty): their reviewed
    /// baselines, re-importable with [`Baselines::import_yaml`].
    pub fn export_yaml(&self, profiles: &[&str]) -> Result<String> {
        let docs = if profiles.is_empty() {
            let mut v: Vec<&Profile> = self.profiles.iter().collect();
            v.sort_by(|a, b| a.key.cmp(&b.key));
            v.into_iter()
                .map(|p| to_doc(p, DocFilter::Baseline))
                .collect()
        } else {
            profiles
                .iter()
                .map(|p| self.baseline(p))
                .collect::<Result<Vec<_>>>()?
        };
        let w = Whitelist {
            vigil_baselines: WHITELIST_FORMAT,
            profiles: docs,
        };
        let body = serde_norway::to_string(&w).map_err(|e| Error::Export(e.to_string()))?;
        Ok(format!(
            "# vigil baseline whitelist: review, then `vigil baseline import FILE`.\n\
             # Paths are generalised: `*` stands for any characters within one path segment.\n\
             # Bytes that are not printable UTF-8 are written \\xNN, a backslash \\\\.\n{body}"
        ))
    }

    /// OCI seccomp profile (`linux.seccomp`) allowing the profile's learned
    /// syscalls plus what a runtime needs to start and stop a process.
    pub fn export_seccomp(&self, profile: &str) -> Result<String> {
        let i = self.lookup(profile)?;
        let p = &self.profiles[i];
        let mut base = p.syscalls.learned;
        for (w, s) in base.iter_mut().zip(p.syscalls.since) {
            *w &= !s;
        }
        if base.iter().all(|&w| w == 0) {
            return Err(Error::Export(format!(
                "profile `{profile}` has learned no syscalls (was the syscall sensor on while it learned?)"
            )));
        }
        crate::export::seccomp_json(&base)
    }

    /// vigil rules that alert on anything outside the profile's baseline.
    pub fn export_rules(&self, profile: &str) -> Result<String> {
        let doc = self.baseline(profile)?;
        let key = unescape(&doc.profile).unwrap_or_default();
        Ok(crate::export::rules_yaml(&key, &doc))
    }

    /// Merges a YAML whitelist (union of sets: first seen = earliest, last
    /// seen = latest, counts add up). Imported items join the baseline even
    /// if they had been seen only since promotion. A profile new here takes
    /// `mode` if given, else the file's mode. Written and flushed before
    /// returning.
    pub fn import_yaml(
        &mut self,
        text: &str,
        mode: Option<Mode>,
        now_ns: i64,
    ) -> Result<ImportSummary> {
        let w: Whitelist =
            serde_norway::from_str(text).map_err(|e| Error::Import(e.to_string()))?;
        if w.vigil_baselines != WHITELIST_FORMAT {
            return Err(Error::Import(format!(
                "whitelist format {} (this vigil reads {WHITELIST_FORMAT})",
                w.vigil_baselines
            )));
        }
        // Parse everything before changing anything.
        let mut parsed = Vec::with_capacity(w.profiles.len());
        for d in &w.profiles {
            parsed.push(parse_doc(d)?);
        }
        let mut sum = ImportSummary::default();
        let mut touched = Vec::new();
        for (d, (key, sets, sys)) in w.profiles.iter().zip(parsed) {
            let existed = self.index.contains_key(&key[..]);
            let i = self.profile_at(&key, now_ns);
            let p = &mut self.profiles[i];
            if existed {
                sum.merged.push(d.profile.clone());
            } else {
                sum.created.push(d.profile.clone());
                p.meta.mode = mode.unwrap_or(d.mode);
                p.meta.created_ns = d.created_ns;
                p.meta.last_new_ns = now_ns;
                if p.meta.mode != Mode::Learning {
                    // keep the file's promotion time when it was promoted there
                    p.meta.promoted_ns = d.promoted_ns.or(Some(now_ns));
                }
                p.meta.lossy_since_ns = d.lossy_since_ns;
                p.meta.lost_events = d.lost_events;
            }
            for name in &d.names {
                if let Some(n) = unescape(name) {
                    p.meta.note_name(&n);
                }
            }
            p.meta.observations = p.meta.observations.saturating_add(d.observations);
            p.meta.last_seen_ns = p.meta.last_seen_ns.max(d.last_seen_ns);
            for (kind, items) in sets {
                let set = &mut p.sets[kind.index()];
                for (item, e) in items {
                    match set.get_mut(&item[..]) {
                        Some(have) => {
                            have.merge(&e);
                            have.flags &= !F_SINCE_PROMOTION;
                            have.new_access &= !e.access;
                        }
                        None => {
                            sum.new_items += 1;
                            set.insert(item.into(), e);
                        }
                    }
                }
            }
            for (k, w) in sys.iter().enumerate() {
                sum.new_items += (w & !p.syscalls.learned[k]).count_ones() as usize;
                p.syscalls.learned[k] |= w;
                p.syscalls.since[k] &= !w;
            }
            touched.push(i);
        }
        touched.sort_unstable();
        touched.dedup();
        self.persist_now(&touched)?;
        Ok(sum)
    }
}

fn clear_dirty(p: &mut Profile) {
    p.dirty_kinds = 0;
    p.meta_dirty = false;
    p.syscalls_dirty = false;
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DocFilter {
    All,
    Baseline,
    SincePromotion,
}

fn to_doc(p: &Profile, filter: DocFilter) -> ProfileDoc {
    let mut d = ProfileDoc {
        profile: escape(&p.key),
        mode: p.meta.mode,
        created_ns: p.meta.created_ns,
        last_seen_ns: p.meta.last_seen_ns,
        observations: p.meta.observations,
        promoted_ns: p.meta.promoted_ns,
        lossy_since_ns: p.meta.lossy_since_ns,
        lost_events: p.meta.lost_events,
        names: p.meta.names.clone(),
        ..ProfileDoc::default()
    };
    for kind in Kind::SETS {
        let mut items: Vec<ItemDoc> = Vec::new();
        for (item, e) in &p.sets[kind.index()] {
            let since = e.since_promotion();
            let (keep, access) = match filter {
                DocFilter::All => (true, e.access),
                DocFilter::Baseline => (!since, e.access & !e.new_access),
                DocFilter::SincePromotion => (
                    since || e.new_access != 0,
                    if since { e.access } else { e.new_access },
                ),
            };
            if !keep {
                continue;
            }
            let file = kind == Kind::File;
            items.push(ItemDoc {
                item: escape(item),
                access: file.then(|| Access(access).to_string()),
                first_seen_ns: e.first_seen,
                last_seen_ns: e.last_seen,
                count: e.count,
                since_promotion: filter == DocFilter::All && since,
                new_access: (file && filter == DocFilter::All && e.new_access != 0)
                    .then(|| Access(e.new_access).to_string()),
            });
        }
        items.sort_by(|a, b| a.item.cmp(&b.item));
        if let Some(s) = d.set_mut(kind) {
            *s = items;
        }
    }
    let name = |n: u16| syscall_name(n).map_or_else(|| format!("sys_{n}"), str::to_string);
    let since = &p.syscalls.since;
    d.syscalls = bits(&p.syscalls.learned)
        .filter(|&n| {
            let s = since[usize::from(n / 64)] & (1 << (n % 64)) != 0;
            match filter {
                DocFilter::All => true,
                DocFilter::Baseline => !s,
                DocFilter::SincePromotion => s,
            }
        })
        .map(name)
        .collect();
    if filter == DocFilter::All {
        d.syscalls_since_promotion = bits(since).map(name).collect();
    }
    d
}

type ParsedDoc = (Vec<u8>, Vec<(Kind, Vec<(Vec<u8>, Entry)>)>, SyscallSet);

fn parse_doc(d: &ProfileDoc) -> Result<ParsedDoc> {
    let bad = |what: String| Error::Import(format!("profile `{}`: {what}", d.profile));
    let key =
        unescape(&d.profile).ok_or_else(|| bad("malformed escape in the profile key".into()))?;
    if key.is_empty() || key.len() > usize::from(u16::MAX) {
        return Err(bad("empty or oversized profile key".into()));
    }
    let mut sets = Vec::new();
    for kind in Kind::SETS {
        let mut v = Vec::new();
        for it in d.set(kind).into_iter().flatten() {
            let item = unescape(&it.item)
                .filter(|i| i.len() <= MAX_ITEM_LEN)
                .ok_or_else(|| {
                    bad(format!(
                        "{kind} item `{}`: malformed escape or too long",
                        it.item
                    ))
                })?;
            // Paths in the form this build checks them in (a whitelist
            // written by an older vigil may hold narrower patterns).
            let item = if matches!(kind, Kind::File | Kind::Spawn) {
                crate::generalise::generalise_path(&item).into_owned()
            } else {
                item
            };
            let access = match &it.access {
                Some(a) => {
                    Access::parse(a)
                        .ok_or_else(|| bad(format!("{kind} item `{}`: access `{a}`", it.item)))?
                        .0
                }
                None => 0,
            };
            let mut e = Entry::new(it.first_seen_ns, access, 0);
            e.last_seen = it.last_seen_ns;
            e.count = it.count;
            v.push((item, e));
        }
        sets.push((kind, v));
    }
    let mut sys = [0u64; SYSCALL_WORDS];
    for name in &d.syscalls {
        let nr = syscall_number(name)
            .or_else(|| name.strip_prefix("sys_").and_then(|n| n.parse().ok()))
            .filter(|&n: &u16| usize::from(n) < SYSCALL_WORDS * 64)
            .ok_or_else(|| bad(format!("unknown syscall `{name}`")))?;
        sys[usize::from(nr / 64)] |= 1 << (nr % 64);
    }
    Ok((key, sets, sys))
}
