//! Test support for vigil's integration tests: root gating that cannot
//! silently skip in CI, a lock serializing tests that load BPF, unique
//! markers, polling with a deadline, and RAII container fixtures (a
//! namespaced process in its own cgroup2 child, and a real podman
//! container) that clean up after themselves, including what a crashed
//! earlier run left under the same name.
//!
//! Everything a fixture creates carries `vigil-test` in its name, so
//! `scripts/leak-check.sh` can prove a test run left nothing behind.

#![deny(missing_docs)]

pub mod fuzz;

use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Whether a root test may run.
///
/// As root (euid 0) it appends `test_name` and a newline to the file named
/// by `$VIGIL_ROOT_TESTS_LOG` (when set; `scripts/test.sh` counts its lines
/// and prints `root tests executed: N`) and returns true. Without root it
/// panics when `VIGIL_REQUIRE_ROOT_TESTS=1` (a skipped root test is a CI
/// failure), and otherwise prints `SKIP <name>: needs root` to stderr and
/// returns false.
///
/// ```no_run
/// if !vigil_tests::require_root("my_test") {
///     return;
/// }
/// ```
pub fn require_root(test_name: &str) -> bool {
    vigil_rootgate::require_root(test_name)
}

/// A global lock that tests loading BPF hold for their whole duration
/// (every agent sees the whole host, so two at once would see each other's
/// work). Poison-tolerant: a test that panicked while holding it does not
/// fail the ones after it.
pub fn bpf_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A token unique across threads, processes and runs, usable as a file
/// name: `vigil-test-marker-<prefix>-<pid>-<counter>-<nanos>`. Characters
/// of `prefix` outside `[A-Za-z0-9_.-]` are replaced with `_`.
///
/// `scripts/leak-check.sh` fails the run if a process whose command line
/// contains `vigil-test-marker` is still alive after the tests.
pub fn unique_marker(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let prefix: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "vigil-test-marker-{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `f` every 10 ms until it returns `Some` (returned) or `deadline`
/// has passed (`None`). `f` is always called at least once, and once more
/// after the deadline.
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

/// Runs a command to completion; its trimmed stdout, or an error naming the
/// command and quoting its stderr.
fn run(cmd: &mut Command) -> io::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("{cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Fixture names become path components and container names.
fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fixture name {name:?} must match [a-z0-9-]+ (at most 64 characters)"),
        ));
    }
    Ok(())
}

/// Where the test busybox root filesystem is cached.
pub const ROOTFS_DIR: &str = "/var/tmp/vigil-test-rootfs";
/// Marker file written last into a complete rootfs (not copied into the
/// podman image).
const ROOTFS_COMPLETE: &str = ".vigil-rootfs-complete";

/// A busybox root filesystem (Debian's busybox-static copied to
/// `/bin/busybox`, a symlink per applet at the path `busybox --list-full`
/// gives, `/proc /dev /sys /tmp /etc /root`, a minimal `/etc/passwd` and
/// `/etc/group`). Built once and cached in [`ROOTFS_DIR`]; a complete cache
/// is reused. It is built in a temporary directory and renamed into place,
/// so a crash never leaves a half-built cache behind and concurrent
/// builders agree.
///
/// # Panics
/// When it cannot be built (busybox-static not installed, /var/tmp not
/// writable); [`try_busybox_rootfs`] returns the error instead.
pub fn busybox_rootfs() -> PathBuf {
    try_busybox_rootfs().unwrap_or_else(|e| panic!("busybox rootfs: {e}"))
}

/// [`busybox_rootfs`], returning errors.
pub fn try_busybox_rootfs() -> io::Result<PathBuf> {
    let dir = PathBuf::from(ROOTFS_DIR);
    let complete = |d: &Path| d.join(ROOTFS_COMPLETE).is_file() && d.join("bin/sh").exists();
    if complete(&dir) {
        return Ok(dir);
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "busybox not installed (apt-get install busybox-static, or run scripts/install-deps.sh)",
            )
        })?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = PathBuf::from(format!("{ROOTFS_DIR}.tmp-{}-{nanos}", std::process::id()));
    let built = build_rootfs(&busybox, &tmp);
    if let Err(e) = built {
        let _ = fs::remove_dir_all(&tmp);
        return Err(io::Error::new(
            e.kind(),
            format!("building {} from {}: {e}", tmp.display(), busybox.display()),
        ));
    }
    // An incomplete cache (interrupted by hand, half deleted) is replaced.
    if dir.exists() && !complete(&dir) {
        let _ = fs::remove_dir_all(&dir);
    }
    match fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process won the race: use its copy.
        Err(_) if complete(&dir) => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(io::Error::new(
                e.kind(),
                format!("rename {} -> {}: {e}", tmp.display(), dir.display()),
            ))
        }
    }
}

fn build_rootfs(busybox: &Path, root: &Path) -> io::Result<()> {
    let _ = fs::remove_dir_all(root);
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "proc", "dev", "sys", "tmp", "etc", "root", "var/tmp",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    for d in ["tmp", "var/tmp"] {
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o1777))?;
    }
    fs::copy(busybox, root.join("bin/busybox"))?;
    fs::set_permissions(root.join("bin/busybox"), fs::Permissions::from_mode(0o755))?;
    let list = run(Command::new(busybox).arg("--list-full"))?;
    let mut n = 0;
    for applet in list.lines().map(str::trim) {
        // `linuxrc` is listed without a directory; skip it and anything odd.
        if !applet.contains('/') || applet.contains("..") || applet.starts_with('/') {
            continue;
        }
        let link = root.join(applet);
        if link.file_name().is_some_and(|f| f == "busybox") {
            continue;
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink("/bin/busybox", &link)?;
        n += 1;
    }
    if n < 50 || !root.join("bin/sh").exists() {
        return Err(io::Error::other(format!(
            "`{} --list-full` listed {n} applets (no /bin/sh)",
            busybox.display()
        )));
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    fs::write(root.join("etc/hostname"), "vigil-test\n")?;
    fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n")?;
    // Written last: its presence means the tree is complete.
    fs::write(root.join(ROOTFS_COMPLETE), "")?;
    Ok(())
}

/// Where cgroup2 is mounted: `/sys/fs/cgroup/unified` on hybrid hosts
/// (like these), `/sys/fs/cgroup` on pure-v2 hosts. Read from
/// `/proc/mounts`.
pub fn cgroup2_mount() -> io::Result<PathBuf> {
    let mounts = fs::read_to_string("/proc/mounts")?;
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(unescape_mount(f[1])))
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup2 mount in /proc/mounts"))
}

/// Undoes the octal escapes (`\040` for a space, ...) of /proc/mounts.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Inode of `/proc/PID/ns/NS` (what `stat -L -c %i` prints); 0 if the
/// process is gone.
fn ns_inode(pid: u32, ns: &str) -> u32 {
    fs::metadata(format!("/proc/{pid}/ns/{ns}"))
        .map(|m| m.ino() as u32)
        .unwrap_or(0)
}

/// Children of `pid`: `/proc/PID/task/*/children` when the kernel has it
/// (CONFIG_PROC_CHILDREN), else a scan of every `/proc/*/stat`.
fn children_of(pid: u32) -> Vec<u32> {
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        let mut kids = Vec::new();
        let mut have_file = false;
        for t in tasks.flatten() {
            if let Ok(s) = fs::read_to_string(t.path().join("children")) {
                have_file = true;
                kids.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
        if have_file {
            return kids;
        }
    }
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                // pid (comm) state ppid ...: comm may contain spaces and ')'
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(pid)
            })
        })
        .collect()
}

/// Mount points at or below `dir` (from /proc/self/mounts), deepest first.
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    v
}

/// Unmounts everything at or below `dir` (also mounts stacked on the same
/// point); lazily if a plain unmount fails.
fn unmount_below(dir: &Path) {
    for _ in 0..16 {
        let mounts = mounts_below(dir);
        if mounts.is_empty() {
            return;
        }
        for m in mounts {
            let Ok(c) = CString::new(m.as_os_str().as_bytes()) else {
                continue;
            };
            // SAFETY: c is a valid NUL-terminated path.
            if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
                // SAFETY: as above.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

/// The device nodes a shell needs (a non-interactive shell opens
/// `/dev/null` as the stdin of every `cmd &`), made in the overlay's upper
/// layer: null, zero, full, random, urandom, tty, the fd symlinks and a
/// world-writable `/dev/shm`.
fn populate_dev(dev: &Path) -> io::Result<()> {
    fs::create_dir_all(dev)?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let path = dev.join(name);
        if path.symlink_metadata().is_ok() {
            continue;
        }
        let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
        // SAFETY: c is a valid NUL-terminated path.
        if unsafe {
            libc::mknod(
                c.as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(major, minor),
            )
        } != 0
        {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("mknod {}: {e}", path.display()),
            ));
        }
        // mknod honours the umask; the nodes must be 0666.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let path = dev.join(name);
        if path.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(target, &path)?;
        }
    }
    fs::create_dir_all(dev.join("shm"))?;
    fs::set_permissions(dev.join("shm"), fs::Permissions::from_mode(0o1777))?;
    Ok(())
}

/// Pids in `cgroup` and all its descendants.
fn cgroup_pids(cgroup: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    for sub in cgroup_children(cgroup) {
        pids.extend(cgroup_pids(&sub));
    }
    pids
}

fn cgroup_children(cgroup: &Path) -> Vec<PathBuf> {
    fs::read_dir(cgroup)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills every process in `cgroup` (and below), waits until none is left,
/// removes the cgroup tree. Errors name what is still there.
fn destroy_cgroup(cgroup: &Path) -> io::Result<()> {
    if !cgroup.exists() {
        return Ok(());
    }
    // cgroup.kill (kernel >= 5.14) kills the whole subtree atomically, even
    // processes forking while it runs; kill -9 per pid is the fallback.
    let killed = fs::write(cgroup.join("cgroup.kill"), "1").is_ok();
    let empty = wait_for(Duration::from_secs(10), || {
        let pids = cgroup_pids(cgroup);
        if !killed {
            for &p in &pids {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(p as libc::pid_t, libc::SIGKILL) };
            }
        }
        pids.is_empty().then_some(())
    });
    if empty.is_none() {
        return Err(io::Error::other(format!(
            "{}: processes {:?} survived SIGKILL for 10 s",
            cgroup.display(),
            cgroup_pids(cgroup)
        )));
    }
    remove_cgroup_tree(cgroup)
}

fn remove_cgroup_tree(cgroup: &Path) -> io::Result<()> {
    for sub in cgroup_children(cgroup) {
        remove_cgroup_tree(&sub)?;
    }
    // rmdir can report EBUSY for a moment after the last task left.
    let mut last = None;
    let gone = wait_for(Duration::from_secs(5), || match fs::remove_dir(cgroup) {
        Ok(()) => Some(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some(()),
        Err(e) => {
            last = Some(e);
            None
        }
    });
    match gone {
        Some(()) => Ok(()),
        None => Err(io::Error::other(format!(
            "rmdir {}: {}",
            cgroup.display(),
            last.map(|e| e.to_string()).unwrap_or_default()
        ))),
    }
}

/// Removes the fixture's processes, cgroup, mounts and directory.
fn teardown(dir: &Path, cgroup: &Path) -> io::Result<()> {
    let cg = destroy_cgroup(cgroup);
    unmount_below(dir);
    let left = mounts_below(dir);
    if !left.is_empty() {
        return Err(io::Error::other(format!("still mounted: {left:?}")));
    }
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("rm -r {}: {e}", dir.display()),
            ));
        }
    }
    cg
}

/// A container-like process, the "unshare recipe" as a RAII fixture:
/// `unshare --fork --pid --mount --net --uts --ipc --root=<merged>
/// --mount-proc /bin/sh -c <script>` with an overlayfs root over
/// [`busybox_rootfs`] (under `$TMPDIR/vigil-test-<name>/merged`), in its own
/// cgroup2 child `<cgroup2 mount>/vigil-test-<name>` (so
/// `bpf_get_current_cgroup_id()` is that directory's inode, not 1). The
/// `unshare` process is moved into the cgroup before it execs, so every
/// process of the container is in it from the start.
///
/// The script's stdout and stderr go to [`NsContainer::log`].
///
/// Dropping it SIGKILLs the init (through a pidfd, which takes its whole pid
/// namespace down; `unshare` reaps it, so no zombie is left to the host's
/// pid 1), then kills whatever else is in the cgroup (`cgroup.kill`, or
/// SIGKILL to every pid), waits until the cgroup is empty, unmounts the
/// overlay and removes the cgroup (and any child cgroups) and the
/// directories. Starting one cleans up whatever a
/// crashed earlier run left under the same name first.
///
/// `/dev` holds null, zero, full, random, urandom, tty, the fd symlinks and
/// a `/dev/shm` directory (a non-interactive shell opens `/dev/null` for
/// every `cmd &`). `/proc/<host_pid>/cgroup` shows `0::/vigil-test-<name>`;
/// the v1 lines stay those of the test process.
///
/// Measured on this 2-core VM (kernel 6.18, hybrid cgroups): `start` takes
/// 18-36 ms (it returns once the script's `/bin/sh` runs as pid 1), drop
/// 14-15 ms.
///
/// ```no_run
/// use vigil_tests::NsContainer;
/// let c = NsContainer::start("demo", "while :; do sleep 1; done").unwrap();
/// assert_ne!(c.cgroup_id(), 1);
/// drop(c); // nothing left
/// ```
pub struct NsContainer {
    name: String,
    dir: PathBuf,
    cgroup: PathBuf,
    cgroup_rel: String,
    cgroup_id: u64,
    host_pid: u32,
    pidns: u32,
    mntns: u32,
    netns: u32,
    child: Option<Child>,
    pidfd: Option<OwnedFd>,
}

impl NsContainer {
    /// Starts `/bin/sh -c script` as pid 1 of new pid, mount, net, uts and
    /// ipc namespaces, chrooted into a fresh overlay of the busybox rootfs,
    /// inside the cgroup2 child `vigil-test-<name>`. `name` must match
    /// `[a-z0-9-]+`. Returns once the script's shell runs (it has exec'd:
    /// its namespaces, root and cgroup are final).
    pub fn start(name: &str, script: &str) -> io::Result<NsContainer> {
        check_name(name)?;
        let full = format!("vigil-test-{name}");
        let rootfs = try_busybox_rootfs()?;
        let cg_root = cgroup2_mount()?;
        let cgroup = cg_root.join(&full);
        let dir = std::env::temp_dir().join(&full);
        // Whatever a crashed run left under this name goes first.
        teardown(&dir, &cgroup)
            .map_err(|e| io::Error::other(format!("cleaning a leftover {full}: {e}")))?;
        let mut c = NsContainer {
            name: full.clone(),
            dir: dir.clone(),
            cgroup: cgroup.clone(),
            cgroup_rel: format!(
                "/{}",
                cgroup.strip_prefix(&cg_root).unwrap_or(&cgroup).display()
            ),
            cgroup_id: 0,
            host_pid: 0,
            pidns: 0,
            mntns: 0,
            netns: 0,
            child: None,
            pidfd: None,
        };
        // From here on, an error drops `c`, which tears down what exists.
        for d in ["upper", "work", "merged"] {
            fs::create_dir_all(dir.join(d))?;
        }
        let merged = dir.join("merged");
        run(Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                rootfs.display(),
                dir.join("upper").display(),
                dir.join("work").display()
            ))
            .arg(&merged))?;
        populate_dev(&merged.join("dev"))?;
        fs::create_dir(&cgroup)
            .map_err(|e| io::Error::new(e.kind(), format!("mkdir {}: {e}", cgroup.display())))?;
        c.cgroup_id = fs::metadata(&cgroup)?.ino();
        let log = File::create(dir.join("out.log"))?;
        let procs = CString::new(cgroup.join("cgroup.procs").as_os_str().as_bytes())
            .map_err(io::Error::other)?;
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--fork",
            "--pid",
            "--mount",
            "--net",
            "--uts",
            "--ipc",
            "--mount-proc",
        ])
        .arg({
            let mut a = std::ffi::OsString::from("--root=");
            a.push(&merged);
            a
        })
        .args(["/bin/sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
        // SAFETY: the closure only makes async-signal-safe system calls
        // (open, write, close) on memory prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                // Writing "0" to cgroup.procs moves the writing process.
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let r = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = io::Error::last_os_error();
                libc::close(fd);
                if r != 1 {
                    return Err(err);
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("spawn unshare into {}: {e}", cgroup.display()),
            )
        })?;
        let wrapper = child.id();
        c.child = Some(child);
        // The forked child of unshare(1) is pid 1 of the new pid namespace
        // from its birth (unshare(2) ran before the fork); wait until it has
        // exec'd the script's shell (then its root is final too).
        let mut seen: Option<u32> = None;
        let mut ns = (0, 0, 0);
        let started = wait_for(Duration::from_secs(10), || {
            let exited = matches!(c.child.as_mut().map(|ch| ch.try_wait()), Some(Ok(Some(_))));
            if seen.is_none()
                && let Some(&pid) = children_of(wrapper).first()
            {
                let snap = (
                    ns_inode(pid, "pid"),
                    ns_inode(pid, "mnt"),
                    ns_inode(pid, "net"),
                );
                if snap.0 != 0 && snap.1 != 0 && snap.2 != 0 {
                    seen = Some(pid);
                    ns = snap;
                    c.pidfd = pidfd_open(pid);
                }
            }
            if let Some(pid) = seen {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                // exec'd, or already gone (a script that finished at once)
                if comm.is_empty() || comm.trim_end() != "unshare" {
                    return Some(Ok(pid));
                }
            }
            exited.then_some(Err(()))
        });
        let started = match started {
            // A script that finished before its pid could be read (`exit 3`)
            // is a container that ran; unshare's own failures say "unshare:".
            Some(Err(())) if !c.log().starts_with("unshare:") => Some(Ok(0)),
            other => other,
        };
        let host_pid = match started {
            Some(Ok(pid)) => pid,
            Some(Err(())) => {
                let status = c.wait_exit(Duration::ZERO);
                return Err(io::Error::other(format!(
                    "{full}: unshare exited ({status:?}) before the container started: {}",
                    c.log().trim()
                )));
            }
            None => {
                return Err(io::Error::other(format!(
                    "{full}: container init did not start within 10 s: {}",
                    c.log().trim()
                )));
            }
        };
        c.host_pid = host_pid;
        (c.pidns, c.mntns, c.netns) = ns;
        // Sanity: pid 1 inside, in a namespace of its own.
        let status = fs::read_to_string(format!("/proc/{host_pid}/status")).unwrap_or_default();
        let nspid = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .map(|s| s.split_whitespace().last().unwrap_or("").to_string());
        // (The script may already have exited; then there is nothing to check.)
        if nspid.is_some() && nspid.as_deref() != Some("1") {
            return Err(io::Error::other(format!(
                "{full}: init {host_pid} is pid {nspid:?} in its namespace, not 1"
            )));
        }
        if c.pidns != 0 && c.pidns == ns_inode(std::process::id(), "pid") {
            return Err(io::Error::other(format!(
                "{full}: init {host_pid} shares the test's pid namespace"
            )));
        }
        Ok(c)
    }

    /// Host pid of the container's init (pid 1 inside; the script's shell).
    /// 0 in the one case where the script had already exited before its
    /// pid could be read (then the namespace inodes are 0 too).
    pub fn host_pid(&self) -> u32 {
        self.host_pid
    }

    /// cgroup v2 id: the inode of the cgroup2 directory, which is what
    /// `bpf_get_current_cgroup_id()` returns for its processes.
    pub fn cgroup_id(&self) -> u64 {
        self.cgroup_id
    }

    /// Absolute path of the cgroup2 directory, e.g.
    /// `/sys/fs/cgroup/unified/vigil-test-<name>`.
    pub fn cgroup_path(&self) -> &Path {
        &self.cgroup
    }

    /// cgroup path relative to the cgroup2 mount, as the `0::` line of
    /// `/proc/PID/cgroup` shows it: `/vigil-test-<name>`.
    pub fn cgroup_path_relative(&self) -> String {
        self.cgroup_rel.clone()
    }

    /// Full name, `vigil-test-<name>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Host path of the container's root (the overlay's merged directory).
    pub fn root(&self) -> PathBuf {
        self.dir.join("merged")
    }

    /// What the script wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("out.log")).unwrap_or_default()
    }

    /// pid namespace inode of the init (`stat -L -c %i /proc/PID/ns/pid`),
    /// read at start, so still valid after it exited.
    pub fn pidns_inode(&self) -> u32 {
        self.pidns
    }

    /// mount namespace inode of the init, read at start.
    pub fn mntns_inode(&self) -> u32 {
        self.mntns
    }

    /// network namespace inode of the init, read at start.
    pub fn netns_inode(&self) -> u32 {
        self.netns
    }

    /// Waits up to `timeout` for the container to exit: the exit status of
    /// `unshare`, which is the script's exit code; `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let c = self.child.as_mut()?;
        wait_for(timeout, || c.try_wait().ok().flatten())
    }
}

impl Drop for NsContainer {
    fn drop(&mut self) {
        // SIGKILL to the init (through a pidfd: never a recycled pid) kills
        // its whole pid namespace, and unshare, our child, reaps it and
        // exits; killing the cgroup first would orphan the init to the host's
        // pid 1, which may reap it late.
        if let Some(fd) = &self.pidfd {
            // SAFETY: a valid pidfd; a null siginfo is allowed.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
        }
        let mut child = self.child.take();
        if let Some(c) = child.as_mut()
            && wait_for(Duration::from_secs(5), || c.try_wait().ok().flatten()).is_none()
        {
            let _ = c.kill();
        }
        // Then whatever else is in the cgroup.
        let torn = teardown(&self.dir, &self.cgroup);
        if let Some(mut c) = child {
            let _ = c.wait();
        }
        if let Err(e) = torn {
            eprintln!("NsContainer {}: teardown incomplete: {e}", self.name);
        }
    }
}

/// A pidfd for `pid` (kernel >= 5.3), so a later signal cannot hit a
/// recycled pid.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a non-negative return is a fresh fd that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The podman image [`PodmanContainer`] runs: the busybox rootfs imported.
pub const PODMAN_IMAGE: &str = "localhost/vigil-test-busybox:latest";

/// `podman` with the global flags the fixture always uses: the cgroupfs
/// manager (what podman falls back to here anyway, with no systemd
/// running; crun does not work on these hybrid-cgroup hosts, runc does).
fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--cgroup-manager=cgroupfs", "--runtime", "runc"]);
    c
}

/// Imports the busybox rootfs as [`PODMAN_IMAGE`] unless it exists.
fn ensure_podman_image() -> io::Result<()> {
    static IMPORT: Mutex<bool> = Mutex::new(false);
    let mut ready = IMPORT.lock().unwrap_or_else(|p| p.into_inner());
    if *ready {
        return Ok(());
    }
    let exists = podman()
        .args(["image", "exists", PODMAN_IMAGE])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| io::Error::new(e.kind(), format!("podman: {e} (apt-get install podman)")))?;
    if exists.success() {
        *ready = true;
        return Ok(());
    }
    let rootfs = try_busybox_rootfs()?;
    // tar -C rootfs -c . | podman import - IMAGE
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["--exclude", &format!("./{ROOTFS_COMPLETE}"), "-c", "."])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let out = podman()
        .args(["import", "-", PODMAN_IMAGE])
        .stdin(
            tar.stdout
                .take()
                .ok_or_else(|| io::Error::other("tar stdout"))?,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()?;
    let tar_status = tar.wait()?;
    if !out.status.success() || !tar_status.success() {
        return Err(io::Error::other(format!(
            "tar -C {} -c . | podman import - {PODMAN_IMAGE} failed (tar {tar_status}, podman {}): {}",
            rootfs.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    *ready = true;
    Ok(())
}

/// A real podman container named `vigil-test-<name>`, run detached from
/// [`PODMAN_IMAGE`] (the busybox rootfs, imported on first use with
/// `tar -C rootfs -c . | podman import - localhost/vigil-test-busybox`) as
/// `podman --cgroup-manager=cgroupfs --runtime runc run -d --name
/// vigil-test-<name> --network none --ulimit nofile=20000:20000 --ulimit
/// nproc=4096:4096 IMAGE CMD...`. Removed with `podman rm -f -t 0` on drop;
/// a leftover container of the same name is removed first.
///
/// The `--ulimit`s are required here: root lacks CAP_SYS_RESOURCE, so
/// podman's default rlimits (above the hard limits) make runc fail with
/// "error setting rlimit type 7 (then 6): operation not permitted".
///
/// Measured on this 2-core VM (image present): `podman run -d` alone takes
/// 0.15-0.19 s, `podman inspect` 0.06 s, `podman rm -f -t 0` 0.11-0.20 s
/// (0.05 s when there is nothing to remove). `PodmanContainer::run` as a
/// whole (leftover removal, run, inspect) takes 0.24-0.35 s, its drop
/// 0.13-0.21 s; the first run in a process adds `podman image exists`
/// (0.06 s), and the one-time image import makes it 0.55 s.
///
/// `/proc/<host_pid>/cgroup` of such a container on this hybrid host (v1
/// controllers, plus cgroup2 at /sys/fs/cgroup/unified) names the container
/// by its full id, `libpod-<64 hex>` under `/libpod_parent`, identically in
/// every hierarchy, the `0::` (cgroup2) line included (captured here):
///
/// ```text
/// 9:name=systemd:/libpod_parent/libpod-c67db36c11262d75df5ca1f8799ab22aed064fc1ea1a8aaa3d44f43adbd836d1
/// 8:pids:/libpod_parent/libpod-c67db36c11262d75df5ca1f8799ab22aed064fc1ea1a8aaa3d44f43adbd836d1
/// 7:blkio:/libpod_parent/libpod-c67db36c11262d75df5ca1f8799ab22aed064fc1ea1a8aaa3d44f43adbd836d1
/// 6:freezer:/libpod_parent/libpod-c67db36c11262d75df5ca1f8799ab22aed064fc1ea1a8aaa3d44f43adbd836d1
/// 5:devices:/libpod_parent/libpod-c67db36c11262d75df5ca1f8799ab22aed064fc1ea1a8aaa3d44f43adbd836d1
/// 4:memory:/libpod_parent/libpod-c67db36c11262d75df5ca1f8799ab22aed064fc1ea1a8aaa3d44f43adbd836d1
/// 3:cpuset:/libpod_parent/libpod-c67db36c11262d75df5ca1f8799ab22aed064fc1ea1a8aaa3d44f43adbd836d1
/// 2:cpuacct:/libpod_parent/libpod-c67db36c11262d75df5ca1f8799ab22aed064fc1ea1a8aaa3d44f43adbd836d1
/// 1:cpu:/libpod_parent/libpod-c67db36c11262d75df5ca1f8799ab22aed064fc1ea1a8aaa3d44f43adbd836d1
/// 0::/libpod_parent/libpod-c67db36c11262d75df5ca1f8799ab22aed064fc1ea1a8aaa3d44f43adbd836d1
/// ```
///
/// No `.scope` suffix with the cgroupfs manager (the systemd manager would
/// give `/machine.slice/libpod-<id>.scope`). The container's init is pid 1
/// in its own pid namespace (`NSpid: <host pid> 1`). conmon, the monitor,
/// is in `/libpod_parent/conmon` in the v1 hierarchies and `0::/` in
/// cgroup2, so it is never attributed to the container. The container's
/// cgroup id (what BPF sees) is the inode of
/// `/sys/fs/cgroup/unified/libpod_parent/libpod-<id>`.
pub struct PodmanContainer {
    name: String,
    id: String,
    host_pid: u32,
}

impl PodmanContainer {
    /// `podman run -d` of `cmd` (argv, no shell) in a container named
    /// `vigil-test-<name>`; `name` must match `[a-z0-9-]+`. Returns once
    /// podman reports the container running (or already exited).
    pub fn run(name: &str, cmd: &[&str]) -> io::Result<PodmanContainer> {
        Self::run_with(name, &[], cmd)
    }

    /// As [`run`](Self::run), with more `podman run` options (`-v` mounts,
    /// ...) placed before the image.
    pub fn run_with(name: &str, opts: &[&str], cmd: &[&str]) -> io::Result<PodmanContainer> {
        check_name(name)?;
        let full = format!("vigil-test-{name}");
        ensure_podman_image()?;
        // A leftover of a crashed run under the same name.
        let _ = run(podman().args(["rm", "-f", "-t", "0", &full]));
        let out = run(podman()
            .args(["run", "-d", "--name", &full, "--network", "none"])
            .args([
                "--ulimit",
                "nofile=20000:20000",
                "--ulimit",
                "nproc=4096:4096",
            ])
            .args(opts)
            .arg(PODMAN_IMAGE)
            .args(cmd))?;
        // From here on, an error drops the fixture, which removes the container.
        let mut c = PodmanContainer {
            name: full,
            id: out.lines().last().unwrap_or("").trim().to_string(),
            host_pid: 0,
        };
        if c.id.len() != 64 || !c.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::other(format!(
                "podman run printed {out:?}, not a 64-hex container id"
            )));
        }
        c.host_pid = run(podman().args(["inspect", "-f", "{{.State.Pid}}", &c.id]))?
            .parse()
            .map_err(|e| io::Error::other(format!("podman inspect .State.Pid: {e}")))?;
        Ok(c)
    }

    /// Full container id (64 hex digits) as `podman run -d` printed it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Full name, `vigil-test-<name>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Host pid of the container's init, from
    /// `podman inspect -f '{{.State.Pid}}'` right after start (0 if the
    /// command had already exited by then).
    pub fn host_pid(&self) -> u32 {
        self.host_pid
    }
}

impl Drop for PodmanContainer {
    fn drop(&mut self) {
        if let Err(e) = run(podman().args(["rm", "-f", "-t", "0", &self.name])) {
            eprintln!("PodmanContainer {}: {e}", self.name);
        }
    }
}
