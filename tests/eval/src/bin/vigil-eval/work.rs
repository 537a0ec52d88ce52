//! The workloads, run as child processes (`vigil-eval work NAME N [DIR]`)
//! so that every configuration measures a fresh process. Each prints
//! `WALL_NS OPS` on stdout when done.

use std::ffi::CString;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Paths of the openat loop, cycled: a failing open below /etc (a distinct
/// name each time: every one is an event a rule could want), a read of
/// /etc/shadow (the same object again and again), an ordinary read, an
/// ordinary failing open. Each op also calls getppid (the getppid loop of the overhead spike in the README's Performance section).
pub const OPENAT_MIX: &str = "/etc/vigil-eval-PID-I (missing), /etc/shadow, /usr/lib/os-release, /tmp/vigil-eval-PID-I (missing); + getppid";

fn openat(p: &CString) {
    // SAFETY: valid C string; the fd, if any, is closed at once.
    unsafe {
        let fd = libc::openat(libc::AT_FDCWD, p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::close(fd);
        }
    }
}

fn exec_true() {
    let _ = Command::new("/bin/true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A loopback port with nothing listening (connects are refused at once).
fn closed_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr")
}

fn connect_once(addr: &std::net::SocketAddr) {
    let _ = std::net::TcpStream::connect_timeout(addr, Duration::from_secs(1));
}

/// Source of the build-like workload: one translation unit with the usual
/// headers (hundreds of opens below /usr/include, an exec, a write).
const BUILD_C: &str = r#"#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <pthread.h>
struct item { char name[32]; int n; };
static int cmp(const void *a, const void *b) { return ((const struct item *)a)->n - ((const struct item *)b)->n; }
int work(int argc, char **argv) {
    struct item v[64];
    for (int i = 0; i < 64; i++) { snprintf(v[i].name, sizeof v[i].name, "%s-%d", argc > 1 ? argv[1] : "x", i); v[i].n = (i * 7919) % 64; }
    qsort(v, 64, sizeof v[0], cmp);
    struct stat st; if (stat("/etc/hostname", &st) != 0) return errno;
    return v[0].n + (int)strlen(v[63].name);
}
"#;

/// Runs workload `name` for `n` ops (or, for storms, `n` seconds).
pub fn main(args: &[String]) {
    let name = args.first().map(String::as_str).unwrap_or("");
    let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let t = Instant::now();
    let pid = std::process::id();
    let mut ops = n;
    match name {
        "exec" => (0..n).for_each(|_| exec_true()),
        "openat" => {
            let names: Vec<CString> = (0..n)
                .map(|i| {
                    let s = match i % 4 {
                        0 => format!("/etc/vigil-eval-{pid}-{i}"),
                        1 => "/etc/shadow".into(),
                        2 => "/usr/lib/os-release".into(),
                        _ => format!("/tmp/vigil-eval-{pid}-{i}"),
                    };
                    CString::new(s).expect("no NUL")
                })
                .collect();
            let t = Instant::now();
            for c in &names {
                openat(c);
                // SAFETY: no arguments.
                unsafe { libc::getppid() };
            }
            println!("{} {n}", t.elapsed().as_nanos());
            return;
        }
        "connect" => {
            let a = closed_port();
            (0..n).for_each(|_| connect_once(&a));
        }
        "build" => {
            let dir = args.get(2).cloned().unwrap_or_else(|| "/tmp".into());
            let src = format!("{dir}/unit-{pid}.c");
            std::fs::write(&src, BUILD_C).expect("write the build source");
            let t = Instant::now();
            for i in 0..n {
                let obj = format!("{dir}/unit-{pid}-{i}.o");
                let st = Command::new("clang-19")
                    .args(["-O1", "-c", &src, "-o", &obj])
                    .stdin(Stdio::null())
                    .status()
                    .expect("run clang-19");
                assert!(st.success(), "clang-19 failed");
                let _ = std::fs::remove_file(&obj);
            }
            let _ = std::fs::remove_file(&src);
            println!("{} {n}", t.elapsed().as_nanos());
            return;
        }
        // Storms: as fast as possible for n seconds; print the ops done.
        "storm-exec" | "storm-open" | "storm-connect" | "storm-mixed" => {
            let end = t + Duration::from_secs(n);
            let addr = closed_port();
            let mut i = 0u64;
            let mut buf = Vec::with_capacity(64);
            while Instant::now() < end {
                for _ in 0..64 {
                    match name {
                        "storm-exec" => exec_true(),
                        "storm-open" => {
                            // distinct names: no dedup can absorb them
                            buf.clear();
                            use std::io::Write;
                            let _ = write!(buf, "/etc/vigil-flood-{pid}-{i}\0");
                            // SAFETY: NUL-terminated above.
                            let c = unsafe { std::ffi::CStr::from_bytes_with_nul_unchecked(&buf) };
                            openat(&c.to_owned());
                        }
                        "storm-connect" => connect_once(&addr),
                        _ => match i % 16 {
                            0 => exec_true(),
                            1..=3 => connect_once(&addr),
                            _ => openat(
                                &CString::new(format!("/etc/vigil-flood-{pid}-{i}"))
                                    .expect("no NUL"),
                            ),
                        },
                    }
                    i += 1;
                    if name == "storm-exec" {
                        break;
                    }
                }
            }
            ops = i;
        }
        // The sustained-rate generator: `n` seconds of failing opens of
        // distinct paths below /etc at `rate` per second (0: as fast as it
        // can) on `threads` threads (default 1), each paced against the
        // clock for its share (behind schedule it catches up, ahead it
        // sleeps), so the count it prints is exactly what the agent must
        // deliver. Prints `WALL_NS OPS CPU_NS` (its own user + system CPU).
        "paced-open" => {
            let rate: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
            let threads: u64 = args
                .get(3)
                .and_then(|s| s.parse().ok())
                .filter(|t| *t > 0)
                .unwrap_or(1);
            let ops = paced_open(pid, n, rate, threads);
            println!("{} {ops} {}", t.elapsed().as_nanos(), self_cpu_ns());
            return;
        }
        // The soak's steady mix: `n` seconds at about `rate` ops/s.
        "mixed" => {
            let rate: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
            let end = t + Duration::from_secs(n);
            let addr = closed_port();
            let passwd = CString::new("/etc/passwd").expect("no NUL");
            let mut i = 0u64;
            while Instant::now() < end {
                match i % 10 {
                    0 => exec_true(),
                    1 => connect_once(&addr),
                    2 => {
                        openat(&CString::new(format!("/etc/vigil-soak-{pid}-{i}")).expect("no NUL"))
                    }
                    _ => openat(&passwd),
                }
                i += 1;
                let due = t + Duration::from_secs_f64(i as f64 / rate as f64);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
            ops = i;
        }
        other => {
            eprintln!("vigil-eval work: unknown workload {other:?}");
            std::process::exit(2);
        }
    }
    println!("{} {ops}", t.elapsed().as_nanos());
}

/// The sustained-rate generator (`paced-open`): `secs` seconds at `rate`
/// opens per second in total (0: unpaced) over `threads` threads; thread
/// `k` opens `/etc/vigil-sustain-PID-k-I` for I = 0, 1, ... (every path
/// distinct, a missing file: no fd). Returns the opens done, all threads
/// together.
fn paced_open(pid: u32, secs: u64, rate: u64, threads: u64) -> u64 {
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(secs);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|k| {
                s.spawn(move || {
                    // this thread's share of the rate and of the total
                    let share = rate / threads + u64::from(k < rate % threads);
                    let total = share * secs;
                    let mut path = Vec::with_capacity(64);
                    use std::io::Write;
                    let _ = write!(path, "/etc/vigil-sustain-{pid}-{k}-");
                    let head = path.len();
                    let mut i = 0u64;
                    let mut open_next = |i: u64| {
                        path.truncate(head);
                        let _ = write!(path, "{i}\0");
                        // SAFETY: NUL-terminated above, no other NUL (digits);
                        // a missing file: no fd to close.
                        unsafe {
                            libc::openat(libc::AT_FDCWD, path.as_ptr().cast(), libc::O_RDONLY)
                        };
                    };
                    if rate == 0 {
                        // unpaced: check the clock every 256 opens
                        while Instant::now() < end {
                            for _ in 0..256 {
                                open_next(i);
                                i += 1;
                            }
                        }
                        return i;
                    }
                    while i < total {
                        let due =
                            ((t0.elapsed().as_secs_f64() * share as f64) as u64 + 1).min(total);
                        while i < due {
                            open_next(i);
                            i += 1;
                        }
                        if i < total {
                            std::thread::sleep(Duration::from_micros(500));
                        }
                    }
                    i
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    })
}

/// User + system CPU of this process so far (all its threads), ns.
fn self_cpu_ns() -> u64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_utime) + us(ru.ru_stime)) * 1000
}

/// Result of one workload child.
pub struct Ran {
    /// Its pid (events about it are counted by pid / parent pid).
    pub pid: u32,
    /// Wall time of the measured loop, ns.
    pub wall_ns: f64,
    /// Ops done.
    pub ops: u64,
}

/// Starts `vigil-eval work ARGS...` and waits for it.
pub fn run(args: &[&str]) -> Result<Ran, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let c = Command::new(me)
        .arg("work")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn workload: {e}"))?;
    let pid = c.id();
    let out = c.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("workload {args:?} failed: {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let wall_ns = it
        .next()
        .and_then(|x| x.parse().ok())
        .ok_or("workload output")?;
    let ops = it
        .next()
        .and_then(|x| x.parse().ok())
        .ok_or("workload output")?;
    Ok(Ran { pid, wall_ns, ops })
}

/// Starts workload children without waiting (floods, soak).
pub fn spawn(args: &[&str]) -> Result<std::process::Child, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    Command::new(me)
        .arg("work")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn workload: {e}"))
}

/// What a spawned workload child printed: ops, wall ns, and its own CPU
/// ns when it reports it (`paced-open`); zeros when it printed nothing.
pub struct Finished {
    /// Ops done.
    pub ops: u64,
    /// Wall time of its loop, ns.
    pub wall_ns: u64,
    /// Its user + system CPU, ns (0: not reported).
    pub cpu_ns: u64,
}

/// Waits for a spawned workload child; returns what it printed.
pub fn finish_full(c: std::process::Child) -> Finished {
    let out = c
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let v: Vec<u64> = out
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Finished {
        wall_ns: at(0),
        ops: at(1),
        cpu_ns: at(2),
    }
}

/// Waits for a spawned workload child; returns its ops.
pub fn finish(c: std::process::Child) -> u64 {
    c.wait_with_output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse().ok())
        })
        .unwrap_or(0)
}
