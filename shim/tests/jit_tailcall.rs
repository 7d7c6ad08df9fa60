//! Tail calls under the JIT: the scenarios of `research/kernel-scenarios.md` §2 (including the
//! subprogram hierarchy cases TC-22/30/33/34), with every program asserted JIT-compiled. The
//! same cases run under the interpreter in `jit_tailcall_interp.rs`, so the two engines are held
//! to one set of expected results. Registering the JIT is process-wide, hence two binaries.

use kbpf_shim::conformance::Engine;

/// The engine every case runs on.
const ENGINE: Engine = Engine::Jit;

mod jit_tailcall_cases;
