//! Crash safety: a child process learns, promotes and flushes in a loop and
//! is killed with SIGKILL at random moments; after every kill the database
//! must open and every promoted baseline must be exactly what was promoted.
//!
//! The child is this test binary re-executed with `CHILD_ENV` set, running
//! only `crash_child`.

mod util;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use util::*;
use vigil_baselines::{Access, Baselines, Behaviour, ExeIdentity, Mode, Subject, Transport};

const CHILD_ENV: &str = "VIGIL_BASELINES_CRASH_CHILD";
const KILLS: usize = 24;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn subject(n: u32) -> Subject<'static> {
    Subject {
        executable: leak(format!("/opt/p{n}")).as_bytes(),
        identity: ExeIdentity::Unknown,
        container: None,
    }
}

/// What promotion candidate `n` learns: exactly these, nothing else.
fn expected(n: u32) -> Vec<Behaviour<'static>> {
    let mut v = Vec::new();
    for k in 0..(10 + n % 7) {
        v.push(Behaviour::Open {
            path: leak(format!("/srv/p{n}/file{k}")).as_bytes(),
            access: Access::READ,
        });
    }
    for k in 0..3 {
        v.push(Behaviour::Spawn {
            child: leak(format!("/usr/bin/tool{k}")).as_bytes(),
        });
    }
    v.push(Behaviour::Connect {
        ip: std::net::IpAddr::from([10, 0, (n % 256) as u8, 1]),
        port: 443,
        transport: Transport::Tcp,
    });
    v
}

fn expected_files(n: u32) -> BTreeSet<String> {
    (0..(10 + n % 7))
        .map(|k| format!("/srv/p{n}/file{k}"))
        .collect()
}

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // only meaningful when re-executed by the parent
    };
    let mut b = Baselines::open(Path::new(&dir), cfg()).expect("child: open");
    let mut rng = Rng(u64::from(std::process::id()).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut out = std::io::stdout();
    let mut t = T0 + (rng.next() % 1000) as i64 * S;
    loop {
        // Next candidate: one past the highest promoted.
        let n = b
            .list()
            .iter()
            .filter(|r| r.mode == Mode::Monitoring)
            .filter_map(|r| r.profile.strip_prefix("exe:/opt/p")?.parse::<u32>().ok())
            .max()
            .map_or(0, |m| m + 1);
        let behaviours = expected(n);
        // Learn it in three chunks, with noise and flushes in between.
        for chunk in behaviours.chunks(behaviours.len().div_ceil(3)) {
            for bh in chunk {
                t += 1000;
                b.observe(&obs(subject(n), t, *bh));
            }
            for _ in 0..200 {
                t += 1000;
                let j = rng.next() % 40;
                let noisy = Subject {
                    executable: leak(format!("/opt/noise{j}")).as_bytes(),
                    identity: ExeIdentity::Unknown,
                    container: None,
                };
                let path = leak(format!("/var/noise/f{}", rng.next() % 5000));
                b.observe(&obs(
                    noisy,
                    t,
                    Behaviour::Open {
                        path: path.as_bytes(),
                        access: Access::READ,
                    },
                ));
                // Promoted profiles see new things: recorded since promotion.
                if n > 0 {
                    let p = (rng.next() % u64::from(n)) as u32;
                    let path = leak(format!("/srv/new/x{}", rng.next() % 3000));
                    b.observe(&obs(
                        subject(p),
                        t,
                        Behaviour::Open {
                            path: path.as_bytes(),
                            access: Access::WRITE,
                        },
                    ));
                }
            }
            b.flush().expect("child: flush");
        }
        b.promote(&format!("exe:/opt/p{n}"), Mode::Monitoring, t)
            .expect("child: promote");
        writeln!(out, "PROMOTED {n}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill_9_never_loses_a_promoted_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed:#x}");
    let mut rng = Rng(seed);
    let exe = std::env::current_exe().unwrap();
    let mut announced: BTreeSet<u32> = BTreeSet::new();
    let mut max_checked = 0;
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let ms = 30 + rng.next() % 400;
        std::thread::sleep(Duration::from_millis(ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let stdout = child.stdout.take().unwrap();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("PROMOTED ") {
                announced.insert(n.parse().unwrap());
            }
        }
        // The database opens, and every promoted baseline is intact.
        let b = Baselines::open(&dir, cfg())
            .unwrap_or_else(|e| panic!("round {round} (killed after {ms} ms): {e}"));
        let mut promoted = BTreeSet::new();
        for row in b.list() {
            let Some(n) = row
                .profile
                .strip_prefix("exe:/opt/p")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if row.mode != Mode::Monitoring {
                continue;
            }
            promoted.insert(n);
            let base = b.baseline(&row.profile).unwrap();
            let files: BTreeSet<String> = base.file.iter().map(|i| i.item.clone()).collect();
            assert_eq!(files, expected_files(n), "round {round}: baseline of p{n}");
            let spawns: Vec<&str> = base.spawn.iter().map(|i| i.item.as_str()).collect();
            assert_eq!(
                spawns,
                vec!["/usr/bin/tool0", "/usr/bin/tool1", "/usr/bin/tool2"]
            );
            assert_eq!(base.connect.len(), 1, "round {round}: p{n}");
            // Whatever it saw since promotion is flagged, never in the baseline.
            let diff = b.diff(&row.profile).unwrap();
            assert!(diff.file.iter().all(|i| i.item.starts_with("/srv/new/")));
        }
        for n in &announced {
            assert!(
                promoted.contains(n),
                "round {round}: announced promotion of p{n} lost"
            );
        }
        // Promotions are consecutive: none skipped, none half-done.
        if let Some(&m) = promoted.iter().max() {
            assert_eq!(promoted.len() as u32, m + 1, "round {round}: {promoted:?}");
            max_checked = max_checked.max(m + 1);
        }
        drop(b);
    }
    eprintln!("{KILLS} kills, {max_checked} promoted baselines verified");
    assert!(
        max_checked >= 3,
        "the child made too little progress to test anything"
    );
}
