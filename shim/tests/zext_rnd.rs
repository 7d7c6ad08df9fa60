//! The zero-extension analysis' self-test (`BPF_F_TEST_RND_HI32`, as the kernel's selftests run
//! `test_verifier` and `test_progs` with it): every bpf_conformance case the verifier accepts,
//! plus a few ISA programs the suite lacks, is loaded with random bits written into the upper
//! half of each 32-bit definition the analysis says nothing reads, and must still compute its
//! expected result — in the interpreter and in the JIT, with and without explicit zero
//! extension. A definition whose upper half is read after all would show up as a wrong `r0`.
//!
//! One test function: registering the JIT is process-wide, so the interpreter runs first.

use kbpf::ProgLoadAttr;
use kbpf::insn::{Insn, assemble};
use kbpf::syscall::{self, TestRun};
use kbpf::uapi::{ProgFlags, ProgType};
use kbpf_shim::data::{self, Parsed};
use std::path::PathBuf;

/// A program, its input memory and its expected `r0`.
struct Case {
    name: String,
    program: Vec<Insn>,
    mem: Vec<u8>,
    want: u64,
}

fn corpus() -> Vec<Case> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/bpf_conformance"
    ));
    let mut cases = Vec::new();
    for path in data::collect(&[dir]) {
        let Ok(Parsed::Test(case)) = data::parse_file(&path) else {
            continue;
        };
        let Some(want) = case.result else { continue };
        if case.error.is_some() || !case.maps.is_empty() || case.prog_type.is_some() {
            continue;
        }
        cases.push(Case {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            program: case.program,
            mem: case.mem,
            want,
        });
    }
    // ISA programs beyond the suite: 32-bit atomics and load-acquire (32-bit definitions of
    // their own), sub-register arithmetic feeding 64-bit uses, and a loop.
    let isa = [
        (
            "atomic32-fetch",
            "stdw [%r10-8], 5\nmov %r1, 3\nlock fetch add32 [%r10-8], %r1\nmov %r0, %r1\nexit\n",
            5,
        ),
        (
            "cmpxchg32",
            "stdw [%r10-8], 7\nmov %r0, 7\nmov %r1, 9\nlock cmpxchg32 [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit\n",
            9,
        ),
        (
            "load-acquire32",
            "lddw %r1, 0x8877665544332211\nstore_release64 [%r10-8], %r1\nload_acquire32 %r0, [%r10-8]\nexit\n",
            0x4433_2211,
        ),
        (
            "alu32-then-64",
            "mov32 %r1, -1\nadd32 %r1, 1\nmov32 %r2, -2\nmov %r0, %r2\nadd %r0, %r1\nexit\n",
            0xffff_fffe,
        ),
        (
            "loop32",
            "mov32 %r0, 0\nmov32 %r1, 10\nadd32 %r0, %r1\nsub32 %r1, 1\njne %r1, 0, -3\nexit\n",
            55,
        ),
    ];
    for (name, src, want) in isa {
        cases.push(Case {
            name: name.to_string(),
            program: assemble(src).unwrap_or_else(|e| panic!("{name}: {e}")),
            mem: Vec::new(),
            want,
        });
    }
    cases
}

/// What one pass over the corpus found.
#[derive(Debug, Default)]
struct Tally {
    ran: usize,
    /// Programs the rewrite made longer (randomisation or zero extension inserted).
    grown: usize,
    failures: Vec<String>,
}

fn run_corpus(cases: &[Case], jit: bool, needs_zext: bool) -> Tally {
    let mut t = Tally::default();
    for c in cases {
        let mut attr = ProgLoadAttr::new(ProgType::RawBuffer, &c.program)
            .with_ctx_size(c.mem.len() as u32)
            .with_needs_zext(needs_zext);
        attr.flags |= ProgFlags::TEST_RND_HI32;
        // Cases the verifier refuses run on the trusted path elsewhere; no rewrite applies.
        let Ok(fd) = syscall::prog_load(&attr) else {
            continue;
        };
        let prog = syscall::prog_get(fd).expect("loaded");
        if prog.jited() != jit {
            t.failures
                .push(format!("{}: jited = {}", c.name, prog.jited()));
        }
        if prog.insns().len() > c.program.len() {
            t.grown += 1;
        }
        drop(prog);
        let mut mem = c.mem.clone();
        let r = syscall::prog_test_run(
            fd,
            &mut TestRun {
                data: &mut mem,
                repeat: 1,
                ..Default::default()
            },
        );
        match r {
            Ok(r) if r.retval == c.want => {}
            Ok(r) => t.failures.push(format!(
                "{}: r0 = {:#x}, expected {:#x}",
                c.name, r.retval, c.want
            )),
            Err(e) => t.failures.push(format!("{}: run: {e:?}", c.name)),
        }
        t.ran += 1;
        assert_eq!(syscall::close(fd), Ok(()));
    }
    t
}

/// A wrong analysis can turn a loop counter's compare into one that never matches: the run
/// would then never end. Fail the whole test binary instead after a generous bound.
fn watchdog() {
    std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_secs(120));
        eprintln!("zext_rnd: a program did not finish within 120 s (a hi32 read was missed?)");
        std::process::exit(101);
    });
}

#[test]
fn rnd_hi32_corpus_passes_in_both_engines() {
    kbpf_shim::host::install();
    watchdog();
    let cases = corpus();
    assert!(cases.len() > 280, "{}", cases.len());
    let mut seen = Vec::new();
    for jit in [false, true] {
        if jit {
            kbpf::jit::register(&kbpf_jit::X86_JIT);
            // The x86-64 JIT zero-extends in hardware.
            assert!(!kbpf::jit::needs_zext());
        }
        for needs_zext in [false, true] {
            let t = run_corpus(&cases, jit, needs_zext);
            assert!(
                t.failures.is_empty(),
                "jit={jit} zext={needs_zext}: {:#?}",
                t.failures
            );
            // Most of the suite verifies, and many programs have 32-bit definitions.
            assert!(t.ran > 280, "jit={jit} zext={needs_zext}: ran {}", t.ran);
            assert!(t.grown > 50, "jit={jit} zext={needs_zext}: {t:?}");
            seen.push(t.grown);
        }
    }
    // Forcing zero extension grows at least as many programs as randomising alone.
    assert!(seen[1] >= seen[0] && seen[3] >= seen[2], "{seen:?}");
}

#[test]
fn rnd_hi32_randomises_only_what_nothing_reads() {
    kbpf_shim::host::install();
    // w2's upper half is never read (w0 = w2 reads 32 bits): randomised. w0's is (exit).
    let insns = assemble("mov32 %r2, 5\nmov32 %r0, %r2\nexit\n").unwrap();
    let mut attr = ProgLoadAttr::new(ProgType::RawBuffer, &insns).with_ctx_size(0);
    attr.flags |= ProgFlags::TEST_RND_HI32;
    let fd = syscall::prog_load(&attr).unwrap();
    let x = syscall::prog_get(fd).unwrap().insns().to_vec();
    assert_eq!(x.len(), 6, "{x:?}");
    assert_eq!((x[0], x[4], x[5]), (insns[0], insns[1], insns[2]));
    // AX = rand; AX <<= 32; r2 |= AX.
    assert_eq!(
        (x[1].dst(), x[2].dst(), x[3].dst(), x[3].src()),
        (11, 11, 2, 11)
    );
    let r = syscall::prog_test_run(
        fd,
        &mut TestRun {
            data: &mut [],
            repeat: 1,
            ..Default::default()
        },
    );
    assert_eq!(r.map(|r| r.retval), Ok(5));
    assert_eq!(syscall::close(fd), Ok(()));
    // Without the flag, and with x86-64's default (no zero extension), nothing changes.
    let fd = syscall::prog_load(&ProgLoadAttr::new(ProgType::RawBuffer, &insns).with_ctx_size(0))
        .unwrap();
    assert_eq!(syscall::prog_get(fd).unwrap().insns(), &insns[..]);
    assert_eq!(syscall::close(fd), Ok(()));
}
