//! The verifier: proves a program safe by abstract interpretation before it may run
//! (`bpf_check` in `kernel/bpf/verifier.c`).
//!
//! Pipeline: `cfg` decodes the program and checks its control flow (subprograms, jump
//! ranges, reachability, back-edges), then `explore` walks every path with an abstract
//! register/stack state ([`state`]: scalars as `tnum` + ranges in [`bounds`], pointers
//! with their type and offset), checking each instruction ([`regs`] for ALU and pointer
//! arithmetic, `branch` for conditional jumps, [`mem`] for memory and `stack_access` for the
//! stack, [`calls`] for helpers, BPF-to-BPF calls and exit, with the arguments helpers and
//! kfuncs share in `args`, `ctx` for the per-program-type context rules). Scalars copied from
//! one another share an id so that a branch on one narrows the others (`linked`). A rejection
//! carries the kernel's errno and a log naming the instruction and the reason (`log`).
//!
//! Modes: the default follows the kernel's rules for a loader with `CAP_BPF` but without
//! `CAP_PERFMON` — no pointer leaks into maps, the context, helper scalars or the return
//! value, no pointer subtraction, negation or 32-bit copies, no reads of unwritten stack, no
//! variable-offset stack access, and the Spectre v1 rules for pointer arithmetic
//! (`sanitize`). [`VerifierEnv::privileged`] follows root's (`allow_ptr_leaks`,
//! `allow_uninit_stack`, `bypass_spec_v1`): those become unknown scalars / allowed. The
//! kernel's speculative paths (`sanitize_speculative_path`, nospec barriers) are out of scope.
//!
//! Legacy packet loads are checked in [`ld_abs`], which also rewrites them at load; an array
//! lookup with a constant key in range needs no NULL check (`map_key`). The rules that follow
//! Linux 6.18 check by check are in `docs/kernel-compat.md`.
//!
//! Packet pointers (XDP, TC, cgroup skb) are in [`pkt`]; the context rewrite
//! (`convert_ctx_access`) that follows verification is [`convert`].
//!
//! Sockets, kernel objects from kfuncs and reference tracking are in [`refs`]; kfunc calls
//! in [`kfunc`].
//!
//! The slots some path reached ([`VerifierOutput::seen`]) drive the dead-code rewrites of
//! [`opt`]; [`zext`] finds the 32-bit definitions whose upper half is read and makes their zero
//! extension explicit (or, as a self-test, randomises the others). Both run on the load's
//! patch list.
//!
//! Pruning ([`prune`]) stores states only at some prune points and evicts unhelpful ones;
//! it ignores the values of scalars that are not precise ([`precision`]).
//!
//! Not yet covered (later slices of the verifier issue): liveness (pruning compares dead
//! registers too), Spectre v1 speculative paths, the fixups beyond array-map lookup inlining
//! ([`fixups`]).
//!
//! The main program's return value is checked against its type's range in [`retcode`].

// Public: what other rooms use — the load's rewrite passes (`convert`, `fixups`,
// `loop_inline`, `opt`, `zext`) and the abstract state the verifier's own integration tests inspect (`bounds`,
// `state`). The rest is the verifier's inside.
mod alu;
mod args;
pub mod bounds;
mod branch;
mod callback;
mod calls;
mod cfg;
pub mod convert;
mod ctx;
mod explore;
pub mod fixups;
mod kfunc;
pub mod ld_abs;
mod linked;
mod log;
pub mod loop_inline;
mod map_key;
mod mem;
mod mem_or_null;
pub mod opt;
mod pkt;
mod pkt_changes;
mod precision;
mod prune;
mod refs;
mod regs;
pub mod retcode;
mod sanitize;
mod stack;
mod stack_access;
pub mod state;
mod tnum;
pub mod zext;

use crate::Errno;
use crate::insn::Insn;
use crate::map::MapAttr;
use crate::uapi::limits::{BPF_MAXINSNS, MAX_BPF_STACK};
use crate::uapi::{AttachType, ProgType};
use alloc::string::String;
use alloc::vec::Vec;
use bounds::Scalar;
pub use callback::{LoopSite, func_target as callback_target};
pub use calls::{CallKey, CallMap};
use state::{Frame, Reg, RegType, VState};

/// What the verifier is told about the program besides its instructions.
#[derive(Clone, Copy)]
pub struct VerifierEnv<'a> {
    /// The program type (context rules, helper availability).
    pub prog_type: ProgType,
    /// The map an `ld_imm64` with `src_reg` `BPF_PSEUDO_MAP_FD`/`_VALUE` and immediate `h`
    /// refers to: `maps(h)`, or `None` when there is no such map.
    pub maps: &'a dyn Fn(u32) -> Option<MapAttr>,
    /// For [`ProgType::RawBuffer`]: the size of the buffer the context points to (R2 holds
    /// it on entry).
    pub ctx_size: usize,
    /// Root's rules instead of the default (`CAP_BPF` without `CAP_PERFMON`).
    pub privileged: bool,
    /// Back-edges are judged by exploration (bounded loops accepted); `false` refuses every
    /// back-edge, as the kernel does for loaders without `CAP_BPF`.
    pub allow_loops: bool,
    /// The load's `expected_attach_type` (`None` is 0): it sets the range of the main
    /// program's return value for some types (`check_return_code`).
    pub expected_attach_type: Option<AttachType>,
}

fn no_maps(_: u32) -> Option<MapAttr> {
    None
}

impl VerifierEnv<'static> {
    /// Default mode, no maps, context size 0, loops allowed.
    pub fn new(prog_type: ProgType) -> Self {
        VerifierEnv {
            prog_type,
            maps: &no_maps,
            ctx_size: 0,
            privileged: false,
            allow_loops: true,
            expected_attach_type: None,
        }
    }
}

impl core::fmt::Debug for VerifierEnv<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VerifierEnv")
            .field("prog_type", &self.prog_type)
            .field("ctx_size", &self.ctx_size)
            .field("privileged", &self.privileged)
            .field("allow_loops", &self.allow_loops)
            .field("expected_attach_type", &self.expected_attach_type)
            .finish_non_exhaustive()
    }
}

/// A rejection: the errno and the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// The kernel's errno for this rejection.
    pub errno: Errno,
    /// The instruction the rejection is about, when there is one.
    pub insn: Option<usize>,
    /// The verifier log (the reason line, then the summary).
    pub log: String,
}

impl core::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}: {}", self.errno, self.log.trim_end())
    }
}

/// What a successful verification found.
#[derive(Clone, Debug)]
pub struct VerifierOutput {
    /// Instructions processed over all paths.
    pub insn_processed: usize,
    /// States stored for pruning.
    pub total_states: usize,
    /// Start instruction of each subprogram.
    pub subprogs: Vec<usize>,
    /// Stack bytes each subprogram uses (deepest access).
    pub stack_depth: Vec<u32>,
    /// Per instruction slot: whether some explored path reached it (`insn_aux_data.seen`); the
    /// rest is dead code for [`opt`].
    pub seen: Vec<bool>,
    /// Per instruction slot: the context field a load or store accesses, for
    /// [`convert::convert_ctx_access`] (`bpf_insn_aux_data` for `PTR_TO_CTX`).
    pub ctx_access: Vec<Option<convert::CtxAccessInfo>>,
    /// Per instruction slot: the map a helper call's R1 held on every path, for
    /// [`fixups::do_misc_fixups`] (`bpf_insn_aux_data.map_ptr_state`) and the tail-call sites.
    pub call_map: Vec<CallMap>,
    /// Per instruction slot: the key a tail call's R3 held on every path
    /// (`bpf_insn_aux_data.map_key_state`).
    pub call_key: Vec<CallKey>,
    /// Per instruction slot: what a `bpf_loop` call saw, for [`loop_inline`]
    /// (`bpf_insn_aux_data.loop_inline_state`).
    pub loop_sites: Vec<LoopSite>,
    /// The verifier log (the summary line).
    pub log: String,
}

/// Verifies `insns` under `env`.
pub fn verify(insns: &[Insn], env: &VerifierEnv<'_>) -> Result<VerifierOutput, VerifyError> {
    let mut logbuf = String::new();
    let fail = |r: log::Reject, processed: usize, states: usize| {
        let mut l = String::new();
        log::write_reject(&mut l, &r);
        log::write_summary(&mut l, processed, states);
        VerifyError {
            errno: r.errno,
            insn: Some(r.insn),
            log: l,
        }
    };
    if insns.is_empty() {
        return Err(VerifyError {
            errno: Errno::EINVAL,
            insn: None,
            log: String::from("empty program\n"),
        });
    }
    if insns.len() > BPF_MAXINSNS {
        let mut l = String::new();
        let _ = core::fmt::Write::write_fmt(
            &mut l,
            format_args!(
                "program is too large: {} insns, limit is {}\n",
                insns.len(),
                BPF_MAXINSNS
            ),
        );
        return Err(VerifyError {
            errno: Errno::E2BIG,
            insn: None,
            log: l,
        });
    }
    let cfg = cfg::check(insns, env.allow_loops).map_err(|r| fail(r, 0, 0))?;
    let mut ex = explore::Explorer::new(insns, &cfg, env);
    let mut main = Frame::new(0, 0, None);
    main.regs[1] = Reg::ptr(RegType::PtrToCtx, 0);
    if env.prog_type == ProgType::RawBuffer {
        main.regs[2] = Reg::scalar(Scalar::konst(env.ctx_size as u64));
    }
    let entry = VState {
        frames: alloc::vec![main],
        refs: Vec::new(),
    };
    ex.run(entry)
        .map_err(|r| fail(r, ex.processed, ex.total_states()))?;
    check_max_stack_depth(&cfg, &ex.stack_depth)
        .map_err(|r| fail(r, ex.processed, ex.total_states()))?;
    log::write_summary(&mut logbuf, ex.processed, ex.total_states());
    Ok(VerifierOutput {
        insn_processed: ex.processed,
        total_states: ex.total_states(),
        subprogs: cfg.subprogs.clone(),
        stack_depth: ex.stack_depth.clone(),
        seen: core::mem::take(&mut ex.seen),
        ctx_access: ex.mem_aux.iter().map(|a| a.ctx()).collect(),
        call_map: core::mem::take(&mut ex.call_map),
        call_key: core::mem::take(&mut ex.call_key),
        loop_sites: core::mem::take(&mut ex.loop_sites),
        log: logbuf,
    })
}

/// The combined stack of every call chain fits in 512 bytes, each frame rounded up to 32
/// bytes (`check_max_stack_depth`).
fn check_max_stack_depth(cfg: &cfg::Cfg, depth: &[u32]) -> Result<(), log::Reject> {
    let round = |d: u32| d.max(1).div_ceil(32) * 32;
    // (subprog, frames deep, bytes so far)
    let mut stack: Vec<(usize, usize, u32)> = alloc::vec![(0, 1, round(depth[0]))];
    while let Some((s, n, total)) = stack.pop() {
        if total as usize > MAX_BPF_STACK {
            return Err(log::Reject::acces(
                cfg.subprogs[s],
                format_args!("combined stack size of {n} calls is {total}. Too large"),
            ));
        }
        if n >= crate::uapi::limits::MAX_CALL_FRAMES {
            continue;
        }
        for &c in &cfg.callees[s] {
            stack.push((c, n + 1, total + round(depth[c])));
        }
    }
    Ok(())
}
