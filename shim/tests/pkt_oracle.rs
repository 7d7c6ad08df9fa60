//! Differential test of kbpf's `BPF_PROG_TEST_RUN` against the host kernel's: the generated
//! programs × packets of `pkt_cases` run on both, and every load must end the same way (the
//! same errno when refused) and every run give the same errno and, where the run reports
//! anything, the same `retval` (low 32 bits), `data_size_out`, `data_out`, `ctx_size_out` and
//! `ctx_out` — through kbpf's interpreter and its JIT. The host's answers must also be the ones
//! recorded in `pkt_golden/` (which `pkt_golden.rs` checks kbpf against on any machine);
//! `KBPF_BLESS=1` rewrites that file instead. Skipped, and says so, where the host refuses
//! `bpf(2)`. On a kernel release other than the recorded one (the rules move between
//! releases) disagreements are reported, not judged.

mod pkt_cases;

use kbpf::insn::assemble;
use kbpf_shim::conformance::Engine;
use kbpf_shim::host_bpf::test_run::HostTestRun;
use kbpf_shim::host_bpf::{HostLoad, HostVerdict};
use pkt_cases::compare::{self, Answer, Tally};

/// Where the recorded answers live.
pub const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pkt_golden/host.txt");

fn release() -> String {
    // SAFETY: `utsname` is plain bytes, for which all zeros is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uname` fills the struct we own.
    unsafe { libc::uname(&mut u) };
    // SAFETY: `release` is NUL-terminated by `uname`.
    unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn test_runs_agree_with_the_host_kernel() {
    kbpf_shim::host::install();
    let host = match HostTestRun::open() {
        Ok(h) => h,
        Err(why) => {
            eprintln!("SKIPPED: the host kernel's BPF_PROG_TEST_RUN is not usable: {why}");
            return;
        }
    };
    let cases = pkt_cases::all();
    let answers: Vec<Answer> = cases
        .iter()
        .map(|c| {
            let load = HostLoad {
                prog_type: c.prog_type,
                insns: assemble(&c.asm).unwrap(),
                maps: Vec::new(),
                privileged: false,
                expected_attach_type: None,
            };
            match host.run(load, c.runs.clone()).expect("host") {
                Ok(o) => Answer::Runs(o.iter().map(compare::summary).collect()),
                Err(HostVerdict::Rejected { errno, log }) => Answer::Refused {
                    errno,
                    known: compare::known_host(&c.name, &log),
                },
                Err(HostVerdict::Accepted) => unreachable!("a refusal carries its log"),
            }
        })
        .collect();
    let mut t = Tally::default();
    compare::check("interp", &cases, &answers, &mut t);
    Engine::Jit.select();
    compare::check("jit", &cases, &answers, &mut t);
    let refused = answers
        .iter()
        .filter(|a| matches!(a, Answer::Refused { .. }))
        .count();
    println!(
        "pkt oracle: {} programs ({refused} refused by the host), {} loads and runs compared \
         over both engines, {} agreed, {} known differences, {} disagreed",
        cases.len(),
        t.compared,
        t.agreed,
        t.known,
        t.failures.len()
    );
    for f in t.failures.iter().take(40) {
        println!("{f}");
    }
    let text = compare::golden_text(&release(), &cases, &answers);
    let recorded = std::fs::read_to_string(GOLDEN).unwrap_or_default();
    let same_release = recorded.lines().next() == text.lines().next();
    let bless = std::env::var_os("KBPF_BLESS").is_some();
    if !same_release && !bless {
        println!(
            "pkt oracle: the host runs Linux {}, not the release pkt_golden/ was recorded on: \
             reported, not judged",
            release()
        );
        return;
    }
    assert!(t.failures.is_empty(), "{} disagreements", t.failures.len());
    if bless {
        std::fs::create_dir_all(std::path::Path::new(GOLDEN).parent().unwrap()).unwrap();
        std::fs::write(GOLDEN, text).unwrap();
        return;
    }
    match compare::parse_golden(&recorded, &cases) {
        Some(a) if a == answers => {}
        _ => panic!(
            "{GOLDEN} does not hold the host's answers to these cases: rerun with KBPF_BLESS=1"
        ),
    }
}
