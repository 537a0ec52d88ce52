//! End to end as root: Sigma rules in SigmaHQ's auditd format (written
//! here) on personality(2), sysinfo(2), syslog(2) (klogctl) and the
//! `ADD_USER` record load, and the real calls and a real useradd raise
//! them, with the record's fields (the `syscall` sensor; `useradd`'s rename
//! of the new passwd file onto /etc/passwd).

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::RulesAgent as Agent;
use common::{Cleanup, file_bytes, run_ok as run};

const ID_PERSONA_QUERY: &str = "0d0c6a4e-1f35-4b7c-9a41-6e2a0b3c5d01";
const ID_ASLR: &str = "0d0c6a4e-1f35-4b7c-9a41-6e2a0b3c5d02";
const ID_SYSINFO: &str = "0d0c6a4e-1f35-4b7c-9a41-6e2a0b3c5d03";
const ID_SYSLOG_SIZE: &str = "0d0c6a4e-1f35-4b7c-9a41-6e2a0b3c5d04";
const ID_ADD_USER: &str = "0d0c6a4e-1f35-4b7c-9a41-6e2a0b3c5d05";

fn sigma(id: &str, title: &str, level: &str, detection: &str) -> String {
    format!(
        "title: {title}\nid: {id}\nstatus: test\nlogsource:\n    product: linux\n    service: auditd\n\
         detection:\n{detection}    condition: selection\nlevel: {level}\n"
    )
}

/// The rules, one file each, in a fresh directory.
fn write_rules(dir: &Path) {
    let rules = [
        sigma(
            ID_PERSONA_QUERY,
            "Persona queried",
            "medium",
            "    selection:\n        type: SYSCALL\n        SYSCALL: personality\n        a0: ffffffff\n",
        ),
        // SigmaHQ's ASLR rule's syscall selection (a0 is hex: ADDR_NO_RANDOMIZE)
        sigma(
            ID_ASLR,
            "ASLR off by personality",
            "high",
            "    selection:\n        type: 'SYSCALL'\n        SYSCALL: 'personality'\n        a0: 40000\n",
        ),
        sigma(
            ID_SYSINFO,
            "sysinfo called",
            "low",
            "    selection:\n        type: 'SYSCALL'\n        SYSCALL: 'sysinfo'\n        exe|endswith: '/vg-trigger'\n",
        ),
        sigma(
            ID_SYSLOG_SIZE,
            "Kernel log size asked",
            "medium",
            "    selection:\n        type: 'SYSCALL'\n        SYSCALL: 'syslog'\n        a0:\n            - 9\n            - a\n",
        ),
        sigma(
            ID_ADD_USER,
            "User added",
            "medium",
            "    selection:\n        type: 'ADD_USER'\n",
        ),
    ];
    for (i, r) in rules.iter().enumerate() {
        std::fs::write(dir.join(format!("r{i}.yml")), r).unwrap();
    }
}

fn rules_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(vigil_tests::unique_marker(tag));
    std::fs::create_dir_all(&dir).unwrap();
    write_rules(&dir);
    dir
}

#[test]
fn personality_sysinfo_and_syslog_calls_raise_sigma_auditd_rules() {
    let dir = rules_dir("vg-sigma-sys");
    let _c = Cleanup(vec![dir.clone()]);
    let arg = format!("{}@low", dir.display());
    let Some(agent) = Agent::start(
        "personality_sysinfo_and_syslog_calls_raise_sigma_auditd_rules",
        Some(Path::new(&arg)),
    ) else {
        return;
    };
    let trig = common::trigger_bin();

    let pid = run(Command::new(&trig).arg("personality-query"));
    let a = agent.expect(ID_PERSONA_QUERY, |a| a["process"]["pid"] == pid);
    assert_eq!(a["event"]["action"], "personality", "{a}");
    assert_eq!(a["vigil"]["syscall"]["name"], "personality", "{a}");
    assert_eq!(a["vigil"]["syscall"]["nr"], 135, "{a}");
    assert_eq!(a["vigil"]["syscall"]["args"][0], 0xffff_ffffu64, "{a}");
    assert_eq!(a["vigil"]["sensor"], "syscall", "{a}");

    // setarch -R: the real tool that turns ASLR off for the program it runs
    let pid = run(Command::new("setarch").args(["x86_64", "-R", "/bin/true"]));
    let a = agent.expect(ID_ASLR, |a| a["process"]["pid"] == pid);
    assert_eq!(a["vigil"]["syscall"]["args"][0], 0x0040000, "{a}");
    assert_eq!(a["process"]["name"], "setarch", "{a}");

    let pid = run(Command::new(&trig).arg("sysinfo"));
    let a = agent.expect(ID_SYSINFO, |a| a["process"]["pid"] == pid);
    assert_eq!(a["event"]["action"], "sysinfo", "{a}");
    assert_eq!(a["event"]["outcome"], "success", "{a}");
    assert_eq!(a["vigil"]["syscall"]["nr"], 99, "{a}");

    let pid = run(Command::new(&trig).arg("klogctl-size"));
    let a = agent.expect(ID_SYSLOG_SIZE, |a| a["process"]["pid"] == pid);
    assert_eq!(a["event"]["action"], "syslog", "{a}");
    assert_eq!(
        a["vigil"]["syslog"]["action"], "SYSLOG_ACTION_SIZE_BUFFER",
        "{a}"
    );
    assert_eq!(a["vigil"]["syscall"]["args"][0], 10, "{a}");
}

const ACCOUNT_FILES: &[&str] = &[
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/gshadow",
    "/etc/subuid",
    "/etc/subgid",
    "/etc/passwd-",
    "/etc/shadow-",
    "/etc/group-",
    "/etc/gshadow-",
];

fn account_files() -> Vec<Option<Vec<u8>>> {
    file_bytes(ACCOUNT_FILES)
}

#[test]
fn useradd_raises_the_sigma_add_user_rule() {
    let dir = rules_dir("vg-sigma-adduser");
    let sandbox = std::env::temp_dir().join(vigil_tests::unique_marker("vigil-test-etc"));
    std::fs::create_dir_all(&sandbox).unwrap();
    let _c = Cleanup(vec![dir.clone(), sandbox.clone()]);
    let Some(agent) = Agent::start(
        "useradd_raises_the_sigma_add_user_rule",
        Some(dir.as_path()),
    ) else {
        return;
    };
    let host = account_files();
    let user = format!("vgadd{}", std::process::id() % 100_000);
    // useradd on the real /etc path, in a private mount namespace whose /etc
    // is an overlay on the host's with its upper layer in a tmpfs: the
    // account lands in the overlay, which goes away with the namespace, and
    // the host's files never change. -l: no lastlog/faillog entry (those
    // files are outside /etc).
    let script = format!(
        "set -e; mount -t tmpfs vigil-test-etc {s}; mkdir {s}/u {s}/w; \
         mount -t overlay vigil-test-etc -o lowerdir=/etc,upperdir={s}/u,workdir={s}/w /etc; \
         /usr/sbin/useradd -l -M -N -s /usr/sbin/nologin {user}; grep -q '^{user}:' /etc/passwd",
        s = sandbox.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sandboxed useradd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = agent.expect(ID_ADD_USER, |a| a["process"]["name"] == "useradd");
    assert_eq!(a["event"]["action"], "rename", "{a}");
    assert_eq!(a["file"]["path"], "/etc/passwd", "{a}");
    assert_eq!(a["process"]["executable"], "/usr/sbin/useradd", "{a}");
    assert!(
        a["process"]["command_line"]
            .as_str()
            .is_some_and(|c| c.ends_with(&user)),
        "{a}"
    );
    assert!(account_files() == host, "the host's account files changed");
}
