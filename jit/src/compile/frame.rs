//! Stack frames: prologues and epilogues of the main program and of BPF-to-BPF subprograms
//! (Linux `emit_prologue()`, `push_callee_regs()`, `pop_callee_regs()` and the `BPF_EXIT` epilogue
//! in `arch/x86/net/bpf_jit_comp.c`).
//!
//! Main program, from its entry (byte offsets):
//!
//! ```text
//!  0  0f 1f 44 00 00       nop5                 ; patch site (trampolines), as in Linux
//!  5  48 31 c0             xor rax, rax         ; tail-call count := 0 (skipped by tail calls)
//!  8  55                   push rbp
//!  9  48 89 e5             mov rbp, rsp         ; BPF R10
//! 12  ← TAIL_CALL_OFFSET: a tail call jumps here with rax = count, rbp = the caller's frame
//! 12  48 81 ec 18 02 00 00 sub rsp, 536        ; 512 BPF stack + may_goto + tail-call slot + pad
//!     push rbx; push r12; push r13; push r14; push r15
//!     mov [rbp-528], rax                        ; the tail-call count slot
//!     [mov qword [rbp-520], BPF_MAX_LOOPS]      ; only when the program uses may_goto
//!     [mov r12, rbp]                            ; only with BPF-to-BPF calls (unwinding)
//!     xor rax, rdx, rcx, r8, rbx, r13, r14, r15 ; R0, R3–R9 start at 0 like the interpreter's
//! ```
//!
//! Frame below rbp: `[rbp-512, rbp)` BPF stack, `[rbp-520]` may_goto budget, `[rbp-528]` tail-call
//! count (the pre-6.12 Linux "value in the frame" scheme; a per-CPU counter may replace it),
//! `[rbp-536]` padding, then the five callee-saved pushes; rsp stays 16-byte aligned in the
//! body, so helpers are called directly.
//!
//! Subprogram: `push rbp; mov rbp, rsp; sub rsp, 528; push rbx, r13, r14, r15` (`[rbp-520]` its own
//! may_goto budget), epilogue `pop r15, r14, r13, rbx; leave; ret`. Each BPF frame thus has its
//! own 512 bytes, as in the interpreter.
//!
//! Main epilogue: with BPF-to-BPF calls it first reloads rbp from r12 and rsp from rbp, so it is
//! also the unwind target of an `unwind_on_zero` helper or a failed `callx` at any depth.

use super::regmap::{MAIN_FP, bpf_reg};
use crate::x86::{AluKind, Asm, Mem, Reg, Rm, Width};

/// Bytes of the main prologue a tail call skips (`X86_TAIL_CALL_OFFSET` without ENDBR).
pub const TAIL_CALL_OFFSET: usize = 12;
/// The BPF stack per frame (`MAX_BPF_STACK`).
pub const STACK: i32 = 512;
/// rbp-relative offset of a frame's may_goto budget.
pub const MAY_GOTO_SLOT: i32 = -(STACK + 8);
/// rbp-relative offset of the main frame's tail-call count.
pub const TAIL_CALL_CNT_SLOT: i32 = -(STACK + 16);
/// `sub rsp` of the main frame (stack, may_goto, tail-call count, alignment pad).
const MAIN_LOCALS: i32 = STACK + 24;
/// `sub rsp` of a subprogram frame (stack, may_goto, alignment pad).
const SUB_LOCALS: i32 = STACK + 16;
/// Callee-saved registers the main frame pushes, in push order.
const MAIN_SAVED: [Reg; 5] = [Reg::Rbx, Reg::R12, Reg::R13, Reg::R14, Reg::R15];
/// Callee-saved registers a subprogram frame pushes (R6–R9), in push order.
const SUB_SAVED: [Reg; 4] = [Reg::Rbx, Reg::R13, Reg::R14, Reg::R15];
/// `may_goto`'s per-frame loop budget (`BPF_MAX_LOOPS`).
pub const MAY_GOTO_BUDGET: i32 = 8 * 1024 * 1024;

/// What a prologue needs to know about the program.
#[derive(Clone, Copy, Debug)]
pub struct FrameInfo {
    /// Some instruction is `may_goto`.
    pub may_goto: bool,
    /// The program has BPF-to-BPF calls (so unwinding needs r12).
    pub local_calls: bool,
}

/// The main program's prologue.
pub fn main_prologue(a: &mut Asm, f: FrameInfo) {
    let start = a.len();
    a.nop5();
    a.alu_rr(AluKind::Xor, Width::Q, Reg::Rax, Reg::Rax);
    a.push(Reg::Rbp);
    a.mov_rr(Width::Q, Reg::Rbp, Reg::Rsp);
    debug_assert_eq!(a.len() - start, TAIL_CALL_OFFSET);
    a.alu_ri(AluKind::Sub, Width::Q, Rm::Reg(Reg::Rsp), MAIN_LOCALS);
    for r in MAIN_SAVED {
        a.push(r);
    }
    a.store(Width::Q, Mem::base(Reg::Rbp, TAIL_CALL_CNT_SLOT), Reg::Rax);
    if f.may_goto {
        a.store_imm(
            Width::Q,
            Rm::Mem(Mem::base(Reg::Rbp, MAY_GOTO_SLOT)),
            MAY_GOTO_BUDGET,
        );
    }
    if f.local_calls {
        a.mov_rr(Width::Q, MAIN_FP, Reg::Rbp);
    }
    for r in [0u8, 3, 4, 5, 6, 7, 8, 9] {
        let x = bpf_reg(r);
        a.alu_rr(AluKind::Xor, Width::W, x, x);
    }
}

/// The main program's epilogue (also the unwind target).
pub fn main_epilogue(a: &mut Asm, f: FrameInfo) {
    if f.local_calls {
        a.mov_rr(Width::Q, Reg::Rbp, MAIN_FP);
        let pushed = (MAIN_SAVED.len() * 8) as i32;
        a.lea(Reg::Rsp, Mem::base(Reg::Rbp, -(MAIN_LOCALS + pushed)));
    }
    for r in MAIN_SAVED.iter().rev() {
        a.pop(*r);
    }
    a.leave();
    a.ret();
}

/// A subprogram's prologue.
pub fn sub_prologue(a: &mut Asm, f: FrameInfo) {
    a.push(Reg::Rbp);
    a.mov_rr(Width::Q, Reg::Rbp, Reg::Rsp);
    a.alu_ri(AluKind::Sub, Width::Q, Rm::Reg(Reg::Rsp), SUB_LOCALS);
    for r in SUB_SAVED {
        a.push(r);
    }
    if f.may_goto {
        a.store_imm(
            Width::Q,
            Rm::Mem(Mem::base(Reg::Rbp, MAY_GOTO_SLOT)),
            MAY_GOTO_BUDGET,
        );
    }
}

/// A subprogram's epilogue.
pub fn sub_epilogue(a: &mut Asm) {
    for r in SUB_SAVED.iter().rev() {
        a.pop(*r);
    }
    a.leave();
    a.ret();
}
