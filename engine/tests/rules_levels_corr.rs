//! `vigil rules check/list` with minimum levels (`[rules] min_level`,
//! `PATH@LEVEL`) and a Sigma correlation replayed through the engine: the
//! alert appears on the Nth event, the base rule raises none of its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use vigil_bpf::abi::{self, Hdr, kind};
use vigil_bpf::decode::encode_record;
use vigil_engine::capture::CaptureWriter;

mod common;
use common::vigil;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-lvl-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/tests/sigma/rules")
}

fn stdout(c: &mut Command) -> (Option<i32>, String, String) {
    let o = c.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn default_min_level_is_medium_and_check_says_what_it_left_out() {
    let (code, text, _) = stdout(vigil().args(["rules", "check"]).arg(corpus()));
    assert_eq!(code, Some(0), "{text}");
    // the corpus holds 42 loadable rules, 6 low and 1 informational
    assert!(
        text.contains("50 files: 35 rules loaded (0 vigil, 35 Sigma, 0 Sigma correlations), 0 disabled, 7 below min_level"),
        "{text}"
    );
    assert!(
        text.contains("7 rules below their minimum level not loaded (low 6, info 1)"),
        "{text}"
    );
    // -v names each one
    let (_, text, _) = stdout(vigil().args(["rules", "check", "-v"]).arg(corpus()));
    assert_eq!(text.matches("\nbelow level: ").count(), 7, "{text}");
    assert!(text.contains(": low < medium"), "{text}");
    // PATH@informational loads them all
    let mut arg = corpus().into_os_string();
    arg.push("@informational");
    let (_, text, _) = stdout(vigil().args(["rules", "check"]).arg(&arg));
    assert!(
        text.contains("42 rules loaded") && text.contains("0 below min_level"),
        "{text}"
    );
    // list prints the loaded rules and says on stderr what it left out
    let (code, out, err) = stdout(vigil().args(["rules", "list"]).arg(corpus()));
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 35, "{out}");
    assert!(!out.contains(" low ") && !out.contains(" info "), "{out}");
    assert!(err.contains("7 rules below their minimum level"), "{err}");
    // test runs the examples of every rule whatever its level
    let (code, out, _) = stdout(vigil().args(["rules", "test"]).arg(&arg));
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn config_min_level_applies_and_a_bad_one_exits_2_naming_the_key() {
    let cfg = tmp("high.toml");
    std::fs::write(&cfg, "[rules]\nmin_level = \"high\"\n").unwrap();
    let (code, text, _) = stdout(
        vigil()
            .arg("--config")
            .arg(&cfg)
            .args(["rules", "check"])
            .arg(corpus()),
    );
    assert_eq!(code, Some(0), "{text}");
    let n: usize = text
        .split(" rules loaded")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(n < 35, "{text}");
    // everything below high is left out, medium ones too
    assert!(
        text.contains(&format!("{} below min_level", 42 - n))
            && text.contains("not loaded (medium ")
            && text.contains("low 6, info 1)"),
        "{text}"
    );
    // the built-ins are never filtered by level
    let (_, all, _) = stdout(vigil().args(["rules", "list"]));
    let (_, high, _) = stdout(vigil().arg("--config").arg(&cfg).args(["rules", "list"]));
    assert_eq!(all.lines().count(), high.lines().count());
    let cap = tmp("cap0.toml");
    std::fs::write(&cap, "[rules]\ncorrelation_max_entries = 0\n").unwrap();
    let (code, _, err) = stdout(vigil().arg("--config").arg(&cap).args(["rules", "check"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("rules.correlation_max_entries: must be at least 1"),
        "{err}"
    );
    // the optional hunting rules are vigil rules of info/low severity: they
    // load at the default level, and a path level leaves them out
    let hunting = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/optional/hunting.yaml");
    let (_, text, _) = stdout(vigil().args(["rules", "check"]).arg(&hunting));
    assert!(
        !text.contains(": 0 rules loaded") && text.contains("0 below min_level"),
        "{text}"
    );
    let mut h = hunting.into_os_string();
    h.push("@medium");
    let (_, text, _) = stdout(vigil().args(["rules", "check"]).arg(&h));
    assert!(
        text.contains(": 0 rules loaded") && !text.contains("0 below min_level"),
        "{text}"
    );
    let bad = tmp("bad.toml");
    std::fs::write(&bad, "[agent]\n\n[rules]\nmin_level = \"urgent\"\n").unwrap();
    let (code, _, err) = stdout(vigil().arg("--config").arg(&bad).args(["rules", "check"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:4: rules.min_level:", bad.display())) && err.contains("urgent"),
        "{err}"
    );
}

const RULES: &str = "title: Helper run
id: 7d1a9c52-0000-4000-8000-00000000c001
name: helper_run
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        Image|endswith: '/vg-corr-helper'
    condition: selection
level: low
---
title: Helper run three times in a minute
id: 7d1a9c52-0000-4000-8000-00000000c002
correlation:
    type: event_count
    rules:
        - helper_run
    group-by:
        - Image
    timespan: 1m
    condition:
        gte: 3
level: high
";

fn capture(path: &Path, n: u32) {
    let ctx = common::test_context("h");
    let mut w = CaptureWriter::create(path, &ctx).unwrap();
    for i in 0..n {
        let pid = 900 + i;
        let ts = 6_000_000_000 + u64::from(i) * 1_000_000_000;
        let hdr = Hdr {
            kind: kind::EXEC,
            pid,
            tid: pid,
            ppid: 1,
            ts_ns: ts,
            start_ns: ts,
            comm: *b"vg-corr-helper\0\0",
            ..Hdr::default()
        };
        w.record(&encode_record(
            hdr,
            &abi::Exec::default(),
            &[
                b"/opt/vg/vg-corr-helper",
                b"/opt/vg/vg-corr-helper\0run",
                b"/",
                b"/opt/vg/vg-corr-helper",
            ],
        ))
        .unwrap();
    }
    w.flush().unwrap();
}

fn alerts(cap: &Path, rules: &Path) -> Vec<serde_json::Value> {
    let out_file = cap.with_extension("json");
    let _ = std::fs::remove_file(&out_file);
    let o = vigil()
        .arg("replay")
        .arg(cap)
        .arg("--rules")
        .arg(rules)
        .arg("-o")
        .arg(&out_file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out_file).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| {
            v["rule"]["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("7d1a9c52"))
        })
        .collect()
}

#[test]
fn replayed_correlation_alerts_on_the_third_event_only() {
    let rules = tmp("corr.yml");
    std::fs::write(&rules, RULES).unwrap();
    let (code, text, _) = stdout(vigil().args(["rules", "check"]).arg(&rules));
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("1 Sigma correlations") && text.contains("0 below min_level"),
        "{text}"
    );
    for n in [1, 2] {
        let cap = tmp(&format!("corr{n}.vcap"));
        capture(&cap, n);
        let a = alerts(&cap, &rules);
        assert!(a.is_empty(), "{n} events: {a:?}");
    }
    let cap = tmp("corr3.vcap");
    capture(&cap, 3);
    let a = alerts(&cap, &rules);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["rule"]["id"], "7d1a9c52-0000-4000-8000-00000000c002");
    assert_eq!(a[0]["vigil"]["severity"], "high");
    assert_eq!(a[0]["process"]["pid"], 902);
    let msg = a[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("event_count >= 3 within 1m")
            && msg.contains("process.executable=/opt/vg/vg-corr-helper"),
        "{msg}"
    );
}
