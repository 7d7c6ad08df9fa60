//! Callbacks: `ld_imm64` with `BPF_PSEUDO_FUNC` and the helpers that call a BPF function
//! back (`bpf_loop`), verified as the kernel verifies synchronous callbacks
//! (`check_ld_imm64`'s `PTR_TO_FUNC`, `push_callback_call`, `set_loop_callback_state`,
//! `prepare_func_exit`'s callback branch and the `calls_callback` rules of
//! `is_state_visited` in `kernel/bpf/verifier.c`).
//!
//! The callback may run any number of times, so the helper call is a loop: at the call the
//! path forks into "the loop is over" (R0 an unknown scalar, R1–R5 gone) and "the callback
//! runs once more" — a new frame at the callback's first instruction with R1 the index (an
//! unknown scalar), R2 the caller's R3 (`callback_ctx`), the caller's registers untouched.
//! The callback's `exit` must return a scalar in `[0, 1]` and leads back to the call itself,
//! which forks again. The iteration ends when a state at the call site is already covered:
//! call sites are forced checkpoints, compared even while their exploration is in progress,
//! and each new iteration's imprecise scalars that changed since the previous iteration are
//! widened (`widen_imprecise_scalars`), as for `may_goto`.
//!
//! What the load needs is recorded per call site ([`LoopSite`]): the callback, if every path
//! passed the same one, and whether the flags were always the constant 0 — the kernel's
//! `loop_inline_state`, for [`super::loop_inline`].
//!
//! Unlike the kernel, a `BPF_PSEUDO_FUNC` load needs no BTF function info (kbpf has no BTF).

use super::bounds::Scalar;
use super::calls::forget_frame;
use super::explore::{Explorer, Next, Path};
use super::log::Reject;
use super::state::{Frame, Reg, RegType, VState};
use crate::Errno;
use crate::helpers::ArgKind;
use crate::insn::{Call, Op};
use crate::uapi::{func, pseudo};

/// What the verifier saw at a `bpf_loop` call (`bpf_loop_inline_state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoopSite {
    /// Not a `bpf_loop` call, or no path reached it.
    #[default]
    None,
    /// Every path passed this callback.
    Fixed {
        /// The callback's first instruction.
        callback: u32,
        /// The flags argument was the constant 0 on every path.
        flags_zero: bool,
    },
    /// Paths passed different callbacks.
    Varies,
}

impl LoopSite {
    /// This record after one more path passed `callback` with flags known zero or not.
    fn merge(self, callback: u32, zero: bool) -> LoopSite {
        match self {
            LoopSite::None => LoopSite::Fixed {
                callback,
                flags_zero: zero,
            },
            LoopSite::Fixed {
                callback: c,
                flags_zero,
            } if c == callback => LoopSite::Fixed {
                callback,
                flags_zero: flags_zero && zero,
            },
            _ => LoopSite::Varies,
        }
    }
}

/// Whether `op` calls a helper that calls a BPF callback (`is_sync_callback_calling_insn`).
pub fn is_callback_call(op: &Op) -> bool {
    matches!(op, Op::Call(Call::Helper(func::LOOP)))
}

/// [`is_callback_call`] for a decoded slot of the CFG (`calls_callback`).
pub fn calls_callback(op: &Option<Op>) -> bool {
    op.as_ref().is_some_and(is_callback_call)
}

/// The first instruction of the function a `ld_imm64` with `BPF_PSEUDO_FUNC` at `pc` names
/// (`pc + imm + 1`), or `None` for any other instruction.
pub fn func_target(op: &Op, pc: usize) -> Option<i64> {
    match *op {
        Op::LdImm64 {
            pseudo: pseudo::FUNC,
            imm,
            ..
        } => Some(pc as i64 + 1 + imm as u32 as i32 as i64),
        _ => None,
    }
}

impl Explorer<'_> {
    /// The register a `BPF_PSEUDO_FUNC` load at `pc` gives (`PTR_TO_FUNC`); the CFG check made
    /// sure the target starts a subprogram.
    pub(super) fn func_reg(&self, pc: usize, imm: u64) -> Reg {
        let target = pc as i64 + 1 + imm as u32 as i32 as i64;
        Reg::ptr(RegType::PtrToFunc(target as u32), 0)
    }

    /// A callback argument: the function (`ARG_PTR_TO_FUNC`, unmodified) or its context
    /// (`ARG_PTR_TO_STACK_OR_NULL`).
    pub(super) fn check_callback_arg(
        &self,
        st: &VState,
        pc: usize,
        r: u8,
        kind: ArgKind,
    ) -> Result<(), Reject> {
        let reg = self.read(st, pc, r)?;
        let ok = match kind {
            ArgKind::PtrToFunc => {
                if let RegType::PtrToFunc(_) = reg.ty {
                    super::args::check_ctx_unmodified(pc, r, &reg)?;
                    true
                } else {
                    false
                }
            }
            _ => {
                matches!(reg.ty, RegType::PtrToStack { .. })
                    || reg.ty == RegType::Scalar && reg.var.as_const() == Some(0)
            }
        };
        if ok {
            return Ok(());
        }
        let want = if kind == ArgKind::PtrToFunc {
            "func"
        } else {
            "fp"
        };
        Err(Reject::acces(
            pc,
            format_args!("R{r} type={} expected={want}", reg.ty.name()),
        ))
    }

    /// The state in which the callback of the helper call at `pc` runs once more, taken from
    /// `st` before the call changes it (`push_callback_call` + `set_loop_callback_state`);
    /// `None` when the helper calls no callback or R2 holds no function (the argument check
    /// rejects that). Records the call site for the load. Returns the callback's first
    /// instruction with the state.
    pub(super) fn callback_state(
        &mut self,
        st: &VState,
        pc: usize,
    ) -> Result<Option<(usize, VState)>, Reject> {
        if !calls_callback(&self.cfg.ops[pc]) {
            return Ok(None);
        }
        let RegType::PtrToFunc(target) = st.reg(2).ty else {
            return Ok(None);
        };
        let depth = super::calls::new_frame_depth(st, pc)?;
        let flags = st.reg(4);
        let zero = flags.ty == RegType::Scalar && flags.var.as_const() == Some(0);
        self.loop_sites[pc] = self.loop_sites[pc].merge(target, zero);
        let mut cb = st.clone();
        cb.cur_mut().callback_depth += 1;
        let mut f = Frame::new(depth as u8, self.cfg.subprog_of(target as usize), Some(pc));
        f.regs[1] = Reg::scalar(Scalar::UNKNOWN);
        f.regs[2] = *st.reg(3);
        cb.frames.push(f);
        Ok(Some((target as usize, cb)))
    }

    /// `exit` from a callback's frame: R0 must be a scalar in `[0, 1]` and no reference the
    /// callback took may be held; the path goes back to the call site. `None` when the frame
    /// is no callback's.
    pub(super) fn callback_exit(
        &mut self,
        st: &mut VState,
        pc: usize,
    ) -> Result<Option<Next>, Reject> {
        let Some(site) = st.cur().callsite else {
            return Ok(None);
        };
        if !calls_callback(&self.cfg.ops[site]) {
            return Ok(None);
        }
        let r0 = self.read(st, pc, 0)?;
        if let RegType::PtrToStack { .. } = r0.ty {
            return Err(Reject::new(
                Errno::EINVAL,
                pc,
                "cannot return stack pointer to the caller",
            ));
        }
        if r0.ty != RegType::Scalar {
            return Err(Reject::acces(pc, "R0 not a scalar value"));
        }
        self.need_precise(st, 0);
        if r0.var.smin < 0 || r0.var.smax > 1 {
            let what = match r0.var.as_const() {
                Some(v) => alloc::format!("value {}", v as i64),
                None => alloc::string::String::from("unknown scalar value"),
            };
            return Err(Reject::new(
                Errno::EINVAL,
                pc,
                format_args!(
                    "At callback return the register R0 has {what} should have been in [0, 1]"
                ),
            ));
        }
        let sub = st.cur().subprog;
        if let Some(r) = st.refs.iter().find(|r| self.cfg.subprog_of(r.insn) == sub) {
            return Err(Reject::new(
                Errno::EINVAL,
                pc,
                format_args!("Unreleased reference id={} alloc_insn={}", r.id, r.insn),
            ));
        }
        let callee = st.frames.len() as u8 - 1;
        st.frames.pop();
        forget_frame(st, callee);
        Ok(Some(Next::Goto(site)))
    }

    /// At a callback call site, just stored as a checkpoint: widens the scalars of `p` that
    /// changed since the previous iteration's state there and do not matter
    /// (`widen_imprecise_scalars`), so that the iteration converges.
    pub(super) fn widen_callback_iteration(&self, p: &mut Path) {
        if !calls_callback(&self.cfg.ops[p.pc]) {
            return;
        }
        if let Some((prev, marks)) = self.states.prev_entry(p.parent, p.pc, &p.st) {
            super::precision::widen_imprecise_scalars(prev, marks, &mut p.st);
        }
    }
}
