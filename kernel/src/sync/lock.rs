//! A spin lock for the control path (`spinlock_t`): `spin::Mutex`, or loom's mutex under loom.

#[cfg(not(loom))]
pub use spin::{Mutex as SpinLock, MutexGuard as SpinLockGuard};

#[cfg(loom)]
pub use loom::sync::{Mutex as SpinLock, MutexGuard as SpinLockGuard};
