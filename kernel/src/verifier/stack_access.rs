//! Loads, stores, atomics and helper arguments through stack pointers: the bounds of an access,
//! spills and fills of registers, the byte kinds of the rest (`check_stack_access_within_bounds`,
//! `check_stack_read_fixed_off`, `check_stack_read_var_off`, `check_stack_write_fixed_off`,
//! `check_stack_write_var_off`, `check_stack_range_initialized` of `kernel/bpf/verifier.c`).
//!
//! Bounds: every byte of an access lies in `[-512, 0)` of the frame the pointer points into;
//! in the default mode a load must also stay within the stack the path has already touched
//! (`allocated_stack`: reading below it is reading unwritten memory), else "invalid read from
//! stack R10 off=-64 size=8". An access grows the touched area.
//!
//! Stores ([`super::state::Slot`]): a register stored at a slot's start spills it — a scalar
//! with a store of any size (the whole register is kept; a fill of the same size or smaller
//! from the slot's start gives it back, truncated), a pointer only with an 8-byte store
//! ("invalid size of register spill" otherwise), never a pointer to the callee's stack into
//! its caller's frame. `st` at a slot's start spills its immediate. Every other store makes
//! its bytes data, zero when the value is the constant 0; in the default mode it may not
//! overwrite part of a spilled pointer.
//!
//! Loads: a whole spill of any register is filled back as it was; a pointer may only be
//! filled whole, in both modes ("invalid size of register fill"); anything else reads bytes,
//! which must have been written in the default mode, and gives an unknown value, or zero
//! when all are zero. An atomic first reads without a destination ("leaking pointer from
//! stack" for a spilled pointer in the default mode), then writes unknown data.
//!
//! Variable offsets exist only under root's rules (the default mode refuses them when the
//! pointer is computed): a load reads every byte in range, a store makes every byte in range
//! data.
//!
//! Scalar ids ([`super::linked`]): a spill of a scalar that fits the store shares the
//! register's id; a fill of the same width shares the spill's, a narrowing one does not.

use super::bounds::Scalar;
use super::explore::Explorer;
use super::log::Reject;
use super::mem::{Access, Kind, Stored};
use super::state::{ByteKind, Reg, RegType, VState};
use crate::Errno;
use crate::uapi::limits::MAX_BPF_STACK;

/// The slot index and the byte within it of stack offset `o` (`-512 <= o < 0`).
fn slot_of(o: i64) -> (usize, usize) {
    let a = (o + MAX_BPF_STACK as i64) as usize;
    (a / 8, a % 8)
}

/// Offsets beyond this from a variable-offset pointer are refused (`BPF_MAX_VAR_OFF`).
const MAX_VAR_OFF: i64 = 1 << 29;

/// Bits needed for the largest value of a scalar (`get_reg_width`).
pub(super) fn reg_width(r: &Reg) -> u32 {
    64 - r.var.umax.leading_zeros()
}

impl Explorer<'_> {
    /// A load, store or atomic part through the stack pointer `p` into frame `frame`
    /// (`check_mem_access`'s `PTR_TO_STACK` case): the value a load gives.
    pub(super) fn stack_access(
        &mut self,
        st: &mut VState,
        acc: &Access,
        p: &Reg,
        frame: u8,
    ) -> Result<Reg, Reject> {
        let (lo, hi) = self.stack_bounds(st, acc, p, frame)?;
        let fixed = p.var.as_const().is_some();
        match acc.kind {
            Kind::Read { sign, into } if fixed => {
                self.stack_read_fixed(st, acc, frame, lo, into, sign)
            }
            Kind::Read { into: false, .. } => Err(Reject::acces(
                acc.pc,
                format_args!(
                    "variable offset stack pointer cannot be passed into helper function; var_off={} off={} size={}",
                    super::tnum::tnum_str(p.var.var),
                    p.off as i64 + acc.off as i64,
                    acc.size
                ),
            )),
            Kind::Read { .. } => {
                self.stack_range_initialized(st, acc, p, frame, (lo, hi), false)?;
                Ok(zero_or_unknown(st, frame, lo, hi))
            }
            Kind::Write(v) if fixed => {
                self.stack_write_fixed(st, acc.pc, frame, lo, acc.size, v)?;
                Ok(Reg::NOT_INIT)
            }
            Kind::Write(v) => {
                self.stack_write_var(st, acc.pc, frame, (lo, hi), v)?;
                Ok(Reg::NOT_INIT)
            }
        }
    }

    /// The byte range `[lo, hi)` an access touches, within the frame and, for a load in the
    /// default mode, within the stack already touched; grows the touched stack and the
    /// subprogram's depth (`check_stack_access_within_bounds`, `grow_stack_state`).
    pub(super) fn stack_bounds(
        &mut self,
        st: &mut VState,
        acc: &Access,
        p: &Reg,
        frame: u8,
    ) -> Result<(i64, i64), Reject> {
        let (pc, regno, size) = (acc.pc, acc.regno, acc.size as i64);
        let what = if acc.write() { "write to" } else { "read from" };
        let off = p.off as i64 + acc.off as i64;
        let (lo, hi) = match p.var.as_const() {
            Some(v) => {
                let lo = (v as i64).wrapping_add(off);
                (lo, lo + size)
            }
            None => {
                if p.var.smax >= MAX_VAR_OFF || p.var.smin <= -MAX_VAR_OFF {
                    return Err(Reject::acces(
                        pc,
                        format_args!("invalid unbounded variable-offset {what} stack R{regno}"),
                    ));
                }
                (p.var.smin + off, p.var.smax + off + size)
            }
        };
        let fr = &mut st.frames[frame as usize];
        let min_valid = if acc.write() || self.env.privileged {
            -(MAX_BPF_STACK as i64)
        } else {
            -(fr.stack.allocated() as i64)
        };
        let errno = if lo < min_valid || lo > -1 {
            Some(Errno::EACCES)
        } else if hi > 0 {
            Some(Errno::EINVAL)
        } else {
            None
        };
        if let Some(errno) = errno {
            return Err(match p.var.as_const() {
                Some(_) => Reject::new(
                    errno,
                    pc,
                    format_args!("invalid {what} stack R{regno} off={off} size={size}"),
                ),
                None => Reject::new(
                    errno,
                    pc,
                    format_args!(
                        "invalid variable-offset {what} stack R{regno} var_off={} off={off} size={size}",
                        super::tnum::tnum_str(p.var.var)
                    ),
                ),
            });
        }
        fr.stack.grow((-lo) as usize);
        let depth = &mut self.stack_depth[fr.subprog];
        *depth = (*depth).max(fr.stack.allocated() as u32);
        Ok((lo, hi))
    }

    /// A load of `acc.size` bytes at the fixed offset `off` (`check_stack_read_fixed_off`);
    /// `into`: the value goes to a register (else only whether it may be read matters).
    fn stack_read_fixed(
        &mut self,
        st: &mut VState,
        acc: &Access,
        frame: u8,
        off: i64,
        into: bool,
        sign: bool,
    ) -> Result<Reg, Reject> {
        let (pc, size) = (acc.pc, acc.size);
        let priv_ = self.env.privileged;
        let (s, b) = slot_of(off);
        let fr = &mut st.frames[frame as usize];
        let slot = fr.stack[s];
        let bad = |i: usize| {
            Reject::acces(
                pc,
                format_args!("invalid read from stack off {off}+{i} size {size}"),
            )
        };
        let Some(spilled) = slot.spill().copied() else {
            for i in 0..size {
                match slot.byte(b + i) {
                    ByteKind::Misc | ByteKind::Zero => {}
                    ByteKind::Invalid if priv_ => {}
                    _ => return Err(bad(i)),
                }
            }
            return Ok(zero_or_unknown(st, frame, off, off + size as i64));
        };
        let spill_size = slot.spill_size();
        if size == 8 && spill_size == 8 {
            if into {
                return Ok(spilled);
            }
            if spilled.ty.is_pointer() && !priv_ {
                return Err(Reject::acces(
                    pc,
                    format_args!("leaking pointer from stack off {off}"),
                ));
            }
            return Ok(Reg::NOT_INIT);
        }
        if spilled.ty != RegType::Scalar {
            return Err(Reject::acces(pc, "invalid size of register fill"));
        }
        if size <= spill_size && b == 0 {
            if !into {
                return Ok(Reg::NOT_INIT);
            }
            // A fill of the spill's own width keeps the link to the register spilled (the
            // spill gets an id for it); a narrowing one cannot, nor can one that changes the
            // value by sign extension.
            if size == 4 && spill_size == 4 && reg_width(&spilled) <= 32 {
                self.scalar_id_before_mov(&mut fr.stack[s].reg);
            }
            let mut r = fr.stack[s].reg;
            let sign_changes = sign && r.var.umax >= 1u64 << (size * 8 - 1);
            if reg_width(&r) > size as u32 * 8 || sign_changes {
                r.clear_scalar_id();
            }
            return Ok(r);
        }
        let (mut spills, mut zeros) = (0, 0);
        for i in 0..size {
            match slot.byte(b + i) {
                ByteKind::Spill => spills += 1,
                ByteKind::Misc => {}
                ByteKind::Zero => zeros += 1,
                ByteKind::Invalid if priv_ => {}
                ByteKind::Invalid => return Err(bad(i)),
            }
        }
        // All of it the spill of a zero, or all zero bytes: zero.
        let zero = (spills == size && spilled.var.as_const() == Some(0)) || zeros == size;
        Ok(Reg::scalar(if zero {
            Scalar::konst(0)
        } else {
            Scalar::UNKNOWN
        }))
    }

    /// A store of `size` bytes at the fixed offset `off` (`check_stack_write_fixed_off`).
    pub(super) fn stack_write_fixed(
        &mut self,
        st: &mut VState,
        pc: usize,
        frame: u8,
        off: i64,
        size: usize,
        v: Stored,
    ) -> Result<(), Reject> {
        let priv_ = self.env.privileged;
        let cur_frame = st.frames.len() - 1;
        let (s, b) = slot_of(off);
        let slot = st.frames[frame as usize].stack[s];
        if !priv_ && slot.spill().is_some_and(|r| r.ty != RegType::Scalar) && size != 8 {
            return Err(Reject::acces(
                pc,
                "attempt to corrupt spilled pointer on stack",
            ));
        }
        match v {
            Stored::Reg { regno, val } if b == 0 && val.ty == RegType::Scalar => {
                let mut val = val;
                let fits = reg_width(&val) <= size as u32 * 8;
                if fits {
                    let r = st.reg_mut(regno);
                    self.scalar_id_before_mov(r);
                    val = *r;
                } else {
                    val.clear_scalar_id();
                }
                st.frames[frame as usize].stack[s].spill_reg(val, size);
            }
            Stored::Imm(imm) if b == 0 => {
                let k = Reg::scalar(Scalar::konst(imm as i64 as u64));
                st.frames[frame as usize].stack[s].spill_reg(k, size);
            }
            Stored::Reg { val, .. } if val.ty.is_pointer() => {
                if size != 8 {
                    return Err(Reject::acces(pc, "invalid size of register spill"));
                }
                if frame as usize != cur_frame && matches!(val.ty, RegType::PtrToStack { .. }) {
                    return Err(Reject::new(
                        Errno::EINVAL,
                        pc,
                        "cannot spill pointers to stack into stack frame of the caller",
                    ));
                }
                st.frames[frame as usize].stack[s].spill_reg(val, 8);
            }
            _ => {
                let zero = match v {
                    Stored::Reg { regno, val }
                        if val.ty == RegType::Scalar && val.var.as_const() == Some(0) =>
                    {
                        // The slot keeps "zero" only as long as the value really is 0.
                        self.need_precise(st, regno);
                        true
                    }
                    Stored::Imm(0) => true,
                    _ => false,
                };
                let k = if zero { ByteKind::Zero } else { ByteKind::Misc };
                let slot = &mut st.frames[frame as usize].stack[s];
                slot.scrub_spill();
                for i in 0..size {
                    slot.bytes[b + i] = k;
                }
            }
        }
        Ok(())
    }

    /// A store through a variable-offset pointer over `[lo, hi)`
    /// (`check_stack_write_var_off`): every byte in range becomes data; a zero stored over
    /// zero bytes and zero spills keeps them.
    fn stack_write_var(
        &mut self,
        st: &mut VState,
        pc: usize,
        frame: u8,
        (lo, hi): (i64, i64),
        v: Stored,
    ) -> Result<(), Reject> {
        let priv_ = self.env.privileged;
        let zero_reg = match v {
            Stored::Reg { regno, val } if val.ty == RegType::Scalar => {
                (val.var.as_const() == Some(0)).then_some(Some(regno))
            }
            Stored::Imm(0) => Some(None),
            _ => None,
        };
        let writing_zero = zero_reg.is_some();
        let mut zero_used = false;
        let fr = &mut st.frames[frame as usize];
        for o in lo..hi {
            let (s, b) = slot_of(o);
            let slot = &mut fr.stack[s];
            let k = slot.byte(b);
            if !priv_ && !matches!(k, ByteKind::Misc | ByteKind::Zero) {
                return Err(Reject::new(
                    Errno::EINVAL,
                    pc,
                    format_args!(
                        "spilled ptr in range of var-offset stack write; insn {pc}, ptr off: {o}"
                    ),
                ));
            }
            let zero_spill = slot
                .spill()
                .is_some_and(|r| r.ty == RegType::Scalar && r.var.as_const() == Some(0));
            if writing_zero && k == ByteKind::Spill && zero_spill {
                zero_used = true;
                continue;
            }
            // The spill is gone, though its other bytes keep their kind (as in the kernel).
            slot.reg = Reg::NOT_INIT;
            let mut new = ByteKind::Misc;
            if writing_zero && k == ByteKind::Zero {
                new = ByteKind::Zero;
                zero_used = true;
            }
            if k == ByteKind::Invalid && !priv_ {
                return Err(Reject::new(
                    Errno::EINVAL,
                    pc,
                    format_args!(
                        "uninit stack in range of var-offset write prohibited for !root; insn {pc}, off: {o}"
                    ),
                ));
            }
            slot.bytes[b] = new;
        }
        if let (true, Some(Some(regno))) = (zero_used, zero_reg) {
            self.need_precise(st, regno);
        }
        Ok(())
    }

    /// Every byte of `[lo, hi)` (`hi` past the largest offset's access) may be read by a
    /// helper or a variable-offset load (`check_stack_range_initialized`); `clobber`: the
    /// helper writes it, so it becomes data.
    fn stack_range_initialized(
        &mut self,
        st: &mut VState,
        acc: &Access,
        p: &Reg,
        frame: u8,
        (lo, hi): (i64, i64),
        clobber: bool,
    ) -> Result<(), Reject> {
        let (pc, regno, size) = (acc.pc, acc.regno, acc.size);
        let priv_ = self.env.privileged;
        let fr = &mut st.frames[frame as usize];
        for o in lo..hi {
            let (s, b) = slot_of(o);
            let slot = &mut fr.stack[s];
            let ok = match slot.byte(b) {
                ByteKind::Misc => true,
                ByteKind::Zero => true,
                ByteKind::Invalid => priv_,
                ByteKind::Spill => slot.reg.ty == RegType::Scalar || priv_,
            };
            if !ok {
                return Err(match p.var.as_const() {
                    Some(_) => Reject::acces(
                        pc,
                        format_args!(
                            "invalid read from stack R{regno} off {lo}+{} size {size}",
                            o - lo
                        ),
                    ),
                    None => Reject::acces(
                        pc,
                        format_args!(
                            "invalid read from stack R{regno} var_off {}+{} size {size}",
                            super::tnum::tnum_str(p.var.var),
                            o - lo
                        ),
                    ),
                });
            }
            if clobber {
                // The helper may write anything: a spill there is gone.
                slot.scrub_spill();
                slot.bytes[b] = ByteKind::Misc;
            }
        }
        Ok(())
    }

    /// A helper's memory argument of `size` bytes through the stack pointer in R`regno`
    /// (`check_helper_mem_access` for `PTR_TO_STACK`): read by the helper (`uninit` false:
    /// every byte initialized) or filled by it (`ARG_PTR_TO_UNINIT_MEM`: every byte becomes
    /// data, byte by byte as the kernel simulates it).
    pub(super) fn stack_helper_mem(
        &mut self,
        st: &mut VState,
        pc: usize,
        regno: u8,
        size: usize,
        uninit: bool,
    ) -> Result<(), Reject> {
        let p = *st.reg(regno);
        let RegType::PtrToStack { frame } = p.ty else {
            return Ok(());
        };
        let kind = if uninit {
            Kind::Write(Stored::Unknown)
        } else {
            Kind::Read {
                sign: false,
                into: true,
            }
        };
        let acc = Access {
            pc,
            regno,
            off: 0,
            size,
            kind,
            strict: false,
        };
        let (lo, hi) = self.stack_bounds(st, &acc, &p, frame)?;
        let fixed = p.var.as_const().is_some();
        if !fixed && !self.env.privileged {
            return Err(Reject::acces(
                pc,
                format_args!(
                    "R{regno} variable offset stack access prohibited for !root, var_off={}",
                    super::tnum::tnum_str(p.var.var)
                ),
            ));
        }
        if uninit && fixed {
            for i in 0..size as i64 {
                self.stack_write_fixed(st, pc, frame, lo + i, 1, Stored::Unknown)?;
            }
            return Ok(());
        }
        self.stack_range_initialized(st, &acc, &p, frame, (lo, hi), uninit)
    }
}

/// What a load of `[lo, hi)` that is not a fill gives: zero when every byte is a zero, else
/// unknown (`mark_reg_stack_read`).
fn zero_or_unknown(st: &VState, frame: u8, lo: i64, hi: i64) -> Reg {
    let fr = &st.frames[frame as usize];
    let zero = (lo..hi).all(|o| {
        let (s, b) = slot_of(o);
        fr.stack[s].byte(b) == ByteKind::Zero
    });
    Reg::scalar(if zero {
        Scalar::konst(0)
    } else {
        Scalar::UNKNOWN
    })
}
