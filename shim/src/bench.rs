//! Quick benchmark modes of the CLI (`kbpf bench …`): short, repeatable measurements through
//! `prog_test_run`, with an optional one-line JSON summary for scripts. The criterion suites in
//! `benches/` measure the same programs more thoroughly.

pub mod call_floor;
pub mod ct;
pub mod isa;
pub mod layouts;
pub mod map_lookup;
pub mod sklookup;
pub mod tailcall;
pub mod tcx;
pub mod verify;

pub use tailcall::TailcallReport;

use kbpf::syscall::{self, Fd, TestRun};

/// Best (lowest) mean ns per run over `trials` test runs of `repeat` runs each, on a copy of
/// `ctx` per trial.
pub fn best_ns(fd: Fd, ctx: &[u8], repeat: u32, trials: u32) -> kbpf::Result<f64> {
    let mut best = f64::INFINITY;
    // Warm up caches and branch predictors.
    let mut warm = ctx.to_vec();
    syscall::prog_test_run(
        fd,
        &mut TestRun {
            data: &mut warm,
            repeat: (repeat / 10).max(1),
            ..Default::default()
        },
    )?;
    for _ in 0..trials {
        let mut data = ctx.to_vec();
        let h = kbpf::host::get();
        let t0 = h.ktime_ns();
        syscall::prog_test_run(
            fd,
            &mut TestRun {
                data: &mut data,
                repeat,
                ..Default::default()
            },
        )?;
        let ns = (h.ktime_ns() - t0) as f64 / repeat as f64;
        best = best.min(ns);
    }
    Ok(best)
}

/// Least-squares slope of `ys` over `xs`.
pub fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if var == 0.0 { 0.0 } else { cov / var }
}

/// A float as a JSON number rounded to three decimals (`null` when not finite).
pub fn json_num(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64((v * 1000.0).round() / 1000.0)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// `(key, value)` rows as a JSON object of numbers (keys as strings), `f` applied to each value.
pub fn json_map<T: Copy>(rows: &[(usize, T)], f: impl Fn(usize, T) -> f64) -> serde_json::Value {
    rows.iter()
        .map(|&(k, v)| (k.to_string(), json_num(f(k, v))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}
