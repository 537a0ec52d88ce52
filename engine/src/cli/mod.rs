//! The `vigil` command line: argument parsing ([`Cli`]) and one module per
//! command. `run`/`record` start the agent ([`crate::pipeline`]), `replay`
//! runs a capture through it ([`crate::capture`]); the others work offline.

mod baseline;
pub mod baseline_cmd;
mod config_cmd;
pub mod generate;
pub mod probe;
mod replay_cmd;
pub mod report;
pub mod report_flame;
pub mod report_tools;
mod rules;
mod run;

use crate::config::Config;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// The `vigil` command line (`Cli::parse()`, then [`Cli::run`]).
#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Linux host security and anomaly-detection auditing engine (eBPF)"
)]
pub struct Cli {
    /// TOML configuration file (every key optional; see docs/config.md).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
pub(crate) struct OutputArgs {
    /// Emit every event, not only alerts.
    #[arg(long)]
    pub(crate) events: bool,
    /// Where records go (repeatable): `stdout`, a file path (created 0600),
    /// or a URL such as `syslog+tcp://127.0.0.1:6514?format=rfc5424`,
    /// `syslog+tls://siem:6514?ca=/etc/vigil/ca.pem`, `file:///var/log/vigil.json?rotate_mb=100`
    /// (docs/outputs.md). `replay` takes stdout or one file.
    #[arg(long, short)]
    pub(crate) output: Vec<String>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464).
    #[arg(long)]
    pub(crate) metrics: Option<String>,
    /// Rule file or folder (vigil YAML or Sigma; repeatable), loaded after
    /// the built-in rules; `PATH@LEVEL` (informational, low, medium, high,
    /// critical) loads only its rules of that level or above (default: every
    /// vigil rule, and Sigma rules from `[rules] min_level`, medium).
    #[arg(long = "rules", value_name = "PATH[@LEVEL]")]
    pub(crate) rules: Vec<PathBuf>,
    /// Do not load the built-in rules.
    #[arg(long)]
    pub(crate) no_builtin_rules: bool,
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
        /// Monitor mode for `action: kill` rules: report "would kill" in
        /// the alert, kill nothing (`response.monitor`).
        #[arg(long)]
        dry_run: bool,
    },
    /// Show which sensors this kernel supports, from a real load and attach.
    Probe {
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
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
        /// Print one JSON object (per-cgroup histograms) instead of the text.
        #[arg(long)]
        json: bool,
        /// Instead, a BCC-style view of a kernel-work tool (kmem,
        /// slabratetop, memleak, overlayfs, kpages, numamove, workq,
        /// softirqs, hardirqs, tasklets) or of the CPU profiler (profile)
        /// summed over the metric records in --records.
        #[arg(long, requires = "records")]
        tool: Option<String>,
        /// vigil's JSON lines output holding the tool's metric records.
        #[arg(long)]
        records: Option<PathBuf>,
        /// Instead, the CPU profiler's stacks: writes FLAME.folded and
        /// FLAME.svg (a flame graph; mode 0600) from the folded stacks the
        /// agent kept in the data directory.
        #[arg(long, value_name = "FLAME", conflicts_with = "tool")]
        flame: Option<PathBuf>,
        /// With --flame: only cgroups whose path contains this text.
        #[arg(long, requires = "flame")]
        cgroup: Option<String>,
    },
    /// Check, test and list rules (no root needed).
    Rules {
        #[command(subcommand)]
        cmd: rules::RulesCmd,
    },
    /// Learned baselines: list, show, promote, demote, reset, diff, export, import.
    Baseline {
        #[command(subcommand)]
        cmd: baseline::BaselineCmd,
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
        /// Print this process's tree (its ancestors, itself and its
        /// descendants) with each process's events, instead of records.
        #[arg(long, value_name = "PID")]
        tree: Option<u32>,
    },
    /// Check a configuration file as `vigil run` would, or show the
    /// effective configuration (no root needed).
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Write man pages, shell completions and the default configuration
    /// file into DIR (packaging; not shown in help).
    #[command(hide = true)]
    Generate {
        /// Output directory (man/, completions/, vigil.toml).
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate FILE (default: the `--config` file) the way `vigil run`
    /// does, without loading a sensor: the keys, the output URLs, the rule
    /// files it names. Exit 0 when run would accept it, 2 with
    /// `file:line: key: message` when not.
    Check {
        /// Configuration file.
        file: Option<PathBuf>,
    },
    /// The effective configuration: every key with its value and where it
    /// came from (`FILE:LINE` or `default`), as TOML that is itself a valid
    /// configuration.
    Show {
        /// Print one JSON object (`{"table.key": {"value", "source"}}`).
        #[arg(long)]
        json: bool,
    },
}

/// The configuration `--config` names (with the text it was read from) or
/// the defaults; exit code 2 and the error on stderr when the file is bad.
fn load_config(path: Option<&PathBuf>) -> Result<(Config, Option<String>), ExitCode> {
    match path {
        None => Ok((Config::default(), None)),
        Some(p) => Config::load_with_text(p)
            .map(|(cfg, text)| (cfg, Some(text)))
            .map_err(|e| {
                eprintln!("vigil: {e}");
                ExitCode::from(2)
            }),
    }
}

/// Restores the default SIGINT/SIGTERM/SIGPIPE dispositions and unblocks
/// SIGINT/SIGTERM/SIGHUP; call first in `main`, before any thread exists.
///
/// With SIGPIPE at its default a command whose reader has gone
/// (`vigil rules list --json | head -1`) ends quietly, killed by SIGPIPE like
/// any Unix filter, instead of panicking on the failed write. The agent
/// commands (`run`, `record`) ignore SIGPIPE again ([`Cli::run`]): for them a
/// closed pipe or socket is a write error their sinks count and report.
pub fn reset_signals() {
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
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

impl Cli {
    /// Runs the parsed command and returns the process exit code.
    pub fn run(self) -> ExitCode {
        let (cfg, cfg_text) = match load_config(self.config.as_ref()) {
            Ok(c) => c,
            Err(code) => return code,
        };
        if matches!(self.cmd, Cmd::Run { .. } | Cmd::Record { .. }) {
            // SAFETY: signal(2) with SIG_IGN, before the agent starts any
            // thread (see `reset_signals`).
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        }
        match self.cmd {
            Cmd::Probe { json } => run::probe(&cfg, json),
            Cmd::Run {
                out,
                disable,
                no_baselines,
                dry_run,
            } => {
                let mut cfg = cfg;
                cfg.response.monitor |= dry_run;
                run::run(cfg, out, disable, no_baselines)
            }
            Cmd::Record { out, duration } => run::record(cfg, out, duration),
            Cmd::Rules { cmd } => rules::rules_cmd(&cfg, cmd),
            Cmd::Report {
                tool: Some(tool),
                records: Some(records),
                since,
                ..
            } => ExitCode::from(report_tools::run(&tool, &records, &since)),
            Cmd::Report {
                flame: Some(flame),
                cgroup,
                since,
                dir,
                ..
            } => {
                let dir = dir.unwrap_or_else(|| cfg.agent.data_dir.clone());
                ExitCode::from(report_flame::run(&dir, &flame, &since, cgroup.as_deref()))
            }
            Cmd::Report {
                since,
                svg,
                dir,
                json,
                ..
            } => {
                let dir = dir.unwrap_or_else(|| cfg.agent.data_dir.clone());
                ExitCode::from(report::run(&dir, &since, svg.as_deref(), json))
            }
            Cmd::Generate { dir } => {
                use clap::CommandFactory as _;
                match generate::generate(Cli::command(), &dir) {
                    Ok(files) => {
                        for f in files {
                            println!("{}", f.display());
                        }
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("vigil: generate {}: {e}", dir.display());
                        ExitCode::from(1)
                    }
                }
            }
            Cmd::Baseline { cmd } => baseline::baseline(&cfg, cmd),
            Cmd::Config {
                cmd: ConfigCmd::Check { file },
            } => match file.as_ref().or(self.config.as_ref()) {
                Some(f) => config_cmd::check(f),
                None => {
                    eprintln!("vigil: config check: name a FILE (or --config FILE)");
                    ExitCode::from(2)
                }
            },
            Cmd::Config {
                cmd: ConfigCmd::Show { json },
            } => config_cmd::show(&cfg, self.config.as_deref().zip(cfg_text.as_deref()), json),
            Cmd::Replay {
                file,
                out,
                no_baselines,
                learn,
                tree,
            } => match tree {
                Some(pid) => replay_cmd::tree(cfg, file, pid),
                None => replay_cmd::replay(cfg, file, out, no_baselines, learn),
            },
        }
    }
}
