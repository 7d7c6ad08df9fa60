//! `kbpf verify` on the `.data` examples of `testdata/data-format`: the verdict, the errno and
//! the log, and the exit statuses (0 accepted, 1 rejected, 2 unusable input).

use kbpf::Errno;
use kbpf_shim::data::{Parsed, parse, parse_file};
use kbpf_shim::verify_cmd::{VerifyOpts, verify_case};
use std::path::PathBuf;

fn example(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/data-format/"
    ))
    .join(name)
}

fn cli(args: &[&str]) -> (u8, String) {
    kbpf_shim::host::install();
    let mut argv = vec!["verify"];
    argv.extend_from_slice(args);
    let mut out = Vec::new();
    let mut state = kbpf_shim::cli::State::default();
    let code = kbpf_shim::cli::run_args(
        &argv,
        &mut state,
        &mut std::io::empty(),
        &mut out,
        &mut std::io::sink(),
    );
    state.close();
    (code, String::from_utf8(out).unwrap())
}

#[test]
fn hash_value_without_null_check_is_rejected() {
    let path = example("030-map-hash-no-null-check.data");
    let (code, out) = cli(&[path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rejected (EACCES)"), "{out}");
    assert!(
        out.contains("6: R0 invalid mem access 'map_value_or_null'"),
        "{out}"
    );
    // Root's rules do not make a NULL dereference safe.
    let (code, _) = cli(&[path.to_str().unwrap(), "--privileged"]);
    assert_eq!(code, 1);
}

#[test]
fn sk_lookup_without_its_attach_type_is_einval() {
    let path = example("143-attach-none.data");
    let (code, out) = cli(&[path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rejected (EINVAL)"), "{out}");
    // With the attach type the kernel wants, `r0 = 1; exit` is fine.
    let (code, out) = cli(&[path.to_str().unwrap(), "--attach", "sk_lookup"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("accepted"), "{out}");
}

#[test]
fn sockmap_lookup_assign_release_is_accepted() {
    // The kernel accepts this program (`# kernel: accept`): the sockmap lookup acquires a
    // socket reference, sk_assign takes it, sk_release drops it. kbpf's verifier accepts it
    // too, and both helpers run in kbpf (no note of a missing run-time side).
    let path = example("161-sockmap-lookup-assign-release.data");
    let Ok(Parsed::Test(case)) = parse_file(&path) else {
        panic!("parse")
    };
    kbpf_shim::host::install();
    let v = verify_case(&case, &VerifyOpts::default()).unwrap();
    assert_eq!(v.rejected, None, "{}", v.log);
    assert_eq!(v.note, None);
    let (code, out) = cli(&[path.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": accepted"), "{out}");
    assert!(!out.contains("note:"), "{out}");
    // Without the NULL check the socket may be NULL when passed to sk_release.
    let unchecked = case.program.iter().enumerate().map(|(i, insn)| {
        if i == 7 {
            kbpf::insn::Insn::new(0x05, 0, 0, 0, 0) // goto +0
        } else {
            *insn
        }
    });
    let mut bad = case.clone();
    bad.program = unchecked.collect();
    let v = verify_case(&bad, &VerifyOpts::default()).unwrap();
    assert_eq!(v.rejected, Some(Errno::EACCES), "{}", v.log);
    assert_eq!(v.note, None);
}

#[test]
fn declared_maps_are_created_and_bound() {
    // Lookup with a NULL check in a declared array map: accepted.
    // stw [r10-4], 0; r2 = r10 - 4; r1 = map[0] ll; call map_lookup_elem;
    // if r0 == 0 goto +1; r0 = *(u64 *)(r0 + 0); r0 = 0; exit.
    let src = "# type: socket_filter\n# map: m0 array key=4 value=8 max=4\n-- raw\n\
               0x00000000fffc0a62\n0x000000000000a2bf\n0xfffffffc00000207\n\
               0x0000000000001118\n0x0000000000000000\n0x0000000100000085\n\
               0x0000000000010015\n0x0000000000000079\n0x00000000000000b7\n\
               0x0000000000000095\n";
    let Ok(Parsed::Test(case)) = parse(src) else {
        panic!("parse")
    };
    kbpf_shim::host::install();
    let v = verify_case(&case, &VerifyOpts::default()).unwrap();
    assert_eq!(v.rejected, None, "{}", v.log);
    // An ld_imm64 naming an undeclared map is unusable input.
    let bad = src.replace("# map: m0 array key=4 value=8 max=4\n", "");
    let Ok(Parsed::Test(case)) = parse(&bad) else {
        panic!("parse")
    };
    assert!(verify_case(&case, &VerifyOpts::default()).is_err());
}

#[test]
fn unusable_input_exits_2() {
    assert_eq!(cli(&[]).0, 2, "no file");
    assert_eq!(cli(&["/nonexistent.data"]).0, 2, "unreadable");
    let path = example("030-map-hash-no-null-check.data");
    assert_eq!(cli(&[path.to_str().unwrap(), "--type", "nonsense"]).0, 2);
    assert_eq!(cli(&[path.to_str().unwrap(), "--attach", "nonsense"]).0, 2);
    assert_eq!(cli(&[path.to_str().unwrap(), "--bogus"]).0, 2);
}
