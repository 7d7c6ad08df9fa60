//! Differential test of kbpf's verifier against the host Linux kernel's: the negative corpus
//! and the positive controls (`kernel/tests/corpus`) are loaded into both, and the verdicts
//! compared. Skipped, and says so, where the host refuses `bpf(2)` (not root, no BPF).
//!
//! The raw-buffer cases go to the host as socket filters (the kernel has no raw-buffer type),
//! so only the cases whose rule does not depend on the context are comparable; the rest are
//! reported, not judged. Default-mode cases load with `CAP_BPF` + `CAP_NET_ADMIN` only, the
//! privileged ones as root.
//!
//! Every disagreement must be one of [`KNOWN`], each with its reason. The list was taken on
//! the kernel release [`KNOWN_ON`]; on another release disagreements are reported, not judged
//! (the kernel's rules move between releases).

#[path = "../../kernel/tests/corpus/mod.rs"]
mod corpus;

use corpus::{Mode, NEGATIVE, POSITIVE, maps};
use kbpf::insn::assemble;
use kbpf::uapi::ProgType;
use kbpf_shim::host_bpf::{HostLoad, HostVerdict, HostVerifier};

/// Whether the case's program reads or writes through R1 (the context) on entry: those are
/// judged by different context rules on the two sides.
fn touches_ctx(asm: &str) -> bool {
    asm.contains("%r1+") || asm.contains("[%r1]") || asm.contains("mov %r6, %r1")
}

/// The host kernel release [`KNOWN`] was taken on.
const KNOWN_ON: &str = "6.18";

/// Cases on which kbpf and the host kernel disagree, and why.
const KNOWN: &[(&str, &str)] = &[
    (
        "helper not for the type",
        "bpf_get_current_pid_tgid (14): kbpf's raw-buffer type has no such helper; the host \
         judges the case as a socket filter, which has it",
    ),
    (
        "bounded loop",
        "a loop counted in an imprecise scalar: the kernel widens imprecise scalars at loop \
         heads (widen_imprecise_scalars) and then can't see the loop end, so it hits the 1M \
         limit; kbpf has no precision tracking yet and explores the 100 iterations",
    ),
];

fn host_load(mode: Mode, asm: &str) -> HostLoad {
    let insns = assemble(asm).expect("corpus assembles");
    let nmaps = (0..).take_while(|&h| maps(h).is_some()).count() as u32;
    HostLoad {
        prog_type: match mode.prog_type() {
            ProgType::RawBuffer => ProgType::SocketFilter,
            t => t,
        },
        insns,
        maps: (0..nmaps).filter_map(maps).collect(),
        privileged: mode == Mode::Priv,
        expected_attach_type: None,
    }
}

#[test]
fn verdicts_agree_with_the_host_kernel() {
    let host = match HostVerifier::open() {
        Ok(h) => h,
        Err(why) => {
            eprintln!("SKIPPED: the host kernel's verifier is not reachable: {why}");
            return;
        }
    };
    let cases = NEGATIVE
        .iter()
        .map(|&(name, mode, asm, ..)| (name, mode, asm, false))
        .chain(
            POSITIVE
                .iter()
                .map(|&(name, mode, asm)| (name, mode, asm, true)),
        );
    let (mut agree, mut judged, mut reported) = (0, 0, Vec::new());
    let mut disagree = Vec::new();
    for (name, mode, asm, kbpf_accepts) in cases {
        let verdict = host.load(host_load(mode, asm)).expect("host load");
        let host_accepts = verdict == HostVerdict::Accepted;
        let comparable =
            mode != Mode::NoLoops && !(touches_ctx(asm) && mode.prog_type() == ProgType::RawBuffer);
        let line = match &verdict {
            HostVerdict::Accepted => format!("{name}: kbpf {kbpf_accepts}, host accepts"),
            HostVerdict::Rejected { errno, log } => format!(
                "{name}: kbpf {kbpf_accepts}, host errno {errno}: {}",
                log.lines()
                    .rev()
                    .find(|l| !l.starts_with("processed") && !l.is_empty())
                    .unwrap_or("")
            ),
        };
        if !comparable {
            reported.push(line);
            continue;
        }
        judged += 1;
        if host_accepts == kbpf_accepts {
            agree += 1;
        } else {
            disagree.push((line, name));
        }
    }
    eprintln!("host kernel agreement: {agree}/{judged} comparable cases");
    for (l, _) in &disagree {
        eprintln!("  DISAGREE {l}");
    }
    eprintln!("not comparable (context rules differ): {}", reported.len());
    for l in &reported {
        eprintln!("  {l}");
    }
    assert!(judged > 0);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    if !release.starts_with(KNOWN_ON) {
        eprintln!("host kernel {release}: the known list is for {KNOWN_ON}; not judged");
        return;
    }
    let unexplained: Vec<_> = disagree
        .iter()
        .filter(|(_, name)| !KNOWN.iter().any(|(k, _)| k == name))
        .map(|(l, _)| l.as_str())
        .collect();
    assert!(
        unexplained.is_empty(),
        "new disagreements:\n{}",
        unexplained.join("\n")
    );
    let stale: Vec<_> = KNOWN
        .iter()
        .filter(|(k, _)| !disagree.iter().any(|(_, name)| name == k))
        .collect();
    assert!(
        stale.is_empty(),
        "known disagreements that agree now: {stale:?}"
    );
}
