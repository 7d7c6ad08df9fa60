//! The C examples under the interpreter (the JIT is never registered in this binary).

use kbpf_shim::conformance::Engine;

/// The engine every case runs on.
const ENGINE: Engine = Engine::Interp;

mod elf_examples_cases;
