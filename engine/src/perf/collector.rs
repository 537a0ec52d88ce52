//! The one shape of a performance tool's collector: every
//! `perf.interval_s` it reads its BPF maps, turns the cumulative figures
//! into per-interval deltas, forgets keys that went idle (or whose process
//! is gone) in its own tables and in the kernel's maps, and hands back
//! metric records, findings, alerts and Prometheus counter increments.
//! [`Deltas`] does the delta and ageing part for any map.

use crate::host::Host;
use crate::perf::PerfRecord;
use std::collections::HashMap;
use std::hash::Hash;

/// What a collector needs from the agent for one interval.
pub struct Ctx<'a> {
    /// cgroup paths, container ids.
    pub host: &'a mut dyn Host,
    /// `host.hostname` of the records.
    pub hostname: &'a str,
    /// Wall-clock time of the collection, ns since the epoch.
    pub unix_ns: i64,
    /// Run count and time of every vigil BPF program, all objects
    /// (vigil's own cost).
    pub programs: &'a [vigil_bpf::ProgramStat],
    /// Factor from the sampled BPF run time to the whole interval
    /// (`bpf_stats` is on for part of each interval only).
    pub bpf_scale: f64,
    /// Events decoded since start.
    pub events: u64,
}

/// A Prometheus counter increment: series name, help, labels, increment.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterDelta {
    /// Series name (`vigil_..._total`).
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Label pairs.
    pub labels: Vec<(&'static str, String)>,
    /// Increment, in the unit the tool counts in.
    pub delta: u64,
    /// What one unit of `delta` is in the series' unit: 1.0, or 1e-9 for
    /// nanoseconds counted and seconds exposed (Prometheus base units).
    pub scale: f64,
}

/// What makes a metric record a finding: its name (rule id `perf.<name>`,
/// `vigil.finding.name`), its own title (the outputs' rule name: syslog
/// `rule_name`, CEF name) and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Short name (`runqlat-high`).
    pub name: &'static str,
    /// Title of this kind of finding (`Run-queue latency high`).
    pub title: &'static str,
    /// What was seen, with the figures.
    pub message: String,
}

impl Finding {
    /// A finding named `name`, titled `title`.
    pub fn new(name: &'static str, title: &'static str, message: String) -> Finding {
        Finding {
            name,
            title,
            message,
        }
    }
}

/// A security alert a collector raises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The encoded record.
    pub json: Vec<u8>,
    /// Rule id (`perf.kmem-spray`).
    pub id: String,
    /// Title of this kind of alert (the outputs' rule name).
    pub title: &'static str,
    /// What was seen.
    pub message: String,
    /// Severity 1..=4 (low, medium, high, critical).
    pub severity: u8,
}

/// What one collection produced.
#[derive(Debug, Default)]
pub struct Output {
    /// Metric and finding records ([`PerfRecord::finding`] set for findings).
    pub records: Vec<PerfRecord>,
    /// Security alerts.
    pub alerts: Vec<Alert>,
    /// Prometheus counter increments.
    pub counters: Vec<CounterDelta>,
    /// Prometheus gauge values (set, not added).
    pub gauges: Vec<GaugeValue>,
}

/// A Prometheus gauge value: series name, help, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct GaugeValue {
    /// Series name.
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Label pairs.
    pub labels: Vec<(&'static str, String)>,
    /// Value now.
    pub value: i64,
}

/// One tool's collector.
pub trait Collector {
    /// Its name (the tool, as `vigil probe` lists it).
    fn name(&self) -> &'static str;
    /// Reads the maps and returns the interval's records.
    fn collect(&mut self, ctx: &mut Ctx<'_>) -> Output;
    /// Entries in its tables (`vigil_state_entries`).
    fn table_sizes(&self, out: &mut Vec<(&'static str, usize)>);
    /// Adds the last collection's histograms and gauges to the Prometheus
    /// registry (counters go through [`Output::counters`]); none by default.
    fn prometheus(&mut self, _t: &mut crate::pipeline::telemetry::Telemetry) {}
}

/// A cumulative kernel value that has a difference.
pub trait Cumulative: Copy {
    /// `self - prev`, or `self` when any part went down (the entry was
    /// removed and created again: it counts from zero).
    fn since(&self, prev: &Self) -> Self;
    /// No activity.
    fn is_zero(&self) -> bool;
}

impl Cumulative for u64 {
    fn since(&self, prev: &Self) -> Self {
        if self >= prev { self - prev } else { *self }
    }
    fn is_zero(&self) -> bool {
        *self == 0
    }
}

/// The last reading of every key of one map, for deltas and ageing.
#[derive(Debug)]
pub struct Deltas<K, V> {
    last: HashMap<K, (V, u32)>,
}

impl<K, V> Default for Deltas<K, V> {
    fn default() -> Self {
        Deltas {
            last: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Copy, V: Cumulative> Deltas<K, V> {
    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// The keys remembered.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.last.keys()
    }

    /// One reading of the whole map: returns the keys that changed with
    /// their increase, and the keys to remove from the kernel's map (idle
    /// for [`crate::perf::FORGET_AFTER`] readings, or `gone`). Keys the kernel no longer
    /// has (LRU eviction) are forgotten here too.
    pub fn step(&mut self, now: Vec<(K, V)>, gone: impl Fn(&K) -> bool) -> (Vec<(K, V)>, Vec<K>) {
        let mut changed = Vec::new();
        let mut forget = Vec::new();
        let mut seen: HashMap<K, (V, u32)> = HashMap::with_capacity(now.len());
        for (k, v) in now {
            let (d, idle) = match self.last.get(&k) {
                Some((p, idle)) => (v.since(p), *idle),
                None => (v, 0),
            };
            let mut idle = idle;
            let active = !d.is_zero();
            if active {
                changed.push((k, d));
            }
            if gone(&k) || crate::perf::idle_for_long(&mut idle, active) {
                forget.push(k);
                continue;
            }
            seen.insert(k, (v, idle));
        }
        self.last = seen;
        (changed, forget)
    }
}

/// Kernel symbols (`/proc/kallsyms`) for call sites and work functions:
/// text symbols only, names packed in one string (~5 MB for the 120,000
/// text symbols of a distribution kernel).
#[derive(Debug, Default)]
pub struct Kallsyms {
    /// (address, offset of the name in `names`), sorted by address.
    syms: Vec<(u64, u32)>,
    /// Names, each ended by a newline.
    names: String,
}

static KALLSYMS: std::sync::OnceLock<Kallsyms> = std::sync::OnceLock::new();
/// /proc/kallsyms opened while the agent held CAP_SYSLOG (the kernel
/// decides at open whether the reader sees addresses), read by whoever
/// initialises [`KALLSYMS`] first.
static KALLSYMS_FILE: std::sync::Mutex<Option<std::fs::File>> = std::sync::Mutex::new(None);

fn read_kallsyms() -> Kallsyms {
    use std::io::Read;
    let opened = KALLSYMS_FILE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let text = match opened {
        Some(mut f) => {
            let mut t = String::new();
            f.read_to_string(&mut t).map(|_| t)
        }
        None => std::fs::read_to_string("/proc/kallsyms"),
    };
    text.map(|t| Kallsyms::parse(&t)).unwrap_or_default()
}

impl Kallsyms {
    /// Parses kallsyms text (`addr type name [module]`); text symbols only.
    pub fn parse(text: &str) -> Kallsyms {
        let mut rows: Vec<(u64, &str, Option<&str>)> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let ty = it.next()?;
                if addr == 0 || !matches!(ty, "t" | "T") {
                    return None;
                }
                Some((addr, it.next()?, it.next()))
            })
            .collect();
        rows.sort_by_key(|r| r.0);
        let mut names = String::new();
        let mut syms = Vec::with_capacity(rows.len());
        for (a, n, m) in rows {
            syms.push((a, names.len() as u32));
            names.push_str(n);
            if let Some(m) = m {
                names.push(' ');
                names.push_str(m);
            }
            names.push('\n');
        }
        Kallsyms { syms, names }
    }

    /// Reads /proc/kallsyms once for the process (call it while the agent
    /// still holds CAP_SYSLOG: without it the kernel shows zero addresses).
    pub fn preload() -> &'static Kallsyms {
        KALLSYMS.get_or_init(read_kallsyms)
    }

    /// Opens /proc/kallsyms now (while the agent holds CAP_SYSLOG) and
    /// reads it on a thread, off the start-up path; [`Kallsyms::preload`]
    /// called meanwhile waits for it (or reads the opened file itself).
    pub fn preload_in_background() {
        match std::fs::File::open("/proc/kallsyms") {
            Ok(f) => {
                *KALLSYMS_FILE
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(f);
                if std::thread::Builder::new()
                    .name("vigil-kallsyms".into())
                    .spawn(|| {
                        // Not at a lower priority: the pipeline waits on
                        // this read when it needs a symbol first (a nice-19
                        // reader under load stalled the event loop).
                        Kallsyms::preload();
                    })
                    .is_err()
                {
                    Kallsyms::preload();
                }
            }
            Err(_) => {
                Kallsyms::preload();
            }
        }
    }

    /// Symbols known.
    pub fn len(&self) -> usize {
        self.syms.len()
    }

    /// No symbols (not readable, or addresses hidden).
    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// `name+0xoff` for a kernel address, or the address in hex.
    pub fn name(&self, addr: u64) -> String {
        let i = self.syms.partition_point(|s| s.0 <= addr);
        match i.checked_sub(1).and_then(|i| self.syms.get(i)) {
            Some((a, off)) if addr - a < 1 << 20 => {
                let rest = &self.names[*off as usize..];
                let n = &rest[..rest.find('\n').unwrap_or(rest.len())];
                if addr == *a {
                    n.to_string()
                } else {
                    format!("{n}+{:#x}", addr - a)
                }
            }
            _ => format!("{addr:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::FORGET_AFTER;

    #[test]
    fn deltas_count_increases_and_forget_idle_and_gone_keys() {
        let mut d: Deltas<u32, u64> = Deltas::default();
        let (c, f) = d.step(vec![(1, 5), (2, 7)], |_| false);
        assert_eq!(c, vec![(1, 5), (2, 7)]);
        assert!(f.is_empty());
        let (c, f) = d.step(vec![(1, 9), (2, 7)], |k| *k == 2);
        assert_eq!(c, vec![(1, 4)]);
        assert_eq!(f, vec![2]);
        assert_eq!(d.len(), 1);
        // a reset entry counts from zero
        let (c, _) = d.step(vec![(1, 3)], |_| false);
        assert_eq!(c, vec![(1, 3)]);
        let mut forgot = false;
        for _ in 0..FORGET_AFTER {
            let (c, f) = d.step(vec![(1, 3)], |_| false);
            assert!(c.is_empty());
            forgot |= f == vec![1];
        }
        assert!(forgot && d.is_empty());
    }

    #[test]
    fn kallsyms_names_addresses() {
        let k = Kallsyms::parse(
            "ffffffff81000000 T _stext\nffffffff81001000 t do_thing\nffffffff81002000 D data\nffffffffc0000000 t modfn [kvm]\n",
        );
        assert_eq!(k.name(0xffffffff81001010), "do_thing+0x10");
        assert_eq!(k.name(0xffffffff81001000), "do_thing");
        assert_eq!(k.name(0xffffffffc0000004), "modfn [kvm]+0x4");
        assert_eq!(k.name(0x10), "0x10");
    }
}
