//! The mprog oracle's samples as golden tests: `kbpf tcx script -e` must print exactly what the
//! host kernel (Linux 6.18) printed. `mprog-sample` and `mprog-edge` come from the oracle's
//! samples (`shared/oracle/samples/`, recorded with `mprog-oracle -e`); `mprog-flags` (flag bits
//! each command does not know, and the order of its checks) was recorded with
//! `kbpf tcx script -e --host`.

use kbpf_shim::tcx_script::{Options, run_script};

const SAMPLE: &str = include_str!("tcx_golden/mprog-sample.txt");
const SAMPLE_OUT: &str = include_str!("tcx_golden/mprog-sample.out");
const EDGE: &str = include_str!("tcx_golden/mprog-edge.txt");
const EDGE_OUT: &str = include_str!("tcx_golden/mprog-edge.out");
const FLAGS: &str = include_str!("tcx_golden/mprog-flags.txt");
const FLAGS_OUT: &str = include_str!("tcx_golden/mprog-flags.out");

fn check(script: &str, expected: &str, egress: bool) {
    kbpf_shim::host::install();
    let opts = Options {
        echo: true,
        egress,
        first_last: false,
    };
    let got = run_script(script, opts).expect("script runs");
    for (n, (g, e)) in got.lines().zip(expected.lines()).enumerate() {
        assert_eq!(g, e, "line {}", n + 1);
    }
    assert_eq!(got.lines().count(), expected.lines().count());
}

#[test]
fn sample_matches_the_kernel_on_ingress_and_egress() {
    check(SAMPLE, SAMPLE_OUT, false);
    check(SAMPLE, SAMPLE_OUT, true);
}

#[test]
fn edge_cases_match_the_kernel() {
    check(EDGE, EDGE_OUT, false);
}

#[test]
fn unknown_flag_bits_match_the_kernel() {
    check(FLAGS, FLAGS_OUT, false);
    check(FLAGS, FLAGS_OUT, true);
}

#[test]
fn without_echo_only_results_are_printed() {
    kbpf_shim::host::install();
    let got = run_script("load 1\nquery # c\n\nbogus\n", Options::default()).unwrap();
    assert_eq!(
        got,
        "OK\nOK rev=1 count=0 progs=- links=-\nEINVAL(script)\n"
    );
}
