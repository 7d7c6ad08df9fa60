//! Connections and datagrams: `connect(2)`, `accept(2)`, `sendto(2)`, `recvfrom(2)` on kbpf's
//! sockets, each packet going through the netns's lookup path ([`super::lookup`]) as a
//! locally delivered one (come in on the loopback).
//!
//! * TCP connect (`tcp_v4_connect` + the SYN's lookup): the address must be of the socket's
//!   family (`EAFNOSUPPORT`; a v4-mapped one on a `v6only` socket is `ENETUNREACH`); a
//!   listening or connected socket is `EISCONN`. An unbound socket is bound to an ephemeral
//!   port; its source address is its bound one, or — kbpf has no routes — the destination's
//!   (the loopback's for a wildcard destination). A 4-tuple already established is
//!   `EADDRNOTAVAIL`. The lookup decides: a listener gets an established child in its accept
//!   queue and the client is established; anything else is `ECONNREFUSED` (and an autobound
//!   port is released).
//! * UDP connect sets the peer (the socket stays in its reuseport group, which then has
//!   connections); sendto looks the receiver up per datagram and queues the datagram there.
//!   When nobody takes it, a connected sender gets `ECONNREFUSED` from its next receive (the
//!   ICMP error the kernel would queue); an unconnected one is not told.
//!
//! All of it is control path; the lookup runs inside a [`CpuGuard`], and the receiver is
//! kept with a reference taken there, then changed under its locks outside the guard.

use super::addr::{Addr, Endpoint, Family, Proto};
use super::lookup::{Found, LOOPBACK_IFINDEX, Tuple, lookup};
use super::netns::Net;
use super::sock::{Datagram, Hashed, Sock, SockRef, reap, state};
use super::socket::{Socket, bind_locked, hash_locked, unbind_locked, unhash_locked};
use crate::cpu::{CpuGuard, rcu};
use crate::{Errno, Result};
use alloc::vec::Vec;
use core::net::SocketAddr;

/// What became of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Queued on the socket with this cookie.
    To {
        /// The receiving socket's cookie.
        cookie: u64,
    },
    /// A program refused it.
    Refused,
    /// No socket took it.
    NoSocket,
}

/// The packet family and destination of a send to `addr` from `sk` (see the module docs).
fn destination(sk: &Sock, addr: &SocketAddr) -> Result<(Family, Endpoint)> {
    if Family::of(addr) != sk.family() {
        return Err(Errno::EAFNOSUPPORT);
    }
    let mut dst = Endpoint::of(addr);
    let v4 = dst.addr.as_v4().is_some();
    if sk.family() == Family::Inet6 && v4 && sk.v6only() {
        return Err(Errno::ENETUNREACH);
    }
    let family = if v4 { Family::Inet } else { Family::Inet6 };
    // A wildcard destination means this host: the loopback.
    if dst.addr == Addr::ANY4 {
        dst.addr = Addr::v4([127, 0, 0, 1]);
    } else if dst.addr == Addr::ANY6 {
        let mut lo = [0u8; 16];
        lo[15] = 1;
        dst.addr = Addr(lo);
    }
    Ok((family, dst))
}

/// The wildcard of `family`.
fn any(family: Family) -> Addr {
    match family {
        Family::Inet => Addr::ANY4,
        Family::Inet6 => Addr::ANY6,
    }
}

/// Binds an unbound socket to an ephemeral port on the wildcard (the autobind of connect and
/// sendto) and, for UDP, hashes it; returns whether it did. Netns lock held.
fn autobind(net: &Net, ctl: &mut super::netns::NetCtl, sk: &Sock) -> Result<bool> {
    if sk.local().is_some() {
        return Ok(false);
    }
    let ep = Endpoint {
        addr: any(sk.family()),
        port: 0,
    };
    bind_locked(net, ctl, sk, ep)?;
    if sk.proto() == Proto::Udp {
        if let Err(e) = hash_locked(net, sk, Hashed::Udp) {
            unbind_locked(ctl, sk);
            return Err(e);
        }
    }
    Ok(true)
}

/// The source a packet from `sk` to `dst` carries: the bound address, or the destination's.
fn source(sk: &Sock, dst: &Endpoint) -> Result<Endpoint> {
    let local = sk.local().ok_or(Errno::EINVAL)?;
    let addr = if local.addr.is_any(sk.family()) {
        dst.addr
    } else {
        local.addr
    };
    Ok(Endpoint {
        addr,
        port: local.port,
    })
}

/// Runs the lookup of `t` in `net` and keeps what it found with a reference.
fn lookup_ref(net: &Net, t: &Tuple) -> core::result::Result<SockRef, Delivery> {
    let mut guard = CpuGuard::enter();
    match lookup(net, &mut guard, t) {
        Found::Sock(sk, _) => SockRef::try_get(sk).ok_or(Delivery::NoSocket),
        Found::Refused => Err(Delivery::Refused),
        Found::NoSocket => Err(Delivery::NoSocket),
    }
}

impl Socket {
    /// `connect(2)` (see the module docs): for TCP, the cookie of the listener that queued the
    /// connection; for UDP, `None`.
    pub fn connect(&self, addr: SocketAddr) -> Result<Option<u64>> {
        let sk = self.sock();
        let (family, dst) = destination(sk, &addr)?;
        match sk.proto() {
            Proto::Tcp => self.tcp_connect(family, dst).map(Some),
            Proto::Udp => self.udp_connect(dst).map(|()| None),
        }
    }

    fn tcp_connect(&self, family: Family, dst: Endpoint) -> Result<u64> {
        let sk = self.sock_ref();
        let net = sk.net().clone();
        let (src, autobound) = {
            let mut ctl = net.ctl.lock();
            if sk.state() != state::CLOSE || sk.inner.lock().closed {
                return Err(Errno::EISCONN);
            }
            let autobound = autobind(&net, &mut ctl, sk)?;
            let src = source(sk, &dst)?;
            // Read under the netns lock, which every writer of the table holds.
            let taken = net
                .established
                .snapshot(dst.port)
                .iter()
                .any(|e| e.local == dst && e.remote == Some(src));
            if taken {
                if autobound {
                    unbind_locked(&mut ctl, sk);
                }
                return Err(Errno::EADDRNOTAVAIL);
            }
            (src, autobound)
        };
        let t = Tuple {
            family,
            proto: Proto::Tcp,
            remote: src,
            local: dst,
            ifindex: LOOPBACK_IFINDEX,
        };
        let refused = |autobound: bool| {
            if autobound {
                unbind_locked(&mut net.ctl.lock(), sk);
            }
            Err(Errno::ECONNREFUSED)
        };
        let listener = match lookup_ref(&net, &t) {
            Ok(l) if l.proto() == Proto::Tcp => l,
            _ => return refused(autobound),
        };
        if accept_syn(&listener, dst, src).is_err() {
            return refused(autobound);
        }
        let ctl = net.ctl.lock();
        sk.set_connected(src, dst);
        // The client stays in the bind table under its port; it is hashed as established.
        let r = hash_locked(&net, sk, Hashed::Established);
        drop(ctl);
        r?;
        Ok(listener.cookie())
    }

    fn udp_connect(&self, dst: Endpoint) -> Result {
        let sk = self.sock();
        let net = sk.net().clone();
        let mut ctl = net.ctl.lock();
        autobind(&net, &mut ctl, sk)?;
        let src = source(sk, &dst)?;
        // Rehash with the peer (and the source address a wildcard-bound socket takes on).
        let group = sk.inner.lock().group.clone();
        let port = src.port;
        net.udp.remove(rcu(), port, sk as *const Sock);
        sk.set_connected(src, dst);
        if let Some(g) = &group {
            g.set_has_conns();
        }
        let entry = super::table::Entry {
            sk: sk as *const Sock,
            family: sk.family(),
            v6only: sk.v6only(),
            local: src,
            remote: Some(dst),
        };
        if let Err(e) = net.udp.insert(rcu(), entry) {
            // Out of memory: the socket is closed for lookups rather than left half-changed.
            unhash_locked(&net, sk);
            return Err(e);
        }
        Ok(())
    }

    /// `accept(2)` without blocking: the next queued connection (`EAGAIN` when none,
    /// `EINVAL` on a socket that is not listening).
    pub fn accept(&self) -> Result<Socket> {
        let sk = self.sock();
        if sk.proto() != Proto::Tcp || sk.state() != state::LISTEN {
            return Err(Errno::EINVAL);
        }
        let child = sk.inner.lock().accept_q.pop_front().ok_or(Errno::EAGAIN)?;
        Ok(Socket::from_ref(child))
    }

    /// `sendto(2)` of a UDP datagram to `addr`, or to the peer when `None`
    /// (`EDESTADDRREQ` if unconnected); see the module docs.
    pub fn send_to(&self, data: &[u8], addr: Option<SocketAddr>) -> Result<Delivery> {
        let sk = self.sock();
        if sk.proto() != Proto::Udp {
            return Err(Errno::EOPNOTSUPP);
        }
        let (family, dst) = match addr {
            Some(a) => destination(sk, &a)?,
            None => {
                let peer = sk.remote().ok_or(Errno::EDESTADDRREQ)?;
                let fam = if peer.addr.as_v4().is_some() {
                    Family::Inet
                } else {
                    Family::Inet6
                };
                (fam, peer)
            }
        };
        let mut payload = Vec::new();
        payload
            .try_reserve_exact(data.len())
            .map_err(|_| Errno::ENOMEM)?;
        payload.extend_from_slice(data);
        let net = sk.net().clone();
        let src = {
            let mut ctl = net.ctl.lock();
            autobind(&net, &mut ctl, sk)?;
            source(sk, &dst)?
        };
        let t = Tuple {
            family,
            proto: Proto::Udp,
            remote: src,
            local: dst,
            ifindex: LOOPBACK_IFINDEX,
        };
        let to_peer = sk.remote() == Some(dst);
        let res = match lookup_ref(&net, &t) {
            Ok(rx) if rx.proto() == Proto::Udp => {
                let mut inner = rx.inner.lock();
                if !inner.closed {
                    inner.rx.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
                    inner.rx.push_back(Datagram {
                        data: payload,
                        from: src,
                    });
                }
                Delivery::To {
                    cookie: rx.cookie(),
                }
            }
            Ok(_) => Delivery::NoSocket,
            Err(d) => d,
        };
        if !matches!(res, Delivery::To { .. }) && to_peer {
            sk.inner.lock().err = Some(Errno::ECONNREFUSED);
        }
        reap();
        Ok(res)
    }

    /// `recvfrom(2)` without blocking: a pending error first (`ECONNREFUSED` after a refused
    /// datagram to the peer), then the next datagram; `EAGAIN` when there is none.
    pub fn recv_from(&self) -> Result<Datagram> {
        let mut inner = self.sock().inner.lock();
        if let Some(e) = inner.err.take() {
            return Err(e);
        }
        inner.rx.pop_front().ok_or(Errno::EAGAIN)
    }
}

/// A SYN from `src` to `dst` reached `listener`: an established child joins its accept queue
/// (`tcp_check_req` → `inet_csk_complete_hashdance` → `inet_csk_reqsk_queue_add`, in one
/// step). `ECONNREFUSED` when the listener stopped listening meanwhile.
fn accept_syn(listener: &SockRef, dst: Endpoint, src: Endpoint) -> Result<()> {
    let net = listener.net().clone();
    let _ctl = net.ctl.lock();
    if listener.state() != state::LISTEN || listener.inner.lock().closed {
        return Err(Errno::ECONNREFUSED);
    }
    let child = Sock::alloc(net.clone(), listener.family(), Proto::Tcp);
    child.set_connected(dst, src);
    hash_locked(&net, &child, Hashed::Established)?;
    net.user_get();
    listener.inner.lock().accept_q.push_back(child);
    Ok(())
}
