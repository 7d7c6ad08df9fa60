//! Criterion benchmark of instruction patching: the list patcher (`kbpf::patch`) against the
//! kernel's one-at-a-time `bpf_patch_insn_data()` baseline, on the RFC's table of patch counts
//! (workload: `kbpf_shim::bench_patch`, every patch = constant blinding of one instruction
//! into three). The list is timed end to end (build, patch, linearize) at every size; the
//! baseline, quadratic, only at 15K and 45K patches (about 2 s and 15 s per run here; the
//! larger sizes would take minutes to hours).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kbpf_shim::bench_patch::{SIZES, run_baseline, run_list, workload};
use std::hint::black_box;
use std::time::Duration;

fn patch(c: &mut Criterion) {
    let mut g = c.benchmark_group("patch/list");
    g.sample_size(10);
    for &n in &SIZES {
        let w = workload(n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &w, |b, w| {
            b.iter(|| black_box(run_list(w)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("patch/baseline");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(1));
    g.measurement_time(Duration::from_secs(20));
    for n in [15_000, 45_000] {
        let w = workload(n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &w, |b, w| {
            b.iter(|| black_box(run_baseline(w)))
        });
    }
    g.finish();
}

criterion_group!(benches, patch);
criterion_main!(benches);
