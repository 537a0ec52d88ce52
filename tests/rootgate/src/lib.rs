//! The one gate every root test of the workspace passes through.
//!
//! As root (euid 0) [`require_root`] appends the test's name and a newline
//! to the file named by `$VIGIL_ROOT_TESTS_LOG` (when set;
//! `scripts/test.sh` counts its lines and prints `root tests executed: N`)
//! and returns true. Without root it panics when
//! `VIGIL_REQUIRE_ROOT_TESTS=1` (a skipped root test is a CI failure) and
//! otherwise prints `SKIP <name>: needs root` to stderr and returns false.
//! [`require`] applies the same rule to any other prerequisite a root test
//! has (a daemon CI installs, IPv6 on loopback, ...).
//!
//! [`runc`] holds the one runc bundle helper the container root tests
//! share, [`bpf`] the one bpf(2) call they make themselves.

pub mod bpf;
pub mod runc;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

/// Whether skipping is forbidden (`VIGIL_REQUIRE_ROOT_TESTS=1`).
pub fn strict() -> bool {
    std::env::var("VIGIL_REQUIRE_ROOT_TESTS").as_deref() == Ok("1")
}

/// Whether the root test `test_name` may run (see the crate docs).
///
/// ```no_run
/// if !vigil_rootgate::require_root("my_test") {
///     return;
/// }
/// ```
pub fn require_root(test_name: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return require(
            test_name,
            "needs root (euid 0); run the suite as root (sudo bash scripts/test.sh)",
            false,
        );
    }
    if let Some(log) = std::env::var_os("VIGIL_ROOT_TESTS_LOG").filter(|l| !l.is_empty()) {
        // One write of the whole line: concurrent appenders never interleave.
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(format!("{test_name}\n").as_bytes()))
            .unwrap_or_else(|e| {
                panic!(
                    "{test_name}: cannot record the root test in VIGIL_ROOT_TESTS_LOG={}: {e}",
                    Path::new(&log).display()
                )
            });
    }
    true
}

/// A prerequisite of `test_name` other than root: returns `ok`; when it is
/// false, panics under `VIGIL_REQUIRE_ROOT_TESTS=1` and otherwise prints
/// `SKIP <name>: <why>`.
pub fn require(test_name: &str, why: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if strict() {
        panic!("{test_name}: {why}, and VIGIL_REQUIRE_ROOT_TESTS=1 forbids skipping it");
    }
    eprintln!("SKIP {test_name}: {why}");
    false
}
