//! Cases shared by `jit_tailcall_direct.rs` (JIT) and `jit_tailcall_direct_interp.rs`
//! (interpreter): tail calls with a constant prog_array and index, which the JIT emits as
//! direct sites. Every slot change after load (fill, replace, delete, map close) must be seen
//! exactly as the interpreter sees it; the context is a 24-byte buffer whose first word counts
//! the bodies that ran.

mod stress;

use super::ENGINE;
use kbpf::insn::assemble;
use kbpf::syscall::{self, Fd, TestRun};
use kbpf::uapi::{MapType, ProgType};
use kbpf::{MapAttr, ProgLoadAttr};
use kbpf_shim::conformance::Engine;

/// The context every case runs on (the verifier checks accesses against it).
const CTX_LEN: usize = 24;

fn setup() {
    kbpf_shim::host::install();
    ENGINE.select();
}

/// Loads `src` with `{mN}` replaced by `maps[N]` through the verifier; asserts the engine and
/// that the JIT made `direct` direct sites (the interpreter makes none).
fn prog(src: &str, maps: &[Fd], direct: usize) -> Fd {
    load(src, maps, direct, false)
}

/// [`prog`] on the trusted path (`prog_load_trusted`, like the kernel's `lib/test_bpf.c`), for
/// a site the verifier rightly refuses but whose run-time fall-through is still tested.
fn prog_trusted(src: &str, maps: &[Fd], direct: usize) -> Fd {
    load(src, maps, direct, true)
}

fn load(src: &str, maps: &[Fd], direct: usize, trusted: bool) -> Fd {
    let mut text = src.to_string();
    for (i, m) in maps.iter().enumerate() {
        text = text.replace(&format!("{{m{i}}}"), &format!("map_fd {m}"));
    }
    let insns = assemble(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let attr = ProgLoadAttr::new(ProgType::RawBuffer, &insns).with_ctx_size(CTX_LEN as u32);
    let mut log = String::new();
    let fd = if trusted {
        let r = syscall::prog_load_log(&attr, &mut log);
        assert_eq!(
            r,
            Err(kbpf::Errno::EINVAL),
            "the verifier must refuse\n{text}"
        );
        assert!(log.contains("cannot pass map_type"), "{log}");
        syscall::prog_load_trusted(&ProgLoadAttr::new(ProgType::RawBuffer, &insns))
    } else {
        syscall::prog_load_log(&attr, &mut log)
    };
    let fd = fd.unwrap_or_else(|e| panic!("load: {e:?}: {log}\n{text}"));
    let p = syscall::prog_get(fd).unwrap();
    let jit = ENGINE == Engine::Jit;
    assert_eq!(p.jited(), jit, "engine of\n{text}");
    let want = if jit { direct } else { 0 };
    assert_eq!(p.direct_tail_calls().len(), want, "direct sites of\n{text}");
    fd
}

fn prog_array(slots: u32) -> Fd {
    syscall::map_create(&MapAttr::new(MapType::ProgArray, 4, 4, slots)).expect("map")
}

fn set(map: Fd, key: u32, prog: Fd) {
    syscall::map_update_elem(map, &key.to_ne_bytes(), &prog.to_ne_bytes(), 0).expect("update");
}

fn del(map: Fd, key: u32) {
    syscall::map_delete_elem(map, &key.to_ne_bytes()).expect("delete");
}

/// (R0, bodies counted at ctx+0).
fn run(fd: Fd) -> (u64, u64) {
    let mut ctx = [0u8; CTX_LEN];
    let r = syscall::prog_test_run(
        fd,
        &mut TestRun {
            data: &mut ctx,
            repeat: 1,
        },
    )
    .expect("run");
    (r.retval, u64::from_ne_bytes(ctx[..8].try_into().unwrap()))
}

/// Bump the counter at ctx+0.
const BUMP: &str = "ldxdw %r0, [%r1+0]\nadd %r0, 1\nstxdw [%r1+0], %r0\n";

/// `return n`, counting the body.
fn ret(n: u64) -> String {
    format!("{BUMP}mov %r0, {n}\nexit\n")
}

/// Bump, tail-call `{m0}[key]` with a constant key, return `fallback`.
fn call(key: u32, fallback: u64) -> String {
    format!("{BUMP}lddw %r2, {{m0}}\nmov %r3, {key}\ncall 12\nmov %r0, {fallback}\nexit\n")
}

#[test]
fn only_constant_keys_become_direct() {
    setup();
    let map = prog_array(4);
    set(map, 2, prog(&ret(42), &[], 0));
    assert_eq!(run(prog(&call(2, 1), &[map], 1)), (42, 2));
    // 32-bit mov and a plain 64-bit load of the key are constants too.
    let p = prog(
        "mov32 %r3, 2\nlddw %r2, {m0}\ncall 12\nmov %r0, 1\nexit\n",
        &[map],
        1,
    );
    assert_eq!(run(p), (42, 1));
    let p = prog(
        "lddw %r2, {m0}\nlddw %r3, 0x100000002\ncall 12\nmov %r0, 1\nexit\n",
        &[map],
        1,
    );
    assert_eq!(run(p), (42, 1), "index truncated to u32");
    // A key from a register, or a definition on another path, stays indirect.
    let p = prog(
        "ldxdw %r3, [%r1+8]\nadd %r3, 2\nlddw %r2, {m0}\ncall 12\nmov %r0, 1\nexit\n",
        &[map],
        0,
    );
    assert_eq!(run(p), (42, 1));
    let p = prog(
        "lddw %r2, {m0}\nmov %r3, 2\nja l\nl:\ncall 12\nmov %r0, 1\nexit\n",
        &[map],
        0,
    );
    assert_eq!(run(p), (42, 1));
}

#[test]
fn out_of_range_and_non_prog_array_sites_always_fall_through() {
    setup();
    let map = prog_array(4);
    let array = syscall::map_create(&MapAttr::new(MapType::Array, 4, 4, 8)).unwrap();
    let p = prog(&call(4, 7), &[map], 1);
    assert_eq!(run(p), (7, 1));
    let src = "lddw %r2, {m1}\nmov %r3, 0\ncall 12\nmov %r0, 9\nexit\n";
    // An array map passed to bpf_tail_call: refused by the verifier (seed 000); the site's
    // run-time fall-through is tested on the trusted path.
    let q = prog_trusted(src, &[map, array], 1);
    assert_eq!(run(q), (9, 0));
    set(map, 0, prog(&ret(42), &[], 0));
    assert_eq!(run(p), (7, 1));
    assert_eq!(run(q), (9, 0));
}

#[test]
fn slot_changes_after_load_are_seen() {
    setup();
    let map = prog_array(4);
    let caller = prog(&call(1, 5), &[map], 1);
    assert_eq!(run(caller), (5, 1), "empty at load");
    let (a, b) = (prog(&ret(10), &[], 0), prog(&ret(20), &[], 0));
    set(map, 1, a);
    assert_eq!(run(caller), (10, 2), "filled after load");
    set(map, 1, b);
    assert_eq!(run(caller), (20, 2), "replaced");
    set(map, 1, b);
    assert_eq!(run(caller), (20, 2), "same program again");
    del(map, 1);
    assert_eq!(run(caller), (5, 1), "deleted");
    set(map, 1, a);
    // A program loaded while the slot is filled starts out jumping.
    let late = prog(&call(1, 6), &[map], 1);
    assert_eq!(run(late), (10, 2));
    // Closing the map's last handle clears it; the programs keep the map itself.
    syscall::close(map).unwrap();
    assert_eq!(run(caller), (5, 1), "map closed");
    assert_eq!(run(late), (6, 1));
}

#[test]
fn empty_direct_slot_uses_no_budget() {
    setup();
    let map = prog_array(8);
    // Each body tries empty slot 5, then calls itself through slot 0.
    let src = format!(
        "mov %r6, %r1\n{BUMP}lddw %r2, {{m0}}\nmov %r3, 5\ncall 12\nmov %r1, %r6\nlddw %r2, {{m0}}\nmov %r3, 0\ncall 12\nmov %r0, 7\nexit\n"
    );
    let p = prog(&src, &[map], 2);
    set(map, 0, p);
    assert_eq!(run(p), (7, 34));
}

#[test]
fn self_tail_call_runs_34_bodies_and_tc18_counts_33() {
    setup();
    let map = prog_array(4);
    let looper = prog(&call(1, 41), &[map], 1);
    set(map, 1, looper);
    assert_eq!(run(looper), (41, 34), "1 entry + 33 tail calls");
    // TC-18 "tailcall3": the counting classifier tail-calls itself through a direct jump.
    let map = prog_array(4);
    set(map, 0, prog(&call(0, 1), &[map], 1));
    let entry = prog(
        "lddw %r2, {m0}\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit\n",
        &[map],
        1,
    );
    assert_eq!(run(entry), (1, 33));
    del(map, 0);
    assert_eq!(run(entry), (0, 0));
}

#[test]
fn a_freed_program_leaves_no_site_behind() {
    setup();
    let map = prog_array(2);
    let a = prog(&ret(1), &[], 0);
    let caller = prog(&call(0, 3), &[map], 1);
    set(map, 0, a);
    assert_eq!(run(caller), (1, 2));
    // Free the caller (its image with it); later updates must not touch its sites.
    syscall::close(caller).unwrap();
    kbpf::cpu::rcu().barrier();
    let b = prog(&ret(2), &[], 0);
    set(map, 0, b);
    del(map, 0);
    set(map, 0, a);
    let again = prog(&call(0, 3), &[map], 1);
    assert_eq!(run(again), (1, 2));
}
