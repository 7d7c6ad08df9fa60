//! The repeat runner every JIT image carries (`kbpf_jit`'s `compile/repeat.rs`): the test-run
//! loop with a direct call of the program. It runs the program `n` times, resets the tail-call
//! counter before each run, returns the last R0, and is not part of the program's reported code.

use kbpf::insn::{Size, alu64_imm, exit, ldx_mem, mov64_reg, stx_mem};
use kbpf::uapi::{ProgType, alu};

/// `*(u64 *)ctx += 1; r0 = *(u64 *)ctx`: counts its runs in the buffer.
fn counting() -> [kbpf::insn::Insn; 5] {
    [
        ldx_mem(Size::DW, 2, 1, 0),
        alu64_imm(alu::ADD, 2, 1),
        stx_mem(Size::DW, 1, 2, 0),
        mov64_reg(0, 2),
        exit(),
    ]
}

#[test]
fn the_runner_runs_the_program_n_times_with_a_fresh_counter() {
    kbpf_shim::host::install();
    let image = kbpf_jit::compile(&counting(), ProgType::RawBuffer).unwrap();
    let runner = image.repeat_entry();
    assert_ne!(runner, 0, "every compiled program carries a runner");
    assert!(
        runner >= image.entry() + image.size(),
        "after the program's code"
    );
    for n in [1u32, 2, 255, 1000] {
        let mut buf = 10u64;
        let mut tcc = 77u32;
        // SAFETY: the program reads and writes the 8 bytes at R1, which `buf` provides; `tcc`
        // is a valid counter for the runs.
        let r0 =
            unsafe { kbpf::jit::enter_runner(runner, &mut buf as *mut u64 as u64, 0, &mut tcc, n) };
        assert_eq!(buf, 10 + u64::from(n), "{n} runs");
        assert_eq!(r0, buf, "the last run's R0");
        assert_eq!(tcc, 0, "the counter is reset before each run");
    }
    // n = 0 is one run, as `bpf_test_run` counts `repeat = 0`.
    let mut buf = 0u64;
    // SAFETY: as above.
    let r0 = unsafe { kbpf::jit::enter_runner(runner, &mut buf as *mut u64 as u64, 0, &mut 0, 0) };
    assert_eq!((r0, buf), (1, 1));
}

#[test]
fn the_runner_is_not_part_of_the_reported_code() {
    kbpf_shim::host::install();
    let image = kbpf_jit::compile(&counting(), ProgType::RawBuffer).unwrap();
    let (pic, offsets) = kbpf_jit::emit(&counting(), ProgType::RawBuffer).unwrap();
    // No helper call: the installed code is the position-independent code, byte for byte.
    assert_eq!(image.code().unwrap(), pic);
    assert_eq!(image.size(), pic.len());
    assert_eq!(image.insn_offsets(), &offsets[..]);
}
