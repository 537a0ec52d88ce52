//! `vigil-eval`: the evaluation a user can run on their own host.
//!
//! ```text
//! vigil-eval compare [--quick] [--rounds N] [--scale F] [--only auditd-watch,vigil,...]
//!                    [--vigil-toml TOML]  (appended to vigil's config)
//!                    [--vigil-old PATH]   (another vigil binary as one more tool, same rounds)
//! vigil-eval flood   [--quick] [--seconds S]
//! vigil-eval outage  [--quick]
//! vigil-eval crash   [--quick] [--iterations N]
//! vigil-eval soak    [--quick] [--minutes M]
//! vigil-eval sustain [--quick] [--rate N] [--seconds S] [--threads T]
//! vigil-eval agent-cost [--rates 10000,30000,max] [--seconds S] [--rounds N]
//!                    [--threads T] [--vigil-old PATH]  (agent CPU per record, old vs new)
//! vigil-eval benign  [--rules PATH[@LEVEL]]... [--as-root] [--max N]
//! vigil-eval all     [--quick]          (everything but the soak)
//! vigil-eval atomics --dir DIR [--only T1053.003,...] [--rules PATH]... [--json]
//!                    (coverage against an Atomic Red Team checkout; see atomics.rs)
//! ```
//!
//! Root is required (it loads vigil's sensors, starts auditd and bpftrace).
//! Every subcommand runs the real `vigil` binary found next to this one,
//! checks what it claims and exits 1 with the failed check. Whatever it
//! changes (the kernel's audit rules, agents, floods, receivers, temporary
//! directories) is undone on exit, on error and on SIGINT/SIGTERM/SIGHUP;
//! auditd's kernel state is left as `auditctl -D; -e 0; -a never,task`.
//! `scripts/eval.sh` is the documented entry point (it builds first).

mod atomics;
mod benign;
mod compare;
mod crash;
mod flood;
mod outage;
mod soak;
mod sustain;
#[allow(dead_code)] // parts are for the flood, outage, crash and soak steps
mod util;
#[allow(dead_code)]
mod work;

fn usage() -> ! {
    eprintln!(
        "usage: vigil-eval compare|flood|outage|crash|soak|sustain|agent-cost|benign|all|atomics [--quick] [options] (root; see scripts/eval.sh)"
    );
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { usage() };
    if cmd == "work" {
        work::main(&args[1..]);
        return;
    }
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("vigil-eval: needs root (loads eBPF, starts auditd and bpftrace)");
        std::process::exit(2);
    }
    util::install_signal_cleanup();
    let rest = &args[1..];
    let r = match cmd.as_str() {
        "atomics" => atomics::main(rest),
        "compare" => compare::main(rest),
        "soak" => soak::main(rest),
        "sustain" => sustain::main(rest),
        "agent-cost" => sustain::cost_main(rest),
        "benign" => benign::main(rest),
        "flood" => flood::main(rest),
        "outage" => outage::main(rest),
        "crash" => crash::main(rest),
        "all" => compare::main(rest)
            .and_then(|()| flood::main(rest))
            .and_then(|()| outage::main(rest))
            .and_then(|()| crash::main(rest)),
        _ => usage(),
    };
    util::run_all_cleanups();
    if let Err(e) = r {
        eprintln!("vigil-eval {cmd}: FAILED: {e}");
        std::process::exit(1);
    }
}
