//! The one place that knows how x86-64 operands are encoded: legacy prefixes, REX, ModRM, SIB
//! and displacements.
//!
//! Mirrors the `add_1mod`/`add_2mod`/`add_1reg`/`add_2reg` and `emit_insn_suffix` helpers of
//! Linux `arch/x86/net/bpf_jit_comp.c`. Rules encoded here and nowhere else:
//! - a base of `rbp`/`r13` with no displacement still needs a zero disp8 (ModRM mod=00 with
//!   r/m=101 means RIP-relative);
//! - a base of `rsp`/`r12` needs a SIB byte (r/m=100 means "SIB follows");
//! - a byte operand in `spl`/`bpl`/`sil`/`dil` needs a REX prefix even when no REX bit is set;
//! - 16-bit operations take the `66` prefix, 64-bit ones REX.W.

use super::reg::{Mem, Reg, Width};
use alloc::vec::Vec;

/// The r/m operand of an instruction: a register or memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rm {
    /// Register-direct (ModRM mod=11).
    Reg(Reg),
    /// A memory operand.
    Mem(Mem),
}

/// The ModRM `reg` field: another register or an opcode extension (`/digit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegField {
    /// A register operand.
    Reg(Reg),
    /// An opcode extension 0..8.
    Ext(u8),
}

impl RegField {
    fn bits(self) -> (u8, bool) {
        match self {
            RegField::Reg(r) => (r.low3(), r.is_ext()),
            RegField::Ext(d) => (d & 7, false),
        }
    }
}

/// Prefix choices for one ModRM-form instruction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Enc {
    /// `F0` lock prefix.
    pub lock: bool,
    /// `66` operand-size prefix (16-bit operation).
    pub o16: bool,
    /// REX.W (64-bit operation).
    pub w: bool,
    /// The ModRM `reg` register is used as a byte register.
    pub byte_reg: bool,
    /// A register r/m operand is used as a byte register.
    pub byte_rm: bool,
}

/// Whether `v` fits a sign-extended 8-bit immediate or displacement.
#[inline]
pub const fn is_imm8(v: i64) -> bool {
    v >= -128 && v <= 127
}

/// An instruction stream being assembled.
#[derive(Clone, Debug, Default)]
pub struct Asm {
    /// The bytes so far.
    pub buf: Vec<u8>,
}

impl Asm {
    /// An empty stream.
    pub fn new() -> Asm {
        Asm { buf: Vec::new() }
    }

    /// Current length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was emitted yet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends raw bytes.
    #[inline]
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Appends one byte.
    #[inline]
    pub fn byte(&mut self, b: u8) {
        self.buf.push(b);
    }

    /// Appends a little-endian 16-bit value.
    #[inline]
    pub fn imm16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    /// Appends a little-endian 32-bit value.
    #[inline]
    pub fn imm32(&mut self, v: i32) {
        self.bytes(&v.to_le_bytes());
    }

    /// Appends a little-endian 64-bit value.
    #[inline]
    pub fn imm64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    /// Emits `[lock] [66] [REX] opcode ModRM [SIB] [disp]` for a ModRM-form instruction.
    ///
    /// `width` selects the operand-size prefix or REX.W; for byte width a REX prefix is forced
    /// when either register operand is `spl`/`bpl`/`sil`/`dil`.
    pub fn op_modrm(&mut self, lock: bool, width: Width, opcode: &[u8], reg: RegField, rm: Rm) {
        let byte = width == Width::B;
        let enc = Enc {
            lock,
            o16: width == Width::H,
            w: width == Width::Q,
            byte_reg: byte,
            byte_rm: byte,
        };
        self.op_enc(enc, opcode, reg, rm);
    }

    /// [`Asm::op_modrm`] with every prefix decision spelled out (for mixed-width forms such as
    /// `movzx r32, r/m8`, whose r/m is a byte register but whose width is 32).
    pub fn op_enc(&mut self, enc: Enc, opcode: &[u8], reg: RegField, rm: Rm) {
        if enc.lock {
            self.byte(0xf0);
        }
        if enc.o16 {
            self.byte(0x66);
        }
        let (reg3, rex_r) = reg.bits();
        let (rex_x, rex_b) = match rm {
            Rm::Reg(r) => (false, r.is_ext()),
            Rm::Mem(m) => (m.index.is_some_and(|(i, _)| i.is_ext()), m.base.is_ext()),
        };
        let force = (enc.byte_reg && matches!(reg, RegField::Reg(r) if r.byte_needs_rex()))
            || (enc.byte_rm && matches!(rm, Rm::Reg(r) if r.byte_needs_rex()));
        self.rex(enc.w, rex_r, rex_x, rex_b, force);
        self.bytes(opcode);
        match rm {
            Rm::Reg(r) => self.byte(0xc0 | (reg3 << 3) | r.low3()),
            Rm::Mem(m) => self.mem_suffix(reg3, m),
        }
    }

    /// Emits a REX prefix when any bit is set or `force` asks for one.
    pub fn rex(&mut self, w: bool, r: bool, x: bool, b: bool, force: bool) {
        let v = 0x40 | (w as u8) << 3 | (r as u8) << 2 | (x as u8) << 1 | b as u8;
        if v != 0x40 || force {
            self.byte(v);
        }
    }

    /// Emits ModRM, optional SIB and displacement for a memory operand.
    fn mem_suffix(&mut self, reg3: u8, m: Mem) {
        let base3 = m.base.low3();
        // mod=00 with base 101 (rbp/r13) is RIP-relative: those bases always carry a disp.
        let md = if m.disp == 0 && base3 != 5 {
            0u8
        } else if is_imm8(m.disp as i64) {
            1
        } else {
            2
        };
        match m.index {
            None if base3 != 4 => self.byte(md << 6 | reg3 << 3 | base3),
            index => {
                // r/m=100: a SIB byte follows (always for rsp/r12 as base).
                self.byte(md << 6 | reg3 << 3 | 4);
                let (idx3, ss) = match index {
                    Some((i, scale)) => (i.low3(), scale_bits(scale)),
                    None => (4, 0), // index=100: none
                };
                self.byte(ss << 6 | idx3 << 3 | base3);
            }
        }
        match md {
            1 => self.byte(m.disp as i8 as u8),
            2 => self.imm32(m.disp),
            _ => {}
        }
    }
}

fn scale_bits(scale: u8) -> u8 {
    match scale {
        1 => 0,
        2 => 1,
        4 => 2,
        _ => 3,
    }
}
