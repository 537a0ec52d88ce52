// SPDX-License-Identifier: GPL-2.0
/*
 * vigil scheduler sensors, one object loaded apart from the security
 * sensors (bpf/src/sched.rs):
 *
 * runqlat: run-queue latency per cgroup v2 as log2 histograms in a per-CPU
 *   hash (no event per context switch; the engine reads the maps). A task
 *   is stamped when it becomes runnable (sched_wakeup, sched_wakeup_new:
 *   RQ_WAKEUP) or when it loses the CPU while still runnable (sched_switch
 *   with preempt or prev_state == TASK_RUNNING: RQ_PREEMPTED), and its
 *   wait is counted when sched_switch puts it on a CPU, under the cgroup
 *   of the task switched in (BCC's runqlat, keyed by cgroup).
 * pidnss: context switches from a task in one active pid namespace to a
 *   task in another, counted per (prev, next) namespace pair. The idle
 *   task is not a side (a CPU going idle is not a namespace switch).
 *
 * Two implementations of each program: tp_btf (CO-RE, direct BTF loads,
 * cheapest) and raw_tp (BPF_CORE_READ), chosen at load time.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "sched_abi.h"
#include "vigil_perf.h"

char LICENSE[] SEC("license") = "GPL";

/* Settings, written by the loader before load (frozen .rodata). */
const volatile __u8 cfg_runqlat = 1;
const volatile __u8 cfg_pidnss = 1;

#define TASK_RUNNING 0

/* tid -> (enqueue time in ns << 1) | kind; the slot is zeroed when the
 * task runs, so an entry is reused without a delete. LRU: entries of
 * exited tasks age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, __u64);
} rq_start SEC(".maps");

/* The same stamp for the tp_btf programs, as task-local storage: the slot
 * hangs off the task (no hashing of the tid, no insert when a new task is
 * first woken, nothing left behind when it exits). The raw_tp fallback,
 * without trusted task pointers, keeps rq_start. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} rq_ts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct rq_key);
	__type(value, struct rq_hist);
} rq_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ns_pair);
	__type(value, __u64);
} pidns_switch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} sched_stats SEC(".maps");

static __always_inline void stat_inc(__u32 i)
{
	vg_stat_inc(&sched_stats, i);
}

static __always_inline void stamp(__u32 tid, __u32 kind)
{
	__u64 v = (bpf_ktime_get_ns() << 1) | kind;
	__u64 *ts;
	if (!tid)
		return;
	ts = bpf_map_lookup_elem(&rq_start, &tid);
	if (ts) {
		*ts = v;
		return;
	}
	bpf_map_update_elem(&rq_start, &tid, &v, BPF_ANY);
}

/* stamp() for a trusted task pointer (tp_btf). */
static __always_inline void stamp_task(struct task_struct *t, __u32 tid, __u32 kind)
{
	__u64 *ts;
	if (!tid)
		return;
	ts = bpf_task_storage_get(&rq_ts, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (ts)
		*ts = (bpf_ktime_get_ns() << 1) | kind;
}

/* The wait a stamp (stamp(), stamp_task()) at `ts` measures up to now, or
 * -1 when there is none; clears it. Its kind goes to *kind. */
static __always_inline __s64 take_stamp(__u64 *ts, __u32 *kind)
{
	__u64 v, now;
	if (!ts)
		return -1;
	v = *ts;
	if (!v)
		return -1;
	*ts = 0;
	now = bpf_ktime_get_ns();
	*kind = v & 1;
	v >>= 1;
	return now > v ? (__s64)(now - v) : 0;
}

/* take_wait() for a trusted task pointer (tp_btf). */
static __always_inline __s64 take_wait_task(struct task_struct *t, __u32 *kind)
{
	return take_stamp(bpf_task_storage_get(&rq_ts, t, 0, 0), kind);
}

/* The wait of `tid`, switched in now, or -1 when none was recorded.
 * Its kind goes to *kind. */
static __always_inline __s64 take_wait(__u32 tid, __u32 *kind)
{
	return take_stamp(bpf_map_lookup_elem(&rq_start, &tid), kind);
}

static __always_inline void count_wait(__u64 cgid, __u32 kind, __u64 delta_ns)
{
	struct rq_key k = { .cgroup_id = cgid, .kind = kind };
	struct rq_hist *h;
	__u64 us = delta_ns / 1000;
	__u32 slot = us ? log2_u64(us) + 1 : 0;
	if (slot >= RQ_SLOTS)
		slot = RQ_SLOTS - 1;
	h = bpf_map_lookup_elem(&rq_hist, &k);
	if (!h) {
		struct rq_hist zero = {};
		if (bpf_map_update_elem(&rq_hist, &k, &zero, BPF_NOEXIST) &&
		    !bpf_map_lookup_elem(&rq_hist, &k)) {
			stat_inc(SST_HIST_FULL);
			return;
		}
		h = bpf_map_lookup_elem(&rq_hist, &k);
		if (!h)
			return;
	}
	h->slots[slot & (RQ_SLOTS - 1)] += 1;
	h->sum_ns += delta_ns;
}

static __always_inline void count_pair(__u32 prev_ns, __u32 next_ns)
{
	struct ns_pair k = { .prev_ns = prev_ns, .next_ns = next_ns };
	__u64 one = 1, *v = bpf_map_lookup_elem(&pidns_switch, &k);
	if (v) {
		*v += 1;
		return;
	}
	if (bpf_map_update_elem(&pidns_switch, &k, &one, BPF_NOEXIST)) {
		v = bpf_map_lookup_elem(&pidns_switch, &k);
		if (v)
			*v += 1;
		else
			stat_inc(SST_PAIRS_FULL);
	}
}

/* Inode of a task's active pid namespace: pid->numbers[pid->level]. The
 * level is variable, so the element is read by address (as vigil.bpf.c). */
static __always_inline __u32 active_pidns(struct task_struct *t)
{
	struct pid *p = BPF_CORE_READ(t, thread_pid);
	unsigned int level;
	struct upid up = {};
	__u64 addr;
	if (!p)
		return 0;
	level = BPF_CORE_READ(p, level);
	addr = (__u64)p + bpf_core_field_offset(struct pid, numbers) +
	       (__u64)(level & 31) * bpf_core_type_size(struct upid);
	bpf_probe_read_kernel(&up, sizeof(up), (void *)addr);
	if (!up.ns)
		return 0;
	return BPF_CORE_READ(up.ns, ns.inum);
}

/* One switch. `btf`: the task pointers are BTF pointers (tp_btf) and may
 * be loaded directly; otherwise every read goes through BPF_CORE_READ. */
static __always_inline void on_switch(bool preempt, struct task_struct *prev,
				      struct task_struct *next, unsigned int prev_state,
				      const bool btf)
{
	__u32 prev_tid = btf ? prev->pid : BPF_CORE_READ(prev, pid);
	__u32 next_tid = btf ? next->pid : BPF_CORE_READ(next, pid);
	if (cfg_runqlat) {
		__u32 kind = 0;
		__s64 d;
		if (preempt || prev_state == TASK_RUNNING) {
			if (btf)
				stamp_task(prev, prev_tid, RQ_PREEMPTED);
			else
				stamp(prev_tid, RQ_PREEMPTED);
		}
		if (next_tid) {
			d = btf ? take_wait_task(next, &kind) : take_wait(next_tid, &kind);
			if (d >= 0) {
				__u64 cgid = btf ? next->cgroups->dfl_cgrp->kn->id
						 : BPF_CORE_READ(next, cgroups, dfl_cgrp, kn, id);
				count_wait(cgid, kind, (__u64)d);
			} else {
				stat_inc(SST_START_MISS);
			}
		}
	}
	if (cfg_pidnss && prev_tid && next_tid) {
		/* Tasks sharing an nsproxy share their namespaces: the common
		 * case costs two loads. */
		void *pn = btf ? (void *)prev->nsproxy : (void *)BPF_CORE_READ(prev, nsproxy);
		void *nn = btf ? (void *)next->nsproxy : (void *)BPF_CORE_READ(next, nsproxy);
		if (pn != nn) {
			__u32 a = active_pidns(prev), b = active_pidns(next);
			if (a && b && a != b)
				count_pair(a, b);
		}
	}
}

/* ---- tp_btf ---- */

SEC("tp_btf/sched_wakeup")
int BPF_PROG(vg_rq_wakeup, struct task_struct *p)
{
	stamp_task(p, p->pid, RQ_WAKEUP);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(vg_rq_wakeup_new, struct task_struct *p)
{
	stamp_task(p, p->pid, RQ_WAKEUP);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(vg_rq_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	on_switch(preempt, prev, next, prev_state, true);
	return 0;
}

/* ---- raw_tp (no BTF pointers; the context is the raw argument array,
 * indexed directly: aya-obj mis-relocates ctx->args[i]) ---- */

SEC("raw_tp/sched_wakeup")
int vg_rq_wakeup_raw(void *ctx)
{
	struct task_struct *p = (struct task_struct *)((__u64 *)ctx)[0];
	stamp(BPF_CORE_READ(p, pid), RQ_WAKEUP);
	return 0;
}

SEC("raw_tp/sched_wakeup_new")
int vg_rq_wakeup_new_raw(void *ctx)
{
	struct task_struct *p = (struct task_struct *)((__u64 *)ctx)[0];
	stamp(BPF_CORE_READ(p, pid), RQ_WAKEUP);
	return 0;
}

SEC("raw_tp/sched_switch")
int vg_rq_switch_raw(void *ctx)
{
	__u64 *a = (__u64 *)ctx;
	on_switch((bool)a[0], (struct task_struct *)a[1], (struct task_struct *)a[2],
		  (unsigned int)a[3], false);
	return 0;
}

/* ---- benchmark floor (vigil-bench --sched): count only ---- */

SEC("tp_btf/sched_wakeup")
int BPF_PROG(vg_rq_floor_wakeup, struct task_struct *p)
{
	stat_inc(SST_FLOOR);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(vg_rq_floor_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	stat_inc(SST_FLOOR);
	return 0;
}
