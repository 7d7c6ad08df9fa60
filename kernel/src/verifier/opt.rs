//! Dead-code rewrites after verification, on the load's [`PatchList`]: `bpf_check`'s
//! `opt_hard_wire_dead_code_branches`, `opt_remove_dead_code`, `opt_remove_nops` and
//! `sanitize_dead_code` (`kernel/bpf/verifier.c`).
//!
//! The verifier records which instruction slots some explored path reached
//! ([`super::VerifierOutput::seen`]). What was never reached is dead code, treated by who
//! loads the program, as `bpf_check` splits on `is_priv` — which is `bpf_capable()`, a loader
//! with `CAP_BPF` (not root: [`super::VerifierEnv::privileged`] does not enter into it; in kbpf
//! the `CAP_BPF` loader is the one for which [`super::VerifierEnv::allow_loops`] holds):
//! - with `CAP_BPF` ([`dead_code`] with `bpf_capable`): a conditional jump one of whose
//!   directions was never taken becomes an unconditional `ja` to the other
//!   ([`hard_wire_dead_code_branches`]); every unseen slot is deleted
//!   ([`remove_dead_code`]); then every `ja +0` is deleted ([`remove_nops`]). Jumps to a
//!   deleted instruction land on the next live one (the patch list's rule); subprogram starts,
//!   function and line info follow at [`PatchList::linearize`], which drops the entries whose
//!   instructions were all deleted.
//! - without: every unseen slot becomes `ja -1` ([`sanitize_dead_code`]), a trap that loops
//!   on itself should it ever be reached (speculatively or by a bug); the program keeps its
//!   length and layout.
//!
//! All passes index `seen` by original instruction slot and act on the list nodes of the
//! original slots, so they run before passes that insert code (the kernel runs them right
//! after verification, before `convert_ctx_accesses` and `do_misc_fixups`; single-slot
//! replacements made earlier on the same list, like the load's fix-ups, are fine).

use crate::insn::{Insn, ja};
use crate::patch::{NodeId, Origin, PatchList};
use crate::uapi::{class, jmp};
use crate::{Errno, Result};

/// `BPF_JMP | BPF_JA`.
const JA_CODE: u8 = class::JMP | jmp::JA;

/// Runs the dead-code treatment of `bpf_check` for a loader with (`bpf_capable`) or without
/// `CAP_BPF`. `EINVAL` if `seen` does not have one entry per original slot.
pub fn dead_code<A: Default>(
    list: &mut PatchList<A>,
    seen: &[bool],
    bpf_capable: bool,
) -> Result<()> {
    if bpf_capable {
        hard_wire_dead_code_branches(list, seen)?;
        remove_dead_code(list, seen)?;
        remove_nops(list)
    } else {
        sanitize_dead_code(list, seen)
    }
}

fn check_len<A>(list: &PatchList<A>, seen: &[bool]) -> Result<()> {
    if seen.len() != list.orig_len() {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// `insn_is_cond_jump`: `JMP`/`JMP32` class except `ja`, `call` and `exit` (so `may_goto`
/// counts).
fn is_cond_jump(insn: &Insn) -> bool {
    let op = insn.code & 0xf0;
    match insn.class() {
        class::JMP32 => op != jmp::JA,
        class::JMP => op != jmp::JA && op != jmp::EXIT && op != jmp::CALL,
        _ => false,
    }
}

/// Whether the node a jump targets was seen (an inserted node counts as seen).
fn node_seen<A>(list: &PatchList<A>, seen: &[bool], id: NodeId) -> bool {
    match list.origin(id) {
        Some(Origin::Original(i)) => seen.get(i as usize).copied().unwrap_or(true),
        _ => true,
    }
}

/// `opt_hard_wire_dead_code_branches`: a conditional jump whose fall-through was never seen
/// becomes `ja` to its target; one whose target was never seen becomes `ja +0`.
pub fn hard_wire_dead_code_branches<A: Default>(
    list: &mut PatchList<A>,
    seen: &[bool],
) -> Result<()> {
    check_len(list, seen)?;
    for i in 0..list.orig_len() as u32 {
        let id = NodeId::orig(i);
        let Some(insn) = list.insn(id) else { continue };
        if !is_cond_jump(&insn) {
            continue;
        }
        let Some(target) = list.target(id) else {
            continue;
        };
        let fall_seen = seen.get(i as usize + 1).copied().unwrap_or(true);
        if !fall_seen {
            list.replace(id, &[ja(0)])?;
            list.set_target(id, target)?;
        } else if !node_seen(list, seen, target) {
            list.replace(id, &[ja(0)])?;
        }
    }
    Ok(())
}

/// `opt_remove_dead_code`: deletes every slot no path reached.
pub fn remove_dead_code<A>(list: &mut PatchList<A>, seen: &[bool]) -> Result<()> {
    check_len(list, seen)?;
    for (i, &s) in seen.iter().enumerate() {
        let id = NodeId::orig(i as u32);
        // The second slot of an `ld_imm64` goes with its first.
        if !s && list.insn(id).is_some_and(|insn| insn.code != 0) {
            list.delete(id)?;
        }
    }
    Ok(())
}

/// `opt_remove_nops`: deletes every `ja +0` (a `JMP`-class `ja` landing on the next live
/// instruction, all other fields zero). Each check follows the deleted nodes between the jump
/// and where it lands.
pub fn remove_nops<A>(list: &mut PatchList<A>) -> Result<()> {
    let mut cur = list.cursor();
    while let Some(id) = cur.next(list) {
        let Some(insn) = list.insn(id) else { continue };
        if insn.code != JA_CODE || insn.regs != 0 || insn.imm != 0 {
            continue;
        }
        let lands = list.target(id).and_then(|t| list.resolve(t));
        if lands.is_some() && lands == list.next(id) {
            list.delete(id)?;
        }
    }
    Ok(())
}

/// `sanitize_dead_code`: every slot no path reached becomes `ja -1`.
pub fn sanitize_dead_code<A: Default>(list: &mut PatchList<A>, seen: &[bool]) -> Result<()> {
    check_len(list, seen)?;
    for (i, &s) in seen.iter().enumerate() {
        let id = NodeId::orig(i as u32);
        if !s && list.is_live(id) {
            list.replace(id, &[ja(-1)])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{call_local, exit, jmp_imm, ld_imm64, mov64_imm};
    use crate::patch::{FuncInfo, LineInfo, VerifierEnv};
    use crate::uapi::jmp::{JEQ, JGT};
    use alloc::vec::Vec;

    fn lin(list: &PatchList<()>) -> Vec<Insn> {
        list.linearize(&mut Vec::new(), None).unwrap()
    }

    #[test]
    fn cond_jump_classification() {
        assert!(is_cond_jump(&jmp_imm(JEQ, 1, 0, 1)));
        assert!(!is_cond_jump(&ja(1)));
        assert!(!is_cond_jump(&exit()));
        assert!(!is_cond_jump(&crate::insn::call_helper(1)));
        assert!(!is_cond_jump(&crate::insn::ja32(1)));
        assert!(!is_cond_jump(&mov64_imm(0, 1)));
    }

    #[test]
    fn hard_wire_then_remove_never_taken_target() {
        // 0: if r1 > 5 goto 3; 1: r0 = 1; 2: exit; 3: r0 = 2; 4: exit — target never taken.
        let p = [
            jmp_imm(JGT, 1, 5, 2),
            mov64_imm(0, 1),
            exit(),
            mov64_imm(0, 2),
            exit(),
        ];
        let seen = [true, true, true, false, false];
        let mut l: PatchList<()> = PatchList::new(&p).unwrap();
        dead_code(&mut l, &seen, true).unwrap();
        assert_eq!(lin(&l), [mov64_imm(0, 1), exit()]);
    }

    #[test]
    fn hard_wire_never_taken_fall_through() {
        // 0: if r1 == 0 goto 2; 1: r0 = 1 (dead); 2: r0 = 2; 3: exit.
        let p = [
            jmp_imm(JEQ, 1, 0, 1),
            mov64_imm(0, 1),
            mov64_imm(0, 2),
            exit(),
        ];
        let seen = [true, false, true, true];
        let mut l: PatchList<()> = PatchList::new(&p).unwrap();
        hard_wire_dead_code_branches(&mut l, &seen).unwrap();
        assert_eq!(lin(&l), [ja(1), mov64_imm(0, 1), mov64_imm(0, 2), exit()]);
        remove_dead_code(&mut l, &seen).unwrap();
        assert_eq!(lin(&l), [ja(0), mov64_imm(0, 2), exit()]);
        remove_nops(&mut l).unwrap();
        assert_eq!(lin(&l), [mov64_imm(0, 2), exit()]);
    }

    #[test]
    fn sanitize_keeps_layout_and_traps_both_ld_imm64_slots() {
        let [lo, hi] = ld_imm64(0, 7);
        let p = [jmp_imm(JEQ, 1, 0, 2), lo, hi, mov64_imm(0, 2), exit()];
        let seen = [true, false, false, true, true];
        let mut l: PatchList<()> = PatchList::new(&p).unwrap();
        dead_code(&mut l, &seen, false).unwrap();
        assert_eq!(
            lin(&l),
            [
                jmp_imm(JEQ, 1, 0, 2),
                ja(-1),
                ja(-1),
                mov64_imm(0, 2),
                exit()
            ]
        );
    }

    #[test]
    fn removal_takes_ld_imm64_pairs_and_relocates_jumps() {
        let [lo, hi] = ld_imm64(0, 7);
        // 0: r0 = 0; 1: if r0 == 0 goto 4 (always); 2-3: ld_imm64 (dead); 4: exit.
        let p = [mov64_imm(0, 0), jmp_imm(JEQ, 0, 0, 2), lo, hi, exit()];
        let seen = [true, true, false, false, true];
        let mut l: PatchList<()> = PatchList::new(&p).unwrap();
        dead_code(&mut l, &seen, true).unwrap();
        assert_eq!(lin(&l), [mov64_imm(0, 0), exit()]);
    }

    fn line(off: u32, n: u32) -> LineInfo {
        LineInfo {
            insn_off: off,
            file_name_off: 1,
            line_off: n,
            line_col: n << 10,
        }
    }

    /// Linearizes with the verifier's tables: (insns, subprog starts, func info offsets, line
    /// info as (offset, line)).
    #[allow(clippy::type_complexity)]
    fn lin_env(
        list: &PatchList<()>,
        starts: &[u32],
        lines: &[LineInfo],
    ) -> (Vec<Insn>, Vec<u32>, Vec<u32>, Vec<(u32, u32)>) {
        let mut starts = starts.to_vec();
        let mut funcs: Vec<FuncInfo> = starts
            .iter()
            .map(|&s| FuncInfo {
                insn_off: s,
                type_id: 7,
            })
            .collect();
        let mut lines = lines.to_vec();
        let mut aux = Vec::new();
        let insns = list
            .linearize(
                &mut lines,
                Some(VerifierEnv {
                    aux: &mut aux,
                    subprog_starts: &mut starts,
                    func_info: &mut funcs,
                }),
            )
            .unwrap();
        (
            insns,
            starts,
            funcs.iter().map(|f| f.insn_off).collect(),
            lines.iter().map(|l| (l.insn_off, l.line_off)).collect(),
        )
    }

    /// 0: r0 = 1; 1: if r0 == 1 goto 4 (always); 2-3: dead; 4: call 6; 5: exit;
    /// 6: r0 = 5 (subprogram 1); 7: exit. Line info at 0, 2, 4 and 6.
    fn subprog_prog() -> ([Insn; 8], [bool; 8], [LineInfo; 4]) {
        (
            [
                mov64_imm(0, 1),
                jmp_imm(JEQ, 0, 1, 2),
                mov64_imm(0, 2),
                mov64_imm(0, 3),
                call_local(1),
                exit(),
                mov64_imm(0, 5),
                exit(),
            ],
            [true, true, false, false, true, true, true, true],
            [line(0, 10), line(2, 11), line(4, 12), line(6, 13)],
        )
    }

    #[test]
    fn removal_shifts_subprogs_and_drops_line_info_of_deleted_ranges() {
        let (p, seen, lines) = subprog_prog();
        let mut l: PatchList<()> = PatchList::new(&p).unwrap();
        dead_code(&mut l, &seen, true).unwrap();
        let (insns, starts, funcs, lines) = lin_env(&l, &[0, 6], &lines);
        assert_eq!(
            insns,
            [
                mov64_imm(0, 1),
                call_local(1),
                exit(),
                mov64_imm(0, 5),
                exit()
            ]
        );
        assert_eq!(starts, [0, 3]);
        assert_eq!(funcs, [0, 3]);
        // The entry of the deleted range (line 11) is gone; line 12 now starts at 1.
        assert_eq!(lines, [(0, 10), (1, 12), (3, 13)]);
    }

    #[test]
    fn without_cap_bpf_dead_code_is_trapped_in_place() {
        let (p, seen, lines) = subprog_prog();
        let mut l: PatchList<()> = PatchList::new(&p).unwrap();
        dead_code(&mut l, &seen, false).unwrap();
        let (insns, starts, funcs, out_lines) = lin_env(&l, &[0, 6], &lines);
        let mut want = p;
        want[2] = ja(-1);
        want[3] = ja(-1);
        assert_eq!(insns, want);
        assert_eq!((starts, funcs), (alloc::vec![0, 6], alloc::vec![0, 6]));
        assert_eq!(out_lines, [(0, 10), (2, 11), (4, 12), (6, 13)]);
    }

    #[test]
    fn whole_dead_subprogram_is_dropped_with_its_func_info() {
        // 0: r0 = 1; 1: if r0 == 1 goto 3 (always); 2: call 4 (dead); 3: exit;
        // 4: r0 = 9 (subprogram 1, only called from dead code); 5: exit.
        let p = [
            mov64_imm(0, 1),
            jmp_imm(JEQ, 0, 1, 1),
            call_local(1),
            exit(),
            mov64_imm(0, 9),
            exit(),
        ];
        let seen = [true, true, false, true, false, false];
        let mut l: PatchList<()> = PatchList::new(&p).unwrap();
        dead_code(&mut l, &seen, true).unwrap();
        let (insns, starts, funcs, lines) = lin_env(&l, &[0, 4], &[line(0, 1), line(4, 2)]);
        assert_eq!(insns, [mov64_imm(0, 1), exit()]);
        assert_eq!((starts, funcs), (alloc::vec![0], alloc::vec![0]));
        assert_eq!(lines, [(0, 1)]);
    }

    #[test]
    fn verifier_marks_what_paths_reach() {
        use crate::uapi::ProgType;
        use crate::verifier::{VerifierEnv as Env, verify};
        let [lo, hi] = ld_imm64(0, 2);
        let p = [
            mov64_imm(0, 7),
            jmp_imm(JGT, 0, 10, 3),
            lo,
            hi,
            exit(),
            mov64_imm(0, 2),
            exit(),
        ];
        let out = verify(&p, &Env::new(ProgType::RawBuffer)).unwrap();
        assert_eq!(out.seen, [true, true, true, true, true, false, false]);
    }

    #[test]
    fn keeps_a_ja_that_skips_code() {
        let p = [ja(1), mov64_imm(0, 1), mov64_imm(0, 2), exit()];
        let mut l: PatchList<()> = PatchList::new(&p).unwrap();
        remove_nops(&mut l).unwrap();
        assert_eq!(lin(&l), p);
        assert_eq!(remove_dead_code(&mut l, &[true]), Err(Errno::EINVAL));
    }
}
