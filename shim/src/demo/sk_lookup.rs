//! The demo's seed 002 part: `sk_lookup.o`'s two programs linked to a fresh netns, the
//! seed's two use cases run through the netns's real lookup path (TCP connects, accepted by
//! whichever socket the lookup picked), then a service going away, and the cost of one lookup.
//!
//! Sockets: "nginx" on 10.0.0.1:8080 and "proxy" on 10.0.0.2:3128, stored in the object's
//! `services` SOCKMAP; a regular listener on 203.0.113.1:80 that no program steers to.
//! Clients connect from 10.1.1.1.

use super::{DynErr, describe_loaded, load_object, read_global, u64_at};
use crate::conformance::Engine;
use kbpf::cpu::CpuGuard;
use kbpf::net::{self, Family, Proto, Socket, Tuple};
use kbpf::sync::Arc;
use kbpf::syscall::{self, Object};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Instant;

/// `examples/bpf/sk_lookup.o`.
pub const SK_LOOKUP_O: &[u8] = include_bytes!("../../../examples/bpf/sk_lookup.o");

/// What the sk_lookup part saw, for tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkLookupReport {
    /// Per destination, who took the connection: "nginx", "proxy", "web", or "refused".
    pub connections: Vec<(String, String)>,
    /// `steered[NGINX]`, `steered[PROXY]`, `refused` from the object's `.bss`.
    pub counters: [u64; 3],
    /// The destinations tried after the proxy closed, and who took them.
    pub after_close: Vec<(String, String)>,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a socket address")
}

/// Who accepted the connection, by the accept queues.
fn accepted_by(servers: &[(&str, &Socket)]) -> Option<String> {
    servers
        .iter()
        .find(|(_, s)| s.accept().is_ok())
        .map(|(n, _)| n.to_string())
}

fn connect(net: &Arc<net::Net>, dst: &str, servers: &[(&str, &Socket)]) -> Result<String, DynErr> {
    let c = net::socket(net, Family::Inet, Proto::Tcp)?;
    c.bind(addr("10.1.1.1:0"))?;
    Ok(match c.connect(addr(dst)) {
        Ok(_) => accepted_by(servers).unwrap_or_else(|| "?".into()),
        Err(kbpf::Errno::ECONNREFUSED) => "refused".into(),
        Err(e) => return Err(format!("connect {dst}: {e:?}").into()),
    })
}

/// Runs the part (see the module docs).
pub fn run(engine: Engine, rep: &mut SkLookupReport, out: &mut dyn Write) -> Result<(), DynErr> {
    let obj = load_object("sk_lookup.o", SK_LOOKUP_O)?;
    writeln!(
        out,
        "\nseed 002: BPF_PROG_TYPE_SK_LOOKUP, the seed's two use cases (sk_lookup.o, sk_lookup)"
    )?;
    describe_loaded(&obj, out)?;
    let ns = net::fd::netns_create()?;
    let net = net::fd::netns_get(ns)?;
    let listen = |a: &str| -> Result<Socket, DynErr> {
        let s = net::socket(&net, Family::Inet, Proto::Tcp)?;
        s.bind(addr(a))?;
        s.listen(64)?;
        Ok(s)
    };
    let nginx = Arc::new(listen("10.0.0.1:8080")?);
    let proxy = Arc::new(listen("10.0.0.2:3128")?);
    let web = listen("203.0.113.1:80")?;
    let services = obj.map("services").ok_or("no services map")?;
    let mut handles = Vec::new();
    for (key, s) in [(0u32, &nginx), (1, &proxy)] {
        let fd = syscall::install_object(Object::Sock(s.clone()))?;
        syscall::map_update_elem(services, &key.to_ne_bytes(), &(fd as u64).to_ne_bytes(), 0)
            .map_err(|e| format!("services[{key}]: {e:?}"))?;
        handles.push(fd);
    }
    writeln!(
        out,
        "  netns {}: nginx on 10.0.0.1:8080 (services[0]), proxy on 10.0.0.2:3128 (services[1]), \
         web on 203.0.113.1:80 (not steered)",
        net.ino()
    )?;
    let mut links = Vec::new();
    for name in ["steer_prefix_port", "steer_addr_any_port"] {
        let p = obj.prog(name).ok_or(format!("no {name}"))?.fd;
        links.push(net::sk_lookup::link::link_create(p, ns, 0)?);
    }
    writeln!(
        out,
        "  linked steer_prefix_port, steer_addr_any_port to the netns (they run in that order)"
    )?;
    let servers = [("nginx", &*nginx), ("proxy", &*proxy), ("web", &web)];
    for dst in [
        "192.0.2.10:80",
        "192.0.2.254:80",
        "192.0.2.10:443",
        "198.51.100.1:22",
        "198.51.100.1:8443",
        "198.51.100.2:22",
        "203.0.113.1:80",
    ] {
        let who = connect(&net, dst, &servers)?;
        writeln!(out, "  connect 10.1.1.1 -> {dst:<18} -> {who}")?;
        rep.connections.push((dst.into(), who));
    }
    let count = |off| read_global(&obj, ".bss", off, 8).map(|b| u64_at(&b));
    rep.counters = [count(0)?, count(8)?, count(16)?];
    writeln!(
        out,
        "  steered (.bss): nginx {}, proxy {}; refused for a missing service: {}",
        rep.counters[0], rep.counters[1], rep.counters[2]
    )?;
    // The proxy goes away: closing it takes it out of the SOCKMAP too.
    syscall::close(handles.pop().ok_or("no proxy handle")?)?;
    let servers = [("nginx", &*nginx), ("web", &web)];
    drop(proxy);
    for dst in ["198.51.100.1:22", "192.0.2.10:80"] {
        let who = connect(&net, dst, &servers)?;
        writeln!(out, "  proxy closed: connect -> {dst:<18} -> {who}")?;
        rep.after_close.push((dst.into(), who));
    }
    rep.counters[2] = count(16)?;
    writeln!(
        out,
        "  refused for a missing service (.bss): {} (services[1] emptied by the close)",
        rep.counters[2]
    )?;
    let timing = lookup_ns(&net)?;
    writeln!(
        out,
        "  time: {:.0} ns per TCP lookup through both programs on the {} (the regular lookup \
         alone: {:.0} ns)",
        timing.0,
        match engine {
            Engine::Jit => "JIT",
            Engine::Interp => "interpreter",
        },
        timing.1
    )?;
    for fd in links.into_iter().chain(handles).chain([ns]) {
        syscall::close(fd)?;
    }
    obj.close();
    Ok(())
}

/// Mean ns of a steered TCP lookup (192.0.2.10:80), and of one the programs pass to the
/// regular listener lookup (203.0.113.1:80).
fn lookup_ns(net: &net::Net) -> Result<(f64, f64), DynErr> {
    let n = 200_000;
    let one = |dst: &str| -> Result<f64, DynErr> {
        let t = Tuple::new(Proto::Tcp, addr("10.1.1.1:40000"), addr(dst))?;
        let mut g = CpuGuard::enter();
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(net::lookup(net, &mut g, std::hint::black_box(&t)).sock());
        }
        Ok(start.elapsed().as_nanos() as f64 / n as f64)
    };
    Ok((one("192.0.2.10:80")?, one("203.0.113.1:80")?))
}
