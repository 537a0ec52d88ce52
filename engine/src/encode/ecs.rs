//! Event → JSON with Elastic Common Schema field names. Every field is
//! documented in `docs/events.md`; vigil-specific data lives under `vigil.*`.

use crate::container::Container;
use crate::event::ProcInfo;
use crate::event::{Event, Lifecycle, Phase, Target, basename, dns_is_answer, ip};
use crate::host::ContainerMeta;
use std::net::IpAddr;
use std::sync::Arc;
use vigil_bpf::abi::{self, kind};
use vigil_bpf::decode::Body;
use vigil_outputs::json::{Fragment, Key, Writer, WriterScratch};
use vigil_outputs::key;

mod direct;

/// RFC 3339 UTC timestamp with nanoseconds.
pub fn rfc3339(unix_ns: i64) -> String {
    let mut buf = [0u8; RFC3339_MAX];
    rfc3339_into(unix_ns, &mut buf).to_owned()
}

/// Longest [`rfc3339_into`] result (a five-digit year and a sign).
pub const RFC3339_MAX: usize = 36;

/// [`rfc3339`] written into `buf`, without allocating: the encoder writes
/// two or three timestamps per record.
pub fn rfc3339_into(unix_ns: i64, buf: &mut [u8; RFC3339_MAX]) -> &str {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = vigil_outputs::encode::civil_from_days(days);
    let mut n = 0;
    if y < 0 {
        buf[0] = b'-';
        n = 1;
    }
    n += put_digits(&mut buf[n..], y.unsigned_abs(), 4);
    for (sep, v, width) in [
        (b'-', u64::from(m), 2),
        (b'-', u64::from(d), 2),
        (b'T', (sod / 3600) as u64, 2),
        (b':', ((sod / 60) % 60) as u64, 2),
        (b':', (sod % 60) as u64, 2),
        (b'.', nanos as u64, 9),
    ] {
        buf[n] = sep;
        n += 1;
        n += put_digits(&mut buf[n..], v, width);
    }
    buf[n] = b'Z';
    n += 1;
    // only ASCII digits and separators were written
    std::str::from_utf8(&buf[..n]).unwrap_or_default()
}

/// Writes `v` in decimal, zero-padded to at least `width` digits, at the
/// start of `out`; returns the number of bytes written.
fn put_digits(out: &mut [u8], mut v: u64, width: usize) -> usize {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    while v > 0 {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let i = i.min(tmp.len() - width);
    let len = tmp.len() - i;
    out[..len].copy_from_slice(&tmp[i..]);
    len
}

/// Writes `v` (below 10^9) as nine digits, two at a time.
fn put_nanos(out: &mut [u8], v: u64) {
    const PAIRS: &[u8; 200] = b"00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";
    let mut v = v % 1_000_000_000;
    let mut i = 9;
    while i > 1 {
        let d = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        out[i] = PAIRS[d];
        out[i + 1] = PAIRS[d + 1];
    }
    out[0] = b'0' + v as u8;
}

/// Names of the signals the self-protection sensor reports.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        _ => "SIG?",
    }
}

/// The result (fd, 0 or -errno) of the call an event reports, if it has one.
pub fn syscall_ret(ev: &Event) -> Option<i64> {
    Some(match &ev.k.body {
        Body::Open { info, .. } => info.ret,
        Body::Sock { info, .. } | Body::Dns { info, .. } => info.ret,
        Body::Compat { info, .. } => info.ret,
        Body::Syscall(s) => s.ret,
        Body::SetId(s) => s.ret,
        Body::CapSet(s) => s.ret,
        Body::Ptrace(s) => s.ret,
        Body::Bpf { info, .. } => info.ret,
        Body::Module { info, .. } => info.ret,
        Body::Memfd { info, .. } => info.ret,
        Body::Mount { info, .. } => info.ret,
        Body::Umount { info, .. } => info.ret,
        Body::Ns(n) => n.ret,
        Body::FChange { info, .. } => info.ret,
        Body::Capable(c) => i64::from(c.ret),
        _ => return None,
    })
}

/// `vigil.file.written`: whether the event wrote the file at `file.path`.
/// True for an open asking for write access (O_WRONLY, O_RDWR, O_CREAT,
/// O_TRUNC) and for a successful rename, link or symlink, whose
/// `file.path` is the destination name (the path now holds new content);
/// false for other opens (io_uring opens included); absent for every
/// other event.
pub fn file_written(ev: &Event) -> Option<bool> {
    match &ev.k.body {
        Body::Open { info, .. } => Some(info.flags & OPEN_WRITE_FLAGS != 0),
        Body::IoUring { info, .. } if info.what == abi::uring::OPEN => {
            Some(info.flags & OPEN_WRITE_FLAGS != 0)
        }
        Body::FChange { info, .. } => {
            let op = fchange_op(info.syscall).1;
            (matches!(op, "rename" | "link" | "symlink") && info.ret >= 0).then_some(true)
        }
        _ => None,
    }
}

/// The open flags that ask for write access (`vigil.open.write`).
pub const OPEN_WRITE_FLAGS: u32 =
    (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u32;

/// Whether a call of an event kind succeeded (`event.outcome`):
/// EINPROGRESS is a started non-blocking connect, not a failure.
pub fn succeeded(k: u16, ret: i64) -> bool {
    ret >= 0 || (k == kind::CONNECT && -ret == i64::from(libc::EINPROGRESS))
}

/// The syscall name of a file change.
pub fn fchange_syscall(vsys: u32) -> &'static str {
    use abi::sys;
    match vsys {
        sys::RENAME => "rename",
        sys::RENAMEAT => "renameat",
        sys::RENAMEAT2 => "renameat2",
        sys::UNLINK => "unlink",
        sys::UNLINKAT => "unlinkat",
        sys::RMDIR => "rmdir",
        sys::TRUNCATE => "truncate",
        sys::FTRUNCATE => "ftruncate",
        sys::CHMOD => "chmod",
        sys::FCHMOD => "fchmod",
        sys::FCHMODAT => "fchmodat",
        sys::FCHMODAT2 => "fchmodat2",
        sys::CHOWN => "chown",
        sys::FCHOWN => "fchown",
        sys::LCHOWN => "lchown",
        sys::FCHOWNAT => "fchownat",
        sys::LINK => "link",
        sys::LINKAT => "linkat",
        sys::SYMLINK => "symlink",
        sys::SYMLINKAT => "symlinkat",
        sys::WRITE => "write",
        sys::PWRITE64 => "pwrite64",
        sys::WRITEV => "writev",
        sys::PWRITEV => "pwritev",
        sys::PWRITEV2 => "pwritev2",
        sys::MKDIR => "mkdir",
        sys::MKDIRAT => "mkdirat",
        sys::MKNOD => "mknod",
        sys::MKNODAT => "mknodat",
        sys::UTIMENSAT => "utimensat",
        sys::UTIMES => "utimes",
        sys::FUTIMESAT => "futimesat",
        sys::UTIME => "utime",
        _ => "?",
    }
}

/// (type, action) of a file change by its syscall.
pub fn fchange_op(vsys: u32) -> (&'static str, &'static str) {
    use abi::sys;
    match vsys {
        sys::RENAME | sys::RENAMEAT | sys::RENAMEAT2 => ("change", "rename"),
        sys::UNLINK | sys::UNLINKAT => ("deletion", "unlink"),
        sys::RMDIR => ("deletion", "rmdir"),
        sys::TRUNCATE | sys::FTRUNCATE => ("change", "truncate"),
        sys::CHMOD | sys::FCHMOD | sys::FCHMODAT | sys::FCHMODAT2 => ("change", "chmod"),
        sys::CHOWN | sys::FCHOWN | sys::LCHOWN | sys::FCHOWNAT => ("change", "chown"),
        sys::LINK | sys::LINKAT => ("creation", "link"),
        sys::SYMLINK | sys::SYMLINKAT => ("creation", "symlink"),
        sys::WRITE | sys::PWRITE64 | sys::WRITEV | sys::PWRITEV | sys::PWRITEV2 => {
            ("change", "write")
        }
        sys::MKDIR | sys::MKDIRAT => ("creation", "mkdir"),
        sys::MKNOD | sys::MKNODAT => ("creation", "mknod"),
        sys::UTIMENSAT | sys::UTIMES | sys::FUTIMESAT | sys::UTIME => ("change", "utimes"),
        _ => ("change", "file-change"),
    }
}

/// The file type of an `S_IFMT` mode (mknod; mkdir passes none).
pub fn file_type_name(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFCHR => "char",
        libc::S_IFBLK => "block",
        libc::S_IFIFO => "fifo",
        libc::S_IFSOCK => "socket",
        libc::S_IFREG | 0 => "file",
        libc::S_IFDIR => "directory",
        _ => "other",
    }
}

/// The actions of file changes (`event.action` of `VG_FCHANGE` events).
pub const FCHANGE_ACTIONS: &[&str] = &[
    "rename", "unlink", "rmdir", "truncate", "chmod", "chown", "link", "symlink", "write", "mkdir",
    "mknod", "utimes",
];

/// (syscall number, category, type, action) of the calls the `syscall`
/// sensor reports (`VG_SYSCALL`; numbers as in [`abi::RARE_CALLS`]).
pub const RARE_CALL_CLASSES: &[(u32, &str, &str, &str)] = &[
    (99, "host", "info", "sysinfo"),
    (103, "host", "access", "syslog"),
    (135, "process", "change", "personality"),
];

/// (category, type, action) of a `VG_SYSCALL` record by its number.
pub fn rare_call_class(nr: u32) -> (&'static str, &'static str, &'static str) {
    RARE_CALL_CLASSES
        .iter()
        .find(|c| c.0 == nr)
        .map_or(("host", "info", "syscall"), |c| (c.1, c.2, c.3))
}

/// Name of a syslog(2) action (`SYSLOG_ACTION_CLEAR`), from its type argument.
pub fn syslog_action_name(t: u64) -> &'static str {
    const N: [&str; 11] = [
        "SYSLOG_ACTION_CLOSE",
        "SYSLOG_ACTION_OPEN",
        "SYSLOG_ACTION_READ",
        "SYSLOG_ACTION_READ_ALL",
        "SYSLOG_ACTION_READ_CLEAR",
        "SYSLOG_ACTION_CLEAR",
        "SYSLOG_ACTION_CONSOLE_OFF",
        "SYSLOG_ACTION_CONSOLE_ON",
        "SYSLOG_ACTION_CONSOLE_LEVEL",
        "SYSLOG_ACTION_SIZE_UNREAD",
        "SYSLOG_ACTION_SIZE_BUFFER",
    ];
    usize::try_from(t)
        .ok()
        .and_then(|i| N.get(i))
        .copied()
        .unwrap_or("SYSLOG_ACTION_?")
}

/// The actions of `VG_PTRACE` records that are not ptrace(2) itself.
pub const PROCESS_VM_ACTIONS: &[&str] = &["process-vm-readv", "process-vm-writev"];

/// `vigil.file_change.times` of a utimes-family change: `set` when the
/// call passed a time value (timestomping), `now` when it set the
/// current time (a plain `touch`).
pub fn utime_times(mode: u32) -> &'static str {
    use abi::utime;
    if mode & (utime::ATIME_SET | utime::MTIME_SET) != 0 {
        "set"
    } else {
        "now"
    }
}

/// (category, type, action) of an event: the kind's, refined by the
/// operation for file changes.
pub fn classify_event(ev: &Event) -> (&'static str, &'static str, &'static str) {
    match &ev.k.body {
        Body::FChange { info, .. } => {
            let (t, a) = fchange_op(info.syscall);
            ("file", t, a)
        }
        Body::Dns { info, .. } if dns_is_answer(info) => ("network", "protocol", "dns-answer"),
        Body::Dns { .. } => ("network", "protocol", "dns-query"),
        Body::IoUring { info, .. } => uring_class(info.what),
        Body::Syscall(s) => rare_call_class(s.nr),
        Body::Ptrace(p) if p.syscall == abi::sys::PROCESS_VM_READV => {
            ("process", "access", "process-vm-readv")
        }
        Body::Ptrace(p) if p.syscall == abi::sys::PROCESS_VM_WRITEV => {
            ("process", "change", "process-vm-writev")
        }
        _ => classify(ev.k.hdr.kind),
    }
}

/// (category, type, action) of an io_uring record by what it reports.
pub fn uring_class(what: u32) -> (&'static str, &'static str, &'static str) {
    use vigil_bpf::abi::uring;
    match what {
        uring::SETUP => ("process", "creation", "io-uring-setup"),
        uring::OPEN => ("file", "access", "io-uring-open"),
        uring::FILE => ("file", "change", "io-uring-file"),
        uring::CONNECT => ("network", "connection", "io-uring-connect"),
        _ => ("process", "info", "io-uring-op"),
    }
}

/// Every (category, action) io_uring records produce.
pub const IOURING_ACTIONS: &[(&str, &str)] = &[
    ("process", "io-uring-setup"),
    ("file", "io-uring-open"),
    ("file", "io-uring-file"),
    ("network", "io-uring-connect"),
    ("process", "io-uring-op"),
];

/// Name of an io_uring opcode (`IORING_OP_*` without the prefix, lower case).
pub fn uring_op_name(op: u8) -> &'static str {
    const NAMES: [&str; 63] = [
        "nop",
        "readv",
        "writev",
        "fsync",
        "read_fixed",
        "write_fixed",
        "poll_add",
        "poll_remove",
        "sync_file_range",
        "sendmsg",
        "recvmsg",
        "timeout",
        "timeout_remove",
        "accept",
        "async_cancel",
        "link_timeout",
        "connect",
        "fallocate",
        "openat",
        "close",
        "files_update",
        "statx",
        "read",
        "write",
        "fadvise",
        "madvise",
        "send",
        "recv",
        "openat2",
        "epoll_ctl",
        "splice",
        "provide_buffers",
        "remove_buffers",
        "tee",
        "shutdown",
        "renameat",
        "unlinkat",
        "mkdirat",
        "symlinkat",
        "linkat",
        "msg_ring",
        "fsetxattr",
        "setxattr",
        "fgetxattr",
        "getxattr",
        "socket",
        "uring_cmd",
        "send_zc",
        "sendmsg_zc",
        "read_multishot",
        "waitid",
        "futex_wait",
        "futex_wake",
        "futex_waitv",
        "fixed_fd_install",
        "ftruncate",
        "bind",
        "listen",
        "recv_zc",
        "epoll_wait",
        "readv_fixed",
        "writev_fixed",
        "pipe",
    ];
    NAMES.get(usize::from(op)).copied().unwrap_or("unknown")
}

/// (category, type, action) for a kind.
pub fn classify(k: u16) -> (&'static str, &'static str, &'static str) {
    match k {
        kind::FCHANGE => ("file", "change", "file-change"),
        kind::EXEC => ("process", "start", "exec"),
        kind::FORK => ("process", "start", "fork"),
        kind::EXIT => ("process", "end", "exit"),
        kind::OPEN => ("file", "access", "open"),
        kind::CONNECT => ("network", "connection", "connect"),
        kind::ACCEPT => ("network", "connection", "accept"),
        kind::LISTEN => ("network", "start", "listen"),
        kind::TCP_STATE => ("network", "change", "tcp-state"),
        kind::UDP_SEND => ("network", "connection", "udp-send"),
        kind::DNS => ("network", "protocol", "dns-query"),
        kind::CAPABLE => ("iam", "access", "capable"),
        kind::SETID => ("iam", "change", "setid"),
        kind::CAPSET => ("iam", "change", "capset"),
        kind::PTRACE => ("process", "access", "ptrace"),
        kind::SIGNAL => ("process", "access", "signal"),
        kind::IOURING => ("process", "info", "io-uring-op"),
        kind::COMPAT => ("process", "info", "compat-syscall"),
        // refined per call by classify_event (RARE_CALL_CLASSES)
        kind::SYSCALL => ("host", "info", "syscall"),
        kind::BPF => ("host", "change", "bpf"),
        kind::MODULE => ("driver", "change", "module"),
        kind::MEMFD => ("file", "creation", "memfd-create"),
        kind::MOUNT => ("configuration", "change", "mount"),
        kind::UMOUNT => ("configuration", "change", "umount"),
        kind::UNSHARE => ("process", "change", "unshare"),
        kind::SETNS => ("process", "change", "setns"),
        kind::READLINE => ("process", "info", "readline"),
        _ => ("host", "info", "unknown"),
    }
}

/// Names of CLONE_NEW* bits.
pub fn ns_flag_names(flags: u64) -> Vec<&'static str> {
    ns_flags(flags).collect()
}

/// [`ns_flag_names`] without collecting them (the encoder writes them).
fn ns_flags(flags: u64) -> impl Iterator<Item = &'static str> {
    const T: &[(u64, &str)] = &[
        (0x0002_0000, "mnt"),
        (0x0200_0000, "cgroup"),
        (0x0400_0000, "uts"),
        (0x0800_0000, "ipc"),
        (0x1000_0000, "user"),
        (0x2000_0000, "pid"),
        (0x4000_0000, "net"),
        (0x0000_0080, "time"),
    ];
    T.iter()
        .filter(move |(b, _)| flags & b != 0)
        .map(|(_, n)| *n)
}

/// Capability name (`CAP_SYS_ADMIN`).
pub fn cap_name(cap: i32) -> std::borrow::Cow<'static, str> {
    const N: &[&str] = &[
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ];
    match usize::try_from(cap).ok().and_then(|c| N.get(c)) {
        Some(n) => std::borrow::Cow::Borrowed(n),
        None => std::borrow::Cow::Owned(format!("CAP_{cap}")),
    }
}

pub(crate) fn caps_list(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|b| mask & (1 << b) != 0)
        .map(|c| cap_name(c).into_owned())
        .collect()
}

/// Open flags by name.
pub fn open_flag_names(flags: u32) -> Vec<&'static str> {
    open_flags(flags).collect()
}

/// [`open_flag_names`] without collecting them (the encoder writes them).
fn open_flags(flags: u32) -> impl Iterator<Item = &'static str> {
    let acc = match flags & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    };
    std::iter::once(acc).chain(
        OPEN_FLAG_BITS
            .iter()
            .filter(move |(b, _)| flags & b == *b && *b != 0)
            .map(|(_, n)| *n),
    )
}

const OPEN_FLAG_BITS: &[(u32, &str)] = &[
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"),
    (0o2000000, "O_CLOEXEC"),
    (0o10000000, "O_PATH"),
    (0o20200000, "O_TMPFILE"),
];

/// errno name for negative returns.
pub fn errno_str(ret: i64) -> std::borrow::Cow<'static, str> {
    let code = (-ret) as i32;
    let name = match code {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::EEXIST => "EEXIST",
        libc::EINVAL => "EINVAL",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EBADF => "EBADF",
        libc::ESRCH => "ESRCH",
        libc::EBUSY => "EBUSY",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::EROFS => "EROFS",
        _ => return std::borrow::Cow::Owned(format!("E{code}")),
    };
    std::borrow::Cow::Borrowed(name)
}

pub(crate) fn tcp_state(s: u8) -> &'static str {
    vigil_bpf::TCP_STATES
        .iter()
        .find(|x| x.0 == s)
        .map(|x| x.1)
        .unwrap_or("UNKNOWN")
}

pub(crate) fn bpf_cmd(c: u32) -> String {
    const N: &[&str] = &[
        "BPF_MAP_CREATE",
        "BPF_MAP_LOOKUP_ELEM",
        "BPF_MAP_UPDATE_ELEM",
        "BPF_MAP_DELETE_ELEM",
        "BPF_MAP_GET_NEXT_KEY",
        "BPF_PROG_LOAD",
        "BPF_OBJ_PIN",
        "BPF_OBJ_GET",
        "BPF_PROG_ATTACH",
        "BPF_PROG_DETACH",
        "BPF_PROG_TEST_RUN",
        "BPF_PROG_GET_NEXT_ID",
        "BPF_MAP_GET_NEXT_ID",
        "BPF_PROG_GET_FD_BY_ID",
        "BPF_MAP_GET_FD_BY_ID",
        "BPF_OBJ_GET_INFO_BY_FD",
        "BPF_PROG_QUERY",
        "BPF_RAW_TRACEPOINT_OPEN",
        "BPF_BTF_LOAD",
        "BPF_BTF_GET_FD_BY_ID",
        "BPF_TASK_FD_QUERY",
        "BPF_MAP_LOOKUP_AND_DELETE_ELEM",
        "BPF_MAP_FREEZE",
        "BPF_BTF_GET_NEXT_ID",
        "BPF_MAP_LOOKUP_BATCH",
        "BPF_MAP_LOOKUP_AND_DELETE_BATCH",
        "BPF_MAP_UPDATE_BATCH",
        "BPF_MAP_DELETE_BATCH",
        "BPF_LINK_CREATE",
        "BPF_LINK_UPDATE",
        "BPF_LINK_GET_FD_BY_ID",
        "BPF_LINK_GET_NEXT_ID",
        "BPF_ENABLE_STATS",
        "BPF_ITER_CREATE",
        "BPF_LINK_DETACH",
        "BPF_PROG_BIND_MAP",
        "BPF_TOKEN_CREATE",
    ];
    N.get(c as usize)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("BPF_CMD_{c}"))
}

pub(crate) fn ptrace_req(r: i64) -> String {
    match r {
        0 => "PTRACE_TRACEME".into(),
        1 => "PTRACE_PEEKTEXT".into(),
        2 => "PTRACE_PEEKDATA".into(),
        4 => "PTRACE_POKETEXT".into(),
        5 => "PTRACE_POKEDATA".into(),
        7 => "PTRACE_CONT".into(),
        8 => "PTRACE_KILL".into(),
        9 => "PTRACE_SINGLESTEP".into(),
        12 => "PTRACE_GETREGS".into(),
        13 => "PTRACE_SETREGS".into(),
        16 => "PTRACE_ATTACH".into(),
        17 => "PTRACE_DETACH".into(),
        24 => "PTRACE_SYSCALL".into(),
        0x4200 => "PTRACE_SETOPTIONS".into(),
        0x4206 => "PTRACE_SEIZE".into(),
        0x4207 => "PTRACE_INTERRUPT".into(),
        r => format!("PTRACE_{r}"),
    }
}

pub(crate) fn setid_name(s: u32) -> &'static str {
    use abi::sys::*;
    match s {
        SETUID => "setuid",
        SETGID => "setgid",
        SETREUID => "setreuid",
        SETREGID => "setregid",
        SETRESUID => "setresuid",
        SETRESGID => "setresgid",
        SETFSUID => "setfsuid",
        SETFSGID => "setfsgid",
        _ => "unknown",
    }
}

/// A container start or stop record (`event.action: container-start`,
/// `container-stop`; docs/events.md).
pub fn encode_lifecycle(l: &Lifecycle, hostname: &str, boot_offset_ns: i64) -> Vec<u8> {
    let c = &l.ctr;
    let unix = |boot: u64| boot_offset_ns.saturating_add(boot as i64);
    let start = l.phase == Phase::Start;
    let mut w = Writer::new();
    w.str("@timestamp", rfc3339(unix(l.at_ns)));
    w.str("event.kind", "event")
        .strs("event.category", ["process"])
        .strs("event.type", [if start { "start" } else { "end" }])
        .str(
            "event.action",
            if start {
                "container-start"
            } else {
                "container-stop"
            },
        )
        .str("event.module", "vigil");
    if c.started_ns != 0 {
        w.str("event.start", rfc3339(unix(c.started_ns)));
        if !start {
            w.str("event.end", rfc3339(unix(l.at_ns)))
                .u64("event.duration", l.at_ns.saturating_sub(c.started_ns));
        }
    }
    w.str("host.hostname", hostname);
    w.u64("process.pid", c.init_pid.into());
    if !c.init_exe.is_empty() {
        w.str("process.executable", &c.init_exe[..]);
    }
    if !c.init_cmdline.is_empty() {
        w.str("process.command_line", &c.init_cmdline[..]);
    }
    w.str("container.id", c.id.as_bytes());
    if let Some(n) = &c.name {
        w.str("container.name", n.as_bytes());
    }
    if let Some(i) = &c.image {
        w.str("container.image.name", i.as_bytes());
    }
    w.str("container.runtime", c.runtime);
    w.str("vigil.sensor", "containers");
    w.bool("vigil.container.seen_at_start", c.seen_at_start);
    if let Some(p) = &c.pod {
        w.str("vigil.container.pod_uid", p.as_bytes());
    }
    w.u64("vigil.ns.pid", c.pidns.into());
    if c.cgroup_id != 0 {
        w.u64("vigil.cgroup.id", c.cgroup_id);
    }
    if let Some(p) = &c.cgroup_path {
        w.str("vigil.cgroup.path", p.as_bytes());
    }
    w.finish()
}

/// The record that follows an exec event written `vigil.hash.pending`:
/// `event.action: exec-hash` with the same `event.sequence`, the process
/// and its `process.hash.sha256` (or `vigil.hash.skipped`).
pub fn encode_hash_followup(ev: &Event, hostname: &str) -> Vec<u8> {
    let mut w = vigil_outputs::json::Writer::new();
    let h = &ev.k.hdr;
    w.str("@timestamp", rfc3339(ev.unix_ns))
        .str("event.kind", "event")
        .strs("event.category", ["process"])
        .strs("event.type", ["info"])
        .str("event.action", "exec-hash")
        .str("event.module", "vigil")
        .u64("event.sequence", ev.seq)
        .str("host.hostname", hostname)
        .u64("process.pid", h.pid.into())
        .str("process.name", ev.k.comm());
    if let Some(p) = &ev.process {
        if !p.exe.is_empty() {
            w.str("process.executable", &p.exe);
        }
        if let Some(x) = &p.hash {
            w.str("process.hash.sha256", x.as_bytes());
        }
    }
    if let Some(why) = ev.hash_skipped {
        w.str("vigil.hash.skipped", why);
    }
    if ev.hash_known_bad {
        w.bool("vigil.hash.known_bad", true);
    }
    w.finish()
}

/// Encodes an event as one ECS JSON object. `kind_override` lets alerts
/// reuse the encoder (`event.kind: alert`).
pub fn encode(ev: &Event, hostname: &str, event_kind: &str) -> Vec<u8> {
    encode_with(ev, hostname, event_kind, |_| {}, |_| {})
}

/// [`encode`], with `head` writing more fields right after `event.outcome`
/// (alerts: `event.severity`, `message`, `rule.*`, `tags`, `threat.*`) and
/// `tail` more `vigil.*` fields. Each ECS object must be written in one
/// run: `head` starts inside `event`, `tail` inside `vigil`.
pub fn encode_with(
    ev: &Event,
    hostname: &str,
    event_kind: &str,
    head: impl FnOnce(&mut Writer),
    tail: impl FnOnce(&mut Writer),
) -> Vec<u8> {
    encode_inner(
        ev,
        hostname,
        event_kind,
        head,
        tail,
        None,
        Writer::with_buffer(Vec::new()),
    )
    .finish()
}

/// The event classification (event.kind, category, type, action, module)
/// and field groups that repeat for every record of a process and across the
/// children of one parent, kept encoded so the next record with the same
/// parent, users, groups and container, or the same namespaces, cgroup and
/// ancestors, copies their bytes instead of writing them field by field.
/// Each group is keyed by the full content it is written from (never by
/// pointer or pid), its slot a hash of that key, so a reused pid or an
/// `exec` cannot return stale bytes, and the output is byte-identical to
/// [`encode`]'s.
///
/// Before building a group's content key the cache checks the identity of
/// what the group was last written from: the same `Arc`s (the cache holds
/// clones of them, so an allocation cannot be freed and reused while it is
/// compared, and an `Arc`'s content does not change while it is shared)
/// and the same plain values mean the same content, so the bytes of the
/// slot that content last filled are copied without building, hashing or
/// comparing the key, provided that slot has not been refilled since
/// ([`vigil_outputs::json::Fragment::generation`]). Timestamps keep their
/// text up to the second.
pub struct EncodeCache {
    slots: Vec<[Fragment; 4]>,
    key: Vec<u8>,
    head: Last<HeadId>,
    image: Last<ImageId>,
    parent_user: Last<ParentUserId>,
    lineage: Last<LineageId>,
    ts: [TsText; 2],
    name: String,
    /// The writer's nesting state, reused by [`encode_cached_into`].
    writer: WriterScratch,
    /// The record templates of the processes seen last ([`direct`]).
    tmpl: direct::Templates,
}

const CACHE_SLOTS: usize = 256;

impl Default for EncodeCache {
    fn default() -> Self {
        EncodeCache {
            slots: vec![Default::default(); CACHE_SLOTS],
            key: Vec::with_capacity(512),
            head: Last::default(),
            image: Last::default(),
            parent_user: Last::default(),
            lineage: Last::default(),
            ts: Default::default(),
            name: String::new(),
            writer: WriterScratch::default(),
            tmpl: direct::Templates::default(),
        }
    }
}

/// The identity of what one field group was last written from, and the
/// slot (and its generation) that holds the bytes.
struct Last<K> {
    id: Option<K>,
    slot: usize,
    generation: u64,
}

impl<K> Default for Last<K> {
    fn default() -> Self {
        Last {
            id: None,
            slot: 0,
            generation: 0,
        }
    }
}

fn same_arc<T: ?Sized>(a: &Arc<T>, b: &Arc<T>) -> bool {
    Arc::ptr_eq(a, b)
}

fn same_opt<T: ?Sized>(a: &Option<Arc<T>>, b: &Option<Arc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// What [`write_event`]'s classification group reads.
struct HeadId {
    event_kind: String,
    class: (&'static str, &'static str, &'static str),
}

impl HeadId {
    fn matches(&self, event_kind: &str, class: (&str, &str, &str)) -> bool {
        self.event_kind == event_kind && self.class == class
    }
}

/// What [`write_image`] reads: the process record, and whether the event
/// is an exec (whose environment it writes; only execs without one take
/// this path).
struct ImageId {
    process: Option<Arc<ProcInfo>>,
    exec: bool,
}

impl ImageId {
    fn of(ev: &Event) -> Option<ImageId> {
        match &ev.k.body {
            Body::Exec { env, .. } if !env.is_empty() => None,
            b => Some(ImageId {
                process: ev.process.clone(),
                exec: matches!(b, Body::Exec { .. }),
            }),
        }
    }

    fn matches(&self, ev: &Event) -> bool {
        let exec = match &ev.k.body {
            Body::Exec { env, .. } if !env.is_empty() => return false,
            Body::Exec { .. } => true,
            _ => false,
        };
        self.exec == exec && same_opt(&self.process, &ev.process)
    }
}

/// What [`write_parent_user`] reads.
struct ParentUserId {
    ids: [u32; 4],
    #[allow(clippy::type_complexity)]
    parent: Option<(Arc<[u8]>, Arc<[Vec<u8>]>, Arc<[u8]>, Option<Arc<str>>)>,
    names: [Option<Arc<str>>; 3],
    container: Option<Arc<Container>>,
    meta: Option<Arc<ContainerMeta>>,
}

impl ParentUserId {
    fn ids(ev: &Event) -> [u32; 4] {
        let h = &ev.k.hdr;
        [h.ppid, h.uid, h.euid, h.gid]
    }

    fn container(ev: &Event) -> Option<&Arc<Container>> {
        ev.process.as_ref().and_then(|p| p.container.as_ref())
    }

    fn of(ev: &Event) -> ParentUserId {
        ParentUserId {
            ids: Self::ids(ev),
            parent: ev.ancestors.first().map(|a| {
                (
                    a.exe.clone(),
                    a.args.clone(),
                    a.cmdline.clone(),
                    a.hash.clone(),
                )
            }),
            names: [ev.user.clone(), ev.euser.clone(), ev.group.clone()],
            container: Self::container(ev).cloned(),
            meta: ev.container_meta.clone(),
        }
    }

    fn matches(&self, ev: &Event) -> bool {
        let parent = match (&self.parent, ev.ancestors.first()) {
            (Some((exe, args, cmdline, hash)), Some(a)) => {
                same_arc(exe, &a.exe)
                    && same_arc(args, &a.args)
                    && same_arc(cmdline, &a.cmdline)
                    && same_opt(hash, &a.hash)
            }
            (None, None) => true,
            _ => false,
        };
        let container = match (&self.container, Self::container(ev)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        self.ids == Self::ids(ev)
            && parent
            && same_opt(&self.names[0], &ev.user)
            && same_opt(&self.names[1], &ev.euser)
            && same_opt(&self.names[2], &ev.group)
            && container
            && same_opt(&self.meta, &ev.container_meta)
    }
}

/// What [`write_lineage`] reads (the chain itself is shared and does not
/// change while shared: the same `Arc` is the same chain).
struct LineageId {
    ns: [u64; 4],
    cgroup_path: Option<Arc<str>>,
    ancestors: Arc<[crate::event::Ancestor]>,
}

impl LineageId {
    fn ns(ev: &Event) -> [u64; 4] {
        let h = &ev.k.hdr;
        [
            u64::from(h.pidns),
            u64::from(h.mntns),
            u64::from(h.netns),
            h.cgroup_id,
        ]
    }

    fn of(ev: &Event) -> LineageId {
        LineageId {
            ns: Self::ns(ev),
            cgroup_path: ev.cgroup_path.clone(),
            ancestors: ev.ancestors.clone(),
        }
    }

    fn matches(&self, ev: &Event) -> bool {
        self.ns == Self::ns(ev)
            && same_opt(&self.cgroup_path, &ev.cgroup_path)
            && (Arc::ptr_eq(&self.ancestors, &ev.ancestors)
                || (self.ancestors.len() == ev.ancestors.len()
                    && self
                        .ancestors
                        .iter()
                        .zip(ev.ancestors.iter())
                        .all(|(x, a)| x.pid == a.pid && same_arc(&x.exe, &a.exe))))
    }
}

/// Writes one cached field group: the bytes of the slot last used, when
/// `matches` says the group's inputs are the same objects as then (and the
/// slot was not refilled since); else by its content key, as
/// [`Writer::fragment`] does, remembering the inputs' identity (`make`).
#[allow(clippy::too_many_arguments)]
fn cached_group<K>(
    w: &mut Writer,
    slots: &mut [[Fragment; 4]],
    keybuf: &mut Vec<u8>,
    last: &mut Last<K>,
    idx: usize,
    matches: impl FnOnce(&K) -> bool,
    make: impl FnOnce() -> Option<K>,
    key: impl FnOnce(&mut Vec<u8>),
    write: impl FnOnce(&mut Writer),
) {
    if let Some(id) = &last.id
        && matches(id)
    {
        let f = &slots[last.slot][idx];
        if f.generation() == last.generation && w.replay(f) {
            return;
        }
    }
    key(keybuf);
    let slot = key_slot(keybuf);
    w.fragment(&mut slots[slot][idx], keybuf, write);
    last.id = make();
    last.slot = slot;
    last.generation = slots[slot][idx].generation();
}

/// A timestamp's JSON text (quoted), kept for the second it was made for:
/// the next time in the same second rewrites only the nanoseconds.
struct TsText {
    sec: Option<i64>,
    text: [u8; RFC3339_MAX + 2],
    len: usize,
}

impl Default for TsText {
    fn default() -> Self {
        TsText {
            sec: None,
            text: [0; RFC3339_MAX + 2],
            len: 0,
        }
    }
}

impl TsText {
    /// The quoted RFC 3339 text of `unix_ns` (as [`rfc3339_into`] writes it).
    fn get(&mut self, unix_ns: i64) -> &[u8] {
        let sec = unix_ns.div_euclid(1_000_000_000);
        let nanos = unix_ns.rem_euclid(1_000_000_000) as u64;
        if self.sec == Some(sec) {
            // the nine digits before the closing `Z"`
            let end = self.len - 2;
            put_nanos(&mut self.text[end - 9..end], nanos);
        } else {
            let mut buf = [0u8; RFC3339_MAX];
            let t = rfc3339_into(unix_ns, &mut buf).as_bytes();
            self.text[0] = b'"';
            self.text[1..=t.len()].copy_from_slice(t);
            self.text[t.len() + 1] = b'"';
            self.len = t.len() + 2;
            self.sec = Some(sec);
        }
        &self.text[..self.len]
    }
}

/// An address's text (`Display`), on the stack.
struct IpText {
    buf: [u8; 64],
    len: usize,
}

impl IpText {
    fn new(a: &IpAddr) -> IpText {
        use std::io::Write;
        let mut buf = [0u8; 64];
        if let IpAddr::V4(v4) = a {
            // dotted decimal, as `Display` writes it
            let mut len = 0;
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[len] = b'.';
                    len += 1;
                }
                len += put_digits(&mut buf[len..], u64::from(o), 1);
            }
            return IpText { buf, len };
        }
        let mut cur = std::io::Cursor::new(&mut buf[..]);
        // an IPv6 text is at most 45 bytes
        let _ = write!(cur, "{a}");
        let len = cur.position() as usize;
        IpText { buf, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// `vigil.sensor` of a kind (the sensor table, indexed once).
fn sensor_name(k: u16) -> &'static str {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let max = vigil_bpf::sensors::all_kinds().max().unwrap_or(0);
        (0..=max)
            .map(|k| {
                vigil_bpf::sensors::sensor_of_kind(k)
                    .map(|s| s.name)
                    .unwrap_or("?")
            })
            .collect()
    });
    names.get(usize::from(k)).copied().unwrap_or("?")
}

/// The cache slot of a key: a hash of its content, so that what the
/// children of one parent share (parent, users, lineage) hits for a new
/// process too.
fn key_slot(k: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut chunks = k.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x0100_0000_01b3);
        h ^= h >> 29;
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 32;
    (h as usize) % CACHE_SLOTS
}

/// Appends a length-prefixed byte string to a fragment key.
fn key_bytes(k: &mut Vec<u8>, b: &[u8]) {
    k.extend_from_slice(&(b.len() as u32).to_le_bytes());
    k.extend_from_slice(b);
}

/// Appends an optional string (absent and empty differ).
fn key_opt(k: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            k.push(1);
            key_bytes(k, b);
        }
        None => k.push(0),
    }
}

/// [`encode`] into `buf` (its allocation reused; the JSON is returned in
/// it), with the per-process field groups taken from `cache` when they are
/// unchanged.
pub fn encode_cached(
    ev: &Event,
    hostname: &str,
    event_kind: &str,
    cache: &mut EncodeCache,
    mut buf: Vec<u8>,
) -> Vec<u8> {
    buf.clear();
    encode_cached_into(ev, hostname, event_kind, cache, &mut buf);
    buf
}

/// [`encode_cached`] appended to `out` (what it holds is kept): the record
/// is written straight into an output buffer, with no buffer of its own
/// and no copy; the bytes appended are the ones [`encode_cached`] returns.
pub fn encode_cached_into(
    ev: &Event,
    hostname: &str,
    event_kind: &str,
    cache: &mut EncodeCache,
    out: &mut Vec<u8>,
) {
    if direct::encode(ev, hostname, event_kind, cache, out) {
        return;
    }
    let mut scratch = std::mem::take(&mut cache.writer);
    let w = Writer::appending(std::mem::take(out), &mut scratch);
    let w = encode_inner(ev, hostname, event_kind, |_| {}, |_| {}, Some(cache), w);
    *out = w.finish_into(&mut scratch);
    cache.writer = scratch;
}

/// process.executable, command_line, args, working_directory: the
/// program image (shared by every record of the process, and by every
/// process that runs the same command in the same directory).
fn write_image(w: &mut Writer, ev: &Event) {
    if let Some(p) = &ev.process {
        if !p.exe.is_empty() {
            w.str(key!("process.executable"), &p.exe);
        }
        if !p.args.is_empty() {
            w.str(key!("process.command_line"), &p.cmdline)
                .strs(key!("process.args"), p.args.iter())
                .u64(key!("process.args_count"), p.args.len() as u64);
        }
        if !p.cwd.is_empty() {
            w.str(key!("process.working_directory"), &p.cwd);
        }
        if let Some(x) = &p.hash {
            w.str(key!("process.hash.sha256"), x.as_bytes());
        }
    }
    if let Body::Exec { env, .. } = &ev.k.body
        && !env.is_empty()
    {
        w.strs(key!("process.env_vars"), env.iter().map(|e| e.as_slice()));
    }
}

/// The key of [`write_image`]: everything it reads.
fn image_key(k: &mut Vec<u8>, ev: &Event) {
    k.clear();
    match &ev.process {
        Some(p) => {
            k.push(1);
            key_bytes(k, &p.exe);
            k.extend_from_slice(&(p.args.len() as u32).to_le_bytes());
            for a in p.args.iter() {
                key_bytes(k, a);
            }
            key_bytes(k, &p.cmdline);
            key_bytes(k, &p.cwd);
            key_opt(k, p.hash.as_deref().map(str::as_bytes));
        }
        None => k.push(0),
    }
    match &ev.k.body {
        Body::Exec { env, .. } => {
            k.extend_from_slice(&(env.len() as u32).to_le_bytes());
            for e in env {
                key_bytes(k, e);
            }
        }
        _ => k.push(0xff),
    }
}

/// process.parent.*, user.*, group.*, container.*: what the record's
/// process, its parent and its credentials determine.
fn write_parent_user(w: &mut Writer, ev: &Event) {
    let h = &ev.k.hdr;
    w.u64(key!("process.parent.pid"), h.ppid.into());
    if let Some(a) = ev.ancestors.first() {
        if !a.exe.is_empty() {
            w.str(key!("process.parent.executable"), &a.exe)
                .str(key!("process.parent.name"), basename(&a.exe));
        }
        if !a.args.is_empty() {
            w.str(key!("process.parent.command_line"), &a.cmdline);
        }
        if let Some(x) = &a.hash {
            w.str(key!("process.parent.hash.sha256"), x.as_bytes());
        }
    }
    w.u64(key!("user.id"), h.uid.into());
    if let Some(u) = &ev.user {
        w.str(key!("user.name"), u.as_bytes());
    }
    w.u64(key!("user.effective.id"), h.euid.into());
    if let Some(u) = &ev.euser {
        w.str(key!("user.effective.name"), u.as_bytes());
    }
    w.u64(key!("group.id"), h.gid.into());
    if let Some(g) = &ev.group {
        w.str(key!("group.name"), g.as_bytes());
    }
    if let Some(c) = ev.process.as_ref().and_then(|p| p.container.as_ref()) {
        w.str(key!("container.id"), &c.id)
            .str(key!("container.runtime"), c.runtime);
        if let Some(m) = &ev.container_meta {
            if let Some(n) = &m.name {
                w.str(key!("container.name"), n);
            }
            if let Some(i) = &m.image {
                w.str(key!("container.image.name"), i);
            }
        }
    }
}

/// The key of [`write_parent_user`]: everything it reads.
fn parent_user_key(k: &mut Vec<u8>, ev: &Event) {
    let h = &ev.k.hdr;
    k.clear();
    for v in [h.ppid, h.uid, h.euid, h.gid] {
        k.extend_from_slice(&v.to_le_bytes());
    }
    match ev.ancestors.first() {
        Some(a) => {
            k.push(1);
            key_bytes(k, &a.exe);
            k.push(u8::from(a.args.is_empty()));
            key_bytes(k, &a.cmdline);
            key_opt(k, a.hash.as_deref().map(str::as_bytes));
        }
        None => k.push(0),
    }
    key_opt(k, ev.user.as_deref().map(str::as_bytes));
    key_opt(k, ev.euser.as_deref().map(str::as_bytes));
    key_opt(k, ev.group.as_deref().map(str::as_bytes));
    match ev.process.as_ref().and_then(|p| p.container.as_ref()) {
        Some(c) => {
            k.push(1);
            key_bytes(k, c.id.as_bytes());
            key_bytes(k, c.runtime.as_bytes());
            match &ev.container_meta {
                Some(m) => {
                    k.push(1);
                    key_opt(k, m.name.as_deref().map(str::as_bytes));
                    key_opt(k, m.image.as_deref().map(str::as_bytes));
                }
                None => k.push(0),
            }
        }
        None => k.push(0),
    }
}

/// vigil.ns.*, vigil.cgroup.*, vigil.ancestors: the process's namespaces,
/// cgroup and lineage (shared by the children of one parent).
fn write_lineage(w: &mut Writer, ev: &Event) {
    let h = &ev.k.hdr;
    w.u64(key!("vigil.ns.pid"), h.pidns.into())
        .u64(key!("vigil.ns.mnt"), h.mntns.into())
        .u64(key!("vigil.ns.net"), h.netns.into());
    w.u64(key!("vigil.cgroup.id"), h.cgroup_id);
    if let Some(p) = &ev.cgroup_path {
        w.str(key!("vigil.cgroup.path"), p.as_bytes());
    }
    if !ev.ancestors.is_empty() {
        w.objects("vigil.ancestors", ev.ancestors.iter(), |o, a| {
            o.u64(key!("pid"), a.pid.into());
            if !a.exe.is_empty() {
                o.str(key!("executable"), &a.exe);
            }
        });
    }
}

/// The key of [`write_lineage`]: everything it reads.
fn lineage_key(k: &mut Vec<u8>, ev: &Event) {
    let h = &ev.k.hdr;
    k.clear();
    for v in [
        u64::from(h.pidns),
        u64::from(h.mntns),
        u64::from(h.netns),
        h.cgroup_id,
    ] {
        k.extend_from_slice(&v.to_le_bytes());
    }
    key_opt(k, ev.cgroup_path.as_deref().map(str::as_bytes));
    k.extend_from_slice(&(ev.ancestors.len() as u32).to_le_bytes());
    for a in ev.ancestors.iter() {
        k.extend_from_slice(&a.pid.to_le_bytes());
        key_bytes(k, &a.exe);
    }
}

fn encode_inner(
    ev: &Event,
    hostname: &str,
    event_kind: &str,
    head: impl FnOnce(&mut Writer),
    tail: impl FnOnce(&mut Writer),
    mut cache: Option<&mut EncodeCache>,
    mut w: Writer,
) -> Writer {
    let ret = syscall_ret(ev);
    // @timestamp, event.*, host.*
    write_timestamp(
        &mut w,
        key!("@timestamp"),
        ev.unix_ns,
        cache.as_deref_mut().map(|c| &mut c.ts[0]),
    );
    write_event(&mut w, ev, event_kind, ret, cache.as_deref_mut());
    head(&mut w);
    w.str(key!("host.hostname"), hostname);
    // process.*, user.*, group.*, container.*, file.*
    write_process(&mut w, ev, cache.as_deref_mut());
    write_file(&mut w, ev);
    // source.*, destination.*, server.*, network.*, dns.*
    if let Body::Sock { info, .. } | Body::Dns { info, .. } = &ev.k.body {
        write_socket(&mut w, ev, info);
    }
    if let Body::Dns { info, .. } = &ev.k.body {
        write_dns(&mut w, ev, info);
    }
    if let Body::IoUring { info, .. } = &ev.k.body
        && info.what == vigil_bpf::abi::uring::CONNECT
    {
        if let Some(a) = ip(info.family, &info.raddr) {
            write_endpoint(&mut w, Endpoint::Destination, a, info.rport);
        }
        w.str(key!("network.direction"), "egress");
    }
    if let Body::TcpState(t) = &ev.k.body {
        if let Some(a) = ip(t.family, &t.saddr) {
            write_endpoint(&mut w, Endpoint::Source, a, t.sport);
        }
        if let Some(a) = ip(t.family, &t.daddr) {
            write_endpoint(&mut w, Endpoint::Destination, a, t.dport);
        }
        w.str(key!("network.transport"), "tcp");
    }
    if let Some(r) = ret
        && r < 0
    {
        w.str(key!("error.code"), errno_str(r).as_bytes());
    }
    // vigil.*: what every record has, then the kind's own fields
    write_vigil_common(&mut w, ev, tail, cache.as_deref_mut());
    let mut truncated = Vec::new();
    write_body(&mut w, ev, cache, &mut truncated);
    if !truncated.is_empty() {
        w.strs(key!("vigil.truncated"), truncated);
    }
    if ev.k.after_loss() {
        w.bool(key!("vigil.after_loss"), true);
    }
    w
}

/// A timestamp field: from the cache's text for the second when there is
/// one, else formatted.
fn write_timestamp(w: &mut Writer, k: &Key, unix_ns: i64, cached: Option<&mut TsText>) {
    match cached {
        Some(t) => {
            w.raw(k, t.get(unix_ns));
        }
        None => {
            let mut ts = [0u8; RFC3339_MAX];
            w.str(k, rfc3339_into(unix_ns, &mut ts));
        }
    }
}

/// event.kind, category, type, action, module.
fn write_class(w: &mut Writer, event_kind: &str, class: (&str, &str, &str)) {
    let (category, etype, action) = class;
    w.str(key!("event.kind"), event_kind)
        .strs(key!("event.category"), [category])
        .strs(key!("event.type"), [etype])
        .str(key!("event.action"), action)
        .str(key!("event.module"), "vigil");
}

/// `event.outcome` of a call's result.
fn outcome(k: u16, ret: i64) -> &'static str {
    if succeeded(k, ret) {
        "success"
    } else {
        "failure"
    }
}

/// event.kind, category, type, action, module (one cached group), then
/// event.sequence and event.outcome.
fn write_event(
    w: &mut Writer,
    ev: &Event,
    event_kind: &str,
    ret: Option<i64>,
    cache: Option<&mut EncodeCache>,
) {
    let class = classify_event(ev);
    let (category, etype, action) = class;
    let write_head = |w: &mut Writer| write_class(w, event_kind, class);
    match cache {
        Some(c) => cached_group(
            w,
            &mut c.slots,
            &mut c.key,
            &mut c.head,
            3,
            |id| id.matches(event_kind, class),
            || {
                Some(HeadId {
                    event_kind: event_kind.to_owned(),
                    class,
                })
            },
            |k| {
                k.clear();
                for x in [event_kind, category, etype, action] {
                    key_bytes(k, x.as_bytes());
                }
            },
            write_head,
        ),
        None => write_head(w),
    }
    w.u64(key!("event.sequence"), ev.seq);
    if let Some(r) = ret {
        w.str(key!("event.outcome"), outcome(ev.k.hdr.kind, r));
    }
}

/// process.* (the image and the parent and users as cached groups),
/// user.*, group.*, container.*.
fn write_process(w: &mut Writer, ev: &Event, mut cache: Option<&mut EncodeCache>) {
    let h = &ev.k.hdr;
    w.u64(key!("process.pid"), h.pid.into())
        .u64(key!("process.thread.id"), h.tid.into())
        .str(key!("process.name"), ev.k.comm());
    match cache.as_deref_mut() {
        Some(c) => cached_group(
            w,
            &mut c.slots,
            &mut c.key,
            &mut c.image,
            2,
            |id| id.matches(ev),
            || ImageId::of(ev),
            |k| image_key(k, ev),
            |w| write_image(w, ev),
        ),
        None => write_image(w, ev),
    }
    if let Some(start) = process_start(ev) {
        write_timestamp(
            w,
            key!("process.start"),
            start,
            cache.as_deref_mut().map(|c| &mut c.ts[1]),
        );
    }
    if let Body::Exit(x) = &ev.k.body {
        w.i64(key!("process.exit_code"), i64::from((x.status >> 8) & 0xff));
    }
    match cache {
        Some(c) => cached_group(
            w,
            &mut c.slots,
            &mut c.key,
            &mut c.parent_user,
            0,
            |id| id.matches(ev),
            || Some(ParentUserId::of(ev)),
            |k| parent_user_key(k, ev),
            |w| write_parent_user(w, ev),
        ),
        None => write_parent_user(w, ev),
    }
}

/// `process.start` (Unix ns) of an event's process, when its start is
/// known: its boot-time start moved by the event's boot-to-Unix offset.
fn process_start(ev: &Event) -> Option<i64> {
    let h = &ev.k.hdr;
    (h.start_ns != 0)
        .then(|| (h.start_ns as i64).saturating_add(ev.unix_ns.wrapping_sub(h.ts_ns as i64)))
}

/// file.path, file.name, file.inode.
fn write_file(w: &mut Writer, ev: &Event) {
    if let Some(f) = &ev.file_path {
        w.str(key!("file.path"), f)
            .str(key!("file.name"), basename(f));
    }
    if let Body::Open { info, .. } = &ev.k.body
        && info.ino != 0
    {
        w.u64(key!("file.inode"), info.ino);
    }
}

/// Which end of a connection an address is.
#[derive(Clone, Copy)]
enum Endpoint {
    Source,
    Destination,
    Server,
}

/// `source.*`, `destination.*` or `server.*`: ip and port.
fn write_endpoint(w: &mut Writer, end: Endpoint, a: IpAddr, port: u16) {
    let (ip_key, port_key) = match end {
        Endpoint::Source => (key!("source.ip"), key!("source.port")),
        Endpoint::Destination => (key!("destination.ip"), key!("destination.port")),
        Endpoint::Server => (key!("server.ip"), key!("server.port")),
    };
    w.str(ip_key, IpText::new(&a).as_bytes())
        .u64(port_key, port.into());
}

/// A socket or DNS record's ends and network.*.
fn write_socket(w: &mut Writer, ev: &Event, info: &abi::Sock) {
    let h = &ev.k.hdr;
    let local = ip(info.family, &info.laddr);
    let remote = ip(info.family, &info.raddr);
    let (src, dst) = match h.kind {
        kind::ACCEPT => ((remote, info.rport), (local, info.lport)),
        _ => ((local, info.lport), (remote, info.rport)),
    };
    if h.kind == kind::LISTEN {
        if let Some(a) = local {
            write_endpoint(w, Endpoint::Server, a, info.lport);
        }
    } else {
        // An unbound end (a failed connect's local side) has no address.
        let bound = |a: &IpAddr, port: u16| port != 0 || !a.is_unspecified();
        if let Some(a) = src.0.filter(|a| bound(a, src.1)) {
            write_endpoint(w, Endpoint::Source, a, src.1);
        }
        if let Some(a) = dst.0.filter(|a| bound(a, dst.1)) {
            write_endpoint(w, Endpoint::Destination, a, dst.1);
        }
        if let Some(d) = &ev.domain {
            w.str(key!("destination.domain"), d.as_bytes());
        }
    }
    if h.kind == kind::DNS {
        w.str(key!("network.protocol"), "dns");
    }
    let transport = match i32::from(info.protocol) {
        libc::IPPROTO_TCP => Some("tcp"),
        libc::IPPROTO_UDP => Some("udp"),
        _ => None,
    };
    if let Some(t) = transport {
        w.str(key!("network.transport"), t);
    }
    let family = match i32::from(info.family) {
        libc::AF_INET => Some("ipv4"),
        libc::AF_INET6 => Some("ipv6"),
        libc::AF_UNIX => Some("unix"),
        _ => None,
    };
    if let Some(f) = family {
        w.str(key!("network.type"), f);
    }
    w.str(
        key!("network.direction"),
        match (h.kind, &ev.k.body) {
            (kind::DNS, Body::Dns { info, .. }) if dns_is_answer(info) => "ingress",
            (kind::CONNECT | kind::UDP_SEND | kind::DNS, _) => "egress",
            (kind::ACCEPT, _) => "ingress",
            _ => "unknown",
        },
    );
}

/// dns.*: the message's type, question, and a response's answers.
fn write_dns(w: &mut Writer, ev: &Event, info: &abi::Sock) {
    w.str(
        key!("dns.type"),
        if dns_is_answer(info) {
            "answer"
        } else {
            "query"
        },
    );
    let Some(m) = &ev.dns else {
        return;
    };
    w.u64(key!("dns.id"), m.id.into());
    if let Some(q) = m.questions.first() {
        w.str(key!("dns.question.name"), q.name.as_bytes()).str(
            key!("dns.question.type"),
            crate::dns::type_name(q.qtype).as_bytes(),
        );
    }
    if !m.response {
        return;
    }
    w.str(
        key!("dns.response_code"),
        crate::dns::rcode_name(m.rcode).as_bytes(),
    );
    if !m.answers.is_empty() {
        w.objects("dns.answers", &m.answers, |o, a| {
            o.str(key!("name"), a.name.as_bytes())
                .str(key!("type"), crate::dns::type_name(a.rtype).as_bytes())
                .u64(key!("ttl"), a.ttl.into());
            match &a.data {
                crate::dns::Data::Addr(ip) => {
                    o.str(key!("data"), ip.to_string());
                }
                crate::dns::Data::Name(n) => {
                    o.str(key!("data"), n.as_bytes());
                }
                crate::dns::Data::Other => {}
            }
        });
    }
    let ips: Vec<String> = m.resolved_ips().map(|i| i.to_string()).collect();
    if !ips.is_empty() {
        w.strs(key!("dns.resolved_ip"), ips);
    }
}

/// The `vigil.*` fields every record has: sensor, hash state, `tail`'s
/// fields, escape, user namespace, ns pid, auid and lineage.
fn write_vigil_common(
    w: &mut Writer,
    ev: &Event,
    tail: impl FnOnce(&mut Writer),
    cache: Option<&mut EncodeCache>,
) {
    let h = &ev.k.hdr;
    let compat = h.flags & abi::flags::COMPAT != 0;
    w.str(
        key!("vigil.sensor"),
        if compat {
            "compat"
        } else {
            sensor_name(h.kind)
        },
    );
    if compat {
        w.bool(key!("vigil.compat"), true);
    }
    if ev.hash_pending {
        w.bool(key!("vigil.hash.pending"), true);
    }
    if let Some(why) = ev.hash_skipped {
        w.str(key!("vigil.hash.skipped"), why);
    }
    if ev.hash_known_bad {
        w.bool(key!("vigil.hash.known_bad"), true);
    }
    tail(w);
    if let Some(e) = &ev.escape {
        write_escape(w, e);
    }
    if let Some(u) = &ev.ns_user {
        if let Some(id) = u.id {
            w.u64(key!("vigil.user.ns.id"), id.into());
        }
        if let Some(n) = &u.name {
            w.str(key!("vigil.user.ns.name"), n.as_bytes());
        }
    }
    w.u64(key!("vigil.process.ns_pid"), h.ns_pid.into())
        .u64(key!("vigil.process.auid"), h.auid.into());
    match cache {
        Some(c) => cached_group(
            w,
            &mut c.slots,
            &mut c.key,
            &mut c.lineage,
            1,
            |id| id.matches(ev),
            || Some(LineageId::of(ev)),
            |k| lineage_key(k, ev),
            |w| write_lineage(w, ev),
        ),
        None => write_lineage(w, ev),
    }
}

/// vigil.escape.*: a container escape's source and target.
fn write_escape(w: &mut Writer, e: &crate::event::Escape) {
    w.str(key!("vigil.escape.type"), e.kind).str(
        key!("vigil.escape.source.container.id"),
        e.source_id.as_bytes(),
    );
    if let Some(n) = &e.source_name {
        w.str(key!("vigil.escape.source.container.name"), n.as_bytes());
    }
    w.str(key!("vigil.escape.target.type"), e.target.type_name());
    match &e.target {
        Target::Container(id, name) => {
            w.str(key!("vigil.escape.target.container.id"), id.as_bytes())
                .str(
                    key!("vigil.escape.target.container.name"),
                    name.as_deref().unwrap_or(id).as_bytes(),
                );
        }
        Target::Host => {
            w.str(key!("vigil.escape.target.container.name"), "host");
        }
        Target::Process(pid) => {
            w.u64(key!("vigil.escape.target.pid"), (*pid).into());
        }
        Target::Unknown => {}
    }
    if e.target_ns != 0 {
        w.u64(key!("vigil.escape.target.ns"), e.target_ns.into());
    }
}

/// The record kind's own `vigil.*` fields; the ECS fields its truncated
/// strings fed go to `truncated`.
fn write_body(
    w: &mut Writer,
    ev: &Event,
    cache: Option<&mut EncodeCache>,
    truncated: &mut Vec<&'static str>,
) {
    let h = &ev.k.hdr;
    match &ev.k.body {
        Body::Exec {
            info,
            filename,
            env,
            ..
        } => write_exec(w, ev, info, filename, env, cache, truncated),
        Body::Fork(f) => {
            w.u64(key!("vigil.child.pid"), f.child_pid.into())
                .u64(key!("vigil.child.ns_pid"), f.child_ns_pid.into())
                .u64(key!("vigil.child.ns.pid"), f.child_pidns.into())
                .u64(key!("vigil.child.ns.mnt"), f.child_mntns.into())
                .u64(key!("vigil.child.ns.net"), f.child_netns.into())
                .strs(
                    key!("vigil.child.new_namespaces"),
                    ns_flags(f.ns_flags.into()),
                );
        }
        Body::Exit(x) => {
            w.u64(key!("vigil.exit.signal"), (x.status & 0x7f).into());
        }
        Body::Open { info, name, .. } => write_open(w, ev, info, name, truncated),
        Body::Sock { info, unix_path } => {
            if !unix_path.is_empty() {
                w.str(key!("vigil.unix.path"), unix_path);
            }
            w.i64(key!("vigil.socket.ret"), info.ret)
                .i64(key!("vigil.socket.fd"), info.fd.into());
            if h.kind == kind::LISTEN {
                w.u64(key!("vigil.socket.backlog"), info.backlog.into());
            }
        }
        Body::Dns { info, message } => {
            if ev.dns.as_ref().is_none_or(|m| m.truncated) {
                w.bool(key!("vigil.dns.incomplete"), true);
            }
            w.u64(key!("vigil.dns.bytes"), message.len() as u64);
            let c = ev.dns_names;
            if c.distinct > 0 {
                w.u64(key!("vigil.dns.distinct_names"), c.distinct.into())
                    .u64(key!("vigil.dns.random_names"), c.random.into());
            }
            w.i64(key!("vigil.socket.fd"), info.fd.into());
            if ev.k.truncated(0) {
                truncated.push("dns");
            }
        }
        Body::TcpState(t) => {
            w.str(key!("vigil.tcp.old_state"), tcp_state(t.oldstate))
                .str(key!("vigil.tcp.new_state"), tcp_state(t.newstate));
        }
        Body::Capable(c) => {
            w.str(key!("vigil.capability.name"), cap_name(c.cap).as_bytes())
                .i64(key!("vigil.capability.id"), c.cap.into())
                .u64(key!("vigil.capability.userns"), c.target_userns.into())
                .i64(key!("vigil.capability.syscall_nr"), c.syscall_nr.into());
        }
        Body::SetId(s) => {
            w.str(key!("vigil.setid.syscall"), setid_name(s.syscall))
                .i64s(key!("vigil.setid.args"), s.id.map(i64::from));
        }
        Body::CapSet(c) => {
            w.strs(key!("vigil.capset.effective"), caps_list(c.effective))
                .strs(key!("vigil.capset.permitted"), caps_list(c.permitted))
                .strs(key!("vigil.capset.inheritable"), caps_list(c.inheritable))
                .i64(key!("vigil.capset.target_pid"), c.target_pid.into());
        }
        Body::IoUring {
            info, name, name2, ..
        } => write_io_uring(w, ev, info, name, name2, truncated),
        Body::Signal(g) => {
            w.i64(key!("vigil.signal.number"), g.sig.into())
                .str(key!("vigil.signal.name"), signal_name(g.sig))
                .u64(key!("vigil.signal.target_pid"), g.target_pid.into())
                .u64(key!("vigil.signal.target_tgid"), g.target_tgid.into())
                .i64(key!("vigil.signal.code"), g.code.into());
            if let Some(t) = ev.target.as_deref().filter(|t| !t.exe.is_empty()) {
                w.str(key!("vigil.signal.target_executable"), &t.exe)
                    .str(key!("vigil.signal.target_name"), basename(&t.exe));
            }
        }
        Body::Ptrace(p) => {
            if p.syscall == 0 {
                w.str(key!("vigil.ptrace.request"), ptrace_req(p.request));
            }
            w.i64(key!("vigil.ptrace.target_pid"), p.target_pid.into());
            if let Some(t) = &ev.target {
                w.str(key!("vigil.ptrace.target_executable"), &t.exe);
            }
        }
        Body::Bpf { info, name } => {
            w.str(key!("vigil.bpf.command"), bpf_cmd(info.cmd))
                .u64(key!("vigil.bpf.type"), info.r#type.into());
            if !name.is_empty() {
                w.str(key!("vigil.bpf.name"), name);
            }
        }
        Body::Module {
            info,
            target,
            params,
        } => {
            let sc = match info.syscall {
                abi::sys::INIT_MODULE => "init_module",
                abi::sys::FINIT_MODULE => "finit_module",
                _ => "delete_module",
            };
            w.str(key!("vigil.module.syscall"), sc)
                .u64(key!("vigil.module.flags"), info.flags.into());
            if info.syscall != abi::sys::FINIT_MODULE && !target.is_empty() {
                w.str(key!("vigil.module.name"), target);
            }
            if !params.is_empty() {
                w.str(key!("vigil.module.params"), params);
            }
        }
        Body::Compat { info, .. } => {
            // A 32-bit call with no 64-bit record kind of its own.
            if let Some(c) = vigil_bpf::compat::call(info.nr) {
                w.str(key!("vigil.syscall.name"), c.name);
            }
            // ia32 arguments are 32 bits wide
            w.u64(key!("vigil.syscall.nr"), info.nr.into()).u64s(
                key!("vigil.syscall.args"),
                info.args.iter().map(|a| a & 0xffff_ffff),
            );
        }
        Body::Syscall(info) => {
            let name = abi::RARE_CALLS
                .iter()
                .find(|c| c.0 == info.nr)
                .map_or("?", |c| c.1);
            w.str(key!("vigil.syscall.name"), name.as_bytes())
                .u64(key!("vigil.syscall.nr"), info.nr.into())
                .u64s(key!("vigil.syscall.args"), info.args.iter().copied());
            if info.nr == 103 {
                w.str(
                    key!("vigil.syslog.action"),
                    syslog_action_name(info.args[0] & 0xffff_ffff).as_bytes(),
                );
            }
        }
        Body::Memfd { info, name } => {
            w.str(key!("vigil.memfd.name"), name)
                .u64(key!("vigil.memfd.flags"), info.flags.into());
        }
        Body::Mount {
            info,
            source,
            fstype,
            ..
        } => {
            w.str(key!("vigil.mount.source"), source)
                .str(key!("vigil.mount.fstype"), fstype)
                .u64(key!("vigil.mount.flags"), info.flags);
        }
        Body::Umount { info, target } => {
            w.str(key!("vigil.umount.target"), target)
                .u64(key!("vigil.umount.flags"), info.flags.into());
        }
        Body::Ns(n) => {
            w.strs(key!("vigil.namespace.flags"), ns_flag_names(n.flags));
            if h.kind == kind::SETNS {
                w.i64(key!("vigil.namespace.fd"), n.fd.into())
                    .u64(key!("vigil.namespace.target"), n.target_ns.into());
                if n.target_pid != 0 {
                    w.u64(key!("vigil.namespace.target_pid"), n.target_pid.into());
                }
            }
            w.u64(key!("vigil.namespace.old.mnt"), n.old_mntns.into())
                .u64(key!("vigil.namespace.old.net"), n.old_netns.into())
                .u64(
                    key!("vigil.namespace.old.pid_for_children"),
                    n.old_pidns_children.into(),
                );
        }
        Body::FChange { info, .. } => write_fchange(w, ev, info, truncated),
        Body::Readline { line } => {
            w.str(key!("vigil.readline.line"), line);
            if ev.k.truncated(0) {
                truncated.push("vigil.readline.line");
            }
        }
        _ => {}
    }
}

/// vigil.env.*, vigil.exec.*.
fn write_exec(
    w: &mut Writer,
    ev: &Event,
    info: &abi::Exec,
    filename: &[u8],
    env: &[Vec<u8>],
    cache: Option<&mut EncodeCache>,
    truncated: &mut Vec<&'static str>,
) {
    let mut own = String::new();
    let name = match cache {
        Some(c) => &mut c.name,
        None => &mut own,
    };
    for e in env {
        if let Some(eq) = e.iter().position(|&b| b == b'=') {
            name.clear();
            name.push_str("vigil.env.");
            name.push_str(&String::from_utf8_lossy(&e[..eq]));
            w.str(&*name, &e[eq + 1..]);
        }
    }
    let flag = |f: u32| info.exec_flags & f != 0;
    if flag(abi::exec_flags::ENV_TRUNC) {
        truncated.push("process.env_vars");
        w.bool(key!("vigil.env.truncated"), true);
    }
    w.str(key!("vigil.exec.filename"), filename)
        .u64(key!("vigil.exec.inode"), info.ino)
        .u64(key!("vigil.exec.argc"), info.argc.into())
        .bool(key!("vigil.exec.memfd"), flag(abi::exec_flags::MEMFD))
        .bool(
            key!("vigil.exec.world_writable_dir"),
            flag(abi::exec_flags::WWDIR),
        )
        .bool(key!("vigil.exec.unlinked"), flag(abi::exec_flags::UNLINKED))
        .bool(key!("vigil.exec.setuid"), flag(abi::exec_flags::SETUID))
        .bool(key!("vigil.exec.setgid"), flag(abi::exec_flags::SETGID));
    if flag(abi::exec_flags::STDIN_PIPE) {
        w.str(key!("vigil.exec.stdin"), "pipe");
    } else if flag(abi::exec_flags::STDIN_INET) {
        w.str(key!("vigil.exec.stdin"), "network");
    }
    if flag(abi::exec_flags::STDOUT_INET) {
        w.str(key!("vigil.exec.stdout"), "network");
    }
    if let Some(r) = ev.replaced.as_deref().filter(|r| !r.exe.is_empty()) {
        w.str("vigil.exec.replaced.executable", &r.exe);
        if !r.args.is_empty() {
            w.str("vigil.exec.replaced.command_line", &r.cmdline);
        }
    }
    if ev.k.truncated(0) {
        truncated.push("process.executable");
    }
    if ev.k.truncated(1) {
        truncated.push("process.args");
    }
}

/// vigil.open.*, vigil.file.written and overwrites.
fn write_open(
    w: &mut Writer,
    ev: &Event,
    info: &abi::Open,
    name: &[u8],
    truncated: &mut Vec<&'static str>,
) {
    w.strs(key!("vigil.open.flags"), open_flags(info.flags))
        .u64(key!("vigil.open.mode"), info.mode.into())
        .i64(key!("vigil.open.ret"), info.ret);
    if info.ret >= 0 {
        w.bool(
            key!("vigil.open.created"),
            info.flags & abi::OPEN_CREATED != 0,
        );
    }
    if !name.is_empty() {
        w.str(key!("vigil.open.name"), name);
    }
    if info.foreign_mntns != 0 {
        w.u64(key!("vigil.open.foreign_mntns"), info.foreign_mntns.into());
    }
    // after every vigil.open.* field: the writer nests by prefix
    w.bool(
        key!("vigil.file.written"),
        info.flags & OPEN_WRITE_FLAGS != 0,
    );
    if ev.overwrites > 0 {
        w.u64(key!("vigil.file.overwrites"), ev.overwrites.into());
    }
    if ev.k.truncated(0) || ev.k.truncated(1) {
        truncated.push("file.path");
    }
}

/// vigil.io_uring.* (and the open flags or unix path of an operation).
fn write_io_uring(
    w: &mut Writer,
    ev: &Event,
    info: &abi::IoUring,
    name: &[u8],
    name2: &[u8],
    truncated: &mut Vec<&'static str>,
) {
    use vigil_bpf::abi::uring;
    if info.what == uring::SETUP {
        w.i64(key!("vigil.io_uring.fd"), info.fd.into())
            .u64(key!("vigil.io_uring.sq_entries"), info.arg.into())
            .u64(key!("vigil.io_uring.cq_entries"), info.arg2.into())
            .u64(key!("vigil.io_uring.setup_flags"), info.flags.into());
    } else {
        w.str(key!("vigil.io_uring.op"), uring_op_name(info.opcode))
            .u64(key!("vigil.io_uring.user_data"), info.user_data);
        match info.what {
            uring::OPEN => {
                w.strs(key!("vigil.open.flags"), open_flag_names(info.flags))
                    .bool(
                        key!("vigil.file.written"),
                        info.flags & OPEN_WRITE_FLAGS != 0,
                    );
            }
            uring::FILE if !name2.is_empty() => {
                w.str(key!("vigil.io_uring.old_name"), name2);
            }
            uring::CONNECT if info.family == libc::AF_UNIX as u16 => {
                w.str(key!("vigil.unix.path"), name);
            }
            _ => {}
        }
    }
    if ev.k.truncated(0) || ev.k.truncated(2) {
        truncated.push("file.path");
    }
}

/// vigil.file_change.* (per operation), vigil.file.written and overwrites.
fn write_fchange(
    w: &mut Writer,
    ev: &Event,
    info: &abi::FChange,
    truncated: &mut Vec<&'static str>,
) {
    let (_, op) = fchange_op(info.syscall);
    w.str(
        key!("vigil.file_change.syscall"),
        fchange_syscall(info.syscall),
    );
    if let Some(p2) = &ev.file_path2 {
        w.str(
            if op == "symlink" {
                "vigil.file_change.target"
            } else {
                "vigil.file_change.source"
            },
            p2,
        );
    }
    let mode = |w: &mut Writer| {
        w.str(
            key!("vigil.file_change.mode"),
            format!("{:04o}", info.mode & 0o7777),
        );
    };
    match op {
        "chmod" => {
            mode(w);
            w.bool(key!("vigil.file_change.setid"), info.mode & 0o6000 != 0);
        }
        "chown" => {
            w.i64(key!("vigil.file_change.uid"), i64::from(info.uid as i32))
                .i64(key!("vigil.file_change.gid"), i64::from(info.gid as i32));
        }
        "truncate" => {
            w.u64(key!("vigil.file_change.length"), info.length);
        }
        "utimes" => {
            use abi::utime;
            w.str(key!("vigil.file_change.times"), utime_times(info.mode));
            if info.mode & utime::MTIME_SET != 0 {
                w.i64(key!("vigil.file_change.mtime"), info.length as i64);
            } else if info.mode & utime::ATIME_SET != 0 {
                w.i64(key!("vigil.file_change.atime"), info.length as i64);
            }
        }
        "mkdir" | "mknod" => {
            mode(w);
            w.str(key!("vigil.file_change.type"), file_type_name(info.mode));
            if op == "mknod" {
                w.u64(key!("vigil.file_change.device"), info.length);
            }
        }
        "write" => {
            // bytes (write, pwrite64) or iovec count (writev family)
            w.u64(key!("vigil.file_change.count"), info.length);
        }
        _ => {}
    }
    if info.flags & !abi::FCHANGE_OTHER_DFD != 0 {
        w.u64(
            key!("vigil.file_change.flags"),
            (info.flags & !abi::FCHANGE_OTHER_DFD).into(),
        );
    }
    // after every vigil.file_change.* field: the writer nests by prefix
    if file_written(ev) == Some(true) {
        w.bool(key!("vigil.file.written"), true);
    }
    if ev.overwrites > 0 {
        w.u64(key!("vigil.file.overwrites"), ev.overwrites.into());
    }
    if ev.k.truncated(0) || ev.k.truncated(1) {
        truncated.push("file.path");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_795_000_000_123_456_789),
            "2026-11-18T11:06:40.123456789Z"
        );
        assert_eq!(
            rfc3339(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
        // the ends of the nanosecond range, and a time before 1970
        assert_eq!(rfc3339(i64::MAX), "2262-04-11T23:47:16.854775807Z");
        assert_eq!(rfc3339(i64::MIN), "1677-09-21T00:12:43.145224192Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999999Z");
        // the cached text rewrites the nanoseconds within a second
        let mut t = TsText::default();
        for ns in [5, 0, 999_999_999, 100_000_000, 123_456_789, 10, 99] {
            let at = 1_795_000_000_000_000_000 + ns;
            assert_eq!(t.get(at), format!("\"{}\"", rfc3339(at)).as_bytes());
        }
    }

    #[test]
    fn names() {
        assert_eq!(cap_name(21), "CAP_SYS_ADMIN");
        assert_eq!(cap_name(99), "CAP_99");
        assert_eq!(open_flag_names(0o101), vec!["O_WRONLY", "O_CREAT"]);
        assert_eq!(ns_flag_names(0x2002_0000), vec!["mnt", "pid"]);
        assert_eq!(errno_str(-2), "ENOENT");
    }
}

#[cfg(test)]
mod encode_tests {
    use super::*;
    use crate::enrich::Enricher;
    use crate::host::{RecordedHost, Users};
    use std::sync::Arc;
    use vigil_bpf::abi::Hdr;
    use vigil_bpf::decode::{decode, encode_record};

    fn rec(k: u16) -> Vec<u8> {
        let hdr = Hdr {
            kind: k,
            pid: 10,
            tid: 10,
            ppid: 1,
            comm: *b"x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            flags: abi::flags::LOSS | abi::flags::TRUNC0,
            ..Hdr::default()
        };
        let s: &[&[u8]] = &[b"/a\n\"b", b"x\0y", b"/c", b"\xff\x1b"];
        macro_rules! r {
            ($t:ty) => {
                encode_record(hdr, &<$t>::default(), s)
            };
        }
        match k {
            kind::EXEC => r!(abi::Exec),
            kind::FORK => r!(abi::Fork),
            kind::EXIT => r!(abi::Exit),
            kind::OPEN => r!(abi::Open),
            kind::FCHANGE => r!(abi::FChange),
            kind::CONNECT | kind::ACCEPT | kind::LISTEN | kind::UDP_SEND | kind::DNS => {
                r!(abi::Sock)
            }
            kind::TCP_STATE => r!(abi::TcpState),
            kind::CAPABLE => r!(abi::Capable),
            kind::SETID => r!(abi::SetId),
            kind::CAPSET => r!(abi::CapSet),
            kind::PTRACE => r!(abi::Ptrace),
            kind::BPF => r!(abi::Bpf),
            kind::MODULE => r!(abi::Module),
            kind::MEMFD => r!(abi::Memfd),
            kind::MOUNT => r!(abi::Mount),
            kind::UMOUNT => r!(abi::Umount),
            kind::UNSHARE | kind::SETNS => r!(abi::Ns),
            kind::READLINE => r!(abi::Readline),
            kind::SIGNAL => r!(abi::Signal),
            kind::IOURING => r!(abi::IoUring),
            kind::COMPAT => r!(abi::Compat),
            kind::SYSCALL => r!(abi::Syscall),
            _ => unreachable!(),
        }
    }

    #[test]
    fn failed_connect_has_no_unbound_source() {
        let mut en = Enricher::new(Arc::new(Users::default()), 0, 4);
        let mut host = RecordedHost::default();
        let hdr = Hdr {
            kind: kind::CONNECT,
            pid: 3,
            ..Hdr::default()
        };
        let mut body = abi::Sock {
            ret: -111,
            family: libc::AF_INET as u16,
            rport: 443,
            ..Default::default()
        };
        body.raddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        let ev = en.enrich(decode(&encode_record(hdr, &body, &[])).unwrap(), &mut host);
        let v: serde_json::Value = serde_json::from_slice(&encode(&ev, "h", "event")).unwrap();
        assert!(v.get("source").is_none(), "{v}");
        assert_eq!(v["destination"]["ip"], "10.0.0.1");
        assert_eq!(v["destination"]["port"], 443);
        assert_eq!(v["error"]["code"], "ECONNREFUSED");
        assert_eq!(v["event"]["outcome"], "failure");
    }

    /// Keys of the outermost object, in order (a duplicate would be a
    /// second write of the same ECS object).
    fn top_level_keys(text: &str) -> Vec<String> {
        let (mut depth, mut in_str, mut esc) = (0, false, false);
        let mut cur = String::new();
        let mut keys = Vec::new();
        let mut expect_key = false;
        for c in text.chars() {
            if in_str {
                if esc {
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else if c == '"' {
                    in_str = false;
                    if depth == 1 && expect_key {
                        keys.push(std::mem::take(&mut cur));
                        expect_key = false;
                    }
                } else if depth == 1 && expect_key {
                    cur.push(c);
                }
                continue;
            }
            match c {
                '"' => in_str = true,
                '{' | '[' => {
                    depth += 1;
                    expect_key = depth == 1;
                }
                '}' | ']' => depth -= 1,
                ',' => expect_key = depth == 1,
                _ => {}
            }
        }
        keys
    }

    /// Every kind encodes to valid JSON with each ECS object written once,
    /// hostile strings included.
    #[test]
    fn every_kind_encodes_to_valid_json_without_duplicate_objects() {
        let mut en = Enricher::new(Arc::new(Users::default()), 0, 4);
        let mut host = RecordedHost::default();
        for k in vigil_bpf::sensors::all_kinds() {
            let ev = en.enrich(decode(&rec(k)).unwrap(), &mut host);
            let out = encode(&ev, "h", "event");
            let text = String::from_utf8(out).unwrap();
            let v: serde_json::Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("kind {k}: {e}: {text}"));
            assert_eq!(v["vigil"]["after_loss"], true, "kind {k}");
            let keys = top_level_keys(&text);
            let unique: std::collections::BTreeSet<_> = keys.iter().collect();
            assert_eq!(
                keys.len(),
                unique.len(),
                "kind {k}: duplicate top-level keys {keys:?}"
            );
            let mut l = vigil_rules::Loader::new();
            l.add_source(
                "t.yaml",
                "- rule: any\n  description: \"d\"\n  tags: [attack.t1059.004]\n  output: \"x %process.pid\"\n  condition: true\n",
            );
            let (set, report) = l.load();
            assert!(report.errors.is_empty(), "{:?}", report.errors);
            let text =
                String::from_utf8(crate::detect::encode_alert(&ev, "h", &set.rules()[0])).unwrap();
            let v: serde_json::Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("alert {k}: {e}: {text}"));
            assert_eq!(v["event"]["kind"], "alert");
            assert_eq!(v["rule"]["id"], "any");
            assert_eq!(v["vigil"]["severity"], "medium");
            assert_eq!(v["threat"]["technique"]["id"][0], "T1059.004");
            let keys = top_level_keys(&text);
            let unique: std::collections::BTreeSet<_> = keys.iter().collect();
            assert_eq!(
                keys.len(),
                unique.len(),
                "alert {k}: duplicate top-level keys {keys:?}"
            );
        }
    }

    /// A rename that wrote its destination and counts as an overwrite, and
    /// an open of an existing file in place, keep every nested field: the
    /// writer nests by prefix, so `vigil.file.*` must not split the
    /// `vigil.file_change.*` or `vigil.open.*` group (a parser keeps only the
    /// last of two objects with one name).
    #[test]
    fn written_and_overwrite_fields_do_not_split_nested_objects() {
        let mut en = Enricher::new(Arc::new(Users::default()), 0, 4);
        let mut host = RecordedHost::default();
        let hdr = |k: u16| Hdr {
            kind: k,
            pid: 10,
            tid: 10,
            ppid: 1,
            ..Hdr::default()
        };
        let rename = abi::FChange {
            syscall: abi::sys::RENAMEAT2,
            ..abi::FChange::default()
        };
        let r = encode_record(
            hdr(kind::FCHANGE),
            &rename,
            &[b"/srv/d", b"a.txt.locked", b"", b"a.txt"],
        );
        let ev = en.enrich(decode(&r).unwrap(), &mut host);
        assert_eq!(ev.overwrites, 1);
        let v: serde_json::Value = serde_json::from_slice(&encode(&ev, "h", "event")).unwrap();
        assert_eq!(v["vigil"]["file_change"]["syscall"], "renameat2", "{v}");
        assert_eq!(v["vigil"]["file_change"]["source"], "/srv/d/a.txt", "{v}");
        assert_eq!(v["vigil"]["file"]["written"], true, "{v}");
        assert_eq!(v["vigil"]["file"]["overwrites"], 1, "{v}");
        let open = abi::Open {
            ret: 3,
            flags: 2, // O_RDWR, not created
            syscall: abi::sys::OPENAT,
            ..abi::Open::default()
        };
        let r = encode_record(hdr(kind::OPEN), &open, &[b"/srv/d/b.txt", b""]);
        let ev = en.enrich(decode(&r).unwrap(), &mut host);
        assert_eq!(ev.overwrites, 2);
        let v: serde_json::Value = serde_json::from_slice(&encode(&ev, "h", "event")).unwrap();
        assert_eq!(v["vigil"]["open"]["flags"][0], "O_RDWR", "{v}");
        assert_eq!(v["vigil"]["open"]["created"], false, "{v}");
        assert_eq!(v["vigil"]["file"]["written"], true, "{v}");
        assert_eq!(v["vigil"]["file"]["overwrites"], 2, "{v}");
        // created by the open: not an overwrite
        let open = abi::Open {
            flags: 0o101 | abi::OPEN_CREATED,
            ..open
        };
        let r = encode_record(hdr(kind::OPEN), &open, &[b"/srv/d/c.txt", b""]);
        let ev = en.enrich(decode(&r).unwrap(), &mut host);
        assert_eq!(ev.overwrites, 0);
        let v: serde_json::Value = serde_json::from_slice(&encode(&ev, "h", "event")).unwrap();
        assert_eq!(v["vigil"]["open"]["created"], true, "{v}");
        assert_eq!(v["vigil"]["open"]["flags"][1], "O_CREAT", "{v}");
        assert!(v["vigil"]["file"].get("overwrites").is_none(), "{v}");
    }

    /// Records written from a process's templates are the writer's bytes:
    /// random records of the kinds written that way (hostile strings,
    /// every flag, optional fields present and absent, several processes
    /// and threads interleaved, the shared objects replaced between them)
    /// encode the same with the cache as without, and each one encoded a
    /// second time is written from the templates the first left.
    #[test]
    fn direct_records_are_byte_identical() {
        use crate::event::{Ancestor, NsUser};
        let mut en = Enricher::new(Arc::new(Users::default()), 1_700_000_000_000_000_000, 4);
        let mut host = RecordedHost::default();
        let mut cache = EncodeCache::default();
        let mut seed = 0x5eed_u64;
        let mut rnd = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n.max(1)
        };
        let strs: [&[u8]; 6] = [
            b"/etc/passwd",
            b"",
            b"a\n\"b\\",
            b"\xff\xfe/x\x1b[1m",
            b"rel/name",
            b"/",
        ];
        let anc = |pid: u32, exe: &[u8]| Ancestor {
            pid,
            exe: Arc::from(exe),
            args: Arc::from(vec![exe.to_vec()]),
            cmdline: Arc::from(exe),
            hash: None,
            start_ns: 0,
        };
        let hashed = Ancestor {
            hash: Some(Arc::from("cd".repeat(32).as_str())),
            ..anc(9, b"/usr/bin/python3")
        };
        let chains: [Arc<[Ancestor]>; 4] = [
            Arc::from(Vec::new()),
            Arc::from(vec![anc(1, b"/sbin/init")]),
            Arc::from(vec![anc(7, b"/bin/sh"), anc(1, b"")]),
            Arc::from(vec![hashed, anc(1, b"/sbin/init")]),
        ];
        let names: [Option<Arc<str>>; 2] = [None, Some(Arc::from("root"))];
        let kinds = [
            kind::EXEC,
            kind::FORK,
            kind::EXIT,
            kind::OPEN,
            kind::CONNECT,
            kind::ACCEPT,
            kind::LISTEN,
            kind::UDP_SEND,
            kind::TCP_STATE,
            kind::CAPABLE,
        ];
        let (mut direct, mut total) = (0, 0);
        for _ in 0..6000 {
            let k = kinds[rnd(kinds.len() as u64) as usize];
            let pid = 100 + rnd(3) as u32;
            let mut flags = 0;
            for f in [
                abi::flags::LOSS,
                abi::flags::TRUNC0,
                abi::flags::TRUNC0 << 1,
                abi::flags::COMPAT,
            ] {
                if rnd(6) == 0 {
                    flags |= f;
                }
            }
            let hdr = Hdr {
                kind: k,
                pid,
                tid: pid + rnd(2) as u32,
                ppid: 1 + rnd(2) as u32,
                uid: rnd(2) as u32 * 1000,
                ns_pid: pid,
                start_ns: rnd(2) * 5_000_000_123,
                ts_ns: 9_000_000_000 + rnd(3_000_000_000),
                comm: *b"prog\0\0\0\0\0\0\0\0\0\0\0\0",
                cgroup_id: 1 + rnd(2),
                flags,
                ..Hdr::default()
            };
            let s: Vec<&[u8]> = (0..4)
                .map(|_| strs[rnd(strs.len() as u64) as usize])
                .collect();
            let mut a4 = [0u8; 16];
            a4[..4].copy_from_slice(&[10, 0, rnd(3) as u8, 1]);
            let mut a6 = [0u8; 16];
            a6[15] = rnd(2) as u8;
            let (family, laddr, raddr) = match rnd(4) {
                0 => (libc::AF_INET6 as u16, a6, a6),
                1 => (libc::AF_UNIX as u16, [0; 16], [0; 16]),
                _ => (libc::AF_INET as u16, [0; 16], a4),
            };
            let ret = [0i64, 3, -2, -13, -111, -115, -4095][rnd(7) as usize];
            let raw = match k {
                kind::EXEC => {
                    let mut b = abi::Exec {
                        ino: rnd(1000),
                        argc: rnd(4) as u32,
                        ..Default::default()
                    };
                    for f in 0..12 {
                        if rnd(4) == 0 {
                            b.exec_flags |= 1 << f;
                        }
                    }
                    encode_record(hdr, &b, &s)
                }
                kind::FORK => encode_record(
                    hdr,
                    &abi::Fork {
                        child_pid: 200,
                        ns_flags: [0, 0x2002_0000, 0x7e02_0080][rnd(3) as usize],
                        ..Default::default()
                    },
                    &[],
                ),
                kind::EXIT => encode_record(
                    hdr,
                    &abi::Exit {
                        status: rnd(0x10000) as u32,
                        _pad: 0,
                    },
                    &[],
                ),
                kind::OPEN => encode_record(
                    hdr,
                    &abi::Open {
                        ret,
                        ino: rnd(2) * 77,
                        flags: rnd(1 << 24) as u32 | (rnd(2) as u32) << 31,
                        mode: rnd(0o1000) as u32,
                        syscall: abi::sys::OPENAT,
                        foreign_mntns: rnd(2) as u32 * 4026531840,
                        ..Default::default()
                    },
                    &s[..2],
                ),
                kind::TCP_STATE => encode_record(
                    hdr,
                    &abi::TcpState {
                        family,
                        sport: rnd(3) as u16,
                        dport: 443,
                        oldstate: rnd(13) as u8,
                        newstate: rnd(13) as u8,
                        saddr: laddr,
                        daddr: raddr,
                    },
                    &[],
                ),
                kind::CAPABLE => encode_record(
                    hdr,
                    &abi::Capable {
                        cap: rnd(45) as i32,
                        ret: -(rnd(2) as i32),
                        target_userns: 4026531837,
                        syscall_nr: 9,
                    },
                    &[],
                ),
                _ => encode_record(
                    hdr,
                    &abi::Sock {
                        ret,
                        family,
                        lport: rnd(2) as u16 * 40000,
                        rport: rnd(2) as u16 * 443,
                        protocol: [6u16, 17, 0][rnd(3) as usize],
                        fd: 3,
                        backlog: 128,
                        laddr,
                        raddr,
                        ..Default::default()
                    },
                    &s[..1],
                ),
            };
            let mut ev = en.enrich(decode(&raw).unwrap(), &mut host);
            // the enricher's views, replaced by shared objects of a few kinds
            ev.ancestors = chains[rnd(4) as usize].clone();
            ev.user = names[rnd(2) as usize].clone();
            ev.group = names[rnd(2) as usize].clone();
            if rnd(3) == 0 {
                ev.file_path = Some(s[0].to_vec());
            }
            if rnd(3) == 0 {
                ev.domain = Some(Arc::from("example.org"));
            }
            if rnd(4) == 0 {
                ev.ns_user = Some(NsUser {
                    id: Some(0),
                    name: names[rnd(2) as usize].clone(),
                });
            }
            if rnd(4) == 0 {
                ev.cgroup_path = Some(Arc::from("/system.slice/a.service"));
            }
            ev.overwrites = rnd(2) as u32 * 3;
            if rnd(8) == 0 {
                ev.hash_pending = true;
            }
            if rnd(4) == 0
                && let Some(mut p) = ev.process.as_deref().cloned()
            {
                if rnd(2) == 0 {
                    p.hash = Some(Arc::from("ab".repeat(32).as_str()));
                }
                if rnd(2) == 0 {
                    p.container = Some(Arc::new(Container {
                        id: "c".repeat(64),
                        runtime: "docker",
                    }));
                    if rnd(2) == 0 {
                        ev.container_meta = Some(Arc::new(ContainerMeta {
                            name: Some("web".into()),
                            image: rnd(2).eq(&0).then(|| "nginx:1".into()),
                            ..Default::default()
                        }));
                    }
                }
                ev.process = Some(Arc::new(p));
            }
            let plain = encode(&ev, "h", "event");
            for round in 0..2 {
                let mut out = b"{}\n".to_vec();
                let before = cache.tmpl.hits;
                encode_cached_into(&ev, "h", "event", &mut cache, &mut out);
                total += 1;
                direct += cache.tmpl.hits - before;
                // the same record again: from the templates it left
                if round == 1 && !ev.hash_pending {
                    assert_eq!(cache.tmpl.hits, before + 1, "kind {k}: not from templates");
                }
                assert_eq!(
                    String::from_utf8_lossy(&out[3..]),
                    String::from_utf8_lossy(&plain),
                    "kind {k} round {round}"
                );
            }
        }
        assert!(direct * 5 > total * 2, "{direct} of {total} from templates");
    }

    /// A process's exit record is written from the templates its exec
    /// record built, although the enricher marks the process exited in a
    /// new copy of its table entry (the template holds the old one); the
    /// bytes are the writer's.
    #[test]
    fn exit_after_exec_uses_the_exec_templates() {
        let mut en = Enricher::new(Arc::new(Users::default()), 1_700_000_000_000_000_000, 4);
        let mut host = RecordedHost::default();
        let mut cache = EncodeCache::default();
        let hdr = |k: u16, ts_ns: u64| Hdr {
            kind: k,
            pid: 300,
            tid: 300,
            ppid: 1,
            ns_pid: 300,
            start_ns: 5_000_000_123,
            ts_ns,
            comm: *b"true\0\0\0\0\0\0\0\0\0\0\0\0",
            cgroup_id: 2,
            ..Hdr::default()
        };
        let strs: [&[u8]; 4] = [b"/usr/bin/true", b"/tmp", b"true", b"-x"];
        let exec = encode_record(
            hdr(kind::EXEC, 9_000_000_000),
            &abi::Exec {
                argc: 2,
                ..Default::default()
            },
            &strs,
        );
        let exit = encode_record(
            hdr(kind::EXIT, 9_000_500_000),
            &abi::Exit {
                status: 3 << 8,
                _pad: 0,
            },
            &[],
        );
        // the parent is known (an unknown one is a new placeholder each time)
        let init = encode_record(
            Hdr {
                pid: 1,
                tid: 1,
                ppid: 0,
                ns_pid: 1,
                start_ns: 1,
                ..hdr(kind::EXEC, 8_000_000_000)
            },
            &abi::Exec {
                argc: 1,
                ..Default::default()
            },
            &[b"/sbin/init", b"/", b"/sbin/init"],
        );
        en.enrich(decode(&init).unwrap(), &mut host);
        let ex = en.enrich(decode(&exec).unwrap(), &mut host);
        let mut out = Vec::new();
        encode_cached_into(&ex, "h", "event", &mut cache, &mut out);
        assert_eq!(out, encode(&ex, "h", "event"));
        let ev = en.enrich(decode(&exit).unwrap(), &mut host);
        let (a, b) = (ex.process.as_ref().unwrap(), ev.process.as_ref().unwrap());
        assert!(!Arc::ptr_eq(a, b), "the exit is a new copy of the entry");
        assert!(b.exited_ns.is_some() && a.exited_ns.is_none());
        let before = cache.tmpl.hits;
        let mut out = Vec::new();
        encode_cached_into(&ev, "h", "event", &mut cache, &mut out);
        assert_eq!(cache.tmpl.hits, before + 1, "the exit missed its templates");
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&encode(&ev, "h", "event"))
        );
        assert!(String::from_utf8_lossy(&out).contains("\"exit_code\":3"));
    }

    /// The per-process fragment cache gives byte-identical output to the
    /// uncached encoder, over every kind and while the parent, users,
    /// ancestors, namespaces and pid slot change under it (no stale bytes).
    #[test]
    fn cached_encoding_is_byte_identical() {
        use crate::event::Ancestor;
        let mut en = Enricher::new(Arc::new(Users::default()), 0, 4);
        let mut host = RecordedHost::default();
        let mut cache = EncodeCache::default();
        let mut buf = Vec::new();
        let anc = |pid: u32, exe: &str| Ancestor {
            pid,
            exe: Arc::from(exe.as_bytes()),
            args: Arc::from(vec![exe.as_bytes().to_vec()]),
            cmdline: Arc::from(exe.as_bytes()),
            hash: (pid == 2).then(|| Arc::from("ab".repeat(32).as_str())),
            start_ns: 0,
        };
        let mut n = 0;
        let mut images = 0;
        for round in 0..4u32 {
            for k in vigil_bpf::sensors::all_kinds() {
                let mut ev = en.enrich(decode(&rec(k)).unwrap(), &mut host);
                // vary what the fragments are keyed by, every few records
                match (n / 3) % 7 {
                    // only the executable's hash changes
                    0 if round % 2 == 1 => {
                        if let Some(mut p) = ev.process.as_deref().cloned() {
                            p.hash = Some(Arc::from(format!("{round:064x}").as_str()));
                            ev.process = Some(Arc::new(p));
                        }
                    }
                    0 => {}
                    6 => {
                        // the image changes (an exec) under the same pid
                        let Some(mut p) = ev.process.as_deref().cloned() else {
                            continue;
                        };
                        p.exe = Arc::from(&b"/usr/bin/env"[..]);
                        p.args = Arc::from(vec![b"env".to_vec(), format!("r{round}").into_bytes()]);
                        p.cmdline = Arc::from(format!("env r{round}").as_bytes());
                        p.cwd = Arc::from(&b"/tmp"[..]);
                        ev.process = Some(Arc::new(p));
                        images += 1;
                    }
                    1 => ev.user = Some(Arc::from("alice")),
                    2 => ev.ancestors = vec![anc(1, "/sbin/init"), anc(2, "/bin/sh")].into(),
                    3 => {
                        ev.ancestors = vec![anc(1, "/bin/sh")].into();
                        ev.k.hdr.ppid = 7;
                    }
                    4 => {
                        ev.k.hdr.pid += CACHE_SLOTS as u32;
                        ev.k.hdr.mntns = 99 + round;
                    }
                    _ => ev.cgroup_path = Some(Arc::from("/system.slice/x")),
                }
                n += 1;
                let plain = encode(&ev, "h", "event");
                // straight into an output buffer that holds earlier records
                let mut out = b"{\"earlier\":1}\n".to_vec();
                encode_cached_into(&ev, "h", "event", &mut cache, &mut out);
                assert_eq!(&out[..14], b"{\"earlier\":1}\n");
                assert_eq!(
                    String::from_utf8_lossy(&out[14..]),
                    String::from_utf8_lossy(&plain),
                    "appended: kind {k} case {}",
                    (n - 1) / 3 % 7
                );
                for _ in 0..2 {
                    buf = encode_cached(&ev, "h", "event", &mut cache, buf);
                    assert_eq!(
                        String::from_utf8_lossy(&buf),
                        String::from_utf8_lossy(&plain),
                        "kind {k} case {}",
                        (n - 1) / 3 % 7
                    );
                }
            }
        }
        assert!(images > 0, "no event had a process image to vary");
    }
}
