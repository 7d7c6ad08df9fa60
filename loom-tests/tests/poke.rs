//! Loom model of the direct tail-call protocol of `kbpf::maps::ProgArray`'s poke table
//! (`kernel/src/maps/prog_array/poke.rs`): a slot writer re-points the direct site first and
//! only then `xchg`es the real `kbpf::sync::RcuSlots` slot, whose old reference is put after a
//! grace period; a CPU running the caller jumps through the site without any lock.
//!
//! The patched 5 bytes are modelled as an atomic pointer: the poke is a release store followed
//! by a SeqCst fence — weaker than the host's `text_poke`, whose membarrier serializes every
//! CPU before it returns — and the jump is an acquire load inside the reader's read-side
//! section. A program's drop poisons its body; a run that jumps into a put program reads the
//! poison (or loom reports the unordered accesses).
#![cfg(loom)]

use kbpf::sync::RcuSlots;
use kbpf::sync::rcu::RcuDomain;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicPtr, Ordering, fence};
use loom::thread;

const POISON: u64 = 0xdead;

/// A program's code: loom tracks every access to it.
struct Body(UnsafeCell<u64>);

// SAFETY: loom's `UnsafeCell` checks each access against happens-before and fails the model on
// a race; that is the point of the model.
unsafe impl Sync for Body {}
// SAFETY: as above.
unsafe impl Send for Body {}

/// Stands for a program: a body poisoned when the last reference is put.
struct Prog {
    body: Arc<Body>,
}

impl Drop for Prog {
    fn drop(&mut self) {
        // SAFETY: loom-checked write (see `Body`).
        self.body.0.with_mut(|v| unsafe { *v = POISON });
    }
}

fn prog(v: u64) -> (Arc<Prog>, Arc<Body>) {
    let body = Arc::new(Body(UnsafeCell::new(v)));
    (Arc::new(Prog { body: body.clone() }), body)
}

/// The direct site: null = falls through, else the program it jumps to.
struct Site(AtomicPtr<Prog>);

impl Site {
    /// `text_poke`: new bytes, then every CPU serialized.
    fn poke(&self, to: Option<&Arc<Prog>>) {
        let p = to.map_or(core::ptr::null_mut(), |p| Arc::as_ptr(p) as *mut Prog);
        self.0.store(p, Ordering::Release);
        fence(Ordering::SeqCst);
    }
}

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b
}

/// A JIT'd run on CPU `cpu` reaching the direct site: jump if it points somewhere.
fn run(rcu: &RcuDomain, site: &Site, cpu: usize) -> Option<u64> {
    let _g = rcu.read_lock(cpu);
    let p = site.0.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: the protocol under test: the site was re-pointed before the slot's old
    // reference went to `call_rcu`, so a program reached here outlives this section.
    let v = unsafe { &*p }.body.0.with(|v| unsafe { *v });
    assert_ne!(v, POISON, "a direct jump reached a program already put");
    Some(v)
}

/// The writer's side of `ProgArray::update`/`delete`: poke, then `xchg` (the slot's lock is
/// implicit: one writer).
fn write(rcu: &RcuDomain, slots: &RcuSlots<Prog>, site: &Site, new: Option<Arc<Prog>>) {
    site.poke(new.as_ref());
    slots.xchg(rcu, 0, new);
}

#[test]
fn replace_then_delete_vs_direct_jump() {
    builder().check(|| {
        let rcu = Arc::new(RcuDomain::new(2));
        let slots = Arc::new(RcuSlots::new(1).unwrap());
        let site = Arc::new(Site(AtomicPtr::new(core::ptr::null_mut())));
        let (a, a_body) = prog(1);
        write(&rcu, &slots, &site, Some(a));
        let reader = {
            let (rcu, site) = (rcu.clone(), site.clone());
            thread::spawn(move || (run(&rcu, &site, 0), run(&rcu, &site, 0)))
        };
        // Grace periods may end on any thread at any time, here between the writer's steps.
        let reclaimer = {
            let rcu = rcu.clone();
            thread::spawn(move || {
                rcu.poll();
            })
        };
        let (b, b_body) = prog(2);
        write(&rcu, &slots, &site, Some(b));
        write(&rcu, &slots, &site, None);
        reclaimer.join().unwrap();
        // Reclaim the rest without blocking, as a busy updater would.
        while rcu.pending() > 0 {
            rcu.poll();
            thread::yield_now();
        }
        let (first, second) = reader.join().unwrap();
        assert!(matches!(first, None | Some(1) | Some(2)));
        assert!(matches!(second, None | Some(1) | Some(2)));
        // SAFETY: loom-checked reads (see `Body`).
        assert_eq!(a_body.0.with(|v| unsafe { *v }), POISON);
        // SAFETY: as above.
        assert_eq!(b_body.0.with(|v| unsafe { *v }), POISON);
    });
}

#[test]
fn fill_vs_direct_jump() {
    builder().check(|| {
        let rcu = Arc::new(RcuDomain::new(2));
        let slots = Arc::new(RcuSlots::new(1).unwrap());
        let site = Arc::new(Site(AtomicPtr::new(core::ptr::null_mut())));
        let reader = {
            let (rcu, site) = (rcu.clone(), site.clone());
            thread::spawn(move || run(&rcu, &site, 1))
        };
        let (a, _) = prog(7);
        write(&rcu, &slots, &site, Some(a));
        assert!(matches!(reader.join().unwrap(), None | Some(7)));
        write(&rcu, &slots, &site, None);
        rcu.barrier();
    });
}
