//! Sustain: a generator whose produced count is known (failing opens of
//! distinct paths below /etc, paced at `--rate` per second for
//! `--seconds`) runs under `vigil run --events` with every event written as
//! ECS JSON to a file. Passes when every produced open is in the file
//! exactly as often as it was produced (delivered == produced), no sensor
//! dropped a record and no record is flagged `after_loss`.
//!
//! Full mode: 200,000 opens/s for 60 s (the target; a generator that falls
//! more than 10 % short of the rate fails the run); `--quick` (CI, a root
//! test): 10,000/s for 5 s, where a shortfall of the rate on a busy runner
//! is printed as a warning and only delivery is checked. Prints produced, delivered, the rate reached,
//! the agent's CPU and the drops, whether it passes or not.

use crate::flood::summary_drops;
use crate::util::*;
use crate::work;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

/// Occurrences of `pat` in the whole lines of a file from byte `from`,
/// streamed (the event file of a full run holds gigabytes); returns the
/// count and the offset after the last complete line (a line still being
/// written is counted by the next call).
fn count_streamed(path: &Path, from: u64, pat: &[u8]) -> R<(u64, u64)> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(ctx("open the event file"))?;
    f.seek(SeekFrom::Start(from))
        .map_err(ctx("seek the event file"))?;
    let mut buf = vec![0u8; 8 << 20];
    let (mut have, mut n, mut off) = (0usize, 0u64, from);
    loop {
        let got = f
            .read(&mut buf[have..])
            .map_err(ctx("read the event file"))?;
        if got == 0 {
            break;
        }
        have += got;
        // whole lines only; a line longer than the buffer is scanned as is
        let end = match buf[..have].iter().rposition(|&c| c == b'\n') {
            Some(e) => e + 1,
            None if have == buf.len() => have,
            None => continue,
        };
        n += count_in(&buf[..end], pat);
        off += end as u64;
        buf.copy_within(end..have, 0);
        have -= end;
    }
    Ok((n, off))
}

/// Occurrences of `pat` in `b`.
fn count_in(b: &[u8], pat: &[u8]) -> u64 {
    let mut n = 0;
    let mut i = 0;
    while i + pat.len() <= b.len() {
        match b[i..=b.len() - pat.len()].iter().position(|&c| c == pat[0]) {
            Some(p) => {
                i += p;
                if &b[i..i + pat.len()] == pat {
                    n += 1;
                    i += pat.len();
                } else {
                    i += 1;
                }
            }
            None => break,
        }
    }
    n
}

/// One generator run under one agent.
pub struct Run {
    /// Opens the generator made.
    pub produced: u64,
    /// Its wall time, s.
    pub gen_wall: f64,
    /// Its own CPU (all its threads), s.
    pub gen_cpu: f64,
    /// Its opens found in the event file.
    pub delivered: u64,
    /// From the generator's end to the last of its opens in the file, s.
    pub drain: f64,
    /// The agent's CPU (utime + stime of /proc/PID/stat) over the
    /// generator's run and the drain, s.
    pub agent_cpu: f64,
    /// Records the agent wrote over its whole life (its summary's
    /// `written`: the host's own events too).
    pub written: u64,
    /// Ring-buffer drops per sensor.
    pub drops: std::collections::BTreeMap<String, u64>,
    /// Records flagged `after_loss`.
    pub after_loss: u64,
    /// Size of the event file, bytes.
    pub bytes: u64,
}

impl Run {
    /// Generator rate reached, opens/s.
    pub fn reached(&self) -> f64 {
        self.produced as f64 / self.gen_wall.max(1e-9)
    }
    /// Agent CPU per delivered generator record, us.
    pub fn agent_us(&self) -> f64 {
        self.agent_cpu * 1e6 / self.delivered.max(1) as f64
    }
    /// Generator CPU per open, us.
    pub fn gen_us(&self) -> f64 {
        self.gen_cpu * 1e6 / self.produced.max(1) as f64
    }
    /// Total ring-buffer drops.
    pub fn dropped(&self) -> u64 {
        self.drops.values().sum()
    }
    /// delivered == produced, nothing dropped or flagged.
    pub fn complete(&self) -> bool {
        self.delivered == self.produced && self.dropped() == 0 && self.after_loss == 0
    }
}

/// User + system CPU of process `pid` (every thread, live or ended), ns,
/// from /proc/PID/stat (clock ticks); 0 when it is gone.
pub fn stat_cpu_ns(pid: u32) -> u64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // fields after the parenthesised comm: state is field 3, utime 14, stime 15
    let Some(rest) = s.rfind(')').map(|i| &s[i + 1..]) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    (tick(11) + tick(12)) * 1_000_000_000 / hz
}

/// The `N written` of the agent's summary line.
fn summary_written(stderr: &str) -> u64 {
    stderr
        .lines()
        .find(|l| l.contains("events decoded"))
        .and_then(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let i = w.iter().position(|x| x.starts_with("written"))?;
            w.get(i.checked_sub(1)?)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Starts `bin` as `vigil run --events --output FILE` (default rules;
/// `extra_toml` appended to the `[agent]` section of its config), waits
/// `settle` (the performance sensors load after start-up: their cost is
/// not the records'), runs the generator (`rate` opens/s, 0: unpaced, for `secs` on
/// `threads` threads), waits until every produced open is in the file (or
/// none was added for 10 s), stops the agent and counts.
pub fn run_once(
    bin: &Path,
    extra_toml: &str,
    settle: Duration,
    rate: u64,
    secs: u64,
    threads: u64,
) -> R<Run> {
    let dir = TempDir::new("sustain")?;
    let events = dir.join("events.json");
    let mut agent = Agent::start_with(
        bin,
        AgentOpts {
            data_dir: &dir.join("vigil"),
            outputs: vec![events.display().to_string()],
            events: true,
            extra_toml,
            args: vec![],
        },
    )?;
    std::thread::sleep(settle);
    let cpu0 = stat_cpu_ns(agent.pid);
    let t0 = Instant::now();
    let child = work::spawn(&[
        "paced-open",
        &secs.to_string(),
        &rate.to_string(),
        &threads.to_string(),
    ])?;
    let gen_pid = child.id();
    let fin = work::finish_full(child);
    let produced = fin.ops;
    let gen_wall = t0.elapsed().as_secs_f64();
    if !agent.alive() {
        return Err(format!("the agent died; stderr:\n{}", agent.stderr_text()));
    }
    // Drained when every produced open is in the file, or when none has
    // been added for 10 s (the host's own events keep the file growing, so
    // its size cannot tell).
    let pat = format!("\"path\":\"/etc/vigil-sustain-{gen_pid}-");
    let (mut delivered, mut off) = (0u64, 0u64);
    let mut last_new = Instant::now();
    let mut drained_at = t0.elapsed().as_secs_f64();
    loop {
        let (n, o) = count_streamed(&events, off, pat.as_bytes())?;
        off = o;
        if n > 0 {
            delivered += n;
            last_new = Instant::now();
            drained_at = t0.elapsed().as_secs_f64();
        }
        if delivered >= produced || last_new.elapsed() > Duration::from_secs(10) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let drain = (drained_at - gen_wall).max(0.0);
    let agent_cpu = stat_cpu_ns(agent.pid).saturating_sub(cpu0) as f64 / 1e9;
    let stderr = agent.stop()?;
    let drops = summary_drops(&stderr)?;
    // the rest of the file (written while stopping): duplicates would show
    let (late, _) = count_streamed(&events, off, pat.as_bytes())?;
    delivered += late;
    let (after_loss, _) = count_streamed(&events, 0, b"\"after_loss\":true")?;
    let bytes = std::fs::metadata(&events).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&events);
    Ok(Run {
        produced,
        gen_wall,
        gen_cpu: fin.cpu_ns as f64 / 1e9,
        delivered,
        drain,
        agent_cpu,
        written: summary_written(&stderr),
        drops,
        after_loss,
        bytes,
    })
}

/// What `rate` events/s would need on this host: generator cores, agent
/// cores and the sum, from the per-event CPU figures measured.
fn needs(rate: f64, gen_us: f64, agent_us: f64) -> String {
    let (g, a) = (rate * gen_us / 1e6, rate * agent_us / 1e6);
    format!(
        "{:.0} k/s needs {g:.2} cores of generator + {a:.2} of agent = {:.2} cores",
        rate / 1e3,
        g + a
    )
}

/// Host cores online.
fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

pub fn main(args: &[String]) -> R<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let (mut rate, mut secs): (u64, u64) = if quick { (10_000, 5) } else { (200_000, 60) };
    let mut threads: u64 = 1;
    let mut i = 0;
    while i < args.len() {
        let val = |i: usize| args.get(i + 1).and_then(|s| s.parse::<u64>().ok());
        match args[i].as_str() {
            "--quick" => {}
            "--rate" => {
                rate = val(i).filter(|r| *r > 0).ok_or("--rate N (> 0)")?;
                i += 1;
            }
            "--seconds" => {
                secs = val(i).filter(|s| *s > 0).ok_or("--seconds S (> 0)")?;
                i += 1;
            }
            "--threads" => {
                threads = val(i)
                    .filter(|t| (1..=64).contains(t))
                    .ok_or("--threads T (1-64)")?;
                i += 1;
            }
            a => return Err(format!("sustain: unknown argument {a}")),
        }
        i += 1;
    }
    progress(format!(
        "sustain: {rate} opens/s for {secs} s on {threads} generator thread(s), every event as JSON to a file"
    ));
    let r = run_once(
        &vigil_bin()?,
        "housekeeping_interval_s = 1\nheartbeat_interval_s = 0\n",
        Duration::ZERO,
        rate,
        secs,
        threads,
    )?;
    let dropped = r.dropped();
    println!("\nsustain: every event as JSON to a file (one run)");
    println!(
        "  target    {rate} opens/s for {secs} s = {} opens",
        rate * secs
    );
    println!(
        "  produced  {} opens in {:.1} s ({:.0}/s reached by the generator, {threads} thread(s))",
        r.produced,
        r.gen_wall,
        r.reached()
    );
    println!(
        "  delivered {} of them in the file ({:.1} %), drained {:.1} s after the generator ended; file {:.0} MiB",
        r.delivered,
        r.delivered as f64 * 100.0 / r.produced.max(1) as f64,
        r.drain,
        r.bytes as f64 / (1 << 20) as f64
    );
    println!(
        "  agent CPU {:.0} % of one core over {:.1} s; drops {dropped} {:?}; after_loss records {}",
        r.agent_cpu / (r.gen_wall + r.drain) * 100.0,
        r.gen_wall + r.drain,
        r.drops,
        r.after_loss
    );
    println!(
        "  cost      agent {:.2} us of CPU per delivered open ({} records written in all); generator {:.2} us per open",
        r.agent_us(),
        r.written,
        r.gen_us()
    );
    println!(
        "  so        {} (this host: {:.0} cores)",
        needs(rate as f64, r.gen_us(), r.agent_us()),
        cores()
    );
    let reached = r.reached();
    if r.produced < rate * secs || reached < rate as f64 * 0.9 {
        let msg = format!(
            "the generator produced {} of {} opens at {reached:.0}/s, short of {rate}/s (the host is too slow or too busy for this rate)",
            r.produced,
            rate * secs
        );
        // quick mode (CI) checks delivery; a busy runner may not reach
        // the rate, which the full mode must
        if !quick || r.produced < rate * secs {
            return Err(msg);
        }
        println!("  WARNING: {msg}");
    }
    if !r.complete() {
        return Err(format!(
            "delivered {} != produced {}, or drops {dropped} / after_loss {} not 0",
            r.delivered, r.produced, r.after_loss
        ));
    }
    println!("  PASS: delivered == produced, 0 drops");
    Ok(())
}

/// `vigil-eval agent-cost`: the agent's CPU per delivered record of
/// `vigil run --events --output FILE` (default configuration and rules,
/// measured from 3 s after the sensors are live) under the paced
/// generator at each rate (`max`: unpaced), `--rounds` runs per rate and
/// binary, the binaries alternating within each round; prints the medians
/// side by side and, with `--vigil-old BIN`, new/old ratios.
pub fn cost_main(args: &[String]) -> R<()> {
    let mut rates: Vec<u64> = vec![10_000, 30_000, 0];
    let (mut secs, mut rounds, mut threads) = (10u64, 3usize, 2u64);
    let mut old: Option<std::path::PathBuf> = None;
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1);
        let num = |what: &str| -> R<u64> {
            v.and_then(|s| s.parse::<u64>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("agent-cost: {what} N (> 0)"))
        };
        match args[i].as_str() {
            "--rates" => {
                let s = v.ok_or("agent-cost: --rates R,R,... (numbers or max)")?;
                rates = s
                    .split(',')
                    .map(|r| match r.trim() {
                        "max" => Ok(0),
                        x => x
                            .parse::<u64>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| format!("agent-cost: --rates: {x:?} is not a rate")),
                    })
                    .collect::<R<_>>()?;
            }
            "--seconds" => secs = num("--seconds")?,
            "--rounds" => rounds = num("--rounds")? as usize,
            "--threads" => threads = num("--threads")?.min(64),
            "--vigil-old" => {
                let p = std::path::PathBuf::from(v.ok_or("agent-cost: --vigil-old BIN")?);
                if !p.is_file() {
                    return Err(format!(
                        "agent-cost: --vigil-old {}: no such file",
                        p.display()
                    ));
                }
                old = Some(p);
            }
            a => return Err(format!("agent-cost: unknown argument {a}")),
        }
        i += 2;
    }
    let new = vigil_bin()?;
    let bins: Vec<(&str, &Path)> = match &old {
        Some(o) => vec![("old", o.as_path()), ("new", new.as_path())],
        None => vec![("new", new.as_path())],
    };
    let label = |r: u64| {
        if r == 0 {
            "max".to_string()
        } else {
            format!("{}k/s", r / 1000)
        }
    };
    // runs[rate][bin] = every round's Run
    let mut runs: Vec<Vec<Vec<Run>>> = rates
        .iter()
        .map(|_| bins.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..rounds {
        for (ri, &rate) in rates.iter().enumerate() {
            // alternate which binary goes first
            let order: Vec<usize> = if round % 2 == 0 {
                (0..bins.len()).collect()
            } else {
                (0..bins.len()).rev().collect()
            };
            for bi in order {
                // the default deployment's configuration
                let r = run_once(bins[bi].1, "", Duration::from_secs(3), rate, secs, threads)?;
                progress(format!(
                    "agent-cost round {}/{rounds} {} {}: produced {} at {:.0}/s, delivered {}, drops {}, agent {:.2} us/record, generator {:.2} us/open",
                    round + 1,
                    label(rate),
                    bins[bi].0,
                    r.produced,
                    r.reached(),
                    r.delivered,
                    r.dropped(),
                    r.agent_us(),
                    r.gen_us()
                ));
                runs[ri][bi].push(r);
            }
        }
    }
    let med = |v: &[Run], f: &dyn Fn(&Run) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(|a, b| a.total_cmp(b));
        x[x.len() / 2]
    };
    println!(
        "\nagent-cost: `vigil run --events --output FILE` (default rules) under failing opens of distinct paths, {secs} s per run, {threads} generator threads, medians of {rounds} rounds ({} cores here)",
        cores()
    );
    println!(
        "{:<8} {:<4} {:>10} {:>10} {:>10} {:>7} {:>12} {:>10} {:>10}",
        "rate",
        "bin",
        "reached/s",
        "produced",
        "delivered",
        "drops",
        "agent us/rec",
        "agent %",
        "gen us/op"
    );
    for (ri, &rate) in rates.iter().enumerate() {
        let mut agent_med = Vec::new();
        for (bi, (name, _)) in bins.iter().enumerate() {
            let v = &runs[ri][bi];
            let a = med(v, &|r| r.agent_us());
            agent_med.push(a);
            let all_complete = v.iter().all(Run::complete);
            println!(
                "{:<8} {:<4} {:>10.0} {:>10.0} {:>10.0} {:>7.0} {:>12.2} {:>10.0} {:>10.2}{}",
                label(rate),
                name,
                med(v, &|r| r.reached()),
                med(v, &|r| r.produced as f64),
                med(v, &|r| r.delivered as f64),
                med(v, &|r| r.dropped() as f64),
                a,
                med(v, &|r| r.agent_cpu / (r.gen_wall + r.drain).max(1e-9)
                    * 100.0),
                med(v, &|r| r.gen_us()),
                if all_complete {
                    ""
                } else {
                    "  (a round lost records)"
                }
            );
        }
        if agent_med.len() == 2 {
            println!(
                "{:<8} new/old agent CPU per record {:.2}x",
                label(rate),
                agent_med[1] / agent_med[0].max(1e-9)
            );
        }
    }
    // what 200 k/s would need, from the newest binary's unpaced figures
    // (or the highest rate measured)
    let ri = rates
        .iter()
        .position(|r| *r == 0)
        .unwrap_or(rates.len() - 1);
    let v = &runs[ri][bins.len() - 1];
    let (g, a) = (med(v, &|r| r.gen_us()), med(v, &|r| r.agent_us()));
    println!(
        "200 k/s target: from the {} row (new): {}; this host has {:.0}",
        label(rates[ri]),
        needs(200_000.0, g, a),
        cores()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::count_streamed;

    /// The streamed count equals the number of lines holding the pattern,
    /// across the 8 MiB read boundary and from a mid-file offset; a torn
    /// last line is left for the next call.
    #[test]
    fn streamed_count_matches_across_chunks() {
        let dir = std::env::temp_dir().join(format!("vigil-sustain-count-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        let pat = b"\"path\":\"/etc/x-";
        let mut data = Vec::new();
        let (mut want, mut want_second_half, mut half) = (0, 0, 0u64);
        let mut k = 0u64;
        while data.len() < (8 << 20) * 2 + 1000 {
            if half == 0 && data.len() > 12 << 20 {
                half = data.len() as u64;
            }
            k = k
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            data.extend(std::iter::repeat_n(b'a', (k >> 54) as usize));
            if k & 2 == 0 {
                data.extend_from_slice(pat);
                want += 1;
                if half != 0 {
                    want_second_half += 1;
                }
            } else {
                data.extend_from_slice(&pat[..5]);
            }
            data.push(b'\n');
        }
        let whole = data.len() as u64;
        data.extend_from_slice(pat); // torn: no newline yet
        std::fs::write(&p, &data).unwrap();
        assert_eq!(count_streamed(&p, 0, pat).unwrap(), (want, whole));
        assert_eq!(
            count_streamed(&p, half, pat).unwrap(),
            (want_second_half, whole)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
