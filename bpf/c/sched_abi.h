/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What crosses the kernel boundary for the scheduler sensors
 * (sched.bpf.c): run-queue latency histograms per cgroup and pid-namespace
 * switch counts. Mirrored in bpf/src/sched.rs with size asserts.
 */
#ifndef VIGIL_SCHED_ABI_H
#define VIGIL_SCHED_ABI_H

/* log2 buckets of microseconds: slot 0 holds waits under 1 us, slot k
 * (k >= 1) waits in [2^(k-1), 2^k) us; the last slot also holds longer. */
#define RQ_SLOTS 32

/* Why the task was waiting on the run queue. */
#define RQ_WAKEUP 0    /* it slept and was woken (sched_wakeup / _new) */
#define RQ_PREEMPTED 1 /* it was running and lost the CPU while runnable */

struct rq_key {
	__u64 cgroup_id; /* cgroup v2 id (inode of the cgroup2 directory) */
	__u32 kind;      /* RQ_WAKEUP or RQ_PREEMPTED */
	__u32 _pad;
};

struct rq_hist {
	__u64 slots[RQ_SLOTS];
	__u64 sum_ns; /* exact sum of the waits counted in slots */
};

/* A context switch from a task in one pid namespace to a task in another
 * (active pid namespaces, inode numbers). */
struct ns_pair {
	__u32 prev_ns;
	__u32 next_ns;
};

/* Indexes of `sched_stats` (per-CPU u64). */
#define SST_HIST_FULL 0   /* histogram map full: sample not counted */
#define SST_PAIRS_FULL 1  /* pidnss map full: switch not counted */
#define SST_START_MISS 2  /* switch-in without a recorded enqueue */
#define SST_FLOOR 3       /* runs of the benchmark's counting floor */
#define SST_SLOTS 4

_Static_assert(sizeof(struct rq_key) == 16, "rq_key size");
_Static_assert(sizeof(struct rq_hist) == 8 * (RQ_SLOTS + 1), "rq_hist size");
_Static_assert(sizeof(struct ns_pair) == 8, "ns_pair size");

#endif
