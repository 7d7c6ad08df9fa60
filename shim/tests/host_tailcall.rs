//! Optional: the host kernel's tail-call chains (`host_bpf::tailcall`, what
//! `scripts/compare-tailcall` times) load, run to the end and stop at Linux's limit of 33 tail
//! calls, for both key kinds. SKIPPED when the host kernel can't load BPF.

use kbpf_shim::host_bpf::HostVerifier;
use kbpf_shim::host_bpf::tailcall::{LENGTHS, measure};
use kbpf_shim::progs::ChainKey;

#[test]
fn host_chains_run_and_stop_at_the_limit() {
    if let Err(why) = HostVerifier::open() {
        eprintln!("SKIPPED host tail-call chains: {why}");
        return;
    }
    for key in [ChainKey::Const, ChainKey::Reg] {
        let r = measure(key, 100, 1).expect("host chains");
        assert_eq!(r.max_tail_calls, 33, "{key:?}");
        assert_eq!(r.ns_per_run.len(), LENGTHS.len());
        assert!(r.ns_per_tail_call.is_finite(), "{key:?}: {r:?}");
    }
}
