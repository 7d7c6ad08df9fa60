//! Loom models of the mprog entry swap against readers walking the active entry: the real
//! `kbpf::mprog::Hook` (bundle, peer entry built and published, grace period, commit) with model
//! payloads standing for programs and links, on an explicit `RcuDomain`.
//!
//! A program's drop poisons a cell that readers read through the pointers they loaded from the
//! entry. If a writer could put a program (or reuse the old entry) while a reader still walks
//! it, loom reports the unordered read and write, or the reader sees the poison.
#![cfg(loom)]

use kbpf::mprog::{Hook, MprogApi, MprogFlags, Obj, Relative};
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

/// Stands for a program: a body that becomes poison when the last reference is put.
struct Prog {
    id: u32,
    body: Arc<Body>,
}

impl Obj for Prog {
    fn id(&self) -> u32 {
        self.id
    }
}

impl Drop for Prog {
    fn drop(&mut self) {
        // SAFETY: loom checks this write against every read (see `Body`).
        self.body.0.with_mut(|v| unsafe { *v = POISON });
    }
}

/// Stands for a link.
struct Link;

impl Obj for Link {
    fn id(&self) -> u32 {
        1
    }
}

type H = Hook<Prog, Link>;

fn prog(v: u64) -> (Arc<Prog>, Arc<Body>) {
    let body = Arc::new(Body(UnsafeCell::new(v)));
    let p = Prog {
        id: v as u32,
        body: body.clone(),
    };
    (Arc::new(p), body)
}

fn read(body: &Body) -> u64 {
    // SAFETY: loom-checked read (see `Body`).
    body.0.with(|v| unsafe { *v })
}

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b
}

fn none(_: &kbpf::mprog::Bundle<Prog, Link>) -> kbpf::Result<Relative<Prog, Link>> {
    Ok(Relative::none())
}

/// The fast path on CPU `cpu`: walk the published entry, reading every program's body.
fn walk(rcu: &RcuDomain, hook: &H, cpu: usize) -> Vec<u64> {
    let g = rcu.read_lock(cpu);
    let Some(entry) = hook.read(&g) else {
        return Vec::new();
    };
    entry
        .progs()
        .map(|p| {
            let v = read(&p.body);
            assert_ne!(v, POISON, "walked a program that was already put");
            v
        })
        .collect()
}

fn add(rcu: &RcuDomain, hook: &H, p: Arc<Prog>, flags: MprogFlags) {
    hook.attach(rcu, p, None, None, flags, 0, none).unwrap();
}

#[test]
fn insert_vs_walk() {
    builder().check(|| {
        let rcu = Arc::new(RcuDomain::new(2));
        let hook = Arc::new(H::new(MprogApi::Final));
        let (a, _) = prog(1);
        add(&rcu, &hook, a, MprogFlags::empty());
        let reader = {
            let (rcu, hook) = (rcu.clone(), hook.clone());
            thread::spawn(move || walk(&rcu, &hook, 0))
        };
        let (b, _) = prog(2);
        add(&rcu, &hook, b, MprogFlags::BEFORE);
        let seen = reader.join().unwrap();
        assert!(seen == [1] || seen == [2, 1], "{seen:?}");
    });
}

#[test]
fn delete_vs_walk_puts_after_the_grace_period() {
    builder().check(|| {
        let rcu = Arc::new(RcuDomain::new(2));
        let hook = Arc::new(H::new(MprogApi::Final));
        let (a, a_body) = prog(1);
        let (b, _) = prog(2);
        add(&rcu, &hook, a, MprogFlags::empty());
        add(&rcu, &hook, b, MprogFlags::empty());
        let reader = {
            let (rcu, hook) = (rcu.clone(), hook.clone());
            thread::spawn(move || walk(&rcu, &hook, 0))
        };
        // No program, BEFORE: take out the head (a), building the peer without allocating.
        hook.detach(&rcu, None, None, MprogFlags::BEFORE, 0, none)
            .unwrap();
        assert_eq!(read(&a_body), POISON, "a was put by the commit");
        let seen = reader.join().unwrap();
        assert!(seen == [1, 2] || seen == [2], "{seen:?}");
    });
}

#[test]
fn replace_in_place_vs_walk() {
    builder().check(|| {
        let rcu = Arc::new(RcuDomain::new(2));
        let hook = Arc::new(H::new(MprogApi::Final));
        let (a, a_body) = prog(1);
        let old = a.clone();
        add(&rcu, &hook, a, MprogFlags::empty());
        let reader = {
            let (rcu, hook) = (rcu.clone(), hook.clone());
            thread::spawn(move || walk(&rcu, &hook, 0))
        };
        let (c, _) = prog(3);
        hook.attach(&rcu, c, None, Some(&old), MprogFlags::REPLACE, 0, none)
            .unwrap();
        drop(old);
        assert_eq!(read(&a_body), POISON, "the replaced program was put");
        let seen = reader.join().unwrap();
        assert!(seen == [1] || seen == [3], "{seen:?}");
    });
}

#[test]
fn emptied_bundle_is_freed_after_readers_left() {
    builder().check(|| {
        let rcu = Arc::new(RcuDomain::new(2));
        let hook = Arc::new(H::new(MprogApi::Final));
        let (a, a_body) = prog(1);
        add(&rcu, &hook, a, MprogFlags::empty());
        let reader = {
            let (rcu, hook) = (rcu.clone(), hook.clone());
            thread::spawn(move || walk(&rcu, &hook, 1))
        };
        hook.detach(&rcu, None, None, MprogFlags::empty(), 0, none)
            .unwrap();
        assert_eq!(read(&a_body), POISON);
        let seen = reader.join().unwrap();
        assert!(seen.is_empty() || seen == [1], "{seen:?}");
        assert!(walk(&rcu, &hook, 0).is_empty());
    });
}
