//! The conntrack hash table: `nf_conntrack_hash` and the lookup, allocation and insertion of
//! `net/netfilter/nf_conntrack_core.c` (`____nf_conntrack_find`, `__nf_conntrack_find_get`,
//! `__nf_conntrack_alloc` with `early_drop`, `nf_conntrack_hash_check_insert`, `nf_ct_put`).
//! The control path (delete, flush, garbage collection, listing, resizing) is in
//! [`super::ctl`].
//!
//! Every entry sits in two chains, one per direction, keyed by that direction's tuple, zone id
//! and namespace. Chains are singly linked `hlist_nulls` lists ending in a marker naming their
//! bucket; lookups walk them without locks inside an RCU read-side section and take a
//! reference with get-unless-zero. Writers take the buckets' spin locks (an array of
//! `CONNTRACK_LOCKS`, two at a time in index order as `nf_conntrack_double_lock` does).
//!
//! Lifetime: the table holds one reference on every entry in it. Removing an entry sets
//! `IPS_DYING` and unlinks both nodes under the locks; the table's reference is dropped only
//! after a grace period, so a reader that found the entry in a chain either got its reference
//! before (and keeps the entry alive) or never sees it. Whoever drops the last reference
//! frees the entry — on the fast path (`bpf_ct_release`) by pushing it on a lock-free list that
//! the control path empties, so the fast path never calls the allocator. Unlike Linux's
//! `SLAB_TYPESAFE_BY_RCU` cache, memory is never reused under a reader.

use super::conn::{Conn, ConnInit, TupleHash, status};
use super::netns::Namespaces;
use super::tuple::{DIR_ORIGINAL, DIR_REPLY, HashKey, Tuple, Zone, hash};
use crate::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use crate::sync::rcu::RcuDomain;
use crate::sync::{SpinLock, SpinLockGuard};
use crate::{Errno, Result};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// `CONNTRACK_LOCKS`.
const MAX_LOCKS: usize = 1024;
/// Chain length past which an insertion is refused (`MAX_CHAINLEN` territory: Linux picks a
/// random limit between 50 and 80 against hash flooding; kbpf a fixed one).
const MAX_CHAINLEN: usize = 64;
/// `NF_CT_EVICTION_RANGE`: buckets an allocation into a full table searches for a victim.
const EVICTION_RANGE: usize = 8;

/// One or two held bucket locks.
pub(super) type Guards<'a> = (SpinLockGuard<'a, ()>, Option<SpinLockGuard<'a, ()>>);

/// How a table is built.
#[derive(Clone, Copy, Debug)]
pub struct TableConfig {
    /// Buckets (`nf_conntrack_buckets`), a power of two.
    pub buckets: usize,
    /// Entries per namespace before allocation evicts or fails (`nf_conntrack_max`; 0 means
    /// no limit).
    pub max: u32,
    /// Hash seed.
    pub seed: u64,
    /// The jiffies clock.
    pub clock: fn() -> u64,
}

/// A bucket array (`nf_conntrack_hash` with its size), in huge-page-hinted memory when large
/// ([`super::slab::alloc_large`]).
pub(super) struct Buckets {
    ptr: *mut AtomicUsize,
    layout: core::alloc::Layout,
    pub(super) mask: usize,
}

impl Buckets {
    pub(super) fn new(n: usize) -> Result<Buckets> {
        if !n.is_power_of_two() {
            return Err(Errno::EINVAL);
        }
        let size = n
            .checked_mul(core::mem::size_of::<AtomicUsize>())
            .ok_or(Errno::ENOMEM)?;
        let (p, layout) = super::slab::alloc_large(size, core::mem::align_of::<AtomicUsize>())?;
        let ptr = p as *mut AtomicUsize;
        for b in 0..n {
            // SAFETY: `b < n` heads fit the allocation, which is aligned for them.
            unsafe { ptr.add(b).write(AtomicUsize::new(nulls(b))) };
        }
        Ok(Buckets {
            ptr,
            layout,
            mask: n - 1,
        })
    }

    /// Every bucket's chain head.
    pub(super) fn heads(&self) -> &[AtomicUsize] {
        // SAFETY: `mask + 1` initialized heads live at `ptr` as long as `self`.
        unsafe { core::slice::from_raw_parts(self.ptr, self.mask + 1) }
    }

    /// Bucket `b`'s head; `b` is masked into range.
    #[inline]
    pub(super) fn head(&self, b: usize) -> &AtomicUsize {
        // SAFETY: `b & mask < mask + 1` heads (see `heads`).
        unsafe { &*self.ptr.add(b & self.mask) }
    }
}

impl Drop for Buckets {
    fn drop(&mut self) {
        for b in 0..=self.mask {
            // SAFETY: each head was written in `new` and is dropped once.
            unsafe { core::ptr::drop_in_place(self.ptr.add(b)) };
        }
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::alloc::dealloc(self.ptr as *mut u8, self.layout) };
    }
}

/// The marker ending bucket `b`'s chain (`INIT_HLIST_NULLS_HEAD(head, b)`).
#[inline]
pub(super) const fn nulls(b: usize) -> usize {
    (b << 1) | 1
}

#[inline]
pub(super) fn is_nulls(v: usize) -> bool {
    v & 1 == 1
}

/// A conntrack table: buckets, namespaces, limits.
pub struct Table<'r> {
    pub(super) rcu: &'r RcuDomain,
    pub(super) clock: fn() -> u64,
    pub(super) buckets: AtomicPtr<Buckets>,
    pub(super) locks: Box<[SpinLock<()>]>,
    pub(super) key: HashKey,
    pub(super) max: AtomicU32,
    /// The namespaces.
    pub nets: Namespaces,
    /// Entries whose last reference went on the fast path, linked through `dead_next`.
    pub(super) dead: AtomicUsize,
    /// Entries a fast-path eviction unlinked, still holding the table's reference until a
    /// grace period has passed; linked through `dead_next`.
    pub(super) retired: AtomicUsize,
    /// Entries allocated and not yet freed (all namespaces).
    pub(super) live: AtomicUsize,
    /// Where entries live.
    pub(super) slab: super::slab::Slab,
    /// Serializes the control path; held across its grace periods.
    pub(super) ctl: SpinLock<()>,
}

// SAFETY: entries and bucket arrays are reached through atomics and freed only as the module
// docs describe; all other state is atomics or locks.
unsafe impl Send for Table<'_> {}
// SAFETY: as above.
unsafe impl Sync for Table<'_> {}

/// An entry found by a lookup, with its direction.
#[derive(Clone, Copy, Debug)]
pub struct Found {
    /// The entry; the caller holds a reference.
    pub conn: *const Conn,
    /// Which of its tuples matched (`NF_CT_DIRECTION`).
    pub dir: u8,
}

impl<'r> Table<'r> {
    /// An empty table whose readers use `rcu`.
    pub fn new(cfg: TableConfig, rcu: &'r RcuDomain) -> Result<Table<'r>> {
        let b = Buckets::new(cfg.buckets)?;
        let nlocks = cfg.buckets.min(MAX_LOCKS);
        let mut locks = Vec::new();
        locks.try_reserve_exact(nlocks)?;
        locks.extend((0..nlocks).map(|_| SpinLock::new(())));
        Ok(Table {
            rcu,
            clock: cfg.clock,
            buckets: AtomicPtr::new(Box::into_raw(Box::new(b))),
            locks: locks.into_boxed_slice(),
            key: HashKey::new(cfg.seed),
            max: AtomicU32::new(cfg.max),
            nets: Namespaces::new(),
            dead: AtomicUsize::new(0),
            retired: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            slab: super::slab::Slab::new(),
            ctl: SpinLock::new(()),
        })
    }

    /// The jiffies clock's reading.
    #[inline]
    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    /// `nf_conntrack_max`.
    pub fn max(&self) -> u32 {
        self.max.load(Ordering::Relaxed)
    }

    /// Sets `nf_conntrack_max` (0: no limit); existing entries stay.
    pub fn set_max(&self, max: u32) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// Entries allocated and not yet freed, all namespaces together (a leak check: 0 once
    /// the table is flushed, no program holds a reference and [`Table::reclaim`] ran).
    pub fn live_objects(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// The current bucket array.
    ///
    /// # Safety
    /// The caller is inside a read-side section of the table's domain, or holds `ctl`; the
    /// array is only freed under `ctl` after a grace period.
    #[inline]
    pub(super) unsafe fn array(&self) -> &Buckets {
        // SAFETY: caller contract; the pointer is never null.
        unsafe { &*self.buckets.load(Ordering::Acquire) }
    }

    #[inline]
    fn node_hash(&self, t: &Tuple, zone: &Zone, dir: u8, net: u32) -> u32 {
        hash(&self.key, t, zone.id_for(dir), net)
    }

    /// Whether chain node `node` is `tuple` in `zone` of `net` (`nf_ct_key_equal`): the
    /// tuple, the zone id for the node's direction, the namespace — all read from the node.
    /// (Linux also checks that the entry is confirmed; only confirmed entries are ever linked
    /// here, and memory is never reused under a reader, so that always holds.)
    ///
    /// # Safety
    /// `node` is a node of a live entry.
    #[inline]
    unsafe fn key_equal(node: *const TupleHash, t: &Tuple, zone: &Zone, net: u32) -> bool {
        // SAFETY: caller contract.
        let n = unsafe { &*node };
        n.net as u32 == net && n.zone_id == zone.id_for(n.tuple.dst.dir) && n.tuple.same_flow(t)
    }

    /// `nf_conntrack_find_get`: the live, unexpired entry with `tuple` (looked up as an
    /// original-direction tuple) in `zone` of `net`, with a reference taken. The chain of the
    /// zone's original-direction id is searched, then, for a zone that applies to one
    /// direction only, the chain of its reply-direction id (a reply tuple is hashed with that).
    /// Takes no lock and allocates nothing; reads the clock only when it found the entry (to
    /// check its expiry).
    ///
    /// # Safety
    /// The caller is inside a read-side section of the table's RCU domain.
    #[inline]
    pub unsafe fn find_get(&self, net: u32, zone: &Zone, tuple: &Tuple) -> Option<Found> {
        let id = zone.id_for(DIR_ORIGINAL);
        // SAFETY: caller contract.
        let found = unsafe { self.find_get_in(net, zone, tuple, id) };
        let rid = zone.id_for(DIR_REPLY);
        if found.is_some() || rid == id {
            return found;
        }
        // SAFETY: caller contract.
        unsafe { self.find_get_in(net, zone, tuple, rid) }
    }

    /// `____nf_conntrack_find` + `__nf_conntrack_find_get` in the chain `tuple` hashes to with
    /// zone id `zone_id`.
    ///
    /// # Safety
    /// As [`Table::find_get`].
    #[inline]
    unsafe fn find_get_in(
        &self,
        net: u32,
        zone: &Zone,
        tuple: &Tuple,
        zone_id: u16,
    ) -> Option<Found> {
        let h = hash(&self.key, tuple, zone_id, net);
        loop {
            // SAFETY: inside a read-side section (caller contract).
            let arr = unsafe { self.array() };
            let b = h as usize & arr.mask;
            let mut cur = arr.head(b).load(Ordering::Acquire);
            while !is_nulls(cur) {
                let node = cur as *const TupleHash;
                // SAFETY: chain nodes belong to entries freed only after a grace period that
                // waits for this section.
                let n = unsafe { &*node };
                // SAFETY: as above.
                if n.hash == h && unsafe { Self::key_equal(node, tuple, zone, net) } {
                    // SAFETY: as above.
                    let c = unsafe { &*Conn::of_node(node) };
                    c.touch();
                    if c.is_expired(self.now()) || !c.refs.inc_not_zero() {
                        return None;
                    }
                    return Some(Found {
                        conn: c,
                        dir: n.tuple.dst.dir,
                    });
                }
                cur = n.next.load(Ordering::Acquire);
            }
            if cur == nulls(b) {
                return None;
            }
            // Ended in another bucket's chain: the table was resized under us.
            crate::sync::spin_loop();
        }
    }

    /// Drops a reference (`nf_ct_put`); the last one destroys the entry. Never calls the
    /// allocator: a freed entry goes on a list [`Table::reclaim`] empties.
    ///
    /// # Safety
    /// `conn` is an entry of this table on which the caller holds a reference.
    pub unsafe fn put(&self, conn: *const Conn) {
        // SAFETY: the caller's reference keeps it alive.
        let c = unsafe { &*conn };
        if c.refs.dec_and_test() {
            self.nets.count_dec(c.net());
            push(&self.dead, conn);
        }
    }

    /// Drops a reference on the control path, freeing the entry at once if it was the last.
    ///
    /// # Safety
    /// As [`Table::put`], and the entry is unreachable from the chains for every reader (it
    /// was never published, or it was unlinked a grace period ago).
    pub(super) unsafe fn put_now(&self, conn: *const Conn) {
        // SAFETY: caller contract.
        let c = unsafe { &*conn };
        if c.refs.dec_and_test() {
            self.nets.count_dec(c.net());
            // SAFETY: last reference, unreachable (caller contract).
            unsafe { self.free(conn) };
        }
    }

    /// Frees an entry's memory.
    ///
    /// # Safety
    /// Nothing refers to `conn` any more.
    pub(super) unsafe fn free(&self, conn: *const Conn) {
        // SAFETY: caller contract.
        unsafe { (*conn).poison() };
        self.live.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: written by `alloc` into slab memory; nothing refers to it any more.
        unsafe {
            core::ptr::drop_in_place(conn as *mut Conn);
            self.slab.free(conn as *mut Conn);
        }
    }

    /// `__nf_conntrack_alloc`: a new unconfirmed entry with one reference (the caller's),
    /// counted in its namespace. When the namespace holds `max` entries already, evicts an
    /// entry not yet assured from the buckets near the new one's (`early_drop`) or fails with
    /// `ENOMEM` ("table full, dropping packet"). `ENOMEM` too when memory runs out.
    ///
    /// # Safety
    /// The caller is inside a read-side section of the table's domain or holds `ctl` (the
    /// eviction walks chains).
    pub unsafe fn alloc(&self, init: &ConnInit) -> Result<*mut Conn> {
        let count = self.nets.count_inc(init.net);
        let max = self.max();
        // SAFETY: caller contract.
        if max != 0 && count > max && !unsafe { self.early_drop(init) } {
            self.nets.count_dec(init.net);
            return Err(Errno::ENOMEM);
        }
        let p = match self.slab.alloc() {
            Ok(p) => p,
            Err(e) => {
                self.nets.count_dec(init.net);
                return Err(e);
            }
        };
        // SAFETY: room for one `Conn` from the slab, ours alone.
        unsafe { p.write(Conn::new(init)) };
        self.live.fetch_add(1, Ordering::Relaxed);
        Ok(p)
    }

    /// Frees an entry `alloc` made that was never inserted (the creator's reference).
    ///
    /// # Safety
    /// `conn` came from [`Table::alloc`], was never published, and nothing else refers to it.
    pub unsafe fn free_unpublished(&self, conn: *mut Conn) {
        // SAFETY: caller contract.
        self.nets.count_dec(unsafe { (*conn).net() });
        // SAFETY: caller contract.
        unsafe { self.free(conn) };
    }

    /// Takes the locks of buckets `a` and `b` in index order (`nf_conntrack_double_lock`).
    pub(super) fn lock2(&self, a: usize, b: usize) -> Guards<'_> {
        let n = self.locks.len() - 1;
        let (a, b) = (a & n, b & n);
        if a == b {
            return (self.locks[a].lock(), None);
        }
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let g1 = self.locks[lo].lock();
        (g1, Some(self.locks[hi].lock()))
    }

    /// The bucket array with both of an entry's buckets locked (retrying if a resize swapped
    /// the array in between): (array, orig bucket, reply bucket, guards).
    pub(super) fn lock_entry(&self, c: &Conn) -> (&Buckets, usize, usize, Guards<'_>) {
        loop {
            let p = self.buckets.load(Ordering::Acquire);
            // SAFETY: a resize frees the old array only after taking every lock and a grace
            // period; once we hold a lock and see the same pointer, it stays.
            let arr = unsafe { &*p };
            let (h0, h1) = (c.tuplehash[0].hash, c.tuplehash[1].hash);
            let (b0, b1) = (h0 as usize & arr.mask, h1 as usize & arr.mask);
            let g = self.lock2(b0, b1);
            if self.buckets.load(Ordering::Acquire) == p {
                return (arr, b0, b1, g);
            }
        }
    }

    /// `nf_conntrack_hash_check_insert`: confirms an unconfirmed entry (its relative timeout
    /// starts now) and publishes both of its tuples. `EEXIST` if either tuple is already in the
    /// table (same zone and namespace), `ENOSPC` for an overlong chain, `ENONET` if its
    /// namespace is being destroyed. On success the table holds a reference too; on failure
    /// nothing changed and the entry is still the caller's alone.
    ///
    /// # Safety
    /// `conn` came from [`Table::alloc`] and was never published; the caller holds its only
    /// reference and is inside a read-side section or holds `ctl`.
    pub unsafe fn insert(&self, conn: *mut Conn) -> Result {
        // SAFETY: caller contract: unpublished, ours alone.
        let c = unsafe { &mut *conn };
        let net = c.net();
        let zone = c.zone;
        for d in [DIR_ORIGINAL, DIR_REPLY] {
            let t = c.tuplehash[d as usize].tuple;
            c.tuplehash[d as usize].hash = self.node_hash(&t, &zone, d, net);
        }
        let (arr, b0, b1, guards) = self.lock_entry(c);
        if !self.nets.is_live(net) {
            return Err(Errno::ENONET);
        }
        for d in [DIR_ORIGINAL, DIR_REPLY] {
            let b = if d == DIR_ORIGINAL { b0 } else { b1 };
            let t = c.tuplehash[d as usize].tuple;
            let mut cur = arr.head(b).load(Ordering::Relaxed);
            let mut len = 0;
            while !is_nulls(cur) {
                // SAFETY: chained nodes are live (we hold the bucket lock; frees come after
                // unlinking under it and a grace period).
                if unsafe { Self::key_equal(cur as *const TupleHash, &t, &zone, net) } {
                    return Err(Errno::EEXIST);
                }
                len += 1;
                if len > MAX_CHAINLEN {
                    return Err(Errno::ENOSPC);
                }
                // SAFETY: as above.
                cur = unsafe { &*(cur as *const TupleHash) }
                    .next
                    .load(Ordering::Relaxed);
            }
        }
        // Confirm: the timeout becomes absolute, the table takes its reference.
        let now = self.now();
        c.timeout.store(
            (now as u32).wrapping_add(c.timeout_raw()),
            core::sync::atomic::Ordering::Relaxed,
        );
        c.set_status_bits(status::CONFIRMED);
        c.refs.inc();
        c.publish();
        for (d, b) in [(1usize, b1), (0, b0)] {
            let node = &c.tuplehash[d];
            node.next
                .store(arr.head(b).load(Ordering::Relaxed), Ordering::Relaxed);
            // Publish: a reader that loads the new head sees the node and the entry.
            arr.head(b)
                .store(node as *const TupleHash as usize, Ordering::Release);
        }
        drop(guards);
        Ok(())
    }

    /// Removes `c` from both chains and marks it dying, unless someone else already did.
    /// Returns whether this call unlinked it; the table's reference is then the caller's to
    /// drop after a grace period.
    pub(super) fn unlink(&self, c: &Conn) -> bool {
        let (arr, b0, b1, guards) = self.lock_entry(c);
        if c.is_dying() {
            return false;
        }
        c.set_status_bits(status::DYING);
        unlink_node(arr, b0, &c.tuplehash[0]);
        unlink_node(arr, b1, &c.tuplehash[1]);
        drop(guards);
        true
    }

    /// `early_drop`: unlinks one entry of `init`'s namespace that is not assured, from the
    /// `EVICTION_RANGE` buckets starting at the new tuple's; it is freed after a grace period
    /// by [`Table::reclaim`].
    ///
    /// # Safety
    /// As [`Table::alloc`].
    unsafe fn early_drop(&self, init: &ConnInit) -> bool {
        let h = self.node_hash(&init.orig, &init.zone, DIR_ORIGINAL, init.net);
        // SAFETY: caller contract.
        let arr = unsafe { self.array() };
        for i in 0..EVICTION_RANGE.min(arr.mask + 1) {
            let b = (h as usize).wrapping_add(i) & arr.mask;
            let mut cur = arr.head(b).load(Ordering::Acquire);
            while !is_nulls(cur) {
                let node = cur as *const TupleHash;
                // SAFETY: as in `find_get`.
                let c = unsafe { &*Conn::of_node(node) };
                let st = c.status();
                if st & (status::ASSURED | status::DYING) == 0
                    && st & status::CONFIRMED != 0
                    && c.net() == init.net
                    && self.unlink(c)
                {
                    push(&self.retired, c);
                    return true;
                }
                // SAFETY: as above.
                cur = unsafe { &*node }.next.load(Ordering::Acquire);
            }
        }
        false
    }
}

/// Removes `node` from bucket `b`'s chain (its lock held). Readers standing on `node` keep
/// walking from its unchanged `next`.
fn unlink_node(arr: &Buckets, b: usize, node: &TupleHash) {
    let target = node as *const TupleHash as usize;
    let next = node.next.load(Ordering::Relaxed);
    let head = &arr.head(b);
    if head.load(Ordering::Relaxed) == target {
        head.store(next, Ordering::Release);
        return;
    }
    let mut cur = head.load(Ordering::Relaxed);
    while !is_nulls(cur) {
        // SAFETY: chained nodes are live while their bucket lock is held.
        let n = unsafe { &*(cur as *const TupleHash) };
        if n.next.load(Ordering::Relaxed) == target {
            n.next.store(next, Ordering::Release);
            return;
        }
        cur = n.next.load(Ordering::Relaxed);
    }
}

/// Pushes `c` on a lock-free list linked through `dead_next` (a Treiber stack; it is only ever
/// emptied whole, so there is no ABA).
pub(super) fn push(list: &AtomicUsize, c: *const Conn) {
    // SAFETY: the caller owns the entry's last reference (or the table's, for `retired`).
    let link = unsafe { &(*c).dead_next };
    let mut head = list.load(Ordering::Relaxed);
    loop {
        link.store(head, Ordering::Relaxed);
        // Release: the taker (acquire swap) sees the link and everything done to the entry.
        match list.compare_exchange_weak(head, c as usize, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(h) => head = h,
        }
    }
}

/// Takes a whole `dead_next` list.
pub(super) fn take(list: &AtomicUsize) -> Vec<*const Conn> {
    let mut out = Vec::new();
    let mut cur = list.swap(0, Ordering::Acquire);
    while cur != 0 {
        let c = cur as *const Conn;
        out.push(c);
        // SAFETY: entries on the list stay allocated until their taker frees them.
        cur = unsafe { &(*c).dead_next }.load(Ordering::Relaxed);
    }
    out
}
