//! The peers' programs (`research/peers.md` §3.1) in the interpreter: the 3003-instruction loop,
//! `r0 = 7; exit`, and the helper loop with and without the call.

use criterion::{Criterion, criterion_group, criterion_main};
use kbpf::cpu::CpuGuard;
use kbpf::syscall;
use kbpf::uapi::ProgType;
use kbpf_benches::{prog, run, setup};
use kbpf_shim::bench::isa::{helper_loop, loop_prog, tiny_prog};

fn isa(c: &mut Criterion) {
    setup();
    let mut group = c.benchmark_group("interp_isa");
    for (name, insns) in [
        ("loop_3003_insns", loop_prog()),
        ("tiny", tiny_prog()),
        ("helper_loop_call", helper_loop(true)),
        ("helper_loop_mov", helper_loop(false)),
    ] {
        let fd = syscall::prog_load(&kbpf::ProgLoadAttr::new(ProgType::RawBuffer, &insns))
            .expect("load");
        let p = prog(fd);
        group.bench_function(name, |b| {
            let mut guard = CpuGuard::enter();
            b.iter(|| run(&p, &mut guard, &mut []));
        });
    }
    group.finish();
}

criterion_group!(benches, isa);
criterion_main!(benches);
