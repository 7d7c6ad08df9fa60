//! "Accepted ⇒ safe": random programs biased toward memory accesses near the edges of what
//! they may touch; every program the verifier accepts is run in the checked interpreter
//! (`kbpf::interp::checked`) on a few random contexts and map contents, and any access outside
//! the context, the live stack frames or a handed-out map value fails the test. The test also
//! measures how many programs the verifier accepts, so that it cannot pass vacuously.
//!
//! Programs are raw-buffer programs: R6 keeps the context, R7 its length; the prologue zeroes
//! the top 64 bytes of the stack. Each program is 1–4 snippets (ctx loads and stores at
//! constant or bounded variable offsets, stack spills and fills, map lookups with or without
//! the null check, direct map values, bounded loops, BPF-to-BPF calls, atomics; and the classes
//! checked against Linux: array lookups with a constant key and no NULL check, a bound checked
//! on a linked copy and the original used as an index, narrow fills of spilled constants used
//! as offsets, atomic fetches of spilled values, stack accesses at every alignment) whose
//! offsets and bounds fall inside, on and just past the edges.

use kbpf::insn::*;
use kbpf::interp::checked::{CheckedEnv, CheckedError, run_checked};
use kbpf::map::{Map, MapAttr};
use kbpf::uapi::{MapType, ProgType, UpdateFlags, alu, atomic, func, jmp, pseudo};
use kbpf::verifier::{VerifierEnv, verify};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::cell::Cell;

/// Snippet kinds [`emit`] knows.
const KINDS: u8 = 16;

/// One snippet: a kind and raw parameters, interpreted by [`emit`].
#[derive(Clone, Copy, Debug)]
struct Snip {
    kind: u8,
    a: u16,
    b: u8,
    c: i8,
    d: u8,
}

/// One generated case.
#[derive(Clone, Debug)]
struct Case {
    ctx_size: usize,
    value_size: u32,
    privileged: bool,
    snips: Vec<Snip>,
    seed: u64,
}

const CTX_SIZES: [usize; 6] = [8, 12, 16, 32, 64, 100];
const VALUE_SIZES: [u32; 4] = [8, 12, 16, 48];
const SIZES: [Size; 4] = [Size::B, Size::H, Size::W, Size::DW];
/// Map handles: 0 array(4, V, 4), 1 hash(4, V, 8), 2 array(4, V, 1) for `BPF_PSEUDO_MAP_VALUE`.
const MAPS: usize = 3;

fn attrs(value_size: u32) -> [MapAttr; MAPS] {
    [
        MapAttr::new(MapType::Array, 4, value_size, 4),
        MapAttr::new(MapType::Hash, 4, value_size, 8),
        MapAttr::new(MapType::Array, 4, value_size, 1),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let snip = (
        any::<u8>(),
        any::<u16>(),
        any::<u8>(),
        any::<i8>(),
        any::<u8>(),
    )
        .prop_map(|(kind, a, b, c, d)| Snip { kind, a, b, c, d });
    (
        0..CTX_SIZES.len(),
        0..VALUE_SIZES.len(),
        any::<bool>(),
        prop::collection::vec(snip, 1..=4),
        any::<u64>(),
    )
        .prop_map(|(s, v, privileged, snips, seed)| Case {
            ctx_size: CTX_SIZES[s],
            value_size: VALUE_SIZES[v],
            privileged,
            snips,
            seed,
        })
}

/// An offset around `[0, limit)`: mostly inside, sometimes just outside (-4 .. limit + 4).
fn near(x: u16, limit: usize) -> i16 {
    (x as usize % (limit + 8)) as i16 - 4
}

/// `if cond goto +len(body)` followed by `body`.
fn guard(out: &mut Vec<Insn>, test: Insn, body: &[Insn]) {
    let mut t = test;
    t.off = body.len() as i16;
    out.push(t);
    out.extend_from_slice(body);
}

/// Emits the snippet into `out` (main program) or `subs` (subprograms, placed after it).
fn emit(s: Snip, c: &Case, out: &mut Vec<Insn>, calls: &mut Vec<(usize, Vec<Insn>)>) {
    let (ctx, vs) = (c.ctx_size, c.value_size as usize);
    let size = SIZES[(s.d % 4) as usize];
    let small = (s.c % 8) as i16;
    match s.kind % KINDS {
        // ctx load at a constant offset
        0 => out.push(ldx_mem(size, 3, 6, near(s.a, ctx))),
        // ctx store at a constant offset
        1 => out.push(st_mem(size, 6, near(s.a, ctx), s.c as i32)),
        // ctx access at a variable offset, bounded by a mask or a comparison
        2 => {
            out.push(ldx_mem(Size::B, 3, 6, 0));
            let bound = s.a as i32 % (ctx as i32 + 4);
            let body = [
                mov64_reg(4, 6),
                alu64_reg(alu::ADD, 4, 3),
                ldx_mem(size, 5, 4, small),
            ];
            match s.b % 3 {
                0 => {
                    out.push(alu64_imm(alu::AND, 3, (s.a % 128) as i32));
                    out.extend_from_slice(&body);
                }
                1 => guard(out, jmp_imm(jmp::JGT, 3, bound, 0), &body),
                _ => guard(out, jmp_imm(jmp::JGE, 3, bound, 0), &body),
            }
        }
        // spill the ctx pointer, fill it, access through the filled copy
        3 => {
            let o = -8 * (1 + (s.b % 8) as i16);
            out.push(stx_mem(Size::DW, 10, 6, o));
            out.push(ldx_mem(Size::DW, 4, 10, o));
            out.push(ldx_mem(size, 5, 4, near(s.a, ctx)));
        }
        // stack store then load at an offset around the frame
        4 => {
            let o = -((s.a % 520) as i16) + small.abs();
            out.push(stx_mem(size, 10, 7, o));
            out.push(ldx_mem(size, 5, 10, o + ((s.b % 3) as i16 - 1) * 4));
        }
        // map lookup, optional null check, access at a constant or variable offset
        5 => {
            let h = (s.b % 2) as u32;
            out.push(st_mem(Size::W, 10, -4, (s.a % 6) as i32));
            out.push(mov64_reg(2, 10));
            out.push(alu64_imm(alu::ADD, 2, -4));
            out.extend_from_slice(&ld_map_fd(1, h));
            out.push(call_helper(func::MAP_LOOKUP_ELEM));
            let mut body = Vec::new();
            if s.b & 4 != 0 {
                body.push(ldx_mem(Size::B, 3, 6, 1));
                body.push(alu64_imm(alu::AND, 3, (s.a % 64) as i32));
                body.push(alu64_reg(alu::ADD, 0, 3));
            }
            body.push(st_mem(size, 0, near(s.a >> 6, vs), 1));
            body.push(ldx_mem(size, 4, 0, near(s.a >> 6, vs)));
            if s.b & 0x38 != 0 {
                guard(out, jmp_imm(jmp::JEQ, 0, 0, 0), &body);
            } else {
                out.extend_from_slice(&body);
            }
        }
        // direct map value (single-element array)
        6 => {
            let hi = (s.a % (vs as u16 + 2)) as u64;
            out.extend_from_slice(&ld_imm64_raw(4, pseudo::MAP_VALUE, 2 | hi << 32));
            out.push(ldx_mem(size, 5, 4, small));
        }
        // bounded loop over ctx bytes
        7 => {
            let n = (s.a as usize % (ctx + 3) + 1) as i32;
            out.push(mov64_imm(3, 0));
            out.push(mov64_reg(4, 6));
            out.push(alu64_reg(alu::ADD, 4, 3));
            out.push(ldx_mem(Size::B, 5, 4, 0));
            out.push(alu64_imm(alu::ADD, 3, 1));
            out.push(jmp_imm(jmp::JLT, 3, n, -5));
        }
        // BPF-to-BPF call: the callee writes the caller's stack or reads the ctx through R1
        8 => {
            let o = -8 * (1 + (s.b % 8) as i16);
            let body = if s.b & 8 == 0 {
                out.push(mov64_reg(1, 10));
                out.push(alu64_imm(alu::ADD, 1, o as i32));
                vec![st_mem(size, 1, small, 7), mov64_imm(0, 0), exit()]
            } else {
                out.push(mov64_reg(1, 6));
                vec![ldx_mem(size, 0, 1, near(s.a, ctx)), mov64_imm(0, 0), exit()]
            };
            calls.push((out.len(), body));
            out.push(call_local(0));
        }
        // atomic add on the stack
        9 => {
            let o = -((s.a % 80) as i16);
            let sz = if s.b & 1 == 0 { Size::W } else { Size::DW };
            out.push(mov64_imm(3, 1));
            out.push(atomic_op(sz, atomic::ADD, 10, 3, o));
        }
        // array lookup with a constant key (in range or not) and no NULL check
        11 => {
            let key = (s.a % 7) as i32;
            if s.b & 1 == 0 {
                out.push(st_mem(Size::W, 10, -32, key));
            } else {
                out.push(mov64_imm(3, key));
                out.push(stx_mem(Size::W, 10, 3, -32));
            }
            out.push(mov64_reg(2, 10));
            out.push(alu64_imm(alu::ADD, 2, -32));
            out.extend_from_slice(&ld_map_fd(1, 0));
            out.push(call_helper(func::MAP_LOOKUP_ELEM));
            out.push(ldx_mem(size, 4, 0, near(s.a >> 3, vs)));
        }
        // a bound on a linked copy, the original used as an index into a map value
        12 => {
            out.push(st_mem(Size::W, 10, -36, 0));
            out.push(mov64_reg(2, 10));
            out.push(alu64_imm(alu::ADD, 2, -36));
            out.extend_from_slice(&ld_map_fd(1, 0));
            out.push(call_helper(func::MAP_LOOKUP_ELEM));
            out.push(ldx_mem(Size::B, 3, 6, 0));
            let k = (s.c % 4) as i32;
            let copy: &[Insn] = match s.b % 5 {
                0 => &[mov64_reg(4, 3)],
                1 => &[mov64_reg(4, 3), alu64_imm(alu::ADD, 4, k)],
                2 => &[mov64_reg(4, 3), alu64_imm(alu::SUB, 4, k)],
                3 => &[mov32_reg(4, 3), alu32_imm(alu::ADD, 4, k)],
                _ => &[stx_mem(Size::DW, 10, 3, -48), ldx_mem(Size::DW, 4, 10, -48)],
            };
            out.extend_from_slice(copy);
            let bound = (s.a % (vs as u16 + 6)) as i32;
            let body = [alu64_reg(alu::ADD, 0, 3), ldx_mem(Size::B, 5, 0, 0)];
            guard(out, jmp_imm(jmp::JGT, 4, bound, 0), &body);
        }
        // a narrow fill of a spilled constant used as an offset into the context
        13 => {
            let sizes = [Size::B, Size::H, Size::W, Size::DW];
            let (ws, rs) = (sizes[(s.b % 4) as usize], sizes[((s.b >> 2) % 4) as usize]);
            out.push(mov64_imm(3, near(s.a, ctx) as i32 | (s.c as i32) << 8));
            out.push(stx_mem(ws, 10, 3, -56));
            out.push(ldx_mem(rs, 3, 10, -56));
            out.push(mov64_reg(4, 6));
            out.push(alu64_reg(alu::ADD, 4, 3));
            out.push(ldx_mem(Size::B, 5, 4, 0));
        }
        // an atomic fetch of a spilled value, the result used as an offset
        14 => {
            out.push(mov64_imm(3, near(s.a, ctx) as i32));
            out.push(stx_mem(Size::DW, 10, 3, -64));
            out.push(mov64_imm(4, (s.c % 3) as i32));
            out.push(atomic_op(Size::DW, atomic::ADD | atomic::FETCH, 10, 4, -64));
            out.push(mov64_reg(5, 6));
            out.push(alu64_reg(alu::ADD, 5, 4));
            out.push(ldx_mem(Size::B, 5, 5, 0));
        }
        // a stack store and load at any alignment
        15 => {
            let o = -((s.a % 64) as i16) - 1;
            out.push(st_mem(size, 10, o, s.c as i32));
            out.push(ldx_mem(size, 5, 10, o));
        }
        // ctx pointer plus a constant
        _ => {
            out.push(mov64_reg(4, 6));
            out.push(alu64_imm(alu::ADD, 4, near(s.a, ctx) as i32));
            out.push(ldx_mem(size, 5, 4, small));
        }
    }
}

fn build(c: &Case) -> Vec<Insn> {
    let mut out = vec![mov64_reg(6, 1), mov64_reg(7, 2)];
    for o in 1..=8 {
        out.push(st_mem(Size::DW, 10, -8 * o, 0));
    }
    let mut calls = Vec::new();
    for &s in &c.snips {
        emit(s, c, &mut out, &mut calls);
    }
    out.push(mov64_imm(0, 0));
    out.push(exit());
    for (at, body) in calls {
        out[at] = call_local((out.len() - at - 1) as i32);
        out.extend(body);
    }
    out
}

fn fill(rng: &mut u64, buf: &mut [u8]) {
    for b in buf {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *b = *rng as u8;
    }
}

/// The program as text, one instruction per line.
fn listing(insns: &[Insn]) -> String {
    match disasm(insns) {
        Ok(lines) => lines
            .iter()
            .map(|(pc, l)| format!("{pc:4}: {l}\n"))
            .collect(),
        Err((pc, e)) => format!("(does not disassemble at {pc}: {e})"),
    }
}

/// Verifies the case's program; if accepted, runs it three times in the checked interpreter.
/// Returns whether it was accepted.
fn check(c: &Case) -> Result<bool, TestCaseError> {
    let insns = build(c);
    let at = attrs(c.value_size);
    let lookup = |h: u32| at.get(h as usize).copied();
    let env = VerifierEnv {
        prog_type: ProgType::RawBuffer,
        maps: &lookup,
        ctx_size: c.ctx_size,
        privileged: c.privileged,
        allow_loops: true,
        expected_attach_type: None,
    };
    if verify(&insns, &env).is_err() {
        return Ok(false);
    }
    let maps: Vec<Map> = at.iter().map(|a| Map::create(*a).unwrap()).collect();
    let refs: Vec<&Map> = maps.iter().collect();
    let mut rng = c.seed | 1;
    for run in 0..3 {
        let mut value = vec![0u8; c.value_size as usize];
        for (m, a) in maps.iter().zip(&at) {
            for k in 0..a.max_entries.min(4) {
                fill(&mut rng, &mut value);
                m.update(&k.to_ne_bytes(), &value, UpdateFlags::ANY)
                    .unwrap();
            }
        }
        let mut ctx = vec![0u8; c.ctx_size];
        fill(&mut rng, &mut ctx);
        let cenv = CheckedEnv {
            prog_type: ProgType::RawBuffer,
            maps: &refs,
            r2: c.ctx_size as u64,
            step_limit: 100_000,
            seed: rng,
        };
        let r: Result<u64, CheckedError> = run_checked(&insns, &mut ctx, &cenv);
        prop_assert!(
            r.is_ok(),
            "accepted program failed the checked run {run}: {r:?}\n{}",
            listing(&insns)
        );
    }
    Ok(true)
}

#[test]
fn accepted_programs_stay_in_bounds() {
    kbpf_shim::host::install();
    let (seen, accepted) = (Cell::new(0u32), Cell::new(0u32));
    // Accepted programs per snippet kind (each program counts for every kind it has).
    let per_kind: Vec<Cell<u32>> = (0..KINDS).map(|_| Cell::new(0)).collect();
    let mut runner = TestRunner::new(Config {
        cases: 50_000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case(), |c| {
            seen.set(seen.get() + 1);
            if check(&c)? {
                accepted.set(accepted.get() + 1);
                for s in &c.snips {
                    let k = &per_kind[(s.kind % KINDS) as usize];
                    k.set(k.get() + 1);
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let rate = accepted.get() as f64 / seen.get() as f64;
    println!(
        "verifier accepted {} of {} generated programs ({:.1}%)",
        accepted.get(),
        seen.get(),
        rate * 100.0
    );
    assert!(
        rate >= 0.15,
        "acceptance rate {rate:.3} too low: the test would not exercise accepted programs"
    );
    let per_kind: Vec<u32> = per_kind.iter().map(Cell::get).collect();
    println!("accepted programs per snippet kind: {per_kind:?}");
    assert!(
        per_kind.iter().all(|&n| n >= 100),
        "a snippet kind is (almost) never accepted: {per_kind:?}"
    );
}
