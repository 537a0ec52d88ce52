//! Baselines in the engine: turning enriched events into the learner's
//! observations (`vigil-baselines`), and its anomalies into alert records
//! (`rule.ruleset: baseline`).
//!
//! Profiles are resolved once per exec (the new image's identity: path plus
//! the device, inode and mtime the exec record carries, so a replaced binary
//! is a new profile, and the key never depends on whether the process is
//! still alive when its event is processed) and kept per process; every later event of the process
//! uses the resolved reference. The parent of an exec is the subject of the
//! `spawn` behaviour.

use crate::ecs;
use crate::enrich::Event;
use std::collections::HashMap;
use std::net::IpAddr;
use vigil_baselines::{
    Access, Anomaly, Baselines, Behaviour, ContainerRef, ExeIdentity, ProfileRef, Subject,
    Transport,
};
use vigil_bpf::abi::kind;
use vigil_bpf::decode::Body;

/// Event kinds the learner uses (added to the kernel interest when
/// baselines are on).
pub const KINDS: &[u16] = &[
    kind::EXEC,
    kind::FORK,
    kind::EXIT,
    kind::OPEN,
    kind::FCHANGE,
    kind::CONNECT,
    kind::UDP_SEND,
    kind::ACCEPT,
    kind::LISTEN,
    kind::CAPABLE,
    kind::SETID,
];

/// A change the kernel's syscall-learning maps need (applied by the agent
/// after each ring-buffer batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnOp {
    /// Processes exec'ing this file learn into the slot.
    Exe {
        /// Device (kernel `s_dev`).
        dev: u32,
        /// Inode.
        ino: u64,
        /// Slot.
        slot: u32,
    },
    /// This running process learns into the slot.
    Proc {
        /// Process.
        tgid: u32,
        /// Slot.
        slot: u32,
    },
    /// Stop learning for this file (its profile was promoted).
    ForgetExe {
        /// Device.
        dev: u32,
        /// Inode.
        ino: u64,
    },
}

/// One executable whose syscalls the kernel learns.
struct Slot {
    r: ProfileRef,
    key: Vec<u8>,
    dev: u32,
    ino: u64,
    seen: vigil_baselines::SyscallSet,
    active: bool,
}

/// The learner and the per-process profile references.
pub struct Learner {
    /// Syscall-set learning is attached in the kernel.
    pub syscalls_on: bool,
    slots: Vec<Slot>,
    slot_of: HashMap<(u32, u64), u32>,
    pending: Vec<LearnOp>,
    /// Executables not learned because every slot was in use.
    pub slots_exhausted: u64,
    /// The baselines.
    pub baselines: Baselines,
    /// pid -> (process start, profile) of processes seen.
    refs: HashMap<u32, (u64, Option<ProfileRef>)>,
    /// pid -> housekeeping rounds it has been seen dead (exited, or gone
    /// from /proc). Entries linger a few rounds: records of a process (its
    /// children's execs) may still be queued when it exits.
    dead: HashMap<u32, u8>,
    /// Read `/proc/PID/exe` for identities (off for replays).
    live: bool,
    /// (pid namespace, pid there) -> host pid, of processes seen in a pid
    /// namespace of their own (containers): the pids their paths name.
    by_ns: HashMap<(u32, u32), u32>,
    /// host pid -> its key in `by_ns`, to forget it with the process.
    ns_of: HashMap<u32, (u32, u32)>,
}

/// Whether `n` is one of the ids of the process of `h` (pid, thread id,
/// parent's pid, its pid in its own pid namespace) or a pid of another
/// process of the same profile (`mine`: PostgreSQL's parallel workers write
/// into their leader's `pgsql_tmp<leader pid>.N.fileset`), for the
/// learner's pid-aware generalisation. A process in a pid namespace of its
/// own names files with the pids it sees there; one in the host's with host
/// pids.
fn family_pid(
    refs: &HashMap<u32, (u64, Option<ProfileRef>)>,
    by_ns: &HashMap<(u32, u32), u32>,
    h: &vigil_bpf::abi::Hdr,
    mine: Option<ProfileRef>,
    n: u32,
) -> bool {
    if n == h.pid || n == h.tid || n == h.ppid || n == h.ns_pid {
        return true;
    }
    let kin =
        |g: u32| g == h.ppid || (mine.is_some() && refs.get(&g).is_some_and(|&(_, r)| r == mine));
    if h.ns_pid == h.pid || h.ns_pid == 0 {
        kin(n)
    } else {
        by_ns.get(&(h.pidns, n)).is_some_and(|&g| kin(g))
    }
}

/// The identity of an executable as the kernel reports it at exec: device
/// (kernel `s_dev`), inode and mtime (seconds). No size: the exec record
/// does not carry it, and it must be the same whichever way it is read.
fn kernel_identity(dev: u32, ino: u64, mtime_sec: i64) -> ExeIdentity {
    ExeIdentity::Inode {
        dev: u64::from(dev),
        ino,
        size: 0,
        mtime_ns: mtime_sec.saturating_mul(1_000_000_000),
    }
}

/// The identity of the file a process started before vigil runs, from
/// `/proc/PID/exe`, in the kernel's form (so it matches the identity its
/// next exec reports). Only trusted when the link still names `exe` (the
/// process may have exec'd since); Unknown otherwise.
fn proc_identity(pid: u32, exe: &[u8], live: bool) -> ExeIdentity {
    if !live {
        return ExeIdentity::Unknown;
    }
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let link = format!("/proc/{pid}/exe");
    if !std::fs::read_link(&link).is_ok_and(|t| t.as_os_str().as_bytes() == exe) {
        return ExeIdentity::Unknown;
    }
    match std::fs::metadata(&link) {
        Ok(m) => {
            // st_dev (new_encode_dev) -> s_dev (MKDEV: major << 20 | minor)
            let d = m.dev();
            let major = ((d >> 8) & 0xfff) | ((d >> 32) & !0xfff);
            let minor = (d & 0xff) | ((d >> 12) & !0xff);
            kernel_identity(((major << 20) | minor) as u32, m.ino(), m.mtime())
        }
        Err(_) => ExeIdentity::Unknown,
    }
}

/// The container of a process as the learner keys it: id, the image from
/// the runtime's state, the cgroup path as the fallback.
fn container_ref<'a>(p: &'a crate::enrich::ProcInfo, ev: &'a Event) -> Option<ContainerRef<'a>> {
    p.container.as_deref().map(|c| ContainerRef {
        id: Some(c.id.as_str()),
        image: ev
            .container_meta
            .as_deref()
            .and_then(|m| m.image.as_deref()),
        cgroup_path: ev.cgroup_path.as_deref().map(str::as_bytes),
    })
}

/// The program name in `argv[0]`: its file name, up to the first space (a
/// process title such as `redis-server 127.0.0.1:6379` or `postgres:
/// checkpointer` rewrites `argv[0]` in place), without a trailing `:`.
fn argv0_name(args: &[Vec<u8>]) -> Option<&[u8]> {
    let a = args.first()?;
    let a = a.split(|&b| b == b' ').next()?;
    let a = a.rsplit(|&b| b == b'/').next()?;
    let a = a.strip_suffix(b":").unwrap_or(a);
    (!a.is_empty()).then_some(a)
}

fn transport(proto: u16) -> Transport {
    match i32::from(proto) {
        libc::IPPROTO_TCP => Transport::Tcp,
        libc::IPPROTO_UDP => Transport::Udp,
        p => Transport::Other(p as u8),
    }
}

impl Learner {
    /// Entries in the learner's tables (`vigil_state_entries`).
    pub fn table_sizes(&self, out: &mut Vec<(&'static str, usize)>) {
        out.extend([
            ("baseline_profiles", self.baselines.len()),
            ("baseline_items", self.baselines.items()),
            ("learner_processes", self.refs.len() + self.dead.len()),
            ("learner_kernel_slots", self.slot_of.len()),
        ]);
    }

    /// A learner over `baselines`; `live` reads identities from /proc.
    pub fn new(baselines: Baselines, live: bool) -> Learner {
        Learner {
            syscalls_on: false,
            slots: Vec::new(),
            slot_of: HashMap::new(),
            pending: Vec::new(),
            slots_exhausted: 0,
            baselines,
            refs: HashMap::new(),
            dead: HashMap::new(),
            live,
            by_ns: HashMap::new(),
            ns_of: HashMap::new(),
        }
    }

    /// Remembers the pid a process has in its own pid namespace.
    fn note_ns(&mut self, pid: u32, pidns: u32, ns_pid: u32) {
        if ns_pid == 0 || ns_pid == pid {
            return;
        }
        if let Some(old) = self.ns_of.insert(pid, (pidns, ns_pid))
            && old != (pidns, ns_pid)
            && self.by_ns.get(&old) == Some(&pid)
        {
            self.by_ns.remove(&old);
        }
        self.by_ns.insert((pidns, ns_pid), pid);
    }

    /// Offers a path the process of `ev` opened or ran to its profile `r`
    /// (or, for a spawn, its parent's), generalised knowing the process's
    /// ids.
    fn observe_path(
        &mut self,
        ev: &Event,
        r: ProfileRef,
        mine: Option<ProfileRef>,
        b: &Behaviour<'_>,
    ) -> Vec<Anomaly> {
        let h = &ev.k.hdr;
        let (refs, by_ns) = (&self.refs, &self.by_ns);
        let is_pid = |n: u32| family_pid(refs, by_ns, h, mine, n);
        self.baselines.observe_ref_for(r, ev.unix_ns, b, &is_pid)
    }

    fn profile_of(&mut self, ev: &Event, pid: u32) -> Option<ProfileRef> {
        let start = ev
            .process
            .as_ref()
            .filter(|p| p.pid == pid)
            .map(|p| p.start_ns);
        // Start times from /proc (seeded processes) have clock-tick
        // precision and those of events nanoseconds: same process within
        // 100 ms (a pid is not reused that fast).
        if let Some((s, r)) = self.refs.get(&pid)
            && (*s == 0 || start.is_none_or(|t| t.abs_diff(*s) < 100_000_000))
        {
            return *r;
        }
        // A process seen for the first time (started before the agent).
        let p = ev.process.as_ref().filter(|p| p.pid == pid)?;
        if p.exe.is_empty() {
            return None;
        }
        let subject = Subject {
            executable: &p.exe,
            identity: proc_identity(pid, &p.exe, self.live),
            container: container_ref(p, ev),
        };
        let r = self.baselines.resolve(&subject, ev.unix_ns);
        if let (Some(r), Some(n)) = (r, argv0_name(&p.args)) {
            self.baselines.note_name(r, n);
        }
        self.refs.insert(pid, (p.start_ns, r));
        r
    }

    /// The profile of the event's process (its name and mode), as resolved
    /// by [`Learner::observe`].
    pub fn profile_mode(&mut self, ev: &Event) -> Option<(String, vigil_baselines::Mode)> {
        let r = self.profile_of(ev, ev.k.hdr.pid)?;
        self.baselines.profile_of_ref(r)
    }

    /// Offers one event; returns the anomalies it raised.
    pub fn observe(&mut self, ev: &Event) -> Vec<Anomaly> {
        let h = &ev.k.hdr;
        if h.ns_pid != h.pid && h.ns_pid != 0 && !self.ns_of.contains_key(&h.pid) {
            self.note_ns(h.pid, h.pidns, h.ns_pid);
        }
        match &ev.k.body {
            Body::Exec { info, .. } => {
                // The new image's profile, resolved once.
                let Some(p) = ev.process.as_ref() else {
                    return Vec::new();
                };
                let subject = Subject {
                    executable: &p.exe,
                    identity: kernel_identity(info.dev, info.ino, info.mtime_sec),
                    container: container_ref(p, ev),
                };
                let r = self.baselines.resolve(&subject, ev.unix_ns);
                if let Some(r) = r {
                    // The names it runs under: comm (the exec'd file name)
                    // and argv[0]'s, which differ for a symlink or multicall
                    // binary (redis-server -> redis-check-rdb).
                    self.baselines.note_name(r, ev.k.comm());
                    if let Some(n) = argv0_name(&p.args) {
                        self.baselines.note_name(r, n);
                    }
                }
                self.refs.insert(h.pid, (h.start_ns, r));
                self.dead.remove(&h.pid);
                self.note_ns(h.pid, h.pidns, h.ns_pid);
                if self.syscalls_on
                    && let Some(r) = r
                {
                    self.learn_syscalls_of(&subject, r, info.dev, info.ino, h.pid);
                }
                // The parent spawned it.
                let Some(parent) = ev.ancestors.first() else {
                    return Vec::new();
                };
                let parent_ref = match self.refs.get(&parent.pid) {
                    Some((_, r)) => *r,
                    None if !parent.exe.is_empty() => {
                        let subject = Subject {
                            executable: &parent.exe,
                            identity: proc_identity(parent.pid, &parent.exe, self.live),
                            container: container_ref(p, ev),
                        };
                        let r = self.baselines.resolve(&subject, ev.unix_ns);
                        self.refs.insert(parent.pid, (0, r));
                        r
                    }
                    None => None,
                };
                match parent_ref {
                    // the parent ran it: its family's ids
                    Some(pr) => {
                        self.observe_path(ev, pr, Some(pr), &Behaviour::Spawn { child: &p.exe })
                    }
                    None => Vec::new(),
                }
            }
            Body::Fork(f) => {
                // The child runs the parent's image until it execs.
                if let Some(&(_, r)) = self.refs.get(&h.pid) {
                    self.refs.insert(f.child_pid, (f.child_start_ns, r));
                    self.dead.remove(&f.child_pid);
                }
                self.note_ns(f.child_pid, f.child_pidns, f.child_ns_pid);
                Vec::new()
            }
            Body::Exit(_) => {
                self.dead.entry(h.pid).or_insert(0);
                Vec::new()
            }
            Body::Open { info, .. } if info.ret >= 0 => {
                let Some(path) = ev.file_path.as_deref() else {
                    return Vec::new();
                };
                let Some(r) = self.profile_of(ev, h.pid) else {
                    return Vec::new();
                };
                self.observe_path(
                    ev,
                    r,
                    Some(r),
                    &Behaviour::Open {
                        path,
                        access: Access::from_open_flags(info.flags),
                    },
                )
            }
            // A rename, link or symlink onto a path writes that path (the
            // temp-file-and-rename of sed -i, editors, useradd, redis's
            // SAVE), and so does truncate(2) of a path: learned and checked
            // like an open for writing of the destination.
            Body::FChange { info, .. }
                if ecs::file_written(ev) == Some(true)
                    || (info.syscall == vigil_bpf::abi::sys::TRUNCATE && info.ret >= 0) =>
            {
                let Some(path) = ev.file_path.as_deref() else {
                    return Vec::new();
                };
                let Some(r) = self.profile_of(ev, h.pid) else {
                    return Vec::new();
                };
                self.observe_path(
                    ev,
                    r,
                    Some(r),
                    &Behaviour::Open {
                        path,
                        access: Access::WRITE,
                    },
                )
            }
            Body::Sock { info, .. } => {
                if !ecs::succeeded(h.kind, info.ret) {
                    return Vec::new();
                }
                let t = transport(info.protocol);
                let b = match h.kind {
                    // a datagram sent is a connection to its peer
                    kind::CONNECT | kind::UDP_SEND => {
                        match crate::event::ip(info.family, &info.raddr) {
                            Some(ip) => Behaviour::Connect {
                                ip,
                                port: info.rport,
                                transport: t,
                            },
                            None => return Vec::new(),
                        }
                    }
                    kind::LISTEN => Behaviour::Listen {
                        port: info.lport,
                        transport: t,
                    },
                    kind::ACCEPT => Behaviour::Accept {
                        peer: crate::event::ip(info.family, &info.raddr)
                            .filter(|a: &IpAddr| !a.is_unspecified()),
                        port: info.lport,
                        transport: t,
                    },
                    _ => return Vec::new(),
                };
                if matches!(i32::from(info.family), libc::AF_UNIX) {
                    return Vec::new();
                }
                let Some(r) = self.profile_of(ev, h.pid) else {
                    return Vec::new();
                };
                self.baselines.observe_ref(r, ev.unix_ns, &b)
            }
            Body::Capable(c) if c.ret == 0 && (0..64).contains(&c.cap) => {
                let Some(r) = self.profile_of(ev, h.pid) else {
                    return Vec::new();
                };
                self.baselines.observe_ref(
                    r,
                    ev.unix_ns,
                    &Behaviour::Capability { cap: c.cap as u8 },
                )
            }
            Body::SetId(s) if s.ret == 0 => {
                // The effective uid asked for: setuid(x) -> x; setreuid(r, e)
                // and setresuid(r, e, s) -> e (or r when e is -1).
                use vigil_bpf::abi::sys;
                let to = match s.syscall {
                    sys::SETUID | sys::SETFSUID => s.id[0],
                    sys::SETREUID | sys::SETRESUID if s.id[1] != -1 => s.id[1],
                    sys::SETREUID | sys::SETRESUID => s.id[0],
                    _ => return Vec::new(),
                };
                if to < 0 || to as u32 == h.euid {
                    return Vec::new();
                }
                let Some(r) = self.profile_of(ev, h.pid) else {
                    return Vec::new();
                };
                self.baselines.observe_ref(
                    r,
                    ev.unix_ns,
                    &Behaviour::UidChange {
                        from: h.euid,
                        to: to as u32,
                    },
                )
            }
            _ => Vec::new(),
        }
    }

    /// Starts kernel syscall learning for a learning profile's executable.
    fn learn_syscalls_of(
        &mut self,
        subject: &Subject<'_>,
        r: ProfileRef,
        dev: u32,
        ino: u64,
        tgid: u32,
    ) {
        if ino == 0 {
            return;
        }
        let slot = match self.slot_of.get(&(dev, ino)) {
            Some(&s) => s,
            None => {
                let keys = vigil_baselines::profile_keys(
                    subject,
                    self.baselines.config().container_keying,
                );
                if self.baselines.mode_of(&keys.primary) != Some(vigil_baselines::Mode::Learning) {
                    return;
                }
                if self.slots.len() as u32 >= vigil_bpf::abi::LEARN_SLOTS {
                    self.slots_exhausted += 1;
                    return;
                }
                let s = self.slots.len() as u32;
                self.slots.push(Slot {
                    r,
                    key: keys.primary,
                    dev,
                    ino,
                    seen: [0; vigil_baselines::SYSCALL_WORDS],
                    active: true,
                });
                self.slot_of.insert((dev, ino), s);
                self.pending.push(LearnOp::Exe { dev, ino, slot: s });
                s
            }
        };
        if self.slots[slot as usize].active {
            // This process started before the kernel knew the file.
            self.pending.push(LearnOp::Proc { tgid, slot });
        }
    }

    /// Whether some executable is being learned (the kernel program is
    /// needed).
    pub fn learning_syscalls(&self) -> bool {
        self.slots.iter().any(|s| s.active)
    }

    /// Kernel map changes to apply now.
    pub fn take_ops(&mut self) -> Vec<LearnOp> {
        std::mem::take(&mut self.pending)
    }

    /// Feeds the kernel's syscall bitmaps (`read(slot)`) into the profiles;
    /// returns anomalies (syscalls new to promoted profiles). Slots whose
    /// profile left learning stop learning in the kernel.
    pub fn collect_syscalls(
        &mut self,
        now_ns: i64,
        mut read: impl FnMut(u32) -> Option<vigil_baselines::SyscallSet>,
    ) -> Vec<Anomaly> {
        let mut out = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if !slot.active {
                continue;
            }
            let Some(set) = read(i as u32) else {
                continue;
            };
            if set != slot.seen {
                slot.seen = set;
                out.extend(self.baselines.observe_ref(
                    slot.r,
                    now_ns,
                    &Behaviour::Syscalls { set: &set },
                ));
            }
            if self.baselines.mode_of(&slot.key) != Some(vigil_baselines::Mode::Learning) {
                slot.active = false;
                self.pending.push(LearnOp::ForgetExe {
                    dev: slot.dev,
                    ino: slot.ino,
                });
            }
        }
        out
    }

    /// Forgets processes dead for three housekeeping rounds (bounded
    /// memory without losing the parent of a late-processed exec).
    pub fn expire(&mut self, alive: impl Fn(u32) -> bool) {
        for pid in self.refs.keys().chain(self.ns_of.keys()) {
            if !alive(*pid) {
                self.dead.entry(*pid).or_insert(0);
            }
        }
        let mut gone = Vec::new();
        for (pid, rounds) in self.dead.iter_mut() {
            *rounds += 1;
            if *rounds >= 3 {
                gone.push(*pid);
            }
        }
        for pid in gone {
            self.dead.remove(&pid);
            self.refs.remove(&pid);
            if let Some(k) = self.ns_of.remove(&pid)
                && self.by_ns.get(&k) == Some(&pid)
            {
                self.by_ns.remove(&k);
            }
        }
    }
}

/// An anomaly found outside an event (syscalls, read from the kernel's
/// bitmaps at housekeeping): the baseline fields without process context.
pub fn encode_anomaly_bare(hostname: &str, a: &Anomaly) -> Vec<u8> {
    let kind = a.kind.name();
    let mut w = vigil_outputs::json::Writer::new();
    w.str("@timestamp", ecs::rfc3339(a.unix_ns))
        .str("event.kind", "alert")
        .strs("event.category", ["process"])
        .str("event.action", "syscall")
        .str("event.module", "vigil")
        .u64("event.severity", 47)
        .str(
            "message",
            format!("New {kind} for {} ({}): {}", a.profile, a.mode, a.item),
        )
        .str("rule.id", format!("baseline.{kind}"))
        .str(
            "rule.name",
            format!("Behaviour outside the learned baseline: new {kind}"),
        )
        .str("rule.ruleset", "baseline")
        .str("host.hostname", hostname)
        .str("vigil.severity", "medium")
        .str("vigil.baseline.profile", a.profile.as_bytes())
        .str("vigil.baseline.mode", a.mode.to_string())
        .str("vigil.baseline.kind", kind)
        .str("vigil.baseline.item", a.item.as_bytes())
        .bool("vigil.baseline.events_lost", a.events_lost)
        .bool("vigil.baseline.lossy", a.baseline_lossy);
    w.finish()
}

/// An anomaly record: the event's ECS fields plus what is new and the
/// profile it is new to.
pub fn encode_anomaly(ev: &Event, hostname: &str, a: &Anomaly) -> Vec<u8> {
    encode_anomaly_with(ev, hostname, a, None)
}

/// What the drift of a locked baseline killed: the process whose profile
/// drifted, and for a new child, that child.
#[derive(Debug, Clone)]
pub struct DriftResponse {
    /// The process whose profile drifted.
    pub process: crate::detect::response::Response,
    /// The new child (spawn drift).
    pub child: Option<crate::detect::response::Response>,
}

/// As [`encode_anomaly`], with what a locked baseline's drift kill did
/// (`vigil.response.*`; the new child's outcome in
/// `vigil.response.child_outcome`).
pub fn encode_anomaly_with(
    ev: &Event,
    hostname: &str,
    a: &Anomaly,
    response: Option<&DriftResponse>,
) -> Vec<u8> {
    let kind = a.kind.name();
    let message = format!(
        "New {kind} for {} ({}): {}{}",
        a.profile,
        a.mode,
        a.item,
        if a.baseline_lossy {
            " (the baseline was learned while events were lost: this may be a gap in it)"
        } else {
            ""
        }
    );
    let id = format!("baseline.{kind}");
    ecs::encode_with(
        ev,
        hostname,
        "alert",
        |w| {
            w.u64("event.severity", 47)
                .str("message", message.as_bytes())
                .str("rule.id", id.as_bytes())
                .str(
                    "rule.name",
                    format!("Behaviour outside the learned baseline: new {kind}"),
                )
                .str("rule.ruleset", "baseline");
        },
        |w| {
            w.str("vigil.severity", "medium")
                .str("vigil.baseline.profile", a.profile.as_bytes())
                .str("vigil.baseline.mode", a.mode.to_string())
                .str("vigil.baseline.kind", kind)
                .str("vigil.baseline.item", a.item.as_bytes())
                .bool("vigil.baseline.events_lost", a.events_lost)
                .bool("vigil.baseline.lossy", a.baseline_lossy);
            if let Some(acc) = a.access {
                w.str("vigil.baseline.access", acc.to_string());
            }
            if let Some(d) = response {
                let r = &d.process;
                w.str("vigil.response.action", "kill")
                    .str("vigil.response.outcome", r.outcome)
                    .str("vigil.response.how", r.how)
                    .u64("vigil.response.latency_ns", r.latency_ns);
                if let Some(why) = &r.reason {
                    w.str("vigil.response.reason", why.as_bytes());
                }
                if let Some(c) = &d.child {
                    w.str("vigil.response.child_outcome", c.outcome);
                }
            }
        },
    )
}
