//! DNS names per process: how many distinct names one process (or the
//! children of one parent together) asked for in a short window
//! (`vigil.dns.distinct_names`), and how many of them look generated
//! (`vigil.dns.random_names`), the shape of a domain generation algorithm
//! (DGA) trying names until one resolves, or of data tunnelled through
//! queries.
//!
//! Only queries count (records the `dns` sensor saw sent to port 53 whose
//! message parsed), by their first question's name; reverse lookups
//! (`.arpa`) never count. A query counts for its process and for its
//! parent, so a script that runs `dig` or `host` once per name is counted
//! as one (unless the parent is pid 1 or unknown). The reported value is
//! the larger of the two counts, and it is reported only on the query that
//! added a name not seen before in that window (a repeated name reports
//! nothing).
//!
//! A name looks generated ([`looks_generated`]) when its longest label but
//! the last (the top-level domain) has 10 to 63 characters, all lower-case
//! letters and digits, and either fewer than 30 % of its letters are vowels
//! (`aeiouy`) or it holds a run of 4 consonants: random strings of letters
//! and digits mostly do, names people choose seldom do.
//!
//! State is bounded: at most [`MAX_PROCS`] processes and [`MAX_NAMES`] name
//! hashes per process and window; a window ends [`WINDOW_NS`] after its
//! first counted name; a process's entry goes at its exit.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// Length of a counting window (boot ns).
pub const WINDOW_NS: u64 = 60_000_000_000;
/// Processes tracked at once (past it, expired and then the least recently
/// used entries go).
pub const MAX_PROCS: usize = 4096;
/// Distinct names remembered per process and window (the count stops
/// growing past it).
pub const MAX_NAMES: usize = 1024;

#[derive(Default)]
struct Entry {
    window_start: u64,
    names: HashSet<u64>,
    random: u32,
    last_ns: u64,
}

impl Entry {
    /// Adds a name; whether it was new in the window.
    fn add(&mut self, now: u64, h: u64, generated: bool) -> bool {
        self.last_ns = now;
        if self.names.is_empty() || now.saturating_sub(self.window_start) >= WINDOW_NS {
            self.window_start = now;
            self.names.clear();
            self.random = 0;
        }
        if self.names.len() >= MAX_NAMES || !self.names.insert(h) {
            return false;
        }
        if generated {
            self.random += 1;
        }
        true
    }
}

/// Counts of one query: distinct names and generated-looking names in the
/// window (0, 0 when the query added no new name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Distinct names (`vigil.dns.distinct_names`).
    pub distinct: u32,
    /// Of those, names that look generated (`vigil.dns.random_names`).
    pub random: u32,
}

/// The per-process name counters.
#[derive(Default)]
pub struct Tracker {
    procs: HashMap<u32, Entry>,
}

fn name_hash(p: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
}

/// The name looks machine-generated (see the module documentation).
pub fn looks_generated(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let Some(label) = labels[..labels.len() - 1].iter().max_by_key(|l| l.len()) else {
        return false;
    };
    let b = label.as_bytes();
    if b.len() < 10
        || b.len() > 63
        || !b
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return false;
    }
    let vowel = |c: u8| b"aeiouy".contains(&c);
    let letters = b.iter().filter(|c| c.is_ascii_lowercase()).count();
    let vowels = b.iter().filter(|c| vowel(**c)).count();
    let mut run = 0;
    let mut longest = 0;
    for &c in b {
        if c.is_ascii_lowercase() && !vowel(c) {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    letters > 0 && (vowels * 10 < letters * 3 || longest >= 4)
}

impl Tracker {
    /// Forgets a process (its exit).
    pub fn exit(&mut self, pid: u32) {
        self.procs.remove(&pid);
    }

    fn make_room(&mut self, pid: u32, now: u64) {
        if self.procs.contains_key(&pid) || self.procs.len() < MAX_PROCS {
            return;
        }
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

    /// Feeds one DNS query of `name` by process `pid` (parent `ppid`, 0
    /// when unknown) at `now` (boot ns); returns the counts when the name
    /// was new in the window of the process or of its parent.
    pub fn query(&mut self, pid: u32, ppid: u32, name: &str, now: u64) -> Counts {
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() || name == "arpa" || name.ends_with(".arpa") {
            return Counts::default();
        }
        let h = name_hash(name.as_bytes());
        let generated = looks_generated(name);
        let mut new = false;
        let mut best = Counts::default();
        let parent = if ppid == pid { 0 } else { ppid };
        for p in [pid, parent] {
            if p <= 1 {
                continue;
            }
            self.make_room(p, now);
            let e = self.procs.entry(p).or_default();
            new |= e.add(now, h, generated);
            best.distinct = best.distinct.max(e.names.len() as u32);
            best.random = best.random.max(e.random);
        }
        if new { best } else { Counts::default() }
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

    #[test]
    fn generated_names() {
        for n in [
            "qxvbkwzrtml.com",
            "kjhgfdsawq.net",
            "d2gr4hsqr0kuyq.cloudfront.net",
            "xkcdqwrtzp.example.org.",
        ] {
            assert!(looks_generated(n), "{n}");
        }
        for n in [
            "deb.debian.org",
            "files.pythonhosted.org",
            "objects.githubusercontent.com",
            "registry.npmjs.org",
            "static.crates.io",
            "safebrowsing.googleapis.com",
            "localhost",
            "com",
            "a-b-c-d-e-f-g.example.com",
            "QXVBKWZRTML.com",
            "",
        ] {
            assert!(!looks_generated(n), "{n}");
        }
    }

    #[test]
    fn counts_distinct_names_per_process_and_parent() {
        let mut t = Tracker::default();
        let c = t.query(10, 5, "a.example.com", 1);
        assert_eq!(
            c,
            Counts {
                distinct: 1,
                random: 0
            }
        );
        // A and AAAA of the same name: no new name, nothing reported
        assert_eq!(t.query(10, 5, "a.example.com", 2), Counts::default());
        assert_eq!(t.query(10, 5, "a.example.com.", 2), Counts::default());
        // reverse lookups never count
        assert_eq!(
            t.query(10, 5, "1.0.0.127.in-addr.arpa", 3),
            Counts::default()
        );
        // one child per name (dig in a loop): the parent's count grows
        for (i, n) in ["qxvbkwzrtml.com", "kjhgfdsawq.net", "zzpqrtvwxb.org"]
            .iter()
            .enumerate()
        {
            let c = t.query(20 + i as u32, 5, n, 10 + i as u64);
            assert_eq!(c.distinct, 2 + i as u32, "{n}");
            assert_eq!(c.random, 1 + i as u32, "{n}");
        }
        // pid 1 (orphans) is never a parent that sums its children
        assert_eq!(t.query(30, 1, "b.example.com", 20).distinct, 1);
        assert_eq!(t.query(31, 1, "c.example.com", 21).distinct, 1);
        // a new window starts over
        let c = t.query(10, 5, "d.example.com", 1 + WINDOW_NS);
        assert_eq!(c.distinct, 1);
        // exit forgets the process
        t.exit(10);
        assert_eq!(t.query(10, 0, "d.example.com", 2 + WINDOW_NS).distinct, 1);
    }

    #[test]
    fn state_stays_bounded() {
        let mut t = Tracker::default();
        for pid in 2..(MAX_PROCS as u32 + 100) {
            t.query(pid, 0, "a.example.com", u64::from(pid));
        }
        assert!(t.len() <= MAX_PROCS);
        let mut t = Tracker::default();
        for i in 0..(MAX_NAMES + 10) {
            t.query(7, 0, &format!("n{i}.example.com"), i as u64);
        }
        assert_eq!(t.procs[&7].names.len(), MAX_NAMES);
        assert_eq!(t.query(7, 0, "z.example.com", 5), Counts::default());
        t.exit(7);
        assert!(t.is_empty());
    }
}
