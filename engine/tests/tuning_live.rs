//! Learned tuning on a live agent, as root: a Sigma-style rule hit by a real
//! program while its profile learns alerts and is remembered; after `vigil
//! baseline promote` the same hit (same command line) is written as an
//! event, not an alert, while a hit with another command line still alerts;
//! `vigil rules tuning` counts the demotion.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{require_root, spawn_with_stderr, stop_cleanly, wait_line};

const RULE_ID: &str = "9a4f1e27-0000-4000-8000-0000000d0001";

struct Env {
    dir: PathBuf,
    cfg: PathBuf,
    rule: PathBuf,
    prog: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Env {
    fn vigil(&self) -> Command {
        common::vigil_with(&self.cfg)
    }

    fn ok(&self, args: &[&str]) -> String {
        common::vigil_ok(&self.cfg, args)
    }

    /// Runs the agent (baselines on, only the test rule) while `work` runs
    /// the program; returns every record it wrote.
    fn run(&self, tag: &str, work: impl FnOnce(&Path)) -> Vec<serde_json::Value> {
        let out = self.dir.join(format!("{tag}.json"));
        let (mut child, rx) = spawn_with_stderr(
            self.vigil()
                .args(["run", "--no-builtin-rules", "--rules"])
                .arg(&self.rule)
                .arg("-o")
                .arg(&out)
                .stdout(Stdio::null()),
        );
        wait_line(&rx, "vigil: ready", Duration::from_secs(60));
        work(&self.prog);
        // The agent flushes its profiles and tuning state when it stops.
        std::thread::sleep(Duration::from_secs(2));
        stop_cleanly(&mut child, Duration::from_secs(60));
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn exec(prog: &Path, args: &[&str]) {
    let st = Command::new(prog).args(args).status().unwrap();
    assert!(st.success(), "{}", prog.display());
}

/// Command lines of the program's alerts of the rule (`alert`), or of its
/// exec events (`event`: a demoted hit is written as the event it is).
fn command_lines(recs: &[serde_json::Value], prog: &Path, kind: &str) -> Vec<String> {
    recs.iter()
        .filter(|r| r["event"]["kind"] == kind && r["event"]["action"] == "exec")
        .filter(|r| r["process"]["executable"] == prog.to_str().unwrap())
        .filter(|r| kind != "alert" || r["rule"]["id"] == RULE_ID)
        .map(|r| {
            r["process"]["command_line"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn live_hits_learned_as_normal_are_demoted_after_promotion() {
    if !require_root("live_hits_learned_as_normal_are_demoted_after_promotion") {
        return;
    }
    let mark = format!("vgtune-{}", std::process::id());
    let dir = std::env::temp_dir().join(&mark);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::set_permissions(dir.join("data"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let env = Env {
        cfg: dir.join("vigil.toml"),
        rule: dir.join("rule.yml"),
        prog: dir.join(format!("{mark}-job")),
        dir,
    };
    std::fs::copy("/bin/true", &env.prog).unwrap();
    std::fs::write(
        &env.cfg,
        format!(
            "[agent]\ndata_dir = \"{}\"\nhousekeeping_interval_s = 1\n",
            env.dir.join("data").display()
        ),
    )
    .unwrap();
    std::fs::write(
        &env.rule,
        format!(
            "title: Nightly job run\nid: {RULE_ID}\nlogsource:\n    product: linux\n    category: process_creation\ndetection:\n    selection:\n        Image|endswith: '/{mark}-job'\n        CommandLine|contains: ' --sync'\n    condition: selection\nlevel: high\n"
        ),
    )
    .unwrap();
    let cmd = |extra: &str| format!("{} --sync {extra}", env.prog.display());

    // Learning: the hit alerts (nothing is known yet) and is remembered.
    let recs = env.run("learn", |p| exec(p, &["--sync", "nightly"]));
    assert_eq!(
        command_lines(&recs, &env.prog, "alert"),
        [cmd("nightly")],
        "{recs:#?}"
    );

    let list = env.ok(&["baseline", "list"]);
    let prefix = format!("exe:{}", env.prog.display());
    let profile = list
        .split_whitespace()
        .find(|w| w.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no profile {prefix}* in:\n{list}"))
        .to_string();
    env.ok(&["baseline", "promote", &profile]);

    // Promoted: the learned hit is an event; a new command line alerts.
    let recs = env.run("after", |p| {
        exec(p, &["--sync", "nightly"]);
        exec(p, &["--sync", "exfil"]);
    });
    assert_eq!(
        command_lines(&recs, &env.prog, "alert"),
        [cmd("exfil")],
        "{recs:#?}"
    );
    assert_eq!(
        command_lines(&recs, &env.prog, "event"),
        [cmd("nightly")],
        "{recs:#?}"
    );

    let report = env.ok(&["rules", "tuning"]);
    assert!(report.contains("1 hits demoted"), "{report}");
    assert!(
        report.lines().any(|l| l.starts_with(&RULE_ID[..8])),
        "{report}"
    );
}
