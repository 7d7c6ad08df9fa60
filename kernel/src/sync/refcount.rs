//! A saturating reference count: the kernel's `refcount_t` (`include/linux/refcount.h`,
//! `lib/refcount.c`).
//!
//! Like the kernel's, the counter is a 32-bit signed value. Any operation that would overflow,
//! increment from zero (a use after free) or drop below zero instead pins the counter at
//! [`REFCOUNT_SATURATED`] and counts a warning (the kernel's `refcount_warn_saturate` WARNs
//! once): a saturated object leaks instead of being freed while still in use. The orderings are
//! the kernel's: increments are relaxed (the caller already holds a reference or a lock that
//! keeps the object alive), the final decrement is release and followed by an acquire fence, so
//! everything done through other references happens before the object is freed.

use super::atomic::{AtomicU32, Ordering, fence};
// A static counter cannot use the facade's atomics (loom's are not const-constructible), and it
// is a statistic, not part of any protocol a loom model checks.
use core::sync::atomic::{AtomicUsize as CoreAtomicUsize, Ordering as CoreOrdering};

/// The value a misused counter is pinned at (`REFCOUNT_SATURATED`, `INT_MIN / 2`): far from both
/// zero and overflow, so racing increments and decrements cannot bring it back to zero.
pub const REFCOUNT_SATURATED: u32 = (i32::MIN / 2) as u32;

static SATURATIONS: CoreAtomicUsize = CoreAtomicUsize::new(0);

/// How many times any [`Refcount`] was saturated since start (the kernel's
/// `refcount_t: saturated; leaking memory.` / `addition on 0; use-after-free.` warnings).
pub fn saturation_warnings() -> usize {
    SATURATIONS.load(CoreOrdering::Relaxed)
}

/// A reference count that saturates instead of wrapping (`refcount_t`).
pub struct Refcount {
    refs: AtomicU32,
}

impl Refcount {
    /// A counter starting at `n` (`refcount_set`/`REFCOUNT_INIT`).
    pub fn new(n: u32) -> Self {
        // INVARIANT: the count is the number of references handed out; a caller creating an
        // object with `n >= 1` holds them. Once a decrement brings it to zero (exactly one
        // `dec_and_test` returns true) no increment succeeds again: `inc_not_zero` refuses zero
        // and `inc` from zero saturates.
        Self {
            refs: AtomicU32::new(n),
        }
    }

    /// The current value (`refcount_read`). Racy by nature: for diagnostics and tests.
    pub fn read(&self) -> u32 {
        self.refs.load(Ordering::Relaxed)
    }

    /// True once the counter has been pinned at [`REFCOUNT_SATURATED`] by a misuse.
    pub fn is_saturated(&self) -> bool {
        (self.read() as i32) < 0
    }

    fn saturate(&self) {
        self.refs.store(REFCOUNT_SATURATED, Ordering::Relaxed);
        SATURATIONS.fetch_add(1, CoreOrdering::Relaxed);
    }

    /// Takes another reference (`refcount_inc`). The caller must already hold one; incrementing
    /// from zero is a use after free and saturates.
    pub fn inc(&self) {
        let old = self.refs.fetch_add(1, Ordering::Relaxed) as i32;
        if old <= 0 || old.checked_add(1).is_none() {
            self.saturate();
        }
    }

    /// Takes a reference unless the count is zero (`refcount_inc_not_zero`): the lookup side of
    /// an object found through an RCU-protected pointer that may be dying. A saturated counter
    /// stays saturated (and the reference is granted: the object is leaked, never freed).
    #[must_use = "on false no reference was taken"]
    pub fn inc_not_zero(&self) -> bool {
        let mut old = self.refs.load(Ordering::Relaxed);
        loop {
            if old == 0 {
                return false;
            }
            let new = old.wrapping_add(1);
            match self
                .refs
                .compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(cur) => old = cur,
            }
        }
        if (old as i32) < 0 || (old as i32).checked_add(1).is_none() {
            self.saturate();
        }
        true
    }

    /// Drops a reference; true if it was the last one and the caller must free the object
    /// (`refcount_dec_and_test`). Dropping below zero saturates and returns false.
    #[must_use = "on true the caller owns the object and must free it"]
    pub fn dec_and_test(&self) -> bool {
        let old = self.refs.fetch_sub(1, Ordering::Release) as i32;
        // INVARIANT: the decrement from 1 is a single atomic step, so exactly one caller sees
        // `old == 1` and owns the object from here on.
        if old == 1 {
            // Pairs with the release decrements of every other reference holder.
            fence(Ordering::Acquire);
            return true;
        }
        if old <= 0 {
            self.saturate();
        }
        false
    }
}

impl core::fmt::Debug for Refcount {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Refcount").field(&self.read()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn counts_up_and_down_to_zero() {
        let r = Refcount::new(1);
        r.inc();
        assert!(r.inc_not_zero());
        assert_eq!(r.read(), 3);
        assert!(!r.dec_and_test());
        assert!(!r.dec_and_test());
        assert!(r.dec_and_test());
        assert_eq!(r.read(), 0);
        assert!(!r.inc_not_zero());
        assert_eq!(r.read(), 0);
    }

    #[test]
    fn misuse_saturates_instead_of_wrapping() {
        let before = saturation_warnings();
        let uaf = Refcount::new(0);
        uaf.inc();
        assert!(uaf.is_saturated());
        assert_eq!(uaf.read(), REFCOUNT_SATURATED);

        let under = Refcount::new(0);
        assert!(!under.dec_and_test());
        assert_eq!(under.read(), REFCOUNT_SATURATED);

        let over = Refcount::new(i32::MAX as u32);
        over.inc();
        assert_eq!(over.read(), REFCOUNT_SATURATED);
        assert!(over.inc_not_zero());
        assert_eq!(over.read(), REFCOUNT_SATURATED);
        // A saturated counter never reaches zero again.
        assert!(!over.dec_and_test());
        assert!(over.is_saturated());
        assert!(saturation_warnings() >= before + 4);
    }

    #[test]
    fn concurrent_gets_and_puts_balance() {
        let r = Refcount::new(1);
        let lasts = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        assert!(r.inc_not_zero());
                        if r.dec_and_test() {
                            lasts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(lasts.into_inner(), 0);
        assert!(r.dec_and_test());
    }
}
