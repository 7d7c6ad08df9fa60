//! The netns registry: every live [`Net`] has a number (its slot here), which conntrack keys
//! its entries by, and may have an id programs name it by — `netns_id` of the socket lookup
//! helpers (`bpf_sk_lookup_tcp`, …) and of `struct bpf_ct_opts` (`peernet2id`,
//! `get_net_ns_by_id` and `RTM_NEWNSID` of `net/core/net_namespace.c`).
//!
//! kbpf has one id space for all namespaces (as if every namespace had given each of its peers
//! the same id): `netns_id` ≥ 0 names the namespace that was given that id with [`set_id`], and
//! a negative one (`BPF_F_CURRENT_NETNS`) the caller's own. Number 0 is the initial netns; it
//! always exists and, as in Linux, has no id until one is given. Lookups by id take no lock and
//! allocate nothing: a fixed array of slots, each a few atomic words.
//!
//! A slot is reserved when its netns is created ([`Net::create`]) and killed when the netns
//! exits (ids stop finding it at once); it becomes reusable a grace period later, after the
//! netns's conntrack entries are gone, so a reader that found a netns by id may use it until
//! its read-side section ends.

use super::netns::Net;
use crate::sync::Arc;
// The registry is process-wide and outlives any loom model (each execution would need its
// own), so it takes `core`'s atomics and `spin`'s lock even under `--cfg loom`: to the models
// of conntrack it is a fixed registry in which the initial netns is live.
use crate::{Errno, Result};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicU32, Ordering};
use spin::Mutex as SpinLock;

/// The initial netns's number (`init_net`).
pub const INIT_NET: u32 = 0;
/// `BPF_F_CURRENT_NETNS`: the caller's netns.
pub const CURRENT_NETNS: i32 = -1;
/// How many namespaces can exist at once.
pub const MAX_NETNS: usize = 64;
// Conntrack's chain nodes keep the number in 16 bits.
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
    /// The netns (a reference the registry holds from creation to a grace period after
    /// exit); null for the initial netns, which is static.
    net: AtomicPtr<Net>,
}

struct Registry {
    slots: Box<[Slot]>,
    /// Serializes reservation, id assignment, kill and free.
    lock: SpinLock<()>,
}

static REGISTRY: spin::Once<Registry> = spin::Once::new();

fn registry() -> &'static Registry {
    REGISTRY.call_once(|| {
        let slots: Vec<Slot> = (0..MAX_NETNS)
            .map(|i| Slot {
                state: AtomicU8::new(if i == INIT_NET as usize { LIVE } else { FREE }),
                nsid: AtomicU32::new(NO_ID),
                net: AtomicPtr::new(core::ptr::null_mut()),
            })
            .collect();
        Registry {
            slots: slots.into_boxed_slice(),
            lock: SpinLock::new(()),
        }
    })
}

fn live_slot(num: u32) -> Option<&'static Slot> {
    registry()
        .slots
        .get(num as usize)
        .filter(|s| s.state.load(Ordering::Acquire) == LIVE)
}

/// Reserves a number for a netns about to be created (`ENOSPC` when [`MAX_NETNS`] exist).
pub(super) fn reserve() -> Result<u32> {
    let r = registry();
    let _g = r.lock.lock();
    let (i, s) = r
        .slots
        .iter()
        .enumerate()
        .find(|(_, s)| s.state.load(Ordering::Relaxed) == FREE)
        .ok_or(Errno::ENOSPC)?;
    s.nsid.store(NO_ID, Ordering::Relaxed);
    s.net.store(core::ptr::null_mut(), Ordering::Relaxed);
    s.state.store(LIVE, Ordering::Release);
    Ok(i as u32)
}

/// Publishes the netns of a reserved number; the registry keeps the reference until
/// [`release`].
pub(super) fn publish(num: u32, net: Arc<Net>) {
    let s = &registry().slots[num as usize];
    // INVARIANT: the slot holds one reference from here until `release`.
    s.net
        .store(Arc::into_raw(net) as *mut Net, Ordering::Release);
}

/// The netns `num` exits: ids no longer find it and it is no longer live.
pub(super) fn kill(num: u32) {
    let r = registry();
    let _g = r.lock.lock();
    if let Some(s) = r.slots.get(num as usize) {
        s.state.store(DYING, Ordering::Release);
        s.nsid.store(NO_ID, Ordering::Release);
    }
}

/// A grace period after [`kill`]: the slot is reusable; returns the registry's reference.
pub(super) fn release(num: u32) -> Option<Arc<Net>> {
    let r = registry();
    let _g = r.lock.lock();
    let s = r.slots.get(num as usize)?;
    let p = s.net.swap(core::ptr::null_mut(), Ordering::AcqRel);
    s.state.store(FREE, Ordering::Release);
    // SAFETY: a non-null slot pointer is the reference `publish` leaked.
    (!p.is_null()).then(|| unsafe { Arc::from_raw(p) })
}

/// Gives netns `num` the id `nsid` programs name it by (`RTM_NEWNSID`): `EINVAL` for a
/// negative id, `ENOENT` for no such netns, `EEXIST` when the id is taken or the netns already
/// has one.
pub fn set_id(num: u32, nsid: i32) -> Result {
    if nsid < 0 {
        return Err(Errno::EINVAL);
    }
    let _g = registry().lock.lock();
    let s = live_slot(num).ok_or(Errno::ENOENT)?;
    if s.nsid.load(Ordering::Relaxed) != NO_ID || by_id(nsid).is_some() {
        return Err(Errno::EEXIST);
    }
    s.nsid.store(nsid as u32, Ordering::Release);
    Ok(())
}

/// Whether netns `num` exists and has not exited.
#[inline]
pub fn is_live(num: u32) -> bool {
    live_slot(num).is_some()
}

/// The number of the netns with id `nsid` (`get_net_ns_by_id`); lock-free.
#[inline]
pub fn by_id(nsid: i32) -> Option<u32> {
    if nsid < 0 {
        return None;
    }
    registry()
        .slots
        .iter()
        .position(|s| {
            s.nsid.load(Ordering::Acquire) == nsid as u32 && s.state.load(Ordering::Acquire) == LIVE
        })
        .map(|i| i as u32)
}

/// The netns with id `nsid`, valid until the caller's read-side section ends; lock-free and
/// allocation-free.
#[inline]
pub fn net_by_id<'a>(nsid: i32) -> Option<&'a Net> {
    let num = by_id(nsid)?;
    if num == INIT_NET {
        return Some(super::netns::init_net());
    }
    let p = registry().slots[num as usize].net.load(Ordering::Acquire);
    // SAFETY: the registry's reference is dropped only a grace period after the slot stopped
    // being live, and the caller is inside a read-side section that began before that.
    unsafe { p.as_ref() }
}

/// The id of netns `num`, if it has one.
pub fn id_of(num: u32) -> Option<i32> {
    let id = live_slot(num)?.nsid.load(Ordering::Acquire);
    (id != NO_ID).then_some(id as i32)
}

/// The live namespaces' numbers.
pub fn list() -> Vec<u32> {
    (0..MAX_NETNS as u32).filter(|&n| is_live(n)).collect()
}

/// The live netns with number `num`, referenced (the control path's way from a number to the
/// netns: `kbpf ct`, `kbpf run --netns`).
pub fn net_by_num(num: u32) -> Option<Arc<Net>> {
    if num == INIT_NET {
        return Some(super::netns::init_net().clone());
    }
    let r = registry();
    let _g = r.lock.lock();
    let s = live_slot(num)?;
    let p = s.net.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: the slot's reference (leaked by `publish`) stays while the registry lock is
    // held; it is borrowed here, not taken.
    let slot_ref = core::mem::ManuallyDrop::new(unsafe { Arc::from_raw(p) });
    Some(Arc::clone(&slot_ref))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn ids_name_live_namespaces() {
        assert!(is_live(INIT_NET));
        let a = reserve().unwrap();
        assert_ne!(a, INIT_NET);
        assert_eq!(set_id(a, -3), Err(Errno::EINVAL));
        // Ids other tests do not use.
        assert_eq!(set_id(a, 7007), Ok(()));
        assert_eq!(set_id(INIT_NET, 7007), Err(Errno::EEXIST));
        assert_eq!(set_id(a, 7008), Err(Errno::EEXIST));
        assert_eq!(by_id(7007), Some(a));
        assert_eq!(id_of(a), Some(7007));
        assert!(list().contains(&a));
        kill(a);
        assert_eq!(by_id(7007), None);
        assert!(!is_live(a));
        assert_eq!(set_id(a, 7009), Err(Errno::ENOENT));
        assert!(release(a).is_none(), "nothing was published");
        assert_eq!(set_id(MAX_NETNS as u32, 1), Err(Errno::ENOENT));
    }
}
