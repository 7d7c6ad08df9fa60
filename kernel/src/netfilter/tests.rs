//! The table on its own (own RCU domain, a clock the test sets): lookup in both directions,
//! zones, namespaces, clashes, expiry and garbage collection, the limit with early drop,
//! resizing, and references back to zero.

use super::conn::{ConnInit, status};
use super::ctl::EntrySpec;
use super::table::{Table, TableConfig};
use super::tuple::{IPPROTO_TCP, IPPROTO_UDP, Tuple, ZONE_DIR_ORIG, Zone};
use crate::Errno;
use crate::sync::rcu::RcuDomain;
use core::sync::atomic::{AtomicU64, Ordering};

static NOW: AtomicU64 = AtomicU64::new(1000);

fn clock() -> u64 {
    NOW.load(Ordering::Relaxed)
}

fn table(rcu: &RcuDomain, buckets: usize, max: u32) -> Table<'_> {
    Table::new(
        TableConfig {
            buckets,
            max,
            seed: 42,
            clock,
        },
        rcu,
    )
    .unwrap()
}

fn tcp(i: u16) -> Tuple {
    Tuple::new(&[10, 0, 0, 1], &[10, 1, 0, 1], i, 80, IPPROTO_TCP).unwrap()
}

fn spec(t: Tuple) -> EntrySpec {
    EntrySpec {
        net: 0,
        zone: Zone::DEFAULT,
        orig: t,
        timeout: 100,
        status: 0,
        mark: 0,
    }
}

/// Looks `t` up in a read-side section; returns (direction, mark) and puts the reference.
fn find(tb: &Table<'_>, rcu: &RcuDomain, net: u32, zone: Zone, t: &Tuple) -> Option<(u8, u32)> {
    let _g = rcu.read_lock(0);
    // SAFETY: inside a read-side section of the table's domain.
    let f = unsafe { tb.find_get(net, &zone, t) }?;
    // SAFETY: `find_get` returned a live entry with our reference.
    let mark = unsafe { &*f.conn }.mark();
    // SAFETY: our reference.
    unsafe { tb.put(f.conn) };
    Some((f.dir, mark))
}

/// A new netns's number. It never exits (exit needs a host's grace periods): the unit tests
/// take a few of the registry's slots for good.
fn new_netns() -> u32 {
    let net = crate::net::Net::create().unwrap();
    net.user_get();
    net.num()
}

#[test]
fn both_directions_zones_and_namespaces() {
    let rcu = RcuDomain::new(1);
    let tb = table(&rcu, 64, 0);
    let t = tcp(1);
    tb.add(&EntrySpec { mark: 7, ..spec(t) }).unwrap();
    assert_eq!(find(&tb, &rcu, 0, Zone::DEFAULT, &t), Some((0, 7)));
    assert_eq!(
        find(&tb, &rcu, 0, Zone::DEFAULT, &t.invert().unwrap()),
        Some((1, 7))
    );
    assert_eq!(find(&tb, &rcu, 0, Zone::new(1, 3), &t), None);
    let net = new_netns();
    assert_eq!(find(&tb, &rcu, net, Zone::DEFAULT, &t), None);
    // The same tuple in another namespace and in a zone of its own is another entry.
    tb.add(&EntrySpec { net, ..spec(t) }).unwrap();
    let z = Zone::new(10, 3);
    tb.add(&EntrySpec { zone: z, ..spec(t) }).unwrap();
    assert_eq!(find(&tb, &rcu, 0, z, &t).map(|f| f.0), Some(0));
    // Zone 10 only for the original direction: the reply direction is in the default zone,
    // so it clashes with the first entry's reply tuple.
    let zo = Zone::new(10, ZONE_DIR_ORIG);
    assert_eq!(
        tb.add(&EntrySpec {
            zone: zo,
            ..spec(t)
        }),
        Err(Errno::EEXIST)
    );
    assert_eq!(tb.add(&spec(t)), Err(Errno::EEXIST));
    assert_eq!(tb.add(&spec(t.invert().unwrap())), Err(Errno::EEXIST));
    assert_eq!(tb.list(None).len(), 3);
    assert_eq!(tb.list(Some(net)).len(), 1);
    assert_eq!(tb.nets.count(0), 2);
    assert_eq!(tb.delete(0, &z, &t), Ok(()));
    assert_eq!(tb.delete(0, &z, &t), Err(Errno::ENOENT));
    tb.flush_netns(net);
    assert_eq!(tb.nets.count(net), 0);
    assert_eq!(tb.flush(None), 1);
    assert_eq!(tb.live_objects(), 0);
}

#[test]
fn expiry_hides_then_gc_removes() {
    let rcu = RcuDomain::new(1);
    let tb = table(&rcu, 16, 0);
    let now = clock();
    tb.add(&spec(tcp(1))).unwrap();
    tb.add(&EntrySpec {
        timeout: 1000,
        ..spec(tcp(2))
    })
    .unwrap();
    assert_eq!(
        tb.list(None)[0].expires_in + tb.list(None)[1].expires_in,
        1100
    );
    // Expired entries are neither found nor listed, but stay until the collector runs.
    NOW.store(now + 100, Ordering::Relaxed);
    assert_eq!(find(&tb, &rcu, 0, Zone::DEFAULT, &tcp(1)), None);
    assert!(find(&tb, &rcu, 0, Zone::DEFAULT, &tcp(2)).is_some());
    assert_eq!(tb.list(None).len(), 1);
    assert_eq!(tb.add(&spec(tcp(1))), Err(Errno::EEXIST));
    assert_eq!(tb.gc(now + 100), 1);
    assert_eq!(tb.add(&spec(tcp(1))), Ok(()));
    NOW.store(now, Ordering::Relaxed);
    assert_eq!(tb.flush(Some(0)), 2);
    assert_eq!(tb.live_objects(), 0);
}

#[test]
fn a_full_namespace_evicts_unassured_entries_or_refuses() {
    let rcu = RcuDomain::new(1);
    let tb = table(&rcu, 1, 2);
    tb.add(&spec(tcp(1))).unwrap();
    tb.add(&EntrySpec {
        status: status::ASSURED as u32,
        ..spec(tcp(2))
    })
    .unwrap();
    // Full: the unassured entry goes to make room.
    tb.add(&spec(tcp(3))).unwrap();
    assert_eq!(find(&tb, &rcu, 0, Zone::DEFAULT, &tcp(1)), None);
    assert_eq!(tb.nets.count(0), 2);
    // Full again: tcp(3) is evicted; with only assured entries, allocation fails.
    tb.add(&EntrySpec {
        status: status::ASSURED as u32,
        ..spec(tcp(4))
    })
    .unwrap();
    assert_eq!(tb.add(&spec(tcp(5))), Err(Errno::ENOMEM));
    assert_eq!(tb.nets.count(0), 2);
    // Another namespace has its own count.
    let net = new_netns();
    tb.add(&EntrySpec {
        net,
        ..spec(tcp(5))
    })
    .unwrap();
    tb.set_max(0);
    tb.add(&spec(tcp(6))).unwrap();
    assert_eq!(tb.flush(None), 4);
    assert_eq!(tb.live_objects(), 0);
}

#[test]
fn references_keep_a_deleted_entry_until_released() {
    let rcu = RcuDomain::new(1);
    let tb = table(&rcu, 8, 0);
    let t = tcp(9);
    tb.add(&spec(t)).unwrap();
    let held = {
        let _g = rcu.read_lock(0);
        // SAFETY: in a read-side section.
        unsafe { tb.find_get(0, &Zone::DEFAULT, &t) }.unwrap()
    };
    // SAFETY: we hold a reference.
    let c = unsafe { &*held.conn };
    assert_eq!(c.refcount(), 2);
    assert_eq!(tb.delete(0, &Zone::DEFAULT, &t), Ok(()));
    assert!(c.is_dying());
    assert_eq!(
        c.refcount(),
        1,
        "the table's reference went after the grace period"
    );
    assert_eq!(tb.live_objects(), 1);
    assert_eq!(c.change_timeout(5, clock()), Err(Errno::ETIME));
    // SAFETY: our reference; the last one, so the entry goes on the dead list.
    unsafe { tb.put(held.conn) };
    assert_eq!(tb.nets.count(0), 0);
    assert_eq!(
        tb.live_objects(),
        1,
        "freed by the control path, not the fast one"
    );
    tb.reclaim();
    assert_eq!(tb.live_objects(), 0);
}

#[test]
fn alloc_insert_and_clashing_insert() {
    let rcu = RcuDomain::new(1);
    let tb = table(&rcu, 8, 0);
    let t = Tuple::new(&[1; 16], &[2; 16], 53, 53, IPPROTO_UDP).unwrap();
    let init = ConnInit {
        net: 0,
        zone: Zone::DEFAULT,
        orig: t,
        reply: t.invert().unwrap(),
        timeout: 50,
    };
    let g = rcu.read_lock(0);
    // SAFETY: in a read-side section; each entry is inserted or freed once.
    unsafe {
        let a = tb.alloc(&init).unwrap();
        let b = tb.alloc(&init).unwrap();
        assert_eq!(tb.nets.count(0), 2);
        assert_eq!(tb.insert(a), Ok(()));
        assert_eq!((*a).refcount(), 2);
        assert!((*a).is_confirmed());
        assert_eq!((*a).timeout_raw() as u64, clock() + 50);
        assert_eq!(tb.insert(b), Err(Errno::EEXIST));
        tb.free_unpublished(b);
        tb.put(a);
    }
    drop(g);
    assert_eq!(tb.nets.count(0), 1);
    assert_eq!(tb.list(None)[0].orig.src.l3num, super::tuple::AF_INET6);
    assert_eq!(tb.flush(None), 1);
    assert_eq!(tb.live_objects(), 0);
}

#[test]
fn resize_rehashes_every_entry() {
    let rcu = RcuDomain::new(1);
    let tb = table(&rcu, 32, 0);
    for i in 0..200 {
        tb.add(&spec(tcp(i))).unwrap();
    }
    assert_eq!(tb.resize(3), Err(Errno::EINVAL));
    assert_eq!(tb.resize(256), Ok(()));
    assert_eq!(tb.buckets(), 256);
    for i in 0..200 {
        assert!(find(&tb, &rcu, 0, Zone::DEFAULT, &tcp(i)).is_some(), "{i}");
        let r = tcp(i).invert().unwrap();
        assert_eq!(find(&tb, &rcu, 0, Zone::DEFAULT, &r).map(|f| f.0), Some(1));
    }
    // Smaller again: chains far past the insertion limit are fine for a resize.
    assert_eq!(tb.resize(2), Ok(()));
    assert_eq!(tb.add(&spec(tcp(500))), Err(Errno::ENOSPC));
    assert_eq!(tb.list(None).len(), 200);
    drop(tb);
}
