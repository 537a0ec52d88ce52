//! An on-disk FIFO of encoded records for one sink: what a remote sink
//! could not take yet, kept across restarts.
//!
//! Layout of a spool directory (0700; files 0600):
//!
//! - `seg-<20-digit sequence>.spool`: append-only segments. Each starts
//!   with the 8-byte magic `VGSPOOL1`, then records, each
//!   `len: u32 LE | crc32(payload): u32 LE | payload`.
//! - `cursor`: `<sequence> <offset>\n`, where reading resumes (written to
//!   a temporary file and renamed over, so it is never torn).
//!
//! A crash can tear the last record of a segment (a partial header or
//! payload, or a checksum mismatch): opening the spool detects it, counts
//! it in [`Spool::corrupt`], and cuts the segment back to its last whole
//! record. A damaged record in the middle of a segment (bit rot) ends that
//! segment's reading: the rest of it is skipped and counted.
//!
//! The size cap counts the bytes of every segment on disk (a consumed
//! segment is deleted once fully read, and the whole spool is reset when
//! everything has been read). An append that would pass the cap is
//! refused; the caller counts it as dropped.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"VGSPOOL1";
const HDR: u64 = 8;
/// Largest record the spool accepts (a sanity bound when reading back).
pub const MAX_RECORD: usize = 16 << 20;

/// One segment file.
#[derive(Debug)]
struct Segment {
    seq: u64,
    /// Bytes in the file (magic included).
    len: u64,
    /// Records not yet read in it.
    unread: u64,
}

/// Where a batch read by [`Spool::peek`] ends; pass it to
/// [`Spool::commit`] once the batch is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    seq: u64,
    offset: u64,
    records: u64,
}

impl Position {
    /// The position before the last `tail.len()` records of the batch it
    /// ends (those records, as [`Spool::peek`] returned them): commit it
    /// when only the first records of a batch were delivered.
    pub fn without_tail(&self, tail: &[Vec<u8>]) -> Position {
        let bytes: u64 = tail.iter().map(|r| 8 + r.len() as u64).sum();
        Position {
            seq: self.seq,
            offset: self.offset - bytes,
            records: self.records - tail.len() as u64,
        }
    }
}

/// A size-capped on-disk FIFO of records.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    /// Append handle of the last segment.
    tail: Option<File>,
    /// Read handle of the first segment and the read offset in it.
    reader: Option<File>,
    read_offset: u64,
    unread: u64,
    bytes: u64,
    corrupt: u64,
    next_seq: u64,
    commits_since_save: u32,
}

fn io_ctx(e: io::Error, what: &str, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
}

impl Spool {
    /// Opens (creating it 0700 if missing) the spool in `dir`, capped at
    /// `max_bytes`; checks every segment and repairs torn tails.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        fs::create_dir_all(dir).map_err(|e| io_ctx(e, "cannot create spool directory", dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io_ctx(e, "cannot chmod 0700 spool directory", dir))?;
        let mut seqs = Vec::new();
        for ent in fs::read_dir(dir).map_err(|e| io_ctx(e, "cannot read spool directory", dir))? {
            let ent = ent?;
            let name = ent.file_name();
            let name = name.to_string_lossy();
            if let Some(seq) = name
                .strip_prefix("seg-")
                .and_then(|s| s.strip_suffix(".spool"))
                .and_then(|s| s.parse::<u64>().ok())
            {
                seqs.push(seq);
            } else if name.starts_with("cursor.tmp") {
                let _ = fs::remove_file(ent.path());
            }
        }
        seqs.sort_unstable();
        let segment_bytes = (max_bytes / 8).clamp(4096, 8 << 20);
        let mut sp = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes,
            segments: VecDeque::new(),
            tail: None,
            reader: None,
            read_offset: HDR,
            unread: 0,
            bytes: 0,
            corrupt: 0,
            next_seq: seqs.last().map_or(1 << 40, |s| s + 1),
            commits_since_save: 0,
        };
        let (cur_seq, cur_off) = sp.read_cursor();
        for seq in seqs {
            let path = sp.seg_path(seq);
            if seq < cur_seq {
                let _ = fs::remove_file(&path);
                continue;
            }
            let start = if seq == cur_seq {
                cur_off.max(HDR)
            } else {
                HDR
            };
            let (valid_len, records, torn) = scan(&path, start)?;
            if torn {
                sp.corrupt += 1;
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| io_ctx(e, "cannot repair spool segment", &path))?;
                f.set_len(valid_len)?;
            }
            if valid_len < HDR || (records == 0 && valid_len <= start) {
                // Empty or fully read.
                let _ = fs::remove_file(&path);
                continue;
            }
            if sp.segments.is_empty() {
                sp.read_offset = start;
            }
            sp.unread += records;
            sp.bytes += valid_len;
            sp.segments.push_back(Segment {
                seq,
                len: valid_len,
                unread: records,
            });
        }
        if sp.segments.is_empty() {
            sp.read_offset = HDR;
            let _ = fs::remove_file(sp.dir.join("cursor"));
        }
        Ok(sp)
    }

    fn seg_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("seg-{seq:020}.spool"))
    }

    fn read_cursor(&self) -> (u64, u64) {
        let Ok(s) = fs::read_to_string(self.dir.join("cursor")) else {
            return (0, 0);
        };
        let mut it = s.split_whitespace().map(|t| t.parse::<u64>());
        match (it.next(), it.next()) {
            (Some(Ok(a)), Some(Ok(b))) => (a, b),
            _ => (0, 0),
        }
    }

    fn save_cursor(&mut self) -> io::Result<()> {
        self.commits_since_save = 0;
        let Some(head) = self.segments.front() else {
            let _ = fs::remove_file(self.dir.join("cursor"));
            return Ok(());
        };
        let tmp = self.dir.join("cursor.tmp");
        let mut f = crate::private::open(&tmp, crate::private::How::Replace)?;
        f.write_all(format!("{} {}\n", head.seq, self.read_offset).as_bytes())?;
        drop(f);
        fs::rename(&tmp, self.dir.join("cursor"))
    }

    /// Records not yet read out.
    pub fn len(&self) -> u64 {
        self.unread
    }

    /// Whether every record has been read out.
    pub fn is_empty(&self) -> bool {
        self.unread == 0
    }

    /// Bytes on disk (segments).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Torn or damaged records found (each skipped).
    pub fn corrupt(&self) -> u64 {
        self.corrupt
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn new_segment(&mut self) -> io::Result<()> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let path = self.seg_path(seq);
        let mut f = crate::private::open(&path, crate::private::How::New)
            .map_err(|e| io_ctx(e.into(), "cannot create spool segment", &path))?;
        f.write_all(MAGIC)?;
        self.bytes += HDR;
        self.segments.push_back(Segment {
            seq,
            len: HDR,
            unread: 0,
        });
        self.tail = Some(f);
        if self.segments.len() == 1 {
            self.reader = None;
            self.read_offset = HDR;
        }
        Ok(())
    }

    /// Appends one record. `Ok(false)` when the cap would be passed (the
    /// record is not stored).
    pub fn append(&mut self, rec: &[u8]) -> io::Result<bool> {
        let need = 8 + rec.len() as u64;
        if rec.len() > MAX_RECORD {
            return Ok(false);
        }
        let roll = match self.segments.back() {
            None => true,
            Some(s) => s.len + need > self.segment_bytes && s.len > HDR,
        };
        let extra = if roll { HDR } else { 0 };
        if self.bytes + need + extra > self.max_bytes {
            return Ok(false);
        }
        if roll {
            self.new_segment()?;
        }
        if self.tail.is_none() {
            let path = self.seg_path(self.segments.back().expect("a segment").seq);
            self.tail = Some(OpenOptions::new().append(true).open(&path)?);
        }
        let mut buf = Vec::with_capacity(rec.len() + 8);
        buf.extend_from_slice(&(rec.len() as u32).to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(rec).to_le_bytes());
        buf.extend_from_slice(rec);
        // One write of the whole record: a crash tears at most this one.
        self.tail.as_mut().expect("tail").write_all(&buf)?;
        let tail = self.segments.back_mut().expect("a segment");
        tail.len += need;
        tail.unread += 1;
        self.bytes += need;
        self.unread += 1;
        Ok(true)
    }

    /// Reads up to `max_records` / about `max_bytes` of the oldest unread
    /// records (from one segment) into `out`, without consuming them.
    /// Returns where they end, or `None` when the spool is empty.
    pub fn peek(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Vec<u8>>,
    ) -> io::Result<Option<Position>> {
        loop {
            let Some(head) = self.segments.front() else {
                return Ok(None);
            };
            let (seq, len) = (head.seq, head.len);
            if self.read_offset >= len {
                if self.segments.len() == 1 {
                    return Ok(None);
                }
                self.drop_head()?;
                continue;
            }
            if self.reader.is_none() {
                self.reader = Some(File::open(self.seg_path(seq))?);
            }
            let r = self.reader.as_mut().expect("reader");
            r.seek(SeekFrom::Start(self.read_offset))?;
            let mut off = self.read_offset;
            let mut n = 0u64;
            let mut bytes = 0usize;
            let mut damaged = false;
            while off < len && (n as usize) < max_records && bytes < max_bytes {
                let mut h = [0u8; 8];
                if off + 8 > len || r.read_exact(&mut h).is_err() {
                    damaged = true;
                    break;
                }
                let rl = u32::from_le_bytes(h[..4].try_into().expect("4")) as u64;
                let crc = u32::from_le_bytes(h[4..].try_into().expect("4"));
                if rl as usize > MAX_RECORD || off + 8 + rl > len {
                    damaged = true;
                    break;
                }
                let mut p = vec![0u8; rl as usize];
                if r.read_exact(&mut p).is_err() || crc32fast::hash(&p) != crc {
                    damaged = true;
                    break;
                }
                bytes += p.len();
                out.push(p);
                off += 8 + rl;
                n += 1;
            }
            if damaged && n == 0 {
                // Skip the rest of this segment: we cannot find the next
                // record boundary.
                self.corrupt += 1;
                let head = self.segments.front_mut().expect("head");
                self.unread = self.unread.saturating_sub(head.unread);
                head.unread = 0;
                if self.segments.len() == 1 {
                    self.reset()?;
                    return Ok(None);
                }
                self.drop_head()?;
                continue;
            }
            return Ok(Some(Position {
                seq,
                offset: off,
                records: n,
            }));
        }
    }

    /// Consumes the records a [`Spool::peek`] returned (they were
    /// delivered).
    pub fn commit(&mut self, pos: Position) -> io::Result<()> {
        match self.segments.front() {
            Some(h) if h.seq == pos.seq => {}
            _ => return Ok(()),
        }
        self.read_offset = pos.offset;
        self.unread = self.unread.saturating_sub(pos.records);
        if let Some(h) = self.segments.front_mut() {
            h.unread = h.unread.saturating_sub(pos.records);
        }
        if self.unread == 0 {
            // Everything delivered: start afresh (frees the space at once).
            self.reset()?;
            return Ok(());
        }
        let head_len = self.segments.front().map_or(0, |h| h.len);
        if self.read_offset >= head_len && self.segments.len() > 1 {
            self.drop_head()?;
            return self.save_cursor();
        }
        self.commits_since_save += 1;
        if self.commits_since_save >= 64 {
            self.save_cursor()?;
        }
        Ok(())
    }

    fn drop_head(&mut self) -> io::Result<()> {
        if let Some(h) = self.segments.pop_front() {
            self.bytes = self.bytes.saturating_sub(h.len);
            let _ = fs::remove_file(self.seg_path(h.seq));
        }
        self.reader = None;
        self.read_offset = HDR;
        if self.segments.is_empty() {
            self.tail = None;
        }
        Ok(())
    }

    fn reset(&mut self) -> io::Result<()> {
        while !self.segments.is_empty() {
            self.drop_head()?;
        }
        self.bytes = 0;
        self.unread = 0;
        self.save_cursor()
    }

    /// Puts `recs` (older than everything spooled) in front of the spool,
    /// as many as the cap allows, oldest first; returns how many (the
    /// caller counts the rest as dropped). Used when a link goes down and
    /// at shutdown for records still in memory. The head segment is
    /// rewritten (temporary file, fsync, rename) as `recs` followed by its
    /// unread records.
    pub fn prepend<'r>(&mut self, recs: impl IntoIterator<Item = &'r [u8]>) -> io::Result<u64> {
        // Bytes on disk once the head segment is rewritten without its
        // already-read part; the cap applies to the result.
        let after = match self.segments.front() {
            Some(h) => self.bytes - (self.read_offset.min(h.len) - HDR),
            None => HDR,
        };
        let mut budget = self.max_bytes.saturating_sub(after);
        let mut buf = Vec::new();
        buf.extend_from_slice(MAGIC);
        let mut n = 0u64;
        for r in recs {
            let need = 8 + r.len() as u64;
            if need > budget || r.len() > MAX_RECORD {
                break; // the oldest that fit are kept, in order
            }
            budget -= need;
            buf.extend_from_slice(&(r.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(r).to_le_bytes());
            buf.extend_from_slice(r);
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        let (seq, old_len) = match self.segments.front() {
            Some(h) => {
                let mut f = File::open(self.seg_path(h.seq))?;
                f.seek(SeekFrom::Start(self.read_offset))?;
                f.read_to_end(&mut buf)?;
                (h.seq, h.len)
            }
            None => {
                let s = self.next_seq;
                self.next_seq += 1;
                (s, 0)
            }
        };
        let tmp = self.dir.join("seg.tmp");
        let mut f = crate::private::open(&tmp, crate::private::How::Replace)?;
        f.write_all(&buf)?;
        f.sync_data()?;
        drop(f);
        fs::rename(&tmp, self.seg_path(seq))?;
        let new_len = buf.len() as u64;
        match self.segments.front_mut() {
            Some(h) => {
                h.len = new_len;
                h.unread += n;
            }
            None => self.segments.push_back(Segment {
                seq,
                len: new_len,
                unread: n,
            }),
        }
        self.bytes = self.bytes - old_len + new_len;
        self.unread += n;
        self.read_offset = HDR;
        self.reader = None;
        self.tail = None; // reopened on the next append (the file was replaced)
        self.save_cursor()?;
        Ok(n)
    }

    /// Persists the read position and flushes the last segment to disk.
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(t) = self.tail.as_mut() {
            t.sync_data()?;
        }
        self.save_cursor()
    }
}

/// Scans a segment from `start`: (valid length, whole records after
/// `start`, whether a torn or damaged record was found).
fn scan(path: &Path, start: u64) -> io::Result<(u64, u64, bool)> {
    let mut f = File::open(path).map_err(|e| io_ctx(e, "cannot open spool segment", path))?;
    let len = f.metadata()?.len();
    let mut magic = [0u8; 8];
    if len < HDR || f.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Ok((0, 0, len > 0));
    }
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    let mut off = 0usize;
    let mut records = 0u64;
    let start = start.saturating_sub(HDR) as usize;
    while off < data.len() {
        if off + 8 > data.len() {
            return Ok((HDR + off as u64, records, true));
        }
        let rl = u32::from_le_bytes(data[off..off + 4].try_into().expect("4")) as usize;
        let crc = u32::from_le_bytes(data[off + 4..off + 8].try_into().expect("4"));
        if rl > MAX_RECORD
            || off + 8 + rl > data.len()
            || crc32fast::hash(&data[off + 8..off + 8 + rl]) != crc
        {
            return Ok((HDR + off as u64, records, true));
        }
        if off >= start {
            records += 1;
        }
        off += 8 + rl;
    }
    Ok((HDR + off as u64, records, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "vigil-spool-test-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn drain(sp: &mut Spool) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        loop {
            let mut b = Vec::new();
            match sp.peek(7, 1 << 20, &mut b).unwrap() {
                None => break,
                Some(pos) => {
                    all.extend(b);
                    sp.commit(pos).unwrap();
                }
            }
        }
        all
    }

    #[test]
    fn fifo_across_segments_and_reopen() {
        let d = tmpdir("fifo");
        let mut sp = Spool::open(&d, 64 << 10).unwrap();
        let recs: Vec<Vec<u8>> = (0..500)
            .map(|i| format!("record {i:04}").into_bytes())
            .collect();
        for r in &recs {
            assert!(sp.append(r).unwrap());
        }
        assert!(sp.segments.len() > 1, "rolled segments");
        // read 100, persist, reopen: the rest come back in order
        let mut got = Vec::new();
        while got.len() < 100 {
            let mut b = Vec::new();
            let pos = sp.peek(10, 1 << 20, &mut b).unwrap().unwrap();
            got.extend(b);
            sp.commit(pos).unwrap();
        }
        sp.sync().unwrap();
        drop(sp);
        let mut sp = Spool::open(&d, 64 << 10).unwrap();
        assert_eq!(sp.len(), 400);
        got.extend(drain(&mut sp));
        assert_eq!(got, recs);
        assert!(sp.is_empty());
        assert_eq!(sp.bytes(), 0);
        let mode = fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        sp.append(b"x").unwrap();
        sp.sync().unwrap();
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o600, "{:?}", e.file_name());
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn cap_refuses_exactly() {
        let d = tmpdir("cap");
        // one segment: 8 magic + n * (8 + 92) <= 4096 -> 40 records
        let mut sp = Spool::open(&d, 4096).unwrap();
        let rec = [b'x'; 92];
        let stored = (0..100).filter(|_| sp.append(&rec).unwrap()).count();
        assert_eq!(stored, 40);
        assert_eq!(sp.bytes(), 8 + 40 * 100);
        assert_eq!(drain(&mut sp).len(), 40);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn torn_tail_is_cut_and_counted() {
        let d = tmpdir("torn");
        let mut sp = Spool::open(&d, 1 << 20).unwrap();
        for i in 0..10 {
            sp.append(format!("r{i}").as_bytes()).unwrap();
        }
        let seg = sp.seg_path(sp.segments[0].seq);
        drop(sp);
        // a crash mid-write: half a header, then a record with a bad checksum
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[5, 0, 0, 0, 1, 2, 3, 4, b'a', b'b']).unwrap();
        drop(f);
        let mut sp = Spool::open(&d, 1 << 20).unwrap();
        assert_eq!(sp.corrupt(), 1);
        assert_eq!(sp.len(), 10);
        sp.append(b"after").unwrap();
        let got = drain(&mut sp);
        assert_eq!(got.len(), 11);
        assert_eq!(got[10], b"after");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn partial_commit() {
        let d = tmpdir("partial");
        let mut sp = Spool::open(&d, 1 << 20).unwrap();
        for i in 0..5 {
            sp.append(format!("r{i}").as_bytes()).unwrap();
        }
        let mut b = Vec::new();
        let pos = sp.peek(5, 1 << 20, &mut b).unwrap().unwrap();
        sp.commit(pos.without_tail(&b[2..])).unwrap();
        assert_eq!(sp.len(), 3);
        let got = drain(&mut sp);
        assert_eq!(got, [b"r2".to_vec(), b"r3".to_vec(), b"r4".to_vec()]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn prepend_respects_the_cap() {
        let d = tmpdir("prepend-cap");
        let mut sp = Spool::open(&d, 4096).unwrap();
        for _ in 0..20 {
            assert!(sp.append(&[b's'; 92]).unwrap());
        }
        // 8 + 20 * 100 used; room for 20 more records of 100 bytes
        let mem: Vec<Vec<u8>> = (0..30).map(|i| vec![i as u8; 92]).collect();
        let n = sp.prepend(mem.iter().map(|v| v.as_slice())).unwrap();
        assert_eq!(n, 20);
        assert!(sp.bytes() <= 4096);
        let got = drain(&mut sp);
        assert_eq!(got.len(), 40);
        assert_eq!(got[0], vec![0u8; 92]);
        assert_eq!(got[19], vec![19u8; 92]);
        assert_eq!(got[20], vec![b's'; 92]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn prepend_goes_first() {
        let d = tmpdir("prepend");
        let mut sp = Spool::open(&d, 1 << 20).unwrap();
        for i in 0..5 {
            sp.append(format!("s{i}").as_bytes()).unwrap();
        }
        let mut b = Vec::new();
        let pos = sp.peek(2, 1 << 20, &mut b).unwrap().unwrap();
        sp.commit(pos).unwrap();
        let mem: Vec<Vec<u8>> = vec![b"m0".to_vec(), b"m1".to_vec()];
        sp.prepend(mem.iter().map(|v| v.as_slice())).unwrap();
        sp.append(b"s5").unwrap();
        sp.sync().unwrap();
        drop(sp);
        let mut sp = Spool::open(&d, 1 << 20).unwrap();
        let got: Vec<String> = drain(&mut sp)
            .into_iter()
            .map(|v| String::from_utf8(v).unwrap())
            .collect();
        assert_eq!(got, ["m0", "m1", "s2", "s3", "s4", "s5"]);
        fs::remove_dir_all(&d).unwrap();
    }
}
