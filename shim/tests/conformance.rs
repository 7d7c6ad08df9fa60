//! All 313 bpf_conformance files through the interpreter, via the same runner `kbpf
//! conformance` uses: verified where the verifier accepts, trusted where it rightly refuses.

use kbpf_shim::conformance::{Engine, run_paths};
use std::path::PathBuf;

#[test]
fn whole_suite_passes_in_the_interpreter() {
    kbpf_shim::host::install();
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/bpf_conformance"
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

/// Only the listed cases, refused for their listed rule, take the trusted path: any other
/// rejection fails the case, and so does a listed case the verifier accepts.
#[test]
fn other_rejections_fail() {
    kbpf_shim::host::install();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("conformance-policy");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        // Reads r3, which is not initialized: a verifier rejection no listed case has.
        (
            "reads-r3.data",
            "-- asm\nmov %r0, %r3\nexit\n-- result\n0x0\n",
        ),
        // A listed name, but the verifier accepts the program.
        (
            "lsh32-imm-high.data",
            "-- asm\nmov %r0, 1\nlsh32 %r0, 4\nexit\n-- result\n0x10\n",
        ),
        // A listed name refused for another rule than its own.
        (
            "callx.data",
            "-- asm\nlsh32 %r0, 60\nexit\n-- result\n0x0\n",
        ),
        // Listed and refused for its rule: the trusted path.
        (
            "rsh64-imm-high.data",
            "-- asm\nmov %r0, 1\nrsh %r0, 64\nexit\n-- result\n0x1\n",
        ),
    ];
    for (name, text) in cases {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let mut out = Vec::new();
    let totals = run_paths(&[dir], Engine::Interp, &mut out).expect("runner I/O");
    let text = String::from_utf8_lossy(&out);
    assert_eq!(
        (totals.passed, totals.failed, totals.trusted),
        (1, 3, 1),
        "{text}"
    );
    let fail = |name: &str| {
        text.lines()
            .find(|l| l.starts_with("FAIL ") && l.contains(name))
            .unwrap_or_else(|| panic!("{name} did not fail:\n{text}"))
            .to_string()
    };
    assert!(fail("reads-r3.data").contains("verifier: EACCES"), "{text}");
    assert!(
        fail("lsh32-imm-high.data").contains("the verifier accepted it, but Linux refuses"),
        "{text}"
    );
    assert!(fail("callx.data").contains("invalid shift"), "{text}");
    assert!(
        text.contains("TRUSTED ") && text.contains("rsh64-imm-high.data"),
        "{text}"
    );
}
