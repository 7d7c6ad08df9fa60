//! Helpers the sk_lookup case set (`sk_lookup_cases/`) shares: programs in the conformance
//! assembly (`{mN}` stands for the N-th map), netns, sockets, socket maps, links and test
//! runs, with the constants of the kernel's selftest (`prog_tests/sk_lookup.c`): external
//! (destination) 127.0.0.1 / fd00::1 port 7007, internal (server) 127.0.0.2 / fd00::2 port
//! 8008.
#![allow(dead_code)]

use kbpf::insn::assemble;
use kbpf::net::sk_lookup::ctx::BpfSkLookup;
use kbpf::net::{self, Family, Net, Proto, Socket};
use kbpf::sync::Arc;
use kbpf::syscall::{self, Fd, Object, TestRun};
use kbpf::uapi::{AttachType, MapType, ProgType};
use kbpf::{Errno, MapAttr, ProgLoadAttr};
use kbpf_shim::conformance::Engine;
use std::net::SocketAddr;

/// The external (destination) port.
pub const EXT_PORT: u16 = 7007;
/// The internal (server) port.
pub const INT_PORT: u16 = 8008;
/// `SK_DROP` / `SK_PASS`.
pub const SK_DROP: u32 = 0;
/// `SK_PASS`.
pub const SK_PASS: u32 = 1;
/// `BPF_SK_LOOKUP_F_REPLACE`.
pub const F_REPLACE: u32 = 1;
/// `BPF_SK_LOOKUP_F_NO_REUSEPORT`.
pub const F_NO_REUSEPORT: u32 = 2;

/// An IP version a scenario runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ip {
    /// IPv4 client, IPv4 server.
    V4,
    /// IPv6 client, IPv6 server.
    V6,
    /// IPv4 client, dual-stack IPv6 server.
    V4ToV6,
}

impl Ip {
    /// Every version.
    pub const ALL: [Ip; 3] = [Ip::V4, Ip::V6, Ip::V4ToV6];

    /// The client's family.
    pub fn client_family(self) -> Family {
        match self {
            Ip::V6 => Family::Inet6,
            _ => Family::Inet,
        }
    }

    /// The server's family.
    pub fn server_family(self) -> Family {
        match self {
            Ip::V4 => Family::Inet,
            _ => Family::Inet6,
        }
    }

    /// The external address at `port`, as the client names it.
    pub fn ext(self, port: u16) -> SocketAddr {
        match self {
            Ip::V6 => format!("[fd00::1]:{port}"),
            _ => format!("127.0.0.1:{port}"),
        }
        .parse()
        .unwrap()
    }

    /// The internal address at `port`, as the server binds it (v4-mapped for a dual-stack
    /// server).
    pub fn int(self, port: u16) -> SocketAddr {
        match self {
            Ip::V4 => format!("127.0.0.2:{port}"),
            Ip::V6 => format!("[fd00::2]:{port}"),
            Ip::V4ToV6 => format!("[::ffff:127.0.0.2]:{port}"),
        }
        .parse()
        .unwrap()
    }

    /// The external address at `port`, as the server binds it.
    pub fn ext_for_server(self, port: u16) -> SocketAddr {
        match self {
            Ip::V4ToV6 => format!("[::ffff:127.0.0.1]:{port}"),
            _ => return self.ext(port),
        }
        .parse()
        .unwrap()
    }

    /// The client's own address at `port` (the internal address of its family).
    pub fn client_src(self, port: u16) -> SocketAddr {
        match self {
            Ip::V6 => format!("[fd00::2]:{port}"),
            _ => format!("127.0.0.2:{port}"),
        }
        .parse()
        .unwrap()
    }
}

#[path = "tailcall.rs"]
mod tailcall;
pub use tailcall::{setup, subst};

/// Every read `struct bpf_sk_lookup` allows, (offset, size): the 4-byte fields whole, by
/// halves and by bytes, and `remote_port` and its padding (SK-03, SK-04, SK-06 … SK-08).
pub fn allowed_reads() -> Vec<(i64, usize)> {
    let mut v = Vec::new();
    for f in [8, 12, 16, 20, 24, 28, 32, 40, 44, 48, 52, 56, 60, 64] {
        v.extend([(f, 4), (f, 2), (f + 2, 2)]);
        v.extend((0..4).map(|i| (f + i, 1)));
    }
    v.extend([
        (36, 1),
        (37, 1),
        (36, 2),
        (36, 4),
        (38, 1),
        (39, 1),
        (38, 2),
    ]);
    v
}

/// The load attributes of an sk_lookup program.
pub fn attr(insns: &[kbpf::insn::Insn]) -> ProgLoadAttr<'_> {
    ProgLoadAttr::new(ProgType::SkLookup, insns).with_attach_type(AttachType::SkLookup)
}

/// Loads the sk_lookup program `src` through the verifier and asserts it runs on `engine`.
pub fn load(engine: Engine, src: &str, maps: &[Fd]) -> Fd {
    let text = subst(src, maps);
    let insns = assemble(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut log = String::new();
    let fd = syscall::prog_load_log(&attr(&insns), &mut log)
        .unwrap_or_else(|e| panic!("load: {e:?}: {log}\n{text}"));
    assert_eq!(
        syscall::prog_get(fd).unwrap().jited(),
        engine == Engine::Jit,
        "engine of\n{text}"
    );
    fd
}

/// Loads an `SK_REUSEPORT` program.
pub fn load_reuseport(engine: Engine, src: &str, maps: &[Fd]) -> Fd {
    let text = subst(src, maps);
    let insns = assemble(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut log = String::new();
    let a = ProgLoadAttr::new(ProgType::SkReuseport, &insns)
        .with_attach_type(AttachType::SkReuseportSelect);
    let fd = syscall::prog_load_log(&a, &mut log)
        .unwrap_or_else(|e| panic!("load: {e:?}: {log}\n{text}"));
    assert_eq!(
        syscall::prog_get(fd).unwrap().jited(),
        engine == Engine::Jit
    );
    fd
}

/// The verifier's verdict on the sk_lookup program `src`: `Ok` or the errno and log.
pub fn verify(src: &str, maps: &[Fd], privileged: bool) -> Result<(), (Errno, String)> {
    let insns = assemble(&subst(src, maps)).expect("assemble");
    let mut log = String::new();
    match syscall::prog_load_log(&attr(&insns).with_privileged(privileged), &mut log) {
        Ok(fd) => {
            syscall::close(fd).unwrap();
            Ok(())
        }
        Err(e) => Err((e, log)),
    }
}

/// A netns a case created: its handle and the object. Dropping it (when the case ends) closes
/// the handle and dismantles the netns (`Net::exit`, `cleanup_net`) even where the case's
/// socket maps, programs or links still hold its sockets, so its number (one of
/// [`net::nsid::MAX_NETNS`]) is free again for the next case.
pub struct Netns {
    /// Its handle.
    pub fd: Fd,
    /// The netns.
    pub net: Arc<Net>,
}

impl Netns {
    /// Its handle and the netns, to name them apart.
    pub fn parts(&self) -> (Fd, Arc<Net>) {
        (self.fd, self.net.clone())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // The case may have closed it (then this is `EBADF`); the exit is idempotent.
        let _ = syscall::close(self.fd);
        self.net.exit();
    }
}

/// A new netns.
pub fn netns() -> Netns {
    let fd = net::fd::netns_create().unwrap();
    Netns {
        fd,
        net: net::fd::netns_get(fd).unwrap(),
    }
}

/// A socket behind a handle (so a socket map can store it).
pub struct Sk {
    /// Its handle.
    pub fd: Fd,
    /// The socket.
    pub s: Arc<Socket>,
}

impl Sk {
    /// Its cookie.
    pub fn cookie(&self) -> u64 {
        self.s.cookie()
    }
}

impl Drop for Sk {
    fn drop(&mut self) {
        let _ = syscall::close(self.fd);
    }
}

fn install(s: Socket) -> Sk {
    let s = Arc::new(s);
    let fd = syscall::install_object(Object::Sock(s.clone())).unwrap();
    Sk { fd, s }
}

/// An unbound socket.
pub fn sock(net: &Arc<Net>, family: Family, proto: Proto) -> Sk {
    install(net::socket(net, family, proto).unwrap())
}

/// A server bound to `addr`: listening (TCP) or unconnected (UDP); `reuseport` sets
/// `SO_REUSEPORT` first.
pub fn server(net: &Arc<Net>, proto: Proto, addr: SocketAddr, reuseport: bool) -> Sk {
    let family = match addr {
        SocketAddr::V4(_) => Family::Inet,
        SocketAddr::V6(_) => Family::Inet6,
    };
    let s = sock(net, family, proto);
    s.s.set_reuseport(reuseport).unwrap();
    s.s.bind(addr).unwrap();
    if proto == Proto::Tcp {
        s.s.listen(16).unwrap();
    }
    s
}

/// A socket map (`SOCKMAP`, 8-byte values) of `n` slots.
pub fn sockmap(n: u32) -> Fd {
    syscall::map_create(&MapAttr::new(MapType::Sockmap, 4, 8, n)).unwrap()
}

/// Stores `s` in `map[key]`.
pub fn store(map: Fd, key: u32, s: &Sk) {
    syscall::map_update_elem(map, &key.to_ne_bytes(), &(s.fd as u64).to_ne_bytes(), 0)
        .unwrap_or_else(|e| panic!("sockmap update: {e:?}"));
}

/// An array map of `n` 8-byte values, for programs to report into.
pub fn out_map(n: u32) -> Fd {
    syscall::map_create(&MapAttr::new(MapType::Array, 4, 8, n)).unwrap()
}

/// `out[key]` as the signed value a program stored.
pub fn out(map: Fd, key: u32) -> i64 {
    let mut v = [0u8; 8];
    syscall::map_lookup_elem(map, &key.to_ne_bytes(), &mut v).unwrap();
    i64::from_ne_bytes(v)
}

/// Attaches `prog` to the netns behind `ns` through a link.
pub fn attach(prog: Fd, ns: Fd) -> Fd {
    net::sk_lookup::link::link_create(prog, ns, 0).unwrap()
}

/// A client of `proto` in `net` connecting (TCP) or sending a datagram (UDP) from
/// `src` (if given) to `dst`: the cookie of the server socket that got it, or the errno the
/// client sees (`ECONNREFUSED`). A UDP client is connected, so a refusal shows on its receive.
pub fn deliver(
    net: &Arc<Net>,
    proto: Proto,
    src: Option<SocketAddr>,
    dst: SocketAddr,
) -> Result<u64, Errno> {
    let family = match dst {
        SocketAddr::V4(_) => Family::Inet,
        SocketAddr::V6(_) => Family::Inet6,
    };
    let c = net::socket(net, family, proto).unwrap();
    if let Some(src) = src {
        c.bind(src).unwrap();
    }
    match proto {
        Proto::Tcp => c
            .connect(dst)
            .map(|l| l.expect("a TCP connect names its listener")),
        Proto::Udp => {
            c.connect(dst).unwrap();
            match c.send_to(b"ping", None)? {
                net::Delivery::To { cookie } => Ok(cookie),
                _ => Err(c
                    .recv_from()
                    .expect_err("a refused datagram leaves an error")),
            }
        }
    }
}

/// A test run's context for a lookup from `remote` to `local` (`ctx_in`).
pub fn ctx(proto: Proto, remote: SocketAddr, local: SocketAddr) -> BpfSkLookup {
    let mut c = BpfSkLookup {
        protocol: proto as u32,
        remote_port: remote.port().to_be(),
        local_port: local.port() as u32,
        ..Default::default()
    };
    let words = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(a) => (u32::from_ne_bytes(a.octets()), [0; 4]),
        std::net::IpAddr::V6(a) => {
            let o = a.octets();
            (
                0,
                [0, 4, 8, 12].map(|i| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]])),
            )
        }
    };
    match local {
        SocketAddr::V4(_) => {
            c.family = 2;
            c.remote_ip4 = words(remote.ip()).0;
            c.local_ip4 = words(local.ip()).0;
        }
        SocketAddr::V6(_) => {
            c.family = 10;
            c.remote_ip6 = words(remote.ip()).1;
            c.local_ip6 = words(local.ip()).1;
        }
    }
    c
}

/// `BPF_PROG_TEST_RUN` of `prog` on `input`: (retval, the output context's cookie).
pub fn test_run(prog: Fd, input: &BpfSkLookup) -> Result<(u32, u64), Errno> {
    test_run_with(prog, input, |_| {})
}

/// [`test_run`] with the attributes `f` sets besides the context.
pub fn test_run_with(
    prog: Fd,
    input: &BpfSkLookup,
    f: impl FnOnce(&mut TestRun<'_>),
) -> Result<(u32, u64), Errno> {
    let bytes = input.to_bytes();
    let mut outb = [0u8; 72];
    let mut run = TestRun {
        ctx_in: Some(&bytes),
        ctx_out: Some(&mut outb),
        repeat: 1,
        ..Default::default()
    };
    f(&mut run);
    let r = syscall::prog_test_run(prog, &mut run)?;
    Ok((r.retval as u32, BpfSkLookup::from_bytes(&outb).cookie))
}

/// `r0 = N; exit`.
pub fn ret(n: u32) -> String {
    format!("mov %r0, {n}\nexit\n")
}

/// Looks `{m0}[key]` up, assigns it with `flags`, records the assign's result in `{m1}[slot]`
/// (when `record`), releases it and returns `verdict`; a failed lookup returns `SK_DROP`.
/// Expects the context in R6 (set by [`prologue`]).
pub fn assign_body(key: u32, flags: u32, slot: Option<u32>, verdict: u32) -> String {
    let record = match slot {
        Some(s) => format!(
            "stw [%r10-8], {s}\nlddw %r1, {{m1}}\nmov %r2, %r10\nadd %r2, -8\ncall 1\n\
             jeq %r0, 0, +1\nstxdw [%r0+0], %r8\n"
        ),
        None => String::new(),
    };
    format!(
        "stw [%r10-4], {key}\nlddw %r1, {{m0}}\nmov %r2, %r10\nadd %r2, -4\ncall 1\n\
         jne %r0, 0, +2\nmov %r0, 0\nexit\n\
         mov %r7, %r0\nmov %r1, %r6\nmov %r2, %r7\nmov %r3, {flags}\ncall 124\nmov %r8, %r0\n\
         {record}mov %r1, %r7\ncall 86\nmov %r0, {verdict}\nexit\n"
    )
}

/// Keeps the context in R6.
pub fn prologue() -> &'static str {
    "mov %r6, %r1\n"
}

/// A program that assigns `{m0}[key]` (flags) and passes.
pub fn redir(key: u32, flags: u32) -> String {
    format!("{}{}", prologue(), assign_body(key, flags, None, SK_PASS))
}

/// [`redir`] when the lookup's local port is `port`, else `SK_PASS`.
pub fn redir_port(port: u16, key: u32, flags: u32) -> String {
    format!(
        "{}ldxw %r2, [%r6+60]\njeq %r2, {port}, +2\nmov %r0, 1\nexit\n{}",
        prologue(),
        assign_body(key, flags, None, SK_PASS)
    )
}
