//! `bpf_loop` inlined: every call becomes an instruction loop that calls the callback with a
//! BPF-to-BPF call (`optimize_bpf_loop` / `inline_bpf_loop` of `kernel/bpf/verifier.c`), so
//! the interpreter and the JIT run it with what they already have, and no helper ever calls
//! back into an engine.
//!
//! The kernel inlines only calls whose callback is the same on every path and whose flags are
//! the constant 0, and calls the helper otherwise. kbpf has no such helper, so it inlines
//! every call whose callback is fixed, in one of two forms:
//! - flags known zero: the kernel's inlined semantics — `nr_loops` compared as 64 bits
//!   against `BPF_MAX_LOOPS`, `-E2BIG` as a 32-bit value;
//! - otherwise the helper's: `flags != 0` → `-EINVAL`, `nr_loops` as a `u32`, `-E2BIG` as a
//!   64-bit value.
//!
//! Either way `i` counts from 0, the callback gets `(i, callback_ctx)`, a non-zero return
//! stops the loop, and R0 is the number of calls made. The loop keeps `i`, the bound and the
//! context in R6–R8 (saved by the callback call like any BPF-to-BPF call), spilling the
//! caller's R6–R8 to the three lowest slots of its 512-byte frame: the verifier's combined
//! stack check (the callback counts as a callee) leaves at least 32 bytes there unused, which
//! [`check_room`] confirms.

use super::LoopSite;
use crate::insn::{
    Insn, Size, alu64_imm, call_local, ja, jmp_imm, jmp_reg, jmp32_imm, ldx_mem, mov32_imm,
    mov32_reg, mov64_imm, mov64_reg, stx_mem,
};
use crate::patch::PatchList;
use crate::uapi::jmp;
use crate::uapi::limits::MAX_BPF_STACK;
use crate::{Errno, Result};

/// `BPF_MAX_LOOPS`.
pub const BPF_MAX_LOOPS: i32 = 1 << 23;
/// Stack bytes the loop spills R6–R8 to, at the bottom of the caller's frame.
pub const SPILL_BYTES: u32 = 24;
const FP: u8 = 10;

/// Whether the caller's frame (`depth` bytes verified) leaves room for the spills.
pub fn check_room(depth: u32) -> bool {
    depth + SPILL_BYTES <= MAX_BPF_STACK as u32
}

/// The replacement of one `bpf_loop` call; its callback call (index returned) still has to
/// be pointed at the callback.
fn body(flags_zero: bool) -> (alloc::vec::Vec<Insn>, usize) {
    let slot = |k: i16| -(MAX_BPF_STACK as i16) + 8 * k;
    let mut v = alloc::vec::Vec::new();
    // Argument checks; each failing check jumps to its error tail (patched below).
    let (einval, e2big);
    if flags_zero {
        einval = None;
        e2big = v.len();
        v.push(jmp_imm(jmp::JGT, 1, BPF_MAX_LOOPS, 0));
    } else {
        einval = Some(v.len());
        v.push(jmp_imm(jmp::JNE, 4, 0, 0));
        e2big = v.len();
        v.push(jmp32_imm(jmp::JGT, 1, BPF_MAX_LOOPS, 0));
    }
    v.extend([
        stx_mem(Size::DW, FP, 6, slot(0)),
        stx_mem(Size::DW, FP, 7, slot(1)),
        stx_mem(Size::DW, FP, 8, slot(2)),
        if flags_zero {
            mov64_reg(7, 1)
        } else {
            mov32_reg(7, 1)
        },
        mov32_imm(6, 0),
        mov64_reg(8, 3),
    ]);
    let head = v.len();
    // while i < n { r0 = cb(i, ctx); i += 1; if r0 != 0 break }
    v.push(jmp_reg(jmp::JGE, 6, 7, 5));
    v.push(mov64_reg(1, 6));
    v.push(mov64_reg(2, 8));
    let call = v.len();
    v.push(call_local(0));
    v.push(alu64_imm(crate::uapi::alu::ADD, 6, 1));
    let back = v.len();
    v.push(jmp_imm(
        jmp::JEQ,
        0,
        0,
        (head as i64 - back as i64 - 1) as i16,
    ));
    v.extend([
        mov64_reg(0, 6),
        ldx_mem(Size::DW, 6, FP, slot(0)),
        ldx_mem(Size::DW, 7, FP, slot(1)),
        ldx_mem(Size::DW, 8, FP, slot(2)),
    ]);
    // Error tails, each ending at the instruction after the buffer.
    let done = v.len();
    v.push(ja(0));
    let mut tails = alloc::vec::Vec::new();
    if let Some(at) = einval {
        tails.push((at, v.len()));
        v.push(mov64_imm(0, Errno::EINVAL.to_neg() as i32));
        v.push(ja(0));
    }
    tails.push((e2big, v.len()));
    v.push(if flags_zero {
        mov32_imm(0, Errno::E2BIG.to_neg() as i32)
    } else {
        mov64_imm(0, Errno::E2BIG.to_neg() as i32)
    });
    let end = v.len() as i64;
    // Point the checks at their tails and every `ja` at the end.
    for (at, tail) in tails {
        v[at].off = (tail as i64 - at as i64 - 1) as i16;
    }
    for (j, insn) in v.iter_mut().enumerate() {
        if insn.code == ja(0).code && j >= done {
            insn.off = (end - j as i64 - 1) as i16;
        }
    }
    (v, call)
}

/// Rewrites every reached `bpf_loop` call of the verified program (`sites` from the
/// verifier, indexed by original slot) on `list`. The load has checked that each callback is
/// fixed and each caller has room ([`check_room`]); a call whose site is
/// [`LoopSite::Varies`] is `ENOTSUPP`.
pub fn inline_loops<A: Default>(list: &mut PatchList<A>, sites: &[LoopSite]) -> Result<()> {
    for (i, site) in sites.iter().enumerate() {
        let (callback, flags_zero) = match *site {
            LoopSite::None => continue,
            LoopSite::Varies => return Err(Errno::ENOTSUPP),
            LoopSite::Fixed {
                callback,
                flags_zero,
            } => (callback, flags_zero),
        };
        let node = list.orig_node(i as u32).ok_or(Errno::EINVAL)?;
        if !list.is_live(node) {
            continue;
        }
        let target = list.orig_node(callback).ok_or(Errno::EINVAL)?;
        let (buf, call) = body(flags_zero);
        let span = list.replace(node, &buf)?;
        let mut id = span.first;
        for _ in 0..call {
            id = list.next(id).ok_or(Errno::EINVAL)?;
        }
        list.set_target(id, target)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_of_the_body_stays_inside_it() {
        for flags_zero in [false, true] {
            let (v, call) = body(flags_zero);
            assert_eq!(v[call], call_local(0));
            for (j, insn) in v.iter().enumerate() {
                let is_jump = insn.code & 0x07 == crate::uapi::class::JMP
                    || insn.code & 0x07 == crate::uapi::class::JMP32;
                if is_jump && j != call {
                    let t = j as i64 + 1 + insn.off as i64;
                    assert!((0..=v.len() as i64).contains(&t), "{j}: {insn:?}");
                }
            }
        }
    }
}
