//! The XDP helpers (`net/core/filter.c`): `bpf_xdp_adjust_head`, `bpf_xdp_adjust_meta`,
//! `bpf_xdp_adjust_tail` (fragments included: `bpf_xdp_frags_increase_tail`/
//! `_shrink_tail`), `bpf_xdp_load_bytes`/`bpf_xdp_store_bytes` (through `bpf_xdp_pointer`
//! and `bpf_xdp_copy_buf`, across the linear part and the fragments), and XDP's
//! `bpf_redirect` as a verdict.
//!
//! Every helper works in the frame the caller set up ([`XdpBuff`]): headroom down to
//! `data_hard_start + sizeof(struct xdp_frame)`, tailroom up to
//! [`XdpBuff::hard_end`], fragments in the caller's [`crate::xdp::XdpFrags`]. Nothing is
//! allocated: a fragment freed by shrinking is only dropped from the table.

use super::{ArgKind, HelperProto, RetKind};
use crate::Errno;
use crate::uapi::func;
use crate::xdp::{XDP_FRAME_SIZE, XdpBuff, XdpFrags};

/// `ETH_HLEN`: the shortest a frame may become.
const ETH_HLEN: usize = 14;
/// `XDP_ABORTED`.
pub const XDP_ABORTED: u64 = 0;
/// `XDP_REDIRECT`.
pub const XDP_REDIRECT: u64 = 4;
/// The largest metadata area (`xdp_metalen_invalid`: at most this many bytes, a multiple of 4).
pub const XDP_META_MAX: usize = 255;

fn neg(e: Errno) -> u64 {
    e.to_neg() as u64
}

/// `xdp_metalen_invalid`.
pub fn metalen_invalid(len: usize) -> bool {
    len % 4 != 0 || len > XDP_META_MAX
}

/// The frame R1 points to.
///
/// # Safety
/// `ctx` is a live `XdpBuff` the running program owns (the verifier proved R1 the context).
unsafe fn frame<'a>(ctx: u64) -> &'a mut XdpBuff {
    // SAFETY: the caller's contract.
    unsafe { &mut *(ctx as *mut XdpBuff) }
}

unsafe extern "C" fn adjust_head(ctx: u64, offset: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: the verifier proved R1 the context.
    let x = unsafe { frame(ctx) };
    let offset = offset as i32 as isize;
    let metalen = x.metalen();
    let start = x.data_hard_start as usize + XDP_FRAME_SIZE as usize + metalen;
    let data = (x.data as usize).wrapping_add_signed(offset);
    if data < start || data > (x.data_end as usize).wrapping_sub(ETH_HLEN) {
        return neg(Errno::EINVAL);
    }
    let meta = x.data_meta.wrapping_offset(offset);
    if metalen != 0 {
        // SAFETY: both ranges are inside the frame: the old metadata, and `metalen` bytes
        // ending at the new `data`, which is at least `data_hard_start + 40 + metalen`.
        unsafe { core::ptr::copy(x.data_meta, meta, metalen) };
    }
    x.data_meta = meta;
    x.data = data as *mut u8;
    0
}

unsafe extern "C" fn adjust_meta(ctx: u64, offset: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: the verifier proved R1 the context.
    let x = unsafe { frame(ctx) };
    if x.data_meta > x.data {
        // `xdp_data_meta_unsupported`.
        return neg(Errno::ENOTSUPP);
    }
    let meta = (x.data_meta as usize).wrapping_add_signed(offset as i32 as isize);
    let frame_end = x.data_hard_start as usize + XDP_FRAME_SIZE as usize;
    if meta < frame_end || meta > x.data as usize {
        return neg(Errno::EINVAL);
    }
    if metalen_invalid(x.data as usize - meta) {
        return neg(Errno::EACCES);
    }
    x.data_meta = meta as *mut u8;
    0
}

/// `bpf_xdp_frags_increase_tail`: the last fragment grows into its room, zero-filled.
fn frags_grow(f: &mut XdpFrags, offset: usize) -> u64 {
    let last = &mut f.frags[f.nr_frags as usize - 1];
    if offset > (last.cap - last.size) as usize {
        return neg(Errno::EINVAL);
    }
    // SAFETY: the fragment's buffer holds `cap` bytes and `size + offset <= cap`.
    unsafe { core::ptr::write_bytes(last.data.add(last.size as usize), 0, offset) };
    last.size += offset as u32;
    f.size += offset as u32;
    0
}

/// `bpf_xdp_frags_shrink_tail`: trims fragments from the end, dropping emptied ones; what is
/// left over once none remain comes off the linear part.
fn frags_shrink(x: &mut XdpBuff, mut offset: usize) -> u64 {
    if offset as i64 > x.buff_len() as i64 - ETH_HLEN as i64 {
        return neg(Errno::EINVAL);
    }
    // SAFETY: the frame has fragments (the caller checked), so the table is live.
    let f = unsafe { &mut *x.frags };
    while f.nr_frags > 0 && offset > 0 {
        let last = &mut f.frags[f.nr_frags as usize - 1];
        let shrink = offset.min(last.size as usize);
        last.size -= shrink as u32;
        f.size -= shrink as u32;
        offset -= shrink;
        if last.size == 0 {
            f.nr_frags -= 1;
        }
    }
    if f.nr_frags == 0 {
        x.data_end = x.data_end.wrapping_sub(offset);
    }
    0
}

unsafe extern "C" fn adjust_tail(ctx: u64, offset: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: the verifier proved R1 the context.
    let x = unsafe { frame(ctx) };
    let offset = offset as i32;
    if x.has_frags() {
        if offset < 0 {
            return frags_shrink(x, offset.unsigned_abs() as usize);
        }
        // SAFETY: `has_frags` says the table is live.
        return frags_grow(unsafe { &mut *x.frags }, offset as usize);
    }
    let end = (x.data_end as usize).wrapping_add_signed(offset as isize);
    if end > x.hard_end() as usize || end < x.data as usize + ETH_HLEN {
        return neg(Errno::EINVAL);
    }
    if offset > 0 {
        // SAFETY: `data_end .. end` is tailroom of the frame (checked against its hard end).
        unsafe { core::ptr::write_bytes(x.data_end, 0, offset as usize) };
    }
    x.data_end = end as *mut u8;
    0
}

/// Copies between `buf` and bytes `offset .. offset + len` of the frame (linear part, then
/// fragments): `bpf_xdp_pointer` + `bpf_xdp_copy_buf`. `to_frame`: `buf` → frame.
fn copy(x: &XdpBuff, offset: u64, buf: *mut u8, len: u64, to_frame: bool) -> u64 {
    let (offset, len) = (offset as u32 as usize, len as u32 as usize);
    if offset > 0xffff || len > 0xffff {
        return neg(Errno::EFAULT);
    }
    if offset + len > x.buff_len() {
        return neg(Errno::EINVAL);
    }
    let linear = x.data_end as usize - x.data as usize;
    let mut pieces = [(x.data, linear); 1 + crate::xdp::MAX_FRAGS];
    let mut n = 1;
    if x.has_frags() {
        // SAFETY: `has_frags` says the table is live.
        let f = unsafe { &*x.frags };
        for frag in &f.frags[..f.nr_frags as usize] {
            pieces[n] = (frag.data, frag.size as usize);
            n += 1;
        }
    }
    let (mut skip, mut done) = (offset, 0);
    for &(start, size) in &pieces[..n] {
        if done == len {
            break;
        }
        if skip >= size {
            skip -= size;
            continue;
        }
        let k = (size - skip).min(len - done);
        let at = start.wrapping_add(skip);
        let b = buf.wrapping_add(done);
        // SAFETY: `at .. at + k` lies in this piece of the frame; `b .. b + k` in the
        // caller's buffer of `len` bytes (the verifier's `ARG_CONST_SIZE` proof); they may
        // overlap when the buffer is packet memory.
        unsafe {
            if to_frame {
                core::ptr::copy(b, at, k);
            } else {
                core::ptr::copy(at, b, k);
            }
        }
        done += k;
        skip = 0;
    }
    0
}

unsafe extern "C" fn xdp_load_bytes(ctx: u64, offset: u64, buf: u64, len: u64, _: u64) -> u64 {
    // SAFETY: the verifier proved R1 the context.
    copy(unsafe { frame(ctx) }, offset, buf as *mut u8, len, false)
}

unsafe extern "C" fn xdp_store_bytes(ctx: u64, offset: u64, buf: u64, len: u64, _: u64) -> u64 {
    // SAFETY: the verifier proved R1 the context.
    copy(unsafe { frame(ctx) }, offset, buf as *mut u8, len, true)
}

unsafe extern "C" fn redirect(_ifindex: u64, flags: u64, _: u64, _: u64, _: u64) -> u64 {
    if flags != 0 {
        XDP_ABORTED
    } else {
        XDP_REDIRECT
    }
}

use ArgKind::{Anything, ConstSize, None as No, PtrToCtx, PtrToMem, PtrToUninitMem};

const fn proto(id: i32, name: &'static str, f: super::HelperFn, args: [ArgKind; 5]) -> HelperProto {
    HelperProto {
        func: Some(f),
        ..HelperProto::verifier_only(id, name, args, RetKind::Integer)
    }
}

const ADJUST: [ArgKind; 5] = [PtrToCtx, Anything, No, No, No];

/// `bpf_xdp_adjust_head(xdp, delta)`.
pub static XDP_ADJUST_HEAD: HelperProto = proto(
    func::XDP_ADJUST_HEAD,
    "xdp_adjust_head",
    adjust_head,
    ADJUST,
);

/// `bpf_xdp_adjust_meta(xdp, delta)`.
pub static XDP_ADJUST_META: HelperProto = proto(
    func::XDP_ADJUST_META,
    "xdp_adjust_meta",
    adjust_meta,
    ADJUST,
);

/// `bpf_xdp_adjust_tail(xdp, delta)`.
pub static XDP_ADJUST_TAIL: HelperProto = proto(
    func::XDP_ADJUST_TAIL,
    "xdp_adjust_tail",
    adjust_tail,
    ADJUST,
);

/// `bpf_xdp_load_bytes(xdp, offset, buf, len)`.
pub static XDP_LOAD_BYTES: HelperProto = proto(
    func::XDP_LOAD_BYTES,
    "xdp_load_bytes",
    xdp_load_bytes,
    [PtrToCtx, Anything, PtrToUninitMem, ConstSize, No],
);

/// `bpf_xdp_store_bytes(xdp, offset, buf, len)`.
pub static XDP_STORE_BYTES: HelperProto = proto(
    func::XDP_STORE_BYTES,
    "xdp_store_bytes",
    xdp_store_bytes,
    [PtrToCtx, Anything, PtrToMem, ConstSize, No],
);

/// `bpf_redirect(ifindex, flags)`, XDP's form (`bpf_xdp_redirect`): `XDP_REDIRECT`, or
/// `XDP_ABORTED` for any flag.
pub static XDP_REDIRECT_PROTO: HelperProto = proto(
    func::REDIRECT,
    "redirect",
    redirect,
    [Anything, Anything, No, No, No],
);
