//! An RCU-published, copy-on-write list: one hash bucket of the socket tables, a reuseport
//! group's member array, a socket hash's bucket (what `hlist_nulls` chains and
//! `sock_reuseport::socks[]` are in the kernel, behind `rcu_dereference`).
//!
//! Readers load the published list once (acquire) inside a read-side section and walk it;
//! nothing they read is ever written again. Writers — serialized by their own lock, as the
//! kernel's bucket locks do — build a changed copy, publish it (release) and free the old copy
//! after a grace period of the readers' domain. Lookups take no lock and allocate nothing;
//! changes cost a copy, which is the control path's to pay.

use crate::mprog::ReadSection;
use crate::sync::atomic::{AtomicPtr, Ordering};
use crate::sync::rcu::RcuDomain;
use crate::{Errno, Result};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// A published list of `E`.
pub struct RcuChain<E> {
    /// A leaked `Box<Vec<E>>`, or null for the empty list.
    head: AtomicPtr<Vec<E>>,
}

// SAFETY: the chain owns its lists; moving it moves them.
unsafe impl<E: Send> Send for RcuChain<E> {}
// SAFETY: readers only read published lists (`E: Sync`); writers replace them whole and free
// the old ones through `call_rcu` on any thread (`E: Send`).
unsafe impl<E: Send + Sync> Sync for RcuChain<E> {}

impl<E: Clone + Send + Sync + 'static> RcuChain<E> {
    /// An empty list.
    pub fn new() -> Self {
        RcuChain {
            head: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Fast path: the published list, valid while `section` is borrowed.
    #[inline]
    pub fn read<'a, S: ReadSection>(&'a self, section: &'a S) -> &'a [E] {
        let _ = section;
        // Acquire: pairs with the release store that published the list and its elements.
        let p = self.head.load(Ordering::Acquire);
        // SAFETY: a published list is freed only after it was replaced and a grace period of
        // the writers' domain passed; `section` is a read-side section of that domain
        // (`ReadSection` contract) that outlives the returned borrow.
        unsafe { p.as_ref() }.map_or(&[], |v| v.as_slice())
    }

    /// Fast path: the published list, for a caller that must keep using its read-side
    /// section mutably (to run programs) while it walks the list.
    ///
    /// # Safety
    /// The caller is inside a read-side section of the writers' domain that lasts at least as
    /// long as the returned borrow.
    #[inline]
    pub unsafe fn read_in_section(&self) -> &[E] {
        let p = self.head.load(Ordering::Acquire);
        // SAFETY: as in `read`, with the section the caller vouches for.
        unsafe { p.as_ref() }.map_or(&[], |v| v.as_slice())
    }

    /// Control path: a copy of the current list (the caller serializes writers, so it cannot
    /// change under it).
    pub fn snapshot(&self) -> Vec<E> {
        self.current().to_vec()
    }

    /// Control path: replaces the list by what `f` makes of a copy of it, and frees the old
    /// list a grace period of `rcu` later. The caller serializes writers. `ENOMEM` (no room
    /// for the copy) changes nothing.
    pub fn try_update(&self, rcu: &RcuDomain, f: impl FnOnce(&mut Vec<E>)) -> Result {
        let mut v = Vec::new();
        v.try_reserve(self.len() + 1).map_err(|_| Errno::ENOMEM)?;
        v.extend(self.current().iter().cloned());
        f(&mut v);
        self.publish(rcu, v);
        Ok(())
    }

    /// [`RcuChain::try_update`] for removals, which must not fail (an unhash): the copy is an
    /// ordinary allocation, whose failure is fatal as for any infallible allocation.
    pub fn update(&self, rcu: &RcuDomain, f: impl FnOnce(&mut Vec<E>)) {
        let mut v = self.current().to_vec();
        f(&mut v);
        self.publish(rcu, v);
    }

    /// Control path: the number of elements.
    pub fn len(&self) -> usize {
        self.current().len()
    }

    /// Control path: whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.current().is_empty()
    }

    fn current(&self) -> &[E] {
        let p = self.head.load(Ordering::Acquire);
        // SAFETY: only writers free lists, and the caller is the one writer (it serializes
        // them), so the list stays valid for this borrow.
        unsafe { p.as_ref() }.map_or(&[], |v| v.as_slice())
    }

    fn publish(&self, rcu: &RcuDomain, v: Vec<E>) {
        let new = if v.is_empty() {
            core::ptr::null_mut()
        } else {
            Box::into_raw(Box::new(v))
        };
        // INVARIANT: `head` is null or a fully built list; a replaced list is freed only after
        // a grace period, so a reader inside a section may use what it loaded until it ends.
        // Release: the new list's contents are visible to readers that load the pointer.
        let old = self.head.swap(new, Ordering::AcqRel);
        if !old.is_null() {
            let old = Owned(old);
            rcu.call_rcu(Box::new(move || old.free()));
        }
    }
}

impl<E: Clone + Send + Sync + 'static> Default for RcuChain<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Drop for RcuChain<E> {
    fn drop(&mut self) {
        let p = self.head.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: we own the chain exclusively: no reader can reach it any more (the
            // owner of a chain drops it only after a grace period, or never published it).
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// A replaced list on its way to `call_rcu`.
struct Owned<E>(*mut Vec<E>);

// SAFETY: the list is unpublished and owned by the callback alone; `E: Send`.
unsafe impl<E: Send> Send for Owned<E> {}

impl<E> Owned<E> {
    fn free(self) {
        // SAFETY: the list was published by `update` (a leaked `Box`), replaced, and a grace
        // period has passed: no reader holds it. Freed once, here.
        drop(unsafe { Box::from_raw(self.0) });
    }
}
