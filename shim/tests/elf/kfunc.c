// SPDX-License-Identifier: MIT OR Apache-2.0
/* Loader test object: kfuncs declared `extern ... __ksym`, resolved by name against kbpf's
 * kfunc registry (BPF_PSEUDO_KFUNC_CALL). Run on kbpf's empty conntrack table, the lookup
 * misses and the program returns TC_ACT_OK.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "kbpf.h"

/* struct bpf_ct_opts as the final kernel has it (16 bytes). */
struct ct_opts {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u8 reserved[6];
};

SEC("tc")
int ct_lookup(struct __sk_buff *skb)
{
	struct bpf_sock_tuple *t;
	__u8 tuple[36] = {};
	struct ct_opts opts = { .netns_id = -1, .l4proto = 6 };
	struct nf_conn *ct;

	ct = bpf_skb_ct_lookup(skb, (struct bpf_sock_tuple *)tuple, 12, (struct bpf_ct_opts *)&opts,
			       sizeof(opts));
	if (!ct)
		return TC_ACT_OK;
	bpf_ct_release(ct);
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL";
