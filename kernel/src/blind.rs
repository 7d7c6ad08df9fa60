//! Constant blinding: no immediate a program chose reaches executable memory as written (Linux
//! `bpf_jit_blind_constants` / `bpf_jit_blind_insn` in `kernel/bpf/core.c`, the defence against
//! JIT spraying).
//!
//! A rewrite pass on the [patch list](crate::patch): every instruction carrying a non-zero
//! immediate is replaced by code that builds the value in the hidden register
//! [`BPF_REG_AX`] from two random-looking halves and then uses the register form:
//!
//! | original | blinded (`r` random per instruction) |
//! |---|---|
//! | `dst op= imm` (ALU/ALU64) | `AX = imm ^ r; AX ^= r; dst op= AX` |
//! | `if dst op imm goto L` (JMP/JMP32) | `AX = imm ^ r; AX ^= r; if dst op AX goto L` |
//! | `*(size *)(dst + off) = imm` | `AX = imm ^ r; AX ^= r; *(size *)(dst + off) = AX` |
//! | `dst = imm64` (both halves) | `AX = hi ^ r1; AX ^= r1; AX <<= 32; dst = AX; AX = lo ^ r2; AX ^= r2; dst \|= AX` |
//!
//! The moves and xors use the 64-bit forms, whose sign extension of both halves gives back the
//! sign-extended immediate; 32-bit ALU operations only look at AX's low half. Zero immediates,
//! calls, exits, the tail-call instruction, unconditional jumps, instructions already using
//! AX and map references (`ld_imm64` with `BPF_PSEUDO_MAP_FD`: an address the kernel chose,
//! which the JIT reads to check tail calls' prog_arrays) are left alone. Jumps land as before: a replaced instruction's node starts its
//! replacement, and a blinded conditional jump keeps its target.
//!
//! `prog_load` blinds when the program asks (`ProgLoadAttr::blind`) or [`set_global`] is on. It
//! blinds the copy the selected engine runs — the JIT's input, or the interpreter's if the JIT
//! refuses the program — and keeps the program's `xlated` instructions as written.

use crate::insn::{
    BPF_REG_AX, Insn, alu32_imm, alu64_imm, alu64_reg, mov32_imm, mov64_imm, mov64_reg,
};
use crate::patch::PatchList;
use crate::uapi::{alu, class, jmp, mode, pseudo, size, src};
use crate::{Errno, Result};
use alloc::vec::Vec;

/// Blind every program loaded from now on (`bpf_jit_harden`); a static, so plain `core`
/// atomics (no protocol depends on its ordering).
static GLOBAL: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Turns blinding on or off for every program loaded afterwards (`bpf_jit_harden`).
pub fn set_global(on: bool) {
    GLOBAL.store(on, core::sync::atomic::Ordering::Relaxed);
}

/// Whether blinding is on for every program.
pub fn global() -> bool {
    GLOBAL.load(core::sync::atomic::Ordering::Relaxed)
}

/// Blinds every constant of `insns` (checked, rewritten instructions), drawing one random u32
/// per blinded value from `rnd`.
pub fn blind_constants(insns: &[Insn], rnd: &mut dyn FnMut() -> u32) -> Result<Vec<Insn>> {
    let mut list: PatchList<()> = PatchList::new(insns)?;
    let mut cur = list.cursor();
    while let Some(id) = cur.next(&list) {
        let insn = list.insn(id).ok_or(Errno::EINVAL)?;
        if insn.dst() == BPF_REG_AX || insn.src() == BPF_REG_AX {
            continue;
        }
        if insn.is_ld_imm64() && insn.src() == pseudo::MAP_FD {
            // A map reference: the kernel chose the address, not the program, and the JIT
            // needs to see it (a tail call's prog_array must be one of the program's maps).
            continue;
        }
        if insn.is_ld_imm64() {
            let tail = list.next(id).ok_or(Errno::EINVAL)?;
            let hi = list.insn(tail).ok_or(Errno::EINVAL)?.imm;
            let (r1, r2) = (rnd() as i32, rnd() as i32);
            list.replace(
                id,
                &[
                    mov32_imm(BPF_REG_AX, hi ^ r1),
                    alu32_imm(alu::XOR, BPF_REG_AX, r1),
                    alu64_imm(alu::LSH, BPF_REG_AX, 32),
                    mov64_reg(insn.dst(), BPF_REG_AX),
                ],
            )?;
            list.replace(
                tail,
                &[
                    mov32_imm(BPF_REG_AX, insn.imm ^ r2),
                    alu32_imm(alu::XOR, BPF_REG_AX, r2),
                    alu64_reg(alu::OR, insn.dst(), BPF_REG_AX),
                ],
            )?;
            continue;
        }
        if insn.imm == 0 {
            continue;
        }
        let Some(use_ax) = register_form(insn) else {
            continue;
        };
        let r = rnd() as i32;
        let target = list.target(id);
        let span = list.replace(
            id,
            &[
                mov64_imm(BPF_REG_AX, insn.imm ^ r),
                alu64_imm(alu::XOR, BPF_REG_AX, r),
                use_ax,
            ],
        )?;
        if let Some(t) = target {
            list.set_target(span.last, t)?;
        }
    }
    list.linearize(&mut Vec::new(), None)
}

/// The instruction that uses AX where `insn` used its immediate, if `insn` is blinded.
/// Jump offsets are set to 0 (the instruction after the replacement); the caller re-points
/// the jump at its original target.
fn register_form(insn: Insn) -> Option<Insn> {
    let code = insn.code;
    let op = code & 0xf0;
    match insn.class() {
        class::ALU | class::ALU64 if code & src::X == 0 => match op {
            alu::NEG | alu::END => None,
            _ => Some(Insn::new(
                code | src::X,
                insn.dst(),
                BPF_REG_AX,
                insn.off,
                0,
            )),
        },
        class::JMP | class::JMP32 if code & src::X == 0 => match op {
            jmp::JA | jmp::CALL | jmp::EXIT | jmp::JCOND => None,
            _ if code == crate::insn::TAIL_CALL_CODE => None,
            _ => Some(Insn::new(code | src::X, insn.dst(), BPF_REG_AX, 0, 0)),
        },
        class::ST if code & 0xe0 == mode::MEM => {
            let sz = code & 0x18;
            debug_assert!(matches!(sz, size::B | size::H | size::W | size::DW));
            Some(Insn::new(
                class::STX | mode::MEM | sz,
                insn.dst(),
                BPF_REG_AX,
                insn.off,
                0,
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::*;

    fn counter() -> impl FnMut() -> u32 {
        let mut x = 0x1234_5678u32;
        move || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            x
        }
    }

    #[test]
    fn no_immediate_survives() {
        let p = [
            mov64_imm(0, 0x4141_4141),
            jmp_imm(jmp::JEQ, 0, 0x4242_4242, 1),
            mov64_imm(0, 7),
            exit(),
        ];
        let b = blind_constants(&p, &mut counter()).unwrap();
        assert!(
            b.iter()
                .all(|i| i.imm != 0x4141_4141 && i.imm != 0x4242_4242),
            "{b:?}"
        );
        // The conditional jump still skips exactly the `mov r0, 7` (now three instructions).
        let j = b
            .iter()
            .position(|i| i.code == class::JMP | jmp::JEQ | src::X)
            .unwrap();
        assert_eq!(b[j + 1 + b[j].off as usize..].len(), 1, "lands on exit");
    }

    #[test]
    fn map_references_are_left_alone() {
        let mut p = ld_imm64_raw(2, crate::uapi::pseudo::MAP_FD, 0x4141_4141_4141_4141).to_vec();
        p.push(exit());
        assert_eq!(blind_constants(&p, &mut counter()).unwrap(), p);
    }

    #[test]
    fn zero_calls_and_exits_are_left_alone() {
        let p = [mov64_imm(0, 0), call_helper(7), exit()];
        assert_eq!(blind_constants(&p, &mut counter()).unwrap(), p);
    }
}
