//! Conditional jumps on scalars: known outcomes and range refinement per direction.
//!
//! Mirrors `is_scalar_branch_taken` and `regs_refine_cond_op` of `kernel/bpf/verifier.c`:
//! when the ranges decide a comparison the other direction is dead and not explored; otherwise
//! each direction narrows both operands (64-bit views for `JMP`, the 32-bit views for `JMP32`)
//! and a direction whose refined bounds are empty is dead too.

use super::bounds::Scalar;
use super::tnum::Tnum;
use crate::insn::Cond;

/// The condition that holds on the other direction (`!cond`); `Set` has no such condition
/// and is handled apart.
fn negate(c: Cond) -> Cond {
    match c {
        Cond::Eq => Cond::Ne,
        Cond::Ne => Cond::Eq,
        Cond::Gt => Cond::Le,
        Cond::Le => Cond::Gt,
        Cond::Ge => Cond::Lt,
        Cond::Lt => Cond::Ge,
        Cond::Sgt => Cond::Sle,
        Cond::Sle => Cond::Sgt,
        Cond::Sge => Cond::Slt,
        Cond::Slt => Cond::Sge,
        Cond::Set => Cond::Set,
    }
}

/// The ranges a comparison looks at: (umin, umax, smin, smax, tnum) at 64 or 32 bits.
struct View {
    umin: u64,
    umax: u64,
    smin: i64,
    smax: i64,
    var: Tnum,
}

fn view(s: &Scalar, wide: bool) -> View {
    if wide {
        View {
            umin: s.umin,
            umax: s.umax,
            smin: s.smin,
            smax: s.smax,
            var: s.var,
        }
    } else {
        View {
            umin: s.u32min as u64,
            umax: s.u32max as u64,
            smin: s.s32min as i64,
            smax: s.s32max as i64,
            var: s.var.subreg(),
        }
    }
}

/// Whether `a cond b` is decided: `Some(true)` always taken, `Some(false)` never.
pub fn outcome(a: &Scalar, b: &Scalar, cond: Cond, wide: bool) -> Option<bool> {
    let (x, y) = (view(a, wide), view(b, wide));
    let both_const = x.var.is_const() && y.var.is_const();
    match cond {
        Cond::Eq | Cond::Ne => {
            let eq = if both_const && x.var.value == y.var.value {
                Some(true)
            } else if !x.var.overlaps(y.var)
                || x.umin > y.umax
                || y.umin > x.umax
                || x.smin > y.smax
                || y.smin > x.smax
            {
                Some(false)
            } else {
                None
            };
            eq.map(|e| e == (cond == Cond::Eq))
        }
        Cond::Set => {
            // Decided only against a known operand (`is_branch_taken`): the known bits of
            // the other that it sets, or the bits the other may have.
            let (x, y) = if y.var.is_const() { (x, y) } else { (y, x) };
            if !y.var.is_const() {
                None
            } else if x.var.value & y.var.value != 0 {
                Some(true)
            } else if (x.var.value | x.var.mask) & (y.var.value | y.var.mask) == 0 {
                Some(false)
            } else {
                None
            }
        }
        Cond::Gt => decide(x.umin > y.umax, x.umax <= y.umin),
        Cond::Ge => decide(x.umin >= y.umax, x.umax < y.umin),
        Cond::Lt => decide(x.umax < y.umin, x.umin >= y.umax),
        Cond::Le => decide(x.umax <= y.umin, x.umin > y.umax),
        Cond::Sgt => decide(x.smin > y.smax, x.smax <= y.smin),
        Cond::Sge => decide(x.smin >= y.smax, x.smax < y.smin),
        Cond::Slt => decide(x.smax < y.smin, x.smin >= y.smax),
        Cond::Sle => decide(x.smax <= y.smin, x.smin > y.smax),
    }
}

fn decide(always: bool, never: bool) -> Option<bool> {
    if always {
        Some(true)
    } else if never {
        Some(false)
    } else {
        None
    }
}

/// Narrows `a` and `b` given that `a cond b` is `taken` (or not). `None`: this direction is
/// impossible.
pub fn refine(
    a: &Scalar,
    b: &Scalar,
    cond: Cond,
    wide: bool,
    taken: bool,
) -> Option<(Scalar, Scalar)> {
    let (mut a, mut b) = (*a, *b);
    let c = if taken { cond } else { negate(cond) };
    if cond == Cond::Set {
        refine_set(&mut a, &mut b, wide, taken);
    } else if wide {
        refine64(&mut a, &mut b, c);
    } else {
        refine32(&mut a, &mut b, c);
    }
    a.sync();
    b.sync();
    (a.is_valid() && b.is_valid()).then_some((a, b))
}

fn refine_set(a: &mut Scalar, b: &mut Scalar, wide: bool, taken: bool) {
    // The known operand refines the other, whichever side it is on.
    let known = |s: &Scalar| {
        if wide {
            s.var.is_const()
        } else {
            s.var.subreg().is_const()
        }
    };
    let (a, b) = if known(b) { (a, b) } else { (b, a) };
    if !known(b) {
        return;
    }
    let k = b.var.value;
    let k = if wide { k } else { k as u32 as u64 };
    if !taken {
        // a & k == 0: those bits of a are known zero. When that teaches the tnum something,
        // the 6.18 host keeps only what the new tnum says: the ranges start over from it
        // (observed: `r <= 12; if r & 1` falls through with `umax = 14`).
        let var = a.var.intersect(Tnum { value: 0, mask: !k });
        if var != a.var {
            *a = Scalar::UNKNOWN;
            a.var = var;
        }
    } else if k.is_power_of_two() {
        a.var = a.var.intersect(Tnum { value: k, mask: !k });
    }
}

fn refine64(a: &mut Scalar, b: &mut Scalar, c: Cond) {
    match c {
        Cond::Eq => {
            let t = a.var.intersect(b.var);
            a.var = t;
            b.var = t;
            a.umin = a.umin.max(b.umin);
            a.umax = a.umax.min(b.umax);
            a.smin = a.smin.max(b.smin);
            a.smax = a.smax.min(b.smax);
            (b.umin, b.umax, b.smin, b.smax) = (a.umin, a.umax, a.smin, a.smax);
        }
        Cond::Ne => {
            if let Some(k) = b.as_const() {
                ne_const64(a, k);
            }
            if let Some(k) = a.as_const() {
                ne_const64(b, k);
            }
        }
        Cond::Lt | Cond::Le => {
            let strict = (c == Cond::Lt) as u64;
            // a <= b - strict; b >= a + strict.
            a.umax = a.umax.min(b.umax.wrapping_sub(strict));
            b.umin = b.umin.max(a.umin.saturating_add(strict));
            if strict == 1 && b.umax == 0 {
                a.umin = 1;
                a.umax = 0;
            }
        }
        Cond::Gt | Cond::Ge => refine64(b, a, if c == Cond::Gt { Cond::Lt } else { Cond::Le }),
        Cond::Slt | Cond::Sle => {
            let strict = (c == Cond::Slt) as i64;
            if strict == 1 && b.smax == i64::MIN {
                a.smin = 1;
                a.smax = 0;
                return;
            }
            a.smax = a.smax.min(b.smax - strict);
            b.smin = b.smin.max(a.smin.saturating_add(strict));
        }
        Cond::Sgt | Cond::Sge => refine64(b, a, if c == Cond::Sgt { Cond::Slt } else { Cond::Sle }),
        Cond::Set => {}
    }
}

fn ne_const64(a: &mut Scalar, k: u64) {
    if a.umin == k && a.umin < a.umax {
        a.umin += 1;
    } else if a.umax == k && a.umin < a.umax {
        a.umax -= 1;
    } else if a.umin == k && a.umax == k {
        a.umin = 1;
        a.umax = 0;
    }
    if a.smin == k as i64 && a.smin < a.smax {
        a.smin += 1;
    } else if a.smax == k as i64 && a.smin < a.smax {
        a.smax -= 1;
    }
}

fn refine32(a: &mut Scalar, b: &mut Scalar, c: Cond) {
    match c {
        Cond::Eq => {
            let t = a.var.subreg().intersect(b.var.subreg());
            let hi = |x: Tnum| Tnum {
                value: (x.value & !0xffff_ffff) | t.value,
                mask: (x.mask & !0xffff_ffff) | t.mask,
            };
            a.var = hi(a.var);
            b.var = hi(b.var);
            a.u32min = a.u32min.max(b.u32min);
            a.u32max = a.u32max.min(b.u32max);
            a.s32min = a.s32min.max(b.s32min);
            a.s32max = a.s32max.min(b.s32max);
            (b.u32min, b.u32max, b.s32min, b.s32max) = (a.u32min, a.u32max, a.s32min, a.s32max);
        }
        Cond::Ne => {
            if let Some(k) = b.var.subreg().is_const().then_some(b.var.value as u32) {
                ne_const32(a, k);
            }
            if let Some(k) = a.var.subreg().is_const().then_some(a.var.value as u32) {
                ne_const32(b, k);
            }
        }
        Cond::Lt | Cond::Le => {
            let strict = (c == Cond::Lt) as u32;
            if strict == 1 && b.u32max == 0 {
                a.u32min = 1;
                a.u32max = 0;
                return;
            }
            a.u32max = a.u32max.min(b.u32max - strict);
            b.u32min = b.u32min.max(a.u32min.saturating_add(strict));
        }
        Cond::Gt | Cond::Ge => refine32(b, a, if c == Cond::Gt { Cond::Lt } else { Cond::Le }),
        Cond::Slt | Cond::Sle => {
            let strict = (c == Cond::Slt) as i32;
            if strict == 1 && b.s32max == i32::MIN {
                a.s32min = 1;
                a.s32max = 0;
                return;
            }
            a.s32max = a.s32max.min(b.s32max - strict);
            b.s32min = b.s32min.max(a.s32min.saturating_add(strict));
        }
        Cond::Sgt | Cond::Sge => refine32(b, a, if c == Cond::Sgt { Cond::Slt } else { Cond::Sle }),
        Cond::Set => {}
    }
}

fn ne_const32(a: &mut Scalar, k: u32) {
    if a.u32min == k && a.u32min < a.u32max {
        a.u32min += 1;
    } else if a.u32max == k && a.u32min < a.u32max {
        a.u32max -= 1;
    } else if a.u32min == k && a.u32max == k {
        a.u32min = 1;
        a.u32max = 0;
    }
    if a.s32min == k as i32 && a.s32min < a.s32max {
        a.s32min += 1;
    } else if a.s32max == k as i32 && a.s32min < a.s32max {
        a.s32max -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONDS: [Cond; 11] = [
        Cond::Eq,
        Cond::Ne,
        Cond::Gt,
        Cond::Ge,
        Cond::Lt,
        Cond::Le,
        Cond::Sgt,
        Cond::Sge,
        Cond::Slt,
        Cond::Sle,
        Cond::Set,
    ];

    fn holds(c: Cond, x: u64, y: u64, wide: bool) -> bool {
        let (ux, uy, sx, sy) = if wide {
            (x, y, x as i64, y as i64)
        } else {
            (
                x as u32 as u64,
                y as u32 as u64,
                x as i32 as i64,
                y as i32 as i64,
            )
        };
        match c {
            Cond::Eq => ux == uy,
            Cond::Ne => ux != uy,
            Cond::Gt => ux > uy,
            Cond::Ge => ux >= uy,
            Cond::Lt => ux < uy,
            Cond::Le => ux <= uy,
            Cond::Sgt => sx > sy,
            Cond::Sge => sx >= sy,
            Cond::Slt => sx < sy,
            Cond::Sle => sx <= sy,
            Cond::Set => ux & uy != 0,
        }
    }

    /// Every concrete pair that satisfies a direction survives its refinement, and decided
    /// outcomes are right.
    #[test]
    fn refinement_is_sound() {
        let vals: [u64; 9] = [
            0,
            1,
            2,
            5,
            0x7fff_ffff,
            0x8000_0000,
            1 << 33,
            i64::MIN as u64,
            u64::MAX,
        ];
        for c in CONDS {
            for wide in [true, false] {
                for i in 0..vals.len() {
                    for j in i..vals.len() {
                        let a = Scalar::konst(vals[i]).join(&Scalar::konst(vals[j]));
                        for k in 0..vals.len() {
                            for b in [
                                Scalar::konst(vals[k]),
                                Scalar::konst(vals[k]).join(&Scalar::konst(vals[(k + 2) % 9])),
                            ] {
                                check(&a, &b, c, wide, &[vals[i], vals[j]], &vals);
                            }
                        }
                    }
                }
            }
        }
    }

    fn check(a: &Scalar, b: &Scalar, c: Cond, wide: bool, xs: &[u64], ys: &[u64]) {
        let out = outcome(a, b, c, wide);
        for &x in xs {
            for &y in ys {
                if !(a.contains(x) && b.contains(y)) {
                    continue;
                }
                let h = holds(c, x, y, wide);
                if let Some(o) = out {
                    assert_eq!(o, h, "{c:?} wide={wide} {x:#x} {y:#x}");
                }
                let r = refine(a, b, c, wide, h);
                let (ra, rb) = r.unwrap_or_else(|| panic!("{c:?} {wide} {x:#x} {y:#x} dropped"));
                assert!(
                    ra.contains(x) && rb.contains(y),
                    "{c:?} {wide} {x:#x} {y:#x}"
                );
            }
        }
    }

    #[test]
    fn refines_ranges() {
        let a = Scalar::urange(0, 100);
        let (t, _) = refine(&a, &Scalar::konst(10), Cond::Lt, true, true).unwrap();
        assert_eq!((t.umin, t.umax), (0, 9));
        let (f, _) = refine(&a, &Scalar::konst(10), Cond::Lt, true, false).unwrap();
        assert_eq!((f.umin, f.umax), (10, 100));
        assert_eq!(
            outcome(&a, &Scalar::konst(200), Cond::Gt, true),
            Some(false)
        );
        assert!(refine(&Scalar::konst(3), &Scalar::konst(3), Cond::Ne, true, true).is_none());
    }
}
