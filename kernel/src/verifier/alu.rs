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

fn add(a: &Scalar, b: &Scalar) -> Scalar {
    let mut r = from_tnum(a.var.add(b.var));
    if let (Some(lo), Some(hi)) = (a.umin.checked_add(b.umin), a.umax.checked_add(b.umax)) {
        r.umin = r.umin.max(lo);
        r.umax = r.umax.min(hi);
    }
    if let (Some(lo), Some(hi)) = (a.smin.checked_add(b.smin), a.smax.checked_add(b.smax)) {
        r.smin = r.smin.max(lo);
        r.smax = r.smax.min(hi);
    }
    r.sync();
    r
}

fn sub(a: &Scalar, b: &Scalar) -> Scalar {
    let mut r = from_tnum(a.var.sub(b.var));
    if a.umin >= b.umax {
        r.umin = r.umin.max(a.umin - b.umax);
        r.umax = r.umax.min(a.umax - b.umin);
    }
    if let (Some(lo), Some(hi)) = (a.smin.checked_sub(b.smax), a.smax.checked_sub(b.smin)) {
        r.smin = r.smin.max(lo);
        r.smax = r.smax.min(hi);
    }
    r.sync();
    r
}

fn mul(a: &Scalar, b: &Scalar) -> Scalar {
    let mut r = from_tnum(a.var.mul(b.var));
    if let Some(hi) = a.umax.checked_mul(b.umax) {
        r.umin = r.umin.max(a.umin * b.umin);
        r.umax = r.umax.min(hi);
    }
    r.sync();
    r
}

fn bitwise(a: &Scalar, b: &Scalar, op: AluOp) -> Scalar {
    let (var, lo, hi) = match op {
        AluOp::And => (a.var.and(b.var), 0, a.umax.min(b.umax)),
        AluOp::Or => (a.var.or(b.var), a.umin.max(b.umin), u64::MAX),
        _ => (a.var.xor(b.var), 0, u64::MAX),
    };
    let mut r = from_tnum(var);
    r.umin = r.umin.max(lo);
    r.umax = r.umax.min(hi);
    r.sync();
    r
}

/// A shift by `b`; `None` for the amount means unknown. `bits` is the operand width.
fn shift(a: &Scalar, b: &Scalar, op: AluOp, bits: u32) -> Scalar {
    let s = match b.as_const() {
        Some(s) if s < bits as u64 => s as u32,
        _ if b.umax < bits as u64 && op == AluOp::Rsh => {
            // Unknown in-range logical right shift: at most the input, at least umin >> max.
            return Scalar::urange(a.umin >> b.umax, a.umax >> b.umin);
        }
        _ => return Scalar::UNKNOWN,
    };
    match op {
        AluOp::Lsh => {
            let mut r = from_tnum(a.var.lsh(s));
            if a.umax.leading_zeros() >= s {
                r.umin = r.umin.max(a.umin << s);
                r.umax = r.umax.min(a.umax << s);
            }
            r.sync();
            r
        }
        AluOp::Rsh => {
            let mut r = from_tnum(a.var.rsh(s));
            r.umin = r.umin.max(a.umin >> s);
            r.umax = r.umax.min(a.umax >> s);
            r.sync();
            r
        }
        _ => {
            let mut r = from_tnum(a.var.arsh(s, 64));
            r.smin = r.smin.max(a.smin >> s);
            r.smax = r.smax.min(a.smax >> s);
            r.sync();
            r
        }
    }
}

fn udiv_mod(a: &Scalar, b: &Scalar, div: bool) -> Scalar {
    if let (Some(x), Some(y)) = (a.as_const(), b.as_const()) {
        return Scalar::konst(match (div, y) {
            (true, 0) => 0,
            (false, 0) => x,
            (true, _) => x / y,
            (false, _) => x % y,
        });
    }
    if div {
        let hi = a.umax.checked_div(b.umin).unwrap_or(a.umax);
        let lo = if b.umin > 0 { a.umin / b.umax } else { 0 };
        Scalar::urange(lo, hi)
    } else if b.umin > 0 {
        Scalar::urange(0, a.umax.min(b.umax - 1))
    } else {
        Scalar::urange(0, a.umax)
    }
}

fn sdiv_mod(a: &Scalar, b: &Scalar, div: bool, bits: u32) -> Scalar {
    let (Some(x), Some(y)) = (a.as_const(), b.as_const()) else {
        return Scalar::UNKNOWN;
    };
    let op = if div { AluOp::SDiv } else { AluOp::SMod };
    Scalar::konst(crate::insn::eval::alu(bits == 64, op, x, y))
}

fn movsx(a: &Scalar, from_bits: u32) -> Scalar {
    if let Some(x) = a.as_const() {
        let shift = 64 - from_bits;
        return Scalar::konst((((x << shift) as i64) >> shift) as u64);
    }
    let half = 1i64 << (from_bits - 1);
    if a.umax < half as u64 {
        return *a;
    }
    let mut r = from_tnum(a.var.sext(from_bits));
    r.smin = r.smin.max(-half);
    r.smax = r.smax.min(half - 1);
    r.sync();
    r
}

/// `dst op src` on 64-bit scalars.
pub fn alu64(op: AluOp, a: &Scalar, b: &Scalar) -> Scalar {
    match op {
        AluOp::Add => add(a, b),
        AluOp::Sub => sub(a, b),
        AluOp::Mul => mul(a, b),
        AluOp::And | AluOp::Or | AluOp::Xor => bitwise(a, b, op),
        AluOp::Lsh | AluOp::Rsh | AluOp::Arsh => shift(a, b, op, 64),
        AluOp::Div => udiv_mod(a, b, true),
        AluOp::Mod => udiv_mod(a, b, false),
        AluOp::SDiv => sdiv_mod(a, b, true, 64),
        AluOp::SMod => sdiv_mod(a, b, false, 64),
        AluOp::Neg => sub(&Scalar::konst(0), a),
        AluOp::Mov => *b,
        AluOp::MovSx(bits) => movsx(b, bits as u32),
    }
}

/// `dst op src` on the low 32 bits; the result is zero-extended.
pub fn alu32(op: AluOp, a: &Scalar, b: &Scalar) -> Scalar {
    let (za, zb) = (a.zext32(), b.zext32());
    let r = match op {
        AluOp::Arsh => {
            let sa = a.sext32();
            match zb.as_const() {
                Some(s) if s < 32 => {
                    let mut r = from_tnum(za.var.arsh(s as u32, 32));
                    let (lo, hi) = (sa.smin >> s, sa.smax >> s);
                    r.s32min = r.s32min.max(lo as i32);
                    r.s32max = r.s32max.min(hi as i32);
                    r.sync();
                    r
                }
                _ => Scalar::UNKNOWN,
            }
        }
        AluOp::Lsh | AluOp::Rsh => shift(&za, &zb, op, 32),
        AluOp::SDiv => sdiv_mod(&a.sext32(), &b.sext32(), true, 32),
        AluOp::SMod => sdiv_mod(&a.sext32(), &b.sext32(), false, 32),
        AluOp::MovSx(bits) => movsx(&zb, bits as u32),
        _ => alu64(op, &za, &zb),
    };
    truncate32(&r)
}

/// The low 32 bits of `r`, zero-extended, keeping what the 64-bit views say about them.
fn truncate32(r: &Scalar) -> Scalar {
    r.zext32()
}

/// Byte order operations on the low `bits` of `a`.
pub fn end(kind: EndKind, bits: u8, a: &Scalar) -> Scalar {
    let bits = bits as u32;
    match kind {
        EndKind::ToLe if bits == 64 => *a,
        EndKind::ToLe => from_tnum(a.var.cast(bits / 8)),
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
