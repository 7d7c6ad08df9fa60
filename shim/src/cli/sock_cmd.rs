//! `kbpf sock …`: the socket control path (`kbpf::net`) from the command line — netns,
//! sockets, connects and datagrams through the lookup path, sk_lookup links and queries.

use super::sock_args::{ProtoArg, SockCmd, SockKind};
use super::{CmdError, State};
use kbpf::cpu::CpuGuard;
use kbpf::net::sk_lookup::link;
use kbpf::net::{self, Delivery, Family, Found, Proto, Tuple, Via};
use kbpf::syscall::{self, Fd};
use std::io::Write;

fn errno(what: &str) -> impl Fn(kbpf::Errno) -> CmdError + '_ {
    move |e| CmdError::errno(what, e)
}

/// The handle of the netns named `name` (`init` when `None`), opened on first use for `init`.
fn netns(state: &mut State, name: Option<&str>) -> Result<Fd, CmdError> {
    let name = name.unwrap_or("init");
    if let Some(&(_, fd)) = state.netns.iter().find(|(n, _)| n == name) {
        return Ok(fd);
    }
    if name != "init" {
        return Err(CmdError::usage(format!("no netns named {name}")));
    }
    let fd = net::fd::netns_init().map_err(errno("netns"))?;
    state.netns.push((name.into(), fd));
    Ok(fd)
}

fn sock(state: &State, name: &str) -> Result<kbpf::sync::Arc<net::Socket>, CmdError> {
    net::fd::sock_get(state.sock(name)?).map_err(errno(name))
}

/// The name of the session's socket with cookie `cookie`, or `cookie N`.
fn who(state: &State, cookie: u64) -> String {
    state
        .socks
        .iter()
        .find(|(_, fd)| net::fd::sock_get(*fd).is_ok_and(|s| s.cookie() == cookie))
        .map_or(format!("cookie {cookie}"), |(n, _)| n.clone())
}

fn state_name(s: u32) -> &'static str {
    use net::sock::state::*;
    match s {
        ESTABLISHED => "established",
        LISTEN => "listen",
        CLOSE => "close",
        _ => "other",
    }
}

/// `kbpf sock …`.
pub fn run(cmd: SockCmd, state: &mut State, out: &mut dyn Write) -> Result<(), CmdError> {
    match cmd {
        SockCmd::Netns { name, id } => {
            if state.netns.iter().any(|(n, _)| *n == name) || name == "init" {
                return Err(CmdError::usage(format!("a netns named {name} exists")));
            }
            let (num, fd) = state.netns_add(Some(name.clone()), id)?;
            let ino = net::fd::netns_get(fd).map_err(errno("netns"))?.ino();
            let id = id.map_or(String::new(), |i| format!(" id {i}"));
            writeln!(out, "netns {name}: ino {ino} num {num}{id}")?;
        }
        SockCmd::Create {
            name,
            kind,
            netns: ns,
            reuseport,
            v6only,
        } => {
            if state.sock(&name).is_ok() {
                return Err(CmdError::usage(format!("a socket named {name} exists")));
            }
            let (family, proto) = match kind {
                SockKind::Tcp4 => (Family::Inet, Proto::Tcp),
                SockKind::Tcp6 => (Family::Inet6, Proto::Tcp),
                SockKind::Udp4 => (Family::Inet, Proto::Udp),
                SockKind::Udp6 => (Family::Inet6, Proto::Udp),
            };
            let ns = netns(state, ns.as_deref())?;
            let fd = net::fd::socket(Some(ns), family, proto).map_err(errno("socket"))?;
            state.socks.push((name.clone(), fd));
            let s = sock(state, &name)?;
            s.set_reuseport(reuseport).map_err(errno("SO_REUSEPORT"))?;
            if v6only {
                s.set_v6only(true).map_err(errno("IPV6_V6ONLY"))?;
            }
            writeln!(out, "socket {name}: cookie {}", s.cookie())?;
        }
        SockCmd::Bind { name, addr } => {
            let s = sock(state, &name)?;
            s.bind(addr).map_err(errno("bind"))?;
            let local = s.local_addr().map_or("?".into(), |a| a.to_string());
            writeln!(out, "{name}: bound to {local}")?;
        }
        SockCmd::Listen { name, backlog } => {
            let s = sock(state, &name)?;
            s.listen(backlog).map_err(errno("listen"))?;
            let local = s.local_addr().map_or("?".into(), |a| a.to_string());
            writeln!(out, "{name}: listening on {local}")?;
        }
        SockCmd::Connect { name, addr } => {
            let s = sock(state, &name)?;
            match s.connect(addr).map_err(errno("connect"))? {
                Some(listener) => writeln!(
                    out,
                    "{name}: connected to {addr}, queued on {}",
                    who(state, listener)
                )?,
                None => writeln!(out, "{name}: peer {addr}")?,
            }
        }
        SockCmd::Accept { name, new } => {
            if state.sock(&new).is_ok() {
                return Err(CmdError::usage(format!("a socket named {new} exists")));
            }
            let fd = net::fd::accept(state.sock(&name)?).map_err(errno("accept"))?;
            let s = net::fd::sock_get(fd).map_err(errno("accept"))?;
            let peer = s.peer_addr().map_or("?".into(), |a| a.to_string());
            let local = s.local_addr().map_or("?".into(), |a| a.to_string());
            writeln!(out, "{new}: {local} <- {peer}")?;
            state.socks.push((new, fd));
        }
        SockCmd::Send { name, data, to } => {
            let s = sock(state, &name)?;
            let d = s.send_to(data.as_bytes(), to).map_err(errno("send"))?;
            match d {
                Delivery::To { cookie } => {
                    writeln!(out, "{name}: delivered to {}", who(state, cookie))?
                }
                Delivery::Refused => writeln!(out, "{name}: refused by a program")?,
                Delivery::NoSocket => writeln!(out, "{name}: no socket")?,
            }
        }
        SockCmd::Recv { name } => {
            let s = sock(state, &name)?;
            let d = s.recv_from().map_err(errno("recv"))?;
            let from = d.from.to_socket_addr(s.sock().family());
            writeln!(
                out,
                "{name}: {:?} from {from}",
                String::from_utf8_lossy(&d.data)
            )?;
        }
        SockCmd::Close { name } => {
            let fd = state.sock(&name)?;
            syscall::close(fd).map_err(errno("close"))?;
            state.socks.retain(|(n, _)| *n != name);
        }
        SockCmd::Attach { prog, netns: ns } => {
            let p = state.prog(&prog)?;
            let ns = netns(state, ns.as_deref())?;
            let l = link::link_create(p, ns, 0).map_err(errno("link_create"))?;
            writeln!(out, "{prog}: linked (link handle {l})")?;
            state.sk_links.push((prog, l));
        }
        SockCmd::Detach { prog } => {
            let i = state
                .sk_links
                .iter()
                .position(|(n, _)| *n == prog)
                .ok_or_else(|| CmdError::usage(format!("no sk_lookup link of {prog}")))?;
            let (_, l) = state.sk_links.remove(i);
            syscall::close(l).map_err(errno("close"))?;
        }
        SockCmd::Query { netns: ns } => {
            let ns = netns(state, ns.as_deref())?;
            let mut ids = [0u32; net::sk_lookup::MAX_PROGS];
            let q = link::prog_query(ns, 0, &mut ids).map_err(errno("query"))?;
            for &id in &ids[..q.prog_cnt as usize] {
                let name = state.prog_name(id).unwrap_or_else(|| "?".into());
                writeln!(out, "{id} {name}")?;
            }
            writeln!(out, "count {}", q.prog_cnt)?;
        }
        SockCmd::Lookup {
            proto,
            from,
            to,
            netns: ns,
        } => {
            let ns = netns(state, ns.as_deref())?;
            let net = net::fd::netns_get(ns).map_err(errno("netns"))?;
            let proto = match proto {
                ProtoArg::Tcp => Proto::Tcp,
                ProtoArg::Udp => Proto::Udp,
            };
            let t = Tuple::new(proto, from, to).map_err(errno("lookup"))?;
            let mut g = CpuGuard::enter();
            let found = match net::lookup(&net, &mut g, &t) {
                Found::Sock(s, via) => Ok((s.cookie(), via)),
                Found::Refused => Err("refused (ECONNREFUSED)"),
                Found::NoSocket => Err("no socket"),
            };
            drop(g);
            match found {
                Ok((cookie, via)) => {
                    let how = match via {
                        Via::Established => "established",
                        Via::SkLookup => "sk_lookup",
                        Via::Table => "listener lookup",
                    };
                    writeln!(out, "{from} -> {to}: {} ({how})", who(state, cookie))?
                }
                Err(what) => writeln!(out, "{from} -> {to}: {what}")?,
            }
        }
        SockCmd::List => {
            for (name, fd) in &state.socks {
                let Ok(s) = net::fd::sock_get(*fd) else {
                    continue;
                };
                let sk = s.sock();
                let local = s.local_addr().map_or("-".into(), |a| a.to_string());
                let peer = s.peer_addr().map_or("-".into(), |a| a.to_string());
                writeln!(
                    out,
                    "{name:<10} {}{} {:<11} {local:<24} {peer:<24} cookie {}",
                    sk.proto().name(),
                    if sk.family() == Family::Inet {
                        "4"
                    } else {
                        "6"
                    },
                    state_name(sk.state()),
                    s.cookie()
                )?;
            }
        }
    }
    Ok(())
}
