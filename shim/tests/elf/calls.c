// SPDX-License-Identifier: MIT OR Apache-2.0
/* Loader test object: BPF-to-BPF calls within and across functions. Two programs share .text
 * subprograms (a global one and static ones, one calling another), and each gets its own
 * copy appended with the call offsets fixed.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct args {
	__u32 x;
	__u32 y;
};

static __noinline __u32 twice(__u32 v)
{
	return v + v;
}

static __noinline __u32 square(__u32 v)
{
	return v * v;
}

__noinline __u32 poly(__u32 v)
{
	/* v^2 + 2v + 3 */
	return square(v) + twice(v) + 3;
}

SEC("raw_buffer")
int calls_a(struct args *a)
{
	return poly(a->x) + twice(a->y);
}

SEC("raw_buffer")
int calls_b(struct args *a)
{
	return twice(a->x) * 100 + square(a->y);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
