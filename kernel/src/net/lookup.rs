//! The transport lookup path of a netns: which socket receives a packet
//! (`__inet_lookup`, `__inet_lookup_listener`, `inet_lhash2_lookup` in
//! `net/ipv4/inet_hashtables.c` and their IPv6 twins; `__udp4_lib_lookup`,
//! `udp4_lib_lookup2` in `net/ipv4/udp.c`; `inet_lookup_run_sk_lookup` and
//! `inet_lookup_reuseport`).
//!
//! * TCP: an established socket of the exact 4-tuple first; then the netns's sk_lookup
//!   programs; then the listeners — bound to the destination address first, then to the
//!   wildcard — the best score winning (an IPv4 socket beats a dual-stack IPv6 one for an IPv4
//!   packet), and a listener in a reuseport group handing the choice to the group.
//! * UDP: the sockets bound to the destination address first (a connected one, whose peer is
//!   the sender, scores highest and is taken at once); then the sk_lookup programs; then what
//!   the first pass found, else the sockets bound to the wildcard. Reuseport groups choose as
//!   for TCP, falling back to scoring when a member is connected.
//! * sk_lookup (`bpf_sk_lookup_run_v4`/`_v6`): a drop refuses the packet (the kernel's
//!   `-ECONNREFUSED`); a selected socket gets it — after its reuseport group chooses, unless
//!   it was assigned with `BPF_SK_LOOKUP_F_NO_REUSEPORT`; no selection lets the regular
//!   lookup run.
//!
//! The whole path runs on a held CPU inside its read-side section: no lock, no allocation. A
//! socket it returns is valid for as long as the guard is borrowed; to keep it, take a
//! reference ([`super::sock::SockRef::try_get`]).

use super::addr::{AddrMatch, Endpoint, Family, Proto, local_match};
use super::netns::Net;
use super::reuseport::ehashfn;
use super::sk_lookup::SK_PASS;
use super::sock::{Sock, state};
use super::table::Entry;
use crate::cpu::CpuGuard;
use crate::{Errno, Result};
use core::net::SocketAddr;

/// The loopback device's ifindex: where kbpf's locally sent packets come in.
pub const LOOPBACK_IFINDEX: u32 = 1;

/// What a packet is looked up by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    /// The packet's family.
    pub family: Family,
    /// Its transport protocol.
    pub proto: Proto,
    /// Source address and port (the remote end).
    pub remote: Endpoint,
    /// Destination address and port (the local end).
    pub local: Endpoint,
    /// The device it came in on.
    pub ifindex: u32,
}

impl Tuple {
    /// The lookup of a `proto` packet from `remote` to `local`, come in on the loopback
    /// (`EAFNOSUPPORT` when the two are of different families).
    pub fn new(proto: Proto, remote: SocketAddr, local: SocketAddr) -> Result<Tuple> {
        let family = Family::of(&local);
        if Family::of(&remote) != family {
            return Err(Errno::EAFNOSUPPORT);
        }
        Ok(Tuple {
            family,
            proto,
            remote: Endpoint::of(&remote),
            local: Endpoint::of(&local),
            ifindex: LOOPBACK_IFINDEX,
        })
    }
}

/// How a lookup found its socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// An established TCP socket or a connected UDP one of the exact 4-tuple.
    Established,
    /// An sk_lookup program selected it (possibly followed by its reuseport group's choice).
    SkLookup,
    /// The regular listener or unconnected-socket lookup.
    Table,
}

/// What a lookup found.
#[derive(Clone, Copy, Debug)]
pub enum Found<'g> {
    /// This socket receives the packet.
    Sock(&'g Sock, Via),
    /// A program (sk_lookup or reuseport) refused it: the sender sees `ECONNREFUSED`.
    Refused,
    /// No socket: for TCP a reset, for UDP a port unreachable (`ECONNREFUSED` as well).
    NoSocket,
}

impl Found<'_> {
    /// The socket, if one was found.
    pub fn sock(&self) -> Option<&Sock> {
        match self {
            Found::Sock(s, _) => Some(s),
            _ => None,
        }
    }
}

/// A result inside the path, before it is tied to the guard's lifetime: two words, so every
/// step returns it in registers (an enum came back through memory, written narrow and read
/// back wide: a store-forwarding stall that cost a third of a lookup).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Raw {
    kind: u32,
    sk: *const Sock,
}

impl Raw {
    /// No answer from this step: the next one decides.
    const NONE: Raw = Raw::of(0);
    /// Refused by a program.
    const REFUSED: Raw = Raw::of(1);
    /// No socket.
    const NO_SOCKET: Raw = Raw::of(2);

    const fn of(kind: u32) -> Raw {
        Raw {
            kind,
            sk: core::ptr::null(),
        }
    }

    /// Found `sk`, by `via`.
    #[inline]
    fn sock(sk: *const Sock, via: Via) -> Raw {
        let kind = match via {
            Via::Established => 3,
            Via::SkLookup => 4,
            Via::Table => 5,
        };
        Raw { kind, sk }
    }

    #[inline]
    fn is_none(self) -> bool {
        self.kind == 0
    }

    #[inline]
    fn is_sock(self) -> bool {
        self.kind >= 3
    }
}

/// Looks up the socket `t` goes to in `net` (see the module docs).
#[inline]
pub fn lookup<'g>(net: &'g Net, guard: &'g mut CpuGuard, t: &Tuple) -> Found<'g> {
    let raw = match t.proto {
        Proto::Tcp => tcp(net, guard, t),
        Proto::Udp => udp(net, guard, t),
    };
    let via = match raw.kind {
        3 => Via::Established,
        4 => Via::SkLookup,
        5 => Via::Table,
        1 => return Found::Refused,
        _ => return Found::NoSocket,
    };
    // SAFETY: the socket was found inside `guard`'s read-side section, which lasts while
    // `guard` is borrowed ('g): hashed and selected sockets are freed only a grace period
    // after they became unreachable (`rcu_obj`).
    Found::Sock(unsafe { &*raw.sk }, via)
}

/// The socket behind `p`, inside the caller's section.
#[inline]
fn sock<'a>(p: *const Sock) -> &'a Sock {
    // SAFETY: every pointer this module handles was read from a table, a group or a program's
    // selection inside the read-side section the caller's guard holds for the whole lookup.
    unsafe { &*p }
}

fn tcp(net: &Net, guard: &mut CpuGuard, t: &Tuple) -> Raw {
    // SAFETY: `guard` holds a read-side section for this whole call.
    let est = unsafe { net.established.bucket_in_section(t.local.port) };
    if let Some(e) = est
        .iter()
        .find(|e| e.local == t.local && e.remote == Some(t.remote))
    {
        return Raw::sock(e.sk, Via::Established);
    }
    let r = run_sk_lookup(net, guard, t);
    if !r.is_none() {
        return r;
    }
    // SAFETY: as above.
    let listeners = unsafe { net.listen.bucket_in_section(t.local.port) };
    for pass in [AddrMatch::Exact, AddrMatch::Wildcard] {
        let mut best = None;
        let mut hiscore = 0;
        for e in listeners {
            if e.local.port != t.local.port
                || local_match(e.family, e.v6only, e.local.addr, t.family, t.local.addr)
                    != Some(pass)
            {
                continue;
            }
            let score = 1 + (e.family == Family::Inet && t.family == Family::Inet) as u32;
            if score > hiscore {
                let r = select_reuseport(net, guard, sock(e.sk), t);
                if !r.is_none() {
                    return r;
                }
                best = Some(e.sk);
                hiscore = score;
            }
        }
        if let Some(sk) = best {
            return Raw::sock(sk, Via::Table);
        }
    }
    Raw::NO_SOCKET
}

/// `udp4_lib_lookup2`'s score of `e` for `t` in `pass`, or `None` when it does not match.
fn udp_score(e: &Entry, t: &Tuple, pass: AddrMatch) -> Option<u32> {
    if e.local.port != t.local.port
        || local_match(e.family, e.v6only, e.local.addr, t.family, t.local.addr) != Some(pass)
    {
        return None;
    }
    let mut score = match (t.family, e.family) {
        (Family::Inet, Family::Inet) => 2,
        _ => 1,
    };
    if let Some(r) = e.remote {
        if r != t.remote {
            return None;
        }
        score += 8;
    }
    Some(score)
}

/// One pass of the UDP lookup (`udp4_lib_lookup2`): [`Raw::NONE`] when nothing matched.
fn udp_lookup2(net: &Net, guard: &mut CpuGuard, t: &Tuple, pass: AddrMatch) -> Raw {
    // SAFETY: `guard` holds a read-side section for this whole call.
    let bucket = unsafe { net.udp.bucket_in_section(t.local.port) };
    let mut result = Raw::NONE;
    let mut badness = 0;
    for e in bucket {
        let Some(score) = udp_score(e, t, pass) else {
            continue;
        };
        if score <= badness {
            continue;
        }
        badness = score;
        let sk = sock(e.sk);
        if sk.state() == state::ESTABLISHED {
            result = Raw::sock(e.sk, Via::Table);
            continue;
        }
        let r = select_reuseport(net, guard, sk, t);
        if r.is_none() {
            result = Raw::sock(e.sk, Via::Table);
            continue;
        }
        result = r;
        // Fall back to scoring when the group has connected members.
        if !sk.reuse_group().is_some_and(|g| g.has_conns()) {
            return result;
        }
        if !r.is_sock() {
            continue;
        }
        // The chosen member's own entry gives its score.
        badness = bucket
            .iter()
            .find(|c| c.sk == r.sk)
            .and_then(|c| udp_score(c, t, pass))
            .unwrap_or(score);
    }
    result
}

fn udp(net: &Net, guard: &mut CpuGuard, t: &Tuple) -> Raw {
    let first = udp_lookup2(net, guard, t, AddrMatch::Exact);
    if first.is_sock() && sock(first.sk).state() == state::ESTABLISHED {
        return Raw::sock(first.sk, Via::Established);
    }
    let r = run_sk_lookup(net, guard, t);
    if !r.is_none() {
        return r;
    }
    if !first.is_none() {
        return first;
    }
    let wild = udp_lookup2(net, guard, t, AddrMatch::Wildcard);
    if wild.is_none() { Raw::NO_SOCKET } else { wild }
}

/// The netns's sk_lookup programs (`inet_lookup_run_sk_lookup`): [`Raw::NONE`] when none is
/// attached or they selected nothing and passed; refused; or the socket (its reuseport
/// group's choice, unless assigned with `NO_REUSEPORT`).
#[inline]
fn run_sk_lookup(net: &Net, guard: &mut CpuGuard, t: &Tuple) -> Raw {
    let Some((verdict, ctx)) = net.sk_lookup.run(guard, t) else {
        return Raw::NONE;
    };
    if verdict != SK_PASS {
        return Raw::REFUSED;
    }
    if ctx.selected_sk.is_null() {
        return Raw::NONE;
    }
    if ctx.no_reuseport == 0 {
        let r = select_reuseport(net, guard, sock(ctx.selected_sk), t);
        if r.is_sock() {
            return Raw::sock(r.sk, Via::SkLookup);
        }
        if !r.is_none() {
            return r;
        }
    }
    Raw::sock(ctx.selected_sk, Via::SkLookup)
}

/// A socket with `SO_REUSEPORT` in a group lets the group choose (`inet_lookup_reuseport` →
/// `reuseport_select_sock`): the group's program, else the flow hash. [`Raw::NONE`] when
/// there is no group or it has no member to offer.
#[inline]
fn select_reuseport(net: &Net, guard: &mut CpuGuard, sk: &Sock, t: &Tuple) -> Raw {
    if !sk.reuseport() {
        return Raw::NONE;
    }
    let Some(group) = sk.reuse_group() else {
        return Raw::NONE;
    };
    let hash = ehashfn(net.hash_secret(), &t.local, &t.remote);
    match super::reuseport_prog::run(group, guard, sk, t, hash) {
        Some(Some(p)) => return Raw::sock(p, Via::Table),
        Some(None) => return Raw::REFUSED,
        None => {}
    }
    // SAFETY: `guard` holds a read-side section for the whole lookup.
    match group.select_by_hash(&*guard, hash) {
        Some(chosen) => Raw::sock(chosen as *const Sock, Via::Table),
        None => Raw::NONE,
    }
}
