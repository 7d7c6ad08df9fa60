//! A checked reference interpreter: runs a program as the verifier saw it and bounds-checks
//! every memory access, for testing the verifier's promise that an accepted program only
//! touches memory it may ("accepted ⇒ safe"). Linux has no counterpart; its closest relative
//! is the interpreter `___bpf_prog_run` (`kernel/bpf/core.c`) run under KASAN.
//!
//! It works on the instructions `verify` was given (before the load path's rewrites), over
//! [`decode`]d ops, one at a time. The memory a program may touch is a set of regions:
//! - the context buffer, `[ctx, ctx + len)`;
//! - the stacks of the frames alive at the moment of the access, 512 bytes each (a callee's
//!   stack lies below its caller's, as in [`run`](super::run); a returned frame's stack is
//!   no longer accessible);
//! - the value of every element a map helper handed out during the run (`map_lookup_elem`'s
//!   result, `value_size` bytes) and the values `ld_imm64` `BPF_PSEUDO_MAP_VALUE` names.
//!
//! Loads, stores, atomics and the key/value buffers helpers read are checked against these
//! regions; an access outside all of them stops the run with [`CheckedError::OutOfBounds`].
//! The semantics are the fast interpreter's (RFC 9669). Helpers: the map helpers call the
//! real maps (`Map::lookup_elem_raw` and friends, inside a [`CpuGuard`]); `tail_call` falls
//! through (no program arrays here); the time, random and CPU-id helpers return values from a
//! seeded generator; the conformance helper returns its argument and stops on zero.

use crate::cpu::CpuGuard;
use crate::helpers::func_proto;
use crate::insn::eval::{alu, cond, end};
use crate::insn::{AtomicOp, Call, DecodeError, Insn, Op, Operand, Size, decode};
use crate::map::Map;
use crate::uapi::limits::{MAX_BPF_STACK, MAX_CALL_FRAMES};
use crate::uapi::{MapType, ProgType, func, pseudo};
use alloc::vec::Vec;

/// Why a checked run stopped abnormally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckedError {
    /// `size` bytes at `addr`, accessed by the instruction at `pc`, are outside every region
    /// the program may touch.
    OutOfBounds {
        /// The instruction.
        pc: usize,
        /// The first byte accessed.
        addr: u64,
        /// The access width (or the key/value size a helper reads).
        size: usize,
    },
    /// The step limit was reached.
    StepLimit,
    /// The instruction at `pc` does not decode, or control reached `pc` outside the program.
    BadInsn {
        /// The instruction.
        pc: usize,
    },
    /// The call at `pc` cannot be made: an unknown helper, a map argument that is not one of
    /// the run's maps, a `callx`/kfunc, or more than `MAX_CALL_FRAMES` frames.
    BadCall {
        /// The instruction.
        pc: usize,
    },
}

/// What a checked run is given besides the program and its context.
pub struct CheckedEnv<'a> {
    /// The program type (helper availability).
    pub prog_type: ProgType,
    /// The map a map `ld_imm64` with immediate `h` refers to: `maps[h]`.
    pub maps: &'a [&'a Map],
    /// R2 on entry (the raw-buffer type's context length).
    pub r2: u64,
    /// Instructions executed before the run stops with [`CheckedError::StepLimit`].
    pub step_limit: u64,
    /// Seed of the values the time, random and CPU-id helpers return.
    pub seed: u64,
}

/// A saved caller frame.
struct Frame {
    ret_pc: usize,
    saved: [u64; 4],
}

/// The memory regions of one run, as `[start, end)` address ranges.
struct Regions {
    /// Context and map values.
    fixed: Vec<(u64, u64)>,
    /// The top of frame 0's stack; frame `i`'s stack is the 512 bytes below `top - 512 * i`.
    stack_top: u64,
}

impl Regions {
    fn allows(&self, addr: u64, size: usize, frames: usize) -> bool {
        let Some(end) = addr.checked_add(size as u64) else {
            return false;
        };
        let stack_lo = self.stack_top - (MAX_BPF_STACK * frames) as u64;
        (addr >= stack_lo && end <= self.stack_top)
            || self.fixed.iter().any(|&(lo, hi)| addr >= lo && end <= hi)
    }
}

/// `*(size *)addr`, zero-extended.
///
/// # Safety
/// `addr..addr + size` is readable.
unsafe fn load(addr: u64, size: Size) -> u64 {
    // SAFETY: caller contract; unaligned accesses are allowed by the ISA.
    unsafe {
        match size {
            Size::B => (addr as *const u8).read() as u64,
            Size::H => (addr as *const u16).read_unaligned() as u64,
            Size::W => (addr as *const u32).read_unaligned() as u64,
            Size::DW => (addr as *const u64).read_unaligned(),
        }
    }
}

/// `*(size *)addr = v`.
///
/// # Safety
/// `addr..addr + size` is writable.
unsafe fn store(addr: u64, size: Size, v: u64) {
    // SAFETY: caller contract.
    unsafe {
        match size {
            Size::B => (addr as *mut u8).write(v as u8),
            Size::H => (addr as *mut u16).write_unaligned(v as u16),
            Size::W => (addr as *mut u32).write_unaligned(v as u32),
            Size::DW => (addr as *mut u64).write_unaligned(v),
        }
    }
}

/// Runs `insns` with R1 = the context and the memory checks of the module docs; returns R0.
pub fn run_checked(
    insns: &[Insn],
    ctx: &mut [u8],
    env: &CheckedEnv<'_>,
) -> Result<u64, CheckedError> {
    let _guard = CpuGuard::enter();
    let mut stack = alloc::vec![0u8; MAX_BPF_STACK * MAX_CALL_FRAMES];
    let ctx_lo = ctx.as_mut_ptr() as u64;
    let mut mem = Regions {
        fixed: alloc::vec![(ctx_lo, ctx_lo + ctx.len() as u64)],
        stack_top: stack.as_mut_ptr() as u64 + stack.len() as u64,
    };
    let mut regs = [0u64; 11];
    regs[1] = ctx_lo;
    regs[2] = env.r2;
    regs[10] = mem.stack_top;
    let mut frames: Vec<Frame> = Vec::new();
    let mut rng = env.seed | 1;
    let (mut pc, mut steps) = (0usize, 0u64);
    loop {
        steps += 1;
        if steps > env.step_limit {
            return Err(CheckedError::StepLimit);
        }
        if pc >= insns.len() {
            return Err(CheckedError::BadInsn { pc });
        }
        let op = decode(insns, pc).map_err(|_: DecodeError| CheckedError::BadInsn { pc })?;
        let here = pc;
        pc += op.slots();
        let oob = |addr: u64, size: usize| CheckedError::OutOfBounds {
            pc: here,
            addr,
            size,
        };
        let at = |base: u64, off: i16| base.wrapping_add(off as i64 as u64);
        match op {
            Op::Alu { wide, op, dst, src } => {
                let b = match src {
                    Operand::Imm(i) => i as i64 as u64,
                    Operand::Reg(s) => regs[s as usize],
                };
                regs[dst as usize] = alu(wide, op, regs[dst as usize], b);
            }
            Op::End { kind, bits, dst } => regs[dst as usize] = end(kind, bits, regs[dst as usize]),
            Op::Ja { off } => pc = (pc as i64 + off as i64) as usize,
            Op::Jmp {
                wide,
                cond: c,
                dst,
                src,
                off,
            } => {
                let b = match src {
                    Operand::Imm(i) => i as i64 as u64,
                    Operand::Reg(s) => regs[s as usize],
                };
                if cond(wide, c, regs[dst as usize], b) {
                    pc = (pc as i64 + off as i64) as usize;
                }
            }
            Op::Ldx {
                size,
                sign,
                dst,
                src,
                off,
            } => {
                let a = at(regs[src as usize], off);
                if !mem.allows(a, size.bytes(), frames.len() + 1) {
                    return Err(oob(a, size.bytes()));
                }
                // SAFETY: `a..a + size` lies in a live region (checked above).
                let v = unsafe { load(a, size) };
                regs[dst as usize] = match (sign, size) {
                    (true, Size::B) => v as i8 as i64 as u64,
                    (true, Size::H) => v as i16 as i64 as u64,
                    (true, _) => v as i32 as i64 as u64,
                    (false, _) => v,
                };
            }
            Op::St {
                size,
                dst,
                off,
                imm,
            } => {
                let a = at(regs[dst as usize], off);
                if !mem.allows(a, size.bytes(), frames.len() + 1) {
                    return Err(oob(a, size.bytes()));
                }
                // SAFETY: as for loads.
                unsafe { store(a, size, imm as i64 as u64) };
            }
            Op::Stx {
                size,
                dst,
                src,
                off,
            } => {
                let a = at(regs[dst as usize], off);
                if !mem.allows(a, size.bytes(), frames.len() + 1) {
                    return Err(oob(a, size.bytes()));
                }
                // SAFETY: as for loads.
                unsafe { store(a, size, regs[src as usize]) };
            }
            Op::Atomic {
                size,
                op,
                dst,
                src,
                off,
            } => {
                let (base, reg_old) = match op {
                    AtomicOp::LoadAcquire => (regs[src as usize], dst),
                    _ => (regs[dst as usize], src),
                };
                let a = at(base, off);
                if !mem.allows(a, size.bytes(), frames.len() + 1) {
                    return Err(oob(a, size.bytes()));
                }
                // The run is single-threaded: plain accesses model the atomics.
                // SAFETY: `a..a + size` lies in a live region (checked above).
                let old = unsafe { load(a, size) };
                let s = regs[src as usize];
                let new = match op {
                    AtomicOp::Add { .. } => Some(old.wrapping_add(s)),
                    AtomicOp::Or { .. } => Some(old | s),
                    AtomicOp::And { .. } => Some(old & s),
                    AtomicOp::Xor { .. } => Some(old ^ s),
                    AtomicOp::Xchg => Some(s),
                    AtomicOp::Cmpxchg => {
                        let mask = if size == Size::DW {
                            u64::MAX
                        } else {
                            u32::MAX as u64
                        };
                        (old == regs[0] & mask).then_some(s)
                    }
                    AtomicOp::LoadAcquire => None,
                    AtomicOp::StoreRelease => Some(s),
                };
                if let Some(n) = new {
                    // SAFETY: as above.
                    unsafe { store(a, size, n) };
                }
                match op {
                    AtomicOp::Cmpxchg => regs[0] = old,
                    AtomicOp::Add { fetch: true }
                    | AtomicOp::Or { fetch: true }
                    | AtomicOp::And { fetch: true }
                    | AtomicOp::Xor { fetch: true }
                    | AtomicOp::Xchg
                    | AtomicOp::LoadAcquire => regs[reg_old as usize] = old,
                    _ => {}
                }
            }
            Op::LdImm64 {
                dst,
                pseudo: kind,
                imm,
            } => {
                regs[dst as usize] = match kind {
                    0 => imm,
                    pseudo::MAP_FD | pseudo::MAP_VALUE => {
                        let m = *env
                            .maps
                            .get(imm as u32 as usize)
                            .ok_or(CheckedError::BadInsn { pc: here })?;
                        if kind == pseudo::MAP_FD {
                            m as *const Map as u64
                        } else {
                            map_value(m, &mut mem).ok_or(CheckedError::BadInsn { pc: here })?
                                + (imm >> 32)
                        }
                    }
                    _ => return Err(CheckedError::BadInsn { pc: here }),
                };
            }
            Op::Call(Call::Helper(id)) => {
                let n = frames.len() + 1;
                if let Some(r0) = helper(env, id, &mut regs, &mut mem, n, &mut rng, here)? {
                    return Ok(r0);
                }
            }
            Op::Call(Call::Local(imm)) => {
                if frames.len() + 1 >= MAX_CALL_FRAMES {
                    return Err(CheckedError::BadCall { pc: here });
                }
                frames.push(Frame {
                    ret_pc: pc,
                    saved: [regs[6], regs[7], regs[8], regs[9]],
                });
                regs[10] -= MAX_BPF_STACK as u64;
                pc = (pc as i64 + imm as i64) as usize;
            }
            Op::Call(_) => return Err(CheckedError::BadCall { pc: here }),
            // No program arrays in a checked run: the tail call falls through.
            Op::TailCall(_) => {}
            Op::Exit => match frames.pop() {
                None => return Ok(regs[0]),
                Some(f) => {
                    pc = f.ret_pc;
                    [regs[6], regs[7], regs[8], regs[9]] = f.saved;
                    regs[10] += MAX_BPF_STACK as u64;
                }
            },
            // The step limit bounds the loop: the budget is never used up.
            Op::MayGoto { .. } => {}
            Op::LdPacket { .. } => return Err(CheckedError::BadInsn { pc: here }),
        }
    }
}

/// The value of element 0 of single-element array `m` (`BPF_PSEUDO_MAP_VALUE`), now a region.
fn map_value(m: &Map, mem: &mut Regions) -> Option<u64> {
    if m.map_type() != MapType::Array {
        return None;
    }
    let key = 0u32.to_ne_bytes();
    // SAFETY: `key` has the 4 bytes of an array key; the run holds a `CpuGuard`.
    let v = unsafe { m.lookup_elem_raw(key.as_ptr()) } as u64;
    if v == 0 {
        return None;
    }
    mem.fixed.push((v, v + m.attr().value_size as u64));
    Some(v)
}

/// xorshift64: the checked run's source of "time", random numbers and CPU ids.
fn next(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

/// Calls helper `id`; `Some(r0)` when the program stops. `frames` is the number of live frames.
fn helper(
    env: &CheckedEnv<'_>,
    id: i32,
    regs: &mut [u64; 11],
    mem: &mut Regions,
    frames: usize,
    rng: &mut u64,
    pc: usize,
) -> Result<Option<u64>, CheckedError> {
    let bad = CheckedError::BadCall { pc };
    let proto = func_proto(env.prog_type, id).ok_or(bad)?;
    let map = || {
        env.maps
            .iter()
            .find(|m| **m as *const Map as u64 == regs[1])
            .copied()
            .ok_or(bad)
    };
    let check = |addr: u64, size: u32| {
        if mem.allows(addr, size as usize, frames) {
            Ok(())
        } else {
            Err(CheckedError::OutOfBounds {
                pc,
                addr,
                size: size as usize,
            })
        }
    };
    let r0 = match id {
        func::MAP_LOOKUP_ELEM => {
            let m = map()?;
            check(regs[2], m.attr().key_size)?;
            // SAFETY: the key lies in a live region (checked); the run holds a `CpuGuard`.
            let v = unsafe { m.lookup_elem_raw(regs[2] as *const u8) } as u64;
            if v != 0 {
                mem.fixed.push((v, v + m.attr().value_size as u64));
            }
            v
        }
        func::MAP_UPDATE_ELEM => {
            let m = map()?;
            check(regs[2], m.attr().key_size)?;
            check(regs[3], m.attr().value_size)?;
            // SAFETY: key and value lie in live regions (checked); the run holds a `CpuGuard`.
            let r =
                unsafe { m.update_elem_raw(regs[2] as *const u8, regs[3] as *const u8, regs[4]) };
            r as u64
        }
        func::MAP_DELETE_ELEM => {
            let m = map()?;
            check(regs[2], m.attr().key_size)?;
            // SAFETY: as for lookup.
            unsafe { m.delete_elem_raw(regs[2] as *const u8) as u64 }
        }
        // No program arrays here: the tail call falls through.
        func::TAIL_CALL => regs[0],
        func::GET_PRANDOM_U32 => next(rng) as u32 as u64,
        func::GET_SMP_PROCESSOR_ID => next(rng) % 4,
        // The raw-buffer type's helper 5 is the conformance helper, not ktime_get_ns.
        func::CONFORMANCE_UNWIND if proto.unwind_on_zero && regs[1] == 0 => return Ok(Some(0)),
        func::CONFORMANCE_UNWIND if proto.unwind_on_zero => regs[1],
        func::KTIME_GET_NS => next(rng) >> 1,
        _ => return Err(bad),
    };
    regs[0] = r0;
    // Argument registers are clobbered by a call.
    for r in &mut regs[1..=5] {
        *r = next(rng);
    }
    Ok(None)
}
