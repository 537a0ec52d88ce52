/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What crosses the kernel boundary for the kernel-work tools
 * (ktools.bpf.c): kernel memory (kmem, kpages, slabratetop, memleak, numamove) and
 * deferred work (workq, softirqs, hardirqs, tasklets). Mirrored in
 * bpf/src/ktools.rs with size asserts.
 */
#ifndef VIGIL_KTOOLS_ABI_H
#define VIGIL_KTOOLS_ABI_H

/* log2 buckets of microseconds (as runqlat's). */
#define KT_SLOTS 32

/* km_key.flags */
#define KM_KMALLOC 1   /* kmalloc(): `size` is the size class (bytes_alloc) */
#define KM_ACCOUNTED 2 /* __GFP_ACCOUNT: a kmalloc-cg-* cache */

/* Kernel allocations of one process in one cache or size class, in one
 * syscall (kmem, slabratetop, the heap-spray finding). */
struct km_key {
	__u64 cgroup_id; /* cgroup v2 of the allocating task */
	__u64 cache;     /* struct kmem_cache * (kmem_cache_alloc); 0 for kmalloc */
	__u32 tgid;      /* 0: no task (interrupt on an idle CPU, kernel thread) */
	__u32 size;      /* kmalloc size class (bytes_alloc) or the cache's object size */
	__s32 nr;        /* syscall in progress (orig_ax), -1 when none */
	__u32 flags;     /* KM_* */
};

struct km_val {
	__u64 count; /* allocations seen (sampled ones when kmem_sample > 1) */
	__u64 bytes; /* bytes allocated (bytes_alloc) of those */
};

/* Kernel allocations per call site (kmem's "by call site" view). */
struct km_site_key {
	__u64 call_site;
	__u64 cache; /* as km_key.cache */
	__u32 size;
	__u32 flags;
};

/* Page allocations of one process by order (kpages). */
struct kp_key {
	__u64 cgroup_id;
	__u32 tgid;
	__u32 order;
};

/* Page migrations per process and reason (numamove). */
struct nm_key {
	__u64 cgroup_id;
	__u32 tgid;
	__s32 reason; /* enum migrate_reason */
};

struct nm_val {
	__u64 calls;     /* migrate_pages() calls completed */
	__u64 succeeded; /* pages (folios) migrated */
	__u64 failed;
	__u64 ns;        /* time in migrate_pages() (start -> end tracepoint) */
};

/* Time of deferred work by function or vector: workq (work function),
 * tasklets (function), softirqs (vector), hardirqs (irq number). */
struct kw_key {
	__u64 id;   /* function address, softirq vector or irq number */
	__u32 kind; /* KW_* */
	__u32 _pad;
};

#define KW_WORKQ 0
#define KW_SOFTIRQ 1
#define KW_HARDIRQ 2
#define KW_TASKLET 3

struct kw_val {
	__u64 count;
	__u64 run_ns;    /* time running */
	__u64 wait_ns;   /* workq: queue -> execute start (latency) */
	__u64 waited;    /* workq: items whose queueing was seen */
	__u64 run_slots[KT_SLOTS];
	__u64 wait_slots[KT_SLOTS];
};

/* One kernel allocation outstanding (memleak), keyed by its address. */
struct ml_val {
	__u64 ts_ns;     /* bpf_ktime_get_ns() at allocation */
	__u64 cgroup_id; /* cgroup v2 of the allocating task */
	__u64 cache;     /* struct kmem_cache * (kmem_cache_alloc); 0 for kmalloc */
	__u32 size;      /* bytes_alloc (kmalloc) or the cache's object size */
	__u32 tgid;      /* allocating process (0: none) */
	__s32 stackid;   /* kernel stack in ml_stacks; < 0: not stored (-errno) */
	__u32 flags;     /* KM_* */
};

/* overlayfs: reads and writes of files on one overlay mount by one cgroup. */
#define OL_READ 0
#define OL_WRITE 1

struct ol_key {
	__u64 cgroup_id; /* cgroup v2 of the reading/writing task */
	__u32 dev;       /* s_dev of the overlay superblock (kernel encoding) */
	__u32 op;        /* OL_READ, OL_WRITE */
};

struct ol_val {
	__u64 count;  /* syscalls completed */
	__u64 bytes;  /* bytes read or written (successful calls) */
	__u64 ns;     /* time in the syscall, summed */
	__u64 errors; /* calls that returned an error */
	__u64 slots[KT_SLOTS]; /* latency, log2 us */
};

/* blkthrot: bios the block throttle held back, per cgroup, device and
 * direction. */
#define BT_READ 0
#define BT_WRITE 1

struct bt_key {
	__u64 cgroup_id; /* kernfs id of the bio's blkcg cgroup (v1 blkio or v2) */
	__u32 dev;       /* bd_dev of the bio's device (kernel encoding) */
	__u32 op;        /* BT_READ, BT_WRITE */
};

struct bt_val {
	__u64 bios;  /* throttled bios dispatched */
	__u64 bytes; /* their bytes */
	__u64 ns;    /* issue -> dispatch, summed over the timed ones */
	__u64 timed; /* bios with an issue time (the count behind `ns`) */
	__u64 slots[KT_SLOTS]; /* time throttled, log2 us */
};

/* Frames kept per memleak stack. */
#define ML_DEPTH 32

/* Indexes of `kt_stats` (per-CPU u64). */
#define KST_KM_FULL 0   /* kmem map full: allocation not counted */
#define KST_SITE_FULL 1 /* call-site map full */
#define KST_KP_FULL 2   /* kpages map full */
#define KST_NM_FULL 3   /* numamove map full */
#define KST_KW_FULL 4   /* work map full */
#define KST_KM_SEEN 5   /* kmem/kmem_cache_alloc events (before sampling) */
#define KST_KP_SEEN 6   /* mm_page_alloc events (before sampling) */
#define KST_FLOOR 7     /* runs of the benchmark's counting floor */
#define KST_ML_FULL 8    /* memleak table full: allocation not tracked */
#define KST_ML_NOSTACK 9 /* memleak: stack not stored (stack map full, bucket taken) */
#define KST_ML_SEEN 10   /* memleak: allocations tracked (sampled) */
#define KST_OL_FULL 11   /* overlayfs map full: call not counted */
#define KST_BT_FULL 12    /* blkthrot map full: bio not counted */
#define KST_SLOTS 13

_Static_assert(sizeof(struct km_key) == 32, "km_key size");
_Static_assert(sizeof(struct km_val) == 16, "km_val size");
_Static_assert(sizeof(struct km_site_key) == 24, "km_site_key size");
_Static_assert(sizeof(struct kp_key) == 16, "kp_key size");
_Static_assert(sizeof(struct nm_key) == 16, "nm_key size");
_Static_assert(sizeof(struct nm_val) == 32, "nm_val size");
_Static_assert(sizeof(struct kw_key) == 16, "kw_key size");
_Static_assert(sizeof(struct ml_val) == 40, "ml_val size");
_Static_assert(sizeof(struct ol_key) == 16, "ol_key size");
_Static_assert(sizeof(struct ol_val) == 8 * (4 + KT_SLOTS), "ol_val size");
_Static_assert(sizeof(struct bt_key) == 16, "bt_key size");
_Static_assert(sizeof(struct bt_val) == 8 * (4 + KT_SLOTS), "bt_val size");
_Static_assert(sizeof(struct kw_val) == 8 * (4 + 2 * KT_SLOTS), "kw_val size");

#endif
