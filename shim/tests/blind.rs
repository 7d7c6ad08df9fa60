//! Constant blinding end to end: with blinding on for every program (`bpf_jit_harden`), the whole
//! conformance suite and map-using tail-call chains give the same results, while the program's
//! xlated instructions keep their constants as written. Process-wide switch: its own binary.

use kbpf::syscall;
use kbpf::uapi::ProgType;
use kbpf_shim::conformance::{Engine, run_paths};
use kbpf_shim::progs::{Chain, ChainKey, run_chain};
use std::path::PathBuf;

fn setup() {
    kbpf_shim::host::install();
    kbpf::blind::set_global(true);
}

#[test]
fn conformance_suite_passes_blinded() {
    setup();
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/bpf_conformance"
    ));
    let mut out = Vec::new();
    let t = run_paths(&[dir], Engine::Interp, &mut out).expect("runner I/O");
    assert_eq!(
        (t.passed, t.failed),
        (313, 0),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn tail_call_chains_with_blinded_map_addresses() {
    setup();
    for key in [ChainKey::Const, ChainKey::Reg] {
        let chain = Chain::load(33, 40, key).unwrap();
        assert_eq!(run_chain(chain.entry()).unwrap().1, 34, "{key:?}");
        chain.close();
    }
}

#[test]
fn xlated_keeps_the_constants() {
    setup();
    let insns = [kbpf::insn::mov64_imm(0, 0x4141_4141), kbpf::insn::exit()];
    let fd = syscall::prog_load(&kbpf::ProgLoadAttr::new(ProgType::RawBuffer, &insns)).unwrap();
    assert_eq!(syscall::prog_get(fd).unwrap().insns(), insns);
    let r = syscall::prog_test_run(
        fd,
        &mut syscall::TestRun {
            data: &mut [],
            repeat: 1,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.retval, 0x4141_4141);
}
