//! The run-time side of the socket helpers packet programs call (`net/core/filter.c`):
//! `bpf_sk_lookup_tcp`, `bpf_sk_lookup_udp` and `bpf_skc_lookup_tcp` from TC, cgroup skb and
//! XDP programs (`__bpf_skc_lookup`, `__bpf_sk_lookup`, `sk_lookup`), and TC's
//! `bpf_sk_assign`.
//!
//! A lookup reads a `struct bpf_sock_tuple` of 12 bytes (IPv4) or 36 (IPv6) — `saddr`, `daddr`,
//! `sport`, `dport`, network order, the packet's view: the source is the remote end — and
//! runs the netns's transport lookup ([`super::lookup`]) as a packet from the source to the
//! destination would: an established socket of the exact 4-tuple, then the listeners (TCP)
//! or the bound sockets (UDP) with their reuseport groups. It returns NULL for any other
//! tuple size, for non-zero `flags`, and for a `netns_id` that is neither negative as an
//! `s32` (the caller's own netns: `BPF_F_CURRENT_NETNS`) nor at most `S32_MAX`, and for a
//! non-negative `netns_id` no netns has ([`super::nsid`], `get_net_ns_by_id`: the same ids
//! `bpf_ct_opts.netns_id` names). XDP programs pass `netns_id` as a `u32`, so only its low
//! half counts. The caller's netns is the packet's device's (`dev_net`); an skb without one
//! uses its socket's.
//!
//! The socket comes back as a lookup leaves it: referenced if it is reference-counted (an
//! established TCP socket; `bpf_sk_release` puts it), used under RCU otherwise (listeners,
//! UDP sockets), valid for the program's read-side section. kbpf's sockets are all full
//! sockets, so the `skc` form finds what the `sk` form finds.
//!
//! **Difference**: a lookup inside a program run does not run the netns's sk_lookup programs
//! (kbpf's CPU runs one program at a time: [`crate::cpu::Fault::Recursion`]); the kernel's
//! does. Reuseport groups choose by flow hash, as the kernel's do for a lookup without a
//! packet.
//!
//! `bpf_sk_assign(skb, sk, flags)` (TC) steers the packet to `sk`, checking in the kernel's
//! order: no socket or non-zero flags (`EINVAL`), not at TC ingress (`EOPNOTSUPP`; test runs
//! run as at egress), another netns than the packet's (`ENETUNREACH`), a socket in no lookup
//! table (`EOPNOTSUPP`), a reference-counted socket that is going away (`ENOENT`). It then
//! takes a reference for a reference-counted socket and attaches it to the skb in place of the
//! one there (`skb_orphan`), to be released with the skb.

use super::addr::{Addr, Endpoint, Family, Proto};
use super::lookup::{Found, Tuple, lookup};
use super::netns::Net;
use super::rcu_obj::RcuObj;
use super::sock::Sock;
use crate::Errno;
use crate::cpu::CpuGuard;
use crate::skb::SkBuff;
use crate::xdp::XdpBuff;

/// `sizeof(tuple->ipv4)`.
pub const TUPLE_V4: u32 = 12;
/// `sizeof(tuple->ipv6)`.
pub const TUPLE_V6: u32 = 36;

/// The lookup `bytes` (a `struct bpf_sock_tuple` of [`TUPLE_V4`] or [`TUPLE_V6`] bytes)
/// describes, for a packet come in on `ifindex`.
pub fn parse_tuple(bytes: &[u8], proto: Proto, ifindex: u32) -> Option<Tuple> {
    let (family, alen) = match bytes.len() as u32 {
        TUPLE_V4 => (Family::Inet, 4),
        TUPLE_V6 => (Family::Inet6, 16),
        _ => return None,
    };
    let addr = |b: &[u8]| match family {
        Family::Inet => Addr::v4([b[0], b[1], b[2], b[3]]),
        Family::Inet6 => Addr(b.try_into().expect("16 bytes")),
    };
    let port = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
    Some(Tuple {
        family,
        proto,
        remote: Endpoint {
            addr: addr(&bytes[..alen]),
            port: port(2 * alen),
        },
        local: Endpoint {
            addr: addr(&bytes[alen..2 * alen]),
            port: port(2 * alen + 2),
        },
        ifindex,
    })
}

/// `__bpf_skc_lookup` over `caller` (see the module docs): the socket, referenced if it is
/// reference-counted, or null.
pub fn skc_lookup(
    caller: Option<&Net>,
    ifindex: u32,
    tuple: &[u8],
    proto: Proto,
    netns_id: u64,
    flags: u64,
) -> *const Sock {
    let none = core::ptr::null();
    let Some(t) = parse_tuple(tuple, proto, ifindex) else {
        return none;
    };
    let own = (netns_id as i32) < 0;
    if flags != 0 || !(own || netns_id <= i32::MAX as u64) {
        return none;
    }
    let mut guard = CpuGuard::enter();
    // The caller's own netns, or the one its id names (`get_net_ns_by_id`): none, NULL.
    let net = if own {
        caller
    } else {
        super::nsid::net_by_id(netns_id as i32)
    };
    let Some(net) = net else {
        return none;
    };
    match lookup(net, &mut guard, &t) {
        Found::Sock(sk, _) if !sk.is_refcounted() => sk,
        // A reference-counted socket is kept with a reference, unless it is going away.
        Found::Sock(sk, _) if sk.get_unless_zero() => sk,
        _ => none,
    }
}

/// The tuple argument of a lookup helper.
///
/// # Safety
/// The verifier proved `len` bytes readable at `tuple` (`ARG_PTR_TO_MEM` with its size).
unsafe fn tuple_bytes<'a>(tuple: u64, len: u64) -> &'a [u8] {
    let len = len as u32;
    if len != TUPLE_V4 && len != TUPLE_V6 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts(tuple as *const u8, len as usize) }
}

/// The netns and ifindex of a socket buffer (`bpf_sk_lookup`: the device's netns and
/// ifindex, else the socket's netns and no ifindex).
///
/// # Safety
/// `skb` is a program's context: a live `SkBuff`, its netns and socket alive for the run.
unsafe fn skb_caller<'a>(skb: u64) -> (Option<&'a Net>, u32) {
    // SAFETY: the caller's contract.
    let skb = unsafe { &*(skb as *const SkBuff) };
    // SAFETY: as above: the netns is null or alive for the run.
    match unsafe { skb.net.as_ref() } {
        Some(net) => (Some(net), skb.ifindex),
        // SAFETY: as above: the socket is null or alive for the run.
        None => (unsafe { skb.sk.as_ref() }.map(|s| &**s.net()), 0),
    }
}

/// The netns and ifindex of an XDP frame's receive queue (`dev_net(ctx->rxq->dev)`).
///
/// # Safety
/// `xdp` is a program's context: a live `XdpBuff` with a receive queue, whose netns is null
/// or alive for the run.
unsafe fn xdp_caller<'a>(xdp: u64) -> (Option<&'a Net>, u32) {
    // SAFETY: the caller's contract.
    let rxq = unsafe { &*(*(xdp as *const XdpBuff)).rxq };
    // SAFETY: as above.
    (unsafe { rxq.net.as_ref() }, rxq.ifindex)
}

/// The machine side of a lookup helper on a socket buffer (TC, cgroup skb).
///
/// # Safety
/// The verifier proved R1 the program's context, an `SkBuff`, and R2 `len` readable bytes;
/// the run keeps the skb's netns and socket alive.
unsafe fn skb_lookup(ctx: u64, tuple: u64, len: u64, proto: Proto, id: u64, flags: u64) -> u64 {
    // SAFETY: the caller's contract.
    let ((net, ifindex), tuple) = unsafe { (skb_caller(ctx), tuple_bytes(tuple, len)) };
    skc_lookup(net, ifindex, tuple, proto, id, flags) as u64
}

/// The machine side of a lookup helper on an XDP frame: `netns_id` is a `u32`.
///
/// # Safety
/// The verifier proved R1 the program's context, an `XdpBuff`, and R2 `len` readable bytes;
/// the run keeps the receive queue's netns alive.
unsafe fn xdp_lookup(ctx: u64, tuple: u64, len: u64, proto: Proto, id: u64, flags: u64) -> u64 {
    // SAFETY: the caller's contract.
    let ((net, ifindex), tuple) = unsafe { (xdp_caller(ctx), tuple_bytes(tuple, len)) };
    skc_lookup(net, ifindex, tuple, proto, id as u32 as u64, flags) as u64
}

/// `bpf_sk_lookup_tcp` / `bpf_skc_lookup_tcp` on a socket buffer.
pub(crate) unsafe extern "C" fn skb_lookup_tcp(c: u64, t: u64, l: u64, id: u64, f: u64) -> u64 {
    // SAFETY: called by a verified program with the prototype's arguments.
    unsafe { skb_lookup(c, t, l, Proto::Tcp, id, f) }
}

/// `bpf_sk_lookup_udp` on a socket buffer.
pub(crate) unsafe extern "C" fn skb_lookup_udp(c: u64, t: u64, l: u64, id: u64, f: u64) -> u64 {
    // SAFETY: called by a verified program with the prototype's arguments.
    unsafe { skb_lookup(c, t, l, Proto::Udp, id, f) }
}

/// `bpf_xdp_sk_lookup_tcp` / `bpf_xdp_skc_lookup_tcp`.
pub(crate) unsafe extern "C" fn xdp_lookup_tcp(c: u64, t: u64, l: u64, id: u64, f: u64) -> u64 {
    // SAFETY: called by a verified program with the prototype's arguments.
    unsafe { xdp_lookup(c, t, l, Proto::Tcp, id, f) }
}

/// `bpf_xdp_sk_lookup_udp`.
pub(crate) unsafe extern "C" fn xdp_lookup_udp(c: u64, t: u64, l: u64, id: u64, f: u64) -> u64 {
    // SAFETY: called by a verified program with the prototype's arguments.
    unsafe { xdp_lookup(c, t, l, Proto::Udp, id, f) }
}

/// TC's `bpf_sk_assign(skb, sk, flags)` (see the module docs).
pub fn sk_assign(skb: &mut SkBuff, sk: Option<&Sock>, flags: u64) -> Result<(), Errno> {
    let sk = sk.filter(|_| flags == 0).ok_or(Errno::EINVAL)?;
    if skb.tc_at_ingress == 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if !core::ptr::eq(skb.net, &**sk.net()) {
        return Err(Errno::ENETUNREACH);
    }
    if !sk.is_hashed() {
        return Err(Errno::EOPNOTSUPP);
    }
    if sk.is_refcounted() && !sk.get_unless_zero() {
        return Err(Errno::ENOENT);
    }
    skb.orphan();
    skb.sk = sk;
    skb.sk_assigned = 1;
    Ok(())
}

/// The machine side of [`sk_assign`].
pub(crate) unsafe extern "C" fn skb_sk_assign(
    skb: u64,
    sk: u64,
    flags: u64,
    _: u64,
    _: u64,
) -> u64 {
    // SAFETY: the verifier proved R1 the program's `SkBuff`, which the run owns, and R2 a
    // socket (alive for the run's section) or NULL.
    let (skb, sk) = unsafe { (&mut *(skb as *mut SkBuff), (sk as *const Sock).as_ref()) };
    match sk_assign(skb, sk, flags) {
        Ok(()) => 0,
        Err(e) => e.to_neg() as u64,
    }
}
