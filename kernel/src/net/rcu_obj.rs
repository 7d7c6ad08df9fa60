//! Objects that readers find through RCU-published tables and may keep with a reference: the
//! lifetime protocol of `struct sock` (`sk_refcnt`, `refcount_inc_not_zero` on lookup,
//! `sk_free` after a grace period for `SOCK_RCU_FREE` sockets; `include/net/sock.h`,
//! `net/core/sock.c`).
//!
//! * An object is allocated in a `Box` and starts with one reference, its owner's.
//! * A reader inside a read-side section may use an object it found in a published table
//!   until the section ends; to keep it longer it takes a reference with
//!   [`RcuObj::get_unless_zero`], which fails once the count reached zero (the object is
//!   dying and must be treated as gone).
//! * A writer unpublishes the object from every table, then puts its reference. The put that
//!   brings the count to zero queues the object on a [`DeadList`] — lock-free and without
//!   allocating, so a program's `bpf_sk_release` may be that put — and the control path
//!   hands the list to `call_rcu` ([`DeadList::reap`]): the memory is freed a grace period
//!   after the last reference went, so a reader still holding a stale pointer from a table
//!   only ever finds a zero count, never freed memory.
//!
//! `loom-tests/tests/sock_rcu.rs` checks this protocol against readers.

use crate::sync::atomic::{AtomicPtr, Ordering};
use crate::sync::rcu::RcuDomain;
use crate::sync::refcount::Refcount;
use alloc::boxed::Box;

/// The counting part of an [`RcuObj`]: its reference count and its link on a [`DeadList`].
pub struct RcuHead<T> {
    refcnt: Refcount,
    next_dead: AtomicPtr<T>,
}

impl<T> RcuHead<T> {
    /// One reference, the creator's.
    pub fn new() -> Self {
        RcuHead {
            refcnt: Refcount::new(1),
            next_dead: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// The current count (racy: for diagnostics and tests).
    pub fn count(&self) -> u32 {
        self.refcnt.read()
    }
}

impl<T> Default for RcuHead<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// An object with an [`RcuHead`], allocated with `Box`.
///
/// # Safety
/// Every value handled through this trait was allocated with `Box::new` and is only freed by
/// [`DeadList::reap`] (through [`RcuObj::free`]); `head` always returns the same head.
pub unsafe trait RcuObj: Sized + Send + Sync + 'static {
    /// The object's head.
    fn head(&self) -> &RcuHead<Self>;

    /// Frees the object, a grace period after its last reference went: drops the `Box` it
    /// was allocated in. (Loom models override it to poison instead, so that a late reader
    /// shows as a race rather than as freed memory.)
    ///
    /// # Safety
    /// `this` came from `Box::into_raw`, has a zero count, is unreachable, and is freed once.
    unsafe fn free(this: *mut Self) {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(this) });
    }

    /// Takes a reference unless the object is dying (`refcount_inc_not_zero`): the fast-path
    /// lookup's way to keep an object past its read-side section.
    #[inline]
    fn get_unless_zero(&self) -> bool {
        self.head().refcnt.inc_not_zero()
    }

    /// Takes another reference; the caller holds one.
    #[inline]
    fn get(&self) {
        self.head().refcnt.inc();
    }
}

/// Puts a reference to `obj`; the last one queues it on `dead`. Lock-free, allocates nothing.
///
/// # Safety
/// The caller owns one reference to `obj` (which it gives up) and `obj` was unpublished from
/// every table before its owner's reference was put.
#[inline]
pub unsafe fn put<T: RcuObj>(obj: *const T, dead: &DeadList<T>) {
    // SAFETY: the caller's reference keeps `obj` alive until this decrement.
    if unsafe { (*obj).head().refcnt.dec_and_test() } {
        dead.push(obj as *mut T);
    }
}

/// Puts a reference to `obj`, an object that was never published: the last one frees it at
/// once, since no reader can hold a stale pointer to it; else as [`put`].
///
/// # Safety
/// As [`put`], and `obj` was never reachable from a table, a map or a handle: only
/// references counted in its head point to it.
pub unsafe fn put_unpublished<T: RcuObj>(obj: *const T) {
    // SAFETY: the caller's reference keeps `obj` alive until this decrement.
    if unsafe { (*obj).head().refcnt.dec_and_test() } {
        // SAFETY: a zero count on an object nothing else can reach: unreachable, allocated
        // with `Box` (the trait's contract), freed once, here.
        unsafe { T::free(obj as *mut T) };
    }
}

/// Objects whose last reference went, waiting for the control path to free them after a
/// grace period: a lock-free stack (pushes from anywhere, the whole list taken at once).
pub struct DeadList<T> {
    head: AtomicPtr<T>,
}

// SAFETY: the list holds pointers to `Send + Sync` objects nobody else references any more
// (their count is zero); moving them between threads is what freeing on another thread does.
unsafe impl<T: RcuObj> Send for DeadList<T> {}
// SAFETY: as above; every access to the list goes through its atomic head.
unsafe impl<T: RcuObj> Sync for DeadList<T> {}

impl<T: RcuObj> DeadList<T> {
    /// An empty list.
    pub fn new() -> Self {
        DeadList {
            head: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    fn push(&self, obj: *mut T) {
        // SAFETY: `obj` has a zero count: nothing but this list reaches it from now on, so its
        // link is ours to write.
        let link = unsafe { &(*obj).head().next_dead };
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            link.store(head, Ordering::Relaxed);
            // Release: the link (and everything done to the object before its last put) is
            // visible to the thread that takes the list with acquire.
            match self
                .head
                .compare_exchange_weak(head, obj, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Whether something waits to be freed.
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Acquire).is_null()
    }

    /// Control path: frees every queued object a grace period of `rcu` from now. Allocates the
    /// callback; does nothing when the list is empty.
    pub fn reap(&self, rcu: &RcuDomain) {
        // Acquire: pairs with the pushes' release.
        let first = self.head.swap(core::ptr::null_mut(), Ordering::Acquire);
        if first.is_null() {
            return;
        }
        let list = Taken(first);
        rcu.call_rcu(Box::new(move || list.free()));
    }
}

impl<T: RcuObj> Default for DeadList<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A list taken off a [`DeadList`], owned by the callback that frees it.
struct Taken<T>(*mut T);

// SAFETY: the objects on the list are unreachable by anyone else (zero count, unpublished);
// the callback that owns the list may run on any thread.
unsafe impl<T: RcuObj> Send for Taken<T> {}

impl<T: RcuObj> Taken<T> {
    fn free(self) {
        let mut p = self.0;
        while !p.is_null() {
            // SAFETY: `p` came off the dead list: allocated with `Box` (trait contract), its
            // count is zero and a grace period has passed since it was queued, so no reader
            // holds it; we own it, read its link, then free it once.
            unsafe {
                let next = (*p).head().next_dead.load(Ordering::Relaxed);
                T::free(p);
                p = next;
            }
        }
    }
}
