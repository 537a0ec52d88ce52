//! A small Prometheus registry and `/metrics` endpoint.
//!
//! Text exposition format 0.0.4, following the official conventions:
//! every name starts with `vigil_`, carries its unit (`_seconds`,
//! `_bytes`, `_records`), counters end in `_total`; each family has one
//! `# HELP` and one `# TYPE` line; label values escape `\`, `"` and
//! newlines, HELP text escapes `\` and newlines. Histograms have
//! power-of-two buckets (`le` = 2^k times a unit scale) so observing is
//! one `leading_zeros` and two atomic adds.
//!
//! ```
//! use vigil_outputs::metrics::Registry;
//! let reg = Registry::new();
//! let c = reg.counter("vigil_sensor_events_total", "Events decoded.", &[("sensor", "exec")]).unwrap();
//! c.inc();
//! assert!(reg.render().contains("vigil_sensor_events_total{sensor=\"exec\"} 1\n"));
//! ```

use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A metric that cannot be registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricsError {
    /// The name breaks the naming rules.
    #[error("metric name `{name}`: {why}")]
    BadName {
        /// Name.
        name: String,
        /// Which rule.
        why: &'static str,
    },
    /// A label name breaks the naming rules.
    #[error(
        "metric `{name}`: label name `{label}` must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __"
    )]
    BadLabel {
        /// Metric.
        name: String,
        /// Label.
        label: String,
    },
    /// The name is registered with another type or help text.
    #[error("metric `{name}` is already registered as a {existing} with other help or type")]
    Conflict {
        /// Name.
        name: String,
        /// Its registered type.
        existing: &'static str,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Type {
    Counter,
    Gauge,
    Histogram,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram => "histogram",
        }
    }
}

type ValueFn = Box<dyn Fn() -> f64 + Send + Sync>;

enum Source {
    Counter(Arc<AtomicU64>),
    Gauge(Arc<AtomicI64>),
    Hist(Arc<HistCore>),
    Fn(ValueFn),
}

struct Series {
    labels: Vec<(String, String)>,
    source: Source,
}

struct Family {
    name: String,
    help: String,
    ty: Type,
    series: Vec<Series>,
}

/// A set of metric families, rendered on each scrape.
#[derive(Default)]
pub struct Registry {
    families: Mutex<Vec<Family>>,
}

/// A monotonically increasing count.
#[derive(Clone, Debug)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }
    /// Adds `n`.
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }
    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A value that goes up and down (an integer).
#[derive(Clone, Debug)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Sets it.
    pub fn set(&self, v: i64) {
        self.0.store(v, Relaxed);
    }
    /// Adds `d` (may be negative).
    pub fn add(&self, d: i64) {
        self.0.fetch_add(d, Relaxed);
    }
    /// The value.
    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

/// Buckets: `le = scale * 2^k` for k in 0..BUCKETS, then +Inf.
const BUCKETS: usize = 48;

#[derive(Debug)]
struct HistCore {
    scale: f64,
    buckets: [AtomicU64; BUCKETS + 1],
    sum: AtomicU64,
    count: AtomicU64,
}

/// A histogram of integer observations in some unit (nanoseconds,
/// bytes) with power-of-two buckets; exposed in base units via `scale`
/// (1e-9 for nanoseconds shown as `_seconds`).
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistCore>);

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, v: u64) {
        // smallest k with v <= 2^k
        let k = if v <= 1 {
            0
        } else {
            (64 - (v - 1).leading_zeros()) as usize
        };
        self.0.buckets[k.min(BUCKETS)].fetch_add(1, Relaxed);
        self.0.sum.fetch_add(v, Relaxed);
        self.0.count.fetch_add(1, Relaxed);
    }
    /// Adds pre-bucketed observations: `counts[k]` observations of at most
    /// `2^k` units each (a log2 histogram read from elsewhere, such as a
    /// BPF map), whose exact total is `sum`. Counts past the last bucket go
    /// to `+Inf`.
    pub fn add_buckets(&self, counts: &[u64], sum: u64) {
        let mut n = 0u64;
        for (k, &c) in counts.iter().enumerate() {
            if c > 0 {
                self.0.buckets[k.min(BUCKETS)].fetch_add(c, Relaxed);
                n = n.wrapping_add(c);
            }
        }
        self.0.sum.fetch_add(sum, Relaxed);
        self.0.count.fetch_add(n, Relaxed);
    }
    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0.count.load(Relaxed)
    }
}

fn valid_name(s: &str) -> bool {
    let mut it = s.bytes();
    it.next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && it.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn valid_label(s: &str) -> bool {
    let mut it = s.bytes();
    !s.starts_with("__")
        && it
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && it.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    fn add(
        &self,
        name: &str,
        help: &str,
        ty: Type,
        labels: &[(&str, &str)],
        make: impl FnOnce() -> Source,
    ) -> Result<Option<Source>, MetricsError> {
        let bad = |why| MetricsError::BadName {
            name: name.into(),
            why,
        };
        if !valid_name(name) {
            return Err(bad("must match [a-zA-Z_:][a-zA-Z0-9_:]*"));
        }
        if !name.starts_with("vigil_") {
            return Err(bad("must start with vigil_"));
        }
        match ty {
            Type::Counter if !name.ends_with("_total") => {
                return Err(bad("a counter's name must end in _total"));
            }
            Type::Gauge | Type::Histogram if name.ends_with("_total") => {
                return Err(bad("only counters end in _total"));
            }
            Type::Histogram
                if ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.ends_with(s)) =>
            {
                return Err(bad(
                    "a histogram's name must not end in _bucket, _sum or _count",
                ));
            }
            _ => {}
        }
        for (l, _) in labels {
            if !valid_label(l) || (ty == Type::Histogram && *l == "le") {
                return Err(MetricsError::BadLabel {
                    name: name.into(),
                    label: (*l).into(),
                });
            }
        }
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let mut fams = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let fam = match fams.iter_mut().position(|f| f.name == name) {
            Some(i) => {
                let f = &mut fams[i];
                if f.ty != ty || f.help != help {
                    return Err(MetricsError::Conflict {
                        name: name.into(),
                        existing: f.ty.as_str(),
                    });
                }
                f
            }
            None => {
                fams.push(Family {
                    name: name.into(),
                    help: help.into(),
                    ty,
                    series: Vec::new(),
                });
                fams.last_mut().expect("pushed")
            }
        };
        if let Some(s) = fam.series.iter_mut().find(|s| s.labels == labels) {
            // Same series again: hand out the same cell (functions replace).
            return Ok(match &s.source {
                Source::Counter(a) => Some(Source::Counter(a.clone())),
                Source::Gauge(a) => Some(Source::Gauge(a.clone())),
                Source::Hist(a) => Some(Source::Hist(a.clone())),
                Source::Fn(_) => {
                    s.source = make();
                    None
                }
            });
        }
        let source = make();
        let out = match &source {
            Source::Counter(a) => Some(Source::Counter(a.clone())),
            Source::Gauge(a) => Some(Source::Gauge(a.clone())),
            Source::Hist(a) => Some(Source::Hist(a.clone())),
            Source::Fn(_) => None,
        };
        fam.series.push(Series { labels, source });
        Ok(out)
    }

    /// A counter (same name and labels: the same counter).
    pub fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<Counter, MetricsError> {
        match self.add(name, help, Type::Counter, labels, || {
            Source::Counter(Arc::default())
        })? {
            Some(Source::Counter(a)) => Ok(Counter(a)),
            _ => Err(MetricsError::Conflict {
                name: name.into(),
                existing: "counter function",
            }),
        }
    }

    /// A gauge.
    pub fn gauge(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<Gauge, MetricsError> {
        match self.add(name, help, Type::Gauge, labels, || {
            Source::Gauge(Arc::default())
        })? {
            Some(Source::Gauge(a)) => Ok(Gauge(a)),
            _ => Err(MetricsError::Conflict {
                name: name.into(),
                existing: "gauge function",
            }),
        }
    }

    /// A histogram whose observations are multiplied by `scale` on
    /// output (observe nanoseconds, name it `_seconds`, scale 1e-9).
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        scale: f64,
    ) -> Result<Histogram, MetricsError> {
        match self.add(name, help, Type::Histogram, labels, || {
            Source::Hist(Arc::new(HistCore {
                scale,
                buckets: std::array::from_fn(|_| AtomicU64::new(0)),
                sum: AtomicU64::new(0),
                count: AtomicU64::new(0),
            }))
        })? {
            Some(Source::Hist(a)) => Ok(Histogram(a)),
            _ => Err(MetricsError::Conflict {
                name: name.into(),
                existing: "histogram",
            }),
        }
    }

    /// A counter read from `f` at each scrape (mirrors a count kept
    /// elsewhere, such as a sink's statistics).
    pub fn counter_fn(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        f: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Result<(), MetricsError> {
        self.counter_fn_f64(name, help, labels, move || f() as f64)
    }

    /// A counter of a non-integral quantity (seconds) read from `f` at
    /// each scrape.
    pub fn counter_fn_f64(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        f: impl Fn() -> f64 + Send + Sync + 'static,
    ) -> Result<(), MetricsError> {
        self.add(name, help, Type::Counter, labels, || {
            Source::Fn(Box::new(f))
        })
        .map(|_| ())
    }

    /// A gauge read from `f` at each scrape.
    pub fn gauge_fn(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        f: impl Fn() -> f64 + Send + Sync + 'static,
    ) -> Result<(), MetricsError> {
        self.add(name, help, Type::Gauge, labels, || Source::Fn(Box::new(f)))
            .map(|_| ())
    }

    /// Removes a histogram's series (the thing it measured is gone, such
    /// as a removed cgroup): the registry holds one series per label set
    /// ever registered, so series of transient things must be removed or
    /// they accumulate for the life of the process. Returns whether it was
    /// registered.
    pub fn remove_histogram(&self, h: &Histogram) -> bool {
        let mut fams = self.families.lock().unwrap_or_else(|p| p.into_inner());
        for f in fams.iter_mut() {
            let before = f.series.len();
            f.series
                .retain(|s| !matches!(&s.source, Source::Hist(a) if Arc::ptr_eq(a, &h.0)));
            if f.series.len() != before {
                return true;
            }
        }
        false
    }

    /// Series registered, over every family.
    pub fn series_count(&self) -> usize {
        let fams = self.families.lock().unwrap_or_else(|p| p.into_inner());
        fams.iter().map(|f| f.series.len()).sum()
    }

    /// The text exposition of every family.
    pub fn render(&self) -> String {
        let fams = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::with_capacity(4096);
        for f in fams.iter() {
            if f.series.is_empty() {
                continue;
            }
            out.push_str("# HELP ");
            out.push_str(&f.name);
            out.push(' ');
            for c in f.help.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            let _ = writeln!(out, "\n# TYPE {} {}", f.name, f.ty.as_str());
            for s in &f.series {
                match &s.source {
                    Source::Counter(a) => sample(
                        &mut out,
                        &f.name,
                        "",
                        &s.labels,
                        None,
                        num(a.load(Relaxed) as f64),
                    ),
                    Source::Gauge(a) => sample(
                        &mut out,
                        &f.name,
                        "",
                        &s.labels,
                        None,
                        num(a.load(Relaxed) as f64),
                    ),
                    Source::Fn(g) => sample(&mut out, &f.name, "", &s.labels, None, num(g())),
                    Source::Hist(h) => {
                        let mut cum = 0u64;
                        for k in 0..BUCKETS {
                            cum += h.buckets[k].load(Relaxed);
                            let le = num(h.scale * (1u64 << k) as f64);
                            sample(
                                &mut out,
                                &f.name,
                                "_bucket",
                                &s.labels,
                                Some(&le),
                                cum.to_string(),
                            );
                        }
                        cum += h.buckets[BUCKETS].load(Relaxed);
                        sample(
                            &mut out,
                            &f.name,
                            "_bucket",
                            &s.labels,
                            Some("+Inf"),
                            cum.to_string(),
                        );
                        let sum = h.sum.load(Relaxed) as f64 * h.scale;
                        sample(&mut out, &f.name, "_sum", &s.labels, None, num(sum));
                        // count = the +Inf bucket, read once (consistent)
                        sample(
                            &mut out,
                            &f.name,
                            "_count",
                            &s.labels,
                            None,
                            cum.to_string(),
                        );
                    }
                }
            }
        }
        out
    }
}

/// A float as Prometheus text (`NaN`, `+Inf`, `-Inf`, else Rust's
/// shortest round-trip form).
fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(String, String)],
    le: Option<&str>,
    value: String,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        let all = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(le.map(|l| ("le", l)));
        for (k, v) in all {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&value);
    out.push('\n');
}

/// The names (and help) of vigil's metrics, shared by the engine, the
/// sinks and `outputs/grafana/vigil.json`.
pub mod names {
    /// Events decoded per sensor (label `sensor`).
    pub const SENSOR_EVENTS: (&str, &str) =
        ("vigil_sensor_events_total", "Events decoded, per sensor.");
    /// Events the kernel dropped per sensor (label `sensor`).
    pub const SENSOR_DROPS: (&str, &str) = (
        "vigil_sensor_dropped_events_total",
        "Events lost in the kernel (ring buffer full), per sensor.",
    );
    /// Alerts per rule and severity (labels `rule`, `severity`).
    pub const ALERTS: (&str, &str) = (
        "vigil_alerts_total",
        "Alerts raised, per rule and severity.",
    );
    /// Alerts suppressed by rate limiting (label `rule`).
    pub const ALERTS_SUPPRESSED: (&str, &str) = (
        "vigil_alerts_suppressed_total",
        "Alerts suppressed by the per-rule rate limit.",
    );
    /// Rule evaluation time per event (histogram, seconds).
    pub const RULE_EVAL: (&str, &str) = (
        "vigil_rule_evaluation_seconds",
        "Time to evaluate all rules against one event.",
    );
    /// BPF program run time in seconds (label `program`; sampled with
    /// bpf_stats).
    pub const BPF_RUN_TIME: (&str, &str) = (
        "vigil_bpf_program_run_seconds_total",
        "CPU time spent in each BPF program in seconds (kernel bpf_stats, counted while sampling is on).",
    );
    /// BPF program runs (label `program`).
    pub const BPF_RUNS: (&str, &str) = (
        "vigil_bpf_program_runs_total",
        "Runs of each BPF program (kernel bpf_stats).",
    );
    /// BPF program runs the kernel skipped (label `program`).
    pub const BPF_MISSED: (&str, &str) = (
        "vigil_bpf_program_missed_runs_total",
        "Runs of each BPF program the kernel skipped because a BPF program was already running on that CPU (recursion_misses): events lost before any drop counter.",
    );
    /// Events lost to a pipeline worker that panicked (no labels).
    pub const WORKER_LOST: (&str, &str) = (
        "vigil_pipeline_worker_lost_events_total",
        "Events lost to a pipeline worker that panicked: the one it panicked on, the rest of its batch, those it held waiting for a hash and those still queued for it.",
    );
    /// Records offered to a sink (label `sink`).
    pub const OUT_SUBMITTED: (&str, &str) = (
        "vigil_output_records_submitted_total",
        "Records offered to the sink.",
    );
    /// Records written to a sink's transport (label `sink`).
    pub const OUT_SENT: (&str, &str) = (
        "vigil_output_records_sent_total",
        "Records written to the sink's transport (including re-sent ones).",
    );
    /// Records written to a sink's spool (label `sink`).
    pub const OUT_SPOOLED: (&str, &str) = (
        "vigil_output_records_spooled_total",
        "Records written to the sink's on-disk spool.",
    );
    /// Records re-sent from a sink's spool (label `sink`).
    pub const OUT_RESENT: (&str, &str) = (
        "vigil_output_records_resent_total",
        "Records sent from the spool after an outage.",
    );
    /// Records dropped (labels `sink`, `reason`).
    pub const OUT_DROPPED: (&str, &str) = (
        "vigil_output_records_dropped_total",
        "Records lost, per sink and reason (queue_full, spool_full, shutdown).",
    );
    /// Records truncated to fit (label `sink`).
    pub const OUT_TRUNCATED: (&str, &str) = (
        "vigil_output_records_truncated_total",
        "Records whose values were cut to fit the transport's size limit.",
    );
    /// Connect and write errors (label `sink`).
    pub const OUT_ERRORS: (&str, &str) = (
        "vigil_output_errors_total",
        "Connect and write errors of the sink.",
    );
    /// Records queued in memory (label `sink`).
    pub const OUT_QUEUE: (&str, &str) = (
        "vigil_output_queue_records",
        "Records waiting in the sink's memory queue.",
    );
    /// Records in the spool (label `sink`).
    pub const OUT_SPOOL_RECORDS: (&str, &str) = (
        "vigil_output_spool_records",
        "Records waiting in the sink's spool.",
    );
    /// Spool size (label `sink`).
    pub const OUT_SPOOL_BYTES: (&str, &str) = (
        "vigil_output_spool_bytes",
        "Size of the sink's spool on disk.",
    );
    /// 1 when connected (label `sink`).
    pub const OUT_CONNECTED: (&str, &str) = (
        "vigil_output_connected",
        "1 when the sink is connected to its receiver.",
    );

    /// Every name above (the Grafana dashboard uses only these).
    pub const ALL: &[(&str, &str)] = &[
        SENSOR_EVENTS,
        SENSOR_DROPS,
        ALERTS,
        ALERTS_SUPPRESSED,
        RULE_EVAL,
        BPF_RUN_TIME,
        BPF_RUNS,
        BPF_MISSED,
        OUT_SUBMITTED,
        OUT_SENT,
        OUT_SPOOLED,
        OUT_RESENT,
        OUT_DROPPED,
        OUT_TRUNCATED,
        OUT_ERRORS,
        OUT_QUEUE,
        OUT_SPOOL_RECORDS,
        OUT_SPOOL_BYTES,
        OUT_CONNECTED,
    ];
}

/// Connections the endpoint serves at once; more are closed on accept
/// (and counted in [`MetricsServer::refused`]).
pub const MAX_CONNECTIONS: usize = 16;

/// Time a client has to send its request head.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// Time one connection may live, whatever the client does.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(15);

/// The `/metrics` HTTP endpoint: hyper (HTTP/1.1), served by tasks on the
/// tokio runtime it is started on (the agent's: its worker thread serves
/// scrapes while the event loop runs on the agent's own thread, so neither
/// a scrape nor a hostile client waits on, or holds up, the event loop).
/// At most [`MAX_CONNECTIONS`] at once; a client gets [`REQUEST_DEADLINE`]
/// for its request head and [`CONNECTION_DEADLINE`] in all, so a slow
/// client cannot hold a scrape up. Dropping it stops the listener and
/// every open connection.
pub struct MetricsServer {
    addr: SocketAddr,
    refused: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Listens on `addr` (vigil's default is `127.0.0.1:9464`; port 0
    /// picks a free one, see [`MetricsServer::local_addr`]) and serves it
    /// on `rt`. A runtime whose only thread is busy elsewhere serves no
    /// scrape meanwhile: give it a multi-thread runtime (one worker will
    /// do) when the caller's own thread runs a loop of its own.
    pub fn start(
        rt: &tokio::runtime::Handle,
        addr: SocketAddr,
        registry: Arc<Registry>,
    ) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("metrics endpoint {addr}: {e}")))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = {
            let _in_rt = rt.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let refused = Arc::new(AtomicU64::new(0));
        let task = rt.spawn(accept_loop(listener, registry, refused.clone()));
        Ok(MetricsServer {
            addr,
            refused,
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections closed on accept because [`MAX_CONNECTIONS`] were open.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        // The accept loop owns the connections (a JoinSet): aborting it
        // closes the listener and every connection.
        self.task.abort();
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    refused: Arc<AtomicU64>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            // reap finished connections as they end
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let stream = match conn {
            Ok((s, _)) => s,
            // Out of descriptors and the like: back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refused.fetch_add(1, Relaxed);
            continue;
        };
        let reg = registry.clone();
        conns.spawn(async move {
            let _permit = permit;
            let svc = hyper::service::service_fn(move |req| {
                let reg = reg.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&req, &reg)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(REQUEST_DEADLINE)
                .keep_alive(false)
                .title_case_headers(true)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
        });
    }
}

type Body = http_body_util::Full<hyper::body::Bytes>;

fn respond<B>(req: &hyper::Request<B>, reg: &Registry) -> hyper::Response<Body> {
    use hyper::{Method, StatusCode, header};
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            reg.render(),
        ),
        (&Method::GET | &Method::HEAD, _) => {
            (StatusCode::NOT_FOUND, "text/plain", "see /metrics\n".into())
        }
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        ),
    };
    let len = body.len();
    let body = if req.method() == Method::HEAD {
        hyper::body::Bytes::new()
    } else {
        hyper::body::Bytes::from(body)
    };
    let mut r = hyper::Response::new(http_body_util::Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_histograms_leave_the_exposition_and_the_registry() {
        let reg = Registry::new();
        let keep = reg
            .histogram("vigil_c_seconds", "C.", &[("cgroup", "/a")], 1e-6)
            .unwrap();
        let gone = reg
            .histogram("vigil_c_seconds", "C.", &[("cgroup", "/b")], 1e-6)
            .unwrap();
        keep.observe(5);
        gone.observe(7);
        assert_eq!(reg.series_count(), 2);
        assert!(reg.render().contains("cgroup=\"/b\""));
        assert!(reg.remove_histogram(&gone));
        assert!(!reg.remove_histogram(&gone), "already removed");
        assert_eq!(reg.series_count(), 1);
        let text = reg.render();
        assert!(!text.contains("cgroup=\"/b\""), "{text}");
        assert!(
            text.contains("vigil_c_seconds_count{cgroup=\"/a\"} 1\n"),
            "{text}"
        );
        // The same labels again start a new series from zero.
        let again = reg
            .histogram("vigil_c_seconds", "C.", &[("cgroup", "/b")], 1e-6)
            .unwrap();
        assert_eq!(again.count(), 0);
        assert_eq!(reg.series_count(), 2);
    }

    #[test]
    fn pre_bucketed_histogram_matches_single_observations() {
        let reg = Registry::new();
        let a = reg
            .histogram("vigil_a_seconds", "A.", &[("k", "1")], 1e-6)
            .unwrap();
        let b = reg
            .histogram("vigil_b_seconds", "B.", &[("k", "1")], 1e-6)
            .unwrap();
        // values 0, 1, 3, 3, 1000 (us): buckets le 1, 1, 4, 4, 1024
        for v in [0u64, 1, 3, 3, 1000] {
            a.observe(v);
        }
        let mut counts = [0u64; 11];
        counts[0] = 2;
        counts[2] = 2;
        counts[10] = 1;
        b.add_buckets(&counts, 1007);
        assert_eq!(a.count(), b.count());
        let text = reg.render();
        let series = |name: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with(name))
                .map(|l| l.split_once('{').map(|x| x.1).unwrap_or(l).to_string())
                .collect()
        };
        assert_eq!(series("vigil_a_seconds"), series("vigil_b_seconds"));
        assert!(
            text.contains("vigil_b_seconds_bucket{k=\"1\",le=\"0.000004\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("vigil_b_seconds_count{k=\"1\"} 5\n"),
            "{text}"
        );
        // counts past the last bucket land in +Inf
        let c = reg.histogram("vigil_c_seconds", "C.", &[], 1.0).unwrap();
        let mut far = vec![0u64; BUCKETS + 3];
        far[BUCKETS + 2] = 7;
        c.add_buckets(&far, 0);
        let text = reg.render();
        assert!(
            text.contains("vigil_c_seconds_bucket{le=\"+Inf\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("vigil_c_seconds_bucket{le=\"1\"} 0\n"),
            "{text}"
        );
    }
}
