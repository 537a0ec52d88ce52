//! The second half of the pipeline, after enrichment: rules, correlations,
//! baselines (learning and drift), learned tuning, alerts and the encoding
//! and writing of every record (`Back`), and the workers that run it on
//! several threads (`Pool`).
//!
//! The ordered work (ring drain, decode, the process table and the rest of
//! enrichment) stays on the agent's thread. With `[pipeline] workers` above
//! 1 the enriched events are sharded by process (a hash of the tgid), so
//! every record of one process is handled by one worker, in the order it
//! was read: the output keeps the order of each process's records, not the
//! interleaving of different processes. With one worker the agent's thread
//! runs `Back` itself, inline, as a single-threaded pipeline would.
//!
//! What the workers share (the sink, the outputs, the learner and tuning,
//! the correlation state, the rate limiter, the alert capture and the
//! metrics) sits in `Shared` behind locks; each worker has its own rule
//! scratch, encoder cache and counters, merged into the agent's at every
//! `Pool::sync` (heartbeats, flushes, shutdown), so the counters are exact
//! whenever they are read.

use crate::capture::alert::AlertCapture;
use crate::detect::response::Responder;
use crate::detect::tuning::Tuning;
use crate::ecs;
use crate::enrich::Event;
use crate::host;
use crate::learn::Learner;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};
use vigil_outputs::Sink;
use vigil_outputs::ratelimit::{Decision, RateLimiter};
use vigil_outputs::{Kind as OKind, Severity as OSeverity};
use vigil_rules::{RuleSet, Scratch};

use super::agent::{HASH_WAITING_MAX, PipelineStats, boot_now_ns};

/// Locks, surviving a worker that panicked while holding the lock (its
/// state is still the last consistent one the lock protected).
pub(crate) fn lk<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the outputs need besides the JSON bytes.
pub(crate) struct Meta<'a> {
    pub kind: OKind,
    pub severity: OSeverity,
    pub rule_id: Option<&'a str>,
    pub rule_name: Option<&'a str>,
    pub ruleset: Option<&'a str>,
    pub message: &'a [u8],
}

/// The [`Meta`] of an event record (`event.kind: event`): an enriched
/// event and its late-hash follow-up alike; `action` is the message.
pub(crate) fn event_meta(action: &[u8]) -> Meta<'_> {
    Meta {
        kind: OKind::Event,
        severity: OSeverity::Info,
        rule_id: None,
        rule_name: None,
        ruleset: None,
        message: action,
    }
}

fn severity_of(s: vigil_rules::Severity) -> OSeverity {
    match s {
        vigil_rules::Severity::Info => OSeverity::Info,
        vigil_rules::Severity::Low => OSeverity::Low,
        vigil_rules::Severity::Medium => OSeverity::Medium,
        vigil_rules::Severity::High => OSeverity::High,
        vigil_rules::Severity::Critical => OSeverity::Critical,
    }
}

/// The learner and the learned tuning: one lock, since tuning asks the
/// learner for the event's profile.
#[derive(Default)]
pub(crate) struct Learning {
    pub learner: Option<Learner>,
    pub tuning: Option<Tuning>,
}

/// State every [`Back`] shares.
pub(crate) struct Shared {
    pub hostname: String,
    pub emit_events: bool,
    pub sink: Option<Mutex<Box<dyn Sink>>>,
    pub outputs: OnceLock<Arc<vigil_outputs::Outputs>>,
    pub learning: Mutex<Learning>,
    /// A learner is set (spares the lock when none is).
    pub learning_on: AtomicBool,
    pub corr: Mutex<vigil_rules::CorrState>,
    pub limiter: Mutex<Option<RateLimiter>>,
    pub capture: Mutex<Option<AlertCapture>>,
    pub capture_all: AtomicBool,
    pub telemetry: Mutex<Option<crate::telemetry::Telemetry>>,
    pub responder: OnceLock<Responder>,
    /// Events waiting for their executable's hash, all workers together.
    pub hash_waiting_events: AtomicUsize,
}

impl Shared {
    pub(crate) fn new(
        hostname: String,
        emit_events: bool,
        sink: Option<Box<dyn Sink>>,
        corr_max: usize,
    ) -> Shared {
        Shared {
            hostname,
            emit_events,
            sink: sink.map(Mutex::new),
            outputs: OnceLock::new(),
            learning: Mutex::new(Learning::default()),
            learning_on: AtomicBool::new(false),
            corr: Mutex::new(vigil_rules::CorrState::new(corr_max)),
            limiter: Mutex::new(None),
            capture: Mutex::new(None),
            capture_all: AtomicBool::new(true),
            telemetry: Mutex::new(None),
            responder: OnceLock::new(),
            hash_waiting_events: AtomicUsize::new(0),
        }
    }
}

/// A hash that finished after its events were handled, for the back that
/// holds them.
#[derive(Clone)]
pub(crate) struct HashDone {
    pub ticket: u64,
    pub result: Result<Arc<str>, &'static str>,
    pub known_bad: bool,
}

/// One enriched event for a back, with the hash ticket it waits for.
pub(crate) struct Item {
    pub ev: Event,
    pub ticket: Option<u64>,
    /// The baseline's verdict, taken before the event waited for its hash
    /// ([`Back::early_drift`]): its anomalies and what their drift kill
    /// did. None: the baseline sees the event in [`Back::process`].
    pub early: Option<Vec<Early>>,
}

/// An anomaly found before the hash wait, with its drift kill's outcome.
pub(crate) type Early = (
    vigil_baselines::Anomaly,
    Option<crate::learn::DriftResponse>,
);

/// The per-event half of the pipeline (one per worker, or the agent's own).
pub(crate) struct Back {
    pub sh: Arc<Shared>,
    rules: Arc<RuleSet>,
    scratch: Scratch,
    enc_cache: ecs::EncodeCache,
    enc_buf: Vec<u8>,
    /// ticket -> events written pending, with the rules they matched.
    waiting: HashMap<u64, Vec<(Event, Vec<String>)>>,
    tap: Option<mpsc::Sender<Event>>,
    /// A worker's records for the sink, written under one lock per batch
    /// (`out_ends`: where each ends); None: written one by one.
    out: Option<Vec<u8>>,
    out_ends: Vec<usize>,
}

impl Back {
    pub(crate) fn new(
        sh: Arc<Shared>,
        rules: Arc<RuleSet>,
        tap: Option<mpsc::Sender<Event>>,
    ) -> Back {
        Back {
            sh,
            rules,
            scratch: Scratch::new(),
            enc_cache: ecs::EncodeCache::default(),
            enc_buf: Vec::new(),
            waiting: HashMap::new(),
            tap,
            out: None,
            out_ends: Vec::new(),
        }
    }

    /// Collects the sink's records until [`Back::flush_out`] (workers).
    fn batch_output(&mut self) {
        self.out = Some(Vec::with_capacity(128 << 10));
    }

    /// Writes the records collected for the sink, in order, under one lock.
    pub(crate) fn flush_out(&mut self, st: &mut PipelineStats) {
        // the outputs' staged records go to their threads with the batch
        if let Some(o) = self.sh.outputs.get() {
            o.flush_staged();
        }
        let (Some(out), Some(s)) = (self.out.as_mut(), self.sh.sink.as_ref()) else {
            return;
        };
        if self.out_ends.is_empty() {
            return;
        }
        let mut sink = lk(s);
        let mut from = 0;
        for &end in &self.out_ends {
            match sink.write_record(&out[from..end]) {
                Ok(()) => st.written += 1,
                Err(_) => st.write_errors += 1,
            }
            from = end;
        }
        drop(sink);
        out.clear();
        self.out_ends.clear();
    }

    pub(crate) fn set_rules(&mut self, r: Arc<RuleSet>) {
        self.rules = r;
    }

    /// Rules, correlations, baselines, tuning, alerts and the event itself.
    pub(crate) fn process(&mut self, item: Item, st: &mut PipelineStats) {
        let Item { ev, ticket, early } = item;
        #[cfg(test)]
        if ev.k.hdr.pid != 0 && ev.k.hdr.pid == tests::PANIC_ON_PID.load(Ordering::Relaxed) {
            panic!("injected panic on pid {}", ev.k.hdr.pid);
        }
        // The set is shared (a reload swaps it): hold it for this event.
        let rules = Arc::clone(&self.rules);
        let mut matched = Vec::new();
        rules.evaluate(&ev, &mut self.scratch, &mut matched);
        if !rules.correlations().is_empty() {
            let mut fired = Vec::new();
            let ev_ns = ev.unix_ns.max(0) as u64;
            {
                let mut corr = lk(&self.sh.corr);
                rules.correlate(&mut corr, &matched, &ev, ev_ns, &mut fired);
                st.correlation_evictions = st.correlation_evictions.max(corr.evictions());
            }
            // Rules that only feed correlations raise no alert of their own.
            matched.retain(|r| !rules.is_quiet(r));
            matched.extend(fired);
        }
        let mut demoted = false;
        let mut anomalies = Vec::new();
        let seen_early = early.is_some();
        if self.sh.learning_on.load(Ordering::Relaxed) {
            let mut g = lk(&self.sh.learning);
            let Learning { learner, tuning } = &mut *g;
            if let Some(l) = learner.as_mut()
                && !seen_early
            {
                anomalies = l.observe(&ev);
            }
            if let (Some(t), Some(l)) = (tuning.as_mut(), learner.as_mut())
                && !matched.is_empty()
                && let Some((profile, mode)) = l.profile_mode(&ev)
            {
                let learning = mode == vigil_baselines::Mode::Learning;
                matched.retain(|r| {
                    let normal = t.offer(r, &profile, learning, &ev);
                    if normal {
                        *st.demoted_by_rule.entry(r.id.clone()).or_default() += 1;
                        demoted = true;
                    }
                    !normal
                });
            }
        }
        for a in &anomalies {
            self.emit_anomaly(a, Some(&ev), st);
        }
        for (a, r) in early.unwrap_or_default() {
            self.write_anomaly(&a, Some(&ev), r, st);
        }
        self.raise(&ev, &matched, st);
        if let Some(t) = ticket {
            self.wait_for_hash(t, &ev, &matched, st);
        }
        self.emit_event(ev, demoted, st);
    }

    /// Events held waiting for their hash: a worker that panicked lets
    /// go of them (counted as lost) and of their share of the global count.
    fn drop_waiting(&mut self) -> u64 {
        let n: usize = self.waiting.drain().map(|(_, v)| v.len()).sum();
        let _ =
            self.sh
                .hash_waiting_events
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                    Some(w.saturating_sub(n))
                });
        n as u64
    }

    /// Keeps a pending event until its hash comes (or counts it).
    fn wait_for_hash(
        &mut self,
        ticket: u64,
        ev: &Event,
        matched: &[&vigil_rules::Rule],
        st: &mut PipelineStats,
    ) {
        let n = self.sh.hash_waiting_events.fetch_add(1, Ordering::Relaxed);
        if n >= HASH_WAITING_MAX {
            self.sh.hash_waiting_events.fetch_sub(1, Ordering::Relaxed);
            st.hash_unfollowed += 1;
            return;
        }
        self.waiting
            .entry(ticket)
            .or_default()
            .push((ev.clone(), matched.iter().map(|r| r.id.clone()).collect()));
    }

    /// A hash that finished after its events were written: one `exec-hash`
    /// record per waiting event, and the alerts of rules that match only
    /// now that the hash is known.
    pub(crate) fn hash_done(&mut self, d: &HashDone, st: &mut PipelineStats) {
        let Some(events) = self.waiting.remove(&d.ticket) else {
            return;
        };
        self.sh
            .hash_waiting_events
            .fetch_sub(events.len(), Ordering::Relaxed);
        for (mut ev, already) in events {
            ev.hash_pending = false;
            match &d.result {
                Ok(x) => {
                    ev.hash_known_bad = d.known_bad;
                    if let Some(p) = ev.process.as_mut() {
                        Arc::make_mut(p).hash = Some(x.clone());
                    }
                }
                Err(why) => ev.hash_skipped = Some(why),
            }
            let rules = Arc::clone(&self.rules);
            let mut matched = Vec::new();
            rules.evaluate(&ev, &mut self.scratch, &mut matched);
            matched.retain(|r| !already.contains(&r.id));
            if self.sh.emit_events || !already.is_empty() || !matched.is_empty() {
                st.hash_late += 1;
                let json = crate::ecs::encode_hash_followup(&ev, &self.sh.hostname);
                self.emit(&json, event_meta(b"exec-hash"), Some(&ev), st);
            }
            self.raise(&ev, &matched, st);
        }
    }

    /// Writes the alerts of these rules for this event (rate-limited).
    pub(crate) fn raise(
        &mut self,
        ev: &Event,
        matched: &[&vigil_rules::Rule],
        st: &mut PipelineStats,
    ) {
        for r in matched {
            // the kill comes first: a rate-limited alert still kills
            let response = match (self.sh.responder.get(), r.action) {
                (Some(resp), vigil_rules::Action::Kill) => {
                    let x = resp.respond(ev, boot_now_ns());
                    *st.responses.entry(x.outcome).or_default() += 1;
                    Some(x)
                }
                _ => None,
            };
            st.alerts += 1;
            *st.alerts_by_rule.entry(r.id.clone()).or_default() += 1;
            if let Some(t) = lk(&self.sh.telemetry).as_mut() {
                t.alert(&r.id, r.severity.as_str());
            }
            let decision = lk(&self.sh.limiter)
                .as_mut()
                .map(|l| l.check(&r.id, ev.unix_ns.max(0) as u64));
            match decision {
                Some(Decision::Suppress) => {
                    st.suppressed += 1;
                    if let Some(t) = lk(&self.sh.telemetry).as_mut() {
                        t.suppressed(&r.id, 1);
                    }
                    continue;
                }
                Some(Decision::Pass(Some(sup))) => self.emit_suppressed(&sup, st),
                Some(Decision::Pass(None)) | None => {}
            }
            let all = self.sh.capture_all.load(Ordering::Relaxed);
            let cap = match lk(&self.sh.capture).as_mut() {
                Some(c) if all || r.capture => c.on_alert(ev.k.hdr.ts_ns),
                _ => None,
            };
            let json = crate::detect::encode_alert_with(
                ev,
                &self.sh.hostname,
                r,
                response.as_ref(),
                cap.as_deref(),
            );
            let msg = match &response {
                Some(x) => format!("{} [{} by {}]", r.message(ev), x.outcome, x.how),
                None => r.message(ev),
            };
            self.emit(
                &json,
                Meta {
                    kind: OKind::Alert,
                    severity: severity_of(r.severity),
                    rule_id: Some(&r.id),
                    rule_name: Some(&r.name),
                    ruleset: Some(r.ruleset.as_str()),
                    message: msg.as_bytes(),
                },
                Some(ev),
                st,
            );
        }
    }

    /// Writes the event itself (`agent.events`) and taps it.
    /// A hit demoted by learned tuning is written as the event it is.
    fn emit_event(&mut self, ev: Event, demoted: bool, st: &mut PipelineStats) {
        if (self.sh.emit_events || demoted)
            && self.out.is_none()
            && self.sh.outputs.get().is_none()
            && let Some(s) = &self.sh.sink
        {
            // Only the sink takes it: encoded straight into its buffer.
            let (hostname, cache) = (&self.sh.hostname, &mut self.enc_cache);
            match lk(s).append_record(&mut |out| {
                ecs::encode_cached_into(&ev, hostname, "event", cache, out)
            }) {
                Ok(()) => st.written += 1,
                Err(_) => st.write_errors += 1,
            }
        } else if self.sh.emit_events || demoted {
            let buf = std::mem::take(&mut self.enc_buf);
            let json =
                ecs::encode_cached(&ev, &self.sh.hostname, "event", &mut self.enc_cache, buf);
            let (_, _, action) = ecs::classify(ev.k.hdr.kind);
            self.emit(&json, event_meta(action.as_bytes()), Some(&ev), st);
            self.enc_buf = json;
        }
        if let Some(tap) = &self.tap {
            let _ = tap.send(ev);
        }
    }

    /// The baseline's verdict on an event about to wait for its
    /// executable's hash: the learner sees it now and a locked baseline's
    /// drift kills now, not `hash.wait_ms` later (the baselines never read
    /// the hash). None when no learner is set; the anomalies are written,
    /// with the event and its hash, by [`Back::process`].
    pub(crate) fn early_drift(&mut self, ev: &Event, st: &mut PipelineStats) -> Option<Vec<Early>> {
        if !self.sh.learning_on.load(Ordering::Relaxed) {
            return None;
        }
        let anomalies = lk(&self.sh.learning).learner.as_mut()?.observe(ev);
        Some(
            anomalies
                .into_iter()
                .map(|a| {
                    let r = self.drift_kill(&a, ev, st);
                    (a, r)
                })
                .collect(),
        )
    }

    /// Drift of a locked baseline kills (from userspace: the baselines live
    /// in userspace): the process whose profile drifted (for a new child,
    /// its parent) and the new child. None: not locked, or no responder.
    fn drift_kill(
        &mut self,
        a: &vigil_baselines::Anomaly,
        ev: &Event,
        st: &mut PipelineStats,
    ) -> Option<crate::learn::DriftResponse> {
        if a.mode != vigil_baselines::Mode::Locked {
            return None;
        }
        let resp = self.sh.responder.get()?;
        let h = &ev.k.hdr;
        let no_exe = ev.process.as_ref().is_none_or(|p| p.exe.is_empty());
        let r = if a.kind == vigil_baselines::Kind::Spawn {
            let parent = ev.ancestors.first()?;
            // the parent's parent is not known here: it is protected only
            // as pid 1, vigil, its supervisor or a thread of no executable
            let p = resp.kill_drift(
                parent.pid,
                parent.start_ns,
                0,
                parent.exe.is_empty(),
                h.ts_ns,
                boot_now_ns(),
            );
            let c = resp.kill_drift(h.pid, h.start_ns, h.ppid, no_exe, h.ts_ns, boot_now_ns());
            crate::learn::DriftResponse {
                process: p,
                child: Some(c),
            }
        } else {
            crate::learn::DriftResponse {
                process: resp.kill_drift(h.pid, h.start_ns, h.ppid, no_exe, h.ts_ns, boot_now_ns()),
                child: None,
            }
        };
        *st.responses.entry(r.process.outcome).or_default() += 1;
        Some(r)
    }

    /// Counts and writes one baseline anomaly: with the event's fields when
    /// an event raised it, else (syscall sets) the baseline fields alone.
    pub(crate) fn emit_anomaly(
        &mut self,
        a: &vigil_baselines::Anomaly,
        ev: Option<&Event>,
        st: &mut PipelineStats,
    ) {
        let r = ev.and_then(|ev| self.drift_kill(a, ev, st));
        self.write_anomaly(a, ev, r, st);
    }

    /// Writes an anomaly, with the event when one raised it and what the
    /// drift kill did.
    fn write_anomaly(
        &mut self,
        a: &vigil_baselines::Anomaly,
        ev: Option<&Event>,
        r: Option<crate::learn::DriftResponse>,
        st: &mut PipelineStats,
    ) {
        st.anomalies += 1;
        if let Some(t) = lk(&self.sh.telemetry).as_ref() {
            t.anomaly();
        }
        let mut msg = format!("New {} for {}: {}", a.kind.name(), a.profile, a.item);
        let json = match ev {
            Some(ev) => {
                if let Some(r) = &r {
                    msg.push_str(&format!(" [{} by {}]", r.process.outcome, r.process.how));
                }
                crate::learn::encode_anomaly_with(ev, &self.sh.hostname, a, r.as_ref())
            }
            None => crate::learn::encode_anomaly_bare(&self.sh.hostname, a),
        };
        let id = format!("baseline.{}", a.kind.name());
        self.emit(
            &json,
            Meta {
                kind: OKind::Alert,
                severity: OSeverity::Medium,
                rule_id: Some(&id),
                rule_name: Some("Behaviour outside the learned baseline"),
                ruleset: Some("baseline"),
                message: msg.as_bytes(),
            },
            ev,
            st,
        );
    }

    /// A metric record: these alerts of a rule were rate-limited.
    pub(crate) fn emit_suppressed(
        &mut self,
        sup: &vigil_outputs::ratelimit::Suppressed,
        st: &mut PipelineStats,
    ) {
        let mut w = vigil_outputs::json::Writer::new();
        w.str(
            "@timestamp",
            ecs::rfc3339(host::boot_offset_ns() + boot_now_ns() as i64),
        )
        .str("event.kind", "metric")
        .str("event.action", "alerts-suppressed")
        .str("event.module", "vigil")
        .str(
            "message",
            format!(
                "{} alerts of rule {} suppressed by the rate limit",
                sup.count, sup.key
            ),
        )
        .str("rule.id", sup.key.as_bytes())
        .str("host.hostname", self.sh.hostname.as_bytes())
        .u64("vigil.suppressed.count", sup.count)
        .str("vigil.suppressed.first", ecs::rfc3339(sup.first_ns as i64))
        .str("vigil.suppressed.last", ecs::rfc3339(sup.last_ns as i64));
        let json = w.finish();
        let msg = format!("{} alerts of rule {} suppressed", sup.count, sup.key);
        self.emit(
            &json,
            Meta {
                kind: OKind::Metric,
                severity: OSeverity::Info,
                rule_id: Some(&sup.key),
                rule_name: None,
                ruleset: None,
                message: msg.as_bytes(),
            },
            None,
            st,
        );
    }

    /// Writes one record to the sink and the outputs. `ev` supplies the
    /// fields syslog and CEF encoders use.
    pub(crate) fn emit(
        &mut self,
        json: &[u8],
        meta: Meta<'_>,
        ev: Option<&Event>,
        st: &mut PipelineStats,
    ) {
        if let Some(s) = &self.sh.sink {
            match self.out.as_mut() {
                Some(out) => {
                    out.extend_from_slice(json);
                    self.out_ends.push(out.len());
                }
                None => match lk(s).write_record(json) {
                    Ok(()) => st.written += 1,
                    Err(_) => st.write_errors += 1,
                },
            }
        }
        if let Some(outs) = self.sh.outputs.get() {
            // Only syslog and CEF encoders (and JSON too long to pass
            // through) read the fields: most records skip building them.
            let owned = match ev {
                Some(e) if outs.reads_fields(meta.kind, meta.severity, json.len()) => {
                    crate::detect::record_fields(e)
                }
                _ => Vec::new(),
            };
            let fields: Vec<(&str, vigil_outputs::Value<'_>)> = owned
                .iter()
                .map(|(k, v)| (*k, vigil_outputs::Value::Str(v)))
                .collect();
            let rec = vigil_outputs::Record {
                time_ns: ev.map(|e| e.unix_ns.max(0) as u64).unwrap_or_else(|| {
                    (host::boot_offset_ns() + boot_now_ns() as i64).max(0) as u64
                }),
                kind: meta.kind,
                severity: meta.severity,
                rule_id: meta.rule_id,
                rule_name: meta.rule_name,
                ruleset: meta.ruleset,
                message: meta.message,
                host: &self.sh.hostname,
                pid: ev.map(|e| e.k.hdr.pid),
                executable: ev.and_then(|e| e.process.as_ref()).map(|p| &p.exe[..]),
                fields: &fields,
                json,
            };
            st.written += outs.submit(&rec) as u64;
        }
    }
}

/// Adds what a worker counted to the agent's counters.
pub(crate) fn absorb(into: &mut PipelineStats, o: PipelineStats) {
    into.written += o.written;
    into.write_errors += o.write_errors;
    into.alerts += o.alerts;
    into.anomalies += o.anomalies;
    into.suppressed += o.suppressed;
    into.hash_late += o.hash_late;
    into.hash_unfollowed += o.hash_unfollowed;
    into.worker_lost += o.worker_lost;
    into.correlation_evictions = into.correlation_evictions.max(o.correlation_evictions);
    for (k, v) in o.alerts_by_rule {
        *into.alerts_by_rule.entry(k).or_default() += v;
    }
    for (k, v) in o.demoted_by_rule {
        *into.demoted_by_rule.entry(k).or_default() += v;
    }
    for (k, v) in o.responses {
        *into.responses.entry(k).or_default() += v;
    }
}

/// Work for a worker, in the order the agent's thread produced it.
enum Msg {
    Batch(Vec<Item>),
    Rules(Arc<RuleSet>),
    Hash(HashDone),
    /// Reply with the counters since the last sync once everything before
    /// this message is handled.
    Sync(mpsc::Sender<PipelineStats>),
}

/// Events queued per worker before they are handed over.
const BATCH: usize = 64;
/// Batches in flight per worker at most (then the agent's thread waits,
/// and the ring buffers absorb the burst or count their drops).
const QUEUE: usize = 64;

/// Which worker handles the records of this process.
pub fn shard_of(tgid: u32, n: usize) -> usize {
    // Fibonacci hashing: consecutive pids spread over the workers.
    ((u64::from(tgid).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % n as u64) as usize
}

struct Worker {
    tx: Option<mpsc::SyncSender<Msg>>,
    pending: Vec<Item>,
    /// The thread; it returns its counters since the last sync when it
    /// ends (after a panic: with the events it lost).
    thread: Option<std::thread::JoinHandle<PipelineStats>>,
    /// Set by the worker when it panicked: it handles nothing more.
    dead: Arc<AtomicBool>,
}

/// The workers behind the agent's thread (`[pipeline] workers` > 1).
pub(crate) struct Pool {
    workers: Vec<Worker>,
    /// Counters of workers that ended (a panic), for the next sync.
    ended: Vec<PipelineStats>,
}

/// A worker's loop: handles messages until the channel closes. `left`
/// holds how many events of the batch at hand are not yet handled, so
/// that a panic knows what it lost.
fn work(back: &mut Back, rx: &mpsc::Receiver<Msg>, st: &mut PipelineStats, left: &mut usize) {
    while let Ok(m) = rx.recv() {
        match m {
            Msg::Batch(items) => {
                *left = items.len();
                for it in items {
                    back.process(it, st);
                    *left -= 1;
                }
                back.flush_out(st);
            }
            Msg::Rules(r) => back.set_rules(r),
            Msg::Hash(d) => {
                back.hash_done(&d, st);
                back.flush_out(st);
            }
            Msg::Sync(reply) => {
                back.flush_out(st);
                let _ = reply.send(std::mem::take(st));
            }
        }
    }
}

/// What a worker does after a panic: the event that panicked, the rest of
/// its batch, the events waiting for a hash and every event still queued
/// for it are counted as lost (`worker_lost`) — it handles nothing more,
/// since its state may be half-updated — until the agent's thread sees it
/// is dead and closes its channel (then the agent handles that shard itself).
fn after_panic(
    i: usize,
    why: &str,
    back: &mut Back,
    rx: &mpsc::Receiver<Msg>,
    st: &mut PipelineStats,
    left: usize,
    dead: &AtomicBool,
) {
    dead.store(true, Ordering::SeqCst);
    // The records of the events handled before the panic are complete:
    // write them (a sink that panics again loses them with the rest).
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| back.flush_out(st)));
    let held = left as u64 + back.drop_waiting();
    lost(back, st, held);
    log::error!(
        "pipeline worker {i} panicked ({why}): {held} events it held are lost and counted (worker_lost); the agent's thread handles its processes from now on"
    );
    while let Ok(m) = rx.recv() {
        match m {
            Msg::Batch(items) => lost(back, st, items.len() as u64),
            Msg::Sync(reply) => {
                let _ = reply.send(std::mem::take(st));
            }
            Msg::Rules(_) | Msg::Hash(_) => {}
        }
    }
}

/// Counts `n` events a dead worker lost: in its counters (the summary's
/// `worker_lost`) and, at once, in the Prometheus counter.
fn lost(back: &Back, st: &mut PipelineStats, n: u64) {
    st.worker_lost += n;
    if let Some(t) = lk(&back.sh.telemetry).as_ref() {
        t.worker_lost(n);
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> &str {
    p.downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

impl Pool {
    /// Starts `n` workers, each with a [`Back`] over `sh`.
    pub(crate) fn start(
        n: usize,
        sh: &Arc<Shared>,
        rules: &Arc<RuleSet>,
        tap: &Option<mpsc::Sender<Event>>,
    ) -> std::io::Result<Pool> {
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE);
            let mut back = Back::new(Arc::clone(sh), Arc::clone(rules), tap.clone());
            back.batch_output();
            let dead = Arc::new(AtomicBool::new(false));
            let dead2 = Arc::clone(&dead);
            let thread = std::thread::Builder::new()
                .name(format!("vigil-worker-{i}"))
                .spawn(move || {
                    let mut st = PipelineStats::default();
                    let mut left = 0;
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        work(&mut back, &rx, &mut st, &mut left)
                    }));
                    if let Err(p) = r {
                        after_panic(i, panic_text(&*p), &mut back, &rx, &mut st, left, &dead2);
                    }
                    st
                })?;
            workers.push(Worker {
                tx: Some(tx),
                pending: Vec::with_capacity(BATCH),
                thread: Some(thread),
                dead,
            });
        }
        Ok(Pool {
            workers,
            ended: Vec::new(),
        })
    }

    /// Closes the channel of a worker that panicked and keeps its last
    /// counters (the events it lost among them) for the next sync.
    fn reap(&mut self, i: usize) {
        let w = &mut self.workers[i];
        w.tx = None;
        if let Some(t) = w.thread.take() {
            // Err: after_panic itself panicked, nothing more to count.
            if let Ok(st) = t.join() {
                self.ended.push(st);
            }
        }
    }

    /// Workers.
    pub(crate) fn len(&self) -> usize {
        self.workers.len()
    }

    /// Sends a message to worker `i`; a worker that is gone (it panicked)
    /// hands the message back.
    fn send(&mut self, i: usize, m: Msg) -> Result<(), Msg> {
        if self.workers[i].tx.is_some() && self.workers[i].dead.load(Ordering::SeqCst) {
            self.reap(i);
        }
        match self.workers[i].tx.as_ref() {
            Some(tx) => tx.send(m).map_err(|e| e.0),
            None => Err(m),
        }
    }

    /// Queues an event for its process's worker; returns the batch that
    /// could not be handed over (the worker is gone) for the caller to
    /// handle itself.
    pub(crate) fn push(&mut self, item: Item) -> Option<Vec<Item>> {
        let i = shard_of(item.ev.k.hdr.pid, self.workers.len());
        self.workers[i].pending.push(item);
        if self.workers[i].pending.len() >= BATCH {
            return self.hand_over(i);
        }
        None
    }

    fn hand_over(&mut self, i: usize) -> Option<Vec<Item>> {
        if self.workers[i].pending.is_empty() {
            return None;
        }
        let batch = std::mem::replace(&mut self.workers[i].pending, Vec::with_capacity(BATCH));
        match self.send(i, Msg::Batch(batch)) {
            Ok(()) => None,
            Err(Msg::Batch(b)) => Some(b),
            Err(_) => None,
        }
    }

    /// Hands every partial batch over (end of a ring-buffer drain); returns
    /// what could not be handed over.
    pub(crate) fn hand_over_all(&mut self) -> Vec<Item> {
        let mut left = Vec::new();
        for i in 0..self.workers.len() {
            if let Some(b) = self.hand_over(i) {
                left.extend(b);
            }
        }
        left
    }

    /// A new rule set, for the events after the ones already queued.
    pub(crate) fn set_rules(&mut self, r: &Arc<RuleSet>) -> Vec<Item> {
        let left = self.hand_over_all();
        for i in 0..self.workers.len() {
            let _ = self.send(i, Msg::Rules(Arc::clone(r)));
        }
        left
    }

    /// A finished hash for the worker of `tgid` (after the events queued
    /// for it, among them the ones waiting for this hash).
    pub(crate) fn hash_done(&mut self, tgid: u32, d: HashDone) -> (Vec<Item>, Option<HashDone>) {
        let i = shard_of(tgid, self.workers.len());
        let left = self.hand_over(i).unwrap_or_default();
        match self.send(i, Msg::Hash(d)) {
            Ok(()) => (left, None),
            Err(Msg::Hash(d)) => (left, Some(d)),
            Err(_) => (left, None),
        }
    }

    /// Waits until every worker has handled everything queued so far and
    /// adds their counters to `st`; returns the events no worker took.
    pub(crate) fn sync(&mut self, st: &mut PipelineStats) -> Vec<Item> {
        let left = self.hand_over_all();
        let (tx, rx) = mpsc::channel();
        let mut asked = 0;
        for i in 0..self.workers.len() {
            if self.send(i, Msg::Sync(tx.clone())).is_ok() {
                asked += 1;
            }
        }
        drop(tx);
        for _ in 0..asked {
            match rx.recv() {
                Ok(s) => absorb(st, s),
                Err(_) => break,
            }
        }
        for s in self.ended.drain(..) {
            absorb(st, s);
        }
        left
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for w in &mut self.workers {
            w.tx = None;
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::enrich::Enricher;
    use crate::host::{RecordedHost, Users};
    use std::sync::atomic::AtomicU32;
    use vigil_bpf::abi::{self, Hdr, kind};
    use vigil_bpf::decode::{decode, encode_record};

    /// `Back::process` panics on an event of this pid (0: never): the
    /// test hook for a worker that panics.
    pub(crate) static PANIC_ON_PID: AtomicU32 = AtomicU32::new(0);

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            lk(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn exec_of(en: &mut Enricher, pid: u32, n: u64) -> Item {
        let hdr = Hdr {
            kind: kind::EXEC,
            pid,
            tid: pid,
            ppid: 1,
            ts_ns: n * 1000,
            start_ns: n,
            ..Hdr::default()
        };
        let k = decode(&encode_record(hdr, &abi::Exec::default(), &[b"/bin/true"])).unwrap();
        Item {
            ev: en.enrich(k, &mut RecordedHost::default()),
            ticket: None,
            early: None,
        }
    }

    #[test]
    fn a_worker_that_panics_counts_what_it_held_as_lost() {
        let buf = Buf::default();
        let sink = vigil_outputs::JsonLines::writer(Box::new(buf.clone()), "test");
        let sh = Arc::new(Shared::new("h".into(), true, Some(Box::new(sink)), 16));
        let registry = Arc::new(vigil_outputs::metrics::Registry::new());
        *lk(&sh.telemetry) = Some(crate::telemetry::Telemetry::new(Arc::clone(&registry)));
        let lost_metric = || {
            let text = registry.render();
            let name = vigil_outputs::metrics::names::WORKER_LOST.0;
            let line = text
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in {text}"));
            line[name.len()..].trim().parse::<u64>().unwrap()
        };
        assert_eq!(lost_metric(), 0, "exposed before any loss");
        let rules = Arc::new(RuleSet::empty());
        let mut pool = Pool::start(2, &sh, &rules, &None).unwrap();
        let mut en = Enricher::new(Arc::new(Users::default()), 0, 4);
        // Two processes on different workers, 30 events each (one batch
        // each); the first's worker panics on the first of its batch.
        let (bad, good) = (1000..)
            .step_by(1)
            .map(|p| (p, p + 1))
            .find(|&(a, b)| shard_of(a, 2) != shard_of(b, 2))
            .unwrap();
        let mut inline = Vec::new();
        for n in 0..30u64 {
            inline.extend(pool.push(exec_of(&mut en, bad, n)).unwrap_or_default());
            inline.extend(pool.push(exec_of(&mut en, good, n)).unwrap_or_default());
        }
        PANIC_ON_PID.store(bad, Ordering::Relaxed);
        inline.extend(pool.hand_over_all());
        let mut st = PipelineStats::default();
        inline.extend(pool.sync(&mut st));
        // The batch of 30 `bad` events: the one it panicked on and the 29
        // after it are lost, each counted; `good`'s 30 are written.
        PANIC_ON_PID.store(0, Ordering::Relaxed);
        let mut st2 = PipelineStats::default();
        inline.extend(pool.sync(&mut st2));
        absorb(&mut st, st2);
        assert_eq!(st.worker_lost, 30, "lost counted");
        assert_eq!(lost_metric(), 30, "lost exposed to Prometheus");
        assert_eq!(st.written, 30, "the other worker's records");
        assert!(inline.is_empty());
        // The dead worker's processes now come back to the caller, to be
        // handled on its thread, not dropped.
        let back = pool.push(exec_of(&mut en, bad, 99));
        let more = pool.hand_over_all();
        assert_eq!(back.map_or(0, |b| b.len()) + more.len(), 1);
        let mut st3 = PipelineStats::default();
        pool.sync(&mut st3);
        assert_eq!(st3.worker_lost, 0);
        assert_eq!(lost_metric(), 30, "nothing more lost");
        lk(sh.sink.as_ref().unwrap()).flush().unwrap();
        let text = String::from_utf8(lk(&buf.0).clone()).unwrap();
        assert_eq!(text.lines().count(), 30);
        assert!(text.lines().all(|l| l.contains(&format!("\"pid\":{good}"))));
    }
}
