//! Root test of the real binary: started by a parent that blocks SIGINT,
//! SIGTERM and SIGHUP (a blocked mask survives exec) and ignores SIGINT (a
//! shell's background job), the agent still reloads on SIGHUP and stops
//! cleanly on SIGTERM (drain, summary, exit 0). The SIGHUP is sent as soon
//! as "sensors live" is printed, before the event loop runs: it is kept and
//! acted on once the loop starts, not lost.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::{require_root, spawn_with_stderr, wait_line};

#[test]
fn agent_started_with_blocked_signals_reloads_and_stops_cleanly() {
    if !require_root("agent_started_with_blocked_signals_reloads_and_stops_cleanly") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vigil-test-signals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("vigil.toml");
    std::fs::write(&cfg, "[rules]\nbuiltin = true\n").unwrap();
    let mut cmd = common::vigil();
    cmd.arg("--config")
        .arg(&cfg)
        .args(["run", "--no-baselines", "-o"])
        .arg(dir.join("alerts.json"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (sigemptyset, sigaddset,
    // pthread_sigmask, signal) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            Ok(())
        });
    }
    let (mut child, rx) = spawn_with_stderr(&mut cmd);
    let pid = child.id() as i32;
    let result = std::panic::catch_unwind(|| {
        wait_line(&rx, "sensors live", Duration::from_secs(30));
        // SAFETY: kill(2) on our child.
        unsafe { libc::kill(pid, libc::SIGHUP) };
        wait_line(&rx, "rules reloaded", Duration::from_secs(10));
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        wait_line(&rx, "detaching sensors", Duration::from_secs(30));
    });
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > end {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    let status = status.expect("the agent did not exit within 30 s of SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
