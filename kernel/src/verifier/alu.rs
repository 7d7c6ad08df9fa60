//! Scalar ALU transfer functions, 64- and 32-bit.
//!
//! Mirrors `adjust_scalar_min_max_vals` and the `scalar_min_max_*`/`scalar32_min_max_*`
//! helpers of `kernel/bpf/verifier.c`. A 32-bit operation is computed on the operands' low
//! halves (zero- or sign-extended as the operation reads them) and its result truncated and
//! zero-extended, as the ISA does. Division and modulo follow RFC 9669 (x / 0 = 0, x % 0 = x),
//! so a divisor that may be zero is fine. Shift amounts are masked to the width at run time;
//! the verifier gives an unknown result when the amount may reach the width.

use super::bounds::Scalar;
use super::tnum::Tnum;
use crate::insn::{AluOp, EndKind};

fn from_tnum(var: Tnum) -> Scalar {
    let mut s = Scalar::UNKNOWN;
    s.var = var;
    s.sync();
    s
}

/// Whether the operation's result range can be computed (`is_safe_to_compute_dst_reg_range`):
/// the arithmetic and bitwise operations always; a shift only by a known amount below the
/// width (the 64-bit maximum is what is compared, also for a 32-bit shift); division and
/// modulo never — their result is an unknown scalar, all 64 bits, also for the 32-bit forms.
fn computable(op: AluOp, wide: bool, b: &Scalar) -> bool {
    let known = if wide {
        b.var.is_const() && b.smin == b.smax && b.umin == b.umax
    } else {
        b.var.subreg().is_const() && b.s32min == b.s32max && b.u32min == b.u32max
    };
    let bits = if wide { 64 } else { 32 };
    match op {
        AluOp::Add | AluOp::Sub | AluOp::Neg | AluOp::And | AluOp::Or | AluOp::Xor => true,
        AluOp::Mul => true,
        AluOp::Lsh | AluOp::Rsh | AluOp::Arsh => known && b.umax < bits,
        _ => false,
    }
}

/// `r += b` on the 64-bit ranges: the signed range is lost when an end may overflow; the
/// unsigned one when the low end does not wrap and the high end does (both wrapping keeps
/// the order).
fn add64(r: &mut Scalar, b: &Scalar) {
    match (r.smin.checked_add(b.smin), r.smax.checked_add(b.smax)) {
        (Some(lo), Some(hi)) => (r.smin, r.smax) = (lo, hi),
        _ => (r.smin, r.smax) = (i64::MIN, i64::MAX),
    }
    let (lo, wrap_lo) = r.umin.overflowing_add(b.umin);
    let (hi, wrap_hi) = r.umax.overflowing_add(b.umax);
    (r.umin, r.umax) = if !wrap_lo && wrap_hi {
        (0, u64::MAX)
    } else {
        (lo, hi)
    };
}

/// `r += b` on the 32-bit ranges, as [`add64`].
fn add32(r: &mut Scalar, b: &Scalar) {
    match (
        r.s32min.checked_add(b.s32min),
        r.s32max.checked_add(b.s32max),
    ) {
        (Some(lo), Some(hi)) => (r.s32min, r.s32max) = (lo, hi),
        _ => (r.s32min, r.s32max) = (i32::MIN, i32::MAX),
    }
    let (lo, wrap_lo) = r.u32min.overflowing_add(b.u32min);
    let (hi, wrap_hi) = r.u32max.overflowing_add(b.u32max);
    (r.u32min, r.u32max) = if !wrap_lo && wrap_hi {
        (0, u32::MAX)
    } else {
        (lo, hi)
    };
}

/// `r -= b` on the 64-bit ranges: the unsigned range is lost when the low end wraps and the
/// high end does not.
fn sub64(r: &mut Scalar, b: &Scalar) {
    match (r.smin.checked_sub(b.smax), r.smax.checked_sub(b.smin)) {
        (Some(lo), Some(hi)) => (r.smin, r.smax) = (lo, hi),
        _ => (r.smin, r.smax) = (i64::MIN, i64::MAX),
    }
    let (lo, wrap_lo) = r.umin.overflowing_sub(b.umax);
    let (hi, wrap_hi) = r.umax.overflowing_sub(b.umin);
    (r.umin, r.umax) = if wrap_lo && !wrap_hi {
        (0, u64::MAX)
    } else {
        (lo, hi)
    };
}

/// `r -= b` on the 32-bit ranges, as [`sub64`].
fn sub32(r: &mut Scalar, b: &Scalar) {
    match (
        r.s32min.checked_sub(b.s32max),
        r.s32max.checked_sub(b.s32min),
    ) {
        (Some(lo), Some(hi)) => (r.s32min, r.s32max) = (lo, hi),
        _ => (r.s32min, r.s32max) = (i32::MIN, i32::MAX),
    }
    let (lo, wrap_lo) = r.u32min.overflowing_sub(b.u32max);
    let (hi, wrap_hi) = r.u32max.overflowing_sub(b.u32min);
    (r.u32min, r.u32max) = if wrap_lo && !wrap_hi {
        (0, u32::MAX)
    } else {
        (lo, hi)
    };
}

/// The least and greatest of the four corner products, or `None` if one overflows.
fn corners<T: Copy + Ord>(a: (T, T), b: (T, T), mul: impl Fn(T, T) -> Option<T>) -> Option<(T, T)> {
    let p = [
        mul(a.0, b.0)?,
        mul(a.0, b.1)?,
        mul(a.1, b.0)?,
        mul(a.1, b.1)?,
    ];
    Some((*p.iter().min()?, *p.iter().max()?))
}

/// `r *= b` on the 64-bit ranges: unsigned from the ends unless one product overflows; signed
/// from the four corner products unless one overflows.
fn mul64(r: &mut Scalar, b: &Scalar) {
    (r.umin, r.umax) = match (r.umin.checked_mul(b.umin), r.umax.checked_mul(b.umax)) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => (0, u64::MAX),
    };
    (r.smin, r.smax) = corners((r.smin, r.smax), (b.smin, b.smax), i64::checked_mul)
        .unwrap_or((i64::MIN, i64::MAX));
}

/// `r *= b` on the 32-bit ranges, as [`mul64`].
fn mul32(r: &mut Scalar, b: &Scalar) {
    (r.u32min, r.u32max) = match (
        r.u32min.checked_mul(b.u32min),
        r.u32max.checked_mul(b.u32max),
    ) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => (0, u32::MAX),
    };
    (r.s32min, r.s32max) = corners((r.s32min, r.s32max), (b.s32min, b.s32max), i32::checked_mul)
        .unwrap_or((i32::MIN, i32::MAX));
}

/// The bitwise operations on the ranges, `r.var` already the result's tnum: the unsigned range
/// from the tnum and the operands (`and` no larger than either, `or` no smaller), the signed
/// one from it when it does not cross the sign; a known result when both operands are known.
fn bitwise64(r: &mut Scalar, a: &Scalar, b: &Scalar, op: AluOp) {
    if a.var.is_const() && b.var.is_const() {
        *r = Scalar::konst(r.var.value);
        return;
    }
    let (v, m) = (r.var.value, r.var.mask);
    (r.umin, r.umax) = match op {
        AluOp::And => (v, a.umax.min(b.umax)),
        AluOp::Or => (a.umin.max(b.umin), v | m),
        _ => (v, v | m),
    };
    (r.smin, r.smax) = if (r.umin as i64) <= (r.umax as i64) {
        (r.umin as i64, r.umax as i64)
    } else {
        (i64::MIN, i64::MAX)
    };
}

/// [`bitwise64`] on the 32-bit ranges.
fn bitwise32(r: &mut Scalar, a: &Scalar, b: &Scalar, op: AluOp) {
    let t = r.var.subreg();
    if a.var.subreg().is_const() && b.var.subreg().is_const() {
        let k = t.value as u32;
        (r.u32min, r.u32max, r.s32min, r.s32max) = (k, k, k as i32, k as i32);
        return;
    }
    let (v, m) = (t.value as u32, t.mask as u32);
    (r.u32min, r.u32max) = match op {
        AluOp::And => (v, a.u32max.min(b.u32max)),
        AluOp::Or => (a.u32min.max(b.u32min), v | m),
        _ => (v, v | m),
    };
    (r.s32min, r.s32max) = if (r.u32min as i32) <= (r.u32max as i32) {
        (r.u32min as i32, r.u32max as i32)
    } else {
        (i32::MIN, i32::MAX)
    };
}

/// The 32-bit ranges after a left shift by `s` (the 64-bit amount for a 64-bit shift): the
/// sign is lost; the unsigned range kept unless the top bit may be shifted out.
fn lsh32_ranges(r: &mut Scalar, a: &Scalar, s: u64) {
    (r.s32min, r.s32max) = (i32::MIN, i32::MAX);
    (r.u32min, r.u32max) = if s > 31 || a.u32max as u64 > 1u64 << (31 - s) {
        (0, u32::MAX)
    } else {
        (a.u32min << s, a.u32max << s)
    };
}

/// A shift by the known amount `s` (below the width).
fn shift(r: &mut Scalar, a: &Scalar, s: u64, op: AluOp, wide: bool) {
    const U32: (u32, u32, i32, i32) = (0, u32::MAX, i32::MIN, i32::MAX);
    let sh = s as u32;
    match (op, wide) {
        (AluOp::Lsh, true) => {
            r.smax = match a.s32max {
                m if s == 32 && m >= 0 => (m as i64) << 32,
                _ => i64::MAX,
            };
            r.smin = match a.s32min {
                m if s == 32 && m >= 0 => (m as i64) << 32,
                _ => i64::MIN,
            };
            (r.umin, r.umax) = if a.umax > 1u64 << (63 - s) {
                (0, u64::MAX)
            } else {
                (a.umin << s, a.umax << s)
            };
            lsh32_ranges(r, a, s);
            r.var = a.var.lsh(sh);
        }
        (AluOp::Lsh, false) => {
            lsh32_ranges(r, a, s);
            r.var = a.var.subreg().lsh(sh).subreg();
        }
        (AluOp::Rsh, true) => {
            (r.smin, r.smax) = (i64::MIN, i64::MAX);
            (r.umin, r.umax) = (a.umin >> s, a.umax >> s);
            (r.u32min, r.u32max, r.s32min, r.s32max) = U32;
            r.var = a.var.rsh(sh);
        }
        (AluOp::Rsh, false) => {
            (r.s32min, r.s32max) = (i32::MIN, i32::MAX);
            (r.u32min, r.u32max) = (a.u32min >> s, a.u32max >> s);
            r.var = a.var.subreg().rsh(sh);
        }
        (_, true) => {
            (r.smin, r.smax) = (a.smin >> s, a.smax >> s);
            (r.umin, r.umax) = (0, u64::MAX);
            (r.u32min, r.u32max, r.s32min, r.s32max) = U32;
            r.var = a.var.arsh(sh, 64);
        }
        (_, false) => {
            (r.s32min, r.s32max) = (a.s32min >> s, a.s32max >> s);
            (r.u32min, r.u32max) = (0, u32::MAX);
            r.var = a.var.subreg().arsh(sh, 32);
        }
    }
}

/// A sign-extending move of the low `from_bits` of `b`: a constant stays one; a value whose
/// signed range already fits the narrower type is unchanged; otherwise the tnum is
/// sign-extended and the range is the narrower type's.
fn movsx(b: &Scalar, from_bits: u32) -> Scalar {
    if let Some(x) = b.as_const() {
        let shift = 64 - from_bits;
        return Scalar::konst((((x << shift) as i64) >> shift) as u64);
    }
    let half = 1i64 << (from_bits - 1);
    if b.umax < half as u64 || (b.smin >= -half && b.smax < half) {
        return *b;
    }
    let mut r = from_tnum(b.var.sext(from_bits));
    r.smin = r.smin.max(-half);
    r.smax = r.smax.min(half - 1);
    // The low 32 bits' signed range within the narrower type: those bits sign-extended are
    // the value of that range.
    if b.s32min as i64 >= -half && (b.s32max as i64) < half {
        r.smin = r.smin.max(b.s32min as i64);
        r.smax = r.smax.min(b.s32max as i64);
    }
    r.sync();
    r
}

/// `dst op src` on scalars (`adjust_scalar_min_max_vals`): 64-bit, or on the low halves with
/// the result zero-extended.
fn scalar_alu(op: AluOp, wide: bool, a: &Scalar, b: &Scalar) -> Scalar {
    match op {
        AluOp::Mov if wide => return *b,
        AluOp::Mov => return b.zext32(),
        AluOp::MovSx(bits) if wide => return movsx(b, bits as u32),
        AluOp::MovSx(bits) => return movsx(&b.zext32(), bits as u32).zext32(),
        _ => {}
    }
    if !computable(op, wide, b) {
        return Scalar::UNKNOWN;
    }
    let mut r = *a;
    match op {
        AluOp::Add => {
            add32(&mut r, b);
            add64(&mut r, b);
            r.var = a.var.add(b.var);
        }
        AluOp::Sub => {
            sub32(&mut r, b);
            sub64(&mut r, b);
            r.var = a.var.sub(b.var);
        }
        AluOp::Neg => {
            r = Scalar::konst(0);
            sub32(&mut r, a);
            sub64(&mut r, a);
            r.var = Tnum::konst(0).sub(a.var);
        }
        AluOp::Mul => {
            r.var = a.var.mul(b.var);
            mul32(&mut r, b);
            mul64(&mut r, b);
        }
        AluOp::And | AluOp::Or | AluOp::Xor => {
            r.var = match op {
                AluOp::And => a.var.and(b.var),
                AluOp::Or => a.var.or(b.var),
                _ => a.var.xor(b.var),
            };
            bitwise32(&mut r, a, b, op);
            bitwise64(&mut r, a, b, op);
        }
        _ => shift(&mut r, a, b.umin, op, wide),
    }
    if !wide {
        return r.zext32();
    }
    r.sync();
    r
}

/// `dst op src` on 64-bit scalars.
pub fn alu64(op: AluOp, a: &Scalar, b: &Scalar) -> Scalar {
    scalar_alu(op, true, a, b)
}

/// `dst op src` on the low 32 bits; the result is zero-extended.
pub fn alu32(op: AluOp, a: &Scalar, b: &Scalar) -> Scalar {
    scalar_alu(op, false, a, b)
}

/// Byte order operations on the low `bits` of `a`.
pub fn end(kind: EndKind, bits: u8, a: &Scalar) -> Scalar {
    let bits = bits as u32;
    match kind {
        EndKind::ToLe if bits == 64 => *a,
        // A truncation: the 32-bit ranges survive a 32-bit one; a narrower one keeps the
        // range when the truncated bits are the same in all members.
        EndKind::ToLe if bits == 32 => a.zext32(),
        EndKind::ToLe => {
            let mut r = from_tnum(a.var.cast(bits / 8));
            let m = (1u64 << bits) - 1;
            if a.umin & !m == a.umax & !m {
                r.umin = r.umin.max(a.umin & m);
                r.umax = r.umax.min(a.umax & m);
                r.sync();
            }
            r
        }
        EndKind::ToBe | EndKind::Swap => from_tnum(a.var.bswap(bits)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const VALS: [u64; 14] = [
        0,
        1,
        2,
        3,
        7,
        31,
        32,
        63,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        1 << 40,
        i64::MAX as u64,
        u64::MAX,
    ];

    fn abstract_of(xs: &[u64]) -> Scalar {
        xs.iter()
            .skip(1)
            .fold(Scalar::konst(xs[0]), |s, &x| s.join(&Scalar::konst(x)))
    }

    #[test]
    fn alu_is_sound_on_sets() {
        let ops = [
            AluOp::Add,
            AluOp::Sub,
            AluOp::Mul,
            AluOp::And,
            AluOp::Or,
            AluOp::Xor,
            AluOp::Lsh,
            AluOp::Rsh,
            AluOp::Arsh,
            AluOp::Div,
            AluOp::Mod,
            AluOp::Neg,
        ];
        let sets: Vec<Vec<u64>> = (0..VALS.len())
            .flat_map(|i| {
                [
                    alloc::vec![VALS[i]],
                    alloc::vec![VALS[i], VALS[(i + 3) % VALS.len()]],
                    alloc::vec![VALS[i], VALS[(i + 1) % VALS.len()], 5],
                ]
            })
            .collect();
        for op in ops {
            for wide in [true, false] {
                for xs in &sets {
                    for ys in &sets {
                        let (a, b) = (abstract_of(xs), abstract_of(ys));
                        let r = if wide {
                            alu64(op, &a, &b)
                        } else {
                            alu32(op, &a, &b)
                        };
                        for &x in xs {
                            for &y in ys {
                                let c = crate::insn::eval::alu(wide, op, x, y);
                                assert!(
                                    r.contains(c),
                                    "{op:?} wide={wide} {xs:x?} {ys:x?}: {c:#x} not in {r:?}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn movsx_and_end() {
        let r = alu64(AluOp::MovSx(8), &Scalar::UNKNOWN, &Scalar::konst(0x80));
        assert_eq!(r.as_const(), Some(-128i64 as u64));
        let u = alu64(
            AluOp::MovSx(16),
            &Scalar::UNKNOWN,
            &Scalar::urange(0, 0xffff),
        );
        assert!(u.contains(-1i64 as u64) && u.contains(0x7fff) && !u.contains(0x8000));
        let e = end(EndKind::ToBe, 16, &Scalar::konst(0x1234));
        assert_eq!(e.as_const(), Some(0x3412));
        let l = end(EndKind::ToLe, 32, &Scalar::konst(0x1_2345_6789));
        assert_eq!(l.as_const(), Some(0x2345_6789));
    }
}
