//! Fuzz target: the verifier must return (accept or reject) on every input, without a panic
//! and within the time limit (`kbpf::verifier::verify`, the kernel's `bpf_check`). The input
//! format is `kbpf_fuzz::Input`'s.

#![no_main]

use kbpf::map::MapAttr;
use kbpf::verifier::{VerifierEnv, verify};
use kbpf_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = Input::decode(data);
    let maps = |h: u32| -> Option<MapAttr> { input.maps.get(h as usize).copied().flatten() };
    let env = VerifierEnv {
        prog_type: input.prog_type,
        maps: &maps,
        ctx_size: input.ctx_size,
        privileged: input.privileged,
        allow_loops: input.allow_loops,
        expected_attach_type: None,
    };
    // Accepted or rejected are both fine; running what it accepts is the property test's job
    // (kernel/tests/verifier_accepts_safe.rs).
    let _ = verify(&input.insns, &env);
});
