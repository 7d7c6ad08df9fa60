//! Tail-call scenarios from `research/kernel-scenarios.md` §2 that need no JIT, through the
//! syscall facade. Programs are raw-buffer programs written in the conformance assembly; `{mN}`
//! in the text stands for the N-th map handle. The context is a 16-byte buffer whose first u64
//! programs use as a counter.

use kbpf::Errno;
use kbpf::insn::assemble;
use kbpf::syscall::{self, Fd, TestRun};
use kbpf::uapi::{MapType, ProgType};
use kbpf::{MapAttr, ProgLoadAttr};

fn setup() {
    kbpf_shim::host::install();
}

fn prog_as(ty: ProgType, src: &str, maps: &[Fd]) -> Result<Fd, Errno> {
    let mut text = src.to_string();
    for (i, m) in maps.iter().enumerate() {
        text = text.replace(&format!("{{m{i}}}"), &format!("map_fd {m}"));
    }
    let insns = assemble(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut attr = ProgLoadAttr::new(ty, &insns);
    if ty == ProgType::RawBuffer {
        attr = attr.with_ctx_size(CTX_LEN as u32);
    }
    syscall::prog_load(&attr)
}

/// The raw-buffer context every case runs on (the verifier checks accesses against it).
const CTX_LEN: usize = 16;

fn prog(src: &str, maps: &[Fd]) -> Fd {
    prog_as(ProgType::RawBuffer, src, maps).expect("load")
}

fn prog_array(slots: u32) -> Fd {
    syscall::map_create(&MapAttr::new(MapType::ProgArray, 4, 4, slots)).expect("map")
}

fn set(map: Fd, key: u32, prog: Fd) -> Result<(), Errno> {
    syscall::map_update_elem(map, &key.to_ne_bytes(), &prog.to_ne_bytes(), 0)
}

fn del(map: Fd, key: u32) -> Result<(), Errno> {
    syscall::map_delete_elem(map, &key.to_ne_bytes())
}

/// Runs `fd` on a zeroed 16-byte context; returns (R0, the counter).
fn run(fd: Fd) -> (u64, u64) {
    let mut ctx = [0u8; CTX_LEN];
    let r = syscall::prog_test_run(
        fd,
        &mut TestRun {
            data: &mut ctx,
            repeat: 1,
            ..Default::default()
        },
    )
    .expect("run");
    (r.retval, u64::from_ne_bytes(ctx[..8].try_into().unwrap()))
}

/// `return N`.
fn ret(n: u64) -> String {
    format!("mov %r0, {n}\nexit\n")
}

/// Tail-call `map[key]`, then return `fallback`.
fn call_key(key: i64, fallback: u64) -> String {
    format!("lddw %r2, {{m0}}\nlddw %r3, {key}\ncall 12\nmov %r0, {fallback}\nexit\n")
}

/// Bump the counter, tail-call `map[key]`, return `fallback`.
fn counting_call(key: u32, fallback: u64) -> String {
    format!(
        "ldxdw %r0, [%r1+0]\nadd %r0, 1\nstxdw [%r1+0], %r0\nlddw %r2, {{m0}}\nmov %r3, {key}\ncall 12\nmov %r0, {fallback}\nexit\n"
    )
}

#[test]
fn tc01_03_07_08_09_hit_empty_and_out_of_range() {
    setup();
    let map = prog_array(4);
    let p42 = prog(&ret(42), &[]);
    set(map, 0, p42).unwrap();
    assert_eq!(run(prog(&call_key(0, 1), &[map])).0, 42, "TC-01");
    assert_eq!(
        run(prog(&call_key(3, 1), &[map])).0,
        1,
        "TC-03: empty slot falls through"
    );
    assert_eq!(
        run(prog(&call_key(256, 2), &[map])).0,
        2,
        "TC-07: out of range"
    );
    assert_eq!(
        run(prog(&call_key(0xffff_ffff, 2), &[map])).0,
        2,
        "TC-08: key -1"
    );
    assert_eq!(
        run(prog(&call_key(0x1_0000_0000, 2), &[map])).0,
        42,
        "TC-09: index truncated to u32"
    );
}

#[test]
fn tc02_tc10_self_tail_call_runs_34_bodies() {
    setup();
    let map = prog_array(4);
    let looper = prog(&counting_call(1, 41), &[map]);
    set(map, 1, looper).unwrap();
    assert_eq!(
        run(looper),
        (41, 34),
        "1 entry + 33 tail calls, the last copy returns 41"
    );
    let entry = prog(&call_key(1, 1), &[map]);
    assert_eq!(
        run(entry),
        (41, 33),
        "entered through a tail call: 33 bodies"
    );
}

#[test]
fn tc04_05_constant_keys_on_branches() {
    setup();
    let map = prog_array(4);
    set(map, 0, prog(&ret(42), &[])).unwrap();
    set(map, 2, prog(&ret(24), &[])).unwrap();
    let src = "ldxdw %r4, [%r1+8]\nlddw %r2, {m0}\njeq %r4, 0, a\nmov %r3, 2\nja go\na:\nmov %r3, 0\ngo:\ncall 12\nmov %r0, 1\nexit\n";
    let p = prog(src, &[map]);
    let mut ctx = [0u8; CTX_LEN];
    ctx[8] = 1;
    let r = syscall::prog_test_run(
        p,
        &mut TestRun {
            data: &mut ctx,
            repeat: 1,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.retval, 24, "TC-05 branch B");
    assert_eq!(run(p).0, 42, "TC-05 branch A");
}

#[test]
fn tc06_two_maps_at_one_site() {
    setup();
    let (m1, m2) = (prog_array(4), prog_array(4));
    set(m1, 0, prog(&ret(42), &[])).unwrap();
    let src = "ldxdw %r4, [%r1+8]\nlddw %r2, {m0}\njeq %r4, 0, go\nlddw %r2, {m1}\ngo:\nmov %r3, 0\ncall 12\nmov %r0, 1\nexit\n";
    let p = prog(src, &[m1, m2]);
    let mut ctx = [0u8; CTX_LEN];
    ctx[8] = 1;
    let r = syscall::prog_test_run(
        p,
        &mut TestRun {
            data: &mut ctx,
            repeat: 1,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.retval, 1, "map2's slot 0 is empty");
    assert_eq!(run(p).0, 42);
}

#[test]
fn empty_slot_uses_no_budget() {
    setup();
    let map = prog_array(8);
    // Every body first tries empty slot 5, then tail-calls itself through slot 0.
    let src = "mov %r6, %r1\nldxdw %r0, [%r1+0]\nadd %r0, 1\nstxdw [%r1+0], %r0\nlddw %r2, {m0}\nmov %r3, 5\ncall 12\nmov %r1, %r6\nlddw %r2, {m0}\nmov %r3, 0\ncall 12\nmov %r0, 7\nexit\n";
    let p = prog(src, &[map]);
    set(map, 0, p).unwrap();
    assert_eq!(run(p), (7, 34));
}

#[test]
fn tc11_prog_array_update_and_delete_errors() {
    setup();
    let map = prog_array(4);
    let p = prog(&ret(1), &[]);
    let k0 = 0u32.to_ne_bytes();
    let v = p.to_ne_bytes();
    assert_eq!(
        syscall::map_update_elem(map, &k0, &v, 1),
        Err(Errno::EINVAL),
        "BPF_NOEXIST"
    );
    assert_eq!(
        syscall::map_update_elem(map, &k0, &v, 2),
        Err(Errno::EINVAL),
        "BPF_EXIST"
    );
    assert_eq!(set(map, 4, p), Err(Errno::E2BIG));
    assert_eq!(del(map, 0), Err(Errno::ENOENT));
    assert_eq!(del(map, 4), Err(Errno::E2BIG));
    assert_eq!(
        syscall::map_update_elem(map, &k0, &999u32.to_ne_bytes(), 0),
        Err(Errno::EBADF)
    );
    assert_eq!(
        syscall::map_update_elem(map, &k0, &map.to_ne_bytes(), 0),
        Err(Errno::EINVAL),
        "a map is not a program"
    );
    set(map, 0, p).unwrap();
    let mut id = [0u8; 4];
    syscall::map_lookup_elem(map, &k0, &mut id).unwrap();
    let kbpf::syscall::ObjInfo::Prog(info) = syscall::obj_get_info(p).unwrap() else {
        panic!()
    };
    assert_eq!(
        u32::from_ne_bytes(id),
        info.id,
        "user-space lookup yields the program id"
    );
    assert_eq!(
        syscall::map_lookup_elem(map, &1u32.to_ne_bytes(), &mut id),
        Err(Errno::ENOENT)
    );
    let bad = syscall::map_create(&MapAttr::new(MapType::ProgArray, 4, 8, 4));
    assert_eq!(bad, Err(Errno::EINVAL), "value size must be 4");
}

#[test]
fn tc12_owner_mismatch_on_insert_and_at_load() {
    setup();
    let map = prog_array(4);
    let raw = prog(&ret(1), &[]);
    set(map, 0, raw).unwrap();
    let sf = prog_as(ProgType::SocketFilter, &ret(1), &[]).unwrap();
    assert_eq!(
        set(map, 1, sf),
        Err(Errno::EINVAL),
        "insert of another program type"
    );
    assert_eq!(
        prog_as(ProgType::SocketFilter, &call_key(0, 1), &[map]),
        Err(Errno::EINVAL),
        "load against it"
    );
    // A failed load records nothing: a fresh map first used by a failing load stays unowned.
    let fresh = prog_array(4);
    let bad = "lddw %r2, {m0}\nlddw %r4, {m1}\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit\n";
    assert_eq!(
        prog_as(ProgType::SocketFilter, bad, &[fresh, map]),
        Err(Errno::EINVAL)
    );
    set(fresh, 0, raw).expect("fresh map still unowned, so a raw-buffer program can claim it");
}

#[test]
fn tc13_17_selftest_chains() {
    setup();
    let map = prog_array(4);
    let cls: Vec<Fd> = (0..3).map(|i| prog(&ret(i), &[])).collect();
    // tailcall1: slot 0, then 1, then 2, then return 3.
    let t1 = prog(
        "mov %r6, %r1\nlddw %r2, {m0}\nmov %r3, 0\ncall 12\nmov %r1, %r6\nlddw %r2, {m0}\nmov %r3, 1\ncall 12\nmov %r1, %r6\nlddw %r2, {m0}\nmov %r3, 2\ncall 12\nmov %r0, 3\nexit\n",
        &[map],
    );
    for (i, &c) in cls.iter().enumerate() {
        set(map, i as u32, c).unwrap();
    }
    for i in 0..3 {
        assert_eq!(run(t1).0, i, "TC-13");
        del(map, i as u32).unwrap();
    }
    assert_eq!(run(t1).0, 3);
    for i in 0..3 {
        assert_eq!(del(map, i), Err(Errno::ENOENT), "TC-16");
        assert_eq!(run(t1).0, 3);
    }
    for (i, &c) in cls.iter().enumerate() {
        set(map, i as u32, cls[2 - i]).unwrap();
        let _ = c;
    }
    for i in 0..3 {
        assert_eq!(run(t1).0, 2 - i, "TC-15");
        del(map, i as u32).unwrap();
    }
    // tailcall2: entry -> 0 -> 1 -> 2, each classifier falling back to its own index.
    let c0 = prog(
        "lddw %r2, {m0}\nmov %r3, 1\ncall 12\nmov %r0, 0\nexit\n",
        &[map],
    );
    let c1 = prog(
        "lddw %r2, {m0}\nmov %r3, 2\ncall 12\nmov %r0, 1\nexit\n",
        &[map],
    );
    let c2 = prog(&ret(2), &[]);
    for (i, c) in [c0, c1, c2].into_iter().enumerate() {
        set(map, i as u32, c).unwrap();
    }
    let entry = prog(&call_key(0, 3), &[map]);
    assert_eq!(run(entry).0, 2, "TC-17");
    del(map, 2).unwrap();
    assert_eq!(run(entry).0, 1);
    del(map, 0).unwrap();
    assert_eq!(run(entry).0, 3);
}

#[test]
fn tc18_counting_classifier_reaches_33() {
    setup();
    let map = prog_array(4);
    let c0 = prog(&counting_call(0, 1), &[map]);
    set(map, 0, c0).unwrap();
    let entry = prog(&call_key(0, 0), &[map]);
    assert_eq!(run(entry), (1, 33));
    del(map, 0).unwrap();
    assert_eq!(run(entry), (0, 0));
}

#[test]
fn tc22_tail_call_from_a_subprogram() {
    setup();
    let map = prog_array(4);
    // classifier_0 bumps the count and tail-calls itself from inside a subprogram.
    let src = "ldxdw %r0, [%r1+0]\nadd %r0, 1\nstxdw [%r1+0], %r0\ncall local sub\nmov %r0, 1\nexit\nsub:\nlddw %r2, {m0}\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit\n";
    let c0 = prog(src, &[map]);
    set(map, 0, c0).unwrap();
    let entry = prog(&call_key(0, 0), &[map]);
    assert_eq!(
        run(entry),
        (1, 33),
        "the callee's result returns to the subprogram's caller"
    );
    del(map, 0).unwrap();
    assert_eq!(run(entry), (0, 0));
}

#[test]
fn slot_replaced_between_runs() {
    setup();
    let map = prog_array(2);
    let entry = prog(&call_key(0, 9), &[map]);
    set(map, 0, prog(&ret(1), &[])).unwrap();
    assert_eq!(run(entry).0, 1);
    set(map, 0, prog(&ret(2), &[])).unwrap();
    assert_eq!(run(entry).0, 2);
    del(map, 0).unwrap();
    assert_eq!(run(entry).0, 9);
}

#[test]
fn closing_the_last_handle_clears_the_slots() {
    setup();
    let map = prog_array(2);
    let entry = prog(&call_key(0, 9), &[map]);
    set(map, 0, prog(&ret(1), &[])).unwrap();
    assert_eq!(run(entry).0, 1);
    // The entry program keeps the map alive, but the user handle is gone: slots are cleared.
    syscall::close(map).unwrap();
    assert_eq!(run(entry).0, 9);
}

#[test]
fn program_lookup_of_a_prog_array_is_null() {
    setup();
    let map = prog_array(2);
    // The map is used by a trusted program below, so its slot program is trusted too (a
    // prog_array holds one kind: verified for one buffer length, or trusted).
    let slot_insns = assemble(&ret(1)).unwrap();
    let slot = syscall::prog_load_trusted(&ProgLoadAttr::new(ProgType::RawBuffer, &slot_insns));
    set(map, 0, slot.unwrap()).unwrap();
    let src = "stw [%r10-4], 0\nlddw %r1, {m0}\nmov %r2, %r10\nadd %r2, -4\ncall 1\nexit\n";
    // The verifier refuses a prog_array anywhere but bpf_tail_call (seed 000) ...
    assert_eq!(
        prog_as(ProgType::RawBuffer, src, &[map]),
        Err(Errno::EINVAL)
    );
    // ... and the helper's own answer, for a program on the trusted path, is NULL.
    let text = src.replace("{m0}", &format!("map_fd {map}"));
    let insns = assemble(&text).unwrap();
    let trusted = syscall::prog_load_trusted(&ProgLoadAttr::new(ProgType::RawBuffer, &insns));
    assert_eq!(run(trusted.unwrap()).0, 0);
}
