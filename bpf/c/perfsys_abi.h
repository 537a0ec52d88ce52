/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What crosses the kernel boundary for the system performance sensors
 * (perfsys.bpf.c): per-process syscall and syscall-error counters, TCP
 * retransmits and resets per connection, block I/O latency histograms per
 * device and cgroup. Mirrored in bpf/src/perfsys.rs with size asserts.
 */
#ifndef VIGIL_PERFSYS_ABI_H
#define VIGIL_PERFSYS_ABI_H

/* cfg_syscalls */
#define SC_OFF 0
#define SC_ERRORS 1 /* failing syscalls only, per (tgid, nr, errno) */
#define SC_ALL 2    /* plus every syscall per tgid */

/* Every syscall of a process (SC_ALL), per tgid. */
struct ps_sc_proc {
	__u64 calls;
	__u64 errors;
};

/* A failing syscall: the raw return value was -err (1 <= err <= 4095). */
struct ps_sc_err_key {
	__u32 tgid;
	__u16 nr;     /* syscall number (ia32 numbering when compat) */
	__u16 err;    /* errno, positive; may be a kernel-internal restart
		       * code (512..516) the task never sees */
	__u32 compat; /* 1: a 32-bit (ia32) syscall */
	__u32 _pad;
};

/* TCP event kinds (tcp_key.kind). */
#define TCP_RETRANS 0    /* tcp:tcp_retransmit_skb */
#define TCP_RESET_SENT 1 /* tcp:tcp_send_reset */
#define TCP_RESET_RECV 2 /* tcp:tcp_receive_reset */

/* One connection, as the local side sees it. IPv4 addresses are in the
 * first 4 bytes of the 16. Ports in host order. */
struct ps_tcp_key {
	__u8 saddr[16]; /* local */
	__u8 daddr[16]; /* remote */
	__u16 sport;
	__u16 dport;
	__u16 family; /* AF_INET (2) or AF_INET6 (10) */
	__u16 kind;
	__u32 tgid; /* owner (connect/listen) when known, else 0 */
	__u32 _pad;
};

struct ps_tcp_val {
	__u64 count;
	__u64 last_ns;  /* boot clock of the last one */
	char comm[16];  /* owner's command name when known */
	__s32 state;    /* TCP state at the last one */
	__s32 err;      /* retransmit: the last send's result (0 = sent) */
};

/* The process that opened a socket (connect or listen). */
struct ps_tcp_owner {
	__u32 tgid;
	__u32 _pad;
	char comm[16];
};

/* log2 buckets of microseconds: slot 0 holds under 1 us, slot k (k >= 1)
 * [2^(k-1), 2^k) us; the last slot also holds longer. */
#define BIO_SLOTS 32

struct ps_bio_key {
	__u64 cgroup_id; /* cgroup v2 of the task that submitted the request */
	__u32 dev;       /* kernel dev_t: major << 20 | minor */
	__u32 op;        /* REQ_OP_* (0 read, 1 write, 2 flush, 3 discard, ...) */
};

struct ps_bio_hist {
	__u64 slots[BIO_SLOTS]; /* issue -> completion (device time) */
	__u64 sum_ns;           /* exact sum of the device times */
	__u64 queue_ns;         /* sum of submit -> issue (queueing) */
	__u64 bytes;            /* bytes of the requests counted */
};

/* A request in flight. */
struct ps_bio_start {
	__u64 submit_ns; /* block_io_start (0: not seen) */
	__u64 issue_ns;  /* block_rq_issue (0: not yet) */
	__u64 cgroup_id;
	__u64 bytes;
};

/* Indexes of `ps_stats` (per-CPU u64). */
#define PST_SC_FULL 0     /* syscall map update failed */
#define PST_TCP_FULL 1    /* tcp map update failed */
#define PST_BIO_FULL 2    /* bio histogram map update failed */
#define PST_BIO_MISS 3    /* completion without a recorded issue */
#define PST_FLOOR 4       /* runs of the benchmark's counting floor */
#define PST_SLOTS 8

_Static_assert(sizeof(struct ps_sc_proc) == 16, "sc_proc size");
_Static_assert(sizeof(struct ps_sc_err_key) == 16, "sc_err_key size");
_Static_assert(sizeof(struct ps_tcp_key) == 48, "tcp_key size");
_Static_assert(sizeof(struct ps_tcp_val) == 40, "tcp_val size");
_Static_assert(sizeof(struct ps_tcp_owner) == 24, "tcp_owner size");
_Static_assert(sizeof(struct ps_bio_key) == 16, "bio_key size");
_Static_assert(sizeof(struct ps_bio_hist) == 8 * (BIO_SLOTS + 3), "bio_hist size");
_Static_assert(sizeof(struct ps_bio_start) == 32, "bio_start size");

#endif
