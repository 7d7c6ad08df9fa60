//! Packet pointers: `data`, `data_meta` and `data_end` from the context, the range a
//! comparison with the end proves, and accesses through them.
//!
//! Mirrors `find_good_pkt_pointers`, `try_match_pkt_pointers`, `check_packet_access` and the
//! packet parts of `adjust_ptr_min_max_vals` and `check_cond_jmp_op` in
//! `kernel/bpf/verifier.c`.
//!
//! A packet pointer (`pkt` or `pkt_meta`) has a fixed offset `off`, a variable part `var`, an
//! `id` and a `range`: the bytes `[base, base + range)` are known to be inside the packet,
//! where `base` is the pointer minus its fixed offset. Pointers loaded from the context start
//! with id 0, offset 0 and range 0: nothing may be read through them until a comparison
//! proves some range. Adding a constant moves `off` and keeps id and range; adding or
//! subtracting a variable makes a new base (a fresh id, range 0). A comparison of a pointer
//! `p` = `base + off` with `data_end` (any of `>`, `<`, `>=`, `<=`, either operand order;
//! `pkt_meta` against an unmodified `data` likewise) sets, on the direction where
//! `p <= data_end` (or `p < data_end`) holds, the range of every pointer of the same type and
//! id to `off` (or `off + 1`), unless the variable part may reach past `MAX_PACKET_OFF`.
//! An access of `size` bytes at fixed offset `off` needs `off >= 0`, `off + size <= range`
//! and a variable part that is never negative.
//!
//! On the other direction, where the compared `pkt` pointer is proven at (`>=`) or beyond
//! (`>`) the end, that one register's range becomes [`AT_PKT_END`] or [`BEYOND_PKT_END`]
//! (`mark_pkt_end`; `pkt_meta` is not marked). Any access through such a pointer is refused
//! with `EINVAL` ("offset is outside of the packet"), and a later comparison of it with the
//! end that the mark decides explores only the decided direction (`is_pkt_ptr_branch_taken`).
//!
//! Not done: helpers that change packet data (none exist yet), and the subtraction rule that
//! keeps the range when the subtrahend is non-negative (here any variable subtraction resets
//! it: stricter).

use super::explore::{Explorer, JmpInsn, Next};
use super::log::Reject;
use super::mem::check_min_nonnegative;
use super::state::{Reg, RegType, VState};
use crate::errno::Errno;
use crate::insn::{Cond, Operand};

/// The largest packet offset a range may cover (`MAX_PACKET_OFF`).
pub const MAX_PACKET_OFF: u64 = 0xffff;

/// The range of a `pkt` pointer proven at or beyond the end (`pkt >= data_end`).
pub const AT_PKT_END: i32 = -1;

/// The range of a `pkt` pointer proven beyond the end (`pkt > data_end`).
pub const BEYOND_PKT_END: i32 = -2;

/// Whether `t` is `pkt` or `pkt_meta` (`type_is_pkt_pointer`).
pub fn is_pkt_pointer(t: RegType) -> bool {
    matches!(t, RegType::PtrToPacket | RegType::PtrToPacketMeta)
}

/// Whether `t` is any packet pointer, the end included (`reg_is_pkt_pointer_any`).
pub fn is_pkt_pointer_any(t: RegType) -> bool {
    is_pkt_pointer(t) || t == RegType::PtrToPacketEnd
}

/// An unmodified pointer of type `t` as loaded from the context (`reg_is_init_pkt_pointer`).
fn is_init_pkt_pointer(r: &Reg, t: RegType) -> bool {
    r.ty == t && r.id == 0 && r.off == 0 && r.var.as_const() == Some(0)
}

/// On the direction where `dst` is proven at most the end (`right_open`: strictly below it),
/// every pointer of `dst`'s type and id gets the range up to `dst`'s offset
/// (`find_good_pkt_pointers`).
fn find_good_pkt_pointers(st: &mut VState, dst: &Reg, right_open: bool) {
    if dst.off < 0 || (dst.off == 0 && right_open) {
        return;
    }
    if dst.var.umax > MAX_PACKET_OFF || dst.var.umax + dst.off as u64 > MAX_PACKET_OFF {
        // Overflow risk: pkt + (1 << 63) may compare below the end and still be outside.
        return;
    }
    let new_range = dst.off + right_open as i32;
    let (ty, id) = (dst.ty, dst.id);
    st.for_each_reg(|r| {
        if r.ty == ty && r.id == id {
            r.range = r.range.max(new_range);
        }
    });
}

/// On the direction where R`regno` (a `pkt` pointer) is proven past the end (`beyond`) or at
/// least at it, mark that register alone (`mark_pkt_end`).
fn mark_pkt_end(st: &mut VState, regno: u8, beyond: bool) {
    let r = st.reg_mut(regno);
    if r.ty == RegType::PtrToPacket {
        r.range = if beyond { BEYOND_PKT_END } else { AT_PKT_END };
    }
}

/// The outcome of `a cond b` (64-bit, a `pkt` pointer against the end) when a mark of
/// [`mark_pkt_end`] decides it (`is_pkt_ptr_branch_taken`); `None` when both may happen.
fn pkt_ptr_branch_taken(a: &Reg, b: &Reg, cond: Cond) -> Option<bool> {
    // Normalize to `pkt cond end`.
    let (pkt, cond) = if b.ty == RegType::PtrToPacketEnd {
        (a, cond)
    } else if a.ty == RegType::PtrToPacketEnd {
        let flipped = match cond {
            Cond::Gt => Cond::Lt,
            Cond::Lt => Cond::Gt,
            Cond::Ge => Cond::Le,
            Cond::Le => Cond::Ge,
            c => c,
        };
        (b, flipped)
    } else {
        return None;
    };
    if pkt.range >= 0 {
        return None;
    }
    match cond {
        Cond::Gt | Cond::Le if pkt.range == BEYOND_PKT_END => Some(cond == Cond::Gt),
        Cond::Ge | Cond::Lt => Some(cond == Cond::Ge),
        _ => None,
    }
}

impl Explorer<'_> {
    /// The packet part of pointer arithmetic: a variable offset starts a new base with a fresh
    /// id and no proven range (`adjust_ptr_min_max_vals`). `r` is the generic result.
    pub(super) fn adjust_pkt_ptr(&mut self, ptr: &Reg, s: &Reg, mut r: Reg) -> Reg {
        if !is_pkt_pointer(ptr.ty) || s.var.as_const().is_some() {
            return r;
        }
        r.id = self.new_id();
        r.range = 0;
        r
    }

    /// A conditional jump between packet pointers (`try_match_pkt_pointers`): `Ok(Some)` when
    /// it is a bounds check (both directions explored, the good one with the range set),
    /// `Err` for any other comparison of two packet pointers in the default mode, `Ok(None)`
    /// when the comparison is not between packet pointers.
    pub(super) fn try_match_pkt_pointers(
        &mut self,
        st: &mut VState,
        j: &JmpInsn,
        a: &Reg,
        b: &Reg,
    ) -> Result<Option<Next>, Reject> {
        if !is_pkt_pointer_any(a.ty) || !is_pkt_pointer_any(b.ty) {
            return Ok(None);
        }
        let (pc, cond, dst, src) = (j.pc, j.cond, j.dst, j.src);
        let (fall, target) = (j.fall(), j.target());
        // Which register is checked against the end: the destination ("pkt' > end",
        // "meta' > data") or the source ("end > pkt'", "data > meta'").
        let dst_checked = (a.ty == RegType::PtrToPacket && b.ty == RegType::PtrToPacketEnd)
            || (a.ty == RegType::PtrToPacketMeta && is_init_pkt_pointer(b, RegType::PtrToPacket));
        let src_checked = (a.ty == RegType::PtrToPacketEnd && b.ty == RegType::PtrToPacket)
            || (is_init_pkt_pointer(a, RegType::PtrToPacket) && b.ty == RegType::PtrToPacketMeta);
        let matched = matches!(src, Operand::Reg(_))
            && j.wide
            && (dst_checked || src_checked)
            && matches!(cond, Cond::Gt | Cond::Lt | Cond::Ge | Cond::Le);
        if !matched {
            if self.env.privileged {
                return Ok(None);
            }
            return Err(Reject::acces(
                pc,
                format_args!("R{dst} pointer comparison prohibited"),
            ));
        }
        // (good direction is the taken one, range right-open) per condition, for the
        // destination being the checked pointer; the source case mirrors it.
        let (taken_good, open) = match (cond, dst_checked) {
            (Cond::Gt, true) => (false, false),
            (Cond::Gt, false) => (true, true),
            (Cond::Lt, true) => (true, true),
            (Cond::Lt, false) => (false, false),
            (Cond::Ge, true) => (false, true),
            (Cond::Ge, false) => (true, false),
            (Cond::Le, true) => (true, false),
            _ => (false, true),
        };
        let (checked, checked_no) = match (dst_checked, src) {
            (true, _) => (*a, dst),
            (false, Operand::Reg(r)) => (*b, r),
            (false, Operand::Imm(_)) => return Ok(None),
        };
        if let Some(taken) = pkt_ptr_branch_taken(a, b, cond) {
            return Ok(Some(Next::Goto(if taken { target } else { fall })));
        }
        let mut other = st.clone();
        let (good, bad) = if taken_good {
            (&mut other, st)
        } else {
            (st, &mut other)
        };
        find_good_pkt_pointers(good, &checked, open);
        // The bad direction proves `pkt > end` exactly when the good one is `pkt <= end`.
        mark_pkt_end(bad, checked_no, !open);
        Ok(Some(Next::Fork(fall, target, other)))
    }

    /// `size` bytes at fixed offset `off` (the pointer's own included) through packet pointer
    /// `p` in R`regno` (`check_packet_access`).
    pub(super) fn check_packet_access(
        &self,
        pc: usize,
        regno: u8,
        p: &Reg,
        off: i64,
        size: usize,
    ) -> Result<(), Reject> {
        check_min_nonnegative(pc, regno, p)?;
        if p.range < 0 {
            return Err(Reject::new(
                Errno::EINVAL,
                pc,
                format_args!("R{regno} offset is outside of the packet"),
            ));
        }
        if off >= 0 && off as u64 + size as u64 <= p.range as u64 {
            return Ok(());
        }
        Err(Reject::acces(
            pc,
            format_args!(
                "invalid access to packet, off={off} size={size}, R{regno}(id={},off={off},r={})\n\
                 R{regno} offset is outside of the packet",
                p.id, p.range
            ),
        ))
    }
}
