//! `vigil baseline ...`: argument parsing; the work is in
//! [`crate::baseline_cmd`].

use crate::config::Config;
use clap::{Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(crate) enum BaselineCmd {
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
        /// Mode for created profiles.
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
    },
}

/// `vigil baseline import --mode`.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ModeArg {
    Learning,
    Monitoring,
    Locked,
}

/// `vigil baseline ...`.
pub(crate) fn baseline(cfg: &Config, cmd: BaselineCmd) -> ExitCode {
    use crate::baseline_cmd::Op;
    let op = match cmd {
        BaselineCmd::List => Op::List,
        BaselineCmd::Show { profile } => Op::Show(profile),
        BaselineCmd::Diff { profile } => Op::Diff(profile),
        BaselineCmd::Promote { profile, locked } => Op::Promote(profile, locked),
        BaselineCmd::Demote { profile } => Op::Demote(profile),
        BaselineCmd::Reset { profile } => Op::Reset(profile),
        BaselineCmd::Export { profiles, format } => Op::Export(profiles, format),
        BaselineCmd::Import { file, mode } => {
            let m = mode.map(|m| match m {
                ModeArg::Learning => vigil_baselines::Mode::Learning,
                ModeArg::Monitoring => vigil_baselines::Mode::Monitoring,
                ModeArg::Locked => vigil_baselines::Mode::Locked,
            });
            Op::Import(file, m)
        }
    };
    let (text, code) = crate::baseline_cmd::run(cfg, op);
    if code == 0 {
        print!("{text}");
    } else {
        eprint!("{text}");
    }
    ExitCode::from(code)
}
