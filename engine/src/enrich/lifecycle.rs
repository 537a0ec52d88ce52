//! Container lifecycle and container escapes.
//!
//! A **container** is either a runtime's container (its cgroup path names
//! it by id: docker, podman, containerd, CRI-O, Kubernetes, runc; see
//! [`crate::container`]) or, without a runtime id, a process tree in a pid
//! namespace of its own *and* a cgroup of its own (`unshare`, bubblewrap,
//! systemd-nspawn, a hand-made runc bundle): its id is `pidns-<inode>` and
//! its name the last component of its cgroup path.
//!
//! It **starts** at the first exec of a process with that identity (runc,
//! crun and unshare exec the entrypoint after joining the cgroup and the
//! namespaces) and **stops** when its last member exits. Members are the
//! processes that exec'd with its identity, their forks, and processes
//! forked into its pid namespace from outside (`nsenter`, `runc exec`).
//! Containers already running when vigil starts are found in the /proc
//! seed and get a start record flagged `vigil.container.seen_at_start`
//! (so every stop has a start and a SIEM learns what runs).
//!
//! **Escapes** are events of a member that reach outside its container:
//! a successful `setns` into a namespace owned by the host, another
//! container, or a process outside any container; an open for writing of
//! a file whose mount belongs to another mount namespace (reached through
//! `/proc/PID/root`); a privileged mount. The owner of a namespace inode is
//! looked up in the namespaces of the host (vigil's own), of the containers
//! (their first exec's header and `/proc/PID/ns/*` of that process) and,
//! on a miss, by a /proc scan (at most one per second).

use crate::event::{Ancestor, Event, basename, join_args};
pub use crate::event::{Ctr, Escape, Lifecycle, Phase, Target};
use crate::host::{Host, NsInodes, ProcSnapshot};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use vigil_bpf::abi::kind;
use vigil_bpf::decode::Body;

/// Inodes of the host's namespaces: pid 1's when it shares vigil's pid
/// namespace (a service manager gives vigil its own mount and UTS
/// namespaces: ProtectSystem=, PrivateTmp=, ProtectHostname=), else
/// vigil's own.
pub fn host_namespaces() -> NsInodes {
    use std::sync::OnceLock;
    static NS: OnceLock<NsInodes> = OnceLock::new();
    *NS.get_or_init(|| {
        let me = crate::host::read_ns(std::process::id()).unwrap_or_default();
        pick_host_namespaces(me, crate::host::read_ns(1))
    })
}

/// [`host_namespaces`]' choice: init's namespaces if init is in vigil's pid
/// namespace.
fn pick_host_namespaces(me: NsInodes, init: Option<NsInodes>) -> NsInodes {
    match init {
        Some(i) if i.pid != 0 && i.pid == me.pid => i,
        _ => me,
    }
}

/// Runtime from the cgroup path's guess, refined by the process's parent
/// chain (the runtime's own process: conmon, containerd-shim, runc, crun,
/// unshare...) and by whose state named the container.
pub fn runtime_of(
    cgroup_runtime: Option<&'static str>,
    cgroup_path: &str,
    ancestors: &[Ancestor],
    meta_source: Option<&str>,
) -> &'static str {
    if let Some(rt) = cgroup_runtime
        && rt != "runc"
    {
        return rt;
    }
    for a in ancestors {
        let n = basename(&a.exe);
        let rt = match n {
            b"conmon" if cgroup_path.contains("crio") => "cri-o",
            b"conmon" => "podman",
            b"runc" => "runc",
            b"crun" => "crun",
            b"unshare" => "unshare",
            b"bwrap" => "bubblewrap",
            b"systemd-nspawn" => "systemd-nspawn",
            b"lxc-start" => "lxc",
            _ if n.starts_with(b"containerd-shim") => "containerd",
            _ => continue,
        };
        return rt;
    }
    match meta_source {
        Some("crun") => "crun",
        Some("runc") => "runc",
        Some("containerd") => "containerd",
        _ => cgroup_runtime.unwrap_or("unknown"),
    }
}

/// The runtime's own executables: `runc init` and `crun` are exec'd in
/// the container's cgroup before they build its namespaces, so their exec
/// is not the container's start (the entrypoint's is). runc runs itself
/// from a sealed memfd copy, whose path is not `runc`: its argv\[0\] is.
pub fn is_runtime_binary(exe: &[u8]) -> bool {
    let n = basename(exe);
    matches!(n, b"runc" | b"crun" | b"runsc" | b"conmon" | b"youki")
        || n.starts_with(b"containerd-shim")
}

/// Kubernetes pod uid in a cgroup path (`/kubepods/<qos>/pod<uid>/<id>`,
/// `kubepods-<qos>-pod<uid>.slice`).
pub fn pod_of(cgroup_path: &str) -> Option<&str> {
    if !cgroup_path.contains("kubepods") {
        return None;
    }
    cgroup_path.split('/').find_map(|seg| {
        let seg = seg.strip_suffix(".slice").unwrap_or(seg);
        seg.strip_prefix("pod")
            .or_else(|| seg.rsplit_once("-pod").map(|(_, u)| u))
            .filter(|u| !u.is_empty())
    })
}

/// Whether a mount from inside a container is privileged: a block device
/// (source under `/dev/` with a disk filesystem type), a cgroup v1
/// hierarchy (its `release_agent` runs on the host), procfs or sysfs
/// without `MS_RDONLY`, or a kernel interface filesystem.
pub fn privileged_mount(source: &[u8], fstype: &[u8], flags: u64) -> bool {
    const MS_RDONLY: u64 = 1;
    const MS_BIND: u64 = 4096;
    const KERNEL_FS: &[&[u8]] = &[b"debugfs", b"tracefs", b"securityfs", b"bpf", b"configfs"];
    const VIRTUAL: &[&[u8]] = &[
        b"tmpfs",
        b"devpts",
        b"mqueue",
        b"proc",
        b"sysfs",
        b"overlay",
        b"cgroup2",
        b"devtmpfs",
        b"fuse",
        b"",
    ];
    if fstype == b"cgroup" || KERNEL_FS.contains(&fstype) {
        return true;
    }
    if matches!(fstype, b"proc" | b"sysfs") && flags & MS_RDONLY == 0 {
        return true;
    }
    source.starts_with(b"/dev/") && flags & MS_BIND == 0 && !VIRTUAL.contains(&fstype)
}

const WRITE_FLAGS: u32 = (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u32;

/// Containers known to the tracker are capped (ids are cheap, but a hostile
/// workload could make many pid namespaces).
const MAX_CONTAINERS: usize = 65_536;

/// The tracker.
pub struct Tracker {
    ctrs: HashMap<Arc<str>, Ctr>,
    members: HashMap<u32, Arc<str>>,
    by_pidns: HashMap<u32, Arc<str>>,
    ns_owner: HashMap<u32, Arc<str>>,
    /// Namespaces whose owner a scan did not find, and when (boot ns).
    unknown_ns: HashMap<u32, u64>,
    last_scan_ns: u64,
    host: NsInodes,
    pending: Vec<Lifecycle>,
}

impl Tracker {
    /// A tracker; `host` are the host's namespace inodes.
    pub fn new(host: NsInodes) -> Tracker {
        Tracker {
            ctrs: HashMap::new(),
            members: HashMap::new(),
            by_pidns: HashMap::new(),
            ns_owner: HashMap::new(),
            unknown_ns: HashMap::new(),
            last_scan_ns: 0,
            host,
            pending: Vec::new(),
        }
    }

    /// Entries in the tracker's tables (`vigil_state_entries`).
    pub fn table_sizes(&self, out: &mut Vec<(&'static str, usize)>) {
        out.extend([
            ("containers", self.ctrs.len()),
            ("container_processes", self.members.len()),
            (
                "container_namespaces",
                self.by_pidns.len() + self.ns_owner.len() + self.unknown_ns.len(),
            ),
        ]);
    }

    /// Lifecycle records produced since the last call.
    pub fn take(&mut self) -> Vec<Lifecycle> {
        std::mem::take(&mut self.pending)
    }

    /// Containers running.
    pub fn running(&self) -> impl Iterator<Item = &Ctr> {
        self.ctrs.values()
    }

    /// The container a process belongs to.
    pub fn container_of(&self, pid: u32) -> Option<&Ctr> {
        self.members.get(&pid).and_then(|k| self.ctrs.get(k))
    }

    fn index(&mut self, key: &Arc<str>, inodes: &[u32]) {
        for &i in inodes {
            if i != 0 && !self.host.contains(i) {
                self.ns_owner.entry(i).or_insert_with(|| key.clone());
                self.unknown_ns.remove(&i);
            }
        }
    }

    fn start(&mut self, ctr: Ctr, ns: Option<NsInodes>, hdr_ns: [u32; 3], at_ns: u64) {
        if self.ctrs.len() >= MAX_CONTAINERS {
            return;
        }
        let key = ctr.id.clone();
        self.members.insert(ctr.init_pid, key.clone());
        if ctr.pidns != 0 && ctr.pidns != self.host.pid {
            self.by_pidns
                .entry(ctr.pidns)
                .or_insert_with(|| key.clone());
        }
        self.index(&key, &hdr_ns);
        if let Some(ns) = ns {
            self.index(&key, &ns.all());
        }
        self.pending.push(Lifecycle {
            phase: Phase::Start,
            ctr: ctr.clone(),
            at_ns,
        });
        self.ctrs.insert(key, ctr);
    }

    fn leave(&mut self, pid: u32, at_ns: u64) {
        let Some(key) = self.members.remove(&pid) else {
            return;
        };
        let empty = match self.ctrs.get_mut(&key) {
            Some(c) => {
                c.members.remove(&pid);
                c.members.is_empty()
            }
            None => false,
        };
        if empty && let Some(c) = self.ctrs.remove(&key) {
            self.by_pidns.retain(|_, k| *k != key);
            self.ns_owner.retain(|_, k| *k != key);
            self.pending.push(Lifecycle {
                phase: Phase::Stop,
                ctr: c,
                at_ns,
            });
        }
    }

    fn join(&mut self, pid: u32, key: &Arc<str>) {
        if let Some(c) = self.ctrs.get_mut(key) {
            c.members.insert(pid);
            self.members.insert(pid, key.clone());
        }
    }

    /// Containers running when the agent started, from the /proc seed
    /// (their processes become members; start records flagged
    /// `seen_at_start`).
    pub fn seed(&mut self, procs: &[ProcSnapshot], at_ns: u64, host: &mut dyn Host) {
        let by_pid: HashMap<u32, &ProcSnapshot> = procs.iter().map(|p| (p.pid, p)).collect();
        let mut found: Vec<(
            Arc<str>,
            &ProcSnapshot,
            NsInodes,
            Option<crate::container::Container>,
        )> = Vec::new();
        for p in procs {
            let runtime_ctr = crate::container::from_proc_cgroup(&p.cgroup);
            let v2 = crate::container::v2_path(&p.cgroup).unwrap_or("/");
            if runtime_ctr.is_none() && v2 == "/" {
                continue;
            }
            let Some(ns) = host.ns_inodes(p.pid) else {
                continue;
            };
            let key: Arc<str> = match &runtime_ctr {
                Some(c) => c.id.as_str().into(),
                None if ns.pid != 0 && ns.pid != self.host.pid => {
                    format!("pidns-{}", ns.pid).into()
                }
                None => continue,
            };
            found.push((key, p, ns, runtime_ctr));
        }
        // the init of each container: the member whose parent is not one
        let keys: HashMap<u32, Arc<str>> =
            found.iter().map(|(k, p, ..)| (p.pid, k.clone())).collect();
        for (key, p, ns, rc) in &found {
            if let Some(c) = self.ctrs.get_mut(key) {
                c.members.insert(p.pid);
                self.members.insert(p.pid, key.clone());
                self.index(key, &ns.all());
                continue;
            }
            // start from the topmost member of this container
            let mut top = *p;
            let mut guard = 0;
            while let Some(parent) = by_pid.get(&top.ppid)
                && keys.get(&parent.pid) == Some(key)
                && guard < 64
            {
                top = parent;
                guard += 1;
            }
            let v2 = crate::container::v2_path(&p.cgroup).unwrap_or("/");
            let ancestors: Vec<Ancestor> = {
                let mut v = Vec::new();
                let mut next = top.ppid;
                while let Some(a) = by_pid.get(&next)
                    && v.len() < 8
                {
                    v.push(Ancestor {
                        pid: a.pid,
                        exe: a.exe.clone().into(),
                        args: Arc::from(Vec::new()),
                        cmdline: Arc::from(&b""[..]),
                        hash: None,
                        start_ns: 0,
                    });
                    if a.ppid == a.pid {
                        break;
                    }
                    next = a.ppid;
                }
                v
            };
            let meta = rc.as_ref().and_then(|c| host.container_meta(&c.id));
            let leaf = v2.rsplit('/').next().filter(|s| !s.is_empty());
            let ctr = Ctr {
                id: key.clone(),
                name: meta
                    .as_ref()
                    .and_then(|m| m.name.as_deref())
                    .or(if rc.is_none() { leaf } else { None })
                    .map(Into::into),
                image: meta
                    .as_ref()
                    .and_then(|m| m.image.as_deref())
                    .map(Into::into),
                runtime: runtime_of(
                    rc.as_ref().map(|c| c.runtime),
                    v2,
                    &ancestors,
                    meta.as_ref().and_then(|m| m.source.as_deref()),
                ),
                pod: pod_of(v2).map(Into::into),
                cgroup_id: 0,
                cgroup_path: Some(v2.into()),
                pidns: ns.pid,
                init_pid: top.pid,
                init_exe: top.exe.clone().into(),
                init_cmdline: join_args(&top.args).into(),
                started_ns: top.start_ns,
                seen_at_start: true,
                members: HashSet::from([p.pid]),
            };
            let init = top.pid;
            let mut ctr = ctr;
            ctr.members.insert(init);
            self.members.insert(p.pid, key.clone());
            self.start(ctr, Some(*ns), [0; 3], at_ns);
        }
    }

    /// Processes that are gone without an exit record (lost events): a
    /// container whose members are all gone stops (housekeeping).
    pub fn sweep(&mut self, alive: impl Fn(u32) -> bool, now_ns: u64) {
        let dead: Vec<u32> = self
            .members
            .keys()
            .copied()
            .filter(|p| !alive(*p))
            .collect();
        for p in dead {
            self.leave(p, now_ns);
        }
    }

    /// Follows one enriched event (membership, start, stop) and returns
    /// the escape it is, if any. Call after enrichment, before rules.
    pub fn observe(&mut self, ev: &Event, host: &mut dyn Host) -> Option<Escape> {
        let h = &ev.k.hdr;
        // escapes first: a setns record's header already shows the
        // namespaces joined
        let esc = self.escape(ev, host);
        match &ev.k.body {
            Body::Exec { .. } => {
                if !self.members.contains_key(&h.pid)
                    && let Some(p) = ev.process.as_deref()
                    && !is_runtime_binary(&p.exe)
                    && !p.args.first().is_some_and(|a| is_runtime_binary(a))
                {
                    let cg = ev.cgroup_path.as_deref().unwrap_or("/");
                    let rc = p
                        .container
                        .as_deref()
                        .cloned()
                        .or_else(|| crate::container::from_cgroup_path(cg));
                    let key: Option<Arc<str>> = match &rc {
                        Some(c) => Some(c.id.as_str().into()),
                        None if h.pidns != 0 && h.pidns != self.host.pid && h.cgroup_id > 1 => {
                            Some(format!("pidns-{}", h.pidns).into())
                        }
                        None => None,
                    };
                    if let Some(key) = key {
                        if self.ctrs.contains_key(&key) {
                            self.join(h.pid, &key);
                        } else {
                            let meta = ev.container_meta.as_deref().cloned().or_else(|| {
                                // the container of a cgroup path only (not
                                // yet in the process table): read its state
                                match (&p.container, &rc) {
                                    (None, Some(c)) => host.container_meta(&c.id),
                                    _ => None,
                                }
                            });
                            let leaf = cg.rsplit('/').next().filter(|s| !s.is_empty());
                            let ctr = Ctr {
                                id: key.clone(),
                                name: meta
                                    .as_ref()
                                    .and_then(|m| m.name.as_deref())
                                    .or(if rc.is_none() { leaf } else { None })
                                    .map(Into::into),
                                image: meta
                                    .as_ref()
                                    .and_then(|m| m.image.as_deref())
                                    .map(Into::into),
                                runtime: runtime_of(
                                    rc.as_ref().map(|c| c.runtime),
                                    cg,
                                    &ev.ancestors,
                                    meta.as_ref().and_then(|m| m.source.as_deref()),
                                ),
                                pod: pod_of(cg).map(Into::into),
                                cgroup_id: h.cgroup_id,
                                cgroup_path: ev.cgroup_path.clone(),
                                pidns: h.pidns,
                                init_pid: h.pid,
                                init_exe: p.exe.clone(),
                                init_cmdline: p.cmdline.clone(),
                                started_ns: h.ts_ns,
                                seen_at_start: false,
                                members: HashSet::from([h.pid]),
                            };
                            let ns = host.ns_inodes(h.pid);
                            self.start(ctr, ns, [h.pidns, h.mntns, h.netns], h.ts_ns);
                        }
                    }
                }
            }
            Body::Fork(f) => {
                let key = self
                    .members
                    .get(&h.pid)
                    .or_else(|| self.by_pidns.get(&f.child_pidns))
                    .cloned();
                if let Some(key) = key {
                    self.join(f.child_pid, &key);
                }
            }
            Body::Exit(_) => self.leave(h.pid, h.ts_ns),
            _ => {}
        }
        esc
    }

    fn escape(&mut self, ev: &Event, host: &mut dyn Host) -> Option<Escape> {
        let h = &ev.k.hdr;
        let (kind, ns, target_pid) = match &ev.k.body {
            Body::Ns(n) if h.kind == kind::SETNS && n.ret == 0 => {
                ("setns", n.target_ns, n.target_pid)
            }
            Body::Open { info, .. }
                if info.ret >= 0 && info.foreign_mntns != 0 && info.flags & WRITE_FLAGS != 0 =>
            {
                ("proc-root-write", info.foreign_mntns, 0)
            }
            Body::Mount {
                info,
                source,
                fstype,
                ..
            } if info.ret == 0 && privileged_mount(source, fstype, info.flags) => {
                ("privileged-mount", 0, 0)
            }
            _ => return None,
        };
        let key = self.members.get(&h.pid)?.clone();
        let src = self.ctrs.get(&key)?;
        let (source_name, pod) = (src.name.clone(), src.pod.clone());
        let target = if kind == "privileged-mount" {
            Target::Host
        } else if target_pid != 0 {
            match self.container_of(target_pid) {
                Some(c) => Target::Container(c.id.clone(), c.name.clone()),
                None if self.host.contains(ns) => Target::Host,
                None => Target::Process(target_pid),
            }
        } else {
            self.owner(ns, h.ts_ns, host)
        };
        if let Target::Container(id, _) = &target {
            let same_pod = pod.is_some() && self.ctrs.get(id).and_then(|c| c.pod.clone()) == pod;
            if *id == key || same_pod {
                return None;
            }
        }
        Some(Escape {
            kind,
            source_id: key,
            source_name,
            target,
            target_ns: ns,
        })
    }

    /// Who owns a namespace inode.
    fn owner(&mut self, inum: u32, now_ns: u64, host: &mut dyn Host) -> Target {
        if inum == 0 {
            return Target::Unknown;
        }
        if self.host.contains(inum) {
            return Target::Host;
        }
        if let Some(k) = self.ns_owner.get(&inum)
            && let Some(c) = self.ctrs.get(k)
        {
            return Target::Container(c.id.clone(), c.name.clone());
        }
        if self
            .unknown_ns
            .get(&inum)
            .is_some_and(|t| now_ns.saturating_sub(*t) < 5_000_000_000)
            || now_ns.saturating_sub(self.last_scan_ns) < 1_000_000_000
        {
            return Target::Unknown;
        }
        self.last_scan_ns = now_ns;
        match host.ns_owner(inum) {
            Some(pid) => match self.container_of(pid) {
                Some(c) => {
                    let (id, name) = (c.id.clone(), c.name.clone());
                    self.ns_owner.insert(inum, id.clone());
                    Target::Container(id, name)
                }
                None => Target::Process(pid),
            },
            None => {
                if self.unknown_ns.len() > 4096 {
                    self.unknown_ns.clear();
                }
                self.unknown_ns.insert(inum, now_ns);
                Target::Unknown
            }
        }
    }
}

#[cfg(test)]
mod host_ns_tests {
    use super::*;

    #[test]
    fn host_namespaces_are_inits_when_it_shares_our_pid_namespace() {
        let me = NsInodes {
            pid: 1,
            mnt: 10,
            uts: 20,
            ..NsInodes::default()
        };
        let init = NsInodes {
            pid: 1,
            mnt: 11,
            uts: 21,
            ..NsInodes::default()
        };
        assert_eq!(pick_host_namespaces(me, Some(init)), init);
        let other = NsInodes { pid: 2, ..init };
        assert_eq!(pick_host_namespaces(me, Some(other)), me);
        assert_eq!(pick_host_namespaces(me, None), me);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Start at the first exec in a new pid namespace + cgroup, fork
    /// membership, a setns escape into the host, stop at the last exit.
    #[test]
    fn lifecycle_and_escape_from_records() {
        use crate::enrich::Enricher;
        use crate::host::{RecordedHost, Users};
        use vigil_bpf::abi::{self, Hdr};
        use vigil_bpf::decode::{decode, encode_record};
        let host_ns = host_namespaces();
        let mut en = Enricher::new(Arc::new(Users::default()), 0, 4);
        let mut host = RecordedHost::default();
        let hdr = |k: u16, pid: u32, ts: u64| Hdr {
            kind: k,
            pid,
            ppid: 1,
            ts_ns: ts,
            cgroup_id: 77,
            pidns: 4_000_000_001,
            mntns: 4_000_000_002,
            ..Hdr::default()
        };
        let mut run = |rec: Vec<u8>, en: &mut Enricher| en.enrich(decode(&rec).unwrap(), &mut host);
        run(
            encode_record(
                hdr(kind::EXEC, 500, 10),
                &abi::Exec::default(),
                &[b"/bin/sh"],
            ),
            &mut en,
        );
        let starts = en.tracker().take();
        assert_eq!(starts.len(), 1);
        assert_eq!(starts[0].phase, Phase::Start);
        assert_eq!(&*starts[0].ctr.id, "pidns-4000000001");
        let fork = abi::Fork {
            child_pid: 501,
            child_start_ns: 20,
            child_pidns: 4_000_000_001,
            ..Default::default()
        };
        run(encode_record(hdr(kind::FORK, 500, 20), &fork, &[]), &mut en);
        // the child joins the host's net namespace
        let ns = abi::Ns {
            ret: 0,
            target_ns: host_ns.net,
            fd: 3,
            ..Default::default()
        };
        let e = run(encode_record(hdr(kind::SETNS, 501, 30), &ns, &[]), &mut en);
        let esc = e.escape.as_deref().expect("escape");
        assert_eq!(esc.kind, "setns");
        assert_eq!(&*esc.source_id, "pidns-4000000001");
        assert_eq!(esc.target, Target::Host);
        // a setns into its own mount namespace is not one
        let own = abi::Ns {
            target_ns: 4_000_000_002,
            ..ns
        };
        let e = run(encode_record(hdr(kind::SETNS, 501, 31), &own, &[]), &mut en);
        assert_eq!(e.escape, None);
        // a process outside the container doing the same is not one either
        let mut outside = hdr(kind::SETNS, 900, 32);
        outside.pidns = host_ns.pid;
        let e = run(encode_record(outside, &ns, &[]), &mut en);
        assert_eq!(e.escape, None);
        run(
            encode_record(hdr(kind::EXIT, 500, 40), &abi::Exit::default(), &[]),
            &mut en,
        );
        assert!(en.tracker().take().is_empty(), "a member is left");
        run(
            encode_record(hdr(kind::EXIT, 501, 50), &abi::Exit::default(), &[]),
            &mut en,
        );
        let stops = en.tracker().take();
        assert_eq!(stops.len(), 1);
        assert_eq!(stops[0].phase, Phase::Stop);
        assert_eq!(stops[0].at_ns, 50);
        assert_eq!(en.tracker().running().count(), 0);
    }

    #[test]
    fn privileged_mounts() {
        assert!(privileged_mount(b"/dev/sda1", b"ext4", 0));
        assert!(privileged_mount(b"cgroup", b"cgroup", 0));
        assert!(privileged_mount(b"proc", b"proc", 0));
        assert!(!privileged_mount(b"proc", b"proc", 1));
        assert!(privileged_mount(b"none", b"debugfs", 0));
        assert!(!privileged_mount(b"tmpfs", b"tmpfs", 0));
        assert!(!privileged_mount(b"/dev/shm", b"tmpfs", 0));
        assert!(!privileged_mount(b"/dev/null", b"", 4096));
        assert!(!privileged_mount(b"overlay", b"overlay", 0));
    }

    #[test]
    fn pods() {
        assert_eq!(
            pod_of("/kubepods/besteffort/pod1234-ab/4f9c"),
            Some("1234-ab")
        );
        assert_eq!(
            pod_of(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12_34.slice/crio-x.scope"
            ),
            Some("12_34")
        );
        assert_eq!(pod_of("/docker/abc"), None);
    }

    #[test]
    fn runtimes_from_the_parent_chain() {
        let a = |exe: &str| Ancestor {
            pid: 1,
            exe: exe.as_bytes().into(),
            args: Arc::from(Vec::new()),
            cmdline: Arc::from(&b""[..]),
            hash: None,
            start_ns: 0,
        };
        assert_eq!(
            runtime_of(Some("podman"), "/libpod_parent/libpod-x", &[], None),
            "podman"
        );
        assert_eq!(
            runtime_of(Some("runc"), "/x/abc", &[a("/usr/bin/crun")], None),
            "crun"
        );
        assert_eq!(
            runtime_of(None, "/t", &[a("/usr/bin/unshare")], None),
            "unshare"
        );
        assert_eq!(
            runtime_of(None, "/t", &[a("/usr/bin/containerd-shim-runc-v2")], None),
            "containerd"
        );
        assert_eq!(runtime_of(Some("runc"), "/x", &[], Some("crun")), "crun");
        assert_eq!(runtime_of(None, "/x", &[a("/bin/sh")], None), "unknown");
    }
}
