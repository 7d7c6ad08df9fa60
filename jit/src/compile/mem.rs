//! Loads, stores and atomics (`BPF_LDX`, `BPF_ST`, `BPF_STX`, `BPF_ATOMIC` in Linux `do_jit()`,
//! `emit_ldx`, `emit_ldsx`, `emit_stx`, `emit_atomic` and the `cmpxchg` loop of
//! `arch/x86/net/bpf_jit_comp.c`).
//!
//! x86 is TSO: a plain load is an acquire and a plain store a release, so load-acquire and
//! store-release are ordinary moves. Locked read-modify-writes are sequentially consistent.

use super::regmap::{AUX, AX, bpf_reg};
use crate::x86::{AluKind, Asm, Cc, Mem, Reg, Rm, Width};
use kbpf::insn::{AtomicOp, Size};

/// The x86 width of a BPF access size.
pub fn width(size: Size) -> Width {
    match size {
        Size::B => Width::B,
        Size::H => Width::H,
        Size::W => Width::W,
        Size::DW => Width::Q,
    }
}

/// `dst = *(size *)(src + off)`, zero- or sign-extended to 64 bits.
pub fn emit_ldx(a: &mut Asm, size: Size, sign: bool, dst: u8, src: u8, off: i16) {
    let m = Rm::Mem(Mem::base(bpf_reg(src), off as i32));
    if sign && size != Size::DW {
        a.load_sx(Width::Q, width(size), bpf_reg(dst), m);
    } else {
        a.load_zx(width(size), bpf_reg(dst), m);
    }
}

/// `*(size *)(dst + off) = imm`.
pub fn emit_st(a: &mut Asm, size: Size, dst: u8, off: i16, imm: i32) {
    a.store_imm(
        width(size),
        Rm::Mem(Mem::base(bpf_reg(dst), off as i32)),
        imm,
    );
}

/// `*(size *)(dst + off) = src`.
pub fn emit_stx(a: &mut Asm, size: Size, dst: u8, src: u8, off: i16) {
    a.store(
        width(size),
        Mem::base(bpf_reg(dst), off as i32),
        bpf_reg(src),
    );
}

/// An atomic operation on `*(size *)(dst + off)`.
pub fn emit_atomic(a: &mut Asm, size: Size, op: AtomicOp, dst: u8, src: u8, off: i16) {
    let w = width(size);
    let (d, s) = (bpf_reg(dst), bpf_reg(src));
    let m = Mem::base(d, off as i32);
    match op {
        AtomicOp::LoadAcquire => emit_ldx(a, size, false, dst, src, off),
        AtomicOp::StoreRelease => a.store(w, m, s),
        AtomicOp::Add { fetch: false } => a.lock_alu_mr(AluKind::Add, w, m, s),
        AtomicOp::Or { fetch: false } => a.lock_alu_mr(AluKind::Or, w, m, s),
        AtomicOp::And { fetch: false } => a.lock_alu_mr(AluKind::And, w, m, s),
        AtomicOp::Xor { fetch: false } => a.lock_alu_mr(AluKind::Xor, w, m, s),
        AtomicOp::Add { fetch: true } => a.lock_xadd(w, m, s),
        AtomicOp::Xchg => a.xchg_mr(w, m, s),
        AtomicOp::Cmpxchg => {
            a.lock_cmpxchg(w, m, s);
            if w == Width::W {
                // On success a 32-bit cmpxchg leaves rax's upper half; R0 must be the zero-extended old value.
                a.mov_rr(Width::W, Reg::Rax, Reg::Rax);
            }
        }
        AtomicOp::Or { fetch: true } => fetch_loop(a, w, AluKind::Or, d, s, off),
        AtomicOp::And { fetch: true } => fetch_loop(a, w, AluKind::And, d, s, off),
        AtomicOp::Xor { fetch: true } => fetch_loop(a, w, AluKind::Xor, d, s, off),
    }
}

/// `src = fetch_op(dst + off, src)` for or/and/xor, which x86 has no fetching form of:
/// a `lock cmpxchg` loop with rax as the expected value. R0 is parked in AX (r10) meanwhile and
/// stands in for `dst`/`src` when either is R0.
fn fetch_loop(a: &mut Asm, w: Width, op: AluKind, d: Reg, s: Reg, off: i16) {
    a.mov_rr(Width::Q, AX, Reg::Rax);
    let rd = if d == Reg::Rax { AX } else { d };
    let rs = if s == Reg::Rax { AX } else { s };
    let m = Mem::base(rd, off as i32);
    a.load_zx(w, Reg::Rax, Rm::Mem(m));
    let mut body = Asm::new();
    body.mov_rr(Width::Q, AUX, Reg::Rax);
    body.alu_rr(op, w, AUX, rs);
    body.lock_cmpxchg(w, m, AUX);
    let back = -((body.len() + 2) as i32);
    a.bytes(&body.buf);
    a.jcc_rel8(Cc::Ne, back as i8);
    if s != Reg::Rax {
        a.mov_rr(w, s, Reg::Rax);
        a.mov_rr(Width::Q, Reg::Rax, AX);
    }
}
