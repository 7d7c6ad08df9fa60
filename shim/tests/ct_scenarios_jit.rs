//! The conntrack run-time scenarios (`ct_cases/`) under the JIT.

mod ct_cases;

#[test]
fn conntrack_scenarios_jit() {
    ct_cases::all(kbpf_shim::conformance::Engine::Jit);
}
