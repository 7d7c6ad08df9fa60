//! Loom models of the mprog entry swap against readers of the active entry: the real
//! `kbpf::mprog::Hook` (bundle, peer entry built and published, grace period, commit) with model
//! payloads standing for programs and links, on an explicit `RcuDomain`. Each scenario runs twice:
//! with readers walking the entry, and on a hook built `with_dispatch` whose builder stands in for
//! the JIT, with readers calling the entry's dispatch.
//!
//! A program's drop poisons a cell that readers read through the pointers they loaded from the
//! entry. A model dispatch is a block of "code" — the program addresses it would call, and a cell
//! its owner poisons when the bundle puts it. If a writer could put a program, reuse the old entry
//! or free a dispatch while a reader still uses it, loom reports the unordered read and write, or
//! the reader sees the poison. Each reader also checks it ran one whole state of the list.
#![cfg(loom)]

use kbpf::mprog::{Bundle, Dispatch, Hook, MprogApi, MprogFlags, Obj, Relative};
use kbpf::sync::rcu::RcuDomain;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

const POISON: u64 = 0xdead;

/// A cell loom tracks every access to.
struct Body(UnsafeCell<u64>);

// SAFETY: the model's point is to find unsynchronized accesses; loom's `UnsafeCell` checks each
// `with`/`with_mut` against happens-before and fails the model on a race.
unsafe impl Sync for Body {}
// SAFETY: as above.
unsafe impl Send for Body {}

fn read(body: &Body) -> u64 {
    // SAFETY: loom-checked read (see `Body`).
    body.0.with(|v| unsafe { *v })
}

fn poison(body: &Body) {
    // SAFETY: loom-checked write (see `Body`).
    body.0.with_mut(|v| unsafe { *v = POISON });
}

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
        poison(&self.body);
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

/// A model dispatch's code: what the JIT'd dispatcher holds (the programs' addresses) and a
/// cell standing for its bytes. Leaked, so a reader that got it too late reads the poison (or
/// races the poisoning write) instead of freed memory.
struct Code {
    bytes: Body,
    progs: Vec<usize>,
}

/// Owns a [`Code`] for its dispatch: dropping it (the bundle putting the dispatch) poisons it.
struct Owner(&'static Code);

impl Drop for Owner {
    fn drop(&mut self) {
        poison(&self.0.bytes);
    }
}

/// The dispatching hook's builder: "compiles" the list into a model dispatch.
fn build(progs: &[&Prog]) -> Option<Dispatch> {
    let code: &'static Code = Box::leak(Box::new(Code {
        bytes: Body(UnsafeCell::new(1)),
        progs: progs.iter().map(|p| *p as *const Prog as usize).collect(),
    }));
    Some(Dispatch::new(
        code as *const Code as usize,
        Box::new(Owner(code)),
    ))
}

fn prog(v: u64) -> (Arc<Prog>, Arc<Body>) {
    let body = Arc::new(Body(UnsafeCell::new(v)));
    let p = Prog {
        id: v as u32,
        body: body.clone(),
    };
    (Arc::new(p), body)
}

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b
}

fn none(_: &Bundle<Prog, Link>) -> kbpf::Result<Relative<Prog, Link>> {
    Ok(Relative::none())
}

/// Reads a program the reader reached, checking it was not put yet.
fn visit(p: &Prog) -> u64 {
    let v = read(&p.body);
    assert_ne!(v, POISON, "ran a program that was already put");
    v
}

/// How readers run the hook, and the hook they run.
#[derive(Clone, Copy)]
enum Mode {
    /// A plain hook; readers walk the entry.
    Walk,
    /// A hook built `with_dispatch`; readers call the entry's dispatch.
    Dispatch,
}

fn hook(mode: Mode) -> Arc<H> {
    Arc::new(match mode {
        Mode::Walk => H::new(MprogApi::Final),
        Mode::Dispatch => H::with_dispatch(MprogApi::Final, build),
    })
}

/// The fast path on CPU `cpu`: the programs the published entry runs, in order.
fn run(mode: Mode, rcu: &RcuDomain, hook: &H, cpu: usize) -> Vec<u64> {
    let mut g = rcu.read_lock(cpu);
    match mode {
        Mode::Walk => {
            let Some(entry) = hook.read(&g) else {
                return Vec::new();
            };
            entry.progs().map(visit).collect()
        }
        Mode::Dispatch => hook
            .run(
                &mut g,
                |_, d| {
                    // SAFETY: `func` is the address of a leaked `Code` (see `build`).
                    let code = unsafe { &*(d.func() as *const Code) };
                    assert_ne!(read(&code.bytes), POISON, "ran a dispatch already put");
                    code.progs
                        .iter()
                        // SAFETY: what a JIT'd dispatcher's `call prog` relies on: the program
                        // is alive while its dispatch is reachable (the model checks this).
                        .map(|&p| visit(unsafe { &*(p as *const Prog) }))
                        .collect()
                },
                |_, _| panic!("an entry of a dispatching hook without its dispatch"),
            )
            .unwrap_or_default(),
    }
}

fn add(rcu: &RcuDomain, hook: &H, p: Arc<Prog>, flags: MprogFlags) {
    hook.attach(rcu, p, None, None, flags, 0, none).unwrap();
}

fn reader(
    mode: Mode,
    rcu: &Arc<RcuDomain>,
    hook: &Arc<H>,
    cpu: usize,
) -> thread::JoinHandle<Vec<u64>> {
    let (rcu, hook) = (rcu.clone(), hook.clone());
    thread::spawn(move || run(mode, &rcu, &hook, cpu))
}

fn insert(mode: Mode) {
    builder().check(move || {
        let rcu = Arc::new(RcuDomain::new(2));
        let hook = hook(mode);
        let (a, _) = prog(1);
        add(&rcu, &hook, a, MprogFlags::empty());
        let r = reader(mode, &rcu, &hook, 0);
        let (b, _) = prog(2);
        add(&rcu, &hook, b, MprogFlags::BEFORE);
        let seen = r.join().unwrap();
        assert!(seen == [1] || seen == [2, 1], "{seen:?}");
    });
}

fn delete_puts_after_the_grace_period(mode: Mode) {
    builder().check(move || {
        let rcu = Arc::new(RcuDomain::new(2));
        let hook = hook(mode);
        let (a, a_body) = prog(1);
        let (b, _) = prog(2);
        add(&rcu, &hook, a, MprogFlags::empty());
        add(&rcu, &hook, b, MprogFlags::empty());
        let r = reader(mode, &rcu, &hook, 0);
        // No program, BEFORE: take out the head (a), building the peer without allocating.
        hook.detach(&rcu, None, None, MprogFlags::BEFORE, 0, none)
            .unwrap();
        assert_eq!(read(&a_body), POISON, "a was put by the commit");
        let seen = r.join().unwrap();
        assert!(seen == [1, 2] || seen == [2], "{seen:?}");
    });
}

fn replace_in_place(mode: Mode) {
    builder().check(move || {
        let rcu = Arc::new(RcuDomain::new(2));
        let hook = hook(mode);
        let (a, a_body) = prog(1);
        let (b, _) = prog(2);
        let old = a.clone();
        add(&rcu, &hook, a, MprogFlags::empty());
        add(&rcu, &hook, b, MprogFlags::empty());
        let r = reader(mode, &rcu, &hook, 0);
        let (c, _) = prog(3);
        hook.attach(&rcu, c, None, Some(&old), MprogFlags::REPLACE, 0, none)
            .unwrap();
        drop(old);
        assert_eq!(read(&a_body), POISON, "the replaced program was put");
        let seen = r.join().unwrap();
        assert!(seen == [1, 2] || seen == [3, 2], "{seen:?}");
        assert_eq!(run(mode, &rcu, &hook, 1), [3, 2]);
    });
}

fn emptied_bundle(mode: Mode) {
    builder().check(move || {
        let rcu = Arc::new(RcuDomain::new(2));
        let hook = hook(mode);
        let (a, a_body) = prog(1);
        add(&rcu, &hook, a, MprogFlags::empty());
        let r = reader(mode, &rcu, &hook, 1);
        hook.detach(&rcu, None, None, MprogFlags::empty(), 0, none)
            .unwrap();
        assert_eq!(read(&a_body), POISON);
        let seen = r.join().unwrap();
        assert!(seen.is_empty() || seen == [1], "{seen:?}");
        assert!(run(mode, &rcu, &hook, 0).is_empty());
    });
}

#[test]
fn insert_vs_walk() {
    insert(Mode::Walk);
}

#[test]
fn insert_vs_dispatch() {
    insert(Mode::Dispatch);
}

#[test]
fn delete_vs_walk_puts_after_the_grace_period() {
    delete_puts_after_the_grace_period(Mode::Walk);
}

#[test]
fn delete_vs_dispatch_puts_program_and_dispatch_after_the_grace_period() {
    delete_puts_after_the_grace_period(Mode::Dispatch);
}

#[test]
fn replace_in_place_vs_walk() {
    replace_in_place(Mode::Walk);
}

#[test]
fn replace_in_place_swaps_the_dispatch() {
    replace_in_place(Mode::Dispatch);
}

#[test]
fn emptied_bundle_is_freed_after_readers_left() {
    emptied_bundle(Mode::Walk);
}

#[test]
fn emptied_hook_frees_its_last_dispatch_after_readers_left() {
    emptied_bundle(Mode::Dispatch);
}
