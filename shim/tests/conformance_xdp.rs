//! The whole bpf_conformance suite the way the upstream runner's `--xdp_prolog true` mode and
//! Linux's own plugin run it: each program (behind the runner's prolog when the test has
//! memory) loads as a privileged XDP program through the verifier, with no fallback, and runs
//! over the memory as its packet. kbpf must refuse exactly what Linux refuses — the twelve
//! shifts by an out-of-range immediate and `callx` (`conformance::refused`) — and give every
//! other case its expected r0, on both engines. When the host kernel can load BPF, its verdicts
//! on the same programs (wrapped as Linux's plugin wraps them) are compared too; otherwise that
//! part says SKIPPED.

use kbpf::MapAttr;
use kbpf::insn::Insn;
use kbpf::uapi::{AttachType, MapType, ProgType};
use kbpf_shim::conformance::Engine;
use kbpf_shim::conformance::plugin::{PluginOpts, run_program, xdp_prolog};
use kbpf_shim::conformance::refused::REFUSED;
use kbpf_shim::data::{self, DataFile, Parsed};
use kbpf_shim::host_bpf::{HostLoad, HostVerdict, HostVerifier};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Every case: file name, parsed file.
fn suite() -> Vec<(String, DataFile)> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/bpf_conformance"
    ));
    let cases: Vec<_> = data::collect(&[dir])
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            match data::parse_file(&p) {
                Ok(Parsed::Test(t)) => (name, t),
                other => panic!("{name}: {other:?}"),
            }
        })
        .collect();
    assert_eq!(cases.len(), 313);
    cases
}

/// The program the runner sends in `--xdp_prolog true` mode.
fn with_prolog(case: &DataFile) -> Vec<Insn> {
    let mut prog = Vec::new();
    if !case.mem.is_empty() {
        prog.extend(xdp_prolog(case.mem.len() as i32));
    }
    prog.extend(&case.program);
    prog
}

fn bytes(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

/// Runs the suite on `engine` in XDP mode; returns the names kbpf refused.
fn run_suite(cases: &[(String, DataFile)], engine: Engine) -> BTreeSet<String> {
    let opts = PluginOpts {
        jit: engine == Engine::Jit,
        xdp: true,
        elf: false,
    };
    let mut refused = BTreeSet::new();
    let mut wrong = Vec::new();
    for (name, case) in cases {
        let mut mem = case.mem.clone();
        match run_program(&bytes(&with_prolog(case)), &mut mem, opts) {
            Ok(r0) if Some(r0) == case.result => {}
            Ok(r0) => wrong.push(format!("{name}: r0 = {r0:#x}, expected {:?}", case.result)),
            Err(e) if e.starts_with("verifier: ") => {
                refused.insert(name.clone());
            }
            Err(e) => wrong.push(format!("{name}: {e}")),
        }
    }
    assert!(wrong.is_empty(), "{engine:?}:\n{}", wrong.join("\n"));
    refused
}

/// Linux's verdict on each case as Linux's plugin loads it: the runner's program as a
/// subprogram behind a caller that stores its 64-bit r0 in a one-element array map, loaded as
/// a privileged XDP program (`libbpf_plugin.cc`). The names Linux refuses.
fn linux_refuses(host: &HostVerifier, cases: &[(String, DataFile)]) -> BTreeSet<String> {
    let wrapper = [
        Insn::new(0x85, 0, 1, 0, 4), // call the program, 4 slots on
        Insn::new(0x18, 1, 2, 0, 0), // r1 = &map[0]'s value (BPF_PSEUDO_MAP_VALUE, map 0)
        Insn::new(0x00, 0, 0, 0, 0), //   (offset 0)
        Insn::new(0x7b, 1, 0, 0, 0), // *(u64 *)(r1 + 0) = r0
        Insn::new(0x95, 0, 0, 0, 0), // exit
    ];
    let mut refused = BTreeSet::new();
    for (name, case) in cases {
        let mut insns = wrapper.to_vec();
        insns.extend(with_prolog(case));
        let load = HostLoad {
            prog_type: ProgType::Xdp,
            insns,
            maps: vec![MapAttr::new(MapType::Array, 4, 8, 1)],
            privileged: true,
            expected_attach_type: Some(AttachType::Xdp),
        };
        match host.load(load).expect("host loader") {
            HostVerdict::Accepted => {}
            HostVerdict::Rejected { .. } => {
                refused.insert(name.clone());
            }
        }
    }
    refused
}

#[test]
fn xdp_mode_refuses_exactly_what_linux_refuses() {
    kbpf_shim::host::install();
    let cases = suite();
    let listed: BTreeSet<String> = REFUSED.iter().map(|r| r.file.to_string()).collect();
    // The interpreter first: registering the JIT is process-wide and permanent.
    let interp = run_suite(&cases, Engine::Interp);
    assert_eq!(interp, listed, "interpreter");
    let jit = run_suite(&cases, Engine::Jit);
    assert_eq!(jit, listed, "JIT");
    eprintln!(
        "XDP mode: {} of {} cases run and match on both engines; refused: {}",
        cases.len() - listed.len(),
        cases.len(),
        listed.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    match HostVerifier::open() {
        Ok(host) => {
            let linux = linux_refuses(&host, &cases);
            assert_eq!(linux, listed, "Linux's verdicts in XDP mode");
            eprintln!("the host kernel refuses the same {} cases", linux.len());
        }
        Err(why) => eprintln!("SKIPPED Linux's XDP-mode verdicts: {why}"),
    }
}
