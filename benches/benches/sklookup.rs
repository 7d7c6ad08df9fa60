//! sk_lookup: the oracle's programs through kbpf's test run (`pass`; `steer`, a /24 and port
//! test, a SOCKMAP lookup, `bpf_sk_assign` and `bpf_sk_release`), and one TCP lookup through a
//! netns with 0, 1 and 4 attached programs that select by destination prefix — interpreted,
//! then JIT-compiled (the JIT is registered for the second group, which is process-wide). The
//! programs are `kbpf_shim::bench::sklookup`'s, the ones `kbpf bench sklookup` and
//! `scripts/compare-sklookup` time against the host kernel.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kbpf::cpu::CpuGuard;
use kbpf::net::sk_lookup::link::link_create;
use kbpf::net::{self, Family, Proto, Tuple};
use kbpf::sync::Arc;
use kbpf::syscall::{self, Object, TestRun};
use kbpf::uapi::{AttachType, MapType, ProgType};
use kbpf::{MapAttr, ProgLoadAttr};
use kbpf_benches::setup;
use kbpf_shim::bench::sklookup::{DPORT, PREFIX, input, pass, steer};
use kbpf_shim::conformance::Engine;

fn load(insns: &[kbpf::insn::Insn]) -> u32 {
    let a = ProgLoadAttr::new(ProgType::SkLookup, insns).with_attach_type(AttachType::SkLookup);
    syscall::prog_load(&a).expect("load")
}

fn sk_lookup(c: &mut Criterion) {
    setup();
    for engine in [Engine::Interp, Engine::Jit] {
        engine.select();
        let ns = net::fd::netns_create().expect("netns");
        let n = net::fd::netns_get(ns).expect("netns");
        let listener = net::socket(&n, Family::Inet, Proto::Tcp).expect("socket");
        listener
            .bind("127.0.0.1:9000".parse().unwrap())
            .expect("bind");
        listener.listen(16).expect("listen");
        let lfd = syscall::install_object(Object::Sock(Arc::new(listener))).expect("handle");
        let map = syscall::map_create(&MapAttr::new(MapType::Sockmap, 4, 8, 1)).expect("map");
        syscall::map_update_elem(map, &0u32.to_ne_bytes(), &(lfd as u64).to_ne_bytes(), 0)
            .expect("store");

        let mut group = c.benchmark_group(format!("sk_lookup_test_run_{}", engine.name()));
        let hit = input([192, 0, 2, 55]).to_bytes();
        for (name, fd) in [
            ("pass", load(&pass())),
            ("steer", load(&steer(map, true, PREFIX, DPORT))),
        ] {
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let mut out = [0u8; 72];
                    let t = std::time::Instant::now();
                    syscall::prog_test_run(
                        fd,
                        &mut TestRun {
                            ctx_in: Some(&hit),
                            ctx_out: Some(&mut out),
                            repeat: iters.min(u32::MAX as u64) as u32,
                            ..Default::default()
                        },
                    )
                    .expect("test run");
                    t.elapsed()
                })
            });
        }
        group.finish();

        let web = net::socket(&n, Family::Inet, Proto::Tcp).expect("socket");
        web.bind("192.0.5.55:80".parse().unwrap()).expect("bind");
        web.listen(16).expect("listen");
        let t = Tuple::new(
            Proto::Tcp,
            "198.51.100.7:40000".parse().unwrap(),
            "192.0.5.55:80".parse().unwrap(),
        )
        .expect("tuple");
        let mut group = c.benchmark_group(format!("sk_lookup_lookup_{}", engine.name()));
        let mut links = Vec::new();
        for count in [0usize, 1, 4] {
            for l in links.drain(..) {
                syscall::close(l).expect("close");
            }
            for i in 0..count {
                let prefix = [192, 0, (6 - count + i) as u8, 0];
                let fd = load(&steer(map, true, prefix, DPORT));
                links.push(link_create(fd, ns, 0).expect("link"));
            }
            group.bench_with_input(BenchmarkId::from_parameter(count), &count, |b, _| {
                let mut g = CpuGuard::enter();
                b.iter(|| {
                    net::lookup(&n, &mut g, std::hint::black_box(&t))
                        .sock()
                        .map(|s| s.cookie())
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, sk_lookup);
criterion_main!(benches);
