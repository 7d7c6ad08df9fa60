//! `kbpf-host-ct [--sizes N,N,...] [--repeat N] [--trials N] [--json]`: the host Linux kernel's
//! conntrack lookups, measured and printed as `kbpf bench ct` measures and prints kbpf's
//! (`kbpf_shim::bench::ct`, the same programs), through kbpf's own `bpf(2)` calls, in a private
//! network namespace (entries vanish with it). Raises `nf_conntrack_max` for the largest table
//! when needed and writes it back. Exit status 2, with the reason, when the host can't (root,
//! BPF and the conntrack kfuncs in the kernel's BTF are needed).

use kbpf_shim::bench::ct::{self, CtBenchOpts};
use kbpf_shim::host_bpf::ct::{HostCtRunner, private_netns, raise_ct_max};
use std::process::ExitCode;

const USAGE: &str = "usage: kbpf-host-ct [--sizes N,N,...] [--repeat N] [--trials N] [--json]";

fn parse(args: &[String]) -> Result<(CtBenchOpts, bool), String> {
    let mut o = CtBenchOpts::default();
    let mut json = false;
    let mut it = args.iter().map(String::as_str);
    while let Some(a) = it.next() {
        let bad = || format!("bad argument {a}");
        let mut num = || {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(bad)
        };
        match a {
            "--sizes" => {
                let v = args
                    .iter()
                    .skip_while(|x| x.as_str() != "--sizes")
                    .nth(1)
                    .ok_or_else(bad)?;
                o.sizes = v
                    .split(',')
                    .map(|x| x.parse().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?;
                it.next();
            }
            "--repeat" => o.repeat = num()? as u32,
            "--trials" => o.trials = num()? as usize,
            "--json" => json = true,
            _ => return Err(bad()),
        }
    }
    if o.sizes.is_empty() || o.sizes.windows(2).any(|w| w[0] >= w[1]) || o.sizes[0] < 2 {
        return Err("--sizes: ascending, each at least 2".into());
    }
    if o.repeat == 0 || o.trials == 0 {
        return Err("--repeat and --trials must be at least 1".into());
    }
    Ok((o, json))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (opts, json) = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("kbpf-host-ct: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let largest = *opts.sizes.last().expect("not empty") as u64 + 16;
    let restore = match raise_ct_max(largest) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kbpf-host-ct: the host can't: {e}");
            return ExitCode::from(2);
        }
    };
    let result = private_netns().and_then(|()| {
        let mut r = HostCtRunner::new()?;
        let rows = ct::measure(&mut r, &opts)?;
        ct::print(&rows, "host kernel", json, &mut std::io::stdout().lock())
            .map_err(|e| e.to_string())
    });
    // Written back (through the descriptor opened in the initial namespace).
    drop(restore);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kbpf-host-ct: the host can't: {e}");
            ExitCode::from(2)
        }
    }
}
