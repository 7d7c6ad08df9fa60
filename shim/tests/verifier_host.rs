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
//! own program type (sk_lookup with its expected attach type); its kfunc calls go to the host
//! with the host's BTF ids of the same functions (`host_bpf::btf_ids`); a kfunc id kbpf does
//! not have (the unknown-id case) cannot be translated, and that case is only reported.

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
    // kbpf's kfunc ids as the host's; an id kbpf does not know stays (and is not judged).
    let insns = kbpf_shim::host_bpf::btf_ids::to_host(&insns).unwrap_or(insns);
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
    let refs_ok = |asm: &str| {
        let insns = assemble(asm).expect("corpus assembles");
        !asm.contains("call kfunc") || kbpf_shim::host_bpf::btf_ids::to_host(&insns).is_ok()
    };
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

/// The host kernel's verifier, or `None` after saying SKIPPED and why.
fn open_host() -> Option<HostVerifier> {
    HostVerifier::open()
        .map_err(|why| eprintln!("SKIPPED: the host kernel's verifier is not reachable: {why}"))
        .ok()
}

#[test]
fn verdicts_agree_with_the_host_kernel() {
    let Some(host) = open_host() else { return };
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
        "not comparable (context rules differ, or a kfunc id the host has no function for): {}",
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

#[path = "verifier_gen/mod.rs"]
mod verifier_gen;

/// The seed of the generated programs (fixed: a disagreement names a reproducible case).
const GEN_SEED: u64 = 0x6b62_7066_5f67_656e;

/// kbpf's verdict on a generated program: `None` accepted, else the errno and the log.
fn kbpf_verdict(g: &verifier_gen::Gen, insns: &[kbpf::insn::Insn]) -> Option<(i32, String)> {
    let maps = |h: u32| g.maps.get(h as usize).copied();
    let env = kbpf::verifier::VerifierEnv {
        prog_type: g.prog_type,
        maps: &maps,
        ctx_size: 0,
        privileged: g.privileged,
        allow_loops: true,
        expected_attach_type: g.attach,
    };
    kbpf::verifier::verify(insns, &env)
        .err()
        .map(|e| (e.errno.to_errno(), e.log))
}

/// The last line of a verifier log that says why (not the summary).
fn reason(log: &str) -> &str {
    log.lines()
        .rev()
        .find(|l| !l.starts_with("processed") && !l.is_empty())
        .unwrap_or("")
}

/// A verdict: `None` accepted, else the errno and the log.
type Verdict = Option<(i32, String)>;

/// A class of generated programs on which kbpf and the host kernel disagree: why, and a
/// predicate on the program and both verdicts (kbpf's, the host's), so that a new
/// disagreement outside the class is never hidden by it.
type KnownClass = (
    &'static str,
    fn(&verifier_gen::Gen, &Verdict, &Verdict) -> bool,
);

/// The known classes of disagreement of the generated programs.
const GEN_KNOWN: &[KnownClass] = &[(
    "Spectre v1 speculative paths (out of scope): in the default mode an error the host finds \
         on a speculative path makes it put a barrier before the instruction (nospec, Linux \
         6.16+), which then needs no pointer-arithmetic mask; so the host does not refuse masks \
         that differ between paths there, which kbpf, modelling no speculative path, does \
         ('tried to add from different maps, paths or scalars'). Safe (kbpf is stricter)",
    |g, kbpf, host| {
        !g.privileged
            && host.is_none()
            && kbpf
                .as_ref()
                .is_some_and(|(_, log)| log.contains("from different maps, paths or scalars"))
    },
)];

/// One generated program on both sides: whether the verdicts (accept, or the errno of a
/// rejection) agree, both verdicts, and a line describing them.
fn compare_one(host: &HostVerifier, g: &verifier_gen::Gen) -> (bool, Verdict, Verdict, String) {
    let insns = assemble(&g.asm).unwrap_or_else(|e| panic!("{}: {e}\n{}", g.desc, g.asm));
    let mine = kbpf_verdict(g, &insns);
    let load = HostLoad {
        prog_type: g.prog_type,
        insns,
        maps: g.maps.clone(),
        privileged: g.privileged,
        expected_attach_type: g.attach,
    };
    let theirs = match host.load(load).expect("host load") {
        HostVerdict::Accepted => None,
        HostVerdict::Rejected { errno, log } => Some((errno, log)),
    };
    // `KBPF_GEN_SHOW=text`: both logs of the programs whose description contains it.
    if std::env::var("KBPF_GEN_SHOW").is_ok_and(|s| g.desc.contains(&s)) {
        let log = |v: &Verdict| {
            v.as_ref()
                .map_or("accepted", |(_, l)| l.as_str())
                .to_string()
        };
        eprintln!(
            "=== {}\n{}\n--- kbpf\n{}\n--- host\n{}",
            g.desc,
            g.asm,
            log(&mine),
            log(&theirs)
        );
    }
    let same = match (&mine, &theirs) {
        (None, None) => true,
        // The return-value template also compares the reason, word for word (kbpf's line
        // starts with the instruction's index).
        (Some((a, la)), Some((b, lb))) if g.template == "retcode" => {
            let mine = reason(la);
            let mine = mine.split_once(": ").map_or(mine, |(_, r)| r);
            a == b && mine == reason(lb)
        }
        (Some((a, _)), Some((b, _))) => a == b,
        _ => false,
    };
    let show = |v: &Option<(i32, String)>| match v {
        None => String::from("accepts"),
        Some((e, log)) => format!("errno {e}: {}", reason(log)),
    };
    let line = format!(
        "[{}] {} {}: kbpf {} | host {}",
        g.template,
        if g.privileged { "priv" } else { "default" },
        g.desc,
        show(&mine),
        show(&theirs)
    );
    (same, mine, theirs, line)
}

/// The generated programs (templates in `verifier_gen/`: context, stack, spills and fills, map
/// lookups, pointer arithmetic, packet bounds, linked scalars, legacy packet loads) against the
/// host kernel's verifier, both privilege modes: the same verdict, and the same errno when both
/// refuse, apart from the listed classes ([`GEN_KNOWN`]).
#[test]
fn generated_programs_agree_with_the_host_kernel() {
    let Some(host) = open_host() else { return };
    // `KBPF_GEN_SEED` / `KBPF_GEN_COMBOS` explore further than the fixed run does.
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let seed = env("KBPF_GEN_SEED").unwrap_or(GEN_SEED);
    let combos = env("KBPF_GEN_COMBOS").unwrap_or(2000) as usize;
    let mut gens = verifier_gen::all(seed, combos);
    // `KBPF_GEN_ONLY=a,b` runs only those templates (while iterating; not judged complete).
    let only = std::env::var("KBPF_GEN_ONLY").ok();
    if let Some(only) = &only {
        gens.retain(|g| only.split(',').any(|t| t == g.template));
    }
    let mut per_template: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    let mut known_hits = vec![0usize; GEN_KNOWN.len()];
    let (mut agreed, mut unexplained) = (0usize, Vec::new());
    for g in &gens {
        let (same, kbpf, theirs, line) = compare_one(&host, g);
        let t = per_template.entry(g.template).or_default();
        t.0 += 1;
        if same {
            agreed += 1;
            t.1 += 1;
            continue;
        }
        match GEN_KNOWN.iter().position(|(_, p)| p(g, &kbpf, &theirs)) {
            Some(k) => known_hits[k] += 1,
            None => unexplained.push(line),
        }
    }
    eprintln!(
        "generated programs: {agreed}/{} agree with the host kernel",
        gens.len()
    );
    for (t, (n, a)) in &per_template {
        eprintln!("  {t}: {a}/{n}");
    }
    for ((why, _), n) in GEN_KNOWN.iter().zip(&known_hits) {
        eprintln!("  known, {n} programs: {why}");
    }
    for l in unexplained.iter().take(50) {
        eprintln!("  DISAGREE {l}");
    }
    if let Ok(path) = std::env::var("KBPF_GEN_DUMP") {
        std::fs::write(path, unexplained.join("\n")).unwrap();
    }
    assert!(
        only.is_some() || gens.len() >= 10_000,
        "only {} programs generated",
        gens.len()
    );
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    if !release.starts_with(KNOWN_ON) {
        eprintln!("host kernel {release}: the known list is for {KNOWN_ON}; not judged");
        return;
    }
    assert!(
        unexplained.is_empty(),
        "{} disagreements outside the known classes:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
    let stale: Vec<_> = GEN_KNOWN
        .iter()
        .zip(&known_hits)
        .filter(|(_, n)| **n == 0)
        .map(|((why, _), _)| *why)
        .collect();
    assert!(
        only.is_some() || stale.is_empty(),
        "known classes that no longer occur: {stale:?}"
    );
}

/// The verifier classes of issue 11 section 2 (`corpus/classes.rs`, both privilege modes, and
/// the bound on waiting paths) against the host kernel: the same verdict, and for a refusal
/// the same errno.
#[test]
fn class_cases_agree_with_the_host_kernel() {
    use corpus::classes;
    let Some(host) = open_host() else { return };
    let nmaps = (0..).take_while(|&h| classes::maps(h).is_some()).count() as u32;
    let load = |prog_type, privileged, asm: &str| HostLoad {
        prog_type,
        insns: assemble(asm).expect("corpus assembles"),
        maps: (0..nmaps).filter_map(classes::maps).collect(),
        privileged,
        expected_attach_type: None,
    };
    let mut cases: Vec<(String, ProgType, bool, String, Option<i32>)> = Vec::new();
    for (name, (t, p), asm, errno, _) in classes::negative_each() {
        cases.push((name.into(), t, p, asm.into(), Some(errno.to_errno())));
    }
    for (name, (t, p), asm) in classes::positive_each() {
        cases.push((name.into(), t, p, asm.into(), None));
    }
    for p in [false, true] {
        let e2big = Some(kbpf::Errno::E2BIG.to_errno());
        for (n, want) in [(8192, None), (8193, e2big)] {
            let name = format!("{n} waiting paths");
            cases.push((
                name,
                ProgType::SocketFilter,
                p,
                classes::jump_sequence(n),
                want,
            ));
        }
    }
    let mut disagree = Vec::new();
    for (name, t, p, asm, want) in &cases {
        let got = match host.load(load(*t, *p, asm)).expect("host load") {
            HostVerdict::Accepted => None,
            HostVerdict::Rejected { errno, log } => Some((errno, reason(&log).to_string())),
        };
        if got.as_ref().map(|g| g.0) != *want {
            disagree.push(format!(
                "{name} (privileged: {p}): kbpf {want:?}, host {got:?}"
            ));
        }
    }
    eprintln!(
        "class cases: {}/{} agree with the host kernel",
        cases.len() - disagree.len(),
        cases.len()
    );
    assert!(disagree.is_empty(), "{}", disagree.join("\n"));
}
