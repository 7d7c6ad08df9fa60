// SPDX-License-Identifier: MIT OR Apache-2.0
/* Loader test object: conntrack programs every verifier must refuse (the cases of the kernel's
 * progs/test_bpf_nf_fail.c and the generic reference rules, kernel-scenarios §5.5), one per
 * function, plus the two accepted controls they are variations of. The test
 * (shim/tests/ct_verifier.rs) verifies each with kbpf and with the host kernel and checks the
 * verdicts and the log fragments.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "kbpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} jmp SEC(".maps");

#define OPTS struct bpf_ct_opts opts = { .netns_id = -1, .l4proto = 6 }
#define TUPLE struct bpf_sock_tuple tup = {}

SEC("tc")
int ok_lookup_release(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn *ct = bpf_skb_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));

	if (ct) {
		ct->mark = ct->mark + 1;
		bpf_ct_release(ct);
	}
	return 0;
}

SEC("tc")
int ok_alloc_insert(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn___init *fresh;
	struct nf_conn *ct;

	fresh = bpf_skb_ct_alloc(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));
	if (!fresh)
		return 0;
	bpf_ct_set_timeout(fresh, 1000);
	bpf_ct_set_status(fresh, IPS_CONFIRMED);
	fresh->ct.mark = 7;
	ct = bpf_ct_insert_entry(fresh);
	if (!ct)
		return 0;
	bpf_ct_change_timeout(ct, 2000);
	bpf_ct_change_status(ct, IPS_CONFIRMED | IPS_SEEN_REPLY);
	bpf_ct_release(ct);
	return 0;
}

SEC("tc")
int alloc_release(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn___init *ct = bpf_skb_ct_alloc(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));

	if (!ct)
		return 0;
	bpf_ct_release((struct nf_conn *)ct);
	return 0;
}

SEC("tc")
int insert_insert(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn___init *ct = bpf_skb_ct_alloc(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));
	struct nf_conn *ins;

	if (!ct)
		return 0;
	ins = bpf_ct_insert_entry(ct);
	if (!ins)
		return 0;
	ins = bpf_ct_insert_entry((struct nf_conn___init *)ins);
	if (!ins)
		return 0;
	bpf_ct_release(ins);
	return 0;
}

SEC("tc")
int lookup_insert(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn *ct = bpf_skb_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));

	if (!ct)
		return 0;
	ct = bpf_ct_insert_entry((struct nf_conn___init *)ct);
	if (!ct)
		return 0;
	bpf_ct_release(ct);
	return 0;
}

SEC("tc")
int write_not_allowlisted_field(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn *ct = bpf_skb_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));

	if (!ct)
		return 0;
	ct->status = 0xf00;
	bpf_ct_release(ct);
	return 0;
}

SEC("tc")
int write_past_mark(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn *ct = bpf_skb_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));

	if (!ct)
		return 0;
	*(volatile __u64 *)&ct->mark = 1;
	bpf_ct_release(ct);
	return 0;
}

SEC("tc")
int set_timeout_after_insert(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn___init *ct = bpf_skb_ct_alloc(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));
	struct nf_conn *ins;

	if (!ct)
		return 0;
	ins = bpf_ct_insert_entry(ct);
	if (!ins)
		return 0;
	bpf_ct_set_timeout((struct nf_conn___init *)ins, 0);
	bpf_ct_release(ins);
	return 0;
}

SEC("tc")
int set_status_after_insert(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn___init *ct = bpf_skb_ct_alloc(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));
	struct nf_conn *ins;

	if (!ct)
		return 0;
	ins = bpf_ct_insert_entry(ct);
	if (!ins)
		return 0;
	bpf_ct_set_status((struct nf_conn___init *)ins, 0);
	bpf_ct_release(ins);
	return 0;
}

SEC("tc")
int change_timeout_after_alloc(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn___init *ct = bpf_skb_ct_alloc(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));

	if (!ct)
		return 0;
	bpf_ct_change_timeout((struct nf_conn *)ct, 0);
	return 0;
}

SEC("tc")
int change_status_after_alloc(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn___init *ct = bpf_skb_ct_alloc(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));

	if (!ct)
		return 0;
	bpf_ct_change_status((struct nf_conn *)ct, 0);
	return 0;
}

SEC("tc")
int lookup_null_bpf_tuple(struct __sk_buff *ctx)
{
	OPTS;
	struct nf_conn *ct = bpf_skb_ct_lookup(ctx, NULL, 0, &opts, sizeof(opts));

	if (ct)
		bpf_ct_release(ct);
	return 0;
}

SEC("tc")
int lookup_null_bpf_opts(struct __sk_buff *ctx)
{
	TUPLE;
	struct nf_conn *ct = bpf_skb_ct_lookup(ctx, &tup, sizeof(tup.ipv4), NULL, 0);

	if (ct)
		bpf_ct_release(ct);
	return 0;
}

SEC("xdp")
int xdp_lookup_null_bpf_tuple(struct xdp_md *ctx)
{
	OPTS;
	struct nf_conn *ct = bpf_xdp_ct_lookup(ctx, NULL, 0, &opts, sizeof(opts));

	if (ct)
		bpf_ct_release(ct);
	return 0;
}

SEC("xdp")
int xdp_lookup_null_bpf_opts(struct xdp_md *ctx)
{
	TUPLE;
	struct nf_conn *ct = bpf_xdp_ct_lookup(ctx, &tup, sizeof(tup.ipv4), NULL, 0);

	if (ct)
		bpf_ct_release(ct);
	return 0;
}

SEC("tc")
int leak(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn *ct = bpf_skb_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));

	return ct ? 1 : 0;
}

SEC("tc")
int release_unchecked(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn *ct = bpf_skb_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));

	bpf_ct_release(ct);
	return 0;
}

SEC("tc")
int double_release(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn *ct = bpf_skb_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));

	if (!ct)
		return 0;
	bpf_ct_release(ct);
	bpf_ct_release(ct);
	return 0;
}

SEC("tc")
int use_after_release(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn *ct = bpf_skb_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));

	if (!ct)
		return 0;
	bpf_ct_release(ct);
	return ct->mark;
}

SEC("tc")
int release_at_offset(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn *ct = bpf_skb_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));

	if (!ct)
		return 0;
	bpf_ct_release((struct nf_conn *)((char *)ct + 8));
	return 0;
}

SEC("tc")
int tail_call_with_reference(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn *ct = bpf_skb_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));

	if (!ct)
		return 0;
	bpf_tail_call(ctx, &jmp, 0);
	bpf_ct_release(ct);
	return 0;
}

SEC("socket")
int other_program_type(struct __sk_buff *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn *ct = bpf_skb_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));

	if (ct)
		bpf_ct_release(ct);
	return 0;
}

SEC("xdp")
int xdp_calls_skb_lookup(struct xdp_md *ctx)
{
	OPTS;
	TUPLE;
	struct nf_conn *ct = bpf_skb_ct_lookup((struct __sk_buff *)ctx, &tup, sizeof(tup.ipv4),
					       &opts, sizeof(opts));

	if (ct)
		bpf_ct_release(ct);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
