//! sk_lookup under the JIT: the scenarios of `research/kernel-scenarios.md` §3, with every
//! program asserted JIT-compiled. The same cases run under the interpreter in
//! `sk_lookup_interp.rs`. Registering the JIT is process-wide, hence two binaries.

use kbpf_shim::conformance::Engine;

/// The engine every case runs on.
const ENGINE: Engine = Engine::Jit;

mod sk_lookup_cases;
