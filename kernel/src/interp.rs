//! The interpreter (Linux `___bpf_prog_run` in `kernel/bpf/core.c`), pre-decoded.
//!
//! At load the checked instructions are translated once into [`IOp`]s: one 16-byte op per
//! instruction slot (so jump distances stay in slots), with the operation, width and operand
//! form folded into a dense `K` kind that the run loop dispatches through one jump table, and a
//! few common neighbours fused into one op (`fuse.rs`).
//! Immediates are pre-extended, helper prototypes pre-resolved, and — in a program loaded on the
//! trusted path, which no verifier has seen — the map arguments a helper takes pre-marked for a
//! run-time check; a verified program's were proved and are not checked again.
//!
//! Semantics are RFC 9669's and Linux's: division by zero yields 0, modulo by zero leaves the
//! dividend (32-bit: zero-extended), `INT_MIN / -1` wraps, shift counts are masked to the width.
//! Tail calls follow `decisions.md` item 1: an index past `max_entries` or an empty slot falls
//! through without using budget; at most `MAX_TAIL_CALL_CNT` (33) succeed per run.

#[cfg(feature = "tools")]
pub mod checked;
mod exec;
mod fuse;
mod kind;

pub(crate) use exec::run;
pub(crate) use kind::K;

use crate::helpers::{ArgKind, HelperProto, runtime_proto};
use crate::insn::{AluOp, AtomicOp, Call, Cond, EndKind, Insn, Op, Operand, Size, decode_internal};
use crate::uapi::ProgType;
use crate::{Errno, Result};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// One pre-decoded instruction.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct IOp {
    pub k: K,
    pub dst: u8,
    /// Source register; for helper calls, the bit set of arguments that are map pointers.
    pub src: u8,
    /// Jump distance (from the next slot), or memory offset.
    pub off: i32,
    /// Immediate (sign-extended), the 64-bit `ld_imm64` value, or a helper prototype address.
    pub imm: u64,
}

static_assertions::assert_eq_size!(IOp, [u64; 2]);

/// A program in interpreter form.
pub(crate) struct InterpImage {
    pub ops: Box<[IOp]>,
    /// Addresses of the program's maps, for validating map arguments at run time.
    pub map_addrs: Box<[u64]>,
}

impl InterpImage {
    /// Translates checked, rewritten instructions (`crate::load` has validated every field,
    /// jump target and helper id); `verified`: the verifier proved the program's helper map
    /// arguments, so they are not checked at run time.
    pub(crate) fn build(
        insns: &[Insn],
        prog_type: ProgType,
        map_addrs: Box<[u64]>,
        verified: bool,
    ) -> Result<Self> {
        let mut ops = Vec::new();
        ops.try_reserve_exact(insns.len())?;
        let mut pc = 0;
        while pc < insns.len() {
            // The load path validated the program; its rewrites may use the hidden AX register.
            let op = decode_internal(insns, pc).map_err(|_| Errno::EINVAL)?;
            let mut iop = translate(&op, prog_type)?;
            if verified && iop.k == K::CallHelper {
                iop.src = 0;
            }
            ops.push(iop);
            if op.slots() == 2 {
                ops.push(IOp {
                    k: K::Nop,
                    dst: 0,
                    src: 0,
                    off: 0,
                    imm: 0,
                });
            }
            pc += op.slots();
        }
        fuse::fuse(&mut ops);
        Ok(InterpImage {
            ops: ops.into_boxed_slice(),
            map_addrs,
        })
    }
}

/// The kind for each (64-bit?, immediate?) form of one operation.
macro_rules! pick {
    ($wide:expr, $imm:expr, $i64:ident, $r64:ident, $i32:ident, $r32:ident) => {
        match ($wide, $imm) {
            (true, true) => K::$i64,
            (true, false) => K::$r64,
            (false, true) => K::$i32,
            (false, false) => K::$r32,
        }
    };
}

fn iop(k: K, dst: u8, src: u8, off: i32, imm: u64) -> IOp {
    IOp {
        k,
        dst,
        src,
        off,
        imm,
    }
}

fn alu_kind(wide: bool, op: AluOp, imm: bool) -> K {
    use AluOp::*;
    match op {
        Add => pick!(wide, imm, AddI64, AddR64, AddI32, AddR32),
        Sub => pick!(wide, imm, SubI64, SubR64, SubI32, SubR32),
        Mul => pick!(wide, imm, MulI64, MulR64, MulI32, MulR32),
        Div => pick!(wide, imm, DivI64, DivR64, DivI32, DivR32),
        SDiv => pick!(wide, imm, SDivI64, SDivR64, SDivI32, SDivR32),
        Mod => pick!(wide, imm, ModI64, ModR64, ModI32, ModR32),
        SMod => pick!(wide, imm, SModI64, SModR64, SModI32, SModR32),
        Or => pick!(wide, imm, OrI64, OrR64, OrI32, OrR32),
        And => pick!(wide, imm, AndI64, AndR64, AndI32, AndR32),
        Xor => pick!(wide, imm, XorI64, XorR64, XorI32, XorR32),
        Lsh => pick!(wide, imm, LshI64, LshR64, LshI32, LshR32),
        Rsh => pick!(wide, imm, RshI64, RshR64, RshI32, RshR32),
        Arsh => pick!(wide, imm, ArshI64, ArshR64, ArshI32, ArshR32),
        Mov => pick!(wide, imm, MovI64, MovR64, MovI32, MovR32),
        Neg => {
            if wide {
                K::Neg64
            } else {
                K::Neg32
            }
        }
        MovSx(bits) => match (wide, bits) {
            (true, 8) => K::Sx8To64,
            (true, 16) => K::Sx16To64,
            (true, _) => K::Sx32To64,
            (false, 8) => K::Sx8To32,
            (false, _) => K::Sx16To32,
        },
    }
}

fn jmp_kind(wide: bool, cond: Cond, imm: bool) -> K {
    use Cond::*;
    match cond {
        Eq => pick!(wide, imm, JeqI, JeqR, Jeq32I, Jeq32R),
        Gt => pick!(wide, imm, JgtI, JgtR, Jgt32I, Jgt32R),
        Ge => pick!(wide, imm, JgeI, JgeR, Jge32I, Jge32R),
        Set => pick!(wide, imm, JsetI, JsetR, Jset32I, Jset32R),
        Ne => pick!(wide, imm, JneI, JneR, Jne32I, Jne32R),
        Sgt => pick!(wide, imm, JsgtI, JsgtR, Jsgt32I, Jsgt32R),
        Sge => pick!(wide, imm, JsgeI, JsgeR, Jsge32I, Jsge32R),
        Lt => pick!(wide, imm, JltI, JltR, Jlt32I, Jlt32R),
        Le => pick!(wide, imm, JleI, JleR, Jle32I, Jle32R),
        Slt => pick!(wide, imm, JsltI, JsltR, Jslt32I, Jslt32R),
        Sle => pick!(wide, imm, JsleI, JsleR, Jsle32I, Jsle32R),
    }
}

fn sized(size: Size, b: K, h: K, w: K, dw: K) -> K {
    match size {
        Size::B => b,
        Size::H => h,
        Size::W => w,
        Size::DW => dw,
    }
}

fn atomic_kind(size: Size, op: AtomicOp) -> K {
    use AtomicOp::*;
    let w32 = size == Size::W;
    let (k32, k64) = match op {
        Add { fetch: false } => (K::AAdd32, K::AAdd64),
        Or { fetch: false } => (K::AOr32, K::AOr64),
        And { fetch: false } => (K::AAnd32, K::AAnd64),
        Xor { fetch: false } => (K::AXor32, K::AXor64),
        Add { fetch: true } => (K::AFetchAdd32, K::AFetchAdd64),
        Or { fetch: true } => (K::AFetchOr32, K::AFetchOr64),
        And { fetch: true } => (K::AFetchAnd32, K::AFetchAnd64),
        Xor { fetch: true } => (K::AFetchXor32, K::AFetchXor64),
        Xchg => (K::AXchg32, K::AXchg64),
        Cmpxchg => (K::ACmpxchg32, K::ACmpxchg64),
        LoadAcquire => return sized(size, K::LdAcqB, K::LdAcqH, K::LdAcqW, K::LdAcqDW),
        StoreRelease => return sized(size, K::StRelB, K::StRelH, K::StRelW, K::StRelDW),
    };
    if w32 { k32 } else { k64 }
}

/// The bit set of R1..R5 that a helper takes as map pointers.
fn map_arg_mask(proto: &HelperProto) -> u8 {
    proto.args.iter().enumerate().fold(0, |m, (i, a)| {
        if *a == ArgKind::ConstMapPtr {
            m | 1 << i
        } else {
            m
        }
    })
}

fn translate(op: &Op, prog_type: ProgType) -> Result<IOp> {
    Ok(match *op {
        Op::Alu { wide, op, dst, src } => match src {
            Operand::Imm(imm) => iop(alu_kind(wide, op, true), dst, 0, 0, imm as i64 as u64),
            Operand::Reg(s) => iop(alu_kind(wide, op, false), dst, s, 0, 0),
        },
        Op::End { kind, bits, dst } => {
            let k = match (kind, bits) {
                (EndKind::ToLe, 16) => K::Zext16,
                (EndKind::ToLe, 32) => K::Zext32,
                (EndKind::ToLe, _) => K::Nop,
                (_, 16) => K::Bswap16,
                (_, 32) => K::Bswap32,
                (_, _) => K::Bswap64,
            };
            iop(k, dst, 0, 0, 0)
        }
        Op::Ja { off } => iop(K::Ja, 0, 0, off, 0),
        Op::Jmp {
            wide,
            cond,
            dst,
            src,
            off,
        } => match src {
            Operand::Imm(imm) => iop(
                jmp_kind(wide, cond, true),
                dst,
                0,
                off as i32,
                imm as i64 as u64,
            ),
            Operand::Reg(s) => iop(jmp_kind(wide, cond, false), dst, s, off as i32, 0),
        },
        Op::Call(Call::Helper(id)) => {
            let proto = runtime_proto(prog_type, id).ok_or(Errno::EINVAL)?;
            if proto.func.is_none() {
                return Err(Errno::EINVAL);
            }
            iop(
                K::CallHelper,
                0,
                map_arg_mask(proto),
                0,
                proto as *const HelperProto as u64,
            )
        }
        Op::Call(Call::Local(imm)) => iop(K::CallLocal, 0, 0, imm, 0),
        Op::Call(Call::Reg(r)) => iop(K::Callx, r, 0, 0, 0),
        Op::Call(Call::Kfunc(id)) => {
            // The load refused kfuncs without a run-time side (`load::check`).
            let f = crate::kfunc::find(id)
                .and_then(|k| k.func)
                .ok_or(Errno::ENOTSUPP)?;
            iop(K::CallKfunc, 0, 0, 0, f as usize as u64)
        }
        // A verified site's R2 is a prog_array of the program's maps on every path: no scan of
        // the map list at run time (the trusted path keeps it).
        Op::TailCall(aux) if aux.verified => iop(K::TailCallVerified, 0, 0, 0, 0),
        Op::TailCall(_) => iop(K::TailCall, 0, 0, 0, 0),
        Op::Exit => iop(K::Exit, 0, 0, 0, 0),
        Op::MayGoto { off } => iop(K::MayGoto, 0, 0, off as i32, 0),
        Op::Ldx {
            size,
            sign: false,
            dst,
            src,
            off,
        } => iop(
            sized(size, K::LdxB, K::LdxH, K::LdxW, K::LdxDW),
            dst,
            src,
            off as i32,
            0,
        ),
        Op::Ldx {
            size,
            sign: true,
            dst,
            src,
            off,
        } => iop(
            sized(size, K::LdxSB, K::LdxSH, K::LdxSW, K::Nop),
            dst,
            src,
            off as i32,
            0,
        ),
        Op::St {
            size,
            dst,
            off,
            imm,
        } => iop(
            sized(size, K::StB, K::StH, K::StW, K::StDW),
            dst,
            0,
            off as i32,
            imm as i64 as u64,
        ),
        Op::Stx {
            size,
            dst,
            src,
            off,
        } => iop(
            sized(size, K::StxB, K::StxH, K::StxW, K::StxDW),
            dst,
            src,
            off as i32,
            0,
        ),
        Op::Atomic {
            size,
            op,
            dst,
            src,
            off,
        } => iop(atomic_kind(size, op), dst, src, off as i32, 0),
        Op::LdImm64 { dst, imm, .. } => iop(K::LdImm64, dst, 0, 0, imm),
        Op::LdPacket { .. } => return Err(Errno::ENOTSUPP),
    })
}
