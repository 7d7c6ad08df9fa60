//! Criterion benchmark of verification time (`bpf_check`): straight-line programs from 1K to
//! 1M (`BPF_MAXINSNS`) instructions and chains of pruned if/else diamonds from 1K to 256K
//! (workloads: `kbpf_shim::bench::verify`). Throughput is in instructions, so criterion's
//! report gives instructions per second at each size; flat means linear growth.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kbpf::insn::Insn;
use kbpf::uapi::ProgType;
use kbpf::verifier::{VerifierEnv, verify};
use kbpf_shim::bench::verify::{BRANCHY_SIZES, STRAIGHT_SIZES, branchy, straight};
use std::hint::black_box;
use std::time::Duration;

fn group(c: &mut Criterion, name: &str, sizes: &[usize], make: fn(usize) -> Vec<Insn>) {
    let env = VerifierEnv {
        ctx_size: 8,
        ..VerifierEnv::new(ProgType::RawBuffer)
    };
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(200));
    for &n in sizes {
        let p = make(n);
        g.throughput(Throughput::Elements(p.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &p, |b, p| {
            b.iter(|| black_box(verify(p, &env).expect("the workload verifies")))
        });
    }
    g.finish();
}

fn verify_bench(c: &mut Criterion) {
    group(c, "verify/straight", &STRAIGHT_SIZES, straight);
    group(c, "verify/branchy", &BRANCHY_SIZES, branchy);
}

criterion_group!(benches, verify_bench);
criterion_main!(benches);
