//! SK-14 … SK-24: `bpf_sk_assign` from sk_lookup, its checks in order and its flags, through
//! test runs (the selected socket's cookie comes back in `ctx_out`).

use super::support::*;
use super::{prog, setup};
use kbpf::Errno;
use kbpf::net::{Family, Proto};
use kbpf::syscall::{self, Fd};

/// One step of a program: assign `{m0}[key]` (or NULL) with `flags`, the result into
/// `{m1}[slot]`.
enum Step {
    Key(u32, u32, u32),
    Null(u32, u32),
}

fn record(slot: u32) -> String {
    format!(
        "mov %r8, %r0\nstw [%r10-8], {slot}\nlddw %r1, {{m1}}\nmov %r2, %r10\nadd %r2, -8\n\
         call 1\njeq %r0, 0, +1\nstxdw [%r0+0], %r8\n"
    )
}

/// A program doing `steps` in order, then returning `SK_PASS`.
fn steps(steps: &[Step]) -> String {
    let mut s = String::from(prologue());
    for (i, st) in steps.iter().enumerate() {
        match *st {
            Step::Key(key, flags, slot) => s.push_str(&format!(
                "stw [%r10-4], {key}\nlddw %r1, {{m0}}\nmov %r2, %r10\nadd %r2, -4\ncall 1\n\
                 jeq %r0, 0, skip{i}\nmov %r7, %r0\nmov %r1, %r6\nmov %r2, %r7\n\
                 mov %r3, {flags}\ncall 124\n{}mov %r1, %r7\ncall 86\nskip{i}:\n",
                record(slot)
            )),
            Step::Null(flags, slot) => s.push_str(&format!(
                "mov %r1, %r6\nmov %r2, 0\nmov %r3, {flags}\ncall 124\n{}",
                record(slot)
            )),
        }
    }
    s.push_str("mov %r0, 1\nexit\n");
    s
}

struct World {
    _ns: Netns,
    map: Fd,
    out: Fd,
    socks: Vec<Sk>,
}

/// Keys of the sockets in the map.
const L4: u32 = 0;
const L6: u32 = 1;
const L6_DUAL: u32 = 2;
const L6_ONLY: u32 = 3;
const U4: u32 = 4;
const U4_CONNECTED: u32 = 5;
const ESTABLISHED: u32 = 6;
const U4_UNBOUND: u32 = 7;
const REUSEPORT: u32 = 8;

fn world() -> World {
    let ns = netns();
    let net = ns.net.clone();
    let map = sockmap(16);
    let l4 = server(&net, Proto::Tcp, "127.0.0.2:8008".parse().unwrap(), false);
    let l6 = server(&net, Proto::Tcp, "[fd00::2]:8008".parse().unwrap(), false);
    let dual = server(&net, Proto::Tcp, "[::]:8009".parse().unwrap(), false);
    let only = sock(&net, Family::Inet6, Proto::Tcp);
    only.s.set_v6only(true).unwrap();
    only.s.bind("[::]:8010".parse().unwrap()).unwrap();
    only.s.listen(4).unwrap();
    let u4 = server(&net, Proto::Udp, "127.0.0.2:8008".parse().unwrap(), false);
    let uc = server(&net, Proto::Udp, "127.0.0.2:8011".parse().unwrap(), false);
    uc.s.connect("127.0.0.1:9".parse().unwrap()).unwrap();
    let client = sock(&net, Family::Inet, Proto::Tcp);
    client.s.connect("127.0.0.2:8008".parse().unwrap()).unwrap();
    let est = kbpf::net::fd::accept(l4.fd).unwrap();
    let est = Sk {
        fd: est,
        s: kbpf::net::fd::sock_get(est).unwrap(),
    };
    let unbound = sock(&net, Family::Inet, Proto::Udp);
    let rp = server(&net, Proto::Tcp, "127.0.0.2:8012".parse().unwrap(), true);
    let socks = vec![l4, l6, dual, only, u4, uc, est, unbound, rp, client];
    for (k, s) in socks.iter().take(9).enumerate() {
        store(map, k as u32, s);
    }
    World {
        _ns: ns,
        map,
        out: out_map(8),
        socks,
    }
}

impl World {
    fn cookie(&self, key: u32) -> u64 {
        self.socks[key as usize].cookie()
    }

    fn run(
        &self,
        p: &[Step],
        input: &kbpf::net::sk_lookup::ctx::BpfSkLookup,
    ) -> Result<(u32, u64), Errno> {
        let fd = prog(&steps(p), &[self.map, self.out]);
        let r = test_run(fd, input);
        syscall::close(fd).unwrap();
        r
    }

    fn result(&self, slot: u32) -> i64 {
        out(self.out, slot)
    }
}

fn tcp4() -> kbpf::net::sk_lookup::ctx::BpfSkLookup {
    ctx(
        Proto::Tcp,
        "127.0.0.9:4000".parse().unwrap(),
        "127.0.0.1:7007".parse().unwrap(),
    )
}

fn tcp6() -> kbpf::net::sk_lookup::ctx::BpfSkLookup {
    ctx(
        Proto::Tcp,
        "[fd00::9]:4000".parse().unwrap(),
        "[fd00::1]:7007".parse().unwrap(),
    )
}

fn udp4() -> kbpf::net::sk_lookup::ctx::BpfSkLookup {
    ctx(
        Proto::Udp,
        "127.0.0.9:4000".parse().unwrap(),
        "127.0.0.1:7007".parse().unwrap(),
    )
}

fn neg(e: Errno) -> i64 {
    -(e.to_errno() as i64)
}

#[test]
fn sk14_unknown_flags() {
    setup();
    let w = world();
    for flags in [4, 8, 1 << 20] {
        let (rv, cookie) = w.run(&[Step::Key(L4, flags, 0)], &tcp4()).unwrap();
        assert_eq!(w.result(0), neg(Errno::EINVAL), "SK-14 flags {flags:#x}");
        assert_eq!((rv, cookie), (SK_PASS, 0));
    }
    w.run(&[Step::Key(L4, F_REPLACE | F_NO_REUSEPORT, 0)], &tcp4())
        .unwrap();
    assert_eq!(w.result(0), 0, "both known flags");
}

#[test]
fn sk15_sk16_only_rcu_freed_listeners_and_unconnected_udp() {
    setup();
    let w = world();
    w.run(&[Step::Key(ESTABLISHED, 0, 0)], &tcp4()).unwrap();
    assert_eq!(
        w.result(0),
        neg(Errno::ESOCKTNOSUPPORT),
        "SK-15 established TCP"
    );
    w.run(&[Step::Key(U4_UNBOUND, 0, 0)], &udp4()).unwrap();
    assert_eq!(
        w.result(0),
        neg(Errno::ESOCKTNOSUPPORT),
        "SK-15 unhashed UDP"
    );
    w.run(&[Step::Key(U4_CONNECTED, 0, 0)], &udp4()).unwrap();
    assert_eq!(
        w.result(0),
        neg(Errno::ESOCKTNOSUPPORT),
        "SK-16 connected UDP"
    );
    let (_, cookie) = w.run(&[Step::Key(U4, 0, 0)], &udp4()).unwrap();
    assert_eq!((w.result(0), cookie), (0, w.cookie(U4)), "unconnected UDP");
}

#[test]
fn sk17_protocol_mismatch() {
    setup();
    let w = world();
    w.run(&[Step::Key(U4, 0, 0)], &tcp4()).unwrap();
    assert_eq!(w.result(0), neg(Errno::EPROTOTYPE), "SK-17 UDP for TCP");
    w.run(&[Step::Key(L4, 0, 0)], &udp4()).unwrap();
    assert_eq!(w.result(0), neg(Errno::EPROTOTYPE), "SK-17 TCP for UDP");
}

#[test]
fn sk18_family_mismatch_and_dual_stack() {
    setup();
    let w = world();
    w.run(&[Step::Key(L4, 0, 0)], &tcp6()).unwrap();
    assert_eq!(
        w.result(0),
        neg(Errno::EAFNOSUPPORT),
        "SK-18 IPv4 socket, IPv6 lookup"
    );
    w.run(&[Step::Key(L6_ONLY, 0, 0)], &tcp4()).unwrap();
    assert_eq!(
        w.result(0),
        neg(Errno::EAFNOSUPPORT),
        "SK-18 v6only socket, IPv4 lookup"
    );
    for key in [L6_DUAL, L6] {
        let (_, cookie) = w.run(&[Step::Key(key, 0, 0)], &tcp4()).unwrap();
        assert_eq!(
            (w.result(0), cookie),
            (0, w.cookie(key)),
            "dual-stack {key}"
        );
    }
    let (_, cookie) = w.run(&[Step::Key(L6, 0, 0)], &tcp6()).unwrap();
    assert_eq!((w.result(0), cookie), (0, w.cookie(L6)));
}

#[test]
fn sk19_sk20_a_second_selection_needs_replace() {
    setup();
    let w = world();
    let (rv, cookie) = w
        .run(&[Step::Key(L4, 0, 0), Step::Key(L6_DUAL, 0, 1)], &tcp4())
        .unwrap();
    assert_eq!((w.result(0), w.result(1)), (0, neg(Errno::EEXIST)), "SK-19");
    assert_eq!(
        (rv, cookie),
        (SK_PASS, w.cookie(L4)),
        "SK-19: the first stays"
    );
    let (_, cookie) = w
        .run(
            &[Step::Key(L4, 0, 0), Step::Key(L6_DUAL, F_REPLACE, 1)],
            &tcp4(),
        )
        .unwrap();
    assert_eq!((w.result(0), w.result(1)), (0, 0), "SK-20");
    assert_eq!(cookie, w.cookie(L6_DUAL), "SK-20: replaced");
}

#[test]
fn sk21_sk22_null() {
    setup();
    let w = world();
    let (rv, cookie) = w.run(&[Step::Null(0, 0)], &tcp4()).unwrap();
    assert_eq!((w.result(0), rv, cookie), (0, SK_PASS, 0), "SK-21");
    let (_, cookie) = w
        .run(&[Step::Key(L4, 0, 0), Step::Null(F_REPLACE, 1)], &tcp4())
        .unwrap();
    assert_eq!((w.result(0), w.result(1), cookie), (0, 0, 0), "SK-22");
    // NULL without REPLACE over a selection: EEXIST, the selection stays.
    let (_, cookie) = w
        .run(&[Step::Key(L4, 0, 0), Step::Null(0, 1)], &tcp4())
        .unwrap();
    assert_eq!((w.result(1), cookie), (neg(Errno::EEXIST), w.cookie(L4)));
}

#[test]
fn sk22_sk23_ctx_sk_follows_the_selection() {
    setup();
    let w = world();
    // slot 0: ctx->sk before (0 = NULL); slots 1..4 after assigning L4: non-NULL, family,
    // protocol, src_port (host order); slot 5: NULL again after a NULL replace.
    let src = format!(
        "{}ldxdw %r2, [%r6+0]\nmov %r0, 0\njeq %r2, 0, +1\nmov %r0, 1\n{}\
         stw [%r10-4], {L4}\nlddw %r1, {{m0}}\nmov %r2, %r10\nadd %r2, -4\ncall 1\n\
         jne %r0, 0, +2\nmov %r0, 0\nexit\nmov %r7, %r0\nmov %r1, %r6\nmov %r2, %r7\n\
         mov %r3, 0\ncall 124\nmov %r1, %r7\ncall 86\n\
         ldxdw %r9, [%r6+0]\njne %r9, 0, +2\nmov %r0, 0\nexit\n\
         mov %r0, 1\n{}ldxw %r0, [%r9+4]\n{}ldxw %r0, [%r9+12]\n{}ldxw %r0, [%r9+44]\n{}\
         mov %r1, %r6\nmov %r2, 0\nmov %r3, {F_REPLACE}\ncall 124\n\
         ldxdw %r2, [%r6+0]\nmov %r0, 0\njeq %r2, 0, +1\nmov %r0, 1\n{}mov %r0, 1\nexit\n",
        prologue(),
        record(0),
        record(1),
        record(2),
        record(3),
        record(4),
        record(5),
    );
    let fd = prog(&src, &[w.map, w.out]);
    let (rv, cookie) = test_run(fd, &tcp4()).unwrap();
    syscall::close(fd).unwrap();
    assert_eq!((rv, cookie), (SK_PASS, 0));
    assert_eq!(w.result(0), 0, "SK-23: nothing selected, ctx->sk is NULL");
    assert_eq!(
        w.result(1),
        1,
        "SK-23: after the assign it points to the socket"
    );
    assert_eq!(w.result(2), 2, "family");
    assert_eq!(w.result(3), 6, "protocol");
    assert_eq!(w.result(4), 8008, "src_port");
    assert_eq!(
        w.result(5),
        0,
        "SK-22: ctx->sk reads NULL after the NULL replace"
    );
}

#[test]
fn sk24_no_reuseport() {
    setup();
    let w = world();
    let (rv, cookie) = w
        .run(&[Step::Key(REUSEPORT, F_NO_REUSEPORT, 0)], &tcp4())
        .unwrap();
    assert_eq!(
        (w.result(0), rv, cookie),
        (0, SK_PASS, w.cookie(REUSEPORT)),
        "SK-24"
    );
    // Without the flag a test run cannot run the group's selection (SK-57).
    assert_eq!(
        w.run(&[Step::Key(REUSEPORT, 0, 0)], &tcp4()),
        Err(Errno::EOPNOTSUPP)
    );
}
