//! Helpers of the binary's root tests.

#![allow(dead_code)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Root tests run for real; without root they skip, unless CI requires them.
pub fn require_root(name: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        if let Some(log) = std::env::var_os("VIGIL_ROOT_TESTS_LOG").filter(|l| !l.is_empty()) {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(log) {
                let _ = writeln!(f, "{name}");
            }
        }
        return true;
    }
    assert!(
        std::env::var("VIGIL_REQUIRE_ROOT_TESTS").as_deref() != Ok("1"),
        "{name}: needs root and VIGIL_REQUIRE_ROOT_TESTS=1"
    );
    eprintln!("SKIP {name}: needs root");
    false
}

/// Waits for a line containing `what`; panics at the deadline.
pub fn wait_line(rx: &mpsc::Receiver<String>, what: &str, deadline: Duration) -> String {
    let end = Instant::now() + deadline;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(what) => return l,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("no stderr line containing {what:?}");
}
