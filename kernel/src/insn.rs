//! BPF instructions: the 8-byte `struct bpf_insn`, a typed view of it, and builders.
//!
//! Mirrors `include/uapi/linux/bpf.h` (`struct bpf_insn`) and the `BPF_*` instruction macros of
//! `include/linux/filter.h`. The typed view ([`Op`]) is what every consumer matches on: the
//! verifier, the interpreter's pre-decoder, the JIT and the disassembler.

mod build;
mod decode;
pub mod eval;

pub use build::*;
pub use decode::{
    AluOp, AtomicOp, BPF_REG_AX, Call, Cond, DecodeError, EndKind, Op, Operand, Size,
    TAIL_CALL_CODE, TailCallAux, branch_target, decode, decode_internal,
};

use static_assertions::{assert_eq_align, assert_eq_size};

/// One BPF instruction slot, bit-identical to the kernel's `struct bpf_insn`.
///
/// `regs` packs `dst_reg` in its low nibble and `src_reg` in its high nibble (little-endian
/// bitfield order). An `ld_imm64` occupies two slots; the second has `code` 0 and carries the
/// upper 32 bits of the immediate in its `imm`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct Insn {
    /// Opcode: class, size/mode or operation, source bit.
    pub code: u8,
    /// `dst_reg` (bits 0..4) and `src_reg` (bits 4..8).
    pub regs: u8,
    /// Signed offset: jump distance, memory offset, or an operation modifier.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

assert_eq_size!(Insn, u64);
assert_eq_align!(Insn, u32);

impl Insn {
    /// Builds an instruction from its fields (registers are masked to 4 bits).
    #[inline]
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (dst & 0xf) | ((src & 0xf) << 4),
            off,
            imm,
        }
    }

    /// The destination register number.
    #[inline]
    pub const fn dst(&self) -> u8 {
        self.regs & 0xf
    }

    /// The source register number.
    #[inline]
    pub const fn src(&self) -> u8 {
        self.regs >> 4
    }

    /// The instruction class (`code & 0x07`).
    #[inline]
    pub const fn class(&self) -> u8 {
        self.code & 0x07
    }

    /// Sets the destination register.
    #[inline]
    pub fn set_dst(&mut self, r: u8) {
        self.regs = (self.regs & 0xf0) | (r & 0xf);
    }

    /// Sets the source register.
    #[inline]
    pub fn set_src(&mut self, r: u8) {
        self.regs = (self.regs & 0x0f) | ((r & 0xf) << 4);
    }

    /// The slot as the little-endian u64 the conformance suite's `-- raw` sections use.
    #[inline]
    pub const fn to_u64(self) -> u64 {
        (self.code as u64)
            | ((self.regs as u64) << 8)
            | ((self.off as u16 as u64) << 16)
            | ((self.imm as u32 as u64) << 32)
    }

    /// The inverse of [`Insn::to_u64`].
    #[inline]
    pub const fn from_u64(v: u64) -> Insn {
        Insn {
            code: v as u8,
            regs: (v >> 8) as u8,
            off: (v >> 16) as u16 as i16,
            imm: (v >> 32) as u32 as i32,
        }
    }

    /// The 8 bytes as they sit in memory.
    #[inline]
    pub const fn to_bytes(self) -> [u8; 8] {
        self.to_u64().to_le_bytes()
    }

    /// Reads an instruction from its 8 in-memory bytes.
    #[inline]
    pub const fn from_bytes(b: [u8; 8]) -> Insn {
        Insn::from_u64(u64::from_le_bytes(b))
    }

    /// Whether this is the first slot of a two-slot `ld_imm64`.
    #[inline]
    pub const fn is_ld_imm64(&self) -> bool {
        self.code == class::LD | mode::IMM | size::DW
    }
}

impl core::fmt::Debug for Insn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Insn {{ code: {:#04x}, dst: r{}, src: r{}, off: {}, imm: {} }}",
            self.code,
            self.dst(),
            self.src(),
            self.off,
            self.imm
        )
    }
}

use crate::uapi::{class, mode, size};

/// Parses a byte buffer (a multiple of 8 bytes) into instructions.
pub fn from_byte_slice(bytes: &[u8]) -> crate::Result<alloc::vec::Vec<Insn>> {
    if bytes.len() % 8 != 0 {
        return Err(crate::Errno::EINVAL);
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| Insn::from_bytes(c.try_into().expect("chunk of 8")))
        .collect())
}

#[cfg(feature = "tools")]
mod asm;
mod disasm;

#[cfg(feature = "tools")]
pub use asm::{AsmError, assemble, encode};
pub use disasm::{disasm, disasm_op};
