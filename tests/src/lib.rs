//! Test support for vigil's integration tests: root gating that cannot
//! silently skip in CI, a lock serializing tests that load BPF, unique
//! markers, and RAII container fixtures (a namespaced process in its own
//! cgroup2 child, and a real podman container) that clean up after
//! themselves.

#![deny(missing_docs)]

use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Whether a root test may run. Records the test in `$VIGIL_ROOT_TESTS_LOG`
/// (so CI can count root tests that ran). Without root it panics when
/// `VIGIL_REQUIRE_ROOT_TESTS=1` (a skip in CI is a failure) and otherwise
/// prints a loud SKIP and returns false.
pub fn require_root(test_name: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        if let Ok(log) = std::env::var("VIGIL_ROOT_TESTS_LOG")
            && let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
        {
            let _ = writeln!(f, "{test_name}");
        }
        return true;
    }
    if std::env::var("VIGIL_REQUIRE_ROOT_TESTS").as_deref() == Ok("1") {
        panic!("{test_name}: needs root, and VIGIL_REQUIRE_ROOT_TESTS=1 forbids skipping");
    }
    eprintln!("SKIP {test_name}: needs root");
    false
}

/// Serializes tests that load BPF: each agent sees the whole host.
pub fn bpf_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A token unique across processes and runs, safe in file names.
pub fn unique_marker(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "vigil-test-marker-{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `f` every 10 ms until it returns Some or `deadline` passes.
pub fn wait_for<T>(deadline: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn run(cmd: &mut Command) -> io::Result<String> {
    let out = cmd.stderr(Stdio::piped()).stdout(Stdio::piped()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{:?} failed: {}",
            cmd,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(io::Error::other(format!(
            "fixture name {name:?} must be [a-z0-9-]+"
        )));
    }
    Ok(())
}

/// A busybox root filesystem built once from Debian's busybox-static
/// (cached under /var/tmp/vigil-test-rootfs).
pub fn busybox_rootfs() -> io::Result<PathBuf> {
    let dir = PathBuf::from("/var/tmp/vigil-test-rootfs");
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| {
            io::Error::other("busybox not installed (apt-get install busybox-static)")
        })?;
    let tmp = PathBuf::from(format!("/var/tmp/vigil-test-rootfs.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for d in ["bin", "proc", "dev", "tmp", "etc", "sys", "root"] {
        std::fs::create_dir_all(tmp.join(d))?;
    }
    std::fs::copy(&busybox, tmp.join("bin/busybox"))?;
    let list = run(Command::new(&busybox).arg("--list"))?;
    for applet in list
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        let _ = std::os::unix::fs::symlink("busybox", tmp.join("bin").join(applet));
    }
    std::fs::write(tmp.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(tmp.join("etc/group"), "root:x:0:\n")?;
    std::fs::write(tmp.join("etc/hostname"), "vigil-test\n")?;
    std::fs::write(tmp.join(".complete"), "")?;
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // another test process won the race
        Err(_) if dir.join(".complete").exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(e),
    }
}

/// Where cgroup2 is mounted (/sys/fs/cgroup/unified on hybrid hosts).
pub fn cgroup2_mount() -> io::Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts")?;
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .ok_or_else(|| io::Error::other("no cgroup2 mount"))
}

fn ns_inode(pid: u32, ns: &str) -> u32 {
    std::fs::metadata(format!("/proc/{pid}/ns/{ns}"))
        .map(|m| m.ino() as u32)
        .unwrap_or(0)
}

/// A container-like process: overlayfs root over a busybox rootfs, its own
/// cgroup2 child, new pid/mnt/net/uts/ipc namespaces (the unshare recipe).
/// Dropping it kills everything in the cgroup and removes all traces.
pub struct NsContainer {
    name: String,
    dir: PathBuf,
    cgroup: PathBuf,
    cgroup_rel: String,
    host_pid: u32,
    child: Option<std::process::Child>,
}

impl NsContainer {
    /// Starts `/bin/sh -c script` as pid 1 of new namespaces.
    pub fn start(name: &str, script: &str) -> io::Result<NsContainer> {
        check_name(name)?;
        let full = format!("vigil-test-{name}");
        let rootfs = busybox_rootfs()?;
        let cg_root = cgroup2_mount()?;
        let cgroup = cg_root.join(&full);
        let dir = std::env::temp_dir().join(&full);
        cleanup(&dir, &cgroup);
        for d in ["upper", "work", "merged"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        run(Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                rootfs.display(),
                dir.join("upper").display(),
                dir.join("work").display()
            ))
            .arg(dir.join("merged")))?;
        std::fs::create_dir_all(&cgroup)?;
        // The wrapper moves itself into the cgroup, then execs unshare; the
        // forked child becomes pid 1 of the new pid namespace. The cgroup
        // path and script are passed as positional arguments, never
        // interpolated into the shell text.
        let child = Command::new("sh")
            .arg("-c")
            .arg("echo $$ > \"$1/cgroup.procs\" && exec unshare --fork --pid --mount --net --uts --ipc --root=\"$2\" --mount-proc /bin/sh -c \"$3\"")
            .arg("vigil-ns-wrapper")
            .arg(&cgroup)
            .arg(dir.join("merged"))
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let wrapper = child.id();
        let host_pid = wait_for(Duration::from_secs(5), || {
            let kids =
                std::fs::read_to_string(format!("/proc/{wrapper}/task/{wrapper}/children")).ok()?;
            kids.split_whitespace().next()?.parse::<u32>().ok()
        })
        .ok_or_else(|| io::Error::other("container init did not start"))?;
        // wait until the child is in its own pid namespace
        wait_for(Duration::from_secs(5), || {
            (ns_inode(host_pid, "pid") != ns_inode(1, "pid")).then_some(())
        })
        .ok_or_else(|| io::Error::other("container init never entered its pid namespace"))?;
        Ok(NsContainer {
            name: full.clone(),
            dir,
            cgroup,
            cgroup_rel: format!("/{full}"),
            host_pid,
            child: Some(child),
        })
    }

    /// Host pid of the container's init (pid 1 inside).
    pub fn host_pid(&self) -> u32 {
        self.host_pid
    }
    /// cgroup v2 id (inode of the cgroup directory).
    pub fn cgroup_id(&self) -> u64 {
        std::fs::metadata(&self.cgroup)
            .map(|m| m.ino())
            .unwrap_or(0)
    }
    /// cgroup path relative to the cgroup2 mount (`/vigil-test-NAME`).
    pub fn cgroup_path_relative(&self) -> String {
        self.cgroup_rel.clone()
    }
    /// Name with prefix.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// pid namespace inode.
    pub fn pidns_inode(&self) -> u32 {
        ns_inode(self.host_pid, "pid")
    }
    /// mount namespace inode.
    pub fn mntns_inode(&self) -> u32 {
        ns_inode(self.host_pid, "mnt")
    }
    /// network namespace inode.
    pub fn netns_inode(&self) -> u32 {
        ns_inode(self.host_pid, "net")
    }
    /// Waits for the wrapper to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let c = self.child.as_mut()?;
        wait_for(timeout, || c.try_wait().ok().flatten())
    }
}

fn cleanup(dir: &Path, cgroup: &Path) {
    if cgroup.exists() {
        let _ = std::fs::write(cgroup.join("cgroup.kill"), "1");
        wait_for(Duration::from_secs(5), || {
            let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
            procs.trim().is_empty().then_some(())
        });
        let _ = std::fs::remove_dir(cgroup);
    }
    let merged = dir.join("merged");
    if merged.exists() {
        let _ = Command::new("umount").arg("-l").arg(&merged).status();
    }
    let _ = std::fs::remove_dir_all(dir);
}

impl Drop for NsContainer {
    fn drop(&mut self) {
        cleanup(&self.dir, &self.cgroup);
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A real podman container (cgroupfs manager, runc) running the busybox
/// rootfs imported as `localhost/vigil-test-busybox`. Removed on drop.
pub struct PodmanContainer {
    name: String,
    id: String,
}

const PODMAN_IMAGE: &str = "localhost/vigil-test-busybox:latest";

fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--cgroup-manager=cgroupfs", "--runtime", "runc"]);
    c
}

impl PodmanContainer {
    /// `podman run -d` of `cmd` in a container named `vigil-test-NAME`.
    pub fn run(name: &str, cmd: &[&str]) -> io::Result<PodmanContainer> {
        check_name(name)?;
        let full = format!("vigil-test-{name}");
        if !podman()
            .args(["image", "exists", PODMAN_IMAGE])
            .status()?
            .success()
        {
            let rootfs = busybox_rootfs()?;
            let tar = Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .args(["--exclude", "./.complete", "-c", "."])
                .stdout(Stdio::piped())
                .spawn()?;
            let out = podman()
                .args(["import", "-", PODMAN_IMAGE])
                .stdin(tar.stdout.ok_or_else(|| io::Error::other("tar stdout"))?)
                .output()?;
            if !out.status.success() {
                return Err(io::Error::other(format!(
                    "podman import failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
        }
        let _ = podman().args(["rm", "-f", "-t", "0", &full]).output();
        let id = run(podman()
            .args(["run", "-d", "--name", &full, "--network", "none"])
            .args([
                "--ulimit",
                "nofile=20000:20000",
                "--ulimit",
                "nproc=4096:4096",
            ])
            .arg(PODMAN_IMAGE)
            .args(cmd))?;
        Ok(PodmanContainer { name: full, id })
    }

    /// Full container id as podman prints it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Host pid of the container's init.
    pub fn host_pid(&self) -> io::Result<u32> {
        run(podman().args(["inspect", "-f", "{{.State.Pid}}", &self.name]))?
            .parse()
            .map_err(io::Error::other)
    }
}

impl Drop for PodmanContainer {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "0", &self.name]).output();
    }
}
