//! kbpf against a peer: the same programs through kbpf's interpreter and JIT and through the
//! `rbpf` crate's interpreter and JIT (`research/peers.md`; rbpf has no maps or tail calls, so
//! the programs are plain ISA): the 3003-instruction loop, `r0 = 7; exit` (invocation), and a
//! 64-byte buffer summed with 64 loads (memory access; rbpf checks each access at run time,
//! kbpf's verifier proved them at load), and a loop of 1000 calls of a helper that returns its
//! argument next to the same loop with `r0 = r1` in place of the call (their difference over
//! 1000 is one helper call; rbpf gets the same helper registered under the same number). kbpf's
//! programs are loaded before the JIT is
//! registered (interpreted) and after (JIT'd). `scripts/bench-peers` runs this and writes
//! BENCHMARKS.md with the figures and plots.

use criterion::{Criterion, criterion_group, criterion_main};
use kbpf::cpu::CpuGuard;
use kbpf::insn::{Insn, Size, alu64_reg, exit, ldx_mem, mov64_imm};
use kbpf::syscall;
use kbpf::uapi::{ProgType, alu, func};
use kbpf_benches::{prog, run, setup};
use kbpf_shim::bench::isa::{helper_loop, loop_prog, tiny_prog};

/// Bytes the memory program sums.
const MEM_LEN: usize = 64;

/// `r0 = 0; r0 += *(u8 *)(r1 + i)` for every byte, through r2.
fn sum_prog() -> Vec<Insn> {
    let mut p = vec![mov64_imm(0, 0)];
    for i in 0..MEM_LEN as i16 {
        p.push(ldx_mem(Size::B, 2, 1, i));
        p.push(alu64_reg(alu::ADD, 0, 2));
    }
    p.push(exit());
    p
}

fn programs() -> Vec<(&'static str, Vec<Insn>, usize)> {
    vec![
        ("loop_3003_insns", loop_prog(), 0),
        ("tiny", tiny_prog(), 0),
        ("sum_64_bytes", sum_prog(), MEM_LEN),
        ("helper_1000_calls", helper_loop(true), 0),
        ("helper_1000_moves", helper_loop(false), 0),
    ]
}

fn bytes(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

fn kbpf_load(insns: &[Insn], mem: usize) -> kbpf::sync::Arc<kbpf::Prog> {
    let attr = kbpf::ProgLoadAttr::new(ProgType::RawBuffer, insns).with_ctx_size(mem as u32);
    prog(syscall::prog_load(&attr).expect("load"))
}

/// rbpf's side of kbpf's raw-buffer helper `CONFORMANCE_UNWIND` on the programs here: it
/// returns its first argument (kbpf's also ends the run on 0, which these loops never pass).
fn rbpf_identity(r1: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    r1
}

fn peers(c: &mut Criterion) {
    setup();
    let mem: Vec<u8> = (0..MEM_LEN as u8).collect();
    let want = |name: &str| match name {
        "loop_3003_insns" => 499_500,
        "tiny" => 7,
        "helper_1000_calls" | "helper_1000_moves" => 500_500,
        _ => (0..MEM_LEN as u64).sum(),
    };
    // Interpreted first: the JIT's registration is permanent.
    let interp: Vec<_> = programs()
        .into_iter()
        .map(|(n, p, m)| (n, kbpf_load(&p, m)))
        .collect();
    kbpf::jit::register(&kbpf_jit::X86_JIT);
    let jited: Vec<_> = programs()
        .into_iter()
        .map(|(n, p, m)| (n, kbpf_load(&p, m)))
        .collect();
    for ((name, i), (_, j)) in interp.iter().zip(&jited) {
        assert!(!i.jited() && j.jited(), "{name}: engines");
        let mut group = c.benchmark_group(format!("peers_{name}"));
        let mut guard = CpuGuard::enter();
        let mut m = mem.clone();
        m.truncate(if *name == "sum_64_bytes" { MEM_LEN } else { 0 });
        assert_eq!(run(i, &mut guard, &mut m), want(name));
        assert_eq!(run(j, &mut guard, &mut m), want(name));
        group.bench_function("kbpf_interp", |b| b.iter(|| run(i, &mut guard, &mut m)));
        group.bench_function("kbpf_jit", |b| b.iter(|| run(j, &mut guard, &mut m)));
        drop(guard);
        let code = bytes(&programs().into_iter().find(|p| p.0 == *name).unwrap().1);
        let mut vm = rbpf::EbpfVmRaw::new(Some(&code)).expect("rbpf load");
        vm.register_helper(func::CONFORMANCE_UNWIND as u32, rbpf_identity)
            .expect("rbpf helper");
        let mut rm = m.clone();
        assert_eq!(vm.execute_program(&mut rm).expect("rbpf run"), want(name));
        group.bench_function("rbpf_interp", |b| {
            b.iter(|| vm.execute_program(&mut rm).expect("rbpf run"))
        });
        vm.jit_compile().expect("rbpf jit");
        // SAFETY: rbpf's JIT'd code runs on `rm`, the buffer the program reads within bounds
        // (64 loads at offsets 0..64 of a 64-byte buffer, or none).
        let r0 = unsafe { vm.execute_program_jit(&mut rm) };
        assert_eq!(r0.expect("run"), want(name));
        group.bench_function("rbpf_jit", |b| {
            b.iter(|| {
                // SAFETY: as above.
                unsafe { vm.execute_program_jit(&mut rm) }.expect("rbpf run")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, peers);
criterion_main!(benches);
