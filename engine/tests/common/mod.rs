//! Helpers of the binary's root tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `vigil` binary under test.
pub fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

/// `vigil --config cfg`.
pub fn vigil_with(cfg: &Path) -> Command {
    let mut c = vigil();
    c.arg("--config").arg(cfg);
    c
}

/// Runs `vigil --config cfg ARGS`, which must exit 0 (else the test fails
/// with its stderr); returns its stdout.
pub fn vigil_ok(cfg: &Path, args: &[&str]) -> String {
    let o = vigil_with(cfg).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The capture context of constructed records: host `hostname`, no users,
/// booted at 1_795_000_000 s after the epoch (a record at 5 s is
/// 2026-11-18T11:06:45Z).
pub fn test_context(hostname: &str) -> vigil_engine::capture::Context {
    vigil_engine::capture::Context {
        abi_version: vigil_bpf::abi::ABI_VERSION,
        vigil_version: "test".into(),
        hostname: hostname.into(),
        boot_offset_ns: 1_795_000_000_000_000_000,
        users: vigil_engine::host::Users::default(),
    }
}

/// The header of an open by `cat` (pid and tid 4242, parent 1) at 5 s.
pub fn cat_open_hdr() -> vigil_bpf::abi::Hdr {
    vigil_bpf::abi::Hdr {
        kind: vigil_bpf::abi::kind::OPEN,
        pid: 4242,
        tid: 4242,
        ppid: 1,
        ts_ns: 5_000_000_000,
        comm: *b"cat\0\0\0\0\0\0\0\0\0\0\0\0\0",
        ..vigil_bpf::abi::Hdr::default()
    }
}

/// Root tests run for real; without root they skip, unless CI requires them.
pub fn require_root(name: &str) -> bool {
    vigil_rootgate::require_root(name)
}

/// Waits for a line containing `what`; panics at the deadline.
pub fn wait_line(rx: &mpsc::Receiver<String>, what: &str, deadline: Duration) -> String {
    let end = Instant::now() + deadline;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(what) => return l,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("no stderr line containing {what:?}");
}

/// Spawns `cmd` with its stderr piped; returns the child and a receiver of
/// its stderr lines (read on a thread of their own).
pub fn spawn_with_stderr(cmd: &mut Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("spawn vigil");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    (child, rx)
}

/// The pid of the agent's bpf_stats helper: its child named `vigil-stats`.
pub fn stats_helper_of(agent: u32) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/status")).is_ok_and(|st| {
                st.lines().next() == Some("Name:\tvigil-stats")
                    && st.lines().any(|l| l == format!("PPid:\t{agent}"))
            })
        })
}

/// A free TCP port on loopback (bound once and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process (named for messages) stopped when dropped: SIGTERM,
/// then killed if it has not exited within 20 s; always reaped.
pub struct Stopped(pub Child, pub &'static str);

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop on SIGTERM: killing it", self.1);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops `child` with SIGTERM and asserts it exited 0 within `deadline`
/// (killed by a signal, such as SIGSYS from a seccomp filter, fails too).
pub fn stop_cleanly(child: &mut Child, deadline: Duration) {
    use std::os::unix::process::ExitStatusExt as _;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if let Ok(Some(st)) = child.try_wait() {
            assert_eq!(st.signal(), None, "vigil was killed by a signal: {st}");
            assert!(st.success(), "vigil exited with {st}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("vigil did not stop on SIGTERM");
}
