//! The cases of `jit_tailcall.rs` under the interpreter: the reference the JIT must match.

use kbpf_shim::conformance::Engine;

/// The engine every case runs on.
const ENGINE: Engine = Engine::Interp;

mod jit_tailcall_cases;
