//! Several program runs under one recursion guard: what the kernel's run-array walkers do
//! (`bpf_prog_run_array`, `BPF_PROG_SK_LOOKUP_RUN_ARRAY`: `migrate_disable` once around the
//! array, `bpf_prog_run` per program).
//!
//! [`RunBatch::begin`] takes the CPU's run state once (refusing a batch nested in another run
//! on the same CPU, as [`Prog::run`] does); [`RunBatch::run`] then runs one program with a
//! fresh tail-call budget, on either engine. No lock, no allocation.

use super::Prog;
use crate::cpu::{CpuGuard, CpuState, Fault};

/// An open batch of runs on the CPU a guard holds.
pub struct RunBatch<'g> {
    guard: &'g mut CpuGuard,
    state: *mut CpuState,
}

impl<'g> RunBatch<'g> {
    /// Starts a batch (`begin_run`): `Fault::Recursion` inside another run on this CPU.
    #[inline]
    pub fn begin(guard: &'g mut CpuGuard) -> Result<RunBatch<'g>, Fault> {
        let state = guard.begin_run(0)?;
        Ok(RunBatch { guard, state })
    }

    /// The guard the batch runs on (its read-side section lasts as long as the batch).
    #[inline]
    pub fn guard(&self) -> &CpuGuard {
        self.guard
    }

    /// Runs `prog` with R1 = `r1` (R2 = 0); returns R0.
    #[inline]
    pub fn run(&mut self, prog: &Prog, r1: u64) -> Result<u64, Fault> {
        let state = self.state;
        // SAFETY: `state` is this batch's until `end_run` (`begin_run`); each run starts with a
        // fresh tail-call budget, as `begin_run` gives a single run.
        unsafe { (*state).tail_call_cnt = 0 };
        if prog.bpf_func == 0 {
            // SAFETY: as above: the state is exclusively this run's.
            unsafe { crate::interp::run(prog, state, r1, 0) }
        } else {
            // SAFETY: as in `Prog::run`: `bpf_func` is the entry of the program's sealed image,
            // we run on the CPU the guard holds inside its read-side section, and the counter
            // is valid, aligned and this run's alone.
            Ok(unsafe {
                crate::jit::enter(
                    prog.bpf_func,
                    r1,
                    0,
                    core::ptr::addr_of_mut!((*state).tail_call_cnt),
                )
            })
        }
    }
}

impl Drop for RunBatch<'_> {
    #[inline]
    fn drop(&mut self) {
        self.guard.end_run();
    }
}
