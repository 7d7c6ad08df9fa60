//! The conntrack table's control path: creating entries (ctnetlink's `IPCTNL_MSG_CT_NEW`),
//! deleting one (`IPCTNL_MSG_CT_DELETE`, `nf_ct_delete`), flushing, the garbage collector
//! (`gc_worker`), listing (`/proc/net/nf_conntrack`), resizing (`nf_conntrack_hash_resize`),
//! destroying a namespace's entries (`nf_conntrack_cleanup_net`), and freeing what the fast
//! path left behind.
//!
//! Every operation here holds the table's `ctl` lock, which also makes its lock-free chain
//! walks safe: entries are freed only under it (after a grace period). Operations wait for
//! grace periods, so they must not be called from inside a read-side section of the table's
//! domain (that is, from a program).

use super::conn::{Conn, ConnInit};
use super::table::{Buckets, Table, is_nulls, nulls, take};
use super::tuple::{DIR_ORIGINAL, Tuple, Zone};
use crate::sync::atomic::Ordering;
use crate::{Errno, Result};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// A new entry, as the control path creates one.
#[derive(Clone, Copy, Debug)]
pub struct EntrySpec {
    /// Namespace.
    pub net: u32,
    /// Zone.
    pub zone: Zone,
    /// Original-direction tuple (the reply is its inverse).
    pub orig: Tuple,
    /// Timeout in jiffies.
    pub timeout: u64,
    /// Status bits to set (the changeable ones).
    pub status: u32,
    /// Mark.
    pub mark: u32,
}

/// A snapshot of one entry, for listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// Namespace.
    pub net: u32,
    /// Zone.
    pub zone: Zone,
    /// Original-direction tuple.
    pub orig: Tuple,
    /// Reply-direction tuple.
    pub reply: Tuple,
    /// Status bits.
    pub status: u64,
    /// Mark.
    pub mark: u32,
    /// Jiffies until it expires.
    pub expires_in: u64,
    /// References (the table's included).
    pub refs: u32,
}

impl EntryInfo {
    fn of(c: &Conn, now: u64) -> EntryInfo {
        EntryInfo {
            net: c.net(),
            zone: c.zone(),
            orig: *c.tuple(0),
            reply: *c.tuple(1),
            status: c.status(),
            mark: c.mark(),
            expires_in: c.expires_in(now),
            refs: c.refcount(),
        }
    }
}

impl Table<'_> {
    /// Creates an entry (`ctnetlink_create_conntrack`): `ENONET` for a namespace that does not
    /// exist, `EINVAL` for a tuple without an inverse, `EBUSY` for status bits it may not set,
    /// `EEXIST` when either direction's tuple is taken, `ENOMEM` when full.
    pub fn add(&self, spec: &EntrySpec) -> Result {
        let reply = spec.orig.invert()?;
        let _g = self.ctl.lock();
        if !self.nets.is_live(spec.net) {
            return Err(Errno::ENONET);
        }
        let init = ConnInit {
            net: spec.net,
            zone: spec.zone,
            orig: spec.orig,
            reply,
            timeout: spec.timeout,
        };
        // SAFETY: `ctl` is held (the eviction's chain walk).
        let c = unsafe { self.alloc(&init) }?;
        // SAFETY: fresh from `alloc`.
        let conn = unsafe { &*c };
        conn.set_mark(spec.mark);
        let result = conn.change_status(spec.status).and_then(|()| {
            // SAFETY: unpublished, ours alone; `ctl` held.
            unsafe { self.insert(c) }
        });
        match result {
            // SAFETY: the table holds its own reference now; ours is unreachable from here.
            Ok(()) => unsafe { self.put_now(c) },
            // SAFETY: never published.
            Err(_) => unsafe { self.free_unpublished(c) },
        }
        self.reclaim_locked();
        result
    }

    /// Walks every chain node of the current array (the `ctl` lock held).
    fn for_each_entry(&self, mut f: impl FnMut(&Conn)) {
        // SAFETY: `ctl` is held by every caller.
        let arr = unsafe { self.array() };
        for head in arr.heads().iter() {
            let mut cur = head.load(Ordering::Acquire);
            while !is_nulls(cur) {
                let node = cur as *const super::conn::TupleHash;
                // SAFETY: entries are freed only under `ctl`, which we hold.
                let n = unsafe { &*node };
                if n.tuple.dst.dir == DIR_ORIGINAL {
                    // SAFETY: as above.
                    f(unsafe { &*Conn::of_node(node) });
                }
                cur = n.next.load(Ordering::Acquire);
            }
        }
    }

    /// Unlinks the entries `pick` selects, waits for a grace period and drops the table's
    /// references; returns how many went.
    fn remove_where(&self, mut pick: impl FnMut(&Conn) -> bool) -> usize {
        let mut victims: Vec<*const Conn> = Vec::new();
        self.for_each_entry(|c| {
            if pick(c) {
                victims.push(c);
            }
        });
        // SAFETY: each victim is live until we drop the table's reference below.
        victims.retain(|&c| self.unlink(unsafe { &*c }));
        self.finish_removal(&victims);
        victims.len()
    }

    /// After unlinking: a grace period, then the table's references go.
    fn finish_removal(&self, unlinked: &[*const Conn]) {
        let mut retired = take(&self.retired);
        if unlinked.is_empty() && retired.is_empty() {
            return;
        }
        self.rcu.synchronize();
        retired.extend_from_slice(unlinked);
        for c in retired {
            // SAFETY: unlinked a grace period ago; the table's reference is ours to drop.
            unsafe { self.put_now(c) };
        }
    }

    /// Deletes the entry with `tuple` (either direction) in `zone` of `net`
    /// (`ctnetlink_del_conntrack`): `ENOENT` if there is none.
    pub fn delete(&self, net: u32, zone: &Zone, tuple: &Tuple) -> Result {
        let _g = self.ctl.lock();
        let mut hit = false;
        let n = self.remove_where(|c| {
            let m = !hit
                && c.net() == net
                && (0..2)
                    .any(|d| c.tuple(d).same_flow(tuple) && c.zone().id_for(d) == zone.id_for(d));
            hit |= m;
            m
        });
        self.reclaim_locked();
        if n == 0 { Err(Errno::ENOENT) } else { Ok(()) }
    }

    /// Deletes every entry of `net`, or of every namespace (`nf_ct_iterate_cleanup_net`);
    /// returns how many.
    pub fn flush(&self, net: Option<u32>) -> usize {
        let _g = self.ctl.lock();
        let n = self.remove_where(|c| net.is_none_or(|n| c.net() == n));
        self.reclaim_locked();
        n
    }

    /// The garbage collector (`gc_worker`): removes every entry expired at jiffies `now`;
    /// returns how many.
    pub fn gc(&self, now: u64) -> usize {
        let _g = self.ctl.lock();
        let n = self.remove_where(|c| c.is_expired(now));
        self.reclaim_locked();
        n
    }

    /// Snapshots the unexpired entries of `net` (or all), as `/proc/net/nf_conntrack` lists
    /// them.
    pub fn list(&self, net: Option<u32>) -> Vec<EntryInfo> {
        let _g = self.ctl.lock();
        let now = self.now();
        let mut out = Vec::new();
        self.for_each_entry(|c| {
            if net.is_none_or(|n| c.net() == n) && !c.is_expired(now) {
                out.push(EntryInfo::of(c, now));
            }
        });
        out
    }

    /// Frees what the fast path left: entries whose last reference it dropped, and entries an
    /// eviction unlinked (after a grace period).
    pub fn reclaim(&self) {
        let _g = self.ctl.lock();
        self.reclaim_locked();
    }

    fn reclaim_locked(&self) {
        self.finish_removal(&[]);
        for c in take(&self.dead) {
            // SAFETY: its last reference is gone and it was unreachable before that.
            unsafe { self.free(c) };
        }
    }

    /// Buckets in the current array.
    pub fn buckets(&self) -> usize {
        let _g = self.ctl.lock();
        // SAFETY: `ctl` held.
        unsafe { self.array() }.mask + 1
    }

    /// Rehashes every entry into `n` buckets (`nf_conntrack_hash_resize`; `EINVAL` unless a
    /// power of two). Lookups racing with it may miss an entry, as in Linux.
    pub fn resize(&self, n: usize) -> Result {
        let _g = self.ctl.lock();
        let new = Box::new(Buckets::new(n)?);
        let guards: Vec<_> = self.locks.iter().map(|l| l.lock()).collect();
        // SAFETY: `ctl` held.
        let old = unsafe { self.array() };
        for head in old.heads().iter() {
            let mut cur = head.load(Ordering::Relaxed);
            while !is_nulls(cur) {
                // SAFETY: every bucket lock is held; chained nodes are live.
                let node = unsafe { &*(cur as *const super::conn::TupleHash) };
                let next = node.next.load(Ordering::Relaxed);
                let b = node.hash as usize & new.mask;
                node.next
                    .store(new.head(b).load(Ordering::Relaxed), Ordering::Release);
                new.head(b).store(cur, Ordering::Relaxed);
                cur = next;
            }
            // A marker no bucket of the old array has: readers still on it start again.
            head.store(nulls(old.mask + 1), Ordering::Release);
        }
        let old = self.buckets.swap(Box::into_raw(new), Ordering::AcqRel);
        drop(guards);
        self.rcu.synchronize();
        // SAFETY: unpublished a grace period ago; inserts recheck the pointer under a lock.
        drop(unsafe { Box::from_raw(old) });
        Ok(())
    }

    /// Flushes the entries of netns `net`, which has exited (`nf_conntrack_cleanup_net`):
    /// they are unlinked and freed once no reader can hold them, so its count is 0 after.
    /// Waits for grace periods.
    pub fn flush_netns(&self, net: u32) {
        let _g = self.ctl.lock();
        self.remove_where(|c| c.net() == net);
        self.reclaim_locked();
    }
}

impl Drop for Table<'_> {
    /// Frees every entry (no reader can be left: they borrow the table).
    fn drop(&mut self) {
        let mut all: Vec<*const Conn> = Vec::new();
        self.for_each_entry(|c| all.push(c));
        all.extend(take(&self.retired));
        all.extend(take(&self.dead));
        for c in all {
            // SAFETY: nothing can refer to entries of a table being dropped.
            unsafe { self.free(c) };
        }
        // SAFETY: the array is ours alone now.
        drop(unsafe { Box::from_raw(self.buckets.load(Ordering::Relaxed)) });
    }
}
