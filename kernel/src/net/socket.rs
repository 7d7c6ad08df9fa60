//! The socket control path: creating, binding, listening, options and closing (`socket(2)`,
//! `bind(2)`, `listen(2)`, `setsockopt(2)`, `close(2)` as `net/ipv4/af_inet.c`,
//! `inet_connection_sock.c`, `udp.c` and their IPv6 twins do them). Connecting and data are
//! in [`super::conn`].
//!
//! * bind (`inet_bind`, `inet6_bind`): the address must be of the socket's family
//!   (`EAFNOSUPPORT`; a v4-mapped address on a `v6only` socket is `EINVAL`); a bound socket
//!   is `EINVAL`; port 0 picks a free ephemeral port; an overlapping bound address on the same
//!   port is `EADDRINUSE` unless both sockets have `SO_REUSEPORT`. kbpf has no interfaces, so
//!   any address may be bound (as with `ip_nonlocal_bind`). A bound UDP socket is hashed for
//!   lookups and becomes RCU-freed (`udp_lib_get_port`).
//! * listen (`inet_listen`): TCP only (`EINVAL`), not connected (`EINVAL`); an unbound socket
//!   is bound to the wildcard and an ephemeral port; the listener is hashed and RCU-freed
//!   (`__inet_hash`). Listening again only changes the backlog.
//! * `SO_REUSEPORT` takes effect when the socket is hashed: it joins the group of a hashed
//!   socket bound to the same address and port with the option set and the same family and
//!   `v6only` (`inet_reuseport_add_sock`, `udp_reuseport_add_sock`), or starts its own.
//! * close: the socket is unhashed, leaves its group, its bind and every socket map, a
//!   listener's unaccepted connections are closed, and the owner's reference is put.
//!
//! Every operation validates first and changes nothing on error. They take the netns lock
//! (then the socket's), never inside a read-side section.

use super::addr::{Addr, Endpoint, Family, Proto};
use super::netns::{Bound, EPHEMERAL_HIGH, EPHEMERAL_LOW, Net, addrs_overlap, bind_key};
use super::reuseport::ReuseGroup;
use super::sock::{Hashed, Sock, SockRef, reap, state};
use super::sockmap;
use super::table::Entry;
use crate::cpu::{call_rcu, rcu};
use crate::sync::Arc;
use crate::{Errno, Result};
use alloc::boxed::Box;
use core::net::SocketAddr;

/// A socket as its owner holds it (`struct socket` with its file): dropping it closes the
/// socket.
pub struct Socket {
    sk: SockRef,
}

/// `socket(family, type, protocol)` in `net`.
pub fn socket(net: &Arc<Net>, family: Family, proto: Proto) -> Result<Socket> {
    if !net.is_alive() {
        return Err(Errno::EINVAL);
    }
    reap();
    net.user_get();
    Ok(Socket {
        sk: Sock::alloc(net.clone(), family, proto),
    })
}

impl Socket {
    /// Wraps an accepted connection's socket (its reference becomes the owner's).
    pub(crate) fn from_ref(sk: SockRef) -> Socket {
        Socket { sk }
    }

    /// The socket.
    pub fn sock(&self) -> &Sock {
        &self.sk
    }

    /// The owner's reference.
    pub fn sock_ref(&self) -> &SockRef {
        &self.sk
    }

    /// The socket cookie.
    pub fn cookie(&self) -> u64 {
        self.sk.cookie()
    }

    /// `getsockname`.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.sk.local().map(|e| e.to_socket_addr(self.sk.family()))
    }

    /// `getpeername`.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.sk.remote().map(|e| e.to_socket_addr(self.sk.family()))
    }

    /// `SO_REUSEPORT`: takes effect for the next hash (bind for UDP, listen for TCP).
    pub fn set_reuseport(&self, on: bool) -> Result {
        self.sk.set_reuseport_opt(on);
        Ok(())
    }

    /// `IPV6_V6ONLY`: IPv6 sockets only (`ENOPROTOOPT` is `EOPNOTSUPP` here), before bind
    /// (`EINVAL` after).
    pub fn set_v6only(&self, on: bool) -> Result {
        if self.sk.family() != Family::Inet6 {
            return Err(Errno::EOPNOTSUPP);
        }
        if self.sk.local().is_some() {
            return Err(Errno::EINVAL);
        }
        self.sk.set_v6only_opt(on);
        Ok(())
    }

    /// The bound end an address of the socket's family names (`EAFNOSUPPORT`, `EINVAL`).
    fn endpoint_of(&self, addr: &SocketAddr) -> Result<Endpoint> {
        let sk = &self.sk;
        if Family::of(addr) != sk.family() {
            return Err(Errno::EAFNOSUPPORT);
        }
        let ep = Endpoint::of(addr);
        if sk.family() == Family::Inet6 && ep.addr.as_v4().is_some() && sk.v6only() {
            return Err(Errno::EINVAL);
        }
        Ok(ep)
    }

    /// `bind(2)` (see the module docs).
    pub fn bind(&self, addr: SocketAddr) -> Result {
        let ep = self.endpoint_of(&addr)?;
        let net = self.sk.net().clone();
        let mut ctl = net.ctl.lock();
        if self.sk.local().is_some() || self.sk.inner.lock().closed {
            return Err(Errno::EINVAL);
        }
        bind_locked(&net, &mut ctl, &self.sk, ep)?;
        if self.sk.proto() == Proto::Udp {
            if let Err(e) = hash_locked(&net, &self.sk, Hashed::Udp) {
                unbind_locked(&mut ctl, &self.sk);
                return Err(e);
            }
        }
        Ok(())
    }

    /// `listen(2)` (see the module docs).
    pub fn listen(&self, backlog: u32) -> Result {
        let sk = &self.sk;
        if sk.proto() != Proto::Tcp {
            return Err(Errno::EINVAL);
        }
        let net = sk.net().clone();
        let mut ctl = net.ctl.lock();
        match sk.state() {
            state::LISTEN => {
                sk.inner.lock().backlog = backlog;
                return Ok(());
            }
            state::CLOSE => {}
            _ => return Err(Errno::EINVAL),
        }
        if sk.inner.lock().closed {
            return Err(Errno::EINVAL);
        }
        let autobound = sk.local().is_none();
        if autobound {
            let any = Endpoint {
                addr: match sk.family() {
                    Family::Inet => Addr::ANY4,
                    Family::Inet6 => Addr::ANY6,
                },
                port: 0,
            };
            bind_locked(&net, &mut ctl, sk, any)?;
        }
        sk.set_state(state::LISTEN);
        if let Err(e) = hash_locked(&net, sk, Hashed::Listen) {
            sk.set_state(state::CLOSE);
            if autobound {
                unbind_locked(&mut ctl, sk);
            }
            return Err(e);
        }
        sk.set_rcu_free();
        sk.inner.lock().backlog = backlog;
        Ok(())
    }

    /// `close(2)`: see the module docs. Dropping the socket does the same.
    pub fn close(self) {}
}

impl Drop for Socket {
    fn drop(&mut self) {
        close(&self.sk);
    }
}

impl core::fmt::Debug for Socket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Socket")
            .field("cookie", &self.sk.cookie())
            .field("family", &self.sk.family())
            .field("proto", &self.sk.proto())
            .field("local", &self.local_addr())
            .field("peer", &self.peer_addr())
            .field("state", &self.sk.state())
            .finish()
    }
}

/// Binds `sk` to `ep` (port 0: an ephemeral one). Netns lock held; `sk` unbound.
pub(crate) fn bind_locked(
    net: &Net,
    ctl: &mut super::netns::NetCtl,
    sk: &Sock,
    mut ep: Endpoint,
) -> Result {
    let _ = net;
    let me = (sk.family(), sk.v6only(), ep.addr);
    let conflicts = |ctl: &super::netns::NetCtl, port: u16| {
        ctl.binds.get(&bind_key(sk.proto(), port)).is_some_and(|v| {
            v.iter().any(|b| {
                let o = b.sock();
                let Some(l) = o.local() else { return false };
                let both_reuse = sk.reuseport() && o.reuseport();
                !both_reuse && addrs_overlap(me, (o.family(), o.v6only(), l.addr))
            })
        })
    };
    if ep.port == 0 {
        let span = (EPHEMERAL_HIGH - EPHEMERAL_LOW) as u32 + 1;
        let start = ctl.next_ephemeral;
        let mut found = None;
        for i in 0..span {
            let port = EPHEMERAL_LOW + ((start - EPHEMERAL_LOW) as u32 + i).rem_euclid(span) as u16;
            if !conflicts(ctl, port) {
                found = Some(port);
                break;
            }
        }
        let port = found.ok_or(Errno::EADDRINUSE)?;
        ctl.next_ephemeral = if port == EPHEMERAL_HIGH {
            EPHEMERAL_LOW
        } else {
            port + 1
        };
        ep.port = port;
    } else if conflicts(ctl, ep.port) {
        return Err(Errno::EADDRINUSE);
    }
    let list = ctl.binds.entry(bind_key(sk.proto(), ep.port)).or_default();
    list.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
    list.push(Bound(sk as *const Sock));
    sk.inner.lock().local = Some(ep);
    sk.view().set_local(sk.family(), &ep);
    Ok(())
}

/// Takes `sk` out of the bind table. Netns lock held.
pub(crate) fn unbind_locked(ctl: &mut super::netns::NetCtl, sk: &Sock) {
    let Some(ep) = sk.inner.lock().local.take() else {
        return;
    };
    let key = bind_key(sk.proto(), ep.port);
    if let Some(v) = ctl.binds.get_mut(&key) {
        v.retain(|b| !core::ptr::eq(b.0, sk));
        if v.is_empty() {
            ctl.binds.remove(&key);
        }
    }
}

/// The table an entry of kind `h` goes in.
fn table_of(net: &Net, h: Hashed) -> Option<&super::table::Table> {
    match h {
        Hashed::None => None,
        Hashed::Listen => Some(&net.listen),
        Hashed::Established => Some(&net.established),
        Hashed::Udp => Some(&net.udp),
    }
}

/// Hashes `sk` (bound) into the table of kind `h`, joining or starting its reuseport group
/// for a listener or a UDP socket with `SO_REUSEPORT`. Netns lock held.
pub(crate) fn hash_locked(net: &Net, sk: &Sock, h: Hashed) -> Result {
    let (local, remote) = {
        let i = sk.inner.lock();
        (i.local.ok_or(Errno::EINVAL)?, i.remote)
    };
    let table = table_of(net, h).ok_or(Errno::EINVAL)?;
    let group = if matches!(h, Hashed::Listen | Hashed::Udp) && sk.reuseport() && remote.is_none() {
        Some(reuseport_join(net, table, sk, &local)?)
    } else {
        None
    };
    let entry = Entry {
        sk: sk as *const Sock,
        family: sk.family(),
        v6only: sk.v6only(),
        local,
        remote,
    };
    if let Err(e) = table.insert(rcu(), entry) {
        if let Some(g) = group {
            g.remove(rcu(), sk);
        }
        return Err(e);
    }
    let mut inner = sk.inner.lock();
    inner.hashed = h;
    sk.set_hashed(h != Hashed::None);
    if let Some(g) = group {
        sk.publish_group(Some(&g));
        inner.group = Some(g);
    }
    drop(inner);
    if h == Hashed::Udp {
        sk.set_rcu_free();
    }
    Ok(())
}

/// The group `sk` joins: that of a hashed socket on the same port with `SO_REUSEPORT`, the
/// same family, `v6only` and bound address; else a new one.
fn reuseport_join(
    net: &Net,
    table: &super::table::Table,
    sk: &Sock,
    local: &Endpoint,
) -> Result<Arc<ReuseGroup>> {
    let _ = net;
    // Writers hold the netns lock: the bucket cannot change under us, so a snapshot is exact.
    for e in table.snapshot(local.port) {
        // SAFETY: hashed sockets stay allocated while the netns lock (held) keeps them hashed.
        let o = unsafe { &*e.sk };
        if o.reuseport()
            && e.remote.is_none()
            && o.family() == sk.family()
            && o.v6only() == sk.v6only()
            && e.local == *local
        {
            let g = o.inner.lock().group.clone();
            if let Some(g) = g {
                g.add(rcu(), sk)?;
                return Ok(g);
            }
        }
    }
    ReuseGroup::new(rcu(), sk, local.addr.is_any(sk.family()))
}

/// Unhashes `sk` and takes it out of its reuseport group. Netns lock held.
pub(crate) fn unhash_locked(net: &Net, sk: &Sock) {
    let (h, port, group) = {
        let mut i = sk.inner.lock();
        let h = core::mem::replace(&mut i.hashed, Hashed::None);
        sk.set_hashed(false);
        (h, i.local.map(|l| l.port), i.group.take())
    };
    if let (Some(t), Some(port)) = (table_of(net, h), port) {
        t.remove(rcu(), port, sk as *const Sock);
    }
    if let Some(g) = group {
        sk.publish_group(None);
        g.remove(rcu(), sk);
        // Readers may still reach the group through the pointer just unpublished.
        call_rcu(Box::new(move || drop(g)));
    }
}

/// Closes `sk` (see the module docs).
fn close(sk: &SockRef) {
    let net = sk.net().clone();
    let children = {
        let mut ctl = net.ctl.lock();
        if core::mem::replace(&mut sk.inner.lock().closed, true) {
            return;
        }
        unhash_locked(&net, sk);
        unbind_locked(&mut ctl, sk);
        sk.set_state(state::CLOSE);
        let mut inner = sk.inner.lock();
        inner.rx.clear();
        core::mem::take(&mut inner.accept_q)
    };
    sockmap::unlink_all(sk);
    // A listener's unaccepted connections close with it.
    for child in children {
        drop(Socket::from_ref(child));
    }
    net.user_put();
    reap();
}
