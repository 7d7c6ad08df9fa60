//! Control-flow checks before path exploration: decoding, subprograms, jump ranges,
//! reachability, back-edges and prune points.
//!
//! Mirrors `add_subprog_and_kfunc`, `check_subprogs` and `check_cfg` (the iterative DFS of
//! `visit_insn`/`push_insn`) of `kernel/bpf/verifier.c`. Every rejection here is `EINVAL`, as
//! in the kernel.

use super::log::Reject;
use crate::Errno;
use crate::insn::{Call, Insn, Op, branch_target, decode};
use alloc::vec;
use alloc::vec::Vec;

/// What the explorer needs to know about the program's shape.
#[derive(Debug)]
pub struct Cfg {
    /// The decoded instruction at each index (`None` for an `ld_imm64`'s second slot).
    pub ops: Vec<Option<Op>>,
    /// Sorted start indices of the subprograms (the first is 0).
    pub subprogs: Vec<usize>,
    /// Instructions where states are compared and stored (jump targets and fall-throughs,
    /// call return sites).
    pub prune_point: Vec<bool>,
    /// Subprograms each subprogram calls (by index into `subprogs`).
    pub callees: Vec<Vec<usize>>,
}

impl Cfg {
    /// The subprogram `pc` belongs to.
    pub fn subprog_of(&self, pc: usize) -> usize {
        match self.subprogs.binary_search(&pc) {
            Ok(i) => i,
            Err(i) => i - 1,
        }
    }
}

/// Decodes and checks the program's control flow. `allow_loops`: back-edges are fine (they
/// are judged by exploration); else each is rejected (the kernel's rule for loaders without
/// `CAP_BPF`).
pub fn check(insns: &[Insn], allow_loops: bool) -> Result<Cfg, Reject> {
    let n = insns.len();
    let mut ops: Vec<Option<Op>> = vec![None; n];
    let mut subprogs = vec![0usize];
    let mut pc = 0;
    while pc < n {
        let op = decode(insns, pc).map_err(|e| Reject::new(Errno::EINVAL, pc, e))?;
        if let Op::Call(Call::Local(_)) = op {
            let t = branch_target(&op, pc).unwrap_or(-1);
            if t < 0 || t as usize >= n {
                return Err(Reject::new(
                    Errno::EINVAL,
                    pc,
                    format_args!("function call to insn {t} is out of range"),
                ));
            }
            subprogs.push(t as usize);
        }
        if let Some(t) = super::callback::func_target(&op, pc) {
            if t < 0 || t as usize >= n {
                return Err(Reject::new(
                    Errno::EINVAL,
                    pc,
                    format_args!("call to invalid destination {t}"),
                ));
            }
            subprogs.push(t as usize);
        }
        ops[pc] = Some(op);
        pc += op.slots();
    }
    subprogs.sort_unstable();
    subprogs.dedup();
    for &s in &subprogs {
        if ops[s].is_none() {
            return Err(Reject::new(
                Errno::EINVAL,
                s,
                format_args!("function starts in the middle of ldimm64 insn {s}"),
            ));
        }
    }

    let mut cfg = Cfg {
        ops,
        callees: vec![Vec::new(); subprogs.len()],
        subprogs,
        prune_point: vec![false; n],
    };
    check_subprogs(&mut cfg, n)?;
    check_abnormal_return(&cfg)?;
    dfs(&mut cfg, allow_loops)?;
    Ok(cfg)
}

/// Jumps stay inside their subprogram and hit a first slot; subprograms end in exit/ja.
fn check_subprogs(cfg: &mut Cfg, n: usize) -> Result<(), Reject> {
    for (i, &start) in cfg.subprogs.iter().enumerate() {
        let end = cfg.subprogs.get(i + 1).copied().unwrap_or(n);
        let mut last = None;
        for pc in start..end {
            let Some(op) = cfg.ops[pc] else { continue };
            last = Some(op);
            let func = super::callback::func_target(&op, pc);
            if let (Op::Call(Call::Local(_)), _) | (_, Some(_)) = (op, func) {
                let t = func.or_else(|| branch_target(&op, pc)).unwrap_or(0) as usize;
                let callee = cfg.subprogs.binary_search(&t).unwrap_or(0);
                if !cfg.callees[i].contains(&callee) {
                    cfg.callees[i].push(callee);
                }
                continue;
            }
            if let Some(t) = branch_target(&op, pc) {
                if t < start as i64 || t >= end as i64 {
                    return Err(Reject::new(
                        Errno::EINVAL,
                        pc,
                        format_args!("jump out of range from insn {pc} to {t}"),
                    ));
                }
                if cfg.ops[t as usize].is_none() {
                    return Err(Reject::new(
                        Errno::EINVAL,
                        pc,
                        format_args!("jump into the middle of ldimm64 insn {t}"),
                    ));
                }
            }
        }
        if !matches!(last, Some(Op::Exit) | Some(Op::Ja { .. })) {
            return Err(Reject::new(
                Errno::EINVAL,
                end - 1,
                "last insn is not an exit or jmp",
            ));
        }
    }
    Ok(())
}

/// A legacy packet load ends the program when it fails: outside the main program that would
/// return from a subprogram, which only a subprogram known (from BTF) to return an `int` may
/// do; kbpf takes no BTF (`check_abnormal_return`, from `check_btf_info`).
///
/// The kernel refuses a tail call in a subprogram without BTF too; kbpf allows it, as the
/// kernel does with BTF (its tail-call scenarios need it).
fn check_abnormal_return(cfg: &Cfg) -> Result<(), Reject> {
    for (i, &start) in cfg.subprogs.iter().enumerate().skip(1) {
        let end = cfg.subprogs.get(i + 1).copied().unwrap_or(cfg.ops.len());
        if let Some(pc) = (start..end).find(|&pc| matches!(cfg.ops[pc], Some(Op::LdPacket { .. })))
        {
            return Err(Reject::new(
                Errno::EINVAL,
                pc,
                "LD_ABS is not allowed in subprogs without BTF",
            ));
        }
    }
    Ok(())
}

/// The successors of `pc` in the CFG (a local call: the callee and the return site).
fn successors(op: &Op, pc: usize) -> ([Option<usize>; 2], bool) {
    let next = pc + op.slots();
    let tgt = branch_target(op, pc).map(|t| t as usize);
    match op {
        Op::Exit => ([None, None], false),
        Op::Ja { .. } => ([tgt, None], false),
        Op::Jmp { .. } | Op::MayGoto { .. } => ([Some(next), tgt], true),
        Op::Call(Call::Local(_)) => ([Some(next), tgt], false),
        _ => (
            [
                Some(next),
                super::callback::func_target(op, pc).map(|t| t as usize),
            ],
            false,
        ),
    }
}

/// Iterative DFS from insn 0: reachability, back-edges, prune points (`check_cfg`).
fn dfs(cfg: &mut Cfg, allow_loops: bool) -> Result<(), Reject> {
    const WHITE: u8 = 0;
    const GREY: u8 = 1;
    const BLACK: u8 = 2;
    let n = cfg.ops.len();
    let mut color = vec![WHITE; n];
    // (pc, index of the next successor to visit)
    let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
    color[0] = GREY;
    while let Some(&mut (pc, ref mut k)) = stack.last_mut() {
        let op = cfg.ops[pc].expect("visited insns are first slots");
        let (succ, cond) = successors(&op, pc);
        if matches!(op, Op::MayGoto { .. }) || super::callback::is_callback_call(&op) {
            cfg.prune_point[pc] = true;
        }
        let mut pushed = None;
        while *k < 2 {
            let i = *k;
            *k += 1;
            let Some(t) = succ[i] else { continue };
            if t >= n {
                return Err(Reject::new(
                    Errno::EINVAL,
                    pc,
                    format_args!("jump out of range from insn {pc} to {t}"),
                ));
            }
            let is_call = matches!(op, Op::Call(Call::Local(_)))
                || super::callback::func_target(&op, pc).is_some();
            if cond || i == 1 || matches!(op, Op::Ja { .. }) || is_call {
                cfg.prune_point[t] = true;
            }
            match color[t] {
                WHITE => {
                    pushed = Some(t);
                    break;
                }
                GREY if !allow_loops => {
                    return Err(Reject::new(
                        Errno::EINVAL,
                        pc,
                        format_args!("back-edge from insn {pc} to {t}"),
                    ));
                }
                _ => {}
            }
        }
        match pushed {
            Some(t) => {
                color[t] = GREY;
                stack.push((t, 0));
            }
            None => {
                color[pc] = BLACK;
                stack.pop();
            }
        }
    }
    for (pc, op) in cfg.ops.iter().enumerate() {
        if op.is_some() && color[pc] != BLACK {
            return Err(Reject::new(
                Errno::EINVAL,
                pc,
                format_args!("unreachable insn {pc}"),
            ));
        }
    }
    Ok(())
}
