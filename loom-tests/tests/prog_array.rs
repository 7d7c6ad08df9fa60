//! Loom models of the prog_array slot exchange against concurrent tail calls: the real
//! `kbpf::sync::RcuSlots` (the lock-free core of `ProgArray`) with a model payload standing for
//! a program.
//!
//! A payload's drop poisons a cell that readers read through the pointer they loaded from the
//! slot. If the old program's reference could be put while a tail call still holds its
//! pointer, loom reports the unordered read and write as a causality violation.
#![cfg(loom)]

use kbpf::sync::RcuSlots;
use kbpf::sync::rcu::RcuDomain;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

const POISON: u64 = 0xdead;

/// A program's body: loom tracks every access to it.
struct Body(UnsafeCell<u64>);

// SAFETY: the model's point is to find unsynchronized accesses; loom's `UnsafeCell` checks each
// `with`/`with_mut` against happens-before and fails the model on a race.
unsafe impl Sync for Body {}
// SAFETY: as above.
unsafe impl Send for Body {}

/// Stands for a program: a body whose bytes become poison when the last reference is put.
struct Prog {
    body: Arc<Body>,
}

impl Drop for Prog {
    fn drop(&mut self) {
        // SAFETY: loom checks this write against every read (see `Body`).
        self.body.0.with_mut(|v| unsafe { *v = POISON });
    }
}

fn prog(v: u64) -> (Arc<Prog>, Arc<Body>) {
    let body = Arc::new(Body(UnsafeCell::new(v)));
    (Arc::new(Prog { body: body.clone() }), body)
}

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b
}

/// A tail call on CPU `cpu`: load the slot once, and if it is filled, "run" the program.
fn tail_call(rcu: &RcuDomain, slots: &RcuSlots<Prog>, cpu: usize) -> Option<u64> {
    let _g = rcu.read_lock(cpu);
    let p = slots.get(0);
    if p.is_null() {
        return None;
    }
    // SAFETY: loaded inside a read-side section; `RcuSlots` puts removed references only after
    // a grace period.
    let prog: &Prog = unsafe { &*p };
    // SAFETY: loom-checked read (see `Body`).
    let v = prog.body.0.with(|v| unsafe { *v });
    assert_ne!(
        v, POISON,
        "tail call ran a program whose reference was already put"
    );
    Some(v)
}

#[test]
fn update_vs_tail_call() {
    builder().check(|| {
        let rcu = Arc::new(RcuDomain::new(2));
        let slots = Arc::new(RcuSlots::new(1).unwrap());
        let (a, a_body) = prog(1);
        assert!(!slots.xchg(&rcu, 0, Some(a)));
        let reader = {
            let (rcu, slots) = (rcu.clone(), slots.clone());
            thread::spawn(move || tail_call(&rcu, &slots, 0))
        };
        let (b, _) = prog(2);
        assert!(slots.xchg(&rcu, 0, Some(b)), "the old program was there");
        rcu.synchronize();
        let seen = reader.join().unwrap();
        assert!(matches!(seen, Some(1) | Some(2)));
        rcu.barrier();
        // SAFETY: loom-checked read (see `Body`).
        let old = a_body.0.with(|v| unsafe { *v });
        assert_eq!(
            old, POISON,
            "the old program was put after the grace period"
        );
    });
}

#[test]
fn delete_vs_tail_call() {
    builder().check(|| {
        let rcu = Arc::new(RcuDomain::new(2));
        let slots = Arc::new(RcuSlots::new(1).unwrap());
        let (a, a_body) = prog(1);
        slots.xchg(&rcu, 0, Some(a));
        let reader = {
            let (rcu, slots) = (rcu.clone(), slots.clone());
            thread::spawn(move || tail_call(&rcu, &slots, 0))
        };
        assert!(slots.xchg(&rcu, 0, None));
        assert!(
            !slots.xchg(&rcu, 0, None),
            "a second delete finds the slot empty"
        );
        // Reclaim without blocking, as a busy updater would: poll until the callback ran.
        while rcu.pending() > 0 {
            rcu.poll();
            loom::thread::yield_now();
        }
        assert!(matches!(reader.join().unwrap(), None | Some(1)));
        // SAFETY: loom-checked read (see `Body`).
        assert_eq!(a_body.0.with(|v| unsafe { *v }), POISON);
    });
}

#[test]
fn racing_updates_put_each_old_program_once() {
    builder().check(|| {
        let rcu = Arc::new(RcuDomain::new(3));
        let slots = Arc::new(RcuSlots::new(1).unwrap());
        let (a, _) = prog(1);
        slots.xchg(&rcu, 0, Some(a));
        let writer = {
            let (rcu, slots) = (rcu.clone(), slots.clone());
            thread::spawn(move || {
                let (c, _) = prog(3);
                slots.xchg(&rcu, 0, Some(c));
            })
        };
        let reader = {
            let (rcu, slots) = (rcu.clone(), slots.clone());
            thread::spawn(move || tail_call(&rcu, &slots, 1))
        };
        let (b, _) = prog(2);
        slots.xchg(&rcu, 0, Some(b));
        writer.join().unwrap();
        assert!(matches!(reader.join().unwrap(), Some(1..=3)));
        rcu.barrier();
        // Loom's leak check at the end of the execution fails if a reference was lost, and a
        // double put would poison a live body that the final read below sees.
        let left = tail_call(&rcu, &slots, 2).unwrap();
        assert!(left == 2 || left == 3);
    });
}
