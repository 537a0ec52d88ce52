//! Bulk overwrite: how many existing files one process rewrote in a short
//! window (`vigil.file.overwrites`), the shape of ransomware encrypting or
//! a wiper overwriting files in place.
//!
//! An event counts when it rewrote the content of a file that already
//! existed, as one program transforming files does:
//! - an open asking for read and write access (`O_RDWR`) without creating
//!   the file, or for write access only (`O_WRONLY`) without creating it,
//!   truncating it or appending to it (an in-place rewrite);
//! - an open that truncated an existing file (`O_TRUNC`, not created) the
//!   same process had opened for reading before (read, then written back);
//! - a successful rename of a file to its own name plus an extension
//!   (`doc.txt` -> `doc.txt.locked`).
//!
//! Files below `/proc/`, `/sys/`, `/dev/` and `/run/` (control files) and
//! inside build and cache trees (`/.git/`, `/target/`, `/node_modules/`,
//! `/.cache/`) never count. State is bounded: at most [`MAX_PROCS`]
//! processes and, per process, the path hashes of [`MAX_PATHS`] counted
//! files and [`MAX_READS`] read files; a window ends [`WINDOW_NS`] after
//! its first counted file.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use vigil_bpf::abi::{self, kind};
use vigil_bpf::decode::{Body, KernelEvent};

/// Length of a counting window (boot ns).
pub const WINDOW_NS: u64 = 60_000_000_000;
/// Processes tracked at once (past it, expired and then arbitrary entries go).
pub const MAX_PROCS: usize = 4096;
/// Distinct overwritten files remembered per process and window (the count
/// stops growing past it).
pub const MAX_PATHS: usize = 1024;
/// Files opened for reading remembered per process (oldest half dropped
/// when full).
pub const MAX_READS: usize = 1024;

const O_ACCMODE: u32 = 3;
const O_WRONLY: u32 = 1;
const O_RDWR: u32 = 2;
const O_TRUNC: u32 = 0o1000;
const O_APPEND: u32 = 0o2000;

#[derive(Default)]
struct Entry {
    window_start: u64,
    paths: HashSet<u64>,
    reads: HashSet<u64>,
    last_ns: u64,
}

/// The per-process counters.
#[derive(Default)]
pub struct Tracker {
    procs: HashMap<u32, Entry>,
}

fn path_hash(p: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
}

/// Paths that never count (control files, build and cache trees).
pub fn excluded(path: &[u8]) -> bool {
    const PREFIXES: &[&[u8]] = &[b"/proc/", b"/sys/", b"/dev/", b"/run/"];
    const PARTS: &[&[u8]] = &[b"/.git/", b"/target/", b"/node_modules/", b"/.cache/"];
    PREFIXES.iter().any(|p| path.starts_with(p))
        || PARTS.iter().any(|p| path.windows(p.len()).any(|w| w == *p))
}

/// `new` is `old` plus a dot and a short extension (no `/`).
pub fn renamed_with_extension(old: &[u8], new: &[u8]) -> bool {
    let Some(rest) = new.strip_prefix(old) else {
        return false;
    };
    let Some(ext) = rest.strip_prefix(b".") else {
        return false;
    };
    !ext.is_empty() && ext.len() <= 24 && !ext.contains(&b'/') && !old.ends_with(b"/")
}

/// What an event is to the counter.
enum Op {
    /// Counts as an overwrite of this path.
    Overwrite,
    /// A truncating open of an existing file: counts if it was read before.
    Truncate,
    /// An open for reading (remembered).
    Read,
}

fn classify(k: &KernelEvent, path2: Option<&[u8]>) -> Option<Op> {
    if k.hdr.flags & abi::flags::COMPAT != 0 {
        return None;
    }
    match &k.body {
        Body::Open { info, .. } if info.ret >= 0 && k.hdr.kind == kind::OPEN => {
            let f = info.flags;
            let created = f & abi::OPEN_CREATED != 0;
            match f & O_ACCMODE {
                0 => Some(Op::Read),
                _ if created || f & O_APPEND != 0 => None,
                _ if f & O_TRUNC != 0 => Some(Op::Truncate),
                O_RDWR | O_WRONLY => Some(Op::Overwrite),
                _ => None,
            }
        }
        Body::FChange { info, .. }
            if info.ret == 0
                && matches!(
                    info.syscall,
                    abi::sys::RENAME | abi::sys::RENAMEAT | abi::sys::RENAMEAT2
                ) =>
        {
            path2.map(|_| Op::Overwrite)
        }
        _ => None,
    }
}

impl Tracker {
    /// Feeds one event (its kernel record, `file.path` and the rename
    /// source); returns the process's count of overwritten files in the
    /// current window when this event is one, else 0.
    pub fn observe(&mut self, k: &KernelEvent, path: Option<&[u8]>, path2: Option<&[u8]>) -> u32 {
        if k.hdr.kind == kind::EXIT {
            self.procs.remove(&k.hdr.pid);
            return 0;
        }
        let Some(path) = path else {
            return 0;
        };
        let Some(op) = classify(k, path2) else {
            return 0;
        };
        if let Body::FChange { .. } = &k.body
            && !path2.is_some_and(|old| renamed_with_extension(old, path))
        {
            return 0;
        }
        if excluded(path) {
            return 0;
        }
        let now = k.hdr.ts_ns;
        if !self.procs.contains_key(&k.hdr.pid) && self.procs.len() >= MAX_PROCS {
            self.procs
                .retain(|_, e| now.saturating_sub(e.last_ns) < WINDOW_NS);
            if self.procs.len() >= MAX_PROCS {
                let victim = self
                    .procs
                    .iter()
                    .min_by_key(|(_, e)| e.last_ns)
                    .map(|(p, _)| *p);
                if let Some(v) = victim {
                    self.procs.remove(&v);
                }
            }
        }
        let e = self.procs.entry(k.hdr.pid).or_default();
        e.last_ns = now;
        let h = path_hash(path);
        let counts = match op {
            Op::Read => {
                if e.reads.len() >= MAX_READS {
                    // keep it bounded: forget about half
                    let keep: HashSet<u64> = e.reads.iter().copied().take(MAX_READS / 2).collect();
                    e.reads = keep;
                }
                e.reads.insert(h);
                false
            }
            Op::Truncate => e.reads.contains(&h),
            Op::Overwrite => true,
        };
        if !counts {
            return 0;
        }
        if e.paths.is_empty() || now.saturating_sub(e.window_start) >= WINDOW_NS {
            e.window_start = now;
            e.paths.clear();
        }
        if e.paths.len() < MAX_PATHS {
            e.paths.insert(h);
        }
        e.paths.len() as u32
    }

    /// Processes tracked now.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// No process tracked.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_bpf::abi::Hdr;

    fn open(pid: u32, ts: u64, flags: u32) -> KernelEvent {
        KernelEvent {
            hdr: Hdr {
                kind: kind::OPEN,
                pid,
                ts_ns: ts,
                ..Hdr::default()
            },
            body: Body::Open {
                info: abi::Open {
                    ret: 3,
                    flags,
                    ..abi::Open::default()
                },
                path: Vec::new(),
                name: Vec::new(),
            },
        }
    }

    fn rename(pid: u32, ts: u64) -> KernelEvent {
        KernelEvent {
            hdr: Hdr {
                kind: kind::FCHANGE,
                pid,
                ts_ns: ts,
                ..Hdr::default()
            },
            body: Body::FChange {
                info: abi::FChange {
                    ret: 0,
                    syscall: abi::sys::RENAMEAT2,
                    ..abi::FChange::default()
                },
                base: Vec::new(),
                name: Vec::new(),
                base2: Vec::new(),
                name2: Vec::new(),
            },
        }
    }

    #[test]
    fn counts_in_place_rewrites_and_read_then_truncate() {
        let mut t = Tracker::default();
        // O_RDWR of an existing file: counts
        assert_eq!(t.observe(&open(1, 1, O_RDWR), Some(b"/home/u/a"), None), 1);
        // the same file again: still one
        assert_eq!(t.observe(&open(1, 2, O_RDWR), Some(b"/home/u/a"), None), 1);
        // created by the open: no
        let created = O_WRONLY | 0o100 | O_TRUNC | abi::OPEN_CREATED;
        assert_eq!(
            t.observe(&open(1, 3, created), Some(b"/home/u/new"), None),
            0
        );
        // truncating an existing file not read before: no
        let trunc = O_WRONLY | 0o100 | O_TRUNC;
        assert_eq!(t.observe(&open(1, 4, trunc), Some(b"/home/u/b"), None), 0);
        // ... read first, then truncated: counts
        assert_eq!(t.observe(&open(1, 5, 0), Some(b"/home/u/c"), None), 0);
        assert_eq!(t.observe(&open(1, 6, trunc), Some(b"/home/u/c"), None), 2);
        // appends and control files never count
        assert_eq!(
            t.observe(&open(1, 7, O_WRONLY | O_APPEND), Some(b"/home/u/log"), None),
            0
        );
        assert_eq!(
            t.observe(&open(1, 8, O_WRONLY), Some(b"/sys/fs/cgroup/x"), None),
            0
        );
        assert_eq!(
            t.observe(&open(1, 9, O_RDWR), Some(b"/w/p/.git/index"), None),
            0
        );
        // another process has its own count
        assert_eq!(t.observe(&open(2, 10, O_RDWR), Some(b"/home/u/a"), None), 1);
        // a new window starts over
        assert_eq!(
            t.observe(&open(1, 11 + WINDOW_NS, O_RDWR), Some(b"/home/u/d"), None),
            1
        );
    }

    #[test]
    fn renames_count_only_when_an_extension_is_appended() {
        let mut t = Tracker::default();
        assert_eq!(
            t.observe(
                &rename(1, 1),
                Some(b"/srv/d/a.txt.locked"),
                Some(b"/srv/d/a.txt")
            ),
            1
        );
        // an atomic replace (temporary name -> real name) does not count
        assert_eq!(
            t.observe(
                &rename(1, 2),
                Some(b"/srv/d/b.txt"),
                Some(b"/srv/d/sedAbC12")
            ),
            0
        );
        assert_eq!(
            t.observe(&rename(1, 3), Some(b"/srv/d/b"), Some(b"/srv/d/b.dpkg-new")),
            0
        );
        assert!(renamed_with_extension(b"/a/x", b"/a/x.enc"));
        assert!(!renamed_with_extension(b"/a/x", b"/a/x."));
        assert!(!renamed_with_extension(b"/a/x", b"/a/x.d/y"));
        assert!(!renamed_with_extension(b"/a/x", b"/a/xy"));
    }

    #[test]
    fn state_stays_bounded() {
        let mut t = Tracker::default();
        for pid in 0..(MAX_PROCS as u32 + 100) {
            t.observe(&open(pid, u64::from(pid), O_RDWR), Some(b"/home/u/a"), None);
        }
        assert!(t.len() <= MAX_PROCS);
        let mut t = Tracker::default();
        for i in 0..(MAX_PATHS + 10) {
            let p = format!("/home/u/{i}");
            t.observe(&open(1, i as u64, O_RDWR), Some(p.as_bytes()), None);
        }
        assert_eq!(
            t.observe(&open(1, 1, O_RDWR), Some(b"/home/u/z"), None),
            MAX_PATHS as u32
        );
        // exit forgets the process
        let mut exit = open(1, 2, 0);
        exit.hdr.kind = kind::EXIT;
        exit.body = Body::Exit(abi::Exit::default());
        t.observe(&exit, None, None);
        assert!(t.is_empty());
    }
}
