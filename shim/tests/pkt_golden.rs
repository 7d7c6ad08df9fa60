//! kbpf's `BPF_PROG_TEST_RUN` against the host kernel's answers recorded in `pkt_golden/`
//! (see `pkt_oracle.rs`): the generated programs × packets of `pkt_cases`, through the
//! interpreter and then the JIT, on any machine — no `bpf(2)` needed.

mod pkt_cases;

use kbpf_shim::conformance::Engine;
use pkt_cases::compare::{self, Tally};

#[test]
fn test_runs_match_the_recorded_host_answers() {
    kbpf_shim::host::install();
    let cases = pkt_cases::all();
    let text = include_str!("pkt_golden/host.txt");
    let answers = compare::parse_golden(text, &cases)
        .expect("pkt_golden/host.txt is out of date: rerun pkt_oracle with KBPF_BLESS=1");
    let mut t = Tally::default();
    compare::check("interp", &cases, &answers, &mut t);
    Engine::Jit.select();
    compare::check("jit", &cases, &answers, &mut t);
    println!(
        "pkt golden: {} programs, {} loads and runs compared over both engines, {} agreed, \
         {} known differences",
        cases.len(),
        t.compared,
        t.agreed,
        t.known
    );
    for f in t.failures.iter().take(40) {
        println!("{f}");
    }
    assert!(t.failures.is_empty(), "{} disagreements", t.failures.len());
}
