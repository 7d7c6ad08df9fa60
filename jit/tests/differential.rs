//! Differential test: random terminating programs (forward jumps only) run by the interpreter
//! (through `prog_load` + `prog_test_run`) and by the JIT must leave the same R0 and the same
//! buffer. R0 folds in every register and every stack slot at the end, so any divergence in
//! ALU, jump, stack or atomic semantics shows.

use kbpf::ProgLoadAttr;
use kbpf::insn::{Insn, ld_imm64};
use kbpf::syscall::{self, TestRun};
use kbpf::uapi::{ProgType, alu, class, jmp, mode, size, src};
use proptest::prelude::*;

mod support;

/// Registers a generated instruction may write or read as a value (R1 is the buffer pointer,
/// whose address differs between the two runs; R10 is read-only).
const REGS: [u8; 9] = [0, 2, 3, 4, 5, 6, 7, 8, 9];
const BUF: usize = 64;

fn reg(x: u8) -> u8 {
    REGS[x as usize % REGS.len()]
}

fn imm(v: u64) -> i32 {
    match v % 8 {
        0 => 0,
        1 => 1,
        2 => -1,
        3 => i32::MIN,
        4 => i32::MAX,
        5 => ((v >> 8) % 70) as i32,
        _ => (v >> 32) as i32,
    }
}

fn value(v: u64) -> u64 {
    match v % 6 {
        0 => 0,
        1 => u64::MAX,
        2 => i64::MIN as u64,
        3 => i32::MIN as i64 as u64,
        4 => (v >> 8) % 100,
        _ => v.rotate_left(17),
    }
}

fn size_of(x: u8) -> (u8, i16) {
    match x % 4 {
        0 => (size::B, 1),
        1 => (size::H, 2),
        2 => (size::W, 4),
        _ => (size::DW, 8),
    }
}

const ALU_OPS: [(u8, i16); 17] = [
    (alu::ADD, 0),
    (alu::SUB, 0),
    (alu::MUL, 0),
    (alu::DIV, 0),
    (alu::DIV, 1),
    (alu::OR, 0),
    (alu::AND, 0),
    (alu::LSH, 0),
    (alu::RSH, 0),
    (alu::MOD, 0),
    (alu::MOD, 1),
    (alu::XOR, 0),
    (alu::MOV, 0),
    (alu::ARSH, 0),
    (alu::MOV, 8),
    (alu::MOV, 16),
    (alu::MOV, 32),
];

const CONDS: [u8; 11] = [
    jmp::JEQ,
    jmp::JGT,
    jmp::JGE,
    jmp::JSET,
    jmp::JNE,
    jmp::JSGT,
    jmp::JSGE,
    jmp::JLT,
    jmp::JLE,
    jmp::JSLT,
    jmp::JSLE,
];

const ATOMICS: [i32; 10] = [0x00, 0x40, 0x50, 0xa0, 0x01, 0x41, 0x51, 0xa1, 0xe1, 0xf1];

type Choice = (u8, u8, u8, u32, u64);

/// One body instruction from a choice; `remaining` is how many body slots follow it.
fn body_insn(c: Choice, remaining: usize) -> Insn {
    let (kind, a, b, x, v) = c;
    let (d, s) = (reg(a), reg(b));
    let fwd = (x as usize % (remaining + 1)) as i16;
    match kind % 13 {
        k @ (0..=3) => {
            let cls = if k < 2 { class::ALU64 } else { class::ALU };
            let (op, mut off) = ALU_OPS[x as usize % ALU_OPS.len()];
            if off == 32 && cls == class::ALU {
                off = 16;
            }
            // movsx has no immediate form.
            if k % 2 == 0 || (op == alu::MOV && off != 0) {
                Insn::new(cls | op | src::X, d, s, off, 0)
            } else {
                Insn::new(cls | op | src::K, d, 0, off, imm(v))
            }
        }
        4 => {
            let cls = if x % 2 == 0 { class::ALU64 } else { class::ALU };
            Insn::new(cls | alu::NEG, d, 0, 0, 0)
        }
        5 => {
            let bits = [16, 32, 64][x as usize % 3];
            let (cls, sx) = [
                (class::ALU, src::K),
                (class::ALU, src::X),
                (class::ALU64, src::K),
            ][(x as usize / 3) % 3];
            Insn::new(cls | alu::END | sx, d, 0, 0, bits)
        }
        k @ (6 | 7) => {
            let cls = if k == 6 { class::JMP } else { class::JMP32 };
            let cond = CONDS[x as usize % CONDS.len()];
            let fwd = ((x >> 8) as usize % (remaining + 1)) as i16;
            if v % 2 == 0 {
                Insn::new(cls | cond | src::X, d, s, fwd, 0)
            } else {
                Insn::new(cls | cond | src::K, d, 0, fwd, imm(v >> 1))
            }
        }
        8 => Insn::new(class::JMP | jmp::JA, 0, 0, fwd, 0),
        9 => {
            // Stack load, possibly sign-extending.
            let (sz, n) = size_of(b);
            let off = -64 + ((x % (64 / n) as u32) as i16 * n);
            let m = if v % 2 == 0 || sz == size::DW {
                mode::MEM
            } else {
                0x80
            };
            Insn::new(class::LDX | m | sz, d, 10, off, 0)
        }
        10 => {
            let (sz, n) = size_of(b);
            let off = -64 + ((x % (64 / n) as u32) as i16 * n);
            if v % 2 == 0 {
                Insn::new(class::STX | mode::MEM | sz, 10, d, off, 0)
            } else {
                Insn::new(class::ST | mode::MEM | sz, 10, 0, off, imm(v >> 1))
            }
        }
        11 => {
            // Buffer access through R1.
            let (sz, n) = size_of(b);
            let off = (x % (BUF as i16 / n) as u32) as i16 * n;
            match v % 3 {
                0 => Insn::new(class::LDX | mode::MEM | sz, d, 1, off, 0),
                1 => Insn::new(class::STX | mode::MEM | sz, 1, d, off, 0),
                _ => Insn::new(class::ST | mode::MEM | sz, 1, 0, off, imm(v >> 2)),
            }
        }
        _ => {
            // Atomics on the stack or the buffer, aligned; or load-acquire/store-release.
            let base = if v % 2 == 0 { 10 } else { 1 };
            let (sz, n) = if (v >> 1) % 2 == 0 {
                (size::W, 4)
            } else {
                (size::DW, 8)
            };
            let slot = (x % (64 / n) as u32) as i16 * n;
            let off = if base == 10 { -64 + slot } else { slot };
            let op = match (v >> 2) % 12 {
                10 => 0x100, // load-acquire
                11 => 0x110, // store-release
                i => ATOMICS[i as usize],
            };
            if op == 0x100 {
                Insn::new(class::STX | mode::ATOMIC | sz, d, base, off, op)
            } else {
                Insn::new(class::STX | mode::ATOMIC | sz, base, s, off, op)
            }
        }
    }
}

fn program(init: &[u64; 10], body: &[Choice]) -> Vec<Insn> {
    let mut p = Vec::new();
    for r in REGS {
        p.extend_from_slice(&ld_imm64(r, value(init[r as usize])));
    }
    for k in 1..=8i16 {
        p.push(Insn::new(
            class::STX | mode::MEM | size::DW,
            10,
            REGS[k as usize],
            -8 * k,
            0,
        ));
    }
    for (i, c) in body.iter().enumerate() {
        p.push(body_insn(*c, body.len() - i - 1));
    }
    for r in &REGS[1..] {
        p.push(Insn::new(
            class::ALU64 | alu::MUL | src::K,
            0,
            0,
            0,
            0x0100_0193,
        ));
        p.push(Insn::new(class::ALU64 | alu::XOR | src::X, 0, *r, 0, 0));
    }
    for k in 1..=8i16 {
        p.push(Insn::new(
            class::LDX | mode::MEM | size::DW,
            2,
            10,
            -8 * k,
            0,
        ));
        p.push(Insn::new(
            class::ALU64 | alu::MUL | src::K,
            0,
            0,
            0,
            0x0100_0193,
        ));
        p.push(Insn::new(class::ALU64 | alu::XOR | src::X, 0, 2, 0, 0));
    }
    p.push(Insn::new(class::JMP | jmp::EXIT, 0, 0, 0, 0));
    p
}

/// The interpreter's run. The program loads on the trusted path (`prog_load_trusted`, like the
/// kernel's `lib/test_bpf.c`): this compares the two engines on arbitrary terminating
/// programs, including ones the verifier rightly refuses (the generator shifts by out-of-range
/// immediates such as -1 or `i32::MIN`), and the JIT side compiles the very same instructions
/// unverified.
fn interp(insns: &[Insn], buf: &mut [u8]) -> u64 {
    let fd = syscall::prog_load_trusted(&ProgLoadAttr::new(ProgType::RawBuffer, insns))
        .expect("interpreter load");
    let r = syscall::prog_test_run(
        fd,
        &mut TestRun {
            data: buf,
            repeat: 1,
            ..Default::default()
        },
    )
    .expect("interpreter run");
    syscall::close(fd).expect("close");
    r.retval
}

fn jit(insns: &[Insn], buf: &mut [u8]) -> u64 {
    let image = kbpf_jit::compile(insns, ProgType::RawBuffer).expect("jit compile");
    // SAFETY: generated programs only touch their 64-byte buffer (8-aligned) and their stack.
    unsafe { image.run(buf.as_mut_ptr() as u64, buf.len() as u64, &mut 0) }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn jit_matches_interpreter(
        init in any::<[u64; 10]>(),
        body in prop::collection::vec(any::<Choice>(), 1..48),
        mem in any::<[u64; BUF / 8]>(),
    ) {
        support::install();
        let insns = program(&init, &body);
        let mut b1 = mem;
        let mut b2 = mem;
        // SAFETY: viewing a [u64; 8] as its 64 bytes.
        let (s1, s2) = unsafe {
            (
                core::slice::from_raw_parts_mut(b1.as_mut_ptr() as *mut u8, BUF),
                core::slice::from_raw_parts_mut(b2.as_mut_ptr() as *mut u8, BUF),
            )
        };
        let want = interp(&insns, s1);
        let got = jit(&insns, s2);
        prop_assert_eq!(got, want, "r0 differs");
        prop_assert_eq!(b2, b1, "buffer differs");
    }
}
