//! Interpreter tail-call cost: chains of 0..33 tail calls (each body bumps a counter in the
//! context and tail-calls the next slot), constant and register keys. The per-hop cost is the
//! slope over chain length; `kbpf bench tailcall --json` prints it directly.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kbpf::cpu::CpuGuard;
use kbpf_benches::{prog, run, setup};
use kbpf_shim::progs::{Chain, ChainKey, chain_ctx};

fn tail_calls(c: &mut Criterion) {
    setup();
    for (key, name) in [(ChainKey::Const, "const"), (ChainKey::Reg, "reg")] {
        let mut group = c.benchmark_group(format!("interp_tailcall_{name}"));
        for len in [0u32, 1, 2, 4, 8, 16, 32, 33] {
            let chain = Chain::load(len, 40, key).expect("load chain");
            let entry = prog(chain.entry());
            group.bench_with_input(BenchmarkId::from_parameter(len), &len, |b, _| {
                let mut guard = CpuGuard::enter();
                let mut ctx = chain_ctx();
                b.iter(|| run(&entry, &mut guard, &mut ctx));
            });
            drop(entry);
            chain.close();
        }
        group.finish();
    }
}

criterion_group!(benches, tail_calls);
criterion_main!(benches);
