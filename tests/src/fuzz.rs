//! A small, time-bounded mutation fuzzer on stable Rust (no cargo-fuzz,
//! which needs nightly): start from a corpus of seed files, stack a few
//! byte and token mutations per input (bit flips, inserts, deletes,
//! splices of two seeds, duplicated and swapped lines, truncation, and
//! hostile strings: NUL, CR/LF, ESC sequences, invalid UTF-8, 64 KiB
//! strings, deep nesting, huge numbers), feed the target, and fail on a
//! panic, a violated property (the target returns `Err`) or an input that
//! runs longer than the hang limit.
//!
//! Knobs (environment):
//! - `VIGIL_FUZZ_SECONDS`: time per target (default 6; fractional allowed).
//! - `VIGIL_FUZZ_SEED`: the run's seed (printed at start; set it to replay
//!   the same inputs). Each target derives its own stream from it.
//! - `VIGIL_FUZZ_HANG_MS`: longest time one input may take (default 5000).
//! - `VIGIL_FUZZ_OUT`: where failing inputs are written (default
//!   `$TMPDIR/vigil-fuzz`, mode 0700).
//! - `VIGIL_FUZZ_INPUT`: run this one file through the target instead of
//!   fuzzing (reproduces a saved failure).
//!
//! Before each input runs it is written to `OUT/<target>.current`, so an
//! abort that no hook can catch (a stack overflow) still leaves the input
//! behind; the start banner prints that path.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// splitmix64: small, fast, and every seed gives a full-period stream.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A random element.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// Short hostile strings inserted by the mutator, for every target.
pub const HOSTILE: &[&[u8]] = &[
    b"\0",
    b"\n",
    b"\r",
    b"\r\n",
    b"\t",
    b"\x1b[31m",
    b"\x1b]0;title\x07",
    b"\x1b[2J\x1b[H",
    b"\xff\xfe",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x80\xae",
    b"\xef\xbb\xbf",
    b"\"",
    b"'",
    b"\\",
    b"\\u0000",
    b"\\x",
    b"%",
    b"%s%n%x",
    b"|",
    b"=",
    b"]",
    b"[",
    b"{",
    b"}",
    b"(",
    b")",
    b",",
    b":",
    b": ",
    b"- ",
    b"#",
    b"&a ",
    b"*a",
    b"!!binary ",
    b"<<: ",
    b"~",
    b"---\n",
    b"...\n",
    b"${x}",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"99999999999999999999999999999999999999",
    b"1e999",
    b"-1",
    b"nan",
    b"inf",
    b"0x7fffffff",
    b"4294967295",
];

/// Big hostile strings: 64 KiB runs and deep nesting in each syntax the
/// targets parse (YAML flow, TOML arrays, JSON, condition parentheses).
pub fn big_hostile(rng: &mut Rng) -> Vec<u8> {
    let n = [64 << 10, 4096, 100_000][rng.below(3)];
    match rng.below(10) {
        0 => vec![b'A'; n],
        1 => "é".repeat(n / 2).into_bytes(),
        2 => b"[".repeat(n / 4),
        3 => b"{a: ".repeat(n / 8),
        4 => b"(".repeat(n / 4),
        5 => b"not ".repeat(n / 8),
        6 => b"- ".repeat(n / 8),
        7 => {
            let mut v = b"[".repeat(n / 8);
            v.extend(b"]".repeat(n / 8));
            v
        }
        8 => b"9".repeat(n / 64),
        _ => (0..n / 16).flat_map(|i| [b' '; 2].repeat(i % 40)).collect(),
    }
}

/// Applies 1-4 stacked mutations to `input`; `others` are splice partners,
/// `dict` target-specific tokens.
pub fn mutate(input: &[u8], others: &[Vec<u8>], dict: &[&[u8]], rng: &mut Rng) -> Vec<u8> {
    let mut v = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        mutate_once(&mut v, others, dict, rng);
        // Stacked duplications grow exponentially; past this size inputs
        // only measure the parser's linear cost.
        v.truncate(MAX_INPUT);
    }
    v
}

/// Largest input the mutator produces (1 MiB: room for a 64 KiB string
/// and deep nesting several times over).
pub const MAX_INPUT: usize = 1 << 20;

fn lines(v: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in v.iter().enumerate() {
        if b == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < v.len() {
        out.push((start, v.len()));
    }
    out
}

fn mutate_once(v: &mut Vec<u8>, others: &[Vec<u8>], dict: &[&[u8]], rng: &mut Rng) {
    let len = v.len();
    let pos = rng.below(len + 1);
    match rng.below(16) {
        0 if len > 0 => {
            let i = rng.below(len);
            v[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            v[i] = rng.next_u64() as u8;
        }
        2 => {
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            v.splice(pos..pos, bytes);
        }
        3 if len > 0 => {
            let n = 1 + rng.below(len.min(64));
            let end = (pos + n).min(len);
            v.drain(pos.min(end)..end);
        }
        4 if len > 0 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(256)).min(len);
            let chunk = v[a..b].to_vec();
            v.splice(pos..pos, chunk);
        }
        5 if len > 0 => v.truncate(rng.below(len)),
        6 if !others.is_empty() => {
            let o = rng.pick(others);
            let cut = rng.below(o.len() + 1);
            v.truncate(pos);
            v.extend_from_slice(&o[cut..]);
        }
        7 => {
            let ls = lines(v);
            if ls.len() >= 2 {
                let (a, b) = (rng.below(ls.len()), rng.below(ls.len()));
                let mut out: Vec<&[u8]> = ls.iter().map(|&(s, e)| &v[s..e]).collect();
                out.swap(a, b);
                *v = out.concat();
            }
        }
        8 => {
            let ls = lines(v);
            if !ls.is_empty() {
                let (s, e) = *rng.pick(&ls);
                let line = v[s..e].to_vec();
                let times = if line.len() < 1024 && rng.one_in(8) {
                    200
                } else {
                    1
                };
                let at = ls[rng.below(ls.len())].0;
                v.splice(at..at, line.repeat(times));
            }
        }
        9 => {
            let ls = lines(v);
            if !ls.is_empty() {
                let (s, e) = *rng.pick(&ls);
                v.drain(s..e);
            }
        }
        10 | 11 => {
            let h = rng.pick(HOSTILE);
            v.splice(pos..pos, h.iter().copied());
        }
        12 if rng.one_in(6) => {
            let big = big_hostile(rng);
            v.splice(pos..pos, big);
        }
        13 => {
            // Replace a run of digits with a huge or negative number.
            if let Some(start) = (0..len)
                .map(|i| (pos + i) % len)
                .find(|&i| v[i].is_ascii_digit())
            {
                let end = (start..len)
                    .find(|&i| !v[i].is_ascii_digit())
                    .unwrap_or(len);
                const NUMS: [&[u8]; 6] = [
                    b"18446744073709551616",
                    b"-1",
                    b"4294967296",
                    b"0",
                    b"99999999999999999999999999999999999999999",
                    b"1.5e308",
                ];
                let n = *rng.pick(&NUMS);
                v.splice(start..end, n.iter().copied());
            }
        }
        _ if !dict.is_empty() => {
            let t = rng.pick(dict);
            v.splice(pos..pos, t.iter().copied());
        }
        _ => {
            let h = rng.pick(HOSTILE);
            v.splice(pos..pos, h.iter().copied());
        }
    }
}

/// Reads every regular file below `dir` (sorted, recursive).
pub fn read_corpus(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect()
}

/// A failure: what went wrong and the input.
type Failure = (String, Vec<u8>);

/// What one input did: accepted (parsed/loaded) or cleanly refused.
pub type Verdict = Result<bool, String>;

/// A target: called once on the fuzzing thread to build its state, it
/// returns the function each input is fed to.
pub type Exec = Box<dyn FnMut(&[u8]) -> Verdict>;

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Inputs executed.
    pub execs: u64,
    /// Of which the target accepted.
    pub accepted: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Seeds read from the corpus.
    pub seeds: usize,
}

impl Stats {
    /// Inputs per second.
    pub fn per_sec(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// The run's seed: `VIGIL_FUZZ_SEED`, or from the clock (printed).
pub fn run_seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        std::env::var("VIGIL_FUZZ_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
                    ^ u64::from(std::process::id())
            })
    })
}

/// Where failing inputs go (created 0700).
pub fn out_dir() -> PathBuf {
    let d = std::env::var_os("VIGIL_FUZZ_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("vigil-fuzz"));
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&d);
    d
}

fn save(dir: &Path, name: &str, input: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&p)
        .and_then(|mut f| f.write_all(input));
    p
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Fuzzes one target for `VIGIL_FUZZ_SECONDS` starting from `seeds`;
/// panics (naming the seed and the saved input) on the first failure.
///
/// `make` runs on the fuzzing thread and builds the target's state.
/// Inputs the target accepts may join the mutation pool (a cheap stand-in
/// for coverage feedback: near-valid inputs breed near-valid inputs).
pub fn run<F>(target: &str, seeds: Vec<Vec<u8>>, dict: &'static [&'static [u8]], make: F) -> Stats
where
    F: FnOnce() -> Exec + Send + 'static,
{
    assert!(!seeds.is_empty(), "fuzz {target}: empty corpus");
    let secs = env_f64("VIGIL_FUZZ_SECONDS", 6.0).max(0.0);
    let hang = Duration::from_millis(env_f64("VIGIL_FUZZ_HANG_MS", 5000.0) as u64);
    let seed = run_seed() ^ fnv(target);
    let dir = out_dir();
    let current = dir.join(format!("{target}.current"));
    let only = std::env::var_os("VIGIL_FUZZ_INPUT").map(PathBuf::from);
    eprintln!(
        "fuzz {target}: VIGIL_FUZZ_SEED={} (target stream {seed:#x}), {secs} s, {} seeds; \
         the input running is kept in {} (survives an abort)",
        run_seed(),
        seeds.len(),
        current.display()
    );

    // Shared with the watchdog: the input running and since when.
    let started_ms = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let failure: Arc<Mutex<Option<Failure>>> = Arc::new(Mutex::new(None));
    let stats = Arc::new(Mutex::new(Stats {
        seeds: seeds.len(),
        ..Stats::default()
    }));
    let epoch = Instant::now();
    let cur_file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&current)
        .unwrap_or_else(|e| panic!("fuzz {target}: cannot create {}: {e}", current.display()));

    let worker = {
        let (started_ms, done, failure, stats) = (
            Arc::clone(&started_ms),
            Arc::clone(&done),
            Arc::clone(&failure),
            Arc::clone(&stats),
        );
        std::thread::Builder::new()
            .name(format!("fuzz-{target}"))
            // The agent's own threads get 8 MiB (main) or 2 MiB (tokio);
            // fuzz on the smaller so deep recursion shows here first.
            .stack_size(2 << 20)
            .spawn(move || {
                let mut exec = make();
                let mut rng = Rng::new(seed);
                let mut pool = seeds.clone();
                let nseeds = pool.len();
                let deadline = epoch + Duration::from_secs_f64(secs);
                let mut i: u64 = 0;
                loop {
                    let input = if let Some(p) = &only {
                        if i > 0 {
                            break;
                        }
                        std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                    } else if (i as usize) < nseeds {
                        // Every seed as it is first.
                        pool[i as usize].clone()
                    } else {
                        if Instant::now() >= deadline {
                            break;
                        }
                        let base = rng.pick(&pool).clone();
                        mutate(&base, &pool, dict, &mut rng)
                    };
                    let _ = cur_file.set_len(0);
                    let _ = cur_file.write_all_at(&input, 0);
                    started_ms.store(epoch.elapsed().as_millis() as u64 + 1, Ordering::SeqCst);
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exec(&input)));
                    started_ms.store(0, Ordering::SeqCst);
                    i += 1;
                    let bad = match r {
                        Ok(Ok(accepted)) => {
                            let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
                            s.execs += 1;
                            s.accepted += u64::from(accepted);
                            drop(s);
                            if accepted && input.len() < (256 << 10) && rng.one_in(16) {
                                if pool.len() < nseeds + 512 {
                                    pool.push(input);
                                } else {
                                    let k = nseeds + rng.below(pool.len() - nseeds);
                                    pool[k] = input;
                                }
                            }
                            continue;
                        }
                        Ok(Err(msg)) => msg,
                        Err(p) => format!(
                            "panic: {}",
                            p.downcast_ref::<String>()
                                .map(String::as_str)
                                .or_else(|| p.downcast_ref::<&str>().copied())
                                .unwrap_or("(non-string payload)")
                        ),
                    };
                    *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some((bad, input));
                    break;
                }
                done.store(true, Ordering::SeqCst);
            })
            .expect("spawn the fuzzing thread")
    };

    // Watchdog: an input running longer than the hang limit fails the run
    // (the stuck thread is left behind; the test process exits anyway).
    loop {
        if done.load(Ordering::SeqCst) {
            break;
        }
        let s = started_ms.load(Ordering::SeqCst);
        let now = epoch.elapsed().as_millis() as u64 + 1;
        if s != 0 && now.saturating_sub(s) > hang.as_millis() as u64 {
            let input = std::fs::read(&current).unwrap_or_default();
            let p = save(&dir, &format!("{target}-hang-{}.bin", run_seed()), &input);
            panic!(
                "fuzz {target}: an input ran longer than {} ms (VIGIL_FUZZ_HANG_MS); saved to {}; \
                 reproduce: VIGIL_FUZZ_SEED={} or VIGIL_FUZZ_INPUT={}",
                hang.as_millis(),
                p.display(),
                run_seed(),
                p.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = worker.join();
    let mut st = stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
    st.elapsed = epoch.elapsed();
    if let Some((msg, input)) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let p = save(&dir, &format!("{target}-fail-{}.bin", run_seed()), &input);
        panic!(
            "fuzz {target}: {msg}\nfailing input ({} bytes) saved to {}\n\
             reproduce: VIGIL_FUZZ_INPUT={} cargo test --release -p vigil-tests --test fuzz {target} \
             (or VIGIL_FUZZ_SEED={})",
            input.len(),
            p.display(),
            p.display(),
            run_seed()
        );
    }
    eprintln!(
        "fuzz {target}: {} execs in {:.1} s ({:.0}/s), {} accepted, {} seeds",
        st.execs,
        st.elapsed.as_secs_f64(),
        st.per_sec(),
        st.accepted,
        st.seeds
    );
    let _ = std::fs::remove_file(&current);
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutation_is_deterministic_per_seed() {
        let seeds = vec![b"a: 1\nb: [2, 3]\n".to_vec(), b"x = \"y\"\n".to_vec()];
        let run = |s| {
            let mut r = Rng::new(s);
            (0..200)
                .map(|i| mutate(&seeds[i % 2], &seeds, &[b"tok"], &mut r))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn every_mutation_kind_keeps_going_on_empty_input() {
        let mut r = Rng::new(1);
        for _ in 0..5000 {
            let _ = mutate(b"", &[Vec::new()], &[], &mut r);
        }
    }
}
