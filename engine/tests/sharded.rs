//! The sharded pipeline (`[pipeline] workers` > 1) against the
//! single-threaded one on the same capture: the same multiset of output
//! lines, the records of each process in the same order, the same
//! counters. No root needed: captures are the corpus's and ones written
//! here from constructed records of many interleaved processes.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use vigil_bpf::abi::{self, Hdr, kind};
use vigil_bpf::decode::encode_record;

mod common;
use vigil_engine::capture::{CaptureWriter, Context, Seed, frame};
use vigil_engine::config::Config;
use vigil_engine::host::ProcSnapshot;
use vigil_outputs::Sink;

/// Records every line written.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<Vec<u8>>>>);

impl Sink for Lines {
    fn write_record(&mut self, record: &[u8]) -> std::io::Result<()> {
        self.0.lock().unwrap().push(record.to_vec());
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "lines".into()
    }
}

fn context() -> Context {
    common::test_context("h")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-sharded-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
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
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn comm(name: &[u8]) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[..name.len().min(15)].copy_from_slice(&name[..name.len().min(15)]);
    c
}

/// The records of one process: forked by the shell (pid 100), exec'd,
/// some opens and connects, exit. Some are alert-worthy for the built-in
/// rules (an exec from /dev/shm, reads of /etc/shadow).
fn script(pid: u32, rng: &mut Rng) -> Vec<(Hdr, Vec<u8>)> {
    const EXES: &[(&[u8], &[u8])] = &[
        (b"/usr/bin/cat", b"cat"),
        (b"/dev/shm/x", b"x"),
        (b"/usr/bin/curl", b"curl"),
        (b"/usr/bin/python3", b"python3"),
    ];
    const FILES: &[&[u8]] = &[
        b"/etc/shadow",
        b"/etc/passwd",
        b"/etc/hosts",
        b"/root/.ssh/id_rsa",
        b"/home/u/.bashrc",
    ];
    let start = 1_000_000 + u64::from(pid) * 1000;
    let (exe, name) = EXES[rng.below(EXES.len() as u64) as usize];
    let base = |k: u16, c: [u8; 16]| Hdr {
        kind: k,
        pid,
        tid: pid,
        ppid: 100,
        start_ns: start,
        comm: c,
        ..Hdr::default()
    };
    let mut out = Vec::new();
    let fork = abi::Fork {
        child_start_ns: start,
        child_pid: pid,
        ..Default::default()
    };
    let h = Hdr {
        pid: 100,
        tid: 100,
        ppid: 1,
        start_ns: 1,
        ..base(kind::FORK, comm(b"sh"))
    };
    out.push((h, encode_record(h, &fork, &[])));
    let ex = abi::Exec {
        ino: 1000 + rng.below(4),
        dev: 8,
        mode: 0o100755,
        argc: 2,
        ..Default::default()
    };
    let h = base(kind::EXEC, comm(name));
    let mut argv = name.to_vec();
    argv.push(0);
    argv.extend_from_slice(b"--arg");
    out.push((h, encode_record(h, &ex, &[exe, &argv, b"/", exe])));
    for _ in 0..rng.below(12) {
        if rng.below(3) == 0 {
            let s = abi::Sock {
                ret: if rng.below(2) == 0 { 0 } else { -111 },
                family: libc::AF_INET as u16,
                rport: [22u16, 80, 443, 4444][rng.below(4) as usize],
                protocol: libc::IPPROTO_TCP as u16,
                raddr: [
                    10,
                    0,
                    0,
                    rng.below(8) as u8,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                ],
                ..Default::default()
            };
            let h = base(kind::CONNECT, comm(name));
            out.push((h, encode_record(h, &s, &[])));
        } else {
            let f = FILES[rng.below(FILES.len() as u64) as usize];
            let o = abi::Open {
                ret: 3,
                ino: rng.below(100),
                ..Default::default()
            };
            let h = base(kind::OPEN, comm(name));
            out.push((h, encode_record(h, &o, &[f])));
        }
    }
    let h = base(kind::EXIT, comm(name));
    out.push((h, encode_record(h, &abi::Exit::default(), &[])));
    out
}

/// A capture of `procs` processes whose records interleave at random.
fn write_mixed_capture(path: &Path, procs: u32, seed: u64) -> usize {
    let mut rng = Rng(seed | 1);
    let mut scripts: Vec<std::collections::VecDeque<(Hdr, Vec<u8>)>> = (0..procs)
        .map(|i| script(2000 + i * 7, &mut rng).into())
        .collect();
    let mut w = CaptureWriter::create(path, &context()).unwrap();
    let snap = |pid, ppid, exe: &[u8]| ProcSnapshot {
        pid,
        ppid,
        start_ns: 1,
        exe: exe.to_vec(),
        args: vec![exe.to_vec()],
        cwd: b"/".to_vec(),
        comm: b"sh".to_vec(),
        cgroup: "0::/user.slice\n".into(),
        uid_map: None,
    };
    w.json(
        frame::SEED,
        &Seed {
            at_ns: 1,
            procs: vec![snap(1, 0, b"/sbin/init"), snap(100, 1, b"/bin/sh")],
        },
    )
    .unwrap();
    let mut ts = 2_000_000u64;
    let mut n = 0;
    loop {
        let live: Vec<usize> = (0..scripts.len())
            .filter(|&i| !scripts[i].is_empty())
            .collect();
        if live.is_empty() {
            break;
        }
        // a few processes at a time run in bursts, as on a real host
        let i = live[rng.below(live.len().min(6) as u64) as usize];
        for _ in 0..=rng.below(3) {
            let Some((_, rec)) = scripts[i].pop_front() else {
                break;
            };
            ts += 1000 + rng.below(50_000);
            // the timestamp sits at a fixed offset of the header
            let mut rec = rec;
            rec[8..16].copy_from_slice(&ts.to_ne_bytes());
            w.record(&rec).unwrap();
            n += 1;
        }
    }
    w.json(frame::SUMMARY, &serde_json::json!({})).unwrap();
    w.flush().unwrap();
    n
}

/// Replays `cap` with the built-in rules, baselines learning in memory and
/// every event written; returns the lines and the counters.
fn replay(cap: &Path, workers: usize, dir: &Path) -> (Vec<Vec<u8>>, (u64, u64, u64)) {
    let mut cfg = Config::default();
    cfg.agent.events = true;
    cfg.agent.data_dir = dir.to_path_buf();
    cfg.pipeline.workers = workers;
    let (set, report) = vigil_engine::detect::load_rules(&cfg);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let lines = Lines::default();
    let b = vigil_baselines::Baselines::in_memory(cfg.baselines.learner());
    let (sum, _) = vigil_engine::replay::replay_checked(
        cap,
        &cfg,
        Some(Arc::new(set)),
        Some(b),
        Some(Box::new(lines.clone())),
        None,
        |_, _| {},
    )
    .expect("replay");
    let p = &sum.pipeline;
    let out = lines.0.lock().unwrap().clone();
    assert_eq!(p.written, out.len() as u64, "written counts every line");
    (out, (p.written, p.alerts, p.anomalies))
}

/// Lines per process (`process.pid`), in output order; lines of no
/// process under 0.
fn per_process(lines: &[Vec<u8>]) -> BTreeMap<u64, Vec<Vec<u8>>> {
    let mut m: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_slice(l).expect("JSON line");
        let pid = v
            .pointer("/process/pid")
            .and_then(|p| p.as_u64())
            .unwrap_or(0);
        m.entry(pid).or_default().push(l.clone());
    }
    m
}

fn compare(cap: &Path, workers: usize, name: &str) -> (usize, u64) {
    let d1 = tmp(&format!("{name}-1"));
    let dn = tmp(&format!("{name}-{workers}"));
    let (one, c1) = replay(cap, 1, &d1);
    let (many, cn) = replay(cap, workers, &dn);
    assert_eq!(c1, cn, "written, alerts, anomalies");
    let mut a = one.clone();
    let mut b = many.clone();
    a.sort();
    b.sort();
    if a != b {
        let only = |x: &[Vec<u8>], y: &[Vec<u8>]| -> Vec<String> {
            x.iter()
                .filter(|l| !y.contains(l))
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .take(3)
                .collect()
        };
        panic!(
            "{name}: not the same multiset of lines\none thread only: {:#?}\n{workers} workers only: {:#?}",
            only(&a, &b),
            only(&b, &a)
        );
    }
    let (p1, pn) = (per_process(&one), per_process(&many));
    for (pid, l1) in &p1 {
        if *pid == 0 {
            continue;
        }
        assert!(
            pn.get(pid) == Some(l1),
            "{name}: the records of process {pid} are not in the same order"
        );
    }
    let _ = std::fs::remove_dir_all(&d1);
    let _ = std::fs::remove_dir_all(&dn);
    (one.len(), c1.1)
}

#[test]
fn sharded_replay_of_a_mixed_capture_equals_the_single_thread_one() {
    let d = tmp("mixed");
    let cap = d.join("mixed.vcap");
    let records = write_mixed_capture(&cap, 300, 0x5eed);
    assert!(records > 1500, "{records}");
    let (lines, alerts) = compare(&cap, 4, "mixed");
    // every record is written as an event, and some raised alerts
    assert!(lines >= records, "{lines} lines for {records} records");
    assert!(alerts > 10, "{alerts} alerts");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sharded_replay_of_the_corpus_captures_equals_the_single_thread_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/capture");
    for name in ["all-kinds.vcap", "with-lookups.vcap"] {
        let (lines, _) = compare(&root.join(name), 3, name);
        assert!(lines > 3, "{name}: {lines} lines");
    }
}

#[test]
fn a_process_always_goes_to_the_same_worker_and_pids_spread() {
    use vigil_engine::pipeline::shard::shard_of;
    for n in 2..=8 {
        let mut per = vec![0u32; n];
        for pid in 1000..3000u32 {
            let s = shard_of(pid, n);
            assert_eq!(s, shard_of(pid, n));
            per[s] += 1;
        }
        // consecutive pids spread: no worker gets less than half its share
        let share = 2000 / n as u32;
        assert!(per.iter().all(|&c| c > share / 2), "{n}: {per:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
    /// Any interleaving of any number of processes, any worker count.
    #[test]
    fn sharding_keeps_per_process_order_and_the_output(
        seed in any::<u64>(),
        procs in 1u32..120,
        workers in 2usize..6,
    ) {
        let d = tmp(&format!("prop-{seed:x}"));
        let cap = d.join("p.vcap");
        write_mixed_capture(&cap, procs, seed);
        compare(&cap, workers, &format!("prop-{seed:x}"));
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// Lines of a pipeline hashing executables: `n` processes exec distinct
/// files (hashes come after their events), then open one file each.
fn hashed_run(workers: usize, files: &[(PathBuf, u64)], mntns: u32) -> Vec<Vec<u8>> {
    let mut cfg = Config::default();
    cfg.agent.events = true;
    cfg.pipeline.workers = workers;
    cfg.hash.wait_ms = 0;
    let lines = Lines::default();
    let mut p =
        vigil_engine::agent::Pipeline::new(&cfg, &context(), Some(Box::new(lines.clone())), None);
    p.set_hasher(vigil_engine::hash::Hasher::new(cfg.hash.settings()).expect("hasher"));
    let mut host = vigil_engine::host::RecordedHost::default();
    for (i, (path, ino)) in files.iter().enumerate() {
        use std::os::unix::ffi::OsStrExt;
        let pid = 3_000_000 + i as u32 * 3;
        let h = Hdr {
            kind: kind::EXEC,
            pid,
            tid: pid,
            ppid: 100,
            start_ns: 10 + i as u64,
            ts_ns: 1_000_000 + i as u64 * 1000,
            mntns,
            comm: comm(b"prog"),
            ..Hdr::default()
        };
        let ex = abi::Exec {
            ino: *ino,
            argc: 1,
            ..Default::default()
        };
        let exe = path.as_os_str().as_bytes();
        p.handle(
            &encode_record(h, &ex, &[exe, b"prog", b"/", exe]),
            &mut host,
        );
        let h = Hdr {
            kind: kind::OPEN,
            ts_ns: h.ts_ns + 500,
            ..h
        };
        let o = abi::Open {
            ret: 3,
            ..Default::default()
        };
        p.handle(&encode_record(h, &o, &[b"/etc/hosts"]), &mut host);
    }
    p.drain_hashes(std::time::Duration::from_secs(10));
    p.flush();
    let out = lines.0.lock().unwrap().clone();
    assert_eq!(p.stats.written, out.len() as u64);
    out
}

#[test]
fn late_hashes_follow_their_events_on_the_worker_of_the_process() {
    use std::os::unix::fs::MetadataExt;
    let d = tmp("hashes");
    let files: Vec<(PathBuf, u64)> = (0..40)
        .map(|i| {
            let f = d.join(format!("prog{i}"));
            std::fs::write(&f, format!("#!/bin/sh\n# {i}\n").repeat(1000)).unwrap();
            let ino = std::fs::metadata(&f).unwrap().ino();
            (f, ino)
        })
        .collect();
    let mntns = std::fs::metadata("/proc/self/ns/mnt").unwrap().ino() as u32;
    let one = hashed_run(1, &files, mntns);
    let many = hashed_run(3, &files, mntns);
    let action = |l: &[u8]| -> (u64, String, bool) {
        let v: serde_json::Value = serde_json::from_slice(l).unwrap();
        (
            v.pointer("/process/pid")
                .and_then(|p| p.as_u64())
                .unwrap_or(0),
            v.pointer("/event/action")
                .and_then(|a| a.as_str())
                .unwrap_or("")
                .to_string(),
            v.pointer("/process/hash/sha256").is_some(),
        )
    };
    for lines in [&one, &many] {
        let per = per_process(lines);
        for (pid, l) in per.iter().filter(|(p, _)| **p != 0) {
            let acts: Vec<_> = l.iter().map(|x| action(x)).collect();
            // the exec first; its hash in it or in one exec-hash after it
            assert_eq!(acts[0].1, "exec", "{pid}: {acts:?}");
            let late = acts.iter().filter(|a| a.1 == "exec-hash").count();
            assert!(
                acts[0].2 || late == 1,
                "{pid}: no hash for the exec: {acts:?}"
            );
            assert!(late <= 1, "{pid}: {acts:?}");
        }
    }
    let late = |ls: &[Vec<u8>]| ls.iter().filter(|l| action(l).1 == "exec-hash").count();
    assert!(late(&many) > 0, "no late hash: the test did not test it");
    // (which records carry the hash depends on when it finished: the
    // lines themselves may differ between runs)
    let execs = |ls: &[Vec<u8>]| ls.iter().filter(|l| action(l).1 == "exec").count();
    assert_eq!(execs(&one), files.len());
    assert_eq!(execs(&many), files.len());
    let _ = std::fs::remove_dir_all(&d);
}
