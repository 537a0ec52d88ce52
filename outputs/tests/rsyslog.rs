//! The whole chain against a real rsyslogd on loopback: encoders,
//! transports (UDP, TCP octet-counted and newline-framed, TLS with mutual
//! authentication), the spool across an outage and across restarts.
//! Root tests (CI runs them as root with VIGIL_REQUIRE_ROOT_TESTS=1).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use vigil_outputs::sink::{SinkConfig, SinkHandle};
use vigil_outputs::{Kind, Record, Severity, Value, url};

const HOSTILE_CMD: &str = r#"sh -c 'echo "]" \ [x="y"] = | done'"#;

/// Sends record `seq` (its number is in the message, the rule name and a
/// field) to `sink`.
fn send(sink: &SinkHandle, seq: u32) {
    let msg = format!("alert number {seq}");
    let name = format!("Rule \"{seq}\" [x] a|b \\ c=d");
    let json = format!(r#"{{"seq":{seq}}}"#);
    let fields = [
        ("process.command_line", Value::str(HOSTILE_CMD)),
        ("vigil.seq", Value::U64(u64::from(seq))),
        ("user.name", Value::str("root")),
    ];
    let rec = Record {
        time_ns: 1_764_034_784_000_000_000 + u64::from(seq) * 1000,
        kind: Kind::Alert,
        severity: Severity::High,
        rule_id: Some("shadow_read"),
        rule_name: Some(&name),
        ruleset: Some("builtin"),
        message: msg.as_bytes(),
        host: "web-1",
        pid: Some(4242),
        executable: Some("/usr/bin/cat ünï".as_bytes()),
        fields: &fields,
        json: json.as_bytes(),
    };
    assert_eq!(sink.submit(&rec), vigil_outputs::Submitted::Queued);
}

fn field<'a>(r: &'a serde_json::Value, k: &str) -> &'a str {
    r[k].as_str().unwrap_or_else(|| panic!("no {k} in {r}"))
}

/// Checks an RFC 5424 or 3164 record rsyslog parsed; returns its seq.
fn check_syslog(r: &serde_json::Value, rfc5424: bool) -> u32 {
    assert_eq!(field(r, "pri"), "83", "{r}");
    assert_eq!(field(r, "hostname"), "web-1");
    assert_eq!(field(r, "app"), "vigil");
    let (sd, msg) = if rfc5424 {
        assert_eq!(field(r, "procid"), std::process::id().to_string());
        assert_eq!(field(r, "msgid"), "shadow_read");
        (field(r, "sd").to_string(), field(r, "msg").to_string())
    } else {
        // rsyslog leaves RFC 3164 structured data in MSG
        let m = field(r, "msg").trim_start();
        let end = m.find("\"] ").expect("sd end") + 2;
        (m[..end].to_string(), m[end + 1..].to_string())
    };
    let sd = parse_sd(&sd);
    let p = &sd["vigil@32473"];
    let get = |k: &str| {
        p.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {k} in {p:?}"))
    };
    let seq: u32 = get("vigil.seq").parse().unwrap();
    assert_eq!(get("rule"), "shadow_read");
    assert_eq!(get("rule_name"), format!("Rule \"{seq}\" [x] a|b \\ c=d"));
    assert_eq!(get("ruleset"), "builtin");
    assert_eq!(get("severity"), "high");
    assert_eq!(get("kind"), "alert");
    assert_eq!(get("pid"), "4242");
    assert_eq!(get("exe"), "/usr/bin/cat ünï");
    assert_eq!(get("process.command_line"), HOSTILE_CMD);
    assert_eq!(get("user.name"), "root");
    assert_eq!(msg, format!("alert number {seq}"));
    seq
}

fn check_cef(r: &serde_json::Value) -> u32 {
    let raw = field(r, "raw");
    let cef = &raw[raw.find("CEF:0|").expect("CEF header")..];
    // split the 7 header fields on unescaped pipes
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut it = cef.chars();
    while parts.len() < 7 {
        match it.next().expect("7 header fields") {
            '\\' => cur.push(it.next().unwrap()),
            '|' => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    let ext: String = it.collect();
    assert_eq!(
        &parts[..4],
        ["CEF:0", "vigil", "vigil", env!("CARGO_PKG_VERSION")]
    );
    assert_eq!(parts[4], "shadow_read");
    assert_eq!(parts[6], "8");
    let ext = parse_cef_ext(&ext);
    let get = |k: &str| {
        ext.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {k} in {ext:?}"))
    };
    let seq: u32 = get("vigilSeq").parse().unwrap();
    assert_eq!(parts[5], format!("Rule \"{seq}\" [x] a|b \\ c=d"));
    assert_eq!(get("msg"), format!("alert number {seq}"));
    assert_eq!(get("cs2Label"), "commandLine");
    assert_eq!(get("cs2"), HOSTILE_CMD);
    assert_eq!(get("suser"), "root");
    assert_eq!(get("spid"), "4242");
    assert_eq!(get("sproc"), "/usr/bin/cat ünï");
    assert_eq!(get("dvchost"), "web-1");
    assert_eq!(
        get("rt"),
        (1_764_034_784_000 + u64::from(seq) / 1000).to_string()
    );
    seq
}

fn start(url: &str, spool: Option<&Path>) -> SinkHandle {
    SinkHandle::start(url::parse(url).unwrap(), spool).unwrap()
}

#[test]
fn rsyslog_receives_every_format_over_udp_and_tcp() {
    if !require_root("rsyslog_receives_every_format_over_udp_and_tcp", true) {
        return;
    }
    let dir = TempDir::new("formats");
    let rs = Rsyslog::start(
        dir.path(),
        &RsyslogSpec {
            udp: true,
            tcp_port: Some(0),
            tls: None,
            relp_port: None,
        },
    );
    let cases = [
        (
            format!("syslog+udp://127.0.0.1:{}?format=rfc5424", rs.udp_port),
            "5424",
        ),
        (
            format!("syslog+tcp://127.0.0.1:{}?format=rfc5424", rs.tcp_port),
            "5424",
        ),
        (
            format!(
                "syslog+tcp://localhost:{}?format=rfc5424&framing=newline",
                rs.tcp_port
            ),
            "5424",
        ),
        (
            format!("syslog+tcp://127.0.0.1:{}?format=rfc3164", rs.tcp_port),
            "3164",
        ),
        (
            format!("syslog+udp://127.0.0.1:{}?format=cef", rs.udp_port),
            "cef",
        ),
    ];
    const N: u32 = 40;
    let mut total = 0;
    for (i, (u, kind)) in cases.iter().enumerate() {
        let sink = start(u, None);
        for s in 0..N {
            send(&sink, i as u32 * 1000 + s);
        }
        let st = sink.shutdown(Duration::from_secs(10));
        assert_eq!(st.sent, u64::from(N), "{u}: {st:?}");
        total += N as usize;
        let recs = rs.wait_records(total);
        let mine = &recs[total - N as usize..];
        let mut seqs: Vec<u32> = mine
            .iter()
            .map(|r| match *kind {
                "5424" => check_syslog(r, true),
                "3164" => check_syslog(r, false),
                _ => check_cef(r),
            })
            .collect();
        if u.starts_with("syslog+udp") {
            seqs.sort_unstable(); // UDP may reorder in principle
        }
        let want: Vec<u32> = (0..N).map(|s| i as u32 * 1000 + s).collect();
        assert_eq!(seqs, want, "{u}");
        let want_input = if u.starts_with("syslog+udp") {
            "imudp"
        } else {
            "imptcp"
        };
        assert!(mine.iter().all(|r| field(r, "input") == want_input));
    }
}

#[test]
fn rsyslog_receives_over_mutual_tls_and_refuses_wrong_names() {
    if !require_root(
        "rsyslog_receives_over_mutual_tls_and_refuses_wrong_names",
        true,
    ) {
        return;
    }
    let dir = TempDir::new("tls");
    let certs = make_certs(dir.path());
    let rs = Rsyslog::start(
        dir.path(),
        &RsyslogSpec {
            udp: false,
            tcp_port: None,
            tls: Some((
                0,
                certs.ca.clone(),
                certs.server_cert.clone(),
                certs.server_key.clone(),
            )),
            relp_port: None,
        },
    );
    let good = format!(
        "syslog+tls://localhost:{}?ca={}&cert={}&key={}",
        rs.tls_port,
        certs.ca.display(),
        certs.client_cert.display(),
        certs.client_key.display()
    );
    let sink = start(&good, None);
    for s in 0..50 {
        send(&sink, s);
    }
    let st = sink.shutdown(Duration::from_secs(10));
    assert_eq!(st.sent, 50, "{st:?}");
    let recs = rs.wait_records(50);
    let seqs: Vec<u32> = recs.iter().map(|r| check_syslog(r, true)).collect();
    assert_eq!(seqs, (0..50).collect::<Vec<_>>());
    assert!(recs.iter().all(|r| field(r, "input") == "imtcp"));

    // The server certificate does not name `vigil-wrong`: nothing is
    // sent, the records wait in the spool.
    let spool = TempDir::new("tls-spool");
    let wrong = format!("{good}&server_name=vigil-wrong");
    let sink = start(&wrong, Some(spool.path()));
    for s in 100..110 {
        send(&sink, s);
    }
    let st = wait_for(Duration::from_secs(10), || {
        let st = sink.stats();
        (st.errors > 0 && st.spooled == 10).then_some(st)
    })
    .unwrap_or_else(|| panic!("{:?}", sink.stats()));
    assert_eq!(st.sent, 0);
    drop(sink);
    // Without the client certificate rsyslog (x509/certvalid) refuses us.
    let nocert = format!(
        "syslog+tls://localhost:{}?ca={}",
        rs.tls_port,
        certs.ca.display()
    );
    let sink = start(&nocert, None);
    send(&sink, 200);
    std::thread::sleep(Duration::from_millis(500));
    let st = sink.shutdown(Duration::from_millis(500));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rs.records().len(), 50, "nothing past the good 50: {st:?}");
}

/// Stop rsyslog, keep sending, start it again.
///
/// `midstream = false`: rsyslog is stopped after it has read everything
/// sent so far (the producer pauses for that moment); then every record
/// arrives exactly once and in order: the dead connection is noticed
/// before the next write, the rest goes to the spool and is re-sent in
/// order after the restart.
///
/// `midstream = true`: the producer never pauses, so records can be in
/// the receiver's socket buffer when rsyslog exits without reading them.
/// Plain syslog over TCP/TLS has no acknowledgements (RFC 6587), so those
/// few are lost and nobody can know which; the test asserts order, no
/// duplicates, and that the loss is bounded to that window, and prints it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp,
    Tls,
    Relp,
}

fn outage(name: &str, proto: Proto, midstream: bool) {
    let tls = proto == Proto::Tls;
    if !require_root(name, true) {
        return;
    }
    let dir = TempDir::new(name);
    let spool = TempDir::new(&format!("{name}-spool"));
    let certs = tls.then(|| make_certs(dir.path()));
    let spec = RsyslogSpec {
        udp: false,
        tcp_port: (proto == Proto::Tcp).then_some(0),
        tls: certs
            .as_ref()
            .map(|c| (0, c.ca.clone(), c.server_cert.clone(), c.server_key.clone())),
        relp_port: (proto == Proto::Relp).then_some(0),
    };
    let mut rs = Rsyslog::start(dir.path(), &spec);
    let u = match &certs {
        None if proto == Proto::Relp => format!("syslog+relp://127.0.0.1:{}", rs.relp_port),
        None => format!("syslog+tcp://127.0.0.1:{}", rs.tcp_port),
        Some(c) => format!(
            "syslog+tls://localhost:{}?ca={}&cert={}&key={}",
            rs.tls_port,
            c.ca.display(),
            c.client_cert.display(),
            c.client_key.display()
        ),
    };
    let mut cfg: SinkConfig = url::parse(&u).unwrap();
    cfg.backoff_min = Duration::from_millis(50);
    cfg.backoff_max = Duration::from_millis(400);
    let sink = std::sync::Arc::new(SinkHandle::start(cfg, Some(spool.path())).unwrap());
    const N: u32 = 3000;
    let paused = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let resume = std::sync::Arc::new(std::sync::Barrier::new(2));
    // The producer runs on its own thread, one record every 500 us.
    let producer = {
        let (sink, paused, resume) = (sink.clone(), paused.clone(), resume.clone());
        std::thread::spawn(move || {
            for s in 0..N {
                send(&sink, s);
                if s == 999 && !midstream {
                    paused.store(true, std::sync::atomic::Ordering::SeqCst);
                    resume.wait();
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        })
    };
    if midstream {
        rs.wait_records(500);
    } else {
        wait_for(Duration::from_secs(30), || {
            paused
                .load(std::sync::atomic::Ordering::SeqCst)
                .then_some(())
        })
        .unwrap();
        rs.wait_records(1000);
    }
    rs.stop();
    if !midstream {
        resume.wait();
    }
    std::thread::sleep(Duration::from_millis(400));
    let st = sink.stats();
    assert!(!st.connected, "{st:?}");
    assert!(st.spooled > 0, "{st:?}");
    rs.restart(&spec);
    producer.join().unwrap();
    let sink = std::sync::Arc::into_inner(sink).expect("producer done");
    // The spool drains once the sink has reconnected (shutdown itself
    // would not wait long for a link that is down).
    wait_for(Duration::from_secs(30), || {
        let st = sink.stats();
        (st.connected && st.queued == 0 && st.spool_records == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("not drained: {:?}", sink.stats()));
    // Everything queued is delivered before shutdown returns.
    let st = sink.shutdown(Duration::from_secs(20));
    assert_eq!(st.dropped(), 0, "{st:?}");
    assert_eq!(st.spool_records, 0, "{st:?}");
    assert!(st.resent > 0 && st.connects >= 2, "{st:?}");
    // sent counts what the kernel took, including what rsyslog then lost
    assert_eq!(st.sent, u64::from(N), "{st:?}");
    std::thread::sleep(Duration::from_millis(300));
    let lossy = midstream && proto != Proto::Relp;
    let want = if lossy { N as usize - 50 } else { N as usize };
    rs.wait_records(want);
    std::thread::sleep(Duration::from_millis(300));
    let mut seqs: Vec<u32> = rs.records().iter().map(|r| check_syslog(r, true)).collect();
    if proto == Proto::Relp {
        // At least once: a record rsyslog wrote but had not acknowledged
        // when it stopped comes again; report it, then check the rest.
        let before = seqs.len();
        let mut seen = std::collections::BTreeSet::new();
        seqs.retain(|s| seen.insert(*s));
        eprintln!(
            "{name}: {} duplicate(s) after the restart",
            before - seqs.len()
        );
        assert!(
            before - seqs.len() <= 50,
            "duplicates are bounded to one batch"
        );
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicates: {seqs:?}"
    );
    let missing: Vec<u32> = {
        let have: std::collections::BTreeSet<u32> = seqs.iter().copied().collect();
        (0..N).filter(|s| !have.contains(s)).collect()
    };
    if lossy {
        eprintln!(
            "{name}: {} of {N} records were in rsyslog's socket buffer when it stopped: {missing:?}",
            missing.len()
        );
        assert!(missing.len() <= 50, "lost {missing:?}");
        if let (Some(a), Some(b)) = (missing.first(), missing.last()) {
            assert!(
                b - a < 50,
                "losses form one window at the stop: {missing:?}"
            );
        }
    } else {
        assert!(missing.is_empty(), "missing {missing:?}");
        assert_eq!(seqs.len(), N as usize);
    }
}

#[test]
fn rsyslog_outage_tcp_every_record_once_in_order() {
    outage(
        "rsyslog_outage_tcp_every_record_once_in_order",
        Proto::Tcp,
        false,
    );
}

#[test]
fn rsyslog_outage_tls_every_record_once_in_order() {
    outage(
        "rsyslog_outage_tls_every_record_once_in_order",
        Proto::Tls,
        false,
    );
}

#[test]
fn rsyslog_outage_midstream_tcp_loses_only_the_unacknowledged_window() {
    outage(
        "rsyslog_outage_midstream_tcp_loses_only_the_unacknowledged_window",
        Proto::Tcp,
        true,
    );
}

/// With no receiver, a small spool fills: what it could not take is
/// counted exactly; the next start (a new sink on the same URL and spool
/// directory) sends the spool first, oldest first, once the receiver is up.
#[test]
fn rsyslog_spool_cap_counts_drops_exactly_and_resends_after_restart() {
    let name = "rsyslog_spool_cap_counts_drops_exactly_and_resends_after_restart";
    if !require_root(name, true) {
        return;
    }
    let dir = TempDir::new("cap");
    let spool = TempDir::new("cap-spool");
    let port = free_tcp_port();
    let u = format!("syslog+tcp://127.0.0.1:{port}?format=rfc5424");
    let mk = || {
        let mut cfg = url::parse(&u).unwrap();
        cfg.spool_bytes = 96 << 10;
        cfg.backoff_min = Duration::from_millis(50);
        cfg.backoff_max = Duration::from_millis(200);
        SinkHandle::start(cfg, Some(spool.path())).unwrap()
    };
    let sink = mk();
    const N: u32 = 2000;
    for s in 0..N {
        send(&sink, s);
    }
    let st = sink.shutdown(Duration::from_secs(2));
    assert_eq!(st.accepted, u64::from(N));
    assert_eq!(st.sent, 0);
    assert!(st.dropped_spool_full > 0, "{st:?}");
    assert_eq!(st.spooled + st.dropped_spool_full, u64::from(N), "{st:?}");
    assert_eq!(st.spool_records, st.spooled);
    assert!(st.spool_bytes <= 96 << 10);
    let kept = st.spooled as usize;

    // Next start: the receiver is up; the spool goes first.
    let rs = Rsyslog::start(
        dir.path(),
        &RsyslogSpec {
            udp: false,
            tcp_port: Some(port),
            tls: None,
            relp_port: None,
        },
    );
    let sink = mk();
    rs.wait_records(kept);
    // (While the spool is full and not yet drained, new records would be
    // dropped too: they must queue behind it to keep the order.)
    wait_for(Duration::from_secs(10), || {
        (sink.stats().spool_records == 0).then_some(())
    })
    .expect("spool drained");
    send(&sink, 99_999);
    let recs = rs.wait_records(kept + 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rs.records().len(), kept + 1, "no duplicates");
    let seqs: Vec<u32> = recs.iter().map(|r| check_syslog(r, true)).collect();
    let mut want: Vec<u32> = (0..kept as u32).collect();
    want.push(99_999);
    assert_eq!(
        seqs, want,
        "the oldest records were kept, in order, before new ones"
    );
    let st = sink.shutdown(Duration::from_secs(5));
    assert_eq!(st.resent as usize, kept);
    assert_eq!(st.spool_records, 0);
}

/// RELP acknowledges every record: stopping rsyslog mid-stream loses
/// nothing; every record arrives, in order (at least once).
#[test]
fn rsyslog_outage_midstream_relp_loses_nothing() {
    outage(
        "rsyslog_outage_midstream_relp_loses_nothing",
        Proto::Relp,
        true,
    );
}

#[test]
fn rsyslog_outage_relp_every_record_once_in_order() {
    outage(
        "rsyslog_outage_relp_every_record_once_in_order",
        Proto::Relp,
        false,
    );
}
