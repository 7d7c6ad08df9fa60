//! `SO_REUSEPORT` groups (`struct sock_reuseport`, `net/core/sock_reuseport.c`): sockets of
//! one protocol and family bound to the same address and port, among which a lookup picks
//! one per flow.
//!
//! A socket with `SO_REUSEPORT` joins the group of a hashed socket it matches when it starts
//! listening (TCP) or is hashed (UDP), or starts a group of its own; it leaves when unhashed.
//! Selection (`reuseport_select_sock`): the group's program, if one is attached
//! ([`super::reuseport_prog`]), else by hash: `reciprocal_scale(hash, n)` indexes the
//! members, skipping connected ones (`reuseport_select_sock_by_hash`). The flow hash is
//! `inet_ehashfn`'s shape: Bob Jenkins' `jhash_3words` of the two addresses and the ports,
//! keyed by the netns's secret.

use super::addr::{Addr, Endpoint};
use super::rcu_chain::RcuChain;
use super::sock::{Sock, state};
use crate::Result;
use crate::mprog::ReadSection;
use crate::prog::Prog;
use crate::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use crate::sync::rcu::RcuDomain;
use crate::sync::{Arc, SpinLock};

/// A member of a group (the group's `socks[]` entry).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Member(pub *const Sock);

// SAFETY: the pointer is to a `Sync` socket that stays allocated while any reader can reach
// the member array (members are removed before their owner's reference goes; `rcu_obj`).
unsafe impl Send for Member {}
// SAFETY: as above.
unsafe impl Sync for Member {}

static NEXT_GROUP_ID: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(1);

/// A reuseport group.
pub struct ReuseGroup {
    /// `reuseport_id`: which group a socket belongs to, for `bpf_sk_select_reuseport`.
    id: u32,
    /// The members in join order.
    pub(crate) socks: RcuChain<Member>,
    /// The attached program (`reuse->prog`), published for readers; `prog_owner` keeps it.
    pub(crate) prog: crate::sync::atomic::AtomicPtr<Prog>,
    pub(crate) prog_owner: SpinLock<Option<Arc<Prog>>>,
    /// `has_conns`: a UDP member is connected.
    has_conns: AtomicBool,
    /// Members, for the control path.
    count: AtomicU32,
    /// The members are bound to the wildcard (`bind_inany`).
    bind_inany: bool,
}

impl ReuseGroup {
    /// A new group with `first` as its only member (`reuseport_alloc`).
    pub(crate) fn new(rcu: &RcuDomain, first: &Sock, bind_inany: bool) -> Result<Arc<ReuseGroup>> {
        let g = ReuseGroup {
            id: NEXT_GROUP_ID.fetch_add(1, core::sync::atomic::Ordering::Relaxed),
            socks: RcuChain::new(),
            prog: crate::sync::atomic::AtomicPtr::new(core::ptr::null_mut()),
            prog_owner: SpinLock::new(None),
            has_conns: AtomicBool::new(false),
            count: AtomicU32::new(0),
            bind_inany,
        };
        g.add(rcu, first)?;
        Ok(Arc::new(g))
    }

    /// The group's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Control path: adds a member (`reuseport_add_sock`).
    pub(crate) fn add(&self, rcu: &RcuDomain, sk: &Sock) -> Result {
        self.socks
            .try_update(rcu, |v| v.push(Member(sk as *const Sock)))?;
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Control path: removes a member (`reuseport_detach_sock`); true when it was the last.
    pub(crate) fn remove(&self, rcu: &RcuDomain, sk: &Sock) -> bool {
        self.socks
            .update(rcu, |v| v.retain(|m| !core::ptr::eq(m.0, sk)));
        self.count.fetch_sub(1, Ordering::Relaxed) == 1
    }

    /// Whether the members are bound to the wildcard.
    #[inline]
    pub fn bind_inany(&self) -> bool {
        self.bind_inany
    }

    /// Marks that a UDP member connected (`reuseport_has_conns_set`).
    pub(crate) fn set_has_conns(&self) {
        self.has_conns.store(true, Ordering::Relaxed);
    }

    /// Whether a UDP member connected.
    #[inline]
    pub fn has_conns(&self) -> bool {
        self.has_conns.load(Ordering::Relaxed)
    }

    /// Fast path: the members.
    #[inline]
    pub(crate) fn members<'a, S: ReadSection>(&'a self, section: &'a S) -> &'a [Member] {
        self.socks.read(section)
    }

    /// Fast path: the member the flow hash picks (`reuseport_select_sock_by_hash`): the one
    /// at `reciprocal_scale(hash, n)`, or the next that is not connected.
    #[inline]
    pub(crate) fn select_by_hash<'a, S: ReadSection>(
        &'a self,
        section: &'a S,
        hash: u32,
    ) -> Option<&'a Sock> {
        let socks = self.members(section);
        let n = socks.len();
        if n == 0 {
            return None;
        }
        let start = reciprocal_scale(hash, n as u32) as usize;
        let mut i = start;
        loop {
            // SAFETY: see `Member`'s `Send` impl; we are inside `section`.
            let sk = unsafe { &*socks[i].0 };
            if sk.state() != state::ESTABLISHED {
                return Some(sk);
            }
            i = if i + 1 == n { 0 } else { i + 1 };
            if i == start {
                return None;
            }
        }
    }
}

impl core::fmt::Debug for ReuseGroup {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReuseGroup")
            .field("id", &self.id)
            .field("members", &self.count.load(Ordering::Relaxed))
            .finish()
    }
}

/// `reciprocal_scale`: maps a 32-bit hash onto `0..n` by multiplication.
#[inline]
pub fn reciprocal_scale(hash: u32, n: u32) -> u32 {
    ((hash as u64 * n as u64) >> 32) as u32
}

/// `JHASH_INITVAL`, lookup3's seed constant.
const JHASH_INITVAL: u32 = 0xdead_beef;

/// Bob Jenkins' lookup3 final mix of three words (public domain), as `jhash_3words`.
#[inline]
pub fn jhash_3words(a: u32, b: u32, c: u32, initval: u32) -> u32 {
    let init = JHASH_INITVAL.wrapping_add(3 << 2).wrapping_add(initval);
    let (mut a, mut b, mut c) = (
        a.wrapping_add(init),
        b.wrapping_add(init),
        c.wrapping_add(init),
    );
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(24));
    c
}

/// A 16-byte address folded to one word for hashing (an IPv4 address is its own word).
#[inline]
fn fold(a: &Addr) -> u32 {
    match a.as_v4() {
        Some(v4) => u32::from_ne_bytes(v4),
        None => {
            let w = a.words();
            jhash_3words(w[0], w[1], w[2] ^ w[3], 0)
        }
    }
}

/// The flow hash of a lookup (`inet_ehashfn` / `udp_ehashfn`'s inputs): local end, remote end,
/// keyed by the netns's `secret`.
#[inline]
pub fn ehashfn(secret: u32, local: &Endpoint, remote: &Endpoint) -> u32 {
    let ports = (local.port as u32) << 16 | remote.port as u32;
    jhash_3words(fold(&local.addr), fold(&remote.addr), ports, secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reciprocal_scale_spans_the_range() {
        assert_eq!(reciprocal_scale(0, 4), 0);
        assert_eq!(reciprocal_scale(u32::MAX, 4), 3);
        assert_eq!(reciprocal_scale(0x8000_0000, 2), 1);
    }

    #[test]
    fn jhash_mixes_every_input() {
        let h = jhash_3words(1, 2, 3, 4);
        assert_ne!(h, jhash_3words(1, 2, 3, 5));
        assert_ne!(h, jhash_3words(0, 2, 3, 4));
        assert_ne!(h, jhash_3words(1, 2, 4, 4));
        assert_eq!(h, jhash_3words(1, 2, 3, 4));
        let l = Endpoint {
            addr: Addr::v4([127, 0, 0, 1]),
            port: 80,
        };
        let r = Endpoint {
            addr: Addr::v4([127, 0, 0, 2]),
            port: 4000,
        };
        let r2 = Endpoint { port: 4001, ..r };
        assert_ne!(ehashfn(7, &l, &r), ehashfn(7, &l, &r2));
    }
}
