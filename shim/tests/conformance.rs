//! All 313 bpf_conformance files through the interpreter, via the same runner `kbpf
//! conformance` uses: verified where the verifier accepts, trusted where it rightly refuses.

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
    // 300 through the verifier; the 12 shifts by an out-of-range immediate and callx, which
    // the verifier rightly refuses, on the trusted path.
    assert_eq!((totals.verified, totals.trusted), (300, 13), "{text}");
    let counts = text.lines().rev().nth(1).unwrap_or("");
    assert!(
        counts.starts_with("verified: 300, trusted: 13 (rejected by the verifier: "),
        "{text}"
    );
    assert!(
        counts.contains("callx.data") && counts.contains("lsh64-imm-neg.data"),
        "{counts}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("TRUSTED ")).count(),
        13
    );
    for l in text.lines().filter(|l| l.starts_with("TRUSTED ")) {
        assert!(
            l.contains("invalid shift") || l.contains("callx") && l.contains("unknown opcode"),
            "{l}"
        );
    }
}
