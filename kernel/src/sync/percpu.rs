//! Per-CPU variables: the kernel's `DEFINE_PER_CPU` / `alloc_percpu` (`include/linux/percpu.h`,
//! `mm/percpu.c`), as a fixed array of cache-line padded slots indexed by CPU.
//!
//! A "CPU" is a slot a thread holds exclusively while it runs programs (see
//! [`crate::host::Host::cpu_enter`] and [`super::cpu::CpuSlots`]), so the holder may mutate its
//! own element without atomics — the kernel's `this_cpu_ptr()` under `preempt_disable()`.
//!
//! # Padding
//! Every element is aligned (and so padded) to 128 bytes, not 64: on x86-64 the L2 spatial
//! prefetcher fetches 64-byte lines in aligned pairs, so two CPUs writing neighbouring 64-byte
//! lines still contend. crossbeam's `CachePadded` makes the same choice for x86-64 and aarch64.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::fmt;
use core::ops::{Deref, DerefMut};

/// A value aligned and padded to 128 bytes so it never shares a (prefetched pair of) cache
/// line(s) with its neighbour (`____cacheline_aligned_in_smp`).
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
#[repr(align(128))]
pub struct CachePadded<T>(pub T);

impl<T> CachePadded<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Self(value)
    }
}

impl<T> Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for CachePadded<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// One `T` per CPU, each in its own padded cache line(s).
///
/// Shared access ([`PerCpu::get`], [`PerCpu::iter`]) is always allowed; `T` then needs interior
/// mutability (atomics) if several CPUs touch it, as per-CPU map values read by the control path
/// do. Plain mutation goes through [`PerCpu::get_mut`], whose contract is the kernel's: only the
/// thread holding that CPU, with no other reference to the element alive — or through the raw
/// pointer of [`PerCpu::as_ptr`], for holders that may nest (a CPU entered twice on one thread)
/// and so must not keep a `&mut` across the nesting.
pub struct PerCpu<T> {
    slots: Box<[CachePadded<UnsafeCell<T>>]>,
}

// SAFETY: the invariant of `PerCpu` is that a `&mut T` to an element exists only through
// `get_mut`, whose caller guarantees it holds that CPU and that no other reference to that element
// exists while the `&mut` lives. Every other access is a shared `&T`, handed to any thread, so `T`
// must be `Sync`; `get_mut` may be called from any thread holding the CPU, so `T` must be `Send`.
unsafe impl<T: Send + Sync> Sync for PerCpu<T> {}

impl<T> PerCpu<T> {
    /// Allocates `nr_cpus` elements, element `cpu` initialised with `init(cpu)` (`alloc_percpu`
    /// plus a `for_each_possible_cpu` init loop).
    pub fn new(nr_cpus: usize, mut init: impl FnMut(usize) -> T) -> Self {
        let slots: Vec<_> = (0..nr_cpus)
            .map(|cpu| CachePadded(UnsafeCell::new(init(cpu))))
            .collect();
        Self {
            slots: slots.into_boxed_slice(),
        }
    }

    /// Number of CPUs (elements).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Shared access to `cpu`'s element (`per_cpu_ptr(p, cpu)` for reading).
    ///
    /// # Panics
    /// If `cpu >= self.len()` — a CPU id outside the host's range is a bug in the caller.
    pub fn get(&self, cpu: usize) -> &T {
        // SAFETY: a shared reference may coexist only with other shared references; by the
        // `get_mut` contract no `&mut` to this element is alive while this `&T` is.
        unsafe { &*self.slots[cpu].get() }
    }

    /// Exclusive access to `cpu`'s element (`this_cpu_ptr()` with preemption disabled).
    ///
    /// # Safety
    /// The caller holds `cpu` (it entered it through the host and has not left) and no other
    /// reference to this element — shared or exclusive, from this or any thread — exists while
    /// the returned reference lives.
    ///
    /// # Panics
    /// If `cpu >= self.len()`.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_mut(&self, cpu: usize) -> &mut T {
        // SAFETY: exclusivity of this element is the caller's obligation (see `# Safety`).
        unsafe { &mut *self.as_ptr(cpu) }
    }

    /// A raw pointer to `cpu`'s element (`per_cpu_ptr`), creating no reference: valid for
    /// `self`'s life. Dereferencing it is the caller's business: exclusive access needs the
    /// [`PerCpu::get_mut`] conditions for as long as the access lasts, not for as long as the
    /// pointer is kept (see `cpu::Cpus::enter` for a holder whose guards nest).
    ///
    /// # Panics
    /// If `cpu >= self.len()`.
    #[inline]
    pub fn as_ptr(&self, cpu: usize) -> *mut T {
        self.slots[cpu].get()
    }

    /// Exclusive access through `&mut self`: no CPU can be using the variable.
    pub fn get_mut_exclusive(&mut self, cpu: usize) -> &mut T {
        self.slots[cpu].get_mut()
    }

    /// All elements in CPU order (`for_each_possible_cpu` + `per_cpu_ptr`).
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        (0..self.len()).map(move |cpu| self.get(cpu))
    }

    /// All elements mutably, through `&mut self`.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.slots.iter_mut().map(|slot| slot.0.get_mut())
    }
}

impl<T: fmt::Debug> fmt::Debug for PerCpu<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn elements_are_padded_apart() {
        let p = PerCpu::new(4, |cpu| cpu as u64 * 10);
        assert_eq!(p.len(), 4);
        let a = p.get(0) as *const u64 as usize;
        let b = p.get(1) as *const u64 as usize;
        assert_eq!(b - a, 128);
        assert_eq!(a % 128, 0);
        assert_eq!(p.iter().copied().collect::<Vec<_>>(), [0, 10, 20, 30]);
    }

    #[test]
    fn each_thread_mutates_its_own_cpu() {
        let p = PerCpu::new(2, |_| 0u64);
        std::thread::scope(|s| {
            for cpu in 0..2 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..1000 {
                        // SAFETY: each thread is the only user of its own `cpu` element and
                        // nothing reads the elements until the scope ends.
                        *unsafe { p.get_mut(cpu) } += cpu as u64 + 1;
                    }
                });
            }
        });
        assert_eq!(p.iter().copied().collect::<Vec<_>>(), [1000, 2000]);
    }

    #[test]
    fn shared_atomics_sum_across_cpus() {
        let mut p = PerCpu::new(3, |cpu| AtomicU64::new(cpu as u64));
        p.get(2).fetch_add(5, Ordering::Relaxed);
        let sum: u64 = p.iter().map(|v| v.load(Ordering::Relaxed)).sum();
        assert_eq!(sum, 8);
        *p.get_mut_exclusive(0).get_mut() = 7;
        assert_eq!(p.iter_mut().map(|v| *v.get_mut()).sum::<u64>(), 15);
    }
}
