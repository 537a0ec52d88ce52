//! The `vigil` command line. Thin: parse, then run the command (`cli/`).

use clap::Parser as _;
use std::process::ExitCode;
use vigil_engine::cli::{Cli, reset_signals};

fn main() -> ExitCode {
    // Before any thread exists: a shell or wrapper may have left SIGINT
    // ignored or SIGINT/SIGTERM/SIGHUP blocked (see `reset_signals`).
    reset_signals();
    vigil_engine::logging::init();
    Cli::parse().run()
}
