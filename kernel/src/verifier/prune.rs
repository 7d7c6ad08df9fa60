//! The stored states and the pruning decision (`is_state_visited`, `update_branch_counts`
//! and the `explored_states` lists of `kernel/bpf/verifier.c`).
//!
//! At a prune point the current state is compared with the states stored there:
//! - a stored state whose exploration is complete and that [`VState::subsumes`] the current
//!   one prunes the path (everything it can do was verified);
//! - a stored state still being explored (an ancestor of this path: a loop) that equals the
//!   current one exactly means the loop makes no progress: "infinite loop detected";
//! - at a `may_goto` or a callback call site, any stored state that subsumes the current one
//!   prunes it, complete or not: the hidden run-time budget bounds the `may_goto` loop (the
//!   kernel's rule in spirit), and the callback's iterations are all covered once one repeats.
//!
//! Not every visit stores a state, as in the kernel: a new one only when at least 2 jumps and
//! 8 instructions were processed since the last one stored (20 jumps or 100 instructions when
//! the path is in a loop, so that iterations don't each leave a state), except at a forced
//! checkpoint (`may_goto`), which always stores. Each stored state counts the visits it
//! pruned (`hit_cnt`) and the ones it did not (`miss_cnt`, counted only on visits that store);
//! one that misses more than `3 × hits + 3` times (64 for a forced checkpoint still being
//! explored) is evicted: no longer compared, its memory freed. At most
//! [`MAX_STATES_PER_INSN`] states are compared and kept per instruction (pruning gets weaker
//! past that, never unsound).
//!
//! Completion is tracked like the kernel's `branches` counter: a stored state counts the
//! live paths below it and is complete when that drops to zero. An evicted state stays in
//! that chain (its count still tells its ancestors when they are complete).

use super::explore::{Explorer, Path};
use super::log::Reject;
use super::precision::{History, Precise};
use super::state::VState;
use crate::Errno;
use crate::insn::Op;

/// Stored states per instruction.
pub const MAX_STATES_PER_INSN: usize = 64;

/// One stored state (`struct bpf_verifier_state_list`).
pub(super) struct Checkpoint {
    /// The state; `None` once evicted.
    state: Option<VState>,
    /// The stored state this one's path came from.
    parent: Option<usize>,
    /// Live paths below this state (`branches`).
    branches: u32,
    /// Visits this state pruned (`hit_cnt`).
    hit: u32,
    /// Visits that stored a new state instead (`miss_cnt`).
    miss: u32,
    /// The instruction it was stored at.
    pc: usize,
    /// Its precision marks.
    marks: Precise,
    /// The jump history from the parent's state to this one.
    hist: History,
}

/// The stored states, per instruction (`explored_states`), and the counters deciding when
/// to store a new one.
#[derive(Default)]
pub(super) struct States {
    ckpts: alloc::vec::Vec<Checkpoint>,
    at: alloc::vec::Vec<alloc::vec::Vec<usize>>,
    /// Jump-class instructions processed (`jmps_processed`).
    pub jmps_processed: usize,
    prev_jmps: usize,
    prev_insns: usize,
    /// States currently kept for comparison (`peak_states` is the largest this gets).
    live: usize,
    /// The largest number of states kept at once (`peak_states`).
    pub peak: usize,
}

impl States {
    /// Room for a program of `n` instruction slots.
    pub fn new(n: usize) -> States {
        States {
            at: alloc::vec![alloc::vec::Vec::new(); n],
            ..States::default()
        }
    }

    /// States stored so far (`total_states`).
    pub fn total(&self) -> usize {
        self.ckpts.len()
    }

    /// A path below `parent` forked: one more live path below it and its ancestors' count
    /// is unchanged (they already count this path).
    pub fn fork(&mut self, parent: Option<usize>) {
        if let Some(i) = parent {
            self.ckpts[i].branches += 1;
        }
    }

    /// Stored state `i`'s marks (`None` once evicted), the history leading to it, its parent
    /// and the instruction it was stored at.
    pub fn chain(&mut self, i: usize) -> (Option<&mut Precise>, &History, Option<usize>, usize) {
        let c = &mut self.ckpts[i];
        let marks = if c.state.is_some() {
            Some(&mut c.marks)
        } else {
            None
        };
        (marks, &c.hist, c.parent, c.pc)
    }

    /// `mark_all_scalars_precise` for state `node` and its ancestors.
    pub fn mark_all_precise(&mut self, mut node: Option<usize>) {
        while let Some(i) = node {
            let c = &mut self.ckpts[i];
            if c.marks.all {
                return;
            }
            c.marks.all = true;
            node = c.parent;
        }
    }

    /// The state of an earlier iteration at `pc`: the nearest proper ancestor of `node` (the
    /// state just stored at `pc`) stored at `pc` with the same call stack
    /// (`find_prev_entry`), and its marks.
    pub fn prev_entry(
        &self,
        node: Option<usize>,
        pc: usize,
        cur: &VState,
    ) -> Option<(&VState, &Precise)> {
        let mut node = self.ckpts[node?].parent;
        for _ in 0..64 {
            let c = &self.ckpts[node?];
            if let (true, Some(st)) = (c.pc == pc, &c.state) {
                let same = st.frames.len() == cur.frames.len()
                    && st
                        .frames
                        .iter()
                        .zip(&cur.frames)
                        .all(|(a, b)| a.callsite == b.callsite);
                if same {
                    return Some((st, &c.marks));
                }
            }
            node = c.parent;
        }
        None
    }

    /// A path whose latest stored state is `node` ended (`update_branch_counts`).
    pub fn path_done(&mut self, mut node: Option<usize>) {
        while let Some(i) = node {
            let c = &mut self.ckpts[i];
            c.branches -= 1;
            if c.branches > 0 {
                break;
            }
            node = c.parent;
        }
    }
}

impl Explorer<'_> {
    /// `is_state_visited`: `Ok(true)` prunes the path. Otherwise the current state may be
    /// stored, becoming the path's latest stored state.
    pub(super) fn visited(&mut self, p: &mut Path) -> Result<bool, Reject> {
        // A callback call site is a loop head like `may_goto` ([`super::callback`]).
        let may_goto = matches!(self.cfg.ops[p.pc], Some(Op::MayGoto { .. }))
            || super::callback::calls_callback(&self.cfg.ops[p.pc]);
        let exact = self.explore_alu_limits;
        // Forced: `may_goto`, and long histories (the kernel's bound on the jump history).
        let force = may_goto || p.hist.insns >= 512;
        let processed = self.processed;
        let s = &mut self.states;
        let mut add =
            force || (s.jmps_processed - s.prev_jmps >= 2 && processed - s.prev_insns >= 8);
        let mut k = 0;
        let mut hit = None;
        while k < s.at[p.pc].len() {
            let i = s.at[p.pc][k];
            let c = &mut s.ckpts[i];
            let old = c.state.as_ref().expect("listed states are kept");
            if c.branches == 0 && old.subsumes_prec(&p.st, &c.marks, exact) {
                hit = Some(Precise::restrict(&c.marks, &p.st));
            } else if may_goto && old.subsumes(&p.st) {
                // Still being explored: its marks are incomplete, so it was compared with
                // every scalar precise, and every scalar of this path matters.
                hit = Some(Precise::scalars_of(&p.st));
            }
            if hit.is_some() {
                c.hit += 1;
                break;
            }
            if c.branches > 0 {
                if *old == p.st {
                    return Err(Reject::new(
                        Errno::EINVAL,
                        p.pc,
                        format_args!("infinite loop detected at insn {}", p.pc),
                    ));
                }
                // In a loop: keep states of only some iterations.
                if !force && s.jmps_processed - s.prev_jmps < 20 && processed - s.prev_insns < 100 {
                    add = false;
                }
            }
            if add {
                c.miss += 1;
            }
            let n = if force && c.branches > 0 { 64 } else { 3 };
            if c.miss > c.hit * n + n {
                // Unlikely to prune anything: stop comparing with it and free it.
                c.state = None;
                s.at[p.pc].swap_remove(k);
                s.live -= 1;
                continue;
            }
            k += 1;
        }
        if let Some(need) = hit {
            // `propagate_precision`: what made the stored state safe matters here too.
            self.mark_chain_precision(p, need);
            return Ok(true);
        }
        let s = &mut self.states;
        if !add || s.at[p.pc].len() >= MAX_STATES_PER_INSN {
            return Ok(false);
        }
        s.ckpts.push(Checkpoint {
            state: Some(p.st.clone()),
            parent: p.parent,
            branches: 1,
            hit: 0,
            miss: 0,
            pc: p.pc,
            marks: Precise::default(),
            hist: p.hist.take(),
        });
        let i = s.ckpts.len() - 1;
        s.at[p.pc].push(i);
        s.live += 1;
        s.peak = s.peak.max(s.live);
        s.prev_jmps = s.jmps_processed;
        s.prev_insns = processed;
        p.parent = Some(i);
        self.widen_callback_iteration(p);
        Ok(false)
    }
}
