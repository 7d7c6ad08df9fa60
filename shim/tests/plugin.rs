//! `kbpf-conformance-plugin` (and its alias `kbpf conformance-plugin`) as the upstream runner
//! drives it: memory as hex in argv[1] (absent when a test has none), options after it, the
//! program as hex text on stdin, r0 in hex on stdout and exit 0 — or a message on stderr and a
//! non-zero exit, never a panic.

use kbpf::insn::Insn;
use kbpf_shim::conformance::plugin::xdp_prolog;
use std::io::Write;
use std::process::{Command, Stdio};

fn spawn(cmd: &mut Command, stdin: &str) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the plugin");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        stderr,
    )
}

fn plugin(args: &[&str], stdin: &str) -> (bool, String, String) {
    spawn(
        Command::new(env!("CARGO_BIN_EXE_kbpf-conformance-plugin")).args(args),
        stdin,
    )
}

/// Instructions as the runner encodes them: two hex digits and two spaces per byte.
fn hex(insns: &[Insn]) -> String {
    let bytes: Vec<u8> = insns.iter().flat_map(|i| i.to_bytes()).collect();
    bytes.iter().map(|b| format!("{b:02x}  ")).collect()
}

#[test]
fn memory_length_reaches_r2() {
    // mem-len.data: `mov %r0, %r2; exit` over 8 bytes of memory.
    let (ok, out, err) = plugin(
        &["00  00  00  01  00  00  00  02  "],
        "bf  20  00  00  00  00  00  00  95  00  00  00  00  00  00  00  ",
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "8");
}

#[test]
fn no_memory() {
    // `lddw %r0, 0x1122334455667788; exit`.
    let prog = "18 00 00 00 88 77 66 55 00 00 00 00 44 33 22 11 95 00 00 00 00 00 00 00";
    let (ok, out, err) = plugin(&[], prog);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "1122334455667788");
    // The runner splits --plugin_options on single spaces: doubled spaces give empty options.
    let (ok, out, err) = plugin(&["", "--jit", ""], prog);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "1122334455667788");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let exit = "95 00 00 00 00 00 00 00";
    for (args, stdin, want) in [
        (
            &["--some_option"][..],
            exit,
            "unknown plugin option \"--some_option\"",
        ),
        (
            &[],
            "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 0",
            "odd number of hex digits",
        ),
        (
            &[],
            "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 zz",
            "bad hex digit 'z'",
        ),
        (&[], "b7 é0 00 00 2a 00 00 00", "bad hex digit 'é'"),
        (&[], "ｂ7 00 00 00", "bad hex digit 'ｂ'"),
        (&["0é"], exit, "memory argument: bad hex digit 'é'"),
        (&["--elf"], exit, "ELF: not an ELF64 object"),
        (
            &[],
            "95 00 00 00",
            "program: 4 bytes are not whole 8-byte instructions",
        ),
    ] {
        let (ok, out, err) = plugin(args, stdin);
        assert!(!ok && out.is_empty(), "{args:?} {stdin:?}: {out}");
        assert!(err.contains(want), "{args:?} {stdin:?}: {err}");
    }
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

#[test]
fn xdp_mode_runs_over_the_packet_behind_the_runners_prolog() {
    // ldxh %r0, [%r1+2]; add %r0, %r2; exit — over 4 bytes of packet.
    let body = [
        Insn::new(0x69, 0, 1, 2, 0),
        Insn::new(0x0f, 0, 2, 0, 0),
        Insn::new(0x95, 0, 0, 0, 0),
    ];
    let mut prog = xdp_prolog(4).to_vec();
    prog.extend(body);
    for opts in [&["--xdp"][..], &["--xdp", "--jit"]] {
        let args: Vec<&str> = ["01  02  03  04  "].iter().chain(opts).copied().collect();
        let (ok, out, err) = plugin(&args, &hex(&prog));
        assert!(ok, "{opts:?}: {err}");
        assert_eq!(out.trim(), format!("{:x}", 0x0403 + 4), "{opts:?}");
    }
    // Without the prolog's bounds check the packet read is refused: no trusted fallback.
    let args = ["01  02  03  04  ", "--xdp"];
    let (ok, _, err) = plugin(&args, &hex(&body));
    assert!(!ok);
    assert!(err.starts_with("verifier: EACCES"), "{err}");
}

#[test]
fn xdp_mode_refuses_what_linux_refuses() {
    // lsh32-imm-high: a shift by 60; in raw-buffer mode a listed refusal on the trusted path.
    let prog = [Insn::new(0x64, 0, 0, 0, 60), Insn::new(0x95, 0, 0, 0, 0)];
    let (ok, out, err) = plugin(&[], &hex(&prog));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "0");
    let (ok, _, err) = plugin(&["--xdp"], &hex(&prog));
    assert!(!ok);
    assert!(err.contains("invalid shift 60"), "{err}");
}

#[test]
fn kbpf_conformance_plugin_is_an_alias() {
    let (ok, out, err) = spawn(
        Command::new(env!("CARGO_BIN_EXE_kbpf"))
            .arg("conformance-plugin")
            .arg("--jit"),
        "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00",
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "2a");
}
