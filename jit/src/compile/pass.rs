//! One code-generation pass over the whole program, and the per-instruction dispatch (Linux
//! `do_jit()` in `arch/x86/net/bpf_jit_comp.c`).
//!
//! A pass lays out, for each subprogram in order: its prologue, its instructions, its epilogue.
//! Jumps, calls and unwind branches are sized from the previous pass's [`Layout`] (the first
//! pass has none and emits every jump long), so the image shrinks pass by pass until it stops
//! changing; see [`super::emit`].

use super::alu::{emit_alu, emit_end};
use super::call::{HelperCalls, emit_callx, emit_helper, emit_kfunc};
use super::frame::{self, CallSaves, FrameInfo, MAY_GOTO_SLOT, MainFrame};
use super::mem::{emit_atomic, emit_ldx, emit_st, emit_stx};
use super::regmap::{AUX, bpf_reg};
use super::subprog::Subprogs;
use super::tailcall::{TailSite, emit_tail_call, emit_tail_call_verified};
use super::tailcall_direct::{DirectSite, emit_tail_call_direct};
use crate::x86::{AluKind, Asm, Cc, Mem, Reg, Rm, Width};
use alloc::vec;
use alloc::vec::Vec;
use kbpf::Errno;
use kbpf::helpers::HelperProto;
use kbpf::insn::{Call, Cond, Op, Operand};
use kbpf::uapi::ProgType;

/// Byte offsets of one pass's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Where each instruction slot's code starts (a jump target).
    pub start: Vec<u32>,
    /// Where each instruction slot's code ends.
    pub end: Vec<u32>,
    /// Where each subprogram's prologue starts (a call target).
    pub entry: Vec<u32>,
    /// Where each subprogram's epilogue starts (index 0: the main epilogue).
    pub epilogue: Vec<u32>,
    /// The unwind entry (just after the main epilogue, in a program that can unwind): ends the
    /// run from any frame.
    pub unwind: u32,
    /// Where a tail call into the program jumps: instruction 0's code, or the frameless tail
    /// entry.
    pub tail_entry: u32,
    /// Total image size.
    pub total: u32,
    /// The direct tail calls, in code order.
    pub pokes: Vec<DirectSite>,
}

/// A program prepared for code generation.
pub struct Prepared {
    /// The decoded instruction per slot (`None` for an `ld_imm64`'s second slot).
    pub ops: Vec<Option<Op>>,
    /// Helper prototypes of `call` instructions, per slot.
    pub protos: Vec<Option<&'static HelperProto>>,
    /// Kfunc addresses of kfunc `call` instructions, per slot (0 elsewhere).
    pub kfuncs: Vec<usize>,
    /// Subprogram layout.
    pub subs: Subprogs,
    /// Prologue options.
    pub frame: FrameInfo,
    /// The main prologue's optional parts.
    pub main: MainFrame,
    /// What a BPF-to-BPF call site saves around its `call`.
    pub saves: CallSaves,
    /// Per slot: the target of a backward jump (a loop head), aligned to [`LOOP_ALIGN`] when
    /// `align_loops` is set.
    pub loop_head: Vec<bool>,
    /// Pad loop heads with NOPs (see [`LOOP_ALIGN`]).
    pub align_loops: bool,
    /// How helper calls are emitted.
    pub calls: HelperCalls,
    /// The program type (for `callx`).
    pub prog_type: ProgType,
    /// Addresses of the maps the program references (`ld_imm64` map handles), for checked
    /// tail calls.
    pub maps: Vec<u64>,
    /// Addresses of the program's `used_maps`, which a verified tail call's facts index.
    pub used_maps: Vec<u64>,
}

impl Prepared {
    /// How the tail call `aux` is emitted.
    fn tail_site(&self, aux: kbpf::insn::TailCallAux) -> TailSite {
        TailSite::of(aux, &self.used_maps)
    }

    /// Whether a tail-called program starts with the run's entry R2 (the verifier assumes R2
    /// at entry only for a raw buffer, its length).
    fn entry_r2(&self) -> bool {
        self.prog_type == ProgType::RawBuffer
    }
}

/// Where a branch goes.
#[derive(Clone, Copy)]
enum Label {
    Insn(usize),
    Epilogue(usize),
    Unwind,
}

/// What ends an instruction's code: nothing, a jump, or a call of a subprogram (then the pops
/// of the call-site saves).
enum Tail {
    None,
    Jump(Option<Cc>, Label),
    Call(usize),
}

/// Largest forward rel8 distance used (Linux `is_imm8_jmp_offset` stops at 123 so that passes
/// cannot oscillate between a growing and a shrinking jump).
fn is_imm8_jmp(d: i64) -> bool {
    (-128..=123).contains(&d)
}

/// Loop heads start on this boundary (images start 64-byte aligned), so that a short loop's
/// body and its back-edge share few fetch blocks and where the loop sits does not change with
/// the size of the code before it (the prologue, say).
pub const LOOP_ALIGN: usize = 32;

/// Per slot, whether some jump at or after it targets it: the loop heads.
pub fn loop_heads(ops: &[Option<Op>]) -> Vec<bool> {
    let mut head = vec![false; ops.len()];
    for (pc, op) in ops.iter().enumerate() {
        let off = match op {
            Some(Op::Ja { off }) => *off as i64,
            Some(Op::Jmp { off, .. } | Op::MayGoto { off }) => *off as i64,
            _ => continue,
        };
        let t = pc as i64 + 1 + off;
        if t <= pc as i64 && t >= 0 {
            head[t as usize] = true;
        }
    }
    head
}

/// Runs one pass. `prev` is the previous pass's layout, if any.
pub fn pass(p: &Prepared, prev: Option<&Layout>) -> Result<(Vec<u8>, Layout), Errno> {
    let n = p.ops.len();
    let nsub = p.subs.starts.len();
    let mut a = Asm::new();
    let mut l = Layout {
        start: vec![0; n],
        end: vec![0; n],
        entry: vec![0; nsub],
        epilogue: vec![0; nsub],
        unwind: 0,
        tail_entry: 0,
        total: 0,
        pokes: Vec::new(),
    };
    for k in 0..nsub {
        l.entry[k] = a.len() as u32;
        if k == 0 {
            frame::main_prologue(&mut a, p.main);
        } else {
            frame::sub_prologue(&mut a, p.frame);
        }
        let range = p.subs.range(k);
        for pc in range.clone() {
            if p.align_loops && p.loop_head[pc] {
                a.align_with_nops(LOOP_ALIGN);
            }
            l.start[pc] = a.len() as u32;
            match p.ops[pc] {
                Some(Op::TailCall(aux)) => match p.tail_site(aux) {
                    TailSite::Direct { map, index } => {
                        l.pokes.try_reserve(1)?;
                        l.pokes
                            .push(emit_tail_call_direct(&mut a, map, index, p.entry_r2()));
                    }
                    TailSite::Verified => emit_tail_call_verified(&mut a, p.entry_r2()),
                    TailSite::Checked => emit_tail_call(&mut a, &p.maps),
                },
                Some(op) => {
                    let tail = emit_insn(&mut a, p, pc, op, pc + 1 == range.end)?;
                    emit_tail(&mut a, p, tail, pc, prev);
                }
                None => {}
            }
            l.end[pc] = a.len() as u32;
        }
        l.epilogue[k] = a.len() as u32;
        if k == 0 && !p.main.frame {
            a.ret();
        } else {
            frame::epilogue(&mut a);
        }
        if k == 0 && p.main.bottom_fp {
            l.unwind = a.len() as u32;
            frame::unwind(&mut a);
        }
        if k == 0 {
            l.tail_entry = l.start.first().copied().unwrap_or(0);
            if !p.main.frame {
                l.tail_entry = a.len() as u32;
                frame::frameless_tail_entry(&mut a, l.start[0] as usize);
            }
        }
    }
    l.total = a.len() as u32;
    if a.len() > u32::MAX as usize / 2 {
        return Err(Errno::E2BIG);
    }
    Ok((a.buf, l))
}

fn emit_tail(a: &mut Asm, p: &Prepared, tail: Tail, pc: usize, prev: Option<&Layout>) {
    let disp = |target: &dyn Fn(&Layout) -> u32| -> Option<i64> {
        prev.map(|l| target(l) as i64 - l.end[pc] as i64)
    };
    match tail {
        Tail::None => {}
        Tail::Call(k) => {
            // The call is followed by the pops of the call-site saves.
            let d = disp(&|l| l.entry[k]).unwrap_or(0) + p.saves.pop_len() as i64;
            a.call_rel32(d as i32);
            p.saves.pop(a);
        }
        Tail::Jump(cc, label) => {
            let d = match label {
                Label::Insn(t) => disp(&|l| l.start[t]),
                Label::Epilogue(k) => disp(&|l| l.epilogue[k]),
                Label::Unwind => disp(&|l| l.unwind),
            };
            match (cc, d) {
                (None, Some(d)) if is_imm8_jmp(d) => a.jmp_rel8(d as i8),
                (Some(cc), Some(d)) if is_imm8_jmp(d) => a.jcc_rel8(cc, d as i8),
                (None, d) => a.jmp_rel32(d.unwrap_or(0) as i32),
                (Some(cc), d) => a.jcc_rel32(cc, d.unwrap_or(0) as i32),
            }
        }
    }
}

fn cond_cc(cond: Cond) -> Cc {
    match cond {
        Cond::Eq => Cc::E,
        Cond::Ne | Cond::Set => Cc::Ne,
        Cond::Gt => Cc::A,
        Cond::Ge => Cc::Ae,
        Cond::Lt => Cc::B,
        Cond::Le => Cc::Be,
        Cond::Sgt => Cc::G,
        Cond::Sge => Cc::Ge,
        Cond::Slt => Cc::L,
        Cond::Sle => Cc::Le,
    }
}

fn target(pc: usize, off: i64) -> usize {
    (pc as i64 + 1 + off) as usize
}

/// Emits instruction `pc`'s body; returns what ends it.
fn emit_insn(
    a: &mut Asm,
    p: &Prepared,
    pc: usize,
    op: Op,
    last_of_sub: bool,
) -> Result<Tail, Errno> {
    let sub = p.subs.of[pc] as usize;
    Ok(match op {
        Op::Alu { wide, op, dst, src } => {
            emit_alu(a, wide, op, dst, src);
            Tail::None
        }
        Op::End { kind, bits, dst } => {
            emit_end(a, kind, bits, dst);
            Tail::None
        }
        Op::Ja { off } => {
            if off == 0 {
                Tail::None
            } else {
                Tail::Jump(None, Label::Insn(target(pc, off as i64)))
            }
        }
        Op::Jmp {
            wide,
            cond,
            dst,
            src,
            off,
        } => {
            let w = Width::of(wide);
            let d = bpf_reg(dst);
            match (cond, src) {
                (Cond::Set, Operand::Reg(s)) => a.test_rr(w, d, bpf_reg(s)),
                (Cond::Set, Operand::Imm(imm)) => a.test_ri(w, d, imm),
                (_, Operand::Reg(s)) => a.alu_rr(AluKind::Cmp, w, d, bpf_reg(s)),
                (_, Operand::Imm(0)) => a.test_rr(w, d, d),
                (_, Operand::Imm(imm)) => a.alu_ri(AluKind::Cmp, w, Rm::Reg(d), imm),
            }
            Tail::Jump(Some(cond_cc(cond)), Label::Insn(target(pc, off as i64)))
        }
        Op::MayGoto { off } => {
            // r11 = budget; r11 -= 1 unless it was 0 (CF set exactly then); store; jc target.
            let slot = Mem::base(Reg::Rbp, MAY_GOTO_SLOT);
            a.load_zx(Width::Q, AUX, Rm::Mem(slot));
            a.alu_ri(AluKind::Sub, Width::Q, Rm::Reg(AUX), 1);
            a.adc_ri(Width::Q, AUX, 0);
            a.store(Width::Q, slot, AUX);
            Tail::Jump(Some(Cc::B), Label::Insn(target(pc, off as i64)))
        }
        Op::Call(Call::Helper(_)) => {
            let proto = p.protos[pc].ok_or(Errno::EINVAL)?;
            match emit_helper(a, proto, p.calls) {
                Some(cc) => Tail::Jump(Some(cc), Label::Unwind),
                None if proto.func.is_none() => return Err(Errno::EINVAL),
                None => Tail::None,
            }
        }
        Op::Call(Call::Local(imm)) => {
            let t = target(pc, imm as i64);
            let k = p.subs.index_of_start(t).ok_or(Errno::EINVAL)?;
            p.saves.push(a);
            Tail::Call(k)
        }
        Op::Call(Call::Reg(r)) => Tail::Jump(Some(emit_callx(a, r, p.prog_type)), Label::Unwind),
        // Emitted by `pass` itself (a direct site is recorded in the layout).
        Op::TailCall(_) => return Err(Errno::EFAULT),
        Op::Call(Call::Kfunc(_)) => {
            match p.kfuncs[pc] {
                0 => return Err(Errno::EINVAL),
                f => emit_kfunc(a, f, p.calls),
            }
            Tail::None
        }
        Op::LdPacket { .. } => return Err(Errno::ENOTSUPP),
        Op::Exit => {
            if last_of_sub {
                Tail::None
            } else {
                Tail::Jump(None, Label::Epilogue(sub))
            }
        }
        Op::Ldx {
            size,
            sign,
            dst,
            src,
            off,
        } => {
            emit_ldx(a, size, sign, dst, src, off);
            Tail::None
        }
        Op::St {
            size,
            dst,
            off,
            imm,
        } => {
            emit_st(a, size, dst, off, imm);
            Tail::None
        }
        Op::Stx {
            size,
            dst,
            src,
            off,
        } => {
            emit_stx(a, size, dst, src, off);
            Tail::None
        }
        Op::Atomic {
            size,
            op,
            dst,
            src,
            off,
        } => {
            emit_atomic(a, size, op, dst, src, off);
            Tail::None
        }
        Op::LdImm64 { dst, imm, .. } => {
            a.mov_imm64(bpf_reg(dst), imm);
            Tail::None
        }
    })
}
