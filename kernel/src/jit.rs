//! JIT backend registration and runtime selection (Linux `bpf_int_jit_compile` as a weak hook
//! and `bpf_prog_select_runtime` in `kernel/bpf/core.c`).
//!
//! The kernel crate never depends on a JIT: a host registers one [`JitCompiler`], and
//! `prog_load` asks it for native code after the load-time rewrites. A program the JIT refuses
//! runs in the interpreter, as in Linux when the JIT can't handle a program.

use crate::Result;
use crate::insn::Insn;
use crate::uapi::ProgType;
use alloc::boxed::Box;
use spin::Once;

/// The machine signature of JIT'd code: R1, R2 and the run's tail-call counter in, R0 out.
///
/// The counter (`tcc_ptr`, after Linux's v6.12 scheme) is the CPU's
/// [`CpuState::tail_call_cnt`](crate::cpu::CpuState::tail_call_cnt): every frame and every
/// tail-called program of the run counts on it, so subprograms share the budget.
pub type JitEntry = unsafe extern "sysv64" fn(u64, u64, *mut u32) -> u64;

/// A direct tail-call site in native code: a tail call whose prog_array and index were known
/// when the program was compiled (the tail-call part of Linux's `struct
/// bpf_jit_poke_descriptor`). Its 5 patchable bytes either fall through (empty slot) or jump
/// to the slot's program; the prog_array keeps them in sync (`maps::prog_array`'s poke table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PokeSite {
    /// Address of the map (`ld_imm64` map reference in R2).
    pub map: u64,
    /// The slot index (R3, as the `u32` a tail call uses).
    pub index: u32,
    /// Offset of the 5 patchable bytes from the image's entry.
    pub offset: u32,
}

/// Native code owned by a program. Dropping it returns the executable memory to the host; the
/// program is only dropped once no CPU can be running it (see `Prog`).
pub trait JitImage: Send + Sync {
    /// Address of the first instruction.
    fn entry(&self) -> usize;
    /// Where a tail call into this image jumps (past the prologue part a tail call skips).
    fn tail_call_entry(&self) -> usize;
    /// Bytes of code.
    fn size(&self) -> usize;
    /// The image's direct tail-call sites, in code order. Each starts out falling through.
    fn poke_sites(&self) -> &[PokeSite];
    /// Re-points direct site `site` (an index into [`JitImage::poke_sites`]) while other CPUs
    /// may be executing it (`bpf_arch_poke_desc_update`): to a jump to `target` (a program's
    /// tail-call target), or to falling through when `target` is 0. A CPU executing the site
    /// meanwhile takes the old or the new path, never a torn one. Callers serialize pokes of one
    /// site (the prog_array's poke lock). Errors: `EINVAL` for a bad site index, or the host's
    /// `text_poke` error, with the site unchanged.
    fn poke(&self, site: usize, target: usize) -> Result;
}

/// A JIT backend.
pub trait JitCompiler: Send + Sync {
    /// Compiles checked, rewritten instructions; any error means "run it in the interpreter".
    fn compile(&self, insns: &[Insn], prog_type: ProgType) -> Result<Box<dyn JitImage>>;

    /// Whether the target's 32-bit operations leave the upper half of the register alone, so
    /// that the verifier must insert explicit zero extensions (`bpf_jit_needs_zext()`; x86-64,
    /// whose 32-bit operations zero it, says no).
    fn needs_zext(&self) -> bool {
        false
    }
}

static JIT: Once<&'static dyn JitCompiler> = Once::new();

/// Registers the JIT backend; the first registration wins. Returns whether this one did.
pub fn register(jit: &'static dyn JitCompiler) -> bool {
    let mut first = false;
    JIT.call_once(|| {
        first = true;
        jit
    });
    first
}

/// Whether the registered JIT (if any) asks for explicit zero extension
/// ([`JitCompiler::needs_zext`]); `false` without one (the interpreter needs none).
pub fn needs_zext() -> bool {
    JIT.get().is_some_and(|jit| jit.needs_zext())
}

/// Whether a JIT backend is registered.
pub fn enabled() -> bool {
    JIT.get().is_some()
}

/// Native code for `insns`, if a JIT is registered and accepts the program.
pub(crate) fn select_runtime(insns: &[Insn], prog_type: ProgType) -> Option<Box<dyn JitImage>> {
    JIT.get().and_then(|jit| jit.compile(insns, prog_type).ok())
}
