//! `kbpf prog dump xlated|jited`: the rewritten instructions, and the JIT image with a marker
//! where each BPF instruction's code begins.

use kbpf_shim::dump::{DumpKind, run};
use std::path::PathBuf;

fn dump(kind: DumpKind, file: &str) -> String {
    kbpf_shim::host::install();
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/bpf_conformance"
    ))
    .join(file);
    let mut out = Vec::new();
    run(kind, &path, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn xlated_shows_the_rewritten_program() {
    let text = dump(DumpKind::Xlated, "call_local.data");
    assert!(
        text.lines()
            .next()
            .unwrap()
            .trim_start()
            .starts_with("0: mov %r0, 0"),
        "{text}"
    );
    assert!(text.contains("call local"), "{text}");
}

#[test]
fn jited_marks_every_instruction_boundary() {
    let text = dump(DumpKind::Jited, "lddw.data");
    // lddw.data: lddw (two slots, one marker) then exit.
    let marks: Vec<&str> = text.lines().filter(|l| l.starts_with("; insn")).collect();
    assert_eq!(marks, ["; insn 0", "; insn 2"], "{text}");
    assert!(text.lines().any(|l| l.ends_with("ret")), "{text}");
}
