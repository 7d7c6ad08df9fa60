//! RCU-protected pointer slots: an array of `Arc<T>` references that writers `xchg` and readers
//! load once, the old reference being put after a grace period.
//!
//! This is the lock-free core of `BPF_MAP_TYPE_PROG_ARRAY` (`xchg(array->ptrs + index, new)`
//! then `bpf_prog_put` deferred past RCU in `kernel/bpf/arraymap.c`), kept generic so the loom
//! models in `loom-tests/` check this exact code with a model payload.
//!
//! # Invariants
//! A non-null slot holds one strong reference obtained with `Arc::into_raw`. A reader that
//! loaded a pointer inside a read-side section of `rcu` may use it until the section ends: the
//! writer that removes it hands the reference to `call_rcu` on the same domain.

use super::Arc;
use super::atomic::{AtomicPtr, Ordering};
use super::rcu::RcuDomain;
use alloc::boxed::Box;
use alloc::vec::Vec;

/// A fixed array of RCU-protected `Arc<T>` slots.
pub struct RcuSlots<T: Send + Sync + 'static> {
    slots: Box<[AtomicPtr<T>]>,
}

struct Owned<T>(*const T);
// SAFETY: `Owned` moves one strong `Arc<T>` reference to a callback; `T: Send + Sync` makes
// dropping it on another thread sound.
unsafe impl<T: Send + Sync> Send for Owned<T> {}

impl<T: Send + Sync + 'static> RcuSlots<T> {
    /// `n` empty slots (`ENOMEM` if the array can't be allocated).
    pub fn new(n: usize) -> crate::Result<Self> {
        let mut v = Vec::new();
        v.try_reserve_exact(n)?;
        v.extend((0..n).map(|_| AtomicPtr::new(core::ptr::null_mut())));
        // INVARIANT: every slot starts empty (null), holding no reference.
        Ok(RcuSlots {
            slots: v.into_boxed_slice(),
        })
    }

    /// Number of slots.
    #[inline]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The first slot's address (slots are contiguous), for code that indexes them directly.
    #[inline]
    pub fn as_ptr(&self) -> *const AtomicPtr<T> {
        self.slots.as_ptr()
    }

    /// Whether there are no slots at all.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Reader side: the object in slot `i` (`i < len()`), or null. Valid until the caller's
    /// read-side section on the writers' domain ends.
    #[inline]
    pub fn get(&self, i: usize) -> *const T {
        self.slots[i].load(Ordering::Acquire)
    }

    /// [`RcuSlots::get`] without the bounds check, for a caller that has just compared `i`
    /// with [`RcuSlots::len`] itself.
    ///
    /// # Safety
    /// `i < self.len()`.
    #[inline]
    pub unsafe fn get_unchecked(&self, i: usize) -> *const T {
        // SAFETY: `i` is in bounds (the caller's promise).
        unsafe { self.slots.get_unchecked(i) }.load(Ordering::Acquire)
    }

    /// Writer side: stores `new` (or empties the slot with `None`) and returns whether the slot
    /// held something. The previous reference is dropped after a grace period of `rcu`.
    /// Writers to one slot need no lock between them: each `xchg` hands exactly one old
    /// reference to exactly one writer.
    pub fn xchg(&self, rcu: &RcuDomain, i: usize, new: Option<Arc<T>>) -> bool {
        let new = new.map_or(core::ptr::null_mut(), |a| Arc::into_raw(a) as *mut T);
        // INVARIANT: the slot now holds `new`'s one strong reference (from `into_raw`) or null,
        // and the reference it held passes to this writer alone (the swap is one atomic step),
        // which hands it to `call_rcu` below: a reader that loaded it inside a section of `rcu`
        // keeps it until the section ends. Release publishes the program behind `new` to the
        // acquire load in `get`.
        let old = self.slots[i].swap(new, Ordering::AcqRel);
        if old.is_null() {
            return false;
        }
        let old = Owned(old as *const T);
        rcu.call_rcu(Box::new(move || {
            let old = old;
            // SAFETY: the reference came from `Arc::into_raw` when it was stored, no slot holds
            // it any more, and the grace period has passed (module invariants).
            drop(unsafe { Arc::from_raw(old.0) });
        }));
        true
    }

    /// How many slots are filled.
    pub fn filled(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| !s.load(Ordering::Acquire).is_null())
            .count()
    }
}

impl<T: Send + Sync + 'static> Drop for RcuSlots<T> {
    fn drop(&mut self) {
        // Dropping the array means no reader can reach it any more; put what is left now.
        for s in self.slots.iter() {
            let p = s.swap(core::ptr::null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                // SAFETY: owned strong reference (module invariants), now unreachable.
                drop(unsafe { Arc::from_raw(p) });
            }
        }
    }
}
