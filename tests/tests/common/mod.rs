//! Shared harness for the root tests: start a real agent, trigger real
//! behaviour, wait for the enriched event with a deadline.

#![allow(dead_code)]

pub mod encoders;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};
use vigil_engine::agent::{RunOptions, Running, Summary};
use vigil_engine::config::Config;
use vigil_engine::enrich::Event;

/// A running agent whose every event is tapped.
pub struct Harness {
    pub agent: Option<Running>,
    rx: Receiver<Event>,
    pub seen: Vec<Event>,
    _lock: std::sync::MutexGuard<'static, ()>,
}

pub fn trigger_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vg-trigger"))
}

/// Runs vg-trigger with args and waits for it; returns its pid and stdout.
pub fn trigger(args: &[&str]) -> (u32, String) {
    let child = Command::new(trigger_bin())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn vg-trigger");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait vg-trigger");
    (pid, String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Harness {
    /// Starts an agent with `edit` applied to the default config; `None`
    /// when the test must skip (not root, and skipping is allowed).
    pub fn start(test: &str, edit: impl FnOnce(&mut Config)) -> Option<Harness> {
        Self::start_with(test, edit, None)
    }

    /// Like start, also recording a capture file.
    pub fn start_recording(test: &str, path: PathBuf) -> Option<Harness> {
        Self::start_with(test, |_| {}, Some(path))
    }

    /// Like start, evaluating `rules` and writing every record to `sink`
    /// (as `vigil run --rules R --output F` does).
    pub fn start_with_sink(
        test: &str,
        edit: impl FnOnce(&mut Config),
        sink: Box<dyn vigil_outputs::Sink>,
        rules: std::sync::Arc<vigil_rules::RuleSet>,
    ) -> Option<Harness> {
        Self::start_full(test, edit, None, Some(sink), Some(rules))
    }

    fn start_with(
        test: &str,
        edit: impl FnOnce(&mut Config),
        record: Option<PathBuf>,
    ) -> Option<Harness> {
        Self::start_full(test, edit, record, None, None)
    }

    fn start_full(
        test: &str,
        edit: impl FnOnce(&mut Config),
        record: Option<PathBuf>,
        sink: Option<Box<dyn vigil_outputs::Sink>>,
        rules: Option<std::sync::Arc<vigil_rules::RuleSet>>,
    ) -> Option<Harness> {
        if !vigil_tests::require_root(test) {
            return None;
        }
        let lock = vigil_tests::bpf_lock();
        let mut cfg = Config::default();
        cfg.agent.events = true;
        cfg.sensors.drain_interval_ms = 5;
        edit(&mut cfg);
        let (tx, rx) = channel();
        let agent = Running::spawn(RunOptions {
            sink,
            tap: Some(tx),
            record,
            rules,
            ..RunOptions::new(cfg)
        })
        .unwrap_or_else(|e| panic!("{test}: agent failed to start: {e}"));
        Some(Harness {
            agent: Some(agent),
            rx,
            seen: Vec::new(),
            _lock: lock,
        })
    }

    fn pump(&mut self, until: Instant) {
        while let Ok(ev) = self.rx.recv_timeout(
            until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(20)),
        ) {
            self.seen.push(ev);
        }
    }

    /// Waits up to 5 s for an event matching `pred`; panics with the
    /// kernel drop counters and what was seen when it never comes.
    pub fn expect(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        self.expect_within(what, Duration::from_secs(5), pred)
    }

    /// As `expect` with a deadline.
    pub fn expect_within(
        &mut self,
        what: &str,
        d: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Event {
        let deadline = Instant::now() + d;
        loop {
            if let Some(e) = self.seen.iter().find(|e| pred(e)) {
                return e.clone();
            }
            if Instant::now() >= deadline {
                break;
            }
            self.pump(deadline);
        }
        let summary = self.agent.take().map(|a| a.stop());
        let kinds: Vec<String> = self
            .seen
            .iter()
            .rev()
            .take(15)
            .map(|e| {
                format!(
                    "kind={} pid={} comm={}",
                    e.k.hdr.kind,
                    e.k.hdr.pid,
                    String::from_utf8_lossy(e.k.comm())
                )
            })
            .collect();
        panic!(
            "no event: {what}\nlast events seen: {kinds:#?}\nagent summary (drops per sensor):\n{}",
            match summary {
                Some(Ok(s)) => s.render(),
                Some(Err(e)) => e,
                None => "agent already stopped".into(),
            }
        );
    }

    /// Collects events for `d`.
    pub fn collect_for(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.pump(until);
        }
    }

    /// Stops the agent.
    pub fn stop(mut self) -> Summary {
        self.agent
            .take()
            .expect("running")
            .stop()
            .expect("agent stopped cleanly")
    }
}

/// A configuration with every default-on kernel-work tool (and kmem,
/// slabratetop) off, alerts only, one-second intervals: a test turns on the
/// one tool it checks, so other tools' programs are not under test.
pub fn no_ktools_config() -> Config {
    let mut cfg = Config::default();
    cfg.agent.events = false;
    cfg.perf.interval_s = 1;
    cfg.perf.kmem = false;
    cfg.perf.slabratetop = false;
    cfg.perf.numamove = false;
    cfg.perf.workq = false;
    cfg.perf.softirqs = false;
    cfg.perf.hardirqs = false;
    cfg.perf.tasklets = false;
    cfg
}

pub fn bytes(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

pub fn canon(p: &str) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    std::fs::canonicalize(p)
        .unwrap()
        .as_os_str()
        .as_bytes()
        .to_vec()
}

/// A sink's bytes shared with the test (JSON lines).
#[derive(Clone, Default)]
pub struct Shared(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    /// Every record written so far.
    pub fn records(&self) -> Vec<serde_json::Value> {
        let b = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        b.split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("every output line is JSON"))
            .collect()
    }
}

/// Files and directories removed on drop (whichever each path is).
pub struct Cleanup(pub Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Runs `cmd` to completion with its stdout and stderr discarded (panics
/// when it cannot start); returns its pid (the exec'd program's) and how it
/// ended.
pub fn run_quiet(cmd: &mut Command) -> (u32, std::process::ExitStatus) {
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    (pid, out.status)
}

/// [`run_quiet`] for a command that must succeed; returns its pid.
pub fn run_ok(cmd: &mut Command) -> u32 {
    let (pid, status) = run_quiet(cmd);
    assert!(status.success(), "{cmd:?}: {status:?}");
    pid
}

/// `argv[0]` with the rest as its arguments.
pub fn argv(argv: &[&str]) -> Command {
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..]);
    c
}

/// Writes `text` to `path` with `tee`, a real program (the test process is
/// the agent's own, whose events the kernel leaves out); returns its pid.
pub fn tee(path: &Path, text: &str) -> u32 {
    use std::io::Write;
    let mut child = Command::new("/usr/bin/tee")
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("tee {}: {e}", path.display()));
    let pid = child.id();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "tee {}", path.display());
    pid
}

/// The bytes of each file (`None`: absent), to check that a test left them
/// as they were.
pub fn file_bytes(paths: &[&str]) -> Vec<Option<Vec<u8>>> {
    paths.iter().map(|f| std::fs::read(f).ok()).collect()
}

/// Starts an agent (no rules) on `cfg` whose records all go, as JSON
/// lines, to the returned buffer.
pub fn spawn_json_agent(cfg: Config) -> (Running, Shared) {
    let out = Shared::default();
    let agent = Running::spawn(RunOptions {
        sink: Some(Box::new(vigil_outputs::JsonLines::writer(
            Box::new(out.clone()),
            "test",
        ))),
        ..RunOptions::new(cfg)
    })
    .expect("agent starts");
    (agent, out)
}

/// The probe's row of the kernel-work tool `name` under `cfg`, which must
/// be live; returns its mechanism (the hooks it attached).
pub fn live_ktool(cfg: &Config, name: &str) -> String {
    let status = vigil_engine::probe::ktools_status(cfg);
    let row = status
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("a {name} row"));
    let vigil_bpf::SensorState::Live { mechanism, .. } = &row.state else {
        panic!("{name} not live: {row:?}");
    };
    mechanism.clone()
}

/// The records of `event.dataset` `dataset` that `pred` accepts.
pub fn records_of<'a>(
    records: &'a [serde_json::Value],
    dataset: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Vec<&'a serde_json::Value> {
    records
        .iter()
        .filter(|r| r["event"]["dataset"] == dataset && pred(r))
        .collect()
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A real agent running the built-in rules, its output captured: the
/// harness of the tests that perform an attack and wait for its alert.
pub struct RulesAgent {
    running: Option<Running>,
    /// Every record the agent wrote, as JSON lines.
    pub out: Shared,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl RulesAgent {
    /// Starts the agent with the built-in rules (and `extra_rules`), alerts
    /// only, holding the BPF lock; `None` when the test may skip.
    pub fn start(test: &str, extra_rules: Option<&Path>) -> Option<RulesAgent> {
        if !vigil_tests::require_root(test) {
            return None;
        }
        let lock = vigil_tests::bpf_lock();
        let mut cfg = Config::default();
        cfg.agent.events = false;
        cfg.agent.housekeeping_interval_s = 1;
        cfg.sensors.drain_interval_ms = 5;
        let mut l = vigil_rules::Loader::new();
        l.add_builtin();
        if let Some(p) = extra_rules {
            // PATH or PATH@LEVEL, as `vigil run --rules` takes it
            l.add_rules_arg(p);
        }
        let (set, report) = l.load();
        assert!(report.errors.is_empty(), "{test}: {:?}", report.errors);
        let out = Shared::default();
        let sink = vigil_outputs::JsonLines::writer(Box::new(out.clone()), "test");
        let running = Running::spawn(RunOptions {
            sink: Some(Box::new(sink)),
            rules: Some(std::sync::Arc::new(set)),
            ..RunOptions::new(cfg)
        })
        .unwrap_or_else(|e| panic!("{test}: agent failed to start: {e}"));
        Some(RulesAgent {
            running: Some(running),
            out,
            _lock: lock,
        })
    }

    /// Waits for an alert of `rule` satisfying `pred`.
    pub fn expect(
        &self,
        rule: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        vigil_tests::wait_for(Duration::from_secs(15), || {
            self.out
                .records()
                .into_iter()
                .find(|a| a["rule"]["id"] == rule && pred(a))
        })
        .unwrap_or_else(|| {
            panic!(
                "no alert of rule {rule} matched; alerts seen: {:#?}",
                self.out
                    .records()
                    .iter()
                    .map(|a| (a["rule"]["id"].clone(), a["message"].clone()))
                    .collect::<Vec<_>>()
            )
        })
    }
}

impl Drop for RulesAgent {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop_and_detach();
        }
    }
}
