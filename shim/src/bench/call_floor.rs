//! The machine's floor for a helper call: what one `call rel32` / `ret` pair costs on this
//! CPU when no JIT is involved, measured the way `kbpf bench isa` measures kbpf's helper call.
//!
//! Two hand-written loops of 1000 iterations, the shape of `isa::helper_loop` as the JIT
//! emits it (argument move, call, `test rax, rax; je`, accumulate, count, compare, branch):
//! one calls a two-instruction function in this binary's text (`mov rax, rdi; ret`), the other
//! has `mov rax, rdi` in place of the call. Their difference over 1000 is the price of the
//! call and return themselves, the lower bound for any engine that calls a helper (kbpf's
//! `helper_ns`, rbpf's `call rax`) rather than inlining it. A machine where kbpf's helper call
//! is well above the floor has something to fix in the JIT; one where they are level does not.

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .text.kbpf_call_floor_identity,\"ax\",@progbits",
    ".p2align 4",
    ".globl kbpf_call_floor_identity",
    ".hidden kbpf_call_floor_identity",
    "kbpf_call_floor_identity:",
    "mov rax, rdi",
    "ret",
    ".popsection",
);

#[cfg(target_arch = "x86_64")]
unsafe extern "C" {
    /// `mov rax, rdi; ret`: returns its argument, like the conformance helper kbpf calls.
    fn kbpf_call_floor_identity(x: u64) -> u64;
}

/// The loop of 1000 iterations, with `$op` (one instruction) between the argument move and
/// the test of rax, and after `;` the operands `$op` names; evaluates to the sum. One template for both
/// loops, so they differ in that instruction alone.
#[cfg(target_arch = "x86_64")]
macro_rules! floor_loop {
    ($op:literal $(; $($operand:tt)*)?) => {{
        let sum: u64;
        // SAFETY: the loop touches only the registers it declares (r12, r13, and the C ABI's
        // caller-saved ones, rax and rdi among them); a callee is the two-instruction function
        // above, which changes rax alone and keeps the stack as it found it. rsp is 16-byte
        // aligned at a call (the asm block starts aligned and pushes nothing), so the SysV
        // contract the declaration claims holds too.
        unsafe {
            core::arch::asm!(
                ".p2align 6",
                "2:",
                "mov rdi, r13",
                $op,
                "test rax, rax",
                "je 3f",
                "add r12, rax",
                "add r13, 1",
                "cmp r13, 1001",
                "jb 2b",
                "3:",
                $($($operand)*)?
                inout("r13") 1u64 => _,
                inout("r12") 0u64 => sum,
                clobber_abi("C"),
            );
        }
        sum
    }};
}

/// One pass of the loop, with the call (`true`) or the move in its place; returns the sum.
#[cfg(target_arch = "x86_64")]
fn pass(call: bool) -> u64 {
    if call {
        floor_loop!("call {f}"; f = sym kbpf_call_floor_identity,)
    } else {
        floor_loop!("mov rax, rdi")
    }
}

/// Best mean ns of `repeat` passes over `trials` trials.
#[cfg(target_arch = "x86_64")]
fn best(call: bool, repeat: u32, trials: u32) -> f64 {
    let h = kbpf::host::get();
    let mut best = f64::INFINITY;
    for _ in 0..trials {
        let t0 = h.ktime_ns();
        for _ in 0..repeat {
            std::hint::black_box(pass(std::hint::black_box(call)));
        }
        best = best.min((h.ktime_ns() - t0) as f64 / f64::from(repeat));
    }
    best
}

/// ns per `call`/`ret` pair on this machine (calls minus moves, over 1000), best of five
/// trials of `1000 * scale` passes each; `None` off x86-64.
pub fn call_floor_ns(scale: u32) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        debug_assert_eq!(pass(true), pass(false));
        let repeat = 1_000 * scale.max(1);
        best(true, repeat / 10, 1);
        Some((best(true, repeat, 5) - best(false, repeat, 5)) / 1000.0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = scale;
        None
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn both_loops_sum_one_to_a_thousand() {
        assert_eq!(pass(true), 500_500);
        assert_eq!(pass(false), 500_500);
    }
}
