//! The default mode's Spectre v1 rules for pointer arithmetic: what a loader without
//! `CAP_PERFMON` may not compute even before any access (`sanitize_ptr_alu`,
//! `retrieve_ptr_limit`, `update_alu_sanitation_state`, `sanitize_check_bounds`,
//! `check_stack_access_for_ptr_arithmetic` and `sanitize_err` of `kernel/bpf/verifier.c`).
//!
//! The kernel masks a pointer's offset at run time so that a mispredicted branch cannot
//! carry it out of its object; for that it needs, at every `ptr += reg` / `ptr -= reg`:
//! a stack or map-value pointer (other types: "R1 has pointer with unsupported alu operation,
//! pointer arithmetic with it prohibited for !root"), an offset whose sign is known ("unknown
//! scalar with mixed signed bounds"), a result that stays inside the object ("tried to add
//! beyond pointer bounds"), and the same mask on every path through the instruction ("tried to
//! add from different maps, paths or scalars"). After any `+=`/`-=`, a stack pointer must be a
//! constant offset inside the frame and a map-value pointer must point inside the value.
//! Arithmetic with an immediate needs no mask. Root's rules (`bypass_spec_v1`) skip all of it.
//!
//! Not done: the speculative paths the kernel also explores from these points
//! (`sanitize_speculative_path`) — kbpf does not model speculative execution.

use super::explore::Explorer;
use super::log::Reject;
use super::mem::{Access, Kind, map_value_region};
use super::regs::PtrOp;
use super::state::{Reg, RegType};
use super::tnum::tnum_str;
use crate::insn::{AluOp, Operand};
use crate::uapi::limits::MAX_BPF_STACK;

/// What the first half of the rule found (`struct bpf_sanitize_info`).
#[derive(Clone, Copy, Debug)]
pub(super) struct SanInfo {
    /// The mask limits the offset towards lower addresses.
    mask_to_left: bool,
    /// `BPF_ALU_*` flags of the operation.
    state: u32,
    /// The limit before the operation.
    limit: u32,
}

/// Why an operation cannot be masked (`enum { REASON_BOUNDS, ... }`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Bounds,
    Type,
    Paths,
    Limit,
}

const ALU_SANITIZE_SRC: u32 = 1 << 0;
const ALU_SANITIZE_DST: u32 = 1 << 1;
const ALU_NEG_VALUE: u32 = 1 << 2;
const ALU_IMMEDIATE: u32 = 1 << 4;

const PROHIBITED: &str = "pointer arithmetic with it prohibited for !root";

impl Explorer<'_> {
    /// The first half, before the operation (`sanitize_ptr_alu` with `commit_window` false):
    /// `None` when the operation needs no mask.
    pub(super) fn sanitize_ptr_alu(&mut self, p: &PtrOp) -> Result<Option<SanInfo>, Reject> {
        if self.env.privileged || matches!(p.src, Operand::Imm(_)) {
            return Ok(None);
        }
        let off = &p.off_reg.var;
        let off_is_imm = off.as_const().is_some();
        let off_is_neg = off.smin < 0;
        if !off_is_imm && (off.smin < 0) != (off.smax < 0) {
            return Err(self.sanitize_err(p, Reason::Bounds));
        }
        let mask_to_left =
            (p.op == AluOp::Add && off_is_neg) || (p.op == AluOp::Sub && !off_is_neg);
        let limit = self
            .retrieve_ptr_limit(&p.ptr, mask_to_left)
            .map_err(|r| self.sanitize_err(p, r))?;
        let mut state = if off_is_neg { ALU_NEG_VALUE } else { 0 };
        state |= if off_is_imm { ALU_IMMEDIATE } else { 0 };
        state |= if p.scalar_is_dst {
            ALU_SANITIZE_DST
        } else {
            ALU_SANITIZE_SRC
        };
        if !off_is_imm {
            // Pruning must then keep paths whose masks could differ apart.
            self.explore_alu_limits = true;
        }
        Ok(Some(SanInfo {
            mask_to_left,
            state,
            limit,
        }))
    }

    /// The second half, on the result `new` (`sanitize_ptr_alu` with `commit_window` true):
    /// every path through the instruction must need the same mask.
    pub(super) fn sanitize_commit(
        &mut self,
        p: &PtrOp,
        new: &Reg,
        info: SanInfo,
    ) -> Result<(), Reject> {
        let after = self
            .retrieve_ptr_limit(new, info.mask_to_left)
            .map_err(|r| self.sanitize_err(p, r))?;
        let limit = (info.limit.wrapping_sub(after) as i32).unsigned_abs();
        let aux = &mut self.alu_aux[p.pc];
        if aux.0 != 0 && *aux != (info.state, limit) {
            return Err(self.sanitize_err(p, Reason::Paths));
        }
        *aux = (info.state, limit);
        Ok(())
    }

    /// How far the pointer may move in the masked direction (`retrieve_ptr_limit`).
    fn retrieve_ptr_limit(&self, ptr: &Reg, mask_to_left: bool) -> Result<u32, Reason> {
        let (max, limit) = match ptr.ty {
            RegType::PtrToStack { .. } => {
                let off = (ptr.var.var.value as i64).wrapping_add(ptr.off as i64);
                (
                    MAX_BPF_STACK as u32 + mask_to_left as u32,
                    off.wrapping_neg() as u32,
                )
            }
            RegType::PtrToMapValue => {
                let size = (self.env.maps)(ptr.map).map_or(0, |a| a.value_size);
                let v = if mask_to_left {
                    ptr.var.smin
                } else {
                    ptr.var.umax as i64
                };
                (size, v.wrapping_add(ptr.off as i64) as u32)
            }
            _ => return Err(Reason::Type),
        };
        if limit >= max {
            return Err(Reason::Limit);
        }
        Ok(limit)
    }

    /// The message of a refusal (`sanitize_err`); `EACCES`.
    fn sanitize_err(&self, p: &PtrOp, r: Reason) -> Reject {
        let dst = p.dst;
        let src = match p.src {
            Operand::Reg(s) => s,
            Operand::Imm(_) => dst,
        };
        let op = if p.op == AluOp::Add { "add" } else { "sub" };
        // As the kernel names them: the source for mixed bounds, the destination for the
        // type, whichever operand is the pointer.
        Reject::acces(
            p.pc,
            match r {
                Reason::Bounds => alloc::format!(
                    "R{src} has unknown scalar with mixed signed bounds, {PROHIBITED}"
                ),
                Reason::Type => alloc::format!(
                    "R{dst} has pointer with unsupported alu operation, {PROHIBITED}"
                ),
                Reason::Paths => alloc::format!(
                    "R{dst} tried to {op} from different maps, paths or scalars, {PROHIBITED}"
                ),
                Reason::Limit => {
                    alloc::format!("R{dst} tried to {op} beyond pointer bounds, {PROHIBITED}")
                }
            },
        )
    }

    /// After `+=`/`-=` on a pointer, the default mode wants a stack pointer at a constant
    /// offset inside the frame and a map-value pointer inside the value
    /// (`sanitize_check_bounds`).
    pub(super) fn sanitize_check_bounds(&self, pc: usize, dst: u8, r: &Reg) -> Result<(), Reject> {
        match r.ty {
            RegType::PtrToStack { .. } => {
                let off = r.off as i64 + r.var.var.value as i64;
                if r.var.as_const().is_none() {
                    return Err(Reject::acces(
                        pc,
                        format_args!(
                            "R{dst} variable stack access prohibited for !root, var_off={} off={off}",
                            tnum_str(r.var.var)
                        ),
                    ));
                }
                if off >= 0 || off < -(MAX_BPF_STACK as i64) {
                    return Err(Reject::acces(
                        pc,
                        format_args!(
                            "R{dst} stack pointer arithmetic goes out of range, prohibited for !root; off={off}"
                        ),
                    ));
                }
                Ok(())
            }
            RegType::PtrToMapValue => {
                let Some(attr) = (self.env.maps)(r.map) else {
                    return Ok(());
                };
                let acc = Access {
                    pc,
                    regno: dst,
                    off: 0,
                    size: 1,
                    kind: Kind::Read {
                        sign: false,
                        into: true,
                    },
                    strict: false,
                };
                self.check_bounded(&acc, r, map_value_region(&attr))
                    .map_err(|mut e| {
                        e.msg.push_str(&alloc::format!(
                            "\nR{dst} pointer arithmetic of map value goes out of range, prohibited for !root"
                        ));
                        e
                    })
            }
            _ => Ok(()),
        }
    }
}
