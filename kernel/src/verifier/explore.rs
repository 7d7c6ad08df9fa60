//! Depth-first path exploration with state pruning (`do_check`, `is_state_visited`,
//! `push_stack`/`pop_stack`, `update_branch_counts` of `kernel/bpf/verifier.c`).
//!
//! One path runs until it exits, is pruned or is rejected; each undecided conditional jump
//! pushes the other direction on a stack of pending paths (explored last-in first-out).
//! At prune points (jump targets, fall-throughs of conditional jumps, call return sites) the
//! state is compared with the states already stored there ([`super::prune`]). A bounded loop
//! is explored iteration by iteration until it exits; an unbounded one ends in the loop check
//! or the 1M processed-instruction limit (`E2BIG`).

use super::VerifierEnv;
use super::bounds::Scalar;
use super::branch;
use super::cfg::Cfg;
use super::ctx::CtxOps;
use super::linked::{LinkedRegs, Loc, collect_linked_regs, sync_linked_regs};
use super::log::Reject;
use super::mem::{Access, AtomicInsn, Kind, Stored};
use super::precision::{self, History, Precise};
use super::state::{Reg, RegType, VState};
use crate::Errno;
use crate::insn::{Insn, Op, Operand};
use alloc::vec;
use alloc::vec::Vec;

/// Processed-instruction limit (`BPF_COMPLEXITY_LIMIT_INSNS`).
pub const COMPLEXITY_LIMIT: usize = 1_000_000;

/// Paths waiting to be explored at once (`BPF_COMPLEXITY_LIMIT_JMP_SEQ`): past it the program
/// is refused, so an untrusted program cannot make the verifier's memory grow without limit.
pub const COMPLEXITY_LIMIT_JMP_SEQ: usize = 8192;

/// One path being explored.
pub(super) struct Path {
    pub pc: usize,
    pub st: VState,
    pub parent: Option<usize>,
    /// The jump history since `parent` was stored.
    pub hist: History,
}

/// A conditional jump's operands (`BPF_JMP`/`BPF_JMP32` with a condition).
#[derive(Clone, Copy, Debug)]
pub(super) struct JmpInsn {
    /// The instruction.
    pub pc: usize,
    /// 64-bit comparison (`JMP`), else the low halves (`JMP32`).
    pub wide: bool,
    /// The condition.
    pub cond: crate::insn::Cond,
    /// The compared register.
    pub dst: u8,
    /// What it is compared with.
    pub src: Operand,
    /// The jump distance.
    pub off: i16,
}

impl JmpInsn {
    /// The instruction after the jump.
    pub fn fall(&self) -> usize {
        self.pc + 1
    }

    /// The jump's target.
    pub fn target(&self) -> usize {
        (self.pc as i64 + 1 + self.off as i64) as usize
    }
}

/// What executing one instruction did to the path.
pub(super) enum Next {
    /// Continue at this instruction.
    Goto(usize),
    /// Continue at the first; also explore the second later.
    Fork(usize, usize, VState),
    /// The path ended (exit from the main frame, or an impossible direction).
    End,
}

/// The exploration engine; the per-instruction checks live in sibling modules.
pub(super) struct Explorer<'a> {
    pub cfg: &'a Cfg,
    pub env: &'a VerifierEnv<'a>,
    pub ctx: CtxOps,
    pub(super) states: super::prune::States,
    pending: Vec<Path>,
    /// Precision needed at the instruction being checked, if any ([`super::precision`]).
    pub(super) prec_req: Option<Precise>,
    /// Instructions processed so far.
    pub processed: usize,
    /// Next id for `_OR_NULL` pointers.
    pub next_id: u32,
    /// Deepest stack access of each subprogram, in bytes.
    pub stack_depth: Vec<u32>,
    /// Per slot: some path reached it (`insn_aux_data.seen`; both slots of an `ld_imm64`).
    pub seen: Vec<bool>,
    /// Per instruction: the kind of pointer its memory access went through, and for a
    /// context access what it touched (for `convert_ctx_access`).
    pub mem_aux: Vec<super::convert::MemAux>,
    /// Per instruction: the map a helper call saw in R1 over every path (`map_ptr_state`).
    pub call_map: Vec<super::calls::CallMap>,
    /// Per instruction: the key a tail call saw in R3 over every path (`map_key_state`).
    pub call_key: Vec<super::calls::CallKey>,
    /// Per instruction: what a `bpf_loop` call saw over every path ([`super::callback`]).
    pub loop_sites: Vec<super::callback::LoopSite>,
    /// The scalars the jump being checked linked, packed for the jump history (0: none).
    pub(super) jmp_linked: u64,
    /// Pointer arithmetic with an unknown offset was seen in the default mode: pruning compares
    /// scalars exactly, so that paths needing different masks are all explored
    /// (`explore_alu_limits`, see [`super::sanitize`]).
    pub(super) explore_alu_limits: bool,
    /// Per instruction: the Spectre v1 mask state and limit of its pointer arithmetic
    /// (`bpf_insn_aux_data.alu_state`/`alu_limit`).
    pub(super) alu_aux: Vec<(u32, u32)>,
}

impl<'a> Explorer<'a> {
    pub fn new(insns: &'a [Insn], cfg: &'a Cfg, env: &'a VerifierEnv<'a>) -> Self {
        Explorer {
            cfg,
            env,
            ctx: CtxOps::for_type(env.prog_type, env.ctx_size),
            states: super::prune::States::new(insns.len()),
            pending: Vec::new(),
            prec_req: None,
            processed: 0,
            next_id: 1,
            stack_depth: vec![0; cfg.subprogs.len()],
            seen: vec![false; insns.len()],
            mem_aux: vec![super::convert::MemAux::Unseen; insns.len()],
            call_map: vec![super::calls::CallMap::None; insns.len()],
            call_key: vec![super::calls::CallKey::None; insns.len()],
            loop_sites: vec![super::callback::LoopSite::None; insns.len()],
            jmp_linked: 0,
            explore_alu_limits: false,
            alu_aux: vec![(0, 0); insns.len()],
        }
    }

    /// `sanitize_mark_insn_seen`: marks the slot(s) of the instruction `op` at `pc`.
    fn mark_seen(&mut self, pc: usize, op: &Op) {
        self.seen[pc] = true;
        if op.slots() == 2 {
            // The second slot of an `ld_imm64` is in the program (the CFG check).
            if let Some(s) = self.seen.get_mut(pc + 1) {
                *s = true;
            }
        }
    }

    /// Number of states stored.
    pub fn total_states(&self) -> usize {
        self.states.total()
    }

    /// Explores every path from the entry state.
    pub fn run(&mut self, entry: VState) -> Result<(), Reject> {
        let mut cur = Some(Path {
            pc: 0,
            st: entry,
            parent: None,
            hist: History::default(),
        });
        while let Some(mut p) = cur.take().or_else(|| self.pending.pop()) {
            loop {
                self.processed += 1;
                if self.processed > COMPLEXITY_LIMIT {
                    return Err(Reject::new(
                        Errno::E2BIG,
                        p.pc,
                        format_args!(
                            "BPF program is too large. Processed {} insn",
                            self.processed
                        ),
                    ));
                }
                if self.cfg.prune_point[p.pc] && self.visited(&mut p)? {
                    break;
                }
                let cfg = self.cfg;
                let op = cfg.ops[p.pc]
                    .as_ref()
                    .expect("paths only reach first slots");
                self.mark_seen(p.pc, op);
                if let Op::Ja { .. }
                | Op::Jmp { .. }
                | Op::MayGoto { .. }
                | Op::Call(_)
                | Op::Exit = *op
                {
                    self.states.jmps_processed += 1;
                }
                self.needs_before(op, &p.st);
                let frame = (p.st.frames.len() - 1) as u8;
                let stack = precision::stack_use(op, &p.st);
                let next = self.step(&mut p.st, p.pc, op)?;
                if let Some(need) = self.prec_req.take() {
                    self.mark_chain_precision(&p, need);
                }
                let frame_after = (p.st.frames.len() - 1) as u8;
                let linked = core::mem::take(&mut self.jmp_linked);
                p.hist.record(p.pc, op, frame, frame_after, stack, linked);
                match next {
                    Next::Goto(pc) => p.pc = pc,
                    Next::Fork(pc, other, st) => {
                        self.states.fork(p.parent);
                        // A callback call's other path is in the callback's frame.
                        let hist = p.hist.with_frame((st.frames.len() - 1) as u8);
                        self.pending.push(Path {
                            pc: other,
                            st,
                            parent: p.parent,
                            hist,
                        });
                        if self.pending.len() > COMPLEXITY_LIMIT_JMP_SEQ {
                            // `push_stack`: the paths waiting to be explored are bounded.
                            return Err(Reject::new(
                                Errno::E2BIG,
                                p.pc,
                                format_args!(
                                    "The sequence of {} jumps is too complex.",
                                    self.pending.len()
                                ),
                            ));
                        }
                        if let Op::MayGoto { .. } = *op {
                            // The loop body goes on: forget what changed since the last
                            // iteration and does not matter, so that the loop converges.
                            if let Some((prev, marks)) =
                                self.states.prev_entry(p.parent, p.pc, &p.st)
                            {
                                precision::widen_imprecise_scalars(prev, marks, &mut p.st);
                            }
                        }
                        p.pc = pc;
                    }
                    Next::End => break,
                }
            }
            self.states.path_done(p.parent);
        }
        Ok(())
    }

    /// The precision the instruction `op` needs before it runs on `st`: a scalar added to a
    /// pointer (`adjust_reg_min_max_vals`), scalar arguments of helpers and kfuncs (the
    /// kernel marks the size arguments; all of them here), the main program's return value
    /// where its range is checked (`check_return_code`).
    fn needs_before(&mut self, op: &Op, st: &VState) {
        match *op {
            Op::Alu {
                op: alu_op,
                dst,
                src: Operand::Reg(r),
                ..
            } if !matches!(
                alu_op,
                crate::insn::AluOp::Mov | crate::insn::AluOp::MovSx(_)
            ) =>
            {
                let (a, b) = (st.reg(dst).ty, st.reg(r).ty);
                if a.is_pointer() {
                    self.need_precise(st, r);
                }
                if b.is_pointer() {
                    self.need_precise(st, dst);
                }
            }
            Op::Call(crate::insn::Call::Helper(_) | crate::insn::Call::Kfunc(_)) => {
                for r in 1..=5 {
                    self.need_precise(st, r);
                }
            }
            // Only types whose return value is range-checked need it (`check_return_code`
            // marks it for those alone): a TC or XDP verdict, say, may stay imprecise, which
            // is what lets loops whose count ends up in R0 converge.
            Op::Exit if st.frames.len() == 1 && super::retcode::env_range(self.env).is_some() => {
                self.need_precise(st, 0)
            }
            _ => {}
        }
    }

    /// Reads a register as a source operand (`check_reg_arg(SRC_OP)`).
    pub fn read(&self, st: &VState, pc: usize, r: u8) -> Result<Reg, Reject> {
        let reg = *st.reg(r);
        if reg.ty == RegType::NotInit {
            return Err(Reject::acces(pc, format_args!("R{r} !read_ok")));
        }
        Ok(reg)
    }

    /// Checks that `r` may be written (`check_reg_arg(DST_OP)`).
    pub fn check_dst(&self, pc: usize, r: u8) -> Result<(), Reject> {
        if r == 10 {
            return Err(Reject::acces(pc, "frame pointer is read only"));
        }
        Ok(())
    }

    /// The value of an operand: a register (must be initialized) or the immediate.
    pub fn operand(&self, st: &VState, pc: usize, src: Operand) -> Result<Reg, Reject> {
        match src {
            Operand::Reg(r) => self.read(st, pc, r),
            Operand::Imm(i) => Ok(Reg::scalar(Scalar::konst(i as i64 as u64))),
        }
    }

    /// A fresh id for an `_OR_NULL` pointer.
    pub fn new_id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// Executes the instruction `op` at `pc` on `st`.
    fn step(&mut self, st: &mut VState, pc: usize, op: &Op) -> Result<Next, Reject> {
        let next = pc + op.slots();
        match *op {
            Op::Alu { wide, op, dst, src } => self.check_alu(st, pc, wide, op, dst, src)?,
            Op::End { kind, bits, dst } => {
                self.check_dst(pc, dst)?;
                let a = self.read(st, pc, dst)?;
                if a.ty != RegType::Scalar {
                    return Err(Reject::acces(
                        pc,
                        format_args!("R{dst} pointer arithmetic prohibited"),
                    ));
                }
                *st.reg_mut(dst) = Reg::scalar(super::alu::end(kind, bits, &a.var));
            }
            Op::Ja { off } => return Ok(Next::Goto((next as i64 + off as i64) as usize)),
            Op::Jmp {
                wide,
                cond,
                dst,
                src,
                off,
            } => {
                let j = JmpInsn {
                    pc,
                    wide,
                    cond,
                    dst,
                    src,
                    off,
                };
                return self.check_jmp(st, &j);
            }
            Op::MayGoto { off } => {
                let t = (next as i64 + off as i64) as usize;
                return Ok(Next::Fork(next, t, st.clone()));
            }
            Op::Call(c) => return self.check_call(st, pc, c),
            Op::TailCall(_) => {
                return Err(Reject::new(
                    Errno::EINVAL,
                    pc,
                    format_args!("unknown opcode {:02x}", crate::insn::TAIL_CALL_CODE),
                ));
            }
            Op::Exit => return self.check_exit(st, pc),
            Op::Ldx {
                size,
                sign,
                dst,
                src,
                off,
            } => {
                let kind = Kind::Read { sign, into: true };
                self.check_ldx(st, &Access::new(pc, src, off, size, kind), dst)?;
            }
            Op::St {
                size,
                dst,
                off,
                imm,
            } => {
                let kind = Kind::Write(Stored::Imm(imm));
                self.mem_access(st, &Access::new(pc, dst, off, size, kind))?;
            }
            Op::Stx {
                size,
                dst,
                src,
                off,
            } => {
                let val = self.read(st, pc, src)?;
                let kind = Kind::Write(Stored::Reg { regno: src, val });
                self.mem_access(st, &Access::new(pc, dst, off, size, kind))?;
            }
            Op::Atomic {
                size,
                op,
                dst,
                src,
                off,
            } => {
                let size = size.bytes();
                let a = AtomicInsn {
                    size,
                    op,
                    dst,
                    src,
                    off,
                };
                self.check_atomic(st, pc, a)?;
            }
            Op::LdImm64 { dst, pseudo, imm } => self.check_ld_imm64(st, pc, dst, pseudo, imm)?,
            Op::LdPacket { indirect, src, .. } => {
                self.check_ld_abs(st, pc, indirect.then_some(src))?;
            }
        }
        Ok(Next::Goto(next))
    }

    /// Conditional jumps (`check_cond_jmp_op`).
    fn check_jmp(&mut self, st: &mut VState, j: &JmpInsn) -> Result<Next, Reject> {
        use crate::insn::Cond;
        let JmpInsn {
            pc,
            wide,
            cond,
            dst,
            src,
            ..
        } = *j;
        let (fall, target) = (j.fall(), j.target());
        let a = self.read(st, pc, dst)?;
        let b = self.operand(st, pc, src)?;
        if let Some(next) = self.try_match_pkt_pointers(st, j, &a, &b)? {
            return Ok(next);
        }
        if let Operand::Reg(r) = src {
            if b.ty.is_pointer() && !self.env.privileged {
                return Err(Reject::acces(
                    pc,
                    format_args!("R{r} pointer comparison prohibited"),
                ));
            }
        }
        let is_zero = b.ty == RegType::Scalar && b.var.as_const() == Some(0);
        if a.ty.is_pointer() {
            if !matches!(cond, Cond::Eq | Cond::Ne) || !is_zero || !wide {
                if !self.env.privileged {
                    return Err(Reject::acces(
                        pc,
                        format_args!("R{dst} pointer comparison prohibited"),
                    ));
                }
                return Ok(Next::Fork(fall, target, st.clone()));
            }
            // `ptr == 0` / `ptr != 0`.
            let (null_pc, nonnull_pc) = if cond == Cond::Eq {
                (target, fall)
            } else {
                (fall, target)
            };
            if super::refs::or_null_base(a.ty).is_none() {
                return Ok(Next::Goto(nonnull_pc));
            }
            let mut null = st.clone();
            super::refs::mark_ptr_or_null_regs(&mut null, a.id, a.ref_obj_id, true);
            super::refs::mark_ptr_or_null_regs(st, a.id, a.ref_obj_id, false);
            return Ok(Next::Fork(nonnull_pc, null_pc, null));
        }
        if b.ty.is_pointer() {
            // Privileged scalar-vs-pointer comparison: nothing learned.
            return Ok(Next::Fork(fall, target, st.clone()));
        }
        let decided = branch::outcome(&a.var, &b.var, cond, wide);
        if decided.is_some() {
            // The bounds decided the direction: they matter (`check_cond_jmp_op`).
            self.need_precise(st, dst);
            if let Operand::Reg(r) = src {
                self.need_precise(st, r);
            }
        }
        match decided {
            Some(true) => return Ok(Next::Goto(target)),
            Some(false) => return Ok(Next::Goto(fall)),
            None => {}
        }
        // The scalars linked to either operand learn what the branch teaches it
        // (`collect_linked_regs` before the paths part, `sync_linked_regs` on each).
        let mut linked = LinkedRegs::default();
        if matches!(src, Operand::Reg(_)) && b.ty == RegType::Scalar && b.id != 0 {
            collect_linked_regs(st, b.id, &mut linked);
        }
        if a.ty == RegType::Scalar && a.id != 0 {
            collect_linked_regs(st, a.id, &mut linked);
        }
        if linked.len() > 1 {
            self.jmp_linked = linked.pack();
        }
        let frame = (st.frames.len() - 1) as u8;
        let taken = branch::refine(&a.var, &b.var, cond, wide, true);
        let not_taken = branch::refine(&a.var, &b.var, cond, wide, false);
        let apply = |st: &mut VState, (x, y): (Scalar, Scalar)| {
            st.reg_mut(dst).var = x;
            if let Operand::Reg(r) = src {
                if r != dst {
                    st.reg_mut(r).var = y;
                }
                sync_linked_regs(st, Loc::Reg { frame, r }, &linked);
            }
            sync_linked_regs(st, Loc::Reg { frame, r: dst }, &linked);
        };
        match (taken, not_taken) {
            (Some(t), Some(f)) => {
                let mut other = st.clone();
                apply(&mut other, t);
                apply(st, f);
                Ok(Next::Fork(fall, target, other))
            }
            (Some(t), None) => {
                apply(st, t);
                Ok(Next::Goto(target))
            }
            (None, Some(f)) => {
                apply(st, f);
                Ok(Next::Goto(fall))
            }
            (None, None) => Ok(Next::End),
        }
    }
}
