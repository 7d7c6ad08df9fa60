//! The BPF → x86-64 register map (Linux `reg2hex[]` in `arch/x86/net/bpf_jit_comp.c`).
//!
//! | BPF | x86-64 | why |
//! |---|---|---|
//! | R0 | rax | return value of helpers and of the program |
//! | R1–R5 | rdi, rsi, rdx, rcx, r8 | the SysV argument registers, in order: a helper call needs no argument shuffling |
//! | R6–R9 | rbx, r13, r14, r15 | callee-saved in SysV, so they survive helper calls as BPF requires |
//! | R10 | rbp | the read-only frame pointer: each frame's `push rbp; mov rbp, rsp` sets it |
//! | AX (scratch) | r10 | second JIT temporary (atomics keep R0 here while `cmpxchg` needs rax) |
//! | AUX | r11 | first JIT temporary (divisors, shift-count saves, `cmpxchg` loop values) |
//! | — | r12 | the run's bottom frame (its rbp): the tail-call counter pointer's slot and the unwind target, in every frame |
//! | — | r9 | sixth SysV argument: the helper id of a `callx` |
//!
//! r12 is kept off the BPF registers because as a base it always needs a SIB byte.
//!
//! Two x86 instructions use fixed registers that are also BPF registers:
//! - **Shifts by a register** take their count in `cl`, which is BPF R4. When the count register
//!   is not R4 itself, R4 is parked in r11, the count moved into rcx, and R4 restored after the
//!   shift; when the shifted register *is* R4, the shift is done on the r11 copy instead.
//! - **Division** takes its dividend in rdx:rax (R3:R0) and leaves quotient/remainder there. The
//!   divisor goes to r11 first; rax and rdx are pushed (unless one of them is the destination),
//!   the division runs, the result is parked in r11, rax/rdx are popped and the destination set.

use crate::x86::Reg;

/// x86-64 register holding BPF register `r` (0..=10).
pub const fn bpf_reg(r: u8) -> Reg {
    match r {
        0 => Reg::Rax,
        1 => Reg::Rdi,
        2 => Reg::Rsi,
        3 => Reg::Rdx,
        4 => Reg::Rcx,
        5 => Reg::R8,
        6 => Reg::Rbx,
        7 => Reg::R13,
        8 => Reg::R14,
        9 => Reg::R15,
        _ => Reg::Rbp,
    }
}

/// The hidden scratch register `BPF_REG_AX`.
pub const AX: Reg = Reg::R10;
/// The JIT-internal temporary (`AUX_REG`).
pub const AUX: Reg = Reg::R11;
/// Holds the run's bottom frame (the entry program's rbp) in every frame of the run.
pub const MAIN_FP: Reg = Reg::R12;
