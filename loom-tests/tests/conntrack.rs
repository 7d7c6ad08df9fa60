//! Loom models of the conntrack table (`kbpf::netfilter::table`): a lookup taking a reference
//! with get-unless-zero races with the removal of its entry (delete, garbage collection) and
//! the free that follows the grace period, and with the insertion that publishes it.
//!
//! Entries carry a loom cell (`Conn::touch` reads it, the free poisons it), so a free not
//! ordered after every reader's last access — through the grace period or the reference count
//! — is a causality violation; so is a reader seeing an entry before its insertion published
//! it. At the end no entry is left allocated (`Table::live_objects`).
#![cfg(loom)]

use kbpf::netfilter::tuple::{IPPROTO_TCP, Tuple, Zone};
use kbpf::netfilter::{EntrySpec, Table, TableConfig};
use kbpf::sync::rcu::RcuDomain;
use loom::sync::Arc;
use loom::thread;

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b
}

fn clock() -> u64 {
    1000
}

fn tuple() -> Tuple {
    Tuple::new(&[10, 0, 0, 1], &[10, 0, 0, 2], 1000, 80, IPPROTO_TCP).unwrap()
}

fn spec() -> EntrySpec {
    EntrySpec {
        net: 0,
        zone: Zone::DEFAULT,
        orig: tuple(),
        timeout: 100,
        status: 0,
        mark: 0,
    }
}

/// A one-bucket table (both of an entry's nodes in one chain) and its RCU domain; the domain
/// is leaked for the table to borrow and taken back by [`finish`].
fn setup() -> (&'static RcuDomain, Arc<Table<'static>>) {
    let rcu: &'static RcuDomain = Box::leak(Box::new(RcuDomain::new(2)));
    let cfg = TableConfig {
        buckets: 1,
        max: 0,
        seed: 1,
        clock,
    };
    (rcu, Arc::new(Table::new(cfg, rcu).unwrap()))
}

/// Frees what is left, checks nothing leaked, drops the table and then its domain.
fn finish(rcu: &'static RcuDomain, t: Arc<Table<'static>>) {
    t.reclaim();
    assert_eq!(t.live_objects(), 0, "an entry was leaked");
    assert_eq!(Arc::strong_count(&t), 1, "the threads are joined");
    drop(t);
    // SAFETY: leaked in `setup`; the table that borrowed it is gone, no thread uses it.
    drop(unsafe { Box::from_raw(rcu as *const RcuDomain as *mut RcuDomain) });
}

/// Looks the tuple up on reader slot 0; with a reference, reads the entry inside and after
/// the section, then puts it.
fn lookup(rcu: &RcuDomain, t: &Table<'_>) -> bool {
    let g = rcu.read_lock(0);
    // SAFETY: inside a read-side section of the table's domain.
    let found = unsafe { t.find_get(0, &Zone::DEFAULT, &tuple()) };
    let Some(f) = found else { return false };
    // SAFETY: `find_get` returned it with our reference.
    let c = unsafe { &*f.conn };
    c.touch();
    drop(g);
    // The reference, not the section, keeps it now.
    c.touch();
    // SAFETY: our reference, put once.
    unsafe { t.put(f.conn) };
    true
}

/// A model: `before` on the main thread, then a lookup on a spawned reader racing with
/// `during` on the main thread, then `after` once the reader is joined; then [`finish`].
fn race(
    before: impl Fn(&Table<'_>) + Sync + Send + 'static,
    during: impl Fn(&Table<'_>) + Sync + Send + 'static,
    after: impl Fn(&'static RcuDomain, &Table<'static>) + Sync + Send + 'static,
) {
    builder().check(move || {
        let (rcu, t) = setup();
        before(&t);
        let reader = {
            let t = t.clone();
            thread::spawn(move || lookup(rcu, &t))
        };
        during(&t);
        reader.join().unwrap();
        after(rcu, &t);
        finish(rcu, t);
    });
}

#[test]
fn lookup_races_with_delete_and_the_grace_period_free() {
    race(
        |t| t.add(&spec()).unwrap(),
        |t| t.delete(0, &Zone::DEFAULT, &tuple()).unwrap(),
        |_, _| {},
    );
}

#[test]
fn lookup_races_with_garbage_collection() {
    race(
        |t| t.add(&spec()).unwrap(),
        // Past the entry's 100-jiffy timeout (the reader's clock stays before it).
        |t| assert_eq!(t.gc(clock() + 200), 1),
        |_, _| {},
    );
}

#[test]
fn lookup_races_with_insertion() {
    race(
        |_| {},
        |t| t.add(&spec()).unwrap(),
        |rcu, t| {
            assert!(lookup(rcu, t), "inserted, so found");
            assert_eq!(t.flush(None), 1);
        },
    );
}
