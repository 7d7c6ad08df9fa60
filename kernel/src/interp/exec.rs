//! The interpreter's run loop.
//!
//! Registers live in a local array; BPF-to-BPF calls push a frame record (return slot, the
//! caller's program, its R6–R9 and frame pointer) and give the callee the next 512 bytes of
//! stack. A tail call replaces the current frame's program and keeps its stack, so a tail call
//! made inside a subprogram returns to that subprogram's caller, as on x86-64.
//!
//! Memory accesses go straight to the addresses the program computes. Their safety is the
//! verifier's job: `prog_load` proves every access in bounds before a program reaches this
//! loop. Programs from `syscall::prog_load_trusted` (the kernel's `lib/test_bpf.c` path) skip
//! it; the run-time checks here (map arguments, call depth, atomic alignment) are what stands
//! between such a program and the host.

use super::{IOp, InterpImage, K};
#[cfg(doc)]
use crate::cpu::CpuGuard;
use crate::cpu::{
    CpuState, Fault, INTERP_FRAME_WORDS, INTERP_STACK_BYTES, InterpFrameSlot, count_tail_call,
    tail_call_budget_spent,
};
use crate::helpers::{HelperFn, HelperProto, func_proto};
use crate::map::Map;
use crate::prog::Prog;
use crate::uapi::limits::{MAX_BPF_STACK, MAX_CALL_FRAMES};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

/// `may_goto`'s hidden per-frame loop budget (`BPF_MAX_LOOPS`).
const MAY_GOTO_BUDGET: u64 = 8 * 1024 * 1024;

/// A call-frame record, kept in the CPU's [`CpuState`] frame slots.
struct Frame {
    /// Where the caller resumes: a pointer into its program's ops.
    ret: *const IOp,
    prog: *const Prog,
    saved: [u64; 4],
    fp: u64,
    may_goto: u64,
    /// Depth at which the frame's program began (it changes at tail calls).
    seg_base: usize,
}

// A record fills one per-CPU frame slot exactly, so the slots are an array of records.
static_assertions::const_assert_eq!(
    core::mem::size_of::<Frame>(),
    core::mem::size_of::<InterpFrameSlot>()
);
static_assertions::const_assert!(
    core::mem::align_of::<Frame>() <= core::mem::align_of::<InterpFrameSlot>()
);
static_assertions::const_assert_eq!(
    core::mem::size_of::<InterpFrameSlot>(),
    INTERP_FRAME_WORDS * 8
);

/// Frame record slot `depth` of the run's CPU state (bounds-checked: a run never nests deeper
/// than `MAX_RUN_FRAMES`, see `CallLocal`). Computed where it is used rather than held across
/// the run loop, which would cost the loop a register.
///
/// # Safety
/// `state` is this CPU's state, exclusively this run's.
#[inline(always)]
unsafe fn frame_slot(state: *mut CpuState, depth: usize) -> *mut MaybeUninit<Frame> {
    // SAFETY: `state` is valid (caller contract); indexing the array place creates no
    // reference and panics past its end. The slots are `Frame`-sized records (checked above).
    unsafe { core::ptr::addr_of_mut!((*state).frames[depth]) }.cast()
}

/// Runs `prog` with R1 = `r1`, R2 = `r2` in the run `state` belongs to; returns R0. The run's
/// stack is the CPU's interpreter stack.
///
/// # Safety
/// `state` is this CPU's state, exclusively this run's (see [`CpuGuard::begin_run`]).
pub(crate) unsafe fn run(
    prog: &Prog,
    state: *mut CpuState,
    r1: u64,
    r2: u64,
) -> Result<u64, Fault> {
    // SAFETY: the run owns the per-CPU stack until it returns (caller contract).
    let stack = unsafe { core::ptr::addr_of_mut!((*state).stack) } as *mut u8;
    // SAFETY: `stack` has INTERP_STACK_BYTES bytes; `state` as above.
    unsafe { exec(prog, state, stack, r1, r2) }
}

#[inline(always)]
fn image(p: *const Prog) -> &'static InterpImage {
    // SAFETY: `p` is the running program or one reached through a prog_array slot inside the
    // caller's RCU read-side section; both outlive this run. The `'static` never escapes `exec`.
    unsafe { &(*p).interp }
}

#[inline(always)]
fn valid_map(img: &InterpImage, addr: u64) -> bool {
    img.map_addrs.contains(&addr)
}

macro_rules! ld {
    ($t:ty, $addr:expr) => {
        // SAFETY: see the module docs: the verifier (or the trusted loader) vouches for the
        // address; unaligned accesses are allowed by the ISA.
        unsafe { core::ptr::read_unaligned($addr as *const $t) }
    };
}

macro_rules! st {
    ($t:ty, $addr:expr, $v:expr) => {
        // SAFETY: as for `ld!`.
        unsafe { core::ptr::write_unaligned($addr as *mut $t, $v as $t) }
    };
}

macro_rules! atomic_at {
    ($at:ty, $addr:expr) => {{
        let a = $addr;
        if a % core::mem::align_of::<$at>() as u64 != 0 {
            return Err(Fault::Misaligned(a));
        }
        // SAFETY: aligned (checked above), and valid memory per the module docs; all
        // concurrent accessors of BPF memory that care use atomics too.
        unsafe { <$at>::from_ptr(a as *mut _) }
    }};
}

/// The loop.
///
/// # Safety
/// `state` is this CPU's state (exclusively held); `stack` points to `INTERP_STACK_BYTES`
/// writable bytes; `prog` was checked by the loader (every jump lands inside the program, and
/// the last instruction is `exit` or `ja`).
unsafe fn exec(
    prog: &Prog,
    state: *mut CpuState,
    stack: *mut u8,
    r1: u64,
    r2: u64,
) -> Result<u64, Fault> {
    let mut regs = [0u64; 16];
    let mut cur: *const Prog = prog;
    // The next op: a pointer into the current program's ops.
    let mut ip: *const IOp = image(cur).ops.as_ptr();
    let mut depth = 0usize;
    // Frames below this depth belong to programs that tail-called away from a subprogram.
    let mut seg_base = 0usize;
    let mut may_goto = MAY_GOTO_BUDGET;
    regs[1] = r1;
    regs[2] = r2;
    regs[10] = stack as u64 + INTERP_STACK_BYTES as u64;

    macro_rules! r {
        ($i:expr) => {
            regs[($i & 15) as usize]
        };
    }

    loop {
        // SAFETY: the loader guarantees `ip` stays within the current program's ops (see the
        // function's contract): every jump lands inside the program, which ends in `exit` or
        // `ja`; a call, exit or tail call moves it to another program's ops.
        let op = unsafe { *ip };
        let (d, s) = (op.dst, op.src);
        let imm = op.imm;
        // SAFETY: as above; one past the last op at worst, which is never read.
        ip = unsafe { ip.add(1) };
        macro_rules! jump_by {
            ($off:expr) => {
                // SAFETY: the loader checked every jump lands inside the program.
                ip = unsafe { ip.offset($off as isize) }
            };
        }
        macro_rules! jump_if {
            ($c:expr) => {
                if $c {
                    jump_by!(op.off);
                }
            };
        }
        // The second op of a fused pair (`fuse.rs`), skipped over.
        macro_rules! next {
            () => {{
                // SAFETY: a fused op is never a program's last: its partner follows it.
                let second = unsafe { *ip };
                jump_by!(1);
                second
            }};
        }
        // `r += imm; if r <cond> imm2 goto off` on one register.
        macro_rules! add_jump {
            ($cond:tt) => {{
                let v = r!(d).wrapping_add(imm);
                r!(d) = v;
                let j = next!();
                if v $cond j.imm {
                    jump_by!(j.off);
                }
            }};
        }
        macro_rules! addr {
            ($base:expr) => {
                $base.wrapping_add(op.off as i64 as u64)
            };
        }
        match op.k {
            K::AddI64 => r!(d) = r!(d).wrapping_add(imm),
            K::AddI64JeqI => add_jump!(==),
            K::AddI64JneI => add_jump!(!=),
            K::AddI64JltI => add_jump!(<),
            K::AddI64JleI => add_jump!(<=),
            K::AddI64JgtI => add_jump!(>),
            K::AddI64JgeI => add_jump!(>=),
            K::MovR64AddI64 => {
                let add = next!();
                r!(d) = r!(s).wrapping_add(add.imm);
            }
            K::MovI64Exit => {
                regs[0] = imm;
                if depth == 0 {
                    return Ok(regs[0]);
                }
                // The `exit` itself runs as written.
            }
            K::AddR64 => r!(d) = r!(d).wrapping_add(r!(s)),
            K::SubI64 => r!(d) = r!(d).wrapping_sub(imm),
            K::SubR64 => r!(d) = r!(d).wrapping_sub(r!(s)),
            K::MulI64 => r!(d) = r!(d).wrapping_mul(imm),
            K::MulR64 => r!(d) = r!(d).wrapping_mul(r!(s)),
            K::DivI64 => r!(d) = r!(d).checked_div(imm).unwrap_or(0),
            K::DivR64 => r!(d) = r!(d).checked_div(r!(s)).unwrap_or(0),
            K::SDivI64 => r!(d) = sdiv64(r!(d), imm),
            K::SDivR64 => r!(d) = sdiv64(r!(d), r!(s)),
            K::ModI64 => r!(d) = r!(d).checked_rem(imm).unwrap_or(r!(d)),
            K::ModR64 => r!(d) = r!(d).checked_rem(r!(s)).unwrap_or(r!(d)),
            K::SModI64 => r!(d) = smod64(r!(d), imm),
            K::SModR64 => r!(d) = smod64(r!(d), r!(s)),
            K::OrI64 => r!(d) |= imm,
            K::OrR64 => r!(d) |= r!(s),
            K::AndI64 => r!(d) &= imm,
            K::AndR64 => r!(d) &= r!(s),
            K::XorI64 => r!(d) ^= imm,
            K::XorR64 => r!(d) ^= r!(s),
            K::LshI64 => r!(d) <<= imm & 63,
            K::LshR64 => r!(d) <<= r!(s) & 63,
            K::RshI64 => r!(d) >>= imm & 63,
            K::RshR64 => r!(d) >>= r!(s) & 63,
            K::ArshI64 => r!(d) = ((r!(d) as i64) >> (imm & 63)) as u64,
            K::ArshR64 => r!(d) = ((r!(d) as i64) >> (r!(s) & 63)) as u64,
            K::MovI64 => r!(d) = imm,
            K::MovR64 => r!(d) = r!(s),
            K::Neg64 => r!(d) = r!(d).wrapping_neg(),
            K::Sx8To64 => r!(d) = r!(s) as i8 as i64 as u64,
            K::Sx16To64 => r!(d) = r!(s) as i16 as i64 as u64,
            K::Sx32To64 => r!(d) = r!(s) as i32 as i64 as u64,
            K::AddI32 => r!(d) = (r!(d) as u32).wrapping_add(imm as u32) as u64,
            K::AddR32 => r!(d) = (r!(d) as u32).wrapping_add(r!(s) as u32) as u64,
            K::SubI32 => r!(d) = (r!(d) as u32).wrapping_sub(imm as u32) as u64,
            K::SubR32 => r!(d) = (r!(d) as u32).wrapping_sub(r!(s) as u32) as u64,
            K::MulI32 => r!(d) = (r!(d) as u32).wrapping_mul(imm as u32) as u64,
            K::MulR32 => r!(d) = (r!(d) as u32).wrapping_mul(r!(s) as u32) as u64,
            K::DivI32 => r!(d) = (r!(d) as u32).checked_div(imm as u32).unwrap_or(0) as u64,
            K::DivR32 => r!(d) = (r!(d) as u32).checked_div(r!(s) as u32).unwrap_or(0) as u64,
            K::SDivI32 => r!(d) = sdiv32(r!(d), imm),
            K::SDivR32 => r!(d) = sdiv32(r!(d), r!(s)),
            K::ModI32 => r!(d) = mod32(r!(d), imm),
            K::ModR32 => r!(d) = mod32(r!(d), r!(s)),
            K::SModI32 => r!(d) = smod32(r!(d), imm),
            K::SModR32 => r!(d) = smod32(r!(d), r!(s)),
            K::OrI32 => r!(d) = (r!(d) as u32 | imm as u32) as u64,
            K::OrR32 => r!(d) = (r!(d) as u32 | r!(s) as u32) as u64,
            K::AndI32 => r!(d) = (r!(d) as u32 & imm as u32) as u64,
            K::AndR32 => r!(d) = (r!(d) as u32 & r!(s) as u32) as u64,
            K::XorI32 => r!(d) = (r!(d) as u32 ^ imm as u32) as u64,
            K::XorR32 => r!(d) = (r!(d) as u32 ^ r!(s) as u32) as u64,
            K::LshI32 => r!(d) = ((r!(d) as u32) << (imm & 31)) as u64,
            K::LshR32 => r!(d) = ((r!(d) as u32) << (r!(s) & 31)) as u64,
            K::RshI32 => r!(d) = ((r!(d) as u32) >> (imm & 31)) as u64,
            K::RshR32 => r!(d) = ((r!(d) as u32) >> (r!(s) & 31)) as u64,
            K::ArshI32 => r!(d) = ((r!(d) as i32) >> (imm & 31)) as u32 as u64,
            K::ArshR32 => r!(d) = ((r!(d) as i32) >> (r!(s) & 31)) as u32 as u64,
            K::MovI32 => r!(d) = imm as u32 as u64,
            K::MovR32 => r!(d) = r!(s) as u32 as u64,
            K::Neg32 => r!(d) = (r!(d) as u32).wrapping_neg() as u64,
            K::Sx8To32 => r!(d) = r!(s) as i8 as i32 as u32 as u64,
            K::Sx16To32 => r!(d) = r!(s) as i16 as i32 as u32 as u64,
            K::Zext16 => r!(d) = r!(d) as u16 as u64,
            K::Zext32 => r!(d) = r!(d) as u32 as u64,
            K::Bswap16 => r!(d) = (r!(d) as u16).swap_bytes() as u64,
            K::Bswap32 => r!(d) = (r!(d) as u32).swap_bytes() as u64,
            K::Bswap64 => r!(d) = r!(d).swap_bytes(),
            K::Nop => {}
            K::Ja => jump_if!(true),
            K::JeqI => jump_if!(r!(d) == imm),
            K::JeqR => jump_if!(r!(d) == r!(s)),
            K::JgtI => jump_if!(r!(d) > imm),
            K::JgtR => jump_if!(r!(d) > r!(s)),
            K::JgeI => jump_if!(r!(d) >= imm),
            K::JgeR => jump_if!(r!(d) >= r!(s)),
            K::JsetI => jump_if!(r!(d) & imm != 0),
            K::JsetR => jump_if!(r!(d) & r!(s) != 0),
            K::JneI => jump_if!(r!(d) != imm),
            K::JneR => jump_if!(r!(d) != r!(s)),
            K::JsgtI => jump_if!((r!(d) as i64) > imm as i64),
            K::JsgtR => jump_if!((r!(d) as i64) > r!(s) as i64),
            K::JsgeI => jump_if!((r!(d) as i64) >= imm as i64),
            K::JsgeR => jump_if!((r!(d) as i64) >= r!(s) as i64),
            K::JltI => jump_if!(r!(d) < imm),
            K::JltR => jump_if!(r!(d) < r!(s)),
            K::JleI => jump_if!(r!(d) <= imm),
            K::JleR => jump_if!(r!(d) <= r!(s)),
            K::JsltI => jump_if!((r!(d) as i64) < imm as i64),
            K::JsltR => jump_if!((r!(d) as i64) < r!(s) as i64),
            K::JsleI => jump_if!((r!(d) as i64) <= imm as i64),
            K::JsleR => jump_if!((r!(d) as i64) <= r!(s) as i64),
            K::Jeq32I => jump_if!(r!(d) as u32 == imm as u32),
            K::Jeq32R => jump_if!(r!(d) as u32 == r!(s) as u32),
            K::Jgt32I => jump_if!(r!(d) as u32 > imm as u32),
            K::Jgt32R => jump_if!(r!(d) as u32 > r!(s) as u32),
            K::Jge32I => jump_if!(r!(d) as u32 >= imm as u32),
            K::Jge32R => jump_if!(r!(d) as u32 >= r!(s) as u32),
            K::Jset32I => jump_if!(r!(d) as u32 & imm as u32 != 0),
            K::Jset32R => jump_if!(r!(d) as u32 & r!(s) as u32 != 0),
            K::Jne32I => jump_if!(r!(d) as u32 != imm as u32),
            K::Jne32R => jump_if!(r!(d) as u32 != r!(s) as u32),
            K::Jsgt32I => jump_if!((r!(d) as i32) > imm as i32),
            K::Jsgt32R => jump_if!((r!(d) as i32) > r!(s) as i32),
            K::Jsge32I => jump_if!((r!(d) as i32) >= imm as i32),
            K::Jsge32R => jump_if!((r!(d) as i32) >= r!(s) as i32),
            K::Jlt32I => jump_if!((r!(d) as u32) < imm as u32),
            K::Jlt32R => jump_if!((r!(d) as u32) < r!(s) as u32),
            K::Jle32I => jump_if!(r!(d) as u32 <= imm as u32),
            K::Jle32R => jump_if!(r!(d) as u32 <= r!(s) as u32),
            K::Jslt32I => jump_if!((r!(d) as i32) < imm as i32),
            K::Jslt32R => jump_if!((r!(d) as i32) < r!(s) as i32),
            K::Jsle32I => jump_if!((r!(d) as i32) <= imm as i32),
            K::Jsle32R => jump_if!((r!(d) as i32) <= r!(s) as i32),
            K::LdxB => r!(d) = ld!(u8, addr!(r!(s))) as u64,
            K::LdxH => r!(d) = ld!(u16, addr!(r!(s))) as u64,
            K::LdxW => r!(d) = ld!(u32, addr!(r!(s))) as u64,
            K::LdxDW => r!(d) = ld!(u64, addr!(r!(s))),
            K::LdxSB => r!(d) = ld!(i8, addr!(r!(s))) as i64 as u64,
            K::LdxSH => r!(d) = ld!(i16, addr!(r!(s))) as i64 as u64,
            K::LdxSW => r!(d) = ld!(i32, addr!(r!(s))) as i64 as u64,
            K::StB => st!(u8, addr!(r!(d)), imm),
            K::StH => st!(u16, addr!(r!(d)), imm),
            K::StW => st!(u32, addr!(r!(d)), imm),
            K::StDW => st!(u64, addr!(r!(d)), imm),
            K::StxB => st!(u8, addr!(r!(d)), r!(s)),
            K::StxH => st!(u16, addr!(r!(d)), r!(s)),
            K::StxW => st!(u32, addr!(r!(d)), r!(s)),
            K::StxDW => st!(u64, addr!(r!(d)), r!(s)),
            K::AAdd32 => {
                _ = atomic_at!(AtomicU32, addr!(r!(d))).fetch_add(r!(s) as u32, Ordering::SeqCst)
            }
            K::AAdd64 => _ = atomic_at!(AtomicU64, addr!(r!(d))).fetch_add(r!(s), Ordering::SeqCst),
            K::AOr32 => {
                _ = atomic_at!(AtomicU32, addr!(r!(d))).fetch_or(r!(s) as u32, Ordering::SeqCst)
            }
            K::AOr64 => _ = atomic_at!(AtomicU64, addr!(r!(d))).fetch_or(r!(s), Ordering::SeqCst),
            K::AAnd32 => {
                _ = atomic_at!(AtomicU32, addr!(r!(d))).fetch_and(r!(s) as u32, Ordering::SeqCst)
            }
            K::AAnd64 => _ = atomic_at!(AtomicU64, addr!(r!(d))).fetch_and(r!(s), Ordering::SeqCst),
            K::AXor32 => {
                _ = atomic_at!(AtomicU32, addr!(r!(d))).fetch_xor(r!(s) as u32, Ordering::SeqCst)
            }
            K::AXor64 => _ = atomic_at!(AtomicU64, addr!(r!(d))).fetch_xor(r!(s), Ordering::SeqCst),
            K::AFetchAdd32 => {
                r!(s) = atomic_at!(AtomicU32, addr!(r!(d)))
                    .fetch_add(r!(s) as u32, Ordering::SeqCst) as u64
            }
            K::AFetchAdd64 => {
                r!(s) = atomic_at!(AtomicU64, addr!(r!(d))).fetch_add(r!(s), Ordering::SeqCst)
            }
            K::AFetchOr32 => {
                r!(s) = atomic_at!(AtomicU32, addr!(r!(d))).fetch_or(r!(s) as u32, Ordering::SeqCst)
                    as u64
            }
            K::AFetchOr64 => {
                r!(s) = atomic_at!(AtomicU64, addr!(r!(d))).fetch_or(r!(s), Ordering::SeqCst)
            }
            K::AFetchAnd32 => {
                r!(s) = atomic_at!(AtomicU32, addr!(r!(d)))
                    .fetch_and(r!(s) as u32, Ordering::SeqCst) as u64
            }
            K::AFetchAnd64 => {
                r!(s) = atomic_at!(AtomicU64, addr!(r!(d))).fetch_and(r!(s), Ordering::SeqCst)
            }
            K::AFetchXor32 => {
                r!(s) = atomic_at!(AtomicU32, addr!(r!(d)))
                    .fetch_xor(r!(s) as u32, Ordering::SeqCst) as u64
            }
            K::AFetchXor64 => {
                r!(s) = atomic_at!(AtomicU64, addr!(r!(d))).fetch_xor(r!(s), Ordering::SeqCst)
            }
            K::AXchg32 => {
                r!(s) =
                    atomic_at!(AtomicU32, addr!(r!(d))).swap(r!(s) as u32, Ordering::SeqCst) as u64
            }
            K::AXchg64 => r!(s) = atomic_at!(AtomicU64, addr!(r!(d))).swap(r!(s), Ordering::SeqCst),
            K::ACmpxchg32 => {
                let a = atomic_at!(AtomicU32, addr!(r!(d)));
                let old = match a.compare_exchange(
                    regs[0] as u32,
                    r!(s) as u32,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(v) | Err(v) => v,
                };
                regs[0] = old as u64;
            }
            K::ACmpxchg64 => {
                let a = atomic_at!(AtomicU64, addr!(r!(d)));
                regs[0] =
                    match a.compare_exchange(regs[0], r!(s), Ordering::SeqCst, Ordering::SeqCst) {
                        Ok(v) | Err(v) => v,
                    };
            }
            K::LdAcqB => r!(d) = atomic_at!(AtomicU8, addr!(r!(s))).load(Ordering::Acquire) as u64,
            K::LdAcqH => r!(d) = atomic_at!(AtomicU16, addr!(r!(s))).load(Ordering::Acquire) as u64,
            K::LdAcqW => r!(d) = atomic_at!(AtomicU32, addr!(r!(s))).load(Ordering::Acquire) as u64,
            K::LdAcqDW => r!(d) = atomic_at!(AtomicU64, addr!(r!(s))).load(Ordering::Acquire),
            K::StRelB => atomic_at!(AtomicU8, addr!(r!(d))).store(r!(s) as u8, Ordering::Release),
            K::StRelH => atomic_at!(AtomicU16, addr!(r!(d))).store(r!(s) as u16, Ordering::Release),
            K::StRelW => atomic_at!(AtomicU32, addr!(r!(d))).store(r!(s) as u32, Ordering::Release),
            K::StRelDW => atomic_at!(AtomicU64, addr!(r!(d))).store(r!(s), Ordering::Release),
            K::LdImm64 => {
                r!(d) = imm;
                jump_by!(1);
            }
            K::CallHelper => {
                // SAFETY: `imm` was set from a `&'static HelperProto` at pre-decode.
                let proto = unsafe { &*(imm as *const HelperProto) };
                if let Some(r0) = call_helper(proto, s, &mut regs, image(cur))? {
                    return Ok(r0);
                }
            }
            K::CallKfunc => {
                // SAFETY: `imm` is the address of a kfunc's `HelperFn`, set at pre-decode from
                // the registry's `'static` entry.
                let f: HelperFn = unsafe { core::mem::transmute::<usize, HelperFn>(imm as usize) };
                // SAFETY: the kfunc's contract (argument types and sizes) is the verifier's;
                // we run inside the program's read-side section.
                regs[0] = unsafe { f(regs[1], regs[2], regs[3], regs[4], regs[5]) };
            }
            K::Callx => {
                // SAFETY: `cur` is live for the run (see `image`).
                let prog_type = unsafe { (*cur).prog_type };
                let id = r!(d);
                let proto = i32::try_from(id)
                    .ok()
                    .and_then(|id| func_proto(prog_type, id))
                    .filter(|p| p.func.is_some())
                    .ok_or(Fault::UnknownHelper(id))?;
                let mask = super::map_arg_mask(proto);
                if let Some(r0) = call_helper(proto, mask, &mut regs, image(cur))? {
                    return Ok(r0);
                }
            }
            K::CallLocal => {
                // Per program, at most MAX_CALL_FRAMES frames; with at most 33 tail calls this
                // keeps `depth` below MAX_RUN_FRAMES.
                if depth + 1 - seg_base >= MAX_CALL_FRAMES {
                    return Err(Fault::CallDepth);
                }
                let record = Frame {
                    ret: ip,
                    prog: cur,
                    saved: [regs[6], regs[7], regs[8], regs[9]],
                    fp: regs[10],
                    may_goto,
                    seg_base,
                };
                // SAFETY: the run owns its CPU state (`exec`'s contract), frame slots included.
                unsafe { frame_slot(state, depth).write(MaybeUninit::new(record)) };
                depth += 1;
                regs[10] -= MAX_BPF_STACK as u64;
                may_goto = MAY_GOTO_BUDGET;
                jump_by!(op.off);
            }
            K::Exit => {
                if depth == 0 {
                    return Ok(regs[0]);
                }
                depth -= 1;
                // SAFETY: as at `CallLocal`; slot `depth` was written by the matching one.
                let f = unsafe { frame_slot(state, depth).read().assume_init() };
                ip = f.ret;
                cur = f.prog;
                [regs[6], regs[7], regs[8], regs[9]] = f.saved;
                regs[10] = f.fp;
                may_goto = f.may_goto;
                seg_base = f.seg_base;
            }
            K::TailCall | K::TailCallVerified => {
                let next = tail_call_target(image(cur), op.k, state, regs[2], regs[3]);
                // SAFETY: `state` is this run's CPU state (see `exec`'s contract).
                regs[2] = unsafe { (*state).entry_r2 };
                if let Some(next) = next {
                    cur = next;
                    ip = image(cur).ops.as_ptr();
                    seg_base = depth;
                }
            }
            K::MayGoto => {
                if may_goto == 0 {
                    jump_by!(op.off);
                } else {
                    may_goto -= 1;
                }
            }
        }
    }
}

/// Resolves a tail call (`JMP_TAIL_CALL`): the target program, or `None` to fall through. At a
/// verified site ([`K::TailCallVerified`]) the verifier proved `map` one of the program's maps
/// (a prog_array), so only the trusted path scans the map list.
#[inline(always)]
fn tail_call_target(
    img: &InterpImage,
    kind: K,
    state: *mut CpuState,
    map: u64,
    index: u64,
) -> Option<*const Prog> {
    if kind != K::TailCallVerified && !valid_map(img, map) {
        return None;
    }
    // SAFETY: `map` is one of the program's maps (checked above, or proved by the verifier at
    // a verified site), kept alive by the program.
    let array = unsafe { (*(map as *const Map)).as_prog_array()? };
    let index = index as u32;
    // One range check, then the slot read without `get`'s own: the index is often the last
    // value the program computed (just loaded from memory), so every branch on it resolves
    // late.
    // SAFETY: `state` is this CPU's state, exclusively ours during the run.
    let spent = unsafe { tail_call_budget_spent(state) };
    if (index >= array.max_entries()) | spent {
        return None;
    }
    // SAFETY: `index < max_entries` (checked above).
    let next = unsafe { array.get_unchecked(index) };
    if next.is_null() {
        return None;
    }
    // SAFETY: as above.
    unsafe { count_tail_call(state) };
    Some(next)
}

/// Calls a helper; `Some(0)` when an unwinding helper asks the program to stop.
#[inline(always)]
fn call_helper(
    proto: &HelperProto,
    map_args: u8,
    regs: &mut [u64; 16],
    img: &InterpImage,
) -> Result<Option<u64>, Fault> {
    if map_args != 0 {
        for i in 0..5 {
            if map_args & (1 << i) != 0 && !valid_map(img, regs[i + 1]) {
                return Err(Fault::BadMapArg);
            }
        }
    }
    let Some(f) = proto.func else {
        return Err(Fault::UnknownHelper(proto.id as u64));
    };
    // SAFETY: the helper's contract: map arguments were validated above; pointer arguments are
    // the verifier's (or trusted loader's) responsibility; we run inside a read-side section.
    let r0 = unsafe { f(regs[1], regs[2], regs[3], regs[4], regs[5]) };
    regs[0] = r0;
    if proto.unwind_on_zero && r0 == 0 {
        return Ok(Some(0));
    }
    Ok(None)
}

#[inline(always)]
fn sdiv64(a: u64, b: u64) -> u64 {
    if b == 0 {
        0
    } else {
        (a as i64).wrapping_div(b as i64) as u64
    }
}

#[inline(always)]
fn smod64(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        (a as i64).wrapping_rem(b as i64) as u64
    }
}

#[inline(always)]
fn sdiv32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as i32, b as i32);
    if b == 0 {
        0
    } else {
        a.wrapping_div(b) as u32 as u64
    }
}

#[inline(always)]
fn mod32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as u32, b as u32);
    if b == 0 { a as u64 } else { (a % b) as u64 }
}

#[inline(always)]
fn smod32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as i32, b as i32);
    if b == 0 {
        a as u32 as u64
    } else {
        a.wrapping_rem(b) as u32 as u64
    }
}
