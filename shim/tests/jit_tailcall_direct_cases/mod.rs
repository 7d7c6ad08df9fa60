//! Cases shared by `jit_tailcall_direct.rs` (JIT) and `jit_tailcall_direct_interp.rs`
//! (interpreter): tail calls whose prog_array and in-range index the verifier saw constant on
//! every path (`map_ptr_state`/`map_key_state`), which the JIT emits as direct sites. Every slot change after load (fill, replace, delete, map close) must be seen
//! exactly as the interpreter sees it; the context is a 24-byte buffer whose first word counts
//! the bodies that ran.

mod stress;

#[path = "../support/tailcall.rs"]
mod support;

use super::ENGINE;
use kbpf::MapAttr;
use kbpf::syscall::{self, Fd};
use kbpf::uapi::MapType;
use kbpf_shim::conformance::Engine;
use support::{BUMP, CTX_LEN, del, prog_array, run, set};

fn setup() {
    support::setup(ENGINE);
}

/// Loads `src` with `{mN}` replaced by `maps[N]` through the verifier; asserts the engine and
/// that the JIT made `direct` direct sites (the interpreter makes none).
fn prog(src: &str, maps: &[Fd], direct: usize) -> Fd {
    with_direct_sites(support::load(ENGINE, src, maps, false), direct)
}

/// [`prog`] on the trusted path, for a site the verifier rightly refuses (a map that is no
/// prog_array) but whose run-time fall-through is still tested. No verifier facts, so no
/// direct site: the trusted path's tail calls check everything at run time.
fn prog_trusted(src: &str, maps: &[Fd]) -> Fd {
    let (e, log) = support::verifier_rejects(src, maps);
    assert_eq!(e, kbpf::Errno::EINVAL, "the verifier must refuse\n{src}");
    assert!(log.contains("cannot pass map_type"), "{log}");
    with_direct_sites(support::load(ENGINE, src, maps, true), 0)
}

/// Asserts the JIT made `direct` direct sites in `fd` (the interpreter makes none).
fn with_direct_sites(fd: Fd, direct: usize) -> Fd {
    let want = if ENGINE == Engine::Jit { direct } else { 0 };
    let sites = syscall::prog_get(fd).unwrap().direct_tail_calls().len();
    assert_eq!(sites, want, "direct sites");
    fd
}

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
    // The key's 64-bit value must be below max_entries (`record_func_key`): this one is not,
    // so the site stays indirect, where the index is truncated to u32.
    let p = prog(
        "lddw %r2, {m0}\nlddw %r3, 0x100000002\ncall 12\nmov %r0, 1\nexit\n",
        &[map],
        0,
    );
    assert_eq!(run(p), (42, 1), "index truncated to u32");
    // A key from a register stays indirect.
    let p = prog(
        "ldxdw %r3, [%r1+8]\nadd %r3, 2\nlddw %r2, {m0}\ncall 12\nmov %r0, 1\nexit\n",
        &[map],
        0,
    );
    assert_eq!(run(p), (42, 1));
    // The verifier's facts hold over every path: the same key on both sides of a join is
    // still a constant (a local look at the instructions could not tell). (A join the
    // verifier keeps: it deletes a `ja +0` as `opt_remove_nops` does.)
    let p = prog(
        "lddw %r2, {m0}\nmov %r3, 2\nldxdw %r4, [%r1+8]\njeq %r4, 0, l\nl:\ncall 12\nmov %r0, 1\nexit\n",
        &[map],
        1,
    );
    assert_eq!(run(p), (42, 1));
    // Different keys on the two paths: poisoned, indirect.
    let p = prog(
        "lddw %r2, {m0}\nmov %r3, 2\nldxdw %r4, [%r1+8]\njeq %r4, 0, l\nmov %r3, 1\nl:\ncall 12\nmov %r0, 1\nexit\n",
        &[map],
        0,
    );
    assert_eq!(run(p), (42, 1));
}

#[test]
fn a_site_two_maps_reach_stays_indirect_and_uses_the_map_it_gets() {
    setup();
    let (a, b) = (prog_array(4), prog_array(4));
    set(a, 1, prog(&ret(10), &[], 0));
    set(b, 1, prog(&ret(20), &[], 0));
    // R2 is map a or map b depending on the input word: poisoned (`BPF_MAP_PTR_POISON`), so
    // the verified site reads the prog_array from R2 at run time; the key is still constant.
    let src = "ldxdw %r4, [%r1+8]\nlddw %r2, {m0}\njeq %r4, 0, l\nlddw %r2, {m1}\nl:\n\
               mov %r3, 1\ncall 12\nmov %r0, 1\nexit\n";
    let p = prog(src, &[a, b], 0);
    assert_eq!(support::run_with(p, 0).0, 10, "map a");
    assert_eq!(support::run_with(p, 1).0, 20, "map b");
}

#[test]
fn out_of_range_and_non_prog_array_sites_always_fall_through() {
    setup();
    let map = prog_array(4);
    let array = syscall::map_create(&MapAttr::new(MapType::Array, 4, 4, 8)).unwrap();
    // A constant key out of range is poisoned (`record_func_key`): indirect, falls through.
    let p = prog(&call(4, 7), &[map], 0);
    assert_eq!(run(p), (7, 1));
    let src = "lddw %r2, {m1}\nmov %r3, 0\ncall 12\nmov %r0, 9\nexit\n";
    // An array map passed to bpf_tail_call: refused by the verifier (seed 000); the site's
    // run-time fall-through is tested on the trusted path.
    let q = prog_trusted(src, &[map, array]);
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
