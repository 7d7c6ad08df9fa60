//! The x86-64 general-purpose registers, as the encoder names them.
//!
//! Mirrors the register numbering behind `reg2hex[]` and `is_ereg()` in Linux
//! `arch/x86/net/bpf_jit_comp.c`: the low three bits go into ModRM/SIB fields, the fourth bit
//! into a REX prefix bit.

/// A 64-bit general-purpose register (its 32/16/8-bit views are chosen by the instruction).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Reg {
    Rax = 0,
    Rcx = 1,
    Rdx = 2,
    Rbx = 3,
    Rsp = 4,
    Rbp = 5,
    Rsi = 6,
    Rdi = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
    R11 = 11,
    R12 = 12,
    R13 = 13,
    R14 = 14,
    R15 = 15,
}

impl Reg {
    /// The hardware number 0..16.
    #[inline]
    pub const fn num(self) -> u8 {
        self as u8
    }

    /// The low three bits, as placed in a ModRM or SIB field.
    #[inline]
    pub const fn low3(self) -> u8 {
        self as u8 & 7
    }

    /// Whether the register is r8..r15 (needs a REX.R/X/B bit).
    #[inline]
    pub const fn is_ext(self) -> bool {
        self as u8 >= 8
    }

    /// Whether its low byte is only reachable with a REX prefix (`spl`, `bpl`, `sil`, `dil`;
    /// without REX those encodings mean `ah`, `ch`, `dh`, `bh`).
    #[inline]
    pub const fn byte_needs_rex(self) -> bool {
        matches!(self, Reg::Rsp | Reg::Rbp | Reg::Rsi | Reg::Rdi)
    }
}

/// Operand width of an integer instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    /// 8 bits.
    B,
    /// 16 bits (operand-size prefix `66`).
    H,
    /// 32 bits (writes zero-extend to 64).
    W,
    /// 64 bits (REX.W).
    Q,
}

impl Width {
    /// 64-bit when `wide`, else 32-bit: the two widths BPF ALU classes use.
    #[inline]
    pub const fn of(wide: bool) -> Width {
        if wide { Width::Q } else { Width::W }
    }
}

/// A memory operand `[base + disp]` (the only addressing form the JIT needs besides SIB with an
/// index, which [`Mem::index`] adds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mem {
    /// Base register.
    pub base: Reg,
    /// Optional index register and scale (1, 2, 4 or 8); the index must not be `rsp`.
    pub index: Option<(Reg, u8)>,
    /// Signed displacement.
    pub disp: i32,
}

impl Mem {
    /// `[base + disp]`.
    #[inline]
    pub const fn base(base: Reg, disp: i32) -> Mem {
        Mem {
            base,
            index: None,
            disp,
        }
    }

    /// `[base + index * scale + disp]`.
    #[inline]
    pub const fn index(base: Reg, index: Reg, scale: u8, disp: i32) -> Mem {
        Mem {
            base,
            index: Some((index, scale)),
            disp,
        }
    }
}

/// Condition codes, numbered as in the `Jcc`/`SETcc`/`CMOVcc` opcode low nibble.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Cc {
    O = 0x0,
    No = 0x1,
    B = 0x2,
    Ae = 0x3,
    E = 0x4,
    Ne = 0x5,
    Be = 0x6,
    A = 0x7,
    S = 0x8,
    Ns = 0x9,
    P = 0xa,
    Np = 0xb,
    L = 0xc,
    Ge = 0xd,
    Le = 0xe,
    G = 0xf,
}
