//! The tcx stress of `tcx_stress_cases/` under the JIT: readers call the entries' dispatchers
//! while every change builds a new one, publishes it with the entry and retires the old one after
//! the grace period. Registering the JIT is process-wide, hence two binaries.

use kbpf_shim::conformance::Engine;

/// The engine every program is loaded for.
const ENGINE: Engine = Engine::Jit;

mod tcx_stress_cases;
