//! A spin lock for the control path: the kernel's `spinlock_t` (`include/linux/spinlock.h`).
//!
//! One API whatever the backend: [`spin::Mutex`] normally, `loom::sync::Mutex` under
//! `--cfg loom` so the loom models see every lock acquisition (a `spin` lock is built on `core`
//! atomics, which loom cannot observe). Loom's mutex poisons like `std`'s; a poisoned lock can
//! only follow a panic inside a model, which already fails it, so the poison is unwrapped.
//!
//! The fast path never takes this lock (see `DESIGN.md`, "Fast path vs control path").

use core::fmt;
use core::ops::{Deref, DerefMut};

use backend::{Inner, InnerGuard};

/// The backend, one module per configuration with the same shape.
#[cfg(not(loom))]
mod backend {
    pub(super) type Inner<T> = spin::Mutex<T>;
    pub(super) type InnerGuard<'a, T> = spin::MutexGuard<'a, T>;

    pub(super) fn lock<T: ?Sized>(m: &Inner<T>) -> InnerGuard<'_, T> {
        m.lock()
    }
    pub(super) fn try_lock<T: ?Sized>(m: &Inner<T>) -> Option<InnerGuard<'_, T>> {
        m.try_lock()
    }
    pub(super) fn get_mut<T: ?Sized>(m: &mut Inner<T>) -> &mut T {
        m.get_mut()
    }
    pub(super) fn into_inner<T>(m: Inner<T>) -> T {
        m.into_inner()
    }
}

/// The backend, one module per configuration with the same shape.
#[cfg(loom)]
mod backend {
    use std::sync::{PoisonError, TryLockError};

    pub(super) type Inner<T> = loom::sync::Mutex<T>;
    pub(super) type InnerGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    pub(super) fn lock<T: ?Sized>(m: &Inner<T>) -> InnerGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }
    pub(super) fn try_lock<T: ?Sized>(m: &Inner<T>) -> Option<InnerGuard<'_, T>> {
        match m.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
    pub(super) fn get_mut<T: ?Sized>(m: &mut Inner<T>) -> &mut T {
        m.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
    pub(super) fn into_inner<T>(m: Inner<T>) -> T {
        m.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A mutual-exclusion lock that busy-waits (`spinlock_t`).
///
/// Hold it briefly, never across a grace-period wait, and never on the fast path.
pub struct SpinLock<T: ?Sized> {
    inner: Inner<T>,
}

/// Proof of holding a [`SpinLock`]; unlocks on drop (`spin_unlock`).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct SpinLockGuard<'a, T: ?Sized> {
    inner: InnerGuard<'a, T>,
}

impl<T> SpinLock<T> {
    /// Creates an unlocked lock holding `value` (`DEFINE_SPINLOCK`). `const`, so statics can use it.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Self {
            inner: spin::Mutex::new(value),
        }
    }

    /// Creates an unlocked lock holding `value`. Not `const` under loom: loom's objects must be
    /// created inside each model execution.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self {
            inner: loom::sync::Mutex::new(value),
        }
    }

    /// Consumes the lock and returns the value.
    pub fn into_inner(self) -> T {
        backend::into_inner(self.inner)
    }
}

impl<T: ?Sized> SpinLock<T> {
    /// Acquires the lock, spinning until it is free (`spin_lock`).
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        SpinLockGuard {
            inner: backend::lock(&self.inner),
        }
    }

    /// Acquires the lock if it is free, without waiting (`spin_trylock`).
    pub fn try_lock(&self) -> Option<SpinLockGuard<'_, T>> {
        Some(SpinLockGuard {
            inner: backend::try_lock(&self.inner)?,
        })
    }

    /// Mutable access without locking: `&mut self` proves no one else holds the lock.
    pub fn get_mut(&mut self) -> &mut T {
        backend::get_mut(&mut self.inner)
    }
}

impl<T: Default> Default for SpinLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: ?Sized> fmt::Debug for SpinLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpinLock").finish_non_exhaustive()
    }
}

impl<T: ?Sized> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for SpinLockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    static COUNTER: SpinLock<u32> = SpinLock::new(0);

    #[test]
    fn lock_excludes_try_lock() {
        let lock = SpinLock::new(5);
        {
            let mut g = lock.lock();
            *g += 1;
            assert!(lock.try_lock().is_none());
        }
        assert_eq!(*lock.try_lock().expect("lock is free again"), 6);
        assert_eq!(lock.into_inner(), 6);
    }

    #[test]
    fn static_lock_counts_across_threads() {
        let before = *COUNTER.lock();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        *COUNTER.lock() += 1;
                    }
                });
            }
        });
        assert_eq!(*COUNTER.lock(), before + 2000);
    }
}
