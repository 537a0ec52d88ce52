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
