//! The host kernel's helper call and invocation, measured as `kbpf bench isa` measures kbpf's
//! `SCHED_CLS` side ([`crate::bench::isa::measure_cls`]), through kbpf's own `bpf(2)` code:
//!
//! - **helper call**: the loop of 1000 `bpf_csum_diff(NULL, 0, NULL, 0, seed)` calls
//!   ([`crate::bench::isa::csum_helper_loop`], a helper both have whose work is nearly nil),
//!   minus the same loop with `r0 = r5` for the call, per call;
//! - **invocation**: `r0 = 7; exit` per run of the `BPF_PROG_TEST_RUN` repeat loop (the
//!   kernel's `bpf_test_run` loop around `bpf_prog_run`, against kbpf's `run_repeat`).
//!
//! Both on a 64-byte packet; trials interleave the three programs; the best (minimum) wall-clock
//! ns per run around the syscall counts, as kbpf's `best_ns` takes the best of 5 trials.

use super::sys::{self, OwnedFd};
use crate::bench::isa::{CSUM_LOOP_SUM, PACKET, csum_helper_loop, tiny_prog};
use std::time::Instant;

/// A `SCHED_CLS` program the host kernel JIT'd.
use super::tailcall::load;

/// Wall ns per run of `repeat` runs, and the return value.
fn run(prog: &OwnedFd, repeat: u32) -> Result<(f64, u32), String> {
    let mut pkt = PACKET;
    let t = Instant::now();
    let r = sys::test_run(prog, &mut pkt, repeat)
        .map_err(|e| format!("BPF_PROG_TEST_RUN: errno {e}"))?;
    Ok((t.elapsed().as_nanos() as f64 / repeat as f64, r.retval))
}

/// `(ns per helper call, ns per invocation)`; `repeat` runs of the helper loops per
/// measurement (200 times as many of `r0 = 7; exit`), `trials` rounds. An error says why the
/// host can't run them.
pub fn measure(repeat: u32, trials: usize) -> Result<(f64, f64), String> {
    super::tailcall::pin();
    let with = load(&csum_helper_loop(true))?;
    let without = load(&csum_helper_loop(false))?;
    let tiny = load(&tiny_prog())?;
    for p in [&with, &without] {
        let got = run(p, 1)?.1;
        if got != CSUM_LOOP_SUM {
            return Err(format!(
                "the helper loop returned {got}, not {CSUM_LOOP_SUM}"
            ));
        }
    }
    let (mut w, mut wo, mut t) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    for _ in 0..trials {
        run(&with, repeat / 10 + 1)?;
        w = w.min(run(&with, repeat)?.0);
        wo = wo.min(run(&without, repeat)?.0);
        t = t.min(run(&tiny, repeat.saturating_mul(200))?.0);
    }
    Ok(((w - wo) / 1000.0, t))
}
