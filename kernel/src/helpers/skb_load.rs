//! The internal helpers the legacy packet loads become: `BPF_LD | BPF_ABS` and `BPF_LD | BPF_IND`
//! (`r0 = ntohX(*(uX *)(skb->data + off))`) are rewritten at load into a call to one of these and
//! an early exit with R0 = 0 when it fails ([`crate::verifier::ld_abs`]), so the interpreter and
//! the JIT run them like any helper call (`bpf_skb_load_helper_{8,16,32}_no_cache` of
//! `net/core/filter.c`).
//!
//! Each reads 1, 2 or 4 bytes at a byte offset into the packet's linear data and returns them
//! in host byte order (the packet holds them in network order), zero-extended; or a negative
//! errno (`-EFAULT`) when the bytes are not all inside the packet. Programs cannot call them:
//! their ids are negative, which no program type offers ([`super::func_proto`]); only the
//! engines resolve them ([`super::runtime_proto`]).
//!
//! Not modelled: the kernel's negative offsets (`SKF_NET_OFF` and `SKF_LL_OFF`, relative to the
//! network and link-layer headers). kbpf's [`SkBuff`] carries no header offsets, so a negative
//! offset reads nothing and the program ends with 0, as an out-of-bounds offset does.

use super::{ArgKind, HelperProto, RetKind};
use crate::Errno;
use crate::skb::SkBuff;
use crate::uapi::ProgType;

/// Ids of the three load helpers (internal: never offered to programs).
pub mod id {
    /// `bpf_skb_load_helper_8_no_cache`.
    pub const LOAD_8: i32 = -0x101;
    /// `bpf_skb_load_helper_16_no_cache`.
    pub const LOAD_16: i32 = -0x102;
    /// `bpf_skb_load_helper_32_no_cache`.
    pub const LOAD_32: i32 = -0x104;
}

/// `N` bytes at `off` in `skb`'s linear data, if they are all there.
///
/// # Safety
/// `skb` points to a live [`SkBuff`] whose `data..data_end` is readable.
unsafe fn bytes<const N: usize>(skb: u64, off: u64) -> Option<[u8; N]> {
    // SAFETY: the caller's contract.
    let skb = unsafe { &*(skb as *const SkBuff) };
    // The kernel's helpers take the offset as an `int`.
    let off = usize::try_from(off as u32 as i32).ok()?;
    let len = (skb.data_end as usize).checked_sub(skb.data as usize)?;
    if off.checked_add(N)? > len {
        return None;
    }
    // SAFETY: `off + N <= data_end - data`, inside the readable linear data.
    Some(unsafe { core::ptr::read_unaligned(skb.data.add(off) as *const [u8; N]) })
}

const FAULT: u64 = Errno::EFAULT.to_neg() as u64;

unsafe extern "C" fn load_8(skb: u64, off: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: R1 is the program's context, an `SkBuff` (the rewrite loads it from R6, which
    // the verifier proved holds the context).
    unsafe { bytes::<1>(skb, off) }.map_or(FAULT, |b| b[0] as u64)
}

unsafe extern "C" fn load_16(skb: u64, off: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: as for `load_8`.
    unsafe { bytes::<2>(skb, off) }.map_or(FAULT, |b| u16::from_be_bytes(b) as u64)
}

unsafe extern "C" fn load_32(skb: u64, off: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: as for `load_8`.
    unsafe { bytes::<4>(skb, off) }.map_or(FAULT, |b| u32::from_be_bytes(b) as u64)
}

const fn proto(id: i32, name: &'static str, func: super::HelperFn) -> HelperProto {
    use ArgKind::{Anything, None as No, PtrToCtx};
    HelperProto::internal(
        id,
        name,
        func,
        [PtrToCtx, Anything, No, No, No],
        RetKind::Integer,
    )
}

/// `bpf_skb_load_helper_8_no_cache`.
pub static LOAD_8: HelperProto = proto(id::LOAD_8, "skb_load_helper_8_no_cache", load_8);
/// `bpf_skb_load_helper_16_no_cache`.
pub static LOAD_16: HelperProto = proto(id::LOAD_16, "skb_load_helper_16_no_cache", load_16);
/// `bpf_skb_load_helper_32_no_cache`.
pub static LOAD_32: HelperProto = proto(id::LOAD_32, "skb_load_helper_32_no_cache", load_32);

/// Whether programs of `prog_type` may use the legacy packet loads (`may_access_skb`): their
/// context is an `sk_buff`.
pub fn may_access_skb(prog_type: ProgType) -> bool {
    matches!(
        prog_type,
        ProgType::SocketFilter | ProgType::SchedCls | ProgType::SchedAct
    )
}

/// The load helper with id `id`, for a program of `prog_type`.
pub(super) fn proto_for(prog_type: ProgType, id: i32) -> Option<&'static HelperProto> {
    if !may_access_skb(prog_type) {
        return None;
    }
    match id {
        id::LOAD_8 => Some(&LOAD_8),
        id::LOAD_16 => Some(&LOAD_16),
        id::LOAD_32 => Some(&LOAD_32),
        _ => None,
    }
}

/// The id of the helper loading `bytes` bytes (1, 2 or 4).
pub fn load_helper_id(bytes: usize) -> Option<i32> {
    match bytes {
        1 => Some(id::LOAD_8),
        2 => Some(id::LOAD_16),
        4 => Some(id::LOAD_32),
        _ => None,
    }
}
