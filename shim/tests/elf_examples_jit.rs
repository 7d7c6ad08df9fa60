//! The C examples under the x86-64 JIT.

use kbpf_shim::conformance::Engine;

/// The engine every case runs on.
const ENGINE: Engine = Engine::Jit;

mod elf_examples_cases;
