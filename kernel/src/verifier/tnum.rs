//! Tracked numbers: a value whose bits are each known 0, known 1 or unknown.
//!
//! Mirrors the abstract domain of `kernel/bpf/tnum.c` (`struct tnum`): `value` holds the known
//! bits, `mask` the unknown ones, and a bit is never set in both. Every operation is sound: the
//! result contains every concrete result of the operation applied to members of the operands
//! (the tests check this exhaustively over small widths).

/// A tracked number: the set of u64 `x` with `x & !mask == value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tnum {
    /// Known bits (bits set in `mask` are 0 here).
    pub value: u64,
    /// Unknown bits.
    pub mask: u64,
}

impl Tnum {
    /// Every value.
    pub const UNKNOWN: Tnum = Tnum {
        value: 0,
        mask: u64::MAX,
    };

    /// Exactly `v`.
    pub const fn konst(v: u64) -> Tnum {
        Tnum { value: v, mask: 0 }
    }

    /// The smallest tnum holding every value in `min..=max` (`tnum_range`).
    pub fn range(min: u64, max: u64) -> Tnum {
        let chi = min ^ max;
        let bits = 64 - chi.leading_zeros();
        if bits > 63 {
            return Tnum::UNKNOWN;
        }
        let delta = (1u64 << bits) - 1;
        Tnum {
            value: min & !delta,
            mask: delta,
        }
    }

    /// Whether every bit is known.
    pub const fn is_const(self) -> bool {
        self.mask == 0
    }

    /// Whether `x` is a member.
    pub const fn contains(self, x: u64) -> bool {
        x & !self.mask == self.value
    }

    /// Whether every member of `b` is a member of `self` (`tnum_in`).
    pub const fn contains_tnum(self, b: Tnum) -> bool {
        if b.mask & !self.mask != 0 {
            return false;
        }
        b.value & !self.mask == self.value
    }

    /// Shift left by a known amount (< 64).
    pub const fn lsh(self, s: u32) -> Tnum {
        Tnum {
            value: self.value << s,
            mask: self.mask << s,
        }
    }

    /// Logical shift right by a known amount (< 64).
    pub const fn rsh(self, s: u32) -> Tnum {
        Tnum {
            value: self.value >> s,
            mask: self.mask >> s,
        }
    }

    /// Arithmetic shift right by a known amount, at 64 or 32 bits (`bits`); a 32-bit result
    /// is zero-extended.
    pub const fn arsh(self, s: u32, bits: u32) -> Tnum {
        if bits == 32 {
            Tnum {
                value: ((self.value as u32 as i32) >> s) as u32 as u64,
                mask: ((self.mask as u32 as i32) >> s) as u32 as u64,
            }
        } else {
            Tnum {
                value: ((self.value as i64) >> s) as u64,
                mask: ((self.mask as i64) >> s) as u64,
            }
        }
    }

    /// Sum.
    pub const fn add(self, b: Tnum) -> Tnum {
        let sm = self.mask.wrapping_add(b.mask);
        let sv = self.value.wrapping_add(b.value);
        let sigma = sm.wrapping_add(sv);
        let chi = sigma ^ sv;
        let mu = chi | self.mask | b.mask;
        Tnum {
            value: sv & !mu,
            mask: mu,
        }
    }

    /// Difference.
    pub const fn sub(self, b: Tnum) -> Tnum {
        let dv = self.value.wrapping_sub(b.value);
        let alpha = dv.wrapping_add(self.mask);
        let beta = dv.wrapping_sub(b.mask);
        let chi = alpha ^ beta;
        let mu = chi | self.mask | b.mask;
        Tnum {
            value: dv & !mu,
            mask: mu,
        }
    }

    /// Bitwise and.
    pub const fn and(self, b: Tnum) -> Tnum {
        let alpha = self.value | self.mask;
        let beta = b.value | b.mask;
        let v = self.value & b.value;
        Tnum {
            value: v,
            mask: alpha & beta & !v,
        }
    }

    /// Bitwise or.
    pub const fn or(self, b: Tnum) -> Tnum {
        let v = self.value | b.value;
        let mu = self.mask | b.mask;
        Tnum {
            value: v,
            mask: mu & !v,
        }
    }

    /// Bitwise exclusive or.
    pub const fn xor(self, b: Tnum) -> Tnum {
        let v = self.value ^ b.value;
        let mu = self.mask | b.mask;
        Tnum {
            value: v & !mu,
            mask: mu,
        }
    }

    /// Product: shift-and-add over the bits of `self`; where a bit of `self` is unknown the
    /// accumulator is the union of both outcomes (with and without `b` added), as Linux 6.18's
    /// `tnum_mul` does.
    // Named like the kernel's `tnum_mul`; not `core::ops::Mul`, which would suggest exactness.
    #[allow(clippy::should_implement_trait)]
    pub fn mul(self, b: Tnum) -> Tnum {
        let mut acc = Tnum::konst(0);
        let (mut a, mut b) = (self, b);
        while a.value != 0 || a.mask != 0 {
            if a.value & 1 != 0 {
                acc = acc.add(b);
            } else if a.mask & 1 != 0 {
                acc = acc.union(acc.add(b));
            }
            a = a.rsh(1);
            b = b.lsh(1);
        }
        acc
    }

    /// The least member not below `x`, if any (the idea of `tnum_step`).
    pub fn next_ge(self, x: u64) -> Option<u64> {
        let diff = (x ^ self.value) & !self.mask;
        if diff == 0 {
            return Some(x);
        }
        // The highest known bit where `x` disagrees.
        let h = 63 - diff.leading_zeros();
        let below = |b: u32| if b >= 64 { u64::MAX } else { (1u64 << b) - 1 };
        if (self.value >> h) & 1 == 1 {
            // `x` has 0 where a member has 1: `x`'s bits above, that 1, the least bits below.
            Some((x & !below(h + 1)) | (1 << h) | (self.value & below(h)))
        } else {
            // `x` has 1 where a member has 0: raise the lowest unknown 0 bit of `x` above.
            let free = self.mask & !x & !below(h + 1);
            if free == 0 {
                return None;
            }
            let b = free.trailing_zeros();
            Some((x & !below(b + 1)) | (1 << b) | (self.value & below(b)))
        }
    }

    /// The values in both (`tnum_intersect`); meaningful when the two overlap.
    pub const fn intersect(self, b: Tnum) -> Tnum {
        let v = self.value | b.value;
        let mu = self.mask & b.mask;
        Tnum {
            value: v & !mu,
            mask: mu,
        }
    }

    /// The smallest tnum holding the members of both (a join).
    pub const fn union(self, b: Tnum) -> Tnum {
        let mu = self.mask | b.mask | (self.value ^ b.value);
        Tnum {
            value: self.value & !mu,
            mask: mu,
        }
    }

    /// Truncates to the low `bytes` bytes (zero-extended; `tnum_cast`).
    pub const fn cast(self, bytes: u32) -> Tnum {
        if bytes >= 8 {
            return self;
        }
        let m = (1u64 << (bytes * 8)) - 1;
        Tnum {
            value: self.value & m,
            mask: self.mask & m,
        }
    }

    /// Sign-extends from the low `bits` bits.
    pub const fn sext(self, bits: u32) -> Tnum {
        if bits >= 64 {
            return self;
        }
        self.lsh(64 - bits).arsh(64 - bits, 64)
    }

    /// The low 32 bits (`tnum_subreg`).
    pub const fn subreg(self) -> Tnum {
        self.cast(4)
    }

    /// Whether the two can share a member (their known bits agree where both are known).
    pub const fn overlaps(self, b: Tnum) -> bool {
        let known = !self.mask & !b.mask;
        (self.value ^ b.value) & known == 0
    }

    /// Byte swap of the low `bits` (16, 32 or 64) bits, zero-extended; exact.
    pub const fn bswap(self, bits: u32) -> Tnum {
        match bits {
            16 => Tnum {
                value: (self.value as u16).swap_bytes() as u64,
                mask: (self.mask as u16).swap_bytes() as u64,
            },
            32 => Tnum {
                value: (self.value as u32).swap_bytes() as u64,
                mask: (self.mask as u32).swap_bytes() as u64,
            },
            _ => Tnum {
                value: self.value.swap_bytes(),
                mask: self.mask.swap_bytes(),
            },
        }
    }
}

impl core::fmt::Display for Tnum {
    /// As the kernel's `tnum_strn` prints it in verifier messages: a constant as a number,
    /// anything else as `(value; mask)`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_const() {
            write!(f, "{}", self.value as i64)
        } else {
            write!(f, "({:#x}; {:#x})", self.value, self.mask)
        }
    }
}

/// `t` as the kernel prints it in verifier messages (see [`Tnum`]'s `Display`).
pub fn tnum_str(t: Tnum) -> alloc::string::String {
    alloc::format!("{t}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// Bit positions the exhaustive tests vary: two low, two high (carries into bit 63).
    const POS: [u32; 4] = [0, 1, 62, 63];

    fn spread(small: u64) -> u64 {
        let mut x = 0;
        for (i, p) in POS.iter().enumerate() {
            if small >> i & 1 != 0 {
                x |= 1 << p;
            }
        }
        x
    }

    /// Every tnum over the varied positions, other bits known 0.
    fn all_tnums() -> Vec<Tnum> {
        let mut v = Vec::new();
        for value in 0..16u64 {
            for mask in 0..16u64 {
                if value & mask == 0 {
                    v.push(Tnum {
                        value: spread(value),
                        mask: spread(mask),
                    });
                }
            }
        }
        v
    }

    fn members(t: Tnum) -> Vec<u64> {
        (0..16u64)
            .map(spread)
            .filter(|&x| t.contains(x) && x & !(t.value | t.mask) == 0)
            .collect()
    }

    fn check2(name: &str, f: impl Fn(Tnum, Tnum) -> Tnum, c: impl Fn(u64, u64) -> u64) {
        let all = all_tnums();
        for &a in &all {
            for &b in &all {
                let r = f(a, b);
                for x in members(a) {
                    for y in members(b) {
                        assert!(
                            r.contains(c(x, y)),
                            "{name}: {a} {b} x={x:#x} y={y:#x} r={r}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn binary_ops_are_sound() {
        check2("add", Tnum::add, u64::wrapping_add);
        check2("sub", Tnum::sub, u64::wrapping_sub);
        check2("mul", Tnum::mul, u64::wrapping_mul);
        check2("and", Tnum::and, |x, y| x & y);
        check2("or", Tnum::or, |x, y| x | y);
        check2("xor", Tnum::xor, |x, y| x ^ y);
        check2("union", Tnum::union, |x, _| x);
        check2("union2", Tnum::union, |_, y| y);
    }

    #[test]
    fn unary_ops_are_sound() {
        for a in all_tnums() {
            for x in members(a) {
                for s in [0, 1, 5, 31, 32, 63] {
                    assert!(a.lsh(s).contains(x << s));
                    assert!(a.rsh(s).contains(x >> s));
                    assert!(a.arsh(s, 64).contains(((x as i64) >> s) as u64));
                    if s < 32 {
                        let r = ((x as u32 as i32) >> s) as u32 as u64;
                        assert!(a.arsh(s, 32).contains(r));
                    }
                }
                assert!(a.subreg().contains(x as u32 as u64));
                assert!(a.sext(8).contains(x as i8 as i64 as u64));
                assert!(a.sext(32).contains(x as i32 as i64 as u64));
                assert!(a.bswap(16).contains((x as u16).swap_bytes() as u64));
                assert!(a.bswap(64).contains(x.swap_bytes()));
            }
        }
    }

    #[test]
    fn next_ge_is_the_least_member_not_below() {
        for t in all_tnums() {
            let ms = members(t);
            for x in 0..70u64 {
                let x = spread(x);
                let want = ms.iter().copied().filter(|&m| m >= x).min();
                assert_eq!(t.next_ge(x), want, "{t:?} from {x:#x}");
            }
        }
    }

    #[test]
    fn intersect_and_contains() {
        for a in all_tnums() {
            for b in all_tnums() {
                let i = a.intersect(b);
                for x in members(a) {
                    if b.contains(x) {
                        assert!(i.contains(x), "{a} {b} {x:#x}");
                    }
                }
                if a.contains_tnum(b) {
                    assert!(members(b).iter().all(|&x| a.contains(x)));
                }
            }
        }
    }

    #[test]
    fn range_holds_its_bounds() {
        for (lo, hi) in [
            (0, 0),
            (3, 9),
            (0, u64::MAX),
            (1 << 40, (1 << 40) + 77),
            (5, 5),
        ] {
            let t = Tnum::range(lo, hi);
            for x in [lo, hi, lo + (hi - lo) / 2] {
                assert!(t.contains(x));
            }
        }
        assert_eq!(Tnum::range(4, 7), Tnum { value: 4, mask: 3 });
        assert!(Tnum::konst(7).is_const());
        assert_eq!(Tnum::konst(6).mul(Tnum::konst(7)), Tnum::konst(42));
    }
}
