//! The C examples (`examples/bpf/*.o`, built by clang-19 and committed) through the ELF loader,
//! on the engine the including test file names (`ENGINE`): every program loads through the
//! verifier on that engine, and the demo's runs give the expected results.

use super::ENGINE;
use kbpf::syscall::{self, ObjInfo};
use kbpf::tcx::TcxVerdict;
use kbpf_shim::conformance::Engine;
use kbpf_shim::demo::{self, PARSER_O, SK_LOOKUP_O, SYSCALL_O, TCX_CHAIN_O};

fn setup() {
    kbpf_shim::host::install();
    ENGINE.select();
}

#[test]
fn every_program_loads_on_the_engine() {
    setup();
    for (name, bytes, count) in [
        ("parser.o", PARSER_O, 4),
        ("syscall.o", SYSCALL_O, 3),
        ("tcx_chain.o", TCX_CHAIN_O, 5),
        ("sk_lookup.o", SK_LOOKUP_O, 2),
    ] {
        let obj = demo::load_object(name, bytes).unwrap();
        assert_eq!(obj.progs.len(), count, "{name}");
        for p in &obj.progs {
            let Ok(ObjInfo::Prog(i)) = syscall::obj_get_info(p.fd) else {
                panic!("{name}: {} has no info", p.name);
            };
            assert_eq!(i.jited, ENGINE == Engine::Jit, "{name}: {}", p.name);
        }
        obj.close();
    }
}

#[test]
fn the_demo_gives_the_expected_results() {
    setup();
    let rep = demo::run(ENGINE, &mut std::io::sink()).unwrap();
    use TcxVerdict::{Drop, Pass};
    let tcp = |port: u64| 1 << 16 | port;
    assert_eq!(
        rep.parser,
        [
            (Pass, tcp(443)),
            (Drop, tcp(23)),
            (Pass, 2 << 16 | 53),
            (Pass, 3 << 16 | 8),
            (Pass, 0xdead),
            (Pass, 0xdead),
            (Pass, 0xdead),
        ]
    );
    assert_eq!(rep.tail_calls, [1, 2, 1]);
    assert_eq!(rep.syscalls, [1, 4096, u32::MAX]);
    assert_eq!(
        rep.tcx_order,
        ["tcx_count", "tcx_audit", "tcx_firewall", "tcx_accept"]
    );
    assert_eq!(rep.tcx_ran, [vec![1, 5, 3], vec![1, 5, 3, 4]]);
    assert_eq!(rep.tcx_mark, 0x2a);
    let who =
        |v: &[(String, String)]| -> Vec<String> { v.iter().map(|(_, w)| w.clone()).collect() };
    assert_eq!(
        who(&rep.sk_lookup.connections),
        [
            "nginx", "nginx", "refused", "proxy", "proxy", "refused", "web"
        ]
    );
    assert_eq!(who(&rep.sk_lookup.after_close), ["refused", "nginx"]);
    assert_eq!(rep.sk_lookup.counters, [2, 2, 1]);
}

#[test]
fn an_object_keeps_its_global_data_between_runs() {
    setup();
    let obj = demo::load_object("syscall.o", SYSCALL_O).unwrap();
    let entry = obj.prog("syscall_entry").unwrap().fd;
    for _ in 0..3 {
        let mut ctx = vec![0u8; 64];
        ctx[..4].copy_from_slice(&999u32.to_le_bytes());
        let r = syscall::prog_test_run(
            entry,
            &mut syscall::TestRun {
                data: &mut ctx,
                repeat: 1,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.retval as u32 as i32, -1);
    }
    let bss = demo::read_global(&obj, ".bss", 0, 8).unwrap();
    assert_eq!(u64::from_le_bytes(bss.try_into().unwrap()), 3);
    obj.close();
}
