//! The verifier's negative corpus (one program per rule, each with the kernel's errno and a
//! log fragment) and positive controls that the same rules must let through; the cases live
//! in `corpus/`.

use kbpf::Errno;
use kbpf::insn::{Insn, assemble};
use kbpf::map::MapAttr;
use kbpf::uapi::{MapType, ProgType};
use kbpf::verifier::{VerifierEnv, VerifyError, verify};

mod corpus;

use corpus::{Mode, NEGATIVE, POSITIVE, maps};

fn run(mode: Mode, asm: &str) -> Result<(), VerifyError> {
    let insns: Vec<Insn> = assemble(asm).unwrap_or_else(|e| panic!("{e}\n{asm}"));
    let ty = mode.prog_type();
    let env = VerifierEnv {
        prog_type: ty,
        maps: &maps,
        ctx_size: 64,
        privileged: matches!(mode, Mode::Priv),
        allow_loops: !matches!(mode, Mode::NoLoops),
        expected_attach_type: None,
    };
    verify(&insns, &env).map(|_| ())
}

#[test]
fn negative_corpus() {
    let failures = corpus::negative_failures(NEGATIVE, run);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(NEGATIVE.len() >= 60);
}

#[test]
fn positive_controls() {
    let failures = corpus::positive_failures(POSITIVE, run);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The data-format example: a hash lookup dereferenced without a NULL check.
#[test]
fn data_format_example_030() {
    let raw: [u64; 8] = [
        0x00000000fffc0a62,
        0x000000000000a2bf,
        0xfffffffc00000207,
        0x0000000000001118,
        0x0000000000000000,
        0x0000000100000085,
        0x0000000000000079,
        0x0000000000000095,
    ];
    let insns: Vec<Insn> = raw.iter().map(|&v| Insn::from_u64(v)).collect();
    let m = |h: u32| (h == 0).then(|| MapAttr::new(MapType::Hash, 4, 8, 4));
    let env = VerifierEnv {
        maps: &m,
        ..VerifierEnv::new(ProgType::SocketFilter)
    };
    let e = verify(&insns, &env).unwrap_err();
    assert_eq!(e.errno, Errno::EACCES);
    assert!(
        e.log
            .contains("6: R0 invalid mem access 'map_value_or_null'"),
        "{}",
        e.log
    );
}
