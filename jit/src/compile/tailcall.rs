//! Tail calls (Linux `emit_bpf_tail_call_indirect()` in `arch/x86/net/bpf_jit_comp.c`, with the
//! interpreter's `JMP_TAIL_CALL` semantics of `kernel/bpf/core.c`), in the three forms a site's
//! [`TailCallAux`] selects ([`TailSite`]):
//!
//! - **direct**: the verifier saw one map and one in-range constant key on every path — a
//!   patchable jump ([`super::tailcall_direct`]);
//! - **verified**: the verifier proved R2 a prog_array of the program's maps — the indirect
//!   sequence below without the checks it proved;
//! - **checked**: a program from the trusted path (`prog_load_trusted`), which no verifier has
//!   seen — every check at run time.
//!
//! R1 = ctx, R2 = the prog_array, R3 = the index. The checked sequence checks, in this order
//! (every failure falls through to the next instruction, as in the interpreter):
//!
//! ```text
//!     movabs r11, map_k; cmp rsi, r11; je ok    ; R2 is one of the program's maps
//!     …                                          ; (once per map the program references)
//!     jmp out
//! ok: mov r9, [rsi+MAP_PROG_SLOTS]; test r9, r9; jz out   ; a prog_array
//!     mov r11d, edx                              ; index as u32 (R3 itself is kept)
//!     cmp [rsi+MAP_MAX_ENTRIES], r11d; jbe out   ; index >= max_entries: no count used
//!     mov r10, [r12-528]                         ; tcc_ptr (the run's bottom frame)
//!     cmp dword [r10], 33; jae out               ; budget spent
//!     mov r9, [r9+r11*8]; test r9, r9; jz out    ; empty slot: no count used
//!     mov r9, [r9+PROG_TAIL_CALL_TARGET]; test r9, r9; jz out   ; not JIT'd
//!     add dword [r10], 1
//!     mov rsi, [r10+8]                           ; R2 = the run's entry R2 (CpuState)
//!     jmp r9                                     ; past the target's prologue
//! out: mov rsi, [r12-528]; mov rsi, [rsi+8]      ; R2 = entry R2 here too (caller-saved)
//! ```
//!
//! The verified sequence drops the map-membership and prog_array checks (the verifier proved
//! them, as Linux's JIT relies on), the test of the target (the prog_array's owner rules let a
//! JIT'd program share a prog_array only with JIT'd programs), and R2's reload on the
//! fall-through (the verifier treats R1–R5 as clobbered by a call). A tail-called program
//! starts with R2 = the run's entry R2 only where the verifier assumes R2 at entry (a raw
//! buffer's length). No frame is unwound: see [`super::frame`] for why every frame can be
//! reused as is. A checked site in a program that references no map can't make a tail call,
//! so it emits only the R2 reload.

use super::frame::TAIL_CALL_CNT_SLOT;
use super::regmap::{AUX, AX, MAIN_FP};
use crate::x86::{AluKind, Asm, Cc, Mem, Reg, Rm, Width};
use alloc::vec::Vec;
use kbpf::cpu::TAIL_CALL_CNT_TO_ENTRY_R2;
use kbpf::insn::TailCallAux;
use kbpf::map::{MAP_MAX_ENTRIES_OFFSET, MAP_PROG_SLOTS_OFFSET};
use kbpf::prog::PROG_TAIL_CALL_TARGET_OFFSET;
use kbpf::uapi::limits::MAX_TAIL_CALL_CNT;

/// Scratch registers: the slot array / target program, the counter pointer, the index.
const PROG: Reg = Reg::R9;
const CNT: Reg = AX;
const INDEX: Reg = AUX;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Ok,
    Out,
}

/// A sequence with forward jumps to its own labels, resolved when it is finished.
struct Seq {
    a: Asm,
    short: bool,
    /// (end of the jump instruction, its target).
    fixups: Vec<(usize, Label)>,
    ok: usize,
}

impl Seq {
    fn jump(&mut self, cc: Option<Cc>, to: Label) {
        match (cc, self.short) {
            (None, true) => self.a.jmp_rel8(0),
            (None, false) => self.a.jmp_rel32(0),
            (Some(cc), true) => self.a.jcc_rel8(cc, 0),
            (Some(cc), false) => self.a.jcc_rel32(cc, 0),
        }
        self.fixups.push((self.a.len(), to));
    }

    /// Patches every jump; `None` if a short jump can't reach.
    fn finish(mut self, out: usize) -> Option<Asm> {
        for &(end, to) in &self.fixups {
            let d = match to {
                Label::Ok => self.ok,
                Label::Out => out,
            } - end;
            if self.short {
                self.a.buf[end - 1] = u8::try_from(d).ok().filter(|d| *d <= 127)?;
            } else {
                self.a.buf[end - 4..end].copy_from_slice(&(d as i32).to_le_bytes());
            }
        }
        Some(self.a)
    }
}

/// How a tail-call site is emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailSite {
    /// No verifier facts (the trusted path): every check at run time.
    Checked,
    /// R2 proved a prog_array of the program's maps.
    Verified,
    /// One map and one in-range key on every path: a direct, patchable jump.
    Direct {
        /// The map's address.
        map: u64,
        /// The slot.
        index: u32,
    },
}

impl TailSite {
    /// The form for a site with `aux`, in a program whose `used_maps` have addresses `maps`.
    pub fn of(aux: TailCallAux, maps: &[u64]) -> TailSite {
        if !aux.verified {
            return TailSite::Checked;
        }
        match (aux.map.and_then(|m| maps.get(m as usize)), aux.key) {
            (Some(&map), Some(index)) => TailSite::Direct { map, index },
            _ => TailSite::Verified,
        }
    }
}

/// The part both indirect forms share, from the index check to the jump: bounds, budget, slot.
/// `slots_loaded`: the checked form already loaded the slot array into `PROG`.
fn checked_tail(s: &mut Seq, slots_loaded: bool, target_may_be_interpreted: bool, r2: bool) {
    s.a.mov_rr(Width::W, INDEX, Reg::Rdx);
    let max = Mem::base(Reg::Rsi, MAP_MAX_ENTRIES_OFFSET as i32);
    s.a.alu_mr(AluKind::Cmp, Width::W, max, INDEX);
    s.jump(Some(Cc::Be), Label::Out);
    let tcc = Mem::base(MAIN_FP, TAIL_CALL_CNT_SLOT);
    s.a.load_zx(Width::Q, CNT, Rm::Mem(tcc));
    let cnt = Rm::Mem(Mem::base(CNT, 0));
    s.a.alu_ri(AluKind::Cmp, Width::W, cnt, MAX_TAIL_CALL_CNT as i32);
    s.jump(Some(Cc::Ae), Label::Out);
    if !slots_loaded {
        let slots = Mem::base(Reg::Rsi, MAP_PROG_SLOTS_OFFSET as i32);
        s.a.load_zx(Width::Q, PROG, Rm::Mem(slots));
    }
    s.a.load_zx(Width::Q, PROG, Rm::Mem(Mem::index(PROG, INDEX, 8, 0)));
    s.a.test_rr(Width::Q, PROG, PROG);
    s.jump(Some(Cc::E), Label::Out);
    let target = Mem::base(PROG, PROG_TAIL_CALL_TARGET_OFFSET as i32);
    s.a.load_zx(Width::Q, PROG, Rm::Mem(target));
    if target_may_be_interpreted {
        s.a.test_rr(Width::Q, PROG, PROG);
        s.jump(Some(Cc::E), Label::Out);
    }
    s.a.alu_ri(AluKind::Add, Width::W, cnt, 1);
    if r2 {
        // The callee starts with R2 = the run's entry R2, as the verifier assumes.
        s.a.load_zx(
            Width::Q,
            Reg::Rsi,
            Rm::Mem(Mem::base(CNT, TAIL_CALL_CNT_TO_ENTRY_R2)),
        );
    }
    s.a.jmp_r(PROG);
}

fn sequence(maps: &[u64], short: bool) -> Option<Asm> {
    let mut s = Seq {
        a: Asm::new(),
        short,
        fixups: Vec::new(),
        ok: 0,
    };
    for &m in maps {
        s.a.movabs(INDEX, m);
        s.a.alu_rr(AluKind::Cmp, Width::Q, Reg::Rsi, INDEX);
        s.jump(Some(Cc::E), Label::Ok);
    }
    s.jump(None, Label::Out);
    s.ok = s.a.len();
    let slots = Mem::base(Reg::Rsi, MAP_PROG_SLOTS_OFFSET as i32);
    s.a.load_zx(Width::Q, PROG, Rm::Mem(slots));
    s.a.test_rr(Width::Q, PROG, PROG);
    s.jump(Some(Cc::E), Label::Out);
    checked_tail(&mut s, true, true, true);
    let out = s.a.len();
    restore_r2(&mut s.a);
    s.finish(out)
}

fn verified_sequence(r2: bool, short: bool) -> Option<Asm> {
    let mut s = Seq {
        a: Asm::new(),
        short,
        fixups: Vec::new(),
        ok: 0,
    };
    checked_tail(&mut s, false, false, r2);
    let out = s.a.len();
    s.finish(out)
}

/// R2 = the run's entry R2 (through the counter pointer in the bottom frame). Every checked
/// tail call ends with it, taken or not, as the interpreter does.
fn restore_r2(a: &mut Asm) {
    a.load_zx(
        Width::Q,
        Reg::Rsi,
        Rm::Mem(Mem::base(MAIN_FP, TAIL_CALL_CNT_SLOT)),
    );
    a.load_zx(
        Width::Q,
        Reg::Rsi,
        Rm::Mem(Mem::base(Reg::Rsi, TAIL_CALL_CNT_TO_ENTRY_R2)),
    );
}

/// Emits a checked tail call; `maps` are the addresses of the maps the program references
/// (`ld_imm64` map handles), without duplicates.
pub fn emit_tail_call(a: &mut Asm, maps: &[u64]) {
    if maps.is_empty() {
        restore_r2(a);
        return;
    }
    let seq = sequence(maps, true)
        .or_else(|| sequence(maps, false))
        .expect("rel32 jumps reach any label of a tail-call sequence");
    a.bytes(&seq.buf);
}

/// Emits a verified indirect tail call; `r2`: the program type's entry R2 is the run's entry
/// R2 (a raw buffer's length), so a tail-called program gets it back.
pub fn emit_tail_call_verified(a: &mut Asm, r2: bool) {
    let seq = verified_sequence(r2, true)
        .or_else(|| verified_sequence(r2, false))
        .expect("rel32 jumps reach any label of a tail-call sequence");
    a.bytes(&seq.buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(code: &[u8], seq: &[u8]) -> bool {
        code.windows(seq.len()).any(|w| w == seq)
    }

    #[test]
    fn the_site_form_follows_the_verifier_facts() {
        let maps = [0x1000u64, 0x2000];
        let aux = |verified, map, key| TailCallAux { verified, map, key };
        assert_eq!(
            TailSite::of(aux(false, Some(0), Some(1)), &maps),
            TailSite::Checked
        );
        assert_eq!(
            TailSite::of(aux(true, None, None), &maps),
            TailSite::Verified
        );
        assert_eq!(
            TailSite::of(aux(true, Some(1), None), &maps),
            TailSite::Verified
        );
        assert_eq!(
            TailSite::of(aux(true, Some(1), Some(3)), &maps),
            TailSite::Direct {
                map: 0x2000,
                index: 3
            }
        );
        // An index past the maps handed over (a caller without them) stays indirect.
        assert_eq!(
            TailSite::of(aux(true, Some(2), Some(3)), &maps),
            TailSite::Verified
        );
    }

    #[test]
    fn only_the_checked_form_tests_the_map_and_the_target() {
        let mut checked = Asm::new();
        emit_tail_call(&mut checked, &[0x1122_3344_5566_7788]);
        let mut verified = Asm::new();
        emit_tail_call_verified(&mut verified, false);
        // movabs r11, map; cmp rsi, r11 — the membership check.
        assert!(has(&checked.buf, &[0x49, 0xbb, 0x88, 0x77]));
        assert!(!has(&verified.buf, &[0x49, 0xbb]));
        // test r9, r9 after loading the target (mov r9, [r9]): the checked form only.
        assert!(has(&checked.buf, &[0x4d, 0x8b, 0x09, 0x4d, 0x85, 0xc9]));
        assert!(!has(&verified.buf, &[0x4d, 0x8b, 0x09, 0x4d, 0x85, 0xc9]));
        assert!(verified.buf.ends_with(&[0x41, 0xff, 0xe1]), "jmp r9 last");
        // R2 reloaded on the taken path only where the program type starts with it.
        let mut raw = Asm::new();
        emit_tail_call_verified(&mut raw, true);
        assert_eq!(raw.len(), verified.len() + 4);
    }
}
