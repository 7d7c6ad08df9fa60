//! The tcx stress of `tcx_stress_cases/` under the interpreter: readers walk the entry.

use kbpf_shim::conformance::Engine;

/// The engine every program is loaded for.
const ENGINE: Engine = Engine::Interp;

mod tcx_stress_cases;
