//! Flood: each sensor group is driven far past what the agent can take
//! (several storm processes in parallel, every event written as JSON) while
//! the agent's RSS and CPU are sampled. Then checks that
//! - the agent stayed up and its memory stayed bounded;
//! - every drop is counted, and the four places that report drops agree
//!   exactly: the kernel's own `counters` map (read with bpftool, not
//!   through vigil), Prometheus `vigil_sensor_dropped_events_total`, the
//!   `sensor-drops` metric records in the output, and the exit summary;
//! - records produced after a loss carry `vigil.after_loss: true`;
//! - once the flood is over, known work (distinct opens below /etc, reads
//!   of /etc/shadow by `cat`) is delivered completely with no new drop.
//!
//! The full mode keeps the default ring buffer (16 MiB); `--quick` (CI: a
//! few seconds per storm) shrinks it to 1 MiB drained every 200 ms (woken
//! a page from full) so that it surely overflows on any machine. At 16 MiB
//! the exec and mixed storms do not overflow it here (fork+exec is too slow for that): their rows show what the agent
//! sustains.

use crate::util::*;
use crate::work;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Per-sensor values of a labelled metric (`name{sensor="x"} v`).
fn per_sensor(text: &str, name: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix(name) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix("{sensor=\"") else {
            continue;
        };
        let Some((sensor, tail)) = rest.split_once('"') else {
            continue;
        };
        if let Some(v) = tail.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *m.entry(sensor.to_string()).or_insert(0) += v as u64;
        }
    }
    m
}

fn total(m: &BTreeMap<String, u64>) -> u64 {
    m.values().sum()
}

fn nonzero(m: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    m.into_iter().filter(|(_, v)| *v > 0).collect()
}

/// The kernel's drop counters of the agent `pid`, per sensor, read without
/// vigil: the agent's `counters` map (a per-CPU array of
/// `{emitted, dropped, filtered, deduped, dropped_prio, demoted}` per event
/// kind) is found through its file descriptors (`/proc/PID/fdinfo`:
/// `map_id`) and dumped with `bpftool map dump id N -j` (BTF-formatted
/// values).
fn kernel_drops(pid: u32) -> R<BTreeMap<String, u64>> {
    kernel_counter(pid, "dropped")
}

/// One field of the agent's `counters` map per sensor (see [`kernel_drops`]).
fn kernel_counter(pid: u32, field_name: &str) -> R<BTreeMap<String, u64>> {
    let mut ids = Vec::new();
    let rd = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).map_err(ctx("fdinfo"))?;
    for e in rd.flatten() {
        let Ok(s) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let field = |k: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
        };
        // BPF_MAP_TYPE_PERCPU_ARRAY = 6, vg_counters values, 64 kinds
        let size = size_of::<vigil_bpf::abi::Counters>().to_string();
        if field("map_type:").as_deref() == Some("6")
            && field("value_size:").as_deref() == Some(size.as_str())
            && field("max_entries:").as_deref() == Some("64")
            && let Some(id) = field("map_id:")
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    let mut found = None;
    for id in &ids {
        let show = sh("bpftool", &["map", "show", "id", id, "-j"])?;
        let v: serde_json::Value = serde_json::from_str(&show).map_err(ctx("bpftool map show"))?;
        if v["name"] == "counters" {
            found = Some(id.clone());
        }
    }
    let id = found.ok_or_else(|| format!("no `counters` map among the agent's maps {ids:?}"))?;
    let dump = sh("bpftool", &["map", "dump", "id", &id, "-j"])?;
    let v: serde_json::Value = serde_json::from_str(&dump).map_err(ctx("bpftool map dump"))?;
    let mut m = BTreeMap::new();
    for e in v.as_array().ok_or("bpftool dump: not an array")? {
        let f = &e["formatted"];
        let kind = f["key"]
            .as_u64()
            .ok_or("bpftool dump: no formatted key (no BTF?)")?;
        let mut dropped = 0;
        for c in f["values"].as_array().ok_or("bpftool dump: no values")? {
            dropped += c["value"][field_name]
                .as_u64()
                .ok_or_else(|| format!("bpftool dump: no `{field_name}`"))?;
        }
        if dropped > 0 {
            let name = vigil_bpf::sensors::sensor_of_kind(kind as u16)
                .map(|s| s.name.to_string())
                .unwrap_or_else(|| format!("kind-{kind}"));
            *m.entry(name).or_insert(0) += dropped;
        }
    }
    Ok(m)
}

/// The `dropped` column of the agent's exit summary, per sensor.
pub(crate) fn summary_drops(stderr: &str) -> R<BTreeMap<String, u64>> {
    let mut lines = stderr.lines().skip_while(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.first() != Some(&"sensor") || w.get(3) != Some(&"dropped")
    });
    if lines.next().is_none() {
        return Err("the exit summary has no sensor table".into());
    }
    let mut m = BTreeMap::new();
    for l in lines {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() != 6 || w[1..].iter().any(|x| x.parse::<u64>().is_err()) {
            break;
        }
        let d: u64 = w[3].parse().map_err(ctx("summary"))?;
        if d > 0 {
            m.insert(w[0].to_string(), d);
        }
    }
    Ok(m)
}

/// Occurrences of `pat` in a file (a byte search, no JSON parsing: the
/// event file holds up to 64 MiB written at full speed, about 2 GB in the
/// quick mode).
pub(crate) fn count_in_file(path: &Path, pat: &str) -> u64 {
    let Ok(b) = std::fs::read(path) else { return 0 };
    let p = pat.as_bytes();
    b.windows(p.len()).filter(|w| *w == p).count() as u64
}

struct Storm {
    name: &'static str,
    ops: u64,
    secs: f64,
    decoded: u64,
    drops: u64,
    rss_max_kib: u64,
    anon_max_kib: u64,
    cpu_pct: f64,
    rss_series: Vec<u64>,
    shadow_reads: u64,
    alerts: u64,
    alerts_after_loss: u64,
    events_after_loss: u64,
}

/// Runs `cat /etc/shadow` every 100 ms until stopped: alerts
/// (`shadow_file_read`) raised while the storm makes the sensors drop.
fn shadow_reader(stop: Arc<AtomicBool>, n: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let ok = Command::new("/usr/bin/cat")
                .arg("/etc/shadow")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                n.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// A workload child killed on a signal or error, unless it already ended.
struct Worker {
    child: Option<std::process::Child>,
    done: Arc<AtomicBool>,
    _guard: Guard,
}

impl Worker {
    fn spawn(args: &[&str]) -> R<Worker> {
        let child = work::spawn(args)?;
        let pid = child.id();
        let done = Arc::new(AtomicBool::new(false));
        let d2 = done.clone();
        let guard = Guard::new(move || {
            if !d2.load(Ordering::SeqCst) {
                signal(pid, libc::SIGKILL);
            }
        });
        Ok(Worker {
            child: Some(child),
            done,
            _guard: guard,
        })
    }
    fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }
    /// Waits; returns the ops it printed.
    fn finish(mut self) -> u64 {
        let c = self.child.take();
        let ops = c.map(work::finish).unwrap_or(0);
        self.done.store(true, Ordering::SeqCst);
        ops
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.done.store(true, Ordering::SeqCst);
        }
    }
}

/// `vigil-eval flood [--quick] [--seconds S] [--procs P] [--ring-bytes N]`
pub fn main(args: &[String]) -> R<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut secs: u64 = if quick { 8 } else { 60 };
    let mut procs: usize = 3;
    // The quick mode (CI, a few seconds per storm) must prove that drops are
    // counted, so its bulk ring surely overflows whatever the machine: 1 MiB,
    // drained every 200 ms and woken only when a page from full, which
    // holds about 4,000 records while a storm makes tens of thousands a
    // second; an agent that keeps up with the storms at the default drain
    // (it does on this machine kind since records reach the sinks in
    // batches) would otherwise drop nothing. The full mode keeps the
    // default ring (16 MiB) and drain unless --ring-bytes says otherwise.
    let mut ring: Option<u64> = quick.then_some(1 << 20);
    let mut i = 0;
    while i < args.len() {
        let val = |i: usize| args.get(i + 1).and_then(|s| s.parse::<u64>().ok());
        match args[i].as_str() {
            "--quick" => {}
            "--seconds" => {
                secs = val(i).filter(|s| *s > 0).ok_or("--seconds S (> 0)")?;
                i += 1;
            }
            "--procs" => {
                procs = val(i).filter(|p| *p > 0).ok_or("--procs P (> 0)")? as usize;
                i += 1;
            }
            "--ring-bytes" => {
                ring = Some(
                    val(i)
                        .filter(|r| r.is_power_of_two() && *r >= 4096)
                        .ok_or("--ring-bytes N (a power of two >= 4096)")?,
                );
                i += 1;
            }
            a => return Err(format!("flood: unknown argument {a}")),
        }
        i += 1;
    }
    let dir = TempDir::new("flood")?;
    let events = dir.join("events.json");
    let alerts = dir.join("alerts.json");
    let mut extra = "housekeeping_interval_s = 1\nheartbeat_interval_s = 0\n".to_string();
    if let Some(r) = ring {
        extra.push_str(&format!("[sensors]\nring_buffer_bytes = {r}\n"));
        if quick {
            // (the wakeup must be below the ring's size: one page below)
            extra.push_str(&format!(
                "wakeup_bytes = {}\ndrain_interval_ms = 200\n",
                r - 4096
            ));
        }
    }
    // The per-rule alert rate limit (default 50 at once, 5/s) would
    // suppress some of the ten shadow reads a second on purpose (counted as
    // alerts-suppressed records): off, so that every alert counted missing
    // is a loss.
    extra.push_str("[outputs]\nrate_limit_burst = 0\n");
    let mut agent = Agent::start(AgentOpts {
        data_dir: &dir.join("vigil"),
        outputs: vec![
            // The quick mode keeps the whole event file (about 2 GB): its
            // drops are few and short, so the one record flagged after
            // each loss must not rotate away before it is counted.
            if quick {
                format!("file://{}", events.display())
            } else {
                format!("file://{}?rotate_mb=64&keep=1", events.display())
            },
            format!("file://{}?kinds=alert,metric", alerts.display()),
        ],
        events: true,
        extra_toml: &extra,
        args: vec![],
    })?;
    progress(format!(
        "flood: {secs} s per storm, {procs} storm processes in parallel, every event written as JSON (ring buffer {})",
        ring.map(|r| format!("{r} bytes (--ring-bytes)"))
            .unwrap_or_else(|| "at its default size".into())
    ));
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let mut storms: Vec<Storm> = Vec::new();
    let mut alerts_off = 0u64;
    for name in ["storm-exec", "storm-open", "storm-connect", "storm-mixed"] {
        let before = scrape(&agent.metrics)?;
        let dec0 = metric_sum(&before, "vigil_sensor_events_total", "");
        let drop0 = metric_sum(&before, "vigil_sensor_dropped_events_total", "");
        let ev_loss0 = count_in_file(&events, "\"after_loss\":true");
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let reader = shadow_reader(stop.clone(), reads.clone());
        let cpu0 = cpu_ns(agent.pid);
        let t0 = Instant::now();
        let s = secs.to_string();
        let workers = (0..procs)
            .map(|_| Worker::spawn(&[name, &s]))
            .collect::<R<Vec<_>>>()?;
        let mut series = Vec::new();
        let mut anon_max = 0;
        while workers
            .iter()
            .any(|w| Path::new(&format!("/proc/{}", w.pid())).exists())
            && t0.elapsed() < Duration::from_secs(secs + 30)
        {
            std::thread::sleep(Duration::from_millis(1000));
            if !agent.alive() {
                stop.store(true, Ordering::Relaxed);
                return Err(format!(
                    "the agent died during {name}; stderr:\n{}",
                    agent.stderr_text()
                ));
            }
            series.push(rss_kib(agent.pid));
            anon_max = anon_max.max(rss_anon_kib(agent.pid));
            // a zombie child still has /proc/PID: stop at the planned end
            if t0.elapsed() >= Duration::from_secs(secs) {
                break;
            }
        }
        let ops: u64 = workers.into_iter().map(Worker::finish).sum();
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_ns(agent.pid).saturating_sub(cpu0) as f64 / 1e9;
        stop.store(true, Ordering::Relaxed);
        let _ = reader.join();
        // let the agent drain and its housekeeping (1 s) publish the counters
        std::thread::sleep(Duration::from_millis(2500));
        let after = scrape(&agent.metrics)?;
        let mut st = Storm {
            name,
            ops,
            secs: wall,
            decoded: (metric_sum(&after, "vigil_sensor_events_total", "") - dec0) as u64,
            drops: (metric_sum(&after, "vigil_sensor_dropped_events_total", "") - drop0) as u64,
            rss_max_kib: series.iter().copied().max().unwrap_or(0),
            anon_max_kib: anon_max,
            cpu_pct: cpu / wall * 100.0,
            rss_series: series,
            shadow_reads: reads.load(Ordering::Relaxed),
            alerts: 0,
            alerts_after_loss: 0,
            events_after_loss: count_in_file(&events, "\"after_loss\":true")
                .saturating_sub(ev_loss0),
        };
        alerts_off = scan_json(&alerts, alerts_off, |v| {
            if v["event"]["kind"] == "alert" && v["rule"]["id"] == "shadow_file_read" {
                st.alerts += 1;
                if v["vigil"]["after_loss"] == true {
                    st.alerts_after_loss += 1;
                }
            }
        });
        progress(format!(
            "flood: {name}: {} ops ({:.0}/s), {} events decoded ({:.0}/s), {} dropped, RSS max {:.1} MiB, agent CPU {:.0} %",
            st.ops,
            st.ops as f64 / wall,
            st.decoded,
            st.decoded as f64 / wall,
            st.drops,
            st.rss_max_kib as f64 / 1024.0,
            st.cpu_pct
        ));
        storms.push(st);
    }

    // Recovery: the flood is over; wait until the kernel adds no drop (its
    // own counters, read with bpftool) and the agent has published them
    // (Prometheus equal to the kernel: it caught up), then known work must
    // arrive whole, with no new drop.
    // A shared host's own activity can overflow the ring during the quiet
    // work (other agents, builds): up to 3 attempts, each reported.
    let mut attempt = 0;
    let (
        drops_before_quiet,
        drops_after_quiet,
        seen_opens,
        want_opens,
        seen_cats,
        cats,
        quiet_after_loss,
    ) = loop {
        attempt += 1;
        let calm = Instant::now();
        let mut last = total(&kernel_drops(agent.pid)?);
        loop {
            std::thread::sleep(Duration::from_millis(2000));
            let now = total(&kernel_drops(agent.pid)?);
            let published = metric_sum(
                &scrape(&agent.metrics)?,
                "vigil_sensor_dropped_events_total",
                "",
            ) as u64;
            if now == last && published == now {
                break;
            }
            if calm.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "60 s after the flood ended the kernel still adds drops ({last} -> {now}) or the agent has not published them (Prometheus {published})"
                ));
            }
            last = now;
        }
        progress(format!(
            "flood: calm {:.1} s after the last storm; quiet work now",
            calm.elapsed().as_secs_f64()
        ));
        let last = last as f64;
        let drops_before_quiet = last;
        let quiet_ops = 400u64;
        let quiet = work::run(&["openat", &quiet_ops.to_string()])?;
        let cats = 20u64;
        let mut cat_pids = Vec::new();
        for _ in 0..cats {
            let c = Command::new("/usr/bin/cat")
                .arg("/etc/shadow")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .map_err(ctx("cat /etc/shadow"))?;
            cat_pids.push(c.id());
            let _ = c.wait_with_output();
        }
        // expected: 100 distinct failing opens below /etc (every 4th op of the
        // openat workload) and one shadow_file_read alert per cat
        let want_opens: std::collections::BTreeSet<String> = (0..quiet_ops)
            .filter(|i| i % 4 == 0)
            .map(|i| format!("/etc/vigil-eval-{}-{i}", quiet.pid))
            .collect();
        let mut seen_opens = std::collections::BTreeSet::new();
        let mut quiet_after_loss;
        let mut seen_cats = std::collections::BTreeSet::new();
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            std::thread::sleep(Duration::from_millis(1000));
            seen_opens.clear();
            quiet_after_loss = 0;
            for f in [events.with_extension("json.1"), events.clone()] {
                scan_json(&f, 0, |v| {
                    if v["process"]["pid"].as_u64() == Some(quiet.pid as u64)
                        && let Some(p) = v["file"]["path"].as_str()
                        && want_opens.contains(p)
                    {
                        seen_opens.insert(p.to_string());
                        if v["vigil"]["after_loss"] == true {
                            quiet_after_loss += 1;
                        }
                    }
                });
            }
            seen_cats.clear();
            scan_json(&alerts, alerts_off, |v| {
                if v["rule"]["id"] == "shadow_file_read"
                    && let Some(p) = v["process"]["pid"].as_u64()
                    && cat_pids.contains(&(p as u32))
                {
                    seen_cats.insert(p);
                }
            });
            if (seen_opens.len() == want_opens.len() && seen_cats.len() as u64 == cats)
                || Instant::now() > end
            {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(1500));
        let drops_after_quiet = metric_sum(
            &scrape(&agent.metrics)?,
            "vigil_sensor_dropped_events_total",
            "",
        );
        let ok = drops_after_quiet == drops_before_quiet
            && seen_opens.len() == want_opens.len()
            && seen_cats.len() as u64 == cats;
        if ok || attempt == 3 {
            break (
                drops_before_quiet,
                drops_after_quiet,
                seen_opens,
                want_opens,
                seen_cats,
                cats,
                quiet_after_loss,
            );
        }
        progress(format!(
            "flood: quiet work attempt {attempt}: {} new drops, {} of {} opens, {} of {cats} alerts; again",
            drops_after_quiet - drops_before_quiet,
            seen_opens.len(),
            want_opens.len(),
            seen_cats.len()
        ));
    };

    // Every place that reports drops. While the agent runs: the kernel map
    // and Prometheus, read until the kernel did not move around the scrape.
    let mut kernel = BTreeMap::new();
    let mut prom = BTreeMap::new();
    for _ in 0..5 {
        let k1 = nonzero(kernel_drops(agent.pid)?);
        std::thread::sleep(Duration::from_millis(1500));
        prom = nonzero(per_sensor(
            &scrape(&agent.metrics)?,
            "vigil_sensor_dropped_events_total",
        ));
        kernel = nonzero(kernel_drops(agent.pid)?);
        if k1 == kernel && kernel == prom {
            break;
        }
    }
    let rss_end = rss_kib(agent.pid);
    // At the exit: the agent stops the sensors (interest off: the counters
    // freeze), drains, writes its last sensor-drops records and prints the
    // summary, then detaches; the kernel map is read between the two.
    signal(agent.pid, libc::SIGINT);
    agent.wait_line("vigil: detaching sensors", Duration::from_secs(90))?;
    let kernel_exit = nonzero(kernel_drops(agent.pid)?);
    let prio_exit = nonzero(kernel_counter(agent.pid, "dropped_prio")?);
    let demoted_exit = nonzero(kernel_counter(agent.pid, "demoted")?);
    let stderr = agent.stop()?;
    let summary = summary_drops(&stderr)?;
    let mut rec_new: BTreeMap<String, u64> = BTreeMap::new();
    let mut rec_total: BTreeMap<String, u64> = BTreeMap::new();
    let mut out_alerts_after_loss = 0u64;
    scan_json(&alerts, 0, |v| {
        if v["event"]["action"] == "sensor-drops"
            && let Some(s) = v["vigil"]["sensor"].as_str()
        {
            *rec_new.entry(s.to_string()).or_insert(0) +=
                v["vigil"]["drops"]["new"].as_u64().unwrap_or(0);
            let t = v["vigil"]["drops"]["total"].as_u64().unwrap_or(0);
            let e = rec_total.entry(s.to_string()).or_insert(0);
            *e = (*e).max(t);
        }
        if v["event"]["kind"] == "alert" && v["vigil"]["after_loss"] == true {
            out_alerts_after_loss += 1;
        }
    });

    // ------------------------------------------------------------ report
    println!(
        "\nvigil-eval flood: {procs} storm processes x {secs} s per storm, --events to a JSON file, ring buffer {}",
        ring.map(|r| format!("{r} bytes"))
            .unwrap_or_else(|| "default (16 MiB)".into())
    );
    println!(
        "  {:<14} {:>12} {:>14} {:>10} {:>7} {:>9} {:>9} {:>8} {:>13} {:>13}",
        "storm",
        "ops/s",
        "delivered/s",
        "drops",
        "drop %",
        "RSS MiB",
        "anon MiB",
        "CPU %",
        "alerts (lossy)",
        "events lossy"
    );
    for s in &storms {
        let seen = s.decoded + s.drops;
        println!(
            "  {:<14} {:>12.0} {:>14.0} {:>10} {:>7.2} {:>9.1} {:>9.1} {:>8.0} {:>6}/{:<3}({:>3}) {:>13}",
            s.name,
            s.ops as f64 / s.secs,
            s.decoded as f64 / s.secs,
            s.drops,
            if seen > 0 {
                s.drops as f64 / seen as f64 * 100.0
            } else {
                0.0
            },
            s.rss_max_kib as f64 / 1024.0,
            s.anon_max_kib as f64 / 1024.0,
            s.cpu_pct,
            s.alerts,
            s.shadow_reads,
            s.alerts_after_loss,
            s.events_after_loss
        );
    }
    for s in &storms {
        let mib: Vec<String> = s
            .rss_series
            .iter()
            .map(|k| format!("{:.0}", *k as f64 / 1024.0))
            .collect();
        println!("  RSS series (MiB, 1 s) {:<14} {}", s.name, mib.join(" "));
    }
    let rss_max = storms.iter().map(|s| s.rss_max_kib).max().unwrap_or(0) as f64 / 1024.0;
    let anon_max = storms.iter().map(|s| s.anon_max_kib).max().unwrap_or(0) as f64 / 1024.0;
    let drops_total = total(&kernel_exit);
    println!(
        "  RSS max {rss_max:.1} MiB (anonymous {anon_max:.1} MiB; target <= 64 MiB: {}), at the end {:.1} MiB; agent CPU is % of one CPU ({ncpu} CPUs)",
        if rss_max <= 64.0 { "met" } else { "MISSED" },
        rss_end as f64 / 1024.0
    );
    println!("  drops per sensor, as reported by each source:");
    println!("    kernel counters map (bpftool): {kernel:?}");
    println!("    Prometheus:                    {prom:?}");
    println!("    kernel map at the exit:        {kernel_exit:?}");
    println!("    of which on the priority ring: {prio_exit:?} (the rest on the bulk ring)");
    println!("    alert candidates demoted to the bulk ring (over budget): {demoted_exit:?}");
    println!("    sensor-drops records (sum of new): {rec_new:?}");
    println!("    sensor-drops records (last total): {rec_total:?}");
    println!("    exit summary:                  {summary:?}");
    println!(
        "  after_loss: {} alerts and {} events flagged (counted in the event file, which the full mode rotates at 64 MiB)",
        out_alerts_after_loss,
        storms.iter().map(|s| s.events_after_loss).sum::<u64>()
    );
    println!(
        "  recovery (attempt {attempt} of 3): {} of {} distinct opens and {} of {cats} shadow_file_read alerts delivered after the flood; drops during it {}; {} of its events flagged after_loss",
        seen_opens.len(),
        want_opens.len(),
        seen_cats.len(),
        drops_after_quiet - drops_before_quiet,
        quiet_after_loss
    );

    // ------------------------------------------------------------ checks
    if stderr.contains("panicked") {
        return Err(format!("the agent panicked:\n{stderr}"));
    }
    if drops_total == 0 {
        return Err(
            "no event was dropped: the flood did not overflow the ring buffer (use --ring-bytes to shrink it)".into(),
        );
    }
    if kernel != prom {
        return Err("while the agent ran, Prometheus disagreed with the kernel's counters".into());
    }
    if !(kernel_exit == summary && summary == rec_new && rec_new == rec_total) {
        return Err(
            "at the exit, the drop counts disagree between the kernel, the metric records and the summary".into(),
        );
    }
    let flagged = out_alerts_after_loss + storms.iter().map(|s| s.events_after_loss).sum::<u64>();
    if flagged == 0 {
        return Err(format!(
            "{drops_total} events were dropped but no record carries vigil.after_loss"
        ));
    }
    if drops_after_quiet != drops_before_quiet {
        return Err(format!(
            "{} new drops during the quiet work after the flood",
            drops_after_quiet - drops_before_quiet
        ));
    }
    if seen_opens.len() != want_opens.len() || seen_cats.len() as u64 != cats {
        return Err(format!(
            "after the flood, known work went missing: {} of {} opens, {} of {cats} alerts",
            seen_opens.len(),
            want_opens.len(),
            seen_cats.len()
        ));
    }
    // each CPU's first record after its last drop is rightly flagged
    if quiet_after_loss > ncpu as u64 {
        return Err(format!(
            "{quiet_after_loss} records of the quiet work carry after_loss, though nothing was dropped then"
        ));
    }
    if rss_max > 128.0 {
        return Err(format!(
            "RSS reached {rss_max:.1} MiB during the flood (bound 128 MiB)"
        ));
    }
    Ok(())
}
