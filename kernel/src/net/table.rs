//! A netns's socket lookup tables: TCP listeners (`lhash2`), established TCP sockets
//! (`ehash`) and bound UDP sockets (`udp_table`), each an array of RCU-published buckets
//! keyed by local port (`include/net/inet_hashtables.h`, `include/net/udp.h`).
//!
//! An [`Entry`] is an immutable snapshot of what lookups match on — the socket's family,
//! `v6only`, bound end and, for established or connected sockets, the peer — taken when the
//! socket is hashed; a socket whose ends change is rehashed. Lookups read buckets without a
//! lock; writers hold the netns's control lock.

use super::addr::{Endpoint, Family};
use super::rcu_chain::RcuChain;
use super::sock::Sock;
use crate::Result;
use crate::sync::rcu::RcuDomain;
use alloc::boxed::Box;

/// Buckets per table.
pub(crate) const NBUCKETS: usize = 256;

/// What a lookup matches a hashed socket on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// The socket (kept alive by its owner until unhashed, then for a grace period).
    pub sk: *const Sock,
    /// Its family.
    pub family: Family,
    /// `IPV6_V6ONLY`.
    pub v6only: bool,
    /// The bound end (address possibly the wildcard).
    pub local: Endpoint,
    /// The peer of an established or connected socket.
    pub remote: Option<Endpoint>,
}

// SAFETY: the pointer is to a `Sync` socket that stays allocated while any reader can reach
// the entry (unhash, then free a grace period after the last reference: `rcu_obj`).
unsafe impl Send for Entry {}
// SAFETY: as above.
unsafe impl Sync for Entry {}

/// One table.
pub(crate) struct Table {
    buckets: Box<[RcuChain<Entry>]>,
}

fn bucket_of(port: u16) -> usize {
    port as usize % NBUCKETS
}

impl Table {
    /// An empty table.
    pub fn new() -> Table {
        Table {
            buckets: (0..NBUCKETS).map(|_| RcuChain::new()).collect(),
        }
    }

    /// Fast path: the entries hashed on local port `port`, for a caller that keeps using its
    /// read-side section mutably (to run programs) while it walks them.
    ///
    /// # Safety
    /// As [`RcuChain::read_in_section`]: the caller is inside a read-side section of
    /// `cpu::rcu()` lasting at least as long as the returned borrow.
    #[inline]
    pub unsafe fn bucket_in_section(&self, port: u16) -> &[Entry] {
        // SAFETY: forwarded contract.
        unsafe { self.buckets[bucket_of(port)].read_in_section() }
    }

    /// Control path (netns lock held): hashes `e` at the head of its bucket, as
    /// `__sk_nulls_add_node_rcu` does (the newest socket is found first among equals).
    pub fn insert(&self, rcu: &RcuDomain, e: Entry) -> Result {
        self.buckets[bucket_of(e.local.port)].try_update(rcu, |v| v.insert(0, e))
    }

    /// Control path (netns lock held): a copy of the bucket of `port`.
    pub fn snapshot(&self, port: u16) -> alloc::vec::Vec<Entry> {
        self.buckets[bucket_of(port)].snapshot()
    }

    /// Control path (netns lock held): unhashes `sk` from the bucket of `port`.
    pub fn remove(&self, rcu: &RcuDomain, port: u16, sk: *const Sock) {
        self.buckets[bucket_of(port)].update(rcu, |v| v.retain(|e| e.sk != sk))
    }
}
