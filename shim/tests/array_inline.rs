//! Array-map lookup inlining under the interpreter; the same cases run JIT-compiled in
//! `array_inline_jit.rs` (registering the JIT is process-wide, hence two binaries).

use kbpf_shim::conformance::Engine;

/// The engine every case runs on.
const ENGINE: Engine = Engine::Interp;

mod array_inline_cases;
