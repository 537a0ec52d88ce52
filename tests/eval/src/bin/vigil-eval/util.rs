//! Shared pieces: child processes, /proc sampling, the vigil agent as a
//! child, a Prometheus scrape, cleanup on signals, statistics.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Result type of the evaluation steps: a failed check is an `Err` with a
/// sentence, which `main` prints and turns into exit code 1.
pub type R<T> = Result<T, String>;

/// Formats an error with its context.
pub fn ctx<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

// ---------------------------------------------------------------- cleanup

type Cleanup = Box<dyn FnOnce() + Send>;

static CLEANUPS: Mutex<Vec<(u64, Option<Cleanup>)>> = Mutex::new(Vec::new());
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Something to undo if the run is interrupted (SIGINT/SIGTERM/SIGHUP) or
/// fails: the undo runs when the guard is dropped, or from the signal
/// thread. Dropping runs it once.
pub struct Guard(u64);

impl Guard {
    /// Registers `f` to run on drop or on a signal.
    pub fn new(f: impl FnOnce() + Send + 'static) -> Guard {
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        CLEANUPS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, Some(Box::new(f))));
        Guard(id)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let f = {
            let mut v = CLEANUPS.lock().unwrap_or_else(|e| e.into_inner());
            let f = v
                .iter_mut()
                .find(|(id, _)| *id == self.0)
                .and_then(|(_, f)| f.take());
            v.retain(|(id, _)| *id != self.0);
            f
        };
        if let Some(f) = f {
            f();
        }
    }
}

static SIGNAL_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(std::sync::atomic::Ordering::Relaxed);
    let b = sig as u8;
    // SAFETY: write(2) is async-signal-safe; one byte from a valid buffer.
    unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
}

/// On SIGINT, SIGTERM or SIGHUP runs every registered cleanup (newest
/// first) and exits 130. The signals are caught by a handler that writes to
/// a pipe read by a cleanup thread, not blocked: a blocked mask would be
/// inherited by every child (vigil, auditd, bpftrace) across exec, and they
/// could then not be stopped with SIGINT/SIGTERM. Caught signals revert to
/// their defaults in an exec'd child. Call first in `main`.
pub fn install_signal_cleanup() {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        eprintln!("vigil-eval: pipe2 failed: no cleanup on signals");
        return;
    }
    SIGNAL_PIPE.store(fds[1], std::sync::atomic::Ordering::Relaxed);
    let rd = fds[0];
    std::thread::spawn(move || {
        let mut b = 0u8;
        // SAFETY: reads one byte into a valid buffer.
        let n = unsafe { libc::read(rd, (&mut b as *mut u8).cast(), 1) };
        if n == 1 {
            eprintln!("\nvigil-eval: signal {b}: cleaning up (audit rules, agents, floods)");
            run_all_cleanups();
            std::process::exit(130);
        }
    });
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installs a handler that only calls write(2).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Runs every registered cleanup, newest first.
pub fn run_all_cleanups() {
    let fs: Vec<Cleanup> = {
        let mut v = CLEANUPS.lock().unwrap_or_else(|e| e.into_inner());
        v.drain(..).rev().filter_map(|(_, f)| f).collect()
    };
    for f in fs {
        f();
    }
}

/// Kills (SIGKILL) and reaps a child when dropped.
pub struct KillOnDrop(pub Option<Child>);

impl KillOnDrop {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.0.as_ref().map(|c| c.id()).unwrap_or(0)
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ------------------------------------------------------------ processes

/// Runs a command to completion; `Err` with its stderr when it fails.
pub fn sh(prog: &str, args: &[&str]) -> R<String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{prog}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{prog} {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sends a signal to a pid (ignoring a pid that is gone).
pub fn signal(pid: u32, sig: i32) {
    if pid > 1 {
        // SAFETY: kill(2) with a positive pid we started.
        unsafe { libc::kill(pid as i32, sig) };
    }
}

/// CPU time (user + system) of every live thread of `pid`, ns, from
/// /proc/PID/task/*/schedstat (exact, unlike the tick-based /proc/PID/stat).
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    let mut sum = 0;
    for t in rd.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            sum += s
                .split_whitespace()
                .next()
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    sum
}

/// A `kB` line (`VmRSS:`, `RssAnon:`, ...) of /proc/PID/status, KiB (0 when
/// gone).
fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resident set size of `pid`, KiB (0 when gone).
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// Anonymous resident memory of `pid` (`RssAnon`: its heap and stacks,
/// without the binary and the ring buffer mappings), KiB (0 when gone).
pub fn rss_anon_kib(pid: u32) -> u64 {
    status_kib(pid, "RssAnon:")
}

/// Pids whose comm is exactly `name` (kernel threads included).
pub fn pids_named(name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == name) {
                out.push(pid);
            }
        }
    }
    out
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> R<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(ctx("bind 127.0.0.1:0"))?;
    Ok(l.local_addr().map_err(ctx("local_addr"))?.port())
}

/// A private (0700) temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `/tmp/vigil-eval-TAG-PID-N`.
    pub fn new(tag: &str) -> R<TempDir> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("vigil-eval-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).map_err(ctx(&p.display().to_string()))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700));
        Ok(TempDir(p))
    }
    /// A path inside.
    pub fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("VIGIL_EVAL_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The `vigil` binary next to this one.
pub fn vigil_bin() -> R<PathBuf> {
    let me = std::env::current_exe().map_err(ctx("current_exe"))?;
    let p = me.with_file_name("vigil");
    if !p.exists() {
        return Err(format!(
            "{} not found: build it (cargo build --release -p vigil-engine)",
            p.display()
        ));
    }
    Ok(p)
}

// ------------------------------------------------------------- the agent

/// `vigil run` as a child process with its own data dir, config and
/// metrics port; stderr collected line by line.
pub struct Agent {
    child: KillOnDrop,
    /// stderr lines so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
    /// Metrics address.
    pub metrics: String,
    /// Its pid.
    pub pid: u32,
    /// The `N/M sensors live in T ms` line it printed.
    pub live_line: String,
    _guard: Guard,
}

/// How to start an agent.
pub struct AgentOpts<'a> {
    /// Data dir (baselines, spool).
    pub data_dir: &'a Path,
    /// `--output` URLs.
    pub outputs: Vec<String>,
    /// `--events`.
    pub events: bool,
    /// Extra TOML appended to the generated config.
    pub extra_toml: &'a str,
    /// Extra command-line arguments of `run`.
    pub args: Vec<String>,
}

impl Agent {
    /// Starts the agent and waits (up to 30 s) until its sensors are live.
    pub fn start(o: AgentOpts<'_>) -> R<Agent> {
        Self::start_with(&vigil_bin()?, o)
    }

    /// [`Agent::start`] with another `vigil` binary (an older build, for
    /// side-by-side comparisons).
    pub fn start_with(bin: &Path, o: AgentOpts<'_>) -> R<Agent> {
        let port = free_port()?;
        let metrics = format!("127.0.0.1:{port}");
        let cfg = o.data_dir.join("vigil-eval.toml");
        std::fs::create_dir_all(o.data_dir).map_err(ctx("data dir"))?;
        let toml = format!(
            "[agent]\ndata_dir = {:?}\n{}\n",
            o.data_dir.join("data").display().to_string(),
            o.extra_toml
        );
        std::fs::write(&cfg, toml).map_err(ctx("config"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(&cfg)
            .arg("run")
            .arg("--metrics")
            .arg(&metrics);
        if o.events {
            cmd.arg("--events");
        }
        for u in &o.outputs {
            cmd.arg("--output").arg(u);
        }
        cmd.args(&o.args);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(ctx("spawn vigil run"))?;
        let pid = child.id();
        let guard = Guard::new(move || signal(pid, libc::SIGKILL));
        let err = child.stderr.take().ok_or("no stderr")?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let s2 = stderr.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                s2.lock().unwrap_or_else(|e| e.into_inner()).push(l.clone());
                let _ = tx.send(l);
            }
        });
        let mut a = Agent {
            child: KillOnDrop(Some(child)),
            stderr,
            lines: rx,
            metrics,
            pid,
            live_line: String::new(),
            _guard: guard,
        };
        a.live_line = a.wait_line("sensors live", Duration::from_secs(30))?;
        // the metrics server may start a moment later
        let end = Instant::now() + Duration::from_secs(5);
        while scrape(&a.metrics).is_err() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(a)
    }

    /// Waits for a stderr line containing `what`.
    pub fn wait_line(&mut self, what: &str, d: Duration) -> R<String> {
        let end = Instant::now() + d;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(what) => return Ok(l),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "vigil exited before printing {what:?}; stderr:\n{}",
                        self.stderr_text()
                    ));
                }
            }
        }
        Err(format!(
            "vigil did not print {what:?} within {d:?}; stderr:\n{}",
            self.stderr_text()
        ))
    }

    /// Everything it printed on stderr.
    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// Is it still running?
    pub fn alive(&mut self) -> bool {
        self.child
            .0
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGINT, wait (up to 60 s) for exit 0; returns its stderr.
    pub fn stop(mut self) -> R<String> {
        signal(self.pid, libc::SIGINT);
        let mut c = self.child.0.take().ok_or("no child")?;
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            match c.try_wait() {
                Ok(Some(st)) => {
                    // let the reader thread take the last lines
                    std::thread::sleep(Duration::from_millis(100));
                    let text = self.stderr_text();
                    if !st.success() {
                        return Err(format!("vigil exited with {st}; stderr:\n{text}"));
                    }
                    return Ok(text);
                }
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    let text = self.stderr_text();
                    let tail: Vec<&str> = text.lines().rev().take(40).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    return Err(format!(
                        "vigil did not exit within 60 s of SIGINT; last stderr lines:\n{}",
                        tail.join("\n")
                    ));
                }
            }
        }
    }

    /// SIGKILL now (no flush, no summary).
    pub fn kill9(mut self) {
        if let Some(mut c) = self.child.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sum of a metric over its label sets (0 when absent).
    pub fn metric(&self, name: &str) -> R<f64> {
        Ok(metric_sum(&scrape(&self.metrics)?, name, ""))
    }
}

/// GET /metrics.
pub fn scrape(addr: &str) -> R<String> {
    let mut s = std::net::TcpStream::connect(addr).map_err(ctx(addr))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .map_err(ctx("metrics request"))?;
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(ctx("metrics read"))?;
    Ok(body)
}

/// Sum of `name` over the series whose labels contain `label_has`.
pub fn metric_sum(text: &str, name: &str, label_has: &str) -> f64 {
    let mut sum = 0.0;
    for l in text.lines() {
        if l.starts_with('#') {
            continue;
        }
        let Some(rest) = l.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if !label_has.is_empty() && !rest.contains(label_has) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            sum += v;
        }
    }
    sum
}

// ------------------------------------------------------------ statistics

/// Median (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Least-squares slope of y over x.
pub fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len().min(ys.len()) as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let mut num = 0.0;
    let mut den = 0.0;
    for (x, y) in xs.iter().zip(ys) {
        num += (x - mx) * (y - my);
        den += (x - mx) * (x - mx);
    }
    if den == 0.0 { 0.0 } else { num / den }
}

/// Small xorshift generator (reproducible with a seed).
pub struct Rng(pub u64);

impl Rng {
    /// Next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in lo..hi.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

/// Reads a JSON-lines file from byte `from`; calls `f` on every parsed
/// object; returns the new end offset. A torn last line is left for later.
pub fn scan_json(path: &Path, from: u64, mut f: impl FnMut(&serde_json::Value)) -> u64 {
    use std::io::Seek;
    let Ok(mut file) = std::fs::File::open(path) else {
        return from;
    };
    if file.seek(std::io::SeekFrom::Start(from)).is_err() {
        return from;
    }
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut off = from;
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if line.last() != Some(&b'\n') {
                    break;
                }
                off += n as u64;
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) {
                    f(&v);
                }
            }
        }
    }
    off
}

/// Waits until `path` stops growing for `quiet` (at most `max`).
pub fn settle(path: &Path, quiet: Duration, max: Duration) {
    let end = Instant::now() + max;
    let mut last = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut since = Instant::now();
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
        let now = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}

/// Prints a progress line to stderr.
pub fn progress(s: impl AsRef<str>) {
    eprintln!("vigil-eval: {}", s.as_ref());
}
