//! Linked scalars: registers and spilled scalars known to hold the same value, or the same
//! value plus a constant, share an id, so that a branch narrowing one narrows all of them
//! (`assign_scalar_id_before_mov`, `collect_linked_regs`, `sync_linked_regs` and the
//! `BPF_ADD_CONST` case of `adjust_reg_min_max_vals` in `kernel/bpf/verifier.c`).
//!
//! - A 64-bit copy of a scalar that is not a constant gives both registers one id (a fresh one
//!   if the source had none); a 32-bit copy or a sign-extending one does too when the value
//!   fits, so the copy is equal (`w0 = w6` with `r6 < 2^32`). A spill of a scalar that fits its
//!   store shares the register's id; a fill of the spill's width shares the spill's.
//! - `rX += K` / `rX -= K` (`K` a constant, in the signed 32-bit range for the 64-bit operation)
//!   on a linked register keeps the link with the delta: its id gets [`ADD_CONST64`] and its
//!   `off` is `K` (`r0 = r6 + K`); the 32-bit operation ([`ADD_CONST32`]) only when the value
//!   fitted in 32 bits, and its link then only pairs with links computed in 32 bits or none
//!   (Linux 6.18's rules, found against the host kernel). A second such addition, or a copy of
//!   a register carrying a delta, drops the link; any other operation writing a scalar drops it
//!   too.
//! - After a conditional jump has narrowed a linked register on a direction, every register
//!   and spilled scalar of the path with the same id (at most [`LINKED_REGS_MAX`]; ids beyond
//!   are dropped) gets that register's value, moved by the difference of their deltas.
//!
//! Pruning compares the ids of precise scalars by a consistent renaming
//! ([`super::state::IdMap`], the kernel's `check_scalar_ids`), and precision needed on one of
//! the registers a jump linked is needed on all of them ([`super::precision`]).

use super::alu;
use super::bounds::Scalar;
use super::explore::Explorer;
use super::state::{Reg, RegType, VState};
use crate::insn::AluOp;
use crate::uapi::limits::MAX_CALL_FRAMES;

/// The id flag of a register that holds its link's value plus its `off`, computed in 64 bits
/// (`BPF_ADD_CONST64`).
pub const ADD_CONST64: u32 = 1 << 31;
/// The same computed in 32 bits: the register holds the low half of the sum, zero-extended
/// (`BPF_ADD_CONST32`).
pub const ADD_CONST32: u32 = 1 << 30;
/// Either flag (`BPF_ADD_CONST`).
pub const ADD_CONST: u32 = ADD_CONST64 | ADD_CONST32;

/// At most this many registers are kept linked at one jump (`LINKED_REGS_MAX`).
pub const LINKED_REGS_MAX: usize = 6;

/// Where a linked scalar is: a register or a spilled slot of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Loc {
    /// Register `r` of frame `frame`.
    Reg {
        /// The frame.
        frame: u8,
        /// The register.
        r: u8,
    },
    /// The register spilled in slot `slot` of frame `frame`.
    Slot {
        /// The frame.
        frame: u8,
        /// The slot index.
        slot: u8,
    },
}

/// The scalars sharing one id at a jump (`struct linked_regs`).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct LinkedRegs {
    locs: [Option<Loc>; LINKED_REGS_MAX],
    len: usize,
}

impl LinkedRegs {
    /// The locations.
    pub fn iter(&self) -> impl Iterator<Item = Loc> + '_ {
        self.locs[..self.len].iter().flatten().copied()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The set in one word for the jump history (`linked_regs_pack`): per entry 10 bits
    /// (frame, register or slot flag, number), the count in the top bits; 0 for none.
    pub fn pack(&self) -> u64 {
        let mut v = self.len as u64;
        for (i, l) in self.iter().enumerate() {
            let e = match l {
                Loc::Reg { frame, r } => (frame as u64) << 7 | 1 << 6 | r as u64,
                Loc::Slot { frame, slot } => (frame as u64) << 7 | slot as u64,
            };
            v |= e << (4 + 10 * i);
        }
        v
    }

    /// The set [`LinkedRegs::pack`] packed.
    pub fn unpack(v: u64) -> LinkedRegs {
        let mut out = LinkedRegs::default();
        let n = (v & 0xf) as usize;
        for i in 0..n.min(LINKED_REGS_MAX) {
            let e = v >> (4 + 10 * i) & 0x3ff;
            let frame = (e >> 7) as u8;
            let num = (e & 0x3f) as u8;
            out.push(if e & 1 << 6 != 0 {
                Loc::Reg { frame, r: num }
            } else {
                Loc::Slot { frame, slot: num }
            });
        }
        out
    }

    fn push(&mut self, l: Loc) -> bool {
        if self.len == LINKED_REGS_MAX {
            return false;
        }
        self.locs[self.len] = Some(l);
        self.len += 1;
        true
    }
}

impl Reg {
    /// Drops a scalar's link (`reg->id = 0; reg->off = 0`).
    #[inline]
    pub fn clear_scalar_id(&mut self) {
        if self.ty == RegType::Scalar {
            self.id = 0;
            self.off = 0;
        }
    }

    /// The link id without the [`ADD_CONST`] flag.
    #[inline]
    pub fn base_id(&self) -> u32 {
        self.id & !ADD_CONST
    }
}

/// The register at `l` in `st`, if the frame exists.
pub(super) fn reg_at(st: &mut VState, l: Loc) -> Option<&mut Reg> {
    match l {
        Loc::Reg { frame, r } => st
            .frames
            .get_mut(frame as usize)
            .map(|f| &mut f.regs[r as usize]),
        Loc::Slot { frame, slot } => st
            .frames
            .get_mut(frame as usize)
            .and_then(|f| f.stack[slot as usize].spill_mut()),
    }
}

impl Explorer<'_> {
    /// Gives a scalar about to be copied an id the copy will share, unless it is a constant
    /// (nothing to learn) or already has one; a register carrying a delta loses it first
    /// (`assign_scalar_id_before_mov`).
    pub(super) fn scalar_id_before_mov(&mut self, r: &mut Reg) {
        if r.ty != RegType::Scalar {
            return;
        }
        if r.id & ADD_CONST != 0 {
            r.id = 0;
            r.off = 0;
        }
        if r.id == 0 && r.var.as_const().is_none() {
            r.id = self.new_id();
        }
    }
}

/// `dst += k` (`sub`: `dst -= k`, `alu32`: the 32-bit operation) on a scalar that was linked
/// with id `linked_id`: the link keeps the delta when `k` is a constant (signed 32-bit for the
/// 64-bit operation), `dst` had no delta yet and, for the 32-bit operation, its value fitted in
/// 32 bits (`fits32`) — else it is dropped. `dst` holds the result already.
pub(super) fn add_const(
    dst: &mut Reg,
    linked_id: u32,
    k: Option<u64>,
    sub: bool,
    alu32: bool,
    fits32: bool,
) {
    let delta = k.and_then(|k| {
        let k32 = if alu32 {
            k as u32 as i32
        } else {
            i32::try_from(k as i64).ok()?
        };
        if sub { k32.checked_neg() } else { Some(k32) }
    });
    match delta {
        Some(d) if linked_id != 0 && linked_id & ADD_CONST == 0 && (!alu32 || fits32) => {
            dst.id = linked_id | if alu32 { ADD_CONST32 } else { ADD_CONST64 };
            dst.off = d;
        }
        _ => dst.clear_scalar_id(),
    }
}

/// The scalars of `st` linked by `id` (`collect_linked_regs`), innermost frame first; those
/// past [`LINKED_REGS_MAX`] lose their id.
pub(super) fn collect_linked_regs(st: &mut VState, id: u32, out: &mut LinkedRegs) {
    let id = id & !ADD_CONST;
    if id == 0 {
        return;
    }
    for f in (0..st.frames.len().min(MAX_CALL_FRAMES)).rev() {
        let fr = &mut st.frames[f];
        for (r, reg) in fr.regs.iter_mut().enumerate().take(10) {
            if reg.ty == RegType::Scalar && reg.base_id() == id {
                let l = Loc::Reg {
                    frame: f as u8,
                    r: r as u8,
                };
                if !out.iter().any(|x| x == l) && !out.push(l) {
                    reg.clear_scalar_id();
                }
            }
        }
        // The slot nearest the frame pointer first, as the kernel walks its stack array.
        let allocated: alloc::vec::Vec<usize> = fr.stack.iter_allocated().map(|(i, _)| i).collect();
        for i in allocated.into_iter().rev() {
            let Some(reg) = fr.stack[i].spill_mut() else {
                continue;
            };
            if reg.ty == RegType::Scalar && reg.base_id() == id {
                let l = Loc::Slot {
                    frame: f as u8,
                    slot: i as u8,
                };
                if !out.iter().any(|x| x == l) && !out.push(l) {
                    reg.clear_scalar_id();
                }
            }
        }
    }
}

/// After a jump narrowed the scalar at `known_at`, gives its value to every scalar of `linked`
/// with the same id, moved by the difference of their deltas (`sync_linked_regs`).
pub(super) fn sync_linked_regs(st: &mut VState, known_at: Loc, linked: &LinkedRegs) {
    let Some(known) = reg_at(st, known_at).copied() else {
        return;
    };
    if known.ty != RegType::Scalar || known.base_id() == 0 {
        return;
    }
    for l in linked.iter() {
        if l == known_at {
            continue;
        }
        let Some(reg) = reg_at(st, l) else { continue };
        if reg.ty != RegType::Scalar || reg.base_id() != known.base_id() {
            continue;
        }
        // A link computed in 64 bits says nothing about one computed in 32 and back.
        if (reg.id ^ known.id) & ADD_CONST == ADD_CONST {
            continue;
        }
        let both_plain = reg.id & ADD_CONST == 0 && known.id & ADD_CONST == 0;
        if both_plain || reg.off == known.off {
            *reg = known;
            continue;
        }
        let delta = reg.off as i64 - known.off as i64;
        let d = Scalar::konst(delta as u64);
        let var = if reg.id & ADD_CONST32 != 0 {
            alu::alu32(AluOp::Add, &known.var, &d)
        } else if known.id & ADD_CONST32 != 0 {
            // From the low half of a sum back to the value it came from: exact only when
            // moving by the delta cannot wrap around 32 bits (the kernel does not check;
            // kbpf keeps what it knew instead, which is always sound).
            let (lo, hi) = (known.var.umin as i64 + delta, known.var.umax as i64 + delta);
            if lo < 0 || hi > u32::MAX as i64 {
                continue;
            }
            alu::alu64(AluOp::Add, &known.var, &d)
        } else {
            alu::alu64(AluOp::Add, &known.var, &d)
        };
        let (id, off) = (reg.id, reg.off);
        *reg = known;
        reg.id = id;
        reg.off = off;
        reg.var = var;
    }
}
