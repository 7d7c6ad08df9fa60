// SPDX-License-Identifier: MIT OR Apache-2.0
/* Loader test object: a bpf_loop callback (an ld_imm64 of a function's address,
 * BPF_PSEUDO_FUNC), a static .text subprogram, a custom global-data section (.data.custom) and a
 * string constant (.rodata).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

int custom_var SEC(".data.custom") = 5;
const char msg[] = "hello";

static long count(__u32 i, void *ctx)
{
	(*(int *)ctx)++;
	return 0;
}

static __attribute__((noinline)) int plus_custom(int x)
{
	return x + custom_var;
}

SEC("xdp")
int callback(struct xdp_md *ctx)
{
	int n = 0;

	bpf_loop(4, count, &n, 0);
	/* 4 + 5 + 'e' */
	return plus_custom(n) + msg[1];
}

char LICENSE[] SEC("license") = "GPL";
