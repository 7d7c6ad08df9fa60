//! Which instructions carry a relative target, and in which field.
//!
//! The classification of `bpf_adj_branches()` (`kernel/bpf/core.c`): `JMP`/`JMP32` class
//! except `exit`; calls only when `src_reg == BPF_PSEUDO_CALL` (in `imm`); `JMP32|JA` keeps its
//! distance in `imm`; `ld_imm64` with `BPF_PSEUDO_FUNC` holds a function offset in `imm`. The
//! kernel also walks the internal tail-call opcode, whose `off` is 0 and which no adjustment can
//! ever change; it is left out here so that the list never gives it a target.

use crate::insn::{Insn, TAIL_CALL_CODE};
use crate::uapi::{class, jmp, mode, pseudo, size};
use crate::{Errno, Result};

/// The field a relative target lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    /// The 16-bit `off`.
    Off,
    /// The 32-bit `imm`.
    Imm,
}

/// The field holding `insn`'s relative target, if it has one.
#[inline]
pub(crate) fn field(insn: &Insn) -> Option<Field> {
    match insn.class() {
        class::JMP | class::JMP32 => {
            let op = insn.code & 0xf0;
            if op == jmp::EXIT || insn.code == TAIL_CALL_CODE {
                None
            } else if op == jmp::CALL {
                (insn.src() == pseudo::CALL).then_some(Field::Imm)
            } else if insn.code == class::JMP32 | jmp::JA {
                Some(Field::Imm)
            } else {
                Some(Field::Off)
            }
        }
        class::LD if insn.code == class::LD | mode::IMM | size::DW => {
            (insn.src() == pseudo::FUNC).then_some(Field::Imm)
        }
        _ => None,
    }
}

/// The relative distance stored in `insn`'s target field.
#[inline]
pub(crate) fn distance(insn: &Insn, f: Field) -> i64 {
    match f {
        Field::Off => insn.off as i64,
        Field::Imm => insn.imm as i64,
    }
}

/// Stores `dist` into `insn`'s target field, or `ERANGE` if it does not fit.
#[inline]
pub(crate) fn set_distance(insn: &mut Insn, f: Field, dist: i64) -> Result<()> {
    match f {
        Field::Off => insn.off = i16::try_from(dist).map_err(|_| Errno::ERANGE)?,
        Field::Imm => insn.imm = i32::try_from(dist).map_err(|_| Errno::ERANGE)?,
    }
    Ok(())
}

/// Whether `insn` is the second slot of an `ld_imm64` (code 0 is no valid opcode otherwise).
#[inline]
pub(crate) fn is_ld_imm64_tail(insn: &Insn) -> bool {
    insn.code == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::*;
    use crate::uapi::jmp;

    #[test]
    fn classifies_like_adj_branches() {
        assert_eq!(field(&ja(3)), Some(Field::Off));
        assert_eq!(field(&ja32(3)), Some(Field::Imm));
        assert_eq!(field(&jmp32_imm(jmp::JLT, 1, 2, 3)), Some(Field::Off));
        assert_eq!(field(&call_local(4)), Some(Field::Imm));
        assert_eq!(field(&call_helper(4)), None);
        assert_eq!(field(&callx(2)), None);
        assert_eq!(field(&exit()), None);
        assert_eq!(field(&Insn::new(TAIL_CALL_CODE, 0, 0, 0, 0)), None);
        assert_eq!(
            field(&ld_imm64_raw(1, pseudo::FUNC, 5)[0]),
            Some(Field::Imm)
        );
        assert_eq!(field(&ld_imm64(1, 5)[0]), None);
        assert_eq!(field(&mov64_imm(1, 5)), None);
        let mut j = ja(0);
        assert_eq!(set_distance(&mut j, Field::Off, 40_000), Err(Errno::ERANGE));
        assert_eq!(j, ja(0));
        set_distance(&mut j, Field::Off, -7).unwrap();
        assert_eq!(distance(&j, Field::Off), -7);
    }
}
