//! Stack frames: prologues and epilogues of the main program and of BPF-to-BPF subprograms, and
//! the register saves around a subprogram call (Linux `emit_prologue()`, `push_callee_regs()`,
//! `pop_callee_regs()` and the `BPF_EXIT` epilogue in `arch/x86/net/bpf_jit_comp.c`).
//!
//! ## The calling convention of JIT'd code
//!
//! JIT'd code is entered only through [`kbpf::jit::enter`], which treats rbx and r12–r15 as
//! clobbered: the Rust caller saves what it keeps there, once per loop of runs rather than
//! once per run, and a program's own frame saves no host register at all. rbp is the only
//! callee-saved register the code preserves (every frame is `push rbp; mov rbp, rsp … leave`).
//! BPF's own rule — R6–R9 survive a BPF-to-BPF call — is kept by the *caller* of a subprogram,
//! which pushes the R6–R9 registers the program uses around the `call` ([`CallSaves`]).
//!
//! Every frame that has locals has one layout below its rbp:
//!
//! ```text
//! [rbp-512, rbp)  the BPF stack (R10 = rbp)
//! [rbp-520]       the frame's may_goto budget
//! [rbp-528]       main frame of the run: the tail-call counter pointer (tcc_ptr)
//! ```
//!
//! `sub rsp, 528` keeps rsp 16-byte aligned in the body, so helpers are called directly.
//!
//! Main prologue, from the entry (`enter(entry, r1, r2, tcc_ptr)`: rdx holds `tcc_ptr`):
//!
//! ```text
//! nop5                               ; patch site (trampolines), as in Linux
//! push rbp; mov rbp, rsp
//! sub rsp, 528                       ; locals
//! mov r12, rbp                       ; the run's bottom frame: tcc_ptr and unwind target
//! mov [rbp-528], rdx                 ; tcc_ptr
//! mov qword [rbp-520], BPF_MAX_LOOPS ; may_goto budget
//! xor R0, R3–R9                      ; start at 0 like the interpreter's registers
//! ← the tail-call entry: a tail call jumps here
//! ```
//!
//! Each part is emitted only where the program can observe it ([`MainFrame`]). A program that
//! makes no tail call runs alone in its bottom frame, so it needs a frame at all only if it
//! names R10, calls anything or uses `may_goto`; `r12` only to unwind; the counter pointer
//! never; the may_goto budget only for its own `may_goto`; and a zeroed register only where
//! some instruction mentions it. A program that makes tail calls gets every part, because the
//! programs it reaches run in its frame and may rely on any of them. No register is zeroed for
//! a program the verifier accepted (it reads none before writing it, nor do the verified
//! programs it tail-calls: a prog_array never mixes verified and trusted programs); the
//! zeroing keeps trusted-path programs deterministic, as the interpreter's registers are. The tail-call entry is
//! therefore per image: the offset of instruction 0's code (at most [`TAIL_CALL_OFFSET`]) — or,
//! for a program without a frame, [`frameless_tail_entry`], which first leaves the caller's
//! frame. A frameless program's exit is a plain `ret`.
//!
//! Because no frame saves registers of its own, the epilogue of every frame is the same
//! `leave; ret`, whoever built the frame. So a tail call does not rebuild the frame as Linux
//! does (pop the callee-saved registers, release the stack, let the target push its own): it
//! jumps past the target's prologue with rsp, rbp, the BPF stack, the may_goto budget and all
//! BPF registers untouched — exactly the interpreter's tail call, which swaps the program and
//! keeps registers and stack. A tail call made in a subprogram frame leaves that frame in place,
//! and the target's `exit` returns to the subprogram's caller, which restores its R6–R9 itself.
//! r12 holds the run's bottom frame in every frame (nothing but the main prologue writes it),
//! so the counter is `[r12-528]` everywhere, shared by every frame and every tail-called
//! program.
//!
//! Subprogram prologue: `push rbp; mov rbp, rsp; sub rsp, 528` and the may_goto budget (each
//! BPF frame has its own, as in the interpreter).
//!
//! The main epilogue is followed by the unwind entry, `mov rsp, r12; pop rbp; ret`, so an
//! `unwind_on_zero` helper or a failed `callx` at any depth — including inside a program
//! tail-called from a subprogram — ends the whole run with R0 = 0, as the interpreter does.

use super::regmap::{MAIN_FP, bpf_reg};
use crate::x86::{AluKind, Asm, Mem, Reg, Rm, Width};

/// Bytes of the full main prologue a tail call skips: the whole prologue (the offset of the
/// first body instruction) when every part is emitted. Linux's `X86_TAIL_CALL_OFFSET` skips
/// less because its tail calls rebuild the frame; see the module docs.
pub const TAIL_CALL_OFFSET: usize = 57;
/// The BPF stack per frame (`MAX_BPF_STACK`).
pub const STACK: i32 = 512;
/// rbp-relative offset of a frame's may_goto budget.
pub const MAY_GOTO_SLOT: i32 = -(STACK + 8);
/// rbp-relative offset of the run's tail-call counter pointer in the bottom frame (`[r12-528]`).
pub const TAIL_CALL_CNT_SLOT: i32 = -(STACK + 16);
/// `sub rsp` of a frame with locals (stack, may_goto budget, tcc_ptr); a multiple of 16.
const LOCALS: i32 = STACK + 16;
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
    /// `push rbp; mov rbp, rsp; sub rsp, 528`: a frame with the BPF stack, the slots, and an
    /// aligned rsp for calls. Without it the program's exit is `ret` and a tail call into it
    /// enters through [`frameless_tail_entry`].
    pub frame: bool,
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
        frame: true,
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
    if m.frame {
        push_frame(a);
    }
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

/// The unwind entry: back to the run's bottom frame and out of it (R0 is already 0).
pub fn unwind(a: &mut Asm) {
    a.mov_rr(Width::Q, Reg::Rsp, MAIN_FP);
    a.pop(Reg::Rbp);
    a.ret();
}

/// The epilogue of every frame, whoever built it.
pub fn epilogue(a: &mut Asm) {
    a.leave();
    a.ret();
}

/// The tail-call entry of a program without a frame: a tail call arrives in its caller's frame,
/// which the program's `ret` would not release, so it leaves the frame first (rsp back at the
/// return address, rbp the caller's) and then jumps to instruction 0's code at `body` — an
/// offset before this code, from the same pass.
pub fn frameless_tail_entry(a: &mut Asm, body: usize) {
    a.leave();
    let back = body as i64 - (a.len() + 2) as i64;
    match i8::try_from(back) {
        Ok(d) => a.jmp_rel8(d),
        Err(_) => a.jmp_rel32((body as i64 - (a.len() + 5) as i64) as i32),
    }
}

/// A subprogram's prologue.
pub fn sub_prologue(a: &mut Asm, f: FrameInfo) {
    push_frame(a);
    if f.sub_may_goto {
        init_may_goto(a);
    }
}

/// The registers a BPF-to-BPF call site saves around the `call` (R6–R9 are callee-saved in
/// BPF, but JIT'd frames save nothing; see the module docs): the R6–R9 the program names, all
/// four if it makes tail calls (a body tail-called from the subprogram may write any of them),
/// rounded up to an even count so rsp stays 16-byte aligned at the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallSaves {
    regs: [Reg; 4],
    len: usize,
}

impl CallSaves {
    /// The saves for a program naming the BPF registers in `named` (bit `n`: R`n`).
    pub fn new(named: u16, tail_calls: bool) -> CallSaves {
        let mut s = CallSaves {
            regs: [Reg::Rbx; 4],
            len: 0,
        };
        for r in 6..10u8 {
            if tail_calls || named >> r & 1 != 0 {
                s.regs[s.len] = bpf_reg(r);
                s.len += 1;
            }
        }
        if s.len % 2 == 1 {
            // Any register will do as the pad; take one not already saved.
            let pad = (6..10u8)
                .map(bpf_reg)
                .find(|r| !s.regs[..s.len].contains(r))
                .unwrap_or(Reg::Rbx);
            s.regs[s.len] = pad;
            s.len += 1;
        }
        s
    }

    /// Pushes the saved registers (before the `call`).
    pub fn push(&self, a: &mut Asm) {
        for r in &self.regs[..self.len] {
            a.push(*r);
        }
    }

    /// Pops them (after the `call`).
    pub fn pop(&self, a: &mut Asm) {
        for r in self.regs[..self.len].iter().rev() {
            a.pop(*r);
        }
    }

    /// Bytes [`CallSaves::pop`] emits.
    pub fn pop_len(&self) -> usize {
        self.regs[..self.len]
            .iter()
            .map(|r| 1 + r.is_ext() as usize)
            .sum()
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
    fn lean_prologue_is_the_patch_site_alone() {
        let lean = MainFrame {
            frame: false,
            bottom_fp: false,
            tcc_ptr: false,
            may_goto: false,
            zero: 0,
        };
        let mut a = Asm::new();
        main_prologue(&mut a, lean);
        let mut f = Asm::new();
        f.nop5();
        assert_eq!(a.buf, f.buf);
    }

    #[test]
    fn frameless_tail_entry_leaves_then_jumps_back() {
        let mut a = Asm::new();
        a.bytes(&[0x90; 7]);
        frameless_tail_entry(&mut a, 5);
        assert_eq!(&a.buf[7..], &[0xc9, 0xeb, (5i8 - 10) as u8]);
        let mut a = Asm::new();
        a.bytes(&[0x90; 300]);
        frameless_tail_entry(&mut a, 5);
        let rel = (5i32 - 306).to_le_bytes();
        assert_eq!(&a.buf[300..], &[0xc9, 0xe9, rel[0], rel[1], rel[2], rel[3]]);
    }

    #[test]
    fn call_saves_are_even_and_pop_what_they_push() {
        for named in [0u16, 1 << 6, 1 << 7 | 1 << 9, 0b1111 << 6] {
            for tail in [false, true] {
                let s = CallSaves::new(named, tail);
                assert_eq!(s.len % 2, 0);
                assert!(!tail || s.len == 4);
                let mut a = Asm::new();
                s.pop(&mut a);
                assert_eq!(a.len(), s.pop_len());
            }
        }
        assert_eq!(CallSaves::new(0, false).len, 0);
        assert_eq!(
            CallSaves::new(1 << 7, false).regs[..2],
            [Reg::R13, Reg::Rbx]
        );
    }
}
