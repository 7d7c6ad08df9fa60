//! [`encode`]: the typed view back to instruction slots, the inverse of [`super::super::decode`].
//!
//! Mirrors the `BPF_*` instruction macros of `include/linux/filter.h` (through the builders in
//! `insn/build.rs`), driven by an [`Op`] instead of one macro per form.

use alloc::vec::Vec;

use super::super::build::*;
use super::super::{AluOp, AtomicOp, Call, EndKind, Insn, Op, Operand};
use crate::uapi::{alu, atomic, class, jmp, mode, pseudo, src};

/// Appends the slots of `op` to `out` (two for `ld_imm64`, else one).
///
/// Fields are written as given: an `Op` that [`decode`](super::super::decode) would not produce
/// (say `r11`, or an 8-bit `lock add`) encodes to slots that `decode` rejects. A `ja` whose
/// distance fits 16 bits uses the JMP-class encoding, otherwise `ja32`
/// ([`ja32`](super::super::ja32) forces the latter).
pub fn encode(op: &Op, out: &mut Vec<Insn>) {
    let insn = match *op {
        Op::Alu { wide, op, dst, src } => encode_alu(wide, op, dst, src),
        Op::End { kind, bits, dst } => {
            let code = match kind {
                EndKind::ToLe => class::ALU | alu::END | src::K,
                EndKind::ToBe => class::ALU | alu::END | src::X,
                EndKind::Swap => class::ALU64 | alu::END | src::K,
            };
            Insn::new(code, dst, 0, 0, bits as i32)
        }
        Op::Ja { off } => match i16::try_from(off) {
            Ok(off) => ja(off),
            Err(_) => ja32(off),
        },
        Op::Jmp {
            wide,
            cond,
            dst,
            src,
            off,
        } => {
            let cls = if wide { class::JMP } else { class::JMP32 };
            let code = cls | cond_code(cond);
            match src {
                Operand::Reg(s) => Insn::new(code | src::X, dst, s, off, 0),
                Operand::Imm(imm) => Insn::new(code | src::K, dst, 0, off, imm),
            }
        }
        Op::Call(Call::Helper(id)) => call_helper(id),
        Op::Call(Call::Local(imm)) => call_local(imm),
        Op::Call(Call::Kfunc(id)) => {
            Insn::new(class::JMP | jmp::CALL, 0, pseudo::KFUNC_CALL, 0, id)
        }
        Op::Call(Call::Reg(r)) => callx(r),
        Op::TailCall(aux) => aux.insn(),
        Op::Exit => exit(),
        Op::MayGoto { off } => Insn::new(class::JMP | jmp::JCOND, 0, 0, off, 0),
        Op::Ldx {
            size,
            sign,
            dst,
            src,
            off,
        } => {
            if sign {
                ldx_memsx(size, dst, src, off)
            } else {
                ldx_mem(size, dst, src, off)
            }
        }
        Op::St {
            size,
            dst,
            off,
            imm,
        } => st_mem(size, dst, off, imm),
        Op::Stx {
            size,
            dst,
            src,
            off,
        } => stx_mem(size, dst, src, off),
        Op::Atomic {
            size,
            op,
            dst,
            src,
            off,
        } => atomic_op(size, atomic_code(op), dst, src, off),
        Op::LdImm64 { dst, pseudo, imm } => {
            out.extend_from_slice(&ld_imm64_raw(dst, pseudo, imm));
            return;
        }
        Op::LdPacket {
            size,
            indirect,
            src,
            imm,
        } => {
            let m = if indirect { mode::IND } else { mode::ABS };
            Insn::new(class::LD | m | size.code(), 0, src, 0, imm)
        }
    };
    out.push(insn);
}

fn encode_alu(wide: bool, op: AluOp, dst: u8, operand: Operand) -> Insn {
    let cls = if wide { class::ALU64 } else { class::ALU };
    let (code, off) = match op {
        AluOp::Add => (alu::ADD, 0),
        AluOp::Sub => (alu::SUB, 0),
        AluOp::Mul => (alu::MUL, 0),
        AluOp::Div => (alu::DIV, 0),
        AluOp::SDiv => (alu::DIV, 1),
        AluOp::Or => (alu::OR, 0),
        AluOp::And => (alu::AND, 0),
        AluOp::Lsh => (alu::LSH, 0),
        AluOp::Rsh => (alu::RSH, 0),
        AluOp::Neg => return Insn::new(cls | alu::NEG | src::K, dst, 0, 0, 0),
        AluOp::Mod => (alu::MOD, 0),
        AluOp::SMod => (alu::MOD, 1),
        AluOp::Xor => (alu::XOR, 0),
        AluOp::Mov => (alu::MOV, 0),
        AluOp::MovSx(bits) => (alu::MOV, bits as i16),
        AluOp::Arsh => (alu::ARSH, 0),
    };
    match operand {
        Operand::Reg(s) => Insn::new(cls | code | src::X, dst, s, off, 0),
        Operand::Imm(imm) => Insn::new(cls | code | src::K, dst, 0, off, imm),
    }
}

fn cond_code(cond: super::super::Cond) -> u8 {
    use super::super::Cond::*;
    match cond {
        Eq => jmp::JEQ,
        Gt => jmp::JGT,
        Ge => jmp::JGE,
        Set => jmp::JSET,
        Ne => jmp::JNE,
        Sgt => jmp::JSGT,
        Sge => jmp::JSGE,
        Lt => jmp::JLT,
        Le => jmp::JLE,
        Slt => jmp::JSLT,
        Sle => jmp::JSLE,
    }
}

fn atomic_code(op: AtomicOp) -> i32 {
    let fetch = |base: i32, f: bool| if f { base | atomic::FETCH } else { base };
    match op {
        AtomicOp::Add { fetch: f } => fetch(atomic::ADD, f),
        AtomicOp::Or { fetch: f } => fetch(atomic::OR, f),
        AtomicOp::And { fetch: f } => fetch(atomic::AND, f),
        AtomicOp::Xor { fetch: f } => fetch(atomic::XOR, f),
        AtomicOp::Xchg => atomic::XCHG,
        AtomicOp::Cmpxchg => atomic::CMPXCHG,
        AtomicOp::LoadAcquire => atomic::LOAD_ACQ,
        AtomicOp::StoreRelease => atomic::STORE_REL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{Size, decode};

    #[test]
    fn encodes_what_decode_reads() {
        let ops = [
            Op::Alu {
                wide: false,
                op: AluOp::SMod,
                dst: 3,
                src: Operand::Imm(-7),
            },
            Op::End {
                kind: EndKind::ToBe,
                bits: 16,
                dst: 1,
            },
            Op::Atomic {
                size: Size::B,
                op: AtomicOp::LoadAcquire,
                dst: 0,
                src: 1,
                off: -2,
            },
            Op::Ja { off: 1 << 20 },
            Op::LdPacket {
                size: Size::H,
                indirect: true,
                src: 6,
                imm: 14,
            },
        ];
        for op in ops {
            let mut v = Vec::new();
            encode(&op, &mut v);
            assert_eq!(v.len(), 1);
            assert_eq!(decode(&v, 0), Ok(op));
        }
        let mut v = Vec::new();
        encode(&Op::Ja { off: 1 << 20 }, &mut v);
        assert_eq!(v[0].class(), class::JMP32);
    }
}
