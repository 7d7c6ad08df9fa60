//! Linearize: the list back into an instruction array, with every jump, call, aux entry,
//! subprogram start, function-info and line-info entry carried over.
//!
//! One entry point for both layers, as the RFC review asked (the RFC had
//! `bpf_linearize_list_insn()` for the core layer and `verifier_linearize_list_insn()` for the
//! verifier); the verifier-only parts are the optional [`VerifierEnv`]. The Linux work it
//! replaces is the sum of `bpf_adj_branches()` and `bpf_adj_linfo()` (`kernel/bpf/core.c`) and
//! `adjust_insn_aux_data()`, `adjust_subprog_starts()`, `adjust_subprog_starts_after_remove()`,
//! `bpf_adj_linfo_after_remove()` and `adjust_btf_func()` (`kernel/bpf/verifier.c`) over all
//! patches of all passes.

use alloc::vec;
use alloc::vec::Vec;

use super::list::{NIL, Node, PatchList};
use super::{FuncInfo, LineInfo, jump};
use crate::insn::Insn;
use crate::{Errno, Result};

/// The verifier's side tables that [`PatchList::linearize`] carries over (the `env` argument).
pub struct VerifierEnv<'a, A> {
    /// Output: the aux data of every final instruction, in order.
    pub aux: &'a mut Vec<A>,
    /// Subprogram starts: original indices in, strictly increasing; final indices out, with the
    /// subprograms whose instructions were all deleted dropped.
    pub subprog_starts: &'a mut Vec<u32>,
    /// One entry per subprogram, or empty. Out: the surviving subprograms' entries with
    /// `insn_off` set to their final start.
    pub func_info: &'a mut Vec<FuncInfo>,
}

impl<A: Clone> PatchList<A> {
    /// Produces the final instruction array and remaps `line_info` (original indices in,
    /// strictly increasing; final indices out) and, when given, the verifier's `env`.
    ///
    /// Errors, with nothing written and the list unchanged: `ERANGE` if a jump distance does not
    /// fit its field; `EINVAL` if a jump has no live instruction left to land on or lands on the
    /// second slot of an `ld_imm64`, an `ld_imm64` is no longer a whole pair, or a side table
    /// is malformed (unsorted, out of range, `func_info` not one per subprogram).
    pub fn linearize(
        &self,
        line_info: &mut Vec<LineInfo>,
        env: Option<VerifierEnv<'_, A>>,
    ) -> Result<Vec<Insn>> {
        let live = self.live;
        let end = live;
        // Final index of every node, stored complemented so that "not assigned yet" is 0 and
        // the table can come zeroed from the allocator (no fill pass over it).
        let mut idx = vec![0u32; self.nodes.len()];
        let mut out = Vec::with_capacity(live as usize);
        let mut jumps: Vec<(u32, u32)> = Vec::new();
        let mut aux_out = env.as_ref().map(|_| Vec::with_capacity(live as usize));
        let mut at = self.head;
        let mut k = 0u32;
        // Whether the previous slot was an `ld_imm64`'s first: the pair check of
        // `check_pairs`, done on the way.
        let mut want_tail = false;
        while at != NIL {
            let n = &self.nodes[at as usize];
            let tail = jump::is_ld_imm64_tail(&n.insn);
            if tail != want_tail {
                return Err(Errno::EINVAL);
            }
            want_tail = !tail && n.insn.is_ld_imm64();
            idx[at as usize] = !k;
            out.push(n.insn);
            if n.target != NIL {
                jumps.push((k, n.target));
            }
            if let Some(a) = aux_out.as_mut() {
                a.push(self.aux[at as usize].clone());
            }
            k += 1;
            at = n.next;
        }
        if want_tail {
            return Err(Errno::EINVAL);
        }
        if self.nodes.len() != live as usize {
            resolve_deleted(&self.nodes, &mut idx, end);
        }

        for &(k, t) in &jumps {
            let ti = !idx[t as usize];
            if ti == end || jump::is_ld_imm64_tail(&out[ti as usize]) {
                return Err(Errno::EINVAL);
            }
            let insn = &mut out[k as usize];
            let f = jump::field(insn).ok_or(Errno::EINVAL)?;
            jump::set_distance(insn, f, ti as i64 - k as i64 - 1)?;
        }

        let lines = self.remap_line_info(line_info, &idx, end)?;
        let verifier = match &env {
            Some(e) => Some(self.remap_subprogs(e.subprog_starts, e.func_info, &idx, end)?),
            None => None,
        };

        *line_info = lines;
        if let (Some(e), Some((starts, funcs))) = (env, verifier) {
            *e.subprog_starts = starts;
            *e.func_info = funcs;
            *e.aux = aux_out.unwrap_or_default();
        }
        Ok(out)
    }

    /// Line info: each entry moves with its instruction; the last of entries landing on one
    /// instruction wins; entries past the end are dropped; the first survivor starts at 0.
    fn remap_line_info(&self, lines: &[LineInfo], idx: &[u32], end: u32) -> Result<Vec<LineInfo>> {
        check_increasing(lines.iter().map(|l| l.insn_off), self.orig_len)?;
        let mut out: Vec<LineInfo> = Vec::with_capacity(lines.len());
        for l in lines {
            let to = !idx[l.insn_off as usize];
            if to == end {
                continue;
            }
            let entry = LineInfo { insn_off: to, ..*l };
            match out.last_mut() {
                Some(last) if last.insn_off == to => *last = entry,
                _ => out.push(entry),
            }
        }
        if let Some(first) = out.first_mut() {
            first.insn_off = 0;
        }
        Ok(out)
    }

    /// Subprogram starts and function info: a subprogram survives while some instruction of it
    /// does; the first survivor starts at 0.
    fn remap_subprogs(
        &self,
        starts: &[u32],
        funcs: &[FuncInfo],
        idx: &[u32],
        end: u32,
    ) -> Result<(Vec<u32>, Vec<FuncInfo>)> {
        check_increasing(starts.iter().copied(), self.orig_len)?;
        if !funcs.is_empty() && funcs.len() != starts.len() {
            return Err(Errno::EINVAL);
        }
        let mut new_starts = Vec::with_capacity(starts.len());
        let mut new_funcs = Vec::with_capacity(funcs.len());
        for (k, &s) in starts.iter().enumerate() {
            let from = !idx[s as usize];
            let to = starts.get(k + 1).map_or(end, |&n| !idx[n as usize]);
            if from >= to {
                continue;
            }
            let start = if new_starts.is_empty() { 0 } else { from };
            new_starts.push(start);
            if let Some(f) = funcs.get(k) {
                new_funcs.push(FuncInfo {
                    insn_off: start,
                    type_id: f.type_id,
                });
            }
        }
        Ok((new_starts, new_funcs))
    }
}

/// Gives every deleted node the final index of the next live instruction (`end` if none), by
/// following the `next` links deleted nodes keep; each node is walked once. `idx` holds
/// complemented indices, 0 for "not assigned yet".
fn resolve_deleted(nodes: &[Node], idx: &mut [u32], end: u32) {
    let mut chain = Vec::new();
    for x in 0..nodes.len() {
        if idx[x] != 0 {
            continue;
        }
        let mut y = x as u32;
        let v = loop {
            if y == NIL {
                break end;
            }
            if idx[y as usize] != 0 {
                break !idx[y as usize];
            }
            chain.push(y);
            y = nodes[y as usize].next;
        };
        for c in chain.drain(..) {
            idx[c as usize] = !v;
        }
    }
}

/// `EINVAL` unless the values are strictly increasing and below `len`.
fn check_increasing(vals: impl Iterator<Item = u32>, len: u32) -> Result<()> {
    let mut prev: Option<u32> = None;
    for v in vals {
        if v >= len || prev.is_some_and(|p| p >= v) {
            return Err(Errno::EINVAL);
        }
        prev = Some(v);
    }
    Ok(())
}
