//! Enrichment: a process table kept by fork/exec/exit events (seeded from
//! /proc after the sensors attach), user names, container identity and the
//! parent chain, turning a [`KernelEvent`] into an [`Event`].

use crate::enrich::idmap::{IdMap, id_map};
pub use crate::event::{Ancestor, Event, NsUser, ProcInfo, basename, join_args};
use crate::host::{ContainerMeta, Host, ProcSnapshot, Users, container_of};
use std::collections::HashMap;
use std::sync::Arc;
use vigil_bpf::decode::{Body, KernelEvent};

fn unix_ns_of(boot_offset_ns: i64, ts_ns: u64) -> i64 {
    boot_offset_ns.saturating_add(ts_ns as i64)
}

/// Containers' passwd tables kept (per mount namespace).
const PASSWD_CACHE: usize = 256;
/// Cgroup id -> path names kept (cleared when full).
const CGROUP_CACHE: usize = 4096;
/// A container's passwd table is read again after this long (boot ns).
const PASSWD_TTL_NS: u64 = 60_000_000_000;

/// Addresses the DNS cache remembers (about 100 bytes each).
const DNS_CACHE_ADDRESSES: usize = 65_536;

fn normalize_if_absolute(p: &[u8]) -> Vec<u8> {
    if p.starts_with(b"/") {
        normalize(p)
    } else {
        p.to_vec()
    }
}

/// Lexically normalizes an absolute path (`.`/`..`/`//`), as the kernel
/// would for a name that does not exist (so no symlinks to resolve).
pub fn normalize(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for seg in path.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Joins a base directory and a name: absolute names stand alone.
pub fn join(base: &[u8], name: &[u8]) -> Vec<u8> {
    if name.starts_with(b"/") {
        return normalize(name);
    }
    if base.is_empty() {
        // Base unknown: report the name exactly as passed.
        return name.to_vec();
    }
    let mut v = base.to_vec();
    v.push(b'/');
    v.extend_from_slice(name);
    normalize(&v)
}

/// The enricher: owns the process table and naming tables.
pub struct Enricher {
    procs: IdMap<u32, Arc<ProcInfo>>,
    users: Arc<Users>,
    user_names: IdMap<u32, Arc<str>>,
    group_names: IdMap<u32, Arc<str>>,
    cgroups: IdMap<u64, Option<Arc<str>>>,
    /// Container id -> runtime state (name, image) and when it was read.
    ctr_meta: HashMap<String, (Option<Arc<ContainerMeta>>, i64)>,
    boot_offset_ns: i64,
    ancestors: usize,
    seq: u64,
    /// Ns (boot) at which the /proc seed was taken; events older than an
    /// entry's `updated_ns` do not overwrite it.
    seeded_at: u64,
    /// IP -> name from the DNS answers seen.
    dns_cache: crate::dns::Cache,
    /// Container lifecycle and escapes.
    tracker: crate::lifecycle::Tracker,
    /// mount namespace -> (uid -> name from its /etc/passwd, read at).
    passwd: HashMap<u32, (Arc<HashMap<u32, String>>, u64)>,
    /// Existing files overwritten per process (`vigil.file.overwrites`).
    overwrites: crate::enrich::overwrite::Tracker,
    /// Changes of the process table: bumped by every insert, change and
    /// removal, so a chain built at the same value is still what the
    /// table says.
    table_gen: u64,
    /// Parent pid -> the ancestor chain that starts there, built once and
    /// shared by every record of its children until the table changes
    /// (only chains whose every member was in the table: an unknown pid is
    /// asked of the host again, as it was before).
    chains: IdMap<u32, (u64, Chain)>,
    /// Distinct DNS names queried per process (`vigil.dns.distinct_names`).
    dns_names: crate::enrich::dnsnames::Tracker,
}

/// An ancestor chain and its executables joined by newlines
/// ([`Event::ancestors_executable`]).
type Chain = (Arc<[Ancestor]>, Arc<[u8]>);

/// Chains kept at most (a table of that many is cleared, then refilled).
const CHAIN_CACHE: usize = 4096;

impl Enricher {
    /// A new enricher.
    pub fn new(users: Arc<Users>, boot_offset_ns: i64, ancestors: usize) -> Enricher {
        Enricher {
            procs: id_map(),
            user_names: id_map(),
            group_names: id_map(),
            users,
            cgroups: id_map(),
            ctr_meta: HashMap::new(),
            boot_offset_ns,
            ancestors,
            seq: 0,
            seeded_at: 0,
            dns_cache: crate::dns::Cache::new(DNS_CACHE_ADDRESSES),
            tracker: crate::lifecycle::Tracker::new(crate::lifecycle::host_namespaces()),
            passwd: HashMap::new(),
            overwrites: crate::enrich::overwrite::Tracker::default(),
            table_gen: 0,
            chains: id_map(),
            dns_names: crate::enrich::dnsnames::Tracker::default(),
        }
    }

    /// The container tracker.
    pub fn tracker(&mut self) -> &mut crate::lifecycle::Tracker {
        &mut self.tracker
    }

    /// Finds the containers running at start in the /proc seed (after
    /// [`Enricher::seed`]).
    pub fn seed_containers(&mut self, procs: &[ProcSnapshot], at_ns: u64, host: &mut dyn Host) {
        self.tracker.seed(procs, at_ns, host);
    }

    /// The user as process `pid` (in mount namespace `mntns`) sees it.
    fn ns_user(
        &mut self,
        p: &ProcInfo,
        uid: u32,
        mntns: u32,
        now_ns: u64,
        host: &mut dyn Host,
    ) -> Option<NsUser> {
        let in_ctr = p.container.is_some() || self.tracker.container_of(p.pid).is_some();
        if p.uid_map.is_none() && !in_ctr {
            return None;
        }
        let id = p.uid_map.as_ref().and_then(|m| m.to_ns(uid));
        let table = match self.passwd.get(&mntns) {
            Some((t, at)) if now_ns.saturating_sub(*at) < PASSWD_TTL_NS => t.clone(),
            _ => {
                let t = Arc::new(
                    host.root_passwd(p.pid)
                        .map(|t| crate::userns::parse_passwd(&t))
                        .unwrap_or_default(),
                );
                if self.passwd.len() >= PASSWD_CACHE {
                    self.passwd.clear();
                }
                self.passwd.insert(mntns, (t.clone(), now_ns));
                t
            }
        };
        let lookup = if p.uid_map.is_some() { id } else { Some(uid) };
        let name = lookup
            .and_then(|u| table.get(&u))
            .map(|n| Arc::from(n.as_str()));
        (id.is_some() || name.is_some()).then_some(NsUser { id, name })
    }

    /// A container's name and image, read from the runtime's state once
    /// (an unreadable state is retried after 5 s: a container being
    /// created may not be listed yet).
    fn meta_of(
        &mut self,
        id: &str,
        now_ns: i64,
        host: &mut dyn Host,
    ) -> Option<Arc<ContainerMeta>> {
        if let Some((m, at)) = self.ctr_meta.get(id)
            && (m.is_some() || now_ns - at < 5_000_000_000)
        {
            return m.clone();
        }
        let m = host.container_meta(id).map(Arc::new);
        if self.ctr_meta.len() > 4096 {
            self.ctr_meta.clear();
        }
        self.ctr_meta.insert(id.to_string(), (m.clone(), now_ns));
        m
    }

    /// Number of processes tracked.
    pub fn tracked(&self) -> usize {
        self.procs.len()
    }

    /// Entries in each of the enricher's tables, container tracker
    /// included (`vigil_state_entries`).
    pub fn table_sizes(&self, out: &mut Vec<(&'static str, usize)>) {
        out.extend([
            ("processes", self.procs.len()),
            ("cgroup_names", self.cgroups.len()),
            ("container_metadata", self.ctr_meta.len()),
            ("dns_addresses", self.dns_cache.len()),
            ("container_passwd", self.passwd.len()),
            ("user_names", self.user_names.len() + self.group_names.len()),
        ]);
        self.tracker.table_sizes(out);
    }

    /// Sets the executable hash of `pid` if the table still holds the same
    /// process instance (started at `start_ns`; 0 matches any).
    pub fn set_hash(&mut self, pid: u32, start_ns: u64, hash: Arc<str>) {
        if let Some(p) = self.procs.get_mut(&pid)
            && (start_ns == 0 || p.start_ns == start_ns)
            && p.hash.as_deref() != Some(&*hash)
        {
            self.table_gen += 1;
            Arc::make_mut(p).hash = Some(hash);
        }
    }

    /// The executable hash the table holds for `pid`, and its start time
    /// (None: not in the table).
    pub fn proc_hash(&self, pid: u32) -> Option<(Option<Arc<str>>, u64)> {
        self.procs.get(&pid).map(|p| (p.hash.clone(), p.start_ns))
    }

    /// Whether a pid is alive in the table.
    pub fn is_alive(&self, pid: u32) -> bool {
        self.procs.get(&pid).is_some_and(|p| p.exited_ns.is_none())
    }

    /// Seeds the table from a /proc scan taken at boot-ns `at_ns`. Entries
    /// already created by events are kept (events are newer).
    pub fn seed(&mut self, procs: &[ProcSnapshot], at_ns: u64) {
        self.seeded_at = at_ns;
        self.table_gen += 1;
        for s in procs {
            self.procs
                .entry(s.pid)
                .or_insert_with(|| Arc::new(ProcInfo::from_snapshot(s, at_ns)));
        }
    }

    /// Drops exited processes whose exit is older than `linger_ns` before `now_ns`.
    pub fn expire(&mut self, now_ns: u64, linger_ns: u64) {
        self.table_gen += 1;
        self.procs.retain(|_, p| {
            p.exited_ns
                .is_none_or(|t| now_ns.saturating_sub(t) < linger_ns)
        });
    }

    fn name_of(
        map: &mut IdMap<u32, Arc<str>>,
        table: &HashMap<u32, String>,
        id: u32,
    ) -> Option<Arc<str>> {
        if let Some(n) = map.get(&id) {
            return Some(n.clone());
        }
        let n: Arc<str> = table.get(&id)?.as_str().into();
        map.insert(id, n.clone());
        Some(n)
    }

    fn lookup(&mut self, pid: u32, host: &mut dyn Host) -> Option<Arc<ProcInfo>> {
        if pid == 0 {
            return None;
        }
        if let Some(p) = self.procs.get(&pid) {
            return Some(p.clone());
        }
        // Unknown (started before the seed and missed by it, or a race):
        // read it once from /proc.
        let snap = host.proc(pid)?;
        let p = Arc::new(ProcInfo::from_snapshot(&snap, self.seeded_at));
        self.table_gen += 1;
        self.procs.insert(pid, p.clone());
        Some(p)
    }

    /// The ancestor chain starting at `ppid`, nearest first: the one built
    /// for an earlier record when the table has not changed since, else
    /// walked from the table.
    fn chain(&mut self, ppid: u32, host: &mut dyn Host) -> Chain {
        if let Some((g, c)) = self.chains.get(&ppid)
            && *g == self.table_gen
        {
            return c.clone();
        }
        let mut ancestors = Vec::with_capacity(self.ancestors);
        let mut next = ppid;
        let mut guard = 0;
        let mut complete = true;
        while ancestors.len() < self.ancestors && next != 0 && guard < 64 {
            guard += 1;
            let Some(p) = self.lookup(next, host) else {
                ancestors.push(Ancestor {
                    pid: next,
                    exe: Arc::from(&b""[..]),
                    args: Arc::from(Vec::new()),
                    cmdline: Arc::from(&b""[..]),
                    hash: None,
                    start_ns: 0,
                });
                complete = false;
                break;
            };
            ancestors.push(Ancestor {
                pid: p.pid,
                exe: p.exe.clone(),
                args: p.args.clone(),
                cmdline: p.cmdline.clone(),
                hash: p.hash.clone(),
                start_ns: p.start_ns,
            });
            if p.ppid == p.pid {
                break;
            }
            next = p.ppid;
        }
        let mut joined = Vec::new();
        for (i, a) in ancestors.iter().enumerate() {
            if i > 0 {
                joined.push(b'\n');
            }
            joined.extend_from_slice(&a.exe);
        }
        let c: Chain = (ancestors.into(), joined.into());
        if complete {
            if self.chains.len() >= CHAIN_CACHE {
                self.chains.clear();
            }
            self.chains.insert(ppid, (self.table_gen, c.clone()));
        }
        c
    }

    fn apply(&mut self, ev: &KernelEvent, host: &mut dyn Host) {
        let h = &ev.hdr;
        match &ev.body {
            Body::Fork(f) => {
                // The parent's fork record can arrive after the child's own
                // records (the child may exec on another CPU before the
                // parent's tracepoint fires): whatever is already known about
                // this same process instance is more specific than "a copy of
                // its parent", so only an unknown pid or a reused one is set.
                if self
                    .procs
                    .get(&f.child_pid)
                    .is_some_and(|p| p.start_ns == f.child_start_ns)
                {
                    return;
                }
                let parent = self.lookup(h.pid, host);
                let child = ProcInfo {
                    pid: f.child_pid,
                    ppid: h.pid,
                    start_ns: f.child_start_ns,
                    exe: parent
                        .as_ref()
                        .map(|p| p.exe.clone())
                        .unwrap_or_else(|| Arc::from(&b""[..])),
                    args: parent
                        .as_ref()
                        .map(|p| p.args.clone())
                        .unwrap_or_else(|| Arc::from(Vec::new())),
                    cmdline: parent
                        .as_ref()
                        .map(|p| p.cmdline.clone())
                        .unwrap_or_else(|| Arc::from(&b""[..])),
                    args_truncated: parent.as_ref().is_some_and(|p| p.args_truncated),
                    cwd: parent
                        .as_ref()
                        .map(|p| p.cwd.clone())
                        .unwrap_or_else(|| Arc::from(&b""[..])),
                    container: parent.as_ref().and_then(|p| p.container.clone()),
                    updated_ns: h.ts_ns,
                    exited_ns: None,
                    uid_map: parent.as_ref().and_then(|p| p.uid_map.clone()),
                    hash: parent.as_ref().and_then(|p| p.hash.clone()),
                };
                self.table_gen += 1;
                self.procs.insert(f.child_pid, Arc::new(child));
            }
            Body::Exec {
                path, argv, cwd, ..
            } => {
                if self
                    .procs
                    .get(&h.pid)
                    .is_some_and(|p| p.updated_ns > h.ts_ns)
                {
                    return;
                }
                // The exec is where containers start (runc init execs the
                // entrypoint after joining the cgroup): read the cgroup now,
                // falling back to what the process inherited.
                let inherited = self.procs.get(&h.pid).and_then(|p| p.container.clone());
                let container = match host.proc_cgroup(h.pid) {
                    Some(text) => container_of(&text),
                    None => inherited,
                };
                let info = ProcInfo {
                    pid: h.pid,
                    ppid: h.ppid,
                    start_ns: h.start_ns,
                    exe: path.as_slice().into(),
                    args: argv.clone().into(),
                    cmdline: join_args(argv).into(),
                    args_truncated: ev.truncated(1),
                    cwd: cwd.as_slice().into(),
                    container,
                    updated_ns: h.ts_ns,
                    exited_ns: None,
                    uid_map: host
                        .uid_map(h.pid)
                        .as_deref()
                        .and_then(crate::userns::UidMap::parse)
                        .map(Arc::new),
                    hash: None,
                };
                self.table_gen += 1;
                self.procs.insert(h.pid, Arc::new(info));
            }
            Body::Exit(_) => {
                if let Some(p) = self.procs.get_mut(&h.pid) {
                    self.table_gen += 1;
                    Arc::make_mut(p).exited_ns = Some(h.ts_ns);
                }
            }
            _ => {}
        }
    }

    fn cgroup_path(&mut self, id: u64, host: &mut dyn Host) -> Option<Arc<str>> {
        if id <= 1 {
            return None;
        }
        if let Some(p) = self.cgroups.get(&id) {
            return p.clone();
        }
        let p: Option<Arc<str>> = host.cgroup_path(id).map(Into::into);
        // Cgroup ids are not reused, and every container, session and
        // service makes new ones: a cache of all ids ever seen would grow
        // for the agent's life.
        if self.cgroups.len() >= CGROUP_CACHE {
            self.cgroups.clear();
        }
        self.cgroups.insert(id, p.clone());
        p
    }

    /// Enriches one decoded record.
    pub fn enrich(&mut self, k: KernelEvent, host: &mut dyn Host) -> Event {
        // the image an exec replaces: this same process instance as the
        // table knew it before the exec (not a stale or reused entry)
        let replaced = match &k.body {
            Body::Exec { .. } => self
                .procs
                .get(&k.hdr.pid)
                .filter(|p| p.start_ns == k.hdr.start_ns && p.updated_ns <= k.hdr.ts_ns)
                .cloned(),
            _ => None,
        };
        self.apply(&k, host);
        self.seq += 1;
        let h = k.hdr;
        let process = self.lookup(h.pid, host);
        let container_meta = match process.as_ref().and_then(|p| p.container.clone()) {
            Some(c) => self.meta_of(&c.id, unix_ns_of(self.boot_offset_ns, h.ts_ns), host),
            None => None,
        };
        let (ancestors, ancestors_executable) = self.chain(h.ppid, host);
        let users = self.users.clone();
        let user = Self::name_of(&mut self.user_names, &users.users, h.uid);
        let euser = Self::name_of(&mut self.user_names, &users.users, h.euid);
        let group = Self::name_of(&mut self.group_names, &users.groups, h.gid);
        let cgroup_path = self.cgroup_path(h.cgroup_id, host);
        let file_path = match &k.body {
            Body::Open { info, path, name } => Some(if info.ret >= 0 {
                path.clone()
            } else {
                join(path, name)
            }),
            Body::Module { info, target, .. }
                if info.syscall == vigil_bpf::abi::sys::FINIT_MODULE =>
            {
                Some(target.clone())
            }
            Body::Mount { target, cwd, .. } => Some(join(cwd, target)),
            Body::FChange { base, name, .. } => Some(join(base, name)),
            Body::Compat { path, name, .. } if !name.is_empty() => Some(join(path, name)),
            Body::IoUring {
                info, name, cwd, ..
            } if matches!(
                info.what,
                vigil_bpf::abi::uring::OPEN | vigil_bpf::abi::uring::FILE
            ) && !name.is_empty() =>
            {
                // relative to another dirfd: the name as passed
                Some(if name.starts_with(b"/") || cwd.is_empty() {
                    normalize_if_absolute(name)
                } else {
                    join(cwd, name)
                })
            }
            _ => None,
        };
        let file_path2 = match &k.body {
            Body::FChange {
                info,
                base,
                base2,
                name2,
                ..
            } if !name2.is_empty() => Some(match info.syscall {
                vigil_bpf::abi::sys::SYMLINK | vigil_bpf::abi::sys::SYMLINKAT => name2.clone(),
                _ if !base2.is_empty() => join(base2, name2),
                // A relative old name shares the base directory the kernel
                // reported in string 0, unless it came with another dirfd.
                _ if info.flags & vigil_bpf::abi::FCHANGE_OTHER_DFD == 0 => join(base, name2),
                _ => join(b"", name2),
            }),
            _ => None,
        };
        let target = match &k.body {
            Body::Fork(f) => self.procs.get(&f.child_pid).cloned(),
            Body::Ptrace(p) if p.target_pid > 0 && h.pidns == host_pidns() => {
                self.lookup(p.target_pid as u32, host)
            }
            // the kernel names the signalled process by its host tgid
            Body::Signal(g) if g.target_tgid > 0 => self.lookup(g.target_tgid, host),
            _ => None,
        };
        let now_s = h.ts_ns / 1_000_000_000;
        let (dns, domain) = match &k.body {
            Body::Dns { info, message } => {
                let m = crate::dns::parse(message).ok().map(Arc::new);
                if let Some(m) = &m
                    && crate::event::dns_is_answer(info)
                {
                    self.dns_cache.learn(m, now_s);
                }
                (m, None)
            }
            Body::Sock { info, .. }
                if h.kind == vigil_bpf::abi::kind::CONNECT
                    || h.kind == vigil_bpf::abi::kind::UDP_SEND =>
            {
                let d = crate::event::ip(info.family, &info.raddr)
                    .and_then(|ip| self.dns_cache.lookup(&ip, now_s));
                (None, d)
            }
            _ => (None, None),
        };
        let ns_user = match process.clone() {
            Some(p) => self.ns_user(&p, h.uid, h.mntns, h.ts_ns, host),
            None => None,
        };
        let overwrites = self
            .overwrites
            .observe(&k, file_path.as_deref(), file_path2.as_deref());
        let dns_names = match (&k.body, &dns) {
            (Body::Dns { info, .. }, Some(m))
                if !crate::event::dns_is_answer(info) && !m.response =>
            {
                match m.questions.first() {
                    Some(q) => self.dns_names.query(
                        h.pid,
                        process.as_ref().map_or(0, |p| p.ppid),
                        &q.name,
                        h.ts_ns,
                    ),
                    None => Default::default(),
                }
            }
            _ if h.kind == vigil_bpf::abi::kind::EXIT => {
                self.dns_names.exit(h.pid);
                Default::default()
            }
            _ => Default::default(),
        };
        let mut ev = Event {
            overwrites,
            dns_names,
            escape: None,
            ns_user,
            hash_pending: false,
            hash_skipped: None,
            hash_known_bad: false,
            dns,
            domain,
            seq: self.seq,
            unix_ns: (h.ts_ns as i64).saturating_add(self.boot_offset_ns),
            process,
            container_meta,
            ancestors,
            ancestors_executable,
            user,
            euser,
            group,
            cgroup_path,
            file_path,
            file_path2,
            target,
            replaced,
            k,
        };
        ev.escape = self.tracker.observe(&ev, host).map(Arc::new);
        ev
    }
}

/// Inode of the agent's own pid namespace: a pid passed by a process in
/// this namespace (e.g. a ptrace target) is a pid the process table knows.
/// (/proc/self rather than /proc/1: pid 1 may be unreadable in a sandbox.)
pub fn host_pidns() -> u32 {
    use std::sync::OnceLock;
    static NS: OnceLock<u32> = OnceLock::new();
    *NS.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self/ns/pid")
            .map(|m| m.ino() as u32)
            .unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_fork_record_does_not_undo_the_childs_exec() {
        use crate::host::RecordedHost;
        use vigil_bpf::abi::{self, Hdr, kind};
        use vigil_bpf::decode::{decode, encode_record};
        let mut en = Enricher::new(Arc::new(Users::default()), 0, 4);
        let mut host = RecordedHost::default();
        let parent_exec = Hdr {
            kind: kind::EXEC,
            pid: 10,
            ppid: 1,
            ts_ns: 100,
            start_ns: 50,
            ..Hdr::default()
        };
        en.enrich(
            decode(&encode_record(
                parent_exec,
                &abi::Exec::default(),
                &[b"/bin/parent"],
            ))
            .unwrap(),
            &mut host,
        );
        // the child execs (ts 300) before the parent's fork record (ts 400) is read
        let child_exec = Hdr {
            kind: kind::EXEC,
            pid: 11,
            ppid: 10,
            ts_ns: 300,
            start_ns: 200,
            ..Hdr::default()
        };
        en.enrich(
            decode(&encode_record(
                child_exec,
                &abi::Exec::default(),
                &[b"/usr/bin/sleep"],
            ))
            .unwrap(),
            &mut host,
        );
        let fork = Hdr {
            kind: kind::FORK,
            pid: 10,
            ppid: 1,
            ts_ns: 400,
            start_ns: 50,
            ..Hdr::default()
        };
        let body = abi::Fork {
            child_pid: 11,
            child_start_ns: 200,
            ..Default::default()
        };
        en.enrich(decode(&encode_record(fork, &body, &[])).unwrap(), &mut host);
        assert_eq!(&en.procs[&11].exe[..], b"/usr/bin/sleep");
        // a reused pid (other start time) is replaced by the fork
        let body = abi::Fork {
            child_pid: 11,
            child_start_ns: 900,
            ..Default::default()
        };
        let fork2 = Hdr {
            ts_ns: 1000,
            ..fork
        };
        en.enrich(
            decode(&encode_record(fork2, &body, &[])).unwrap(),
            &mut host,
        );
        assert_eq!(&en.procs[&11].exe[..], b"/bin/parent");
    }

    /// The chain a record gets is the table's chain at that moment, shared
    /// between records while the table is unchanged and rebuilt after an
    /// exec, a hash, an exit or a new entry changed it.
    #[test]
    fn shared_ancestor_chains_follow_the_table() {
        use crate::host::RecordedHost;
        use vigil_bpf::abi::{self, Hdr, kind};
        use vigil_bpf::decode::{decode, encode_record};
        let mut en = Enricher::new(Arc::new(Users::default()), 0, 4);
        let mut host = RecordedHost::default();
        let exec = |pid, ppid, ts_ns, path: &[u8]| {
            let h = Hdr {
                kind: kind::EXEC,
                pid,
                ppid,
                ts_ns,
                start_ns: u64::from(pid),
                ..Hdr::default()
            };
            decode(&encode_record(h, &abi::Exec::default(), &[path])).unwrap()
        };
        let open = |pid, ppid, ts_ns| {
            let h = Hdr {
                kind: kind::OPEN,
                pid,
                ppid,
                ts_ns,
                start_ns: u64::from(pid),
                ..Hdr::default()
            };
            decode(&encode_record(h, &abi::Open::default(), &[b"/etc", b"x"])).unwrap()
        };
        let exes =
            |ev: &Event| -> Vec<Vec<u8>> { ev.ancestors.iter().map(|a| a.exe.to_vec()).collect() };
        en.enrich(exec(2, 1, 10, b"/sbin/init2"), &mut host);
        en.enrich(exec(3, 2, 20, b"/bin/bash"), &mut host);
        en.enrich(exec(4, 3, 30, b"/usr/bin/loop"), &mut host);
        let a = en.enrich(open(4, 3, 40), &mut host);
        let b = en.enrich(open(4, 3, 50), &mut host);
        assert_eq!(exes(&a), [&b"/bin/bash"[..], b"/sbin/init2", b""]);
        assert_eq!(&a.ancestors[2].pid, &1, "pid 1 is unknown to this host");
        assert_eq!(&a.ancestors_executable[..], b"/bin/bash\n/sbin/init2\n");
        // a chain that ends at an unknown pid is asked again, not kept
        assert!(!Arc::ptr_eq(&a.ancestors, &b.ancestors));
        // the same chain, once every member is known, is built once
        en.enrich(exec(1, 0, 45, b"/sbin/init"), &mut host);
        let c = en.enrich(open(4, 3, 60), &mut host);
        let d = en.enrich(open(4, 3, 70), &mut host);
        assert!(Arc::ptr_eq(&c.ancestors, &d.ancestors), "shared");
        assert_eq!(exes(&c), [&b"/bin/bash"[..], b"/sbin/init2", b"/sbin/init"]);
        assert_eq!(
            &d.ancestors_executable[..],
            b"/bin/bash\n/sbin/init2\n/sbin/init"
        );
        // the parent execs: the next record sees its new image
        en.enrich(exec(3, 2, 80, b"/usr/bin/python3"), &mut host);
        let e = en.enrich(open(4, 3, 90), &mut host);
        assert_eq!(exes(&e)[0], b"/usr/bin/python3");
        assert_eq!(
            &e.ancestors_executable[..],
            b"/usr/bin/python3\n/sbin/init2\n/sbin/init"
        );
        // a hash learned for the parent shows in the next record's chain
        en.set_hash(3, 3, Arc::from("ab"));
        let f = en.enrich(open(4, 3, 100), &mut host);
        assert_eq!(f.ancestors[0].hash.as_deref(), Some("ab"));
        assert!(
            e.ancestors[0].hash.is_none(),
            "an earlier record keeps its chain"
        );
    }

    #[test]
    fn exec_names_the_image_it_replaced() {
        use crate::host::RecordedHost;
        use vigil_bpf::abi::{self, Hdr, kind};
        use vigil_bpf::decode::{decode, encode_record};
        let mut en = Enricher::new(Arc::new(Users::default()), 0, 4);
        let mut host = RecordedHost::default();
        let exec = |ts_ns, start_ns, path: &[u8]| {
            let h = Hdr {
                kind: kind::EXEC,
                pid: 20,
                ppid: 1,
                ts_ns,
                start_ns,
                ..Hdr::default()
            };
            decode(&encode_record(h, &abi::Exec::default(), &[path])).unwrap()
        };
        let first = en.enrich(exec(100, 50, b"/usr/bin/perl"), &mut host);
        assert!(first.replaced.is_none(), "the table knew no image before");
        let second = en.enrich(exec(200, 50, b"/bin/sh"), &mut host);
        let r = second.replaced.expect("the image the exec replaced");
        assert_eq!(&r.exe[..], b"/usr/bin/perl");
        assert_eq!(&second.process.unwrap().exe[..], b"/bin/sh");
        // a reused pid (other start time) replaced nothing of its own
        let third = en.enrich(exec(300, 250, b"/bin/true"), &mut host);
        assert!(third.replaced.is_none());
    }

    #[test]
    fn normalize_and_join() {
        assert_eq!(normalize(b"/etc/../etc/./shadow"), b"/etc/shadow");
        assert_eq!(normalize(b"//a//b/"), b"/a/b");
        assert_eq!(normalize(b"/.."), b"/");
        assert_eq!(join(b"/etc", b"shadow"), b"/etc/shadow");
        assert_eq!(join(b"/tmp", b"/etc/shadow"), b"/etc/shadow");
        assert_eq!(join(b"/usr/bin", b"../../etc/x"), b"/etc/x");
        assert_eq!(join(b"", b"rel"), b"rel");
    }
}
