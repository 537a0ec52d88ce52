//! Root tests: kill on match. A rule with `action: kill` on the exec of a
//! copied binary in a temp dir kills it in the kernel at exec, before it
//! writes a marker file, and the alert says so; in monitor mode the same
//! rule only reports "would kill"; a kill rule the kernel cannot decide
//! kills from userspace and says that.

mod common;

use common::{Harness, Shared, TempDir};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use vigil_bpf::abi::kind;

struct Setup {
    _dir: TempDir,
    prefix: String,
    sh: PathBuf,
    marker: PathBuf,
}

fn setup(tag: &str) -> Setup {
    let m = vigil_tests::unique_marker(tag);
    let dir = std::env::temp_dir().join(format!("vigil-kill-{m}"));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = std::fs::canonicalize(&dir).unwrap();
    let sh = dir.join("sh");
    std::fs::copy("/bin/sh", &sh).expect("copy /bin/sh");
    let marker = std::env::temp_dir().join(format!("vigil-kill-marker-{m}"));
    let _ = std::fs::remove_file(&marker);
    Setup {
        prefix: format!("{}/", dir.display()),
        _dir: TempDir(dir),
        sh,
        marker,
    }
}

fn start(test: &str, rules: &str, monitor: bool) -> Option<(Harness, Shared)> {
    let mut l = vigil_rules::Loader::new();
    l.add_source("kill-test.yaml", rules);
    let (set, report) = l.load();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let out = Shared::default();
    let sink = vigil_outputs::JsonLines::writer(Box::new(out.clone()), "test");
    let h = Harness::start_with_sink(
        test,
        move |cfg| {
            cfg.response.monitor = monitor;
            cfg.outputs.rate_limit_burst = 0;
        },
        Box::new(sink),
        Arc::new(set),
    )?;
    Some((h, out))
}

fn alert(out: &Shared, id: &str) -> serde_json::Value {
    vigil_tests::wait_for(Duration::from_secs(5), || {
        out.records()
            .into_iter()
            .find(|r| r["event"]["kind"] == "alert" && r["rule"]["id"] == id)
    })
    .unwrap_or_else(|| panic!("no alert of {id}"))
}

fn kernel_rule(prefix: &str) -> String {
    format!(
        "- rule: test_kill_exec\n  severity: high\n  action: kill\n  condition: event.action = exec and process.executable startswith '{prefix}'\n"
    )
}

#[test]
fn kill_rule_kills_at_exec_in_the_kernel_before_the_program_runs() {
    let s = setup("kk");
    let Some((mut h, out)) = start("kill_kernel", &kernel_rule(&s.prefix), false) else {
        return;
    };
    let script = format!("echo ran > {}", s.marker.display());
    let st = Command::new(&s.sh)
        .args(["-c", &script])
        .status()
        .expect("spawn the copied shell");
    assert_eq!(
        st.signal(),
        Some(libc::SIGKILL),
        "killed by SIGKILL: {st:?}"
    );
    assert!(!s.marker.exists(), "the program never ran its own code");
    let a = alert(&out, "test_kill_exec");
    assert_eq!(a["vigil"]["response"]["action"], "kill");
    assert_eq!(a["vigil"]["response"]["outcome"], "killed");
    assert_eq!(a["vigil"]["response"]["how"], "kernel");
    assert_eq!(a["process"]["executable"], s.sh.to_str().unwrap());
    // exec to death: the exec and exit records of that process
    let sh = s.sh.clone();
    let exec = h.expect("exec of the copied shell", |e| {
        e.k.hdr.kind == kind::EXEC
            && e.process
                .as_ref()
                .is_some_and(|p| Path::new(std::ffi::OsStr::from_bytes(&p.exe)) == sh)
    });
    let pid = exec.k.hdr.pid;
    let exit = h.expect("its exit", |e| {
        e.k.hdr.kind == kind::EXIT && e.k.hdr.pid == pid
    });
    let lat = exit.k.hdr.ts_ns.saturating_sub(exec.k.hdr.ts_ns);
    eprintln!("kill latency (kernel, exec to exit): {} us", lat / 1000);
    assert!(
        lat < 1_000_000_000,
        "died within a second of its exec: {lat} ns"
    );
    drop(h);
}

#[test]
fn monitor_mode_only_says_would_kill() {
    let s = setup("km");
    let Some((h, out)) = start("kill_monitor", &kernel_rule(&s.prefix), true) else {
        return;
    };
    let script = format!("echo ran > {}", s.marker.display());
    let st = Command::new(&s.sh).args(["-c", &script]).status().unwrap();
    assert!(st.success(), "not killed in monitor mode: {st:?}");
    assert!(s.marker.exists(), "the program ran");
    let a = alert(&out, "test_kill_exec");
    assert_eq!(a["vigil"]["response"]["outcome"], "would-kill", "{a}");
    assert_eq!(a["vigil"]["response"]["how"], "kernel", "{a}");
    let _ = std::fs::remove_file(&s.marker);
    drop(h);
}

#[test]
fn kill_rule_the_kernel_cannot_decide_kills_from_userspace() {
    let s = setup("ku");
    // `process.args_count` is not a kernel kill condition: userspace kills
    let rules = format!(
        "- rule: test_kill_user\n  severity: high\n  action: kill\n  condition: event.action = exec and process.executable startswith '{}' and process.args_count >= 3\n",
        s.prefix
    );
    let Some((h, out)) = start("kill_userspace", &rules, false) else {
        return;
    };
    // past start-up (the performance sensors load after the seed, on the
    // agent's thread): the latency measured is the steady state's
    std::thread::sleep(Duration::from_secs(3));
    let script = format!("sleep 3; echo ran > {}", s.marker.display());
    let t = std::time::Instant::now();
    let st = Command::new(&s.sh).args(["-c", &script]).status().unwrap();
    assert_eq!(st.signal(), Some(libc::SIGKILL), "killed: {st:?}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "before the script went on"
    );
    assert!(!s.marker.exists());
    let a = alert(&out, "test_kill_user");
    assert_eq!(a["vigil"]["response"]["outcome"], "killed");
    assert_eq!(a["vigil"]["response"]["how"], "userspace");
    let lat = a["vigil"]["response"]["latency_ns"]
        .as_u64()
        .expect("latency");
    eprintln!(
        "kill latency (userspace, exec event to signal): {} us",
        lat / 1000
    );
    drop(h);
}

/// Exec to exit of `pid`'s record matching `first`, in us.
fn to_death(
    h: &mut Harness,
    what: &str,
    first: impl Fn(&vigil_engine::enrich::Event) -> bool,
) -> u64 {
    let ev = h.expect(what, first);
    let pid = ev.k.hdr.pid;
    let exit = h.expect("its exit", |e| {
        e.k.hdr.kind == kind::EXIT && e.k.hdr.pid == pid
    });
    exit.k.hdr.ts_ns.saturating_sub(ev.k.hdr.ts_ns) / 1000
}

#[test]
fn kill_rule_on_a_world_writable_directory_kills_at_exec_in_the_kernel() {
    let s = setup("kw");
    let dir = s.sh.parent().unwrap().to_path_buf();
    let rules = "- rule: test_kill_wwdir\n  severity: high\n  action: kill\n  condition: event.action = exec and vigil.exec.world_writable_dir = true\n";
    // the directory is made world-writable only while the rule is loaded
    // (the rule kills every exec from any such directory on the host)
    use std::os::unix::fs::PermissionsExt;
    let Some((mut h, out)) = start("kill_wwdir", rules, false) else {
        return;
    };
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let script = format!("echo ran > {}", s.marker.display());
    let st = Command::new(&s.sh).args(["-c", &script]).status().unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(st.signal(), Some(libc::SIGKILL), "killed: {st:?}");
    assert!(!s.marker.exists(), "the program never ran its own code");
    let a = alert(&out, "test_kill_wwdir");
    assert_eq!(a["vigil"]["response"]["outcome"], "killed", "{a}");
    assert_eq!(a["vigil"]["response"]["how"], "kernel", "{a}");
    assert_eq!(a["vigil"]["exec"]["world_writable_dir"], true, "{a}");
    // the same binary from the 0755 directory runs
    let st = Command::new(&s.sh).args(["-c", "exit 0"]).status().unwrap();
    assert!(st.success(), "not killed from a 0755 directory: {st:?}");
    let sh = s.sh.clone();
    let us = to_death(&mut h, "exec of the copied shell", |e| {
        e.k.hdr.kind == kind::EXEC
            && e.process
                .as_ref()
                .is_some_and(|p| Path::new(std::ffi::OsStr::from_bytes(&p.exe)) == sh)
    });
    eprintln!("kill latency (kernel, world-writable dir, exec to exit): {us} us");
    assert!(us < 1_000_000, "{us} us");
    drop(h);
}

#[test]
fn kill_rule_on_a_watched_path_kills_at_the_open_in_the_kernel() {
    let s = setup("ko");
    let secret = s.sh.parent().unwrap().join("secret");
    std::fs::write(&secret, "x\n").unwrap();
    let rules = format!(
        "- rule: test_kill_open\n  severity: high\n  action: kill\n  condition: event.action = open and file.path = '{}'\n",
        secret.display()
    );
    let Some((mut h, out)) = start("kill_open", &rules, false) else {
        return;
    };
    // the shell itself opens the file (a redirection), then would write the marker
    let script = format!(
        "read x < {}; echo ran > {}",
        secret.display(),
        s.marker.display()
    );
    let st = Command::new(&s.sh).args(["-c", &script]).status().unwrap();
    assert_eq!(st.signal(), Some(libc::SIGKILL), "killed: {st:?}");
    assert!(!s.marker.exists(), "killed before it went on");
    let a = alert(&out, "test_kill_open");
    assert_eq!(a["vigil"]["response"]["outcome"], "killed", "{a}");
    assert_eq!(a["vigil"]["response"]["how"], "kernel", "{a}");
    assert_eq!(a["file"]["path"], secret.to_str().unwrap(), "{a}");
    // an exact path: a longer name below it is not killed
    let other = format!("{}x", secret.display());
    std::fs::write(&other, "x\n").unwrap();
    let st = Command::new(&s.sh)
        .args(["-c", &format!("read x < {other}")])
        .status()
        .unwrap();
    assert!(st.success(), "{other} is not the watched path: {st:?}");
    let want = secret.clone();
    let us = to_death(&mut h, "open of the watched path", |e| {
        e.k.hdr.kind == kind::OPEN
            && e.k.hdr.flags & vigil_bpf::abi::kill_flags::KILLED != 0
            && matches!(&e.k.body, vigil_bpf::decode::Body::Open { path, .. } if path.as_slice() == want.as_os_str().as_bytes())
    });
    eprintln!("kill latency (kernel, open of a watched path, open to exit): {us} us");
    assert!(us < 1_000_000, "{us} us");
    drop(h);
}

#[test]
fn kill_rule_on_a_denied_port_kills_at_the_connect_in_the_kernel() {
    let s = setup("kc");
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let rules = format!(
        "- rule: test_kill_port\n  severity: high\n  action: kill\n  condition: event.action = connect and destination.port = {port}\n"
    );
    let Some((mut h, out)) = start("kill_port", &rules, false) else {
        return;
    };
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port}; echo ran > {}",
        s.marker.display()
    );
    let st = Command::new("/bin/bash")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert_eq!(st.signal(), Some(libc::SIGKILL), "killed: {st:?}");
    assert!(!s.marker.exists(), "killed before it went on");
    let a = alert(&out, "test_kill_port");
    assert_eq!(a["vigil"]["response"]["outcome"], "killed", "{a}");
    assert_eq!(a["vigil"]["response"]["how"], "kernel", "{a}");
    assert_eq!(a["destination"]["port"], port, "{a}");
    let us = to_death(&mut h, "connect to the denied port", |e| {
        e.k.hdr.kind == kind::CONNECT && e.k.hdr.flags & vigil_bpf::abi::kill_flags::KILLED != 0
    });
    eprintln!("kill latency (kernel, connect to a denied port, connect to exit): {us} us");
    assert!(us < 1_000_000, "{us} us");
    drop(l);
    drop(h);
}
