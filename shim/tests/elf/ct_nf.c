// SPDX-License-Identifier: MIT OR Apache-2.0
/* Loader test object: the conntrack kfuncs' run-time scenarios that need a program of their
 * own (kernel-scenarios §5.4 CT-11..CT-17, after the kernel's progs/test_bpf_nf.c): allocate a
 * random tuple, set a timeout, a status, a mark and source and destination NAT, insert it,
 * look it up, change its timeout (read back against bpf_jiffies64) and status, check the NAT'd
 * reply tuple; then look up an entry the test created with mark 42 and bump the mark through
 * the pointer. Results go to globals; the same code runs from XDP and from TC.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "kbpf.h"

#define EINVAL 22
#define HZ 1000 /* kbpf's jiffies */

int test_alloc_entry = -EINVAL;
int test_insert_entry = -EINVAL;
int test_succ_lookup = -EINVAL;
int test_set_status = 1;
int test_change_timeout = 1;
int test_change_status = 1;
int test_snat = 1;
int test_dnat = 1;
int test_snat_addr = -EINVAL;
int test_dnat_addr = -EINVAL;
__u32 test_delta_timeout;
__u64 test_status;
__u32 test_insert_lookup_mark;
__u32 test_dir = 9;
int test_exist_lookup = -EINVAL;
__u32 test_exist_lookup_mark;

/* The entry the test creates beforehand (set in .data). */
__u32 exist_saddr = 0x0100070a;	/* 10.7.0.1 */
__u32 exist_daddr = 0x0200070a;	/* 10.7.0.2 */
__u16 exist_sport = 0x9210;	/* 4242 */
__u16 exist_dport = 0x5000;	/* 80 */

typedef struct nf_conn *(*lookup_fn)(void *, struct bpf_sock_tuple *, __u32,
				     struct bpf_ct_opts *, __u32);
typedef struct nf_conn___init *(*alloc_fn)(void *, struct bpf_sock_tuple *, __u32,
					   struct bpf_ct_opts *, __u32);

static __always_inline void nf_ct_test(lookup_fn lookup, alloc_fn alloc, void *ctx)
{
	struct bpf_ct_opts opts = { .netns_id = BPF_F_CURRENT_NETNS, .l4proto = IPPROTO_TCP };
	struct bpf_sock_tuple t = {};
	struct nf_conn___init *ct;
	struct nf_conn *ins, *lk;
	union nf_inet_addr saddr = {}, daddr = {};
	__u16 sport, dport;

	t.ipv4.saddr = bpf_get_prandom_u32();
	t.ipv4.daddr = bpf_get_prandom_u32();
	t.ipv4.sport = bpf_get_prandom_u32();
	t.ipv4.dport = bpf_get_prandom_u32();

	ct = alloc(ctx, &t, sizeof(t.ipv4), &opts, sizeof(opts));
	if (!ct)
		return;
	test_alloc_entry = 0;
	bpf_ct_set_timeout(ct, 10000);
	/* Not confirmed yet: changing CONFIRMED is refused (-EBUSY). */
	test_set_status = bpf_ct_set_status(ct, IPS_CONFIRMED);
	ct->ct.mark = 77;
	saddr.ip = bpf_get_prandom_u32();
	sport = bpf_get_prandom_u32();
	daddr.ip = bpf_get_prandom_u32();
	dport = bpf_get_prandom_u32();
	test_snat = bpf_ct_set_nat_info(ct, &saddr, sport, NF_NAT_MANIP_SRC);
	test_dnat = bpf_ct_set_nat_info(ct, &daddr, dport, NF_NAT_MANIP_DST);

	ins = bpf_ct_insert_entry(ct);
	if (!ins)
		return;
	test_insert_entry = 0;

	lk = lookup(ctx, &t, sizeof(t.ipv4), &opts, sizeof(opts));
	if (lk) {
		struct kbpf_ct_tuple *reply = &lk->tuplehash[IP_CT_DIR_REPLY].tuple;

		test_succ_lookup = 0;
		test_dir = opts.dir;
		test_change_timeout = bpf_ct_change_timeout(lk, 10000);
		test_delta_timeout = lk->timeout - bpf_jiffies64();
		test_delta_timeout /= HZ;
		test_change_status = bpf_ct_change_status(lk, IPS_CONFIRMED | IPS_SEEN_REPLY);
		test_status = lk->status;
		test_insert_lookup_mark = lk->mark;
		test_snat_addr = reply->dst_u3.ip == saddr.ip && reply->dst_port == bpf_htons(sport) ?
				 0 : -EINVAL;
		test_dnat_addr = reply->src_u3.ip == daddr.ip && reply->src_port == bpf_htons(dport) ?
				 0 : -EINVAL;
		bpf_ct_release(lk);
	}
	bpf_ct_release(ins);

	t.ipv4.saddr = exist_saddr;
	t.ipv4.daddr = exist_daddr;
	t.ipv4.sport = exist_sport;
	t.ipv4.dport = exist_dport;
	lk = lookup(ctx, &t, sizeof(t.ipv4), &opts, sizeof(opts));
	if (lk) {
		test_exist_lookup = 0;
		if (lk->mark == 42) {
			lk->mark++;
			test_exist_lookup_mark = lk->mark;
		}
		bpf_ct_release(lk);
	}
}

SEC("xdp")
int nf_xdp_ct_test(struct xdp_md *ctx)
{
	nf_ct_test((lookup_fn)bpf_xdp_ct_lookup, (alloc_fn)bpf_xdp_ct_alloc, ctx);
	return XDP_PASS;
}

SEC("tc")
int nf_skb_ct_test(struct __sk_buff *ctx)
{
	nf_ct_test((lookup_fn)bpf_skb_ct_lookup, (alloc_fn)bpf_skb_ct_alloc, ctx);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
