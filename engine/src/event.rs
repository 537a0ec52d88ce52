//! The event model: what a kernel record becomes on its way through the
//! engine. [`crate::enrich`] builds an [`Event`] (its process, ancestors,
//! users, container), [`crate::enrich::lifecycle`] builds the container
//! [`Lifecycle`] records and [`Escape`]s, [`crate::detect`] matches them
//! and [`crate::encode`] writes them; each of those imports the model from
//! here, none from another stage.

use crate::container::Container;
use crate::host::{ContainerMeta, ProcSnapshot, container_of};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use vigil_bpf::abi;
use vigil_bpf::decode::KernelEvent;

/// What the table knows about a process.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    /// Host pid.
    pub pid: u32,
    /// Parent tgid.
    pub ppid: u32,
    /// Start, ns since boot.
    pub start_ns: u64,
    /// Executable path.
    pub exe: Arc<[u8]>,
    /// argv.
    pub args: Arc<[Vec<u8>]>,
    /// argv joined with spaces (`process.command_line`), built once.
    pub cmdline: Arc<[u8]>,
    /// Whether argv was truncated in the kernel.
    pub args_truncated: bool,
    /// Working directory at exec.
    pub cwd: Arc<[u8]>,
    /// Container, if any.
    pub container: Option<Arc<Container>>,
    /// Boot ns of the newest event or snapshot that set this entry.
    pub updated_ns: u64,
    /// Boot ns of the exit, once exited.
    pub exited_ns: Option<u64>,
    /// Its user namespace's uid map, when not the initial namespace's.
    pub uid_map: Option<Arc<crate::userns::UidMap>>,
    /// SHA-256 of the executable (hex), once known ([`crate::hash`]).
    pub hash: Option<Arc<str>>,
}

impl ProcInfo {
    pub(crate) fn from_snapshot(s: &ProcSnapshot, at_ns: u64) -> ProcInfo {
        ProcInfo {
            pid: s.pid,
            ppid: s.ppid,
            start_ns: s.start_ns,
            exe: s.exe.clone().into(),
            args: s.args.clone().into(),
            cmdline: join_args(&s.args).into(),
            args_truncated: false,
            cwd: s.cwd.clone().into(),
            container: container_of(&s.cgroup),
            updated_ns: at_ns,
            exited_ns: None,
            uid_map: s
                .uid_map
                .as_deref()
                .and_then(crate::userns::UidMap::parse)
                .map(Arc::new),
            hash: None,
        }
    }

    /// The executable's file name.
    pub fn name(&self) -> &[u8] {
        basename(&self.exe)
    }
}

/// argv joined with spaces (`process.command_line`).
pub fn join_args(args: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::with_capacity(args.iter().map(|a| a.len() + 1).sum());
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            v.push(b' ');
        }
        v.extend_from_slice(a);
    }
    v
}

/// Last path component.
pub fn basename(p: &[u8]) -> &[u8] {
    p.rsplit(|&b| b == b'/').next().unwrap_or(p)
}

/// One ancestor in an event's parent chain.
#[derive(Debug, Clone)]
pub struct Ancestor {
    /// Host pid.
    pub pid: u32,
    /// Executable path (empty when unknown).
    pub exe: Arc<[u8]>,
    /// argv (empty when unknown).
    pub args: Arc<[Vec<u8>]>,
    /// argv joined with spaces (empty when unknown).
    pub cmdline: Arc<[u8]>,
    /// Its start time (boot ns; 0 when unknown).
    pub start_ns: u64,
    /// SHA-256 of its executable (hex), when known.
    pub hash: Option<Arc<str>>,
}

/// An enriched event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The decoded kernel record.
    pub k: KernelEvent,
    /// Sequence number within this agent run.
    pub seq: u64,
    /// Unix time in ns.
    pub unix_ns: i64,
    /// The process (after this event was applied, e.g. the new image for exec).
    pub process: Option<Arc<ProcInfo>>,
    /// Its container's name and image, where the runtime's state is readable.
    pub container_meta: Option<Arc<ContainerMeta>>,
    /// Parent chain, nearest first (shared by the records of a process
    /// while the process table does not change).
    pub ancestors: Arc<[Ancestor]>,
    /// The executables of `ancestors`, in order, joined by newlines
    /// (`vigil.ancestors.executable` as rules see it), built with the
    /// chain. Whoever replaces `ancestors` with other executables sets it
    /// too.
    pub ancestors_executable: Arc<[u8]>,
    /// Real user name.
    pub user: Option<Arc<str>>,
    /// Effective user name.
    pub euser: Option<Arc<str>>,
    /// Real group name.
    pub group: Option<Arc<str>>,
    /// cgroup v2 path of `hdr.cgroup_id` (None for the root cgroup).
    pub cgroup_path: Option<Arc<str>>,
    /// Absolute path of the file concerned (open: joined and normalized).
    pub file_path: Option<Vec<u8>>,
    /// The second path of a file change: rename/link source (joined), or a
    /// symlink's target text (as written).
    pub file_path2: Option<Vec<u8>>,
    /// The other process concerned (ptrace or process_vm target, signal
    /// target, fork child).
    pub target: Option<Arc<ProcInfo>>,
    /// exec: the image this exec replaced in the same process (what the
    /// process ran before: the parent's image after a plain fork), from the
    /// process table.
    pub replaced: Option<Arc<ProcInfo>>,
    /// The parsed message of a DNS record (`None` when unparsable).
    pub dns: Option<Arc<crate::dns::Message>>,
    /// The name the remote address was resolved from (connect, udp_send),
    /// from the DNS answers seen before: `destination.domain`.
    pub domain: Option<Arc<str>>,
    /// The container escape this event is ([`crate::lifecycle`]).
    pub escape: Option<Arc<Escape>>,
    /// The user as the process's user namespace or container sees it.
    pub ns_user: Option<NsUser>,
    /// The executable's hash is being computed: it follows in an
    /// `exec-hash` record (`vigil.hash.pending`).
    pub hash_pending: bool,
    /// Why the executable was not hashed (`vigil.hash.skipped`).
    pub hash_skipped: Option<&'static str>,
    /// Existing files this process overwrote in the current window,
    /// counting this event, when the event is such an overwrite
    /// (`vigil.file.overwrites`, [`crate::enrich::overwrite`]); else 0.
    pub overwrites: u32,
    /// DNS query: distinct names this process (or its parent's children
    /// together) asked for in the current window, and how many of them look
    /// generated, when this query added a name (`vigil.dns.distinct_names`,
    /// `vigil.dns.random_names`, [`crate::enrich::dnsnames`]); else zeros.
    pub dns_names: crate::enrich::dnsnames::Counts,
    /// The executable's hash is on the known-bad list (`vigil.hash.known_bad`).
    pub hash_known_bad: bool,
}

/// The user inside a user namespace or container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsUser {
    /// uid inside the user namespace (`None` when not in one, or unmapped).
    pub id: Option<u32>,
    /// Name from the container's `/etc/passwd`.
    pub name: Option<Arc<str>>,
}

/// A container the tracker knows.
#[derive(Debug, Clone)]
pub struct Ctr {
    /// Runtime id, or `pidns-<inode>`.
    pub id: Arc<str>,
    /// Name (runtime state, or the cgroup's last component).
    pub name: Option<Arc<str>>,
    /// Image reference, where the runtime's state says.
    pub image: Option<Arc<str>>,
    /// `docker`, `podman`, `containerd`, `cri-o`, `kubernetes`, `runc`,
    /// `crun`, `unshare`, `bubblewrap`, `systemd-nspawn`, `lxc` or
    /// `unknown`.
    pub runtime: &'static str,
    /// Kubernetes pod uid from the cgroup path (containers of one pod share
    /// namespaces: a setns between them is not an escape).
    pub pod: Option<Arc<str>>,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// cgroup v2 path.
    pub cgroup_path: Option<Arc<str>>,
    /// pid namespace inode.
    pub pidns: u32,
    /// Host pid of the first process seen (the entrypoint).
    pub init_pid: u32,
    /// Its executable.
    pub init_exe: Arc<[u8]>,
    /// Its command line.
    pub init_cmdline: Arc<[u8]>,
    /// Boot ns of the start (the entrypoint's start time when seen at start).
    pub started_ns: u64,
    /// Found in the /proc seed rather than seen starting.
    pub seen_at_start: bool,
    /// Host pids of its members (kept by the lifecycle tracker).
    pub(crate) members: HashSet<u32>,
}

/// Start or stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `container-start`.
    Start,
    /// `container-stop`.
    Stop,
}

/// A lifecycle record to write.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// Start or stop.
    pub phase: Phase,
    /// The container (as it was at that moment).
    pub ctr: Ctr,
    /// Boot ns of the event that started or stopped it.
    pub at_ns: u64,
}

/// What an escape reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The host's namespaces.
    Host,
    /// Another container: id and name.
    Container(Arc<str>, Option<Arc<str>>),
    /// A namespace of a process outside any container.
    Process(u32),
    /// Not found (the owner exited, or the scan was rate-limited).
    Unknown,
}

impl Target {
    /// `host`, `container`, `process`, `unknown` (`vigil.escape.target.type`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Target::Host => "host",
            Target::Container(..) => "container",
            Target::Process(_) => "process",
            Target::Unknown => "unknown",
        }
    }
}

/// A container escape recognised in one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escape {
    /// `setns`, `proc-root-write`, `privileged-mount`.
    pub kind: &'static str,
    /// The container the process belongs to.
    pub source_id: Arc<str>,
    /// Its name.
    pub source_name: Option<Arc<str>>,
    /// What was reached.
    pub target: Target,
    /// The namespace inode concerned (0 for mounts).
    pub target_ns: u32,
}

/// The address of a socket record's `family` (AF_INET, AF_INET6), or
/// None for any other family.
pub fn ip(family: u16, addr: &[u8; 16]) -> Option<IpAddr> {
    match i32::from(family) {
        libc::AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
            addr[0], addr[1], addr[2], addr[3],
        ))),
        libc::AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*addr))),
        _ => None,
    }
}

/// Whether a DNS record is an answer (received) rather than a query (sent).
pub fn dns_is_answer(info: &abi::Sock) -> bool {
    matches!(
        info.backlog,
        vigil_bpf::abi::sys::RECVFROM | vigil_bpf::abi::sys::RECVMSG
    )
}
