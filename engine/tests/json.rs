//! `--json` on the commands operators script against, `baseline list
//! --mode/--name`, and their exit codes (the real binary, no root needed).

use std::path::PathBuf;
use std::process::Output;

mod common;
use common::vigil;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-json-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

fn json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().count(),
        1,
        "one JSON document on one line: {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn rules_list_json_is_every_rule_of_the_table() {
    let table = vigil().args(["rules", "list"]).output().unwrap();
    assert_eq!(table.status.code(), Some(0));
    let rows = String::from_utf8_lossy(&table.stdout).lines().count();
    let out = vigil().args(["rules", "list", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), rows);
    assert!(a.len() > 50);
    for r in a {
        for k in [
            "id",
            "name",
            "severity",
            "ruleset",
            "categories",
            "file",
            "line",
        ] {
            assert!(!r[k].is_null(), "{k} missing in {r}");
        }
    }
    // The first table row names the first JSON rule.
    let first = String::from_utf8_lossy(&table.stdout)
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(a[0]["id"], first.as_str());
}

#[test]
fn rules_check_json_counts_skips_and_errors_with_exit_codes() {
    let d = tmp("rules");
    let good = d.join("good.yaml");
    std::fs::write(
        &good,
        "- rule: json_good\n  severity: high\n  condition: event.action = exec and process.name = \"x\"\n",
    )
    .unwrap();
    let sigma = d.join("sigma.yml");
    std::fs::write(
        &sigma,
        "title: windows only\nid: 11111111-2222-3333-4444-555555555555\nlogsource:\n  product: windows\n  category: process_creation\ndetection:\n  sel:\n    Image: x\n  condition: sel\n",
    )
    .unwrap();
    let out = vigil()
        .args(["rules", "check", "--json"])
        .arg(&good)
        .arg(&sigma)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["loaded"], 1);
    assert_eq!(v["vigil"], 1);
    assert_eq!(v["files"], 2);
    assert_eq!(v["skipped"].as_array().unwrap().len(), 1, "{v}");
    assert!(
        v["skipped"][0]["file"]
            .as_str()
            .unwrap()
            .ends_with("sigma.yml")
    );
    assert!(v["errors"].as_array().unwrap().is_empty());

    let bad = d.join("bad.yaml");
    std::fs::write(&bad, "- rule: broken\n  condition: process.nmae = x\n").unwrap();
    let out = vigil()
        .args(["rules", "check", "--json"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v["ok"], false);
    let e = &v["errors"][0];
    assert!(e["file"].as_str().unwrap().ends_with("bad.yaml"), "{v}");
    assert_eq!(e["line"], 2);
    assert!(e["message"].as_str().unwrap().contains("nmae"), "{v}");
    // rules list refuses a bad file (exit 2) with the error on stderr.
    let out = vigil()
        .args(["rules", "list", "--json"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn baseline_list_show_diff_json_and_filters() {
    use vigil_baselines::{Baselines, Behaviour, ExeIdentity, Observation, Subject};
    let data = tmp("baselines");
    let cfg = data.join("vigil.toml");
    std::fs::write(
        &cfg,
        format!("[agent]\ndata_dir = \"{}\"\n", data.display()),
    )
    .unwrap();
    let run = |args: &[&str]| {
        vigil()
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap()
    };
    {
        let mut b =
            Baselines::open(&data.join("baselines"), vigil_baselines::Config::default()).unwrap();
        for (exe, child, name) in [
            (
                &b"/usr/bin/redis-check-rdb"[..],
                &b"/usr/bin/true"[..],
                &b"redis-server"[..],
            ),
            (b"/usr/sbin/nginx", b"/usr/bin/id", b"nginx"),
        ] {
            let subject = || Subject {
                executable: exe,
                identity: ExeIdentity::Unknown,
                container: None,
            };
            b.observe(&Observation {
                unix_ns: 1,
                subject: subject(),
                behaviour: Behaviour::Spawn { child },
            });
            let r = b.resolve(&subject(), 1).expect("profile");
            b.note_name(r, name);
        }
        b.flush().unwrap();
    }
    let out = run(&["baseline", "promote", "exe:/usr/sbin/nginx"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let out = run(&["baseline", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let all = json(&out);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    let redis = all
        .iter()
        .find(|p| p["profile"] == "exe:/usr/bin/redis-check-rdb")
        .expect("redis profile");
    assert_eq!(redis["mode"], "learning");
    assert_eq!(redis["names"][0], "redis-server");
    assert_eq!(redis["counts"][0], 1);
    assert!(redis["ready"].is_string());

    // --name: the name an operator knows, or part of the key.
    let out = run(&["baseline", "list", "--json", "--name", "redis-server"]);
    let v = json(&out);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["profile"], "exe:/usr/bin/redis-check-rdb");
    let out = run(&["baseline", "list", "--json", "--name", "nginx"]);
    assert_eq!(json(&out)[0]["profile"], "exe:/usr/sbin/nginx");
    let out = run(&["baseline", "list", "--json", "--name", "postgres"]);
    assert_eq!(json(&out), serde_json::json!([]));
    // --mode
    let out = run(&["baseline", "list", "--json", "--mode", "monitoring"]);
    let v = json(&out);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["profile"], "exe:/usr/sbin/nginx");
    let out = run(&["baseline", "list", "--mode", "learning", "--name", "nginx"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "only the header: {text}");
    // The table filters the same way.
    let out = run(&["baseline", "list", "--name", "redis-server"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("exe:/usr/bin/redis-check-rdb"), "{text}");
    let out = run(&["baseline", "list", "--mode", "bogus"]);
    assert_eq!(out.status.code(), Some(2));

    // show --json: the same profile as the YAML.
    let out = run(&["baseline", "show", "exe:/usr/bin/redis-check-rdb", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out);
    assert_eq!(v["profile"], "exe:/usr/bin/redis-check-rdb");
    assert!(v.to_string().contains("/usr/bin/true"), "{v}");
    let yaml = run(&["baseline", "show", "exe:/usr/bin/redis-check-rdb"]);
    assert!(String::from_utf8_lossy(&yaml.stdout).contains("/usr/bin/true"));
    // diff --json: one line; the default is the same document, pretty.
    let out = run(&["baseline", "diff", "exe:/usr/sbin/nginx", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out);
    let pretty = run(&["baseline", "diff", "exe:/usr/sbin/nginx"]);
    let p: serde_json::Value = serde_json::from_slice(&pretty.stdout).unwrap();
    assert_eq!(v, p);
    assert_eq!(v["profile"], "exe:/usr/sbin/nginx");
    // An unknown profile: exit 2, nothing on stdout.
    for cmd in ["show", "diff"] {
        let out = run(&["baseline", cmd, "exe:/nope", "--json"]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(out.stdout.is_empty());
    }
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn report_json_has_the_histograms_of_the_text_report() {
    use vigil_engine::perf::{CgroupHist, History, HistoryLine};
    let dir = tmp("report");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut h = History::new(&dir, 1 << 20);
    for i in 0..6u64 {
        let mut slots = vec![0u64; 13];
        slots[12] = 10 + i;
        slots[3] = 1;
        h.append(&HistoryLine {
            t: now - 60 + i as i64 * 10,
            secs: 10.0,
            cgroups: vec![CgroupHist {
                id: 7,
                path: Some("/machine/json".into()),
                container: None,
                wakeup: slots,
                preempted: vec![0, 2],
                sum_ns: 100,
            }],
            pidnss: None,
            steal_max_pct: None,
        })
        .unwrap();
    }
    let out = vigil()
        .args(["report", "--json", "--since", "10m", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out);
    assert_eq!(v["since_s"], 600);
    assert_eq!(v["intervals"], 6);
    let c = &v["cgroups"][0];
    assert_eq!(c["id"], 7);
    assert!(
        c["label"].as_str().unwrap().contains("/machine/json"),
        "{c}"
    );
    // 10+11+..+15 in slot 12, one in slot 3 per line, two preemptions per line
    assert_eq!(c["wakeup"][12], 75);
    assert_eq!(c["wakeup"][3], 6);
    assert_eq!(c["preempted"][1], 12);
    assert_eq!(c["waits"], 75 + 6 + 12);
    assert_eq!(c["sum_ns"], 600);
    assert_eq!(v["slot_bounds_us"][12], serde_json::json!([2048, 4096]));
    let bad = vigil()
        .args(["report", "--json", "--since", "ten", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(bad.stdout.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn generate_writes_man_pages_completions_and_the_default_config() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp("generate");
    let out = vigil().arg("generate").arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let listed = String::from_utf8_lossy(&out.stdout);
    for f in [
        "man/man1/vigil.1",
        "man/man1/vigil-baseline-list.1",
        "man/man1/vigil-rules-check.1",
        "man/man5/vigil.toml.5",
        "completions/vigil.bash",
        "completions/_vigil",
        "completions/vigil.fish",
        "vigil.toml",
    ] {
        let p = dir.join(f);
        assert!(listed.contains(p.to_str().unwrap()), "{f} not listed");
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o644, "{f}");
        assert!(m.len() > 100, "{f}");
    }
    let bash = std::fs::read_to_string(dir.join("completions/vigil.bash")).unwrap();
    assert!(bash.contains("--json") && bash.contains("baseline"), "bash");
    let fish = std::fs::read_to_string(dir.join("completions/vigil.fish")).unwrap();
    assert!(fish.contains("complete -c vigil"), "fish");
    let cfg = std::fs::read_to_string(dir.join("vigil.toml")).unwrap();
    assert_eq!(
        cfg,
        vigil_engine::cli::generate::default_config(vigil_engine::cli::generate::CONFIG_MD)
    );
    // The generated file is accepted as a configuration.
    let out = vigil()
        .arg("--config")
        .arg(dir.join("vigil.toml"))
        .args(["rules", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Hidden from help, so from the man pages and completions too.
    let help = vigil().arg("--help").output().unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("generate"));
    let out = vigil()
        .arg("generate")
        .arg("/proc/nope/x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_check_and_show_with_sources_and_exit_codes() {
    let d = tmp("config");
    let good = d.join("good.toml");
    std::fs::write(
        &good,
        "# a host's configuration\n[agent]\nheartbeat_interval_s = 7\n\n[perf]\nprofile = true\n",
    )
    .unwrap();
    let out = vigil()
        .args(["config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(": ok (2 keys set"), "{text}");
    // `--config FILE config check` checks that file.
    let out = vigil()
        .arg("--config")
        .arg(&good)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // A bad output URL, a bad key, a rule file with an error: exit 2 naming
    // file, line and key.
    let bad_url = d.join("bad-url.toml");
    std::fs::write(
        &bad_url,
        "[outputs]\nmetrics_listen = \"127.0.0.1:9464\"\nurls = [\"syslog+tcp://siem:99999\"]\n",
    )
    .unwrap();
    let out = vigil()
        .args(["config", "check"])
        .arg(&bad_url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad-url.toml:3: outputs.urls: output `syslog+tcp://siem:99999`: port"),
        "{err}"
    );
    let bad_key = d.join("bad-key.toml");
    std::fs::write(&bad_key, "[perf]\nprofile_hz = \"fast\"\n").unwrap();
    let out = vigil()
        .args(["config", "check"])
        .arg(&bad_key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad-key.toml:2: perf.profile_hz"), "{err}");
    let rule = d.join("bad-rule.yaml");
    std::fs::write(&rule, "- rule: broken\n  condition: event.action =\n").unwrap();
    let with_rule = d.join("with-rule.toml");
    std::fs::write(
        &with_rule,
        format!("[rules]\npaths = [\"{}\"]\n", rule.display()),
    )
    .unwrap();
    let out = vigil()
        .args(["config", "check"])
        .arg(&with_rule)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad-rule.yaml"), "{err}");
    let out = vigil()
        .args(["config", "check", "/nonexistent/vigil.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = vigil().args(["config", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no file named");

    // show: every key, its value and its source; the TOML view is itself a
    // configuration that checks.
    let out = vigil()
        .arg("--config")
        .arg(&good)
        .args(["config", "show", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    let src = format!("{}:3", good.display());
    assert_eq!(v["agent.heartbeat_interval_s"]["value"], 7);
    assert_eq!(v["agent.heartbeat_interval_s"]["source"], src.as_str());
    assert_eq!(v["perf.profile"]["value"], true);
    assert_eq!(v["agent.data_dir"]["value"], "/var/lib/vigil");
    assert_eq!(v["agent.data_dir"]["source"], "default");
    assert!(v.as_object().unwrap().len() > 50);
    let out = vigil()
        .arg("--config")
        .arg(&good)
        .args(["config", "show"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&format!("heartbeat_interval_s = 7  # {src}\n")),
        "{shown}"
    );
    let again = d.join("shown.toml");
    std::fs::write(&again, shown.as_bytes()).unwrap();
    let out = vigil()
        .arg("--config")
        .arg(&again)
        .args(["config", "show", "--json"])
        .output()
        .unwrap();
    let w = json(&out);
    for (k, val) in v.as_object().unwrap() {
        assert_eq!(w[k]["value"], val["value"], "{k}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
