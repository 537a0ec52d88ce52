//! Outage: vigil forwards alerts over RELP (`syslog+relp://`, the sink with
//! acknowledgements, docs/outputs.md) to a receiver run here as a child
//! process (`vigil-eval outage --serve PORT FILE`: a minimal RELP server
//! that appends each message to FILE before acknowledging it). A steady
//! stream of known alerts (a rule of this step matches failing opens of
//! `/etc/vigil-outage-TAG-SEQ`, one distinct path per alert) runs while
//! 1. the receiver is killed (SIGKILL) mid-stream and restarted seconds
//!    later: every alert, including those raised while it was down, must
//!    arrive (unique sequence numbers, exactly); duplicates are allowed
//!    (RELP is at least once) and counted; the spool metrics must show the
//!    spool filled and drained;
//! 2. the receiver is killed again, alerts are raised into the spool, and
//!    the agent is killed with SIGKILL; a new agent with the same data dir
//!    and a new receiver must deliver every spooled alert.

use crate::util::*;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ------------------------------------------------------------ the receiver

/// Reads one RELP frame `TXNR SP COMMAND SP DATALEN [SP DATA] LF`.
fn read_frame(r: &mut impl BufRead) -> std::io::Result<Option<(u64, String, Vec<u8>)>> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad RELP frame");
    let mut field = |first: bool| -> std::io::Result<Option<(Vec<u8>, u8)>> {
        let mut v = Vec::new();
        loop {
            let mut b = [0u8; 1];
            if r.read(&mut b)? == 0 {
                return if first && v.is_empty() {
                    Ok(None)
                } else {
                    Err(bad())
                };
            }
            if b[0] == b' ' || b[0] == b'\n' {
                return Ok(Some((v, b[0])));
            }
            v.push(b[0]);
            if v.len() > 32 {
                return Err(bad());
            }
        }
    };
    let Some((t, _)) = field(true)? else {
        return Ok(None);
    };
    let txnr = std::str::from_utf8(&t)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let (c, _) = field(false)?.ok_or_else(bad)?;
    let (l, sep) = field(false)?.ok_or_else(bad)?;
    let len: usize = std::str::from_utf8(&l)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n <= 1 << 20)
        .ok_or_else(bad)?;
    let mut data = vec![0u8; len];
    if sep == b' ' {
        r.read_exact(&mut data)?;
        let mut lf = [0u8; 1];
        r.read_exact(&mut lf)?;
    }
    Ok(Some((txnr, String::from_utf8_lossy(&c).into_owned(), data)))
}

fn serve_conn(s: std::net::TcpStream, out: Arc<Mutex<std::fs::File>>) -> std::io::Result<()> {
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    while let Some((txnr, cmd, data)) = read_frame(&mut r)? {
        let rsp: &[u8] = match cmd.as_str() {
            "open" => b"200 OK\nrelp_version=0\nrelp_software=vigil-eval\ncommands=syslog",
            "syslog" => {
                let mut line = data;
                line.push(b'\n');
                // written (one write, O_APPEND) before it is acknowledged
                out.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .write_all(&line)?;
                b"200 OK"
            }
            "close" => {
                w.write_all(format!("{txnr} rsp 0\n").as_bytes())?;
                return Ok(());
            }
            _ => b"500 unknown command",
        };
        let mut f = format!("{txnr} rsp {} ", rsp.len()).into_bytes();
        f.extend_from_slice(rsp);
        f.push(b'\n');
        w.write_all(&f)?;
    }
    Ok(())
}

/// `vigil-eval outage --serve PORT FILE`: the RELP receiver (until killed).
fn serve(port: &str, file: &str) -> R<()> {
    let l =
        std::net::TcpListener::bind(format!("127.0.0.1:{port}")).map_err(ctx("receiver: bind"))?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(ctx(file))?;
    let out = Arc::new(Mutex::new(f));
    println!("listening");
    let _ = std::io::stdout().flush();
    for s in l.incoming().flatten() {
        let out = out.clone();
        std::thread::spawn(move || {
            let _ = serve_conn(s, out);
        });
    }
    Ok(())
}

/// The receiver child; SIGKILLed on drop (and on a signal of ours).
struct Receiver {
    child: Option<std::process::Child>,
    _guard: Guard,
}

impl Receiver {
    fn start(port: u16, file: &Path) -> R<Receiver> {
        let me = std::env::current_exe().map_err(ctx("current_exe"))?;
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let mut c = Command::new(&me)
                .args(["outage", "--serve", &port.to_string()])
                .arg(file)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(ctx("spawn the receiver"))?;
            let pid = c.id();
            let guard = Guard::new(move || signal(pid, libc::SIGKILL));
            let mut line = String::new();
            if let Some(o) = c.stdout.take() {
                let _ = BufReader::new(o).read_line(&mut line);
            }
            if line.trim() == "listening" {
                return Ok(Receiver {
                    child: Some(c),
                    _guard: guard,
                });
            }
            let _ = c.kill();
            let out = c.wait_with_output().map_err(ctx("receiver"))?;
            if Instant::now() > end {
                return Err(format!(
                    "the receiver did not start on port {port}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILL (the receiver dies with whatever it had not acknowledged).
    fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ------------------------------------------------------------ the stream

/// Raises one alert per failing open of `/etc/vigil-outage-TAG-SEQ`, at
/// `rate` per second, until stopped; returns the sequence numbers raised.
struct Stream {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

impl Stream {
    fn start(tag: u32, first: u64, rate: u64) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut done = Vec::new();
            let mut seq = first;
            while !s2.load(Ordering::Relaxed) {
                if let Ok(p) = CString::new(format!("/etc/vigil-outage-{tag}-{seq}")) {
                    // SAFETY: valid C string; the fd, if any, is closed.
                    unsafe {
                        let fd = libc::openat(libc::AT_FDCWD, p.as_ptr(), libc::O_RDONLY);
                        if fd >= 0 {
                            libc::close(fd);
                        }
                    }
                }
                done.push(seq);
                seq += 1;
                let due = t0 + Duration::from_secs_f64(done.len() as f64 / rate as f64);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
            done
        });
        Stream { stop, thread }
    }
    fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Sequence numbers received so far: (every one, how many times).
fn received(file: &Path, tag: u32) -> BTreeMap<u64, u64> {
    let prefix = format!("/etc/vigil-outage-{tag}-");
    let mut m = BTreeMap::new();
    scan_json(file, 0, |v| {
        if let Some(seq) = v["file"]["path"]
            .as_str()
            .and_then(|p| p.strip_prefix(&prefix))
            .and_then(|s| s.parse::<u64>().ok())
        {
            *m.entry(seq).or_insert(0) += 1;
        }
    });
    m
}

/// Waits until every sequence number in `want` was received (at most `max`).
fn wait_all(file: &Path, tag: u32, want: &BTreeSet<u64>, max: Duration) -> BTreeMap<u64, u64> {
    let end = Instant::now() + max;
    loop {
        let got = received(file, tag);
        if want.iter().all(|s| got.contains_key(s)) || Instant::now() > end {
            return got;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn gauge(agent: &Agent, name: &str) -> f64 {
    scrape(&agent.metrics)
        .map(|t| metric_sum(&t, name, ""))
        .unwrap_or(0.0)
}

/// `vigil-eval outage [--quick] [--down S] [--rate N]`
pub fn main(args: &[String]) -> R<()> {
    if args.first().map(String::as_str) == Some("--serve") {
        let (Some(port), Some(file)) = (args.get(1), args.get(2)) else {
            return Err("outage --serve PORT FILE".into());
        };
        return serve(port, file);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let mut down: u64 = if quick { 4 } else { 20 };
    let mut rate: u64 = if quick { 200 } else { 500 };
    let mut i = 0;
    while i < args.len() {
        let val = |i: usize| args.get(i + 1).and_then(|s| s.parse::<u64>().ok());
        match args[i].as_str() {
            "--quick" => {}
            "--down" => {
                down = val(i).filter(|s| *s > 0).ok_or("--down S (> 0)")?;
                i += 1;
            }
            "--rate" => {
                rate = val(i).filter(|s| *s > 0).ok_or("--rate N (> 0)")?;
                i += 1;
            }
            a => return Err(format!("outage: unknown argument {a}")),
        }
        i += 1;
    }
    let tag = std::process::id();
    let dir = TempDir::new("outage")?;
    let rules = dir.join("outage.yaml");
    std::fs::write(
        &rules,
        "- rule: vigil_eval_outage\n  name: vigil-eval outage marker\n  description: A failing open of /etc/vigil-outage-* (vigil-eval outage).\n  severity: medium\n  for_events: [file]\n  condition: event.action = open and file.path startswith \"/etc/vigil-outage-\"\n  output: \"outage marker %file.path\"\n",
    )
    .map_err(ctx("rule file"))?;
    let recv_file = dir.join("received.jsonl");
    let port = free_port()?;
    let url = format!("syslog+relp://127.0.0.1:{port}?format=json&kinds=alert");
    // every marker alert must pass: no per-rule rate limit
    let extra = format!(
        "housekeeping_interval_s = 1\nheartbeat_interval_s = 0\n[rules]\npaths = [{:?}]\n[outputs]\nrate_limit_burst = 0\n",
        rules.display().to_string()
    );
    let data = dir.join("vigil");
    let start_agent = || {
        Agent::start(AgentOpts {
            data_dir: &data,
            outputs: vec![url.clone()],
            events: false,
            extra_toml: &extra,
            args: vec![],
        })
    };
    progress(format!(
        "outage: alerts over RELP to a receiver on 127.0.0.1:{port}, {rate} alerts/s; receiver down for {down} s mid-stream, then a kill -9 of the agent with alerts in its spool"
    ));

    // ---- 1: the receiver dies mid-stream and comes back
    let r1 = Receiver::start(port, &recv_file)?;
    let agent = start_agent()?;
    let stream = Stream::start(tag, 0, rate);
    std::thread::sleep(Duration::from_secs(2));
    r1.kill9();
    let t_down = Instant::now();
    let mut spool_max = 0.0f64;
    let mut spool_bytes_max = 0.0f64;
    while t_down.elapsed() < Duration::from_secs(down) {
        std::thread::sleep(Duration::from_millis(500));
        spool_max = spool_max.max(gauge(&agent, "vigil_output_spool_records"));
        spool_bytes_max = spool_bytes_max.max(gauge(&agent, "vigil_output_spool_bytes"));
    }
    let r2 = Receiver::start(port, &recv_file)?;
    let downtime = t_down.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let sent1 = stream.stop();
    let want1: BTreeSet<u64> = sent1.iter().copied().collect();
    let got1 = wait_all(&recv_file, tag, &want1, Duration::from_secs(60));
    // the spool drains once the backlog is sent
    let drain_end = Instant::now() + Duration::from_secs(30);
    let mut spool_after = gauge(&agent, "vigil_output_spool_records");
    while spool_after > 0.0 && Instant::now() < drain_end {
        std::thread::sleep(Duration::from_millis(250));
        spool_after = gauge(&agent, "vigil_output_spool_records");
    }
    let spooled_total = gauge(&agent, "vigil_output_records_spooled_total");
    let resent_total = gauge(&agent, "vigil_output_records_resent_total");
    let missing1: Vec<u64> = want1
        .iter()
        .filter(|s| !got1.contains_key(s))
        .copied()
        .collect();
    let dups1: u64 = want1
        .iter()
        .map(|s| got1.get(s).copied().unwrap_or(0).saturating_sub(1))
        .sum();
    progress(format!(
        "outage: phase 1: {} alerts raised, {} received, {} missing, {dups1} duplicates; spool max {spool_max} records ({spool_bytes_max} bytes), {spooled_total} spooled in all, now {spool_after}",
        want1.len(),
        want1.len() - missing1.len(),
        missing1.len()
    ));

    // ---- 2: kill -9 of the agent while alerts wait in its spool
    r2.kill9();
    // let the sender notice that the link is down first
    std::thread::sleep(Duration::from_secs(1));
    let first2 = sent1.iter().max().map(|m| m + 1).unwrap_or(0);
    let stream = Stream::start(tag, first2, rate);
    std::thread::sleep(Duration::from_secs(3));
    let sent2 = stream.stop();
    let want2: BTreeSet<u64> = sent2.iter().copied().collect();
    // wait until all of them are in the spool (the gauge may also count
    // other alerts of this host)
    let end = Instant::now() + Duration::from_secs(20);
    let mut spooled2 = gauge(&agent, "vigil_output_spool_records");
    while spooled2 < want2.len() as f64 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(250));
        spooled2 = gauge(&agent, "vigil_output_spool_records");
    }
    let sensor_drops_1 = gauge(&agent, "vigil_sensor_dropped_events_total");
    let out_drops_1 = gauge(&agent, "vigil_output_records_dropped_total");
    let stderr1 = agent.stderr_text();
    agent.kill9();
    let _r3 = Receiver::start(port, &recv_file)?;
    let agent2 = start_agent()?;
    let got2 = wait_all(&recv_file, tag, &want2, Duration::from_secs(60));
    let missing2: Vec<u64> = want2
        .iter()
        .filter(|s| !got2.contains_key(s))
        .copied()
        .collect();
    let dups2: u64 = want2
        .iter()
        .map(|s| got2.get(s).copied().unwrap_or(0).saturating_sub(1))
        .sum();
    let sensor_drops_2 = gauge(&agent2, "vigil_sensor_dropped_events_total");
    let out_drops_2 = gauge(&agent2, "vigil_output_records_dropped_total");
    let stderr2 = agent2.stop()?;
    let torn: Vec<&str> = stderr2
        .lines()
        .filter(|l| l.contains("spool") && (l.contains("torn") || l.contains("corrupt")))
        .collect();

    println!(
        "\nvigil-eval outage: alerts over RELP at {rate}/s (receiver: this program, writes then acknowledges)"
    );
    println!(
        "  receiver killed for {downtime:.1} s mid-stream: {} alerts raised, {} delivered, {} missing, {dups1} duplicates; spool max {spool_max} records / {spool_bytes_max} bytes, {spooled_total} records spooled, {resent_total} re-sent, spool after recovery {spool_after}",
        want1.len(),
        want1.len() - missing1.len(),
        missing1.len()
    );
    println!(
        "  agent killed (SIGKILL) with {spooled2} records in its spool ({} alerts raised while the receiver was down): {} delivered by the restarted agent, {} missing, {dups2} duplicates",
        want2.len(),
        want2.len() - missing2.len(),
        missing2.len()
    );
    println!(
        "  sensor drops {sensor_drops_1} + {sensor_drops_2}, output drops {out_drops_1} + {out_drops_2}{}",
        if torn.is_empty() {
            String::new()
        } else {
            format!("; spool on restart: {}", torn.join(" / "))
        }
    );

    for s in [&stderr1, &stderr2] {
        if s.contains("panicked") {
            return Err(format!("the agent panicked:\n{s}"));
        }
    }
    if sensor_drops_1 + sensor_drops_2 > 0.0 {
        return Err(
            "the sensors dropped events: the count is not conclusive (a busy host?)".into(),
        );
    }
    if out_drops_1 + out_drops_2 > 0.0 {
        return Err(format!(
            "the output dropped {} records",
            out_drops_1 + out_drops_2
        ));
    }
    if !missing1.is_empty() {
        return Err(format!(
            "{} alerts raised around the receiver's outage never arrived (first: {:?})",
            missing1.len(),
            &missing1[..missing1.len().min(10)]
        ));
    }
    if spool_max < 1.0 || spooled_total < 1.0 {
        return Err("the spool was never used while the receiver was down".into());
    }
    if spool_after != 0.0 {
        return Err(format!(
            "the spool did not drain after the receiver came back ({spool_after} records left)"
        ));
    }
    if spooled2 < want2.len() as f64 {
        return Err(format!(
            "only {spooled2} of {} alerts reached the spool before the kill",
            want2.len()
        ));
    }
    if !missing2.is_empty() {
        // what the outputs said before the kill and after the restart
        let said: Vec<&str> = stderr1
            .lines()
            .chain(stderr2.lines())
            .filter(|l| l.contains("output") || l.contains("spool"))
            .collect();
        return Err(format!(
            "{} alerts raised while the receiver was down were not delivered after the agent's kill -9 and restart (first: {:?}); the agents said:\n{}",
            missing2.len(),
            &missing2[..missing2.len().min(10)],
            said.join("\n")
        ));
    }
    Ok(())
}
