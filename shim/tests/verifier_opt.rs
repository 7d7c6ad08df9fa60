//! Dead-code rewrites through `prog_load` (`opt_hard_wire_dead_code_branches`,
//! `opt_remove_dead_code`, `opt_remove_nops` for a loader with `CAP_BPF`, which both kbpf load
//! modes are): the translated program shrinks as the kernel's would, and still computes the
//! same results as the program as written (run on the trusted path, which has no verifier and
//! so no dead-code pass), in the interpreter.

use kbpf::ProgLoadAttr;
use kbpf::insn::{Insn, assemble};
use kbpf::syscall::{self, TestRun};
use kbpf::uapi::ProgType;

/// Loads `src` (verified, and privileged or not) for a buffer of `mem.len()` bytes; returns
/// the translated instructions and `r0` for each input in `inputs`.
fn load_run(
    insns: &[Insn],
    len: usize,
    inputs: &[&[u8]],
    verified: bool,
    priv_: bool,
) -> (Vec<Insn>, Vec<u64>) {
    kbpf_shim::host::install();
    let attr = ProgLoadAttr::new(ProgType::RawBuffer, insns)
        .with_ctx_size(len as u32)
        .with_privileged(priv_);
    let fd = if verified {
        let mut log = String::new();
        syscall::prog_load_log(&attr, &mut log).unwrap_or_else(|e| panic!("{e:?}: {log}"))
    } else {
        syscall::prog_load_trusted(&attr).expect("trusted load")
    };
    let xlated = syscall::prog_get(fd).unwrap().insns().to_vec();
    let mut r0 = Vec::new();
    for input in inputs {
        let mut mem = input.to_vec();
        let r = syscall::prog_test_run(
            fd,
            &mut TestRun {
                data: &mut mem,
                repeat: 1,
                ..Default::default()
            },
        )
        .expect("run");
        r0.push(r.retval);
    }
    assert_eq!(syscall::close(fd), Ok(()));
    (xlated, r0)
}

/// Asserts that the verified load of `src` translates to `want` (in both modes) and computes
/// what the program as written computes.
fn check(src: &str, want: &str, inputs: &[&[u8]]) -> Vec<u64> {
    let insns = assemble(src).unwrap_or_else(|e| panic!("{e}"));
    let want = assemble(want).unwrap_or_else(|e| panic!("{e}"));
    let len = inputs[0].len();
    let (_, as_written) = load_run(&insns, len, inputs, false, false);
    for priv_ in [false, true] {
        let (xlated, r0) = load_run(&insns, len, inputs, true, priv_);
        assert_eq!(xlated, want, "privileged = {priv_}");
        assert_eq!(r0, as_written, "privileged = {priv_}");
    }
    as_written
}

#[test]
fn never_taken_target_is_hard_wired_and_removed() {
    let r = check(
        "mov %r0, 7\njge %r0, 10, +2\nmov %r0, 1\nexit\nmov %r0, 2\nexit\n",
        "mov %r0, 7\nmov %r0, 1\nexit\n",
        &[&[]],
    );
    assert_eq!(r, [1]);
}

#[test]
fn never_taken_fall_through_is_hard_wired_and_removed() {
    let r = check(
        "mov %r0, 7\njge %r0, 5, +2\nmov %r0, 1\nexit\nmov %r0, 2\nexit\n",
        "mov %r0, 7\nmov %r0, 2\nexit\n",
        &[&[]],
    );
    assert_eq!(r, [2]);
}

#[test]
fn live_jumps_over_removed_code_are_relocated() {
    // The jump at 2 crosses the dead `mov r0, 99` and the hard-wired branch at 4 (a nop once
    // its dead fall-through is gone): its distance shrinks from 4 to 2.
    let src = "ldxb %r3, [%r1]\nmov %r0, 0\njeq %r3, 5, +4\nmov %r4, 1\njeq %r4, 1, +1\n\
               mov %r0, 99\nmov %r0, 1\nadd %r0, 10\nexit\n";
    let want = "ldxb %r3, [%r1]\nmov %r0, 0\njeq %r3, 5, +2\nmov %r4, 1\nmov %r0, 1\n\
                add %r0, 10\nexit\n";
    let r = check(src, want, &[&[5], &[0]]);
    assert_eq!(r, [10, 11]);
}

#[test]
fn subprogram_called_only_from_dead_code_is_removed() {
    let src = "mov %r0, 1\njeq %r0, 1, +1\ncall local +1\nexit\nmov %r0, 9\nexit\n";
    let r = check(src, "mov %r0, 1\nexit\n", &[&[]]);
    assert_eq!(r, [1]);
}

#[test]
fn dead_map_free_ld_imm64_is_removed_whole() {
    let src = "mov %r0, 3\njne %r0, 3, +1\nja +2\nlddw %r0, 0x100000002\nexit\n";
    let r = check(src, "mov %r0, 3\nexit\n", &[&[]]);
    assert_eq!(r, [3]);
}
