//! The packet's socket and the socket helpers of packet programs at run time, in both
//! engines (the interpreter, then the JIT: registering the JIT is process-wide, so one test
//! runs both phases in order, in its own binary):
//!
//! - `bpf_sk_lookup_tcp`, `bpf_sk_lookup_udp` and `bpf_skc_lookup_tcp` from TC, cgroup skb and
//!   XDP test runs against real sockets of kbpf's socket model (listeners, bound UDP sockets,
//!   established connections, IPv4 and IPv6) in the test run's netns, with the `netns_id`,
//!   `flags` and tuple-size rules, then `bpf_sk_release`; TC's `bpf_sk_assign` in a test run
//!   (which runs as at egress);
//! - one netns holding a listener and a conntrack entry: a TC or XDP program finds both by the
//!   netns's id and as its own, and the entry goes when the netns exits;
//! - `__sk_buff`'s socket fields (`family` .. `local_port` for cgroup skb, `sk` for all
//!   packet types) on a test run's socket, and on a connected socket hung off an skb, at every
//!   offset and size the verifier allows.
//!
//! Where the host kernel runs BPF, the same programs run there: lookups of a listener this
//! process opens on the host's loopback, absent sockets, `bpf_sk_assign`, and the test run's
//! socket fields give the same results; without it that part says SKIPPED.

use kbpf::cpu::CpuGuard;
use kbpf::insn::{Insn, assemble};
use kbpf::net::{self, Family, Net, Proto, Socket};
use kbpf::netfilter::{EntrySpec, HZ, Tuple as CtTuple, Zone, conntrack};
use kbpf::skb::SkBuff;
use kbpf::sync::Arc;
use kbpf::syscall::{self, Fd, TestRun};
use kbpf::uapi::ProgType;
use kbpf::{Errno, ProgLoadAttr};
use kbpf_shim::conformance::Engine;
use kbpf_shim::ct::progs::{Hook, KfuncIds, opts as ct_opts};
use kbpf_shim::host_bpf::HostLoad;
use kbpf_shim::host_bpf::test_run::{HostRunAttr, HostTestRun};
use std::net::SocketAddr;

/// What a lookup program returns when the lookup gave NULL.
const NULL: u32 = 0xffff_ffff;
/// `AF_INET`, `AF_INET6`.
const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
/// TCP states.
const ESTABLISHED: u32 = 1;
const CLOSE: u32 = 7;
const LISTEN: u32 = 10;

/// A lookup's arguments.
#[derive(Clone, Copy)]
struct Lookup<'a> {
    /// 84, 85 or 99.
    helper: i32,
    /// The `struct bpf_sock_tuple` bytes.
    tuple: &'a [u8],
    /// The size argument (the tuple's length, or another to test the rule).
    size: u32,
    netns: u64,
    flags: u64,
}

/// The v4 tuple `remote -> local` (network order).
fn tuple(remote: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let ip = |a: SocketAddr| match a {
        SocketAddr::V4(a) => a.ip().octets().to_vec(),
        SocketAddr::V6(a) => a.ip().octets().to_vec(),
    };
    let mut t = ip(remote);
    t.extend(ip(local));
    t.extend(remote.port().to_be_bytes());
    t.extend(local.port().to_be_bytes());
    t
}

/// A program: the lookup, then for a socket `src_port + (family << 16) + (state << 24)` read
/// through it (released), or `NULL` without one; with `assign`, TC's `bpf_sk_assign(ctx, sk,
/// flags)`'s result instead.
fn lookup_prog(l: Lookup, assign: Option<u64>) -> String {
    let mut s = String::from("mov %r6, %r1\n");
    for k in 0..6 {
        s += &format!("stdw [%r10-{}], 0\n", 8 * (k + 1));
    }
    for (i, b) in l.tuple.iter().enumerate() {
        s += &format!("stb [%r10{:+}], {b}\n", i as i32 - 48);
    }
    s += &format!(
        "mov %r1, %r6\nmov %r2, %r10\nadd %r2, -48\nmov %r3, {}\nlddw %r4, {:#x}\n\
         lddw %r5, {:#x}\ncall {}\njne %r0, 0, found\nmov32 %r0, -1\nexit\nfound:\nmov %r7, %r0\n",
        l.size, l.netns, l.flags, l.helper
    );
    match assign {
        Some(flags) => {
            s += &format!(
                "mov %r1, %r6\nmov %r2, %r7\nlddw %r3, {flags:#x}\ncall 124\nmov %r8, %r0\n"
            )
        }
        None => {
            s += "ldxw %r8, [%r7+44]\nldxw %r2, [%r7+4]\nlsh %r2, 16\nadd %r8, %r2\n\
                  ldxw %r2, [%r7+72]\nlsh %r2, 24\nadd %r8, %r2\n"
        }
    }
    s + "mov %r1, %r7\ncall 86\nmov %r0, %r8\nexit\n"
}

/// An Ethernet frame carrying an IPv4 header from 10.1.2.3 to 10.4.5.6, or an IPv6 one from
/// fd00::1:2 to fd00::3:4, and a few bytes more.
fn frame(v6: bool) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    if v6 {
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        let mut ip = vec![0u8; 40];
        ip[0] = 0x60;
        ip[6] = 6;
        ip[8] = 0xfd;
        ip[22..24].copy_from_slice(&[1, 2]);
        ip[24] = 0xfd;
        ip[38..40].copy_from_slice(&[3, 4]);
        f.extend(ip);
    } else {
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 1, 2, 3]);
        ip[16..20].copy_from_slice(&[10, 4, 5, 6]);
        f.extend(ip);
    }
    f.extend([0u8; 26]);
    f
}

fn load(ty: ProgType, insns: &[Insn], engine: Engine) -> Fd {
    let mut log = String::new();
    let fd = syscall::prog_load_log(&ProgLoadAttr::new(ty, insns), &mut log)
        .unwrap_or_else(|e| panic!("{ty:?} {e:?}: {log}"));
    assert_eq!(
        syscall::prog_get(fd).unwrap().jited(),
        engine == Engine::Jit
    );
    fd
}

/// `src` (every exit ending a line) with R0 at each exit compared to `want`: the program
/// returns 1 when equal, else 0 — valid as a cgroup skb program, which may only return 0 or 1
/// (`check_return_code`).
fn predicate(src: &str, want: u32) -> String {
    src.replace("exit\n", "ja ret\n")
        + &format!(
            "ret:\nmov32 %r0, %r0\nlddw %r1, {want:#x}\njeq %r0, %r1, +2\nmov %r0, 0\nexit\n\
             mov %r0, 1\nexit\n"
        )
}

/// `src` (every exit ending a line) with R0's low 32 bits at each exit stored in the
/// context's `cb[0]` and 1 returned, for a cgroup skb program (which may only return 0 or 1).
/// The context pointer waits at the bottom of the stack, below what the programs here use.
fn via_cb(src: &str) -> String {
    String::from("stxdw [%r10-512], %r1\n")
        + &src.replace("exit\n", "ja ret\n")
        + "ret:\nldxdw %r1, [%r10-512]\nstxw [%r1+48], %r0\nmov %r0, 1\nexit\n"
}

/// A kbpf test run of `src` as `ty` on `frame` in the netns behind `ns`: its return value (a
/// cgroup skb program's through `cb[0]`, [`via_cb`]).
fn kbpf_run(engine: Engine, ty: ProgType, src: &str, frame: &[u8], ns: Option<Fd>) -> u32 {
    let cg = ty == ProgType::CgroupSkb;
    let src = if cg { via_cb(src) } else { src.to_string() };
    let insns = assemble(&src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    let fd = load(ty, &insns, engine);
    let mut pkt = frame.to_vec();
    let mut ctx = [0u8; 192];
    let r = syscall::prog_test_run(
        fd,
        &mut TestRun {
            data: &mut pkt,
            ctx_out: cg.then_some(&mut ctx[..]),
            repeat: 1,
            netns: ns,
            ..Default::default()
        },
    );
    syscall::close(fd).unwrap();
    let retval = r.unwrap_or_else(|e| panic!("{ty:?} {e:?}\n{src}")).retval as u32;
    if cg {
        assert_eq!(retval, 1, "{src}");
        u32::from_le_bytes(ctx[48..52].try_into().unwrap())
    } else {
        retval
    }
}

/// The same on the host kernel (in this process's netns), which must give `want`. A cgroup
/// skb program runs as a [`predicate`] on `want`; the answer is `want` or `!want`.
fn host_run(host: &HostTestRun, ty: ProgType, src: &str, frame: &[u8], want: u32) -> u32 {
    let src = if ty == ProgType::CgroupSkb {
        predicate(src, want)
    } else {
        src.to_string()
    };
    let load = HostLoad {
        prog_type: ty,
        insns: assemble(&src).unwrap(),
        maps: Vec::new(),
        privileged: false,
        expected_attach_type: None,
    };
    let run = HostRunAttr {
        data: frame.to_vec(),
        data_size_out: 256,
        repeat: 1,
        ..HostRunAttr::default()
    };
    match host.run(load, vec![run]) {
        Ok(Ok(out)) if out[0].errno == 0 => match (ty, out[0].retval) {
            (ProgType::CgroupSkb, 1) => want,
            (ProgType::CgroupSkb, _) => !want,
            (_, r) => r,
        },
        other => panic!("host {ty:?}: {other:?}\n{src}"),
    }
}

/// The sockets of one phase, in a netns of their own.
struct World {
    ns: Fd,
    net: Arc<Net>,
    _keep: Vec<Socket>,
    /// The established connection's client address.
    client: SocketAddr,
    /// The accepted (server) side of it.
    child: Socket,
}

/// The test's netns goes with its world (its handle may have been closed already).
impl Drop for World {
    fn drop(&mut self) {
        self.net.exit();
    }
}

const SRV4: &str = "127.0.0.2:8008";
const UDP4: &str = "127.0.0.2:9009";
const SRV6: &str = "[fd00::2]:8008";
const REMOTE4: &str = "127.0.0.1:40000";
const REMOTE6: &str = "[fd00::1]:40000";

fn world() -> World {
    let ns = net::fd::netns_create().unwrap();
    let net = net::fd::netns_get(ns).unwrap();
    let l4 = net::socket(&net, Family::Inet, Proto::Tcp).unwrap();
    l4.bind(SRV4.parse().unwrap()).unwrap();
    l4.listen(8).unwrap();
    let l6 = net::socket(&net, Family::Inet6, Proto::Tcp).unwrap();
    l6.set_v6only(true).unwrap();
    l6.bind(SRV6.parse().unwrap()).unwrap();
    l6.listen(8).unwrap();
    let u4 = net::socket(&net, Family::Inet, Proto::Udp).unwrap();
    u4.bind(UDP4.parse().unwrap()).unwrap();
    let c = net::socket(&net, Family::Inet, Proto::Tcp).unwrap();
    c.bind("127.0.0.1:41000".parse().unwrap()).unwrap();
    c.connect(SRV4.parse().unwrap()).unwrap();
    let child = l4.accept().unwrap();
    let client = c.local_addr().unwrap();
    World {
        ns,
        net,
        _keep: vec![l4, l6, u4, c],
        client,
        child,
    }
}

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The lookup cases against [`world`]: (what, program type, lookup, expected return).
fn lookups(engine: Engine, w: &World) {
    let t4 = tuple(a(REMOTE4), a(SRV4));
    let t6 = tuple(a(REMOTE6), a(SRV6));
    let tu = tuple(a(REMOTE4), a(UDP4));
    let te = tuple(w.client, a(SRV4));
    fn l(helper: i32, tuple: &[u8]) -> Lookup<'_> {
        Lookup {
            helper,
            tuple,
            size: tuple.len() as u32,
            netns: u64::MAX,
            flags: 0,
        }
    }
    let listener4 = 8008 + (AF_INET << 16) + (LISTEN << 24);
    let listener6 = 8008 + (AF_INET6 << 16) + (LISTEN << 24);
    let cases: Vec<(&str, Lookup, u32)> = vec![
        ("tcp listener v4", l(84, &t4), listener4),
        ("tcp listener v6", l(84, &t6), listener6),
        ("skc listener v4", l(99, &t4), listener4),
        (
            "udp bound v4",
            l(85, &tu),
            9009 + (AF_INET << 16) + (CLOSE << 24),
        ),
        (
            "tcp established",
            l(84, &te),
            8008 + (AF_INET << 16) + (ESTABLISHED << 24),
        ),
        ("udp lookup of a tcp port", l(85, &t4), NULL),
        ("tcp lookup of a udp port", l(84, &tu), NULL),
        (
            "netns_id 0: no netns has that id",
            Lookup {
                netns: 0,
                ..l(84, &t4)
            },
            NULL,
        ),
        (
            "netns_id S32_MAX",
            Lookup {
                netns: 0x7fff_ffff,
                ..l(84, &t4)
            },
            NULL,
        ),
        (
            "netns_id negative as an s32",
            Lookup {
                netns: 0x1_8000_0000,
                ..l(84, &t4)
            },
            listener4,
        ),
        (
            "flags",
            Lookup {
                flags: 1,
                ..l(84, &t4)
            },
            NULL,
        ),
        (
            "tuple size 20",
            Lookup {
                size: 20,
                ..l(84, &t4)
            },
            NULL,
        ),
        (
            "tuple size 12 of a v6 tuple",
            Lookup {
                size: 12,
                ..l(84, &t6)
            },
            NULL,
        ),
    ];
    let refs = w.child.sock().refcount();
    for ty in [ProgType::SchedCls, ProgType::CgroupSkb, ProgType::Xdp] {
        for (what, lk, want) in &cases {
            let src = lookup_prog(*lk, None);
            let got = kbpf_run(engine, ty, &src, &frame(false), Some(w.ns));
            assert_eq!(
                got, *want,
                "{engine:?} {ty:?} {what}: {got:#x} != {want:#x}"
            );
        }
        // Another netns (the initial one, where nothing listens at these ports).
        let src = lookup_prog(l(84, &t4), None);
        let got = kbpf_run(engine, ty, &src, &frame(false), None);
        assert_eq!(got, NULL, "{engine:?} {ty:?}: another netns");
    }
    // bpf_sk_assign in a test run: at egress, so EOPNOTSUPP; bad flags first.
    for (flags, want) in [(0, Errno::EOPNOTSUPP), (1, Errno::EINVAL)] {
        let src = lookup_prog(l(84, &t4), Some(flags));
        let got = kbpf_run(engine, ProgType::SchedCls, &src, &frame(false), Some(w.ns));
        assert_eq!(
            got as i32,
            want.to_neg() as i32,
            "{engine:?} assign {flags}"
        );
    }
    // Every reference a lookup of the established socket took was released.
    assert_eq!(w.child.sock().refcount(), refs, "{engine:?}");
    assign_at_tcx_ingress(engine, w, &te);
}

/// A tcx program on a device's ingress looks the established socket up and assigns it: the
/// skb leaves holding it (one reference, put with the skb); at egress the same program gets
/// `EOPNOTSUPP` and the skb keeps no socket.
fn assign_at_tcx_ingress(engine: Engine, w: &World, te: &[u8]) {
    use kbpf::tcx::{self, AttachAttr, Direction};
    use kbpf::uapi::AttachType;
    let ifindex = 7800 + engine as u32;
    // TCX_PASS (0) when the assign worked, TCX_DROP (2) otherwise.
    let src = format!(
        "{}jeq %r0, 0, +2\nmov %r0, 2\nexit\nmov %r0, 0\nexit\n",
        lookup_prog(
            Lookup {
                helper: 84,
                tuple: te,
                size: te.len() as u32,
                netns: u64::MAX,
                flags: 0,
            },
            Some(0),
        )
        .trim_end_matches("exit\n")
    );
    let fd = load(ProgType::SchedCls, &assemble(&src).unwrap(), engine);
    tcx::dev_create(ifindex).unwrap();
    for at in [AttachType::TcxIngress, AttachType::TcxEgress] {
        let mut a = AttachAttr::new(ifindex, at);
        a.attach_bpf_fd = fd;
        tcx::prog_attach(&a).unwrap();
    }
    let dev = tcx::dev_get(ifindex).unwrap();
    let child = w.child.sock();
    let refs = child.refcount();
    let mut pkt = frame(false);
    for (dir, verdict, held) in [
        (Direction::Egress, tcx::TcxVerdict::Drop, false),
        (Direction::Ingress, tcx::TcxVerdict::Pass, true),
    ] {
        let mut skb = SkBuff::new(&mut pkt);
        skb.net = Arc::as_ptr(&w.net);
        let mut g = CpuGuard::enter();
        assert_eq!(
            tcx::run_skb(&dev, dir, &mut g, &mut skb),
            verdict,
            "{engine:?} {dir:?}"
        );
        drop(g);
        assert_eq!(std::ptr::eq(skb.sk, child), held, "{engine:?} {dir:?}");
        assert_eq!(child.refcount(), refs + held as u32, "{engine:?} {dir:?}");
        drop(skb);
        assert_eq!(
            child.refcount(),
            refs,
            "{engine:?} {dir:?}: put with the skb"
        );
    }
    tcx::dev_remove(ifindex).unwrap();
    syscall::close(fd).unwrap();
}

/// The kernel's view of a socket field read of `size` bytes at `off` of `__sk_buff`, from the
/// field's `__u32` value `v` and its kernel field being a `u16` (`half`): a 1-byte read of a
/// `u16` field selects the byte; a wider read gets the whole value.
fn narrow(v: u32, off: usize, size: usize, half: bool) -> u32 {
    if half && size == 1 {
        (v >> ((off % 4) * 8)) & 0xff
    } else if size == 4 || half {
        v
    } else {
        unreachable!("addresses are read whole")
    }
}

/// Every read of the socket fields the verifier allows cgroup skb programs: (offset, size,
/// whether the kernel field is a `u16`).
fn field_reads() -> Vec<(usize, usize, bool)> {
    let mut v = Vec::new();
    for off in (92..132).step_by(4) {
        v.push((off, 4, false));
    }
    for f in [88, 132, 136] {
        v.extend([(f, 4, true), (f, 2, true), (f + 2, 2, true)]);
        v.extend((0..4).map(|i| (f + i, 1, true)));
    }
    v
}

fn ldx(off: usize, size: usize) -> String {
    let s = match size {
        1 => "b",
        2 => "h",
        _ => "w",
    };
    format!("ldx{s} %r0, [%r1+{off}]\nexit\n")
}

/// The `__u32` value of the socket field at `off` for a socket with these addresses.
fn field_value(
    off: usize,
    family: u32,
    local: &[u8],
    remote: &[u8],
    lport: u16,
    rport: u16,
) -> u32 {
    let word = |b: &[u8], i: usize| {
        b.get(i..i + 4)
            .map_or(0, |w| u32::from_ne_bytes(w.try_into().unwrap()))
    };
    match off & !3 {
        88 => family,
        92 if remote.len() == 4 => word(remote, 0),
        96 if local.len() == 4 => word(local, 0),
        o @ 100..116 if remote.len() == 16 => word(remote, o - 100),
        o @ 116..132 if local.len() == 16 => word(local, o - 116),
        132 => (u16::from_ne_bytes(rport.to_be_bytes()) as u32) << 16,
        136 => lport as u32,
        _ => 0,
    }
}

/// Socket fields on a connected socket hung off an skb (not a test run, whose socket has no
/// ports): the accepted side of [`World`]'s connection.
fn fields_of_a_connection(engine: Engine, w: &World) {
    let (local, remote) = (a(SRV4), w.client);
    let ip = |a: SocketAddr| match a {
        SocketAddr::V4(a) => a.ip().octets().to_vec(),
        SocketAddr::V6(a) => a.ip().octets().to_vec(),
    };
    for (off, size, half) in field_reads() {
        let v = field_value(off, AF_INET, &ip(local), &ip(remote), 8008, remote.port());
        let want = narrow(v, off, size, half);
        // A cgroup skb program returns 0 or 1: what it read goes out through `cb[0]`
        // ([`via_cb`]), with the connection's socket and (reading 0) with none.
        let insns = assemble(&via_cb(&ldx(off, size))).unwrap();
        let fd = load(ProgType::CgroupSkb, &insns, engine);
        let prog = syscall::prog_get(fd).unwrap();
        for (sk, want) in [(Some(w.child.sock()), want), (None, 0)] {
            let mut pkt = frame(false);
            let mut skb = SkBuff::new(&mut pkt);
            if let Some(sk) = sk {
                skb.sk = sk;
            }
            let mut g = CpuGuard::enter();
            assert_eq!(prog.run(&mut g, skb.as_ctx(), 0).unwrap(), 1);
            drop(g);
            let got = skb.cb[0];
            assert_eq!(
                got,
                want,
                "{engine:?} off {off} size {size} socket {}: {got:#x} != {want:#x}",
                sk.is_some()
            );
        }
        syscall::close(fd).unwrap();
    }
    let _ = &w.net;
}

/// The test run's socket: (what, program type, program, IPv6 frame).
fn test_run_socket_cases() -> Vec<(String, ProgType, String, bool)> {
    let mut v = Vec::new();
    for v6 in [false, true] {
        for (off, size, _) in field_reads() {
            let src = ldx(off, size);
            v.push((
                format!("off {off} size {size}"),
                ProgType::CgroupSkb,
                src,
                v6,
            ));
        }
        for ty in [
            ProgType::SocketFilter,
            ProgType::SchedCls,
            ProgType::CgroupSkb,
        ] {
            // skb->sk, then struct bpf_sock fields a common part has.
            for (f, size) in [
                (0, 4),
                (4, 4),
                (4, 2),
                (24, 4),
                (28, 4),
                (40, 4),
                (44, 4),
                (48, 4),
                (52, 4),
                (56, 4),
                (68, 4),
                (72, 4),
                (76, 4),
            ] {
                let s = if size == 4 { "w" } else { "h" };
                let src = format!(
                    "ldxdw %r2, [%r1+168]\nmov32 %r0, -1\njeq %r2, 0, +1\nldx{s} %r0, [%r2+{f}]\nexit\n"
                );
                v.push((format!("sk {f} size {size}"), ty, src, v6));
            }
        }
    }
    v
}

fn test_run_socket(engine: Engine, host: Option<&HostTestRun>) -> usize {
    let mut compared = 0;
    for (what, ty, src, v6) in test_run_socket_cases() {
        let f = frame(v6);
        let got = kbpf_run(engine, ty, &src, &f, None);
        // The kernel's test run socket: family and addresses of the IP header, no ports,
        // state TCP_CLOSE, no receive queue.
        let (family, local, remote): (u32, &[u8], &[u8]) = if v6 {
            (AF_INET6, &f[22..38], &f[38..54])
        } else {
            (AF_INET, &f[26..30], &f[30..34])
        };
        if let Some(rest) = what.strip_prefix("off ") {
            let mut it = rest.split(" size ");
            let off: usize = it.next().unwrap().parse().unwrap();
            let size: usize = it.next().unwrap().parse().unwrap();
            let half = matches!(off & !3, 88 | 132 | 136);
            let want = narrow(
                field_value(off, family, local, remote, 0, 0),
                off,
                size,
                half,
            );
            assert_eq!(
                got, want,
                "{engine:?} v6 {v6} {what}: {got:#x} != {want:#x}"
            );
        }
        if let Some(h) = host {
            let theirs = host_run(h, ty, &src, &f, got);
            assert_eq!(
                got, theirs,
                "{engine:?} {ty:?} v6 {v6} {what}: kbpf {got:#x}, host {theirs:#x}"
            );
            compared += 1;
        }
    }
    compared
}

/// Lookups on the host kernel and on kbpf of a listener at the same address and port (the
/// host's on its loopback, opened by this process), and of absent sockets.
fn lookups_against_the_host(engine: Engine, host: &HostTestRun) -> usize {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ns = net::fd::netns_create().unwrap();
    let net = net::fd::netns_get(ns).unwrap();
    let l = net::socket(&net, Family::Inet, Proto::Tcp).unwrap();
    l.bind(format!("127.0.0.1:{port}").parse().unwrap())
        .unwrap();
    l.listen(8).unwrap();
    let present = tuple(
        a("127.0.0.1:40000"),
        format!("127.0.0.1:{port}").parse().unwrap(),
    );
    // A port nobody listens on: one the listener had, closed.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let absent_port = gone.local_addr().unwrap().port();
    drop(gone);
    let absent = tuple(
        a("127.0.0.1:40000"),
        format!("127.0.0.1:{absent_port}").parse().unwrap(),
    );
    let mut compared = 0;
    for ty in [ProgType::SchedCls, ProgType::Xdp, ProgType::CgroupSkb] {
        for helper in [84, 99] {
            for (t, netns, flags) in [
                (&present, u64::MAX, 0),
                (&present, 0, 0),
                (&present, 0xffff_ffff, 1),
                (&absent, u64::MAX, 0),
            ] {
                let lk = Lookup {
                    helper,
                    tuple: t,
                    size: t.len() as u32,
                    netns,
                    flags,
                };
                let mut srcs = vec![lookup_prog(lk, None)];
                if ty == ProgType::SchedCls {
                    srcs.push(lookup_prog(lk, Some(0)));
                }
                for src in srcs {
                    let got = kbpf_run(engine, ty, &src, &frame(false), Some(ns));
                    let theirs = host_run(host, ty, &src, &frame(false), got);
                    assert_eq!(
                        got, theirs,
                        "{engine:?} {ty:?} {helper} netns {netns:#x} flags {flags}: kbpf {got:#x}, host {theirs:#x}"
                    );
                    compared += 1;
                }
            }
        }
    }
    drop(listener);
    drop(l);
    syscall::close(ns).unwrap();
    compared
}

#[test]
fn socket_lookups_and_fields_in_both_engines_and_on_the_host() {
    kbpf_shim::host::install();
    let host = HostTestRun::open()
        .map_err(|why| eprintln!("SKIPPED (host part): {why}"))
        .ok();
    let mut compared = 0;
    for engine in [Engine::Interp, Engine::Jit] {
        engine.select();
        let w = world();
        lookups(engine, &w);
        fields_of_a_connection(engine, &w);
        compared += test_run_socket(engine, host.as_ref());
        if let Some(h) = &host {
            compared += lookups_against_the_host(engine, h);
        }
        syscall::close(w.ns).unwrap();
        sockets_and_conntrack_share_one_netns(engine);
    }
    println!("{compared} runs compared with the host kernel");
}

/// What [`ct_and_sk_prog`] returns when the socket lookup gave NULL (the low 28 bits).
const NO_SOCK: u32 = 0x0fff_ffff;
/// The bit [`ct_and_sk_prog`] sets when the conntrack lookup found an entry.
const CT_FOUND: u32 = 1 << 30;

/// One program that looks up a TCP socket (`bpf_sk_lookup_tcp` with `sk_netns`) and then a
/// conntrack entry (`bpf_{skb,xdp}_ct_lookup` with `bpf_ct_opts.netns_id = ct_netns`) of the
/// same tuple: the socket's `src_port + (family << 16) + (state << 24)` (or [`NO_SOCK`]),
/// plus [`CT_FOUND`] when the entry was found. Both references are released.
fn ct_and_sk_prog(hook: Hook, t: &[u8], sk_netns: u64, ct_netns: i32) -> String {
    let mut s = String::from("mov %r6, %r1\n");
    for k in 0..9 {
        s += &format!("stdw [%r10-{}], 0\n", 8 * (k + 1));
    }
    for (i, b) in t.iter().enumerate() {
        s += &format!("stb [%r10{:+}], {b}\n", i as i32 - 48);
    }
    for (i, b) in ct_opts(ct_netns, 6, 0, 0, 0).iter().enumerate() {
        s += &format!("stb [%r10{:+}], {b}\n", i as i32 - 72);
    }
    let k = KfuncIds::kbpf();
    let ct_lookup = match hook {
        Hook::Tc => k.skb_lookup,
        Hook::Xdp => k.xdp_lookup,
    };
    s + &format!(
        "mov %r1, %r6\nmov %r2, %r10\nadd %r2, -48\nmov %r3, 12\nlddw %r4, {sk_netns:#x}\n\
         mov %r5, 0\ncall 84\nmov32 %r8, {NO_SOCK:#x}\njeq %r0, 0, ct\nmov %r7, %r0\n\
         ldxw %r8, [%r7+44]\nldxw %r2, [%r7+4]\nlsh %r2, 16\nadd %r8, %r2\n\
         ldxw %r2, [%r7+72]\nlsh %r2, 24\nadd %r8, %r2\nmov %r1, %r7\ncall 86\n\
         ct:\nmov %r1, %r6\nmov %r2, %r10\nadd %r2, -48\nmov %r3, 12\nmov %r4, %r10\n\
         add %r4, -72\nmov %r5, 16\ncall kfunc {ct_lookup}\nmov %r9, 0\njeq %r0, 0, done\n\
         mov %r1, %r0\ncall kfunc {}\nmov %r9, {CT_FOUND:#x}\ndone:\nor %r8, %r9\n\
         mov %r0, %r8\nexit\n",
        k.release
    )
}

/// One netns, created once, holds both a listener and a conntrack entry of the same tuple: a
/// TC or XDP program finds both — by the netns's id from the initial netns, and as its own
/// (`BPF_F_CURRENT_NETNS`) when run in it — and neither from elsewhere or by an unknown id.
/// When the netns exits (its handle and sockets gone) its conntrack entries go with it and
/// its id names nothing.
fn sockets_and_conntrack_share_one_netns(engine: Engine) {
    let w = world();
    let num = w.net.num();
    let nsid = 5000 + engine as i32;
    net::fd::netns_set_id(w.ns, nsid).unwrap();
    assert_eq!(w.net.id(), Some(nsid));
    let ct = conntrack().unwrap();
    let t = tuple(a(REMOTE4), a(SRV4));
    ct.add(&EntrySpec {
        net: num,
        zone: Zone::DEFAULT,
        orig: CtTuple::new(&t[0..4], &t[4..8], 40000, 8008, 6).unwrap(),
        timeout: 60 * HZ,
        status: 0,
        mark: 0,
    })
    .unwrap();
    assert_eq!(ct.nets.count(num), 1);
    let listener4 = 8008 + (AF_INET << 16) + (LISTEN << 24);
    let own = u64::MAX;
    let unknown = nsid + 1000;
    let cases: [(&str, Option<Fd>, u64, i32, u32); 4] = [
        ("by id", None, nsid as u64, nsid, listener4 | CT_FOUND),
        ("as its own", Some(w.ns), own, -1, listener4 | CT_FOUND),
        ("from the initial netns", None, own, -1, NO_SOCK),
        (
            "by an unknown id",
            Some(w.ns),
            unknown as u64,
            unknown,
            NO_SOCK,
        ),
    ];
    for hook in [Hook::Tc, Hook::Xdp] {
        for (what, ns, sk_id, ct_id, want) in cases {
            let src = ct_and_sk_prog(hook, &t, sk_id, ct_id);
            let got = kbpf_run(engine, hook.prog_type(), &src, &frame(false), ns);
            assert_eq!(
                got, want,
                "{engine:?} {hook:?} {what}: {got:#x} != {want:#x}"
            );
        }
    }
    // Exit: the last handle and the sockets go; the entries of the netns go with it.
    syscall::close(w.ns).unwrap();
    let net = w.net.clone();
    drop(w);
    assert!(!net.is_alive());
    assert_eq!(ct.nets.count(num), 0, "{engine:?}: flushed at exit");
    assert!(ct.list(Some(num)).is_empty());
    for hook in [Hook::Tc, Hook::Xdp] {
        let src = ct_and_sk_prog(hook, &t, nsid as u64, nsid);
        let got = kbpf_run(engine, hook.prog_type(), &src, &frame(false), None);
        assert_eq!(
            got, NO_SOCK,
            "{engine:?} {hook:?}: the id names nothing now"
        );
    }
}

/// TC's `bpf_sk_assign` where a test run cannot reach (at ingress): its checks in the kernel's
/// order, and the reference it takes for a reference-counted socket, released with the skb.
#[test]
fn sk_assign_checks_in_the_kernels_order_and_holds_a_reference() {
    use kbpf::net::bpf_sk::sk_assign;
    kbpf_shim::host::install();
    let w = world();
    let other = net::fd::netns_create().unwrap();
    let other_net = net::fd::netns_get(other).unwrap();
    let listener = net::socket(&w.net, Family::Inet, Proto::Tcp).unwrap();
    listener.bind("127.0.0.3:7000".parse().unwrap()).unwrap();
    listener.listen(1).unwrap();
    let unbound = net::socket(&w.net, Family::Inet, Proto::Tcp).unwrap();
    let mut pkt = frame(false);
    let mut skb = SkBuff::new(&mut pkt);
    skb.net = Arc::as_ptr(&w.net);
    skb.tc_at_ingress = 1;
    let child = w.child.sock();
    assert_eq!(sk_assign(&mut skb, None, 0), Err(Errno::EINVAL));
    assert_eq!(sk_assign(&mut skb, Some(child), 1), Err(Errno::EINVAL));
    skb.tc_at_ingress = 0;
    assert_eq!(sk_assign(&mut skb, Some(child), 0), Err(Errno::EOPNOTSUPP));
    skb.tc_at_ingress = 1;
    skb.net = Arc::as_ptr(&other_net);
    assert_eq!(sk_assign(&mut skb, Some(child), 0), Err(Errno::ENETUNREACH));
    skb.net = Arc::as_ptr(&w.net);
    assert_eq!(
        sk_assign(&mut skb, Some(unbound.sock()), 0),
        Err(Errno::EOPNOTSUPP),
        "not in a lookup table"
    );
    assert!(skb.sk.is_null(), "a refusal changes nothing");
    // A listener is used under RCU: no reference.
    let l_refs = listener.sock().refcount();
    sk_assign(&mut skb, Some(listener.sock()), 0).unwrap();
    assert_eq!(skb.sk, listener.sock() as *const _);
    assert_eq!(listener.sock().refcount(), l_refs);
    // An established socket is reference-counted: assigning takes one, replacing the
    // listener (orphaned); dropping the skb puts it.
    let refs = child.refcount();
    sk_assign(&mut skb, Some(child), 0).unwrap();
    assert_eq!(skb.sk, child as *const _);
    assert_eq!(child.refcount(), refs + 1);
    sk_assign(&mut skb, Some(child), 0).unwrap();
    assert_eq!(child.refcount(), refs + 1, "the one it replaced was put");
    drop(skb);
    assert_eq!(child.refcount(), refs);
    syscall::close(other).unwrap();
    syscall::close(w.ns).unwrap();
}
