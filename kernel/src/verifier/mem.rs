//! Memory access checks: loads, stores and atomics through stack, map value and context
//! pointers (`check_mem_access`, `check_stack_read/write_fixed_off`, `check_map_access`,
//! `check_ctx_access`, `check_atomic` of `kernel/bpf/verifier.c`), and `ld_imm64`.
//!
//! Stack: offsets in `[-512, 0)` of the pointed-to frame; an aligned 8-byte store of a
//! register spills it (a pointer keeps its type when filled back), any other store marks its
//! bytes written (zero when the value is the constant 0). Pointers may only be spilled whole.
//! Reading an unwritten byte is refused in the default mode (root: unknown value). Variable
//! offsets on the stack exist only in the privileged mode (the arithmetic refuses them
//! otherwise): reads need every byte in range written, writes make every byte in range data.
//! Map values: `off + size` within `value_size` for every offset the pointer may have.
//! Context: the program type's `is_valid_access`; a read of a packet field gives a packet
//! pointer, and each context access is recorded for `convert_ctx_access` (an instruction
//! may not access the context on one path and other memory on another). Packet: the type's
//! direct packet access and the proven range ([`super::pkt`]). Storing a pointer into a map
//! value, the context or the packet is a leak, refused in the default mode.

use super::bounds::Scalar;
use super::convert::CtxAccessInfo;
use super::ctx::PktAccess;
use super::explore::Explorer;
use super::log::Reject;
use super::state::{ByteKind, Reg, RegType, Slot, VState};
use crate::Errno;
use crate::insn::{AtomicOp, Size};
use crate::map::MapAttr;
use crate::uapi::{MapFlags, MapType, pseudo};

/// What an access does.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    /// A load; `sign`: sign-extending.
    Read {
        /// The load sign-extends (`ldxs*`).
        sign: bool,
    },
    /// A store of `val`, from register `src` (`None` for `st`'s immediate).
    Write {
        /// The value stored.
        val: Reg,
        /// The register it comes from.
        src: Option<u8>,
    },
    /// An atomic read-modify-write.
    Atomic,
}

/// One memory access of an instruction (the arguments of `check_mem_access`): `size` bytes at
/// `off` from the pointer in R`regno`, by the instruction at `pc`.
#[derive(Clone, Copy)]
pub(super) struct Access {
    /// The instruction.
    pub pc: usize,
    /// The pointer register.
    pub regno: u8,
    /// The instruction's offset.
    pub off: i16,
    /// Bytes accessed.
    pub size: usize,
    /// Load, store or atomic.
    pub kind: Kind,
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
        }
    }

    /// Whether the access writes.
    pub fn write(&self) -> bool {
        !matches!(self.kind, Kind::Read { .. })
    }

    /// Whether the access is a sign-extending load.
    pub fn sign(&self) -> bool {
        matches!(self.kind, Kind::Read { sign: true })
    }

    /// The same access at instruction offset 0 through R`regno` (a helper's memory argument).
    pub fn helper_arg(pc: usize, regno: u8, size: usize) -> Access {
        Access {
            pc,
            regno,
            off: 0,
            size,
            kind: Kind::Read { sign: false },
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
    let bits = size as u32 * 8;
    Reg::scalar(match (bits, sign) {
        (64, _) => Scalar::UNKNOWN,
        (_, false) => Scalar::urange(0, (1u64 << bits) - 1),
        (_, true) => Scalar::srange(-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1),
    })
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

    /// Atomic operations; load-acquire/store-release are checked as a load/store.
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
        // Load-acquire/store-release through a context that is rewritten at load, or into
        // the packet, are refused (`atomic_ptr_type_ok`).
        let ordered_ptr = match op {
            AtomicOp::LoadAcquire => Some((src, "loads from")),
            AtomicOp::StoreRelease => Some((dst, "stores into")),
            _ => None,
        };
        if let Some((r, what)) = ordered_ptr {
            let t = self.read(st, pc, r)?.ty;
            let ctx = t == RegType::PtrToCtx && !self.ctx.ops().allows_modified_ptr();
            if ctx || super::pkt::is_pkt_pointer(t) {
                return Err(Reject::acces(
                    pc,
                    format_args!("BPF_ATOMIC {what} R{r} {} is not allowed", t.name()),
                ));
            }
        }
        let at = |regno, kind| Access {
            pc,
            regno,
            off,
            size,
            kind,
        };
        match op {
            AtomicOp::LoadAcquire => {
                return self.check_ldx(st, &at(src, Kind::Read { sign: false }), dst);
            }
            AtomicOp::StoreRelease => {
                let val = self.read(st, pc, src)?;
                let src = Some(src);
                self.mem_access(st, &at(dst, Kind::Write { val, src }))?;
                return Ok(());
            }
            _ => {}
        }
        let v = self.read(st, pc, src)?;
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
        let p = self.read(st, pc, dst)?;
        if !matches!(p.ty, RegType::PtrToStack { .. } | RegType::PtrToMapValue) {
            return Err(Reject::acces(
                pc,
                format_args!(
                    "BPF_ATOMIC stores into R{dst} {} is not allowed",
                    p.ty.name()
                ),
            ));
        }
        self.mem_access(st, &at(dst, Kind::Atomic))?;
        let fetched = loaded(size, false);
        match op {
            AtomicOp::Cmpxchg => *st.reg_mut(0) = fetched,
            AtomicOp::Xchg
            | AtomicOp::Add { fetch: true }
            | AtomicOp::Or { fetch: true }
            | AtomicOp::And { fetch: true }
            | AtomicOp::Xor { fetch: true } => {
                self.check_dst(pc, src)?;
                *st.reg_mut(src) = fetched;
            }
            _ => {}
        }
        Ok(())
    }

    /// One load, store or atomic access (`check_mem_access`): the value a load gives (for a
    /// store, the value stored).
    pub(super) fn mem_access(&mut self, st: &mut VState, acc: &Access) -> Result<Reg, Reject> {
        let (pc, ptrno, off, size) = (acc.pc, acc.regno, acc.off, acc.size);
        let p = self.read(st, pc, ptrno)?;
        let write = acc.write();
        if let Kind::Write { val, src } = acc.kind {
            if val.ty.is_pointer() && !self.env.privileged {
                let src = src.unwrap_or(ptrno);
                match p.ty {
                    RegType::PtrToMapValue => {
                        return Err(Reject::acces(
                            pc,
                            format_args!("R{src} leaks addr into map"),
                        ));
                    }
                    RegType::PtrToCtx => {
                        return Err(Reject::acces(
                            pc,
                            format_args!("R{src} leaks addr into ctx"),
                        ));
                    }
                    RegType::PtrToPacket | RegType::PtrToPacketMeta => {
                        return Err(Reject::acces(
                            pc,
                            format_args!("R{src} leaks addr into packet"),
                        ));
                    }
                    _ => {}
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
        match p.ty {
            RegType::PtrToPacket | RegType::PtrToPacketMeta => {
                if write && self.ctx.pkt_access() != PktAccess::ReadWrite {
                    return Err(Reject::acces(pc, "cannot write into packet"));
                }
                self.check_packet_access(pc, ptrno, &p, p.off as i64 + off as i64, size)?;
                Ok(loaded(size, sign))
            }
            RegType::PtrToStack { frame } => self.stack_access(st, acc, &p, frame),
            RegType::PtrToMapValue => {
                let attr = self.map_attr(pc, p.map)?;
                self.check_bounded(acc, &p, map_value_region(&attr))?;
                if write && attr.flags.contains(MapFlags::RDONLY_PROG) {
                    return Err(Reject::acces(pc, "write into map forbidden"));
                }
                if !write && attr.flags.contains(MapFlags::WRONLY_PROG) {
                    return Err(Reject::acces(pc, "read from map forbidden"));
                }
                Ok(loaded(size, sign))
            }
            RegType::PtrToCtx => {
                let ops = self.ctx.ops();
                let total = p.off as i64 + off as i64;
                if !ops.allows_modified_ptr() && (p.off != 0 || p.var.as_const() != Some(0)) {
                    return Err(Reject::acces(
                        pc,
                        format_args!(
                            "dereference of modified ctx ptr R{ptrno} off={} disallowed",
                            p.off
                        ),
                    ));
                }
                let lo = total.saturating_add(p.var.smin);
                let hi = total.saturating_add(p.var.umax.min(1 << 29) as i64) + size as i64;
                if p.var.smin < 0
                    || p.var.umax >= 1 << 29
                    || !ops.is_valid_access(lo, (hi - lo) as usize, write)
                {
                    return Err(Reject::acces(
                        pc,
                        format_args!("invalid bpf_context access off={total} size={size}"),
                    ));
                }
                let ty = ops.reg_type(total);
                if ty.is_pointer() {
                    if sign {
                        return Err(Reject::acces(
                            pc,
                            format_args!("invalid bpf_context access off={total} size={size}"),
                        ));
                    }
                    return Ok(Reg::ptr(ty, 0));
                }
                Ok(loaded(size, sign))
            }
            RegType::PtrToSocket | RegType::PtrToBtfId(_) => self.check_obj_access(acc, &p),
            t => Err(Reject::acces(
                pc,
                format_args!("R{ptrno} invalid mem access '{}'", t.name()),
            )),
        }
    }

    /// `off + size` within the region for every offset a pointer with a bounded variable
    /// part may have (`check_map_access` and friends).
    pub(super) fn check_bounded(&self, acc: &Access, p: &Reg, r: Region) -> Result<(), Reject> {
        let (pc, regno, size) = (acc.pc, acc.regno, acc.size);
        check_min_nonnegative(pc, regno, p)?;
        if p.var.umax >= 1 << 29 {
            return Err(Reject::acces(
                pc,
                format_args!(
                    "R{regno} unbounded memory access, make sure to bounds check any such access"
                ),
            ));
        }
        let base = p.off as i64 + acc.off as i64;
        let (lo, hi) = (
            base + p.var.umin as i64,
            base + p.var.umax as i64 + size as i64,
        );
        if lo < 0 || hi > r.limit {
            let o = if lo < 0 { lo } else { hi - size as i64 };
            let (what, name, limit) = (r.what, r.limit_name, r.limit);
            return Err(Reject::acces(
                pc,
                format_args!("invalid access to {what}, {name}={limit} off={o} size={size}"),
            ));
        }
        Ok(())
    }

    /// The stack offset range `[lo, hi)` an access touches, checked against the frame.
    pub(super) fn stack_range(
        &self,
        acc: &Access,
        p: &Reg,
        what: &str,
    ) -> Result<(i64, i64), Reject> {
        let (pc, regno, size) = (acc.pc, acc.regno, acc.size);
        let base = p.off as i64 + acc.off as i64;
        let lo = base.saturating_add(p.var.smin);
        let hi = base.saturating_add(p.var.smax).saturating_add(size as i64);
        if lo < -512 || hi > 0 {
            let errno = if lo >= -512 {
                Errno::EINVAL
            } else {
                Errno::EACCES
            };
            return Err(match p.var.as_const() {
                Some(_) => Reject::new(
                    errno,
                    pc,
                    format_args!("invalid {what} stack R{regno} off={base} size={size}"),
                ),
                None => Reject::new(
                    errno,
                    pc,
                    format_args!(
                        "invalid variable-offset {what} stack R{regno} var_off={} off={base} size={size}",
                        p.var.var
                    ),
                ),
            });
        }
        Ok((lo, hi))
    }

    fn stack_access(
        &mut self,
        st: &mut VState,
        acc: &Access,
        p: &Reg,
        frame: u8,
    ) -> Result<Reg, Reject> {
        let (pc, regno, off, size, kind) = (acc.pc, acc.regno, acc.off, acc.size, acc.kind);
        let what = if acc.write() { "write to" } else { "read from" };
        let (lo, hi) = self.stack_range(acc, p, what)?;
        let fr = &mut st.frames[frame as usize];
        let depth = &mut self.stack_depth[fr.subprog];
        *depth = (*depth).max((-lo) as u32);
        let konst = p.var.as_const().is_some();
        let idx = |o: i64| (((o + 512) / 8) as usize, ((o + 512) % 8) as usize);
        let priv_ = self.env.privileged;
        match kind {
            Kind::Read { .. } | Kind::Atomic if konst => {
                let sign = acc.sign();
                let (s, b) = idx(lo);
                if let Slot::Spill(r) = fr.stack[s] {
                    if size == 8 && b == 0 {
                        if matches!(kind, Kind::Atomic) {
                            if r.ty.is_pointer() && !priv_ {
                                return Err(Reject::acces(
                                    pc,
                                    "attempt to corrupt spilled pointer on stack",
                                ));
                            }
                            fr.stack[s] = Slot::Spill(loaded(8, false));
                        }
                        return Ok(r);
                    }
                    if r.ty.is_pointer() && !priv_ {
                        return Err(Reject::acces(pc, "invalid size of register fill"));
                    }
                }
                let mut all_zero = true;
                for o in lo..hi {
                    let (s, b) = idx(o);
                    match fr.stack[s].byte(b) {
                        ByteKind::Invalid if !priv_ => {
                            return Err(Reject::acces(
                                pc,
                                format_args!(
                                    "invalid read from stack off {lo}+{} size {size}",
                                    o - lo
                                ),
                            ));
                        }
                        ByteKind::Zero => {}
                        _ => all_zero = false,
                    }
                }
                if matches!(kind, Kind::Atomic) {
                    write_bytes(fr, lo, hi, ByteKind::Misc);
                }
                Ok(if all_zero {
                    Reg::scalar(Scalar::konst(0))
                } else {
                    loaded(size, sign)
                })
            }
            Kind::Read { sign } => {
                // Privileged variable-offset read: every byte in range must be written.
                for o in lo..hi {
                    let (s, b) = idx(o);
                    if fr.stack[s].byte(b) == ByteKind::Invalid {
                        return Err(Reject::acces(
                            pc,
                            format_args!(
                                "invalid variable-offset read from stack R{regno} var_off={} off={off} size={size}",
                                p.var.var
                            ),
                        ));
                    }
                }
                Ok(loaded(size, sign))
            }
            Kind::Atomic => {
                write_bytes(fr, lo, hi, ByteKind::Misc);
                Ok(loaded(size, false))
            }
            Kind::Write { val: v, .. } => {
                let (s, b) = idx(lo);
                if konst && size == 8 && b == 0 {
                    fr.stack[s] = Slot::Spill(v);
                    return Ok(v);
                }
                if v.ty.is_pointer() {
                    return Err(Reject::acces(pc, "invalid size of register spill"));
                }
                for o in lo..hi {
                    let (s, _) = idx(o);
                    if let Slot::Spill(r) = fr.stack[s] {
                        if r.ty.is_pointer() && !priv_ {
                            return Err(Reject::acces(
                                pc,
                                "attempt to corrupt spilled pointer on stack",
                            ));
                        }
                    }
                }
                let k = if konst && v.var.as_const() == Some(0) {
                    ByteKind::Zero
                } else {
                    ByteKind::Misc
                };
                write_bytes(fr, lo, hi, k);
                Ok(v)
            }
        }
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

/// Marks stack bytes `[lo, hi)` as `k`, turning touched spill slots into bytes.
fn write_bytes(fr: &mut super::state::Frame, lo: i64, hi: i64, k: ByteKind) {
    for o in lo..hi {
        let (s, b) = (((o + 512) / 8) as usize, ((o + 512) % 8) as usize);
        if let Slot::Spill(_) = fr.stack[s] {
            let bytes = core::array::from_fn(|i| fr.stack[s].byte(i));
            fr.stack[s] = Slot::Bytes(bytes);
        }
        if let Slot::Bytes(bytes) = &mut fr.stack[s] {
            bytes[b] = k;
        }
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
