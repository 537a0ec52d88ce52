//! The fleet relay, end to end as root: a real rsyslogd runs the relay
//! configuration the project ships (packaging/rsyslog-relay.conf, with only
//! its port and directory changed), a live `vigil run` sends its alerts to
//! it over RELP as ECS JSON, and the relay's per-host file holds each alert
//! as the JSON line the agent sent, in a 0600 file below a 0700 directory.

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Stopped, free_port, require_root, spawn_with_stderr, wait_line};

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";
const RULE_ID: &str = "61c3d0f4-0000-4000-8000-0000000f1ee7";

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The shipped relay configuration with its port and output directory
/// replaced (each must occur exactly once, so the test runs what ships).
fn relay_conf(port: u16, out: &Path) -> String {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/rsyslog-relay.conf");
    let text = std::fs::read_to_string(&shipped).unwrap();
    for needle in ["port=\"2514\"", "/var/log/vigil/fleet/"] {
        let n = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter(|l| l.contains(needle))
            .count();
        assert_eq!(n, 1, "{needle} in {}", shipped.display());
    }
    text.replace("port=\"2514\"", &format!("port=\"{port}\""))
        .replace("/var/log/vigil/fleet/", &format!("{}/", out.display()))
}

#[test]
fn alerts_reach_the_shipped_rsyslog_relay_over_relp_as_json() {
    if !require_root("alerts_reach_the_shipped_rsyslog_relay_over_relp_as_json") {
        return;
    }
    let relp_module = Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/imrelp.so");
    assert!(
        Path::new(RSYSLOGD).exists() && relp_module.exists(),
        "rsyslog and rsyslog-relp are needed (scripts/install-deps.sh installs them)"
    );
    let mark = format!("vgfleet-{}", std::process::id());
    let dir = Dir(std::env::temp_dir().join(&mark));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(dir.0.join("data")).unwrap();
    std::fs::set_permissions(dir.0.join("data"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let fleet = dir.0.join("fleet");

    let port = free_port();
    let conf = dir.0.join("relay.conf");
    std::fs::write(&conf, relay_conf(port, &fleet)).unwrap();
    let log = std::fs::File::create(dir.0.join("rsyslogd.log")).unwrap();
    let relay = Stopped(
        Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.0.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
        "rsyslogd",
    );
    let end = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < end,
            "the relay never listened: {}",
            std::fs::read_to_string(dir.0.join("rsyslogd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let cfg = dir.0.join("vigil.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\ndata_dir = \"{}\"\nhousekeeping_interval_s = 1\n",
            dir.0.join("data").display()
        ),
    )
    .unwrap();
    let rule = dir.0.join("rule.yml");
    std::fs::write(
        &rule,
        format!(
            "title: Fleet test job run\nid: {RULE_ID}\nlogsource:\n    product: linux\n    category: process_creation\ndetection:\n    selection:\n        Image|endswith: '/{mark}-job'\n    condition: selection\nlevel: high\n"
        ),
    )
    .unwrap();
    let prog = dir.0.join(format!("{mark}-job"));
    std::fs::copy("/bin/true", &prog).unwrap();

    let (child, rx) = spawn_with_stderr(
        common::vigil()
            .arg("--config")
            .arg(&cfg)
            .args(["run", "--no-baselines", "--no-builtin-rules", "--rules"])
            .arg(&rule)
            .arg("-o")
            .arg(format!("syslog+relp://127.0.0.1:{port}?format=json"))
            .stdout(Stdio::null()),
    );
    let agent = Stopped(child, "vigil");
    wait_line(&rx, "vigil: ready", Duration::from_secs(60));
    let mut pids = Vec::new();
    for arg in ["first", "second"] {
        let mut c = Command::new(&prog).arg(arg).spawn().unwrap();
        pids.push(c.id());
        assert!(c.wait().unwrap().success());
    }

    let file = fleet.join("127.0.0.1.json");
    let end = Instant::now() + Duration::from_secs(30);
    let alerts = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        // rsyslogd may be writing the last line: complete lines only
        let done = text.rfind('\n').map_or("", |i| &text[..=i]);
        let alerts: Vec<serde_json::Value> = done
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("relay line is not the agent's JSON ({e}): {l}"))
            })
            .filter(|v: &serde_json::Value| v["rule"]["id"] == RULE_ID)
            .collect();
        if alerts.len() >= 2 || Instant::now() > end {
            break alerts;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(agent);
    drop(relay);
    let got: Vec<u64> = alerts
        .iter()
        .map(|a| a["process"]["pid"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(
        got,
        pids.iter().map(|&p| u64::from(p)).collect::<Vec<_>>(),
        "alerts at the relay: {alerts:#?}"
    );
    for a in &alerts {
        assert_eq!(a["event"]["kind"], "alert", "{a}");
        assert_eq!(a["vigil"]["severity"], "high", "{a}");
    }
    let fmode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    let dmode = std::fs::metadata(&fleet).unwrap().permissions().mode() & 0o777;
    assert_eq!((fmode, dmode), (0o600, 0o700));
}
