//! Optional: the host-kernel sides of `scripts/compare-*` (`kbpf_shim::host_bpf`) run and
//! measure what they claim: the tail-call chains load, run to the end and stop at Linux's limit
//! of 33 tail calls for both key kinds; the tcx bench's packets go through tcx ingress of `lo`
//! (its control chain ending in `TCX_DROP` keeps them from UDP) and reach UDP otherwise.
//! SKIPPED when the host kernel can't load BPF.

use kbpf_shim::host_bpf::HostVerifier;
use kbpf_shim::host_bpf::tailcall::{LENGTHS, measure};
use kbpf_shim::host_bpf::tcx_bench::{self, TcxHostOpts};
use kbpf_shim::progs::ChainKey;

fn host() -> bool {
    match HostVerifier::open() {
        Ok(_) => true,
        Err(why) => {
            eprintln!("SKIPPED host benches: {why}");
            false
        }
    }
}

#[test]
fn host_chains_run_and_stop_at_the_limit() {
    if !host() {
        return;
    }
    for key in [ChainKey::Const, ChainKey::Reg] {
        let r = measure(key, 100, 1).expect("host chains");
        assert_eq!(r.max_tail_calls, 33, "{key:?}");
        assert_eq!(r.ns_per_run.len(), LENGTHS.len());
        assert!(r.ns_per_tail_call.is_finite(), "{key:?}: {r:?}");
    }
}

#[test]
fn host_tcx_packets_go_through_the_hook() {
    if !host() {
        return;
    }
    let o = TcxHostOpts {
        counts: vec![0, 1, 8],
        packets: 500,
        rounds: 2,
        warmup: 100,
    };
    // The bench fails itself when a control packet reaches UDP or a timed one does not.
    let r = tcx_bench::measure(&o).expect("host tcx bench");
    assert_eq!(r.rows.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1, 8]);
    assert!(r.jited_len > 0);
    assert!(r.ns_per_prog.is_finite());
}

#[test]
fn host_map_lookup_loops_compute_their_sums() {
    if !host() {
        return;
    }
    // The bench checks every loop's sum before it times anything.
    let rows = kbpf_shim::host_bpf::map_bench::measure(5, 1).expect("host map bench");
    let names: Vec<&str> = rows.iter().map(|r| r.0).collect();
    assert_eq!(
        names,
        ["array", "array-call", "hash", "hash-miss", "hash-empty"]
    );
}

#[test]
fn host_helper_loop_computes_its_sum() {
    if !host() {
        return;
    }
    // The bench checks both helper loops' sums before it times anything.
    let (helper, invoke) = kbpf_shim::host_bpf::isa_bench::measure(5, 1).expect("host isa bench");
    assert!(helper.is_finite() && invoke > 0.0);
}
