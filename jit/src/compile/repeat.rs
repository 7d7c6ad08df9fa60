//! The repeat runner: `BPF_PROG_TEST_RUN`'s inner loop (`bpf_test_run()` in
//! `net/bpf/test_run.c`) compiled into the tail of every program image, so that each run of
//! the program is a direct `call rel32` instead of an indirect call from the host's text.
//!
//! The kernel makes the same trade for XDP: `bpf_prog_run_xdp()` goes through
//! `bpf_dispatcher_xdp_func`, whose JIT'd image turns the indirect call of the attached program
//! into a direct one (`kernel/bpf/dispatcher.c`). Measured on this project's AMD Zen 4 VM, a
//! loop of indirect calls of `mov eax, 7; ret` costs ~8 cycles per call, the same loop with a
//! direct call ~5: the runner is what brings a test run's invocation from ~2.2 to ~1.4 ns.
//!
//! Entered once per batch with `kbpf::jit::enter_runner(runner, r1, r2, tcc, n)` (rdi, rsi,
//! rdx, rcx; `n >= 1`), it keeps the arguments in its own frame, because programs clobber every
//! register but rbp and rsp, and counts the runs in ebp:
//!
//! ```text
//!       push rbp; sub rsp, 32                       ; rsp 16-byte aligned at each call
//!       mov [rsp], rdi; mov [rsp+8], rsi; mov [rsp+16], rdx
//!       mov ebp, ecx
//!       (nops to a 64-byte boundary from the image start)
//! loop: mov rdx, [rsp+16]; mov dword [rdx], 0       ; each run a fresh tail-call budget
//!       mov rdi, [rsp]; mov rsi, [rsp+8]
//!       call entry                                  ; rel32 back to the image's first byte
//!       sub ebp, 1; jnz loop
//!       add rsp, 32; pop rbp; ret                   ; rax: the last run's R0
//! ```
//!
//! The runner is part of the image but not of the program: `JitImage::size`, `code` and
//! `insn_offsets` describe the program alone (what `bpf_prog_info` reports).

use crate::x86::{AluKind, Asm, Cc, Mem, Reg, Rm, Width};
use alloc::vec::Vec;
use kbpf::Errno;

/// Where the runner starts: the program's code is padded with `int3` to this boundary.
const ALIGN: usize = 16;

/// Alignment of the loop's top, from the image's first byte.
const LOOP_ALIGN: usize = 64;

/// Bytes of the runner's frame below the saved rbp: r1, r2, tcc and padding.
const FRAME: i32 = 32;

/// Appends the runner to `code`, a program image whose first byte is its entry, and returns
/// the runner's offset. `EFAULT` when the image is too large for a `rel32` back to its start
/// (no image is).
/// Where an image's repeat runner is (see [`super::Emitted::runner`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runner {
    /// Bytes of the program's own code, before the padding and the runner.
    pub prog_len: u32,
    /// Offset of the runner's first instruction.
    pub entry: u32,
}

/// Appends the runner to `e`'s code and records where it is.
pub(super) fn attach(e: &mut super::Emitted) -> Result<(), Errno> {
    let prog_len = u32::try_from(e.code.len()).map_err(|_| Errno::EFAULT)?;
    let entry = append(&mut e.code)?;
    e.runner = Some(Runner { prog_len, entry });
    Ok(())
}

pub(super) fn append(code: &mut Vec<u8>) -> Result<u32, Errno> {
    let start = code.len().next_multiple_of(ALIGN);
    code.try_reserve(start - code.len() + 64)?;
    code.resize(start, 0xcc);
    let mut a = Asm::new();
    a.push(Reg::Rbp);
    a.alu_ri(AluKind::Sub, Width::Q, Rm::Reg(Reg::Rsp), FRAME);
    a.store(Width::Q, Mem::base(Reg::Rsp, 0), Reg::Rdi);
    a.store(Width::Q, Mem::base(Reg::Rsp, 8), Reg::Rsi);
    a.store(Width::Q, Mem::base(Reg::Rsp, 16), Reg::Rdx);
    a.mov_rr(Width::W, Reg::Rbp, Reg::Rcx);
    // The loop's top on a cache line of its own (images start on one): the ~30-byte body
    // then fits one 64-byte fetch window.
    let pad = (start + a.len()).next_multiple_of(LOOP_ALIGN) - (start + a.len());
    a.nops(pad);
    let top = a.len();
    a.load_zx(Width::Q, Reg::Rdx, Rm::Mem(Mem::base(Reg::Rsp, 16)));
    a.store_imm(Width::W, Rm::Mem(Mem::base(Reg::Rdx, 0)), 0);
    a.load_zx(Width::Q, Reg::Rdi, Rm::Mem(Mem::base(Reg::Rsp, 0)));
    a.load_zx(Width::Q, Reg::Rsi, Rm::Mem(Mem::base(Reg::Rsp, 8)));
    let after_call = start + a.len() + 5;
    let rel = i32::try_from(after_call).map_err(|_| Errno::EFAULT)?;
    a.call_rel32(-rel);
    a.alu_ri(AluKind::Sub, Width::W, Rm::Reg(Reg::Rbp), 1);
    let back = top as isize - (a.len() + 2) as isize;
    a.jcc_rel8(Cc::Ne, i8::try_from(back).map_err(|_| Errno::EFAULT)?);
    a.alu_ri(AluKind::Add, Width::Q, Rm::Reg(Reg::Rsp), FRAME);
    a.pop(Reg::Rbp);
    a.ret();
    code.extend_from_slice(&a.buf);
    u32::try_from(start).map_err(|_| Errno::EFAULT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runner_calls_the_entry_and_loops_on_ebp() {
        // `mov eax, 7; ret` as the program.
        let mut code = alloc::vec![0xb8, 7, 0, 0, 0, 0xc3];
        let at = append(&mut code).unwrap() as usize;
        assert_eq!(at, 16);
        assert!(code[6..16].iter().all(|&b| b == 0xcc));
        let r = &code[at..];
        // push rbp; sub rsp, 32; mov [rsp], rdi; mov [rsp+8], rsi; mov [rsp+16], rdx; mov ebp, ecx
        assert_eq!(
            &r[..21],
            &[
                0x55, 0x48, 0x83, 0xec, 0x20, 0x48, 0x89, 0x3c, 0x24, 0x48, 0x89, 0x74, 0x24, 0x08,
                0x48, 0x89, 0x54, 0x24, 0x10, 0x89, 0xcd
            ]
        );
        // The call lands on the image's first byte.
        let call = r.iter().position(|&b| b == 0xe8).unwrap();
        let rel = i32::from_le_bytes(r[call + 1..call + 5].try_into().unwrap());
        assert_eq!((at + call + 5) as i64 + i64::from(rel), 0);
        // sub ebp, 1; jnz back to the loop top, on a cache line of its own.
        let tail = &r[call + 5..];
        assert_eq!(&tail[..3], &[0x83, 0xed, 0x01]);
        assert_eq!(tail[3], 0x75);
        let top = (call + 5 + 5) as i64 + i64::from(tail[4] as i8);
        assert_eq!((at as i64 + top) % LOOP_ALIGN as i64, 0);
        // add rsp, 32; pop rbp; ret
        assert_eq!(&tail[5..], &[0x48, 0x83, 0xc4, 0x20, 0x5d, 0xc3]);
    }
}
