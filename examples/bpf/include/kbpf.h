/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* What BPF C for kbpf needs beyond libbpf's public headers and the uapi headers of Debian's
 * linux-libc-dev (6.1): the tcx verdicts (uapi since Linux 6.6) and kbpf's kfunc declarations.
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

/* The conntrack kfuncs kbpf's verifier knows (their run-time side comes with the conntrack
 * work): declared as libbpf programs declare them, resolved by name at load.
 */
struct nf_conn;
struct bpf_sock_tuple;
struct bpf_ct_opts;
extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb_ctx, struct bpf_sock_tuple *bpf_tuple,
					 __u32 tuple__sz, struct bpf_ct_opts *opts,
					 __u32 opts__sz) __ksym;
extern struct nf_conn *bpf_xdp_ct_lookup(struct xdp_md *xdp_ctx, struct bpf_sock_tuple *bpf_tuple,
					 __u32 tuple__sz, struct bpf_ct_opts *opts,
					 __u32 opts__sz) __ksym;
extern void bpf_ct_release(struct nf_conn *nfct) __ksym;

#endif
