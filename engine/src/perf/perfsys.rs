//! System performance collection (with [`crate::perf`]):
//! every `perf.interval_s` the agent reads the perfsys BPF maps (failing
//! syscalls per process, syscalls per process, TCP retransmits and resets
//! per connection, block I/O latency per device and cgroup) and its own
//! cost (BPF run time of every vigil program from bpf_stats, its own CPU
//! time, events decoded), turns the cumulative figures into per-interval
//! deltas, and writes
//!
//! - metric records (`event.kind: metric`; `event.action`:
//!   `syscall-errors` per process, `syscalls`, `tcp-retransmit` and
//!   `tcp-reset` per connection, `biolatency` per device and cgroup,
//!   `vigil-cost`), and
//! - finding records when a threshold of `[perf]` is crossed
//!   (`syscall-errors-high`, `syscall-denied-high`, `tcp-retrans-high`,
//!   `tcp-resets-high`, `bio-latency-high`, `vigil-cost-high`), each a
//!   metric record with a `vigil.finding` object.
//!
//! Record fields are documented in docs/events.md.

use crate::config::PerfConfig;
use crate::ecs;
use crate::host::Host;
use crate::perf::collector::{Collector, Ctx, Output};
use crate::perf::sched::{round1, round2, trimmed};
use crate::perf::{quantile_us, slot_bounds, total};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;
use vigil_bpf::ProgramStat;
use vigil_bpf::perfsys::{
    BIO_SLOTS, BioHist, BioKey, Perfsys, ScErrKey, ScProc, SyscallMode, TCP_RESET_RECV,
    TCP_RESET_SENT, TCP_RETRANS, TcpKey, TcpVal, errno_name, op_name,
};
use vigil_outputs::json::Writer;

/// Records of one kind written per interval at most (the rest are counted
/// in Prometheus and the totals, not written one by one).
const MAX_RECORDS: usize = 100;

/// TCP connections and block I/O histograms unchanged for this many
/// intervals are forgotten, as cgroups are.
pub use crate::perf::FORGET_AFTER;
use crate::perf::{counter_delta, idle_for_long};

/// vigil's own cost in one interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cost {
    /// Length of the interval in seconds.
    pub secs: f64,
    /// CPU time of the agent process (user + system) in nanoseconds.
    pub cpu_ns: u64,
    /// Time spent in vigil's BPF programs (every object) in nanoseconds,
    /// charged by the kernel to the tasks that triggered them.
    pub bpf_ns: u64,
    /// Runs of vigil's BPF programs.
    pub bpf_runs: u64,
    /// Events decoded from the ring buffer.
    pub events: u64,
    /// Per program: (name, runs, nanoseconds), busiest first.
    pub programs: Vec<(String, u64, u64)>,
}

impl Cost {
    /// Share of one CPU, in percent: agent CPU plus BPF run time.
    pub fn cpu_pct(&self) -> f64 {
        100.0 * (self.cpu_ns + self.bpf_ns) as f64 / 1e9 / self.secs.max(1e-3)
    }
}

/// What the kernel reported in one interval (deltas).
#[derive(Debug, Clone, Default)]
pub struct SysInterval {
    /// Seconds since the previous collection.
    pub secs: f64,
    /// Syscalls per process ([`SyscallMode::All`]).
    pub procs: Vec<(u32, ScProc)>,
    /// Failing syscalls per (process, syscall, errno).
    pub errors: Vec<(ScErrKey, u64)>,
    /// TCP retransmits and resets per connection and kind, with the last
    /// kernel value (owner name, state).
    pub tcp: Vec<(TcpKey, TcpVal, u64)>,
    /// Block I/O histograms per (cgroup, device, op).
    pub bio: Vec<(BioKey, BioHist)>,
    /// (device, cgroup) pairs with no block I/O left to track (every op
    /// idle for [`FORGET_AFTER`] intervals): per-pair state elsewhere
    /// (metric series) is dropped.
    pub bio_forgotten: Vec<(u32, u64)>,
    /// vigil's own cost (None: off or the first reading).
    pub cost: Option<Cost>,
}

/// Cumulative figures since start (summary, tests).
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Syscalls per process still alive.
    pub calls: BTreeMap<u32, ScProc>,
    /// Failing syscalls per (tgid, nr, errno, compat) of processes still alive.
    pub errors: BTreeMap<(u32, u16, u16, u32), u64>,
    /// TCP events per connection and kind (connections not forgotten).
    pub tcp: BTreeMap<TcpKey, u64>,
    /// Block I/O per (cgroup, device, op) not forgotten.
    pub bio: BTreeMap<BioKey, BioHist>,
    /// The last cost measured.
    pub cost: Option<Cost>,
    /// Findings raised.
    pub findings: u64,
}

/// Self-CPU of this process (user + system) in nanoseconds.
fn self_cpu_ns() -> u64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn comm_of(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// Device name from /sys/dev/block/MAJ:MIN/uevent (`DEVNAME=vda`).
fn dev_name(major: u32, minor: u32) -> Option<String> {
    let t = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent")).ok()?;
    t.lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .map(str::to_string)
}

/// A process's failures in one interval: (errors, EPERM + EACCES, per
/// (syscall, errno)).
type ProcErrors = (u64, u64, Vec<(ScErrKey, u64)>);

/// One (device, cgroup)'s block I/O in an interval, ops together, with the
/// request count per op name.
type BioGroup = (BioHist, BTreeMap<&'static str, u64>);

/// Turns the perfsys maps and vigil's own figures into intervals, records
/// and findings.
pub struct PerfsysCollector {
    cfg: PerfConfig,
    last_procs: HashMap<u32, ScProc>,
    last_errors: HashMap<ScErrKey, u64>,
    last_tcp: HashMap<TcpKey, (u64, u32)>,
    last_bio: HashMap<BioKey, (BioHist, u32)>,
    last_cpu_ns: u64,
    last_bpf: HashMap<String, (u64, u64)>,
    last_events: u64,
    last_at: Instant,
    cost_started: bool,
    devs: HashMap<u32, Option<String>>,
    cgroups: HashMap<u64, (Option<String>, Option<crate::container::Container>)>,
    /// Cumulative figures.
    pub totals: Totals,
    /// The perfsys object read by [`Collector::collect`] (None: vigil's
    /// own cost only).
    ps: Option<Perfsys>,
    /// The last interval, for [`Collector::prometheus`].
    last_iv: Option<SysInterval>,
}

/// A record to write: JSON, and for findings their name and message.
pub type Record = crate::perf::PerfRecord;

impl PerfsysCollector {
    /// Entries in the collector's tables (`vigil_state_entries`).
    pub fn table_sizes(&self, out: &mut Vec<(&'static str, usize)>) {
        out.extend([
            ("syscount_processes", self.last_procs.len()),
            ("syscount_errors", self.last_errors.len()),
            ("tcp_connections", self.last_tcp.len()),
            ("bio_keys", self.last_bio.len()),
        ]);
    }

    /// A collector for these settings.
    pub fn new(cfg: &PerfConfig) -> PerfsysCollector {
        PerfsysCollector {
            cfg: cfg.clone(),
            last_procs: HashMap::new(),
            last_errors: HashMap::new(),
            last_tcp: HashMap::new(),
            last_bio: HashMap::new(),
            last_cpu_ns: self_cpu_ns(),
            last_bpf: HashMap::new(),
            last_events: 0,
            last_at: Instant::now(),
            cost_started: false,
            devs: HashMap::new(),
            cgroups: HashMap::new(),
            totals: Totals::default(),
            ps: None,
            last_iv: None,
        }
    }

    /// The collector with the perfsys object it reads as a [`Collector`].
    pub fn with_perfsys(mut self, ps: Option<Perfsys>) -> PerfsysCollector {
        self.ps = ps;
        self
    }

    /// The perfsys object, when loaded.
    pub fn perfsys(&self) -> Option<&Perfsys> {
        self.ps.as_ref()
    }

    /// Reads the kernel's figures. `programs`: bpf_stats of every vigil
    /// program (all objects); `events`: events decoded so far.
    pub fn read(
        &mut self,
        ps: Option<&mut Perfsys>,
        programs: &[ProgramStat],
        bpf_scale: f64,
        events: u64,
    ) -> SysInterval {
        let now = Instant::now();
        let mut iv = SysInterval {
            secs: now.duration_since(self.last_at).as_secs_f64(),
            ..SysInterval::default()
        };
        self.last_at = now;
        if let Some(ps) = ps {
            self.read_kernel(ps, &mut iv);
        }
        if self.cfg.self_cost {
            let cpu = self_cpu_ns();
            let mut cost = Cost {
                secs: iv.secs,
                cpu_ns: cpu.saturating_sub(self.last_cpu_ns),
                events: events.saturating_sub(self.last_events),
                ..Cost::default()
            };
            self.last_cpu_ns = cpu;
            self.last_events = events;
            for p in programs {
                let ns = p.run_time.as_nanos() as u64;
                let (r0, n0) = self
                    .last_bpf
                    .insert(p.name.clone(), (p.run_count, ns))
                    .unwrap_or((0, 0));
                let (dr, dn) = if p.run_count >= r0 && ns >= n0 {
                    (p.run_count - r0, ns - n0)
                } else {
                    (p.run_count, ns)
                };
                // bpf_stats is sampled: scale what the window counted
                let (dr, dn) = (
                    (dr as f64 * bpf_scale) as u64,
                    (dn as f64 * bpf_scale) as u64,
                );
                cost.bpf_runs += dr;
                cost.bpf_ns += dn;
                if dr > 0 {
                    cost.programs.push((p.name.clone(), dr, dn));
                }
            }
            cost.programs
                .sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
            // The first reading covers start-up (loading, the /proc seed):
            // not the steady state a finding is about.
            if self.cost_started {
                self.totals.cost = Some(cost.clone());
                iv.cost = Some(cost);
            }
            self.cost_started = true;
        }
        iv
    }

    fn read_kernel(&mut self, ps: &mut Perfsys, iv: &mut SysInterval) {
        if ps.is_live("syscount") {
            if ps.syscall_mode() == SyscallMode::All
                && let Ok(all) = ps.syscall_procs()
            {
                // The kernel map is an LRU: what it evicted is gone from
                // here too, or this table grows for the agent's life.
                let seen: HashSet<u32> = all.iter().map(|(t, _)| *t).collect();
                self.last_procs.retain(|t, _| seen.contains(t));
                self.totals.calls.retain(|t, _| seen.contains(t));
                for (tgid, v) in all {
                    let prev = self.last_procs.insert(tgid, v).unwrap_or_default();
                    let d = if v.calls >= prev.calls && v.errors >= prev.errors {
                        ScProc {
                            calls: v.calls - prev.calls,
                            errors: v.errors - prev.errors,
                        }
                    } else {
                        v
                    };
                    if d.calls > 0 {
                        let t = self.totals.calls.entry(tgid).or_default();
                        t.calls = t.calls.saturating_add(d.calls);
                        t.errors = t.errors.saturating_add(d.errors);
                        iv.procs.push((tgid, d));
                    }
                }
            }
            if let Ok(all) = ps.syscall_errors() {
                let seen: HashSet<(u32, u16, u16, u32)> = all
                    .iter()
                    .map(|(k, _)| (k.tgid, k.nr, k.err, k.compat))
                    .collect();
                self.last_errors
                    .retain(|k, _| seen.contains(&(k.tgid, k.nr, k.err, k.compat)));
                self.totals.errors.retain(|k, _| seen.contains(k));
                for (k, v) in all {
                    let d = counter_delta(self.last_errors.entry(k).or_default(), v);
                    if d > 0 {
                        *self
                            .totals
                            .errors
                            .entry((k.tgid, k.nr, k.err, k.compat))
                            .or_default() += d;
                        iv.errors.push((k, d));
                    }
                }
            }
        }
        if (ps.is_live("tcpretrans") || ps.is_live("tcpreset"))
            && let Ok(all) = ps.tcp_events()
        {
            // tcp_counts is an LRU (a connect flood makes two keys per
            // connection): keys it evicted never show up again, so they
            // are dropped here rather than waiting to be idle (a soak with
            // connect floods grew this table to 97,000 keys).
            let seen: HashSet<TcpKey> = all.iter().map(|(k, _)| *k).collect();
            self.last_tcp.retain(|k, _| seen.contains(k));
            self.totals.tcp.retain(|k, _| seen.contains(k));
            let mut idle = Vec::new();
            for (k, v) in all {
                let e = self.last_tcp.entry(k).or_insert((0, 0));
                let d = counter_delta(&mut e.0, v.count);
                if idle_for_long(&mut e.1, d > 0) {
                    idle.push(k);
                }
                if d > 0 {
                    *self.totals.tcp.entry(k).or_default() += d;
                    iv.tcp.push((k, v, d));
                }
            }
            if !idle.is_empty() && ps.forget_tcp(&idle).is_ok() {
                for k in &idle {
                    self.last_tcp.remove(k);
                    self.totals.tcp.remove(k);
                }
            }
        }
        if ps.is_live("biolatency")
            && let Ok(all) = ps.bio()
        {
            let seen: HashSet<BioKey> = all.iter().map(|(k, _)| *k).collect();
            self.last_bio.retain(|k, _| seen.contains(k));
            let mut idle = Vec::new();
            for (k, h) in all {
                let e = self.last_bio.entry(k).or_insert((BioHist::default(), 0));
                let d = bio_delta(&h, &e.0);
                e.0 = h;
                let changed = total(&d.slots) > 0;
                if idle_for_long(&mut e.1, changed) {
                    idle.push(k);
                }
                if changed {
                    let t = self.totals.bio.entry(k).or_default();
                    for i in 0..BIO_SLOTS {
                        t.slots[i] = t.slots[i].saturating_add(d.slots[i]);
                    }
                    t.sum_ns = t.sum_ns.saturating_add(d.sum_ns);
                    t.queue_ns = t.queue_ns.saturating_add(d.queue_ns);
                    t.bytes = t.bytes.saturating_add(d.bytes);
                    iv.bio.push((k, d));
                }
            }
            if !idle.is_empty() && ps.forget_bio(&idle).is_ok() {
                for k in &idle {
                    self.last_bio.remove(k);
                    self.totals.bio.remove(k);
                }
                let live: HashSet<(u32, u64)> =
                    self.last_bio.keys().map(|k| (k.dev, k.cgroup_id)).collect();
                let mut gone: Vec<(u32, u64)> = idle
                    .iter()
                    .map(|k| (k.dev, k.cgroup_id))
                    .filter(|p| !live.contains(p))
                    .collect();
                gone.sort_unstable();
                gone.dedup();
                let cgroups: HashSet<u64> = live.iter().map(|p| p.1).collect();
                self.cgroups.retain(|id, _| cgroups.contains(id));
                iv.bio_forgotten = gone;
            }
        }
    }

    /// Forgets the syscall counters of processes that exited (kernel maps,
    /// last values and totals). Housekeeping, after a [`Self::read`].
    pub fn sweep(&mut self, ps: &mut Perfsys, alive: impl Fn(u32) -> bool) {
        let mut dead: Vec<u32> = self
            .last_procs
            .keys()
            .chain(self.last_errors.keys().map(|k| &k.tgid))
            .copied()
            .filter(|&t| !alive(t))
            .collect();
        dead.sort_unstable();
        dead.dedup();
        if dead.is_empty() || ps.forget_processes(&dead).is_err() {
            return;
        }
        for t in &dead {
            self.last_procs.remove(t);
            self.totals.calls.remove(t);
        }
        self.last_errors
            .retain(|k, _| dead.binary_search(&k.tgid).is_err());
        self.totals
            .errors
            .retain(|k, _| dead.binary_search(&k.0).is_err());
    }

    fn cgroup(
        &mut self,
        id: u64,
        host: &mut dyn Host,
    ) -> (Option<String>, Option<crate::container::Container>) {
        if let Some(c) = self.cgroups.get(&id)
            && c.0.is_some()
        {
            return c.clone();
        }
        let path = host.cgroup_path(id);
        let container = path.as_deref().and_then(crate::container::from_cgroup_path);
        self.cgroups.insert(id, (path.clone(), container.clone()));
        (path, container)
    }

    fn dev(&mut self, dev: u32) -> Option<String> {
        self.devs
            .entry(dev)
            .or_insert_with(|| dev_name(dev >> 20, dev & 0xfffff))
            .clone()
    }

    /// Encodes an interval as records: metrics, then findings.
    pub fn records(
        &mut self,
        iv: &SysInterval,
        host: &mut dyn Host,
        hostname: &str,
        unix_ns: i64,
    ) -> Vec<Record> {
        let enc = IntervalEnc {
            ts: ecs::rfc3339(unix_ns),
            secs: (iv.secs * 1000.0).round() / 1000.0,
            span: iv.secs.max(1e-3),
            hostname,
        };
        let mut out = Records::default();
        self.syscall_records(&enc, iv, host, &mut out);
        self.tcp_records(&enc, iv, &mut out);
        self.bio_records(&enc, iv, host, &mut out);
        self.cost_records(&enc, iv, &mut out);
        self.totals.findings += out.findings.len() as u64;
        out.metrics.extend(out.findings);
        out.metrics
    }

    /// `syscall-errors` per process (the most failing ones, and any over a
    /// threshold, with its findings) and the `syscalls` summary.
    fn syscall_records(
        &self,
        enc: &IntervalEnc<'_>,
        iv: &SysInterval,
        host: &mut dyn Host,
        out: &mut Records,
    ) {
        let mut per_proc: BTreeMap<u32, ProcErrors> = BTreeMap::new();
        for (k, d) in &iv.errors {
            let e = per_proc.entry(k.tgid).or_default();
            e.0 += d;
            if k.err == libc::EPERM as u16 || k.err == libc::EACCES as u16 {
                e.1 += d;
            }
            e.2.push((*k, *d));
        }
        let calls: HashMap<u32, ScProc> = iv.procs.iter().copied().collect();
        let mut ranked: Vec<(u32, ProcErrors)> = per_proc.into_iter().collect();
        ranked.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
        for (i, (tgid, (errs, denied, mut list))) in ranked.into_iter().enumerate() {
            let over_rate = self.cfg.syscalls_errors_per_s > 0.0
                && errs as f64 / enc.span > self.cfg.syscalls_errors_per_s;
            let over_denied =
                self.cfg.syscalls_denied_max > 0 && denied > self.cfg.syscalls_denied_max;
            if i >= self.cfg.syscalls_top && !over_rate && !over_denied {
                continue;
            }
            let name = comm_of(tgid);
            let cg = host.proc_cgroup(tgid);
            let container = cg.as_deref().and_then(crate::container::from_proc_cgroup);
            list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let proc_fields = |w: &mut Writer| {
                w.u64("process.pid", u64::from(tgid));
                if let Some(n) = &name {
                    w.str("process.name", n.as_bytes());
                }
                if let Some(c) = &container {
                    w.str("container.id", c.id.as_bytes())
                        .str("container.runtime", c.runtime);
                }
            };
            let mut w = enc.writer("syscall-errors", "vigil.syscalls");
            proc_fields(&mut w);
            w.f64("vigil.syscalls.interval_s", enc.secs)
                .u64("vigil.syscalls.errors", errs)
                .f64("vigil.syscalls.errors_per_s", enc.per_s(errs))
                .u64("vigil.syscalls.denied", denied);
            if let Some(c) = calls.get(&tgid) {
                w.u64("vigil.syscalls.calls", c.calls)
                    .f64("vigil.syscalls.calls_per_s", enc.per_s(c.calls));
            }
            w.u64("vigil.syscalls.kinds", list.len() as u64).objects(
                "vigil.syscalls.failures",
                list.iter().take(20),
                |o, (k, n)| {
                    let sys = if k.compat != 0 {
                        format!("ia32:{}", k.nr)
                    } else {
                        vigil_baselines::syscall_name(k.nr)
                            .map_or_else(|| format!("sys_{}", k.nr), str::to_string)
                    };
                    o.str("syscall", sys)
                        .u64("nr", k.nr.into())
                        .str("errno", errno_name(k.err))
                        .u64("code", k.err.into())
                        .bool("compat", k.compat != 0)
                        .u64("count", *n);
                },
            );
            out.metrics.push(Record {
                json: w.finish(),
                finding: None,
            });
            let who = format!(
                "process {tgid} ({})",
                name.clone().unwrap_or_else(|| "exited".into())
            );
            let top = list.first().map(|(k, n)| {
                format!(
                    "{} {} x{n}",
                    vigil_baselines::syscall_name(k.nr).unwrap_or("?"),
                    errno_name(k.err)
                )
            });
            if over_rate {
                let msg = format!(
                    "{who} failed {errs} syscalls in {:.0} s ({:.0}/s, threshold {}/s); most: {}",
                    enc.secs,
                    enc.per_s(errs),
                    self.cfg.syscalls_errors_per_s,
                    top.clone().unwrap_or_default()
                );
                out.findings.push(enc.finding(
                    ("syscall-errors-high", "Failing syscalls high"),
                    msg,
                    proc_fields,
                    Threshold {
                        metric: "vigil.syscalls.errors_per_s",
                        value: enc.per_s(errs),
                        threshold: self.cfg.syscalls_errors_per_s,
                        unit: "1/s",
                        samples: None,
                    },
                ));
            }
            if over_denied {
                let msg = format!(
                    "{who} was denied {denied} syscalls (EPERM/EACCES) in {:.0} s (threshold {}); most: {}",
                    enc.secs,
                    self.cfg.syscalls_denied_max,
                    top.unwrap_or_default()
                );
                out.findings.push(enc.finding(
                    ("syscall-denied-high", "Denied syscalls high"),
                    msg,
                    proc_fields,
                    Threshold {
                        metric: "vigil.syscalls.denied",
                        value: denied as f64,
                        threshold: self.cfg.syscalls_denied_max as f64,
                        unit: "count",
                        samples: None,
                    },
                ));
            }
        }
        if iv.procs.is_empty() && iv.errors.is_empty() {
            return;
        }
        let n_calls: u64 = iv.procs.iter().map(|p| p.1.calls).sum();
        let n_errs: u64 = iv.errors.iter().map(|e| e.1).sum();
        let mut w = enc.writer("syscalls", "vigil.syscalls");
        w.f64("vigil.syscalls.interval_s", enc.secs).str(
            "vigil.syscalls.mode",
            if iv.procs.is_empty() { "errors" } else { "all" },
        );
        if !iv.procs.is_empty() {
            w.u64("vigil.syscalls.calls", n_calls)
                .f64("vigil.syscalls.calls_per_s", enc.per_s(n_calls));
            let mut top = iv.procs.clone();
            top.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then(a.0.cmp(&b.0)));
            w.objects(
                "vigil.syscalls.top",
                top.iter().take(self.cfg.syscalls_top),
                |o, (tgid, c)| {
                    o.u64("pid", u64::from(*tgid))
                        .str("name", comm_of(*tgid).unwrap_or_default())
                        .u64("calls", c.calls)
                        .u64("errors", c.errors)
                        .f64("per_s", enc.per_s(c.calls));
                },
            );
        }
        w.u64("vigil.syscalls.errors", n_errs)
            .f64("vigil.syscalls.errors_per_s", enc.per_s(n_errs));
        out.metrics.push(Record {
            json: w.finish(),
            finding: None,
        });
    }

    /// `tcp-retransmit` and `tcp-reset` per connection, their findings,
    /// and the host's `tcp-resets-high`.
    fn tcp_records(&self, enc: &IntervalEnc<'_>, iv: &SysInterval, out: &mut Records) {
        // (local, remote, owner) -> [retrans, sent, received] and the last value
        type Conn = ([u8; 16], [u8; 16], u16, u16, u16, u32);
        let mut conns: BTreeMap<Conn, ([u64; 3], TcpVal)> = BTreeMap::new();
        let mut resets = 0u64;
        for (k, v, d) in &iv.tcp {
            let e = conns
                .entry((k.saddr, k.daddr, k.sport, k.dport, k.family, k.tgid))
                .or_insert(([0; 3], *v));
            let i = match k.kind {
                TCP_RETRANS => 0,
                TCP_RESET_SENT => 1,
                TCP_RESET_RECV => 2,
                _ => continue,
            };
            e.0[i] += d;
            if v.last_ns >= e.1.last_ns {
                e.1 = *v;
            }
            if i > 0 {
                resets += d;
            }
        }
        let (mut n_retrans, mut n_reset) = (0usize, 0usize);
        for ((sa, da, sp, dp, fam, tgid), (c, v)) in &conns {
            let key = TcpKey {
                saddr: *sa,
                daddr: *da,
                sport: *sp,
                dport: *dp,
                family: *fam,
                ..TcpKey::default()
            };
            let (src, dst) = key.addrs();
            let conn = |w: &mut Writer| {
                w.str("source.ip", src.to_string().as_bytes())
                    .u64("source.port", u64::from(*sp))
                    .str("destination.ip", dst.to_string().as_bytes())
                    .u64("destination.port", u64::from(*dp))
                    .str("network.transport", "tcp")
                    .str("network.type", if *fam == 2 { "ipv4" } else { "ipv6" });
                if *tgid != 0 {
                    w.u64("process.pid", u64::from(*tgid));
                    if let Some(n) = v.comm() {
                        w.str("process.name", n.as_bytes());
                    }
                }
                if v.state > 0 {
                    w.str("vigil.tcp.state", tcp_state(v.state));
                }
            };
            if c[0] > 0 {
                n_retrans += 1;
                if n_retrans <= MAX_RECORDS {
                    let mut w = enc.writer("tcp-retransmit", "vigil.tcp");
                    conn(&mut w);
                    w.f64("vigil.tcp.interval_s", enc.secs)
                        .u64("vigil.tcp.retransmits", c[0]);
                    if v.err != 0 {
                        w.i64("vigil.tcp.last_error", i64::from(v.err));
                    }
                    out.metrics.push(Record {
                        json: w.finish(),
                        finding: None,
                    });
                }
                if self.cfg.tcp_retrans_max > 0 && c[0] >= self.cfg.tcp_retrans_max {
                    let msg = format!(
                        "TCP connection {src}:{sp} -> {dst}:{dp}{} retransmitted {} segments in {:.0} s (threshold {})",
                        if *tgid != 0 {
                            format!(" (process {tgid} {})", v.comm().unwrap_or_default())
                        } else {
                            String::new()
                        },
                        c[0],
                        enc.secs,
                        self.cfg.tcp_retrans_max
                    );
                    out.findings.push(enc.finding(
                        ("tcp-retrans-high", "TCP retransmits high"),
                        msg,
                        conn,
                        Threshold {
                            metric: "vigil.tcp.retransmits",
                            value: c[0] as f64,
                            threshold: self.cfg.tcp_retrans_max as f64,
                            unit: "count",
                            samples: None,
                        },
                    ));
                }
            }
            if c[1] + c[2] > 0 {
                n_reset += 1;
                if n_reset <= MAX_RECORDS {
                    let mut w = enc.writer("tcp-reset", "vigil.tcp");
                    conn(&mut w);
                    w.f64("vigil.tcp.interval_s", enc.secs)
                        .u64("vigil.tcp.resets_sent", c[1])
                        .u64("vigil.tcp.resets_received", c[2]);
                    out.metrics.push(Record {
                        json: w.finish(),
                        finding: None,
                    });
                }
            }
        }
        if self.cfg.tcp_resets_max > 0 && resets >= self.cfg.tcp_resets_max {
            let msg = format!(
                "This host sent and received {resets} TCP resets in {:.0} s on {} connections (threshold {}): a port scan, or a service refusing or dropping connections",
                enc.secs, n_reset, self.cfg.tcp_resets_max
            );
            out.findings.push(enc.finding(
                ("tcp-resets-high", "TCP resets high"),
                msg,
                |w| {
                    w.u64("vigil.tcp.connections", n_reset as u64);
                },
                Threshold {
                    metric: "vigil.tcp.resets",
                    value: resets as f64,
                    threshold: self.cfg.tcp_resets_max as f64,
                    unit: "count",
                    samples: None,
                },
            ));
        }
    }

    /// `biolatency` per (device, cgroup), ops together, and its finding.
    fn bio_records(
        &mut self,
        enc: &IntervalEnc<'_>,
        iv: &SysInterval,
        host: &mut dyn Host,
        out: &mut Records,
    ) {
        let mut groups: BTreeMap<(u32, u64), BioGroup> = BTreeMap::new();
        for (k, h) in &iv.bio {
            let e = groups
                .entry((k.dev, k.cgroup_id))
                .or_insert_with(|| (BioHist::default(), BTreeMap::new()));
            for i in 0..BIO_SLOTS {
                e.0.slots[i] += h.slots[i];
            }
            e.0.sum_ns += h.sum_ns;
            e.0.queue_ns += h.queue_ns;
            e.0.bytes += h.bytes;
            *e.1.entry(op_name(k.op)).or_default() += total(&h.slots);
        }
        for ((dev, cg), (h, ops)) in groups.iter().take(MAX_RECORDS) {
            let (major, minor) = (dev >> 20, dev & 0xfffff);
            let name = self.dev(*dev);
            let (path, container) = self.cgroup(*cg, host);
            let n = total(&h.slots);
            let q = |x| quantile_us(&h.slots, x).unwrap_or(0.0);
            let (p50, p90, p99) = (q(0.5), q(0.9), q(0.99));
            let max = h
                .slots
                .iter()
                .rposition(|&c| c > 0)
                .map_or(0, |k| slot_bounds(k).1);
            // The JSON writer nests dotted keys: fields go grouped by
            // prefix (container.*, then vigil.bio.*, then vigil.cgroup.*).
            let contf = |w: &mut Writer| {
                if let Some(c) = &container {
                    w.str("container.id", c.id.as_bytes())
                        .str("container.runtime", c.runtime);
                }
            };
            let devf = |w: &mut Writer| {
                if let Some(d) = &name {
                    w.str("vigil.bio.device", d.as_bytes());
                }
                w.u64("vigil.bio.major", u64::from(major))
                    .u64("vigil.bio.minor", u64::from(minor));
            };
            let cgf = |w: &mut Writer| {
                w.u64("vigil.cgroup.id", *cg);
                if let Some(p) = &path {
                    w.str("vigil.cgroup.path", p.as_bytes());
                }
            };
            let mean_us = |ns: u64| round1(ns as f64 / n.max(1) as f64 / 1e3);
            let mut w = enc.writer("biolatency", "vigil.bio");
            contf(&mut w);
            devf(&mut w);
            w.f64("vigil.bio.interval_s", enc.secs)
                .u64("vigil.bio.count", n);
            // every op an own member of vigil.bio.ops (op names are plain words)
            for (op, c) in ops {
                w.u64(&format!("vigil.bio.ops.{op}"), *c);
            }
            w.u64("vigil.bio.bytes", h.bytes)
                .f64("vigil.bio.mean_us", mean_us(h.sum_ns))
                .f64("vigil.bio.p50_us", round1(p50))
                .f64("vigil.bio.p90_us", round1(p90))
                .f64("vigil.bio.p99_us", round1(p99))
                .u64("vigil.bio.max_us", max)
                .f64("vigil.bio.queue_mean_us", mean_us(h.queue_ns))
                .u64s("vigil.bio.slots", trimmed(&h.slots).iter().copied());
            cgf(&mut w);
            out.metrics.push(Record {
                json: w.finish(),
                finding: None,
            });
            if self.cfg.bio_p99_ms > 0.0
                && n >= self.cfg.bio_min_samples
                && p99 > self.cfg.bio_p99_ms * 1000.0
            {
                let who = container
                    .as_ref()
                    .map(|c| format!("container {}", &c.id[..c.id.len().min(12)]))
                    .or_else(|| path.as_ref().map(|p| format!("cgroup {p}")))
                    .unwrap_or_else(|| format!("cgroup id {cg}"));
                let msg = format!(
                    "Block I/O p99 on {} for {who} is {:.1} ms over {n} requests in {:.0} s (threshold {} ms)",
                    name.clone().unwrap_or_else(|| format!("{major}:{minor}")),
                    p99 / 1e3,
                    enc.secs,
                    self.cfg.bio_p99_ms
                );
                out.findings.push(enc.finding(
                    ("bio-latency-high", "Block I/O latency high"),
                    msg,
                    |w| {
                        contf(w);
                        devf(w);
                        cgf(w);
                    },
                    Threshold {
                        metric: "vigil.bio.p99_us",
                        value: round1(p99 / 1e3),
                        threshold: self.cfg.bio_p99_ms,
                        unit: "ms",
                        samples: Some(n),
                    },
                ));
            }
        }
    }

    /// `vigil-cost` (vigil's own CPU and its busiest BPF programs) and its
    /// finding.
    fn cost_records(&self, enc: &IntervalEnc<'_>, iv: &SysInterval, out: &mut Records) {
        let Some(c) = &iv.cost else {
            return;
        };
        let pct = c.cpu_pct();
        let share = |ns: u64| 100.0 * ns as f64 / 1e9 / c.secs.max(1e-3);
        let mut w = enc.writer("vigil-cost", "vigil.cost");
        w.f64("vigil.cost.interval_s", enc.secs)
            .f64("vigil.cost.cpu_pct", round2(pct))
            .f64("vigil.cost.agent_cpu_pct", round2(share(c.cpu_ns)))
            .f64("vigil.cost.bpf_cpu_pct", round2(share(c.bpf_ns)))
            .u64("vigil.cost.agent_cpu_ns", c.cpu_ns)
            .u64("vigil.cost.bpf_ns", c.bpf_ns)
            .u64("vigil.cost.bpf_runs", c.bpf_runs)
            .f64("vigil.cost.bpf_runs_per_s", enc.per_s(c.bpf_runs))
            .u64("vigil.cost.events", c.events)
            .f64("vigil.cost.events_per_s", enc.per_s(c.events));
        if c.events > 0 {
            w.f64(
                "vigil.cost.ns_per_event",
                round1((c.cpu_ns + c.bpf_ns) as f64 / c.events as f64),
            );
        }
        w.objects(
            "vigil.cost.programs",
            c.programs.iter().take(10),
            |o, (name, runs, ns)| {
                o.str("name", name)
                    .u64("runs", *runs)
                    .u64("run_ns", *ns)
                    .f64("ns_per_run", round1(*ns as f64 / (*runs).max(1) as f64))
                    .f64("runs_per_s", enc.per_s(*runs));
            },
        );
        out.metrics.push(Record {
            json: w.finish(),
            finding: None,
        });
        if self.cfg.self_cpu_pct > 0.0 && pct > self.cfg.self_cpu_pct {
            let top = c
                .programs
                .first()
                .map(|(n, r, ns)| {
                    format!(
                        "; busiest BPF program {n}: {r} runs, {:.1} ms",
                        *ns as f64 / 1e6
                    )
                })
                .unwrap_or_default();
            let msg = format!(
                "vigil used {:.1}% of one CPU in {:.0} s (agent {:.1}%, BPF programs {:.1}%; threshold {}%), {} events{top}",
                pct,
                enc.secs,
                share(c.cpu_ns),
                share(c.bpf_ns),
                self.cfg.self_cpu_pct,
                c.events
            );
            out.findings.push(enc.finding(
                ("vigil-cost-high", "vigil's own cost high"),
                msg,
                |_| {},
                Threshold {
                    metric: "vigil.cost.cpu_pct",
                    value: round2(pct),
                    threshold: self.cfg.self_cpu_pct,
                    unit: "%",
                    samples: None,
                },
            ));
        }
    }
}

/// What every record of one interval shares: its time, length and host.
struct IntervalEnc<'a> {
    ts: String,
    /// The interval's length, rounded to the millisecond (written).
    secs: f64,
    /// The interval's length, at least 1 ms (rates are per second of it).
    span: f64,
    hostname: &'a str,
}

/// An interval's records: metrics first, findings after them.
#[derive(Default)]
struct Records {
    metrics: Vec<Record>,
    findings: Vec<Record>,
}

/// The figure a finding is about, and the threshold it crossed.
struct Threshold {
    metric: &'static str,
    value: f64,
    threshold: f64,
    unit: &'static str,
    /// How many samples the figure comes from (`vigil.finding.samples`).
    samples: Option<u64>,
}

impl IntervalEnc<'_> {
    /// A record's writer with its header (`@timestamp`, `event.*`, host).
    fn writer(&self, action: &str, dataset: &str) -> Writer {
        let mut w = Writer::new();
        w.str("@timestamp", self.ts.as_bytes())
            .str("event.kind", "metric")
            .str("event.module", "vigil")
            .str("event.dataset", dataset)
            .str("event.action", action)
            .str("host.hostname", self.hostname);
        w
    }

    /// `n` per second of the interval, to one decimal.
    fn per_s(&self, n: u64) -> f64 {
        round1(n as f64 / self.span)
    }

    /// A finding record: the header, `message`, what `fields` writes, then
    /// `vigil.finding.*`.
    fn finding(
        &self,
        (name, title): (&'static str, &'static str),
        msg: String,
        fields: impl FnOnce(&mut Writer),
        t: Threshold,
    ) -> Record {
        let mut w = self.writer(name, "vigil.finding");
        w.str("message", msg.as_bytes());
        fields(&mut w);
        w.str("vigil.finding.name", name)
            .str("vigil.finding.metric", t.metric)
            .f64("vigil.finding.value", t.value)
            .f64("vigil.finding.threshold", t.threshold)
            .str("vigil.finding.unit", t.unit)
            .f64("vigil.finding.interval_s", self.secs);
        if let Some(n) = t.samples {
            w.u64("vigil.finding.samples", n);
        }
        Record {
            json: w.finish(),
            finding: Some(crate::perf::collector::Finding::new(name, title, msg)),
        }
    }
}

impl Collector for PerfsysCollector {
    fn name(&self) -> &'static str {
        "perfsys"
    }

    fn collect(&mut self, ctx: &mut Ctx<'_>) -> Output {
        let mut ps = self.ps.take();
        let iv = self.read(ps.as_mut(), ctx.programs, ctx.bpf_scale, ctx.events);
        let records = self.records(&iv, ctx.host, ctx.hostname, ctx.unix_ns);
        if let Some(p) = ps.as_mut() {
            self.sweep(p, |pid| {
                std::path::Path::new(&format!("/proc/{pid}")).exists()
            });
        }
        self.ps = ps;
        self.last_iv = Some(iv);
        Output {
            records,
            ..Output::default()
        }
    }

    fn table_sizes(&self, out: &mut Vec<(&'static str, usize)>) {
        PerfsysCollector::table_sizes(self, out);
    }

    fn prometheus(&mut self, t: &mut crate::pipeline::telemetry::Telemetry) {
        if let Some(iv) = self.last_iv.take() {
            t.perfsys(&iv);
        }
    }
}

/// Slot-wise `a - b`; a histogram that went down (its BPF entry was removed
/// and created again) counts from zero.
fn bio_delta(a: &BioHist, b: &BioHist) -> BioHist {
    if a.slots.iter().zip(b.slots.iter()).any(|(x, y)| x < y)
        || a.sum_ns < b.sum_ns
        || a.queue_ns < b.queue_ns
        || a.bytes < b.bytes
    {
        return *a;
    }
    let mut d = BioHist::default();
    for k in 0..BIO_SLOTS {
        d.slots[k] = a.slots[k] - b.slots[k];
    }
    d.sum_ns = a.sum_ns - b.sum_ns;
    d.queue_ns = a.queue_ns - b.queue_ns;
    d.bytes = a.bytes - b.bytes;
    d
}

/// TCP state name (include/net/tcp_states.h).
pub fn tcp_state(s: i32) -> &'static str {
    match s {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bio_deltas_survive_a_reset_entry() {
        let mut a = BioHist::default();
        a.slots[5] = 10;
        a.bytes = 4096;
        let mut b = a;
        b.slots[5] = 14;
        b.bytes = 8192;
        let d = bio_delta(&b, &a);
        assert_eq!((d.slots[5], d.bytes), (4, 4096));
        assert_eq!(bio_delta(&a, &b).slots[5], 10, "went down: from zero");
    }

    /// Every record parses, and no object key appears twice (the writer
    /// nests dotted keys, so ungrouped fields would repeat `vigil`).
    /// PID_MAX_LIMIT: no process has it, so no name is read for it.
    const NO_PID: u32 = 4_194_304;

    /// An interval over every threshold of its configuration.
    fn sample() -> (PerfConfig, SysInterval) {
        let cfg = PerfConfig {
            syscalls_errors_per_s: 10.0,
            syscalls_denied_max: 5,
            tcp_retrans_max: 3,
            tcp_resets_max: 2,
            bio_p99_ms: 1.0,
            bio_min_samples: 1,
            self_cpu_pct: 1.0,
            ..PerfConfig::default()
        };
        let mut tk = TcpKey {
            family: 2,
            sport: 40000,
            dport: 80,
            tgid: 77,
            ..TcpKey::default()
        };
        tk.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        let mut rst = tk;
        rst.kind = TCP_RESET_RECV;
        let mut tv = TcpVal {
            count: 5,
            state: 1,
            ..TcpVal::default()
        };
        tv.comm[..4].copy_from_slice(b"curl");
        let mut h = BioHist::default();
        h.slots[12] = 4; // 2-4 ms
        h.sum_ns = 12_000_000;
        let iv = SysInterval {
            secs: 1.0,
            procs: vec![(
                NO_PID,
                ScProc {
                    calls: 100,
                    errors: 60,
                },
            )],
            errors: vec![
                (
                    ScErrKey {
                        tgid: NO_PID,
                        nr: 257,
                        err: 2,
                        ..ScErrKey::default()
                    },
                    50,
                ),
                (
                    ScErrKey {
                        tgid: NO_PID,
                        nr: 62,
                        err: 1,
                        ..ScErrKey::default()
                    },
                    10,
                ),
            ],
            tcp: vec![(tk, tv, 5), (rst, tv, 3)],
            bio: vec![(
                BioKey {
                    cgroup_id: 1,
                    dev: 254 << 20,
                    op: 1,
                },
                h,
            )],
            bio_forgotten: Vec::new(),
            cost: Some(Cost {
                secs: 1.0,
                cpu_ns: 30_000_000,
                bpf_ns: 1_000_000,
                bpf_runs: 10,
                events: 5,
                programs: vec![("vg_x".into(), 10, 1_000_000)],
            }),
        };
        (cfg, iv)
    }

    /// The records of [`sample`], byte for byte as
    /// `engine/tests/golden/perfsys-records.jsonl` holds them (written
    /// there when `VIGIL_BLESS=1`).
    #[test]
    fn records_are_byte_identical_to_the_golden_file() {
        let (cfg, iv) = sample();
        let mut c = PerfsysCollector::new(&cfg);
        // the device's name as this host would not have it
        c.devs.insert(254 << 20, Some("vda".into()));
        let mut host = crate::host::RecordedHost::default();
        let mut text = Vec::new();
        for r in c.records(&iv, &mut host, "h", 1_700_000_000_123_456_789) {
            text.extend_from_slice(&r.json);
            text.push(b'\n');
        }
        crate::perf::assert_golden("perfsys-records.jsonl", &text);
    }

    #[test]
    fn records_are_well_formed_and_findings_fire_over_thresholds() {
        let (cfg, iv) = sample();
        let mut c = PerfsysCollector::new(&cfg);
        let mut host = crate::host::RecordedHost::default();
        let recs = c.records(&iv, &mut host, "h", 0);
        let mut actions = Vec::new();
        for r in &recs {
            let text = String::from_utf8(r.json.clone()).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            for key in [
                "\"vigil\":{",
                "\"process\":{",
                "\"container\":{",
                "\"event\":{",
            ] {
                assert!(text.matches(key).count() <= 1, "{key} twice: {text}");
            }
            actions.push(v["event"]["action"].as_str().unwrap().to_string());
        }
        for want in [
            "syscall-errors",
            "syscalls",
            "tcp-retransmit",
            "tcp-reset",
            "biolatency",
            "vigil-cost",
            "syscall-errors-high",
            "syscall-denied-high",
            "tcp-retrans-high",
            "tcp-resets-high",
            "bio-latency-high",
            "vigil-cost-high",
        ] {
            assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
        }
        assert_eq!(c.totals.findings, 6);
        let rec = |a: &str| -> serde_json::Value {
            let r = recs
                .iter()
                .find(|r| String::from_utf8_lossy(&r.json).contains(&format!("\"action\":\"{a}\"")))
                .unwrap();
            serde_json::from_slice(&r.json).unwrap()
        };
        let se = rec("syscall-errors");
        assert_eq!(se["vigil"]["syscalls"]["errors"], 60);
        assert_eq!(se["vigil"]["syscalls"]["denied"], 10);
        assert_eq!(se["vigil"]["syscalls"]["failures"][0]["syscall"], "openat");
        assert_eq!(se["vigil"]["syscalls"]["failures"][0]["errno"], "ENOENT");
        let t = rec("tcp-retransmit");
        assert_eq!(t["source"]["ip"], "10.0.0.1");
        assert_eq!(t["destination"]["port"], 80);
        assert_eq!(t["process"]["name"], "curl");
        assert_eq!(t["vigil"]["tcp"]["retransmits"], 5);
        let b = rec("biolatency");
        assert_eq!(b["vigil"]["bio"]["major"], 254);
        assert_eq!(b["vigil"]["bio"]["count"], 4);
        assert_eq!(b["vigil"]["cgroup"]["id"], 1);
    }

    #[test]
    fn cost_share_of_one_cpu() {
        let c = Cost {
            secs: 10.0,
            cpu_ns: 500_000_000,
            bpf_ns: 500_000_000,
            ..Cost::default()
        };
        assert!((c.cpu_pct() - 10.0).abs() < 1e-9);
        assert_eq!(tcp_state(2), "SYN_SENT");
        assert_eq!(tcp_state(99), "UNKNOWN");
    }
}
