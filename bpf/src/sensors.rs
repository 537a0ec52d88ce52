//! The sensor table, feature probing and attachment.
//!
//! Each sensor lists the mechanisms that can implement it, best first. At
//! start every sensor tries its candidates in order; the first that loads and
//! attaches wins, and a sensor none of whose candidates work is reported once
//! with the real errno while the others keep running (kunai's
//! `configure_probes`, bpftop's optional programs).

use crate::abi::{kind, sys};
use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, Program, ProgramError, TracePoint, UProbe},
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// One way to implement (part of) a sensor.
#[derive(Debug, Clone, Copy)]
pub enum Mechanism {
    /// BTF-enabled raw tracepoint (`tp_btf/<tp>`), CO-RE, cheapest.
    TpBtf {
        /// Program name in the object.
        prog: &'static str,
        /// Tracepoint name.
        tp: &'static str,
    },
    /// Several BTF-enabled raw tracepoints that together make one sensor
    /// (`(prog, tp)` pairs); live when the first (the essential one)
    /// attaches, the others are reported if they fail.
    TpBtfAll {
        /// (program name, tracepoint name), essential first.
        progs: &'static [(&'static str, &'static str)],
    },
    /// The raw `sys_enter`/`sys_exit` programs (tp_btf), shared by the
    /// sensors that need every syscall or a hot one cheaply: compat
    /// (32-bit syscalls), udp_send and dns (sendto/sendmsg/sendmmsg,
    /// recvfrom/recvmsg), syscall (personality, sysinfo, syslog) and the
    /// first write per open. Attached once, by
    /// the first sensor that needs them; each part acts only for its
    /// sensor's kinds.
    RawSyscalls,
    /// Classic tracepoint (`tracepoint/<category>/<name>`).
    Tracepoint {
        /// Program name in the object.
        prog: &'static str,
        /// Tracefs category.
        category: &'static str,
        /// Tracepoint name.
        name: &'static str,
    },
    /// A syscall observed at `sys_enter_<name>` (shared program
    /// `vg_sys_enter`) and `sys_exit_<name>` (`prog`), for each syscall.
    Syscalls {
        /// Exit program name.
        prog: &'static str,
        /// (tracepoint suffix, syscall number, `vg_sys` id).
        calls: &'static [(&'static str, i64, u32)],
    },
    /// uretprobe on a function of bash.
    BashReadline {
        /// Program name in the object.
        prog: &'static str,
    },
}

impl Mechanism {
    /// Short human name (`tp_btf/sched_process_exec`).
    pub fn describe(&self) -> String {
        match self {
            Mechanism::TpBtf { tp, .. } => format!("tp_btf/{tp}"),
            Mechanism::TpBtfAll { progs } => {
                let names: Vec<&str> = progs.iter().map(|p| p.1).collect();
                format!("tp_btf/{{{}}}", names.join(","))
            }
            Mechanism::RawSyscalls => "tp_btf/{sys_enter,sys_exit} (shared)".to_string(),
            Mechanism::Tracepoint { category, name, .. } => format!("tracepoint/{category}/{name}"),
            Mechanism::Syscalls { calls, .. } => {
                let names: Vec<&str> = calls.iter().map(|c| c.0).collect();
                format!(
                    "tracepoint/syscalls/sys_{{enter,exit}}_{{{}}}",
                    names.join(",")
                )
            }
            Mechanism::BashReadline { .. } => "uretprobe/bash:readline".to_string(),
        }
    }
}

/// A sensor: a named event source of one or more kinds.
#[derive(Debug, Clone, Copy)]
pub struct SensorSpec {
    /// Stable name (used in config, metrics, `vigil probe`).
    pub name: &'static str,
    /// Event kinds it produces.
    pub kinds: &'static [u16],
    /// What it reports.
    pub description: &'static str,
    /// Candidate mechanisms, best first.
    pub candidates: &'static [Mechanism],
}

macro_rules! sc {
    ($name:literal, $nr:ident, $id:expr) => {
        ($name, libc::$nr, $id)
    };
}

/// Every sensor vigil has.
pub const SENSORS: &[SensorSpec] = &[
    SensorSpec {
        name: "exec",
        kinds: &[kind::EXEC],
        description: "program execution: executable, argv, cwd",
        candidates: &[
            Mechanism::TpBtf {
                prog: "vg_exec",
                tp: "sched_process_exec",
            },
            Mechanism::Tracepoint {
                prog: "vg_exec_tp",
                category: "sched",
                name: "sched_process_exec",
            },
        ],
    },
    SensorSpec {
        name: "fork",
        kinds: &[kind::FORK],
        description: "process creation with namespace changes",
        candidates: &[Mechanism::TpBtf {
            prog: "vg_fork",
            tp: "sched_process_fork",
        }],
    },
    SensorSpec {
        name: "exit",
        kinds: &[kind::EXIT],
        description: "process exit with status",
        candidates: &[Mechanism::TpBtf {
            prog: "vg_exit",
            tp: "sched_process_exit",
        }],
    },
    SensorSpec {
        name: "open",
        kinds: &[kind::OPEN],
        description: "file opens (path, flags, result) on paths of interest",
        candidates: &[Mechanism::Syscalls {
            prog: "vg_exit_open",
            calls: &[
                sc!("openat", SYS_openat, sys::OPENAT),
                sc!("open", SYS_open, sys::OPEN),
                sc!("openat2", SYS_openat2, sys::OPENAT2),
                sc!("creat", SYS_creat, sys::CREAT),
            ],
        }],
    },
    SensorSpec {
        name: "connect",
        kinds: &[kind::CONNECT],
        description: "outbound connections (IPv4, IPv6, unix)",
        candidates: &[Mechanism::Syscalls {
            prog: "vg_exit_connect",
            calls: &[sc!("connect", SYS_connect, 0)],
        }],
    },
    SensorSpec {
        name: "accept",
        kinds: &[kind::ACCEPT],
        description: "inbound connections accepted",
        candidates: &[Mechanism::Syscalls {
            prog: "vg_exit_accept",
            calls: &[
                sc!("accept", SYS_accept, sys::ACCEPT),
                sc!("accept4", SYS_accept4, sys::ACCEPT4),
            ],
        }],
    },
    SensorSpec {
        name: "listen",
        kinds: &[kind::LISTEN],
        description: "sockets put into listening state",
        candidates: &[Mechanism::Syscalls {
            prog: "vg_exit_listen",
            calls: &[sc!("listen", SYS_listen, 0)],
        }],
    },
    SensorSpec {
        name: "udp_send",
        kinds: &[kind::UDP_SEND],
        description: "UDP datagrams sent (first per socket and peer) and DNS queries",
        candidates: &[Mechanism::RawSyscalls],
    },
    SensorSpec {
        name: "dns",
        kinds: &[kind::DNS],
        description: "DNS answers received from port 53 (names, types, addresses)",
        candidates: &[Mechanism::RawSyscalls],
    },
    SensorSpec {
        name: "io_uring",
        kinds: &[kind::IOURING],
        description: "io_uring rings created and operations submitted (opens, file changes, connects with their targets; other opcodes once per process)",
        candidates: &[Mechanism::TpBtfAll {
            progs: &[
                ("vg_uring_submit", "io_uring_submit_req"),
                ("vg_uring_create", "io_uring_create"),
            ],
        }],
    },
    SensorSpec {
        name: "compat",
        kinds: &[kind::COMPAT],
        description: "32-bit (int 0x80 / ia32) syscalls, which the syscall tracepoints miss: opens, connects, setid, ptrace, modules, bpf, file changes, namespaces",
        candidates: &[Mechanism::RawSyscalls],
    },
    SensorSpec {
        name: "syscall",
        kinds: &[kind::SYSCALL],
        description: "personality(2), sysinfo(2) and syslog(2) (klogctl) with their arguments, each only while a rule can match it",
        candidates: &[Mechanism::RawSyscalls],
    },
    SensorSpec {
        name: "tcp_state",
        kinds: &[kind::TCP_STATE],
        description: "TCP state transitions",
        candidates: &[Mechanism::Tracepoint {
            prog: "vg_tcp_state",
            category: "sock",
            name: "inet_sock_set_state",
        }],
    },
    SensorSpec {
        name: "capable",
        kinds: &[kind::CAPABLE],
        description: "capability checks (first per process, capability and result)",
        candidates: &[Mechanism::Tracepoint {
            prog: "vg_capable",
            category: "capability",
            name: "cap_capable",
        }],
    },
    SensorSpec {
        name: "file_change",
        kinds: &[kind::FCHANGE],
        description: "rename, unlink, rmdir, truncate, chmod, chown, link, symlink, mkdir, mknod, timestamps set (utimensat, utimes, futimesat, utime)",
        candidates: &[Mechanism::Syscalls {
            prog: "vg_exit_fchange",
            calls: &[
                sc!("rename", SYS_rename, sys::RENAME),
                sc!("renameat", SYS_renameat, sys::RENAMEAT),
                sc!("renameat2", SYS_renameat2, sys::RENAMEAT2),
                sc!("unlink", SYS_unlink, sys::UNLINK),
                sc!("unlinkat", SYS_unlinkat, sys::UNLINKAT),
                sc!("rmdir", SYS_rmdir, sys::RMDIR),
                sc!("truncate", SYS_truncate, sys::TRUNCATE),
                sc!("ftruncate", SYS_ftruncate, sys::FTRUNCATE),
                sc!("chmod", SYS_chmod, sys::CHMOD),
                sc!("fchmod", SYS_fchmod, sys::FCHMOD),
                sc!("fchmodat", SYS_fchmodat, sys::FCHMODAT),
                sc!("fchmodat2", SYS_fchmodat2, sys::FCHMODAT2),
                sc!("chown", SYS_chown, sys::CHOWN),
                sc!("fchown", SYS_fchown, sys::FCHOWN),
                sc!("lchown", SYS_lchown, sys::LCHOWN),
                sc!("fchownat", SYS_fchownat, sys::FCHOWNAT),
                sc!("link", SYS_link, sys::LINK),
                sc!("linkat", SYS_linkat, sys::LINKAT),
                sc!("symlink", SYS_symlink, sys::SYMLINK),
                sc!("symlinkat", SYS_symlinkat, sys::SYMLINKAT),
                sc!("mkdir", SYS_mkdir, sys::MKDIR),
                sc!("mkdirat", SYS_mkdirat, sys::MKDIRAT),
                sc!("mknod", SYS_mknod, sys::MKNOD),
                sc!("mknodat", SYS_mknodat, sys::MKNODAT),
                sc!("utimensat", SYS_utimensat, sys::UTIMENSAT),
                sc!("utimes", SYS_utimes, sys::UTIMES),
                sc!("futimesat", SYS_futimesat, sys::FUTIMESAT),
                sc!("utime", SYS_utime, sys::UTIME),
            ],
        }],
    },
    SensorSpec {
        name: "signal",
        kinds: &[kind::SIGNAL],
        description: "kill/stop signals sent to vigil itself (self-protection) or by a process to another that is not its child",
        candidates: &[
            Mechanism::TpBtf {
                prog: "vg_signal",
                tp: "signal_generate",
            },
            Mechanism::Tracepoint {
                prog: "vg_signal_tp",
                category: "signal",
                name: "signal_generate",
            },
        ],
    },
    SensorSpec {
        name: "setid",
        kinds: &[kind::SETID],
        description: "setuid/setgid family",
        candidates: &[Mechanism::Syscalls {
            prog: "vg_exit_setid",
            calls: &[
                sc!("setuid", SYS_setuid, sys::SETUID),
                sc!("setgid", SYS_setgid, sys::SETGID),
                sc!("setreuid", SYS_setreuid, sys::SETREUID),
                sc!("setregid", SYS_setregid, sys::SETREGID),
                sc!("setresuid", SYS_setresuid, sys::SETRESUID),
                sc!("setresgid", SYS_setresgid, sys::SETRESGID),
                sc!("setfsuid", SYS_setfsuid, sys::SETFSUID),
                sc!("setfsgid", SYS_setfsgid, sys::SETFSGID),
            ],
        }],
    },
    SensorSpec {
        name: "capset",
        kinds: &[kind::CAPSET],
        description: "capset(2)",
        candidates: &[Mechanism::Syscalls {
            prog: "vg_exit_capset",
            calls: &[sc!("capset", SYS_capset, 0)],
        }],
    },
    SensorSpec {
        name: "ptrace",
        kinds: &[kind::PTRACE],
        description: "ptrace(2), process_vm_readv(2), process_vm_writev(2)",
        candidates: &[Mechanism::Syscalls {
            prog: "vg_exit_ptrace",
            calls: &[
                sc!("ptrace", SYS_ptrace, 0),
                sc!(
                    "process_vm_readv",
                    SYS_process_vm_readv,
                    sys::PROCESS_VM_READV
                ),
                sc!(
                    "process_vm_writev",
                    SYS_process_vm_writev,
                    sys::PROCESS_VM_WRITEV
                ),
            ],
        }],
    },
    SensorSpec {
        name: "bpf",
        kinds: &[kind::BPF],
        description: "bpf(2) with the command",
        candidates: &[Mechanism::Syscalls {
            prog: "vg_exit_bpf",
            calls: &[sc!("bpf", SYS_bpf, 0)],
        }],
    },
    SensorSpec {
        name: "module",
        kinds: &[kind::MODULE],
        description: "kernel module load and unload",
        candidates: &[Mechanism::Syscalls {
            prog: "vg_exit_module",
            calls: &[
                sc!("init_module", SYS_init_module, sys::INIT_MODULE),
                sc!("finit_module", SYS_finit_module, sys::FINIT_MODULE),
                sc!("delete_module", SYS_delete_module, sys::DELETE_MODULE),
            ],
        }],
    },
    SensorSpec {
        name: "memfd",
        kinds: &[kind::MEMFD],
        description: "memfd_create(2)",
        candidates: &[Mechanism::Syscalls {
            prog: "vg_exit_memfd",
            calls: &[sc!("memfd_create", SYS_memfd_create, 0)],
        }],
    },
    SensorSpec {
        name: "mount",
        kinds: &[kind::MOUNT],
        description: "mount(2)",
        candidates: &[Mechanism::Syscalls {
            prog: "vg_exit_mount",
            calls: &[sc!("mount", SYS_mount, 0)],
        }],
    },
    SensorSpec {
        name: "umount",
        kinds: &[kind::UMOUNT],
        description: "umount2(2)",
        candidates: &[Mechanism::Syscalls {
            prog: "vg_exit_umount",
            // x86_64 names the umount2 tracepoint `sys_enter_umount`.
            calls: &[sc!("umount", SYS_umount2, 0)],
        }],
    },
    SensorSpec {
        name: "unshare",
        kinds: &[kind::UNSHARE],
        description: "unshare(2) namespace flags",
        candidates: &[Mechanism::Syscalls {
            prog: "vg_exit_ns",
            calls: &[sc!("unshare", SYS_unshare, 0)],
        }],
    },
    SensorSpec {
        name: "setns",
        kinds: &[kind::SETNS],
        description: "setns(2) namespace entry",
        candidates: &[Mechanism::Syscalls {
            prog: "vg_exit_ns",
            calls: &[sc!("setns", SYS_setns, 0)],
        }],
    },
    SensorSpec {
        name: "readline",
        kinds: &[kind::READLINE],
        description: "interactive bash command lines",
        candidates: &[Mechanism::BashReadline {
            prog: "vg_readline",
        }],
    },
];

/// Looks a sensor up by name.
pub fn sensor(name: &str) -> Option<&'static SensorSpec> {
    SENSORS.iter().find(|s| s.name == name)
}

/// The sensor that produces a kind.
pub fn sensor_of_kind(k: u16) -> Option<&'static SensorSpec> {
    SENSORS.iter().find(|s| s.kinds.contains(&k))
}

/// What happened to a sensor at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SensorState {
    /// Attached with this mechanism.
    Live {
        /// The mechanism in use.
        mechanism: String,
        /// Candidates that failed before it: (mechanism, reason).
        fell_back_from: Vec<(String, String)>,
    },
    /// No candidate worked: (mechanism, reason) for each.
    Unavailable(Vec<(String, String)>),
    /// Turned off by configuration.
    Disabled,
}

/// Status of one sensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorStatus {
    /// Sensor name.
    pub name: &'static str,
    /// Outcome.
    pub state: SensorState,
}

impl SensorStatus {
    /// Whether the sensor is attached.
    pub fn is_live(&self) -> bool {
        matches!(self.state, SensorState::Live { .. })
    }
}

/// Renders an error with its errno name first, the way a person wants to read it.
pub fn explain(err: &ProgramError) -> String {
    fn find_io<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
        let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
        while let Some(c) = cur {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                return Some(io);
            }
            cur = c.source();
        }
        None
    }
    let io = match err {
        ProgramError::LoadError { io_error, .. } => Some(io_error),
        ProgramError::SyscallError(s) => Some(&s.io_error),
        other => find_io(other),
    };
    let mut msg = match io.and_then(std::io::Error::raw_os_error) {
        Some(code) => format!(
            "{} ({})",
            errno_name(code),
            std::io::Error::from_raw_os_error(code)
        ),
        None => err.to_string(),
    };
    if let ProgramError::LoadError { verifier_log, .. } = err {
        let log = verifier_log.to_string();
        if let Some(last) = log.lines().rev().find(|l| !l.trim().is_empty()) {
            msg.push_str(&format!("; verifier: {}", last.trim()));
        }
    }
    if msg.contains("EPERM") {
        msg.push_str(" - blocked by kernel policy (lockdown, LSM or missing capability)");
    }
    msg
}

/// Symbolic errno name for the common cases.
pub fn errno_name(code: i32) -> &'static str {
    match code {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINVAL => "EINVAL",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::ENOMEM => "ENOMEM",
        libc::E2BIG => "E2BIG",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOSPC => "ENOSPC",
        libc::ENODEV => "ENODEV",
        libc::EEXIST => "EEXIST",
        _ => "errno",
    }
}

/// Where bash lives, if anywhere.
pub fn find_bash(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = configured {
        return p.exists().then(|| p.to_path_buf());
    }
    ["/usr/bin/bash", "/bin/bash"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Attaches sensors to a loaded object. `vg_sys_enter` is shared by all
/// syscall sensors and loaded once.
pub(crate) struct Attacher<'a> {
    pub(crate) ebpf: &'a mut Ebpf,
    pub(crate) btf: Option<Btf>,
    pub(crate) btf_error: Option<String>,
    pub(crate) bash: Option<PathBuf>,
    pub(crate) loaded: HashSet<&'static str>,
    /// (syscall number, kind | vg_sys << 16) for every syscall attached.
    pub(crate) syscalls: Vec<(i64, u32)>,
    /// Every attachment made, so they can be detached in parallel.
    pub(crate) links: Vec<LinkRef>,
    /// The shared raw sys_enter/sys_exit programs are attached.
    pub(crate) raw_syscalls: bool,
}

/// An attachment (program name and link id).
pub(crate) enum LinkRef {
    Tp(&'static str, aya::programs::trace_point::TracePointLinkId),
    Btf(&'static str, aya::programs::tp_btf::BtfTracePointLinkId),
    Up(&'static str, aya::programs::uprobe::UProbeLinkId),
}

/// Detaches every link, each from its own thread: detaching from a syscall
/// tracepoint (faultable since 6.10) waits for an RCU tasks-trace grace
/// period, ~0.8 s here, and concurrent waiters share grace periods, so ~60
/// links detach in about one grace period instead of ~60 in sequence.
pub(crate) fn detach_parallel(ebpf: &mut Ebpf, links: Vec<LinkRef>) {
    let mut owned: Vec<Box<dyn Send>> = Vec::new();
    for l in links {
        let b: Option<Box<dyn Send>> = match l {
            LinkRef::Tp(name, id) => ebpf
                .program_mut(name)
                .and_then(|p| <&mut TracePoint>::try_from(p).ok())
                .and_then(|p| p.take_link(id).ok())
                .map(|l| Box::new(l) as Box<dyn Send>),
            LinkRef::Btf(name, id) => ebpf
                .program_mut(name)
                .and_then(|p| <&mut BtfTracePoint>::try_from(p).ok())
                .and_then(|p| p.take_link(id).ok())
                .map(|l| Box::new(l) as Box<dyn Send>),
            LinkRef::Up(name, id) => ebpf
                .program_mut(name)
                .and_then(|p| <&mut UProbe>::try_from(p).ok())
                .and_then(|p| p.take_link(id).ok())
                .map(|l| Box::new(l) as Box<dyn Send>),
        };
        owned.extend(b);
    }
    let threads = owned.len().clamp(1, 128);
    let per = owned.len().div_ceil(threads).max(1);
    std::thread::scope(|sc| {
        let mut rest = owned;
        while !rest.is_empty() {
            let chunk: Vec<Box<dyn Send>> = rest.drain(..per.min(rest.len())).collect();
            sc.spawn(move || drop(chunk));
        }
    });
}

/// How a program is loaded (`BPF_PROG_LOAD`, where the verifier runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoadKind {
    /// Classic tracepoint.
    Tp,
    /// `tp_btf` program for this tracepoint.
    Btf(&'static str),
    /// uprobe.
    Up,
}

/// The programs the best candidate of each sensor in `specs` loads, in
/// table order, each once.
fn first_choice_programs<'s>(
    specs: impl Iterator<Item = &'s SensorSpec>,
    have_btf: bool,
    have_bash: bool,
) -> Vec<(&'static str, LoadKind)> {
    let mut out: Vec<(&'static str, LoadKind)> = Vec::new();
    let mut add = |name: &'static str, k: LoadKind| {
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, k));
        }
    };
    for spec in specs {
        let Some(m) = spec.candidates.first() else {
            continue;
        };
        match *m {
            Mechanism::TpBtf { prog, tp } if have_btf => add(prog, LoadKind::Btf(tp)),
            Mechanism::TpBtfAll { progs } if have_btf => {
                for &(prog, tp) in progs {
                    add(prog, LoadKind::Btf(tp));
                }
            }
            Mechanism::RawSyscalls if have_btf => {
                add("vg_raw_exit", LoadKind::Btf("sys_exit"));
                add("vg_raw_enter", LoadKind::Btf("sys_enter"));
            }
            Mechanism::Tracepoint { prog, .. } => add(prog, LoadKind::Tp),
            Mechanism::Syscalls { prog, .. } => {
                add(prog, LoadKind::Tp);
                add("vg_sys_enter", LoadKind::Tp);
            }
            Mechanism::BashReadline { prog } if have_bash => add(prog, LoadKind::Up),
            _ => {}
        }
    }
    out
}

/// Loads (verifies) the programs the enabled sensors' best candidates
/// need, on `threads` threads at once, before anything is attached: each
/// `BPF_PROG_LOAD` runs the verifier in the calling thread and privileged
/// loads do not serialise, so the verifier's time (most of start-up) is
/// spread over the cores. Returns the programs loaded; one that failed is
/// left unloaded, and attaching it later loads it again in order and
/// reports the error.
pub(crate) fn preload_parallel<'s>(
    ebpf: &mut Ebpf,
    btf: Option<&Btf>,
    specs: impl Iterator<Item = &'s SensorSpec>,
    have_bash: bool,
    threads: usize,
) -> HashSet<&'static str> {
    let want = first_choice_programs(specs, btf.is_some(), have_bash);
    let mut jobs: Vec<(&'static str, LoadKind, &mut Program)> = Vec::new();
    for (name, p) in ebpf.programs_mut() {
        if let Some(&(n, k)) = want.iter().find(|(n, _)| *n == name) {
            jobs.push((n, k, p));
        }
    }
    // In table order (exec, whose program takes the verifier longest,
    // first); the queue hands the next program to whichever thread is free.
    jobs.sort_by_key(|(n, _, _)| want.iter().position(|(w, _)| w == n));
    let queue = std::sync::Mutex::new(jobs.into_iter());
    let done = std::sync::Mutex::new(HashSet::new());
    std::thread::scope(|sc| {
        for _ in 0..threads.max(1) {
            sc.spawn(|| {
                loop {
                    let Some((name, kind, p)) = queue.lock().ok().and_then(|mut q| q.next()) else {
                        return;
                    };
                    let ok = match (kind, p) {
                        (LoadKind::Tp, Program::TracePoint(p)) => p.load().is_ok(),
                        (LoadKind::Btf(tp), Program::BtfTracePoint(p)) => {
                            btf.is_some_and(|b| p.load(tp, b).is_ok())
                        }
                        (LoadKind::Up, Program::UProbe(p)) => p.load().is_ok(),
                        _ => false,
                    };
                    if ok && let Ok(mut d) = done.lock() {
                        d.insert(name);
                    }
                }
            });
        }
    });
    done.into_inner().unwrap_or_default()
}

/// Threads for [`preload_parallel`]: the cores this process may use, at
/// least 2 (a busy host's scheduler shares a core between threads, so a
/// second thread still shortens start-up) and at most 8.
pub(crate) fn preload_threads() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(2)
        .clamp(2, 8)
}

impl Attacher<'_> {
    fn program(&mut self, name: &str) -> Result<&mut Program, String> {
        self.ebpf
            .program_mut(name)
            .ok_or_else(|| format!("program {name} is missing from the object"))
    }

    fn ensure_loaded_tp(&mut self, name: &'static str) -> Result<(), String> {
        if self.loaded.contains(name) {
            return Ok(());
        }
        let p: &mut TracePoint = self
            .program(name)?
            .try_into()
            .map_err(|e: ProgramError| explain(&e))?;
        p.load().map_err(|e| format!("load: {}", explain(&e)))?;
        self.loaded.insert(name);
        Ok(())
    }

    fn attach_tp(&mut self, prog: &'static str, category: &str, tp: &str) -> Result<(), String> {
        if !Path::new(&format!("{}/events/{category}/{tp}", crate::tracefs_dir())).exists() {
            return Err(format!(
                "tracepoint {category}:{tp} does not exist on this kernel (ENOENT)"
            ));
        }
        self.ensure_loaded_tp(prog)?;
        let p: &mut TracePoint = self
            .program(prog)?
            .try_into()
            .map_err(|e: ProgramError| explain(&e))?;
        let id = p
            .attach(category, tp)
            .map_err(|e| format!("attach: {}", explain(&e)))?;
        self.links.push(LinkRef::Tp(prog, id));
        Ok(())
    }

    /// Tries one mechanism for a sensor of kind `k`.
    pub(crate) fn try_mechanism(&mut self, m: &Mechanism, k: u16) -> Result<(), String> {
        match *m {
            Mechanism::RawSyscalls => {
                if self.raw_syscalls {
                    return Ok(());
                }
                self.try_mechanism(
                    &Mechanism::TpBtf {
                        prog: "vg_raw_exit",
                        tp: "sys_exit",
                    },
                    k,
                )?;
                self.try_mechanism(
                    &Mechanism::TpBtf {
                        prog: "vg_raw_enter",
                        tp: "sys_enter",
                    },
                    k,
                )?;
                self.raw_syscalls = true;
                Ok(())
            }
            Mechanism::TpBtfAll { progs } => {
                let mut errors = Vec::new();
                for (i, &(prog, tp)) in progs.iter().enumerate() {
                    if let Err(e) = self.try_mechanism(&Mechanism::TpBtf { prog, tp }, k) {
                        if i == 0 {
                            return Err(format!("{tp}: {e}"));
                        }
                        errors.push(format!("{tp}: {e}"));
                    }
                }
                if !errors.is_empty() {
                    log::warn!("sensor partially attached: {}", errors.join("; "));
                }
                Ok(())
            }
            Mechanism::TpBtf { prog, tp } => {
                let Some(btf) = self.btf.as_ref() else {
                    return Err(format!(
                        "kernel BTF unavailable: {}",
                        self.btf_error.as_deref().unwrap_or("unknown")
                    ));
                };
                let btf = btf as *const Btf;
                let preloaded = self.loaded.contains(prog);
                let p: &mut BtfTracePoint = self
                    .program(prog)?
                    .try_into()
                    .map_err(|e: ProgramError| explain(&e))?;
                if !preloaded {
                    // SAFETY: `btf` points into self.btf, which is not touched
                    // while `p` (a borrow of self.ebpf) is alive.
                    p.load(tp, unsafe { &*btf })
                        .map_err(|e| format!("load: {}", explain(&e)))?;
                }
                let id = p.attach().map_err(|e| format!("attach: {}", explain(&e)))?;
                self.links.push(LinkRef::Btf(prog, id));
                Ok(())
            }
            Mechanism::Tracepoint {
                prog,
                category,
                name,
            } => self.attach_tp(prog, category, name),
            Mechanism::Syscalls { prog, calls } => {
                let mut attached = 0;
                let mut errors = Vec::new();
                for &(name, nr, vsys) in calls {
                    let enter = format!("sys_enter_{name}");
                    let exit = format!("sys_exit_{name}");
                    // exit first: an enter without its exit would only fill `pending`.
                    let r = self
                        .attach_tp(prog, "syscalls", &exit)
                        .and_then(|()| self.attach_tp("vg_sys_enter", "syscalls", &enter));
                    match r {
                        Ok(()) => {
                            attached += 1;
                            self.syscalls.push((nr, u32::from(k) | (vsys << 16)));
                        }
                        Err(e) => errors.push(format!("{name}: {e}")),
                    }
                }
                if attached == 0 {
                    Err(errors.join("; "))
                } else if !errors.is_empty() {
                    // Partially live: reported, but the sensor runs.
                    log::warn!("sensor syscalls partially attached: {}", errors.join("; "));
                    Ok(())
                } else {
                    Ok(())
                }
            }
            Mechanism::BashReadline { prog } => {
                let Some(bash) = self.bash.clone() else {
                    return Err("no bash binary found (ENOENT)".into());
                };
                let preloaded = self.loaded.contains(prog);
                let p: &mut UProbe = self
                    .program(prog)?
                    .try_into()
                    .map_err(|e: ProgramError| explain(&e))?;
                if !preloaded {
                    p.load().map_err(|e| format!("load: {}", explain(&e)))?;
                }
                let id = p
                    .attach(
                        "readline",
                        &bash,
                        aya::programs::uprobe::UProbeScope::AllProcesses,
                    )
                    .map_err(|e| format!("attach {}: {}", bash.display(), explain(&e)))?;
                self.links.push(LinkRef::Up(prog, id));
                Ok(())
            }
        }
    }
}

/// Default kinds every sensor enables.
pub fn all_kinds() -> impl Iterator<Item = u16> {
    SENSORS.iter().flat_map(|s| s.kinds.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi;

    #[test]
    fn every_kind_has_one_sensor_and_a_decoder() {
        let mut seen = HashSet::new();
        for k in all_kinds() {
            assert!(seen.insert(k), "kind {k} listed twice");
            assert!(
                crate::decode::body_size(k).is_some(),
                "kind {k} has no decoder"
            );
            assert!(u32::from(k) < abi::KIND_SLOTS);
        }
    }

    #[test]
    fn preload_lists_each_first_choice_program_once() {
        let all = first_choice_programs(SENSORS.iter(), true, true);
        let names: HashSet<_> = all.iter().map(|p| p.0).collect();
        assert_eq!(names.len(), all.len(), "a program listed twice");
        // the shared programs, by the kind of load each needs
        assert!(all.contains(&("vg_sys_enter", LoadKind::Tp)));
        assert!(all.contains(&("vg_raw_exit", LoadKind::Btf("sys_exit"))));
        assert!(all.contains(&("vg_raw_enter", LoadKind::Btf("sys_enter"))));
        assert!(all.contains(&("vg_exec", LoadKind::Btf("sched_process_exec"))));
        assert!(all.contains(&("vg_readline", LoadKind::Up)));
        // fallbacks are loaded only when the first choice fails
        assert!(!names.contains("vg_exec_tp"));
        // exec (the longest verification) goes first
        assert_eq!(all[0].0, "vg_exec");
        // without kernel BTF or bash nothing that needs them is loaded
        let bare = first_choice_programs(SENSORS.iter(), false, false);
        assert!(bare.iter().all(|p| p.1 == LoadKind::Tp));
        assert!(bare.iter().any(|p| p.0 == "vg_exit_open"));
        // a disabled sensor's programs are not loaded
        let some = first_choice_programs(SENSORS.iter().filter(|s| s.name != "open"), true, true);
        assert!(!some.iter().any(|p| p.0 == "vg_exit_open"));
    }

    #[test]
    fn sensor_names_are_unique() {
        let names: HashSet<_> = SENSORS.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), SENSORS.len());
    }
}
