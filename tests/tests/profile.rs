//! Root test of the CPU profiler: a C program built with frame pointers
//! spends its time in a named function (`vigil_busy_spin`, called from
//! `main`); a default-shaped agent at 99 Hz must show that function as the
//! process's hottest in its `vigil.profile` record and in the folded
//! stacks it keeps for `vigil report --flame`, and raise `cpu-hot` for the host's busiest process.

mod common;

use common::Shared;
use std::time::Duration;
use vigil_engine::agent::{RunOptions, Running};
use vigil_engine::config::Config;
use vigil_outputs::JsonLines;

const BUSY_C: &str = r#"
#include <stdlib.h>
#include <time.h>
volatile unsigned long sink;
__attribute__((noinline)) void vigil_busy_spin(unsigned long n) {
    for (unsigned long i = 0; i < n; i++) sink += i * i;
}
int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do {
        vigil_busy_spin(1000000);
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9 < secs);
    return 0;
}
"#;

fn build_busy(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("busy.c");
    let bin = dir.join("vigil-busy");
    std::fs::write(&src, BUSY_C).unwrap();
    let st = std::process::Command::new("cc")
        .args([
            "-O1",
            "-fno-omit-frame-pointer",
            "-mno-omit-leaf-frame-pointer",
            "-o",
        ])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("cc runs");
    assert!(st.success(), "busy.c compiles");
    bin
}

#[test]
fn the_profiler_finds_a_named_busy_function() {
    if !vigil_tests::require_root("the_profiler_finds_a_named_busy_function") {
        return;
    }
    let dir = std::env::temp_dir().join(vigil_tests::unique_marker("vigil-profile"));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = build_busy(&dir);
    let _lock = vigil_tests::bpf_lock();
    let mut cfg = Config::default();
    assert!(
        !cfg.perf.profile && cfg.perf.profile_hz == 49,
        "off by default, 49 Hz when on"
    );
    cfg.perf.profile = true;
    cfg.agent.events = false;
    cfg.agent.data_dir = dir.join("data");
    cfg.perf.interval_s = 1;
    cfg.perf.profile_hz = 99;
    cfg.perf.profile_cpu_pct = 30.0;
    let st = vigil_engine::probe::profile_status(&cfg);
    assert!(st.is_live(), "{st:?}");
    let out = Shared::default();
    let agent = Running::spawn(RunOptions {
        sink: Some(Box::new(JsonLines::writer(Box::new(out.clone()), "test"))),
        perf_history: true,
        ..RunOptions::new(cfg)
    })
    .expect("agent starts");
    vigil_tests::wait_for(Duration::from_secs(40), || {
        out.records()
            .iter()
            .any(|r| r["event"]["dataset"] == "vigil.profile")
            .then_some(())
    })
    .expect("a first vigil.profile record: the profiler attached");
    let mut child = std::process::Command::new(&bin)
        .arg("3")
        .spawn()
        .expect("busy runs");
    let pid = child.id() as i64;
    assert!(child.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(1500));
    let summary = agent.stop_and_detach().expect("agent stops");
    let records = out.records();
    let mine: Vec<_> = records
        .iter()
        .filter(|r| r["event"]["dataset"] == "vigil.profile" && r["process"]["pid"] == pid)
        .collect();
    let samples: u64 = mine
        .iter()
        .map(|r| r["vigil"]["profile"]["samples"].as_u64().unwrap_or(0))
        .sum();
    // 3 s at 99 Hz is ~300 samples when it has a CPU to itself; the
    // machine is shared (a run here got 76), so ask for a tenth of that
    assert!(
        samples >= 100,
        "samples of the busy pid: {samples}; {mine:?}"
    );
    assert!(
        mine.iter()
            .any(|r| r["vigil"]["profile"]["hottest"] == "vigil_busy_spin"),
        "hottest function named: {mine:?}"
    );
    let folded = std::fs::read_to_string(
        dir.join("data")
            .join(vigil_engine::perf::profile::FOLDED_FILE),
    )
    .expect("folded stacks kept");
    // The named function is in the folded stacks of its process, called
    // from `main`: the frame between it and libc is not lost.
    let mine: Vec<&str> = folded
        .lines()
        .filter(|l| l.contains("\tvigil-busy;") && l.contains(";vigil_busy_spin "))
        .collect();
    assert!(
        !mine.is_empty(),
        "vigil_busy_spin in the folded stacks:\n{folded}"
    );
    // a folded line ends in its sample count
    let count = |l: &&str| -> u64 {
        l.rsplit(' ')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let whole: u64 = mine
        .iter()
        .filter(|l| l.contains(";main;vigil_busy_spin "))
        .map(count)
        .sum();
    let all: u64 = mine.iter().map(count).sum();
    assert!(
        all > 0,
        "sample counts in the folded lines:\n{}",
        mine.join("\n")
    );
    assert!(
        whole * 10 >= all * 9,
        "{whole} of {all} samples in vigil_busy_spin have main as its caller:\n{}",
        mine.join("\n")
    );
    assert!(summary.pipeline.profile.samples >= samples);
    assert!(
        records
            .iter()
            .any(|r| r["vigil"]["finding"]["name"] == "cpu-hot"),
        "cpu-hot raised for the host's busiest process"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
