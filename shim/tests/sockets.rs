//! The socket model's control path and socket maps (`kbpf::net`): binds and their conflicts,
//! listen, connect, accept, datagrams, reuseport groups choosing by flow hash, netns life,
//! SOCKMAP/SOCKHASH from user space with the kernel's errnos, sockets leaving maps when they
//! close, and no socket leaked once everything is closed.

use kbpf::cpu::{CpuGuard, rcu};
use kbpf::net::{self, Delivery, Family, Proto, Tuple};
use kbpf::sync::Arc;
use kbpf::syscall::{self, Object};
use kbpf::uapi::{MapType, UpdateFlags};
use kbpf::{Errno, MapAttr};
use std::net::SocketAddr;

fn setup() {
    kbpf_shim::host::install();
}

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A netns a test created, dismantled (`Net::exit`) when the test drops it, so its number is
/// free again.
struct Netns(Arc<net::Net>);

impl std::ops::Deref for Netns {
    type Target = Arc<net::Net>;
    fn deref(&self) -> &Arc<net::Net> {
        &self.0
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.0.exit();
    }
}

fn netns() -> Netns {
    Netns(net::Net::create().unwrap())
}

#[test]
fn binds_conflict_unless_both_reuse_the_port() {
    setup();
    let n = netns();
    let tcp = |f| net::socket(&n, f, Proto::Tcp).unwrap();
    let x = tcp(Family::Inet);
    x.bind(a("127.0.0.1:7000")).unwrap();
    assert_eq!(
        tcp(Family::Inet).bind(a("127.0.0.1:7000")),
        Err(Errno::EADDRINUSE)
    );
    assert_eq!(
        tcp(Family::Inet).bind(a("0.0.0.0:7000")),
        Err(Errno::EADDRINUSE)
    );
    tcp(Family::Inet).bind(a("127.0.0.2:7000")).unwrap();
    // A dual-stack IPv6 wildcard covers IPv4; a v6only one does not.
    assert_eq!(
        tcp(Family::Inet6).bind(a("[::]:7000")),
        Err(Errno::EADDRINUSE)
    );
    let only = tcp(Family::Inet6);
    only.set_v6only(true).unwrap();
    only.bind(a("[::]:7000")).unwrap();
    assert_eq!(only.set_v6only(false), Err(Errno::EINVAL), "after bind");
    // UDP has its own ports.
    net::socket(&n, Family::Inet, Proto::Udp)
        .unwrap()
        .bind(a("127.0.0.1:7000"))
        .unwrap();
    // Both with SO_REUSEPORT: fine.
    let r1 = tcp(Family::Inet);
    r1.set_reuseport(true).unwrap();
    r1.bind(a("127.0.0.1:7001")).unwrap();
    let r2 = tcp(Family::Inet);
    r2.set_reuseport(true).unwrap();
    r2.bind(a("127.0.0.1:7001")).unwrap();
    assert_eq!(
        tcp(Family::Inet).bind(a("127.0.0.1:7001")),
        Err(Errno::EADDRINUSE)
    );
    // Wrong family, bound twice, v4-mapped on v6only.
    assert_eq!(
        tcp(Family::Inet).bind(a("[::1]:7002")),
        Err(Errno::EAFNOSUPPORT)
    );
    assert_eq!(x.bind(a("127.0.0.1:7003")), Err(Errno::EINVAL));
    let o = tcp(Family::Inet6);
    o.set_v6only(true).unwrap();
    assert_eq!(o.bind(a("[::ffff:127.0.0.1]:7004")), Err(Errno::EINVAL));
    // Port 0: distinct ephemeral ports.
    let e1 = tcp(Family::Inet);
    e1.bind(a("127.0.0.1:0")).unwrap();
    let e2 = tcp(Family::Inet);
    e2.bind(a("127.0.0.1:0")).unwrap();
    let (p1, p2) = (
        e1.local_addr().unwrap().port(),
        e2.local_addr().unwrap().port(),
    );
    assert!(p1 >= net::netns::EPHEMERAL_LOW && p2 >= net::netns::EPHEMERAL_LOW && p1 != p2);
    // Closing frees the port.
    drop(x);
    tcp(Family::Inet).bind(a("127.0.0.1:7000")).unwrap();
}

#[test]
fn listen_connect_accept() {
    setup();
    let n = netns();
    let l = net::socket(&n, Family::Inet, Proto::Tcp).unwrap();
    assert_eq!(l.accept().err(), Some(Errno::EINVAL), "not listening");
    l.listen(4).unwrap();
    let port = l.local_addr().unwrap().port();
    assert!(port >= net::netns::EPHEMERAL_LOW, "listen autobinds");
    l.listen(8).unwrap();
    assert_eq!(l.accept().err(), Some(Errno::EAGAIN));
    let c = net::socket(&n, Family::Inet, Proto::Tcp).unwrap();
    let dst = SocketAddr::new(a("127.0.0.1:0").ip(), port);
    assert_eq!(c.connect(dst), Ok(Some(l.cookie())));
    assert_eq!(c.connect(dst), Err(Errno::EISCONN));
    assert_eq!(l.connect(dst), Err(Errno::EISCONN), "a listener");
    let child = l.accept().unwrap();
    assert_eq!(child.peer_addr(), c.local_addr());
    assert_eq!(child.local_addr(), Some(dst));
    assert_eq!(c.peer_addr(), Some(dst));
    // The established pair is found by the 4-tuple.
    let t = Tuple::new(Proto::Tcp, c.local_addr().unwrap(), dst).unwrap();
    let mut g = CpuGuard::enter();
    let found = net::lookup(&n, &mut g, &t).sock().map(|s| s.cookie());
    drop(g);
    assert_eq!(found, Some(child.cookie()));
    // Nobody on that port: refused, and an autobound client's port is given back.
    let lone = net::socket(&n, Family::Inet, Proto::Tcp).unwrap();
    assert_eq!(lone.connect(a("127.0.0.1:1")), Err(Errno::ECONNREFUSED));
    assert_eq!(lone.local_addr(), None);
    // UDP cannot listen; a wildcard destination means the loopback.
    let u = net::socket(&n, Family::Inet, Proto::Udp).unwrap();
    assert_eq!(u.listen(1), Err(Errno::EINVAL));
    let c2 = net::socket(&n, Family::Inet, Proto::Tcp).unwrap();
    assert_eq!(
        c2.connect(SocketAddr::new(a("0.0.0.0:0").ip(), port)),
        Ok(Some(l.cookie()))
    );
    // Unaccepted connections close with their listener.
    drop(l);
    let t2 = Tuple::new(
        Proto::Tcp,
        c2.local_addr().unwrap(),
        c2.peer_addr().unwrap(),
    )
    .unwrap();
    let mut g = CpuGuard::enter();
    assert!(net::lookup(&n, &mut g, &t2).sock().is_none());
}

#[test]
fn datagrams_and_refusals() {
    setup();
    let n = netns();
    let s = net::socket(&n, Family::Inet6, Proto::Udp).unwrap();
    s.bind(a("[::]:5353")).unwrap();
    let c = net::socket(&n, Family::Inet, Proto::Udp).unwrap();
    assert_eq!(c.send_to(b"x", None), Err(Errno::EDESTADDRREQ));
    assert_eq!(
        c.send_to(b"hi", Some(a("127.0.0.1:5353"))),
        Ok(Delivery::To { cookie: s.cookie() }),
        "a dual-stack socket takes IPv4"
    );
    let d = s.recv_from().unwrap();
    assert_eq!(d.data, b"hi");
    // Autobound to the wildcard, the datagram carries the loopback source.
    let port = c.local_addr().unwrap().port();
    assert_eq!(
        c.local_addr(),
        Some(SocketAddr::new(a("0.0.0.0:0").ip(), port))
    );
    assert_eq!(
        d.from.to_socket_addr(Family::Inet),
        SocketAddr::new(a("127.0.0.1:0").ip(), port)
    );
    assert_eq!(s.recv_from().err(), Some(Errno::EAGAIN));
    // A connected client learns of a refusal from its next receive, once.
    c.connect(a("127.0.0.1:9")).unwrap();
    assert_eq!(c.send_to(b"?", None), Ok(Delivery::NoSocket));
    assert_eq!(c.recv_from().err(), Some(Errno::ECONNREFUSED));
    assert_eq!(c.recv_from().err(), Some(Errno::EAGAIN));
    // An unconnected one is not told.
    let u = net::socket(&n, Family::Inet, Proto::Udp).unwrap();
    assert_eq!(
        u.send_to(b"?", Some(a("127.0.0.1:9"))),
        Ok(Delivery::NoSocket)
    );
    assert_eq!(u.recv_from().err(), Some(Errno::EAGAIN));
    // TCP has no datagrams.
    let t = net::socket(&n, Family::Inet, Proto::Tcp).unwrap();
    assert_eq!(
        t.send_to(b"x", Some(a("127.0.0.1:9"))),
        Err(Errno::EOPNOTSUPP)
    );
}

#[test]
fn reuseport_groups_choose_by_flow_hash() {
    setup();
    let n = netns();
    let members: Vec<_> = (0..4)
        .map(|_| {
            let s = net::socket(&n, Family::Inet, Proto::Udp).unwrap();
            s.set_reuseport(true).unwrap();
            s.bind(a("127.0.0.1:6000")).unwrap();
            s
        })
        .collect();
    let cookies: Vec<u64> = members.iter().map(|s| s.cookie()).collect();
    let pick = |port: u16| {
        let t = Tuple::new(
            Proto::Udp,
            SocketAddr::new(a("10.0.0.1:0").ip(), port),
            a("127.0.0.1:6000"),
        )
        .unwrap();
        let mut g = CpuGuard::enter();
        net::lookup(&n, &mut g, &t).sock().unwrap().cookie()
    };
    let mut hits = std::collections::HashMap::new();
    for p in 1000..1400 {
        let c = pick(p);
        assert!(cookies.contains(&c));
        assert_eq!(pick(p), c, "the same flow, the same member");
        *hits.entry(c).or_insert(0) += 1;
    }
    assert_eq!(hits.len(), 4, "every member gets flows: {hits:?}");
    assert!(hits.values().all(|&h| h > 40), "{hits:?}");
    // A connected member is skipped by the hash.
    members[0].connect(a("10.9.9.9:9")).unwrap();
    for p in 1000..1100 {
        assert_ne!(pick(p), cookies[0]);
    }
    // A closed member leaves the group.
    let mut members = members;
    members.remove(1);
    for p in 1000..1100 {
        assert_ne!(pick(p), cookies[1]);
    }
}

#[test]
fn a_netns_lives_while_it_has_users() {
    setup();
    let fd = net::fd::netns_create().unwrap();
    let n = net::fd::netns_get(fd).unwrap();
    let s = net::socket(&n, Family::Inet, Proto::Tcp).unwrap();
    syscall::close(fd).unwrap();
    assert!(n.is_alive(), "its socket keeps it");
    drop(s);
    assert!(!n.is_alive());
    assert_eq!(
        net::socket(&n, Family::Inet, Proto::Tcp).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(net::fd::netns_get(fd).err(), Some(Errno::EBADF));
}

fn install(s: net::Socket) -> (u32, Arc<net::Socket>) {
    let s = Arc::new(s);
    (syscall::install_object(Object::Sock(s.clone())).unwrap(), s)
}

fn put(map: u32, key: &[u8], fd: u64, flags: UpdateFlags) -> kbpf::Result {
    syscall::map_update_elem(map, key, &fd.to_ne_bytes(), flags.bits())
}

#[test]
fn sockmap_from_user_space() {
    setup();
    let n = netns();
    let map = syscall::map_create(&MapAttr::new(MapType::Sockmap, 4, 8, 2)).unwrap();
    let k0 = 0u32.to_ne_bytes();
    let k1 = 1u32.to_ne_bytes();
    let l = net::socket(&n, Family::Inet, Proto::Tcp).unwrap();
    l.listen(1).unwrap();
    let (lfd, l) = install(l);
    let base = l.sock().refcount();
    assert_eq!(put(map, &k0, 999, UpdateFlags::ANY), Err(Errno::EBADF));
    assert_eq!(
        put(map, &k0, map as u64, UpdateFlags::ANY),
        Err(Errno::ENOTSOCK)
    );
    assert_eq!(
        put(map, &k0, 1, UpdateFlags::ANY),
        Err(Errno::ENOTSOCK),
        "stdout"
    );
    assert_eq!(put(map, &k0, 1 << 40, UpdateFlags::ANY), Err(Errno::EINVAL));
    let bound = net::socket(&n, Family::Inet, Proto::Tcp).unwrap();
    bound.bind(a("127.0.0.1:0")).unwrap();
    let (bfd, _b) = install(bound);
    assert_eq!(
        put(map, &k0, bfd as u64, UpdateFlags::ANY),
        Err(Errno::EOPNOTSUPP),
        "TCP, not listening"
    );
    assert_eq!(
        put(map, &2u32.to_ne_bytes(), lfd as u64, UpdateFlags::ANY),
        Err(Errno::E2BIG)
    );
    assert_eq!(
        put(map, &k0, lfd as u64, UpdateFlags::EXIST),
        Err(Errno::ENOENT)
    );
    put(map, &k0, lfd as u64, UpdateFlags::NOEXIST).unwrap();
    assert_eq!(
        put(map, &k0, lfd as u64, UpdateFlags::NOEXIST),
        Err(Errno::EEXIST)
    );
    put(map, &k1, lfd as u64, UpdateFlags::ANY).unwrap();
    assert_eq!(l.sock().refcount(), base + 2, "one reference per slot");
    let mut v = [0u8; 8];
    syscall::map_lookup_elem(map, &k1, &mut v).unwrap();
    assert_eq!(u64::from_ne_bytes(v), l.cookie());
    syscall::map_delete_elem(map, &k1).unwrap();
    assert_eq!(
        syscall::map_delete_elem(map, &k1),
        Err(Errno::EINVAL),
        "empty slot"
    );
    assert_eq!(
        syscall::map_delete_elem(map, &9u32.to_ne_bytes()),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        syscall::map_lookup_elem(map, &k1, &mut v),
        Err(Errno::ENOENT)
    );
    assert_eq!(l.sock().refcount(), base + 1);
    // 4-byte values: the socket handle as a u32; no lookup from user space.
    let m4 = syscall::map_create(&MapAttr::new(MapType::Sockmap, 4, 4, 1)).unwrap();
    syscall::map_update_elem(m4, &k0, &lfd.to_ne_bytes(), 0).unwrap();
    assert_eq!(
        syscall::map_lookup_elem(m4, &k0, &mut [0u8; 4]),
        Err(Errno::ENOSPC)
    );
    // UDP sockets are allowed, bound or not; an established TCP one too.
    let u = net::socket(&n, Family::Inet, Proto::Udp).unwrap();
    let (ufd, _u) = install(u);
    put(map, &k1, ufd as u64, UpdateFlags::ANY).unwrap();
    // Closing the socket takes it out of every map.
    syscall::close(lfd).unwrap();
    drop(l);
    assert_eq!(
        syscall::map_lookup_elem(map, &k0, &mut v),
        Err(Errno::ENOENT)
    );
    assert_eq!(syscall::map_get_next_key(map, None, &mut v[..4]), Ok(()));
    // A map going away puts what it holds.
    let (ufd2, u2) = install(net::socket(&n, Family::Inet, Proto::Udp).unwrap());
    let m = syscall::map_create(&MapAttr::new(MapType::Sockmap, 4, 8, 1)).unwrap();
    let before = u2.sock().refcount();
    put(m, &k0, ufd2 as u64, UpdateFlags::ANY).unwrap();
    assert_eq!(u2.sock().refcount(), before + 1);
    syscall::close(m).unwrap();
    assert_eq!(u2.sock().refcount(), before);
}

#[test]
fn sockhash_from_user_space() {
    setup();
    let n = netns();
    let h = syscall::map_create(&MapAttr::new(MapType::Sockhash, 6, 8, 2)).unwrap();
    let socks: Vec<_> = (0..3)
        .map(|_| install(net::socket(&n, Family::Inet6, Proto::Udp).unwrap()))
        .collect();
    let key = |i: u8| [i, 1, 2, 3, 4, 5];
    for i in 0..2 {
        put(h, &key(i), socks[i as usize].0 as u64, UpdateFlags::ANY).unwrap();
    }
    assert_eq!(
        put(h, &key(2), socks[2].0 as u64, UpdateFlags::ANY),
        Err(Errno::E2BIG),
        "full"
    );
    put(h, &key(1), socks[2].0 as u64, UpdateFlags::EXIST).unwrap();
    let mut v = [0u8; 8];
    syscall::map_lookup_elem(h, &key(1), &mut v).unwrap();
    assert_eq!(u64::from_ne_bytes(v), socks[2].1.cookie(), "replaced");
    let mut keys = Vec::new();
    let mut k: Option<Vec<u8>> = None;
    let mut next = [0u8; 6];
    while syscall::map_get_next_key(h, k.as_deref(), &mut next).is_ok() {
        keys.push(next);
        k = Some(next.to_vec());
    }
    keys.sort();
    assert_eq!(keys, [key(0), key(1)]);
    syscall::map_delete_elem(h, &key(0)).unwrap();
    assert_eq!(syscall::map_delete_elem(h, &key(0)), Err(Errno::ENOENT));
    put(h, &key(2), socks[0].0 as u64, UpdateFlags::NOEXIST).unwrap();
}

#[test]
fn nothing_leaks() {
    setup();
    // Run a busy life in a netns, close everything, and wait for the grace periods.
    let before = net::sock::live_socks();
    {
        let n = netns();
        let l = net::socket(&n, Family::Inet, Proto::Tcp).unwrap();
        l.bind(a("127.0.0.1:8000")).unwrap();
        l.listen(8).unwrap();
        let (lfd, _l) = install(l);
        let map = syscall::map_create(&MapAttr::new(MapType::Sockmap, 4, 8, 1)).unwrap();
        put(map, &0u32.to_ne_bytes(), lfd as u64, UpdateFlags::ANY).unwrap();
        let clients: Vec<_> = (0..5)
            .map(|_| {
                let c = net::socket(&n, Family::Inet, Proto::Tcp).unwrap();
                c.connect(a("127.0.0.1:8000")).unwrap();
                c
            })
            .collect();
        drop(clients);
        syscall::close(lfd).unwrap();
        syscall::close(map).unwrap();
    }
    net::sock::reap();
    rcu().barrier();
    net::sock::reap();
    rcu().barrier();
    // Other tests in this binary may run concurrently: wait for the count to settle at or
    // below where it started.
    let mut now = net::sock::live_socks();
    for _ in 0..100 {
        if now <= before {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        net::sock::reap();
        rcu().barrier();
        now = net::sock::live_socks();
    }
    assert!(now <= before, "sockets alive: {now}, before: {before}");
}

/// A program may look sockets up (and release them) but not change socket maps: kbpf's
/// run-time side refuses `bpf_map_update_elem` and `bpf_map_delete_elem` on them with
/// `-EOPNOTSUPP` (the kernel's allocates and locks the socket on the fast path).
#[test]
fn programs_cannot_change_socket_maps() {
    setup();
    let n = netns();
    let l = net::socket(&n, Family::Inet, Proto::Tcp).unwrap();
    l.listen(1).unwrap();
    let (lfd, _l) = install(l);
    let map = syscall::map_create(&MapAttr::new(MapType::Sockmap, 4, 8, 2)).unwrap();
    put(map, &0u32.to_ne_bytes(), lfd as u64, UpdateFlags::ANY).unwrap();
    let out = syscall::map_create(&MapAttr::new(MapType::Array, 4, 16, 1)).unwrap();
    let src = format!(
        "stw [%r10-4], 0\nlddw %r1, map_fd {map}\nmov %r2, %r10\nadd %r2, -4\ncall 1\n\
         jne %r0, 0, +2\nmov %r0, 0\nexit\nmov %r7, %r0\n\
         stw [%r10-8], 1\nlddw %r1, map_fd {map}\nmov %r2, %r10\nadd %r2, -8\nmov %r3, %r7\n\
         mov %r4, 0\ncall 2\nmov %r8, %r0\n\
         lddw %r1, map_fd {map}\nmov %r2, %r10\nadd %r2, -4\ncall 3\nmov %r9, %r0\n\
         mov %r1, %r7\ncall 86\n\
         stw [%r10-12], 0\nlddw %r1, map_fd {out}\nmov %r2, %r10\nadd %r2, -12\ncall 1\n\
         jeq %r0, 0, +2\nstxdw [%r0+0], %r8\nstxdw [%r0+8], %r9\nmov %r0, 1\nexit"
    );
    let insns = kbpf::insn::assemble(&src).unwrap();
    let attr = kbpf::ProgLoadAttr::new(kbpf::uapi::ProgType::SkLookup, &insns)
        .with_attach_type(kbpf::uapi::AttachType::SkLookup);
    let mut log = String::new();
    let p = syscall::prog_load_log(&attr, &mut log).unwrap_or_else(|e| panic!("{e:?} {log}"));
    let ctx = kbpf::net::sk_lookup::ctx::BpfSkLookup {
        family: 2,
        protocol: 6,
        ..Default::default()
    }
    .to_bytes();
    let r = syscall::prog_test_run(
        p,
        &mut syscall::TestRun {
            ctx_in: Some(&ctx),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.retval, 1);
    let mut v = [0u8; 16];
    syscall::map_lookup_elem(out, &0u32.to_ne_bytes(), &mut v).unwrap();
    let eop = -(Errno::EOPNOTSUPP.to_errno() as i64);
    assert_eq!(
        i64::from_ne_bytes(v[..8].try_into().unwrap()),
        eop,
        "update"
    );
    assert_eq!(
        i64::from_ne_bytes(v[8..].try_into().unwrap()),
        eop,
        "delete"
    );
    // The socket is still where it was, and slot 1 still empty.
    let mut c = [0u8; 8];
    syscall::map_lookup_elem(map, &0u32.to_ne_bytes(), &mut c).unwrap();
    assert_eq!(
        syscall::map_lookup_elem(map, &1u32.to_ne_bytes(), &mut c),
        Err(Errno::ENOENT)
    );
}
