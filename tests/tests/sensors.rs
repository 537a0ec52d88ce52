//! Root tests: every sensor, loaded into this kernel, observing real
//! behaviour of real processes. Serialized by `bpf_lock`; each matches its
//! events by pid or a unique marker and polls with a deadline.

mod common;

use common::{Harness, bytes, canon, trigger, trigger_bin};
use std::process::Command;
use std::time::Duration;
use vigil_bpf::abi::{self, kind};
use vigil_bpf::decode::Body;

fn is_kind(e: &vigil_engine::enrich::Event, k: u16) -> bool {
    e.k.hdr.kind == k
}

#[test]
fn exec_chains_are_enriched_with_argv_and_three_parent_levels() {
    let Some(mut h) = Harness::start("exec_chains", |_| {}) else {
        return;
    };
    let marker = vigil_tests::unique_marker("exec");
    let n = 1000;
    let mut pids = Vec::new();
    for _ in 0..n {
        let c = Command::new("sh")
            .arg("-c")
            .arg(format!("sh -c 'exec /bin/true {marker}'; true"))
            .spawn()
            .unwrap();
        pids.push(c.id());
        c.wait_with_output().unwrap();
    }
    let true_exe = canon("/bin/true");
    let sh_exe = canon("/bin/sh");
    let me = canon(&std::env::current_exe().unwrap().to_string_lossy());
    h.collect_for(Duration::from_millis(300));
    let mut found = Vec::with_capacity(n);
    for outer in &pids {
        found.push(
            h.expect(&format!("exec of /bin/true under sh {outer}"), |e| {
                is_kind(e, kind::EXEC)
                    && e.k.hdr.ppid == *outer
                    && e.process
                        .as_ref()
                        .is_some_and(|p| p.exe[..] == true_exe[..])
            }),
        );
    }
    // A lost fork or exec leaves the process table to fall back on /proc,
    // where an exited parent has no executable: say so rather than report
    // a wrong ancestor.
    let s = h.stop();
    let lost: Vec<String> = [
        (kind::EXEC, "exec"),
        (kind::FORK, "fork"),
        (kind::EXIT, "exit"),
    ]
    .iter()
    .filter_map(|(k, name)| {
        let c = s.kernel.get(k).copied().unwrap_or_default();
        (c.dropped > 0).then(|| format!("{name}: {} dropped", c.dropped))
    })
    .collect();
    assert!(lost.is_empty(), "lifecycle records lost: {lost:?}");
    let mut ok = 0;
    for (outer, e) in pids.iter().zip(&found) {
        let p = e.process.as_ref().expect("process info");
        assert_eq!(p.exe[..], true_exe[..], "executable");
        assert_eq!(
            p.args.to_vec(),
            vec![bytes("/bin/true"), bytes(&marker)],
            "argv"
        );
        assert!(
            e.ancestors.len() >= 3,
            "3 parent levels, got {:?}",
            e.ancestors
        );
        assert_eq!(e.ancestors[0].pid, *outer);
        assert_eq!(
            e.ancestors[0].exe[..],
            sh_exe[..],
            "parent is sh (ancestors {:?})",
            e.ancestors
        );
        assert_eq!(
            e.ancestors[1].pid,
            std::process::id(),
            "grandparent is the test"
        );
        assert_eq!(e.ancestors[1].exe[..], me[..]);
        assert!(
            e.ancestors[2].pid > 0 && !e.ancestors[2].exe.is_empty(),
            "great-grandparent known"
        );
        ok += 1;
    }
    assert_eq!(ok, n);
}

#[test]
fn exec_through_symlink_and_memfd_report_the_real_executable() {
    let Some(mut h) = Harness::start("exec_symlink_memfd", |_| {}) else {
        return;
    };
    let dir = std::env::temp_dir().join(vigil_tests::unique_marker("lnk"));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("truelink");
    std::os::unix::fs::symlink("/bin/true", &link).unwrap();
    let c = Command::new(&link).spawn().unwrap();
    let pid = c.id();
    c.wait_with_output().unwrap();
    let e = h.expect("exec via symlink", |e| {
        is_kind(e, kind::EXEC) && e.k.hdr.pid == pid
    });
    assert_eq!(e.process.as_ref().unwrap().exe[..], canon("/bin/true")[..]);
    match &e.k.body {
        Body::Exec { filename, .. } => {
            assert_eq!(filename[..], *link.as_os_str().as_encoded_bytes())
        }
        b => panic!("{b:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();

    let (pid, _) = trigger(&["memfd-exec", "vigil-memfd-test"]);
    let e = h.expect("exec from memfd", |e| {
        matches!(&e.k.body, Body::Exec { info, .. } if info.exec_flags & abi::exec_flags::MEMFD != 0)
            && e.k.hdr.pid == pid
    });
    let Body::Exec { info, path, .. } = &e.k.body else {
        panic!()
    };
    assert!(
        info.exec_flags & abi::exec_flags::MEMFD != 0,
        "memfd flag set"
    );
    let p = String::from_utf8_lossy(path);
    assert!(
        p.contains("memfd:vigil-memfd-test"),
        "path names the memfd: {p}"
    );

    // execveat relative to a directory fd: the canonical executable
    let (pid, _) = trigger(&["execveat-rel", "/usr/bin", "true"]);
    let e = h.expect("execveat relative to a dirfd", |e| {
        e.k.hdr.pid == pid
            && matches!(&e.k.body, Body::Exec { filename, .. } if filename.starts_with(b"/dev/fd/"))
    });
    let Body::Exec { path, filename, .. } = &e.k.body else {
        panic!()
    };
    assert_eq!(path[..], canon("/usr/bin/true")[..]);
    assert!(
        filename.starts_with(b"/dev/fd/") && filename.ends_with(b"/true"),
        "the name as the kernel saw it: {}",
        String::from_utf8_lossy(filename)
    );
}

#[test]
fn forty_arguments_with_one_of_3k_arrive_whole_or_flagged() {
    let Some(mut h) = Harness::start("exec_many_args", |_| {}) else {
        return;
    };
    let (pid, _) = trigger(&["exec-many-args"]);
    let true_exe = canon("/bin/true");
    let e = h.expect("exec with 40 args", |e| {
        is_kind(e, kind::EXEC)
            && e.k.hdr.pid == pid
            && e.process
                .as_ref()
                .is_some_and(|p| p.exe[..] == true_exe[..])
    });
    let p = e.process.as_ref().unwrap();
    if p.args_truncated {
        assert!(e.k.truncated(1));
    } else {
        assert_eq!(p.args.len(), 40);
        assert_eq!(p.args[21].len(), 3072);
        assert_eq!(p.args[39], bytes("arg38"));
    }
}

#[test]
fn fork_and_exit_report_child_and_code() {
    let Some(mut h) = Harness::start("fork_exit", |_| {}) else {
        return;
    };
    // The agent never reports its own process (the test binary hosts it),
    // so the fork under test is done by a shell.
    let trig = trigger_bin();
    let sh = Command::new("sh")
        .arg("-c")
        .arg("\"$0\" exit 7; true")
        .arg(&trig)
        .spawn()
        .unwrap();
    let sh_pid = sh.id();
    sh.wait_with_output().unwrap();
    let f = h.expect("fork by the shell", |e| {
        is_kind(e, kind::FORK) && e.k.hdr.pid == sh_pid
    });
    let Body::Fork(fk) = f.k.body else { panic!() };
    let child = fk.child_pid;
    assert_ne!(child, sh_pid);
    assert_eq!(fk.ns_flags, 0, "no namespace change");
    let x = h.expect("exit with code 7", |e| {
        is_kind(e, kind::EXIT) && e.k.hdr.pid == child
    });
    let Body::Exit(st) = x.k.body else { panic!() };
    assert_eq!((st.status >> 8) & 0xff, 7);
    // new namespaces are named on the fork
    let c = Command::new("unshare")
        .args(["--fork", "--pid", "--uts", "/bin/true"])
        .spawn()
        .unwrap();
    let upid = c.id();
    c.wait_with_output().unwrap();
    let f = h.expect("fork into new pid ns", |e| {
        matches!(&e.k.body, Body::Fork(f) if f.ns_flags & 0x2000_0000 != 0) && e.k.hdr.pid == upid
    });
    let Body::Fork(fk) = f.k.body else { panic!() };
    assert_eq!(fk.child_ns_pid, 1, "child is pid 1 of its namespace");
    // unshare(1) moved itself into the new uts namespace before forking:
    // that is the unshare event, and the child shares it with its parent
    let u = h.expect("unshare(CLONE_NEWPID|CLONE_NEWUTS)", |e| {
        is_kind(e, kind::UNSHARE) && e.k.hdr.pid == upid
    });
    let Body::Ns(n) = u.k.body else { panic!() };
    assert_eq!(n.flags & 0x2400_0000, 0x2400_0000, "pid and uts flags");
    assert_eq!(
        fk.ns_flags & 0x0400_0000,
        0,
        "child shares the parent's new uts ns"
    );
}

#[test]
fn shadow_opened_by_relative_path_dirfd_and_symlink_reports_etc_shadow() {
    let Some(mut h) = Harness::start("open_shadow", |_| {}) else {
        return;
    };
    let (p1, _) = trigger(&["open-relative", "/etc", "shadow"]);
    let (p2, _) = trigger(&["openat-dirfd", "/etc", "shadow"]);
    let dir = std::env::temp_dir().join(vigil_tests::unique_marker("shl"));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("s");
    std::os::unix::fs::symlink("/etc/shadow", &link).unwrap();
    let (p3, _) = trigger(&["open", link.to_str().unwrap()]);
    let (p4, _) = trigger(&["open-relative", "/etc/ssh", "../shadow"]);
    for (pid, how) in [
        (p1, "relative"),
        (p2, "dirfd"),
        (p3, "symlink"),
        (p4, "dotdot"),
    ] {
        let e = h.expect(&format!("open of /etc/shadow via {how}"), |e| {
            is_kind(e, kind::OPEN)
                && e.k.hdr.pid == pid
                && e.file_path.as_deref() == Some(&b"/etc/shadow"[..])
        });
        assert_eq!(e.file_path.as_deref(), Some(&b"/etc/shadow"[..]), "{how}");
        let Body::Open { info, .. } = &e.k.body else {
            panic!()
        };
        assert!(info.ret >= 0, "{how}: open succeeded");
        assert_eq!(info.flags & 3, 0, "{how}: O_RDONLY");
    }
    // a failing open reports the joined path and the errno
    let (p5, _) = trigger(&["open-relative", "/etc", "vigil-no-such-file"]);
    let e = h.expect("failed open", |e| {
        is_kind(e, kind::OPEN)
            && e.k.hdr.pid == p5
            && e.file_path.as_deref() == Some(&b"/etc/vigil-no-such-file"[..])
    });
    assert_eq!(
        e.file_path.as_deref(),
        Some(&b"/etc/vigil-no-such-file"[..])
    );
    let Body::Open { info, .. } = &e.k.body else {
        panic!()
    };
    assert_eq!(info.ret, -i64::from(libc::ENOENT));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn opens_outside_interest_die_in_the_kernel_and_writes_are_reported() {
    let Some(mut h) = Harness::start("open_interest", |_| {}) else {
        return;
    };
    let dir = std::env::temp_dir().join(vigil_tests::unique_marker("int"));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("file");
    std::fs::write(&f, b"x").unwrap();
    let (pr, _) = trigger(&["open", f.to_str().unwrap()]);
    let w = dir.join("new");
    let (pw, _) = trigger(&["open-write", w.to_str().unwrap()]);
    let e = h.expect("write open anywhere", |e| {
        is_kind(e, kind::OPEN)
            && e.k.hdr.pid == pw
            && e.file_path.as_deref() == Some(w.as_os_str().as_encoded_bytes())
    });
    let Body::Open { info, .. } = &e.k.body else {
        panic!()
    };
    assert!(info.flags & libc::O_CREAT as u32 != 0);
    h.collect_for(Duration::from_millis(200));
    assert!(
        !h.seen.iter().any(|e| is_kind(e, kind::OPEN)
            && e.k.hdr.pid == pr
            && e.file_path.as_deref() == Some(f.as_os_str().as_encoded_bytes())),
        "a read of a path nobody declared interest in must not leave the kernel"
    );
    let s = h.stop();
    assert!(
        s.kernel.get(&kind::OPEN).unwrap().filtered > 0,
        "filtered opens are counted"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn connect_accept_listen_and_tcp_state_ipv4_ipv6() {
    let Some(mut h) = Harness::start("network", |_| {}) else {
        return;
    };
    let l4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port4 = l4.local_addr().unwrap().port();
    let (pc, _) = trigger(&["connect", "127.0.0.1", &port4.to_string()]);
    let e = h.expect("connect v4", |e| {
        is_kind(e, kind::CONNECT) && e.k.hdr.pid == pc
    });
    let Body::Sock { info, .. } = &e.k.body else {
        panic!()
    };
    assert_eq!(i32::from(info.family), libc::AF_INET);
    assert_eq!(info.rport, port4);
    assert_eq!(&info.raddr[..4], &[127, 0, 0, 1]);
    assert!(info.lport != 0, "local port known after connect");
    // connect_timeout is a non-blocking connect: started, not failed
    assert_eq!(info.ret, 0, "blocking connect to a listener succeeds");
    // tcp_state reports connection start and end by default
    let _ = h.expect(
        "tcp connection to that port established",
        |e| matches!(&e.k.body, Body::TcpState(t) if t.dport == port4 && t.newstate == 1),
    );
    assert!(
        !h.seen
            .iter()
            .any(|e| matches!(&e.k.body, Body::TcpState(t) if t.newstate == 2)),
        "SYN_SENT repeats the connect record and is not of interest by default"
    );

    let l6 = std::net::TcpListener::bind("[::1]:0").unwrap();
    let port6 = l6.local_addr().unwrap().port();
    let (pc6, _) = trigger(&["connect6", "::1", &port6.to_string()]);
    let e = h.expect("connect v6", |e| {
        is_kind(e, kind::CONNECT) && e.k.hdr.pid == pc6
    });
    let Body::Sock { info, .. } = &e.k.body else {
        panic!()
    };
    assert_eq!(i32::from(info.family), libc::AF_INET6);
    assert_eq!(info.raddr, std::net::Ipv6Addr::LOCALHOST.octets());
    // refused connect: result carries the errno
    drop(l4);
    let (pr, _) = trigger(&["connect", "127.0.0.1", &port4.to_string()]);
    let e = h.expect("refused connect", |e| {
        is_kind(e, kind::CONNECT) && e.k.hdr.pid == pr
    });
    let Body::Sock { info, .. } = &e.k.body else {
        panic!()
    };
    assert_eq!(info.ret, -i64::from(libc::ECONNREFUSED));

    let port = 20000 + (std::process::id() % 20000) as u16;
    let (ps, _) = trigger(&["serve-once", &port.to_string()]);
    let e = h.expect("listen", |e| is_kind(e, kind::LISTEN) && e.k.hdr.pid == ps);
    let Body::Sock { info, .. } = &e.k.body else {
        panic!()
    };
    assert_eq!(info.lport, port);
    let e = h.expect("accept", |e| is_kind(e, kind::ACCEPT) && e.k.hdr.pid == ps);
    let Body::Sock { info, .. } = &e.k.body else {
        panic!()
    };
    assert_eq!(info.lport, port);
    assert!(info.rport != 0 && info.ret >= 0);
    assert_eq!(&info.raddr[..4], &[127, 0, 0, 1]);
}

#[test]
fn unix_socket_connect_reports_the_path() {
    let Some(mut h) = Harness::start("unix_connect", |_| {}) else {
        return;
    };
    let p = std::env::temp_dir().join(vigil_tests::unique_marker("sock"));
    let _l = std::os::unix::net::UnixListener::bind(&p).unwrap();
    let (pid, _) = trigger(&["connect-unix", p.to_str().unwrap()]);
    let e = h.expect("unix connect", |e| {
        is_kind(e, kind::CONNECT) && e.k.hdr.pid == pid
    });
    let Body::Sock { info, unix_path } = &e.k.body else {
        panic!()
    };
    assert_eq!(i32::from(info.family), libc::AF_UNIX);
    assert_eq!(unix_path[..], *p.as_os_str().as_encoded_bytes());
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn privilege_changes_capabilities_and_ptrace() {
    let Some(mut h) = Harness::start("privileges", |_| {}) else {
        return;
    };
    let (pu, _) = trigger(&["setuid", "65534"]);
    let e = h.expect("setuid", |e| is_kind(e, kind::SETID) && e.k.hdr.pid == pu);
    let Body::SetId(s) = e.k.body else { panic!() };
    assert_eq!((s.syscall, s.id[0], s.ret), (abi::sys::SETUID, 65534, 0));
    assert_eq!(
        e.k.hdr.uid, 65534,
        "header carries the credentials after the call"
    );
    let (pg, _) = trigger(&["setresgid", "65534"]);
    let e = h.expect("setresgid", |e| {
        is_kind(e, kind::SETID) && e.k.hdr.pid == pg
    });
    let Body::SetId(s) = e.k.body else { panic!() };
    assert_eq!(s.syscall, abi::sys::SETRESGID);
    let (pc, _) = trigger(&["capset-drop"]);
    let e = h.expect("capset", |e| is_kind(e, kind::CAPSET) && e.k.hdr.pid == pc);
    let Body::CapSet(c) = e.k.body else { panic!() };
    assert_eq!((c.effective, c.ret), (0, 0));
    let (pp, target) = trigger(&["ptrace"]);
    let e = h.expect("ptrace attach", |e| {
        matches!(&e.k.body, Body::Ptrace(p) if p.request == 16) && e.k.hdr.pid == pp
    });
    let Body::Ptrace(p) = e.k.body else { panic!() };
    assert_eq!(p.target_pid.to_string(), target);
    // The traced process is resolved from the process table. Its image is
    // sleep, or still the tracer's own image: spawn() returns once the
    // child's exec has released the old mm, which can be before the child
    // reaches sched_process_exec, so the ptrace record may precede the
    // child's exec record.
    let t = e.target.as_ref().expect("ptrace target resolved");
    assert_eq!(t.pid.to_string(), target);
    assert!(
        t.exe[..] == canon("/bin/sleep")[..]
            || t.exe[..] == canon(trigger_bin().to_str().unwrap())[..],
        "target image {:?}",
        String::from_utf8_lossy(&t.exe)
    );
    // ptrace needs CAP_SYS_PTRACE? root has it; cap_capable reports checks
    let (pm, _) = trigger(&[
        "mount-tmpfs",
        &format!("/tmp/{}", vigil_tests::unique_marker("mnt")),
    ]);
    // CAP_SYS_ADMIN is checked, without audit, on the process's accounted
    // mappings (security_vm_enough_memory_mm: ld.so's mmap, brk) before
    // it mounts: those checks must not use up the report of the mount's
    // own (the dedup is per syscall), nor of the unshare before it.
    let sys_admin = |nr: i64| {
        move |e: &vigil_engine::enrich::Event| {
            matches!(&e.k.body, Body::Capable(c) if c.cap == 21 && c.ret == 0 && i64::from(c.syscall_nr) == nr)
                && e.k.hdr.pid == pm
        }
    };
    let m = h.expect(
        "CAP_SYS_ADMIN check in the mount",
        sys_admin(libc::SYS_mount),
    );
    let u = h.expect(
        "CAP_SYS_ADMIN check in the unshare",
        sys_admin(libc::SYS_unshare),
    );
    // the memory syscalls share one report: whichever came first
    let mm = h.expect("audit-less CAP_SYS_ADMIN check of a mapping", |e| {
        [
            libc::SYS_mmap,
            libc::SYS_mprotect,
            libc::SYS_brk,
            libc::SYS_mremap,
            libc::SYS_execve,
            -2,
        ]
        .into_iter()
        .any(|nr| sys_admin(nr)(e))
    });
    assert!(
        mm.k.hdr.ts_ns < u.k.hdr.ts_ns && u.k.hdr.ts_ns < m.k.hdr.ts_ns,
        "mapping, unshare, mount in that order"
    );
}

#[test]
fn kernel_surface_bpf_modules_memfd() {
    let Some(mut h) = Harness::start("kernel_surface", |_| {}) else {
        return;
    };
    let (pb, _) = trigger(&["bpf-map", "vigiltestmap"]);
    let e = h.expect("bpf map create", |e| {
        is_kind(e, kind::BPF) && e.k.hdr.pid == pb
    });
    let Body::Bpf { info, name } = &e.k.body else {
        panic!()
    };
    assert_eq!(info.cmd, 0);
    assert_eq!(name[..], b"vigiltestmap"[..]);
    let (pm, _) = trigger(&["memfd", "vigil-memfd"]);
    let e = h.expect("memfd_create", |e| {
        is_kind(e, kind::MEMFD) && e.k.hdr.pid == pm
    });
    let Body::Memfd { info, name } = &e.k.body else {
        panic!()
    };
    assert_eq!(name[..], b"vigil-memfd"[..]);
    assert!(info.ret >= 0 && info.flags == libc::MFD_CLOEXEC);

    // Module syscalls exist only on kernels built with CONFIG_MODULES (this
    // VM's kernel has none: no /proc/modules, no module tracepoints). There
    // the sensor must say so; elsewhere it must report the attempts.
    let status = h.agent.as_ref().unwrap().status.clone();
    let module = status.iter().find(|s| s.name == "module").unwrap();
    if !std::path::Path::new("/proc/modules").exists() {
        match &module.state {
            vigil_bpf::SensorState::Unavailable(why) => {
                assert!(why.iter().all(|(_, r)| r.contains("ENOENT")), "{why:?}")
            }
            other => {
                panic!("module sensor should be unavailable without CONFIG_MODULES: {other:?}")
            }
        }
        return;
    }
    let (pf, _) = trigger(&["finit-module", "/etc/hostname"]);
    let e = h.expect("finit_module", |e| {
        is_kind(e, kind::MODULE) && e.k.hdr.pid == pf
    });
    assert_eq!(e.file_path.as_deref(), Some(&canon("/etc/hostname")[..]));
    let Body::Module { info, params, .. } = &e.k.body else {
        panic!()
    };
    assert!(info.ret < 0, "the kernel refused a non-module");
    assert_eq!(params[..], b"vigil_test=1"[..]);
    let (pi, _) = trigger(&["init-module"]);
    let e = h.expect("init_module", |e| {
        is_kind(e, kind::MODULE) && e.k.hdr.pid == pi
    });
    let Body::Module { info, .. } = &e.k.body else {
        panic!()
    };
    assert_eq!((info.syscall, info.len), (abi::sys::INIT_MODULE, 64));
    let (pd, _) = trigger(&["delete-module", "vigil_no_such_module"]);
    let e = h.expect("delete_module", |e| {
        is_kind(e, kind::MODULE) && e.k.hdr.pid == pd
    });
    let Body::Module { target, .. } = &e.k.body else {
        panic!()
    };
    assert_eq!(target[..], b"vigil_no_such_module"[..]);
}

#[test]
fn mounts_and_namespaces() {
    let Some(mut h) = Harness::start("mount_ns", |_| {}) else {
        return;
    };
    let target = format!("/tmp/{}", vigil_tests::unique_marker("mnt"));
    let (pm, _) = trigger(&["mount-tmpfs", &target]);
    let e = h.expect("unshare(CLONE_NEWNS)", |e| {
        is_kind(e, kind::UNSHARE) && e.k.hdr.pid == pm
    });
    let Body::Ns(n) = e.k.body else { panic!() };
    assert!(n.flags & libc::CLONE_NEWNS as u64 != 0);
    assert_ne!(
        n.old_mntns, e.k.hdr.mntns,
        "header has the new mount namespace"
    );
    let e = h.expect("mount tmpfs", |e| {
        matches!(&e.k.body, Body::Mount { fstype, .. } if fstype == b"tmpfs") && e.k.hdr.pid == pm
    });
    assert_eq!(e.file_path.as_deref(), Some(target.as_bytes()));
    let e = h.expect("umount", |e| is_kind(e, kind::UMOUNT) && e.k.hdr.pid == pm);
    let Body::Umount { target: t, info } = &e.k.body else {
        panic!()
    };
    assert_eq!((t[..].to_vec(), info.ret), (target.as_bytes().to_vec(), 0));
    let (ps, _) = trigger(&["setns", "/proc/self/ns/net"]);
    let e = h.expect("setns", |e| is_kind(e, kind::SETNS) && e.k.hdr.pid == ps);
    let Body::Ns(n) = e.k.body else { panic!() };
    use std::os::unix::fs::MetadataExt;
    let my_net = std::fs::metadata("/proc/self/ns/net").unwrap().ino() as u32;
    assert_eq!((n.target_ns, n.ret), (my_net, 0));
}

#[test]
fn bash_readline_is_captured() {
    let Some(mut h) = Harness::start("readline", |_| {}) else {
        return;
    };
    let marker = vigil_tests::unique_marker("rl");
    let mut c = Command::new("script")
        .args(["-q", "-c", "bash --norc --noprofile -i", "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("script(1) from util-linux");
    use std::io::Write;
    let mut stdin = c.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    writeln!(stdin, "echo {marker}").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    writeln!(stdin, "exit").unwrap();
    drop(stdin);
    let e = h.expect("readline line", |e| {
        matches!(&e.k.body, Body::Readline { line } if line == format!("echo {marker}").as_bytes())
    });
    assert_eq!(e.k.comm(), b"bash");
    let _ = c.wait();
}

#[test]
fn idle_agent_emits_nothing_about_itself() {
    let Some(mut h) = Harness::start("idle_self", |_| {}) else {
        return;
    };
    h.collect_for(Duration::from_secs(2));
    let me = std::process::id();
    let own: Vec<_> = h.seen.iter().filter(|e| e.k.hdr.pid == me).collect();
    assert!(
        own.is_empty(),
        "{} events about the agent itself",
        own.len()
    );
}

#[test]
fn record_then_replay_gives_identical_enriched_events() {
    let path = std::env::temp_dir().join(format!("{}.vcap", vigil_tests::unique_marker("cap")));
    let Some(mut h) = Harness::start_recording("record_replay", path.clone()) else {
        return;
    };
    let marker = vigil_tests::unique_marker("rr");
    for _ in 0..20 {
        trigger(&["exec", "/bin/true", &marker]);
    }
    let (p, _) = trigger(&["open-relative", "/etc", "shadow"]);
    h.expect("last open", |e| is_kind(e, kind::OPEN) && e.k.hdr.pid == p);
    let live_summary = h.agent.take().unwrap().stop().unwrap();
    h.collect_for(Duration::from_millis(100));
    let live: Vec<Vec<u8>> = h
        .seen
        .iter()
        .map(|e| vigil_engine::ecs::encode(e, "h", "event"))
        .collect();
    assert_eq!(
        live.len() as u64,
        live_summary.recorded,
        "every decoded record was captured"
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let cfg = vigil_engine::config::Config::default();
    let s = vigil_engine::replay::replay(&path, &cfg, None, Some(tx), |_, _| {}).unwrap();
    let replayed: Vec<Vec<u8>> = rx
        .try_iter()
        .map(|e| vigil_engine::ecs::encode(&e, "h", "event"))
        .collect();
    assert_eq!(s.lookup_misses, 0);
    assert_eq!(live.len(), replayed.len());
    // Executable hashes are computed from the live files, not recorded:
    // a replayed event carries none. Everything else is identical.
    let unhashed = |j: &[u8]| {
        let mut v: serde_json::Value = serde_json::from_slice(j).unwrap();
        if let Some(p) = v.get_mut("process").and_then(|p| p.as_object_mut()) {
            p.remove("hash");
            if let Some(pp) = p.get_mut("parent").and_then(|x| x.as_object_mut()) {
                pp.remove("hash");
            }
        }
        if let Some(x) = v.get_mut("vigil").and_then(|x| x.as_object_mut()) {
            x.remove("hash");
        }
        v
    };
    for (a, b) in live.iter().zip(&replayed) {
        assert_eq!(
            unhashed(a),
            unhashed(b),
            "{}\n{}",
            String::from_utf8_lossy(a),
            String::from_utf8_lossy(b)
        );
    }
    assert!(
        live.iter()
            .any(|l| String::from_utf8_lossy(l).contains(&marker))
    );
    std::fs::remove_file(&path).unwrap();
    let _ = trigger_bin();
}

/// The CPUs this test may run on (its affinity mask).
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set, filled by the call.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a cpu_set_t of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(r, 0, "sched_getaffinity");
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` < CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Runs vg-trigger with args pinned to `cpu`, and waits for it.
fn trigger_on_cpu(cpu: usize, args: &[&str]) {
    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new(trigger_bin());
    c.args(args);
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` comes from allowed_cpus (< CPU_SETSIZE).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: the closure only calls sched_setaffinity (async-signal-safe)
    // on a set built before the fork.
    unsafe {
        c.pre_exec(move || {
            if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let st = c.status().expect("run vg-trigger pinned");
    assert!(st.success(), "vg-trigger on cpu {cpu}: {st}");
}

#[test]
fn drops_are_counted_flagged_and_never_silent() {
    // A one-page ring buffer and a slow drain: a burst must overflow it.
    let Some(mut h) = Harness::start("drops", |c| {
        c.sensors.ring_buffer_bytes = 4096;
        c.sensors.wakeup_bytes = 2048;
        c.sensors.drain_interval_ms = 200;
    }) else {
        return;
    };
    let marker = vigil_tests::unique_marker("drop");
    let n = 5000;
    let (pid, _) = trigger(&["open-burst", &format!("/etc/{marker}"), &n.to_string()]);
    h.collect_for(Duration::from_millis(600));
    // The loss flag is per CPU and rides on the next record that CPU
    // emits; the burst ends within one drain interval, so on a quiet host
    // no record may follow on the CPU that dropped before the agent stops.
    // Once the rings have drained, every CPU emits records of its own: an
    // open on each, pinned there.
    let cpus = allowed_cpus();
    assert!(!cpus.is_empty(), "the test may run on some CPU");
    for round in 0..5 {
        if h.seen.iter().any(|e| e.k.after_loss()) {
            break;
        }
        for &cpu in &cpus {
            trigger_on_cpu(
                cpu,
                &[
                    "open-burst",
                    &format!("/etc/{marker}-after-{round}-cpu{cpu}"),
                    "1",
                ],
            );
        }
        h.collect_for(Duration::from_millis(400));
    }
    let summary = h.agent.take().unwrap().stop().unwrap();
    h.collect_for(Duration::from_millis(100));
    let delivered = h
        .seen
        .iter()
        .filter(|e| is_kind(e, kind::OPEN) && e.k.hdr.pid == pid)
        .count() as u64;
    let open = summary.kernel.get(&kind::OPEN).copied().unwrap_or_default();
    assert!(
        open.dropped > 0,
        "a 4 KiB ring must overflow under {n} opens: {open:?}"
    );
    assert!(delivered < n, "some were dropped");
    // every record is either delivered or counted as dropped (other
    // processes' opens can only add to both sides)
    assert!(
        delivered + open.dropped >= n,
        "delivered {delivered} + dropped {} < {n}: a record vanished silently",
        open.dropped
    );
    // what the kernel says it emitted is exactly what userspace decoded
    let decoded = summary
        .pipeline
        .decoded
        .get(&kind::OPEN)
        .copied()
        .unwrap_or(0);
    assert_eq!(open.emitted, decoded, "emitted records all decoded");
    // the records right after a loss say so
    assert!(
        h.seen.iter().any(|e| e.k.after_loss()),
        "some record carries vigil.after_loss"
    );
    let rendered = summary.render();
    assert!(rendered.contains("dropped"), "{rendered}");
    assert!(
        rendered.contains("WARNING: events were dropped"),
        "{rendered}"
    );
}

#[test]
fn repeated_opens_are_reported_once_per_process_and_counted() {
    let Some(mut h) = Harness::start("dedup", |_| {}) else {
        return;
    };
    let (p1, _) = trigger(&["open-repeat", "/etc/hostname", "50"]);
    let (p2, _) = trigger(&["open-repeat", "/etc/hostname", "50"]);
    let want = canon("/etc/hostname");
    for p in [p1, p2] {
        h.expect("first open of each process", |e| {
            is_kind(e, kind::OPEN) && e.k.hdr.pid == p && e.file_path.as_deref() == Some(&want[..])
        });
    }
    h.collect_for(Duration::from_millis(300));
    for p in [p1, p2] {
        let n = h
            .seen
            .iter()
            .filter(|e| {
                is_kind(e, kind::OPEN)
                    && e.k.hdr.pid == p
                    && e.file_path.as_deref() == Some(&want[..])
            })
            .count();
        assert_eq!(n, 1, "pid {p}: one record for 50 identical opens");
    }
    let s = h.stop();
    let open = s.kernel.get(&kind::OPEN).copied().unwrap_or_default();
    assert!(
        open.deduped >= 98,
        "the 2 x 49 repeats are counted: {open:?}"
    );
}
