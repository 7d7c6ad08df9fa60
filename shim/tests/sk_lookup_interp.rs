//! The cases of `sk_lookup.rs` under the interpreter.

use kbpf_shim::conformance::Engine;

/// The engine every case runs on.
const ENGINE: Engine = Engine::Interp;

mod sk_lookup_cases;
