//! vigil's outputs: encoders apart from transports (Vector's habit).
//!
//! - [`Record`] is what the engine hands over per alert, event or metric:
//!   borrowed fields plus the pre-encoded ECS JSON ([`json::Writer`]).
//! - [`encode`] turns a record into one message: JSON (passthrough), RFC
//!   5424, RFC 3164 or CEF, with each format's escaping and a size cap.
//! - [`transport`] delivers messages: stdout, a rotated file, a local
//!   syslog socket, UDP, TCP or TLS (rustls), with RFC 6587 framing, or
//!   RELP (acknowledged).
//! - [`SinkHandle`] runs one sink behind a bounded queue, a memory buffer
//!   and an on-disk [`spool`], on its own threads; [`Outputs`] fans a
//!   record out to every sink parsed from `--output` URLs ([`url`]).
//! - [`metrics`] is a small Prometheus registry and `/metrics` server;
//!   [`ratelimit`] a per-rule token bucket with suppression summaries.
//!
//! The old synchronous [`Sink`] trait and [`JsonLines`] remain for callers
//! that write JSON lines directly (replay, benchmarks).

#![deny(missing_docs)]

pub mod encode;
pub mod json;
pub mod metrics;
pub mod private;
pub mod ratelimit;
pub mod record;
pub mod sink;
pub mod spool;
pub mod transport;
pub mod url;

pub use encode::{Encoder, EncoderConfig, Format};
pub use record::{Kind, Record, Severity, Value};
pub use sink::{Filter, SinkConfig, SinkHandle, SinkStats, Submitted};
pub use url::UrlError;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every configured sink; what the engine holds.
///
/// ```no_run
/// use std::time::Duration;
/// use vigil_outputs::{Kind, Outputs, Record, Severity};
/// let outs = Outputs::open(
///     &["stdout", "syslog+tcp://127.0.0.1:6514?format=rfc5424&min_severity=medium"],
///     Some(std::path::Path::new("/var/lib/vigil/spool")),
/// )?;
/// outs.submit(&Record { kind: Kind::Alert, severity: Severity::High, ..Record::default() });
/// for s in outs.shutdown(Duration::from_secs(5)) {
///     eprintln!("{}: sent {} spooled {} dropped {}", s.url, s.sent, s.spooled, s.dropped());
/// }
/// # Ok::<(), vigil_outputs::OutputError>(())
/// ```
#[derive(Default)]
pub struct Outputs {
    sinks: Vec<SinkHandle>,
}

impl Outputs {
    /// Parses every URL (the first bad one is the error, naming it) and
    /// starts the sinks. Network sinks spool under `spool_root` (one
    /// subdirectory per URL, [`sink::spool_dir_for`]); without it they
    /// keep only their memory buffer.
    pub fn open<S: AsRef<str>>(
        urls: &[S],
        spool_root: Option<&Path>,
    ) -> Result<Outputs, OutputError> {
        let cfgs = urls
            .iter()
            .map(|u| url::parse(u.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut outs = Outputs::default();
        for c in cfgs {
            outs.sinks.push(SinkHandle::start(c, spool_root)?);
        }
        Ok(outs)
    }

    /// Adds a started sink.
    pub fn add(&mut self, sink: SinkHandle) {
        self.sinks.push(sink);
    }

    /// The sinks.
    pub fn sinks(&self) -> &[SinkHandle] {
        &self.sinks
    }

    /// Offers `rec` to every sink (each filters, encodes and enqueues it;
    /// never blocks). Returns how many sinks queued it.
    pub fn submit(&self, rec: &Record) -> usize {
        self.sinks
            .iter()
            .filter(|s| s.submit(rec) == Submitted::Queued)
            .count()
    }

    /// Hands every sink's staged records to its intake thread now
    /// ([`SinkHandle::flush_staged`]): call at the end of a batch of
    /// submits; records not flushed are taken within
    /// [`sink::STAGE_WAIT`] anyway.
    pub fn flush_staged(&self) {
        for s in &self.sinks {
            s.flush_staged();
        }
    }

    /// Whether any sink reads [`Record::fields`] of a record of `kind` and
    /// `severity` whose pre-encoded JSON is `json_len` bytes long
    /// ([`SinkHandle::reads_fields`]): when none does, a caller may submit
    /// the record with no fields and skip building them.
    pub fn reads_fields(&self, kind: Kind, severity: Severity, json_len: usize) -> bool {
        self.sinks
            .iter()
            .any(|s| s.reads_fields(kind, severity, json_len))
    }

    /// Reopens every file output (SIGHUP: logrotate's `postrotate`);
    /// see [`SinkHandle::reopen`].
    pub fn reopen(&self) {
        for s in &self.sinks {
            s.reopen();
        }
    }

    /// Every sink's counters.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.sinks.iter().map(SinkHandle::stats).collect()
    }

    /// Records dropped by all sinks so far (queue full, spool full,
    /// shutdown): the engine turns increases into a metric record.
    pub fn dropped(&self) -> u64 {
        self.sinks.iter().map(|s| s.stats().dropped()).sum()
    }

    /// Publishes every sink's counters in `reg` (read at each scrape).
    pub fn register_metrics(&self, reg: &metrics::Registry) {
        for s in &self.sinks {
            s.register_metrics(reg);
        }
    }

    /// Stops every sink, giving them `timeout` in total to deliver what
    /// is queued (sinks stop in parallel); what is left goes to the spool.
    pub fn shutdown(self, timeout: Duration) -> Vec<SinkStats> {
        let handles: Vec<_> = self
            .sinks
            .into_iter()
            .map(|s| std::thread::spawn(move || s.shutdown(timeout)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    }
}

/// A transport for encoded records.
pub trait Sink: Send {
    /// Writes one encoded record (without trailing newline).
    fn write_record(&mut self, record: &[u8]) -> io::Result<()>;
    /// Writes the one record `encode` appends to the buffer it is given
    /// (without trailing newline; what the buffer held before is not
    /// touched). A sink with its own buffer ([`JsonLines`]) lets the
    /// encoder write into it, without a copy; this default encodes into
    /// a buffer of its own and calls [`Sink::write_record`].
    fn append_record(&mut self, encode: &mut dyn FnMut(&mut Vec<u8>)) -> io::Result<()> {
        let mut v = Vec::new();
        encode(&mut v);
        self.write_record(&v)
    }
    /// Flushes buffered records.
    fn flush(&mut self) -> io::Result<()>;
    /// Human description (`stdout`, `file:/var/log/vigil.json`).
    fn describe(&self) -> String;
}

/// JSON lines to any writer, buffered: records are appended to one
/// buffer (by [`Sink::append_record`], straight from the encoder), which
/// goes to the writer in one `write` once it holds [`JsonLines::BATCH`]
/// bytes or more, and on [`Sink::flush`] and drop.
pub struct JsonLines {
    buf: Vec<u8>,
    out: Box<dyn Write + Send>,
    what: String,
}

impl JsonLines {
    /// How many bytes are collected before they are written (64 KiB).
    pub const BATCH: usize = 64 << 10;

    /// JSON lines on standard output.
    pub fn stdout() -> JsonLines {
        JsonLines::writer(Box::new(io::stdout()), "stdout")
    }

    /// JSON lines appended to `path`, created with mode 0600 (an existing
    /// file keeps its mode but must not be group/world accessible).
    pub fn file(path: &Path) -> Result<JsonLines, OutputError> {
        let f = transport::open_private(path)?;
        Ok(JsonLines::writer(
            Box::new(f),
            &format!("file:{}", path.display()),
        ))
    }

    /// JSON lines into an arbitrary writer (tests, benchmarks).
    pub fn writer(w: Box<dyn Write + Send>, what: &str) -> JsonLines {
        JsonLines {
            buf: Vec::with_capacity(Self::BATCH + (16 << 10)),
            out: w,
            what: what.into(),
        }
    }

    /// Writes out the buffer when it holds a batch: before a record is
    /// added, so a record is either refused (the error) or kept.
    fn make_room(&mut self) -> io::Result<()> {
        if self.buf.len() >= Self::BATCH {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Writes the buffer out; what the writer took leaves it even when a
    /// later write fails (kept: the rest).
    fn flush_buf(&mut self) -> io::Result<()> {
        let mut done = 0;
        let r = loop {
            if done == self.buf.len() {
                break Ok(());
            }
            match self.out.write(&self.buf[done..]) {
                Ok(0) => {
                    break Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write the buffered records",
                    ));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.buf.drain(..done);
        r
    }
}

impl Sink for JsonLines {
    fn write_record(&mut self, record: &[u8]) -> io::Result<()> {
        self.make_room()?;
        self.buf.extend_from_slice(record);
        self.buf.push(b'\n');
        Ok(())
    }
    fn append_record(&mut self, encode: &mut dyn FnMut(&mut Vec<u8>)) -> io::Result<()> {
        self.make_room()?;
        encode(&mut self.buf);
        self.buf.push(b'\n');
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()?;
        self.out.flush()
    }
    fn describe(&self) -> String {
        self.what.clone()
    }
}

impl Drop for JsonLines {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Errors opening outputs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// The output file could not be opened.
    #[error("cannot open output file {path}: {source}")]
    Open {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The output file is readable or writable by others.
    #[error(
        "output file {path} has mode {mode:o}; alerts must not be readable by others (chmod 600)"
    )]
    Permissions {
        /// File.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// A bad `--output` URL.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// TLS settings that cannot be used (CA file, client certificate).
    #[error("TLS: {what}")]
    Tls {
        /// What is wrong, naming the file.
        what: String,
    },
    /// The threads of a sink could not be started.
    #[error("output {url}: cannot start its thread: {source}")]
    Thread {
        /// The output's URL.
        url: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The spool directory cannot be used.
    #[error("spool {dir}: {source}")]
    Spool {
        /// Directory.
        dir: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn outputs_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Outputs>();
        send_sync::<SinkHandle>();
        send_sync::<metrics::Registry>();
    }

    /// What a [`Calls`] writer saw: each write call's bytes, the write
    /// call (0-based) that fails once with an error, the calls so far.
    #[derive(Default)]
    struct CallLog {
        writes: Vec<Vec<u8>>,
        fail_at: Option<usize>,
        n: usize,
    }

    /// A writer that records each write call.
    #[derive(Clone, Default)]
    struct Calls(std::sync::Arc<std::sync::Mutex<CallLog>>);
    impl Write for Calls {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let mut g = self.0.lock().unwrap();
            let n = g.n;
            g.n += 1;
            if g.fail_at == Some(n) {
                return Err(io::Error::other("disk on fire"));
            }
            g.writes.push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Records from an encoder and from bytes end up as the same lines, in
    /// order, written in few calls of at least a batch each.
    #[test]
    fn json_lines_batches_writes_and_takes_records_from_an_encoder() {
        let calls = Calls::default();
        let mut s = JsonLines::writer(Box::new(calls.clone()), "test");
        let mut want = Vec::new();
        for i in 0..1000u32 {
            let rec = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(300));
            if i % 2 == 0 {
                s.append_record(&mut |b| b.extend_from_slice(rec.as_bytes()))
                    .unwrap();
            } else {
                s.write_record(rec.as_bytes()).unwrap();
            }
            want.extend_from_slice(rec.as_bytes());
            want.push(b'\n');
        }
        let before = calls.0.lock().unwrap().writes.len();
        s.flush().unwrap();
        let g = calls.0.lock().unwrap();
        let got: Vec<u8> = g.writes.concat();
        assert_eq!(got, want);
        // each write takes a full batch (and the record that filled it)
        assert!(before <= want.len() / JsonLines::BATCH, "{before} writes");
        assert!(
            before >= want.len() / (JsonLines::BATCH + 400),
            "{before} writes"
        );
        assert!(
            g.writes[..before]
                .iter()
                .all(|w| w.len() >= JsonLines::BATCH)
        );
        assert_eq!(
            g.writes.len(),
            before + 1,
            "flush writes the rest in one call"
        );
    }

    /// A write that fails refuses the record being added (counted by the
    /// caller as an error) and keeps every record accepted before it;
    /// dropping the sink writes what is left.
    #[test]
    fn json_lines_write_errors_lose_no_accepted_record() {
        let calls = Calls::default();
        calls.0.lock().unwrap().fail_at = Some(1);
        let mut s = JsonLines::writer(Box::new(calls.clone()), "test");
        let mut want = Vec::new();
        let mut refused = 0;
        for i in 0..600u32 {
            let rec = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "y".repeat(500));
            match s.append_record(&mut |b| b.extend_from_slice(rec.as_bytes())) {
                Ok(()) => {
                    want.extend_from_slice(rec.as_bytes());
                    want.push(b'\n');
                }
                Err(e) => {
                    assert_eq!(e.to_string(), "disk on fire");
                    refused += 1;
                }
            }
        }
        assert_eq!(refused, 1);
        drop(s);
        assert_eq!(calls.0.lock().unwrap().writes.concat(), want);
    }

    #[test]
    fn file_sink_is_0600_and_refuses_open_files() {
        let dir = std::env::temp_dir().join(format!("vigil-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.json");
        let mut s = JsonLines::file(&p).unwrap();
        s.write_record(b"{\"a\":1}").unwrap();
        s.flush().unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"a\":1}\n");
        let q = dir.join("b.json");
        std::fs::write(&q, "").unwrap();
        std::fs::set_permissions(&q, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            JsonLines::file(&q),
            Err(OutputError::Permissions { mode: 0o644, .. })
        ));
        assert!(
            JsonLines::file(Path::new("/dev/null")).is_ok(),
            "devices keep their mode"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
