// SPDX-License-Identifier: GPL-2.0
/*
 * vigil kernel-work tools, one object loaded apart from the security
 * sensors (bpf/src/ktools.rs). Nothing here writes an event per
 * occurrence: every program counts into a per-CPU map the engine reads
 * every perf interval (engine/src/perf/ktools.rs).
 *
 * kmem / slabratetop: kmem:kmalloc and kmem:kmem_cache_alloc (tp_btf):
 *   allocations and bytes per (process, cgroup v2, cache or kmalloc size
 *   class, syscall in progress), and per call site. slabratetop is the
 *   per-cache view of the same maps. 1 in cfg_km_sample events is counted
 *   (1: every one); the engine scales by the sample rate.
 * memleak: kmem:kmalloc / kmem_cache_alloc record each tracked allocation
 *   (address -> size, time, process, kernel stack id) in a hash;
 *   kmem:kfree / kmem_cache_free delete it. The engine reads the table and
 *   reports what stayed longer than perf.memleak_min_age_s, grouped by
 *   stack. Sampling is by address (a hash of the pointer), so the free
 *   side tests the same predicate and touches the map only for tracked
 *   addresses: an untracked free costs a multiply and a compare.
 * kpages: kmem:mm_page_alloc: page allocations per (process, cgroup,
 *   order), 1 in cfg_kp_sample.
 * numamove: migrate:mm_migrate_pages_start / mm_migrate_pages: calls,
 *   pages migrated and failed and the time spent per (process, cgroup,
 *   reason).
 * workq: workqueue_queue_work / execute_start / execute_end: latency
 *   (queued -> running) and run time per work function.
 * overlayfs: syscalls:sys_enter/sys_exit of read, pread64, readv, write,
 *   pwrite64, writev (one program each side, attached to the six): at
 *   entry the fd's file is looked up through the task's fd table (BTF,
 *   CO-RE reads) and kept only when it is a regular file whose superblock
 *   is an overlay's (OVERLAYFS_SUPER_MAGIC); at exit the call's latency, bytes and errors
 *   are counted per (cgroup, overlay superblock, read/write).
 * softirqs / hardirqs / tasklets: irq:softirq_*, irq:irq_handler_*,
 *   irq:tasklet_*: run time per vector, irq number and tasklet function.
 * blkthrot: a bio the block throttle (blk-throttle) holds back is queued
 *   in its throttle group and submitted later by the throttle's dispatch
 *   work item, blk_throtl_dispatch_work_fn, in a kworker; only then does
 *   block:block_bio_queue fire for it. workqueue_execute_start/end mark
 *   the kworker threads running that function (its address comes from
 *   /proc/kallsyms, written by the loader); block_bio_queue in such a
 *   thread, for a bio flagged BIO_BPS_THROTTLED (the throttle dispatched
 *   it), counts the bio and its bytes per (blkcg cgroup, device,
 *   direction), and the time it was held, from the stamp timer_start
 *   left when the throttle queued it (bt_stamp below).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "ktools_abi.h"
#include "vigil_perf.h"

char LICENSE[] SEC("license") = "GPL";

/* Settings, written by the loader before load (frozen .rodata). */
const volatile __u32 cfg_km_sample = 1;
const volatile __u32 cfg_kp_sample = 1;
const volatile __u32 cfg_ml_sample = 1;
/* Address of blk_throtl_dispatch_work_fn (0: blkthrot off). */
const volatile __u64 cfg_bt_dispatch_fn = 0;
/* Address of throtl_pending_timer_fn (0: blkthrot off). */
const volatile __u64 cfg_bt_timer_fn = 0;

#define VG_PF_KTHREAD 0x00200000
#define VG_GFP_ACCOUNT (1u << 22)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct km_key);
	__type(value, struct km_val);
} km_proc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct km_site_key);
	__type(value, struct km_val);
} km_site SEC(".maps");

/* struct kmem_cache * -> its name, written when a cache is first seen. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, char[32]);
} km_cache_name SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct kp_key);
	__type(value, __u64);
} kp_proc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} nm_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct nm_key);
	__type(value, struct nm_val);
} nm_proc SEC(".maps");

/* work_struct * -> time queued. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} wq_queued SEC(".maps");

struct wq_run {
	__u64 start_ns;
	__u64 func;
	__s64 wait_ns; /* queued -> started; -1 when the queueing was not seen */
};

/* worker tid -> the item it runs. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct wq_run);
} wq_running SEC(".maps");

/* Per CPU: start of the softirq (0), hardirq (1), tasklet (2) running. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} irq_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct kw_key);
	__type(value, struct kw_val);
} kw_time SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} kt_stats SEC(".maps");

static __always_inline void stat_inc(__u32 i)
{
	vg_stat_inc(&kt_stats, i);
}

static __always_inline bool sampled(__u32 every)
{
	return every <= 1 || bpf_get_prandom_u32() % every == 0;
}

/* The syscall the current task is in, -1 for kernel threads. */
static __always_inline __s32 current_nr(struct task_struct *t)
{
	struct pt_regs *regs;
	if (t->flags & VG_PF_KTHREAD)
		return -1;
	regs = (struct pt_regs *)bpf_task_pt_regs(t);
	if (!regs)
		return -1;
	return (__s32)regs->orig_ax;
}

static __always_inline void count_alloc(__u64 call_site, __u64 cache, __u32 size, __u32 flags,
					__u64 bytes)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct km_key k = {
		.cgroup_id = bpf_get_current_cgroup_id(),
		.cache = cache,
		.tgid = bpf_get_current_pid_tgid() >> 32,
		.size = size,
		.flags = flags,
	};
	struct km_val zero = {}, *v;
	struct km_site_key sk = { .call_site = call_site, .cache = cache, .size = size,
				  .flags = flags };
	k.nr = current_nr(t);
	v = bpf_map_lookup_elem(&km_proc, &k);
	if (!v) {
		bpf_map_update_elem(&km_proc, &k, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&km_proc, &k);
		if (!v) {
			stat_inc(KST_KM_FULL);
			return;
		}
	}
	v->count += 1;
	v->bytes += bytes;
	v = vg_lookup_or_init(&km_site, &sk, &zero);
	if (!v) {
		stat_inc(KST_SITE_FULL);
		return;
	}
	v->count += 1;
	v->bytes += bytes;
}

SEC("tp_btf/kmalloc")
int BPF_PROG(vg_kt_kmalloc, unsigned long call_site, const void *ptr, size_t bytes_req,
	     size_t bytes_alloc, gfp_t gfp, int node)
{
	stat_inc(KST_KM_SEEN);
	if (!sampled(cfg_km_sample))
		return 0;
	__u32 flags = KM_KMALLOC | ((gfp & VG_GFP_ACCOUNT) ? KM_ACCOUNTED : 0);
	count_alloc(call_site, 0, (__u32)bytes_alloc, flags, bytes_alloc);
	return 0;
}

SEC("tp_btf/kmem_cache_alloc")
int BPF_PROG(vg_kt_cache_alloc, unsigned long call_site, const void *ptr, struct kmem_cache *s,
	     gfp_t gfp, int node)
{
	stat_inc(KST_KM_SEEN);
	if (!sampled(cfg_km_sample) || !s)
		return 0;
	__u64 cache = (__u64)s;
	__u32 size = s->size;
	if (!bpf_map_lookup_elem(&km_cache_name, &cache)) {
		char name[32] = {};
		bpf_probe_read_kernel_str(name, sizeof(name), s->name);
		bpf_map_update_elem(&km_cache_name, &cache, name, BPF_NOEXIST);
	}
	count_alloc(call_site, cache, size, (gfp & VG_GFP_ACCOUNT) ? KM_ACCOUNTED : 0, size);
	return 0;
}

/* ---- memleak ---- */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct ml_val);
} ml_outstanding SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 8192);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, ML_DEPTH * sizeof(__u64));
} ml_stacks SEC(".maps");

/* Whether the allocation at `ptr` is tracked: 1 address in cfg_ml_sample,
 * chosen by a multiplicative hash so alloc and free agree. */
static __always_inline bool ml_tracked(__u64 ptr)
{
	__u32 every = cfg_ml_sample;
	if (every <= 1)
		return true;
	__u32 h = (__u32)(((ptr >> 3) * 0x9E3779B97F4A7C15ULL) >> 32);
	return h % every == 0;
}

static __always_inline void ml_alloc(void *ctx, __u64 ptr, __u64 cache, __u32 size, __u32 flags)
{
	struct ml_val v = {
		.ts_ns = bpf_ktime_get_ns(),
		.cgroup_id = bpf_get_current_cgroup_id(),
		.cache = cache,
		.size = size,
		.tgid = bpf_get_current_pid_tgid() >> 32,
		.flags = flags,
	};
	v.stackid = bpf_get_stackid(ctx, &ml_stacks, 0);
	if (v.stackid < 0)
		stat_inc(KST_ML_NOSTACK);
	if (bpf_map_update_elem(&ml_outstanding, &ptr, &v, BPF_ANY))
		stat_inc(KST_ML_FULL);
	else
		stat_inc(KST_ML_SEEN);
}

SEC("tp_btf/kmalloc")
int BPF_PROG(vg_kt_ml_kmalloc, unsigned long call_site, const void *ptr, size_t bytes_req,
	     size_t bytes_alloc, gfp_t gfp, int node)
{
	__u64 p = (__u64)ptr;
	if (!p || !ml_tracked(p))
		return 0;
	ml_alloc(ctx, p, 0, (__u32)bytes_alloc,
		 KM_KMALLOC | ((gfp & VG_GFP_ACCOUNT) ? KM_ACCOUNTED : 0));
	return 0;
}

SEC("tp_btf/kmem_cache_alloc")
int BPF_PROG(vg_kt_ml_cache_alloc, unsigned long call_site, const void *ptr,
	     struct kmem_cache *s, gfp_t gfp, int node)
{
	__u64 p = (__u64)ptr;
	if (!p || !s || !ml_tracked(p))
		return 0;
	__u64 cache = (__u64)s;
	if (!bpf_map_lookup_elem(&km_cache_name, &cache)) {
		char name[32] = {};
		bpf_probe_read_kernel_str(name, sizeof(name), s->name);
		bpf_map_update_elem(&km_cache_name, &cache, name, BPF_NOEXIST);
	}
	ml_alloc(ctx, p, cache, s->size, (gfp & VG_GFP_ACCOUNT) ? KM_ACCOUNTED : 0);
	return 0;
}

SEC("tp_btf/kfree")
int BPF_PROG(vg_kt_ml_kfree, unsigned long call_site, const void *ptr)
{
	__u64 p = (__u64)ptr;
	if (p && ml_tracked(p))
		bpf_map_delete_elem(&ml_outstanding, &p);
	return 0;
}

SEC("tp_btf/kmem_cache_free")
int BPF_PROG(vg_kt_ml_cache_free, unsigned long call_site, const void *ptr,
	     const struct kmem_cache *s)
{
	__u64 p = (__u64)ptr;
	if (p && ml_tracked(p))
		bpf_map_delete_elem(&ml_outstanding, &p);
	return 0;
}

/* ---- kpages ---- */

SEC("tp_btf/mm_page_alloc")
int BPF_PROG(vg_kt_page_alloc, struct page *page, unsigned int order, gfp_t gfp, int migratetype)
{
	stat_inc(KST_KP_SEEN);
	if (!page || !sampled(cfg_kp_sample))
		return 0;
	struct kp_key k = {
		.cgroup_id = bpf_get_current_cgroup_id(),
		.tgid = bpf_get_current_pid_tgid() >> 32,
		.order = order,
	};
	__u64 zero = 0, *v = vg_lookup_or_init(&kp_proc, &k, &zero);
	if (!v) {
		stat_inc(KST_KP_FULL);
		return 0;
	}
	*v += 1;
	return 0;
}

/* ---- numamove ---- */

SEC("tp_btf/mm_migrate_pages_start")
int BPF_PROG(vg_kt_migrate_start, enum migrate_mode mode, int reason)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&nm_start, &tid, &now, BPF_ANY);
	return 0;
}

SEC("tp_btf/mm_migrate_pages")
int BPF_PROG(vg_kt_migrate_end, unsigned long succeeded, unsigned long failed,
	     unsigned long thp_succeeded, unsigned long thp_failed, unsigned long thp_split,
	     unsigned long large_folio_split, enum migrate_mode mode, int reason)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u64 *t0 = bpf_map_lookup_elem(&nm_start, &tid), d = 0;
	if (t0) {
		__u64 now = bpf_ktime_get_ns();
		d = now > *t0 ? now - *t0 : 0;
		bpf_map_delete_elem(&nm_start, &tid);
	}
	struct nm_key k = {
		.cgroup_id = bpf_get_current_cgroup_id(),
		.tgid = id >> 32,
		.reason = reason,
	};
	struct nm_val zero = {}, *v = vg_lookup_or_init(&nm_proc, &k, &zero);
	if (!v) {
		stat_inc(KST_NM_FULL);
		return 0;
	}
	v->calls += 1;
	v->succeeded += succeeded;
	v->failed += failed;
	v->ns += d;
	return 0;
}

/* ---- workq, softirqs, hardirqs, tasklets ---- */

/* The zeroed value a new work entry starts from (too big for the stack). */
const struct kw_val kw_zero = {};

static __always_inline void count_work(__u32 kind, __u64 id, __u64 run_ns, __s64 wait_ns)
{
	struct kw_key k = { .id = id, .kind = kind };
	struct kw_val *v = bpf_map_lookup_elem(&kw_time, &k);
	if (!v) {
		bpf_map_update_elem(&kw_time, &k, &kw_zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&kw_time, &k);
		if (!v) {
			stat_inc(KST_KW_FULL);
			return;
		}
	}
	v->count += 1;
	v->run_ns += run_ns;
	v->run_slots[vg_us_slot(run_ns, KT_SLOTS)] += 1;
	if (wait_ns >= 0) {
		v->waited += 1;
		v->wait_ns += (__u64)wait_ns;
		v->wait_slots[vg_us_slot((__u64)wait_ns, KT_SLOTS)] += 1;
	}
}

SEC("tp_btf/workqueue_queue_work")
int BPF_PROG(vg_kt_wq_queue, int req_cpu, struct pool_workqueue *pwq, struct work_struct *work)
{
	__u64 w = (__u64)work, now = bpf_ktime_get_ns();
	bpf_map_update_elem(&wq_queued, &w, &now, BPF_ANY);
	return 0;
}

SEC("tp_btf/workqueue_execute_start")
int BPF_PROG(vg_kt_wq_start, struct work_struct *work)
{
	__u64 w = (__u64)work, now = bpf_ktime_get_ns(), *q;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct wq_run r = { .start_ns = now, .func = (__u64)work->func, .wait_ns = -1 };
	q = bpf_map_lookup_elem(&wq_queued, &w);
	if (q) {
		r.wait_ns = now > *q ? (__s64)(now - *q) : 0;
		bpf_map_delete_elem(&wq_queued, &w);
	}
	bpf_map_update_elem(&wq_running, &tid, &r, BPF_ANY);
	return 0;
}

SEC("tp_btf/workqueue_execute_end")
int BPF_PROG(vg_kt_wq_end, struct work_struct *work, work_func_t function)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct wq_run *r = bpf_map_lookup_elem(&wq_running, &tid);
	if (!r)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 d = now > r->start_ns ? now - r->start_ns : 0;
	__u64 func = r->func;
	__s64 wait = r->wait_ns;
	bpf_map_delete_elem(&wq_running, &tid);
	count_work(KW_WORKQ, func, d, wait);
	return 0;
}

static __always_inline void irq_enter(__u32 slot)
{
	__u64 *t = bpf_map_lookup_elem(&irq_start, &slot);
	if (t)
		*t = bpf_ktime_get_ns();
}

static __always_inline void irq_leave(__u32 slot, __u32 kind, __u64 id)
{
	__u64 *t = bpf_map_lookup_elem(&irq_start, &slot);
	if (!t || !*t)
		return;
	__u64 now = bpf_ktime_get_ns();
	__u64 d = now > *t ? now - *t : 0;
	*t = 0;
	count_work(kind, id, d, -1);
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(vg_kt_softirq_entry, unsigned int vec)
{
	irq_enter(0);
	return 0;
}

SEC("tp_btf/softirq_exit")
int BPF_PROG(vg_kt_softirq_exit, unsigned int vec)
{
	irq_leave(0, KW_SOFTIRQ, vec);
	return 0;
}

SEC("tp_btf/irq_handler_entry")
int BPF_PROG(vg_kt_hardirq_entry, int irq, struct irqaction *action)
{
	irq_enter(1);
	return 0;
}

SEC("tp_btf/irq_handler_exit")
int BPF_PROG(vg_kt_hardirq_exit, int irq, struct irqaction *action, int ret)
{
	irq_leave(1, KW_HARDIRQ, (__u64)(__u32)irq);
	return 0;
}

SEC("tp_btf/tasklet_entry")
int BPF_PROG(vg_kt_tasklet_entry, struct tasklet_struct *t, void *func)
{
	irq_enter(2);
	return 0;
}

SEC("tp_btf/tasklet_exit")
int BPF_PROG(vg_kt_tasklet_exit, struct tasklet_struct *t, void *func)
{
	irq_leave(2, KW_TASKLET, (__u64)func);
	return 0;
}

/* ---- overlayfs ---- */

#define VG_OVERLAYFS_MAGIC 0x794c7630
#define VG_S_IFMT 00170000
#define VG_S_IFREG 0100000

/* thread -> the overlay read/write it is in. */
struct ol_pending {
	__u64 ts_ns;
	__u32 dev; /* s_dev of the overlay superblock */
	__u32 op;  /* OL_READ, OL_WRITE */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct ol_pending);
} ol_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ol_key);
	__type(value, struct ol_val);
} ol_lat SEC(".maps");

const struct ol_val ol_zero = {};

/* The file behind `fd` of the current task (NULL when none). */
static __always_inline struct file *fd_file(int fd)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct files_struct *files = BPF_CORE_READ(t, files);
	struct file **fds;
	struct file *f = NULL;
	if (!files || fd < 0)
		return NULL;
	struct fdtable *fdt = BPF_CORE_READ(files, fdt);
	if (!fdt || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (!fds)
		return NULL;
	bpf_core_read(&f, sizeof(f), &fds[fd]);
	return f;
}

SEC("tracepoint/syscalls/sys_enter_read")
int vg_kt_ol_enter(struct trace_event_raw_sys_enter *ctx)
{
	int id = (int)ctx->id; /* __syscall_nr: an int at the offset of `id` */
	__u32 op;
	switch (id) {
	case 0: /* read */
	case 17: /* pread64 */
	case 19: /* readv */
		op = OL_READ;
		break;
	case 1: /* write */
	case 18: /* pwrite64 */
	case 20: /* writev */
		op = OL_WRITE;
		break;
	default:
		return 0;
	}
	struct file *f = fd_file((int)ctx->args[0]);
	if (!f)
		return 0;
	struct inode *ino = BPF_CORE_READ(f, f_inode);
	if (!ino || (BPF_CORE_READ(ino, i_mode) & VG_S_IFMT) != VG_S_IFREG)
		return 0; /* regular files only: not device nodes, fifos, sockets */
	struct super_block *sb = BPF_CORE_READ(ino, i_sb);
	if (!sb || BPF_CORE_READ(sb, s_magic) != VG_OVERLAYFS_MAGIC)
		return 0;
	struct ol_pending p = {
		.ts_ns = bpf_ktime_get_ns(),
		.dev = BPF_CORE_READ(sb, s_dev),
		.op = op,
	};
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	bpf_map_update_elem(&ol_pending, &tid, &p, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_read")
int vg_kt_ol_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct ol_pending *pp = bpf_map_lookup_elem(&ol_pending, &tid);
	if (!pp)
		return 0;
	struct ol_pending p = *pp;
	bpf_map_delete_elem(&ol_pending, &tid);
	__u64 now = bpf_ktime_get_ns();
	__u64 d = now > p.ts_ns ? now - p.ts_ns : 0;
	long ret = ctx->ret;
	struct ol_key k = {
		.cgroup_id = bpf_get_current_cgroup_id(),
		.dev = p.dev,
		.op = p.op,
	};
	struct ol_val *v = bpf_map_lookup_elem(&ol_lat, &k);
	if (!v) {
		bpf_map_update_elem(&ol_lat, &k, &ol_zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&ol_lat, &k);
		if (!v) {
			stat_inc(KST_OL_FULL);
			return 0;
		}
	}
	v->count += 1;
	v->ns += d;
	if (ret < 0)
		v->errors += 1;
	else
		v->bytes += (__u64)ret;
	v->slots[vg_us_slot(d, KT_SLOTS)] += 1;
	return 0;
}

/* ---- blkthrot ---- */

/* enum bio flag bits (include/linux/blk_types.h; anonymous enum, 5 in this
 * kernel's BTF): set on a bio the throttle dispatched. */
#define VG_BIO_BPS_THROTTLED 5
#define VG_REQ_OP_MASK 0xff
#define VG_REQ_OP_WRITE 1

/* kworker tid -> 1 while it runs the throttle's dispatch work. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} bt_worker SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct bt_key);
	__type(value, struct bt_val);
} bt_held SEC(".maps");

const struct bt_val bt_zero = {};

SEC("tp_btf/workqueue_execute_start")
int BPF_PROG(vg_kt_bt_wq_start, struct work_struct *work)
{
	if (!cfg_bt_dispatch_fn || (__u64)work->func != cfg_bt_dispatch_fn)
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u8 one = 1;
	bpf_map_update_elem(&bt_worker, &tid, &one, BPF_ANY);
	return 0;
}

SEC("tp_btf/workqueue_execute_end")
int BPF_PROG(vg_kt_bt_wq_end, struct work_struct *work, work_func_t function)
{
	/* `function` is not read: the verifier refuses a tp_btf load of a
	 * function-pointer argument (EACCES at the first instruction). */
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_lookup_elem(&bt_worker, &tid))
		bpf_map_delete_elem(&bt_worker, &tid);
	return 0;
}

/* bio * -> when the throttle queued it. blk-throttle has no tracepoint of
 * its own: a bio it queues in a group that had none queued in that
 * direction makes it arm its service queue's pending timer
 * (throtl_pending_timer_fn, address from /proc/kallsyms), in the
 * submitter, right after the bio was added. timer:timer_start there finds
 * the submitter's throttle group (its blkcg's blkgs, the policy data whose
 * parent service queue owns the timer) and stamps the bio it just queued:
 * the only one on one of the group's lists. A bio queued behind another
 * of its group arms no timer and is counted untimed. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} bt_stamp SEC(".maps");

/* Blkgs of one blkcg looked at, at most (one per device it did I/O to). */
#define BT_BLKGS 8
/* BLKCG_MAX_POLS */
#define BT_POLS 6

static __always_inline void bt_stamp_single(struct bio *head, struct bio *tail, __u64 now)
{
	if (!tail || head != tail)
		return;
	__u64 key = (__u64)tail;
	bpf_map_update_elem(&bt_stamp, &key, &now, BPF_ANY);
}

SEC("tp_btf/timer_start")
int BPF_PROG(vg_kt_bt_timer, struct timer_list *timer, unsigned long bucket_expiry)
{
	if (!cfg_bt_timer_fn || (__u64)timer->function != cfg_bt_timer_fn)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 sq = (__u64)timer - bpf_core_field_offset(struct throtl_service_queue, pending_timer);
	struct task_struct *t = bpf_get_current_task_btf();
	struct cgroup_subsys_state *css =
		BPF_CORE_READ(t, cgroups, subsys[bpf_core_enum_value(enum cgroup_subsys_id, io_cgrp_id)]);
	if (!css)
		return 0;
	struct blkcg *blkcg = (struct blkcg *)((__u64)css - bpf_core_field_offset(struct blkcg, css));
	struct hlist_node *n = BPF_CORE_READ(blkcg, blkg_list.first);
	for (int j = 0; j < BT_BLKGS && n; j++) {
		struct blkcg_gq *blkg =
			(struct blkcg_gq *)((__u64)n - bpf_core_field_offset(struct blkcg_gq, blkcg_node));
#pragma unroll
		for (int i = 0; i < BT_POLS; i++) {
			struct blkg_policy_data *pd = BPF_CORE_READ(blkg, pd[i]);
			if (!pd)
				continue;
			struct throtl_grp *tg = (struct throtl_grp *)((__u64)pd -
								  bpf_core_field_offset(struct throtl_grp, pd));
			if ((__u64)BPF_CORE_READ(tg, service_queue.parent_sq) != sq)
				continue;
			bt_stamp_single(BPF_CORE_READ(tg, qnode_on_self[0].bios_bps.head),
					BPF_CORE_READ(tg, qnode_on_self[0].bios_bps.tail), now);
			bt_stamp_single(BPF_CORE_READ(tg, qnode_on_self[0].bios_iops.head),
					BPF_CORE_READ(tg, qnode_on_self[0].bios_iops.tail), now);
			bt_stamp_single(BPF_CORE_READ(tg, qnode_on_self[1].bios_bps.head),
					BPF_CORE_READ(tg, qnode_on_self[1].bios_bps.tail), now);
			bt_stamp_single(BPF_CORE_READ(tg, qnode_on_self[1].bios_iops.head),
					BPF_CORE_READ(tg, qnode_on_self[1].bios_iops.tail), now);
			return 0;
		}
		n = BPF_CORE_READ(n, next);
	}
	return 0;
}

SEC("tp_btf/block_bio_queue")
int BPF_PROG(vg_kt_bt_queue, struct bio *bio)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (!bio)
		return 0;
	if (!bpf_map_lookup_elem(&bt_worker, &tid))
		return 0;
	__u64 key = (__u64)bio;
	__u64 *st = bpf_map_lookup_elem(&bt_stamp, &key);
	__u64 issued = st ? *st : 0;
	if (st)
		bpf_map_delete_elem(&bt_stamp, &key);
	if (!(BPF_CORE_READ(bio, bi_flags) & (1u << VG_BIO_BPS_THROTTLED)))
		return 0;
	__u64 now = bpf_ktime_get_ns();
	struct bt_key k = {
		.cgroup_id = BPF_CORE_READ(bio, bi_blkg, blkcg, css.cgroup, kn, id),
		.dev = BPF_CORE_READ(bio, bi_bdev, bd_dev),
		.op = (BPF_CORE_READ(bio, bi_opf) & VG_REQ_OP_MASK) == VG_REQ_OP_WRITE ? BT_WRITE
										: BT_READ,
	};
	struct bt_val *v = bpf_map_lookup_elem(&bt_held, &k);
	if (!v) {
		bpf_map_update_elem(&bt_held, &k, &bt_zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&bt_held, &k);
		if (!v) {
			stat_inc(KST_BT_FULL);
			return 0;
		}
	}
	v->bios += 1;
	v->bytes += BPF_CORE_READ(bio, bi_iter.bi_size);
	if (issued && issued <= now) {
		__u64 d = now - issued;
		v->timed += 1;
		v->ns += d;
		v->slots[vg_us_slot(d, KT_SLOTS)] += 1;
	}
	return 0;
}

/* ---- benchmark floor (vigil-bench --kmem): count only ---- */

SEC("tp_btf/kmem_cache_alloc")
int BPF_PROG(vg_kt_floor_cache_alloc, unsigned long call_site, const void *ptr,
	     struct kmem_cache *s, gfp_t gfp, int node)
{
	stat_inc(KST_FLOOR);
	return 0;
}
