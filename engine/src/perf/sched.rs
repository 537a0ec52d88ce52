//! Performance collection: every `perf.interval_s`
//! the agent reads the scheduler sensors' BPF maps (run-queue latency
//! histograms per cgroup, pid-namespace switch counts) and the kernel's
//! CPU steal accounting (`/proc/stat`), turns the cumulative kernel figures
//! into per-interval deltas, and from them makes
//!
//! - metric records (`event.kind: metric`, `event.action: runqlat` per
//!   cgroup, `pidnss`, `cpu-steal`),
//! - finding records when a threshold is crossed (`event.kind: metric`,
//!   `event.action: runqlat-high` / `cpu-steal-high`, a `vigil.finding`
//!   object), and
//! - one line of the bounded history `vigil report` reads
//!   (`<data_dir>/perf-history.jsonl`, see [`History`]).
//!
//! Record fields are documented in docs/events.md.

use crate::config::PerfConfig;
use crate::ecs;
use crate::host::Host;
use crate::perf::collector::{Collector, Ctx, Output};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vigil_bpf::sched::{NsPair, RQ_PREEMPTED, RQ_SLOTS, RQ_WAKEUP, RqHist, RqKey};

/// File name of the history in the data directory (the rotated half is
/// the same name with `.1` appended).
pub const HISTORY_FILE: &str = "perf-history.jsonl";

/// Bounds of a histogram slot in microseconds: `[lo, hi)`.
/// Slot 0 is `[0, 1)`, slot k >= 1 is `[2^(k-1), 2^k)`.
pub fn slot_bounds(k: usize) -> (u64, u64) {
    if k == 0 {
        (0, 1)
    } else {
        let k = k.min(63) as u32;
        (1u64 << (k - 1), 1u64.checked_shl(k).unwrap_or(u64::MAX))
    }
}

/// Number of waits in a histogram.
pub fn total(slots: &[u64]) -> u64 {
    slots.iter().fold(0u64, |a, b| a.saturating_add(*b))
}

/// The `q` quantile (0..=1) of a log2 histogram in microseconds, linearly
/// interpolated inside its slot (as Prometheus' `histogram_quantile`);
/// `None` when empty.
pub fn quantile_us(slots: &[u64], q: f64) -> Option<f64> {
    let n = total(slots);
    if n == 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * n as f64).max(1.0);
    let mut cum = 0f64;
    for (k, &c) in slots.iter().enumerate() {
        if c == 0 {
            continue;
        }
        if cum + c as f64 >= rank {
            let (lo, hi) = slot_bounds(k);
            let frac = (rank - cum) / c as f64;
            return Some(lo as f64 + (hi - lo) as f64 * frac);
        }
        cum += c as f64;
    }
    let last = slots.iter().rposition(|&c| c > 0).unwrap_or(0);
    Some(slot_bounds(last).1 as f64)
}

/// Slot-wise `a - b` (a counter that went down, because its BPF entry was
/// removed and created again, counts from zero).
fn delta(a: &RqHist, b: Option<&RqHist>) -> RqHist {
    let Some(b) = b else { return *a };
    if a.slots.iter().zip(b.slots.iter()).any(|(x, y)| x < y) || a.sum_ns < b.sum_ns {
        return *a;
    }
    let mut d = RqHist::default();
    for k in 0..RQ_SLOTS {
        d.slots[k] = a.slots[k] - b.slots[k];
    }
    d.sum_ns = a.sum_ns - b.sum_ns;
    d
}

/// The slots up to the last one that counted something (what records
/// write of a histogram).
pub(crate) fn trimmed(slots: &[u64]) -> Vec<u64> {
    let end = slots.iter().rposition(|&c| c > 0).map_or(0, |i| i + 1);
    slots[..end].to_vec()
}

/// Time per CPU from one `/proc/stat` `cpuN` line, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// CPU number.
    pub cpu: u32,
    /// user + nice + system + idle + iowait + irq + softirq + steal (guest
    /// time is already inside user and nice).
    pub total: u64,
    /// Time the hypervisor ran something else while this vCPU wanted to
    /// run (the `steal` column).
    pub steal: u64,
}

/// Per-CPU lines of `/proc/stat` (the aggregate `cpu` line is skipped).
pub fn parse_proc_stat(text: &str) -> Vec<CpuTimes> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let Some(name) = it.next() else { continue };
        let Some(num) = name.strip_prefix("cpu") else {
            continue;
        };
        let Ok(cpu) = num.parse::<u32>() else {
            continue;
        };
        let v: Vec<u64> = it.take(8).map(|x| x.parse().unwrap_or(0)).collect();
        if v.len() < 8 {
            continue;
        }
        out.push(CpuTimes {
            cpu,
            total: v.iter().fold(0u64, |a, b| a.saturating_add(*b)),
            steal: v[7],
        });
    }
    out
}

/// Steal percentage per CPU between two readings.
pub fn steal_pct(prev: &[CpuTimes], now: &[CpuTimes]) -> Vec<(u32, f64)> {
    now.iter()
        .filter_map(|n| {
            let p = prev.iter().find(|p| p.cpu == n.cpu)?;
            let dt = n.total.checked_sub(p.total)?;
            let ds = n.steal.checked_sub(p.steal)?;
            (dt > 0).then(|| (n.cpu, 100.0 * ds as f64 / dt as f64))
        })
        .collect()
}

/// One cgroup's run-queue waits in one interval (history and report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgroupHist {
    /// cgroup v2 id.
    pub id: u64,
    /// cgroup v2 path, when it could be resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Container id derived from the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Waits after a wakeup, per slot (trailing empty slots left out).
    #[serde(default)]
    pub wakeup: Vec<u64>,
    /// Waits after a preemption, per slot.
    #[serde(default)]
    pub preempted: Vec<u64>,
    /// Exact total wait in nanoseconds.
    #[serde(default)]
    pub sum_ns: u64,
}

impl CgroupHist {
    /// Wakeup and preemption waits together, per slot (`RQ_SLOTS` long).
    pub fn combined(&self) -> Vec<u64> {
        let mut v = vec![0u64; RQ_SLOTS];
        for part in [&self.wakeup, &self.preempted] {
            for (s, c) in v.iter_mut().zip(part.iter()) {
                *s = s.saturating_add(*c);
            }
        }
        v
    }

    /// How the report names it: container id (short), else path, else id.
    pub fn label(&self) -> String {
        match (&self.container, &self.path) {
            (Some(c), Some(p)) => format!("container {} ({p})", &c[..c.len().min(12)]),
            (Some(c), None) => format!("container {}", &c[..c.len().min(12)]),
            (None, Some(p)) => format!("cgroup {p}"),
            (None, None) => format!("cgroup id {}", self.id),
        }
    }
}

/// One line of the history: what one interval measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryLine {
    /// End of the interval, Unix seconds.
    pub t: i64,
    /// Length of the interval in seconds.
    pub secs: f64,
    /// Cgroups that had run-queue waits in the interval.
    #[serde(default)]
    pub cgroups: Vec<CgroupHist>,
    /// Context switches between pid namespaces in the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pidnss: Option<u64>,
    /// Highest CPU steal percentage of the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal_max_pct: Option<f64>,
}

/// The bounded history: JSON lines appended to
/// `<data_dir>/perf-history.jsonl` (mode 0600); when the file would pass
/// half of `max_bytes` it is renamed to `perf-history.jsonl.1` (replacing
/// the previous one) and a new file starts, so both together stay under
/// `max_bytes` and the newest half of the history is always kept.
pub struct History {
    path: PathBuf,
    max_bytes: u64,
    file: Option<std::fs::File>,
    size: u64,
}

impl History {
    /// A history in `dir` (which must exist).
    pub fn new(dir: &Path, max_bytes: u64) -> History {
        History {
            path: dir.join(HISTORY_FILE),
            max_bytes,
            file: None,
            size: 0,
        }
    }

    /// The current file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rotated(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".1");
        PathBuf::from(p)
    }

    fn open(&mut self) -> std::io::Result<()> {
        let f = vigil_outputs::private::open(&self.path, vigil_outputs::private::How::Append)?;
        self.size = f.metadata()?.len();
        self.file = Some(f);
        Ok(())
    }

    /// Appends one line (rotating first when needed).
    pub fn append(&mut self, line: &HistoryLine) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        if self.file.is_none() {
            self.open()?;
        }
        if self.size > 0 && self.size + bytes.len() as u64 > self.max_bytes / 2 {
            self.file = None;
            std::fs::rename(&self.path, self.rotated())?;
            self.open()?;
        }
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("closed"))?;
        f.write_all(&bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }
}

/// Reads the history in `dir` (rotated half first), skipping lines that do
/// not parse. Returns the lines and how many were skipped.
pub fn read_history(dir: &Path) -> std::io::Result<(Vec<HistoryLine>, usize)> {
    let cur = dir.join(HISTORY_FILE);
    let old = dir.join(format!("{HISTORY_FILE}.1"));
    let mut lines = Vec::new();
    let mut bad = 0;
    let mut any = false;
    for p in [&old, &cur] {
        let text = match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", p.display()),
                ));
            }
        };
        any = true;
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<HistoryLine>(l) {
                Ok(h) => lines.push(h),
                Err(_) => bad += 1,
            }
        }
    }
    if !any {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "{}: no history (the agent writes it every perf.interval_s while [perf] history is on)",
                cur.display()
            ),
        ));
    }
    Ok((lines, bad))
}

/// What the kernel reported in one interval.
#[derive(Debug, Clone, Default)]
pub struct Interval {
    /// Seconds since the previous collection.
    pub secs: f64,
    /// Per cgroup: (id, wakeup waits, preemption waits) in the interval.
    pub runqlat: Vec<(u64, RqHist, RqHist)>,
    /// Pid-namespace switches per pair in the interval (None: sensor off).
    pub pidnss: Option<Vec<(NsPair, u64)>>,
    /// Steal percentage per CPU (None: off or first reading).
    pub steal: Option<Vec<(u32, f64)>>,
    /// Cgroups forgotten in this collection (idle for [`FORGET_AFTER`]
    /// intervals, usually removed): whoever keeps something per cgroup
    /// (metric series) drops it.
    pub forgotten: Vec<u64>,
}

/// What a cgroup resolves to.
#[derive(Debug, Clone, Default)]
struct CgroupInfo {
    path: Option<String>,
    container: Option<crate::container::Container>,
    name: Option<String>,
}

/// A record to write: JSON, and for findings their id and message.
#[derive(Debug, Clone)]
pub struct PerfRecord {
    /// The encoded record.
    pub json: Vec<u8>,
    /// What makes it a finding (None: a plain metric record).
    pub finding: Option<crate::perf::collector::Finding>,
}

/// Turns cumulative kernel figures into intervals, records and history.
pub struct PerfCollector {
    cfg: PerfConfig,
    last_rq: HashMap<RqKey, RqHist>,
    /// Per pid-namespace pair: last cumulative count, intervals unchanged.
    last_ns: HashMap<NsPair, (u64, u32)>,
    last_stat: Option<Vec<CpuTimes>>,
    last_at: Instant,
    unchanged: HashMap<u64, u32>,
    cgroups: HashMap<u64, CgroupInfo>,
    history: Option<History>,
    history_failed: bool,
    /// Cumulative waits per (cgroup, kind) since start (summary, tests),
    /// of the cgroups not forgotten since.
    pub totals: BTreeMap<(u64, u32), RqHist>,
    /// Cumulative pid-namespace switches per pair since start, of the
    /// pairs not forgotten since.
    pub pidnss_totals: BTreeMap<(u32, u32), u64>,
    /// Findings raised.
    pub findings: u64,
    /// The scheduler object read by [`Collector::collect`] (None: CPU
    /// steal only).
    sched: Option<vigil_bpf::sched::Sched>,
    /// The last interval, for [`Collector::prometheus`].
    last_iv: Option<Interval>,
}

/// Intervals a cgroup's histograms (or a pid-namespace pair's count) may
/// stay unchanged before its BPF entries and everything vigil keeps about
/// it are removed (a removed entry starts again from zero). Cgroups and
/// namespaces come and go with every container, session and service: what
/// is kept per cgroup must end with it, or it grows for the agent's life.
pub const FORGET_AFTER: u32 = 30;

/// The increase of a cumulative kernel counter last read as `*last` (a
/// smaller value means its entry was removed and created again: it counts
/// from zero); `*last` becomes `now`.
pub fn counter_delta(last: &mut u64, now: u64) -> u64 {
    let d = if now >= *last { now - *last } else { now };
    *last = now;
    d
}

/// One more collection of a kernel entry: `unchanged` goes back to 0 when
/// it changed and counts up when it did not. True once it has been
/// unchanged for [`FORGET_AFTER`] collections: time to forget it.
pub fn idle_for_long(unchanged: &mut u32, changed: bool) -> bool {
    *unchanged = if changed { 0 } else { *unchanged + 1 };
    *unchanged >= FORGET_AFTER
}

impl PerfCollector {
    /// A collector; `data_dir` receives the history when `cfg.history`.
    pub fn new(cfg: &PerfConfig, data_dir: Option<&Path>) -> PerfCollector {
        let history = match (cfg.history, data_dir) {
            (true, Some(d)) => Some(History::new(d, cfg.history_max_bytes)),
            _ => None,
        };
        PerfCollector {
            cfg: cfg.clone(),
            last_rq: HashMap::new(),
            last_ns: HashMap::new(),
            last_stat: if cfg.cpu_steal { read_stat() } else { None },
            last_at: Instant::now(),
            unchanged: HashMap::new(),
            cgroups: HashMap::new(),
            history,
            history_failed: false,
            totals: BTreeMap::new(),
            pidnss_totals: BTreeMap::new(),
            findings: 0,
            sched: None,
            last_iv: None,
        }
    }

    /// The collector with the scheduler object it reads as a
    /// [`Collector`].
    pub fn with_sched(mut self, sched: Option<vigil_bpf::sched::Sched>) -> PerfCollector {
        self.sched = sched;
        self
    }

    /// The scheduler object, when loaded.
    pub fn sched(&self) -> Option<&vigil_bpf::sched::Sched> {
        self.sched.as_ref()
    }

    /// (cgroup path, container id) of a cgroup id, as far as known.
    pub fn label_of(&self, id: u64) -> (String, String) {
        let i = self.cgroups.get(&id);
        (
            i.and_then(|i| i.path.clone())
                .unwrap_or_else(|| format!("id:{id}")),
            i.and_then(|i| i.container.as_ref().map(|c| c.id.clone()))
                .unwrap_or_default(),
        )
    }

    /// Entries in the collector's tables (`vigil_state_entries`).
    pub fn table_sizes(&self, out: &mut Vec<(&'static str, usize)>) {
        out.extend([
            ("runqlat_cgroups", self.unchanged.len()),
            ("pidns_pairs", self.last_ns.len()),
        ]);
    }

    /// The history file, when kept.
    pub fn history_path(&self) -> Option<&Path> {
        self.history.as_ref().map(History::path)
    }

    /// Reads the kernel's figures: the scheduler maps (when loaded) and
    /// /proc/stat. Cgroups idle for long have their BPF entries removed.
    pub fn read(&mut self, sched: Option<&mut vigil_bpf::sched::Sched>) -> Interval {
        let now = Instant::now();
        let mut iv = Interval {
            secs: now.duration_since(self.last_at).as_secs_f64(),
            ..Interval::default()
        };
        self.last_at = now;
        if let Some(s) = sched {
            if s.is_live("runqlat")
                && let Ok(all) = s.runqlat()
            {
                let mut per: BTreeMap<u64, (RqHist, RqHist)> = BTreeMap::new();
                let mut seen: HashMap<u64, bool> = HashMap::new();
                for (k, h) in all {
                    let d = delta(&h, self.last_rq.get(&k));
                    self.last_rq.insert(k, h);
                    let changed = total(&d.slots) > 0;
                    *seen.entry(k.cgroup_id).or_default() |= changed;
                    if !changed {
                        continue;
                    }
                    let e = per.entry(k.cgroup_id).or_default();
                    let tot = self.totals.entry((k.cgroup_id, k.kind)).or_default();
                    for i in 0..RQ_SLOTS {
                        tot.slots[i] = tot.slots[i].saturating_add(d.slots[i]);
                    }
                    tot.sum_ns = tot.sum_ns.saturating_add(d.sum_ns);
                    if k.kind == RQ_PREEMPTED {
                        e.1 = d;
                    } else {
                        e.0 = d;
                    }
                }
                let mut forget = Vec::new();
                for (id, changed) in seen {
                    if idle_for_long(self.unchanged.entry(id).or_default(), changed) {
                        forget.push(id);
                    }
                }
                if !forget.is_empty() && s.forget_cgroups(&forget).is_ok() {
                    for id in &forget {
                        self.unchanged.remove(id);
                        self.cgroups.remove(id);
                        for kind in [RQ_WAKEUP, RQ_PREEMPTED] {
                            self.last_rq.remove(&RqKey {
                                cgroup_id: *id,
                                kind,
                                _pad: 0,
                            });
                            self.totals.remove(&(*id, kind));
                        }
                    }
                    iv.forgotten = forget;
                }
                iv.runqlat = per.into_iter().map(|(id, (w, p))| (id, w, p)).collect();
            }
            if s.is_live("pidnss")
                && let Ok(all) = s.pidns_switches()
            {
                let mut v = Vec::new();
                let mut idle = Vec::new();
                for (k, n) in all {
                    let e = self.last_ns.entry(k).or_insert((0, 0));
                    let d = counter_delta(&mut e.0, n);
                    if idle_for_long(&mut e.1, d > 0) {
                        idle.push(k);
                    }
                    if d > 0 {
                        *self
                            .pidnss_totals
                            .entry((k.prev_ns, k.next_ns))
                            .or_default() += d;
                        v.push((k, d));
                    }
                }
                if !idle.is_empty() && s.forget_pidns_pairs(&idle).is_ok() {
                    for k in &idle {
                        self.last_ns.remove(k);
                        self.pidnss_totals.remove(&(k.prev_ns, k.next_ns));
                    }
                }
                v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                iv.pidnss = Some(v);
            }
        }
        if self.cfg.cpu_steal
            && let Some(now) = read_stat()
        {
            if let Some(prev) = &self.last_stat {
                iv.steal = Some(steal_pct(prev, &now));
            }
            self.last_stat = Some(now);
        }
        iv
    }

    fn info(&mut self, id: u64, host: &mut dyn Host) -> CgroupInfo {
        if let Some(i) = self.cgroups.get(&id)
            && i.path.is_some()
        {
            return i.clone();
        }
        let path = host.cgroup_path(id);
        let container = path.as_deref().and_then(crate::container::from_cgroup_path);
        let name = container
            .as_ref()
            .and_then(|c| host.container_meta(&c.id))
            .and_then(|m| m.name);
        let i = CgroupInfo {
            path,
            container,
            name,
        };
        self.cgroups.insert(id, i.clone());
        i
    }

    /// Encodes an interval as records (metrics, then findings) and appends
    /// its history line.
    pub fn records(
        &mut self,
        iv: &Interval,
        host: &mut dyn Host,
        hostname: &str,
        unix_ns: i64,
    ) -> Vec<PerfRecord> {
        let mut out = Vec::new();
        let ts = ecs::rfc3339(unix_ns);
        let header = |w: &mut vigil_outputs::json::Writer, action: &str, dataset: &str| {
            w.str("@timestamp", ts.as_bytes())
                .str("event.kind", "metric")
                .str("event.module", "vigil")
                .str("event.dataset", dataset)
                .str("event.action", action)
                .str("host.hostname", hostname);
        };
        let mut line = HistoryLine {
            t: unix_ns.div_euclid(1_000_000_000),
            secs: (iv.secs * 1000.0).round() / 1000.0,
            cgroups: Vec::new(),
            pidnss: None,
            steal_max_pct: None,
        };
        let mut findings = Vec::new();
        for (id, w, p) in &iv.runqlat {
            let info = self.info(*id, host);
            let all: [u64; RQ_SLOTS] =
                std::array::from_fn(|k| w.slots[k].saturating_add(p.slots[k]));
            let n = total(&all);
            let sum_ns = w.sum_ns.saturating_add(p.sum_ns);
            let q = |x| quantile_us(&all, x).unwrap_or(0.0);
            let (p50, p90, p99) = (q(0.5), q(0.9), q(0.99));
            let max = all
                .iter()
                .rposition(|&c| c > 0)
                .map_or(0, |k| slot_bounds(k).1);
            let mut rec = vigil_outputs::json::Writer::new();
            header(&mut rec, "runqlat", "vigil.runqlat");
            cgroup_fields(&mut rec, *id, &info);
            rec.f64("vigil.runqlat.interval_s", line.secs)
                .u64("vigil.runqlat.count", n)
                .f64(
                    "vigil.runqlat.mean_us",
                    round1(sum_ns as f64 / n.max(1) as f64 / 1e3),
                )
                .f64("vigil.runqlat.p50_us", round1(p50))
                .f64("vigil.runqlat.p90_us", round1(p90))
                .f64("vigil.runqlat.p99_us", round1(p99))
                .u64("vigil.runqlat.max_us", max)
                .u64("vigil.runqlat.wakeup.count", total(&w.slots))
                .u64s("vigil.runqlat.wakeup.slots", trimmed(&w.slots))
                .u64("vigil.runqlat.preempted.count", total(&p.slots))
                .u64s("vigil.runqlat.preempted.slots", trimmed(&p.slots));
            out.push(PerfRecord {
                json: rec.finish(),
                finding: None,
            });
            let thr_us = self.cfg.runqlat_p99_ms * 1000.0;
            if self.cfg.runqlat_p99_ms > 0.0 && n >= self.cfg.runqlat_min_samples && p99 > thr_us {
                let who = info
                    .container
                    .as_ref()
                    .map(|c| format!("container {}", &c.id[..c.id.len().min(12)]))
                    .or_else(|| info.path.as_ref().map(|p| format!("cgroup {p}")))
                    .unwrap_or_else(|| format!("cgroup id {id}"));
                let msg = format!(
                    "Run-queue latency p99 of {who} is {:.1} ms over {n} waits in {:.0} s (threshold {} ms)",
                    p99 / 1e3,
                    line.secs,
                    self.cfg.runqlat_p99_ms
                );
                let mut rec = vigil_outputs::json::Writer::new();
                header(&mut rec, "runqlat-high", "vigil.finding");
                rec.str("message", msg.as_bytes());
                cgroup_fields(&mut rec, *id, &info);
                rec.str("vigil.finding.name", "runqlat-high")
                    .str("vigil.finding.metric", "vigil.runqlat.p99_us")
                    .f64("vigil.finding.value", round1(p99 / 1e3))
                    .f64("vigil.finding.threshold", self.cfg.runqlat_p99_ms)
                    .str("vigil.finding.unit", "ms")
                    .u64("vigil.finding.samples", n)
                    .f64("vigil.finding.interval_s", line.secs);
                findings.push(PerfRecord {
                    json: rec.finish(),
                    finding: Some(crate::perf::collector::Finding::new(
                        "runqlat-high",
                        "Run-queue latency high",
                        msg,
                    )),
                });
            }
            line.cgroups.push(CgroupHist {
                id: *id,
                path: info.path.clone(),
                container: info.container.as_ref().map(|c| c.id.clone()),
                wakeup: trimmed(&w.slots),
                preempted: trimmed(&p.slots),
                sum_ns,
            });
        }
        if let Some(pairs) = &iv.pidnss {
            let n: u64 = pairs.iter().map(|p| p.1).sum();
            line.pidnss = Some(n);
            let mut rec = vigil_outputs::json::Writer::new();
            header(&mut rec, "pidnss", "vigil.pidnss");
            rec.f64("vigil.pidnss.interval_s", line.secs)
                .u64("vigil.pidnss.switches", n)
                .f64("vigil.pidnss.per_s", round1(n as f64 / iv.secs.max(1e-3)))
                .u64("vigil.pidnss.pairs_total", pairs.len() as u64)
                .objects("vigil.pidnss.pairs", pairs.iter().take(20), |o, (k, c)| {
                    o.u64("prev", k.prev_ns.into())
                        .u64("next", k.next_ns.into())
                        .u64("switches", *c)
                        .f64("per_s", round1(*c as f64 / iv.secs.max(1e-3)));
                });
            out.push(PerfRecord {
                json: rec.finish(),
                finding: None,
            });
        }
        if let Some(steal) = iv.steal.as_ref().filter(|s| !s.is_empty()) {
            let max = steal.iter().map(|s| s.1).fold(0.0, f64::max);
            let mean = steal.iter().map(|s| s.1).sum::<f64>() / steal.len() as f64;
            line.steal_max_pct = Some(round2(max));
            let mut rec = vigil_outputs::json::Writer::new();
            header(&mut rec, "cpu-steal", "vigil.cpu_steal");
            rec.f64("vigil.cpu_steal.interval_s", line.secs)
                .f64("vigil.cpu_steal.pct", round2(mean))
                .f64("vigil.cpu_steal.max_pct", round2(max))
                .objects("vigil.cpu_steal.cpus", steal, |o, (cpu, pct)| {
                    o.u64("cpu", u64::from(*cpu)).f64("pct", round2(*pct));
                });
            out.push(PerfRecord {
                json: rec.finish(),
                finding: None,
            });
            for (cpu, pct) in steal {
                if self.cfg.steal_pct > 0.0 && *pct > self.cfg.steal_pct {
                    let msg = format!(
                        "CPU {cpu} lost {:.1}% of its time to the hypervisor (steal) in {:.0} s (threshold {}%)",
                        pct, line.secs, self.cfg.steal_pct
                    );
                    let mut rec = vigil_outputs::json::Writer::new();
                    header(&mut rec, "cpu-steal-high", "vigil.finding");
                    rec.str("message", msg.as_bytes())
                        .u64("vigil.cpu_steal.cpu", u64::from(*cpu))
                        .str("vigil.finding.name", "cpu-steal-high")
                        .str("vigil.finding.metric", "vigil.cpu_steal.pct")
                        .f64("vigil.finding.value", round2(*pct))
                        .f64("vigil.finding.threshold", self.cfg.steal_pct)
                        .str("vigil.finding.unit", "%")
                        .f64("vigil.finding.interval_s", line.secs);
                    findings.push(PerfRecord {
                        json: rec.finish(),
                        finding: Some(crate::perf::collector::Finding::new(
                            "cpu-steal-high",
                            "CPU steal high",
                            msg,
                        )),
                    });
                }
            }
        }
        self.findings += findings.len() as u64;
        out.extend(findings);
        if let Some(h) = self.history.as_mut()
            && (!line.cgroups.is_empty() || line.pidnss.is_some() || line.steal_max_pct.is_some())
        {
            match h.append(&line) {
                Ok(()) => self.history_failed = false,
                Err(e) => {
                    if !self.history_failed {
                        log::error!("perf history {}: cannot write: {e}", h.path().display());
                    }
                    self.history_failed = true;
                }
            }
        }
        out
    }
}

impl Collector for PerfCollector {
    fn name(&self) -> &'static str {
        "sched"
    }

    fn collect(&mut self, ctx: &mut Ctx<'_>) -> Output {
        let mut sched = self.sched.take();
        let iv = self.read(sched.as_mut());
        self.sched = sched;
        let records = self.records(&iv, ctx.host, ctx.hostname, ctx.unix_ns);
        self.last_iv = Some(iv);
        Output {
            records,
            ..Output::default()
        }
    }

    fn table_sizes(&self, out: &mut Vec<(&'static str, usize)>) {
        PerfCollector::table_sizes(self, out);
    }

    fn prometheus(&mut self, t: &mut crate::pipeline::telemetry::Telemetry) {
        if let Some(iv) = self.last_iv.take() {
            t.perf(&iv, |id| self.label_of(id));
        }
    }
}

fn cgroup_fields(w: &mut vigil_outputs::json::Writer, id: u64, info: &CgroupInfo) {
    if let Some(c) = &info.container {
        w.str("container.id", c.id.as_bytes());
        if let Some(n) = &info.name {
            w.str("container.name", n.as_bytes());
        }
        w.str("container.runtime", c.runtime);
    }
    w.u64("vigil.cgroup.id", id);
    if let Some(p) = &info.path {
        w.str("vigil.cgroup.path", p.as_bytes());
    }
}

/// `v` rounded to one decimal (figures in records).
pub(crate) fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// `v` rounded to two decimals (percentages in records).
pub(crate) fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn read_stat() -> Option<Vec<CpuTimes>> {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .map(|t| parse_proc_stat(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_log2_slots() {
        let mut s = [0u64; RQ_SLOTS];
        s[4] = 100; // [8, 16) us
        assert_eq!(quantile_us(&s, 0.5), Some(12.0));
        assert_eq!(quantile_us(&s, 1.0), Some(16.0));
        s[11] = 1; // [1024, 2048)
        let p99 = quantile_us(&s, 0.99).unwrap();
        assert!((8.0..16.0).contains(&p99), "{p99}");
        assert_eq!(quantile_us(&s, 1.0), Some(2048.0));
        assert_eq!(quantile_us(&[0; 4], 0.5), None);
        assert_eq!(slot_bounds(0), (0, 1));
        assert_eq!(slot_bounds(1), (1, 2));
        assert_eq!(slot_bounds(3), (4, 8));
    }

    #[test]
    fn proc_stat_steal() {
        let a = "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 100 0 100 700 0 0 0 100 0 0\ncpu1 10 0 0 90 0 0 0 0 0 0\nintr 5\n";
        let b = "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 150 0 150 800 0 0 0 200 0 0\ncpu1 20 0 0 190 0 0 0 0 0 0\n";
        let (pa, pb) = (parse_proc_stat(a), parse_proc_stat(b));
        assert_eq!(pa.len(), 2);
        assert_eq!(pa[0].steal, 100);
        let s = steal_pct(&pa, &pb);
        assert_eq!(s, vec![(0, 100.0 * 100.0 / 300.0), (1, 0.0)]);
        assert!(parse_proc_stat("cpu0 1 2\ngarbage\n").is_empty());
    }

    #[test]
    fn counters_and_idle_counts() {
        let mut last = 0;
        assert_eq!(counter_delta(&mut last, 5), 5);
        assert_eq!(counter_delta(&mut last, 7), 2);
        assert_eq!(counter_delta(&mut last, 3), 3, "entry recreated: from zero");
        assert_eq!(last, 3);
        let mut n = 0;
        for i in 1..FORGET_AFTER {
            assert!(!idle_for_long(&mut n, false), "{i}");
        }
        assert!(!idle_for_long(&mut n, true), "a change starts again");
        assert_eq!(n, 0);
        for _ in 1..FORGET_AFTER {
            assert!(!idle_for_long(&mut n, false));
        }
        assert!(idle_for_long(&mut n, false));
    }

    #[test]
    fn deltas_survive_a_reset_entry() {
        let mut a = RqHist::default();
        a.slots[3] = 10;
        a.sum_ns = 100;
        let mut b = a;
        b.slots[3] = 15;
        b.sum_ns = 150;
        assert_eq!(delta(&b, Some(&a)).slots[3], 5);
        assert_eq!(
            delta(&a, Some(&b)).slots[3],
            10,
            "went down: counts from zero"
        );
    }

    #[test]
    fn history_rotates_within_its_cap() {
        let dir = std::env::temp_dir().join(format!("vigil-perf-hist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut h = History::new(&dir, 4096);
        for i in 0..200 {
            h.append(&HistoryLine {
                t: i,
                secs: 1.0,
                cgroups: vec![CgroupHist {
                    id: 7,
                    path: Some("/x".into()),
                    container: None,
                    wakeup: vec![1, 2, 3],
                    preempted: vec![],
                    sum_ns: 5,
                }],
                pidnss: Some(1),
                steal_max_pct: None,
            })
            .unwrap();
        }
        let cur = std::fs::metadata(dir.join(HISTORY_FILE)).unwrap();
        let old = std::fs::metadata(dir.join(format!("{HISTORY_FILE}.1"))).unwrap();
        assert!(
            cur.len() + old.len() <= 4096,
            "{} + {}",
            cur.len(),
            old.len()
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(cur.permissions().mode() & 0o777, 0o600);
        let (lines, bad) = read_history(&dir).unwrap();
        assert_eq!(bad, 0);
        assert_eq!(lines.last().unwrap().t, 199, "newest kept");
        assert!(lines.windows(2).all(|w| w[0].t < w[1].t), "in order");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
