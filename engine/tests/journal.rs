//! The agent's messages as journald reads them, as root: with stderr a
//! stream whose device and inode `JOURNAL_STREAM` names (what systemd gives
//! a service), every line `vigil run` writes starts with a level prefix
//! (`<6>` info, `<4>` warning, `<3>` error) and then `vigil: `; the same run
//! without the variable writes the same lines without prefixes.

use std::io::{BufRead, BufReader};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
use common::{require_root, stop_cleanly};

/// A pipe: (read end, write end, "DEV:INODE" of the write end).
fn pipe() -> (OwnedFd, OwnedFd, String) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 into a two-element array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just created and are owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let st = std::fs::metadata(format!("/proc/self/fd/{}", fds[1])).unwrap();
    use std::os::unix::fs::MetadataExt;
    (r, w, format!("{}:{}", st.dev(), st.ino()))
}

/// Runs the agent with stderr on a pipe (and `JOURNAL_STREAM` naming it
/// when `journal`), stops it once it is ready and a refused output has
/// logged its warning; returns every stderr line.
fn run(journal: bool) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("vigil-journal-{}-{journal}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (r, w, id) = pipe();
    let mut cmd = common::vigil();
    cmd.args(["run", "--no-baselines", "-o"])
        .arg(dir.join("out.json"))
        .args(["-o", "syslog+tcp://127.0.0.1:1?format=json"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(w))
        .env_remove("JOURNAL_STREAM");
    if journal {
        cmd.env("JOURNAL_STREAM", &id);
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd); // closes the parent's write end: EOF when the agent exits
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(std::fs::File::from(r))
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l.clone());
        }
    });
    let mut lines = Vec::new();
    let end = Instant::now() + Duration::from_secs(90);
    let mut ready = false;
    let mut refused = false;
    while !(ready && refused) && Instant::now() < end {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            ready |= l.contains("vigil: ready");
            refused |= l.contains("syslog+tcp://127.0.0.1:1") && l.contains("cannot connect");
            lines.push(l);
        }
    }
    assert!(
        ready && refused,
        "no ready or refused-output line: {lines:?}"
    );
    stop_cleanly(&mut child, Duration::from_secs(60));
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let _ = std::fs::remove_dir_all(&dir);
    lines
}

#[test]
fn agent_lines_carry_journald_level_prefixes_only_on_the_journal_stream() {
    if !require_root("agent_lines_carry_journald_level_prefixes_only_on_the_journal_stream") {
        return;
    }
    let journal = run(true);
    for l in &journal {
        let ok = ["<3>", "<4>", "<6>"].iter().any(|p| l.starts_with(p));
        assert!(ok, "a line without a level prefix: {l:?}");
    }
    let find = |p: &str| journal.iter().any(|l| l.starts_with(p));
    assert!(find("<6>vigil: ready: pipeline running"), "{journal:?}");
    assert!(find("<6>vigil: ran "), "the summary is info: {journal:?}");
    // The summary's table rows are kept as they are (tools parse them).
    assert!(
        journal
            .iter()
            .any(|l| l.starts_with("<6>sensor ") && l.contains("dropped")),
        "{journal:?}"
    );
    assert!(
        find("<4>vigil: output syslog+tcp://127.0.0.1:1: cannot connect"),
        "{journal:?}"
    );

    // Not the journal: the same lines, no prefix.
    let plain = run(false);
    for l in &plain {
        assert!(!l.starts_with('<'), "{l:?}");
    }
    assert!(
        plain
            .iter()
            .any(|l| l.starts_with("sensor ") && l.contains("dropped"))
    );
    assert!(
        plain
            .iter()
            .any(|l| l.starts_with("vigil: ready: pipeline running"))
    );
}
