//! Instructions the conformance suite does not cover, run in the interpreter: Linux 6.15+
//! load-acquire / store-release, `may_goto`'s hidden loop budget, and the call-depth limit.

use kbpf::insn::assemble;
use kbpf::syscall::{self, TestRun};
use kbpf::uapi::ProgType;
use kbpf::{Errno, ProgLoadAttr};

fn run(src: &str) -> Result<u64, Errno> {
    kbpf_shim::host::install();
    let insns = assemble(src).unwrap_or_else(|e| panic!("{e}"));
    let fd = syscall::prog_load(&ProgLoadAttr::new(ProgType::RawBuffer, &insns))?;
    let r = syscall::prog_test_run(
        fd,
        &mut TestRun {
            data: &mut [0u8; 8],
            repeat: 1,
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
        run("mov %r1, 1\nstore_release64 [%r10-4], %r1\nmov %r0, 0\nexit\n"),
        Err(Errno::EFAULT)
    );
}

#[test]
fn may_goto_bounds_an_otherwise_endless_loop() {
    // Counts iterations until the budget (8M) runs out, then exits with the count.
    let src = "mov %r0, 0\nloop:\nmay_goto +2\nadd %r0, 1\nja loop\nexit\n";
    assert_eq!(run(src), Ok(8 * 1024 * 1024));
}

#[test]
fn call_depth_is_bounded() {
    // Unbounded recursion: a verified program can't do this; the interpreter stops it.
    assert_eq!(
        run("call local f\nexit\nf:\ncall local f\nexit\n"),
        Err(Errno::EFAULT)
    );
    // Seven nested calls (eight frames) are fine.
    let mut src = String::from("mov %r0, 0\ncall local f1\nexit\n");
    for i in 1..=7 {
        let next = if i < 7 {
            format!("call local f{}\n", i + 1)
        } else {
            String::new()
        };
        src += &format!("f{i}:\nadd %r0, 1\n{next}exit\n");
    }
    assert_eq!(run(&src), Ok(7));
}
