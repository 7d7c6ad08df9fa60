//! `.BTF.ext` line info through the load's rewrites (the patch list carries it, deletions
//! included): each entry still names the instruction it named, as the kernel's
//! `bpf_adj_linfo` / `bpf_adj_linfo_after_remove` keep it; `prog dump xlated` and verifier logs
//! print the source lines.

use kbpf::insn::{exit, jmp_imm, mov64_imm};
use kbpf::patch::LineInfo;
use kbpf::syscall;
use kbpf::uapi::{ProgType, jmp};
use kbpf::{Errno, ProgLoadAttr};
use kbpf_shim::conformance::Engine;
use kbpf_shim::demo::PARSER_O;
use kbpf_shim::elf::{LoadOpts, Object};

fn li(insn_off: u32, line: u32) -> LineInfo {
    LineInfo {
        insn_off,
        file_name_off: 0,
        line_off: 0,
        line_col: line << 10,
    }
}

#[test]
fn entries_follow_their_instructions_through_inserts() {
    kbpf_shim::host::install();
    // With the JIT registered, array-map lookups are inlined: the load inserts instructions.
    Engine::Jit.select();
    let obj = Object::parse(PARSER_O).unwrap();
    let defs = obj.progs.clone();
    let loaded = obj.load(&LoadOpts::default()).unwrap();
    let mut grew = false;
    for p in &loaded.progs {
        let def = defs.iter().find(|d| d.name == p.name).unwrap();
        let prog = syscall::prog_get(p.fd).unwrap();
        let (xl, lines) = (prog.insns(), prog.line_info());
        grew |= xl.len() > def.insns.len();
        assert_eq!(
            lines.len(),
            def.line_info.len(),
            "{}: an entry was lost",
            p.name
        );
        assert_eq!(lines[0].insn_off, 0);
        for (orig, now) in def.line_info.iter().zip(lines) {
            assert_eq!((orig.line_off, orig.line_col), (now.line_off, now.line_col));
            assert!((now.insn_off as usize) < xl.len());
            let was = def.insns[orig.insn_off as usize];
            // A helper call may be inlined (its first instruction is the inlined code's); every
            // other instruction keeps its class where its entry points.
            if was.code != 0x85 {
                assert_eq!(
                    was.code & 7,
                    xl[now.insn_off as usize].code & 7,
                    "{}: entry at {} -> {}",
                    p.name,
                    orig.insn_off,
                    now.insn_off
                );
            }
        }
    }
    assert!(grew, "no program grew: the inserts were not exercised");
    loaded.close();
}

#[test]
fn entries_of_deleted_code_go_and_the_rest_move_up() {
    kbpf_shim::host::install();
    // r0 = 0; if r0 == 0 goto +1; r0 = 1 (dead: removed after verification); exit.
    let insns = [
        mov64_imm(0, 0),
        jmp_imm(jmp::JEQ, 0, 0, 1),
        mov64_imm(0, 1),
        exit(),
    ];
    let lines = [li(0, 10), li(1, 11), li(2, 12), li(3, 13)];
    let attr = ProgLoadAttr::new(ProgType::RawBuffer, &insns).with_line_info(&lines);
    let fd = syscall::prog_load(&attr).unwrap();
    let prog = syscall::prog_get(fd).unwrap();
    let xl = prog.insns();
    assert!(
        xl.len() < insns.len(),
        "the dead instruction was not removed: {xl:?}"
    );
    let got: Vec<(u32, u32)> = prog
        .line_info()
        .iter()
        .map(|l| (l.insn_off, l.line_col >> 10))
        .collect();
    assert!(!got.iter().any(|&(_, line)| line == 12), "{got:?}");
    let exit_at = got.iter().find(|&&(_, line)| line == 13).unwrap().0;
    assert_eq!(xl[exit_at as usize].code, 0x95, "{got:?} on {xl:?}");
    let _ = syscall::close(fd);
}

#[test]
fn malformed_line_info_is_einval() {
    kbpf_shim::host::install();
    let insns = [mov64_imm(0, 0), exit()];
    for lines in [
        vec![li(1, 1)],           // does not start at 0
        vec![li(0, 1), li(0, 2)], // not increasing
        vec![li(0, 1), li(2, 2)], // past the end
    ] {
        let mut log = String::new();
        let attr = ProgLoadAttr::new(ProgType::RawBuffer, &insns).with_line_info(&lines);
        assert_eq!(syscall::prog_load_log(&attr, &mut log), Err(Errno::EINVAL));
        assert!(log.contains("Invalid line_info"), "{log}");
    }
}

#[test]
fn verifier_logs_name_source_lines() {
    let btf_lines = |log: &str| log.lines().filter(|l| l.contains("@ parser.c:")).count();
    let obj = Object::parse(PARSER_O).unwrap();
    let p = obj.prog("parse_tcp").unwrap();
    let log = "12: R1 type=scalar\n13: (85) call\nprocessed 5 insns\n";
    let out = kbpf_shim::elf::annotate(&obj, p, log);
    assert!(btf_lines(&out) >= 1, "{out}");
    assert!(out.ends_with("processed 5 insns\n"), "{out}");
}
