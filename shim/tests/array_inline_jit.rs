//! Array-map lookup inlining JIT-compiled; the same cases run under the interpreter in
//! `array_inline.rs` (registering the JIT is process-wide, hence two binaries).

use kbpf_shim::conformance::Engine;

/// The engine every case runs on.
const ENGINE: Engine = Engine::Jit;

mod array_inline_cases;
