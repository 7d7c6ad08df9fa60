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

/// The machine signature of JIT'd code, as a C function type: R1, R2 and the run's tail-call
/// counter in, R0 out. JIT'd code must not be called through it directly — see [`enter`] for
/// the convention it actually follows.
///
/// The counter (`tcc_ptr`, after Linux's v6.12 scheme) is the CPU's
/// [`CpuState::tail_call_cnt`](crate::cpu::CpuState::tail_call_cnt): every frame and every
/// tail-called program of the run counts on it, so subprograms share the budget.
pub type JitEntry = unsafe extern "sysv64" fn(u64, u64, *mut u32) -> u64;

/// Runs JIT'd code from its entry `entry` with R1 = `r1`, R2 = `r2` and the counter `tcc`.
///
/// The x86-64 JIT's code follows the SysV argument and return registers, but saves none of the
/// callee-saved registers rbx and r12–r15 (it keeps rbp and rsp): the JIT uses them for BPF
/// R6–R9 and the run's bottom frame, and a frame that saved them would have to be rebuilt on
/// every tail call. This function is the one caller of that convention. It saves rbx itself and
/// tells the compiler r12–r15 are clobbered, so a loop of runs saves them once around the loop
/// instead of once per run (Linux's JIT pushes them in every prologue).
///
/// # Safety
/// `entry` is the main entry of sealed x86-64 code that a JIT produced for this convention;
/// the program's memory accesses and helper arguments are valid (the verifier's or the
/// trusted loader's promise); `tcc` points to a `u32` valid and unshared for the run; every
/// program the run can reach stays alive until it returns.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn enter(entry: usize, r1: u64, r2: u64, tcc: *mut u32) -> u64 {
    // SAFETY: the caller's promises are `call_jited`'s; a program ignores rcx.
    unsafe { call_jited(entry, r1, r2, tcc, 0) }
}

/// Calls JIT'd code `code` under [`enter`]'s convention with rdi = `r1`, rsi = `r2`, rdx =
/// `tcc` and rcx = `rcx` (a program's entry ignores rcx; a repeat runner takes its count
/// there); returns rax.
///
/// # Safety
/// `code` is sealed x86-64 code that a JIT produced for this convention, and running it with
/// these arguments is sound (see [`enter`] and [`enter_runner`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn call_jited(code: usize, r1: u64, r2: u64, tcc: *mut u32, rcx: u64) -> u64 {
    let r0: u64;
    // SAFETY: the caller guarantees `code` is such code. The asm keeps its promises to the
    // compiler: rbx is pushed and popped around the call, rsp is 16-byte aligned at the `call`
    // (aligned at the block's start, then push + sub 8) and back where it was at the end, the
    // registers the code may change are declared (the C ABI's caller-saved ones, r12–r15 and
    // rax as the result), and rbp comes back as it was (`leave` / `pop rbp` of the code).
    unsafe {
        core::arch::asm!(
            "push rbx",
            "sub rsp, 8",
            "call rax",
            "add rsp, 8",
            "pop rbx",
            inout("rax") code => r0,
            in("rdi") r1,
            in("rsi") r2,
            in("rdx") tcc,
            inout("rcx") rcx => _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("sysv64"),
        );
    }
    r0
}

/// Runs JIT'd code from `entry` `n` times (at least once) with the same arguments, resetting
/// the tail-call counter `*tcc` to 0 before each run, and returns the last run's R0: the inner
/// loop of `BPF_PROG_TEST_RUN` (`bpf_test_run`). The loop is one assembly block, aligned to a
/// cache line, so its cost does not depend on where the compiler happens to place it; its
/// counter lives in rbp, the one register JIT'd code preserves.
///
/// # Safety
/// As for [`enter`], for every run.
#[cfg(target_arch = "x86_64")]
pub unsafe fn enter_repeat(entry: usize, r1: u64, r2: u64, tcc: *mut u32, n: u32) -> u64 {
    let r0: u64;
    // SAFETY: as in `enter`, per run. rbp and rbx are pushed and popped around the loop; the
    // four arguments live in a 32-byte frame below them, which keeps rsp 16-byte aligned at each
    // `call` (aligned at the block's start, then 2 pushes and 32 bytes); rsp is back where it
    // was at the end. The inputs are copied to that frame before anything clobbers them.
    unsafe {
        core::arch::asm!(
            "push rbp",
            "push rbx",
            "sub rsp, 32",
            "mov [rsp], {entry}",
            "mov [rsp + 8], {r1}",
            "mov [rsp + 16], {r2}",
            "mov [rsp + 24], {tcc}",
            "mov ebp, {n:e}",
            ".p2align 6",
            "2:",
            "mov rdx, [rsp + 24]",
            "mov dword ptr [rdx], 0",
            "mov rdi, [rsp + 8]",
            "mov rsi, [rsp + 16]",
            "call qword ptr [rsp]",
            "dec ebp",
            "jnz 2b",
            "add rsp, 32",
            "pop rbx",
            "pop rbp",
            entry = in(reg) entry,
            r1 = in(reg) r1,
            r2 = in(reg) r2,
            tcc = in(reg) tcc,
            n = in(reg) n.max(1),
            out("rax") r0,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("sysv64"),
        );
    }
    r0
}

/// Runs a JIT image's repeat runner `runner` ([`JitImage::repeat_entry`]) once: the program
/// runs `n` times (at least once) with R1 = `r1`, R2 = `r2`, `*tcc` reset to 0 before each run;
/// returns the last run's R0. The same loop as [`enter_repeat`], with the program's call made
/// direct by the runner (an indirect call is ~3 cycles dearer per run on AMD Zen 4).
///
/// # Safety
/// `runner` is the repeat runner of a sealed image whose program may run as [`enter`] requires,
/// for every run.
#[cfg(target_arch = "x86_64")]
pub unsafe fn enter_runner(runner: usize, r1: u64, r2: u64, tcc: *mut u32, n: u32) -> u64 {
    // SAFETY: the runner follows `enter`'s convention with its count in rcx; the rest is the
    // caller's promise.
    unsafe { call_jited(runner, r1, r2, tcc, u64::from(n.max(1))) }
}

/// Runs JIT'd code from `entry` `n` times (see the x86-64 version).
///
/// # Safety
/// As for [`enter`], for every run.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn enter_repeat(entry: usize, r1: u64, r2: u64, tcc: *mut u32, n: u32) -> u64 {
    let mut r0 = 0;
    for _ in 0..n.max(1) {
        // SAFETY: the caller's contract, per run; the counter is reset between runs.
        r0 = unsafe {
            *tcc = 0;
            enter(entry, r1, r2, tcc)
        };
    }
    r0
}

/// Runs JIT'd code from its entry (see the x86-64 version): a JIT for another architecture
/// follows the C ABI.
///
/// # Safety
/// As for the x86-64 version.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub unsafe fn enter(entry: usize, r1: u64, r2: u64, tcc: *mut u32) -> u64 {
    // SAFETY: the caller guarantees `entry` is code with this signature.
    let f: JitEntry = unsafe { core::mem::transmute::<usize, JitEntry>(entry) };
    // SAFETY: as above.
    unsafe { f(r1, r2, tcc) }
}

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
    /// The image's repeat runner, or 0 (the default) when it has none: code entered with
    /// [`enter_runner`] that runs the program `n` times, resetting the tail-call counter before
    /// each run, with a direct call of [`JitImage::entry`] (the test-run loop compiled next to
    /// the program, as the kernel's `bpf_dispatcher` makes XDP's call of a program direct).
    fn repeat_entry(&self) -> usize {
        0
    }
    /// A copy of the installed code, as it runs (`bpf_prog_info::jited_prog_insns`). The code
    /// is never lent out as a `&[u8]`: [`JitImage::poke`] may rewrite a site of it on another
    /// CPU at any time, so implementations read it byte by byte (volatile) into the copy.
    /// `ENOMEM` if the copy cannot be allocated.
    fn code(&self) -> Result<alloc::vec::Vec<u8>>;
    /// Per instruction slot, the offset of its code in [`JitImage::code`] (an `ld_imm64`'s
    /// second slot has the offset of the code after it).
    fn insn_offsets(&self) -> &[u32];
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

/// What a JIT compiles: the program after the load's rewrites, and what the load knows of it.
#[derive(Clone, Copy, Debug)]
pub struct JitProgram<'a> {
    /// The instructions (`xlated`, or its blinded copy).
    pub insns: &'a [Insn],
    /// The program type.
    pub prog_type: ProgType,
    /// The addresses of the program's `used_maps`, in order: what a tail call's
    /// [`crate::insn::TailCallAux::map`] indexes.
    pub maps: &'a [u64],
    /// The verifier accepted the program (not the trusted path): it never reads a register
    /// before writing it, so nothing need be zeroed for it.
    pub verified: bool,
}

/// A JIT backend.
pub trait JitCompiler: Send + Sync {
    /// Compiles a checked, rewritten program; any error means "run it in the interpreter".
    fn compile(&self, prog: &JitProgram<'_>) -> Result<Box<dyn JitImage>>;

    /// Whether the target's 32-bit operations leave the upper half of the register alone, so
    /// that the verifier must insert explicit zero extensions (`bpf_jit_needs_zext()`; x86-64,
    /// whose 32-bit operations zero it, says no).
    fn needs_zext(&self) -> bool {
        false
    }

    /// Compiles a dispatcher: code entered like a program (`enter(func, r1, r2, tcc)`, see
    /// [`enter`]) that runs the JIT'd programs whose entries are `progs`, in order, each with
    /// R1 = `r1`, R2 = `r2` and the counter `*tcc` reset to 0 before it (the first finds it
    /// reset by the run), and returns R0 of the first whose low 32 bits are not `next`, or of
    /// the last (an mprog walk under tcx's rules, compiled; see `mprog::Dispatch`). The image
    /// has no instructions and no poke sites. `ENOTSUPP` (the default) when the backend has
    /// none; any error means "walk".
    fn compile_dispatch(&self, progs: &[usize], next: i32) -> Result<Box<dyn JitImage>> {
        let _ = (progs, next);
        Err(crate::Errno::ENOTSUPP)
    }
}

static JIT: Once<&'static dyn JitCompiler> = Once::new();

/// Registers the JIT backend; the first registration wins. Returns whether this one did.
///
/// A host registers its JIT once, after its [`crate::host::Host`] and before loading
/// programs: on x86-64, `kbpf::jit::register(&kbpf_jit::X86_JIT)`. From then on every load
/// asks it for native code after the rewrites and runs a program it refuses in the
/// interpreter. A backend is any [`JitCompiler`]; this one refuses everything:
///
/// ```
/// # use kbpf::host::{ExecRegion, Host};
/// # use kbpf::sync::cpu::{CpuSlots, Hold};
/// # use kbpf::{Errno, Result};
/// # struct MyHost { cpus: CpuSlots, start: std::time::Instant }
/// # std::thread_local! { static HOLD: Hold = const { Hold::new() }; }
/// # impl Host for MyHost {
/// #     fn nr_cpus(&self) -> usize { self.cpus.nr() }
/// #     fn cpu_enter(&self) -> usize { HOLD.with(|h| self.cpus.enter(h, 0)) }
/// #     fn cpu_exit(&self, cpu: usize) { HOLD.with(|h| self.cpus.exit(h, cpu)) }
/// #     fn ktime_ns(&self) -> u64 { self.start.elapsed().as_nanos() as u64 }
/// #     fn random_u32(&self) -> u32 { self.start.elapsed().subsec_nanos() }
/// #     fn exec_alloc(&self, _len: usize) -> Result<ExecRegion> { Err(Errno::ENOMEM) }
/// #     fn exec_seal(&self, _region: &ExecRegion) -> Result { Err(Errno::EINVAL) }
/// #     fn text_poke(&self, _r: &ExecRegion, _o: usize, _b: &[u8]) -> Result { Err(Errno::EINVAL) }
/// #     fn exec_free(&self, _region: ExecRegion) {}
/// # }
/// # let host = MyHost { cpus: CpuSlots::new(2), start: std::time::Instant::now() };
/// # kbpf::host::register(Box::leak(Box::new(host)));
/// use kbpf::insn::{Insn, exit, mov64_imm};
/// use kbpf::jit::{JitCompiler, JitImage, JitProgram};
/// use kbpf::syscall::{self, TestRun};
/// use kbpf::uapi::ProgType;
/// use kbpf::ProgLoadAttr;
///
/// struct Declines;
///
/// impl JitCompiler for Declines {
///     fn compile(&self, _: &JitProgram<'_>) -> kbpf::Result<Box<dyn JitImage>> {
///         Err(Errno::ENOTSUPP)
///     }
/// }
///
/// static DECLINES: Declines = Declines;
/// kbpf::jit::register(&DECLINES);
/// assert!(kbpf::jit::enabled());
/// let fd = syscall::prog_load(&ProgLoadAttr::new(ProgType::RawBuffer, &[mov64_imm(0, 7), exit()]))?;
/// assert!(!syscall::prog_get(fd)?.jited());
/// let run = syscall::prog_test_run(fd, &mut TestRun { repeat: 1, ..Default::default() })?;
/// assert_eq!(run.retval, 7);
/// # Ok::<(), Errno>(())
/// ```
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

/// A dispatcher for the JIT'd programs at `progs` ([`JitCompiler::compile_dispatch`]), if a
/// JIT is registered and builds one.
pub(crate) fn compile_dispatch(progs: &[usize], next: i32) -> Option<Box<dyn JitImage>> {
    JIT.get()
        .and_then(|jit| jit.compile_dispatch(progs, next).ok())
}

/// Native code for `insns`, if a JIT is registered and accepts the program.
pub(crate) fn select_runtime(prog: &JitProgram<'_>) -> Option<Box<dyn JitImage>> {
    JIT.get().and_then(|jit| jit.compile(prog).ok())
}
