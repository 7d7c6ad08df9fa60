//! The C examples (`examples/bpf/*.o`, built by clang-19 and committed) through the ELF loader,
//! on the engine the including test file names (`ENGINE`): every program loads through the
//! verifier on that engine, and the demo's runs give the expected results.

use super::ENGINE;
use kbpf::syscall::{self, ObjInfo};
use kbpf::tcx::TcxVerdict;
use kbpf_shim::conformance::Engine;
use kbpf_shim::demo::ct::{CT_TRACK_O, SYNPROXY_O};
use kbpf_shim::demo::{self, PARSER_O, SK_LOOKUP_O, SYSCALL_O, TCX_CHAIN_O};
use kbpf_shim::elf::{LoadOpts, Object};

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
    // Seed 004: the SYN-ACK of a tracked connection passes, a stray ACK is dropped, a new
    // SYN passes, the second tracked connection's ACK passes.
    let ct = &rep.conntrack;
    assert_eq!(ct.verdicts, [2, 1, 2, 2]);
    assert_eq!(ct.seen, [2, 1, 1, 0], "established, new, dropped, other");
    assert_eq!(
        ct.track,
        [2, 1, 1, 0, 0],
        "created, refreshed, replies, clashes, failures"
    );
    assert_eq!(ct.marks, [0x2a, 0x2a, 0x2a]);
    let mut entries = ct.entries.clone();
    entries.sort();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries[0].contains("src=10.0.0.1 dst=9.9.9.9 sport=40001 dport=853"));
    assert!(
        entries[0].contains("[ASSURED|CONFIRMED] mark=42"),
        "{}",
        entries[0]
    );
    assert!(entries[1].contains("dst=93.184.216.34 sport=40000 dport=443"));
    assert!(
        entries[1].contains("[SEEN_REPLY|ASSURED|CONFIRMED] mark=42"),
        "{}",
        entries[1]
    );
}

/// The conntrack examples load only with root's rules (they read `struct nf_conn`, which
/// needs `CAP_PERFMON`), and then on the engine.
#[test]
fn the_conntrack_examples_need_root_rules() {
    setup();
    for (name, bytes) in [("synproxy.o", SYNPROXY_O), ("ct_track.o", CT_TRACK_O)] {
        let e = demo::load_object(name, bytes).unwrap_err().to_string();
        assert!(
            e.contains("'struct nf_conn' access is allowed only to CAP_PERFMON"),
            "{name}: {e}"
        );
        let obj = Object::parse(bytes).unwrap();
        let opts = LoadOpts {
            privileged: true,
            ..LoadOpts::default()
        };
        let obj = obj.load(&opts).unwrap();
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
