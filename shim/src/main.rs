//! The `kbpf` command line: clap parses it ([`kbpf_shim::cli::args`]); the commands live in
//! [`kbpf_shim::cli`], so tests and `kbpf shell` run exactly the same code.

use clap::Parser;
use kbpf_shim::cli::args::{Cli, Command};
use kbpf_shim::cli::{State, run, shell};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    kbpf_shim::host::install();
    let mut state = State::default();
    let out = &mut std::io::stdout().lock();
    let status = match cli.cmd {
        Command::Shell => shell::shell(
            &mut state,
            &mut std::io::stdin().lock(),
            out,
            &mut std::io::stderr(),
        ),
        cmd => match run(cmd, &mut state, &mut std::io::stdin(), out) {
            Ok(s) => s,
            Err(e) => {
                e.print(&mut std::io::stderr());
                e.status
            }
        },
    };
    state.close();
    ExitCode::from(status)
}
