//! The systemd unit and the agent agree: the unit's CapabilityBoundingSet
//! holds every capability vigil keeps after start and is enough to start
//! (root: `vigil probe` under that bounding set sees the same live sensors
//! as without it), and `vigil run` speaks the notification protocol to a
//! listening NOTIFY_SOCKET: READY=1 once live, WATCHDOG=1 from the event
//! loop at half WATCHDOG_USEC, RELOADING=1/READY=1 around SIGHUP,
//! STOPPING=1 on SIGTERM; after READY its bounding set is exactly
//! `privs::KEEP`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::require_root;

/// `CHOWN` for 0, `BPF` for 39 (capability.h, the baselines' table).
fn cap(c: u32) -> String {
    let n = vigil_baselines::capability_name(c as u8);
    n.strip_prefix("CAP_").unwrap_or(&n).to_string()
}

fn unit_text() -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging/vigil.service");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn unit_value(key: &str) -> String {
    let prefix = format!("{key}=");
    unit_text()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_else(|| panic!("{key}= not in the unit"))
}

/// The unit's bounding set, as capability numbers.
fn unit_bounding_set() -> BTreeSet<u32> {
    unit_value("CapabilityBoundingSet")
        .split_whitespace()
        .map(|c| {
            let n = c.strip_prefix("CAP_").unwrap_or_else(|| panic!("{c}"));
            (0..64)
                .find(|&i| cap(i) == n)
                .unwrap_or_else(|| panic!("unknown capability {c}"))
        })
        .collect()
}

fn mask(set: &BTreeSet<u32>) -> u64 {
    set.iter().fold(0u64, |m, c| m | (1u64 << c))
}

#[test]
fn unit_bounding_set_holds_what_vigil_keeps() {
    let unit = unit_bounding_set();
    for c in vigil_engine::privs::KEEP {
        assert!(
            unit.contains(c),
            "CAP_{} is kept after start (privs::KEEP) but not in the unit's CapabilityBoundingSet",
            cap(*c)
        );
    }
    // What the unit adds is what start-up needs, named in the unit.
    let text = unit_text();
    for c in unit
        .iter()
        .filter(|c| !vigil_engine::privs::KEEP.contains(c))
    {
        let name = format!("CAP_{}", cap(*c));
        assert!(
            text.matches(&name).count() >= 2,
            "{name} in the bounding set without a comment saying why"
        );
    }
    assert_eq!(unit_value("Type"), "notify");
    assert_eq!(unit_value("Restart"), "on-failure");
    assert_eq!(unit_value("NoNewPrivileges"), "yes");
    assert_eq!(unit_value("ProtectSystem"), "strict");
    assert!(unit_value("ReadWritePaths").contains("/var/lib/vigil"));
    assert!(unit_value("ExecReload").contains("-HUP $MAINPID"));
    assert!(
        unit_value("WatchdogSec")
            .trim_end_matches('s')
            .parse::<u64>()
            .unwrap()
            > 0
    );
}

/// `setpriv` arguments limiting the bounding set to the unit's.
fn setpriv_bounding() -> String {
    let mut s = String::from("-all");
    for c in unit_bounding_set() {
        s.push_str(",+");
        s.push_str(&cap(c).to_lowercase());
    }
    s
}

fn live_sensors(v: &serde_json::Value) -> BTreeSet<String> {
    v["sensors"]
        .as_array()
        .expect("sensors")
        .iter()
        .filter(|s| s["state"] == "live")
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn probe_json_under_the_units_bounding_set_sees_every_sensor() {
    if !require_root("probe_json_under_the_units_bounding_set_sees_every_sensor") {
        return;
    }
    let free = common::vigil().args(["probe", "--json"]).output().unwrap();
    assert_eq!(free.status.code(), Some(0), "{free:?}");
    let free: serde_json::Value = serde_json::from_slice(&free.stdout).expect("probe --json");
    assert!(free["kernel"]["kernel"].is_string(), "{free}");
    assert_eq!(
        free["live"].as_u64().unwrap() as usize,
        live_sensors(&free).len()
    );
    assert_eq!(
        free["total"].as_u64().unwrap() as usize,
        free["sensors"].as_array().unwrap().len()
    );
    assert!(free["live"].as_u64().unwrap() >= 10, "{free}");
    let bounded = Command::new("setpriv")
        .arg("--bounding-set")
        .arg(setpriv_bounding())
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_vigil"))
        .args(["probe", "--json"])
        .output()
        .expect("setpriv (util-linux)");
    assert_eq!(bounded.status.code(), Some(0), "{bounded:?}");
    let bounded: serde_json::Value = serde_json::from_slice(&bounded.stdout).unwrap();
    assert_eq!(
        live_sensors(&bounded),
        live_sensors(&free),
        "the unit's CapabilityBoundingSet loses sensors"
    );
}

fn recv(l: &UnixDatagram, deadline: Duration) -> Option<String> {
    l.set_read_timeout(Some(deadline)).unwrap();
    let mut buf = [0u8; 4096];
    l.recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Datagrams until one starting with `what`; panics at the deadline.
fn wait_msg(l: &UnixDatagram, what: &str, deadline: Duration, seen: &mut Vec<String>) -> String {
    let end = Instant::now() + deadline;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match recv(l, left) {
            Some(m) => {
                seen.push(m.clone());
                if m.starts_with(what) {
                    return m;
                }
            }
            None => break,
        }
    }
    panic!("no {what:?} on NOTIFY_SOCKET; got {seen:?}");
}

fn cap_bnd(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let l = s.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
    u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn run_notifies_ready_pings_the_watchdog_and_keeps_only_its_capabilities() {
    if !require_root("run_notifies_ready_pings_the_watchdog_and_keeps_only_its_capabilities") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vigil-test-marker-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("notify.sock");
    let listener = UnixDatagram::bind(&sock).unwrap();
    let cfg = dir.join("vigil.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\ndata_dir = \"{}\"\nheartbeat_interval_s = 0\n[perf]\nrunqlat = false\npidnss = false\ntcp = false\nbio = false\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new("setpriv")
        .arg("--bounding-set")
        .arg(setpriv_bounding())
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_vigil"))
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--no-baselines", "-o"])
        .arg(dir.join("alerts.json"))
        .env("NOTIFY_SOCKET", &sock)
        // 400 ms: a ping every 200 ms.
        .env("WATCHDOG_USEC", "400000")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut seen = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ready = wait_msg(&listener, "READY=1", Duration::from_secs(60), &mut seen);
        assert!(ready.contains(&format!("MAINPID={pid}")), "{ready}");
        let status = ready
            .lines()
            .find_map(|l| l.strip_prefix("STATUS="))
            .expect("STATUS line");
        let live: usize = status.split('/').next().unwrap().parse().unwrap();
        assert!(live >= 10, "{status}");
        // Privileges were dropped before READY: the bounding set is KEEP.
        let keep: BTreeSet<u32> = vigil_engine::privs::KEEP.iter().copied().collect();
        assert_eq!(cap_bnd(pid), mask(&keep), "CapBnd after READY");
        // Watchdog pings at ~200 ms.
        let t = Instant::now();
        for _ in 0..5 {
            wait_msg(&listener, "WATCHDOG=1", Duration::from_secs(2), &mut seen);
        }
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(600) && took < Duration::from_secs(4),
            "5 pings in {took:?}"
        );
        // SIGHUP: RELOADING=1, then READY=1 again.
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, libc::SIGHUP) };
        let r = wait_msg(&listener, "RELOADING=1", Duration::from_secs(10), &mut seen);
        assert!(r.contains("MONOTONIC_USEC="), "{r}");
        wait_msg(&listener, "READY=1", Duration::from_secs(10), &mut seen);
        // SAFETY: as above.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        wait_msg(&listener, "STOPPING=1", Duration::from_secs(20), &mut seen);
    }));
    // SAFETY: as above (no-op if it already exited).
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    let err = lines.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        eprintln!("vigil stderr:\n{}", err.join("\n"));
        std::panic::resume_unwind(e);
    }
    assert_eq!(st.code(), Some(0), "{}", err.join("\n"));
    assert!(
        !err.iter()
            .any(|l| l.contains("could not drop capabilities")),
        "{err:?}"
    );
}
