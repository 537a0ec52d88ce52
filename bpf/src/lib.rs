//! vigil's eBPF sensors: the C programs (compiled by build.rs and embedded in
//! this crate), the Rust mirror of their ABI, the loader that probes and
//! attaches them, the ring-buffer reader and the record decoder.
//!
//! Flow: [`Sensors::load`] → [`Sensors::take_ring`] → [`RingReader`] →
//! [`decode::decode`] → [`decode::KernelEvent`] (the engine enriches it).

#![deny(missing_docs)]

pub mod abi;
pub mod compat;
pub mod decode;
pub mod ktools;
pub mod perfsys;
pub mod profile;
mod ring;
pub mod sched;
pub mod sensors;

pub use ring::RingReader;
pub use sensors::{SENSORS, SensorSpec, SensorState, SensorStatus};

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, HashMap as BpfHashMap, LpmTrie, MapData, PerCpuArray, RingBuf, lpm_trie::Key},
    programs::TracePoint,
};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The compiled sensors object (CO-RE, BTF), embedded so a copied binary runs alone.
pub fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vigil.bpf.o"))
}

/// Errors of the sensor layer. Every variant names what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The BPF object could not be loaded (maps created, globals set).
    #[error("loading the BPF object failed: {0}")]
    Load(#[source] aya::EbpfError),
    /// A map the loader needs is missing or has the wrong type.
    #[error("BPF map `{name}`: {source}")]
    Map {
        /// Map name.
        name: &'static str,
        /// Cause.
        #[source]
        source: aya::maps::MapError,
    },
    /// tracefs is not mounted and could not be mounted.
    #[error("tracefs is not mounted and mounting it at /sys/kernel/tracing failed: {0}")]
    Tracefs(#[source] std::io::Error),
    /// A configuration value is out of range.
    #[error("invalid sensor setting `{key}`: {message}")]
    Config {
        /// Setting name.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No sensor could be attached at all.
    #[error("no sensor could be attached: {0}")]
    NothingAttached(String),
    /// A program could not be attached.
    #[error("program `{prog}`: {message}")]
    Program {
        /// Program name.
        prog: &'static str,
        /// What failed, errno first.
        message: String,
    },
}

/// Loader settings (`const volatile` globals and what to attach).
#[derive(Debug, Clone)]
pub struct SensorConfig {
    /// Bulk ring buffer size in bytes (power of two, at least 4 KiB).
    pub ring_bytes: u32,
    /// Priority ring buffer size in bytes (power of two, at least 4 KiB).
    pub priority_ring_bytes: u32,
    /// Priority records per second one process may send (its budget; past
    /// it, its alert candidates go to the bulk ring). 0: no budget.
    pub priority_rate: u32,
    /// Priority records one process may send at once above the rate.
    pub priority_burst: u32,
    /// Wake the consumer only once this many bytes are pending (0: every record).
    pub wakeup_bytes: u32,
    /// Deduplicate repeated (process, object) records in the kernel.
    pub dedup: bool,
    /// Report opens for write anywhere not ignored.
    pub open_writes: bool,
    /// tgid whose events are never emitted (the agent).
    pub self_tgid: u32,
    /// Sensors not to attach.
    pub disabled: HashSet<String>,
    /// bash binary for the readline probe (None: search the usual places).
    pub bash_path: Option<PathBuf>,
    /// Hold a BPF_ENABLE_STATS fd so per-program run time is counted while
    /// the agent runs (costs two clock reads per program run).
    pub bpf_stats: bool,
}

impl Default for SensorConfig {
    fn default() -> Self {
        SensorConfig {
            ring_bytes: 16 << 20,
            priority_ring_bytes: 4 << 20,
            priority_rate: 200,
            priority_burst: 200,
            wakeup_bytes: 64 << 10,
            dedup: true,
            open_writes: true,
            self_tgid: std::process::id(),
            disabled: HashSet::new(),
            bash_path: None,
            bpf_stats: true,
        }
    }
}

/// What the pipeline needs from the kernel: everything else dies there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interest {
    /// Event kinds to emit.
    pub kinds: BTreeSet<u16>,
    /// Report every open below these prefixes.
    pub report_paths: Vec<String>,
    /// Report the successful opens below these prefixes; a failed open
    /// there leaves the kernel only when a `report_paths` prefix (or
    /// `open_writes`) wants it. A prefix also in `report_paths`, or below
    /// one of them, reports every open.
    pub report_ok_paths: Vec<String>,
    /// Ports a failed (refused, unreachable, timed-out) inet connect is
    /// reported to; `None`: every port. Connects in progress and
    /// successful ones are not affected.
    pub failed_connect_ports: Option<BTreeSet<u16>>,
    /// Never report opens below these prefixes (longest prefix wins).
    pub ignore_paths: Vec<String>,
    /// Capabilities to report (numbers, 0..64).
    pub caps: BTreeSet<u8>,
    /// Ports whose connect/accept/listen are not reported.
    pub ignore_ports: BTreeSet<u16>,
    /// TCP states (kernel numbers, 1..=12) whose entry tcp_state reports.
    pub tcp_states: BTreeSet<u8>,
    /// Kinds whose records all go to the bulk ring (not alert candidates):
    /// the kinds emitted only because of `--events`, and tcp_state (it runs
    /// in softirq, where the current process is not the connection's).
    /// Every other emitted kind is an alert candidate (priority ring, within
    /// the per-process budget; see [`SensorConfig::priority_rate`]).
    pub bulk_kinds: BTreeSet<u16>,
    /// Syscall numbers of [`abi::RARE_CALLS`] the `syscall` sensor reports
    /// (while its kind is in `kinds`); the others cost one map lookup at
    /// their exit and leave nothing.
    pub rare_calls: BTreeSet<u32>,
}

/// TCP state names by kernel number (include/net/tcp_states.h).
pub const TCP_STATES: &[(u8, &str)] = &[
    (1, "ESTABLISHED"),
    (2, "SYN_SENT"),
    (3, "SYN_RECV"),
    (4, "FIN_WAIT1"),
    (5, "FIN_WAIT2"),
    (6, "TIME_WAIT"),
    (7, "CLOSE"),
    (8, "CLOSE_WAIT"),
    (9, "LAST_ACK"),
    (10, "LISTEN"),
    (11, "CLOSING"),
    (12, "NEW_SYN_RECV"),
];

impl Default for Interest {
    fn default() -> Self {
        Interest {
            kinds: sensors::all_kinds().collect(),
            report_paths: [
                "/etc/",
                "/root/",
                "/boot/",
                "/home/",
                "/var/spool/cron/",
                "/var/log/",
                "/usr/lib/systemd/",
                "/lib/modules/",
                "/dev/shm/",
                "/proc/kcore",
                "/dev/mem",
                "/dev/kmem",
                "/sys/kernel/security/",
                "/sys/fs/bpf/",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            report_ok_paths: Vec::new(),
            failed_connect_ports: None,
            ignore_paths: [
                "/dev/null",
                "/dev/pts/",
                "/dev/tty",
                "/proc/self/",
                "/proc/thread-self/",
                "/etc/ld.so.cache",
                "/etc/localtime",
                "/etc/nsswitch.conf",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            caps: (0..64).collect(),
            ignore_ports: BTreeSet::new(),
            // Connection start and end (tcplife's view). SYN_SENT and
            // LISTEN repeat the connect and listen records.
            tcp_states: [1, 7].into_iter().collect(),
            bulk_kinds: [abi::kind::TCP_STATE].into_iter().collect(),
            rare_calls: abi::RARE_CALLS.iter().map(|c| c.0).collect(),
        }
    }
}

static TRACEFS: OnceLock<&'static str> = OnceLock::new();

/// Directory where tracefs is mounted (after [`ensure_tracefs`]).
pub fn tracefs_dir() -> &'static str {
    TRACEFS.get().copied().unwrap_or("/sys/kernel/tracing")
}

/// Makes sure tracefs is mounted (aya and tracepoint attach need it);
/// mounts it at /sys/kernel/tracing when missing. Returns where it is and
/// whether this call mounted it.
pub fn ensure_tracefs() -> Result<(&'static str, bool), Error> {
    for dir in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if std::path::Path::new(dir).join("events").is_dir() {
            let _ = TRACEFS.set(dir);
            return Ok((dir, false));
        }
    }
    let rc = unsafe {
        // SAFETY: constant NUL-terminated strings, null data.
        libc::mount(
            c"tracefs".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(Error::Tracefs(std::io::Error::last_os_error()));
    }
    let _ = TRACEFS.set("/sys/kernel/tracing");
    Ok(("/sys/kernel/tracing", true))
}

/// Tries to lift RLIMIT_MEMLOCK. Failure is not fatal: kernels >= 5.11
/// charge BPF memory to the cgroup, and root here lacks CAP_SYS_RESOURCE.
/// Returns the error text when it failed.
pub fn raise_memlock() -> Option<String> {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        Some(std::io::Error::last_os_error().to_string())
    } else {
        None
    }
}

/// Per-program run statistics (from BPF_ENABLE_STATS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStat {
    /// Program name.
    pub name: String,
    /// Times the program ran.
    pub run_count: u64,
    /// Total time spent in it.
    pub run_time: Duration,
    /// Runs the kernel skipped because a BPF program was already running
    /// on that CPU (`recursion_misses`: an interrupt or softirq hit a
    /// tracepoint while a program ran). Counted whether or not
    /// `BPF_ENABLE_STATS` is on; each is an event lost before any ring
    /// buffer could count it as a drop. None: the kernel does not report
    /// it (before 5.12).
    pub missed: Option<u64>,
}

/// Run count and time of every loaded program of an object, by name (run
/// count and time counted only while some process holds a
/// `BPF_ENABLE_STATS` descriptor; misses always).
pub fn program_stats_of(ebpf: &Ebpf) -> Vec<ProgramStat> {
    use std::os::fd::AsFd;
    let mut out = Vec::new();
    for (name, prog) in ebpf.programs() {
        if let Ok(info) = prog.info() {
            out.push(ProgramStat {
                name: name.to_string(),
                run_count: info.run_count(),
                run_time: info.run_time(),
                missed: prog.fd().ok().and_then(|fd| recursion_misses(fd.as_fd())),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// `recursion_misses` of a loaded program (`BPF_OBJ_GET_INFO_BY_FD`; aya
/// 0.14 does not expose it). None when the kernel does not report it
/// (before 5.12).
pub fn recursion_misses(fd: std::os::fd::BorrowedFd<'_>) -> Option<u64> {
    use std::os::fd::AsRawFd;
    /// `struct bpf_prog_info` up to `recursion_misses` (offset 208 in the
    /// UAPI; the kernel fills min(info_len, its size) and, as every
    /// pointer/count pair is zero, writes nothing else).
    #[repr(C)]
    struct InfoPrefix {
        head: [u8; 208],
        recursion_misses: u64,
    }
    /// The `info` member of `union bpf_attr`.
    #[repr(C)]
    struct GetInfo {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    let mut info = InfoPrefix {
        head: [0; 208],
        recursion_misses: 0,
    };
    let mut attr = GetInfo {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of::<InfoPrefix>() as u32,
        info: (&raw mut info) as u64,
    };
    // SAFETY: `attr` is a valid bpf_attr prefix for this command, `info`
    // outlives the call and is `info_len` bytes long; the kernel writes at
    // most that many bytes into it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &raw mut attr,
            size_of::<GetInfo>(),
        )
    };
    (r == 0 && attr.info_len as usize >= size_of::<InfoPrefix>()).then_some(info.recursion_misses)
}

/// `recursion_misses` of every program loaded on the host under `name`
/// (whoever loaded it), as (program id, misses), sorted by id. Needs
/// CAP_SYS_ADMIN to open the programs by id; empty without it.
pub fn recursion_misses_by_name(name: &str) -> Vec<(u32, u64)> {
    use std::os::fd::AsFd;
    let mut out: Vec<(u32, u64)> = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.name_as_str() == Some(name))
        .filter_map(|p| {
            let fd = p.fd().ok()?;
            Some((p.id(), recursion_misses(fd.as_fd())?))
        })
        .collect();
    out.sort_unstable();
    out
}

/// Loads and attaches one `tp_btf` program of an object to tracepoint
/// `tp`: the one attach path of every performance tool. The error says
/// which step failed (missing from the object, wrong type, verifier load,
/// attach) and why.
pub fn attach_tp_btf(ebpf: &mut Ebpf, prog: &str, tp: &str, btf: &Btf) -> Result<(), String> {
    let p: &mut aya::programs::BtfTracePoint = ebpf
        .program_mut(prog)
        .ok_or("missing from object")?
        .try_into()
        .map_err(|e| sensors::explain(&e))?;
    p.load(tp, btf)
        .map_err(|e| format!("load: {}", sensors::explain(&e)))?;
    p.attach()
        .map_err(|e| format!("attach: {}", sensors::explain(&e)))?;
    Ok(())
}

/// Loads a performance object with only its benchmark counting programs
/// attached (`(program, tp_btf tracepoint)` pairs): the floor of any tool
/// on those hooks, as `vigil-bench` measures it.
pub fn load_floor(object: &[u8], hooks: &[(&'static str, &str)]) -> Result<Ebpf, Error> {
    ensure_tracefs()?;
    let _ = raise_memlock();
    let first = hooks.first().map(|h| h.0).unwrap_or("floor");
    let btf = Btf::from_sys_fs().map_err(|e| Error::Program {
        prog: first,
        message: format!("kernel BTF (/sys/kernel/btf/vmlinux): {e}"),
    })?;
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        // `pending` is task-local storage, which aya creates but does not wrap
        .allow_unsupported_maps()
        .load(object)
        .map_err(Error::Load)?;
    for (prog, tp) in hooks {
        attach_tp_btf(&mut ebpf, prog, tp, &btf)
            .map_err(|message| Error::Program { prog, message })?;
    }
    Ok(ebpf)
}

/// Values of a per-CPU map that add up over CPUs.
pub trait PerCpuSum: Copy + Default {
    /// `self += other` (wrapping).
    fn add(&mut self, other: &Self);
}

impl PerCpuSum for u64 {
    fn add(&mut self, o: &Self) {
        *self = self.wrapping_add(*o);
    }
}

fn no_map(name: &'static str) -> Error {
    Error::Map {
        name,
        source: aya::maps::MapError::InvalidName { name: name.into() },
    }
}

/// Every entry of a per-CPU hash map, each value summed over CPUs, sorted
/// by key.
pub fn read_per_cpu<K: aya::Pod + Ord, V: aya::Pod + PerCpuSum>(
    ebpf: &Ebpf,
    name: &'static str,
) -> Result<Vec<(K, V)>, Error> {
    let m: aya::maps::PerCpuHashMap<&MapData, K, V> =
        aya::maps::PerCpuHashMap::try_from(ebpf.map(name).ok_or_else(|| no_map(name))?)
            .map_err(|source| Error::Map { name, source })?;
    let mut out = Vec::new();
    for r in m.iter() {
        let Ok((k, per_cpu)) = r else { continue };
        let mut sum = V::default();
        for v in per_cpu.iter() {
            sum.add(v);
        }
        out.push((k, sum));
    }
    out.sort_by_key(|a| a.0);
    Ok(out)
}

/// Removes keys from a per-CPU hash map (idle keys, processes gone); keys
/// already gone are no error.
pub fn remove_per_cpu<K: aya::Pod, V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    keys: &[K],
) -> Result<(), Error> {
    let m = ebpf.map_mut(name).ok_or_else(|| no_map(name))?;
    let mut m: aya::maps::PerCpuHashMap<&mut MapData, K, V> =
        aya::maps::PerCpuHashMap::try_from(m).map_err(|source| Error::Map { name, source })?;
    for k in keys {
        let _ = m.remove(k);
    }
    Ok(())
}

/// The instruction pointers of stack `id` in the stack-trace map `name`,
/// innermost first; empty when the id is negative or unknown, or the map
/// is missing.
pub fn read_stack(ebpf: &Ebpf, name: &str, id: i32) -> Vec<u64> {
    let Ok(id) = u32::try_from(id) else {
        return Vec::new();
    };
    ebpf.map(name)
        .and_then(|m| aya::maps::StackTraceMap::<&MapData>::try_from(m).ok())
        .and_then(|m| m.get(&id, 0).ok())
        .map(|st| st.frames().iter().map(|f| f.ip).collect())
        .unwrap_or_default()
}

/// The ids stored in the stack-trace map `name`, sorted, from a walk of at
/// most `bound` entries (a map that changes under the walk cannot make it
/// run on); empty when the map is missing.
pub fn stack_ids(ebpf: &Ebpf, name: &str, bound: usize) -> Vec<i32> {
    let Some(m) = ebpf
        .map(name)
        .and_then(|m| aya::maps::StackTraceMap::<&MapData>::try_from(m).ok())
    else {
        return Vec::new();
    };
    let mut ids: Vec<i32> = m
        .stack_ids()
        .take(bound)
        .filter_map(Result::ok)
        .map(|i| i as i32)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Removes stacks from the stack-trace map `name` (negative ids, stacks
/// already gone and a missing map are no error).
pub fn forget_stacks(ebpf: &mut Ebpf, name: &str, ids: &[i32]) {
    let Some(mut m) = ebpf
        .map_mut(name)
        .and_then(|m| aya::maps::StackTraceMap::<&mut MapData>::try_from(m).ok())
    else {
        return;
    };
    for id in ids.iter().filter_map(|i| u32::try_from(*i).ok()) {
        let _ = m.remove(&id);
    }
}

/// Slot `idx` of a per-CPU `u64` stats array (`stat_inc` in
/// `vigil_perf.h`), summed over CPUs; 0 when the map or slot is missing.
pub fn stat_slot(ebpf: &Ebpf, name: &str, idx: u32) -> u64 {
    ebpf.map(name)
        .and_then(|m| PerCpuArray::<&MapData, u64>::try_from(m).ok())
        .and_then(|a| a.get(&idx, 0).ok())
        .map(|v| v.iter().fold(0u64, |x, y| x.wrapping_add(*y)))
        .unwrap_or(0)
}

/// Turns BPF run-time statistics on for as long as the returned
/// descriptor stays open (`BPF_ENABLE_STATS`; kernel-wide, two clock reads
/// per run of every BPF program on the host meanwhile): `vigil-bench`
/// reads a program's own time per run this way.
pub fn bpf_stats_on() -> Result<OwnedFd, String> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| e.to_string())
}

/// Whether this kernel lets vigil count BPF run time (`BPF_ENABLE_STATS`);
/// the descriptor is closed again at once.
pub fn bpf_stats_available() -> Result<(), String> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The loaded, attached sensors. Dropping it detaches everything.
pub struct Sensors {
    ebpf: Ebpf,
    status: Vec<SensorStatus>,
    _stats_fd: Option<OwnedFd>,
    /// Time from start of load to all sensors attached.
    pub attach_time: Duration,
    /// Where [`Sensors::attach_time`] went, in order: parsing the kernel's
    /// BTF, loading the object (CO-RE relocation, map creation), writing
    /// the interest maps, and loading (verifier) and attaching the
    /// programs.
    pub load_phases: Vec<(&'static str, Duration)>,
    /// Syscalls attached: (number, interest value).
    syscalls: Vec<(i64, u32)>,
    /// Whether RLIMIT_MEMLOCK could be raised (None) or why not.
    pub memlock_note: Option<String>,
    links: Vec<sensors::LinkRef>,
}

impl Drop for Sensors {
    fn drop(&mut self) {
        sensors::detach_parallel(&mut self.ebpf, std::mem::take(&mut self.links));
    }
}

const MAP_EVENTS: &str = "events";
const MAP_PRIORITY: &str = "priority";

/// Kernel GCRA settings for a rate and burst: (interval ns, burst ns).
fn prio_budget(rate: u32, burst: u32) -> (u64, u64) {
    if rate == 0 {
        return (0, 0);
    }
    let interval = 1_000_000_000 / u64::from(rate);
    (
        interval,
        interval.saturating_mul(u64::from(burst.max(1) - 1)),
    )
}

impl Sensors {
    /// Loads the object with `cfg`'s globals and attaches every enabled
    /// sensor with the best mechanism that works here.
    pub fn load(cfg: &SensorConfig, interest: &Interest) -> Result<Sensors, Error> {
        let t0 = Instant::now();
        if !cfg.ring_bytes.is_power_of_two() || cfg.ring_bytes < 4096 {
            return Err(Error::Config {
                key: "ring_buffer_bytes",
                message: format!("{} is not a power of two >= 4096", cfg.ring_bytes),
            });
        }
        if !cfg.priority_ring_bytes.is_power_of_two() || cfg.priority_ring_bytes < 4096 {
            return Err(Error::Config {
                key: "priority_ring_buffer_bytes",
                message: format!("{} is not a power of two >= 4096", cfg.priority_ring_bytes),
            });
        }
        let (prio_interval, prio_burst) = prio_budget(cfg.priority_rate, cfg.priority_burst);
        ensure_tracefs()?;
        let memlock_note = raise_memlock();
        let (btf, btf_error) = match Btf::from_sys_fs() {
            Ok(b) => (Some(b), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let t_btf = t0.elapsed();
        let dedup = u8::from(cfg.dedup);
        let open_writes = u8::from(cfg.open_writes);
        let ebpf = EbpfLoader::new()
            .btf(btf.as_ref())
            // `pending` is task-local storage, which aya creates but does not wrap
            .allow_unsupported_maps()
            .override_global("cfg_self_tgid", &cfg.self_tgid, true)
            .override_global("cfg_wakeup_bytes", &cfg.wakeup_bytes, true)
            .override_global("cfg_dedup", &dedup, true)
            .override_global("cfg_open_writes", &open_writes, true)
            .override_global("cfg_prio_interval_ns", &prio_interval, true)
            .override_global("cfg_prio_burst_ns", &prio_burst, true)
            .map_max_entries(MAP_EVENTS, cfg.ring_bytes)
            .map_max_entries(MAP_PRIORITY, cfg.priority_ring_bytes)
            .load(object())
            .map_err(Error::Load)?;
        let stats_fd = if cfg.bpf_stats {
            aya::sys::enable_stats(aya::sys::Stats::RunTime).ok()
        } else {
            None
        };
        // Interest before attach, so nothing unwanted is ever emitted.
        let mut me = Sensors {
            ebpf,
            status: Vec::new(),
            _stats_fd: stats_fd,
            attach_time: Duration::ZERO,
            load_phases: Vec::new(),
            syscalls: Vec::new(),
            memlock_note,
            links: Vec::new(),
        };
        let t_obj = t0.elapsed();
        me.apply_interest(interest)?;
        {
            let mut calls: BpfHashMap<_, u32, u32> =
                BpfHashMap::try_from(me.ebpf.map_mut("compat_calls").ok_or(Error::Map {
                    name: "compat_calls",
                    source: aya::maps::MapError::InvalidName {
                        name: "compat_calls".into(),
                    },
                })?)
                .map_err(|source| Error::Map {
                    name: "compat_calls",
                    source,
                })?;
            for c in compat::CALLS {
                calls
                    .insert(c.nr, c.info(), 0)
                    .map_err(|source| Error::Map {
                        name: "compat_calls",
                        source,
                    })?;
            }
        }
        let t_interest = t0.elapsed();
        let bash = sensors::find_bash(cfg.bash_path.as_deref());
        let loaded = sensors::preload_parallel(
            &mut me.ebpf,
            btf.as_ref(),
            SENSORS.iter().filter(|s| !cfg.disabled.contains(s.name)),
            bash.is_some(),
            sensors::preload_threads(),
        );
        let t_verify = t0.elapsed();
        let mut att = sensors::Attacher {
            ebpf: &mut me.ebpf,
            btf,
            btf_error,
            bash,
            loaded,
            syscalls: Vec::new(),
            links: Vec::new(),
            raw_syscalls: false,
        };
        let mut status = Vec::new();
        for spec in SENSORS {
            if cfg.disabled.contains(spec.name) {
                status.push(SensorStatus {
                    name: spec.name,
                    state: SensorState::Disabled,
                });
                continue;
            }
            let mut failures: Vec<(String, String)> = Vec::new();
            let mut state = None;
            for m in spec.candidates {
                match att.try_mechanism(m, spec.kinds[0]) {
                    Ok(()) => {
                        state = Some(SensorState::Live {
                            mechanism: m.describe(),
                            fell_back_from: failures.clone(),
                        });
                        break;
                    }
                    Err(e) => failures.push((m.describe(), e)),
                }
            }
            status.push(SensorStatus {
                name: spec.name,
                state: state.unwrap_or(SensorState::Unavailable(failures)),
            });
        }
        let syscalls = std::mem::take(&mut att.syscalls);
        me.links = std::mem::take(&mut att.links);
        me.status = status;
        me.syscalls = syscalls;
        me.write_syscall_interest(interest)?;
        if !me.status.iter().any(SensorStatus::is_live) {
            let why: Vec<String> = me
                .status
                .iter()
                .filter_map(|s| match &s.state {
                    SensorState::Unavailable(f) => Some(format!(
                        "{}: {}",
                        s.name,
                        f.first().map(|x| x.1.as_str()).unwrap_or("?")
                    )),
                    _ => None,
                })
                .collect();
            return Err(Error::NothingAttached(why.join("; ")));
        }
        me.attach_time = t0.elapsed();
        me.load_phases = vec![
            ("kernel BTF", t_btf),
            ("object (relocation, maps)", t_obj.saturating_sub(t_btf)),
            ("interest maps", t_interest.saturating_sub(t_obj)),
            (
                "programs (verifier, in parallel)",
                t_verify.saturating_sub(t_interest),
            ),
            ("attach", me.attach_time.saturating_sub(t_verify)),
        ];
        // Parsing kernel BTF and relocating took tens of MiB of heap that
        // is free now; hand it back so the agent's steady-state RSS is its own.
        // SAFETY: malloc_trim only releases free glibc heap pages.
        unsafe { libc::malloc_trim(0) };
        Ok(me)
    }

    /// Outcome per sensor, in table order.
    pub fn status(&self) -> &[SensorStatus] {
        &self.status
    }

    fn map_err(name: &'static str) -> impl FnOnce(aya::maps::MapError) -> Error {
        move |source| Error::Map { name, source }
    }

    /// Pushes an interest declaration into the kernel maps. Safe to call
    /// while running (reloads).
    pub fn apply_interest(&mut self, i: &Interest) -> Result<(), Error> {
        {
            let mut kinds: Array<&mut MapData, u32> = Array::try_from(
                self.ebpf
                    .map_mut("interest_kinds")
                    .ok_or_else(|| Error::Map {
                        name: "interest_kinds",
                        source: aya::maps::MapError::InvalidName {
                            name: "interest_kinds".into(),
                        },
                    })?,
            )
            .map_err(Self::map_err("interest_kinds"))?;
            for k in 0..abi::KIND_SLOTS {
                let on = if !i.kinds.contains(&(k as u16)) {
                    0
                } else if i.bulk_kinds.contains(&(k as u16)) {
                    abi::INTEREST_ON
                } else {
                    abi::INTEREST_ON | abi::INTEREST_PRIO
                };
                kinds
                    .set(k, on, 0)
                    .map_err(Self::map_err("interest_kinds"))?;
            }
        }
        {
            let mut caps: Array<&mut MapData, u32> =
                Array::try_from(self.map_mut("interest_caps")?)
                    .map_err(Self::map_err("interest_caps"))?;
            for c in 0..64u32 {
                caps.set(c, u32::from(i.caps.contains(&(c as u8))), 0)
                    .map_err(Self::map_err("interest_caps"))?;
            }
        }
        {
            let mut paths: LpmTrie<&mut MapData, [u8; abi::LPM_MAX], u32> =
                LpmTrie::try_from(self.map_mut("interest_paths")?)
                    .map_err(Self::map_err("interest_paths"))?;
            let old: Vec<Key<[u8; abi::LPM_MAX]>> = paths.keys().filter_map(Result::ok).collect();
            for k in old {
                let _ = paths.remove(&k);
            }
            // A success-only prefix inside a report-everything one reports
            // everything too: the trie answers with the longest prefix, which
            // would otherwise hide the shorter prefix's failed opens.
            let (ok_any, ok_only): (Vec<String>, Vec<String>) =
                i.report_ok_paths.iter().cloned().partition(|p| {
                    i.report_paths
                        .iter()
                        .any(|r| p.as_bytes().starts_with(r.as_bytes()))
                });
            let report: Vec<String> = i.report_paths.iter().cloned().chain(ok_any).collect();
            for (list, val) in [
                (&ok_only, abi::PATH_REPORT_OK),
                (&report, abi::PATH_REPORT),
                (&i.ignore_paths, abi::PATH_IGNORE),
            ] {
                for p in list {
                    let bytes = p.as_bytes();
                    if bytes.is_empty() || bytes.len() > abi::LPM_MAX {
                        return Err(Error::Config {
                            key: "open paths",
                            message: format!("prefix {p:?} must be 1..={} bytes", abi::LPM_MAX),
                        });
                    }
                    let mut data = [0u8; abi::LPM_MAX];
                    data[..bytes.len()].copy_from_slice(bytes);
                    let k = Key::new((bytes.len() * 8) as u32, data);
                    paths
                        .insert(&k, val, 0)
                        .map_err(Self::map_err("interest_paths"))?;
                }
            }
        }
        // Failed connects unfiltered while the ports are rewritten.
        self.set_interest_cfg(abi::ICFG_FAILED_CONNECT, 0)?;
        {
            let mut ports: BpfHashMap<&mut MapData, u16, u32> =
                BpfHashMap::try_from(self.map_mut("interest_ports")?)
                    .map_err(Self::map_err("interest_ports"))?;
            let old: Vec<u16> = ports.keys().filter_map(Result::ok).collect();
            for p in old {
                let _ = ports.remove(&p);
            }
            for &p in &i.ignore_ports {
                ports
                    .insert(p, abi::PORT_IGNORE, 0)
                    .map_err(Self::map_err("interest_ports"))?;
            }
            for &p in i.failed_connect_ports.iter().flatten() {
                if !i.ignore_ports.contains(&p) {
                    ports
                        .insert(p, abi::PORT_FAILED, 0)
                        .map_err(Self::map_err("interest_ports"))?;
                }
            }
        }
        if i.failed_connect_ports.is_some() {
            self.set_interest_cfg(abi::ICFG_FAILED_CONNECT, 1)?;
        }
        {
            let mut st: Array<&mut MapData, u32> =
                Array::try_from(self.map_mut("interest_tcp_states")?)
                    .map_err(Self::map_err("interest_tcp_states"))?;
            let mask = i
                .tcp_states
                .iter()
                .filter(|&&n| n < 32)
                .fold(0u32, |m, &n| m | (1 << n));
            st.set(0, mask, 0)
                .map_err(Self::map_err("interest_tcp_states"))?;
        }
        if !self.syscalls.is_empty() {
            self.write_syscall_interest(i)?;
        }
        {
            let mut sc: Array<&mut MapData, u32> =
                Array::try_from(self.map_mut("interest_syscalls")?)
                    .map_err(Self::map_err("interest_syscalls"))?;
            let on = i.kinds.contains(&abi::kind::SYSCALL);
            for &(nr, _) in abi::RARE_CALLS {
                let v = if on && i.rare_calls.contains(&nr) {
                    u32::from(abi::kind::SYSCALL)
                } else {
                    0
                };
                sc.set(nr, v, 0)
                    .map_err(Self::map_err("interest_syscalls"))?;
            }
        }
        Ok(())
    }

    fn set_interest_cfg(&mut self, slot: u32, v: u32) -> Result<(), Error> {
        let mut icfg: Array<&mut MapData, u32> = Array::try_from(self.map_mut("interest_cfg")?)
            .map_err(Self::map_err("interest_cfg"))?;
        icfg.set(slot, v, 0).map_err(Self::map_err("interest_cfg"))
    }

    /// Stops every sensor from emitting (their kinds are switched off in
    /// the kernel), so a final drain sees everything that was emitted and
    /// the counters read afterwards match what was delivered.
    pub fn quiesce(&mut self) -> Result<(), Error> {
        let mut kinds: Array<&mut MapData, u32> = Array::try_from(self.map_mut("interest_kinds")?)
            .map_err(Self::map_err("interest_kinds"))?;
        for k in 0..abi::KIND_SLOTS {
            kinds
                .set(k, 0, 0)
                .map_err(Self::map_err("interest_kinds"))?;
        }
        Ok(())
    }

    fn write_syscall_interest(&mut self, i: &Interest) -> Result<(), Error> {
        let entries = self.syscalls.clone();
        let mut sc: Array<&mut MapData, u32> = Array::try_from(self.map_mut("interest_syscalls")?)
            .map_err(Self::map_err("interest_syscalls"))?;
        for (nr, val) in entries {
            let k = (val & 0xffff) as u16;
            let v = if i.kinds.contains(&k) { val } else { 0 };
            if let Ok(nr) = u32::try_from(nr) {
                sc.set(nr, v, 0)
                    .map_err(Self::map_err("interest_syscalls"))?;
            }
        }
        Ok(())
    }

    fn map_mut(&mut self, name: &'static str) -> Result<&mut aya::maps::Map, Error> {
        self.ebpf.map_mut(name).ok_or(Error::Map {
            name,
            source: aya::maps::MapError::InvalidName { name: name.into() },
        })
    }

    fn map(&self, name: &'static str) -> Result<&aya::maps::Map, Error> {
        self.ebpf.map(name).ok_or(Error::Map {
            name,
            source: aya::maps::MapError::InvalidName { name: name.into() },
        })
    }

    /// Takes the bulk ring buffer out (once) for a [`RingReader`].
    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>, Error> {
        let map = self.ebpf.take_map(MAP_EVENTS).ok_or(Error::Map {
            name: "events",
            source: aya::maps::MapError::InvalidName {
                name: MAP_EVENTS.into(),
            },
        })?;
        RingBuf::try_from(map).map_err(Self::map_err("events"))
    }

    /// Takes the priority ring buffer out (once) for a [`RingReader`].
    pub fn take_priority_ring(&mut self) -> Result<RingBuf<MapData>, Error> {
        let map = self.ebpf.take_map(MAP_PRIORITY).ok_or(Error::Map {
            name: "priority",
            source: aya::maps::MapError::InvalidName {
                name: MAP_PRIORITY.into(),
            },
        })?;
        RingBuf::try_from(map).map_err(Self::map_err("priority"))
    }

    /// Kernel counters per kind, summed over CPUs (only kinds with activity).
    pub fn counters(&self) -> Result<BTreeMap<u16, abi::Counters>, Error> {
        let arr: PerCpuArray<&MapData, abi::Counters> =
            PerCpuArray::try_from(self.map("counters")?).map_err(Self::map_err("counters"))?;
        let mut out = BTreeMap::new();
        for k in 0..abi::KIND_SLOTS {
            let vals = arr.get(&k, 0).map_err(Self::map_err("counters"))?;
            let mut sum = abi::Counters::default();
            for v in vals.iter() {
                sum.emitted += v.emitted;
                sum.dropped += v.dropped;
                sum.filtered += v.filtered;
                sum.deduped += v.deduped;
                sum.dropped_prio += v.dropped_prio;
                sum.demoted += v.demoted;
            }
            if sum != abi::Counters::default() {
                out.insert(k as u16, sum);
            }
        }
        Ok(out)
    }

    /// Run count and time of every loaded program (zero unless stats are on).
    pub fn program_stats(&self) -> Vec<ProgramStat> {
        program_stats_of(&self.ebpf)
    }

    /// Whether BPF run-time statistics are being collected (the agent holds
    /// a `BPF_ENABLE_STATS` descriptor).
    pub fn bpf_stats_enabled(&self) -> bool {
        self._stats_fd.is_some()
    }

    /// Turns BPF run-time statistics on (takes a `BPF_ENABLE_STATS`
    /// descriptor) or off (closes it). The switch is kernel-wide and costs
    /// two clock reads per run of every BPF program on the host while any
    /// descriptor is open, so the agent samples: on for a short window in
    /// every interval. Counters keep their values while off.
    pub fn set_bpf_stats(&mut self, on: bool) -> Result<(), String> {
        match (on, self._stats_fd.is_some()) {
            (true, false) => {
                self._stats_fd = Some(
                    aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| e.to_string())?,
                );
            }
            (false, true) => self._stats_fd = None,
            _ => {}
        }
        Ok(())
    }

    /// Holds `fd`, a `BPF_ENABLE_STATS` descriptor obtained elsewhere (from
    /// a helper that kept the capability the agent dropped), or closes the
    /// one held (`None`).
    pub fn set_bpf_stats_fd(&mut self, fd: Option<OwnedFd>) {
        self._stats_fd = fd;
    }

    /// Removes dedup entries of processes that are gone, returning
    /// (entries removed, repeats they had suppressed) so the exact
    /// per-key counts are accounted before the key disappears.
    pub fn sweep_dedup(&mut self, alive: impl Fn(u32) -> bool) -> Result<(u64, u64), Error> {
        use std::os::fd::{AsFd, AsRawFd};
        // One liveness check per process, not per key: a process that
        // opened many distinct files owns many keys.
        let mut checked: std::collections::HashMap<u32, bool> = std::collections::HashMap::new();
        let fd = match self.map("dedup")? {
            aya::maps::Map::HashMap(m) => m.fd().as_fd().as_raw_fd(),
            _ => {
                return Err(Self::map_err("dedup")(
                    aya::maps::MapError::InvalidMapType { map_type: 0 },
                ));
            }
        };
        // The whole map in a few BPF_MAP_LOOKUP_BATCH calls rather than one
        // get_next_key and one lookup syscall per key (65,536 keys when a
        // process opened that many distinct paths: most of the agent's CPU
        // under such a load went there); the per-key walk stays for a
        // kernel without batch operations.
        if let Some(all) = dedup_lookup_batch(fd) {
            let mut dead = Vec::new();
            let mut suppressed = 0;
            for (k, v) in all {
                if !*checked.entry(k.tgid).or_insert_with(|| alive(k.tgid)) {
                    suppressed += v.count;
                    dead.push(k);
                }
            }
            let n = dedup_delete_batch(fd, &dead);
            return Ok((n, suppressed));
        }
        let mut map: BpfHashMap<&mut MapData, abi::DedupKey, abi::DedupVal> =
            BpfHashMap::try_from(self.map_mut("dedup")?).map_err(Self::map_err("dedup"))?;
        let dead: Vec<abi::DedupKey> = map
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !*checked.entry(k.tgid).or_insert_with(|| alive(k.tgid)))
            .collect();
        let (mut n, mut suppressed) = (0, 0);
        for k in dead {
            if let Ok(v) = map.get(&k, 0) {
                suppressed += v.count;
            }
            if map.remove(&k).is_ok() {
                n += 1;
            }
        }
        Ok((n, suppressed))
    }

    /// Attaches the KVM exit counters (`kvm:kvm_exit`, `kvm_pio`,
    /// `kvm_mmio`, `kvm_userspace_exit`, `kvm_emulate_insn`,
    /// `kvm_hypercall`): counts per VMM process in `kvm_counts`, no event per
    /// exit. Returns, per tracepoint, whether it attached (and why not).
    pub fn attach_kvm(&mut self) -> Vec<(&'static str, Result<(), String>)> {
        const PROGS: &[(&str, &str)] = &[
            ("vg_kvm_exit", "kvm_exit"),
            ("vg_kvm_pio", "kvm_pio"),
            ("vg_kvm_mmio", "kvm_mmio"),
            ("vg_kvm_uexit", "kvm_userspace_exit"),
            ("vg_kvm_emulate", "kvm_emulate_insn"),
            ("vg_kvm_hypercall", "kvm_hypercall"),
        ];
        let mut out = Vec::new();
        for &(prog, tp) in PROGS {
            let r = (|| -> Result<(), String> {
                let p: &mut TracePoint = self
                    .ebpf
                    .program_mut(prog)
                    .ok_or("missing from object")?
                    .try_into()
                    .map_err(|e| sensors::explain(&e))?;
                if p.fd().is_err() {
                    p.load().map_err(|e| sensors::explain(&e))?;
                }
                let id = p.attach("kvm", tp).map_err(|e| sensors::explain(&e))?;
                self.links.push(sensors::LinkRef::Tp(prog, id));
                Ok(())
            })();
            out.push((tp, r));
        }
        out
    }

    /// KVM exit counts so far, per (VMM process, what, detail).
    pub fn kvm_counts(&self) -> Result<Vec<(abi::KvmKey, u64)>, Error> {
        let m: BpfHashMap<&MapData, abi::KvmKey, u64> =
            BpfHashMap::try_from(self.map("kvm_counts")?).map_err(Self::map_err("kvm_counts"))?;
        Ok(m.iter().filter_map(Result::ok).collect())
    }

    /// Forgets the KVM counts of processes that are gone.
    pub fn sweep_kvm(&mut self, alive: impl Fn(u32) -> bool) -> Result<(), Error> {
        let mut m: BpfHashMap<&mut MapData, abi::KvmKey, u64> =
            BpfHashMap::try_from(self.map_mut("kvm_counts")?)
                .map_err(Self::map_err("kvm_counts"))?;
        let dead: Vec<abi::KvmKey> = m
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !alive(k.tgid))
            .collect();
        for k in dead {
            let _ = m.remove(&k);
        }
        Ok(())
    }

    /// Loads the syscall-set learner (`tp_btf/sys_enter`) without
    /// attaching it: the engine checks at start that it can work here.
    pub fn load_syscall_learner(&mut self) -> Result<(), Error> {
        let btf = Btf::from_sys_fs().map_err(|e| Error::Program {
            prog: "vg_learn_sys",
            message: format!("kernel BTF: {e}"),
        })?;
        let p = self.learner_program()?;
        if p.fd().is_err() {
            p.load("sys_enter", &btf).map_err(|e| Error::Program {
                prog: "vg_learn_sys",
                message: sensors::explain(&e),
            })?;
        }
        // SAFETY: malloc_trim only releases free glibc heap pages (BTF parsing).
        unsafe { libc::malloc_trim(0) };
        Ok(())
    }

    fn learner_program(&mut self) -> Result<&mut aya::programs::BtfTracePoint, Error> {
        self.ebpf
            .program_mut("vg_learn_sys")
            .ok_or(Error::Program {
                prog: "vg_learn_sys",
                message: "missing from object".into(),
            })?
            .try_into()
            .map_err(|e| Error::Program {
                prog: "vg_learn_sys",
                message: sensors::explain(&e),
            })
    }

    /// Whether the syscall-set learner is attached.
    pub fn syscall_learning_attached(&self) -> bool {
        self.links
            .iter()
            .any(|l| matches!(l, sensors::LinkRef::Btf("vg_learn_sys", _)))
    }

    /// Attaches the (loaded) syscall-set learner: from now on every syscall
    /// of a task in `learn_tgid` sets its bit in the task's slot of
    /// `learn_sys`. It costs one hash lookup per syscall host-wide, so the
    /// engine attaches it only while some profile is learning.
    pub fn attach_syscall_learning(&mut self) -> Result<(), Error> {
        if self.syscall_learning_attached() {
            return Ok(());
        }
        let p = self.learner_program()?;
        let id = p.attach().map_err(|e| Error::Program {
            prog: "vg_learn_sys",
            message: sensors::explain(&e),
        })?;
        self.links.push(sensors::LinkRef::Btf("vg_learn_sys", id));
        Ok(())
    }

    /// Detaches the syscall-set learner (in the background: detaching from
    /// a syscall tracepoint waits for an RCU grace period).
    pub fn detach_syscall_learning(&mut self) {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.links)
            .into_iter()
            .partition(|l| matches!(l, sensors::LinkRef::Btf("vg_learn_sys", _)));
        self.links = rest;
        for l in mine {
            if let sensors::LinkRef::Btf(name, id) = l
                && let Some(link) = self
                    .ebpf
                    .program_mut(name)
                    .and_then(|p| <&mut aya::programs::BtfTracePoint>::try_from(p).ok())
                    .and_then(|p| p.take_link(id).ok())
            {
                std::thread::spawn(move || drop(link));
            }
        }
    }

    /// Kill on match decided in the kernel ([`KillPlan`]): SIGKILL at
    /// `sched_process_exec` for the exec conditions, at the exit of the
    /// open or connect for the others (`monitor`: only flagged "would
    /// kill"). `supervisor` (vigil's parent) is never killed. Replaces what
    /// was set before; an empty plan turns it off.
    pub fn set_kill_rules(
        &mut self,
        plan: &KillPlan,
        monitor: bool,
        supervisor: u32,
    ) -> Result<(), Error> {
        let act = if monitor {
            abi::kill::ACT_WOULD
        } else {
            abi::kill::ACT_KILL
        };
        for (map, prefixes, exact) in [
            ("kill_exec_paths", &plan.prefixes, &plan.exec_exact),
            ("kill_open_paths", &plan.open_prefixes, &plan.open_exact),
        ] {
            let entries = kill_path_entries(prefixes, exact, act)?;
            let mut paths: LpmTrie<&mut MapData, [u8; abi::LPM_MAX], u32> =
                LpmTrie::try_from(self.map_mut(map)?).map_err(Self::map_err(map))?;
            let old: Vec<Key<[u8; abi::LPM_MAX]>> = paths.keys().filter_map(Result::ok).collect();
            for k in old {
                let _ = paths.remove(&k);
            }
            for (p, v) in entries {
                let mut data = [0u8; abi::LPM_MAX];
                data[..p.len()].copy_from_slice(p);
                paths
                    .insert(&Key::new((p.len() * 8) as u32, data), v, 0)
                    .map_err(Self::map_err(map))?;
            }
        }
        {
            let mut ports: BpfHashMap<&mut MapData, u16, u32> =
                BpfHashMap::try_from(self.map_mut("kill_ports")?)
                    .map_err(Self::map_err("kill_ports"))?;
            let old: Vec<u16> = ports.keys().filter_map(Result::ok).collect();
            for k in old {
                let _ = ports.remove(&k);
            }
            for p in &plan.ports {
                ports
                    .insert(p, act, 0)
                    .map_err(Self::map_err("kill_ports"))?;
            }
        }
        let mut cfg: Array<&mut MapData, u32> =
            Array::try_from(self.map_mut("kill_cfg")?).map_err(Self::map_err("kill_cfg"))?;
        cfg.set(abi::kill::CFG_MEMFD, if plan.memfd { act } else { 0 }, 0)
            .map_err(Self::map_err("kill_cfg"))?;
        cfg.set(
            abi::kill::CFG_WWDIR,
            if plan.world_writable_dir { act } else { 0 },
            0,
        )
        .map_err(Self::map_err("kill_cfg"))?;
        let open = !(plan.open_prefixes.is_empty() && plan.open_exact.is_empty());
        cfg.set(abi::kill::CFG_OPEN, u32::from(open), 0)
            .map_err(Self::map_err("kill_cfg"))?;
        cfg.set(abi::kill::CFG_SUPERVISOR, supervisor, 0)
            .map_err(Self::map_err("kill_cfg"))
    }

    /// Learns the syscalls of processes that exec this executable into
    /// `slot` (`dev`/`ino` as the exec record reports them).
    pub fn learn_executable(&mut self, dev: u32, ino: u64, slot: u32) -> Result<(), Error> {
        let mut m: BpfHashMap<&mut MapData, abi::LearnKey, u32> =
            BpfHashMap::try_from(self.map_mut("learn_exe")?).map_err(Self::map_err("learn_exe"))?;
        m.insert(abi::LearnKey { ino, dev, _pad: 0 }, slot, 0)
            .map_err(Self::map_err("learn_exe"))
    }

    /// Stops learning for processes that exec this executable.
    pub fn forget_executable(&mut self, dev: u32, ino: u64) -> Result<(), Error> {
        let mut m: BpfHashMap<&mut MapData, abi::LearnKey, u32> =
            BpfHashMap::try_from(self.map_mut("learn_exe")?).map_err(Self::map_err("learn_exe"))?;
        match m.remove(&abi::LearnKey { ino, dev, _pad: 0 }) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(Error::Map {
                name: "learn_exe",
                source: e,
            }),
        }
    }

    /// Learns the syscalls of a running process (and, through fork, its
    /// children) into `slot`.
    pub fn learn_process(&mut self, tgid: u32, slot: u32) -> Result<(), Error> {
        let mut m: BpfHashMap<&mut MapData, u32, u32> =
            BpfHashMap::try_from(self.map_mut("learn_tgid")?)
                .map_err(Self::map_err("learn_tgid"))?;
        m.insert(tgid, slot, 0).map_err(Self::map_err("learn_tgid"))
    }

    /// The syscalls seen in `slot` so far (bit n = syscall number n).
    pub fn learned_syscalls(&self, slot: u32) -> Result<[u64; 8], Error> {
        let a: Array<&MapData, abi::SysSet> =
            Array::try_from(self.map("learn_sys")?).map_err(Self::map_err("learn_sys"))?;
        Ok(a.get(&slot, 0).map_err(Self::map_err("learn_sys"))?.w)
    }

    /// Attaches the benchmark's bare counting program to `sys_enter_<syscall>`.
    pub fn attach_bench_counter(&mut self, syscall: &str) -> Result<(), Error> {
        let prog: &mut TracePoint = self
            .ebpf
            .program_mut("vg_bench_count")
            .ok_or(Error::Program {
                prog: "vg_bench_count",
                message: "missing from object".into(),
            })?
            .try_into()
            .map_err(|e| Error::Program {
                prog: "vg_bench_count",
                message: sensors::explain(&e),
            })?;
        if prog.fd().is_err() {
            prog.load().map_err(|e| Error::Program {
                prog: "vg_bench_count",
                message: sensors::explain(&e),
            })?;
        }
        prog.attach("syscalls", &format!("sys_enter_{syscall}"))
            .map_err(|e| Error::Program {
                prog: "vg_bench_count",
                message: sensors::explain(&e),
            })?;
        Ok(())
    }

    /// Hits counted by the benchmark program.
    pub fn bench_hits(&self) -> Result<u64, Error> {
        let arr: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.map("bench_hits")?).map_err(Self::map_err("bench_hits"))?;
        Ok(arr
            .get(&0, 0)
            .map_err(Self::map_err("bench_hits"))?
            .iter()
            .sum())
    }

    /// Loads only the object (no sensors attached), for the benchmark's
    /// counting floor.
    pub fn load_bare(cfg: &SensorConfig) -> Result<Sensors, Error> {
        ensure_tracefs()?;
        let memlock_note = raise_memlock();
        let ebpf = EbpfLoader::new()
            .allow_unsupported_maps()
            .override_global("cfg_self_tgid", &cfg.self_tgid, true)
            .map_max_entries(MAP_EVENTS, cfg.ring_bytes)
            .map_max_entries(MAP_PRIORITY, cfg.priority_ring_bytes)
            .load(object())
            .map_err(Error::Load)?;
        Ok(Sensors {
            ebpf,
            status: Vec::new(),
            _stats_fd: None,
            attach_time: Duration::ZERO,
            load_phases: Vec::new(),
            syscalls: Vec::new(),
            memlock_note,
            links: Vec::new(),
        })
    }
}

/// The kill conditions the kernel decides (`action: kill` rules compiled
/// into the sensor's kill maps by [`Sensors::set_kill_rules`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KillPlan {
    /// Exec of an executable below one of these path prefixes.
    pub prefixes: Vec<Vec<u8>>,
    /// Exec of exactly one of these executables.
    pub exec_exact: Vec<Vec<u8>>,
    /// Exec of a memfd.
    pub memfd: bool,
    /// Exec of an executable whose directory is world-writable.
    pub world_writable_dir: bool,
    /// Successful open of a file below one of these path prefixes.
    pub open_prefixes: Vec<Vec<u8>>,
    /// Successful open of exactly one of these files.
    pub open_exact: Vec<Vec<u8>>,
    /// Connect to one of these remote ports.
    pub ports: Vec<u16>,
}

impl KillPlan {
    /// Whether nothing is decided in the kernel.
    pub fn is_empty(&self) -> bool {
        *self == KillPlan::default()
    }
}

/// The entries of a kill path trie: prefixes with `act`, exact paths with
/// `act | EXACT | len << 16`. An exact path below a prefix is left out: the
/// longest match must never be an exact entry hiding a shorter prefix that
/// also matches.
pub fn kill_path_entries<'a>(
    prefixes: &'a [Vec<u8>],
    exact: &'a [Vec<u8>],
    act: u32,
) -> Result<Vec<(&'a [u8], u32)>, Error> {
    let mut out: Vec<(&[u8], u32)> = Vec::new();
    for p in prefixes.iter().chain(exact) {
        if p.is_empty() || p.len() > abi::LPM_MAX {
            return Err(Error::Config {
                key: "kill paths",
                message: format!(
                    "path {:?} must be 1..={} bytes",
                    String::from_utf8_lossy(p),
                    abi::LPM_MAX
                ),
            });
        }
    }
    for p in prefixes {
        out.push((p, act));
    }
    for e in exact {
        if prefixes.iter().any(|p| e.starts_with(p)) {
            continue;
        }
        out.push((e, act | abi::kill::EXACT | ((e.len() as u32) << 16)));
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

#[cfg(test)]
mod kill_tests {
    use super::*;

    #[test]
    fn exact_kill_paths_carry_their_length_and_yield_to_prefixes() {
        let prefixes = vec![b"/tmp/".to_vec()];
        let exact = vec![b"/etc/shadow".to_vec(), b"/tmp/x".to_vec()];
        let e = kill_path_entries(&prefixes, &exact, abi::kill::ACT_KILL).unwrap();
        assert_eq!(
            e,
            vec![
                (
                    &b"/etc/shadow"[..],
                    abi::kill::ACT_KILL | abi::kill::EXACT | (11 << 16)
                ),
                (&b"/tmp/"[..], abi::kill::ACT_KILL),
            ]
        );
        assert!(kill_path_entries(&[Vec::new()], &[], 1).is_err());
        assert!(kill_path_entries(&[], &[vec![b'a'; abi::LPM_MAX + 1]], 1).is_err());
    }
}

/// `union bpf_attr` for the BPF_MAP_*_BATCH commands (the `batch` member).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// One `bpf(cmd, attr)` call; Err is errno.
fn bpf_batch(cmd: libc::c_long, attr: &mut BatchAttr) -> Result<(), i32> {
    // SAFETY: attr is a valid, initialised bpf_attr prefix of the size
    // passed; the buffers it points to outlive the call and hold `count`
    // keys/values of the map's sizes (checked by the callers).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BatchAttr,
            std::mem::size_of::<BatchAttr>() as u32,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(())
    }
}

/// Every (key, value) of the dedup hash map `fd`, in batches of 4,096;
/// None when the kernel refuses batch lookups (then the caller walks the
/// keys one by one).
fn dedup_lookup_batch(fd: i32) -> Option<Vec<(abi::DedupKey, abi::DedupVal)>> {
    const N: usize = 4096;
    let mut keys = vec![abi::DedupKey::default(); N];
    let mut vals = vec![abi::DedupVal::default(); N];
    // the hash map's batch token is a bucket index (u32); room for more
    let (mut tok_in, mut tok_out) = ([0u64; 4], [0u64; 4]);
    let mut out = Vec::new();
    let mut first = true;
    loop {
        let mut a = BatchAttr {
            in_batch: if first { 0 } else { tok_in.as_ptr() as u64 },
            out_batch: tok_out.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: vals.as_mut_ptr() as u64,
            count: N as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        let r = bpf_batch(BPF_MAP_LOOKUP_BATCH, &mut a);
        let got = (a.count as usize).min(N);
        match r {
            Ok(()) => {}
            // ENOENT: the end of the map (with the last `count` entries)
            Err(libc::ENOENT) => {
                out.extend(keys[..got].iter().copied().zip(vals[..got].iter().copied()));
                return Some(out);
            }
            // not supported (or a bucket larger than N): the slow walk
            Err(_) => return None,
        }
        out.extend(keys[..got].iter().copied().zip(vals[..got].iter().copied()));
        tok_in = tok_out;
        first = false;
    }
}

/// Deletes `dead` from the dedup hash map `fd` (BPF_MAP_DELETE_BATCH;
/// a key the kernel could not delete, because a program removed it
/// meanwhile, is skipped). Returns how many were deleted.
fn dedup_delete_batch(fd: i32, dead: &[abi::DedupKey]) -> u64 {
    let mut n = 0u64;
    let mut rest = dead;
    while !rest.is_empty() {
        let take = rest.len().min(4096);
        let mut a = BatchAttr {
            keys: rest.as_ptr() as u64,
            count: take as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        let r = bpf_batch(BPF_MAP_DELETE_BATCH, &mut a);
        let done = (a.count as usize).min(take);
        n += done as u64;
        rest = &rest[done..];
        if r.is_err() && !rest.is_empty() {
            // the key at `done` failed (gone already): skip it
            rest = &rest[1..];
        }
    }
    n
}
