//! The socket-buffer helpers of socket filters and TC programs (`net/core/filter.c`):
//! `bpf_skb_load_bytes`, `bpf_skb_store_bytes`, `bpf_l3_csum_replace`,
//! `bpf_l4_csum_replace`, and TC's `bpf_redirect` (as a verdict: kbpf has no datapath to
//! hand the target to, so a test run reports `TC_ACT_REDIRECT`).
//!
//! kbpf's socket buffers are linear: `data .. data + len` is the whole packet, so the
//! kernel's "make writable" step (`skb_ensure_writable`) reduces to the bounds check it
//! implies (`write_len <= len`, else `-EFAULT`).

use super::csum::{self, IpSummed, L4Update};
use super::{ArgKind, HelperProto, RetKind};
use crate::Errno;
use crate::skb::SkBuff;
use crate::uapi::func;

/// `BPF_F_RECOMPUTE_CSUM`: `bpf_skb_store_bytes` keeps `skb->csum` up to date.
pub const F_RECOMPUTE_CSUM: u64 = 1 << 0;
/// `BPF_F_INVALIDATE_HASH`: `bpf_skb_store_bytes` clears the flow hash.
pub const F_INVALIDATE_HASH: u64 = 1 << 1;
/// `BPF_F_HDR_FIELD_MASK`: the checksum helpers' field size (0, 2 or 4).
pub const F_HDR_FIELD_MASK: u64 = 0xf;
/// `BPF_F_PSEUDO_HDR`: the changed field is part of the pseudo header.
pub const F_PSEUDO_HDR: u64 = 1 << 4;
/// `BPF_F_MARK_MANGLED_0`: a UDP checksum that comes out 0 is written as `0xffff`, and a
/// 0 field (no checksum) is left alone.
pub const F_MARK_MANGLED_0: u64 = 1 << 5;
/// `BPF_F_MARK_ENFORCE`: update the field even when it is 0.
pub const F_MARK_ENFORCE: u64 = 1 << 6;
/// `BPF_F_IPV6`: the by-difference update concerns an IPv6 pseudo header.
pub const F_IPV6: u64 = 1 << 7;
/// `BPF_F_INGRESS`: redirect to the device's ingress.
pub const F_INGRESS: u64 = 1 << 0;
/// `TC_ACT_SHOT`.
pub const TC_ACT_SHOT: u64 = 2;
/// `TC_ACT_REDIRECT`.
pub const TC_ACT_REDIRECT: u64 = 7;

fn neg(e: Errno) -> u64 {
    e.to_neg() as u64
}

/// The address of packet byte `offset`, if the linear data holds `offset .. offset + len`
/// (`offset` must also fit an `int`, as the kernel's helpers require).
fn at(skb: &SkBuff, offset: u32, len: u32) -> Option<*mut u8> {
    within(skb.data, skb.len, offset, len)
}

/// `offset .. offset + len` of the linear packet `data .. data + pkt_len`, if it is all there
/// (and `offset` fits an `int`).
fn within(data: *mut u8, pkt_len: u32, offset: u32, len: u32) -> Option<*mut u8> {
    let end = offset as u64 + len as u64;
    if offset > i32::MAX as u32 || end > pkt_len as u64 {
        return None;
    }
    Some(data.wrapping_add(offset as usize))
}

unsafe extern "C" fn skb_load_bytes(skb: u64, offset: u64, to: u64, len: u64, _: u64) -> u64 {
    // SAFETY: the verifier proved R1 the context (a live `SkBuff`).
    let skb = unsafe { &*(skb as *const SkBuff) };
    // SAFETY: `data .. data + len` is the skb's packet; the caller's promise on `to` is ours.
    unsafe { load_bytes(skb.data, skb.len, offset, to, len) }
}

/// `bpf_skb_load_bytes`'s copy (`____bpf_skb_load_bytes`) out of the linear packet
/// `data .. data + pkt_len`: 0, or `-EFAULT` with `to` zeroed when the bytes are not all in
/// the packet. Shared by the skb types and `SK_REUSEPORT` (`sk_reuseport_load_bytes`).
///
/// # Safety
/// `data .. data + pkt_len` is readable packet memory; the verifier proved `to` writable for
/// `len` bytes (`ARG_PTR_TO_UNINIT_MEM`, `ARG_CONST_SIZE`).
pub(crate) unsafe fn load_bytes(
    data: *mut u8,
    pkt_len: u32,
    offset: u64,
    to: u64,
    len: u64,
) -> u64 {
    let (to, len) = (to as *mut u8, len as u32 as usize);
    match within(data, pkt_len, offset as u32, len as u32) {
        Some(src) => {
            // SAFETY: `src .. src + len` is packet data (`within`); `to` as the caller
            // promised. `copy` allows the two to overlap (both may be packet memory).
            unsafe { core::ptr::copy(src, to, len) };
            0
        }
        None => {
            // SAFETY: the caller's promise on `to`.
            unsafe { core::ptr::write_bytes(to, 0, len) };
            neg(Errno::EFAULT)
        }
    }
}

unsafe extern "C" fn skb_store_bytes(
    skb: u64,
    offset: u64,
    from: u64,
    len: u64,
    flags: u64,
) -> u64 {
    // SAFETY: the verifier proved R1 the context, a live `SkBuff` this run owns.
    let skb = unsafe { &mut *(skb as *mut SkBuff) };
    let (from, len) = (from as *const u8, len as u32 as usize);
    if flags & !(F_RECOMPUTE_CSUM | F_INVALIDATE_HASH) != 0 {
        return neg(Errno::EINVAL);
    }
    let offset = offset as u32;
    let Some(dst) = at(skb, offset, len as u32) else {
        return neg(Errno::EFAULT);
    };
    // SAFETY: `dst .. dst + len` is packet data (`at`).
    let sum = |dst: *mut u8| csum::partial(unsafe { core::slice::from_raw_parts(dst, len) }, 0);
    let complete = flags & F_RECOMPUTE_CSUM != 0 && skb.ip_summed == IpSummed::Complete;
    if complete {
        skb.csum = csum::block_sub(skb.csum, sum(dst), offset);
    }
    // SAFETY: `dst` as above; the verifier proved `from` readable for `len` bytes
    // (`ARG_PTR_TO_MEM | MEM_RDONLY`); they may overlap.
    unsafe { core::ptr::copy(from, dst, len) };
    if complete {
        skb.csum = csum::block_add(skb.csum, sum(dst), offset);
    }
    if flags & F_INVALIDATE_HASH != 0 {
        skb.hash = 0;
    }
    0
}

/// The checksum field at `offset` (`offset > 0xffff` or odd: `-EFAULT`, like the kernel).
fn csum_field(skb: &SkBuff, offset: u64) -> Result<*mut u16, u64> {
    let offset = offset as u32;
    if offset > 0xffff || offset & 1 != 0 {
        return Err(neg(Errno::EFAULT));
    }
    at(skb, offset, 2)
        .map(|p| p as *mut u16)
        .ok_or(neg(Errno::EFAULT))
}

/// Reads a checksum field from [`csum_field`].
fn get16(p: *mut u16) -> u16 {
    // SAFETY: `p` is two bytes of packet data (`csum_field`), of the skb the caller holds.
    unsafe { p.read_unaligned() }
}

/// Writes a checksum field from [`csum_field`].
fn set16(p: *mut u16, v: u16) {
    // SAFETY: as for `get16`.
    unsafe { p.write_unaligned(v) }
}

unsafe extern "C" fn l3_csum_replace(skb: u64, offset: u64, from: u64, to: u64, flags: u64) -> u64 {
    // SAFETY: the verifier proved R1 the context, a live `SkBuff`.
    let skb = unsafe { &*(skb as *const SkBuff) };
    if flags & !F_HDR_FIELD_MASK != 0 {
        return neg(Errno::EINVAL);
    }
    let field = match csum_field(skb, offset) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let new = match flags & F_HDR_FIELD_MASK {
        0 if from != 0 => return neg(Errno::EINVAL),
        0 => csum::replace_by_diff(get16(field), to as u32),
        2 => csum::replace2(get16(field), from as u16, to as u16),
        4 => csum::replace4(get16(field), from as u32, to as u32),
        _ => return neg(Errno::EINVAL),
    };
    set16(field, new);
    0
}

unsafe extern "C" fn l4_csum_replace(skb: u64, offset: u64, from: u64, to: u64, flags: u64) -> u64 {
    // SAFETY: the verifier proved R1 the context, a live `SkBuff` this run owns.
    let skb = unsafe { &mut *(skb as *mut SkBuff) };
    let known = F_MARK_MANGLED_0 | F_MARK_ENFORCE | F_PSEUDO_HDR | F_HDR_FIELD_MASK | F_IPV6;
    if flags & !known != 0 {
        return neg(Errno::EINVAL);
    }
    let field = match csum_field(skb, offset) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let mangled = flags & F_MARK_MANGLED_0 != 0;
    if mangled && flags & F_MARK_ENFORCE == 0 && get16(field) == 0 {
        return 0;
    }
    let up = L4Update {
        field: get16(field),
        ip_summed: skb.ip_summed,
        csum: skb.csum,
        pseudo: flags & F_PSEUDO_HDR != 0,
    };
    let (new, sum) = match flags & F_HDR_FIELD_MASK {
        0 if from != 0 => return neg(Errno::EINVAL),
        0 => up.replace_by_diff(to as u32, flags & F_IPV6 != 0),
        2 => up.replace4(from as u16 as u32, to as u16 as u32),
        4 => up.replace4(from as u32, to as u32),
        _ => return neg(Errno::EINVAL),
    };
    let new = if mangled && new == 0 {
        csum::CSUM_MANGLED_0
    } else {
        new
    };
    set16(field, new);
    skb.csum = sum;
    0
}

unsafe extern "C" fn redirect(_ifindex: u64, flags: u64, _: u64, _: u64, _: u64) -> u64 {
    if flags & !F_INGRESS != 0 {
        TC_ACT_SHOT
    } else {
        TC_ACT_REDIRECT
    }
}

use ArgKind::{Anything, ConstSize, None as No, PtrToCtx, PtrToMem, PtrToUninitMem};

const fn proto(id: i32, name: &'static str, f: super::HelperFn, args: [ArgKind; 5]) -> HelperProto {
    HelperProto {
        func: Some(f),
        ..HelperProto::verifier_only(id, name, args, RetKind::Integer)
    }
}

/// `bpf_skb_load_bytes(skb, offset, to, len)`: copies packet bytes; `-EFAULT` (and `to`
/// zeroed) when they are not all in the packet.
pub static SKB_LOAD_BYTES: HelperProto = proto(
    func::SKB_LOAD_BYTES,
    "skb_load_bytes",
    skb_load_bytes,
    [PtrToCtx, Anything, PtrToUninitMem, ConstSize, No],
);

/// `bpf_skb_load_bytes(ctx, offset, to, len)` of `SK_REUSEPORT` programs
/// (`sk_reuseport_load_bytes_proto`): the same copy from the lookup's packet.
pub static SK_REUSEPORT_LOAD_BYTES: HelperProto = proto(
    func::SKB_LOAD_BYTES,
    "skb_load_bytes",
    crate::net::reuseport_prog::load_bytes,
    [PtrToCtx, Anything, PtrToUninitMem, ConstSize, No],
);

/// `bpf_skb_store_bytes(skb, offset, from, len, flags)`: writes packet bytes.
pub static SKB_STORE_BYTES: HelperProto = proto(
    func::SKB_STORE_BYTES,
    "skb_store_bytes",
    skb_store_bytes,
    [PtrToCtx, Anything, PtrToMem, ConstSize, Anything],
);

/// `bpf_l3_csum_replace(skb, offset, from, to, flags)`.
pub static L3_CSUM_REPLACE: HelperProto = proto(
    func::L3_CSUM_REPLACE,
    "l3_csum_replace",
    l3_csum_replace,
    [PtrToCtx, Anything, Anything, Anything, Anything],
);

/// `bpf_l4_csum_replace(skb, offset, from, to, flags)`.
pub static L4_CSUM_REPLACE: HelperProto = proto(
    func::L4_CSUM_REPLACE,
    "l4_csum_replace",
    l4_csum_replace,
    [PtrToCtx, Anything, Anything, Anything, Anything],
);

/// `bpf_redirect(ifindex, flags)`, TC's form: `TC_ACT_REDIRECT`, or `TC_ACT_SHOT` for
/// unknown flags.
pub static REDIRECT: HelperProto = proto(
    func::REDIRECT,
    "redirect",
    redirect,
    [Anything, Anything, No, No, No],
);
