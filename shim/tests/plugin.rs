//! The `kbpf conformance-plugin` protocol as the upstream runner drives it: memory as hex in
//! argv[1] (absent when a test has none), the program as hex text on stdin, r0 in hex on stdout
//! and exit 0 — or a message on stderr and a non-zero exit.

use std::io::Write;
use std::process::{Command, Stdio};

fn plugin(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kbpf"))
        .arg("conformance-plugin")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kbpf");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn memory_length_reaches_r2() {
    // mem-len.data: `mov %r0, %r2; exit` over 8 bytes of memory.
    let (ok, out, err) = plugin(
        &["0000000100000002"],
        "bf 20 00 00 00 00 00 00 95 00 00 00 00 00 00 00\n",
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "8");
}

#[test]
fn no_memory_and_runner_options() {
    // `lddw %r0, 0x1122334455667788; exit`, with a runner option and no memory argument.
    let prog = "18 00 00 00 88 77 66 55 00 00 00 00 44 33 22 11 95 00 00 00 00 00 00 00";
    let (ok, out, err) = plugin(&["--some_option"], prog);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "1122334455667788");
}

#[test]
fn rejected_program_reports_on_stderr() {
    let (ok, out, err) = plugin(&[], "b7 00 00 00 07 00 00 00\n");
    assert!(!ok);
    assert!(out.is_empty());
    assert!(err.contains("last insn is not an exit or jmp"), "{err}");
}

#[test]
fn jit_option_runs_the_jit() {
    let (ok, out, err) = plugin(
        &["--jit"],
        "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00",
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "2a");
}
