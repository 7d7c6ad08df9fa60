//! Precision tracking: which scalars' values matter (`mark_chain_precision`,
//! `backtrack_insn`, `propagate_precision`, `mark_all_scalars_precise` of
//! `kernel/bpf/verifier.c`).
//!
//! Pruning ignores a stored state's scalar (register or spilled to the stack) unless it is
//! marked precise there: an imprecise scalar matches any scalar. A scalar becomes precise
//! where its value decides safety, as in the kernel: a scalar added to a pointer, a
//! conditional jump whose direction the bounds decide (both sides), the return value of the
//! main program — and, more conservatively than the kernel, every scalar argument of a helper
//! or kfunc. The need is then carried backwards over the instructions the path executed —
//! through moves, ALU operations, spills and fills, reg-reg comparisons, calls and returns —
//! and marked in each stored state on the way ([`Precise`]), until nothing is left or a state
//! already has the marks. When the trail is lost (a fill from a variable offset), every
//! scalar of every state up the chain becomes precise.
//!
//! As in the kernel, a path keeps only a jump history ([`History`], `push_jmp_history`):
//! an entry where an instruction was not reached from its predecessor in the program, and
//! where a stack access went through a register other than R10 (its frame and slots,
//! `INSN_F_STACK_ACCESS`); the walk back runs linearly between entries
//! (`get_prev_insn_idx`), telling R10 accesses from the instruction and the frame from calls
//! and exits.
//!
//! A path pruned by a stored state inherits that state's marks (`propagate_precision`).
//! States still being explored (loops) have incomplete marks: they are only compared with
//! every scalar precise, and a path they prune marks every scalar it holds.

use super::explore::{Explorer, Path};
use super::linked::{LinkedRegs, Loc};
use super::state::{RegType, VState};
use crate::insn::{AluOp, Call, Op, Operand, Size};
use crate::uapi::limits::MAX_CALL_FRAMES;
use alloc::vec::Vec;

/// The stack slots one instruction accessed (`INSN_F_STACK_ACCESS` of the history).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StackUse {
    /// No stack memory.
    None,
    /// Slots `lo..=hi` of frame `frame`.
    Slots {
        /// Absolute frame number.
        frame: u8,
        /// First slot.
        lo: u8,
        /// Last slot.
        hi: u8,
    },
    /// Somewhere in the stack of `frame` (variable offset).
    Unknown(u8),
}

/// One entry of a path's jump history (`struct bpf_jmp_history_entry`): an instruction
/// reached from elsewhere than its predecessor in the program, the first one of a segment,
/// or one whose stack access cannot be told from the instruction alone.
#[derive(Clone, Copy, Debug)]
pub(super) struct JmpHist {
    /// The instruction.
    pub idx: u32,
    /// The instruction processed before it (`prev_idx`).
    pub prev_idx: u32,
    /// Its stack access (the `INSN_F_STACK_ACCESS` flags with frame and slots).
    pub stack: StackUse,
    /// The scalars a conditional jump linked ([`LinkedRegs::pack`]; 0: none).
    pub linked: u64,
}

/// The history of one path segment: from the instruction a stored state was taken at (or
/// the entry) up to the next stored state. Instructions between entries ran one after the
/// other; backtracking walks them linearly backwards (`get_prev_insn_idx`).
#[derive(Clone, Debug, Default)]
pub(super) struct History {
    /// Jump history entries, oldest first; the first is the segment's first instruction.
    entries: Vec<JmpHist>,
    /// Instructions processed in the segment.
    pub insns: u32,
    /// The last instruction processed (before the segment, while it is empty).
    last: u32,
    /// The instruction that follows `last` in the program (`last` + its slots).
    fall: u32,
    /// The frame after `last` ran.
    frame: u8,
    /// The frame `last` ran in.
    frame_before: u8,
}

impl History {
    /// Records that the instruction `op` at `pc` ran, starting in frame `frame` (ending in
    /// `frame_after`), touching the stack as `stack` says (`push_jmp_history`, only where
    /// the walk back could not find it).
    #[inline]
    pub fn record(
        &mut self,
        pc: usize,
        op: &Op,
        frame: u8,
        frame_after: u8,
        stack: StackUse,
        linked: u64,
    ) {
        let pc32 = pc as u32;
        if self.insns == 0
            || self.fall != pc32
            || stack != implied_stack_use(op, frame)
            || linked != 0
        {
            self.entries.push(JmpHist {
                idx: pc32,
                prev_idx: self.last,
                stack,
                linked,
            });
        }
        self.insns += 1;
        self.last = pc32;
        self.fall = pc32 + op.slots() as u32;
        self.frame = frame_after;
        self.frame_before = frame;
    }

    /// A copy of this history for a path that continues in frame `frame` after the last
    /// instruction (the callback side of a callback call).
    pub fn with_frame(&self, frame: u8) -> History {
        History {
            frame,
            ..self.clone()
        }
    }

    /// The history so far, leaving an empty one for the segment that starts here.
    pub fn take(&mut self) -> History {
        let next = History {
            entries: Vec::new(),
            insns: 0,
            last: self.last,
            fall: self.fall,
            frame: self.frame,
            frame_before: self.frame,
        };
        core::mem::replace(self, next)
    }

    /// Carries `bt` back over the segment's instructions, newest first; `next` is the
    /// instruction that ran after the segment's last one. `Err(())`: the trail is lost.
    fn walk(&self, ops: &[Option<Op>], bt: &mut Precise, mut next: usize) -> Result<(), ()> {
        if self.insns == 0 {
            return Ok(());
        }
        let mut i = self.last as usize;
        let mut k = self.entries.len();
        let mut frame_after = self.frame;
        let mut newest = true;
        loop {
            if bt.is_empty() {
                return Ok(());
            }
            let op = ops.get(i).and_then(Option::as_ref).ok_or(())?;
            let next_calls_back = ops.get(next).is_some_and(super::callback::calls_callback);
            let frame = match op {
                _ if newest => self.frame_before,
                Op::Call(Call::Local(_)) => frame_after.checked_sub(1).ok_or(())?,
                Op::Exit => frame_after + 1,
                // A callback call whose next instruction is not its own successor entered
                // the callback ([`super::callback`]).
                _ if super::callback::is_callback_call(op) && next != i + 1 => {
                    frame_after.checked_sub(1).ok_or(())?
                }
                _ => frame_after,
            };
            let entry = k.checked_sub(1).map(|j| self.entries[j]);
            let entry = entry.filter(|e| e.idx as usize == i);
            let stack = match entry {
                Some(e) => e.stack,
                None => implied_stack_use(op, frame),
            };
            let linked = entry.map_or(0, |e| e.linked);
            sync_linked(bt, linked);
            if super::callback::is_callback_call(op) && frame < frame_after {
                backtrack_callback_entry(frame, bt)?;
            } else if matches!(op, Op::Exit) && next_calls_back {
                // A callback's exit back to its call site (a plain return lands after a
                // call, whose arguments would be uninitialized there): nothing passes.
            } else {
                backtrack(op, frame, stack, bt)?;
            }
            sync_linked(bt, linked);
            frame_after = frame;
            newest = false;
            next = i;
            match entry {
                Some(e) => {
                    k -= 1;
                    if k == 0 {
                        // The segment's first instruction.
                        return Ok(());
                    }
                    i = e.prev_idx as usize;
                }
                None => {
                    // Ran after the one before it in the program (past an `ld_imm64`'s
                    // second slot); entries remain, as the first instruction has one.
                    if k == 0 || i == 0 {
                        return Err(());
                    }
                    i -= 1;
                    if i > 0 && ops[i].is_none() {
                        i -= 1;
                    }
                }
            }
        }
    }
}

/// Precision marks of a stored state, per frame: registers and stack slots (bit sets).
#[derive(Clone, Debug, Default)]
pub(super) struct Precise {
    regs: [u16; MAX_CALL_FRAMES],
    slots: [u64; MAX_CALL_FRAMES],
    /// Every scalar is precise (`mark_all_scalars_precise`).
    pub all: bool,
}

impl Precise {
    /// Every scalar precise.
    pub const ALL: Precise = Precise {
        regs: [0; MAX_CALL_FRAMES],
        slots: [0; MAX_CALL_FRAMES],
        all: true,
    };

    /// Whether register `r` of frame `f` is precise.
    pub fn reg(&self, f: usize, r: usize) -> bool {
        self.all || self.regs[f] & (1 << r) != 0
    }

    /// Whether stack slot `s` of frame `f` is precise.
    pub fn slot(&self, f: usize, s: usize) -> bool {
        self.all || self.slots[f] & (1 << s) != 0
    }

    fn is_empty(&self) -> bool {
        !self.all && self.regs.iter().all(|&r| r == 0) && self.slots.iter().all(|&s| s == 0)
    }

    /// Adds `need` to the marks; whether anything was new.
    fn add(&mut self, need: &Precise) -> bool {
        if self.all {
            return false;
        }
        let mut new = false;
        for f in 0..MAX_CALL_FRAMES {
            new |= need.regs[f] & !self.regs[f] != 0 || need.slots[f] & !self.slots[f] != 0;
            self.regs[f] |= need.regs[f];
            self.slots[f] |= need.slots[f];
        }
        new
    }

    /// Needs register `r` of frame `f`.
    pub fn set_reg(&mut self, f: usize, r: u8) {
        self.regs[f] |= 1 << r;
    }

    /// Needs stack slot `s` of frame `f`.
    pub fn set_slot(&mut self, f: usize, s: usize) {
        self.slots[f] |= 1 << s;
    }

    fn clear_reg(&mut self, f: usize, r: u8) {
        self.regs[f] &= !(1 << r);
    }

    fn has_reg(&self, f: usize, r: u8) -> bool {
        self.regs[f] & (1 << r) != 0
    }

    fn slot_range(lo: u8, hi: u8) -> u64 {
        let n = u32::from(hi - lo) + 1;
        let ones = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        ones << lo
    }

    /// The marks of every scalar `st` holds.
    pub fn scalars_of(st: &VState) -> Precise {
        let mut p = Precise::default();
        for (f, fr) in st.frames.iter().enumerate() {
            for (r, reg) in fr.regs.iter().enumerate() {
                if reg.ty == RegType::Scalar {
                    p.regs[f] |= 1 << r;
                }
            }
            for (s, slot) in fr.stack.iter_allocated() {
                if slot.spill().is_some_and(|r| r.ty == RegType::Scalar) {
                    p.slots[f] |= 1 << s;
                }
            }
        }
        p
    }

    /// The marks of `marks` that `st` holds scalars at (what a path pruned by a state with
    /// those marks needs).
    pub fn restrict(marks: &Precise, st: &VState) -> Precise {
        let mut p = Precise::scalars_of(st);
        if !marks.all {
            for f in 0..MAX_CALL_FRAMES {
                p.regs[f] &= marks.regs[f];
                p.slots[f] &= marks.slots[f];
            }
        }
        p
    }
}

/// Carries `bt` back over a callback call that entered its callback from frame `f`: the
/// callback's R2 is the caller's R3; its R1 (the index) and everything else are fresh.
fn backtrack_callback_entry(f: u8, bt: &mut Precise) -> Result<(), ()> {
    let (f, callee) = (f as usize, f as usize + 1);
    if callee >= MAX_CALL_FRAMES {
        return Err(());
    }
    if bt.has_reg(callee, 2) {
        bt.set_reg(f, 3);
    }
    bt.regs[callee] = 0;
    bt.slots[callee] = 0;
    Ok(())
}

/// If any scalar a jump linked is needed, all of them are (`bt_sync_linked_regs`).
fn sync_linked(bt: &mut Precise, linked: u64) {
    if linked == 0 {
        return;
    }
    let set = LinkedRegs::unpack(linked);
    let needed = |bt: &Precise, l: Loc| match l {
        Loc::Reg { frame, r } => bt.has_reg(frame as usize, r),
        Loc::Slot { frame, slot } => bt.slots[frame as usize] & 1 << slot != 0,
    };
    if !set.iter().any(|l| needed(bt, l)) {
        return;
    }
    for l in set.iter() {
        match l {
            Loc::Reg { frame, r } => bt.set_reg(frame as usize, r),
            Loc::Slot { frame, slot } => bt.slots[frame as usize] |= 1 << slot,
        }
    }
}

/// Carries the needs `bt` (after the instruction) back over `op` (`backtrack_insn`).
/// `frame` is the frame it ran in, `stack` its stack access. `Err(())`: the trail is lost.
fn backtrack(op: &Op, frame: u8, stack: StackUse, bt: &mut Precise) -> Result<(), ()> {
    let f = frame as usize;
    let slots_any = |bt: &Precise, frame: u8, lo: u8, hi: u8| {
        bt.slots[frame as usize] & Precise::slot_range(lo, hi) != 0
    };
    match *op {
        Op::Alu { op, dst, src, .. } => {
            if !bt.has_reg(f, dst) {
                return Ok(());
            }
            if matches!(op, AluOp::Mov | AluOp::MovSx(_)) {
                bt.clear_reg(f, dst);
            }
            if let Operand::Reg(r) = src {
                bt.set_reg(f, r);
            }
        }
        Op::End { .. } | Op::Ja { .. } | Op::MayGoto { .. } => {}
        Op::Jmp { dst, src, .. } => {
            if let Operand::Reg(r) = src {
                if bt.has_reg(f, dst) || bt.has_reg(f, r) {
                    bt.set_reg(f, dst);
                    bt.set_reg(f, r);
                }
            }
        }
        Op::Ldx { dst, .. } => {
            if !bt.has_reg(f, dst) {
                return Ok(());
            }
            bt.clear_reg(f, dst);
            match stack {
                StackUse::None => {}
                StackUse::Slots { frame, lo, hi } => {
                    bt.slots[frame as usize] |= Precise::slot_range(lo, hi);
                }
                StackUse::Unknown(_) => return Err(()),
            }
        }
        Op::St { size, .. } | Op::Stx { size, .. } => {
            let src = match *op {
                Op::Stx { src, .. } => Some(src),
                _ => None,
            };
            let hit = match stack {
                StackUse::None => false,
                StackUse::Slots { frame, lo, hi } => {
                    let hit = slots_any(bt, frame, lo, hi);
                    // A whole-slot store replaces what the slot held.
                    if hit && lo == hi && size == Size::DW {
                        bt.slots[frame as usize] &= !Precise::slot_range(lo, hi);
                    }
                    hit
                }
                StackUse::Unknown(frame) => bt.slots[frame as usize] != 0,
            };
            if let (true, Some(r)) = (hit, src) {
                bt.set_reg(f, r);
            }
        }
        Op::Atomic { dst, src, .. } => {
            let hit = match stack {
                StackUse::Slots { frame, lo, hi } => slots_any(bt, frame, lo, hi),
                StackUse::Unknown(frame) => bt.slots[frame as usize] != 0,
                StackUse::None => false,
            };
            if hit || bt.has_reg(f, src) || bt.has_reg(f, dst) || bt.has_reg(f, 0) {
                match stack {
                    StackUse::Slots { frame, lo, hi } => {
                        bt.slots[frame as usize] |= Precise::slot_range(lo, hi);
                    }
                    StackUse::Unknown(_) => return Err(()),
                    StackUse::None => {}
                }
                bt.set_reg(f, src);
                bt.set_reg(f, 0);
            }
        }
        Op::LdImm64 { dst, .. } => bt.clear_reg(f, dst),
        Op::Call(Call::Local(_)) => {
            // Backwards into the caller: the callee's R1-R5 are the caller's.
            let callee = f + 1;
            if callee < MAX_CALL_FRAMES {
                for r in 1..=5 {
                    if bt.has_reg(callee, r) {
                        bt.set_reg(f, r);
                    }
                }
                bt.regs[callee] = 0;
                bt.slots[callee] = 0;
            }
        }
        Op::Call(_) => {
            for r in 0..=5 {
                bt.clear_reg(f, r);
            }
        }
        Op::Exit => {
            // Backwards into the callee: the caller's R0 is its return value.
            if f > 0 {
                let caller = f - 1;
                if bt.has_reg(caller, 0) {
                    bt.set_reg(f, 0);
                }
                for r in 0..=5 {
                    bt.clear_reg(caller, r);
                }
            }
        }
        Op::LdPacket { .. } => {
            // R0 comes from the packet: nothing to follow back (`backtrack_insn` gives up).
            if bt.has_reg(f, 0) {
                return Err(());
            }
        }
        Op::TailCall(_) => return Err(()),
    }
    Ok(())
}

impl Explorer<'_> {
    /// Records a need for precision at the current instruction (handled after it runs).
    pub(super) fn need_precise(&mut self, st: &VState, r: u8) {
        if st.reg(r).ty == RegType::Scalar {
            let f = st.frames.len() - 1;
            self.prec_req
                .get_or_insert_with(Precise::default)
                .set_reg(f, r);
        }
    }

    /// `mark_chain_precision`: carries the recorded needs back along `p`'s history and its
    /// stored states, marking them.
    pub(super) fn mark_chain_precision(&mut self, p: &Path, mut bt: Precise) {
        if bt.is_empty() {
            return;
        }
        let ops = &self.cfg.ops[..];
        let mut node = p.parent;
        if p.hist.walk(ops, &mut bt, p.pc).is_err() {
            self.states.mark_all_precise(node);
            return;
        }
        while let Some(i) = node {
            if bt.is_empty() {
                return;
            }
            let (marks, hist, parent, pc) = self.states.chain(i);
            if let Some(m) = marks {
                if !m.add(&bt) {
                    // Already there: it was carried further up when it was set.
                    return;
                }
            }
            if hist.walk(ops, &mut bt, pc).is_err() {
                self.states.mark_all_precise(parent);
                return;
            }
            node = parent;
        }
    }
}

/// The base register, offset and size of a memory instruction.
fn mem_operands(op: &Op) -> Option<(u8, i16, Size)> {
    match *op {
        Op::Ldx { src, off, size, .. } => Some((src, off, size)),
        Op::St { dst, off, size, .. }
        | Op::Stx { dst, off, size, .. }
        | Op::Atomic { dst, off, size, .. } => Some((dst, off, size)),
        _ => None,
    }
}

/// The slots of `frame` covering `off .. off + size` from its frame pointer.
fn slots_at(frame: u8, off: i64, size: Size) -> StackUse {
    let lo = off.wrapping_add(512);
    let hi = lo.wrapping_add(size.bytes() as i64 - 1);
    if lo < 0 || hi >= 512 {
        // Rejected by the access check.
        return StackUse::None;
    }
    StackUse::Slots {
        frame,
        lo: (lo / 8) as u8,
        hi: (hi / 8) as u8,
    }
}

/// Where the instruction `op` about to run on `st` touches the stack.
#[inline]
pub(super) fn stack_use(op: &Op, st: &VState) -> StackUse {
    let Some((base, off, size)) = mem_operands(op) else {
        return StackUse::None;
    };
    let p = st.reg(base);
    let RegType::PtrToStack { frame } = p.ty else {
        return StackUse::None;
    };
    let Some(v) = p.var.as_const() else {
        return StackUse::Unknown(frame);
    };
    let off = i64::from(p.off)
        .wrapping_add(v as i64)
        .wrapping_add(i64::from(off));
    slots_at(frame, off, size)
}

/// The stack access of `op` running in `frame` as the instruction alone tells it: through
/// the frame pointer R10, or none. Others are recorded in the history.
fn implied_stack_use(op: &Op, frame: u8) -> StackUse {
    match mem_operands(op) {
        Some((10, off, size)) => slots_at(frame, i64::from(off), size),
        _ => StackUse::None,
    }
}

/// Widens the scalars of `cur` that differ from their imprecise counterparts in `prev`, the
/// state of the previous iteration at the same `may_goto` (`widen_imprecise_scalars`).
pub(super) fn widen_imprecise_scalars(prev: &VState, marks: &Precise, cur: &mut VState) {
    use super::bounds::Scalar;
    for (f, (pf, cf)) in prev.frames.iter().zip(cur.frames.iter_mut()).enumerate() {
        for (r, (pr, cr)) in pf.regs.iter().zip(cf.regs.iter_mut()).enumerate() {
            if pr.ty == RegType::Scalar && cr.ty == RegType::Scalar && !marks.reg(f, r) && pr != cr
            {
                *cr = super::state::Reg::scalar(Scalar::UNKNOWN);
            }
        }
        for s in 0..super::state::STACK_SLOTS {
            if let (Some(pr), Some(cr)) = (pf.stack[s].spill(), cf.stack[s].spill()) {
                if pr.ty == RegType::Scalar
                    && cr.ty == RegType::Scalar
                    && !marks.slot(f, s)
                    && pr != cr
                {
                    cf.stack[s].reg = super::state::Reg::scalar(Scalar::UNKNOWN);
                }
            }
        }
    }
}
