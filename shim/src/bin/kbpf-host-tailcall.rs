//! `kbpf-host-tailcall [--key const|reg] [--repeat N] [--trials N] [--json]`: the host Linux
//! kernel's tail-call chains, measured and printed as `kbpf bench tailcall` measures and prints
//! kbpf's (`kbpf_shim::bench::host_tailcall`), through kbpf's own `bpf(2)` calls — nothing
//! outside the repository. Exit status 2, with the reason, when the host can't run BPF (root
//! and the BPF JIT are needed for meaningful figures).

use kbpf_shim::bench::{host_tailcall, tailcall};
use kbpf_shim::progs::ChainKey;
use std::process::ExitCode;

const USAGE: &str =
    "usage: kbpf-host-tailcall [--key const|reg] [--repeat N] [--trials N] [--json]";

/// The options: key, repeat, trials, JSON.
struct Opts {
    key: ChainKey,
    repeat: u32,
    trials: usize,
    json: bool,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        key: ChainKey::Const,
        repeat: 500_000,
        trials: 3,
        json: false,
    };
    let mut it = args.iter().map(String::as_str);
    while let Some(a) = it.next() {
        let bad = || format!("bad argument {a}");
        match a {
            "--key" => {
                o.key = match it.next() {
                    Some("const") => ChainKey::Const,
                    Some("reg") => ChainKey::Reg,
                    _ => return Err(bad()),
                }
            }
            "--repeat" => o.repeat = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?,
            "--trials" => o.trials = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?,
            "--json" => o.json = true,
            _ => return Err(bad()),
        }
    }
    if o.repeat == 0 || o.trials == 0 {
        return Err("--repeat and --trials must be at least 1".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Opts {
        key,
        repeat,
        trials,
        json,
    } = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("kbpf-host-tailcall: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let report = match host_tailcall::measure(key, repeat, trials) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kbpf-host-tailcall: the host kernel cannot run the chains: {e}");
            return ExitCode::from(2);
        }
    };
    let out = &mut std::io::stdout().lock();
    match tailcall::print(&report, "host", key, json, out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
