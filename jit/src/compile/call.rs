//! Helper calls, `callx`, and the run-time helper lookup `callx` goes through (the `BPF_CALL`
//! case of Linux `do_jit()` in `arch/x86/net/bpf_jit_comp.c`; `callx` has no x86 JIT support in
//! Linux, whose verifier only admits it with a known constant).
//!
//! R1–R5 already sit in rdi, rsi, rdx, rcx, r8 — the SysV argument registers — so a helper is
//! called directly: `call rel32` when the host placed the image within 2 GiB of the helpers
//! (Linux's `emit_call()`), else `movabs rax, helper; call rax` ([`HelperCalls`]; the
//! position-independent form is what [`super::emit`] returns). R0 is rax, the return register. After the call, a helper
//! whose prototype has `unwind_on_zero` is followed by `test rax, rax; jz <unwind>`, where the
//! main epilogue ends the whole run with R0 = 0 from any call depth.

use super::regmap::bpf_reg;
use crate::x86::{AluKind, Asm, Cc, Reg, Rm, Width};
use kbpf::helpers::{HelperProto, func_proto};
use kbpf::uapi::ProgType;

/// What [`kbpf_jit_callx`] returns in rax:rdx (SysV returns a two-u64 `repr(C)` struct there).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallxRet {
    /// The helper's return value (0 when the run must stop).
    pub r0: u64,
    /// Non-zero: stop the program with R0 = 0 (an `unwind_on_zero` helper returned 0, or the
    /// program type offers no callable helper `id`).
    pub stop: u64,
}

/// Looks up helper `id` for `prog_type` at run time and calls it with R1–R5 (`callx`).
///
/// An id the program type does not offer stops the program with R0 = 0; the interpreter
/// reports the same case as a fault (`Fault::UnknownHelper`), which this signature cannot.
///
/// # Safety
/// Called only from JIT'd code, with the arguments a BPF program passes to the helper: the
/// helper's own contract (valid map and pointer arguments) is the caller's responsibility.
pub unsafe extern "C" fn kbpf_jit_callx(
    r1: u64,
    r2: u64,
    r3: u64,
    r4: u64,
    r5: u64,
    id: u64,
    prog_type: ProgType,
) -> CallxRet {
    let proto = i32::try_from(id)
        .ok()
        .and_then(|id| func_proto(prog_type, id));
    let Some((proto, f)) = proto.and_then(|p| p.func.map(|f| (p, f))) else {
        return CallxRet { r0: 0, stop: 1 };
    };
    // SAFETY: forwarded from this function's contract.
    let r0 = unsafe { f(r1, r2, r3, r4, r5) };
    CallxRet {
        r0,
        stop: (proto.unwind_on_zero && r0 == 0) as u64,
    }
}

/// How helper calls reach their target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelperCalls {
    /// `movabs rax, helper; call rax`: position independent (12 bytes).
    Far,
    /// `call rel32` from code whose first byte is at `base` (5 bytes): only once the host has
    /// placed the image within 2 GiB of every helper it calls, as Linux's x86 JIT always does.
    /// Layout passes run with a placeholder `base` (the instruction's size does not depend on
    /// it); the last pass has the real one.
    Near {
        /// Address of the image's first byte.
        base: usize,
    },
}

/// Emits a direct helper call; returns the condition under which the run must unwind (the
/// caller appends that jump), if any.
pub fn emit_helper(a: &mut Asm, proto: &HelperProto, calls: HelperCalls) -> Option<Cc> {
    emit_call_to(a, proto.func? as usize, calls);
    if proto.unwind_on_zero {
        a.test_rr(Width::Q, Reg::Rax, Reg::Rax);
        Some(Cc::E)
    } else {
        None
    }
}

/// Emits a kfunc call (`BPF_PSEUDO_KFUNC_CALL`): the same convention and the same two forms
/// as a helper call (Linux's `emit_call()` to the kfunc's address); kfuncs never unwind.
pub fn emit_kfunc(a: &mut Asm, f: usize, calls: HelperCalls) {
    emit_call_to(a, f, calls);
}

/// `call` to the function at `f`, in the form `calls` says.
fn emit_call_to(a: &mut Asm, f: usize, calls: HelperCalls) {
    match calls {
        HelperCalls::Far => {
            a.movabs(Reg::Rax, f as u64);
            a.call_r(Reg::Rax);
        }
        HelperCalls::Near { base } => {
            let next = base.wrapping_add(a.len() + 5);
            a.call_rel32(f.wrapping_sub(next) as i32);
        }
    }
}

/// Whether `call rel32` from anywhere in `base..base + len` reaches `target`.
pub fn rel32_reaches(base: usize, len: usize, target: usize) -> bool {
    let fits = |from: usize| i32::try_from(target as i64 - from as i64).is_ok();
    fits(base) && fits(base.wrapping_add(len))
}

/// Emits `callx dst` through [`kbpf_jit_callx`]; returns the unwind condition.
///
/// `r9 = id` is the sixth argument; the seventh (the program type) goes on the stack, with an
/// 8-byte pad so rsp stays 16-byte aligned at the call.
pub fn emit_callx(a: &mut Asm, dst: u8, prog_type: ProgType) -> Cc {
    a.mov_rr(Width::Q, Reg::R9, bpf_reg(dst));
    a.alu_ri(AluKind::Sub, Width::Q, Rm::Reg(Reg::Rsp), 8);
    a.push_imm32(prog_type as u32 as i32);
    let tramp: unsafe extern "C" fn(u64, u64, u64, u64, u64, u64, ProgType) -> CallxRet =
        kbpf_jit_callx;
    a.movabs(Reg::Rax, tramp as usize as u64);
    a.call_r(Reg::Rax);
    a.alu_ri(AluKind::Add, Width::Q, Rm::Reg(Reg::Rsp), 16);
    a.test_rr(Width::Q, Reg::Rdx, Reg::Rdx);
    Cc::Ne
}

#[cfg(test)]
mod tests {
    use super::*;
    use kbpf::helpers::CONFORMANCE_UNWIND;

    #[test]
    fn rel32_reach_is_checked_at_both_ends() {
        let g = 1usize << 31;
        assert!(rel32_reaches(0x1000_0000, 0x100, 0x1000_0000 + g - 0x200));
        assert!(!rel32_reaches(0x1000_0000, 0x100, 0x1000_0000 + g));
        assert!(rel32_reaches(g + 0x1000, 0x100, 0x1100));
        assert!(!rel32_reaches(g + 0x1000, 0x100, 0xfff));
    }

    #[test]
    fn near_calls_encode_the_distance_from_the_image_base() {
        let f = CONFORMANCE_UNWIND.func.unwrap() as usize;
        let base = f - 0x1234_5678;
        let mut a = Asm::new();
        a.bytes(&[0x90; 3]);
        assert_eq!(
            emit_helper(&mut a, &CONFORMANCE_UNWIND, HelperCalls::Near { base }),
            Some(Cc::E)
        );
        assert_eq!(a.buf[3], 0xe8);
        let rel = i32::from_le_bytes(a.buf[4..8].try_into().unwrap());
        assert_eq!((base + 8).wrapping_add_signed(rel as isize), f);
        // test rax, rax follows (the unwind check).
        assert_eq!(&a.buf[8..], &[0x48, 0x85, 0xc0]);
    }
}
