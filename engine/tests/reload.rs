//! Root test of the real binary: `vigil run` reloads its rules on SIGHUP,
//! and a bad file keeps the running set (with the error on stderr).

use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;

mod common;
use common::{require_root, spawn_with_stderr, wait_line};
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
    let (mut child, rx) = spawn_with_stderr(
        common::vigil()
            .arg("--config")
            .arg(&cfg)
            .args(["run", "--no-baselines", "--rules"])
            .arg(&rules)
            .arg("-o")
            .arg(&out),
    );
    let pid = child.id() as i32;
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

/// `vigil run --no-baselines --rules RULES -o OUT` with config `cfg_text`,
/// its stderr lines on a channel once its sensors are live.
fn start_vigil(
    dir: &std::path::Path,
    cfg_text: &str,
    rules: &std::path::Path,
    out: &std::path::Path,
) -> (std::process::Child, mpsc::Receiver<String>) {
    let cfg = dir.join("vigil.toml");
    std::fs::write(&cfg, cfg_text).unwrap();
    let (child, rx) = spawn_with_stderr(
        common::vigil()
            .arg("--config")
            .arg(&cfg)
            .args(["run", "--no-baselines", "--rules"])
            .arg(rules)
            .arg("-o")
            .arg(out),
    );
    (child, rx)
}

/// Stops the agent, removes `dir`, re-raises a test failure.
fn finish(mut child: std::process::Child, dir: &std::path::Path, result: std::thread::Result<()>) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(st.success(), "vigil exited with {st}");
}

#[test]
fn sighup_reloads_the_known_bad_hash_list() {
    if !require_root("sighup_reloads_the_known_bad_hash_list") {
        return;
    }
    let dir =
        std::env::temp_dir().join(format!("vigil-test-marker-kbreload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // a program of its own content: /bin/true with bytes appended
    let prog = dir.join("kbprog");
    let mut bytes = std::fs::read("/bin/true").unwrap();
    bytes.extend_from_slice(format!("vigil-kb-{}", std::process::id()).as_bytes());
    std::fs::write(&prog, &bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sum = Command::new("sha256sum").arg(&prog).output().unwrap();
    let sum = String::from_utf8(sum.stdout).unwrap();
    let list = dir.join("known-bad.sha256");
    std::fs::write(&list, "# nothing yet\n").unwrap();
    let rules = dir.join("local.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: kb_seen\n  severity: medium\n  condition: event.action = exec and process.executable = '{p}'\n\
             - rule: kb_bad\n  severity: medium\n  condition: event.action = exec and process.executable = '{p}' and vigil.hash.known_bad = true\n",
            p = prog.display()
        ),
    )
    .unwrap();
    let out = dir.join("alerts.json");
    let (child, rx) = start_vigil(
        &dir,
        &format!(
            "[agent]\nhousekeeping_interval_s = 1\n[sensors]\ndrain_interval_ms = 5\n[rules]\nbuiltin = false\n[hash]\nknown_bad_file = \"{}\"\n",
            list.display()
        ),
        &rules,
        &out,
    );
    let pid = child.id() as i32;
    let result = std::panic::catch_unwind(|| {
        wait_line(&rx, "sensors live", Duration::from_secs(30));
        assert!(Command::new(&prog).status().unwrap().success());
        assert!(wait_alert(&out, "kb_seen"), "the exec was not seen");
        let a = alerts(&out);
        let seen = a.iter().find(|a| a["rule"]["id"] == "kb_seen").unwrap();
        assert_eq!(
            seen["process"]["hash"]["sha256"].as_str(),
            sum.split_whitespace().next(),
            "{seen}"
        );
        assert!(
            !a.iter().any(|a| a["rule"]["id"] == "kb_bad"),
            "not on the list yet"
        );
        // sha256sum's own output line is a valid list entry
        std::fs::write(&list, &sum).unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGHUP) };
        wait_line(
            &rx,
            "known-bad hash list reloaded: 1 hashes",
            Duration::from_secs(10),
        );
        wait_line(&rx, "rules reloaded", Duration::from_secs(10));
        assert!(Command::new(&prog).status().unwrap().success());
        assert!(
            wait_alert(&out, "kb_bad"),
            "the reloaded list did not flag the hash"
        );
        let a = alerts(&out);
        let bad = a.iter().find(|a| a["rule"]["id"] == "kb_bad").unwrap();
        assert_eq!(bad["vigil"]["hash"]["known_bad"], true, "{bad}");
    });
    finish(child, &dir, result);
}

#[test]
fn sighup_recompiles_the_kernel_kill_maps() {
    if !require_root("sighup_recompiles_the_kernel_kill_maps") {
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    let dir = std::env::temp_dir().join(format!(
        "vigil-test-marker-killreload-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = std::fs::canonicalize(&dir).unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let sh = bin.join("sh");
    std::fs::copy("/bin/sh", &sh).unwrap();
    let marker = dir.join("marker");
    let rules = dir.join("local.yaml");
    let alert_rule = format!(
        "- rule: kr_exec\n  severity: medium\n  condition: event.action = exec and process.executable startswith '{}/'\n",
        bin.display()
    );
    std::fs::write(&rules, &alert_rule).unwrap();
    let out = dir.join("alerts.json");
    let (child, rx) = start_vigil(
        &dir,
        "[agent]\nhousekeeping_interval_s = 1\n[sensors]\ndrain_interval_ms = 5\n[rules]\nbuiltin = false\n",
        &rules,
        &out,
    );
    let pid = child.id() as i32;
    let result = std::panic::catch_unwind(|| {
        wait_line(&rx, "sensors live", Duration::from_secs(30));
        let script = format!("echo ran > {}", marker.display());
        let st = Command::new(&sh).args(["-c", &script]).status().unwrap();
        assert!(st.success(), "no kill rule yet: {st:?}");
        assert!(marker.exists());
        std::fs::remove_file(&marker).unwrap();
        assert!(wait_alert(&out, "kr_exec"));
        // the same condition with action: kill, added by a reload
        std::fs::write(
            &rules,
            format!(
                "- rule: kr_kill\n  severity: high\n  action: kill\n  condition: event.action = exec and process.executable startswith '{}/'\n",
                bin.display()
            ),
        )
        .unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGHUP) };
        wait_line(&rx, "rules reloaded", Duration::from_secs(10));
        let st = Command::new(&sh).args(["-c", &script]).status().unwrap();
        assert_eq!(
            st.signal(),
            Some(libc::SIGKILL),
            "killed after the reload: {st:?}"
        );
        assert!(!marker.exists(), "the program never ran");
        assert!(wait_alert(&out, "kr_kill"));
        let a = alerts(&out);
        let k = a.iter().find(|a| a["rule"]["id"] == "kr_kill").unwrap();
        assert_eq!(k["vigil"]["response"]["how"], "kernel", "{k}");
        assert_eq!(k["vigil"]["response"]["outcome"], "killed", "{k}");
        // and removing it again turns the kill off
        std::fs::write(&rules, &alert_rule).unwrap();
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGHUP) };
        wait_line(&rx, "rules reloaded", Duration::from_secs(10));
        let st = Command::new(&sh).args(["-c", &script]).status().unwrap();
        assert!(st.success(), "the kill map was emptied: {st:?}");
    });
    finish(child, &dir, result);
}

#[test]
fn sighup_reopens_file_outputs_after_a_rename_and_loses_nothing() {
    if !require_root("sighup_reopens_file_outputs_after_a_rename_and_loses_nothing") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("vigil-test-marker-reopen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ma = format!("vgreopen-a-{}", std::process::id());
    let mb = format!("vgreopen-b-{}", std::process::id());
    let rules = dir.join("local.yaml");
    std::fs::write(
        &rules,
        format!("{}{}", rule("reopen_a", &ma), rule("reopen_b", &mb)),
    )
    .unwrap();
    let out = dir.join("alerts.json");
    let rotated = dir.join("alerts.json.1");
    let (child, rx) = start_vigil(
        &dir,
        "[agent]\nhousekeeping_interval_s = 1\n[sensors]\ndrain_interval_ms = 5\n[rules]\nbuiltin = false\n[outputs]\nrate_limit_burst = 0\n",
        &rules,
        &out,
    );
    let pid = child.id() as i32;
    let count = |p: &PathBuf, id: &str| alerts(p).iter().filter(|a| a["rule"]["id"] == id).count();
    let wait_total = |id: &str, n: usize| {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if count(&out, id) + count(&rotated, id) >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{id}: {} + {} of {n} alerts",
            count(&out, id),
            count(&rotated, id)
        );
    };
    const N: usize = 20;
    let result = std::panic::catch_unwind(|| {
        wait_line(&rx, "sensors live", Duration::from_secs(30));
        for i in 0..N {
            Command::new("/bin/true")
                .arg(format!("{ma}-{i}"))
                .status()
                .unwrap();
        }
        wait_total("reopen_a", N);
        // logrotate's move: rename, then the postrotate SIGHUP
        std::fs::rename(&out, &rotated).unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGHUP) };
        wait_line(&rx, "outputs reopened", Duration::from_secs(10));
        for i in 0..N {
            Command::new("/bin/true")
                .arg(format!("{mb}-{i}"))
                .status()
                .unwrap();
        }
        wait_total("reopen_b", N);
        let md = std::fs::metadata(&out).expect("a new file at the path");
        assert_eq!(md.permissions().mode() & 0o7777, 0o600, "new file mode");
        // every record once, the later ones in the new file
        assert_eq!(
            count(&out, "reopen_b"),
            N,
            "all later records in the new file"
        );
        assert_eq!(count(&rotated, "reopen_b"), 0);
        assert_eq!(count(&out, "reopen_a") + count(&rotated, "reopen_a"), N);
        assert_eq!(
            count(&rotated, "reopen_a"),
            N,
            "the earlier ones stay in the renamed file"
        );
    });
    finish(child, &dir, result);
}
