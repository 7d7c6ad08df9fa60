// SPDX-License-Identifier: MIT OR Apache-2.0
/* Seed 002's two use cases for BPF_PROG_TYPE_SK_LOOKUP, run on every listener lookup of the
 * netns they are linked to:
 *
 *   (1) steer_prefix_port:   192.0.2.0/24, port 80  -> the "nginx" socket  (services[0])
 *   (2) steer_addr_any_port: 198.51.100.1, any port -> the "proxy" socket  (services[1])
 *
 * Both fetch the socket from a SOCKMAP (the lookup hands out a reference the program must
 * release), select it with bpf_sk_assign, and count what they steered in global data. A
 * lookup they do not match passes on to the regular listener lookup; a service whose socket is
 * missing from the map refuses the connection.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef AF_INET
#define AF_INET 2
#endif

#define NGINX 0
#define PROXY 1

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} services SEC(".maps");

/* Connections steered to each service, and lookups refused because its socket was missing. */
__u64 steered[2];
__u64 refused;

static __always_inline int steer(struct bpf_sk_lookup *ctx, __u32 key)
{
	struct bpf_sock *sk;
	long err;

	sk = bpf_map_lookup_elem(&services, &key);
	if (!sk) {
		__sync_fetch_and_add(&refused, 1);
		return SK_DROP;
	}
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err)
		return SK_DROP;
	__sync_fetch_and_add(&steered[key & 1], 1);
	return SK_PASS;
}

SEC("sk_lookup")
int steer_prefix_port(struct bpf_sk_lookup *ctx)
{
	if (ctx->family != AF_INET || ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	/* local_ip4 is in network byte order, local_port in host order. */
	if ((ctx->local_ip4 & bpf_htonl(0xffffff00)) != bpf_htonl(0xc0000200))
		return SK_PASS;
	if (ctx->local_port != 80)
		return SK_PASS;
	return steer(ctx, NGINX);
}

SEC("sk_lookup")
int steer_addr_any_port(struct bpf_sk_lookup *ctx)
{
	if (ctx->family != AF_INET || ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	if (ctx->local_ip4 != bpf_htonl(0xc6336401))
		return SK_PASS;
	return steer(ctx, PROXY);
}

char _license[] SEC("license") = "Dual MIT/GPL";
