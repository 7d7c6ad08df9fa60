//! `kbpf-conformance-plugin`: the plugin the upstream bpf_conformance runner calls directly
//! (`bpf_conformance_runner --plugin_path target/release/kbpf-conformance-plugin
//! --plugin_options "--jit"`): memory as hex in argv[1] when the test has memory, then the
//! options (`--jit`, `--xdp`, and the runner's own `--elf`); the program as hex on stdin; r0 in
//! hex on stdout and exit 0, or a message on stderr and exit 1. The protocol is
//! `kbpf_shim::conformance::plugin`.

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    kbpf_shim::host::install();
    let mut program = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut program) {
        eprintln!("reading the program: {e}");
        return ExitCode::FAILURE;
    }
    match kbpf_shim::conformance::plugin(&args, &program) {
        Ok(r0) => match writeln!(std::io::stdout(), "{r0:x}") {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
