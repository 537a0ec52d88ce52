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
}

/// What the container runtime's state says about a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMeta {
    /// Name (`podman run --name`, docker's name without the slash).
    pub name: Option<String>,
    /// Image reference (`docker.io/library/nginx:1.27`).
    pub image: Option<String>,
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
    Some(ContainerMeta { name, image })
}

/// Name and image of a container from docker's `config.v2.json` text.
pub fn docker_meta(text: &str) -> Option<ContainerMeta> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(ContainerMeta {
        name: v["Name"]
            .as_str()
            .map(|n| n.trim_start_matches('/').to_string()),
        image: v["Config"]["Image"].as_str().map(str::to_string),
    })
}

/// Reads a container's name and image from podman's or docker's state.
pub fn read_container_meta(id: &str) -> Option<ContainerMeta> {
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if let Ok(text) = std::fs::read_to_string(PODMAN_CONTAINERS)
        && let Some(m) = podman_meta(&text, id)
    {
        return Some(m);
    }
    let docker = format!("{DOCKER_CONTAINERS}/{id}/config.v2.json");
    std::fs::read_to_string(docker)
        .ok()
        .and_then(|t| docker_meta(&t))
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
    // Take the boot clock between two realtime reads to halve the skew.
    let r1 = now(libc::CLOCK_REALTIME);
    let b = now(libc::CLOCK_BOOTTIME);
    let r2 = now(libc::CLOCK_REALTIME);
    r1 / 2 + r2 / 2 - b
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
}

/// Container of a process from its /proc/PID/cgroup text.
pub fn container_of(cgroup_text: &str) -> Option<Arc<container::Container>> {
    container::from_proc_cgroup(cgroup_text).map(Arc::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_state_parsers() {
        let podman = r#"[{"id":"ab12","names":["web"],"image":"f98e","metadata":"{\"image-name\":\"localhost/busybox:latest\",\"name\":\"web\"}"}]"#;
        assert_eq!(
            podman_meta(podman, "ab12"),
            Some(ContainerMeta {
                name: Some("web".into()),
                image: Some("localhost/busybox:latest".into())
            })
        );
        assert_eq!(podman_meta(podman, "cd34"), None);
        assert_eq!(podman_meta("not json", "ab12"), None);
        let docker = r#"{"Name":"/db","Config":{"Image":"postgres:16"}}"#;
        assert_eq!(
            docker_meta(docker),
            Some(ContainerMeta {
                name: Some("db".into()),
                image: Some("postgres:16".into())
            })
        );
        assert_eq!(read_container_meta("../../etc"), None);
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
