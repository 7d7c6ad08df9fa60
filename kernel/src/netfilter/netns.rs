//! Network namespaces as conntrack sees them: a namespace is a number entries are keyed by,
//! with an optional id programs name it by, and a count of the entries it holds
//! (`struct net`'s `ct.count`, `get_net_ns_by_id` of `net/core/net_namespace.c`,
//! `peernet2id`/`RTM_NEWNSID`).
//!
//! kbpf has one id space for all namespaces (as if every namespace had given each of its peers
//! the same id): `bpf_ct_opts.netns_id` ≥ 0 names the namespace that was given that id with
//! [`Namespaces::set_id`], and -1 (`BPF_F_CURRENT_NETNS`) the caller's own. Namespace 0 is the
//! initial one; it always exists and, as in Linux, has no id until one is given. Lookups by id
//! take no lock: a fixed array of slots, each an atomic word.

use crate::sync::SpinLock;
use crate::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use crate::{Errno, Result};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// The initial namespace (`init_net`).
pub const INIT_NET: u32 = 0;
/// `BPF_F_CURRENT_NETNS`: the caller's namespace.
pub const CURRENT_NETNS: i32 = -1;
/// How many namespaces can exist at once.
pub const MAX_NETNS: usize = 64;
// Chain nodes keep the namespace in 16 bits.
static_assertions::const_assert!(MAX_NETNS <= u16::MAX as usize);

const FREE: u8 = 0;
const LIVE: u8 = 1;
const DYING: u8 = 2;
/// A slot's `nsid` when it has none (ids are non-negative `i32`s).
const NO_ID: u32 = u32::MAX;

struct Slot {
    state: AtomicU8,
    /// The id programs name it by, or [`NO_ID`].
    nsid: AtomicU32,
    /// Entries allocated in it and not yet freed (`cnet->count`).
    count: AtomicU32,
}

/// The namespaces of one conntrack table.
pub struct Namespaces {
    slots: Box<[Slot]>,
    /// Serializes creation, id assignment and destruction.
    lock: SpinLock<()>,
}

impl Namespaces {
    /// The initial namespace alone.
    pub fn new() -> Namespaces {
        let slots: Vec<Slot> = (0..MAX_NETNS)
            .map(|i| Slot {
                state: AtomicU8::new(if i == INIT_NET as usize { LIVE } else { FREE }),
                nsid: AtomicU32::new(NO_ID),
                count: AtomicU32::new(0),
            })
            .collect();
        Namespaces {
            slots: slots.into_boxed_slice(),
            lock: SpinLock::new(()),
        }
    }

    /// Creates a namespace (`copy_net_ns`); `ENOSPC` when [`MAX_NETNS`] exist.
    pub fn create(&self) -> Result<u32> {
        let _g = self.lock.lock();
        let (i, s) = self
            .slots
            .iter()
            .enumerate()
            .find(|(_, s)| s.state.load(Ordering::Relaxed) == FREE)
            .ok_or(Errno::ENOSPC)?;
        s.nsid.store(NO_ID, Ordering::Relaxed);
        s.count.store(0, Ordering::Relaxed);
        s.state.store(LIVE, Ordering::Release);
        Ok(i as u32)
    }

    /// Gives namespace `net` the id `nsid` programs name it by (`RTM_NEWNSID`): `EINVAL` for a
    /// negative id, `ENOENT` for no such namespace, `EEXIST` when the id is taken or the
    /// namespace already has one.
    pub fn set_id(&self, net: u32, nsid: i32) -> Result {
        if nsid < 0 {
            return Err(Errno::EINVAL);
        }
        let _g = self.lock.lock();
        let s = self.live_slot(net).ok_or(Errno::ENOENT)?;
        if s.nsid.load(Ordering::Relaxed) != NO_ID || self.by_id(nsid).is_some() {
            return Err(Errno::EEXIST);
        }
        s.nsid.store(nsid as u32, Ordering::Release);
        Ok(())
    }

    /// Starts destroying namespace `net` (not the initial one: `EINVAL`; `ENOENT` if it does
    /// not exist): ids no longer find it and nothing new may be inserted in it. The table
    /// flushes its entries, then calls [`Namespaces::free`].
    pub(super) fn kill(&self, net: u32) -> Result {
        if net == INIT_NET {
            return Err(Errno::EINVAL);
        }
        let _g = self.lock.lock();
        let s = self.live_slot(net).ok_or(Errno::ENOENT)?;
        s.state.store(DYING, Ordering::Release);
        s.nsid.store(NO_ID, Ordering::Release);
        Ok(())
    }

    /// Makes a killed namespace's slot reusable.
    pub(super) fn free(&self, net: u32) {
        let _g = self.lock.lock();
        if let Some(s) = self.slots.get(net as usize) {
            s.state.store(FREE, Ordering::Release);
        }
    }

    fn live_slot(&self, net: u32) -> Option<&Slot> {
        self.slots
            .get(net as usize)
            .filter(|s| s.state.load(Ordering::Acquire) == LIVE)
    }

    /// Whether namespace `net` exists and is not being destroyed.
    #[inline]
    pub fn is_live(&self, net: u32) -> bool {
        self.live_slot(net).is_some()
    }

    /// The namespace with id `nsid` (`get_net_ns_by_id`); lock-free.
    #[inline]
    pub fn by_id(&self, nsid: i32) -> Option<u32> {
        if nsid < 0 {
            return None;
        }
        self.slots
            .iter()
            .position(|s| {
                s.nsid.load(Ordering::Acquire) == nsid as u32
                    && s.state.load(Ordering::Acquire) == LIVE
            })
            .map(|i| i as u32)
    }

    /// The id of namespace `net`, if it has one.
    pub fn id_of(&self, net: u32) -> Option<i32> {
        let id = self.live_slot(net)?.nsid.load(Ordering::Acquire);
        (id != NO_ID).then_some(id as i32)
    }

    /// The live namespaces.
    pub fn list(&self) -> Vec<u32> {
        (0..self.slots.len() as u32)
            .filter(|&n| self.is_live(n))
            .collect()
    }

    /// Counts one more entry in `net`; returns the new count.
    #[inline]
    pub(super) fn count_inc(&self, net: u32) -> u32 {
        self.slots[net as usize]
            .count
            .fetch_add(1, Ordering::Relaxed)
            + 1
    }

    /// Counts one entry less in `net`.
    #[inline]
    pub(super) fn count_dec(&self, net: u32) {
        self.slots[net as usize]
            .count
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// Entries allocated in `net` and not yet freed (`nf_conntrack_count`).
    pub fn count(&self, net: u32) -> u32 {
        self.slots
            .get(net as usize)
            .map_or(0, |s| s.count.load(Ordering::Relaxed))
    }
}

impl Default for Namespaces {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn ids_name_live_namespaces() {
        let ns = Namespaces::new();
        assert!(ns.is_live(INIT_NET));
        assert_eq!(ns.by_id(0), None, "the initial namespace has no id");
        let a = ns.create().unwrap();
        assert_ne!(a, INIT_NET);
        assert_eq!(ns.set_id(a, -3), Err(Errno::EINVAL));
        assert_eq!(ns.set_id(a, 7), Ok(()));
        assert_eq!(ns.set_id(INIT_NET, 7), Err(Errno::EEXIST));
        assert_eq!(ns.set_id(a, 8), Err(Errno::EEXIST));
        assert_eq!(ns.by_id(7), Some(a));
        assert_eq!(ns.id_of(a), Some(7));
        assert_eq!(ns.kill(INIT_NET), Err(Errno::EINVAL));
        assert_eq!(ns.kill(a), Ok(()));
        assert_eq!(ns.by_id(7), None);
        assert!(!ns.is_live(a));
        ns.free(a);
        assert_eq!(ns.create(), Ok(a), "the slot is reused");
        assert_eq!(ns.set_id(99, 1), Err(Errno::ENOENT));
    }

    #[test]
    fn a_full_registry_refuses() {
        let ns = Namespaces::new();
        for _ in 1..MAX_NETNS {
            ns.create().unwrap();
        }
        assert_eq!(ns.create(), Err(Errno::ENOSPC));
    }
}
