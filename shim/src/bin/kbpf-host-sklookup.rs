//! `kbpf-host-sklookup [--repeat N] [--trials N] [--json]`: the host Linux kernel's sk_lookup
//! test runs (the oracle's `sklookup-bench` programs), measured and printed as `kbpf bench
//! sklookup` measures kbpf's (`kbpf_shim::host_bpf::sklookup`), through kbpf's own `bpf(2)`
//! calls — nothing outside the repository. With `--json` the last line is one JSON object
//! with the same keys as kbpf's (`pass_ns`, `assign_ns`, `nomatch_ns`, `noassign_ns`). Exit
//! status 2, with the reason, when the host can't run BPF (root is needed: a private netns,
//! a SOCKMAP, sk_lookup programs).

use kbpf_shim::host_bpf::sklookup;
use std::process::ExitCode;

const USAGE: &str = "usage: kbpf-host-sklookup [--repeat N] [--trials N] [--json]";

fn main() -> ExitCode {
    let mut repeat = 2_000_000u32;
    let mut trials = 5u32;
    let mut json = false;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter().map(String::as_str);
    while let Some(a) = it.next() {
        let num = |v: Option<&str>| v.and_then(|v| v.parse::<u32>().ok()).filter(|&n| n > 0);
        match a {
            "--repeat" => match num(it.next()) {
                Some(n) => repeat = n,
                None => {
                    eprintln!("kbpf-host-sklookup: bad --repeat\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--trials" => match num(it.next()) {
                Some(n) => trials = n,
                None => {
                    eprintln!("kbpf-host-sklookup: bad --trials\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--json" => json = true,
            _ => {
                eprintln!("kbpf-host-sklookup: bad argument {a}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let r = match sklookup::measure(repeat, trials) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kbpf-host-sklookup: the host kernel cannot run the programs: {e}");
            return ExitCode::from(2);
        }
    };
    println!("sk_lookup, engine host (Linux BPF_PROG_TEST_RUN): ns per run, wall (kernel median)");
    for (name, ns, k) in [
        ("pass: return SK_PASS", r.pass_ns, r.kernel_ns[0]),
        (
            "steer, 192.0.2.55:80 (lookup + assign + release)",
            r.assign_ns,
            r.kernel_ns[1],
        ),
        (
            "steer, 192.0.3.55:80 (prefix test fails)",
            r.nomatch_ns,
            r.kernel_ns[2],
        ),
        (
            "noassign, 192.0.2.55:80 (lookup + release)",
            r.noassign_ns,
            r.kernel_ns[3],
        ),
    ] {
        println!("  {name:<48} {ns:8.2} ({k})");
    }
    println!(
        "  steer selected the listener: {}",
        if r.selected { "yes" } else { "NO" }
    );
    if json {
        let j = serde_json::json!({
            "engine": "host",
            "pass_ns": kbpf_shim::bench::json_num(r.pass_ns),
            "assign_ns": kbpf_shim::bench::json_num(r.assign_ns),
            "nomatch_ns": kbpf_shim::bench::json_num(r.nomatch_ns),
            "noassign_ns": kbpf_shim::bench::json_num(r.noassign_ns),
            "kernel_ns": r.kernel_ns,
            "selected": r.selected,
        });
        println!("{j}");
    }
    ExitCode::SUCCESS
}
