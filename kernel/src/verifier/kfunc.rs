//! Kfunc calls (`call` with `src_reg` = `BPF_PSEUDO_KFUNC_CALL`) checked against the
//! [`crate::kfunc`] registry (`check_kfunc_call`, `check_kfunc_args`, `fetch_kfunc_meta` of
//! `kernel/bpf/verifier.c`).
//!
//! The id must name a registered function ("kernel btf_id N is not a function", `EINVAL`) that
//! the program type may call ("calling kernel function X is not allowed", `EACCES`). Each
//! argument is checked by kind: the context (of the struct the function names), memory with
//! its `__sz` size or of its struct's fixed size (readable and writable; NULL only with size
//! 0), a scalar, or a trusted non-NULL kernel object of the named struct. A `KF_RELEASE`
//! function releases the reference its object argument holds; a `KF_ACQUIRE` one returns a new
//! reference, maybe NULL with `KF_RET_NULL`.

use super::args::{MemArg, MemSize, check_ctx_unmodified, released_ref};
use super::bounds::Scalar;
use super::explore::Explorer;
use super::log::Reject;
use super::state::{Reg, RegType, VState};
use crate::Errno;
use crate::kfunc::{Kfunc, KfuncArgKind, KfuncFlags, KfuncRet, find};

impl Explorer<'_> {
    /// A kfunc call to id `id` at `pc`.
    pub(super) fn check_kfunc_call(
        &mut self,
        st: &mut VState,
        pc: usize,
        id: i32,
    ) -> Result<(), Reject> {
        let Some(k) = find(id) else {
            return Err(Reject::new(
                Errno::EINVAL,
                pc,
                format_args!("kernel btf_id {} is not a function", id as u32),
            ));
        };
        let prog_type = self.env.prog_type;
        if !k.allowed_for(prog_type) {
            return Err(Reject::acces(
                pc,
                format_args!("calling kernel function {} is not allowed", k.name),
            ));
        }
        let release = self.check_kfunc_args(st, pc, k)?;
        if k.flags.contains(KfuncFlags::RELEASE) && release.is_none() {
            return Err(Reject::new(
                Errno::EINVAL,
                pc,
                format_args!(
                    "release kernel function {} expects refcounted PTR_TO_BTF_ID",
                    k.name
                ),
            ));
        }
        if let Some(id) = release {
            self.release_reference(st, pc, id, k.name)?;
        }
        let r0 = match k.ret {
            KfuncRet::Void => Reg::NOT_INIT,
            KfuncRet::Scalar => Reg::scalar(Scalar::UNKNOWN),
            KfuncRet::Obj(s) => {
                let ty = if k.flags.contains(KfuncFlags::RET_NULL) {
                    RegType::PtrToBtfIdOrNull(s)
                } else {
                    RegType::PtrToBtfId(s)
                };
                self.ret_pointer(st, pc, ty, k.flags.contains(KfuncFlags::ACQUIRE))
            }
        };
        self.finish_call(st, r0);
        Ok(())
    }

    /// Checks each argument of kfunc `k` against its kind (`check_kfunc_args`); returns the
    /// reference a release argument gives back.
    fn check_kfunc_args(
        &mut self,
        st: &mut VState,
        pc: usize,
        k: &Kfunc,
    ) -> Result<Option<u32>, Reject> {
        let prog_type = self.env.prog_type;
        let mut release = None;
        for (i, a) in k.args.iter().enumerate() {
            let r = i as u8 + 1;
            if k.is_size_arg(i) {
                continue; // checked with its memory argument
            }
            let reg = self.read(st, pc, r)?;
            match a.kind {
                KfuncArgKind::Ctx { name, types } => {
                    if reg.ty != RegType::PtrToCtx {
                        return Err(Reject::new(
                            Errno::EINVAL,
                            pc,
                            format_args!(
                                "arg#{i} expected pointer to ctx, but got {}",
                                reg.ty.name()
                            ),
                        ));
                    }
                    if !types.contains(&prog_type) {
                        return Err(Reject::new(
                            Errno::EINVAL,
                            pc,
                            format_args!(
                                "arg#{i} expected pointer to STRUCT {name}, but got ctx of {}",
                                prog_type.name()
                            ),
                        ));
                    }
                    check_ctx_unmodified(pc, r, &reg)?;
                }
                KfuncArgKind::Mem { size, .. } => {
                    let size = if k.is_size_arg(i + 1) {
                        MemSize::Reg {
                            regno: r + 1,
                            zero_ok: true,
                        }
                    } else {
                        MemSize::Fixed(size as usize)
                    };
                    let arg = MemArg {
                        regno: r,
                        size,
                        uninit: false,
                        null_arg: Some(i),
                    };
                    self.check_mem_arg(st, pc, arg)?;
                }
                KfuncArgKind::Scalar => {
                    if reg.ty != RegType::Scalar {
                        return Err(Reject::new(
                            Errno::EINVAL,
                            pc,
                            format_args!("R{r} is not a scalar"),
                        ));
                    }
                }
                KfuncArgKind::Obj(want) => {
                    match reg.ty {
                        RegType::PtrToBtfId(got) if got == want => {}
                        RegType::PtrToBtfId(got) => {
                            return Err(Reject::new(
                                Errno::EINVAL,
                                pc,
                                format_args!(
                                    "kernel function {} args#{i} expected pointer to STRUCT {} but R{r} has a pointer to STRUCT {}",
                                    k.name, want.name, got.name
                                ),
                            ));
                        }
                        RegType::PtrToBtfIdOrNull(_)
                        | RegType::PtrToSocketOrNull
                        | RegType::Scalar
                            if reg.ty != RegType::Scalar || reg.var.as_const() == Some(0) =>
                        {
                            return Err(Reject::acces(
                                pc,
                                format_args!("Possibly NULL pointer passed to trusted arg{i}"),
                            ));
                        }
                        // A socket is a kernel object too (`reg2btf_ids`): the type mismatch.
                        t @ RegType::PtrToSocket => {
                            return Err(Reject::new(
                                Errno::EINVAL,
                                pc,
                                format_args!(
                                    "kernel function {} args#{i} expected pointer to STRUCT {} but R{r} has a pointer to {}",
                                    k.name,
                                    want.name,
                                    t.name()
                                ),
                            ));
                        }
                        // Anything else is taken for memory, which a struct of non-scalars
                        // cannot be (`get_kfunc_ptr_arg_type`).
                        _ => {
                            return Err(Reject::new(
                                Errno::EINVAL,
                                pc,
                                format_args!(
                                    "arg#{i} pointer type STRUCT {} must point to scalar, or struct with scalar",
                                    want.name
                                ),
                            ));
                        }
                    }
                    if k.flags.contains(KfuncFlags::RELEASE) && release.is_none() {
                        release = Some(released_ref(pc, r, &reg)?);
                    }
                }
            }
        }
        Ok(release)
    }
}
