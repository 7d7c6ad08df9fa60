//! CPU slots that threads claim exclusively: how a host without a scheduler of its own gives
//! "CPUs" to threads.
//!
//! In the kernel a CPU is real and `preempt_disable()` (`include/linux/preempt.h`) pins the
//! running task to it; `smp_processor_id()` is then stable. A user-mode host has threads, not
//! CPUs, so it keeps `N` slots and a thread claims one before running programs and releases it
//! afterwards: while a thread holds slot `c`, no other thread runs as CPU `c`, which is exactly
//! what per-CPU state ([`super::percpu::PerCpu`]) and RCU reader slots ([`super::rcu`]) need.
//! Claiming is lock-free: one compare-and-swap on the slot's own cache-padded flag.

use super::atomic::{AtomicBool, Ordering};
use super::percpu::CachePadded;
use super::spin_loop;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::Cell;

/// A thread's nestable hold on a slot: what a host keeps per thread (in a thread-local) so
/// that its `Host::cpu_enter` may nest and returns the same CPU while nested
/// ([`CpuSlots::enter`], [`CpuSlots::exit`]).
#[derive(Debug, Default)]
pub struct Hold {
    cpu: Cell<usize>,
    nest: Cell<usize>,
}

impl Hold {
    /// Not holding anything.
    pub const fn new() -> Self {
        Hold {
            cpu: Cell::new(0),
            nest: Cell::new(0),
        }
    }

    /// The slot held and how deeply it was entered (0: none).
    pub fn get(&self) -> (usize, usize) {
        (self.cpu.get(), self.nest.get())
    }
}

/// A fixed set of `N` CPU slots, each held by at most one thread at a time.
pub struct CpuSlots {
    busy: Box<[CachePadded<AtomicBool>]>,
}

impl CpuSlots {
    /// `n` free slots, CPUs `0..n`.
    ///
    /// # Panics
    /// If `n == 0`: a host has at least one CPU.
    pub fn new(n: usize) -> Self {
        assert!(n > 0, "CpuSlots needs at least one CPU");
        let busy: Vec<_> = (0..n)
            .map(|_| CachePadded(AtomicBool::new(false)))
            .collect();
        Self {
            busy: busy.into_boxed_slice(),
        }
    }

    /// Number of slots (`nr_cpu_ids`).
    pub fn nr(&self) -> usize {
        self.busy.len()
    }

    /// Claims a free slot, trying `hint % nr` first and then the following ones in order, so
    /// threads with different hints spread out. `None` if every slot is held.
    ///
    /// The successful claim is an acquire: whatever the previous holder did on that CPU (per-CPU
    /// data it wrote) happens before what the new holder does.
    pub fn try_claim(&self, hint: usize) -> Option<usize> {
        let n = self.nr();
        (0..n).map(|i| (hint % n + i) % n).find(|&cpu| {
            let flag = &self.busy[cpu];
            // Test before test-and-set: a held slot costs a shared load, not a line transfer.
            !flag.load(Ordering::Relaxed)
                && flag
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
        })
    }

    /// Claims a slot, spinning until one is free (more threads than CPUs wait their turn).
    pub fn claim(&self, hint: usize) -> usize {
        loop {
            if let Some(cpu) = self.try_claim(hint) {
                return cpu;
            }
            spin_loop();
        }
    }

    /// Releases `cpu`, which the calling thread holds (release ordering, pairing with the next
    /// claim's acquire).
    ///
    /// # Panics
    /// If `cpu >= self.nr()`. Releasing a slot that is not held is a bug in the caller; debug
    /// builds assert it.
    pub fn release(&self, cpu: usize) {
        let was_busy = self.busy[cpu].swap(false, Ordering::Release);
        debug_assert!(was_busy, "CpuSlots::release({cpu}) of a slot nobody holds");
    }

    /// `Host::cpu_enter` for the thread whose hold is `hold`: claims a slot (trying `hint`
    /// first) on the outermost entry, and returns the held one on nested entries.
    pub fn enter(&self, hold: &Hold, hint: usize) -> usize {
        let nest = hold.nest.get();
        if nest == 0 {
            hold.cpu.set(self.claim(hint));
        }
        hold.nest.set(nest + 1);
        hold.cpu.get()
    }

    /// `Host::cpu_exit` of `cpu` for the thread whose hold is `hold`: releases the slot when
    /// the outermost entry ends. A call without a matching [`CpuSlots::enter`] is a bug in the
    /// caller: debug builds assert, release builds ignore it.
    pub fn exit(&self, hold: &Hold, cpu: usize) {
        let nest = hold.nest.get();
        debug_assert!(
            nest > 0 && hold.cpu.get() == cpu,
            "cpu_exit({cpu}) without a matching cpu_enter"
        );
        if nest == 0 {
            return;
        }
        hold.nest.set(nest - 1);
        if nest == 1 {
            self.release(hold.cpu.get());
        }
    }

    /// True if `cpu` is currently held by some thread (racy: for diagnostics and tests).
    pub fn is_claimed(&self, cpu: usize) -> bool {
        self.busy[cpu].load(Ordering::Relaxed)
    }
}

impl core::fmt::Debug for CpuSlots {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CpuSlots").field("nr", &self.nr()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn claims_follow_the_hint_and_exhaust() {
        let s = CpuSlots::new(3);
        assert_eq!(s.try_claim(4), Some(1));
        assert_eq!(s.try_claim(1), Some(2));
        assert_eq!(s.try_claim(1), Some(0));
        assert_eq!(s.try_claim(0), None);
        s.release(2);
        assert!(!s.is_claimed(2));
        assert_eq!(s.claim(0), 2);
    }

    #[test]
    fn holders_are_exclusive_under_contention() {
        let s = CpuSlots::new(2);
        let inside = [
            std::sync::atomic::AtomicUsize::new(0),
            std::sync::atomic::AtomicUsize::new(0),
        ];
        std::thread::scope(|scope| {
            for t in 0..4 {
                let (s, inside) = (&s, &inside);
                scope.spawn(move || {
                    for _ in 0..500 {
                        let cpu = s.claim(t);
                        let prev = inside[cpu].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        assert_eq!(prev, 0, "two threads on cpu {cpu}");
                        inside[cpu].fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        s.release(cpu);
                    }
                });
            }
        });
        assert!(!s.is_claimed(0) && !s.is_claimed(1));
    }
}
