//! Tail-call cases shared by `jit_tailcall.rs` (JIT) and `jit_tailcall_interp.rs`
//! (interpreter). Programs are raw-buffer programs in the conformance assembly; `{mN}` stands for
//! the N-th map. The context is a 24-byte buffer: a body counter at 0, an input at 8, a second
//! counter at 16. Every expected value follows from the interpreter's rules (index truncated to
//! u32; out of range or empty slot: fall through, no count; 33 tail calls per run, shared by
//! every frame and prog_array; registers and stack kept across a tail call).

#[path = "../support/tailcall.rs"]
mod support;

use super::ENGINE;
use kbpf::MapAttr;
use kbpf::cpu::CpuGuard;
use kbpf::cpu::Fault;
use kbpf::syscall::{self, Fd};
use kbpf::uapi::MapType;
use support::{BUMP, CTX_LEN, del, prog_array, run, run_with, set, verifier_rejects};

fn setup() {
    support::setup(ENGINE);
}

/// Loads `src` with `{mN}` replaced by `maps[N]` through the verifier; asserts it runs on
/// [`ENGINE`].
fn prog(src: &str, maps: &[Fd]) -> Fd {
    support::load(ENGINE, src, maps, false)
}

/// [`prog`] on the trusted path, for the engine cases that exercise run-time behaviour the
/// verifier rightly keeps verified programs from reaching; each caller asserts that the
/// verifier does reject its program.
fn prog_trusted(src: &str, maps: &[Fd]) -> Fd {
    support::load(ENGINE, src, maps, true)
}

/// `return N`.
fn ret(n: u64) -> String {
    format!("mov %r0, {n}\nexit\n")
}

/// Tail-call `{m0}[key]` (a 64-bit key), then return `fallback`.
fn call_key(key: i64, fallback: u64) -> String {
    format!("lddw %r2, {{m0}}\nlddw %r3, {key}\ncall 12\nmov %r0, {fallback}\nexit\n")
}

/// Bump the counter, tail-call `{m0}[key]`, return `fallback`.
fn counting_call(key: u32, fallback: u64) -> String {
    format!("{BUMP}lddw %r2, {{m0}}\nmov %r3, {key}\ncall 12\nmov %r0, {fallback}\nexit\n")
}

#[test]
fn tc01_03_07_08_09_hit_empty_out_of_range_and_truncation() {
    setup();
    let map = prog_array(4);
    set(map, 0, prog(&ret(42), &[]));
    assert_eq!(run(prog(&call_key(0, 1), &[map])).0, 42, "TC-01");
    assert_eq!(run(prog(&call_key(3, 1), &[map])).0, 1, "TC-03 empty");
    assert_eq!(run(prog(&call_key(256, 2), &[map])).0, 2, "TC-07");
    assert_eq!(run(prog(&call_key(0xffff_ffff, 2), &[map])).0, 2, "TC-08");
    assert_eq!(
        run(prog(&call_key(4, 2), &[map])).0,
        2,
        "index == max_entries"
    );
    assert_eq!(
        run(prog(&call_key(0x1_0000_0000, 2), &[map])).0,
        42,
        "TC-09: index truncated to u32"
    );
    assert_eq!(
        run(prog(&call_key(-4, 2), &[map])).0,
        2,
        "0xffff_fffc after truncation"
    );
}

#[test]
fn tc02_tc10_self_tail_call_runs_34_bodies() {
    setup();
    let map = prog_array(4);
    let looper = prog(&counting_call(1, 41), &[map]);
    set(map, 1, looper);
    assert_eq!(run(looper), (41, 34), "1 entry + 33 tail calls");
    let entry = prog(&call_key(1, 1), &[map]);
    assert_eq!(run(entry), (41, 33), "entered through a tail call");
    // Runs are independent: the counter starts at 0 each time.
    assert_eq!(run(looper), (41, 34));
}

#[test]
fn repeated_test_runs_each_start_with_a_fresh_budget() {
    setup();
    let map = prog_array(4);
    let looper = prog(&counting_call(1, 41), &[map]);
    set(map, 1, looper);
    // 300 runs in one BPF_PROG_TEST_RUN: more than one read-side section (256 runs each), every
    // run 1 entry + 33 tail calls, all counted into one buffer.
    let mut ctx = [0u8; CTX_LEN];
    let r = syscall::prog_test_run(
        looper,
        &mut syscall::TestRun {
            data: &mut ctx,
            repeat: 300,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.retval, 41);
    assert_eq!(u64::from_ne_bytes(ctx[..8].try_into().unwrap()), 34 * 300);
}

#[test]
fn tc04_05_06_keys_and_maps_chosen_on_branches() {
    setup();
    let (m1, m2) = (prog_array(4), prog_array(4));
    set(m1, 0, prog(&ret(42), &[]));
    set(m1, 2, prog(&ret(24), &[]));
    let src = "ldxdw %r4, [%r1+8]\nlddw %r2, {m0}\njeq %r4, 0, a\nmov %r3, 2\nja go\na:\nmov %r3, 0\ngo:\ncall 12\nmov %r0, 1\nexit\n";
    let p = prog(src, &[m1]);
    assert_eq!(run_with(p, 1).0, 24, "TC-05 branch B");
    assert_eq!(run_with(p, 0).0, 42, "TC-05 branch A");
    let src = "ldxdw %r4, [%r1+8]\nlddw %r2, {m0}\njeq %r4, 0, go\nlddw %r2, {m1}\ngo:\nmov %r3, 0\ncall 12\nmov %r0, 1\nexit\n";
    let p = prog(src, &[m1, m2]);
    assert_eq!(run_with(p, 1).0, 1, "TC-06: map2's slot 0 is empty");
    assert_eq!(run_with(p, 0).0, 42);
}

#[test]
fn r2_that_is_not_a_prog_array_of_the_program_falls_through() {
    setup();
    let map = prog_array(4);
    // Trusted slot program: this map is used by a trusted program below (one kind per map).
    set(map, 0, prog_trusted(&ret(42), &[]));
    let array = syscall::map_create(&MapAttr::new(MapType::Array, 4, 8, 4)).unwrap();
    // An array map the program uses: not a prog_array.
    let src = "lddw %r2, {m1}\nmov %r3, 0\ncall 12\nlddw %r2, {m0}\nadd %r2, 8\ncall 12\nmov %r0, 5\nexit\n";
    // The verifier refuses both (seed 000); the run-time check stays, tested on the trusted path.
    let (e, log) = verifier_rejects(src, &[map, array]);
    assert_eq!(e, kbpf::Errno::EINVAL);
    assert!(
        log.contains("cannot pass map_type 2 into func bpf_tail_call#12"),
        "{log}"
    );
    let p = prog_trusted(src, &[map, array]);
    assert_eq!(run(p).0, 5, "an array map, then a pointer that is no map");
}

#[test]
fn empty_slot_uses_no_budget() {
    setup();
    let map = prog_array(8);
    // Every body first tries empty slot 5, then tail-calls itself through slot 0.
    let src = format!(
        "mov %r6, %r1\n{BUMP}lddw %r2, {{m0}}\nmov %r3, 5\ncall 12\nmov %r1, %r6\nlddw %r2, {{m0}}\nmov %r3, 0\ncall 12\nmov %r0, 7\nexit\n"
    );
    let p = prog(&src, &[map]);
    set(map, 0, p);
    assert_eq!(run(p), (7, 34));
}

#[test]
fn tc13_17_selftest_chains() {
    setup();
    let map = prog_array(4);
    let cls: Vec<Fd> = (0..3).map(|i| prog(&ret(i), &[])).collect();
    let t1 = prog(
        "mov %r6, %r1\nlddw %r2, {m0}\nmov %r3, 0\ncall 12\nmov %r1, %r6\nlddw %r2, {m0}\nmov %r3, 1\ncall 12\nmov %r1, %r6\nlddw %r2, {m0}\nmov %r3, 2\ncall 12\nmov %r0, 3\nexit\n",
        &[map],
    );
    for (i, &c) in cls.iter().enumerate() {
        set(map, i as u32, c);
    }
    for i in 0..3 {
        assert_eq!(run(t1).0, i, "TC-13");
        del(map, i as u32);
    }
    assert_eq!(run(t1).0, 3, "TC-16");
    for i in 0..3 {
        set(map, i as u32, cls[2 - i]);
    }
    for i in 0..3 {
        assert_eq!(run(t1).0, 2 - i, "TC-15");
        del(map, i as u32);
    }
    let c0 = prog(
        "lddw %r2, {m0}\nmov %r3, 1\ncall 12\nmov %r0, 0\nexit\n",
        &[map],
    );
    let c1 = prog(
        "lddw %r2, {m0}\nmov %r3, 2\ncall 12\nmov %r0, 1\nexit\n",
        &[map],
    );
    for (i, c) in [c0, c1, cls[2]].into_iter().enumerate() {
        set(map, i as u32, c);
    }
    let entry = prog(&call_key(0, 3), &[map]);
    assert_eq!(run(entry).0, 2, "TC-17");
    del(map, 2);
    assert_eq!(run(entry).0, 1);
    del(map, 0);
    assert_eq!(run(entry).0, 3);
}

#[test]
fn tc18_counting_classifier_reaches_33() {
    setup();
    let map = prog_array(4);
    set(map, 0, prog(&counting_call(0, 1), &[map]));
    let entry = prog(&call_key(0, 0), &[map]);
    assert_eq!(run(entry), (1, 33));
    del(map, 0);
    assert_eq!(run(entry), (0, 0));
}

#[test]
fn tc22_tail_call_from_a_subprogram_returns_to_its_caller() {
    setup();
    let map = prog_array(4);
    let src = format!(
        "{BUMP}call local sub\nmov %r0, 1\nexit\nsub:\nlddw %r2, {{m0}}\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit\n"
    );
    set(map, 0, prog(&src, &[map]));
    let entry = prog(&call_key(0, 0), &[map]);
    assert_eq!(run(entry), (1, 33));
    del(map, 0);
    assert_eq!(run(entry), (0, 0));
}

#[test]
fn tc30_31_hierarchy_1_budget_shared_by_sibling_subprogram_calls() {
    setup();
    let map = prog_array(4);
    let src = format!(
        "mov %r6, %r1\n{BUMP}mov %r1, %r6\ncall local sub\nmov %r1, %r6\ncall local sub\nmov %r0, 1\nexit\nsub:\nlddw %r2, {{m0}}\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit\n"
    );
    let entry = prog(&src, &[map]);
    set(map, 0, entry);
    assert_eq!(run(entry), (1, 34), "TC-30");
    del(map, 0);
    assert_eq!(run(entry), (1, 1), "TC-31: one body more");
}

#[test]
fn tc33_hierarchy_2_first_branch_takes_the_whole_budget() {
    setup();
    let map = prog_array(4);
    let sub0 = "sub0:\nlddw %r2, {m0}\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit\n";
    let sub1 = "sub1:\nlddw %r2, {m0}\nmov %r3, 1\ncall 12\nmov %r0, 0\nexit\n";
    let subs = format!("{sub0}{sub1}");
    let entry = prog(
        &format!(
            "mov %r6, %r1\ncall local sub0\nmov %r1, %r6\ncall local sub1\nldxdw %r0, [%r6+16]\nlsh %r0, 16\nldxdw %r1, [%r6+0]\nor %r0, %r1\nexit\n{subs}"
        ),
        &[map],
    );
    let c0 = prog(
        // Each callee carries only the subprogram it calls: an uncalled one is unreachable code.
        &format!("{BUMP}call local sub0\nmov %r0, 0\nexit\n{sub0}"),
        &[map],
    );
    let c1 = prog(
        &format!(
            "ldxdw %r0, [%r1+16]\nadd %r0, 1\nstxdw [%r1+16], %r0\ncall local sub1\nmov %r0, 0\nexit\n{sub1}"
        ),
        &[map],
    );
    set(map, 0, c0);
    set(map, 1, c1);
    assert_eq!(run_with(entry, 0), (33, 33, 0));
}

#[test]
fn tc34_hierarchy_3_budget_shared_across_prog_arrays() {
    setup();
    let (t0, t1) = (prog_array(1), prog_array(1));
    let c0 = prog(
        &format!(
            "mov %r6, %r1\n{BUMP}call local s0\nmov %r1, %r6\ncall local s1\nldxdw %r0, [%r6+0]\nexit\ns0:\nlddw %r2, {{m0}}\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit\ns1:\nlddw %r2, {{m1}}\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit\n"
        ),
        &[t0, t1],
    );
    set(t0, 0, c0);
    set(t1, 0, c0);
    let entry = prog(&call_key(0, 0), &[t0]);
    assert_eq!(run(entry), (33, 33));
}

#[test]
fn registers_and_stack_survive_tail_calls() {
    setup();
    let map = prog_array(4);
    // What the interpreter and the JIT keep across a tail call, which a verified program cannot
    // observe (the verifier clobbers R0-R5 at the call and starts the callee with R1 only):
    // engine behaviour, tested on the trusted path.
    // A failed call (9 is out of range after truncation) changes no register.
    let src = "mov %r0, 5\nmov %r4, 4\nmov %r5, 50\nmov %r9, 900\nlddw %r2, {m0}\nlddw %r3, 0x100000009\ncall 12\nadd %r0, %r4\nadd %r0, %r5\nadd %r0, %r9\nrsh %r3, 32\nadd %r0, %r3\nexit\n";
    assert_eq!(verifier_rejects(src, &[map]).0, kbpf::Errno::EACCES);
    assert_eq!(run(prog_trusted(src, &[map])).0, 5 + 4 + 50 + 900 + 1);
    // The callee starts with the caller's registers and stack, as in the interpreter.
    let callee = "add %r0, %r4\nadd %r0, %r6\nadd %r0, %r9\nadd %r0, %r3\nldxdw %r5, [%r10-8]\nadd %r0, %r5\nexit\n";
    assert_eq!(verifier_rejects(callee, &[]).0, kbpf::Errno::EACCES);
    set(map, 1, prog_trusted(callee, &[]));
    let caller = "mov %r0, 1000\nmov %r4, 4\nmov %r6, 600\nmov %r9, 9\nstdw [%r10-8], 70000\nlddw %r2, {m0}\nmov %r3, 1\ncall 12\nmov %r0, 0\nexit\n";
    // Trusted too: a prog_array holds programs of one kind (verified for one buffer length, or
    // trusted), like the kernel's owner rules.
    assert_eq!(
        run(prog_trusted(caller, &[map])).0,
        1000 + 4 + 600 + 9 + 1 + 70000
    );
}

#[test]
fn unwinding_in_a_program_tail_called_from_a_subprogram_ends_the_run() {
    setup();
    let map = prog_array(2);
    let entry = prog(
        "mov %r6, 40\ncall local sub\nadd %r0, %r6\nexit\nsub:\nmov %r6, 1\nlddw %r2, {m0}\nmov %r3, 0\ncall 12\nmov %r0, 1\nexit\n",
        &[map],
    );
    // `call 5` stops the whole run when its argument is 0.
    set(map, 0, prog("mov %r1, 0\ncall 5\nmov %r0, 3\nexit\n", &[]));
    assert_eq!(run(entry).0, 0);
    set(map, 0, prog("mov %r1, 1\ncall 5\nmov %r0, 3\nexit\n", &[]));
    assert_eq!(
        run(entry).0,
        43,
        "returns to the subprogram's caller, R6 restored"
    );
}

/// Body `i` of a chain: bump the counter, try the always-empty slot `EMPTY`, tail-call slot
/// `i + 1`, and return `1000 + i` if that fails.
fn chain_body(i: u32) -> String {
    format!(
        "mov %r6, %r1\n{BUMP}lddw %r2, {{m0}}\nmov %r3, {EMPTY}\ncall 12\nmov %r1, %r6\nlddw %r2, {{m0}}\nmov %r3, {}\ncall 12\nmov %r0, {}\nexit\n",
        i + 1,
        1000 + i
    )
}

const EMPTY: u32 = 47;

#[test]
fn chains_of_0_to_40_and_the_cpu_counter() {
    setup();
    let map = prog_array(48);
    let bodies: Vec<Fd> = (0..41).map(|i| prog(&chain_body(i), &[map])).collect();
    for len in 0..=40u32 {
        // Slots 1..=len filled: a chain of `len` tail calls, cut at 33.
        for i in 1..=40 {
            if i <= len {
                set(map, i, bodies[i as usize]);
            } else {
                let _ = syscall::map_delete_elem(map, &i.to_ne_bytes());
            }
        }
        let calls = len.min(33) as u64;
        let mut ctx = [0u8; CTX_LEN];
        let prog = syscall::prog_get(bodies[0]).unwrap();
        let mut cpu = CpuGuard::enter();
        let r0 = prog
            .run(&mut cpu, ctx.as_mut_ptr() as u64, ctx.len() as u64)
            .unwrap();
        // SAFETY: this thread holds the CPU and no run is active on it.
        let cnt = unsafe { (*cpu.state()).tail_call_cnt };
        drop(cpu);
        assert_eq!(r0, 1000 + calls, "len {len}");
        assert_eq!(u64::from_ne_bytes(ctx[..8].try_into().unwrap()), calls + 1);
        assert_eq!(cnt as u64, calls, "len {len}: the run's tail_call_cnt");
    }
}

#[test]
fn a_nested_run_on_the_same_cpu_is_refused() {
    setup();
    let fd = prog(&ret(1), &[]);
    let prog = syscall::prog_get(fd).unwrap();
    let mut cpu = CpuGuard::enter();
    let state = cpu.state();
    // SAFETY: this thread holds the CPU; no run is active, so we may mark one.
    unsafe { (*state).run_depth = 1 };
    assert_eq!(prog.run(&mut cpu, 0, 0), Err(Fault::Recursion));
    // SAFETY: as above.
    unsafe { (*state).run_depth = 0 };
    assert_eq!(prog.run(&mut cpu, 0, 0), Ok(1));
}

#[test]
fn a_tail_called_program_starts_with_the_buffer_length_in_r2() {
    setup();
    let map = prog_array(2);
    // Verified for this test's 24-byte buffer: R2 = 24 at entry, also after a tail call (the
    // engines put the run's entry R2 back; the caller's R2 was the map).
    set(map, 0, prog("mov %r0, %r2\nexit\n", &[]));
    let entry = prog(
        "lddw %r2, {m0}\nmov %r3, 0\ncall 12\nmov %r0, 1\nexit\n",
        &[map],
    );
    assert_eq!(run(entry).0, 24);
    // A failed tail call leaves R2 = the length too (R2 is caller-saved), on both engines.
    // (Trusted: reading R2 after the call is refused by the verifier; its own empty map, since a
    // trusted program can't share a prog_array with verified ones.)
    let failed = "lddw %r2, {m0}\nmov %r3, 1\ncall 12\nmov %r0, %r2\nexit\n";
    assert_eq!(run(prog_trusted(failed, &[prog_array(2)])).0, 24);
}

#[test]
fn programs_verified_for_other_buffer_lengths_cannot_share_a_prog_array() {
    setup();
    let map = prog_array(2);
    set(map, 0, prog("mov %r0, 1\nexit\n", &[]));
    let insns = kbpf::insn::assemble("mov %r0, 2\nexit\n").unwrap();
    let other = kbpf::syscall::prog_load(
        &kbpf::ProgLoadAttr::new(kbpf::uapi::ProgType::RawBuffer, &insns).with_ctx_size(8),
    )
    .unwrap();
    assert_eq!(
        kbpf::syscall::map_update_elem(map, &1u32.to_ne_bytes(), &other.to_ne_bytes(), 0),
        Err(kbpf::Errno::EINVAL),
        "owner mismatch: verified for 24 bytes vs 8"
    );
}
