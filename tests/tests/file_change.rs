//! File changes beyond open, as root: each operation on a marker path
//! produces one event with the canonical path.

use std::path::PathBuf;
use vigil_bpf::decode::Body;
use vigil_engine::ecs;
use vigil_engine::enrich::Event;

mod common;
use common::{Harness, TempDir};

fn op_of(e: &Event) -> Option<&'static str> {
    match &e.k.body {
        Body::FChange { info, .. } => Some(ecs::fchange_op(info.syscall).1),
        _ => None,
    }
}

#[test]
fn file_changes_are_reported_with_canonical_paths() {
    let dir = TempDir(PathBuf::from(format!(
        "/run/{}",
        vigil_tests::unique_marker("vigil-fchange")
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let d = dir.0.display().to_string();
    let Some(mut h) = Harness::start("file_changes_are_reported_with_canonical_paths", |c| {
        c.sensors.report_paths.push(format!("{d}/"));
    }) else {
        return;
    };
    // The agent runs in this process (its own events are never reported):
    // the changes are made by child processes (coreutils), matched by path.
    let p = |n: &str| dir.0.join(n);
    let s = |n: &str| p(n).display().to_string();
    let run = |args: &[&str]| {
        let st = std::process::Command::new(args[0])
            .args(&args[1..])
            .status()
            .unwrap();
        assert!(st.success() || args[0] == "rm", "{args:?}");
    };
    std::fs::write(p("a"), b"x").unwrap();
    let at = |op: &'static str, path: String| {
        move |e: &Event| op_of(e) == Some(op) && e.file_path.as_deref() == Some(path.as_bytes())
    };

    run(&["mv", &s("a"), &s("b")]);
    let e = h.expect("rename", at("rename", s("b")));
    assert_eq!(e.file_path2.as_deref(), Some(s("a").as_bytes()));
    assert_eq!(
        e.process.as_ref().map(|p| p.name().to_vec()),
        Some(b"mv".to_vec())
    );

    run(&["chmod", "4755", &s("b")]);
    let e = h.expect("chmod", at("chmod", s("b")));
    match &e.k.body {
        Body::FChange { info, .. } => assert_eq!(info.mode & 0o7777, 0o4755),
        _ => unreachable!(),
    }

    run(&["chown", "0:0", &s("b")]);
    h.expect("chown", at("chown", s("b")));

    run(&["truncate", "-s", "0", &s("b")]);
    h.expect("truncate", at("truncate", s("b")));

    run(&["ln", &s("b"), &s("c")]);
    let e = h.expect("link", at("link", s("c")));
    assert_eq!(e.file_path2.as_deref(), Some(s("b").as_bytes()));

    // relative names are joined with the process's cwd
    let st = std::process::Command::new("ln")
        .args(["-s", "b", "d"])
        .current_dir(&dir.0)
        .status()
        .unwrap();
    assert!(st.success());
    let e = h.expect("symlink", at("symlink", s("d")));
    assert_eq!(
        e.file_path2.as_deref(),
        Some(&b"b"[..]),
        "the link's target text"
    );

    run(&["rm", &s("c")]);
    h.expect("unlink", at("unlink", s("c")));

    std::fs::create_dir(p("sub")).unwrap();
    run(&["rmdir", &s("sub")]);
    let e = h.expect("rmdir", |e| {
        matches!(op_of(e), Some("rmdir" | "unlink"))
            && e.file_path.as_deref() == Some(s("sub").as_bytes())
    });
    assert_eq!(ecs::classify_event(&e).1, "deletion");

    // a relative rename: both names are joined with the cwd
    std::fs::write(p("r1"), b"x").unwrap();
    let st = std::process::Command::new("mv")
        .args(["r1", "r2"])
        .current_dir(&dir.0)
        .status()
        .unwrap();
    assert!(st.success());
    let e = h.expect("relative rename", at("rename", s("r2")));
    assert_eq!(e.file_path2.as_deref(), Some(s("r1").as_bytes()));

    // a relative old name with an absolute new one
    std::fs::write(p("r3"), b"x").unwrap();
    let st = std::process::Command::new("mv")
        .args(["r3", &s("r4")])
        .current_dir(&dir.0)
        .status()
        .unwrap();
    assert!(st.success());
    let e = h.expect("mixed rename", at("rename", s("r4")));
    assert_eq!(e.file_path2.as_deref(), Some(s("r3").as_bytes()));

    // a failed change is reported with its error
    run(&["rm", &s("missing")]);
    let e = h.expect("failed unlink", at("unlink", s("missing")));
    match &e.k.body {
        Body::FChange { info, .. } => assert_eq!(info.ret, -i64::from(libc::ENOENT)),
        _ => unreachable!(),
    }

    run(&["mkdir", &s("newdir")]);
    let e = h.expect("mkdir", at("mkdir", s("newdir")));
    assert_eq!(ecs::classify_event(&e).1, "creation");
    run(&["mknod", &s("fifo"), "p"]);
    let e = h.expect("mknod", at("mknod", s("fifo")));
    match &e.k.body {
        Body::FChange { info, .. } => assert_eq!(ecs::file_type_name(info.mode), "fifo"),
        _ => unreachable!(),
    }

    // the first write per open of a file opened for writing, and only it
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 3>{}; echo a >&3; echo b >&3; echo c >&3",
            s("w")
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let e = h.expect("first write", at("write", s("w")));
    match &e.k.body {
        Body::FChange { info, .. } => {
            assert_eq!(info.length, 2, "the first write is `a\\n`");
            assert_eq!(ecs::fchange_syscall(info.syscall), "write");
        }
        _ => unreachable!(),
    }
    h.collect_for(std::time::Duration::from_millis(300));
    let writes = h
        .seen
        .iter()
        .filter(|e| op_of(e) == Some("write") && e.file_path.as_deref() == Some(s("w").as_bytes()))
        .count();
    assert_eq!(writes, 1, "three writes on one open: one record");

    // exactly one event per operation on b/c/d (dedup aside, nothing doubled)
    let n = h
        .seen
        .iter()
        .filter(|e| op_of(e) == Some("rename") && e.file_path.as_deref() == Some(s("b").as_bytes()))
        .count();
    assert_eq!(n, 1);
}
