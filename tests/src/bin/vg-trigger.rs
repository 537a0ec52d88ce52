//! `vg-trigger`: performs one real security-relevant action per subcommand,
//! so sensor tests can assert on the event it produces (Tetragon's
//! contrib/tester-progs idea). Prints nothing on success except where noted;
//! exits 0 when the action was performed (even if the syscall failed on
//! purpose) and 1 on a usage error.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in argument")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    // SAFETY (all blocks below): raw syscalls with valid, NUL-terminated
    // pointers that outlive the call; failures are the point of some tests.
    unsafe {
        match a(0) {
            "open" => {
                libc::open(cstr(a(1)).as_ptr(), libc::O_RDONLY);
            }
            "open-repeat" => {
                // the same open N times (kernel dedup: reported once)
                let n: usize = a(2).parse().expect("count");
                let c = cstr(a(1));
                for _ in 0..n {
                    let fd = libc::open(c.as_ptr(), libc::O_RDONLY);
                    if fd >= 0 {
                        libc::close(fd);
                    }
                }
            }
            "open-burst" => {
                // N failing opens of distinct names under a prefix, as fast
                // as possible (flood the ring buffer)
                let n: usize = a(2).parse().expect("count");
                let names: Vec<CString> = (0..n).map(|i| cstr(&format!("{}-{i}", a(1)))).collect();
                for c in &names {
                    libc::open(c.as_ptr(), libc::O_RDONLY);
                }
            }
            "open-burst-threads" => {
                // T threads of this one process, released together, each
                // making N failing opens of distinct names under a prefix
                // (threads racing for the process's priority budget)
                let n: usize = a(2).parse().expect("count");
                let t: usize = a(3).parse().expect("threads");
                let go = std::sync::Arc::new(std::sync::Barrier::new(t));
                let threads: Vec<_> = (0..t)
                    .map(|k| {
                        let names: Vec<CString> =
                            (0..n).map(|i| cstr(&format!("{}-{k}-{i}", a(1)))).collect();
                        let go = go.clone();
                        std::thread::spawn(move || {
                            go.wait();
                            for c in &names {
                                // SAFETY: a valid NUL-terminated path
                                libc::open(c.as_ptr(), libc::O_RDONLY);
                            }
                        })
                    })
                    .collect();
                for th in threads {
                    th.join().expect("opener thread");
                }
            }
            "open-write" => {
                libc::open(cstr(a(1)).as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o600);
            }
            "openat-dirfd" => {
                let d = libc::open(cstr(a(1)).as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
                libc::openat(d, cstr(a(2)).as_ptr(), libc::O_RDONLY);
            }
            "open-relative" => {
                std::env::set_current_dir(a(1)).expect("chdir");
                libc::open(cstr(a(2)).as_ptr(), libc::O_RDONLY);
            }
            "memfd-exec" => {
                let fd = libc::memfd_create(cstr(a(1)).as_ptr(), 0);
                let bin = std::fs::read("/bin/true").expect("read /bin/true");
                libc::write(fd, bin.as_ptr().cast(), bin.len());
                let arg0 = cstr("memfd-true");
                let argv = [arg0.as_ptr(), std::ptr::null()];
                let envp = [std::ptr::null()];
                libc::fexecve(fd, argv.as_ptr(), envp.as_ptr());
                std::process::exit(3);
            }
            "execveat-rel" => {
                // execveat(dirfd of DIR, NAME): no path the syscall
                // tracepoints of execve would show
                let d = libc::open(cstr(a(1)).as_ptr(), libc::O_PATH | libc::O_DIRECTORY);
                let arg0 = cstr("execveat-true");
                let argv = [arg0.as_ptr(), std::ptr::null()];
                let envp: [*const libc::c_char; 1] = [std::ptr::null()];
                libc::syscall(
                    libc::SYS_execveat,
                    d,
                    cstr(a(2)).as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                    0,
                );
                std::process::exit(3);
            }
            "personality-query" => {
                // persona 0xffffffff only reads the current persona
                libc::syscall(libc::SYS_personality, 0xffff_ffffu64);
            }
            "sysinfo" => {
                let mut si: libc::sysinfo = std::mem::zeroed();
                libc::sysinfo(&mut si);
            }
            "klogctl-size" => {
                // SYSLOG_ACTION_SIZE_BUFFER (10): the ring buffer's size, no read
                libc::klogctl(10, std::ptr::null_mut(), 0);
            }
            "memfd" => {
                libc::memfd_create(cstr(a(1)).as_ptr(), libc::MFD_CLOEXEC);
            }
            "connect" => {
                // blocking connect: the result is known when the call returns
                let _ = std::net::TcpStream::connect(format!("{}:{}", a(1), a(2)));
            }
            "connect6" => {
                let _ = std::net::TcpStream::connect(format!("[{}]:{}", a(1), a(2)));
            }
            "uring-open" => {
                // uring-open PATH: one IORING_OP_OPENAT, no open(2)
                let mut ring = io_uring::IoUring::new(8).expect("io_uring_setup");
                let path = std::ffi::CString::new(a(1)).expect("path");
                let e = io_uring::opcode::OpenAt::new(
                    io_uring::types::Fd(libc::AT_FDCWD),
                    path.as_ptr(),
                )
                .flags(libc::O_RDONLY)
                .build()
                .user_data(42);
                // `path` outlives the submission (waited for below); this
                // whole match runs in the caller's unsafe block.
                ring.submission().push(&e).expect("push");
                ring.submit_and_wait(1).expect("io_uring_enter");
                let c = ring.completion().next().expect("completion");
                println!("{}", c.result());
            }
            "int80-open" => {
                // int80-open PATH: open(2) through the 32-bit syscall gate
                // from a 64-bit process (the classic tracepoint evasion);
                // the path must lie below 4 GiB for the ia32 ABI.
                let page = libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                    -1,
                    0,
                );
                assert!(page != libc::MAP_FAILED, "mmap MAP_32BIT");
                let path = a(1).as_bytes();
                assert!(path.len() < 4000);
                std::ptr::copy_nonoverlapping(path.as_ptr(), page as *mut u8, path.len());
                *(page as *mut u8).add(path.len()) = 0;
                let ret: i32;
                // rbx is reserved by LLVM: swap the argument in and out
                std::arch::asm!(
                    "xchg {arg:r}, rbx",
                    "int 0x80",
                    "xchg {arg:r}, rbx",
                    arg = inout(reg) page as usize as u64 => _,
                    inlateout("eax") 5i32 => ret,
                    in("ecx") libc::O_RDONLY,
                    in("edx") 0,
                    out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                );
                println!("{ret}");
            }
            "int80-kill" => {
                // int80-kill: kill(getpid(), 0) through the 32-bit syscall
                // gate (ia32 number 37), a compat-syscall record.
                let pid = libc::getpid();
                let ret: i32;
                std::arch::asm!(
                    "xchg {arg:r}, rbx",
                    "int 0x80",
                    "xchg {arg:r}, rbx",
                    arg = inout(reg) pid as u64 => _,
                    inlateout("eax") 37i32 => ret,
                    in("ecx") 0,
                    out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                );
                println!("{ret}");
            }
            "udp-send" => {
                // udp-send ADDR PORT N: N datagrams with sendto, one socket
                let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind udp");
                let n: u32 = a(3).parse().expect("count");
                for _ in 0..n {
                    let _ = s.send_to(b"vigil", format!("{}:{}", a(1), a(2)));
                }
            }
            "connect-unix" => {
                let _ = std::os::unix::net::UnixStream::connect(a(1));
            }
            "serve-once" => {
                // listen on 127.0.0.1:PORT, accept one connection from ourselves
                let l =
                    std::net::TcpListener::bind(("127.0.0.1", a(1).parse::<u16>().expect("port")))
                        .expect("bind");
                let c =
                    std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
                let (s, _) = l.accept().expect("accept");
                drop((c, s));
            }
            "service" => {
                // service PORT PORT2 DIR ROUNDS EVIL: a loopback server that
                // per request reads DIR/data and runs /bin/true; with EVIL=1
                // it then runs a shell, opens DIR/other and connects to PORT2.
                let port: u16 = a(1).parse().expect("port");
                let port2: u16 = a(2).parse().expect("port2");
                let dir = a(3);
                let rounds: u32 = a(4).parse().expect("rounds");
                let l = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
                for _ in 0..rounds {
                    let c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
                    let (s, _) = l.accept().expect("accept");
                    let _ = std::fs::read(format!("{dir}/data")).expect("read data");
                    std::process::Command::new("/bin/true")
                        .status()
                        .expect("run true");
                    drop((c, s));
                }
                if a(5) == "1" {
                    std::process::Command::new("/bin/sh")
                        .args(["-c", "true"])
                        .status()
                        .expect("run sh");
                    let _ = std::fs::File::open(format!("{dir}/other")).expect("open other");
                    let _ = std::net::TcpStream::connect(("127.0.0.1", port2)).expect("connect 2");
                }
            }
            "serve-shell" => {
                // a listening server that answers one connection by
                // running a shell (the shape of a web shell)
                let l = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
                let c =
                    std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
                let (s, _) = l.accept().expect("accept");
                let st = std::process::Command::new("/bin/sh")
                    .args(["-c", "true"])
                    .status()
                    .expect("run /bin/sh");
                drop((c, s));
                std::process::exit(if st.success() { 0 } else { 1 });
            }
            "fail-syscalls" => {
                // Exactly N open(2) of a missing path (ENOENT: open, not
                // openat, which the loader and std also call), then as
                // nobody exactly M kill(1, 0) and K setuid(0) (EPERM).
                // Prints "done", then stays alive until stdin closes, so
                // its counters are read while the process exists.
                let path = cstr(a(1));
                let n: usize = a(2).parse().expect("N");
                let m: usize = a(3).parse().expect("M");
                let k: usize = a(4).parse().expect("K");
                for _ in 0..n {
                    libc::syscall(libc::SYS_open, path.as_ptr(), libc::O_RDONLY);
                }
                assert_eq!(libc::setresgid(65534, 65534, 65534), 0, "setresgid nobody");
                assert_eq!(libc::setresuid(65534, 65534, 65534), 0, "setresuid nobody");
                for _ in 0..m {
                    libc::syscall(libc::SYS_kill, 1, 0);
                }
                for _ in 0..k {
                    libc::syscall(libc::SYS_setuid, 0);
                }
                use std::io::{Read, Write};
                println!("done");
                let _ = std::io::stdout().flush();
                let mut sink = Vec::new();
                let _ = std::io::stdin().read_to_end(&mut sink);
            }
            "syn-retrans" => {
                // In a new network namespace (this process only) whose
                // loopback drops every packet to PORT: a non-blocking
                // connect to 127.0.0.1:PORT, whose SYN the kernel
                // retransmits. After SECS seconds prints the socket's own
                // count (tcpi_total_retrans) and the local port, then
                // closes. Leaves nothing behind: the namespace dies with
                // the process.
                let port: u16 = a(1).parse().expect("port");
                let secs: f64 = a(2).parse().expect("secs");
                assert_eq!(
                    libc::unshare(libc::CLONE_NEWNET),
                    0,
                    "unshare(CLONE_NEWNET)"
                );
                let run = |args: &[&str]| {
                    let st = std::process::Command::new(args[0])
                        .args(&args[1..])
                        .status()
                        .expect("run ip/iptables");
                    assert!(st.success(), "{args:?} failed");
                };
                run(&["ip", "link", "set", "lo", "up"]);
                let p = port.to_string();
                run(&[
                    "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", &p, "-j", "DROP",
                ]);
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
                assert!(fd >= 0);
                let sa = libc::sockaddr_in {
                    sin_family: libc::AF_INET as u16,
                    sin_port: port.to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
                    },
                    sin_zero: [0; 8],
                };
                libc::connect(
                    fd,
                    (&sa as *const libc::sockaddr_in).cast(),
                    size_of::<libc::sockaddr_in>() as u32,
                );
                std::thread::sleep(std::time::Duration::from_secs_f64(secs));
                let mut info: libc::tcp_info = std::mem::zeroed();
                let mut len = size_of::<libc::tcp_info>() as u32;
                libc::getsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_INFO,
                    (&mut info as *mut libc::tcp_info).cast(),
                    &mut len,
                );
                let mut local: libc::sockaddr_in = std::mem::zeroed();
                let mut llen = size_of::<libc::sockaddr_in>() as u32;
                libc::getsockname(fd, (&mut local as *mut libc::sockaddr_in).cast(), &mut llen);
                println!(
                    "{} {}",
                    info.tcpi_total_retrans,
                    u16::from_be(local.sin_port)
                );
                libc::close(fd);
            }
            "setuid" => {
                libc::setuid(a(1).parse().expect("uid"));
            }
            "setresgid" => {
                let g: libc::gid_t = a(1).parse().expect("gid");
                libc::setresgid(g, g, g);
            }
            "capset-drop" => {
                // drop everything from the effective set
                let mut hdr = libc_cap_header {
                    version: 0x2008_0522,
                    pid: 0,
                };
                let data = [libc_cap_data::default(); 2];
                libc::syscall(libc::SYS_capset, &mut hdr as *mut _, data.as_ptr());
            }
            "ptrace" => {
                let mut child = std::process::Command::new("sleep")
                    .arg("5")
                    .spawn()
                    .expect("spawn sleep");
                let pid = child.id() as libc::pid_t;
                libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0);
                let mut st = 0;
                libc::waitpid(pid, &mut st, 0);
                libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
                let _ = child.kill();
                let _ = child.wait();
                println!("{pid}");
            }
            "bpf-map" => {
                // BPF_MAP_CREATE of a 1-entry array named from argv
                drop(vigil_rootgate::bpf::create_array_map(a(1).as_bytes()));
            }
            "finit-module" => {
                // a non-module file: the kernel refuses it, the attempt is the event
                let f = std::fs::File::open(a(1)).expect("open module file");
                libc::syscall(
                    libc::SYS_finit_module,
                    f.as_raw_fd(),
                    cstr("vigil_test=1").as_ptr(),
                    0,
                );
            }
            "init-module" => {
                let img = [0u8; 64];
                libc::syscall(
                    libc::SYS_init_module,
                    img.as_ptr(),
                    img.len(),
                    cstr("p=1").as_ptr(),
                );
            }
            "delete-module" => {
                libc::syscall(
                    libc::SYS_delete_module,
                    cstr(a(1)).as_ptr(),
                    libc::O_NONBLOCK,
                );
            }
            "mount-tmpfs" => {
                // private mount namespace first: nothing leaks to the host
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    std::process::exit(4);
                }
                libc::mount(
                    cstr("none").as_ptr(),
                    cstr("/").as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                );
                std::fs::create_dir_all(a(1)).expect("mkdir");
                libc::mount(
                    cstr("vigil-test").as_ptr(),
                    cstr(a(1)).as_ptr(),
                    cstr("tmpfs").as_ptr(),
                    libc::MS_NOSUID,
                    std::ptr::null(),
                );
                libc::umount2(cstr(a(1)).as_ptr(), libc::MNT_DETACH);
                let _ = std::fs::remove_dir(a(1));
            }
            "unshare" => {
                libc::unshare(libc::CLONE_NEWUTS | libc::CLONE_NEWNET);
            }
            "setns" => {
                // a namespace file given by path (e.g. /proc/self/ns/net)
                let f = std::fs::File::open(a(1)).expect("open ns");
                libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET);
            }
            "exit" => {
                std::process::exit(a(1).parse().expect("code"));
            }
            "in-container" => {
                // in-container CGROUP_DIR INIT_PID ACTION ARG [ARG2]: become
                // a task of the container whose init is INIT_PID (join its
                // cgroup and its net, uts, ipc, mnt namespaces, then fork
                // into its pid namespace) and, in that child, perform
                // ACTION with a descriptor opened before joining:
                //   setns NSPATH        setns(open(NSPATH), 0)
                //   setns-pidfd PID     setns(pidfd_open(PID), CLONE_NEWNET)
                //   write-at DIR NAME   openat(open(DIR), NAME, O_WRONLY|O_CREAT)
                // Prints "<child host pid> <ret> <errno>".
                let (cg, init, action) = (a(1), a(2), a(3));
                let target: i32 = match action {
                    "setns" => libc::open(cstr(a(4)).as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC),
                    "setns-pidfd" => libc::syscall(
                        libc::SYS_pidfd_open,
                        a(4).parse::<libc::pid_t>().expect("pid"),
                        0,
                    ) as i32,
                    "write-at" => libc::open(
                        cstr(a(4)).as_ptr(),
                        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    ),
                    _ => {
                        eprintln!("in-container: unknown action {action}");
                        std::process::exit(1);
                    }
                };
                assert!(
                    target >= 0,
                    "open target: {}",
                    std::io::Error::last_os_error()
                );
                let ns: Vec<(i32, i32)> = [
                    ("net", libc::CLONE_NEWNET),
                    ("uts", libc::CLONE_NEWUTS),
                    ("ipc", libc::CLONE_NEWIPC),
                    ("mnt", libc::CLONE_NEWNS),
                    ("pid", libc::CLONE_NEWPID),
                ]
                .iter()
                .map(|(n, t)| {
                    let fd = libc::open(
                        cstr(&format!("/proc/{init}/ns/{n}")).as_ptr(),
                        libc::O_RDONLY | libc::O_CLOEXEC,
                    );
                    assert!(fd >= 0, "open ns {n}: {}", std::io::Error::last_os_error());
                    (fd, *t)
                })
                .collect();
                std::fs::write(format!("{cg}/cgroup.procs"), "0").expect("join cgroup");
                for (fd, t) in &ns {
                    assert_eq!(
                        libc::setns(*fd, *t),
                        0,
                        "setns {t:#x}: {}",
                        std::io::Error::last_os_error()
                    );
                }
                let child = libc::fork();
                if child == 0 {
                    let r = match action {
                        "setns" => libc::setns(target, 0) as i64,
                        "setns-pidfd" => libc::setns(target, libc::CLONE_NEWNET) as i64,
                        _ => {
                            let fd = libc::openat(
                                target,
                                cstr(a(5)).as_ptr(),
                                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                                0o600,
                            );
                            if fd >= 0 {
                                libc::write(fd, b"vigil\n".as_ptr().cast(), 6);
                                libc::close(fd);
                            }
                            fd as i64
                        }
                    };
                    let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                    // the child's pid as the host sees it: /proc/self is the
                    // container's /proc now, so ask the parent to print it
                    libc::_exit(if r < 0 { e.clamp(1, 255) } else { 0 });
                }
                let mut status = 0;
                libc::waitpid(child, &mut status, 0);
                let code = libc::WEXITSTATUS(status);
                println!("{child} {} {code}", if code == 0 { 0 } else { -1 });
            }
            "exec" => {
                // exec argv[1..] directly (no shell)
                let prog = cstr(a(1));
                let owned: Vec<CString> = args[1..].iter().map(|s| cstr(s)).collect();
                let mut argv: Vec<*const libc::c_char> = owned.iter().map(|c| c.as_ptr()).collect();
                argv.push(std::ptr::null());
                libc::execv(prog.as_ptr(), argv.as_ptr());
                std::process::exit(3);
            }
            "exec-many-args" => {
                // 40 arguments, one of 3 KiB
                let big = "B".repeat(3072);
                let mut v: Vec<CString> = vec![cstr("/bin/true")];
                for i in 0..39 {
                    v.push(cstr(&if i == 20 {
                        big.clone()
                    } else {
                        format!("arg{i}")
                    }));
                }
                let mut argv: Vec<*const libc::c_char> = v.iter().map(|c| c.as_ptr()).collect();
                argv.push(std::ptr::null());
                libc::execv(v[0].as_ptr(), argv.as_ptr());
                std::process::exit(3);
            }
            "cwd" => {
                println!(
                    "{}",
                    String::from_utf8_lossy(
                        std::env::current_dir().expect("cwd").as_os_str().as_bytes()
                    )
                );
            }
            other => {
                eprintln!("vg-trigger: unknown action {other:?}");
                std::process::exit(1);
            }
        }
    }
}

#[repr(C)]
struct libc_cap_header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct libc_cap_data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}
