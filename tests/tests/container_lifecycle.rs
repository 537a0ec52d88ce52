//! Root tests: container lifecycle records, container escapes and user
//! namespace mapping, with real containers (podman + runc, and the unshare
//! recipe) and a real agent running the built-in rules.

mod common;

use common::{Harness, Shared};
use std::sync::Arc;
use std::time::Duration;
use vigil_engine::agent::{RunOptions, Running};
use vigil_engine::config::Config;
use vigil_outputs::JsonLines;
use vigil_rules::Loader;
use vigil_tests::{NsContainer, PodmanContainer};

struct Agent {
    running: Option<Running>,
    out: Shared,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl Agent {
    fn start(test: &str) -> Option<Agent> {
        if !vigil_tests::require_root(test) {
            return None;
        }
        let lock = vigil_tests::bpf_lock();
        let mut cfg = Config::default();
        cfg.agent.events = false;
        cfg.agent.housekeeping_interval_s = 1;
        cfg.sensors.drain_interval_ms = 5;
        let mut l = Loader::new();
        l.add_builtin();
        let (set, report) = l.load();
        assert!(report.errors.is_empty(), "{test}: {:?}", report.errors);
        let out = Shared::default();
        let sink = JsonLines::writer(Box::new(out.clone()), "test");
        let running = Running::spawn(RunOptions {
            sink: Some(Box::new(sink)),
            rules: Some(Arc::new(set)),
            ..RunOptions::new(cfg)
        })
        .unwrap_or_else(|e| panic!("{test}: agent failed to start: {e}"));
        Some(Agent {
            running: Some(running),
            out,
            _lock: lock,
        })
    }

    fn expect(&self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        vigil_tests::wait_for(Duration::from_secs(15), || {
            self.out.records().into_iter().find(|a| pred(a))
        })
        .unwrap_or_else(|| {
            panic!(
                "no record: {what}; records seen: {:#?}",
                self.out
                    .records()
                    .iter()
                    .map(|a| (
                        a["event"]["action"].clone(),
                        a["rule"]["id"].clone(),
                        a["container"]["id"].clone(),
                        a["message"].clone()
                    ))
                    .collect::<Vec<_>>()
            )
        })
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop_and_detach();
        }
    }
}

fn action(r: &serde_json::Value) -> &str {
    r["event"]["action"].as_str().unwrap_or("")
}

#[test]
fn podman_container_start_and_stop_records_name_the_runtime() {
    let Some(agent) = Agent::start("podman_container_start_and_stop_records_name_the_runtime")
    else {
        return;
    };
    let c = PodmanContainer::run("lifecycle", &["/bin/sleep", "30"]).expect("podman run");
    let id = c.id().to_string();
    let start = agent.expect("container-start of the podman container", |r| {
        action(r) == "container-start" && r["container"]["id"] == id.as_str()
    });
    assert_eq!(start["event"]["kind"], "event");
    assert_eq!(start["event"]["type"][0], "start");
    assert_eq!(start["container"]["runtime"], "podman");
    assert_eq!(start["container"]["name"], "vigil-test-lifecycle");
    assert_eq!(
        start["container"]["image"]["name"],
        vigil_tests::PODMAN_IMAGE
    );
    // the entrypoint, not `runc init` (exec'd in the cgroup first)
    assert_eq!(start["process"]["executable"], "/bin/busybox");
    assert_eq!(start["process"]["command_line"], "/bin/sleep 30");
    assert_eq!(start["vigil"]["container"]["seen_at_start"], false);
    let init = start["process"]["pid"].as_u64().unwrap();
    assert_eq!(init, u64::from(c.host_pid()), "the entrypoint is the init");
    drop(c); // podman rm -f: the container's only process is killed
    let stop = agent.expect("container-stop of the podman container", |r| {
        action(r) == "container-stop" && r["container"]["id"] == id.as_str()
    });
    assert_eq!(stop["event"]["type"][0], "end");
    assert_eq!(stop["container"]["runtime"], "podman");
    let d = stop["event"]["duration"].as_u64().expect("event.duration");
    assert!(d > 0 && d < 60_000_000_000, "duration {d} ns");
    // exactly one start and one stop
    let n = |a: &str| {
        agent
            .out
            .records()
            .iter()
            .filter(|r| action(r) == a && r["container"]["id"] == id.as_str())
            .count()
    };
    assert_eq!((n("container-start"), n("container-stop")), (1, 1));
}

#[test]
fn running_container_is_seen_at_start() {
    if !vigil_tests::require_root("running_container_is_seen_at_start") {
        return;
    }
    // started before the agent: found in the /proc seed
    let c = NsContainer::start("seen-at-start", "while :; do sleep 1; done").expect("container");
    let Some(agent) = Agent::start("running_container_is_seen_at_start") else {
        return;
    };
    let id = format!("pidns-{}", c.pidns_inode());
    let start = agent.expect("seen-at-start record", |r| {
        action(r) == "container-start" && r["container"]["id"] == id.as_str()
    });
    assert_eq!(start["vigil"]["container"]["seen_at_start"], true);
    assert_eq!(start["container"]["name"], "vigil-test-seen-at-start");
    assert_eq!(start["container"]["runtime"], "unshare");
    assert_eq!(start["process"]["pid"], c.host_pid());
    drop(c);
    agent.expect("stop of the seeded container", |r| {
        action(r) == "container-stop" && r["container"]["id"] == id.as_str()
    });
}

/// Runs `vg-trigger in-container` as a task of container `a`.
fn in_container(a: &NsContainer, args: &[&str]) -> (u32, i32) {
    let cg = a.cgroup_path().display().to_string();
    let init = a.host_pid().to_string();
    let mut full = vec!["in-container", cg.as_str(), init.as_str()];
    full.extend_from_slice(args);
    let (_, out) = common::trigger(&full);
    let mut f = out.split_whitespace();
    let pid = f.next().and_then(|p| p.parse().ok()).expect("child pid");
    let ret = f.next().and_then(|p| p.parse().ok()).expect("ret");
    (pid, ret)
}

#[test]
fn escapes_from_a_container_name_both_sides() {
    let Some(agent) = Agent::start("escapes_from_a_container_name_both_sides") else {
        return;
    };
    let a = NsContainer::start("esc-a", "while :; do sleep 1; done").expect("container a");
    let b = NsContainer::start("esc-b", "while :; do sleep 1; done").expect("container b");
    let (ida, idb) = (
        format!("pidns-{}", a.pidns_inode()),
        format!("pidns-{}", b.pidns_inode()),
    );
    for (id, name) in [(&ida, "vigil-test-esc-a"), (&idb, "vigil-test-esc-b")] {
        let s = agent.expect("start of the namespaced container", |r| {
            action(r) == "container-start" && r["container"]["id"] == id.as_str()
        });
        assert_eq!(s["container"]["name"], name);
        assert_eq!(s["container"]["runtime"], "unshare");
        assert_eq!(s["vigil"]["cgroup"]["path"], format!("/{name}"));
    }
    let escape = |pid: u32, rule: &str| {
        agent.expect(rule, |r| {
            r["rule"]["id"] == rule && r["process"]["pid"].as_u64() == Some(u64::from(pid))
        })
    };

    // 1. setns with a namespace fd of container b (its net namespace)
    let (pid, ret) = in_container(&a, &["setns", &format!("/proc/{}/ns/net", b.host_pid())]);
    assert_eq!(ret, 0, "setns into b's net namespace");
    let al = escape(pid, "setns_from_container");
    let e = &al["vigil"]["escape"];
    assert_eq!(e["type"], "setns");
    assert_eq!(e["source"]["container"]["id"], ida.as_str());
    assert_eq!(e["source"]["container"]["name"], "vigil-test-esc-a");
    assert_eq!(e["target"]["type"], "container");
    assert_eq!(e["target"]["container"]["id"], idb.as_str());
    assert_eq!(e["target"]["container"]["name"], "vigil-test-esc-b");
    assert_eq!(e["target"]["ns"], b.netns_inode());
    let msg = al["message"].as_str().unwrap();
    assert!(
        msg.contains("vigil-test-esc-a") && msg.contains("vigil-test-esc-b"),
        "{msg}"
    );

    // 2. setns into the host's mount namespace
    let host_mnt = format!("/proc/{}/ns/mnt", std::process::id());
    let (pid, ret) = in_container(&a, &["setns", &host_mnt]);
    assert_eq!(ret, 0, "setns into the host's mount namespace");
    let al = escape(pid, "setns_from_container");
    assert_eq!(al["vigil"]["escape"]["target"]["type"], "host");
    assert_eq!(al["vigil"]["escape"]["target"]["container"]["name"], "host");
    assert_eq!(
        al["vigil"]["escape"]["source"]["container"]["id"],
        ida.as_str()
    );

    // 3. setns through a pidfd of b's init
    let (pid, ret) = in_container(&a, &["setns-pidfd", &b.host_pid().to_string()]);
    assert_eq!(ret, 0, "setns through a pidfd");
    let al = escape(pid, "setns_from_container");
    assert_eq!(al["vigil"]["namespace"]["target_pid"], b.host_pid());
    assert_eq!(
        al["vigil"]["escape"]["target"]["container"]["id"],
        idb.as_str()
    );
    assert_eq!(al["vigil"]["namespace"]["target"], b.mntns_inode());

    // 4. a write into b's filesystem through /proc/<b>/root
    let marker = vigil_tests::unique_marker("procroot");
    let (pid, ret) = in_container(
        &a,
        &[
            "write-at",
            &format!("/proc/{}/root/tmp", b.host_pid()),
            &marker,
        ],
    );
    assert_eq!(ret, 0, "write through /proc/PID/root");
    let al = escape(pid, "proc_root_write_from_container");
    assert_eq!(al["vigil"]["escape"]["type"], "proc-root-write");
    assert_eq!(
        al["vigil"]["escape"]["target"]["container"]["id"],
        idb.as_str()
    );
    assert_eq!(al["vigil"]["escape"]["target"]["ns"], b.mntns_inode());
    // the canonical path in b's mount namespace: unshare --root chroots
    // into the overlay, so that namespace's root is the host's /
    let path = al["file"]["path"].as_str().unwrap();
    assert_eq!(path, format!("{}/tmp/{marker}", b.root().display()));
    assert_eq!(al["vigil"]["open"]["name"], marker.as_str());

    // 5. a write into the host's /tmp through /proc/<host pid>/root
    let host_file = std::path::PathBuf::from(format!("/tmp/{marker}-host"));
    let (pid, ret) = in_container(
        &a,
        &[
            "write-at",
            &format!("/proc/{}/root/tmp", std::process::id()),
            &format!("{marker}-host"),
        ],
    );
    let written = std::fs::read_to_string(&host_file);
    let _ = std::fs::remove_file(&host_file);
    assert_eq!(ret, 0, "write to the host through /proc/PID/root");
    assert_eq!(written.ok().as_deref(), Some("vigil\n"));
    let al = escape(pid, "proc_root_write_from_container");
    assert_eq!(al["vigil"]["escape"]["target"]["type"], "host");

    // control: entering a container from the host (nsenter-style) is no escape
    let (_, out) = common::trigger(&["setns", &format!("/proc/{}/ns/net", b.host_pid())]);
    assert!(out.is_empty());
    std::thread::sleep(Duration::from_millis(300));
    let from_host = agent
        .out
        .records()
        .iter()
        .filter(|r| r["rule"]["id"] == "setns_from_container")
        .count();
    assert_eq!(from_host, 3, "only the three setns from a container alert");

    drop(a);
    agent.expect("stop of container a", |r| {
        action(r) == "container-stop" && r["container"]["id"] == ida.as_str()
    });
    drop(b);
}

#[test]
fn uid_in_a_user_namespace_is_mapped() {
    let Some(mut h) = Harness::start("uid_in_a_user_namespace_is_mapped", |_| {}) else {
        return;
    };
    let marker = vigil_tests::unique_marker("userns");
    // nobody on the host, root inside its own user namespace
    // The mapping is read from /proc/PID/uid_map when the exec is
    // enriched, so the process stays (the shell becomes `sleep` in the
    // same pid) until its exec record is seen, however far behind the
    // pipeline is.
    let mut child = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["unshare", "-U", "-r", "/bin/sh", "-c"])
        .arg(format!(": {marker}; exec sleep 20"))
        .spawn()
        .expect("setpriv");
    let e = h.expect("exec of the shell in the user namespace", |e| {
        // the shell (setpriv and unshare have the marker in argv too)
        e.k.hdr.kind == vigil_bpf::abi::kind::EXEC
            && e.k.hdr.uid == 65534
            && e.process.as_ref().is_some_and(|p| {
                p.args.first().is_some_and(|a| a == b"/bin/sh")
                    && p.cmdline
                        .windows(marker.len())
                        .any(|w| w == marker.as_bytes())
            })
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(e.k.hdr.uid, 65534, "user.id is the host uid");
    let u = e.ns_user.as_ref().expect("namespace user");
    assert_eq!(u.id, Some(0), "uid 0 inside");
    assert_eq!(u.name.as_deref(), Some("root"), "named from its passwd");
    let json: serde_json::Value =
        serde_json::from_slice(&vigil_engine::ecs::encode(&e, "h", "event")).unwrap();
    assert_eq!(json["user"]["id"], 65534);
    assert_eq!(json["user"]["name"], "nobody");
    assert_eq!(json["vigil"]["user"]["ns"]["id"], 0);
    assert_eq!(json["vigil"]["user"]["ns"]["name"], "root");
    // a host process has neither
    let (pid, _) = common::trigger(&["exit", "0"]);
    let host = h.expect("a host process", |e| e.k.hdr.pid == pid);
    assert!(host.ns_user.is_none());
}
