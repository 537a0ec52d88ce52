//! Crash loop: the agent learns baselines (sled, in its data dir) while a
//! workload feeds it new observations, and is killed with SIGKILL at a
//! random moment (seeded, reproducible), over and over. First a baseline is
//! learned and promoted (the profile of `/usr/bin/cat`), and exported; the
//! loop keeps `cat` reading files it never read before (so the promoted
//! profile is written to: items seen since promotion) and runs the mixed
//! workload (learning profiles grow). After every kill:
//! - `vigil baseline list` opens the database (exit 0, no error);
//! - the promoted profile is still promoted, and its export (`--format
//!   rules`, the whitelist content; and the YAML whitelist with the
//!   per-item counters and times taken out) is identical to the one taken
//!   before the loop;
//! - the next agent opens the database and starts.

use crate::util::*;
use crate::work;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// `vigil --config CFG baseline ARGS...`: (exit code, stdout, stderr).
fn baseline(cfg: &Path, args: &[&str]) -> R<(i32, String, String)> {
    let out = Command::new(vigil_bin()?)
        .arg("--config")
        .arg(cfg)
        .arg("baseline")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(ctx("vigil baseline"))?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The YAML whitelist without the lines that legitimately change while a
/// promoted profile keeps running (per-item counters and times).
fn yaml_content(y: &str) -> String {
    y.lines()
        .filter(|l| {
            let t = l.trim_start().trim_start_matches("- ");
            !["count:", "observations:", "last_seen_ns:"]
                .iter()
                .any(|k| t.starts_with(k))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `cat /etc/hostname FILE` every 50 ms, FILE cycling through `files`
/// from `start`, until stopped.
fn cat_loop(
    files: Arc<Vec<String>>,
    start: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut i = start;
        while !stop.load(Ordering::Relaxed) {
            let f = &files[i % files.len().max(1)];
            let _ = Command::new("/usr/bin/cat")
                .args(["/etc/hostname", f])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            i += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// `vigil-eval crash [--quick] [--iterations N] [--seed S] [--max-ms M]`
pub fn main(args: &[String]) -> R<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut iterations: u64 = if quick { 10 } else { 100 };
    let mut seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut max_ms: u64 = 3000;
    let mut i = 0;
    while i < args.len() {
        let val = |i: usize| {
            args.get(i + 1).and_then(|s| {
                s.strip_prefix("0x")
                    .map(|h| u64::from_str_radix(h, 16).ok())
                    .unwrap_or_else(|| s.parse::<u64>().ok())
            })
        };
        match args[i].as_str() {
            "--quick" => {}
            "--iterations" => {
                iterations = val(i).filter(|n| *n > 0).ok_or("--iterations N (> 0)")?;
                i += 1;
            }
            "--seed" => {
                seed = val(i).filter(|n| *n != 0).ok_or("--seed S (not 0)")?;
                i += 1;
            }
            "--max-ms" => {
                max_ms = val(i).filter(|n| *n >= 10).ok_or("--max-ms M (>= 10)")?;
                i += 1;
            }
            a => return Err(format!("crash: unknown argument {a}")),
        }
        i += 1;
    }
    let dir = TempDir::new("crash")?;
    let root = dir.join("vigil");
    let cfg = root.join("vigil-eval.toml");
    // flush the baselines every second (housekeeping), so kills land
    // before, during and after flushes
    let extra = "housekeeping_interval_s = 1\nheartbeat_interval_s = 0\n";
    let alerts = format!(
        "file://{}?rotate_mb=16&keep=1",
        dir.join("alerts.json").display()
    );
    let start = || {
        Agent::start(AgentOpts {
            data_dir: &root,
            outputs: vec![alerts.clone()],
            events: false,
            extra_toml: extra,
            args: vec![],
        })
    };
    progress(format!(
        "crash: {iterations} kill -9 iterations, seed {seed:#x} (--seed {seed:#x} repeats them), each kill between 50 ms after the start and --max-ms {max_ms} ms after the sensors are live"
    ));

    // ---- a promoted baseline: the profile of cat
    let t_start = Instant::now();
    let agent = start()?;
    let ready_ms = t_start.elapsed().as_millis() as u64;
    for f in ["/etc/passwd", "/etc/os-release", "/etc/hosts"] {
        let _ = Command::new("/usr/bin/cat")
            .args(["/etc/hostname", f])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
    }
    std::thread::sleep(Duration::from_millis(2500));
    agent.stop()?;
    let (code, list, err) = baseline(&cfg, &["list"])?;
    if code != 0 {
        return Err(format!("vigil baseline list: exit {code}: {err}"));
    }
    let profile = list
        .split_whitespace()
        .find(|w| w.starts_with("exe:/usr/bin/cat@"))
        .ok_or_else(|| format!("no profile of /usr/bin/cat learned; list:\n{list}"))?
        .to_string();
    let (code, _, err) = baseline(&cfg, &["promote", &profile])?;
    if code != 0 {
        return Err(format!("vigil baseline promote: exit {code}: {err}"));
    }
    let export = |fmt: &str| -> R<String> {
        let (code, out, err) = baseline(&cfg, &["export", &profile, "--format", fmt])?;
        if code != 0 {
            return Err(format!(
                "vigil baseline export --format {fmt}: exit {code}: {err}"
            ));
        }
        Ok(out)
    };
    let rules0 = export("rules")?;
    let yaml0 = yaml_content(&export("yaml")?);
    let mode_line = |list: &str| {
        list.lines()
            .find(|l| l.contains(&profile))
            .map(|l| l.to_string())
            .unwrap_or_default()
    };
    if !mode_line(&baseline(&cfg, &["list"])?.1).contains("monitoring") {
        return Err(format!("{profile} is not in monitoring mode after promote"));
    }
    progress(format!(
        "crash: promoted {profile} ({} lines of rules exported)",
        rules0.lines().count()
    ));
    // files cat has not read: items new to the promoted profile
    let mut files: Vec<String> = std::fs::read_dir("/etc")
        .map_err(ctx("/etc"))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path().display().to_string())
        .filter(|p| {
            ![
                "/etc/passwd",
                "/etc/os-release",
                "/etc/hosts",
                "/etc/hostname",
                "/etc/shadow",
                "/etc/gshadow",
            ]
            .contains(&p.as_str())
        })
        .collect();
    files.sort();
    let files = Arc::new(files);

    let mut rng = Rng(seed);
    let mut kills_ms = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut profiles_seen = 0usize;
    let mut after_ready = 0u64;
    let t0 = Instant::now();
    for it in 0..iterations {
        let kill_ms = rng.range(50, ready_ms + max_ms);
        kills_ms.push(kill_ms);
        // started directly (not waiting for "sensors live"): the kill may
        // come while it opens the database and attaches, or while it runs
        let mut child = Command::new(vigil_bin()?)
            .arg("--config")
            .arg(&cfg)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(ctx("spawn vigil run"))?;
        let apid = child.id();
        let aguard = Guard::new(move || signal(apid, libc::SIGKILL));
        let ready = Arc::new(AtomicBool::new(false));
        let agent_err = Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(e) = child.stderr.take() {
            let (r2, e2) = (ready.clone(), agent_err.clone());
            std::thread::spawn(move || {
                use std::io::BufRead;
                for l in std::io::BufReader::new(e).lines().map_while(Result::ok) {
                    if l.contains("sensors live") {
                        r2.store(true, Ordering::SeqCst);
                    }
                    let mut g = e2.lock().unwrap_or_else(|p| p.into_inner());
                    g.push_str(&l);
                    g.push('\n');
                }
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let cats = cat_loop(files.clone(), (it as usize) * 7, stop.clone());
        let mut w = work::spawn(&["mixed", "30", "300"])?;
        let wpid = w.id();
        let guard = Guard::new(move || signal(wpid, libc::SIGKILL));
        std::thread::sleep(Duration::from_millis(kill_ms));
        let was_ready = ready.load(Ordering::SeqCst);
        let exited = child.try_wait().ok().flatten();
        let _ = child.kill();
        let _ = child.wait();
        drop(aguard);
        if let Some(st) = exited {
            failures.push(format!(
                "iteration {it}: the agent exited on its own ({st}) before the kill; stderr:\n{}",
                agent_err.lock().unwrap_or_else(|p| p.into_inner())
            ));
            break;
        }
        if was_ready {
            after_ready += 1;
        }
        let _ = w.kill();
        let _ = w.wait();
        drop(guard);
        stop.store(true, Ordering::Relaxed);
        let _ = cats.join();
        // the database opens, the promoted baseline is intact
        let (code, list, err) = baseline(&cfg, &["list"])?;
        let mut bad = Vec::new();
        if code != 0 || err.to_lowercase().contains("error") || err.contains("corrupt") {
            bad.push(format!("baseline list: exit {code}: {}", err.trim()));
        } else {
            profiles_seen = list.lines().filter(|l| l.contains("exe:")).count();
            if !mode_line(&list).contains("monitoring") {
                bad.push(format!(
                    "{profile} is no longer in monitoring mode: {:?}",
                    mode_line(&list)
                ));
            }
            match export("rules") {
                Ok(r) if r == rules0 => {}
                Ok(r) => bad.push(format!(
                    "the rules export changed ({} -> {} lines)",
                    rules0.lines().count(),
                    r.lines().count()
                )),
                Err(e) => bad.push(e),
            }
            match export("yaml") {
                Ok(y) if yaml_content(&y) == yaml0 => {}
                Ok(y) => bad.push(format!(
                    "the YAML whitelist changed:\n--- before\n{yaml0}\n--- after\n{}",
                    yaml_content(&y)
                )),
                Err(e) => bad.push(e),
            }
        }
        progress(format!(
            "crash: iteration {:>3}/{iterations}: killed {kill_ms:>4} ms after start ({}): {}",
            it + 1,
            if was_ready { "running" } else { "starting" },
            if bad.is_empty() {
                format!("ok ({profiles_seen} profiles)")
            } else {
                format!("FAILED: {}", bad.join("; "))
            }
        ));
        for b in bad {
            failures.push(format!("iteration {it} (kill at {kill_ms} ms): {b}"));
        }
    }
    // a last clean start and stop on the same database
    let last = start().and_then(|a| a.stop());
    if let Err(e) = &last {
        failures.push(format!("the agent did not start after the loop: {e}"));
    }
    let wall = t0.elapsed().as_secs_f64();
    kills_ms.sort_unstable();
    println!(
        "\nvigil-eval crash: {iterations} iterations of learn + kill -9 in {wall:.0} s, seed {seed:#x}"
    );
    println!(
        "  kill moments after start (ms): min {} median {} max {} ({after_ready} after the sensors were live, the rest while starting; the first start took {ready_ms} ms); {} profiles in the database at the end",
        kills_ms.first().copied().unwrap_or(0),
        kills_ms.get(kills_ms.len() / 2).copied().unwrap_or(0),
        kills_ms.last().copied().unwrap_or(0),
        profiles_seen
    );
    println!(
        "  promoted baseline {profile}: export identical after every kill: {}",
        if failures.is_empty() { "yes" } else { "NO" }
    );
    println!("  failures: {}", failures.len());
    if !failures.is_empty() {
        return Err(failures.join("\n"));
    }
    Ok(())
}
