//! Direct tail calls under the JIT: constant-key tail calls compile to patchable jumps that the
//! prog_array re-points on every slot change. The same cases run under the interpreter in
//! `jit_tailcall_direct_interp.rs`, so both engines are held to one set of expected results.

use kbpf_shim::conformance::Engine;

/// The engine every case runs on.
const ENGINE: Engine = Engine::Jit;

mod jit_tailcall_direct_cases;
