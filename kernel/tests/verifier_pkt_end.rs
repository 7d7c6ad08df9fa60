//! A packet pointer proven at or beyond `data_end` (`mark_pkt_end` in Linux 6.18): reads
//! through it are refused with `EINVAL` and "offset is outside of the packet" (not the
//! `EACCES` of an access past a proven range), only the compared register is marked, a second
//! comparison the mark decides explores one direction (`is_pkt_ptr_branch_taken`), and
//! pruning treats the marks as equal only to themselves (`regsafe`).

use kbpf::Errno;
use kbpf::insn::{Insn, assemble};
use kbpf::map::MapAttr;
use kbpf::uapi::ProgType;
use kbpf::verifier::state::{Reg, RegType};
use kbpf::verifier::{VerifierEnv, VerifyError, verify};

fn no_maps(_: u32) -> Option<MapAttr> {
    None
}

/// `data`/`data_end` into R2/R3, R4 = data + 8, then `rest`.
fn run(ty: ProgType, rest: &str) -> Result<(), VerifyError> {
    let pro = match ty {
        ProgType::Xdp => "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\n",
        ProgType::SkReuseport => "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\n",
        _ => "ldxw %r2, [%r1+76]\nldxw %r3, [%r1+80]\n",
    };
    let asm = format!("{pro}mov %r4, %r2\nadd %r4, 8\n{rest}");
    let insns: Vec<Insn> = assemble(&asm).unwrap_or_else(|e| panic!("{e}\n{asm}"));
    let env = VerifierEnv {
        prog_type: ty,
        maps: &no_maps,
        ctx_size: 0,
        privileged: false,
        allow_loops: true,
        expected_attach_type: None,
    };
    verify(&insns, &env).map(|_| ())
}

fn refused(ty: ProgType, rest: &str, errno: Errno, fragment: &str) -> VerifyError {
    let e = run(ty, rest).expect_err(rest);
    assert_eq!(e.errno, errno, "{rest}\n{}", e.log);
    assert!(
        e.log.contains(fragment),
        "{rest}\nwant {fragment:?} in\n{}",
        e.log
    );
    e
}

/// Each comparison, in both operand orders, on the direction that proves `pkt + 8` past
/// (or at) the end: a read through it, even before the checked length, is `EINVAL`.
#[test]
fn read_through_a_pointer_at_or_beyond_the_end_is_einval() {
    let bad_on_jump = [
        "jgt %r4, %r3",
        "jge %r4, %r3",
        "jlt %r3, %r4",
        "jle %r3, %r4",
    ];
    let bad_on_fall = [
        "jle %r4, %r3",
        "jlt %r4, %r3",
        "jge %r3, %r4",
        "jgt %r3, %r4",
    ];
    for ty in [ProgType::Xdp, ProgType::SchedCls, ProgType::SkReuseport] {
        for cmp in bad_on_jump {
            let rest = format!("{cmp}, +2\nmov %r0, 0\nexit\nldxb %r0, [%r4-8]\nexit");
            let e = refused(
                ty,
                &rest,
                Errno::EINVAL,
                "R4 offset is outside of the packet",
            );
            assert!(!e.log.contains("invalid access to packet"), "{}", e.log);
        }
        for cmp in bad_on_fall {
            let rest = format!("{cmp}, +2\nldxb %r0, [%r4-1]\nexit\nmov %r0, 0\nexit");
            refused(
                ty,
                &rest,
                Errno::EINVAL,
                "R4 offset is outside of the packet",
            );
        }
    }
}

/// The good direction of the same comparisons keeps the proven range.
#[test]
fn the_good_direction_reads_within_the_range() {
    for cmp in ["jgt %r4, %r3", "jlt %r3, %r4"] {
        let rest = format!("{cmp}, +2\nldxb %r0, [%r4-1]\nexit\nmov %r0, 0\nexit");
        assert!(run(ProgType::Xdp, &rest).is_ok(), "{rest}");
    }
}

/// Only the compared register is marked: the base it was copied from keeps range 0 and gets
/// the ordinary `EACCES`.
#[test]
fn only_the_compared_register_is_marked() {
    refused(
        ProgType::SchedCls,
        "jgt %r4, %r3, +2\nmov %r0, 0\nexit\nldxb %r0, [%r2+0]\nexit",
        Errno::EACCES,
        "invalid access to packet, off=0 size=1, R2(id=0,off=0,r=0)",
    );
}

/// After `pkt > end`, `pkt > end` again is certain: its fall-through (an unchecked read) is
/// never explored; `pkt <= end` is certainly false, so its fall-through is.
#[test]
fn the_mark_decides_a_second_comparison() {
    let first = "jgt %r4, %r3, +2\nmov %r0, 0\nexit\n";
    let again = format!("{first}jgt %r4, %r3, +1\nldxb %r0, [%r2+0]\nmov %r0, 0\nexit");
    assert!(run(ProgType::Xdp, &again).is_ok(), "{again}");
    let flipped = format!("{first}jle %r4, %r3, +1\nldxb %r0, [%r2+0]\nmov %r0, 0\nexit");
    refused(
        ProgType::Xdp,
        &flipped,
        Errno::EACCES,
        "invalid access to packet",
    );
    // At the end (`>=`) does not decide `>`: both directions, the good one with a range.
    let at = "jge %r4, %r3, +2\nmov %r0, 0\nexit\n\
              jgt %r4, %r3, +1\nldxb %r0, [%r4-1]\nmov %r0, 0\nexit";
    assert!(run(ProgType::Xdp, at).is_ok(), "{at}");
}

/// `regsafe`: an at/beyond-the-end mark covers only itself.
#[test]
fn pruning_matches_marks_exactly() {
    let mut at = Reg::ptr(RegType::PtrToPacket, 8);
    at.range = -1;
    let mut beyond = at;
    beyond.range = -2;
    let mut ranged = at;
    ranged.range = 8;
    assert!(at.subsumes(&at));
    assert!(!at.subsumes(&beyond));
    assert!(!beyond.subsumes(&at));
    assert!(!at.subsumes(&ranged));
    assert!(!ranged.subsumes(&at));
}
