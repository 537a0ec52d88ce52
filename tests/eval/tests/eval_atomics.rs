//! Root test of `vigil-eval atomics`: a fixture suite in the Atomic Red
//! Team format, written here (not taken from the real suite), runs in the
//! sandbox under a real agent. Checks the strict attribution (an alert
//! counts only for the test whose pid namespace raised it during its
//! command and the programs it left running: not during its cleanup, not
//! from a host process at the same time), the skip of a failed prerequisite and of a network download, and
//! that a write of a test never reaches the host.

use std::process::Command;

use vigil_rootgate::require_root;

const FIXTURE: &str = r#"attack_technique: T9990.001
display_name: 'Fixture'
atomic_tests:
- name: Read shadow in the command
  auto_generated_guid: 00000000-0000-0000-0000-000000000001
  supported_platforms:
  - linux
  input_arguments:
    canary:
      type: path
      default: /etc/vigil-atomics-canary
  executor:
    name: sh
    command: |
      echo written > #{canary}
      cat /etc/shadow > /dev/null
- name: Benign while the host reads shadow
  auto_generated_guid: 00000000-0000-0000-0000-000000000002
  supported_platforms:
  - linux
  executor:
    name: bash
    command: sleep 4
- name: Shadow read only in the cleanup
  auto_generated_guid: 00000000-0000-0000-0000-000000000003
  supported_platforms:
  - linux
  executor:
    name: sh
    command: "true"
    cleanup_command: cat /etc/shadow > /dev/null
- name: Missing prerequisite
  auto_generated_guid: 00000000-0000-0000-0000-000000000004
  supported_platforms:
  - linux
  dependencies:
  - description: a tool this host does not have
    prereq_command: command -v vigil-no-such-tool
    get_prereq_command: "true"
  executor:
    name: sh
    command: cat /etc/shadow
- name: Needs a download
  auto_generated_guid: 00000000-0000-0000-0000-000000000005
  supported_platforms:
  - linux
  executor:
    name: sh
    command: curl -o /tmp/x https://example.com/x && cat /etc/shadow
- name: Shadow read by a program left in the background
  auto_generated_guid: 00000000-0000-0000-0000-000000000007
  supported_platforms:
  - linux
  executor:
    name: sh
    command: "(sleep 1; cat /etc/shadow > /dev/null) &"
- name: Windows only
  auto_generated_guid: 00000000-0000-0000-0000-000000000006
  supported_platforms:
  - windows
  executor:
    name: command_prompt
    command: type C:\x
"#;

#[test]
fn atomics_runner_attributes_strictly_and_keeps_the_host_intact() {
    if !require_root("atomics_runner_attributes_strictly_and_keeps_the_host_intact") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vigil-atomics-fixture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("T9990.001")).unwrap();
    std::fs::write(dir.join("T9990.001/T9990.001.yaml"), FIXTURE).unwrap();
    let _ = std::fs::remove_file("/etc/vigil-atomics-canary");
    let child = Command::new(env!("CARGO_BIN_EXE_vigil-eval"))
        .args(["atomics", "--dir"])
        .arg(&dir)
        .args(["--jobs", "2", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run vigil-eval");
    // while the sandboxes run, a host process reads shadow too: it must
    // not be attributed to any test
    let host_reader = std::thread::spawn(|| {
        for _ in 0..10 {
            std::thread::sleep(std::time::Duration::from_millis(700));
            let _ = std::fs::read("/etc/shadow");
        }
    });
    let out = child.wait_with_output().expect("wait vigil-eval");
    host_reader.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "vigil-eval atomics: {}\n{stdout}\n{stderr}",
        out.status
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !std::path::Path::new("/etc/vigil-atomics-canary").exists(),
        "a sandboxed write reached the host"
    );
    let doc: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON document");
    let tests = doc["tests"].as_array().expect("tests");
    assert_eq!(
        tests.len(),
        6,
        "the Windows test is not a Linux sh/bash test: {doc}"
    );
    let by = |n: u64| {
        tests
            .iter()
            .find(|t| t["number"] == n)
            .unwrap_or_else(|| panic!("test {n} missing: {doc}"))
    };
    let t1 = by(1);
    let unattributed = &doc["unattributed"];
    assert_eq!(t1["skipped"], serde_json::Value::Null, "{t1}");
    assert_eq!(
        t1["detected_default"], true,
        "{t1}\nalerts no window claimed: {unattributed}\nstderr:\n{stderr}"
    );
    assert!(
        t1["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "shadow_file_read"),
        "{t1}"
    );
    for n in [2, 3] {
        let t = by(n);
        assert_eq!(t["skipped"], serde_json::Value::Null, "{t}");
        assert_eq!(
            t["detected"], false,
            "test {n} credited with an alert not its own: {t}"
        );
        assert_eq!(t["rules"].as_array().map(|a| a.len()), Some(0), "{t}");
    }
    let t4 = by(4);
    assert!(
        t4["skipped"]
            .as_str()
            .is_some_and(|s| s.contains("prerequisite not met: a tool this host does not have")),
        "{t4}"
    );
    let t5 = by(5);
    assert!(
        t5["skipped"]
            .as_str()
            .is_some_and(|s| s.contains("network download")),
        "{t5}"
    );
    // the command returns at once; the read comes a second later from the
    // program it left in the background: still the test's own
    let t6 = by(6);
    assert_eq!(t6["skipped"], serde_json::Value::Null, "{t6}");
    assert!(
        t6["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "shadow_file_read"),
        "{t6}"
    );
    assert_eq!(doc["run"], 4, "{doc}");
    assert_eq!(doc["detected_default"], 2, "{doc}");
}
