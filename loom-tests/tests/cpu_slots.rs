//! Loom model of `kbpf::sync::cpu::CpuSlots`: the shim's "a thread holds its CPU exclusively"
//! protocol. Per-CPU state written by the holder is a loom cell, so two threads that believed
//! they held the same CPU at once would be reported as a data race.
#![cfg(loom)]

use kbpf::sync::cpu::CpuSlots;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

/// Per-CPU data only the CPU's holder may touch.
struct PerCpuData(Vec<UnsafeCell<u64>>);

// SAFETY: the model checks that every access happens while holding the CPU; loom's cells
// report any pair of accesses not ordered by happens-before.
unsafe impl Sync for PerCpuData {}
// SAFETY: as above.
unsafe impl Send for PerCpuData {}

fn work(slots: &CpuSlots, data: &PerCpuData, hint: usize) -> usize {
    let cpu = slots.claim(hint);
    // SAFETY: loom-checked access (see `PerCpuData`).
    data.0[cpu].with_mut(|v| unsafe { *v += 1 });
    slots.release(cpu);
    cpu
}

#[test]
fn holders_of_a_cpu_are_exclusive() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let slots = Arc::new(CpuSlots::new(2));
        let data = Arc::new(PerCpuData((0..2).map(|_| UnsafeCell::new(0)).collect()));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (s, d) = (slots.clone(), data.clone());
                // Both threads prefer CPU 0, so they contend for it.
                thread::spawn(move || work(&s, &d, 0))
            })
            .collect();
        work(&slots, &data, 1);
        for t in ts {
            t.join().unwrap();
        }
        // SAFETY: every thread has joined.
        let total: u64 = data.0.iter().map(|c| c.with(|v| unsafe { *v })).sum();
        assert_eq!(total, 3);
        assert!(!slots.is_claimed(0) && !slots.is_claimed(1));
    });
}
