//! Transports and delivery against listeners the tests own (no daemon,
//! no root): a stalled receiver, a local syslog socket, a rotated file,
//! throughput over TCP, the Prometheus exposition and endpoint.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use vigil_outputs::metrics::{MetricsServer, Registry};
use vigil_outputs::sink::SinkHandle;
use vigil_outputs::spool::Spool;
use vigil_outputs::{Kind, Outputs, Record, Severity, Submitted, Value, url};

fn rec<'a>(msg: &'a [u8], json: &'a [u8], fields: &'a [(&'a str, Value<'a>)]) -> Record<'a> {
    Record {
        time_ns: 1_764_034_784_000_000_000,
        kind: Kind::Alert,
        severity: Severity::Medium,
        rule_id: Some("r1"),
        message: msg,
        host: "h",
        pid: Some(1),
        fields,
        json,
        ..Record::default()
    }
}

/// A TCP receiver that accepts one connection and reads 200 bytes per
/// second (about one record): the sink behind it is slow. Enqueueing
/// 100,000 records returns at once; they pile up in memory, then the
/// spool; the counts add up exactly.
#[test]
fn slow_receiver_does_not_block_the_producer() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let read = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, read) = (stop.clone(), read.clone());
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            c.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut buf = [0u8; 200];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = c.read(&mut buf) {
                    read.fetch_add(n as u64, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    // Baseline in the same run: the same submits into a sink whose
    // receiver reads everything at once.
    let fast = TcpListener::bind("127.0.0.1:0").unwrap();
    let fast_port = fast.local_addr().unwrap().port();
    let drain = std::thread::spawn(move || {
        let (mut c, _) = fast.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        while c.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    let mut fcfg = url::parse(&format!(
        "syslog+tcp://127.0.0.1:{fast_port}?format=rfc5424"
    ))
    .unwrap();
    fcfg.queue = 200_000;
    fcfg.memory = 200_000;
    let fsink = SinkHandle::start(fcfg, None).unwrap();
    let cpu0 = thread_cpu();
    for _ in 0..100_000 {
        fsink.submit(&rec(&[b'x'; 150], b"{}", &[]));
    }
    let fast_cpu = thread_cpu() - cpu0;
    let fst = fsink.shutdown(Duration::from_secs(30));
    drain.join().unwrap();
    assert_eq!(fst.sent, 100_000, "{fst:?}");

    let spool = TempDir::new("slow-spool");
    let mut cfg = url::parse(&format!("syslog+tcp://127.0.0.1:{port}?format=rfc5424")).unwrap();
    cfg.queue = 200_000;
    let sink = SinkHandle::start(cfg, Some(spool.path())).unwrap();
    let msg = [b'x'; 150];
    const N: u64 = 100_000;
    let t0 = Instant::now();
    let cpu0 = thread_cpu();
    let mut queued = 0;
    for _ in 0..N {
        if sink.submit(&rec(&msg, b"{}", &[])) == Submitted::Queued {
            queued += 1;
        }
    }
    let (wall, cpu) = (t0.elapsed(), thread_cpu() - cpu0);
    eprintln!(
        "slow receiver: 100k submits took {wall:?} wall, {cpu:?} CPU on the producer thread ({} ns/record)",
        cpu.as_nanos() / u128::from(N)
    );
    eprintln!(
        "producer CPU per submit: stalled receiver {} ns, draining receiver {} ns (ratio {:.2})",
        cpu.as_nanos() / u128::from(N),
        fast_cpu.as_nanos() / u128::from(N),
        cpu.as_secs_f64() / fast_cpu.as_secs_f64()
    );
    assert_eq!(queued, N, "nothing dropped at the queue");
    // The intake thread spills to the spool once memory is full.
    let st = wait_for(Duration::from_secs(60), || {
        let st = sink.stats();
        (st.queued <= 8192 && st.spooled > 0 && st.accepted == N).then_some(st)
    })
    .unwrap_or_else(|| panic!("{:?}", sink.stats()));
    // What the kernel's socket buffers did not take is on disk.
    assert!(st.spooled >= N / 2, "{st:?}");
    let st = sink.shutdown(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    // Every accepted record was sent (into the kernel) or is in the spool.
    assert_eq!(st.dropped(), 0, "{st:?}");
    assert_eq!(st.accepted, (st.sent - st.resent) + st.spooled, "{st:?}");
    assert_eq!(st.spool_records, st.spooled - st.resent, "{st:?}");
    // ... and the spool on disk holds exactly that many for the next start.
    let dir = vigil_outputs::sink::spool_dir_for(spool.path(), &st.url);
    let mut sp = Spool::open(&dir, 1 << 30).unwrap();
    assert_eq!(sp.len(), st.spool_records);
    let mut first = Vec::new();
    sp.peek(1, 1 << 20, &mut first).unwrap().unwrap();
    assert!(first[0].starts_with(b"<84>1 "), "an encoded record");
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Local syslog on a unix datagram socket the test binds (no /dev/log on
/// these machines), RFC 3164.
#[test]
fn local_syslog_socket_gets_rfc3164() {
    let dir = TempDir::new("unix");
    let path = dir.path().join("log.sock");
    let rx = UnixDatagram::bind(&path).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let outs = Outputs::open(
        &[format!(
            "syslog+unix://{}?format=rfc3164&facility=local0",
            path.display()
        )],
        None,
    )
    .unwrap();
    for i in 0..10 {
        let m = format!("message {i}");
        assert_eq!(outs.submit(&rec(m.as_bytes(), b"{}", &[])), 1);
    }
    let mut buf = vec![0u8; 8192];
    for i in 0..10 {
        let n = rx.recv(&mut buf).unwrap();
        let got = String::from_utf8(buf[..n].to_vec()).unwrap();
        let want = format!(
            "<132>Nov 25 01:39:44 h vigil[{}]: [vigil@32473 rule=\"r1\" severity=\"medium\" kind=\"alert\" pid=\"1\"] message {i}",
            std::process::id()
        );
        assert_eq!(got, want);
    }
    // A command line longer than max_size: cut at a character boundary,
    // marked, counted.
    let long = "é".repeat(5000);
    let fields = [("process.command_line", Value::str(&long))];
    assert_eq!(outs.submit(&rec(b"long", b"{}", &fields)), 1);
    let n = rx.recv(&mut buf).unwrap();
    assert!(
        (8190..=8192).contains(&n),
        "unix sockets default to 8 KiB messages: {n}"
    );
    let got = std::str::from_utf8(&buf[..n]).expect("cut at a character boundary");
    assert!(got.contains(" truncated=\"true\"]"), "{got}");
    let st = outs.shutdown(Duration::from_secs(2));
    assert_eq!(st[0].sent, 11);
    assert_eq!(st[0].truncated, 1);
}

/// Filters per sink, JSON passthrough to a rotated file, and a sink
/// whose socket is missing keeps records in memory (no spool root).
#[test]
fn filters_and_file_rotation_through_urls() {
    let dir = TempDir::new("file");
    let f = dir.path().join("alerts.json");
    let outs = Outputs::open(
        &[
            format!(
                "file://{}?rotate_mb=1&keep=2&min_severity=medium&kinds=alert",
                f.display()
            ),
            format!("syslog+unix://{}/absent.sock", dir.path().display()),
        ],
        None,
    )
    .unwrap();
    let json = format!(r#"{{"pad":"{}"}}"#, "p".repeat(3000));
    for i in 0..3000u32 {
        let sev = [Severity::Info, Severity::Medium, Severity::Critical][i as usize % 3];
        let kind = if i % 2 == 0 { Kind::Alert } else { Kind::Event };
        let r = Record {
            severity: sev,
            kind,
            ..rec(b"m", json.as_bytes(), &[])
        };
        outs.submit(&r);
    }
    let st = outs.shutdown(Duration::from_secs(5));
    // alerts (even i) with severity >= medium (i % 3 != 0): i % 6 in {2, 4}
    let want = (0..3000).filter(|i| i % 2 == 0 && i % 3 != 0).count() as u64;
    assert_eq!(st[0].sent, want, "{:?}", st[0]);
    assert_eq!(st[0].filtered, 3000 - want);
    let mut lines = 0;
    assert!(dir.path().join("alerts.json.1").exists(), "rotated");
    for name in ["alerts.json", "alerts.json.1", "alerts.json.2"] {
        let p = dir.path().join(name);
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        assert!(text.len() <= 1 << 20);
        lines += text.lines().filter(|l| *l == json).count();
    }
    assert_eq!(
        lines as u64, want,
        "every line kept (fewer than keep+1 files)"
    );
    // The unix sink never connected; without a spool its memory buffer
    // held the records until shutdown, which counts them as lost.
    assert_eq!(st[1].sent, 0);
    assert_eq!(st[1].dropped_shutdown, 3000, "{:?}", st[1]);
    assert!(st[1].errors > 0);
}

/// Records through TCP to a reader that keeps up: all arrive, in order;
/// prints records/s.
#[test]
fn tcp_throughput_and_order() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    const N: u64 = 200_000;
    let reader = std::thread::spawn(move || {
        let (c, _) = l.accept().unwrap();
        let mut r = BufReader::with_capacity(1 << 20, c);
        let mut n = 0u64;
        let mut line = Vec::new();
        while n < N {
            line.clear();
            if r.read_until(b'\n', &mut line).unwrap() == 0 {
                break;
            }
            let s = std::str::from_utf8(&line).unwrap();
            let seq: u64 = s[s.find("\"seq\":").unwrap() + 6..s.rfind('}').unwrap()]
                .parse()
                .unwrap();
            assert_eq!(seq, n, "in order");
            n += 1;
        }
        n
    });
    let u = format!(
        "syslog+tcp://127.0.0.1:{port}?format=json&framing=newline&queue=300000&memory=300000"
    );
    let outs = Outputs::open(&[u], None).unwrap();
    let t0 = Instant::now();
    for i in 0..N {
        let json = format!(r#"{{"event":{{"kind":"alert"}},"message":"x","seq":{i}}}"#);
        outs.submit(&rec(b"x", json.as_bytes(), &[]));
    }
    let st = outs.shutdown(Duration::from_secs(60));
    let got = reader.join().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "tcp: {N} records in {secs:.2} s = {:.0} records/s",
        N as f64 / secs
    );
    assert_eq!(got, N);
    assert_eq!(st[0].sent, N);
    assert_eq!(st[0].dropped(), 0);
}

/// A strict check of the text exposition format 0.0.4: every line is a
/// HELP, a TYPE or a sample; names and labels are valid; every family has
/// HELP and TYPE before its samples and appears once; counters end in
/// `_total`; label values are properly escaped; histogram buckets are
/// cumulative, end in +Inf, and `_count` equals the +Inf bucket.
fn strict_check(text: &str) -> Result<usize, String> {
    use std::collections::{BTreeMap, BTreeSet};
    let name_ok = |s: &str| {
        let mut it = s.chars();
        it.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && it.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped: BTreeSet<String> = BTreeSet::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut current = String::new();
    let mut samples = 0;
    let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    if !text.ends_with('\n') {
        return Err("must end with a newline".into());
    }
    for (ln, line) in text.lines().enumerate() {
        let e = |m: &str| format!("line {}: {m}: {line:?}", ln + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (n, _) = rest.split_once(' ').ok_or_else(|| e("HELP without text"))?;
            if !name_ok(n) || !n.starts_with("vigil_") {
                return Err(e("bad name"));
            }
            if !helped.insert(n.into()) || done.contains(n) {
                return Err(e("family repeated"));
            }
            if !current.is_empty() {
                done.insert(std::mem::take(&mut current));
            }
            current = n.into();
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (n, t) = rest.split_once(' ').ok_or_else(|| e("TYPE without type"))?;
            if n != current || types.contains_key(n) {
                return Err(e("TYPE must follow its HELP, once"));
            }
            if !["counter", "gauge", "histogram"].contains(&t) {
                return Err(e("unknown type"));
            }
            if (t == "counter") != n.ends_with("_total") {
                return Err(e("counters, and only counters, end in _total"));
            }
            types.insert(n.into(), t.into());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(e("stray comment or empty line"));
        }
        // sample: name{labels} value
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => (&line[..i], &line[i..]),
            None => return Err(e("no value")),
        };
        let base = if types.get(&current).map(String::as_str) == Some("histogram") {
            name.strip_suffix("_bucket")
                .or_else(|| name.strip_suffix("_sum"))
                .or_else(|| name.strip_suffix("_count"))
                .ok_or_else(|| e("histogram sample suffix"))?
        } else {
            name
        };
        if base != current || !types.contains_key(base) {
            return Err(e("sample outside its family"));
        }
        let mut labels = Vec::new();
        let mut rest = rest;
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let end;
            loop {
                let (ks, _) = *chars.peek().ok_or_else(|| e("unterminated labels"))?;
                if r[ks..].starts_with('}') {
                    end = ks + 1;
                    break;
                }
                let eq = r[ks..].find('=').ok_or_else(|| e("label without ="))? + ks;
                let k = &r[ks..eq];
                if !name_ok(k) || k.contains(':') {
                    return Err(e("bad label name"));
                }
                if !r[eq + 1..].starts_with('"') {
                    return Err(e("label value not quoted"));
                }
                let mut v = String::new();
                let mut i = eq + 2;
                loop {
                    let c = r[i..]
                        .chars()
                        .next()
                        .ok_or_else(|| e("unterminated value"))?;
                    match c {
                        '\\' => {
                            let n = r[i + 1..].chars().next().ok_or_else(|| e("bad escape"))?;
                            match n {
                                '\\' => v.push('\\'),
                                '"' => v.push('"'),
                                'n' => v.push('\n'),
                                _ => return Err(e("bad escape")),
                            }
                            i += 1 + n.len_utf8();
                        }
                        '"' => {
                            i += 1;
                            break;
                        }
                        '\n' => return Err(e("raw newline in value")),
                        c => {
                            v.push(c);
                            i += c.len_utf8();
                        }
                    }
                }
                labels.push((k.to_string(), v));
                if r[i..].starts_with(',') {
                    i += 1;
                }
                while chars.peek().is_some_and(|(j, _)| *j < i) {
                    chars.next();
                }
            }
            rest = &r[end..];
        }
        let value = rest
            .strip_prefix(' ')
            .ok_or_else(|| e("no space before value"))?;
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            s => s.parse().map_err(|_| e("value is not a float"))?,
        };
        let key_labels: Vec<_> = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
        let series = format!("{base}{key_labels:?}");
        if name.ends_with("_bucket") && base != name {
            let le = labels
                .iter()
                .find(|(k, _)| k == "le")
                .ok_or_else(|| e("bucket without le"))?;
            let le: f64 = if le.1 == "+Inf" {
                f64::INFINITY
            } else {
                le.1.parse().map_err(|_| e("bad le"))?
            };
            buckets.entry(series).or_default().push((le, v));
        } else if name.ends_with("_count") && base != name {
            counts.insert(series, v);
        }
        samples += 1;
    }
    for (s, b) in &buckets {
        if !b.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1) {
            return Err(format!("{s}: buckets not increasing/cumulative"));
        }
        if b.last().map(|x| x.0) != Some(f64::INFINITY) {
            return Err(format!("{s}: no +Inf bucket"));
        }
        if counts.get(s) != b.last().map(|x| &x.1) {
            return Err(format!("{s}: _count differs from the +Inf bucket"));
        }
    }
    Ok(samples)
}

fn promtool(text: &str) -> Option<String> {
    let mut child = match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            vigil_rootgate::require(
                "promtool check metrics",
                &format!(
                    "no promtool ({e}; Debian package prometheus; the strict in-test parser still ran)"
                ),
                false,
            );
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Some(format!(
        "{}{}{}",
        if out.status.success() { "" } else { "FAILED " },
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

#[test]
fn metrics_exposition_is_valid_and_served() {
    let reg = Arc::new(Registry::new());
    let c = reg
        .counter(
            "vigil_sensor_events_total",
            "Events decoded, per sensor.\nSecond line \\ with backslash.",
            &[("sensor", "exec")],
        )
        .unwrap();
    c.inc_by(41);
    c.inc();
    reg.counter(
        "vigil_sensor_events_total",
        "Events decoded, per sensor.\nSecond line \\ with backslash.",
        &[("sensor", "open")],
    )
    .unwrap()
    .inc();
    reg.counter(
        "vigil_alerts_total",
        "Alerts raised, per rule and severity.",
        &[
            ("rule", "weird \"rule\" \\ name\nline2"),
            ("severity", "high"),
        ],
    )
    .unwrap()
    .inc();
    let g = reg
        .gauge("vigil_rss_bytes", "Resident memory.", &[])
        .unwrap();
    g.set(41 << 20);
    let h = reg
        .histogram(
            "vigil_rule_evaluation_seconds",
            "Time to evaluate all rules against one event.",
            &[],
            1e-9,
        )
        .unwrap();
    for v in [0, 1, 2, 3, 900, 1000, 1_000_000, u64::MAX / 4] {
        h.observe(v);
    }
    // sinks publish their counters too
    let dir = TempDir::new("metrics");
    let outs = Outputs::open(&[format!("file://{}/a.json", dir.path().display())], None).unwrap();
    outs.register_metrics(&reg);
    outs.submit(&rec(b"m", b"{}", &[]));
    // naming rules are enforced
    assert!(
        reg.counter("vigil_bad", "x", &[]).is_err(),
        "counter without _total"
    );
    assert!(
        reg.gauge("other_thing", "x", &[]).is_err(),
        "no vigil_ prefix"
    );
    assert!(reg.gauge("vigil_x_total", "x", &[]).is_err());
    assert!(reg.counter("vigil_x_total", "x", &[("__a", "b")]).is_err());
    assert!(reg.gauge("vigil_rss_bytes", "other help", &[]).is_err());

    let text = reg.render();
    let n = strict_check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(n > 60, "{n} samples");
    assert!(text.contains(
        "vigil_alerts_total{rule=\"weird \\\"rule\\\" \\\\ name\\nline2\",severity=\"high\"} 1\n"
    ));
    assert!(text.contains("# HELP vigil_sensor_events_total Events decoded, per sensor.\\nSecond line \\\\ with backslash.\n"));
    assert!(text.contains("vigil_sensor_events_total{sensor=\"exec\"} 42\n"));
    assert!(text.contains("vigil_rule_evaluation_seconds_count 8\n"));
    assert!(
        text.contains("vigil_rule_evaluation_seconds_bucket{le=\"0.000000001\"} 2\n"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "vigil_output_records_submitted_total{{sink=\"file://{}/a.json\"}} 1\n",
        dir.path().display()
    )));
    if let Some(out) = promtool(&text) {
        assert!(
            !out.starts_with("FAILED"),
            "promtool check metrics: {out}\n{text}"
        );
        eprintln!("promtool check metrics: ok {out}");
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let srv =
        MetricsServer::start(rt.handle(), "127.0.0.1:0".parse().unwrap(), reg.clone()).unwrap();
    let get = |path: &str| {
        let mut c = TcpStream::connect(srv.local_addr()).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    };
    let resp = get("/metrics");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    let body = &resp[resp.find("\r\n\r\n").unwrap() + 4..];
    strict_check(body).unwrap();
    assert!(
        body.contains("vigil_rss_bytes 43008\n") || body.contains("vigil_rss_bytes 42991616\n")
    );
    assert!(get("/").starts_with("HTTP/1.1 404"));
    let mut c = TcpStream::connect(srv.local_addr()).unwrap();
    write!(
        c,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut post = String::new();
    c.read_to_string(&mut post).unwrap();
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    let mut c = TcpStream::connect(srv.local_addr()).unwrap();
    write!(c, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut head = String::new();
    c.read_to_string(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");

    // A client trickling its request does not hold up a scrape.
    let mut slow = TcpStream::connect(srv.local_addr()).unwrap();
    slow.write_all(b"G").unwrap();
    let mut c = TcpStream::connect(srv.local_addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    write!(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp)
        .expect("scrape answered while a slow client is connected");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    // ... and the slow client is cut off at the request deadline.
    slow.set_read_timeout(Some(vigil_outputs::metrics::REQUEST_DEADLINE * 3))
        .unwrap();
    let mut rest = Vec::new();
    slow.read_to_end(&mut rest)
        .expect("the endpoint closes a client that never finishes its request");

    // Past the connection limit, connections are closed at once.
    let idle: Vec<TcpStream> = (0..vigil_outputs::metrics::MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(srv.local_addr()).unwrap())
        .collect();
    let refused = wait_for(Duration::from_secs(10), || {
        let mut extra = TcpStream::connect(srv.local_addr()).ok()?;
        extra.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut b = Vec::new();
        extra.read_to_end(&mut b).ok()?;
        (srv.refused() >= 1).then_some(())
    });
    assert!(refused.is_some(), "connection over the limit refused");
    drop(idle);
    let resp = wait_for(Duration::from_secs(10), || {
        // A connection accepted before the idle ones' slots were freed is
        // closed (reset): try again.
        let mut c = TcpStream::connect(srv.local_addr()).ok()?;
        write!(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
        let mut r = String::new();
        c.read_to_string(&mut r).ok()?;
        r.starts_with("HTTP/1.1 200 OK\r\n").then_some(r)
    });
    assert!(
        resp.is_some(),
        "scrapes work again once the idle clients left"
    );
    let addr = srv.local_addr();
    drop(srv);
    // Dropped, the endpoint is gone: no listener, no connection served.
    let gone = wait_for(Duration::from_secs(5), || {
        TcpStream::connect(addr).is_err().then_some(())
    });
    assert!(
        gone.is_some(),
        "the listener closes when the server is dropped"
    );
    outs.shutdown(Duration::from_secs(1));
}

/// The dashboard plots only metrics vigil defines: the registry's own
/// names, or a series a performance collector of the engine emits (a
/// `"vigil_..."` literal in engine/src/perf/; the engine's root test
/// `grafana_dashboard_series_are_in_a_live_agents_metrics` checks they are
/// in a real agent's /metrics).
#[test]
fn grafana_dashboard_uses_defined_metrics() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/grafana/vigil.json"))
        .unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut perf = String::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../engine/src/perf");
    for e in std::fs::read_dir(dir).unwrap() {
        perf.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap_or_default());
    }
    let perf_names: Vec<String> = perf
        .match_indices("\"vigil_")
        .map(|(i, _)| {
            perf[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    assert!(
        perf_names
            .iter()
            .any(|n| n == "vigil_kmem_allocations_total")
    );
    let mut names: Vec<&str> = vigil_outputs::metrics::names::ALL
        .iter()
        .map(|n| n.0)
        .collect();
    names.extend(perf_names.iter().map(String::as_str));
    let mut seen = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("vigil_") {
                let tok: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let base = tok.strip_suffix("_bucket").unwrap_or(&tok);
                assert!(
                    names.contains(&base),
                    "{tok} in {expr:?} is not a vigil metric"
                );
                seen += 1;
            }
        }
    }
    assert!(seen >= 15);
}

/// Unusable TLS files are configuration errors at start (the engine exits
/// 2), naming the file.
#[test]
fn bad_tls_files_are_start_errors() {
    let dir = TempDir::new("badtls");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    for (u, needle) in [
        (
            "syslog+tls://localhost?ca=/nonexistent/ca.pem".to_string(),
            "/nonexistent/ca.pem",
        ),
        (
            format!("syslog+tls://localhost?ca={}", junk.display()),
            "no PEM certificate",
        ),
        (
            format!(
                "syslog+tls://localhost?ca={0}&cert={0}&key={0}",
                junk.display()
            ),
            "no PEM certificate",
        ),
    ] {
        let e = match Outputs::open(&[u.as_str()], None) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{u} started"),
        };
        assert!(e.starts_with("TLS: ") && e.contains(needle), "{u}: {e}");
    }
    let e = Outputs::open(&["stdout", "syslog+udp://h:70000"], None)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        e,
        "output `syslog+udp://h:70000`: port: `70000` is not a port number 1-65535"
    );
}

/// IPv6 loopback works like IPv4 (skipped when the host has no ::1, a
/// failure under `VIGIL_REQUIRE_ROOT_TESTS=1`).
#[test]
fn tcp_over_ipv6_loopback() {
    let bound = TcpListener::bind("[::1]:0");
    if !vigil_rootgate::require(
        "tcp_over_ipv6_loopback",
        "no IPv6 loopback (::1)",
        bound.is_ok(),
    ) {
        return;
    }
    let l = bound.unwrap();
    let port = l.local_addr().unwrap().port();
    let reader = std::thread::spawn(move || {
        let (c, _) = l.accept().unwrap();
        let mut s = String::new();
        BufReader::new(c).read_to_string(&mut s).unwrap();
        s
    });
    let outs = Outputs::open(&[format!("syslog+tcp://[::1]:{port}?format=json")], None).unwrap();
    outs.submit(&rec(b"m", br#"{"a":1}"#, &[]));
    let st = outs.shutdown(Duration::from_secs(5));
    assert_eq!(st[0].sent, 1);
    assert_eq!(reader.join().unwrap(), "7 {\"a\":1}");
}

#[test]
fn file_output_reopens_its_path_after_a_rename_and_loses_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("reopen");
    let path = dir.path().join("alerts.json");
    let rotated = dir.path().join("alerts.json.1");
    let outs = Outputs::open(&[format!("file://{}", path.display())], None).unwrap();
    let lines = |p: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let wait = |p: &std::path::Path, n: usize| {
        let end = Instant::now() + Duration::from_secs(10);
        while lines(p).len() < n && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    for i in 0..50 {
        let j = format!("{{\"n\":{i}}}");
        assert_eq!(outs.submit(&rec(b"m", j.as_bytes(), &[])), 1);
    }
    wait(&path, 50);
    std::fs::rename(&path, &rotated).unwrap();
    outs.reopen();
    for i in 50..100 {
        let j = format!("{{\"n\":{i}}}");
        assert_eq!(outs.submit(&rec(b"m", j.as_bytes(), &[])), 1);
    }
    let st = outs.shutdown(Duration::from_secs(5));
    assert_eq!(st[0].sent, 100, "{:?}", st[0]);
    let (old, new) = (lines(&rotated), lines(&path));
    assert_eq!(old.len(), 50, "the renamed file keeps the first records");
    assert_eq!(new.len(), 50, "the later ones are in a new file");
    assert!(
        old[49].contains("\"n\":49") && new[0].contains("\"n\":50"),
        "{old:?} {new:?}"
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
}

/// Submitted records are staged and reach the intake thread in batches:
/// `flush_staged` hands them over at once, and records nobody flushes
/// still reach the file within `STAGE_WAIT` (plus the sender's write);
/// the queue bound counts staged records, so what `submit` reports as
/// queued is what is delivered, and the rest is counted as dropped.
#[test]
fn staged_records_are_delivered_on_flush_or_within_the_stage_wait() {
    use vigil_outputs::sink::STAGE_WAIT;
    let dir = TempDir::new("stage");
    let f = dir.path().join("out.json");
    let lines = |f: &std::path::Path| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let sink = SinkHandle::start(
        url::parse(&format!("file://{}", f.display())).unwrap(),
        None,
    )
    .unwrap();
    // flushed: all 10 in the file promptly, in order
    for i in 0..10 {
        let j = format!(r#"{{"n":{i}}}"#);
        assert_eq!(
            sink.submit(&rec(b"m", j.as_bytes(), &[])),
            Submitted::Queued
        );
    }
    sink.flush_staged();
    let t = Instant::now();
    assert!(
        wait_for(Duration::from_secs(5), || (lines(&f) == 10).then_some(())).is_some(),
        "flushed records not written"
    );
    let flushed_in = t.elapsed();
    // not flushed: the intake thread takes them itself
    let t = Instant::now();
    for i in 10..15 {
        let j = format!(r#"{{"n":{i}}}"#);
        sink.submit(&rec(b"m", j.as_bytes(), &[]));
    }
    assert!(
        wait_for(Duration::from_secs(5), || (lines(&f) == 15).then_some(())).is_some(),
        "staged records never written without a flush"
    );
    let unflushed_in = t.elapsed();
    // the bound: STAGE_WAIT plus the sender's write on a busy host
    assert!(
        unflushed_in < STAGE_WAIT + Duration::from_secs(1),
        "unflushed records took {unflushed_in:?}"
    );
    let text = std::fs::read_to_string(&f).unwrap();
    let got: Vec<String> = text.lines().map(str::to_string).collect();
    let want: Vec<String> = (0..15).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
    assert_eq!(got, want, "order kept");
    let st = sink.shutdown(Duration::from_secs(5));
    assert_eq!((st.sent, st.dropped()), (15, 0), "{st:?}");
    eprintln!("flushed records written in {flushed_in:?}, unflushed in {unflushed_in:?}");

    // a queue of 100 records, nothing flushed: the first 100 are queued
    // (staged), the next ones dropped and counted, never reported queued
    let f2 = dir.path().join("q.json");
    let mut cfg = url::parse(&format!("file://{}", f2.display())).unwrap();
    cfg.queue = 100;
    let sink = SinkHandle::start(cfg, None).unwrap();
    let mut queued = 0;
    for i in 0..150 {
        let j = format!(r#"{{"n":{i}}}"#);
        if sink.submit(&rec(b"m", j.as_bytes(), &[])) == Submitted::Queued {
            queued += 1;
        }
    }
    let st = sink.shutdown(Duration::from_secs(5));
    // the intake thread may have taken a batch meanwhile (every
    // STAGE_WAIT), freeing room: at least 100 queued, and every record is
    // either sent or counted as dropped
    assert!(queued >= 100, "{queued} queued");
    assert_eq!(st.sent, queued, "{st:?}");
    assert_eq!(st.sent + st.dropped_queue_full, 150, "{st:?}");
    assert_eq!(lines(&f2) as u64, queued);
}
