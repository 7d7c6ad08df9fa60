//! Networking as BPF meets it: network namespaces with socket tables, a socket model (TCP and
//! UDP, IPv4 and IPv6, `SO_REUSEPORT` groups, RCU-freed and reference-counted sockets with
//! cookies), the transport lookup path with `BPF_PROG_TYPE_SK_LOOKUP` programs in front of
//! it, socket maps, and `BPF_PROG_TYPE_SK_REUSEPORT`.
//!
//! | module | what | Linux counterpart |
//! |---|---|---|
//! | [`addr`] | families, protocols, addresses (IPv4 v4-mapped), which sockets an address reaches | `in.h`, `in6.h`, `compute_score` |
//! | [`sock`] | the socket: `struct bpf_sock` view first, refcount, cookie, state; [`sock::SockRef`] | `struct sock`, `sock_hold`/`sock_put` |
//! | [`rcu_obj`], [`rcu_chain`] | the lifetime protocol (get-unless-zero, free a grace period after the last put); RCU-published copy-on-write lists | `sk_refcnt`, `SOCK_RCU_FREE`, `hlist_nulls` |
//! | [`netns`] | a netns: tables, binds, sk_lookup hook, its conntrack number, exit | `struct net`, `net_namespace.c` |
//! | [`nsid`] | netns numbers and the ids programs name them by (socket helpers, conntrack) | `peernet2id`, `get_net_ns_by_id` |
//! | [`table`] | listener, established and UDP tables | `inet_hashtables.h`, `udp_table` |
//! | [`socket`], [`conn`] | socket, bind, listen, close; connect, accept, sendto, recvfrom | `af_inet.c`, `udp.c`, `tcp_ipv4.c` |
//! | [`reuseport`], [`reuseport_prog`] | reuseport groups and hash selection; `SK_REUSEPORT` programs | `sock_reuseport.c`, `filter.c` |
//! | [`lookup`] | the transport lookup path: established, sk_lookup, listeners / unconnected | `__inet_lookup`, `__udp4_lib_lookup` |
//! | [`sk_lookup`] | the sk_lookup context, run array, `bpf_sk_assign`, links, test runs | `filter.c`, `filter.h`, `net_namespace.c`, `test_run.c` |
//! | [`bpf_sk`] | the socket lookups TC, cgroup skb and XDP programs call; TC's `bpf_sk_assign` | `filter.c` (`__bpf_skc_lookup`, `bpf_sk_assign`) |
//! | [`sockmap`] | `SOCKMAP` / `SOCKHASH` holding real sockets | `sock_map.c` |
//! | [`fd`] | sockets and netns behind handles | `socket(2)`, `/proc/self/ns/net` |
//!
//! Fast path — a lookup, a program's socket-map or tuple lookup, `bpf_sk_assign`,
//! `bpf_sk_release` — takes no lock and allocates nothing; control path — creating, binding,
//! connecting, closing, attaching — locks and allocates, validates first and changes nothing
//! on error.

pub mod addr;
pub mod bpf_sk;
pub mod conn;
pub mod fd;
pub mod helpers;
pub mod lookup;
pub mod netns;
pub mod nsid;
pub mod rcu_chain;
pub mod rcu_obj;
pub mod reuseport;
pub mod reuseport_prog;
pub mod sk_lookup;
pub mod sock;
pub mod socket;
pub mod sockmap;
pub mod table;

pub use addr::{Addr, Endpoint, Family, Proto};
pub use conn::Delivery;
pub use lookup::{Found, Tuple, Via, lookup};
pub use netns::{Net, init_net};
pub use sock::{Sock, SockRef};
pub use socket::{Socket, socket};
