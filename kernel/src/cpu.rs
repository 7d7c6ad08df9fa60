//! The run context: a CPU the thread holds, inside an RCU read-side section, with that CPU's
//! BPF state (tail-call counter, recursion guard, interpreter stack and frames), and why a run
//! can stop abnormally ([`Fault`]).
//!
//! Mirrors what `bpf_prog_run()` relies on in Linux: `migrate_disable()`/preemption off around
//! the run, `rcu_read_lock()`, and per-CPU data such as the tail-call count the x86 JIT keeps on
//! the stack and the interpreter keeps in a local. Here the count lives in the CPU's
//! [`CpuState`], reset at every top-level entry, so the interpreter and the JIT read and write
//! the same word.
//!
//! [`CpuGuard`] is the run context every caller uses: a [`HeldCpu`] of the global [`Cpus`]. The
//! protocol lives in [`Cpus`] and [`HeldCpu`], which loom models build per model run
//! (`loom-tests/tests/cpu_guard.rs`).

use crate::host::{self, Host};
use crate::sync::percpu::PerCpu;
use crate::sync::rcu::{RcuDomain, RcuReadGuard};
use crate::uapi::limits::{MAX_BPF_STACK, MAX_CALL_FRAMES, MAX_TAIL_CALL_CNT};
use core::marker::PhantomData;
use core::mem::{ManuallyDrop, MaybeUninit};
use core::ops::{Deref, DerefMut};
use spin::Once;

/// The deepest a run can nest frames. Each program may nest `MAX_CALL_FRAMES` (the verifier's
/// static rule), and a tail call made inside a subprogram keeps the frames below it (the
/// tail-called program returns to the subprogram's caller), so each of the 33 tail calls can add
/// up to `MAX_CALL_FRAMES - 1` frames.
pub const MAX_RUN_FRAMES: usize =
    MAX_CALL_FRAMES + MAX_TAIL_CALL_CNT as usize * (MAX_CALL_FRAMES - 1);

/// Bytes of interpreter stack a CPU keeps: one `MAX_BPF_STACK` frame per possible frame.
pub const INTERP_STACK_BYTES: usize = MAX_BPF_STACK * MAX_RUN_FRAMES;

/// Words in one interpreter call-frame record (return slot, caller's program, its R6–R9 and
/// frame pointer, `may_goto` budget, segment base). The record's layout is the interpreter's;
/// it checks that it fits.
pub(crate) const INTERP_FRAME_WORDS: usize = 9;

/// Storage for one interpreter call-frame record, opaque to the run context.
pub(crate) type InterpFrameSlot = MaybeUninit<[u64; INTERP_FRAME_WORDS]>;

/// Why a run stopped abnormally. A verified program never faults; these cover what only the
/// verifier can rule out statically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// More than `MAX_CALL_FRAMES` nested BPF-to-BPF calls within one program.
    CallDepth,
    /// `callx` to an id the program type does not offer.
    UnknownHelper(u64),
    /// A helper's map argument is not one of the program's maps.
    BadMapArg,
    /// An atomic access at a misaligned address.
    Misaligned(u64),
    /// A program run started while another run was active on the same CPU. Like the kernel's
    /// per-CPU recursion guard (`bpf_prog_active`), the nested run is refused, not executed.
    Recursion,
}

/// Per-CPU BPF run state.
#[repr(C)]
pub struct CpuState {
    /// Successful tail calls in the current top-level run (`tail_call_cnt`).
    pub tail_call_cnt: u32,
    /// Whether a program run is active on this CPU (the recursion guard).
    pub run_depth: u32,
    /// R2 at the run's entry (a raw-buffer program's length). Every tail call, in both engines,
    /// puts it back in R2, so a tail-called program starts as the verifier assumed; R1–R5 are
    /// caller-saved at a call, so a failed tail call may clobber R2 too.
    pub entry_r2: u64,
    /// The interpreter's stack. Kept between runs (not zeroed per run, like the kernel's
    /// stack).
    pub stack: [u64; INTERP_STACK_BYTES / 8],
    /// The interpreter's call-frame records, one per nested frame of a run: per CPU rather than
    /// on the native stack (about 17 KiB, more than a kernel stack holds).
    pub(crate) frames: [InterpFrameSlot; MAX_RUN_FRAMES],
}

/// Distance from [`CpuState::tail_call_cnt`] (what JIT'd code holds a pointer to) to
/// [`CpuState::entry_r2`].
pub const TAIL_CALL_CNT_TO_ENTRY_R2: i32 = (core::mem::offset_of!(CpuState, entry_r2)
    - core::mem::offset_of!(CpuState, tail_call_cnt))
    as i32;
static_assertions::const_assert_eq!(TAIL_CALL_CNT_TO_ENTRY_R2, 8);

impl CpuState {
    fn new() -> Self {
        CpuState {
            tail_call_cnt: 0,
            run_depth: 0,
            entry_r2: 0,
            stack: [0; INTERP_STACK_BYTES / 8],
            frames: [const { MaybeUninit::uninit() }; MAX_RUN_FRAMES],
        }
    }
}

/// Whether the run has spent its tail-call budget (`tail_call_cnt >= MAX_TAIL_CALL_CNT`): a
/// tail call then falls through without looking at the slot. With [`count_tail_call`], the
/// interpreter's tail-call accounting (JIT'd code emits the same steps inline); an empty slot
/// uses no budget, so a tail call counts only once it has found its target.
///
/// # Safety
/// `state` is the state of a run in progress on the caller's CPU (between
/// [`HeldCpu::begin_run`] and [`HeldCpu::end_run`]).
#[inline(always)]
pub unsafe fn tail_call_budget_spent(state: *const CpuState) -> bool {
    // SAFETY: `state` is this run's (caller contract); nothing else writes it meanwhile.
    unsafe { (*state).tail_call_cnt >= MAX_TAIL_CALL_CNT }
}

/// Counts one tail call that found its target (see [`tail_call_budget_spent`]).
///
/// # Safety
/// As for [`tail_call_budget_spent`], which the caller checked first.
#[inline(always)]
pub unsafe fn count_tail_call(state: *mut CpuState) {
    // SAFETY: `state` is this run's (caller contract); no other reference to it is alive.
    unsafe { (*state).tail_call_cnt += 1 };
}

/// The CPUs programs run on: the RCU domain whose readers they are, and each CPU's BPF state.
/// One global instance serves every run ([`CpuGuard`]); loom models build their own.
pub struct Cpus {
    rcu: RcuDomain,
    states: PerCpu<CpuState>,
}

impl Cpus {
    /// `nr_cpus` CPUs (at least one), idle.
    pub fn new(nr_cpus: usize) -> Self {
        let n = nr_cpus.max(1);
        Cpus {
            rcu: RcuDomain::new(n),
            states: PerCpu::new(n, |_| CpuState::new()),
        }
    }

    /// The RCU domain whose read-side sections [`Cpus::enter`] opens.
    pub fn rcu(&self) -> &RcuDomain {
        &self.rcu
    }

    /// Enters: takes a CPU from `host` (nestable) and opens a read-side section on it. The
    /// host's CPUs are this set's: `host.cpu_enter()` returns an index below [`Cpus::new`]'s
    /// count.
    #[inline]
    pub fn enter<'a>(&'a self, host: &'a dyn Host) -> HeldCpu<'a> {
        let cpu = host.cpu_enter();
        // INVARIANT: the state pointer is only dereferenced inside a run (`begin_run` ..
        // `end_run`) and each access is a place expression or a borrow that ends within it;
        // no reference to the state lives across a run's end. This thread holds `cpu`
        // exclusively (host contract) until the matching `cpu_exit`. A nested `cpu_enter` on
        // this thread returns the same CPU, so a second `HeldCpu` carries the same pointer;
        // its `begin_run` finds `run_depth != 0` while the outer run is active and is refused,
        // so the two never hold the state at the same time. A CPU passes to another thread
        // only after `cpu_exit`, which the host orders before that thread's `cpu_enter`
        // (release/acquire), so what a run wrote is visible to the next holder.
        let state = self.states.as_ptr(cpu);
        HeldCpu {
            cpu,
            state,
            rcu: ManuallyDrop::new(self.rcu.read_lock(cpu)),
            host,
            _not_send: PhantomData,
        }
    }
}

static GLOBALS: Once<Cpus> = Once::new();

fn globals() -> &'static Cpus {
    GLOBALS.call_once(|| Cpus::new(host::get().nr_cpus()))
}

/// The RCU domain that protects everything programs read: prog_array slots, mprog entries,
/// map elements, and the objects themselves until their grace period ends.
pub fn rcu() -> &'static RcuDomain {
    globals().rcu()
}

/// Waits for a grace period (`synchronize_rcu`). Must not be called while holding a
/// [`CpuGuard`] on this thread.
pub fn synchronize_rcu() {
    rcu().synchronize();
}

/// Runs `f` after a grace period (`call_rcu`).
pub fn call_rcu(f: alloc::boxed::Box<dyn FnOnce() + Send>) {
    rcu().call_rcu(f);
}

/// A CPU held by this thread from a set of [`Cpus`], inside an RCU read-side section: the
/// context a program run needs. Not `Send`: it stands for "this thread, on this CPU".
#[must_use = "the CPU is released as soon as the guard is dropped"]
pub struct HeldCpu<'a> {
    cpu: usize,
    /// This CPU's state, looked up once at entry so that each run starts with one load.
    state: *mut CpuState,
    rcu: ManuallyDrop<RcuReadGuard<'a>>,
    host: &'a dyn Host,
    _not_send: PhantomData<*mut ()>,
}

impl HeldCpu<'_> {
    /// The CPU this thread holds.
    #[inline]
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// This CPU's BPF state.
    ///
    /// Taking `&mut self` keeps a second borrow through this guard out; a nested guard on the
    /// same thread is a different guard, which is why runs check `run_depth` before using it.
    #[inline]
    pub fn state(&mut self) -> *mut CpuState {
        // Valid for the guard's life (see `Cpus::enter`); users dereference it only for the
        // duration of one run, nested runs included, which are strictly bracketed on this
        // thread.
        self.state
    }

    /// Starts a program run on this CPU: refuses a run nested in another on the same CPU (the
    /// kernel's per-CPU recursion guard, `bpf_prog_active`), resets the tail-call counter, and
    /// hands the run its CPU state until [`HeldCpu::end_run`].
    #[inline]
    pub fn begin_run(&mut self, r2: u64) -> Result<*mut CpuState, Fault> {
        let state = self.state();
        // SAFETY: this thread holds the CPU; no run is active on it (checked), so nothing else
        // references its state (the invariant stated in `Cpus::enter`).
        unsafe {
            if (*state).run_depth != 0 {
                return Err(Fault::Recursion);
            }
            (*state).run_depth = 1;
            (*state).tail_call_cnt = 0;
            (*state).entry_r2 = r2;
        }
        Ok(state)
    }

    /// Ends the run [`HeldCpu::begin_run`] started.
    #[inline]
    pub fn end_run(&mut self) {
        // SAFETY: the state pointer is valid for the guard's life (`Cpus::enter`); the run that
        // `begin_run` started on this guard is over, so nothing else references the state.
        unsafe { (*self.state).run_depth = 0 };
    }
}

impl Drop for HeldCpu<'_> {
    #[inline]
    fn drop(&mut self) {
        // The read-side section is keyed to the CPU slot, so it must end before the slot goes
        // back to the host, where another thread could claim it.
        // SAFETY: `rcu` is dropped exactly once, here, and not touched afterwards.
        unsafe { ManuallyDrop::drop(&mut self.rcu) };
        self.host.cpu_exit(self.cpu);
    }
}

/// A CPU held by this thread, inside a read-side section of [`rcu`]: the context every program
/// run needs (a [`HeldCpu`] of the global [`Cpus`], which the registered host's CPUs index).
/// Not `Send`: it stands for "this thread, on this CPU".
#[must_use = "the CPU is released as soon as the guard is dropped"]
pub struct CpuGuard(HeldCpu<'static>);

impl CpuGuard {
    /// Enters: takes a CPU from the registered host (nestable) and opens a read-side section
    /// of [`rcu`] on it.
    #[inline]
    pub fn enter() -> CpuGuard {
        CpuGuard(globals().enter(host::get()))
    }
}

impl Deref for CpuGuard {
    type Target = HeldCpu<'static>;
    #[inline]
    fn deref(&self) -> &HeldCpu<'static> {
        &self.0
    }
}

impl DerefMut for CpuGuard {
    #[inline]
    fn deref_mut(&mut self) -> &mut HeldCpu<'static> {
        &mut self.0
    }
}
