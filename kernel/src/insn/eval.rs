//! The ISA's concrete semantics, one operation at a time (RFC 9669): ALU results, branch
//! conditions and byte swaps on plain values.
//!
//! The fast interpreter (`interp/exec.rs`) specializes these per pre-decoded kind and the
//! JIT emits them as machine code; this is the plain statement of the same rules, for the
//! checked reference interpreter and the verifier's constant folding and soundness tests.
//! Linux spells them out in `___bpf_prog_run` (`kernel/bpf/core.c`).

use super::{AluOp, Cond, EndKind};

/// `a op b` for one ALU instruction (`wide`: 64-bit, else 32-bit with the result
/// zero-extended): division by zero gives 0, modulo by zero keeps `a`, `INT_MIN / -1` wraps,
/// shift counts are masked to the width.
pub fn alu(wide: bool, op: AluOp, a: u64, b: u64) -> u64 {
    if wide {
        match op {
            AluOp::Add => a.wrapping_add(b),
            AluOp::Sub => a.wrapping_sub(b),
            AluOp::Mul => a.wrapping_mul(b),
            AluOp::Div => a.checked_div(b).unwrap_or(0),
            AluOp::SDiv if b == 0 => 0,
            AluOp::SDiv => (a as i64).wrapping_div(b as i64) as u64,
            AluOp::Mod => a.checked_rem(b).unwrap_or(a),
            AluOp::SMod if b == 0 => a,
            AluOp::SMod => (a as i64).wrapping_rem(b as i64) as u64,
            AluOp::Or => a | b,
            AluOp::And => a & b,
            AluOp::Xor => a ^ b,
            AluOp::Lsh => a << (b & 63),
            AluOp::Rsh => a >> (b & 63),
            AluOp::Arsh => ((a as i64) >> (b & 63)) as u64,
            AluOp::Neg => a.wrapping_neg(),
            AluOp::Mov => b,
            AluOp::MovSx(8) => b as i8 as i64 as u64,
            AluOp::MovSx(16) => b as i16 as i64 as u64,
            AluOp::MovSx(_) => b as i32 as i64 as u64,
        }
    } else {
        let (a, b) = (a as u32, b as u32);
        (match op {
            AluOp::Add => a.wrapping_add(b),
            AluOp::Sub => a.wrapping_sub(b),
            AluOp::Mul => a.wrapping_mul(b),
            AluOp::Div => a.checked_div(b).unwrap_or(0),
            AluOp::SDiv if b == 0 => 0,
            AluOp::SDiv => (a as i32).wrapping_div(b as i32) as u32,
            AluOp::Mod => a.checked_rem(b).unwrap_or(a),
            AluOp::SMod if b == 0 => a,
            AluOp::SMod => (a as i32).wrapping_rem(b as i32) as u32,
            AluOp::Or => a | b,
            AluOp::And => a & b,
            AluOp::Xor => a ^ b,
            AluOp::Lsh => a << (b & 31),
            AluOp::Rsh => a >> (b & 31),
            AluOp::Arsh => ((a as i32) >> (b & 31)) as u32,
            AluOp::Neg => a.wrapping_neg(),
            AluOp::Mov => b,
            AluOp::MovSx(8) => b as i8 as i32 as u32,
            AluOp::MovSx(_) => b as i16 as i32 as u32,
        }) as u64
    }
}

/// Whether a conditional jump with condition `c` is taken (`wide`: compare 64 bits, else the
/// low 32, signed conditions on the sign-extended halves).
pub fn cond(wide: bool, c: Cond, a: u64, b: u64) -> bool {
    let (a, b) = if wide {
        (a, b)
    } else {
        (a as u32 as u64, b as u32 as u64)
    };
    let (sa, sb) = if wide {
        (a as i64, b as i64)
    } else {
        (a as u32 as i32 as i64, b as u32 as i32 as i64)
    };
    match c {
        Cond::Eq => a == b,
        Cond::Ne => a != b,
        Cond::Gt => a > b,
        Cond::Ge => a >= b,
        Cond::Lt => a < b,
        Cond::Le => a <= b,
        Cond::Set => a & b != 0,
        Cond::Sgt => sa > sb,
        Cond::Sge => sa >= sb,
        Cond::Slt => sa < sb,
        Cond::Sle => sa <= sb,
    }
}

/// A byte-swap instruction: `ToLe` truncates to `bits` (little-endian host), the other
/// kinds swap the low `bits` bits.
pub fn end(kind: EndKind, bits: u8, v: u64) -> u64 {
    match (kind, bits) {
        (EndKind::ToLe, 16) => v as u16 as u64,
        (EndKind::ToLe, 32) => v as u32 as u64,
        (EndKind::ToLe, _) => v,
        (_, 16) => (v as u16).swap_bytes() as u64,
        (_, 32) => (v as u32).swap_bytes() as u64,
        (_, _) => v.swap_bytes(),
    }
}
