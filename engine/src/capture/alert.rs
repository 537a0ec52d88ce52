//! A capture around each alert: the last `capture.before_s` seconds of raw
//! records are kept in a bounded ring in memory; an alert (every alert, or
//! only those of rules marked `capture: true`) writes them, and the records
//! of the next `capture.after_s` seconds, to a capture file that `vigil
//! replay` reads ([`mod@super::format`]). Files are 0600 in
//! `<data_dir>/captures` (0700); one is started at most every
//! `capture.min_interval_s` (an alert meanwhile names the capture being
//! written, or none); the directory is kept under `capture.max_dir_bytes`
//! by deleting the oldest captures, and each file stops at a quarter of it.

use super::format::{CaptureWriter, Context};
use std::collections::VecDeque;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Settings.
#[derive(Debug, Clone)]
pub struct CaptureSettings {
    /// Directory of the capture files.
    pub dir: PathBuf,
    /// Seconds of records kept before an alert.
    pub before_ns: u64,
    /// Seconds of records written after it.
    pub after_ns: u64,
    /// Bytes the ring holds at most.
    pub ring_bytes: usize,
    /// Bytes all capture files hold at most.
    pub max_dir_bytes: u64,
    /// A new capture at most this often.
    pub min_interval_ns: u64,
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Capture files written.
    pub files: u64,
    /// Alerts that started no capture because one had started less than
    /// `min_interval_s` before (and had ended).
    pub rate_limited: u64,
    /// Old capture files deleted to stay under the size cap.
    pub deleted: u64,
    /// Records not written because a file reached its size bound.
    pub truncated: u64,
    /// Capture files that could not be written (the first error is kept).
    pub errors: u64,
    /// The first write error.
    pub first_error: Option<String>,
}

struct Active {
    w: CaptureWriter,
    path: Arc<str>,
    until_ns: u64,
    bytes: u64,
}

/// The ring and the capture being written.
pub struct AlertCapture {
    cfg: CaptureSettings,
    ctx: Context,
    ring: VecDeque<(u64, Vec<u8>)>,
    ring_size: usize,
    active: Option<Active>,
    last_start_ns: Option<u64>,
    /// Counters.
    pub stats: CaptureStats,
}

impl AlertCapture {
    /// A capture keeper writing into `cfg.dir` (created 0700 on first use).
    pub fn new(cfg: CaptureSettings, ctx: Context) -> AlertCapture {
        AlertCapture {
            cfg,
            ctx,
            ring: VecDeque::new(),
            ring_size: 0,
            active: None,
            last_start_ns: None,
            stats: CaptureStats::default(),
        }
    }

    /// Records in the ring now.
    pub fn ring_len(&self) -> usize {
        self.ring.len()
    }

    fn file_cap(&self) -> u64 {
        (self.cfg.max_dir_bytes / 4).max(4096)
    }

    /// Keeps one raw record (boot-clock time `ts_ns`); writes it to the
    /// capture being written.
    pub fn push(&mut self, ts_ns: u64, sample: &[u8]) {
        self.close_if_due(ts_ns);
        let cap = self.file_cap();
        if let Some(a) = self.active.as_mut() {
            if a.bytes + sample.len() as u64 + 5 > cap {
                self.stats.truncated += 1;
            } else {
                a.bytes += sample.len() as u64 + 5;
                if let Err(e) = a.w.record(sample) {
                    note_err(&mut self.stats, e.to_string());
                }
            }
        }
        self.ring.push_back((ts_ns, sample.to_vec()));
        self.ring_size += sample.len();
        let oldest = ts_ns.saturating_sub(self.cfg.before_ns);
        while let Some((t, s)) = self.ring.front() {
            if self.ring_size > self.cfg.ring_bytes || *t < oldest {
                self.ring_size -= s.len();
                self.ring.pop_front();
            } else {
                break;
            }
        }
    }

    /// Ends the capture being written once its time is over.
    pub fn close_if_due(&mut self, now_ns: u64) {
        if self.active.as_ref().is_some_and(|a| now_ns >= a.until_ns) {
            self.close();
        }
    }

    /// Ends the capture being written (shutdown).
    pub fn close(&mut self) {
        if let Some(mut a) = self.active.take()
            && let Err(e) = a.w.flush()
        {
            note_err(&mut self.stats, e.to_string());
        }
    }

    /// An alert at boot-clock `now_ns`: the path of the capture that holds
    /// it (started now with the ring's records, or the one being written),
    /// None when rate-limited or not writable.
    pub fn on_alert(&mut self, now_ns: u64) -> Option<Arc<str>> {
        self.close_if_due(now_ns);
        if let Some(a) = &self.active {
            return Some(a.path.clone());
        }
        if let Some(t) = self.last_start_ns
            && now_ns.saturating_sub(t) < self.cfg.min_interval_ns
        {
            self.stats.rate_limited += 1;
            return None;
        }
        self.last_start_ns = Some(now_ns);
        match self.start(now_ns) {
            Ok(p) => Some(p),
            Err(e) => {
                note_err(&mut self.stats, e);
                None
            }
        }
    }

    fn start(&mut self, now_ns: u64) -> Result<Arc<str>, String> {
        let dir = self.cfg.dir.clone();
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let want: u64 = self.ring_size as u64 + 5 * self.ring.len() as u64 + 4096;
        let want = want.min(self.file_cap());
        self.make_room(want);
        let unix = crate::host::boot_offset_ns() + now_ns as i64;
        let path = dir.join(format!("alert-{unix}.vgcap"));
        let mut w = CaptureWriter::create(&path, &self.ctx).map_err(|e| e.to_string())?;
        let mut bytes = 0u64;
        for (_, s) in &self.ring {
            if bytes + s.len() as u64 + 5 > self.file_cap() {
                self.stats.truncated += 1;
                continue;
            }
            bytes += s.len() as u64 + 5;
            w.record(s).map_err(|e| e.to_string())?;
        }
        self.stats.files += 1;
        let p: Arc<str> = path.display().to_string().into();
        self.active = Some(Active {
            w,
            path: p.clone(),
            until_ns: now_ns + self.cfg.after_ns,
            bytes,
        });
        Ok(p)
    }

    /// Deletes the oldest captures until `want` more bytes fit under the cap.
    fn make_room(&mut self, want: u64) {
        let mut files: Vec<(i64, u64, PathBuf)> = match std::fs::read_dir(&self.cfg.dir) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".vgcap"))
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    Some((m.mtime(), m.size(), e.path()))
                })
                .collect(),
            Err(_) => return,
        };
        files.sort();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        for (_, size, p) in files {
            if total + want <= self.cfg.max_dir_bytes {
                break;
            }
            if std::fs::remove_file(&p).is_ok() {
                total -= size;
                self.stats.deleted += 1;
            }
        }
    }
}

fn note_err(s: &mut CaptureStats, e: String) {
    s.errors += 1;
    if s.first_error.is_none() {
        s.first_error = Some(e);
    }
}

/// Bytes of the capture files in `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".vgcap"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.size())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            abi_version: vigil_bpf::abi::ABI_VERSION,
            vigil_version: "t".into(),
            hostname: "h".into(),
            boot_offset_ns: 0,
            users: Default::default(),
        }
    }

    #[test]
    fn ring_keeps_the_window_and_the_dir_stays_under_its_cap() {
        let dir = std::env::temp_dir().join(format!("vigil-cap-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut c = AlertCapture::new(
            CaptureSettings {
                dir: dir.clone(),
                before_ns: 1_000,
                after_ns: 100,
                ring_bytes: 1 << 20,
                max_dir_bytes: 64 * 1024,
                min_interval_ns: 0,
            },
            ctx(),
        );
        for t in 0..100u64 {
            c.push(t * 100, &[7u8; 100]);
        }
        // 1000 ns of 100-ns-spaced records: 11 kept
        assert_eq!(c.ring_len(), 11);
        let mut paths = std::collections::BTreeSet::new();
        for i in 0..50u64 {
            let now = 20_000 + i * 1_000;
            c.push(now, &[1u8; 2000]);
            paths.insert(c.on_alert(now).expect("a capture").to_string());
            assert!(
                dir_bytes(&dir) <= 64 * 1024 + 16 * 1024,
                "cap (one open file may be unflushed)"
            );
        }
        c.close();
        assert!(paths.len() > 10, "{}", paths.len());
        assert!(dir_bytes(&dir) <= 64 * 1024, "{}", dir_bytes(&dir));
        assert!(c.stats.deleted > 0);
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
