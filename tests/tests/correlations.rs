//! End to end as root: Sigma correlation rules of every type on a live
//! agent. Real programs (copies of `/bin/true` with names unique to the
//! run) are executed in the order each correlation needs; the correlation
//! alerts on the event that completes it, with that process, and not
//! before. The referred rules raise no alert of their own (`generate`
//! defaults to false).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::RulesAgent as Agent;

const ID_EVENT_COUNT: &str = "5b0e51c2-0000-4000-8000-0000000c0001";
const ID_VALUE_COUNT: &str = "5b0e51c2-0000-4000-8000-0000000c0002";
const ID_TEMPORAL: &str = "5b0e51c2-0000-4000-8000-0000000c0003";
const ID_ORDERED: &str = "5b0e51c2-0000-4000-8000-0000000c0004";

/// One base rule per step: an exec of the program named `<mark>-<step>`.
fn base_rule(mark: &str, step: &str) -> String {
    format!(
        "title: correlation step {step}\nname: corr_{step}\nlogsource:\n    product: linux\n    category: process_creation\ndetection:\n    selection:\n        Image|endswith: '/{mark}-{step}'\n    condition: selection\nlevel: low\n"
    )
}

fn correlation(id: &str, kind: &str, rules: &[&str], condition: &str) -> String {
    let rules: String = rules
        .iter()
        .map(|r| format!("        - corr_{r}\n"))
        .collect();
    format!(
        "title: live {kind}\nid: {id}\ncorrelation:\n    type: {kind}\n    rules:\n{rules}    group-by:\n        - User\n    timespan: 2m\n    condition:\n{condition}level: high\n"
    )
}

fn rules_text(mark: &str) -> String {
    let mut docs: Vec<String> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|s| base_rule(mark, s))
        .collect();
    docs.push(correlation(
        ID_EVENT_COUNT,
        "event_count",
        &["a"],
        "        gte: 3\n",
    ));
    docs.push(correlation(
        ID_VALUE_COUNT,
        "value_count",
        &["b"],
        "        gte: 3\n        field: CommandLine\n",
    ));
    docs.push(correlation(
        ID_TEMPORAL,
        "temporal",
        &["c", "d"],
        "        gte: 2\n",
    ));
    docs.push(correlation(
        ID_ORDERED,
        "temporal_ordered",
        &["e", "f"],
        "        gte: 2\n",
    ));
    docs.join("---\n")
}

/// Runs `prog args` to completion; its pid.
fn run(prog: &Path, args: &[&str]) -> u32 {
    let mut child = Command::new(prog)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", prog.display()));
    let pid = child.id();
    assert!(child.wait().unwrap().success(), "{}", prog.display());
    pid
}

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn alerts_of(agent: &Agent, id: &str) -> Vec<serde_json::Value> {
    agent
        .out
        .records()
        .into_iter()
        .filter(|r| r["rule"]["id"] == id)
        .collect()
}

/// No alert of `id` yet, after the agent had time to see what ran.
fn none_yet(agent: &Agent, id: &str, after: &str) {
    std::thread::sleep(Duration::from_millis(1500));
    let a = alerts_of(agent, id);
    assert!(a.is_empty(), "{id} alerted after {after}: {a:#?}");
}

#[test]
fn every_correlation_type_alerts_live_on_the_completing_event_only() {
    let mark = vigil_tests::unique_marker("vgcorr");
    let dir = Dir(std::env::temp_dir().join(format!("{mark}.d")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let rules = dir.0.join("corr.yml");
    std::fs::write(&rules, rules_text(&mark)).unwrap();
    let Some(agent) = Agent::start(
        "every_correlation_type_alerts_live_on_the_completing_event_only",
        Some(&rules),
    ) else {
        return;
    };
    let prog = |step: &str| {
        let p = dir.0.join(format!("{mark}-{step}"));
        if !p.exists() {
            std::fs::copy("/bin/true", &p).unwrap();
        }
        p
    };

    // event_count >= 3: the third exec completes it.
    run(&prog("a"), &[]);
    run(&prog("a"), &[]);
    none_yet(&agent, ID_EVENT_COUNT, "two of three execs");
    let third = run(&prog("a"), &[]);
    let a = agent.expect(ID_EVENT_COUNT, |_| true);
    assert_eq!(a["process"]["pid"], third, "{a:#}");
    let msg = a["message"].as_str().unwrap_or_default();
    assert!(msg.contains("event_count >= 3 within 2m"), "{msg}");

    // value_count >= 3 distinct command lines: a repeat adds nothing.
    run(&prog("b"), &["one"]);
    run(&prog("b"), &["one"]);
    run(&prog("b"), &["two"]);
    none_yet(&agent, ID_VALUE_COUNT, "two distinct command lines");
    let third = run(&prog("b"), &["three"]);
    let a = agent.expect(ID_VALUE_COUNT, |_| true);
    assert_eq!(a["process"]["pid"], third, "{a:#}");

    // temporal: both rules, in any order (d before c here).
    run(&prog("d"), &[]);
    none_yet(&agent, ID_TEMPORAL, "one of two rules");
    let c = run(&prog("c"), &[]);
    let a = agent.expect(ID_TEMPORAL, |_| true);
    assert_eq!(a["process"]["pid"], c, "{a:#}");

    // temporal_ordered: f before e is not the sequence; e then f is.
    run(&prog("f"), &[]);
    run(&prog("e"), &[]);
    none_yet(&agent, ID_ORDERED, "f then e");
    let f = run(&prog("f"), &[]);
    let a = agent.expect(ID_ORDERED, |_| true);
    assert_eq!(a["process"]["pid"], f, "{a:#}");

    // Each fired once, and the referred rules raised nothing themselves.
    for id in [ID_EVENT_COUNT, ID_VALUE_COUNT, ID_TEMPORAL, ID_ORDERED] {
        assert_eq!(alerts_of(&agent, id).len(), 1, "{id}");
    }
    let own: Vec<_> = agent
        .out
        .records()
        .into_iter()
        .filter(|r| {
            ["id", "name"].iter().any(|k| {
                r["rule"][*k]
                    .as_str()
                    .is_some_and(|t| t.starts_with("correlation step"))
            })
        })
        .collect();
    assert!(own.is_empty(), "referred rules alerted: {own:#?}");
}
