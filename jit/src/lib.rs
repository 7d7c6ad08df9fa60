//! kbpf-jit: the x86-64 JIT backend for kbpf (Linux `arch/x86/net/bpf_jit_comp.c`).
//!
//! [`x86`] is a typed encoder; [`compile`](mod@compile) turns checked BPF instructions into a
//! [`JitImage`] in host executable memory. The kernel crate never depends on this one: a host
//! registers the compiler with the kernel's runtime selection.
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
