//! kbpf-jit: the x86-64 JIT backend for kbpf (Linux `arch/x86/net/bpf_jit_comp.c`).
//!
//! [`x86`] is a typed encoder; [`compile`](mod@compile) turns checked BPF instructions into a
//! [`JitImage`] in host executable memory. The kernel crate never depends on this one: a host
//! registers the compiler with the kernel's runtime selection, once, after its
//! `kbpf::host::Host` (whose `exec_install_at`/`exec_alloc` and `text_poke` the JIT uses):
//!
//! ```
//! // Every later `kbpf::syscall::prog_load` compiles the program to x86-64 (after the
//! // verifier and the rewrites); a program the JIT refuses runs in the interpreter.
//! let first = kbpf::jit::register(&kbpf_jit::X86_JIT);
//! assert!(first && kbpf::jit::enabled());
//! assert!(!kbpf::jit::needs_zext(), "x86-64's 32-bit operations zero the upper half");
//! ```
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod backend;
pub mod compile;
#[cfg(feature = "disasm")]
pub mod disasm;
pub mod x86;

pub use backend::{X86_JIT, X86Jit};
pub use compile::{JitImage, TAIL_CALL_OFFSET, compile, emit};
