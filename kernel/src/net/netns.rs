//! Network namespaces (`struct net`, `net/core/net_namespace.c`): each has its own socket
//! tables, its own bound ports, its own sk_lookup programs, and its own conntrack entries —
//! keyed by its number ([`Net::num`]) in the one conntrack table — and may have an id programs
//! name it by ([`super::nsid`]) in both the socket helpers' and `bpf_ct_opts`'s `netns_id`.
//!
//! A netns lives while something uses it — handles to it and the sockets in it
//! ([`Net::user_get`]); when the last user goes it exits (`cleanup_net`): ids stop finding
//! it, its sk_lookup links are detached and go defunct (`netns_bpf_pernet_pre_exit`), its
//! conntrack entries are flushed (`nf_conntrack_cleanup_net`), and a grace period later its
//! number may be reused. The memory stays until the last `Arc` (a link may still point at it)
//! drops. Exit is control path: the last user must not go inside a read-side section.
//!
//! Locks: [`Net::ctl`] (the netns's socket lock: binds and every table change) may be taken
//! with a socket's lock inside it, never the other way round, and never inside a read-side
//! section.

use super::addr::{Addr, Family, Proto};
use super::nsid;
use super::sk_lookup::SkLookupHook;
use super::sock::Sock;
use super::table::Table;
use crate::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use crate::sync::{Arc, SpinLock};
use crate::{Errno, Result};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// The first ephemeral port (`ip_local_port_range`'s default low end).
pub const EPHEMERAL_LOW: u16 = 32768;
/// The last ephemeral port.
pub const EPHEMERAL_HIGH: u16 = 60999;

/// A bound socket in the bind table (`inet_bind_bucket`'s owners).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bound(pub *const Sock);

// SAFETY: the socket is removed from the bind table before its owner's reference goes.
unsafe impl Send for Bound {}
// SAFETY: as above.
unsafe impl Sync for Bound {}

impl Bound {
    /// The socket (the netns lock, which the caller holds, keeps bound sockets alive).
    pub fn sock(&self) -> &Sock {
        // SAFETY: see `Send`.
        unsafe { &*self.0 }
    }
}

/// What the netns lock protects.
pub(crate) struct NetCtl {
    /// Bound sockets by protocol and port (`bhash`).
    pub binds: BTreeMap<(u8, u16), Vec<Bound>>,
    /// Where the next ephemeral port search starts.
    pub next_ephemeral: u16,
}

static NEXT_INO: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(4026532000);

/// A network namespace.
pub struct Net {
    ino: u32,
    /// Its slot in the registry ([`super::nsid`]): what conntrack keys its entries by.
    num: u32,
    /// Keys the flow hash (`net_hash_mix` + `inet_ehash_secret`).
    hash_secret: u32,
    pub(crate) listen: Table,
    pub(crate) established: Table,
    pub(crate) udp: Table,
    pub(crate) sk_lookup: SkLookupHook,
    pub(crate) ctl: SpinLock<NetCtl>,
    /// Handles and open sockets.
    users: AtomicU32,
    alive: AtomicBool,
}

impl Net {
    /// A new netns with no users yet (`copy_net_ns`); `ENOSPC` when [`super::nsid::MAX_NETNS`]
    /// exist. It exits when its last user goes ([`Net::user_put`]), or at [`Net::exit`].
    pub fn create() -> Result<Arc<Net>> {
        let num = nsid::reserve()?;
        let net = Arc::new(Net::with_ino(
            NEXT_INO.fetch_add(1, core::sync::atomic::Ordering::Relaxed),
            num,
        ));
        nsid::publish(num, net.clone());
        Ok(net)
    }

    fn with_ino(ino: u32, num: u32) -> Net {
        Net {
            ino,
            num,
            // A fixed key before a host is registered (no packet can arrive then).
            hash_secret: crate::host::try_get().map_or(0x6e65_746e, |h| h.random_u32()),
            listen: Table::new(),
            established: Table::new(),
            udp: Table::new(),
            sk_lookup: SkLookupHook::new(),
            ctl: SpinLock::new(NetCtl {
                binds: BTreeMap::new(),
                next_ephemeral: EPHEMERAL_LOW,
            }),
            users: AtomicU32::new(0),
            alive: AtomicBool::new(true),
        }
    }

    /// The netns's inode number (what `netns_ino` in link info reports).
    pub fn ino(&self) -> u32 {
        self.ino
    }

    /// Its number: conntrack's key for its entries, [`super::nsid`]'s slot (0: the initial
    /// netns).
    #[inline]
    pub fn num(&self) -> u32 {
        self.num
    }

    /// The id programs name it by in `netns_id`, if it has one (`peernet2id`).
    pub fn id(&self) -> Option<i32> {
        if self.is_alive() {
            nsid::id_of(self.num)
        } else {
            None
        }
    }

    /// Gives it the id programs name it by (`RTM_NEWNSID`; see [`nsid::set_id`]).
    pub fn set_id(&self, id: i32) -> Result {
        if !self.is_alive() {
            return Err(Errno::ENOENT);
        }
        nsid::set_id(self.num, id)
    }

    /// The flow-hash key.
    #[inline]
    pub fn hash_secret(&self) -> u32 {
        self.hash_secret
    }

    /// Whether it has not exited.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// A new user (a handle, a socket) keeps it from exiting (`get_net`).
    pub fn user_get(&self) {
        self.users.fetch_add(1, Ordering::AcqRel);
    }

    /// A user went; the last one makes it exit.
    pub fn user_put(&self) {
        if self.users.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.exit();
        }
    }

    /// The netns exits (`cleanup_net`): ids stop finding it, sk_lookup links are detached and
    /// go defunct (`netns_bpf_pernet_pre_exit`), its conntrack entries are flushed
    /// (`nf_conntrack_cleanup_net`), and a grace period later its number is free again.
    /// Idempotent; the initial netns never exits. Control path (waits for grace periods).
    pub fn exit(&self) {
        if self.num == nsid::INIT_NET || !self.alive.swap(false, Ordering::AcqRel) {
            return;
        }
        nsid::kill(self.num);
        self.sk_lookup.pre_exit();
        crate::netfilter::netns_exit(self.num);
        crate::cpu::synchronize_rcu();
        drop(nsid::release(self.num));
    }
}

static INIT_NET: spin::Once<Arc<Net>> = spin::Once::new();

/// The initial netns (`init_net`): never exits.
pub fn init_net() -> &'static Arc<Net> {
    INIT_NET.call_once(|| {
        let net = Arc::new(Net::with_ino(4026531840, nsid::INIT_NET));
        net.user_get();
        net
    })
}

impl core::fmt::Debug for Net {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Net")
            .field("ino", &self.ino)
            .field("num", &self.num)
            .field("alive", &self.is_alive())
            .finish()
    }
}

/// Which addresses of each family a socket bound to `addr` covers: the IPv4 part (with the
/// wildcard as `ANY4`) and the IPv6 part.
fn covers(family: Family, v6only: bool, addr: Addr) -> (Option<Addr>, Option<Addr>) {
    match family {
        Family::Inet => (Some(addr), None),
        Family::Inet6 if addr == Addr::ANY6 => ((!v6only).then_some(Addr::ANY4), Some(addr)),
        Family::Inet6 if addr.as_v4().is_some() => ((!v6only).then_some(addr), None),
        Family::Inet6 => (None, Some(addr)),
    }
}

/// Whether two bound addresses overlap (`inet_rcv_saddr_equal` with wildcards matching).
pub(crate) fn addrs_overlap(a: (Family, bool, Addr), b: (Family, bool, Addr)) -> bool {
    let (a4, a6) = covers(a.0, a.1, a.2);
    let (b4, b6) = covers(b.0, b.1, b.2);
    let meet = |x: Option<Addr>, y: Option<Addr>, any: Addr| match (x, y) {
        (Some(x), Some(y)) => x == y || x == any || y == any,
        _ => false,
    };
    meet(a4, b4, Addr::ANY4) || meet(a6, b6, Addr::ANY6)
}

/// The bind-table key of a protocol and port.
pub(crate) fn bind_key(proto: Proto, port: u16) -> (u8, u16) {
    (proto as u8, port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_binds() {
        let lo = Addr::v4([127, 0, 0, 1]);
        let lo2 = Addr::v4([127, 0, 0, 2]);
        let v6 = Addr::from_ip("fd00::1".parse().unwrap());
        use Family::*;
        assert!(addrs_overlap((Inet, false, lo), (Inet, false, lo)));
        assert!(!addrs_overlap((Inet, false, lo), (Inet, false, lo2)));
        assert!(addrs_overlap((Inet, false, Addr::ANY4), (Inet, false, lo2)));
        assert!(addrs_overlap((Inet6, false, Addr::ANY6), (Inet, false, lo)));
        assert!(!addrs_overlap((Inet6, true, Addr::ANY6), (Inet, false, lo)));
        assert!(addrs_overlap((Inet6, true, Addr::ANY6), (Inet6, false, v6)));
        assert!(!addrs_overlap(
            (Inet6, false, v6),
            (Inet, false, Addr::ANY4)
        ));
        assert!(addrs_overlap((Inet6, false, lo), (Inet, false, Addr::ANY4)));
    }
}
