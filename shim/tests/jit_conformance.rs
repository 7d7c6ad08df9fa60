//! Every bpf_conformance case (`testdata/bpf_conformance/*.data`) compiled by the JIT directly
//! (no load path, no verifier) and run natively: R1 = the `-- mem` bytes, R2 = their length,
//! R0 compared with `-- result`. (Moved from `jit/tests`, which no longer depends on the shim.)

use kbpf::uapi::ProgType;
use kbpf_shim::data::{self, Parsed};
use std::path::PathBuf;

fn conformance_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/bpf_conformance"
    ))
}

#[test]
fn every_conformance_case_passes_through_the_jit() {
    kbpf_shim::host::install();
    let files = data::collect(&[conformance_dir()]);
    assert!(files.len() >= 313, "found only {} case files", files.len());
    let (mut passed, mut failed) = (0, Vec::new());
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let case = match data::parse_file(&path) {
            Ok(Parsed::Test(case)) => case,
            Ok(Parsed::Skip(why)) => {
                failed.push(format!("{name}: skipped: {why}"));
                continue;
            }
            Err(e) => {
                failed.push(format!("{name}: malformed: {e}"));
                continue;
            }
        };
        let Some(want) = case.result else {
            failed.push(format!("{name}: no result"));
            continue;
        };
        let image = match kbpf_jit::compile(&case.program, ProgType::RawBuffer) {
            Ok(i) => i,
            Err(e) => {
                failed.push(format!("{name}: compile: {e:?}"));
                continue;
            }
        };
        let mut mem = case.mem.clone();
        // SAFETY: the conformance programs only touch their memory buffer and their stack.
        let r0 = unsafe { image.run(mem.as_mut_ptr() as u64, mem.len() as u64, &mut 0) };
        if r0 == want {
            passed += 1;
        } else {
            failed.push(format!("{name}: r0 = {r0:#x}, expected {want:#x}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{passed} passed; failures:\n{}",
        failed.join("\n")
    );
    assert_eq!(passed, 313);
}
