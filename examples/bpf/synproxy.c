// SPDX-License-Identifier: MIT OR Apache-2.0
/* Seed 004: the conntrack lookup the series was written for, a synproxy-style XDP filter.
 *
 * For every TCP segment over IPv4 or IPv6 the program looks its flow up in conntrack
 * (bpf_xdp_ct_lookup, either direction of a known connection matches). A segment of a known
 * flow passes; a SYN opening a new flow passes too (a SYN proxy would answer it with a cookie);
 * anything else of an unknown flow is dropped, which is what keeps floods of stray ACKs and
 * RSTs away from the stack. Verdicts are counted per kind, and the last lookup's error and
 * direction are kept for inspection. Other traffic passes untouched.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "kbpf.h"

enum {
	SEEN_ESTABLISHED,	/* a known flow: pass */
	SEEN_NEW,		/* a SYN of an unknown flow: pass */
	SEEN_DROPPED,		/* anything else of an unknown flow: drop */
	SEEN_OTHER,		/* not TCP: pass */
	SEEN_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SEEN_MAX);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

/* The last lookup: opts.error when it failed, the matched direction when not. */
__s32 last_error;
__u32 last_dir;
/* The last established flow's conntrack mark. */
__u32 last_mark;

static __always_inline void count(__u32 kind)
{
	__u64 *n = bpf_map_lookup_elem(&seen, &kind);

	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline int verdict(struct xdp_md *ctx, struct bpf_sock_tuple *t, __u32 tsz,
				   struct tcphdr *th)
{
	struct bpf_ct_opts opts = { .netns_id = BPF_F_CURRENT_NETNS, .l4proto = IPPROTO_TCP };
	struct nf_conn *ct;

	ct = bpf_xdp_ct_lookup(ctx, t, tsz, &opts, sizeof(opts));
	if (ct) {
		last_dir = opts.dir;
		last_mark = ct->mark;
		bpf_ct_release(ct);
		count(SEEN_ESTABLISHED);
		return XDP_PASS;
	}
	last_error = opts.error;
	if (th->syn && !th->ack) {
		count(SEEN_NEW);
		return XDP_PASS;
	}
	count(SEEN_DROPPED);
	return XDP_DROP;
}

SEC("xdp")
int syn_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct bpf_sock_tuple t = {};
	struct tcphdr *th;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_TCP)
			goto other;
		th = (void *)(ip + 1);
		if ((void *)(th + 1) > end)
			goto other;
		t.ipv4.saddr = ip->saddr;
		t.ipv4.daddr = ip->daddr;
		t.ipv4.sport = th->source;
		t.ipv4.dport = th->dest;
		return verdict(ctx, &t, sizeof(t.ipv4), th);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			goto other;
		th = (void *)(ip6 + 1);
		if ((void *)(th + 1) > end)
			goto other;
		__builtin_memcpy(t.ipv6.saddr, &ip6->saddr, sizeof(t.ipv6.saddr));
		__builtin_memcpy(t.ipv6.daddr, &ip6->daddr, sizeof(t.ipv6.daddr));
		t.ipv6.sport = th->source;
		t.ipv6.dport = th->dest;
		return verdict(ctx, &t, sizeof(t.ipv6), th);
	}
other:
	count(SEEN_OTHER);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
