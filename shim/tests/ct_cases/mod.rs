//! The conntrack kfuncs' run-time scenarios (`shared/research/kernel-scenarios.md` §5.3–§5.4,
//! the `struct bpf_ct_opts` probes of `shared/oracle/RESULTS.md` §4), each from an XDP and a TC
//! program: every errno in the kernel's check order, both sizes of the options, lookups in both
//! directions, zones and namespaces, allocation and insertion with a clash. Run by
//! `ct_scenarios.rs` (interpreter) and `ct_scenarios_jit.rs` (JIT).
//!
//! Each scenario uses tuples of its own, so the scenarios share the process's one table.

use kbpf::netfilter::tuple::{IPPROTO_TCP, Tuple, Zone};
use kbpf::netfilter::{self, EntrySpec, HZ, conntrack};
use kbpf_shim::conformance::Engine;
use kbpf_shim::ct::progs::{
    ERROR_SENTINEL, Hook, KfuncIds, Probe, ProbeOp, ProbeResult, opts, tuple_v4,
};
use kbpf_shim::ct::{Netns, probe};
use kbpf_shim::elf::{LoadOpts, LoadedObject, Object};

/// `shim/tests/elf/ct_nf.o`.
const CT_NF_O: &[u8] = include_bytes!("../elf/ct_nf.o");

const EINVAL: i32 = -22;
const ENOENT: i32 = -2;
const EPROTO: i32 = -71;
const ENONET: i32 = -64;
const EAFNOSUPPORT: i32 = -97;

fn null(error: i32) -> ProbeResult {
    ProbeResult::Null { error }
}

fn found(dir: u8) -> ProbeResult {
    ProbeResult::Found { dir }
}

/// The scenarios' tuples: 10.9.<hook>.<n> -> 10.8.0.1:80, source port 1000 + n.
fn tup(hook: Hook, n: u8) -> Vec<u8> {
    let h = if hook == Hook::Xdp { 1 } else { 2 };
    tuple_v4([10, 9, h, n], [10, 8, 0, 1], 1000 + n as u16, 80)
}

fn parse(t: &[u8]) -> Tuple {
    let (s, d) = (&t[0..4], &t[4..8]);
    let sp = u16::from_be_bytes([t[8], t[9]]);
    let dp = u16::from_be_bytes([t[10], t[11]]);
    Tuple::new(s, d, sp, dp, IPPROTO_TCP).unwrap()
}

fn reversed(t: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&t[4..8]);
    r.extend_from_slice(&t[0..4]);
    r.extend_from_slice(&t[10..12]);
    r.extend_from_slice(&t[8..10]);
    r
}

fn lookup(hook: Hook, tuple: Vec<u8>, o: Vec<u8>) -> Probe {
    let sz = o.len() as u32;
    Probe {
        hook,
        op: ProbeOp::Lookup,
        tuple_sz: tuple.len() as u32,
        tuple,
        tuple_null: false,
        opts: o,
        opts_sz: sz,
    }
}

fn alloc(hook: Hook, tuple: Vec<u8>, o: Vec<u8>) -> Probe {
    Probe {
        op: ProbeOp::AllocInsert {
            timeout_ms: Some(10_000),
            status: Some(0),
        },
        ..lookup(hook, tuple, o)
    }
}

fn run(p: &Probe) -> ProbeResult {
    run_in(p, None)
}

fn run_in(p: &Probe, netns: Option<kbpf::syscall::Fd>) -> ProbeResult {
    probe(p, netns).unwrap_or_else(|e| panic!("{p:?}: {e}"))
}

fn base() -> Vec<u8> {
    opts(-1, IPPROTO_TCP, 0, 0, 0)
}

/// §5.3 in order, each check alone, then several at once (the earliest wins).
fn validation_order(hook: Hook) {
    let t = tup(hook, 1);
    // CT-01/CT-35: a literal NULL tuple is refused at load, whatever its size, as Linux 6.18
    // refuses it (see the verifier corpus); the run-time check behind it is unit-tested.
    let mut p = lookup(hook, t.clone(), base());
    p.tuple_null = true;
    p.tuple_sz = 0;
    let e = kbpf_shim::ct::load(hook.prog_type(), &p.asm(&KfuncIds::kbpf())).unwrap_err();
    assert!(
        e.contains("Possibly NULL pointer passed to trusted arg1"),
        "{e}"
    );
    // Options of size 0: NULL, with nothing written anywhere.
    let mut q = lookup(hook, t.clone(), base());
    q.opts_sz = 0;
    assert_eq!(run(&q), null(ERROR_SENTINEL), "opts__sz 0");
    let cases: Vec<(&str, Vec<u8>, u32, u32, i32)> = vec![
        ("CT-02 reserved[0]", opts(-1, 6, 0, 0, 1), 12, 16, EINVAL),
        ("CT-04 netns_id -2", opts(-2, 6, 0, 0, 0), 12, 16, EINVAL),
        ("CT-05 opts__sz 15", base(), 12, 15, EINVAL),
        ("opts__sz 8", base(), 12, 8, EINVAL),
        ("opts__sz 20", base(), 12, 20, EINVAL),
        ("opts__sz 24", base(), 12, 24, EINVAL),
        (
            "opts__sz 4: error not written",
            base(),
            12,
            4,
            ERROR_SENTINEL,
        ),
        ("CT-06 ICMP", opts(-1, 1, 0, 0, 0), 12, 16, EPROTO),
        (
            "CT-07 netns_id 0xf00f",
            opts(0xf00f, 6, 0, 0, 0),
            12,
            16,
            ENONET,
        ),
        ("CT-08 no entry", base(), 12, 16, ENOENT),
        ("CT-09 tuple__sz 11", base(), 11, 16, EAFNOSUPPORT),
        ("UDP", opts(-1, 17, 0, 0, 0), 12, 16, ENOENT),
        (
            "CT-10 reserved + ICMP",
            opts(-1, 1, 0, 0, 1),
            12,
            16,
            EINVAL,
        ),
        (
            "CT-10 ICMP + netns -2",
            opts(-2, 1, 0, 0, 0),
            12,
            16,
            EPROTO,
        ),
        (
            "CT-10 netns -2 + tuple__sz 8",
            opts(-2, 6, 0, 0, 0),
            8,
            16,
            EINVAL,
        ),
        (
            "CT-10 tuple__sz 8 + no netns",
            opts(4242, 6, 0, 0, 0),
            8,
            16,
            EAFNOSUPPORT,
        ),
    ];
    for (what, o, tsz, osz, want) in cases {
        let mut o = o;
        o.resize(24, 0);
        let p = Probe {
            tuple_sz: tsz,
            opts_sz: osz,
            ..lookup(hook, t.clone(), o)
        };
        assert_eq!(run(&p), null(want), "{hook:?} lookup {what}");
    }
    // CT-03: each of the 16-byte form's reserved bytes.
    for byte in 13..16 {
        let mut o = base();
        o[byte] = 1;
        assert_eq!(
            run(&lookup(hook, t.clone(), o)),
            null(EINVAL),
            "CT-03 {byte}"
        );
    }
    // CT-22: the 12-byte form with bytes 10..11 (ct_zone_id) set.
    let mut o = opts(-1, 6, 1, 0, 0);
    o.truncate(12);
    assert_eq!(run(&lookup(hook, t.clone(), o)), null(EINVAL), "CT-22");
    // Allocation checks netns_id before the protocol (`__bpf_nf_ct_alloc_entry`).
    let a = |o: Vec<u8>, tsz: u32| Probe {
        tuple_sz: tsz,
        ..alloc(hook, t.clone(), o)
    };
    assert_eq!(
        run(&a(opts(-2, 1, 0, 0, 0), 12)),
        null(EINVAL),
        "alloc netns first"
    );
    assert_eq!(run(&a(opts(-1, 1, 0, 0, 0), 12)), null(EPROTO));
    assert_eq!(run(&a(base(), 11)), null(EAFNOSUPPORT));
    assert_eq!(run(&a(opts(0xf00f, 6, 0, 0, 0), 12)), null(ENONET));
    assert_eq!(run(&a(opts(-1, 6, 0, 0, 7), 12)), null(EINVAL));
    let mut short = base();
    short.truncate(12);
    short[10] = 1;
    assert_eq!(run(&a(short, 12)), null(EINVAL), "alloc CT-22");
}

/// CT-11, CT-12, CT-23: alloc + insert, lookups in both directions with either size of the
/// options, a clashing insertion consumes its entry.
fn alloc_insert_lookup(hook: Hook) {
    let t = tup(hook, 2);
    let ct = conntrack().unwrap();
    let before = ct.nets.count(0);
    assert_eq!(
        run(&alloc(hook, t.clone(), base())),
        ProbeResult::Inserted,
        "CT-11"
    );
    assert_eq!(ct.nets.count(0), before + 1);
    assert_eq!(run(&lookup(hook, t.clone(), base())), found(0), "CT-12");
    assert_eq!(
        run(&lookup(hook, reversed(&t), base())),
        found(1),
        "reply direction"
    );
    let mut old = base();
    old.truncate(12);
    assert_eq!(run(&lookup(hook, t.clone(), old)), found(0), "12-byte opts");
    assert_eq!(
        run(&lookup(hook, t.clone(), opts(-1, 6, 0, 3, 0))),
        found(0),
        "ct_zone_dir 3"
    );
    // CT-23: either direction's tuple taken.
    for clash in [t.clone(), reversed(&t)] {
        assert_eq!(
            run(&alloc(hook, clash, base())),
            ProbeResult::InsertFailed,
            "CT-23"
        );
    }
    assert_eq!(
        ct.nets.count(0),
        before + 1,
        "the failed entries were freed"
    );
    // The new entry: 10 s timeout, status CONFIRMED, the reference back to the table's.
    let e = ct
        .list(Some(0))
        .into_iter()
        .find(|e| e.orig == parse(&t))
        .unwrap();
    assert!((8 * HZ..=10 * HZ).contains(&e.expires_in), "{e:?}");
    assert_eq!(e.status, netfilter::status::CONFIRMED);
    assert_eq!(e.refs, 1);
    // IPv6.
    let mut t6 = vec![0u8; 36];
    t6[0] = 0xfd;
    t6[15] = hook as u8 + 1;
    t6[16] = 0xfd;
    t6[31] = 9;
    t6[33] = 7;
    t6[35] = 80;
    assert_eq!(run(&alloc(hook, t6.clone(), base())), ProbeResult::Inserted);
    assert_eq!(run(&lookup(hook, t6, base())), found(0));
}

/// CT-18..CT-21: zones.
fn zones(hook: Hook) {
    let t = tup(hook, 3);
    assert_eq!(
        run(&alloc(hook, t.clone(), opts(-1, 6, 10, 0, 0))),
        ProbeResult::Inserted,
        "CT-18 alloc in zone 10"
    );
    assert_eq!(
        run(&lookup(hook, t.clone(), opts(-1, 6, 10, 0, 0))),
        found(0),
        "CT-18"
    );
    assert_eq!(
        run(&lookup(hook, t.clone(), opts(-1, 6, 11, 0, 0))),
        null(ENOENT),
        "CT-19"
    );
    assert_eq!(
        run(&lookup(hook, t.clone(), base())),
        null(ENOENT),
        "zone 0"
    );
    assert_eq!(
        run(&lookup(hook, t.clone(), opts(-1, 6, 10, 2, 0))),
        null(ENOENT),
        "CT-20: zone 10 for replies only"
    );
    assert_eq!(
        run(&lookup(hook, t.clone(), opts(-1, 6, 10, 1, 0))),
        found(0),
        "zone 10 for the original direction is all an original tuple needs"
    );
    assert_eq!(
        run(&lookup(hook, reversed(&t), opts(-1, 6, 10, 1, 0))),
        null(ENOENT),
        "… but a reply tuple is looked up in the default zone then"
    );
    // A zone for replies only: the reply tuple is found through the reply direction's zone
    // id (`nf_conntrack_find_get` looks in that chain second).
    assert_eq!(
        run(&lookup(hook, reversed(&t), opts(-1, 6, 10, 2, 0))),
        found(1),
        "reply tuple, zone 10 for replies"
    );
    // CT-21: ct_zone_dir 0 is both directions.
    assert_eq!(
        run(&lookup(hook, reversed(&t), opts(-1, 6, 10, 0, 0))),
        found(1),
        "CT-21"
    );
    // The 12-byte form is the default zone.
    let mut old = base();
    old.truncate(12);
    assert_eq!(run(&lookup(hook, t, old)), null(ENOENT));
}

/// Namespaces: by id from the initial namespace, and as the caller's own.
fn namespaces(hook: Hook) {
    let ct = conntrack().unwrap();
    let nsid = 100 + hook as i32;
    let ns = Netns::new(Some(nsid)).unwrap();
    let net = ns.num;
    let t = tup(hook, 4);
    ct.add(&EntrySpec {
        net,
        zone: Zone::DEFAULT,
        orig: parse(&t),
        timeout: 60 * HZ,
        status: 0,
        mark: 0,
    })
    .unwrap();
    assert_eq!(
        run(&lookup(hook, t.clone(), base())),
        null(ENOENT),
        "not in init"
    );
    assert_eq!(
        run(&lookup(hook, t.clone(), opts(nsid, 6, 0, 0, 0))),
        found(0),
        "by id"
    );
    assert_eq!(
        run_in(&lookup(hook, t.clone(), base()), Some(ns.fd)),
        found(0),
        "current netns"
    );
    // Allocated from the initial namespace into the other one.
    let t2 = tup(hook, 5);
    assert_eq!(
        run(&alloc(hook, t2.clone(), opts(nsid, 6, 0, 0, 0))),
        ProbeResult::Inserted
    );
    assert_eq!(
        run_in(&lookup(hook, t2.clone(), base()), Some(ns.fd)),
        found(0)
    );
    assert_eq!(ct.nets.count(net), 2);
    // Closing the last handle makes the netns exit: its entries go with it.
    drop(ns);
    assert_eq!(ct.nets.count(net), 0);
    assert!(ct.list(Some(net)).is_empty());
    assert_eq!(run(&lookup(hook, t2, opts(nsid, 6, 0, 0, 0))), null(ENONET));
}

/// A global of the loaded `ct_nf.o`, by symbol.
fn global(obj: &LoadedObject, name: &str, len: usize) -> u64 {
    let (sec, off) = kbpf_shim::elf::symbols::symbol_offset(CT_NF_O, name).unwrap();
    let b = kbpf_shim::demo::read_global(obj, &sec, off as usize, len).unwrap();
    let mut w = [0u8; 8];
    w[..len].copy_from_slice(&b);
    u64::from_le_bytes(w)
}

/// CT-11..CT-17 from C (`shim/tests/elf/ct_nf.c`): alloc, timeout, status, mark, NAT,
/// insert, lookup, change timeout (read back against `bpf_jiffies64`) and status, and the
/// mark of an entry made beforehand bumped through the pointer.
fn c_program(hook: Hook) {
    let ct = conntrack().unwrap();
    let exist = Tuple::new(&[10, 7, 0, 1], &[10, 7, 0, 2], 4242, 80, IPPROTO_TCP).unwrap();
    ct.add(&EntrySpec {
        net: 0,
        zone: Zone::DEFAULT,
        orig: exist,
        timeout: 60 * HZ,
        status: 0,
        mark: 42,
    })
    .unwrap();
    let opts = LoadOpts {
        privileged: true,
        ..LoadOpts::default()
    };
    let obj = Object::parse(CT_NF_O).unwrap().load(&opts).unwrap();
    let name = match hook {
        Hook::Xdp => "nf_xdp_ct_test",
        Hook::Tc => "nf_skb_ct_test",
    };
    let fd = obj.prog(name).unwrap().fd;
    kbpf_shim::ct::run_once(fd, None).unwrap();
    let g = |n: &str| global(&obj, n, 4) as u32 as i32;
    assert_eq!(g("test_alloc_entry"), 0, "CT-11 alloc");
    assert_eq!(g("test_insert_entry"), 0, "CT-11 insert");
    assert_eq!(
        g("test_set_status"),
        -16,
        "CONFIRMED is not the program's to set: EBUSY"
    );
    assert_eq!(g("test_succ_lookup"), 0, "CT-12");
    assert_eq!(g("test_dir"), 0, "CT-12: original direction");
    assert_eq!(g("test_change_timeout"), 0);
    let delta = g("test_delta_timeout");
    assert!((9..=10).contains(&delta), "CT-13: {delta} s left of 10");
    assert_eq!(g("test_change_status"), 0, "CT-14");
    let st = global(&obj, "test_status", 8);
    let want = netfilter::status::CONFIRMED
        | netfilter::status::SEEN_REPLY
        | netfilter::status::SRC_NAT
        | netfilter::status::DST_NAT
        | netfilter::status::SRC_NAT_DONE
        | netfilter::status::DST_NAT_DONE;
    assert_eq!(st, want, "CT-14: status {st:#x}");
    assert_eq!(g("test_insert_lookup_mark"), 77, "CT-15");
    assert_eq!((g("test_snat"), g("test_dnat")), (0, 0), "CT-17 set-up");
    assert_eq!(g("test_snat_addr"), 0, "CT-17: SNAT'd reply destination");
    assert_eq!(g("test_dnat_addr"), 0, "CT-17: DNAT'd reply source");
    assert_eq!(g("test_exist_lookup"), 0, "CT-16");
    assert_eq!(
        g("test_exist_lookup_mark"),
        43,
        "CT-16: 42 bumped through the pointer"
    );
    let e = ct
        .list(Some(0))
        .into_iter()
        .find(|e| e.orig == exist)
        .unwrap();
    assert_eq!(e.mark, 43, "the write reached the table's entry");
    ct.delete(0, &Zone::DEFAULT, &exist).unwrap();
    obj.close();
}

/// Programs looking up (and releasing) on two threads while the control path adds, deletes
/// and expires the entries they look for: every reference comes back, nothing leaks.
fn concurrent(hook: Hook) {
    let ct = conntrack().unwrap();
    let ns = Netns::new(None).unwrap();
    let (net, nsfd) = (ns.num, ns.fd);
    let t = tup(hook, 9);
    let fd = kbpf_shim::ct::load(
        hook.prog_type(),
        &lookup(hook, t.clone(), base()).asm(&KfuncIds::kbpf()),
    )
    .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let hits = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (stop, hits) = (&stop, &hits);
            s.spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = kbpf_shim::ct::run_once(fd, Some(nsfd)).unwrap();
                    if matches!(ProbeResult::decode(r), ProbeResult::Found { .. }) {
                        hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
        for round in 0..300u64 {
            let spec = EntrySpec {
                net,
                zone: Zone::DEFAULT,
                orig: parse(&t),
                timeout: 1 + round % 3,
                status: 0,
                mark: 0,
            };
            let _ = ct.add(&spec);
            match round % 3 {
                0 => {
                    let _ = ct.delete(net, &Zone::DEFAULT, &parse(&t));
                }
                1 => {
                    ct.gc(ct.now() + 10);
                }
                _ => std::thread::yield_now(),
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let _ = kbpf::syscall::close(fd);
    drop(ns);
    assert_eq!(ct.nets.count(net), 0);
    eprintln!("{hook:?}: {} concurrent hits", hits.into_inner());
}

/// Every scenario on `engine`, both hooks.
pub fn all(engine: Engine) {
    kbpf_shim::host::install();
    engine.select();
    for hook in [Hook::Xdp, Hook::Tc] {
        validation_order(hook);
        alloc_insert_lookup(hook);
        zones(hook);
        namespaces(hook);
        c_program(hook);
        concurrent(hook);
    }
    let ct = conntrack().unwrap();
    ct.flush(None);
    assert_eq!(ct.live_objects(), 0, "nothing leaked");
}
