//! `vigil replay`: a capture through enrichment, rules and baselines
//! ([`crate::capture::replay`]), offline and without root.

use super::OutputArgs;
use super::rules::{apply_rule_args, load_rules_or_exit};
use crate::config::Config;
use crate::replay;
use std::path::PathBuf;
use std::process::ExitCode;
use vigil_outputs::{JsonLines, Sink};

/// `vigil replay`.
pub(crate) fn replay(
    mut cfg: Config,
    file: PathBuf,
    out: OutputArgs,
    no_baselines: bool,
    learn: bool,
) -> ExitCode {
    if let Some(m) = &out.metrics {
        eprintln!("vigil: replay --metrics {m}: replay serves no metrics (only `vigil run` does)");
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

/// `vigil replay FILE --tree PID`.
pub(crate) fn tree(mut cfg: Config, file: PathBuf, pid: u32) -> ExitCode {
    cfg.agent.events = true;
    let rules = match load_rules_or_exit(&cfg) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    match replay::replay_with(&file, &cfg, Some(rules), None, Some(tx), |_, _| {}) {
        Ok(_) => {
            let events: Vec<_> = rx.try_iter().collect();
            print!("{}", crate::capture::replay::render_tree(&events, pid));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigil: {e}");
            ExitCode::from(2)
        }
    }
}
