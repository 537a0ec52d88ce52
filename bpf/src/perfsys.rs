//! System performance sensors (`bpf/c/perfsys.bpf.c`), loaded as their own
//! object. Each counts into BPF maps the engine reads every perf interval;
//! none writes an event per occurrence.
//!
//! - `syscount`: failing syscalls per (process, syscall, errno) from the raw
//!   `sys_exit` tracepoint (the BCC `syscount` / `eperm` ideas) and, in
//!   [`SyscallMode::All`], every syscall per process.
//! - `tcpretrans` / `tcpreset`: TCP retransmits and resets sent/received,
//!   per connection, with the owning process where it is known.
//! - `biolatency`: block I/O device time (issue to completion) as log2
//!   histograms per (device, operation, cgroup v2 of the submitting task).
//!
//! [`Perfsys::status`] says what attached and how.

use crate::sensors::{SensorState, SensorStatus, explain};
use crate::{Error, ProgramStat, ensure_tracefs, raise_memlock};
use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::{RawTracePoint, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader};

/// The compiled object, embedded.
pub fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/perfsys.bpf.o"))
}

/// What the syscall sensor counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyscallMode {
    /// Not attached (the default: see docs/config.md for the cost).
    #[default]
    Off,
    /// Failing syscalls only, per (process, syscall, errno). A successful
    /// syscall costs the program entry and one compare.
    Errors,
    /// Failing syscalls, plus every syscall counted per process (one
    /// per-CPU hash update per syscall).
    All,
}

impl SyscallMode {
    /// The `cfg_syscalls` value (`SC_*` in perfsys_abi.h).
    fn raw(self) -> u8 {
        match self {
            SyscallMode::Off => 0,
            SyscallMode::Errors => 1,
            SyscallMode::All => 2,
        }
    }

    /// The configuration word: `off`, `errors` or `all`.
    pub fn name(self) -> &'static str {
        match self {
            SyscallMode::Off => "off",
            SyscallMode::Errors => "errors",
            SyscallMode::All => "all",
        }
    }
}

/// Calls and failures of one process (`struct ps_sc_proc`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScProc {
    /// Syscalls made.
    pub calls: u64,
    /// Of which failed (returned -1..-4095).
    pub errors: u64,
}
const _: () = assert!(size_of::<ScProc>() == 16);

/// A failing syscall (`struct ps_sc_err_key`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ScErrKey {
    /// Process (thread group) id.
    pub tgid: u32,
    /// Syscall number (ia32 numbering when `compat` is 1).
    pub nr: u16,
    /// errno (positive). 512..=516 are the kernel's restart codes, seen by
    /// the tracepoint before signal handling turns them into EINTR or a
    /// restart.
    pub err: u16,
    /// 1: a 32-bit (ia32) syscall.
    pub compat: u32,
    /// Padding (zero).
    pub _pad: u32,
}
const _: () = assert!(size_of::<ScErrKey>() == 16);

/// `kind` of a [`TcpKey`]: a retransmitted segment.
pub const TCP_RETRANS: u16 = 0;
/// `kind` of a [`TcpKey`]: a reset this host sent.
pub const TCP_RESET_SENT: u16 = 1;
/// `kind` of a [`TcpKey`]: a reset this host received.
pub const TCP_RESET_RECV: u16 = 2;

/// One connection and event kind (`struct ps_tcp_key`), seen locally.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TcpKey {
    /// Local address (IPv4 in the first 4 bytes).
    pub saddr: [u8; 16],
    /// Remote address.
    pub daddr: [u8; 16],
    /// Local port.
    pub sport: u16,
    /// Remote port.
    pub dport: u16,
    /// `AF_INET` (2) or `AF_INET6` (10).
    pub family: u16,
    /// [`TCP_RETRANS`], [`TCP_RESET_SENT`] or [`TCP_RESET_RECV`].
    pub kind: u16,
    /// The process that connected or listened on the socket, 0 if unknown.
    pub tgid: u32,
    /// Padding (zero).
    pub _pad: u32,
}
const _: () = assert!(size_of::<TcpKey>() == 48);

impl TcpKey {
    /// Local and remote address as `IpAddr`.
    pub fn addrs(&self) -> (std::net::IpAddr, std::net::IpAddr) {
        let conv = |a: &[u8; 16]| -> std::net::IpAddr {
            if self.family == 2 {
                std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).into()
            } else {
                std::net::Ipv6Addr::from(*a).into()
            }
        };
        (conv(&self.saddr), conv(&self.daddr))
    }
}

/// Count and last state of a [`TcpKey`] (`struct ps_tcp_val`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpVal {
    /// Occurrences.
    pub count: u64,
    /// Boot-clock time of the last one.
    pub last_ns: u64,
    /// Owner's command name (NUL-padded) when known.
    pub comm: [u8; 16],
    /// TCP state at the last one (1 ESTABLISHED ... 12; 0 unknown).
    pub state: i32,
    /// Retransmits: result of the last send (0 sent, negative errno).
    pub err: i32,
}
const _: () = assert!(size_of::<TcpVal>() == 40);

impl TcpVal {
    /// The owner's command name, if known.
    pub fn comm(&self) -> Option<String> {
        let end = self.comm.iter().position(|&b| b == 0).unwrap_or(16);
        (end > 0).then(|| String::from_utf8_lossy(&self.comm[..end]).into_owned())
    }
}

/// Histogram slots: slot 0 counts under 1 us, slot k >= 1 `[2^(k-1), 2^k)`
/// us, the last slot also everything longer.
pub const BIO_SLOTS: usize = 32;

/// Key of a block I/O histogram (`struct ps_bio_key`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BioKey {
    /// cgroup v2 id of the task that submitted the request.
    pub cgroup_id: u64,
    /// Kernel dev_t (`major << 20 | minor`) of the partition or disk.
    pub dev: u32,
    /// `REQ_OP_*`: 0 read, 1 write, 2 flush, 3 discard, 9 write zeroes...
    pub op: u32,
}
const _: () = assert!(size_of::<BioKey>() == 16);

impl BioKey {
    /// (major, minor) of the device.
    pub fn major_minor(&self) -> (u32, u32) {
        (self.dev >> 20, self.dev & 0xfffff)
    }
}

/// Name of a `REQ_OP_*` value.
pub fn op_name(op: u32) -> &'static str {
    match op {
        0 => "read",
        1 => "write",
        2 => "flush",
        3 => "discard",
        5 => "secure-erase",
        7 => "zone-append",
        9 => "write-zeroes",
        _ => "other",
    }
}

/// A block I/O latency histogram (`struct ps_bio_hist`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BioHist {
    /// Requests per log2-microsecond slot of device time.
    pub slots: [u64; BIO_SLOTS],
    /// Exact sum of device times in nanoseconds.
    pub sum_ns: u64,
    /// Sum of queueing times (submit to issue) in nanoseconds.
    pub queue_ns: u64,
    /// Bytes completed.
    pub bytes: u64,
}
const _: () = assert!(size_of::<BioHist>() == 8 * (BIO_SLOTS + 3));

impl Default for BioHist {
    fn default() -> Self {
        BioHist {
            slots: [0; BIO_SLOTS],
            sum_ns: 0,
            queue_ns: 0,
            bytes: 0,
        }
    }
}

// SAFETY: plain #[repr(C)] integers and byte arrays, every bit pattern
// valid, explicit padding fields (no implicit padding bytes).
unsafe impl aya::Pod for ScProc {}
// SAFETY: as above.
unsafe impl aya::Pod for ScErrKey {}
// SAFETY: as above.
unsafe impl aya::Pod for TcpKey {}
// SAFETY: as above.
unsafe impl aya::Pod for TcpVal {}
// SAFETY: as above.
unsafe impl aya::Pod for BioKey {}
// SAFETY: as above.
unsafe impl aya::Pod for BioHist {}

impl crate::PerCpuSum for ScProc {
    fn add(&mut self, o: &Self) {
        self.calls = self.calls.wrapping_add(o.calls);
        self.errors = self.errors.wrapping_add(o.errors);
    }
}

impl crate::PerCpuSum for BioHist {
    fn add(&mut self, o: &Self) {
        for (s, v) in self.slots.iter_mut().zip(o.slots.iter()) {
            *s = s.wrapping_add(*v);
        }
        self.sum_ns = self.sum_ns.wrapping_add(o.sum_ns);
        self.queue_ns = self.queue_ns.wrapping_add(o.queue_ns);
        self.bytes = self.bytes.wrapping_add(o.bytes);
    }
}

/// Kernel-side counters of the object (`ps_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerfsysStats {
    /// Syscall counts lost: map update failed.
    pub sc_full: u64,
    /// TCP events lost: map update failed.
    pub tcp_full: u64,
    /// Block completions lost: histogram map full.
    pub bio_full: u64,
    /// Block completions without a recorded issue (issued before attach).
    pub bio_miss: u64,
}

/// What to attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerfsysConfig {
    /// Syscall counting.
    pub syscalls: SyscallMode,
    /// TCP retransmits and resets.
    pub tcp: bool,
    /// Block I/O latency.
    pub bio: bool,
    /// Attach the syscall counter with raw_tp instead of tp_btf (tests of
    /// the fallback).
    pub raw_tp_only: bool,
}

impl Default for PerfsysConfig {
    fn default() -> Self {
        PerfsysConfig {
            syscalls: SyscallMode::Off,
            tcp: true,
            bio: true,
            raw_tp_only: false,
        }
    }
}

/// Names of the sensors as `vigil probe` shows them.
pub const SENSOR_NAMES: [&str; 4] = ["syscount", "tcpretrans", "tcpreset", "biolatency"];

/// The loaded sensors. Dropping it detaches them.
pub struct Perfsys {
    ebpf: Ebpf,
    status: Vec<SensorStatus>,
    mode: SyscallMode,
}

fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> Error {
    move |source| Error::Map { name, source }
}

fn no_map(name: &'static str) -> Error {
    Error::Map {
        name,
        source: aya::maps::MapError::InvalidName { name: name.into() },
    }
}

impl Perfsys {
    /// Loads the object and attaches what `cfg` asks for, each program with
    /// the best mechanism that works here. Errors only when the object
    /// itself cannot be loaded; sensors that cannot attach are reported in
    /// [`Perfsys::status`].
    pub fn load(cfg: &PerfsysConfig) -> Result<Perfsys, Error> {
        ensure_tracefs()?;
        let _ = raise_memlock();
        let btf = Btf::from_sys_fs().ok();
        let mode = cfg.syscalls.raw();
        let ebpf = EbpfLoader::new()
            .btf(btf.as_ref())
            .override_global("cfg_syscalls", &mode, true)
            .load(object())
            .map_err(Error::Load)?;
        let mut me = Perfsys {
            ebpf,
            status: Vec::new(),
            mode: cfg.syscalls,
        };
        let syscount = if cfg.syscalls == SyscallMode::Off {
            SensorState::Disabled
        } else {
            let btf = if cfg.raw_tp_only { None } else { btf.as_ref() };
            match me.attach_sys_exit(btf) {
                Ok(m) => SensorState::Live {
                    mechanism: format!(
                        "{m} ({} mode: {})",
                        cfg.syscalls.name(),
                        if cfg.syscalls == SyscallMode::All {
                            "every syscall per process, failures per process, syscall and errno"
                        } else {
                            "failures per process, syscall and errno"
                        }
                    ),
                    fell_back_from: Vec::new(),
                },
                Err(why) => SensorState::Unavailable(why),
            }
        };
        let (retrans, reset) = if cfg.tcp {
            let owner = me.attach_tp("vg_ps_sk_state", "sock", "inet_sock_set_state");
            let rt = me.attach_tp("vg_ps_retrans", "tcp", "tcp_retransmit_skb");
            let rs = me.attach_tp("vg_ps_rst_sent", "tcp", "tcp_send_reset");
            let rr = me.attach_tp("vg_ps_rst_recv", "tcp", "tcp_receive_reset");
            let owner_note = match &owner {
                Ok(()) => "owner from sock:inet_sock_set_state".to_string(),
                Err(e) => format!("owner unknown: sock:inet_sock_set_state: {e}"),
            };
            let retrans = match rt {
                Ok(()) => SensorState::Live {
                    mechanism: format!(
                        "tracepoint/tcp/tcp_retransmit_skb (counts per connection; {owner_note})"
                    ),
                    fell_back_from: Vec::new(),
                },
                Err(e) => {
                    SensorState::Unavailable(vec![("tracepoint/tcp/tcp_retransmit_skb".into(), e)])
                }
            };
            let reset = match (rs, rr) {
                (Ok(()), Ok(())) => SensorState::Live {
                    mechanism: format!(
                        "tracepoint/tcp/tcp_send_reset, tcp_receive_reset (counts per connection; {owner_note})"
                    ),
                    fell_back_from: Vec::new(),
                },
                (a, b) => {
                    let mut why = Vec::new();
                    if let Err(e) = a {
                        why.push(("tracepoint/tcp/tcp_send_reset".into(), e));
                    }
                    if let Err(e) = b {
                        why.push(("tracepoint/tcp/tcp_receive_reset".into(), e));
                    }
                    SensorState::Unavailable(why)
                }
            };
            (retrans, reset)
        } else {
            (SensorState::Disabled, SensorState::Disabled)
        };
        let bio = if !cfg.bio {
            SensorState::Disabled
        } else {
            match btf.as_ref() {
                None => SensorState::Unavailable(vec![(
                    "tp_btf/block_rq_issue".into(),
                    "no kernel BTF (/sys/kernel/btf/vmlinux)".into(),
                )]),
                Some(b) => {
                    let mut why = Vec::new();
                    for (prog, tp) in [
                        ("vg_ps_bio_done", "block_rq_complete"),
                        ("vg_ps_bio_issue", "block_rq_issue"),
                    ] {
                        if let Err(e) = me.attach_btf(prog, tp, b) {
                            why.push((format!("tp_btf/{tp}"), e));
                        }
                    }
                    if why.is_empty() {
                        // Optional: without it the cgroup is the issuing
                        // task's, queueing time unknown.
                        let start = match me.attach_btf("vg_ps_bio_start", "block_io_start", b) {
                            Ok(()) => "cgroup of the submitting task from tp_btf/block_io_start"
                                .to_string(),
                            Err(e) => {
                                format!("cgroup of the issuing task (tp_btf/block_io_start: {e})")
                            }
                        };
                        SensorState::Live {
                            mechanism: format!(
                                "tp_btf/block_rq_issue, block_rq_complete (log2 histograms per device, op and cgroup; {start})"
                            ),
                            fell_back_from: Vec::new(),
                        }
                    } else {
                        SensorState::Unavailable(why)
                    }
                }
            }
        };
        me.status = vec![
            SensorStatus {
                name: SENSOR_NAMES[0],
                state: syscount,
            },
            SensorStatus {
                name: SENSOR_NAMES[1],
                state: retrans,
            },
            SensorStatus {
                name: SENSOR_NAMES[2],
                state: reset,
            },
            SensorStatus {
                name: SENSOR_NAMES[3],
                state: bio,
            },
        ];
        Ok(me)
    }

    fn attach_btf(&mut self, prog: &'static str, tp: &str, btf: &Btf) -> Result<(), String> {
        crate::attach_tp_btf(&mut self.ebpf, prog, tp, btf)
    }

    fn attach_tp(&mut self, prog: &'static str, cat: &str, name: &str) -> Result<(), String> {
        let p: &mut TracePoint = self
            .ebpf
            .program_mut(prog)
            .ok_or("missing from object")?
            .try_into()
            .map_err(|e| explain(&e))?;
        p.load().map_err(|e| format!("load: {}", explain(&e)))?;
        p.attach(cat, name)
            .map_err(|e| format!("attach: {}", explain(&e)))?;
        Ok(())
    }

    /// tp_btf, then raw_tp. Ok(mechanism) or every (mechanism, reason).
    fn attach_sys_exit(&mut self, btf: Option<&Btf>) -> Result<String, Vec<(String, String)>> {
        let mut fails = Vec::new();
        match btf {
            Some(b) => match self.attach_btf("vg_ps_sys_exit", "sys_exit", b) {
                Ok(()) => return Ok("tp_btf/sys_exit".into()),
                Err(e) => fails.push(("tp_btf/sys_exit".to_string(), e)),
            },
            None => fails.push((
                "tp_btf/sys_exit".to_string(),
                "not tried: no kernel BTF or raw_tp_only".to_string(),
            )),
        }
        let r = (|| -> Result<(), String> {
            let p: &mut RawTracePoint = self
                .ebpf
                .program_mut("vg_ps_sys_exit_raw")
                .ok_or("missing from object")?
                .try_into()
                .map_err(|e| explain(&e))?;
            p.load().map_err(|e| format!("load: {}", explain(&e)))?;
            p.attach("sys_exit")
                .map_err(|e| format!("attach: {}", explain(&e)))?;
            Ok(())
        })();
        match r {
            Ok(()) => Ok(format!(
                "raw_tp/sys_exit (not {}: {})",
                fails[0].0, fails[0].1
            )),
            Err(e) => {
                fails.push(("raw_tp/sys_exit".to_string(), e));
                Err(fails)
            }
        }
    }

    /// What attached, per sensor ([`SENSOR_NAMES`]).
    pub fn status(&self) -> &[SensorStatus] {
        &self.status
    }

    /// Whether a sensor is live.
    pub fn is_live(&self, name: &str) -> bool {
        self.status.iter().any(|s| s.name == name && s.is_live())
    }

    /// The syscall mode loaded.
    pub fn syscall_mode(&self) -> SyscallMode {
        self.mode
    }

    fn map(&self, name: &'static str) -> Result<&aya::maps::Map, Error> {
        self.ebpf.map(name).ok_or_else(|| no_map(name))
    }

    /// Syscalls per process so far (cumulative; [`SyscallMode::All`] only),
    /// summed over CPUs.
    pub fn syscall_procs(&self) -> Result<Vec<(u32, ScProc)>, Error> {
        crate::read_per_cpu(&self.ebpf, "sc_proc")
    }

    /// Failing syscalls so far (cumulative), summed over CPUs.
    pub fn syscall_errors(&self) -> Result<Vec<(ScErrKey, u64)>, Error> {
        crate::read_per_cpu(&self.ebpf, "sc_err")
    }

    /// Forgets the syscall counters of these processes (exited).
    pub fn forget_processes(&mut self, tgids: &[u32]) -> Result<(), Error> {
        if tgids.is_empty() {
            return Ok(());
        }
        let dead: std::collections::HashSet<u32> = tgids.iter().copied().collect();
        let errs: Vec<ScErrKey> = self
            .syscall_errors()?
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| dead.contains(&k.tgid))
            .collect();
        crate::remove_per_cpu::<ScErrKey, u64>(&mut self.ebpf, "sc_err", &errs)?;
        crate::remove_per_cpu::<u32, ScProc>(&mut self.ebpf, "sc_proc", tgids)
    }

    /// TCP retransmits and resets so far (cumulative), per connection and kind.
    pub fn tcp_events(&self) -> Result<Vec<(TcpKey, TcpVal)>, Error> {
        let m: BpfHashMap<&MapData, TcpKey, TcpVal> =
            BpfHashMap::try_from(self.map("tcp_counts")?).map_err(map_err("tcp_counts"))?;
        let mut out: Vec<(TcpKey, TcpVal)> = m.iter().filter_map(Result::ok).collect();
        out.sort_by_key(|(k, _)| *k);
        Ok(out)
    }

    /// Forgets these TCP entries (idle for long).
    pub fn forget_tcp(&mut self, keys: &[TcpKey]) -> Result<(), Error> {
        let m = self
            .ebpf
            .map_mut("tcp_counts")
            .ok_or_else(|| no_map("tcp_counts"))?;
        let mut m: BpfHashMap<&mut MapData, TcpKey, TcpVal> =
            BpfHashMap::try_from(m).map_err(map_err("tcp_counts"))?;
        for k in keys {
            let _ = m.remove(k);
        }
        Ok(())
    }

    /// Block I/O histograms so far (cumulative), summed over CPUs.
    pub fn bio(&self) -> Result<Vec<(BioKey, BioHist)>, Error> {
        crate::read_per_cpu(&self.ebpf, "bio_hist")
    }

    /// Forgets these block I/O histograms (idle for long).
    pub fn forget_bio(&mut self, keys: &[BioKey]) -> Result<(), Error> {
        crate::remove_per_cpu::<BioKey, BioHist>(&mut self.ebpf, "bio_hist", keys)
    }

    /// The object's own counters.
    pub fn stats(&self) -> Result<PerfsysStats, Error> {
        self.map("ps_stats")?;
        let get = |i: u32| crate::stat_slot(&self.ebpf, "ps_stats", i);
        Ok(PerfsysStats {
            sc_full: get(0),
            tcp_full: get(1),
            bio_full: get(2),
            bio_miss: get(3),
        })
    }

    /// Run count and time of this object's programs (zero unless bpf_stats
    /// is on).
    pub fn program_stats(&self) -> Vec<ProgramStat> {
        crate::program_stats_of(&self.ebpf)
    }

    /// Loads the object with only the benchmark's counting program on
    /// `sys_exit` (the floor of any per-syscall sensor; `vigil-bench
    /// --syscalls`).
    pub fn load_floor() -> Result<Perfsys, Error> {
        let ebpf = crate::load_floor(object(), &[("vg_ps_sys_floor", "sys_exit")])?;
        Ok(Perfsys {
            ebpf,
            status: Vec::new(),
            mode: SyscallMode::Off,
        })
    }

    /// Runs of the counting floor program ([`Perfsys::load_floor`]).
    pub fn floor_runs(&self) -> u64 {
        crate::stat_slot(&self.ebpf, "ps_stats", 4)
    }
}

/// Symbolic name of an errno as the syscall tracepoint sees it (x86_64
/// numbering; 512..=516 are kernel restart codes).
pub fn errno_name(e: u16) -> &'static str {
    const NAMES: [&str; 134] = [
        "0",
        "EPERM",
        "ENOENT",
        "ESRCH",
        "EINTR",
        "EIO",
        "ENXIO",
        "E2BIG",
        "ENOEXEC",
        "EBADF",
        "ECHILD",
        "EAGAIN",
        "ENOMEM",
        "EACCES",
        "EFAULT",
        "ENOTBLK",
        "EBUSY",
        "EEXIST",
        "EXDEV",
        "ENODEV",
        "ENOTDIR",
        "EISDIR",
        "EINVAL",
        "ENFILE",
        "EMFILE",
        "ENOTTY",
        "ETXTBSY",
        "EFBIG",
        "ENOSPC",
        "ESPIPE",
        "EROFS",
        "EMLINK",
        "EPIPE",
        "EDOM",
        "ERANGE",
        "EDEADLK",
        "ENAMETOOLONG",
        "ENOLCK",
        "ENOSYS",
        "ENOTEMPTY",
        "ELOOP",
        "E41",
        "ENOMSG",
        "EIDRM",
        "ECHRNG",
        "EL2NSYNC",
        "EL3HLT",
        "EL3RST",
        "ELNRNG",
        "EUNATCH",
        "ENOCSI",
        "EL2HLT",
        "EBADE",
        "EBADR",
        "EXFULL",
        "ENOANO",
        "EBADRQC",
        "EBADSLT",
        "E58",
        "EBFONT",
        "ENOSTR",
        "ENODATA",
        "ETIME",
        "ENOSR",
        "ENONET",
        "ENOPKG",
        "EREMOTE",
        "ENOLINK",
        "EADV",
        "ESRMNT",
        "ECOMM",
        "EPROTO",
        "EMULTIHOP",
        "EDOTDOT",
        "EBADMSG",
        "EOVERFLOW",
        "ENOTUNIQ",
        "EBADFD",
        "EREMCHG",
        "ELIBACC",
        "ELIBBAD",
        "ELIBSCN",
        "ELIBMAX",
        "ELIBEXEC",
        "EILSEQ",
        "ERESTART",
        "ESTRPIPE",
        "EUSERS",
        "ENOTSOCK",
        "EDESTADDRREQ",
        "EMSGSIZE",
        "EPROTOTYPE",
        "ENOPROTOOPT",
        "EPROTONOSUPPORT",
        "ESOCKTNOSUPPORT",
        "EOPNOTSUPP",
        "EPFNOSUPPORT",
        "EAFNOSUPPORT",
        "EADDRINUSE",
        "EADDRNOTAVAIL",
        "ENETDOWN",
        "ENETUNREACH",
        "ENETRESET",
        "ECONNABORTED",
        "ECONNRESET",
        "ENOBUFS",
        "EISCONN",
        "ENOTCONN",
        "ESHUTDOWN",
        "ETOOMANYREFS",
        "ETIMEDOUT",
        "ECONNREFUSED",
        "EHOSTDOWN",
        "EHOSTUNREACH",
        "EALREADY",
        "EINPROGRESS",
        "ESTALE",
        "EUCLEAN",
        "ENOTNAM",
        "ENAVAIL",
        "EISNAM",
        "EREMOTEIO",
        "EDQUOT",
        "ENOMEDIUM",
        "EMEDIUMTYPE",
        "ECANCELED",
        "ENOKEY",
        "EKEYEXPIRED",
        "EKEYREVOKED",
        "EKEYREJECTED",
        "EOWNERDEAD",
        "ENOTRECOVERABLE",
        "ERFKILL",
        "EHWPOISON",
    ];
    match e {
        512 => "ERESTARTSYS",
        513 => "ERESTARTNOINTR",
        514 => "ERESTARTNOHAND",
        515 => "ENOIOCTLCMD",
        516 => "ERESTART_RESTARTBLOCK",
        _ => NAMES.get(e as usize).copied().unwrap_or("E?"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_follow_the_linux_numbering() {
        assert_eq!(errno_name(1), "EPERM");
        assert_eq!(errno_name(2), "ENOENT");
        assert_eq!(errno_name(libc::EAGAIN as u16), "EAGAIN");
        assert_eq!(errno_name(libc::ECONNREFUSED as u16), "ECONNREFUSED");
        assert_eq!(errno_name(libc::EINPROGRESS as u16), "EINPROGRESS");
        assert_eq!(errno_name(libc::EHWPOISON as u16), "EHWPOISON");
        assert_eq!(errno_name(512), "ERESTARTSYS");
        assert_eq!(errno_name(4000), "E?");
    }

    #[test]
    fn tcp_key_addresses() {
        let mut k = TcpKey {
            family: 2,
            ..TcpKey::default()
        };
        k.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        k.daddr[..4].copy_from_slice(&[10, 1, 2, 3]);
        assert_eq!(
            k.addrs(),
            ("127.0.0.1".parse().unwrap(), "10.1.2.3".parse().unwrap())
        );
        let b = BioKey {
            cgroup_id: 1,
            dev: (254 << 20) | 3,
            op: 1,
        };
        assert_eq!(b.major_minor(), (254, 3));
        assert_eq!(op_name(b.op), "write");
    }
}
