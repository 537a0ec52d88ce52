//! `vigil-bench`: what vigil costs the programs it watches, measured side by
//! side in one run (the machine is shared and noisy: ratios, not absolutes).
//!
//! For each workload (exec loop, openat loop over distinct paths, loopback
//! connect loop, getppid loop) it alternates, round after round:
//!   bare   nothing attached
//!   count  one bare counting tracepoint on the workload's syscall (the floor
//!          of any eBPF tracer)
//!   vigil  every default sensor, the full pipeline (decode, enrich, ECS JSON
//!          to /dev/null)
//! and prints ns/op with ratios against bare, delivered/ops (events of the
//! workload process that reached userspace per operation), drops, and the
//! consumer's rate (decoded+enriched events per second of its own CPU time).
//!
//! Usage: vigil-bench [--rounds N] [--scale F] [--only WORKLOAD] [--disable SENSOR]... [--baselines] [--no-bpf-stats] [--no-hash]   (root)
//!        vigil-bench --sched [--rounds N] [--scale F]
//!        vigil-bench --syscalls [--rounds N] [--scale F]
//!        vigil-bench --ktools [--rounds N] [--scale F]
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
//! alone; CPU ns per op and ratios against bare.
//! `--disable` runs vigil without a sensor, to see what that sensor costs;
//! `--baselines` runs it learning baselines in memory, the workload's
//! syscall set included (the syscall learner attached: its worst case).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
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

/// `--ktools`: what the kernel-work tools cost the work they count.
fn ktools_bench(rounds: usize, scale: f64) {
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
    let loads = ["pipe", "pages", "udp"];
    let mut res = vec![vec![Vec::new(); variants.len()]; loads.len()];
    for r in 0..rounds {
        eprintln!("vigil-bench --ktools: round {}/{rounds}", r + 1);
        for (li, load) in loads.iter().enumerate() {
            let w = Workload {
                name: load,
                ops: n,
                syscall: "",
                kind: 0,
                expected_per_op: 0.0,
            };
            for (vi, (_, floor, cfg)) in variants.iter().enumerate() {
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
                let (_, cpu) = run_child(&w, n, None);
                res[li][vi].push(cpu);
                drop(kt);
                drop(fl);
            }
        }
    }
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
    for r in 0..rounds {
        eprintln!("vigil-bench --syscalls: round {}/{rounds}", r + 1);
        for (li, load) in loads.iter().enumerate() {
            let w = Workload {
                name: load,
                ops: n,
                syscall: "",
                kind: 0,
                expected_per_op: 0.0,
            };
            for (vi, (_, floor, mode)) in variants.iter().enumerate() {
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
                let (wall, cpu) = run_child(&w, n, None);
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
            }
        }
    }
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
    /// Learn baselines in memory, syscall sets included (the workload's
    /// profile is learning: the worst case).
    #[arg(long)]
    baselines: bool,
    /// Measure the scheduler sensors instead.
    #[arg(long)]
    sched: bool,
    /// Measure the syscall counter instead.
    #[arg(long)]
    syscalls: bool,
    /// Measure the kernel-work tools instead (kmem, kpages, softirqs, ...).
    #[arg(long)]
    ktools: bool,
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
        ktools_bench(rounds, scale);
        return;
    }
    let mut results: Vec<[Res; 3]> = vec![Default::default(); WORKLOADS.len()];
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
            // vigil
            {
                let mut cfg = Config::default();
                cfg.sensors.disabled = disabled.clone();
                cfg.sensors.bpf_stats = bpf_stats;
                cfg.agent.events = true;
                cfg.baselines.syscalls = baselines;
                cfg.hash.enabled = !no_hash;
                let watch = Arc::new(AtomicU32::new(0));
                let sink = JsonLines::writer(
                    Box::new(std::fs::File::create("/dev/null").unwrap()),
                    "null",
                );
                let agent = Running::spawn(RunOptions {
                    config: cfg,
                    sink: Some(Box::new(sink)),
                    tap: None,
                    record: None,
                    verbose: false,
                    watch_pid: Some(watch.clone()),
                    rules: None,
                    reload_on_sighup: false,
                    baselines: baselines.then(|| {
                        vigil_baselines::Baselines::in_memory(vigil_baselines::Config::default())
                    }),
                    outputs: None,
                    metrics: None,
                    drop_privileges: false,
                    perf_history: false,
                    sd_notify: false,
                })
                .expect("start agent");
                let cpu0 = agent_cpu_ns();
                let (ns, cpu) = run_child(w, n, Some(&watch));
                std::thread::sleep(Duration::from_millis(50));
                let cpu1 = agent_cpu_ns();
                let summary = agent.stop_and_detach().expect("stop");
                let seen = summary.pipeline.watched.get(&w.kind).copied().unwrap_or(0);
                let decoded: u64 = summary.pipeline.decoded.values().sum();
                let drops: u64 = summary.kernel.values().map(|c| c.dropped).sum();
                let res = &mut results[wi][2];
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
    let offline = offline_consumer_rate(scale);
    println!(
        "\nvigil-bench: medians of {rounds} rounds (ns per op; ratio to bare in the same run)\n"
    );
    println!(
        "{:<9} {:>9} {:>10} {:>17} {:>17} {:>10} {:>7} {:>16}",
        "workload", "ops", "bare", "count (x)", "vigil (x)", "deliv/op", "drops", "consumer ev/s"
    );
    for (wi, w) in WORKLOADS.iter().enumerate() {
        if results[wi][0].ns.is_empty() {
            continue;
        }
        let b = med(&results[wi][0].ns);
        let c = med(&results[wi][1].ns);
        let v = med(&results[wi][2].ns);
        let rate = med(&results[wi][2].rate);
        println!(
            "{:<9} {:>9} {:>10.0} {:>9.0} ({:>4.2}x) {:>9.0} ({:>4.2}x) {:>10.3} {:>7} {:>16}",
            w.name,
            ((w.ops as f64) * scale) as u64,
            b,
            c,
            c / b,
            v,
            v / b,
            med(&results[wi][2].delivered),
            results[wi][2].drops,
            if rate.is_nan() {
                "-".to_string()
            } else {
                format!("{:.0}", rate)
            },
        );
    }
    println!(
        "\nCPU time of the workload's own thread per op (includes the BPF programs it triggers; excludes the consumer and, for exec, the children):"
    );
    println!(
        "{:<9} {:>10} {:>17} {:>17}",
        "workload", "bare", "count (x)", "vigil (x)"
    );
    for (wi, w) in WORKLOADS.iter().enumerate() {
        if results[wi][0].cpu.is_empty() {
            continue;
        }
        let b = med(&results[wi][0].cpu);
        let c = med(&results[wi][1].cpu);
        let v = med(&results[wi][2].cpu);
        println!(
            "{:<9} {:>10.0} {:>9.0} ({:>4.2}x) {:>9.0} ({:>4.2}x)",
            w.name,
            b,
            c,
            c / b,
            v,
            v / b
        );
    }
    println!(
        "\ndeliv/op: events of the workload's own process and kind that reached userspace per op (expected {}).",
        WORKLOADS
            .iter()
            .map(|w| format!("{} {}", w.name, w.expected_per_op))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "consumer ev/s: all events decoded+enriched+encoded per second of the agent thread's CPU time."
    );
    if let Some((n, plain, json)) = offline {
        println!(
            "offline consumer ({n} recorded records, one core): decode+enrich {plain:.0} ev/s; decode+enrich+ECS JSON {json:.0} ev/s"
        );
    }
}

/// CPU time of the agent thread (named vigil-agent) of this process.
fn agent_cpu_ns() -> u64 {
    let Ok(rd) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for t in rd.flatten() {
        let p = t.path();
        if std::fs::read_to_string(p.join("comm"))
            .map(|c| c.trim() == "vigil-agent")
            .unwrap_or(false)
            && let Ok(s) = std::fs::read_to_string(p.join("schedstat"))
        {
            return s
                .split_whitespace()
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
        }
    }
    0
}

/// Records an openat run, then replays it in-process: the pure userspace
/// cost per event (decode + enrich, and with ECS JSON encoding), on one
/// core, measured in thread CPU time.
fn offline_consumer_rate(scale: f64) -> Option<(u64, f64, f64)> {
    let path = std::env::temp_dir().join(format!("vigil-bench-{}.vcap", std::process::id()));
    let mut cfg = Config::default();
    cfg.agent.events = true;
    let agent = Running::spawn(RunOptions {
        config: cfg.clone(),
        sink: None,
        tap: None,
        record: Some(path.clone()),
        verbose: false,
        watch_pid: None,
        rules: None,
        reload_on_sighup: false,
        baselines: None,
        outputs: None,
        metrics: None,
        drop_privileges: false,
        perf_history: false,
        sd_notify: false,
    })
    .ok()?;
    let w = WORKLOADS.iter().find(|w| w.name == "openat")?;
    run_child(w, ((w.ops as f64) * scale) as u64, None);
    std::thread::sleep(Duration::from_millis(50));
    let s = agent.stop_and_detach().ok()?;
    let mut best = (0.0f64, 0.0f64);
    for _ in 0..3 {
        let c0 = thread_cpu_ns();
        let r = vigil_engine::replay::replay(&path, &cfg, None, None, |_, _| {}).ok()?;
        let plain = r.records as f64 / ((thread_cpu_ns() - c0) as f64 / 1e9);
        let sink = JsonLines::writer(Box::new(std::fs::File::create("/dev/null").ok()?), "null");
        let c0 = thread_cpu_ns();
        let r = vigil_engine::replay::replay(&path, &cfg, Some(Box::new(sink)), None, |_, _| {})
            .ok()?;
        let json = r.records as f64 / ((thread_cpu_ns() - c0) as f64 / 1e9);
        best = (best.0.max(plain), best.1.max(json));
    }
    let _ = std::fs::remove_file(&path);
    Some((s.recorded, best.0, best.1))
}
