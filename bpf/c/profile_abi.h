/* SPDX-License-Identifier: GPL-2.0 */
/* ABI of the CPU profiler (profile.bpf.c); mirrored in bpf/src/profile.rs. */
#ifndef VIGIL_PROFILE_ABI_H
#define VIGIL_PROFILE_ABI_H

/* pf_key.flags */
#define PF_USER_MODE 1 /* the sample hit user mode (no kernel stack) */
#define PF_KTHREAD 2   /* a kernel thread (no user stack) */

/* One (process, cgroup, kernel stack, user stack) with the count of
 * samples that hit it. A stack id < 0 is the -errno of bpf_get_stackid. */
struct pf_key {
	__u64 cgroup_id;
	__u32 tgid;
	__s32 kstack;
	__s32 ustack;
	__u32 flags;
	char comm[16];
	/* The user stack word at the interrupted sp when it is a return
	 * address (the bytes before it are a call instruction), else 0: the
	 * caller of a leaf function that set up no frame, which the
	 * frame-pointer walk skips. */
	__u64 sp_ret;
};

/* pf_stats slots */
#define PF_ST_SAMPLES 0    /* samples taken (idle included) */
#define PF_ST_IDLE 1       /* samples of the idle task (not counted per stack) */
#define PF_ST_FULL 2       /* samples lost: the count map was full */
#define PF_ST_KSTACK_ERR 3 /* kernel-mode samples whose kernel stack failed */
#define PF_ST_USTACK_ERR 4 /* user-process samples whose user stack failed */
#define PF_ST_STACK_FULL 5 /* stacks not stored: the stack map was full (-ENOMEM/-EEXIST) */
#define PF_ST_NSLOTS 8

_Static_assert(sizeof(struct pf_key) == 48, "pf_key size");

#endif
