//! Root tests: container attribution. A process in new namespaces inside its
//! own cgroup2 child is attributed to that cgroup and pid namespace; a real
//! podman container gets `container.id` equal to podman's id.

mod common;

use common::Harness;
use std::time::Duration;
use vigil_bpf::abi::kind;
use vigil_bpf::decode::Body;
use vigil_tests::{NsContainer, PodmanContainer};

#[test]
fn namespaced_process_is_attributed_to_its_cgroup_and_pid_namespace() {
    let Some(mut h) = Harness::start("ns_container", |_| {}) else {
        return;
    };
    let marker = vigil_tests::unique_marker("ns");
    // the container opens a file below /etc (a reported prefix) in a loop
    let script = format!("while :; do cat /etc/{marker} 2>/dev/null; sleep 0.05; done");
    let c = NsContainer::start("attrib", &script).expect("start namespaced container");
    let want_path = format!("/etc/{marker}");
    let e = h.expect_within("open inside the container", Duration::from_secs(10), |e| {
        e.k.hdr.kind == kind::OPEN && e.file_path.as_deref() == Some(want_path.as_bytes())
    });
    assert_eq!(
        e.k.hdr.cgroup_id,
        c.cgroup_id(),
        "cgroup id is the container's cgroup2 dir inode"
    );
    assert_eq!(e.k.hdr.pidns, c.pidns_inode(), "pid namespace");
    assert_eq!(e.k.hdr.mntns, c.mntns_inode(), "mount namespace");
    assert_eq!(e.k.hdr.netns, c.netns_inode(), "net namespace");
    assert!(
        e.k.hdr.ns_pid < 100,
        "pid inside the namespace is small, got {}",
        e.k.hdr.ns_pid
    );
    assert_ne!(
        e.k.hdr.ns_pid, e.k.hdr.pid,
        "host pid differs from the namespaced pid"
    );
    // the path is relative to the container's root, as the container sees it
    let Body::Open { info, .. } = &e.k.body else {
        panic!()
    };
    assert!(
        info.ret < 0,
        "the marker file does not exist in the container"
    );
    let cg = e.cgroup_path.as_deref().expect("cgroup path resolved");
    assert!(cg.ends_with(&c.cgroup_path_relative()), "cgroup path {cg}");
    // the exec of cat inside the container is attributed the same way
    // (the wrapper's exec of unshare(1) is in the cgroup but still in the
    // host pid namespace; cat runs inside both)
    let x = h.expect("exec of cat inside the container", |x| {
        x.k.hdr.kind == kind::EXEC
            && x.k.hdr.cgroup_id == c.cgroup_id()
            && x.k.hdr.pidns == c.pidns_inode()
            && x.process
                .as_ref()
                .is_some_and(|p| p.args.first().is_some_and(|a| a == b"cat"))
    });
    // the executable path is the one the container sees (its root is the
    // overlay), like d_path, not the host path of the overlay mount
    assert_eq!(
        x.process.as_ref().unwrap().exe[..],
        b"/bin/busybox"[..],
        "container-relative executable"
    );
    assert!(
        x.ancestors.iter().any(|a| a.pid == c.host_pid()),
        "container init is an ancestor"
    );
    drop(c);
}

#[test]
fn podman_container_gets_podmans_container_id() {
    let Some(mut h) = Harness::start("podman_container", |_| {}) else {
        return;
    };
    let marker = vigil_tests::unique_marker("pod");
    let script = format!("while :; do cat /etc/{marker} 2>/dev/null; sleep 0.05; done");
    let c = PodmanContainer::run("attrib", &["/bin/sh", "-c", &script]).expect("podman run");
    let want_path = format!("/etc/{marker}");
    let e = h.expect_within(
        "open inside the podman container",
        Duration::from_secs(20),
        |e| {
            e.k.hdr.kind == kind::OPEN
                && e.file_path.as_deref() == Some(want_path.as_bytes())
                && e.process.as_ref().is_some_and(|p| p.container.is_some())
        },
    );
    let ctr = e.process.as_ref().unwrap().container.as_ref().unwrap();
    assert_eq!(ctr.id, c.id(), "container.id equals podman's id");
    assert_eq!(ctr.runtime, "podman");
    // Name and image from podman's state (containers.json).
    let meta = e
        .container_meta
        .as_deref()
        .expect("podman's state was read");
    assert_eq!(meta.name.as_deref(), Some("vigil-test-attrib"));
    assert_eq!(
        meta.image.as_deref(),
        Some("localhost/vigil-test-busybox:latest")
    );
    let json: serde_json::Value =
        serde_json::from_slice(&vigil_engine::ecs::encode(&e, "h", "event")).unwrap();
    assert_eq!(json["container"]["name"], "vigil-test-attrib");
    assert_eq!(
        json["container"]["image"]["name"],
        "localhost/vigil-test-busybox:latest"
    );
    drop(c);
}
