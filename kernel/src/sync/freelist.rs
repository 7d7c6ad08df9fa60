//! Per-CPU free lists of preallocated elements (Linux `kernel/bpf/percpu_freelist.c`, the
//! `pcpu_freelist` a preallocated hash map takes its elements from).
//!
//! Elements are indices `0..n`. Each CPU has its own list, a lock-free stack (Treiber) whose
//! head packs the top element (index + 1, 0 for empty) with a tag bumped by every push and pop,
//! so a head seen twice in a row means nothing moved in between (no ABA); the links live in one
//! array beside the heads. A CPU pushes onto and pops from its own list, touching no shared line
//! and taking no lock — where the kernel's lists take a per-CPU spin lock — and steals from the
//! others only when its own is empty, so the lists drain evenly before any pop fails.
//!
//! The CPU index is a hint: any thread may use any list, since every operation is a CAS on the
//! list's head. Using the CPU it holds keeps the list's lines in that CPU's cache.

use super::atomic::{AtomicU32, AtomicU64, Ordering};
use super::percpu::PerCpu;
use crate::{Errno, Result};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// A set of free element indices, spread over per-CPU lists.
pub struct PcpuFreelist {
    heads: PerCpu<AtomicU64>,
    /// Per element: index + 1 of the element below it in its list (0: the bottom).
    next: Box<[AtomicU32]>,
}

const fn pack(tag: u32, top: u32) -> u64 {
    (tag as u64) << 32 | top as u64
}

impl PcpuFreelist {
    /// Room for elements `0..capacity`, of which `0..n` start free, in contiguous runs over
    /// `nr_cpus` lists (`pcpu_freelist_populate`). `E2BIG` past `u32::MAX - 1` elements.
    pub fn new(nr_cpus: usize, n: usize, capacity: usize) -> Result<PcpuFreelist> {
        let nr = nr_cpus.max(1);
        if capacity >= u32::MAX as usize || n > capacity {
            return Err(Errno::E2BIG);
        }
        let mut next = Vec::new();
        next.try_reserve_exact(capacity)?;
        let per = n.div_ceil(nr).max(1);
        // Element i links to i + 1 inside its CPU's run; the last of a run is the bottom.
        next.extend((0..capacity).map(|i| {
            let below = if (i + 1) % per == 0 || i + 1 >= n {
                0
            } else {
                i as u32 + 2
            };
            AtomicU32::new(below)
        }));
        let heads = PerCpu::new(nr, |cpu| {
            let first = cpu * per;
            AtomicU64::new(if first < n {
                pack(0, first as u32 + 1)
            } else {
                0
            })
        });
        Ok(PcpuFreelist {
            heads,
            next: next.into_boxed_slice(),
        })
    }

    fn list(&self, cpu: usize) -> &AtomicU64 {
        self.heads.get(cpu % self.heads.len())
    }

    /// Returns element `idx` (not in any list, below the constructor's `capacity`) to `cpu`'s list
    /// (`__pcpu_freelist_push`).
    pub fn push(&self, cpu: usize, idx: u32) {
        let head = self.list(cpu);
        let mut h = head.load(Ordering::Relaxed);
        loop {
            self.next[idx as usize].store(h as u32, Ordering::Relaxed);
            // Release: a pop that acquires this head sees the link just written.
            // INVARIANT: a head names an element whose `next` link is its successor in the
            // list; `idx` is in no list until this CAS publishes it.
            match head.compare_exchange_weak(
                h,
                pack(((h >> 32) as u32).wrapping_add(1), idx + 1),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => h = now,
            }
        }
    }

    fn pop_from(&self, head: &AtomicU64) -> Option<u32> {
        let mut h = head.load(Ordering::Acquire);
        loop {
            let top = h as u32;
            if top == 0 {
                return None;
            }
            // Possibly stale if another thread popped `top` meanwhile; then the tag moved and
            // the CAS below fails.
            let below = self.next[top as usize - 1].load(Ordering::Relaxed);
            match head.compare_exchange_weak(
                h,
                pack(((h >> 32) as u32).wrapping_add(1), below),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(top - 1),
                Err(now) => h = now,
            }
        }
    }

    /// Takes a free element: from `cpu`'s list, else from the other CPUs' in turn
    /// (`__pcpu_freelist_pop`); `None` when every list is empty.
    pub fn pop(&self, cpu: usize) -> Option<u32> {
        let nr = self.heads.len();
        (0..nr).find_map(|k| self.pop_from(self.list(cpu + k)))
    }
}

impl core::fmt::Debug for PcpuFreelist {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PcpuFreelist")
            .field("cpus", &self.heads.len())
            .field("elements", &self.next.len())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn drain(f: &PcpuFreelist, cpu: usize) -> Vec<u32> {
        core::iter::from_fn(|| f.pop(cpu)).collect()
    }

    #[test]
    fn every_element_comes_out_once_from_any_cpu() {
        for (cpus, n) in [(1, 5), (2, 5), (4, 3), (3, 0), (2, 1)] {
            let f = PcpuFreelist::new(cpus, n, n + 2).unwrap();
            let mut got = drain(&f, 1);
            got.sort_unstable();
            assert_eq!(got, (0..n as u32).collect::<Vec<_>>(), "{cpus} cpus, {n}");
            assert_eq!(f.pop(0), None);
        }
    }

    #[test]
    fn a_cpu_takes_its_own_elements_first_and_gets_back_what_it_pushed() {
        let f = PcpuFreelist::new(2, 4, 6).unwrap();
        // CPU 1's run is 2, 3.
        assert_eq!(f.pop(1), Some(2));
        f.push(1, 2);
        assert_eq!(f.pop(1), Some(2));
        assert_eq!(f.pop(1), Some(3));
        // Then it steals CPU 0's.
        assert_eq!(f.pop(1), Some(0));
        f.push(0, 3);
        // An element past the initial ones (a hash map's spare) can be pushed too.
        f.push(0, 5);
        assert_eq!(drain(&f, 0), [5, 3, 1]);
    }
}
