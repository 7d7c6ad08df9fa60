//! ALU and byte-order instructions (the `BPF_ALU`/`BPF_ALU64` cases of Linux `do_jit()` in
//! `arch/x86/net/bpf_jit_comp.c`, including `emit_mov_imm32`, `emit_movsx_reg` and the
//! `BPF_DIV`/`BPF_MOD` sequence).
//!
//! Semantics are the interpreter's (`kbpf::interp`): 32-bit operations zero-extend (every x86
//! 32-bit write does), shift counts are masked to the width (x86 masks `cl` the same way),
//! division by zero gives 0, modulo by zero leaves the dividend (zero-extended for 32-bit), and
//! signed `MIN / -1` wraps (handled before `idiv`, which would trap).

use super::regmap::{AUX, bpf_reg};
use crate::x86::{AluKind, Asm, Cc, Reg, Rm, ShiftKind, Width};
use kbpf::insn::{AluOp, EndKind, Operand};

/// Emits `dst = dst op src` (`wide`: 64-bit).
pub fn emit_alu(a: &mut Asm, wide: bool, op: AluOp, dst: u8, src: Operand) {
    let w = Width::of(wide);
    let d = bpf_reg(dst);
    let simple = |op: AluOp| match op {
        AluOp::Add => Some(AluKind::Add),
        AluOp::Sub => Some(AluKind::Sub),
        AluOp::And => Some(AluKind::And),
        AluOp::Or => Some(AluKind::Or),
        AluOp::Xor => Some(AluKind::Xor),
        _ => None,
    };
    if let Some(k) = simple(op) {
        match src {
            Operand::Reg(s) => a.alu_rr(k, w, d, bpf_reg(s)),
            Operand::Imm(imm) => a.alu_ri(k, w, Rm::Reg(d), imm),
        }
        return;
    }
    match (op, src) {
        (AluOp::Mov, Operand::Reg(s)) => {
            let s = bpf_reg(s);
            if s != d || !wide {
                a.mov_rr(w, d, s);
            }
        }
        (AluOp::Mov, Operand::Imm(imm)) => {
            if wide {
                a.mov_imm64(d, imm as i64 as u64);
            } else {
                a.mov_imm64(d, imm as u32 as u64);
            }
        }
        (AluOp::Mul, Operand::Reg(s)) => a.imul_rr(w, d, bpf_reg(s)),
        (AluOp::Mul, Operand::Imm(imm)) => a.imul_rri(w, d, d, imm),
        (AluOp::Neg, _) => a.neg(w, d),
        (AluOp::Lsh | AluOp::Rsh | AluOp::Arsh, src) => {
            let kind = match op {
                AluOp::Lsh => ShiftKind::Shl,
                AluOp::Rsh => ShiftKind::Shr,
                _ => ShiftKind::Sar,
            };
            match src {
                Operand::Imm(imm) => {
                    let mask = if wide { 63 } else { 31 };
                    a.shift_ri(kind, w, d, (imm & mask) as u8);
                }
                Operand::Reg(s) => shift_by_reg(a, kind, w, d, bpf_reg(s)),
            }
        }
        (AluOp::MovSx(bits), Operand::Reg(s)) => {
            let from = match bits {
                8 => Width::B,
                16 => Width::H,
                _ => Width::W,
            };
            a.load_sx(w, from, d, Rm::Reg(bpf_reg(s)));
        }
        (AluOp::Div | AluOp::SDiv | AluOp::Mod | AluOp::SMod, src) => {
            let signed = matches!(op, AluOp::SDiv | AluOp::SMod);
            let is_mod = matches!(op, AluOp::Mod | AluOp::SMod);
            emit_divmod(a, w, signed, is_mod, d, src);
        }
        // MovSx with an immediate does not decode; the simple ops returned above.
        _ => {}
    }
}

/// `d = d shift s` with the count in `cl` (see the register map's notes on rcx).
fn shift_by_reg(a: &mut Asm, kind: ShiftKind, w: Width, d: Reg, s: Reg) {
    if s == Reg::Rcx {
        a.shift_cl(kind, w, d);
    } else if d == Reg::Rcx {
        a.mov_rr(Width::Q, AUX, Reg::Rcx);
        a.mov_rr(Width::Q, Reg::Rcx, s);
        a.shift_cl(kind, w, AUX);
        a.mov_rr(Width::Q, Reg::Rcx, AUX);
    } else {
        a.mov_rr(Width::Q, AUX, Reg::Rcx);
        a.mov_rr(Width::Q, Reg::Rcx, s);
        a.shift_cl(kind, w, d);
        a.mov_rr(Width::Q, Reg::Rcx, AUX);
    }
}

/// What a zero divisor leaves in `d`: 0 for division, the (zero-extended) dividend for modulo.
fn by_zero(a: &mut Asm, w: Width, is_mod: bool, d: Reg) {
    if !is_mod {
        a.alu_rr(AluKind::Xor, Width::W, d, d);
    } else if w == Width::W {
        a.mov_rr(Width::W, d, d);
    }
}

/// What a divisor of -1 leaves in `d` for signed operations: `-d` (wrapping) or 0.
fn by_minus_one(a: &mut Asm, w: Width, is_mod: bool, d: Reg) {
    if is_mod {
        a.alu_rr(AluKind::Xor, Width::W, d, d);
    } else {
        a.neg(w, d);
    }
}

/// `d = d / AUX` or `d % AUX` through rdx:rax, preserving R0 and R3 unless `d` is one of them.
fn divide_core(a: &mut Asm, w: Width, signed: bool, is_mod: bool, d: Reg) {
    if d != Reg::Rax {
        a.push(Reg::Rax);
    }
    if d != Reg::Rdx {
        a.push(Reg::Rdx);
    }
    if d != Reg::Rax {
        a.mov_rr(Width::Q, Reg::Rax, d);
    }
    if signed {
        a.cqo(w);
    } else {
        a.alu_rr(AluKind::Xor, Width::W, Reg::Rdx, Reg::Rdx);
    }
    a.div(w, signed, AUX);
    a.mov_rr(Width::Q, AUX, if is_mod { Reg::Rdx } else { Reg::Rax });
    if d != Reg::Rdx {
        a.pop(Reg::Rdx);
    }
    if d != Reg::Rax {
        a.pop(Reg::Rax);
    }
    a.mov_rr(Width::Q, d, AUX);
}

/// Appends `block` preceded by a short conditional jump over it.
fn skip_if(a: &mut Asm, cc: Cc, block: &Asm) {
    a.jcc_rel8(cc, block.len() as i8);
    a.bytes(&block.buf);
}

fn emit_divmod(a: &mut Asm, w: Width, signed: bool, is_mod: bool, d: Reg, src: Operand) {
    match src {
        Operand::Imm(0) => by_zero(a, w, is_mod, d),
        Operand::Imm(-1) if signed => by_minus_one(a, w, is_mod, d),
        Operand::Imm(k) => {
            if w == Width::Q {
                a.mov_imm64(AUX, k as i64 as u64);
            } else {
                a.mov_imm64(AUX, k as u32 as u64);
            }
            divide_core(a, w, signed, is_mod, d);
        }
        Operand::Reg(s) => {
            a.mov_rr(w, AUX, bpf_reg(s));
            // Tail: [signed: cmp AUX, -1; jne core; minus-one; jmp done] core; done:
            let mut core = Asm::new();
            divide_core(&mut core, w, signed, is_mod, d);
            let mut tail = Asm::new();
            if signed {
                let mut m1 = Asm::new();
                by_minus_one(&mut m1, w, is_mod, d);
                m1.jmp_rel8(core.len() as i8);
                tail.alu_ri(AluKind::Cmp, w, Rm::Reg(AUX), -1);
                skip_if(&mut tail, Cc::Ne, &m1);
            }
            tail.bytes(&core.buf);
            // Head: test AUX, AUX; jnz tail; by-zero; jmp done.
            let mut zero = Asm::new();
            by_zero(&mut zero, w, is_mod, d);
            zero.jmp_rel8(tail.len() as i8);
            a.test_rr(w, AUX, AUX);
            skip_if(a, Cc::Ne, &zero);
            a.bytes(&tail.buf);
        }
    }
}

/// Emits a byte-order conversion of the low `bits` of `dst`.
pub fn emit_end(a: &mut Asm, kind: EndKind, bits: u8, dst: u8) {
    let d = bpf_reg(dst);
    match (kind, bits) {
        (EndKind::ToLe, 16) => a.load_zx(Width::H, d, Rm::Reg(d)),
        (EndKind::ToLe, 32) => a.mov_rr(Width::W, d, d),
        (EndKind::ToLe, _) => {}
        (_, 16) => {
            a.shift_ri(ShiftKind::Ror, Width::H, d, 8);
            a.load_zx(Width::H, d, Rm::Reg(d));
        }
        (_, 32) => a.bswap(Width::W, d),
        (_, _) => a.bswap(Width::Q, d),
    }
}
