//! The interpreter's fused pairs (`interp/fuse.rs`) give what the two ops give: every loop test
//! fused with its counter step, a jump into the second slot of a pair (which then runs alone),
//! a stack address, and a constant returned from the main program and from a subprogram.
//! Interpreter only (no JIT registered in this binary).

use kbpf::ProgLoadAttr;
use kbpf::insn::assemble;
use kbpf::syscall::{self, TestRun};
use kbpf::uapi::ProgType;

fn run(src: &str, ctx: &mut [u8]) -> u64 {
    kbpf_shim::host::install();
    let insns = assemble(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    let attr = ProgLoadAttr::new(ProgType::RawBuffer, &insns).with_ctx_size(ctx.len() as u32);
    let mut log = String::new();
    let fd = syscall::prog_load_log(&attr, &mut log).unwrap_or_else(|e| panic!("{e:?}: {log}"));
    assert!(!syscall::prog_get(fd).unwrap().jited());
    let r = syscall::prog_test_run(
        fd,
        &mut TestRun {
            data: ctx,
            repeat: 1,
            ..Default::default()
        },
    )
    .unwrap();
    syscall::close(fd).unwrap();
    r.retval
}

#[test]
fn counted_loops_with_every_fused_test() {
    let up = |test: &str| {
        format!("mov %r0, 0\nmov %r1, 0\nl:\nadd %r0, %r1\nadd %r1, 1\n{test}, l\nexit\n")
    };
    let down = |test: &str| {
        format!("mov %r0, 0\nmov %r1, 10\nl:\nadd %r0, %r1\nadd %r1, -1\n{test}, l\nexit\n")
    };
    assert_eq!(run(&up("jlt %r1, 10"), &mut []), 45);
    assert_eq!(run(&up("jle %r1, 9"), &mut []), 45);
    assert_eq!(run(&up("jne %r1, 10"), &mut []), 45);
    assert_eq!(run(&down("jgt %r1, 0"), &mut []), 55);
    assert_eq!(run(&down("jge %r1, 1"), &mut []), 55);
    let eq = "mov %r1, 0\nadd %r1, 1\njeq %r1, 1, t\nmov %r0, 1\nexit\nt:\nmov %r0, 2\nexit\n";
    assert_eq!(run(eq, &mut []), 2);
    let not_taken =
        "mov %r1, 0\nadd %r1, 2\njeq %r1, 1, t\nmov %r0, 1\nexit\nt:\nmov %r0, 2\nexit\n";
    assert_eq!(run(not_taken, &mut []), 1);
}

#[test]
fn a_jump_to_the_second_slot_runs_it_alone() {
    // `add %r1, 100` and the `jlt` fuse; the first branch jumps straight to the `jlt`.
    let src = "ldxb %r2, [%r1+0]\nmov %r1, 5\njeq %r2, 0, s\nadd %r1, 100\ns:\njlt %r1, 6, y\n\
               mov %r0, 0\nexit\ny:\nmov %r0, 1\nexit\n";
    assert_eq!(run(src, &mut [0]), 1, "jumped past the add");
    assert_eq!(run(src, &mut [1]), 0, "ran the pair");
}

#[test]
fn stack_addresses_and_returned_constants() {
    let slot = "mov %r2, %r10\nadd %r2, -8\nstdw [%r2+0], 7\nldxdw %r0, [%r10-8]\nexit\n";
    assert_eq!(run(slot, &mut []), 7);
    let sub = "call local f\nadd %r0, 1\nexit\nf:\nmov %r0, 41\nexit\n";
    assert_eq!(
        run(sub, &mut []),
        42,
        "a constant returned from a subprogram"
    );
    // A jump to the `exit` of a `mov %r0, k; exit` pair returns R0 as it was.
    let to_exit = "ldxb %r2, [%r1+0]\nmov %r0, 3\njeq %r2, 0, e\nmov %r0, 9\ne:\nexit\n";
    assert_eq!(run(to_exit, &mut [0]), 3);
    assert_eq!(run(to_exit, &mut [1]), 9);
}
