//! Executable hashes (`process.hash.sha256`): the file an exec ran is
//! opened on the event path (`/proc/PID/exe`, else `/proc/PID/root` plus
//! the path, so a container's file is the one hashed), its SHA-256 is
//! computed on a worker thread, once per (device, inode, size, mtime,
//! ctime) in a bounded cache, for files up to a size cap. An exec record
//! carries that identity as the kernel saw it ([`ExecKey`]): a repeated
//! exec is answered from it with no syscall, the file is opened only on a
//! miss (and its identity checked against the record's). The event waits
//! for the worker at most `hash.wait_ms`; past that it carries
//! `vigil.hash.pending` and the hash follows in a later record
//! (`event.action: exec-hash`).
//!
//! A hash list of known-bad SHA-256s (`hash.known_bad_file`, one hex hash
//! a line, `#` comments) sets `vigil.hash.known_bad`; SIGHUP reloads it.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns.
    pub mtime_ns: i64,
    /// Status change time, ns.
    pub ctime_ns: i64,
}

impl FileKey {
    fn of(m: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec(),
            ctime_ns: m.ctime().saturating_mul(1_000_000_000) + m.ctime_nsec(),
        }
    }
}

/// The identity of the file an exec ran, from the exec record: device
/// (kernel encoding), inode, size, mtime and ctime as the kernel saw them
/// at exec. Answers the cache without opening the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExecKey {
    /// Superblock device (kernel encoding).
    pub dev: u32,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns.
    pub mtime_ns: i64,
    /// Status change time, ns.
    pub ctime_ns: i64,
}

impl ExecKey {
    /// The identity in an exec record, or `None` when the kernel could not
    /// read it (no timestamps: an unknown inode layout, or a record from
    /// an older sensor).
    pub fn of(info: &vigil_bpf::abi::Exec) -> Option<ExecKey> {
        if info.ino == 0 || (info.ctime_sec == 0 && info.ctime_nsec == 0) {
            return None;
        }
        Some(ExecKey {
            dev: info.dev,
            ino: info.ino,
            size: info.size,
            mtime_ns: info
                .mtime_sec
                .saturating_mul(1_000_000_000)
                .saturating_add(i64::from(info.mtime_nsec)),
            ctime_ns: info
                .ctime_sec
                .saturating_mul(1_000_000_000)
                .saturating_add(i64::from(info.ctime_nsec)),
        })
    }

    /// Whether the file opened (`k`, from fstat) is the one the exec ran.
    fn agrees(&self, k: &FileKey) -> bool {
        self.ino == k.ino
            && self.size == k.size
            && self.mtime_ns == k.mtime_ns
            && self.ctime_ns == k.ctime_ns
    }
}

/// The hash state of one exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Lower-case hex SHA-256.
    Hash(Arc<str>),
    /// Being computed: the result comes from [`Hasher::poll`] with this ticket.
    Pending(u64),
    /// Not hashed, and why (`too-large`, `unreadable`, `process-exited`,
    /// `replaced`, `queue-full`, `not-regular`).
    Skipped(&'static str),
}

/// A hash finished after its event was written.
#[derive(Debug, Clone)]
pub struct Done {
    /// The ticket [`Outcome::Pending`] gave.
    pub ticket: u64,
    /// The hash, or why there is none.
    pub result: Result<Arc<str>, &'static str>,
}

/// Counters (`vigil_hash_*` and the run summary).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashStats {
    /// Files read and hashed.
    pub hashed: u64,
    /// Lookups answered from the cache.
    pub cache_hits: u64,
    /// ... of them from the exec record's identity, with no syscall.
    pub exec_key_hits: u64,
    /// Events written with `vigil.hash.pending`.
    pub pending: u64,
    /// Files over the size cap.
    pub too_large: u64,
    /// Files that could not be opened or read (process gone, replaced, ...).
    pub errors: u64,
    /// Lookups refused because the worker's queue was full.
    pub queue_full: u64,
    /// Of `pending`: execs that did not wait at all, because the pipeline
    /// had already waited [`WAIT_BUDGET`] for hashes in the current second.
    pub unwaited: u64,
}

/// The longest the pipeline waits for hashes in any one second, all execs
/// together: a burst of execs of new or large files (an attacker copying a
/// binary to many names) cannot stall the consumer for more than a fifth of
/// its time; past it, exec records go on at once with `vigil.hash.pending`
/// and their hashes follow in `exec-hash` records.
pub const WAIT_BUDGET: Duration = Duration::from_millis(200);

/// Settings of the hasher.
#[derive(Debug, Clone)]
pub struct HashSettings {
    /// Files larger than this are not hashed.
    pub max_bytes: u64,
    /// How long an event waits for its hash.
    pub wait: Duration,
    /// Cache entries (the cache is cleared when full).
    pub cache_entries: usize,
    /// Jobs queued to the worker at most.
    pub queue: usize,
}

struct Job {
    ticket: u64,
    key: FileKey,
    exec_key: Option<ExecKey>,
    file: File,
}

struct Finished {
    ticket: u64,
    key: FileKey,
    exec_key: Option<ExecKey>,
    result: Result<[u8; 32], &'static str>,
}

/// Lower-case hex of a digest.
pub fn hex(d: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(d.len() * 2);
    for b in d {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

/// SHA-256 of everything `r` yields, reading at most `max` bytes (more is
/// an error: the file grew past the cap).
pub fn sha256_reader(r: &mut dyn Read, max: u64) -> Result<[u8; 32], &'static str> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err("unreadable"),
        };
        total += n as u64;
        if total > max {
            return Err("too-large");
        }
        ctx.update(&buf[..n]);
    }
    let d = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    Ok(out)
}

fn worker(jobs: Receiver<Job>, done: SyncSender<Finished>, max: u64) {
    while let Ok(mut j) = jobs.recv() {
        let result = sha256_reader(&mut j.file, max);
        if done
            .send(Finished {
                ticket: j.ticket,
                key: j.key,
                exec_key: j.exec_key,
                result,
            })
            .is_err()
        {
            return;
        }
    }
}

/// Parses a hash list: one 64-hex-digit SHA-256 a line (case ignored;
/// `sha256sum` output is accepted: the hash is the first word), blank lines
/// and `#` comments skipped. Errors name the line.
pub fn parse_hash_list(text: &str) -> Result<HashSet<[u8; 32]>, (usize, String)> {
    let mut set = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let word = l.split_whitespace().next().unwrap_or("");
        let word = word
            .strip_prefix("SHA256=")
            .or_else(|| word.strip_prefix("sha256="))
            .unwrap_or(word);
        match parse_hex32(word) {
            Some(h) => {
                set.insert(h);
            }
            None => {
                return Err((
                    i + 1,
                    format!(
                        "`{}` is not a SHA-256 (64 hex digits)",
                        crate::config::printable(&word.chars().take(80).collect::<String>())
                    ),
                ));
            }
        }
    }
    Ok(set)
}

/// 64 hex digits to bytes.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for i in 0..32 {
        let hi = (b[2 * i] as char).to_digit(16)?;
        let lo = (b[2 * i + 1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Loads a hash list file; errors as `file:line: message`.
pub fn load_hash_list(path: &Path) -> Result<HashSet<[u8; 32]>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}:0: cannot read: {e}",
            crate::config::printable(&path.display().to_string())
        )
    })?;
    parse_hash_list(&text).map_err(|(line, m)| {
        format!(
            "{}:{line}: {m}",
            crate::config::printable(&path.display().to_string())
        )
    })
}

/// The hasher: cache, worker and known-bad list.
pub struct Hasher {
    cfg: HashSettings,
    cache: HashMap<FileKey, Arc<str>>,
    by_exec: HashMap<ExecKey, Arc<str>>,
    inflight: HashMap<FileKey, u64>,
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Finished>,
    late: Vec<Finished>,
    next_ticket: u64,
    my_mntns: Option<u64>,
    known_bad: HashSet<[u8; 32]>,
    /// Start of the current second of the wait budget, and what was waited
    /// in it.
    budget: (Instant, Duration),
    /// Counters.
    pub stats: HashStats,
}

impl Hasher {
    /// Starts the worker thread.
    pub fn new(cfg: HashSettings) -> std::io::Result<Hasher> {
        let (jtx, jrx) = mpsc::sync_channel::<Job>(cfg.queue.max(1));
        let (dtx, drx) = mpsc::sync_channel::<Finished>(cfg.queue.max(1) + 1);
        let max = cfg.max_bytes;
        std::thread::Builder::new()
            .name("vigil-hash".into())
            .spawn(move || worker(jrx, dtx, max))?;
        let my_mntns = std::fs::metadata("/proc/self/ns/mnt").ok().map(|m| m.ino());
        Ok(Hasher {
            cfg,
            cache: HashMap::new(),
            by_exec: HashMap::new(),
            inflight: HashMap::new(),
            jobs: Some(jtx),
            results: drx,
            late: Vec::new(),
            next_ticket: 1,
            my_mntns,
            known_bad: HashSet::new(),
            budget: (Instant::now(), Duration::ZERO),
            stats: HashStats::default(),
        })
    }

    /// Replaces the known-bad list.
    pub fn set_known_bad(&mut self, set: HashSet<[u8; 32]>) {
        self.known_bad = set;
    }

    /// Entries in the known-bad list.
    pub fn known_bad_len(&self) -> usize {
        self.known_bad.len()
    }

    /// Whether a hex hash is on the known-bad list.
    pub fn is_known_bad(&self, hex: &str) -> bool {
        !self.known_bad.is_empty() && parse_hex32(hex).is_some_and(|h| self.known_bad.contains(&h))
    }

    /// Cache entries (`vigil_state_entries`).
    pub fn cache_len(&self) -> usize {
        self.cache.len() + self.by_exec.len()
    }

    /// Opens the executable of `pid` (which exec'd `path`, inode `ino`
    /// when known, in mount namespace `mntns`): `/proc/PID/exe`, else the
    /// path below `/proc/PID/root`; once the process is gone (a short-lived
    /// one often is by the time its event is read), the path below the root
    /// of another process in the same mount namespace (`others`: its
    /// parent chain), or vigil's own.
    fn open(
        &self,
        pid: u32,
        path: &[u8],
        ino: u64,
        mntns: u32,
        others: &[u32],
    ) -> Result<File, &'static str> {
        use std::os::unix::ffi::OsStrExt;
        let same = |f: &File| ino == 0 || f.metadata().is_ok_and(|m| m.ino() == ino);
        let mut seen_proc = false;
        if let Ok(f) = File::open(format!("/proc/{pid}/exe")) {
            seen_proc = true;
            if same(&f) {
                return Ok(f);
            }
        }
        if !path.starts_with(b"/") {
            return Err("unreadable");
        }
        let below = |root_pid: u32| {
            let mut p = format!("/proc/{root_pid}/root").into_bytes();
            p.extend_from_slice(path);
            File::open(std::ffi::OsStr::from_bytes(&p))
        };
        if let Ok(f) = below(pid) {
            seen_proc = true;
            if same(&f) {
                return Ok(f);
            }
        }
        if ino != 0 && mntns != 0 {
            for &o in others.iter().filter(|&&o| o != pid && o != 0) {
                let in_ns = std::fs::metadata(format!("/proc/{o}/ns/mnt"))
                    .is_ok_and(|m| m.ino() == u64::from(mntns));
                if in_ns
                    && let Ok(f) = below(o)
                    && same(&f)
                {
                    return Ok(f);
                }
            }
            if self.my_mntns == Some(u64::from(mntns))
                && let Ok(f) = File::open(std::ffi::OsStr::from_bytes(path))
                && same(&f)
            {
                return Ok(f);
            }
        }
        Err(if seen_proc {
            "replaced"
        } else {
            "process-exited"
        })
    }

    /// The hash of the executable `pid` runs: opened through
    /// `/proc/PID/exe`, `/proc/PID/root`, or the root of a process of
    /// `others` in the same mount namespace `mntns`, checked against `ino`.
    pub fn lookup(
        &mut self,
        pid: u32,
        path: &[u8],
        ino: u64,
        mntns: u32,
        others: &[u32],
    ) -> Outcome {
        self.lookup_keyed(pid, path, ino, None, mntns, others)
    }

    /// [`Hasher::lookup`] for an exec record: a file already hashed under
    /// the record's identity `id` is answered with no syscall; otherwise
    /// the file is opened as `lookup` does, and its result is remembered
    /// under `id` when the opened file's identity agrees with it.
    pub fn lookup_exec(
        &mut self,
        pid: u32,
        path: &[u8],
        ino: u64,
        id: Option<ExecKey>,
        mntns: u32,
        others: &[u32],
    ) -> Outcome {
        if let Some(k) = id
            && let Some(h) = self.by_exec.get(&k)
        {
            self.stats.cache_hits += 1;
            self.stats.exec_key_hits += 1;
            return Outcome::Hash(h.clone());
        }
        self.lookup_keyed(pid, path, ino, id, mntns, others)
    }

    fn remember_exec(&mut self, id: ExecKey, h: &Arc<str>) {
        if self.by_exec.len() >= self.cfg.cache_entries.max(1) {
            self.by_exec.clear();
        }
        self.by_exec.insert(id, h.clone());
    }

    fn lookup_keyed(
        &mut self,
        pid: u32,
        path: &[u8],
        ino: u64,
        id: Option<ExecKey>,
        mntns: u32,
        others: &[u32],
    ) -> Outcome {
        let f = match self.open(pid, path, ino, mntns, others) {
            Ok(f) => f,
            Err(why) => {
                self.stats.errors += 1;
                return Outcome::Skipped(why);
            }
        };
        let Ok(m) = f.metadata() else {
            self.stats.errors += 1;
            return Outcome::Skipped("unreadable");
        };
        if !m.is_file() {
            self.stats.errors += 1;
            return Outcome::Skipped("not-regular");
        }
        let key = FileKey::of(&m);
        // the file opened is the one the exec ran (not replaced since)
        let exec_key = id.filter(|k| k.agrees(&key));
        if let Some(h) = self.cache.get(&key).cloned() {
            self.stats.cache_hits += 1;
            if let Some(k) = exec_key {
                self.remember_exec(k, &h);
            }
            return Outcome::Hash(h);
        }
        if key.size > self.cfg.max_bytes {
            self.stats.too_large += 1;
            return Outcome::Skipped("too-large");
        }
        let ticket = match self.inflight.get(&key) {
            Some(t) => *t,
            None => {
                let ticket = self.next_ticket;
                self.next_ticket += 1;
                let Some(jobs) = self.jobs.as_ref() else {
                    return Outcome::Skipped("queue-full");
                };
                match jobs.try_send(Job {
                    ticket,
                    key,
                    exec_key,
                    file: f,
                }) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                        self.stats.queue_full += 1;
                        return Outcome::Skipped("queue-full");
                    }
                }
                self.inflight.insert(key, ticket);
                ticket
            }
        };
        // Wait for this ticket, keeping others' results for poll(), within
        // what is left of this second's wait budget.
        let start = Instant::now();
        if start.duration_since(self.budget.0) >= Duration::from_secs(1) {
            self.budget = (start, Duration::ZERO);
        }
        let wait = self.cfg.wait.min(WAIT_BUDGET.saturating_sub(self.budget.1));
        let outcome = self.wait_for(ticket, start + wait);
        self.budget.1 += start.elapsed();
        if wait.is_zero() && !self.cfg.wait.is_zero() && matches!(outcome, Outcome::Pending(_)) {
            self.stats.unwaited += 1;
        }
        outcome
    }

    /// The hash of `ticket` if the worker delivers it before `deadline`,
    /// else `Pending`.
    fn wait_for(&mut self, ticket: u64, deadline: Instant) -> Outcome {
        loop {
            if let Some(i) = self.late.iter().position(|d| d.ticket == ticket) {
                let d = self.late.swap_remove(i);
                return match self.finish(d).result {
                    Ok(h) => Outcome::Hash(h),
                    Err(why) => Outcome::Skipped(why),
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.results.recv_timeout(left) {
                Ok(d) => self.late.push(d),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.stats.pending += 1;
        Outcome::Pending(ticket)
    }

    fn finish(&mut self, d: Finished) -> Done {
        self.inflight.remove(&d.key);
        let result = match d.result {
            Ok(h) => {
                self.stats.hashed += 1;
                let s: Arc<str> = hex(&h).into();
                if self.cache.len() >= self.cfg.cache_entries.max(1) {
                    self.cache.clear();
                }
                self.cache.insert(d.key, s.clone());
                if let Some(k) = d.exec_key {
                    self.remember_exec(k, &s);
                }
                Ok(s)
            }
            Err(why) => {
                if why == "too-large" {
                    self.stats.too_large += 1;
                } else {
                    self.stats.errors += 1;
                }
                Err(why)
            }
        };
        Done {
            ticket: d.ticket,
            result,
        }
    }

    /// Hashes finished since the last call whose events were written
    /// pending.
    pub fn poll(&mut self) -> Vec<Done> {
        while let Ok(d) = self.results.try_recv() {
            self.late.push(d);
        }
        let late = std::mem::take(&mut self.late);
        late.into_iter().map(|d| self.finish(d)).collect()
    }

    /// Waits up to `d` for the pending hashes (shutdown).
    pub fn drain(&mut self, d: Duration) -> Vec<Done> {
        let deadline = Instant::now() + d;
        // every key in flight has one job, hence one result to come
        while self.late.len() < self.inflight.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.results.recv_timeout(left) {
                Ok(f) => self.late.push(f),
                Err(_) => break,
            }
        }
        self.poll()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn settings(wait_ms: u64) -> HashSettings {
        HashSettings {
            max_bytes: 1 << 20,
            wait: Duration::from_millis(wait_ms),
            cache_entries: 4,
            queue: 8,
        }
    }

    #[test]
    fn sha256_of_known_input() {
        let h = sha256_reader(&mut &b"abc"[..], 100).unwrap();
        assert_eq!(
            hex(&h),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_reader(&mut &b"abcd"[..], 3), Err("too-large"));
    }

    #[test]
    fn hash_list_parses_and_names_the_bad_line() {
        let good = "# bad tools\nba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  /tmp/x\n\nSHA256=BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AE\n";
        let s = parse_hash_list(good).unwrap();
        assert_eq!(s.len(), 2);
        let e = parse_hash_list("# c\nnot-a-hash\n").unwrap_err();
        assert_eq!(e.0, 2);
        assert!(e.1.contains("not-a-hash"), "{}", e.1);
    }

    #[test]
    fn a_spent_wait_budget_makes_execs_go_on_at_once() {
        let dir = std::env::temp_dir().join(format!("vigil-hash-budget-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut h = Hasher::new(settings(10_000)).unwrap();
        let me = std::process::id();
        let file = |n: &str| {
            let p = dir.join(n);
            std::fs::write(&p, n).unwrap();
            let ino = std::fs::metadata(&p).unwrap().ino();
            (p.to_str().unwrap().as_bytes().to_vec(), ino)
        };
        // budget left: the exec waits for its hash
        let (a, ia) = file("a");
        assert!(matches!(h.lookup(me, &a, ia, 0, &[]), Outcome::Hash(_)));
        assert!(h.budget.1 < WAIT_BUDGET);
        // this second's budget spent: the next new file does not wait
        h.budget.1 = WAIT_BUDGET;
        let (b, ib) = file("b");
        let t = Instant::now();
        let Outcome::Pending(ticket) = h.lookup(me, &b, ib, 0, &[]) else {
            panic!("a spent budget must not wait")
        };
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!((h.stats.pending, h.stats.unwaited), (1, 1));
        // its hash follows (as an exec-hash record would)
        let done = h.drain(Duration::from_secs(10));
        assert!(done.iter().any(|d| d.ticket == ticket && d.result.is_ok()));
        // a new second: waiting again
        h.budget.0 -= Duration::from_secs(1);
        let (c, ic) = file("c");
        assert!(matches!(h.lookup(me, &c, ic, 0, &[]), Outcome::Hash(_)));
        assert_eq!(h.stats.unwaited, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lookup_hashes_a_file_once_and_caches_by_identity() {
        let dir = std::env::temp_dir().join(format!("vigil-hash-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::File::create(&p)
            .unwrap()
            .write_all(b"abc")
            .unwrap();
        let mut h = Hasher::new(settings(2000)).unwrap();
        // our own pid's root plus an absolute path: the file itself
        let path = p.to_str().unwrap().as_bytes().to_vec();
        let ino = std::fs::metadata(&p).unwrap().ino();
        // a pid that is not the one running the file: /proc/self/exe is
        // this test binary (another inode), so the root path is used
        let me = std::process::id();
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(h.lookup(me, &path, ino, 0, &[]), Outcome::Hash(want.into()));
        assert_eq!(h.stats.hashed, 1);
        assert_eq!(h.lookup(me, &path, ino, 0, &[]), Outcome::Hash(want.into()));
        assert_eq!(h.stats.cache_hits, 1);
        // new content: new identity, hashed again
        std::thread::sleep(Duration::from_millis(10));
        std::fs::File::create(&p)
            .unwrap()
            .write_all(b"abcd")
            .unwrap();
        let Outcome::Hash(h2) = h.lookup(me, &path, ino, 0, &[]) else {
            panic!("no hash")
        };
        assert_ne!(&*h2, want);
        assert_eq!(h.stats.hashed, 2);
        // a different inode than the exec's is not hashed
        assert_eq!(
            h.lookup(u32::MAX - 1, &path, ino + 1, 0, &[]),
            Outcome::Skipped("process-exited")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_exec_records_identity_answers_repeats_without_opening() {
        let dir = std::env::temp_dir().join(format!("vigil-hash-exec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, b"abc").unwrap();
        let m = std::fs::metadata(&p).unwrap();
        let id = ExecKey {
            dev: 7,
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        };
        let mut h = Hasher::new(settings(2000)).unwrap();
        let path = p.to_str().unwrap().as_bytes().to_vec();
        let me = std::process::id();
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(
            h.lookup_exec(me, &path, m.ino(), Some(id), 0, &[]),
            Outcome::Hash(want.into())
        );
        assert_eq!((h.stats.hashed, h.stats.exec_key_hits), (1, 0));
        // the same identity: answered with nothing to open (no such process)
        assert_eq!(
            h.lookup_exec(u32::MAX - 1, b"/nonexistent", m.ino(), Some(id), 0, &[]),
            Outcome::Hash(want.into())
        );
        assert_eq!(h.stats.exec_key_hits, 1);
        // another identity (changed ctime) is not answered from it
        let other = ExecKey {
            ctime_ns: id.ctime_ns + 1,
            ..id
        };
        assert_eq!(
            h.lookup_exec(u32::MAX - 1, b"/nonexistent", m.ino(), Some(other), 0, &[]),
            Outcome::Skipped("process-exited")
        );
        // a record whose identity disagrees with the file opened: hashed
        // from the file, but not remembered under the record's identity
        let stale = ExecKey { size: 99, ..id };
        assert_eq!(
            h.lookup_exec(me, &path, m.ino(), Some(stale), 0, &[]),
            Outcome::Hash(want.into())
        );
        assert_eq!(
            h.lookup_exec(u32::MAX - 1, b"/nonexistent", m.ino(), Some(stale), 0, &[]),
            Outcome::Skipped("process-exited")
        );
        // a record without an identity
        let info = vigil_bpf::abi::Exec {
            ino: 5,
            ..Default::default()
        };
        assert_eq!(ExecKey::of(&info), None);
        let info = vigil_bpf::abi::Exec {
            ino: 5,
            dev: 3,
            size: 10,
            mtime_sec: 2,
            mtime_nsec: 5,
            ctime_sec: 3,
            ctime_nsec: 6,
            ..Default::default()
        };
        assert_eq!(
            ExecKey::of(&info),
            Some(ExecKey {
                dev: 3,
                ino: 5,
                size: 10,
                mtime_ns: 2_000_000_005,
                ctime_ns: 3_000_000_006
            })
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_slow_hash_is_pending_then_polled() {
        let dir = std::env::temp_dir().join(format!("vigil-hash-pend-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("big");
        let data = vec![7u8; 512 * 1024];
        std::fs::write(&p, &data).unwrap();
        let mut h = Hasher::new(settings(0)).unwrap();
        let path = p.to_str().unwrap().as_bytes().to_vec();
        let ino = std::fs::metadata(&p).unwrap().ino();
        let t = match h.lookup(std::process::id(), &path, ino, 0, &[]) {
            Outcome::Pending(t) => t,
            o => panic!("expected pending with no wait, got {o:?}"),
        };
        let done = h.drain(Duration::from_secs(5));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].ticket, t);
        let want = hex(&sha256_reader(&mut &data[..], u64::MAX).unwrap());
        assert_eq!(done[0].result.as_deref(), Ok(want.as_str()));
        // now cached
        assert_eq!(
            h.lookup(std::process::id(), &path, ino, 0, &[]),
            Outcome::Hash(want.as_str().into())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn too_large_is_skipped() {
        let dir = std::env::temp_dir().join(format!("vigil-hash-big-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("big");
        std::fs::write(&p, vec![1u8; (1 << 20) + 1]).unwrap();
        let mut h = Hasher::new(settings(100)).unwrap();
        let path = p.to_str().unwrap().as_bytes().to_vec();
        let ino = std::fs::metadata(&p).unwrap().ino();
        assert_eq!(
            h.lookup(std::process::id(), &path, ino, 0, &[]),
            Outcome::Skipped("too-large")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
