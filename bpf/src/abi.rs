//! Rust mirror of `bpf/c/vigil_abi.h`: every structure that crosses the
//! kernel/user boundary, with the same sizes and offsets (asserted at compile
//! time on both sides, so a drift fails the build).
//!
//! These are plain `#[repr(C)]` data; they are read out of ring-buffer bytes
//! with [`read_pod`], never by casting references into the buffer (ring buffer
//! records are only 8-byte aligned and may be truncated by a hostile writer).

#![allow(missing_docs)] // field meanings are documented once, in vigil_abi.h and docs/events.md

use core::mem::{offset_of, size_of};

/// ABI version; bump with any layout change (also in vigil_abi.h).
pub const ABI_VERSION: u32 = 2;

/// Number of slots in per-kind arrays (counters, interest_kinds).
pub const KIND_SLOTS: u32 = 64;
/// Maximum number of trailing strings in a record.
pub const MAX_STR: usize = 4;
/// Largest DNS message a `VG_DNS` record carries (`VG_DNS_MAX`).
pub const DNS_MAX: usize = 1024;
/// Key size of the interest_paths LPM trie.
pub const LPM_MAX: usize = 256;

/// Event kind numbers (`enum vg_kind`).
pub mod kind {
    pub const EXEC: u16 = 1;
    pub const FORK: u16 = 2;
    pub const EXIT: u16 = 3;
    pub const OPEN: u16 = 10;
    pub const FCHANGE: u16 = 11;
    pub const CONNECT: u16 = 20;
    pub const ACCEPT: u16 = 21;
    pub const LISTEN: u16 = 22;
    pub const TCP_STATE: u16 = 23;
    pub const UDP_SEND: u16 = 24;
    pub const DNS: u16 = 25;
    pub const CAPABLE: u16 = 30;
    pub const SETID: u16 = 31;
    pub const CAPSET: u16 = 32;
    pub const PTRACE: u16 = 40;
    pub const BPF: u16 = 41;
    pub const MODULE: u16 = 42;
    pub const MEMFD: u16 = 43;
    pub const SIGNAL: u16 = 44;
    pub const IOURING: u16 = 45;
    pub const COMPAT: u16 = 46;
    pub const SYSCALL: u16 = 47;
    pub const MOUNT: u16 = 50;
    pub const UMOUNT: u16 = 51;
    pub const UNSHARE: u16 = 52;
    pub const SETNS: u16 = 53;
    pub const READLINE: u16 = 60;
}

/// `hdr.flags` bits.
pub mod flags {
    /// String `i` was truncated: `TRUNC0 << i`.
    pub const TRUNC0: u16 = 1 << 0;
    /// This CPU dropped records since its previous record.
    pub const LOSS: u16 = 1 << 4;
    /// Emitted by a thread that is not the thread-group leader.
    pub const THREAD: u16 = 1 << 5;
    /// Translated from a 32-bit compat syscall record (`VG_COMPAT`).
    pub const COMPAT: u16 = 1 << 6;
}

/// `vg_exec.exec_flags` bits.
pub mod exec_flags {
    pub const MEMFD: u32 = 1 << 0;
    pub const UNLINKED: u32 = 1 << 1;
    pub const SETUID: u32 = 1 << 2;
    pub const SETGID: u32 = 1 << 3;
    /// The kept entries of the new image's environment trail the
    /// record's strings.
    pub const ENV: u32 = 1 << 4;
    /// ... the walk stopped after [`super::ENV_STEPS`] steps (later
    /// entries are unseen) or a kept entry was cut.
    pub const ENV_TRUNC: u32 = 1 << 5;
    pub const KILLED: u32 = 1 << 6;
    pub const WOULD_KILL: u32 = 1 << 7;
    pub const KILL_REFUSED: u32 = 1 << 8;
    pub const KILL_FAILED: u32 = 1 << 9;
    /// The executable's directory is world-writable (`S_IWOTH`).
    pub const WWDIR: u32 = 1 << 10;
    /// fd 0 of the new image is a pipe or FIFO.
    pub const STDIN_PIPE: u32 = 1 << 11;
    /// fd 0 is an `AF_INET`/`AF_INET6` socket.
    pub const STDIN_INET: u32 = 1 << 12;
    /// fd 1 is an `AF_INET`/`AF_INET6` socket.
    pub const STDOUT_INET: u32 = 1 << 13;
}

/// `hdr.flags` of an open or connect record a kernel kill rule matched
/// (`VG_F_KILLED` ...).
pub mod kill_flags {
    /// SIGKILL sent at the syscall's exit.
    pub const KILLED: u16 = 1 << 7;
    /// Monitor mode: a kill rule matched.
    pub const WOULD_KILL: u16 = 1 << 8;
    /// Matched, but a protected process.
    pub const KILL_REFUSED: u16 = 1 << 9;
    /// `bpf_send_signal` failed.
    pub const KILL_FAILED: u16 = 1 << 10;
}

/// `kill_cfg` slots and kill actions (`VG_KILL_*`).
pub mod kill {
    pub const CFG_MEMFD: u32 = 0;
    pub const CFG_SUPERVISOR: u32 = 1;
    /// Action for execs from a world-writable directory.
    pub const CFG_WWDIR: u32 = 2;
    /// Nonzero: `kill_open_paths` has entries.
    pub const CFG_OPEN: u32 = 3;
    /// `kill_exec_paths`/`kill_open_paths` values: the action's bits ...
    pub const ACT_MASK: u32 = 0xff;
    /// ... and "the path is exactly the key" (its length in bits 16..).
    pub const EXACT: u32 = 1 << 8;
    pub const ACT_KILL: u32 = 1;
    pub const ACT_WOULD: u32 = 2;
}

/// Most steps of the kernel's walk of an exec's environment (one per
/// entry, or per 4095 bytes of a longer one: `VG_ENV_STEPS`).
pub const ENV_STEPS: usize = 512;

/// `vg_fchange.mode` bits of the utimes family (`VG_UTIME_*`).
pub mod utime {
    /// The atime is set to a value the caller passed.
    pub const ATIME_SET: u32 = 1 << 0;
    /// The mtime is set to a value the caller passed.
    pub const MTIME_SET: u32 = 1 << 1;
    /// The atime is left unchanged (`UTIME_OMIT`).
    pub const ATIME_OMIT: u32 = 1 << 2;
    /// The mtime is left unchanged (`UTIME_OMIT`).
    pub const MTIME_OMIT: u32 = 1 << 3;
}

/// Stable syscall identifiers (`enum vg_sys`).
pub mod sys {
    pub const OPEN: u32 = 1;
    pub const OPENAT: u32 = 2;
    pub const OPENAT2: u32 = 3;
    pub const CREAT: u32 = 4;
    pub const SETUID: u32 = 10;
    pub const SETGID: u32 = 11;
    pub const SETREUID: u32 = 12;
    pub const SETREGID: u32 = 13;
    pub const SETRESUID: u32 = 14;
    pub const SETRESGID: u32 = 15;
    pub const SETFSUID: u32 = 16;
    pub const SETFSGID: u32 = 17;
    pub const INIT_MODULE: u32 = 20;
    pub const FINIT_MODULE: u32 = 21;
    pub const DELETE_MODULE: u32 = 22;
    pub const ACCEPT: u32 = 30;
    pub const ACCEPT4: u32 = 31;
    pub const SENDTO: u32 = 32;
    pub const SENDMSG: u32 = 33;
    pub const SENDMMSG: u32 = 34;
    pub const RECVFROM: u32 = 35;
    pub const RECVMSG: u32 = 36;
    pub const RENAME: u32 = 40;
    pub const RENAMEAT: u32 = 41;
    pub const RENAMEAT2: u32 = 42;
    pub const UNLINK: u32 = 43;
    pub const UNLINKAT: u32 = 44;
    pub const RMDIR: u32 = 45;
    pub const TRUNCATE: u32 = 46;
    pub const FTRUNCATE: u32 = 47;
    pub const CHMOD: u32 = 48;
    pub const FCHMOD: u32 = 49;
    pub const FCHMODAT: u32 = 50;
    pub const FCHMODAT2: u32 = 51;
    pub const CHOWN: u32 = 52;
    pub const FCHOWN: u32 = 53;
    pub const LCHOWN: u32 = 54;
    pub const FCHOWNAT: u32 = 55;
    pub const LINK: u32 = 56;
    pub const LINKAT: u32 = 57;
    pub const SYMLINK: u32 = 58;
    pub const SYMLINKAT: u32 = 59;
    pub const WRITE: u32 = 60;
    pub const PWRITE64: u32 = 61;
    pub const WRITEV: u32 = 62;
    pub const PWRITEV: u32 = 63;
    pub const PWRITEV2: u32 = 64;
    pub const MKDIR: u32 = 65;
    pub const MKDIRAT: u32 = 66;
    pub const MKNOD: u32 = 67;
    pub const MKNODAT: u32 = 68;
    pub const UTIMENSAT: u32 = 69;
    pub const UTIMES: u32 = 70;
    pub const FUTIMESAT: u32 = 71;
    pub const UTIME: u32 = 72;
    pub const PROCESS_VM_READV: u32 = 80;
    pub const PROCESS_VM_WRITEV: u32 = 81;
}

/// Values of the interest_paths LPM trie.
pub const PATH_REPORT: u32 = 1;
/// Never report opens below this prefix.
pub const PATH_IGNORE: u32 = 2;
/// Report the successful opens below this prefix (a failed one only for
/// another reason).
pub const PATH_REPORT_OK: u32 = 3;
/// interest_ports value: do not report this port.
pub const PORT_IGNORE: u32 = 2;
/// interest_ports value: a failed connect to this port is reported (while
/// `interest_cfg[ICFG_FAILED_CONNECT]` is set).
pub const PORT_FAILED: u32 = 4;
/// interest_cfg slot: nonzero = a failed inet connect is reported only to a
/// [`PORT_FAILED`] port.
pub const ICFG_FAILED_CONNECT: u32 = 0;
/// interest_kinds value bit: emit this kind.
pub const INTEREST_ON: u32 = 1;
/// interest_kinds value bit: this kind's records are alert candidates.
pub const INTEREST_PRIO: u32 = 2;

/// Marker for types that may be read from arbitrary bytes: `#[repr(C)]`,
/// only integer fields and arrays of them, no padding holes, every bit
/// pattern valid.
///
/// # Safety
/// Implementors must satisfy the above.
pub unsafe trait Pod: Copy + 'static {}

/// Reads a `T` from the start of `bytes`, or `None` if too short.
pub fn read_pod<T: Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: length checked above; T: Pod accepts any bit pattern; the read
    // is unaligned because ring-buffer records carry no alignment promise.
    Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

macro_rules! pod {
    ($($t:ty),*) => { $(unsafe impl Pod for $t {})* };
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hdr {
    pub kind: u16,
    pub flags: u16,
    pub size: u32,
    pub ts_ns: u64,
    pub start_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub ns_pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub auid: u32,
    pub pidns: u32,
    pub mntns: u32,
    pub netns: u32,
    pub str_len: [u16; MAX_STR],
    pub comm: [u8; 16],
}
const _: () = assert!(size_of::<Hdr>() == 104);
const _: () = assert!(offset_of!(Hdr, ts_ns) == 8);
const _: () = assert!(offset_of!(Hdr, pid) == 32);
const _: () = assert!(offset_of!(Hdr, auid) == 64);
const _: () = assert!(offset_of!(Hdr, str_len) == 80);
const _: () = assert!(offset_of!(Hdr, comm) == 88);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exec {
    pub ino: u64,
    pub mtime_sec: i64,
    pub dev: u32,
    pub mode: u32,
    pub file_uid: u32,
    pub argc: u32,
    pub exec_flags: u32,
    pub old_pid: u32,
    pub size: u64,
    pub ctime_sec: i64,
    pub mtime_nsec: u32,
    pub ctime_nsec: u32,
}
const _: () = assert!(size_of::<Exec>() == 64);
const _: () = assert!(offset_of!(Exec, size) == 40);
const _: () = assert!(offset_of!(Exec, exec_flags) == 32);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fork {
    pub child_start_ns: u64,
    pub child_pid: u32,
    pub child_ns_pid: u32,
    pub child_pidns: u32,
    pub child_mntns: u32,
    pub child_netns: u32,
    pub ns_flags: u32,
}
const _: () = assert!(size_of::<Fork>() == 32);
const _: () = assert!(offset_of!(Fork, ns_flags) == 28);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exit {
    pub status: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<Exit>() == 8);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Open {
    pub ret: i64,
    pub ino: u64,
    pub flags: u32,
    pub mode: u32,
    pub dev: u32,
    pub syscall: u32,
    pub dfd: i32,
    /// Success: inode of the opened file's mount namespace when it is not
    /// the caller's (reached through `/proc/PID/root`); then string 1 is
    /// the name as passed. 0 otherwise.
    pub foreign_mntns: u32,
}
const _: () = assert!(size_of::<Open>() == 40);
const _: () = assert!(offset_of!(Open, dfd) == 32);

/// `vg_open.flags` bit 31 (`VG_OPEN_CREATED`): the open created the file
/// (the kernel's `FMODE_CREATED`). No `O_*` flag uses the bit; the kernel
/// clears it from the flags as passed. A successful open asking for write
/// access without it reached a file that already existed.
pub const OPEN_CREATED: u32 = 1 << 31;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sock {
    pub ret: i64,
    pub family: u16,
    pub lport: u16,
    pub rport: u16,
    pub protocol: u16,
    pub fd: i32,
    pub sock_type: u32,
    pub backlog: u32,
    pub _pad: u32,
    pub laddr: [u8; 16],
    pub raddr: [u8; 16],
}
const _: () = assert!(size_of::<Sock>() == 64);
const _: () = assert!(offset_of!(Sock, laddr) == 32);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpState {
    pub family: u16,
    pub sport: u16,
    pub dport: u16,
    pub oldstate: u8,
    pub newstate: u8,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}
const _: () = assert!(size_of::<TcpState>() == 40);
const _: () = assert!(offset_of!(TcpState, saddr) == 8);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capable {
    pub cap: i32,
    pub ret: i32,
    pub target_userns: u32,
    /// The syscall in progress at the check (`orig_ax`; -1 in a kernel
    /// thread, -2 outside a syscall: an exception such as a page fault).
    /// Part of the kernel's dedup key.
    pub syscall_nr: i32,
}
const _: () = assert!(size_of::<Capable>() == 16);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetId {
    pub ret: i64,
    pub syscall: u32,
    pub id: [i32; 3],
}
const _: () = assert!(size_of::<SetId>() == 24);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSet {
    pub ret: i64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub target_pid: i32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<CapSet>() == 40);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ptrace {
    pub ret: i64,
    pub request: i64,
    pub target_pid: i32,
    /// 0 for ptrace, else `sys::PROCESS_VM_READV` / `sys::PROCESS_VM_WRITEV`.
    pub syscall: u32,
}
const _: () = assert!(size_of::<Ptrace>() == 24);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bpf {
    pub ret: i64,
    pub cmd: u32,
    pub r#type: u32,
}
const _: () = assert!(size_of::<Bpf>() == 16);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Module {
    pub ret: i64,
    pub syscall: u32,
    pub flags: u32,
    pub len: u64,
}
const _: () = assert!(size_of::<Module>() == 24);

/// `VG_SIGNAL` body (see `struct vg_signal`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signal {
    pub sig: i32,
    pub result: i32,
    pub target_pid: u32,
    pub target_tgid: u32,
    pub code: i32,
    pub group: u32,
}
const _: () = assert!(size_of::<Signal>() == 24);

/// `vg_fchange.flags`: the old name came with a different dirfd (not joined).
pub const FCHANGE_OTHER_DFD: u32 = 1 << 31;

/// `vg_compat_what`.
pub mod compat_what {
    pub const OPEN: u32 = 1;
    pub const CONNECT: u32 = 2;
    pub const SOCKETCALL: u32 = 3;
    pub const SETID: u32 = 4;
    pub const PTRACE: u32 = 5;
    pub const OTHER: u32 = 6;
}

/// `VG_COMPAT` body (see `struct vg_compat`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compat {
    pub ret: i64,
    pub ino: u64,
    pub dev: u32,
    pub nr: u32,
    pub info: u32,
    pub _pad: u32,
    pub args: [u64; 6],
}
const _: () = assert!(size_of::<Compat>() == 80);

/// `VG_SYSCALL` body (see `struct vg_syscall`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Syscall {
    pub ret: i64,
    pub nr: u32,
    pub _pad: u32,
    pub args: [u64; 3],
}
const _: () = assert!(size_of::<Syscall>() == 40);

/// The native syscalls the `syscall` sensor reports at the raw sys_exit,
/// as (x86-64 number, name); the kernel side tests the same numbers.
pub const RARE_CALLS: &[(u32, &str)] = &[(99, "sysinfo"), (103, "syslog"), (135, "personality")];

/// `vg_uring_what`.
pub mod uring {
    pub const SETUP: u32 = 1;
    pub const OPEN: u32 = 2;
    pub const FILE: u32 = 3;
    pub const CONNECT: u32 = 4;
    pub const OP: u32 = 5;
}

/// `VG_IOURING` body (see `struct vg_iouring`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoUring {
    pub what: u32,
    pub opcode: u8,
    pub _pad0: u8,
    pub family: u16,
    pub fd: i32,
    pub flags: u32,
    pub arg: u32,
    pub arg2: u32,
    pub rport: u16,
    pub _pad1: u16,
    pub _pad2: u32,
    pub raddr: [u8; 16],
    pub user_data: u64,
}
const _: () = assert!(size_of::<IoUring>() == 56);
const _: () = assert!(offset_of!(IoUring, raddr) == 32);

/// `VG_FCHANGE` body (see `struct vg_fchange`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FChange {
    pub ret: i64,
    pub length: u64,
    pub syscall: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub flags: u32,
    pub dfd: i32,
}
const _: () = assert!(size_of::<FChange>() == 40);
const _: () = assert!(offset_of!(FChange, dfd) == 36);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memfd {
    pub ret: i64,
    pub flags: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<Memfd>() == 16);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mount {
    pub ret: i64,
    pub flags: u64,
}
const _: () = assert!(size_of::<Mount>() == 16);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Umount {
    pub ret: i64,
    pub flags: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<Umount>() == 16);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ns {
    pub ret: i64,
    pub flags: u64,
    pub fd: i32,
    pub target_ns: u32,
    pub old_mntns: u32,
    pub old_netns: u32,
    pub old_pidns_children: u32,
    /// setns through a pidfd: the target's host tgid (then `target_ns` is
    /// the target's mount namespace); 0 otherwise.
    pub target_pid: u32,
}
const _: () = assert!(size_of::<Ns>() == 40);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readline {
    pub _reserved: u64,
}
const _: () = assert!(size_of::<Readline>() == 8);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub emitted: u64,
    pub dropped: u64,
    pub filtered: u64,
    pub deduped: u64,
    pub dropped_prio: u64,
    pub demoted: u64,
}
const _: () = assert!(size_of::<Counters>() == 48);

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathKey {
    pub prefixlen: u32,
    pub path: [u8; LPM_MAX],
}
const _: () = assert!(size_of::<PathKey>() == 260);

/// `kvm_counts` key: a VMM process and what it counted.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KvmKey {
    pub tgid: u32,
    pub what: u16,
    pub detail: u16,
}
const _: () = assert!(size_of::<KvmKey>() == 8);

/// `vg_kvm_what` values.
pub mod kvm {
    pub const EXIT: u16 = 1;
    pub const PIO: u16 = 2;
    pub const MMIO: u16 = 3;
    pub const USERSPACE_EXIT: u16 = 4;
    pub const EMULATE: u16 = 5;
    pub const HYPERCALL: u16 = 6;

    /// Name of a `what`.
    pub fn name(what: u16) -> &'static str {
        match what {
            EXIT => "exit",
            PIO => "pio",
            MMIO => "mmio",
            USERSPACE_EXIT => "userspace_exit",
            EMULATE => "emulate_insn",
            HYPERCALL => "hypercall",
            _ => "?",
        }
    }
}

/// Slots of the syscall-learning maps (`VG_LEARN_SLOTS`).
pub const LEARN_SLOTS: u32 = 4096;

/// `learn_exe` key: an executable's device and inode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LearnKey {
    pub ino: u64,
    pub dev: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<LearnKey>() == 16);

/// `learn_sys` value: one bit per syscall number 0..511.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysSet {
    pub w: [u64; 8],
}
const _: () = assert!(size_of::<SysSet>() == 64);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DedupKey {
    pub tgid: u32,
    pub kind: u32,
    pub a: u64,
    pub b: u64,
}
const _: () = assert!(size_of::<DedupKey>() == 24);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DedupVal {
    pub count: u64,
    pub last_ns: u64,
}
const _: () = assert!(size_of::<DedupVal>() == 16);

pod!(
    Compat, Syscall, IoUring, FChange, Signal, Hdr, Exec, Fork, Exit, Open, Sock, TcpState,
    Capable, SetId, CapSet, Ptrace, Bpf, Module, Memfd, Mount, Umount, Ns, Readline, Counters,
    PathKey, DedupKey, DedupVal
);

// aya map value/key marker traits.
// SAFETY: all are repr(C) integer aggregates without padding holes.
unsafe impl aya::Pod for Counters {}
unsafe impl aya::Pod for PathKey {}
unsafe impl aya::Pod for DedupKey {}
unsafe impl aya::Pod for LearnKey {}
unsafe impl aya::Pod for KvmKey {}
unsafe impl aya::Pod for SysSet {}
unsafe impl aya::Pod for DedupVal {}
