//! A typed x86-64 encoder: registers, operands and the instruction forms the BPF JIT needs.
//!
//! Linux open-codes these bytes with the `EMIT*` macros in `arch/x86/net/bpf_jit_comp.c`; here
//! the encoding rules live in one module ([`encode`]) and every instruction form is a method
//! ([`insns`]), so the compiler never writes a raw opcode byte.

pub mod encode;
pub mod insns;
pub mod reg;

pub use encode::{Asm, Enc, RegField, Rm, is_imm8};
pub use insns::{AluKind, ShiftKind};
pub use reg::{Cc, Mem, Reg, Width};
