//! The `kbpf` command line: a thin front over the `kbpf::syscall` facade (bpftool-like).

use kbpf_shim::conformance::{self, Engine};
use kbpf_shim::progs::ChainKey;
use kbpf_shim::{bench, demo, host};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: kbpf <command> [options]

commands:
  demo                                   run the tail-call packet-parser demo
  conformance [--engine interp|jit] PATH...
                                         run bpf_conformance .data files or directories
  conformance-plugin [MEM_HEX] [OPTS]    plugin for the upstream bpf_conformance runner
                                         (program as hex text on stdin, prints r0 in hex;
                                         --jit in OPTS selects the JIT, --xdp the XDP mode)
  prog dump xlated|jited FILE            load a .data file's program and print the rewritten
                                         instructions or the JIT image
  verify FILE [--type T] [--attach A] [--privileged]
                                         verify a .data file's program; print the verdict and
                                         the log (exit 0 accepted, 1 rejected, 2 bad input)
  tcx script [-e] [--egress] [--first-last] [--host]
                                         run an mprog-oracle script (stdin) against tcx
  bench tailcall [--engine interp|jit] [--key const|reg] [--json]
  bench isa [--engine interp|jit] [--blind] [--json]
  bench map-lookup [--engine interp|jit] [--json]
  bench patch [--full] [--json]          (--full: the baseline up to 64K patches, tens of s)
  bench tcx [--engine interp|jit] [--json]
  bench verify [--json]
";

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("kbpf: {msg}\n{USAGE}");
    ExitCode::from(2)
}

/// Options shared by the subcommands: `--engine`, `--key`, `--json`, `--blind`, and positional
/// arguments.
struct Opts {
    engine: Engine,
    key: ChainKey,
    json: bool,
    blind: bool,
    full: bool,
    rest: Vec<String>,
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        engine: Engine::Interp,
        key: ChainKey::Const,
        json: false,
        blind: false,
        full: false,
        rest: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--engine" => {
                o.engine = match it.next().map(String::as_str) {
                    Some("interp") => Engine::Interp,
                    Some("jit") => Engine::Jit,
                    other => return Err(format!("--engine takes interp or jit, not {other:?}")),
                }
            }
            "--key" => {
                o.key = match it.next().map(String::as_str) {
                    Some("const") => ChainKey::Const,
                    Some("reg") => ChainKey::Reg,
                    other => return Err(format!("--key takes const or reg, not {other:?}")),
                }
            }
            "--json" => o.json = true,
            "--blind" => o.blind = true,
            "--full" => o.full = true,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => o.rest.push(a.clone()),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        return usage_error("no command");
    };
    host::install();
    let out = &mut std::io::stdout().lock();
    match cmd.as_str() {
        "demo" => match demo::run(out) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kbpf demo: {e}");
                ExitCode::FAILURE
            }
        },
        "conformance" => {
            let o = match parse_opts(&args[1..]) {
                Ok(o) => o,
                Err(e) => return usage_error(&e),
            };
            if o.rest.is_empty() {
                return usage_error("conformance needs at least one PATH");
            }
            let paths: Vec<PathBuf> = o.rest.iter().map(PathBuf::from).collect();
            match conformance::run_paths(&paths, o.engine, out) {
                Ok(t) if t.failed == 0 && t.passed > 0 => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("kbpf conformance: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        "conformance-plugin" => {
            let mut program = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut program) {
                eprintln!("reading the program: {e}");
                return ExitCode::FAILURE;
            }
            match conformance::plugin(&args[1..], &program) {
                Ok(r0) => {
                    let _ = writeln!(out, "{r0:x}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        "bench" => run_bench(&args[1..], out),
        "prog" => run_prog(&args[1..], out),
        "verify" => ExitCode::from(kbpf_shim::verify_cmd::run(&args[1..], out)),
        "tcx" => kbpf_shim::tcx_script::run(&args[1..], &mut std::io::stdin(), out),
        "help" | "--help" | "-h" => {
            let _ = write!(out, "{USAGE}");
            ExitCode::SUCCESS
        }
        other => usage_error(&format!("unknown command {other}")),
    }
}

fn run_prog(args: &[String], out: &mut dyn Write) -> ExitCode {
    use kbpf_shim::dump::{self, DumpKind};
    let kind = match (
        args.first().map(String::as_str),
        args.get(1).map(String::as_str),
    ) {
        (Some("dump"), Some("xlated")) => DumpKind::Xlated,
        (Some("dump"), Some("jited")) => DumpKind::Jited,
        _ => return usage_error("prog needs: dump xlated|jited FILE"),
    };
    let Some(path) = args.get(2) else {
        return usage_error("prog dump needs a FILE");
    };
    match dump::run(kind, std::path::Path::new(path), out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kbpf prog dump: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_bench(args: &[String], out: &mut dyn Write) -> ExitCode {
    let Some(which) = args.first() else {
        return usage_error("bench needs tailcall, isa or patch");
    };
    let o = match parse_opts(&args[1..]) {
        Ok(o) => o,
        Err(e) => return usage_error(&e),
    };
    o.engine.select();
    let result: Result<(), String> = match which.as_str() {
        "tailcall" => bench::tailcall::measure(o.key, 20_000)
            .map_err(|e| format!("{e:?}"))
            .and_then(|r| {
                bench::tailcall::print(&r, o.engine.name(), o.key, o.json, out)
                    .map_err(|e| e.to_string())
            }),
        "isa" => bench::isa::measure(1, o.blind)
            .map_err(|e| format!("{e:?}"))
            .and_then(|r| {
                bench::isa::print(&r, o.engine.name(), o.json, out).map_err(|e| e.to_string())
            }),
        "map-lookup" => bench::map_lookup::measure(1)
            .map_err(|e| format!("{e:?}"))
            .and_then(|r| {
                bench::map_lookup::print(&r, o.engine.name(), o.json, out)
                    .map_err(|e| e.to_string())
            }),
        "patch" => kbpf_shim::bench_patch::run(o.full, o.json, out).map_err(|e| e.to_string()),
        "tcx" => bench::tcx::measure(1_000_000, 20_000)
            .map_err(|e| format!("{e:?}"))
            .and_then(|r| {
                bench::tcx::print(&r, o.engine.name(), o.json, out).map_err(|e| e.to_string())
            }),
        "verify" => bench::verify::measure(3)
            .and_then(|r| bench::verify::print(&r, o.json, out).map_err(|e| e.to_string())),
        other => return usage_error(&format!("unknown benchmark {other}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kbpf bench {which}: {e}");
            ExitCode::FAILURE
        }
    }
}
