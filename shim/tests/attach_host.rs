//! The expected attach types each program type accepts at load (`bpf_prog_load_check_attach`
//! after `bpf_prog_load_fixup_attach_type`), kbpf's load against the host kernel's: every type
//! kbpf shares with Linux × no attach type and each attach type kbpf knows, the same verdict
//! and errno. Skipped, and says so, where the host refuses `bpf(2)`; on a host release other
//! than 6.18 disagreements are reported, not judged.
//!
//! Syscall programs are left out: the host loads them only sleepable, which kbpf's loads have
//! no flag for (kbpf's rule, no attach type, is in the unit tests of `load/gate.rs`).

use kbpf::ProgLoadAttr;
use kbpf::insn::assemble;
use kbpf::syscall;
use kbpf::uapi::{AttachType, ProgType};
use kbpf_shim::host_bpf::{HostLoad, HostVerdict, HostVerifier};

const TYPES: [ProgType; 10] = [
    ProgType::SocketFilter,
    ProgType::Kprobe,
    ProgType::SchedCls,
    ProgType::SchedAct,
    ProgType::Tracepoint,
    ProgType::Xdp,
    ProgType::CgroupSkb,
    ProgType::SkReuseport,
    ProgType::SkLookup,
    ProgType::Netfilter,
];

const ATTACH: [Option<AttachType>; 10] = [
    None,
    Some(AttachType::CgroupInetIngress),
    Some(AttachType::CgroupInetEgress),
    Some(AttachType::SkLookup),
    Some(AttachType::Xdp),
    Some(AttachType::SkReuseportSelect),
    Some(AttachType::SkReuseportSelectOrMigrate),
    Some(AttachType::Netfilter),
    Some(AttachType::TcxIngress),
    Some(AttachType::TcxEgress),
];

#[test]
fn expected_attach_types_at_load_agree_with_the_host_kernel() {
    let host = match HostVerifier::open() {
        Ok(h) => h,
        Err(why) => {
            eprintln!("SKIPPED: the host kernel's verifier is not reachable: {why}");
            return;
        }
    };
    let insns = assemble("mov %r0, 0\nexit").unwrap();
    let (mut n, mut disagree) = (0, Vec::new());
    for t in TYPES {
        for attach in ATTACH {
            // Root's rules: the tracing types need CAP_PERFMON on the host.
            let mine = syscall::prog_load(&ProgLoadAttr {
                expected_attach_type: attach,
                privileged: true,
                ..ProgLoadAttr::new(t, &insns)
            });
            let mine = match mine {
                Ok(fd) => {
                    syscall::close(fd).unwrap();
                    None
                }
                Err(e) => Some(e.to_errno()),
            };
            let load = HostLoad {
                prog_type: t,
                insns: insns.clone(),
                maps: Vec::new(),
                privileged: true,
                expected_attach_type: attach,
            };
            let theirs = match host.load(load).expect("host load") {
                HostVerdict::Accepted => None,
                HostVerdict::Rejected { errno, .. } => Some(errno),
            };
            n += 1;
            if mine != theirs {
                disagree.push(format!("{t:?} {attach:?}: kbpf {mine:?}, host {theirs:?}"));
            }
        }
    }
    eprintln!(
        "expected attach types: {}/{n} agree with the host kernel",
        n - disagree.len()
    );
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    if !release.starts_with("6.18") {
        eprintln!("host kernel {release}: not judged\n{}", disagree.join("\n"));
        return;
    }
    assert!(disagree.is_empty(), "{}", disagree.join("\n"));
}
