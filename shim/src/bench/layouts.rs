//! `kbpf bench helper-layouts`: the JIT'd helper call of `kbpf bench isa` measured across
//! address-space layouts within one run, to find layouts where it is slow (the layout
//! dependence seen on an Intel host: 0.65 or 1.6 ns per call depending on the run).
//!
//! Two things move, one at a time, while everything else stays put:
//!
//! - the **image**: the helper loop's JIT image is placed 0, 1, 2, … 64-byte chunks further
//!   into its pack (dummy one-chunk programs fill the chunks before it), which moves every call
//!   site and return target relative to the helper and to the loop's own branches (code
//!   alignment, predictor aliasing between image and helper);
//! - the **stack**: the run starts 0, 64, 128, … bytes deeper in the stack, which moves the
//!   frame, the return addresses the calls push and the run's spills relative to the data the
//!   loop touches (4 KiB aliasing of stack slots).
//!
//! Each point is the best of a few trials of the loop of 1000 calls, minus the same loop with
//! `r0 = r1` for the call, per call. A machine where the layout does not matter shows one
//! value everywhere; one where it does shows which offsets are slow.

use super::isa::helper_loop;
use kbpf::syscall::{self, Fd, TestRun};
use kbpf::uapi::ProgType;
use kbpf::{ProgLoadAttr, Result};
use std::hint::black_box;
use std::io::Write;

/// Image offsets tried, in 64-byte chunks (one 4 KiB page's worth).
pub const IMAGE_STEPS: usize = 64;
/// Stack offsets tried, in steps of about 64 bytes (one page's worth).
pub const STACK_STEPS: usize = 64;

/// ns per helper call at each image and stack offset.
#[derive(Clone, Debug)]
pub struct LayoutReport {
    /// By image offset (chunks).
    pub image: Vec<f64>,
    /// By stack depth step.
    pub stack: Vec<f64>,
}

fn load(insns: &[kbpf::insn::Insn]) -> Result<Fd> {
    syscall::prog_load(&ProgLoadAttr::new(ProgType::RawBuffer, insns))
}

/// Best mean ns per run of `fd` over `trials` test runs of `repeat` runs.
fn best(fd: Fd, repeat: u32, trials: u32) -> Result<f64> {
    let h = kbpf::host::get();
    let mut best = f64::INFINITY;
    for _ in 0..trials {
        let t0 = h.ktime_ns();
        syscall::prog_test_run(
            fd,
            &mut TestRun {
                data: &mut [],
                repeat,
                ..Default::default()
            },
        )?;
        best = best.min((h.ktime_ns() - t0) as f64 / repeat as f64);
    }
    Ok(best)
}

/// Runs `f` about `depth * 64` bytes deeper in the stack than the caller.
#[inline(never)]
fn deeper<R>(depth: usize, f: &mut dyn FnMut() -> R) -> R {
    let pad = black_box([0u8; 48]);
    let r = if depth == 0 {
        f()
    } else {
        deeper(depth - 1, f)
    };
    black_box(&pad);
    r
}

/// Measures `repeat` runs per trial.
pub fn measure(repeat: u32) -> Result<LayoutReport> {
    let (with, without) = (helper_loop(true), helper_loop(false));
    let tiny = [kbpf::insn::mov64_imm(0, 0), kbpf::insn::exit()];
    let base_fd = load(&without)?;
    let base = best(base_fd, repeat, 5)?;
    let mut image = Vec::with_capacity(IMAGE_STEPS);
    for k in 0..IMAGE_STEPS {
        // `k` one-chunk programs first: the loop's image lands `k` chunks further on.
        let pads: Vec<Fd> = (0..k).map(|_| load(&tiny)).collect::<Result<_>>()?;
        let fd = load(&with)?;
        image.push((best(fd, repeat, 5)? - base) / 1000.0);
        for p in pads.into_iter().chain([fd]) {
            syscall::close(p)?;
        }
    }
    let fd = load(&with)?;
    let mut stack = Vec::with_capacity(STACK_STEPS);
    for d in 0..STACK_STEPS {
        let ns = deeper(d, &mut || best(fd, repeat, 5))?;
        stack.push((ns - base) / 1000.0);
    }
    syscall::close(fd)?;
    syscall::close(base_fd)?;
    Ok(LayoutReport { image, stack })
}

fn spread(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (s[0], s[s.len() / 2], s[s.len() - 1])
}

/// Prints the report; with `json`, the last line is one JSON object.
pub fn print(
    r: &LayoutReport,
    engine: &str,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "helper call across layouts, engine {engine} (ns per call)"
    )?;
    for (what, v, unit) in [("image", &r.image, "chunk"), ("stack", &r.stack, "step")] {
        let (lo, mid, hi) = spread(v);
        writeln!(
            out,
            "  {what} offsets: min {lo:.2}, median {mid:.2}, max {hi:.2} over {} {unit}s",
            v.len()
        )?;
        let row: Vec<String> = v.iter().map(|ns| format!("{ns:.2}")).collect();
        writeln!(out, "    {}", row.join(" "))?;
    }
    if json {
        let (ilo, imid, ihi) = spread(&r.image);
        let (slo, smid, shi) = spread(&r.stack);
        let j = serde_json::json!({
            "engine": engine,
            "image_min": super::json_num(ilo),
            "image_median": super::json_num(imid),
            "image_max": super::json_num(ihi),
            "stack_min": super::json_num(slo),
            "stack_median": super::json_num(smid),
            "stack_max": super::json_num(shi),
        });
        writeln!(out, "{j}")?;
    }
    Ok(())
}
