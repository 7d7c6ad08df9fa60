/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* What BPF C for kbpf needs beyond libbpf's public headers and the uapi headers of Debian's
 * linux-libc-dev (6.1): the tcx verdicts (uapi since Linux 6.6) and the conntrack kfuncs with
 * the structs they take.
 */
#ifndef KBPF_H
#define KBPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* enum tcx_action_base (include/uapi/linux/bpf.h, Linux 6.6+). */
#ifndef TCX_NEXT
#define TCX_NEXT -1
#define TCX_PASS 0
#define TCX_DROP 2
#define TCX_REDIRECT 7
#endif

/* Conntrack (Linux 6.18): struct bpf_ct_opts, the fields of struct nf_conn programs may touch
 * at Linux 6.18 x86-64's offsets (so no CO-RE is needed, on kbpf or on that kernel), and the
 * conntrack kfuncs, declared as libbpf programs declare them and resolved by name at load.
 */
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>

struct bpf_sock_tuple;

struct bpf_ct_opts {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u16 ct_zone_id;
	__u8 ct_zone_dir;
	__u8 reserved[3];
};

/* struct nf_conntrack_tuple and struct nf_conntrack_tuple_hash */
struct kbpf_ct_tuple {
	union nf_inet_addr src_u3;
	__be16 src_port;
	__u16 l3num;
	union nf_inet_addr dst_u3;
	__be16 dst_port;
	__u8 protonum;
	__u8 dir;
};

struct kbpf_ct_tuple_hash {
	__u64 hnnode[2];
	struct kbpf_ct_tuple tuple;
};

struct nf_conn {
	__u32 use;			/* 0: ct_general */
	__u32 lock;			/* 4 */
	__u32 timeout;			/* 8: jiffies it expires at */
	__u16 zone_id;			/* 12 */
	__u8 zone_flags;
	__u8 zone_dir;
	struct kbpf_ct_tuple_hash tuplehash[2];	/* 16: original, reply */
	unsigned long status;		/* 128: IPS_* */
	__u64 ct_net;			/* 136 */
	__u64 nat_bysource[2];		/* 144 */
	struct nf_conn *master;		/* 160 */
	__u32 mark;			/* 168: the only writable field */
	__u32 secmark;			/* 172 */
};

/* An allocated entry not yet inserted: the same layout, a distinct type to the verifier. */
struct nf_conn___init {
	struct nf_conn ct;
};

/* enum ip_conntrack_dir (not uapi) */
#define IP_CT_DIR_ORIGINAL 0
#define IP_CT_DIR_REPLY 1

/* enum nf_nat_manip_type */
#define NF_NAT_MANIP_SRC 0
#define NF_NAT_MANIP_DST 1

#define BPF_F_CURRENT_NETNS (-1)

extern struct nf_conn *bpf_xdp_ct_lookup(struct xdp_md *xdp_ctx, struct bpf_sock_tuple *bpf_tuple,
					 __u32 tuple__sz, struct bpf_ct_opts *opts,
					 __u32 opts__sz) __ksym;
extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb_ctx, struct bpf_sock_tuple *bpf_tuple,
					 __u32 tuple__sz, struct bpf_ct_opts *opts,
					 __u32 opts__sz) __ksym;
extern struct nf_conn___init *bpf_xdp_ct_alloc(struct xdp_md *xdp_ctx,
					       struct bpf_sock_tuple *bpf_tuple, __u32 tuple__sz,
					       struct bpf_ct_opts *opts, __u32 opts__sz) __ksym;
extern struct nf_conn___init *bpf_skb_ct_alloc(struct __sk_buff *skb_ctx,
					       struct bpf_sock_tuple *bpf_tuple, __u32 tuple__sz,
					       struct bpf_ct_opts *opts, __u32 opts__sz) __ksym;
extern struct nf_conn *bpf_ct_insert_entry(struct nf_conn___init *nfct_i) __ksym;
extern void bpf_ct_release(struct nf_conn *nfct) __ksym;
extern void bpf_ct_set_timeout(struct nf_conn___init *nfct, __u32 timeout) __ksym;
extern int bpf_ct_change_timeout(struct nf_conn *nfct, __u32 timeout) __ksym;
extern int bpf_ct_set_status(const struct nf_conn___init *nfct, __u32 status) __ksym;
extern int bpf_ct_change_status(struct nf_conn *nfct, __u32 status) __ksym;
extern int bpf_ct_set_nat_info(struct nf_conn___init *nfct, union nf_inet_addr *addr, int port,
			       int manip) __ksym;

#endif
