//! Sigma correlation rules (`tests/correlation/*.yml`, written after the
//! examples of the Sigma correlation specification): one test per type,
//! the window, the group-by split, `generate`, the unsupported forms and
//! the state cap.

use std::path::Path;
use vigil_rules::{CorrState, Example, Field, Loader, Rule, RuleSet, Scratch, Severity, Value};

const MIN: u64 = 60 * 1_000_000_000;

fn load(file: &str) -> (RuleSet, vigil_rules::Report) {
    let mut l = Loader::new();
    l.add_path(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/correlation")
            .join(file),
    );
    l.load()
}

fn ev(pairs: &[(&str, &str)]) -> Example {
    let mut values = Vec::new();
    for (k, v) in pairs {
        let f = Field::by_name(k).unwrap_or_else(|| panic!("unknown field {k}"));
        let val = match f.ty() {
            vigil_rules::Type::Str => Value::Str(v.as_bytes().to_vec().into()),
            vigil_rules::Type::Int => Value::Int(v.parse().unwrap()),
            vigil_rules::Type::Bool => Value::Bool(*v == "true"),
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

fn exec(image: &str, cmd: &str, user: &str) -> Example {
    ev(&[
        ("event.action", "exec"),
        ("process.executable", image),
        ("process.command_line", cmd),
        ("user.name", user),
    ])
}

/// Runs one event: (alerting rule ids, fired correlation ids).
fn step(set: &RuleSet, st: &mut CorrState, e: &Example, t: u64) -> (Vec<String>, Vec<String>) {
    let mut scratch = Scratch::new();
    let mut m: Vec<&Rule> = Vec::new();
    set.evaluate(e, &mut scratch, &mut m);
    let alerts = m
        .iter()
        .filter(|r| !set.is_quiet(r))
        .map(|r| r.id.clone())
        .collect();
    let mut fired = Vec::new();
    set.correlate(st, &m, e, t, &mut fired);
    (alerts, fired.iter().map(|r| r.id.clone()).collect())
}

#[test]
fn event_count_fires_at_the_threshold_per_group_within_the_timespan() {
    let (set, r) = load("event_count.yml");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.correlations, 1);
    assert_eq!(set.correlations().len(), 1);
    let c = &set.correlations()[0];
    assert_eq!(c.rule.severity, Severity::High);
    assert_eq!(c.group_by, vec![Field::UserName]);
    assert_eq!(c.timespan_ns, 5 * MIN);
    let id = c.rule.id.clone();
    let mut st = CorrState::default();
    let su = |u: &str| exec("/usr/bin/su", "su -", u);
    // the base rule only feeds the correlation (generate: false)
    let (a, f) = step(&set, &mut st, &su("alice"), 0);
    assert!(a.is_empty() && f.is_empty(), "{a:?} {f:?}");
    // another user's attempts are another group
    assert!(step(&set, &mut st, &su("bob"), MIN).1.is_empty());
    assert!(step(&set, &mut st, &su("alice"), MIN).1.is_empty());
    assert_eq!(
        step(&set, &mut st, &su("alice"), 2 * MIN).1,
        vec![id.clone()]
    );
    // the window restarts after firing; old events fall out of it
    assert!(step(&set, &mut st, &su("bob"), 7 * MIN).1.is_empty());
    assert!(step(&set, &mut st, &su("bob"), 8 * MIN).1.is_empty());
    assert_eq!(step(&set, &mut st, &su("bob"), 9 * MIN).1, vec![id.clone()]);
    // an unrelated exec feeds nothing
    assert!(
        step(&set, &mut st, &exec("/bin/ls", "ls", "alice"), 9 * MIN)
            .1
            .is_empty()
    );
    // the message names the group
    let msg = set.correlations()[0].rule.message(&su("bob"));
    assert!(
        msg.contains("user.name=bob") && msg.contains(">= 3"),
        "{msg}"
    );
}

#[test]
fn value_count_counts_distinct_values() {
    let (set, r) = load("value_count.yml");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let c = &set.correlations()[0];
    assert_eq!(c.value_field, Some(Field::DestinationIp));
    let id = c.rule.id.clone();
    let conn = |ip: &str| {
        ev(&[
            ("event.action", "connect"),
            ("process.executable", "/usr/bin/ssh"),
            ("destination.ip", ip),
            ("destination.port", "22"),
            ("network.direction", "egress"),
        ])
    };
    let mut st = CorrState::default();
    let s = 1_000_000_000;
    assert!(step(&set, &mut st, &conn("10.0.0.1"), 0).1.is_empty());
    // the same host again adds no value
    assert!(step(&set, &mut st, &conn("10.0.0.1"), s).1.is_empty());
    assert!(step(&set, &mut st, &conn("10.0.0.2"), 2 * s).1.is_empty());
    assert_eq!(
        step(&set, &mut st, &conn("10.0.0.3"), 3 * s).1,
        vec![id.clone()]
    );
    // spread over more than the minute: no alert
    assert!(step(&set, &mut st, &conn("10.0.0.4"), 100 * s).1.is_empty());
    assert!(step(&set, &mut st, &conn("10.0.0.5"), 170 * s).1.is_empty());
    assert!(step(&set, &mut st, &conn("10.0.0.6"), 240 * s).1.is_empty());
}

#[test]
fn temporal_needs_every_rule_in_any_order() {
    let (set, r) = load("temporal.yml");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let id = set.correlations()[0].rule.id.clone();
    let mut st = CorrState::default();
    let run = |img: &str, u: &str| exec(img, img, u);
    assert!(
        step(&set, &mut st, &run("/usr/bin/uname", "eve"), 0)
            .1
            .is_empty()
    );
    assert!(
        step(&set, &mut st, &run("/usr/bin/whoami", "eve"), MIN)
            .1
            .is_empty()
    );
    // the same rule twice does not count twice
    assert!(
        step(&set, &mut st, &run("/usr/bin/whoami", "eve"), MIN)
            .1
            .is_empty()
    );
    // another user's id does not complete eve's group
    assert!(
        step(&set, &mut st, &run("/usr/bin/id", "root"), MIN)
            .1
            .is_empty()
    );
    assert_eq!(
        step(&set, &mut st, &run("/usr/bin/id", "eve"), 2 * MIN).1,
        vec![id]
    );
    // too far apart
    let mut st = CorrState::default();
    assert!(
        step(&set, &mut st, &run("/usr/bin/uname", "eve"), 0)
            .1
            .is_empty()
    );
    assert!(
        step(&set, &mut st, &run("/usr/bin/whoami", "eve"), 3 * MIN)
            .1
            .is_empty()
    );
    assert!(
        step(&set, &mut st, &run("/usr/bin/id", "eve"), 6 * MIN)
            .1
            .is_empty()
    );
}

#[test]
fn temporal_ordered_needs_the_order() {
    let (set, r) = load("temporal_ordered.yml");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let c = &set.correlations()[0];
    assert!(c.generate);
    let id = c.rule.id.clone();
    let dl = exec("/usr/bin/curl", "curl -o /tmp/x http://a/x", "www");
    let ch = exec("/usr/bin/chmod", "chmod +x /tmp/x", "www");
    let run = exec("/tmp/x", "/tmp/x", "www");
    // out of order: nothing
    let mut st = CorrState::default();
    step(&set, &mut st, &run, 0);
    step(&set, &mut st, &ch, MIN);
    assert!(step(&set, &mut st, &dl, 2 * MIN).1.is_empty());
    // download, then run without chmod: nothing yet
    assert!(step(&set, &mut st, &run, 3 * MIN).1.is_empty());
    // in order (the earlier download still counts): fires; with generate:
    // true the base rules alert too
    let (a, f) = step(&set, &mut st, &ch, 4 * MIN);
    assert!(f.is_empty());
    assert_eq!(a.len(), 1, "{a:?}");
    let (a, f) = step(&set, &mut st, &run, 5 * MIN);
    assert_eq!(f, vec![id]);
    assert_eq!(a.len(), 1);
    // in order but beyond the 10 minutes from its start: nothing
    let mut st = CorrState::default();
    step(&set, &mut st, &dl, 0);
    step(&set, &mut st, &ch, 6 * MIN);
    assert!(step(&set, &mut st, &run, 11 * MIN).1.is_empty());
}

#[test]
fn unsupported_forms_are_skipped_with_reasons() {
    let (set, r) = load("unsupported.yml");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(set.correlations().len(), 0);
    let mut got: Vec<(&str, &str)> = r
        .skipped
        .iter()
        .map(|s| (s.rule.as_str(), s.reason.as_str()))
        .collect();
    got.sort();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].0 == "Average of something" && got[0].1.contains("value_sum"));
    assert!(got[1].0 == "Too few shells" && got[1].1.contains("`lt`"));
    // the base rule, fed to no loaded correlation, alerts on its own
    assert!(!set.is_quiet(&set.rules()[0]));
}

#[test]
fn bad_correlations_are_errors_naming_file_line_and_field() {
    let cases = [
        (
            "title: X\ncorrelation:\n  type: event_count\n  rules: [nope]\n  group-by: [User]\n  timespan: 5m\n  condition: {gte: 2}\n",
            "no loaded rule has the name or id `nope`",
            4,
        ),
        (
            "title: X\ncorrelation:\n  type: counting\n",
            "`counting` is not a correlation type",
            3,
        ),
    ];
    for (text, want, line) in cases {
        let mut l = Loader::new();
        l.add_source("c.yml", text);
        let (_, r) = l.load();
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        let e = r.errors[0].to_string();
        assert!(e.contains(want), "{e}");
        assert_eq!(r.errors[0].line, line, "{e}");
    }
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/correlation/event_count.yml"),
    )
    .unwrap();
    let mut l = Loader::new();
    l.add_source(
        "c.yml",
        &base.replace("timespan: 5m", "timespan: 5 minutes"),
    );
    let (_, r) = l.load();
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(r.errors[0].to_string().starts_with("c.yml:"));
    assert!(r.errors[0].to_string().contains("correlation.timespan"));
}

#[test]
fn state_is_capped_and_evictions_counted() {
    let (set, _) = load("event_count.yml");
    let mut st = CorrState::new(100);
    for i in 0..1000 {
        let e = exec("/usr/bin/su", "su", &format!("user{i}"));
        step(&set, &mut st, &e, i);
    }
    assert!(st.entries() <= 100, "{}", st.entries());
    assert!(st.evictions() >= 900, "{}", st.evictions());
    // the newest groups are kept: two more for the last user fire
    let e = exec("/usr/bin/su", "su", "user999");
    step(&set, &mut st, &e, 1000);
    assert_eq!(step(&set, &mut st, &e, 1001).1.len(), 1);
}

#[test]
fn timespans_parse() {
    use vigil_rules::correlation::parse_timespan;
    assert_eq!(parse_timespan("30s"), Some(30_000_000_000));
    assert_eq!(parse_timespan("5m"), Some(5 * MIN));
    assert_eq!(parse_timespan("1h"), Some(60 * MIN));
    assert_eq!(parse_timespan("2d"), Some(2 * 24 * 60 * MIN));
    assert_eq!(parse_timespan("0m"), None);
    assert_eq!(parse_timespan("5"), None);
    assert_eq!(parse_timespan("m"), None);
    assert_eq!(parse_timespan("99999999999999y"), None);
}
