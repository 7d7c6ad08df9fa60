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

    /// A TCP or UDP tuple from a `struct bpf_sock_tuple` of `len` bytes seen from direction
    /// `dir` (`bpf_nf_ct_tuple_parse`): `EPROTO` for another protocol, `EAFNOSUPPORT` for a
    /// length that is neither the IPv4 nor the IPv6 form.
    ///
    /// # Safety
    /// `bpf_tuple` points to at least `len` readable bytes.
    pub unsafe fn from_bpf(bpf_tuple: *const u8, len: u32, protonum: u8, dir: u8) -> Result<Tuple> {
        if protonum != IPPROTO_TCP && protonum != IPPROTO_UDP {
            return Err(Errno::EPROTO);
        }
        let (alen, l3num) = match len {
            SOCK_TUPLE_V4 => (4, AF_INET),
            SOCK_TUPLE_V6 => (16, AF_INET6),
            _ => return Err(Errno::EAFNOSUPPORT),
        };
        let mut saddr = [0u8; 16];
        let mut daddr = [0u8; 16];
        let mut ports = [0u8; 4];
        // SAFETY: the caller guarantees `len` = 2 * alen + 4 readable bytes.
        unsafe {
            core::ptr::copy_nonoverlapping(bpf_tuple, saddr.as_mut_ptr(), alen);
            core::ptr::copy_nonoverlapping(bpf_tuple.add(alen), daddr.as_mut_ptr(), alen);
            core::ptr::copy_nonoverlapping(bpf_tuple.add(2 * alen), ports.as_mut_ptr(), 4);
        }
        let (sport, dport) = ([ports[0], ports[1]], [ports[2], ports[3]]);
        let (a, b, pa, pb) = if dir == DIR_ORIGINAL {
            (saddr, daddr, sport, dport)
        } else {
            (daddr, saddr, dport, sport)
        };
        Ok(Tuple {
            src: Man {
                u3: a,
                u: pa,
                l3num,
            },
            dst: Dst {
                u3: b,
                u: pb,
                protonum,
                dir,
            },
        })
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

/// The bucket hash of a tuple in zone id `zone_id` of namespace `net`
/// (`hash_conntrack_raw`): every field but the direction, mixed with a per-table seed.
#[inline]
pub fn hash(seed: u64, t: &Tuple, zone_id: u16, net: u32) -> u32 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let w = t.words();
    let mut h = seed ^ ((zone_id as u64) << 32 | net as u64).wrapping_mul(K);
    for (i, x) in w.iter().enumerate() {
        let x = if i == 4 { x & NO_DIR } else { *x };
        h = (h ^ x).wrapping_mul(K).rotate_left(29);
    }
    // MurmurHash3's finalizer: every input bit reaches the low bits buckets are taken from.
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
        assert_eq!(hash(7, &o, 0, 0), hash(7, &o2, 0, 0));
        assert_ne!(hash(7, &o, 0, 0), hash(7, &o, 1, 0));
        assert_ne!(hash(7, &o, 0, 0), hash(7, &o, 0, 1));
    }

    /// Tuples that differ in one port byte spread over the buckets in both directions.
    #[test]
    fn the_low_bits_see_every_field() {
        let mut per_bucket = [0u32; 32];
        for i in 0..256u16 {
            let t = Tuple::new(&[10, 0, 0, 1], &[10, 1, 0, 1], i, 80, IPPROTO_TCP).unwrap();
            per_bucket[(hash(42, &t, 0, 0) & 31) as usize] += 1;
            per_bucket[(hash(42, &t.invert().unwrap(), 0, 0) & 31) as usize] += 1;
        }
        assert!(
            per_bucket.iter().all(|&n| (4..=32).contains(&n)),
            "{per_bucket:?}"
        );
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
