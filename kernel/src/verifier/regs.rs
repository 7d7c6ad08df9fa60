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
            if wide && matches!(op, AluOp::Add | AluOp::Sub) {
                // `r0 = r6; r0 += K`: still linked to r6, K apart.
                super::linked::add_const(&mut new, a.id, b.var.as_const(), op == AluOp::Sub);
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
        let r = self.ptr_arith(pc, op, dst, &ptr, &off_reg, !a.ty.is_pointer())?;
        let r = self.adjust_pkt_ptr(&ptr, &off_reg, r);
        *st.reg_mut(dst) = r;
        Ok(())
    }

    /// `ptr op scalar` (`adjust_ptr_min_max_vals`); `scalar_is_dst`: the scalar was `dst`.
    fn ptr_arith(
        &self,
        pc: usize,
        op: AluOp,
        dst: u8,
        ptr: &Reg,
        s: &Reg,
        scalar_is_dst: bool,
    ) -> Result<Reg, Reject> {
        let deny = |m: core::fmt::Arguments<'_>| Err(Reject::acces(pc, m));
        match ptr.ty {
            t if super::refs::or_null_base(t).is_some() => {
                return deny(format_args!(
                    "R{dst} pointer arithmetic on {} prohibited, null-check it first",
                    ptr.ty.name()
                ));
            }
            RegType::ConstPtrToMap | RegType::PtrToPacketEnd | RegType::PtrToSocket => {
                return deny(format_args!(
                    "R{dst} pointer arithmetic on {} prohibited",
                    ptr.ty.name()
                ));
            }
            _ => {}
        }
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
        let mut r = *ptr;
        if let Some(k) = s.var.as_const() {
            let k = k as i64;
            let new = if op == AluOp::Add {
                (ptr.off as i64).checked_add(k)
            } else {
                (ptr.off as i64).checked_sub(k)
            };
            match new {
                Some(n) if k.abs() < MAX_VAR_OFF && n.abs() < MAX_VAR_OFF => r.off = n as i32,
                _ => {
                    return deny(format_args!(
                        "value {k} makes {} pointer be out of bounds",
                        ptr.ty.name()
                    ));
                }
            }
            return Ok(r);
        }
        if s.var.smin == i64::MIN {
            return deny(format_args!(
                "math between {} pointer and register with unbounded min value is not allowed",
                ptr.ty.name()
            ));
        }
        if s.var.smin <= -MAX_VAR_OFF {
            return deny(format_args!(
                "R{dst} min value is outside of the allowed memory range"
            ));
        }
        if matches!(ptr.ty, RegType::PtrToStack { .. }) && !self.env.privileged {
            return deny(format_args!(
                "R{dst} variable stack access prohibited for !root, off={}",
                ptr.off
            ));
        }
        r.var = alu::alu64(op, &ptr.var, &s.var);
        Ok(r)
    }
}
