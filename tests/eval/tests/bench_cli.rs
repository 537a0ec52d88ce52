//! The benchmark binaries' command lines (no root needed): a bad or missing
//! value is a usage error with exit code 2, never a panic.

use std::process::Command;

fn usage_error(exe: &str, args: &[&str], names: &str) {
    let out = Command::new(exe).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(names), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
}

#[test]
fn vigil_bench_missing_or_bad_values_are_usage_errors() {
    let exe = env!("CARGO_BIN_EXE_vigil-bench");
    usage_error(exe, &["--rounds"], "a value is required for '--rounds <N>'");
    usage_error(
        exe,
        &["--scale", "x"],
        "invalid value 'x' for '--scale <F>'",
    );
    usage_error(
        exe,
        &["--only"],
        "a value is required for '--only <WORKLOAD>'",
    );
    usage_error(exe, &["--bogus"], "unexpected argument '--bogus'");
}

#[test]
fn vigil_rules_bench_missing_or_bad_values_are_usage_errors() {
    let exe = env!("CARGO_BIN_EXE_vigil-rules-bench");
    usage_error(exe, &["--events"], "a value is required for '--events <N>'");
    usage_error(
        exe,
        &["--rounds", "many"],
        "invalid value 'many' for '--rounds <N>'",
    );
    usage_error(exe, &["--sigma"], "a value is required for '--sigma <DIR>'");
}

/// `vigil-bench --encoder CAPTURE` (no root): a missing capture is exit 2
/// naming the file; a corpus capture prints the per-kind table with both
/// encoders' figures; a missing `--sigma` value is a usage error.
#[test]
fn vigil_bench_encoder_times_both_encoders() {
    let exe = env!("CARGO_BIN_EXE_vigil-bench");
    usage_error(exe, &["--sigma"], "a value is required for '--sigma <DIR>'");
    let out = Command::new(exe)
        .args(["--encoder", "/nonexistent/x.vcap", "--rounds", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent/x.vcap"), "{err}");
    let cap = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../corpus/capture/all-kinds.vcap"
    );
    let out = Command::new(exe)
        .args(["--encoder", cap, "--rounds", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("action") && text.contains("cached"), "{text}");
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.split_whitespace().count() == 5 && l.ends_with('x'))
        .collect();
    assert!(!rows.is_empty(), "no per-kind row: {text}");
    for r in rows {
        let v: Vec<f64> = r
            .split_whitespace()
            .skip(2)
            .take(2)
            .map(|x| x.parse().unwrap())
            .collect();
        assert!(v[0] > 0.0 && v[1] > 0.0, "{r}");
    }
}

/// `vigil-bench --workers CAPTURE` (no root): a missing capture is exit 2
/// naming the file; a corpus capture prints one row per worker count (1
/// and 2) with positive rates and the ratio against one worker.
#[test]
fn vigil_bench_workers_compares_worker_counts() {
    let exe = env!("CARGO_BIN_EXE_vigil-bench");
    let out = Command::new(exe)
        .args(["--workers", "/nonexistent/y.vcap", "--rounds", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent/y.vcap"), "{err}");
    let cap = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../corpus/capture/all-kinds.vcap"
    );
    let out = Command::new(exe)
        .args(["--workers", cap, "--rounds", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("wall ratio"), "{text}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() == 4 && w[3].ends_with('x'))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    for (r, workers) in rows.iter().zip(["1", "2"]) {
        assert_eq!(r[0], workers, "{text}");
        let wall: f64 = r[1].parse().unwrap();
        let cpu: f64 = r[2].parse().unwrap();
        assert!(wall > 0.0 && cpu > 0.0, "{text}");
    }
    assert_eq!(rows[0][3], "1.00x", "{text}");
}
