//! SK-35 … SK-45: redirects and reuseport end to end through the netns's lookup path, for
//! TCP (connect) and UDP (a datagram from a connected client), IPv4, IPv6 and IPv4 to a
//! dual-stack IPv6 server, with the selftest's addresses (`support`).

use super::support::*;
use super::{ENGINE, prog, setup};
use kbpf::Errno;
use kbpf::cpu::CpuGuard;
use kbpf::net::sk_lookup::ctx::BpfSkLookup;
use kbpf::net::{self, Family, Proto, Tuple, Via};
use kbpf::syscall;

const PROTOS: [Proto; 2] = [Proto::Tcp, Proto::Udp];

/// Assigns `{m0}[0]` when the lookup's local address is the external one of `ip`.
fn redir_ip(ip: Ip) -> String {
    let body = assign_body(0, 0, None, SK_PASS);
    match ip.client_family() {
        Family::Inet => format!(
            "{}ldxw %r2, [%r6+40]\nlddw %r3, {}\njeq %r2, %r3, +2\nmov %r0, 1\nexit\n{body}",
            prologue(),
            u32::from_ne_bytes([127, 0, 0, 1])
        ),
        Family::Inet6 => format!(
            "{}ldxw %r2, [%r6+44]\njeq %r2, {}, +2\nmov %r0, 1\nexit\n\
             ldxw %r2, [%r6+56]\njeq %r2, {}, +2\nmov %r0, 1\nexit\n{body}",
            prologue(),
            u32::from_ne_bytes([0xfd, 0, 0, 0]),
            u32::from_ne_bytes([0, 0, 0, 1])
        ),
    }
}

#[test]
fn sk35_sk37_redirect_to_another_port() {
    setup();
    for proto in PROTOS {
        for ip in Ip::ALL {
            let ns_g = netns();
            let (ns, net) = ns_g.parts();
            let s = server(&net, proto, ip.ext_for_server(INT_PORT), false);
            let map = sockmap(1);
            store(map, 0, &s);
            let link = attach(prog(&redir_port(EXT_PORT, 0, 0), &[map]), ns);
            let got = deliver(&net, proto, None, ip.ext(EXT_PORT));
            assert_eq!(got, Ok(s.cookie()), "SK-35/37 {proto:?} {ip:?}");
            // Another port is not redirected: nobody listens there.
            let other = deliver(&net, proto, None, ip.ext(EXT_PORT + 1));
            assert_eq!(other, Err(Errno::ECONNREFUSED));
            syscall::close(link).unwrap();
        }
    }
}

#[test]
fn sk36_sk37_redirect_to_another_address() {
    setup();
    for proto in PROTOS {
        for ip in Ip::ALL {
            let ns_g = netns();
            let (ns, net) = ns_g.parts();
            let s = server(&net, proto, ip.int(EXT_PORT), false);
            let map = sockmap(1);
            store(map, 0, &s);
            let link = attach(prog(&redir_ip(ip), &[map]), ns);
            let got = deliver(&net, proto, None, ip.ext(EXT_PORT));
            assert_eq!(got, Ok(s.cookie()), "SK-36/37 {proto:?} {ip:?}");
            syscall::close(link).unwrap();
        }
    }
}

/// `bpf_sk_select_reuseport(ctx, {m0}, &1, 0)`; `SK_PASS` when it worked, else `SK_DROP`.
const SELECT_SOCK_B: &str = "stw [%r10-4], 1\nlddw %r2, {m0}\nmov %r3, %r10\nadd %r3, -4\n\
                             mov %r4, 0\ncall 82\nmov %r1, %r0\nmov %r0, 1\njeq %r1, 0, +1\n\
                             mov %r0, 0\nexit\n";

/// Servers A and B in a reuseport group at the internal address; the group's program picks
/// B (or drops, with `drop`); an sk_lookup program assigns A with `flags`. Optionally a
/// connected member C (UDP). Returns where a client's packet lands.
fn reuseport(
    proto: Proto,
    ip: Ip,
    flags: u32,
    drop: bool,
    connected: bool,
) -> (Result<u64, Errno>, [u64; 2]) {
    let ns_g = netns();
    let (ns, net) = ns_g.parts();
    let a = server(&net, proto, ip.int(INT_PORT), true);
    let b = server(&net, proto, ip.int(INT_PORT), true);
    let _c = connected.then(|| {
        let c = server(&net, proto, ip.int(INT_PORT), true);
        c.s.connect(ip.ext_for_server(9)).unwrap();
        c
    });
    let map = sockmap(2);
    store(map, 0, &a);
    store(map, 1, &b);
    let rp_src = if drop {
        ret(SK_DROP)
    } else {
        SELECT_SOCK_B.to_string()
    };
    let rp = load_reuseport(ENGINE, &rp_src, &[map]);
    a.s.attach_reuseport_prog(syscall::prog_get(rp).unwrap())
        .unwrap();
    let link = attach(prog(&redir(0, flags), &[map]), ns);
    let got = deliver(&net, proto, None, ip.ext(EXT_PORT));
    syscall::close(link).unwrap();
    (got, [a.cookie(), b.cookie()])
}

#[test]
fn sk38_the_group_chooses_after_sk_lookup() {
    setup();
    for proto in PROTOS {
        for ip in Ip::ALL {
            let (got, [_, b]) = reuseport(proto, ip, 0, false, false);
            assert_eq!(got, Ok(b), "SK-38 {proto:?} {ip:?}");
        }
    }
}

#[test]
fn sk39_no_reuseport_skips_the_group() {
    setup();
    for proto in PROTOS {
        for ip in Ip::ALL {
            let (got, [a, _]) = reuseport(proto, ip, F_NO_REUSEPORT, false, false);
            assert_eq!(got, Ok(a), "SK-39 {proto:?} {ip:?}");
        }
    }
}

#[test]
fn sk40_connected_members_do_not_change_the_choice() {
    setup();
    for ip in Ip::ALL {
        let (got, [_, b]) = reuseport(Proto::Udp, ip, 0, false, true);
        assert_eq!(got, Ok(b), "SK-40 {ip:?}");
    }
}

#[test]
fn sk41_a_drop_refuses() {
    setup();
    for proto in PROTOS {
        for ip in [Ip::V4, Ip::V6] {
            let ns_g = netns();
            let (ns, net) = ns_g.parts();
            let _s = server(&net, proto, ip.ext(EXT_PORT), false);
            let link = attach(prog(&ret(SK_DROP), &[]), ns);
            let got = deliver(&net, proto, None, ip.ext(EXT_PORT));
            assert_eq!(got, Err(Errno::ECONNREFUSED), "SK-41 {proto:?} {ip:?}");
            syscall::close(link).unwrap();
            // Detached, the server is reachable again.
            assert!(deliver(&net, proto, None, ip.ext(EXT_PORT)).is_ok());
        }
    }
}

#[test]
fn sk42_a_reuseport_drop_refuses() {
    setup();
    for proto in PROTOS {
        for ip in Ip::ALL {
            let (got, _) = reuseport(proto, ip, 0, true, false);
            assert_eq!(got, Err(Errno::ECONNREFUSED), "SK-42 {proto:?} {ip:?}");
        }
    }
}

#[test]
fn sk43_ingress_ifindex_is_the_loopback() {
    setup();
    let src = format!(
        "ldxw %r2, [%r1+64]\nmov %r0, 1\njne %r2, {}, +1\nmov %r0, 0\nexit\n",
        net::lookup::LOOPBACK_IFINDEX
    );
    for proto in PROTOS {
        let ns_g = netns();
        let (ns, net) = ns_g.parts();
        let _s = server(&net, proto, Ip::V4.ext(EXT_PORT), false);
        let link = attach(prog(&src, &[]), ns);
        assert_eq!(
            deliver(&net, proto, None, Ip::V4.ext(EXT_PORT)),
            Err(Errno::ECONNREFUSED),
            "SK-43 {proto:?}"
        );
        syscall::close(link).unwrap();
    }
}

/// A program comparing every allowed read of the context with `want`'s bytes: `SK_PASS` when
/// all agree, else `SK_DROP` (test_sk_lookup.c's `ctx_narrow_access`).
fn narrow_checks(want: &BpfSkLookup) -> String {
    let b = want.to_bytes();
    let mut s = String::from("mov %r6, %r1\n");
    let mut check = |off: usize, size: usize, legacy: bool| {
        let mut v = [0u8; 8];
        let n = if legacy { 2 } else { size };
        v[..n].copy_from_slice(&b[off..off + n]);
        let value = u64::from_ne_bytes(v);
        let sz = ["", "b", "h", "", "w"][size];
        s.push_str(&format!(
            "ldx{sz} %r2, [%r6+{off}]\nlddw %r3, {value}\njeq %r2, %r3, +2\nmov %r0, 0\nexit\n"
        ));
    };
    for f in [8, 12, 16, 20, 24, 28, 32, 40, 44, 48, 52, 56, 60, 64] {
        check(f, 4, false);
        check(f, 2, false);
        check(f + 2, 2, false);
        for i in 0..4 {
            check(f + i, 1, false);
        }
    }
    for (off, size) in [(36, 2), (36, 1), (37, 1), (38, 2), (38, 1), (39, 1)] {
        check(off, size, false);
    }
    check(36, 4, true);
    s.push_str("mov %r0, 1\nexit\n");
    s
}

#[test]
fn sk44_every_field_through_narrow_and_full_reads() {
    setup();
    for proto in PROTOS {
        for ip in Ip::ALL {
            let ns_g = netns();
            let (ns, net) = ns_g.parts();
            let d = server(&net, proto, ip.ext_for_server(EXT_PORT), false);
            let mut want = ctx(proto, ip.client_src(INT_PORT), ip.ext(EXT_PORT));
            want.ingress_ifindex = net::lookup::LOOPBACK_IFINDEX;
            let link = attach(prog(&narrow_checks(&want), &[]), ns);
            let got = deliver(&net, proto, Some(ip.client_src(INT_PORT)), ip.ext(EXT_PORT));
            assert_eq!(got, Ok(d.cookie()), "SK-44 {proto:?} {ip:?}");
            // A context that differs in one byte is caught.
            let mut other = want;
            other.local_port += 1;
            syscall::close(link).unwrap();
            let link = attach(prog(&narrow_checks(&other), &[]), ns);
            let c = deliver(
                &net,
                proto,
                Some(ip.client_src(INT_PORT + 1)),
                ip.ext(EXT_PORT),
            );
            assert_eq!(
                c,
                Err(Errno::ECONNREFUSED),
                "SK-44 mismatch {proto:?} {ip:?}"
            );
            syscall::close(link).unwrap();
        }
    }
}

#[test]
fn sk45_established_and_connected_sockets_come_first() {
    setup();
    for ip in [Ip::V4, Ip::V6] {
        // TCP: a connection made before the program dropped everything.
        let ns_g = netns();
        let (ns, net) = ns_g.parts();
        let d = server(&net, Proto::Tcp, ip.ext(EXT_PORT), false);
        let client = sock(&net, ip.client_family(), Proto::Tcp);
        client.s.bind(ip.client_src(INT_PORT)).unwrap();
        client.s.connect(ip.ext(EXT_PORT)).unwrap();
        let child = d.s.accept().unwrap();
        let link = attach(prog(&ret(SK_DROP), &[]), ns);
        let t = Tuple::new(Proto::Tcp, ip.client_src(INT_PORT), ip.ext(EXT_PORT)).unwrap();
        let mut g = CpuGuard::enter();
        match net::lookup(&net, &mut g, &t) {
            net::Found::Sock(s, via) => {
                assert_eq!(
                    (s.cookie(), via),
                    (child.cookie(), Via::Established),
                    "SK-45 TCP"
                );
            }
            other => panic!("SK-45 TCP: {other:?}"),
        }
        drop(g);
        // A new connection is refused.
        assert_eq!(
            deliver(&net, Proto::Tcp, None, ip.ext(EXT_PORT)),
            Err(Errno::ECONNREFUSED)
        );
        syscall::close(link).unwrap();

        // UDP: a socket connected to the sender gets its datagrams despite the program.
        let ns_g = netns();
        let (ns, net) = ns_g.parts();
        let u = server(&net, Proto::Udp, ip.ext(EXT_PORT), false);
        u.s.connect(ip.client_src(INT_PORT)).unwrap();
        let link = attach(prog(&ret(SK_DROP), &[]), ns);
        let got = deliver(
            &net,
            Proto::Udp,
            Some(ip.client_src(INT_PORT)),
            ip.ext(EXT_PORT),
        );
        assert_eq!(got, Ok(u.cookie()), "SK-45 UDP {ip:?}");
        assert_eq!(
            deliver(
                &net,
                Proto::Udp,
                Some(ip.client_src(INT_PORT + 1)),
                ip.ext(EXT_PORT)
            ),
            Err(Errno::ECONNREFUSED),
            "another sender is looked up through the program"
        );
        syscall::close(link).unwrap();
    }
}
