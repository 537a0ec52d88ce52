//! Export formats: OCI seccomp JSON, YAML whitelist round trip, vigil rules.

mod util;

use util::*;
use vigil_baselines::{
    Access, Baselines, Behaviour, ExeIdentity, Mode, RUNTIME_SYSCALLS, SYSCALL_WORDS, Subject,
    Transport, Whitelist, syscall_number,
};

fn set_of(names: &[&str]) -> [u64; SYSCALL_WORDS] {
    let mut s = [0u64; SYSCALL_WORDS];
    for n in names {
        let nr = syscall_number(n).unwrap();
        s[usize::from(nr / 64)] |= 1 << (nr % 64);
    }
    s
}

fn learned() -> Baselines {
    let mut b = Baselines::in_memory(cfg());
    let s = host("/usr/sbin/nginx");
    for (i, bh) in [
        open("/etc/nginx/nginx.conf", Access::READ),
        open("/proc/4242/stat", Access::READ),
        open(
            "/var/log/nginx/access.log",
            Access(Access::WRITE.0 | Access::CREATE.0),
        ),
        spawn("/usr/bin/cat"),
        spawn("/tmp/tmp.Ab3dE9xYz1"),
        connect("10.0.0.5", 8080),
        connect("2001:db8::5", 443),
        Behaviour::Listen {
            port: 80,
            transport: Transport::Tcp,
        },
        Behaviour::Accept {
            peer: None,
            port: 80,
            transport: Transport::Tcp,
        },
        Behaviour::Capability { cap: 10 },
        Behaviour::UidChange { from: 0, to: 33 },
    ]
    .into_iter()
    .enumerate()
    {
        b.observe(&obs(s, T0 + i as i64 * S, bh));
    }
    let sys = set_of(&["accept4", "epoll_wait", "sendfile", "openat"]);
    b.observe_syscalls(&s, T0, &sys);
    // A non-UTF-8 path, and a second profile.
    let odd = Subject {
        executable: b"/opt/caf\xe9/bin/run",
        identity: ExeIdentity::Unknown,
        container: None,
    };
    b.observe(&obs(
        odd,
        T0,
        Behaviour::Open {
            path: b"/srv/\xff\xfe/data\\x",
            access: Access::READ,
        },
    ));
    b
}

#[test]
fn seccomp_profile_is_valid_oci_and_has_runtime_syscalls() {
    let b = learned();
    let j = b.export_seccomp(NGINX_KEY).unwrap();
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(v["defaultErrnoRet"], 1);
    assert_eq!(
        v["architectures"],
        serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    );
    let rules = v["syscalls"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["action"], "SCMP_ACT_ALLOW");
    let names: Vec<&str> = rules[0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    // Learned ones.
    for n in ["accept4", "epoll_wait", "sendfile", "openat"] {
        assert!(names.contains(&n), "{n}");
    }
    // What every process and runc need, learned or not.
    for n in [
        "exit",
        "exit_group",
        "rt_sigreturn",
        "execve",
        "futex",
        "brk",
        "mmap",
        "munmap",
        "mprotect",
        "arch_prctl",
        "set_tid_address",
        "set_robust_list",
        "rseq",
        "prlimit64",
        "getpid",
        "close",
        "read",
        "write",
        "newfstatat",
        "fstat",
    ] {
        assert!(names.contains(&n), "mandatory {n}");
    }
    for (n, why) in RUNTIME_SYSCALLS {
        assert!(syscall_number(n).is_some(), "{n} is a real x86_64 syscall");
        assert!(!why.is_empty());
    }
    // Sorted, unique, and nothing unrelated (ptrace was never learned).
    assert!(names.windows(2).all(|w| w[0] < w[1]));
    assert!(!names.contains(&"ptrace"));
}

#[test]
fn seccomp_leaves_out_syscalls_seen_only_since_promotion() {
    let mut b = learned();
    b.promote(NGINX_KEY, Mode::Monitoring, T0 + 100 * S)
        .unwrap();
    let a = b.observe_syscalls(&host("/usr/sbin/nginx"), T0 + 101 * S, &set_of(&["ptrace"]));
    assert_eq!(a.len(), 1);
    let j = b.export_seccomp(NGINX_KEY).unwrap();
    assert!(!j.contains("\"ptrace\""), "unreviewed syscall exported");
}

#[test]
fn yaml_whitelist_round_trips() {
    let b = learned();
    let y = b.export_yaml(&[]).unwrap();
    // Reviewable: plain paths and names appear as text.
    for want in [
        "/etc/nginx/nginx.conf",
        "/proc/*/stat",
        "/tmp/tmp.*",
        "tcp/[2001:db8::5]:443",
        "CAP_NET_BIND_SERVICE",
        "0->33",
        "sendfile",
        "access: wc",
        "/srv/\\xff\\xfe/data\\\\x",
    ] {
        assert!(y.contains(want), "{want} missing from:\n{y}");
    }
    let mut c = Baselines::in_memory(cfg());
    let sum = c.import_yaml(&y, None, T0).unwrap();
    assert_eq!(sum.created.len(), 2);
    let y2 = c.export_yaml(&[]).unwrap();
    assert_eq!(y, y2, "export -> import -> export is identical");
    let w: Whitelist = serde_norway::from_str(&y).unwrap();
    assert_eq!(w.profiles.len(), 2);
    // The non-UTF-8 key and path come back as the same bytes.
    let odd = c.show("exe:/opt/caf\\xe9/bin/run").unwrap();
    assert_eq!(
        vigil_baselines::unescape(&odd.file[0].item).unwrap(),
        b"/srv/\xff\xfe/data\\x"
    );
}

#[test]
fn rules_export_names_the_baseline() {
    let b = learned();
    let r = b.export_rules(NGINX_KEY).unwrap();
    let rules: Vec<serde_json::Value> = serde_norway::from_str(&r).unwrap();
    assert_eq!(rules.len(), 6, "{r}");
    let mut ids = std::collections::HashSet::new();
    for rule in &rules {
        let id = rule["rule"].as_str().unwrap();
        assert!(
            id.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.-".contains(&c)),
            "{id}"
        );
        assert!(ids.insert(id.to_string()), "duplicate id {id}");
        assert_eq!(rule["severity"], "medium");
        assert_eq!(rule["tags"], serde_json::json!(["vigil.baseline"]));
        for f in ["name", "description", "condition", "output"] {
            assert!(rule[f].is_string(), "{f}");
        }
    }
    let cond = |action: &str| -> String {
        rules
            .iter()
            .find(|r| {
                r["condition"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("event.action = \"{action}\""))
            })
            .unwrap()["condition"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        cond("exec"),
        "process.parent.executable = \"/usr/sbin/nginx\" and event.action = \"exec\" and not (process.executable in (\"/usr/bin/cat\") or process.executable glob \"/tmp/tmp.*\")"
    );
    assert_eq!(
        cond("open"),
        "process.executable = \"/usr/sbin/nginx\" and event.action = \"open\" and not (file.path in (\"/etc/nginx/nginx.conf\", \"/var/log/nginx/access.log\") or file.path glob \"/proc/*/stat\")"
    );
    assert_eq!(
        cond("connect"),
        "process.executable = \"/usr/sbin/nginx\" and event.action = \"connect\" and not ((destination.ip = \"10.0.0.5\" and destination.port = 8080) or (destination.ip = \"2001:db8::5\" and destination.port = 443))"
    );
    assert!(cond("listen").ends_with("and not (server.port = 80)"));
    assert!(cond("accept").ends_with("and not (destination.port = 80)"));
    assert!(
        cond("capable").ends_with("and not vigil.capability.name in (\"CAP_NET_BIND_SERVICE\")")
    );
    assert!(r.contains("# Not expressed as rules: uid transitions (0->33)"));
    assert!(r.contains("--format seccomp"));
    // A profile whose path is not UTF-8 yields no rule that misnames it.
    let odd = b.export_rules("exe:/opt/caf\\xe9/bin/run").unwrap();
    assert!(odd.contains("not UTF-8"), "{odd}");
    assert!(odd.trim_end().ends_with("[]"), "{odd}");
}

#[test]
fn rules_literals_are_escaped() {
    let mut b = Baselines::in_memory(cfg());
    let s = host("/usr/sbin/nginx");
    b.observe(&obs(s, T0, open("/srv/a \"quoted\" \\ name", Access::READ)));
    let r = b.export_rules(NGINX_KEY).unwrap();
    let rules: Vec<serde_json::Value> = serde_norway::from_str(&r).unwrap();
    let c = rules[1]["condition"].as_str().unwrap();
    assert!(
        c.contains(r#"file.path in ("/srv/a \"quoted\" \\ name")"#),
        "{c}"
    );
}
