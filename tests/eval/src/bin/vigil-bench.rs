//! `vigil-bench`: what vigil costs the programs it watches, measured side by
//! side in one run (the machine is shared and noisy: ratios, not absolutes).
//!
//! For each workload (exec loop, openat loop over distinct paths, loopback
//! connect loop, getppid loop) it alternates, round after round:
//!   bare   nothing attached
//!   count  one bare counting tracepoint on the workload's syscall (the floor
//!          of any eBPF tracer)
//!   vigil  what `vigil run` does by default: every default sensor, the
//!          built-in rules (plus `--sigma DIR`), baselines learning (in
//!          memory), alerts to a JSON file through the outputs
//!   vigil --events  the same with every event as ECS JSON to the file
//! and prints medians of the rounds: ns/op with ratios against bare,
//! delivered/ops (events of the workload process that reached userspace per
//! operation), drops, and the consumer's rate (events through the whole
//! pipeline per second of the agent process's CPU time, output threads
//! included).
//!
//! Usage: vigil-bench [--rounds N] [--scale F] [--only WORKLOAD] [--disable SENSOR]... [--sigma DIR] [--baselines] [--no-bpf-stats] [--no-hash]   (root)
//!        vigil-bench --sched [--rounds N] [--scale F]
//!        vigil-bench --syscalls [--rounds N] [--scale F]
//!        vigil-bench --ktools [--rounds N] [--scale F] [--variants LIST]
//!        vigil-bench --overlayfs [--rounds N] [--scale F]
//!        vigil-bench --profile [--rounds N] [--scale F]
//!        vigil-bench --blkthrot [--rounds N] [--scale F]
//! `--profile` measures the CPU profiler (`bpf/c/profile.bpf.c`): a
//! CPU-bound loop (the work the profiler interrupts) and the pipe loop
//! (kernel stacks), alternating bare / a counting perf_event floor at
//! 49 Hz / the profiler at 49 Hz / at 99 Hz; CPU ns per op and ratios;
//! then, with BPF_ENABLE_STATS, the program's own time per sample and the
//! share of each CPU that makes at 49 and 99 Hz; then the agent side: the
//! CPU time of one `perf.interval_s` collection (stacks read, symbolized,
//! folded, encoded) at 49 and 99 Hz, a new collector's first interval
//! (cold) and its second (warm), with a spin child and the host's own
//! processes sampled.
//! `--syscalls` measures the syscall counter (perfsys `syscount` on raw
//! `sys_exit`): getppid and failing close(-1) loops, alternating bare /
//! counting floor / errors mode / all mode; CPU ns per call and ratios.
//! `--sched` measures the scheduler sensors instead (runqlat + pidnss,
//! `bpf/c/sched.bpf.c`): two threads pinned to one CPU ping-pong a byte over
//! two pipes (every round trip is two context switches and two wakeups),
//! alternating bare / runqlat+pidnss attached / runqlat only, and prints
//! ns per switch and the ratios.
//! `--ktools` measures the kernel-work tools (`bpf/c/ktools.bpf.c`): a
//! pipe create/close loop (kernel allocations: kmem, slabratetop), a
//! page-touching mmap/munmap loop (page allocations: kpages) and a loopback
//! UDP send loop (softirqs, hardirqs, skb allocations), alternating bare /
//! a counting floor on kmem_cache_alloc / the default tools / each tool
//! alone (memleak tracking every address and 1 in 16); CPU ns per op and
//! ratios against bare.
//! `--overlayfs` measures the overlayfs tool: 4 KiB preads of a host file
//! (the fd check every read and write now pays) and of the same file
//! through an overlay mount it sets up (the timed case), alternating bare /
//! overlayfs alone / the default kernel-work tools / defaults + overlayfs.
//! `--disable` runs vigil without a sensor, to see what that sensor costs;
//! `--baselines` adds the syscall learner to the baselines (the workload's
//! syscall set learned: its worst case).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use vigil_engine::agent::{RunOptions, Running};
use vigil_engine::config::Config;
use vigil_outputs::JsonLines;

#[derive(Clone, Copy)]
struct Workload {
    name: &'static str,
    ops: u64,
    /// sys_enter tracepoint the counting floor attaches to.
    syscall: &'static str,
    /// kind whose events count as delivered (0: none expected).
    kind: u16,
    /// expected events per op when every op should be reported.
    expected_per_op: f64,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "exec",
        ops: 2_000,
        syscall: "execve",
        kind: 1,
        expected_per_op: 1.0,
    },
    Workload {
        name: "openat",
        ops: 200_000,
        syscall: "openat",
        kind: 10,
        expected_per_op: 1.0,
    },
    Workload {
        name: "connect",
        ops: 20_000,
        syscall: "connect",
        kind: 20,
        expected_per_op: 1.0,
    },
    Workload {
        name: "getppid",
        ops: 1_000_000,
        syscall: "getppid",
        kind: 0,
        expected_per_op: 0.0,
    },
];

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Child side: run `n` ops of `w`, print "wall_ns".
fn child(w: &str, n: u64) {
    let t = std::time::Instant::now();
    let c0 = thread_cpu_ns();
    match w {
        "exec" => {
            for _ in 0..n {
                let _ = Command::new("/bin/true").status();
            }
        }
        "openat" => {
            // distinct, failing paths below /etc (a prefix of interest):
            // every op is an event the rules could want.
            let pid = std::process::id();
            let names: Vec<std::ffi::CString> = (0..n)
                .map(|i| std::ffi::CString::new(format!("/etc/vigil-bench-{pid}-{i}")).unwrap())
                .collect();
            let t2 = std::time::Instant::now();
            let c2 = thread_cpu_ns();
            for c in &names {
                // SAFETY: valid C string.
                unsafe { libc::openat(libc::AT_FDCWD, c.as_ptr(), libc::O_RDONLY) };
            }
            println!("{} {}", t2.elapsed().as_nanos(), thread_cpu_ns() - c2);
            return;
        }
        "connect" => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            drop(l); // closed port: connect is refused at once
            for _ in 0..n {
                let _ = std::net::TcpStream::connect(addr);
            }
        }
        "pingpong" => {
            println!("{}", pingpong(n));
            return;
        }
        "badclose" => {
            // every call fails (EBADF): the syscall counter's worst case
            for _ in 0..n {
                // SAFETY: closing an invalid descriptor only fails.
                unsafe { libc::close(-1) };
            }
        }
        "pipe" => {
            let mut fds = [0i32; 2];
            for _ in 0..n {
                // SAFETY: pipe(2) fills the array; both ends are closed.
                unsafe {
                    if libc::pipe(fds.as_mut_ptr()) == 0 {
                        libc::close(fds[0]);
                        libc::close(fds[1]);
                    }
                }
            }
        }
        "pages" => {
            for _ in 0..n {
                // SAFETY: a private anonymous mapping, touched then unmapped.
                unsafe {
                    let p = libc::mmap(
                        std::ptr::null_mut(),
                        4096,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    );
                    if p != libc::MAP_FAILED {
                        *(p as *mut u8) = 1;
                        libc::munmap(p, 4096);
                    }
                }
            }
        }
        "spin" => {
            let mut x = 1u64;
            for _ in 0..n {
                for i in 0..1000u64 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
                }
            }
            std::hint::black_box(x);
        }
        "udp" => {
            let r = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let to = r.local_addr().unwrap();
            r.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 64];
            for _ in 0..n {
                let _ = s.send_to(&buf[..32], to);
                let _ = r.recv(&mut buf);
            }
        }
        "getppid" => {
            for _ in 0..n {
                // SAFETY: no arguments.
                unsafe { libc::getppid() };
            }
        }
        "dio" => {
            // 4 KiB O_DIRECT preads of the block device the parent named,
            // walking it: one bio each
            use std::os::unix::fs::OpenOptionsExt;
            let dev = std::env::var("VIGIL_BENCH_DEV").expect("VIGIL_BENCH_DEV not set");
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(&dev)
                .unwrap_or_else(|e| panic!("{dev}: {e}"));
            let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
            let size = f.metadata().map(|m| m.len()).unwrap_or(0).max(4096);
            let layout = std::alloc::Layout::from_size_align(4096, 4096).unwrap();
            // SAFETY: non-zero size; freed below.
            let buf = unsafe { std::alloc::alloc(layout) };
            let blocks = std::fs::read_to_string(format!(
                "/sys/class/block/{}/size",
                std::path::Path::new(&dev)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
            ))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .map_or(size / 4096, |sectors| sectors / 8)
            .max(1);
            for i in 0..n {
                let off = ((i % blocks) * 4096) as i64;
                // SAFETY: buf is 4096 aligned bytes.
                let r = unsafe { libc::pread(fd, buf.cast(), 4096, off) };
                assert_eq!(r, 4096, "pread {dev} at {off}");
            }
            // SAFETY: allocated above with this layout.
            unsafe { std::alloc::dealloc(buf, layout) };
        }
        "tcp" => {
            // a loopback TCP ping-pong, one byte each way: every send arms
            // the retransmit and delayed-ACK timers (timer_start)
            use std::io::{Read, Write};
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let to = l.local_addr().unwrap();
            let echo = std::thread::spawn(move || {
                let (mut c, _) = l.accept().unwrap();
                let mut b = [0u8; 1];
                while c.read_exact(&mut b).is_ok() {
                    if c.write_all(&b).is_err() {
                        break;
                    }
                }
            });
            let mut c = std::net::TcpStream::connect(to).unwrap();
            c.set_nodelay(true).unwrap();
            let mut b = [7u8; 1];
            for _ in 0..n {
                c.write_all(&b).unwrap();
                c.read_exact(&mut b).unwrap();
            }
            drop(c);
            let _ = echo.join();
        }
        "read" | "ovlread" => {
            // 4 KiB preads (page cache) of the file the parent named: a
            // host file (read) or the same file through an overlay mount
            // (ovlread)
            let var = if w == "read" {
                "VIGIL_BENCH_HOST_FILE"
            } else {
                "VIGIL_BENCH_OVL_FILE"
            };
            let path = std::env::var(var).unwrap_or_else(|_| panic!("{var} not set"));
            let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
            let mut buf = vec![0u8; 4096];
            for _ in 0..n {
                // SAFETY: reads into a buffer of that size.
                unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            }
        }
        _ => panic!("unknown workload {w}"),
    }
    println!("{} {}", t.elapsed().as_nanos(), thread_cpu_ns() - c0);
}

/// Pins the calling thread to CPU 0.
fn pin_cpu0() {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET on it and
    // sched_setaffinity(0 = this thread) with its size are sound.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Two threads on CPU 0 pass a byte back and forth `n` times over two
/// pipes; returns wall ns per context switch (two per round trip).
fn pingpong(n: u64) -> f64 {
    let mut a = [0i32; 2];
    let mut b = [0i32; 2];
    // SAFETY: pipe(2) fills the two-element arrays.
    unsafe {
        assert_eq!(libc::pipe(a.as_mut_ptr()), 0);
        assert_eq!(libc::pipe(b.as_mut_ptr()), 0);
    }
    let (a_r, a_w, b_r, b_w) = (a[0], a[1], b[0], b[1]);
    pin_cpu0();
    let peer = std::thread::spawn(move || {
        pin_cpu0();
        let mut c = [0u8; 1];
        for _ in 0..n {
            // SAFETY: valid fds and a 1-byte buffer.
            unsafe {
                libc::read(a_r, c.as_mut_ptr().cast(), 1);
                libc::write(b_w, c.as_ptr().cast(), 1);
            }
        }
    });
    let t = std::time::Instant::now();
    let mut c = [1u8; 1];
    for _ in 0..n {
        // SAFETY: valid fds and a 1-byte buffer.
        unsafe {
            libc::write(a_w, c.as_ptr().cast(), 1);
            libc::read(b_r, c.as_mut_ptr().cast(), 1);
        }
    }
    let ns = t.elapsed().as_nanos() as f64;
    let _ = peer.join();
    ns / (2 * n) as f64
}

/// `--sched`: context-switch cost with and without the scheduler sensors.
fn sched_bench(rounds: usize, scale: f64) {
    use vigil_bpf::sched::{Sched, SchedConfig};
    let n = (200_000.0 * scale).max(1000.0) as u64;
    let exe = std::env::current_exe().unwrap();
    let run = || -> f64 {
        let out = Command::new(&exe)
            .args(["child", "pingpong", &n.to_string()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    // None: bare; Some(None): the counting floor; Some(Some(cfg)): sensors
    let variants: [(&str, Option<Option<SchedConfig>>); 4] = [
        ("bare", None),
        ("count floor", Some(None)),
        (
            "runqlat+pidnss",
            Some(Some(SchedConfig {
                runqlat: true,
                pidnss: true,
                raw_tp_only: false,
            })),
        ),
        (
            "runqlat only",
            Some(Some(SchedConfig {
                runqlat: true,
                pidnss: false,
                raw_tp_only: false,
            })),
        ),
    ];
    let mut res: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut waits = 0u64;
    for r in 0..rounds {
        eprintln!("vigil-bench --sched: round {}/{rounds}", r + 1);
        for (i, (_, cfg)) in variants.iter().enumerate() {
            let s = cfg.map(|c| match c {
                Some(c) => Sched::load(&c).expect("load sched.bpf.o"),
                None => Sched::load_floor().expect("load the counting floor"),
            });
            if let Some(s) = s.as_ref().filter(|_| cfg.is_some_and(|c| c.is_some())) {
                assert!(
                    s.is_live("runqlat"),
                    "runqlat did not attach: {:?}",
                    s.status()
                );
            }
            res[i].push(run());
            if let Some(s) = &s {
                waits += s
                    .runqlat()
                    .unwrap_or_default()
                    .iter()
                    .map(|(_, h)| h.slots.iter().sum::<u64>())
                    .sum::<u64>();
            }
        }
    }
    let bare = med(&res[0]);
    println!(
        "
vigil-bench --sched: {n} round trips of two threads pinned to CPU 0 over pipes (2 context switches each), medians of {rounds} rounds
"
    );
    println!("{:<16} {:>10} {:>8}", "variant", "ns/switch", "ratio");
    for (i, (name, _)) in variants.iter().enumerate() {
        let v = med(&res[i]);
        println!("{name:<16} {v:>10.0} {:>7.2}x", v / bare);
    }
    println!(
        "
runqlat counted {waits} waits in its runs (histograms in BPF maps; no event per switch)."
    );
}

/// `--overlayfs`: what the overlayfs tool costs reads of host files (the
/// fd check on every read and write) and of overlay files (the timing).
fn overlayfs_bench(rounds: usize, scale: f64) {
    use vigil_bpf::ktools::{Ktools, KtoolsConfig};
    let n = (400_000.0 * scale).max(1000.0) as u64;
    let dir = std::env::temp_dir().join(format!("vigil-bench-ovl-{}", std::process::id()));
    for d in ["l", "u", "w", "m"] {
        std::fs::create_dir_all(dir.join(d)).expect("overlay directories");
    }
    std::fs::write(dir.join("l/f"), vec![7u8; 65536]).expect("the lower file");
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={},upperdir={},workdir={}",
            dir.join("l").display(),
            dir.join("u").display(),
            dir.join("w").display()
        ))
        .arg(dir.join("m"))
        .status()
        .expect("mount");
    assert!(st.success(), "mount -t overlay failed");
    // SAFETY: set before any thread of ours reads the environment.
    unsafe {
        std::env::set_var("VIGIL_BENCH_HOST_FILE", dir.join("l/f"));
        std::env::set_var("VIGIL_BENCH_OVL_FILE", dir.join("m/f"));
    }
    let defaults = vigil_engine::config::PerfConfig::default().ktools_config();
    let variants: Vec<(&str, Option<KtoolsConfig>)> = vec![
        ("bare", None),
        (
            "overlayfs",
            Some(KtoolsConfig {
                overlayfs: true,
                ..KtoolsConfig::default()
            }),
        ),
        ("ktools defaults", Some(defaults)),
        (
            "defaults+overlayfs",
            Some(KtoolsConfig {
                overlayfs: true,
                ..defaults
            }),
        ),
    ];
    let loads = ["read", "ovlread"];
    let mut res = vec![vec![Vec::new(); variants.len()]; loads.len()];
    alternate(
        "--overlayfs",
        rounds,
        &loads,
        n,
        variants.len(),
        |li, w, vi| {
            let kt = variants[vi]
                .1
                .map(|c| Ktools::load(&c).expect("load ktools.bpf.o"));
            if let Some(k) = &kt {
                for st in k.status() {
                    assert!(
                        !matches!(st.state, vigil_bpf::SensorState::Unavailable(_)),
                        "{st:?}"
                    );
                }
            }
            let (_, cpu) = run_child(w, n, None);
            res[li][vi].push(cpu);
            drop(kt);
        },
    );
    let _ = Command::new("umount").arg(dir.join("m")).status();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "
vigil-bench --overlayfs: {n} preads of 4 KiB per workload (read: a host ext4 file, ovlread: the same file through an overlay mount), CPU ns per op of the workload thread, medians of {rounds} rounds
"
    );
    print!("{:<22}", "variant");
    for l in &loads {
        print!(" {l:>8} {:>6}", "ratio");
    }
    println!();
    for (vi, (name, _)) in variants.iter().enumerate() {
        print!("{name:<22}");
        for per_load in &res {
            let v = med(&per_load[vi]);
            print!(" {v:>8.0} {:>5.2}x", v / med(&per_load[0]));
        }
        println!();
    }
}

/// `--ktools`: what the kernel-work tools cost the work they count
/// (`only`: the variants whose name contains one of these, and bare).
fn ktools_bench(rounds: usize, scale: f64, pick: &[String]) {
    use vigil_bpf::ktools::{Ktools, KtoolsConfig};
    let n = (200_000.0 * scale).max(1000.0) as u64;
    let defaults = vigil_engine::config::PerfConfig::default().ktools_config();
    let only = |f: fn(&mut KtoolsConfig)| {
        let mut c = KtoolsConfig {
            kmem_sample: 1,
            kpages_sample: 1,
            ..KtoolsConfig::default()
        };
        f(&mut c);
        c
    };
    // (name, floor, tools)
    let variants: Vec<(&str, bool, Option<KtoolsConfig>)> = vec![
        ("bare", false, None),
        ("count floor", true, None),
        ("defaults", false, Some(defaults)),
        (
            "kmem+slabratetop",
            false,
            Some(only(|c| {
                c.kmem = true;
                c.slabratetop = true;
            })),
        ),
        (
            "kmem+slabratetop 1-in-10",
            false,
            Some(only(|c| {
                c.kmem = true;
                c.slabratetop = true;
                c.kmem_sample = 10;
            })),
        ),
        (
            "memleak",
            false,
            Some(only(|c| {
                c.memleak = true;
                c.memleak_sample = 1;
            })),
        ),
        (
            "memleak 1-in-16",
            false,
            Some(only(|c| {
                c.memleak = true;
                c.memleak_sample = 16;
            })),
        ),
        ("kpages", false, Some(only(|c| c.kpages = true))),
        (
            "softirqs+hardirqs",
            false,
            Some(only(|c| {
                c.softirqs = true;
                c.hardirqs = true;
            })),
        ),
        (
            "workq+numamove+tasklets",
            false,
            Some(only(|c| {
                c.workq = true;
                c.numamove = true;
                c.tasklets = true;
            })),
        ),
    ];
    let variants: Vec<_> = variants
        .into_iter()
        .filter(|v| {
            v.0 == "bare" || pick.is_empty() || pick.iter().any(|o| v.0.contains(o.as_str()))
        })
        .collect();
    let loads = ["pipe", "pages", "udp"];
    let mut res = vec![vec![Vec::new(); variants.len()]; loads.len()];
    alternate(
        "--ktools",
        rounds,
        &loads,
        n,
        variants.len(),
        |li, w, vi| {
            let (_, floor, cfg) = &variants[vi];
            let fl = floor.then(|| Ktools::load_floor().expect("load the counting floor"));
            let kt = cfg.map(|c| Ktools::load(&c).expect("load ktools.bpf.o"));
            if let Some(k) = &kt {
                for st in k.status() {
                    assert!(
                        !matches!(st.state, vigil_bpf::SensorState::Unavailable(_)),
                        "{st:?}"
                    );
                }
            }
            let (_, cpu) = run_child(w, n, None);
            res[li][vi].push(cpu);
            drop(kt);
            drop(fl);
        },
    );
    println!(
        "
vigil-bench --ktools: {n} ops per workload, CPU ns per op of the workload thread, medians of {rounds} rounds
"
    );
    print!("{:<26}", "variant");
    for l in &loads {
        print!(" {l:>8} {:>6}", "ratio");
    }
    println!();
    for (vi, (name, _, _)) in variants.iter().enumerate() {
        print!("{name:<26}");
        for per_load in &res {
            let v = med(&per_load[vi]);
            print!(" {v:>8.0} {:>5.2}x", v / med(&per_load[0]));
        }
        println!();
    }
}

/// `--profile`: what the CPU profiler costs the work it samples.
fn profile_bench(rounds: usize, scale: f64) {
    use vigil_bpf::profile::{Profile, ProfileConfig};
    // (name, floor, hz)
    let variants: [(&str, bool, u64); 4] = [
        ("bare", false, 0),
        ("count floor 49 Hz", true, 49),
        ("profile 49 Hz", false, 49),
        ("profile 99 Hz", false, 99),
    ];
    let loads = [
        ("spin", (5_000_000.0 * scale).max(1000.0) as u64),
        ("pipe", (200_000.0 * scale).max(1000.0) as u64),
    ];
    let mut res = vec![vec![Vec::new(); variants.len()]; loads.len()];
    for r in 0..rounds {
        eprintln!("vigil-bench --profile: round {}/{rounds}", r + 1);
        for (li, (load, n)) in loads.iter().enumerate() {
            let w = Workload {
                name: load,
                ops: *n,
                syscall: "",
                kind: 0,
                expected_per_op: 0.0,
            };
            for (vi, (_, floor, hz)) in variants.iter().enumerate() {
                let cfg = ProfileConfig { hz: *hz };
                let p = match (*hz, *floor) {
                    (0, _) => None,
                    (_, true) => Some(Profile::load_floor(&cfg).expect("load the floor")),
                    (_, false) => {
                        let p = Profile::load(&cfg).expect("load profile.bpf.o");
                        assert!(p.is_live(), "{:?}", p.status());
                        Some(p)
                    }
                };
                let (_, cpu) = run_child(&w, *n, None);
                res[li][vi].push(cpu);
                drop(p);
            }
        }
    }
    println!(
        "\nvigil-bench --profile: CPU ns per op of the workload thread, medians of {rounds} rounds\n"
    );
    print!("{:<26}", "variant");
    for (l, _) in &loads {
        print!(" {l:>8} {:>6}", "ratio");
    }
    println!();
    for (vi, (name, _, _)) in variants.iter().enumerate() {
        print!("{name:<26}");
        for per_load in &res {
            let v = med(&per_load[vi]);
            print!(" {v:>8.0} {:>5.2}x", v / med(&per_load[0]));
        }
        println!();
    }
    // The program's own time per sample (bpf_stats, after the rounds: the
    // statistics cost two clock reads per run, so not during them): the
    // share of a CPU the profiler takes is runs/s x ns/run.
    let Ok(_stats) = vigil_bpf::bpf_stats_on() else {
        println!("\n(BPF_ENABLE_STATS refused: no per-sample time)");
        return;
    };
    println!("\nprogram time per sample (bpf_stats, one spin run per rate, every CPU sampled):");
    for hz in [49u64, 99] {
        let p = Profile::load(&ProfileConfig { hz }).expect("load profile.bpf.o");
        let t = Instant::now();
        let w = Workload {
            name: "spin",
            ops: loads[0].1,
            syscall: "",
            kind: 0,
            expected_per_op: 0.0,
        };
        run_child(&w, loads[0].1, None);
        let secs = t.elapsed().as_secs_f64();
        let (runs, ns) = p.program_stats().iter().fold((0u64, 0u128), |a, s| {
            (a.0 + s.run_count, a.1 + s.run_time.as_nanos())
        });
        let per = ns as f64 / runs.max(1) as f64;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        println!(
            "  {hz:>2} Hz: {runs} samples in {secs:.1} s ({:.1}/s per CPU), {per:.0} ns each: {:.4}% of each CPU",
            runs as f64 / secs / cpus,
            100.0 * runs as f64 * per / 1e9 / secs / cpus
        );
        drop(p);
    }
    profile_agent_cost(rounds);
}

/// `--blkthrot`: what the blkthrot tool costs. Its programs run on every
/// bio (block_bio_queue), every work item (workqueue_execute_start/end)
/// and every timer_list armed (timer_start). Loads: 4 KiB direct-I/O reads
/// of a loop device over a file (one bio each, not throttled: the common
/// case), a loopback TCP ping-pong (timers), the UDP loop (softirq work);
/// bare / blkthrot alternating, workload-thread CPU ns per op and ratios;
/// then, with BPF_ENABLE_STATS, each program's runs per op and ns per run,
/// and its runs per second and CPU share over 10 s of this host's own
/// activity.
fn blkthrot_bench(rounds: usize, scale: f64) {
    use vigil_bpf::ktools::{Ktools, KtoolsConfig};
    let dir = std::env::temp_dir().join(format!("vigil-bench-blkthrot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("disk.img");
    std::fs::write(&img, vec![0u8; 64 << 20]).unwrap();
    let out = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&img)
        .output()
        .expect("losetup");
    assert!(
        out.status.success(),
        "losetup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // SAFETY: single-threaded here; the children inherit it.
    unsafe { std::env::set_var("VIGIL_BENCH_DEV", &dev) };
    let cleanup = || {
        let _ = Command::new("losetup").arg("-d").arg(&dev).status();
        let _ = std::fs::remove_dir_all(&dir);
    };
    let on = KtoolsConfig {
        blkthrot: true,
        ..KtoolsConfig::default()
    };
    let loads = [
        ("dio", (100_000.0 * scale).max(1000.0) as u64),
        ("tcp", (100_000.0 * scale).max(1000.0) as u64),
        ("udp", (200_000.0 * scale).max(1000.0) as u64),
    ];
    let variants = ["bare", "blkthrot"];
    let mut res = vec![vec![Vec::new(); variants.len()]; loads.len()];
    for r in 0..rounds {
        eprintln!("vigil-bench --blkthrot: round {}/{rounds}", r + 1);
        for (li, (load, n)) in loads.iter().enumerate() {
            let w = Workload {
                name: load,
                ops: *n,
                syscall: "",
                kind: 0,
                expected_per_op: 0.0,
            };
            for (vi, per_variant) in res[li].iter_mut().enumerate() {
                let kt = (vi == 1).then(|| {
                    let k = Ktools::load(&on).expect("load ktools.bpf.o");
                    assert!(k.is_live("blkthrot"), "{:?}", k.status());
                    k
                });
                let (_, cpu) = run_child(&w, *n, None);
                per_variant.push(cpu);
                drop(kt);
            }
        }
    }
    println!(
        "\nvigil-bench --blkthrot: CPU ns per op of the workload thread, medians of {rounds} rounds\n"
    );
    print!("{:<12}", "variant");
    for (l, _) in &loads {
        print!(" {l:>8} {:>6}", "ratio");
    }
    println!();
    for (vi, name) in variants.iter().enumerate() {
        print!("{name:<12}");
        for per_load in &res {
            let v = med(&per_load[vi]);
            print!(" {v:>8.0} {:>5.2}x", v / med(&per_load[0]));
        }
        println!();
    }
    let Ok(_stats) = vigil_bpf::bpf_stats_on() else {
        println!("\n(BPF_ENABLE_STATS refused: no per-program time)");
        cleanup();
        return;
    };
    let k = Ktools::load(&on).expect("load ktools.bpf.o");
    let snap = |k: &Ktools| -> std::collections::BTreeMap<String, (u64, u128)> {
        k.program_stats()
            .into_iter()
            .filter(|s| s.name.starts_with("vg_kt_bt_"))
            .map(|s| (s.name, (s.run_count, s.run_time.as_nanos())))
            .collect()
    };
    let delta = |a: &std::collections::BTreeMap<String, (u64, u128)>,
                 b: &std::collections::BTreeMap<String, (u64, u128)>| {
        b.iter()
            .map(|(n, (c, t))| {
                let (c0, t0) = a.get(n).copied().unwrap_or_default();
                (n.clone(), c - c0, t - t0)
            })
            .collect::<Vec<_>>()
    };
    println!(
        "\nper program (bpf_stats, one run of each load; every CPU, so the host's own work counts too):"
    );
    for (load, n) in &loads {
        let w = Workload {
            name: load,
            ops: *n,
            syscall: "",
            kind: 0,
            expected_per_op: 0.0,
        };
        let a = snap(&k);
        run_child(&w, *n, None);
        let b = snap(&k);
        for (name, c, t) in delta(&a, &b) {
            println!(
                "  {load:<4} {name:<20} {:>8.3} runs/op {:>6.0} ns/run",
                c as f64 / *n as f64,
                t as f64 / c.max(1) as f64
            );
        }
    }
    let secs = 10.0;
    let a = snap(&k);
    std::thread::sleep(Duration::from_secs_f64(secs));
    let b = snap(&k);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nthis host's own activity, {secs:.0} s (load average {}):",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut total = 0f64;
    for (name, c, t) in delta(&a, &b) {
        let share = t as f64 / 1e9 / secs * 100.0;
        total += share;
        println!(
            "  {name:<20} {:>9.0} runs/s {:>6.0} ns/run {:>8.4}% of one CPU",
            c as f64 / secs,
            t as f64 / c.max(1) as f64,
            share
        );
    }
    println!("  {:<20} {total:>41.4}% of one CPU", "all");
    drop(k);
    cleanup();
}

/// The profiler's agent side: what one `perf.interval_s` collection
/// (read the counts and stacks, symbolize, fold, encode) costs the agent's
/// thread, at 49 and 99 Hz alternately, while a spin child and whatever
/// else runs on the host are sampled. Per round and rate: a new collector's
/// first interval (cold: no symbol table loaded yet) and its second (warm).
fn profile_agent_cost(rounds: usize) {
    use vigil_bpf::profile::{Profile, ProfileConfig};
    use vigil_engine::perf::collector::{Collector, Ctx};
    use vigil_engine::perf::profile::ProfileCollector;
    let mut cfg = Config::default();
    let interval = Duration::from_secs(cfg.perf.interval_s);
    let rates = [49u64, 99];
    // [rate][cold, warm] -> (cpu ms, wall ms, rows, samples) per round
    let mut res = vec![[Vec::new(), Vec::new()]; rates.len()];
    for r in 0..rounds {
        for (ri, hz) in rates.iter().enumerate() {
            eprintln!(
                "vigil-bench --profile: agent side, round {}/{rounds}, {hz} Hz",
                r + 1
            );
            cfg.perf.profile = true;
            cfg.perf.profile_hz = *hz;
            let p = Profile::load(&ProfileConfig { hz: *hz }).expect("load profile.bpf.o");
            let mut c = ProfileCollector::new(p, &cfg.perf, None);
            let mut host = vigil_engine::host::LiveHost::new(false);
            let n = (interval.as_secs_f64() * 2.5 / 1.4e-6) as u64;
            let mut spin = Command::new(std::env::current_exe().unwrap())
                .args(["child", "spin", &n.to_string()])
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            for slot in &mut res[ri] {
                std::thread::sleep(interval);
                let (c0, w0) = (thread_cpu_ns(), Instant::now());
                let mut ctx = Ctx {
                    host: &mut host,
                    hostname: "bench",
                    unix_ns: 0,
                    programs: &[],
                    bpf_scale: 1.0,
                    events: 0,
                };
                let out = c.collect(&mut ctx);
                let cpu = (thread_cpu_ns() - c0) as f64 / 1e6;
                let wall = w0.elapsed().as_secs_f64() * 1e3;
                drop(out);
                let samples: u64 = c.last_rows.iter().map(|x| x.samples).sum();
                slot.push((cpu, wall, c.last_rows.len() as f64, samples as f64));
            }
            let _ = spin.kill();
            let _ = spin.wait();
        }
    }
    println!(
        "\nprofiler agent side per {} s interval (collect: counts and stacks read, symbolized, folded, encoded), medians of {rounds} rounds:",
        interval.as_secs()
    );
    println!(
        "  {:<6} {:<5} {:>8} {:>8} {:>7} {:>8} {:>9}",
        "rate", "", "cpu ms", "wall ms", "stacks", "samples", "% of CPU"
    );
    for (ri, hz) in rates.iter().enumerate() {
        for (wi, which) in ["cold", "warm"].iter().enumerate() {
            let v = &res[ri][wi];
            let m = |f: fn(&(f64, f64, f64, f64)) -> f64| med(&v.iter().map(f).collect::<Vec<_>>());
            let cpu = m(|x| x.0);
            println!(
                "  {:<6} {:<5} {:>8.1} {:>8.1} {:>7.0} {:>8.0} {:>8.3}%",
                format!("{hz} Hz"),
                which,
                cpu,
                m(|x| x.1),
                m(|x| x.2),
                m(|x| x.3),
                100.0 * cpu / 1e3 / interval.as_secs_f64()
            );
        }
    }
}

/// `--syscalls`: what the syscall counter (perfsys `syscount`, raw
/// `sys_exit`) costs every syscall: a getppid loop (every call succeeds)
/// and a close(-1) loop (every call fails, EBADF), alternating per round
/// bare / the counting floor (a sys_exit program that only counts) /
/// errors mode (the default) / all mode. Workload-thread CPU ns per call,
/// medians, ratios against bare.
fn syscalls_bench(rounds: usize, scale: f64) {
    use vigil_bpf::perfsys::{Perfsys, PerfsysConfig, SyscallMode};
    let n = (1_000_000.0 * scale).max(1000.0) as u64;
    // (name, load the counting floor, syscall mode to load). The floor
    // stands for the sys_exit program the security sensors already run
    // (vg_raw_exit: compat, udp_send, dns): "floor + errors" is what
    // errors mode adds to a running agent.
    let variants: [(&str, bool, Option<SyscallMode>); 6] = [
        ("bare", false, None),
        ("count floor", true, None),
        ("errors mode", false, Some(SyscallMode::Errors)),
        ("all mode", false, Some(SyscallMode::All)),
        ("floor+errors", true, Some(SyscallMode::Errors)),
        ("floor+all", true, Some(SyscallMode::All)),
    ];
    let loads = ["getppid", "badclose"];
    // [workload][variant] -> (cpu ns/op, wall ns/op) per round
    let mut res = vec![vec![(Vec::new(), Vec::new()); variants.len()]; loads.len()];
    let mut counted = vec![vec![0u64; variants.len()]; loads.len()];
    alternate(
        "--syscalls",
        rounds,
        &loads,
        n,
        variants.len(),
        |li, w, vi| {
            let (_, floor, mode) = &variants[vi];
            let fl = floor.then(|| Perfsys::load_floor().expect("load the counting floor"));
            let ps = mode.map(|mode| {
                let p = Perfsys::load(&PerfsysConfig {
                    syscalls: mode,
                    tcp: false,
                    bio: false,
                    raw_tp_only: false,
                })
                .expect("load perfsys.bpf.o");
                assert!(p.is_live("syscount"), "syscount: {:?}", p.status());
                p
            });
            let (wall, cpu) = run_child(w, n, None);
            res[li][vi].0.push(cpu);
            res[li][vi].1.push(wall);
            counted[li][vi] += match (&ps, &fl) {
                (Some(p), _) if *mode == Some(SyscallMode::All) => p
                    .syscall_procs()
                    .unwrap_or_default()
                    .iter()
                    .map(|x| x.1.calls)
                    .sum(),
                (Some(p), _) => p
                    .syscall_errors()
                    .unwrap_or_default()
                    .iter()
                    .map(|x| x.1)
                    .sum(),
                (None, Some(f)) => f.floor_runs(),
                (None, None) => 0,
            };
        },
    );
    println!(
        "
vigil-bench --syscalls: {n} calls per run in a child process, medians of {rounds} rounds (variants alternated within each round; workload-thread CPU time)
"
    );
    println!(
        "{:<10} {:<13} {:>10} {:>8} {:>11} {:>14}",
        "workload", "variant", "cpu ns/op", "ratio", "wall ns/op", "counted/round"
    );
    for (li, load) in loads.iter().enumerate() {
        let bare = med(&res[li][0].0);
        for (vi, (name, _, _)) in variants.iter().enumerate() {
            let cpu = med(&res[li][vi].0);
            println!(
                "{load:<10} {name:<13} {cpu:>10.0} {:>7.2}x {:>11.0} {:>14}",
                cpu / bare,
                med(&res[li][vi].1),
                if vi == 0 {
                    "-".to_string()
                } else {
                    (counted[li][vi] / rounds as u64).to_string()
                }
            );
        }
    }
    println!(
        "
errors mode counts failing calls only (getppid: nothing to count); all mode counts every call per process.
floor+X: X next to a counting sys_exit program, as in a running agent (whose vg_raw_exit already enables the tracepoint)."
    );
}

/// Calls `measure(load index, workload, variant index)` for every load
/// and every variant, `rounds` times: the variants alternate within each
/// round, so a slow spell of the host touches all of them alike.
fn alternate(
    what: &str,
    rounds: usize,
    loads: &[&'static str],
    n: u64,
    variants: usize,
    mut measure: impl FnMut(usize, &Workload, usize),
) {
    for r in 0..rounds {
        eprintln!("vigil-bench {what}: round {}/{rounds}", r + 1);
        for (li, load) in loads.iter().enumerate() {
            let w = Workload {
                name: load,
                ops: n,
                syscall: "",
                kind: 0,
                expected_per_op: 0.0,
            };
            for vi in 0..variants {
                measure(li, &w, vi);
            }
        }
    }
}

/// Runs a workload child; returns (wall ns/op, workload-thread CPU ns/op).
fn run_child(w: &Workload, n: u64, watch: Option<&AtomicU32>) -> (f64, f64) {
    let exe = std::env::current_exe().unwrap();
    let c = Command::new(exe)
        .args(["child", w.name, &n.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(wp) = watch {
        wp.store(c.id(), Ordering::SeqCst);
    }
    let out = c.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|x| x.parse::<f64>().unwrap());
    let (wall, cpu) = (it.next().unwrap(), it.next().unwrap());
    (wall / n as f64, cpu / n as f64)
}

#[derive(Default, Clone)]
struct Res {
    ns: Vec<f64>,
    cpu: Vec<f64>,
    delivered: Vec<f64>,
    drops: u64,
    rate: Vec<f64>,
}

fn med(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// What vigil costs the programs it watches (root): ns/op bare, with a counting
/// tracepoint and with vigil, round after round.
#[derive(clap::Parser)]
#[command(name = "vigil-bench")]
struct Args {
    /// Rounds (medians are reported).
    #[arg(long, value_name = "N", default_value_t = 3)]
    rounds: usize,
    /// Scale every workload's operation count by this factor.
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    scale: f64,
    /// Run vigil without this sensor (repeatable), to see what it costs.
    #[arg(long = "disable", value_name = "SENSOR")]
    disable: Vec<String>,
    /// Only this workload: exec, openat, connect or getppid.
    #[arg(long, value_name = "WORKLOAD")]
    only: Option<String>,
    /// Turn the kernel's per-program run-time accounting off (it reads the
    /// clock twice per program run).
    #[arg(long)]
    no_bpf_stats: bool,
    /// Run vigil without executable hashing (`hash.enabled = false`), to
    /// see what hashing costs the exec loop.
    #[arg(long)]
    no_hash: bool,
    /// Learn syscall sets too (the syscall learner attached; the workload's
    /// profile is learning: the worst case).
    #[arg(long)]
    baselines: bool,
    /// Rule folder loaded after the built-in rules, as `vigil run --rules
    /// DIR` (e.g. SigmaHQ's rules/linux).
    #[arg(long, value_name = "DIR")]
    sigma: Option<std::path::PathBuf>,
    /// Measure the scheduler sensors instead.
    #[arg(long)]
    sched: bool,
    /// Measure the syscall counter instead.
    #[arg(long)]
    syscalls: bool,
    /// Measure the kernel-work tools instead (kmem, kpages, softirqs, ...).
    #[arg(long)]
    ktools: bool,
    /// With --ktools: only the variants whose name contains one of these
    /// (comma-separated; bare always runs), e.g. `--variants memleak,floor`.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    variants: Vec<String>,
    /// Measure the overlayfs tool instead (4 KiB preads of a host file and
    /// of an overlay file).
    #[arg(long)]
    overlayfs: bool,
    /// Measure the CPU profiler instead (49 and 99 Hz).
    #[arg(long)]
    profile: bool,
    /// Measure the blkthrot tool instead (direct-I/O reads of a loop
    /// device, a loopback TCP ping-pong, the UDP loop).
    #[arg(long)]
    blkthrot: bool,
    /// Only time the ECS encoder (uncached against the per-process
    /// fragment cache, interleaved) over the events of this capture, per
    /// kind (no root needed).
    #[arg(long, value_name = "CAPTURE")]
    encoder: Option<std::path::PathBuf>,
    /// Only replay this capture through the full `--events` pipeline (the
    /// built-in rules plus `--sigma`, baselines learning, every event as
    /// ECS JSON to a file) with `[pipeline] workers` = 1 and 2, interleaved
    /// per round: records per second of wall-clock time and of CPU time,
    /// and the ratio (no root needed).
    #[arg(long, value_name = "CAPTURE")]
    workers: Option<std::path::PathBuf>,
    #[command(subcommand)]
    child: Option<Child>,
}

/// The workload child this binary re-executes itself as.
#[derive(clap::Subcommand)]
enum Child {
    /// Internal: run one workload.
    #[command(hide = true)]
    Child {
        /// Workload name.
        workload: String,
        /// Operations.
        n: u64,
    },
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    if let Some(Child::Child { workload, n }) = &args.child {
        child(workload, *n);
        return;
    }
    if let Some(cap) = &args.encoder {
        encoder_bench(cap, args.rounds);
        return;
    }
    if let Some(cap) = &args.workers {
        let rules = load_bench_rules(args.sigma.as_deref());
        let dir = std::env::temp_dir().join(format!("vigil-bench-w-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("output directory");
        let Some(rates) = worker_rates(cap, &rules, &dir, args.rounds, &[1, 2]) else {
            eprintln!("vigil-bench: {}: cannot replay", cap.display());
            std::process::exit(2);
        };
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "\nvigil-bench --workers: {} records of {}, full --events pipeline ({} rules, baselines learning, ECS JSON to a file), medians of {} rounds, 1 and 2 workers interleaved\n",
            rates.records,
            cap.display(),
            rules.rules().len(),
            args.rounds
        );
        print!("{}", rates.render());
        return;
    }
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("vigil-bench loads eBPF and needs root");
        std::process::exit(1);
    }
    let Args {
        rounds,
        scale,
        disable: disabled,
        only,
        no_bpf_stats,
        no_hash,
        baselines,
        sched,
        syscalls,
        ktools,
        variants,
        overlayfs,
        profile,
        blkthrot,
        sigma,
        ..
    } = args;
    let bpf_stats = !no_bpf_stats;
    if sched {
        sched_bench(rounds, scale);
        return;
    }
    if syscalls {
        syscalls_bench(rounds, scale);
        return;
    }
    if ktools {
        ktools_bench(rounds, scale, &variants);
        return;
    }
    if overlayfs {
        overlayfs_bench(rounds, scale);
        return;
    }
    if profile {
        profile_bench(rounds, scale);
        return;
    }
    if blkthrot {
        blkthrot_bench(rounds, scale);
        return;
    }
    let rules = load_bench_rules(sigma.as_deref());
    let out_dir = std::env::temp_dir().join(format!("vigil-bench-out-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).expect("output directory");
    let mut results: Vec<[Res; 4]> = vec![Default::default(); WORKLOADS.len()];
    for r in 0..rounds {
        eprintln!("vigil-bench: round {}/{rounds}", r + 1);
        for (wi, w) in WORKLOADS.iter().enumerate() {
            if only.as_deref().is_some_and(|o| o != w.name) {
                continue;
            }
            let n = ((w.ops as f64) * scale).max(10.0) as u64;
            // bare
            let (ns, cpu) = run_child(w, n, None);
            results[wi][0].ns.push(ns);
            results[wi][0].cpu.push(cpu);
            // counting floor
            {
                let cfg = vigil_bpf::SensorConfig::default();
                let mut s = vigil_bpf::Sensors::load_bare(&cfg).expect("load object");
                s.attach_bench_counter(w.syscall).expect("attach counter");
                let (ns, cpu) = run_child(w, n, None);
                results[wi][1].ns.push(ns);
                results[wi][1].cpu.push(cpu);
                let hits = s.bench_hits().unwrap_or(0);
                results[wi][1].delivered.push(hits as f64 / n as f64);
            }
            // vigil, as deployed: alerts only, then every event
            for (vi, events) in [(2usize, false), (3, true)] {
                let mut d = deployment(&disabled, bpf_stats, events, baselines, &rules, &out_dir);
                d.config.hash.enabled = !no_hash;
                let watch = Arc::new(AtomicU32::new(0));
                let agent = Running::spawn(RunOptions {
                    watch_pid: Some(watch.clone()),
                    ..d
                })
                .expect("start agent");
                let cpu0 = process_cpu_ns();
                let (ns, cpu) = run_child(w, n, Some(&watch));
                std::thread::sleep(Duration::from_millis(50));
                let cpu1 = process_cpu_ns();
                let summary = agent.stop_and_detach().expect("stop");
                let seen = summary.pipeline.watched.get(&w.kind).copied().unwrap_or(0);
                let decoded: u64 = summary.pipeline.decoded.values().sum();
                let drops: u64 = summary.kernel.values().map(|c| c.dropped).sum();
                let res = &mut results[wi][vi];
                res.ns.push(ns);
                res.cpu.push(cpu);
                res.delivered.push(seen as f64 / n as f64);
                res.drops += drops;
                if cpu1 > cpu0 && decoded > 1000 {
                    res.rate.push(decoded as f64 / ((cpu1 - cpu0) as f64 / 1e9));
                }
            }
        }
    }
    let offline = offline_consumer_rate(scale, rounds, &rules, &out_dir);
    let _ = std::fs::remove_dir_all(&out_dir);
    println!(
        "\nvigil-bench: medians of {rounds} rounds (ns per op; ratio to bare in the same run); vigil = default deployment ({} rules, baselines learning, alerts to a JSON file), vigil -e = the same with --events\n",
        rules.rules().len()
    );
    println!(
        "{:<9} {:>9} {:>8} {:>15} {:>15} {:>15} {:>8} {:>8} {:>7} {:>12} {:>12}",
        "workload",
        "ops",
        "bare",
        "count (x)",
        "vigil (x)",
        "vigil -e (x)",
        "deliv",
        "deliv -e",
        "drops",
        "ev/s",
        "ev/s -e"
    );
    let rate_s = |v: &[f64]| {
        let r = med(v);
        if r.is_nan() {
            "-".to_string()
        } else {
            format!("{r:.0}")
        }
    };
    for (wi, w) in WORKLOADS.iter().enumerate() {
        if results[wi][0].ns.is_empty() {
            continue;
        }
        let r = &results[wi];
        let b = med(&r[0].ns);
        let (c, v, e) = (med(&r[1].ns), med(&r[2].ns), med(&r[3].ns));
        println!(
            "{:<9} {:>9} {:>8.0} {:>7.0} ({:>4.2}x) {:>7.0} ({:>4.2}x) {:>7.0} ({:>4.2}x) {:>8.3} {:>8.3} {:>7} {:>12} {:>12}",
            w.name,
            ((w.ops as f64) * scale) as u64,
            b,
            c,
            c / b,
            v,
            v / b,
            e,
            e / b,
            med(&r[2].delivered),
            med(&r[3].delivered),
            r[2].drops + r[3].drops,
            rate_s(&r[2].rate),
            rate_s(&r[3].rate),
        );
    }
    println!(
        "\nCPU time of the workload's own thread per op (includes the BPF programs it triggers; excludes the consumer and, for exec, the children):"
    );
    println!(
        "{:<9} {:>10} {:>17} {:>17} {:>17}",
        "workload", "bare", "count (x)", "vigil (x)", "vigil -e (x)"
    );
    for (wi, w) in WORKLOADS.iter().enumerate() {
        if results[wi][0].cpu.is_empty() {
            continue;
        }
        let r = &results[wi];
        let b = med(&r[0].cpu);
        let (c, v, e) = (med(&r[1].cpu), med(&r[2].cpu), med(&r[3].cpu));
        println!(
            "{:<9} {:>10.0} {:>9.0} ({:>4.2}x) {:>9.0} ({:>4.2}x) {:>9.0} ({:>4.2}x)",
            w.name,
            b,
            c,
            c / b,
            v,
            v / b,
            e,
            e / b
        );
    }
    println!(
        "\ndeliv: events of the workload's own process and kind that reached userspace per op (expected with -e: {}).",
        WORKLOADS
            .iter()
            .map(|w| format!("{} {}", w.name, w.expected_per_op))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "ev/s: events decoded per second of the agent process's CPU time (every thread: pipeline and outputs) while the workload ran; drops: both vigil variants, all rounds."
    );
    if let Some((n, plain, full, workers)) = offline {
        println!(
            "offline consumer ({n} recorded records, one core, medians of {rounds} replays): decode+enrich {plain:.0} ev/s; full pipeline (rules, baselines learning, ECS JSON to a file) {full:.0} ev/s"
        );
        if let Some(w) = workers {
            println!(
                "offline full pipeline by [pipeline] workers (wall clock, the same capture, interleaved):"
            );
            print!("{}", w.render());
        }
    }
}

/// The built-in rules plus the `--sigma` folder, as `vigil run` loads them.
fn load_bench_rules(sigma: Option<&std::path::Path>) -> Arc<vigil_rules::RuleSet> {
    let mut base = Config::default();
    if let Some(d) = sigma {
        base.rules.paths.push(d.to_path_buf());
    }
    let (set, report) = vigil_engine::detect::rules::load_rules(&base);
    if !report.errors.is_empty() {
        eprintln!(
            "vigil-bench: rules: {}",
            vigil_engine::detect::rules::render_errors(&report)
        );
        std::process::exit(2);
    }
    eprintln!("vigil-bench: {} rules loaded", set.rules().len());
    Arc::new(set)
}

/// Full-pipeline replay rates per worker count.
struct WorkerRates {
    records: u64,
    /// (workers, records/s of wall-clock time, records/s of process CPU
    /// time), medians.
    rows: Vec<(usize, f64, f64)>,
}

impl WorkerRates {
    fn render(&self) -> String {
        let mut s = format!(
            "{:<8} {:>14} {:>14} {:>12}\n",
            "workers", "wall rec/s", "CPU rec/s", "wall ratio"
        );
        let base = self.rows.first().map(|r| r.1).unwrap_or(f64::NAN);
        for (w, wall, cpu) in &self.rows {
            s.push_str(&format!(
                "{w:<8} {wall:>14.0} {cpu:>14.0} {:>11.2}x\n",
                wall / base
            ));
        }
        s
    }
}

/// Replays `cap` through the full `--events` pipeline (`rules`, baselines
/// learning in memory, every event as ECS JSON to a file in `dir`) with
/// each worker count, interleaved per round; medians.
fn worker_rates(
    cap: &std::path::Path,
    rules: &Arc<vigil_rules::RuleSet>,
    dir: &std::path::Path,
    rounds: usize,
    workers: &[usize],
) -> Option<WorkerRates> {
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); workers.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); workers.len()];
    let mut records = 0;
    for _ in 0..rounds.max(1) {
        for (i, &n) in workers.iter().enumerate() {
            let mut cfg = Config::default();
            cfg.agent.events = true;
            cfg.agent.data_dir = dir.to_path_buf();
            cfg.pipeline.workers = n;
            let sink = JsonLines::file(&dir.join("replay.json")).ok()?;
            let b = vigil_baselines::Baselines::in_memory(cfg.baselines.learner());
            let (c0, t0) = (process_cpu_ns(), Instant::now());
            let (r, _) = vigil_engine::replay::replay_checked(
                cap,
                &cfg,
                Some(rules.clone()),
                Some(b),
                Some(Box::new(sink)),
                None,
                |_, _| {},
            )
            .ok()?;
            let (c1, t1) = (process_cpu_ns(), t0.elapsed());
            records = r.records;
            wall[i].push(r.records as f64 / t1.as_secs_f64());
            cpu[i].push(r.records as f64 / ((c1 - c0) as f64 / 1e9));
            let _ = std::fs::remove_file(dir.join("replay.json"));
        }
    }
    Some(WorkerRates {
        records,
        rows: workers
            .iter()
            .enumerate()
            .map(|(i, &n)| (n, med(&wall[i]), med(&cpu[i])))
            .collect(),
    })
}

/// The agent as `vigil run` starts it by default (`events`: with
/// `--events`): the given rules, baselines learning in memory (`syscalls`:
/// the syscall learner too), records as JSON lines to a file in `dir`
/// through the outputs.
fn deployment(
    disabled: &[String],
    bpf_stats: bool,
    events: bool,
    syscalls: bool,
    rules: &Arc<vigil_rules::RuleSet>,
    dir: &std::path::Path,
) -> RunOptions {
    let mut cfg = Config::default();
    cfg.sensors.disabled = disabled.to_vec();
    cfg.sensors.bpf_stats = bpf_stats;
    cfg.agent.events = events;
    cfg.baselines.syscalls = syscalls;
    let file = dir.join("out.json");
    let _ = std::fs::remove_file(&file);
    let outs = vigil_outputs::Outputs::open(
        &[format!("file://{}", file.display())],
        Some(&dir.join("spool")),
    )
    .expect("open the file output");
    RunOptions {
        rules: Some(rules.clone()),
        baselines: Some(vigil_baselines::Baselines::in_memory(
            cfg.baselines.learner(),
        )),
        outputs: Some(Arc::new(outs)),
        ..RunOptions::new(cfg)
    }
}

/// CPU time of this whole process (every thread; the workload runs in a
/// child and is not included).
fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Records a mixed run (exec, openat, connect), then replays it in-process
/// `rounds` times: decode + enrich alone, and the full pipeline (`rules`,
/// baselines learning in memory, every event as ECS JSON to a file), on one
/// core, in thread CPU time; medians.
fn offline_consumer_rate(
    scale: f64,
    rounds: usize,
    rules: &Arc<vigil_rules::RuleSet>,
    dir: &std::path::Path,
) -> Option<(u64, f64, f64, Option<WorkerRates>)> {
    let path = dir.join("mixed.vcap");
    let mut cfg = Config::default();
    cfg.agent.events = true;
    // one core: everything on the replaying thread
    cfg.pipeline.workers = 1;
    let agent = Running::spawn(RunOptions {
        record: Some(path.clone()),
        ..RunOptions::new(cfg.clone())
    })
    .ok()?;
    for name in ["exec", "openat", "connect"] {
        let w = WORKLOADS.iter().find(|w| w.name == name)?;
        run_child(w, (((w.ops as f64) * scale) as u64).max(10), None);
    }
    std::thread::sleep(Duration::from_millis(50));
    let s = agent.stop_and_detach().ok()?;
    let (mut plain, mut full) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        let c0 = thread_cpu_ns();
        let r = vigil_engine::replay::replay(&path, &cfg, None, None, |_, _| {}).ok()?;
        plain.push(r.records as f64 / ((thread_cpu_ns() - c0) as f64 / 1e9));
        let sink = JsonLines::file(&dir.join("replay.json")).ok()?;
        let b = vigil_baselines::Baselines::in_memory(cfg.baselines.learner());
        let c0 = thread_cpu_ns();
        let (r, _) = vigil_engine::replay::replay_checked(
            &path,
            &cfg,
            Some(rules.clone()),
            Some(b),
            Some(Box::new(sink)),
            None,
            |_, _| {},
        )
        .ok()?;
        full.push(r.records as f64 / ((thread_cpu_ns() - c0) as f64 / 1e9));
        let _ = std::fs::remove_file(dir.join("replay.json"));
    }
    let workers = worker_rates(&path, rules, dir, rounds, &[1, 2]);
    let _ = std::fs::remove_file(&path);
    Some((s.recorded, med(&plain), med(&full), workers))
}

/// `--encoder CAPTURE`: the capture's enriched events (a replay's tap),
/// encoded as every event is (`ecs::encode`, then `ecs::encode_cached` with
/// one cache and a reused buffer), alternating per round; thread CPU ns
/// per record per kind, medians of the rounds.
fn encoder_bench(cap: &std::path::Path, rounds: usize) {
    use std::collections::BTreeMap;
    use vigil_engine::ecs;
    let mut cfg = Config::default();
    cfg.agent.events = true;
    cfg.pipeline.workers = 1;
    let (tx, rx) = std::sync::mpsc::channel();
    let r = match vigil_engine::replay::replay(cap, &cfg, None, Some(tx), |_, _| {}) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vigil-bench: {}: {e}", cap.display());
            std::process::exit(2);
        }
    };
    let events: Vec<_> = rx.try_iter().collect();
    let mut by_kind: BTreeMap<&'static str, Vec<usize>> = BTreeMap::new();
    for (i, ev) in events.iter().enumerate() {
        by_kind
            .entry(ecs::classify(ev.k.hdr.kind).2)
            .or_default()
            .push(i);
    }
    let mut plain: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut cached: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut bytes = 0usize;
    for _ in 0..rounds.max(1) {
        for (kind, ix) in &by_kind {
            let c0 = thread_cpu_ns();
            for &i in ix {
                bytes += ecs::encode(&events[i], "host", "event").len();
            }
            let t = (thread_cpu_ns() - c0) as f64 / ix.len() as f64;
            plain.entry(kind).or_default().push(t);
            let mut cache = ecs::EncodeCache::default();
            let mut buf = Vec::new();
            let c0 = thread_cpu_ns();
            for &i in ix {
                buf = ecs::encode_cached(&events[i], "host", "event", &mut cache, buf);
                bytes += buf.len();
            }
            let t = (thread_cpu_ns() - c0) as f64 / ix.len() as f64;
            cached.entry(kind).or_default().push(t);
        }
    }
    println!(
        "\nvigil-bench --encoder: {} records of {} ({} events), medians of {rounds} rounds, thread CPU ns per record ({} bytes written in all)\n",
        r.records,
        cap.display(),
        events.len(),
        bytes
    );
    println!(
        "{:<18} {:>9} {:>11} {:>11} {:>7}",
        "action", "records", "encode", "cached", "ratio"
    );
    for (kind, ix) in &by_kind {
        let (p, c) = (med(&plain[kind]), med(&cached[kind]));
        println!(
            "{kind:<18} {:>9} {p:>11.0} {c:>11.0} {:>6.2}x",
            ix.len(),
            c / p
        );
    }
}
