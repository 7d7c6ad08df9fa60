//! Helper fix-ups after verification: the part of `do_misc_fixups` (`kernel/bpf/verifier.c`)
//! that inlines `bpf_map_lookup_elem` on array maps (`array_map_gen_lookup` in
//! `kernel/bpf/arraymap.c`), on the load's patch list.
//!
//! The verifier records, per helper call, which map R1 held on every path that reached it
//! ([`CallMap`], the kernel's `map_ptr_state`). A lookup whose map is the same on every path
//! and is a plain array is replaced by code that computes the element's address without a
//! call:
//!
//! ```text
//! r1 = <address of the array's first value>   ld_imm64, BPF_PSEUDO_MAP_VALUE
//! r0 = *(u32 *)(r2 + 0)                       the index
//! if w0 >= max_entries goto +3                32-bit compare: exact for any u32 bound
//! r0 <<= log2(elem_size)  (or r0 *= elem_size)
//! r0 += r1
//! goto +1
//! r0 = 0
//! ```
//!
//! The kernel adds `offsetof(struct bpf_array, value)` to the map pointer, since its values sit
//! inside the map object. kbpf's array values live in a separate allocation owned by the map
//! (stable for the map's life, which the program's `used_maps` reference spans), so the base is
//! an `ld_imm64` of its address in the direct-value form the loader already produces for
//! `BPF_PSEUDO_MAP_VALUE`: the interpreter and the JIT load it as a constant and constant
//! blinding treats it like any other direct value. R1–R5 are dead after a call, so writing R1
//! is invisible to the program, as in the kernel.
//!
//! The load runs this pass only when a JIT is requested (the kernel's `prog->jit_requested`
//! condition): `kbpf bench map-lookup` measures an inlined lookup at about a tenth of the
//! helper call JIT-compiled, but slower than the call interpreted, where each of the six
//! instructions pays a dispatch.
//!
//! A lookup the map does not inline — a hash map (whose `htab_map_gen_lookup` emits a call of
//! `__htab_map_lookup_elem`), an array created `BPF_F_INNER_MAP` — and the update and delete
//! calls become direct calls of the map type's own operation ([`MapOps`],
//! [`crate::helpers::map_ops`]), skipping the generic helper's dispatch on the map's type, as
//! the kernel's `BPF_CALL_IMM(ops->map_*_elem)` rewrite does.
//!
//! Not done, and why:
//! - the Spectre v1 index mask the kernel adds for unprivileged loaders (`index_mask`): kbpf's
//!   verifier leaves speculative-execution hardening out of scope;
//! - per-CPU arrays (`percpu_array_map_gen_lookup` reads the CPU's offset with
//!   `BPF_MOV64_PERCPU_REG`): kbpf has no call-free way to find the running CPU — the CPU is
//!   a host call (`host::cpu_enter`), not a per-CPU base register;
//! - `bpf_get_smp_processor_id` inlining, for the same reason;

use super::calls::CallMap;
use crate::insn::{Insn, alu64_imm, alu64_reg, call_helper, ja, jmp32_imm, ldx_mem, mov64_imm};
use crate::insn::{Size, ld_imm64_raw};
use crate::maps::ArrayLayout;
use crate::patch::PatchList;
use crate::uapi::{alu, func, jmp, pseudo};
use crate::{Errno, Result};

/// Length of the code [`array_map_gen_lookup`] emits.
pub const GEN_LOOKUP_LEN: usize = 8;

/// The call-free lookup in an array of `layout`: R2 points to the u32 index, R0 receives the
/// element's address or 0, R1 is clobbered (`array_map_gen_lookup`). `None` when the element
/// size does not fit an immediate.
pub fn array_map_gen_lookup(layout: &ArrayLayout) -> Option<[Insn; GEN_LOOKUP_LEN]> {
    let scale = if layout.elem_size.is_power_of_two() {
        alu64_imm(alu::LSH, 0, layout.elem_size.trailing_zeros() as i32)
    } else {
        alu64_imm(alu::MUL, 0, i32::try_from(layout.elem_size).ok()?)
    };
    if layout.max_entries == 0 {
        return None;
    }
    let [lo, hi] = ld_imm64_raw(1, pseudo::MAP_VALUE, layout.base);
    Some([
        lo,
        hi,
        ldx_mem(Size::W, 0, 2, 0),
        // JMP32 compares the low halves with the immediate as a u32: any bound is exact.
        jmp32_imm(jmp::JGE, 0, layout.max_entries as i32, 3),
        scale,
        alu64_reg(alu::ADD, 0, 1),
        ja(1),
        mov64_imm(0, 0),
    ])
}

/// What a map offers the helper calls the verifier saw it alone at (the kernel's per-type
/// `map_gen_lookup` and `bpf_map_ops`): a lookup inlined as instructions (arrays), else the
/// internal ids of its own operations ([`crate::helpers::map_ops`]) to call directly instead of
/// the generic helper.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapOps {
    /// An array's layout: lookups become instructions.
    pub inline: Option<ArrayLayout>,
    /// `bpf_map_lookup_elem` calls this instead (when not inlined).
    pub lookup: Option<i32>,
    /// `bpf_map_update_elem` calls this instead.
    pub update: Option<i32>,
    /// `bpf_map_delete_elem` calls this instead.
    pub delete: Option<i32>,
}

/// `do_misc_fixups` for map helper calls: every `bpf_map_lookup_elem`, `_update_elem` and
/// `_delete_elem` of `orig` whose map is recorded in `call_map` (per original slot) as one map
/// on every path becomes what `ops` (from the map handle) offers: an inlined lookup
/// ([`array_map_gen_lookup`]) or a direct call of the map's own operation
/// (`BPF_CALL_IMM(ops->map_lookup_elem)`, `htab_map_gen_lookup`'s call). Calls that dead-code
/// removal or an earlier pass already changed are left alone. Returns the number of calls
/// rewritten.
pub fn do_misc_fixups<A: Default + Clone>(
    list: &mut PatchList<A>,
    orig: &[Insn],
    call_map: &[CallMap],
    ops: &dyn Fn(u32) -> MapOps,
) -> Result<usize> {
    if orig.len() != list.orig_len() || call_map.len() != orig.len() {
        return Err(Errno::EINVAL);
    }
    let lookup = call_helper(func::MAP_LOOKUP_ELEM);
    let update = call_helper(func::MAP_UPDATE_ELEM);
    let delete = call_helper(func::MAP_DELETE_ELEM);
    let mut rewritten = 0;
    for (pc, rec) in call_map.iter().enumerate() {
        let CallMap::Map(handle) = *rec else { continue };
        let call = orig[pc];
        if call != lookup && call != update && call != delete {
            continue;
        }
        let Some(node) = list.orig_node(pc as u32) else {
            continue;
        };
        if !list.is_live(node) || list.insn(node) != Some(call) {
            continue;
        }
        let o = ops(handle);
        let direct = |id: Option<i32>| id.map(call_helper);
        if call == lookup {
            if let Some(code) = o.inline.as_ref().and_then(array_map_gen_lookup) {
                list.replace(node, &code)?;
                rewritten += 1;
                continue;
            }
        }
        let id = if call == lookup {
            o.lookup
        } else if call == update {
            o.update
        } else {
            o.delete
        };
        if let Some(insn) = direct(id) {
            list.replace(node, &[insn])?;
            rewritten += 1;
        }
    }
    Ok(rewritten)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{exit, jmp_imm, ld_map_fd, mov64_reg, st_mem};
    use alloc::vec;
    use alloc::vec::Vec;

    const BASE: u64 = 0x0000_7f00_1234_5000;

    fn layout(h: u32) -> Option<ArrayLayout> {
        // Handle 1 is an array of 10 elements of 16 bytes, handle 2 one of 3 of 24 bytes;
        // anything else (a hash map, say) has no array layout.
        match h {
            1 => Some(ArrayLayout {
                base: BASE,
                max_entries: 10,
                elem_size: 16,
            }),
            2 => Some(ArrayLayout {
                base: BASE,
                max_entries: 3,
                elem_size: 24,
            }),
            _ => None,
        }
    }

    /// `*(u32 *)(fp - 4) = 1; r2 = fp - 4; r1 = map h; call lookup; if r0 == 0 goto +1;
    /// r0 = *(u64 *)(r0 + 0); exit` — the call at slot 5.
    fn prog(h: u32) -> Vec<Insn> {
        let mut p = vec![
            st_mem(Size::W, 10, -4, 1),
            mov64_reg(2, 10),
            alu64_imm(alu::ADD, 2, -4),
        ];
        p.extend(ld_map_fd(1, h));
        p.extend([
            call_helper(func::MAP_LOOKUP_ELEM),
            jmp_imm(jmp::JEQ, 0, 0, 1),
            ldx_mem(Size::DW, 0, 0, 0),
            exit(),
        ]);
        p
    }

    const CALL: usize = 5;

    /// Handle 3 stands for a hash map: no layout, its own operations called directly.
    const HASH: u32 = 3;

    fn ops(h: u32) -> MapOps {
        if h == HASH {
            return MapOps {
                inline: None,
                lookup: Some(-1),
                update: Some(-2),
                delete: Some(-3),
            };
        }
        MapOps {
            inline: layout(h),
            ..MapOps::default()
        }
    }

    fn run_pass(p: &[Insn], call_map: &[CallMap]) -> (usize, Vec<Insn>) {
        let mut list: PatchList<()> = PatchList::new(p).unwrap();
        let n = do_misc_fixups(&mut list, p, call_map, &ops).unwrap();
        (n, list.linearize(&mut Vec::new(), None).unwrap())
    }

    fn rec(p: &[Insn], r: CallMap) -> Vec<CallMap> {
        let mut v = vec![CallMap::None; p.len()];
        v[CALL] = r;
        v
    }

    #[test]
    fn array_lookup_is_inlined_with_shift() {
        let p = prog(1);
        let (n, out) = run_pass(&p, &rec(&p, CallMap::Map(1)));
        assert_eq!(n, 1);
        let [lo, hi] = ld_imm64_raw(1, pseudo::MAP_VALUE, BASE);
        assert_eq!(
            out[CALL..CALL + GEN_LOOKUP_LEN],
            [
                lo,
                hi,
                ldx_mem(Size::W, 0, 2, 0),
                jmp32_imm(jmp::JGE, 0, 10, 3),
                alu64_imm(alu::LSH, 0, 4),
                alu64_reg(alu::ADD, 0, 1),
                ja(1),
                mov64_imm(0, 0),
            ]
        );
        // Everything before and after is unchanged.
        assert_eq!(out[..CALL], p[..CALL]);
        assert_eq!(out[CALL + GEN_LOOKUP_LEN..], p[CALL + 1..]);
    }

    #[test]
    fn non_power_of_two_elements_multiply() {
        let p = prog(2);
        let (_, out) = run_pass(&p, &rec(&p, CallMap::Map(2)));
        assert_eq!(out[CALL + 3], jmp32_imm(jmp::JGE, 0, 3, 3));
        assert_eq!(out[CALL + 4], alu64_imm(alu::MUL, 0, 24));
    }

    #[test]
    fn poisoned_unknown_and_non_array_maps_are_left_alone() {
        let p = prog(1);
        for r in [CallMap::Poisoned, CallMap::None, CallMap::Map(7)] {
            let (n, out) = run_pass(&p, &rec(&p, r));
            assert_eq!((n, &out[..]), (0, &p[..]), "{r:?}");
        }
    }

    #[test]
    fn other_helpers_are_left_alone() {
        let mut p = prog(1);
        p[CALL] = call_helper(func::MAP_DELETE_ELEM);
        let (n, out) = run_pass(&p, &rec(&p, CallMap::Map(1)));
        assert_eq!((n, out), (0, p.clone()));
        p[CALL] = call_helper(func::KTIME_GET_NS);
        let (n, out) = run_pass(&p, &rec(&p, CallMap::Map(HASH)));
        assert_eq!((n, out), (0, p));
    }

    #[test]
    fn a_hash_maps_calls_go_straight_to_its_operations() {
        for (helper, direct) in [
            (func::MAP_LOOKUP_ELEM, -1),
            (func::MAP_UPDATE_ELEM, -2),
            (func::MAP_DELETE_ELEM, -3),
        ] {
            let mut p = prog(HASH);
            p[CALL] = call_helper(helper);
            let (n, out) = run_pass(&p, &rec(&p, CallMap::Map(HASH)));
            assert_eq!(n, 1);
            let mut want = p.clone();
            want[CALL] = call_helper(direct);
            assert_eq!(out, want);
            // Poisoned: the generic helper stays.
            let (n, out) = run_pass(&p, &rec(&p, CallMap::Poisoned));
            assert_eq!((n, out), (0, p));
        }
    }

    #[test]
    fn record_merges_like_map_ptr_state() {
        assert_eq!(CallMap::None.merge(3), CallMap::Map(3));
        assert_eq!(CallMap::Map(3).merge(3), CallMap::Map(3));
        assert_eq!(CallMap::Map(3).merge(4), CallMap::Poisoned);
        assert_eq!(CallMap::Poisoned.merge(3), CallMap::Poisoned);
        use crate::verifier::CallKey;
        assert_eq!(CallKey::None.merge(Some(2)), CallKey::Key(2));
        assert_eq!(CallKey::Key(2).merge(Some(2)), CallKey::Key(2));
        assert_eq!(CallKey::Key(2).merge(Some(3)), CallKey::Poisoned);
        assert_eq!(CallKey::Key(2).merge(None), CallKey::Poisoned);
        assert_eq!(CallKey::None.merge(None), CallKey::Poisoned);
        assert_eq!(CallKey::Poisoned.merge(Some(2)), CallKey::Poisoned);
    }

    #[test]
    fn jumps_across_the_inlined_code_are_relocated() {
        // `if r6 == 0 goto exit` jumps over the call from before it; `goto` from after it
        // jumps back over it to the start.
        let mut p = vec![mov64_imm(6, 0), st_mem(Size::W, 10, -4, 1)];
        p.push(jmp_imm(jmp::JEQ, 6, 0, 6)); // 2 -> 9
        p.extend([mov64_reg(2, 10), alu64_imm(alu::ADD, 2, -4)]);
        p.extend(ld_map_fd(1, 1)); // 5, 6
        p.push(call_helper(func::MAP_LOOKUP_ELEM)); // 7
        p.push(jmp_imm(jmp::JNE, 6, 0, -7)); // 8 -> 2
        p.push(exit()); // 9
        let mut cm = vec![CallMap::None; p.len()];
        cm[7] = CallMap::Map(1);
        let (n, out) = run_pass(&p, &cm);
        assert_eq!(n, 1);
        let grow = GEN_LOOKUP_LEN as i16 - 1;
        assert_eq!(out.len(), p.len() + grow as usize);
        assert_eq!(out[2], jmp_imm(jmp::JEQ, 6, 0, 6 + grow));
        let back = 8 + grow as usize;
        assert_eq!(out[back], jmp_imm(jmp::JNE, 6, 0, -7 - grow));
        assert_eq!(out[back + 1], exit());
        // The inlined code's own jumps still land inside it / right after it.
        assert_eq!(out[7 + 3], jmp32_imm(jmp::JGE, 0, 10, 3));
        assert_eq!(out[7 + 6], ja(1));
    }

    #[test]
    fn huge_elements_are_not_inlined() {
        let l = ArrayLayout {
            base: BASE,
            max_entries: 2,
            elem_size: 0x8000_0008,
        };
        assert_eq!(array_map_gen_lookup(&l), None);
        // The largest bound is still exact (a 32-bit compare of the immediate's bits).
        let l = ArrayLayout {
            base: BASE,
            max_entries: u32::MAX,
            elem_size: 8,
        };
        let code = array_map_gen_lookup(&l).unwrap();
        assert_eq!(code[3], jmp32_imm(jmp::JGE, 0, -1, 3));
    }
}
