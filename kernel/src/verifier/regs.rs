//! ALU instructions on registers, scalars and pointers (`check_alu_op`,
//! `adjust_reg_min_max_vals`, `adjust_ptr_min_max_vals` of `kernel/bpf/verifier.c`).
//!
//! Pointer arithmetic: only 64-bit `+=`/`-=` of a scalar on a context, stack or map value
//! pointer (never on `map_ptr` or a not yet null-checked pointer); a scalar minus a pointer,
//! subtraction from a stack pointer and bitwise operators are refused as the kernel refuses
//! them. In the default mode a stack pointer only takes constant offsets, and pointer minus
//! pointer, 32-bit copies/negation of pointers are refused; `privileged` turns those into
//! unknown scalars (root's `allow_ptr_leaks`).

use super::alu;
use super::bounds::Scalar;
use super::explore::Explorer;
use super::log::Reject;
use super::state::{Reg, RegType, VState};
use crate::Errno;
use crate::insn::{AluOp, Operand};

/// Offsets beyond this are refused (`BPF_MAX_VAR_OFF`).
const MAX_VAR_OFF: i64 = 1 << 29;

fn op_str(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "+=",
        AluOp::Sub => "-=",
        AluOp::Mul => "*=",
        AluOp::Div | AluOp::SDiv => "/=",
        AluOp::Mod | AluOp::SMod => "%=",
        AluOp::Or => "|=",
        AluOp::And => "&=",
        AluOp::Xor => "^=",
        AluOp::Lsh => "<<=",
        AluOp::Rsh => ">>=",
        AluOp::Arsh => "s>>=",
        AluOp::Neg => "neg",
        AluOp::Mov | AluOp::MovSx(_) => "=",
    }
}

impl Explorer<'_> {
    /// One ALU instruction.
    pub(super) fn check_alu(
        &mut self,
        st: &mut VState,
        pc: usize,
        wide: bool,
        op: AluOp,
        dst: u8,
        src: Operand,
    ) -> Result<(), Reject> {
        let priv_ = self.env.privileged;
        if let Operand::Imm(imm) = src {
            let bits = if wide { 64 } else { 32 };
            if matches!(op, AluOp::Lsh | AluOp::Rsh | AluOp::Arsh) && !(0..bits).contains(&imm) {
                return Err(Reject::new(
                    Errno::EINVAL,
                    pc,
                    format_args!("invalid shift {imm}"),
                ));
            }
            if matches!(op, AluOp::Div | AluOp::SDiv | AluOp::Mod | AluOp::SMod) && imm == 0 {
                return Err(Reject::new(Errno::EINVAL, pc, "div by zero"));
            }
        }
        let b = match op {
            AluOp::Neg => Reg::scalar(Scalar::konst(0)),
            _ => self.operand(st, pc, src)?,
        };
        self.check_dst(pc, dst)?;
        let unknown = Reg::scalar(Scalar::UNKNOWN);
        let unknown_w = if wide {
            unknown
        } else {
            Reg::scalar(Scalar::UNKNOWN.zext32())
        };
        let srcno = match src {
            Operand::Reg(r) => r,
            Operand::Imm(_) => dst,
        };
        match op {
            AluOp::Mov if wide => {
                // `r1 = r2`: both hold the same value from here on (linked by an id).
                let mut b = b;
                if let Operand::Reg(r) = src {
                    self.scalar_id_before_mov(st.reg_mut(r));
                    b = *st.reg(r);
                }
                *st.reg_mut(dst) = b;
                return Ok(());
            }
            AluOp::Mov | AluOp::MovSx(_) if b.ty.is_pointer() => {
                if !priv_ {
                    let what = if op == AluOp::Mov {
                        "partial copy of pointer"
                    } else {
                        "sign-extension part of pointer"
                    };
                    return Err(Reject::acces(pc, format_args!("R{srcno} {what}")));
                }
                *st.reg_mut(dst) = unknown_w;
                return Ok(());
            }
            AluOp::Mov | AluOp::MovSx(_) => {
                let r = if wide {
                    alu::alu64(op, &Scalar::UNKNOWN, &b.var)
                } else {
                    alu::alu32(op, &Scalar::UNKNOWN, &b.var)
                };
                let mut new = Reg::scalar(r);
                // A narrowing or sign-extending copy is the same value when it fits: linked.
                let fits = match op {
                    AluOp::MovSx(bits) => b.var.umax < 1u64 << (bits - 1),
                    _ => super::stack_access::reg_width(&b) <= 32,
                };
                if let (Operand::Reg(r), true) = (src, fits) {
                    self.scalar_id_before_mov(st.reg_mut(r));
                    new.id = st.reg(r).id;
                }
                *st.reg_mut(dst) = new;
                return Ok(());
            }
            _ => {}
        }
        let a = self.read(st, pc, dst)?;
        if a.ty == RegType::Scalar && b.ty == RegType::Scalar {
            let r = if wide {
                alu::alu64(op, &a.var, &b.var)
            } else {
                alu::alu32(op, &a.var, &b.var)
            };
            let mut new = Reg::scalar(r);
            if matches!(op, AluOp::Add | AluOp::Sub) {
                // `r0 = r6; r0 += K`: still linked to r6, K apart.
                let k = if wide {
                    b.var.as_const()
                } else {
                    b.var
                        .var
                        .subreg()
                        .is_const()
                        .then_some(b.var.var.value as u32 as u64)
                };
                let fits32 = super::stack_access::reg_width(&a) <= 32;
                super::linked::add_const(&mut new, a.id, k, op == AluOp::Sub, !wide, fits32);
            }
            *st.reg_mut(dst) = new;
            return Ok(());
        }
        // At least one pointer.
        if op == AluOp::Neg {
            if !priv_ {
                return Err(Reject::acces(
                    pc,
                    format_args!("R{dst} pointer arithmetic prohibited"),
                ));
            }
            *st.reg_mut(dst) = unknown_w;
            return Ok(());
        }
        if a.ty.is_pointer() && b.ty.is_pointer() {
            if op == AluOp::Sub && priv_ {
                *st.reg_mut(dst) = unknown_w;
                return Ok(());
            }
            return Err(Reject::acces(
                pc,
                format_args!("R{dst} pointer {} pointer prohibited", op_str(op)),
            ));
        }
        if !wide {
            if op == AluOp::Sub && priv_ {
                *st.reg_mut(dst) = unknown_w;
                return Ok(());
            }
            return Err(Reject::acces(
                pc,
                format_args!("R{dst} 32-bit pointer arithmetic prohibited"),
            ));
        }
        let (ptr, off_reg) = if a.ty.is_pointer() { (a, b) } else { (b, a) };
        let p = PtrOp {
            pc,
            op,
            dst,
            src,
            ptr,
            off_reg,
            scalar_is_dst: !a.ty.is_pointer(),
        };
        let r = self.ptr_arith(&p)?;
        let r = self.adjust_pkt_ptr(&ptr, &off_reg, r);
        *st.reg_mut(dst) = r;
        Ok(())
    }

    /// `ptr op scalar` (`adjust_ptr_min_max_vals`): the pointer's type, the sanity of both
    /// offsets, the operation, the result's sanity, then the default mode's Spectre v1 rules
    /// ([`super::sanitize`]).
    fn ptr_arith(&mut self, p: &PtrOp) -> Result<Reg, Reject> {
        let PtrOp {
            pc,
            op,
            dst,
            ptr,
            off_reg: s,
            scalar_is_dst,
            ..
        } = *p;
        let deny = |m: core::fmt::Arguments<'_>| Err(Reject::acces(pc, m));
        let known = s.var.as_const();
        match ptr.ty {
            t if super::refs::or_null_base(t).is_some() => {
                return deny(format_args!(
                    "R{dst} pointer arithmetic on {} prohibited, null-check it first",
                    ptr.ty.name()
                ));
            }
            RegType::ConstPtrToMap if known == Some(0) && op == AluOp::Add => {}
            t if t == RegType::ConstPtrToMap
                || t == RegType::PtrToPacketEnd
                || t.is_sk_pointer() =>
            {
                return deny(format_args!(
                    "R{dst} pointer arithmetic on {} prohibited",
                    ptr.ty.name()
                ));
            }
            _ => {}
        }
        sane_offset(pc, &s, ptr.ty)?;
        sane_offset(pc, &ptr, ptr.ty)?;
        let san = if matches!(op, AluOp::Add | AluOp::Sub) {
            self.sanitize_ptr_alu(p)?
        } else {
            None
        };
        let mut r = ptr;
        match op {
            AluOp::Add => {}
            AluOp::Sub if scalar_is_dst => {
                return deny(format_args!("R{dst} tried to subtract pointer from scalar"));
            }
            AluOp::Sub if matches!(ptr.ty, RegType::PtrToStack { .. }) => {
                return deny(format_args!(
                    "R{dst} subtraction from stack pointer prohibited"
                ));
            }
            AluOp::Sub => {}
            AluOp::And | AluOp::Or | AluOp::Xor => {
                return deny(format_args!(
                    "R{dst} bitwise operator {} on pointer prohibited",
                    op_str(op)
                ));
            }
            _ => {
                return deny(format_args!(
                    "R{dst} pointer arithmetic with {} operator prohibited",
                    op_str(op)
                ));
            }
        }
        // A constant the fixed offset can hold moves it; anything else is variable.
        let folded = known.and_then(|k| {
            let k = k as i64;
            let n = if op == AluOp::Add {
                ptr.off as i64 + k
            } else {
                ptr.off as i64 - k
            };
            i32::try_from(n).ok()
        });
        match folded {
            Some(n) => r.off = n,
            None => r.var = alu::alu64(op, &ptr.var, &s.var),
        }
        sane_offset(pc, &r, ptr.ty)?;
        if !self.env.privileged {
            self.sanitize_check_bounds(pc, dst, &r)?;
        }
        if let Some(info) = san {
            self.sanitize_commit(p, &r, info)?;
        }
        Ok(r)
    }
}

/// A pointer arithmetic instruction: `dst = ptr op off_reg` (either operand order).
#[derive(Clone, Copy)]
pub(super) struct PtrOp {
    /// The instruction.
    pub pc: usize,
    /// `+=` or another operation.
    pub op: AluOp,
    /// The destination register.
    pub dst: u8,
    /// The source operand.
    pub src: Operand,
    /// The pointer operand.
    pub ptr: Reg,
    /// The scalar operand.
    pub off_reg: Reg,
    /// The scalar is the destination (`scalar += pointer`).
    pub scalar_is_dst: bool,
}

/// A pointer or scalar offset the arithmetic may use (`check_reg_sane_offset`): a constant,
/// fixed offset or minimum within `BPF_MAX_VAR_OFF`, a minimum that is bounded. `EINVAL`
/// otherwise, as in the kernel.
fn sane_offset(pc: usize, r: &Reg, ty: RegType) -> Result<(), Reject> {
    let name = ty.name();
    let bad = |m: core::fmt::Arguments<'_>| Err(Reject::new(Errno::EINVAL, pc, m));
    let val = r.var.var.value as i64;
    if r.var.as_const().is_some() && (val >= MAX_VAR_OFF || val <= -MAX_VAR_OFF) {
        return bad(format_args!(
            "math between {name} pointer and {val} is not allowed"
        ));
    }
    let off = r.off as i64;
    if off >= MAX_VAR_OFF || off <= -MAX_VAR_OFF {
        return bad(format_args!("{name} pointer offset {off} is not allowed"));
    }
    let smin = r.var.smin;
    if smin == i64::MIN {
        return bad(format_args!(
            "math between {name} pointer and register with unbounded min value is not allowed"
        ));
    }
    if smin >= MAX_VAR_OFF || smin <= -MAX_VAR_OFF {
        return bad(format_args!(
            "value {smin} makes {name} pointer be out of bounds"
        ));
    }
    Ok(())
}
