//! Root test of the real binary: `vigil run` reloads its rules on SIGHUP,
//! and a bad file keeps the running set (with the error on stderr).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;

mod common;
use common::{require_root, wait_line};
use std::time::{Duration, Instant};

fn rule(id: &str, marker: &str) -> String {
    format!(
        "- rule: {id}\n  severity: medium\n  tags: [attack.t1059]\n  condition: event.action = exec and process.command_line contains \"{marker}\"\n"
    )
}

fn alerts(path: &PathBuf) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn wait_alert(path: &PathBuf, id: &str) -> bool {
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        if alerts(path).iter().any(|a| a["rule"]["id"] == id) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn sighup_reloads_rules_and_a_bad_file_keeps_the_running_set() {
    if !require_root("sighup_reloads_rules_and_a_bad_file_keeps_the_running_set") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vigil-test-marker-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("local.yaml");
    let out = dir.join("alerts.json");
    let cfg = dir.join("vigil.toml");
    std::fs::write(
        &cfg,
        "[agent]\nhousekeeping_interval_s = 1\n[sensors]\ndrain_interval_ms = 5\n[rules]\nbuiltin = false\n",
    )
    .unwrap();
    let m1 = format!("vgreload-a-{}", std::process::id());
    let m2 = format!("vgreload-b-{}", std::process::id());
    std::fs::write(&rules, rule("reload_first", &m1)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--no-baselines", "--rules"])
        .arg(&rules)
        .arg("-o")
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let result = std::panic::catch_unwind(|| {
        wait_line(&rx, "sensors live", Duration::from_secs(30));
        Command::new("/bin/true").arg(&m1).status().unwrap();
        assert!(wait_alert(&out, "reload_first"), "first rule never fired");

        // A new file: after SIGHUP the new rule fires.
        std::fs::write(&rules, rule("reload_second", &m2)).unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGHUP) };
        wait_line(&rx, "rules reloaded", Duration::from_secs(10));
        Command::new("/bin/true").arg(&m2).status().unwrap();
        assert!(
            wait_alert(&out, "reload_second"),
            "reloaded rule never fired"
        );

        // A bad file: the error is reported and the running set stays.
        std::fs::write(&rules, "- rule: broken\n  condition: process.nmae = x\n").unwrap();
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGHUP) };
        let l = wait_line(&rx, "did you mean", Duration::from_secs(10));
        assert!(l.contains("local.yaml:2"), "{l}");
        wait_line(&rx, "keeping the 1 rules in use", Duration::from_secs(10));
        let before = alerts(&out)
            .iter()
            .filter(|a| a["rule"]["id"] == "reload_second")
            .count();
        Command::new("/bin/true").arg(&m2).status().unwrap();
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let n = alerts(&out)
                .iter()
                .filter(|a| a["rule"]["id"] == "reload_second")
                .count();
            if n > before {
                break;
            }
            assert!(
                Instant::now() < end,
                "the running set stopped matching after a bad reload"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let st = child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(st.success(), "vigil exited with {st}");
}
