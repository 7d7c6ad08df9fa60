// SPDX-License-Identifier: MIT OR Apache-2.0
/* Seed 000's dispatch routine: one entry program tail-calls into a per-syscall program picked
 * by the syscall number (`syscall_jmp_table[__NR_write] = sys_write_event`), falling back to a
 * default path for numbers without one. It runs as kbpf's raw-buffer type, whose context is a
 * byte buffer: here a `struct seccomp_data` (the loader takes the context's size from the
 * function's BTF).
 */
#include <linux/bpf.h>
#include <linux/seccomp.h>
#include <bpf/bpf_helpers.h>

#define NR_read 0
#define NR_write 1
#define NR_openat 257

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 64);
} calls SEC(".maps");

int sys_read_event(struct seccomp_data *ctx);
int sys_write_event(struct seccomp_data *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 512);
	__type(key, __u32);
	__array(values, int (struct seccomp_data *));
} syscall_jmp_table SEC(".maps") = {
	.values = {
		[NR_read] = (void *)&sys_read_event,
		[NR_write] = (void *)&sys_write_event,
	},
};

/* Calls that took the default path. */
__u64 unknown_calls;

static __always_inline void count(__u32 nr)
{
	__u64 one = 1, *n = bpf_map_lookup_elem(&calls, &nr);

	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&calls, &nr, &one, BPF_NOEXIST);
}

SEC("raw_buffer")
int syscall_entry(struct seccomp_data *ctx)
{
	bpf_tail_call(ctx, &syscall_jmp_table, ctx->nr);
	/* default: process unknown syscall */
	unknown_calls++;
	return -1;
}

SEC("raw_buffer")
int sys_read_event(struct seccomp_data *ctx)
{
	count(NR_read);
	/* the number of bytes asked for */
	return (int)ctx->args[2];
}

SEC("raw_buffer")
int sys_write_event(struct seccomp_data *ctx)
{
	count(NR_write);
	/* the file descriptor written to */
	return (int)ctx->args[0];
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
