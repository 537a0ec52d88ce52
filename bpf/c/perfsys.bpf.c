// SPDX-License-Identifier: GPL-2.0
/*
 * vigil system performance sensors, one object loaded apart from the
 * security sensors (bpf/src/perfsys.rs). Nothing here writes an event per
 * occurrence: every program counts into a map the engine reads every
 * perf interval.
 *
 * syscount: raw sys_exit (tp_btf, raw_tp fallback). Failing syscalls
 *   (return value in [-4095, -1]) per (tgid, nr, errno, compat) — the
 *   `eperm` idea — and, in SC_ALL mode, every syscall per tgid — the
 *   `syscount` idea. This program runs on every syscall of every task;
 *   in SC_ERRORS mode a successful call costs one compare after the
 *   program is entered.
 * tcpretrans / tcpreset: tcp:tcp_retransmit_skb, tcp:tcp_send_reset and
 *   tcp:tcp_receive_reset (classic tracepoints: rare events, and their
 *   formats carry the decoded addresses, also for a reset sent without a
 *   socket) counted per connection and kind; the owning process comes from
 *   sock:inet_sock_set_state (SYN_SENT: connect(); LISTEN: listen()), where
 *   the current task is the one that made the socket.
 * biolatency: block_io_start (submitting task: its cgroup), block_rq_issue
 *   and block_rq_complete (tp_btf): device time (issue -> completion) as
 *   log2 histograms per (device, op, cgroup v2), with the queueing time
 *   (submit -> issue) and bytes summed.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "perfsys_abi.h"
#include "vigil_perf.h"

char LICENSE[] SEC("license") = "GPL";

/* Settings, written by the loader before load (frozen .rodata). */
const volatile __u8 cfg_syscalls = SC_ERRORS;

#define VG_AF_INET 2
#define VG_AF_INET6 10
#define VG_IPPROTO_TCP 6
#define VG_TCP_SYN_SENT 2
#define VG_TCP_CLOSE 7
#define VG_TCP_LISTEN 10
#define VG_TS_COMPAT 0x0002 /* thread_info.status: in a 32-bit syscall */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct ps_sc_proc);
} sc_proc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ps_sc_err_key);
	__type(value, __u64);
} sc_err SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct ps_tcp_owner);
} tcp_owner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct ps_tcp_key);
	__type(value, struct ps_tcp_val);
} tcp_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct ps_bio_start);
} bio_inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ps_bio_key);
	__type(value, struct ps_bio_hist);
} bio_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} ps_stats SEC(".maps");

static __always_inline void stat_inc(__u32 i)
{
	vg_stat_inc(&ps_stats, i);
}

/* ---- syscount / eperm ---- */

static __always_inline void count_call(__u32 tgid, __u64 fail)
{
	struct ps_sc_proc *p = bpf_map_lookup_elem(&sc_proc, &tgid);
	if (p) {
		p->calls += 1;
		p->errors += fail;
		return;
	}
	struct ps_sc_proc v = { .calls = 1, .errors = fail };
	if (bpf_map_update_elem(&sc_proc, &tgid, &v, BPF_NOEXIST)) {
		/* raced with another CPU's insert: count into it */
		p = bpf_map_lookup_elem(&sc_proc, &tgid);
		if (p) {
			p->calls += 1;
			p->errors += fail;
		} else {
			stat_inc(PST_SC_FULL);
		}
	}
}

static __always_inline void count_error(__u32 tgid, long nr, long ret, __u32 compat)
{
	struct ps_sc_err_key k = {
		.tgid = tgid,
		.nr = (__u16)nr,
		.err = (__u16)(-ret),
		.compat = compat,
	};
	__u64 one = 1, *v = bpf_map_lookup_elem(&sc_err, &k);
	if (v) {
		*v += 1;
		return;
	}
	if (bpf_map_update_elem(&sc_err, &k, &one, BPF_NOEXIST)) {
		v = bpf_map_lookup_elem(&sc_err, &k);
		if (v)
			*v += 1;
		else
			stat_inc(PST_SC_FULL);
	}
}

SEC("tp_btf/sys_exit")
int BPF_PROG(vg_ps_sys_exit, struct pt_regs *regs, long ret)
{
	__u64 fail = ret < 0 && ret >= -4095;
	__u32 tgid;
	if (cfg_syscalls == SC_ALL) {
		tgid = bpf_get_current_pid_tgid() >> 32;
		count_call(tgid, fail);
		if (!fail)
			return 0;
	} else {
		if (!fail)
			return 0;
		tgid = bpf_get_current_pid_tgid() >> 32;
	}
	long nr = regs->orig_ax;
	if (nr < 0 || nr > 0xffff)
		return 0;
	struct task_struct *t = bpf_get_current_task_btf();
	count_error(tgid, nr, ret, (t->thread_info.status & VG_TS_COMPAT) ? 1 : 0);
	return 0;
}

/* raw_tp fallback: the context is the raw argument array, indexed
 * directly (aya-obj mis-relocates ctx->args[i]). */
SEC("raw_tp/sys_exit")
int vg_ps_sys_exit_raw(void *ctx)
{
	long ret = (long)((__u64 *)ctx)[1];
	__u64 fail = ret < 0 && ret >= -4095;
	__u32 tgid;
	if (cfg_syscalls == SC_ALL) {
		tgid = bpf_get_current_pid_tgid() >> 32;
		count_call(tgid, fail);
		if (!fail)
			return 0;
	} else {
		if (!fail)
			return 0;
		tgid = bpf_get_current_pid_tgid() >> 32;
	}
	struct pt_regs *regs = (struct pt_regs *)((__u64 *)ctx)[0];
	long nr = BPF_CORE_READ(regs, orig_ax);
	if (nr < 0 || nr > 0xffff)
		return 0;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u32 status = BPF_CORE_READ(t, thread_info.status);
	count_error(tgid, nr, ret, (status & VG_TS_COMPAT) ? 1 : 0);
	return 0;
}

/* Benchmark floor (vigil-bench --syscalls): a sys_exit program that only
 * counts, the least any per-syscall sensor costs. */
SEC("tp_btf/sys_exit")
int BPF_PROG(vg_ps_sys_floor, struct pt_regs *regs, long ret)
{
	stat_inc(PST_FLOOR);
	return 0;
}

/* ---- tcpretrans / tcpreset ---- */

SEC("tracepoint/sock/inet_sock_set_state")
int vg_ps_sk_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != VG_IPPROTO_TCP)
		return 0;
	__u64 sk = (__u64)ctx->skaddr;
	int ns = ctx->newstate;
	if (ns == VG_TCP_SYN_SENT || ns == VG_TCP_LISTEN) {
		struct ps_tcp_owner o = {};
		o.tgid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(o.comm, sizeof(o.comm));
		bpf_map_update_elem(&tcp_owner, &sk, &o, BPF_ANY);
	} else if (ns == VG_TCP_CLOSE) {
		bpf_map_delete_elem(&tcp_owner, &sk);
	}
	return 0;
}

static __always_inline void count_tcp(struct ps_tcp_key *k, __u64 sk, int state, int err)
{
	struct ps_tcp_owner *o = sk ? bpf_map_lookup_elem(&tcp_owner, &sk) : NULL;
	if (o)
		k->tgid = o->tgid;
	struct ps_tcp_val *v = bpf_map_lookup_elem(&tcp_counts, k);
	if (!v) {
		struct ps_tcp_val z = {};
		if (o)
			__builtin_memcpy(z.comm, o->comm, sizeof(z.comm));
		bpf_map_update_elem(&tcp_counts, k, &z, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&tcp_counts, k);
		if (!v) {
			stat_inc(PST_TCP_FULL);
			return;
		}
	}
	__sync_fetch_and_add(&v->count, 1);
	v->last_ns = bpf_ktime_get_boot_ns();
	v->state = state;
	v->err = err;
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int vg_ps_retrans(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
	struct ps_tcp_key k = {};
	k.kind = TCP_RETRANS;
	k.family = ctx->family;
	k.sport = ctx->sport;
	k.dport = ctx->dport;
	if (k.family == VG_AF_INET) {
		bpf_probe_read_kernel(k.saddr, 4, ctx->saddr);
		bpf_probe_read_kernel(k.daddr, 4, ctx->daddr);
	} else {
		bpf_probe_read_kernel(k.saddr, 16, ctx->saddr_v6);
		bpf_probe_read_kernel(k.daddr, 16, ctx->daddr_v6);
	}
	count_tcp(&k, (__u64)ctx->skaddr, ctx->state, ctx->err);
	return 0;
}

SEC("tracepoint/tcp/tcp_receive_reset")
int vg_ps_rst_recv(struct trace_event_raw_tcp_event_sk *ctx)
{
	struct ps_tcp_key k = {};
	k.kind = TCP_RESET_RECV;
	k.family = ctx->family;
	k.sport = ctx->sport;
	k.dport = ctx->dport;
	if (k.family == VG_AF_INET) {
		bpf_probe_read_kernel(k.saddr, 4, ctx->saddr);
		bpf_probe_read_kernel(k.daddr, 4, ctx->daddr);
	} else {
		bpf_probe_read_kernel(k.saddr, 16, ctx->saddr_v6);
		bpf_probe_read_kernel(k.daddr, 16, ctx->daddr_v6);
	}
	/* A connect refused while in SYN_SENT: its local port is the
	 * ephemeral one of this attempt; counted without it, repeated
	 * attempts add to one key instead of one new LRU entry each. */
	struct sock *sk = (struct sock *)ctx->skaddr;
	if (sk && BPF_CORE_READ(sk, __sk_common.skc_state) == VG_TCP_SYN_SENT)
		k.sport = 0;
	count_tcp(&k, (__u64)ctx->skaddr, 0, 0);
	return 0;
}

/* The addresses of a sent reset are sockaddr_in / sockaddr_in6 (28 bytes,
 * family first), filled from the socket or, without one, from the packet
 * that provoked the reset (its 4-tuple reversed: saddr is this host). */
static __always_inline int sockaddr_split(const __u8 *sa, __u8 *addr, __u16 *port, __u16 *family)
{
	__u16 fam = sa[0] | (sa[1] << 8);
	*port = (sa[2] << 8) | sa[3];
	*family = fam;
	if (fam == VG_AF_INET) {
		__builtin_memcpy(addr, sa + 4, 4);
		return 0;
	}
	if (fam == VG_AF_INET6) {
		__builtin_memcpy(addr, sa + 8, 16);
		return 0;
	}
	return -1;
}

SEC("tracepoint/tcp/tcp_send_reset")
int vg_ps_rst_sent(struct trace_event_raw_tcp_send_reset *ctx)
{
	__u8 sa[28] = {}, da[28] = {};
	struct ps_tcp_key k = {};
	__u16 fam2;
	bpf_probe_read_kernel(sa, sizeof(sa), ctx->saddr);
	bpf_probe_read_kernel(da, sizeof(da), ctx->daddr);
	if (sockaddr_split(sa, k.saddr, &k.sport, &k.family) ||
	    sockaddr_split(da, k.daddr, &k.dport, &fam2))
		return 0;
	k.kind = TCP_RESET_SENT;
	/* No socket: a segment to a closed port, whose sender's port (the
	 * peer's, ephemeral for a connect) is left out of the key, so a
	 * stream of refused connects counts into one key per closed port. */
	if (!ctx->skaddr)
		k.dport = 0;
	count_tcp(&k, (__u64)ctx->skaddr, ctx->state, 0);
	return 0;
}

/* ---- biolatency ---- */

SEC("tp_btf/block_io_start")
int BPF_PROG(vg_ps_bio_start, struct request *rq)
{
	__u64 k = (__u64)rq;
	struct ps_bio_start s = {};
	s.submit_ns = bpf_ktime_get_ns();
	s.cgroup_id = bpf_get_current_cgroup_id();
	bpf_map_update_elem(&bio_inflight, &k, &s, BPF_ANY);
	return 0;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(vg_ps_bio_issue, struct request *rq)
{
	__u64 k = (__u64)rq, now = bpf_ktime_get_ns();
	struct ps_bio_start *s = bpf_map_lookup_elem(&bio_inflight, &k);
	if (s) {
		s->issue_ns = now;
		return 0;
	}
	/* submitted before the sensor, or a request block_io_start does not
	 * see: the issuing task's cgroup is the best guess left */
	struct ps_bio_start n = {};
	n.issue_ns = now;
	n.cgroup_id = bpf_get_current_cgroup_id();
	bpf_map_update_elem(&bio_inflight, &k, &n, BPF_ANY);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(vg_ps_bio_done, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	__u64 k = (__u64)rq, now = bpf_ktime_get_ns();
	struct ps_bio_start *s = bpf_map_lookup_elem(&bio_inflight, &k);
	if (!s || !s->issue_ns) {
		if (s)
			bpf_map_delete_elem(&bio_inflight, &k);
		stat_inc(PST_BIO_MISS);
		return 0;
	}
	__u64 issue = s->issue_ns, submit = s->submit_ns;
	struct ps_bio_key bk = { .cgroup_id = s->cgroup_id };
	bpf_map_delete_elem(&bio_inflight, &k);
	__u64 d = now > issue ? now - issue : 0;
	__u64 q = submit && issue > submit ? issue - submit : 0;
	struct block_device *part = rq->part;
	if (part) {
		bk.dev = part->bd_dev;
	} else {
		struct gendisk *disk = rq->q->disk;
		if (disk)
			bk.dev = ((__u32)disk->major << 20) | (__u32)disk->first_minor;
	}
	bk.op = rq->cmd_flags & 0xff;
	__u64 us = d / 1000;
	__u32 slot = us ? log2_u64(us) + 1 : 0;
	if (slot >= BIO_SLOTS)
		slot = BIO_SLOTS - 1;
	struct ps_bio_hist *h = bpf_map_lookup_elem(&bio_hist, &bk);
	if (!h) {
		struct ps_bio_hist zero = {};
		bpf_map_update_elem(&bio_hist, &bk, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&bio_hist, &bk);
		if (!h) {
			stat_inc(PST_BIO_FULL);
			return 0;
		}
	}
	h->slots[slot & (BIO_SLOTS - 1)] += 1;
	h->sum_ns += d;
	h->queue_ns += q;
	h->bytes += nr_bytes;
	return 0;
}
