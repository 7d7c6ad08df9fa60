//! Bounded stress of the conntrack table: two reader threads look tuples up and put their
//! references (holding them a while, re-reading the entry), while one thread inserts, one
//! deletes and a third advances the clock and runs the garbage collector. A freed entry's slot
//! is reused by the slab, so a reader holding an entry that was freed would see its tuple or
//! reference count change under it. At the end every reference is back, the table is empty,
//! no entry is left allocated and no reference count was misused (saturated).

use kbpf::netfilter::tuple::{IPPROTO_TCP, Tuple, Zone};
use kbpf::netfilter::{EntrySpec, Table, TableConfig};
use kbpf::sync::rcu::RcuDomain;
use kbpf::sync::refcount::saturation_warnings;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Distinct tuples the threads fight over.
const POOL: u16 = 64;
/// Lookups per reader.
const LOOKUPS: usize = 300_000;
/// Inserts, deletes and collections each writer does at least before the readers may stop.
const WRITES: [usize; 3] = [2_000, 2_000, 100];

static NOW: AtomicU64 = AtomicU64::new(1_000);

fn clock() -> u64 {
    NOW.load(Ordering::Relaxed)
}

fn tuple(i: u16) -> Tuple {
    Tuple::new(&[10, 0, 0, 1], &[10, 0, 0, 2], 1000 + i, 80, IPPROTO_TCP).unwrap()
}

/// A small xorshift for each thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick(&mut self) -> u16 {
        (self.next() % POOL as u64) as u16
    }
}

#[test]
fn lookups_race_with_insert_expire_delete() {
    let before = saturation_warnings();
    let rcu = RcuDomain::new(2);
    let t = Table::new(
        TableConfig {
            buckets: 16,
            max: 0,
            seed: 7,
            clock,
        },
        &rcu,
    )
    .unwrap();
    let done = AtomicBool::new(false);
    let found = AtomicUsize::new(0);
    let writes = [
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ];
    std::thread::scope(|s| {
        let mut readers = Vec::new();
        for slot in 0..2 {
            let (t, rcu, found, writes) = (&t, &rcu, &found, &writes);
            readers.push(s.spawn(move || {
                let mut rng = Rng(0x9e37_79b9 + slot as u64);
                let mut n = 0;
                while n < LOOKUPS
                    || writes
                        .iter()
                        .zip(WRITES)
                        .any(|(w, min)| w.load(Ordering::Relaxed) < min)
                {
                    n += 1;
                    let i = rng.pick();
                    let want = tuple(i);
                    let got = {
                        let _g = rcu.read_lock(slot);
                        // SAFETY: inside a read-side section of the table's domain.
                        unsafe { t.find_get(0, &Zone::DEFAULT, &want) }
                    };
                    let Some(f) = got else { continue };
                    // SAFETY: `find_get` gave us a reference.
                    let c = unsafe { &*f.conn };
                    for _ in 0..3 {
                        // Outside the section: only our reference keeps the entry.
                        assert!(c.tuple(f.dir).same_flow(&want), "entry changed under us");
                        let r = c.refcount();
                        assert!((1..1000).contains(&r), "refcount {r} while held");
                        std::hint::spin_loop();
                    }
                    found.fetch_add(1, Ordering::Relaxed);
                    // SAFETY: our reference, put once.
                    unsafe { t.put(f.conn) };
                }
            }));
        }
        let (t, done, w) = (&t, &done, &writes);
        s.spawn(move || {
            let mut rng = Rng(1);
            while !done.load(Ordering::Relaxed) {
                w[0].fetch_add(1, Ordering::Relaxed);
                let _ = t.add(&EntrySpec {
                    net: 0,
                    zone: Zone::DEFAULT,
                    orig: tuple(rng.pick()),
                    timeout: 1 + rng.next() % 50,
                    status: 0,
                    mark: 0,
                });
            }
        });
        s.spawn(move || {
            let mut rng = Rng(2);
            while !done.load(Ordering::Relaxed) {
                w[1].fetch_add(1, Ordering::Relaxed);
                let _ = t.delete(0, &Zone::DEFAULT, &tuple(rng.pick()));
            }
        });
        s.spawn(move || {
            while !done.load(Ordering::Relaxed) {
                w[2].fetch_add(1, Ordering::Relaxed);
                let now = NOW.fetch_add(5, Ordering::Relaxed) + 5;
                t.gc(now);
                std::thread::yield_now();
            }
        });
        // The readers run their bounded lookups; then the writers stop.
        for r in readers {
            r.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    assert!(found.load(Ordering::Relaxed) > 0, "some lookups hit");
    eprintln!(
        "{} hits; inserts {}, deletes {}, collections {}",
        found.load(Ordering::Relaxed),
        writes[0].load(Ordering::Relaxed),
        writes[1].load(Ordering::Relaxed),
        writes[2].load(Ordering::Relaxed)
    );
    t.flush(None);
    t.reclaim();
    assert_eq!(t.nets.count(0), 0, "every entry counted out");
    assert_eq!(t.live_objects(), 0, "nothing leaked");
    assert_eq!(
        saturation_warnings(),
        before,
        "a reference count was misused"
    );
}
