//! The end of a load: constant blinding, runtime selection and the program object
//! (`bpf_prog_select_runtime` in `kernel/bpf/core.c`), and the prog_array owner claims
//! (`bpf_check_tail_call` / `__bpf_prog_map_compatible`).

use super::Load;
use crate::interp::InterpImage;
use crate::prog::{Prog, ProgLoadAttr};
use crate::sync::Arc;
use crate::uapi::ProgType;
use crate::{Errno, Result};
use alloc::boxed::Box;
use core::fmt::Write;

/// The stage: the engines run a blinded copy when the program or the global switch asks
/// ([`crate::blind`]); `xlated` (what dumps show) stays as written, as in the kernel, which
/// blinds a clone for the JIT.
pub(super) fn blind(l: &mut Load<'_>) -> Result {
    if l.attr.blind || crate::blind::global() {
        l.blinded = Some(crate::blind::blind_constants(&l.xlated, &mut || {
            crate::host::get().random_u32()
        })?);
    }
    Ok(())
}

/// The stage: the interpreter image, the registered JIT's image if it accepts the program,
/// and the program object owning them and the maps. The program records the buffer length it
/// was verified for; a trusted program runs on any length.
pub(super) fn select_runtime(l: &mut Load<'_>) -> Result {
    let verified_ctx = l.verified.as_ref().map(|_| l.attr.ctx_size.unwrap_or(0));
    let attr = ProgLoadAttr {
        ctx_size: verified_ctx.filter(|_| l.attr.prog_type == ProgType::RawBuffer),
        ..l.attr
    };
    let map_addrs: Box<[u64]> = l.used_maps.iter().map(|m| Arc::as_ptr(m) as u64).collect();
    let run_insns = l.blinded.as_deref().unwrap_or(&l.xlated);
    let jited = crate::jit::select_runtime(&crate::jit::JitProgram {
        insns: run_insns,
        prog_type: attr.prog_type,
        maps: &map_addrs,
        verified: l.verified.is_some(),
    });
    let interp = InterpImage::build(run_insns, attr.prog_type, map_addrs, l.verified.is_some())?;
    let xlated = core::mem::take(&mut l.xlated).into_boxed_slice();
    let used_maps = core::mem::take(&mut l.used_maps).into_boxed_slice();
    let line_info = core::mem::take(&mut l.line_info).into_boxed_slice();
    l.prog = Some(Prog::new(
        &attr, xlated, used_maps, interp, jited, line_info,
    ));
    Ok(())
}

/// The stage: checks every program-holding map the program uses, then records the owner
/// where none is set yet — so a failed check leaves no owner recorded (`bpf_check_tail_call`).
pub(super) fn claim_owners(l: &mut Load<'_>) -> Result {
    let prog = l.prog.as_ref().ok_or(Errno::EFAULT)?;
    claim_prog_array_owners(prog).inspect_err(|_| {
        let _ = writeln!(
            l.log,
            "tail call: program is not compatible with a prog_array it uses"
        );
    })
}

fn claim_prog_array_owners(prog: &Prog) -> Result {
    let key = prog.owner_key();
    let maps = prog.used_maps().iter().filter(|m| m.contains_progs());
    for m in maps.clone() {
        if matches!(*m.owner.lock(), Some(o) if o != key) {
            return Err(Errno::EINVAL);
        }
    }
    for m in maps {
        crate::prog::check_map_compatible(m, prog)?;
    }
    Ok(())
}
