//! RCU-like grace periods over a fixed set of reader slots: the kernel's `rcu_read_lock()`,
//! `synchronize_rcu()`, `call_rcu()` and `rcu_barrier()` (`include/linux/rcupdate.h`,
//! `kernel/rcu/tree.c`), built the way userspace RCU's memory-barrier flavour and
//! crossbeam-epoch build it, with one reader slot per CPU instead of a dynamic thread list.
//!
//! # Protocol
//! * A global epoch counter `E` (starts at 1) and, per slot, a cache-padded state word: `0`
//!   outside any read-side section, `e << 1 | 1` inside one that started when it read `E == e`.
//! * **Reader** (outermost [`RcuDomain::read_lock`]): load `E` (acquire), store `E << 1 | 1` to
//!   its slot, `fence(SeqCst)`. Leaving the outermost section stores `0`. Both slot stores are
//!   release (free on x86), so a writer that reads any later state of the slot with acquire is
//!   ordered after everything earlier sections on that slot did. Nested entries only bump a
//!   depth counter.
//! * **Writer** ([`RcuDomain::synchronize`]): after unpublishing (a release store or swap of the
//!   protected pointer), `new = E.fetch_add(1) + 1` (acq-rel), `fence(SeqCst)`, then for every
//!   slot wait while it is active with an epoch `< new`.
//! * Why it is enough: the reader's "store slot; fence; load pointer" against the writer's
//!   "store pointer; fence; load slot" is the store-buffering pattern, and the two SeqCst fences
//!   forbid both loads from missing the other thread's store: either the writer sees the reader
//!   active (and waits for its release store of `0`, which orders the reader's accesses before
//!   the free), or the reader's pointer load sees the new pointer. A slot showing an epoch
//!   `>= new` read `E` from (or after) the writer's bump, which was a release after the
//!   unpublish, so that reader also sees the new pointer and need not be waited for.
//! * **Callbacks** ([`RcuDomain::call_rcu`]): under the queue lock, `fence(SeqCst)` then seal
//!   the callback with `s = E`. Any grace period whose bump made `E > s` starts (in the fence
//!   order) after the caller's fence, so the store-buffering argument above applies to it; the
//!   callback may run once such a grace period finished, i.e. `completed > s`, where `completed`
//!   is the largest `new` whose scan finished. A scan that cannot wait ([`RcuDomain::poll`]) may
//!   still complete up to the oldest epoch `m` among the slots it found active: a reader that
//!   read `E == m > s` read it after the seal (coherence) and so after the caller's fence, and
//!   sees the unpublish. Callbacks run on whichever thread next calls
//!   [`RcuDomain::synchronize`], [`RcuDomain::poll`] or [`RcuDomain::barrier`], outside every
//!   lock, so a callback may itself call `call_rcu`.
//!
//! SeqCst *fences* carry the protocol, not SeqCst accesses: loom models the former exactly and
//! the latter only as acquire/release (see `shared/research/jit-tailcall.md` §4.2).
//!
//! Writers that must not run concurrently (two updaters of one pointer) serialize on their own
//! lock, as in the kernel; the domain only orders writers against readers. Several concurrent
//! `synchronize` calls are fine.

use super::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
use super::percpu::CachePadded;
use super::{SpinLock, spin_loop};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

/// Low bit of a slot's state word: a read-side section is open.
const ACTIVE: u64 = 1;

/// A deferred callback (`struct rcu_head` + its function).
type Callback = Box<dyn FnOnce() + Send>;

/// One CPU's reader state.
struct ReaderSlot {
    /// `0` outside any section, `epoch << 1 | ACTIVE` inside the outermost one.
    state: AtomicU64,
    /// Nesting depth. Only the thread holding the slot (its CPU) reads or writes it, so the
    /// accesses never race and `Relaxed` is enough; an atomic keeps `RcuDomain` `Sync` without
    /// an `unsafe` invariant, and costs a plain load/store on every target.
    nest: AtomicU32,
}

/// An RCU domain: reader slots `0..nr_slots`, a global epoch, and the deferred-callback queue.
pub struct RcuDomain {
    /// Global epoch `E`; bumped by every grace period.
    epoch: CachePadded<AtomicU64>,
    /// Largest epoch `new` such that every section that started before `E` reached `new` has
    /// ended.
    completed: CachePadded<AtomicU64>,
    slots: Box<[CachePadded<ReaderSlot>]>,
    /// Callbacks in queue order with their seal; seals are non-decreasing (taken under the lock).
    callbacks: SpinLock<VecDeque<(u64, Callback)>>,
    /// Callbacks taken off the queue and still running.
    in_flight: AtomicUsize,
}

/// An open read-side section on one slot (`rcu_read_lock()` … `rcu_read_unlock()`).
///
/// Not `Send`: the section belongs to the CPU (thread) that opened it.
#[must_use = "the read-side section ends as soon as the guard is dropped"]
pub struct RcuReadGuard<'a> {
    domain: &'a RcuDomain,
    slot: usize,
    _not_send: PhantomData<*const ()>,
}

impl RcuDomain {
    /// A domain with `nr_slots` reader slots (one per CPU) and no pending callbacks.
    pub fn new(nr_slots: usize) -> Self {
        let slots: Vec<_> = (0..nr_slots)
            .map(|_| {
                CachePadded(ReaderSlot {
                    state: AtomicU64::new(0),
                    nest: AtomicU32::new(0),
                })
            })
            .collect();
        Self {
            epoch: CachePadded(AtomicU64::new(1)),
            completed: CachePadded(AtomicU64::new(1)),
            slots: slots.into_boxed_slice(),
            callbacks: SpinLock::new(VecDeque::new()),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Number of reader slots.
    pub fn nr_slots(&self) -> usize {
        self.slots.len()
    }

    /// Enters a read-side section on `slot` (`rcu_read_lock`). The caller holds `slot`
    /// exclusively (it is its CPU). Nestable; only the outermost entry touches shared state: an
    /// acquire load of the epoch, a store to the slot's own line and a SeqCst fence.
    ///
    /// # Panics
    /// If `slot >= self.nr_slots()`.
    pub fn read_lock(&self, slot: usize) -> RcuReadGuard<'_> {
        let s = &self.slots[slot];
        let nest = s.nest.load(Ordering::Relaxed);
        if nest == 0 {
            // Acquire: if this reads a grace period's bump, the updater's unpublish (released
            // by the bump) is visible to every load in this section.
            let e = self.epoch.load(Ordering::Acquire);
            // Release: a writer that acquires this state is also ordered after our earlier
            // sections' exits (C++20 has no release sequence through later plain stores).
            s.state.store(e << 1 | ACTIVE, Ordering::Release);
            // Store-buffering fence: pairs with the one in `start_grace_period`/`call_rcu`, so
            // either the scan sees this slot active or our loads see the unpublish.
            fence(Ordering::SeqCst);
        }
        s.nest.store(nest + 1, Ordering::Relaxed);
        RcuReadGuard {
            domain: self,
            slot,
            _not_send: PhantomData,
        }
    }

    /// True while `slot` is inside a read-side section (`rcu_read_lock_held`). Meaningful only
    /// to the slot's holder.
    pub fn read_lock_held(&self, slot: usize) -> bool {
        self.slots[slot].nest.load(Ordering::Relaxed) != 0
    }

    fn read_unlock(&self, slot: usize) {
        let s = &self.slots[slot];
        let nest = s.nest.load(Ordering::Relaxed) - 1;
        s.nest.store(nest, Ordering::Relaxed);
        if nest == 0 {
            // Release: everything the section read happens before a writer that observes the
            // slot idle (acquire) frees it.
            s.state.store(0, Ordering::Release);
        }
    }

    /// Bumps the epoch and fences; returns the new epoch that readers must reach or leave.
    fn start_grace_period(&self) -> u64 {
        // AcqRel: releases the caller's unpublish to readers that read the new epoch.
        let new = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        // Store-buffering fence against the readers' fence in `read_lock`.
        fence(Ordering::SeqCst);
        new
    }

    /// The epoch of the section open on `slot`, or `None` if it is idle.
    fn active_epoch(slot: &ReaderSlot) -> Option<u64> {
        // Acquire: pairs with the reader's release stores in `read_lock`/`read_unlock`.
        let v = slot.state.load(Ordering::Acquire);
        (v & ACTIVE != 0).then_some(v >> 1)
    }

    /// True if `slot` holds a section that may predate the grace period towards `new`.
    fn blocks(slot: &ReaderSlot, new: u64) -> bool {
        Self::active_epoch(slot).is_some_and(|e| e < new)
    }

    /// Records that every section older than `new` has ended.
    fn complete(&self, new: u64) {
        // Release: whoever sees `completed >= new` (acquire) and runs a callback is ordered
        // after the reader exits this scan observed.
        self.completed.fetch_max(new, Ordering::Release);
    }

    /// Waits until every read-side section that began before this call has ended
    /// (`synchronize_rcu`), then runs the deferred callbacks that became safe.
    ///
    /// Must not be called inside a read-side section on the calling thread (on any slot): it
    /// would wait for itself forever, as `synchronize_rcu()` under `rcu_read_lock()` deadlocks in
    /// the kernel.
    pub fn synchronize(&self) {
        let new = self.start_grace_period();
        for slot in self.slots.iter() {
            while Self::blocks(slot, new) {
                spin_loop();
            }
        }
        self.complete(new);
        self.run_ready();
    }

    /// Queues `f` to run once every read-side section that began before this call has ended
    /// (`call_rcu`). Never waits for readers; may be called inside a read-side section or from
    /// a callback.
    pub fn call_rcu(&self, f: Box<dyn FnOnce() + Send>) {
        let mut queue = self.callbacks.lock();
        // Store-buffering fence: orders the caller's unpublish before the seal, so any grace
        // period that bumps the epoch past the seal sees (or is seen by) every reader that
        // might still hold the old pointer.
        fence(Ordering::SeqCst);
        let seal = self.epoch.load(Ordering::Relaxed);
        queue.push_back((seal, f));
    }

    /// Runs the callbacks whose grace period has elapsed, without waiting for readers, and
    /// returns how many ran. If callbacks remain it starts a grace period and scans the slots
    /// once: callbacks queued before the oldest section still open (or all of them, if none is)
    /// become safe.
    pub fn poll(&self) -> usize {
        let mut ran = self.run_ready();
        if self.pending() == 0 {
            return ran;
        }
        let new = self.start_grace_period();
        let oldest_open = self
            .slots
            .iter()
            .filter_map(|slot| Self::active_epoch(slot))
            .min()
            .unwrap_or(new);
        self.complete(oldest_open.min(new));
        ran += self.run_ready();
        ran
    }

    /// Waits for a grace period and then until every callback queued before this call has run
    /// (`rcu_barrier`), including ones another thread took off the queue and is still running.
    /// Callbacks queued by those callbacks may stay pending, as in the kernel.
    ///
    /// Must not be called from a callback (it would wait for itself) nor inside a read-side
    /// section.
    pub fn barrier(&self) {
        self.synchronize();
        // Acquire: pairs with the release decrement after each callback ran.
        while self.in_flight.load(Ordering::Acquire) != 0 {
            spin_loop();
        }
    }

    /// Number of queued callbacks not yet started.
    pub fn pending(&self) -> usize {
        self.callbacks.lock().len()
    }

    /// Pops and runs, one at a time and with no lock held, every callback whose seal is older
    /// than `completed`.
    fn run_ready(&self) -> usize {
        let mut ran = 0;
        loop {
            let next = {
                let mut queue = self.callbacks.lock();
                let done = self.completed.load(Ordering::Acquire);
                if queue.front().is_some_and(|&(seal, _)| seal < done) {
                    self.in_flight.fetch_add(1, Ordering::Relaxed);
                    queue.pop_front()
                } else {
                    None
                }
            };
            let Some((_, f)) = next else { return ran };
            f();
            ran += 1;
            self.in_flight.fetch_sub(1, Ordering::Release);
        }
    }
}

impl Drop for RcuDomain {
    /// No guard can outlive the domain (guards borrow it), so every read-side section has ended
    /// and every queued callback is safe to run.
    fn drop(&mut self) {
        let queue = core::mem::take(self.callbacks.get_mut());
        for (_, f) in queue {
            f();
        }
    }
}

impl fmt::Debug for RcuDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RcuDomain")
            .field("nr_slots", &self.nr_slots())
            .field("epoch", &self.epoch.load(Ordering::Relaxed))
            .field("completed", &self.completed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RcuReadGuard<'_> {
    /// The slot (CPU) this section runs on.
    pub fn slot(&self) -> usize {
        self.slot
    }
}

impl Drop for RcuReadGuard<'_> {
    /// Leaves the section (`rcu_read_unlock`).
    fn drop(&mut self) {
        self.domain.read_unlock(self.slot);
    }
}

impl fmt::Debug for RcuReadGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RcuReadGuard")
            .field("slot", &self.slot)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize};
    use std::time::Duration;

    fn counter_cb(n: &Arc<AtomicUsize>) -> Box<dyn FnOnce() + Send> {
        let n = n.clone();
        Box::new(move || {
            n.fetch_add(1, Ordering::SeqCst);
        })
    }

    #[test]
    fn nested_sections_leave_on_the_outermost_drop() {
        let rcu = RcuDomain::new(2);
        let outer = rcu.read_lock(1);
        let inner = rcu.read_lock(1);
        assert_eq!(inner.slot(), 1);
        drop(inner);
        assert!(rcu.read_lock_held(1));
        drop(outer);
        assert!(!rcu.read_lock_held(1));
        assert!(!rcu.read_lock_held(0));
    }

    #[test]
    fn synchronize_waits_for_a_preexisting_reader() {
        let rcu = RcuDomain::new(2);
        let entered = AtomicBool::new(false);
        let left = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let outer = rcu.read_lock(0);
                let inner = rcu.read_lock(0);
                entered.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                drop(inner);
                std::thread::sleep(Duration::from_millis(30));
                left.store(true, Ordering::SeqCst);
                drop(outer);
            });
            while !entered.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            rcu.synchronize();
            assert!(
                left.load(Ordering::SeqCst),
                "grace period ended inside a reader"
            );
        });
    }

    #[test]
    fn callbacks_wait_for_old_readers_not_new_ones() {
        let rcu = RcuDomain::new(2);
        let ran = Arc::new(AtomicUsize::new(0));
        let old_reader = rcu.read_lock(0);
        rcu.call_rcu(counter_cb(&ran));
        assert_eq!(rcu.pending(), 1);
        assert_eq!(rcu.poll(), 0, "ran while a pre-existing reader is active");
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        drop(old_reader);
        // A reader that starts after the callback was queued does not hold it back.
        let new_reader = rcu.read_lock(1);
        assert_eq!(rcu.poll(), 1);
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert_eq!(rcu.pending(), 0);
        drop(new_reader);
    }

    #[test]
    fn callbacks_may_queue_callbacks_and_barrier_drains() {
        let rcu = Arc::new(RcuDomain::new(1));
        let ran = Arc::new(AtomicUsize::new(0));
        let (r2, n2) = (rcu.clone(), ran.clone());
        rcu.call_rcu(Box::new(move || {
            n2.fetch_add(1, Ordering::SeqCst);
            r2.call_rcu(counter_cb(&n2));
        }));
        rcu.barrier();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert_eq!(rcu.pending(), 1);
        rcu.barrier();
        assert_eq!(ran.load(Ordering::SeqCst), 2);
        assert_eq!(rcu.pending(), 0);
    }

    #[test]
    fn dropping_the_domain_runs_what_is_left() {
        let ran = Arc::new(AtomicUsize::new(0));
        let rcu = RcuDomain::new(1);
        rcu.call_rcu(counter_cb(&ran));
        rcu.call_rcu(counter_cb(&ran));
        drop(rcu);
        assert_eq!(ran.load(Ordering::SeqCst), 2);
    }

    /// Readers on two slots dereference a published `Box` while a writer replaces it and frees
    /// the old one after a grace period, poisoning it first. A reader that ever sees the poison
    /// read freed memory.
    #[test]
    fn readers_never_see_a_freed_object() {
        const POISON: u64 = 0xdead_dead_dead_dead;
        let rcu = RcuDomain::new(2);
        let ptr = AtomicPtr::new(Box::into_raw(Box::new(0u64)));
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            for slot in 0..2 {
                let (rcu, ptr, stop) = (&rcu, &ptr, &stop);
                s.spawn(move || {
                    let mut last = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let _g = rcu.read_lock(slot);
                        let p = ptr.load(Ordering::Acquire);
                        // SAFETY: `p` was published and is freed only after a grace period
                        // that waits for this section.
                        let v = unsafe { core::ptr::read_volatile(p) };
                        assert_ne!(v, POISON, "use after free");
                        assert!(v >= last, "went back in time");
                        last = v;
                    }
                });
            }
            for i in 1..=2000u64 {
                let old = ptr.swap(Box::into_raw(Box::new(i)), Ordering::AcqRel);
                if i % 2 == 0 {
                    rcu.synchronize();
                    // SAFETY: unpublished and a grace period has passed: no reader holds it.
                    unsafe {
                        core::ptr::write_volatile(old, POISON);
                        drop(Box::from_raw(old));
                    }
                } else {
                    let old = old as usize;
                    rcu.call_rcu(Box::new(move || {
                        let old = old as *mut u64;
                        // SAFETY: the callback runs after a grace period: no reader holds it.
                        unsafe {
                            core::ptr::write_volatile(old, POISON);
                            drop(Box::from_raw(old));
                        }
                    }));
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
        rcu.barrier();
        assert_eq!(rcu.pending(), 0);
        // SAFETY: all readers are gone; the last object is still owned by `ptr`.
        drop(unsafe { Box::from_raw(ptr.into_inner()) });
    }
}
