/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by vigil's performance objects (sched.bpf.c,
 * perfsys.bpf.c, ktools.bpf.c): the log2 bucket of a value, a counter
 * slot of a per-CPU stats array, and the lookup-or-create of a hash
 * entry. Include after vmlinux.h and bpf_helpers.h.
 */
#ifndef VIGIL_PERF_H
#define VIGIL_PERF_H

/* floor(log2(v)) for v > 0 (0 for v == 0), branch-free. */
static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r, shift;
	r = (v > 0xFFFFFFFFULL) << 5;
	v >>= r;
	shift = (v > 0xFFFF) << 4;
	v >>= shift;
	r |= shift;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	return r;
}

/* The histogram slot of a duration: slot 0 holds under 1 us, slot k >= 1
 * holds [2^(k-1), 2^k) us; the last of `nslots` (a power of two) also
 * holds everything longer. */
static __always_inline __u32 vg_us_slot(__u64 ns, __u32 nslots)
{
	__u64 us = ns / 1000;
	__u32 slot = us ? log2_u64(us) + 1 : 0;
	if (slot >= nslots)
		slot = nslots - 1;
	return slot & (nslots - 1);
}

/* Adds one to slot `i` of a per-CPU u64 array map. */
static __always_inline void vg_stat_inc(void *stats_map, __u32 i)
{
	__u64 *v = bpf_map_lookup_elem(stats_map, &i);
	if (v)
		*v += 1;
}

/* The value of `key` in a hash map, created zeroed (from `zero`) when
 * missing; NULL when the map is full. */
static __always_inline void *vg_lookup_or_init(void *map, const void *key, const void *zero)
{
	void *v = bpf_map_lookup_elem(map, key);
	if (v)
		return v;
	bpf_map_update_elem(map, key, zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, key);
}

#endif
