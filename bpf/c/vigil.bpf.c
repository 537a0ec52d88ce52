// SPDX-License-Identifier: GPL-2.0
/*
 * vigil sensors. One object, many programs; the loader (bpf/src/sensors.rs)
 * picks which to attach from what this kernel allows.
 *
 * Every record is built in a per-CPU scratch buffer (header, fixed body,
 * trailing strings; see vigil_abi.h) and copied to the ring buffer with
 * bpf_ringbuf_output() at its exact length. Wakeups are batched: the
 * consumer is woken only once cfg_wakeup_bytes are pending and drains on a
 * timer otherwise. Every outcome (emitted, dropped, filtered, deduped) is
 * counted per kind in `counters`; nothing is lost silently.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "vigil_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* ---- settings, written by the loader before load (frozen .rodata) ---- */
const volatile __u32 cfg_self_tgid = 0;
const volatile __u32 cfg_wakeup_bytes = 65536;
const volatile __u8 cfg_dedup = 1;
const volatile __u8 cfg_open_writes = 1;
/* Priority budget per process (GCRA): one priority record per
 * cfg_prio_interval_ns, bursts up to cfg_prio_burst_ns ahead of schedule.
 * 0 interval: no budget. */
const volatile __u64 cfg_prio_interval_ns = 5000000;
const volatile __u64 cfg_prio_burst_ns = 995000000;

/* ---- constants not in vmlinux.h ---- */
#define AT_FDCWD -100
#define O_WRONLY 01
#define O_RDWR 02
#define O_CREAT 0100
#define O_TRUNC 01000
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define S_ISUID 04000
#define S_ISGID 02000
#define CLONE_NEWTIME 0x00000080
#define CLONE_NEWNS 0x00020000
#define CLONE_NEWCGROUP 0x02000000
#define CLONE_NEWUTS 0x04000000
#define CLONE_NEWIPC 0x08000000
#define CLONE_NEWUSER 0x10000000
#define CLONE_NEWPID 0x20000000
#define CLONE_NEWNET 0x40000000
#define PID_FS_MAGIC_ 0x50494446 /* pidfs superblock (pidfds, kernel >= 6.9) */

/* ---- sizes ---- */
#define EV_BUF 16384            /* record area (power of two) */
#define STR_MAX 4096            /* largest single string */
#define PATH_MAX_B 4096         /* path build area (power of two) */
#define PATH_DEPTH 64           /* components walked */
#define ARGV_MAX 4096
#define LINE_MAX 1024
#define NAME_MAX_B 256

/* ---- maps ---- */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} events SEC(".maps");

/* Alert candidates (see emit_to): a flood of bulk records cannot fill it. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} priority SEC(".maps");

/* tgid -> theoretical arrival time (boot ns) of its next priority record.
 * LRU: a process gone ages out; an evicted one starts with a full burst. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} prio_budget SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VG_KIND_SLOTS);
	__type(key, __u32);
	__type(value, struct vg_counters);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VG_KIND_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} interest_kinds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32);
} interest_syscalls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vg_path_key);
	__type(value, __u32);
} interest_paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} interest_caps SEC(".maps");

/* Kill on match: executable path prefixes of `action: kill` rules that the
 * kernel can decide (value VG_KILL_ACT_*) ... */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vg_path_key);
	__type(value, __u32);
} kill_exec_paths SEC(".maps");

/* ... and VG_KILL_CFG_* settings */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} kill_cfg SEC(".maps");

/* ... paths whose successful open kills (at sys_exit of the open) ... */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vg_path_key);
	__type(value, __u32);
} kill_open_paths SEC(".maps");

/* ... and remote ports whose connect kills (at sys_exit_connect) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u16);
	__type(value, __u32);
} kill_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u32);
} interest_ports SEC(".maps");

/* interest_tcp_states[0]: bit n set = report transitions into TCP state n */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} interest_tcp_states SEC(".maps");

/* VG_ICFG_* settings of the interest maps, written by the engine */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VG_ICFG_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} interest_cfg SEC(".maps");

/* Not LRU on purpose: an eviction would lose a suppressed count. When the
 * map is full the record is emitted instead. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct vg_dedup_key);
	__type(value, struct vg_dedup_val);
} dedup SEC(".maps");

/* Syscall arguments stashed at sys_enter for the matching sys_exit. */
struct pending {
	__u64 args[6];
	__s64 id;
	__u32 kind_sys;   /* kind | vg_sys << 16 */
	__u32 old_mntns;
	__u32 old_netns;
	__u32 old_pidns_children;
	__u32 live;       /* set at sys_enter, cleared when its exit takes it */
	__u32 _pad;
};

/* Arguments stashed at sys_enter for sys_exit, per thread: task-local
 * storage, not a hash keyed by pid_tgid. Getting a thread's own slot is a
 * pointer lookup in the task (no hashing, no bucket lock, no LRU list
 * update: the hash's update and delete were most of what a watched
 * syscall cost), and the slot goes away with its task, so a thread that
 * dies mid-syscall leaves nothing behind and nothing has to be evicted.
 * A slot is "taken" by clearing `live`, not deleted. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct pending);
} pending SEC(".maps");

/* This thread's stash slot, created on first use (NULL only when the
 * kernel cannot allocate it). */
static __always_inline struct pending *pending_slot(int create)
{
	return bpf_task_storage_get(&pending, bpf_get_current_task_btf(), 0,
				    create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}

struct scratch {
	__u8 ev[EV_BUF + STR_MAX]; /* slack: masked offset + bounded length stays inside */
	__u8 path[PATH_MAX_B + NAME_MAX_B];
	/* LPM lookup key, with slack so a joined "dir/name" can be written
	 * at a variable offset before the length is clamped */
	union {
		struct vg_path_key lpm;
		__u8 lpm_raw[4 + 3 * VG_LPM_MAX];
	};
	/* see LAUNDER */
	__u64 launder[16];
};

/*
 * Passes scalar x through per-CPU memory so the verifier forgets what it
 * knew of it. After a switch over the syscall, every case holds its own
 * constants (dfd = AT_FDCWD, name2 = 0, ...); the branches that test them
 * mark them precise, so the verifier cannot prune and walks the rest of the
 * program once per case. Laundered, the cases meet in one state and the
 * rest is verified once: this is start-up time (the verifier ran ~118,000
 * instructions for the file-change program before).
 */
#define LAUNDER(s, i, x)                                                          \
	({                                                                        \
		*(volatile __u64 *)&(s)->launder[(i) & 15] = (__u64)(x);          \
		(typeof(x)) * (volatile __u64 *)&(s)->launder[(i) & 15];          \
	})

/* Per-CPU record buffers. Slot 0 for programs in process context; the
 * programs that can also run in softirq (tcp_state, capable) have their own
 * slots, because a softirq may interrupt a program mid-record on the same
 * CPU and must not overwrite its buffer. */
enum { SLOT_TASK, SLOT_TCP, SLOT_CAP, SLOTS };
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

/* Per-CPU, per ring (LOSS_BULK, LOSS_PRIO): set when a record was dropped,
 * cleared by the next record emitted to that ring. Any drop sets
 * LOSS_BULK; a dropped alert candidate (on either ring) also sets LOSS_PRIO. */
enum { LOSS_BULK, LOSS_PRIO, LOSS_SLOTS };
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LOSS_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} loss SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bench_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VG_LEARN_SLOTS);
	__type(key, struct vg_learn_key);
	__type(value, __u32);
} learn_exe SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} learn_tgid SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VG_LEARN_SLOTS);
	__type(key, __u32);
	__type(value, struct vg_sysset);
} learn_sys SEC(".maps");

/* At exec: the new image decides whether this process's syscalls are
 * learned (its profile is learning) or not. */
/* Files opened for writing below a report path, until their first write:
 * struct file pointer -> inode (a reused struct file of another inode is
 * not mistaken for it). LRU: a file never written ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} write_watch SEC(".maps");

static __always_inline void learn_exec(__u64 ino, __u32 dev)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct vg_learn_key k = { .ino = ino, .dev = dev, ._pad = 0 };
	__u32 *slot = bpf_map_lookup_elem(&learn_exe, &k);
	if (slot) {
		__u32 v = *slot;
		bpf_map_update_elem(&learn_tgid, &tgid, &v, BPF_ANY);
	} else {
		bpf_map_delete_elem(&learn_tgid, &tgid);
	}
}

/* ---- counting ---- */
enum { C_EMITTED, C_DROPPED, C_FILTERED, C_DEDUPED, C_DROPPED_PRIO, C_DEMOTED };

static __always_inline void count(__u32 kind, int what)
{
	struct vg_counters *c = bpf_map_lookup_elem(&counters, &kind);
	if (!c)
		return;
	/* per-CPU value: no atomics needed */
	switch (what) {
	case C_EMITTED: c->emitted++; break;
	case C_DROPPED: c->dropped++; break;
	case C_FILTERED: c->filtered++; break;
	case C_DROPPED_PRIO: c->dropped_prio++; break;
	case C_DEMOTED: c->demoted++; break;
	default: c->deduped++; break;
	}
}

static __always_inline int kind_on(__u32 kind)
{
	__u32 *on = bpf_map_lookup_elem(&interest_kinds, &kind);
	return on && *on;
}

static __always_inline int is_self(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == cfg_self_tgid;
}

/* The agent's bpf_stats helper: a child of the agent named "vigil-stats"
 * (PR_SET_NAME before its first watched syscall) that keeps
 * CAP_SYS_ADMIN to hand out BPF_ENABLE_STATS descriptors. It is vigil
 * itself, as is_self() is, though not of its tgid. Only the agent makes
 * its own children, so another process cannot pass for it by name. */
static __always_inline int is_self_helper(void)
{
	/* the name first: one helper call rules out every other task, before
	 * the two reads of the parent */
	char c[16] = {};
	bpf_get_current_comm(c, sizeof(c));
	static const char want[12] = "vigil-stats";
#pragma unroll
	for (int i = 0; i < 12; i++)
		if (c[i] != want[i])
			return 0;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ(t, real_parent, tgid) == cfg_self_tgid;
}

static __always_inline struct scratch *get_scratch_slot(__u32 slot)
{
	return bpf_map_lookup_elem(&scratch, &slot);
}

static __always_inline struct scratch *get_scratch(void)
{
	return get_scratch_slot(SLOT_TASK);
}

/* ---- header ---- */

/* Inode of the task's active pid namespace and its pid there:
 * pid->numbers[pid->level]. The level is variable, so the element is read
 * by address (CO-RE offset of `numbers`) rather than by a BTF access. */
static __always_inline void active_pidns(struct task_struct *leader, __u32 *ino, __u32 *nr)
{
	struct pid *p = BPF_CORE_READ(leader, thread_pid);
	unsigned int level = BPF_CORE_READ(p, level);
	struct upid up = {};
	__u64 addr = (__u64)p + bpf_core_field_offset(struct pid, numbers) +
		     (__u64)(level & 31) * bpf_core_type_size(struct upid);
	bpf_probe_read_kernel(&up, sizeof(up), (void *)addr);
	*nr = up.nr;
	*ino = BPF_CORE_READ(up.ns, ns.inum);
}

/*
 * A global function: the verifier checks its body once per program, not
 * once per path that reaches it (inlined, the header was verified on every
 * path of every program).
 */
__attribute__((noinline)) int vg_fill_hdr(struct vg_hdr *h, __u32 kind)
{
	if (!h)
		return 0;
	/* Untyped task pointer and probe reads, not BTF loads: each BTF load
	 * of a pointer field from a trusted task pointer costs the verifier
	 * up to three linear searches of vmlinux BTF (trusted, trusted-or-null
	 * and RCU variants of the type), ~40 ms a program on this kernel.
	 * Fields the kernel keeps side by side (real_parent .. group_leader,
	 * real_cred and cred, the ids of a cred, mnt_ns .. net_ns) are read
	 * with one probe read each group: every read is a helper call, and
	 * the header took 21 of them (most of an emitted record's cost). The
	 * offsets are CO-RE constants, so the verifier keeps one branch. */
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u64 w[8] = {};
	struct task_struct *leader, *parent;
	__u64 rp_off = bpf_core_field_offset(struct task_struct, real_parent);
	__u64 gl_off = bpf_core_field_offset(struct task_struct, group_leader);
	if (gl_off > rp_off && gl_off - rp_off <= 56) {
		bpf_probe_read_kernel(w, sizeof(w), (void *)t + rp_off);
		parent = (struct task_struct *)w[0];
		leader = (struct task_struct *)w[((gl_off - rp_off) / 8) & 7];
	} else {
		parent = BPF_CORE_READ(t, real_parent);
		leader = BPF_CORE_READ(t, group_leader);
	}
	__u64 pt = bpf_get_current_pid_tgid();
	h->kind = kind;
	/* flags and str_len belong to the record being built (see begin) */
	h->flags |= (__u32)pt != (pt >> 32) ? VG_F_THREAD : 0;
	h->size = 0;
	h->ts_ns = bpf_ktime_get_boot_ns();
	h->start_ns = BPF_CORE_READ(leader, start_boottime);
	h->cgroup_id = bpf_get_current_cgroup_id();
	h->pid = pt >> 32;
	h->tid = (__u32)pt;
	h->ppid = BPF_CORE_READ(parent, tgid);
	const struct cred *rc, *c;
	__u64 rc_off = bpf_core_field_offset(struct task_struct, real_cred);
	__u64 c_off = bpf_core_field_offset(struct task_struct, cred);
	if (c_off == rc_off + 8) {
		bpf_probe_read_kernel(w, 16, (void *)t + rc_off);
		rc = (const struct cred *)w[0];
		c = (const struct cred *)w[1];
	} else {
		rc = BPF_CORE_READ(t, real_cred);
		c = BPF_CORE_READ(t, cred);
	}
	/* uid, gid, suid, sgid, euid, egid: six adjacent ids */
	__u64 uid_off = bpf_core_field_offset(struct cred, uid);
	__u64 euid_off = bpf_core_field_offset(struct cred, euid);
	__u64 egid_off = bpf_core_field_offset(struct cred, egid);
	__u64 gid_off = bpf_core_field_offset(struct cred, gid);
	if (gid_off == uid_off + 4 && euid_off == uid_off + 16 && egid_off == uid_off + 20) {
		__u32 ids[6] = {};
		bpf_probe_read_kernel(ids, sizeof(ids), (void *)rc + uid_off);
		h->uid = ids[0];
		h->gid = ids[1];
		if (c != rc)
			bpf_probe_read_kernel(ids, sizeof(ids), (void *)c + uid_off);
		h->euid = ids[4];
		h->egid = ids[5];
	} else {
		h->uid = BPF_CORE_READ(rc, uid.val);
		h->gid = BPF_CORE_READ(rc, gid.val);
		h->euid = BPF_CORE_READ(c, euid.val);
		h->egid = BPF_CORE_READ(c, egid.val);
	}
	h->auid = bpf_core_field_exists(t->loginuid) ? BPF_CORE_READ(t, loginuid.val) : 0xffffffff;
	active_pidns(leader, &h->pidns, &h->ns_pid);
	/* nsproxy is NULL for a task past exit_task_namespaces(): 0 then */
	struct nsproxy *nsp = BPF_CORE_READ(t, nsproxy);
	h->mntns = 0;
	h->netns = 0;
	if (nsp) {
		struct mnt_namespace *mns;
		struct net *nns;
		__u64 m_off = bpf_core_field_offset(struct nsproxy, mnt_ns);
		__u64 n_off = bpf_core_field_offset(struct nsproxy, net_ns);
		if (n_off > m_off && n_off - m_off <= 56) {
			bpf_probe_read_kernel(w, sizeof(w), (void *)nsp + m_off);
			mns = (struct mnt_namespace *)w[0];
			nns = (struct net *)w[((n_off - m_off) / 8) & 7];
		} else {
			mns = BPF_CORE_READ(nsp, mnt_ns);
			nns = BPF_CORE_READ(nsp, net_ns);
		}
		h->mntns = BPF_CORE_READ(mns, ns.inum);
		h->netns = BPF_CORE_READ(nns, ns.inum);
	}
	bpf_get_current_comm(h->comm, sizeof(h->comm));
	return 0;
}

static __always_inline void fill_hdr(struct vg_hdr *h, __u16 kind)
{
	vg_fill_hdr(h, kind);
}

/* Starts a record in scratch; returns the offset where strings begin. */
/* Starts a record whose header is filled later (fill_hdr), once the
 * record is known to be wanted: filtered events skip the header's cost. */
static __always_inline __u32 begin_deferred(struct scratch *s, __u32 body_size)
{
	struct vg_hdr *h = (struct vg_hdr *)s->ev;
	h->flags = 0;
	h->str_len[0] = h->str_len[1] = h->str_len[2] = h->str_len[3] = 0;
	return sizeof(struct vg_hdr) + body_size;
}

static __always_inline __u32 begin(struct scratch *s, __u16 kind, __u32 body_size)
{
	__u32 off = begin_deferred(s, body_size);
	fill_hdr((struct vg_hdr *)s->ev, kind);
	return off;
}

/* Whether process `tgid` may send one more record to the priority ring
 * (GCRA: the schedule advances one interval per record and may run at most
 * cfg_prio_burst_ns ahead of now). Threads of one process on several CPUs
 * share the entry: the first record inserts it only if no other CPU did
 * (BPF_NOEXIST), and the schedule advances by compare-and-swap, so two
 * CPUs can never both take the same slot. A CAS lost VG_BUDGET_TRIES times
 * in a row (other threads of the process taking slots meanwhile) counts
 * as over budget: the record goes to the bulk ring, counted as demoted. */
#define VG_BUDGET_TRIES 4
static __always_inline int within_budget(__u32 tgid)
{
	if (!cfg_prio_interval_ns)
		return 1;
	__u64 now = bpf_ktime_get_boot_ns();
	__u64 *tat = bpf_map_lookup_elem(&prio_budget, &tgid);
	if (!tat) {
		__u64 v = now + cfg_prio_interval_ns;
		if (bpf_map_update_elem(&prio_budget, &tgid, &v, BPF_NOEXIST) == 0)
			return 1;
		/* another CPU inserted it first: take a slot of its schedule */
		tat = bpf_map_lookup_elem(&prio_budget, &tgid);
		if (!tat)
			return 0;
	}
#pragma unroll
	for (int i = 0; i < VG_BUDGET_TRIES; i++) {
		__u64 old = *(volatile __u64 *)tat;
		__u64 t = old > now ? old : now;
		if (t - now > cfg_prio_burst_ns)
			return 0;
		if (__sync_val_compare_and_swap(tat, old, t + cfg_prio_interval_ns) == old)
			return 1;
	}
	return 0;
}

static __always_inline long ring_out(int prio, void *data, __u32 size)
{
	__u64 flags = 0;
	if (prio) {
		if (cfg_wakeup_bytes)
			flags = bpf_ringbuf_query(&priority, BPF_RB_AVAIL_DATA) >= cfg_wakeup_bytes
					? BPF_RB_FORCE_WAKEUP
					: BPF_RB_NO_WAKEUP;
		return bpf_ringbuf_output(&priority, data, size, flags);
	}
	if (cfg_wakeup_bytes)
		flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg_wakeup_bytes
				? BPF_RB_FORCE_WAKEUP
				: BPF_RB_NO_WAKEUP;
	return bpf_ringbuf_output(&events, data, size, flags);
}

/*
 * Sends the record to a ring. Class: exec, fork and exit always go to the
 * priority ring; a record of a kind marked VG_INTEREST_PRIO in
 * interest_kinds (kinds the rules match), unless `bulk` (an open emitted
 * only because it writes, not because its path is a report path), is an
 * alert candidate and goes to the priority ring while its
 * process is within budget, else to the bulk ring (counted as demoted).
 * Everything else goes to the bulk ring `events`.
 */
static __always_inline void emit_to(struct scratch *s, __u32 size, int bulk)
{
	struct vg_hdr *h = (struct vg_hdr *)s->ev;
	__u32 kind = h->kind;
	int life = kind == VG_EXEC || kind == VG_FORK || kind == VG_EXIT;
	int cand = life;
	if (!life && !bulk) {
		__u32 *on = bpf_map_lookup_elem(&interest_kinds, &kind);
		cand = on && (*on & VG_INTEREST_PRIO);
	}
	int prio = life || (cand && within_budget(h->pid));
	if (cand && !prio)
		count(kind, C_DEMOTED);
	__u32 slot = prio ? LOSS_PRIO : LOSS_BULK;
	__u32 *lost = bpf_map_lookup_elem(&loss, &slot);
	if (lost && *lost)
		h->flags |= VG_F_LOSS;
	if (size > EV_BUF)
		size = EV_BUF;
	h->size = size;
	if (ring_out(prio, s->ev, size) == 0) {
		count(kind, C_EMITTED);
		if (lost)
			*lost = 0;
		return;
	}
	count(kind, C_DROPPED);
	if (prio)
		count(kind, C_DROPPED_PRIO);
	__u32 b = LOSS_BULK, p = LOSS_PRIO;
	__u32 *lb = bpf_map_lookup_elem(&loss, &b);
	if (lb)
		*lb = 1;
	if (cand) {
		__u32 *lp = bpf_map_lookup_elem(&loss, &p);
		if (lp)
			*lp = 1;
	}
}

static __always_inline void emit(struct scratch *s, __u32 size)
{
	emit_to(s, size, 0);
}

/* ---- strings ---- */

static __always_inline void set_len(struct scratch *s, int idx, __u32 len, int trunc)
{
	struct vg_hdr *h = (struct vg_hdr *)s->ev;
	if (idx < 0 || idx >= VG_MAX_STR)
		return;
	h->str_len[idx & 3] = len;
	if (trunc)
		h->flags |= (VG_F_TRUNC0 << idx);
}

/* Appends a NUL-terminated user string as string `idx`; returns new offset. */
/* Room left for strings: a record never exceeds EV_BUF, so the lengths in
 * the header always describe bytes that were emitted. */
static __always_inline __u32 room(__u32 off, __u32 max)
{
	if (off >= EV_BUF)
		return 0;
	if (max > EV_BUF - off)
		max = EV_BUF - off;
	if (max > STR_MAX - 1)
		max = STR_MAX - 1;
	return max;
}

static __always_inline __u32 put_user_str(struct scratch *s, __u32 off, int idx, const void *src, __u32 max)
{
	__u32 r = room(off, max);
	if (!src || r < 2)
		return off;
	long n = bpf_probe_read_user_str(&s->ev[off & (EV_BUF - 1)], r, src);
	if (n <= 1)
		return off;
	__u32 len = (n - 1) & (STR_MAX - 1);
	set_len(s, idx, len, (__u32)n >= r);
	return off + len;
}

static __always_inline __u32 put_kernel_str(struct scratch *s, __u32 off, int idx, const void *src, __u32 max)
{
	__u32 r = room(off, max);
	if (!src || r < 2)
		return off;
	long n = bpf_probe_read_kernel_str(&s->ev[off & (EV_BUF - 1)], r, src);
	if (n <= 1)
		return off;
	__u32 len = (n - 1) & (STR_MAX - 1);
	set_len(s, idx, len, (__u32)n >= r);
	return off + len;
}

/* ---- paths ---- */

/*
 * Canonical path of (dentry, vfsmount) the way d_path() builds it: walk
 * d_parent to the mount root, cross to the parent mount at its mountpoint,
 * stop at the task's root (so chrooted and containerised processes get the
 * path they see). Built backwards into s->path; returns the start offset
 * (the path is s->path[ret .. PATH_MAX_B)), or PATH_MAX_B | trunc bit.
 */
#define PATH_TRUNC (1u << 31)

struct path_walk {
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	struct dentry *root_d;
	struct vfsmount *root_m;
	__u64 mnt_off;
	__u32 pos;
	__u32 trunc;
};

/* Prepends "/name" of dentry d at w->pos. */
static __always_inline int prepend(struct scratch *s, struct path_walk *w, struct dentry *d)
{
	struct qstr q = BPF_CORE_READ(d, d_name);
	__u32 len = q.len & (NAME_MAX_B - 1);
	__u32 pos = w->pos;
	if (len + 1 > pos || pos > PATH_MAX_B) {
		w->trunc = 1;
		return 1;
	}
	pos -= len + 1;
	bpf_probe_read_kernel(&s->path[(pos + 1) & (PATH_MAX_B - 1)], len, q.name);
	s->path[pos & (PATH_MAX_B - 1)] = '/';
	w->pos = pos;
	return 0;
}

/* One step of the walk (a bpf_loop callback: verified once, not per
 * iteration). Returns 1 to stop. */
static long walk_step(__u32 i, void *ctx)
{
	struct path_walk *w = ctx;
	struct scratch *s = get_scratch();
	if (!s)
		return 1;
	/* locals, not w->x: BPF_CORE_READ would relocate the access into our
	 * own struct too, and it is not in the kernel's BTF */
	struct dentry *dentry = w->dentry;
	struct vfsmount *vfsmnt = w->vfsmnt;
	struct mount *mnt = w->mnt;
	if (dentry == w->root_d && vfsmnt == w->root_m)
		return 1;
	struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
	if (dentry == mnt_root || dentry == parent) {
		struct mount *mp = BPF_CORE_READ(mnt, mnt_parent);
		if (dentry == mnt_root && mnt != mp) {
			w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			w->mnt = mp;
			w->vfsmnt = (struct vfsmount *)((__u64)mp + w->mnt_off);
			return 0;
		}
		/* Global root, or a pseudo-filesystem dentry (memfd, pipe,
		 * socket) that is its own parent: it has a name but no path;
		 * report "/name". */
		if (w->pos == PATH_MAX_B && dentry == parent && dentry != mnt_root)
			prepend(s, w, dentry);
		return 1;
	}
	if (prepend(s, w, dentry))
		return 1;
	w->dentry = parent;
	if (i == PATH_DEPTH - 1)
		w->trunc = 1;
	return 0;
}

/*
 * Canonical path of (dentry, vfsmount) the way d_path() builds it: walk
 * d_parent to the mount root, cross to the parent mount at its mountpoint,
 * stop at the task's root (so chrooted and containerised processes get the
 * path they see). Built backwards into s->path; returns the start offset
 * (the path is s->path[ret .. PATH_MAX_B)), with PATH_TRUNC set when the
 * path was too deep or too long.
 */
/* A global function (verified once per program; the walk's bpf_loop
 * callback was verified again at every path that reached it). */
__attribute__((noinline)) __u32 vg_build_path(struct scratch *s, __u64 dentry_p, __u64 vfsmnt_p)
{
	struct dentry *dentry = (struct dentry *)dentry_p;
	struct vfsmount *vfsmnt = (struct vfsmount *)vfsmnt_p;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct path_walk w = {};
	if (!s || !dentry)
		return PATH_MAX_B;
	w.dentry = dentry;
	w.vfsmnt = vfsmnt;
	w.mnt_off = bpf_core_field_offset(struct mount, mnt);
	w.mnt = (struct mount *)((__u64)vfsmnt - w.mnt_off);
	w.root_d = BPF_CORE_READ(task, fs, root.dentry);
	w.root_m = BPF_CORE_READ(task, fs, root.mnt);
	w.pos = PATH_MAX_B;
	bpf_loop(PATH_DEPTH, walk_step, &w, 0);
	return w.pos | (w.trunc ? PATH_TRUNC : 0);
}

static __always_inline __u32 build_path(struct scratch *s, struct dentry *dentry, struct vfsmount *vfsmnt)
{
	return vg_build_path(s, (__u64)dentry, (__u64)vfsmnt);
}

/* Copies a built path into the record as string idx. An empty path (the
 * root itself) is reported as "/". */
static __always_inline __u32 put_path(struct scratch *s, __u32 off, int idx, __u32 built)
{
	__u32 pos = built & ~PATH_TRUNC;
	__u32 r = room(off, STR_MAX - 1);
	if (r < 1 || pos > PATH_MAX_B)
		return off;
	__u32 len = PATH_MAX_B - pos;
	if (len == 0) {
		s->ev[off & (EV_BUF - 1)] = '/';
		set_len(s, idx, 1, 0);
		return off + 1;
	}
	int trunc = (built & PATH_TRUNC) != 0;
	if (len > r) {
		len = r; /* keep the leading components: the path stays absolute */
		trunc = 1;
	}
	len &= STR_MAX - 1;
	bpf_probe_read_kernel(&s->ev[off & (EV_BUF - 1)], len, &s->path[pos & (PATH_MAX_B - 1)]);
	set_len(s, idx, len, trunc);
	return off + len;
}

static __always_inline struct file *fd_file(int fd)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	struct file **arr = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	if (fd < 0 || (unsigned int)fd >= max)
		return NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &arr[fd]);
	return f;
}

/* What fd `fd` of the current task is: 1 a pipe or FIFO, 2 an AF_INET or
 * AF_INET6 socket, else 0. */
static __always_inline int stdio_kind(int fd)
{
	struct file *f = fd_file(fd);
	if (!f)
		return 0;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & 00170000) == 0010000)
		return 1;
	if ((mode & 00170000) != 0140000)
		return 0;
	struct socket *so = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(so, sk);
	if (!sk)
		return 0;
	__u16 fam = BPF_CORE_READ(sk, __sk_common.skc_family);
	return fam == AF_INET || fam == AF_INET6 ? 2 : 0;
}

static __always_inline __u32 file_path(struct scratch *s, struct file *f)
{
	if (!f)
		return PATH_MAX_B;
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry);
	struct vfsmount *m = BPF_CORE_READ(f, f_path.mnt);
	return build_path(s, d, m);
}

static __always_inline __u32 cwd_path(struct scratch *s)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct dentry *d = BPF_CORE_READ(t, fs, pwd.dentry);
	struct vfsmount *m = BPF_CORE_READ(t, fs, pwd.mnt);
	return build_path(s, d, m);
}

/* Writes the base path of a record as string 0: the task's working
 * directory when `cwd` is set, else the path of file `f` ("/" when there is
 * none). It holds the only dentry walk of the programs that call it: call
 * it once per program, since every inlined copy of the walk costs
 * verification time at start-up. */
static __always_inline __u32 put_base_path(struct scratch *s, __u32 off, struct file *f, int cwd)
{
	struct dentry *d = 0;
	struct vfsmount *m = 0;
	if (cwd) {
		struct task_struct *t = (struct task_struct *)bpf_get_current_task();
		d = BPF_CORE_READ(t, fs, pwd.dentry);
		m = BPF_CORE_READ(t, fs, pwd.mnt);
	} else if (f) {
		d = BPF_CORE_READ(f, f_path.dentry);
		m = BPF_CORE_READ(f, f_path.mnt);
	}
	return put_path(s, off, 0, d ? build_path(s, d, m) : PATH_MAX_B);
}

/* ---- interest: paths ---- */

/* Looks the path up in the LPM trie. `src` points at the path bytes in the
 * scratch record area. */
static __always_inline __u32 path_interest(struct scratch *s, __u32 src_off, __u32 len)
{
	if (len > VG_LPM_MAX)
		len = VG_LPM_MAX;
	if (len == 0)
		return 0;
	s->lpm.prefixlen = len * 8;
	bpf_probe_read_kernel(s->lpm.path, len, &s->ev[src_off & (EV_BUF - 1)]);
	__u32 *v = bpf_map_lookup_elem(&interest_paths, &s->lpm);
	return v ? *v : 0;
}

/* Interest of a relative name that failed to open: the key is
 * "<dir>/<name>" (clamped to the trie's key size). */
static __always_inline __u32 joined_interest(struct scratch *s, __u32 dir_off, __u32 dir_len, __u32 name_off, __u32 name_len)
{
	if (dir_len > VG_LPM_MAX - 1)
		dir_len = VG_LPM_MAX - 1;
	if (name_len > VG_LPM_MAX - 1)
		name_len = VG_LPM_MAX - 1;
	if (dir_len)
		bpf_probe_read_kernel(&s->lpm_raw[4], dir_len, &s->ev[dir_off & (EV_BUF - 1)]);
	s->lpm_raw[(4 + dir_len) & (2 * VG_LPM_MAX - 1)] = '/';
	if (name_len)
		bpf_probe_read_kernel(&s->lpm_raw[(5 + dir_len) & (2 * VG_LPM_MAX - 1)], name_len,
				      &s->ev[name_off & (EV_BUF - 1)]);
	__u32 total = dir_len + 1 + name_len;
	if (total > VG_LPM_MAX)
		total = VG_LPM_MAX;
	s->lpm.prefixlen = total * 8;
	__u32 *v = bpf_map_lookup_elem(&interest_paths, &s->lpm);
	return v ? *v : 0;
}

/* ---- dedup ---- */

#define VG_EEXIST 17

/* Returns 1 if this (process, kind, a, b) was already reported: the repeat
 * is counted in the map and per kind, and must not be emitted. */
static __always_inline void dedup_key(struct vg_dedup_key *k, __u32 kind, __u64 a, __u64 b)
{
	/* The process instance, not just its pid: mixing in the start time
	 * keeps a reused pid from inheriting an exited process's suppressions. */
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u64 start = BPF_CORE_READ(t, group_leader, start_boottime);
	k->tgid = bpf_get_current_pid_tgid() >> 32;
	k->kind = kind;
	k->a = a ^ (start * 0x9E3779B97F4A7C15ULL);
	k->b = b;
}

/* Counts a repeat of key k if it was reported before; returns 1 then. */
static __always_inline int dedup_hit(struct vg_dedup_key *k, __u32 kind)
{
	struct vg_dedup_val *v = bpf_map_lookup_elem(&dedup, k);
	if (!v)
		return 0;
	__sync_fetch_and_add(&v->count, 1);
	v->last_ns = bpf_ktime_get_boot_ns();
	count(kind, C_DEDUPED);
	return 1;
}

static __always_inline int seen_before(__u32 kind, __u64 a, __u64 b)
{
	if (!cfg_dedup)
		return 0;
	struct vg_dedup_key k = {};
	dedup_key(&k, kind, a, b);
	/* Insert first: a key not seen before (every record that is then
	 * emitted) costs one walk of its hash bucket, not a lookup and then
	 * an insert. Only a key already there (-EEXIST) is looked up to count
	 * the repeat. A full map fails with another error: report rather
	 * than suppress. */
	struct vg_dedup_val zero = {};
	if (bpf_map_update_elem(&dedup, &k, &zero, BPF_NOEXIST) != -VG_EEXIST)
		return 0;
	return dedup_hit(&k, kind);
}

struct hash_walk {
	__u64 h;
	__u32 off;
	__u32 len;
};

/* One 8-byte word of hash_bytes (a bpf_loop callback: verified once; the
 * unrolled loop was most of the open program's verification time). */
static long hash_step(__u32 i, void *ctx)
{
	struct hash_walk *w = ctx;
	struct scratch *s = get_scratch();
	__u32 done = i * 8;
	if (!s || done >= w->len)
		return 1;
	/* a load from the map value, not a probe read (a helper call) */
	__u64 v;
	__builtin_memcpy(&v, &s->ev[(w->off + done) & (EV_BUF - 1)], 8);
	__u32 left = w->len - done;
	if (left < 8)
		v &= (1ULL << ((left & 7) * 8)) - 1;
	w->h = (w->h ^ v) * 0x100000001b3ULL;
	return 0;
}

/* FNV-1a over 8-byte words of the (bounded) bytes at `off` of the task
 * slot's record area (callers hold get_scratch()'s slot). */
static __always_inline __u64 hash_bytes(__u32 off, __u32 len)
{
	struct hash_walk w = {
		.h = 0xcbf29ce484222325ULL ^ len,
		.off = off,
		.len = len > VG_LPM_MAX ? VG_LPM_MAX : len,
	};
	bpf_loop(VG_LPM_MAX / 8, hash_step, &w, 0);
	return w.h;
}

/* argv of a new image as string 1: read from the new mm's argument area,
 * which exec has just written (so its pages are present, unlike the user
 * pointer seen at sys_enter_execve). NUL-separated, final NUL dropped. */
static __always_inline __u32 put_argv(struct scratch *s, __u32 off, struct mm_struct *mm)
{
	unsigned long as = BPF_CORE_READ(mm, arg_start);
	unsigned long ae = BPF_CORE_READ(mm, arg_end);
	__u32 r = room(off, ARGV_MAX - 1);
	if (ae <= as || r == 0)
		return off;
	__u64 len = ae - as;
	int trunc = 0;
	if (len > r) {
		len = r;
		trunc = 1;
	}
	if (bpf_probe_read_user(&s->ev[off & (EV_BUF - 1)], len & (ARGV_MAX - 1), (void *)as) != 0)
		return off;
	len &= ARGV_MAX - 1;
	if (len > 0 && !trunc && s->ev[(off + len - 1) & (EV_BUF - 1)] == 0)
		len--;
	set_len(s, 1, len, trunc);
	return off + len;
}

/* ---- the environment at exec ---- */

/* The environment area is walked entry by entry here and only the entries
 * that start one of the kept names are copied into the record (a real
 * environment is a few KiB of which a record needs a few bytes, if any).
 * Each step reads one entry (or a 4095-byte piece of a longer one) with
 * bpf_probe_read_user_str, which finds its end in native code; at most
 * VG_ENV_STEPS steps, past them the rest is unseen and flagged. */
#define ENV_NONE 0xffffffffu

#define W8(a, b, c, d, e, f, g, h)                                                               \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 | (__u64)(e) << 32 | \
	 (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)

/* Whether the entry whose first 8 bytes are `v` may be a kept variable:
 * its first 8 bytes (4 for `ENV=`) are those of a kept name (decode.rs
 * ENV_NAMES; the engine compares the whole name). */
static __always_inline int env_candidate(__u64 v)
{
	if ((v & 0xffffffffULL) == W8('E', 'N', 'V', '=', 0, 0, 0, 0))
		return 1;
	switch (v) {
	case W8('L', 'D', '_', 'P', 'R', 'E', 'L', 'O'): /* LD_PRELOAD */
	case W8('L', 'D', '_', 'L', 'I', 'B', 'R', 'A'): /* LD_LIBRARY_PATH */
	case W8('L', 'D', '_', 'A', 'U', 'D', 'I', 'T'): /* LD_AUDIT */
	case W8('H', 'I', 'S', 'T', 'F', 'I', 'L', 'E'): /* HISTFILE, HISTFILESIZE */
	case W8('H', 'I', 'S', 'T', 'C', 'O', 'N', 'T'): /* HISTCONTROL */
	case W8('H', 'I', 'S', 'T', 'S', 'I', 'Z', 'E'): /* HISTSIZE */
	case W8('H', 'I', 'S', 'T', 'I', 'G', 'N', 'O'): /* HISTIGNORE */
	case W8('P', 'R', 'O', 'M', 'P', 'T', '_', 'C'): /* PROMPT_COMMAND */
	case W8('B', 'A', 'S', 'H', '_', 'E', 'N', 'V'): /* BASH_ENV */
	case W8('P', 'Y', 'T', 'H', 'O', 'N', 'P', 'A'): /* PYTHONPATH */
	case W8('P', 'Y', 'T', 'H', 'O', 'N', 'S', 'T'): /* PYTHONSTARTUP */
	case W8('P', 'Y', 'T', 'H', 'O', 'N', 'H', 'O'): /* PYTHONHOME */
	case W8('P', 'E', 'R', 'L', '5', 'L', 'I', 'B'): /* PERL5LIB */
	case W8('P', 'E', 'R', 'L', '5', 'O', 'P', 'T'): /* PERL5OPT */
	case W8('R', 'U', 'B', 'Y', 'O', 'P', 'T', '='): /* RUBYOPT */
	case W8('N', 'O', 'D', 'E', '_', 'O', 'P', 'T'): /* NODE_OPTIONS */
		return 1;
	}
	return 0;
}

struct env_scan {
	__u64 start; /* user address of the area */
	__u64 len;   /* its length */
	__u64 pos;   /* offset of the next read */
	__u32 off;   /* record write offset */
	__u32 cont;  /* the next read continues a long entry */
	__u32 cut;   /* a kept entry was cut */
	__u32 _pad;
};
/* The walk's state lives in a map value, not on the stack: the verifier
 * then sees its fields as unknown on every step and verifies the callback
 * once, instead of following each step's exact offsets to its limit. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct env_scan);
} env_state SEC(".maps");

/* One entry, or one piece of a long one (a bpf_loop callback). The piece
 * is read into s->path (free once the paths are in the record). Returns 1
 * to stop. */
static long env_step(__u32 i, void *ctx)
{
	__u32 k = 0;
	struct env_scan *e = bpf_map_lookup_elem(&env_state, &k);
	if (!e || e->pos >= e->len)
		return 1;
	struct scratch *s = get_scratch();
	if (!s)
		return 1;
	long n = bpf_probe_read_user_str(s->path, STR_MAX, (void *)(e->start + e->pos));
	if (n <= 0)
		return 1;
	int whole = n < STR_MAX; /* the NUL was found within the piece */
	if (!e->cont) {
		__u64 v = *(__u64 *)s->path;
		if (n > 4 && env_candidate(v)) {
			__u32 r = room(e->off, STR_MAX - 1);
			__u32 c = n;
			if (c > r) {
				c = r;
				e->cut = 1;
			}
			if (!whole)
				e->cut = 1;
			barrier_var(c);
			c &= STR_MAX - 1;
			if (c >= 2 && bpf_probe_read_kernel(&s->ev[e->off & (EV_BUF - 1)], c, s->path) == 0) {
				/* a cut entry still ends in NUL (and is flagged) */
				s->ev[(e->off + c - 1) & (EV_BUF - 1)] = 0;
				e->off += c;
			}
		}
	}
	e->cont = !whole;
	e->pos += whole ? n : n - 1;
	return 0;
}

/* The new image's environment (VG_EXEC_ENV): walked in the new mm like
 * argv, the kept entries appended. */
static __always_inline __u32 put_env(struct scratch *s, __u32 off, struct mm_struct *mm, struct vg_exec *b)
{
	unsigned long es = BPF_CORE_READ(mm, env_start);
	unsigned long ee = BPF_CORE_READ(mm, env_end);
	if (ee <= es)
		return off;
	__u32 k = 0;
	struct env_scan *e = bpf_map_lookup_elem(&env_state, &k);
	if (!e)
		return off;
	e->start = es;
	e->len = ee - es;
	e->pos = 0;
	e->off = off;
	e->cont = 0;
	e->cut = 0;
	bpf_loop(VG_ENV_STEPS, env_step, NULL, 0);
	if (e->pos == 0)
		return off;
	b->exec_flags |= VG_EXEC_ENV;
	if (e->cut || e->pos < e->len)
		b->exec_flags |= VG_EXEC_ENV_TRUNC;
	__u32 end = e->off;
	if (end < off || end > EV_BUF)
		return off;
	return end;
}

/* The executable's identity as stat(2) reports it (the engine's hash cache
 * key). CO-RE: the split timestamp fields are 6.11+; older kernels have
 * struct timespec64 fields (ctime as __i_ctime on 6.6-6.10). The ctime's
 * nanoseconds carry the multigrain "queried" flag in a high bit (6.13+). */
struct inode___ts {
	struct timespec64 i_mtime;
	struct timespec64 i_ctime;
} __attribute__((preserve_access_index));
struct inode___ts66 {
	struct timespec64 i_mtime;
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));

static __always_inline void exec_identity(struct vg_exec *b, struct inode *ino)
{
	b->size = BPF_CORE_READ(ino, i_size);
	if (bpf_core_field_exists(ino->i_mtime_sec)) {
		b->mtime_sec = BPF_CORE_READ(ino, i_mtime_sec);
		b->mtime_nsec = BPF_CORE_READ(ino, i_mtime_nsec);
		b->ctime_sec = BPF_CORE_READ(ino, i_ctime_sec);
		b->ctime_nsec = BPF_CORE_READ(ino, i_ctime_nsec) & 0x3fffffff;
	} else if (bpf_core_field_exists(((struct inode___ts66 *)ino)->__i_ctime)) {
		struct inode___ts66 *t = (void *)ino;
		b->mtime_sec = BPF_CORE_READ(t, i_mtime.tv_sec);
		b->mtime_nsec = BPF_CORE_READ(t, i_mtime.tv_nsec);
		b->ctime_sec = BPF_CORE_READ(t, __i_ctime.tv_sec);
		b->ctime_nsec = BPF_CORE_READ(t, __i_ctime.tv_nsec);
	} else if (bpf_core_field_exists(((struct inode___ts *)ino)->i_ctime)) {
		struct inode___ts *t = (void *)ino;
		b->mtime_sec = BPF_CORE_READ(t, i_mtime.tv_sec);
		b->mtime_nsec = BPF_CORE_READ(t, i_mtime.tv_nsec);
		b->ctime_sec = BPF_CORE_READ(t, i_ctime.tv_sec);
		b->ctime_nsec = BPF_CORE_READ(t, i_ctime.tv_nsec);
	} else {
		/* unknown layout: no times tells the engine to open the file */
		b->mtime_sec = b->ctime_sec = 0;
		b->mtime_nsec = b->ctime_nsec = 0;
	}
}

/* ====================== process lifecycle ====================== */

/* Kill on match. kill_send: sends SIGKILL to the current task for action
 * `act` (VG_KILL_ACT_*); returns 0 (no action), 1 killed, 2 would kill
 * (monitor mode), 3 refused (pid 1, a kernel thread or vigil's supervisor;
 * vigil itself returned earlier through is_self()), 4 failed. */
static __always_inline int kill_send(__u32 act)
{
	if (!act)
		return 0;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u32 k = VG_KILL_CFG_SUPERVISOR;
	__u32 *m = bpf_map_lookup_elem(&kill_cfg, &k);
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	if (pid == 1 || (BPF_CORE_READ(t, flags) & 0x00200000 /* PF_KTHREAD */) || (m && *m && *m == pid))
		return 3;
	if (act == VG_KILL_ACT_WOULD)
		return 2;
	return bpf_send_signal(9 /* SIGKILL */) == 0 ? 1 : 4;
}

/* The action of the longest kill prefix (or exact path) of the path at
 * s->ev[str0 .. str0 + len) in `map`; 0 when none. */
static __always_inline __u32 kill_path_act(struct scratch *s, void *map, __u32 str0, __u32 len)
{
	if (len == 0)
		return 0;
	__u32 full = len;
	if (len > VG_LPM_MAX)
		len = VG_LPM_MAX;
	s->lpm.prefixlen = len * 8;
	bpf_probe_read_kernel(s->lpm.path, len, &s->ev[str0 & (EV_BUF - 1)]);
	__u32 *m = bpf_map_lookup_elem(map, &s->lpm);
	if (!m)
		return 0;
	if ((*m & VG_KILL_EXACT) && (*m >> 16) != full)
		return 0;
	return *m & VG_KILL_ACT_MASK;
}

/* hdr.flags for kill_send's result. */
static __always_inline __u16 kill_hdr_flags(int r)
{
	return r == 1 ? VG_F_KILLED : r == 2 ? VG_F_WOULD_KILL : r == 3 ? VG_F_KILL_REFUSED : r == 4 ? VG_F_KILL_FAILED : 0;
}

/* At exec: the new image has not run an instruction of its own yet (the
 * tracepoint fires before the return to user space), so a SIGKILL sent
 * here is delivered first. Conditions: a memfd, an executable below a kill
 * prefix, an executable in a world-writable directory. */
static __always_inline void exec_response(struct scratch *s, struct vg_hdr *h, struct vg_exec *b, struct file *f, __u32 str0, __u32 len)
{
	__u32 act = 0, k = VG_KILL_CFG_MEMFD;
	__u32 *m;
	if (BPF_CORE_READ(f, f_path.dentry, d_parent, d_inode, i_mode) & 0002 /* S_IWOTH */)
		b->exec_flags |= VG_EXEC_WWDIR;
	if (b->exec_flags & VG_EXEC_MEMFD) {
		m = bpf_map_lookup_elem(&kill_cfg, &k);
		if (m)
			act = *m;
	}
	if (!act && (b->exec_flags & VG_EXEC_WWDIR)) {
		k = VG_KILL_CFG_WWDIR;
		m = bpf_map_lookup_elem(&kill_cfg, &k);
		if (m)
			act = *m;
	}
	if (!act)
		act = kill_path_act(s, &kill_exec_paths, str0, len);
	int r = kill_send(act);
	b->exec_flags |= r == 1 ? VG_EXEC_KILLED : r == 2 ? VG_EXEC_WOULD_KILL : r == 3 ? VG_EXEC_KILL_REFUSED : r == 4 ? VG_EXEC_KILL_FAILED : 0;
}

/* At the exit of a successful open of a kill path: the task never returns
 * to user space with the descriptor. */
static __always_inline int open_kills_loaded(void)
{
	__u32 k = VG_KILL_CFG_OPEN;
	__u32 *on = bpf_map_lookup_elem(&kill_cfg, &k);
	return on && *on;
}

static __always_inline __u16 open_response(struct scratch *s, __u32 str0, __u32 len)
{
	if (!open_kills_loaded())
		return 0; /* no open kill rule: no second trie lookup per open */
	return kill_hdr_flags(kill_send(kill_path_act(s, &kill_open_paths, str0, len)));
}

/* At the exit of a connect to a kill port (whatever its result). */
static __always_inline __u16 connect_response(__u16 port)
{
	__u32 *m = bpf_map_lookup_elem(&kill_ports, &port);
	return kill_hdr_flags(kill_send(m ? *m : 0));
}

static __always_inline int do_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (is_self())
		return 0;
	{
		struct inode *li = BPF_CORE_READ(bprm, file, f_inode);
		learn_exec(BPF_CORE_READ(li, i_ino), BPF_CORE_READ(li, i_sb, s_dev));
	}
	if (!kind_on(VG_EXEC)) {
		count(VG_EXEC, C_FILTERED);
		return 0;
	}
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	__u32 off = begin(s, VG_EXEC, sizeof(struct vg_exec));
	struct vg_exec *b = (struct vg_exec *)&s->ev[sizeof(struct vg_hdr)];
	struct file *f = BPF_CORE_READ(bprm, file);
	struct inode *ino = BPF_CORE_READ(f, f_inode);
	b->ino = BPF_CORE_READ(ino, i_ino);
	exec_identity(b, ino);
	b->dev = BPF_CORE_READ(ino, i_sb, s_dev);
	b->mode = BPF_CORE_READ(ino, i_mode);
	b->file_uid = BPF_CORE_READ(ino, i_uid.val);
	b->argc = BPF_CORE_READ(bprm, argc);
	b->old_pid = old_pid;
	b->exec_flags = 0;
	if (BPF_CORE_READ(ino, __i_nlink) == 0)
		b->exec_flags |= VG_EXEC_UNLINKED;
	struct vg_hdr *h = (struct vg_hdr *)s->ev;
	if ((b->mode & S_ISUID) && h->euid != h->uid)
		b->exec_flags |= VG_EXEC_SETUID;
	if ((b->mode & S_ISGID) && h->egid != h->gid)
		b->exec_flags |= VG_EXEC_SETGID;
	{
		int in = stdio_kind(0);
		if (in == 1)
			b->exec_flags |= VG_EXEC_STDIN_PIPE;
		else if (in == 2)
			b->exec_flags |= VG_EXEC_STDIN_INET;
		if (stdio_kind(1) == 2)
			b->exec_flags |= VG_EXEC_STDOUT_INET;
	}
	{
		char pfx[6] = {};
		const unsigned char *nm = BPF_CORE_READ(f, f_path.dentry, d_name.name);
		bpf_probe_read_kernel(pfx, sizeof(pfx), nm);
		if (pfx[0] == 'm' && pfx[1] == 'e' && pfx[2] == 'm' && pfx[3] == 'f' && pfx[4] == 'd' && pfx[5] == ':')
			b->exec_flags |= VG_EXEC_MEMFD;
	}
	/* 0: executable, canonical */
	__u32 str0 = off;
	off = put_path(s, off, 0, file_path(s, f));
	exec_response(s, h, b, f, str0, off - str0);
	/* 1: argv */
	off = put_argv(s, off, BPF_CORE_READ(p, mm));
	/* 2: cwd */
	off = put_path(s, off, 2, cwd_path(s));
	/* 3: filename as passed */
	off = put_kernel_str(s, off, 3, BPF_CORE_READ(bprm, filename), STR_MAX - 1);
	/* then the environment */
	off = put_env(s, off, BPF_CORE_READ(p, mm), b);
	emit(s, off);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(vg_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return do_exec(p, old_pid, bprm);
}

/* Fallback where tp_btf is unavailable: the classic tracepoint has no bprm,
 * so the executable comes from the new mm's exe_file. */
SEC("tracepoint/sched/sched_process_exec")
int vg_exec_tp(struct trace_event_raw_sched_process_exec *ctx)
{
	if (is_self())
		return 0;
	{
		struct task_struct *lt = (struct task_struct *)bpf_get_current_task();
		struct inode *li = BPF_CORE_READ(lt, mm, exe_file, f_inode);
		learn_exec(BPF_CORE_READ(li, i_ino), BPF_CORE_READ(li, i_sb, s_dev));
	}
	if (!kind_on(VG_EXEC)) {
		count(VG_EXEC, C_FILTERED);
		return 0;
	}
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	struct task_struct *p = (struct task_struct *)bpf_get_current_task();
	__u32 off = begin(s, VG_EXEC, sizeof(struct vg_exec));
	struct vg_exec *b = (struct vg_exec *)&s->ev[sizeof(struct vg_hdr)];
	struct file *f = BPF_CORE_READ(p, mm, exe_file);
	b->ino = BPF_CORE_READ(f, f_inode, i_ino);
	exec_identity(b, BPF_CORE_READ(f, f_inode));
	b->dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
	b->mode = BPF_CORE_READ(f, f_inode, i_mode);
	b->file_uid = BPF_CORE_READ(f, f_inode, i_uid.val);
	b->argc = 0;
	b->exec_flags = 0;
	b->old_pid = ctx->old_pid;
	off = put_path(s, off, 0, file_path(s, f));
	off = put_argv(s, off, BPF_CORE_READ(p, mm));
	off = put_path(s, off, 2, cwd_path(s));
	off = put_env(s, off, BPF_CORE_READ(p, mm), b);
	emit(s, off);
	return 0;
}

static __always_inline __u32 userns_of(struct task_struct *t)
{
	return BPF_CORE_READ(t, cred, user_ns, ns.inum);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(vg_fork, struct task_struct *parent, struct task_struct *child)
{
	if (is_self())
		return 0;
	/* threads are not processes */
	if (child->pid != child->tgid)
		return 0;
	{
		/* a learning process's children learn until they exec */
		__u32 ptgid = parent->tgid;
		__u32 *slot = bpf_map_lookup_elem(&learn_tgid, &ptgid);
		if (slot) {
			__u32 v = *slot, ctgid = child->tgid;
			bpf_map_update_elem(&learn_tgid, &ctgid, &v, BPF_ANY);
		}
	}
	if (!kind_on(VG_FORK)) {
		count(VG_FORK, C_FILTERED);
		return 0;
	}
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	__u32 off = begin(s, VG_FORK, sizeof(struct vg_fork));
	struct vg_hdr *h = (struct vg_hdr *)s->ev;
	struct vg_fork *b = (struct vg_fork *)&s->ev[sizeof(struct vg_hdr)];
	b->child_start_ns = child->start_boottime;
	b->child_pid = child->tgid;
	active_pidns(child, &b->child_pidns, &b->child_ns_pid);
	b->child_mntns = child->nsproxy->mnt_ns->ns.inum;
	b->child_netns = child->nsproxy->net_ns->ns.inum;
	__u32 f = 0;
	if (b->child_pidns != h->pidns)
		f |= CLONE_NEWPID;
	if (b->child_mntns != h->mntns)
		f |= CLONE_NEWNS;
	if (b->child_netns != h->netns)
		f |= CLONE_NEWNET;
	if (child->nsproxy->uts_ns->ns.inum != parent->nsproxy->uts_ns->ns.inum)
		f |= CLONE_NEWUTS;
	if (child->nsproxy->ipc_ns->ns.inum != parent->nsproxy->ipc_ns->ns.inum)
		f |= CLONE_NEWIPC;
	if (child->nsproxy->cgroup_ns->ns.inum != parent->nsproxy->cgroup_ns->ns.inum)
		f |= CLONE_NEWCGROUP;
	if (child->nsproxy->time_ns->ns.inum != parent->nsproxy->time_ns->ns.inum)
		f |= CLONE_NEWTIME;
	if (userns_of(child) != userns_of(parent))
		f |= CLONE_NEWUSER;
	b->ns_flags = f;
	emit(s, off);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(vg_exit, struct task_struct *p, bool group_dead)
{
	__u64 pt = bpf_get_current_pid_tgid();
	/* (a thread dying mid-syscall: its stash goes with its task storage) */
	if ((pt >> 32) == cfg_self_tgid)
		return 0;
	if (!group_dead)
		return 0;
	{
		__u32 tgid = pt >> 32;
		bpf_map_delete_elem(&learn_tgid, &tgid);
	}
	if (is_self_helper())
		return 0;
	if (!kind_on(VG_EXIT)) {
		count(VG_EXIT, C_FILTERED);
		return 0;
	}
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	__u32 off = begin(s, VG_EXIT, sizeof(struct vg_exit));
	struct vg_exit *b = (struct vg_exit *)&s->ev[sizeof(struct vg_hdr)];
	/* for exit_group() the group's code is in signal->group_exit_code */
	int code = p->exit_code;
	int gcode = p->signal->group_exit_code;
	b->status = gcode ? gcode : code;
	b->_pad = 0;
	emit(s, off);
	return 0;
}

/* An fd that is an AF_INET/AF_INET6 SOCK_DGRAM socket (checked through the
 * inode type first: private_data is a struct socket only for sockets). */
#define VG_S_IFMT 00170000
#define VG_S_IFSOCK 0140000
#define VG_SOCK_DGRAM 2
static __always_inline struct sock *inet_dgram_sock(struct file *f)
{
	if (!f)
		return NULL;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & VG_S_IFMT) != VG_S_IFSOCK)
		return NULL;
	struct socket *so = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(so, sk);
	if (!sk || BPF_CORE_READ(sk, sk_type) != VG_SOCK_DGRAM)
		return NULL;
	__u16 fam = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (fam != AF_INET && fam != AF_INET6)
		return NULL;
	return sk;
}

static __always_inline int inet_dgram_fd(int fd)
{
	return inet_dgram_sock(fd_file(fd)) != NULL;
}

/* ====================== syscalls ====================== */

SEC("tracepoint/syscalls/sys_enter_openat")
int vg_sys_enter(struct trace_event_raw_sys_enter *ctx)
{
	if (is_self())
		return 0;
	__u32 id = (__u32)ctx->id;
	__u32 *ks = bpf_map_lookup_elem(&interest_syscalls, &id);
	if (!ks || !*ks)
		return 0;
	__u32 kind = *ks & 0xffff;
	if (!kind_on(kind)) {
		count(kind, C_FILTERED);
		return 0;
	}
	if (is_self_helper())
		return 0;
	struct pending *sp = pending_slot(1);
	if (!sp) {
		count(kind, C_DROPPED);
		return 0;
	}
	struct pending p = {};
	p.id = ctx->id;
	p.kind_sys = *ks;
	p.live = 1;
	/* A helper read, not ctx->args[i]: each sys_enter_* event is only as
	 * long as its syscall's arguments, and a program whose direct ctx
	 * accesses reach past that is refused at attach (EACCES). Bytes past a
	 * short event are unused for that syscall. */
	bpf_probe_read_kernel(p.args, sizeof(p.args), ctx->args);
	if (kind == VG_UNSHARE || kind == VG_SETNS) {
		struct task_struct *t = bpf_get_current_task_btf();
		p.old_mntns = t->nsproxy->mnt_ns->ns.inum;
		p.old_netns = t->nsproxy->net_ns->ns.inum;
		p.old_pidns_children = t->nsproxy->pid_ns_for_children->ns.inum;
	}
	*sp = p;
	return 0;
}

/* Takes the stash of this thread's syscall; NULL if none or not this one. */
static __always_inline int take_pending(struct trace_event_raw_sys_exit *ctx, struct pending *out)
{
	struct pending *p = pending_slot(0);
	if (!p || !p->live)
		return 0;
	*out = *p;
	p->live = 0;
	return out->id == ctx->id;
}

/* Common start of a sys_exit program: takes this thread's stashed
 * arguments (p), starts a record in scratch (s) with its header filled,
 * and points b at its body of type `type`; strings go at `off`. */
#define SYS_EXIT_RECORD(kind, type)                     \
	struct pending p;                               \
	if (!take_pending(ctx, &p))                     \
		return 0;                               \
	struct scratch *s = get_scratch();              \
	if (!s)                                         \
		return 0;                               \
	__u32 off = begin(s, kind, sizeof(type));       \
	type *b = (type *)&s->ev[sizeof(struct vg_hdr)]

/* ---- open ---- */

static __always_inline int wants_write(__u32 flags)
{
	return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int vg_exit_open(struct trace_event_raw_sys_exit *ctx)
{
	struct pending p;
	if (!take_pending(ctx, &p))
		return 0;
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	__u32 vsys = p.kind_sys >> 16;
	long ret = ctx->ret;
	int dfd = AT_FDCWD;
	const char *name;
	__u32 flags = 0, mode = 0;
	switch (vsys) {
	case VG_SYS_OPEN:
		name = (const char *)p.args[0];
		flags = p.args[1];
		mode = p.args[2];
		break;
	case VG_SYS_CREAT:
		name = (const char *)p.args[0];
		flags = O_CREAT | O_WRONLY | O_TRUNC;
		mode = p.args[1];
		break;
	case VG_SYS_OPENAT2: {
		struct open_how how = {};
		dfd = p.args[0];
		name = (const char *)p.args[1];
		bpf_probe_read_user(&how, sizeof(how), (void *)p.args[2]);
		flags = how.flags;
		mode = how.mode;
		break;
	}
	default:
		dfd = p.args[0];
		name = (const char *)p.args[1];
		flags = p.args[2];
		mode = p.args[3];
		break;
	}
	vsys = LAUNDER(s, 0, vsys);
	dfd = LAUNDER(s, 1, dfd);
	name = LAUNDER(s, 2, name);
	flags = LAUNDER(s, 3, flags);
	mode = LAUNDER(s, 4, mode);
	__u32 off = begin_deferred(s, sizeof(struct vg_open));
	struct vg_open *b = (struct vg_open *)&s->ev[sizeof(struct vg_hdr)];
	b->ret = ret;
	flags &= ~VG_OPEN_CREATED;
	b->flags = flags;
	b->mode = mode;
	b->syscall = vsys;
	b->dfd = dfd;
	b->foreign_mntns = 0;
	b->ino = 0;
	b->dev = 0;
	__u32 str0 = off;
	__u64 ka, kb;
	__u32 interest;
	struct file *wf = NULL;
	/* The opened file, or for a failed open the base directory of a
	 * relative name (dirfd or cwd): one put_base_path call. */
	struct file *bf = NULL;
	int base = 0, cwd = 0;
	char first = 0;
	if (ret >= 0) {
		bf = wf = fd_file(ret);
		b->ino = BPF_CORE_READ(bf, f_inode, i_ino);
		b->dev = BPF_CORE_READ(bf, f_inode, i_sb, s_dev);
		/* FMODE_CREATED (1 << 20): this open created the file */
		if ((flags & O_CREAT) && (BPF_CORE_READ(bf, f_mode) & (1u << 20)))
			b->flags |= VG_OPEN_CREATED;
		/* A read-only open of a file this process already had reported
		 * is a repeat whatever its path (the dedup key is the inode, not
		 * the name), so it ends here, before the directory walk and the
		 * trie lookups. Not with an open kill rule loaded (its path
		 * decides) and not for write access (it arms write_watch). */
		if (cfg_dedup && !wants_write(flags) && !open_kills_loaded()) {
			struct vg_dedup_key k = {};
			dedup_key(&k, VG_OPEN, b->ino, ((__u64)b->dev << 32) | flags);
			if (dedup_hit(&k, VG_OPEN))
				return 0;
		}
		base = 1;
	} else {
		bpf_probe_read_user(&first, 1, name);
		if (first != '/') {
			base = 1;
			cwd = dfd == AT_FDCWD;
			if (!cwd)
				bf = fd_file(dfd);
		}
	}
	if (base)
		off = put_base_path(s, off, bf, cwd);
	off = LAUNDER(s, 5, off);
	__u16 killf = 0;
	if (ret >= 0) {
		killf = open_response(s, str0, off - str0);
		interest = path_interest(s, str0, off - str0);
		/* below a success-only prefix a successful open is reported */
		if (interest == VG_PATH_REPORT_OK)
			interest = VG_PATH_REPORT;
		ka = b->ino;
		kb = ((__u64)b->dev << 32) | flags;
	} else {
		/* failed: base directory (relative names only) + raw name */
		__u32 str1 = off;
		off = put_user_str(s, off, 1, name, STR_MAX - 1);
		/* interest on the absolute name, else on the base directory */
		if (first == '/')
			interest = path_interest(s, str1, off - str1);
		else
			interest = joined_interest(s, str0, str1 - str0, str1, off - str1);
		/* below a success-only prefix no rule wants a failed open */
		if (interest == VG_PATH_REPORT_OK)
			interest = 0;
		ka = 0; /* the name's hash, once the open is known to be wanted */
		kb = (1ULL << 63) | ((__u64)(-ret) << 32) | flags;
	}
	/* an open for writing below a report path: its first write is reported */
	if (wf && interest == VG_PATH_REPORT && wants_write(flags)) {
		__u64 k = (__u64)wf;
		__u64 ino = b->ino;
		bpf_map_update_elem(&write_watch, &k, &ino, BPF_ANY);
	}
	if (!killf && (interest == VG_PATH_IGNORE || (interest != VG_PATH_REPORT && !(cfg_open_writes && wants_write(flags))))) {
		count(VG_OPEN, C_FILTERED);
		return 0;
	}
	/* A truncating open below a report path erases what the file held
	 * each time (`: > /var/log/messages` twice from one shell, after the
	 * shell created or appended to it): never a repeat to suppress. */
	int truncates = ret >= 0 && (flags & O_TRUNC) && interest == VG_PATH_REPORT;
	if (ret < 0)
		ka = hash_bytes(str0, off - str0);
	if (!killf && !truncates && seen_before(VG_OPEN, ka, kb))
		return 0;
	if (wf) {
		/* A file whose mount belongs to another mount namespace was
		 * reached through /proc/PID/root (or cwd, or a descriptor from
		 * another namespace): report that namespace and the name as
		 * passed, which the canonical path no longer shows. */
		struct mount *m = (struct mount *)((void *)BPF_CORE_READ(wf, f_path.mnt) -
						   bpf_core_field_offset(struct mount, mnt));
		__u32 fns = BPF_CORE_READ(m, mnt_ns, ns.inum);
		struct task_struct *t = bpf_get_current_task_btf();
		if (fns && fns != t->nsproxy->mnt_ns->ns.inum) {
			b->foreign_mntns = fns;
			off = put_user_str(s, off, 1, name, STR_MAX - 1);
		}
	}
	fill_hdr((struct vg_hdr *)s->ev, VG_OPEN);
	((struct vg_hdr *)s->ev)->flags |= killf;
	emit_to(s, off, !killf && interest != VG_PATH_REPORT);
	return 0;
}

/* ---- file changes without an open ---- */

SEC("tracepoint/syscalls/sys_exit_unlinkat")
int vg_exit_fchange(struct trace_event_raw_sys_exit *ctx)
{
	struct pending p;
	if (!take_pending(ctx, &p))
		return 0;
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	__u32 vsys = p.kind_sys >> 16;
	int dfd = AT_FDCWD, dfd2 = AT_FDCWD, fd = -1;
	const char *name = 0, *name2 = 0, *target = 0;
	__u32 flags = 0, mode = 0, uid = -1, gid = -1;
	__u64 length = 0;
	int quiet = 0; /* frequent changes: only below report paths */
	const void *times = 0;
	int tkind = -1; /* utimes family: 0 timespec[2], 1 timeval[2], 2 utimbuf */
	switch (vsys) {
	case VG_SYS_RENAME:
		name2 = (const char *)p.args[0];
		name = (const char *)p.args[1];
		break;
	case VG_SYS_RENAMEAT:
	case VG_SYS_RENAMEAT2:
		dfd2 = p.args[0];
		name2 = (const char *)p.args[1];
		dfd = p.args[2];
		name = (const char *)p.args[3];
		flags = vsys == VG_SYS_RENAMEAT2 ? p.args[4] : 0;
		break;
	case VG_SYS_UNLINK:
	case VG_SYS_RMDIR:
		name = (const char *)p.args[0];
		quiet = 1;
		break;
	case VG_SYS_UNLINKAT:
		dfd = p.args[0];
		name = (const char *)p.args[1];
		flags = p.args[2];
		quiet = 1;
		break;
	case VG_SYS_TRUNCATE:
		name = (const char *)p.args[0];
		length = p.args[1];
		quiet = 1;
		break;
	case VG_SYS_FTRUNCATE:
		fd = p.args[0];
		length = p.args[1];
		quiet = 1;
		break;
	case VG_SYS_CHMOD:
		name = (const char *)p.args[0];
		mode = p.args[1];
		break;
	case VG_SYS_FCHMOD:
		fd = p.args[0];
		mode = p.args[1];
		break;
	case VG_SYS_FCHMODAT:
	case VG_SYS_FCHMODAT2:
		dfd = p.args[0];
		name = (const char *)p.args[1];
		mode = p.args[2];
		flags = vsys == VG_SYS_FCHMODAT2 ? p.args[3] : 0;
		break;
	case VG_SYS_CHOWN:
	case VG_SYS_LCHOWN:
		name = (const char *)p.args[0];
		uid = p.args[1];
		gid = p.args[2];
		break;
	case VG_SYS_FCHOWN:
		fd = p.args[0];
		uid = p.args[1];
		gid = p.args[2];
		break;
	case VG_SYS_FCHOWNAT:
		dfd = p.args[0];
		name = (const char *)p.args[1];
		uid = p.args[2];
		gid = p.args[3];
		flags = p.args[4];
		break;
	case VG_SYS_LINK:
		name2 = (const char *)p.args[0];
		name = (const char *)p.args[1];
		break;
	case VG_SYS_LINKAT:
		dfd2 = p.args[0];
		name2 = (const char *)p.args[1];
		dfd = p.args[2];
		name = (const char *)p.args[3];
		flags = p.args[4];
		break;
	case VG_SYS_SYMLINK:
		target = (const char *)p.args[0];
		name = (const char *)p.args[1];
		break;
	case VG_SYS_SYMLINKAT:
		target = (const char *)p.args[0];
		dfd = p.args[1];
		name = (const char *)p.args[2];
		break;
	case VG_SYS_MKDIR:
		name = (const char *)p.args[0];
		mode = p.args[1];
		quiet = 1;
		break;
	case VG_SYS_MKDIRAT:
		dfd = p.args[0];
		name = (const char *)p.args[1];
		mode = p.args[2];
		quiet = 1;
		break;
	case VG_SYS_MKNOD:
		name = (const char *)p.args[0];
		mode = p.args[1];
		length = p.args[2]; /* dev */
		break;
	case VG_SYS_MKNODAT:
		dfd = p.args[0];
		name = (const char *)p.args[1];
		mode = p.args[2];
		length = p.args[3]; /* dev */
		break;
	case VG_SYS_UTIMENSAT:
		dfd = p.args[0];
		name = (const char *)p.args[1];
		times = (const void *)p.args[2];
		flags = p.args[3];
		tkind = 0;
		break;
	case VG_SYS_FUTIMESAT:
		dfd = p.args[0];
		name = (const char *)p.args[1];
		times = (const void *)p.args[2];
		tkind = 1;
		break;
	case VG_SYS_UTIMES:
		name = (const char *)p.args[0];
		times = (const void *)p.args[1];
		tkind = 1;
		break;
	case VG_SYS_UTIME:
		name = (const char *)p.args[0];
		times = (const void *)p.args[1];
		tkind = 2;
		break;
	default:
		return 0;
	}
	if (tkind >= 0) {
		/* futimens(fd) is utimensat(fd, NULL): the file is the fd */
		if (!name) {
			if (dfd < 0)
				return 0;
			fd = dfd;
			dfd = AT_FDCWD;
		}
		__s64 t[4] = {};
		if (times) {
			if (tkind == 2) {
				bpf_probe_read_user(t, 16, times);
				t[2] = t[1];
				t[1] = 0;
			} else {
				bpf_probe_read_user(t, sizeof(t), times);
			}
			/* UTIME_NOW = (1 << 30) - 1, UTIME_OMIT = (1 << 30) - 2 */
			if (tkind == 0 && t[1] == ((1 << 30) - 2))
				mode |= VG_UTIME_ATIME_OMIT;
			else if (!(tkind == 0 && t[1] == ((1 << 30) - 1)))
				mode |= VG_UTIME_ATIME_SET;
			if (tkind == 0 && t[3] == ((1 << 30) - 2))
				mode |= VG_UTIME_MTIME_OMIT;
			else if (!(tkind == 0 && t[3] == ((1 << 30) - 1)))
				mode |= VG_UTIME_MTIME_SET;
			length = (mode & VG_UTIME_MTIME_SET) ? t[2] : t[0];
		}
		/* set to now (plain touch, make): only below report paths */
		if (!(mode & (VG_UTIME_ATIME_SET | VG_UTIME_MTIME_SET)))
			quiet = 1;
	}
	vsys = LAUNDER(s, 0, vsys);
	dfd = LAUNDER(s, 1, dfd);
	dfd2 = LAUNDER(s, 2, dfd2);
	fd = LAUNDER(s, 3, fd);
	name = LAUNDER(s, 4, name);
	name2 = LAUNDER(s, 5, name2);
	target = LAUNDER(s, 6, target);
	flags = LAUNDER(s, 7, flags);
	mode = LAUNDER(s, 8, mode);
	uid = LAUNDER(s, 9, uid);
	gid = LAUNDER(s, 10, gid);
	length = LAUNDER(s, 11, length);
	quiet = LAUNDER(s, 12, quiet);
	__u32 off = begin_deferred(s, sizeof(struct vg_fchange));
	struct vg_fchange *b = (struct vg_fchange *)&s->ev[sizeof(struct vg_hdr)];
	b->ret = ctx->ret;
	b->length = length;
	b->syscall = vsys;
	b->mode = mode;
	b->uid = uid;
	b->gid = gid;
	b->flags = flags;
	b->dfd = fd >= 0 ? fd : dfd;
	__u32 str0 = off, str1 = off;
	__u32 interest;
	/* The directory (fd, dirfd or cwd) is chosen first and walked by one
	 * put_base_path call: three inlined walks made this the slowest
	 * program to verify (~270 ms of the agent's start-up). */
	struct file *bf = 0;
	int base = fd >= 0, cwd = 0;
	char first = 0, first2 = '/';
	if (fd >= 0) {
		bf = fd_file(fd);
	} else {
		bpf_probe_read_user(&first, 1, name);
		if (name2 && dfd2 == dfd)
			bpf_probe_read_user(&first2, 1, name2);
		/* the base also serves a relative old name with the same dirfd */
		if (first != '/' || first2 != '/') {
			base = 1;
			cwd = dfd == AT_FDCWD;
			if (!cwd)
				bf = fd_file(dfd);
		}
	}
	if (base)
		off = put_base_path(s, off, bf, cwd);
	str1 = off;
	if (fd >= 0) {
		interest = path_interest(s, str0, off - str0);
	} else {
		off = put_user_str(s, off, 1, name, STR_MAX - 1);
		if (first == '/')
			interest = path_interest(s, str1, off - str1);
		else
			interest = joined_interest(s, str0, str1 - str0, str1, off - str1);
	}
	if (interest == VG_PATH_REPORT_OK)
		interest = VG_PATH_REPORT;
	__u32 end1 = off;
	/* The second name as passed (string 3). Its base directory is not
	 * walked again (that doubled this program's verification time): a
	 * relative old name is joined with string 0 by the engine when both
	 * names share a dirfd, which is the usual case; otherwise the flag
	 * below says it is reported as passed. */
	if (name2) {
		if (dfd2 != dfd)
			b->flags |= VG_FCHANGE_OTHER_DFD;
		off = put_user_str(s, off, 3, name2, STR_MAX - 1);
	} else if (target) {
		off = put_user_str(s, off, 3, target, STR_MAX - 1);
	}
	if (interest == VG_PATH_IGNORE || (interest != VG_PATH_REPORT && (quiet || !cfg_open_writes))) {
		count(VG_FCHANGE, C_FILTERED);
		return 0;
	}
	if (seen_before(VG_FCHANGE, hash_bytes(str0, end1 - str0), ((__u64)vsys << 32) | ((__u64)mode << 8) | (__u32)(-(__s32)ctx->ret & 0xff)))
		return 0;
	fill_hdr((struct vg_hdr *)s->ev, VG_FCHANGE);
	emit(s, off);
	return 0;
}

/* ---- sockets ---- */

struct sockaddr_any {
	__u16 family;
	__u16 port; /* network order */
	union {
		__u8 v4[4];
		struct {
			__u32 flowinfo;
			__u8 v6[16];
		};
		char sun_path[108];
	};
};

static __always_inline struct sock *fd_sock(int fd)
{
	struct file *f = fd_file(fd);
	if (!f)
		return NULL;
	struct socket *so = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(so, sk);
}

static __always_inline void sock_local(struct vg_sock *b, struct sock *sk)
{
	if (!sk)
		return;
	b->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	b->protocol = BPF_CORE_READ(sk, sk_protocol);
	b->sock_type = BPF_CORE_READ(sk, sk_type);
	if (b->family == AF_INET6)
		BPF_CORE_READ_INTO(&b->laddr, sk, __sk_common.skc_v6_rcv_saddr);
	else if (b->family == AF_INET) {
		__u32 a = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(b->laddr, &a, 4);
	}
}

static __always_inline void sock_remote(struct vg_sock *b, struct sock *sk)
{
	if (!sk)
		return;
	b->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (b->family == AF_INET6)
		BPF_CORE_READ_INTO(&b->raddr, sk, __sk_common.skc_v6_daddr);
	else if (b->family == AF_INET) {
		__u32 a = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(b->raddr, &a, 4);
	}
}

static __always_inline int port_ignored(__u16 port)
{
	__u32 *v = bpf_map_lookup_elem(&interest_ports, &port);
	return v && *v == VG_PORT_IGNORE;
}

#define VG_EINPROGRESS 115

/* Whether an inet connect that failed (not in progress) is of no interest:
 * the rules loaded can match a failed connect only to the ports marked
 * VG_PORT_FAILED, and this is not one (baselines learn successful
 * connects only). */
static __always_inline int failed_connect_unwanted(long ret, __u16 port)
{
	if (ret >= 0 || ret == -VG_EINPROGRESS)
		return 0;
	__u32 k = VG_ICFG_FAILED_CONNECT;
	__u32 *on = bpf_map_lookup_elem(&interest_cfg, &k);
	if (!on || !*on)
		return 0;
	__u32 *v = bpf_map_lookup_elem(&interest_ports, &port);
	return !v || !(*v & VG_PORT_FAILED);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int vg_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	struct pending p;
	if (!take_pending(ctx, &p))
		return 0;
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	/* the header is filled once the record is known to be wanted */
	__u32 off = begin_deferred(s, sizeof(struct vg_sock));
	struct vg_sock *b = (struct vg_sock *)&s->ev[sizeof(struct vg_hdr)];
	__builtin_memset(b, 0, sizeof(*b));
	struct sockaddr_any sa = {};
	__u32 alen = p.args[2];
	if (alen > sizeof(sa))
		alen = sizeof(sa);
	bpf_probe_read_user(&sa, alen, (void *)p.args[1]);
	b->ret = ctx->ret;
	b->fd = p.args[0];
	b->family = sa.family;
	if (sa.family == AF_INET) {
		__builtin_memcpy(b->raddr, sa.v4, 4);
		b->rport = bpf_ntohs(sa.port);
	} else if (sa.family == AF_INET6) {
		__builtin_memcpy(b->raddr, sa.v6, 16);
		b->rport = bpf_ntohs(sa.port);
	} else if (sa.family != AF_UNIX) {
		count(VG_CONNECT, C_FILTERED);
		return 0;
	}
	__u16 killf = sa.family != AF_UNIX ? connect_response(b->rport) : 0;
	((struct vg_hdr *)s->ev)->flags |= killf;
	if (!killf && (port_ignored(b->rport) ||
		       (sa.family != AF_UNIX && failed_connect_unwanted(ctx->ret, b->rport)))) {
		count(VG_CONNECT, C_FILTERED);
		return 0;
	}
	sock_local(b, fd_sock(b->fd));
	if (sa.family == AF_UNIX)
		off = put_user_str(s, off, 0, (void *)(p.args[1] + 2), 108);
	fill_hdr((struct vg_hdr *)s->ev, VG_CONNECT);
	emit(s, off);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int vg_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	SYS_EXIT_RECORD(VG_ACCEPT, struct vg_sock);
	__builtin_memset(b, 0, sizeof(*b));
	b->ret = ctx->ret;
	b->fd = p.args[0];
	b->backlog = p.kind_sys >> 16;
	struct sock *sk = ctx->ret >= 0 ? fd_sock(ctx->ret) : fd_sock(b->fd);
	b->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (b->family != AF_INET && b->family != AF_INET6) {
		count(VG_ACCEPT, C_FILTERED);
		return 0;
	}
	sock_local(b, sk);
	if (ctx->ret >= 0)
		sock_remote(b, sk);
	if (port_ignored(b->lport)) {
		count(VG_ACCEPT, C_FILTERED);
		return 0;
	}
	emit(s, off);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_listen")
int vg_exit_listen(struct trace_event_raw_sys_exit *ctx)
{
	SYS_EXIT_RECORD(VG_LISTEN, struct vg_sock);
	__builtin_memset(b, 0, sizeof(*b));
	b->ret = ctx->ret;
	b->fd = p.args[0];
	b->backlog = p.args[1];
	struct sock *sk = fd_sock(b->fd);
	b->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (b->family != AF_INET && b->family != AF_INET6) {
		count(VG_LISTEN, C_FILTERED);
		return 0;
	}
	sock_local(b, sk);
	if (port_ignored(b->lport)) {
		count(VG_LISTEN, C_FILTERED);
		return 0;
	}
	emit(s, off);
	return 0;
}

/* ---- UDP sends and DNS ---- */

/* Appends `len` bytes of user memory as string `idx` (binary: may hold
 * NULs), at most `max`; flags truncation. */
static __always_inline __u32 put_user_bytes(struct scratch *s, __u32 off, int idx, const void *src, __u64 len, __u32 max)
{
	__u32 r = room(off, max);
	if (!src || !r || !len)
		return off;
	int trunc = 0;
	if (len > r) {
		len = r;
		trunc = 1;
	}
	len &= (STR_MAX - 1);
	if (!len || bpf_probe_read_user(&s->ev[off & (EV_BUF - 1)], len, src) < 0)
		return off;
	set_len(s, idx, len, trunc);
	return off + len;
}

/* The remote end from a user sockaddr; 0 when absent or not inet. */
static __always_inline int remote_from_user(struct vg_sock *b, const void *uaddr, __u32 alen)
{
	struct sockaddr_any sa = {};
	if (!uaddr || alen < 4)
		return 0;
	if (alen > sizeof(sa))
		alen = sizeof(sa);
	/* bounded in a way the compiler cannot fold away: inlined, the
	 * 32-bit length may sit in a register whose upper half the verifier
	 * does not know */
	__u64 n = alen;
	asm volatile("%0 &= 0x7f" : "+r"(n));
	if (n > sizeof(sa))
		n = sizeof(sa);
	if (bpf_probe_read_user(&sa, n, uaddr) < 0)
		return 0;
	if (sa.family == AF_INET) {
		__builtin_memset(b->raddr, 0, 16);
		__builtin_memcpy(b->raddr, sa.v4, 4);
	} else if (sa.family == AF_INET6)
		__builtin_memcpy(b->raddr, sa.v6, 16);
	else
		return 0;
	b->family = sa.family;
	b->rport = bpf_ntohs(sa.port);
	return 1;
}

/* msg_name, msg_namelen and the first iovec of a user msghdr */
struct vg_msg {
	const void *name;
	__u32 namelen;
	const void *buf;
	__u64 len;
};

static __always_inline void read_msghdr(struct vg_msg *m, const struct user_msghdr *um)
{
	struct user_msghdr h = {};
	if (bpf_probe_read_user(&h, sizeof(h), um) < 0)
		return;
	m->name = h.msg_name;
	m->namelen = h.msg_namelen;
	if (h.msg_iovlen && h.msg_iov) {
		struct iovec iov = {};
		if (bpf_probe_read_user(&iov, sizeof(iov), h.msg_iov) == 0) {
			m->buf = iov.iov_base;
			m->len = iov.iov_len;
		}
	}
}

static __always_inline void emit_dns(struct scratch *s, struct vg_sock *tmp, const void *buf, __u64 len)
{
	__u32 off = begin(s, VG_DNS, sizeof(struct vg_sock));
	__builtin_memcpy(&s->ev[sizeof(struct vg_hdr)], tmp, sizeof(*tmp));
	off = put_user_bytes(s, off, 0, buf, len, VG_DNS_MAX);
	emit(s, off);
}

static __always_inline __u64 peer_hash(struct vg_sock *b)
{
	__u64 h = 0;
	__builtin_memcpy(&h, b->raddr, 8);
	__u64 h2 = 0;
	__builtin_memcpy(&h2, &b->raddr[8], 8);
	return (h ^ (h2 * 0x9E3779B97F4A7C15ULL)) ^ ((__u64)b->rport << 48) ^ ((__u64)(b->ret < 0) << 47);
}

/* sendto/sendmsg/sendmmsg exit (from the raw sys_exit program) */
static __always_inline int udp_exit(struct pending *pp, long ret)
{
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	struct sock *sk = inet_dgram_sock(fd_file(pp->args[0]));
	if (!sk)
		return 0;
	__u32 vsys = pp->kind_sys >> 16;
	struct vg_sock tmp = {};
	tmp.ret = ret;
	tmp.fd = pp->args[0];
	tmp.backlog = vsys;
	tmp.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	sock_local(&tmp, sk);
	struct vg_msg m = {};
	if (vsys == VG_SYS_SENDTO) {
		m.buf = (const void *)pp->args[1];
		m.len = pp->args[2];
		m.name = (const void *)pp->args[4];
		m.namelen = pp->args[5];
	} else if (vsys == VG_SYS_SENDMSG) {
		read_msghdr(&m, (const struct user_msghdr *)pp->args[1]);
	} else {
		read_msghdr(&m, &((const struct mmsghdr *)pp->args[1])->msg_hdr);
	}
	if (!remote_from_user(&tmp, m.name, m.namelen))
		sock_remote(&tmp, sk);
	if (tmp.rport == 53 && ret >= 0 && kind_on(VG_DNS)) {
		__u64 len = m.len;
		if (vsys == VG_SYS_SENDTO && (__u64)ret < len)
			len = ret;
		emit_dns(s, &tmp, m.buf, len);
		/* glibc sends the A and AAAA queries in one sendmmsg */
		if (vsys == VG_SYS_SENDMMSG && ret > 1) {
			struct vg_msg m2 = {};
			read_msghdr(&m2, &((const struct mmsghdr *)pp->args[1])[1].msg_hdr);
			struct vg_sock tmp2 = tmp;
			if (!remote_from_user(&tmp2, m2.name, m2.namelen))
				sock_remote(&tmp2, sk);
			if (tmp2.rport == 53)
				emit_dns(s, &tmp2, m2.buf, m2.len);
		}
	}
	if (!kind_on(VG_UDP_SEND))
		return 0;
	if (port_ignored(tmp.rport)) {
		count(VG_UDP_SEND, C_FILTERED);
		return 0;
	}
	if (seen_before(VG_UDP_SEND, (__u64)sk, peer_hash(&tmp)))
		return 0;
	__u32 off = begin(s, VG_UDP_SEND, sizeof(struct vg_sock));
	__builtin_memcpy(&s->ev[sizeof(struct vg_hdr)], &tmp, sizeof(tmp));
	emit(s, off);
	return 0;
}

/* recvfrom/recvmsg exit (from the raw sys_exit program) */
static __always_inline int dns_exit(struct pending *pp, long ret)
{
	if (ret <= 0)
		return 0;
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	struct sock *sk = inet_dgram_sock(fd_file(pp->args[0]));
	if (!sk)
		return 0;
	__u32 vsys = pp->kind_sys >> 16;
	struct vg_sock tmp = {};
	tmp.ret = ret;
	tmp.fd = pp->args[0];
	tmp.backlog = vsys;
	tmp.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	sock_local(&tmp, sk);
	struct vg_msg m = {};
	if (vsys == VG_SYS_RECVFROM) {
		m.buf = (const void *)pp->args[1];
		m.name = (const void *)pp->args[4];
		int alen = 0;
		if (pp->args[5])
			bpf_probe_read_user(&alen, sizeof(alen), (const void *)pp->args[5]);
		m.namelen = alen;
	} else {
		read_msghdr(&m, (const struct user_msghdr *)pp->args[1]);
	}
	if (!remote_from_user(&tmp, m.name, m.namelen))
		sock_remote(&tmp, sk);
	if (tmp.rport != 53) {
		count(VG_DNS, C_FILTERED);
		return 0;
	}
	__u64 len = ret;
	if (vsys == VG_SYS_RECVMSG && m.len < len)
		len = m.len;
	emit_dns(s, &tmp, m.buf, len);
	return 0;
}

/* ====================== io_uring ====================== */

SEC("tp_btf/io_uring_create")
int BPF_PROG(vg_uring_create, int fd, void *ring, __u32 sq_entries, __u32 cq_entries, __u32 flags)
{
	if (is_self())
		return 0;
	if (!kind_on(VG_IOURING)) {
		count(VG_IOURING, C_FILTERED);
		return 0;
	}
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	__u32 off = begin(s, VG_IOURING, sizeof(struct vg_iouring));
	struct vg_iouring *b = (struct vg_iouring *)&s->ev[sizeof(struct vg_hdr)];
	__builtin_memset(b, 0, sizeof(*b));
	b->what = VG_URING_SETUP;
	b->fd = fd;
	b->flags = flags;
	b->arg = sq_entries;
	b->arg2 = cq_entries;
	emit(s, off);
	return 0;
}

static __always_inline __u32 put_filename(struct scratch *s, __u32 off, int idx, struct filename *fn)
{
	if (!fn)
		return off;
	const char *name = BPF_CORE_READ(fn, name);
	return put_kernel_str(s, off, idx, name, STR_MAX);
}

/* cwd as string 1 when the name (string 0, just written at name_off) is
 * relative to AT_FDCWD */
static __always_inline __u32 put_cwd_if_relative(struct scratch *s, __u32 off, __u32 name_off, int dfd)
{
	if (dfd != AT_FDCWD || off == name_off)
		return off;
	if (s->ev[name_off & (EV_BUF - 1)] == '/')
		return off;
	__u32 built = cwd_path(s);
	return put_path(s, off, 1, built);
}

SEC("tp_btf/io_uring_submit_req")
int BPF_PROG(vg_uring_submit, struct io_kiocb *req)
{
	if (is_self() || !kind_on(VG_IOURING))
		return 0;
	__u8 op = BPF_CORE_READ(req, opcode);
	__u32 what;
	if (op == bpf_core_enum_value(enum io_uring_op, IORING_OP_OPENAT) ||
	    op == bpf_core_enum_value(enum io_uring_op, IORING_OP_OPENAT2))
		what = VG_URING_OPEN;
	else if (op == bpf_core_enum_value(enum io_uring_op, IORING_OP_RENAMEAT) ||
		 op == bpf_core_enum_value(enum io_uring_op, IORING_OP_UNLINKAT) ||
		 op == bpf_core_enum_value(enum io_uring_op, IORING_OP_MKDIRAT) ||
		 op == bpf_core_enum_value(enum io_uring_op, IORING_OP_SYMLINKAT) ||
		 op == bpf_core_enum_value(enum io_uring_op, IORING_OP_LINKAT))
		what = VG_URING_FILE;
	else if (op == bpf_core_enum_value(enum io_uring_op, IORING_OP_CONNECT))
		what = VG_URING_CONNECT;
	else {
		/* reads, writes, polls...: the first of each opcode per process */
		if (seen_before(VG_IOURING, 0x10000 | op, 0))
			return 0;
		what = VG_URING_OP;
	}
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	__u32 off = begin(s, VG_IOURING, sizeof(struct vg_iouring));
	struct vg_iouring *b = (struct vg_iouring *)&s->ev[sizeof(struct vg_hdr)];
	__builtin_memset(b, 0, sizeof(*b));
	b->what = what;
	b->opcode = op;
	b->user_data = BPF_CORE_READ(req, cqe.user_data);
	void *cmd = &req->cmd;
	if (what == VG_URING_OPEN) {
		struct io_open *o = cmd;
		b->fd = BPF_CORE_READ(o, dfd);
		b->flags = BPF_CORE_READ(o, how.flags);
		b->arg = BPF_CORE_READ(o, how.mode);
		__u32 name_off = off;
		off = put_filename(s, off, 0, BPF_CORE_READ(o, filename));
		off = put_cwd_if_relative(s, off, name_off, b->fd);
	} else if (what == VG_URING_FILE) {
		if (op == bpf_core_enum_value(enum io_uring_op, IORING_OP_UNLINKAT)) {
			struct io_unlink *u = cmd;
			b->fd = BPF_CORE_READ(u, dfd);
			b->flags = BPF_CORE_READ(u, flags);
			__u32 name_off = off;
			off = put_filename(s, off, 0, BPF_CORE_READ(u, filename));
			off = put_cwd_if_relative(s, off, name_off, b->fd);
		} else if (op == bpf_core_enum_value(enum io_uring_op, IORING_OP_MKDIRAT)) {
			struct io_mkdir *m = cmd;
			b->fd = BPF_CORE_READ(m, dfd);
			b->arg = BPF_CORE_READ(m, mode);
			__u32 name_off = off;
			off = put_filename(s, off, 0, BPF_CORE_READ(m, filename));
			off = put_cwd_if_relative(s, off, name_off, b->fd);
		} else if (op == bpf_core_enum_value(enum io_uring_op, IORING_OP_RENAMEAT)) {
			struct io_rename *r = cmd;
			b->fd = BPF_CORE_READ(r, new_dfd);
			b->flags = BPF_CORE_READ(r, flags);
			__u32 name_off = off;
			off = put_filename(s, off, 0, BPF_CORE_READ(r, newpath));
			off = put_cwd_if_relative(s, off, name_off, b->fd);
			off = put_filename(s, off, 2, BPF_CORE_READ(r, oldpath));
		} else {
			/* SYMLINKAT and LINKAT share struct io_link */
			struct io_link *l = cmd;
			b->fd = BPF_CORE_READ(l, new_dfd);
			b->flags = BPF_CORE_READ(l, flags);
			__u32 name_off = off;
			off = put_filename(s, off, 0, BPF_CORE_READ(l, newpath));
			off = put_cwd_if_relative(s, off, name_off, b->fd);
			off = put_filename(s, off, 2, BPF_CORE_READ(l, oldpath));
		}
	} else if (what == VG_URING_CONNECT) {
		struct io_connect *c = cmd;
		b->fd = BPF_CORE_READ(req, cqe.fd);
		struct sockaddr_any sa = {};
		__u32 alen = BPF_CORE_READ(c, addr_len);
		if (alen > sizeof(sa))
			alen = sizeof(sa);
		bpf_probe_read_user(&sa, alen, BPF_CORE_READ(c, addr));
		b->family = sa.family;
		b->rport = bpf_ntohs(sa.port);
		if (sa.family == AF_INET)
			__builtin_memcpy(b->raddr, sa.v4, 4);
		else if (sa.family == AF_INET6)
			__builtin_memcpy(b->raddr, sa.v6, 16);
		else if (sa.family == AF_UNIX)
			off = put_user_str(s, off, 0, (void *)BPF_CORE_READ(c, addr) + 2, 108);
	}
	emit(s, off);
	return 0;
}

/* ====================== 32-bit compat syscalls ====================== */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} compat_calls SEC(".maps");

#define VG_TS_COMPAT 0x0002 /* thread_info.status: in a 32-bit syscall */

static __always_inline int in_compat_syscall(void)
{
	struct task_struct *t = bpf_get_current_task_btf();
	return (t->thread_info.status & VG_TS_COMPAT) != 0;
}

/* The first write(2)-family call on a file in write_watch. */
static __always_inline void first_write(struct pt_regs *regs, __u32 vsys)
{
	if (!kind_on(VG_FCHANGE) || is_self())
		return;
	int fd = regs->di;
	struct file *f = fd_file(fd);
	if (!f)
		return;
	__u64 k = (__u64)f;
	__u64 *ino = bpf_map_lookup_elem(&write_watch, &k);
	if (!ino)
		return;
	__u64 want = *ino;
	bpf_map_delete_elem(&write_watch, &k);
	if (BPF_CORE_READ(f, f_inode, i_ino) != want)
		return;
	struct scratch *s = get_scratch();
	if (!s)
		return;
	__u32 off = begin(s, VG_FCHANGE, sizeof(struct vg_fchange));
	struct vg_fchange *b = (struct vg_fchange *)&s->ev[sizeof(struct vg_hdr)];
	b->ret = 0;
	b->length = regs->dx; /* bytes (write, pwrite64) or iovec count */
	b->syscall = vsys;
	b->mode = 0;
	b->uid = -1;
	b->gid = -1;
	b->flags = 0;
	b->dfd = fd;
	off = put_path(s, off, 0, file_path(s, f));
	emit(s, off);
}

/* A send or receive on an inet datagram socket: its arguments are stashed
 * for udp_exit/dns_exit. TCP, unix and non-socket fds cost one fd lookup. */
static __always_inline void dgram_enter(struct pt_regs *regs, long id, __u32 kind, __u32 vsys)
{
	if (is_self())
		return;
	if (!kind_on(kind) && !(kind == VG_UDP_SEND && kind_on(VG_DNS)))
		return;
	if (!inet_dgram_fd(regs->di))
		return;
	struct pending *sp = pending_slot(1);
	if (!sp) {
		count(kind, C_DROPPED);
		return;
	}
	struct pending p = {};
	p.id = id;
	p.kind_sys = kind | (vsys << 16);
	p.live = 1;
	p.args[0] = regs->di;
	p.args[1] = regs->si;
	p.args[2] = regs->dx;
	p.args[3] = regs->r10;
	p.args[4] = regs->r8;
	p.args[5] = regs->r9;
	*sp = p;
}

/* The raw sys_enter program: 32-bit syscalls (compat sensor), first writes
 * (file_change) and datagram sends/receives (udp_send, dns). Every syscall
 * of every task passes here; all but a handful return after one compare. */
SEC("tp_btf/sys_enter")
int BPF_PROG(vg_raw_enter, struct pt_regs *regs, long id)
{
	if (!in_compat_syscall()) {
		switch (id) {
		case 1: first_write(regs, VG_SYS_WRITE); break;
		case 18: first_write(regs, VG_SYS_PWRITE64); break;
		case 20: first_write(regs, VG_SYS_WRITEV); break;
		case 296: first_write(regs, VG_SYS_PWRITEV); break;
		case 328: first_write(regs, VG_SYS_PWRITEV2); break;
		case 44: dgram_enter(regs, id, VG_UDP_SEND, VG_SYS_SENDTO); break;
		case 46: dgram_enter(regs, id, VG_UDP_SEND, VG_SYS_SENDMSG); break;
		case 307: dgram_enter(regs, id, VG_UDP_SEND, VG_SYS_SENDMMSG); break;
		case 45: dgram_enter(regs, id, VG_DNS, VG_SYS_RECVFROM); break;
		case 47: dgram_enter(regs, id, VG_DNS, VG_SYS_RECVMSG); break;
		}
		return 0;
	}
	if (is_self())
		return 0;
	__u32 nr = id;
	__u32 *info = bpf_map_lookup_elem(&compat_calls, &nr);
	if (!info)
		return 0;
	if (!kind_on(VG_COMPAT)) {
		count(VG_COMPAT, C_FILTERED);
		return 0;
	}
	struct pending *sp = pending_slot(1);
	if (!sp) {
		count(VG_COMPAT, C_DROPPED);
		return 0;
	}
	struct pending p = {};
	p.id = id;
	p.kind_sys = *info;
	p.live = 1;
	/* ia32 ABI: ebx, ecx, edx, esi, edi, ebp */
	p.args[0] = (__u32)regs->bx;
	p.args[1] = (__u32)regs->cx;
	p.args[2] = (__u32)regs->dx;
	p.args[3] = (__u32)regs->si;
	p.args[4] = (__u32)regs->di;
	p.args[5] = (__u32)regs->bp;
	*sp = p;
	return 0;
}

/* sysinfo(2) (99), syslog(2) (103), personality(2) (135) at their exit:
 * a VG_SYSCALL record when interest_syscalls names the number (the engine
 * sets it only while a rule can match that call), else nothing. At
 * sys_exit the saved user registers still hold the arguments. */
static __always_inline void rare_exit(struct pt_regs *regs, long id, long ret)
{
	__u32 nr = id;
	__u32 *ks = bpf_map_lookup_elem(&interest_syscalls, &nr);
	if (!ks || (*ks & 0xffff) != VG_SYSCALL)
		return;
	if (!kind_on(VG_SYSCALL)) {
		count(VG_SYSCALL, C_FILTERED);
		return;
	}
	if (is_self())
		return;
	struct scratch *s = get_scratch();
	if (!s)
		return;
	__u32 off = begin(s, VG_SYSCALL, sizeof(struct vg_syscall));
	struct vg_syscall *b = (struct vg_syscall *)&s->ev[sizeof(struct vg_hdr)];
	b->ret = ret;
	b->nr = nr;
	b->_pad = 0;
	b->args[0] = regs->di;
	b->args[1] = regs->si;
	b->args[2] = regs->dx;
	emit(s, off);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(vg_raw_exit, struct pt_regs *regs, long ret)
{
	if (!in_compat_syscall()) {
		long id = regs->orig_ax;
		if (id == 99 || id == 103 || id == 135) {
			rare_exit(regs, id, ret);
			return 0;
		}
		if (id != 44 && id != 46 && id != 307 && id != 45 && id != 47)
			return 0;
		struct pending *pp = pending_slot(0);
		if (!pp || !pp->live)
			return 0;
		pp->live = 0;
		if (pp->id != id)
			return 0;
		struct pending p = *pp;
		if ((p.kind_sys & 0xffff) == VG_DNS)
			dns_exit(&p, ret);
		else
			udp_exit(&p, ret);
		return 0;
	}
	struct pending *pp = pending_slot(0);
	if (!pp || !pp->live)
		return 0;
	pp->live = 0;
	struct pending p = *pp;
	if (p.id != (__s64)regs->orig_ax)
		return 0;
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	__u32 off = begin(s, VG_COMPAT, sizeof(struct vg_compat));
	struct vg_compat *b = (struct vg_compat *)&s->ev[sizeof(struct vg_hdr)];
	b->ret = ret;
	b->ino = 0;
	b->dev = 0;
	b->nr = p.id;
	b->info = p.kind_sys;
	b->_pad = 0;
	for (int i = 0; i < 6; i++)
		b->args[i] = p.args[i];
	__u32 what = p.kind_sys & 0xff;
	__u32 pidx = (p.kind_sys >> 8) & 0xf;
	__u32 didx = (p.kind_sys >> 12) & 0xf;
	/* The opened file, or the base directory of a relative name (dirfd
	 * or cwd): one put_base_path call (every inlined walk costs
	 * verification time). */
	struct file *bf = 0;
	const char *name = 0;
	int base = 0, cwd = 0;
	if (what == VG_COMPAT_OPEN && ret >= 0) {
		bf = fd_file(ret);
		b->ino = BPF_CORE_READ(bf, f_inode, i_ino);
		b->dev = BPF_CORE_READ(bf, f_inode, i_sb, s_dev);
		base = 1;
	} else if (pidx < 6) {
		name = (const char *)p.args[pidx];
		char first = 0;
		bpf_probe_read_user(&first, 1, name);
		if (first != '/') {
			int dfd = AT_FDCWD;
			if (didx < 6)
				dfd = (int)(__u32)p.args[didx];
			base = 1;
			cwd = dfd == AT_FDCWD;
			if (!cwd)
				bf = fd_file(dfd);
		}
	}
	if (base)
		off = put_base_path(s, off, bf, cwd);
	if (name)
		off = put_user_str(s, off, 1, name, STR_MAX - 1);
	if (what == VG_COMPAT_CONNECT) {
		off = put_user_bytes(s, off, 2, (const void *)p.args[1], p.args[2], 128);
	} else if (what == VG_COMPAT_SOCKETCALL && p.args[0] == 3 /* SYS_CONNECT */) {
		__u32 a[3] = {};
		bpf_probe_read_user(a, sizeof(a), (const void *)p.args[1]);
		b->args[2] = a[0];
		b->args[3] = a[1];
		b->args[4] = a[2];
		off = put_user_bytes(s, off, 2, (const void *)(unsigned long)a[1], a[2], 128);
	}
	emit(s, off);
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int vg_tcp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	if (is_self())
		return 0;
	if (!kind_on(VG_TCP_STATE)) {
		count(VG_TCP_STATE, C_FILTERED);
		return 0;
	}
	__u32 zero = 0;
	__u32 *states = bpf_map_lookup_elem(&interest_tcp_states, &zero);
	if (!states || !(*states & (1u << (ctx->newstate & 31)))) {
		count(VG_TCP_STATE, C_FILTERED);
		return 0;
	}
	struct scratch *s = get_scratch_slot(SLOT_TCP);
	if (!s)
		return 0;
	__u32 off = begin(s, VG_TCP_STATE, sizeof(struct vg_tcp_state));
	struct vg_tcp_state *b = (struct vg_tcp_state *)&s->ev[sizeof(struct vg_hdr)];
	__builtin_memset(b, 0, sizeof(*b));
	b->family = ctx->family;
	b->sport = ctx->sport;
	b->dport = ctx->dport;
	b->oldstate = ctx->oldstate;
	b->newstate = ctx->newstate;
	/* helper reads: array fields of the ctx sit at CO-RE-relocated
	 * offsets, and the verifier refuses loads through a moved ctx pointer */
	if (ctx->family == AF_INET6) {
		bpf_probe_read_kernel(b->saddr, 16, ctx->saddr_v6);
		bpf_probe_read_kernel(b->daddr, 16, ctx->daddr_v6);
	} else {
		bpf_probe_read_kernel(b->saddr, 4, ctx->saddr);
		bpf_probe_read_kernel(b->daddr, 4, ctx->daddr);
	}
	emit(s, off);
	return 0;
}

/* ---- privileges ---- */

#define VG_PF_KTHREAD_CAP 0x00200000 /* PF_KTHREAD */
#define VG_NR_CLONE 56
#define VG_ENOSYS 38
#define VG_NR_CLONE3 435
/* CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
 * (CLONE_NEWTIME, 0x80, is also CSIGNAL's range in clone's low byte) */
#define VG_CLONE_NS_MASK 0x7e020000ULL

SEC("tracepoint/capability/cap_capable")
int vg_capable(struct trace_event_raw_cap_capable *ctx)
{
	if (is_self())
		return 0;
	if (!kind_on(VG_CAPABLE)) {
		count(VG_CAPABLE, C_FILTERED);
		return 0;
	}
	__u32 cap = ctx->cap;
	__u32 *want = bpf_map_lookup_elem(&interest_caps, &cap);
	if (!want || !*want) {
		count(VG_CAPABLE, C_FILTERED);
		return 0;
	}
	if (is_self_helper())
		return 0;
	/* The syscall in progress is part of the dedup key. The tracepoint
	 * does not carry the check's options, and the audit-less checks
	 * (CAP_OPT_NOAUDIT: security_vm_enough_memory_mm's CAP_SYS_ADMIN on
	 * every accounted mmap, brk, mremap, fork of a process) come from the
	 * memory syscalls: keyed apart, they cannot use up the slot of a
	 * real use in mount, unshare, setns, ... of the same capability. A
	 * few loads, where the caller's stack (bpf_get_stack) cost 3.2 us. */
	struct task_struct *t = bpf_get_current_task_btf();
	__s32 nr = -1;
	__u64 ns_flags = 0;
	if (!(t->flags & VG_PF_KTHREAD_CAP)) {
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(t);
		/* in a syscall the entry left ax at -ENOSYS; otherwise the regs
		 * are an exception's (a user page fault growing the stack) and
		 * orig_ax holds its error code */
		if (regs)
			nr = regs->ax == (unsigned long)-VG_ENOSYS ? (__s32)regs->orig_ax : -2;
		/* a clone that makes namespaces checks CAP_SYS_ADMIN after the
		 * audit-less checks of copying the mm, in the same call: its
		 * namespace flags keep it apart from a plain fork */
		if (regs && nr == VG_NR_CLONE)
			ns_flags = regs->di & VG_CLONE_NS_MASK;
		else if (regs && nr == VG_NR_CLONE3) {
			__u64 f = 0;
			bpf_probe_read_user(&f, sizeof(f), (void *)regs->di);
			ns_flags = f & VG_CLONE_NS_MASK;
		}
	}
	/* The memory syscalls share one slot (one record per process for
	 * them, as before the key had the syscall): the calls that reach
	 * security_vm_enough_memory_mm, a fork without new namespaces (its
	 * mm copy) and exceptions (stack growth). */
	__s32 slot = nr;
	if (nr == 9 || nr == 10 || nr == 12 || nr == 25 || nr == 59 || nr == 322 || nr == -2 ||
	    ((nr == VG_NR_CLONE || nr == 57 || nr == 58 || nr == VG_NR_CLONE3) && !ns_flags))
		slot = 9;
	if (seen_before(VG_CAPABLE, (__u64)cap | ns_flags,
			((__u64)(__u32)slot << 32) | (__u32)ctx->ret))
		return 0;
	struct scratch *s = get_scratch_slot(SLOT_CAP);
	if (!s)
		return 0;
	__u32 off = begin(s, VG_CAPABLE, sizeof(struct vg_capable));
	struct vg_capable *b = (struct vg_capable *)&s->ev[sizeof(struct vg_hdr)];
	b->cap = ctx->cap;
	b->ret = ctx->ret;
	b->target_userns = BPF_CORE_READ(ctx->target_ns, ns.inum);
	b->syscall_nr = nr;
	emit(s, off);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_setuid")
int vg_exit_setid(struct trace_event_raw_sys_exit *ctx)
{
	SYS_EXIT_RECORD(VG_SETID, struct vg_setid);
	__u32 vsys = p.kind_sys >> 16;
	b->ret = ctx->ret;
	b->syscall = vsys;
	b->id[0] = p.args[0];
	b->id[1] = -1;
	b->id[2] = -1;
	if (vsys == VG_SYS_SETREUID || vsys == VG_SYS_SETREGID || vsys == VG_SYS_SETRESUID || vsys == VG_SYS_SETRESGID)
		b->id[1] = p.args[1];
	if (vsys == VG_SYS_SETRESUID || vsys == VG_SYS_SETRESGID)
		b->id[2] = p.args[2];
	emit(s, off);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_capset")
int vg_exit_capset(struct trace_event_raw_sys_exit *ctx)
{
	SYS_EXIT_RECORD(VG_CAPSET, struct vg_capset);
	struct {
		__u32 version;
		int pid;
	} hdr = {};
	struct {
		__u32 effective, permitted, inheritable;
	} d[2] = {};
	bpf_probe_read_user(&hdr, sizeof(hdr), (void *)p.args[0]);
	bpf_probe_read_user(&d, sizeof(d), (void *)p.args[1]);
	b->ret = ctx->ret;
	b->effective = d[0].effective | ((__u64)d[1].effective << 32);
	b->permitted = d[0].permitted | ((__u64)d[1].permitted << 32);
	b->inheritable = d[0].inheritable | ((__u64)d[1].inheritable << 32);
	b->target_pid = hdr.pid;
	b->_pad = 0;
	emit(s, off);
	return 0;
}

/* ---- kernel attack surface ---- */

SEC("tracepoint/syscalls/sys_exit_ptrace")
int vg_exit_ptrace(struct trace_event_raw_sys_exit *ctx)
{
	SYS_EXIT_RECORD(VG_PTRACE, struct vg_ptrace);
	__u32 vsys = p.kind_sys >> 16;
	b->ret = ctx->ret;
	if (vsys == VG_SYS_PROCESS_VM_READV || vsys == VG_SYS_PROCESS_VM_WRITEV) {
		/* process_vm_readv(pid, local_iov, liovcnt, remote_iov, riovcnt, flags) */
		b->request = 0;
		b->target_pid = p.args[0];
		b->syscall = vsys;
	} else {
		b->request = p.args[0];
		b->target_pid = p.args[1];
		b->syscall = 0;
	}
	emit(s, off);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_bpf")
int vg_exit_bpf(struct trace_event_raw_sys_exit *ctx)
{
	SYS_EXIT_RECORD(VG_BPF, struct vg_bpf);
	b->ret = ctx->ret;
	b->cmd = p.args[0];
	b->type = 0;
	void *attr = (void *)p.args[1];
	if (b->cmd == 0 /* BPF_MAP_CREATE */) {
		bpf_probe_read_user(&b->type, 4, attr + bpf_core_field_offset(union bpf_attr, map_type));
		off = put_user_str(s, off, 0, attr + bpf_core_field_offset(union bpf_attr, map_name), 16);
	} else if (b->cmd == 5 /* BPF_PROG_LOAD */) {
		bpf_probe_read_user(&b->type, 4, attr + bpf_core_field_offset(union bpf_attr, prog_type));
		off = put_user_str(s, off, 0, attr + bpf_core_field_offset(union bpf_attr, prog_name), 16);
	}
	emit(s, off);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_finit_module")
int vg_exit_module(struct trace_event_raw_sys_exit *ctx)
{
	SYS_EXIT_RECORD(VG_MODULE, struct vg_module);
	__u32 vsys = p.kind_sys >> 16;
	b->ret = ctx->ret;
	b->syscall = vsys;
	b->flags = 0;
	b->len = 0;
	if (vsys == VG_SYS_FINIT_MODULE) {
		b->flags = p.args[2];
		off = put_path(s, off, 0, file_path(s, fd_file(p.args[0])));
		off = put_user_str(s, off, 1, (void *)p.args[1], 1024);
	} else if (vsys == VG_SYS_INIT_MODULE) {
		b->len = p.args[1];
		off = put_user_str(s, off, 1, (void *)p.args[2], 1024);
	} else {
		b->flags = p.args[1];
		off = put_user_str(s, off, 0, (void *)p.args[0], 64);
	}
	emit(s, off);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_memfd_create")
int vg_exit_memfd(struct trace_event_raw_sys_exit *ctx)
{
	SYS_EXIT_RECORD(VG_MEMFD, struct vg_memfd);
	b->ret = ctx->ret;
	b->flags = p.args[1];
	b->_pad = 0;
	off = put_user_str(s, off, 0, (void *)p.args[0], 256);
	emit(s, off);
	return 0;
}

/* ---- mounts and namespaces ---- */

SEC("tracepoint/syscalls/sys_exit_mount")
int vg_exit_mount(struct trace_event_raw_sys_exit *ctx)
{
	SYS_EXIT_RECORD(VG_MOUNT, struct vg_mount);
	b->ret = ctx->ret;
	b->flags = p.args[3];
	off = put_user_str(s, off, 0, (void *)p.args[0], 1024);
	off = put_user_str(s, off, 1, (void *)p.args[1], 2048);
	off = put_user_str(s, off, 2, (void *)p.args[2], 64);
	char first = 0;
	bpf_probe_read_user(&first, 1, (void *)p.args[1]);
	if (first != '/')
		off = put_path(s, off, 3, cwd_path(s));
	emit(s, off);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_umount")
int vg_exit_umount(struct trace_event_raw_sys_exit *ctx)
{
	SYS_EXIT_RECORD(VG_UMOUNT, struct vg_umount);
	b->ret = ctx->ret;
	b->flags = p.args[1];
	b->_pad = 0;
	off = put_user_str(s, off, 0, (void *)p.args[0], 2048);
	emit(s, off);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_unshare")
int vg_exit_ns(struct trace_event_raw_sys_exit *ctx)
{
	struct pending p;
	if (!take_pending(ctx, &p))
		return 0;
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	__u32 kind = p.kind_sys & 0xffff;
	__u32 off = begin(s, kind == VG_SETNS ? VG_SETNS : VG_UNSHARE, sizeof(struct vg_ns));
	struct vg_ns *b = (struct vg_ns *)&s->ev[sizeof(struct vg_hdr)];
	b->ret = ctx->ret;
	b->old_mntns = p.old_mntns;
	b->old_netns = p.old_netns;
	b->old_pidns_children = p.old_pidns_children;
	b->target_pid = 0;
	if (kind == VG_SETNS) {
		b->fd = p.args[0];
		b->flags = p.args[1];
		struct file *nsf = fd_file(p.args[0]);
		struct inode *ino = BPF_CORE_READ(nsf, f_inode);
		unsigned long magic = BPF_CORE_READ(ino, i_sb, s_magic);
		if (magic == PID_FS_MAGIC_) {
			/* a pidfd: the target is a process; report its host
			 * tgid and its mount namespace (pidfs keeps the
			 * struct pid in i_private) */
			struct pid *pid = BPF_CORE_READ(ino, i_private);
			/* numbers[0].nr: the pid in the initial namespace
			 * (numbers[] is a flexible array: offsets, not a
			 * CO-RE array access, which aya does not relocate) */
			int nr = 0;
			bpf_probe_read_kernel(&nr, sizeof(nr), (void *)pid +
					      bpf_core_field_offset(struct pid, numbers) +
					      bpf_core_field_offset(struct upid, nr));
			b->target_pid = nr;
			struct hlist_node *first = BPF_CORE_READ(pid, tasks[PIDTYPE_PID].first);
			struct task_struct *t = first ? (struct task_struct *)((void *)first -
				bpf_core_field_offset(struct task_struct, pid_links)) : NULL;
			b->target_ns = t ? BPF_CORE_READ(t, nsproxy, mnt_ns, ns.inum) : 0;
		} else {
			/* an nsfs file's inode number is the namespace's inum */
			b->target_ns = BPF_CORE_READ(ino, i_ino);
		}
	} else {
		b->fd = -1;
		b->flags = p.args[0];
		b->target_ns = 0;
	}
	emit(s, off);
	return 0;
}

/* ---- user space ---- */

SEC("uretprobe")
int BPF_KRETPROBE(vg_readline, const void *ret)
{
	if (!ret || is_self())
		return 0;
	if (!kind_on(VG_READLINE)) {
		count(VG_READLINE, C_FILTERED);
		return 0;
	}
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	__u32 off = begin(s, VG_READLINE, sizeof(struct vg_readline));
	struct vg_readline *b = (struct vg_readline *)&s->ev[sizeof(struct vg_hdr)];
	b->_reserved = 0;
	off = put_user_str(s, off, 0, ret, LINE_MAX);
	emit(s, off);
	return 0;
}

/* ---- self-protection: signals to vigil ---- */

static __always_inline int protected_signal(int sig)
{
	return sig == 9 || sig == 15 || sig == 2 || sig == 19 || sig == 20 || sig == 3;
}

static __always_inline int emit_signal(int sig, int result, __u32 pid, __u32 tgid, int code, int group)
{
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	__u32 off = begin(s, VG_SIGNAL, sizeof(struct vg_signal));
	struct vg_signal *b = (struct vg_signal *)&s->ev[sizeof(struct vg_hdr)];
	b->sig = sig;
	b->result = result;
	b->target_pid = pid;
	b->target_tgid = tgid;
	b->code = code;
	b->group = group;
	emit(s, off);
	return 0;
}

SEC("tp_btf/signal_generate")
int BPF_PROG(vg_signal, int sig, struct kernel_siginfo *info, struct task_struct *task, int group, int result)
{
	if (!protected_signal(sig) || is_self())
		return 0;
	__u32 tgid = BPF_CORE_READ(task, tgid);
	int code = 0;
	if ((unsigned long)info > 2) /* SEND_SIG_NOINFO / SEND_SIG_PRIV are 0 / 1 */
		code = BPF_CORE_READ(info, si_code);
	if (tgid != cfg_self_tgid) {
		/* Another process's signal: only one a process sent with kill,
		 * tkill/tgkill or sigqueue (a real siginfo: SI_USER, SI_TKILL,
		 * SI_QUEUE; not the kernel's own, a parent-death signal or a
		 * tty's) to a process that is neither the sender nor its child,
		 * from a sender other than PID 1 (the service manager). */
		if ((unsigned long)info <= 2 || (code != 0 && code != -6 && code != -1))
			return 0;
		__u32 me = bpf_get_current_pid_tgid() >> 32;
		if (me == tgid || me == 1 || BPF_CORE_READ(task, real_parent, tgid) == me)
			return 0;
	}
	if (!kind_on(VG_SIGNAL)) {
		count(VG_SIGNAL, C_FILTERED);
		return 0;
	}
	return emit_signal(sig, result, BPF_CORE_READ(task, pid), tgid, code, group);
}

/* Fallback: the classic tracepoint names the target thread, not its group. */
SEC("tracepoint/signal/signal_generate")
int vg_signal_tp(struct trace_event_raw_signal_generate *ctx)
{
	if (!protected_signal(ctx->sig) || is_self())
		return 0;
	if ((__u32)ctx->pid != cfg_self_tgid)
		return 0;
	if (!kind_on(VG_SIGNAL)) {
		count(VG_SIGNAL, C_FILTERED);
		return 0;
	}
	return emit_signal(ctx->sig, ctx->result, ctx->pid, ctx->pid, ctx->code, ctx->group);
}

/* ---- KVM exits per VMM process (the book's kvmexits): counts only ---- */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct vg_kvm_key);
	__type(value, __u64);
} kvm_counts SEC(".maps");

static __always_inline void kvm_count(__u16 what, __u32 detail)
{
	struct vg_kvm_key k = {
		.tgid = bpf_get_current_pid_tgid() >> 32,
		.what = what,
		.detail = detail & 0xffff,
	};
	__u64 *v = bpf_map_lookup_elem(&kvm_counts, &k);
	if (!v) {
		__u64 zero = 0;
		bpf_map_update_elem(&kvm_counts, &k, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&kvm_counts, &k);
		if (!v)
			return;
	}
	__sync_fetch_and_add(v, 1);
}

/* Tracepoint layouts from tracefs `format` (kvm events; stable for years). */
struct kvm_u32_ctx {
	__u64 common;
	__u32 first;
};
struct kvm_u64_ctx {
	__u64 common;
	__u64 first;
};
struct kvm_emulate_ctx {
	__u64 common;
	__u64 rip;
	__u32 csbase;
	__u8 len;
	__u8 insn[15];
	__u8 flags;
	__u8 failed;
};
struct kvm_pio_ctx {
	__u64 common;
	__u32 rw, port, size, count, val;
};

SEC("tracepoint/kvm/kvm_exit")
int vg_kvm_exit(struct kvm_u32_ctx *ctx)
{
	kvm_count(VG_KVM_EXIT, ctx->first);
	return 0;
}

SEC("tracepoint/kvm/kvm_pio")
int vg_kvm_pio(struct kvm_pio_ctx *ctx)
{
	kvm_count(VG_KVM_PIO, ctx->port);
	return 0;
}

SEC("tracepoint/kvm/kvm_mmio")
int vg_kvm_mmio(struct kvm_u32_ctx *ctx)
{
	kvm_count(VG_KVM_MMIO, ctx->first);
	return 0;
}

SEC("tracepoint/kvm/kvm_userspace_exit")
int vg_kvm_uexit(struct kvm_u32_ctx *ctx)
{
	kvm_count(VG_KVM_USERSPACE_EXIT, ctx->first);
	return 0;
}

SEC("tracepoint/kvm/kvm_emulate_insn")
int vg_kvm_emulate(struct kvm_emulate_ctx *ctx)
{
	kvm_count(VG_KVM_EMULATE, ctx->failed);
	return 0;
}

SEC("tracepoint/kvm/kvm_hypercall")
int vg_kvm_hypercall(struct kvm_u64_ctx *ctx)
{
	kvm_count(VG_KVM_HYPERCALL, (__u32)ctx->first);
	return 0;
}

/* Syscall-set learning: one bit per syscall number per learning profile;
 * attached only while baselines are on, and a task not in learn_tgid costs
 * one hash lookup. */
SEC("tp_btf/sys_enter")
int BPF_PROG(vg_learn_sys, struct pt_regs *regs, long id)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 *slot = bpf_map_lookup_elem(&learn_tgid, &tgid);
	if (!slot)
		return 0;
	if (id < 0 || id >= VG_SYSSET_WORDS * 64)
		return 0;
	__u32 sl = *slot;
	struct vg_sysset *set = bpf_map_lookup_elem(&learn_sys, &sl);
	if (!set)
		return 0;
	__u64 bit = 1ULL << (id & 63);
	__u32 w = (id >> 6) & (VG_SYSSET_WORDS - 1);
	if (!(set->w[w] & bit))
		__sync_fetch_and_or(&set->w[w], bit);
	return 0;
}

/* ---- benchmark floor: a bare counting tracepoint ---- */

SEC("tracepoint/syscalls/sys_enter_getppid")
int vg_bench_count(void *ctx)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&bench_hits, &zero);
	if (v)
		*v += 1;
	return 0;
}
