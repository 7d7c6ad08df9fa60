//! Assembler for the conventional BPF assembly text: the dialect of the bpf_conformance suite
//! (`%rN` registers, `[%rN+off]` memory, `lock fetch add32 …`), plus the forms
//! [`super::disasm`] prints for what that suite lacks (its module doc has the table), so that
//! `assemble(disasm(p)) == p`. Linux has no assembler in-tree (its selftests build programs with
//! the `BPF_*` macros of `include/linux/filter.h` or compile them with LLVM).
//!
//! One instruction or label per line; `#` starts a comment. A label is `name:` (optionally
//! followed by an instruction on the same line). Jump targets (`ja`, `ja32`, `jXX`,
//! `may_goto`, `call local`, `lddw %rN, func T`) are a label or a relative distance `+N`/`-N`
//! counted from the next instruction; `exit` as a target means the first `exit` instruction
//! (unless a label is named `exit`). Immediates are decimal or `0x` hex, optionally negative: a
//! 32-bit immediate takes `-2^31 ..= 2^32-1` (wrapping above `i32::MAX`), an `lddw` immediate
//! `-2^63 ..= 2^64-1`. Aliases accepted on input: an `ALU` mnemonic with a `64` suffix
//! (`add64`), `swapNN` for `bswapNN`, and the unsuffixed `load_acquire`/`store_release` for the
//! 64-bit forms. Every assembled instruction is checked with [`decode`].

mod encode;
mod operand;

pub use encode::encode;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use super::disasm::{ALU_NAMES, COND_NAMES, PSEUDO_FUNC, PSEUDO_NAMES, SIZE_NAMES};
use super::{AluOp, AtomicOp, Call, EndKind, Insn, Op, Operand, Size, decode, ja32};
use operand::{Res, Target, imm32, imm64, is_ident, mem, operand, reg, target};

/// Why a text could not be assembled: the 1-based line and what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsmError {
    /// 1-based line number in the input text.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for AsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

/// One instruction of the first pass: the op with its target field still to fill in.
struct Item {
    line: usize,
    pc: usize,
    op: Op,
    target: Option<Target>,
    /// `ja32` rather than `ja`.
    ja32: bool,
}

/// Assembles `text` into instruction slots.
pub fn assemble(text: &str) -> Result<Vec<Insn>, AsmError> {
    let mut labels: BTreeMap<String, usize> = BTreeMap::new();
    let mut items = Vec::new();
    let mut first_exit = None;
    let mut pc = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |msg: String| AsmError { line, msg };
        let mut rest = raw.split('#').next().unwrap_or("").trim();
        while let Some((name, after)) = split_label(rest) {
            if labels.insert(name.to_string(), pc).is_some() {
                return Err(err(format!("label `{name}` defined twice")));
            }
            rest = after;
        }
        if rest.is_empty() {
            continue;
        }
        let (op, target, ja32) = parse_insn(rest).map_err(err)?;
        if op == Op::Exit && first_exit.is_none() {
            first_exit = Some(pc);
        }
        items.push(Item {
            line,
            pc,
            op,
            target,
            ja32,
        });
        pc += op.slots();
    }
    let mut out = Vec::with_capacity(pc);
    for item in items {
        let err = |msg: String| AsmError {
            line: item.line,
            msg,
        };
        let mut op = item.op;
        if let Some(t) = &item.target {
            let dist = match t {
                Target::Rel(n) => *n,
                Target::Label(l) => {
                    let to = match labels.get(l) {
                        Some(&to) => to,
                        None if l == "exit" => {
                            first_exit.ok_or_else(|| err("no exit instruction".into()))?
                        }
                        None => return Err(err(format!("unknown label `{l}`"))),
                    };
                    to as i64 - (item.pc as i64 + 1)
                }
            };
            set_distance(&mut op, dist, item.ja32).map_err(err)?;
        }
        let start = out.len();
        match op {
            Op::Ja { off } if item.ja32 => out.push(ja32(off)),
            _ => encode(&op, &mut out),
        }
        let back =
            decode(&out[start..], 0).map_err(|e| err(format!("invalid instruction: {e}")))?;
        debug_assert_eq!(back, op);
    }
    Ok(out)
}

/// Splits a leading `name:` label off a line.
fn split_label(s: &str) -> Option<(&str, &str)> {
    let (name, rest) = s.split_once(':')?;
    let name = name.trim();
    is_ident(name).then_some((name, rest.trim()))
}

/// Writes a resolved jump distance into the op's target field, checking its range.
fn set_distance(op: &mut Op, dist: i64, ja32: bool) -> Res<()> {
    let range = |bits16: bool| -> Res<()> {
        let ok = if bits16 {
            i16::try_from(dist).is_ok()
        } else {
            i32::try_from(dist).is_ok()
        };
        if ok {
            Ok(())
        } else {
            Err(format!("jump distance {dist} out of range"))
        }
    };
    match op {
        Op::Ja { off } => {
            range(!ja32)?;
            *off = dist as i32;
        }
        Op::Jmp { off, .. } | Op::MayGoto { off } => {
            range(true)?;
            *off = dist as i16;
        }
        Op::Call(Call::Local(imm)) => {
            range(false)?;
            *imm = dist as i32;
        }
        Op::LdImm64 { imm, .. } => {
            range(false)?;
            *imm = (*imm & !0xffff_ffff) | (dist as i32 as u32 as u64);
        }
        _ => return Err("instruction takes no target".into()),
    }
    Ok(())
}

/// Parses one instruction: the op (target fields zero), its unresolved target, and whether a
/// `ja` is `ja32`.
fn parse_insn(s: &str) -> Res<(Op, Option<Target>, bool)> {
    let (m, rest) = match s.split_once(char::is_whitespace) {
        Some((m, r)) => (m, r.trim()),
        None => (s, ""),
    };
    let ops: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(',').map(str::trim).collect()
    };
    let plain = |op: Op| Ok((op, None, false));
    let jump = |op: Op, t: &str, ja32: bool| Ok((op, Some(target(t)?), ja32));
    match m {
        "exit" => {
            arity(&ops, 0)?;
            plain(Op::Exit)
        }
        "tail_call" => plain(Op::TailCall(parse_tail_call(&ops)?)),
        "ja" | "ja32" => {
            arity(&ops, 1)?;
            jump(Op::Ja { off: 0 }, ops[0], m == "ja32")
        }
        "may_goto" => {
            arity(&ops, 1)?;
            jump(Op::MayGoto { off: 0 }, ops[0], false)
        }
        "call" => parse_call(rest),
        "lock" => plain(parse_lock(rest)?),
        "lddw" => parse_lddw(&ops),
        _ => {
            if let Some(op) = parse_mem_op(m, &ops)? {
                return plain(op);
            }
            if let Some(op) = parse_alu(m, &ops)? {
                return plain(op);
            }
            if let Some((op, t)) = parse_jmp(m, &ops)? {
                return jump(op, t, false);
            }
            Err(format!("unknown mnemonic `{m}`"))
        }
    }
}

/// `tail_call [verified][, map N][, key K]`: the verifier's facts of the site.
fn parse_tail_call(ops: &[&str]) -> Res<crate::insn::TailCallAux> {
    let mut aux = crate::insn::TailCallAux::default();
    for o in ops {
        match o.split_once(char::is_whitespace) {
            None if *o == "verified" => aux.verified = true,
            Some(("map", v)) => {
                let m = imm32(v.trim())?;
                aux.map = Some(
                    u16::try_from(m)
                        .ok()
                        .filter(|&m| m <= i16::MAX as u16)
                        .ok_or_else(|| format!("tail_call: map {v} out of range"))?,
                );
            }
            Some(("key", v)) => aux.key = Some(imm32(v.trim())? as u32),
            _ => return Err(format!("tail_call: unknown operand `{o}`")),
        }
    }
    Ok(aux)
}

fn arity(ops: &[&str], n: usize) -> Res<()> {
    if ops.len() == n {
        Ok(())
    } else {
        Err(format!("expected {n} operand(s), found {}", ops.len()))
    }
}

/// `call N`, `call %rN`, `call local T`, `call kfunc N`.
fn parse_call(rest: &str) -> Res<(Op, Option<Target>, bool)> {
    let (kind, arg) = match rest.split_once(char::is_whitespace) {
        Some((k @ ("local" | "kfunc"), a)) => (k, a.trim()),
        _ => ("", rest),
    };
    let op = match kind {
        "local" => return Ok((Op::Call(Call::Local(0)), Some(target(arg)?), false)),
        "kfunc" => Call::Kfunc(imm32(arg)?),
        _ if arg.starts_with('%') => Call::Reg(reg(arg)?),
        _ => Call::Helper(imm32(arg)?),
    };
    Ok((Op::Call(op), None, false))
}

/// `lock [fetch] add|or|and|xor|xchg|cmpxchg[32] [%rD+off], %rS`.
fn parse_lock(rest: &str) -> Res<Op> {
    let (fetch, rest) = match rest.strip_prefix("fetch") {
        Some(r) if r.starts_with(char::is_whitespace) => (true, r.trim_start()),
        _ => (false, rest),
    };
    let (name, rest) = rest
        .split_once(char::is_whitespace)
        .ok_or("lock needs an operation and operands")?;
    let (base, size) = match name.strip_suffix("32") {
        Some(b) => (b, Size::W),
        None => (name, Size::DW),
    };
    let op = match (base, fetch) {
        ("add", f) => AtomicOp::Add { fetch: f },
        ("or", f) => AtomicOp::Or { fetch: f },
        ("and", f) => AtomicOp::And { fetch: f },
        ("xor", f) => AtomicOp::Xor { fetch: f },
        ("xchg", false) => AtomicOp::Xchg,
        ("cmpxchg", false) => AtomicOp::Cmpxchg,
        _ => return Err(format!("unknown atomic operation `{name}`")),
    };
    let ops: Vec<&str> = rest.split(',').map(str::trim).collect();
    arity(&ops, 2)?;
    let (dst, off) = mem(ops[0])?;
    Ok(Op::Atomic {
        size,
        op,
        dst,
        src: reg(ops[1])?,
        off,
    })
}

/// `lddw %rD, IMM64` or `lddw %rD, KIND LO[, HI]`.
fn parse_lddw(ops: &[&str]) -> Res<(Op, Option<Target>, bool)> {
    if ops.len() != 2 && ops.len() != 3 {
        return Err(format!("expected 2 or 3 operands, found {}", ops.len()));
    }
    let dst = reg(ops[0])?;
    let kind = ops[1].split_once(char::is_whitespace).and_then(|(k, v)| {
        let p = PSEUDO_NAMES.iter().find(|(_, n)| *n == k)?.0;
        Some((p, v.trim()))
    });
    let Some((pseudo, lo)) = kind else {
        arity(ops, 2)?;
        let imm = imm64(ops[1])?;
        return Ok((
            Op::LdImm64 {
                dst,
                pseudo: 0,
                imm,
            },
            None,
            false,
        ));
    };
    let hi = match ops.get(2) {
        Some(h) => imm32(h)? as u32 as u64,
        None => 0,
    };
    let mut op = Op::LdImm64 {
        dst,
        pseudo,
        imm: hi << 32,
    };
    if pseudo == PSEUDO_FUNC && !lo.starts_with(|c: char| c.is_ascii_digit()) {
        return Ok((op, Some(target(lo)?), false));
    }
    if let Op::LdImm64 { imm, .. } = &mut op {
        *imm |= imm32(lo)? as u32 as u64;
    }
    Ok((op, None, false))
}

fn size_of(name: &str) -> Option<Size> {
    SIZE_NAMES.iter().find(|(_, n)| *n == name).map(|(s, _)| *s)
}

fn bits_size(bits: &str) -> Option<Size> {
    Some(match bits {
        "8" => Size::B,
        "16" => Size::H,
        "32" => Size::W,
        "64" | "" => Size::DW,
        _ => return None,
    })
}

/// Loads, stores, load-acquire/store-release and legacy packet loads; `None` if `m` is none.
fn parse_mem_op(m: &str, ops: &[&str]) -> Res<Option<Op>> {
    let op = if let Some(sz) = m.strip_prefix("ldxs").and_then(size_of) {
        arity(ops, 2)?;
        let (src, off) = mem(ops[1])?;
        Op::Ldx {
            size: sz,
            sign: true,
            dst: reg(ops[0])?,
            src,
            off,
        }
    } else if let Some(sz) = m.strip_prefix("ldx").and_then(size_of) {
        arity(ops, 2)?;
        let (src, off) = mem(ops[1])?;
        Op::Ldx {
            size: sz,
            sign: false,
            dst: reg(ops[0])?,
            src,
            off,
        }
    } else if let Some(sz) = m.strip_prefix("stx").and_then(size_of) {
        arity(ops, 2)?;
        let (dst, off) = mem(ops[0])?;
        Op::Stx {
            size: sz,
            dst,
            src: reg(ops[1])?,
            off,
        }
    } else if let Some(sz) = m.strip_prefix("st").and_then(size_of) {
        arity(ops, 2)?;
        let (dst, off) = mem(ops[0])?;
        Op::St {
            size: sz,
            dst,
            off,
            imm: imm32(ops[1])?,
        }
    } else if let Some(sz) = m.strip_prefix("load_acquire").and_then(bits_size) {
        arity(ops, 2)?;
        let (src, off) = mem(ops[1])?;
        Op::Atomic {
            size: sz,
            op: AtomicOp::LoadAcquire,
            dst: reg(ops[0])?,
            src,
            off,
        }
    } else if let Some(sz) = m.strip_prefix("store_release").and_then(bits_size) {
        arity(ops, 2)?;
        let (dst, off) = mem(ops[0])?;
        Op::Atomic {
            size: sz,
            op: AtomicOp::StoreRelease,
            dst,
            src: reg(ops[1])?,
            off,
        }
    } else if let Some(sz) = m.strip_prefix("ldabs").and_then(size_of) {
        arity(ops, 1)?;
        Op::LdPacket {
            size: sz,
            indirect: false,
            src: 0,
            imm: imm32(ops[0])?,
        }
    } else if let Some(sz) = m.strip_prefix("ldind").and_then(size_of) {
        arity(ops, 2)?;
        Op::LdPacket {
            size: sz,
            indirect: true,
            src: reg(ops[0])?,
            imm: imm32(ops[1])?,
        }
    } else {
        return Ok(None);
    };
    Ok(Some(op))
}

/// ALU, sign-extending moves and byte-order operations; `None` if `m` is none.
fn parse_alu(m: &str, ops: &[&str]) -> Res<Option<Op>> {
    for (kind, prefix) in [
        (EndKind::ToLe, "le"),
        (EndKind::ToBe, "be"),
        (EndKind::Swap, "bswap"),
        (EndKind::Swap, "swap"),
    ] {
        if let Some(bits @ ("16" | "32" | "64")) = m.strip_prefix(prefix) {
            arity(ops, 1)?;
            let bits = bits.parse().map_err(|_| "bad width")?;
            return Ok(Some(Op::End {
                kind,
                bits,
                dst: reg(ops[0])?,
            }));
        }
    }
    if let Some(spec) = m.strip_prefix("movsx") {
        let (from, wide) = match spec {
            "832" => (8, false),
            "1632" => (16, false),
            "3232" => (32, false),
            "864" => (8, true),
            "1664" => (16, true),
            "3264" => (32, true),
            _ => return Err(format!("unknown mnemonic `{m}`")),
        };
        arity(ops, 2)?;
        return Ok(Some(Op::Alu {
            wide,
            op: AluOp::MovSx(from),
            dst: reg(ops[0])?,
            src: operand(ops[1])?,
        }));
    }
    let (base, wide) = if let Some(b) = m.strip_suffix("32") {
        (b, false)
    } else {
        (m.strip_suffix("64").unwrap_or(m), true)
    };
    let Some(&(op, _)) = ALU_NAMES.iter().find(|(_, n)| *n == base) else {
        return Ok(None);
    };
    let dst = reg(ops.first().copied().unwrap_or(""))?;
    let src = if op == AluOp::Neg {
        arity(ops, 1)?;
        Operand::Imm(0)
    } else {
        arity(ops, 2)?;
        operand(ops[1])?
    };
    Ok(Some(Op::Alu { wide, op, dst, src }))
}

/// Conditional jumps; `None` if `m` is none. Returns the op and its target text.
fn parse_jmp<'a>(m: &str, ops: &[&'a str]) -> Res<Option<(Op, &'a str)>> {
    let (base, wide) = match m.strip_suffix("32") {
        Some(b) => (b, false),
        None => (m, true),
    };
    let Some(&(cond, _)) = COND_NAMES.iter().find(|(_, n)| *n == base) else {
        return Ok(None);
    };
    arity(ops, 3)?;
    let op = Op::Jmp {
        wide,
        cond,
        dst: reg(ops[0])?,
        src: operand(ops[1])?,
        off: 0,
    };
    Ok(Some((op, ops[2])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::*;
    use crate::uapi::{alu, jmp};

    #[test]
    fn labels_exit_target_and_local_calls() {
        let p = assemble(
            "  mov %r0, 0x1   # comment\n\
             jgt %r1, 2, L3\n\
             L1: ja exit\n\
             call local f\n\
             L3:\n\
             jne32 %r1, %r2, -2\n\
             exit\n\
             f:\n\
             lddw %r0, 0xffffffffffffffff\n\
             exit",
        )
        .unwrap();
        assert_eq!(
            p,
            [
                mov64_imm(0, 1),
                jmp_imm(jmp::JGT, 1, 2, 2),
                ja(2),
                call_local(2),
                jmp32_reg(jmp::JNE, 1, 2, -2),
                exit(),
                ld_imm64(0, u64::MAX)[0],
                ld_imm64(0, u64::MAX)[1],
                exit(),
            ]
        );
    }

    #[test]
    fn immediates_and_memory() {
        let p = assemble(
            "mov32 %r1, 0x80000000\nadd %r1, -2147483648\nstb [%r10-1], 0xff\n\
             ldxw %r0, [%r1]\nlddw %r2, -1\nlddw %r3, map_value 3, 16\nlddw %r4, func +1",
        )
        .unwrap();
        assert_eq!(p[0], mov32_imm(1, i32::MIN));
        assert_eq!(p[1], alu64_imm(alu::ADD, 1, i32::MIN));
        assert_eq!(p[2], st_mem(Size::B, 10, -1, 255));
        assert_eq!(p[3], ldx_mem(Size::W, 0, 1, 0));
        assert_eq!(&p[4..6], &ld_imm64(2, u64::MAX));
        assert_eq!(&p[6..8], &ld_imm64_raw(3, 2, (16 << 32) | 3));
        assert_eq!(&p[8..10], &ld_imm64_raw(4, 4, 1));
    }

    #[test]
    fn errors_carry_line_numbers() {
        let e = |t: &str| assemble(t).unwrap_err();
        assert_eq!(e("exit\nmov %r11, 1").line, 2);
        assert_eq!(e("exit\n\nfoo %r1").line, 3);
        assert_eq!(e("ja nowhere").msg, "unknown label `nowhere`");
        assert_eq!(e("mov %r1, 0x100000000").line, 1);
        assert_eq!(e("ja +40000").line, 1);
        assert!(e("ja exit").msg.contains("no exit"));
        assert!(e("lock add [%r1+0], %r2\nlock fetch xchg [%r1], %r2").line == 2);
        // Assembles, but is no instruction: caught by decode.
        assert!(
            e("movsx3232 %r1, %r2")
                .msg
                .starts_with("invalid instruction")
        );
        assert!(e("x:\nx:\nexit").msg.contains("twice"));
        assert_eq!(e("ldxw %r0, [%r1+32768]").line, 1);
        assert_eq!(
            e("exit\nmov %r0").to_string(),
            "line 2: expected 2 operand(s), found 1"
        );
    }
}
