//! Legacy packet loads, `BPF_LD | BPF_ABS` and `BPF_LD | BPF_IND` (sizes B, H, W): the verifier's
//! rules (`check_ld_abs` of `kernel/bpf/verifier.c`) and the load-time rewrite that makes them
//! ordinary instructions (`bpf_gen_ld_abs` of `net/core/filter.c`, called from
//! `do_misc_fixups`).
//!
//! `r0 = ntohX(*(uX *)(skb->data + imm))` (ABS) or `+ src + imm` (IND) reads the packet through
//! the context, which must be in R6. The verifier allows them only in the program types whose
//! context is an `sk_buff` (socket filters and TC: `may_access_skb`), not in subprograms
//! (BPF-to-BPF callees: "LD_ABS is not allowed in subprogs without BTF", checked with the
//! control flow, [`super::cfg`]), never while a reference is held (a failed load ends the
//! program), with R6 the unmodified context. Afterwards R1–R5 are dead and R0 is an unknown
//! scalar (the bytes in host byte order, zero-extended).
//!
//! At load each one becomes (the kernel's sequence):
//!
//! ```text
//! r2 = imm                       ABS;  IND: r2 = src; r2 += imm
//! r1 = r6
//! call skb_load_helper_N         1, 2 or 4 bytes; -EFAULT when out of the packet
//! if r0 s>= 0 goto +2
//! w0 ^= w0                       a failed load ends the program with R0 = 0
//! exit
//! ```
//!
//! so the interpreter and the JIT run it as they run any helper call ([`crate::helpers::skb_load`]).

use super::bounds::Scalar;
use super::explore::Explorer;
use super::log::Reject;
use super::state::{Reg, RegType, VState};
use crate::Errno;
use crate::Result;
use crate::helpers::skb_load::{load_helper_id, may_access_skb};
use crate::insn::{Insn, Op, Size, alu32_reg, alu64_imm, call_helper, decode, exit, jmp_imm};
use crate::insn::{mov64_imm, mov64_reg};
use crate::patch::PatchList;
use crate::uapi::{ProgType, alu, class, jmp, mode};
use alloc::vec::Vec;

/// Whether `insn` is a legacy packet load (its first and only slot).
pub fn is_ld_abs(insn: &Insn) -> bool {
    insn.class() == class::LD && matches!(insn.code & 0xe0, mode::ABS | mode::IND)
}

impl Explorer<'_> {
    /// `BPF_LD | BPF_ABS/IND` at `pc` (`check_ld_abs`); `src` is the index register of an IND.
    pub(super) fn check_ld_abs(
        &mut self,
        st: &mut VState,
        pc: usize,
        src: Option<u8>,
    ) -> core::result::Result<(), Reject> {
        if !may_access_skb(self.env.prog_type) {
            return Err(Reject::new(
                Errno::EINVAL,
                pc,
                "BPF_LD_[ABS|IND] instructions not allowed for this program type",
            ));
        }
        let ctx = self.read(st, pc, 6)?;
        // A failed load ends the program: no reference may be held then.
        self.check_reference_leak(st, pc, "BPF_LD_[ABS|IND]")?;
        if ctx.ty != RegType::PtrToCtx {
            return Err(Reject::new(
                Errno::EINVAL,
                pc,
                "at the time of BPF_LD_ABS|IND R6 != pointer to skb",
            ));
        }
        if let Some(r) = src {
            self.read(st, pc, r)?;
        }
        super::args::check_ctx_unmodified(pc, 6, &ctx)?;
        self.finish_call(st, Reg::scalar(Scalar::UNKNOWN));
        Ok(())
    }
}

/// The code one legacy packet load becomes (see the module docs).
pub fn gen_ld_abs(size: Size, indirect: bool, src: u8, imm: i32) -> Option<Vec<Insn>> {
    let id = load_helper_id(size.bytes())?;
    let mut out = Vec::with_capacity(7);
    if indirect {
        out.push(mov64_reg(2, src));
        if imm != 0 {
            out.push(alu64_imm(alu::ADD, 2, imm));
        }
    } else {
        out.push(mov64_imm(2, imm));
    }
    out.extend([
        mov64_reg(1, 6),
        call_helper(id),
        jmp_imm(jmp::JSGE, 0, 0, 2),
        alu32_reg(alu::XOR, 0, 0),
        exit(),
    ]);
    Some(out)
}

/// The rewrite pass: every legacy packet load of the list becomes [`gen_ld_abs`]'s code.
/// Returns how many were rewritten; `EINVAL` for a program type whose context is not an
/// `sk_buff` (the verifier refuses those first; this guards the trusted path).
pub fn rewrite_ld_abs<A: Default + Clone>(
    list: &mut PatchList<A>,
    prog_type: ProgType,
) -> Result<usize> {
    let mut n = 0;
    let mut cur = list.cursor();
    while let Some(node) = cur.next(list) {
        let Some(insn) = list.insn(node) else {
            continue;
        };
        if !is_ld_abs(&insn) {
            continue;
        }
        if !may_access_skb(prog_type) {
            return Err(Errno::EINVAL);
        }
        let Ok(Op::LdPacket {
            size,
            indirect,
            src,
            imm,
        }) = decode(&[insn], 0)
        else {
            return Err(Errno::EINVAL);
        };
        let code = gen_ld_abs(size, indirect, src, imm).ok_or(Errno::EINVAL)?;
        list.replace(node, &code)?;
        n += 1;
    }
    Ok(n)
}

/// Whether any instruction of `insns` is a legacy packet load.
pub fn has_ld_abs(insns: &[Insn]) -> bool {
    insns.iter().any(is_ld_abs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helpers::skb_load::id;
    use crate::insn::assemble;

    #[test]
    fn abs_and_ind_become_a_helper_call_and_an_early_exit() {
        let abs = gen_ld_abs(Size::H, false, 0, 12).unwrap();
        assert_eq!(
            abs,
            [
                mov64_imm(2, 12),
                mov64_reg(1, 6),
                call_helper(id::LOAD_16),
                jmp_imm(jmp::JSGE, 0, 0, 2),
                alu32_reg(alu::XOR, 0, 0),
                exit(),
            ]
        );
        let ind = gen_ld_abs(Size::W, true, 3, 2).unwrap();
        assert_eq!(ind[..2], [mov64_reg(2, 3), alu64_imm(alu::ADD, 2, 2)]);
        assert_eq!(ind[3], call_helper(id::LOAD_32));
        // No index offset: no add.
        let ind0 = gen_ld_abs(Size::B, true, 7, 0).unwrap();
        assert_eq!(ind0[..2], [mov64_reg(2, 7), mov64_reg(1, 6)]);
        assert_eq!(gen_ld_abs(Size::DW, false, 0, 0), None);
    }

    #[test]
    fn the_pass_rewrites_every_load_and_keeps_jumps_over_them() {
        let p = assemble("mov %r6, %r1\njeq %r6, 0, +1\nldabsb 3\nldindh %r2, 1\nexit").unwrap();
        let mut list: PatchList<()> = PatchList::new(&p).unwrap();
        assert_eq!(rewrite_ld_abs(&mut list, ProgType::SocketFilter), Ok(2));
        let out = list.linearize(&mut Vec::new(), None).unwrap();
        // 2 + 6 + 7 + exit; the jump still lands on the last instruction before the exit's
        // original neighbour: the first instruction of the second load's code.
        assert_eq!(out.len(), 2 + 6 + 7 + 1);
        assert_eq!(out[1], jmp_imm(jmp::JEQ, 6, 0, 6));
        assert!(!has_ld_abs(&out));
        let mut xdp: PatchList<()> = PatchList::new(&p).unwrap();
        assert_eq!(rewrite_ld_abs(&mut xdp, ProgType::Xdp), Err(Errno::EINVAL));
    }
}
