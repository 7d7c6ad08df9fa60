//! The mprog dispatcher: one image that runs a bundle entry's JIT'd programs in order
//! (`kbpf::jit::JitCompiler::compile_dispatch`; the idea of Linux's `bpf_dispatcher_update()` in
//! `kernel/bpf/dispatcher.c` and `arch_prepare_bpf_dispatcher()` in
//! `arch/x86/net/bpf_jit_comp.c`, which replace XDP's indirect call of the one attached program
//! with a direct one, applied to tcx's whole chain).
//!
//! Entered like a program (`kbpf::jit::enter(func, r1, r2, tcc)`: rdi, rsi, rdx), it keeps the
//! three arguments in its own frame, because programs clobber every register but rbp and rsp:
//!
//! ```text
//!       push rbp; mov rbp, rsp
//!       push rdi; push rsi; push rdx; sub rsp, 8    ; r1, r2, tcc; rsp 16-byte aligned
//!       call prog_0                                 ; the run reset the counter already
//!       cmp eax, NEXT; jne out
//!       mov rdx, [rbp-24]; mov dword [rdx], 0       ; program k: a fresh tail-call budget,
//!       mov rdi, [rbp-8]; mov rsi, [rbp-16]         ; as its own run would give it
//!       call prog_k
//!       cmp eax, NEXT; jne out                      ; (not after the last)
//!       …
//! out:  leave; ret                                  ; rax: R0 of the program that stopped
//! ```
//!
//! Each call is `call rel32` when the host placed the dispatcher within reach of every program
//! (it asks to be near the first), else `movabs rax, prog; call rax`. A program returns with rbp
//! and rsp as they were (every JIT'd frame ends in `leave; ret`, and the unwind entry restores
//! its own bottom frame), so the frame survives each call.

use super::Emitted;
use super::call::rel32_reaches;
use super::image::JitImage;
use crate::x86::{AluKind, Asm, Cc, Mem, Reg, Rm, Width};
use alloc::vec::Vec;
use kbpf::Errno;

/// How the dispatcher reaches the programs.
#[derive(Clone, Copy)]
enum Calls {
    /// `call rel32` from an image whose first byte is at `base`.
    Near { base: usize },
    /// `movabs rax, prog; call rax`.
    Far,
}

fn emit(progs: &[usize], next: i32, calls: Calls) -> Vec<u8> {
    let mut a = Asm::new();
    a.push(Reg::Rbp);
    a.mov_rr(Width::Q, Reg::Rbp, Reg::Rsp);
    a.push(Reg::Rdi);
    a.push(Reg::Rsi);
    a.push(Reg::Rdx);
    a.alu_ri(AluKind::Sub, Width::Q, Rm::Reg(Reg::Rsp), 8);
    let mut to_out = Vec::new();
    for (k, &p) in progs.iter().enumerate() {
        if k > 0 {
            a.load_zx(Width::Q, Reg::Rdx, Rm::Mem(Mem::base(Reg::Rbp, -24)));
            a.store_imm(Width::W, Rm::Mem(Mem::base(Reg::Rdx, 0)), 0);
            a.load_zx(Width::Q, Reg::Rdi, Rm::Mem(Mem::base(Reg::Rbp, -8)));
            a.load_zx(Width::Q, Reg::Rsi, Rm::Mem(Mem::base(Reg::Rbp, -16)));
        }
        match calls {
            Calls::Near { base } => {
                let end = base.wrapping_add(a.len() + 5);
                a.call_rel32(p.wrapping_sub(end) as i32);
            }
            Calls::Far => {
                a.movabs(Reg::Rax, p as u64);
                a.call_r(Reg::Rax);
            }
        }
        if k + 1 < progs.len() {
            a.alu_ri(AluKind::Cmp, Width::W, Rm::Reg(Reg::Rax), next);
            a.jcc_rel32(Cc::Ne, 0);
            to_out.push(a.len());
        }
    }
    let out = a.len();
    a.leave();
    a.ret();
    for end in to_out {
        let rel = (out - end) as i32;
        a.buf[end - 4..end].copy_from_slice(&rel.to_le_bytes());
    }
    a.buf
}

fn emitted(code: Vec<u8>) -> Emitted {
    Emitted {
        code,
        offsets: Vec::new(),
        pokes: Vec::new(),
        tail_entry: 0,
        runner: None,
    }
}

/// Compiles and installs the dispatcher of the programs whose JIT entries are `progs`, under
/// tcx's rule that a program returning `next` (in R0's low 32 bits) hands on to the next one.
/// `EINVAL` for an empty chain.
pub fn compile_dispatch(progs: &[usize], next: i32) -> Result<JitImage, Errno> {
    let &first = progs.first().ok_or(Errno::EINVAL)?;
    // Near calls have the same size wherever the image lands.
    let len = emit(progs, next, Calls::Near { base: 0 }).len();
    let placed = JitImage::install_at(len, first, |base| {
        if !progs.iter().all(|&p| rel32_reaches(base, len, p)) {
            return Err(Errno::ERANGE);
        }
        Ok(emitted(emit(progs, next, Calls::Near { base })))
    });
    match placed {
        Err(Errno::ERANGE) => JitImage::install(emitted(emit(progs, next, Calls::Far))),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_keeps_the_arguments_and_the_calls_follow_in_order() {
        let code = emit(&[0x1000, 0x2000], -1, Calls::Far);
        // push rbp; mov rbp, rsp; push rdi; push rsi; push rdx; sub rsp, 8
        assert_eq!(
            &code[..12],
            &[
                0x55, 0x48, 0x89, 0xe5, 0x57, 0x56, 0x52, 0x48, 0x83, 0xec, 0x08, 0x48
            ]
        );
        // movabs rax, 0x1000; call rax
        assert_eq!(&code[11..13], &[0x48, 0xb8]);
        assert_eq!(u64::from_le_bytes(code[13..21].try_into().unwrap()), 0x1000);
        assert_eq!(&code[21..23], &[0xff, 0xd0]);
        // cmp eax, -1; jne out (rel32)
        assert_eq!(&code[23..28], &[0x83, 0xf8, 0xff, 0x0f, 0x85]);
        let rel = i32::from_le_bytes(code[28..32].try_into().unwrap()) as usize;
        assert_eq!(&code[32 + rel..], &[0xc9, 0xc3]);
        // The second program: counter reset and arguments reloaded before its call.
        assert_eq!(&code[32..36], &[0x48, 0x8b, 0x55, 0xe8]);
        assert_eq!(&code[36..42], &[0xc7, 0x02, 0x00, 0x00, 0x00, 0x00]);
    }

    #[test]
    fn near_calls_land_on_the_programs() {
        let base = 0x7000_0000usize;
        let progs = [base - 0x1234, base + 0x10_0000];
        let code = emit(&progs, -1, Calls::Near { base });
        let calls: Vec<usize> = (0..code.len())
            .filter(|&i| code[i] == 0xe8 && i + 5 <= code.len())
            .map(|i| {
                let rel = i32::from_le_bytes(code[i + 1..i + 5].try_into().unwrap());
                (base + i + 5).wrapping_add_signed(rel as isize)
            })
            .filter(|t| progs.contains(t))
            .collect();
        assert_eq!(calls, progs);
    }
}
