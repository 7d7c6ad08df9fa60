//! Per-program-type context access rules (`struct bpf_verifier_ops::is_valid_access`).
//!
//! Mirrors `sk_filter_is_valid_access`, `cg_skb_is_valid_access`,
//! `tc_cls_act_is_valid_access`, `bpf_skb_is_valid_access` and `xdp_is_valid_access` of
//! `net/core/filter.c` for the `__sk_buff` fields `len` through `tc_classid` plus the packet
//! fields `data`, `data_end` and `data_meta`, and for all of `struct xdp_md`; and adds the
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
    pub const DATA_META: i64 = 140;
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

impl CtxAccess for SkBuff {
    fn is_valid_access(&self, off: i64, size: usize, write: bool) -> bool {
        use skb::*;
        if off < 0 || off % size as i64 != 0 {
            return false;
        }
        // cb[0..5]: any size, aligned, within the array; readable and writable.
        if (CB..CB + 20).contains(&off) {
            return off + size as i64 <= CB + 20;
        }
        // data, data_end, data_meta: whole 4-byte reads only, never written.
        if matches!(off & !3, DATA | DATA_END | DATA_META) {
            return !write && size == 4 && self.has_pkt_field(off);
        }
        let field = off & !3;
        if off + size as i64 > field + 4 || !(LEN..=TC_CLASSID).contains(&field) {
            return false;
        }
        if write {
            let ok = match self.kind {
                SkbKind::SocketFilter => false,
                SkbKind::CgroupSkb => matches!(field, MARK | PRIORITY),
                SkbKind::Tc => matches!(field, MARK | TC_INDEX | PRIORITY | TC_CLASSID),
            };
            return ok && size == 4;
        }
        // Only TC programs read tc_classid; narrow reads are fine for the rest.
        self.kind == SkbKind::Tc || field != TC_CLASSID
    }

    fn reg_type(&self, off: i64) -> RegType {
        match off {
            skb::DATA => RegType::PtrToPacket,
            skb::DATA_END => RegType::PtrToPacketEnd,
            skb::DATA_META => RegType::PtrToPacketMeta,
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
            }) => PktAccess::Read,
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
        // Between data_end and data_meta: not in this slice.
        assert!(!tc.is_valid_access(84, 4, false));
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
