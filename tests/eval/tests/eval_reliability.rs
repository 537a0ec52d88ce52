//! Root tests: the reliability steps of the evaluation in their quick modes
//! Each runs the real `vigil-eval`, which runs the real agent and
//! exits 1 on any failed check; these tests assert exit 0 and the lines
//! that carry the evidence.
//! - `flood --quick`: exec/open/connect/mixed storms; drops counted
//!   identically by the kernel map, Prometheus, the metric records and the
//!   summary; after_loss flags; full delivery and no drop afterwards.
//! - `outage --quick`: RELP receiver killed mid-stream and restarted, then
//!   the agent killed with alerts in its spool: nothing lost.
//! - `crash --quick`: kill -9 during learning, 10 times: the database
//!   opens and the promoted baseline is intact.
//! - `benign`: a developer workload raises no built-in alert.
//! - `sustain --quick`: a generator with a known count under `--events`
//!   with every event as JSON to a file: delivered == produced, 0 drops.

use std::process::Command;

use vigil_rootgate::require_root;

fn eval(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil-eval"))
        .args(args)
        .output()
        .expect("run vigil-eval");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "vigil-eval {args:?}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    println!("{stdout}");
    stdout
}

/// The map printed after `label` on its line (`{"open": 12, ...}`).
fn drops_line<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no line {label:?}"))
        .trim()
}

#[test]
fn eval_flood_quick_counts_every_drop_and_recovers() {
    if !require_root("eval_flood_quick_counts_every_drop_and_recovers") {
        return;
    }
    let out = eval(&["flood", "--quick", "--seconds", "6"]);
    for s in ["storm-exec", "storm-open", "storm-connect", "storm-mixed"] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(s)),
            "no row for {s}"
        );
    }
    let kernel = drops_line(&out, "kernel counters map (bpftool):");
    assert!(
        kernel.contains("\"open\""),
        "the open storm dropped nothing"
    );
    assert_eq!(kernel, drops_line(&out, "Prometheus:"));
    let exit = drops_line(&out, "kernel map at the exit:");
    assert_eq!(exit, drops_line(&out, "sensor-drops records (sum of new):"));
    assert_eq!(exit, drops_line(&out, "sensor-drops records (last total):"));
    assert_eq!(exit, drops_line(&out, "exit summary:"));
    assert!(out.contains("100 of 100 distinct opens and 20 of 20"));
    assert!(out.contains("drops during it 0"));
}

#[test]
fn eval_outage_quick_loses_nothing() {
    if !require_root("eval_outage_quick_loses_nothing") {
        return;
    }
    let out = eval(&["outage", "--quick"]);
    assert!(out.contains(" 0 missing,"), "alerts went missing");
    assert!(
        !out.contains("spool max 0 records"),
        "the spool was not used"
    );
    assert!(out.contains("spool after recovery 0"));
    assert!(out.contains("delivered by the restarted agent, 0 missing"));
}

#[test]
fn eval_crash_quick_keeps_the_promoted_baseline() {
    if !require_root("eval_crash_quick_keeps_the_promoted_baseline") {
        return;
    }
    let out = eval(&["crash", "--quick"]);
    assert!(out.contains("10 iterations of learn + kill -9"));
    assert!(out.contains("export identical after every kill: yes"));
    assert!(out.contains("failures: 0"));
}

/// `sustain --quick`: a paced generator of distinct failing opens below
/// /etc (10,000/s for 5 s) under `vigil run --events` with every event as
/// JSON to a file: delivered == produced, no drop, no after_loss record.
#[test]
fn eval_sustain_quick_delivers_every_event() {
    if !require_root("eval_sustain_quick_delivers_every_event") {
        return;
    }
    let out = eval(&["sustain", "--quick"]);
    let field = |label: &str| -> u64 {
        out.lines()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {label:?} line"))
    };
    let produced = field("produced");
    assert_eq!(produced, 50_000, "the generator's count");
    assert_eq!(field("delivered"), produced);
    assert!(out.contains("PASS: delivered == produced, 0 drops"));
}

/// `benign`: the developer workload as an unprivileged user raises no
/// built-in alert, and the attribution works: a local low-severity rule
/// written for the test (it loads whatever its severity) that matches the
/// workload's `uname` is counted, and it alone.
#[test]
fn eval_benign_workload_raises_only_the_test_rule() {
    if !require_root("eval_benign_workload_raises_only_the_test_rule") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vigil-eval-benign-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rule = dir.join("local.yaml");
    std::fs::write(
        &rule,
        "- rule: test_uname_run\n  name: uname run\n  description: the workload's uname\n  severity: low\n  for_events: [process]\n  condition: event.action = exec and process.name = uname\n",
    )
    .unwrap();
    let out = eval(&["benign", "--rules", rule.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.contains("uname run [test_uname_run]"),
        "the test rule's alert was not attributed to the workload"
    );
    assert!(
        out.contains("from 1 rules"),
        "rules other than the test's fired on the workload"
    );
}
