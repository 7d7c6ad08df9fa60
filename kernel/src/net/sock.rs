//! The socket object (`struct sock`, `include/net/sock.h`) and the references to it.
//!
//! A [`Sock`] starts with [`BpfSockView`], the bytes of `struct bpf_sock` (uapi) kept current
//! by the control path: a program that holds a socket pointer (from a socket map lookup or
//! `ctx->sk`) reads the socket's fields straight from it, so those loads need no rewrite — the
//! kernel gets the same bytes by rewriting them into loads of `sk_family`, `skc_num` and the
//! like (`bpf_sock_convert_ctx_access`). The view's words are `core` atomics: programs read
//! them while the control path may change them (a listen, a connect, a close).
//!
//! Lifetime ([`super::rcu_obj`]): every socket is freed a grace period after its last
//! reference went. Whether a *lookup* takes a reference is the kernel's `SOCK_RCU_FREE`
//! distinction ([`Sock::is_refcounted`]): TCP listeners and hashed UDP sockets are used under
//! RCU alone; established TCP sockets are reference-counted, so a socket-map lookup takes a
//! reference for them and `bpf_sk_release` puts it.

use super::addr::{Endpoint, Family, Proto};
use super::netns::Net;
use super::rcu_obj::{DeadList, RcuHead, RcuObj, put};
use super::reuseport::ReuseGroup;
use crate::sync::atomic::{AtomicBool, AtomicPtr, Ordering as FOrdering};
use crate::sync::{Arc, SpinLock};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// TCP states as programs see them (`BPF_TCP_*`, the kernel's `TCP_*`).
pub mod state {
    #![allow(missing_docs)]
    pub const ESTABLISHED: u32 = 1;
    pub const SYN_SENT: u32 = 2;
    pub const CLOSE: u32 = 7;
    pub const LISTEN: u32 = 10;
}

/// `struct bpf_sock` (uapi), as stored at the start of every [`Sock`]: what a program reads
/// through a socket pointer. Addresses and `dst_port` are in network byte order, `src_port`
/// in host order, `rx_queue_mapping` is -1 (no queue recorded).
#[repr(C)]
#[derive(Debug)]
pub struct BpfSockView {
    /// `bound_dev_if` (kbpf's sockets are never bound to a device: 0).
    pub bound_dev_if: AtomicU32,
    /// `family`.
    pub family: AtomicU32,
    /// `type`: `SOCK_STREAM` or `SOCK_DGRAM`.
    pub sock_type: AtomicU32,
    /// `protocol`.
    pub protocol: AtomicU32,
    /// `mark`.
    pub mark: AtomicU32,
    /// `priority`.
    pub priority: AtomicU32,
    /// `src_ip4`: the bound IPv4 address.
    pub src_ip4: AtomicU32,
    /// `src_ip6[4]`.
    pub src_ip6: [AtomicU32; 4],
    /// `src_port`, host order.
    pub src_port: AtomicU32,
    /// `dst_port` (`__be16`) and the two zero bytes after it.
    pub dst_port: AtomicU32,
    /// `dst_ip4`.
    pub dst_ip4: AtomicU32,
    /// `dst_ip6[4]`.
    pub dst_ip6: [AtomicU32; 4],
    /// `state`: a [`state`] value.
    pub state: AtomicU32,
    /// `rx_queue_mapping` (-1 as a u32).
    pub rx_queue_mapping: AtomicU32,
}

/// `sizeof(struct bpf_sock)`.
pub const BPF_SOCK_SIZE: usize = 80;
static_assertions::const_assert_eq!(core::mem::size_of::<BpfSockView>(), BPF_SOCK_SIZE);
static_assertions::const_assert_eq!(core::mem::offset_of!(BpfSockView, src_ip4), 24);
static_assertions::const_assert_eq!(core::mem::offset_of!(BpfSockView, src_port), 44);
static_assertions::const_assert_eq!(core::mem::offset_of!(BpfSockView, dst_port), 48);
static_assertions::const_assert_eq!(core::mem::offset_of!(BpfSockView, dst_ip4), 52);
static_assertions::const_assert_eq!(core::mem::offset_of!(BpfSockView, state), 72);
static_assertions::const_assert_eq!(core::mem::offset_of!(BpfSockView, rx_queue_mapping), 76);

/// `bpf_sock_is_valid_access` for a read of `size` bytes at `off` (writes are refused before
/// it is asked): 4-byte reads of every field; narrow reads at the start of `state`, `family`,
/// `type`, `protocol`, `src_port`, `rx_queue_mapping` and anywhere in the addresses; 1-, 2- and
/// 4-byte reads of `dst_port`; nothing in the padding after it.
pub fn bpf_sock_is_valid_access(off: i64, size: usize) -> bool {
    let size = size as i64;
    if !(0..BPF_SOCK_SIZE as i64).contains(&off) || size == 0 || off % size != 0 {
        return false;
    }
    let narrow_ok = |field: i64| size <= field && size & (size - 1) == 0;
    match off {
        // state, family, type, protocol, src_port, rx_queue_mapping: at their start only.
        72 | 4 | 8 | 12 | 44 | 76 => narrow_ok(4),
        // src_ip4, src_ip6[4], dst_ip4, dst_ip6[4].
        24..=43 | 52..=71 => narrow_ok(4),
        // dst_port: a 4-byte read, or a narrow one of the `__be16`.
        48 | 49 => narrow_ok(if size == 4 { 4 } else { 2 }),
        50 | 51 => false,
        _ => size == 4,
    }
}

/// `bpf_sock_common_is_valid_access`: what [`bpf_sock_is_valid_access`] allows, less the fields
/// only a full socket has (`type`, `protocol`, `mark`, `priority`: offsets 8 to 23).
pub fn bpf_sock_common_is_valid_access(off: i64, size: usize) -> bool {
    !(8..24).contains(&off) && bpf_sock_is_valid_access(off, size)
}

fn zero4() -> [AtomicU32; 4] {
    [0, 0, 0, 0].map(AtomicU32::new)
}

impl BpfSockView {
    fn new(family: Family, proto: Proto) -> Self {
        BpfSockView {
            bound_dev_if: AtomicU32::new(0),
            family: AtomicU32::new(family as u32),
            sock_type: AtomicU32::new(proto.sock_type()),
            protocol: AtomicU32::new(proto as u32),
            mark: AtomicU32::new(0),
            priority: AtomicU32::new(0),
            src_ip4: AtomicU32::new(0),
            src_ip6: zero4(),
            src_port: AtomicU32::new(0),
            dst_port: AtomicU32::new(0),
            dst_ip4: AtomicU32::new(0),
            dst_ip6: zero4(),
            state: AtomicU32::new(state::CLOSE),
            rx_queue_mapping: AtomicU32::new(u32::MAX),
        }
    }

    /// Writes the local end (`skc_rcv_saddr`, `skc_v6_rcv_saddr`, `skc_num`). An IPv6 socket
    /// bound to a non-v4-mapped address shows `src_ip4` as 127.0.0.6, the kernel's
    /// `LOOPBACK4_IPV6`, which no IPv4 lookup matches.
    pub(crate) fn set_local(&self, family: Family, ep: &Endpoint) {
        let v4 = match (family, ep.addr.as_v4()) {
            (_, Some(a)) => u32::from_ne_bytes(a),
            (Family::Inet6, None) if !ep.addr.is_any(Family::Inet6) => {
                u32::from_ne_bytes([127, 0, 0, 6])
            }
            _ => 0,
        };
        self.src_ip4.store(v4, Ordering::Relaxed);
        let w = match family {
            Family::Inet6 => ep.addr.words(),
            Family::Inet => [0; 4],
        };
        for (d, v) in self.src_ip6.iter().zip(w) {
            d.store(v, Ordering::Relaxed);
        }
        self.src_port.store(ep.port as u32, Ordering::Relaxed);
    }

    /// Writes the peer (`skc_daddr`, `skc_v6_daddr`, `skc_dport`).
    pub(crate) fn set_remote(&self, family: Family, ep: &Endpoint) {
        self.dst_ip4.store(ep.addr.word4(), Ordering::Relaxed);
        let w = match family {
            Family::Inet6 => ep.addr.words(),
            Family::Inet => [0; 4],
        };
        for (d, v) in self.dst_ip6.iter().zip(w) {
            d.store(v, Ordering::Relaxed);
        }
        let be = u16::from_ne_bytes(ep.port.to_be_bytes());
        self.dst_port.store(be as u32, Ordering::Relaxed);
    }
}

/// A datagram waiting in a UDP socket's receive queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// The payload.
    pub data: Vec<u8>,
    /// Who sent it.
    pub from: Endpoint,
}

/// Where a socket is hashed for lookups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hashed {
    /// In no lookup table.
    None,
    /// A TCP listener (`lhash2`).
    Listen,
    /// An established TCP socket (`ehash`).
    Established,
    /// A bound UDP socket, connected or not (`udp_table`).
    Udp,
}

/// A socket map slot holding this socket (the kernel's `sk_psock_link`).
#[derive(Clone, Debug)]
pub(crate) struct MapLink {
    /// The map (`struct bpf_map *`): its `SockMap` removes every link before it is freed.
    pub map: *const super::sockmap::SockMap,
    /// The key of the slot.
    pub key: Vec<u8>,
}

// SAFETY: the map pointer is only dereferenced under the socket-map lock, while the map lives
// (a map unlinks itself from every socket before it is freed).
unsafe impl Send for MapLink {}
// SAFETY: as above.
unsafe impl Sync for MapLink {}

/// What the control path keeps of a socket, under its lock (`lock_sock`).
pub(crate) struct SockInner {
    /// The bound local end.
    pub local: Option<Endpoint>,
    /// The connected peer.
    pub remote: Option<Endpoint>,
    /// Which lookup table holds it.
    pub hashed: Hashed,
    /// Connections waiting for `accept` (a listener's).
    pub accept_q: VecDeque<SockRef>,
    /// The listen backlog.
    pub backlog: u32,
    /// Datagrams waiting for `recv` (a UDP socket's).
    pub rx: VecDeque<Datagram>,
    /// A pending error, reported by the next receive (`sk_err`).
    pub err: Option<crate::Errno>,
    /// Socket maps holding it.
    pub maps: Vec<MapLink>,
    /// Its reuseport group (`sk_reuseport_cb`), owned here; [`Sock::reuse`] is the RCU view.
    pub group: Option<Arc<ReuseGroup>>,
    /// Closed by its owner.
    pub closed: bool,
}

/// A socket.
#[repr(C)]
pub struct Sock {
    view: BpfSockView,
    head: RcuHead<Sock>,
    cookie: u64,
    family: Family,
    proto: Proto,
    /// `SOCK_RCU_FREE`: lookups use it without a reference.
    rcu_free: AtomicBool,
    /// In a lookup table (`!sk_unhashed`): the fast path's view of `inner.hashed`.
    hashed: AtomicBool,
    /// `SO_REUSEPORT`.
    reuseport: AtomicBool,
    /// `IPV6_V6ONLY`.
    v6only: AtomicBool,
    /// `sk_reuseport_cb`: the group, published for readers (null when in none).
    reuse: AtomicPtr<ReuseGroup>,
    net: Arc<Net>,
    pub(crate) inner: SpinLock<SockInner>,
}

// SAFETY: `head()` returns the same head; sockets are only created by `Sock::alloc` (a `Box`)
// and freed by the dead list.
unsafe impl RcuObj for Sock {
    fn head(&self) -> &RcuHead<Sock> {
        &self.head
    }
}

static NEXT_COOKIE: AtomicU64 = AtomicU64::new(1);
static LIVE: AtomicU64 = AtomicU64::new(0);
static DEAD: spin::Once<DeadList<Sock>> = spin::Once::new();

/// Sockets freed after a grace period once their last reference went.
pub(crate) fn dead_list() -> &'static DeadList<Sock> {
    DEAD.call_once(DeadList::new)
}

/// Control path: queues every socket whose last reference went for freeing after a grace
/// period (what the kernel's RCU callbacks do for `sk_free`).
pub fn reap() {
    dead_list().reap(crate::cpu::rcu());
}

/// How many sockets exist (allocated, not yet freed): for leak checks.
pub fn live_socks() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

impl Sock {
    /// A new, unbound socket with one reference (the caller's).
    pub(crate) fn alloc(net: Arc<Net>, family: Family, proto: Proto) -> SockRef {
        let sk = Box::new(Sock {
            view: BpfSockView::new(family, proto),
            head: RcuHead::new(),
            cookie: NEXT_COOKIE.fetch_add(1, Ordering::Relaxed),
            family,
            proto,
            rcu_free: AtomicBool::new(false),
            hashed: AtomicBool::new(false),
            reuseport: AtomicBool::new(false),
            v6only: AtomicBool::new(false),
            reuse: AtomicPtr::new(core::ptr::null_mut()),
            net,
            inner: SpinLock::new(SockInner {
                local: None,
                remote: None,
                hashed: Hashed::None,
                accept_q: VecDeque::new(),
                backlog: 0,
                rx: VecDeque::new(),
                err: None,
                maps: Vec::new(),
                group: None,
                closed: false,
            }),
        });
        LIVE.fetch_add(1, Ordering::Relaxed);
        SockRef(NonNull::from(Box::leak(sk)))
    }

    /// The socket `BPF_PROG_TEST_RUN` hangs off a socket buffer (`bpf_prog_test_run_skb`:
    /// `sk_alloc(net, AF_UNSPEC, .., &bpf_dummy_proto)` and `sock_init_data(NULL, sk)`, then
    /// the family and addresses of the packet's IP header). Programs read `family` as given
    /// (`AF_INET`, `AF_INET6`, or 0 for another protocol), `type` and `protocol` 0, state
    /// `TCP_CLOSE`, the IP header's source as `src_ip4`/`src_ip6` (`skc_rcv_saddr`) and its
    /// destination as `dst_ip4`/`dst_ip6` (`skc_daddr`), ports 0. It is never bound, hashed
    /// or put in a map, so nothing keys by [`Sock::family`] and [`Sock::proto`], which are
    /// placeholders for it.
    pub(crate) fn alloc_test_run(
        net: Arc<Net>,
        family: u16,
        saddr: &[u8],
        daddr: &[u8],
    ) -> SockRef {
        let fam = if family == super::addr::AF_INET6 {
            Family::Inet6
        } else {
            Family::Inet
        };
        let sk = Sock::alloc(net, fam, Proto::Tcp);
        let v = sk.view();
        v.family.store(family as u32, Ordering::Relaxed);
        v.sock_type.store(0, Ordering::Relaxed);
        v.protocol.store(0, Ordering::Relaxed);
        let word = |b: &[u8], i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        match (saddr.len(), daddr.len()) {
            (4, 4) => {
                v.src_ip4.store(word(saddr, 0), Ordering::Relaxed);
                v.dst_ip4.store(word(daddr, 0), Ordering::Relaxed);
            }
            (16, 16) => {
                for i in 0..4 {
                    v.src_ip6[i].store(word(saddr, 4 * i), Ordering::Relaxed);
                    v.dst_ip6[i].store(word(daddr, 4 * i), Ordering::Relaxed);
                }
            }
            _ => {}
        }
        sk
    }

    /// The socket cookie (`sock_gen_cookie`): unique, never 0.
    pub fn cookie(&self) -> u64 {
        self.cookie
    }

    /// The address family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The protocol.
    pub fn proto(&self) -> Proto {
        self.proto
    }

    /// The network namespace it lives in.
    pub fn net(&self) -> &Arc<Net> {
        &self.net
    }

    /// What programs read of it.
    pub fn view(&self) -> &BpfSockView {
        &self.view
    }

    /// Its state ([`state`]).
    #[inline]
    pub fn state(&self) -> u32 {
        self.view.state.load(Ordering::Acquire)
    }

    pub(crate) fn set_state(&self, s: u32) {
        self.view.state.store(s, Ordering::Release);
    }

    /// Whether lookups must take a reference to keep it (`sk_is_refcounted`: not
    /// `SOCK_RCU_FREE`).
    #[inline]
    pub fn is_refcounted(&self) -> bool {
        !self.rcu_free.load(FOrdering::Acquire)
    }

    pub(crate) fn set_rcu_free(&self) {
        self.rcu_free.store(true, FOrdering::Release);
    }

    /// Whether it is in a lookup table (`!sk_unhashed`): a listener, an established TCP
    /// socket, a bound UDP socket.
    #[inline]
    pub fn is_hashed(&self) -> bool {
        self.hashed.load(FOrdering::Acquire)
    }

    /// Control path (netns lock held): the socket went into a table or out of it.
    pub(crate) fn set_hashed(&self, on: bool) {
        self.hashed.store(on, FOrdering::Release);
    }

    /// `SO_REUSEPORT` is set.
    #[inline]
    pub fn reuseport(&self) -> bool {
        self.reuseport.load(FOrdering::Relaxed)
    }

    pub(crate) fn set_reuseport_opt(&self, on: bool) {
        self.reuseport.store(on, FOrdering::Relaxed);
    }

    /// `IPV6_V6ONLY` is set.
    #[inline]
    pub fn v6only(&self) -> bool {
        self.v6only.load(FOrdering::Relaxed)
    }

    pub(crate) fn set_v6only_opt(&self, on: bool) {
        self.v6only.store(on, FOrdering::Relaxed);
    }

    /// Fast path: its reuseport group, valid inside the caller's read-side section.
    #[inline]
    pub(crate) fn reuse_group(&self) -> Option<&ReuseGroup> {
        // Acquire: pairs with the release store that published the group.
        let p = self.reuse.load(FOrdering::Acquire);
        // SAFETY: a group is freed only after every member unpublished it here and a grace
        // period passed; the caller is inside a read-side section.
        unsafe { p.as_ref() }
    }

    /// Control path (socket lock held): publishes `group` (or none) as the socket's group.
    pub(crate) fn publish_group(&self, group: Option<&Arc<ReuseGroup>>) {
        let p = group.map_or(core::ptr::null_mut(), |g| Arc::as_ptr(g) as *mut ReuseGroup);
        // INVARIANT: `reuse` is null or a group the socket's inner `group` keeps alive; when
        // the socket leaves the group, the `Arc` it held is dropped only after a grace period.
        self.reuse.store(p, FOrdering::Release);
    }

    /// Control path: the socket is connected from `local` to `remote` (both ends set, for
    /// the control path and for programs, and the state `ESTABLISHED`).
    pub(crate) fn set_connected(&self, local: Endpoint, remote: Endpoint) {
        {
            let mut inner = self.inner.lock();
            inner.local = Some(local);
            inner.remote = Some(remote);
        }
        self.view.set_local(self.family, &local);
        self.view.set_remote(self.family, &remote);
        self.set_state(state::ESTABLISHED);
    }

    /// The bound local end, if any.
    pub fn local(&self) -> Option<Endpoint> {
        self.inner.lock().local
    }

    /// The connected peer, if any.
    pub fn remote(&self) -> Option<Endpoint> {
        self.inner.lock().remote
    }

    /// The current reference count (racy: for tests and diagnostics).
    pub fn refcount(&self) -> u32 {
        self.head.count()
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl core::fmt::Debug for Sock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sock")
            .field("cookie", &self.cookie)
            .field("family", &self.family)
            .field("proto", &self.proto)
            .field("state", &self.state())
            .finish()
    }
}

/// Gives up what a holder of `sk` owns (`sock_pfree`, `bpf_sk_release`): the reference a
/// lookup or `bpf_sk_assign` took for a reference-counted socket; nothing for an RCU-freed one,
/// which they use without one. Null is a no-op.
///
/// # Safety
/// `sk` is null or a socket the caller holds as a lookup leaves it: owning one reference if it
/// is reference-counted, inside the read-side section it was found in otherwise.
#[inline]
pub unsafe fn sock_pfree(sk: *const Sock) {
    // SAFETY: the caller's contract: the socket is alive.
    if let Some(s) = unsafe { sk.as_ref() } {
        if s.is_refcounted() {
            // SAFETY: the caller owns this reference and gives it up.
            drop(unsafe { SockRef::from_raw(sk) });
        }
    }
}

/// An owned reference to a socket (`sock_hold` … `sock_put`).
pub struct SockRef(NonNull<Sock>);

// SAFETY: a reference keeps the socket alive; `Sock` is `Sync` (atomics and locks), so the
// reference may move and be shared between threads.
unsafe impl Send for SockRef {}
// SAFETY: as above.
unsafe impl Sync for SockRef {}

impl SockRef {
    /// Takes a reference to `sk` unless it is dying (`refcount_inc_not_zero`).
    #[inline]
    pub fn try_get(sk: &Sock) -> Option<SockRef> {
        sk.get_unless_zero().then(|| SockRef(NonNull::from(sk)))
    }

    /// Takes ownership of a reference counted in `sk` (from [`SockRef::into_raw`] or a lookup's
    /// `get_unless_zero`).
    ///
    /// # Safety
    /// The caller owns one reference to `sk` and gives it up.
    #[inline]
    pub unsafe fn from_raw(sk: *const Sock) -> SockRef {
        // SAFETY: a reference is never null (caller contract).
        SockRef(unsafe { NonNull::new_unchecked(sk as *mut Sock) })
    }

    /// Gives up ownership without putting the reference.
    #[inline]
    pub fn into_raw(self) -> *const Sock {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }

    /// The raw pointer (still owned by `self`).
    #[inline]
    pub fn as_ptr(&self) -> *const Sock {
        self.0.as_ptr()
    }
}

impl core::ops::Deref for SockRef {
    type Target = Sock;
    #[inline]
    fn deref(&self) -> &Sock {
        // SAFETY: the reference keeps the socket alive.
        unsafe { self.0.as_ref() }
    }
}

impl Clone for SockRef {
    fn clone(&self) -> Self {
        self.get();
        SockRef(self.0)
    }
}

impl SockRef {
    /// Gives up the reference to a socket that was never published — in no table, no map,
    /// behind no handle, like the test run's dummy socket ([`Sock::alloc_test_run`]): the
    /// last reference frees it at once, without waiting for a grace period (`sk_free`).
    pub(crate) fn free_unpublished(self) {
        let p = self.as_ptr();
        core::mem::forget(self);
        // SAFETY: we owned one reference and give it up; the caller's contract says nothing
        // but counted references reach the socket.
        unsafe { super::rcu_obj::put_unpublished(p) };
    }
}

impl Drop for SockRef {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own one reference and give it up; a socket is unhashed before its owner's
        // reference goes (`socket::close`), so a zero count means unreachable.
        unsafe { put(self.0.as_ptr(), dead_list()) };
    }
}

impl core::fmt::Debug for SockRef {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        (**self).fmt(f)
    }
}
