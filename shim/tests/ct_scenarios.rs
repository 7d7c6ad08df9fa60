//! The conntrack run-time scenarios (`ct_cases/`) under the interpreter.

mod ct_cases;

#[test]
fn conntrack_scenarios_interp() {
    ct_cases::all(kbpf_shim::conformance::Engine::Interp);
}
