//! tcx runs: one ingress run over 1, 2, 8, 32 and 63 attached programs that return
//! `TCX_NEXT`, interpreted (the walk) and JIT-compiled (the entry's dispatcher, and the walk of
//! the same entry for comparison). The JIT is registered for the later groups, which is
//! process-wide, so the interpreted group runs first. `kbpf bench tcx --json` reports the
//! per-program slopes and attach/detach costs.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kbpf::cpu::CpuGuard;
use kbpf::insn::{exit, mov64_imm};
use kbpf::syscall;
use kbpf::tcx::{self, AttachAttr, Direction};
use kbpf::uapi::{AttachType, ProgType, tcx_action};
use kbpf_benches::setup;
use kbpf_shim::conformance::Engine;

fn walks(c: &mut Criterion) {
    setup();
    for (engine, base) in [(Engine::Interp, 2_000_000u32), (Engine::Jit, 3_000_000)] {
        engine.select();
        let mut group = c.benchmark_group(format!("tcx_walk_{}", engine.name()));
        for n in [1usize, 2, 8, 32, 63] {
            let ifindex = base + n as u32;
            tcx::dev_create(ifindex).expect("device");
            for _ in 0..n {
                let insns = [mov64_imm(0, tcx_action::NEXT), exit()];
                let fd = syscall::prog_load(&kbpf::ProgLoadAttr::new(ProgType::SchedCls, &insns))
                    .expect("load");
                let mut a = AttachAttr::new(ifindex, AttachType::TcxIngress);
                a.attach_bpf_fd = fd;
                tcx::prog_attach(&a).expect("attach");
            }
            let dev = tcx::dev_get(ifindex).expect("device");
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                let mut g = CpuGuard::enter();
                b.iter(|| tcx::run(&dev, Direction::Ingress, &mut g, 0, 0));
            });
            if engine == Engine::Jit {
                group.bench_with_input(BenchmarkId::new("walked", n), &n, |b, _| {
                    let mut g = CpuGuard::enter();
                    b.iter(|| tcx::run_walk(&dev, Direction::Ingress, &mut g, 0, 0));
                });
            }
            tcx::dev_remove(ifindex).expect("remove");
        }
        group.finish();
    }
}

criterion_group!(benches, walks);
criterion_main!(benches);
