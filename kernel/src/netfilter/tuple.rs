//! Connection tuples and zones: `struct nf_conntrack_tuple`, `struct nf_conntrack_zone`
//! (`include/net/netfilter/nf_conntrack_tuple.h`, `nf_conntrack_zones.h`), the BPF tuple
//! parse of `bpf_nf_ct_tuple_parse` (`net/netfilter/nf_conntrack_bpf.c`), tuple inversion
//! (`nf_ct_invert_tuple`) and the bucket hash (`hash_conntrack_raw` of
//! `net/netfilter/nf_conntrack_core.c`, with kbpf's own mixing function).
//!
//! A tuple is 40 bytes laid out as Linux's on x86-64 (programs read `tuplehash[dir].tuple`
//! through `struct nf_conn`): the source address, port (or ICMP id) and address family, then
//! the destination address, port (or ICMP type and code), protocol and direction. Addresses
//! and ports are in network byte order, as in the kernel.

use crate::{Errno, Result};
use core::fmt;

/// `AF_INET` (`NFPROTO_IPV4`).
pub const AF_INET: u16 = 2;
/// `AF_INET6` (`NFPROTO_IPV6`).
pub const AF_INET6: u16 = 10;
/// `IPPROTO_ICMP`.
pub const IPPROTO_ICMP: u8 = 1;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u8 = 17;
/// `IP_CT_DIR_ORIGINAL`.
pub const DIR_ORIGINAL: u8 = 0;
/// `IP_CT_DIR_REPLY`.
pub const DIR_REPLY: u8 = 1;

/// `sizeof(((struct bpf_sock_tuple *)0)->ipv4)`.
pub const SOCK_TUPLE_V4: u32 = 12;
/// `sizeof(((struct bpf_sock_tuple *)0)->ipv6)`.
pub const SOCK_TUPLE_V6: u32 = 36;

/// One end of a tuple's source side (`struct nf_conntrack_man`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Man {
    /// Address (`union nf_inet_addr`): IPv4 in the first four bytes.
    pub u3: [u8; 16],
    /// Port, or ICMP id (`union nf_conntrack_man_proto`), network order.
    pub u: [u8; 2],
    /// Address family (`l3num`).
    pub l3num: u16,
}

/// A tuple's destination side.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dst {
    /// Address.
    pub u3: [u8; 16],
    /// Port (network order), or ICMP type then code.
    pub u: [u8; 2],
    /// Layer-4 protocol.
    pub protonum: u8,
    /// Which direction of its connection this tuple is (`IP_CT_DIR_*`).
    pub dir: u8,
}

/// `struct nf_conntrack_tuple`.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tuple {
    /// Source.
    pub src: Man,
    /// Destination.
    pub dst: Dst,
}

static_assertions::const_assert_eq!(core::mem::size_of::<Tuple>(), 40);
static_assertions::const_assert_eq!(core::mem::offset_of!(Tuple, dst), 20);

/// The last word of a tuple without its direction byte (byte 39, the top byte of word 4).
const NO_DIR: u64 = !(0xff << 56);

/// `NF_CT_DEFAULT_ZONE_ID`.
pub const DEFAULT_ZONE_ID: u16 = 0;
/// `NF_CT_ZONE_DIR_ORIG`.
pub const ZONE_DIR_ORIG: u8 = 1 << DIR_ORIGINAL;
/// `NF_CT_ZONE_DIR_REPL`.
pub const ZONE_DIR_REPL: u8 = 1 << DIR_REPLY;
/// `NF_CT_DEFAULT_ZONE_DIR`: the zone applies to both directions.
pub const DEFAULT_ZONE_DIR: u8 = ZONE_DIR_ORIG | ZONE_DIR_REPL;

/// `struct nf_conntrack_zone`: an id and the directions it applies to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zone {
    /// Zone id.
    pub id: u16,
    /// `NF_CT_FLAG_MARK` and friends (kbpf keeps them 0).
    pub flags: u8,
    /// `ZONE_DIR_*` bits.
    pub dir: u8,
}

impl Zone {
    /// `nf_ct_zone_dflt`.
    pub const DEFAULT: Zone = Zone {
        id: DEFAULT_ZONE_ID,
        flags: 0,
        dir: DEFAULT_ZONE_DIR,
    };

    /// `nf_ct_zone_init`: zone `id` for the directions `dir` names.
    pub const fn new(id: u16, dir: u8) -> Zone {
        Zone { id, flags: 0, dir }
    }

    /// `nf_ct_zone_id`: the zone's id for tuples of direction `dir`, the default id for the
    /// directions it does not apply to.
    #[inline]
    pub fn id_for(&self, dir: u8) -> u16 {
        if self.dir & (1 << dir) != 0 {
            self.id
        } else {
            DEFAULT_ZONE_ID
        }
    }
}

impl Default for Zone {
    fn default() -> Zone {
        Zone::DEFAULT
    }
}

impl Tuple {
    /// The tuple as five little-endian words (for hashing and comparing).
    #[inline]
    pub fn words(&self) -> [u64; 5] {
        // SAFETY: `Tuple` is `repr(C, align(8))`, 40 bytes of plain integers with no padding
        // (checked above), so it is valid to read as five aligned `u64`s.
        unsafe { *(self as *const Tuple as *const [u64; 5]) }
    }

    /// Whether the two tuples are equal, directions aside (`nf_ct_tuple_equal`).
    #[inline]
    pub fn same_flow(&self, other: &Tuple) -> bool {
        let (a, b) = (self.words(), other.words());
        a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && (a[4] ^ b[4]) & NO_DIR == 0
    }

    /// The IPv4 source address, network order as stored.
    pub fn src_v4(&self) -> [u8; 4] {
        [
            self.src.u3[0],
            self.src.u3[1],
            self.src.u3[2],
            self.src.u3[3],
        ]
    }

    /// `nf_ct_invert_tuple`: the tuple of the other direction. ICMP types that have no reply
    /// type (anything but echo, timestamp, info and address-mask requests and replies) cannot
    /// be inverted (`EINVAL`).
    pub fn invert(&self) -> Result<Tuple> {
        let mut t = Tuple {
            src: Man {
                u3: self.dst.u3,
                u: self.src.u,
                l3num: self.src.l3num,
            },
            dst: Dst {
                u3: self.src.u3,
                u: self.dst.u,
                protonum: self.dst.protonum,
                dir: self.dst.dir ^ 1,
            },
        };
        match self.dst.protonum {
            IPPROTO_ICMP => {
                // The id stays; the type maps to its counterpart (`icmp_invert_tuple`).
                t.dst.u[0] = icmp_inverse(self.dst.u[0]).ok_or(Errno::EINVAL)?;
            }
            _ => {
                t.src.u = self.dst.u;
                t.dst.u = self.src.u;
            }
        }
        Ok(t)
    }

    /// The tuple with these five words (the inverse of [`Tuple::words`]).
    #[inline]
    pub fn from_words(w: [u64; 5]) -> Tuple {
        // SAFETY: as in `words`: every bit pattern of the 40 bytes is a valid `Tuple`.
        unsafe { core::mem::transmute::<[u64; 5], Tuple>(w) }
    }

    /// A TCP or UDP tuple from a `struct bpf_sock_tuple` of `len` bytes seen from direction
    /// `dir` (`bpf_nf_ct_tuple_parse`): `EPROTO` for another protocol, `EAFNOSUPPORT` for a
    /// length that is neither the IPv4 nor the IPv6 form. Built word by word with fixed-size
    /// loads (this is on the lookup path).
    ///
    /// # Safety
    /// `bpf_tuple` points to at least `len` readable bytes.
    #[inline]
    pub unsafe fn from_bpf(bpf_tuple: *const u8, len: u32, protonum: u8, dir: u8) -> Result<Tuple> {
        if protonum != IPPROTO_TCP && protonum != IPPROTO_UDP {
            return Err(Errno::EPROTO);
        }
        // Native-endian loads of network-order bytes: the words hold the bytes in memory order.
        let rd32 = |off: usize| {
            // SAFETY: `off + 4 <= len` for every use below (caller contract).
            unsafe { core::ptr::read_unaligned(bpf_tuple.add(off) as *const u32) as u64 }
        };
        let rd64 = |off: usize| {
            // SAFETY: `off + 8 <= len` for every use below (caller contract).
            unsafe { core::ptr::read_unaligned(bpf_tuple.add(off) as *const u64) }
        };
        let rd16 = |off: usize| {
            // SAFETY: `off + 2 <= len` for every use below (caller contract).
            unsafe { core::ptr::read_unaligned(bpf_tuple.add(off) as *const u16) as u64 }
        };
        // (source address words, destination address words, ports, family)
        let (sa, da, sp, dp, l3) = match len {
            SOCK_TUPLE_V4 => ([rd32(0), 0], [rd32(4), 0, 0], rd16(8), rd16(10), AF_INET),
            SOCK_TUPLE_V6 => (
                [rd64(0), rd64(8)],
                [rd32(16), rd64(20), rd32(28)],
                rd16(32),
                rd16(34),
                AF_INET6,
            ),
            _ => return Err(Errno::EAFNOSUPPORT),
        };
        let (sa, da, sp, dp) = if dir == DIR_ORIGINAL {
            (sa, da, sp, dp)
        } else {
            // The reply direction: the source side is the given destination.
            let d = [da[0] | da[1] << 32, da[1] >> 32 | da[2] << 32];
            let s = [
                sa[0] & 0xffff_ffff,
                sa[0] >> 32 | (sa[1] & 0xffff_ffff) << 32,
                sa[1] >> 32,
            ];
            (d, s, dp, sp)
        };
        Ok(Tuple::from_words([
            sa[0],
            sa[1],
            sp | (l3 as u64) << 16 | da[0] << 32,
            da[1],
            da[2] | dp << 32 | (protonum as u64) << 48 | (dir as u64) << 56,
        ]))
    }

    /// A tuple of direction `dir` from parts (addresses of 4 or 16 bytes, ports in host order;
    /// for ICMP `sport` is the id and `dport` is type << 8 | code).
    pub fn new(src: &[u8], dst: &[u8], sport: u16, dport: u16, protonum: u8) -> Result<Tuple> {
        let l3num = match (src.len(), dst.len()) {
            (4, 4) => AF_INET,
            (16, 16) => AF_INET6,
            _ => return Err(Errno::EAFNOSUPPORT),
        };
        let mut t = Tuple::default();
        t.src.u3[..src.len()].copy_from_slice(src);
        t.dst.u3[..dst.len()].copy_from_slice(dst);
        t.src.u = sport.to_be_bytes();
        t.dst.u = dport.to_be_bytes();
        t.src.l3num = l3num;
        t.dst.protonum = protonum;
        t.dst.dir = DIR_ORIGINAL;
        Ok(t)
    }
}

/// `invmap` of `nf_conntrack_proto_icmp.c`: the reply type of an ICMP query type.
fn icmp_inverse(ty: u8) -> Option<u8> {
    Some(match ty {
        8 => 0,
        0 => 8,
        13 => 14,
        14 => 13,
        15 => 16,
        16 => 15,
        17 => 18,
        18 => 17,
        _ => return None,
    })
}

/// The secret a table hashes with: odd multipliers drawn from its seed.
#[derive(Clone, Copy, Debug)]
pub struct HashKey([u64; 6]);

impl HashKey {
    /// The multipliers for `seed` (splitmix64 steps, forced odd).
    pub fn new(seed: u64) -> HashKey {
        let mut x = seed;
        let mut k = [0u64; 6];
        for m in k.iter_mut() {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            *m = (z ^ (z >> 31)) | 1;
        }
        HashKey(k)
    }
}

/// The bucket hash of a tuple in zone id `zone_id` of namespace `net`
/// (`hash_conntrack_raw`, which uses siphash): every field but the direction. Each word is
/// multiplied by its own secret odd constant (independent multiplies, so the latency is one
/// multiply), then MurmurHash3's finalizer spreads every bit into the low ones buckets are
/// taken from.
#[inline]
pub fn hash(key: &HashKey, t: &Tuple, zone_id: u16, net: u32) -> u32 {
    let w = t.words();
    let k = &key.0;
    let mut h = w[0].wrapping_mul(k[0])
        ^ w[1].wrapping_mul(k[1])
        ^ w[2].wrapping_mul(k[2])
        ^ w[3].wrapping_mul(k[3])
        ^ (w[4] & NO_DIR).wrapping_mul(k[4])
        ^ ((zone_id as u64) << 32 | net as u64).wrapping_mul(k[5]);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    (h ^ (h >> 33)) as u32
}

impl fmt::Display for Tuple {
    /// `src=A dst=B sport=P dport=Q` (ICMP: `type=T code=C id=I`), as conntrack(8) prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = |f: &mut fmt::Formatter<'_>, a: &[u8; 16]| -> fmt::Result {
            if self.src.l3num == AF_INET6 {
                for (i, pair) in a.chunks(2).enumerate() {
                    if i > 0 {
                        f.write_str(":")?;
                    }
                    write!(f, "{:x}", u16::from_be_bytes([pair[0], pair[1]]))?;
                }
                Ok(())
            } else {
                write!(f, "{}.{}.{}.{}", a[0], a[1], a[2], a[3])
            }
        };
        f.write_str("src=")?;
        addr(f, &self.src.u3)?;
        f.write_str(" dst=")?;
        addr(f, &self.dst.u3)?;
        if self.dst.protonum == IPPROTO_ICMP {
            write!(
                f,
                " type={} code={} id={}",
                self.dst.u[0],
                self.dst.u[1],
                u16::from_be_bytes(self.src.u)
            )
        } else {
            write!(
                f,
                " sport={} dport={}",
                u16::from_be_bytes(self.src.u),
                u16::from_be_bytes(self.dst.u)
            )
        }
    }
}

/// The protocol's name as conntrack(8) prints it.
pub fn proto_name(p: u8) -> &'static str {
    match p {
        IPPROTO_TCP => "tcp",
        IPPROTO_UDP => "udp",
        IPPROTO_ICMP => "icmp",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn v4() -> [u8; 12] {
        [10, 0, 0, 1, 10, 1, 0, 1, 0x04, 0xd2, 0x00, 0x50]
    }

    #[test]
    fn parse_both_directions_and_invert() {
        let b = v4();
        // SAFETY: 12 readable bytes.
        let o = unsafe { Tuple::from_bpf(b.as_ptr(), 12, IPPROTO_TCP, DIR_ORIGINAL) }.unwrap();
        // SAFETY: as above.
        let r = unsafe { Tuple::from_bpf(b.as_ptr(), 12, IPPROTO_TCP, DIR_REPLY) }.unwrap();
        assert_eq!(
            o.to_string(),
            "src=10.0.0.1 dst=10.1.0.1 sport=1234 dport=80"
        );
        assert_eq!(
            r.to_string(),
            "src=10.1.0.1 dst=10.0.0.1 sport=80 dport=1234"
        );
        assert_eq!(o.invert().unwrap(), r);
        assert!(!o.same_flow(&r));
        let mut o2 = o;
        o2.dst.dir = 1;
        assert!(o.same_flow(&o2));
        let k = HashKey::new(7);
        assert_eq!(hash(&k, &o, 0, 0), hash(&k, &o2, 0, 0));
        assert_ne!(hash(&k, &o, 0, 0), hash(&k, &o, 1, 0));
        assert_ne!(hash(&k, &o, 0, 0), hash(&k, &o, 0, 1));
        assert_ne!(hash(&k, &o, 0, 0), hash(&HashKey::new(8), &o, 0, 0));
    }

    /// Tuples that differ in one port byte spread over the buckets in both directions.
    #[test]
    fn the_low_bits_see_every_field() {
        let mut per_bucket = [0u32; 32];
        let k = HashKey::new(42);
        for i in 0..256u16 {
            let t = Tuple::new(&[10, 0, 0, 1], &[10, 1, 0, 1], i, 80, IPPROTO_TCP).unwrap();
            per_bucket[(hash(&k, &t, 0, 0) & 31) as usize] += 1;
            per_bucket[(hash(&k, &t.invert().unwrap(), 0, 0) & 31) as usize] += 1;
        }
        assert!(
            per_bucket.iter().all(|&n| (4..=32).contains(&n)),
            "{per_bucket:?}"
        );
    }

    /// The word-built parse against a byte-by-byte reading of the same tuple, both forms and
    /// both directions.
    #[test]
    fn parse_matches_the_fields() {
        let mut b = [0u8; 36];
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8 + 1;
        }
        for (len, alen) in [(12u32, 4usize), (36, 16)] {
            // SAFETY: 36 readable bytes.
            let o = unsafe { Tuple::from_bpf(b.as_ptr(), len, IPPROTO_UDP, DIR_ORIGINAL) }.unwrap();
            // SAFETY: as above.
            let r = unsafe { Tuple::from_bpf(b.as_ptr(), len, IPPROTO_UDP, DIR_REPLY) }.unwrap();
            let (s, d) = (&b[..alen], &b[alen..2 * alen]);
            let sp = u16::from_be_bytes([b[2 * alen], b[2 * alen + 1]]);
            let dp = u16::from_be_bytes([b[2 * alen + 2], b[2 * alen + 3]]);
            let want = Tuple::new(s, d, sp, dp, IPPROTO_UDP).unwrap();
            assert_eq!(o, want, "{len}");
            assert_eq!(r, want.invert().unwrap(), "{len}");
        }
    }

    #[test]
    fn parse_errors_in_kernel_order() {
        let b = [0u8; 36];
        // SAFETY: 36 readable bytes throughout.
        unsafe {
            assert_eq!(
                Tuple::from_bpf(b.as_ptr(), 11, IPPROTO_ICMP, 0),
                Err(Errno::EPROTO)
            );
            assert_eq!(
                Tuple::from_bpf(b.as_ptr(), 11, IPPROTO_UDP, 0),
                Err(Errno::EAFNOSUPPORT)
            );
            let t = Tuple::from_bpf(b.as_ptr(), 36, IPPROTO_UDP, 0).unwrap();
            assert_eq!(t.src.l3num, AF_INET6);
        }
    }

    #[test]
    fn icmp_inverts_the_type_and_keeps_the_id() {
        let t = Tuple::new(&[1, 2, 3, 4], &[5, 6, 7, 8], 77, 8 << 8, IPPROTO_ICMP).unwrap();
        let r = t.invert().unwrap();
        assert_eq!(r.dst.u, [0, 0]);
        assert_eq!(r.src.u, t.src.u);
        assert_eq!(t.to_string(), "src=1.2.3.4 dst=5.6.7.8 type=8 code=0 id=77");
        let bad = Tuple::new(&[1, 2, 3, 4], &[5, 6, 7, 8], 77, 3 << 8, IPPROTO_ICMP).unwrap();
        assert_eq!(bad.invert(), Err(Errno::EINVAL));
    }

    #[test]
    fn zones_apply_per_direction() {
        let z = Zone::new(10, ZONE_DIR_REPL);
        assert_eq!(z.id_for(DIR_ORIGINAL), 0);
        assert_eq!(z.id_for(DIR_REPLY), 10);
        assert_eq!(Zone::new(10, DEFAULT_ZONE_DIR).id_for(DIR_ORIGINAL), 10);
    }
}
