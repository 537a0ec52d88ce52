//! Network beyond TCP connect, as root: UDP sends, DNS
//! queries and answers through glibc's resolver against a resolver on
//! loopback, and `destination.domain` on the connection that follows.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use vigil_bpf::abi::kind;
use vigil_bpf::decode::Body;
use vigil_engine::enrich::Event;

mod common;
use common::{Harness, TempDir, trigger};

/// The name the test resolver answers, and the address it gives.
const NAME: &str = "svc.vigil-test.example";
const ANSWER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const RESOLVER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Answers every query on RESOLVER:53: A for NAME -> ANSWER, anything else
/// NOERROR with no answer (AAAA) or NXDOMAIN (other names).
fn resolver(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    let sock = UdpSocket::bind((RESOLVER, 53)).expect("bind 127.0.0.2:53 (is a resolver there?)");
    sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    std::thread::spawn(move || {
        let mut served = 0;
        let mut buf = [0u8; 1500];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let q = &buf[..n];
            if n < 12 {
                continue;
            }
            // question: from 12 to the end of the name + 4
            let mut i = 12;
            let mut labels = vec![];
            while i < n && q[i] != 0 {
                let l = q[i] as usize;
                labels.push(String::from_utf8_lossy(&q[i + 1..(i + 1 + l).min(n)]).to_lowercase());
                i += 1 + l;
            }
            let qend = (i + 5).min(n);
            let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
            let known = labels.join(".") == NAME;
            let with_a = known && qtype == 1;
            let mut r = Vec::with_capacity(64);
            r.extend_from_slice(&q[0..2]);
            r.extend_from_slice(&[0x81, if known { 0x80 } else { 0x83 }]);
            r.extend_from_slice(&[0, 1, 0, u8::from(with_a), 0, 0, 0, 0]);
            r.extend_from_slice(&q[12..qend]);
            if with_a {
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                r.extend_from_slice(&ANSWER.octets());
            }
            let _ = sock.send_to(&r, peer);
            served += 1;
        }
        served
    })
}

fn dns_name(e: &Event) -> Option<&str> {
    e.dns
        .as_ref()
        .and_then(|m| m.questions.first())
        .map(|q| q.name.as_str())
}

#[test]
fn dns_queries_answers_and_destination_domain() {
    let Some(mut h) = Harness::start("dns_queries_answers_and_destination_domain", |_| {}) else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let served = resolver(stop.clone());
    let listener = TcpListener::bind((ANSWER, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    // glibc's resolver, pointed at the test resolver in a private mount
    // namespace (the host's /etc/resolv.conf is left alone)
    let dir = TempDir(PathBuf::from(format!(
        "/run/{}",
        vigil_tests::unique_marker("vigil-dns")
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let conf = dir.0.join("resolv.conf");
    std::fs::write(
        &conf,
        format!("nameserver {RESOLVER}\noptions timeout:1 attempts:2\n"),
    )
    .unwrap();
    let script = format!(
        "mount --bind {} /etc/resolv.conf && getent ahostsv4 {NAME} >/dev/null && exec bash -c 'exec 3<>/dev/tcp/{NAME}/{port}'",
        conf.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "resolve and connect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = listener.accept();

    let q = h.expect("dns query for the name", |e| {
        e.k.hdr.kind == kind::DNS
            && dns_name(e) == Some(NAME)
            && e.dns.as_ref().is_some_and(|m| !m.response)
    });
    match &q.k.body {
        Body::Dns { info, .. } => {
            assert_eq!(info.rport, 53);
            assert_eq!(&info.raddr[..4], &RESOLVER.octets());
        }
        _ => unreachable!(),
    }
    let a = h.expect("dns answer with the address", |e| {
        e.k.hdr.kind == kind::DNS
            && dns_name(e) == Some(NAME)
            && e.dns
                .as_ref()
                .is_some_and(|m| m.response && m.resolved_ips().any(|i| i == ANSWER))
    });
    assert_eq!(vigil_engine::ecs::classify_event(&a).2, "dns-answer");
    let json = String::from_utf8(vigil_engine::ecs::encode(&a, "h", "event")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["dns"]["question"]["name"], NAME, "{json}");
    assert_eq!(v["dns"]["resolved_ip"][0], "127.0.0.3", "{json}");
    assert_eq!(v["dns"]["answers"][0]["data"], "127.0.0.3", "{json}");
    assert_eq!(
        json.matches("\"vigil\":").count(),
        1,
        "one vigil object: {json}"
    );

    let c = h.expect("the connection carries destination.domain", |e| {
        e.k.hdr.kind == kind::CONNECT
            && matches!(&e.k.body, Body::Sock { info, .. } if info.rport == port)
    });
    assert_eq!(c.domain.as_deref(), Some(NAME));
    let json = String::from_utf8(vigil_engine::ecs::encode(&c, "h", "event")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["destination"]["domain"], NAME, "{json}");
    stop.store(true, Ordering::Relaxed);
    assert!(served.join().unwrap() >= 2);
}

#[test]
fn udp_sends_are_reported_once_per_socket_and_peer() {
    let Some(mut h) = Harness::start("udp_sends_are_reported_once_per_socket_and_peer", |_| {})
    else {
        return;
    };
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    let (pid, _) = trigger(&["udp-send", "127.0.0.1", &port.to_string(), "5"]);
    let e = h.expect("udp send", |e| {
        e.k.hdr.kind == kind::UDP_SEND
            && e.k.hdr.pid == pid
            && matches!(&e.k.body, Body::Sock { info, .. } if info.rport == port)
    });
    match &e.k.body {
        Body::Sock { info, .. } => {
            assert_eq!(info.ret, 5, "bytes sent");
            assert_eq!(&info.raddr[..4], &[127, 0, 0, 1]);
            assert_eq!(i32::from(info.protocol), libc::IPPROTO_UDP);
            assert!(info.lport != 0);
        }
        _ => unreachable!(),
    }
    assert_eq!(vigil_engine::ecs::classify_event(&e).2, "udp-send");
    h.collect_for(std::time::Duration::from_millis(300));
    let n = h
        .seen
        .iter()
        .filter(|e| e.k.hdr.kind == kind::UDP_SEND && e.k.hdr.pid == pid)
        .count();
    assert_eq!(
        n, 1,
        "five datagrams to one peer: one record, four deduplicated"
    );
}

#[test]
fn io_uring_openat_is_reported_with_its_path_and_alerts() {
    use vigil_bpf::abi::uring;
    let Some(mut h) = Harness::start(
        "io_uring_openat_is_reported_with_its_path_and_alerts",
        |_| {},
    ) else {
        return;
    };
    let (pid, out) = trigger(&["uring-open", "/etc/shadow"]);
    assert!(
        out.trim().parse::<i32>().unwrap() >= 0,
        "the open worked: {out}"
    );
    let setup = h.expect("ring created", |e| {
        e.k.hdr.pid == pid
            && matches!(&e.k.body, Body::IoUring { info, .. } if info.what == uring::SETUP)
    });
    match &setup.k.body {
        Body::IoUring { info, .. } => assert!(info.arg >= 8, "sq entries {}", info.arg),
        _ => unreachable!(),
    }
    let e = h.expect("io_uring openat", |e| {
        e.k.hdr.pid == pid
            && matches!(&e.k.body, Body::IoUring { info, .. } if info.what == uring::OPEN)
    });
    assert_eq!(e.file_path.as_deref(), Some(&b"/etc/shadow"[..]));
    match &e.k.body {
        Body::IoUring { info, .. } => {
            assert_eq!(vigil_engine::ecs::uring_op_name(info.opcode), "openat");
            assert_eq!(info.user_data, 42);
        }
        _ => unreachable!(),
    }
    assert_eq!(vigil_engine::ecs::classify_event(&e).2, "io-uring-open");
    // and no open(2) of it by that process: the path arrived only this way
    assert!(!h.seen.iter().any(|x| x.k.hdr.pid == pid
        && x.k.hdr.kind == kind::OPEN
        && x.file_path.as_deref() == Some(&b"/etc/shadow"[..])));
    // the built-in rule sees it like an open
    let (rules, report) =
        vigil_engine::detect::load_rules(&vigil_engine::config::Config::default());
    assert!(report.errors.is_empty());
    let mut scratch = vigil_rules::Scratch::new();
    let mut hits = Vec::new();
    rules.evaluate(&e, &mut scratch, &mut hits);
    assert!(
        hits.iter().any(|r| r.id == "shadow_file_read"),
        "{:?}",
        hits.iter().map(|r| &r.id).collect::<Vec<_>>()
    );
}

#[test]
fn int80_open_from_a_64_bit_process_is_reported_as_an_open() {
    let Some(mut h) = Harness::start(
        "int80_open_from_a_64_bit_process_is_reported_as_an_open",
        |_| {},
    ) else {
        return;
    };
    let (pid, out) = trigger(&["int80-open", "/etc/shadow"]);
    assert!(
        out.trim().parse::<i32>().unwrap() >= 0,
        "the open worked: {out}"
    );
    let e = h.expect("compat open", |e| {
        e.k.hdr.pid == pid
            && e.k.hdr.kind == kind::OPEN
            && e.file_path.as_deref() == Some(&b"/etc/shadow"[..])
    });
    assert!(e.k.hdr.flags & vigil_bpf::abi::flags::COMPAT != 0);
    let json = String::from_utf8(vigil_engine::ecs::encode(&e, "h", "event")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["vigil"]["compat"], true, "{json}");
    assert_eq!(v["event"]["action"], "open", "{json}");
    // a failing one carries the name as passed
    let (pid2, out) = trigger(&["int80-open", "/nonexistent/vigil-compat"]);
    assert_eq!(out.trim(), format!("-{}", libc::ENOENT));
    let f = h.expect("failed compat open", |e| {
        e.k.hdr.pid == pid2
            && e.k.hdr.kind == kind::OPEN
            && e.file_path.as_deref() == Some(&b"/nonexistent/vigil-compat"[..])
    });
    match &f.k.body {
        Body::Open { info, .. } => assert_eq!(info.ret, -i64::from(libc::ENOENT)),
        _ => unreachable!(),
    }
    let (rules, _) = vigil_engine::detect::load_rules(&vigil_engine::config::Config::default());
    let mut scratch = vigil_rules::Scratch::new();
    let mut hits = Vec::new();
    rules.evaluate(&e, &mut scratch, &mut hits);
    assert!(hits.iter().any(|r| r.id == "shadow_file_read"));
}

#[test]
fn int80_kill_is_a_compat_syscall_record_rules_can_match() {
    let Some(mut h) = Harness::start(
        "int80_kill_is_a_compat_syscall_record_rules_can_match",
        |_| {},
    ) else {
        return;
    };
    let (pid, out) = trigger(&["int80-kill"]);
    assert_eq!(out.trim(), "0", "kill(self, 0) worked");
    let e = h.expect("compat kill", |e| {
        e.k.hdr.pid == pid && e.k.hdr.kind == kind::COMPAT
    });
    assert!(e.k.hdr.flags & vigil_bpf::abi::flags::COMPAT != 0);
    let json = String::from_utf8(vigil_engine::ecs::encode(&e, "h", "event")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["event"]["action"], "compat-syscall", "{json}");
    assert_eq!(v["vigil"]["compat"], true, "{json}");
    assert_eq!(v["vigil"]["sensor"], "compat", "{json}");
    assert_eq!(v["vigil"]["syscall"]["name"], "kill", "{json}");
    assert_eq!(v["vigil"]["syscall"]["nr"], 37, "{json}");
    assert_eq!(v["vigil"]["syscall"]["args"][0], u64::from(pid), "{json}");
    assert_eq!(v["vigil"]["syscall"]["args"][1], 0, "{json}");
    let mut l = vigil_rules::Loader::new();
    l.add_source(
        "t.yaml",
        "- rule: compat_kill\n  condition: event.action = compat-syscall and vigil.compat = true \
         and vigil.syscall.name = kill and vigil.syscall.nr = 37 and vigil.sensor = compat\n",
    );
    let (rules, report) = l.load();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let mut scratch = vigil_rules::Scratch::new();
    let mut hits = Vec::new();
    rules.evaluate(&e, &mut scratch, &mut hits);
    assert!(hits.iter().any(|r| r.id == "compat_kill"), "{json}");
}
