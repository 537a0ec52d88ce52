//! Root tests: the evaluation's quick modes run in CI. `vigil-eval compare
//! --quick` runs every workload under nothing, auditd (both rule sets),
//! vigil (alerts; every event) and bpftrace, checks that vigil delivered
//! the workloads' events and that the kernel's audit state was restored;
//! `vigil-eval soak --quick` checks the agent's memory does not grow.

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

#[test]
fn eval_compare_quick_runs_every_tool_and_restores_audit() {
    if !require_root("eval_compare_quick_runs_every_tool_and_restores_audit") {
        return;
    }
    let out = eval(&["compare", "--quick"]);
    for w in ["exec (", "openat (", "connect (", "build ("] {
        assert!(out.contains(w), "no table for workload {w}");
    }
    for t in [
        "bare",
        "auditd watch",
        "auditd syscall",
        "vigil events",
        "bpftrace print",
        "bpftrace count",
    ] {
        assert_eq!(
            // Table rows: the tool's name, then its figures (the
            // start-up lines read "TOOL: start to ...").
            out.lines()
                .filter(|l| {
                    l.trim_start().strip_prefix(t).is_some_and(|r| {
                        r.starts_with(' ')
                            && r.trim_start().starts_with(|c: char| c.is_ascii_digit())
                    })
                })
                .count(),
            4,
            "tool {t} not in every table"
        );
    }
    assert!(out.contains("audit state after the run: restored"));
    let rules = Command::new("auditctl")
        .arg("-l")
        .output()
        .expect("auditctl -l");
    assert_eq!(
        String::from_utf8_lossy(&rules.stdout).trim(),
        "-a never,task"
    );
}

#[test]
fn eval_soak_quick_memory_does_not_grow() {
    if !require_root("eval_soak_quick_memory_does_not_grow") {
        return;
    }
    let out = eval(&["soak", "--quick", "--minutes", "0.5", "--every", "3"]);
    assert!(out.contains("anonymous memory max"), "no memory summary");
    assert!(
        out.lines()
            .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
            .count()
            >= 8,
        "fewer than 8 samples"
    );
}
