//! End to end as root: the built-in collection, credential-access and impact
//! rules fire on real tools, and a benign developer workload raises none.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{RulesAgent as Agent, TempDir};

/// The shared harness, given half a second for the sensors to attach
/// before the test acts.
fn start(test: &str) -> Option<Agent> {
    let a = Agent::start(test, None)?;
    std::thread::sleep(Duration::from_millis(500));
    Some(a)
}

fn run(dir: &Path, cmd: &str, args: &[&str]) -> u32 {
    let mut c = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let pid = c.id();
    c.wait().unwrap();
    pid
}

fn temp(prefix: &str) -> TempDir {
    let d = std::env::temp_dir().join(vigil_tests::unique_marker(prefix));
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

#[test]
fn archive_of_ssh_keys_and_file_encryption_raise_alerts() {
    let Some(agent) = start("archive_of_ssh_keys_and_file_encryption_raise_alerts") else {
        return;
    };
    let dir = temp("vg-coll");
    let ssh = dir.0.join("home/.ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(ssh.join("id_rsa"), "not a key\n").unwrap();
    let out = dir.0.join("k.tgz");
    let pid = run(
        &dir.0,
        "tar",
        &["czf", out.to_str().unwrap(), ssh.to_str().unwrap()],
    );
    agent.expect("archive_of_sensitive_files", |a| a["process"]["pid"] == pid);

    for i in 0..3 {
        std::fs::write(dir.0.join(format!("doc{i}.txt")), "data\n").unwrap();
    }
    let pid = run(
        &dir.0,
        "openssl",
        &[
            "enc",
            "-aes-256-cbc",
            "-pbkdf2",
            "-pass",
            "pass:x",
            "-in",
            "doc0.txt",
            "-out",
            "doc0.txt.enc",
        ],
    );
    agent.expect("file_encryption_tool", |a| a["process"]["pid"] == pid);
}

#[test]
fn proc_mem_read_of_another_process_raises_an_alert() {
    let Some(agent) = start("proc_mem_read_of_another_process_raises_an_alert") else {
        return;
    };
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let target = child.id();
    let script = format!("f = open('/proc/{target}/mem', 'rb')\nf.close()\n");
    let py = Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(py.success());
    let path = format!("/proc/{target}/mem");
    agent.expect("proc_mem_open", |a| a["file"]["path"] == path.as_str());
}

#[test]
fn benign_developer_workload_raises_no_alert() {
    let Some(agent) = start("benign_developer_workload_raises_no_alert") else {
        return;
    };
    let dir = temp("vg-benign");
    let d = dir.0.clone();
    std::fs::write(d.join("main.c"), "int main(void) { return 0; }\n").unwrap();
    run(&d, "cc", &["-o", "main", "main.c"]);
    run(&d, "git", &["init", "-q"]);
    run(&d, "git", &["add", "main.c"]);
    run(
        &d,
        "git",
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-qm",
            "init",
        ],
    );
    std::fs::create_dir_all(d.join("src")).unwrap();
    std::fs::write(d.join("src/lib.rs"), "pub fn f() {}\n").unwrap();
    run(&d, "tar", &["czf", "src.tgz", "src"]);
    run(&d, "ls", &["-la"]);
    run(&d, "ps", &["aux"]);
    run(&d, "df", &["-h"]);
    run(&d, "uname", &["-a"]);
    run(
        &d,
        "python3",
        &["-c", "import os; print(sum(range(10)), os.getcwd())"],
    );
    std::thread::sleep(Duration::from_secs(3));
    let dirs = d.to_str().unwrap().to_string();
    let ours: Vec<serde_json::Value> = agent
        .out
        .records()
        .into_iter()
        .filter(|a| {
            a["process"]["working_directory"]
                .as_str()
                .is_some_and(|w| w.starts_with(&dirs))
                || a["rule"]["id"] == "vigil_tampering"
        })
        .collect();
    assert!(ours.is_empty(), "benign workload raised alerts: {ours:#?}");
}
