//! `vigil run`, `vigil record` and `vigil probe`: the commands that load the
//! sensors (root required) and, for run and record, drive the agent loop
//! ([`crate::pipeline::agent`]) until a signal or the duration ends.

use super::OutputArgs;
use super::rules::{apply_rule_args, load_rules_or_exit};
use crate::config::Config;
use crate::{agent, probe};
use anyhow::Context as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `vigil probe`.
pub(crate) fn probe(cfg: &Config, json: bool) -> ExitCode {
    if let Err(c) = require_root("probe") {
        return c;
    }
    let r = probe::probe_result(cfg);
    if json {
        println!("{}", r.to_json());
    } else {
        print!("{}", probe::render(&r));
    }
    if r.live() == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `vigil run`.
pub(crate) fn run(
    mut cfg: Config,
    out: OutputArgs,
    disable: Vec<String>,
    no_baselines: bool,
) -> ExitCode {
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
            log::error!("--disable {d}: unknown sensor (see `vigil probe`)");
            return ExitCode::from(2);
        }
        cfg.sensors.disabled.push(d);
    }
    if no_baselines {
        cfg.baselines.enabled = false;
    }
    let baselines = if cfg.baselines.enabled {
        if let Err(e) = cfg.ensure_data_dir() {
            log::error!("{e}");
            return ExitCode::from(2);
        }
        match vigil_baselines::Baselines::open(&cfg.baselines_dir(), cfg.baselines.learner()) {
            Ok(b) => {
                log::info!(
                    "baselines: {} profiles in {}",
                    b.len(),
                    cfg.baselines_dir().display()
                );
                Some(b)
            }
            Err(e) => {
                log::error!("baselines: {e} (--no-baselines runs without them)");
                return ExitCode::from(1);
            }
        }
    } else {
        None
    };
    exit_code(run_agent(
        cfg,
        Some(out),
        None,
        None,
        Some(rules),
        baselines,
    ))
}

/// `vigil record`.
pub(crate) fn record(cfg: Config, out: PathBuf, duration: Option<u64>) -> ExitCode {
    if let Err(c) = require_root("record") {
        return c;
    }
    exit_code(run_agent(cfg, None, Some(out), duration, None, None))
}

fn require_root(what: &str) -> Result<(), ExitCode> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        log::error!(
            "`vigil {what}` loads eBPF sensors and needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)"
        );
        return Err(ExitCode::from(1));
    }
    Ok(())
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

fn exit_code(r: anyhow::Result<agent::Summary>) -> ExitCode {
    match r {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
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
    // One worker besides this thread: the agent's loop runs here (block_on)
    // and the tasks it spawns (the /metrics endpoint) on the worker, so a
    // scrape never waits for the loop to reach an await.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("vigil-rt")
        .enable_all()
        .build()
        .context("tokio runtime")?;
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
        log::info!("outputs: {}", urls.join(", "));
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
            let server =
                vigil_outputs::metrics::MetricsServer::start(rt.handle(), addr, reg.clone())?;
            log::info!("metrics on http://{addr}/metrics");
            _metrics_server = Some(server);
            metrics = Some(reg);
        }
        outputs = Some(Arc::new(outs));
    }
    let shutdown_timeout = std::time::Duration::from_secs(cfg.outputs.shutdown_timeout_s);
    let outs_handle = outputs.clone();
    rt.block_on(async move {
        // Signal handlers before "sensors live": a supervisor that stops or
        // reloads the agent as soon as it reports ready must not hit the
        // default actions (SIGTERM/SIGINT/SIGHUP terminate). The SIGHUP
        // stream made here is the one the loop reloads on: a SIGHUP that
        // arrives while the sensors load is kept and acted on once the loop
        // runs. (The runtime's worker delivers a signal to the streams that
        // exist when it arrives: a stream made later would never see it.)
        let stop_signal = shutdown_signal().context("install SIGTERM/SIGINT handlers")?;
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("install the SIGHUP handler")?;
        let opts = agent::RunOptions {
            outputs,
            metrics,
            record,
            verbose: true,
            rules,
            sighup: Some(hup),
            baselines,
            drop_privileges: true,
            perf_history: true,
            sd_notify: true,
            ..agent::RunOptions::new(cfg.clone())
        };
        let mut sensors = agent::start_sensors(&cfg, &opts.interest())?;
        let live = sensors.status().iter().filter(|s| s.is_live()).count();
        log::info!(
            "{live}/{} sensors live in {} ms ({}); `vigil probe` explains the rest",
            sensors.status().len(),
            sensors.attach_time.as_millis(),
            if cfg.agent.events {
                "emitting every event"
            } else {
                "emitting alerts only; --events for every event"
            }
        );
        log::info!(
            "start-up: {}",
            sensors
                .load_phases
                .iter()
                .map(|(what, d)| format!("{what} {} ms", d.as_millis()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        crate::pipeline::warn_unavailable(sensors.status());
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
                    log::info!(
                        "output {}: {} sent, {} left in the spool for the next start, {} dropped",
                        st.url,
                        st.sent,
                        st.spool_records,
                        d
                    );
                }
            }
        }
        // The summary first: detaching waits for kernel grace periods.
        for l in summary.render().lines() {
            // The summary's loss lines are warnings (`journalctl -p warning`).
            let target = crate::logging::VERBATIM;
            if l.contains("WARNING") || l.contains(" lost to ") {
                log::warn!(target: target, "{l}");
            } else {
                log::info!(target: target, "{l}");
            }
        }
        log::info!("detaching sensors");
        drop(sensors);
        Ok(summary)
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
