//! The verifier classes of issue 11, section 2, each in both privilege modes: negative cases
//! with the kernel's errno and log fragment, positive controls (`corpus/classes.rs`), and the
//! bound on paths waiting to be explored.

mod corpus;

use corpus::classes::{jump_sequence, maps, negative_each, positive_each};
use corpus::{negative_failures, positive_failures};
use kbpf::Errno;
use kbpf::insn::assemble;
use kbpf::uapi::ProgType;
use kbpf::verifier::{VerifierEnv, VerifierOutput, VerifyError, verify};

fn run(
    (prog_type, privileged): (ProgType, bool),
    asm: &str,
) -> Result<VerifierOutput, VerifyError> {
    let insns = assemble(asm).unwrap_or_else(|e| panic!("{e}\n{asm}"));
    let env = VerifierEnv {
        prog_type,
        maps: &maps,
        ctx_size: 0,
        privileged,
        allow_loops: true,
        expected_attach_type: None,
    };
    verify(&insns, &env)
}

#[test]
fn negative_cases() {
    let cases = negative_each();
    let failures = negative_failures(&cases, run);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(cases.len() >= 40);
}

#[test]
fn positive_controls() {
    let failures = positive_failures(&positive_each(), run);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// 8193 waiting paths are refused with the kernel's errno and line, in both modes; 8192 are
/// not (the host kernel processes the same 55,286 instructions for the latter).
#[test]
fn pending_paths_are_bounded() {
    for privileged in [false, true] {
        let mode = (ProgType::SocketFilter, privileged);
        let e = run(mode, &jump_sequence(8193)).unwrap_err();
        assert_eq!(e.errno, Errno::E2BIG, "{e}");
        assert!(
            e.log
                .contains("8195: The sequence of 8193 jumps is too complex."),
            "{e}"
        );
        let ok = run(mode, &jump_sequence(8192)).unwrap();
        assert_eq!(ok.insn_processed, 55_286, "privileged: {privileged}");
    }
}
