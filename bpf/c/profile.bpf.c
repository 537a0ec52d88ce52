// SPDX-License-Identifier: GPL-2.0
/*
 * vigil CPU profiler (bpf/src/profile.rs), one object loaded apart from
 * the security sensors. A perf_event software CPU clock at cfg Hz per CPU
 * runs vg_pf_sample; it takes the kernel and user stack ids of the
 * interrupted task (a stack-trace map, frame-pointer unwinding by the
 * kernel) and counts the sample per (process, cgroup v2, stacks) in a
 * per-CPU hash. Nothing is sent per sample: the engine reads the counts
 * every perf interval and symbolizes in userspace.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "profile_abi.h"
#include "vigil_perf.h"

char LICENSE[] SEC("license") = "GPL";

#define VG_PF_KTHREAD 0x00200000
#define VG_EFAULT 14
#define VG_ENOMEM 12
#define VG_EEXIST 17

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 127 * sizeof(__u64));
} pf_stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pf_key);
	__type(value, __u64);
} pf_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PF_ST_NSLOTS);
	__type(key, __u32);
	__type(value, __u64);
} pf_stats SEC(".maps");

/* The word at the user stack pointer if it is a return address: the
 * instruction before it is a call (e8 rel32, ff 15 disp32, ff /2 through a
 * register or [reg+disp8]). In a leaf function built without a frame (GCC
 * omits it in leaves that use no stack, -mno-omit-leaf-frame-pointer or
 * not) that word is the caller's return address, which the kernel's
 * frame-pointer walk (regs->bp) skips; userspace inserts it when the
 * sampled function has no frame. 0 when not. */
static __always_inline __u64 sp_return_address(void)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(t);
	__u64 ret = 0;
	__u8 c[6] = {};
	if (!regs)
		return 0;
	if (bpf_probe_read_user(&ret, sizeof(ret), (void *)regs->sp) || ret < 6)
		return 0;
	if (bpf_probe_read_user(c, sizeof(c), (void *)(ret - 6)))
		return 0;
	if (c[1] == 0xe8 || (c[0] == 0xff && c[1] == 0x15) ||
	    (c[4] == 0xff && (c[5] & 0xf8) == 0xd0) || (c[3] == 0xff && (c[4] & 0xf8) == 0x50))
		return ret;
	return 0;
}

SEC("perf_event")
int vg_pf_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	vg_stat_inc(&pf_stats, PF_ST_SAMPLES);
	if (id == 0) {
		vg_stat_inc(&pf_stats, PF_ST_IDLE);
		return 0;
	}
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u32 tflags = BPF_CORE_READ(t, flags);
	struct pf_key key = {};
	key.tgid = tgid;
	key.cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	/* No read of ctx->regs here: with vmlinux.h's CO-RE attribute clang
	 * may address it through a modified ctx pointer, which the verifier
	 * refuses (EACCES). A user-mode sample has an empty kernel callchain:
	 * bpf_get_stackid returns -EFAULT for it. */
	key.kstack = bpf_get_stackid(ctx, &pf_stacks, 0);
	int user = key.kstack == -VG_EFAULT;
	if (user)
		key.flags |= PF_USER_MODE;
	if (tflags & VG_PF_KTHREAD)
		key.flags |= PF_KTHREAD;
	key.ustack = (tflags & VG_PF_KTHREAD) ? -VG_EFAULT
					       : bpf_get_stackid(ctx, &pf_stacks, BPF_F_USER_STACK);
	if (!(tflags & VG_PF_KTHREAD) && key.ustack >= 0)
		key.sp_ret = sp_return_address();
	if (!user && key.kstack < 0) {
		if (key.kstack == -VG_ENOMEM || key.kstack == -VG_EEXIST)
			vg_stat_inc(&pf_stats, PF_ST_STACK_FULL);
		else
			vg_stat_inc(&pf_stats, PF_ST_KSTACK_ERR);
	}
	if (!(tflags & VG_PF_KTHREAD) && key.ustack < 0) {
		if (key.ustack == -VG_ENOMEM || key.ustack == -VG_EEXIST)
			vg_stat_inc(&pf_stats, PF_ST_STACK_FULL);
		else
			vg_stat_inc(&pf_stats, PF_ST_USTACK_ERR);
	}
	__u64 zero = 0;
	__u64 *n = vg_lookup_or_init(&pf_counts, &key, &zero);
	if (!n) {
		vg_stat_inc(&pf_stats, PF_ST_FULL);
		return 0;
	}
	*n += 1;
	return 0;
}

/* Benchmark floor: counts its runs only (vigil-bench --profile). */
SEC("perf_event")
int vg_pf_floor(struct bpf_perf_event_data *ctx)
{
	vg_stat_inc(&pf_stats, 7);
	return 0;
}
