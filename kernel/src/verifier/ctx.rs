//! Per-program-type context access rules (`struct bpf_verifier_ops::is_valid_access`).
//!
//! Mirrors `sk_filter_is_valid_access`, `cg_skb_is_valid_access`,
//! `tc_cls_act_is_valid_access`, `bpf_skb_is_valid_access` and `xdp_is_valid_access` of
//! `net/core/filter.c` for all of `__sk_buff` (`napi_id` and `tstamp_type` read as the kernel's
//! 0 when it has no busy polling and no time-stamp type; the packet's socket — `sk`, a
//! socket's common part or NULL, and, for cgroup skb programs, `family` .. `local_port` — is
//! the skb's `sk`) and for all of `struct xdp_md`; and adds the
//! raw-buffer type (kbpf's conformance type), whose context is a byte buffer of a size known
//! at load time. Which program types may touch packet data directly is
//! `may_access_direct_pkt_data` of `kernel/bpf/verifier.c` ([`CtxOps::pkt_access`]). The
//! rewrite of context accesses into the kernel-side structs is [`super::convert`].

use super::state::RegType;
use crate::uapi::ProgType;

/// How a program type's context may be accessed.
pub trait CtxAccess {
    /// Whether `size` bytes at `off` may be read (`write == false`) or written.
    fn is_valid_access(&self, off: i64, size: usize, write: bool) -> bool;

    /// What a valid read at `off` gives: a packet pointer for the `data` fields, a scalar
    /// otherwise (`bpf_insn_access_aux::reg_type`).
    fn reg_type(&self, _off: i64) -> RegType {
        RegType::Scalar
    }

    /// Whether the context is plain memory that may be addressed through a modified
    /// pointer (fixed or bounded variable offset): true for the raw buffer only; for the
    /// kernel's types a context access must go through the unmodified pointer.
    fn allows_modified_ptr(&self) -> bool {
        false
    }
}

/// The raw-buffer context: `size` bytes, readable and writable anywhere.
#[derive(Clone, Copy, Debug)]
pub struct RawBuffer {
    /// The buffer's size in bytes.
    pub size: usize,
}

impl CtxAccess for RawBuffer {
    fn is_valid_access(&self, off: i64, size: usize, _write: bool) -> bool {
        off >= 0 && (off as u64).saturating_add(size as u64) <= self.size as u64
    }

    fn allows_modified_ptr(&self) -> bool {
        true
    }
}

/// Which program types' rules an [`SkBuff`] context follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkbKind {
    /// `BPF_PROG_TYPE_SOCKET_FILTER`: no packet pointers, only `cb` writable.
    SocketFilter,
    /// `BPF_PROG_TYPE_CGROUP_SKB`: `data`/`data_end` readable (a `CAP_BPF` loader, which
    /// both verifier modes are), `mark`, `priority` and `cb` writable.
    CgroupSkb,
    /// `BPF_PROG_TYPE_SCHED_CLS` / `SCHED_ACT`: all packet pointers, `mark`, `tc_index`,
    /// `priority`, `tc_classid` and `cb` writable.
    Tc,
}

/// `struct __sk_buff` as socket filters, cgroup skb programs and TC programs see it.
#[derive(Clone, Copy, Debug)]
pub struct SkBuff {
    /// Whose rules.
    pub kind: SkbKind,
}

/// Offsets of the `__sk_buff` fields this slice judges (`include/uapi/linux/bpf.h`).
pub mod skb {
    #![allow(missing_docs)]
    pub const LEN: i64 = 0;
    pub const PKT_TYPE: i64 = 4;
    pub const MARK: i64 = 8;
    pub const QUEUE_MAPPING: i64 = 12;
    pub const PROTOCOL: i64 = 16;
    pub const VLAN_PRESENT: i64 = 20;
    pub const VLAN_TCI: i64 = 24;
    pub const VLAN_PROTO: i64 = 28;
    pub const PRIORITY: i64 = 32;
    pub const INGRESS_IFINDEX: i64 = 36;
    pub const IFINDEX: i64 = 40;
    pub const TC_INDEX: i64 = 44;
    pub const CB: i64 = 48;
    pub const HASH: i64 = 68;
    pub const TC_CLASSID: i64 = 72;
    pub const DATA: i64 = 76;
    pub const DATA_END: i64 = 80;
    pub const NAPI_ID: i64 = 84;
    pub const FAMILY: i64 = 88;
    pub const REMOTE_IP4: i64 = 92;
    pub const LOCAL_IP4: i64 = 96;
    pub const REMOTE_IP6: i64 = 100;
    pub const LOCAL_IP6: i64 = 116;
    pub const REMOTE_PORT: i64 = 132;
    pub const LOCAL_PORT: i64 = 136;
    pub const DATA_META: i64 = 140;
    pub const FLOW_KEYS: i64 = 144;
    pub const TSTAMP: i64 = 152;
    pub const WIRE_LEN: i64 = 160;
    pub const GSO_SEGS: i64 = 164;
    pub const SK: i64 = 168;
    pub const GSO_SIZE: i64 = 176;
    pub const TSTAMP_TYPE: i64 = 180;
    pub const HWTSTAMP: i64 = 184;
    /// `sizeof(struct __sk_buff)`.
    pub const SIZE: i64 = 192;
}

/// Offsets of the `struct xdp_md` fields (`include/uapi/linux/bpf.h`); all are `__u32`.
pub mod xdp_md {
    #![allow(missing_docs)]
    pub const DATA: i64 = 0;
    pub const DATA_END: i64 = 4;
    pub const DATA_META: i64 = 8;
    pub const INGRESS_IFINDEX: i64 = 12;
    pub const RX_QUEUE_INDEX: i64 = 16;
    pub const EGRESS_IFINDEX: i64 = 20;
    /// `sizeof(struct xdp_md)`.
    pub const SIZE: i64 = 24;
}

impl SkBuff {
    /// Whether the packet-pointer field at `off` exists for this kind.
    fn has_pkt_field(&self, off: i64) -> bool {
        match (self.kind, off) {
            (SkbKind::SocketFilter, _) => false,
            (SkbKind::CgroupSkb, skb::DATA | skb::DATA_END) => true,
            (SkbKind::Tc, skb::DATA | skb::DATA_END | skb::DATA_META) => true,
            _ => false,
        }
    }
}

impl SkBuff {
    /// The program type's own rules (`sk_filter_is_valid_access`, `cg_skb_is_valid_access`,
    /// `tc_cls_act_is_valid_access`): `Some` decides, `None` leaves it to the common rules.
    fn type_rules(&self, off: i64, size: usize, write: bool) -> Option<bool> {
        use skb::*;
        let at = |f: i64, n: i64| (f..f + n).contains(&off);
        match self.kind {
            SkbKind::SocketFilter => {
                let hidden = at(TC_CLASSID, 4)
                    || at(DATA, 4)
                    || at(DATA_META, 4)
                    || at(DATA_END, 4)
                    || at(FAMILY, LOCAL_PORT + 4 - FAMILY)
                    || at(TSTAMP, 8)
                    || at(WIRE_LEN, 4)
                    || at(HWTSTAMP, 8);
                (hidden || write && !at(CB, 20)).then_some(false)
            }
            SkbKind::CgroupSkb => {
                let hidden = at(TC_CLASSID, 4) || at(DATA_META, 4) || at(WIRE_LEN, 4);
                let writable = at(MARK, 4) || at(PRIORITY, 4) || at(CB, 20) || at(TSTAMP, 8);
                (hidden || write && !writable).then_some(false)
            }
            SkbKind::Tc => {
                let writable = at(MARK, 4)
                    || at(TC_INDEX, 4)
                    || at(PRIORITY, 4)
                    || at(TC_CLASSID, 4)
                    || at(CB, 20)
                    || at(TSTAMP, 8)
                    || at(QUEUE_MAPPING, 4);
                if write && !writable || at(FAMILY, LOCAL_PORT + 4 - FAMILY) {
                    return Some(false);
                }
                (off == TSTAMP_TYPE).then_some(size == 1)
            }
        }
    }
}

impl CtxAccess for SkBuff {
    /// The program type's rules, then `bpf_skb_is_valid_access`.
    fn is_valid_access(&self, off: i64, size: usize, write: bool) -> bool {
        use skb::*;
        if !(0..SIZE).contains(&off) || off % size as i64 != 0 {
            return false;
        }
        if let Some(ok) = self.type_rules(off, size, write) {
            return ok;
        }
        let at = |f: i64, n: i64| (f..f + n).contains(&off);
        if at(CB, 20) {
            return off + size as i64 <= CB + 20;
        }
        if at(DATA, 4) || at(DATA_END, 4) || at(DATA_META, 4) {
            return !write && size == 4 && self.has_pkt_field(off);
        }
        // The socket's addresses: whole words only.
        if at(REMOTE_IP4, REMOTE_PORT - REMOTE_IP4) {
            return size == 4;
        }
        if at(SK, 8) {
            return !write && size == 8;
        }
        if at(FLOW_KEYS, 8) || at(TSTAMP_TYPE, HWTSTAMP - TSTAMP_TYPE) {
            return false;
        }
        if at(HWTSTAMP, 8) {
            return !write && size == 8;
        }
        if at(TSTAMP, 8) {
            return size == 8;
        }
        // A __u32 field: written whole, read whole or narrow.
        if write { size == 4 } else { size <= 4 }
    }

    fn reg_type(&self, off: i64) -> RegType {
        match off {
            skb::DATA => RegType::PtrToPacket,
            skb::DATA_END => RegType::PtrToPacketEnd,
            skb::DATA_META => RegType::PtrToPacketMeta,
            skb::SK => RegType::PtrToSockCommonOrNull,
            _ => RegType::Scalar,
        }
    }
}

/// `struct xdp_md` (`xdp_is_valid_access`): whole 4-byte reads of every field, no writes (a
/// write needs an offloaded program), no `egress_ifindex` (only for programs attached to a
/// devmap, which kbpf does not have).
#[derive(Clone, Copy, Debug)]
pub struct XdpMd;

impl CtxAccess for XdpMd {
    fn is_valid_access(&self, off: i64, size: usize, write: bool) -> bool {
        !write
            && (0..xdp_md::SIZE).contains(&off)
            && off != xdp_md::EGRESS_IFINDEX
            && size == 4
            && off % 4 == 0
    }

    fn reg_type(&self, off: i64) -> RegType {
        match off {
            xdp_md::DATA => RegType::PtrToPacket,
            xdp_md::DATA_END => RegType::PtrToPacketEnd,
            xdp_md::DATA_META => RegType::PtrToPacketMeta,
            _ => RegType::Scalar,
        }
    }
}

/// The socket program types' contexts, whose rules live with the sockets: `struct
/// bpf_sk_lookup` ([`crate::net::sk_lookup::ctx`]) and `struct sk_reuseport_md`
/// ([`crate::net::reuseport_prog`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockCtx {
    /// `BPF_PROG_TYPE_SK_LOOKUP`: `sk` reads as a socket or NULL.
    SkLookup,
    /// `BPF_PROG_TYPE_SK_REUSEPORT`: `data`/`data_end` read as packet pointers, `sk` as a
    /// socket, `migrating_sk` as a socket common or NULL.
    SkReuseport,
}

impl CtxAccess for SockCtx {
    fn is_valid_access(&self, off: i64, size: usize, write: bool) -> bool {
        match self {
            SockCtx::SkLookup => crate::net::sk_lookup::ctx::is_valid_access(off, size, write),
            SockCtx::SkReuseport => crate::net::reuseport_prog::is_valid_access(off, size, write),
        }
    }

    fn reg_type(&self, off: i64) -> RegType {
        match self {
            SockCtx::SkLookup if crate::net::sk_lookup::ctx::is_sk(off) => {
                RegType::PtrToSocketOrNull
            }
            SockCtx::SkReuseport => {
                crate::net::reuseport_prog::reg_type(off).unwrap_or(RegType::Scalar)
            }
            _ => RegType::Scalar,
        }
    }
}

/// A type whose context accesses this slice does not judge yet: every access is refused.
#[derive(Clone, Copy, Debug)]
pub struct NoCtxAccess;

impl CtxAccess for NoCtxAccess {
    fn is_valid_access(&self, _off: i64, _size: usize, _write: bool) -> bool {
        false
    }
}

/// What a program type may do with packet data (`may_access_direct_pkt_data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PktAccess {
    /// No direct packet access.
    None,
    /// Reads only.
    Read,
    /// Reads and writes.
    ReadWrite,
}

/// The context rules of one program type, by value.
#[derive(Clone, Copy, Debug)]
pub enum CtxOps {
    /// The raw-buffer type.
    Raw(RawBuffer),
    /// `__sk_buff`.
    Skb(SkBuff),
    /// `xdp_md`.
    Xdp(XdpMd),
    /// `bpf_sk_lookup`, `sk_reuseport_md`.
    Sock(SockCtx),
    /// Not judged yet: refused.
    None(NoCtxAccess),
}

impl CtxOps {
    /// The context rules for `prog_type`; `ctx_size` is the raw buffer's size.
    pub fn for_type(prog_type: ProgType, ctx_size: usize) -> CtxOps {
        let skb = |kind| CtxOps::Skb(SkBuff { kind });
        match prog_type {
            ProgType::SocketFilter => skb(SkbKind::SocketFilter),
            ProgType::CgroupSkb => skb(SkbKind::CgroupSkb),
            ProgType::SchedCls | ProgType::SchedAct => skb(SkbKind::Tc),
            ProgType::Xdp => CtxOps::Xdp(XdpMd),
            ProgType::SkLookup => CtxOps::Sock(SockCtx::SkLookup),
            ProgType::SkReuseport => CtxOps::Sock(SockCtx::SkReuseport),
            ProgType::RawBuffer => CtxOps::Raw(RawBuffer { size: ctx_size }),
            _ => CtxOps::None(NoCtxAccess),
        }
    }

    /// The rules as a trait object.
    pub fn ops(&self) -> &dyn CtxAccess {
        match self {
            CtxOps::Raw(r) => r,
            CtxOps::Skb(s) => s,
            CtxOps::Xdp(x) => x,
            CtxOps::Sock(c) => c,
            CtxOps::None(n) => n,
        }
    }

    /// Direct packet access of the program type (`may_access_direct_pkt_data`).
    pub fn pkt_access(&self) -> PktAccess {
        match self {
            CtxOps::Skb(SkBuff {
                kind: SkbKind::Tc, ..
            })
            | CtxOps::Xdp(_) => PktAccess::ReadWrite,
            CtxOps::Skb(SkBuff {
                kind: SkbKind::CgroupSkb,
            })
            | CtxOps::Sock(SockCtx::SkReuseport) => PktAccess::Read,
            _ => PktAccess::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skb_packet_fields_per_kind() {
        let tc = SkBuff { kind: SkbKind::Tc };
        let cg = SkBuff {
            kind: SkbKind::CgroupSkb,
        };
        let sf = SkBuff {
            kind: SkbKind::SocketFilter,
        };
        for off in [skb::DATA, skb::DATA_END, skb::DATA_META] {
            assert!(tc.is_valid_access(off, 4, false));
            assert!(!tc.is_valid_access(off, 4, true));
            assert!(!tc.is_valid_access(off, 2, false));
            assert!(!tc.is_valid_access(off, 8, false));
            assert!(!sf.is_valid_access(off, 4, false));
        }
        assert!(cg.is_valid_access(skb::DATA_END, 4, false));
        assert!(!cg.is_valid_access(skb::DATA_META, 4, false));
        assert!(cg.is_valid_access(skb::MARK, 4, true));
        assert!(!cg.is_valid_access(skb::TC_INDEX, 4, true));
        // napi_id reads (as 0).
        assert!(tc.is_valid_access(skb::NAPI_ID, 2, false));
        assert!(!tc.is_valid_access(skb::NAPI_ID, 4, true));
        // The socket: its fields for cgroup skb programs (addresses whole), `sk` for all.
        assert!(cg.is_valid_access(skb::FAMILY, 2, false));
        assert!(cg.is_valid_access(skb::REMOTE_PORT + 2, 1, false));
        assert!(cg.is_valid_access(skb::LOCAL_IP6 + 12, 4, false));
        assert!(!cg.is_valid_access(skb::REMOTE_IP4, 2, false));
        assert!(!cg.is_valid_access(skb::LOCAL_PORT, 4, true));
        assert!(!tc.is_valid_access(skb::FAMILY, 4, false));
        assert!(!sf.is_valid_access(skb::LOCAL_IP4, 4, false));
        for k in [sf, tc, cg] {
            assert!(k.is_valid_access(skb::SK, 8, false));
            assert!(!k.is_valid_access(skb::SK, 8, true));
            assert!(!k.is_valid_access(skb::SK, 4, false));
            assert!(!k.is_valid_access(skb::SK + 4, 4, false));
        }
        assert_eq!(tc.reg_type(skb::SK), RegType::PtrToSockCommonOrNull);
        // 8-byte time stamps; TC may write tstamp and a queue, not hwtstamp.
        assert!(tc.is_valid_access(skb::TSTAMP, 8, true));
        assert!(!tc.is_valid_access(skb::TSTAMP, 4, false));
        assert!(!tc.is_valid_access(skb::HWTSTAMP, 8, true));
        assert!(!sf.is_valid_access(skb::TSTAMP, 8, false));
        assert!(tc.is_valid_access(skb::QUEUE_MAPPING, 4, true));
        assert!(!cg.is_valid_access(skb::QUEUE_MAPPING, 4, true));
        assert!(tc.is_valid_access(skb::TSTAMP_TYPE, 1, false));
        assert!(!cg.is_valid_access(skb::TSTAMP_TYPE, 1, false));
        assert!(!tc.is_valid_access(skb::SIZE, 4, false));
    }

    #[test]
    fn xdp_md_rules() {
        for off in [0, 4, 8, 12, 16] {
            assert!(XdpMd.is_valid_access(off, 4, false));
            assert!(!XdpMd.is_valid_access(off, 4, true));
            assert!(!XdpMd.is_valid_access(off, 1, false));
        }
        assert!(!XdpMd.is_valid_access(xdp_md::EGRESS_IFINDEX, 4, false));
        assert!(!XdpMd.is_valid_access(24, 4, false));
        assert!(!XdpMd.is_valid_access(2, 4, false));
        assert_eq!(XdpMd.reg_type(4), RegType::PtrToPacketEnd);
    }
}
