//! Stack frames: prologues and epilogues of the main program and of BPF-to-BPF subprograms
//! (Linux `emit_prologue()`, `push_callee_regs()`, `pop_callee_regs()` and the `BPF_EXIT` epilogue
//! in `arch/x86/net/bpf_jit_comp.c`).
//!
//! Every frame — a program's main frame and each subprogram's — has the same layout below its
//! rbp, and saves the same callee-saved registers:
//!
//! ```text
//! [rbp-512, rbp)  the BPF stack (R10 = rbp)
//! [rbp-520]       the frame's may_goto budget
//! [rbp-528]       main frame of the run: the tail-call counter pointer (tcc_ptr)
//! [rbp-536]       padding (keeps rsp 16-byte aligned in the body, so helpers are called directly)
//! [rbp-576, rbp-536)  saved rbx, r12, r13, r14, r15 (pushed in that order)
//! ```
//!
//! Main prologue, from the entry (`JitEntry(r1, r2, tcc_ptr)`: rdx holds `tcc_ptr`):
//!
//! ```text
//! nop5                               ; patch site (trampolines), as in Linux
//! push rbp; mov rbp, rsp
//! sub rsp, 536
//! push rbx; push r12; push r13; push r14; push r15
//! mov r12, rbp                       ; the run's bottom frame: tcc_ptr and unwind target
//! mov [rbp-528], rdx                 ; tcc_ptr
//! mov qword [rbp-520], BPF_MAX_LOOPS ; may_goto budget
//! xor R0, R3–R9                      ; start at 0 like the interpreter's registers
//! ← the tail-call entry: a tail call jumps here
//! ```
//!
//! The last four steps are emitted only where the program can observe them ([`MainFrame`]):
//! a program that makes no tail call runs alone in its bottom frame, so it needs `r12` only to
//! unwind, the counter pointer never, the may_goto budget only for its own `may_goto`, and a
//! zeroed register only where some instruction mentions it. A program that makes tail calls
//! gets all four, because the programs it reaches run in its frame and may rely on any of
//! them. The tail-call entry is therefore per image (the offset of instruction 0's code, at
//! most [`TAIL_CALL_OFFSET`]); the frame a tail-called body runs in is always its caller's
//! full one. This is Linux's `detect_reg_usage` idea applied to the parts a tail call skips.
//!
//! Because every frame has one layout, a tail call does not rebuild the frame as Linux does (pop
//! the callee-saved registers, release the stack, let the target push its own): it jumps past
//! the target's whole prologue with rsp, rbp, the BPF stack, the may_goto budget and all BPF
//! registers untouched — exactly the interpreter's tail call, which swaps the program and keeps
//! registers and stack. A tail call made in a subprogram frame thus leaves that frame in place,
//! and the target's `exit` (the common epilogue) returns to the subprogram's caller. r12 holds
//! the run's bottom frame in every frame (a subprogram saves and restores it unchanged), so the
//! counter is `[r12-528]` everywhere, shared by every frame and every tail-called program.
//!
//! Subprogram prologue: `push rbp; mov rbp, rsp; sub rsp, 536; push rbx, r12, r13, r14, r15`
//! and the may_goto budget (each BPF frame has its own, as in the interpreter).
//!
//! Epilogue (main and subprograms alike): pop the five registers, `leave; ret`. The main
//! epilogue is followed by the unwind entry: `mov rbp, r12; lea rsp, [rbp-576]` and a copy of
//! the epilogue, so an
//! `unwind_on_zero` helper or a failed `callx` at any depth — including inside a program
//! tail-called from a subprogram — ends the whole run with R0 = 0, as the interpreter does.

use super::regmap::{MAIN_FP, bpf_reg};
use crate::x86::{AluKind, Asm, Mem, Reg, Rm, Width};

/// Bytes of the full main prologue a tail call skips: the whole prologue (the offset of the
/// first body instruction) when every part is emitted. Linux's `X86_TAIL_CALL_OFFSET` skips
/// less because its tail calls rebuild the frame; see the module docs.
pub const TAIL_CALL_OFFSET: usize = 66;
/// The BPF stack per frame (`MAX_BPF_STACK`).
pub const STACK: i32 = 512;
/// rbp-relative offset of a frame's may_goto budget.
pub const MAY_GOTO_SLOT: i32 = -(STACK + 8);
/// rbp-relative offset of the run's tail-call counter pointer in the bottom frame (`[r12-528]`).
pub const TAIL_CALL_CNT_SLOT: i32 = -(STACK + 16);
/// `sub rsp` of every frame (stack, may_goto, tcc_ptr, alignment pad).
const LOCALS: i32 = STACK + 24;
/// Callee-saved registers every frame pushes, in push order.
const SAVED: [Reg; 5] = [Reg::Rbx, Reg::R12, Reg::R13, Reg::R14, Reg::R15];
/// `may_goto`'s per-frame loop budget (`BPF_MAX_LOOPS`).
pub const MAY_GOTO_BUDGET: i32 = 8 * 1024 * 1024;

/// What a prologue needs to know about the program.
#[derive(Clone, Copy, Debug)]
pub struct FrameInfo {
    /// The subprograms need a may_goto budget: some instruction is `may_goto`, or a tail call
    /// may run a program that uses it in the subprogram's frame.
    pub sub_may_goto: bool,
}

fn push_frame(a: &mut Asm) {
    a.push(Reg::Rbp);
    a.mov_rr(Width::Q, Reg::Rbp, Reg::Rsp);
    a.alu_ri(AluKind::Sub, Width::Q, Rm::Reg(Reg::Rsp), LOCALS);
    for r in SAVED {
        a.push(r);
    }
}

fn init_may_goto(a: &mut Asm) {
    a.store_imm(
        Width::Q,
        Rm::Mem(Mem::base(Reg::Rbp, MAY_GOTO_SLOT)),
        MAY_GOTO_BUDGET,
    );
}

/// Which optional parts of the main prologue a program needs (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MainFrame {
    /// `mov r12, rbp`: the run's bottom frame, for tail calls and unwinding.
    pub bottom_fp: bool,
    /// Store the tail-call counter pointer (the program makes tail calls).
    pub tcc_ptr: bool,
    /// Initialize the main frame's may_goto budget.
    pub may_goto: bool,
    /// Bit `n` set: zero BPF register `n` (R1 and R2 are arguments and never zeroed).
    pub zero: u16,
}

impl MainFrame {
    /// Every part: what a program that makes tail calls needs.
    pub const FULL: MainFrame = MainFrame {
        bottom_fp: true,
        tcc_ptr: true,
        may_goto: true,
        zero: ZEROED,
    };
}

/// The registers a full prologue zeroes: R0 and R3–R9.
const ZEROED: u16 = 0b11_1111_1001;

/// The main program's prologue: [`TAIL_CALL_OFFSET`] bytes with every part, fewer without.
pub fn main_prologue(a: &mut Asm, m: MainFrame) {
    let start = a.len();
    a.nop5();
    push_frame(a);
    if m.bottom_fp {
        a.mov_rr(Width::Q, MAIN_FP, Reg::Rbp);
    }
    if m.tcc_ptr {
        a.store(Width::Q, Mem::base(Reg::Rbp, TAIL_CALL_CNT_SLOT), Reg::Rdx);
    }
    if m.may_goto {
        init_may_goto(a);
    }
    for r in 0..10u8 {
        if (m.zero & ZEROED) >> r & 1 != 0 {
            let x = bpf_reg(r);
            a.alu_rr(AluKind::Xor, Width::W, x, x);
        }
    }
    debug_assert!(a.len() - start <= TAIL_CALL_OFFSET);
    debug_assert!(m != MainFrame::FULL || a.len() - start == TAIL_CALL_OFFSET);
}

/// The unwind entry: back to the run's bottom frame, then its epilogue.
pub fn unwind(a: &mut Asm) {
    let pushed = (SAVED.len() * 8) as i32;
    a.mov_rr(Width::Q, Reg::Rbp, MAIN_FP);
    a.lea(Reg::Rsp, Mem::base(Reg::Rbp, -(LOCALS + pushed)));
    epilogue(a);
}

/// The epilogue of every frame: restore the callee-saved registers, `leave; ret`.
pub fn epilogue(a: &mut Asm) {
    for r in SAVED.iter().rev() {
        a.pop(*r);
    }
    a.leave();
    a.ret();
}

/// A subprogram's prologue.
pub fn sub_prologue(a: &mut Asm, f: FrameInfo) {
    push_frame(a);
    if f.sub_may_goto {
        init_may_goto(a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prologue_length_is_the_tail_call_offset() {
        let mut a = Asm::new();
        main_prologue(&mut a, MainFrame::FULL);
        assert_eq!(a.len(), TAIL_CALL_OFFSET);
    }

    #[test]
    fn lean_prologue_keeps_the_frame_and_drops_the_rest() {
        let lean = MainFrame {
            bottom_fp: false,
            tcc_ptr: false,
            may_goto: false,
            zero: 0,
        };
        let mut a = Asm::new();
        main_prologue(&mut a, lean);
        let mut f = Asm::new();
        f.nop5();
        push_frame(&mut f);
        assert_eq!(a.buf, f.buf);
    }
}
