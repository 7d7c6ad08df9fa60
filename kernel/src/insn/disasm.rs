//! Disassembler into the conventional BPF assembly text: the dialect of the bpf_conformance
//! suite (`lib/src/bpf_assembler.cc` there, and uBPF's), which [`super::assemble`] reads back.
//!
//! It plays the role of the kernel's `kernel/bpf/disasm.c` (`print_bpf_insn`), but prints the
//! `%rN` dialect instead of the kernel's C-like one, so that text round-trips through the
//! assembler. Forms the conformance suite does not have are spelled as follows:
//!
//! | instruction | text |
//! |---|---|
//! | kfunc call (`src_reg` 2) | `call kfunc N` |
//! | BPF-to-BPF call | `call local +N` |
//! | kernel-internal tail call (0xf5) | `tail_call` |
//! | `may_goto` | `may_goto +N` |
//! | load-acquire, 8..64 bits | `load_acquire8 %r0, [%r1+0]` … `load_acquire64 …` |
//! | store-release, 8..64 bits | `store_release8 [%r1+0], %r2` … `store_release64 …` |
//! | `ld_imm64` with a pseudo source | `lddw %r1, KIND LO` or `lddw %r1, KIND LO, HI` |
//! | legacy packet loads | `ldabsb 12`, `ldindh %r2, 12` (sizes `b h w`) |
//!
//! `KIND` is the `src_reg` of the `ld_imm64`: `map_fd` (1), `map_value` (2), `btf_id` (3),
//! `func` (4), `map_idx` (5), `map_idx_value` (6). `LO` is the first slot's immediate (unsigned
//! decimal, except `func`, whose immediate is a relative instruction distance printed `+N`/`-N`),
//! `HI` the second slot's (unsigned decimal; omitted when 0; for `map_value` it is the offset
//! into the value). A plain `lddw` prints its 64-bit immediate in hex.
//!
//! Jump distances print relative (`+N`/`-N`, counted from the next instruction), immediates in
//! signed decimal. `ja` prints as `ja32` when the instruction uses the JMP32 encoding (or, for a
//! bare [`Op`], when the distance needs more than 16 bits).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{self, Display, Formatter};

use super::{AluOp, AtomicOp, Call, Cond, DecodeError, EndKind, Insn, Op, Operand, Size, decode};
use crate::uapi::class;

/// ALU operation mnemonics (without the `32` suffix); `MovSx` is spelled separately.
pub(super) const ALU_NAMES: [(AluOp, &str); 15] = [
    (AluOp::Add, "add"),
    (AluOp::Sub, "sub"),
    (AluOp::Mul, "mul"),
    (AluOp::Div, "div"),
    (AluOp::SDiv, "sdiv"),
    (AluOp::Or, "or"),
    (AluOp::And, "and"),
    (AluOp::Lsh, "lsh"),
    (AluOp::Rsh, "rsh"),
    (AluOp::Neg, "neg"),
    (AluOp::Mod, "mod"),
    (AluOp::SMod, "smod"),
    (AluOp::Xor, "xor"),
    (AluOp::Mov, "mov"),
    (AluOp::Arsh, "arsh"),
];

/// Conditional jump mnemonics (without the `32` suffix).
pub(super) const COND_NAMES: [(Cond, &str); 11] = [
    (Cond::Eq, "jeq"),
    (Cond::Gt, "jgt"),
    (Cond::Ge, "jge"),
    (Cond::Set, "jset"),
    (Cond::Ne, "jne"),
    (Cond::Sgt, "jsgt"),
    (Cond::Sge, "jsge"),
    (Cond::Lt, "jlt"),
    (Cond::Le, "jle"),
    (Cond::Slt, "jslt"),
    (Cond::Sle, "jsle"),
];

/// Size letters of `ldx*`, `st*`, `stx*`, `ldabs*`, `ldind*`.
pub(super) const SIZE_NAMES: [(Size, &str); 4] = [
    (Size::B, "b"),
    (Size::H, "h"),
    (Size::W, "w"),
    (Size::DW, "dw"),
];

/// Names of the `ld_imm64` pseudo sources (`src_reg` values 1..=6).
pub(super) const PSEUDO_NAMES: [(u8, &str); 6] = [
    (1, "map_fd"),
    (2, "map_value"),
    (3, "btf_id"),
    (4, "func"),
    (5, "map_idx"),
    (6, "map_idx_value"),
];

/// The `ld_imm64` pseudo source whose immediate is a relative instruction distance.
pub(super) const PSEUDO_FUNC: u8 = 4;

fn lookup<K: PartialEq + Copy>(table: &[(K, &'static str)], key: K) -> &'static str {
    table
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("?", |(_, n)| n)
}

fn size_name(s: Size) -> &'static str {
    lookup(&SIZE_NAMES, s)
}

/// Width suffix of atomics: none for 64 bits, else the width in bits.
fn atomic_suffix(s: Size) -> &'static str {
    match s {
        Size::DW => "",
        Size::W => "32",
        Size::H => "16",
        Size::B => "8",
    }
}

/// Writes a relative distance as `+N` or `-N`.
struct Rel(i64);

impl Display for Rel {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{:+}", self.0)
    }
}

/// Writes a memory operand `[%rN+off]` / `[%rN-off]`.
struct Mem(u8, i16);

impl Display for Mem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "[%r{}{:+}]", self.0, self.1)
    }
}

/// Writes an ALU or jump source operand.
struct Src(Operand);

impl Display for Src {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            Operand::Reg(r) => write!(f, "%r{r}"),
            Operand::Imm(i) => write!(f, "{i}"),
        }
    }
}

/// An [`Op`] with the one encoding choice the typed view drops: whether a `ja` is `ja32`.
struct Text<'a> {
    op: &'a Op,
    ja32: bool,
}

impl Display for Text<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let w32 = |wide: bool| if wide { "" } else { "32" };
        match *self.op {
            Op::Alu {
                wide,
                op: AluOp::Neg,
                dst,
                ..
            } => write!(f, "neg{} %r{dst}", w32(wide)),
            Op::Alu {
                wide,
                op: AluOp::MovSx(bits),
                dst,
                src,
            } => {
                let to = if wide { 64 } else { 32 };
                write!(f, "movsx{bits}{to} %r{dst}, {}", Src(src))
            }
            Op::Alu { wide, op, dst, src } => {
                let name = lookup(&ALU_NAMES, op);
                write!(f, "{name}{} %r{dst}, {}", w32(wide), Src(src))
            }
            Op::End { kind, bits, dst } => {
                let name = match kind {
                    EndKind::ToLe => "le",
                    EndKind::ToBe => "be",
                    EndKind::Swap => "bswap",
                };
                write!(f, "{name}{bits} %r{dst}")
            }
            Op::Ja { off } => {
                let name = if self.ja32 { "ja32" } else { "ja" };
                write!(f, "{name} {}", Rel(off as i64))
            }
            Op::Jmp {
                wide,
                cond,
                dst,
                src,
                off,
            } => {
                let name = lookup(&COND_NAMES, cond);
                write!(
                    f,
                    "{name}{} %r{dst}, {}, {}",
                    w32(wide),
                    Src(src),
                    Rel(off as i64)
                )
            }
            Op::Call(Call::Helper(id)) => write!(f, "call {id}"),
            Op::Call(Call::Local(imm)) => write!(f, "call local {}", Rel(imm as i64)),
            Op::Call(Call::Kfunc(id)) => write!(f, "call kfunc {id}"),
            Op::Call(Call::Reg(r)) => write!(f, "call %r{r}"),
            Op::TailCall(aux) => {
                f.write_str("tail_call")?;
                let mut sep = " ";
                if aux.verified {
                    f.write_str(" verified")?;
                    sep = ", ";
                }
                if let Some(m) = aux.map {
                    write!(f, "{sep}map {m}")?;
                    sep = ", ";
                }
                match aux.key {
                    Some(k) => write!(f, "{sep}key {k}"),
                    None => Ok(()),
                }
            }
            Op::Exit => f.write_str("exit"),
            Op::MayGoto { off } => write!(f, "may_goto {}", Rel(off as i64)),
            Op::Ldx {
                size,
                sign,
                dst,
                src,
                off,
            } => {
                let s = if sign { "s" } else { "" };
                write!(f, "ldx{s}{} %r{dst}, {}", size_name(size), Mem(src, off))
            }
            Op::St {
                size,
                dst,
                off,
                imm,
            } => write!(f, "st{} {}, {imm}", size_name(size), Mem(dst, off)),
            Op::Stx {
                size,
                dst,
                src,
                off,
            } => write!(f, "stx{} {}, %r{src}", size_name(size), Mem(dst, off)),
            Op::Atomic {
                size,
                op,
                dst,
                src,
                off,
            } => write_atomic(f, size, op, dst, src, off),
            Op::LdImm64 { dst, pseudo, imm } => write_ld_imm64(f, dst, pseudo, imm),
            Op::LdPacket {
                size,
                indirect: false,
                imm,
                ..
            } => write!(f, "ldabs{} {imm}", size_name(size)),
            Op::LdPacket {
                size,
                indirect: true,
                src,
                imm,
            } => write!(f, "ldind{} %r{src}, {imm}", size_name(size)),
        }
    }
}

fn write_atomic(
    f: &mut Formatter<'_>,
    size: Size,
    op: AtomicOp,
    dst: u8,
    src: u8,
    off: i16,
) -> fmt::Result {
    let sfx = atomic_suffix(size);
    let mem = Mem(dst, off);
    let (fetch, name) = match op {
        AtomicOp::Add { fetch } => (fetch, "add"),
        AtomicOp::Or { fetch } => (fetch, "or"),
        AtomicOp::And { fetch } => (fetch, "and"),
        AtomicOp::Xor { fetch } => (fetch, "xor"),
        AtomicOp::Xchg => (false, "xchg"),
        AtomicOp::Cmpxchg => (false, "cmpxchg"),
        AtomicOp::LoadAcquire => {
            return write!(
                f,
                "load_acquire{} %r{dst}, {}",
                size.bytes() * 8,
                Mem(src, off)
            );
        }
        AtomicOp::StoreRelease => {
            return write!(f, "store_release{} {mem}, %r{src}", size.bytes() * 8);
        }
    };
    let fetch = if fetch { "fetch " } else { "" };
    write!(f, "lock {fetch}{name}{sfx} {mem}, %r{src}")
}

fn write_ld_imm64(f: &mut Formatter<'_>, dst: u8, pseudo: u8, imm: u64) -> fmt::Result {
    if pseudo == 0 {
        return write!(f, "lddw %r{dst}, {imm:#x}");
    }
    let (lo, hi) = (imm as u32, (imm >> 32) as u32);
    match PSEUDO_NAMES.iter().find(|(p, _)| *p == pseudo) {
        Some((PSEUDO_FUNC, name)) => write!(f, "lddw %r{dst}, {name} {}", Rel(lo as i32 as i64))?,
        Some((_, name)) => write!(f, "lddw %r{dst}, {name} {lo}")?,
        // Not decodable; printed so that a dump never fails, not read back by the assembler.
        None => write!(f, "lddw %r{dst}, pseudo{pseudo} {lo}")?,
    }
    if hi != 0 {
        write!(f, ", {hi}")?;
    }
    Ok(())
}

impl Display for Op {
    /// The instruction in the conventional assembly text (see [`disasm_op`]).
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let ja32 = matches!(*self, Op::Ja { off } if i16::try_from(off).is_err());
        Text { op: self, ja32 }.fmt(f)
    }
}

/// One decoded instruction as assembly text, e.g. `add32 %r1, %r2` or `jeq %r1, 5, +3`.
///
/// A `ja` whose distance fits 16 bits prints as `ja` (the JMP-class encoding), otherwise as
/// `ja32`; use [`disasm`] to keep the encoding an instruction stream actually has.
pub fn disasm_op(op: &Op) -> String {
    op.to_string()
}

/// Disassembles a program: one `(pc, text)` per instruction, `pc` counting slots (an `ld_imm64`
/// takes two). Fails with the pc and reason of the first slot that does not decode.
pub fn disasm(insns: &[Insn]) -> Result<Vec<(usize, String)>, (usize, DecodeError)> {
    let mut out = Vec::new();
    let mut pc = 0;
    while pc < insns.len() {
        let op = decode(insns, pc).map_err(|e| (pc, e))?;
        let ja32 = matches!(op, Op::Ja { .. }) && insns[pc].class() == class::JMP32;
        out.push((pc, Text { op: &op, ja32 }.to_string()));
        pc += op.slots();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::*;

    fn text(insns: &[Insn]) -> Vec<String> {
        disasm(insns).unwrap().into_iter().map(|(_, t)| t).collect()
    }

    #[test]
    fn prints_conformance_dialect() {
        let mut p = alloc::vec![
            mov64_imm(0, -1),
            alu32_reg(crate::uapi::alu::ADD, 1, 2),
            ldx_mem(Size::H, 0, 1, 2),
            ldx_memsx(Size::B, 3, 10, -8),
            st_mem(Size::W, 10, -4, 7),
            stx_mem(Size::DW, 10, 1, -16),
            atomic_op(Size::W, 0x40 | 1, 10, 3, -4),
            jmp32_imm(crate::uapi::jmp::JSGT, 1, -5, -3),
            ja32(70000),
            ja32(2),
            ja(-1),
            callx(2),
            call_local(4),
            exit(),
        ];
        p.extend_from_slice(&ld_imm64(3, 0xffff_ffff_ffff_ffff));
        p.extend_from_slice(&ld_imm64_raw(1, 2, (16 << 32) | 3));
        assert_eq!(
            text(&p),
            [
                "mov %r0, -1",
                "add32 %r1, %r2",
                "ldxh %r0, [%r1+2]",
                "ldxsb %r3, [%r10-8]",
                "stw [%r10-4], 7",
                "stxdw [%r10-16], %r1",
                "lock fetch or32 [%r10-4], %r3",
                "jsgt32 %r1, -5, -3",
                "ja32 +70000",
                "ja32 +2",
                "ja -1",
                "call %r2",
                "call local +4",
                "exit",
                "lddw %r3, 0xffffffffffffffff",
                "lddw %r1, map_value 3, 16",
            ]
        );
        assert_eq!(disasm(&p).unwrap().last().unwrap().0, 16);
    }

    #[test]
    fn reports_pc_of_bad_slot() {
        let p = [exit(), Insn::new(0xff, 0, 0, 0, 0)];
        assert_eq!(disasm(&p), Err((1, DecodeError::UnknownOpcode(0xff))));
        assert_eq!(
            disasm(&ld_imm64(0, 1)[..1]),
            Err((0, DecodeError::BadLdImm64))
        );
    }

    #[test]
    fn bare_op_picks_ja_encoding_by_range() {
        assert_eq!(disasm_op(&Op::Ja { off: 5 }), "ja +5");
        assert_eq!(disasm_op(&Op::Ja { off: -40000 }), "ja32 -40000");
        assert_eq!(disasm_op(&Op::MayGoto { off: 0 }), "may_goto +0");
        assert_eq!(disasm_op(&Op::TailCall(Default::default())), "tail_call");
    }
}
