//! Loom model of the per-CPU free lists (`kbpf::sync::freelist::PcpuFreelist`, the hash map's
//! `pcpu_freelist`): threads pop and push on their own list and steal from the other's while it
//! runs dry. No element may be handed out twice at the same time, and every element must be back
//! once the threads are done.
#![cfg(loom)]

use kbpf::sync::freelist::PcpuFreelist;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b
}

#[test]
fn pops_and_pushes_on_two_cpus_keep_every_element_once() {
    builder().check(|| {
        // Three elements: CPU 0's run is 0, 1; CPU 1's is 2.
        let f = Arc::new(PcpuFreelist::new(2, 3, 3).unwrap());
        let taken: Arc<Vec<AtomicBool>> =
            Arc::new((0..3).map(|_| AtomicBool::new(false)).collect());
        let worker = |cpu: usize| {
            let (f, taken) = (f.clone(), taken.clone());
            thread::spawn(move || {
                // Two pops in a row: CPU 1 empties its list and steals from CPU 0's.
                let got: Vec<u32> = (0..2).filter_map(|_| f.pop(cpu)).collect();
                for &i in &got {
                    let was = taken[i as usize].swap(true, Ordering::Relaxed);
                    assert!(!was, "element {i} handed out twice");
                }
                for &i in &got {
                    taken[i as usize].store(false, Ordering::Relaxed);
                    f.push(cpu, i);
                }
                got.len()
            })
        };
        let (a, b) = (worker(0), worker(1));
        let n = a.join().unwrap() + b.join().unwrap();
        assert!(
            n >= 3,
            "three elements, four pops: at most one may find the lists empty"
        );
        let mut all: Vec<u32> = std::iter::from_fn(|| f.pop(0)).collect();
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2]);
    });
}
