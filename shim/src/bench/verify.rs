//! `kbpf bench verify`: how verification time grows with program size (`bpf_check` in
//! `kernel/bpf/verifier.c`; the kernel reports the same figure as `verification_time` in
//! `bpf_prog_info`). Two program shapes, each verified directly through
//! [`kbpf::verifier::verify`] with a [`VerifierEnv`] (no load path around it):
//!
//! - straight-line ALU code of 1K to 1M instructions (1M = `BPF_MAXINSNS`, which `verify`
//!   accepts: the limits refuse *more* than 1M instructions, and more than 1M processed);
//! - a chain of if/else diamonds on an unknown scalar, each arm ending in the same state, so
//!   that every join point prunes one of the two paths (instructions processed ≈ 1.4× size).
//!   The copy compared is a 32-bit `w0 = w6`: after a 64-bit `r0 = r6` the two registers are
//!   linked (one scalar id, `sync_linked_regs`), each branch bounds r6 too, the arms reach the
//!   join with different precise r6 ranges and work grows with the square of the diamond
//!   count — in Linux as in kbpf (the oracle's `verify-bench` shows both shapes: the 64-bit one
//!   passes the 1M processed-insn limit at 4K instructions).
//!
//! Reported: the best time per size, ns per instruction, and the growth ratio (ns per
//! instruction at the largest size over the smallest): 1.0 is linear. Times are the thread's
//! CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time, so that other load on the machine does
//! not bend the curve; page-fault handling for the verifier's memory counts (it is system
//! time of the thread).

use super::{json_map, json_num};
use kbpf::insn::*;
use kbpf::uapi::limits::BPF_MAXINSNS;
use kbpf::uapi::{ProgType, alu, jmp};
use kbpf::verifier::{VerifierEnv, verify};
use std::io::Write;
use std::time::Instant;

/// This thread's CPU time (user + system), in ns.
fn thread_cpu_ns() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID is available on Linux");
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

/// Sizes of the straight-line programs.
pub const STRAIGHT_SIZES: [usize; 6] = [1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, BPF_MAXINSNS];
/// Sizes of the branchy programs. Larger chains are refused, by Linux as by kbpf: the path
/// walked first leaves one pending branch per diamond, and more than 8,192 pending is "the
/// sequence of 8193 jumps is too complex" (`BPF_COMPLEXITY_LIMIT_JMP_SEQ`), from 64K insns on.
pub const BRANCHY_SIZES: [usize; 3] = [1 << 10, 1 << 12, 1 << 14];

/// A straight-line program of exactly `n` instructions (`n >= 12`): ten moves, ALU operations
/// on r0..r9, `exit`.
pub fn straight(n: usize) -> Vec<Insn> {
    let ops = [alu::ADD, alu::XOR, alu::MUL, alu::OR, alu::SUB, alu::AND];
    let mut p: Vec<Insn> = (0..n - 1)
        .map(|i| {
            let op = if i < 10 { alu::MOV } else { ops[i % ops.len()] };
            alu64_imm(op, (i % 10) as u8, i as i32)
        })
        .collect();
    p.push(exit());
    p
}

/// About `n` instructions of diamonds: `r6 = *(u64 *)ctx`, then per diamond
/// `w0 = w6; if r0 > K goto +2; r0 = 0; goto +1; r0 = 0`, then `exit`. Both arms leave the same
/// state, so the state stored at each join prunes the second arm (a 32-bit move of a 64-bit
/// unknown gives r0 no link to r6; see the module docs).
pub fn branchy(n: usize) -> Vec<Insn> {
    let mut p = vec![ldx_mem(Size::DW, 6, 1, 0)];
    let mut k = 0;
    while p.len() + 5 < n {
        p.extend_from_slice(&[
            mov32_reg(0, 6),
            jmp_imm(jmp::JGT, 0, k, 2),
            mov64_imm(0, 0),
            ja(1),
            mov64_imm(0, 0),
        ]);
        k += 7;
    }
    p.push(exit());
    p
}

/// Best verification time (thread CPU time) of `insns`, in ns, over `trials` runs, and more
/// runs until ~0.2 s of wall time have passed.
pub fn time_verify(insns: &[Insn], trials: u32) -> Result<f64, String> {
    let env = VerifierEnv {
        ctx_size: 8,
        ..VerifierEnv::new(ProgType::RawBuffer)
    };
    let mut best = f64::INFINITY;
    let start = Instant::now();
    let mut i = 0;
    while i < trials || start.elapsed().as_millis() < 200 {
        let t0 = thread_cpu_ns();
        let r = verify(insns, &env);
        let ns = thread_cpu_ns() - t0;
        r.map_err(|e| format!("{} insns refused: {e}", insns.len()))?;
        best = best.min(ns);
        i += 1;
    }
    Ok(best)
}

/// Results: (size, best ns) per shape.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// Straight-line programs.
    pub straight: Vec<(usize, f64)>,
    /// Diamond chains.
    pub branchy: Vec<(usize, f64)>,
}

/// Measures both shapes at every size.
pub fn measure(trials: u32) -> Result<VerifyReport, String> {
    let run = |sizes: &[usize], make: fn(usize) -> Vec<Insn>| {
        sizes
            .iter()
            .map(|&n| {
                let p = make(n);
                time_verify(&p, trials).map(|ns| (p.len(), ns))
            })
            .collect::<Result<Vec<_>, String>>()
    };
    Ok(VerifyReport {
        straight: run(&STRAIGHT_SIZES, straight)?,
        branchy: run(&BRANCHY_SIZES, branchy)?,
    })
}

/// ns per instruction at the largest size over that at the smallest.
fn growth(rows: &[(usize, f64)]) -> f64 {
    let per = |&(n, ns): &(usize, f64)| ns / n as f64;
    match (rows.first(), rows.last()) {
        (Some(a), Some(b)) => per(b) / per(a),
        _ => f64::NAN,
    }
}

/// Prints the table, then (with `json`) one JSON object on the last line.
pub fn print(r: &VerifyReport, json: bool, out: &mut dyn Write) -> std::io::Result<()> {
    for (name, rows) in [("straight-line", &r.straight), ("diamonds", &r.branchy)] {
        writeln!(out, "verify, {name} programs")?;
        for &(n, ns) in rows.iter() {
            writeln!(
                out,
                "  {n:>8} insns: {:10.3} ms, {:7.2} ns per insn",
                ns / 1e6,
                ns / n as f64
            )?;
        }
        writeln!(
            out,
            "  growth (ns per insn, largest / smallest): {:.2}x",
            growth(rows)
        )?;
    }
    if json {
        let per = |_: usize, ns: f64| ns;
        let per_insn = |n: usize, ns: f64| ns / n as f64;
        let j = serde_json::json!({
            "straight_ns": json_map(&r.straight, per),
            "branchy_ns": json_map(&r.branchy, per),
            "ns_per_insn": {
                "straight": json_map(&r.straight, per_insn),
                "branchy": json_map(&r.branchy, per_insn),
            },
            "growth": {
                "straight": json_num(growth(&r.straight)),
                "branchy": json_num(growth(&r.branchy)),
            },
        });
        writeln!(out, "{j}")?;
    }
    Ok(())
}
