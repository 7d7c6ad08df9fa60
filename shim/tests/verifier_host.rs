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
//!
//! The reference-tracking corpus (`corpus::refs`) is judged the same way, each case as its
//! own program type (sk_lookup with its expected attach type); its kfunc cases (`call kfunc`)
//! name kbpf's own kfunc ids, which mean nothing to the host, and are only reported.

#[path = "../../kernel/tests/corpus/mod.rs"]
mod corpus;

use corpus::{Mode, NEGATIVE, POSITIVE, maps, refs};
use kbpf::insn::assemble;
use kbpf::uapi::{AttachType, ProgType};
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
        "not precision: the host explores Spectre v1 speculative paths for loaders without \
         CAP_PERFMON (sanitize_speculative_path), and its log shows paths `from 2 to 1 \
         (speculative execution)` re-entering the loop with a new counter range each time \
         until the 1M limit; kbpf does not model speculative paths (under root's rules, where \
         the host skips them, both accept)",
    ),
];

/// One case as the host loads it: `prog_type` is kbpf's (a raw buffer goes to the host as a
/// socket filter).
fn host_load(prog_type: ProgType, privileged: bool, asm: &str) -> HostLoad {
    let insns = assemble(asm).expect("corpus assembles");
    let nmaps = (0..).take_while(|&h| maps(h).is_some()).count() as u32;
    HostLoad {
        prog_type: match prog_type {
            ProgType::RawBuffer => ProgType::SocketFilter,
            t => t,
        },
        insns,
        maps: (0..nmaps).filter_map(maps).collect(),
        privileged,
        expected_attach_type: (prog_type == ProgType::SkLookup).then_some(AttachType::SkLookup),
    }
}

/// A case: name, program type, root's rules, program, whether kbpf accepts it, and whether
/// its verdicts can be compared.
type Case = (&'static str, ProgType, bool, &'static str, bool, bool);

/// Every case of both corpora.
fn cases() -> Vec<Case> {
    let main = |mode: Mode, asm: &str| {
        mode != Mode::NoLoops && !(touches_ctx(asm) && mode.prog_type() == ProgType::RawBuffer)
    };
    let refs_ok = |asm: &str| !asm.contains("call kfunc");
    let mut v: Vec<Case> = Vec::new();
    for &(name, mode, asm, ..) in NEGATIVE {
        v.push((
            name,
            mode.prog_type(),
            mode == Mode::Priv,
            asm,
            false,
            main(mode, asm),
        ));
    }
    for &(name, mode, asm) in POSITIVE {
        v.push((
            name,
            mode.prog_type(),
            mode == Mode::Priv,
            asm,
            true,
            main(mode, asm),
        ));
    }
    for &(name, mode, asm, ..) in refs::NEGATIVE {
        v.push((
            name,
            mode.prog_type(),
            mode.privileged(),
            asm,
            false,
            refs_ok(asm),
        ));
    }
    for &(name, mode, asm) in refs::POSITIVE {
        v.push((
            name,
            mode.prog_type(),
            mode.privileged(),
            asm,
            true,
            refs_ok(asm),
        ));
    }
    v
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
    let (mut agree, mut judged, mut reported) = (0, 0, Vec::new());
    let mut disagree = Vec::new();
    for (name, prog_type, privileged, asm, kbpf_accepts, comparable) in cases() {
        let verdict = host
            .load(host_load(prog_type, privileged, asm))
            .expect("host load");
        let host_accepts = verdict == HostVerdict::Accepted;
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
    eprintln!(
        "not comparable (context rules differ, or kbpf's own kfunc ids): {}",
        reported.len()
    );
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
