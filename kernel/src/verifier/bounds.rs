//! Scalar bounds: a tnum plus signed/unsigned 64- and 32-bit ranges, kept consistent.
//!
//! Mirrors the `var_off`/`smin_value`/.../`u32_max_value` fields of `struct bpf_reg_state`
//! and the ideas of `reg_bounds_sync` in `kernel/bpf/verifier.c`: each of the five views
//! (tnum, u64, s64, u32, s32) is tightened from the others. Every step only intersects facts
//! that hold of every member, so the result stays a superset of the concrete values.

use super::tnum::Tnum;

/// The low 32 bits of a 64-bit value.
const LOW_HALF: u64 = 0xffff_ffff;

/// A 64-bit range `lo..=hi` (ends taken as bits, unsigned order) that lies in two adjacent
/// 2^32 windows, with the value's low half known to be in `u32min..=u32max`: an end whose low
/// half is outside that range has no value in its window, so it moves to the other window's
/// bound; the high end then follows the low end's new window. A range over more windows, or
/// in one, comes back as it was. (Observed of the 6.18 host: it moves the bound across two
/// adjacent windows, and not when the range spans more.)
fn adjacent_windows(lo: u64, hi: u64, u32min: u64, u32max: u64) -> (u64, u64) {
    if (hi >> 32).wrapping_sub(lo >> 32) != 1 {
        return (lo, hi);
    }
    let lo = if lo & LOW_HALF > u32max {
        (hi & !LOW_HALF) | u32min
    } else {
        lo
    };
    let hi = if hi & LOW_HALF < u32min {
        (lo & !LOW_HALF) | u32max
    } else {
        hi
    };
    (lo, hi)
}

/// The abstract value of a scalar (or the variable part of a pointer's offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub struct Scalar {
    /// Known bits.
    pub var: Tnum,
    pub smin: i64,
    pub smax: i64,
    pub umin: u64,
    pub umax: u64,
    pub s32min: i32,
    pub s32max: i32,
    pub u32min: u32,
    pub u32max: u32,
}

impl Scalar {
    /// Any value.
    pub const UNKNOWN: Scalar = Scalar {
        var: Tnum::UNKNOWN,
        smin: i64::MIN,
        smax: i64::MAX,
        umin: 0,
        umax: u64::MAX,
        s32min: i32::MIN,
        s32max: i32::MAX,
        u32min: 0,
        u32max: u32::MAX,
    };

    /// Exactly `v`.
    pub const fn konst(v: u64) -> Scalar {
        Scalar {
            var: Tnum::konst(v),
            smin: v as i64,
            smax: v as i64,
            umin: v,
            umax: v,
            s32min: v as i32,
            s32max: v as i32,
            u32min: v as u32,
            u32max: v as u32,
        }
    }

    /// Any value of the unsigned range `lo..=hi`.
    pub fn urange(lo: u64, hi: u64) -> Scalar {
        let mut s = Scalar::UNKNOWN;
        s.umin = lo;
        s.umax = hi;
        s.var = Tnum::range(lo, hi);
        s.sync();
        s
    }

    /// Any value of the signed range `lo..=hi`.
    pub fn srange(lo: i64, hi: i64) -> Scalar {
        let mut s = Scalar::UNKNOWN;
        s.smin = lo;
        s.smax = hi;
        s.sync();
        s
    }

    /// The constant, if there is exactly one member.
    pub fn as_const(&self) -> Option<u64> {
        self.var.is_const().then_some(self.var.value)
    }

    /// Whether `x` is allowed by every view.
    pub fn contains(&self, x: u64) -> bool {
        self.var.contains(x)
            && (self.umin..=self.umax).contains(&x)
            && (self.smin..=self.smax).contains(&(x as i64))
            && (self.u32min..=self.u32max).contains(&(x as u32))
            && (self.s32min..=self.s32max).contains(&(x as i32))
    }

    /// Whether the views agree on at least a plausible member (no empty range); a refined
    /// branch with invalid bounds cannot be taken.
    pub fn is_valid(&self) -> bool {
        self.smin <= self.smax
            && self.umin <= self.umax
            && self.s32min <= self.s32max
            && self.u32min <= self.u32max
            && self.umin <= self.var.value | self.var.mask
            && self.umax >= self.var.value
            && self.u32min <= (self.var.value | self.var.mask) as u32
            && self.u32max >= self.var.value as u32
    }

    /// Whether every member of `other` is a member of `self` (for state pruning).
    pub fn includes(&self, other: &Scalar) -> bool {
        self.var.contains_tnum(other.var)
            && self.umin <= other.umin
            && self.umax >= other.umax
            && self.smin <= other.smin
            && self.smax >= other.smax
            && self.u32min <= other.u32min
            && self.u32max >= other.u32max
            && self.s32min <= other.s32min
            && self.s32max >= other.s32max
    }

    /// The smallest value holding the members of both.
    pub fn join(&self, o: &Scalar) -> Scalar {
        Scalar {
            var: self.var.union(o.var),
            smin: self.smin.min(o.smin),
            smax: self.smax.max(o.smax),
            umin: self.umin.min(o.umin),
            umax: self.umax.max(o.umax),
            s32min: self.s32min.min(o.s32min),
            s32max: self.s32max.max(o.s32max),
            u32min: self.u32min.min(o.u32min),
            u32max: self.u32max.max(o.u32max),
        }
    }

    /// Tightens the ranges from the tnum (`__update_reg_bounds`).
    fn update_from_tnum(&mut self) {
        let (v, m) = (self.var.value, self.var.mask);
        self.smin = self.smin.max((v | (m & (1 << 63))) as i64);
        self.smax = self.smax.min((v | (m & !(1 << 63))) as i64);
        self.umin = self.umin.max(v);
        self.umax = self.umax.min(v | m);
        // The unsigned range and the tnum sharing a single value: that value
        // (`__update_reg64_bounds`; `r & 0xf0 | 1` and `r <= 16` is 1).
        if let Some(x) = self.var.next_ge(self.umin).filter(|&x| x <= self.umax) {
            let next = x.checked_add(1).and_then(|y| self.var.next_ge(y));
            if next.is_none_or(|y| y > self.umax) && self.contains(x) {
                *self = Scalar::konst(x);
                return;
            }
        }
        let (v32, m32) = (v as u32, m as u32);
        self.s32min = self.s32min.max((v32 | (m32 & (1 << 31))) as i32);
        self.s32max = self.s32max.min((v32 | (m32 & !(1 << 31))) as i32);
        self.u32min = self.u32min.max(v32);
        self.u32max = self.u32max.min(v32 | m32);
    }

    /// Tightens ranges from each other (`__reg_deduce_bounds`).
    fn deduce(&mut self) {
        // Low 32 bits from a 64-bit range that stays within one 2^32 window.
        if self.umin >> 32 == self.umax >> 32 {
            self.u32min = self.u32min.max(self.umin as u32);
            self.u32max = self.u32max.min(self.umax as u32);
            if (self.umin as i32) <= (self.umax as i32) {
                self.s32min = self.s32min.max(self.umin as i32);
                self.s32max = self.s32max.min(self.umax as i32);
            }
        }
        if self.smin >> 32 == self.smax >> 32 {
            if (self.smin as u32) <= (self.smax as u32) {
                self.u32min = self.u32min.max(self.smin as u32);
                self.u32max = self.u32max.min(self.smax as u32);
            }
            if (self.smin as i32) <= (self.smax as i32) {
                self.s32min = self.s32min.max(self.smin as i32);
                self.s32max = self.s32max.min(self.smax as i32);
            }
        }
        // A 64-bit range whose upper halves are two consecutive values (0xffffffff then 0 is
        // one such pair) and whose ends are negative then not as 32-bit values: the low halves
        // form one signed 32-bit range.
        for (lo, hi) in [(self.umin, self.umax), (self.smin as u64, self.smax as u64)] {
            if ((lo >> 32) as u32).wrapping_add(1) == (hi >> 32) as u32
                && (lo as i32) < 0
                && (hi as i32) >= 0
            {
                self.s32min = self.s32min.max(lo as i32);
                self.s32max = self.s32max.min(hi as i32);
            }
        }
        // The same split at 32 bits.
        if self.s32min < 0 && self.s32max >= 0 {
            if self.u32max < self.s32min as u32 {
                self.s32min = self.u32min as i32;
                self.u32max = self.u32max.min(self.s32max as u32);
            } else if (self.s32max as u32) < self.u32min {
                self.s32max = self.u32max as i32;
                self.u32min = self.u32min.max(self.s32min as u32);
            }
        }
        // 32-bit signed <-> unsigned.
        if (self.u32min as i32) <= (self.u32max as i32) {
            self.s32min = self.s32min.max(self.u32min as i32);
            self.s32max = self.s32max.min(self.u32max as i32);
        }
        if self.s32min >= 0 || self.s32max < 0 {
            self.u32min = self.u32min.max(self.s32min as u32);
            self.u32max = self.u32max.min(self.s32max as u32);
        }
        // 64-bit from 32-bit when the upper half is fixed.
        if self.umin >> 32 == self.umax >> 32 {
            let hi = self.umin & !LOW_HALF;
            self.umin = self.umin.max(hi | self.u32min as u64);
            self.umax = self.umax.min(hi | self.u32max as u64);
        }
        // 64-bit from 32-bit at both ends of the range (`__reg_deduce_mixed_bounds`): each
        // end takes the 32-bit bound as its low half when that tightens it (a bound whose low
        // half is beyond the 32-bit range stays where it is, as in Linux 6.18).
        // First, in two adjacent windows, an end with no value in its own moves to the other
        // ([`adjacent_windows`]).
        let (u32min, u32max) = (self.u32min as u64, self.u32max as u64);
        if self.u32min <= self.u32max {
            (self.umin, self.umax) = adjacent_windows(self.umin, self.umax, u32min, u32max);
            let (smin, smax) = adjacent_windows(self.smin as u64, self.smax as u64, u32min, u32max);
            (self.smin, self.smax) = (smin as i64, smax as i64);
        }
        self.umin = self.umin.max((self.umin & !LOW_HALF) | u32min);
        self.umax = self.umax.min((self.umax & !LOW_HALF) | u32max);
        self.smin = self
            .smin
            .max(((self.smin as u64 & !LOW_HALF) | u32min) as i64);
        self.smax = self
            .smax
            .min(((self.smax as u64 & !LOW_HALF) | u32max) as i64);
        // A value within the signed 32-bit range whose low half is not negative is that half.
        if self.s32min >= 0 && self.smin >= i32::MIN as i64 && self.smax <= i32::MAX as i64 {
            self.smin = self.smin.max(self.s32min as i64);
            self.smax = self.smax.min(self.s32max as i64);
            self.umin = self.umin.max(self.s32min as u64);
            self.umax = self.umax.min(self.s32max as u64);
        }
        // A signed range across the sign boundary is split between the two ends of the
        // unsigned domain: when the unsigned range meets only one end, that end is the value.
        if self.smin < 0 && self.smax >= 0 {
            if self.umax < self.smin as u64 {
                self.smin = self.umin as i64;
                self.umax = self.umax.min(self.smax as u64);
            } else if (self.smax as u64) < self.umin {
                self.smax = self.umax as i64;
                self.umin = self.umin.max(self.smin as u64);
            }
        }
        // 64-bit signed <-> unsigned.
        if (self.umin as i64) <= (self.umax as i64) {
            self.smin = self.smin.max(self.umin as i64);
            self.smax = self.smax.min(self.umax as i64);
        }
        if self.smin >= 0 || self.smax < 0 {
            self.umin = self.umin.max(self.smin as u64);
            self.umax = self.umax.min(self.smax as u64);
        }
    }

    /// Tightens the tnum from the ranges (`__reg_bound_offset`).
    fn tnum_from_ranges(&mut self) {
        if self.umin > self.umax || self.u32min > self.u32max {
            return;
        }
        let t64 = self.var.intersect(Tnum::range(self.umin, self.umax));
        let t32 = t64
            .subreg()
            .intersect(Tnum::range(self.u32min as u64, self.u32max as u64));
        self.var = Tnum {
            value: (t64.value & !0xffff_ffff) | t32.value,
            mask: (t64.mask & !0xffff_ffff) | t32.mask,
        };
    }

    /// Brings all views into agreement (`reg_bounds_sync`).
    pub fn sync(&mut self) {
        self.update_from_tnum();
        self.deduce();
        self.deduce();
        if !self
            .var
            .overlaps(Tnum::range(self.umin, self.umax.max(self.umin)))
        {
            return;
        }
        self.tnum_from_ranges();
        self.update_from_tnum();
    }

    /// The low 32 bits, zero-extended (the result of a 32-bit ALU operation).
    pub fn zext32(&self) -> Scalar {
        let mut r = Scalar::UNKNOWN;
        r.var = self.var.subreg();
        r.u32min = self.u32min;
        r.u32max = self.u32max;
        r.s32min = self.s32min;
        r.s32max = self.s32max;
        r.umin = self.u32min as u64;
        r.umax = self.u32max as u64;
        r.sync();
        r
    }

    /// The low 32 bits, sign-extended to 64 (the signed view of a 32-bit operand).
    pub fn sext32(&self) -> Scalar {
        let mut r = Scalar::UNKNOWN;
        r.var = self.var.sext(32);
        r.smin = self.s32min as i64;
        r.smax = self.s32max as i64;
        r.u32min = self.u32min;
        r.u32max = self.u32max;
        r.s32min = self.s32min;
        r.s32max = self.s32max;
        r.sync();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_derives_views() {
        let s = Scalar::urange(4, 7);
        assert_eq!((s.smin, s.smax), (4, 7));
        assert_eq!((s.u32min, s.u32max), (4, 7));
        assert_eq!(s.var, Tnum { value: 4, mask: 3 });
        let n = Scalar::srange(-3, -1);
        assert_eq!((n.umin, n.umax), ((-3i64) as u64, u64::MAX));
        assert_eq!((n.s32min, n.s32max), (-3, -1));
        for x in [-3i64, -2, -1] {
            assert!(n.contains(x as u64));
        }
        assert!(!n.contains(0));
        let z = Scalar::konst(0x1_0000_0005).zext32();
        assert_eq!(z.as_const(), Some(5));
        assert_eq!(
            Scalar::konst(0xffff_fffe).sext32().as_const(),
            Some(-2i64 as u64)
        );
    }

    #[test]
    fn includes_is_a_partial_order() {
        let big = Scalar::urange(0, 100);
        let small = Scalar::urange(10, 20);
        assert!(big.includes(&small));
        assert!(!small.includes(&big));
        assert!(Scalar::UNKNOWN.includes(&big));
        assert!(big.includes(&big));
    }
}
