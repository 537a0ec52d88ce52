/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * vigil kernel ABI: every structure that crosses the kernel/user boundary.
 *
 * Mirrored by bpf/src/abi.rs. Both sides assert sizes and offsets, so a
 * change here that is not made there fails the build, not production.
 * Rules: fixed-width types only, explicit padding, no bitfields, every
 * struct a multiple of 8 bytes.
 *
 * Record layout in the ring buffer:
 *
 *     struct vg_hdr | kind body (fixed size per kind) | str 0 | str 1 | ...
 *
 * hdr.str_len[i] is the byte length of string i (no terminating NUL);
 * strings follow the body back to back in index order. hdr.size is the
 * length of the whole record. Decoders check all of this before reading.
 */
#ifndef VIGIL_ABI_H
#define VIGIL_ABI_H

#define VG_ABI_VERSION 2

/* Event kinds. Fixed numbers, grouped by decade with gaps for growth. */
enum vg_kind {
	/* process lifecycle */
	VG_EXEC = 1,
	VG_FORK = 2,
	VG_EXIT = 3,
	/* files */
	VG_OPEN = 10,
	VG_FCHANGE = 11,
	/* network */
	VG_CONNECT = 20,
	VG_ACCEPT = 21,
	VG_LISTEN = 22,
	VG_TCP_STATE = 23,
	VG_UDP_SEND = 24,
	VG_DNS = 25,
	/* privileges */
	VG_CAPABLE = 30,
	VG_SETID = 31,
	VG_CAPSET = 32,
	/* kernel attack surface */
	VG_PTRACE = 40,
	VG_BPF = 41,
	VG_MODULE = 42,
	VG_MEMFD = 43,
	VG_SIGNAL = 44,
	VG_IOURING = 45,
	VG_COMPAT = 46,
	VG_SYSCALL = 47,
	/* mounts and namespaces */
	VG_MOUNT = 50,
	VG_UMOUNT = 51,
	VG_UNSHARE = 52,
	VG_SETNS = 53,
	/* user space probes */
	VG_READLINE = 60,
};
/* Size of every per-kind array (counters, interest). */
#define VG_KIND_SLOTS 64

/* hdr.flags */
#define VG_F_TRUNC0 (1u << 0) /* string 0 was truncated */
#define VG_F_TRUNC1 (1u << 1)
#define VG_F_TRUNC2 (1u << 2)
#define VG_F_TRUNC3 (1u << 3)
#define VG_F_LOSS (1u << 4)   /* this CPU dropped events since its previous record */
#define VG_F_THREAD (1u << 5) /* emitted by a thread that is not the group leader */
#define VG_F_COMPAT (1u << 6) /* set by userspace: translated from a VG_COMPAT record */

#define VG_MAX_STR 4

struct vg_hdr {
	__u16 kind;             /* enum vg_kind */
	__u16 flags;            /* VG_F_* */
	__u32 size;             /* total record length in bytes */
	__u64 ts_ns;            /* CLOCK_BOOTTIME ns (bpf_ktime_get_boot_ns) */
	__u64 start_ns;         /* thread group leader's start_boottime (ns) */
	__u64 cgroup_id;        /* cgroup v2 id (kernfs id of dfl cgroup) */
	__u32 pid;              /* tgid, host pid namespace */
	__u32 tid;              /* thread id, host pid namespace */
	__u32 ppid;             /* real_parent's tgid, host pid namespace */
	__u32 ns_pid;           /* tgid as seen in the task's own pid namespace */
	__u32 uid;              /* real uid (host user namespace) */
	__u32 gid;              /* real gid */
	__u32 euid;             /* effective uid */
	__u32 egid;             /* effective gid */
	__u32 auid;             /* loginuid (audit), 0xffffffff when unset */
	__u32 pidns;            /* inode of the task's active pid namespace */
	__u32 mntns;            /* inode of the mount namespace */
	__u32 netns;            /* inode of the network namespace */
	__u16 str_len[VG_MAX_STR]; /* lengths of the trailing strings */
	char comm[16];          /* task comm, NUL-padded */
};
_Static_assert(sizeof(struct vg_hdr) == 104, "vg_hdr: update bpf/src/abi.rs");

/* VG_EXEC, from sched_process_exec. Strings: 0 = executable path
 * (canonical: bprm->file, so symlinks and relative paths are resolved),
 * 1 = argv (NUL-separated, from the new mm), 2 = cwd,
 * 3 = bprm->filename as passed to execve (may be relative or a symlink). */
struct vg_exec {
	__u64 ino;         /* executable inode number */
	__s64 mtime_sec;   /* executable mtime, seconds */
	__u32 dev;         /* executable's superblock s_dev (kernel encoding) */
	__u32 mode;        /* executable i_mode */
	__u32 file_uid;    /* executable owner */
	__u32 argc;        /* argument count (bprm->argc) */
	__u32 exec_flags;  /* VG_EXEC_* */
	__u32 old_pid;     /* tid that called execve (differs after de_thread) */
	/* The executable's identity as stat(2) reports it (with ino and dev):
	 * the engine answers the hash cache from these without a syscall. */
	__u64 size;        /* executable i_size */
	__s64 ctime_sec;   /* executable ctime, seconds */
	__u32 mtime_nsec;  /* executable mtime, nanoseconds */
	__u32 ctime_nsec;  /* executable ctime, nanoseconds */
};
_Static_assert(sizeof(struct vg_exec) == 64, "vg_exec");
#define VG_EXEC_MEMFD (1u << 0)   /* executable is a memfd (fileless) */
#define VG_EXEC_UNLINKED (1u << 1) /* executable has no links (deleted) */
#define VG_EXEC_SETUID (1u << 2)  /* euid changed by the exec */
#define VG_EXEC_SETGID (1u << 3)  /* egid changed by the exec */
#define VG_EXEC_ENV (1u << 4)     /* the kept environment entries follow the strings */
#define VG_EXEC_ENV_TRUNC (1u << 5) /* ... the walk stopped after VG_ENV_STEPS
				     * steps (later entries unseen) or a kept
				     * entry was cut */
/* The kept entries of the new image's environment (NUL-terminated
 * `NAME=value`, from the new mm's env area) trail the record after string 3
 * when VG_EXEC_ENV is set: its length is hdr.size minus the header, body and
 * strings. The kernel walks the area entry by entry (an entry longer than
 * 4095 bytes takes one step per 4095 bytes), at most VG_ENV_STEPS steps, and
 * copies only the entries whose first 8 bytes (4 for `ENV=`) start one of
 * the kept names (the engine checks the whole name). */
#define VG_ENV_STEPS 512
/* Kill on match, decided at sched_process_exec (kill_exec_paths, kill_cfg) */
#define VG_EXEC_KILLED (1u << 6)       /* SIGKILL sent before the program ran */
#define VG_EXEC_WOULD_KILL (1u << 7)   /* monitor mode: a kill rule matched */
#define VG_EXEC_KILL_REFUSED (1u << 8) /* matched, but a protected process */
#define VG_EXEC_KILL_FAILED (1u << 9)  /* bpf_send_signal failed */
/* kill_cfg slots and actions */
#define VG_KILL_CFG_MEMFD 0      /* action for execs of a memfd */
#define VG_KILL_CFG_SUPERVISOR 1 /* tgid never killed (vigil's parent) */
#define VG_KILL_CFG_WWDIR 2      /* action for execs from a world-writable directory */
#define VG_KILL_CFG_OPEN 3       /* nonzero: kill_open_paths has entries */
#define VG_KILL_ACT_KILL 1
#define VG_KILL_ACT_WOULD 2
/* values of kill_exec_paths / kill_open_paths: action in the low byte;
 * VG_KILL_EXACT: the path must be exactly the key (its length in bits 16..) */
#define VG_KILL_ACT_MASK 0xffu
#define VG_KILL_EXACT (1u << 8)
#define VG_EXEC_WWDIR (1u << 10) /* the executable's directory is world-writable (S_IWOTH) */
#define VG_EXEC_STDIN_PIPE (1u << 11)  /* fd 0 of the new image is a pipe or FIFO */
#define VG_EXEC_STDIN_INET (1u << 12)  /* fd 0 is an AF_INET/AF_INET6 socket */
#define VG_EXEC_STDOUT_INET (1u << 13) /* fd 1 is an AF_INET/AF_INET6 socket */
/* hdr.flags of an open or connect record that a kill rule matched in the
 * kernel (kill_open_paths, kill_ports), at the syscall's exit */
#define VG_F_KILLED (1u << 7)
#define VG_F_WOULD_KILL (1u << 8)
#define VG_F_KILL_REFUSED (1u << 9)
#define VG_F_KILL_FAILED (1u << 10)

/* VG_FORK, from sched_process_fork, one per new process (threads are not
 * reported). Header describes the parent. */
struct vg_fork {
	__u64 child_start_ns;
	__u32 child_pid;     /* host tgid of the child */
	__u32 child_ns_pid;  /* child's pid in its own (possibly new) pid ns */
	__u32 child_pidns;
	__u32 child_mntns;
	__u32 child_netns;
	__u32 ns_flags;      /* CLONE_NEW* bits where the child's ns differs */
};
_Static_assert(sizeof(struct vg_fork) == 32, "vg_fork");

/* VG_EXIT, from sched_process_exit, once per process (last thread). */
struct vg_exit {
	__u32 status;  /* wait(2)-style status: code << 8 | signal */
	__u32 _pad;
};
_Static_assert(sizeof(struct vg_exit) == 8, "vg_exit");

/* VG_OPEN, from sys_enter/sys_exit of open, openat, openat2, creat.
 * When the open succeeded, string 0 is the canonical path of the opened
 * file (resolved from the new fd: symlinks, dirfd and cwd all resolved) and
 * string 1 is empty. When it failed, string 0 is the canonical path of the
 * directory the name is relative to (cwd or dirfd; empty when the name is
 * absolute) and string 1 is the name as passed; userspace joins them. */
struct vg_open {
	__s64 ret;       /* fd, or -errno */
	__u64 ino;       /* inode of the opened file (0 on failure) */
	__u32 flags;     /* open flags as passed */
	__u32 mode;      /* creation mode as passed */
	__u32 dev;       /* s_dev of the opened file (0 on failure) */
	__u32 syscall;   /* VG_SYS_* */
	__s32 dfd;       /* dirfd argument (AT_FDCWD = -100) */
	__u32 foreign_mntns; /* success: inode of the opened file's mount
			      * namespace when it is not the caller's (reached
			      * through /proc/PID/root); then string 1 is the
			      * name as passed. 0 otherwise */
};
_Static_assert(sizeof(struct vg_open) == 40, "vg_open");
/* vg_open.flags bit 31 (no O_* flag uses it; cleared from the flags as
 * passed): the open created the file (FMODE_CREATED). A successful open
 * asking for write access without it reached a file that already existed. */
#define VG_OPEN_CREATED (1u << 31)

/* Syscall identifiers used in bodies (stable, independent of arch). */
enum vg_sys {
	VG_SYS_OPEN = 1,
	VG_SYS_OPENAT = 2,
	VG_SYS_OPENAT2 = 3,
	VG_SYS_CREAT = 4,
	VG_SYS_SETUID = 10,
	VG_SYS_SETGID = 11,
	VG_SYS_SETREUID = 12,
	VG_SYS_SETREGID = 13,
	VG_SYS_SETRESUID = 14,
	VG_SYS_SETRESGID = 15,
	VG_SYS_SETFSUID = 16,
	VG_SYS_SETFSGID = 17,
	VG_SYS_INIT_MODULE = 20,
	VG_SYS_FINIT_MODULE = 21,
	VG_SYS_DELETE_MODULE = 22,
	VG_SYS_ACCEPT = 30,
	VG_SYS_ACCEPT4 = 31,
	VG_SYS_SENDTO = 32,
	VG_SYS_SENDMSG = 33,
	VG_SYS_SENDMMSG = 34,
	VG_SYS_RECVFROM = 35,
	VG_SYS_RECVMSG = 36,
	VG_SYS_RENAME = 40,
	VG_SYS_RENAMEAT = 41,
	VG_SYS_RENAMEAT2 = 42,
	VG_SYS_UNLINK = 43,
	VG_SYS_UNLINKAT = 44,
	VG_SYS_RMDIR = 45,
	VG_SYS_TRUNCATE = 46,
	VG_SYS_FTRUNCATE = 47,
	VG_SYS_CHMOD = 48,
	VG_SYS_FCHMOD = 49,
	VG_SYS_FCHMODAT = 50,
	VG_SYS_FCHMODAT2 = 51,
	VG_SYS_CHOWN = 52,
	VG_SYS_FCHOWN = 53,
	VG_SYS_LCHOWN = 54,
	VG_SYS_FCHOWNAT = 55,
	VG_SYS_LINK = 56,
	VG_SYS_LINKAT = 57,
	VG_SYS_SYMLINK = 58,
	VG_SYS_SYMLINKAT = 59,
	VG_SYS_WRITE = 60,
	VG_SYS_PWRITE64 = 61,
	VG_SYS_WRITEV = 62,
	VG_SYS_PWRITEV = 63,
	VG_SYS_PWRITEV2 = 64,
	VG_SYS_MKDIR = 65,
	VG_SYS_MKDIRAT = 66,
	VG_SYS_MKNOD = 67,
	VG_SYS_MKNODAT = 68,
	VG_SYS_UTIMENSAT = 69,
	VG_SYS_UTIMES = 70,
	VG_SYS_FUTIMESAT = 71,
	VG_SYS_UTIME = 72,
	VG_SYS_PROCESS_VM_READV = 80,
	VG_SYS_PROCESS_VM_WRITEV = 81,
};

/* vg_fchange.mode of the utimes family (utimensat, utimes, futimesat,
 * utime): which times the call sets. A time is explicit when the caller
 * passed a value (not NULL, not UTIME_NOW, not UTIME_OMIT); `length` is
 * then the new mtime in seconds (the atime when only it is explicit). */
#define VG_UTIME_ATIME_SET (1u << 0)
#define VG_UTIME_MTIME_SET (1u << 1)
#define VG_UTIME_ATIME_OMIT (1u << 2)
#define VG_UTIME_MTIME_OMIT (1u << 3)

/* VG_FCHANGE: a file changed without an open: rename, unlink, rmdir,
 * truncate, chmod, chown, link, symlink (the `syscall` says which).
 * The file concerned (the new name for rename and link, the link for
 * symlink) is string 0 + string 1: for calls on an fd, string 0 is the
 * file's canonical path and string 1 is empty; for names, string 0 is the
 * base directory of a relative name (cwd or dirfd, empty for absolute
 * names) and string 1 the name as passed, joined lexically by the engine.
 * The second name (rename/link: the old name; symlink: the link's target
 * text) is string 3, as passed; string 2 is unused. A relative old name
 * shares string 0's base directory unless VG_FCHANGE_OTHER_DFD is set in
 * `flags` (it came with another dirfd and is reported as passed). */
#define VG_FCHANGE_OTHER_DFD (1u << 31)
struct vg_fchange {
	__s64 ret;        /* 0 or -errno */
	__u64 length;     /* truncate/ftruncate */
	__u32 syscall;    /* VG_SYS_* */
	__u32 mode;       /* chmod family */
	__u32 uid;        /* chown family (4294967295 = unchanged) */
	__u32 gid;
	__u32 flags;      /* unlinkat AT_REMOVEDIR, renameat2 RENAME_*, *at AT_* */
	__s32 dfd;        /* dirfd of string 1 (AT_FDCWD = -100), or the fd */
};
_Static_assert(sizeof(struct vg_fchange) == 40, "vg_fchange");

/* VG_CONNECT / VG_ACCEPT / VG_LISTEN. Addresses in network byte order,
 * IPv4 in the first 4 bytes; ports in host byte order.
 * connect: remote from the sockaddr passed, local from the socket after
 * the call. accept: both ends of the new socket. listen: local end.
 * String 0 = unix socket path (AF_UNIX only). */
struct vg_sock {
	__s64 ret;        /* 0 / new fd, or -errno (-EINPROGRESS for non-blocking connect) */
	__u16 family;     /* AF_INET, AF_INET6, AF_UNIX */
	__u16 lport;
	__u16 rport;
	__u16 protocol;   /* IPPROTO_TCP, IPPROTO_UDP, ... (0 if unknown) */
	__s32 fd;         /* socket fd argument */
	__u32 sock_type;  /* SOCK_STREAM, SOCK_DGRAM, ... */
	__u32 backlog;    /* listen backlog; accept, udp_send, dns: VG_SYS_* */
	__u32 _pad;
	__u8 laddr[16];
	__u8 raddr[16];
};
_Static_assert(sizeof(struct vg_sock) == 64, "vg_sock");

/* VG_UDP_SEND (struct vg_sock): the first datagram a process sends on a
 * socket to a peer (sendto, sendmsg, sendmmsg on SOCK_DGRAM inet sockets;
 * repeats deduplicated per socket, peer and success); ret = bytes sent or
 * -errno; remote = the explicit destination, else the connected peer.
 *
 * VG_DNS (struct vg_sock, string 0 = the DNS message, up to VG_DNS_MAX
 * bytes, wire format, not NUL-terminated): every datagram sent to port 53
 * (backlog = VG_SYS_SEND*: a query) and every datagram received from port
 * 53 (VG_SYS_RECV*: an answer). remote = the server in both directions. */
#define VG_DNS_MAX 1024

/* VG_TCP_STATE, from sock:inet_sock_set_state (TCP only). The header's
 * process is the task current at the transition: for transitions done in
 * softirq (e.g. SYN_RECV -> ESTABLISHED) it may be unrelated. */
struct vg_tcp_state {
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 oldstate;
	__u8 newstate;
	__u8 saddr[16];
	__u8 daddr[16];
};
_Static_assert(sizeof(struct vg_tcp_state) == 40, "vg_tcp_state");

/* VG_CAPABLE, from capability:cap_capable. Deduplicated in the kernel per
 * (process, cap, result, syscall in progress with the memory syscalls as
 * one, and for clone/clone3 the namespace flags): the first is reported,
 * repeats are counted. */
struct vg_capable {
	__s32 cap;
	__s32 ret;        /* 0 granted, -EPERM denied */
	__u32 target_userns; /* inode of the user namespace checked against */
	__s32 syscall_nr; /* syscall in progress (orig_ax); -1 in a kernel
			   * thread, -2 outside a syscall (an exception) */
};
_Static_assert(sizeof(struct vg_capable) == 16, "vg_capable");

/* VG_SETID: setuid, setgid, setreuid, setregid, setresuid, setresgid,
 * setfsuid, setfsgid. Header credentials are those after the call. */
struct vg_setid {
	__s64 ret;
	__u32 syscall;    /* VG_SYS_SET* */
	__s32 id[3];      /* arguments; -1 = unchanged */
};
_Static_assert(sizeof(struct vg_setid) == 24, "vg_setid");

/* VG_CAPSET */
struct vg_capset {
	__s64 ret;
	__u64 effective;
	__u64 permitted;
	__u64 inheritable;
	__s32 target_pid; /* 0 = self */
	__u32 _pad;
};
_Static_assert(sizeof(struct vg_capset) == 40, "vg_capset");

/* VG_PTRACE: ptrace(2), and process_vm_readv/process_vm_writev
 * (syscall = VG_SYS_PROCESS_VM_*, request = 0, ret = bytes or -errno). */
struct vg_ptrace {
	__s64 ret;
	__s64 request;
	__s32 target_pid; /* as passed (caller's pid namespace) */
	__u32 syscall;    /* 0 = ptrace, else VG_SYS_PROCESS_VM_* */
};
_Static_assert(sizeof(struct vg_ptrace) == 24, "vg_ptrace");

/* VG_BPF: bpf(2). String 0 = prog/map name from the attr when the
 * command carries one. */
struct vg_bpf {
	__s64 ret;
	__u32 cmd;
	__u32 type;       /* prog_type (PROG_LOAD) or map_type (MAP_CREATE) */
};
_Static_assert(sizeof(struct vg_bpf) == 16, "vg_bpf");

/* VG_MODULE: init_module, finit_module, delete_module.
 * Strings: 0 = module file path (finit_module fd resolved) or name
 * (delete_module), 1 = parameters (uargs). */
struct vg_module {
	__s64 ret;
	__u32 syscall;    /* VG_SYS_*_MODULE */
	__u32 flags;
	__u64 len;        /* init_module image length */
};
_Static_assert(sizeof(struct vg_module) == 24, "vg_module");

/* VG_MEMFD: memfd_create. String 0 = name. */
struct vg_memfd {
	__s64 ret;
	__u32 flags;
	__u32 _pad;
};
_Static_assert(sizeof(struct vg_memfd) == 16, "vg_memfd");

/* VG_MOUNT: mount(2). Strings: 0 = source, 1 = target (as passed),
 * 2 = filesystem type, 3 = cwd when the target is relative. */
struct vg_mount {
	__s64 ret;
	__u64 flags;
};
_Static_assert(sizeof(struct vg_mount) == 16, "vg_mount");

/* VG_UMOUNT: umount2(2). String 0 = target as passed. */
struct vg_umount {
	__s64 ret;
	__u32 flags;
	__u32 _pad;
};
_Static_assert(sizeof(struct vg_umount) == 16, "vg_umount");

/* VG_UNSHARE / VG_SETNS. The header carries the namespaces after the
 * call; the body those before it. */
struct vg_ns {
	__s64 ret;
	__u64 flags;      /* unshare flags, or setns nstype */
	__s32 fd;         /* setns fd (-1 for unshare) */
	__u32 target_ns;  /* setns: inode of the namespace the fd refers to */
	__u32 old_mntns;
	__u32 old_netns;
	__u32 old_pidns_children;
	__u32 target_pid; /* setns through a pidfd: the target's host tgid
			   * (then target_ns is its mount namespace) */
};
_Static_assert(sizeof(struct vg_ns) == 40, "vg_ns");

/* VG_SIGNAL: a terminating or stopping signal (SIGKILL, SIGTERM, SIGINT,
 * SIGSTOP, SIGTSTP, SIGQUIT) sent to vigil itself by another process
 * (self-protection), or sent by a process (kill, tkill, tgkill,
 * rt_sigqueueinfo: si_code <= 0) to a process that is neither itself nor
 * its child, by a sender other than PID 1. The header is the sender. */
struct vg_signal {
	__s32 sig;
	__s32 result;      /* TRACE_SIGNAL_* (0 = delivered) */
	__u32 target_pid;  /* thread signalled (host pid) */
	__u32 target_tgid;
	__s32 code;        /* si_code (SI_USER = 0, SI_TKILL = -6, ...) */
	__u32 group;       /* sent to the whole group */
};
_Static_assert(sizeof(struct vg_signal) == 24, "vg_signal");

/* VG_READLINE: bash readline() return. String 0 = the line. */
struct vg_readline {
	__u64 _reserved;
};
_Static_assert(sizeof(struct vg_readline) == 8, "vg_readline");

/* VG_IOURING, from io_uring:io_uring_create and io_uring:io_uring_submit_req
 * (tp_btf: the request's prepared command is read with CO-RE). A submission
 * is reported when it is queued, before it runs (no result). Strings:
 * 0 = the path as passed (open, unlink, mkdir; rename/link: the new name),
 * 1 = the caller's cwd when that path is relative to AT_FDCWD,
 * 2 = rename/link: the old name; symlink: the target text. */
enum vg_uring_what {
	VG_URING_SETUP = 1,   /* a ring was created (fd, entries, setup flags) */
	VG_URING_OPEN = 2,    /* IORING_OP_OPENAT / OPENAT2 */
	VG_URING_FILE = 3,    /* RENAMEAT, UNLINKAT, MKDIRAT, SYMLINKAT, LINKAT */
	VG_URING_CONNECT = 4, /* IORING_OP_CONNECT (remote from the user sockaddr) */
	VG_URING_OP = 5,      /* any other opcode: first use per process */
};
struct vg_iouring {
	__u32 what;       /* VG_URING_* */
	__u8 opcode;      /* IORING_OP_* (submissions) */
	__u8 _pad0;
	__u16 family;     /* connect: AF_INET / AF_INET6 / AF_UNIX */
	__s32 fd;         /* setup: the ring fd; open/file: dfd; connect: socket fd */
	__u32 flags;      /* setup: IORING_SETUP_*; open: O_*; file: op flags */
	__u32 arg;        /* setup: sq entries; open/mkdir: mode */
	__u32 arg2;       /* setup: cq entries */
	__u16 rport;      /* connect */
	__u16 _pad1;
	__u32 _pad2;
	__u8 raddr[16];   /* connect */
	__u64 user_data;  /* the submission's user_data */
};
_Static_assert(sizeof(struct vg_iouring) == 56, "vg_iouring");

/* VG_COMPAT: a security-relevant 32-bit syscall (int 0x80 / ia32 task) on
 * x86_64, where the syscalls:* tracepoints do not fire; from raw
 * sys_enter/sys_exit (tp_btf) filtered to tasks in a compat syscall.
 * compat_calls (HASH u32 ia32 nr -> u32 info) lists the calls reported:
 * info = what (bits 0-7, VG_COMPAT_*) | path argument index (bits 8-11,
 * 0xf = none) | dirfd argument index (bits 12-15, 0xf = none) | vg_sys
 * (bits 16-31). Strings: 0 = open success: the canonical path of the new
 * fd; otherwise the base directory of a relative path argument (dirfd or
 * cwd), 1 = the path argument as passed, 2 = connect: the sockaddr bytes.
 * Userspace translates opens, connects, setid and ptrace into the records
 * of those sensors (with VG_F_COMPAT), so rules and baselines apply. */
enum vg_compat_what {
	VG_COMPAT_OPEN = 1,
	VG_COMPAT_CONNECT = 2,
	VG_COMPAT_SOCKETCALL = 3, /* args[0] = call; connect: args[2..4] = fd, addr, len */
	VG_COMPAT_SETID = 4,
	VG_COMPAT_PTRACE = 5,
	VG_COMPAT_OTHER = 6,
};
struct vg_compat {
	__s64 ret;
	__u64 ino;        /* open success: inode of the new fd */
	__u32 dev;        /* open success: s_dev */
	__u32 nr;         /* ia32 syscall number */
	__u32 info;       /* the compat_calls value */
	__u32 _pad;
	__u64 args[6];    /* zero-extended 32-bit arguments */
};
_Static_assert(sizeof(struct vg_compat) == 80, "vg_compat");

/* VG_SYSCALL: a rare native syscall seen at the raw sys_exit (personality,
 * sysinfo, syslog), emitted only for the numbers set in interest_syscalls
 * (value VG_SYSCALL). No strings. */
struct vg_syscall {
	__s64 ret;
	__u32 nr;         /* x86-64 syscall number */
	__u32 _pad;
	__u64 args[3];    /* the first three arguments (rdi, rsi, rdx) */
};
_Static_assert(sizeof(struct vg_syscall) == 40, "vg_syscall");

/* ---- maps shared with userspace ---- */

/* counters: PERCPU_ARRAY[VG_KIND_SLOTS], indexed by kind */
struct vg_counters {
	__u64 emitted;    /* records written to the ring buffer */
	__u64 dropped;    /* ring buffer full: record lost */
	__u64 filtered;   /* not emitted: no interest */
	__u64 deduped;    /* not emitted: repeat of a reported (process, object) */
	__u64 dropped_prio; /* part of `dropped` lost because the priority ring was full */
	__u64 demoted;    /* alert candidates sent to the bulk ring: process over its priority budget */
};
_Static_assert(sizeof(struct vg_counters) == 48, "vg_counters");

/* interest_kinds values: bit 0 = emit this kind; VG_INTEREST_PRIO = its
 * records are alert candidates (priority ring, within the budget). */
#define VG_INTEREST_ON 1u
#define VG_INTEREST_PRIO 2u

/* interest_paths: LPM_TRIE keyed by path bytes */
#define VG_LPM_MAX 256
struct vg_path_key {
	__u32 prefixlen;  /* in bits */
	__u8 path[VG_LPM_MAX];
};
/* values of interest_paths */
#define VG_PATH_REPORT 1u /* report opens below this prefix */
#define VG_PATH_IGNORE 2u /* never report opens below this prefix */
#define VG_PATH_REPORT_OK 3u /* report successful opens below this prefix; a failed
			      * open there is reported only for another reason */

/* interest_ports value bits (besides VG_PORT_IGNORE = 2): 4 = a failed
 * connect to this port can match a rule (see interest_cfg) */
#define VG_PORT_FAILED 4u
/* interest_cfg slots */
#define VG_ICFG_FAILED_CONNECT 0 /* nonzero: a failed connect is reported only to a VG_PORT_FAILED port */
#define VG_ICFG_SLOTS 4

/* dedup: HASH; value = number of suppressed repeats. `a` mixes in the
 * process's start time, so a reused pid starts with no suppressions. */
struct vg_dedup_key {
	__u32 tgid;
	__u32 kind;
	__u64 a;
	__u64 b;
};
_Static_assert(sizeof(struct vg_dedup_key) == 24, "vg_dedup_key");
struct vg_dedup_val {
	__u64 count;      /* repeats suppressed so far */
	__u64 last_ns;    /* boot ns of the last suppressed repeat */
};
_Static_assert(sizeof(struct vg_dedup_val) == 16, "vg_dedup_val");

/* interest_ports: HASH u16 port -> u32 VG_PORT_* (connect/accept/listen) */
#define VG_PORT_IGNORE 2u

/* Syscall-set learning for baselines (no event per syscall):
 *   learn_exe:  HASH vg_learn_key (executable dev+inode) -> u32 slot, filled
 *               by the engine for executables whose profile is learning;
 *   learn_tgid: HASH u32 tgid -> u32 slot, set at exec from learn_exe (or by
 *               the engine), inherited at fork, removed at exit;
 *   learn_sys:  ARRAY slot -> vg_sysset, one bit per syscall number, set by
 *               the raw sys_enter program for tasks in learn_tgid. */
#define VG_LEARN_SLOTS 4096
#define VG_SYSSET_WORDS 8 /* syscall numbers 0..511 */
struct vg_learn_key {
	__u64 ino;
	__u32 dev;
	__u32 _pad;
};
_Static_assert(sizeof(struct vg_learn_key) == 16, "vg_learn_key");
struct vg_sysset {
	__u64 w[VG_SYSSET_WORDS];
};
_Static_assert(sizeof(struct vg_sysset) == 64, "vg_sysset");

/* KVM exit counts per VMM process (no event per exit):
 * kvm_counts: HASH vg_kvm_key -> __u64 count. */
enum vg_kvm_what {
	VG_KVM_EXIT = 1,           /* kvm:kvm_exit, detail = exit reason */
	VG_KVM_PIO = 2,            /* kvm:kvm_pio, detail = port */
	VG_KVM_MMIO = 3,           /* kvm:kvm_mmio, detail = type */
	VG_KVM_USERSPACE_EXIT = 4, /* kvm:kvm_userspace_exit, detail = reason */
	VG_KVM_EMULATE = 5,        /* kvm:kvm_emulate_insn, detail = failed */
	VG_KVM_HYPERCALL = 6,      /* kvm:kvm_hypercall, detail = nr */
};
struct vg_kvm_key {
	__u32 tgid;
	__u16 what;
	__u16 detail;
};
_Static_assert(sizeof(struct vg_kvm_key) == 8, "vg_kvm_key");

#endif /* VIGIL_ABI_H */
