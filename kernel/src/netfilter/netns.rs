//! Network namespaces as a conntrack table sees them: the numbers its entries are keyed by
//! ([`crate::net::Net::num`]), whose life and ids are the one netns model's
//! ([`crate::net::nsid`]), and a count of the entries each holds (`struct net`'s `ct.count`,
//! `nf_conntrack_count`). Each table keeps its own counts; creating, naming and destroying
//! namespaces is [`crate::net::Net`]'s, whose exit flushes their entries
//! ([`super::netns_exit`]).

use crate::net::nsid;
use crate::sync::atomic::{AtomicU32, Ordering};
use alloc::boxed::Box;
use alloc::vec::Vec;

pub use crate::net::nsid::{CURRENT_NETNS, INIT_NET, MAX_NETNS};

/// The per-netns entry counts of one conntrack table, and its view of the netns registry.
pub struct Namespaces {
    /// Entries allocated in each netns and not yet freed (`cnet->count`), by number.
    counts: Box<[AtomicU32]>,
}

impl Namespaces {
    /// No entries anywhere.
    pub fn new() -> Namespaces {
        Namespaces {
            counts: (0..MAX_NETNS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Whether netns `net` exists and has not exited (lock-free).
    #[inline]
    pub fn is_live(&self, net: u32) -> bool {
        nsid::is_live(net)
    }

    /// The number of the netns with id `nsid` (`get_net_ns_by_id`); lock-free.
    #[inline]
    pub fn by_id(&self, id: i32) -> Option<u32> {
        nsid::by_id(id)
    }

    /// The id of netns `net`, if it has one.
    pub fn id_of(&self, net: u32) -> Option<i32> {
        nsid::id_of(net)
    }

    /// The live namespaces.
    pub fn list(&self) -> Vec<u32> {
        nsid::list()
    }

    /// Counts one more entry in `net`; returns the new count.
    #[inline]
    pub(super) fn count_inc(&self, net: u32) -> u32 {
        self.counts[net as usize].fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Counts one entry less in `net`.
    #[inline]
    pub(super) fn count_dec(&self, net: u32) {
        self.counts[net as usize].fetch_sub(1, Ordering::Relaxed);
    }

    /// Entries allocated in `net` and not yet freed (`nf_conntrack_count`).
    pub fn count(&self, net: u32) -> u32 {
        self.counts
            .get(net as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

impl Default for Namespaces {
    fn default() -> Self {
        Self::new()
    }
}
