// SPDX-License-Identifier: MIT OR Apache-2.0
/* Seed 004, the later kfuncs: a TC program that keeps conntrack entries itself.
 *
 * For a TCP or UDP packet over IPv4 it looks the flow up (bpf_skb_ct_lookup). A known flow
 * has its timeout refreshed (bpf_ct_change_timeout) and, seen from the reply side, is marked
 * as having seen a reply (bpf_ct_change_status); its mark goes to the packet. An unknown flow
 * gets a new entry: bpf_skb_ct_alloc, a timeout and an ASSURED status (bpf_ct_set_timeout,
 * bpf_ct_set_status), the configured mark written straight into the entry, then
 * bpf_ct_insert_entry. Everything it did is counted.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "kbpf.h"

#define ENOENT 2

/* Configuration (.data, set before running). */
__u32 track_timeout_ms = 30000;
__u32 track_mark = 0x2a;

/* What happened (.bss). */
__u64 created;
__u64 refreshed;
__u64 replies;
__u64 clashed;
__u64 alloc_failed;
__s32 last_error;

SEC("tc")
int ct_track(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct bpf_ct_opts opts = { .netns_id = BPF_F_CURRENT_NETNS };
	struct bpf_sock_tuple t = {};
	struct nf_conn___init *fresh;
	struct nf_conn *ct;
	__be16 *ports;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5)
		return TC_ACT_OK;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return TC_ACT_OK;
	ports = (void *)(ip + 1);
	if ((void *)(ports + 2) > end)
		return TC_ACT_OK;
	t.ipv4.saddr = ip->saddr;
	t.ipv4.daddr = ip->daddr;
	t.ipv4.sport = ports[0];
	t.ipv4.dport = ports[1];
	opts.l4proto = ip->protocol;

	ct = bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &opts, sizeof(opts));
	if (ct) {
		bpf_ct_change_timeout(ct, track_timeout_ms);
		if (opts.dir == IP_CT_DIR_REPLY &&
		    !bpf_ct_change_status(ct, ct->status | IPS_SEEN_REPLY))
			replies++;
		skb->mark = ct->mark;
		bpf_ct_release(ct);
		refreshed++;
		return TC_ACT_OK;
	}
	if (opts.error != -ENOENT) {
		last_error = opts.error;
		return TC_ACT_OK;
	}

	fresh = bpf_skb_ct_alloc(skb, &t, sizeof(t.ipv4), &opts, sizeof(opts));
	if (!fresh) {
		last_error = opts.error;
		alloc_failed++;
		return TC_ACT_OK;
	}
	bpf_ct_set_timeout(fresh, track_timeout_ms);
	bpf_ct_set_status(fresh, IPS_ASSURED);
	fresh->ct.mark = track_mark;
	ct = bpf_ct_insert_entry(fresh);
	if (!ct) {
		clashed++;
		return TC_ACT_OK;
	}
	skb->mark = ct->mark;
	bpf_ct_release(ct);
	created++;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
