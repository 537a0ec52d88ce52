//! Helpers of the binary's root tests.

#![allow(dead_code)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Root tests run for real; without root they skip, unless CI requires them.
pub fn require_root(name: &str) -> bool {
    vigil_rootgate::require_root(name)
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
