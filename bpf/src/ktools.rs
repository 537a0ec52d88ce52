//! Kernel-work tools (`bpf/c/ktools.bpf.c`), loaded as their own object.
//! Every program counts into a per-CPU BPF map; nothing is sent per event.
//!
//! - `kmem`: kernel allocations (`kmem:kmalloc`, `kmem:kmem_cache_alloc`):
//!   count and bytes per (process, cgroup v2, cache or kmalloc size class,
//!   syscall in progress) and per call site.
//! - `slabratetop`: the same maps read per slab cache (it attaches the kmem
//!   programs when kmem itself is off).
//! - `memleak`: kernel allocations outstanding (`kmem:kmalloc`,
//!   `kmem:kmem_cache_alloc` add an address to a table with its size, time,
//!   process and kernel stack; `kmem:kfree`, `kmem:kmem_cache_free` remove
//!   it), sampled by address so a free of an untracked address costs a
//!   multiply and a compare.
//! - `overlayfs`: read/write latency of files on overlay mounts per cgroup
//!   and mount (syscall tracepoints of read, pread64, readv, write,
//!   pwrite64, writev; the fd's superblock magic read through BTF).
//! - `blkthrot`: bios the block throttle (blk-throttle) held back, per
//!   blkcg cgroup, device and direction, with the time held: the
//!   throttle's dispatch work (`blk_throtl_dispatch_work_fn`, address from
//!   /proc/kallsyms) is marked by `workqueue:workqueue_execute_start/end`,
//!   and `block:block_bio_queue` in that work counts the bios it submits.
//!   The time held runs from `timer:timer_start` of the throttle's
//!   pending timer (`throtl_pending_timer_fn`), armed in the submitter
//!   when it queues a bio in a group with none queued: the bio, found
//!   through the submitter's blkcg, is stamped by address until that
//!   dispatch. A bio queued behind another of its group is counted
//!   untimed.
//! - `kpages`: page allocations (`kmem:mm_page_alloc`) per process and order.
//! - `numamove`: page migrations (`migrate:mm_migrate_pages[_start]`) per
//!   process and reason, with the time spent.
//! - `workq`: work items (`workqueue:*`) latency and run time per function.
//! - `softirqs`, `hardirqs`, `tasklets`: run time per vector, irq number and
//!   tasklet function (`irq:*`).
//!
//! Every program is `tp_btf` (direct BTF loads, cheapest); [`Ktools::status`]
//! says what attached and, for what did not, why.

use crate::sensors::{SensorState, SensorStatus};
use crate::{Error, ensure_tracefs, raise_memlock};
use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::{Btf, Ebpf, EbpfLoader};
use std::collections::HashMap;

/// The compiled object, embedded.
pub fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ktools.bpf.o"))
}

/// Histogram slots (log2 microseconds, as runqlat's).
pub const KT_SLOTS: usize = 32;
/// [`KmKey::flags`]: a kmalloc() (size class in `size`), not a named cache.
pub const KM_KMALLOC: u32 = 1;
/// [`KmKey::flags`]: `__GFP_ACCOUNT` (memcg-accounted: a `kmalloc-cg-*` cache).
pub const KM_ACCOUNTED: u32 = 2;
/// [`KwKey::kind`]: a work item (id: work function).
pub const KW_WORKQ: u32 = 0;
/// [`KwKey::kind`]: a softirq (id: vector).
pub const KW_SOFTIRQ: u32 = 1;
/// [`KwKey::kind`]: a hard irq handler (id: irq number).
pub const KW_HARDIRQ: u32 = 2;
/// [`KwKey::kind`]: a tasklet (id: function).
pub const KW_TASKLET: u32 = 3;

/// Kernel allocations of one process in one cache or size class, in one
/// syscall (`struct km_key`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct KmKey {
    /// cgroup v2 id of the allocating task.
    pub cgroup_id: u64,
    /// Kernel address of the `struct kmem_cache` (0: kmalloc).
    pub cache: u64,
    /// Process (0: none).
    pub tgid: u32,
    /// kmalloc size class (bytes_alloc) or the cache's object size.
    pub size: u32,
    /// Syscall in progress (x86-64 number), -1 when none.
    pub nr: i32,
    /// [`KM_KMALLOC`], [`KM_ACCOUNTED`].
    pub flags: u32,
}
const _: () = assert!(size_of::<KmKey>() == 32);

/// Count and bytes (`struct km_val`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KmVal {
    /// Allocations counted (sampled ones when `kmem_sample` > 1).
    pub count: u64,
    /// Bytes of those.
    pub bytes: u64,
}
const _: () = assert!(size_of::<KmVal>() == 16);

/// Allocations per call site (`struct km_site_key`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct KmSiteKey {
    /// Kernel address of the caller.
    pub call_site: u64,
    /// As [`KmKey::cache`].
    pub cache: u64,
    /// As [`KmKey::size`].
    pub size: u32,
    /// As [`KmKey::flags`].
    pub flags: u32,
}
const _: () = assert!(size_of::<KmSiteKey>() == 24);

/// Page allocations of a process by order (`struct kp_key`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct KpKey {
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// Process.
    pub tgid: u32,
    /// Allocation order (2^order pages).
    pub order: u32,
}
const _: () = assert!(size_of::<KpKey>() == 16);

/// Page migrations of a process for one reason (`struct nm_key`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NmKey {
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// Process.
    pub tgid: u32,
    /// `enum migrate_reason` ([`migrate_reason`]).
    pub reason: i32,
}
const _: () = assert!(size_of::<NmKey>() == 16);

/// Migration figures (`struct nm_val`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NmVal {
    /// migrate_pages() calls completed.
    pub calls: u64,
    /// Pages (folios) migrated.
    pub succeeded: u64,
    /// Pages that failed to migrate.
    pub failed: u64,
    /// Nanoseconds in migrate_pages().
    pub ns: u64,
}
const _: () = assert!(size_of::<NmVal>() == 32);

/// Deferred-work key (`struct kw_key`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct KwKey {
    /// Function address, softirq vector or irq number.
    pub id: u64,
    /// [`KW_WORKQ`], [`KW_SOFTIRQ`], [`KW_HARDIRQ`] or [`KW_TASKLET`].
    pub kind: u32,
    /// Padding (zero).
    pub _pad: u32,
}
const _: () = assert!(size_of::<KwKey>() == 16);

/// Deferred-work figures (`struct kw_val`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KwVal {
    /// Runs.
    pub count: u64,
    /// Nanoseconds running.
    pub run_ns: u64,
    /// workq: nanoseconds from queued to started, summed.
    pub wait_ns: u64,
    /// workq: items whose queueing was seen (the count behind `wait_ns`).
    pub waited: u64,
    /// Run time histogram (log2 us).
    pub run_slots: [u64; KT_SLOTS],
    /// workq latency histogram (log2 us).
    pub wait_slots: [u64; KT_SLOTS],
}
const _: () = assert!(size_of::<KwVal>() == 8 * (4 + 2 * KT_SLOTS));

impl Default for KwVal {
    fn default() -> Self {
        KwVal {
            count: 0,
            run_ns: 0,
            wait_ns: 0,
            waited: 0,
            run_slots: [0; KT_SLOTS],
            wait_slots: [0; KT_SLOTS],
        }
    }
}

/// [`OlKey::op`]: a read (read, pread64, readv).
pub const OL_READ: u32 = 0;
/// [`OlKey::op`]: a write (write, pwrite64, writev).
pub const OL_WRITE: u32 = 1;

/// Reads or writes of files on one overlay mount by one cgroup
/// (`struct ol_key`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct OlKey {
    /// cgroup v2 id of the task.
    pub cgroup_id: u64,
    /// `s_dev` of the overlay superblock (kernel encoding: major << 20 | minor).
    pub dev: u32,
    /// [`OL_READ`] or [`OL_WRITE`].
    pub op: u32,
}
const _: () = assert!(size_of::<OlKey>() == 16);

/// Their figures (`struct ol_val`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OlVal {
    /// Syscalls completed.
    pub count: u64,
    /// Bytes read or written by the successful ones.
    pub bytes: u64,
    /// Nanoseconds in the syscalls, summed.
    pub ns: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Latency histogram (log2 us).
    pub slots: [u64; KT_SLOTS],
}
const _: () = assert!(size_of::<OlVal>() == 8 * (4 + KT_SLOTS));

impl Default for OlVal {
    fn default() -> Self {
        OlVal {
            count: 0,
            bytes: 0,
            ns: 0,
            errors: 0,
            slots: [0; KT_SLOTS],
        }
    }
}

impl Sum for OlVal {
    fn add(&mut self, o: &Self) {
        self.count = self.count.wrapping_add(o.count);
        self.bytes = self.bytes.wrapping_add(o.bytes);
        self.ns = self.ns.wrapping_add(o.ns);
        self.errors = self.errors.wrapping_add(o.errors);
        for (a, b) in self.slots.iter_mut().zip(o.slots.iter()) {
            *a = a.wrapping_add(*b);
        }
    }
}

// SAFETY: plain #[repr(C)] integers, no padding (sizes asserted above).
unsafe impl aya::Pod for OlKey {}
// SAFETY: as above.
unsafe impl aya::Pod for OlVal {}

/// [`BtKey::op`]: a read.
pub const BT_READ: u32 = 0;
/// [`BtKey::op`]: a write (any op but a read: writes, flushes, discards).
pub const BT_WRITE: u32 = 1;

/// Bios the block throttle held back for one cgroup on one device, one
/// direction (`struct bt_key`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BtKey {
    /// kernfs id of the bio's blkcg cgroup: the inode number of its
    /// directory in the blkio (v1) or unified (v2) hierarchy.
    pub cgroup_id: u64,
    /// `bd_dev` of the bio's device (kernel encoding: major << 20 | minor).
    pub dev: u32,
    /// [`BT_READ`] or [`BT_WRITE`].
    pub op: u32,
}
const _: () = assert!(size_of::<BtKey>() == 16);

/// Their figures (`struct bt_val`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtVal {
    /// Throttled bios dispatched.
    pub bios: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Nanoseconds from the bio's issue to its dispatch, summed over the
    /// timed ones.
    pub ns: u64,
    /// Bios with an issue time (the count behind `ns` and `slots`).
    pub timed: u64,
    /// Time held histogram (log2 us).
    pub slots: [u64; KT_SLOTS],
}
const _: () = assert!(size_of::<BtVal>() == 8 * (4 + KT_SLOTS));

impl Default for BtVal {
    fn default() -> Self {
        BtVal {
            bios: 0,
            bytes: 0,
            ns: 0,
            timed: 0,
            slots: [0; KT_SLOTS],
        }
    }
}

impl Sum for BtVal {
    fn add(&mut self, o: &Self) {
        self.bios = self.bios.wrapping_add(o.bios);
        self.bytes = self.bytes.wrapping_add(o.bytes);
        self.ns = self.ns.wrapping_add(o.ns);
        self.timed = self.timed.wrapping_add(o.timed);
        for (a, b) in self.slots.iter_mut().zip(o.slots.iter()) {
            *a = a.wrapping_add(*b);
        }
    }
}

// SAFETY: plain #[repr(C)] integers, no padding (sizes asserted above).
unsafe impl aya::Pod for BtKey {}
// SAFETY: as above.
unsafe impl aya::Pod for BtVal {}

/// The kernel function whose work item dispatches throttled bios.
pub const BT_DISPATCH_FN: &str = "blk_throtl_dispatch_work_fn";
/// The throttle's pending-timer function: armed when a bio is queued in
/// a group that had none queued (the time held starts there).
pub const BT_TIMER_FN: &str = "throtl_pending_timer_fn";

/// The address of `name` in a /proc/kallsyms text (`Ok(None)`: not
/// there; `Err`: there but hidden, the address reads as zero).
pub fn kallsyms_addr(text: &str, name: &str) -> Result<Option<u64>, String> {
    for l in text.lines() {
        let mut it = l.split_whitespace();
        let (Some(a), Some(_), Some(n)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if n == name {
            let a =
                u64::from_str_radix(a, 16).map_err(|e| format!("/proc/kallsyms {name}: {e}"))?;
            if a == 0 {
                return Err(format!(
                    "/proc/kallsyms shows {name} at 0 (kernel.kptr_restrict hides addresses)"
                ));
            }
            return Ok(Some(a));
        }
    }
    Ok(None)
}

/// The syscalls overlayfs times, as tracepoint names (`sys_enter_<name>`).
pub const OL_SYSCALLS: [&str; 6] = ["read", "pread64", "readv", "write", "pwrite64", "writev"];

/// Entries of the memleak table (`ml_outstanding`).
pub const ML_TABLE: usize = 65536;
/// Entries of the memleak stack map (`ml_stacks`).
pub const ML_STACKS: usize = 8192;
/// Frames kept per memleak stack (`ML_DEPTH`).
pub const ML_DEPTH: usize = 32;

/// One kernel allocation outstanding (`struct ml_val`), keyed by address.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MlVal {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) at allocation.
    pub ts_ns: u64,
    /// cgroup v2 id of the allocating task.
    pub cgroup_id: u64,
    /// As [`KmKey::cache`].
    pub cache: u64,
    /// Bytes (kmalloc size class or the cache's object size).
    pub size: u32,
    /// Allocating process (0: none).
    pub tgid: u32,
    /// Kernel stack id ([`Ktools::memleak_stack`]); negative: not stored.
    pub stackid: i32,
    /// As [`KmKey::flags`].
    pub flags: u32,
}
const _: () = assert!(size_of::<MlVal>() == 40);

// SAFETY: plain #[repr(C)] integers, every bit pattern valid, no implicit
// padding (sizes asserted above).
unsafe impl aya::Pod for KmKey {}
// SAFETY: as above.
unsafe impl aya::Pod for MlVal {}
// SAFETY: as above.
unsafe impl aya::Pod for KmVal {}
// SAFETY: as above.
unsafe impl aya::Pod for KmSiteKey {}
// SAFETY: as above.
unsafe impl aya::Pod for KpKey {}
// SAFETY: as above.
unsafe impl aya::Pod for NmKey {}
// SAFETY: as above.
unsafe impl aya::Pod for NmVal {}
// SAFETY: as above.
unsafe impl aya::Pod for KwKey {}
// SAFETY: as above.
unsafe impl aya::Pod for KwVal {}

pub use crate::PerCpuSum as Sum;

impl Sum for KmVal {
    fn add(&mut self, o: &Self) {
        self.count = self.count.wrapping_add(o.count);
        self.bytes = self.bytes.wrapping_add(o.bytes);
    }
}
impl Sum for NmVal {
    fn add(&mut self, o: &Self) {
        self.calls = self.calls.wrapping_add(o.calls);
        self.succeeded = self.succeeded.wrapping_add(o.succeeded);
        self.failed = self.failed.wrapping_add(o.failed);
        self.ns = self.ns.wrapping_add(o.ns);
    }
}
impl Sum for KwVal {
    fn add(&mut self, o: &Self) {
        self.count = self.count.wrapping_add(o.count);
        self.run_ns = self.run_ns.wrapping_add(o.run_ns);
        self.wait_ns = self.wait_ns.wrapping_add(o.wait_ns);
        self.waited = self.waited.wrapping_add(o.waited);
        for (a, b) in self.run_slots.iter_mut().zip(o.run_slots.iter()) {
            *a = a.wrapping_add(*b);
        }
        for (a, b) in self.wait_slots.iter_mut().zip(o.wait_slots.iter()) {
            *a = a.wrapping_add(*b);
        }
    }
}

/// The name of a `enum migrate_reason` value (include/linux/migrate_mode.h).
pub fn migrate_reason(r: i32) -> &'static str {
    match r {
        0 => "compaction",
        1 => "memory_failure",
        2 => "memory_hotplug",
        3 => "syscall_or_cpuset",
        4 => "mempolicy_mbind",
        5 => "numa_misplaced",
        6 => "contig_range",
        7 => "longterm_pin",
        8 => "demotion",
        9 => "damon",
        _ => "unknown",
    }
}

/// The name of a softirq vector (kernel/softirq.c `softirq_to_name`).
pub fn softirq_name(v: u64) -> &'static str {
    match v {
        0 => "hi",
        1 => "timer",
        2 => "net_tx",
        3 => "net_rx",
        4 => "block",
        5 => "irq_poll",
        6 => "tasklet",
        7 => "sched",
        8 => "hrtimer",
        9 => "rcu",
        _ => "unknown",
    }
}

/// Kernel-side counters (`kt_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KtStats {
    /// Allocations not counted: kmem map full.
    pub km_full: u64,
    /// Call sites not counted: map full.
    pub site_full: u64,
    /// Page allocations not counted: map full.
    pub kp_full: u64,
    /// Migrations not counted: map full.
    pub nm_full: u64,
    /// Work runs not counted: map full.
    pub kw_full: u64,
    /// kmalloc/kmem_cache_alloc events seen (before sampling).
    pub km_seen: u64,
    /// mm_page_alloc events seen (before sampling).
    pub kp_seen: u64,
    /// memleak: allocations not tracked, its table was full.
    pub ml_full: u64,
    /// memleak: allocations tracked without their stack (stack map full or
    /// its hash bucket taken by another stack).
    pub ml_nostack: u64,
    /// memleak: allocations tracked.
    pub ml_tracked: u64,
    /// overlayfs: calls not counted, its map was full.
    pub ol_full: u64,
    /// blkthrot: bios not counted, its map was full.
    pub bt_full: u64,
}

/// What to attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KtoolsConfig {
    /// Kernel allocations per process and call site.
    pub kmem: bool,
    /// Slab cache allocation rate (attaches the kmem programs).
    pub slabratetop: bool,
    /// Count 1 in this many allocation events (0 and 1: every one).
    pub kmem_sample: u32,
    /// Kernel allocations outstanding, by stack.
    pub memleak: bool,
    /// Track 1 address in this many (0 and 1: every allocation).
    pub memleak_sample: u32,
    /// Read/write latency of files on overlay mounts.
    pub overlayfs: bool,
    /// Bios held back by the block throttle, per cgroup.
    pub blkthrot: bool,
    /// Page allocations per process and order.
    pub kpages: bool,
    /// Count 1 in this many page allocations (0 and 1: every one).
    pub kpages_sample: u32,
    /// Page migrations per process and reason.
    pub numamove: bool,
    /// Work item latency and run time.
    pub workq: bool,
    /// Softirq time per vector.
    pub softirqs: bool,
    /// Hard irq time per irq.
    pub hardirqs: bool,
    /// Tasklet time per function.
    pub tasklets: bool,
}

impl KtoolsConfig {
    /// Whether anything is on.
    pub fn any(&self) -> bool {
        self.kmem
            || self.slabratetop
            || self.memleak
            || self.overlayfs
            || self.blkthrot
            || self.kpages
            || self.numamove
            || self.workq
            || self.softirqs
            || self.hardirqs
            || self.tasklets
    }
}

/// Names of the tools as `vigil probe` shows them.
pub const SENSOR_NAMES: [&str; 11] = [
    "kmem",
    "slabratetop",
    "memleak",
    "overlayfs",
    "blkthrot",
    "kpages",
    "numamove",
    "workq",
    "softirqs",
    "hardirqs",
    "tasklets",
];

/// (program, tracepoint category, tracepoint) per tool.
type Hooks = &'static [(&'static str, &'static str, &'static str)];
const KMEM: Hooks = &[
    ("vg_kt_kmalloc", "kmem", "kmalloc"),
    ("vg_kt_cache_alloc", "kmem", "kmem_cache_alloc"),
];
const MEMLEAK: Hooks = &[
    ("vg_kt_ml_kmalloc", "kmem", "kmalloc"),
    ("vg_kt_ml_cache_alloc", "kmem", "kmem_cache_alloc"),
    ("vg_kt_ml_kfree", "kmem", "kfree"),
    ("vg_kt_ml_cache_free", "kmem", "kmem_cache_free"),
];
const KPAGES: Hooks = &[("vg_kt_page_alloc", "kmem", "mm_page_alloc")];
const NUMAMOVE: Hooks = &[
    ("vg_kt_migrate_start", "migrate", "mm_migrate_pages_start"),
    ("vg_kt_migrate_end", "migrate", "mm_migrate_pages"),
];
const WORKQ: Hooks = &[
    ("vg_kt_wq_queue", "workqueue", "workqueue_queue_work"),
    ("vg_kt_wq_start", "workqueue", "workqueue_execute_start"),
    ("vg_kt_wq_end", "workqueue", "workqueue_execute_end"),
];
const SOFTIRQS: Hooks = &[
    ("vg_kt_softirq_entry", "irq", "softirq_entry"),
    ("vg_kt_softirq_exit", "irq", "softirq_exit"),
];
const HARDIRQS: Hooks = &[
    ("vg_kt_hardirq_entry", "irq", "irq_handler_entry"),
    ("vg_kt_hardirq_exit", "irq", "irq_handler_exit"),
];
const BLKTHROT: Hooks = &[
    ("vg_kt_bt_wq_start", "workqueue", "workqueue_execute_start"),
    ("vg_kt_bt_wq_end", "workqueue", "workqueue_execute_end"),
    ("vg_kt_bt_timer", "timer", "timer_start"),
    ("vg_kt_bt_queue", "block", "block_bio_queue"),
];
const TASKLETS: Hooks = &[
    ("vg_kt_tasklet_entry", "irq", "tasklet_entry"),
    ("vg_kt_tasklet_exit", "irq", "tasklet_exit"),
];

/// Whether the kernel has a tracepoint (tracefs `events/<cat>/<name>`).
pub fn has_tracepoint(cat: &str, name: &str) -> bool {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .any(|d| std::path::Path::new(&format!("{d}/events/{cat}/{name}")).exists())
}

/// The loaded tools. Dropping it detaches them.
pub struct Ktools {
    ebpf: Ebpf,
    status: Vec<SensorStatus>,
    cfg: KtoolsConfig,
}

impl Ktools {
    /// Loads the object and attaches what `cfg` asks for. Errors only when
    /// the object cannot be loaded or the kernel has no BTF; tools that
    /// cannot attach are reported in [`Ktools::status`].
    pub fn load(cfg: &KtoolsConfig) -> Result<Ktools, Error> {
        ensure_tracefs()?;
        let _ = raise_memlock();
        let btf = Btf::from_sys_fs().map_err(|e| Error::Program {
            prog: "vg_kt_kmalloc",
            message: format!("kernel BTF (/sys/kernel/btf/vmlinux): {e}"),
        })?;
        let (km, kp) = (cfg.kmem_sample.max(1), cfg.kpages_sample.max(1));
        let ml = cfg.memleak_sample.max(1);
        // blkthrot needs the dispatch and timer functions' addresses
        // before load
        let bt_fn: Result<(u64, u64), String> = if cfg.blkthrot {
            std::fs::read_to_string("/proc/kallsyms")
                .map_err(|e| format!("/proc/kallsyms: {e}"))
                .and_then(|t| {
                    let one = |name: &str| {
                        kallsyms_addr(&t, name).and_then(|a| {
                            a.ok_or_else(|| {
                                format!(
                                    "no {name} in /proc/kallsyms: this kernel has no block throttle (CONFIG_BLK_DEV_THROTTLING)"
                                )
                            })
                        })
                    };
                    Ok((one(BT_DISPATCH_FN)?, one(BT_TIMER_FN)?))
                })
        } else {
            Ok((0, 0))
        };
        let (bt_addr, bt_timer) = *bt_fn.as_ref().unwrap_or(&(0, 0));
        let ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .override_global("cfg_km_sample", &km, true)
            .override_global("cfg_kp_sample", &kp, true)
            .override_global("cfg_ml_sample", &ml, true)
            .override_global("cfg_bt_dispatch_fn", &bt_addr, true)
            .override_global("cfg_bt_timer_fn", &bt_timer, true)
            .load(object())
            .map_err(Error::Load)?;
        let mut me = Ktools {
            ebpf,
            status: Vec::new(),
            cfg: *cfg,
        };
        let kmem_on = cfg.kmem || cfg.slabratetop;
        let kmem_state = if kmem_on {
            Some(me.attach_all(KMEM, &btf, "counts per process, cache and call site"))
        } else {
            None
        };
        let sample_note = |s: u32| {
            if s > 1 {
                format!(", 1 in {s} sampled")
            } else {
                String::new()
            }
        };
        let mut status = Vec::new();
        for (name, on) in [("kmem", cfg.kmem), ("slabratetop", cfg.slabratetop)] {
            let state = match (&kmem_state, on) {
                (Some(s), true) => match s {
                    SensorState::Live { mechanism, .. } => SensorState::Live {
                        mechanism: format!("{mechanism}{}", sample_note(km)),
                        fell_back_from: Vec::new(),
                    },
                    other => other.clone(),
                },
                _ => SensorState::Disabled,
            };
            status.push(SensorStatus { name, state });
        }
        let ml_state = if cfg.memleak {
            match me.attach_all(
                MEMLEAK,
                &btf,
                "outstanding allocations by address with the kernel stack",
            ) {
                SensorState::Live { mechanism, .. } => SensorState::Live {
                    mechanism: format!(
                        "{mechanism}{}",
                        if ml > 1 {
                            format!(", 1 address in {ml} tracked")
                        } else {
                            String::new()
                        }
                    ),
                    fell_back_from: Vec::new(),
                },
                s => s,
            }
        } else {
            SensorState::Disabled
        };
        status.push(SensorStatus {
            name: "memleak",
            state: ml_state,
        });
        let ol_state = if cfg.overlayfs {
            me.attach_overlayfs()
        } else {
            SensorState::Disabled
        };
        status.push(SensorStatus {
            name: "overlayfs",
            state: ol_state,
        });
        let bt_state = match (cfg.blkthrot, bt_fn) {
            (false, _) => SensorState::Disabled,
            (true, Err(why)) => {
                SensorState::Unavailable(vec![(format!("kallsyms/{BT_DISPATCH_FN}"), why)])
            }
            (true, Ok(_)) => me.attach_all(
                BLKTHROT,
                &btf,
                "bios the block throttle dispatched from blk_throtl_dispatch_work_fn, bytes and time held (queued: throtl_pending_timer_fn armed -> dispatch) per blkcg cgroup, device and direction",
            ),
        };
        status.push(SensorStatus {
            name: "blkthrot",
            state: bt_state,
        });
        let mut one = |name: &'static str, on: bool, hooks: Hooks, what: &str| {
            let state = if on {
                match me.attach_all(hooks, &btf, what) {
                    SensorState::Live { mechanism, .. } if name == "kpages" => SensorState::Live {
                        mechanism: format!("{mechanism}{}", sample_note(kp)),
                        fell_back_from: Vec::new(),
                    },
                    s => s,
                }
            } else {
                SensorState::Disabled
            };
            status.push(SensorStatus { name, state });
        };
        one("kpages", cfg.kpages, KPAGES, "counts per process and order");
        one(
            "numamove",
            cfg.numamove,
            NUMAMOVE,
            "calls, pages and time per process and reason",
        );
        one(
            "workq",
            cfg.workq,
            WORKQ,
            "latency and run time per work function",
        );
        one("softirqs", cfg.softirqs, SOFTIRQS, "run time per vector");
        one("hardirqs", cfg.hardirqs, HARDIRQS, "run time per irq");
        one(
            "tasklets",
            cfg.tasklets,
            TASKLETS,
            "run time per tasklet function",
        );
        me.status = status;
        Ok(me)
    }

    /// overlayfs: one entry and one exit program, each attached to the six
    /// syscall tracepoints (classic tracepoints: the syscall events have no
    /// BTF typedef for tp_btf).
    fn attach_overlayfs(&mut self) -> SensorState {
        use aya::programs::TracePoint;
        let mut attached = 0;
        for (prog, side) in [("vg_kt_ol_enter", "enter"), ("vg_kt_ol_exit", "exit")] {
            let p: &mut TracePoint = match self
                .ebpf
                .program_mut(prog)
                .ok_or_else(|| "missing from object".to_string())
                .and_then(|p| p.try_into().map_err(|e| crate::sensors::explain(&e)))
            {
                Ok(p) => p,
                Err(e) => {
                    return SensorState::Unavailable(vec![(format!("tracepoint/{prog}"), e)]);
                }
            };
            if let Err(e) = p.load() {
                return SensorState::Unavailable(vec![(
                    format!("tracepoint/syscalls/sys_{side}_*"),
                    format!("load: {}", crate::sensors::explain(&e)),
                )]);
            }
            for sc in OL_SYSCALLS {
                let tp = format!("sys_{side}_{sc}");
                if !has_tracepoint("syscalls", &tp) {
                    return SensorState::Unavailable(vec![(
                        format!("tracepoint/syscalls/{tp}"),
                        format!(
                            "this kernel has no syscalls:{tp} tracepoint (CONFIG_FTRACE_SYSCALLS)"
                        ),
                    )]);
                }
                if let Err(e) = p.attach("syscalls", &tp) {
                    return SensorState::Unavailable(vec![(
                        format!("tracepoint/syscalls/{tp}"),
                        format!("attach: {}", crate::sensors::explain(&e)),
                    )]);
                }
                attached += 1;
            }
        }
        SensorState::Live {
            mechanism: format!(
                "tracepoint/syscalls/sys_{{enter,exit}}_{{{}}} ({attached} attachments; the fd's superblock magic through BTF; latency, bytes and errors per cgroup and overlay mount)",
                OL_SYSCALLS.join(",")
            ),
            fell_back_from: Vec::new(),
        }
    }

    fn attach_all(&mut self, hooks: Hooks, btf: &Btf, what: &str) -> SensorState {
        let mut names = Vec::new();
        for (prog, cat, tp) in hooks {
            if !has_tracepoint(cat, tp) {
                return SensorState::Unavailable(vec![(
                    format!("tp_btf/{tp}"),
                    format!("this kernel has no {cat}:{tp} tracepoint"),
                )]);
            }
            let r = crate::attach_tp_btf(&mut self.ebpf, prog, tp, btf);
            if let Err(e) = r {
                return SensorState::Unavailable(vec![(format!("tp_btf/{tp}"), e)]);
            }
            names.push(format!("tp_btf/{tp}"));
        }
        SensorState::Live {
            mechanism: format!("{} ({what})", names.join(", ")),
            fell_back_from: Vec::new(),
        }
    }

    /// What attached, per tool ([`SENSOR_NAMES`]).
    pub fn status(&self) -> &[SensorStatus] {
        &self.status
    }

    /// Whether a tool is live.
    pub fn is_live(&self, name: &str) -> bool {
        self.status.iter().any(|s| s.name == name && s.is_live())
    }

    /// The settings it was loaded with.
    pub fn config(&self) -> &KtoolsConfig {
        &self.cfg
    }

    fn map(&self, name: &'static str) -> Result<&aya::maps::Map, Error> {
        self.ebpf.map(name).ok_or(Error::Map {
            name,
            source: aya::maps::MapError::InvalidName { name: name.into() },
        })
    }

    fn read<K: aya::Pod + Ord, V: aya::Pod + Sum>(
        &self,
        name: &'static str,
    ) -> Result<Vec<(K, V)>, Error> {
        crate::read_per_cpu(&self.ebpf, name)
    }

    fn remove<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &'static str,
        keys: &[K],
    ) -> Result<(), Error> {
        crate::remove_per_cpu::<K, V>(&mut self.ebpf, name, keys)
    }

    /// Allocations per process, cache and syscall (cumulative, over CPUs).
    pub fn kmem(&self) -> Result<Vec<(KmKey, KmVal)>, Error> {
        self.read("km_proc")
    }

    /// Allocations per call site (cumulative).
    pub fn kmem_sites(&self) -> Result<Vec<(KmSiteKey, KmVal)>, Error> {
        self.read("km_site")
    }

    /// Names of the slab caches seen, by `struct kmem_cache` address.
    pub fn cache_names(&self) -> Result<HashMap<u64, String>, Error> {
        let name = "km_cache_name";
        let m: BpfHashMap<&MapData, u64, [u8; 32]> =
            BpfHashMap::try_from(self.map(name)?).map_err(|source| Error::Map { name, source })?;
        Ok(m.iter()
            .filter_map(Result::ok)
            .map(|(k, v)| {
                let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
                (k, String::from_utf8_lossy(&v[..end]).into_owned())
            })
            .collect())
    }

    /// The memleak table: every tracked allocation still outstanding, by
    /// address. The kernel changes the table while it is read, so the walk
    /// is bounded (twice the table's size) and an address seen twice counts
    /// once.
    pub fn memleak_outstanding(&self) -> Result<HashMap<u64, MlVal>, Error> {
        let name = "ml_outstanding";
        let m: BpfHashMap<&MapData, u64, MlVal> =
            BpfHashMap::try_from(self.map(name)?).map_err(|source| Error::Map { name, source })?;
        let mut out = HashMap::new();
        for (k, v) in m.iter().take(2 * ML_TABLE).flatten() {
            out.insert(k, v);
        }
        Ok(out)
    }

    /// The frames of a memleak stack, innermost first (empty when the id
    /// is unknown).
    pub fn memleak_stack(&self, id: i32) -> Vec<u64> {
        crate::read_stack(&self.ebpf, "ml_stacks", id)
    }

    /// The ids of the stored memleak stacks (bounded walk, as
    /// [`Ktools::memleak_outstanding`]).
    pub fn memleak_stack_ids(&self) -> Vec<i32> {
        crate::stack_ids(&self.ebpf, "ml_stacks", 2 * ML_STACKS)
    }

    /// Removes memleak stacks no allocation refers to any more.
    pub fn forget_memleak_stacks(&mut self, ids: &[i32]) {
        crate::forget_stacks(&mut self.ebpf, "ml_stacks", ids);
    }

    /// overlayfs reads and writes per cgroup, mount and op (cumulative).
    pub fn overlayfs(&self) -> Result<Vec<(OlKey, OlVal)>, Error> {
        self.read("ol_lat")
    }

    /// Forgets overlayfs entries.
    pub fn forget_overlayfs(&mut self, keys: &[OlKey]) -> Result<(), Error> {
        self.remove::<OlKey, OlVal>("ol_lat", keys)
    }

    /// blkthrot: throttled bios per cgroup, device and direction
    /// (cumulative).
    pub fn blkthrot(&self) -> Result<Vec<(BtKey, BtVal)>, Error> {
        self.read("bt_held")
    }

    /// Forgets blkthrot entries.
    pub fn forget_blkthrot(&mut self, keys: &[BtKey]) -> Result<(), Error> {
        self.remove::<BtKey, BtVal>("bt_held", keys)
    }

    /// Page allocations per process and order (cumulative).
    pub fn kpages(&self) -> Result<Vec<(KpKey, u64)>, Error> {
        self.read("kp_proc")
    }

    /// Migrations per process and reason (cumulative).
    pub fn numamove(&self) -> Result<Vec<(NmKey, NmVal)>, Error> {
        self.read("nm_proc")
    }

    /// Deferred work per function, vector or irq (cumulative).
    pub fn work(&self) -> Result<Vec<(KwKey, KwVal)>, Error> {
        self.read("kw_time")
    }

    /// Forgets kmem entries (processes gone, idle keys).
    pub fn forget_kmem(&mut self, keys: &[KmKey]) -> Result<(), Error> {
        self.remove::<KmKey, KmVal>("km_proc", keys)
    }

    /// Forgets call-site entries.
    pub fn forget_sites(&mut self, keys: &[KmSiteKey]) -> Result<(), Error> {
        self.remove::<KmSiteKey, KmVal>("km_site", keys)
    }

    /// Forgets kpages entries.
    pub fn forget_kpages(&mut self, keys: &[KpKey]) -> Result<(), Error> {
        self.remove::<KpKey, u64>("kp_proc", keys)
    }

    /// Forgets numamove entries.
    pub fn forget_numamove(&mut self, keys: &[NmKey]) -> Result<(), Error> {
        self.remove::<NmKey, NmVal>("nm_proc", keys)
    }

    /// Forgets deferred-work entries.
    pub fn forget_work(&mut self, keys: &[KwKey]) -> Result<(), Error> {
        self.remove::<KwKey, KwVal>("kw_time", keys)
    }

    /// The object's own counters.
    pub fn stats(&self) -> Result<KtStats, Error> {
        self.map("kt_stats")?;
        let get = |i: u32| crate::stat_slot(&self.ebpf, "kt_stats", i);
        Ok(KtStats {
            km_full: get(0),
            site_full: get(1),
            kp_full: get(2),
            nm_full: get(3),
            kw_full: get(4),
            km_seen: get(5),
            kp_seen: get(6),
            ml_full: get(8),
            ml_nostack: get(9),
            ml_tracked: get(10),
            ol_full: get(11),
            bt_full: get(12),
        })
    }

    /// Loads only the benchmark's counting program on `kmem_cache_alloc`
    /// (the floor of any program there; `vigil-bench --kmem`).
    pub fn load_floor() -> Result<Ktools, Error> {
        let ebpf = crate::load_floor(object(), &[("vg_kt_floor_cache_alloc", "kmem_cache_alloc")])?;
        Ok(Ktools {
            ebpf,
            status: Vec::new(),
            cfg: KtoolsConfig::default(),
        })
    }

    /// Runs of the counting floor ([`Ktools::load_floor`]).
    pub fn floor_runs(&self) -> u64 {
        crate::stat_slot(&self.ebpf, "kt_stats", 7)
    }

    /// Run count and time of this object's programs (zero unless bpf_stats
    /// is on).
    pub fn program_stats(&self) -> Vec<crate::ProgramStat> {
        crate::program_stats_of(&self.ebpf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_reasons_and_vectors() {
        assert_eq!(migrate_reason(0), "compaction");
        assert_eq!(migrate_reason(5), "numa_misplaced");
        assert_eq!(migrate_reason(99), "unknown");
        assert_eq!(softirq_name(3), "net_rx");
        assert_eq!(softirq_name(42), "unknown");
    }

    #[test]
    fn kallsyms_addresses_are_found_hidden_or_missing() {
        let t = "ffffffff81b656a0 t blk_throtl_dispatch_work_fn\nffffffff81b672c0 t throtl_pending_timer_fn\nffffffffc0001000 t foo\t[mod]\n";
        assert_eq!(
            kallsyms_addr(t, BT_DISPATCH_FN),
            Ok(Some(0xffffffff81b656a0))
        );
        assert_eq!(kallsyms_addr(t, "foo"), Ok(Some(0xffffffffc0001000)));
        assert_eq!(kallsyms_addr(t, "nothing"), Ok(None));
        let hidden = "0000000000000000 t blk_throtl_dispatch_work_fn\n";
        assert!(
            kallsyms_addr(hidden, BT_DISPATCH_FN)
                .unwrap_err()
                .contains("kptr_restrict")
        );
        assert_eq!(kallsyms_addr("garbage\n\n", BT_DISPATCH_FN), Ok(None));
    }

    #[test]
    fn values_sum_over_cpus() {
        let mut a = KwVal::default();
        let mut b = KwVal {
            count: 2,
            ..KwVal::default()
        };
        b.run_slots[3] = 2;
        a.add(&b);
        a.add(&b);
        assert_eq!(a.count, 4);
        assert_eq!(a.run_slots[3], 4);
        let mut k = KmVal {
            count: u64::MAX,
            bytes: 1,
        };
        k.add(&KmVal { count: 2, bytes: 2 });
        assert_eq!((k.count, k.bytes), (1, 3));
    }
}
