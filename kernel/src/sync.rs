//! Synchronization: the one facade over `core` and `loom` atomics, and the kernel primitives built
//! on it.
//!
//! Everything else in the crate takes atomics, `Arc`, locks and spin hints from here, so a
//! `--cfg loom` build swaps in loom's model types and the loom models in `loom-tests/` check the
//! real code. Mirrors the kernel's `include/linux/atomic.h`, `rcupdate.h`, `percpu.h` and
//! `refcount.h` idioms.

/// Atomics: `core::sync::atomic`, or loom's under `--cfg loom`.
pub mod atomic {
    #[cfg(not(loom))]
    pub use core::sync::atomic::{
        AtomicBool, AtomicI64, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
        fence,
    };
    #[cfg(loom)]
    pub use loom::sync::atomic::{
        AtomicBool, AtomicI64, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
        fence,
    };
}

/// Reference-counted shared ownership (`alloc::sync::Arc`, or loom's).
#[cfg(not(loom))]
pub use alloc::sync::Arc;
#[cfg(loom)]
pub use loom::sync::Arc;

/// A busy-wait hint; under loom a yield, so models with spin loops terminate.
#[inline]
pub fn spin_loop() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

pub mod cpu;
pub mod freelist;
mod lock;
pub mod percpu;
pub mod rcu;
pub mod refcount;
pub mod slots;

pub use lock::{SpinLock, SpinLockGuard};
pub use slots::RcuSlots;
