//! `kbpf bench tailcall`: chains of 0..33 tail calls of small programs (each bumps a counter in
//! the context and tail-calls the next slot), ns per run per chain length, the least-squares
//! slope (ns per tail call), and the observed limit.

use super::{best_ns, json_num, slope};
use crate::progs::{Chain, ChainKey, chain_ctx, run_chain};
use std::io::Write;

/// Chain lengths measured.
pub const LENGTHS: [u32; 8] = [0, 1, 2, 4, 8, 16, 32, 33];

/// Slots in the benchmark's prog_array (more than the limit, so the limit is what stops).
const SLOTS: u32 = 40;

/// Results of one run.
#[derive(Clone, Debug)]
pub struct TailcallReport {
    /// `(chain length, ns per run)`.
    pub ns_per_run: Vec<(u32, f64)>,
    /// Least-squares slope over the lengths.
    pub ns_per_tail_call: f64,
    /// Tail calls that succeeded in a run of a chain longer than the limit.
    pub max_tail_calls: u64,
}

/// Measures the chains; `repeat` runs per trial.
pub fn measure(key: ChainKey, repeat: u32) -> kbpf::Result<TailcallReport> {
    let mut ns_per_run = Vec::new();
    for &len in &LENGTHS {
        let chain = Chain::load(len, SLOTS, key)?;
        let (_, bodies) = run_chain(chain.entry())?;
        assert_eq!(bodies, len as u64 + 1, "chain of {len} ran {bodies} bodies");
        let ns = best_ns(chain.entry(), &chain_ctx(), repeat, 5)?;
        ns_per_run.push((len, ns));
        chain.close();
    }
    let long = Chain::load(SLOTS - 1, SLOTS, key)?;
    let (_, bodies) = run_chain(long.entry())?;
    long.close();
    let xs: Vec<f64> = ns_per_run.iter().map(|&(l, _)| l as f64).collect();
    let ys: Vec<f64> = ns_per_run.iter().map(|&(_, ns)| ns).collect();
    Ok(TailcallReport {
        ns_per_tail_call: slope(&xs, &ys),
        max_tail_calls: bodies - 1,
        ns_per_run,
    })
}

/// Prints the report; with `json`, the last line is one JSON object.
pub fn print(
    report: &TailcallReport,
    engine: &str,
    key: ChainKey,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let key = if key == ChainKey::Const {
        "const"
    } else {
        "reg"
    };
    writeln!(out, "tail-call chains, engine {engine}, key {key}")?;
    for (len, ns) in &report.ns_per_run {
        writeln!(out, "  length {len:>2}: {ns:8.2} ns per run")?;
    }
    writeln!(
        out,
        "  slope: {:.2} ns per tail call",
        report.ns_per_tail_call
    )?;
    writeln!(
        out,
        "  observed limit: {} tail calls per run",
        report.max_tail_calls
    )?;
    if json {
        let runs: serde_json::Map<String, serde_json::Value> = report
            .ns_per_run
            .iter()
            .map(|(l, ns)| (l.to_string(), json_num(*ns)))
            .collect();
        let j = serde_json::json!({
            "engine": engine,
            "key": key.to_string(),
            "ns_per_tail_call": json_num(report.ns_per_tail_call),
            "max_tail_calls": report.max_tail_calls,
            "ns_per_run": runs,
        });
        writeln!(out, "{j}")?;
    }
    Ok(())
}
