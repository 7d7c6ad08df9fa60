//! `kbpf-host-bench <what> …`: the host Linux kernel measured the way the matching `kbpf bench`
//! mode measures kbpf, through kbpf's own `bpf(2)` code (`kbpf_shim::host_bpf`) — nothing
//! outside the repository — for the `scripts/compare-*` side-by-side runs. With `--json` the
//! last line is one JSON object. Exit status 2, with the reason, when the host can't run BPF
//! (root and the BPF JIT are needed).

use clap::{Args, Parser, Subcommand, ValueEnum};
use kbpf_shim::bench::{map_lookup, tailcall};
use kbpf_shim::host_bpf::isa_bench;
use kbpf_shim::host_bpf::machine::Machine;
use kbpf_shim::host_bpf::map_bench;
use kbpf_shim::host_bpf::tailcall as host_tailcall;
use kbpf_shim::host_bpf::tcx_bench::{self, TcxHostOpts};
use kbpf_shim::progs::ChainKey;
use std::io::Write;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kbpf-host-bench",
    about = "The host kernel's side of scripts/compare-*"
)]
struct Cli {
    #[command(subcommand)]
    what: What,
}

#[derive(Clone, Copy, ValueEnum)]
enum Key {
    /// A constant key (the kernel's JIT patches a direct jump).
    Const,
    /// A key from the context (bounds check and indirect jump).
    Reg,
}

/// Runs per measurement, interleaved rounds (each program's best counts), output.
#[derive(Args)]
struct Timing {
    /// Runs per measurement.
    #[arg(long, default_value_t = 2000)]
    repeat: u32,
    /// Interleaved rounds.
    #[arg(long, default_value_t = 7)]
    trials: usize,
    /// Last line one JSON object.
    #[arg(long)]
    json: bool,
}

impl Timing {
    /// `(repeat, trials, json)`, with at least one run and one round.
    fn checked(&self) -> Result<(u32, usize, bool), String> {
        at_least_one(self.repeat, self.trials)?;
        Ok((self.repeat, self.trials, self.json))
    }
}

#[derive(Subcommand)]
enum What {
    /// The CPU, the kernel's mitigations and JIT switches, as a comparison's header.
    Machine {
        /// Last line one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Tail-call chains (the oracle's tailcall-bench; `kbpf bench tailcall`).
    Tailcall {
        /// How each program picks the next slot.
        #[arg(long, value_enum, default_value = "const")]
        key: Key,
        /// Runs per BPF_PROG_TEST_RUN.
        #[arg(long, default_value_t = 500_000)]
        repeat: u32,
        /// Interleaved rounds over the chain lengths.
        #[arg(long, default_value_t = 3)]
        trials: usize,
        /// Last line one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// A helper call (bpf_csum_diff) and an invocation (r0 = 7; exit) of SCHED_CLS programs
    /// (`kbpf bench isa`'s cls_helper_ns and cls_invoke_ns).
    /// Per measurement, `repeat` runs of the helper loops (200 times as many of r0 = 7; exit).
    Isa {
        /// Runs, rounds and output.
        #[command(flatten)]
        t: Timing,
    },
    /// Map lookups from JIT'd code (the oracle's map-bench; `kbpf bench map-lookup`).
    /// Per measurement, `repeat` runs of the 1000-lookup loop.
    MapLookup {
        /// Runs, rounds and output.
        #[command(flatten)]
        t: Timing,
    },
    /// tcx ingress of lo with N programs, real packets (the oracle's tcx-bench; `kbpf bench tcx`).
    Tcx {
        /// The N values, comma-separated (0..=63).
        #[arg(long, value_delimiter = ',', default_values_t = TcxHostOpts::default().counts)]
        counts: Vec<usize>,
        /// Packets per measurement.
        #[arg(long, default_value_t = TcxHostOpts::default().packets)]
        packets: usize,
        /// Rounds, each visiting every N once in a shuffled order.
        #[arg(long, default_value_t = TcxHostOpts::default().rounds)]
        rounds: usize,
        /// Last line one JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn at_least_one(repeat: u32, trials: usize) -> Result<(), String> {
    if repeat == 0 || trials == 0 {
        return Err("--repeat and --trials must be at least 1".into());
    }
    Ok(())
}

fn run(what: What, out: &mut dyn Write) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    match what {
        What::Machine { json } => {
            let m = Machine::read();
            writeln!(out, "{}", m.line()).map_err(io)?;
            if json {
                writeln!(out, "{}", m.json()).map_err(io)?;
            }
            Ok(())
        }
        What::Tailcall {
            key,
            repeat,
            trials,
            json,
        } => {
            at_least_one(repeat, trials)?;
            let key = match key {
                Key::Const => ChainKey::Const,
                Key::Reg => ChainKey::Reg,
            };
            let r = host_tailcall::measure(key, repeat, trials)?;
            tailcall::print(&r, "host", key, json, out).map_err(io)
        }
        What::Isa { t } => {
            let (repeat, trials, json) = t.checked()?;
            let (helper, invoke) = isa_bench::measure(repeat, trials)?;
            writeln!(out, "SCHED_CLS programs, host kernel JIT").map_err(io)?;
            writeln!(out, "  bpf_csum_diff call: {helper:.2} ns").map_err(io)?;
            writeln!(out, "  r0 = 7; exit:       {invoke:.2} ns per run").map_err(io)?;
            if json {
                let j = serde_json::json!({
                    "engine": "host",
                    "cls_helper_ns": kbpf_shim::bench::json_num(helper),
                    "cls_invoke_ns": kbpf_shim::bench::json_num(invoke),
                });
                writeln!(out, "{j}").map_err(io)?;
            }
            Ok(())
        }
        What::MapLookup { t } => {
            let (repeat, trials, json) = t.checked()?;
            let rows = map_bench::measure(repeat, trials)?;
            map_lookup::print_rows(&rows, "map lookups, host kernel JIT", "host", json, out)
                .map_err(io)
        }
        What::Tcx {
            counts,
            packets,
            rounds,
            json,
        } => {
            let o = TcxHostOpts {
                counts,
                packets,
                rounds,
                ..TcxHostOpts::default()
            };
            let r = tcx_bench::measure(&o)?;
            tcx_bench::print(&r, json, out).map_err(io)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = &mut std::io::stdout().lock();
    match run(cli.what, out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kbpf-host-bench: the host kernel cannot run this: {e}");
            ExitCode::from(2)
        }
    }
}
