//! Shared setup for the kbpf criterion benchmarks: load programs through the syscall facade and
//! run them directly on a held CPU, so a measurement is the program and nothing around it.

pub mod host_table;

use kbpf::Prog;
use kbpf::cpu::CpuGuard;
use kbpf::sync::Arc;
use kbpf::syscall::Fd;

/// Installs the user-mode host (idempotent).
pub fn setup() {
    kbpf_shim::host::install();
}

/// The program behind a handle.
pub fn prog(fd: Fd) -> Arc<Prog> {
    kbpf::syscall::prog_get(fd).expect("program handle")
}

/// Runs `prog` once on `ctx` inside `guard`; returns R0.
#[inline]
pub fn run(prog: &Prog, guard: &mut CpuGuard, ctx: &mut [u8]) -> u64 {
    prog.run(guard, ctx.as_mut_ptr() as u64, ctx.len() as u64)
        .expect("no fault")
}
