//! The JIT as the registered backend: `prog_load` selects it (the kernel's runtime selection),
//! every conformance case runs JIT-compiled, and a JIT'd program can't share a prog_array with
//! an interpreted one. Registering the JIT is process-wide, so these tests live in their own
//! test binary.

use kbpf::insn::assemble;
use kbpf::syscall::{self, ObjInfo};
use kbpf::uapi::{MapType, ProgType};
use kbpf::{Errno, MapAttr, ProgLoadAttr};
use kbpf_shim::conformance::{Engine, run_paths};
use std::path::PathBuf;

fn setup() {
    kbpf_shim::host::install();
    Engine::Jit.select();
}

fn load(src: &str) -> u32 {
    let insns = assemble(src).unwrap();
    syscall::prog_load(&ProgLoadAttr::new(ProgType::RawBuffer, &insns)).unwrap()
}

#[test]
fn whole_suite_passes_jit_compiled() {
    setup();
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/bpf_conformance"
    ));
    let mut out = Vec::new();
    let totals = run_paths(&[dir], Engine::Jit, &mut out).expect("runner I/O");
    let text = String::from_utf8_lossy(&out);
    assert_eq!((totals.passed, totals.failed), (313, 0), "{text}");
}

#[test]
fn info_reports_the_image() {
    setup();
    let fd = load("mov %r0, 7\nexit\n");
    let ObjInfo::Prog(info) = syscall::obj_get_info(fd).unwrap() else {
        panic!()
    };
    assert!(info.jited);
    assert!(info.jited_prog_len > 0);
    let r = syscall::prog_test_run(
        fd,
        &mut syscall::TestRun {
            data: &mut [],
            repeat: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.retval, 7);
}

#[test]
fn jited_and_interpreted_programs_cannot_share_a_prog_array() {
    setup();
    let map = syscall::map_create(&MapAttr::new(MapType::ProgArray, 4, 4, 2)).unwrap();
    // The JIT refuses recursive subprograms (the interpreter runs them), so this caller is
    // interpreted and owns the map. Trusted path: the verifier never explores the dead
    // recursive call, and `opt_remove_dead_code` would delete it.
    let insns = assemble(&format!(
        "lddw %r2, map_fd {map}\nmov %r3, 0\ncall 12\ncall local f\nexit\nf:\nmov %r0, 1\njeq %r0, 1, done\ncall local f\ndone:\nexit\n"
    ))
    .unwrap();
    let caller =
        syscall::prog_load_trusted(&ProgLoadAttr::new(ProgType::RawBuffer, &insns)).unwrap();
    assert!(!syscall::prog_get(caller).unwrap().jited());
    let callee = load("mov %r0, 2\nexit\n");
    assert!(syscall::prog_get(callee).unwrap().jited());
    let r = syscall::map_update_elem(map, &0u32.to_ne_bytes(), &callee.to_ne_bytes(), 0);
    assert_eq!(
        r,
        Err(Errno::EINVAL),
        "owner mismatch: jited vs interpreted"
    );
}
