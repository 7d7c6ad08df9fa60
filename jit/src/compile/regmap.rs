//! The BPF → x86-64 register map (Linux `reg2hex[]` in `arch/x86/net/bpf_jit_comp.c`).
//!
//! | BPF | x86-64 | why |
//! |---|---|---|
//! | R0 | rax | return value of helpers and of the program |
//! | R1–R5 | rdi, rsi, rdx, rcx, r8 | the SysV argument registers, in order: a helper call needs no argument shuffling |
//! | R6–R9 | rbx, r13, r14, r15 | callee-saved in SysV, so they survive helper calls as BPF requires |
//! | R10 | rbp | the read-only frame pointer: each frame's `push rbp; mov rbp, rsp` sets it |
//! | AX (R11, hidden) | r10 | constant blinding's register; between blinded sequences a JIT temporary (see below) |
//! | AUX | r11 | first JIT temporary (divisors, shift-count saves, `cmpxchg` loop values, may_goto) |
//! | — | r12 | the run's bottom frame (its rbp): the tail-call counter pointer's slot and the unwind target, in every frame |
//! | — | r9 | sixth SysV argument: the helper id of a `callx` |
//!
//! r12 is kept off the BPF registers because as a base it always needs a SIB byte.
//!
//! ## AX (`BPF_REG_AX`) and the JIT's own uses of r10
//!
//! As in Linux, BPF's hidden register AX is r10 and the JIT's private temporary (`AUX_REG`) is
//! r11. Constant blinding ([`kbpf::blind`]) only ever emits `AX = a; AX ^= b; <use AX>` (for an
//! `ld_imm64`: two such groups around `AX <<= 32; dst = AX` and `dst |= AX`), so AX is live
//! only from its definition to the very next use, never across a call, a tail call, a jump or
//! an atomic. The JIT's other uses of r10 are all inside single instructions that are never
//! part of such a sequence:
//! - the indirect and direct tail calls (`tailcall.rs`, `tailcall_direct.rs`) load the counter
//!   pointer into r10 — AX is dead at a tail call;
//! - the fetching or/and/xor atomics park R0 in r10 — blinding emits no atomic, and
//!   [`super::emit`] refuses an atomic that names AX;
//! - nothing else writes r10: helper calls and `callx` use rax and r9 and treat r10/r11 as
//!   caller-saved (AX is dead there anyway), prologues and epilogues never touch it.
//!
//! The instructions that *use* AX read it before clobbering anything it could be: division
//! copies the divisor (AX) into r11 first and then only touches rax, rdx and r11; a shift by AX
//! parks rcx in r11 and moves AX into rcx; jumps, stores and plain ALU forms read it directly.
//!
//! Two x86 instructions use fixed registers that are also BPF registers:
//! - **Shifts by a register** take their count in `cl`, which is BPF R4. When the count register
//!   is not R4 itself, R4 is parked in r11, the count moved into rcx, and R4 restored after the
//!   shift; when the shifted register *is* R4, the shift is done on the r11 copy instead.
//! - **Division** takes its dividend in rdx:rax (R3:R0) and leaves quotient/remainder there. The
//!   divisor goes to r11 first; rax and rdx are pushed (unless one of them is the destination),
//!   the division runs, the result is parked in r11, rax/rdx are popped and the destination set.

use crate::x86::Reg;

/// x86-64 register holding BPF register `r` (0..=10, and 11 = [`BPF_REG_AX`] → [`AX`]).
///
/// [`BPF_REG_AX`]: kbpf::insn::BPF_REG_AX
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
        10 => Reg::Rbp,
        _ => AX,
    }
}

/// The hidden scratch register `BPF_REG_AX`.
pub const AX: Reg = Reg::R10;
/// The JIT-internal temporary (`AUX_REG`).
pub const AUX: Reg = Reg::R11;
/// Holds the run's bottom frame (the entry program's rbp) in every frame of the run.
pub const MAIN_FP: Reg = Reg::R12;
