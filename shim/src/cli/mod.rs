//! The `kbpf` CLI: arguments ([`args`], clap), the state one process keeps ([`state`]), and the
//! commands, each a function writing to `out` so tests drive exactly what users run. `main.rs`
//! only parses and calls [`run`]; `kbpf shell` ([`shell`]) calls it once per input line against
//! one [`State`].

pub mod args;
mod ct_cmd;
mod map_cmd;
pub(crate) mod prog_cmd;
mod run_cmd;
pub mod shell;
pub mod sock_args;
mod sock_cmd;
pub mod state;
mod tcx_cmd;

use crate::elf::ElfError;
use args::{BenchCmd, Command};
use kbpf::Errno;
pub use state::State;
use std::io::Write;
use std::path::Path;
pub use tcx_cmd::query as tcx_query;

/// A failed command: exit status 1 (kbpf refused: a verifier rejection, an errno from a call)
/// or 2 (bad input), the message, the errno and the verifier log.
#[derive(Debug)]
pub struct CmdError {
    /// 1 refused, 2 bad input.
    pub status: u8,
    /// What failed.
    pub msg: String,
    /// The errno, when a call returned one.
    pub errno: Option<Errno>,
    /// The verifier log.
    pub log: String,
    /// Nothing to print: the reader of the output went away (`kbpf … | head`).
    pub quiet: bool,
}

impl CmdError {
    /// Bad input (exit status 2).
    pub fn usage(msg: impl Into<String>) -> CmdError {
        CmdError {
            status: 2,
            msg: msg.into(),
            errno: None,
            log: String::new(),
            quiet: false,
        }
    }

    /// A call that returned `errno` (exit status 1).
    pub fn errno(msg: impl Into<String>, errno: Errno) -> CmdError {
        CmdError {
            status: 1,
            msg: msg.into(),
            errno: Some(errno),
            log: String::new(),
            quiet: false,
        }
    }

    /// An object that could not be opened (2) or that kbpf refused (1).
    pub fn elf(path: &Path, e: ElfError) -> CmdError {
        CmdError {
            status: if e.refused { 1 } else { 2 },
            msg: format!("{}: {}", path.display(), e.msg),
            errno: Some(e.errno),
            log: e.log,
            quiet: false,
        }
    }

    /// Prints the error as the CLI reports it: `kbpf: MSG: ERRNO`, then the log.
    pub fn print(&self, err: &mut dyn Write) {
        if self.quiet {
            return;
        }
        match self.errno {
            Some(e) => {
                let _ = writeln!(err, "kbpf: {}: {e:?}", self.msg);
            }
            None => {
                let _ = writeln!(err, "kbpf: {}", self.msg);
            }
        }
        if !self.log.trim().is_empty() {
            let _ = writeln!(err, "verifier log:\n{}", self.log.trim_end());
        }
    }
}

impl From<std::io::Error> for CmdError {
    fn from(e: std::io::Error) -> CmdError {
        CmdError {
            status: 1,
            quiet: e.kind() == std::io::ErrorKind::BrokenPipe,
            ..CmdError::usage(format!("writing output: {e}"))
        }
    }
}

/// Runs one command against `state`. Returns the exit status on success (0, or 1 for a
/// verdict that is a refusal: `verify`, a failing `conformance`).
pub fn run(
    cmd: Command,
    state: &mut State,
    input: &mut dyn std::io::Read,
    out: &mut dyn Write,
) -> Result<u8, CmdError> {
    match cmd {
        Command::Demo { engine } => {
            let engine = state.engine(Some(engine))?;
            crate::demo::run(engine, out).map_err(|e| match e.downcast::<std::io::Error>() {
                Ok(io) => CmdError::from(*io),
                Err(e) => CmdError::usage(format!("demo: {e}")),
            })?;
            Ok(0)
        }
        Command::Prog(c) => prog_cmd::run(c, state, out).map(|()| 0),
        Command::Map(c) => map_cmd::run(c, state, out).map(|()| 0),
        Command::Tcx(c) => tcx_cmd::run(c, state, input, out),
        Command::Sock(c) => sock_cmd::run(c, state, out).map(|()| 0),
        Command::Ct(c) => ct_cmd::run(c, state, out).map(|()| 0),
        Command::Verify(v) => prog_cmd::verify(&v, out),
        Command::Conformance { engine, paths } => {
            let t = crate::conformance::run_paths(&paths, engine.into(), out)?;
            Ok(u8::from(t.failed > 0 || t.passed == 0))
        }
        Command::ConformancePlugin { args } => {
            let mut program = String::new();
            input.read_to_string(&mut program)?;
            let r0 = crate::conformance::plugin(&args, &program).map_err(CmdError::usage)?;
            writeln!(out, "{r0:x}")?;
            Ok(0)
        }
        Command::Bench(b) => bench(b, out).map(|()| 0),
        Command::Shell => Err(CmdError::usage("shell: already in a shell")),
    }
}

/// Parses `args` (without the program name) and runs the command against `state`, printing
/// errors to `err`; returns the exit status (2 for arguments clap refuses, 0 for `--help`).
pub fn run_args<S: AsRef<str>>(
    args: &[S],
    state: &mut State,
    input: &mut dyn std::io::Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    use clap::Parser;
    let argv = std::iter::once("kbpf").chain(args.iter().map(AsRef::as_ref));
    let cli = match args::Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            if e.use_stderr() {
                let _ = write!(err, "{}", e.render());
                return 2;
            }
            let _ = write!(out, "{}", e.render());
            return 0;
        }
    };
    match cli.cmd {
        Command::Shell => {
            let _ = writeln!(err, "kbpf: shell: already in a shell");
            2
        }
        cmd => match run(cmd, state, input, out) {
            Ok(s) => s,
            Err(e) => {
                e.print(err);
                e.status
            }
        },
    }
}

/// `kbpf bench …`: the quick benchmarks (their modules measure and print).
fn bench(b: BenchCmd, out: &mut dyn Write) -> Result<(), CmdError> {
    use crate::bench;
    let fail = |e: String| CmdError::usage(format!("bench: {e}"));
    let dbg = |e: Errno| format!("{e:?}");
    let io = |e: std::io::Error| e.to_string();
    let r = match b {
        BenchCmd::Tailcall { opts, key } => {
            let engine: crate::conformance::Engine = opts.engine.into();
            engine.select();
            bench::tailcall::measure(key.into(), 20_000)
                .map_err(dbg)
                .and_then(|r| {
                    bench::tailcall::print(&r, engine.name(), key.into(), opts.json, out)
                        .map_err(io)
                })
        }
        BenchCmd::Isa { opts, blind } => {
            let engine: crate::conformance::Engine = opts.engine.into();
            engine.select();
            bench::isa::measure(1, blind)
                .map_err(dbg)
                .and_then(|r| bench::isa::print(&r, engine.name(), opts.json, out).map_err(io))
        }
        BenchCmd::HelperLayouts { json } => {
            crate::conformance::Engine::Jit.select();
            bench::layouts::measure(2_000)
                .map_err(dbg)
                .and_then(|r| bench::layouts::print(&r, "jit", json, out).map_err(io))
        }
        BenchCmd::MapLookup { opts } => {
            let engine: crate::conformance::Engine = opts.engine.into();
            engine.select();
            bench::map_lookup::measure(1).map_err(dbg).and_then(|r| {
                bench::map_lookup::print(&r, engine.name(), opts.json, out).map_err(io)
            })
        }
        BenchCmd::Patch { full, json } => crate::bench_patch::run(full, json, out).map_err(io),
        BenchCmd::Tcx { opts } => {
            let engine: crate::conformance::Engine = opts.engine.into();
            engine.select();
            bench::tcx::measure(1_000_000, 20_000)
                .map_err(dbg)
                .and_then(|r| bench::tcx::print(&r, engine.name(), opts.json, out).map_err(io))
        }
        BenchCmd::Sklookup { opts } => {
            let engine: crate::conformance::Engine = opts.engine.into();
            engine.select();
            bench::sklookup::measure(2_000_000, 5)
                .map_err(dbg)
                .and_then(|r| bench::sklookup::print(&r, engine.name(), opts.json, out).map_err(io))
        }
        BenchCmd::Verify { json } => {
            bench::verify::measure(3).and_then(|r| bench::verify::print(&r, json, out).map_err(io))
        }
        BenchCmd::Ct {
            opts,
            sizes,
            repeat,
            trials,
        } => {
            let engine: crate::conformance::Engine = opts.engine.into();
            engine.select();
            bench_ct(sizes, repeat, trials, engine, opts.json, out)
        }
    };
    r.map_err(fail)
}

/// `kbpf bench ct` on kbpf's table.
fn bench_ct(
    sizes: Vec<u32>,
    repeat: u32,
    trials: usize,
    engine: crate::conformance::Engine,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), String> {
    use crate::bench::ct;
    if sizes.is_empty() || sizes.windows(2).any(|w| w[0] >= w[1]) || sizes[0] < 2 {
        return Err("--sizes: ascending, each at least 2".into());
    }
    if repeat == 0 || trials == 0 {
        return Err("--repeat and --trials must be at least 1".into());
    }
    let o = ct::CtBenchOpts {
        sizes,
        repeat,
        trials,
        ..ct::CtBenchOpts::default()
    };
    let mut r = ct::KbpfRunner::new(*o.sizes.last().expect("not empty"))?;
    let rows = ct::measure(&mut r, &o);
    r.finish();
    ct::print(&rows?, &format!("kbpf {}", engine.name()), json, out).map_err(|e| e.to_string())
}

/// Hex bytes (`06000000`, `"06 00 00 00"`) or a typed number (`u8:`, `u16:`, `u32:`, `u64:`,
/// little-endian as the host stores it).
pub fn parse_bytes(s: &str) -> Result<Vec<u8>, CmdError> {
    let num = |t: &str, v: &str| -> Result<Vec<u8>, CmdError> {
        let n: u64 = match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => v.parse(),
        }
        .map_err(|_| CmdError::usage(format!("{s}: not a number")))?;
        let width = match t {
            "u8" => 1,
            "u16" => 2,
            "u32" => 4,
            _ => 8,
        };
        if width < 8 && n >> (8 * width) != 0 {
            return Err(CmdError::usage(format!("{s}: does not fit {t}")));
        }
        Ok(n.to_le_bytes()[..width].to_vec())
    };
    match s.split_once(':') {
        Some((t @ ("u8" | "u16" | "u32" | "u64"), v)) => num(t, v),
        _ => crate::conformance::decode_hex(s).map_err(|e| CmdError::usage(format!("{s}: {e}"))),
    }
}

/// Bytes as bpftool prints them: two hex digits each, space-separated.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("u32:6").unwrap(), [6, 0, 0, 0]);
        assert_eq!(parse_bytes("u16:0x100").unwrap(), [0, 1]);
        assert_eq!(parse_bytes("06 00").unwrap(), [6, 0]);
        assert!(parse_bytes("u8:256").is_err());
        assert!(parse_bytes("zz").is_err());
        assert_eq!(hex(&[1, 0xab]), "01 ab");
    }
}
