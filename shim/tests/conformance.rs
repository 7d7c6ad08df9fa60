//! All 313 bpf_conformance files through the interpreter, via the same runner `kbpf
//! conformance` uses.

use kbpf_shim::conformance::{Engine, run_paths};
use std::path::PathBuf;

#[test]
fn whole_suite_passes_in_the_interpreter() {
    kbpf_shim::host::install();
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance"
    ));
    assert!(
        dir.is_dir(),
        "conformance suite not found at {}",
        dir.display()
    );
    let mut out = Vec::new();
    let totals = run_paths(&[dir], Engine::Interp, &mut out).expect("runner I/O");
    let text = String::from_utf8_lossy(&out);
    assert_eq!(totals.failed, 0, "failures:\n{text}");
    assert_eq!(totals.passed, 313, "{text}");
    assert!(text.trim_end().ends_with("313 passed, 0 failed"), "{text}");
}
