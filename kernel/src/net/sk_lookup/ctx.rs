//! The sk_lookup context: `struct bpf_sk_lookup` as programs see it (the final uapi layout,
//! `include/uapi/linux/bpf.h`), the kernel-side [`SkLookupKern`] their loads are rewritten to
//! (`struct bpf_sk_lookup_kern`, `include/linux/filter.h`), which accesses are allowed
//! (`sk_lookup_is_valid_access`) and how they are rewritten (`sk_lookup_convert_ctx_access`,
//! both in `net/core/filter.c`).
//!
//! Rules (final kernel; `remote_port` is `__be16` plus two bytes of zero padding):
//! * `sk` (offset 0): 8-byte reads only; the result is a socket or NULL.
//! * the 4-byte fields: 1-, 2- and 4-byte reads at any aligned offset inside them;
//! * `remote_port`: 1- and 2-byte reads, and the legacy 4-byte read at 36 (narrowed to the
//!   port); the padding at 38: 1- and 2-byte reads, which give 0;
//! * nothing past `ingress_ifindex`, nothing misaligned, no writes.
//!
//! The rewrite: every allowed read becomes one load of the kernel field's bytes that the uapi
//! bytes stand for, or the constant 0 where the uapi bytes lie past a field the kernel keeps
//! narrower (`family`, `protocol` and `local_port` are `u16` there): the program gets exactly
//! the bytes of the uapi struct on this little-endian machine. (Linux 6.18 gives the whole
//! field for a 2-byte read of the upper half of those three — a narrow-load quirk of
//! `convert_ctx_accesses`; kbpf returns the uapi's zero bytes. `shim/tests/sk_lookup_host.rs`
//! lists the three reads as the known differences.)

use crate::insn::{Insn, Size, ldx_mem, mov64_imm};
use crate::net::sock::Sock;

/// `struct bpf_sk_lookup` (uapi): 72 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfSkLookup {
    /// `union { struct bpf_sock *sk; __u64 cookie; }`: the selected socket to a program, its
    /// cookie in a test run's output.
    pub cookie: u64,
    /// `family`: `AF_INET` or `AF_INET6`.
    pub family: u32,
    /// `protocol`: `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub protocol: u32,
    /// `remote_ip4`, network byte order.
    pub remote_ip4: u32,
    /// `remote_ip6[4]`, network byte order.
    pub remote_ip6: [u32; 4],
    /// `remote_port`, `__be16` (network byte order).
    pub remote_port: u16,
    /// Zero padding after `remote_port`.
    pub pad: u16,
    /// `local_ip4`, network byte order.
    pub local_ip4: u32,
    /// `local_ip6[4]`, network byte order.
    pub local_ip6: [u32; 4],
    /// `local_port`, host byte order.
    pub local_port: u32,
    /// `ingress_ifindex`.
    pub ingress_ifindex: u32,
}

/// Offsets in `struct bpf_sk_lookup`.
pub mod off {
    #![allow(missing_docs)]
    pub const SK: i64 = 0;
    pub const FAMILY: i64 = 8;
    pub const PROTOCOL: i64 = 12;
    pub const REMOTE_IP4: i64 = 16;
    pub const REMOTE_IP6: i64 = 20;
    pub const REMOTE_PORT: i64 = 36;
    pub const PAD: i64 = 38;
    pub const LOCAL_IP4: i64 = 40;
    pub const LOCAL_IP6: i64 = 44;
    pub const LOCAL_PORT: i64 = 60;
    pub const INGRESS_IFINDEX: i64 = 64;
    /// `sizeof(struct bpf_sk_lookup)`.
    pub const SIZE: i64 = 72;
}

static_assertions::const_assert_eq!(core::mem::size_of::<BpfSkLookup>(), off::SIZE as usize);
static_assertions::const_assert_eq!(core::mem::offset_of!(BpfSkLookup, family), 8);
static_assertions::const_assert_eq!(core::mem::offset_of!(BpfSkLookup, protocol), 12);
static_assertions::const_assert_eq!(core::mem::offset_of!(BpfSkLookup, remote_ip4), 16);
static_assertions::const_assert_eq!(core::mem::offset_of!(BpfSkLookup, remote_ip6), 20);
static_assertions::const_assert_eq!(core::mem::offset_of!(BpfSkLookup, remote_port), 36);
static_assertions::const_assert_eq!(core::mem::offset_of!(BpfSkLookup, pad), 38);
static_assertions::const_assert_eq!(core::mem::offset_of!(BpfSkLookup, local_ip4), 40);
static_assertions::const_assert_eq!(core::mem::offset_of!(BpfSkLookup, local_ip6), 44);
static_assertions::const_assert_eq!(core::mem::offset_of!(BpfSkLookup, local_port), 60);
static_assertions::const_assert_eq!(core::mem::offset_of!(BpfSkLookup, ingress_ifindex), 64);

impl BpfSkLookup {
    /// The struct as bytes (native order).
    pub fn to_bytes(&self) -> [u8; 72] {
        let mut b = [0u8; 72];
        let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(0, &self.cookie.to_ne_bytes());
        put(8, &self.family.to_ne_bytes());
        put(12, &self.protocol.to_ne_bytes());
        put(16, &self.remote_ip4.to_ne_bytes());
        for (i, w) in self.remote_ip6.iter().enumerate() {
            put(20 + 4 * i, &w.to_ne_bytes());
        }
        put(36, &self.remote_port.to_ne_bytes());
        put(38, &self.pad.to_ne_bytes());
        put(40, &self.local_ip4.to_ne_bytes());
        for (i, w) in self.local_ip6.iter().enumerate() {
            put(44 + 4 * i, &w.to_ne_bytes());
        }
        put(60, &self.local_port.to_ne_bytes());
        put(64, &self.ingress_ifindex.to_ne_bytes());
        b
    }

    /// The struct from its bytes (native order).
    pub fn from_bytes(b: &[u8; 72]) -> BpfSkLookup {
        let u32_at = |at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u16_at = |at: usize| u16::from_ne_bytes([b[at], b[at + 1]]);
        let mut cookie = [0u8; 8];
        cookie.copy_from_slice(&b[..8]);
        BpfSkLookup {
            cookie: u64::from_ne_bytes(cookie),
            family: u32_at(8),
            protocol: u32_at(12),
            remote_ip4: u32_at(16),
            remote_ip6: [0, 1, 2, 3].map(|i| u32_at(20 + 4 * i)),
            remote_port: u16_at(36),
            pad: u16_at(38),
            local_ip4: u32_at(40),
            local_ip6: [0, 1, 2, 3].map(|i| u32_at(44 + 4 * i)),
            local_port: u32_at(60),
            ingress_ifindex: u32_at(64),
        }
    }
}

/// `struct bpf_sk_lookup_kern`: the context sk_lookup programs run on. The addresses are held
/// in place (the kernel points at them); the fields of the other family are zero.
#[repr(C)]
#[derive(Debug)]
pub struct SkLookupKern {
    /// The selected socket (`selected_sk`), or null.
    pub selected_sk: *const Sock,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub protocol: u16,
    /// The remote port, network byte order in memory.
    pub sport: u16,
    /// The local port, host order.
    pub dport: u16,
    /// Remote IPv4 address (`v4.saddr`), network order in memory.
    pub saddr4: u32,
    /// Local IPv4 address (`v4.daddr`).
    pub daddr4: u32,
    /// Remote IPv6 address (`v6.saddr`), four words in network order.
    pub saddr6: [u32; 4],
    /// Local IPv6 address (`v6.daddr`).
    pub daddr6: [u32; 4],
    /// `ingress_ifindex`.
    pub ingress_ifindex: u32,
    /// `BPF_SK_LOOKUP_F_NO_REUSEPORT` was given with the selection: 1, else 0. A whole word,
    /// not a `bool`: the run loop reads it right after `bpf_sk_assign` wrote it, and a byte
    /// store read back wider cannot be forwarded (a stall of most of a program's cost).
    pub no_reuseport: u32,
}

/// Offsets in [`SkLookupKern`] that rewritten loads use.
pub mod kern {
    #![allow(missing_docs)]
    pub const SELECTED_SK: usize = core::mem::offset_of!(super::SkLookupKern, selected_sk);
    pub const FAMILY: usize = core::mem::offset_of!(super::SkLookupKern, family);
    pub const PROTOCOL: usize = core::mem::offset_of!(super::SkLookupKern, protocol);
    pub const SPORT: usize = core::mem::offset_of!(super::SkLookupKern, sport);
    pub const DPORT: usize = core::mem::offset_of!(super::SkLookupKern, dport);
    pub const SADDR4: usize = core::mem::offset_of!(super::SkLookupKern, saddr4);
    pub const DADDR4: usize = core::mem::offset_of!(super::SkLookupKern, daddr4);
    pub const SADDR6: usize = core::mem::offset_of!(super::SkLookupKern, saddr6);
    pub const DADDR6: usize = core::mem::offset_of!(super::SkLookupKern, daddr6);
    pub const INGRESS_IFINDEX: usize = core::mem::offset_of!(super::SkLookupKern, ingress_ifindex);
}

impl SkLookupKern {
    /// The context a lookup of `t` starts from: nothing selected.
    pub fn new(t: &super::super::lookup::Tuple) -> SkLookupKern {
        let v4 = t.family == crate::net::addr::Family::Inet;
        SkLookupKern {
            selected_sk: core::ptr::null(),
            family: t.family as u16,
            protocol: t.proto as u16,
            sport: u16::from_ne_bytes(t.remote.port.to_be_bytes()),
            dport: t.local.port,
            saddr4: if v4 { t.remote.addr.word4() } else { 0 },
            daddr4: if v4 { t.local.addr.word4() } else { 0 },
            saddr6: if v4 { [0; 4] } else { t.remote.addr.words() },
            daddr6: if v4 { [0; 4] } else { t.local.addr.words() },
            ingress_ifindex: t.ifindex,
            no_reuseport: 0,
        }
    }

    /// The context as a program's R1.
    #[inline]
    pub fn as_ctx(&mut self) -> u64 {
        self as *mut SkLookupKern as u64
    }
}

/// A kernel field: offset and size.
type KernField = (usize, usize);

/// Where an allowed uapi read lands: the uapi field's start and size, and the kernel field
/// holding its bytes; `None` for the padding (always 0).
fn field(off: i64) -> Option<(i64, i64, Option<KernField>)> {
    use off::*;
    let within = |start: i64, len: i64| (start..start + len).contains(&off);
    Some(match off {
        _ if within(SK, 8) => (SK, 8, Some((kern::SELECTED_SK, 8))),
        _ if within(FAMILY, 4) => (FAMILY, 4, Some((kern::FAMILY, 2))),
        _ if within(PROTOCOL, 4) => (PROTOCOL, 4, Some((kern::PROTOCOL, 2))),
        _ if within(REMOTE_IP4, 4) => (REMOTE_IP4, 4, Some((kern::SADDR4, 4))),
        _ if within(REMOTE_IP6, 16) => {
            let w = (off - REMOTE_IP6) & !3;
            (REMOTE_IP6 + w, 4, Some((kern::SADDR6 + w as usize, 4)))
        }
        _ if within(REMOTE_PORT, 2) => (REMOTE_PORT, 2, Some((kern::SPORT, 2))),
        _ if within(PAD, 2) => (PAD, 2, None),
        _ if within(LOCAL_IP4, 4) => (LOCAL_IP4, 4, Some((kern::DADDR4, 4))),
        _ if within(LOCAL_IP6, 16) => {
            let w = (off - LOCAL_IP6) & !3;
            (LOCAL_IP6 + w, 4, Some((kern::DADDR6 + w as usize, 4)))
        }
        _ if within(LOCAL_PORT, 4) => (LOCAL_PORT, 4, Some((kern::DPORT, 2))),
        _ if within(INGRESS_IFINDEX, 4) => (INGRESS_IFINDEX, 4, Some((kern::INGRESS_IFINDEX, 4))),
        _ => return None,
    })
}

/// `sk_lookup_is_valid_access`: whether a `size`-byte access at `off` is allowed.
pub fn is_valid_access(off: i64, size: usize, write: bool) -> bool {
    let size = size as i64;
    if !(0..off::SIZE).contains(&off) || size == 0 || off % size != 0 || write {
        return false;
    }
    let Some((start, len, _)) = field(off) else {
        return false;
    };
    match start {
        off::SK => size == 8,
        // The legacy u32 read of remote_port.
        off::REMOTE_PORT if size == 4 => true,
        // `bpf_ctx_narrow_access_ok`: a power of two no wider than the field.
        _ => size <= len && size & (size - 1) == 0,
    }
}

/// Whether the read at `off` gives the selected socket (a socket-or-NULL pointer).
pub fn is_sk(off: i64) -> bool {
    off == off::SK
}

/// `sk_lookup_convert_ctx_access` for an allowed read of `size` bytes at `off` into `dst`
/// from the context in `src`: one instruction.
pub fn convert_load(dst: u8, src: u8, off: i64, size: usize) -> Option<Insn> {
    let (start, _, kfield) = field(off)?;
    let Some((koff, ksize)) = kfield else {
        return Some(mov64_imm(dst, 0));
    };
    let inner = (off - start) as usize;
    if inner >= ksize {
        return Some(mov64_imm(dst, 0));
    }
    let width = size.min(ksize - inner);
    let sz = match width {
        1 => Size::B,
        2 => Size::H,
        4 => Size::W,
        _ => Size::DW,
    };
    Some(ldx_mem(sz, dst, src, (koff + inner) as i16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_table() {
        // SK-01, SK-02: sk is 8 bytes only.
        assert!(is_valid_access(0, 8, false));
        for size in [1, 2, 4] {
            for o in (0..8).step_by(size) {
                assert!(!is_valid_access(o, size, false), "sk {o}/{size}");
            }
        }
        // SK-03, SK-04, SK-05.
        for f in [8, 12, 16, 20, 24, 28, 32, 40, 44, 48, 52, 56, 60, 64] {
            assert!(is_valid_access(f, 4, false));
            assert!(is_valid_access(f, 2, false) && is_valid_access(f + 2, 2, false));
            for b in 0..4 {
                assert!(is_valid_access(f + b, 1, false));
            }
            assert!(!is_valid_access(f & !7, 8, false) || f & !7 == 0);
        }
        // SK-06, SK-07, SK-08.
        assert!(is_valid_access(36, 1, false) && is_valid_access(37, 1, false));
        assert!(is_valid_access(36, 2, false) && is_valid_access(36, 4, false));
        assert!(is_valid_access(38, 1, false) && is_valid_access(39, 1, false));
        assert!(is_valid_access(38, 2, false));
        // SK-09, SK-10, SK-11.
        assert!(!is_valid_access(72, 4, false) && !is_valid_access(68, 4, false));
        assert!(!is_valid_access(9, 4, false) && !is_valid_access(10, 4, false));
        for (o, s) in [(0, 8), (0, 4), (0, 1), (8, 4), (72, 4)] {
            assert!(!is_valid_access(o, s, true));
        }
    }

    #[test]
    fn narrow_reads_become_one_load_of_the_right_bytes() {
        assert_eq!(convert_load(2, 1, 0, 8), Some(ldx_mem(Size::DW, 2, 1, 0)));
        let fam = kern::FAMILY as i16;
        assert_eq!(convert_load(2, 1, 8, 4), Some(ldx_mem(Size::H, 2, 1, fam)));
        assert_eq!(
            convert_load(2, 1, 9, 1),
            Some(ldx_mem(Size::B, 2, 1, fam + 1))
        );
        assert_eq!(convert_load(2, 1, 10, 2), Some(mov64_imm(2, 0)));
        assert_eq!(convert_load(2, 1, 38, 2), Some(mov64_imm(2, 0)));
        let sport = kern::SPORT as i16;
        assert_eq!(
            convert_load(3, 1, 36, 4),
            Some(ldx_mem(Size::H, 3, 1, sport))
        );
        let d6 = kern::DADDR6 as i16;
        assert_eq!(
            convert_load(3, 1, 51, 1),
            Some(ldx_mem(Size::B, 3, 1, d6 + 7))
        );
    }
}
