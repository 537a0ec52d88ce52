//! The agent's own figures as Prometheus metrics (names in
//! `vigil_outputs::metrics::names`): events and drops per sensor, BPF
//! program cost, alerts per rule and severity, suppressed alerts, baseline
//! anomalies, events lost to a worker that panicked, and the sinks' queues
//! and spools.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use vigil_outputs::metrics::{Counter, Registry, names};

/// Kernel-side figures, refreshed every housekeeping tick.
#[derive(Default)]
struct Snapshot {
    events: BTreeMap<&'static str, u64>,
    drops: BTreeMap<&'static str, u64>,
    prio_drops: BTreeMap<&'static str, u64>,
    /// Per program: [runs, run time in ns, missed runs] (the order of
    /// [`BPF_COUNTERS`]).
    bpf: BTreeMap<String, [u64; 3]>,
}

/// The per-program counters, each reading its slot of `Snapshot::bpf`.
/// The run time is counted in nanoseconds and exposed in seconds.
const BPF_COUNTERS: [(&str, &str); 3] = [names::BPF_RUNS, names::BPF_RUN_TIME, names::BPF_MISSED];

/// A tool counter series: name and labels.
type SeriesKey = (&'static str, Vec<(&'static str, String)>);

/// Registered metrics.
pub struct Telemetry {
    /// The registry the `/metrics` endpoint serves.
    pub registry: Arc<Registry>,
    snap: Arc<Mutex<Snapshot>>,
    alerts: HashMap<(String, &'static str), Counter>,
    suppressed: HashMap<String, Counter>,
    anomalies: Option<Counter>,
    worker_lost: Option<Counter>,
    registered_programs: std::collections::BTreeSet<String>,
    runqlat: HashMap<(u64, u32), vigil_outputs::metrics::Histogram>,
    pidnss: Option<Counter>,
    steal: Arc<Mutex<BTreeMap<u32, f64>>>,
    sys: PerfsysMetrics,
    tool_counters: HashMap<SeriesKey, Counter>,
    /// The tools' series exposed in another unit than they count in
    /// (nanoseconds counted, seconds exposed).
    tool_counters_scaled: HashMap<SeriesKey, Arc<AtomicU64>>,
    tool_gauges: HashMap<SeriesKey, vigil_outputs::metrics::Gauge>,
    state: Arc<Mutex<BTreeMap<&'static str, f64>>>,
}

/// Prometheus series of the perfsys sensors and vigil's own cost.
#[derive(Default)]
struct PerfsysMetrics {
    calls: Option<Counter>,
    errors: HashMap<&'static str, Counter>,
    retrans: Option<Counter>,
    resets: HashMap<&'static str, Counter>,
    bio: HashMap<(u32, u64), vigil_outputs::metrics::Histogram>,
    cost: Option<Arc<Mutex<(f64, f64)>>>,
}

impl Telemetry {
    /// Registers the sensor metrics.
    pub fn new(registry: Arc<Registry>) -> Telemetry {
        let snap = Arc::new(Mutex::new(Snapshot::default()));
        for spec in vigil_bpf::SENSORS {
            let name = spec.name;
            let s = snap.clone();
            let _ = registry.counter_fn(
                names::SENSOR_EVENTS.0,
                names::SENSOR_EVENTS.1,
                &[("sensor", name)],
                move || {
                    s.lock()
                        .map(|g| g.events.get(name).copied().unwrap_or(0))
                        .unwrap_or(0)
                },
            );
            let s = snap.clone();
            let _ = registry.counter_fn(
                names::SENSOR_DROPS.0,
                names::SENSOR_DROPS.1,
                &[("sensor", name)],
                move || {
                    s.lock()
                        .map(|g| g.drops.get(name).copied().unwrap_or(0))
                        .unwrap_or(0)
                },
            );
            let s = snap.clone();
            let _ = registry.counter_fn(
                "vigil_sensor_priority_dropped_events_total",
                "Part of vigil_sensor_dropped_events_total lost because the priority ring was full, per sensor.",
                &[("sensor", name)],
                move || {
                    s.lock()
                        .map(|g| g.prio_drops.get(name).copied().unwrap_or(0))
                        .unwrap_or(0)
                },
            );
        }
        // The agent's memory, read at each scrape: resident set (binary and
        // ring-buffer mappings included), anonymous resident memory, and
        // the allocator's view (in use vs. free but kept): a growing
        // `in_use` is a leak, a growing `free` is fragmentation or a
        // high-water mark that glibc keeps.
        let _ = registry.gauge_fn(
            "vigil_memory_resident_bytes",
            "Resident memory of the agent (VmRSS: binary and ring-buffer mappings included).",
            &[("kind", "total")],
            || status_kib("VmRSS:") * 1024.0,
        );
        let _ = registry.gauge_fn(
            "vigil_memory_resident_bytes",
            "Resident memory of the agent (VmRSS: binary and ring-buffer mappings included).",
            &[("kind", "anonymous")],
            || status_kib("RssAnon:") * 1024.0,
        );
        let _ = registry.gauge_fn(
            "vigil_memory_heap_bytes",
            "The allocator's heap: bytes in use by the agent, and bytes free in its arenas (glibc mallinfo2; free pages are given back to the kernel by malloc_trim, so free is not resident).",
            &[("state", "in_use")],
            || heap().0,
        );
        let _ = registry.gauge_fn(
            "vigil_memory_heap_bytes",
            "The allocator's heap: bytes in use by the agent, and bytes free in its arenas (glibc mallinfo2; free pages are given back to the kernel by malloc_trim, so free is not resident).",
            &[("state", "free")],
            || heap().1,
        );
        let anomalies = registry
            .counter(
                "vigil_baseline_anomalies_total",
                "Behaviour outside a promoted baseline, reported as alerts.",
                &[],
            )
            .ok();
        let worker_lost = registry
            .counter(names::WORKER_LOST.0, names::WORKER_LOST.1, &[])
            .ok();
        Telemetry {
            registry,
            snap,
            alerts: HashMap::new(),
            suppressed: HashMap::new(),
            anomalies,
            worker_lost,
            registered_programs: Default::default(),
            runqlat: HashMap::new(),
            tool_counters: HashMap::new(),
            tool_counters_scaled: HashMap::new(),
            tool_gauges: HashMap::new(),
            pidnss: None,
            steal: Arc::default(),
            sys: PerfsysMetrics::default(),
            state: Arc::default(),
        }
    }

    /// Sets `vigil_state_entries{table}`: how many entries each of the
    /// agent's in-memory tables holds (process table, caches, container
    /// tracker, learner, per-cgroup and per-connection collectors, metric
    /// series). Every one is bounded or swept; one that only grows is a
    /// leak worth reporting.
    pub fn state(&mut self, tables: &[(&'static str, usize)]) {
        set_gauges(
            &self.registry,
            &self.state,
            (
                "vigil_state_entries",
                "Entries in the agent's in-memory tables (processes, caches, containers, learner, per-cgroup and per-connection collectors, metric series).",
            ),
            "table",
            tables.iter().map(|&(name, n)| (name, n as f64)),
            |name| name.to_string(),
        );
    }

    /// Updates the kernel figures (per kind counters and BPF stats).
    pub fn update(
        &mut self,
        decoded: &BTreeMap<u16, u64>,
        kernel: &BTreeMap<u16, vigil_bpf::abi::Counters>,
        programs: &[vigil_bpf::ProgramStat],
    ) {
        for p in programs {
            if self.registered_programs.insert(p.name.clone()) {
                for (slot, (name, help)) in BPF_COUNTERS.into_iter().enumerate() {
                    let (snap, prog) = (self.snap.clone(), p.name.clone());
                    // Slot 1 is the run time, kept in nanoseconds and
                    // exposed in the base unit.
                    let scale = if slot == 1 { 1e-9 } else { 1.0 };
                    let _ = self.registry.counter_fn_f64(
                        name,
                        help,
                        &[("program", &p.name)],
                        move || {
                            snap.lock()
                                .map(|g| g.bpf.get(&prog).map_or(0, |c| c[slot]))
                                .unwrap_or(0) as f64
                                * scale
                        },
                    );
                }
            }
        }
        if let Ok(mut g) = self.snap.lock() {
            for spec in vigil_bpf::SENSORS {
                let mut ev = 0;
                let mut dr = 0;
                let mut pd = 0;
                for k in spec.kinds {
                    ev += decoded.get(k).copied().unwrap_or(0);
                    dr += kernel.get(k).map(|c| c.dropped).unwrap_or(0);
                    pd += kernel.get(k).map(|c| c.dropped_prio).unwrap_or(0);
                }
                g.events.insert(spec.name, ev);
                g.drops.insert(spec.name, dr);
                g.prio_drops.insert(spec.name, pd);
            }
            for p in programs {
                g.bpf.insert(
                    p.name.clone(),
                    [
                        p.run_count,
                        p.run_time.as_nanos() as u64,
                        p.missed.unwrap_or(0),
                    ],
                );
            }
        }
    }

    /// Counts an alert.
    pub fn alert(&mut self, rule: &str, severity: &'static str) {
        let key = (rule.to_string(), severity);
        if let Some(c) = self.alerts.get(&key) {
            c.inc();
            return;
        }
        if let Ok(c) = self.registry.counter(
            names::ALERTS.0,
            names::ALERTS.1,
            &[("rule", rule), ("severity", severity)],
        ) {
            c.inc();
            self.alerts.insert(key, c);
        }
    }

    /// Counts suppressed alerts of a rule.
    pub fn suppressed(&mut self, rule: &str, n: u64) {
        if let Some(c) = self.suppressed.get(rule) {
            c.inc_by(n);
            return;
        }
        if let Ok(c) = self.registry.counter(
            names::ALERTS_SUPPRESSED.0,
            names::ALERTS_SUPPRESSED.1,
            &[("rule", rule)],
        ) {
            c.inc_by(n);
            self.suppressed.insert(rule.to_string(), c);
        }
    }

    /// Adds one perf interval: run-queue latency histograms per cgroup
    /// (`vigil_runqueue_latency_seconds{cgroup,container,reason}`),
    /// pid-namespace switches (`vigil_pidns_switches_total`) and steal per
    /// CPU (`vigil_cpu_steal_ratio{cpu}`). `label` names a cgroup id:
    /// (cgroup path, container id).
    pub fn perf(&mut self, iv: &crate::perf::Interval, label: impl Fn(u64) -> (String, String)) {
        use vigil_bpf::sched::{RQ_PREEMPTED, RQ_WAKEUP};
        for (id, w, p) in &iv.runqlat {
            for (kind, h) in [(RQ_WAKEUP, w), (RQ_PREEMPTED, p)] {
                if crate::perf::total(&h.slots) == 0 {
                    continue;
                }
                if !self.runqlat.contains_key(&(*id, kind)) {
                    let (path, container) = label(*id);
                    let reason = if kind == RQ_WAKEUP {
                        "wakeup"
                    } else {
                        "preempted"
                    };
                    match self.registry.histogram(
                        "vigil_runqueue_latency_seconds",
                        "Time runnable tasks waited for a CPU, per cgroup v2 and reason (wakeup, preempted); log2 buckets from the runqlat BPF histograms.",
                        &[("cgroup", &path), ("container", &container), ("reason", reason)],
                        1e-6,
                    ) {
                        Ok(hist) => {
                            self.runqlat.insert((*id, kind), hist);
                        }
                        Err(_) => continue,
                    }
                }
                if let Some(hist) = self.runqlat.get(&(*id, kind)) {
                    hist.add_buckets(&h.slots, h.sum_ns / 1000);
                }
            }
        }
        for id in &iv.forgotten {
            for kind in [RQ_WAKEUP, RQ_PREEMPTED] {
                if let Some(h) = self.runqlat.remove(&(*id, kind)) {
                    self.registry.remove_histogram(&h);
                }
            }
        }
        if let Some(pairs) = &iv.pidnss {
            if self.pidnss.is_none() {
                self.pidnss = self
                    .registry
                    .counter(
                        "vigil_pidns_switches_total",
                        "Context switches between tasks of different pid namespaces (pidnss).",
                        &[],
                    )
                    .ok();
            }
            if let Some(c) = &self.pidnss {
                c.inc_by(pairs.iter().map(|p| p.1).sum());
            }
        }
        if let Some(steal) = &iv.steal {
            set_gauges(
                &self.registry,
                &self.steal,
                (
                    "vigil_cpu_steal_ratio",
                    "Share of the last perf interval this CPU lost to the hypervisor (steal, /proc/stat).",
                ),
                "cpu",
                steal.iter().map(|&(cpu, pct)| (cpu, pct / 100.0)),
                |cpu| cpu.to_string(),
            );
        }
    }

    /// Adds one perfsys interval: `vigil_syscalls_total` (all mode),
    /// `vigil_syscall_errors_total{errno}`, `vigil_tcp_retransmits_total`,
    /// `vigil_tcp_resets_total{direction}`,
    /// `vigil_block_io_latency_seconds{device,cgroup}` and
    /// `vigil_self_cpu_ratio{part}` (agent, bpf).
    pub fn perfsys(&mut self, iv: &crate::perfsys::SysInterval) {
        use vigil_bpf::perfsys::{TCP_RESET_SENT, TCP_RETRANS, errno_name};
        let reg = &self.registry;
        let m = &mut self.sys;
        if !iv.procs.is_empty() {
            if m.calls.is_none() {
                m.calls = reg
                    .counter(
                        "vigil_syscalls_total",
                        "Syscalls made on this host (syscount, perf.syscalls = \"all\").",
                        &[],
                    )
                    .ok();
            }
            if let Some(c) = &m.calls {
                c.inc_by(iv.procs.iter().map(|p| p.1.calls).sum());
            }
        }
        for (k, n) in &iv.errors {
            let name = errno_name(k.err);
            if !m.errors.contains_key(name)
                && let Ok(c) = reg.counter(
                    "vigil_syscall_errors_total",
                    "Failing syscalls on this host by errno (syscount).",
                    &[("errno", name)],
                )
            {
                m.errors.insert(name, c);
            }
            if let Some(c) = m.errors.get(name) {
                c.inc_by(*n);
            }
        }
        for (k, _, n) in &iv.tcp {
            if k.kind == TCP_RETRANS {
                if m.retrans.is_none() {
                    m.retrans = reg
                        .counter(
                            "vigil_tcp_retransmits_total",
                            "TCP segments retransmitted (tcpretrans).",
                            &[],
                        )
                        .ok();
                }
                if let Some(c) = &m.retrans {
                    c.inc_by(*n);
                }
            } else {
                let dir = if k.kind == TCP_RESET_SENT {
                    "sent"
                } else {
                    "received"
                };
                if !m.resets.contains_key(dir)
                    && let Ok(c) = reg.counter(
                        "vigil_tcp_resets_total",
                        "TCP resets sent and received (tcpreset).",
                        &[("direction", dir)],
                    )
                {
                    m.resets.insert(dir, c);
                }
                if let Some(c) = m.resets.get(dir) {
                    c.inc_by(*n);
                }
            }
        }
        for (k, h) in &iv.bio {
            let key = (k.dev, k.cgroup_id);
            if let std::collections::hash_map::Entry::Vacant(slot) = m.bio.entry(key) {
                let (maj, min) = k.major_minor();
                if let Ok(hist) = reg.histogram(
                    "vigil_block_io_latency_seconds",
                    "Block I/O device time (issue to completion) per device and cgroup v2 of the submitting task; log2 buckets from the biolatency BPF histograms.",
                    &[
                        ("device", &format!("{maj}:{min}")),
                        ("cgroup_id", &k.cgroup_id.to_string()),
                    ],
                    1e-6,
                ) {
                    slot.insert(hist);
                }
            }
            if let Some(hist) = m.bio.get(&key) {
                hist.add_buckets(&h.slots, h.sum_ns / 1000);
            }
        }
        for (dev, cg) in &iv.bio_forgotten {
            if let Some(h) = m.bio.remove(&(*dev, *cg)) {
                reg.remove_histogram(&h);
            }
        }
        if let Some(c) = &iv.cost {
            let secs = c.secs.max(1e-3);
            let v = (c.cpu_ns as f64 / 1e9 / secs, c.bpf_ns as f64 / 1e9 / secs);
            match &m.cost {
                Some(cell) => {
                    if let Ok(mut g) = cell.lock() {
                        *g = v;
                    }
                }
                None => {
                    let cell = Arc::new(Mutex::new(v));
                    for part in ["agent", "bpf"] {
                        let c2 = cell.clone();
                        let _ = reg.gauge_fn(
                            "vigil_self_cpu_ratio",
                            "Share of one CPU vigil used in the last perf interval: the agent process (agent) and its BPF programs (bpf, from bpf_stats).",
                            &[("part", part)],
                            move || {
                                c2.lock()
                                    .map(|g| if part == "agent" { g.0 } else { g.1 })
                                    .unwrap_or(0.0)
                            },
                        );
                    }
                    m.cost = Some(cell);
                }
            }
        }
    }

    /// Adds the counter increments of a tool's collection
    /// ([`crate::perf::collector::CounterDelta`]), registering new series.
    pub fn counters(&mut self, deltas: &[crate::perf::collector::CounterDelta]) {
        for d in deltas {
            let key = (d.name, d.labels.clone());
            if d.scale != 1.0 {
                // Kept as an integer count, exposed scaled at each scrape.
                let n = match self.tool_counters_scaled.get(&key) {
                    Some(n) => Arc::clone(n),
                    None => {
                        let n = Arc::new(AtomicU64::new(0));
                        let (m, scale) = (Arc::clone(&n), d.scale);
                        let labels: Vec<(&str, &str)> =
                            d.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                        if self
                            .registry
                            .counter_fn_f64(d.name, d.help, &labels, move || {
                                m.load(Ordering::Relaxed) as f64 * scale
                            })
                            .is_err()
                        {
                            continue;
                        }
                        self.tool_counters_scaled.insert(key, Arc::clone(&n));
                        n
                    }
                };
                n.fetch_add(d.delta, Ordering::Relaxed);
                continue;
            }
            if !self.tool_counters.contains_key(&key) {
                let labels: Vec<(&str, &str)> =
                    d.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                match self.registry.counter(d.name, d.help, &labels) {
                    Ok(c) => {
                        self.tool_counters.insert(key.clone(), c);
                    }
                    Err(_) => continue,
                }
            }
            if let Some(c) = self.tool_counters.get(&key) {
                c.inc_by(d.delta);
            }
        }
    }

    /// Sets the gauges of a tool's collection
    /// ([`crate::perf::collector::GaugeValue`]), registering new series.
    pub fn gauges(&mut self, values: &[crate::perf::collector::GaugeValue]) {
        for g in values {
            let key = (g.name, g.labels.clone());
            if !self.tool_gauges.contains_key(&key) {
                let labels: Vec<(&str, &str)> =
                    g.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                match self.registry.gauge(g.name, g.help, &labels) {
                    Ok(c) => {
                        self.tool_gauges.insert(key.clone(), c);
                    }
                    Err(_) => continue,
                }
            }
            if let Some(c) = self.tool_gauges.get(&key) {
                c.set(g.value);
            }
        }
    }

    /// Counts `n` events lost to a pipeline worker that panicked.
    pub fn worker_lost(&self, n: u64) {
        if let Some(c) = &self.worker_lost {
            c.inc_by(n);
        }
    }

    /// Counts a baseline anomaly.
    pub fn anomaly(&self) {
        if let Some(c) = &self.anomalies {
            c.inc();
        }
    }
}

/// A `kB` line of /proc/self/status, in KiB (0 when absent).
fn status_kib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// (bytes in use, bytes free but kept) of the glibc heap.
/// Sets a family of gauges whose values live in `map` (one series per
/// key, labelled `label` = `label_of(key)`), registering the series of new
/// keys after the map's lock is released: a scrape holds the registry's
/// lock while it reads the map.
fn set_gauges<K: Ord + Copy + Send + Sync + 'static>(
    registry: &Registry,
    map: &Arc<Mutex<BTreeMap<K, f64>>>,
    (name, help): (&str, &str),
    label: &str,
    values: impl IntoIterator<Item = (K, f64)>,
    label_of: impl Fn(K) -> String,
) {
    let mut new = Vec::new();
    if let Ok(mut g) = map.lock() {
        for (k, v) in values {
            if g.insert(k, v).is_none() {
                new.push(k);
            }
        }
    }
    for k in new {
        let m = map.clone();
        let _ = registry.gauge_fn(name, help, &[(label, &label_of(k))], move || {
            m.lock()
                .map(|g| g.get(&k).copied().unwrap_or(0.0))
                .unwrap_or(0.0)
        });
    }
}

/// Gives the allocator's free memory back to the kernel when more than
/// `min_free` bytes of it are kept (glibc keeps freed memory as a
/// high-water mark: start-up's BTF parsing, a flood's queues). Returns
/// whether it trimmed.
pub fn trim_heap(min_free: f64) -> bool {
    if heap().1 <= min_free {
        return false;
    }
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    true
}

fn heap() -> (f64, f64) {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct.
    let m = unsafe { libc::mallinfo2() };
    ((m.uordblks + m.hblkhd) as f64, m.fordblks as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_bpf::sched::RqHist;

    fn waits() -> RqHist {
        let mut h = RqHist::default();
        h.slots[3] = 5;
        h.sum_ns = 40_000;
        h
    }

    #[test]
    fn series_of_forgotten_cgroups_are_removed() {
        let reg = Arc::new(Registry::new());
        let mut t = Telemetry::new(reg.clone());
        let label = |id: u64| (format!("/ctr-{id}"), String::new());
        let before = reg.series_count();
        let iv = crate::perf::Interval {
            runqlat: (1..=3).map(|id| (id, waits(), waits())).collect(),
            ..Default::default()
        };
        t.perf(&iv, label);
        assert_eq!(
            reg.series_count(),
            before + 6,
            "wakeup + preempted per cgroup"
        );
        assert!(reg.render().contains("cgroup=\"/ctr-2\""));
        // cgroup 2 went idle and was forgotten; 1 and 3 go on
        let iv = crate::perf::Interval {
            runqlat: vec![(1, waits(), RqHist::default()), (3, waits(), waits())],
            forgotten: vec![2],
            ..Default::default()
        };
        t.perf(&iv, label);
        assert_eq!(reg.series_count(), before + 4);
        let text = reg.render();
        assert!(!text.contains("cgroup=\"/ctr-2\""), "{text}");
        assert!(
            text.contains(
                "vigil_runqueue_latency_seconds_count{cgroup=\"/ctr-1\",container=\"\",reason=\"wakeup\"} 10\n"
            ),
            "{text}"
        );
        // a churn of cgroups, each forgotten in turn, leaves nothing behind
        for id in 100..1100u64 {
            let iv = crate::perf::Interval {
                runqlat: vec![(id, waits(), waits())],
                forgotten: vec![id - 1],
                ..Default::default()
            };
            t.perf(&iv, label);
        }
        t.perf(
            &crate::perf::Interval {
                forgotten: vec![1099],
                ..Default::default()
            },
            label,
        );
        assert_eq!(reg.series_count(), before + 4);
        assert_eq!(t.runqlat.len(), 4);
    }

    #[test]
    fn state_entries_are_exported_per_table() {
        let reg = Arc::new(Registry::new());
        let mut t = Telemetry::new(reg.clone());
        t.state(&[("processes", 12), ("containers", 0)]);
        t.state(&[("processes", 7), ("containers", 2)]);
        let text = reg.render();
        assert!(
            text.contains("vigil_state_entries{table=\"processes\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("vigil_state_entries{table=\"containers\"} 2\n"),
            "{text}"
        );
    }
}
