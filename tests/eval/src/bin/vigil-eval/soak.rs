//! Soak: the agent runs a steady mixed workload (exec, refused connects,
//! distinct failing opens below /etc, reads of /etc/passwd) for a long time
//! with every event written as JSON (rotated file) while its RSS and CPU are
//! sampled; prints the series and checks for a growth trend.

use crate::util::*;
use crate::work;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `vigil_state_entries{table="NAME"} N` of a scrape: entries per table.
fn state_entries(text: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("vigil_state_entries{table=\"") else {
            continue;
        };
        if let Some((name, v)) = rest.split_once("\"} ")
            && let Ok(v) = v.trim().parse::<f64>()
        {
            m.insert(name.to_string(), v);
        }
    }
    m
}

struct Sample {
    t: f64,
    rss_kib: u64,
    anon_kib: u64,
    heap_mib: f64,
    cpu_pct: f64,
    records: f64,
    dropped: f64,
}

/// `vigil-eval soak [--quick] [--minutes M] [--rate OPS] [--every SECS]`
pub fn main(args: &[String]) -> R<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut minutes: f64 = if quick { 1.0 } else { 30.0 };
    let mut rate: u64 = 200;
    let mut every: f64 = if quick { 5.0 } else { 30.0 };
    let mut i = 0;
    while i < args.len() {
        let val = |i: usize| args.get(i + 1).and_then(|s| s.parse::<f64>().ok());
        match args[i].as_str() {
            "--quick" => {}
            "--minutes" => {
                minutes = val(i).filter(|m| *m > 0.0).ok_or("--minutes M (> 0)")?;
                i += 1;
            }
            "--rate" => {
                rate = val(i).filter(|r| *r >= 1.0).ok_or("--rate OPS (>= 1)")? as u64;
                i += 1;
            }
            "--every" => {
                every = val(i).filter(|e| *e >= 1.0).ok_or("--every SECS (>= 1)")?;
                i += 1;
            }
            a => return Err(format!("soak: unknown argument {a}")),
        }
        i += 1;
    }
    let dir = TempDir::new("soak")?;
    let out = dir.join("vigil.json");
    let agent = Agent::start(AgentOpts {
        data_dir: &dir.join("vigil"),
        outputs: vec![format!("file://{}?rotate_mb=64&keep=1", out.display())],
        events: true,
        extra_toml: "",
        args: vec![],
    })?;
    let secs = (minutes * 60.0).round() as u64;
    progress(format!(
        "soak: {minutes} min of the mixed workload at {rate} ops/s (1 in 10 an exec, 1 in 10 a refused connect, 1 in 10 a distinct failing open below /etc, the rest reads of /etc/passwd); sampling every {every} s"
    ));
    let child = work::spawn(&["mixed", &secs.to_string(), &rate.to_string()])?;
    // an interrupted or failed soak must not leave the workload running
    let wpid = child.id();
    let reaped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r2 = reaped.clone();
    let _stop_workload = Guard::new(move || {
        if !r2.load(std::sync::atomic::Ordering::SeqCst) {
            signal(wpid, libc::SIGKILL)
        }
    });
    let t0 = Instant::now();
    let cpu0 = cpu_ns(agent.pid);
    let mut samples: Vec<Sample> = Vec::new();
    let mut last_cpu = cpu0;
    let mut last_t = 0.0;
    let mut child = Some(child);
    let mut ops = 0;
    // per table: (first sample, max, last)
    let mut state: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    loop {
        let next = Duration::from_secs_f64(every * (samples.len() + 1) as f64);
        if let Some(d) = next.checked_sub(t0.elapsed()) {
            std::thread::sleep(d);
        }
        let t = t0.elapsed().as_secs_f64();
        let cpu = cpu_ns(agent.pid);
        let text = scrape(&agent.metrics).unwrap_or_default();
        let s = Sample {
            t,
            rss_kib: rss_kib(agent.pid),
            anon_kib: rss_anon_kib(agent.pid),
            heap_mib: metric_sum(&text, "vigil_memory_heap_bytes", "in_use") / 1048576.0,
            cpu_pct: (cpu.saturating_sub(last_cpu)) as f64 / ((t - last_t) * 1e9) * 100.0,
            records: metric_sum(&text, "vigil_output_records_submitted_total", ""),
            dropped: metric_sum(&text, "vigil_sensor_dropped_events_total", ""),
        };
        for (name, v) in state_entries(&text) {
            let e = state.entry(name).or_insert((v, v, v));
            e.1 = e.1.max(v);
            e.2 = v;
        }
        if s.rss_kib == 0 {
            return Err(format!(
                "the agent died during the soak at {t:.0} s; stderr:\n{}",
                agent.stderr_text()
            ));
        }
        progress(format!(
            "soak: {:>6.0} s  RSS {:>6.1} MiB (anon {:>6.1}, heap in use {:>6.1})  CPU {:>5.2} %  records {:>9.0}  dropped {:>6.0}",
            s.t,
            s.rss_kib as f64 / 1024.0,
            s.anon_kib as f64 / 1024.0,
            s.heap_mib,
            s.cpu_pct,
            s.records,
            s.dropped
        ));
        last_cpu = cpu;
        last_t = t;
        samples.push(s);
        if let Some(c) = child.as_mut()
            && !matches!(c.try_wait(), Ok(None))
        {
            ops = work::finish(child.take().ok_or("child")?);
            reaped.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if child.is_none() {
            break;
        }
    }
    let total_cpu = cpu_ns(agent.pid).saturating_sub(cpu0) as f64 / 1e9;
    let wall = t0.elapsed().as_secs_f64();
    let stderr = agent.stop()?;

    // the trend: RSS over the second half (the first half includes warm-up:
    // caches, the process table and the dedup maps filling to steady state)
    let half: Vec<&Sample> = samples.iter().filter(|s| s.t >= wall / 2.0).collect();
    let xs: Vec<f64> = half.iter().map(|s| s.t).collect();
    // the leak indicator is the heap in use (allocated and not freed):
    // anonymous memory also keeps glibc's high-water marks after bursts
    let ys: Vec<f64> = half.iter().map(|s| s.heap_mib).collect();
    let slope_mib_h = slope(&xs, &ys) * 3600.0;
    let heap_first_half_max = samples
        .iter()
        .filter(|s| s.t < wall / 2.0)
        .map(|s| s.heap_mib)
        .fold(0.0, f64::max);
    let heap_end = samples.last().map(|s| s.heap_mib).unwrap_or(0.0);
    let heap_max = samples.iter().map(|s| s.heap_mib).fold(0.0, f64::max);
    let rss_max = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64 / 1024.0;
    let anon_max = samples.iter().map(|s| s.anon_kib).max().unwrap_or(0) as f64 / 1024.0;
    let anon_first_half_max = samples
        .iter()
        .filter(|s| s.t < wall / 2.0)
        .map(|s| s.anon_kib)
        .max()
        .unwrap_or(0) as f64
        / 1024.0;
    let anon_end = samples.last().map(|s| s.anon_kib).unwrap_or(0) as f64 / 1024.0;
    let cpu_med = median(&samples.iter().map(|s| s.cpu_pct).collect::<Vec<_>>());
    let records = samples.last().map(|s| s.records).unwrap_or(0.0);
    let dropped = samples.last().map(|s| s.dropped).unwrap_or(0.0);

    println!(
        "\nvigil-eval soak: {:.1} min, {ops} ops of the mixed workload ({:.0} ops/s), every event as JSON",
        wall / 60.0,
        ops as f64 / wall
    );
    println!(
        "  {:>8} {:>10} {:>10} {:>10} {:>8} {:>12} {:>8}",
        "t (s)", "RSS MiB", "anon MiB", "heap MiB", "CPU %", "records", "dropped"
    );
    for s in &samples {
        println!(
            "  {:>8.0} {:>10.1} {:>10.1} {:>10.1} {:>8.2} {:>12.0} {:>8.0}",
            s.t,
            s.rss_kib as f64 / 1024.0,
            s.anon_kib as f64 / 1024.0,
            s.heap_mib,
            s.cpu_pct,
            s.records,
            s.dropped
        );
    }
    println!(
        "  RSS max {rss_max:.1} MiB (binary and ring buffer mappings included); anonymous memory max {anon_max:.1} MiB (first half {anon_first_half_max:.1}, end {anon_end:.1}; glibc keeps high-water marks)\n  \
         heap in use max {heap_max:.1} MiB (first half {heap_first_half_max:.1}, end {heap_end:.1}), trend over the second half {slope_mib_h:+.1} MiB/h\n  \
         agent CPU {:.2} % of one CPU on average ({total_cpu:.1} s over {wall:.0} s; median of the samples {cpu_med:.2} %)\n  \
         records written {records:.0} ({:.0}/s), events dropped {dropped:.0}",
        total_cpu / wall * 100.0,
        records / wall
    );
    // what the agent holds in memory, table by table: a table that only
    // grows is where a heap trend comes from
    if !state.is_empty() {
        println!("  in-memory tables (vigil_state_entries): first sample, max, end");
        for (name, (first, max, end)) in &state {
            println!("    {name:<24} {first:>9.0} {max:>9.0} {end:>9.0}");
        }
    }
    if stderr.contains("panicked") {
        return Err(format!("the agent panicked:\n{stderr}"));
    }
    // per 10 ops: an exec (exec, fork, exit records), a refused connect, a
    // distinct failing open = 5 records at least; the reads of /etc/passwd
    // are deduplicated in the kernel (same process, same file)
    if records < ops as f64 * 0.45 {
        return Err(format!(
            "only {records:.0} records for {ops} ops (at least {:.0} expected): events are missing",
            ops as f64 * 0.45
        ));
    }
    // no growth of the heap in use: the run must not end above the first
    // half's peak by more than 10% + 4 MiB (caches filling), and the fitted
    // trend must stay under 8 MiB/h in a long run
    if heap_end > heap_first_half_max * 1.10 + 4.0 {
        return Err(format!(
            "heap in use grew: first-half peak {heap_first_half_max:.1} MiB, end {heap_end:.1} MiB"
        ));
    }
    if wall >= 600.0 && slope_mib_h > 8.0 {
        return Err(format!(
            "heap in use trend {slope_mib_h:+.1} MiB/h over the second half"
        ));
    }
    Ok(())
}
