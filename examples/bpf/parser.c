// SPDX-License-Identifier: MIT OR Apache-2.0
/* Seed 000's packet parser (the tail-call patch's networking use case), as a TC program:
 * packet_parser parses Ethernet and IPv4, then bpf_tail_call()s into a per-protocol program
 * picked by the IP protocol number. Each handler counts its packets in `stats`, records what
 * it saw in `last_verdict` (global data, .bss) and returns a TC verdict. The jump table is
 * filled from the object itself (libbpf's `.values` initializer), so loading the object is
 * all it takes.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Verdict tags in bits 16.. of last_verdict; the low 16 bits hold a port or ICMP type. */
#define TAG_TCP 1
#define TAG_UDP 2
#define TAG_ICMP 3
#define VERDICT_UNKNOWN 0xdead

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 256);
} stats SEC(".maps");

int parse_tcp(struct __sk_buff *skb);
int parse_udp(struct __sk_buff *skb);
int parse_icmp(struct __sk_buff *skb);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__array(values, int (struct __sk_buff *));
} jmp_table SEC(".maps") = {
	.values = {
		[IPPROTO_ICMP] = (void *)&parse_icmp,
		[IPPROTO_TCP] = (void *)&parse_tcp,
		[IPPROTO_UDP] = (void *)&parse_udp,
	},
};

/* What the last packet was (written by whichever program handled it). */
__u64 last_verdict;
/* Packets the parser saw (.data: starts at a non-zero value to show initialised data). */
__u64 seen = 0x1000;
/* TCP destination port the parser drops (.rodata). */
const volatile __u16 blocked_port = 23;

/* A BPF-to-BPF call (a .text subprogram shared by the handlers). */
static __noinline __u64 make_verdict(__u64 tag, __u64 field)
{
	return tag << 16 | field;
}

static __always_inline void count(__u32 proto)
{
	__u64 *n = bpf_map_lookup_elem(&stats, &proto);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("tc")
int packet_parser(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);

	seen++;
	last_verdict = VERDICT_UNKNOWN;
	if ((void *)(ip + 1) > data_end)
		return TC_ACT_OK;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	bpf_tail_call(skb, &jmp_table, ip->protocol);
	/* No program for this protocol: the default path. */
	return TC_ACT_OK;
}

/* L4 header of an IPv4 packet with a 20-byte header (the samples'). */
#define L4_OFF (sizeof(struct ethhdr) + sizeof(struct iphdr))

SEC("tc")
int parse_tcp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u16 *ports = data + L4_OFF;
	__u16 dport;

	if ((void *)(ports + 2) > data_end)
		return TC_ACT_SHOT;
	dport = bpf_ntohs(ports[1]);
	count(IPPROTO_TCP);
	last_verdict = make_verdict(TAG_TCP, dport);
	return dport == blocked_port ? TC_ACT_SHOT : TC_ACT_OK;
}

SEC("tc")
int parse_udp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u16 *ports = data + L4_OFF;

	if ((void *)(ports + 2) > data_end)
		return TC_ACT_SHOT;
	count(IPPROTO_UDP);
	last_verdict = make_verdict(TAG_UDP, bpf_ntohs(ports[1]));
	return TC_ACT_OK;
}

SEC("tc")
int parse_icmp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u8 *type = data + L4_OFF;

	if ((void *)(type + 1) > data_end)
		return TC_ACT_SHOT;
	count(IPPROTO_ICMP);
	last_verdict = make_verdict(TAG_ICMP, *type);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
