//! The load-time rewrite passes on one patch list, linearized once (`do_misc_fixups`,
//! `resolve_pseudo_ldimm64`'s rewrite and the verifier's own passes at the end of `bpf_check`
//! in `kernel/bpf/verifier.c`); JIT constant blinding ([`crate::blind`]) follows on the
//! linearized program.
//!
//! The passes run in [`PASSES`] order, which is the kernel's: the single-slot fix-ups first,
//! then on verified programs dead code ([`crate::verifier::opt`], right after verification),
//! the context access conversion ([`crate::verifier::convert`]; programs loaded on the trusted
//! path have none recorded), `bpf_loop` inlining ([`crate::verifier::loop_inline`]), array
//! lookup inlining when a JIT is requested
//! ([`crate::verifier::fixups`], after `convert_ctx_accesses`; legacy packet loads become a call
//! first, [`crate::verifier::ld_abs`], verified or not), and last zero extension or its
//! `BPF_F_TEST_RND_HI32` self-test ([`crate::verifier::zext`], after every pass that inserts
//! code). A new pass is one more entry in [`PASSES`], placed where the kernel runs it.
//!
//! When no pass has work the program is copied as written and no list is built.

use super::Load;
use crate::helpers::map_ops;
use crate::insn::{TAIL_CALL_CODE, TailCallAux};
use crate::map::MapImpl;
use crate::patch::PatchList;
use crate::uapi::MapFlags;
use crate::verifier::convert::convert_ctx_access;
use crate::verifier::fixups::{MapOps, do_misc_fixups};
use crate::verifier::loop_inline;
use crate::verifier::zext::{ZextMode, is_cmpxchg32, opt_subreg_zext_lo32_rnd_hi32, zext_dst};
use crate::verifier::{CallKey, CallMap, LoopSite};
use crate::{Errno, Result};
use alloc::vec::Vec;

/// A rewrite pass on the load's patch list.
pub(super) struct Pass {
    /// Whether the pass may change this program: when no pass may, the list is not built.
    wants: fn(&Load<'_>) -> bool,
    /// Rewrites the list, which was built from [`Load::insns`].
    run: fn(&Load<'_>, &mut PatchList<()>) -> Result,
}

/// The rewrite passes, in order.
pub(super) const PASSES: [Pass; 7] = [
    // `resolve_pseudo_ldimm64`; the tail-call rewrite of `do_misc_fixups`.
    Pass {
        wants: |l| !l.fixups.is_empty(),
        run: single_slot_fixups,
    },
    // `opt_hard_wire_dead_code_branches`, `opt_remove_dead_code`, `opt_remove_nops`.
    Pass {
        wants: |l| l.verified.as_ref().is_some_and(|v| v.seen.contains(&false)),
        run: dead_code,
    },
    // `convert_ctx_accesses`.
    Pass {
        wants: |l| {
            l.verified
                .as_ref()
                .is_some_and(|v| v.ctx_access.iter().any(Option::is_some))
        },
        run: convert_ctx,
    },
    // `inline_bpf_loop`: every `bpf_loop` call becomes a loop calling its callback.
    Pass {
        wants: |l| {
            l.verified
                .as_ref()
                .is_some_and(|v| v.loop_sites.iter().any(|s| *s != LoopSite::None))
        },
        run: inline_loops,
    },
    // `do_misc_fixups`: legacy packet loads (`BPF_LD_[ABS|IND]`) become `bpf_gen_ld_abs`'s
    // call to an internal helper, on the trusted path too (no engine runs them as written).
    Pass {
        wants: |l| crate::verifier::ld_abs::has_ld_abs(l.insns()),
        run: |l, list| crate::verifier::ld_abs::rewrite_ld_abs(list, l.attr.prog_type).map(|_| ()),
    },
    // `do_misc_fixups`: array-map lookups inlined.
    Pass {
        wants: |l| {
            l.jit_requested
                && l.verified
                    .as_ref()
                    .is_some_and(|v| v.call_map.iter().any(|c| matches!(c, CallMap::Map(_))))
        },
        run: misc_fixups,
    },
    // `opt_subreg_zext_lo32_rnd_hi32`.
    Pass {
        wants: |l| {
            l.verified.is_some()
                && (l.zext != ZextMode::default() || l.insns().iter().any(is_cmpxchg32))
        },
        run: zext,
    },
];

/// The stage: runs every pass of [`PASSES`] on one patch list, when one of them has work.
pub(super) fn rewrite(l: &mut Load<'_>) -> Result {
    if !PASSES.iter().any(|p| (p.wants)(l)) {
        return Ok(());
    }
    let mut list: PatchList<()> = PatchList::new(l.insns())?;
    for p in &PASSES {
        (p.run)(l, &mut list)?;
    }
    l.list = Some(list);
    Ok(())
}

/// The stage: the rewritten list, or the program as written when no pass had work, becomes
/// the program the engines see (`xlated`).
pub(super) fn linearize(l: &mut Load<'_>) -> Result {
    let mut line_info = Vec::new();
    line_info.try_reserve_exact(l.attr.line_info.len())?;
    line_info.extend_from_slice(l.attr.line_info);
    l.xlated = match l.list.take() {
        // Each line-info entry moves with its instruction (`bpf_adj_linfo`,
        // `bpf_adj_linfo_after_remove`), as the patch list's linearize says.
        Some(list) => list.linearize(&mut line_info, None)?,
        None => {
            let mut out = Vec::new();
            out.try_reserve_exact(l.insns().len())?;
            out.extend_from_slice(l.insns());
            out
        }
    };
    l.line_info = line_info;
    Ok(())
}

/// The tail-call helper call becomes the internal tail-call instruction, each half of a map
/// `ld_imm64` the resolved address (recorded by the gate).
fn single_slot_fixups(l: &Load<'_>, list: &mut PatchList<()>) -> Result {
    for &(slot, insn) in &l.fixups {
        let node = list.orig_node(slot as u32).ok_or(Errno::EINVAL)?;
        let insn = if insn.code == TAIL_CALL_CODE {
            tail_call_aux(l, slot).insn()
        } else {
            insn
        };
        list.replace(node, &[insn])?;
    }
    Ok(())
}

/// What the verifier proved about the tail call at `slot`, for the engines (the part of
/// `do_misc_fixups` that reads `map_ptr_state`/`map_key_state` and adds a poke descriptor):
/// on a verified path, R2 is a prog_array of the program's maps; one map on every path gives
/// its `used_maps` index; with it, one in-range constant key on every path makes the site
/// direct. Nothing on the trusted path: its engines check at run time.
fn tail_call_aux(l: &Load<'_>, slot: usize) -> TailCallAux {
    let Some(v) = l
        .verified
        .as_ref()
        .filter(|v| v.seen.get(slot) == Some(&true))
    else {
        return TailCallAux::default();
    };
    let map = match v.call_map.get(slot) {
        Some(&CallMap::Map(h)) => l
            .handles
            .iter()
            .find(|&&(x, _)| x == h)
            .and_then(|&(_, i)| u16::try_from(i).ok())
            .filter(|&i| i <= i16::MAX as u16),
        _ => None,
    };
    let key = match v.call_key.get(slot) {
        Some(&CallKey::Key(k)) if map.is_some() => Some(k),
        _ => None,
    };
    TailCallAux {
        verified: true,
        map,
        key,
    }
}

/// `bpf_check`'s dead-code treatment for a loader with `CAP_BPF` (both load modes are one; its
/// `is_priv` removes dead code rather than sanitizing it).
fn dead_code(l: &Load<'_>, list: &mut PatchList<()>) -> Result {
    match &l.verified {
        Some(v) => crate::verifier::opt::dead_code(list, &v.seen, true),
        None => Ok(()),
    }
}

/// Every context access the verifier recorded, rewritten into the kernel struct's layout.
fn convert_ctx(l: &Load<'_>, list: &mut PatchList<()>) -> Result {
    match &l.verified {
        Some(v) => convert_ctx_access(list, l.attr.prog_type, &v.ctx_access),
        None => Ok(()),
    }
}

/// Every `bpf_loop` call the verifier saw with one callback becomes an instruction loop calling
/// it ([`crate::verifier::loop_inline`]; the kernel's `inline_bpf_loop`, here the only way kbpf
/// runs `bpf_loop`).
fn inline_loops(l: &Load<'_>, list: &mut PatchList<()>) -> Result {
    match &l.verified {
        Some(v) => loop_inline::inline_loops(list, &v.loop_sites),
        None => Ok(()),
    }
}

/// Map helper calls whose map the verifier saw fixed, when a JIT is requested (the kernel's
/// `prog->jit_requested`): array lookups inlined, the other calls made direct calls of the map
/// type's own operation. Measured with `kbpf bench map-lookup`: JIT'd, an inlined array lookup
/// costs about a tenth of the helper call; interpreted, its six dispatched instructions cost
/// more than the call.
fn misc_fixups(l: &Load<'_>, list: &mut PatchList<()>) -> Result {
    let Some(v) = l.verified.as_ref().filter(|_| l.jit_requested) else {
        return Ok(());
    };
    // The pass sees the maps this load resolved (and holds), never a fresh lookup.
    let ops = |h: u32| -> MapOps {
        let map = l
            .handles
            .iter()
            .find(|&&(x, _)| x == h)
            .and_then(|&(_, i)| l.used_maps.get(i));
        let Some(map) = map else {
            return MapOps::default();
        };
        match &map.imp {
            MapImpl::Array(a) => MapOps {
                inline: a
                    .gen_lookup_layout()
                    .filter(|_| !map.attr().flags.contains(MapFlags::INNER_MAP)),
                lookup: Some(map_ops::id::ARRAY_LOOKUP),
                ..MapOps::default()
            },
            MapImpl::Hash(_) => MapOps {
                inline: None,
                lookup: Some(map_ops::id::HASH_LOOKUP),
                update: Some(map_ops::id::HASH_UPDATE),
                delete: Some(map_ops::id::HASH_DELETE),
            },
            _ => MapOps::default(),
        }
    };
    do_misc_fixups(list, l.insns(), &v.call_map, &ops).map(|_| ())
}

/// Zero extension of the 32-bit definitions whose upper half is read, or its
/// `BPF_F_TEST_RND_HI32` self-test.
fn zext(l: &Load<'_>, list: &mut PatchList<()>) -> Result {
    if l.verified.is_none() {
        return Ok(());
    }
    let marks = zext_dst(l.insns())?;
    opt_subreg_zext_lo32_rnd_hi32(list, l.insns(), &marks, l.zext, &mut || {
        crate::host::get().random_u32()
    })
}
