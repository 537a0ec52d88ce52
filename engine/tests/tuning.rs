//! Learned tuning through `vigil replay --learn`: a Sigma rule's hit seen
//! while the program's profile learned is demoted to an event after
//! promotion (the same values), a hit with other values still alerts, and
//! `vigil rules tuning` reports and exports it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use vigil_bpf::abi::{self, Hdr, kind};
use vigil_bpf::decode::encode_record;

mod common;
use vigil_engine::capture::CaptureWriter;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-tuning-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

const RULE: &str = "title: Git commit run
id: 3c2e8d10-0000-4000-8000-00000000d001
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        Image|endswith: '/git'
        CommandLine|contains: ' commit '
    condition: selection
level: high
";

fn capture(path: &Path, cmds: &[&str]) {
    let ctx = common::test_context("h");
    let mut w = CaptureWriter::create(path, &ctx).unwrap();
    for (i, c) in cmds.iter().enumerate() {
        let pid = 700 + i as u32;
        let ts = 6_000_000_000 + i as u64 * 1_000_000;
        let hdr = Hdr {
            kind: kind::EXEC,
            pid,
            tid: pid,
            ppid: 1,
            ts_ns: ts,
            start_ns: ts,
            comm: *b"git\0\0\0\0\0\0\0\0\0\0\0\0\0",
            ..Hdr::default()
        };
        let argv = c.replace(' ', "\0");
        w.record(&encode_record(
            hdr,
            &abi::Exec::default(),
            &[
                b"/usr/bin/git",
                argv.as_bytes(),
                b"/src/proj",
                b"/usr/bin/git",
            ],
        ))
        .unwrap();
    }
    w.flush().unwrap();
}

struct Env {
    cfg: PathBuf,
    rule: PathBuf,
}

impl Env {
    fn vigil(&self) -> Command {
        common::vigil_with(&self.cfg)
    }

    fn ok(&self, args: &[&str]) -> String {
        common::vigil_ok(&self.cfg, args)
    }

    /// Replays with learning stored; (alerts of the rule, events written).
    fn replay(&self, cap: &Path) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
        let out = cap.with_extension("json");
        let o = self
            .vigil()
            .arg("replay")
            .arg(cap)
            .arg("--learn")
            .arg("--no-builtin-rules")
            .arg("--rules")
            .arg(&self.rule)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let recs: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let alerts = recs
            .iter()
            .filter(|v| v["rule"]["id"] == "3c2e8d10-0000-4000-8000-00000000d001")
            .cloned()
            .collect();
        let events = recs
            .iter()
            .filter(|v| v["event"]["kind"] == "event")
            .cloned()
            .collect();
        (alerts, events)
    }
}

#[test]
fn hits_learned_as_normal_are_demoted_reported_and_exported() {
    let data = tmp("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let env = Env {
        cfg: tmp("v.toml"),
        rule: tmp("git.yml"),
    };
    std::fs::write(
        &env.cfg,
        format!("[agent]\ndata_dir = \"{}\"\n", data.display()),
    )
    .unwrap();
    std::fs::write(&env.rule, RULE).unwrap();
    // Learning: the hit alerts (nothing is known yet) and is remembered.
    let a = tmp("learn.vcap");
    capture(&a, &["git commit -m wip", "git status"]);
    let (alerts, _) = env.replay(&a);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let report = env.ok(&["rules", "tuning"]);
    assert!(report.contains("0 hits demoted"), "{report}");
    assert!(report.contains("exe:/usr/bin/git"), "{report}");
    let mode = std::fs::metadata(data.join("tuning.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Promote the program's profile.
    let list = env.ok(&["baseline", "list"]);
    let profile = list
        .split_whitespace()
        .find(|w| w.starts_with("exe:/usr/bin/git"))
        .unwrap_or_else(|| panic!("{list}"))
        .to_string();
    env.ok(&["baseline", "promote", &profile]);
    // The same hit is demoted (written as an event); another value alerts.
    let b = tmp("after.vcap");
    capture(&b, &["git commit -m wip", "git commit -m evil"]);
    let (alerts, events) = env.replay(&b);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["process"]["command_line"], "git commit -m evil");
    assert!(
        events
            .iter()
            .any(|e| e["process"]["command_line"] == "git commit -m wip"),
        "{events:?}"
    );
    let report = env.ok(&["rules", "tuning"]);
    assert!(report.contains("1 hits demoted"), "{report}");
    let row = report
        .lines()
        .find(|l| l.starts_with("3c2e8d10"))
        .unwrap_or_else(|| panic!("{report}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..4], &["1", "1", "1"], "{row}");
    let export = env.ok(&["rules", "tuning", "--export"]);
    assert!(
        export.contains("- rule: \"3c2e8d10-0000-4000-8000-00000000d001\""),
        "{export}"
    );
    assert!(
        export.contains("fields: [process.executable, process.command_line]"),
        "{export}"
    );
    assert!(
        export.contains("- [\"/usr/bin/git\", \"git commit -m wip\"]"),
        "{export}"
    );
    // The exported exceptions work in a vigil rule.
    let wrapped = format!(
        "- rule: git_commit\n  condition: event.action = exec and process.executable endswith /git and process.command_line contains \" commit \"\n  examples:\n    - no_match: {{event.action: exec, process.executable: /usr/bin/git, process.command_line: \"git commit -m wip\"}}\n    - match: {{event.action: exec, process.executable: /usr/bin/git, process.command_line: \"git commit -m evil\"}}\n{}",
        export
            .lines()
            .skip_while(|l| !l.starts_with("  exceptions:"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    let f = tmp("wrapped.yaml");
    std::fs::write(&f, wrapped).unwrap();
    let o = env
        .vigil()
        .args(["rules", "test"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // A damaged state file is an error naming it.
    std::fs::write(data.join("tuning.json"), "{ not json").unwrap();
    let o = env.vigil().args(["rules", "tuning"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("tuning.json:1:"));
}
