//! The direct tail-call cases of `jit_tailcall_direct.rs`, on the interpreter (the reference).

use kbpf_shim::conformance::Engine;

/// The engine every case runs on.
const ENGINE: Engine = Engine::Interp;

mod jit_tailcall_direct_cases;
