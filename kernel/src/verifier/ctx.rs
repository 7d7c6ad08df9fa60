//! Per-program-type context access rules (`struct bpf_verifier_ops::is_valid_access`).
//!
//! Mirrors `sk_filter_is_valid_access`, `tc_cls_act_is_valid_access` and
//! `bpf_skb_is_valid_access` of `net/core/filter.c` for the `__sk_buff` fields `len` through
//! `tc_classid`, and adds the raw-buffer type (kbpf's conformance type), whose context is a
//! byte buffer of a size known at load time. The rewrite of `__sk_buff` loads into the kernel
//! side struct (`convert_ctx_access`) is not done here: it belongs to the rewrite passes.

use crate::uapi::ProgType;

/// How a program type's context may be accessed.
pub trait CtxAccess {
    /// Whether `size` bytes at `off` may be read (`write == false`) or written.
    fn is_valid_access(&self, off: i64, size: usize, write: bool) -> bool;

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

/// `struct __sk_buff` as socket filters (`tc == false`) and TC classifiers/actions see it.
#[derive(Clone, Copy, Debug)]
pub struct SkBuff {
    /// TC rules (more writable fields) rather than socket-filter rules.
    pub tc: bool,
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
        let field = off & !3;
        if off + size as i64 > field + 4 || !(LEN..=TC_CLASSID).contains(&field) {
            return false;
        }
        if write {
            return self.tc
                && matches!(field, MARK | TC_INDEX | PRIORITY | TC_CLASSID)
                && size == 4;
        }
        // Socket filters cannot read tc_classid; narrow reads are fine for the rest.
        self.tc || field != TC_CLASSID
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

/// The context rules of one program type, by value.
#[derive(Clone, Copy, Debug)]
pub enum CtxOps {
    /// The raw-buffer type.
    Raw(RawBuffer),
    /// `__sk_buff`.
    Skb(SkBuff),
    /// Not judged yet: refused.
    None(NoCtxAccess),
}

impl CtxOps {
    /// The context rules for `prog_type`; `ctx_size` is the raw buffer's size.
    pub fn for_type(prog_type: ProgType, ctx_size: usize) -> CtxOps {
        match prog_type {
            ProgType::SocketFilter | ProgType::CgroupSkb => CtxOps::Skb(SkBuff { tc: false }),
            ProgType::SchedCls | ProgType::SchedAct => CtxOps::Skb(SkBuff { tc: true }),
            ProgType::RawBuffer => CtxOps::Raw(RawBuffer { size: ctx_size }),
            _ => CtxOps::None(NoCtxAccess),
        }
    }

    /// The rules as a trait object.
    pub fn ops(&self) -> &dyn CtxAccess {
        match self {
            CtxOps::Raw(r) => r,
            CtxOps::Skb(s) => s,
            CtxOps::None(n) => n,
        }
    }
}
