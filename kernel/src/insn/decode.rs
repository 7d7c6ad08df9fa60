//! The typed view of an instruction: [`decode`] turns raw slots into an [`Op`].
//!
//! Decoding checks what one instruction alone can tell (known opcode, reserved fields zero,
//! register numbers in range for their role); whole-program rules (jump targets, reachability)
//! belong to the load-time checks. The accepted set is the ISA of RFC 9669 plus the later
//! additions Linux 6.18 takes (`may_goto`, load-acquire/store-release), and the kernel-internal
//! tail-call opcode that the load path writes in place of `call bpf_tail_call`.

use super::Insn;
use crate::uapi::{alu, atomic, class, jmp, mode, pseudo, size, src};

/// An access width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    /// 1 byte.
    B,
    /// 2 bytes.
    H,
    /// 4 bytes.
    W,
    /// 8 bytes.
    DW,
}

impl Size {
    /// The width in bytes.
    #[inline]
    pub const fn bytes(self) -> usize {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }

    fn from_code(code: u8) -> Size {
        match code & 0x18 {
            size::B => Size::B,
            size::H => Size::H,
            size::W => Size::W,
            _ => Size::DW,
        }
    }

    /// The `BPF_SIZE` bits for this width.
    pub const fn code(self) -> u8 {
        match self {
            Size::B => size::B,
            Size::H => size::H,
            Size::W => size::W,
            Size::DW => size::DW,
        }
    }
}

/// The second operand of an ALU or jump instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    /// A register.
    Reg(u8),
    /// A sign-extended 32-bit immediate.
    Imm(i32),
}

/// ALU operations, with the `off`-selected variants (signed division, sign-extending move) made
/// explicit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    SDiv,
    Or,
    And,
    Lsh,
    Rsh,
    Neg,
    Mod,
    SMod,
    Xor,
    Mov,
    /// Sign-extending move from the low 8, 16 or 32 bits.
    MovSx(u8),
    Arsh,
}

/// Byte-order operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndKind {
    /// To little endian (on a little-endian machine: truncate to the width).
    ToLe,
    /// To big endian (swap, then truncate).
    ToBe,
    /// Unconditional swap (`bswap`, ALU64 class, ISA v4).
    Swap,
}

/// Jump conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Cond {
    Eq,
    Gt,
    Ge,
    Set,
    Ne,
    Sgt,
    Sge,
    Lt,
    Le,
    Slt,
    Sle,
}

/// Atomic read-modify-write and ordered-access operations (`fetch`: the old value is returned
/// in the source register).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum AtomicOp {
    Add {
        fetch: bool,
    },
    Or {
        fetch: bool,
    },
    And {
        fetch: bool,
    },
    Xor {
        fetch: bool,
    },
    Xchg,
    Cmpxchg,
    /// `dst = load_acquire(src + off)`.
    LoadAcquire,
    /// `store_release(dst + off, src)`.
    StoreRelease,
}

/// The target of a `call`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// A helper by id.
    Helper(i32),
    /// A BPF-to-BPF call: `imm` is the distance from the next instruction.
    Local(i32),
    /// A kernel function by BTF id.
    Kfunc(i32),
    /// `callx`: the helper id is in a register.
    Reg(u8),
}

/// One decoded instruction. Register fields are register numbers 0..=10.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Op {
    /// `dst = dst op src` (`wide`: 64-bit, else 32-bit with the upper half zeroed).
    Alu {
        wide: bool,
        op: AluOp,
        dst: u8,
        src: Operand,
    },
    /// Byte order conversion of the low `bits` (16, 32 or 64) of `dst`.
    End { kind: EndKind, bits: u8, dst: u8 },
    /// Unconditional jump by `off` instructions (`ja`, or `ja32` with a 32-bit distance).
    Ja { off: i32 },
    /// Conditional jump (`wide`: compare 64 bits, else the low 32).
    Jmp {
        wide: bool,
        cond: Cond,
        dst: u8,
        src: Operand,
        off: i16,
    },
    /// A function call.
    Call(Call),
    /// The kernel-internal tail call (`BPF_JMP | BPF_TAIL_CALL`), written by the load path,
    /// with what the verifier proved about its site.
    TailCall(TailCallAux),
    /// Return from the current function with r0.
    Exit,
    /// `may_goto`: jump by `off` when the loop budget is used up, else fall through.
    MayGoto { off: i16 },
    /// `dst = *(size *)(src + off)`, zero- or sign-extended.
    Ldx {
        size: Size,
        sign: bool,
        dst: u8,
        src: u8,
        off: i16,
    },
    /// `*(size *)(dst + off) = imm`.
    St {
        size: Size,
        dst: u8,
        off: i16,
        imm: i32,
    },
    /// `*(size *)(dst + off) = src`.
    Stx {
        size: Size,
        dst: u8,
        src: u8,
        off: i16,
    },
    /// Atomic operation on `*(size *)(dst + off)` with `src` (and r0 for cmpxchg).
    Atomic {
        size: Size,
        op: AtomicOp,
        dst: u8,
        src: u8,
        off: i16,
    },
    /// Two-slot 64-bit immediate load; `pseudo` is the `src_reg` reference kind (0: a number).
    LdImm64 { dst: u8, pseudo: u8, imm: u64 },
    /// Legacy packet load (`LD_ABS`/`LD_IND`).
    LdPacket {
        size: Size,
        indirect: bool,
        src: u8,
        imm: i32,
    },
}

/// Why one instruction could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The opcode is not part of the ISA.
    UnknownOpcode(u8),
    /// A field that must be zero for this opcode is not.
    ReservedField(&'static str),
    /// A register number above r10.
    BadRegister(u8),
    /// The first slot of an `ld_imm64` is the last slot of the program, or the second slot is
    /// not the all-zero continuation.
    BadLdImm64,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::UnknownOpcode(c) => write!(f, "unknown opcode {c:#04x}"),
            DecodeError::ReservedField(what) => write!(f, "reserved field {what} is not zero"),
            DecodeError::BadRegister(r) => write!(f, "R{r} is invalid"),
            DecodeError::BadLdImm64 => f.write_str("invalid BPF_LD_IMM insn"),
        }
    }
}

/// The kernel-internal tail-call opcode (`BPF_JMP | BPF_TAIL_CALL`, 0xf5).
pub const TAIL_CALL_CODE: u8 = class::JMP | 0xf0;

/// What the verifier proved about a tail-call site, carried in the tail-call instruction to
/// both engines (the kernel keeps it in `bpf_insn_aux_data`'s `map_ptr_state` and
/// `map_key_state` and hands the direct case to the JIT as a `bpf_jit_poke_descriptor`).
///
/// Encoding: `src_reg` holds the flags ([`TailCallAux::VERIFIED`], [`TailCallAux::MAP`],
/// [`TailCallAux::KEY`]), `off` the map's index in the program's `used_maps`, `imm` the key;
/// fields a flag does not claim are zero. A program loaded on the trusted path has none: its
/// tail calls check at run time that R2 is one of its maps and a prog_array.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TailCallAux {
    /// The verifier proved R2 a prog_array of the program's maps on every path.
    pub verified: bool,
    /// The same map on every path (not poisoned): its index in `used_maps`.
    pub map: Option<u16>,
    /// The same constant key on every path, below the map's `max_entries`: with `map`, the
    /// site can be a direct jump.
    pub key: Option<u32>,
}

impl TailCallAux {
    /// `src_reg` flag: [`TailCallAux::verified`].
    pub const VERIFIED: u8 = 1;
    /// `src_reg` flag: `off` holds [`TailCallAux::map`].
    pub const MAP: u8 = 2;
    /// `src_reg` flag: `imm` holds [`TailCallAux::key`].
    pub const KEY: u8 = 4;

    /// The tail-call instruction carrying these facts.
    pub const fn insn(self) -> Insn {
        let mut flags = 0;
        if self.verified {
            flags |= Self::VERIFIED;
        }
        let off = match self.map {
            Some(m) => {
                flags |= Self::MAP;
                m as i16
            }
            None => 0,
        };
        let imm = match self.key {
            Some(k) => {
                flags |= Self::KEY;
                k as i32
            }
            None => 0,
        };
        Insn::new(TAIL_CALL_CODE, 0, flags, off, imm)
    }

    fn decode(insn: Insn) -> Result<TailCallAux, DecodeError> {
        let flags = insn.src();
        let has = |f: u8| flags & f != 0;
        zero(
            insn.dst() == 0
                && flags & !(Self::VERIFIED | Self::MAP | Self::KEY) == 0
                && (has(Self::MAP) || insn.off == 0)
                && insn.off >= 0
                && (has(Self::KEY) || insn.imm == 0),
            "tail call fields",
        )?;
        Ok(TailCallAux {
            verified: has(Self::VERIFIED),
            map: has(Self::MAP).then_some(insn.off as u16),
            key: has(Self::KEY).then_some(insn.imm as u32),
        })
    }
}

fn reg(r: u8, max: u8) -> Result<u8, DecodeError> {
    if r > max {
        Err(DecodeError::BadRegister(r))
    } else {
        Ok(r)
    }
}

fn zero(v: bool, what: &'static str) -> Result<(), DecodeError> {
    if v {
        Ok(())
    } else {
        Err(DecodeError::ReservedField(what))
    }
}

/// Decodes the instruction at `insns[pc]` (reading `insns[pc + 1]` for `ld_imm64`).
pub fn decode(insns: &[Insn], pc: usize) -> Result<Op, DecodeError> {
    decode_with(insns, pc, 10)
}

/// The hidden auxiliary register of kernel-internal rewrites (`BPF_REG_AX`), R11: constant
/// blinding and other load-time rewrites may use it; programs from outside may not.
pub const BPF_REG_AX: u8 = 11;

/// Like [`decode`], for instructions the load path wrote: admits [`BPF_REG_AX`].
pub fn decode_internal(insns: &[Insn], pc: usize) -> Result<Op, DecodeError> {
    decode_with(insns, pc, BPF_REG_AX)
}

fn decode_with(insns: &[Insn], pc: usize, max: u8) -> Result<Op, DecodeError> {
    let insn = insns[pc];
    let code = insn.code;
    let (d, s) = (insn.dst(), insn.src());
    match insn.class() {
        class::ALU | class::ALU64 => decode_alu(insn, max),
        class::JMP | class::JMP32 => decode_jmp(insn, max),
        class::LDX => {
            let m = code & 0xe0;
            zero(insn.imm == 0, "imm")?;
            match m {
                mode::MEM | mode::MEMSX => {
                    let size = Size::from_code(code);
                    if m == mode::MEMSX && size == Size::DW {
                        return Err(DecodeError::UnknownOpcode(code));
                    }
                    Ok(Op::Ldx {
                        size,
                        sign: m == mode::MEMSX,
                        dst: reg(d, max)?,
                        src: reg(s, max)?,
                        off: insn.off,
                    })
                }
                _ => Err(DecodeError::UnknownOpcode(code)),
            }
        }
        class::ST => {
            zero(s == 0, "src_reg")?;
            if code & 0xe0 != mode::MEM {
                return Err(DecodeError::UnknownOpcode(code));
            }
            Ok(Op::St {
                size: Size::from_code(code),
                dst: reg(d, max)?,
                off: insn.off,
                imm: insn.imm,
            })
        }
        class::STX => {
            let size = Size::from_code(code);
            match code & 0xe0 {
                mode::MEM => {
                    zero(insn.imm == 0, "imm")?;
                    Ok(Op::Stx {
                        size,
                        dst: reg(d, max)?,
                        src: reg(s, max)?,
                        off: insn.off,
                    })
                }
                mode::ATOMIC => decode_atomic(insn, size, max),
                _ => Err(DecodeError::UnknownOpcode(code)),
            }
        }
        _ => {
            // class::LD
            match code {
                c if c == class::LD | mode::IMM | size::DW => {
                    let next = insns.get(pc + 1).ok_or(DecodeError::BadLdImm64)?;
                    if next.code != 0 || next.regs != 0 || next.off != 0 {
                        return Err(DecodeError::BadLdImm64);
                    }
                    zero(insn.off == 0, "off")?;
                    if s > pseudo::MAP_IDX_VALUE {
                        return Err(DecodeError::BadLdImm64);
                    }
                    let imm = (insn.imm as u32 as u64) | ((next.imm as u32 as u64) << 32);
                    Ok(Op::LdImm64 {
                        dst: reg(d, max)?,
                        pseudo: s,
                        imm,
                    })
                }
                _ => {
                    let m = code & 0xe0;
                    let size = Size::from_code(code);
                    if (m != mode::ABS && m != mode::IND) || size == Size::DW {
                        return Err(DecodeError::UnknownOpcode(code));
                    }
                    zero(d == 0 && insn.off == 0, "dst_reg/off")?;
                    if m == mode::ABS {
                        zero(s == 0, "src_reg")?;
                    }
                    Ok(Op::LdPacket {
                        size,
                        indirect: m == mode::IND,
                        src: reg(s, max)?,
                        imm: insn.imm,
                    })
                }
            }
        }
    }
}

fn decode_alu(insn: Insn, max: u8) -> Result<Op, DecodeError> {
    let code = insn.code;
    let wide = insn.class() == class::ALU64;
    let is_x = code & src::X != 0;
    let (d, s) = (insn.dst(), insn.src());
    let dst = reg(d, max)?;
    let operand = |allow_off: bool| -> Result<Operand, DecodeError> {
        if !allow_off {
            zero(insn.off == 0, "off")?;
        }
        if is_x {
            zero(insn.imm == 0, "imm")?;
            Ok(Operand::Reg(reg(s, max)?))
        } else {
            zero(s == 0, "src_reg")?;
            Ok(Operand::Imm(insn.imm))
        }
    };
    let op = match code & 0xf0 {
        alu::ADD => AluOp::Add,
        alu::SUB => AluOp::Sub,
        alu::MUL => AluOp::Mul,
        alu::OR => AluOp::Or,
        alu::AND => AluOp::And,
        alu::LSH => AluOp::Lsh,
        alu::RSH => AluOp::Rsh,
        alu::XOR => AluOp::Xor,
        alu::ARSH => AluOp::Arsh,
        alu::DIV | alu::MOD => {
            let signed = match insn.off {
                0 => false,
                1 => true,
                _ => return Err(DecodeError::ReservedField("off")),
            };
            let op = match (code & 0xf0 == alu::DIV, signed) {
                (true, false) => AluOp::Div,
                (true, true) => AluOp::SDiv,
                (false, false) => AluOp::Mod,
                (false, true) => AluOp::SMod,
            };
            return Ok(Op::Alu {
                wide,
                op,
                dst,
                src: operand(true)?,
            });
        }
        alu::MOV => {
            let op = match insn.off {
                0 => AluOp::Mov,
                8 | 16 if is_x => AluOp::MovSx(insn.off as u8),
                32 if is_x && wide => AluOp::MovSx(32),
                _ => return Err(DecodeError::ReservedField("off")),
            };
            return Ok(Op::Alu {
                wide,
                op,
                dst,
                src: operand(true)?,
            });
        }
        alu::NEG => {
            zero(
                !is_x && s == 0 && insn.off == 0 && insn.imm == 0,
                "src_reg/off/imm",
            )?;
            return Ok(Op::Alu {
                wide,
                op: AluOp::Neg,
                dst,
                src: Operand::Imm(0),
            });
        }
        alu::END => {
            zero(s == 0 && insn.off == 0, "src_reg/off")?;
            let kind = match (wide, is_x) {
                (false, false) => EndKind::ToLe,
                (false, true) => EndKind::ToBe,
                (true, false) => EndKind::Swap,
                (true, true) => return Err(DecodeError::UnknownOpcode(code)),
            };
            let bits = match insn.imm {
                16 | 32 | 64 => insn.imm as u8,
                _ => return Err(DecodeError::ReservedField("imm")),
            };
            return Ok(Op::End { kind, bits, dst });
        }
        _ => return Err(DecodeError::UnknownOpcode(code)),
    };
    Ok(Op::Alu {
        wide,
        op,
        dst,
        src: operand(false)?,
    })
}

fn decode_jmp(insn: Insn, max: u8) -> Result<Op, DecodeError> {
    let code = insn.code;
    let wide = insn.class() == class::JMP;
    let is_x = code & src::X != 0;
    let (d, s) = (insn.dst(), insn.src());
    if code == TAIL_CALL_CODE {
        return Ok(Op::TailCall(TailCallAux::decode(insn)?));
    }
    let cond = match code & 0xf0 {
        jmp::JA => {
            zero(!is_x && d == 0 && s == 0, "dst_reg/src_reg")?;
            return if wide {
                zero(insn.imm == 0, "imm")?;
                Ok(Op::Ja {
                    off: insn.off as i32,
                })
            } else {
                zero(insn.off == 0, "off")?;
                Ok(Op::Ja { off: insn.imm })
            };
        }
        jmp::CALL => {
            if !wide {
                return Err(DecodeError::UnknownOpcode(code));
            }
            zero(insn.off == 0, "off")?;
            if is_x {
                // callx: LLVM puts the register in dst_reg.
                zero(s == 0 && insn.imm == 0, "src_reg/imm")?;
                return Ok(Op::Call(Call::Reg(reg(d, max)?)));
            }
            zero(d == 0, "dst_reg")?;
            return match s {
                0 => Ok(Op::Call(Call::Helper(insn.imm))),
                pseudo::CALL => Ok(Op::Call(Call::Local(insn.imm))),
                pseudo::KFUNC_CALL => Ok(Op::Call(Call::Kfunc(insn.imm))),
                _ => Err(DecodeError::ReservedField("src_reg")),
            };
        }
        jmp::EXIT => {
            if !wide {
                return Err(DecodeError::UnknownOpcode(code));
            }
            zero(
                !is_x && d == 0 && s == 0 && insn.off == 0 && insn.imm == 0,
                "exit fields",
            )?;
            return Ok(Op::Exit);
        }
        jmp::JCOND => {
            if !wide || is_x {
                return Err(DecodeError::UnknownOpcode(code));
            }
            zero(d == 0 && s == 0 && insn.imm == 0, "may_goto fields")?;
            return Ok(Op::MayGoto { off: insn.off });
        }
        jmp::JEQ => Cond::Eq,
        jmp::JGT => Cond::Gt,
        jmp::JGE => Cond::Ge,
        jmp::JSET => Cond::Set,
        jmp::JNE => Cond::Ne,
        jmp::JSGT => Cond::Sgt,
        jmp::JSGE => Cond::Sge,
        jmp::JLT => Cond::Lt,
        jmp::JLE => Cond::Le,
        jmp::JSLT => Cond::Slt,
        jmp::JSLE => Cond::Sle,
        _ => return Err(DecodeError::UnknownOpcode(code)),
    };
    let src = if is_x {
        zero(insn.imm == 0, "imm")?;
        Operand::Reg(reg(s, max)?)
    } else {
        zero(s == 0, "src_reg")?;
        Operand::Imm(insn.imm)
    };
    Ok(Op::Jmp {
        wide,
        cond,
        dst: reg(d, max)?,
        src,
        off: insn.off,
    })
}

fn decode_atomic(insn: Insn, size: Size, max: u8) -> Result<Op, DecodeError> {
    let (d, s) = (insn.dst(), insn.src());
    let op = match insn.imm {
        atomic::LOAD_ACQ => AtomicOp::LoadAcquire,
        atomic::STORE_REL => AtomicOp::StoreRelease,
        _ if !matches!(size, Size::W | Size::DW) => {
            return Err(DecodeError::UnknownOpcode(insn.code));
        }
        atomic::ADD => AtomicOp::Add { fetch: false },
        atomic::OR => AtomicOp::Or { fetch: false },
        atomic::AND => AtomicOp::And { fetch: false },
        atomic::XOR => AtomicOp::Xor { fetch: false },
        x if x == atomic::ADD | atomic::FETCH => AtomicOp::Add { fetch: true },
        x if x == atomic::OR | atomic::FETCH => AtomicOp::Or { fetch: true },
        x if x == atomic::AND | atomic::FETCH => AtomicOp::And { fetch: true },
        x if x == atomic::XOR | atomic::FETCH => AtomicOp::Xor { fetch: true },
        atomic::XCHG => AtomicOp::Xchg,
        atomic::CMPXCHG => AtomicOp::Cmpxchg,
        _ => return Err(DecodeError::ReservedField("imm")),
    };
    Ok(Op::Atomic {
        size,
        op,
        dst: reg(d, max)?,
        src: reg(s, max)?,
        off: insn.off,
    })
}

/// A jump's or local call's target, as an instruction index, if `op` at `pc` has one.
pub fn branch_target(op: &Op, pc: usize) -> Option<i64> {
    let pc = pc as i64;
    match *op {
        Op::Ja { off } => Some(pc + 1 + off as i64),
        Op::Jmp { off, .. } | Op::MayGoto { off } => Some(pc + 1 + off as i64),
        Op::Call(Call::Local(imm)) => Some(pc + 1 + imm as i64),
        _ => None,
    }
}

impl Op {
    /// How many slots the instruction takes (2 for `ld_imm64`).
    pub const fn slots(&self) -> usize {
        match self {
            Op::LdImm64 { .. } => 2,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::*;

    #[test]
    fn decodes_common_forms() {
        let p = [mov64_imm(0, 7), exit()];
        assert_eq!(
            decode(&p, 0),
            Ok(Op::Alu {
                wide: true,
                op: AluOp::Mov,
                dst: 0,
                src: Operand::Imm(7)
            })
        );
        assert_eq!(decode(&p, 1), Ok(Op::Exit));
        let l = ld_imm64(3, 0x1122_3344_5566_7788);
        assert_eq!(
            decode(&l, 0),
            Ok(Op::LdImm64 {
                dst: 3,
                pseudo: 0,
                imm: 0x1122_3344_5566_7788
            })
        );
        assert_eq!(decode(&l[..1], 0), Err(DecodeError::BadLdImm64));
    }

    #[test]
    fn rejects_bad_fields() {
        assert_eq!(
            decode(&[Insn::new(0xff, 0, 0, 0, 0)], 0),
            Err(DecodeError::UnknownOpcode(0xff))
        );
        assert_eq!(
            decode(&[Insn::new(0xb7, 11, 0, 0, 0)], 0),
            Err(DecodeError::BadRegister(11))
        );
        // sdiv with off = 2
        assert_eq!(
            decode(&[Insn::new(0x37, 1, 0, 2, 1)], 0),
            Err(DecodeError::ReservedField("off"))
        );
        // movsx32 in the 32-bit class does not exist
        assert!(decode(&[Insn::new(0xbc, 1, 2, 32, 0)], 0).is_err());
    }
}
