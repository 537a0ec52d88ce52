//! The agent: sensors → ring buffer → decode → enrich → rules/baselines →
//! outputs, plus housekeeping (dedup sweeps, drop reporting) and the final
//! summary. `vigil run`, `vigil record`, the tests and the benchmark all
//! drive this one path.

use crate::capture::{self, CaptureWriter, Context};
use crate::config::Config;
use crate::ecs;
use crate::enrich::{Enricher, Event};
use crate::host::{self, Host, LiveHost, Users};
use crate::learn::Learner;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use vigil_bpf::abi::Counters;
use vigil_bpf::decode::{self, DecodeError};
use vigil_bpf::{RingReader, SensorStatus, Sensors};
use vigil_outputs::Sink;
use vigil_outputs::ratelimit::RateLimiter;
use vigil_outputs::{Kind as OKind, Severity as OSeverity};
use vigil_rules::RuleSet;

use super::shard::{self, Back, HashDone, Item, Meta, Pool, Shared, event_meta, lk};

/// Now on the kernel's boot clock (the clock of event timestamps).
pub fn boot_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// This host's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Counters of the userspace side.
#[derive(Debug, Clone, Default)]
pub struct PipelineStats {
    /// Records decoded, per kind.
    pub decoded: BTreeMap<u16, u64>,
    /// Records that failed to decode.
    pub decode_errors: u64,
    /// First decode error seen.
    pub first_decode_error: Option<String>,
    /// Deliveries: one per destination that accepted a record (the
    /// pipeline's own sink and each output that queued it), so a record
    /// sent to two outputs counts twice and one no output took counts 0.
    pub written: u64,
    /// Output write failures.
    pub write_errors: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Baseline anomalies raised.
    pub anomalies: u64,
    /// Baseline write failures (the first is logged).
    pub baseline_errors: u64,
    /// KVM exits per (VMM pid, what, detail) as last read from the kernel.
    pub kvm: BTreeMap<(u32, u16, u16), u64>,
    /// Alerts not written because of the per-rule rate limit.
    pub suppressed: u64,
    /// Alerts per rule id.
    pub alerts_by_rule: BTreeMap<String, u64>,
    /// Sigma correlation groups dropped to keep the state under
    /// `rules.correlation_max_entries`.
    pub correlation_evictions: u64,
    /// Rule hits demoted to events by learned tuning, per rule id.
    pub demoted_by_rule: BTreeMap<String, u64>,
    /// Run-queue waits per (cgroup id, kind) since start, summed over the
    /// perf intervals ([`crate::perf`]).
    pub runqlat: BTreeMap<(u64, u32), vigil_bpf::sched::RqHist>,
    /// Context switches per (previous, next) pid namespace since start.
    pub pidnss: BTreeMap<(u32, u32), u64>,
    /// Performance findings written (`vigil.finding`).
    pub perf_findings: u64,
    /// Container start and stop records written.
    pub container_events: u64,
    /// Syscall errors, TCP retransmits/resets, block I/O and vigil's own
    /// cost since start ([`crate::perfsys`]).
    pub perfsys: crate::perfsys::Totals,
    /// The kernel-work tools' figures since start ([`crate::perf::ktools`]).
    pub ktools: crate::perf::ktools::KtoolsTotals,
    /// The CPU profiler's figures since start ([`crate::perf::profile`]).
    pub profile: crate::perf::profile::ProfileTotals,
    /// Events per kind whose process or parent is the watched pid
    /// ([`RunOptions::watch_pid`]; benchmarks count delivery with it).
    pub watched: BTreeMap<u16, u64>,
    /// Alert captures ([`crate::capture::alert`]).
    pub capture: crate::capture::alert::CaptureStats,
    /// Responses of kill rules per outcome (`killed`, `would-kill`, ...).
    pub responses: BTreeMap<&'static str, u64>,
    /// Executable hashing counters ([`crate::hash`]).
    pub hash: crate::hash::HashStats,
    /// `exec-hash` records written (hashes that finished after their event).
    pub hash_late: u64,
    /// Pending events whose late hash could not be followed up (more than
    /// [`HASH_WAITING_MAX`] waiting): counted, their hash is still cached.
    pub hash_unfollowed: u64,
    /// Events lost to a pipeline worker that panicked: the one it panicked
    /// on, the rest of its batch, those waiting for a hash and those still
    /// queued for it (the agent's thread then handles its processes).
    pub worker_lost: u64,
}

/// Events waiting for their executable's hash at most.
pub const HASH_WAITING_MAX: usize = 4096;

/// Processes waiting for one hash (their table entries get it), and
/// whether the event that asked is the process's own (its worker then
/// holds the event).
#[derive(Default)]
struct HashWaiting {
    /// (pid, start ns, own event waiting).
    pids: Vec<(u32, u64, bool)>,
}

/// Worker count of `[pipeline] workers`: 0 is the host's CPUs, at most
/// [`crate::config::AUTO_WORKERS_MAX`].
pub fn worker_count(cfg: &Config) -> usize {
    cfg.pipeline.worker_count()
}

/// Decode → enrich → rules → output, for live and replayed records alike.
///
/// Decoding and enrichment run on the caller's thread; the rest runs
/// there too with one worker, or on `[pipeline] workers` threads sharded
/// by process ([`crate::pipeline::shard`]). Counters in [`Pipeline::stats`]
/// are exact after [`Pipeline::sync`] (which [`Pipeline::flush`] does).
pub struct Pipeline {
    enricher: Enricher,
    rules: Arc<RuleSet>,
    /// Shared with the workers.
    shared: Arc<Shared>,
    /// The caller's thread's own back: every event with one worker; the
    /// agent's own records (metrics, lifecycle) always.
    back: Back,
    /// The workers (started at the first event when more than one).
    pool: Option<Pool>,
    workers: usize,
    /// Every enriched event is also sent here.
    tap: Option<mpsc::Sender<Event>>,
    watch_pid: Option<Arc<AtomicU32>>,
    container_events: bool,
    hasher: Option<crate::hash::Hasher>,
    hash_waiting: std::collections::HashMap<u64, HashWaiting>,
    parent_tried: std::collections::HashSet<(u32, u64)>,
    /// The capture's (or this boot's) offset of the boot clock, as the
    /// events use it.
    boot_offset_ns: i64,
    /// Counters.
    pub stats: PipelineStats,
}

impl Pipeline {
    /// A pipeline with the given context.
    pub fn new(
        cfg: &Config,
        ctx: &Context,
        sink: Option<Box<dyn Sink>>,
        tap: Option<mpsc::Sender<Event>>,
    ) -> Pipeline {
        let shared = Arc::new(Shared::new(
            ctx.hostname.clone(),
            cfg.agent.events,
            sink,
            cfg.rules.correlation_max_entries,
        ));
        let rules = Arc::new(RuleSet::empty());
        let workers = worker_count(cfg);
        Pipeline {
            enricher: Enricher::new(
                Arc::new(ctx.users.clone()),
                ctx.boot_offset_ns,
                cfg.agent.ancestors,
            ),
            back: Back::new(
                Arc::clone(&shared),
                Arc::clone(&rules),
                if workers <= 1 { tap.clone() } else { None },
            ),
            rules,
            shared,
            pool: None,
            workers,
            tap,
            watch_pid: None,
            container_events: cfg.agent.container_events || cfg.agent.events,
            hasher: None,
            hash_waiting: std::collections::HashMap::new(),
            parent_tried: std::collections::HashSet::new(),
            boot_offset_ns: ctx.boot_offset_ns,
            stats: PipelineStats::default(),
        }
    }

    /// Threads the per-event work runs on (1: the caller's).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Kills on matches of `action: kill` rules ([`crate::detect::response`]).
    /// Set before the first record (later calls are ignored).
    pub fn set_responder(&mut self, r: crate::detect::response::Responder) {
        let _ = self.shared.responder.set(r);
    }

    /// Writes a capture around alerts (`all`: every alert, else those of
    /// rules with `capture: true`).
    pub fn set_capture(&mut self, c: crate::capture::alert::AlertCapture, all: bool) {
        *lk(&self.shared.capture) = Some(c);
        self.shared.capture_all.store(all, Ordering::Relaxed);
    }

    /// Ends the alert capture being written once its time is over
    /// (housekeeping), or now (`shutdown`).
    pub fn capture_tick(&mut self, shutdown: bool) {
        if let Some(c) = lk(&self.shared.capture).as_mut() {
            if shutdown {
                c.close();
            } else {
                c.close_if_due(boot_now_ns());
            }
            self.stats.capture = c.stats.clone();
        }
    }

    /// Hashes executables with this hasher ([`crate::hash`]).
    pub fn set_hasher(&mut self, h: crate::hash::Hasher) {
        self.hasher = Some(h);
    }

    /// The hasher, if hashing is on.
    pub fn hasher(&mut self) -> Option<&mut crate::hash::Hasher> {
        self.hasher.as_mut()
    }

    /// Sets the hash fields of an exec event (and its parent's, from the
    /// process table or hashed once now); returns the ticket of the
    /// event's own pending hash.
    fn hash_event(&mut self, ev: &mut Event) -> Option<u64> {
        let hs = self.hasher.as_mut()?;
        let vigil_bpf::decode::Body::Exec { info, path, .. } = &ev.k.body else {
            return None;
        };
        let h = ev.k.hdr;
        let mut own = None;
        if ev.process.as_ref().is_some_and(|p| p.hash.is_none()) {
            let chain: Vec<u32> = ev.ancestors.iter().map(|a| a.pid).collect();
            let id = crate::hash::ExecKey::of(info);
            match hs.lookup_exec(h.pid, path, info.ino, id, h.mntns, &chain) {
                crate::hash::Outcome::Hash(x) => {
                    ev.hash_known_bad = hs.is_known_bad(&x);
                    if let Some(p) = ev.process.as_mut() {
                        Arc::make_mut(p).hash = Some(x.clone());
                    }
                    self.enricher.set_hash(h.pid, h.start_ns, x);
                }
                crate::hash::Outcome::Pending(t) => {
                    ev.hash_pending = true;
                    own = Some(t);
                }
                crate::hash::Outcome::Skipped(why) => ev.hash_skipped = Some(why),
            }
        }
        // The parent: known from its own exec, else hashed once (a process
        // seeded from /proc, or started before vigil).
        if ev
            .ancestors
            .first()
            .is_some_and(|a| a.hash.is_none() && !a.exe.is_empty())
            && let Some(a) = Arc::make_mut(&mut ev.ancestors).first_mut()
        {
            match self.enricher.proc_hash(a.pid) {
                Some((Some(x), _)) => a.hash = Some(x),
                Some((None, start)) => {
                    if self.parent_tried.len() >= 65_536 {
                        self.parent_tried.clear();
                    }
                    if self.parent_tried.insert((a.pid, start)) {
                        match hs.lookup(a.pid, &a.exe, 0, 0, &[]) {
                            crate::hash::Outcome::Hash(x) => {
                                self.enricher.set_hash(a.pid, start, x.clone());
                                a.hash = Some(x);
                            }
                            crate::hash::Outcome::Pending(t) => {
                                let w = self.hash_waiting.entry(t).or_default();
                                w.pids.push((a.pid, start, false));
                            }
                            crate::hash::Outcome::Skipped(_) => {}
                        }
                    }
                }
                None => {}
            }
        }
        if let Some(t) = own {
            let w = self.hash_waiting.entry(t).or_default();
            w.pids.push((h.pid, h.start_ns, true));
        }
        own
    }

    /// Hashes that finished after their events were written: updates the
    /// process table, writes one `exec-hash` record per waiting event and
    /// raises the alerts of rules that match only now that the hash is
    /// known.
    pub fn poll_hashes(&mut self) {
        let done = match self.hasher.as_mut() {
            Some(h) => h.poll(),
            None => return,
        };
        self.finish_hashes(done);
    }

    /// Waits up to `d` for the hashes still being computed (shutdown).
    pub fn drain_hashes(&mut self, d: Duration) {
        let done = match self.hasher.as_mut() {
            Some(h) => h.drain(d),
            None => return,
        };
        self.finish_hashes(done);
    }

    fn finish_hashes(&mut self, done: Vec<crate::hash::Done>) {
        for d in done {
            let Some(w) = self.hash_waiting.remove(&d.ticket) else {
                continue;
            };
            if let Ok(x) = &d.result {
                for (pid, start, _) in &w.pids {
                    self.enricher.set_hash(*pid, *start, x.clone());
                }
            }
            let hd = HashDone {
                ticket: d.ticket,
                known_bad: match &d.result {
                    Ok(x) => self.hasher.as_ref().is_some_and(|h| h.is_known_bad(x)),
                    Err(_) => false,
                },
                result: d.result,
            };
            // The backs holding the waiting events: those of the processes
            // whose own event asked.
            let mut sent: Vec<usize> = Vec::new();
            for &(pid, _, own) in &w.pids {
                if !own {
                    continue;
                }
                match self.pool.as_mut() {
                    Some(pool) => {
                        let s = shard::shard_of(pid, pool.len());
                        if sent.contains(&s) {
                            continue;
                        }
                        sent.push(s);
                        let (left, back) = pool.hash_done(pid, hd.clone());
                        self.process_inline(left);
                        if let Some(d) = back {
                            self.back.hash_done(&d, &mut self.stats);
                        }
                    }
                    None => {
                        if !sent.is_empty() {
                            continue;
                        }
                        sent.push(0);
                        self.back.hash_done(&hd, &mut self.stats);
                    }
                }
            }
        }
    }

    /// Counts events of this pid (or its children) in `stats.watched`.
    pub fn watch(&mut self, pid: Option<Arc<AtomicU32>>) {
        self.watch_pid = pid;
    }

    /// Replaces the rule set (start-up and SIGHUP reload): events already
    /// read keep the set they were read under.
    pub fn set_rules(&mut self, rules: Arc<RuleSet>) {
        if let Some(pool) = self.pool.as_mut() {
            let left = pool.set_rules(&rules);
            self.process_inline(left);
        }
        self.back.set_rules(Arc::clone(&rules));
        self.rules = rules;
    }

    /// Promotes what is due and writes the baselines (every housekeeping
    /// tick and at shutdown); forgets exited processes.
    pub fn baseline_housekeeping(&mut self, alive: impl Fn(u32) -> bool, verbose: bool) {
        let r = {
            let mut g = lk(&self.shared.learning);
            let Some(l) = g.learner.as_mut() else {
                return;
            };
            l.expire(alive);
            let now = crate::host::boot_offset_ns() + boot_now_ns() as i64;
            l.baselines.tick(now).and_then(|promoted| {
                if verbose {
                    for p in promoted {
                        log::info!("baseline {p} promoted automatically (quiet period reached)");
                    }
                }
                l.baselines.flush()
            })
        };
        if let Err(e) = r {
            self.stats.baseline_errors += 1;
            if self.stats.baseline_errors == 1 {
                log::error!("baselines: cannot write: {e}");
            }
        }
        self.save_tuning();
    }

    /// Applies the learner's pending kernel map changes.
    pub fn apply_learning(&mut self, sensors: &mut Sensors) {
        let mut g = lk(&self.shared.learning);
        let Some(l) = g.learner.as_mut() else {
            return;
        };
        for op in l.take_ops() {
            let r = match op {
                crate::learn::LearnOp::Exe { dev, ino, slot } => {
                    sensors.learn_executable(dev, ino, slot)
                }
                crate::learn::LearnOp::Proc { tgid, slot } => sensors.learn_process(tgid, slot),
                crate::learn::LearnOp::ForgetExe { dev, ino } => {
                    sensors.forget_executable(dev, ino)
                }
            };
            if let Err(e) = r {
                self.stats.baseline_errors += 1;
                if self.stats.baseline_errors == 1 {
                    log::warn!("baselines: syscall learning map update failed: {e}");
                }
            }
        }
        // The sys_enter program runs only while something is learning.
        let want = l.syscalls_on && l.learning_syscalls();
        if want && !sensors.syscall_learning_attached() {
            if let Err(e) = sensors.attach_syscall_learning() {
                log::warn!("baselines: cannot attach syscall learning: {e}");
                l.syscalls_on = false;
            }
        } else if !want && sensors.syscall_learning_attached() {
            sensors.detach_syscall_learning();
        }
    }
    /// Reads the KVM exit counters; writes one metric record per VM whose
    /// counts changed (`event.action: kvm-exits`).
    pub fn collect_kvm(&mut self, sensors: &Sensors) {
        let Ok(counts) = sensors.kvm_counts() else {
            return;
        };
        let mut changed: BTreeMap<u32, BTreeMap<&'static str, u64>> = BTreeMap::new();
        for (k, v) in counts {
            let key = (k.tgid, k.what, k.detail);
            if self.stats.kvm.get(&key) == Some(&v) {
                continue;
            }
            self.stats.kvm.insert(key, v);
            changed.entry(k.tgid).or_default();
        }
        for (tgid, _) in changed {
            let mut per: BTreeMap<&'static str, u64> = BTreeMap::new();
            let mut ports: BTreeMap<u16, u64> = BTreeMap::new();
            for (&(t, what, detail), &n) in self
                .stats
                .kvm
                .range((tgid, 0, 0)..=(tgid, u16::MAX, u16::MAX))
            {
                debug_assert_eq!(t, tgid);
                *per.entry(vigil_bpf::abi::kvm::name(what)).or_default() += n;
                if what == vigil_bpf::abi::kvm::PIO {
                    *ports.entry(detail).or_default() += n;
                }
            }
            let mut w = vigil_outputs::json::Writer::new();
            w.str(
                "@timestamp",
                ecs::rfc3339(host::boot_offset_ns() + boot_now_ns() as i64),
            )
            .str("event.kind", "metric")
            .str("event.action", "kvm-exits")
            .str("event.module", "vigil")
            .str("host.hostname", self.shared.hostname.as_bytes())
            .u64("process.pid", tgid.into());
            for (name, n) in &per {
                w.u64(&format!("vigil.kvm.{name}"), *n);
            }
            // one member of vigil.kvm.pio_ports per port (`0x3f8`: no dot)
            for (port, n) in &ports {
                w.u64(&format!("vigil.kvm.pio_ports.{port:#x}"), *n);
            }
            let rec = w.finish();
            self.write_raw(&rec);
        }
    }

    /// One interval of a tool behind [`crate::perf::collector::Collector`]:
    /// writes its metric and finding records and alerts, and adds its
    /// Prometheus counters.
    pub fn collect_tool(
        &mut self,
        c: &mut dyn crate::perf::collector::Collector,
        host: &mut dyn Host,
        programs: &[vigil_bpf::ProgramStat],
        bpf_scale: f64,
    ) {
        let now = host::boot_offset_ns() + boot_now_ns() as i64;
        let hostname = self.shared.hostname.clone();
        let events: u64 = self.stats.decoded.values().sum();
        let out = c.collect(&mut crate::perf::collector::Ctx {
            host,
            hostname: &hostname,
            unix_ns: now,
            programs,
            bpf_scale,
            events,
        });
        for r in &out.records {
            match &r.finding {
                Some(f) => {
                    self.stats.perf_findings += 1;
                    self.write_finding(&r.json, f.name, f.title, &f.message)
                }
                None => self.write_raw(&r.json),
            }
        }
        for a in &out.alerts {
            let (json, id, msg, sev) = (&a.json, &a.id, &a.message, &a.severity);
            self.stats.alerts += 1;
            *self.stats.alerts_by_rule.entry(id.clone()).or_default() += 1;
            let severity = match sev {
                0 | 1 => OSeverity::Low,
                2 => OSeverity::Medium,
                3 => OSeverity::High,
                _ => OSeverity::Critical,
            };
            if let Some(t) = lk(&self.shared.telemetry).as_mut() {
                t.alert(id, if *sev >= 3 { "high" } else { "medium" });
            }
            self.back.emit(
                json,
                Meta {
                    kind: OKind::Alert,
                    severity,
                    rule_id: Some(id),
                    rule_name: Some(a.title),
                    ruleset: Some("perf"),
                    message: msg.as_bytes(),
                },
                None,
                &mut self.stats,
            );
        }
        if let Some(t) = lk(&self.shared.telemetry).as_mut() {
            t.counters(&out.counters);
            t.gauges(&out.gauges);
            c.prometheus(t);
        }
    }

    /// Reads the kernel's syscall bitmaps into the baselines (housekeeping).
    pub fn collect_syscalls(&mut self, sensors: &Sensors) {
        let anomalies = {
            let mut g = lk(&self.shared.learning);
            let Some(l) = g.learner.as_mut() else {
                return;
            };
            if !l.syscalls_on {
                return;
            }
            let now = crate::host::boot_offset_ns() + boot_now_ns() as i64;
            l.collect_syscalls(now, |slot| sensors.learned_syscalls(slot).ok())
        };
        for a in &anomalies {
            self.back.emit_anomaly(a, None, &mut self.stats);
        }
    }

    /// Uses learned tuning (with the learner: hits normal for a program's
    /// profile are demoted to events).
    pub fn set_tuning(&mut self, t: crate::detect::tuning::Tuning) {
        lk(&self.shared.learning).tuning = Some(t);
    }

    /// Writes the learned tuning if the baselines store what they learn.
    pub fn save_tuning(&mut self) {
        let mut g = lk(&self.shared.learning);
        let shard::Learning { learner, tuning } = &mut *g;
        let persistent = learner
            .as_ref()
            .is_some_and(|l| l.baselines.is_persistent());
        if let (true, Some(t)) = (persistent, tuning.as_mut())
            && let Err(e) = t.save()
        {
            self.stats.baseline_errors += 1;
            log::error!("tuning: cannot write: {e}");
        }
    }

    /// Attaches a baseline learner.
    pub fn set_learner(&mut self, l: Learner) {
        lk(&self.shared.learning).learner = Some(l);
        self.shared.learning_on.store(true, Ordering::Relaxed);
    }

    /// Runs `f` on the learner, if baselines are on (locked meanwhile:
    /// the workers wait).
    pub fn with_learner<R>(&mut self, f: impl FnOnce(&mut Learner) -> R) -> Option<R> {
        lk(&self.shared.learning).learner.as_mut().map(f)
    }

    /// Takes the learner out (the end of a replay hands its baselines back)
    /// once every worker is done with the events read so far.
    pub fn take_learner(&mut self) -> Option<Learner> {
        self.sync();
        self.shared.learning_on.store(false, Ordering::Relaxed);
        lk(&self.shared.learning).learner.take()
    }

    /// The rule set in use.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// The enricher (process table).
    pub fn enricher(&mut self) -> &mut Enricher {
        &mut self.enricher
    }

    /// Entries in the pipeline's tables (process table, caches, container
    /// tracker, learner, rate limits), for `vigil_state_entries`.
    pub fn table_sizes(&self, out: &mut Vec<(&'static str, usize)>) {
        self.enricher.table_sizes(out);
        if let Some(l) = &lk(&self.shared.learning).learner {
            l.table_sizes(out);
        }
        if let Some(l) = lk(&self.shared.limiter).as_ref() {
            out.push(("rate_limit_keys", l.len()));
        }
        if !self.rules.correlations().is_empty() {
            out.push(("correlation_entries", lk(&self.shared.corr).entries()));
        }
        if let Some(h) = &self.hasher {
            out.push(("executable_hashes", h.cache_len()));
            out.push(("hash_waiting", self.hash_waiting.len()));
        }
        if let Some(t) = lk(&self.shared.telemetry).as_ref() {
            out.push(("metric_series", t.registry.series_count()));
        }
    }

    /// Handles one raw record.
    pub fn handle(&mut self, sample: &[u8], host: &mut dyn Host) {
        let k = match decode::decode(sample) {
            Ok(k) => k,
            Err(e) => {
                self.note_decode_error(&e);
                return;
            }
        };
        *self.stats.decoded.entry(k.hdr.kind).or_default() += 1;
        if let Some(c) = lk(&self.shared.capture).as_mut() {
            c.push(k.hdr.ts_ns, sample);
        }
        if let Some(w) = &self.watch_pid {
            let w = w.load(Ordering::Relaxed);
            if w != 0 && (k.hdr.pid == w || k.hdr.ppid == w) {
                *self.stats.watched.entry(k.hdr.kind).or_default() += 1;
            }
        }
        // 32-bit syscalls become the records of the 64-bit sensors
        let k = vigil_bpf::compat::translate(k);
        if self.hasher.is_some() {
            self.poll_hashes();
        }
        let mut ev = self.enricher.enrich(k, host);
        // An exec may wait up to hash.wait_ms for its hash below: the
        // baseline (which never reads the hash) judges it first, so a
        // locked baseline's drift kill does not wait. Inline only: with
        // workers, earlier events of this process may still be queued for
        // a worker, and the baseline must see them first.
        let early = if self.workers <= 1
            && self.hasher.is_some()
            && matches!(ev.k.body, vigil_bpf::decode::Body::Exec { .. })
        {
            self.back.early_drift(&ev, &mut self.stats)
        } else {
            None
        };
        let ticket = self.hash_event(&mut ev);
        self.emit_lifecycle();
        let item = Item { ev, ticket, early };
        if self.workers <= 1 {
            self.back.process(item, &mut self.stats);
            return;
        }
        if self.pool.is_none() {
            match Pool::start(self.workers, &self.shared, &self.rules, &self.tap) {
                Ok(p) => self.pool = Some(p),
                Err(e) => {
                    log::warn!("cannot start the pipeline workers ({e}); running on one thread");
                    self.workers = 1;
                    self.back = Back::new(
                        Arc::clone(&self.shared),
                        Arc::clone(&self.rules),
                        self.tap.clone(),
                    );
                    self.back.process(item, &mut self.stats);
                    return;
                }
            }
        }
        if let Some(left) = self.pool.as_mut().and_then(|p| p.push(item)) {
            self.process_inline(left);
        }
    }

    /// Events a worker could not take (it ended): handled here.
    fn process_inline(&mut self, items: Vec<Item>) {
        for it in items {
            self.back.process(it, &mut self.stats);
        }
    }

    /// Hands the events read so far to the workers (the end of a ring
    /// buffer batch): nothing waits for a full batch. The records written
    /// inline go to the outputs' threads now, one message per output for
    /// the whole batch (the latency bound of a record, alerts included:
    /// the rest of its ring-buffer batch).
    pub fn end_batch(&mut self) {
        if let Some(p) = self.pool.as_mut() {
            let left = p.hand_over_all();
            self.process_inline(left);
        }
        if let Some(o) = self.shared.outputs.get() {
            o.flush_staged();
        }
    }

    /// Waits until the workers have handled every event read so far and
    /// adds their counters to [`Pipeline::stats`].
    pub fn sync(&mut self) {
        if let Some(p) = self.pool.as_mut() {
            let left = p.sync(&mut self.stats);
            self.process_inline(left);
        }
    }

    /// Writes the container start and stop records the tracker produced
    /// (`agent.container_events`).
    pub fn emit_lifecycle(&mut self) {
        let recs = self.enricher.tracker().take();
        if !self.container_events {
            return;
        }
        for l in recs {
            // the events' offset: a replay writes what the live run wrote
            let off = self.boot_offset_ns;
            let json = crate::ecs::encode_lifecycle(&l, &self.shared.hostname, off);
            let msg = format!(
                "container {} {} ({})",
                l.ctr.name.as_deref().unwrap_or(&l.ctr.id),
                if l.phase == crate::lifecycle::Phase::Start {
                    "started"
                } else {
                    "stopped"
                },
                l.ctr.runtime
            );
            self.stats.container_events += 1;
            self.back
                .emit(&json, event_meta(msg.as_bytes()), None, &mut self.stats);
        }
    }

    fn note_decode_error(&mut self, e: &DecodeError) {
        self.stats.decode_errors += 1;
        if self.stats.first_decode_error.is_none() {
            self.stats.first_decode_error = Some(e.to_string());
        }
    }

    /// Summaries of rate-limited rules whose buckets refilled (housekeeping).
    pub fn sweep_rate_limits(&mut self) {
        let now = (host::boot_offset_ns() + boot_now_ns() as i64).max(0) as u64;
        let sups = match lk(&self.shared.limiter).as_mut() {
            Some(l) => l.sweep(now),
            None => return,
        };
        for s in sups {
            self.back.emit_suppressed(&s, &mut self.stats);
        }
    }

    /// Writes a pre-encoded metric record (drop reports, notices).
    pub fn write_raw(&mut self, rec: &[u8]) {
        let msg = b"vigil notice".to_vec();
        self.back.emit(
            rec,
            Meta {
                kind: OKind::Metric,
                severity: OSeverity::Info,
                rule_id: None,
                rule_name: None,
                ruleset: None,
                message: &msg,
            },
            None,
            &mut self.stats,
        );
    }

    /// Writes a performance finding (a metric record with a `vigil.finding`
    /// object): severity medium, `rule.id`-like id `perf.<name>` and the
    /// finding's own `title` as the rule name for the syslog and CEF encoders.
    pub fn write_finding(&mut self, rec: &[u8], name: &str, title: &str, message: &str) {
        let id = format!("perf.{name}");
        self.back.emit(
            rec,
            Meta {
                kind: OKind::Metric,
                severity: OSeverity::Medium,
                rule_id: Some(&id),
                rule_name: Some(title),
                ruleset: Some("perf"),
                message: message.as_bytes(),
            },
            None,
            &mut self.stats,
        );
    }

    /// Waits for the workers ([`Pipeline::sync`]), then flushes the sink.
    pub fn flush(&mut self) {
        self.sync();
        if let Some(o) = self.shared.outputs.get() {
            o.flush_staged();
        }
        if let Some(s) = &self.shared.sink {
            let _ = lk(s).flush();
        }
    }

    /// Sends records to these outputs too (queues and spools of their own).
    /// Set before the first record (later calls are ignored).
    pub fn set_outputs(&mut self, o: Arc<vigil_outputs::Outputs>) {
        let _ = self.shared.outputs.set(o);
    }

    /// SIGHUP: flushes, then has every file output reopen its path (after
    /// logrotate renamed the file, new records go to a new 0600 file).
    pub fn reopen_outputs(&mut self, verbose: bool) {
        self.flush();
        if let Some(o) = self.shared.outputs.get() {
            o.reopen();
            if verbose {
                log::info!("outputs reopened");
            }
        }
    }

    /// Rate-limits alerts per rule: `burst` at once, refilled at `per_sec`.
    pub fn set_rate_limit(&mut self, burst: u32, per_sec: f64) {
        *lk(&self.shared.limiter) = Some(RateLimiter::new(burst, per_sec));
    }

    /// Counts into these metrics.
    pub fn set_telemetry(&mut self, t: crate::telemetry::Telemetry) {
        *lk(&self.shared.telemetry) = Some(t);
    }

    /// Runs `f` on the metrics, if any (locked meanwhile).
    pub fn with_telemetry<R>(
        &mut self,
        f: impl FnOnce(&mut crate::telemetry::Telemetry) -> R,
    ) -> Option<R> {
        lk(&self.shared.telemetry).as_mut().map(f)
    }

    /// Whether metrics are kept.
    pub fn has_telemetry(&self) -> bool {
        lk(&self.shared.telemetry).is_some()
    }

    /// Host name used in records.
    pub fn hostname(&self) -> &str {
        &self.shared.hostname
    }
}

impl Drop for Pipeline {
    /// The workers finish what they were handed (nothing read is lost),
    /// then end.
    fn drop(&mut self) {
        self.sync();
        self.pool = None;
    }
}

/// What an agent run ends with.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// How long it ran.
    pub elapsed: Duration,
    /// Kernel counters per kind.
    pub kernel: BTreeMap<u16, Counters>,
    /// Userspace counters.
    pub pipeline: PipelineStats,
    /// Per-program statistics of every object (security sensors,
    /// scheduler, perfsys).
    pub programs: Vec<vigil_bpf::ProgramStat>,
    /// Dedup entries swept and the repeats they had suppressed.
    pub dedup_swept: (u64, u64),
    /// Records written to a capture.
    pub recorded: u64,
    /// Time from start to all sensors attached.
    pub attach_time: Duration,
}

impl Summary {
    /// Human summary: events and drops per sensor.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let total: u64 = self.pipeline.decoded.values().sum();
        s.push_str(&format!(
            "vigil: ran {:.1}s, {} events decoded ({:.0}/s), {} written, {} alerts, {} decode errors, sensors attached in {} ms\n",
            secs,
            total,
            total as f64 / secs,
            self.pipeline.written,
            self.pipeline.alerts,
            self.pipeline.decode_errors,
            self.attach_time.as_millis(),
        ));
        if self.pipeline.worker_lost > 0 {
            s.push_str(&format!(
                "vigil: {} events lost to a pipeline worker that panicked (worker_lost)\n",
                self.pipeline.worker_lost
            ));
        }
        let demoted: u64 = self.pipeline.demoted_by_rule.values().sum();
        if demoted > 0 {
            s.push_str(&format!(
                "vigil: {demoted} rule hits normal for their program demoted to events (`vigil rules tuning`)\n"
            ));
        }
        if self.pipeline.correlation_evictions > 0 {
            s.push_str(&format!(
                "vigil: {} Sigma correlation groups evicted to stay under rules.correlation_max_entries\n",
                self.pipeline.correlation_evictions
            ));
        }
        s.push_str(&format!(
            "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
            "sensor", "emitted", "decoded", "dropped", "filtered", "deduped"
        ));
        let mut any_drop = false;
        let (mut prio_drops, mut demoted) = (0u64, 0u64);
        for c in self.kernel.values() {
            prio_drops += c.dropped_prio;
            demoted += c.demoted;
        }
        for spec in vigil_bpf::SENSORS {
            let mut c = Counters::default();
            let mut dec = 0;
            for k in spec.kinds {
                if let Some(x) = self.kernel.get(k) {
                    c.emitted += x.emitted;
                    c.dropped += x.dropped;
                    c.filtered += x.filtered;
                    c.deduped += x.deduped;
                }
                dec += self.pipeline.decoded.get(k).copied().unwrap_or(0);
            }
            if c == Counters::default() && dec == 0 {
                continue;
            }
            any_drop |= c.dropped > 0;
            s.push_str(&format!(
                "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
                spec.name, c.emitted, dec, c.dropped, c.filtered, c.deduped
            ));
        }
        let busy: Vec<_> = self.programs.iter().filter(|p| p.run_count > 0).collect();
        if !busy.is_empty() {
            let total: std::time::Duration = busy.iter().map(|p| p.run_time).sum();
            s.push_str(&format!(
                "BPF programs: {:.1} ms of kernel time counted while BPF_ENABLE_STATS was on (sampled: sensors.bpf_stats_sample_ms of every perf interval; ns/run is exact)\n",
                total.as_secs_f64() * 1e3
            ));
            s.push_str(&format!(
                "{:<18} {:>12} {:>12} {:>10}\n",
                "program", "runs", "time ms", "ns/run"
            ));
            for p in busy {
                s.push_str(&format!(
                    "{:<18} {:>12} {:>12.1} {:>10.0}\n",
                    p.name,
                    p.run_count,
                    p.run_time.as_secs_f64() * 1e3,
                    p.run_time.as_nanos() as f64 / p.run_count as f64
                ));
            }
        }
        let missed: Vec<(&str, u64)> = self
            .programs
            .iter()
            .filter_map(|p| Some((p.name.as_str(), p.missed.filter(|&m| m > 0)?)))
            .collect();
        if !missed.is_empty() {
            let list: Vec<String> = missed.iter().map(|(n, m)| format!("{n} {m}")).collect();
            s.push_str(&format!(
                "vigil: WARNING: the kernel skipped {} runs of BPF programs because another was running on the CPU (recursion misses; their events are lost): {}\n",
                missed.iter().map(|p| p.1).sum::<u64>(),
                list.join(", ")
            ));
        }
        if self.dedup_swept.0 > 0 {
            s.push_str(&format!(
                "vigil: dedup: {} entries of exited processes swept, they had suppressed {} repeats\n",
                self.dedup_swept.0, self.dedup_swept.1
            ));
        }
        if any_drop || demoted > 0 {
            s.push_str(&format!(
                "vigil: rings: {} dropped on the priority ring, the rest of the dropped column on the bulk ring; {demoted} alert candidates over their process's priority budget went to the bulk ring\n",
                prio_drops
            ));
        }
        if any_drop {
            s.push_str("vigil: WARNING: events were dropped (ring buffer full); raise sensors.ring_buffer_bytes (bulk) or sensors.priority_ring_buffer_bytes\n");
        }
        let mut vms: BTreeMap<u32, BTreeMap<&str, u64>> = BTreeMap::new();
        for (&(tgid, what, _), &n) in &self.pipeline.kvm {
            *vms.entry(tgid)
                .or_default()
                .entry(vigil_bpf::abi::kvm::name(what))
                .or_default() += n;
        }
        for (tgid, per) in vms {
            let parts: Vec<String> = per.iter().map(|(w, n)| format!("{w} {n}")).collect();
            s.push_str(&format!(
                "vigil: kvm: VM process {tgid}: {}\n",
                parts.join(", ")
            ));
        }
        if !self.pipeline.runqlat.is_empty() || !self.pipeline.pidnss.is_empty() {
            let cgroups: std::collections::BTreeSet<u64> =
                self.pipeline.runqlat.keys().map(|k| k.0).collect();
            let waits: u64 = self
                .pipeline
                .runqlat
                .values()
                .map(|h| crate::perf::total(&h.slots))
                .sum();
            s.push_str(&format!(
                "vigil: perf: {waits} run-queue waits in {} cgroups, {} pid-namespace switches, {} findings\n",
                cgroups.len(),
                self.pipeline.pidnss.values().sum::<u64>(),
                self.pipeline.perf_findings
            ));
        }
        let ps = &self.pipeline.perfsys;
        if !ps.errors.is_empty() || !ps.tcp.is_empty() || !ps.bio.is_empty() || ps.cost.is_some() {
            let retrans: u64 = ps
                .tcp
                .iter()
                .filter(|(k, _)| k.kind == vigil_bpf::perfsys::TCP_RETRANS)
                .map(|(_, n)| n)
                .sum();
            let resets: u64 = ps
                .tcp
                .iter()
                .filter(|(k, _)| k.kind != vigil_bpf::perfsys::TCP_RETRANS)
                .map(|(_, n)| n)
                .sum();
            let bio: u64 = ps.bio.values().map(|h| crate::perf::total(&h.slots)).sum();
            let cost = ps
                .cost
                .as_ref()
                .map(|c| {
                    format!(
                        ", vigil cost {:.2}% of one CPU (last interval)",
                        c.cpu_pct()
                    )
                })
                .unwrap_or_default();
            s.push_str(&format!(
                "vigil: perfsys: {} failing syscalls (running processes), {retrans} TCP retransmits, {resets} TCP resets, {bio} block requests, {} findings{cost}\n",
                ps.errors.values().sum::<u64>(),
                ps.findings
            ));
        }
        let hs = &self.pipeline.hash;
        if *hs != crate::hash::HashStats::default() {
            s.push_str(&format!(
                "vigil: hashes: {} executables hashed, {} cache hits ({} from the exec record's identity), {} pending ({} without waiting, the second's wait budget spent; followed by exec-hash records: {}, unfollowed: {}), {} too large, {} unreadable, {} refused (queue full)\n",
                hs.hashed, hs.cache_hits, hs.exec_key_hits, hs.pending, hs.unwaited, self.pipeline.hash_late, self.pipeline.hash_unfollowed, hs.too_large, hs.errors, hs.queue_full
            ));
        }
        let cs = &self.pipeline.capture;
        if cs.files > 0 || cs.errors > 0 {
            s.push_str(&format!(
                "vigil: captures: {} files around alerts, {} alerts rate-limited, {} old files deleted for the size cap, {} records cut by the file size bound, {} errors{}\n",
                cs.files,
                cs.rate_limited,
                cs.deleted,
                cs.truncated,
                cs.errors,
                cs.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default()
            ));
        }
        if let Some(e) = &self.pipeline.first_decode_error {
            s.push_str(&format!("vigil: first decode error: {e}\n"));
        }
        if self.recorded > 0 {
            s.push_str(&format!("vigil: {} records captured\n", self.recorded));
        }
        s
    }
}

/// How to run.
pub struct RunOptions {
    /// Configuration.
    pub config: Config,
    /// Output sink (None: no output, e.g. tests using the tap).
    pub sink: Option<Box<dyn Sink>>,
    /// Every enriched event is also sent here.
    pub tap: Option<mpsc::Sender<Event>>,
    /// Record raw records to this capture file.
    pub record: Option<PathBuf>,
    /// Print drop warnings and the sensor table on stderr.
    pub verbose: bool,
    /// Count events of this pid and its children (benchmarks).
    pub watch_pid: Option<Arc<AtomicU32>>,
    /// Rules to evaluate (None: no rules).
    pub rules: Option<Arc<RuleSet>>,
    /// Reload the configured rules on each SIGHUP this stream yields (a
    /// bad file keeps the old set); None: no reload. The caller creates it
    /// before start-up (see `vigil run`), so a SIGHUP that arrives while the
    /// sensors load is not lost: the loop reloads once it runs.
    pub sighup: Option<tokio::signal::unix::Signal>,
    /// Baselines to learn into and check against (None: off).
    pub baselines: Option<vigil_baselines::Baselines>,
    /// Outputs (sinks with queues and spools) records also go to.
    pub outputs: Option<Arc<vigil_outputs::Outputs>>,
    /// Serve Prometheus metrics here.
    pub metrics: Option<Arc<vigil_outputs::metrics::Registry>>,
    /// Drop every capability the running agent no longer needs once set up
    /// ([`crate::privs`]); for the `vigil` binary, not for in-process
    /// tests that load sensors again afterwards.
    pub drop_privileges: bool,
    /// Keep the perf history in the data directory for `vigil report`
    /// (when `perf.history` is on too) and write alert captures there
    /// (`capture.alerts`); off for in-process runs (tests, benchmarks),
    /// which must not write to the host's data directory.
    pub perf_history: bool,
    /// Speak systemd's notification protocol when `NOTIFY_SOCKET` is set
    /// ([`crate::pipeline::notify`]): `READY=1` once live, `WATCHDOG=1`
    /// from the event loop; for the `vigil` binary.
    pub sd_notify: bool,
}

impl RunOptions {
    /// Options with no sink, tap, capture or rules.
    pub fn new(config: Config) -> RunOptions {
        RunOptions {
            config,
            sink: None,
            tap: None,
            record: None,
            verbose: false,
            watch_pid: None,
            rules: None,
            sighup: None,
            baselines: None,
            outputs: None,
            metrics: None,
            drop_privileges: false,
            perf_history: false,
            sd_notify: false,
        }
    }

    /// The kernel interest of this run: everything for a capture (it is
    /// replayed later under other rules), else what the rules can match.
    pub fn interest(&self) -> vigil_bpf::Interest {
        let mut i = match (&self.record, &self.rules) {
            (None, Some(r)) => self.config.interest_for(r.interest()),
            _ => self.config.interest(),
        };
        // Opens of the agent's own /proc directory (self-protection).
        if self.record.is_none() {
            i.report_paths
                .push(format!("/proc/{}/", std::process::id()));
        }
        if self.baselines.is_some() {
            let all = self.config.interest();
            i.kinds
                .extend(crate::learn::KINDS.iter().filter(|k| all.kinds.contains(k)));
        }
        i
    }
}

/// Builds the capture context of this host.
pub fn live_context() -> Context {
    Context {
        abi_version: vigil_bpf::abi::ABI_VERSION,
        vigil_version: env!("CARGO_PKG_VERSION").into(),
        hostname: hostname(),
        boot_offset_ns: host::boot_offset_ns(),
        users: Users::load(),
    }
}

/// Errors of a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Sensors failed.
    #[error(transparent)]
    Sensors(#[from] vigil_bpf::Error),
    /// Capture failed.
    #[error(transparent)]
    Capture(#[from] capture::CaptureError),
    /// Ring buffer I/O.
    #[error("ring buffer: {0}")]
    Ring(#[from] std::io::Error),
}

/// Loads and attaches the sensors for `opts` (the first half of a run).
pub fn start_sensors(cfg: &Config, interest: &vigil_bpf::Interest) -> Result<Sensors, RunError> {
    // The agent's messages go through `log`; a program embedding the agent
    // (the benchmarks, the root tests) gets them on stderr too.
    crate::logging::init();
    let mut s = Sensors::load(&cfg.sensor_config(), interest)?;
    if cfg.sensors.kvm {
        // Counters only; a kernel without kvm tracepoints just has none.
        let _ = s.attach_kvm();
    }
    Ok(s)
}

/// Runs until `shutdown` resolves, then drains, flushes and summarizes.
pub async fn run(
    mut opts: RunOptions,
    sensors: &mut Sensors,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Summary, RunError> {
    let started = Instant::now();
    let cfg = opts.config.clone();
    crate::detect::protect_this_process();
    let ctx = live_context();
    let mut recorder = match &opts.record {
        Some(p) => Some(CaptureWriter::create(p, &ctx)?),
        None => None,
    };
    let mut host = LiveHost::new(recorder.is_some());
    let mut pipeline = Pipeline::new(&cfg, &ctx, opts.sink.take(), opts.tap.take());
    pipeline.watch(opts.watch_pid.take());
    if let Some(r) = opts.rules.take() {
        pipeline.set_rules(r);
    }
    if let Some(b) = opts.baselines.take() {
        let mut l = Learner::new(b, true);
        if cfg.baselines.syscalls {
            match sensors.load_syscall_learner() {
                Ok(()) => l.syscalls_on = true,
                Err(e) => log::warn!(
                    "baselines: syscall-set learning unavailable ({e}); seccomp exports will lack learned syscalls"
                ),
            }
        }
        pipeline.set_learner(l);
        match crate::detect::tuning::Tuning::open(&cfg.tuning_path()) {
            Ok(t) => pipeline.set_tuning(t),
            Err(e) => log::warn!("tuning: {e}; learned tuning is off for this run"),
        }
    }
    if let Some(o) = opts.outputs.take() {
        pipeline.set_outputs(o);
    }
    if let Some(reg) = opts.metrics.take() {
        pipeline.set_telemetry(crate::telemetry::Telemetry::new(reg));
    }
    if cfg.outputs.rate_limit_burst > 0 {
        pipeline.set_rate_limit(cfg.outputs.rate_limit_burst, cfg.outputs.rate_limit_per_sec);
    }
    pipeline.set_responder(crate::detect::response::Responder::new(
        cfg.response.monitor,
    ));
    if opts.perf_history
        && let Some(cs) = cfg.capture_settings()
    {
        pipeline.set_capture(
            crate::capture::alert::AlertCapture::new(cs, ctx.clone()),
            cfg.capture.alerts == "all",
        );
    }
    apply_kill_rules(&cfg, pipeline.rules(), sensors, opts.verbose);
    if cfg.hash.enabled {
        match crate::hash::Hasher::new(cfg.hash.settings()) {
            Ok(mut h) => {
                if let Some(p) = &cfg.hash.known_bad_file {
                    match crate::hash::load_hash_list(p) {
                        Ok(set) => h.set_known_bad(set),
                        Err(e) => log::warn!("hash.known_bad_file: {e}"),
                    }
                }
                pipeline.set_hasher(h);
            }
            Err(e) => log::warn!("executable hashing off: cannot start its worker: {e}"),
        }
    }
    let mut hup = opts.sighup.take();
    let prio = sensors.take_priority_ring()?;
    let ring = sensors.take_ring()?;
    let mut reader = RingReader::new(
        prio,
        ring,
        Duration::from_millis(cfg.sensors.drain_interval_ms),
    )?;
    if cfg.perf.ktools_config().any() {
        // kernel symbols of call sites and work functions: readable with
        // CAP_SYSLOG only, which the agent drops next (the kernel checks
        // at open: the file is opened now, read on a thread)
        crate::perf::collector::Kallsyms::preload_in_background();
    }
    // Toggling bpf_stats needs CAP_SYS_ADMIN, which the drop removes: a
    // helper process keeps it for that one job.
    let stats_window = Duration::from_millis(cfg.sensors.bpf_stats_sample_ms);
    let stats_interval = Duration::from_secs(cfg.perf.interval_s.max(1));
    let stats_helper = if opts.drop_privileges
        && sensors.bpf_stats_enabled()
        && !stats_window.is_zero()
        && stats_window < stats_interval
    {
        match crate::privs::StatsHelper::spawn() {
            Ok(h) => Some(h),
            Err(e) => {
                log::warn!(
                    "bpf_stats: no helper ({e}); BPF run time sampled until the capability drop only"
                );
                None
            }
        }
    } else {
        None
    };
    if opts.drop_privileges {
        match crate::privs::drop_to_runtime() {
            Ok(d) if opts.verbose => log::info!(
                "dropped {} capabilities; keeping CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH",
                d.len()
            ),
            Ok(_) => {}
            Err(e) => {
                log::warn!("could not drop capabilities in every thread ({e})")
            }
        }
    }

    // Seed the process table only now that the sensors are attached: a
    // process started during start-up is either in the scan or in the
    // events, never in neither.
    let seed = capture::Seed {
        at_ns: boot_now_ns(),
        procs: host::read_all_procs(),
    };
    pipeline.enricher().seed(&seed.procs, seed.at_ns);
    pipeline
        .enricher()
        .seed_containers(&seed.procs, seed.at_ns, &mut host);
    pipeline.emit_lifecycle();
    if let Some(r) = recorder.as_mut() {
        r.json(capture::frame::SEED, &seed)?;
    }
    // Sensors attached, process table seeded, privileges dropped: tell a
    // service manager that vigil is up (Type=notify).
    let notifier = if opts.sd_notify {
        match super::notify::Notifier::from_env() {
            Ok(n) => n,
            Err(e) => {
                log::warn!("NOTIFY_SOCKET unusable: {e}; not notifying systemd");
                None
            }
        }
    } else {
        None
    };
    if let Some(n) = &notifier {
        let live = sensors.status().iter().filter(|s| s.is_live()).count();
        if let Err(e) = n.ready(&format!("{live}/{} sensors live", sensors.status().len())) {
            log::warn!("cannot notify systemd (READY=1): {e}");
        }
    }
    if opts.verbose {
        // What a script waits for before it scrapes /metrics or expects
        // the pipeline to run (the "sensors live" line comes earlier,
        // before the process table is seeded and telemetry registered).
        log::info!("ready: pipeline running, process table seeded");
    }
    let wd_every = notifier.as_ref().and_then(|n| n.watchdog_interval());
    let mut watchdog = tokio::time::interval(wd_every.unwrap_or(Duration::from_secs(3600)));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The performance objects (run-queue, syscall, TCP, block I/O) load
    // after the seed: their verification takes a second or more, and the
    // process table must not wait for it (a container started just after
    // "ready" would otherwise be taken for one running before vigil).
    let mut perf = start_perf(&cfg, opts.perf_history, opts.verbose);
    let mut psys_coll = start_perfsys(&cfg, opts.verbose);
    let mut ktools = start_ktools(&cfg, opts.verbose);
    let mut profile = start_profile(&cfg, opts.perf_history, opts.verbose);
    // Loading parsed the kernel's BTF for each object (tens of MB, freed
    // since): give those pages back rather than keep them as a high-water
    // mark for the agent's life (RSS 82 -> 47 MiB, anonymous 38 -> 3.5 MiB
    // here); housekeeping does the same after floods.
    crate::telemetry::trim_heap(0.0);
    let mut last_trim = std::time::Instant::now();
    let mut perf_tick = tokio::time::interval(Duration::from_secs(cfg.perf.interval_s.max(1)));
    perf_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    perf_tick.reset();
    // bpf_stats is kernel-wide and costs two clock reads per run of every
    // BPF program on the host: sample it (on for a window at the start of
    // each perf interval) and scale the BPF time by the sampled share.
    let mut stats = StatsSampler::new(sensors.bpf_stats_enabled(), stats_window, stats_interval);
    stats.helper = stats_helper;

    let mut housekeeping = tokio::time::interval(Duration::from_secs(
        cfg.agent.housekeeping_interval_s.max(1),
    ));
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heartbeat =
        tokio::time::interval(Duration::from_secs(cfg.agent.heartbeat_interval_s.max(1)));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let heartbeats = cfg.agent.heartbeat_interval_s > 0;
    let mut last_dropped: BTreeMap<u16, u64> = BTreeMap::new();
    let mut swept = (0u64, 0u64);
    let mut rec_err: Option<capture::CaptureError> = None;
    tokio::pin!(shutdown);

    let mut on_sample = |pipeline: &mut Pipeline,
                         host: &mut LiveHost,
                         s: &[u8],
                         rec: &mut Option<CaptureWriter>| {
        pipeline.handle(s, host);
        if let Some(r) = rec.as_mut() {
            let l = host.take_log();
            if let Err(e) = r.lookups(l).and_then(|()| r.record(s))
                && rec_err.is_none()
            {
                rec_err = Some(e);
            }
        }
    };

    loop {
        tokio::select! {
            r = reader.read_batch(|s| on_sample(&mut pipeline, &mut host, s, &mut recorder)) => {
                pipeline.end_batch();
                r?;
                pipeline.apply_learning(sensors);
            }
            _ = housekeeping.tick() => {
                let alive = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
                if let Ok((n, c)) = sensors.sweep_dedup(alive) {
                    swept.0 += n;
                    swept.1 += c;
                }
                pipeline.enricher().expire(boot_now_ns(), 30_000_000_000);
                pipeline.enricher().tracker().sweep(alive, boot_now_ns());
                pipeline.emit_lifecycle();
                if let Ok(counters) = sensors.counters() {
                    report_drops(&mut pipeline, &counters, &mut last_dropped, opts.verbose);
                }
                pipeline.collect_syscalls(sensors);
                pipeline.apply_learning(sensors);
                if cfg.sensors.kvm {
                    pipeline.collect_kvm(sensors);
                    let _ = sensors.sweep_kvm(alive);
                }
                pipeline.baseline_housekeeping(alive, opts.verbose);
                pipeline.poll_hashes();
                pipeline.capture_tick(false);
                pipeline.sweep_rate_limits();
                if last_trim.elapsed() >= Duration::from_secs(30) {
                    last_trim = std::time::Instant::now();
                    crate::telemetry::trim_heap(8.0 * 1048576.0);
                }
                if pipeline.has_telemetry() {
                    let kernel = sensors.counters().unwrap_or_default();
                    let programs = all_program_stats(sensors, perf.as_ref(), psys_coll.as_ref(), ktools.as_ref(), profile.as_ref());
                    let decoded = pipeline.stats.decoded.clone();
                    pipeline.with_telemetry(|t| t.update(&decoded, &kernel, &programs));
                    let mut tables = Vec::with_capacity(32);
                    pipeline.table_sizes(&mut tables);
                    tables.push(("cgroup_paths", host.cgroup_paths_known()));
                    for c in tools(&mut perf, &mut ktools, &mut profile, &mut psys_coll) {
                        c.table_sizes(&mut tables);
                    }
                    pipeline.with_telemetry(|t| t.state(&tables));
                }
                pipeline.flush();
            }
            _ = tokio::time::sleep_until(stats.off_at().unwrap_or_else(std::time::Instant::now).into()), if stats.off_at().is_some() => {
                stats.window_end(sensors);
            }
            _ = perf_tick.tick(), if perf.is_some() || psys_coll.is_some() || ktools.is_some() || profile.is_some() => {
                let bpf_scale = stats.interval_end(sensors);
                collect_tools(&mut pipeline, &mut host, sensors, bpf_scale, &mut perf, &mut ktools, &mut profile, &mut psys_coll);
                pipeline.flush();
            }
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                if let Some(n) = &notifier {
                    let _ = n.reloading();
                }
                pipeline.reopen_outputs(opts.verbose);
                reload_rules(&cfg, &mut pipeline, sensors, opts.verbose);
                if let Some(n) = &notifier {
                    let _ = n.ready("rules reloaded");
                }
            }
            _ = watchdog.tick(), if wd_every.is_some() => {
                if let Some(n) = &notifier {
                    let _ = n.watchdog();
                }
            }
            _ = heartbeat.tick(), if heartbeats => {
                // every event read so far handled: the counters are exact
                pipeline.sync();
                let dropped: u64 = last_dropped.values().sum();
                let rec = heartbeat_record(&pipeline, started.elapsed(), dropped);
                pipeline.write_raw(&rec);
                pipeline.flush();
            }
            () = &mut shutdown => break,
        }
    }
    if let Some(n) = &notifier {
        let _ = n.stopping();
    }
    // Stop emitting, then drain what the kernel still holds: the counters
    // read after this match what was delivered.
    if let Err(e) = sensors.quiesce()
        && opts.verbose
    {
        log::warn!("could not quiesce sensors before the final drain: {e}");
    }
    // a program that passed its interest check just before may still be
    // writing its record
    std::thread::sleep(Duration::from_millis(2));
    reader.drain(|s| on_sample(&mut pipeline, &mut host, s, &mut recorder));
    // every worker finishes what it was handed before the hashes' follow-ups
    pipeline.sync();
    pipeline.drain_hashes(Duration::from_secs(1));
    pipeline.capture_tick(true);
    if let Some(h) = pipeline.hasher() {
        pipeline.stats.hash = h.stats.clone();
    }
    let kernel = sensors.counters().unwrap_or_default();
    report_drops(&mut pipeline, &kernel, &mut last_dropped, opts.verbose);
    pipeline.collect_syscalls(sensors);
    if cfg.sensors.kvm {
        pipeline.collect_kvm(sensors);
    }
    let bpf_scale = stats.interval_end(sensors);
    collect_tools(
        &mut pipeline,
        &mut host,
        sensors,
        bpf_scale,
        &mut perf,
        &mut ktools,
        &mut profile,
        &mut psys_coll,
    );
    let programs = all_program_stats(
        sensors,
        perf.as_ref(),
        psys_coll.as_ref(),
        ktools.as_ref(),
        profile.as_ref(),
    );
    drop(ktools);
    drop(profile);
    drop(psys_coll);
    drop(perf);
    pipeline.baseline_housekeeping(|_| true, opts.verbose);
    pipeline.flush();
    let mut recorded = 0;
    if let Some(mut r) = recorder {
        r.json(capture::frame::SUMMARY, &kernel_json(&kernel))?;
        r.flush()?;
        recorded = r.records;
    }
    if let Some(e) = rec_err {
        return Err(e.into());
    }
    Ok(Summary {
        elapsed: started.elapsed(),
        kernel,
        programs,
        pipeline: pipeline.stats.clone(),
        dedup_swept: swept,
        recorded,
        attach_time: sensors.attach_time,
    })
}

/// Loads the scheduler sensors and the perf collector `[perf]` asks for.
/// The history is kept only when asked (`vigil run`) and the data
/// directory is usable.
fn start_perf(cfg: &Config, history: bool, verbose: bool) -> Option<crate::perf::PerfCollector> {
    let p = &cfg.perf;
    let sched = if p.runqlat || p.pidnss {
        match vigil_bpf::sched::Sched::load(&vigil_bpf::sched::SchedConfig {
            runqlat: p.runqlat,
            pidnss: p.pidnss,
            raw_tp_only: false,
        }) {
            Ok(s) => {
                if verbose {
                    super::warn_unavailable(s.status());
                }
                Some(s)
            }
            Err(e) => {
                log::warn!("scheduler sensors (runqlat, pidnss) unavailable: {e}");
                None
            }
        }
    } else {
        None
    };
    if sched.is_none() && !p.cpu_steal {
        return None;
    }
    let dir = if history && p.history {
        match cfg.ensure_data_dir() {
            Ok(()) => Some(cfg.agent.data_dir.clone()),
            Err(e) => {
                log::warn!("perf history off: {e}");
                None
            }
        }
    } else {
        None
    };
    let perf = crate::perf::PerfCollector::new(p, dir.as_deref()).with_sched(sched);
    if verbose && let Some(h) = perf.history_path() {
        log::info!(
            "perf: run-queue latency, pid-namespace switches and CPU steal every {} s; history in {} (`vigil report`)",
            p.interval_s,
            h.display()
        );
    }
    Some(perf)
}

/// Run count and time of every vigil BPF program: the security sensors,
/// the scheduler object and the perfsys object.
/// Samples `bpf_stats`: on for `window` at the start of each perf
/// interval, off for the rest (`window` zero or not shorter than the
/// interval: on all the time).
struct StatsSampler {
    enabled: bool,
    window: Duration,
    on_since: Option<std::time::Instant>,
    sampled: Duration,
    interval_start: std::time::Instant,
    off_at: Option<std::time::Instant>,
    /// Hands out stats descriptors once the agent lost CAP_SYS_ADMIN.
    helper: Option<crate::privs::StatsHelper>,
}

impl StatsSampler {
    fn new(on_now: bool, window: Duration, interval: Duration) -> StatsSampler {
        let now = std::time::Instant::now();
        let sampling = on_now && !window.is_zero() && window < interval;
        StatsSampler {
            enabled: on_now,
            window: if sampling { window } else { Duration::ZERO },
            on_since: on_now.then_some(now),
            sampled: Duration::ZERO,
            interval_start: now,
            off_at: sampling.then(|| now + window),
            helper: None,
        }
    }

    /// When the current window closes (None: not sampling or closed).
    fn off_at(&self) -> Option<std::time::Instant> {
        self.off_at
    }

    fn window_end(&mut self, sensors: &mut Sensors) {
        self.off_at = None;
        if let Some(t) = self.on_since.take() {
            self.sampled += t.elapsed();
        }
        let _ = sensors.set_bpf_stats(false);
    }

    /// Ends an interval: returns the factor that scales the BPF time
    /// counted in it to the whole interval, and opens the next window.
    fn interval_end(&mut self, sensors: &mut Sensors) -> f64 {
        let now = std::time::Instant::now();
        let mut sampled = self.sampled;
        if let Some(t) = self.on_since {
            sampled += now.duration_since(t);
        }
        let total = now.duration_since(self.interval_start);
        self.interval_start = now;
        self.sampled = Duration::ZERO;
        if self.on_since.is_some() {
            self.on_since = Some(now);
        }
        if self.enabled && !self.window.is_zero() && self.on_since.is_none() {
            let on = match &self.helper {
                Some(h) => h
                    .enable()
                    .map(|fd| sensors.set_bpf_stats_fd(Some(fd)))
                    .map_err(|e| format!("stats helper: {e}")),
                None => sensors.set_bpf_stats(true),
            };
            match on {
                Ok(()) => {
                    self.on_since = Some(now);
                    self.off_at = Some(now + self.window);
                }
                Err(e) => {
                    log::warn!("bpf_stats: cannot re-enable ({e}); BPF run time no longer sampled");
                    self.enabled = false;
                }
            }
        }
        if sampled.is_zero() {
            1.0
        } else {
            total.as_secs_f64() / sampled.as_secs_f64()
        }
    }
}

fn all_program_stats(
    sensors: &Sensors,
    perf: Option<&crate::perf::PerfCollector>,
    psys: Option<&crate::perfsys::PerfsysCollector>,
    kt: Option<&crate::perf::ktools::KtoolsCollector>,
    pf: Option<&crate::perf::profile::ProfileCollector>,
) -> Vec<vigil_bpf::ProgramStat> {
    let mut v = sensors.program_stats();
    if let Some(p) = pf {
        v.extend(p.profile().program_stats());
    }
    if let Some(k) = kt {
        v.extend(k.ktools().program_stats());
    }
    if let Some(s) = perf.and_then(|p| p.sched()) {
        v.extend(s.program_stats());
    }
    if let Some(p) = psys.and_then(|p| p.perfsys()) {
        v.extend(p.program_stats());
    }
    v
}

/// Every performance tool's collector that is running, in collection
/// order (the perfsys one last: it measures the others' BPF cost).
fn tools<'a>(
    perf: &'a mut Option<crate::perf::PerfCollector>,
    kt: &'a mut Option<crate::perf::ktools::KtoolsCollector>,
    pf: &'a mut Option<crate::perf::profile::ProfileCollector>,
    psys: &'a mut Option<crate::perfsys::PerfsysCollector>,
) -> Vec<&'a mut dyn crate::perf::collector::Collector> {
    let mut v: Vec<&'a mut dyn crate::perf::collector::Collector> = Vec::with_capacity(4);
    if let Some(p) = perf.as_mut() {
        v.push(p);
    }
    if let Some(k) = kt.as_mut() {
        v.push(k);
    }
    if let Some(p) = pf.as_mut() {
        v.push(p);
    }
    if let Some(p) = psys.as_mut() {
        v.push(p);
    }
    v
}

/// One perf interval of every tool: each collector through
/// [`Pipeline::collect_tool`], then the summary's totals.
#[allow(clippy::too_many_arguments)] // one Option per tool object
fn collect_tools(
    pipeline: &mut Pipeline,
    host: &mut LiveHost,
    sensors: &Sensors,
    bpf_scale: f64,
    perf: &mut Option<crate::perf::PerfCollector>,
    kt: &mut Option<crate::perf::ktools::KtoolsCollector>,
    pf: &mut Option<crate::perf::profile::ProfileCollector>,
    psys: &mut Option<crate::perfsys::PerfsysCollector>,
) {
    let programs = all_program_stats(
        sensors,
        perf.as_ref(),
        psys.as_ref(),
        kt.as_ref(),
        pf.as_ref(),
    );
    for c in tools(perf, kt, pf, psys) {
        pipeline.collect_tool(c, host, &programs, bpf_scale);
    }
    if let Some(p) = perf.as_ref() {
        pipeline.stats.runqlat.clone_from(&p.totals);
        pipeline.stats.pidnss.clone_from(&p.pidnss_totals);
    }
    if let Some(k) = kt.as_ref() {
        pipeline.stats.ktools.clone_from(&k.totals);
    }
    if let Some(p) = pf.as_ref() {
        pipeline.stats.profile.clone_from(&p.totals);
    }
    if let Some(c) = psys.as_ref() {
        pipeline.stats.perfsys.clone_from(&c.totals);
    }
}

/// Loads the system performance sensors (syscall errors, TCP
/// retransmits/resets, block I/O) and the collector `[perf]` asks for; the
/// collector also runs alone for vigil's own cost (`self_cost`).
fn start_perfsys(cfg: &Config, verbose: bool) -> Option<crate::perfsys::PerfsysCollector> {
    let p = &cfg.perf;
    let ps = if p.perfsys_on() {
        match vigil_bpf::perfsys::Perfsys::load(&p.perfsys_config()) {
            Ok(s) => {
                if verbose {
                    super::warn_unavailable(s.status());
                }
                Some(s)
            }
            Err(e) => {
                log::warn!(
                    "system performance sensors (syscount, tcpretrans, tcpreset, biolatency) unavailable: {e}"
                );
                None
            }
        }
    } else {
        None
    };
    if ps.is_none() && !p.self_cost {
        return None;
    }
    Some(crate::perfsys::PerfsysCollector::new(p).with_perfsys(ps))
}

/// Loads the kernel-work tools `[perf]` asks for (kmem, slabratetop,
/// kpages, numamove, workq, softirqs, hardirqs, tasklets) and their
/// collector.
fn start_ktools(cfg: &Config, verbose: bool) -> Option<crate::perf::ktools::KtoolsCollector> {
    let kc = cfg.perf.ktools_config();
    if !kc.any() {
        return None;
    }
    match vigil_bpf::ktools::Ktools::load(&kc) {
        Ok(k) => {
            if verbose {
                super::warn_unavailable(k.status());
            }
            Some(crate::perf::ktools::KtoolsCollector::new(k, &cfg.perf))
        }
        Err(e) => {
            log::warn!(
                "kernel-work tools (kmem, kpages, slabratetop, numamove, workq, softirqs, hardirqs, tasklets) unavailable: {e}"
            );
            None
        }
    }
}

/// Loads the CPU profiler when `[perf] profile` is on, with its
/// collector; the folded stacks are kept beside the perf history.
fn start_profile(
    cfg: &Config,
    history: bool,
    verbose: bool,
) -> Option<crate::perf::profile::ProfileCollector> {
    let p = &cfg.perf;
    if !p.profile {
        return None;
    }
    let pf = match vigil_bpf::profile::Profile::load(&vigil_bpf::profile::ProfileConfig {
        hz: p.profile_hz,
    }) {
        Ok(pf) => pf,
        Err(e) => {
            log::warn!("CPU profiler (profile) unavailable: {e}");
            return None;
        }
    };
    if !super::unavailable_lines(pf.status()).is_empty() {
        super::warn_unavailable(pf.status());
        return None;
    }
    let dir =
        (history && p.history && cfg.ensure_data_dir().is_ok()).then(|| cfg.agent.data_dir.clone());
    let c = crate::perf::profile::ProfileCollector::new(pf, p, dir.as_deref());
    if verbose {
        log::info!(
            "profile: {} Hz per CPU; folded stacks in {}",
            p.profile_hz,
            c.folded_path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(not kept)".into())
        );
    }
    Some(c)
}

/// A heartbeat: the agent is alive, with its running totals.
fn heartbeat_record(p: &Pipeline, uptime: Duration, dropped: u64) -> Vec<u8> {
    let mut w = vigil_outputs::json::Writer::new();
    w.str(
        "@timestamp",
        ecs::rfc3339(host::boot_offset_ns() + boot_now_ns() as i64),
    )
    .str("event.kind", "metric")
    .str("event.action", "heartbeat")
    .str("event.module", "vigil")
    .str("host.hostname", p.hostname())
    .u64("vigil.heartbeat.uptime_s", uptime.as_secs())
    .u64("vigil.heartbeat.events", p.stats.decoded.values().sum())
    .u64("vigil.heartbeat.alerts", p.stats.alerts)
    .u64("vigil.heartbeat.anomalies", p.stats.anomalies)
    .u64("vigil.heartbeat.dropped", dropped)
    .u64("vigil.heartbeat.written", p.stats.written)
    .u64("vigil.heartbeat.pid", std::process::id().into());
    w.finish()
}

/// SIGHUP: reloads the configured rules; on any error the running set stays.
fn reload_rules(cfg: &Config, pipeline: &mut Pipeline, sensors: &mut Sensors, verbose: bool) {
    if let (Some(p), Some(h)) = (&cfg.hash.known_bad_file, pipeline.hasher()) {
        match crate::hash::load_hash_list(p) {
            Ok(set) => {
                if verbose {
                    log::info!("known-bad hash list reloaded: {} hashes", set.len());
                }
                h.set_known_bad(set);
            }
            Err(e) => log::warn!(
                "hash.known_bad_file: {e}; keeping the {} hashes in use",
                h.known_bad_len()
            ),
        }
    }
    let (set, report) = crate::detect::load_rules(cfg);
    if !report.errors.is_empty() {
        for l in crate::detect::render_errors(&report).lines() {
            log::error!("{l}");
        }
        log::error!(
            "rule reload failed with {} errors; keeping the {} rules in use",
            report.errors.len(),
            pipeline.rules().len()
        );
        return;
    }
    if let Err(e) = sensors.apply_interest(&cfg.interest_for(set.interest())) {
        log::warn!(
            "rule reload: cannot update the kernel interest maps ({e}); keeping the rules in use"
        );
        return;
    }
    let set = Arc::new(set);
    apply_kill_rules(cfg, &set, sensors, verbose);
    pipeline.set_rules(set);
    // only now: the kill maps and the rule set are both in use
    if verbose {
        log::info!(
            "rules reloaded: {} vigil, {} Sigma ({} Sigma rules skipped)",
            report.vigil_rules,
            report.sigma_rules,
            report.skipped.len()
        );
    }
}

/// Compiles the kernel-decidable `action: kill` rules into the sensor's
/// kill maps ([`crate::detect::response::kernel_plan`]).
fn apply_kill_rules(cfg: &Config, set: &RuleSet, sensors: &mut Sensors, verbose: bool) {
    let (plan, ids) = crate::detect::response::kernel_plan_of(set);
    // SAFETY: getppid has no preconditions.
    let supervisor = unsafe { libc::getppid() } as u32;
    match sensors.set_kill_rules(&plan, cfg.response.monitor, supervisor) {
        Ok(()) => {
            if verbose && !ids.is_empty() {
                log::info!(
                    "kill rules decided in the kernel{}: {}",
                    if cfg.response.monitor {
                        " (monitor mode: would kill)"
                    } else {
                        ""
                    },
                    ids.join(", ")
                );
            }
        }
        Err(e) => log::warn!(
            "cannot load the kill rules into the kernel ({e}); rules with action: kill kill from userspace"
        ),
    }
}

fn kernel_json(k: &BTreeMap<u16, Counters>) -> serde_json::Value {
    let m: serde_json::Map<String, serde_json::Value> = k
        .iter()
        .map(|(kind, c)| {
            (
                kind.to_string(),
                serde_json::json!({"emitted": c.emitted, "dropped": c.dropped, "dropped_priority": c.dropped_prio, "demoted": c.demoted, "filtered": c.filtered, "deduped": c.deduped}),
            )
        })
        .collect();
    serde_json::Value::Object(m)
}

/// Emits a metric record and a warning when a sensor's drop count grew.
fn report_drops(
    p: &mut Pipeline,
    counters: &BTreeMap<u16, Counters>,
    last: &mut BTreeMap<u16, u64>,
    verbose: bool,
) {
    for (k, c) in counters {
        let prev = last.get(k).copied().unwrap_or(0);
        if c.dropped > prev {
            let sensor = vigil_bpf::sensors::sensor_of_kind(*k)
                .map(|s| s.name)
                .unwrap_or("?");
            let mut w = vigil_outputs::json::Writer::new();
            w.str(
                "@timestamp",
                ecs::rfc3339(host::boot_offset_ns() + boot_now_ns() as i64),
            )
            .str("event.kind", "metric")
            .str("event.action", "sensor-drops")
            .str("event.module", "vigil")
            .str("host.hostname", p.hostname())
            .str("vigil.sensor", sensor)
            .u64("vigil.drops.new", c.dropped - prev)
            .u64("vigil.drops.total", c.dropped)
            .u64("vigil.drops.priority_total", c.dropped_prio);
            let rec = w.finish();
            p.write_raw(&rec);
            let lost = c.dropped - prev;
            p.with_learner(|l| {
                l.baselines
                    .note_loss(host::boot_offset_ns() + boot_now_ns() as i64, lost)
            });
            if verbose {
                log::warn!(
                    "sensor={sensor} dropped={} total={}: ring buffer full; alerts in this window carry vigil.after_loss",
                    c.dropped - prev,
                    c.dropped
                );
            }
            last.insert(*k, c.dropped);
        }
    }
}

/// An agent running on its own thread (tests, benchmark).
pub struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: mpsc::Receiver<Result<Summary, String>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Sensor status at start.
    pub status: Vec<SensorStatus>,
}

impl Running {
    /// Starts an agent on a new thread; returns once sensors are attached.
    pub fn spawn(opts: RunOptions) -> Result<Running, String> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<Vec<SensorStatus>, String>>();
        let (done_tx, done_rx) = mpsc::channel::<Result<Summary, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("vigil-agent".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut sensors = match start_sensors(&opts.config, &opts.interest()) {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    // kill rules are live before "ready"
                    if let Some(r) = &opts.rules {
                        apply_kill_rules(&opts.config, r, &mut sensors, false);
                    }
                    let _ = ready_tx.send(Ok(sensors.status().to_vec()));
                    let r = run(opts, &mut sensors, async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .map_err(|e| e.to_string());
                    // Hand the summary over first: detaching (in the drop)
                    // waits for kernel grace periods.
                    let _ = done_tx.send(r);
                    drop(sensors);
                })
            })
            .map_err(|e| e.to_string())?;
        match ready_rx.recv() {
            Ok(Ok(status)) => Ok(Running {
                stop: Some(stop_tx),
                done: done_rx,
                thread: Some(thread),
                status,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err("agent thread died during start".into())
            }
        }
    }

    /// Stops the agent and returns its summary; its programs finish
    /// detaching in the background.
    pub fn stop(mut self) -> Result<Summary, String> {
        self.stop_inner()
    }

    /// Stops the agent and also waits until every program is detached
    /// (benchmarks: nothing of this agent may run during the next
    /// measurement).
    pub fn stop_and_detach(mut self) -> Result<Summary, String> {
        let r = self.stop_inner();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        r
    }

    fn stop_inner(&mut self) -> Result<Summary, String> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.done
            .recv()
            .map_err(|_| "agent thread ended without a summary (panicked)".to_string())?
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.stop.is_some() {
            let _ = self.stop_inner();
        }
    }
}
