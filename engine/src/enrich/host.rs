//! What enrichment reads from the host: /proc, /etc/passwd, the cgroup
//! filesystem and the clocks. Everything goes through [`Host`] so a capture
//! can record the answers and replay can serve them back, giving identical
//! enrichment offline.

use crate::container;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// A process as read from /proc (seed and on-demand lookups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcSnapshot {
    /// Host pid (tgid).
    pub pid: u32,
    /// Parent tgid.
    pub ppid: u32,
    /// Start time, ns since boot (jiffies precision).
    pub start_ns: u64,
    /// `readlink /proc/PID/exe` (empty for kernel threads).
    pub exe: Vec<u8>,
    /// argv.
    pub args: Vec<Vec<u8>>,
    /// `readlink /proc/PID/cwd`.
    pub cwd: Vec<u8>,
    /// comm.
    pub comm: Vec<u8>,
    /// Contents of /proc/PID/cgroup.
    pub cgroup: String,
    /// Contents of /proc/PID/uid_map (None in captures older than this
    /// field, or when unreadable).
    #[serde(default)]
    pub uid_map: Option<String>,
}

/// One answer the live host gave (recorded in captures).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "q")]
pub enum Lookup {
    /// `/proc/PID/cgroup` contents.
    ProcCgroup {
        /// pid asked about.
        pid: u32,
        /// Answer.
        answer: Option<String>,
    },
    /// A process read from /proc.
    Proc {
        /// pid asked about.
        pid: u32,
        /// Answer.
        answer: Option<ProcSnapshot>,
    },
    /// A container's name and image from the runtime's state.
    ContainerMeta {
        /// Container id.
        id: String,
        /// Answer.
        answer: Option<ContainerMeta>,
    },
    /// cgroup v2 path of a cgroup id.
    CgroupPath {
        /// cgroup id.
        id: u64,
        /// Answer.
        answer: Option<String>,
    },
    /// Namespace inodes of a process.
    Ns {
        /// pid asked about.
        pid: u32,
        /// Answer.
        answer: Option<NsInodes>,
    },
    /// `/proc/PID/uid_map` contents.
    UidMap {
        /// pid asked about.
        pid: u32,
        /// Answer.
        answer: Option<String>,
    },
    /// `/etc/passwd` inside a process's root.
    RootPasswd {
        /// pid asked about.
        pid: u32,
        /// Answer.
        answer: Option<String>,
    },
    /// A process that has a namespace (any type) with this inode.
    NsOwner {
        /// Namespace inode.
        inum: u32,
        /// Answer: the lowest such pid.
        answer: Option<u32>,
    },
}

/// Source of host facts.
pub trait Host {
    /// Contents of /proc/PID/cgroup.
    fn proc_cgroup(&mut self, pid: u32) -> Option<String>;
    /// A process read from /proc.
    fn proc(&mut self, pid: u32) -> Option<ProcSnapshot>;
    /// cgroup v2 path for a cgroup id.
    fn cgroup_path(&mut self, id: u64) -> Option<String>;
    /// A container's name and image, where the runtime's state is readable.
    fn container_meta(&mut self, id: &str) -> Option<ContainerMeta>;
    /// Namespace inodes of a process (`/proc/PID/ns/*`).
    fn ns_inodes(&mut self, pid: u32) -> Option<NsInodes>;
    /// `/proc/PID/uid_map` contents.
    fn uid_map(&mut self, pid: u32) -> Option<String>;
    /// `/etc/passwd` as the process sees it (through `/proc/PID/root`,
    /// symlinks resolved inside that root, bounded; see [`read_root_passwd`]).
    fn root_passwd(&mut self, pid: u32) -> Option<String>;
    /// The lowest pid that has a namespace (of any type) with inode `inum`
    /// (a scan of /proc; callers rate-limit it).
    fn ns_owner(&mut self, inum: u32) -> Option<u32>;
}

/// Namespace inodes of a process, 0 where unreadable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsInodes {
    /// pid namespace (the active one).
    pub pid: u32,
    /// Mount namespace.
    pub mnt: u32,
    /// Network namespace.
    pub net: u32,
    /// UTS namespace.
    pub uts: u32,
    /// IPC namespace.
    pub ipc: u32,
    /// User namespace.
    pub user: u32,
    /// cgroup namespace.
    pub cgroup: u32,
    /// Time namespace.
    pub time: u32,
}

impl NsInodes {
    /// Every inode (0 for the unreadable ones).
    pub fn all(&self) -> [u32; 8] {
        [
            self.pid,
            self.mnt,
            self.net,
            self.uts,
            self.ipc,
            self.user,
            self.cgroup,
            self.time,
        ]
    }

    /// Whether `inum` is one of them.
    pub fn contains(&self, inum: u32) -> bool {
        inum != 0 && self.all().contains(&inum)
    }
}

/// Reads `/proc/PID/ns/*` (`None` when the process is gone).
pub fn read_ns(pid: u32) -> Option<NsInodes> {
    use std::os::unix::fs::MetadataExt;
    let ino = |n: &str| {
        std::fs::metadata(format!("/proc/{pid}/ns/{n}"))
            .map(|m| m.ino() as u32)
            .unwrap_or(0)
    };
    let ns = NsInodes {
        pid: ino("pid"),
        mnt: ino("mnt"),
        net: ino("net"),
        uts: ino("uts"),
        ipc: ino("ipc"),
        user: ino("user"),
        cgroup: ino("cgroup"),
        time: ino("time"),
    };
    (ns != NsInodes::default()).then_some(ns)
}

/// The lowest pid in /proc with a namespace of inode `inum`.
pub fn find_ns_owner(inum: u32) -> Option<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter()
        .find(|&p| read_ns(p).is_some_and(|n| n.contains(inum)))
}

/// The largest `/etc/passwd` read from a container (a hostile container
/// may put anything there).
pub const PASSWD_MAX: u64 = 1 << 20;

/// Reads `/etc/passwd` as process `pid` sees it: opened relative to
/// `/proc/PID/root` with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
/// (so a symlink planted in the container resolves inside the container's
/// root, never to the host's files), non-blocking (a FIFO cannot hang the
/// agent), only a regular file, at most [`PASSWD_MAX`] bytes, and only as
/// UTF-8 (lossy).
pub fn read_root_passwd(pid: u32) -> Option<String> {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let root = std::ffi::CString::new(format!("/proc/{pid}/root")).ok()?;
    // SAFETY: a valid C string; the returned fd (if any) is owned below.
    let dfd = unsafe {
        libc::open(
            root.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dfd < 0 {
        return None;
    }
    // SAFETY: a fresh fd nothing else owns.
    let dfd = unsafe { OwnedFd::from_raw_fd(dfd) };
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    let name = c"etc/passwd";
    use std::os::fd::AsRawFd;
    // SAFETY: valid fd, C string and open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dfd.as_raw_fd(),
            name.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh fd nothing else owns.
    let f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    if !f.metadata().ok()?.file_type().is_file() {
        return None;
    }
    let mut buf = Vec::new();
    f.take(PASSWD_MAX).read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// What the container runtime's state says about a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMeta {
    /// Name (`podman run --name`, docker's name without the slash).
    pub name: Option<String>,
    /// Image reference (`docker.io/library/nginx:1.27`).
    pub image: Option<String>,
    /// Whose state it was read from: `podman`, `docker`, `runc`, `crun`,
    /// `containerd` (None in captures older than this field).
    #[serde(default)]
    pub source: Option<String>,
}

/// Where podman (as root) keeps its container list.
pub const PODMAN_CONTAINERS: &str =
    "/var/lib/containers/storage/overlay-containers/containers.json";
/// Where docker keeps one container's configuration.
pub const DOCKER_CONTAINERS: &str = "/var/lib/docker/containers";

/// Name and image of a container from podman's `containers.json` text.
pub fn podman_meta(text: &str, id: &str) -> Option<ContainerMeta> {
    let list: Vec<serde_json::Value> = serde_json::from_str(text).ok()?;
    let c = list.iter().find(|c| c["id"] == id)?;
    let name = c["names"]
        .as_array()
        .and_then(|n| n.first())
        .and_then(|n| n.as_str())
        .map(str::to_string);
    let image = c["metadata"]
        .as_str()
        .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
        .and_then(|m| m["image-name"].as_str().map(str::to_string));
    Some(ContainerMeta {
        name,
        image,
        source: None,
    })
}

/// Name and image of a container from docker's `config.v2.json` text.
pub fn docker_meta(text: &str) -> Option<ContainerMeta> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(ContainerMeta {
        name: v["Name"]
            .as_str()
            .map(|n| n.trim_start_matches('/').to_string()),
        image: v["Config"]["Image"].as_str().map(str::to_string),
        source: None,
    })
}

/// Where runc keeps its state (`<dir>/<id>/state.json`): runc as run by
/// podman, CRI-O and by hand (`/run/runc`), by docker
/// (`/run/docker/runtime-runc/moby`) and by containerd's shims
/// (`/run/containerd/runc/<namespace>`).
pub const RUNC_STATE_DIRS: &[&str] = &[
    "/run/runc",
    "/run/docker/runtime-runc/moby",
    "/run/containerd/runc/k8s.io",
    "/run/containerd/runc/default",
    "/run/containerd/runc/moby",
];
/// Where crun keeps its state (`<dir>/<id>/status`, which names the bundle).
pub const CRUN_STATE_DIRS: &[&str] = &["/run/crun"];
/// containerd's task bundles (`<dir>/<id>/config.json`, the OCI spec with
/// the CRI and nerdctl annotations), per containerd namespace.
pub const CONTAINERD_TASK_DIRS: &[&str] = &[
    "/run/containerd/io.containerd.runtime.v2.task/k8s.io",
    "/run/containerd/io.containerd.runtime.v2.task/default",
    "/run/containerd/io.containerd.runtime.v2.task/moby",
];

/// The largest runtime state file read (they are a few KiB).
const STATE_MAX: u64 = 4 << 20;

fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let f = std::fs::File::open(path).ok()?;
    if !f.metadata().ok()?.file_type().is_file() {
        return None;
    }
    let mut s = String::new();
    f.take(STATE_MAX).read_to_string(&mut s).ok()?;
    Some(s)
}

/// OCI annotations naming a container, most specific first: CRI
/// (containerd), Kubernetes (CRI-O), nerdctl.
const NAME_ANNOTATIONS: &[&str] = &[
    "io.kubernetes.cri.container-name",
    "io.kubernetes.container.name",
    "nerdctl/name",
];
/// OCI annotations naming a container's image.
const IMAGE_ANNOTATIONS: &[&str] = &[
    "io.kubernetes.cri.image-name",
    "io.kubernetes.cri-o.ImageName",
    "org.opencontainers.image.ref.name",
];

/// Name and image from OCI annotations (`None` when neither is there).
pub fn annotations_meta<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<ContainerMeta> {
    let pick = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| get(k))
            .filter(|v| !v.is_empty() && v.len() <= 1024)
            .map(str::to_string)
    };
    let m = ContainerMeta {
        name: pick(NAME_ANNOTATIONS),
        image: pick(IMAGE_ANNOTATIONS),
        source: None,
    };
    (m.name.is_some() || m.image.is_some()).then_some(m)
}

/// Name and image from an OCI spec (`config.json`) text's annotations.
pub fn oci_spec_meta(text: &str) -> Option<ContainerMeta> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let ann = v.get("annotations")?.as_object()?;
    annotations_meta(|k| ann.get(k).and_then(|x| x.as_str()))
}

/// What runc's `state.json` text says: name and image from the labels
/// (runc stores the spec's annotations as `key=value` labels, plus
/// `bundle=<dir>`), and the bundle directory.
pub fn runc_state_meta(text: &str) -> (Option<ContainerMeta>, Option<PathBuf>) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return (None, None);
    };
    let labels: Vec<&str> = v["config"]["labels"]
        .as_array()
        .map(|a| a.iter().filter_map(|l| l.as_str()).collect())
        .unwrap_or_default();
    let get = |k: &str| {
        labels
            .iter()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
    };
    let bundle = get("bundle")
        .filter(|b| b.starts_with('/'))
        .map(PathBuf::from);
    (annotations_meta(get), bundle)
}

/// The bundle directory from crun's `status` text.
pub fn crun_status_bundle(text: &str) -> Option<PathBuf> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v["bundle"]
        .as_str()
        .filter(|b| b.starts_with('/'))
        .map(PathBuf::from)
}

/// Reads a container's name and image from the runtime's state: podman's
/// container list, docker's container config, then runc's and crun's
/// state (and the bundle's OCI spec they name), then containerd's task
/// bundles. The id must be a plain name (hex digits, letters, `-`, `_`,
/// `.`; no `/`, not `.` or `..`): it becomes a path component. A state
/// found without a name or image still says which runtime runs the
/// container (`source`).
pub fn read_container_meta(id: &str) -> Option<ContainerMeta> {
    let plain = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !plain {
        return None;
    }
    let with = |m: Option<ContainerMeta>, src: &str| {
        m.map(|mut m| {
            m.source = Some(src.to_string());
            m
        })
    };
    if let Ok(text) = std::fs::read_to_string(PODMAN_CONTAINERS)
        && let Some(m) = podman_meta(&text, id)
    {
        return with(Some(m), "podman");
    }
    let docker = format!("{DOCKER_CONTAINERS}/{id}/config.v2.json");
    if let Some(m) = read_small(Path::new(&docker)).and_then(|t| docker_meta(&t)) {
        return with(Some(m), "docker");
    }
    let bundle_meta = |b: Option<PathBuf>| {
        b.and_then(|b| read_small(&b.join("config.json")))
            .and_then(|t| oci_spec_meta(&t))
    };
    for dir in RUNC_STATE_DIRS {
        if let Some(text) = read_small(&Path::new(dir).join(id).join("state.json")) {
            let (m, bundle) = runc_state_meta(&text);
            let m = m.or_else(|| bundle_meta(bundle)).unwrap_or_default();
            return with(Some(m), "runc");
        }
    }
    for dir in CRUN_STATE_DIRS {
        if let Some(text) = read_small(&Path::new(dir).join(id).join("status")) {
            let m = bundle_meta(crun_status_bundle(&text)).unwrap_or_default();
            return with(Some(m), "crun");
        }
    }
    for dir in CONTAINERD_TASK_DIRS {
        if let Some(text) = read_small(&Path::new(dir).join(id).join("config.json")) {
            return with(Some(oci_spec_meta(&text).unwrap_or_default()), "containerd");
        }
    }
    None
}

/// User and group names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Users {
    /// uid -> name.
    pub users: HashMap<u32, String>,
    /// gid -> name.
    pub groups: HashMap<u32, String>,
}

impl Users {
    /// Parses passwd/group style text (`name:x:id:...`).
    pub fn parse_table(text: &str) -> HashMap<u32, String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id = f.nth(1)?.parse().ok()?;
                Some((id, name.to_string()))
            })
            .collect()
    }

    /// Reads /etc/passwd and /etc/group of the host.
    pub fn load() -> Users {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        Users {
            users: Self::parse_table(&read("/etc/passwd")),
            groups: Self::parse_table(&read("/etc/group")),
        }
    }
}

/// Difference between CLOCK_REALTIME and CLOCK_BOOTTIME in ns: adding it to
/// a kernel `bpf_ktime_get_boot_ns()` timestamp gives Unix time.
pub fn boot_offset_ns() -> i64 {
    fn now(clock: libc::clockid_t) -> i64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid pointer to a timespec.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    }
    // Take the boot clock between two realtime reads to halve the skew, and
    // keep the tightest of a few tries: a thread preempted between the reads
    // (a loaded host, the agent starting) would otherwise put every alert's
    // @timestamp off by the time it was off the CPU.
    let mut best = (i64::MAX, 0);
    for _ in 0..8 {
        let r1 = now(libc::CLOCK_REALTIME);
        let b = now(libc::CLOCK_BOOTTIME);
        let r2 = now(libc::CLOCK_REALTIME);
        let spread = r2.saturating_sub(r1);
        if spread < best.0 {
            best = (spread, r1 / 2 + r2 / 2 - b);
        }
        if spread < 2_000 {
            break;
        }
    }
    best.1
}

/// The cgroup2 mount point (`/sys/fs/cgroup/unified` on hybrid hosts).
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(dir))
    })
}

fn read_link(p: &str) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    std::fs::read_link(p)
        .map(|x| x.as_os_str().as_bytes().to_vec())
        .unwrap_or_default()
}

/// Reads one process from /proc.
pub fn read_proc(pid: u32) -> Option<ProcSnapshot> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parens: split at the last ')'
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.as_bytes().to_vec();
    let rest: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    let ppid = rest.get(1)?.parse().ok()?;
    let start_ticks: u64 = rest.get(19)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args = if cmdline.is_empty() {
        Vec::new()
    } else {
        cmdline
            .strip_suffix(&[0])
            .unwrap_or(&cmdline)
            .split(|&b| b == 0)
            .map(<[u8]>::to_vec)
            .collect()
    };
    Some(ProcSnapshot {
        pid,
        ppid,
        start_ns: start_ticks * (1_000_000_000 / hz),
        exe: read_link(&format!("/proc/{pid}/exe")),
        args,
        cwd: read_link(&format!("/proc/{pid}/cwd")),
        comm,
        cgroup: std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default(),
        uid_map: std::fs::read_to_string(format!("/proc/{pid}/uid_map")).ok(),
    })
}

/// Every process in /proc.
pub fn read_all_procs() -> Vec<ProcSnapshot> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut v: Vec<ProcSnapshot> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_proc)
        .collect();
    v.sort_by_key(|p| p.pid);
    v
}

/// The live host: reads /proc and the cgroup fs, logging every answer so a
/// recorder can store it.
pub struct LiveHost {
    cgroup_root: Option<PathBuf>,
    cgroup_paths: HashMap<u64, String>,
    last_scan: Option<Instant>,
    /// Answers given since the last [`LiveHost::take_log`], when logging.
    log: Option<Vec<Lookup>>,
}

impl LiveHost {
    /// A live host; `log` keeps the answers for a recorder.
    pub fn new(log: bool) -> LiveHost {
        LiveHost {
            cgroup_root: cgroup2_root(),
            cgroup_paths: HashMap::new(),
            last_scan: None,
            log: log.then(Vec::new),
        }
    }

    /// Cgroup ids whose path is known (the last walk of the cgroup fs).
    pub fn cgroup_paths_known(&self) -> usize {
        self.cgroup_paths.len()
    }

    /// Answers logged since the previous call.
    pub fn take_log(&mut self) -> Vec<Lookup> {
        self.log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn scan_cgroups(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let Some(root) = self.cgroup_root.clone() else {
            return;
        };
        // At most one full walk per second: a flood of unknown ids must not
        // turn into a flood of directory walks.
        if self.last_scan.is_some_and(|t| t.elapsed().as_secs() < 1) {
            return;
        }
        self.last_scan = Some(Instant::now());
        // A fresh map each walk: ids of removed cgroups go with them.
        self.cgroup_paths.clear();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            if let Ok(md) = std::fs::metadata(&dir) {
                let rel = dir.strip_prefix(&root).unwrap_or(Path::new(""));
                self.cgroup_paths
                    .insert(md.ino(), format!("/{}", rel.display()));
            }
            for e in rd.filter_map(Result::ok) {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(e.path());
                }
            }
        }
    }
}

impl Host for LiveHost {
    fn proc_cgroup(&mut self, pid: u32) -> Option<String> {
        let answer = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok();
        if let Some(log) = &mut self.log {
            log.push(Lookup::ProcCgroup {
                pid,
                answer: answer.clone(),
            });
        }
        answer
    }

    fn proc(&mut self, pid: u32) -> Option<ProcSnapshot> {
        let answer = read_proc(pid);
        if let Some(log) = &mut self.log {
            log.push(Lookup::Proc {
                pid,
                answer: answer.clone(),
            });
        }
        answer
    }

    fn container_meta(&mut self, id: &str) -> Option<ContainerMeta> {
        let answer = read_container_meta(id);
        if let Some(log) = &mut self.log {
            log.push(Lookup::ContainerMeta {
                id: id.to_string(),
                answer: answer.clone(),
            });
        }
        answer
    }

    fn ns_inodes(&mut self, pid: u32) -> Option<NsInodes> {
        let answer = read_ns(pid);
        if let Some(log) = &mut self.log {
            log.push(Lookup::Ns { pid, answer });
        }
        answer
    }

    fn uid_map(&mut self, pid: u32) -> Option<String> {
        let answer = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).ok();
        if let Some(log) = &mut self.log {
            log.push(Lookup::UidMap {
                pid,
                answer: answer.clone(),
            });
        }
        answer
    }

    fn root_passwd(&mut self, pid: u32) -> Option<String> {
        let answer = read_root_passwd(pid);
        if let Some(log) = &mut self.log {
            log.push(Lookup::RootPasswd {
                pid,
                answer: answer.clone(),
            });
        }
        answer
    }

    fn ns_owner(&mut self, inum: u32) -> Option<u32> {
        let answer = find_ns_owner(inum);
        if let Some(log) = &mut self.log {
            log.push(Lookup::NsOwner { inum, answer });
        }
        answer
    }

    fn cgroup_path(&mut self, id: u64) -> Option<String> {
        if !self.cgroup_paths.contains_key(&id) {
            self.scan_cgroups();
        }
        let answer = self.cgroup_paths.get(&id).cloned();
        if let Some(log) = &mut self.log {
            log.push(Lookup::CgroupPath {
                id,
                answer: answer.clone(),
            });
        }
        answer
    }
}

/// Replay's host: serves recorded answers in order.
#[derive(Default)]
pub struct RecordedHost {
    queue: std::collections::VecDeque<Lookup>,
    /// Questions asked that the capture had no answer for.
    pub misses: u64,
}

impl RecordedHost {
    /// Queues answers read from the capture.
    pub fn push(&mut self, l: Lookup) {
        self.queue.push_back(l);
    }

    fn next_matching(&mut self, pred: impl Fn(&Lookup) -> bool) -> Option<Lookup> {
        match self.queue.front() {
            Some(l) if pred(l) => self.queue.pop_front(),
            _ => {
                self.misses += 1;
                None
            }
        }
    }
}

impl Host for RecordedHost {
    fn proc_cgroup(&mut self, pid: u32) -> Option<String> {
        match self.next_matching(|l| matches!(l, Lookup::ProcCgroup { pid: p, .. } if *p == pid)) {
            Some(Lookup::ProcCgroup { answer, .. }) => answer,
            _ => None,
        }
    }
    fn proc(&mut self, pid: u32) -> Option<ProcSnapshot> {
        match self.next_matching(|l| matches!(l, Lookup::Proc { pid: p, .. } if *p == pid)) {
            Some(Lookup::Proc { answer, .. }) => answer,
            _ => None,
        }
    }
    fn cgroup_path(&mut self, id: u64) -> Option<String> {
        match self.next_matching(|l| matches!(l, Lookup::CgroupPath { id: i, .. } if *i == id)) {
            Some(Lookup::CgroupPath { answer, .. }) => answer,
            _ => None,
        }
    }
    fn container_meta(&mut self, id: &str) -> Option<ContainerMeta> {
        match self.next_matching(|l| matches!(l, Lookup::ContainerMeta { id: i, .. } if i == id)) {
            Some(Lookup::ContainerMeta { answer, .. }) => answer,
            _ => None,
        }
    }
    fn ns_inodes(&mut self, pid: u32) -> Option<NsInodes> {
        match self.next_matching(|l| matches!(l, Lookup::Ns { pid: p, .. } if *p == pid)) {
            Some(Lookup::Ns { answer, .. }) => answer,
            _ => None,
        }
    }
    fn uid_map(&mut self, pid: u32) -> Option<String> {
        match self.next_matching(|l| matches!(l, Lookup::UidMap { pid: p, .. } if *p == pid)) {
            Some(Lookup::UidMap { answer, .. }) => answer,
            _ => None,
        }
    }
    fn root_passwd(&mut self, pid: u32) -> Option<String> {
        match self.next_matching(|l| matches!(l, Lookup::RootPasswd { pid: p, .. } if *p == pid)) {
            Some(Lookup::RootPasswd { answer, .. }) => answer,
            _ => None,
        }
    }
    fn ns_owner(&mut self, inum: u32) -> Option<u32> {
        match self.next_matching(|l| matches!(l, Lookup::NsOwner { inum: i, .. } if *i == inum)) {
            Some(Lookup::NsOwner { answer, .. }) => answer,
            _ => None,
        }
    }
}

/// Container of a process from its /proc/PID/cgroup text.
pub fn container_of(cgroup_text: &str) -> Option<Arc<container::Container>> {
    container::from_proc_cgroup(cgroup_text).map(Arc::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_offset_is_stable_between_calls() {
        // Unix time of a boot-clock instant: two estimates agree to well
        // under a millisecond (a preempted read is retried, not used).
        let a = boot_offset_ns();
        let b = boot_offset_ns();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        assert!((a - b).abs() < 1_000_000, "{a} vs {b}");
        assert!(a > 0 && a < now, "{a}");
    }

    #[test]
    fn runtime_state_parsers() {
        let podman = r#"[{"id":"ab12","names":["web"],"image":"f98e","metadata":"{\"image-name\":\"localhost/busybox:latest\",\"name\":\"web\"}"}]"#;
        assert_eq!(
            podman_meta(podman, "ab12"),
            Some(ContainerMeta {
                name: Some("web".into()),
                image: Some("localhost/busybox:latest".into()),
                source: None,
            })
        );
        assert_eq!(podman_meta(podman, "cd34"), None);
        assert_eq!(podman_meta("not json", "ab12"), None);
        let docker = r#"{"Name":"/db","Config":{"Image":"postgres:16"}}"#;
        assert_eq!(
            docker_meta(docker),
            Some(ContainerMeta {
                name: Some("db".into()),
                image: Some("postgres:16".into()),
                source: None,
            })
        );
        assert_eq!(read_container_meta("../../etc"), None);
    }

    #[test]
    fn runc_crun_containerd_state_parsers() {
        // runc state.json: the spec's annotations are labels, plus bundle=
        let state = r#"{"id":"abc","init_process_pid":42,"config":{"labels":[
            "io.kubernetes.cri.container-name=web","io.kubernetes.cri.image-name=nginx:1.27",
            "bundle=/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc"]}}"#;
        let (m, b) = runc_state_meta(state);
        let m = m.unwrap();
        assert_eq!(m.name.as_deref(), Some("web"));
        assert_eq!(m.image.as_deref(), Some("nginx:1.27"));
        assert_eq!(
            b.as_deref(),
            Some(Path::new(
                "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc"
            ))
        );
        // a plain bundle: no name, only the bundle
        let (m, b) = runc_state_meta(r#"{"config":{"labels":["bundle=/srv/b"]}}"#);
        assert_eq!((m, b.as_deref()), (None, Some(Path::new("/srv/b"))));
        // CRI-O's keys in an OCI spec
        let spec = r#"{"annotations":{"io.kubernetes.container.name":"db","io.kubernetes.cri-o.ImageName":"postgres:16"}}"#;
        let m = oci_spec_meta(spec).unwrap();
        assert_eq!(
            (m.name.as_deref(), m.image.as_deref()),
            (Some("db"), Some("postgres:16"))
        );
        assert_eq!(
            crun_status_bundle(r#"{"pid":7,"bundle":"/var/b","rootfs":"/var/b/rootfs"}"#)
                .as_deref(),
            Some(Path::new("/var/b"))
        );
    }

    #[test]
    fn hostile_runtime_state() {
        // garbage, wrong types, relative bundles, label without '=', huge values
        for t in [
            "",
            "null",
            "[]",
            "{",
            r#"{"config":{"labels":"x"}}"#,
            r#"{"config":{"labels":[1,2,null,{}]}}"#,
            r#"{"config":{"labels":["bundle=../../etc","bundle"]}}"#,
        ] {
            let (m, b) = runc_state_meta(t);
            assert_eq!((m, b), (None, None), "{t}");
            assert_eq!(oci_spec_meta(t), None, "{t}");
            assert_eq!(crun_status_bundle(t), None, "{t}");
        }
        assert_eq!(crun_status_bundle(r#"{"bundle":"relative/x"}"#), None);
        assert_eq!(crun_status_bundle(r#"{"bundle":7}"#), None);
        let long = "x".repeat(5000);
        let spec = format!(r#"{{"annotations":{{"nerdctl/name":"{long}"}}}}"#);
        assert_eq!(oci_spec_meta(&spec), None, "oversized names are dropped");
        assert_eq!(
            oci_spec_meta(
                r#"{"annotations":{"nerdctl/name":"","io.kubernetes.cri.image-name":5}}"#
            ),
            None
        );
        // ids that would leave the state directories
        for id in [
            "..",
            ".",
            "a/b",
            "",
            "../../../etc/passwd",
            &"a".repeat(200),
        ] {
            assert_eq!(read_container_meta(id), None, "{id}");
        }
    }

    #[test]
    fn ns_inodes_of_this_process() {
        let me = read_ns(std::process::id()).unwrap();
        assert_ne!(me.pid, 0);
        assert!(me.contains(me.net));
        assert!(!me.contains(0));
        assert_eq!(read_ns(u32::MAX), None);
    }

    #[test]
    fn passwd_parsing() {
        let t = Users::parse_table(
            "root:x:0:0:root:/root:/bin/bash\n#c\nbad\nnobody:x:65534:65534::/:/x\n",
        );
        assert_eq!(t.get(&0).map(String::as_str), Some("root"));
        assert_eq!(t.get(&65534).map(String::as_str), Some("nobody"));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn reads_own_process() {
        let me = read_proc(std::process::id()).unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(!me.exe.is_empty());
        assert!(me.start_ns > 0);
    }

    #[test]
    fn recorded_host_serves_in_order_and_counts_misses() {
        let mut h = RecordedHost::default();
        h.push(Lookup::ProcCgroup {
            pid: 5,
            answer: Some("0::/x".into()),
        });
        assert_eq!(h.proc_cgroup(6), None);
        assert_eq!(h.misses, 1);
        assert_eq!(h.proc_cgroup(5).as_deref(), Some("0::/x"));
    }
}
