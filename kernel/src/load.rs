//! Program loading (`bpf_prog_load` in `kernel/bpf/syscall.c`, the structural parts of
//! `bpf_check`, `resolve_pseudo_ldimm64`, `do_misc_fixups`, `bpf_prog_select_runtime`).
//!
//! Every program first passes the structural gate: it rejects unknown opcodes and non-zero
//! reserved fields, bad registers, writes to the read-only frame pointer R10, jumps out of
//! range or into the second half of an `ld_imm64`, subprograms that fall off their end, and
//! calls to helpers the program type does not offer — all with `EINVAL` and a log line naming
//! the instruction, as the kernel does — and resolves its map references. Then the verifier
//! ([`crate::verifier`], `bpf_check`) proves it safe; a rejection returns the verifier's errno
//! with its log. A program that verifies but calls a helper or kfunc whose run-time side kbpf
//! does not have yet is then refused with `ENOTSUPP` and a log naming the function (see
//! `check_runtime`). Only the explicitly named trusted path ([`Verification::Trusted`], like the
//! kernel's `lib/test_bpf.c`, which runs programs without the verifier) skips that step.
//! Afterwards the load rewrites `call bpf_tail_call` into the tail-call instruction, inlines
//! array-map lookups whose map the verifier saw fixed when a JIT is requested
//! ([`crate::verifier::fixups`]), selects
//! the runtime and checks prog_array compatibility (after runtime selection, since "jited" is
//! only known then).

use crate::helpers::func_proto;
use crate::insn::{AtomicOp, Call, Insn, Op, TAIL_CALL_CODE, branch_target, decode};
use crate::interp::InterpImage;
use crate::map::{Map, MapImpl};
use crate::patch::PatchList;
use crate::prog::{Prog, ProgOwner};
use crate::sync::Arc;
use crate::uapi::limits::BPF_MAXINSNS;
use crate::uapi::{AttachType, ProgFlags, ProgType, func, pseudo};
use crate::verifier::convert::{CtxAccessInfo, convert_ctx_access};
use crate::verifier::fixups::{ArrayLayout, do_misc_fixups};
use crate::verifier::zext::{ZextMode, is_cmpxchg32, opt_subreg_zext_lo32_rnd_hi32, zext_dst};
use crate::verifier::{CallMap, LoopSite, loop_inline};
use crate::verifier::{VerifierEnv, verify};
use crate::{Errno, Result};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// What `prog_load` is asked for (`union bpf_attr` for `BPF_PROG_LOAD`).
#[derive(Clone, Copy, Debug)]
pub struct ProgLoadAttr<'a> {
    /// The program type.
    pub prog_type: ProgType,
    /// The instructions.
    pub insns: &'a [Insn],
    /// The attach type the program is loaded for, if the type needs one.
    pub expected_attach_type: Option<AttachType>,
    /// Load flags.
    pub flags: ProgFlags,
    /// Name (at most 15 characters: alphanumerics, `_` and `.`).
    pub name: &'a str,
    /// Blind the program's constants (see [`crate::blind`]); also on for every program while
    /// [`crate::blind::set_global`] is set, like the kernel's `bpf_jit_harden`.
    pub blind: bool,
    /// For [`ProgType::RawBuffer`]: the length of the buffer the program will run on (R2 holds
    /// it on entry). The verifier judges memory accesses against it and
    /// [`crate::syscall::prog_test_run`] refuses a buffer of any other length. `None` is a
    /// program that runs on an empty buffer. Other program types must leave it `None`.
    pub ctx_size: Option<u32>,
    /// Verify with root's rules (`allow_ptr_leaks`, `allow_uninit_stack`) instead of the
    /// default ones of a loader with `CAP_BPF` but without `CAP_PERFMON`.
    pub privileged: bool,
    /// Insert explicit zero extensions after 32-bit definitions whose upper half is read
    /// ([`crate::verifier::zext`]); `None` asks the registered JIT
    /// ([`crate::jit::needs_zext`], the kernel's `bpf_jit_needs_zext()`).
    pub needs_zext: Option<bool>,
}

impl<'a> ProgLoadAttr<'a> {
    /// A load of `insns` as `prog_type` with no flags, no attach type and no name.
    pub fn new(prog_type: ProgType, insns: &'a [Insn]) -> Self {
        ProgLoadAttr {
            prog_type,
            insns,
            expected_attach_type: None,
            flags: ProgFlags::empty(),
            name: "",
            blind: false,
            ctx_size: None,
            privileged: false,
            needs_zext: None,
        }
    }

    /// The same load with zero extension forced on or off (see [`ProgLoadAttr::needs_zext`]).
    pub fn with_needs_zext(self, needs_zext: bool) -> Self {
        ProgLoadAttr {
            needs_zext: Some(needs_zext),
            ..self
        }
    }

    /// The same load for a raw buffer of `len` bytes (see [`ProgLoadAttr::ctx_size`]).
    pub fn with_ctx_size(self, len: u32) -> Self {
        ProgLoadAttr {
            ctx_size: Some(len),
            ..self
        }
    }

    /// The same load verified with root's rules (see [`ProgLoadAttr::privileged`]).
    pub fn with_privileged(self, privileged: bool) -> Self {
        ProgLoadAttr { privileged, ..self }
    }

    /// The same load with expected attach type `attach`.
    pub fn with_attach_type(self, attach: AttachType) -> Self {
        ProgLoadAttr {
            expected_attach_type: Some(attach),
            ..self
        }
    }

    /// The same load named `name`.
    pub fn with_name(self, name: &'a str) -> Self {
        ProgLoadAttr { name, ..self }
    }
}

/// What a `BPF_PSEUDO_FUNC` load leaves in its register, or'ed with the callback's first
/// instruction: a non-zero value (the verifier treats the register as a non-NULL pointer)
/// that looks like no address.
pub const FUNC_TOKEN: u64 = 0xfeed_0000_0000_0000;

/// Whether a load runs the verifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The verifier proves the program safe before it may run (`bpf_prog_load`).
    Verify,
    /// The in-kernel trusted path, like `lib/test_bpf.c`: the structural gate only, for
    /// programs whose safety the caller vouches for. Never reachable from untrusted input.
    Trusted,
}

/// Fails with `EINVAL` and a log line.
fn reject(log: &mut String, msg: core::fmt::Arguments<'_>) -> Errno {
    let _ = log.write_fmt(msg);
    log.push('\n');
    Errno::EINVAL
}

/// Whether `op` writes the frame pointer.
fn writes_r10(op: &Op) -> bool {
    match *op {
        Op::Alu { dst, .. }
        | Op::End { dst, .. }
        | Op::Ldx { dst, .. }
        | Op::LdImm64 { dst, .. } => dst == 10,
        Op::Atomic {
            op: AtomicOp::LoadAcquire,
            dst,
            ..
        } => dst == 10,
        Op::Atomic { op, src, .. } => {
            src == 10
                && matches!(
                    op,
                    AtomicOp::Add { fetch: true }
                        | AtomicOp::Or { fetch: true }
                        | AtomicOp::And { fetch: true }
                        | AtomicOp::Xor { fetch: true }
                        | AtomicOp::Xchg
                )
        }
        _ => false,
    }
}

/// A function a verified program calls whose run-time side kbpf does not have yet: the load
/// refuses the program with `ENOTSUPP`; [`prog_verify`] reports it beside the verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeGap {
    /// A helper (its id and name without `bpf_`).
    Helper {
        /// `BPF_FUNC_*`.
        id: i32,
        /// The name without the `bpf_` prefix.
        name: &'static str,
    },
    /// A kfunc, by name.
    Kfunc {
        /// The kernel function's name.
        name: &'static str,
    },
}

impl core::fmt::Display for RuntimeGap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RuntimeGap::Helper { id, name } => write!(
                f,
                "helper bpf_{name}#{id} has no run-time implementation in kbpf yet"
            ),
            RuntimeGap::Kfunc { name } => write!(
                f,
                "kernel function {name} has no run-time implementation in kbpf yet"
            ),
        }
    }
}

/// What [`load_or_verify`] produced.
enum Loaded {
    /// The loaded program.
    Prog(Arc<Prog>),
    /// Verification only: the program verified; `Some` names a function it calls that kbpf
    /// cannot run yet.
    Verified(Option<RuntimeGap>),
}

/// Loads a program. `resolve_map` turns a map handle from an `ld_imm64` into the map;
/// `mode` says whether the verifier runs.
pub(crate) fn prog_load(
    attr: &ProgLoadAttr<'_>,
    resolve_map: &dyn Fn(u32) -> Result<Arc<Map>>,
    log: &mut String,
    mode: Verification,
) -> Result<Arc<Prog>> {
    match load_or_verify(attr, resolve_map, log, mode, false)? {
        Loaded::Prog(p) => Ok(p),
        Loaded::Verified(_) => unreachable!("a load that does not stop returns the program"),
    }
}

/// The load's checks and the verifier, stopping before anything is built: `Ok` when the
/// program verifies, with the function it calls that kbpf cannot run yet, if any (the load
/// would refuse it with `ENOTSUPP`). A rejection is the load's errno and log.
pub(crate) fn prog_verify(
    attr: &ProgLoadAttr<'_>,
    resolve_map: &dyn Fn(u32) -> Result<Arc<Map>>,
    log: &mut String,
) -> Result<Option<RuntimeGap>> {
    match load_or_verify(attr, resolve_map, log, Verification::Verify, true)? {
        Loaded::Verified(gap) => Ok(gap),
        Loaded::Prog(_) => unreachable!("a load that stops returns no program"),
    }
}

/// [`prog_load`] and [`prog_verify`]: `stop` ends after the verifier and the run-time check.
fn load_or_verify(
    attr: &ProgLoadAttr<'_>,
    resolve_map: &dyn Fn(u32) -> Result<Arc<Map>>,
    log: &mut String,
    mode: Verification,
    stop: bool,
) -> Result<Loaded> {
    let insns = attr.insns;
    if insns.is_empty() {
        return Err(reject(log, format_args!("empty program")));
    }
    if insns.len() > BPF_MAXINSNS {
        let _ = writeln!(
            log,
            "program has {} insns, limit is {}",
            insns.len(),
            BPF_MAXINSNS
        );
        return Err(Errno::E2BIG);
    }
    if attr.prog_type == ProgType::Unspec {
        return Err(reject(log, format_args!("unknown program type")));
    }
    if attr.name.len() > 15
        || !attr
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        return Err(reject(log, format_args!("invalid program name")));
    }
    // `bpf_prog_load_check_attach`: sk_lookup programs must say they are for sk_lookup.
    if attr.prog_type == ProgType::SkLookup
        && attr.expected_attach_type != Some(AttachType::SkLookup)
    {
        return Err(reject(
            log,
            format_args!("sk_lookup programs need expected_attach_type sk_lookup"),
        ));
    }
    if attr.ctx_size.is_some() && attr.prog_type != ProgType::RawBuffer {
        return Err(reject(
            log,
            format_args!("ctx_size is only for raw_buffer programs"),
        ));
    }

    // Pass 1: decode, per-instruction rules, map references, subprogram starts.
    // What the fix-up pass will rewrite: (slot, replacement) for single slots.
    let mut fixups: Vec<(usize, Insn)> = Vec::new();
    let mut ops: Vec<(usize, Op)> = Vec::new();
    let mut second_half = alloc::vec![false; insns.len()];
    let mut subprog_starts: Vec<usize> = alloc::vec![0];
    let mut used_maps: Vec<Arc<Map>> = Vec::new();
    // Map handle → index in `used_maps`: the maps this load resolved, for the fix-ups.
    let mut handles: Vec<(u32, usize)> = Vec::new();
    let mut pc = 0;
    while pc < insns.len() {
        let op = decode(insns, pc).map_err(|e| reject(log, format_args!("insn {pc}: {e}")))?;
        if op == Op::TailCall {
            return Err(reject(
                log,
                format_args!("insn {pc}: unknown opcode {TAIL_CALL_CODE:#04x}"),
            ));
        }
        if writes_r10(&op) {
            return Err(reject(
                log,
                format_args!("insn {pc}: frame pointer is read only"),
            ));
        }
        match op {
            // Whether the type offers a helper is the verifier's to say (in its words), or
            // `check_runtime`'s on the trusted path.
            Op::Call(Call::Helper(func::TAIL_CALL)) => {
                fixups.try_reserve(1)?;
                fixups.push((pc, Insn::new(TAIL_CALL_CODE, 0, 0, 0, 0)));
            }
            Op::LdPacket { .. } => {
                return Err(reject(
                    log,
                    format_args!("insn {pc}: BPF_LD_[ABS|IND] are not supported"),
                ));
            }
            Op::LdImm64 {
                pseudo: pseudo::FUNC,
                ..
            } => {
                // A callback's address: the load inlines the helpers that call it
                // ([`crate::verifier::loop_inline`]), so the value is only a non-zero token.
                let t = crate::verifier::callback_target(&op, pc).ok_or(Errno::EINVAL)?;
                if mode == Verification::Trusted || t < 0 || t as usize >= insns.len() {
                    return Err(reject(
                        log,
                        format_args!("insn {pc}: callbacks need the verifier and a target"),
                    ));
                }
                subprog_starts.push(t as usize);
                let [lo, hi] = crate::insn::ld_imm64(insns[pc].dst(), FUNC_TOKEN | t as u64);
                fixups.try_reserve(2)?;
                fixups.extend([(pc, lo), (pc + 1, hi)]);
            }
            Op::Call(Call::Helper(func::LOOP)) if mode == Verification::Trusted => {
                return Err(reject(
                    log,
                    format_args!("insn {pc}: bpf_loop needs the verifier"),
                ));
            }
            Op::LdImm64 { pseudo: p, imm, .. } if p != 0 => {
                let (addr, used) = resolve_ld_imm64(p, imm, resolve_map, &mut used_maps)
                    .inspect_err(|_| {
                        let _ =
                            writeln!(log, "insn {pc}: invalid ld_imm64 reference (src_reg {p})");
                    })?;
                if !handles.iter().any(|&(h, _)| h == imm as u32) {
                    handles.try_reserve(1)?;
                    handles.push((imm as u32, used));
                }
                let (mut lo, mut hi) = (insns[pc], insns[pc + 1]);
                lo.imm = addr as u32 as i32;
                hi.imm = (addr >> 32) as u32 as i32;
                fixups.try_reserve(2)?;
                fixups.extend([(pc, lo), (pc + 1, hi)]);
            }
            _ => {}
        }
        if let Op::Call(Call::Local(_)) = op {
            let t = branch_target(&op, pc).expect("local call has a target");
            if t >= 0 && (t as usize) < insns.len() {
                subprog_starts.push(t as usize);
            }
        }
        if op.slots() == 2 {
            second_half[pc + 1] = true;
        }
        ops.push((pc, op));
        pc += op.slots();
    }

    // Pass 2: jump targets.
    for &(pc, ref op) in &ops {
        if let Some(t) = branch_target(op, pc) {
            if t < 0 || t as usize >= insns.len() {
                return Err(reject(
                    log,
                    format_args!("jump out of range from insn {pc} to {t}"),
                ));
            }
            if second_half[t as usize] {
                return Err(reject(
                    log,
                    format_args!("jump into the middle of ldimm64 insn {t}"),
                ));
            }
        }
        if let Some(t) = crate::verifier::callback_target(op, pc) {
            if second_half[t as usize] {
                return Err(reject(
                    log,
                    format_args!("function starts in the middle of ldimm64 insn {t}"),
                ));
            }
        }
    }

    // Pass 3: every subprogram ends in `exit` or an unconditional jump.
    subprog_starts.sort_unstable();
    subprog_starts.dedup();
    let last_of = |end: usize| -> Option<&Op> {
        ops.iter().rev().find(|(pc, _)| *pc < end).map(|(_, op)| op)
    };
    for (i, _) in subprog_starts.iter().enumerate() {
        let end = subprog_starts.get(i + 1).copied().unwrap_or(insns.len());
        if !matches!(last_of(end), Some(Op::Exit) | Some(Op::Ja { .. })) {
            return Err(reject(log, format_args!("last insn is not an exit or jmp")));
        }
    }

    // The verifier (`bpf_check`), unless this is the trusted path. The program records the
    // buffer length it was verified for; a trusted program runs on any length.
    let mut ctx_access = Vec::new();
    let mut seen = Vec::new();
    let mut call_map = Vec::new();
    let mut loop_sites = Vec::new();
    let verified_ctx = match mode {
        Verification::Verify => {
            ctx_access = run_verifier(
                attr,
                resolve_map,
                log,
                &mut seen,
                &mut call_map,
                &mut loop_sites,
            )?;
            Some(attr.ctx_size.unwrap_or(0))
        }
        Verification::Trusted => None,
    };
    let gap = check_runtime(&ops, attr.prog_type, log)?;
    if stop {
        return Ok(Loaded::Verified(gap));
    }
    if let Some(gap) = gap {
        let _ = writeln!(log, "{gap}");
        return Err(Errno::ENOTSUPP);
    }
    let attr = &ProgLoadAttr {
        ctx_size: verified_ctx.filter(|_| attr.prog_type == ProgType::RawBuffer),
        ..*attr
    };

    // Runtime selection, then compatibility of every prog_array the program uses.
    let map_addrs: Box<[u64]> = used_maps.iter().map(|m| Arc::as_ptr(m) as u64).collect();
    // The fix-ups see the maps this load resolved (and holds), never a fresh lookup.
    let layout = |h: u32| {
        let &(_, i) = handles.iter().find(|&&(x, _)| x == h)?;
        match &used_maps.get(i)?.imp {
            MapImpl::Array(a) => a.gen_lookup_layout(),
            _ => None,
        }
    };
    let verified = (mode == Verification::Verify).then(|| VerifiedRewrite {
        seen: &seen,
        call_map: &call_map,
        loop_sites: &loop_sites,
        layout: &layout,
        jit_requested: crate::jit::enabled(),
        // Both load modes are a loader with CAP_BPF (see `run_verifier`): `bpf_check`'s
        // `is_priv`, which removes dead code rather than sanitizing it.
        bpf_capable: true,
        zext: ZextMode {
            needs_zext: attr.needs_zext.unwrap_or_else(crate::jit::needs_zext),
            rnd_hi32: attr.flags.contains(ProgFlags::TEST_RND_HI32),
        },
    });
    let xlated = rewrite(
        insns,
        &fixups,
        attr.prog_type,
        &ctx_access,
        verified.as_ref(),
    )?;
    // The engines run a blinded copy when asked; `xlated` (what dumps show) stays as written,
    // as in the kernel, which blinds a clone for the JIT.
    let blinded = if attr.blind || crate::blind::global() {
        Some(crate::blind::blind_constants(&xlated, &mut || {
            crate::host::get().random_u32()
        })?)
    } else {
        None
    };
    let run_insns = blinded.as_deref().unwrap_or(&xlated);
    let interp = InterpImage::build(run_insns, attr.prog_type, map_addrs)?;
    let jited = crate::jit::select_runtime(run_insns, attr.prog_type);
    let prog = Prog::new(
        attr,
        xlated.into_boxed_slice(),
        used_maps.into_boxed_slice(),
        interp,
        jited,
    );
    claim_prog_array_owners(&prog).inspect_err(|_| {
        let _ = writeln!(
            log,
            "tail call: program is not compatible with a prog_array it uses"
        );
    })?;
    Ok(Loaded::Prog(Arc::new(prog)))
}

/// Runs the verifier on the program as written; a rejection appends the verifier's log and
/// returns its errno. Pass 1 has resolved every map an `ld_imm64` names. Returns the context
/// accesses the verifier recorded, for [`convert_ctx_access`].
fn run_verifier(
    attr: &ProgLoadAttr<'_>,
    resolve_map: &dyn Fn(u32) -> Result<Arc<Map>>,
    log: &mut String,
    seen: &mut Vec<bool>,
    call_map: &mut Vec<CallMap>,
    loop_sites: &mut Vec<LoopSite>,
) -> Result<Vec<Option<CtxAccessInfo>>> {
    let maps = |h: u32| resolve_map(h).ok().map(|m| *m.attr());
    let env = VerifierEnv {
        prog_type: attr.prog_type,
        maps: &maps,
        ctx_size: attr.ctx_size.unwrap_or(0) as usize,
        privileged: attr.privileged,
        // Both modes are a loader with CAP_BPF, for which the kernel judges back-edges by
        // exploration (bounded loops are accepted).
        allow_loops: true,
    };
    match verify(attr.insns, &env) {
        Ok(mut out) => {
            log.push_str(&out.log);
            check_loop_sites(&out, log)?;
            *seen = core::mem::take(&mut out.seen);
            *call_map = core::mem::take(&mut out.call_map);
            *loop_sites = core::mem::take(&mut out.loop_sites);
            Ok(out.ctx_access)
        }
        Err(e) => {
            log.push_str(&e.log);
            Err(e.errno)
        }
    }
}

/// Every `bpf_loop` call can be inlined ([`crate::verifier::loop_inline`]): one callback on
/// every path, and room in the caller's frame for the loop's spills. Otherwise `ENOTSUPP`
/// (the kernel would call the helper; kbpf has no helper that calls back into an engine).
fn check_loop_sites(out: &crate::verifier::VerifierOutput, log: &mut String) -> Result<()> {
    for (pc, site) in out.loop_sites.iter().enumerate() {
        let why = match site {
            LoopSite::None => continue,
            LoopSite::Varies => "its callback differs between paths",
            LoopSite::Fixed { .. } => {
                let sub = match out.subprogs.binary_search(&pc) {
                    Ok(i) => i,
                    Err(i) => i - 1,
                };
                if loop_inline::check_room(out.stack_depth[sub]) {
                    continue;
                }
                "its caller's stack leaves no room for the loop's 24 bytes"
            }
        };
        let _ = writeln!(
            log,
            "insn {pc}: bpf_loop cannot be inlined: {why}; kbpf runs bpf_loop only inlined"
        );
        return Err(Errno::ENOTSUPP);
    }
    Ok(())
}

/// The load-time rewrite passes (`do_misc_fixups` and `resolve_pseudo_ldimm64`'s rewrite), on
/// one patch list linearized once: the same pipeline the verifier's passes (context access
/// conversion, zero-extension, dead code removal) and JIT constant blinding join.
///
/// Today's passes replace single slots: the tail-call helper call by the internal tail-call
/// instruction, and each half of a map-referencing `ld_imm64` by the resolved address; then
/// every context access the verifier recorded is rewritten into the kernel struct's layout
/// ([`convert_ctx_access`]; programs loaded on the trusted path have none recorded), then
/// when a JIT is requested, array-map lookups whose map the verifier saw fixed are inlined
/// ([`do_misc_fixups`], the kernel's order: after `convert_ctx_accesses`, before zero
/// extension). Between
/// the two, on verified programs, dead code goes ([`crate::verifier::opt`], `bpf_check`'s
/// order: right after verification); last, zero extension or its `BPF_F_TEST_RND_HI32`
/// self-test ([`crate::verifier::zext`], after every pass that inserts code, as in the kernel).
fn rewrite(
    insns: &[Insn],
    fixups: &[(usize, Insn)],
    prog_type: ProgType,
    ctx_access: &[Option<CtxAccessInfo>],
    verified: Option<&VerifiedRewrite<'_>>,
) -> Result<Vec<Insn>> {
    if fixups.is_empty()
        && ctx_access.iter().all(Option::is_none)
        && !verified.is_some_and(|v| v.has_work(insns))
    {
        let mut out = Vec::new();
        out.try_reserve_exact(insns.len())?;
        out.extend_from_slice(insns);
        return Ok(out);
    }
    let mut list: PatchList<()> = PatchList::new(insns)?;
    for &(slot, insn) in fixups {
        let node = list.orig_node(slot as u32).ok_or(Errno::EINVAL)?;
        list.replace(node, &[insn])?;
    }
    if let Some(v) = verified {
        crate::verifier::opt::dead_code(&mut list, v.seen, v.bpf_capable)?;
    }
    convert_ctx_access(&mut list, prog_type, ctx_access)?;
    if let Some(v) = verified {
        loop_inline::inline_loops(&mut list, v.loop_sites)?;
        if v.jit_requested {
            do_misc_fixups(&mut list, insns, v.call_map, v.layout)?;
        }
        v.zext_pass(&mut list, insns)?;
    }
    list.linearize(&mut Vec::new(), None)
}

/// What the verifier's own rewrite passes need: dead code ([`crate::verifier::opt`]), helper
/// fix-ups ([`crate::verifier::fixups`]) and zero extension ([`crate::verifier::zext`]).
/// Absent on the trusted path, which has no verifier.
struct VerifiedRewrite<'a> {
    /// [`crate::verifier::VerifierOutput::seen`].
    seen: &'a [bool],
    /// [`crate::verifier::VerifierOutput::call_map`].
    call_map: &'a [CallMap],
    /// [`crate::verifier::VerifierOutput::loop_sites`].
    loop_sites: &'a [LoopSite],
    /// The array layout of a map handle the program uses, if it is a plain array.
    layout: &'a dyn Fn(u32) -> Option<ArrayLayout>,
    /// A JIT is registered (`prog->jit_requested`): only then are lookups inlined, as in the
    /// kernel. Measured with `kbpf bench map-lookup`: JIT'd, an inlined array lookup costs
    /// about a tenth of the helper call; interpreted, its six dispatched instructions cost
    /// more than the call.
    jit_requested: bool,
    /// The loader has `CAP_BPF` (`bpf_check`'s `is_priv`).
    bpf_capable: bool,
    /// Zero extension / `BPF_F_TEST_RND_HI32`.
    zext: ZextMode,
}

impl VerifiedRewrite<'_> {
    /// Whether a pass may change `insns`.
    fn has_work(&self, insns: &[Insn]) -> bool {
        self.seen.contains(&false)
            || self.loop_sites.iter().any(|l| *l != LoopSite::None)
            || self.jit_requested && self.call_map.iter().any(|c| matches!(c, CallMap::Map(_)))
            || self.zext != ZextMode::default()
            || insns.iter().any(is_cmpxchg32)
    }

    /// `opt_subreg_zext_lo32_rnd_hi32` over the list of `insns` (the verified program).
    fn zext_pass(&self, list: &mut PatchList<()>, insns: &[Insn]) -> Result<()> {
        let marks = zext_dst(insns)?;
        opt_subreg_zext_lo32_rnd_hi32(list, insns, &marks, self.zext, &mut || {
            crate::host::get().random_u32()
        })
    }
}

/// Resolves a pseudo `ld_imm64` into the address it stands for, adding the map to `used`;
/// also returns the map's index in `used`.
fn resolve_ld_imm64(
    kind: u8,
    imm: u64,
    resolve_map: &dyn Fn(u32) -> Result<Arc<Map>>,
    used: &mut Vec<Arc<Map>>,
) -> Result<(u64, usize)> {
    let (fd, off) = (imm as u32, (imm >> 32) as u32);
    let map = match kind {
        pseudo::MAP_FD if off == 0 => resolve_map(fd)?,
        pseudo::MAP_VALUE => resolve_map(fd)?,
        _ => return Err(Errno::EINVAL),
    };
    let addr = if kind == pseudo::MAP_FD {
        Arc::as_ptr(&map) as u64
    } else {
        // Direct value access: single-element array maps only (`array_map_direct_value_addr`).
        match &map.imp {
            MapImpl::Array(a) if map.attr().max_entries == 1 && off < map.attr().value_size => {
                // SAFETY: index 0 exists (max_entries == 1); `off < value_size`.
                unsafe { a.lookup_raw(0u32.to_ne_bytes().as_ptr()).add(off as usize) as u64 }
            }
            _ => return Err(Errno::EINVAL),
        }
    };
    let idx = match used.iter().position(|m| Arc::ptr_eq(m, &map)) {
        Some(i) => i,
        None => {
            used.try_reserve(1)?;
            used.push(map);
            used.len() - 1
        }
    };
    Ok((addr, idx))
}

/// Checks every program-holding map the program uses, then records the owner where none is
/// set yet — so a failed check leaves no owner recorded (`bpf_check_tail_call`).
fn claim_prog_array_owners(prog: &Prog) -> Result {
    let key: ProgOwner = prog.owner_key();
    let maps = prog.used_maps().iter().filter(|m| m.contains_progs());
    for m in maps.clone() {
        if matches!(*m.owner.lock(), Some(o) if o != key) {
            return Err(Errno::EINVAL);
        }
    }
    for m in maps {
        crate::prog::check_map_compatible(m, prog)?;
    }
    Ok(())
}

/// Finds the first helper or kfunc the program calls whose run-time side kbpf does not have
/// yet: the verifier judged the program, but nothing could run it (the load refuses it with
/// `ENOTSUPP`). On the trusted path (no verifier) a helper must also be offered to the program
/// type and a kfunc id name a function it may call; those are refused here. Whether a
/// function runs is a property of its entry in the helper table
/// ([`crate::helpers::HelperProto::has_runtime`]) or the kfunc registry
/// ([`crate::kfunc::Kfunc::has_runtime`]).
fn check_runtime(
    ops: &[(usize, Op)],
    prog_type: ProgType,
    log: &mut String,
) -> Result<Option<RuntimeGap>> {
    for &(pc, op) in ops {
        match op {
            Op::Call(Call::Helper(id)) => {
                let Some(p) = func_proto(prog_type, id) else {
                    // The verifier's words (`check_helper_call`).
                    let name = crate::helpers::func_id_name(id);
                    let msg = if (0..crate::helpers::FUNC_MAX_ID).contains(&id) {
                        "program of this type cannot use helper"
                    } else {
                        "invalid func"
                    };
                    return Err(reject(log, format_args!("insn {pc}: {msg} {name}#{id}")));
                };
                if !p.has_runtime() {
                    return Ok(Some(RuntimeGap::Helper { id, name: p.name }));
                }
            }
            Op::Call(Call::Kfunc(id)) => match crate::kfunc::find(id) {
                None => {
                    return Err(reject(
                        log,
                        format_args!("insn {pc}: kernel btf_id {} is not a function", id as u32),
                    ));
                }
                Some(k) if !k.allowed_for(prog_type) => {
                    let _ = writeln!(log, "calling kernel function {} is not allowed", k.name);
                    return Err(Errno::EACCES);
                }
                Some(k) if !k.has_runtime() => {
                    return Ok(Some(RuntimeGap::Kfunc { name: k.name }));
                }
                Some(_) => {}
            },
            _ => {}
        }
    }
    Ok(None)
}
