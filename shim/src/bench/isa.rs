//! `kbpf bench isa`: the programs the peers were measured with (`research/peers.md` §3.1):
//! a loop of 3003 executed instructions, `r0 = 7; exit` (invocation cost), and a loop of 1000
//! helper calls compared with the same loop where the call is `r0 = r1`.
//!
//! With `blind`, every program is loaded with constant blinding on (`kbpf::blind::set_global`,
//! the kernel's `bpf_jit_harden`), so the figures are those of the blinded code; the loop's
//! count stays the 3003 instructions the program was written with (as the peers count).

use super::{best_ns, json_num};
use kbpf::insn::*;
use kbpf::syscall::{self, Fd};
use kbpf::uapi::{ProgType, alu, func, jmp};
use kbpf::{ProgLoadAttr, Result};
use std::io::Write;

/// `r0 = 0; r1 = 0; L: r0 += r1; r1 += 1; if r1 < 1000 goto L; exit` — 3003 instructions run.
pub fn loop_prog() -> Vec<Insn> {
    vec![
        mov64_imm(0, 0),
        mov64_imm(1, 0),
        alu64_reg(alu::ADD, 0, 1),
        alu64_imm(alu::ADD, 1, 1),
        jmp_imm(jmp::JLT, 1, 1000, -3),
        exit(),
    ]
}

/// `r0 = 7; exit`.
pub fn tiny_prog() -> Vec<Insn> {
    vec![mov64_imm(0, 7), exit()]
}

/// 1000 iterations of `r1 = r7; call <helper>; r6 += r0; r7 += 1; if r7 < 1001 goto loop`, or
/// with `r0 = r1` in place of the call. The helper is the raw-buffer type's helper 5, which
/// returns its argument (the trivial helper of the peers' measurement) and stops the run on 0,
/// so the JIT follows its call with `test rax, rax; jz`.
pub fn helper_loop(with_call: bool) -> Vec<Insn> {
    vec![
        mov64_imm(6, 0),
        mov64_imm(7, 1),
        mov64_reg(1, 7),
        if with_call {
            call_helper(func::CONFORMANCE_UNWIND)
        } else {
            mov64_reg(0, 1)
        },
        alu64_reg(alu::ADD, 6, 0),
        alu64_imm(alu::ADD, 7, 1),
        jmp_imm(jmp::JLT, 7, 1001, -5),
        mov64_reg(0, 6),
        exit(),
    ]
}

/// A helper both kbpf and the host kernel run from a `SCHED_CLS` program: 1000 iterations of
/// `bpf_csum_diff(NULL, 0, NULL, 0, seed = r7)` (which returns its seed folded into 32 bits),
/// summed, or with `r0 = r5` in place of the call — `scripts/compare-helper`'s programs.
pub fn csum_helper_loop(with_call: bool) -> Vec<Insn> {
    vec![
        mov64_imm(6, 0),
        mov64_imm(7, 1),
        mov64_imm(1, 0),
        mov64_imm(2, 0),
        mov64_imm(3, 0),
        mov64_imm(4, 0),
        mov64_reg(5, 7),
        if with_call {
            call_helper(func::CSUM_DIFF)
        } else {
            mov64_reg(0, 5)
        },
        alu64_reg(alu::ADD, 6, 0),
        alu64_imm(alu::ADD, 7, 1),
        jmp_imm(jmp::JLT, 7, 1001, -9),
        mov64_reg(0, 6),
        exit(),
    ]
}

/// What [`csum_helper_loop`] returns (either form): the sum of 1..=1000.
pub const CSUM_LOOP_SUM: u32 = 500_500;

/// The packet the `SCHED_CLS` programs of `scripts/compare-helper` and `compare-invoke` run on.
pub const PACKET: [u8; 64] = [0; 64];

fn load(insns: &[Insn]) -> Result<Fd> {
    syscall::prog_load(&ProgLoadAttr::new(ProgType::RawBuffer, insns))
}

fn load_cls(insns: &[Insn]) -> Result<Fd> {
    syscall::prog_load(&ProgLoadAttr::new(ProgType::SchedCls, insns))
}

/// The `SCHED_CLS` side of the comparison with the host kernel: ns per `bpf_csum_diff` call
/// and ns per run of `r0 = 7; exit`, both through `BPF_PROG_TEST_RUN` on [`PACKET`].
pub fn measure_cls(scale: u32) -> Result<(f64, f64)> {
    let (with, without) = (
        load_cls(&csum_helper_loop(true))?,
        load_cls(&csum_helper_loop(false))?,
    );
    let tiny = load_cls(&tiny_prog())?;
    for fd in [with, without] {
        let r = syscall::prog_test_run(
            fd,
            &mut syscall::TestRun {
                data: &mut PACKET.to_vec(),
                repeat: 1,
                ..Default::default()
            },
        )?;
        if r.retval != u64::from(CSUM_LOOP_SUM) {
            return Err(kbpf::Errno::EINVAL);
        }
    }
    let helper = (best_ns(with, &PACKET, 1_000 * scale, 5)?
        - best_ns(without, &PACKET, 1_000 * scale, 5)?)
        / 1000.0;
    let invoke = best_ns(tiny, &PACKET, 200_000 * scale, 5)?;
    for fd in [with, without, tiny] {
        let _ = syscall::close(fd);
    }
    Ok((helper, invoke))
}

/// A straight-line program of `n` ALU instructions (then `exit`), for load/compile timing. The
/// first ten are moves, so the verifier sees every register written before it is read.
pub fn straight_line(n: usize) -> Vec<Insn> {
    let ops = [alu::ADD, alu::XOR, alu::MUL, alu::OR, alu::SUB, alu::AND];
    let mut p: Vec<Insn> = (0..n)
        .map(|i| {
            let op = if i < 10 { alu::MOV } else { ops[i % ops.len()] };
            alu64_imm(op, (i % 10) as u8, i as i32)
        })
        .collect();
    p.push(exit());
    p
}

/// Best time, in µs, to load (check, pre-decode and — with a JIT registered — compile and
/// install) a 1000-instruction program.
pub fn load_us_per_1k(trials: u32) -> Result<f64> {
    let insns = straight_line(1000);
    let h = kbpf::host::get();
    let mut best = f64::INFINITY;
    for _ in 0..trials {
        let t0 = h.ktime_ns();
        let fd = load(&insns)?;
        let us = (h.ktime_ns() - t0) as f64 / 1000.0;
        syscall::close(fd)?;
        best = best.min(us);
    }
    Ok(best)
}

/// Results of one run.
#[derive(Clone, Copy, Debug)]
pub struct IsaReport {
    /// ns per executed instruction on the loop.
    pub ns_per_insn: f64,
    /// ns per invocation of `r0 = 7; exit` in the test-run loop.
    pub invoke_ns: f64,
    /// ns per `Prog::run` of it (a hook's invocation, guard and counter included).
    pub run_ns: f64,
    /// ns per helper call.
    pub helper_ns: f64,
    /// ns per `call`/`ret` pair in the same loop written by hand (`call_floor`): the floor
    /// `helper_ns` is measured against (NaN off x86-64).
    pub call_floor_ns: f64,
    /// µs to load a 1000-instruction program (with the JIT: compile and install it too).
    pub load_us_per_1k: f64,
    /// ns per `bpf_csum_diff` call from a `SCHED_CLS` program ([`csum_helper_loop`]).
    pub cls_helper_ns: f64,
    /// ns per run of `r0 = 7; exit` as `SCHED_CLS` on a 64-byte packet.
    pub cls_invoke_ns: f64,
    /// Whether the programs ran with their constants blinded.
    pub blinded: bool,
}

/// Measures the three programs; `scale` multiplies the repeat counts (1 = quick); `blind`
/// loads them with constant blinding on (the global switch is restored afterwards).
pub fn measure(scale: u32, blind: bool) -> Result<IsaReport> {
    let was = kbpf::blind::global();
    kbpf::blind::set_global(was || blind);
    let r = measure_loaded(scale);
    kbpf::blind::set_global(was);
    r.map(|r| IsaReport {
        blinded: was || blind,
        ..r
    })
}

/// Best mean ns of one `Prog::run` (recursion guard, counter reset, `jit::enter` or the
/// interpreter, guard released) over 5 batches of `n`, on a held CPU: the cost of an
/// invocation outside the test-run loop (what a hook pays per program).
pub fn run_ns(fd: Fd, n: u32) -> Result<f64> {
    let prog = syscall::prog_get(fd)?;
    let mut g = kbpf::cpu::CpuGuard::enter();
    let h = kbpf::host::get();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t0 = h.ktime_ns();
        for _ in 0..n {
            std::hint::black_box(prog.run(&mut g, 0, 0).ok());
        }
        best = best.min((h.ktime_ns() - t0) as f64 / n as f64);
    }
    Ok(best)
}

fn measure_loaded(scale: u32) -> Result<IsaReport> {
    let lp = load(&loop_prog())?;
    let tiny = load(&tiny_prog())?;
    let with = load(&helper_loop(true))?;
    let without = load(&helper_loop(false))?;
    let loop_ns = best_ns(lp, &[], 2_000 * scale, 5)?;
    let tiny_ns = best_ns(tiny, &[], 200_000 * scale, 5)?;
    let run_ns = run_ns(tiny, 200_000 * scale)?;
    let with_ns = best_ns(with, &[], 1_000 * scale, 5)?;
    let without_ns = best_ns(without, &[], 1_000 * scale, 5)?;
    for fd in [lp, tiny, with, without] {
        let _ = syscall::close(fd);
    }
    let (cls_helper_ns, cls_invoke_ns) = measure_cls(scale)?;
    Ok(IsaReport {
        ns_per_insn: loop_ns / 3003.0,
        invoke_ns: tiny_ns,
        run_ns,
        helper_ns: (with_ns - without_ns) / 1000.0,
        call_floor_ns: super::call_floor::call_floor_ns(scale).unwrap_or(f64::NAN),
        load_us_per_1k: load_us_per_1k(20)?,
        blinded: false,
        cls_helper_ns,
        cls_invoke_ns,
    })
}

/// Prints the report; with `json`, the last line is one JSON object.
pub fn print(r: &IsaReport, engine: &str, json: bool, out: &mut dyn Write) -> std::io::Result<()> {
    let blinded = if r.blinded { ", constants blinded" } else { "" };
    writeln!(out, "isa programs, engine {engine}{blinded}")?;
    writeln!(
        out,
        "  loop (3003 insns): {:.3} ns per instruction",
        r.ns_per_insn
    )?;
    writeln!(
        out,
        "  r0 = 7; exit:      {:.2} ns per invocation",
        r.invoke_ns
    )?;
    writeln!(
        out,
        "  Prog::run of it:   {:.2} ns per invocation",
        r.run_ns
    )?;
    writeln!(
        out,
        "  helper loop:       {:.2} ns per helper call ({:.2} ns for call/ret by hand)",
        r.helper_ns, r.call_floor_ns
    )?;
    writeln!(
        out,
        "  SCHED_CLS: {:.2} ns per bpf_csum_diff call, {:.2} ns per run of r0 = 7; exit",
        r.cls_helper_ns, r.cls_invoke_ns
    )?;
    writeln!(
        out,
        "  load 1K insns:     {:.1} us (checks, pre-decode{})",
        r.load_us_per_1k,
        if engine == "jit" {
            ", JIT compile and install"
        } else {
            ""
        }
    )?;
    if json {
        let j = serde_json::json!({
            "engine": engine,
            "blinded": r.blinded,
            "ns_per_insn": json_num(r.ns_per_insn),
            "invoke_ns": json_num(r.invoke_ns),
            "run_ns": json_num(r.run_ns),
            "helper_ns": json_num(r.helper_ns),
            "call_floor_ns": json_num(r.call_floor_ns),
            "load_us_per_1k": json_num(r.load_us_per_1k),
            "cls_helper_ns": json_num(r.cls_helper_ns),
            "cls_invoke_ns": json_num(r.cls_invoke_ns),
        });
        writeln!(out, "{j}")?;
    }
    Ok(())
}
