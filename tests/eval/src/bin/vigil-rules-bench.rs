//! `vigil-rules-bench`: events per second per core through the rule engine
//! as the rule count grows (10, 100, 1,000 synthetic rules), with the
//! built-in rules, and with the built-ins plus a Sigma folder
//! (`--sigma DIR`, e.g. SigmaHQ's `rules/linux`). No root needed.
//!
//! The events are real engine events (decoded kernel records enriched by the
//! process table): a mix of execs, opens, connects, forks/exits and
//! capability checks with realistic paths and command lines. Each set is
//! timed in interleaved rounds on this thread's CPU clock (the machine is
//! shared: the median of the rounds and the ratio to the 10-rule set are
//! what to read).
//!
//! Usage: vigil-rules-bench [--rounds N] [--events N] [--sigma DIR] [--old BIN]
//!        [--only NAME] [--action ACTION]

use std::path::PathBuf;
use std::sync::Arc;
use vigil_bpf::abi::{self, Hdr, kind};
use vigil_bpf::decode::{decode, encode_record};
use vigil_engine::enrich::{Enricher, Event};
use vigil_engine::host::{RecordedHost, Users};
use vigil_rules::{Loader, RuleSet, Scratch};

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A small deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

const EXES: &[&str] = &[
    "/usr/bin/bash",
    "/usr/bin/ls",
    "/usr/bin/cat",
    "/usr/bin/python3",
    "/usr/sbin/nginx",
    "/usr/bin/git",
    "/usr/bin/grep",
    "/usr/lib/gcc/x86_64-linux-gnu/14/cc1",
    "/usr/bin/curl",
    "/usr/bin/ssh",
    "/tmp/build/run.sh",
    "/usr/local/bin/node",
];
const ARGS: &[&str] = &[
    "-la /var/lib/dpkg/info",
    "--color=auto -r TODO src/",
    "-c import sys; print(sys.path)",
    "-g main.c -o main.o -O2 -Wall -fPIC -I/usr/include/x86_64-linux-gnu",
    "-fsSL https://example.com/install.sh -o /tmp/install.sh",
    "log --oneline --graph --decorate -n 50",
    "user@10.2.3.4 -p 2222 uptime",
    "/etc/hosts",
    "-e 's/foo/bar/g' config.yaml",
];
const PATHS: &[&str] = &[
    "/etc/ld.so.cache",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/etc/passwd",
    "/proc/self/status",
    "/home/alice/project/src/main.rs",
    "/var/log/nginx/access.log",
    "/etc/ssl/certs/ca-certificates.crt",
    "/usr/share/locale/locale.alias",
    "/tmp/tmp.8Xq1/data",
    "/sys/fs/cgroup/cpu.max",
];

fn events(n: usize) -> Vec<Event> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut en = Enricher::new(Arc::new(Users::default()), 0, 4);
    let mut host = RecordedHost::default();
    let mut out = Vec::with_capacity(n);
    let mut ts = 1_000u64;
    for i in 0..n {
        ts += 1000;
        let pid = 1000 + (rng.next() % 200) as u32;
        let mut hdr = Hdr {
            pid,
            tid: pid,
            ppid: 900 + (pid % 10),
            ts_ns: ts,
            start_ns: u64::from(pid),
            uid: if pid.is_multiple_of(3) { 0 } else { 1000 },
            ..Hdr::default()
        };
        hdr.comm[..4].copy_from_slice(b"proc");
        let r = match i % 10 {
            0 | 1 => {
                hdr.kind = kind::EXEC;
                let exe = rng.pick(EXES);
                let argv = format!(
                    "{}\0{}",
                    exe.rsplit('/').next().unwrap_or(exe),
                    rng.pick(ARGS)
                );
                encode_record(
                    hdr,
                    &abi::Exec::default(),
                    &[
                        exe.as_bytes(),
                        argv.as_bytes(),
                        b"/home/alice/project",
                        exe.as_bytes(),
                    ],
                )
            }
            2..=5 => {
                hdr.kind = kind::OPEN;
                let body = abi::Open {
                    ret: 3,
                    flags: if i.is_multiple_of(7) { 0o1101 } else { 0 },
                    ..Default::default()
                };
                encode_record(hdr, &body, &[rng.pick(PATHS).as_bytes()])
            }
            6 | 7 => {
                hdr.kind = kind::CONNECT;
                let mut body = abi::Sock {
                    ret: 0,
                    family: libc::AF_INET as u16,
                    protocol: libc::IPPROTO_TCP as u16,
                    rport: [443u16, 80, 5432, 6379, 4444][(rng.next() % 5) as usize],
                    lport: 40000 + (rng.next() % 20000) as u16,
                    ..Default::default()
                };
                body.raddr[..4].copy_from_slice(&[10, 0, (rng.next() % 4) as u8, 7]);
                body.laddr[..4].copy_from_slice(&[10, 0, 0, 2]);
                encode_record(hdr, &body, &[])
            }
            8 => {
                hdr.kind = kind::FORK;
                encode_record(hdr, &abi::Fork::default(), &[])
            }
            _ => {
                hdr.kind = kind::CAPABLE;
                let body = abi::Capable {
                    cap: [21, 12, 13, 7][(rng.next() % 4) as usize],
                    ..Default::default()
                };
                encode_record(hdr, &body, &[])
            }
        };
        let k = decode(&r).expect("valid record");
        out.push(en.enrich(k, &mut host));
    }
    out
}

/// `n` synthetic rules shaped like real ones: each mixes an action, a
/// specific string test (contains / endswith / prefix / regex on command
/// lines, executables and paths), a port or capability test, and an
/// exception.
fn synthetic(n: usize) -> RuleSet {
    let mut s = String::new();
    for i in 0..n {
        let cond = match i % 6 {
            0 => format!(
                "event.action = exec and process.command_line contains \"--tok{i}x\" and not process.parent.executable endswith \"/allowed{i}\""
            ),
            1 => format!(
                "event.action = exec and process.executable endswith \"/tool{i}\" and user.id != 0"
            ),
            2 => format!(
                "event.action = open and file.path startswith \"/srv/data{i}/\" and not process.name in (backup{i}, rsync)"
            ),
            3 => format!(
                "event.action = connect and destination.port = {} and not destination.ip cidr (10.9.0.0/16)",
                20000 + i
            ),
            4 => format!(
                "event.action = exec and process.command_line regex \"fetch{i}\\s+-[a-z]+\\s+\\d+\""
            ),
            _ => format!(
                "event.action = open and vigil.open.write = true and file.path glob \"/etc/app{i}/*.conf\""
            ),
        };
        s.push_str(&format!(
            "- rule: syn{i}\n  condition: '{}'\n",
            cond.replace('\'', "''")
        ));
    }
    let mut l = Loader::new();
    l.add_source("synthetic.yaml", &s);
    let (set, r) = l.load();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    set
}

/// Rule engine events per second per core as the rule count grows (no root needed).
#[derive(clap::Parser)]
#[command(name = "vigil-rules-bench")]
struct Args {
    /// Interleaved rounds (the median is reported).
    #[arg(long, value_name = "N", default_value_t = 5)]
    rounds: usize,
    /// Events per round.
    #[arg(long = "events", value_name = "N", default_value_t = 200_000)]
    n_events: usize,
    /// Also time the built-ins plus this Sigma folder (e.g. SigmaHQ's rules/linux).
    #[arg(long, value_name = "DIR")]
    sigma: Option<PathBuf>,
    /// Another build of this benchmark (an older vigil-rules-bench): each
    /// round runs it once (`--rounds 1`, same events and rule sets) beside
    /// this build's round, and the table shows both and the ratio.
    #[arg(long, value_name = "BIN")]
    old: Option<PathBuf>,
    /// Only the rule sets whose name starts with this (`built-in + Sigma`,
    /// `synthetic 1000`); for profiling.
    #[arg(long, value_name = "NAME")]
    only: Option<String>,
    /// Only the events of this action (`exec`, `open`, ...), each set's
    /// scratch warmed by one untimed pass; for profiling
    /// (`valgrind --tool=callgrind --toggle-collect='*timed_pass*'` counts
    /// the instructions of the timed passes only; divide by the
    /// evaluations printed).
    #[arg(long, value_name = "ACTION")]
    action: Option<String>,
}

/// One build's figures: median ns per event per set, median ns per event
/// per action with the last set.
struct Figures {
    sets: Vec<(String, usize, f64, u64)>,
    actions: Vec<(String, f64)>,
}

fn med(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn action_of(e: &Event) -> String {
    use vigil_rules::Fields;
    match e.field(vigil_rules::Field::EventAction) {
        Some(vigil_rules::Value::Str(a)) => String::from_utf8_lossy(&a).into_owned(),
        _ => "?".into(),
    }
}

/// Cost per event action with `set`: each event evaluated 20 times.
fn per_action(set: &RuleSet, evs: &[Event]) -> Vec<(String, f64)> {
    let mut by: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let mut scratch = Scratch::new();
    let mut out = Vec::new();
    for e in evs {
        let a = action_of(e);
        let t0 = thread_cpu_ns();
        for _ in 0..20 {
            out.clear();
            set.evaluate(e, &mut scratch, &mut out);
        }
        let dt = thread_cpu_ns() - t0;
        let slot = by.entry(a).or_default();
        slot.0 += dt;
        slot.1 += 20;
    }
    by.into_iter()
        .map(|(a, (t, n))| (a, t as f64 / n as f64))
        .collect()
}

/// One timed pass over the events; returns the matches.
#[inline(never)]
fn timed_pass(set: &RuleSet, evs: &[Event], scratch: &mut Scratch) -> u64 {
    let mut out = Vec::new();
    let mut hits = 0u64;
    for e in evs {
        out.clear();
        set.evaluate(e, scratch, &mut out);
        hits += out.len() as u64;
    }
    hits
}

/// An untimed pass (warms a scratch).
#[inline(never)]
fn warm_pass(set: &RuleSet, evs: &[Event], scratch: &mut Scratch) {
    let mut out = Vec::new();
    for e in evs {
        out.clear();
        set.evaluate(e, scratch, &mut out);
    }
}

/// Runs the other build once and reads its table.
fn run_old(bin: &std::path::Path, n_events: usize, sigma: Option<&PathBuf>) -> Figures {
    let mut c = std::process::Command::new(bin);
    c.arg("--rounds")
        .arg("1")
        .arg("--events")
        .arg(n_events.to_string());
    if let Some(d) = sigma {
        c.arg("--sigma").arg(d);
    }
    let out = c
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            eprintln!("vigil-rules-bench: cannot run {}: {e}", bin.display());
            std::process::exit(2)
        });
    if !out.status.success() {
        eprintln!(
            "vigil-rules-bench: {} failed: {}",
            bin.display(),
            out.status
        );
        std::process::exit(2);
    }
    parse_table(&String::from_utf8_lossy(&out.stdout)).unwrap_or_else(|| {
        eprintln!(
            "vigil-rules-bench: cannot read the output of {}",
            bin.display()
        );
        std::process::exit(2)
    })
}

/// Reads the table `print_table` writes (and older builds wrote).
fn parse_table(text: &str) -> Option<Figures> {
    let mut f = Figures {
        sets: Vec::new(),
        actions: Vec::new(),
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("per action with ") {
            let (_, parts) = rest.split_once(": ")?;
            for p in parts.split(", ") {
                let mut w = p.split_whitespace();
                let a = w.next()?.to_string();
                let ns: f64 = w.next()?.parse().ok()?;
                f.actions.push((a, ns));
            }
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 6 || w[0] == "rule" {
            continue;
        }
        let n = w.len();
        let (Ok(rules), Ok(ns), Ok(alerts)) = (
            w[n - 5].parse::<usize>(),
            w[n - 4].parse::<f64>(),
            w[n - 1].parse::<u64>(),
        ) else {
            continue;
        };
        f.sets.push((w[..n - 5].join(" "), rules, ns, alerts));
    }
    (!f.sets.is_empty()).then_some(f)
}

fn print_table(f: &Figures, name: &str) {
    let parts: Vec<String> = f
        .actions
        .iter()
        .map(|(a, ns)| format!("{a} {ns:.0} ns"))
        .collect();
    if !parts.is_empty() {
        println!("per action with {name}: {}", parts.join(", "));
    }
    let base = f.sets.get(1).map(|s| s.2).unwrap_or(f64::NAN);
    println!(
        "{:<28} {:>7} {:>10} {:>14} {:>10} {:>8}",
        "rule set", "rules", "ns/event", "events/s/core", "vs 10", "alerts"
    );
    for (name, rules, ns, alerts) in &f.sets {
        println!(
            "{:<28} {:>7} {:>10.0} {:>14.0} {:>9.2}x {:>8}",
            name,
            rules,
            ns,
            1e9 / ns,
            ns / base,
            alerts
        );
    }
}

fn main() {
    let Args {
        rounds,
        n_events,
        sigma,
        old,
        only,
        action,
    } = <Args as clap::Parser>::parse();
    let mut evs = events(n_events);
    if let Some(a) = &action {
        evs.retain(|e| action_of(e) == *a);
        if evs.is_empty() {
            eprintln!("vigil-rules-bench: no `{a}` events in the mix");
            std::process::exit(2);
        }
    }
    let mut sets: Vec<(String, RuleSet)> = vec![
        ("none".into(), RuleSet::empty()),
        ("synthetic 10".into(), synthetic(10)),
        ("synthetic 100".into(), synthetic(100)),
        ("synthetic 1000".into(), synthetic(1000)),
    ];
    let mut l = Loader::new();
    l.add_builtin();
    sets.push(("built-in".into(), l.load().0));
    if let Some(dir) = &sigma {
        let mut l = Loader::new();
        l.add_builtin();
        l.add_path(dir);
        let (set, r) = l.load();
        eprintln!(
            "vigil-rules-bench: {}: {} Sigma rules loaded, {} skipped, {} errors",
            dir.display(),
            r.sigma_rules,
            r.skipped.len(),
            r.errors.len()
        );
        sets.push((format!("built-in + Sigma ({})", r.sigma_rules), set));
    }
    if let Some(o) = &only {
        sets.retain(|(n, _)| n.starts_with(o.as_str()));
        if sets.is_empty() {
            eprintln!("vigil-rules-bench: no rule set named `{o}...`");
            std::process::exit(2);
        }
    }
    eprintln!(
        "vigil-rules-bench: {} events, {} rounds, {} rule sets",
        evs.len(),
        rounds,
        sets.len()
    );
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); sets.len()];
    let mut alerts = vec![0u64; sets.len()];
    let mut act_ns: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut old_runs: Vec<Figures> = Vec::new();
    let mut evaluations = 0u64;
    for round in 0..rounds {
        if let Some(bin) = &old {
            old_runs.push(run_old(bin, n_events, sigma.as_ref()));
        }
        for (si, (_, set)) in sets.iter().enumerate() {
            // Profiling one action: the scratch is warmed by one pass first
            // (lazy DFA states, the value cache), so what a profiler
            // counts in `timed_pass` is the steady state.
            let mut scratch = Scratch::new();
            if action.is_some() {
                warm_pass(set, &evs, &mut scratch);
            }
            let t0 = thread_cpu_ns();
            let hits = timed_pass(set, &evs, &mut scratch);
            let dt = thread_cpu_ns() - t0;
            evaluations += evs.len() as u64;
            ns[si].push(dt as f64 / evs.len() as f64);
            alerts[si] = hits;
        }
        // Where the time goes with the largest set: cost per event action
        // (left out when profiling one action).
        if action.is_none()
            && let Some((_, set)) = sets.last()
        {
            for (a, t) in per_action(set, &evs) {
                act_ns.entry(a).or_default().push(t);
            }
        }
        eprintln!("vigil-rules-bench: round {} of {rounds} done", round + 1);
    }
    let mine = Figures {
        sets: sets
            .iter()
            .enumerate()
            .map(|(si, (name, set))| (name.clone(), set.len(), med(&mut ns[si]), alerts[si]))
            .collect(),
        actions: act_ns
            .iter_mut()
            .map(|(a, v)| (a.clone(), med(v)))
            .collect(),
    };
    let last = sets.last().map(|s| s.0.clone()).unwrap_or_default();
    if action.is_some() {
        println!("evaluations timed: {evaluations}");
    }
    if old_runs.is_empty() {
        print_table(&mine, &last);
        return;
    }
    // Side by side: the medians of the old build's rounds and of this one's.
    let old_med = |set: &str| {
        let mut v: Vec<f64> = old_runs
            .iter()
            .filter_map(|f| f.sets.iter().find(|s| s.0 == set).map(|s| s.2))
            .collect();
        (!v.is_empty()).then(|| med(&mut v))
    };
    let old_alerts = |set: &str| {
        old_runs
            .last()
            .and_then(|f| f.sets.iter().find(|s| s.0 == set).map(|s| s.3))
    };
    println!(
        "{:<28} {:>7} {:>12} {:>12} {:>10} {:>10} {:>8} {:>8}",
        "rule set", "rules", "old ns/ev", "new ns/ev", "old M/s", "new M/s", "speedup", "alerts"
    );
    for (name, rules, new, al) in &mine.sets {
        let o = old_med(name);
        let same = match old_alerts(name) {
            Some(x) if x == *al => format!("{al}"),
            Some(x) => format!("{al}!={x}"),
            None => format!("{al}"),
        };
        println!(
            "{:<28} {:>7} {:>12} {:>12.0} {:>10} {:>10.2} {:>8} {:>8}",
            name,
            rules,
            o.map(|o| format!("{o:.0}")).unwrap_or("-".into()),
            new,
            o.map(|o| format!("{:.2}", 1e3 / o)).unwrap_or("-".into()),
            1e3 / new,
            o.map(|o| format!("{:.2}x", o / new)).unwrap_or("-".into()),
            same
        );
    }
    let parts: Vec<String> = mine
        .actions
        .iter()
        .map(|(a, new)| {
            let mut v: Vec<f64> = old_runs
                .iter()
                .filter_map(|f| f.actions.iter().find(|x| x.0 == *a).map(|x| x.1))
                .collect();
            if v.is_empty() {
                format!("{a} {new:.0} ns")
            } else {
                let o = med(&mut v);
                format!("{a} {o:.0} -> {new:.0} ns ({:.2}x)", o / new)
            }
        })
        .collect();
    if !parts.is_empty() {
        println!("per action with {last}, old -> new: {}", parts.join(", "));
    }
}
