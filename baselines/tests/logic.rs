//! Learning, promotion, loss, anomalies, modes and merges on constructed
//! observations (no storage).

mod util;

use std::net::IpAddr;

use util::*;
use vigil_baselines::{
    Access, Anomaly, Baselines, Behaviour, Kind, Mode, SYSCALL_WORDS, Transport, syscall_number,
};

/// A typical nginx: config read, a log written, a helper spawned, one
/// upstream, one port.
fn learn_nginx(b: &mut Baselines, t: i64, rounds: i64) -> i64 {
    let s = host("/usr/sbin/nginx");
    let mut t = t;
    for i in 0..rounds {
        t += S;
        let pid_stat: &'static str = Box::leak(format!("/proc/{}/stat", 1000 + i).into_boxed_str());
        let batch = [
            open("/etc/nginx/nginx.conf", Access::READ),
            open("/var/log/nginx/access.log", Access::WRITE),
            open(pid_stat, Access::READ),
            spawn("/usr/bin/cat"),
            connect("10.0.0.5", 8080),
            Behaviour::Listen {
                port: 80,
                transport: Transport::Tcp,
            },
            Behaviour::Capability { cap: 10 },
        ];
        for bh in batch {
            let a = b.observe(&obs(s, t, bh));
            assert!(a.is_empty(), "learning never reports: {a:?}");
        }
    }
    t
}

#[test]
fn learning_records_generalised_sets() {
    let mut b = Baselines::in_memory(cfg());
    learn_nginx(&mut b, T0, 20);
    let d = b.show(NGINX_KEY).unwrap();
    assert_eq!(d.mode, Mode::Learning);
    assert_eq!(d.observations, 140);
    let files: Vec<(&str, Option<&str>, u64)> = d
        .file
        .iter()
        .map(|i| (i.item.as_str(), i.access.as_deref(), i.count))
        .collect();
    assert_eq!(
        files,
        vec![
            ("/etc/nginx/nginx.conf", Some("r"), 20),
            ("/proc/*/stat", Some("r"), 20),
            ("/var/log/nginx/access.log", Some("w"), 20),
        ]
    );
    assert_eq!(d.spawn[0].item, "/usr/bin/cat");
    assert_eq!(d.spawn[0].first_seen_ns, T0 + S);
    assert_eq!(d.spawn[0].last_seen_ns, T0 + 20 * S);
    assert_eq!(d.connect[0].item, "tcp/10.0.0.5:8080");
    assert_eq!(d.listen[0].item, "tcp/80");
    assert_eq!(d.capability[0].item, "CAP_NET_BIND_SERVICE");
    let l = b.list();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].counts, [1, 3, 1, 1, 0, 1, 0, 0]);
}

#[test]
fn auto_promotion_needs_quiet_period_and_observations() {
    let mut b = Baselines::in_memory(cfg());
    // 1 round = 7 observations: too few even when quiet.
    let t = learn_nginx(&mut b, T0, 1);
    assert!(
        b.tick(t + 3600 * S).unwrap().is_empty(),
        "7 < 10 observations"
    );
    learn_nginx(&mut b, t, 2);
    // Everything was new in the first round (at T0 + 1 s); 21 observations
    // now, but only 59 s quiet.
    let last_new = T0 + S;
    assert!(b.tick(last_new + 59 * S).unwrap().is_empty());
    // Something new resets the quiet period.
    let t2 = last_new + 30 * S;
    b.observe(&obs(
        host("/usr/sbin/nginx"),
        t2,
        open("/etc/hosts", Access::READ),
    ));
    assert!(
        b.tick(last_new + 61 * S).unwrap().is_empty(),
        "new item 31 s ago"
    );
    // Repeats do not.
    b.observe(&obs(
        host("/usr/sbin/nginx"),
        t2 + 50 * S,
        open("/etc/hosts", Access::READ),
    ));
    assert!(b.tick(t2 + 59 * S).unwrap().is_empty());
    assert_eq!(b.tick(t2 + 60 * S).unwrap(), vec![NGINX_KEY.to_string()]);
    assert_eq!(b.mode_of(NGINX_KEY.as_bytes()), Some(Mode::Monitoring));
}

#[test]
fn auto_promotion_can_be_off() {
    let mut b = Baselines::in_memory(vigil_baselines::Config {
        auto_promote: false,
        ..cfg()
    });
    let t = learn_nginx(&mut b, T0, 5);
    assert!(b.tick(t + 3600 * S).unwrap().is_empty());
}

#[test]
fn loss_blocks_promotion_until_a_loss_free_quiet_period() {
    let mut b = Baselines::in_memory(cfg());
    let t = learn_nginx(&mut b, T0, 5);
    b.note_loss(t + S, 42);
    let row = &b.list()[0];
    assert_eq!(row.lossy_since_ns, Some(t + S));
    assert_eq!(row.lost_events, 42);
    // Quiet since the last new item long ago, but the loss was 30 s ago.
    assert!(b.tick(t + 31 * S).unwrap().is_empty());
    // 61 s after the loss, but nothing was observed since the loss.
    assert!(
        b.tick(t + 62 * S).unwrap().is_empty(),
        "needs observations after the loss"
    );
    // Learn through the period after the loss (repeats only).
    let t3 = learn_nginx(&mut b, t + 62 * S, 2);
    assert_eq!(b.tick(t3).unwrap(), vec![NGINX_KEY.to_string()]);
    // The loss stays on record.
    let d = b.show(NGINX_KEY).unwrap();
    assert_eq!(d.lossy_since_ns, Some(t + S));
}

#[test]
fn loss_marks_only_learning_profiles_and_new_profiles_inherit_recent_loss() {
    let mut b = Baselines::in_memory(cfg());
    let t = learn_nginx(&mut b, T0, 3);
    b.promote(NGINX_KEY, Mode::Monitoring, t).unwrap();
    b.note_loss(t + S, 5);
    assert_eq!(
        b.list()[0].lossy_since_ns,
        None,
        "monitoring profile is not lossy"
    );
    // A profile first seen 10 s after the loss may have lost its first events.
    b.observe(&obs(
        host("/usr/bin/curl"),
        t + 11 * S,
        connect("1.1.1.1", 443),
    ));
    let curl = b
        .list()
        .into_iter()
        .find(|r| r.profile.starts_with("exe:/usr/bin/curl"))
        .unwrap();
    assert_eq!(curl.lossy_since_ns, Some(t + S));
    // One first seen after a full quiet period does not.
    b.observe(&obs(
        host("/usr/bin/wget"),
        t + 120 * S,
        connect("1.1.1.1", 443),
    ));
    let wget = b
        .list()
        .into_iter()
        .find(|r| r.profile.starts_with("exe:/usr/bin/wget"))
        .unwrap();
    assert_eq!(wget.lossy_since_ns, None);
}

#[test]
fn monitoring_reports_exactly_what_is_new_once() {
    let mut b = Baselines::in_memory(cfg());
    let t = learn_nginx(&mut b, T0, 3);
    b.promote(NGINX_KEY, Mode::Monitoring, t).unwrap();
    let s = host("/usr/sbin/nginx");
    // Normal work: nothing.
    let t = learn_nginx(&mut b, t, 3);
    // Three new things.
    let mut got: Vec<Anomaly> = Vec::new();
    got.extend(b.observe(&obs(s, t + S, spawn("/bin/sh"))));
    got.extend(b.observe(&obs(s, t + 2 * S, open("/etc/shadow", Access::READ))));
    got.extend(b.observe(&obs(s, t + 3 * S, connect("10.0.0.9", 22))));
    // A known file with a new access mode.
    got.extend(b.observe(&obs(
        s,
        t + 4 * S,
        open("/etc/nginx/nginx.conf", Access::WRITE),
    )));
    // A new pid of a generalised path is not new.
    got.extend(b.observe(&obs(s, t + 5 * S, open("/proc/99999/stat", Access::READ))));
    let summary: Vec<(Kind, &str, Option<Access>)> = got
        .iter()
        .map(|a| (a.kind, a.item.as_str(), a.access))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Kind::Spawn, "/bin/sh", None),
            (Kind::File, "/etc/shadow", Some(Access::READ)),
            (Kind::Connect, "tcp/10.0.0.9:22", None),
            (Kind::File, "/etc/nginx/nginx.conf", Some(Access::WRITE)),
        ]
    );
    for a in &got {
        assert_eq!(a.profile, NGINX_KEY);
        assert_eq!(a.mode, Mode::Monitoring);
        assert!(!a.events_lost && !a.baseline_lossy);
    }
    // Reported once: the same things again are quiet.
    assert!(b.observe(&obs(s, t + 6 * S, spawn("/bin/sh"))).is_empty());
    assert!(
        b.observe(&obs(
            s,
            t + 7 * S,
            open("/etc/nginx/nginx.conf", Access::WRITE)
        ))
        .is_empty()
    );
    // diff lists them; the baseline export does not.
    let d = b.diff(NGINX_KEY).unwrap();
    assert_eq!(d.spawn.len(), 1);
    assert_eq!(d.spawn[0].item, "/bin/sh");
    let files: Vec<(&str, Option<&str>)> = d
        .file
        .iter()
        .map(|i| (i.item.as_str(), i.access.as_deref()))
        .collect();
    assert_eq!(
        files,
        vec![
            ("/etc/nginx/nginx.conf", Some("w")),
            ("/etc/shadow", Some("r"))
        ]
    );
    assert_eq!(d.connect[0].item, "tcp/10.0.0.9:22");
    let base = b.baseline(NGINX_KEY).unwrap();
    assert!(base.spawn.iter().all(|i| i.item != "/bin/sh"));
    let conf = base
        .file
        .iter()
        .find(|i| i.item == "/etc/nginx/nginx.conf")
        .unwrap();
    assert_eq!(conf.access.as_deref(), Some("r"));
    assert_eq!(b.list()[0].since_promotion, 4);
    // Demoting accepts them into the baseline; diff is then empty.
    b.demote(NGINX_KEY, t + 10 * S).unwrap();
    let d = b.diff(NGINX_KEY).unwrap();
    assert!(d.spawn.is_empty() && d.file.is_empty() && d.connect.is_empty());
    assert!(
        b.baseline(NGINX_KEY)
            .unwrap()
            .spawn
            .iter()
            .any(|i| i.item == "/bin/sh")
    );
}

#[test]
fn anomalies_carry_loss_flags() {
    let mut b = Baselines::in_memory(cfg());
    let t = learn_nginx(&mut b, T0, 2);
    b.note_loss(t, 3); // while learning: the baseline is lossy
    b.promote(NGINX_KEY, Mode::Monitoring, t + S).unwrap();
    let s = host("/usr/sbin/nginx");
    let a = b.observe(&obs(s, t + 5 * S, spawn("/bin/sh")));
    assert!(a[0].events_lost, "loss 5 s before, window 10 s");
    assert!(a[0].baseline_lossy);
    let a = b.observe(&obs(s, t + 60 * S, spawn("/bin/bash")));
    assert!(!a[0].events_lost);
    assert!(a[0].baseline_lossy);
}

#[test]
fn locked_mode_never_adds_and_reports_once_per_run() {
    let mut b = Baselines::in_memory(cfg());
    let t = learn_nginx(&mut b, T0, 2);
    b.promote(NGINX_KEY, Mode::Locked, t).unwrap();
    let s = host("/usr/sbin/nginx");
    assert_eq!(b.observe(&obs(s, t + S, spawn("/bin/sh"))).len(), 1);
    assert!(b.observe(&obs(s, t + 2 * S, spawn("/bin/sh"))).is_empty());
    assert_eq!(
        b.observe(&obs(
            s,
            t + 3 * S,
            open("/etc/nginx/nginx.conf", Access::WRITE)
        ))
        .len(),
        1
    );
    // Nothing was added: not in show, not in diff.
    let d = b.show(NGINX_KEY).unwrap();
    assert!(d.spawn.iter().all(|i| i.item != "/bin/sh"));
    assert_eq!(
        d.file
            .iter()
            .find(|i| i.item == "/etc/nginx/nginx.conf")
            .unwrap()
            .access
            .as_deref(),
        Some("r")
    );
    assert!(b.diff(NGINX_KEY).unwrap().spawn.is_empty());
    // Known behaviour still counts.
    let before = d.spawn[0].count;
    b.observe(&obs(s, t + 4 * S, spawn("/usr/bin/cat")));
    assert_eq!(b.show(NGINX_KEY).unwrap().spawn[0].count, before + 1);
}

#[test]
fn syscall_bitmaps_learn_and_report_per_syscall() {
    let mut b = Baselines::in_memory(cfg());
    let s = host("/usr/sbin/nginx");
    let mut set = [0u64; SYSCALL_WORDS];
    for name in ["read", "write", "openat", "epoll_wait"] {
        let n = syscall_number(name).unwrap();
        set[usize::from(n / 64)] |= 1 << (n % 64);
    }
    assert!(b.observe_syscalls(&s, T0, &set).is_empty());
    b.promote(NGINX_KEY, Mode::Monitoring, T0 + S).unwrap();
    assert!(b.observe_syscalls(&s, T0 + 2 * S, &set).is_empty());
    let n = syscall_number("ptrace").unwrap();
    set[usize::from(n / 64)] |= 1 << (n % 64);
    let a = b.observe(&obs(s, T0 + 3 * S, Behaviour::Syscalls { set: &set }));
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].kind, a[0].item.as_str()), (Kind::Syscall, "ptrace"));
    assert!(
        b.observe_syscalls(&s, T0 + 4 * S, &set).is_empty(),
        "reported once"
    );
    assert_eq!(b.diff(NGINX_KEY).unwrap().syscalls, vec!["ptrace"]);
    assert_eq!(
        b.baseline(NGINX_KEY).unwrap().syscalls,
        vec!["read", "write", "epoll_wait", "openat"]
    );
}

#[test]
fn containers_feed_container_and_executable_profiles() {
    let mut b = Baselines::in_memory(cfg());
    let s = in_ctr("/usr/sbin/nginx", "nginx:1.27");
    b.observe(&obs(s, T0, open("/etc/nginx/nginx.conf", Access::READ)));
    b.observe(&obs(
        in_ctr("/bin/sh", "nginx:1.27"),
        T0,
        open("/etc/profile", Access::READ),
    ));
    let keys: Vec<String> = b.list().into_iter().map(|r| r.profile).collect();
    assert_eq!(
        keys,
        vec![
            "ctr:img=nginx:1.27",
            "ctr:img=nginx:1.27/exe:/bin/sh",
            "ctr:img=nginx:1.27/exe:/usr/sbin/nginx",
        ]
    );
    assert_eq!(b.show("ctr:img=nginx:1.27").unwrap().file.len(), 2);
    // Promote only the container: its sub-profiles keep learning.
    b.promote("ctr:img=nginx:1.27", Mode::Monitoring, T0 + S)
        .unwrap();
    let a = b.observe(&obs(s, T0 + 2 * S, open("/etc/passwd", Access::READ)));
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].profile, "ctr:img=nginx:1.27");
}

#[test]
fn inbound_peers_are_collapsed_unless_asked_for() {
    let accept = |ip: &str| Behaviour::Accept {
        peer: Some(ip.parse::<IpAddr>().unwrap()),
        port: 443,
        transport: Transport::Tcp,
    };
    let mut b = Baselines::in_memory(cfg());
    let s = host("/usr/sbin/nginx");
    b.observe(&obs(s, T0, accept("198.51.100.7")));
    b.observe(&obs(s, T0, accept("198.51.100.8")));
    let d = b.show(NGINX_KEY).unwrap();
    assert_eq!(
        d.accept.iter().map(|i| i.item.as_str()).collect::<Vec<_>>(),
        vec!["tcp/443"]
    );
    let mut b = Baselines::in_memory(vigil_baselines::Config {
        learn_inbound_peers: true,
        ..cfg()
    });
    b.observe(&obs(s, T0, accept("198.51.100.7")));
    b.observe(&obs(s, T0, accept("2001:db8::1")));
    let d = b.show(NGINX_KEY).unwrap();
    assert_eq!(
        d.accept.iter().map(|i| i.item.as_str()).collect::<Vec<_>>(),
        vec!["tcp/443 from 198.51.100.7", "tcp/443 from 2001:db8::1"]
    );
}

#[test]
fn full_sets_stop_learning_and_block_promotion() {
    let mut b = Baselines::in_memory(vigil_baselines::Config {
        max_items_per_set: 3,
        ..cfg()
    });
    let s = host("/usr/sbin/nginx");
    for (i, p) in ["/a", "/b", "/c", "/d", "/e"].into_iter().enumerate() {
        for k in 0..5 {
            b.observe(&obs(s, T0 + (i as i64 * 5 + k) * S, open(p, Access::READ)));
        }
    }
    let row = &b.list()[0];
    assert_eq!(row.counts[1], 3);
    assert_eq!(row.overflowed, 10);
    assert!(b.tick(T0 + 3600 * S).unwrap().is_empty());
}

#[test]
fn reset_forgets_and_restarts_learning() {
    let mut b = Baselines::in_memory(cfg());
    let t = learn_nginx(&mut b, T0, 3);
    b.promote(NGINX_KEY, Mode::Monitoring, t).unwrap();
    b.reset(NGINX_KEY, t + S).unwrap();
    let d = b.show(NGINX_KEY).unwrap();
    assert_eq!(d.mode, Mode::Learning);
    assert!(d.file.is_empty() && d.spawn.is_empty());
    assert!(matches!(
        b.reset("exe:/nope", t),
        Err(vigil_baselines::Error::NoSuchProfile(_))
    ));
}

#[test]
fn import_union_merges_sets() {
    // Host A and host B learned the same role with some differences.
    let mut a = Baselines::in_memory(cfg());
    let s = host("/usr/sbin/nginx");
    a.observe(&obs(
        s,
        T0 + 10 * S,
        open("/etc/nginx/nginx.conf", Access::READ),
    ));
    a.observe(&obs(
        s,
        T0 + 20 * S,
        open("/etc/nginx/nginx.conf", Access::READ),
    ));
    a.observe(&obs(s, T0 + 20 * S, spawn("/usr/bin/cat")));
    let mut b = Baselines::in_memory(cfg());
    b.observe(&obs(
        s,
        T0 + 5 * S,
        open("/etc/nginx/nginx.conf", Access::WRITE),
    ));
    b.observe(&obs(
        s,
        T0 + 30 * S,
        open("/etc/nginx/nginx.conf", Access::READ),
    ));
    b.observe(&obs(s, T0 + 30 * S, connect("10.0.0.5", 8080)));
    b.promote(NGINX_KEY, Mode::Monitoring, T0 + 31 * S).unwrap();
    // B saw /bin/sh after promotion; A's whitelist (reviewed) includes it? No:
    // A learned /bin/sh normally, so importing A makes it part of B's baseline.
    a.observe(&obs(s, T0 + 40 * S, spawn("/bin/sh")));
    b.observe(&obs(s, T0 + 41 * S, spawn("/bin/sh")));
    assert_eq!(b.diff(NGINX_KEY).unwrap().spawn.len(), 1);
    let y = a.export_yaml(&[]).unwrap();
    let sum = b.import_yaml(&y, None, T0 + 50 * S).unwrap();
    assert_eq!(sum.merged, vec![NGINX_KEY.to_string()]);
    assert!(sum.created.is_empty());
    assert_eq!(sum.new_items, 1, "only /usr/bin/cat is new to B");
    let d = b.show(NGINX_KEY).unwrap();
    assert_eq!(d.mode, Mode::Monitoring, "existing mode kept");
    let conf = d
        .file
        .iter()
        .find(|i| i.item == "/etc/nginx/nginx.conf")
        .unwrap();
    assert_eq!(conf.first_seen_ns, T0 + 5 * S, "earliest");
    assert_eq!(conf.last_seen_ns, T0 + 30 * S, "latest");
    assert_eq!(conf.count, 4, "summed");
    assert_eq!(conf.access.as_deref(), Some("rw"), "joined");
    let spawns: Vec<&str> = d.spawn.iter().map(|i| i.item.as_str()).collect();
    assert_eq!(spawns, vec!["/bin/sh", "/usr/bin/cat"]);
    assert!(
        b.diff(NGINX_KEY).unwrap().spawn.is_empty(),
        "imported item joined the baseline"
    );
    assert_eq!(d.connect.len(), 1);
    // Into an empty learner: created with the file's mode, or the one given.
    let mut c = Baselines::in_memory(cfg());
    let sum = c.import_yaml(&y, Some(Mode::Locked), T0).unwrap();
    assert_eq!(sum.created, vec![NGINX_KEY.to_string()]);
    assert_eq!(c.mode_of(NGINX_KEY.as_bytes()), Some(Mode::Locked));
}

#[test]
fn import_rejects_bad_documents_without_changing_anything() {
    let mut b = Baselines::in_memory(cfg());
    for bad in [
        "not: [valid",
        "vigil_baselines: 2\nprofiles: []\n",
        "vigil_baselines: 1\nprofiles:\n- profile: 'exe:/x'\n  mode: learning\n  created_ns: 0\n  last_seen_ns: 0\n  observations: 1\n  syscalls: [no_such_call]\n",
        "vigil_baselines: 1\nprofiles:\n- profile: 'exe:/ok'\n  mode: learning\n  created_ns: 0\n  last_seen_ns: 0\n  observations: 1\n- profile: 'exe:/y'\n  mode: learning\n  created_ns: 0\n  last_seen_ns: 0\n  observations: 1\n  file: [{item: '/a', access: 'rz', first_seen_ns: 0, last_seen_ns: 0, count: 1}]\n",
    ] {
        let e = b.import_yaml(bad, None, T0).unwrap_err();
        assert!(matches!(e, vigil_baselines::Error::Import(_)), "{e}");
    }
    assert!(b.is_empty(), "nothing half-imported");
}

#[test]
fn hostile_input_is_bounded() {
    let mut b = Baselines::in_memory(vigil_baselines::Config {
        max_profiles: 2,
        ..cfg()
    });
    for exe in ["/a", "/b", "/c", "/d"] {
        b.observe(&obs(host(exe), T0, spawn("/bin/true")));
    }
    assert_eq!(b.len(), 2);
    assert_eq!(b.dropped_observations(), 2);
    // An absurdly long path is cut to MAX_ITEM_LEN (and still one item).
    let long: &'static str = Box::leak(format!("/{}", "x".repeat(70_000)).into_boxed_str());
    b.observe(&obs(host("/a"), T0, open(long, Access::READ)));
    b.observe(&obs(host("/a"), T0, open(long, Access::READ)));
    let key = b.list()[0].profile.clone();
    let d = b.show(&key).unwrap();
    assert_eq!(d.file.len(), 1);
    assert_eq!(d.file[0].item.len(), vigil_baselines::MAX_ITEM_LEN);
    assert_eq!(d.file[0].count, 2);
}

#[test]
fn seccomp_export_needs_learned_syscalls() {
    let mut b = Baselines::in_memory(cfg());
    learn_nginx(&mut b, T0, 1);
    let e = b.export_seccomp(NGINX_KEY).unwrap_err();
    assert!(e.to_string().contains("learned no syscalls"), "{e}");
}

#[test]
fn resolved_handles_behave_like_observe() {
    let mut a = Baselines::in_memory(cfg());
    let mut b = Baselines::in_memory(cfg());
    let subjects = [host("/usr/sbin/nginx"), in_ctr("/bin/sh", "img:1")];
    let refs: Vec<_> = subjects.iter().map(|s| b.resolve(s, T0).unwrap()).collect();
    let mut set = [0u64; SYSCALL_WORDS];
    set[0] = 0b1011;
    let work = [
        open("/etc/a", Access::READ),
        open("/proc/77/stat", Access::READ),
        spawn("/bin/true"),
        connect("10.0.0.1", 80),
        Behaviour::Syscalls { set: &set },
    ];
    let run = |a: &mut Baselines, b: &mut Baselines, t: i64, bh: Behaviour<'_>| {
        for (s, r) in subjects.iter().zip(&refs) {
            let x = a.observe(&obs(*s, t, bh));
            let y = b.observe_ref(*r, t, &bh);
            assert_eq!(x, y);
        }
    };
    for (i, bh) in work.iter().enumerate() {
        run(&mut a, &mut b, T0 + i as i64 * S, *bh);
    }
    for p in a.list() {
        a.promote(&p.profile, Mode::Monitoring, T0 + 10 * S)
            .unwrap();
        b.promote(&p.profile, Mode::Monitoring, T0 + 10 * S)
            .unwrap();
    }
    set[1] = 1;
    let new = [
        open("/etc/b", Access::WRITE),
        Behaviour::Syscalls { set: &set },
    ];
    for bh in new {
        run(&mut a, &mut b, T0 + 20 * S, bh);
    }
    assert_eq!(a.list(), b.list());
    for p in a.list() {
        assert_eq!(a.show(&p.profile).unwrap(), b.show(&p.profile).unwrap());
    }
    assert_eq!(a.list().iter().map(|r| r.since_promotion).sum::<usize>(), 6);
}

/// `list` says how close each profile is to promotion, by the same rules
/// as `tick`: the quiet period, the observations, overflow, losses.
#[test]
fn list_says_when_a_profile_looks_ready_to_promote() {
    use vigil_baselines::Readiness;
    let mut b = Baselines::in_memory(cfg());
    let ready = |b: &Baselines, t: i64| b.list_at(t)[0].readiness;
    // One round: 7 observations, all new at T0 + 1 s.
    let t = learn_nginx(&mut b, T0, 1);
    assert_eq!(
        ready(&b, t + 20 * S),
        Readiness::Quiet {
            remaining_ns: 40 * S
        }
    );
    assert_eq!(
        ready(&b, t + 60 * S),
        Readiness::Observations { missing: 3 }
    );
    assert_eq!(b.list_at(t + 20 * S)[0].readiness.label(), "~40s");
    assert_eq!(b.list_at(t + 60 * S)[0].readiness.label(), "obs+3");
    let t = learn_nginx(&mut b, t, 1);
    assert_eq!(ready(&b, t + 60 * S), Readiness::Ready);
    assert_eq!(b.list_at(t + 60 * S)[0].readiness.label(), "yes");
    // What `list` calls ready is what `tick` promotes.
    assert_eq!(b.tick(t + 60 * S).unwrap(), vec![NGINX_KEY.to_string()]);
    assert_eq!(ready(&b, t + 60 * S), Readiness::Promoted);
    assert_eq!(b.list_at(t + 60 * S)[0].readiness.label(), "-");

    // A loss restarts the wait; a full set blocks it.
    let mut b = Baselines::in_memory(cfg());
    let t = learn_nginx(&mut b, T0, 3);
    b.note_loss(t + 50 * S, 4);
    assert_eq!(
        ready(&b, t + 60 * S),
        Readiness::Quiet {
            remaining_ns: 50 * S
        }
    );
    let mut b = Baselines::in_memory(vigil_baselines::Config {
        max_items_per_set: 1,
        ..cfg()
    });
    learn_nginx(&mut b, T0, 3);
    assert_eq!(ready(&b, T0 + 3600 * S), Readiness::Overflowed);
    let table = vigil_baselines::render_list(&b.list_at(T0 + 3600 * S), T0 + 3600 * S);
    assert!(table.lines().next().unwrap().contains(" ready "), "{table}");
    assert!(table.lines().nth(1).unwrap().contains(" full "), "{table}");
}

/// Names noted for a profile are listed, shown, exported and imported, at
/// most 8 and each once.
#[test]
fn profiles_list_the_names_their_processes_ran_under() {
    let mut b = Baselines::in_memory(cfg());
    let s = host("/usr/bin/redis-check-rdb");
    let r = b.resolve(&s, T0).unwrap();
    b.note_name(r, b"redis-server");
    b.note_name(r, b"redis-server");
    b.note_name(r, b"");
    let key = "exe:/usr/bin/redis-check-rdb@i2049:1234:4096:7";
    assert_eq!(b.list()[0].names, vec!["redis-server".to_string()]);
    let table = vigil_baselines::render_list(&b.list(), T0);
    assert!(
        table.contains("redis-server     exe:/usr/bin/redis-check-rdb@"),
        "{table}"
    );
    for i in 0..20 {
        b.note_name(r, format!("name{i}").as_bytes());
    }
    b.note_name(r, b"\xffbad");
    let names = b.show(key).unwrap().names;
    assert_eq!(names.len(), 8, "{names:?}");
    assert_eq!(names[0], "redis-server");
    let y = b.export_yaml(&[key]).unwrap();
    assert!(y.contains("names:\n  - redis-server\n"), "{y}");
    let mut c = Baselines::in_memory(cfg());
    c.import_yaml(&y, None, T0).unwrap();
    assert_eq!(c.show(key).unwrap().names, names);
    assert_eq!(c.export_yaml(&[]).unwrap(), y);
}

/// A redis whose bgsave children have 3-digit pids (a container, a wrapped
/// pid counter): with the pids passed in, every save is one item and a save
/// by a new child after promotion is no drift; without them each child's
/// `temp-PID.rdb` is an item of its own and the next one is an anomaly.
#[test]
fn short_pids_of_the_observed_process_are_one_item() {
    let s = host("/usr/bin/redis-server");
    let key = "exe:/usr/bin/redis-server@i2049:1234:4096:7";
    let run = |with_pids: bool| {
        let mut b = Baselines::in_memory(cfg());
        let mut t = T0;
        // the main process (pid 57) saves once, three children (pids 9, 88,
        // 891, parent 57) save in the background
        for (pid, ppid) in [(57u32, 1u32), (9, 57), (88, 57), (891, 57)] {
            t += S;
            let p: &'static str = Box::leak(format!("/srv/redis/temp-{pid}.rdb").into_boxed_str());
            let f = move |n: u32| n == pid || n == ppid;
            let none = |_: u32| false;
            let is_pid: &dyn Fn(u32) -> bool = if with_pids { &f } else { &none };
            let a = b.observe_for(
                &obs(s, t, open(p, Access::WRITE.union(Access::CREATE))),
                is_pid,
            );
            assert!(a.is_empty(), "learning never reports: {a:?}");
        }
        let files: Vec<String> = b
            .show(key)
            .unwrap()
            .file
            .into_iter()
            .map(|i| i.item)
            .collect();
        b.promote(key, Mode::Monitoring, t + S).unwrap();
        let f = |n: u32| n == 902 || n == 57;
        let a = b.observe_for(
            &obs(
                s,
                t + 2 * S,
                open(
                    "/srv/redis/temp-902.rdb",
                    Access::WRITE.union(Access::CREATE),
                ),
            ),
            &f,
        );
        (files, a)
    };
    let (files, a) = run(true);
    assert_eq!(files, vec!["/srv/redis/temp-*.rdb".to_string()]);
    assert!(a.is_empty(), "a new child's save is known: {a:?}");
    // The same without pids: what the learner did before it knew them.
    let (files, a) = run(false);
    assert_eq!(files.len(), 4, "{files:?}");
    assert_eq!(a.len(), 1, "{a:?}");
}
