//! The direct tail call: a tail call with a constant prog_array and index becomes one patchable
//! 5-byte jump (Linux `emit_bpf_tail_call_direct()` and `bpf_arch_poke_desc_update()` in
//! `arch/x86/net/bpf_jit_comp.c`).
//!
//! The verifier proved the map and the key ([`kbpf::insn::TailCallAux`]); the site is emitted
//! only for a verified program.
//!
//! ```text
//!       mov r10, [r12-528]           ; tcc_ptr
//!       mov rsi, [r10+8]             ; R2 = the run's entry R2 (raw buffers only)
//!       cmp dword [r10], 33
//!       jae out                      ; budget spent: no count used
//!       add dword [r10], 1
//! site: nop5 | jmp target | jmp slow ; the poke site (the slot's program, or empty)
//! undo: sub dword [r10], 1           ; empty slot: the count is given back
//!       jmp out
//! slow: movabs r9, map               ; the map's constant address: an indirect call
//!       mov r9, [r9+MAP_PROG_SLOTS]  ; through the slot
//!       mov r11d, index
//!       mov r9, [r9+r11*8]; test r9, r9; jz undo
//!       mov r9, [r9+PROG_TAIL_CALL_TARGET]; test r9, r9; jz undo
//!       jmp r9
//! out:
//! ```
//!
//! Linux patches two places (a bypass `jmp` over the increment, and the target `nop`/`jmp`)
//! and needs a grace period between them when a slot empties. Here one 5-byte site carries the
//! whole state, so every poke is a single `text_poke` and both the old and the new bytes are
//! correct at every instant: the increment happens before the site, and the fall-through path
//! takes it back. The counter belongs to the run (one CPU's, `[r12-528]`), and nothing reads it
//! between the `add` and the `sub`, so an empty slot uses no budget — the interpreter's
//! semantics — and a filled one counts once, then jumps. The check order is the interpreter's
//! (the index is a constant the prog_array already checked against `max_entries`).
//!
//! The site jumps straight to the target's tail-call entry when a `rel32` reaches it; if the
//! host placed the two images farther apart it jumps to `slow`, an indirect tail call through
//! the same slot, which is correct whenever the slot is filled.

use super::frame::TAIL_CALL_CNT_SLOT;
use super::regmap::{AUX, AX, MAIN_FP};
use crate::x86::{AluKind, Asm, Cc, Mem, Reg, Rm, Width};
use kbpf::cpu::TAIL_CALL_CNT_TO_ENTRY_R2;
use kbpf::map::MAP_PROG_SLOTS_OFFSET;
use kbpf::prog::PROG_TAIL_CALL_TARGET_OFFSET;
use kbpf::uapi::limits::MAX_TAIL_CALL_CNT;

/// Bytes of a poke site.
pub const SITE_LEN: usize = 5;
/// The site's fall-through form (`x86_nops[5]`).
pub const NOP5: [u8; SITE_LEN] = [0x0f, 0x1f, 0x44, 0x00, 0x00];

/// A direct tail call in an image (Linux `struct bpf_jit_poke_descriptor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectSite {
    /// The prog_array's address.
    pub map: u64,
    /// The slot index.
    pub index: u32,
    /// Offset of the 5-byte site in the code.
    pub site: u32,
    /// Offset of the in-image indirect fallback.
    pub slow: u32,
}

fn rel8(from_end: usize, to: usize) -> u8 {
    let d = to as isize - from_end as isize;
    debug_assert!(
        (-128..=127).contains(&d),
        "direct tail call: short jump reach"
    );
    d as i8 as u8
}

/// Emits a direct tail call of slot `index` of `map` (which R2 holds) and describes it; `r2`:
/// the program type's entry R2 is the run's entry R2 (a raw buffer's length).
pub fn emit_tail_call_direct(a: &mut Asm, map: u64, index: u32, r2: bool) -> DirectSite {
    let cnt = Rm::Mem(Mem::base(AX, 0));
    a.load_zx(
        Width::Q,
        AX,
        Rm::Mem(Mem::base(MAIN_FP, TAIL_CALL_CNT_SLOT)),
    );
    if r2 {
        // The callee starts with R2 as the verifier assumes (a failed tail call may clobber
        // caller-saved R2, so it is set on both paths). The slow path below reads the map from
        // its constant address instead of R2.
        a.load_zx(
            Width::Q,
            Reg::Rsi,
            Rm::Mem(Mem::base(AX, TAIL_CALL_CNT_TO_ENTRY_R2)),
        );
    }
    a.alu_ri(AluKind::Cmp, Width::W, cnt, MAX_TAIL_CALL_CNT as i32);
    a.jcc_rel8(Cc::Ae, 0);
    let to_out_1 = a.len();
    a.alu_ri(AluKind::Add, Width::W, cnt, 1);
    let site = a.len();
    a.nop5();
    let undo = a.len();
    a.alu_ri(AluKind::Sub, Width::W, cnt, 1);
    a.jmp_rel8(0);
    let to_out_2 = a.len();
    let slow = a.len();
    let prog = Reg::R9;
    a.movabs(prog, map);
    a.load_zx(
        Width::Q,
        prog,
        Rm::Mem(Mem::base(prog, MAP_PROG_SLOTS_OFFSET as i32)),
    );
    a.mov_ri32(AUX, index);
    a.load_zx(Width::Q, prog, Rm::Mem(Mem::index(prog, AUX, 8, 0)));
    a.test_rr(Width::Q, prog, prog);
    a.jcc_rel8(Cc::E, 0);
    let to_undo_1 = a.len();
    let target = Mem::base(prog, PROG_TAIL_CALL_TARGET_OFFSET as i32);
    a.load_zx(Width::Q, prog, Rm::Mem(target));
    a.test_rr(Width::Q, prog, prog);
    a.jcc_rel8(Cc::E, 0);
    let to_undo_2 = a.len();
    a.jmp_r(prog);
    let out = a.len();
    a.buf[to_out_1 - 1] = rel8(to_out_1, out);
    a.buf[to_out_2 - 1] = rel8(to_out_2, out);
    a.buf[to_undo_1 - 1] = rel8(to_undo_1, undo);
    a.buf[to_undo_2 - 1] = rel8(to_undo_2, undo);
    DirectSite {
        map,
        index,
        site: site as u32,
        slow: slow as u32,
    }
}

/// The 5 bytes of a site at address `site` whose fallback is at `slow`: fall through for
/// `target == 0`, else `jmp target` (or `jmp slow` when `target` is out of `rel32` reach).
pub fn site_bytes(site: usize, slow: usize, target: usize) -> [u8; SITE_LEN] {
    if target == 0 {
        return NOP5;
    }
    let end = site as i64 + SITE_LEN as i64;
    let rel = i32::try_from(target as i64 - end)
        .unwrap_or_else(|_| i32::try_from(slow as i64 - end).expect("fallback in the image"));
    let mut b = [0xe9, 0, 0, 0, 0];
    b[1..].copy_from_slice(&rel.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_encodings() {
        assert_eq!(site_bytes(0x1000, 0x1010, 0), NOP5);
        assert_eq!(
            site_bytes(0x1000, 0x1010, 0x2005),
            [0xe9, 0x00, 0x10, 0x00, 0x00]
        );
        assert_eq!(
            site_bytes(0x2000, 0x2010, 0x1000),
            [0xe9, 0xfb, 0xef, 0xff, 0xff]
        );
        // Out of reach: the in-image fallback (0x10 - 5 past the site's end).
        let far = 0x1000 + (1usize << 40);
        assert_eq!(
            site_bytes(0x1000, 0x1010, far),
            [0xe9, 0x0b, 0x00, 0x00, 0x00]
        );
    }

    #[test]
    fn the_site_starts_as_a_nop_between_the_count_and_its_undo() {
        let mut a = Asm::new();
        let o = emit_tail_call_direct(&mut a, 0x1000, 7, true);
        let s = o.site as usize;
        assert_eq!(a.buf[s..s + SITE_LEN], NOP5);
        assert!(o.slow as usize > s + SITE_LEN);
        // `add dword [r10], 1` right before the site, `sub dword [r10], 1` right after.
        assert_eq!(a.buf[s - 4..s], [0x41, 0x83, 0x02, 0x01]);
        assert_eq!(a.buf[s + 5..s + 9], [0x41, 0x83, 0x2a, 0x01]);
    }
}
