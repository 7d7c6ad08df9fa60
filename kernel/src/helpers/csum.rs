//! Internet checksum arithmetic as the packet helpers use it (`include/net/checksum.h`,
//! `csum_partial` of `arch/x86/lib/csum-partial_64.c`, `csum_fold`, `csum16_add`,
//! `csum_block_add`/`_sub` and the `inet_proto_csum_replace*` family of
//! `net/core/utils.c`).
//!
//! A 32-bit partial sum (`__wsum`) is the ones'-complement sum of the data read as native
//! 32-bit words, then a trailing 16-bit word and a trailing byte each as a number of their
//! own (x86-64's `csum_partial`), added with end-around carry: its value is 0 only when every
//! addend was 0, otherwise the representative in `1..=u32::MAX` of the sum modulo
//! `2^32 - 1` — which is what `csum_partial` returns whatever order it adds the words in. A folded checksum (`__sum16`) is the complement of the
//! partial sum folded to 16 bits. Checksum fields are read and written in memory order, as the
//! kernel does (`*(__sum16 *)ptr`): all arithmetic here is on native-endian loads.

/// `CSUM_MANGLED_0`: what a UDP checksum that came out 0 is written as.
pub const CSUM_MANGLED_0: u16 = 0xffff;

/// `csum_add`: ones'-complement 32-bit addition.
#[inline]
pub fn add(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(carry as u32)
}

/// `csum_sub`.
#[inline]
pub fn sub(a: u32, b: u32) -> u32 {
    add(a, !b)
}

/// `csum_partial(buf, len, seed)`.
pub fn partial(buf: &[u8], seed: u32) -> u32 {
    let mut acc = seed as u64;
    let mut words = buf.chunks_exact(4);
    for w in &mut words {
        acc += u32::from_ne_bytes([w[0], w[1], w[2], w[3]]) as u64;
    }
    let tail = words.remainder();
    if tail.len() >= 2 {
        acc += u16::from_ne_bytes([tail[0], tail[1]]) as u64;
    }
    if tail.len() % 2 == 1 {
        acc += tail[tail.len() - 1] as u64;
    }
    while acc >> 32 != 0 {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// `csum_fold`: the complement of `sum` folded to 16 bits.
#[inline]
pub fn fold(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    let s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

/// `csum_from32to16`: `sum` folded to 16 bits, not complemented.
#[inline]
pub fn from32to16(sum: u32) -> u16 {
    (sum.wrapping_add(sum.rotate_left(16)) >> 16) as u16
}

/// `csum16_add`.
#[inline]
fn add16(a: u16, b: u16) -> u16 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(carry as u16)
}

/// `csum_block_add`: adds the partial sum of a block that starts at byte `offset` of the
/// summed data (an odd offset swaps the block's bytes into place).
#[inline]
pub fn block_add(csum: u32, block: u32, offset: u32) -> u32 {
    let block = if offset & 1 != 0 {
        block.rotate_right(8)
    } else {
        block
    };
    add(csum, block)
}

/// `csum_block_sub`.
#[inline]
pub fn block_sub(csum: u32, block: u32, offset: u32) -> u32 {
    block_add(csum, !block, offset)
}

/// `csum_replace_by_diff`: applies the partial-sum difference `diff` to the checksum field.
#[inline]
pub fn replace_by_diff(field: u16, diff: u32) -> u16 {
    fold(add(diff, !(field as u32)))
}

/// `csum_replace4`: the checksum field after a 32-bit word of the covered data changed from
/// `from` to `to`.
#[inline]
pub fn replace4(field: u16, from: u32, to: u32) -> u16 {
    fold(add(sub(!(field as u32), from), to))
}

/// `csum_replace2`: the same for a 16-bit word.
#[inline]
pub fn replace2(field: u16, from: u16, to: u16) -> u16 {
    !add16(add16(!field, !from), to)
}

/// How a packet's checksum is kept (`skb->ip_summed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum IpSummed {
    /// Nothing is known (`CHECKSUM_NONE`).
    None = 0,
    /// The device verified it (`CHECKSUM_UNNECESSARY`).
    Unnecessary = 1,
    /// `skb->csum` holds the sum of the packet from the network header (`CHECKSUM_COMPLETE`).
    Complete = 2,
    /// The checksum is still to be filled in (`CHECKSUM_PARTIAL`).
    Partial = 3,
}

/// What an L4 checksum update does to the packet's running sum: `inet_proto_csum_replace4`,
/// `_replace2` and `_by_diff` give the new field; with `CHECKSUM_COMPLETE` and a pseudo-header
/// field they also update `skb->csum`.
pub struct L4Update {
    /// The checksum field as it is.
    pub field: u16,
    /// `skb->ip_summed`.
    pub ip_summed: IpSummed,
    /// `skb->csum`.
    pub csum: u32,
    /// The changed data is part of the pseudo header (`BPF_F_PSEUDO_HDR`).
    pub pseudo: bool,
}

impl L4Update {
    /// `inet_proto_csum_replace4`: returns the new field and `skb->csum`. The same as a
    /// by-difference update with the difference of the two words.
    pub fn replace4(&self, from: u32, to: u32) -> (u16, u32) {
        self.replace_by_diff(add(!from, to), false)
    }

    /// `inet_proto_csum_replace_by_diff`; `ipv6` (`BPF_F_IPV6`) leaves `skb->csum` alone.
    pub fn replace_by_diff(&self, diff: u32, ipv6: bool) -> (u16, u32) {
        if self.ip_summed != IpSummed::Partial {
            let field = replace_by_diff(self.field, diff);
            let csum = if self.ip_summed == IpSummed::Complete && self.pseudo && !ipv6 {
                !sub(diff, self.csum)
            } else {
                self.csum
            };
            (field, csum)
        } else if self.pseudo {
            (!fold(add(diff, self.field as u32)), self.csum)
        } else {
            (self.field, self.csum)
        }
    }
}

unsafe extern "C" fn csum_diff(from: u64, from_size: u64, to: u64, to_size: u64, seed: u64) -> u64 {
    // SAFETY: the verifier proved each pointer readable for its size, or NULL with size 0
    // (`ARG_PTR_TO_MEM | PTR_MAYBE_NULL | MEM_RDONLY`, `ARG_CONST_SIZE_OR_ZERO`).
    let block = |p: u64, n: u64| unsafe {
        if n as u32 == 0 {
            &[][..]
        } else {
            core::slice::from_raw_parts(p as *const u8, n as u32 as usize)
        }
    };
    let (from, to) = (block(from, from_size), block(to, to_size));
    let seed = seed as u32;
    let sum = match (from.is_empty(), to.is_empty()) {
        (false, false) => sub(partial(to, seed), partial(from, 0)),
        (true, false) => partial(to, seed),
        (false, true) => !partial(from, !seed),
        (true, true) => seed,
    };
    from32to16(sum) as u64
}

use super::ArgKind::{Anything, ConstSizeOrZero, PtrToMemOrNull};

/// `bpf_csum_diff(from, from_size, to, to_size, seed)`: the checksum difference of two
/// blocks (either may be empty), started from `seed`, folded to 16 bits (Linux 6.18's form:
/// any sizes, `csum_from32to16` of the result).
pub static CSUM_DIFF: super::HelperProto = super::HelperProto {
    func: Some(csum_diff),
    ..super::HelperProto::verifier_only(
        crate::uapi::func::CSUM_DIFF,
        "csum_diff",
        [
            PtrToMemOrNull,
            ConstSizeOrZero,
            PtrToMemOrNull,
            ConstSizeOrZero,
            Anything,
        ],
        super::RetKind::Integer,
    )
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Words as they lie in memory on this (little-endian) machine.
    fn bytes(words: &[u32]) -> alloc::vec::Vec<u8> {
        words.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    #[test]
    fn partial_is_the_end_around_sum() {
        assert_eq!(partial(&[], 0), 0);
        assert_eq!(partial(&bytes(&[0x99aa_bbcc, 0xddee_ff00]), 0), 0x7799_bacd);
        assert_eq!(partial(&bytes(&[u32::MAX]), 0), u32::MAX);
        assert_eq!(partial(&bytes(&[u32::MAX, 1]), 0), 1);
        // Trailing 16-bit word and byte are numbers of their own.
        assert_eq!(partial(&[1, 0, 0, 0, 7], 0), 8);
        assert_eq!(partial(&[1, 0, 0, 0, 2, 3, 9], 0), 1 + 0x0302 + 9);
    }

    /// Figures the host kernel's `bpf_csum_diff` returned (see the test-run oracle): the
    /// difference of two 8-byte blocks, seed 0, folded to 16 bits.
    #[test]
    fn folded_difference_matches_the_kernel() {
        let from = bytes(&[0x1122_3344, 0x5566_7788]);
        let to = bytes(&[0x99aa_bbcc, 0xddee_ff00]);
        let d = sub(partial(&to, 0), partial(&from, 0));
        assert_eq!(from32to16(d), 0x2112);
        assert_eq!(from32to16(0x2345_6789), 0x8ace);
        // Three bytes of `from` against the same `to`.
        let d = sub(partial(&to, 0), partial(&from[..3], 0));
        assert_eq!(from32to16(d), 0xff00);
    }

    #[test]
    fn replace_keeps_a_valid_checksum_valid() {
        // An IPv4 header with a correct checksum: the sum over it folds to 0.
        let mut hdr: [u8; 20] = [
            0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 0x40, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let c = fold(partial(&hdr, 0));
        hdr[10..12].copy_from_slice(&c.to_ne_bytes());
        assert_eq!(fold(partial(&hdr, 0)), 0);
        // Change the destination and update the checksum two ways.
        let field = u16::from_ne_bytes([hdr[10], hdr[11]]);
        let old = u32::from_ne_bytes(hdr[16..20].try_into().unwrap());
        let new = u32::from_ne_bytes([10, 0, 0, 9]);
        let f4 = replace4(field, old, new);
        let old_ttl = u16::from_ne_bytes([hdr[8], hdr[9]]);
        hdr[16..20].copy_from_slice(&new.to_ne_bytes());
        hdr[10..12].copy_from_slice(&f4.to_ne_bytes());
        assert_eq!(fold(partial(&hdr, 0)), 0);
        let new_ttl = u16::from_ne_bytes([0x3f, 1]);
        let f2 = replace2(f4, old_ttl, new_ttl);
        hdr[8..10].copy_from_slice(&new_ttl.to_ne_bytes());
        hdr[10..12].copy_from_slice(&f2.to_ne_bytes());
        assert_eq!(fold(partial(&hdr, 0)), 0);
    }
}
