//! Arguments of helper and kfunc calls, checked in one place for both (`check_func_arg`,
//! `check_kfunc_args`, `check_helper_mem_access`, `check_mem_size_reg`,
//! `check_func_arg_reg_off` and the return-value setup of `check_helper_call` /
//! `check_kfunc_call` in `kernel/bpf/verifier.c`).
//!
//! A memory argument ([`MemArg`]) points to bytes the function reads (stack bytes written, a map
//! value or packet range in bounds) or fills (`ARG_PTR_TO_UNINIT_MEM`: stack bytes become
//! written); its size is fixed (a map's key or value size, a struct's size) or the next
//! register, a bounded non-negative scalar. A context argument must be the unmodified context.
//! A release argument must hold a reference, at the object's start. After the call R1–R5 are
//! dead and R0 holds the result ([`Explorer::finish_call`]); a returned pointer may carry a new
//! reference and, when it may be NULL, an id for its NULL check ([`Explorer::ret_pointer`]).

use super::ctx::PktAccess;
use super::explore::Explorer;
use super::log::Reject;
use super::mem::{Access, map_value_region};
use super::state::{Reg, RegType, VState};
use crate::Errno;

/// How big a memory argument is.
#[derive(Clone, Copy, Debug)]
pub(super) enum MemSize {
    /// A size the prototype fixes.
    Fixed(usize),
    /// The value of register `regno` (`ARG_CONST_SIZE`, a kfunc's `__sz` argument);
    /// `zero_ok`: 0 is a valid size.
    Reg {
        /// The size register.
        regno: u8,
        /// Whether 0 is allowed (`ARG_CONST_SIZE_OR_ZERO`).
        zero_ok: bool,
    },
}

/// A memory argument of a helper or kfunc.
#[derive(Clone, Copy, Debug)]
pub(super) struct MemArg {
    /// The pointer register.
    pub regno: u8,
    /// Its size.
    pub size: MemSize,
    /// The function writes the memory without reading it first (`ARG_PTR_TO_UNINIT_MEM`).
    pub uninit: bool,
    /// For a kfunc: the argument's index. A NULL pointer is refused whatever the size, as
    /// Linux 6.18 refuses it (every kfunc pointer argument is trusted); memory of size 0 is
    /// not checked.
    pub null_arg: Option<usize>,
}

impl Explorer<'_> {
    /// A memory argument: its size, then the memory.
    pub(super) fn check_mem_arg(
        &mut self,
        st: &mut VState,
        pc: usize,
        arg: MemArg,
    ) -> Result<(), Reject> {
        if let Some(i) = arg.null_arg {
            let reg = *st.reg(arg.regno);
            if reg.ty == RegType::Scalar && reg.var.as_const() == Some(0) {
                return Err(Reject::acces(
                    pc,
                    format_args!("Possibly NULL pointer passed to trusted arg{i}"),
                ));
            }
        }
        let size = match arg.size {
            MemSize::Fixed(n) => n as u64,
            MemSize::Reg { regno, zero_ok } => self.check_mem_size_reg(st, pc, regno, zero_ok)?,
        };
        if arg.null_arg.is_some() && size == 0 {
            return Ok(());
        }
        if arg.uninit {
            self.check_helper_uninit_mem(st, pc, arg.regno, size as usize)
        } else {
            self.check_helper_mem(st, pc, arg.regno, size as usize)
        }
    }

    /// After a call: R1–R5 are dead, R0 holds `r0`.
    pub(super) fn finish_call(&self, st: &mut VState, r0: Reg) {
        for r in 1..=5 {
            *st.reg_mut(r) = Reg::NOT_INIT;
        }
        *st.reg_mut(0) = r0;
    }

    /// A pointer of type `ty` a call at `pc` returns: with a new reference when the function
    /// acquires one, and an id for its NULL check when it may be NULL (the reference's own id
    /// for an acquired one, so that the NULL branch drops the reference).
    pub(super) fn ret_pointer(
        &mut self,
        st: &mut VState,
        pc: usize,
        ty: RegType,
        acquire: bool,
    ) -> Reg {
        let mut r = Reg::ptr(ty, 0);
        if acquire {
            r.ref_obj_id = self.acquire_reference(st, pc);
        }
        if super::refs::or_null_base(ty).is_some() {
            r.id = if acquire { r.ref_obj_id } else { self.new_id() };
        }
        r
    }

    /// A helper argument pointing to `size` bytes the helper reads (`check_helper_mem_access`
    /// for map keys and values): stack bytes must be written, map values in bounds.
    pub(super) fn check_helper_mem(
        &mut self,
        st: &mut VState,
        pc: usize,
        regno: u8,
        size: usize,
    ) -> Result<(), Reject> {
        let p = *st.reg(regno);
        let acc = Access::helper_arg(pc, regno, size);
        match p.ty {
            RegType::PtrToStack { .. } => self.stack_helper_mem(st, pc, regno, size, false),
            RegType::PtrToMapValue => {
                let attr = self.map_attr(pc, p.map)?;
                self.check_bounded(&acc, &p, map_value_region(&attr))
            }
            // The map helpers read packet memory (`pkt_access` in their prototypes).
            RegType::PtrToPacket | RegType::PtrToPacketMeta
                if self.ctx.pkt_access() != PktAccess::None =>
            {
                self.check_packet_access(pc, regno, &p, p.off as i64, size)
            }
            t => Err(Reject::acces(
                pc,
                format_args!(
                    "R{regno} type={} expected=fp, pkt, pkt_meta, map_key, map_value",
                    t.name()
                ),
            )),
        }
    }

    /// A helper argument pointing to `size` bytes the helper writes without reading them first
    /// (`ARG_PTR_TO_UNINIT_MEM`): stack bytes in the frame become written, a map value must be
    /// in bounds and writable.
    pub(super) fn check_helper_uninit_mem(
        &mut self,
        st: &mut VState,
        pc: usize,
        regno: u8,
        size: usize,
    ) -> Result<(), Reject> {
        let p = *st.reg(regno);
        match p.ty {
            RegType::PtrToStack { .. } => self.stack_helper_mem(st, pc, regno, size, true),
            RegType::PtrToMapValue => {
                let attr = self.map_attr(pc, p.map)?;
                if attr.flags.contains(crate::uapi::MapFlags::RDONLY_PROG) {
                    return Err(Reject::acces(pc, "write into map forbidden"));
                }
                self.check_helper_mem(st, pc, regno, size)
            }
            _ => self.check_helper_mem(st, pc, regno, size),
        }
    }

    /// The size argument `regno` of a memory argument (`check_mem_size_reg`): a scalar that is
    /// non-negative, bounded and (unless `zero_ok`) non-zero. Returns the largest size.
    pub(super) fn check_mem_size_reg(
        &self,
        st: &VState,
        pc: usize,
        regno: u8,
        zero_ok: bool,
    ) -> Result<u64, Reject> {
        let r = self.read(st, pc, regno)?;
        if r.ty != RegType::Scalar {
            return Err(Reject::acces(
                pc,
                format_args!("R{regno} type={} expected=scalar", r.ty.name()),
            ));
        }
        if r.var.smin < 0 {
            return Err(Reject::acces(
                pc,
                format_args!(
                    "R{regno} min value is negative, either use unsigned or 'var &= const'"
                ),
            ));
        }
        if r.var.umin == 0 && !zero_ok {
            return Err(Reject::acces(
                pc,
                format_args!(
                    "R{regno} invalid zero-sized read: u64=[{},{}]",
                    r.var.umin, r.var.umax
                ),
            ));
        }
        if r.var.umax >= 1 << 29 {
            return Err(Reject::acces(
                pc,
                format_args!(
                    "R{regno} unbounded memory access, use 'var &= const' or 'if (var < const)'"
                ),
            ));
        }
        Ok(r.var.umax)
    }
}

/// A context pointer passed to a helper or kfunc, or accessed in a kernel type's context, must
/// be the unmodified context (`__check_ptr_off_reg`: the kernel's messages for a negative, a
/// fixed and a variable offset).
pub(super) fn check_ctx_unmodified(pc: usize, r: u8, reg: &Reg) -> Result<(), Reject> {
    let name = reg.ty.name();
    let off = reg.off;
    if off < 0 {
        return Err(Reject::acces(
            pc,
            format_args!("negative offset {name} ptr R{r} off={off} disallowed"),
        ));
    }
    if off != 0 {
        return Err(Reject::acces(
            pc,
            format_args!("dereference of modified {name} ptr R{r} off={off} disallowed"),
        ));
    }
    if reg.var.as_const() != Some(0) {
        return Err(Reject::acces(
            pc,
            format_args!(
                "variable {name} access var_off={} disallowed",
                super::tnum::tnum_str(reg.var.var)
            ),
        ));
    }
    Ok(())
}

/// The reference a release argument gives back: the pointer must hold one and point at the
/// object's start (`check_release_regno` / `check_func_arg_reg_off` for release functions).
pub(super) fn released_ref(pc: usize, r: u8, reg: &Reg) -> Result<u32, Reject> {
    if reg.ref_obj_id == 0 {
        return Err(Reject::new(
            Errno::EINVAL,
            pc,
            format_args!("R{r} must be referenced when passed to release function"),
        ));
    }
    if reg.off != 0 {
        return Err(Reject::new(
            Errno::EINVAL,
            pc,
            format_args!(
                "R{r} must have zero offset when passed to release func or trusted arg to kfunc"
            ),
        ));
    }
    Ok(reg.ref_obj_id)
}
