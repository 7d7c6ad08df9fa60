// SPDX-License-Identifier: MIT OR Apache-2.0
/* Seed 001's tcx programs: several programs on one device's ingress, run in the order the
 * multi-program API (bpf_mprog) keeps them. Each appends its tag to `order` (global data) so
 * the order they ran in can be read back, then lets the next one run (TCX_NEXT), except the
 * firewall, which drops telnet, and the final accept.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "kbpf.h"

#define MAX_ORDER 8

__u32 order[MAX_ORDER];
__u32 order_len;

/* The part of __sk_buff this object reads, relocated to the real layout at load (CO-RE). */
struct __sk_buff___kbpf {
	__u32 len;
	__u32 mark;
} __attribute__((preserve_access_index));

static __always_inline void trace(__u32 tag)
{
	__u32 i = order_len;

	if (i < MAX_ORDER) {
		order[i] = tag;
		order_len = i + 1;
	}
}

SEC("tcx/ingress")
int tcx_count(struct __sk_buff *skb)
{
	trace(1);
	return TCX_NEXT;
}

SEC("tcx/ingress")
int tcx_mark(struct __sk_buff *skb)
{
	struct __sk_buff___kbpf *s = (void *)skb;

	trace(2);
	s->mark = s->mark | 0x2a;
	return TCX_NEXT;
}

SEC("tcx/ingress")
int tcx_firewall(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u16 *ports = (void *)(ip + 1);

	trace(3);
	if ((void *)(ports + 2) > data_end)
		return TCX_NEXT;
	if (ip->protocol == IPPROTO_TCP && ports[1] == bpf_htons(23))
		return TCX_DROP;
	return TCX_NEXT;
}

/* Counts like tcx_count, under its own tag: the demo swaps it in with BPF_F_REPLACE. */
SEC("tcx/ingress")
int tcx_audit(struct __sk_buff *skb)
{
	trace(5);
	return TCX_NEXT;
}

SEC("tcx/ingress")
int tcx_accept(struct __sk_buff *skb)
{
	trace(4);
	return TCX_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
