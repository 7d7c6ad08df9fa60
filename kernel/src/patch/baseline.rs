//! The kernel's one-at-a-time patcher, for tests and benchmarks only (hidden from the docs; the
//! load path uses [`super::PatchList`]).
//!
//! Written from the semantics of Linux's `bpf_patch_insn_single()`, `bpf_adj_branches()`,
//! `bpf_adj_delta_to_off()`/`_imm()`, `bpf_adj_linfo()` and `bpf_remove_insns()`
//! (`kernel/bpf/core.c`), and `bpf_patch_insn_data()`, `adjust_insn_aux_data()`,
//! `adjust_subprog_starts()`, `verifier_remove_insns()`, `adjust_subprog_starts_after_remove()`,
//! `bpf_adj_linfo_after_remove()` and `adjust_btf_func()` (`kernel/bpf/verifier.c`). Each patch
//! moves the program's tail and walks every instruction twice (a probe pass on the unpatched
//! image, so an overflow leaves the program unchanged, then the real pass): O(n) per patch.
//!
//! Where generic aux data meets the kernel's: new slots get `A::default()` (the kernel zeroes
//! them, then copies `seen` and recomputes `zext_dst`), and the original's aux entry moves to
//! the **last** slot of its patch, as the kernel's memmove leaves it. The list patcher keeps it on
//! the first. [`insert_before`] is not a kernel function: it is the array model of the list's
//! insert-before rule, so that rule can be checked the same way.

use alloc::vec::Vec;

use super::jump::{self, Field};
use super::{FuncInfo, LineInfo};
use crate::insn::Insn;
use crate::{Errno, Result};

/// A program and the verifier's side tables, as arrays.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArrayProg<A> {
    /// Instruction slots.
    pub insns: Vec<Insn>,
    /// Aux data per slot (`env->insn_aux_data`).
    pub aux: Vec<A>,
    /// Subprogram starts, without the kernel's fake "exit" entry.
    pub subprog_starts: Vec<u32>,
    /// One entry per subprogram, or empty.
    pub func_info: Vec<FuncInfo>,
    /// Line info, sorted by `insn_off`.
    pub line_info: Vec<LineInfo>,
}

/// `bpf_adj_delta_to_off()` / `_imm()`: the distance of the jump at `curr` (new numbering)
/// after the patch that turned `[pos, end_old)` into `[pos, end_new)`.
fn adj_delta(insn: &Insn, f: Field, curr: i64, pos: i64, end_old: i64, end_new: i64) -> i64 {
    let delta = end_new - end_old;
    let d = jump::distance(insn, f);
    if curr < pos && curr + d + 1 >= end_old {
        d + delta
    } else if curr >= end_new && curr + d + 1 < end_new {
        d - delta
    } else {
        d
    }
}

/// `bpf_adj_branches()`. With `probe`, `insns` is the unpatched image: nothing is written, only
/// the range is checked (`ERANGE`), with the instructions after the patch numbered as they
/// will be. Without, `insns` is the patched image and every crossing jump is rewritten.
pub fn adj_branches(
    insns: &mut [Insn],
    pos: u32,
    end_old: u32,
    end_new: u32,
    probe: bool,
) -> Result<()> {
    let (pos, end_old, end_new) = (pos as i64, end_old as i64, end_new as i64);
    for (o, insn) in insns.iter_mut().enumerate() {
        let curr = if probe {
            if (pos..end_old).contains(&(o as i64)) {
                continue;
            }
            if (o as i64) < pos {
                o as i64
            } else {
                o as i64 - end_old + end_new
            }
        } else {
            o as i64
        };
        let Some(f) = jump::field(insn) else {
            continue;
        };
        let d = adj_delta(insn, f, curr, pos, end_old, end_new);
        let mut tmp = *insn;
        jump::set_distance(&mut tmp, f, d)?;
        if !probe {
            *insn = tmp;
        }
    }
    Ok(())
}

/// `bpf_adj_linfo()`: entries after `off` move by `delta`.
fn adj_linfo(line_info: &mut [LineInfo], off: u32, delta: u32) {
    for l in line_info.iter_mut().filter(|l| l.insn_off > off) {
        l.insn_off += delta;
    }
}

/// `bpf_patch_insn_single()`: replaces slot `off` by `patch` (core layer: instructions and line
/// info). `EINVAL` for a bad position or an empty patch, `ERANGE` (nothing changed) if a jump
/// would no longer fit.
pub fn patch_insn_single(
    insns: &mut Vec<Insn>,
    line_info: &mut [LineInfo],
    off: u32,
    patch: &[Insn],
) -> Result<()> {
    let o = off as usize;
    if o >= insns.len() || patch.is_empty() {
        return Err(Errno::EINVAL);
    }
    if patch.len() == 1 {
        insns[o] = patch[0];
        return Ok(());
    }
    let end_old = off + 1;
    let end_new = off + patch.len() as u32;
    adj_branches(insns, off, end_old, end_new, true)?;
    insns.splice(o..o + 1, patch.iter().copied());
    adj_branches(insns, off, end_old, end_new, false)?;
    adj_linfo(line_info, off, patch.len() as u32 - 1);
    Ok(())
}

impl<A: Default> ArrayProg<A> {
    /// `bpf_patch_insn_data()`: [`patch_insn_single`] plus aux data and subprogram starts.
    pub fn patch_insn_data(&mut self, off: u32, patch: &[Insn]) -> Result<()> {
        patch_insn_single(&mut self.insns, &mut self.line_info, off, patch)?;
        let cnt = patch.len() as u32;
        if cnt > 1 {
            // adjust_insn_aux_data(): the original entry ends up on the patch's last slot.
            let o = off as usize;
            self.aux
                .splice(o..o, (1..cnt).map(|_| A::default()))
                .for_each(drop);
            // adjust_subprog_starts()
            for s in self.subprog_starts.iter_mut().filter(|s| **s > off) {
                *s += cnt - 1;
            }
            self.sync_func_info();
        }
        Ok(())
    }

    /// `verifier_remove_insns()`: removes slots `[off, off + cnt)`.
    pub fn remove_insns(&mut self, off: u32, cnt: u32) -> Result<()> {
        let old_len = self.insns.len() as u32;
        if cnt == 0 || off.checked_add(cnt).is_none_or(|e| e > old_len) {
            return Err(Errno::EINVAL);
        }
        let (o, e) = (off as usize, (off + cnt) as usize);
        // bpf_remove_insns(): shrinking cannot overflow a jump, so no probe pass.
        self.insns.drain(o..e);
        adj_branches(&mut self.insns, off, off + cnt, off, false)?;
        self.subprog_starts_after_remove(off, cnt, old_len);
        self.linfo_after_remove(off, cnt);
        self.aux.drain(o..e);
        self.sync_func_info();
        Ok(())
    }

    /// `adjust_subprog_starts_after_remove()`: drops the subprograms (and their function info)
    /// that started inside the range and ended with it, moves the rest.
    fn subprog_starts_after_remove(&mut self, off: u32, cnt: u32, old_len: u32) {
        let n = self.subprog_starts.len();
        let mut s = self.subprog_starts.clone();
        s.push(old_len); // the fake "exit" subprogram
        let mut i = 0;
        while i < n && s[i] < off {
            i += 1;
        }
        let mut j = i as i64;
        while (j as usize) < n && s[j as usize] < off + cnt {
            j += 1;
        }
        if s[j as usize] != off + cnt {
            j -= 1;
        }
        if j > i as i64 {
            let j = j as usize;
            s.drain(i..j);
            if !self.func_info.is_empty() {
                self.func_info.drain(i..j);
            }
        } else if s[i] == off {
            i += 1;
        }
        for v in &mut s[i..] {
            *v -= cnt;
        }
        s.pop();
        self.subprog_starts = s;
    }

    /// `bpf_adj_linfo_after_remove()`: drops the entries of removed instructions, except that
    /// the last of them moves to the first instruction after the range if that one has none.
    fn linfo_after_remove(&mut self, off: u32, cnt: u32) {
        let new_len = self.insns.len() as u32;
        let li = &mut self.line_info;
        let nr = li.len();
        let l_off = li.iter().position(|l| l.insn_off >= off).unwrap_or(nr);
        let mut i = l_off;
        while i < nr && li[i].insn_off < off + cnt {
            i += 1;
        }
        let mut l_cnt = i - l_off;
        if new_len != off && l_cnt > 0 && (i == nr || li[i].insn_off != off + cnt) {
            l_cnt -= 1;
            li[i - 1].insn_off = off + cnt;
        }
        li.drain(l_off..l_off + l_cnt);
        for l in &mut li[l_off..] {
            l.insn_off -= cnt;
        }
    }

    /// `adjust_btf_func()`: function info follows the subprogram starts.
    fn sync_func_info(&mut self) {
        for (f, &s) in self.func_info.iter_mut().zip(&self.subprog_starts) {
            f.insn_off = s;
        }
    }

    /// kbpf's insert-before rule in array form (no kernel counterpart): inserts `buf` before
    /// slot `pos`; jumps, calls, subprogram starts and line info naming `pos` follow the old
    /// instruction. Jumps in `buf` are final-layout (buffer-relative) already. `ERANGE` leaves
    /// everything unchanged. Inserting at 0 leaves no subprogram or line info at 0 until
    /// [`ArrayProg::entry_at_zero`], the list's final step, is applied.
    pub fn insert_before(&mut self, pos: u32, buf: &[Insn]) -> Result<()> {
        let p = pos as usize;
        if p >= self.insns.len() || buf.is_empty() || jump::is_ld_imm64_tail(&self.insns[p]) {
            return Err(Errno::EINVAL);
        }
        let n = buf.len() as i64;
        let moved = |i: i64| if i < pos as i64 { i } else { i + n };
        for write in [false, true] {
            for o in 0..self.insns.len() {
                let insn = &mut self.insns[o];
                let Some(f) = jump::field(insn) else {
                    continue;
                };
                let t = o as i64 + 1 + jump::distance(insn, f);
                let mut tmp = *insn;
                jump::set_distance(&mut tmp, f, moved(t) - moved(o as i64) - 1)?;
                if write {
                    *insn = tmp;
                }
            }
        }
        self.insns.splice(p..p, buf.iter().copied());
        self.aux
            .splice(p..p, buf.iter().map(|_| A::default()))
            .for_each(drop);
        let n = buf.len() as u32;
        for s in self.subprog_starts.iter_mut().filter(|s| **s >= pos) {
            *s += n;
        }
        for l in self.line_info.iter_mut().filter(|l| l.insn_off >= pos) {
            l.insn_off += n;
        }
        self.sync_func_info();
        Ok(())
    }

    /// The list's last rule in array form: the first subprogram and the first line-info entry
    /// start at 0 (a no-op after kernel operations alone, which keep them there).
    pub fn entry_at_zero(&mut self) {
        if let Some(s) = self.subprog_starts.first_mut() {
            *s = 0;
        }
        if let Some(l) = self.line_info.first_mut() {
            l.insn_off = 0;
        }
        self.sync_func_info();
    }
}
