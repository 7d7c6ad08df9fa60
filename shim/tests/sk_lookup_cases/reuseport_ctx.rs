//! `struct sk_reuseport_md` at run time on real reuseport groups (both engines): every read
//! the verifier allows of `len`, `eth_protocol`, `ip_protocol`, `bind_inany` and `hash`, the
//! packet through `data`/`data_end` and `bpf_skb_load_bytes`, `sk` and `migrating_sk`, for TCP
//! and UDP, IPv4 and IPv6, groups bound to an address and to the wildcard. The values are
//! Linux 6.18's (`sk_reuseport_convert_ctx_access` with the verifier's narrowing): a read of
//! a 16-bit or `bool` kernel field as wide as the field or wider gives the whole field
//! wherever in the uapi field it is.

use super::support::*;
use super::{ENGINE, setup};
use kbpf::net::Proto;
use kbpf::net::reuseport::reciprocal_scale;
use kbpf::syscall::{self, Fd};
use std::net::SocketAddr;

/// Every narrow read, (offset, size): `len`, `eth_protocol`, `ip_protocol`, `bind_inany`, then
/// `hash`.
const READS: [(i64, usize); 24] = [
    (16, 4),
    (16, 2),
    (18, 2),
    (16, 1),
    (17, 1),
    (18, 1),
    (19, 1),
    (20, 4),
    (20, 2),
    (22, 2),
    (24, 4),
    (24, 2),
    (26, 2),
    (24, 1),
    (25, 1),
    (26, 1),
    (27, 1),
    (28, 4),
    (28, 2),
    (30, 2),
    (28, 1),
    (29, 1),
    (31, 1),
    (32, 4),
];

/// Slots after the narrow reads: the packet's ports word, whether 20 bytes are there, whether
/// `migrating_sk` is NULL, `sk`'s family, protocol and local port, `bpf_skb_load_bytes` of the
/// ports (result, bytes), of 4 bytes past the end (result, bytes).
const PKT: u32 = READS.len() as u32;

/// `{m0}[slot] = r7` (the context stays in r6).
fn record(slot: u32) -> String {
    format!(
        "stw [%r10-4], {slot}\nlddw %r1, {{m0}}\nmov %r2, %r10\nadd %r2, -4\ncall 1\n\
         jeq %r0, 0, +1\nstxdw [%r0+0], %r7\n"
    )
}

/// The program: every read into its slot, then `SK_PASS` (the flow hash chooses).
fn program() -> String {
    let mut p = String::from("mov %r6, %r1\n");
    for (slot, (off, size)) in READS.iter().enumerate() {
        let s = ["", "b", "h", "", "w"][*size];
        p += &format!("ldx{s} %r7, [%r6{off:+}]\n");
        p += &record(slot as u32);
    }
    // The ports word, when 4 bytes are there.
    p += "mov %r7, 0\nldxdw %r2, [%r6+0]\nldxdw %r3, [%r6+8]\nmov %r4, %r2\nadd %r4, 4\n\
          jgt %r4, %r3, +1\nldxw %r7, [%r2+0]\n";
    p += &record(PKT);
    // Whether the packet is 20 bytes or more.
    p += "mov %r7, 0\nldxdw %r2, [%r6+0]\nldxdw %r3, [%r6+8]\nmov %r4, %r2\nadd %r4, 20\n\
          jgt %r4, %r3, +1\nmov %r7, 1\n";
    p += &record(PKT + 1);
    p += "mov %r7, 0\nldxdw %r2, [%r6+48]\njne %r2, 0, +1\nmov %r7, 1\n";
    p += &record(PKT + 2);
    for (i, (off, s)) in [(4, "w"), (12, "w"), (44, "w")].iter().enumerate() {
        p += &format!("ldxdw %r2, [%r6+40]\nldx{s} %r7, [%r2{off:+}]\n");
        p += &record(PKT + 3 + i as u32);
    }
    for (i, off) in ["0", "%r9"].iter().enumerate() {
        if i == 1 {
            // The packet's length less 3: the last 4 bytes run past the end.
            p += "ldxw %r9, [%r6+16]\nsub %r9, 3\n";
        }
        p += &format!(
            "stdw [%r10-16], -1\nmov %r1, %r6\nmov %r2, {off}\nmov %r3, %r10\nadd %r3, -16\n\
             mov %r4, 4\ncall 26\nmov %r7, %r0\n"
        );
        p += &record(PKT + 6 + 2 * i as u32);
        p += "ldxw %r7, [%r10-16]\n";
        p += &record(PKT + 7 + 2 * i as u32);
    }
    p + "mov %r0, 1\nexit\n"
}

/// Servers A and B in a group at `addr` running [`program`]; a client's packet from
/// `client`: where it went, the slots, both cookies.
fn run(
    proto: Proto,
    addr: SocketAddr,
    client: SocketAddr,
    dst: SocketAddr,
) -> (u64, Vec<u64>, [u64; 2]) {
    // The initial netns, which no other case of this binary uses: netns numbers are few
    // (`MAX_NETNS`), and every case here has its own ports.
    let ns = kbpf::net::fd::netns_init().unwrap();
    let net = kbpf::net::fd::netns_get(ns).unwrap();
    let a = server(&net, proto, addr, true);
    let b = server(&net, proto, addr, true);
    let slots_map = out_map(PKT + 10);
    let rp: Fd = load_reuseport(ENGINE, &program(), &[slots_map]);
    a.s.attach_reuseport_prog(syscall::prog_get(rp).unwrap())
        .unwrap();
    let got = deliver(&net, proto, Some(client), dst).expect("delivered");
    let slots = (0..PKT + 10).map(|k| out(slots_map, k) as u64).collect();
    syscall::close(rp).unwrap();
    syscall::close(slots_map).unwrap();
    syscall::close(ns).unwrap();
    (got, slots, [a.cookie(), b.cookie()])
}

#[test]
fn every_sk_reuseport_md_read_on_a_real_group() {
    setup();
    let mut port = INT_PORT;
    for proto in [Proto::Tcp, Proto::Udp] {
        for ip in [Ip::V4, Ip::V6] {
            for inany in [false, true] {
                port += 1;
                let addr: SocketAddr = if inany {
                    match ip {
                        Ip::V6 => format!("[::]:{port}"),
                        _ => format!("0.0.0.0:{port}"),
                    }
                    .parse()
                    .unwrap()
                } else {
                    ip.int(port)
                };
                let what = format!("{proto:?} {ip:?} inany={inany}");
                let client = ip.ext(port - 1000);
                let (got, v, [a, b]) = run(proto, addr, client, ip.int(port));
                let (len, l4) = match proto {
                    Proto::Tcp => (20u64, 6u64),
                    Proto::Udp => (8, 17),
                };
                let eth: u64 = if ip == Ip::V6 { 0xdd86 } else { 0x0008 };
                let any = inany as u64;
                let expect: [u64; 23] = [
                    len, len, 0, len, 0, 0, 0, // len
                    eth, eth, eth, // eth_protocol: the 16-bit field at any read
                    l4, l4, l4, l4, 0, 0, 0, // ip_protocol
                    any, any, any, any, any, any, // bind_inany: a bool
                ];
                assert_eq!(&v[..23], &expect, "{what}: narrow reads");
                // The flow hash chose: SK_PASS without a selection.
                let hash = v[23] as u32;
                let chosen = [a, b][reciprocal_scale(hash, 2) as usize];
                assert_eq!(got, chosen, "{what}: hash {hash:#x}");
                let p = PKT as usize;
                let ports = u32::from_ne_bytes({
                    let mut w = [0u8; 4];
                    w[..2].copy_from_slice(&(port - 1000).to_be_bytes());
                    w[2..].copy_from_slice(&port.to_be_bytes());
                    w
                }) as u64;
                assert_eq!(v[p], ports, "{what}: the transport header's ports");
                assert_eq!(v[p + 1], (proto == Proto::Tcp) as u64, "{what}: 20 bytes");
                assert_eq!(v[p + 2], 1, "{what}: migrating_sk is NULL");
                let family = if ip == Ip::V6 { 10 } else { 2 };
                assert_eq!(v[p + 3..p + 6], [family, l4, port as u64], "{what}: sk");
                assert_eq!(v[p + 6..p + 8], [0, ports], "{what}: load_bytes");
                let efault = (-14i64) as u64;
                assert_eq!(
                    v[p + 8..p + 10],
                    [efault, 0],
                    "{what}: load_bytes past the end"
                );
            }
        }
    }
}
