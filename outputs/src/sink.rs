//! Delivery: each sink behind a bounded queue, an in-memory buffer, an
//! on-disk spool and its own threads, so the pipeline never waits for it.
//!
//! ```text
//! submit(&Record) --filter, encode--> staged batch (queue full: dropped, counted)
//!   flush_staged() / 256 staged / 50 ms --> bounded channel, one message per batch
//!   intake thread --> memory buffer (link up, room, spool empty)
//!                 \-> spool (link down, buffer full, or spool not empty: keeps order)
//!   sender thread <-- memory first (older), then spool; reconnects with
//!                     exponential backoff and jitter
//! ```
//!
//! Submitting stages the encoded record in a small batch that goes to the
//! intake thread in one channel message (one wakeup for up to
//! [`STAGE_MAX`] records rather than one per record) when the caller calls
//! [`SinkHandle::flush_staged`] (the engine does after every ring-buffer
//! batch and every flush), when [`STAGE_MAX`] records are staged, or at the
//! latest when the intake thread next looks ([`STAGE_WAIT`]): a staged
//! record waits at most that long. The queue bound ([`SinkConfig::queue`])
//! counts staged records too.
//!
//! A record is lost only when the spool is full (counted in
//! [`SinkStats::dropped_spool_full`]), when the channel is full (the intake
//! thread fell behind: [`SinkStats::dropped_queue_full`]), or, for a sink
//! without a spool (stdout, file, or no spool directory), when the memory
//! buffer is full or shutdown times out ([`SinkStats::dropped_shutdown`]).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::OutputError;
use crate::encode::{Encoder, EncoderConfig};
use crate::record::{Kind, Record, Severity};
use crate::spool::Spool;
use crate::transport::{self, Interrupter, Transport, TransportConfig};

/// Which records a sink takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filter {
    /// Records below this severity are skipped.
    pub min_severity: Severity,
    kinds: u8,
}

impl Default for Filter {
    fn default() -> Self {
        Filter::all()
    }
}

impl Filter {
    /// Every record.
    pub fn all() -> Filter {
        Filter {
            min_severity: Severity::Info,
            kinds: 7,
        }
    }

    /// Only these kinds (and at least `min_severity`).
    pub fn new(min_severity: Severity, kinds: &[Kind]) -> Filter {
        Filter {
            min_severity,
            kinds: kinds.iter().fold(0, |a, k| a | k.bit()),
        }
    }

    /// Whether `rec` passes.
    pub fn accepts(&self, rec: &Record) -> bool {
        rec.severity >= self.min_severity && self.kinds & rec.kind.bit() != 0
    }

    /// Whether records of `kind` pass.
    pub fn has_kind(&self, kind: Kind) -> bool {
        self.kinds & kind.bit() != 0
    }
}

/// Everything about one sink (what an `--output` URL says).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkConfig {
    /// The URL it was parsed from (its identity: names the spool
    /// directory, labels its metrics).
    pub url: String,
    /// Where to.
    pub transport: TransportConfig,
    /// In which format.
    pub encoder: EncoderConfig,
    /// Which records.
    pub filter: Filter,
    /// Channel capacity between the pipeline and the intake thread.
    pub queue: usize,
    /// Records held in memory before spilling to the spool.
    pub memory: usize,
    /// Spool size cap in bytes (0: no spool). Applies to network sinks
    /// when a spool root directory is given.
    pub spool_bytes: u64,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// Records per write.
    pub batch: usize,
}

impl SinkConfig {
    /// A sink with the default tuning: queue 16384, memory 8192 records,
    /// spool 256 MiB (network sinks), backoff 100 ms doubling to 30 s,
    /// batches of 256.
    pub fn new(url: &str, transport: TransportConfig, encoder: EncoderConfig) -> SinkConfig {
        let spool_bytes = if transport.is_network() { 256 << 20 } else { 0 };
        SinkConfig {
            url: url.into(),
            transport,
            encoder,
            filter: Filter::all(),
            queue: 16384,
            memory: 8192,
            spool_bytes,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            batch: 256,
        }
    }
}

/// A snapshot of a sink's counters (all totals since start, except the
/// gauges `queued`, `spool_records`, `spool_bytes`, `connected`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// The sink's URL.
    pub url: String,
    /// Records offered to the sink.
    pub submitted: u64,
    /// Records its filter skipped.
    pub filtered: u64,
    /// Records accepted into the queue.
    pub accepted: u64,
    /// Gauge: records in the channel and the memory buffer.
    pub queued: u64,
    /// Records written to the transport (from memory or spool).
    pub sent: u64,
    /// Records written to the spool (including at shutdown).
    pub spooled: u64,
    /// Records sent from the spool (a subset of `sent`).
    pub resent: u64,
    /// Gauge: records in the spool.
    pub spool_records: u64,
    /// Gauge: bytes of the spool on disk.
    pub spool_bytes: u64,
    /// Torn or damaged spool records skipped.
    pub spool_corrupt: u64,
    /// Records dropped because the channel was full.
    pub dropped_queue_full: u64,
    /// Records dropped because the spool was full (or, without a spool,
    /// the memory buffer).
    pub dropped_spool_full: u64,
    /// Records lost at shutdown (sinks without a spool).
    pub dropped_shutdown: u64,
    /// Records whose values were truncated to fit the transport.
    pub truncated: u64,
    /// Connect and write errors.
    pub errors: u64,
    /// Successful (re)connections.
    pub connects: u64,
    /// Gauge: connected now.
    pub connected: bool,
}

impl SinkStats {
    /// Every record lost, for whatever reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.dropped_spool_full + self.dropped_shutdown
    }
}

#[derive(Default)]
struct Counters {
    submitted: AtomicU64,
    filtered: AtomicU64,
    accepted: AtomicU64,
    in_channel: AtomicU64,
    sent: AtomicU64,
    spooled: AtomicU64,
    resent: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_spool_full: AtomicU64,
    dropped_shutdown: AtomicU64,
    truncated: AtomicU64,
    errors: AtomicU64,
    connects: AtomicU64,
    connected: AtomicBool,
    // gauges mirrored from the locked state
    mem: AtomicU64,
    spool_records: AtomicU64,
    spool_bytes: AtomicU64,
    spool_corrupt: AtomicU64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Link {
    Unknown,
    Up,
    Down,
}

struct State {
    mem: VecDeque<Vec<u8>>,
    spool: Option<Spool>,
    link: Link,
    intake_done: bool,
    draining: bool,
    stop: bool,
    /// Reopen the transport before the next batch (SIGHUP, log rotation).
    reopen: bool,
}

/// Records staged before they go to the intake thread in one message.
pub const STAGE_MAX: usize = 256;

/// Longest a staged record waits when nobody calls
/// [`SinkHandle::flush_staged`]: the intake thread takes the staged
/// records itself this often.
pub const STAGE_WAIT: Duration = Duration::from_millis(50);

struct Shared {
    state: Mutex<State>,
    /// Encoded records not yet handed to the intake thread, oldest first.
    /// Lock order: `staged` before `state`.
    staged: Mutex<Vec<Vec<u8>>>,
    /// Records staged or in the channel at most ([`SinkConfig::queue`]).
    queue: usize,
    cv: Condvar,
    c: Counters,
    memory: usize,
    url: String,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_staged(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        self.staged.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mirror(&self, st: &State) {
        self.c.mem.store(st.mem.len() as u64, Relaxed);
        if let Some(sp) = &st.spool {
            self.c.spool_records.store(sp.len(), Relaxed);
            self.c.spool_bytes.store(sp.bytes(), Relaxed);
            self.c.spool_corrupt.store(sp.corrupt(), Relaxed);
        }
    }

    /// Logs drops: the first, then at most every 10 s.
    fn note_drop(&self, why: &str) {
        static LAST: Mutex<Option<Instant>> = Mutex::new(None);
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            log::warn!(
                "output {}: dropping records ({why}); dropped so far: {} spool full, {} queue full",
                self.url,
                self.c.dropped_spool_full.load(Relaxed),
                self.c.dropped_queue_full.load(Relaxed),
            );
        }
    }
}

/// One running sink. Cheap to submit to from any thread (`&self`).
pub struct SinkHandle {
    tx: Option<SyncSender<Vec<Vec<u8>>>>,
    encoder: Encoder,
    filter: Filter,
    shared: Arc<Shared>,
    intr: Interrupter,
    intake: Option<JoinHandle<()>>,
    sender: Option<JoinHandle<()>>,
}

/// What [`SinkHandle::submit`] did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Queued for delivery.
    Queued,
    /// Skipped by the sink's filter.
    Filtered,
    /// Dropped: the queue was full (counted).
    Dropped,
}

/// The spool directory of a sink under `root`: its URL made safe as a
/// file name, plus a hash of the whole URL (FNV-1a) to keep distinct URLs
/// apart.
pub fn spool_dir_for(root: &Path, url: &str) -> PathBuf {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in url.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    let safe: String = url
        .chars()
        .take(60)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    root.join(format!("{safe}-{h:016x}"))
}

impl SinkHandle {
    /// Starts a sink: opens its transport (files now; sockets connect in
    /// the background), opens its spool under `spool_root` (network sinks
    /// only; records left there by an earlier run are sent first), and
    /// starts its two threads.
    pub fn start(cfg: SinkConfig, spool_root: Option<&Path>) -> Result<SinkHandle, OutputError> {
        let transport = transport::open(&cfg.transport)?;
        let spool = match spool_root {
            Some(root) if cfg.spool_bytes > 0 && cfg.transport.is_network() => {
                let dir = spool_dir_for(root, &cfg.url);
                Some(
                    Spool::open(&dir, cfg.spool_bytes)
                        .map_err(|source| OutputError::Spool { dir, source })?,
                )
            }
            _ => None,
        };
        Self::start_with(cfg, transport, spool)
    }

    /// Starts a sink over a given transport (tests, custom transports).
    /// Fails only when the system cannot start its two threads.
    pub fn start_with(
        cfg: SinkConfig,
        transport: Box<dyn Transport>,
        spool: Option<Spool>,
    ) -> Result<SinkHandle, OutputError> {
        // every message holds at least one record and at most `queue`
        // records are staged or in the channel: a send never finds it full
        let (tx, rx) = mpsc::sync_channel::<Vec<Vec<u8>>>(cfg.queue.max(1));
        let shared = Arc::new(Shared {
            staged: Mutex::new(Vec::new()),
            queue: cfg.queue.max(1),
            state: Mutex::new(State {
                mem: VecDeque::new(),
                spool,
                link: Link::Unknown,
                intake_done: false,
                draining: false,
                stop: false,
                reopen: false,
            }),
            cv: Condvar::new(),
            c: Counters::default(),
            memory: cfg.memory.max(1),
            url: cfg.url.clone(),
        });
        shared.mirror(&shared.lock());
        let intr = transport.interrupter();
        let sh = shared.clone();
        let intake = std::thread::Builder::new()
            .name("vigil-out-intake".into())
            .spawn(move || intake_loop(&sh, rx))
            .map_err(|source| OutputError::Thread {
                url: cfg.url.clone(),
                source,
            })?;
        let sh = shared.clone();
        let (bmin, bmax, batch) = (cfg.backoff_min, cfg.backoff_max, cfg.batch.max(1));
        let sender = match std::thread::Builder::new()
            .name("vigil-out-sender".into())
            .spawn(move || sender_loop(&sh, transport, bmin, bmax, batch))
        {
            Ok(s) => s,
            Err(source) => {
                // The intake thread ends once its channel closes.
                drop(tx);
                let _ = intake.join();
                return Err(OutputError::Thread {
                    url: cfg.url.clone(),
                    source,
                });
            }
        };
        Ok(SinkHandle {
            tx: Some(tx),
            encoder: Encoder::new(cfg.encoder),
            filter: cfg.filter,
            shared,
            intr,
            intake: Some(intake),
            sender: Some(sender),
        })
    }

    /// Asks the sender to reopen its transport before its next batch: a
    /// file output closes its file and opens (creates, 0600) its path again,
    /// so after logrotate renamed it new records go to a new file; records
    /// already written stay in the renamed one. Other transports ignore it.
    pub fn reopen(&self) {
        self.shared.lock().reopen = true;
        self.shared.cv.notify_all();
    }

    /// The sink's URL.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// Whether this sink would read the fields of a record of `kind` and
    /// `severity` whose pre-encoded JSON is `json_len` bytes long: false
    /// when its filter skips the record or its encoder passes the JSON
    /// through ([`Encoder::reads_fields`]).
    pub fn reads_fields(&self, kind: Kind, severity: Severity, json_len: usize) -> bool {
        severity >= self.filter.min_severity
            && self.filter.has_kind(kind)
            && self.encoder.reads_fields(json_len)
    }

    /// Filters, encodes and enqueues `rec`. Never blocks.
    pub fn submit(&self, rec: &Record) -> Submitted {
        let c = &self.shared.c;
        c.submitted.fetch_add(1, Relaxed);
        if !self.filter.accepts(rec) {
            c.filtered.fetch_add(1, Relaxed);
            return Submitted::Filtered;
        }
        let mut buf = Vec::with_capacity(rec.json.len().min(1 << 16) + 512);
        if self.encoder.encode(rec, &mut buf) {
            c.truncated.fetch_add(1, Relaxed);
        }
        self.enqueue(buf)
    }

    /// Enqueues an already encoded message (no filter). Never blocks.
    pub fn submit_encoded(&self, msg: Vec<u8>) -> Submitted {
        self.shared.c.submitted.fetch_add(1, Relaxed);
        self.enqueue(msg)
    }

    fn enqueue(&self, msg: Vec<u8>) -> Submitted {
        let c = &self.shared.c;
        if self.tx.is_none() {
            c.dropped_shutdown.fetch_add(1, Relaxed);
            return Submitted::Dropped;
        }
        if c.in_channel.fetch_add(1, Relaxed) >= self.shared.queue as u64 {
            c.in_channel.fetch_sub(1, Relaxed);
            c.dropped_queue_full.fetch_add(1, Relaxed);
            self.shared.note_drop("the queue is full");
            return Submitted::Dropped;
        }
        c.accepted.fetch_add(1, Relaxed);
        let mut staged = self.shared.lock_staged();
        staged.push(msg);
        if staged.len() >= STAGE_MAX {
            self.send_staged(&mut staged);
        }
        Submitted::Queued
    }

    /// Hands the staged records to the intake thread now, in one message
    /// (the engine calls it at the end of every ring-buffer batch, so a
    /// record waits for the rest of its batch at most; else the intake
    /// thread takes them within [`STAGE_WAIT`]).
    pub fn flush_staged(&self) {
        let mut staged = self.shared.lock_staged();
        if !staged.is_empty() {
            self.send_staged(&mut staged);
        }
    }

    /// Sends the staged records, the `staged` lock held (so a batch the
    /// intake thread takes itself cannot overtake one sent before it).
    fn send_staged(&self, staged: &mut Vec<Vec<u8>>) {
        let batch = std::mem::take(staged);
        let n = batch.len() as u64;
        let sent = match &self.tx {
            Some(tx) => tx.try_send(batch).is_ok(),
            None => false,
        };
        if !sent {
            // only when the intake thread is gone: the channel has room for
            // every record the queue bound admits
            let c = &self.shared.c;
            c.in_channel.fetch_sub(n, Relaxed);
            c.accepted.fetch_sub(n, Relaxed);
            c.dropped_queue_full.fetch_add(n, Relaxed);
            self.shared.note_drop("the intake thread is gone");
        }
    }

    /// Publishes this sink's counters in `reg` (label `sink` = URL), read
    /// at each scrape; names in [`crate::metrics::names`].
    pub fn register_metrics(&self, reg: &crate::metrics::Registry) {
        use crate::metrics::names::*;
        let url = self.shared.url.clone();
        let l: &[(&str, &str)] = &[("sink", url.as_str())];
        let sh = &self.shared;
        let counter =
            |(name, help): (&str, &str), f: fn(&Counters) -> u64, labels: &[(&str, &str)]| {
                let s = sh.clone();
                let _ = reg.counter_fn(name, help, labels, move || f(&s.c));
            };
        counter(OUT_SUBMITTED, |c| c.submitted.load(Relaxed), l);
        counter(OUT_SENT, |c| c.sent.load(Relaxed), l);
        counter(OUT_SPOOLED, |c| c.spooled.load(Relaxed), l);
        counter(OUT_RESENT, |c| c.resent.load(Relaxed), l);
        counter(OUT_TRUNCATED, |c| c.truncated.load(Relaxed), l);
        counter(OUT_ERRORS, |c| c.errors.load(Relaxed), l);
        let u = url.as_str();
        counter(
            OUT_DROPPED,
            |c| c.dropped_queue_full.load(Relaxed),
            &[("sink", u), ("reason", "queue_full")],
        );
        counter(
            OUT_DROPPED,
            |c| c.dropped_spool_full.load(Relaxed),
            &[("sink", u), ("reason", "spool_full")],
        );
        counter(
            OUT_DROPPED,
            |c| c.dropped_shutdown.load(Relaxed),
            &[("sink", u), ("reason", "shutdown")],
        );
        let gauge = |(name, help): (&str, &str), f: fn(&Counters) -> f64| {
            let s = sh.clone();
            let _ = reg.gauge_fn(name, help, l, move || f(&s.c));
        };
        gauge(OUT_QUEUE, |c| {
            (c.in_channel.load(Relaxed) + c.mem.load(Relaxed)) as f64
        });
        gauge(OUT_SPOOL_RECORDS, |c| c.spool_records.load(Relaxed) as f64);
        gauge(OUT_SPOOL_BYTES, |c| c.spool_bytes.load(Relaxed) as f64);
        gauge(OUT_CONNECTED, |c| {
            f64::from(u8::from(c.connected.load(Relaxed)))
        });
    }

    /// Current counters.
    pub fn stats(&self) -> SinkStats {
        let c = &self.shared.c;
        SinkStats {
            url: self.shared.url.clone(),
            submitted: c.submitted.load(Relaxed),
            filtered: c.filtered.load(Relaxed),
            accepted: c.accepted.load(Relaxed),
            queued: c.in_channel.load(Relaxed) + c.mem.load(Relaxed),
            sent: c.sent.load(Relaxed),
            spooled: c.spooled.load(Relaxed),
            resent: c.resent.load(Relaxed),
            spool_records: c.spool_records.load(Relaxed),
            spool_bytes: c.spool_bytes.load(Relaxed),
            spool_corrupt: c.spool_corrupt.load(Relaxed),
            dropped_queue_full: c.dropped_queue_full.load(Relaxed),
            dropped_spool_full: c.dropped_spool_full.load(Relaxed),
            dropped_shutdown: c.dropped_shutdown.load(Relaxed),
            truncated: c.truncated.load(Relaxed),
            errors: c.errors.load(Relaxed),
            connects: c.connects.load(Relaxed),
            connected: c.connected.load(Relaxed),
        }
    }

    /// Stops the sink: takes no more records, tries to deliver what is
    /// queued until `timeout`, then interrupts the transport, puts what
    /// remains in memory at the front of the spool (or counts it in
    /// `dropped_shutdown` without one), syncs the spool, and returns the
    /// final counters.
    pub fn shutdown(mut self, timeout: Duration) -> SinkStats {
        self.stop(timeout);
        self.stats()
    }

    fn stop(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        {
            let mut st = self.shared.lock();
            st.draining = true;
        }
        self.shared.cv.notify_all();
        self.flush_staged();
        self.tx = None; // the intake thread drains the channel and ends
        if let Some(h) = self.intake.take() {
            let _ = h.join();
        }
        if let Some(h) = self.sender.take() {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if !h.is_finished() {
                self.shared.lock().stop = true;
                self.shared.cv.notify_all();
                self.intr.interrupt();
            }
            let _ = h.join();
        }
        let mut st = self.shared.lock();
        let mem: Vec<Vec<u8>> = st.mem.drain(..).collect();
        let n = mem.len() as u64;
        match st.spool.as_mut() {
            Some(sp) if n > 0 => match sp.prepend(mem.iter().map(Vec::as_slice)) {
                Ok(kept) => {
                    self.shared.c.spooled.fetch_add(kept, Relaxed);
                    if kept < n {
                        self.shared
                            .c
                            .dropped_spool_full
                            .fetch_add(n - kept, Relaxed);
                        self.shared.note_drop("the spool is full");
                    }
                }
                Err(e) => {
                    log::error!(
                        "output {}: cannot keep {n} undelivered records in the spool: {e}",
                        self.shared.url
                    );
                    self.shared.c.dropped_shutdown.fetch_add(n, Relaxed);
                }
            },
            _ => {
                self.shared.c.dropped_shutdown.fetch_add(n, Relaxed);
            }
        }
        if let Some(sp) = st.spool.as_mut()
            && let Err(e) = sp.sync()
        {
            log::error!("output {}: cannot sync the spool: {e}", self.shared.url);
        }
        self.shared.mirror(&st);
    }
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        if self.sender.is_some() {
            self.stop(Duration::from_secs(2));
        }
    }
}

fn intake_loop(sh: &Shared, rx: mpsc::Receiver<Vec<Vec<u8>>>) {
    loop {
        let first = match rx.recv_timeout(STAGE_WAIT) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                // records staged and not flushed: take them, after what
                // the channel holds (sent before them), under the staged
                // lock so no newer batch is sent meanwhile
                let mut staged = sh.lock_staged();
                if staged.is_empty() {
                    continue;
                }
                let mut st = sh.lock();
                while let Ok(b) = rx.try_recv() {
                    b.into_iter().for_each(|m| place(sh, &mut st, m));
                }
                std::mem::take(&mut *staged)
                    .into_iter()
                    .for_each(|m| place(sh, &mut st, m));
                drop(staged);
                sh.mirror(&st);
                drop(st);
                sh.cv.notify_all();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut st = sh.lock();
        first.into_iter().for_each(|m| place(sh, &mut st, m));
        // Whatever else is already waiting, under the same lock.
        for _ in 0..64 {
            match rx.try_recv() {
                Ok(b) => b.into_iter().for_each(|m| place(sh, &mut st, m)),
                Err(_) => break,
            }
        }
        sh.mirror(&st);
        drop(st);
        sh.cv.notify_all();
    }
    let mut st = sh.lock();
    st.intake_done = true;
    drop(st);
    sh.cv.notify_all();
}

fn place(sh: &Shared, st: &mut State, msg: Vec<u8>) {
    sh.c.in_channel.fetch_sub(1, Relaxed);
    let spill = st.link == Link::Down
        || st.mem.len() >= sh.memory
        || st.spool.as_ref().is_some_and(|s| !s.is_empty());
    if spill && let Some(sp) = st.spool.as_mut() {
        match sp.append(&msg) {
            Ok(true) => {
                sh.c.spooled.fetch_add(1, Relaxed);
            }
            Ok(false) => {
                sh.c.dropped_spool_full.fetch_add(1, Relaxed);
                sh.note_drop("the spool is full");
            }
            Err(e) => {
                sh.c.errors.fetch_add(1, Relaxed);
                sh.c.dropped_spool_full.fetch_add(1, Relaxed);
                sh.note_drop(&format!("cannot write the spool: {e}"));
            }
        }
        return;
    }
    if st.mem.len() < sh.memory {
        st.mem.push_back(msg);
    } else {
        sh.c.dropped_spool_full.fetch_add(1, Relaxed);
        sh.note_drop("the memory buffer is full and there is no spool");
    }
}

enum Source {
    Mem,
    Spool(crate::spool::Position),
}

/// A small xorshift for backoff jitter (no need for a CSPRNG).
fn jitter(d: Duration, seed: &mut u64) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    // between half and all of d
    let half = d / 2;
    half + Duration::from_nanos(*seed % (half.as_nanos() as u64 + 1))
}

fn sender_loop(
    sh: &Shared,
    mut t: Box<dyn Transport>,
    bmin: Duration,
    bmax: Duration,
    batch_n: usize,
) {
    let mut backoff = bmin;
    let mut next_try = Instant::now();
    let mut connected = false;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
        | 1;
    let what = t.describe();
    let mut logged_down = false;
    let mut drain_try = false;
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(batch_n);
    loop {
        if !connected {
            {
                let st = sh.lock();
                if st.stop {
                    break;
                }
                // Draining and nothing at risk in memory: no reason to wait
                // for a link that is down (the spool keeps the rest).
                if st.draining
                    && st.intake_done
                    && st.mem.is_empty()
                    && ((st.link == Link::Down && drain_try)
                        || st.spool.as_ref().is_none_or(|s| s.is_empty()))
                {
                    break;
                }
                let now = Instant::now();
                if st.draining && !drain_try {
                    // Shutting down: one attempt now rather than after the
                    // backoff; if it fails, the spool keeps the rest.
                    drain_try = true;
                    next_try = now;
                }
                if now < next_try {
                    let _ = sh.cv.wait_timeout(st, next_try - now);
                    continue;
                }
            }
            match t.connect() {
                Ok(()) => {
                    connected = true;
                    backoff = bmin;
                    sh.c.connects.fetch_add(1, Relaxed);
                    sh.c.connected.store(true, Relaxed);
                    sh.lock().link = Link::Up;
                    if logged_down {
                        log::info!("output {what}: connected again");
                        logged_down = false;
                    }
                }
                Err(e) => {
                    sh.c.errors.fetch_add(1, Relaxed);
                    go_down(sh);
                    if !logged_down {
                        log::warn!(
                            "output {what}: cannot connect ({e}); {} and retrying",
                            keep_where(sh)
                        );
                        logged_down = true;
                    }
                    next_try = Instant::now() + jitter(backoff, &mut seed);
                    backoff = (backoff * 2).min(bmax);
                    continue;
                }
            }
        }
        if std::mem::take(&mut sh.lock().reopen)
            && let Err(e) = t.reopen()
        {
            sh.c.errors.fetch_add(1, Relaxed);
            log::warn!("output {what}: cannot reopen ({e}); writing on to the open file");
        }
        // Take a batch: memory first (older), then the spool.
        batch.clear();
        let src = {
            let mut st = sh.lock();
            if st.stop {
                break;
            }
            if !st.mem.is_empty() {
                let n = st.mem.len().min(batch_n);
                batch.extend(st.mem.drain(..n));
                sh.mirror(&st);
                Source::Mem
            } else {
                let peeked = match st.spool.as_mut() {
                    Some(sp) => sp.peek(batch_n, 1 << 20, &mut batch),
                    None => Ok(None),
                };
                match peeked {
                    Ok(Some(pos)) => Source::Spool(pos),
                    Ok(None) => {
                        if st.draining && st.intake_done {
                            break;
                        }
                        let _ = sh.cv.wait_timeout(st, Duration::from_millis(200));
                        continue;
                    }
                    Err(e) => {
                        sh.c.errors.fetch_add(1, Relaxed);
                        log::error!("output {what}: cannot read the spool: {e}");
                        let _ = sh.cv.wait_timeout(st, Duration::from_secs(1));
                        continue;
                    }
                }
            }
        };
        let n = batch.len() as u64;
        let attempted = t.alive();
        let res = if attempted {
            t.send_batch(&batch)
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the receiver closed the connection",
            ))
        };
        match res {
            Ok(()) => {
                sh.c.sent.fetch_add(n, Relaxed);
                if let Source::Spool(pos) = src {
                    let mut st = sh.lock();
                    if let Some(sp) = st.spool.as_mut()
                        && let Err(e) = sp.commit(pos)
                    {
                        sh.c.errors.fetch_add(1, Relaxed);
                        log::error!("output {what}: cannot advance the spool: {e}");
                    }
                    sh.c.resent.fetch_add(n, Relaxed);
                    sh.mirror(&st);
                }
            }
            Err(e) => {
                sh.c.errors.fetch_add(1, Relaxed);
                // Acknowledged (RELP) records of the batch are delivered.
                let k = if attempted {
                    t.delivered_before_error().min(batch.len())
                } else {
                    0
                };
                sh.c.sent.fetch_add(k as u64, Relaxed);
                match src {
                    Source::Mem => {
                        let mut st = sh.lock();
                        for m in batch.drain(k..).rev() {
                            st.mem.push_front(m);
                        }
                    }
                    Source::Spool(pos) if k > 0 => {
                        let mut st = sh.lock();
                        if let Some(sp) = st.spool.as_mut() {
                            let _ = sp.commit(pos.without_tail(&batch[k..]));
                        }
                        sh.c.resent.fetch_add(k as u64, Relaxed);
                        sh.mirror(&st);
                    }
                    Source::Spool(_) => {}
                }
                t.disconnect();
                connected = false;
                go_down(sh);
                if !logged_down {
                    log::warn!(
                        "output {what}: delivery failed ({e}); {} and reconnecting",
                        keep_where(sh)
                    );
                    logged_down = true;
                }
                next_try = Instant::now() + jitter(backoff, &mut seed);
                backoff = (backoff * 2).min(bmax);
            }
        }
    }
    t.disconnect();
    sh.c.connected.store(false, Relaxed);
}

fn keep_where(sh: &Shared) -> &'static str {
    if sh.lock().spool.is_some() {
        "spooling records"
    } else {
        "holding records in memory (no spool)"
    }
}

/// Marks the link down and moves what is in memory to the front of the
/// spool, so a crash while the receiver is away loses nothing in memory.
fn go_down(sh: &Shared) {
    sh.c.connected.store(false, Relaxed);
    let mut st = sh.lock();
    st.link = Link::Down;
    if st.mem.is_empty() {
        return;
    }
    let mem: Vec<Vec<u8>> = st.mem.drain(..).collect();
    if let Some(sp) = st.spool.as_mut() {
        match sp.prepend(mem.iter().map(Vec::as_slice)) {
            Ok(kept) => {
                sh.c.spooled.fetch_add(kept, Relaxed);
                let n = mem.len() as u64;
                if kept < n {
                    sh.c.dropped_spool_full.fetch_add(n - kept, Relaxed);
                    sh.note_drop("the spool is full");
                }
            }
            Err(e) => {
                sh.c.errors.fetch_add(1, Relaxed);
                log::error!("output {}: cannot spool: {e}", sh.url);
                st.mem.extend(mem);
            }
        }
    } else {
        st.mem.extend(mem);
    }
    sh.mirror(&st);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_jitter_stays_within_half_and_whole() {
        let mut seed = 12345;
        let d = Duration::from_millis(800);
        for _ in 0..10_000 {
            let j = jitter(d, &mut seed);
            assert!(j >= d / 2 && j <= d, "{j:?}");
        }
    }

    #[test]
    fn spool_dirs_are_per_url_and_safe() {
        let root = Path::new("/var/lib/vigil/spool");
        let a = spool_dir_for(root, "syslog+tcp://h:514?format=cef");
        let b = spool_dir_for(root, "syslog+tcp://h:514?format=rfc5424");
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(root));
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("syslog_tcp___h_514_format_cef-"), "{name}");
        assert!(
            name.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
        );
    }
}
