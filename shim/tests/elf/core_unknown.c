// SPDX-License-Identifier: MIT OR Apache-2.0
/* Loader test object: a CO-RE relocation against a type kbpf does not resolve (a kernel
 * struct it has no layout for): the loader refuses it, naming the relocation.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct task_struct {
	int pid;
} __attribute__((preserve_access_index));

SEC("tc")
int core_unknown(struct __sk_buff *skb)
{
	struct task_struct *t = (void *)(long)skb->data;

	return t->pid;
}

char LICENSE[] SEC("license") = "GPL";
