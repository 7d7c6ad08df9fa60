//! 32-bit sub-register definitions: which ones need their upper half zeroed, and the rewrite
//! that makes it explicit (`opt_subreg_zext_lo32_rnd_hi32`, `insn_def_regno`,
//! `insn_has_def32`, `is_reg64` and the `zext_dst` marks of `mark_insn_zext` in
//! `kernel/bpf/verifier.c`; `bpf_jit_needs_zext` in `kernel/bpf/core.c`).
//!
//! An ALU32 operation, a 32/16/8-bit load or a 32-bit atomic fetch writes the low half of its
//! destination and, in BPF semantics, zeroes the upper half. A JIT for a machine whose 32-bit
//! operations do not zero the upper half (`bpf_jit_needs_zext()`) would need to emit that
//! zeroing after every such definition; the verifier tells it where it matters instead.
//!
//! The kernel marks a definition `zext_dst` when, on some explored path, a 64-bit use reads
//! the register it defined before anything redefines it. [`zext_dst`] computes the same fact
//! by a backward liveness analysis over the verified program: a register is *hi32-live* at a
//! point when some path from there reads its upper half (a 64-bit use: ALU64 operands,
//! 64-bit comparisons, pointers used for memory access, 64-bit stores, helper and BPF-to-BPF
//! call arguments R1–R5, R0 at `exit`) before redefining it; a 32-bit definition is
//! `zext_dst` when its destination is hi32-live after it. Over all syntactic paths instead of
//! the explored ones, it marks a superset of what the kernel marks: never fewer zero
//! extensions, and never randomises a half something may read.
//!
//! [`opt_subreg_zext_lo32_rnd_hi32`] then walks the load's patch list:
//! - a `zext_dst` definition gets `wX = wX` inserted after it when the JIT asks for zero
//!   extension (and a 32-bit `cmpxchg` always, as in the kernel, since some machines only
//!   load R0 when the comparison succeeds). The kernel marks its inserted move with `imm = 1`
//!   (`BPF_ZEXT_REG`) so JITs can recognise it; kbpf's decoder reserves `imm`, so the move is
//!   a plain `mov32`, which means the same;
//! - with `BPF_F_TEST_RND_HI32`, a definition that is *not* `zext_dst` instead gets its upper
//!   half filled with random bits (`AX = rand; AX <<= 32; rX |= AX`, using the hidden
//!   register `BPF_REG_AX`). A program that still computes the same results shows that no
//!   read of those bits was missed: the analysis' self-test.
//!
//! Only instructions the analysis judged are trusted with its verdict: an original node whose
//! instruction is unchanged and not followed by inserted code. Anything else (code an earlier
//! pass inserted or rewrote) is treated as the kernel treats patched instructions
//! (`adjust_insn_aux_data` sets `zext_dst = insn_has_def32`): zero-extended when the JIT asks,
//! never randomised. Earlier passes only insert code that reads registers the rewritten
//! instruction already read as 64 bits (context pointers, helper arguments), which keeps the
//! verdicts on the untouched instructions valid.

use crate::insn::{
    AluOp, AtomicOp, BPF_REG_AX, EndKind, Insn, Op, Operand, Size, alu64_imm, alu64_reg, decode,
    decode_internal, mov32_reg, mov64_imm,
};
use crate::patch::{Origin, PatchList};
use crate::uapi::alu;
use crate::{Errno, Result};
use alloc::vec;
use alloc::vec::Vec;

/// A set of registers R0–R10 and AX, one bit each.
type Regs = u16;

const fn bit(r: u8) -> Regs {
    1 << r
}

/// R1–R5: what a call reads.
const ARGS: Regs = 0b11_1110;
/// R0–R5: what a call clobbers.
const CALLER_SAVED: Regs = 0b11_1111;

/// The register `op` defines as a 32-bit sub-register (`insn_has_def32`: a definition for
/// which `is_reg64` says no), if any.
pub fn def32(op: &Op) -> Option<u8> {
    match *op {
        Op::Alu {
            wide: false, dst, ..
        } => Some(dst),
        Op::End { kind, bits, dst } if kind != EndKind::Swap && bits != 64 => Some(dst),
        Op::Ldx {
            size, sign, dst, ..
        } if size != Size::DW && !sign => Some(dst),
        Op::Atomic {
            size, op, dst, src, ..
        } if size != Size::DW => match op {
            AtomicOp::LoadAcquire => Some(dst),
            AtomicOp::Cmpxchg => Some(0),
            AtomicOp::Xchg
            | AtomicOp::Add { fetch: true }
            | AtomicOp::Or { fetch: true }
            | AtomicOp::And { fetch: true }
            | AtomicOp::Xor { fetch: true } => Some(src),
            _ => None,
        },
        _ => None,
    }
}

/// What `op` reads as 64 bits and what it (re)defines, as register sets.
fn use64_kill(op: &Op) -> (Regs, Regs) {
    let reg = |o: Operand| match o {
        Operand::Reg(r) => bit(r),
        Operand::Imm(_) => 0,
    };
    let wide_if = |size: Size, r: u8| if size == Size::DW { bit(r) } else { 0 };
    match *op {
        Op::Alu {
            wide: true,
            op,
            dst,
            src,
        } => {
            let reads_dst = !matches!(op, AluOp::Mov | AluOp::MovSx(_));
            (reg(src) | if reads_dst { bit(dst) } else { 0 }, bit(dst))
        }
        Op::Alu {
            wide: false, dst, ..
        } => (0, bit(dst)),
        Op::End { kind, bits, dst } => {
            let wide = kind == EndKind::Swap || bits == 64;
            (if wide { bit(dst) } else { 0 }, bit(dst))
        }
        Op::Ldx { dst, src, .. } => (bit(src), bit(dst)),
        Op::St { dst, .. } => (bit(dst), 0),
        Op::Stx { size, dst, src, .. } => (bit(dst) | wide_if(size, src), 0),
        Op::Atomic {
            size, op, dst, src, ..
        } => match op {
            AtomicOp::LoadAcquire => (bit(src), bit(dst)),
            AtomicOp::StoreRelease => (bit(dst) | wide_if(size, src), 0),
            AtomicOp::Cmpxchg => (bit(dst) | wide_if(size, src) | wide_if(size, 0), bit(0)),
            AtomicOp::Xchg
            | AtomicOp::Add { fetch: true }
            | AtomicOp::Or { fetch: true }
            | AtomicOp::And { fetch: true }
            | AtomicOp::Xor { fetch: true } => (bit(dst) | wide_if(size, src), bit(src)),
            _ => (bit(dst) | wide_if(size, src), 0),
        },
        Op::LdImm64 { dst, .. } => (0, bit(dst)),
        Op::Jmp {
            wide: true,
            dst,
            src,
            ..
        } => (bit(dst) | reg(src), 0),
        Op::Call(_) | Op::TailCall(_) => (ARGS, CALLER_SAVED),
        // Legacy packet loads read the context pointer R6 (and possibly a register offset).
        Op::LdPacket { .. } => (ARGS | bit(6), CALLER_SAVED),
        Op::Exit => (bit(0), 0),
        Op::Jmp { .. } | Op::Ja { .. } | Op::MayGoto { .. } => (0, 0),
    }
}

/// The instructions control may go to after `op` at `pc` (`next` = the slot after it); a
/// BPF-to-BPF call continues after the call (the callee is analysed on its own, its
/// arguments being 64-bit uses at the call).
fn successors(op: &Op, next: usize, len: usize, out: &mut Vec<usize>) {
    let rel = |off: i64| (next as i64 + off) as usize;
    match *op {
        Op::Exit => {}
        Op::Ja { off } => out.push(rel(off as i64)),
        Op::Jmp { off, .. } | Op::MayGoto { off } => {
            out.push(next);
            out.push(rel(off as i64));
        }
        _ => out.push(next),
    }
    out.retain(|&s| s < len);
}

/// `zext_dst` for every slot of the verified program `insns`: whether it defines a 32-bit
/// sub-register whose upper half a later 64-bit use may read. `EINVAL` if an instruction does
/// not decode.
pub fn zext_dst(insns: &[Insn]) -> Result<Vec<bool>> {
    let n = insns.len();
    let mut ops: Vec<Option<Op>> = vec![None; n];
    let mut pc = 0;
    while pc < n {
        let op = decode(insns, pc).map_err(|_| Errno::EINVAL)?;
        ops[pc] = Some(op);
        pc += op.slots();
    }
    // Successors as a flat list with offsets, and predecessors in the same form.
    let mut succ_at = vec![0u32; n + 1];
    let mut succ: Vec<u32> = Vec::with_capacity(n);
    let mut buf = Vec::with_capacity(2);
    for (pc, op) in ops.iter().enumerate() {
        if let Some(op) = op {
            buf.clear();
            successors(op, pc + op.slots(), n, &mut buf);
            succ.extend(buf.iter().map(|&s| s as u32));
        }
        succ_at[pc + 1] = succ.len() as u32;
    }
    let mut pred_at = vec![0u32; n + 1];
    for &s in &succ {
        pred_at[s as usize + 1] += 1;
    }
    for i in 0..n {
        pred_at[i + 1] += pred_at[i];
    }
    let mut fill = pred_at.clone();
    let mut pred = vec![0u32; succ.len()];
    for pc in 0..n {
        for &s in &succ[succ_at[pc] as usize..succ_at[pc + 1] as usize] {
            pred[fill[s as usize] as usize] = pc as u32;
            fill[s as usize] += 1;
        }
    }

    // Backward fixpoint over a worklist, seeded in reverse order.
    let effects: Vec<(Regs, Regs)> = ops
        .iter()
        .map(|o| o.as_ref().map_or((0, 0), use64_kill))
        .collect();
    let mut live_in: Vec<Regs> = vec![0; n];
    let mut live_out: Vec<Regs> = vec![0; n];
    let mut queued = vec![false; n];
    let mut work: Vec<u32> = Vec::with_capacity(n);
    for pc in 0..n {
        if ops[pc].is_some() {
            work.push(pc as u32);
            queued[pc] = true;
        }
    }
    while let Some(pc) = work.pop() {
        let pc = pc as usize;
        queued[pc] = false;
        let out = succ[succ_at[pc] as usize..succ_at[pc + 1] as usize]
            .iter()
            .fold(0, |acc, &s| acc | live_in[s as usize]);
        live_out[pc] = out;
        let (uses, kills) = effects[pc];
        let inn = (out & !kills) | uses;
        if inn != live_in[pc] {
            live_in[pc] = inn;
            for &p in &pred[pred_at[pc] as usize..pred_at[pc + 1] as usize] {
                if !queued[p as usize] {
                    queued[p as usize] = true;
                    work.push(p);
                }
            }
        }
    }
    Ok(ops
        .iter()
        .zip(&live_out)
        .map(|(op, &out)| {
            op.as_ref()
                .and_then(def32)
                .is_some_and(|r| out & bit(r) != 0)
        })
        .collect())
}

/// What [`opt_subreg_zext_lo32_rnd_hi32`] is asked to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZextMode {
    /// The JIT needs explicit zero extension (`bpf_jit_needs_zext()`).
    pub needs_zext: bool,
    /// `BPF_F_TEST_RND_HI32`: randomise the upper half of definitions nothing reads it of.
    pub rnd_hi32: bool,
}

/// `opt_subreg_zext_lo32_rnd_hi32` on the load's list: `orig` is the verified program the list
/// was built from and `zext` its [`zext_dst`]; `rand` supplies the random upper halves.
/// `EINVAL` if the lengths disagree.
pub fn opt_subreg_zext_lo32_rnd_hi32<A: Default>(
    list: &mut PatchList<A>,
    orig: &[Insn],
    zext: &[bool],
    mode: ZextMode,
    rand: &mut dyn FnMut() -> u32,
) -> Result<()> {
    if orig.len() != list.orig_len() || zext.len() != orig.len() {
        return Err(Errno::EINVAL);
    }
    if mode == ZextMode::default() && !orig.iter().any(is_cmpxchg32) {
        return Ok(());
    }
    let mut cur = list.cursor();
    while let Some(id) = cur.next(list) {
        let Some(insn) = list.insn(id) else { continue };
        if insn.is_ld_imm64() || insn.code == 0 {
            continue;
        }
        let Ok(op) = decode_internal(&[insn], 0) else {
            continue;
        };
        let Some(r) = def32(&op) else { continue };
        let judged = match list.origin(id) {
            Some(Origin::Original(i))
                if orig[i as usize] == insn
                    && list
                        .next(id)
                        .is_none_or(|n| list.origin(n) != Some(Origin::Inserted)) =>
            {
                Some(zext[i as usize])
            }
            _ => None,
        };
        if judged != Some(false) {
            if mode.needs_zext || is_cmpxchg32(&insn) {
                list.replace(id, &[insn, mov32_reg(r, r)])?;
            }
        } else if mode.rnd_hi32 {
            list.replace(
                id,
                &[
                    insn,
                    mov64_imm(BPF_REG_AX, rand() as i32),
                    alu64_imm(alu::LSH, BPF_REG_AX, 32),
                    alu64_reg(alu::OR, r, BPF_REG_AX),
                ],
            )?;
        }
    }
    Ok(())
}

/// A 32-bit `cmpxchg` (`is_cmpxchg_insn` for the width that defines a sub-register): always
/// zero-extended when its R0 is read, whatever the JIT says.
pub fn is_cmpxchg32(insn: &Insn) -> bool {
    matches!(
        decode_internal(core::slice::from_ref(insn), 0),
        Ok(Op::Atomic {
            op: AtomicOp::Cmpxchg,
            size: Size::W,
            ..
        })
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{
        alu32_imm, call_helper, exit, jmp_imm, jmp32_imm, ldx_mem, mov32_imm, stx_mem,
    };
    use crate::uapi::jmp;

    fn marks(p: &[Insn]) -> Vec<bool> {
        zext_dst(p).unwrap()
    }

    #[test]
    fn exit_and_alu64_read_the_upper_half_alu32_does_not() {
        assert_eq!(marks(&[mov32_reg(0, 1), exit()]), [true, false]);
        let p = [mov32_imm(2, 5), mov32_reg(0, 2), exit()];
        assert_eq!(marks(&p), [false, true, false]);
        let p = [mov32_imm(1, 5), mov64_reg(0, 1), exit()];
        assert_eq!(marks(&p), [true, false, false]);
        let p = [
            mov32_imm(1, 5),
            alu64_imm(alu::ADD, 1, 1),
            mov64_imm(0, 0),
            exit(),
        ];
        assert!(marks(&p)[0]);
        // A 64-bit `mov` into the register kills it without reading it.
        let p = [mov32_imm(1, 5), mov64_imm(1, 1), mov64_reg(0, 1), exit()];
        assert!(!marks(&p)[0]);
    }

    use crate::insn::mov64_reg;

    #[test]
    fn stores_compares_and_calls() {
        let st = |sz| {
            [
                mov32_imm(1, 5),
                stx_mem(sz, 10, 1, -8),
                mov64_imm(0, 0),
                exit(),
            ]
        };
        assert!(!marks(&st(Size::W))[0]);
        assert!(marks(&st(Size::DW))[0]);
        let p = [
            mov32_imm(1, 1),
            jmp32_imm(jmp::JGT, 1, 0, 0),
            mov64_imm(0, 0),
            exit(),
        ];
        assert!(!marks(&p)[0]);
        let p = [
            mov32_imm(1, 1),
            jmp_imm(jmp::JGT, 1, 0, 0),
            mov64_imm(0, 0),
            exit(),
        ];
        assert!(marks(&p)[0]);
        // Helper arguments are read as 64 bits; a callee-saved register the call leaves alone
        // is not read by it; R0 is redefined by the call.
        let p = [mov32_imm(1, 1), call_helper(5), exit()];
        assert!(marks(&p)[0]);
        let p = [
            mov32_imm(6, 1),
            mov32_imm(0, 1),
            call_helper(5),
            mov64_imm(0, 0),
            exit(),
        ];
        assert_eq!(marks(&p)[..2], [false, false]);
    }

    #[test]
    fn loads_and_paths() {
        let p = [ldx_mem(Size::W, 0, 1, 0), exit()];
        assert_eq!(marks(&p), [true, false]);
        let p = [ldx_mem(Size::DW, 0, 1, 0), exit()];
        assert_eq!(marks(&p), [false, false]);
        let p = [ldx_mem(Size::H, 2, 1, 0), mov32_reg(0, 2), exit()];
        assert_eq!(marks(&p), [false, true, false]);
        // Read on one path only.
        let p = [
            mov32_imm(1, 1),
            jmp_imm(jmp::JEQ, 2, 0, 2),
            mov64_reg(0, 1),
            exit(),
            mov64_imm(0, 0),
            exit(),
        ];
        assert!(marks(&p)[0]);
        // Read around a back-edge.
        let p = [
            mov32_imm(1, 0),
            alu64_imm(alu::ADD, 1, 1),
            jmp_imm(jmp::JLT, 1, 10, -2),
            mov64_imm(0, 0),
            exit(),
        ];
        assert!(marks(&p)[0]);
        let p = [
            mov32_imm(1, 0),
            alu32_imm(alu::ADD, 1, 1),
            jmp32_imm(jmp::JLT, 1, 10, -2),
            mov64_imm(0, 0),
            exit(),
        ];
        assert_eq!(marks(&p)[..2], [false, false]);
    }

    fn run_pass(p: &[Insn], mode: ZextMode) -> Vec<Insn> {
        let mut l: PatchList<()> = PatchList::new(p).unwrap();
        let m = marks(p);
        opt_subreg_zext_lo32_rnd_hi32(&mut l, p, &m, mode, &mut || 0x1234_5678).unwrap();
        l.linearize(&mut Vec::new(), None).unwrap()
    }

    #[test]
    fn zext_inserted_exactly_where_hi32_is_read() {
        let p = [mov32_imm(2, 5), mov32_reg(0, 2), exit()];
        let zext = ZextMode {
            needs_zext: true,
            rnd_hi32: false,
        };
        assert_eq!(
            run_pass(&p, zext),
            [mov32_imm(2, 5), mov32_reg(0, 2), mov32_reg(0, 0), exit()]
        );
        assert_eq!(run_pass(&p, ZextMode::default()), p);
        let rnd = ZextMode {
            needs_zext: false,
            rnd_hi32: true,
        };
        assert_eq!(
            run_pass(&p, rnd),
            [
                mov32_imm(2, 5),
                mov64_imm(BPF_REG_AX, 0x1234_5678),
                alu64_imm(alu::LSH, BPF_REG_AX, 32),
                alu64_reg(alu::OR, 2, BPF_REG_AX),
                mov32_reg(0, 2),
                exit()
            ]
        );
    }

    #[test]
    fn rewritten_code_is_zero_extended_never_randomised() {
        let p = [mov32_imm(2, 5), mov32_reg(0, 2), exit()];
        let m = marks(&p);
        let mut l: PatchList<()> = PatchList::new(&p).unwrap();
        // An earlier pass appended code after insn 0: its verdict no longer applies.
        l.replace(
            crate::patch::NodeId::orig(0),
            &[mov32_imm(2, 5), mov32_imm(3, 1)],
        )
        .unwrap();
        let both = ZextMode {
            needs_zext: true,
            rnd_hi32: true,
        };
        opt_subreg_zext_lo32_rnd_hi32(&mut l, &p, &m, both, &mut || 7).unwrap();
        assert_eq!(
            l.linearize(&mut Vec::new(), None).unwrap(),
            [
                mov32_imm(2, 5),
                mov32_reg(2, 2),
                mov32_imm(3, 1),
                mov32_reg(3, 3),
                mov32_reg(0, 2),
                mov32_reg(0, 0),
                exit()
            ]
        );
        assert_eq!(
            opt_subreg_zext_lo32_rnd_hi32(&mut l, &p[..2], &m[..2], both, &mut || 7),
            Err(Errno::EINVAL)
        );
    }
}
