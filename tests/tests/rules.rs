//! End to end as root: the agent runs with the built-in rules (and a Sigma
//! rule from a folder), alerts only, with the kernel interest derived from
//! the rules; real behaviour is performed and the alert must appear with the
//! right process context.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use vigil_engine::agent::{RunOptions, Running};
use vigil_engine::config::Config;
use vigil_rules::Loader;

mod common;
use common::{RulesAgent as Agent, TempDir};

#[test]
fn shell_spawned_by_a_listening_server_raises_an_alert() {
    let Some(agent) = Agent::start("shell_spawned_by_a_listening_server_raises_an_alert", None)
    else {
        return;
    };
    // A server binary named like one: a copy of the trigger program at
    // <dir>/nginx that listens, accepts and runs /bin/sh.
    let dir = TempDir(PathBuf::from(format!(
        "/run/{}",
        vigil_tests::unique_marker("vigil-rules")
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let nginx = dir.0.join("nginx");
    std::fs::copy(common::trigger_bin(), &nginx).unwrap();
    std::fs::set_permissions(&nginx, std::fs::Permissions::from_mode(0o755)).unwrap();
    let child = Command::new(&nginx).arg("serve-shell").spawn().unwrap();
    let server_pid = child.id();
    let st = child.wait_with_output().unwrap();
    assert!(st.status.success());
    let a = agent.expect("shell_spawned_by_server", |a| {
        a["process"]["parent"]["pid"] == server_pid
    });
    assert_eq!(a["event"]["kind"], "alert");
    assert_eq!(a["rule"]["ruleset"], "vigil");
    assert_eq!(a["vigil"]["severity"], "high");
    assert_eq!(
        a["process"]["parent"]["executable"],
        nginx.to_str().unwrap()
    );
    // The executable is canonical (/bin/sh is a symlink to dash here).
    assert!(
        a["process"]["executable"]
            .as_str()
            .unwrap()
            .starts_with("/usr/bin/"),
        "{a}"
    );
    assert_eq!(a["process"]["command_line"], "/bin/sh -c true");
    assert!(
        a["threat"]["technique"]["id"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "T1059.004"),
        "{a}"
    );
    assert!(
        a["message"].as_str().unwrap().contains("spawned by server"),
        "{a}"
    );
}

#[test]
fn exec_from_dev_shm_and_memfd_raise_alerts() {
    let Some(agent) = Agent::start("exec_from_dev_shm_and_memfd_raise_alerts", None) else {
        return;
    };
    let path = PathBuf::from(format!("/dev/shm/{}", vigil_tests::unique_marker("vg-shm")));
    let _cleanup = TempFile(path.clone());
    std::fs::copy("/bin/true", &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let child = Command::new(&path).spawn().unwrap();
    let pid = child.id();
    child.wait_with_output().unwrap();
    let a = agent.expect("exec_from_temp_dir", |a| a["process"]["pid"] == pid);
    assert_eq!(a["process"]["executable"], path.to_str().unwrap());
    assert_eq!(a["event"]["action"], "exec");

    let (pid, _) = common::trigger(&["memfd-exec"]);
    let a = agent.expect("exec_fileless", |a| a["process"]["pid"] == pid);
    assert_eq!(a["vigil"]["exec"]["memfd"], true);
    assert_eq!(a["vigil"]["severity"], "critical");
}

struct TempFile(PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn shadow_read_raises_an_alert_and_sigma_rules_fire_live() {
    let dir = TempDir(std::env::temp_dir().join(vigil_tests::unique_marker("vigil-sigma")));
    std::fs::create_dir_all(dir.0.join("rules/linux/process_creation")).unwrap();
    let marker = vigil_tests::unique_marker("vgsigma");
    std::fs::write(
        dir.0.join("rules/linux/process_creation/proc_creation_lnx_test.yml"),
        format!(
            "title: Test rule for {marker}\nid: 5f0c6a8e-0000-4000-8000-00000000abcd\nstatus: test\nlogsource:\n    product: linux\n    category: process_creation\ndetection:\n    selection:\n        Image|endswith: '/true'\n        CommandLine|contains: '{marker}'\n    condition: selection\nlevel: high\ntags:\n    - attack.t1059\n"
        ),
    )
    .unwrap();
    let Some(agent) = Agent::start(
        "shadow_read_raises_an_alert_and_sigma_rules_fire_live",
        Some(&dir.0),
    ) else {
        return;
    };
    let (pid, _) = common::trigger(&["open", "/etc/shadow"]);
    let a = agent.expect("shadow_file_read", |a| a["process"]["pid"] == pid);
    assert_eq!(a["file"]["path"], "/etc/shadow");
    assert_eq!(a["event"]["outcome"], "success");
    assert_eq!(
        a["process"]["executable"],
        common::trigger_bin().to_str().unwrap()
    );
    assert_eq!(a["user"]["id"], 0);

    let child = Command::new("/bin/true").arg(&marker).spawn().unwrap();
    let pid = child.id();
    child.wait_with_output().unwrap();
    let a = agent.expect("5f0c6a8e-0000-4000-8000-00000000abcd", |a| {
        a["process"]["pid"] == pid
    });
    assert_eq!(a["rule"]["ruleset"], "sigma");
    assert_eq!(a["rule"]["name"], format!("Test rule for {marker}"));
    assert_eq!(a["vigil"]["severity"], "high");
    assert!(a["message"].as_str().unwrap().contains(&marker), "{a}");
}

#[test]
fn alerts_reach_outputs_and_metrics() {
    if !vigil_tests::require_root("alerts_reach_outputs_and_metrics") {
        return;
    }
    let _lock = vigil_tests::bpf_lock();
    let dir = TempDir(std::env::temp_dir().join(vigil_tests::unique_marker("vigil-outputs")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("alerts.json");
    let url = format!("file://{}", file.display());
    let outs = Arc::new(
        vigil_outputs::Outputs::open(&[url.as_str()], Some(&dir.0.join("spool"))).unwrap(),
    );
    let reg = Arc::new(vigil_outputs::metrics::Registry::new());
    outs.register_metrics(&reg);
    let mut l = Loader::new();
    l.add_builtin();
    let (set, _) = l.load();
    let mut cfg = Config::default();
    cfg.agent.events = false;
    cfg.agent.housekeeping_interval_s = 1;
    cfg.sensors.drain_interval_ms = 5;
    let running = Running::spawn(RunOptions {
        outputs: Some(outs.clone()),
        metrics: Some(reg.clone()),
        rules: Some(Arc::new(set)),
        ..RunOptions::new(cfg)
    })
    .unwrap();
    let (pid, _) = common::trigger(&["open", "/etc/shadow"]);
    let found = vigil_tests::wait_for(Duration::from_secs(15), || {
        let text = std::fs::read_to_string(&file).ok()?;
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|a| a["rule"]["id"] == "shadow_file_read" && a["process"]["pid"] == pid)
    });
    let exposition = reg.render();
    let _ = running.stop_and_detach();
    let a = found.expect("the alert reached the file output");
    assert_eq!(a["file"]["path"], "/etc/shadow");
    assert!(
        exposition.contains("vigil_alerts_total{rule=\"shadow_file_read\",severity=\"high\"}"),
        "{exposition}"
    );
    assert!(
        exposition.contains("vigil_output_records_sent_total"),
        "{exposition}"
    );
    // The file output is private.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    match Arc::try_unwrap(outs) {
        Ok(o) => {
            let st = o.shutdown(Duration::from_secs(2));
            assert_eq!(st.iter().map(|s| s.dropped()).sum::<u64>(), 0);
        }
        Err(_) => panic!("the agent kept a reference to the outputs after stopping"),
    }
}

/// Files removed on drop (the test's cron and profile files).
struct Remove(Vec<PathBuf>);

impl Drop for Remove {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[test]
fn rename_over_watched_files_raises_write_rules_on_the_final_path() {
    let marker = vigil_tests::unique_marker("vigil-test");
    let cron = PathBuf::from(format!("/etc/cron.d/{marker}"));
    let tmp = PathBuf::from(format!("/etc/{marker}.tmp"));
    let profile = PathBuf::from(format!("/etc/profile.d/{marker}.sh"));
    let _clean = Remove(vec![cron.clone(), tmp.clone(), profile.clone()]);
    let Some(agent) = Agent::start(
        "rename_over_watched_files_raises_write_rules_on_the_final_path",
        None,
    ) else {
        return;
    };
    // Written by this process (the agent's own events are not reported).
    std::fs::write(&cron, b"# a\n").unwrap();
    std::fs::write(&tmp, b"# profile\n").unwrap();

    // sed -i writes a temp file in /etc/cron.d and renames it over the file.
    let st = Command::new("sed")
        .args(["-i", "s/a/b/"])
        .arg(&cron)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(&cron).unwrap(), b"# b\n");
    let c = cron.to_str().unwrap();
    let a = agent.expect("cron_modified", |a| {
        a["file"]["path"] == c && a["event"]["action"] == "rename"
    });
    assert_eq!(a["vigil"]["file"]["written"], true, "{a}");
    assert_eq!(a["event"]["outcome"], "success");
    assert_eq!(a["process"]["name"], "sed");
    let src = a["vigil"]["file_change"]["source"].as_str().unwrap();
    assert!(src.starts_with("/etc/cron.d/") && src != c, "{a}");

    // useradd-like: a temp file beside the target, renamed into place.
    let st = Command::new("mv").arg(&tmp).arg(&profile).status().unwrap();
    assert!(st.success());
    let p = profile.to_str().unwrap();
    let a = agent.expect("shell_profile_modified", |a| {
        a["file"]["path"] == p && a["event"]["action"] == "rename"
    });
    assert_eq!(a["vigil"]["file"]["written"], true, "{a}");
    assert_eq!(
        a["vigil"]["file_change"]["source"],
        tmp.to_str().unwrap(),
        "{a}"
    );
    assert_eq!(a["process"]["name"], "mv");
}
