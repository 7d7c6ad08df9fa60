//! SK-46 … SK-58: attaching through netns links (and only links), the per-netns limit, query
//! order, link info, link update; `BPF_PROG_TEST_RUN`'s input checks and output.

use super::support::*;
use super::{prog, setup};
use kbpf::Errno;
use kbpf::ProgLoadAttr;
use kbpf::net::Proto;
use kbpf::net::nsid::MAX_NETNS;
use kbpf::net::sk_lookup::link::{link_create, prog_attach, prog_query};
use kbpf::net::sk_lookup::{MAX_PROGS, ctx::BpfSkLookup};
use kbpf::syscall::{self, ObjInfo, TestRun};
use kbpf::uapi::{AttachType, ProgType};

fn netns_ino(link: u32) -> u32 {
    match syscall::obj_get_info(link).unwrap() {
        ObjInfo::Link(l) => {
            assert_eq!(l.attach_type, AttachType::SkLookup);
            l.netns_ino
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sk46_prog_attach_is_refused() {
    setup();
    let ns_g = netns();
    let ns = ns_g.fd;
    let p = prog(&ret(SK_PASS), &[]);
    assert_eq!(prog_attach(p, ns), Err(Errno::EINVAL), "SK-46");
}

#[test]
fn sk47_sixty_four_links_per_netns() {
    setup();
    let ns_g = netns();
    let ns = ns_g.fd;
    let p = prog(&ret(SK_PASS), &[]);
    let links: Vec<u32> = (0..MAX_PROGS).map(|_| attach(p, ns)).collect();
    assert_eq!(links.len(), 64);
    assert_eq!(link_create(p, ns, 0), Err(Errno::E2BIG), "SK-47");
    // Another netns has its own budget.
    let ns2_g = netns();
    let ns2 = ns2_g.fd;
    let other = attach(p, ns2);
    syscall::close(links[0]).unwrap();
    let again = attach(p, ns);
    for l in links.into_iter().skip(1).chain([other, again]) {
        syscall::close(l).unwrap();
    }
}

#[test]
fn sk48_query_in_attach_order() {
    setup();
    let ns_g = netns();
    let ns = ns_g.fd;
    let progs: Vec<u32> = (0..3).map(|i| prog(&ret(i % 2), &[])).collect();
    let ids: Vec<u32> = progs
        .iter()
        .map(|&p| syscall::prog_get(p).unwrap().id())
        .collect();
    let links: Vec<u32> = progs.iter().map(|&p| attach(p, ns)).collect();
    let mut got = [0u32; 4];
    let q = prog_query(ns, 0, &mut got).unwrap();
    assert_eq!((q.prog_cnt, q.attach_flags), (3, 0), "SK-48");
    assert_eq!(&got[..3], &ids[..], "SK-48: run order");
    let mut small = [0u32; 2];
    assert_eq!(prog_query(ns, 0, &mut small), Err(Errno::ENOSPC));
    assert_eq!(small, [ids[0], ids[1]], "filled as far as it goes");
    assert_eq!(
        prog_query(ns, 0, &mut []).unwrap().prog_cnt,
        3,
        "count only"
    );
    assert_eq!(
        prog_query(ns, 1, &mut got),
        Err(Errno::EINVAL),
        "query flags"
    );
    syscall::close(links[1]).unwrap();
    let q = prog_query(ns, 0, &mut got).unwrap();
    assert_eq!(q.prog_cnt, 2);
    assert_eq!(&got[..2], &[ids[0], ids[2]]);
}

#[test]
fn sk49_link_info_after_detach_and_netns_exit() {
    setup();
    // Its own handle, which the case closes.
    let ns = kbpf::net::fd::netns_create().unwrap();
    let net = kbpf::net::fd::netns_get(ns).unwrap();
    let p = prog(&ret(SK_PASS), &[]);
    let l1 = attach(p, ns);
    let l2 = attach(p, ns);
    assert_eq!(netns_ino(l1), net.ino());
    syscall::link_detach(l1).unwrap();
    assert_eq!(netns_ino(l1), 0, "SK-49: detached");
    assert_eq!(syscall::link_update(l1, p, None), Err(Errno::ENOLINK));
    assert_eq!(netns_ino(l2), net.ino());
    // The netns exits with its last handle (no socket keeps it).
    syscall::close(ns).unwrap();
    assert!(!net.is_alive());
    assert_eq!(netns_ino(l2), 0, "SK-49: netns gone");
    assert_eq!(syscall::link_update(l2, p, None), Err(Errno::ENOLINK));
    assert_eq!(syscall::link_detach(l2), Ok(()));
}

/// More namespaces than there are numbers ([`MAX_NETNS`]), one after another: a netns with a
/// listener and a link exits when its handle and its socket are gone, and the fixture's netns
/// when the case drops it, even with its socket still in a socket map; either way its number
/// is free again a grace period later (`nsid::release`), so creating never runs out.
#[test]
fn more_netns_than_numbers_one_after_another() {
    setup();
    let p = prog(&ret(SK_PASS), &[]);
    let addr = "127.0.0.2:8008".parse().unwrap();
    for i in 0..2 * MAX_NETNS {
        let ns = kbpf::net::fd::netns_create().unwrap_or_else(|e| panic!("netns {i}: {e:?}"));
        let net = kbpf::net::fd::netns_get(ns).unwrap();
        let s = server(&net, Proto::Tcp, addr, false);
        let link = attach(p, ns);
        syscall::close(ns).unwrap();
        assert!(net.is_alive(), "netns {i}: its socket keeps it");
        drop(s);
        assert!(!net.is_alive(), "netns {i}: exits with its last user");
        assert_eq!(netns_ino(link), 0, "netns {i}: the link went defunct");
        syscall::close(link).unwrap();
    }
    for i in 0..2 * MAX_NETNS {
        let ns = netns();
        let net = ns.net.clone();
        let s = server(&net, Proto::Tcp, addr, false);
        let map = sockmap(1);
        store(map, 0, &s);
        drop(s);
        assert!(net.is_alive(), "netns {i}: the socket map keeps its socket");
        drop(ns);
        assert!(!net.is_alive(), "netns {i}: dismantled with the fixture");
        syscall::close(map).unwrap();
    }
}

#[test]
fn link_create_checks_and_link_update() {
    setup();
    let ns_g = netns();
    let (ns, net) = ns_g.parts();
    let pass = prog(&ret(SK_PASS), &[]);
    let drop = prog(&ret(SK_DROP), &[]);
    assert_eq!(link_create(pass, ns, 1), Err(Errno::EINVAL), "flags");
    assert_eq!(
        link_create(pass, 9999, 0),
        Err(Errno::EBADF),
        "no netns handle"
    );
    assert_eq!(
        link_create(pass, drop, 0),
        Err(Errno::EINVAL),
        "not a netns"
    );
    let insns = kbpf::insn::assemble("mov %r0, 0\nexit").unwrap();
    let xdp = syscall::prog_load(&ProgLoadAttr::new(ProgType::Xdp, &insns)).unwrap();
    assert_eq!(link_create(xdp, ns, 0), Err(Errno::EINVAL), "program type");
    let _s = server(&net, Proto::Tcp, "127.0.0.1:7007".parse().unwrap(), false);
    let link = attach(pass, ns);
    let to = "127.0.0.1:7007".parse().unwrap();
    assert!(deliver(&net, Proto::Tcp, None, to).is_ok());
    assert_eq!(
        syscall::link_update(link, drop, Some(drop)),
        Err(Errno::EPERM)
    );
    assert_eq!(syscall::link_update(link, xdp, None), Err(Errno::EINVAL));
    syscall::link_update(link, drop, Some(pass)).unwrap();
    assert_eq!(
        deliver(&net, Proto::Tcp, None, to),
        Err(Errno::ECONNREFUSED)
    );
    let mut ids = [0u32; 1];
    prog_query(ns, 0, &mut ids).unwrap();
    assert_eq!(ids[0], syscall::prog_get(drop).unwrap().id());
    syscall::close(link).unwrap();
    assert!(
        deliver(&net, Proto::Tcp, None, to).is_ok(),
        "released with its last handle"
    );
}

fn input() -> BpfSkLookup {
    ctx(
        Proto::Tcp,
        "127.0.0.2:8008".parse().unwrap(),
        "127.0.0.1:7007".parse().unwrap(),
    )
}

fn run_with(p: u32, f: impl FnOnce(&mut TestRun<'_>)) -> Result<u32, Errno> {
    test_run_with(p, &input(), f).map(|(rv, _)| rv)
}

#[test]
fn sk50_sk51_sk52_test_run_inputs() {
    setup();
    let p = prog(&ret(SK_PASS), &[]);
    let bytes = input().to_bytes();
    let mut data = [0u8; 14];
    let mut with_data = TestRun {
        data: &mut data,
        ctx_in: Some(&bytes),
        ..Default::default()
    };
    assert_eq!(
        syscall::prog_test_run(p, &mut with_data),
        Err(Errno::EINVAL),
        "SK-50 data_in"
    );
    let mut dout = [0u8; 14];
    let mut with_out = TestRun {
        data_out: Some(&mut dout),
        ctx_in: Some(&bytes),
        ..Default::default()
    };
    assert_eq!(
        syscall::prog_test_run(p, &mut with_out),
        Err(Errno::EINVAL),
        "SK-50 data_out"
    );
    assert_eq!(
        run_with(p, |r| r.flags = 1),
        Err(Errno::EINVAL),
        "SK-51 flags"
    );
    assert_eq!(run_with(p, |r| r.cpu = 1), Err(Errno::EINVAL), "SK-51 cpu");
    assert_eq!(
        run_with(p, |r| r.batch_size = 1),
        Err(Errno::EINVAL),
        "SK-51 batch"
    );
    let mut none = TestRun {
        repeat: 1,
        ..Default::default()
    };
    assert_eq!(
        syscall::prog_test_run(p, &mut none),
        Err(Errno::EINVAL),
        "SK-52"
    );
    // ctx_out alone: a zeroed context, whose family is none.
    let mut outb = [0u8; 72];
    let mut only_out = TestRun {
        ctx_out: Some(&mut outb),
        ..Default::default()
    };
    assert_eq!(
        syscall::prog_test_run(p, &mut only_out),
        Err(Errno::EAFNOSUPPORT)
    );
    assert_eq!(run_with(p, |_| {}), Ok(SK_PASS));
}

#[test]
fn sk53_to_sk56_context_checks() {
    setup();
    let p = prog(&ret(SK_PASS), &[]);
    let go = |c: BpfSkLookup| test_run(p, &c).map(|(rv, _)| rv);
    assert_eq!(
        go(BpfSkLookup {
            cookie: 1,
            ..input()
        }),
        Err(Errno::EINVAL),
        "SK-53"
    );
    assert_eq!(
        go(BpfSkLookup {
            ingress_ifindex: 1,
            ..input()
        }),
        Err(Errno::EINVAL),
        "SK-54"
    );
    assert_eq!(
        go(BpfSkLookup {
            local_port: 65536,
            ..input()
        }),
        Err(Errno::ERANGE),
        "SK-55"
    );
    for family in [0, 1, 3, 11] {
        assert_eq!(
            go(BpfSkLookup { family, ..input() }),
            Err(Errno::EAFNOSUPPORT),
            "SK-56 family {family}"
        );
    }
    // The tail padding (68..72) must be zero too; a longer context must be zero past 72.
    let mut bytes = input().to_bytes();
    bytes[70] = 1;
    let mut run = TestRun {
        ctx_in: Some(&bytes),
        ..Default::default()
    };
    assert_eq!(syscall::prog_test_run(p, &mut run), Err(Errno::EINVAL));
    let mut long = input().to_bytes().to_vec();
    long.extend([0, 0, 0, 1]);
    let mut run = TestRun {
        ctx_in: Some(&long),
        ..Default::default()
    };
    assert_eq!(syscall::prog_test_run(p, &mut run), Err(Errno::E2BIG));
    // A short context is zero-filled: 64 bytes are enough.
    let short = input().to_bytes();
    let mut run = TestRun {
        ctx_in: Some(&short[..64]),
        ..Default::default()
    };
    assert_eq!(syscall::prog_test_run(p, &mut run).map(|r| r.retval), Ok(1));
}

#[test]
fn sk57_sk58_the_selected_cookie() {
    setup();
    let ns = netns();
    let net = ns.net.clone();
    let s = server(&net, Proto::Tcp, "127.0.0.2:8008".parse().unwrap(), false);
    let r = server(&net, Proto::Tcp, "127.0.0.2:8009".parse().unwrap(), true);
    let map = sockmap(2);
    store(map, 0, &s);
    store(map, 1, &r);
    let sel = prog(&redir(0, 0), &[map]);
    assert_eq!(test_run(sel, &input()), Ok((SK_PASS, s.cookie())), "SK-58");
    let none = prog(&ret(SK_PASS), &[]);
    assert_eq!(
        test_run(none, &input()),
        Ok((SK_PASS, 0)),
        "SK-58 no selection"
    );
    let dropper = prog(&ret(SK_DROP), &[]);
    assert_eq!(test_run(dropper, &input()), Ok((SK_DROP, 0)));
    let rp = prog(&redir(1, 0), &[map]);
    assert_eq!(test_run(rp, &input()), Err(Errno::EOPNOTSUPP), "SK-57");
    let rp_skip = prog(&redir(1, F_NO_REUSEPORT), &[map]);
    assert_eq!(test_run(rp_skip, &input()), Ok((SK_PASS, r.cookie())));
    // Many runs: each starts with nothing selected (no REPLACE needed).
    let bytes = input().to_bytes();
    let mut outb = [0u8; 72];
    let mut run = TestRun {
        ctx_in: Some(&bytes),
        ctx_out: Some(&mut outb),
        repeat: 1000,
        ..Default::default()
    };
    assert_eq!(
        syscall::prog_test_run(sel, &mut run).unwrap().retval,
        SK_PASS as u64
    );
    assert_eq!(BpfSkLookup::from_bytes(&outb).cookie, s.cookie());
}
