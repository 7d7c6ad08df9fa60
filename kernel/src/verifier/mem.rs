//! Memory access checks: loads, stores and atomics through context, map value, packet and
//! object pointers (`check_mem_access`, `check_ptr_alignment`, `check_map_access`,
//! `check_ctx_access`, `check_atomic` of `kernel/bpf/verifier.c`), and `ld_imm64`. The stack
//! is [`super::stack_access`].
//!
//! Alignment: stack accesses must be aligned to their size, in both modes (the stack's spill
//! tracking relies on it), and so must every access of an atomic instruction, whatever it
//! points to ("misaligned stack access off 0+0+-6 size 4"); other accesses may be misaligned
//! (x86 has efficient unaligned access).
//! Map values: `off + size` within `value_size` for every offset the pointer may have.
//! Context: the program type's `is_valid_access`; a read of a packet field gives a packet
//! pointer, and each context access is recorded for `convert_ctx_access` (an instruction
//! may not access the context on one path and other memory on another). Packet: the type's
//! direct packet access and the proven range ([`super::pkt`]). Storing a pointer into a map
//! value, the context or the packet is a leak, refused in the default mode. A load narrower
//! than 8 bytes gives its value truncated and zero- or sign-extended (`coerce_reg_to_size`).
//!
//! An atomic read-modify-write is checked as the kernel checks it: a read of the memory, a
//! second one into the register that receives the old value (R0 for `cmpxchg`, the source
//! for the fetching forms), then a write of unknown data.

use super::alu;
use super::bounds::Scalar;
use super::convert::CtxAccessInfo;
use super::ctx::PktAccess;
use super::explore::Explorer;
use super::log::Reject;
use super::state::{Reg, RegType, VState};
use super::tnum::tnum_str;
use crate::Errno;
use crate::insn::{AluOp, AtomicOp, Size};
use crate::map::MapAttr;
use crate::uapi::{MapFlags, MapType, pseudo};

/// What a store writes.
#[derive(Clone, Copy, Debug)]
pub(super) enum Stored {
    /// A register's value (`stx`).
    Reg {
        /// The register.
        regno: u8,
        /// Its value.
        val: Reg,
    },
    /// An immediate (`st`).
    Imm(i32),
    /// Data the verifier does not know: an atomic's write-back, a helper filling memory.
    Unknown,
}

/// What an access does.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    /// A load; `sign`: sign-extending; `into`: the value goes to a register (else it is an
    /// atomic's first read, whose value goes nowhere).
    Read {
        /// The load sign-extends (`ldxs*`).
        sign: bool,
        /// The value is loaded into a register.
        into: bool,
    },
    /// A store.
    Write(Stored),
}

/// One memory access of an instruction (the arguments of `check_mem_access`): `size` bytes at
/// `off` from the pointer in R`regno`, by the instruction at `pc`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Access {
    /// The instruction.
    pub pc: usize,
    /// The pointer register.
    pub regno: u8,
    /// The instruction's offset.
    pub off: i16,
    /// Bytes accessed.
    pub size: usize,
    /// Load or store.
    pub kind: Kind,
    /// Alignment is checked whatever the pointer (atomics: `strict_alignment_once`).
    pub strict: bool,
}

impl Access {
    /// The access an instruction at `pc` makes through R`regno` at `off`.
    pub fn new(pc: usize, regno: u8, off: i16, size: Size, kind: Kind) -> Access {
        Access {
            pc,
            regno,
            off,
            size: size.bytes(),
            kind,
            strict: false,
        }
    }

    /// Whether the access writes.
    pub fn write(&self) -> bool {
        matches!(self.kind, Kind::Write(_))
    }

    /// Whether the access is a sign-extending load.
    pub fn sign(&self) -> bool {
        matches!(self.kind, Kind::Read { sign: true, .. })
    }

    /// A helper's read of `size` bytes through R`regno`.
    pub fn helper_arg(pc: usize, regno: u8, size: usize) -> Access {
        Access {
            pc,
            regno,
            off: 0,
            size,
            kind: Kind::Read {
                sign: false,
                into: true,
            },
            strict: false,
        }
    }
}

/// The memory a bounded pointer may reach: `[0, limit)` of `what`, whose size the kernel's
/// message calls `limit_name` (`check_mem_region_access`).
#[derive(Clone, Copy)]
pub(super) struct Region {
    /// Bytes in the region.
    pub limit: i64,
    /// What it is, for the message (`map value`).
    pub what: &'static str,
    /// The name of its size in the message (`value_size`).
    pub limit_name: &'static str,
}

/// An atomic instruction's operands (`BPF_ATOMIC`).
#[derive(Clone, Copy)]
pub(super) struct AtomicInsn {
    /// Bytes (4 or 8; 1..8 for load-acquire/store-release).
    pub size: usize,
    /// The operation.
    pub op: AtomicOp,
    /// The pointer register.
    pub dst: u8,
    /// The value register.
    pub src: u8,
    /// The offset.
    pub off: i16,
}

/// The value a load of `size` bytes of unknown data gives.
pub(super) fn loaded(size: usize, sign: bool) -> Reg {
    coerce(Reg::scalar(Scalar::UNKNOWN), size, sign)
}

/// A scalar as a load of `size` bytes leaves it in the register: truncated, then zero- or
/// sign-extended (`coerce_reg_to_size`, `coerce_reg_to_size_sx`). Pointers are unchanged.
pub(super) fn coerce(mut r: Reg, size: usize, sign: bool) -> Reg {
    if r.ty != RegType::Scalar || size >= 8 {
        return r;
    }
    let bits = size as u32 * 8;
    r.var = if sign {
        alu::alu64(AluOp::MovSx(bits as u8), &Scalar::UNKNOWN, &r.var)
    } else {
        let mask = (1u64 << bits) - 1;
        let v = &r.var;
        let (lo, hi) = if v.umin & !mask == v.umax & !mask {
            (v.umin & mask, v.umax & mask)
        } else {
            (0, mask)
        };
        let mut s = Scalar::urange(lo, hi);
        s.var = s.var.intersect(v.var.cast(size as u32));
        s.sync();
        s
    };
    r
}

impl Explorer<'_> {
    /// The attributes of map handle `h`.
    pub(super) fn map_attr(&self, pc: usize, h: u32) -> Result<MapAttr, Reject> {
        (self.env.maps)(h).ok_or_else(|| {
            Reject::new(
                Errno::EBADF,
                pc,
                format_args!("fd {h} is not pointing to valid bpf_map"),
            )
        })
    }

    /// `dst = *(size *)(src + off)`: the load `acc`, its value into `dst`.
    pub(super) fn check_ldx(
        &mut self,
        st: &mut VState,
        acc: &Access,
        dst: u8,
    ) -> Result<(), Reject> {
        let v = self.mem_access(st, acc)?;
        self.check_dst(acc.pc, dst)?;
        *st.reg_mut(dst) = v;
        Ok(())
    }

    /// Atomic operations (`check_atomic`): load-acquire and store-release are a load and a
    /// store; the read-modify-write forms as the module docs say.
    pub(super) fn check_atomic(
        &mut self,
        st: &mut VState,
        pc: usize,
        a: AtomicInsn,
    ) -> Result<(), Reject> {
        let AtomicInsn {
            size,
            op,
            dst,
            src,
            off,
        } = a;
        let at = |regno, kind| Access {
            pc,
            regno,
            off,
            size,
            kind,
            strict: true,
        };
        let not_ok = |t: RegType, r: u8, what: &str| {
            Reject::acces(
                pc,
                format_args!("BPF_ATOMIC {what} R{r} {} is not allowed", t.name()),
            )
        };
        match op {
            AtomicOp::LoadAcquire => {
                let read = Kind::Read {
                    sign: false,
                    into: true,
                };
                let t = self.read(st, pc, src)?.ty;
                self.check_ldx(st, &at(src, read), dst)?;
                if !self.atomic_ptr_type_ok(t, false) {
                    return Err(not_ok(t, src, "loads from"));
                }
                return Ok(());
            }
            AtomicOp::StoreRelease => {
                let val = self.read(st, pc, src)?;
                let t = self.read(st, pc, dst)?.ty;
                let stored = Stored::Reg { regno: src, val };
                self.mem_access(st, &at(dst, Kind::Write(stored)))?;
                if !self.atomic_ptr_type_ok(t, false) {
                    return Err(not_ok(t, dst, "stores into"));
                }
                return Ok(());
            }
            _ => {}
        }
        let v = self.read(st, pc, src)?;
        let p = self.read(st, pc, dst)?;
        if op == AtomicOp::Cmpxchg {
            let r0 = self.read(st, pc, 0)?;
            if r0.ty.is_pointer() && !self.env.privileged {
                return Err(Reject::acces(pc, "R0 leaks addr into mem"));
            }
        }
        if v.ty.is_pointer() && !self.env.privileged {
            return Err(Reject::acces(
                pc,
                format_args!("R{src} leaks addr into mem"),
            ));
        }
        // kbpf's kernel objects take no atomics either (no writable field is one).
        if !self.atomic_ptr_type_ok(p.ty, true) || matches!(p.ty, RegType::PtrToBtfId(_)) {
            return Err(not_ok(p.ty, dst, "stores into"));
        }
        let load_reg = match op {
            AtomicOp::Cmpxchg => Some(0),
            AtomicOp::Xchg
            | AtomicOp::Add { fetch: true }
            | AtomicOp::Or { fetch: true }
            | AtomicOp::And { fetch: true }
            | AtomicOp::Xor { fetch: true } => Some(src),
            _ => None,
        };
        let probe = Kind::Read {
            sign: false,
            into: false,
        };
        self.mem_access(st, &at(dst, probe))?;
        if let Some(r) = load_reg {
            let read = Kind::Read {
                sign: false,
                into: true,
            };
            self.check_ldx(st, &at(dst, read), r)?;
        }
        self.mem_access(st, &at(dst, Kind::Write(Stored::Unknown)))?;
        Ok(())
    }

    /// Whether an atomic may go through a pointer of type `t` (`atomic_ptr_type_ok`): not the
    /// context, the packet or a socket. `rmw`: a read-modify-write; kbpf's raw-buffer context
    /// (plain memory) takes load-acquire and store-release.
    fn atomic_ptr_type_ok(&self, t: RegType, rmw: bool) -> bool {
        let ctx = t == RegType::PtrToCtx && (rmw || !self.ctx.ops().allows_modified_ptr());
        !(ctx || super::pkt::is_pkt_pointer(t) || t.is_sk_pointer())
    }

    /// Alignment of an access through `p` (`check_ptr_alignment`): always for the stack, for
    /// any pointer when the access is strict (atomics); byte accesses are always aligned.
    fn check_ptr_alignment(&self, acc: &Access, p: &Reg) -> Result<(), Reject> {
        let (pc, size) = (acc.pc, acc.size);
        let strict = acc.strict || matches!(p.ty, RegType::PtrToStack { .. });
        if !strict || size == 1 {
            return Ok(());
        }
        let (ip_align, desc) = match p.ty {
            RegType::PtrToPacket | RegType::PtrToPacketMeta => (2, "packet "),
            RegType::PtrToMapValue => (0, "value "),
            RegType::PtrToCtx => (0, "context "),
            RegType::PtrToStack { .. } => (0, "stack "),
            RegType::PtrToSocket => (0, "sock "),
            RegType::PtrToSockCommon => (0, "sock_common "),
            _ => (0, ""),
        };
        let fixed = ip_align + p.off as i64 + acc.off as i64;
        let at = p.var.var.add(super::tnum::Tnum::konst(fixed as u64));
        if (at.value | at.mask) & (size as u64 - 1) == 0 {
            return Ok(());
        }
        let var = tnum_str(p.var.var);
        let (poff, off) = (p.off, acc.off);
        Err(Reject::acces(
            pc,
            if ip_align != 0 {
                alloc::format!(
                    "misaligned packet access off {ip_align}+{var}+{poff}+{off} size {size}"
                )
            } else {
                alloc::format!("misaligned {desc}access off {var}+{poff}+{off} size {size}")
            },
        ))
    }

    /// One load, store or atomic part (`check_mem_access`): the value a load gives.
    pub(super) fn mem_access(&mut self, st: &mut VState, acc: &Access) -> Result<Reg, Reject> {
        let (pc, ptrno, off, size) = (acc.pc, acc.regno, acc.off, acc.size);
        let p = self.read(st, pc, ptrno)?;
        self.check_ptr_alignment(acc, &p)?;
        let write = acc.write();
        if let Kind::Write(Stored::Reg { regno, val }) = acc.kind {
            if val.ty.is_pointer() && !self.env.privileged {
                let into = match p.ty {
                    RegType::PtrToMapValue => Some("map"),
                    RegType::PtrToCtx => Some("ctx"),
                    RegType::PtrToPacket | RegType::PtrToPacketMeta => Some("packet"),
                    _ => None,
                };
                if let Some(into) = into {
                    return Err(Reject::acces(
                        pc,
                        format_args!("R{regno} leaks addr into {into}"),
                    ));
                }
            }
        }
        let sign = acc.sign();
        let ctx_info = (p.ty == RegType::PtrToCtx).then(|| CtxAccessInfo {
            off: (p.off as i64 + off as i64) as i16,
            size: size as u8,
            write,
        });
        self.note_mem_aux(pc, ctx_info)?;
        let v = match p.ty {
            RegType::PtrToPacket | RegType::PtrToPacketMeta => {
                if write && self.ctx.pkt_access() != PktAccess::ReadWrite {
                    return Err(Reject::acces(pc, "cannot write into packet"));
                }
                self.check_packet_access(pc, ptrno, &p, p.off as i64 + off as i64, size)?;
                Reg::scalar(Scalar::UNKNOWN)
            }
            RegType::PtrToStack { frame } => self.stack_access(st, acc, &p, frame)?,
            RegType::PtrToMapValue => {
                let attr = self.map_attr(pc, p.map)?;
                if write && attr.flags.contains(MapFlags::RDONLY_PROG) {
                    return Err(Reject::acces(pc, "write into map forbidden"));
                }
                if !write && attr.flags.contains(MapFlags::WRONLY_PROG) {
                    return Err(Reject::acces(pc, "read from map forbidden"));
                }
                self.check_bounded(acc, &p, map_value_region(&attr))?;
                Reg::scalar(Scalar::UNKNOWN)
            }
            RegType::PtrToCtx => self.ctx_access(acc, &p)?,
            RegType::PtrToSocket | RegType::PtrToSockCommon | RegType::PtrToBtfId(_) => {
                self.check_obj_access(acc, &p)?
            }
            t => {
                return Err(Reject::acces(
                    pc,
                    format_args!("R{ptrno} invalid mem access '{}'", t.name()),
                ));
            }
        };
        Ok(match acc.kind {
            Kind::Read { into: true, .. } => coerce(v, size, sign),
            _ => v,
        })
    }

    /// An access through the context pointer `p` (`check_ctx_access`).
    fn ctx_access(&mut self, acc: &Access, p: &Reg) -> Result<Reg, Reject> {
        let (pc, ptrno, size, write) = (acc.pc, acc.regno, acc.size, acc.write());
        let ops = self.ctx.ops();
        let total = p.off as i64 + acc.off as i64;
        if !ops.allows_modified_ptr() {
            super::args::check_ctx_unmodified(pc, ptrno, p)?;
        }
        let invalid = || {
            Reject::acces(
                pc,
                format_args!("invalid bpf_context access off={total} size={size}"),
            )
        };
        let lo = total.saturating_add(p.var.smin);
        let hi = total.saturating_add(p.var.umax.min(1 << 29) as i64) + size as i64;
        if p.var.smin < 0
            || p.var.umax >= 1 << 29
            || !ops.is_valid_access(lo, (hi - lo) as usize, write)
        {
            return Err(invalid());
        }
        let ty = ops.reg_type(total);
        if ty.is_pointer() {
            if acc.sign() {
                return Err(invalid());
            }
            // A pointer that may be NULL gets its null-check id (`check_mem_access`).
            let mut r = Reg::ptr(ty, 0);
            if super::refs::or_null_base(ty).is_some() {
                r.id = self.new_id();
            }
            return Ok(r);
        }
        Ok(Reg::scalar(Scalar::UNKNOWN))
    }

    /// `off + size` within the region for every offset a pointer with a bounded variable
    /// part may have (`check_mem_region_access` for `check_map_access` and friends): the
    /// smallest offset, then the largest.
    pub(super) fn check_bounded(&self, acc: &Access, p: &Reg, r: Region) -> Result<(), Reject> {
        let (pc, regno, size) = (acc.pc, acc.regno, acc.size as i64);
        let off = p.off as i64 + acc.off as i64;
        let smin = p.var.smin;
        let sum = off.wrapping_add(smin);
        if smin < 0 && (smin == i64::MIN || sum != sum as i32 as i64 || sum < 0) {
            return Err(Reject::acces(
                pc,
                format_args!(
                    "R{regno} min value is negative, either use unsigned index or do a if (index >=0) check."
                ),
            ));
        }
        let (what, name, limit) = (r.what, r.limit_name, r.limit);
        let outside = |o: i64, which: &str| {
            Reject::acces(
                pc,
                format_args!(
                    "invalid access to {what}, {name}={limit} off={o} size={size}\n\
                     R{regno} {which} value is outside of the allowed memory range"
                ),
            )
        };
        let ok = |o: i64| o >= 0 && size > 0 && o + size <= limit;
        if !ok(sum) {
            return Err(outside(sum, "min"));
        }
        if p.var.umax >= 1 << 29 {
            return Err(Reject::acces(
                pc,
                format_args!(
                    "R{regno} unbounded memory access, make sure to bounds check any such access"
                ),
            ));
        }
        let max = p.var.umax as i64 + off;
        if !ok(max) {
            return Err(outside(max, "max"));
        }
        Ok(())
    }

    /// `ld_imm64`: a number, a map (`BPF_PSEUDO_MAP_FD`) or a map value address
    /// (`BPF_PSEUDO_MAP_VALUE`, single-element arrays).
    pub(super) fn check_ld_imm64(
        &mut self,
        st: &mut VState,
        pc: usize,
        dst: u8,
        kind: u8,
        imm: u64,
    ) -> Result<(), Reject> {
        self.check_dst(pc, dst)?;
        let (lo, hi) = (imm as u32, (imm >> 32) as u32);
        let r = match kind {
            0 => Reg::scalar(Scalar::konst(imm)),
            pseudo::MAP_FD | pseudo::MAP_VALUE => {
                let attr = self.map_attr(pc, lo)?;
                if kind == pseudo::MAP_FD {
                    let mut r = Reg::ptr(RegType::ConstPtrToMap, 0);
                    r.map = lo;
                    r
                } else {
                    if attr.map_type != MapType::Array
                        || attr.max_entries != 1
                        || hi >= attr.value_size
                    {
                        return Err(Reject::new(
                            Errno::EINVAL,
                            pc,
                            format_args!(
                                "invalid access to map value pointer, value_size={} off={hi}",
                                attr.value_size
                            ),
                        ));
                    }
                    let mut r = Reg::ptr(RegType::PtrToMapValue, hi as i32);
                    r.map = lo;
                    r
                }
            }
            pseudo::FUNC => self.func_reg(pc, imm),
            _ => {
                return Err(Reject::new(
                    Errno::EINVAL,
                    pc,
                    format_args!("unsupported ld_imm64 src_reg {kind}"),
                ));
            }
        };
        *st.reg_mut(dst) = r;
        Ok(())
    }
}

/// A pointer's variable part must not go below its base (the `smin_value < 0` check of
/// `check_mem_region_access` and `check_packet_access`).
pub(super) fn check_min_nonnegative(pc: usize, regno: u8, p: &Reg) -> Result<(), Reject> {
    if p.var.smin < 0 {
        return Err(Reject::acces(
            pc,
            format_args!(
                "R{regno} min value is negative, either use unsigned index or do a if (index >=0) check."
            ),
        ));
    }
    Ok(())
}

/// A map value as a [`Region`].
pub(super) fn map_value_region(attr: &MapAttr) -> Region {
    Region {
        limit: attr.value_size as i64,
        what: "map value",
        limit_name: "value_size",
    }
}
