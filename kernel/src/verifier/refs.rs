//! Reference tracking and the objects references point to: sockets from helpers and kernel
//! objects from kfuncs.
//!
//! Mirrors `acquire_reference` (`acquire_reference_state`), `release_reference`,
//! `release_reference_state`, `mark_reg_invalid`, `check_reference_leak`,
//! `mark_ptr_or_null_regs`/`mark_ptr_or_null_reg`, `check_sock_access`
//! (`bpf_sock_is_valid_access` of `net/core/filter.c`) and `check_ptr_to_btf_access` of
//! `kernel/bpf/verifier.c`.
//!
//! A helper or kfunc that acquires gives its result a fresh reference id (`ref_obj_id`, also
//! its null-check `id`) and records `(id, insn)` in the path's [`VState::refs`]. The null check
//! `if rX == 0` turns every copy into the non-NULL pointer or, on the NULL branch, the scalar 0
//! and drops the reference there (nothing was acquired). Releasing removes the reference and
//! invalidates every register and spilled copy holding it (uninitialized; unknown scalars for
//! root), so a later use or a second release is refused. `exit` from the main program and
//! `bpf_tail_call` are refused while a reference is held.

use super::bounds::Scalar;
use super::explore::Explorer;
use super::log::Reject;
use super::mem::{Access, Kind, Stored, loaded};
use super::state::{RefState, Reg, RegType, VState};
use crate::Errno;
use core::fmt::Write;

/// The non-NULL type of a maybe-NULL pointer type, or `None` when `t` cannot be NULL.
pub fn or_null_base(t: RegType) -> Option<RegType> {
    match t {
        RegType::PtrToMapValueOrNull => Some(RegType::PtrToMapValue),
        RegType::PtrToSocketOrNull => Some(RegType::PtrToSocket),
        RegType::PtrToSockCommonOrNull => Some(RegType::PtrToSockCommon),
        RegType::PtrToBtfIdOrNull(s) => Some(RegType::PtrToBtfId(s)),
        _ => None,
    }
}

/// After `if rX == 0` on a maybe-NULL pointer with null-check id `id`: every register with that
/// id becomes the pointer (`null == false`) or the scalar 0; on the NULL branch a reference
/// acquired with the pointer itself is dropped (`mark_ptr_or_null_regs`).
pub fn mark_ptr_or_null_regs(st: &mut VState, id: u32, ref_obj_id: u32, null: bool) {
    if null && ref_obj_id != 0 && ref_obj_id == id {
        st.refs.retain(|r| r.id != id);
    }
    st.for_each_reg(|r| {
        if r.id != id {
            return;
        }
        if let Some(base) = or_null_base(r.ty) {
            if null {
                *r = Reg::scalar(Scalar::konst(0));
            } else {
                r.ty = base;
                r.id = 0;
            }
        }
    });
}

impl Explorer<'_> {
    /// Records a new reference acquired at `pc` and returns its id (`acquire_reference`).
    pub(super) fn acquire_reference(&mut self, st: &mut VState, pc: usize) -> u32 {
        let id = self.new_id();
        st.refs.push(RefState { id, insn: pc });
        id
    }

    /// Releases reference `id`: it leaves the path's list and every register holding it
    /// becomes unusable (`release_reference` + `mark_reg_invalid`).
    pub(super) fn release_reference(
        &self,
        st: &mut VState,
        pc: usize,
        id: u32,
        what: &str,
    ) -> Result<(), Reject> {
        let Some(i) = st.refs.iter().position(|r| r.id == id) else {
            return Err(Reject::new(
                Errno::EINVAL,
                pc,
                format_args!("func {what} reference has not been acquired before"),
            ));
        };
        st.refs.remove(i);
        let invalid = if self.env.privileged {
            Reg::scalar(Scalar::UNKNOWN)
        } else {
            Reg::NOT_INIT
        };
        for fr in &mut st.frames {
            for r in fr.regs.iter_mut() {
                if r.ref_obj_id == id {
                    *r = invalid;
                }
            }
            // A spilled copy stays a spill, of the invalidated register: filling it is fine,
            // using the filled register is not (unprivileged).
            for s in fr.stack.iter_mut() {
                if let Some(r) = s.spill_mut().filter(|r| r.ref_obj_id == id) {
                    *r = invalid;
                }
            }
        }
        Ok(())
    }

    /// Refuses leaving the program (`what`: the kernel's name for the way out — `exit` from the
    /// main program, `tail_call`, a failing legacy packet load) while
    /// a reference is held (`check_reference_leak`).
    pub(super) fn check_reference_leak(
        &self,
        st: &VState,
        pc: usize,
        what: &str,
    ) -> Result<(), Reject> {
        if st.refs.is_empty() {
            return Ok(());
        }
        let mut msg = alloc::string::String::new();
        for r in &st.refs {
            let _ = writeln!(
                msg,
                "Unreleased reference id={} alloc_insn={}",
                r.id, r.insn
            );
        }
        let _ = write!(msg, "{what} would lead to reference leak");
        Err(Reject::new(Errno::EINVAL, pc, msg))
    }

    /// A load, store or atomic through a socket or kernel-object pointer `p`. Sockets are
    /// read-only `struct bpf_sock`s; kernel objects may be read within the struct's exposed
    /// size and written only in its writable fields.
    pub(super) fn check_obj_access(&self, acc: &Access, p: &Reg) -> Result<Reg, Reject> {
        let (pc, ptrno, off, size, sign) = (acc.pc, acc.regno, acc.off, acc.size, acc.sign());
        let write = match acc.kind {
            Kind::Write(Stored::Reg { regno, val }) => Some((val, regno)),
            Kind::Write(_) => Some((loaded(size, false), ptrno)),
            Kind::Read { .. } => None,
        };
        let total = p.off as i64 + off as i64;
        match p.ty {
            t @ (RegType::PtrToSocket | RegType::PtrToSockCommon) => {
                let name = t.name();
                if write.is_some() {
                    return Err(Reject::acces(
                        pc,
                        format_args!("R{ptrno} cannot write into {name}"),
                    ));
                }
                let ok = if t == RegType::PtrToSocket {
                    crate::net::sock::bpf_sock_is_valid_access(total, size)
                } else {
                    crate::net::sock::bpf_sock_common_is_valid_access(total, size)
                };
                if !ok {
                    return Err(Reject::acces(
                        pc,
                        format_args!("R{ptrno} invalid {name} access off={total} size={size}"),
                    ));
                }
                Ok(loaded(size, sign))
            }
            RegType::PtrToBtfId(s) => {
                // `check_ptr_to_btf_access`: kernel objects are read only with
                // `allow_ptr_leaks` (CAP_PERFMON), then the offset checks.
                if !self.env.privileged {
                    return Err(Reject::new(
                        Errno::EPERM,
                        pc,
                        format_args!(
                            "'struct {}' access is allowed only to CAP_PERFMON and CAP_SYS_ADMIN",
                            s.name
                        ),
                    ));
                }
                if total < 0 {
                    return Err(Reject::acces(
                        pc,
                        format_args!(
                            "R{ptrno} is ptr_{} invalid negative access: off={total}",
                            s.name
                        ),
                    ));
                }
                if p.var.as_const() != Some(0) {
                    return Err(Reject::acces(
                        pc,
                        format_args!(
                            "R{ptrno} is ptr_{} invalid variable offset: off={total}, var_off={}",
                            s.name, p.var.var
                        ),
                    ));
                }
                if write.is_some() {
                    // The struct's `btf_struct_access` callback (`_nf_conntrack_btf_struct_access`
                    // for `nf_conn` and its `___init` flavour): a write must start at a writable
                    // field and end inside it.
                    let base = s.name.split("___").next().unwrap_or(s.name);
                    let Some(&(o, n)) = s.writable.iter().find(|&&(o, _)| total == o as i64) else {
                        return Err(Reject::acces(
                            pc,
                            format_args!("no write support to {base} at off {total}"),
                        ));
                    };
                    if total + size as i64 > o as i64 + n as i64 {
                        return Err(Reject::acces(
                            pc,
                            format_args!(
                                "write access at off {total} with size {size} beyond the member of {base} ended at {}",
                                o + n
                            ),
                        ));
                    }
                }
                if total + size as i64 > s.size as i64 {
                    return Err(Reject::acces(
                        pc,
                        format_args!("access beyond struct {} at off {total} size {size}", s.name),
                    ));
                }
                Ok(write.map_or_else(|| loaded(size, sign), |(v, _)| v))
            }
            t => Err(Reject::acces(
                pc,
                format_args!("R{ptrno} invalid mem access '{}'", t.name()),
            )),
        }
    }
}
