//! The program object (`struct bpf_prog` + `bpf_prog_aux`) and prog_array owner compatibility.
//!
//! A `Prog` is immutable once loaded and shared through `Arc`: user handles, prog_array slots,
//! attachments and running CPUs each hold a reference. Where a reader reaches a program through
//! a raw pointer (a prog_array slot), the writer drops its reference only after a grace period.

use crate::cpu::{CpuGuard, Fault};
use crate::insn::Insn;
use crate::interp::InterpImage;
use crate::jit::{JitImage, PokeSite};
use crate::map::{Map, ProgOwner};
use crate::sync::Arc;
use crate::uapi::{AttachType, ProgFlags, ProgType};
use crate::{Errno, Result};
use alloc::boxed::Box;
use alloc::string::String;

mod attr;
mod batch;

pub use attr::ProgLoadAttr;
pub use batch::RunBatch;

/// A copy of a program's JIT image ([`Prog::jited_code`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JitedCode<'a> {
    /// The installed code bytes.
    pub code: alloc::vec::Vec<u8>,
    /// The address of its first byte.
    pub entry: usize,
    /// Per instruction slot, the offset of its code in `code`.
    pub insn_offsets: &'a [u32],
}

/// Offset of [`Prog`]'s tail-call target, which JIT'd tail calls jump through.
pub const PROG_TAIL_CALL_TARGET_OFFSET: usize = core::mem::offset_of!(Prog, tail_call_target);
static_assertions::const_assert_eq!(PROG_TAIL_CALL_TARGET_OFFSET, 0);

/// A loaded BPF program. `#[repr(C)]` with the tail-call target first: JIT'd code reads it.
#[repr(C)]
pub struct Prog {
    /// Where a JIT'd tail call into this program jumps (past the skippable prologue), or 0 for
    /// an interpreted program (`bpf_func` + `X86_TAIL_CALL_OFFSET` in Linux).
    tail_call_target: usize,
    /// The JIT image's entry, or 0 for an interpreted program (Linux `bpf_func`): kept here so
    /// a run calls straight into native code without asking the image.
    bpf_func: usize,
    id: u32,
    pub(crate) prog_type: ProgType,
    pub(crate) expected_attach_type: Option<AttachType>,
    pub(crate) flags: ProgFlags,
    pub(crate) name: String,
    /// The instructions after the load-time rewrites (`xlated`).
    pub(crate) insns: Box<[Insn]>,
    /// Maps the program references; the program keeps them alive (`used_maps`).
    pub(crate) used_maps: Box<[Arc<Map>]>,
    pub(crate) interp: InterpImage,
    /// Native code, when the registered JIT compiled the program.
    pub(crate) jited: Option<Box<dyn JitImage>>,
    /// The raw-buffer length the verifier judged the program for; `None` for a trusted load
    /// and for other program types.
    pub(crate) ctx_size: Option<u32>,
    /// Source positions of the xlated instructions (`prog->aux->linfo`).
    pub(crate) line_info: Box<[crate::patch::LineInfo]>,
}

impl Prog {
    pub(crate) fn new(
        attr: &ProgLoadAttr<'_>,
        insns: Box<[Insn]>,
        used_maps: Box<[Arc<Map>]>,
        interp: InterpImage,
        jited: Option<Box<dyn JitImage>>,
        line_info: Box<[crate::patch::LineInfo]>,
    ) -> Prog {
        // Direct tail-call sites join their prog_arrays' poke tables now: the image is at its
        // final address (boxed) and no CPU runs it yet. If that fails, run in the interpreter,
        // as when the JIT refuses a program.
        let jited = jited.filter(|j| crate::maps::track_pokes(&used_maps, j.as_ref()).is_ok());
        Prog {
            tail_call_target: jited.as_ref().map_or(0, |j| j.tail_call_entry()),
            bpf_func: jited.as_ref().map_or(0, |j| j.entry()),
            id: crate::id::next_prog_id(),
            prog_type: attr.prog_type,
            expected_attach_type: attr.expected_attach_type,
            flags: attr.flags,
            name: attr.name.into(),
            insns,
            used_maps,
            interp,
            jited,
            ctx_size: attr.ctx_size,
            line_info,
        }
    }

    /// The source positions of the xlated instructions (`bpf_prog_info.line_info`): the load's
    /// `line_info` carried through every rewrite; empty when the load gave none.
    pub fn line_info(&self) -> &[crate::patch::LineInfo] {
        &self.line_info
    }

    /// The raw-buffer length the program was verified for (`None`: loaded on the trusted
    /// path, or not a raw-buffer program).
    pub fn ctx_size(&self) -> Option<u32> {
        self.ctx_size
    }

    /// The program's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The program type.
    pub fn prog_type(&self) -> ProgType {
        self.prog_type
    }

    /// The expected attach type given at load.
    pub fn expected_attach_type(&self) -> Option<AttachType> {
        self.expected_attach_type
    }

    /// The program's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rewritten instructions.
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// Whether it runs as native code.
    pub fn jited(&self) -> bool {
        self.jited.is_some()
    }

    /// The JIT image's entry (`bpf_func`), 0 when interpreted.
    #[inline]
    pub(crate) fn bpf_func(&self) -> usize {
        self.bpf_func
    }

    /// Where a JIT'd tail call into this program jumps, 0 when interpreted.
    pub(crate) fn tail_call_target(&self) -> usize {
        self.tail_call_target
    }

    /// The direct tail-call sites of the JIT image (none when interpreted): tail calls whose
    /// prog_array and index were constants, patched to jump straight to the slot's program.
    pub fn direct_tail_calls(&self) -> &[PokeSite] {
        self.jited.as_ref().map_or(&[], |j| j.poke_sites())
    }

    /// The JIT image's code as it is now (`bpf_prog_info`'s `jited_prog_insns`); `None` when
    /// interpreted. `ENOMEM` if the copy cannot be allocated.
    pub fn jited_code(&self) -> Result<Option<JitedCode<'_>>> {
        let Some(j) = self.jited.as_ref() else {
            return Ok(None);
        };
        Ok(Some(JitedCode {
            code: j.code()?,
            entry: j.entry(),
            insn_offsets: j.insn_offsets(),
        }))
    }

    /// Size of the JIT image, 0 when interpreted.
    pub fn jited_len(&self) -> usize {
        self.jited.as_ref().map_or(0, |j| j.size())
    }

    /// Runs the program with R1 = `r1` and R2 = `r2` on the CPU `guard` holds; returns R0.
    ///
    /// Either engine resets the CPU's tail-call counter for the run and refuses a run nested in
    /// another on the same CPU with [`Fault::Recursion`].
    #[inline]
    pub fn run(&self, guard: &mut CpuGuard, r1: u64, r2: u64) -> core::result::Result<u64, Fault> {
        let state = guard.begin_run(r2)?;
        let result = if self.bpf_func == 0 {
            // SAFETY: `state` is this run's until `end_run`.
            unsafe { crate::interp::run(self, state, r1, r2) }
        } else {
            // SAFETY: `bpf_func` is the entry of this program's image (set with `jited`, which
            // owns the image for as long as `self` lives): sealed native code compiled from
            // checked instructions for `jit::enter`. We run on the CPU `guard` holds, inside
            // its read-side section, which keeps every program a tail call reaches alive; the
            // counter is valid, aligned and this run's alone.
            Ok(unsafe {
                crate::jit::enter(
                    self.bpf_func,
                    r1,
                    r2,
                    core::ptr::addr_of_mut!((*state).tail_call_cnt),
                )
            })
        };
        guard.end_run();
        result
    }

    /// Runs the program `n` times back to back (at least once) with R1 = `r1`, R2 = `r2` on the
    /// CPU `guard` holds: one section of `BPF_PROG_TEST_RUN`'s repeat loop
    /// (`bpf_test_run`). The recursion guard is taken once for the batch, each run starts with
    /// a fresh tail-call budget, and the engine is chosen once; returns the last run's R0, or
    /// the first fault (which ends the batch).
    pub fn run_repeat(
        &self,
        guard: &mut CpuGuard,
        r1: u64,
        r2: u64,
        n: u32,
    ) -> core::result::Result<u64, Fault> {
        let state = guard.begin_run(r2)?;
        // SAFETY: `state` is this batch's until `end_run` (`begin_run`); the counter field
        // stays valid and aligned for it.
        let tcc = unsafe { core::ptr::addr_of_mut!((*state).tail_call_cnt) };
        let mut r0 = Ok(0);
        if self.bpf_func == 0 {
            for _ in 0..n.max(1) {
                // SAFETY: as above; the counter is reset between runs, as `begin_run` does.
                r0 = unsafe {
                    *tcc = 0;
                    crate::interp::run(self, state, r1, r2)
                };
                if r0.is_err() {
                    break;
                }
            }
        } else {
            // SAFETY: as in `run`, for every run: `state`'s counter is this batch's.
            r0 = Ok(unsafe { self.run_jited_repeat(r1, r2, tcc, n) });
        }
        guard.end_run();
        r0
    }

    /// `n` runs (at least one) of the JIT'd program, each with a fresh tail-call budget in
    /// `*tcc`: through its image's repeat runner where it has one, else
    /// [`crate::jit::enter_repeat`]. Returns the last run's R0.
    ///
    /// # Safety
    /// As for [`crate::jit::enter`], for every run: the program is JIT'd (`bpf_func != 0`), the
    /// caller holds this CPU's run state inside its read-side section, and `tcc` is that run
    /// state's counter, valid, aligned and the batch's alone.
    unsafe fn run_jited_repeat(&self, r1: u64, r2: u64, tcc: *mut u32, n: u32) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if let Some(runner) = self
            .jited
            .as_ref()
            .map(|j| j.repeat_entry())
            .filter(|&r| r != 0)
        {
            // SAFETY: `runner` is the repeat runner of this program's sealed image, which lives
            // as long as `self`; the rest is the caller's promise.
            return unsafe { crate::jit::enter_runner(runner, r1, r2, tcc, n) };
        }
        // SAFETY: `bpf_func` is the entry of this program's sealed image; the rest is the
        // caller's promise. `enter_repeat` resets the counter between runs.
        unsafe { crate::jit::enter_repeat(self.bpf_func, r1, r2, tcc, n) }
    }

    /// The maps the program uses.
    pub fn used_maps(&self) -> &[Arc<Map>] {
        &self.used_maps
    }

    /// The owner record this program would establish or must match.
    pub fn owner_key(&self) -> ProgOwner {
        ProgOwner {
            prog_type: self.prog_type,
            jited: self.jited(),
            xdp_has_frags: self.flags.contains(ProgFlags::XDP_HAS_FRAGS),
            sleepable: self.flags.contains(ProgFlags::SLEEPABLE),
            expected_attach_type: self.expected_attach_type,
            ctx_size: self.ctx_size(),
        }
    }
}

/// Checks (and on first use records) that `prog` may share `map` (`bpf_prog_map_compatible`).
/// Only maps that hold programs have an owner; for others this always succeeds.
pub fn check_map_compatible(map: &Map, prog: &Prog) -> Result {
    if !map.contains_progs() {
        return Ok(());
    }
    let key = prog.owner_key();
    let mut owner = map.owner.lock();
    match *owner {
        None => {
            *owner = Some(key);
            Ok(())
        }
        Some(o) if o == key => Ok(()),
        Some(_) => Err(Errno::EINVAL),
    }
}

impl Drop for Prog {
    fn drop(&mut self) {
        // Before the image is freed (the fields drop after this), so no prog_array update can
        // poke freed code (`bpf_free_used_maps` → `map_poke_untrack`).
        if let Some(j) = &self.jited {
            crate::maps::untrack_pokes(&self.used_maps, j.as_ref());
        }
    }
}

impl core::fmt::Debug for Prog {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Prog")
            .field("id", &self.id)
            .field("type", &self.prog_type)
            .field("name", &self.name)
            .field("insns", &self.insns.len())
            .field("jited", &self.jited())
            .finish()
    }
}
