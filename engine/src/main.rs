//! The `vigil` command line. Thin: parse, build the config, call the library.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use vigil_engine::{agent, config::Config, detect, probe, replay};
use vigil_outputs::{JsonLines, Sink};

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Linux host security and anomaly-detection auditing engine (eBPF)"
)]
struct Cli {
    /// TOML configuration file (every key optional; see docs/config.md).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct OutputArgs {
    /// Emit every event, not only alerts.
    #[arg(long)]
    events: bool,
    /// Where records go (repeatable): `stdout`, a file path (created 0600),
    /// or a URL such as `syslog+tcp://127.0.0.1:6514?format=rfc5424`,
    /// `syslog+tls://siem:6514?ca=/etc/vigil/ca.pem`, `file:///var/log/vigil.json?rotate_mb=100`
    /// (docs/outputs.md). `replay` takes stdout or one file.
    #[arg(long, short)]
    output: Vec<String>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464).
    #[arg(long)]
    metrics: Option<String>,
    /// Rule file or folder (vigil YAML or Sigma; repeatable), loaded after
    /// the built-in rules.
    #[arg(long = "rules")]
    rules: Vec<PathBuf>,
    /// Do not load the built-in rules.
    #[arg(long)]
    no_builtin_rules: bool,
}

#[derive(Subcommand)]
enum BaselineCmd {
    /// Profiles with mode, age, counts and the loss flag.
    List,
    /// Everything a profile learned (the YAML whitelist).
    Show {
        /// Profile (as `list` prints it).
        profile: String,
    },
    /// What a monitored profile saw since promotion.
    Diff {
        /// Profile.
        profile: String,
    },
    /// Start reporting anything outside the baseline.
    Promote {
        /// Profile.
        profile: String,
        /// Locked: report, and never add to the baseline.
        #[arg(long)]
        locked: bool,
    },
    /// Back to learning.
    Demote {
        /// Profile.
        profile: String,
    },
    /// Forget what a profile learned.
    Reset {
        /// Profile.
        profile: String,
    },
    /// Export a whitelist (yaml), an OCI seccomp profile or vigil rules.
    Export {
        /// Profiles (seccomp and rules: exactly one).
        #[arg(required = true)]
        profiles: Vec<String>,
        /// yaml | seccomp | rules
        #[arg(long, default_value = "yaml")]
        format: String,
    },
    /// Merge a YAML whitelist (union of sets).
    Import {
        /// File written by `export --format yaml`.
        file: PathBuf,
        /// Mode for created profiles (learning, monitoring, locked).
        #[arg(long)]
        mode: Option<String>,
    },
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Load rule files and folders and report what loaded, what was skipped
    /// (with the reason) and every error (exit 2 on errors).
    Check {
        /// Files or folders; none = the built-in rules plus the configured ones.
        paths: Vec<PathBuf>,
        /// List every skipped Sigma rule, not only counts per reason.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Run every rule's embedded `examples` (exit 1 if one fails).
    Test {
        /// Files or folders; none = the built-in rules plus the configured ones.
        paths: Vec<PathBuf>,
    },
    /// Print the loaded rules (id, severity, ruleset, categories, name).
    List {
        /// Files or folders; none = the built-in rules plus the configured ones.
        paths: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the agent until SIGINT/SIGTERM (root required).
    Run {
        #[command(flatten)]
        out: OutputArgs,
        /// Sensors to leave off (repeatable), e.g. --disable readline.
        #[arg(long = "disable")]
        disable: Vec<String>,
        /// Do not learn baselines or report drift.
        #[arg(long)]
        no_baselines: bool,
    },
    /// Show which sensors this kernel supports, from a real load and attach.
    Probe,
    /// Run-queue latency per container from the perf history the agent
    /// kept: ASCII histograms, and an SVG heat map (no root needed, works
    /// while the agent runs or after).
    Report {
        /// How far back: 30s, 10m, 2h, 1d.
        #[arg(long, default_value = "10m")]
        since: String,
        /// Also write an SVG latency heat map to this file (mode 0600).
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Directory holding perf-history.jsonl (default: agent.data_dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Check, test and list rules (no root needed).
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
    /// Learned baselines: list, show, promote, demote, reset, diff, export, import.
    Baseline {
        #[command(subcommand)]
        cmd: BaselineCmd,
    },
    /// Capture raw events (with what replay needs to enrich them) to a file.
    Record {
        /// Capture file to write (mode 0600).
        #[arg(long)]
        out: PathBuf,
        /// Stop after this many seconds (default: until SIGINT/SIGTERM).
        #[arg(long)]
        duration: Option<u64>,
    },
    /// Re-run enrichment, rules and baselines over a capture (no root needed).
    /// The capture is checked against the baselines in the data directory
    /// (read-only: promoted profiles report drift, nothing is stored).
    Replay {
        /// Capture file.
        file: PathBuf,
        #[command(flatten)]
        out: OutputArgs,
        /// Do not check the capture against the baselines.
        #[arg(long, conflicts_with = "learn")]
        no_baselines: bool,
        /// Store what learning profiles learned from the capture (the
        /// database must not be open in a running agent).
        #[arg(long)]
        learn: bool,
    },
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    match path {
        None => Ok(Config::default()),
        Some(p) => Config::load(p).map_err(|e| {
            eprintln!("vigil: {e}");
            ExitCode::from(2)
        }),
    }
}

fn sink_for(cfg: &Config, out: &OutputArgs) -> anyhow::Result<Box<dyn Sink>> {
    if out.output.len() > 1 {
        anyhow::bail!("replay writes to one output (stdout or a file path)");
    }
    let path = match out.output.first() {
        Some(o) if o == "stdout" => None,
        Some(o) if o.starts_with('/') => Some(PathBuf::from(o)),
        Some(o) => anyhow::bail!("replay writes to stdout or a file path, not `{o}`"),
        None => (cfg.agent.output != "stdout").then(|| PathBuf::from(&cfg.agent.output)),
    };
    Ok(match path {
        Some(p) => Box::new(JsonLines::file(&p)?),
        None => Box::new(JsonLines::stdout()),
    })
}

/// The output URLs of a run: `--output` values, else `[outputs] urls`,
/// else `agent.output`; a bare absolute path is a file.
fn output_urls(cfg: &Config, out: &OutputArgs) -> Vec<String> {
    let raw: Vec<String> = if !out.output.is_empty() {
        out.output.clone()
    } else if !cfg.outputs.urls.is_empty() {
        cfg.outputs.urls.clone()
    } else {
        vec![cfg.agent.output.clone()]
    };
    raw.into_iter()
        .map(|u| {
            if u.starts_with('/') {
                format!("file://{u}")
            } else {
                u
            }
        })
        .collect()
}

/// SIGTERM or SIGINT. The handlers are installed when this is called, not
/// when the future is first polled: from then on neither signal can kill
/// the agent with its default action (no drain, no summary), and one that
/// arrives before the future is polled is still seen.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

fn require_root(what: &str) -> Result<(), ExitCode> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "vigil: `vigil {what}` loads eBPF sensors and needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)"
        );
        return Err(ExitCode::from(1));
    }
    Ok(())
}

fn main() -> ExitCode {
    // A shell starting vigil in the background sets SIGINT to "ignored",
    // and an ignored signal stays ignored: restore the defaults so SIGINT
    // and SIGTERM reach the agent's handlers (it drains, flushes, summarizes).
    // A blocked mask is inherited across exec too (a wrapper that blocks
    // signals to sigwait for them, e.g.): a blocked SIGINT/SIGTERM/SIGHUP
    // would make the agent impossible to stop cleanly or reload. Unblock them.
    // SAFETY: signal(2) with default dispositions and pthread_sigmask with a
    // valid set, before any thread exists.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    let cli = Cli::parse();
    let mut cfg = match load_config(cli.config.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match cli.cmd {
        Cmd::Probe => {
            if let Err(c) = require_root("probe") {
                return c;
            }
            let (text, live) = probe::probe(&cfg);
            print!("{text}");
            if live == 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Cmd::Run {
            out,
            disable,
            no_baselines,
        } => {
            if let Err(c) = require_root("run") {
                return c;
            }
            cfg.agent.events |= out.events;
            apply_rule_args(&mut cfg, &out);
            let rules = match load_rules_or_exit(&cfg) {
                Ok(r) => r,
                Err(c) => return c,
            };
            for d in disable {
                if vigil_bpf::sensors::sensor(&d).is_none() {
                    eprintln!("vigil: --disable {d}: unknown sensor (see `vigil probe`)");
                    return ExitCode::from(2);
                }
                cfg.sensors.disabled.push(d);
            }
            if no_baselines {
                cfg.baselines.enabled = false;
            }
            let baselines = if cfg.baselines.enabled {
                if let Err(e) = cfg.ensure_data_dir() {
                    eprintln!("vigil: {e}");
                    return ExitCode::from(2);
                }
                match vigil_baselines::Baselines::open(
                    &cfg.baselines_dir(),
                    cfg.baselines.learner(),
                ) {
                    Ok(b) => {
                        eprintln!(
                            "vigil: baselines: {} profiles in {}",
                            b.len(),
                            cfg.baselines_dir().display()
                        );
                        Some(b)
                    }
                    Err(e) => {
                        eprintln!("vigil: baselines: {e} (--no-baselines runs without them)");
                        return ExitCode::from(1);
                    }
                }
            } else {
                None
            };
            report(run_agent(
                cfg,
                Some(out),
                None,
                None,
                Some(rules),
                baselines,
            ))
        }
        Cmd::Record { out, duration } => {
            if let Err(c) = require_root("record") {
                return c;
            }
            report(run_agent(cfg, None, Some(out), duration, None, None))
        }
        Cmd::Rules { cmd } => rules_cmd(&cfg, cmd),
        Cmd::Report { since, svg, dir } => {
            let dir = dir.unwrap_or_else(|| cfg.agent.data_dir.clone());
            ExitCode::from(vigil_engine::report::run(&dir, &since, svg.as_deref()))
        }
        Cmd::Baseline { cmd } => {
            use vigil_engine::baseline_cmd::Op;
            let op = match cmd {
                BaselineCmd::List => Op::List,
                BaselineCmd::Show { profile } => Op::Show(profile),
                BaselineCmd::Diff { profile } => Op::Diff(profile),
                BaselineCmd::Promote { profile, locked } => Op::Promote(profile, locked),
                BaselineCmd::Demote { profile } => Op::Demote(profile),
                BaselineCmd::Reset { profile } => Op::Reset(profile),
                BaselineCmd::Export { profiles, format } => Op::Export(profiles, format),
                BaselineCmd::Import { file, mode } => {
                    let m = match mode.as_deref() {
                        None => None,
                        Some("learning") => Some(vigil_baselines::Mode::Learning),
                        Some("monitoring") => Some(vigil_baselines::Mode::Monitoring),
                        Some("locked") => Some(vigil_baselines::Mode::Locked),
                        Some(m) => {
                            eprintln!("vigil: --mode {m}: one of learning, monitoring, locked");
                            return ExitCode::from(2);
                        }
                    };
                    Op::Import(file, m)
                }
            };
            let (text, code) = vigil_engine::baseline_cmd::run(&cfg, op);
            if code == 0 {
                print!("{text}");
            } else {
                eprint!("{text}");
            }
            ExitCode::from(code)
        }
        Cmd::Replay {
            file,
            out,
            no_baselines,
            learn,
        } => {
            if let Some(m) = &out.metrics {
                eprintln!(
                    "vigil: replay --metrics {m}: replay serves no metrics (only `vigil run` does)"
                );
                return ExitCode::from(2);
            }
            cfg.agent.events |= out.events;
            apply_rule_args(&mut cfg, &out);
            let baselines = if no_baselines || !cfg.baselines.enabled {
                None
            } else {
                let dir = cfg.baselines_dir();
                let opened = if learn {
                    vigil_baselines::Baselines::open(&dir, cfg.baselines.learner())
                } else {
                    vigil_baselines::Baselines::snapshot(&dir, cfg.baselines.learner())
                };
                match opened {
                    Ok(b) => {
                        eprintln!(
                            "vigil: baselines: {} profiles from {} ({})",
                            b.len(),
                            dir.display(),
                            if learn {
                                "learning is stored"
                            } else {
                                "read-only"
                            }
                        );
                        Some(b)
                    }
                    Err(e) => {
                        eprintln!("vigil: baselines: {e} (--no-baselines replays without them)");
                        return ExitCode::from(1);
                    }
                }
            };
            let rules = match load_rules_or_exit(&cfg) {
                Ok(r) => r,
                Err(c) => return c,
            };
            let sink = match sink_for(&cfg, &out) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("vigil: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let t = std::time::Instant::now();
            let res = replay::replay_checked(
                &file,
                &cfg,
                Some(rules),
                baselines,
                Some(sink),
                None,
                |n, off| {
                    eprintln!("vigil: replayed {n} records ({} MiB)", off >> 20);
                },
            );
            match res {
                Ok((s, b)) => {
                    eprintln!(
                        "vigil: replayed {} records in {:.2}s: {} written, {} alerts, {} anomalies, {} decode errors, {} lookups unanswered",
                        s.records,
                        t.elapsed().as_secs_f64(),
                        s.pipeline.written,
                        s.pipeline.alerts,
                        s.pipeline.anomalies,
                        s.pipeline.decode_errors,
                        s.lookup_misses
                    );
                    if let Some(mut b) = b
                        && let Err(e) = b.flush()
                    {
                        eprintln!("vigil: baselines: cannot store what was learned: {e}");
                        return ExitCode::from(1);
                    }
                    if let Some(t) = s.truncated {
                        eprintln!("vigil: capture ends early: {t}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("vigil: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn report(r: anyhow::Result<agent::Summary>) -> ExitCode {
    match r {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run_agent(
    cfg: Config,
    out: Option<OutputArgs>,
    record: Option<PathBuf>,
    duration: Option<u64>,
    rules: Option<Arc<vigil_rules::RuleSet>>,
    baselines: Option<vigil_baselines::Baselines>,
) -> anyhow::Result<agent::Summary> {
    let mut outputs = None;
    let mut metrics = None;
    let mut _metrics_server = None;
    if let Some(o) = &out {
        let urls = output_urls(&cfg, o);
        let remote = urls.iter().any(|u| u.starts_with("syslog"));
        if remote && let Err(e) = cfg.ensure_data_dir() {
            anyhow::bail!("{e}");
        }
        let outs = vigil_outputs::Outputs::open(&urls, Some(&cfg.spool_dir()))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        eprintln!("vigil: outputs: {}", urls.join(", "));
        let listen = o
            .metrics
            .clone()
            .unwrap_or_else(|| cfg.outputs.metrics_listen.clone());
        if !listen.is_empty() {
            let addr: std::net::SocketAddr = listen
                .parse()
                .map_err(|_| anyhow::anyhow!("--metrics {listen}: not an address:port"))?;
            let reg = Arc::new(vigil_outputs::metrics::Registry::new());
            outs.register_metrics(&reg);
            let server = vigil_outputs::metrics::MetricsServer::start(addr, reg.clone())?;
            eprintln!("vigil: metrics on http://{addr}/metrics");
            _metrics_server = Some(server);
            metrics = Some(reg);
        }
        outputs = Some(Arc::new(outs));
    }
    let shutdown_timeout = std::time::Duration::from_secs(cfg.outputs.shutdown_timeout_s);
    let outs_handle = outputs.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(async move {
        let opts = agent::RunOptions {
            outputs,
            metrics,
            record,
            verbose: true,
            rules,
            reload_on_sighup: true,
            baselines,
            drop_privileges: true,
            perf_history: true,
            ..agent::RunOptions::new(cfg.clone())
        };
        // Signal handlers before "sensors live": a supervisor that stops or
        // reloads the agent as soon as it reports ready must not hit the
        // default actions (SIGTERM/SIGINT/SIGHUP terminate). A SIGHUP before
        // the rules are running is absorbed (they were just loaded).
        let stop_signal = shutdown_signal().context("install SIGTERM/SIGINT handlers")?;
        let _early_hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("install the SIGHUP handler")?;
        let mut sensors = agent::start_sensors(&cfg, &opts.interest())?;
        let live = sensors.status().iter().filter(|s| s.is_live()).count();
        eprintln!(
            "vigil: {live}/{} sensors live in {} ms ({}); `vigil probe` explains the rest",
            sensors.status().len(),
            sensors.attach_time.as_millis(),
            if cfg.agent.events {
                "emitting every event"
            } else {
                "emitting alerts only; --events for every event"
            }
        );
        for s in sensors.status() {
            if let vigil_bpf::SensorState::Unavailable(f) = &s.state {
                eprintln!(
                    "vigil: sensor={} unavailable: {}",
                    s.name,
                    f.last().map(|x| x.1.as_str()).unwrap_or("?")
                );
            }
        }
        let stop = async move {
            match duration {
                Some(d) => tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(d)) => {},
                    _ = stop_signal => {},
                },
                None => stop_signal.await,
            }
        };
        let summary = agent::run(opts, &mut sensors, stop).await?;
        // Deliver what the outputs still hold (the rest stays in the spool).
        if let Some(o) = outs_handle.and_then(|a| Arc::try_unwrap(a).ok()) {
            let stats = o.shutdown(shutdown_timeout);
            for st in stats {
                let d = st.dropped();
                if d > 0 || st.spool_records > 0 {
                    eprintln!(
                        "vigil: output {}: {} sent, {} left in the spool for the next start, {} dropped",
                        st.url, st.sent, st.spool_records, d
                    );
                }
            }
        }
        // The summary first: detaching waits for kernel grace periods.
        eprint!("{}", summary.render());
        eprintln!("vigil: detaching sensors");
        drop(sensors);
        Ok(summary)
    })
}

fn apply_rule_args(cfg: &mut Config, out: &OutputArgs) {
    if out.no_builtin_rules {
        cfg.rules.builtin = false;
    }
    cfg.rules.paths.extend(out.rules.iter().cloned());
}

fn load_rules_or_exit(cfg: &Config) -> Result<Arc<vigil_rules::RuleSet>, ExitCode> {
    let (set, report) = detect::load_rules(cfg);
    if !report.errors.is_empty() {
        eprint!("{}", detect::render_errors(&report));
        eprintln!(
            "vigil: {} errors in the rules; fix them (`vigil rules check` lists them)",
            report.errors.len()
        );
        return Err(ExitCode::from(2));
    }
    eprintln!(
        "vigil: {} rules loaded ({} vigil, {} Sigma; {} Sigma rules skipped, `vigil rules check` says why)",
        set.len(),
        report.vigil_rules,
        report.sigma_rules,
        report.skipped.len()
    );
    let all = &set.interest().all_opens_rules;
    if !all.is_empty() {
        eprintln!(
            "vigil: {} rules test files without a path prefix, so every open leaves the kernel (e.g. {})",
            all.len(),
            all[0]
        );
    }
    Ok(Arc::new(set))
}

fn rules_for(cfg: &Config, paths: &[PathBuf]) -> (vigil_rules::RuleSet, vigil_rules::Report) {
    if paths.is_empty() {
        return detect::load_rules(cfg);
    }
    let mut l = vigil_rules::Loader::new();
    for p in paths {
        l.add_path(p);
    }
    l.load()
}

fn rules_cmd(cfg: &Config, cmd: RulesCmd) -> ExitCode {
    match cmd {
        RulesCmd::Check { paths, verbose } => {
            let t = std::time::Instant::now();
            let (set, r) = rules_for(cfg, &paths);
            print!("{}", detect::check_report(&set, &r, verbose, t.elapsed()));
            if r.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        RulesCmd::Test { paths } => {
            let (set, r) = rules_for(cfg, &paths);
            if !r.errors.is_empty() {
                eprint!("{}", detect::render_errors(&r));
                return ExitCode::from(2);
            }
            let (n, failures) = set.test_examples();
            for f in &failures {
                println!("FAIL {}", detect::terminal_safe(f));
            }
            println!(
                "{} examples of {} rules: {} passed, {} failed",
                n,
                set.len(),
                n - failures.len(),
                failures.len()
            );
            if failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        RulesCmd::List { paths } => {
            let (set, r) = rules_for(cfg, &paths);
            if !r.errors.is_empty() {
                eprint!("{}", detect::render_errors(&r));
                return ExitCode::from(2);
            }
            for rule in set.rules() {
                println!(
                    "{:<40} {:<8} {:<6} {:<22} {}",
                    vigil_rules::printable(&rule.id),
                    rule.severity.as_str(),
                    rule.ruleset.as_str(),
                    vigil_rules::cat::names(rule.categories).join(","),
                    vigil_rules::printable(&rule.name)
                );
            }
            ExitCode::SUCCESS
        }
    }
}
