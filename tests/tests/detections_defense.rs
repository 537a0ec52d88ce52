//! End to end as root: defense-impairment, stealth and persistence behaviour
//! performed with the real tools (every change undone) raises the built-in
//! rules' alerts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;
use common::RulesAgent as Agent;
use common::{Cleanup, tee};

/// Runs a command to completion and returns its pid (the exec'd program's).
fn run(argv: &[&str]) -> u32 {
    common::run_quiet(&mut common::argv(argv)).0
}

/// Writes `text` to `path` with `tee`, a real program: the test process is
/// the agent's own, whose events the kernel leaves out.
fn has_tool(p: &str) -> bool {
    Path::new(p).exists()
}

/// The host's account databases, which no test may change.
const ACCOUNT_FILES: &[&str] = &[
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/gshadow",
    "/etc/subuid",
    "/etc/subgid",
];

/// The bytes of each of [`ACCOUNT_FILES`] (`None`: absent).
fn account_files() -> Vec<Option<Vec<u8>>> {
    common::file_bytes(ACCOUNT_FILES)
}

#[test]
fn defense_impairment_commands_raise_alerts() {
    let Some(agent) = Agent::start("defense_impairment_commands_raise_alerts", None) else {
        return;
    };
    // Kernel parameter: write back the value it already has.
    let aslr = std::fs::read_to_string("/proc/sys/kernel/randomize_va_space").unwrap();
    let arg = format!("kernel.randomize_va_space={}", aslr.trim());
    let pid = run(&["/usr/sbin/sysctl", "-w", &arg]);
    agent.expect("security_sysctl_changed", |a| a["process"]["pid"] == pid);

    // Timestomp a scratch file.
    let dir = std::env::temp_dir().join(vigil_tests::unique_marker("vg-def"));
    let _c = Cleanup(vec![dir.clone()]);
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("f");
    std::fs::write(&f, "x").unwrap();
    let pid = run(&[
        "/usr/bin/touch",
        "-d",
        "2001-01-01 00:00",
        f.to_str().unwrap(),
    ]);
    let a = agent.expect("file_timestomp", |a| a["process"]["pid"] == pid);
    assert!(
        a["threat"]["technique"]["id"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "T1070.006")
    );

    // History file linked to /dev/null (a scratch home, not a real one).
    let hist = dir.join(".bash_history");
    let pid = run(&["/usr/bin/ln", "-sf", "/dev/null", hist.to_str().unwrap()]);
    agent.expect("history_logging_disabled", |a| a["process"]["pid"] == pid);

    // chattr on the scratch file (the exec is what is detected).
    let pid = run(&["/usr/bin/chattr", "-i", f.to_str().unwrap()]);
    agent.expect("file_attributes_changed", |a| a["process"]["pid"] == pid);

    // Firewall flush inside a throw-away network namespace only.
    if has_tool("/usr/sbin/ip") && has_tool("/usr/sbin/iptables") {
        let ns = vigil_tests::unique_marker("vgfw");
        let ns = &ns[..ns.len().min(14)];
        assert!(
            Command::new("/usr/sbin/ip")
                .args(["netns", "add", ns])
                .status()
                .unwrap()
                .success()
        );
        let pid = run(&[
            "/usr/sbin/ip",
            "netns",
            "exec",
            ns,
            "/usr/sbin/iptables",
            "-F",
        ]);
        let _ = Command::new("/usr/sbin/ip")
            .args(["netns", "del", ns])
            .status();
        agent.expect("firewall_disabled", |a| a["process"]["pid"] == pid);
    }

    // auditctl -e 0 only when auditing is already off (no state change).
    if has_tool("/usr/sbin/auditctl") {
        let st = Command::new("/usr/sbin/auditctl")
            .arg("-s")
            .output()
            .unwrap();
        if String::from_utf8_lossy(&st.stdout).contains("enabled 0") {
            let pid = run(&["/usr/sbin/auditctl", "-e", "0"]);
            agent.expect("audit_rules_disabled", |a| a["process"]["pid"] == pid);
        }
    }
}

#[test]
fn persistence_changes_raise_alerts() {
    let Some(agent) = Agent::start("persistence_changes_raise_alerts", None) else {
        return;
    };
    let marker = vigil_tests::unique_marker("vgp");
    let short: String = marker
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let user = format!("vg{}", &short[short.len().saturating_sub(10)..]).to_lowercase();
    let home = PathBuf::from(format!("/home/{marker}"));
    let pam = PathBuf::from(format!("/etc/pam.d/{marker}"));
    let ca = PathBuf::from(format!("/usr/local/share/ca-certificates/{marker}.crt"));
    let sandbox = std::env::temp_dir().join(format!("vigil-test-accounts-{marker}"));
    let _c = Cleanup(vec![home.clone(), pam.clone(), ca.clone(), sandbox.clone()]);

    // A throw-away account, removed at once, in a sandbox: `useradd
    // --prefix DIR` edits DIR/etc/passwd, shadow, group, ... (copies of the
    // host's), so the host's account files stay byte-identical.
    let host_files = account_files();
    std::fs::create_dir_all(sandbox.join("etc")).unwrap();
    for f in ACCOUNT_FILES.iter().chain(&["/etc/login.defs"]) {
        if Path::new(f).exists() {
            std::fs::copy(f, sandbox.join(&f[1..])).unwrap();
        }
    }
    let prefix = sandbox.to_str().unwrap();
    let pid = run(&[
        "/usr/sbin/useradd",
        "--prefix",
        prefix,
        "-M",
        "-N",
        "-s",
        "/usr/sbin/nologin",
        &user,
    ]);
    let passwd = std::fs::read_to_string(sandbox.join("etc/passwd")).unwrap();
    assert!(
        passwd.lines().any(|l| l.starts_with(&format!("{user}:"))),
        "useradd --prefix did not create {user} in the sandbox"
    );
    let _ = Command::new("/usr/sbin/userdel")
        .args(["--prefix", prefix])
        .arg(&user)
        .status();
    agent.expect("local_account_created", |a| a["process"]["pid"] == pid);
    assert!(
        account_files() == host_files,
        "the host's account files changed"
    );

    // A PAM file no service uses.
    tee(&pam, "# vigil test\n");
    agent.expect("pam_config_modified", |a| {
        a["file"]["path"] == pam.to_str().unwrap()
    });

    // A user's .bashrc (in a scratch home directory).
    std::fs::create_dir_all(&home).unwrap();
    let rc = home.join(".bashrc");
    tee(&rc, "true\n");
    agent.expect("user_shell_profile_modified", |a| {
        a["file"]["path"] == rc.to_str().unwrap()
    });

    // A certificate in the local trust anchors (update-ca-certificates not run).
    if ca.parent().unwrap().is_dir() {
        tee(&ca, "not a certificate\n");
        agent.expect("root_ca_installed", |a| {
            a["file"]["path"] == ca.to_str().unwrap()
        });
    }

    // A transient timer that would fire in an hour, stopped at once.
    if has_tool("/usr/bin/systemd-run") && Path::new("/run/systemd/system").exists() {
        let unit = format!("vigil-test-{short}");
        let pid = run(&[
            "/usr/bin/systemd-run",
            "--on-active=3600",
            &format!("--unit={unit}"),
            "/bin/true",
        ]);
        let _ = Command::new("/usr/bin/systemctl")
            .args(["stop", &format!("{unit}.timer")])
            .status();
        agent.expect("transient_timer_created", |a| a["process"]["pid"] == pid);
    }
}

#[test]
fn log_truncated_by_a_shell_redirect_raises_an_alert_each_time() {
    let Some(agent) = Agent::start(
        "log_truncated_by_a_shell_redirect_raises_an_alert_each_time",
        None,
    ) else {
        return;
    };
    let marker = vigil_tests::unique_marker("vgl");
    // Scratch logs below /var/log (the rule's prefix), removed afterwards:
    // one that exists with content, one the first redirect creates.
    let old = PathBuf::from(format!("/var/log/{marker}.log"));
    let new = PathBuf::from(format!("/var/log/{marker}-new.log"));
    let _c = Cleanup(vec![old.clone(), new.clone()]);
    std::fs::write(&old, "Dec  7 00:00:00 vm sshd[1]: Accepted publickey\n").unwrap();
    let (o, n) = (old.to_str().unwrap(), new.to_str().unwrap());
    // One shell does every redirect itself (the opens are the shell's, the
    // cats its children): the same process truncates each file twice, with
    // an append between, as an intruder at a prompt would.
    let script = format!(
        "cat /dev/null > {o}; echo x >> {o}; cat /dev/null > {o}; \
         cat /dev/null > {n}; echo x >> {n}; cat /dev/null > {n}"
    );
    let pid = run(&["/bin/sh", "-c", &script]);
    assert_eq!(std::fs::read(&old).unwrap(), b"", "{o} truncated");
    assert_eq!(std::fs::read(&new).unwrap(), b"", "{n} truncated");
    for p in [o, n] {
        let alerts = vigil_tests::wait_for(Duration::from_secs(15), || {
            let a: Vec<_> = agent
                .out
                .records()
                .into_iter()
                .filter(|a| {
                    a["rule"]["id"] == "log_file_truncated"
                        && a["file"]["path"] == p
                        && a["process"]["pid"] == pid
                })
                .collect();
            (a.len() >= 2).then_some(a)
        })
        .unwrap_or_else(|| {
            panic!(
                "{p}: fewer than two log_file_truncated alerts from sh (pid {pid}); alerts: {:#?}",
                agent
                    .out
                    .records()
                    .iter()
                    .map(|a| (a["rule"]["id"].clone(), a["message"].clone()))
                    .collect::<Vec<_>>()
            )
        });
        for a in &alerts {
            assert_eq!(a["process"]["name"], "sh", "{a}");
            assert_eq!(a["event"]["outcome"], "success", "{a}");
            let flags = a["vigil"]["open"]["flags"].to_string();
            assert!(flags.contains("O_TRUNC"), "{a}");
        }
        // The created file: the first open created it, the second did not.
        if p == n {
            let created: Vec<_> = alerts
                .iter()
                .map(|a| a["vigil"]["open"]["created"].clone())
                .collect();
            assert!(created.contains(&serde_json::json!(true)), "{created:?}");
            assert!(created.contains(&serde_json::json!(false)), "{created:?}");
        }
    }
}
