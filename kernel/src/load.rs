//! Program loading as a list of stages (`bpf_prog_load` in `kernel/bpf/syscall.c`, the
//! structural parts of `bpf_check`, `resolve_pseudo_ldimm64`, `do_misc_fixups`,
//! `bpf_prog_select_runtime`).
//!
//! A load is the stages of `STAGES`, run in order on one `Load` record; the first error
//! ends it, and nothing a stage builds is visible outside the record until the last stage has
//! run, so a failed load leaves no state behind:
//!
//! 1. `gate::structural_gate`: attribute checks, then every instruction decoded and checked
//!    (unknown opcodes, reserved fields, registers, writes to R10, jump ranges, `ld_imm64`
//!    halves, subprograms that fall off their end) with `EINVAL` and a log line naming the
//!    instruction, as the kernel does; map references resolved; line info checked
//!    (`check_btf_line`).
//! 2. `check::verify`: the verifier ([`crate::verifier`], `bpf_check`) proves the program
//!    safe; a rejection returns its errno and log. The trusted path ([`Verification::Trusted`],
//!    like the kernel's `lib/test_bpf.c`) skips it.
//! 3. `check::runtime`: finds a helper or kfunc the program calls whose run-time side kbpf
//!    does not have yet ([`RuntimeGap`]).
//!
//!    `prog_verify` is the same list stopped here (`CHECKS` stages).
//! 4. `check::refuse_gap`: such a program is refused with `ENOTSUPP`.
//! 5. `rewrite::rewrite`: the rewrite passes of `rewrite::PASSES` on one patch list (the
//!    tail-call opcode, map and callback `ld_imm64` fix-ups, dead code, context access
//!    conversion, `bpf_loop` inlining, array lookup inlining, zero extension). Adding a pass is
//!    one entry in that list.
//! 6. `rewrite::linearize`: the list becomes the program as the engines see it (`xlated`);
//!    the `.BTF.ext` line info moves with its instructions (deleted code's entries go).
//! 7. `runtime::blind`: constant blinding of a copy for the engines, when asked.
//! 8. `runtime::select_runtime`: the interpreter image, the JIT's if one is registered and
//!    accepts the program, and the program object.
//! 9. `runtime::claim_owners`: prog_array compatibility, after runtime selection since
//!    "jited" is only known then.

use crate::insn::{Insn, Op};
use crate::map::Map;
use crate::patch::{LineInfo, PatchList};
use crate::prog::{Prog, ProgLoadAttr};
use crate::sync::Arc;
use crate::verifier::convert::CtxAccessInfo;
use crate::verifier::zext::ZextMode;
use crate::verifier::{CallKey, CallMap, LoopSite};
use crate::{Errno, Result};
use alloc::string::String;
use alloc::vec::Vec;

mod check;
mod gate;
mod rewrite;
mod runtime;

pub use check::RuntimeGap;
pub use gate::FUNC_TOKEN;

/// Whether a load runs the verifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The verifier proves the program safe before it may run (`bpf_prog_load`).
    Verify,
    /// The in-kernel trusted path, like `lib/test_bpf.c`: the structural gate only, for
    /// programs whose safety the caller vouches for. Never reachable from untrusted input.
    Trusted,
}

/// Turns a map handle from an `ld_imm64` into the map.
pub(crate) type ResolveMap<'a> = &'a dyn Fn(u32) -> Result<Arc<Map>>;

/// What the verifier found that the rewrite passes use (`bpf_insn_aux_data`).
struct Verified {
    /// Per slot, the context field a load or store accesses.
    ctx_access: Vec<Option<CtxAccessInfo>>,
    /// Per slot, whether some path reached it.
    seen: Vec<bool>,
    /// Per slot, the map a helper call's R1 held on every path.
    call_map: Vec<CallMap>,
    /// Per slot, the key a tail call's R3 held on every path.
    call_key: Vec<CallKey>,
    /// Per slot, the callback of a `bpf_loop` call, for its inlining.
    loop_sites: Vec<LoopSite>,
}

/// One load in progress: its input, and what each stage has built so far.
struct Load<'a> {
    attr: ProgLoadAttr<'a>,
    resolve_map: ResolveMap<'a>,
    log: &'a mut String,
    verification: Verification,
    /// The decoded instructions with their slots ([`gate`]).
    ops: Vec<(usize, Op)>,
    /// Single-slot replacements: the tail-call helper call by the internal tail-call
    /// instruction, each half of a map `ld_imm64` by the resolved address ([`gate`]).
    fixups: Vec<(usize, Insn)>,
    /// The maps the program references, each once (`used_maps`).
    used_maps: Vec<Arc<Map>>,
    /// Map handle → index in `used_maps`: the maps this load resolved, for the passes.
    handles: Vec<(u32, usize)>,
    /// The verifier's findings; `None` on the trusted path ([`check`]).
    verified: Option<Verified>,
    /// A function the program calls that kbpf cannot run yet ([`check`]).
    gap: Option<RuntimeGap>,
    /// A JIT is registered (`prog->jit_requested`).
    jit_requested: bool,
    /// Zero extension / `BPF_F_TEST_RND_HI32`.
    zext: ZextMode,
    /// The patch list the passes rewrote; `None` when no pass had work ([`rewrite`]).
    list: Option<PatchList<()>>,
    /// The program after the rewrites (`xlated`, what dumps show).
    xlated: Vec<Insn>,
    /// The load's line info, with the final indices once linearized ([`rewrite`]).
    line_info: Vec<LineInfo>,
    /// The blinded copy the engines run, when blinding is on ([`runtime`]).
    blinded: Option<Vec<Insn>>,
    /// The program object ([`runtime`]).
    prog: Option<Prog>,
}

impl<'a> Load<'a> {
    fn new(
        attr: &ProgLoadAttr<'a>,
        resolve_map: ResolveMap<'a>,
        log: &'a mut String,
        verification: Verification,
    ) -> Self {
        Load {
            attr: *attr,
            resolve_map,
            log,
            verification,
            ops: Vec::new(),
            fixups: Vec::new(),
            used_maps: Vec::new(),
            handles: Vec::new(),
            verified: None,
            gap: None,
            jit_requested: crate::jit::enabled(),
            zext: ZextMode {
                needs_zext: attr.needs_zext.unwrap_or_else(crate::jit::needs_zext),
                rnd_hi32: attr.flags.contains(crate::uapi::ProgFlags::TEST_RND_HI32),
            },
            list: None,
            xlated: Vec::new(),
            line_info: Vec::new(),
            blinded: None,
            prog: None,
        }
    }

    /// The instructions as written.
    fn insns(&self) -> &'a [Insn] {
        self.attr.insns
    }
}

/// One stage of a load: reads what the earlier stages built into the record and adds its own.
type Stage = fn(&mut Load<'_>) -> Result;

/// The stages of a load, in order (see the module docs).
const STAGES: [Stage; 9] = [
    gate::structural_gate,
    check::verify,
    check::runtime,
    check::refuse_gap,
    rewrite::rewrite,
    rewrite::linearize,
    runtime::blind,
    runtime::select_runtime,
    runtime::claim_owners,
];

/// The first `CHECKS` stages are the checks (gate, verifier, run-time check): [`prog_verify`]
/// runs those and stops.
const CHECKS: usize = 3;

/// Runs `stages` on `load` in order; the first error ends the load.
fn run(load: &mut Load<'_>, stages: &[Stage]) -> Result {
    stages.iter().try_for_each(|stage| stage(load))
}

/// Loads a program: every stage of [`STAGES`]. `resolve_map` turns a map handle from an
/// `ld_imm64` into the map; `verification` says whether the verifier runs.
pub(crate) fn prog_load(
    attr: &ProgLoadAttr<'_>,
    resolve_map: ResolveMap<'_>,
    log: &mut String,
    verification: Verification,
) -> Result<Arc<Prog>> {
    let mut load = Load::new(attr, resolve_map, log, verification);
    run(&mut load, &STAGES)?;
    load.prog.take().map(Arc::new).ok_or(Errno::EFAULT)
}

/// The load's checks and the verifier, stopping before anything is built: `Ok` when the
/// program verifies, with the function it calls that kbpf cannot run yet, if any (the load
/// would refuse it with `ENOTSUPP`). A rejection is the load's errno and log.
pub(crate) fn prog_verify(
    attr: &ProgLoadAttr<'_>,
    resolve_map: ResolveMap<'_>,
    log: &mut String,
) -> Result<Option<RuntimeGap>> {
    let mut load = Load::new(attr, resolve_map, log, Verification::Verify);
    run(&mut load, &STAGES[..CHECKS])?;
    Ok(load.gap)
}
