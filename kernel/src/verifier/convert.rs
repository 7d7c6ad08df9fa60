//! Context access conversion: after verification, every load and store through the context
//! pointer is rewritten from the program's view (`struct __sk_buff`, `struct xdp_md`) into an
//! access of the kernel-side struct the context really points to ([`crate::skb::SkBuff`],
//! [`crate::xdp::XdpBuff`]).
//!
//! Mirrors `convert_ctx_accesses` of `kernel/bpf/verifier.c` (the per-instruction record of
//! what each access touched, `bpf_insn_aux_data::ptr_type`, the "same insn cannot be used
//! with different pointers" rule, narrow loads widened then shifted and masked, sign
//! extension after a converted `ldsx`) and the per-type `convert_ctx_access` callbacks of
//! `net/core/filter.c`: `bpf_convert_ctx_access` / `tc_cls_act_convert_ctx_access` for
//! `__sk_buff` and `xdp_convert_ctx_access` for `xdp_md`. The raw-buffer type (kbpf's
//! conformance type) is its own kernel struct: no conversion.
//!
//! Each converted instruction is replaced on the load's [`PatchList`] by its buffer:
//! - `data`, `data_end`, `data_meta` → one 64-bit load of the pointer;
//! - a `__sk_buff` field the kernel struct keeps as a `u32` → one access of the same size
//!   at the same byte of the kernel field (narrow reads included);
//! - a field the kernel struct keeps narrower (`u16`, `u8`) → a load of the whole kernel
//!   field, then for a narrow read a shift and a mask selecting the bytes the `__u32` view
//!   would give; stores truncate to the kernel field;
//! - `cb[]` → the same access in the kernel's control block;
//! - `sk` → a 64-bit load of the skb's socket pointer (`skb->sk`); the socket's fields
//!   (`family` .. `local_port`, cgroup skb only) → that load, and unless it is NULL (which
//!   reads 0) a load of the socket's `struct bpf_sock` view word holding the kernel field,
//!   `remote_port`'s shifted up 16, then the kernel's narrow-load shift and mask for a 1-byte
//!   read (see `convert_skb_sock`);
//! - `tstamp`, `hwtstamp` → the same 8-byte access of the kernel's `u64`; `napi_id` and
//!   `tstamp_type` → the constant 0 (see [`super::ctx`]); a `queue_mapping` store skips a
//!   value of `NO_QUEUE_MAPPING` (0xffff) or more, as the kernel's does;
//! - `xdp_md.ingress_ifindex` / `rx_queue_index` → a load of the receive-queue pointer, then
//!   of the field through it;
//! - `bpf_sk_lookup` and `sk_reuseport_md` reads → the one load (or constant 0) the socket
//!   room's rules give ([`crate::net::sk_lookup::ctx`], [`crate::net::reuseport_prog`]).
//!   Loads through a socket pointer are not converted: kbpf's socket keeps `struct
//!   bpf_sock`'s bytes at its start ([`crate::net::sock::BpfSockView`]).

use super::ctx::{CtxOps, skb, xdp_md};
use super::explore::Explorer;
use super::log::Reject;
use crate::insn::{Insn, Op, Size, alu32_imm, decode, ja, jmp_imm, ldx_mem, ldx_memsx};
use crate::insn::{mov64_imm, st_mem, stx_mem};
use crate::patch::PatchList;
use crate::skb::field as kskb;
use crate::uapi::{ProgType, alu, class, jmp};
use crate::xdp::field as kxdp;
use crate::{Errno, Result};
use alloc::vec::Vec;

/// One context access, as the verifier saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtxAccessInfo {
    /// Offset into the context (the instruction's offset: the pointer is unmodified).
    pub off: i16,
    /// Access size in bytes.
    pub size: u8,
    /// A store rather than a load.
    pub write: bool,
}

/// What an instruction's memory access went through on the paths explored so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MemAux {
    /// Not reached, or not a memory access.
    #[default]
    Unseen,
    /// The context.
    Ctx(CtxAccessInfo),
    /// Other memory (stack, map value, packet).
    Other,
}

impl MemAux {
    /// The context access, if this is one.
    pub fn ctx(&self) -> Option<CtxAccessInfo> {
        match self {
            MemAux::Ctx(i) => Some(*i),
            _ => None,
        }
    }
}

impl Explorer<'_> {
    /// Records the access at `pc` (`ctx`: what it touched when it went through the context).
    /// A program type whose context is rewritten refuses an instruction that accesses the
    /// context on one path and other memory on another, since one rewrite can't serve both.
    pub(super) fn note_mem_aux(
        &mut self,
        pc: usize,
        ctx: Option<CtxAccessInfo>,
    ) -> core::result::Result<(), Reject> {
        if matches!(self.ctx, CtxOps::Raw(_)) {
            return Ok(());
        }
        let new = ctx.map_or(MemAux::Other, MemAux::Ctx);
        let slot = &mut self.mem_aux[pc];
        match (*slot, new) {
            (MemAux::Unseen, _) => *slot = new,
            (MemAux::Other, MemAux::Other) => {}
            (MemAux::Ctx(a), MemAux::Ctx(b)) if a == b => {}
            _ => {
                return Err(Reject::new(
                    Errno::EINVAL,
                    pc,
                    "same insn cannot be used with different pointers",
                ));
            }
        }
        Ok(())
    }
}

/// A converted instruction: at most seven.
type Buf = Vec<Insn>;

fn size_of(bytes: usize) -> Size {
    match bytes {
        1 => Size::B,
        2 => Size::H,
        4 => Size::W,
        _ => Size::DW,
    }
}

/// `dst = (s64)(sN)dst` (`movsx`), for a converted sign-extending load of `bytes`.
fn movsx64(dst: u8, bytes: usize) -> Insn {
    Insn::new(
        class::ALU64 | alu::MOV | crate::uapi::src::X,
        dst,
        dst,
        (bytes * 8) as i16,
        0,
    )
}

/// The access `insn` makes, decoded: (dst or value register, pointer register, size, sign,
/// store value).
enum Access {
    Load {
        dst: u8,
        src: u8,
        size: usize,
        sign: bool,
    },
    StoreReg {
        dst: u8,
        src: u8,
        size: usize,
    },
    StoreImm {
        dst: u8,
        size: usize,
        imm: i32,
    },
}

fn access_of(insn: Insn) -> Result<Access> {
    match decode(&[insn], 0).map_err(|_| Errno::EINVAL)? {
        Op::Ldx {
            size,
            sign,
            dst,
            src,
            ..
        } => Ok(Access::Load {
            dst,
            src,
            size: size.bytes(),
            sign,
        }),
        Op::Stx { size, dst, src, .. } => Ok(Access::StoreReg {
            dst,
            src,
            size: size.bytes(),
        }),
        Op::St { size, dst, imm, .. } => Ok(Access::StoreImm {
            dst,
            size: size.bytes(),
            imm,
        }),
        _ => Err(Errno::EINVAL),
    }
}

impl Access {
    /// A load's `(dst, src, size, sign)`; `EINVAL` for a store (the field is read-only).
    fn load(&self) -> Result<(u8, u8, usize, bool)> {
        match *self {
            Access::Load {
                dst,
                src,
                size,
                sign,
            } => Ok((dst, src, size, sign)),
            _ => Err(Errno::EINVAL),
        }
    }
}

/// The same access at `off` with `size` bytes of the kernel struct.
fn same_access(a: &Access, off: usize, size: usize) -> Insn {
    let off = off as i16;
    match *a {
        Access::Load {
            dst,
            src,
            sign: true,
            ..
        } if size < 8 => ldx_memsx(size_of(size), dst, src, off),
        Access::Load { dst, src, .. } => ldx_mem(size_of(size), dst, src, off),
        Access::StoreReg { dst, src, .. } => stx_mem(size_of(size), dst, src, off),
        Access::StoreImm { dst, imm, .. } => st_mem(size_of(size), dst, off, imm),
    }
}

/// A `__u32` view field backed by kernel field `(kernel_off, kernel_size)`; `byte` is the
/// access's offset inside the view field.
fn u32_field(a: &Access, byte: usize, (koff, ksize): (usize, usize), buf: &mut Buf) {
    let size = match *a {
        Access::Load { size, .. }
        | Access::StoreReg { size, .. }
        | Access::StoreImm { size, .. } => size,
    };
    if ksize == 4 {
        // Same width: the same bytes of the kernel field, in either byte order.
        buf.push(same_access(a, koff + byte, size));
        return;
    }
    match *a {
        Access::Load { dst, src, sign, .. } => {
            buf.push(ldx_mem(size_of(ksize), dst, src, koff as i16));
            if size < 4 {
                // The kernel field's value widened to the view's __u32; pick the bytes.
                let shift = if cfg!(target_endian = "little") {
                    byte * 8
                } else {
                    (4 - size - byte) * 8
                };
                if shift != 0 {
                    buf.push(alu32_imm(alu::RSH, dst, shift as i32));
                }
                buf.push(alu32_imm(alu::AND, dst, ((1u64 << (size * 8)) - 1) as i32));
            }
            if sign {
                buf.push(movsx64(dst, size));
            }
        }
        // Stores are whole-field (the verifier's rule): truncate to the kernel field.
        _ => buf.push(same_access(a, koff, ksize)),
    }
}

/// `NO_QUEUE_MAPPING`: a `queue_mapping` the kernel does not store.
const NO_QUEUE_MAPPING: i32 = 0xffff;

/// A read of the skb's socket (`sk`) or of one of its fields through it (`family` ..
/// `local_port`), as `bpf_convert_ctx_access` and `convert_ctx_accesses` give it: the value
/// the kernel's rewrite loads for the field's `__u32` (`family` and `local_port` a `u16`
/// widened, `remote_port` the `__be16` port shifted up 16 bits, an address the word), then,
/// for a read narrower than the kernel field (one byte: the fields are `u16`s), the shift and
/// mask selecting that byte of the `__u32`. A 2-byte read is not narrower than the kernel
/// field, so it gets the whole value at either half (`remote_port`'s two halves both read the
/// port shifted up), as the kernel's does. The kernel's rewrite loads through `skb->sk`
/// without a NULL check (cgroup skb programs always have a socket); kbpf's checks, so that an
/// skb built without one reads 0.
fn convert_skb_sock(a: &Access, off: i64, buf: &mut Buf) -> Result<()> {
    use crate::net::sock::BpfSockView as V;
    use core::mem::offset_of;
    let (dst, src, size, sign) = a.load()?;
    let load_sk = ldx_mem(Size::DW, dst, src, kskb::SK.0 as i16);
    if off == skb::SK {
        buf.push(load_sk);
        return Ok(());
    }
    let field = off & !3;
    let byte = (off - field) as usize;
    let word = |f: i64| (off - f) as usize & !3;
    // The view's word holding the kernel field's value, and whether it is a `u16` (else the
    // whole word, an address) and the port shifted up.
    let (at, half, lsh) = match field {
        skb::FAMILY => (offset_of!(V, family), true, false),
        skb::REMOTE_IP4 => (offset_of!(V, dst_ip4), false, false),
        skb::LOCAL_IP4 => (offset_of!(V, src_ip4), false, false),
        f if (skb::REMOTE_IP6..skb::REMOTE_IP6 + 16).contains(&f) => {
            (offset_of!(V, dst_ip6) + word(skb::REMOTE_IP6), false, false)
        }
        f if (skb::LOCAL_IP6..skb::LOCAL_IP6 + 16).contains(&f) => {
            (offset_of!(V, src_ip6) + word(skb::LOCAL_IP6), false, false)
        }
        // `dst_port` is the `__be16` and two zero bytes: as a word, the port's value.
        skb::REMOTE_PORT => (offset_of!(V, dst_port), true, true),
        skb::LOCAL_PORT => (offset_of!(V, src_port), true, false),
        _ => return Err(Errno::EINVAL),
    };
    if !half && (size != 4 || byte != 0) {
        return Err(Errno::EINVAL);
    }
    let mut tail: [Option<Insn>; 5] = [None; 5];
    tail[0] = Some(ldx_mem(Size::W, dst, dst, at as i16));
    if lsh {
        tail[1] = Some(alu32_imm(alu::LSH, dst, 16));
    }
    if half && size < 2 {
        if byte != 0 {
            tail[2] = Some(alu32_imm(alu::RSH, dst, (byte * 8) as i32));
        }
        tail[3] = Some(alu32_imm(alu::AND, dst, 0xff));
    }
    if sign {
        tail[4] = Some(movsx64(dst, size));
    }
    let n = tail.iter().flatten().count();
    buf.push(load_sk);
    buf.push(jmp_imm(jmp::JEQ, dst, 0, n as i16));
    buf.extend(tail.into_iter().flatten());
    Ok(())
}

fn convert_skb(a: &Access, off: i64, buf: &mut Buf) -> Result<()> {
    if (skb::FAMILY..skb::LOCAL_PORT + 4).contains(&off) || off == skb::SK {
        return convert_skb_sock(a, off, buf);
    }
    let field = match off {
        o if (skb::TSTAMP..skb::TSTAMP + 8).contains(&o) => skb::TSTAMP,
        o if (skb::HWTSTAMP..skb::HWTSTAMP + 8).contains(&o) => skb::HWTSTAMP,
        o if o == skb::TSTAMP_TYPE => o,
        o => o & !3,
    };
    let byte = (off - field) as usize;
    let kfield = match field {
        skb::DATA | skb::DATA_END | skb::DATA_META => {
            let (koff, _) = match field {
                skb::DATA => kskb::DATA,
                skb::DATA_END => kskb::DATA_END,
                _ => kskb::DATA_META,
            };
            let Access::Load { dst, src, .. } = *a else {
                return Err(Errno::EINVAL);
            };
            buf.push(ldx_mem(Size::DW, dst, src, koff as i16));
            return Ok(());
        }
        f if (skb::CB..skb::CB + 20).contains(&f) => {
            let size = match *a {
                Access::Load { size, .. }
                | Access::StoreReg { size, .. }
                | Access::StoreImm { size, .. } => size,
            };
            buf.push(same_access(a, kskb::CB.0 + (off - skb::CB) as usize, size));
            return Ok(());
        }
        // Fields kbpf keeps no value for read as the kernel's do without them: `napi_id`
        // without busy polling, `tstamp_type` as BPF_SKB_TSTAMP_UNSPEC.
        skb::NAPI_ID | skb::TSTAMP_TYPE => {
            let Access::Load { dst, .. } = *a else {
                return Err(Errno::EINVAL);
            };
            buf.push(mov64_imm(dst, 0));
            return Ok(());
        }
        skb::TSTAMP | skb::HWTSTAMP if off == field => {
            let (koff, _) = if field == skb::TSTAMP {
                kskb::TSTAMP
            } else {
                kskb::HWTSTAMP
            };
            buf.push(same_access(a, koff, 8));
            return Ok(());
        }
        skb::QUEUE_MAPPING if !matches!(a, Access::Load { .. }) => {
            // A queue of NO_QUEUE_MAPPING (0xffff) or more is not stored.
            let (koff, _) = kskb::QUEUE_MAPPING;
            match *a {
                Access::StoreImm { imm, .. } if imm >= NO_QUEUE_MAPPING => buf.push(ja(0)),
                Access::StoreReg { src, .. } => {
                    buf.push(jmp_imm(jmp::JGE, src, NO_QUEUE_MAPPING, 1));
                    buf.push(same_access(a, koff, 2));
                }
                _ => buf.push(same_access(a, koff, 2)),
            }
            return Ok(());
        }
        skb::WIRE_LEN => kskb::WIRE_LEN,
        skb::GSO_SEGS => kskb::GSO_SEGS,
        skb::GSO_SIZE => kskb::GSO_SIZE,
        skb::LEN => kskb::LEN,
        skb::PKT_TYPE => kskb::PKT_TYPE,
        skb::MARK => kskb::MARK,
        skb::QUEUE_MAPPING => kskb::QUEUE_MAPPING,
        skb::PROTOCOL => kskb::PROTOCOL,
        skb::VLAN_PRESENT => kskb::VLAN_PRESENT,
        skb::VLAN_TCI => kskb::VLAN_TCI,
        skb::VLAN_PROTO => kskb::VLAN_PROTO,
        skb::PRIORITY => kskb::PRIORITY,
        skb::INGRESS_IFINDEX => kskb::INGRESS_IFINDEX,
        skb::IFINDEX => kskb::IFINDEX,
        skb::TC_INDEX => kskb::TC_INDEX,
        skb::HASH => kskb::HASH,
        skb::TC_CLASSID => kskb::TC_CLASSID,
        _ => return Err(Errno::EINVAL),
    };
    u32_field(a, byte, kfield, buf);
    Ok(())
}

fn convert_xdp(a: &Access, off: i64, buf: &mut Buf) -> Result<()> {
    let Access::Load {
        dst,
        src,
        size: 4,
        sign,
    } = *a
    else {
        return Err(Errno::EINVAL);
    };
    let load = |off: usize| {
        if sign {
            ldx_memsx(Size::W, dst, dst, off as i16)
        } else {
            ldx_mem(Size::W, dst, dst, off as i16)
        }
    };
    match off {
        xdp_md::DATA => buf.push(ldx_mem(Size::DW, dst, src, kxdp::DATA as i16)),
        xdp_md::DATA_END => buf.push(ldx_mem(Size::DW, dst, src, kxdp::DATA_END as i16)),
        xdp_md::DATA_META => buf.push(ldx_mem(Size::DW, dst, src, kxdp::DATA_META as i16)),
        xdp_md::INGRESS_IFINDEX | xdp_md::RX_QUEUE_INDEX => {
            buf.push(ldx_mem(Size::DW, dst, src, kxdp::RXQ as i16));
            buf.push(load(if off == xdp_md::INGRESS_IFINDEX {
                kxdp::RXQ_IFINDEX
            } else {
                kxdp::RXQ_QUEUE_INDEX
            }));
        }
        _ => return Err(Errno::EINVAL),
    }
    Ok(())
}

/// `sk_lookup_convert_ctx_access` / `sk_reuseport_convert_ctx_access`: the one load the
/// socket room's rules give for a read ([`crate::net::sk_lookup::ctx::convert_load`],
/// [`crate::net::reuseport_prog::convert_load`]), then the sign extension a `ldsx` asks for.
fn convert_sock(prog_type: ProgType, a: &Access, off: i64, buf: &mut Buf) -> Result<()> {
    let (dst, src, size, sign) = a.load()?;
    let load = match prog_type {
        ProgType::SkLookup => crate::net::sk_lookup::ctx::convert_load(dst, src, off, size),
        _ => crate::net::reuseport_prog::convert_load(dst, src, off, size),
    };
    buf.push(load.ok_or(Errno::EINVAL)?);
    if sign && size < 8 {
        buf.push(movsx64(dst, size));
    }
    Ok(())
}

/// The replacement of one context access `insn` for `prog_type`, or `None` when the type's
/// context needs no conversion.
pub fn convert_insn(prog_type: ProgType, insn: Insn, info: CtxAccessInfo) -> Result<Option<Buf>> {
    let skb = matches!(
        prog_type,
        ProgType::SocketFilter | ProgType::CgroupSkb | ProgType::SchedCls | ProgType::SchedAct
    );
    let sock = matches!(prog_type, ProgType::SkLookup | ProgType::SkReuseport);
    if !skb && !sock && prog_type != ProgType::Xdp {
        return Ok(None);
    }
    let a = access_of(insn)?;
    let (size, write) = match a {
        Access::Load { size, .. } => (size, false),
        Access::StoreReg { size, .. } | Access::StoreImm { size, .. } => (size, true),
    };
    if insn.off != info.off || size != info.size as usize || write != info.write {
        return Err(Errno::EINVAL);
    }
    let mut buf = Vec::new();
    buf.try_reserve(7)?;
    if skb {
        convert_skb(&a, info.off as i64, &mut buf)?;
    } else if sock {
        convert_sock(prog_type, &a, info.off as i64, &mut buf)?;
    } else {
        convert_xdp(&a, info.off as i64, &mut buf)?;
    }
    Ok(Some(buf))
}

/// Rewrites every context access the verifier recorded (`ctx_access[i]` for original slot
/// `i`) on `list` (`convert_ctx_accesses`). `EINVAL` if a record does not match its
/// instruction.
pub fn convert_ctx_access<A: Default>(
    list: &mut PatchList<A>,
    prog_type: ProgType,
    ctx_access: &[Option<CtxAccessInfo>],
) -> Result<()> {
    for (i, info) in ctx_access.iter().enumerate() {
        let Some(info) = *info else { continue };
        let node = list.orig_node(i as u32).ok_or(Errno::EINVAL)?;
        let insn = list.insn(node).ok_or(Errno::EINVAL)?;
        if let Some(buf) = convert_insn(prog_type, insn, info)? {
            list.replace(node, &buf)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::Size;

    fn info(off: i16, size: u8, write: bool) -> CtxAccessInfo {
        CtxAccessInfo { off, size, write }
    }

    #[test]
    fn xdp_queue_fields_go_through_rxq() {
        let insn = ldx_mem(Size::W, 3, 1, xdp_md::INGRESS_IFINDEX as i16);
        let buf = convert_insn(ProgType::Xdp, insn, info(12, 4, false))
            .unwrap()
            .unwrap();
        assert_eq!(
            buf,
            [
                ldx_mem(Size::DW, 3, 1, kxdp::RXQ as i16),
                ldx_mem(Size::W, 3, 3, kxdp::RXQ_IFINDEX as i16),
            ]
        );
        let data = ldx_mem(Size::W, 2, 1, 0);
        let buf = convert_insn(ProgType::Xdp, data, info(0, 4, false))
            .unwrap()
            .unwrap();
        assert_eq!(buf, [ldx_mem(Size::DW, 2, 1, kxdp::DATA as i16)]);
    }

    #[test]
    fn narrow_sign_extending_read_of_a_u16_field() {
        let insn = ldx_memsx(Size::B, 4, 1, skb::VLAN_TCI as i16);
        let buf = convert_insn(ProgType::SchedCls, insn, info(24, 1, false))
            .unwrap()
            .unwrap();
        let want_first = ldx_mem(Size::H, 4, 1, kskb::VLAN_TCI.0 as i16);
        assert_eq!(buf[0], want_first);
        assert_eq!(*buf.last().unwrap(), movsx64(4, 1));
    }

    #[test]
    fn a_record_that_does_not_match_its_insn_is_refused() {
        let insn = ldx_mem(Size::W, 0, 1, 8);
        assert_eq!(
            convert_insn(ProgType::SchedCls, insn, info(12, 4, false)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            convert_insn(ProgType::SchedCls, insn, info(8, 4, true)),
            Err(Errno::EINVAL)
        );
    }
}
