//! Instructions the conformance suite does not cover, run in the interpreter: Linux 6.15+
//! load-acquire / store-release, `may_goto`'s hidden loop budget, and the call-depth limit.
//!
//! Programs load through the verifier. The run-time guards (a misaligned atomic faults,
//! recursion stops at the frame limit) are there for programs the verifier refuses, so those
//! cases assert the refusal and then test the guard on the trusted path (`prog_load_trusted`,
//! like the kernel's `lib/test_bpf.c`).

use kbpf::insn::assemble;
use kbpf::syscall::{self, TestRun};
use kbpf::uapi::ProgType;
use kbpf::{Errno, ProgLoadAttr};

/// The buffer every case runs on.
const CTX_LEN: usize = 8;

/// Loads `src` through the verifier and runs it.
fn run(src: &str) -> Result<u64, Errno> {
    load_and_run(src, false)
}

/// Asserts the verifier refuses `src` with `errno` and a log containing `why`, then loads it
/// on the trusted path and runs it.
fn run_trusted(src: &str, errno: Errno, why: &str) -> Result<u64, Errno> {
    kbpf_shim::host::install();
    let insns = assemble(src).unwrap_or_else(|e| panic!("{e}"));
    let attr = ProgLoadAttr::new(ProgType::RawBuffer, &insns).with_ctx_size(CTX_LEN as u32);
    let mut log = String::new();
    assert_eq!(syscall::prog_load_log(&attr, &mut log), Err(errno), "{log}");
    assert!(log.contains(why), "expected {why:?} in {log:?}");
    load_and_run(src, true)
}

fn load_and_run(src: &str, trusted: bool) -> Result<u64, Errno> {
    kbpf_shim::host::install();
    let insns = assemble(src).unwrap_or_else(|e| panic!("{e}"));
    let attr = ProgLoadAttr::new(ProgType::RawBuffer, &insns);
    let fd = if trusted {
        syscall::prog_load_trusted(&attr)?
    } else {
        syscall::prog_load(&attr.with_ctx_size(CTX_LEN as u32))?
    };
    let r = syscall::prog_test_run(
        fd,
        &mut TestRun {
            data: &mut [0u8; CTX_LEN],
            repeat: 1,
            ..Default::default()
        },
    );
    syscall::close(fd)?;
    r.map(|r| r.retval)
}

#[test]
fn load_acquire_and_store_release() {
    let src = "lddw %r1, 0x8877665544332211\nstore_release64 [%r10-8], %r1\nload_acquire32 %r0, [%r10-8]\n\
               load_acquire8 %r2, [%r10-1]\nlsh %r2, 32\nor %r0, %r2\nexit\n";
    assert_eq!(run(src), Ok(0x88_4433_2211));
    let narrow = "mov %r1, -1\nstdw [%r10-8], 0\nstore_release16 [%r10-8], %r1\nload_acquire64 %r0, [%r10-8]\nexit\n";
    assert_eq!(run(narrow), Ok(0xffff));
}

#[test]
fn misaligned_atomic_access_faults() {
    assert_eq!(
        run_trusted(
            "mov %r1, 1\nstore_release64 [%r10-4], %r1\nmov %r0, 0\nexit\n",
            Errno::EACCES,
            "misaligned stack access off 0+0+-4 size 8"
        ),
        Err(Errno::EFAULT)
    );
}

#[test]
fn may_goto_bounds_an_otherwise_endless_loop() {
    // Counts iterations until the budget (8M) runs out, then exits with the count. The
    // verifier accepts it as the kernel's does: at `may_goto` the loop body's imprecise
    // scalars are widened against the previous iteration (widen_imprecise_scalars), and the
    // next iteration's state is then covered by the stored one.
    let src = "mov %r0, 0\nloop:\nmay_goto +2\nadd %r0, 1\nja loop\nexit\n";
    assert_eq!(run(src), Ok(8 * 1024 * 1024));
}

#[test]
fn call_depth_is_bounded() {
    // Unbounded recursion: a verified program can't do this; the interpreter stops it.
    assert_eq!(
        run_trusted(
            "call local f\nexit\nf:\ncall local f\nexit\n",
            Errno::E2BIG,
            "the call stack of 9 frames is too deep"
        ),
        Err(Errno::EFAULT)
    );
    // Seven nested calls (eight frames) are fine. (A subprogram starts with R0 unwritten, so
    // each one counts after its callee returns.)
    let mut src = String::from("call local f1\nexit\n");
    for i in 1..=7 {
        let body = if i < 7 {
            format!("call local f{}\nadd %r0, 1\n", i + 1)
        } else {
            String::from("mov %r0, 1\n")
        };
        src += &format!("f{i}:\n{body}exit\n");
    }
    assert_eq!(run(&src), Ok(7));
}
