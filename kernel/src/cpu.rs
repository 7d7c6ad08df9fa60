//! The run context: a CPU the thread holds, inside an RCU read-side section, with that CPU's
//! BPF state (tail-call counter, interpreter stack).
//!
//! Mirrors what `bpf_prog_run()` relies on in Linux: `migrate_disable()`/preemption off around
//! the run, `rcu_read_lock()`, and per-CPU data such as the tail-call count the x86 JIT keeps on
//! the stack and the interpreter keeps in a local. Here the count lives in the CPU's
//! [`CpuState`], reset at every top-level entry, so the interpreter and the JIT read and write
//! the same word.

use crate::host;
use crate::interp::Fault;
use crate::sync::percpu::PerCpu;
use crate::sync::rcu::{RcuDomain, RcuReadGuard};
use crate::uapi::limits::{MAX_BPF_STACK, MAX_CALL_FRAMES, MAX_TAIL_CALL_CNT};
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use spin::Once;

/// The deepest a run can nest frames. Each program may nest `MAX_CALL_FRAMES` (the verifier's
/// static rule), and a tail call made inside a subprogram keeps the frames below it (the
/// tail-called program returns to the subprogram's caller), so each of the 33 tail calls can add
/// up to `MAX_CALL_FRAMES - 1` frames.
pub const MAX_RUN_FRAMES: usize =
    MAX_CALL_FRAMES + MAX_TAIL_CALL_CNT as usize * (MAX_CALL_FRAMES - 1);

/// Bytes of interpreter stack a CPU keeps: one `MAX_BPF_STACK` frame per possible frame.
pub const INTERP_STACK_BYTES: usize = MAX_BPF_STACK * MAX_RUN_FRAMES;

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
}

/// Distance from [`CpuState::tail_call_cnt`] (what JIT'd code holds a pointer to) to
/// [`CpuState::entry_r2`].
pub const TAIL_CALL_CNT_TO_ENTRY_R2: i32 = (core::mem::offset_of!(CpuState, entry_r2)
    - core::mem::offset_of!(CpuState, tail_call_cnt))
    as i32;
static_assertions::const_assert_eq!(TAIL_CALL_CNT_TO_ENTRY_R2, 8);

struct Globals {
    rcu: RcuDomain,
    cpus: PerCpu<CpuState>,
}

static GLOBALS: Once<Globals> = Once::new();

fn globals() -> &'static Globals {
    GLOBALS.call_once(|| {
        let n = host::get().nr_cpus().max(1);
        Globals {
            rcu: RcuDomain::new(n),
            cpus: PerCpu::new(n, |_| CpuState {
                tail_call_cnt: 0,
                run_depth: 0,
                entry_r2: 0,
                stack: [0; INTERP_STACK_BYTES / 8],
            }),
        }
    })
}

/// The RCU domain that protects everything programs read: prog_array slots, mprog entries,
/// map elements, and the objects themselves until their grace period ends.
pub fn rcu() -> &'static RcuDomain {
    &globals().rcu
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

/// A CPU held by this thread, inside an RCU read-side section: the context every program run
/// needs. Not `Send`: it stands for "this thread, on this CPU".
#[must_use = "the CPU is released as soon as the guard is dropped"]
pub struct CpuGuard {
    cpu: usize,
    /// This CPU's state, looked up once at entry so that each run starts with one load.
    state: *mut CpuState,
    rcu: ManuallyDrop<RcuReadGuard<'static>>,
    _not_send: PhantomData<*mut ()>,
}

impl CpuGuard {
    /// Enters: takes a CPU from the host (nestable) and opens a read-side section on it.
    #[inline]
    pub fn enter() -> CpuGuard {
        let g = globals();
        let cpu = host::get().cpu_enter();
        // SAFETY: this thread holds `cpu` exclusively (host contract) for the guard's life; the
        // per-CPU array lives as long as the globals (forever), so the pointer stays valid.
        // Users dereference it only for the duration of one run (see `state`).
        let state = unsafe { g.cpus.get_mut(cpu) as *mut CpuState };
        CpuGuard {
            cpu,
            state,
            rcu: ManuallyDrop::new(g.rcu.read_lock(cpu)),
            _not_send: PhantomData,
        }
    }

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
        // Valid for the guard's life (see `enter`); users dereference it only for the duration
        // of one run, nested runs included, which are strictly bracketed on this thread.
        self.state
    }
}

impl CpuGuard {
    /// Starts a program run on this CPU: refuses a run nested in another on the same CPU (the
    /// kernel's per-CPU recursion guard, `bpf_prog_active`), resets the tail-call counter, and
    /// hands the run its CPU state until [`CpuGuard::end_run`].
    #[inline]
    pub(crate) fn begin_run(&mut self, r2: u64) -> Result<*mut CpuState, Fault> {
        let state = self.state();
        // SAFETY: this thread holds the CPU; no run is active on it (checked), so nothing else
        // references its state.
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

    /// Ends the run [`CpuGuard::begin_run`] started.
    #[inline]
    pub(crate) fn end_run(&mut self, state: *mut CpuState) {
        // SAFETY: `state` came from `begin_run` on this guard; the run is over.
        unsafe { (*state).run_depth = 0 };
    }
}

impl Drop for CpuGuard {
    #[inline]
    fn drop(&mut self) {
        // The read-side section is keyed to the CPU slot, so it must end before the slot goes
        // back to the host, where another thread could claim it.
        // SAFETY: `rcu` is dropped exactly once, here, and not touched afterwards.
        unsafe { ManuallyDrop::drop(&mut self.rcu) };
        host::get().cpu_exit(self.cpu);
    }
}
