//! Root tests: executable hashes. The SHA-256 in an exec event equals
//! `sha256sum` of the binary, for a host binary and for one inside a
//! container root at the same path with other content (read through
//! `/proc/PID/root`); a rule on the hash fires; a known-bad hash list sets
//! `vigil.hash.known_bad` and its rule fires.

mod common;

use common::{Harness, Shared, TempDir};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use vigil_bpf::abi::kind;
use vigil_tests::NsContainer;

fn sha256sum(p: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("sha256sum");
    assert!(out.status.success(), "sha256sum {}", p.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a hash")
        .to_string()
}

/// The same path on the host and in the container.
const SAME: &str = "/tmp/vigil-hash-same/prog";

#[test]
fn exec_hash_equals_sha256sum_on_host_and_in_container() {
    if !vigil_tests::require_root("exec_hash") {
        return;
    }
    let marker = vigil_tests::unique_marker("hash");
    // host binary: a copy of true(1) with the marker appended (still runs)
    let dir = TempDir(Path::new(SAME).parent().unwrap().to_path_buf());
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut bin = std::fs::read("/bin/true").expect("read /bin/true");
    bin.extend_from_slice(format!("\nhost-{marker}\n").as_bytes());
    std::fs::write(SAME, &bin).unwrap();
    std::fs::set_permissions(SAME, std::fs::Permissions::from_mode(0o755)).unwrap();
    let host_hash = sha256sum(Path::new(SAME));

    // the list of known-bad hashes holds the container's hash: written
    // after the container made its binary, read at agent start
    let list_dir = TempDir(std::env::temp_dir().join(format!("vigil-hashlist-{marker}")));
    std::fs::create_dir_all(&list_dir.0).unwrap();
    let list = list_dir.0.join("bad.sha256");

    // container: busybox copied to the same path, another marker appended
    let script = format!(
        "mkdir -p /tmp/vigil-hash-same && cp /bin/busybox {SAME} && echo ctr-{marker} >> {SAME} && chmod 755 {SAME} && touch /ready; while :; do {SAME} true; sleep 0.1; done"
    );
    let c = NsContainer::start("hash", &script).expect("start namespaced container");
    let in_root = c.root().join(SAME.trim_start_matches('/'));
    assert!(
        vigil_tests::wait_for(Duration::from_secs(10), || c
            .root()
            .join("ready")
            .exists()
            .then_some(()))
        .is_some(),
        "container prepared its binary; log: {}",
        c.log()
    );
    let ctr_hash = sha256sum(&in_root);
    assert_ne!(host_hash, ctr_hash, "different content at the same path");
    std::fs::write(&list, format!("# test list\n{ctr_hash}  {SAME}\n")).unwrap();

    let rules = format!(
        "- rule: test_hash_host\n  severity: high\n  condition: event.action = exec and process.hash.sha256 = '{host_hash}'\n  output: host binary by hash\n- rule: test_hash_known_bad\n  severity: high\n  condition: event.action = exec and vigil.hash.known_bad = true\n  output: known-bad hash %process.hash.sha256\n"
    );
    let mut l = vigil_rules::Loader::new();
    l.add_source("hash-test.yaml", &rules);
    let (set, report) = l.load();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(set.len(), 2);
    let out = Shared::default();
    let sink = vigil_outputs::JsonLines::writer(Box::new(out.clone()), "test");
    let list2 = list.clone();
    let Some(mut h) = Harness::start_with_sink(
        "exec_hash",
        move |cfg| {
            cfg.hash.wait_ms = 2000;
            cfg.hash.known_bad_file = Some(list2);
        },
        Box::new(sink),
        Arc::new(set),
    ) else {
        return;
    };
    let st = Command::new(SAME).status().expect("run host binary");
    assert!(st.success());
    let same = SAME.as_bytes();
    let host_ev = h.expect("exec of the host binary", |e| {
        e.k.hdr.kind == kind::EXEC
            && e.k.hdr.mntns != c.mntns_inode()
            && e.process.as_ref().is_some_and(|p| &p.exe[..] == same)
    });
    let got = host_ev.process.as_ref().unwrap().hash.as_deref();
    assert_eq!(
        got,
        Some(host_hash.as_str()),
        "host binary hash (skipped: {:?})",
        host_ev.hash_skipped
    );
    let ctr_ev = h.expect_within(
        "exec of the container binary",
        Duration::from_secs(10),
        |e| {
            e.k.hdr.kind == kind::EXEC
                && e.k.hdr.mntns == c.mntns_inode()
                && e.process.as_ref().is_some_and(|p| &p.exe[..] == same)
        },
    );
    let got = ctr_ev.process.as_ref().unwrap().hash.as_deref();
    assert_eq!(
        got,
        Some(ctr_hash.as_str()),
        "container binary hash (skipped: {:?}, pending: {})",
        ctr_ev.hash_skipped,
        ctr_ev.hash_pending
    );
    assert!(ctr_ev.hash_known_bad, "the container's hash is on the list");
    assert!(!host_ev.hash_known_bad, "the host's is not");

    // the alerts: written JSON carries the hash fields
    let alerts = |id: &str| {
        out.records()
            .into_iter()
            .filter(|r| r["event"]["kind"] == "alert" && r["rule"]["id"] == id)
            .collect::<Vec<_>>()
    };
    let a = vigil_tests::wait_for(Duration::from_secs(5), || {
        alerts("test_hash_host").into_iter().next()
    })
    .expect("the rule on the host binary's hash fired");
    assert_eq!(a["process"]["hash"]["sha256"], host_hash.as_str());
    assert_eq!(a["process"]["executable"], SAME);
    let b = vigil_tests::wait_for(Duration::from_secs(5), || {
        alerts("test_hash_known_bad").into_iter().next()
    })
    .expect("the known-bad list rule fired");
    assert_eq!(b["process"]["hash"]["sha256"], ctr_hash.as_str());
    assert_eq!(b["vigil"]["hash"]["known_bad"], true);
    assert!(
        alerts("test_hash_known_bad")
            .iter()
            .all(|r| r["process"]["hash"]["sha256"] == ctr_hash.as_str()),
        "only the container's binary is known-bad"
    );
    // the exec event records carry the parent's hash too, from the table
    // (the container's loop shell is busybox, hashed when seen as a parent)
    let busybox = sha256sum(&c.root().join("bin/busybox"));
    let with_parent = h.expect("a container exec with its parent's hash", |e| {
        e.k.hdr.kind == kind::EXEC
            && e.k.hdr.mntns == c.mntns_inode()
            && e.process.as_ref().is_some_and(|p| &p.exe[..] == same)
            && e.ancestors
                .first()
                .is_some_and(|a| a.hash.as_deref() == Some(busybox.as_str()))
    });
    assert_eq!(
        with_parent.process.as_ref().unwrap().hash.as_deref(),
        Some(ctr_hash.as_str())
    );
    let summary = h.stop();
    assert!(
        summary.pipeline.hash.hashed >= 2,
        "{:?}",
        summary.pipeline.hash
    );
    assert!(
        summary.pipeline.hash.cache_hits >= 1,
        "the loop's repeated execs hit the cache: {:?}",
        summary.pipeline.hash
    );
    assert!(
        summary.pipeline.hash.exec_key_hits >= 1,
        "repeated execs are answered from the exec record's identity, without opening the file: {:?}",
        summary.pipeline.hash
    );
    drop(c);
}
