//! Constant blinding through the JIT: with the JIT registered and blinding on for every program
//! (`bpf_jit_harden`), the whole conformance suite runs JIT-compiled (the runner fails a case
//! that ends up interpreted), JIT'd tail-call chains run every body, and no chosen immediate
//! reaches the native code. Both switches are process-wide, hence this binary of its own.

use kbpf::insn::*;
use kbpf::syscall;
use kbpf::uapi::{ProgType, alu, jmp};
use kbpf_shim::conformance::{Engine, run_paths};
use kbpf_shim::progs::{Chain, ChainKey, run_chain};
use std::path::PathBuf;

fn setup() {
    kbpf_shim::host::install();
    Engine::Jit.select();
    kbpf::blind::set_global(true);
}

#[test]
fn conformance_suite_passes_jit_compiled_and_blinded() {
    setup();
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/bpf_conformance"
    ));
    let mut out = Vec::new();
    let t = run_paths(&[dir], Engine::Jit, &mut out).expect("runner I/O");
    assert_eq!(
        (t.passed, t.failed),
        (313, 0),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn jited_tail_call_chains_run_every_body() {
    setup();
    for key in [ChainKey::Const, ChainKey::Reg] {
        let chain = Chain::load(33, 40, key).unwrap();
        for &fd in &chain.progs {
            let prog = syscall::prog_get(fd).unwrap();
            assert!(prog.jited(), "{key:?}: blinded chain program interpreted");
            // A blinded constant key (`AX = a; AX ^= b; r3 = AX`) is still a direct tail call.
            assert_eq!(
                prog.direct_tail_calls().len(),
                usize::from(key == ChainKey::Const),
                "{key:?}"
            );
        }
        assert_eq!(run_chain(chain.entry()).unwrap().1, 34, "{key:?}");
        chain.close();
    }
}

/// A fixed pseudo-random sequence, so the test's blinded image is reproducible.
fn lcg() -> impl FnMut() -> u32 {
    let mut x = 0x9e37_79b9u32;
    move || {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        x
    }
}

fn contains(code: &[u8], v: u32) -> bool {
    code.windows(4).any(|w| w == v.to_le_bytes())
}

#[test]
fn the_image_of_a_blinded_program_holds_no_chosen_immediate() {
    setup();
    const SPRAY: [u32; 5] = [
        0x4141_4141,
        0x4242_4242,
        0x4343_4343,
        0x4444_4444,
        0x4545_4545,
    ];
    let mut insns = vec![
        mov64_imm(0, SPRAY[0] as i32),
        alu64_imm(alu::XOR, 0, SPRAY[1] as i32),
        jmp_imm(jmp::JEQ, 0, SPRAY[2] as i32, 1),
        st_mem(Size::W, 10, -8, SPRAY[3] as i32),
    ];
    insns.extend(ld_imm64(
        1,
        (u64::from(SPRAY[4]) << 32) | u64::from(SPRAY[4]),
    ));
    insns.extend([alu64_reg(alu::ADD, 0, 1), exit()]);
    let fd = syscall::prog_load(&kbpf::ProgLoadAttr::new(ProgType::RawBuffer, &insns)).unwrap();
    let prog = syscall::prog_get(fd).unwrap();
    assert!(prog.jited());
    let r = syscall::prog_test_run(
        fd,
        &mut syscall::TestRun {
            data: &mut [],
            repeat: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let want = u64::from(SPRAY[0] ^ SPRAY[1]) + ((u64::from(SPRAY[4]) << 32) | u64::from(SPRAY[4]));
    assert_eq!(r.retval, want);

    // `insns()` is the xlated program as written; the engines run a blinded copy of it.
    let xlated = prog.insns();
    let (plain, _) = kbpf_jit::emit(xlated, ProgType::RawBuffer).unwrap();
    let blinded = kbpf::blind::blind_constants(xlated, &mut lcg()).unwrap();
    let (code, _) = kbpf_jit::emit(&blinded, ProgType::RawBuffer).unwrap();
    for v in SPRAY {
        assert!(contains(&plain, v), "{v:#x} is in the plain image");
        assert!(!contains(&code, v), "{v:#x} survived blinding");
    }
    syscall::close(fd).unwrap();
}
