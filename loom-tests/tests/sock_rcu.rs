//! Loom model of the socket lifetime protocol (`kbpf::net::rcu_obj`, `kbpf::net::rcu_chain`):
//! readers find a socket in an RCU-published table bucket and use it inside their read-side
//! section, or keep it past the section with a get-unless-zero reference, while the owner
//! closes it — unhash, put its reference, hand the dead list to `call_rcu` — and the grace
//! period frees it.
//!
//! The real `RcuChain`, `RcuHead`, `put` and `DeadList` run on an explicit `RcuDomain`; the
//! model socket's `free` poisons a loom cell instead of returning the memory (freed once the
//! model's threads are joined), so a reader still using the socket after the free shows as
//! loom's causality violation, or reads the poison.
#![cfg(loom)]

use kbpf::net::rcu_chain::RcuChain;
use kbpf::net::rcu_obj::{DeadList, RcuHead, RcuObj, put};
use kbpf::sync::rcu::RcuDomain;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

const LIVE: u64 = 7;
const POISON: u64 = 0xdead;

/// A socket: its head and a body readers read.
struct ModelSock {
    head: RcuHead<ModelSock>,
    body: UnsafeCell<u64>,
    frees: Arc<AtomicUsize>,
}

// SAFETY: the body is a loom cell whose accesses loom checks for races (the model's point);
// the head is atomics.
unsafe impl Sync for ModelSock {}
// SAFETY: as above.
unsafe impl Send for ModelSock {}

// SAFETY: `head` returns the same head; sockets are made with `Box::new` below and freed only
// through the dead list.
unsafe impl RcuObj for ModelSock {
    fn head(&self) -> &RcuHead<ModelSock> {
        &self.head
    }

    unsafe fn free(this: *mut ModelSock) {
        // SAFETY: the protocol guarantees no reader holds `this` any more: loom checks this
        // write against every read of the body.
        unsafe {
            (*this).body.with_mut(|v| *v = POISON);
            (*this).frees.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A bucket entry: the socket's address.
#[derive(Clone, Copy)]
struct Entry(*const ModelSock);
// SAFETY: the socket is `Sync` and outlives every reader of the bucket (the protocol).
unsafe impl Send for Entry {}
// SAFETY: as above.
unsafe impl Sync for Entry {}

fn read(sk: *const ModelSock) {
    // SAFETY: loom-checked read of the body; the memory itself lives until the model's end.
    let v = unsafe { (*sk).body.with(|v| *v) };
    assert_eq!(v, LIVE, "a reader saw a freed socket");
}

/// A model run's world: the domain (with `slots` reader slots), one bucket holding one live
/// socket, the dead list, and the count of frees.
struct World {
    rcu: Arc<RcuDomain>,
    bucket: Arc<RcuChain<Entry>>,
    dead: Arc<DeadList<ModelSock>>,
    frees: Arc<AtomicUsize>,
    sk: *mut ModelSock,
}

fn world(slots: usize) -> World {
    let rcu = Arc::new(RcuDomain::new(slots));
    let bucket = Arc::new(RcuChain::<Entry>::new());
    let frees = Arc::new(AtomicUsize::new(0));
    let sk = Box::into_raw(Box::new(ModelSock {
        head: RcuHead::new(),
        body: UnsafeCell::new(LIVE),
        frees: frees.clone(),
    }));
    bucket.try_update(&rcu, |v| v.push(Entry(sk))).unwrap();
    World {
        rcu,
        bucket,
        dead: Arc::new(DeadList::new()),
        frees,
        sk,
    }
}

impl World {
    /// The owner closes: unhash, put, queue the dead for a grace period, and drive the grace
    /// period (running the callbacks) while readers may still run.
    fn close(&self) {
        self.bucket.update(&self.rcu, |v| v.clear());
        // SAFETY: the owner's reference, after the unhash.
        unsafe { put(self.sk, &self.dead) };
        self.dead.reap(&self.rcu);
        self.rcu.barrier();
    }

    /// After the readers joined: whatever their puts queued is freed; the socket was freed
    /// exactly once; then its memory goes.
    fn finish(self) {
        self.dead.reap(&self.rcu);
        self.rcu.barrier();
        assert_eq!(self.frees.load(Ordering::Relaxed), 1, "freed exactly once");
        assert!(self.dead.is_empty());
        // SAFETY: the count is zero for good (no reference was resurrected).
        assert_eq!(unsafe { (*self.sk).head().count() }, 0);
        // SAFETY: every thread is joined and the socket was "freed" (poisoned) once: the
        // memory goes now.
        drop(unsafe { Box::from_raw(self.sk) });
    }
}

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b
}

/// Two readers (one using the socket inside its section only, one keeping it with
/// get-unless-zero past the section and putting it after) against the owner's close: the
/// socket is freed exactly once, after both are done with it.
#[test]
fn lookup_get_unless_zero_races_close_and_free() {
    builder().check(|| {
        let w = world(2);
        let section_only = {
            let (rcu, bucket) = (w.rcu.clone(), w.bucket.clone());
            thread::spawn(move || {
                let g = rcu.read_lock(0);
                if let Some(e) = bucket.read(&g).first() {
                    read(e.0);
                }
            })
        };
        let keeper = {
            let (rcu, bucket, dead) = (w.rcu.clone(), w.bucket.clone(), w.dead.clone());
            thread::spawn(move || {
                let g = rcu.read_lock(1);
                // SAFETY: a socket read from the bucket inside the section is allocated.
                let held = bucket
                    .read(&g)
                    .first()
                    .map(|e| e.0)
                    .filter(|&p| unsafe { (*p).get_unless_zero() });
                drop(g);
                if let Some(p) = held {
                    read(p);
                    // SAFETY: the reference get_unless_zero took, given up.
                    unsafe { put(p, &dead) };
                }
            })
        };
        w.close();
        section_only.join().unwrap();
        keeper.join().unwrap();
        w.finish();
    });
}

/// A reader that comes after the unhash finds nothing; one whose get-unless-zero comes after
/// the last put fails it and does not resurrect the socket.
#[test]
fn a_dying_socket_is_never_resurrected() {
    builder().check(|| {
        let w = world(1);
        let reader = {
            let (rcu, bucket, dead) = (w.rcu.clone(), w.bucket.clone(), w.dead.clone());
            thread::spawn(move || {
                let g = rcu.read_lock(0);
                let held = bucket.read(&g).first().map(|e| e.0);
                // SAFETY: read from the bucket inside the section: allocated.
                if let Some(p) = held.filter(|&p| unsafe { (*p).get_unless_zero() }) {
                    read(p);
                    // SAFETY: the reference just taken.
                    unsafe { put(p, &dead) };
                }
                drop(g);
            })
        };
        w.close();
        reader.join().unwrap();
        w.finish();
    });
}
