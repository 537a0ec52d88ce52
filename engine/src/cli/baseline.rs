//! `vigil baseline ...`: argument parsing; the work is in
//! [`crate::baseline_cmd`].

use crate::config::Config;
use clap::{Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(crate) enum BaselineCmd {
    /// Profiles with mode, age, readiness, counts, the loss flag and the
    /// process names (comm, argv[0]) seen running them.
    List {
        /// Only profiles in this mode.
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
        /// Only profiles one of whose process names is NAME, or whose
        /// profile key contains NAME (e.g. `redis-server`, `nginx`).
        #[arg(long)]
        name: Option<String>,
        /// Print a JSON array (one object per profile) instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Everything a profile learned (the YAML whitelist).
    Show {
        /// Profile (as `list` prints it).
        profile: String,
        /// Print the profile as one JSON object instead of YAML.
        #[arg(long)]
        json: bool,
    },
    /// What a monitored profile saw since promotion (JSON; pretty-printed
    /// unless --json).
    Diff {
        /// Profile.
        profile: String,
        /// Print compact JSON on one line.
        #[arg(long)]
        json: bool,
    },
    /// Start reporting anything outside the baseline.
    Promote {
        /// Profile.
        profile: String,
        /// Locked: drift kills the process (and a new child it spawned), is
        /// reported, and is never added to the baseline.
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
        /// Mode for created profiles.
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
    },
}

/// `vigil baseline import --mode`, `vigil baseline list --mode`.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ModeArg {
    Learning,
    Monitoring,
    Locked,
}

/// `vigil baseline ...`.
pub(crate) fn baseline(cfg: &Config, cmd: BaselineCmd) -> ExitCode {
    use crate::baseline_cmd::{ListFilter, Op};
    let mode_of = |m: ModeArg| match m {
        ModeArg::Learning => vigil_baselines::Mode::Learning,
        ModeArg::Monitoring => vigil_baselines::Mode::Monitoring,
        ModeArg::Locked => vigil_baselines::Mode::Locked,
    };
    let op = match cmd {
        BaselineCmd::List { mode, name, json } => Op::ListWith(ListFilter {
            mode: mode.map(mode_of),
            name,
            json,
        }),
        BaselineCmd::Show { profile, json } => Op::ShowWith(profile, json),
        BaselineCmd::Diff { profile, json } => Op::DiffWith(profile, json),
        BaselineCmd::Promote { profile, locked } => Op::Promote(profile, locked),
        BaselineCmd::Demote { profile } => Op::Demote(profile),
        BaselineCmd::Reset { profile } => Op::Reset(profile),
        BaselineCmd::Export { profiles, format } => Op::Export(profiles, format),
        BaselineCmd::Import { file, mode } => Op::Import(file, mode.map(mode_of)),
    };
    let (text, code) = crate::baseline_cmd::run(cfg, op);
    if code == 0 {
        print!("{text}");
    } else {
        eprint!("{text}");
    }
    ExitCode::from(code)
}
