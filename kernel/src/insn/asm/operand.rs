//! Operand parsers of the assembler: registers, immediates, memory operands, jump targets.

use alloc::format;
use alloc::string::{String, ToString};

use super::super::Operand;

/// A parse result whose error is the message for the current line.
pub(super) type Res<T> = core::result::Result<T, String>;

/// A jump destination before labels are known.
pub(super) enum Target {
    /// `+N`/`-N`: a distance from the next instruction.
    Rel(i64),
    /// A label (or `exit`).
    Label(String),
}

/// A label name: a letter, `_` or `.`, then letters, digits, `_` or `.`.
pub(super) fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '.')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// A jump target: `+N`, `-N` or a label.
pub(super) fn target(s: &str) -> Res<Target> {
    if s.starts_with(['+', '-']) {
        let v = int(s)?;
        let v = i64::try_from(v).map_err(|_| format!("jump distance `{s}` out of range"))?;
        Ok(Target::Rel(v))
    } else if is_ident(s) {
        Ok(Target::Label(s.to_string()))
    } else {
        Err(format!("bad jump target `{s}`"))
    }
}

/// `%rN` (the `%` may be left out), N in 0..=10.
pub(super) fn reg(s: &str) -> Res<u8> {
    let n = s.strip_prefix('%').unwrap_or(s);
    n.strip_prefix('r')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u8>().ok())
        .filter(|&r| r <= 10)
        .ok_or_else(|| format!("invalid register `{s}`"))
}

/// A register or a 32-bit immediate.
pub(super) fn operand(s: &str) -> Res<Operand> {
    if s.starts_with('%') {
        Ok(Operand::Reg(reg(s)?))
    } else {
        Ok(Operand::Imm(imm32(s)?))
    }
}

/// `[%rN]`, `[%rN+off]` or `[%rN-off]`.
pub(super) fn mem(s: &str) -> Res<(u8, i16)> {
    let inner = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| format!("bad memory operand `{s}`"))?
        .trim();
    let (r, off) = match inner.find(['+', '-']) {
        Some(i) => (&inner[..i], int(inner[i..].trim())?),
        None => (inner, 0),
    };
    let off = i16::try_from(off).map_err(|_| format!("offset in `{s}` out of range"))?;
    Ok((reg(r.trim())?, off))
}

/// An integer: optional sign, then decimal or `0x` hex, up to 64 bits of magnitude.
pub(super) fn int(s: &str) -> Res<i128> {
    let bad = || format!("bad number `{s}`");
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, s[1..].trim_start()),
        Some(b'+') => (false, s[1..].trim_start()),
        _ => (false, s),
    };
    let mag = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => body.parse::<u64>(),
    }
    .map_err(|_| bad())?;
    if body.starts_with('+') {
        return Err(bad());
    }
    Ok(if neg { -(mag as i128) } else { mag as i128 })
}

/// A 32-bit immediate: `-2^31 ..= 2^32-1`, the upper half wrapping to negative.
pub(super) fn imm32(s: &str) -> Res<i32> {
    let v = int(s)?;
    if (i32::MIN as i128..=u32::MAX as i128).contains(&v) {
        Ok(v as u32 as i32)
    } else {
        Err(format!("immediate `{s}` out of 32-bit range"))
    }
}

/// A 64-bit immediate: `-2^63 ..= 2^64-1`.
pub(super) fn imm64(s: &str) -> Res<u64> {
    let v = int(s)?;
    if (i64::MIN as i128..=u64::MAX as i128).contains(&v) {
        Ok(v as u64)
    } else {
        Err(format!("immediate `{s}` out of 64-bit range"))
    }
}
