//! Conntrack lookups from a JIT'd XDP program (`bpf_xdp_ct_lookup` + `bpf_ct_release`): the
//! programs of `kbpf bench ct` (a baseline that only builds the tuple and options, a hit, a
//! miss; the same tuple every run or a different one each run) run directly on a held CPU,
//! against tables of 1K, 100K and 1M entries. A lookup's cost is its program's time minus the
//! baseline's; `kbpf bench ct --json` reports exactly that, and `scripts/compare-ct` puts it
//! next to the host kernel's.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kbpf::cpu::CpuGuard;
use kbpf::xdp::{XdpBuff, XdpRxqInfo};
use kbpf_benches::{prog, setup};
use kbpf_shim::bench::ct::{CtRunner, KbpfRunner, fill_to, stride};
use kbpf_shim::conformance::Engine;
use kbpf_shim::ct::progs::{BENCH_DADDR, BENCH_DADDR_MISS, BenchKind, bench, fill};

const SIZES: [u32; 3] = [1_000, 100_000, 1_000_000];

fn lookups(c: &mut Criterion) {
    setup();
    Engine::Jit.select();
    let mut r = KbpfRunner::new(*SIZES.last().unwrap()).expect("state maps");
    let k = r.ids();
    let m = r.state_map(0);
    let filler = r.load(&fill(&k, m, 3_600_000)).expect("fill program");
    let mut have = 0;
    for n in SIZES {
        fill_to(&mut r, filler, have, n).expect("fill");
        have = n;
        let st = stride(n);
        let mut group = c.benchmark_group(format!("ct_lookup_{n}"));
        for (name, kind, daddr, rotate) in [
            ("base_fixed", BenchKind::Base, BENCH_DADDR, None),
            ("hit_fixed", BenchKind::Lookup, BENCH_DADDR, None),
            ("miss_fixed", BenchKind::Lookup, BENCH_DADDR_MISS, None),
            ("base_rotating", BenchKind::Base, BENCH_DADDR, Some((n, st))),
            (
                "hit_rotating",
                BenchKind::Lookup,
                BENCH_DADDR,
                Some((n, st)),
            ),
            (
                "miss_rotating",
                BenchKind::Lookup,
                BENCH_DADDR_MISS,
                Some((n, st)),
            ),
        ] {
            let fd = r
                .load(&bench(&k, kind, daddr, n / 2, rotate, m))
                .expect("load");
            let p = prog(fd);
            let mut pkt = kbpf_shim::ct::frame();
            let rxq = XdpRxqInfo::default();
            let mut xdp = XdpBuff::new(&mut pkt, &rxq);
            let ctx = xdp.as_ctx();
            group.bench_with_input(BenchmarkId::from_parameter(name), &name, |b, _| {
                let mut g = CpuGuard::enter();
                b.iter(|| p.run(&mut g, ctx, 0).expect("no fault"));
            });
            r.unload(fd);
        }
        group.finish();
    }
    r.unload(filler);
    r.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
