//! Loom models of `kbpf::sync::rcu` (the kernel's `rcu_read_lock`/`synchronize_rcu`/`call_rcu`
//! contract, `Documentation/RCU/whatisRCU.rst`).
//!
//! The protected object is a `loom::cell::UnsafeCell`: readers read it inside a read-side
//! section, the updater writes (poisons) it after the grace period, and loom reports any read
//! and write not ordered by happens-before as a causality violation — the model's use-after-free.
#![cfg(loom)]

use kbpf::sync::rcu::RcuDomain;
use kbpf_loom::SendPtr;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence};
use loom::thread;

const POISON: u64 = 0xdead;

fn builder(preemptions: usize) -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(preemptions);
    b
}

/// An RCU-protected object: a value and nothing else.
struct Obj(UnsafeCell<u64>);

fn new_obj(v: u64) -> *mut Obj {
    Box::into_raw(Box::new(Obj(UnsafeCell::new(v))))
}

/// Reads the current object inside a section on `slot`; the value must be a live one.
fn reader(rcu: &RcuDomain, ptr: &AtomicPtr<Obj>, slot: usize) {
    let _g = rcu.read_lock(slot);
    let p = ptr.load(Ordering::Acquire);
    // SAFETY: `p` was published and, by the protocol under test, is not freed before this
    // section ends.
    let v = unsafe { (*p).0.with(|v| *v) };
    assert!(v == 1 || v == 2, "read {v:#x}: object freed under a reader");
}

/// Poisons an unpublished object: the write that stands for freeing it. The memory itself is
/// released only at the end of the model ([`free_obj`]), so a protocol bug shows up as loom's
/// causality violation on this write rather than as a real use after free.
///
/// # Safety
/// `old` came from `new_obj` and is still allocated.
unsafe fn poison_obj(old: *mut Obj) {
    // SAFETY: allocated (caller); exclusivity against readers is what loom checks.
    unsafe { (*old).0.with_mut(|v| *v = POISON) };
}

/// Frees an object once every thread of the model has been joined.
///
/// # Safety
/// `p` came from `new_obj`, is freed once, and no thread uses it any more.
unsafe fn free_obj(p: *mut Obj) {
    // SAFETY: the caller's contract.
    drop(unsafe { Box::from_raw(p) });
}

/// (a) An updater replaces the object, waits for a grace period with `synchronize`, then
/// poisons and frees the old one, while two readers on two CPUs (one nesting) dereference it.
#[test]
fn synchronize_then_free_never_races_a_reader() {
    builder(2).check(|| {
        let rcu = Arc::new(RcuDomain::new(2));
        let ptr = Arc::new(AtomicPtr::new(new_obj(1)));
        let readers: Vec<_> = (0..2)
            .map(|slot| {
                let (rcu, ptr) = (rcu.clone(), ptr.clone());
                thread::spawn(move || {
                    if slot == 1 {
                        let _outer = rcu.read_lock(slot);
                        reader(&rcu, &ptr, slot);
                    } else {
                        reader(&rcu, &ptr, slot);
                    }
                })
            })
            .collect();
        let old = ptr.swap(new_obj(2), Ordering::AcqRel);
        rcu.synchronize();
        // SAFETY: still allocated; unpublished, and a grace period has elapsed.
        unsafe { poison_obj(old) };
        for r in readers {
            r.join().unwrap();
        }
        // SAFETY: every thread is joined; each object is freed once.
        unsafe {
            free_obj(old);
            free_obj(ptr.load(Ordering::Relaxed));
        }
    });
}

/// (b) `synchronize` waits for every read-side section that began before it: if the updater
/// saw a reader inside its section before calling it, the reader's later writes inside that
/// section are visible once `synchronize` returns (and nested sections count as one).
#[test]
fn synchronize_waits_for_preexisting_readers() {
    builder(3).check(|| {
        let rcu = Arc::new(RcuDomain::new(2));
        let entered = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
        let leaving = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
        let readers: Vec<_> = (0..2)
            .map(|slot| {
                let (rcu, entered, leaving) = (rcu.clone(), entered.clone(), leaving.clone());
                thread::spawn(move || {
                    let outer = rcu.read_lock(slot);
                    let inner = rcu.read_lock(slot);
                    entered[slot].store(true, Ordering::Relaxed);
                    drop(inner);
                    leaving[slot].store(true, Ordering::Relaxed);
                    drop(outer);
                })
            })
            .collect();
        let saw: Vec<bool> = entered.iter().map(|e| e.load(Ordering::Relaxed)).collect();
        rcu.synchronize();
        for slot in 0..2 {
            if saw[slot] {
                assert!(
                    leaving[slot].load(Ordering::Relaxed),
                    "synchronize returned inside a reader that began before it (slot {slot})"
                );
            }
        }
        for r in readers {
            r.join().unwrap();
        }
    });
}

/// (c) `call_rcu` + `poll`: the callback that poisons and frees the old object runs only after
/// every reader that could hold it has left; `poll` may run it early only when that is safe.
/// After the readers are gone, `barrier` runs it for sure.
#[test]
fn call_rcu_runs_after_preexisting_readers() {
    builder(2).check(|| {
        let rcu = Arc::new(RcuDomain::new(2));
        let ptr = Arc::new(AtomicPtr::new(new_obj(1)));
        let ran = Arc::new(AtomicUsize::new(0));
        let readers: Vec<_> = (0..2)
            .map(|slot| {
                let (rcu, ptr) = (rcu.clone(), ptr.clone());
                thread::spawn(move || reader(&rcu, &ptr, slot))
            })
            .collect();
        let old = SendPtr(ptr.swap(new_obj(2), Ordering::AcqRel));
        let ran2 = ran.clone();
        rcu.call_rcu(Box::new(move || {
            let old = old;
            // SAFETY: still allocated; unpublished before `call_rcu`, and callbacks run after
            // a grace period.
            unsafe { poison_obj(old.0) };
            ran2.fetch_add(1, Ordering::Relaxed);
        }));
        let early = rcu.poll();
        for r in readers {
            r.join().unwrap();
        }
        rcu.barrier();
        assert_eq!(ran.load(Ordering::Relaxed), 1);
        assert!(early <= 1);
        assert_eq!(rcu.pending(), 0);
        // SAFETY: every thread is joined and the callback ran; each object is freed once.
        unsafe {
            free_obj(old.0);
            free_obj(ptr.load(Ordering::Relaxed));
        }
    });
}

/// (c') A grace period driven from another CPU: one thread queues the callback, another polls
/// while a reader runs. The callback must never run concurrently with a reader holding the
/// object.
#[test]
fn call_rcu_polled_from_another_thread() {
    builder(2).check(|| {
        let rcu = Arc::new(RcuDomain::new(1));
        let ptr = Arc::new(AtomicPtr::new(new_obj(1)));
        let r = {
            let (rcu, ptr) = (rcu.clone(), ptr.clone());
            thread::spawn(move || reader(&rcu, &ptr, 0))
        };
        let poller = {
            let rcu = rcu.clone();
            thread::spawn(move || {
                rcu.poll();
            })
        };
        let old = SendPtr(ptr.swap(new_obj(2), Ordering::AcqRel));
        rcu.call_rcu(Box::new(move || {
            let old = old;
            // SAFETY: still allocated; unpublished before `call_rcu`, and callbacks run after
            // a grace period.
            unsafe { poison_obj(old.0) };
        }));
        r.join().unwrap();
        poller.join().unwrap();
        rcu.barrier();
        assert_eq!(rcu.pending(), 0);
        // SAFETY: every thread is joined and the callback ran; each object is freed once.
        unsafe {
            free_obj(old.0);
            free_obj(ptr.load(Ordering::Relaxed));
        }
    });
}

/// (c'') A grace period that another CPU is running while the callback is queued: its epoch
/// bump may land after the seal even though its scan is racing with `call_rcu`. This is the
/// case `call_rcu`'s own SeqCst fence exists for.
#[test]
fn call_rcu_during_a_concurrent_synchronize() {
    builder(2).check(|| {
        let rcu = Arc::new(RcuDomain::new(1));
        let ptr = Arc::new(AtomicPtr::new(new_obj(1)));
        let r = {
            let (rcu, ptr) = (rcu.clone(), ptr.clone());
            thread::spawn(move || reader(&rcu, &ptr, 0))
        };
        let other = {
            let rcu = rcu.clone();
            thread::spawn(move || rcu.synchronize())
        };
        let old = SendPtr(ptr.swap(new_obj(2), Ordering::AcqRel));
        rcu.call_rcu(Box::new(move || {
            let old = old;
            // SAFETY: still allocated; unpublished before `call_rcu`, and callbacks run after
            // a grace period.
            unsafe { poison_obj(old.0) };
        }));
        r.join().unwrap();
        other.join().unwrap();
        rcu.barrier();
        assert_eq!(rcu.pending(), 0);
        // SAFETY: every thread is joined and the callback ran; each object is freed once.
        unsafe {
            free_obj(old.0);
            free_obj(ptr.load(Ordering::Relaxed));
        }
    });
}

/// A private copy of the reader/updater protocol with a switch for the updater's SeqCst fence,
/// to show the models can catch the bug the fence prevents.
struct MiniRcu {
    epoch: AtomicU64,
    slot: AtomicU64,
    writer_fence: bool,
}

impl MiniRcu {
    fn read(&self, ptr: &AtomicPtr<Obj>) {
        let e = self.epoch.load(Ordering::Acquire);
        self.slot.store(e << 1 | 1, Ordering::Release);
        fence(Ordering::SeqCst);
        let p = ptr.load(Ordering::Acquire);
        // SAFETY: as in `reader`; this is exactly what the model checks.
        unsafe { (*p).0.with(|v| assert_ne!(*v, POISON)) };
        self.slot.store(0, Ordering::Release);
    }

    fn synchronize(&self) {
        let new = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        if self.writer_fence {
            fence(Ordering::SeqCst);
        }
        loop {
            let v = self.slot.load(Ordering::Acquire);
            if v & 1 == 0 || v >> 1 >= new {
                break;
            }
            thread::yield_now();
        }
    }
}

fn mini_model(writer_fence: bool) {
    builder(2).check(move || {
        let rcu = Arc::new(MiniRcu {
            epoch: AtomicU64::new(1),
            slot: AtomicU64::new(0),
            writer_fence,
        });
        let ptr = Arc::new(AtomicPtr::new(new_obj(1)));
        let r = {
            let (rcu, ptr) = (rcu.clone(), ptr.clone());
            thread::spawn(move || rcu.read(&ptr))
        };
        let old = ptr.swap(new_obj(2), Ordering::AcqRel);
        rcu.synchronize();
        // SAFETY: still allocated; whether a reader may hold it is what the model decides.
        unsafe { poison_obj(old) };
        r.join().unwrap();
        // SAFETY: every thread is joined; each object is freed once.
        unsafe {
            free_obj(old);
            free_obj(ptr.load(Ordering::Relaxed));
        }
    });
}

/// (d) Control: the protocol with both fences passes...
#[test]
fn mini_protocol_with_fences_is_clean() {
    mini_model(true);
}

/// (d) ...and without the updater's fence loom finds the store-buffering interleaving in which
/// the updater misses the reader and frees the object under it.
#[test]
#[should_panic(expected = "Causality violation")]
fn mini_protocol_without_writer_fence_is_caught() {
    mini_model(false);
}
