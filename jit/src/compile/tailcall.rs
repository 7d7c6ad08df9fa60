//! The indirect tail call (Linux `emit_bpf_tail_call_indirect()` in
//! `arch/x86/net/bpf_jit_comp.c`, with the interpreter's `JMP_TAIL_CALL` semantics of
//! `kernel/bpf/core.c`).
//!
//! R1 = ctx, R2 = the prog_array, R3 = the index. The sequence checks, in this order (every
//! failure falls through to the next instruction with all registers unchanged, as in the
//! interpreter):
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
//!     mov r9, [r9+PROG_TAIL_CALL_TARGET]; test r9, r9; jz out   ; not JIT'd (can't happen)
//!     add dword [r10], 1
//!     mov rsi, [r10+8]                           ; R2 = the run's entry R2 (CpuState)
//!     jmp r9                                     ; past the target's prologue
//! out: mov rsi, [r12-528]; mov rsi, [rsi+8]      ; R2 = entry R2 here too (caller-saved)
//! ```
//!
//! The map-membership check is the interpreter's (a register that is not one of the program's
//! maps falls through). In Linux it is the verifier's alone; kbpf's verifier proves it too, but
//! the JIT also compiles programs from the trusted path (`prog_load_trusted`), which no
//! verifier has seen, so the check stays. No frame is unwound: see [`super::frame`] for why every frame can be reused as is. A program
//! that references no map can't make a tail call, so its tail-call instructions emit nothing.

use super::frame::TAIL_CALL_CNT_SLOT;
use super::regmap::{AUX, AX, MAIN_FP};
use crate::x86::{AluKind, Asm, Cc, Mem, Reg, Rm, Width};
use alloc::vec::Vec;
use kbpf::cpu::TAIL_CALL_CNT_TO_ENTRY_R2;
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
    s.a.mov_rr(Width::W, INDEX, Reg::Rdx);
    let max = Mem::base(Reg::Rsi, MAP_MAX_ENTRIES_OFFSET as i32);
    s.a.alu_mr(AluKind::Cmp, Width::W, max, INDEX);
    s.jump(Some(Cc::Be), Label::Out);
    let tcc = Mem::base(MAIN_FP, TAIL_CALL_CNT_SLOT);
    s.a.load_zx(Width::Q, CNT, Rm::Mem(tcc));
    let cnt = Rm::Mem(Mem::base(CNT, 0));
    s.a.alu_ri(AluKind::Cmp, Width::W, cnt, MAX_TAIL_CALL_CNT as i32);
    s.jump(Some(Cc::Ae), Label::Out);
    s.a.load_zx(Width::Q, PROG, Rm::Mem(Mem::index(PROG, INDEX, 8, 0)));
    s.a.test_rr(Width::Q, PROG, PROG);
    s.jump(Some(Cc::E), Label::Out);
    let target = Mem::base(PROG, PROG_TAIL_CALL_TARGET_OFFSET as i32);
    s.a.load_zx(Width::Q, PROG, Rm::Mem(target));
    s.a.test_rr(Width::Q, PROG, PROG);
    s.jump(Some(Cc::E), Label::Out);
    s.a.alu_ri(AluKind::Add, Width::W, cnt, 1);
    // The callee starts with R2 = the run's entry R2, as the verifier assumes.
    s.a.load_zx(
        Width::Q,
        Reg::Rsi,
        Rm::Mem(Mem::base(CNT, TAIL_CALL_CNT_TO_ENTRY_R2)),
    );
    s.a.jmp_r(PROG);
    let out = s.a.len();
    restore_r2(&mut s.a);
    s.finish(out)
}

/// R2 = the run's entry R2 (through the counter pointer in the bottom frame). Every tail call
/// ends with it, taken or not, as the interpreter does; R2 is caller-saved at a call.
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

/// Emits an indirect tail call; `maps` are the addresses of the maps the program references
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
