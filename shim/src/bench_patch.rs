//! `kbpf bench patch`: the list patcher against the kernel's one-at-a-time patcher.
//!
//! The workload is the RFC's ("bpf: accelerate insn patching speed", 2019) table: programs with
//! 15K, 45K, 95K, 195K and 1M patches, plus 64K (the size our speed target names). Every
//! patch replaces one `alu64 dst, imm` by the three instructions constant blinding emits
//! (`mov ax, imm ^ r; xor ax, r; alu64 dst, ax`), as `bpf_jit_blind_constants()` does; the
//! program also has a conditional jump every eight slots, four subprograms and one line-info
//! entry per group, so jumps, starts and line info are all relocated. Both sides carry 8-byte
//! aux data per instruction. The list is timed end to end (build, patch, linearize with the
//! verifier's tables); the baseline ([`kbpf::patch::baseline`], Linux's `bpf_patch_insn_data()`)
//! only at sizes its quadratic cost allows: in the quick mode the baseline gets a budget of
//! about 12 s in all, sizes are run smallest first and a size is skipped when the previous
//! time, scaled by the square of the size ratio, would exceed what is left. `--full` times the
//! baseline at every size up to 64K patches (15K, 45K and 64K: tens of seconds), so the
//! speed-up at 64K is measured rather than extrapolated; beyond 64K it would take minutes. The
//! criterion bench (`benches/benches/patch.rs`) uses the same workload.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use kbpf::insn::{Insn, alu64_imm, alu64_reg, exit, jmp_imm, mov64_imm};
use kbpf::patch::baseline::ArrayProg;
use kbpf::patch::{FuncInfo, LineInfo, PatchList, VerifierEnv};
use kbpf::uapi::{alu, class, jmp, src};

/// Patch counts of the table (the RFC's, plus 64K = 65 536).
pub const SIZES: [usize; 6] = [15_000, 45_000, 65_536, 95_000, 195_000, 1_000_000];

/// The largest size `--full` times the baseline at (64K patches).
pub const FULL_BASELINE_MAX: usize = 65_536;

/// Register constant blinding uses as scratch (`BPF_REG_AX`).
const AX: u8 = 11;
/// The blinding key of this workload.
const KEY: i32 = 0x5a5a_1234;
/// Patchable instructions per group (each group starts with one conditional jump).
const GROUP: usize = 7;

/// A program with exactly `patches` patchable instructions, and its side tables.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Instruction slots.
    pub insns: Vec<Insn>,
    /// Aux data per slot.
    pub aux: Vec<u64>,
    /// Subprogram starts.
    pub subprog_starts: Vec<u32>,
    /// Function info, one per subprogram.
    pub func_info: Vec<FuncInfo>,
    /// Line info, one entry per group.
    pub line_info: Vec<LineInfo>,
}

/// Builds the workload for `patches` patches.
pub fn workload(patches: usize) -> Workload {
    let mut insns = Vec::with_capacity(patches + patches / GROUP + 2);
    let mut line_info = Vec::new();
    let mut left = patches;
    while left > 0 {
        let n = left.min(GROUP);
        line_info.push(LineInfo {
            insn_off: insns.len() as u32,
            file_name_off: 1,
            line_off: 2 + line_info.len() as u32,
            line_col: (line_info.len() as u32) << 10,
        });
        // Jump over the group's patchable instructions to the next group.
        insns.push(jmp_imm(jmp::JNE, 1, n as i32, n as i16));
        for k in 0..n {
            insns.push(alu64_imm(alu::ADD, (k % 10) as u8, (left - k) as i32));
        }
        left -= n;
    }
    insns.push(exit());
    let len = insns.len() as u32;
    let subprog_starts: Vec<u32> = (0..4)
        .map(|q| line_info[line_info.len() * q / 4].insn_off)
        .collect::<Vec<_>>();
    let mut subprog_starts = subprog_starts;
    subprog_starts.dedup();
    Workload {
        aux: (0..len as u64).collect(),
        func_info: subprog_starts
            .iter()
            .map(|&s| FuncInfo {
                insn_off: s,
                type_id: 3,
            })
            .collect(),
        subprog_starts,
        line_info,
        insns,
    }
}

/// The blinding patch for `insn`, if it is an `alu64 dst, imm` (not a `mov` into `AX`).
#[inline]
fn blind(insn: &Insn) -> Option<[Insn; 3]> {
    if insn.class() != class::ALU64 || insn.code & src::X != 0 || insn.dst() == AX {
        return None;
    }
    let op = insn.code & 0xf0;
    Some([
        mov64_imm(AX, insn.imm ^ KEY),
        alu64_imm(alu::XOR, AX, KEY),
        alu64_reg(op, insn.dst(), AX),
    ])
}

/// What a patcher produced: instructions and the verifier's tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Final instructions.
    pub insns: Vec<Insn>,
    /// Subprogram starts.
    pub subprog_starts: Vec<u32>,
    /// Line info.
    pub line_info: Vec<LineInfo>,
}

/// The list patcher, end to end: build, one blinding pass, linearize.
pub fn run_list(w: &Workload) -> Output {
    let mut list = PatchList::with_aux(&w.insns, w.aux.clone()).expect("valid workload");
    let mut cur = list.cursor();
    while let Some(id) = cur.next(&list) {
        if let Some(p) = list.insn(id).as_ref().and_then(blind) {
            list.replace(id, &p).expect("patch");
        }
    }
    let mut line_info = w.line_info.clone();
    let mut subprog_starts = w.subprog_starts.clone();
    let mut func_info = w.func_info.clone();
    let mut aux = Vec::new();
    let insns = list
        .linearize(
            &mut line_info,
            Some(VerifierEnv {
                aux: &mut aux,
                subprog_starts: &mut subprog_starts,
                func_info: &mut func_info,
            }),
        )
        .expect("linearize");
    Output {
        insns,
        subprog_starts,
        line_info,
    }
}

/// The kernel-style baseline: one `bpf_patch_insn_data()` per patch.
pub fn run_baseline(w: &Workload) -> Output {
    let mut prog = ArrayProg {
        insns: w.insns.clone(),
        aux: w.aux.clone(),
        subprog_starts: w.subprog_starts.clone(),
        func_info: w.func_info.clone(),
        line_info: w.line_info.clone(),
    };
    let mut pos = 0;
    while pos < prog.insns.len() {
        match blind(&prog.insns[pos]) {
            Some(p) => {
                prog.patch_insn_data(pos as u32, &p).expect("patch");
                pos += p.len();
            }
            None => pos += 1,
        }
    }
    Output {
        insns: prog.insns,
        subprog_starts: prog.subprog_starts,
        line_info: prog.line_info,
    }
}

/// Whether the baseline is timed at `n` patches: with `full`, up to [`FULL_BASELINE_MAX`];
/// otherwise when the `predicted` time (the previous size's, scaled by the square of the size
/// ratio; none for the first size) fits in what is `left` of the quick budget.
fn baseline_timed(full: bool, n: usize, predicted: Option<Duration>, left: Duration) -> bool {
    if full {
        n <= FULL_BASELINE_MAX
    } else {
        predicted.is_none_or(|p| p <= left)
    }
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let r = f();
    (t.elapsed(), r)
}

/// `kbpf bench patch [--full] [--json]`: a table on `out`, and with `json` a last line
/// `{"full": bool, "list_ns": {"N": ns, …}, "baseline_ns": {"N": ns, …}, "speedup": {"N": x, …}}`
/// (sizes whose baseline was skipped are absent from the last two). Without `full`, the
/// baseline runs within the quick budget; with it, at every size up to [`FULL_BASELINE_MAX`].
pub fn run(full: bool, json: bool, out: &mut dyn Write) -> io::Result<()> {
    let budget = Duration::from_secs(12);
    let mut spent = Duration::ZERO;
    let mut last: Option<(usize, Duration)> = None;
    let mut list_ns = Vec::new();
    let mut base_ns = Vec::new();
    let mut skipped = Vec::new();
    writeln!(
        out,
        "{:>9}  {:>12}  {:>14}  {:>9}",
        "patches", "list", "baseline", "speedup"
    )?;
    for &n in &SIZES {
        let w = workload(n);
        // Best of a few runs for the list (it is fast); one for the baseline.
        let runs = if n <= 200_000 { 5 } else { 3 };
        let mut best = Duration::MAX;
        let mut list_out = None;
        for _ in 0..runs {
            let (d, o) = time(|| run_list(&w));
            best = best.min(d);
            list_out = Some(o);
        }
        list_ns.push((n, best.as_nanos()));
        let predicted = last.map(|(m, d)| d.mul_f64((n as f64 / m as f64).powi(2)));
        let base = if baseline_timed(full, n, predicted, budget.saturating_sub(spent)) {
            let (d, o) = time(|| run_baseline(&w));
            assert_eq!(Some(o), list_out, "list and baseline disagree at {n}");
            spent += d;
            last = Some((n, d));
            base_ns.push((n, d.as_nanos()));
            Some(d)
        } else {
            skipped.push(n);
            None
        };
        match base {
            Some(b) => writeln!(
                out,
                "{n:>9}  {:>9.3} ms  {:>11.3} ms  {:>8.0}x",
                ms(best),
                ms(b),
                b.as_secs_f64() / best.as_secs_f64()
            )?,
            None => writeln!(
                out,
                "{n:>9}  {:>9.3} ms  {:>14}  {:>9}",
                ms(best),
                "skipped",
                "-"
            )?,
        }
    }
    if !skipped.is_empty() {
        let list: Vec<String> = skipped.iter().map(|n| n.to_string()).collect();
        let why = if full {
            "quadratic: minutes beyond 64K patches"
        } else {
            "quadratic: would exceed the quick-mode budget; --full times it up to 64K"
        };
        writeln!(
            out,
            "baseline skipped at {} patches ({why})",
            list.join(", ")
        )?;
    }
    if json {
        let ns = |rows: &[(usize, u128)]| -> serde_json::Map<String, serde_json::Value> {
            rows.iter()
                .map(|&(n, ns)| (n.to_string(), (ns as u64).into()))
                .collect()
        };
        let speedup: serde_json::Map<String, serde_json::Value> = base_ns
            .iter()
            .map(|&(n, b)| {
                let l = list_ns
                    .iter()
                    .find(|&&(m, _)| m == n)
                    .map_or(0, |&(_, l)| l);
                let x = (b as f64 / l.max(1) as f64 * 10.0).round() / 10.0;
                (n.to_string(), crate::bench::json_num(x))
            })
            .collect();
        let j = serde_json::json!({
            "full": full,
            "list_ns": ns(&list_ns),
            "baseline_ns": ns(&base_ns),
            "speedup": speedup,
        });
        writeln!(out, "{j}")?;
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_and_baseline_agree_on_the_workload() {
        let w = workload(300);
        assert_eq!(w.insns.iter().filter(|i| blind(i).is_some()).count(), 300);
        let l = run_list(&w);
        assert_eq!(l, run_baseline(&w));
        assert_eq!(l.insns.len(), w.insns.len() + 600);
        assert_eq!(l.subprog_starts.len(), 4);
    }

    #[test]
    fn full_mode_times_the_baseline_up_to_64k() {
        let (secs, none) = (Duration::from_secs, Duration::ZERO);
        let full: Vec<usize> = SIZES
            .into_iter()
            .filter(|&n| baseline_timed(true, n, Some(secs(600)), none))
            .collect();
        assert_eq!(full, [15_000, 45_000, 65_536]);
        assert!(baseline_timed(false, 15_000, None, none));
        assert!(baseline_timed(false, 45_000, Some(secs(5)), secs(10)));
        assert!(!baseline_timed(false, 45_000, Some(secs(17)), secs(10)));
    }

    /// The quick mode itself (release build recommended):
    /// `cargo test -p kbpf-shim --release --lib bench_patch -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing run, ~20 s"]
    fn quick_run() {
        let mut buf = Vec::new();
        run(false, true, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        print!("{text}");
        let last = text.lines().last().unwrap();
        assert!(last.starts_with("{\"full\": false, \"list_ns\": {\"15000\": "));
        assert!(last.contains("\"speedup\": {\"15000\": "), "{last}");
    }
}
