//! Baseline-stage benchmark: `cargo run --release -p vigil-baselines --example bench`.
//!
//! 1. `observe()` throughput on one core over a synthetic host stream:
//!    200 profiles (160 host executables, 40 container sub-profiles), mostly
//!    repeated behaviour (files with per-pid `/proc` paths, spawns, peers,
//!    capabilities), about 0.5 % new items; measured in learning and in
//!    monitoring mode, as on-CPU time of this thread (`/proc/thread-self/schedstat`),
//!    so a noisy shared machine does not distort it.
//! 2. Flush cost: one transaction for everything dirty.
//! 3. Database size on disk for a learned host: 300 profiles x ~300 items.

use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

use vigil_baselines::{
    Access, Baselines, Behaviour, Config, ContainerRef, ExeIdentity, Mode, Observation, Subject,
    Transport,
};

/// On-CPU ns of the calling thread.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

enum Ev {
    Open(Vec<u8>, Access),
    Spawn(Vec<u8>),
    Connect(IpAddr, u16),
    Listen(u16),
    Cap(u8),
}

struct Prof {
    exe: Vec<u8>,
    ino: u64,
    ctr: Option<(String, String)>,
}

fn profiles(n: usize) -> Vec<Prof> {
    (0..n)
        .map(|i| Prof {
            exe: format!("/usr/lib/svc{i}/bin/daemon{i}").into_bytes(),
            ino: 1000 + i as u64,
            ctr: (i % 5 == 4).then(|| {
                (
                    format!("{:064x}", i * 7919),
                    format!("registry.example/app{}:1.{}", i % 20, i % 3),
                )
            }),
        })
        .collect()
}

fn subject(p: &Prof) -> Subject<'_> {
    Subject {
        executable: &p.exe,
        identity: ExeIdentity::Inode {
            dev: 2049,
            ino: p.ino,
            size: 1 << 20,
            mtime_ns: 1_700_000_000_000_000_000,
        },
        container: p.ctr.as_ref().map(|(id, img)| ContainerRef {
            id: Some(id),
            image: Some(img),
            cgroup_path: None,
        }),
    }
}

/// One event of profile `p`'s usual work; `new_rate` per mille are new.
fn event(rng: &mut Rng, p: usize, new_rate: u64) -> Ev {
    if rng.below(1000) < new_rate {
        // A new name in letters: numbered names (`n123456`) would be
        // generalised into one pattern and not be new.
        let mut n = rng.next() % 1_000_000;
        let mut name = String::from("n");
        while n > 0 {
            name.push(char::from(b'a' + (n % 26) as u8));
            n /= 26;
        }
        return Ev::Open(
            format!("/var/lib/new/p{p}/{name}").into_bytes(),
            Access::READ,
        );
    }
    match rng.below(100) {
        0..60 => {
            let f = rng.below(150);
            Ev::Open(
                format!("/etc/svc{p}/conf.d/f{f}.conf").into_bytes(),
                Access::READ,
            )
        }
        60..80 => Ev::Open(
            format!("/proc/{}/stat", 100 + rng.below(30_000)).into_bytes(),
            Access::READ,
        ),
        80..88 => Ev::Open(
            format!("/var/log/svc{p}/out.log").into_bytes(),
            Access::WRITE,
        ),
        88..93 => Ev::Spawn(format!("/usr/bin/helper{}", rng.below(5)).into_bytes()),
        93..97 => Ev::Connect(
            IpAddr::from([10, 1, (p % 250) as u8, rng.below(5) as u8]),
            443,
        ),
        97..99 => Ev::Cap(rng.below(3) as u8 + 10),
        _ => Ev::Listen(8000 + (p % 100) as u16),
    }
}

fn behaviour(e: &Ev) -> Behaviour<'_> {
    match e {
        Ev::Open(p, a) => Behaviour::Open {
            path: p,
            access: *a,
        },
        Ev::Spawn(c) => Behaviour::Spawn { child: c },
        Ev::Connect(ip, port) => Behaviour::Connect {
            ip: *ip,
            port: *port,
            transport: Transport::Tcp,
        },
        Ev::Listen(port) => Behaviour::Listen {
            port: *port,
            transport: Transport::Tcp,
        },
        Ev::Cap(c) => Behaviour::Capability { cap: *c },
    }
}

fn du(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => du(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    let tmp = std::env::temp_dir().join(format!("vigil-baselines-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let profs = profiles(200);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    const N: usize = 2_000_000;
    eprintln!("generating {N} events over {} profiles ...", profs.len());
    let gen_stream = |rng: &mut Rng| -> Vec<(usize, Ev)> {
        (0..N)
            .map(|_| {
                let p = rng.below(profs.len() as u64) as usize;
                (p, event(rng, p, 5))
            })
            .collect()
    };
    let learn_stream = gen_stream(&mut rng);
    // Same usual work, other new items: what monitoring will report.
    let monitor_stream = gen_stream(&mut rng);
    let mut b = Baselines::open(&tmp.join("stream"), Config::default()).expect("open");
    let t0 = 1_764_000_000_000_000_000i64;
    let mut rows = Vec::new();
    let mut anomalies = 0usize;
    let phases = [
        ("learning (first pass)", Mode::Learning, &learn_stream),
        ("learning (repeat)", Mode::Learning, &learn_stream),
        ("monitoring", Mode::Monitoring, &monitor_stream),
    ];
    for (phase, mode, stream) in phases {
        if mode == Mode::Monitoring {
            for r in b.list() {
                b.promote(&r.profile, Mode::Monitoring, t0).unwrap();
            }
        }
        eprintln!("observe: {phase} ...");
        let cpu = thread_cpu_ns();
        let wall = Instant::now();
        for (i, (p, ev)) in stream.iter().enumerate() {
            let o = Observation {
                unix_ns: t0 + i as i64 * 1000,
                subject: subject(&profs[*p]),
                behaviour: behaviour(ev),
            };
            anomalies += b.observe(&o).len();
        }
        let cpu = thread_cpu_ns() - cpu;
        let wall = wall.elapsed().as_nanos() as u64;
        rows.push((
            phase,
            N as f64 / (cpu as f64 / 1e9),
            cpu as f64 / N as f64,
            wall as f64 / N as f64,
        ));
        let c = thread_cpu_ns();
        let w = Instant::now();
        let st = b.flush().unwrap();
        eprintln!(
            "  flush: {} profiles, {} sets, {:.1} ms CPU, {:.1} ms wall",
            st.profiles,
            st.sets,
            (thread_cpu_ns() - c) as f64 / 1e6,
            w.elapsed().as_secs_f64() * 1e3
        );
    }
    // The same monitoring stream through handles resolved once per profile
    // (as the engine would per exec): no key derivation per event. Its new
    // items were recorded by the pass above, so it reports nothing.
    eprintln!("observe_ref: monitoring ...");
    let refs: Vec<_> = profs
        .iter()
        .map(|p| b.resolve(&subject(p), t0).unwrap())
        .collect();
    let cpu = thread_cpu_ns();
    let wall = Instant::now();
    for (i, (p, ev)) in monitor_stream.iter().enumerate() {
        b.observe_ref(refs[*p], t0 + i as i64 * 1000, &behaviour(ev));
    }
    let cpu = thread_cpu_ns() - cpu;
    let wall = wall.elapsed().as_nanos() as u64;
    rows.push((
        "monitoring, observe_ref (repeat)",
        N as f64 / (cpu as f64 / 1e9),
        cpu as f64 / N as f64,
        wall as f64 / N as f64,
    ));
    println!(
        "observe() on one core, {N} events, {} profiles (+ container profiles), ~0.5 % new items",
        profs.len()
    );
    println!(
        "{:<34} {:>14} {:>12} {:>12}",
        "mode", "events/s (CPU)", "ns/event", "wall ns/ev"
    );
    for (phase, rate, cpu_ns, wall_ns) in &rows {
        println!("{phase:<34} {rate:>14.0} {cpu_ns:>12.0} {wall_ns:>12.0}");
    }
    println!("anomalies reported in monitoring: {anomalies} (the new items of a second stream)");
    drop(b);

    // A learned host: 300 profiles x ~300 items.
    eprintln!("learning a host of 300 profiles ...");
    let dir = tmp.join("host");
    let mut h = Baselines::open(&dir, Config::default()).expect("open");
    let profs = profiles(300);
    let mut items = 0;
    for (p, prof) in profs.iter().enumerate() {
        let s = subject(prof);
        let mut obs = |b: Behaviour<'_>| {
            h.observe(&Observation {
                unix_ns: t0,
                subject: s,
                behaviour: b,
            });
        };
        for f in 0..240 {
            let path = format!("/usr/share/svc{p}/data/dir{}/file{f}.dat", f % 12);
            obs(Behaviour::Open {
                path: path.as_bytes(),
                access: Access::READ,
            });
        }
        for k in 0..20 {
            let c = format!("/usr/bin/tool{k}");
            obs(Behaviour::Spawn {
                child: c.as_bytes(),
            });
        }
        for k in 0..30 {
            obs(Behaviour::Connect {
                ip: IpAddr::from([10, (p % 250) as u8, 0, k as u8]),
                port: 443,
                transport: Transport::Tcp,
            });
        }
        for k in 0..4 {
            obs(Behaviour::Listen {
                port: 8000 + k,
                transport: Transport::Tcp,
            });
        }
        for c in [10u8, 12, 21, 7, 6] {
            obs(Behaviour::Capability { cap: c });
        }
        items += 240 + 20 + 30 + 4 + 5;
        let mut sys = [0u64; vigil_baselines::SYSCALL_WORDS];
        sys[0] = u64::MAX;
        sys[1] = 0x0000_ffff_0f0f_00ff;
        sys[3] = 0xff;
        h.observe_syscalls(&s, t0, &sys);
    }
    let w = Instant::now();
    h.flush().unwrap();
    let flush_ms = w.elapsed().as_secs_f64() * 1e3;
    let sled_size = h.size_on_disk().unwrap();
    let nprof = h.len();
    drop(h);
    let files = du(&dir);
    println!();
    println!(
        "learned host: {nprof} profiles (300 executables + container profiles), {items} items, 300 syscall sets"
    );
    println!(
        "{:<32} {:>12}",
        "first flush (wall)",
        format!("{flush_ms:.0} ms")
    );
    println!(
        "{:<32} {:>12}",
        "sled size_on_disk",
        format!("{:.1} MiB", sled_size as f64 / 1048576.0)
    );
    println!(
        "{:<32} {:>12}",
        "files in the data directory",
        format!("{:.1} MiB", files as f64 / 1048576.0)
    );
    let w = Instant::now();
    let h = Baselines::open(&dir, Config::default()).expect("reopen");
    println!(
        "{:<32} {:>12}",
        "reopen + load",
        format!("{:.0} ms", w.elapsed().as_secs_f64() * 1e3)
    );
    drop(h);
    let _ = std::fs::remove_dir_all(&tmp);
}
