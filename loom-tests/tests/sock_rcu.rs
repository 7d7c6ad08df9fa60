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
        let rcu = Arc::new(RcuDomain::new(2));
        let bucket = Arc::new(RcuChain::<Entry>::new());
        let dead = Arc::new(DeadList::<ModelSock>::new());
        let frees = Arc::new(AtomicUsize::new(0));
        let sk = Box::into_raw(Box::new(ModelSock {
            head: RcuHead::new(),
            body: UnsafeCell::new(LIVE),
            frees: frees.clone(),
        }));
        bucket.try_update(&rcu, |v| v.push(Entry(sk))).unwrap();

        let section_only = {
            let (rcu, bucket) = (rcu.clone(), bucket.clone());
            thread::spawn(move || {
                let g = rcu.read_lock(0);
                if let Some(e) = bucket.read(&g).first() {
                    read(e.0);
                }
            })
        };
        let keeper = {
            let (rcu, bucket, dead) = (rcu.clone(), bucket.clone(), dead.clone());
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

        // The owner closes: unhash, put, queue the dead for a grace period, and drives the
        // grace period (running the callbacks) while the readers run.
        bucket.update(&rcu, |v| v.clear());
        // SAFETY: the owner's reference, after the unhash.
        unsafe { put(sk, &dead) };
        dead.reap(&rcu);
        rcu.barrier();

        section_only.join().unwrap();
        keeper.join().unwrap();
        // A reader's last put may have queued it after the owner's reap.
        dead.reap(&rcu);
        rcu.barrier();
        assert_eq!(frees.load(Ordering::Relaxed), 1, "freed exactly once");
        assert!(dead.is_empty());
        // SAFETY: every thread is joined and the socket was "freed" (poisoned) once: the
        // memory goes now.
        drop(unsafe { Box::from_raw(sk) });
    });
}

/// A reader that comes after the unhash finds nothing; one whose get-unless-zero comes after
/// the last put fails it and does not resurrect the socket.
#[test]
fn a_dying_socket_is_never_resurrected() {
    builder().check(|| {
        let rcu = Arc::new(RcuDomain::new(1));
        let bucket = Arc::new(RcuChain::<Entry>::new());
        let dead = Arc::new(DeadList::<ModelSock>::new());
        let frees = Arc::new(AtomicUsize::new(0));
        let sk = Box::into_raw(Box::new(ModelSock {
            head: RcuHead::new(),
            body: UnsafeCell::new(LIVE),
            frees: frees.clone(),
        }));
        bucket.try_update(&rcu, |v| v.push(Entry(sk))).unwrap();
        let got = Arc::new(AtomicUsize::new(0));
        let reader = {
            let (rcu, bucket, dead, got) = (rcu.clone(), bucket.clone(), dead.clone(), got.clone());
            thread::spawn(move || {
                let g = rcu.read_lock(0);
                let held = bucket.read(&g).first().map(|e| e.0);
                // SAFETY: read from the bucket inside the section: allocated.
                if let Some(p) = held.filter(|&p| unsafe { (*p).get_unless_zero() }) {
                    got.fetch_add(1, Ordering::Relaxed);
                    read(p);
                    // SAFETY: the reference just taken.
                    unsafe { put(p, &dead) };
                }
                drop(g);
            })
        };
        bucket.update(&rcu, |v| v.clear());
        // SAFETY: the owner's reference, after the unhash.
        unsafe { put(sk, &dead) };
        dead.reap(&rcu);
        rcu.barrier();
        reader.join().unwrap();
        dead.reap(&rcu);
        rcu.barrier();
        assert_eq!(frees.load(Ordering::Relaxed), 1);
        // SAFETY: the count is zero for good: no more references, so none was resurrected.
        assert_eq!(unsafe { (*sk).head().count() }, 0);
        // SAFETY: joined, freed once: the memory goes now.
        drop(unsafe { Box::from_raw(sk) });
    });
}
