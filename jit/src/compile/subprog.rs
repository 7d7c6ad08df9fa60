//! Subprogram boundaries and the static call-depth check (Linux `add_subprog`,
//! `check_subprogs` and `check_max_stack_depth` in `kernel/bpf/verifier.c`).
//!
//! Each BPF-to-BPF callee becomes a native function with its own frame, so the JIT needs the
//! subprogram ranges, every jump to stay inside its subprogram, and a call graph without
//! recursion whose deepest chain has at most `MAX_CALL_FRAMES` frames — the interpreter instead
//! faults at run time on the ninth frame; a program the JIT refuses here still runs there.

use alloc::vec;
use alloc::vec::Vec;
use kbpf::Errno;
use kbpf::insn::{Call, Op, branch_target};
use kbpf::uapi::limits::MAX_CALL_FRAMES;

/// Subprogram layout of a program.
#[derive(Clone, Debug)]
pub struct Subprogs {
    /// First instruction of each subprogram, ascending; `starts[0] == 0`.
    pub starts: Vec<usize>,
    /// For every instruction slot, the index of the subprogram containing it.
    pub of: Vec<u32>,
}

impl Subprogs {
    /// The subprogram index starting at `pc`.
    pub fn index_of_start(&self, pc: usize) -> Option<usize> {
        self.starts.binary_search(&pc).ok()
    }

    /// The instruction range of subprogram `k`.
    pub fn range(&self, k: usize) -> core::ops::Range<usize> {
        self.starts[k]..self.starts.get(k + 1).copied().unwrap_or(self.of.len())
    }
}

/// Finds the subprograms of `ops` (one entry per slot; `None` for an `ld_imm64`'s second
/// slot), checks that jumps stay inside their subprogram and the call depth.
pub fn analyze(ops: &[Option<Op>]) -> Result<Subprogs, Errno> {
    let n = ops.len();
    let mut starts = vec![0usize];
    for (pc, op) in ops.iter().enumerate() {
        if let Some(op @ Op::Call(Call::Local(_))) = op {
            let t = target(op, pc, n)?;
            starts.push(t);
        }
    }
    starts.sort_unstable();
    starts.dedup();
    let mut of = vec![0u32; n];
    for (k, w) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(n);
        for slot in &mut of[*w..end] {
            *slot = k as u32;
        }
    }
    let subs = Subprogs { starts, of };
    let mut callees: Vec<Vec<usize>> = vec![Vec::new(); subs.starts.len()];
    for (pc, op) in ops.iter().enumerate() {
        let Some(op) = op else { continue };
        match op {
            Op::Call(Call::Local(_)) => {
                let t = target(op, pc, n)?;
                let k = subs.index_of_start(t).ok_or(Errno::EINVAL)?;
                callees[subs.of[pc] as usize].push(k);
            }
            Op::Ja { .. } | Op::Jmp { .. } | Op::MayGoto { .. } => {
                let t = target(op, pc, n)?;
                if subs.of[t] != subs.of[pc] || ops[t].is_none() {
                    return Err(Errno::EINVAL);
                }
            }
            _ => {}
        }
    }
    let mut state = vec![0u8; subs.starts.len()]; // 0 new, 1 on the path, 2 done
    let mut depth = vec![0usize; subs.starts.len()];
    frames(0, 1, &callees, &mut state, &mut depth)?;
    Ok(subs)
}

fn target(op: &Op, pc: usize, n: usize) -> Result<usize, Errno> {
    match branch_target(op, pc) {
        Some(t) if t >= 0 && (t as usize) < n => Ok(t as usize),
        _ => Err(Errno::EINVAL),
    }
}

/// Frames needed by the deepest call chain from `k` (1 = no calls); recursion is `EINVAL`,
/// more than `MAX_CALL_FRAMES` is `E2BIG`.
fn frames(
    k: usize,
    level: usize,
    callees: &[Vec<usize>],
    state: &mut [u8],
    depth: &mut [usize],
) -> Result<usize, Errno> {
    if level > MAX_CALL_FRAMES {
        return Err(Errno::E2BIG);
    }
    match state[k] {
        1 => return Err(Errno::EINVAL),
        2 => return Ok(depth[k]),
        _ => {}
    }
    state[k] = 1;
    let mut deepest = 0;
    for &c in &callees[k] {
        deepest = deepest.max(frames(c, level + 1, callees, state, depth)?);
    }
    let d = deepest + 1;
    if level - 1 + d > MAX_CALL_FRAMES {
        return Err(Errno::E2BIG);
    }
    state[k] = 2;
    depth[k] = d;
    Ok(d)
}
