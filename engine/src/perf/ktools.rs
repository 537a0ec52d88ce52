//! The kernel-work tools' collector ([`vigil_bpf::ktools`]): kernel memory
//! (`kmem`, `slabratetop`, `memleak`, `kpages`, `numamove`), file I/O on
//! overlay mounts (`overlayfs`), bios held back by the block throttle
//! (`blkthrot`) and deferred work
//! (`workq`, `softirqs`, `hardirqs`, `tasklets`). Every `perf.interval_s` it
//! reads the object's maps through [`Collector`] and writes one metric
//! record per tool that saw activity (`event.dataset: vigil.<tool>`),
//! Prometheus counters, the `softirq-high` finding and the heap-spray alert
//! (`kmem-spray`, MITRE ATT&CK T1068): a process whose kmalloc allocations
//! in one size class burst far above its usual rate, concentrated in one
//! class and one syscall, the way exploits groom the kernel heap (msg_msg
//! through msgsnd, pipe buffers, setxattr, key payloads).
//!
//! Record fields are documented in docs/events.md.

use crate::config::PerfConfig;
use crate::ecs;
use crate::perf::PerfRecord;
use crate::perf::collector::{
    Collector, CounterDelta, Ctx, Cumulative, Deltas, GaugeValue, Kallsyms, Output,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;
use vigil_bpf::ktools::{
    BT_WRITE, BtKey, BtVal, KM_ACCOUNTED, KM_KMALLOC, KT_SLOTS, KW_HARDIRQ, KW_SOFTIRQ, KW_TASKLET,
    KW_WORKQ, KmKey, KmSiteKey, KmVal, KpKey, Ktools, KwKey, KwVal, MlVal, NmKey, NmVal, OL_WRITE,
    OlKey, OlVal, migrate_reason, softirq_name,
};
use vigil_outputs::json::Writer;

impl Cumulative for KmVal {
    fn since(&self, p: &Self) -> Self {
        if self.count < p.count || self.bytes < p.bytes {
            *self
        } else {
            KmVal {
                count: self.count - p.count,
                bytes: self.bytes - p.bytes,
            }
        }
    }
    fn is_zero(&self) -> bool {
        self.count == 0
    }
}

impl Cumulative for NmVal {
    fn since(&self, p: &Self) -> Self {
        if self.calls < p.calls || self.ns < p.ns || self.succeeded < p.succeeded {
            *self
        } else {
            NmVal {
                calls: self.calls - p.calls,
                succeeded: self.succeeded - p.succeeded,
                failed: self.failed.saturating_sub(p.failed),
                ns: self.ns - p.ns,
            }
        }
    }
    fn is_zero(&self) -> bool {
        self.calls == 0
    }
}

impl Cumulative for KwVal {
    fn since(&self, p: &Self) -> Self {
        if self.count < p.count || self.run_ns < p.run_ns {
            return *self;
        }
        let mut d = *self;
        d.count -= p.count;
        d.run_ns -= p.run_ns;
        d.wait_ns = self.wait_ns.saturating_sub(p.wait_ns);
        d.waited = self.waited.saturating_sub(p.waited);
        for i in 0..KT_SLOTS {
            d.run_slots[i] = self.run_slots[i].saturating_sub(p.run_slots[i]);
            d.wait_slots[i] = self.wait_slots[i].saturating_sub(p.wait_slots[i]);
        }
        d
    }
    fn is_zero(&self) -> bool {
        self.count == 0
    }
}

impl Cumulative for OlVal {
    fn since(&self, p: &Self) -> Self {
        if self.count < p.count || self.ns < p.ns || self.bytes < p.bytes {
            return *self;
        }
        let mut d = *self;
        d.count -= p.count;
        d.ns -= p.ns;
        d.bytes -= p.bytes;
        d.errors = self.errors.saturating_sub(p.errors);
        for i in 0..KT_SLOTS {
            d.slots[i] = self.slots[i].saturating_sub(p.slots[i]);
        }
        d
    }
    fn is_zero(&self) -> bool {
        self.count == 0
    }
}

impl Cumulative for BtVal {
    fn since(&self, p: &Self) -> Self {
        if self.bios < p.bios || self.bytes < p.bytes || self.ns < p.ns || self.timed < p.timed {
            return *self;
        }
        let mut d = BtVal {
            bios: self.bios - p.bios,
            bytes: self.bytes - p.bytes,
            ns: self.ns - p.ns,
            timed: self.timed - p.timed,
            ..BtVal::default()
        };
        for (i, s) in d.slots.iter_mut().enumerate() {
            *s = self.slots[i].saturating_sub(p.slots[i]);
        }
        d
    }
    fn is_zero(&self) -> bool {
        self.bios == 0
    }
}

/// cgroup hierarchies of a mountinfo text a blkcg's kernfs id can be
/// looked up in: (mount point, hierarchy name): v1 mounts with the
/// `blkio` controller (`blkio`) and the unified v2 mount (`unified`), v1
/// first.
pub fn blkio_hierarchies(mountinfo: &str) -> Vec<(String, &'static str)> {
    let mut v1 = Vec::new();
    let mut v2 = Vec::new();
    for l in mountinfo.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if f.len() < 5 {
            continue;
        }
        match f.get(sep + 1) {
            Some(&"cgroup")
                if f.get(sep + 3)
                    .is_some_and(|o| o.split(',').any(|x| x == "blkio")) =>
            {
                v1.push((unescape_mount(f[4]), "blkio"));
            }
            Some(&"cgroup2") => v2.push((unescape_mount(f[4]), "unified")),
            _ => {}
        }
    }
    v1.dedup();
    v2.dedup();
    v1.extend(v2);
    v1
}

/// The cgroup (path under the hierarchy's root, `/` for the root) whose
/// directory has inode `id` in one of `hierarchies`, with the hierarchy's
/// name. The walk is bounded (4096 directories per hierarchy, depth 16).
pub fn find_cgroup_by_ino(
    hierarchies: &[(String, &'static str)],
    id: u64,
) -> Option<(String, &'static str)> {
    use std::os::unix::fs::MetadataExt;
    for (root, name) in hierarchies {
        let mut stack = vec![(std::path::PathBuf::from(root), 0usize)];
        let mut seen = 0usize;
        while let Some((dir, depth)) = stack.pop() {
            seen += 1;
            if seen > 4096 {
                break;
            }
            let Ok(md) = std::fs::symlink_metadata(&dir) else {
                continue;
            };
            if md.ino() == id {
                let rel = dir
                    .strip_prefix(root)
                    .map(|r| format!("/{}", r.display()))
                    .unwrap_or_else(|_| "/".into());
                return Some((rel, name));
            }
            if depth >= 16 {
                continue;
            }
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push((e.path(), depth + 1));
                }
            }
        }
    }
    None
}

/// The kernel's name of a block device (`loop0`, `sda`) from
/// /sys/dev/block/MAJ:MIN/uevent.
fn block_dev_name(dev: u32) -> Option<String> {
    let t = std::fs::read_to_string(format!("/sys/dev/block/{}/uevent", dev_name(dev))).ok()?;
    t.lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .map(str::to_string)
}

/// Overlay mounts of a mountinfo text: superblock device (kernel
/// encoding, `major << 20 | minor`) -> mount point (the first one listed).
pub fn overlay_mounts(mountinfo: &str) -> HashMap<u32, String> {
    let mut out = HashMap::new();
    for l in mountinfo.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if f.get(sep + 1) != Some(&"overlay") || f.len() < 5 {
            continue;
        }
        let Some((ma, mi)) = f[2].split_once(':') else {
            continue;
        };
        let (Ok(ma), Ok(mi)) = (ma.parse::<u32>(), mi.parse::<u32>()) else {
            continue;
        };
        let dev = (ma << 20) | (mi & 0xfffff);
        out.entry(dev).or_insert_with(|| unescape_mount(f[4]));
    }
    out
}

/// A mountinfo path with its octal escapes (`\040` for a space) undone.
pub fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..=i + 3].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `major:minor` of a kernel-encoded device number.
pub fn dev_name(dev: u32) -> String {
    format!("{}:{}", dev >> 20, dev & 0xfffff)
}

/// The slab cache name of an allocation key: the cache's own name, or
/// `kmalloc-N` / `kmalloc-cg-N` for kmalloc size classes.
pub fn class_name(cache: u64, size: u32, flags: u32, names: &HashMap<u64, String>) -> String {
    if flags & KM_KMALLOC != 0 || cache == 0 {
        let cg = if flags & KM_ACCOUNTED != 0 { "cg-" } else { "" };
        if size > 8192 {
            format!("kmalloc-{cg}large")
        } else if size >= 1024 && size.is_multiple_of(1024) {
            format!("kmalloc-{cg}{}k", size / 1024)
        } else {
            format!("kmalloc-{cg}{size}")
        }
    } else {
        names
            .get(&cache)
            .cloned()
            .unwrap_or_else(|| format!("cache@{cache:#x}"))
    }
}

/// The heap-spray detector's state and thresholds.
#[derive(Debug, Clone)]
pub struct Spray {
    /// Allocations per second in one class an unprivileged process must pass.
    pub min_per_s: f64,
    /// ... and this many times its usual rate in that class.
    pub factor: f64,
    /// ... and the class's share of the process's kmalloc allocations.
    pub share: f64,
    /// Root processes (uid 0) need `root_factor` x `min_per_s`.
    pub root_factor: f64,
    usual: HashMap<(u32, String), f64>,
}

/// One process's kmalloc allocations in one class over an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassLoad {
    /// Process.
    pub tgid: u32,
    /// Class name (`kmalloc-cg-128`).
    pub class: String,
    /// Allocations (scaled by the sample rate).
    pub count: u64,
    /// Allocations per second.
    pub per_s: f64,
    /// Share of the process's kmalloc allocations in the interval.
    pub share: f64,
    /// The syscall that made most of them (-1: none) and its share.
    pub top_nr: i32,
    /// Share of `top_nr`.
    pub nr_share: f64,
}

/// A spray the detector flagged.
#[derive(Debug, Clone, PartialEq)]
pub struct SprayHit {
    /// What burst.
    pub load: ClassLoad,
    /// Its usual rate before this interval (0: none known).
    pub usual_per_s: f64,
    /// The threshold it passed.
    pub threshold: f64,
    /// Real uid of the process (None: unknown).
    pub uid: Option<u32>,
}

impl Spray {
    /// A detector with these thresholds.
    pub fn new(min_per_s: f64, factor: f64, share: f64, root_factor: f64) -> Spray {
        Spray {
            min_per_s,
            factor,
            share,
            root_factor,
            usual: HashMap::new(),
        }
    }

    /// Judges one interval's loads (`uid_of`: the real uid of a process),
    /// then folds them into the usual rates (EWMA, 1/4 weight; classes not
    /// seen decay toward zero and are dropped when negligible).
    pub fn judge(
        &mut self,
        loads: &[ClassLoad],
        uid_of: impl Fn(u32) -> Option<u32>,
    ) -> Vec<SprayHit> {
        let mut hits = Vec::new();
        if self.min_per_s <= 0.0 {
            return hits;
        }
        let me = std::process::id();
        for l in loads {
            // vigil's own map reads (bpf syscalls) are not a spray
            if l.tgid == 0 || l.tgid == me {
                continue;
            }
            let usual = self
                .usual
                .get(&(l.tgid, l.class.clone()))
                .copied()
                .unwrap_or(0.0);
            if l.per_s < self.min_per_s || l.share < self.share || l.nr_share < 0.5 || l.top_nr < 0
            {
                continue;
            }
            let uid = uid_of(l.tgid);
            let floor = if uid == Some(0) {
                self.min_per_s * self.root_factor
            } else {
                self.min_per_s
            };
            let threshold = floor.max(usual * self.factor);
            if l.per_s >= threshold {
                hits.push(SprayHit {
                    load: l.clone(),
                    usual_per_s: usual,
                    threshold,
                    uid,
                });
            }
        }
        for v in self.usual.values_mut() {
            *v *= 0.75;
        }
        for l in loads {
            *self.usual.entry((l.tgid, l.class.clone())).or_insert(0.0) += 0.25 * l.per_s;
        }
        self.usual.retain(|_, v| *v >= 1.0);
        hits
    }

    /// (process, class) pairs with a usual rate.
    pub fn len(&self) -> usize {
        self.usual.len()
    }

    /// No usual rate known.
    pub fn is_empty(&self) -> bool {
        self.usual.is_empty()
    }

    /// Forgets the processes `gone` says are gone.
    pub fn forget(&mut self, gone: impl Fn(u32) -> bool) {
        self.usual.retain(|(t, _), _| !gone(*t));
    }
}

/// Groups one interval's kmem deltas into per-(process, class) loads.
pub fn class_loads(
    deltas: &[(KmKey, KmVal)],
    names: &HashMap<u64, String>,
    scale: u64,
    secs: f64,
) -> Vec<ClassLoad> {
    // (tgid, class) -> (count, per nr)
    let mut by: BTreeMap<(u32, String), (u64, HashMap<i32, u64>)> = BTreeMap::new();
    let mut per_proc: HashMap<u32, u64> = HashMap::new();
    for (k, v) in deltas {
        if k.flags & KM_KMALLOC == 0 {
            continue;
        }
        let c = v.count.saturating_mul(scale);
        let e = by
            .entry((k.tgid, class_name(k.cache, k.size, k.flags, names)))
            .or_default();
        e.0 += c;
        *e.1.entry(k.nr).or_default() += c;
        *per_proc.entry(k.tgid).or_default() += c;
    }
    by.into_iter()
        .map(|((tgid, class), (count, nrs))| {
            let (top_nr, n) = nrs
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(a, b)| (*a, *b))
                .unwrap_or((-1, 0));
            let all = per_proc.get(&tgid).copied().unwrap_or(count).max(1);
            ClassLoad {
                tgid,
                class,
                count,
                per_s: count as f64 / secs.max(1e-3),
                share: count as f64 / all as f64,
                top_nr,
                nr_share: n as f64 / count.max(1) as f64,
            }
        })
        .collect()
}

/// Allocations of one process, from one kernel stack, in one cache or size
/// class, outstanding longer than the minimum age (memleak).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakGroup {
    /// Allocating process (0: none).
    pub tgid: u32,
    /// cgroup v2 id of the allocating task.
    pub cgroup_id: u64,
    /// Kernel stack id (negative: not stored).
    pub stackid: i32,
    /// Cache or size class name.
    pub class: String,
    /// Allocations outstanding (scaled by the sample rate).
    pub allocs: u64,
    /// Their bytes (scaled).
    pub bytes: u64,
    /// Age of the oldest, nanoseconds.
    pub oldest_ns: u64,
    /// Symbolized frames, innermost first, the tracing frames removed
    /// (filled for the groups reported).
    pub stack: Vec<String>,
}

/// (tgid, cgroup, stack id, cache, size, flags) of a memleak group.
type LeakKey = (u32, u64, i32, u64, u32, u32);

/// Groups the memleak table's allocations older than `min_age_ns` at
/// `now_ns` (CLOCK_MONOTONIC) by (process, cgroup, stack, class); counts
/// scaled by `scale`; most bytes first.
pub fn group_leaks(
    table: &HashMap<u64, MlVal>,
    now_ns: u64,
    min_age_ns: u64,
    scale: u64,
    names: &HashMap<u64, String>,
) -> Vec<LeakGroup> {
    let mut by: HashMap<LeakKey, (u64, u64, u64)> = HashMap::new();
    for v in table.values() {
        let age = now_ns.saturating_sub(v.ts_ns);
        if age < min_age_ns {
            continue;
        }
        let e = by
            .entry((v.tgid, v.cgroup_id, v.stackid, v.cache, v.size, v.flags))
            .or_default();
        e.0 += 1;
        e.1 += u64::from(v.size);
        e.2 = e.2.max(age);
    }
    let mut out: Vec<LeakGroup> = by
        .into_iter()
        .map(
            |((tgid, cgroup_id, stackid, cache, size, flags), (n, b, oldest))| LeakGroup {
                tgid,
                cgroup_id,
                stackid,
                class: class_name(cache, size, flags, names),
                allocs: n.saturating_mul(scale),
                bytes: b.saturating_mul(scale),
                oldest_ns: oldest,
                stack: Vec::new(),
            },
        )
        .collect();
    out.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(a.tgid.cmp(&b.tgid))
            .then(a.stackid.cmp(&b.stackid))
            .then(a.class.cmp(&b.class))
    });
    out
}

/// A memleak stack's frames without the tracing machinery at its top
/// (the BPF program's and the tracepoint's own frames), innermost first.
pub fn leak_frames(frames: Vec<String>) -> Vec<String> {
    let tracing = |f: &str| {
        [
            "bpf_",
            "__bpf_",
            "__traceiter_",
            "trace_",
            "perf_trace_",
            "__probestub_",
        ]
        .iter()
        .any(|p| f.starts_with(p))
    };
    let skip = frames.iter().take_while(|f| tracing(f)).count();
    if skip == frames.len() {
        return frames;
    }
    frames.into_iter().skip(skip).collect()
}

/// Now on CLOCK_MONOTONIC (the clock of `bpf_ktime_get_ns`).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Cumulative figures since start (summary, tests).
#[derive(Debug, Clone, Default)]
pub struct KtoolsTotals {
    /// kmem allocations per process (scaled by the sample rate).
    pub kmem_by_pid: BTreeMap<u32, (u64, u64)>,
    /// kmem allocations per (process, class name).
    pub kmem_by_class: BTreeMap<(u32, String), u64>,
    /// Allocations per slab cache name (slabratetop).
    pub slabs: BTreeMap<String, u64>,
    /// Pages allocated per process (kpages; 2^order each).
    pub kpages_by_pid: BTreeMap<u32, u64>,
    /// Migrations per reason: (calls, pages, ns).
    pub numamove: BTreeMap<String, (u64, u64, u64)>,
    /// Work items run per function name.
    pub workq: BTreeMap<String, u64>,
    /// Softirq (count, ns) per vector name.
    pub softirqs: BTreeMap<String, (u64, u64)>,
    /// Hard irq (count, ns) per irq.
    pub hardirqs: BTreeMap<String, (u64, u64)>,
    /// Tasklet runs per function.
    pub tasklets: BTreeMap<String, u64>,
    /// overlayfs: (calls, bytes, ns) per (cgroup id, mount, "read"/"write").
    pub overlayfs: BTreeMap<(u64, String, String), (u64, u64, u64)>,
    /// blkthrot: (bios, bytes, ns held) per (cgroup path or id, device
    /// `major:minor`, "read"/"write").
    pub blkthrot: BTreeMap<(String, String, String), (u64, u64, u64)>,
    /// memleak: the groups of the last collection (most bytes first, the
    /// reported ones symbolized).
    pub memleak: Vec<LeakGroup>,
    /// memleak: allocations not tracked because its table was full.
    pub memleak_untracked: u64,
    /// Heap-spray alerts raised.
    pub sprays: u64,
    /// Findings raised.
    pub findings: u64,
}

/// One process's kmem in an interval: (allocs, bytes, cgroup, per class).
type ProcKmem = (u64, u64, u64, BTreeMap<String, (u64, u64)>);

/// The collector of the kernel-work tools; owns the loaded object.
pub struct KtoolsCollector {
    kt: Ktools,
    cfg: PerfConfig,
    kmem: Deltas<KmKey, KmVal>,
    sites: Deltas<KmSiteKey, KmVal>,
    kpages: Deltas<KpKey, u64>,
    numa: Deltas<NmKey, NmVal>,
    work: Deltas<KwKey, KwVal>,
    overlay: Deltas<OlKey, OlVal>,
    blkthrot: Deltas<BtKey, BtVal>,
    /// blkthrot: kernfs id -> (cgroup path, hierarchy).
    blkcgs: HashMap<u64, (String, &'static str)>,
    mounts: HashMap<u32, String>,
    names: HashMap<u64, String>,
    syms: &'static Kallsyms,
    spray: Spray,
    /// memleak stack ids unreferenced at the last collection.
    ml_unref: HashSet<i32>,
    /// memleak: kernel counters (full, no stack) at the last collection.
    ml_last_stats: (u64, u64),
    last_at: Instant,
    /// Cumulative figures.
    pub totals: KtoolsTotals,
}

fn alive(pid: u32) -> bool {
    pid == 0 || std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn comm_of(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// Real uid from /proc/PID/status.
fn uid_of(pid: u32) -> Option<u32> {
    let t = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    t.lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|u| u.parse().ok())
}

/// irq number -> name from /proc/interrupts (the last column).
pub fn irq_names(text: &str) -> HashMap<u64, String> {
    text.lines()
        .filter_map(|l| {
            let (n, rest) = l.trim_start().split_once(':')?;
            let n: u64 = n.parse().ok()?;
            Some((n, rest.split_whitespace().last()?.to_string()))
        })
        .collect()
}

/// One call site of a `kmem-sites` record.
struct SiteRow {
    site: String,
    cache: String,
    allocs: u64,
    bytes: u64,
}

/// `key`: an array of caches (`cache`, `allocs`, `bytes` and, given the
/// interval's seconds, `allocs_per_s`).
fn cache_rows<'a>(
    w: &mut Writer,
    key: &str,
    rows: impl Iterator<Item = (&'a String, &'a (u64, u64))>,
    secs: Option<f64>,
) {
    w.objects(key, rows, |w, (n, (c, b))| {
        w.u64("allocs", *c);
        if let Some(secs) = secs {
            w.float("allocs_per_s", round1(*c as f64 / secs));
        }
        w.u64("bytes", *b).str("cache", n.as_bytes());
    });
}

/// `key`: the call sites of a `kmem-sites` record.
fn site_rows(w: &mut Writer, key: &str, rows: &[SiteRow]) {
    w.objects(key, rows, |w, r| {
        w.u64("allocs", r.allocs)
            .u64("bytes", r.bytes)
            .str("cache", r.cache.as_bytes())
            .str("site", r.site.as_bytes());
    });
}

/// `key`: pages allocated per order, an object keyed by the order (the
/// keys in text order, `10` before `2`); nothing when `orders` is empty.
fn by_order(w: &mut Writer, key: &str, orders: &BTreeMap<u32, u64>) {
    let mut by: Vec<(String, u64)> = orders
        .iter()
        .map(|(o, n)| (format!("{key}.{o}"), *n))
        .collect();
    by.sort();
    for (k, n) in &by {
        w.u64(k, *n);
    }
}

/// `key`: the named functions, vectors or irqs of a deferred-work record
/// (with workq's queueing latency when `workq` is set).
fn work_rows(w: &mut Writer, key: &str, workq: bool, rows: &[(String, &KwVal)]) {
    w.objects(key, rows, |w, (name, v)| {
        let latency = workq && v.waited > 0;
        if latency {
            w.float(
                "avg_latency_us",
                round1(v.wait_ns as f64 / 1000.0 / v.waited as f64),
            );
        }
        w.float(
            "avg_run_us",
            round1(v.run_ns as f64 / 1000.0 / v.count.max(1) as f64),
        )
        .u64("count", v.count)
        .u64(
            "max_run_us",
            crate::perf::slot_bounds(v.run_slots.iter().rposition(|&c| c > 0).unwrap_or(0)).1,
        )
        .str("name", name.as_bytes());
        if latency {
            // no latency histogram: null (float writes NaN as null)
            let q = crate::perf::quantile_us(&v.wait_slots, 0.99);
            w.float("p99_latency_us", q.unwrap_or(f64::NAN));
        }
        w.u64("run_us", v.run_ns / 1000);
    });
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The latency fields of `n` timed calls, `ns` in all, with their log2
/// histogram of microseconds `slots`: `avg_us`, `p50_us` and `p99_us` (when
/// the histogram has them; with `float` written to read as floats,
/// `Writer::float`, else as `Writer::f64` writes them), and `max_us`, the
/// upper bound of the highest non-empty slot; each under `key(name)`.
fn latency_fields(
    w: &mut Writer,
    key: &dyn Fn(&str) -> String,
    ns: u64,
    n: u64,
    slots: &[u64],
    float: bool,
) {
    let mut put = |name: &str, v: f64| {
        if float {
            w.float(&key(name), v);
        } else {
            w.f64(&key(name), v);
        }
    };
    put("avg_us", round1(ns as f64 / 1000.0 / n as f64));
    for (q, name) in [(0.5, "p50_us"), (0.99, "p99_us")] {
        if let Some(v) = crate::perf::quantile_us(slots, q) {
            put(name, v);
        }
    }
    w.u64(
        &key("max_us"),
        crate::perf::slot_bounds(slots.iter().rposition(|&c| c > 0).unwrap_or(0)).1,
    );
}

fn syscall(nr: i32) -> String {
    if nr < 0 {
        return "none".into();
    }
    u16::try_from(nr)
        .ok()
        .and_then(vigil_baselines::syscall_name)
        .map_or_else(|| format!("sys_{nr}"), str::to_string)
}

impl KtoolsCollector {
    /// A collector reading `kt` with these settings.
    pub fn new(kt: Ktools, cfg: &PerfConfig) -> KtoolsCollector {
        KtoolsCollector {
            kt,
            cfg: cfg.clone(),
            kmem: Deltas::default(),
            sites: Deltas::default(),
            kpages: Deltas::default(),
            numa: Deltas::default(),
            work: Deltas::default(),
            overlay: Deltas::default(),
            blkthrot: Deltas::default(),
            blkcgs: HashMap::new(),
            mounts: HashMap::new(),
            names: HashMap::new(),
            syms: Kallsyms::preload(),
            spray: Spray::new(
                cfg.spray_min_per_s,
                cfg.spray_factor,
                cfg.spray_share,
                cfg.spray_root_factor,
            ),
            ml_unref: HashSet::new(),
            ml_last_stats: (0, 0),
            last_at: Instant::now(),
            totals: KtoolsTotals::default(),
        }
    }

    /// The loaded object (status, program stats).
    pub fn ktools(&self) -> &Ktools {
        &self.kt
    }
}

impl KtoolsCollector {
    /// memleak: reads the table of outstanding allocations, reports the
    /// groups older than `memleak_min_age_s` (symbolized), and removes the
    /// stored stacks no allocation refers to in two readings in a row.
    fn collect_memleak(
        &mut self,
        ctx: &mut Ctx<'_>,
        out: &mut Output,
        secs: f64,
        ts: &str,
        hostname: &str,
    ) {
        let scale = u64::from(self.cfg.memleak_sample.max(1));
        let table = self.kt.memleak_outstanding().unwrap_or_default();
        let now = monotonic_ns();
        if table
            .values()
            .any(|v| v.cache != 0 && !self.names.contains_key(&v.cache))
        {
            self.names = self.kt.cache_names().unwrap_or_default();
        }
        let min_age = self.cfg.memleak_min_age_s.saturating_mul(1_000_000_000);
        let mut groups = group_leaks(&table, now, min_age, scale, &self.names);
        let st = self.kt.stats().unwrap_or_default();
        let full = st.ml_full.saturating_sub(self.ml_last_stats.0);
        let nostack = st.ml_nostack.saturating_sub(self.ml_last_stats.1);
        self.ml_last_stats = (st.ml_full, st.ml_nostack);
        self.totals.memleak_untracked += full;
        let top = self.cfg.memleak_top.max(1);
        let (all_n, all_b) = groups
            .iter()
            .fold((0u64, 0u64), |a, g| (a.0 + g.allocs, a.1 + g.bytes));
        for g in groups.iter_mut().take(top) {
            g.stack = leak_frames(
                self.kt
                    .memleak_stack(g.stackid)
                    .into_iter()
                    .map(|ip| self.syms.name(ip))
                    .collect(),
            );
            let mut w = Writer::new();
            w.str("@timestamp", ts.as_bytes())
                .str("event.kind", "metric")
                .str("event.module", "vigil")
                .str("event.dataset", "vigil.memleak")
                .str("event.action", "memleak")
                .str("host.hostname", hostname.as_bytes());
            w.u64("process.pid", u64::from(g.tgid));
            if let Some(n) = comm_of(g.tgid) {
                w.str("process.name", n.as_bytes());
            }
            let path = ctx.host.cgroup_path(g.cgroup_id);
            if let Some(c) = path.as_deref().and_then(crate::container::from_cgroup_path) {
                w.str("container.id", c.id.as_bytes())
                    .str("container.runtime", c.runtime);
            }
            w.f64("vigil.memleak.interval_s", (secs * 100.0).round() / 100.0);
            w.u64("vigil.memleak.cgroup_id", g.cgroup_id);
            if let Some(p) = &path {
                w.str("vigil.memleak.cgroup", p.as_bytes());
            }
            w.str("vigil.memleak.cache", g.class.as_bytes())
                .u64("vigil.memleak.allocs", g.allocs)
                .u64("vigil.memleak.bytes", g.bytes);
            w.f64("vigil.memleak.oldest_s", round1(g.oldest_ns as f64 / 1e9));
            w.u64("vigil.memleak.min_age_s", self.cfg.memleak_min_age_s)
                .u64("vigil.memleak.sample", scale)
                .strs("vigil.memleak.stack", g.stack.iter());
            if g.stackid < 0 {
                w.str(
                    "vigil.memleak.stack_missing",
                    "stack map full or bucket taken",
                );
            }
            out.records.push(PerfRecord {
                json: w.finish(),
                finding: None,
            });
        }
        if !table.is_empty() || full > 0 {
            let mut w = Writer::new();
            w.str("@timestamp", ts.as_bytes())
                .str("event.kind", "metric")
                .str("event.module", "vigil")
                .str("event.dataset", "vigil.memleak")
                .str("event.action", "memleak-table")
                .str("host.hostname", hostname.as_bytes());
            w.f64("vigil.memleak.interval_s", (secs * 100.0).round() / 100.0);
            w.u64("vigil.memleak.tracked", table.len() as u64)
                .u64("vigil.memleak.outstanding_allocs", all_n)
                .u64("vigil.memleak.outstanding_bytes", all_b)
                .u64("vigil.memleak.groups", groups.len() as u64)
                .u64("vigil.memleak.untracked", full)
                .u64("vigil.memleak.no_stack", nostack)
                .u64("vigil.memleak.min_age_s", self.cfg.memleak_min_age_s)
                .u64("vigil.memleak.sample", scale);
            out.records.push(PerfRecord {
                json: w.finish(),
                finding: None,
            });
        }
        out.gauges.push(GaugeValue {
            name: "vigil_memleak_outstanding_bytes",
            help: "Kernel memory outstanding longer than perf.memleak_min_age_s (memleak, scaled by the sample rate).",
            labels: Vec::new(),
            value: i64::try_from(all_b).unwrap_or(i64::MAX),
        });
        out.gauges.push(GaugeValue {
            name: "vigil_memleak_outstanding_allocations",
            help: "Kernel allocations outstanding longer than perf.memleak_min_age_s (memleak, scaled by the sample rate).",
            labels: Vec::new(),
            value: i64::try_from(all_n).unwrap_or(i64::MAX),
        });
        if full > 0 {
            out.counters.push(CounterDelta {
                name: "vigil_memleak_untracked_total",
                help: "Kernel allocations memleak could not track (its table was full).",
                labels: Vec::new(),
                delta: full,
                scale: 1.0,
            });
        }
        // stored stacks nobody refers to, twice in a row, are removed
        let referenced: HashSet<i32> = table.values().map(|v| v.stackid).collect();
        let unref: HashSet<i32> = self
            .kt
            .memleak_stack_ids()
            .into_iter()
            .filter(|i| !referenced.contains(i))
            .collect();
        let stale: Vec<i32> = unref.intersection(&self.ml_unref).copied().collect();
        self.kt.forget_memleak_stacks(&stale);
        self.ml_unref = unref.difference(&self.ml_unref).copied().collect();
        groups.truncate(100);
        self.totals.memleak = groups;
    }
}

impl KtoolsCollector {
    /// overlayfs: one record per (cgroup, overlay mount) that read or wrote
    /// in the interval, with count, bytes, errors and latency of each side.
    fn collect_overlayfs(
        &mut self,
        ctx: &mut Ctx<'_>,
        out: &mut Output,
        secs: f64,
        ts: &str,
        hostname: &str,
    ) {
        let (d, forget) = self
            .overlay
            .step(self.kt.overlayfs().unwrap_or_default(), |_| false);
        let _ = self.kt.forget_overlayfs(&forget);
        if d.is_empty() {
            return;
        }
        if d.iter().any(|(k, _)| !self.mounts.contains_key(&k.dev)) {
            self.mounts = std::fs::read_to_string("/proc/self/mountinfo")
                .map(|t| overlay_mounts(&t))
                .unwrap_or_default();
        }
        let mut by: BTreeMap<(u64, u32), [Option<OlVal>; 2]> = BTreeMap::new();
        for (k, v) in &d {
            let e = by.entry((k.cgroup_id, k.dev)).or_default();
            e[usize::from(k.op == OL_WRITE)] = Some(*v);
        }
        for ((cg, dev), sides) in by {
            let mount = self.mounts.get(&dev).cloned();
            let mut w = Writer::new();
            w.str("@timestamp", ts.as_bytes())
                .str("event.kind", "metric")
                .str("event.module", "vigil")
                .str("event.dataset", "vigil.overlayfs")
                .str("event.action", "overlayfs")
                .str("host.hostname", hostname.as_bytes());
            let path = ctx.host.cgroup_path(cg);
            if let Some(c) = path.as_deref().and_then(crate::container::from_cgroup_path) {
                w.str("container.id", c.id.as_bytes())
                    .str("container.runtime", c.runtime);
            }
            w.f64("vigil.overlayfs.interval_s", (secs * 100.0).round() / 100.0);
            w.u64("vigil.overlayfs.cgroup_id", cg);
            if let Some(p) = &path {
                w.str("vigil.overlayfs.cgroup", p.as_bytes());
            }
            w.str("vigil.overlayfs.dev", dev_name(dev).as_bytes());
            if let Some(m) = &mount {
                w.str("vigil.overlayfs.mount", m.as_bytes());
            }
            let mount_label = mount.clone().unwrap_or_else(|| dev_name(dev));
            for (i, side) in ["read", "write"].into_iter().enumerate() {
                let Some(v) = sides[i] else { continue };
                let key = |f: &str| format!("vigil.overlayfs.{side}.{f}");
                w.u64(&key("count"), v.count)
                    .u64(&key("bytes"), v.bytes)
                    .u64(&key("errors"), v.errors);
                latency_fields(&mut w, &key, v.ns, v.count.max(1), &v.slots, false);
                let t = self
                    .totals
                    .overlayfs
                    .entry((cg, mount_label.clone(), side.to_string()))
                    .or_default();
                add_side(out, t, &OVERLAYFS_SERIES, side, (v.count, v.bytes, v.ns));
            }
            out.records.push(PerfRecord {
                json: w.finish(),
                finding: None,
            });
        }
    }
}

impl KtoolsCollector {
    /// blkthrot: one record per (cgroup, device) whose bios the block
    /// throttle held back and dispatched in the interval, with bios, bytes
    /// and the time held per direction.
    fn collect_blkthrot(&mut self, ctx: &mut Ctx<'_>, out: &mut Output, st: &Stamp<'_>) {
        let (d, forget) = self
            .blkthrot
            .step(self.kt.blkthrot().unwrap_or_default(), |_| false);
        let _ = self.kt.forget_blkthrot(&forget);
        if d.is_empty() {
            return;
        }
        if d.iter()
            .any(|(k, _)| !self.blkcgs.contains_key(&k.cgroup_id))
        {
            let h = std::fs::read_to_string("/proc/self/mountinfo")
                .map(|t| blkio_hierarchies(&t))
                .unwrap_or_default();
            if self.blkcgs.len() > 4096 {
                self.blkcgs.clear();
            }
            for (k, _) in &d {
                if !self.blkcgs.contains_key(&k.cgroup_id)
                    && let Some(found) = find_cgroup_by_ino(&h, k.cgroup_id)
                {
                    self.blkcgs.insert(k.cgroup_id, found);
                }
            }
        }
        let mut by: BTreeMap<(u64, u32), [Option<BtVal>; 2]> = BTreeMap::new();
        for (k, v) in &d {
            let e = by.entry((k.cgroup_id, k.dev)).or_default();
            let i = usize::from(k.op == BT_WRITE);
            match &mut e[i] {
                Some(acc) => vigil_bpf::ktools::Sum::add(acc, v),
                slot => *slot = Some(*v),
            }
        }
        let ds = "vigil.blkthrot";
        for ((cg, dev), sides) in by {
            let found = self.blkcgs.get(&cg).cloned();
            let mut w = vigil_outputs::json::Writer::new();
            st.header(&mut w, ds, "blkthrot");
            if let Some(c) = found
                .as_ref()
                .and_then(|(p, _)| crate::container::from_cgroup_path(p))
            {
                w.str("container.id", c.id.as_bytes())
                    .str("container.runtime", c.runtime);
            } else if found.is_none()
                && let Some(c) = ctx
                    .host
                    .cgroup_path(cg)
                    .as_deref()
                    .and_then(crate::container::from_cgroup_path)
            {
                w.str("container.id", c.id.as_bytes())
                    .str("container.runtime", c.runtime);
            }
            st.iv(&mut w, ds);
            w.u64("vigil.blkthrot.cgroup_id", cg);
            if let Some((p, h)) = &found {
                w.str("vigil.blkthrot.cgroup", p.as_bytes())
                    .str("vigil.blkthrot.hierarchy", h.as_bytes());
            }
            let devname = dev_name(dev);
            w.str("vigil.blkthrot.dev", devname.as_bytes());
            if let Some(n) = block_dev_name(dev) {
                w.str("vigil.blkthrot.device", n.as_bytes());
            }
            let cg_label = found
                .as_ref()
                .map_or_else(|| cg.to_string(), |(p, _)| p.clone());
            for (i, side) in ["read", "write"].into_iter().enumerate() {
                let Some(v) = sides[i] else { continue };
                let key = |f: &str| format!("vigil.blkthrot.{side}.{f}");
                w.u64(&key("bios"), v.bios)
                    .u64(&key("bytes"), v.bytes)
                    .u64(&key("timed"), v.timed);
                if v.timed > 0 {
                    w.float(&key("held_ms"), round1(v.ns as f64 / 1e6));
                    latency_fields(&mut w, &key, v.ns, v.timed, &v.slots, true);
                }
                let t = self
                    .totals
                    .blkthrot
                    .entry((cg_label.clone(), devname.clone(), side.to_string()))
                    .or_default();
                add_side(out, t, &BLKTHROT_SERIES, side, (v.bios, v.bytes, v.ns));
            }
            out.records.push(PerfRecord {
                json: w.finish(),
                finding: None,
            });
        }
    }
}

impl Collector for KtoolsCollector {
    fn name(&self) -> &'static str {
        "ktools"
    }

    fn table_sizes(&self, out: &mut Vec<(&'static str, usize)>) {
        out.extend([
            ("kmem_keys", self.kmem.len()),
            ("kmem_sites", self.sites.len()),
            ("kpages_keys", self.kpages.len()),
            ("numamove_keys", self.numa.len()),
            ("work_keys", self.work.len()),
            ("overlayfs_keys", self.overlay.len()),
            ("blkthrot_keys", self.blkthrot.len()),
            ("blkthrot_cgroups", self.blkcgs.len()),
            ("spray_usual", self.spray.len()),
            ("memleak_unreferenced_stacks", self.ml_unref.len()),
        ]);
    }

    fn collect(&mut self, ctx: &mut Ctx<'_>) -> Output {
        let now = Instant::now();
        let secs = now.duration_since(self.last_at).as_secs_f64().max(1e-3);
        self.last_at = now;
        let mut out = Output::default();
        let ts = ecs::rfc3339(ctx.unix_ns);
        let hostname = ctx.hostname.to_string();
        let st = Stamp {
            ts: &ts,
            hostname: &hostname,
            secs,
        };
        if self.kt.is_live("kmem") || self.kt.is_live("slabratetop") {
            self.collect_kmem(ctx, &mut out, &st);
        }
        if self.kt.is_live("memleak") {
            self.collect_memleak(ctx, &mut out, secs, &ts, &hostname);
        }
        if self.kt.is_live("overlayfs") {
            self.collect_overlayfs(ctx, &mut out, secs, &ts, &hostname);
        }
        if self.kt.is_live("blkthrot") {
            self.collect_blkthrot(ctx, &mut out, &st);
        }
        if self.kt.is_live("kpages") {
            self.collect_kpages(&mut out, &st);
        }
        if self.kt.is_live("numamove") {
            self.collect_numamove(&mut out, &st);
        }
        if ["workq", "softirqs", "hardirqs", "tasklets"]
            .iter()
            .any(|t| self.kt.is_live(t))
        {
            self.collect_work(&mut out, &st);
        }
        out
    }
}

/// Time stamp, host name and interval length of one collection; the head
/// of every metric record it writes.
struct Stamp<'a> {
    ts: &'a str,
    hostname: &'a str,
    secs: f64,
}

impl Stamp<'_> {
    /// `@timestamp`, `event.*` and `host.hostname` of a metric record.
    fn header(&self, w: &mut Writer, dataset: &str, action: &str) {
        w.str("@timestamp", self.ts.as_bytes())
            .str("event.kind", "metric")
            .str("event.module", "vigil")
            .str("event.dataset", dataset)
            .str("event.action", action)
            .str("host.hostname", self.hostname.as_bytes());
    }

    /// `<dataset>.interval_s`.
    fn iv(&self, w: &mut Writer, dataset: &str) {
        w.f64(
            &format!("{dataset}.interval_s"),
            (self.secs * 100.0).round() / 100.0,
        );
    }
}

/// The Prometheus series of each kernel-work tool (every name of
/// `vigil_bpf::ktools::SENSOR_NAMES` has a row; the Grafana dashboard
/// plots at least one of each row).
pub const TOOL_SERIES: &[(&str, &[&str])] = &[
    ("kmem", &["vigil_kmem_allocations_total"]),
    ("slabratetop", &["vigil_slab_allocations_total"]),
    (
        "memleak",
        &[
            "vigil_memleak_outstanding_bytes",
            "vigil_memleak_outstanding_allocations",
            "vigil_memleak_untracked_total",
        ],
    ),
    (
        "overlayfs",
        &[
            "vigil_overlayfs_calls_total",
            "vigil_overlayfs_bytes_total",
            "vigil_overlayfs_seconds_total",
        ],
    ),
    ("kpages", &["vigil_kpages_pages_total"]),
    ("numamove", &["vigil_numamove_pages_total"]),
    ("workq", &["vigil_workq_items_total"]),
    ("softirqs", &["vigil_softirq_seconds_total"]),
    ("hardirqs", &["vigil_hardirq_seconds_total"]),
    ("tasklets", &["vigil_tasklet_seconds_total"]),
    (
        "blkthrot",
        &[
            "vigil_blkthrot_bios_total",
            "vigil_blkthrot_bytes_total",
            "vigil_blkthrot_seconds_total",
        ],
    ),
];

/// The run-time series of a deferred-work kind counted per function,
/// vector or irq: (series, help, label). Work items are counted per
/// function only in the records (`vigil_workq_items_total` has no label:
/// work functions are too many for a label).
pub fn work_series(kind: u32) -> Option<(&'static str, &'static str, &'static str)> {
    match kind {
        KW_SOFTIRQ => Some((
            "vigil_softirq_seconds_total",
            "Time in softirqs per vector (softirqs).",
            "vector",
        )),
        KW_HARDIRQ => Some((
            "vigil_hardirq_seconds_total",
            "Time in hard irq handlers per irq (hardirqs).",
            "irq",
        )),
        KW_TASKLET => Some((
            "vigil_tasklet_seconds_total",
            "Time in tasklets per tasklet function (tasklets).",
            "function",
        )),
        _ => None,
    }
}

/// A process that exited (pid 0, no process, is never gone).
fn gone(pid: u32) -> bool {
    !alive(pid)
}

impl KtoolsCollector {
    /// kmem and slabratetop: reads the allocation counts, sums them per
    /// process and per cache, and hands them to the per-tool writers and
    /// the heap-spray detector.
    fn collect_kmem(&mut self, ctx: &mut Ctx<'_>, out: &mut Output, st: &Stamp<'_>) {
        let km_scale = u64::from(self.cfg.kmem_sample.max(1));
        let kmem_live = self.kt.is_live("kmem");
        let slab_live = self.kt.is_live("slabratetop");
        let now_km = self.kt.kmem().unwrap_or_default();
        let (d, forget) = self.kmem.step(now_km, |k| gone(k.tgid));
        let _ = self.kt.forget_kmem(&forget);
        if d.iter()
            .any(|(k, _)| k.cache != 0 && !self.names.contains_key(&k.cache))
        {
            self.names = self.kt.cache_names().unwrap_or_default();
        }
        // per process
        let mut procs: BTreeMap<u32, ProcKmem> = BTreeMap::new();
        let mut slabs: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (k, v) in &d {
            let c = v.count.saturating_mul(km_scale);
            let b = v.bytes.saturating_mul(km_scale);
            let class = class_name(k.cache, k.size, k.flags, &self.names);
            let p = procs.entry(k.tgid).or_default();
            p.0 += c;
            p.1 += b;
            p.2 = k.cgroup_id;
            let e = p.3.entry(class.clone()).or_default();
            e.0 += c;
            e.1 += b;
            let s = slabs.entry(class.clone()).or_default();
            s.0 += c;
            s.1 += b;
            if kmem_live {
                let t = self.totals.kmem_by_pid.entry(k.tgid).or_default();
                t.0 += c;
                t.1 += b;
                *self
                    .totals
                    .kmem_by_class
                    .entry((k.tgid, class))
                    .or_default() += c;
            }
        }
        if kmem_live && !d.is_empty() {
            self.kmem_records(ctx, out, st, &procs);
            self.kmem_sites(out, st);
        }
        if slab_live && !slabs.is_empty() {
            self.slabratetop_record(out, st, &slabs);
        }
        // A rate over a short partial interval (the last collection
        // at shutdown) is no rate: judge whole intervals only.
        if kmem_live && self.cfg.spray && st.secs >= 0.5 {
            self.judge_spray(out, st, &d);
        }
    }

    /// kmem: one record per busy process (the `kmem_top` busiest) with its
    /// top caches, and the allocations counter.
    fn kmem_records(
        &mut self,
        ctx: &mut Ctx<'_>,
        out: &mut Output,
        st: &Stamp<'_>,
        procs: &BTreeMap<u32, ProcKmem>,
    ) {
        let secs = st.secs;
        let top = self.cfg.kmem_top.max(1);
        let km_scale = u64::from(self.cfg.kmem_sample.max(1));
        let mut ranked: Vec<_> = procs.iter().collect();
        ranked.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(a.0.cmp(b.0)));
        for (tgid, (c, b, cg, classes)) in ranked.into_iter().take(top) {
            let mut cl: Vec<_> = classes.iter().collect();
            cl.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
            let mut w = Writer::new();
            st.header(&mut w, "vigil.kmem", "kmem");
            w.u64("process.pid", u64::from(*tgid));
            if let Some(n) = comm_of(*tgid) {
                w.str("process.name", n.as_bytes());
            }
            let path = ctx.host.cgroup_path(*cg);
            if let Some(c) = path.as_deref().and_then(crate::container::from_cgroup_path) {
                w.str("container.id", c.id.as_bytes())
                    .str("container.runtime", c.runtime);
            }
            st.iv(&mut w, "vigil.kmem");
            w.u64("vigil.kmem.cgroup_id", *cg);
            if let Some(p) = &path {
                w.str("vigil.kmem.cgroup", p.as_bytes());
            }
            w.u64("vigil.kmem.allocs", *c).u64("vigil.kmem.bytes", *b);
            w.f64("vigil.kmem.allocs_per_s", round1(*c as f64 / secs));
            w.u64("vigil.kmem.sample", km_scale);
            cache_rows(
                &mut w,
                "vigil.kmem.caches",
                cl.iter().take(10).copied(),
                None,
            );
            out.records.push(PerfRecord {
                json: w.finish(),
                finding: None,
            });
        }
        let all: u64 = procs.values().map(|p| p.0).sum();
        out.counters.push(CounterDelta {
            name: "vigil_kmem_allocations_total",
            help: "Kernel allocations (kmalloc, kmem_cache_alloc) counted by kmem, scaled by the sample rate.",
            labels: Vec::new(),
            delta: all,
            scale: 1.0,
        });
    }

    /// kmem: the busiest call sites of the interval, one record.
    fn kmem_sites(&mut self, out: &mut Output, st: &Stamp<'_>) {
        let km_scale = u64::from(self.cfg.kmem_sample.max(1));
        // call sites
        let (sd, sforget) = self
            .sites
            .step(self.kt.kmem_sites().unwrap_or_default(), |_| false);
        let _ = self.kt.forget_sites(&sforget);
        let mut sd = sd;
        sd.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(&b.0)));
        let rows: Vec<SiteRow> = sd
            .iter()
            .take(20)
            .map(|(k, v)| SiteRow {
                site: self.syms.name(k.call_site),
                cache: class_name(k.cache, k.size, k.flags, &self.names),
                allocs: v.count.saturating_mul(km_scale),
                bytes: v.bytes.saturating_mul(km_scale),
            })
            .collect();
        if !rows.is_empty() {
            let mut w = Writer::new();
            st.header(&mut w, "vigil.kmem", "kmem-sites");
            st.iv(&mut w, "vigil.kmem");
            site_rows(&mut w, "vigil.kmem.sites", &rows);
            out.records.push(PerfRecord {
                json: w.finish(),
                finding: None,
            });
        }
    }

    /// slabratetop: one record of the busiest caches and their counters.
    fn slabratetop_record(
        &mut self,
        out: &mut Output,
        st: &Stamp<'_>,
        slabs: &BTreeMap<String, (u64, u64)>,
    ) {
        let secs = st.secs;
        let mut s: Vec<_> = slabs.iter().collect();
        s.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
        let mut w = Writer::new();
        st.header(&mut w, "vigil.slabratetop", "slabratetop");
        st.iv(&mut w, "vigil.slabratetop");
        w.u64("vigil.slabratetop.allocs", s.iter().map(|x| x.1.0).sum())
            .u64("vigil.slabratetop.caches_seen", s.len() as u64);
        cache_rows(
            &mut w,
            "vigil.slabratetop.caches",
            s.iter().take(20).copied(),
            Some(secs),
        );
        out.records.push(PerfRecord {
            json: w.finish(),
            finding: None,
        });
        for (n, (c, _)) in s.iter().take(20) {
            *self.totals.slabs.entry((*n).clone()).or_default() += c;
            out.counters.push(CounterDelta {
                name: "vigil_slab_allocations_total",
                help: "Slab allocations per cache (slabratetop; the 20 busiest caches of each interval).",
                labels: vec![("cache", (*n).clone())],
                delta: *c,
                scale: 1.0,
            });
        }
    }

    /// The heap-spray alert (`kmem-spray`): judges the interval's kmalloc
    /// loads per (process, class) against their usual rates.
    fn judge_spray(&mut self, out: &mut Output, st: &Stamp<'_>, d: &[(KmKey, KmVal)]) {
        let (secs, ts, hostname) = (st.secs, st.ts, st.hostname);
        let km_scale = u64::from(self.cfg.kmem_sample.max(1));
        let loads = class_loads(d, &self.names, km_scale, secs);
        for h in self.spray.judge(&loads, uid_of) {
            self.totals.sprays += 1;
            let l = &h.load;
            let name = comm_of(l.tgid).unwrap_or_else(|| "exited".into());
            let who = match h.uid {
                Some(0) => "root".to_string(),
                Some(u) => format!("unprivileged uid {u}"),
                None => "uid unknown".to_string(),
            };
            let msg = format!(
                "possible kernel heap spray: process {} ({name}, {who}) made {} allocations in {} in {:.1} s ({:.0}/s, usual {:.0}/s, threshold {:.0}/s), {:.0}% of them from {}",
                l.tgid,
                l.count,
                l.class,
                secs,
                l.per_s,
                h.usual_per_s,
                h.threshold,
                l.nr_share * 100.0,
                syscall(l.top_nr)
            );
            let mut w = Writer::new();
            w.str("@timestamp", ts.as_bytes())
                .str("event.kind", "alert")
                .str("event.module", "vigil")
                .str("event.dataset", "vigil.kmem")
                .str("event.action", "kmem-spray")
                .str("host.hostname", hostname.as_bytes())
                .str("message", msg.as_bytes())
                .u64("process.pid", u64::from(l.tgid))
                .str("process.name", name.as_bytes());
            if let Some(u) = h.uid {
                w.u64("process.real_user.id", u64::from(u));
            }
            w.str("threat.framework", "MITRE ATT&CK")
                .strs("threat.technique.id", ["T1068"].iter())
                .str("vigil.kmem.spray.cache", l.class.as_bytes())
                .u64("vigil.kmem.spray.allocs", l.count)
                .str("vigil.kmem.spray.syscall", syscall(l.top_nr).as_bytes());
            w.f64("vigil.kmem.spray.per_s", round1(l.per_s));
            w.f64("vigil.kmem.spray.usual_per_s", round1(h.usual_per_s));
            w.f64("vigil.kmem.spray.threshold", round1(h.threshold));
            w.f64(
                "vigil.kmem.spray.share",
                (l.share * 1000.0).round() / 1000.0,
            );
            let sev = if h.uid == Some(0) { 2 } else { 3 };
            out.alerts.push(crate::perf::collector::Alert {
                json: w.finish(),
                id: "perf.kmem-spray".into(),
                title: "Kernel heap spray",
                message: msg,
                severity: sev,
            });
        }
        self.spray.forget(gone);
    }

    /// kpages: one record per busy process (pages by order) and the pages
    /// counter.
    fn collect_kpages(&mut self, out: &mut Output, st: &Stamp<'_>) {
        let top = self.cfg.kmem_top.max(1);
        let scale = u64::from(self.cfg.kpages_sample.max(1));
        let (d, forget) = self
            .kpages
            .step(self.kt.kpages().unwrap_or_default(), |k| gone(k.tgid));
        let _ = self.kt.forget_kpages(&forget);
        let mut procs: BTreeMap<u32, (u64, BTreeMap<u32, u64>)> = BTreeMap::new();
        for (k, n) in &d {
            let n = n.saturating_mul(scale);
            let p = procs.entry(k.tgid).or_default();
            p.0 += n << k.order.min(20);
            *p.1.entry(k.order).or_default() += n;
            *self.totals.kpages_by_pid.entry(k.tgid).or_default() += n << k.order.min(20);
        }
        let mut ranked: Vec<_> = procs.iter().collect();
        ranked.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
        for (tgid, (pages, orders)) in ranked.into_iter().take(top) {
            let mut w = Writer::new();
            st.header(&mut w, "vigil.kpages", "kpages");
            w.u64("process.pid", u64::from(*tgid));
            if let Some(n) = comm_of(*tgid) {
                w.str("process.name", n.as_bytes());
            }
            st.iv(&mut w, "vigil.kpages");
            w.u64("vigil.kpages.pages", *pages)
                .u64("vigil.kpages.sample", scale);
            by_order(&mut w, "vigil.kpages.by_order", orders);
            out.records.push(PerfRecord {
                json: w.finish(),
                finding: None,
            });
        }
        let all: u64 = procs.values().map(|p| p.0).sum();
        if all > 0 {
            out.counters.push(CounterDelta {
                name: "vigil_kpages_pages_total",
                help: "Pages allocated (mm_page_alloc, 2^order each) counted by kpages, scaled by the sample rate.",
                labels: Vec::new(),
                delta: all,
                scale: 1.0,
            });
        }
    }

    /// numamove: one record per (process, reason) that migrated pages.
    fn collect_numamove(&mut self, out: &mut Output, st: &Stamp<'_>) {
        let (d, forget) = self
            .numa
            .step(self.kt.numamove().unwrap_or_default(), |k| gone(k.tgid));
        let _ = self.kt.forget_numamove(&forget);
        for (k, v) in &d {
            let reason = migrate_reason(k.reason);
            let t = self.totals.numamove.entry(reason.into()).or_default();
            t.0 += v.calls;
            t.1 += v.succeeded;
            t.2 += v.ns;
            let mut w = Writer::new();
            st.header(&mut w, "vigil.numamove", "numamove");
            w.u64("process.pid", u64::from(k.tgid));
            if let Some(n) = comm_of(k.tgid) {
                w.str("process.name", n.as_bytes());
            }
            st.iv(&mut w, "vigil.numamove");
            w.str("vigil.numamove.reason", reason)
                .u64("vigil.numamove.calls", v.calls)
                .u64("vigil.numamove.pages", v.succeeded)
                .u64("vigil.numamove.failed", v.failed);
            w.f64("vigil.numamove.ms", round1(v.ns as f64 / 1e6));
            out.records.push(PerfRecord {
                json: w.finish(),
                finding: None,
            });
            out.counters.push(CounterDelta {
                name: "vigil_numamove_pages_total",
                help: "Pages migrated (migrate:mm_migrate_pages) per reason (numamove).",
                labels: vec![("reason", reason.to_string())],
                delta: v.succeeded,
                scale: 1.0,
            });
        }
    }

    /// workq, softirqs, hardirqs, tasklets: one read of the work map, one
    /// record per tool that saw work.
    fn collect_work(&mut self, out: &mut Output, st: &Stamp<'_>) {
        let (d, forget) = self
            .work
            .step(self.kt.work().unwrap_or_default(), |_| false);
        let _ = self.kt.forget_work(&forget);
        let irqs = if d.iter().any(|(k, _)| k.kind == KW_HARDIRQ) {
            std::fs::read_to_string("/proc/interrupts")
                .map(|t| irq_names(&t))
                .unwrap_or_default()
        } else {
            HashMap::new()
        };
        for (kind, tool) in [
            (KW_WORKQ, "workq"),
            (KW_SOFTIRQ, "softirqs"),
            (KW_HARDIRQ, "hardirqs"),
            (KW_TASKLET, "tasklets"),
        ] {
            self.work_record(out, st, kind, tool, &d, &irqs);
        }
    }

    /// One deferred-work tool's record (its 20 busiest functions, vectors
    /// or irqs), counters and, for softirqs, the `softirq-high` finding.
    fn work_record(
        &mut self,
        out: &mut Output,
        st: &Stamp<'_>,
        kind: u32,
        tool: &'static str,
        d: &[(KwKey, KwVal)],
        irqs: &HashMap<u64, String>,
    ) {
        let secs = st.secs;
        let mut rows: Vec<&(KwKey, KwVal)> = d.iter().filter(|(k, _)| k.kind == kind).collect();
        if rows.is_empty() {
            return;
        }
        rows.sort_by(|a, b| b.1.run_ns.cmp(&a.1.run_ns).then(a.0.cmp(&b.0)));
        let total_ns: u64 = rows.iter().map(|r| r.1.run_ns).sum();
        let total_n: u64 = rows.iter().map(|r| r.1.count).sum();
        let mut named: Vec<(String, &KwVal)> = Vec::new();
        for (k, v) in rows.iter().take(20) {
            let name = match kind {
                KW_SOFTIRQ => softirq_name(k.id).to_string(),
                KW_HARDIRQ => match irqs.get(&k.id) {
                    Some(n) => format!("{}:{n}", k.id),
                    None => k.id.to_string(),
                },
                _ => self.syms.name(k.id),
            };
            named.push((name.clone(), v));
            match kind {
                KW_WORKQ => *self.totals.workq.entry(name.clone()).or_default() += v.count,
                KW_TASKLET => *self.totals.tasklets.entry(name.clone()).or_default() += v.count,
                KW_SOFTIRQ => {
                    let t = self.totals.softirqs.entry(name.clone()).or_default();
                    t.0 += v.count;
                    t.1 += v.run_ns;
                }
                _ => {
                    let t = self.totals.hardirqs.entry(name.clone()).or_default();
                    t.0 += v.count;
                    t.1 += v.run_ns;
                }
            }
            if let Some((series, help, label)) = work_series(kind) {
                out.counters.push(CounterDelta {
                    name: series,
                    help,
                    labels: vec![(label, name.clone())],
                    delta: v.run_ns,
                    scale: 1e-9,
                });
            }
        }
        let dataset = format!("vigil.{tool}");
        let mut w = Writer::new();
        st.header(&mut w, &dataset, tool);
        st.iv(&mut w, &dataset);
        w.u64(&format!("{dataset}.count"), total_n)
            .u64(&format!("{dataset}.run_us"), total_ns / 1000);
        w.f64(
            &format!("{dataset}.cpu_pct"),
            round1(100.0 * total_ns as f64 / 1e9 / secs),
        );
        let key = if kind == KW_SOFTIRQ {
            "vectors"
        } else if kind == KW_HARDIRQ {
            "irqs"
        } else {
            "functions"
        };
        work_rows(
            &mut w,
            &format!("{dataset}.{key}"),
            kind == KW_WORKQ,
            &named,
        );
        out.records.push(PerfRecord {
            json: w.finish(),
            finding: None,
        });
        if kind == KW_WORKQ {
            out.counters.push(CounterDelta {
                name: "vigil_workq_items_total",
                help: "Work items run (workq).",
                labels: Vec::new(),
                delta: total_n,
                scale: 1.0,
            });
        }
        let pct = 100.0 * total_ns as f64 / 1e9 / secs;
        if kind == KW_SOFTIRQ && self.cfg.softirq_pct > 0.0 && pct > self.cfg.softirq_pct {
            self.softirq_finding(out, st, pct, rows[0]);
        }
    }

    /// `softirq-high`: softirqs took more than `perf.softirq_pct` of one
    /// CPU in the interval; names the busiest vector.
    fn softirq_finding(
        &mut self,
        out: &mut Output,
        st: &Stamp<'_>,
        pct: f64,
        top: &(KwKey, KwVal),
    ) {
        let secs = st.secs;
        self.totals.findings += 1;
        let (k, v) = top;
        let msg = format!(
            "softirqs took {pct:.1}% of one CPU in {secs:.0} s (threshold {}%); most: {} {:.1} ms",
            self.cfg.softirq_pct,
            softirq_name(k.id),
            v.run_ns as f64 / 1e6
        );
        let mut w = Writer::new();
        st.header(&mut w, "vigil.finding", "softirq-high");
        w.str("message", msg.as_bytes())
            .str("vigil.finding.name", "softirq-high")
            .str("vigil.finding.metric", "vigil.softirqs.cpu_pct");
        w.f64("vigil.finding.value", round1(pct));
        w.f64("vigil.finding.threshold", self.cfg.softirq_pct);
        w.str("vigil.finding.unit", "percent");
        out.records.push(PerfRecord {
            json: w.finish(),
            finding: Some(crate::perf::collector::Finding::new(
                "softirq-high",
                "Softirq time high",
                msg,
            )),
        });
    }
}

/// A per-direction series of an I/O tool (overlayfs, blkthrot), labelled
/// `op` with the side (`read`, `write`).
/// The (name, help) of a per-direction tool's three counters: its
/// operations, their bytes and their time (nanoseconds, shown in seconds).
type SideSeries = [(&'static str, &'static str); 3];

const OVERLAYFS_SERIES: SideSeries = [
    (
        "vigil_overlayfs_calls_total",
        "Reads and writes of files on overlay mounts (overlayfs).",
    ),
    (
        "vigil_overlayfs_bytes_total",
        "Bytes read and written on overlay mounts (overlayfs).",
    ),
    (
        "vigil_overlayfs_seconds_total",
        "Time in reads and writes of files on overlay mounts (overlayfs).",
    ),
];

const BLKTHROT_SERIES: SideSeries = [
    (
        "vigil_blkthrot_bios_total",
        "Bios the block throttle held back and dispatched (blkthrot).",
    ),
    (
        "vigil_blkthrot_bytes_total",
        "Bytes of the bios the block throttle held back (blkthrot).",
    ),
    (
        "vigil_blkthrot_seconds_total",
        "Time bios were held back by the block throttle, queued to dispatched, summed over the timed ones (blkthrot).",
    ),
];

/// One direction's interval of a per-direction tool: `(ops, bytes, ns)`
/// added to the run's total `t` and pushed as the three counters of
/// `series`, labelled `op` = `side`.
fn add_side(
    out: &mut Output,
    t: &mut (u64, u64, u64),
    series: &SideSeries,
    side: &str,
    (ops, bytes, ns): (u64, u64, u64),
) {
    t.0 += ops;
    t.1 += bytes;
    t.2 += ns;
    for ((name, help), (delta, scale)) in series.iter().zip([(ops, 1.0), (bytes, 1.0), (ns, 1e-9)])
    {
        out.counters
            .push(op_counter(name, help, side, delta, scale));
    }
}

fn op_counter(
    name: &'static str,
    help: &'static str,
    side: &str,
    delta: u64,
    scale: f64,
) -> CounterDelta {
    CounterDelta {
        name,
        help,
        labels: vec![("op", side.to_string())],
        delta,
        scale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ktools_tool_has_series_and_the_dashboard_shows_them() {
        let dash = include_str!("../../../outputs/grafana/vigil.json");
        for tool in vigil_bpf::ktools::SENSOR_NAMES {
            let Some((_, series)) = TOOL_SERIES.iter().find(|(t, _)| *t == tool) else {
                panic!("ktools tool {tool} has no Prometheus series in TOOL_SERIES");
            };
            assert!(
                series.iter().any(|s| dash.contains(s)),
                "{tool}: none of {series:?} on the Grafana dashboard"
            );
        }
        // the deferred-work series come from work_series
        for (kind, tool) in [
            (KW_SOFTIRQ, "softirqs"),
            (KW_HARDIRQ, "hardirqs"),
            (KW_TASKLET, "tasklets"),
        ] {
            let (name, _, _) = work_series(kind).expect("a series");
            let (_, series) = TOOL_SERIES.iter().find(|(t, _)| *t == tool).unwrap();
            assert!(series.contains(&name), "{tool}: {name}");
        }
        assert_eq!(
            work_series(KW_TASKLET).map(|s| s.2),
            Some("function"),
            "tasklet time is per function"
        );
        assert!(work_series(KW_WORKQ).is_none());
    }

    fn key(tgid: u32, size: u32, nr: i32) -> KmKey {
        KmKey {
            cgroup_id: 1,
            cache: 0,
            tgid,
            size,
            nr,
            flags: KM_KMALLOC | KM_ACCOUNTED,
        }
    }

    /// The arrays and objects of the kmem, kmem-sites, slabratetop,
    /// kpages and deferred-work records, each after a record head, byte
    /// for byte as `engine/tests/golden/ktools-records.jsonl` holds them
    /// (written there when `VIGIL_BLESS=1`).
    #[test]
    fn records_are_byte_identical_to_the_golden_file() {
        let st = Stamp {
            ts: "2023-11-14T22:13:20.123Z",
            hostname: "h",
            secs: 2.0,
        };
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let caches: BTreeMap<String, (u64, u64)> = [
            ("kmalloc-cg-128".to_string(), (6000, 768_000)),
            ("dentry".to_string(), (3, 576)),
            ("filp".to_string(), (1, 256)),
        ]
        .into();
        let rows: Vec<_> = caches.iter().collect();
        // kmem
        let mut w = Writer::new();
        st.header(&mut w, "vigil.kmem", "kmem");
        w.u64("process.pid", 20);
        st.iv(&mut w, "vigil.kmem");
        w.u64("vigil.kmem.allocs", 6004);
        w.f64("vigil.kmem.allocs_per_s", round1(6004.0 / 3.0));
        w.f64("vigil.kmem.nan", f64::NAN);
        cache_rows(&mut w, "vigil.kmem.caches", rows.iter().copied(), None);
        lines.push(w.finish());
        // kmem-sites
        let mut w = Writer::new();
        st.header(&mut w, "vigil.kmem", "kmem-sites");
        site_rows(
            &mut w,
            "vigil.kmem.sites",
            &[
                SiteRow {
                    site: "alloc_pipe_info+0x5b".into(),
                    cache: "kmalloc-cg-1k".into(),
                    allocs: 40,
                    bytes: 40960,
                },
                SiteRow {
                    site: "0xffffffff81234567".into(),
                    cache: "cache@0xdef".into(),
                    allocs: 1,
                    bytes: 64,
                },
            ],
        );
        lines.push(w.finish());
        // slabratetop: whole and fractional rates
        let mut w = Writer::new();
        st.header(&mut w, "vigil.slabratetop", "slabratetop");
        cache_rows(
            &mut w,
            "vigil.slabratetop.caches",
            rows.iter().copied(),
            Some(st.secs),
        );
        lines.push(w.finish());
        // kpages: orders past 9 (keys compare as text)
        let mut w = Writer::new();
        st.header(&mut w, "vigil.kpages", "kpages");
        w.u64("vigil.kpages.pages", 1043);
        by_order(
            &mut w,
            "vigil.kpages.by_order",
            &[(0, 10), (2, 1), (10, 1)].into(),
        );
        w.u64("vigil.kpages.sample", 1);
        lines.push(w.finish());
        // workq (queueing seen and not) and softirqs
        let mut a = KwVal {
            count: 3,
            run_ns: 10_500,
            wait_ns: 7_000,
            waited: 2,
            ..KwVal::default()
        };
        a.run_slots[2] = 3;
        a.wait_slots[1] = 1;
        a.wait_slots[3] = 1;
        let b = KwVal {
            count: 1,
            run_ns: 999,
            ..KwVal::default()
        };
        let mut c = a;
        c.wait_slots = [0; KT_SLOTS];
        for (workq, tool, key) in [(true, "workq", "functions"), (false, "softirqs", "vectors")] {
            let dataset = format!("vigil.{tool}");
            let mut w = Writer::new();
            st.header(&mut w, &dataset, tool);
            st.iv(&mut w, &dataset);
            work_rows(
                &mut w,
                &format!("{dataset}.{key}"),
                workq,
                &[
                    ("vmstat_update".into(), &a),
                    ("NET_RX".into(), &b),
                    ("flush_to_ldisc".into(), &c),
                ],
            );
            w.u64(&format!("{dataset}.count"), 4);
            lines.push(w.finish());
        }
        let mut text = Vec::new();
        for l in &lines {
            serde_json::from_slice::<serde_json::Value>(l).unwrap();
            text.extend_from_slice(l);
            text.push(b'\n');
        }
        crate::perf::assert_golden("ktools-records.jsonl", &text);
    }

    #[test]
    fn latency_fields_and_side_counters_of_the_per_direction_tools() {
        let slots = [0u64, 0, 0, 4];
        let text = |slots: &[u64], float: bool| {
            let mut w = Writer::new();
            latency_fields(&mut w, &|f| format!("t.read.{f}"), 24_000, 4, slots, float);
            String::from_utf8(w.finish()).unwrap()
        };
        let (p50, p99) = (
            crate::perf::quantile_us(&slots, 0.5).unwrap(),
            crate::perf::quantile_us(&slots, 0.99).unwrap(),
        );
        let fl = |v: f64| {
            let s = v.to_string();
            if s.contains('.') { s } else { format!("{s}.0") }
        };
        // overlayfs: numbers as Writer::f64 writes them
        assert_eq!(
            text(&slots, false),
            format!(
                r#"{{"t":{{"read":{{"avg_us":6,"p50_us":{p50},"p99_us":{p99},"max_us":8}}}}}}"#
            )
        );
        // blkthrot: numbers that always read as floats
        assert_eq!(
            text(&slots, true),
            format!(
                r#"{{"t":{{"read":{{"avg_us":6.0,"p50_us":{},"p99_us":{},"max_us":8}}}}}}"#,
                fl(p50),
                fl(p99)
            )
        );
        // an empty histogram has no quantiles; its max is the first bound
        assert_eq!(
            text(&[0; 4], false),
            r#"{"t":{"read":{"avg_us":6,"max_us":1}}}"#
        );
        let mut out = Output::default();
        let mut t = (1, 2, 3);
        add_side(
            &mut out,
            &mut t,
            &BLKTHROT_SERIES,
            "write",
            (5, 4096, 2_000),
        );
        assert_eq!(t, (6, 4098, 2_003));
        let got: Vec<_> = out
            .counters
            .iter()
            .map(|c| (c.name, c.labels.clone(), c.delta, c.scale))
            .collect();
        let op = vec![("op", "write".to_string())];
        assert_eq!(
            got,
            vec![
                ("vigil_blkthrot_bios_total", op.clone(), 5, 1.0),
                ("vigil_blkthrot_bytes_total", op.clone(), 4096, 1.0),
                ("vigil_blkthrot_seconds_total", op, 2_000, 1e-9),
            ]
        );
    }

    #[test]
    fn class_names_follow_the_kernel_caches() {
        let mut n = HashMap::new();
        n.insert(0xabc, "dentry".to_string());
        assert_eq!(
            class_name(0, 128, KM_KMALLOC | KM_ACCOUNTED, &n),
            "kmalloc-cg-128"
        );
        assert_eq!(class_name(0, 2048, KM_KMALLOC, &n), "kmalloc-2k");
        assert_eq!(class_name(0, 96, KM_KMALLOC, &n), "kmalloc-96");
        assert_eq!(class_name(0, 65536, KM_KMALLOC, &n), "kmalloc-large");
        assert_eq!(class_name(0xabc, 192, 0, &n), "dentry");
        assert_eq!(class_name(0xdef, 192, 0, &n), "cache@0xdef");
    }

    #[test]
    fn a_concentrated_burst_is_a_spray_and_a_steady_or_spread_load_is_not() {
        let names = HashMap::new();
        let mut s = Spray::new(2000.0, 20.0, 0.5, 4.0);
        // steady, spread process 10: many classes, no single one dominant
        let steady: Vec<(KmKey, KmVal)> = [64u32, 128, 256, 512]
            .iter()
            .map(|&sz| {
                (
                    key(10, sz, 0),
                    KmVal {
                        count: 3000,
                        bytes: 0,
                    },
                )
            })
            .collect();
        for _ in 0..3 {
            let l = class_loads(&steady, &names, 1, 1.0);
            assert!(s.judge(&l, |_| Some(1000)).is_empty());
        }
        // process 20 sprays kmalloc-cg-128 through msgsnd (69)
        let mut burst = steady.clone();
        burst.push((
            key(20, 128, 69),
            KmVal {
                count: 6000,
                bytes: 0,
            },
        ));
        burst.push((
            key(20, 64, 0),
            KmVal {
                count: 100,
                bytes: 0,
            },
        ));
        let l = class_loads(&burst, &names, 1, 1.0);
        let hits = s.judge(&l, |_| Some(1000));
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].load.tgid, 20);
        assert_eq!(hits[0].load.class, "kmalloc-cg-128");
        assert_eq!(hits[0].load.top_nr, 69);
        // the same rate by root is under root's threshold (4 x 2000)
        let mut s2 = Spray::new(2000.0, 20.0, 0.5, 4.0);
        assert!(s2.judge(&l, |_| Some(0)).is_empty());
        // a process that always runs at that rate is not flagged once usual
        for _ in 0..20 {
            s.judge(&l, |_| Some(1000));
        }
        assert!(s.judge(&l, |_| Some(1000)).is_empty());
        // the sample rate scales counts
        let l = class_loads(
            &[(
                key(30, 128, 69),
                KmVal {
                    count: 100,
                    bytes: 0,
                },
            )],
            &names,
            50,
            1.0,
        );
        assert_eq!(l[0].count, 5000);
        // off
        let mut off = Spray::new(0.0, 20.0, 0.5, 4.0);
        assert!(off.judge(&l, |_| Some(1)).is_empty());
    }

    #[test]
    fn leaks_older_than_the_minimum_age_group_by_process_stack_and_class() {
        let names: HashMap<u64, String> = [(0xc0, "filp".to_string())].into();
        let v = |ts_ns, tgid, stackid, cache, size| MlVal {
            ts_ns,
            cgroup_id: 7,
            cache,
            size,
            tgid,
            stackid,
            flags: if cache == 0 { KM_KMALLOC } else { 0 },
        };
        let s = 1_000_000_000u64;
        let table: HashMap<u64, MlVal> = [
            // pid 10: three old 192-byte kmallocs from stack 1, one young
            (1, v(s, 10, 1, 0, 192)),
            (2, v(2 * s, 10, 1, 0, 192)),
            (3, v(3 * s, 10, 1, 0, 192)),
            (4, v(99 * s, 10, 1, 0, 192)),
            // pid 10, another stack, a named cache
            (5, v(s, 10, 2, 0xc0, 256)),
            // pid 11: one old allocation
            (6, v(s, 11, 3, 0, 64)),
        ]
        .into();
        let g = group_leaks(&table, 100 * s, 10 * s, 4, &names);
        assert_eq!(g.len(), 3, "{g:?}");
        assert_eq!((g[0].tgid, g[0].stackid), (10, 1));
        assert_eq!((g[0].allocs, g[0].bytes), (12, 4 * 3 * 192));
        assert_eq!(g[0].oldest_ns, 99 * s);
        assert_eq!(g[0].class, "kmalloc-192");
        assert_eq!((g[1].class.as_str(), g[1].bytes), ("filp", 1024));
        assert_eq!((g[2].tgid, g[2].bytes), (11, 256));
        // nothing is that old
        assert!(group_leaks(&table, 100 * s, 200 * s, 1, &names).is_empty());
    }

    #[test]
    fn leak_stacks_lose_their_tracing_frames_only() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            leak_frames(f(&[
                "bpf_trace_run3+0x52",
                "__traceiter_kmalloc+0x2c",
                "__kmalloc_cache_noprof+0x2a1",
                "alloc_pipe_info+0x5b",
                "do_pipe2+0x3c"
            ])),
            f(&[
                "__kmalloc_cache_noprof+0x2a1",
                "alloc_pipe_info+0x5b",
                "do_pipe2+0x3c"
            ])
        );
        assert_eq!(leak_frames(f(&["bpf_x"])), f(&["bpf_x"]));
        assert!(leak_frames(Vec::new()).is_empty());
    }

    #[test]
    fn blkio_hierarchies_are_v1_blkio_mounts_then_the_unified_one() {
        let mi = "30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu
36 25 0:32 / /sys/fs/cgroup/blkio rw,relatime shared:15 - cgroup cgroup rw,blkio
37 25 0:33 / /sys/fs/cgroup/net\\040x rw - cgroup cgroup rw,net_cls
40 25 0:36 / /sys/fs/cgroup/unified rw,relatime shared:19 - cgroup2 cgroup2 rw
garbage line
";
        assert_eq!(
            blkio_hierarchies(mi),
            vec![
                ("/sys/fs/cgroup/blkio".to_string(), "blkio"),
                ("/sys/fs/cgroup/unified".to_string(), "unified"),
            ]
        );
        assert!(blkio_hierarchies("").is_empty());
    }

    #[test]
    fn a_cgroup_is_found_by_its_directory_inode() {
        use std::os::unix::fs::MetadataExt;
        let root = std::env::temp_dir().join(format!("vigil-blkcg-{}", std::process::id()));
        let leaf = root.join("a").join("b");
        std::fs::create_dir_all(&leaf).unwrap();
        let ino = std::fs::metadata(&leaf).unwrap().ino();
        let h = vec![(root.display().to_string(), "blkio")];
        assert_eq!(
            find_cgroup_by_ino(&h, ino),
            Some(("/a/b".to_string(), "blkio"))
        );
        let root_ino = std::fs::metadata(&root).unwrap().ino();
        assert_eq!(
            find_cgroup_by_ino(&h, root_ino),
            Some(("/".to_string(), "blkio"))
        );
        assert_eq!(find_cgroup_by_ino(&h, u64::MAX), None);
        assert_eq!(find_cgroup_by_ino(&[], ino), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn overlay_mounts_come_from_mountinfo_with_their_devices() {
        let t = "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n\
49 27 0:41 / /tmp/a\\040b/m rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n\
50 27 0:42 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
51 27 0:43 / /var/lib/x/merged rw shared:7 - overlay overlay rw,lowerdir=/l2\n";
        let m = overlay_mounts(t);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m.get(&41).map(String::as_str), Some("/tmp/a b/m"));
        assert_eq!(m.get(&43).map(String::as_str), Some("/var/lib/x/merged"));
        assert_eq!(dev_name(41), "0:41");
        assert_eq!(unescape_mount("a\\134b\\777\\04"), "a\\b?\\04");
        assert_eq!(dev_name((8 << 20) | 1), "8:1");
    }

    #[test]
    fn irq_names_come_from_proc_interrupts() {
        let t = "           CPU0       CPU1\n  0:         44          0   IO-APIC   2-edge      timer\n 24:       1234        567   PCI-MSIX-0000:00:03.0   0-edge      virtio0-config\nNMI:          0          0   Non-maskable interrupts\n";
        let n = irq_names(t);
        assert_eq!(n.get(&0).map(String::as_str), Some("timer"));
        assert_eq!(n.get(&24).map(String::as_str), Some("virtio0-config"));
        assert_eq!(n.len(), 2);
    }
}
