//! Scenario tests for the list patcher: kernel-scenarios.md §4 (IP-01 … IP-20), each
//! jump-landing rule of the module doc, and the linearize error paths.

use kbpf::Errno;
use kbpf::insn::*;
use kbpf::patch::baseline::{ArrayProg, patch_insn_single};
use kbpf::patch::{FuncInfo, LineInfo, NodeId, Origin, PatchList, VerifierEnv};
use kbpf::uapi::{alu, jmp, pseudo};

/// P0: `r0 = 0; if r1 == 0 goto +2; r0 = 1; r0 += 1; exit`.
fn p0() -> Vec<Insn> {
    vec![
        mov64_imm(0, 0),
        jmp_imm(jmp::JEQ, 1, 0, 2),
        mov64_imm(0, 1),
        alu64_imm(alu::ADD, 0, 1),
        exit(),
    ]
}

/// P1: `r0 = 0; r0 += 1; if r0 < 10 goto -2; exit`.
fn p1() -> Vec<Insn> {
    vec![
        mov64_imm(0, 0),
        alu64_imm(alu::ADD, 0, 1),
        jmp_imm(jmp::JLT, 0, 10, -2),
        exit(),
    ]
}

fn list(p: &[Insn]) -> PatchList<()> {
    PatchList::new(p).unwrap()
}

fn n(i: u32) -> NodeId {
    NodeId::orig(i)
}

fn lin<A: Clone>(l: &PatchList<A>) -> Vec<Insn> {
    l.linearize(&mut Vec::new(), None).unwrap()
}

/// Index a jump at `pc` lands on.
fn lands(p: &[Insn], pc: usize) -> i64 {
    let op = decode(p, pc).unwrap();
    branch_target(&op, pc).unwrap()
}

fn abc() -> [Insn; 3] {
    [mov64_imm(2, 1), mov64_imm(3, 2), mov64_imm(4, 3)]
}

#[test]
fn ip01_replace_in_a_jump_span() {
    let mut l = list(&p0());
    l.replace(n(2), &abc()).unwrap();
    let p = lin(&l);
    assert_eq!(p.len(), 7);
    assert_eq!(p[1].off, 4);
    assert_eq!(lands(&p, 1), 6);
    assert_eq!(p[6], exit());
    assert_eq!(p[5], alu64_imm(alu::ADD, 0, 1));
    // The kernel-style baseline agrees.
    let mut b = p0();
    patch_insn_single(&mut b, &mut [], 2, &abc()).unwrap();
    assert_eq!(b, p);
}

#[test]
fn ip02_back_jump_to_replaced_lands_on_first_patch_insn() {
    let mut l = list(&p1());
    let x = mov64_imm(5, 5);
    l.replace(n(1), &[x, alu64_imm(alu::ADD, 0, 1)]).unwrap();
    let p = lin(&l);
    assert_eq!(p.len(), 5);
    assert_eq!(p[3].off, -3);
    assert_eq!(p[lands(&p, 3) as usize], x);
}

#[test]
fn ip03_replaced_target_runs_the_patch() {
    let mut l = list(&p0());
    l.replace(n(4), &[mov64_imm(0, 2), exit()]).unwrap();
    let p = lin(&l);
    assert_eq!(p[1].off, 2);
    assert_eq!(p[lands(&p, 1) as usize], mov64_imm(0, 2));
}

#[test]
fn ip04_single_insn_patch_is_a_substitution() {
    let mut l = list(&p0());
    l.replace(n(2), &[mov64_imm(0, 9)]).unwrap();
    let mut want = p0();
    want[2] = mov64_imm(0, 9);
    assert_eq!(lin(&l), want);
}

#[test]
fn ip05_jump_inside_a_patch_is_kept() {
    let mut l = list(&p0());
    let buf = [jmp_imm(jmp::JGT, 2, 5, 1), mov64_imm(0, 3), mov64_imm(0, 1)];
    l.replace(n(2), &buf).unwrap();
    let p = lin(&l);
    assert_eq!(&p[2..5], &buf);
    // A buffer jump to just after the buffer lands on the instruction that followed it.
    let mut l = list(&p0());
    l.replace(n(2), &[jmp_imm(jmp::JEQ, 3, 0, 1), mov64_imm(0, 1)])
        .unwrap();
    l.replace(n(3), &[mov64_imm(6, 6), alu64_imm(alu::ADD, 0, 1)])
        .unwrap();
    let p = lin(&l);
    assert_eq!(p[lands(&p, 2) as usize], mov64_imm(6, 6));
    // Outside the buffer: EINVAL, list unchanged.
    assert_eq!(l.replace(n(0), &[ja(3)]), Err(Errno::EINVAL));
    assert_eq!(lin(&l), p);
    // "After the buffer" with nothing after it.
    assert_eq!(l.replace(n(4), &[ja(0)]), Err(Errno::EINVAL));
}

/// A program whose jump at 0 spans `span` instructions, with `j` as the jump.
fn long_span(j: Insn, span: usize) -> Vec<Insn> {
    let mut p = vec![j];
    p.extend((0..span).map(|i| mov64_imm(1, i as i32)));
    p.push(exit());
    p
}

#[test]
fn ip06_overflowing_offset_is_erange_and_changes_nothing() {
    let p = long_span(ja(32_760), 32_760);
    let mut l = list(&p);
    let patch: Vec<Insn> = (0..16).map(|i| mov64_imm(2, i)).collect();
    l.replace(n(100), &patch).unwrap();
    let mut li = vec![LineInfo::default()];
    assert_eq!(l.linearize(&mut li, None), Err(Errno::ERANGE));
    assert_eq!(li, [LineInfo::default()]);
    // The baseline's probe pass refuses too and leaves the program as it was.
    let mut b = p.clone();
    assert_eq!(
        patch_insn_single(&mut b, &mut [], 100, &patch),
        Err(Errno::ERANGE)
    );
    assert_eq!(b, p);
    // Deleting the patch again makes it fit: the list was left usable.
    let mut cur = l.cursor();
    let mut extra = Vec::new();
    while let Some(id) = cur.next(&l) {
        if l.origin(id) == Some(Origin::Inserted) {
            extra.push(id);
        }
    }
    for id in extra {
        l.delete(id).unwrap();
    }
    let mut want = p.clone();
    want[100] = mov64_imm(2, 0);
    assert_eq!(lin(&l), want);
}

#[test]
fn ip07_ja32_takes_the_same_insert() {
    let p = long_span(ja32(32_760), 32_760);
    let mut l = list(&p);
    let patch: Vec<Insn> = (0..16).map(|i| mov64_imm(2, i)).collect();
    l.replace(n(100), &patch).unwrap();
    let out = lin(&l);
    assert_eq!(out[0], ja32(32_775));
    let mut b = p;
    patch_insn_single(&mut b, &mut [], 100, &patch).unwrap();
    assert_eq!(b, out);
}

/// Main: `r1 = 1; call sub; call helper 5; call kfunc 7; r0 = 0; exit`; sub at 6:
/// `r0 = 1; exit`.
fn with_subprog() -> Vec<Insn> {
    vec![
        mov64_imm(1, 1),
        call_local(4),
        call_helper(5),
        Insn::new(call_helper(0).code, 0, pseudo::KFUNC_CALL, 0, 7),
        mov64_imm(0, 0),
        exit(),
        mov64_imm(0, 1),
        exit(),
    ]
}

/// Instructions, subprogram starts, function info, line info, aux.
type Linearized = (Vec<Insn>, Vec<u32>, Vec<FuncInfo>, Vec<LineInfo>, Vec<u32>);

fn linearize_env(l: &PatchList<u32>, starts: &[u32], lines: &[LineInfo]) -> Linearized {
    let mut s = starts.to_vec();
    let mut f: Vec<FuncInfo> = starts
        .iter()
        .enumerate()
        .map(|(k, &o)| FuncInfo {
            insn_off: o,
            type_id: 10 + k as u32,
        })
        .collect();
    let mut li = lines.to_vec();
    let mut aux = Vec::new();
    let p = l
        .linearize(
            &mut li,
            Some(VerifierEnv {
                aux: &mut aux,
                subprog_starts: &mut s,
                func_info: &mut f,
            }),
        )
        .unwrap();
    (p, s, f, li, aux)
}

#[test]
fn ip08_call_and_subprog_start_move_helpers_do_not() {
    let p = with_subprog();
    let mut l: PatchList<u32> = PatchList::new(&p).unwrap();
    l.replace(n(4), &abc()).unwrap();
    let (out, starts, funcs, _, _) = linearize_env(&l, &[0, 6], &[]);
    assert_eq!(out[1], call_local(6));
    assert_eq!(starts, [0, 8]);
    assert_eq!(funcs[1].insn_off, 8);
    assert_eq!(out[2], p[2]);
    assert_eq!(out[3], p[3]);
    let mut b = ArrayProg {
        insns: p.clone(),
        aux: vec![0u32; p.len()],
        subprog_starts: vec![0, 6],
        ..Default::default()
    };
    b.patch_insn_data(4, &abc()).unwrap();
    assert_eq!(b.insns, out);
    assert_eq!(b.subprog_starts, starts);
}

#[test]
fn ip09_backward_call_shrinks() {
    // Main calls sub at 4; sub calls main's helper function at 2 backwards.
    let p = vec![
        call_local(3),
        exit(),
        mov64_imm(0, 1),
        exit(),
        mov64_imm(1, 1),
        call_local(-4),
        exit(),
    ];
    let mut l: PatchList<u32> = PatchList::new(&p).unwrap();
    l.replace(n(3), &[mov64_imm(0, 2), exit()]).unwrap();
    let (out, starts, ..) = linearize_env(&l, &[0, 2, 4], &[]);
    assert_eq!(out[0], call_local(4));
    assert_eq!(out[6], call_local(-5));
    assert_eq!(lands(&out, 6), 2);
    assert_eq!(starts, [0, 2, 5]);
}

#[test]
fn ip10_delete_in_a_jump_span() {
    let mut l = list(&p0());
    l.delete(n(3)).unwrap();
    let p = lin(&l);
    assert_eq!(p.len(), 4);
    assert_eq!(p[1].off, 1);
    assert_eq!(p[3], exit());
    let mut b = ArrayProg {
        insns: p0(),
        aux: vec![(); 5],
        ..Default::default()
    };
    b.remove_insns(3, 1).unwrap();
    assert_eq!(b.insns, p);
}

#[test]
fn ip11_jump_to_deleted_lands_on_next_live() {
    let mut l2 = list(&p0());
    l2.replace(n(4), &[mov64_imm(0, 7), exit()]).unwrap();
    l2.delete(n(4)).unwrap();
    let p = lin(&l2);
    assert_eq!(p[lands(&p, 1) as usize], exit());
    // A chain of deletions: the successor of a deleted node deleted later too.
    let mut l = list(&p0());
    l.delete(n(2)).unwrap();
    l.delete(n(3)).unwrap();
    l.replace(n(1), &[jmp_imm(jmp::JEQ, 1, 0, 0)]).unwrap();
    l.set_target(n(1), n(2)).unwrap();
    let p = lin(&l);
    assert_eq!(p, [mov64_imm(0, 0), jmp_imm(jmp::JEQ, 1, 0, 0), exit()]);
    // Nothing live after the target: EINVAL.
    let mut l = list(&[ja(0), mov64_imm(0, 0)]);
    l.delete(n(1)).unwrap();
    assert_eq!(l.linearize(&mut Vec::new(), None), Err(Errno::EINVAL));
}

#[test]
fn ip12_insert_before_keeps_jumps_on_the_original() {
    let mut l = list(&p0());
    let span = l
        .insert_before(n(4), &[mov64_imm(0, 5), mov64_imm(0, 6)])
        .unwrap();
    assert_eq!(l.origin(span.first), Some(Origin::Inserted));
    let p = lin(&l);
    assert_eq!(p.len(), 7);
    assert_eq!(lands(&p, 1), 6);
    assert_eq!(p[6], exit());
    let mut b = ArrayProg {
        insns: p0(),
        aux: vec![(); 5],
        ..Default::default()
    };
    b.insert_before(4, &[mov64_imm(0, 5), mov64_imm(0, 6)])
        .unwrap();
    assert_eq!(b.insns, p);
}

#[test]
fn ip13_replace_with_new_then_original_runs_new_code() {
    let mut l = list(&p0());
    l.replace(n(4), &[mov64_imm(0, 5), mov64_imm(0, 6), exit()])
        .unwrap();
    let p = lin(&l);
    assert_eq!(lands(&p, 1), 4);
    assert_eq!(p[4], mov64_imm(0, 5));
}

#[test]
fn ip14_several_passes_on_one_list_equal_sequential_kernel_patches() {
    let mut prog = Vec::new();
    for i in 0..10 {
        prog.push(jmp_imm(jmp::JGT, 1, i, 1));
        prog.push(mov64_imm(0, i));
    }
    prog.push(exit());
    let mut l = list(&prog);
    // Pass 1: blind every `mov` (replace with three instructions).
    let mut cur = l.cursor();
    while let Some(id) = cur.next(&l) {
        let i = l.insn(id).unwrap();
        if i.code == mov64_imm(0, 0).code {
            l.replace(
                id,
                &[mov64_imm(11, i.imm ^ 7), alu64_imm(alu::XOR, 11, 7), i],
            )
            .unwrap();
        }
    }
    // Pass 2: delete the instruction at current index 5 (one of the new ones); pass 3: replace
    // at index 1.
    let ids: Vec<NodeId> = l.iter().collect();
    l.delete(ids[5]).unwrap();
    l.replace(ids[1], &[mov64_imm(9, 9), mov64_imm(11, 1)])
        .unwrap();
    let mut b = ArrayProg {
        insns: prog.clone(),
        aux: vec![(); prog.len()],
        ..Default::default()
    };
    let mut pos = 0;
    while pos < b.insns.len() {
        let i = b.insns[pos];
        if i.code == mov64_imm(0, 0).code && i.dst() == 0 {
            b.patch_insn_data(
                pos as u32,
                &[mov64_imm(11, i.imm ^ 7), alu64_imm(alu::XOR, 11, 7), i],
            )
            .unwrap();
            pos += 3;
        } else {
            pos += 1;
        }
    }
    b.remove_insns(5, 1).unwrap();
    b.patch_insn_data(1, &[mov64_imm(9, 9), mov64_imm(11, 1)])
        .unwrap();
    assert_eq!(lin(&l), b.insns);
}

#[test]
fn ip15_same_length_still_relocates() {
    let mut l = list(&p0());
    l.delete(n(2)).unwrap();
    l.insert_before(n(0), &[mov64_imm(5, 5)]).unwrap();
    let p = lin(&l);
    assert_eq!(p.len(), 5);
    assert_eq!(p[2].off, 1);
    assert_eq!(p[lands(&p, 2) as usize], exit());
}

#[test]
fn ip16_ld_imm64_moves_as_a_unit() {
    let mut prog = vec![ja(0)];
    prog.extend(ld_imm64(1, 0x1234_5678_9abc));
    prog.push(exit());
    let mut l = list(&prog);
    assert_eq!(l.delete(n(2)), Err(Errno::EINVAL));
    assert_eq!(
        l.insert_before(n(2), &[mov64_imm(0, 0)]),
        Err(Errno::EINVAL)
    );
    assert_eq!(l.set_target(n(0), n(2)), Err(Errno::EINVAL));
    // A jump into the second slot, or a broken pair, is refused at build.
    assert_eq!(
        PatchList::<()>::new(&[ja(1), prog[1], prog[2], exit()]).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        PatchList::<()>::new(&[prog[1], exit()]).err(),
        Some(Errno::EINVAL)
    );
    // Replacing only the first half orphans the second: linearize refuses.
    let mut half = list(&prog);
    half.replace(n(1), &[mov64_imm(1, 1)]).unwrap();
    assert_eq!(half.linearize(&mut Vec::new(), None), Err(Errno::EINVAL));
    // Blinding-style, both halves: fine.
    l.replace(n(1), &[mov64_imm(11, 1), mov64_reg(1, 11)])
        .unwrap();
    l.replace(n(2), &[mov32_imm(11, 2), alu64_imm(alu::OR, 1, 11)])
        .unwrap();
    assert_eq!(lin(&l).len(), 6);
    // Deleting the first slot takes the pair.
    let mut d = list(&prog);
    d.delete(n(1)).unwrap();
    assert_eq!(lin(&d), [ja(0), exit()]);
    // ld_imm64 with BPF_PSEUDO_FUNC is relocated like a call.
    let f = ld_imm64_raw(2, pseudo::FUNC, 2);
    let mut pf = list(&[f[0], f[1], exit(), mov64_imm(0, 0), exit()]);
    pf.replace(n(2), &[mov64_imm(0, 1), exit()]).unwrap();
    assert_eq!(lin(&pf)[0].imm, 3);
}

#[test]
fn ip17_original_jump_inside_its_patch_uses_set_target() {
    let mut l = list(&p0());
    let t = l.target(n(1)).unwrap();
    // The original jump first, then an extra instruction: its old offset would leave the
    // buffer, so it is refused; the node keeps its target with set_target.
    assert_eq!(
        l.replace(n(1), &[p0()[1], mov64_imm(7, 7)]),
        Err(Errno::EINVAL)
    );
    let span = l
        .replace(n(1), &[jmp_imm(jmp::JEQ, 1, 0, -1), mov64_imm(7, 7)])
        .unwrap();
    l.set_target(span.first, t).unwrap();
    let p = lin(&l);
    assert_eq!(p[lands(&p, 1) as usize], exit());
    assert_eq!(p[1].off, 3);
    assert_eq!(l.set_target(span.last, t), Err(Errno::EINVAL)); // not a jump
}

fn line(o: u32) -> LineInfo {
    LineInfo {
        insn_off: o,
        file_name_off: 1,
        line_off: 100 + o,
        line_col: o << 10,
    }
}

#[test]
fn ip18_line_info_shifts_after_the_patch() {
    let mut l: PatchList<u32> = PatchList::new(&p0()).unwrap();
    l.replace(n(2), &abc()).unwrap();
    let lines = [line(0), line(2), line(3), line(4)];
    let (.., li, _) = linearize_env(&l, &[0], &lines);
    let offs: Vec<u32> = li.iter().map(|x| x.insn_off).collect();
    assert_eq!(offs, [0, 2, 5, 6]);
    assert_eq!(li[1].line_off, 102);
    // Deleting an instruction with its own entry hands the entry to the next one if that has
    // none (the kernel's bpf_adj_linfo_after_remove), else drops it.
    let mut l: PatchList<u32> = PatchList::new(&p0()).unwrap();
    l.delete(n(2)).unwrap();
    let (.., li, _) = linearize_env(&l, &[0], &[line(0), line(2), line(4)]);
    assert_eq!(
        li.iter()
            .map(|x| (x.insn_off, x.line_off))
            .collect::<Vec<_>>(),
        [(0, 100), (2, 102), (3, 104)]
    );
    let (.., li, _) = linearize_env(&l, &[0], &[line(0), line(2), line(3)]);
    assert_eq!(
        li.iter()
            .map(|x| (x.insn_off, x.line_off))
            .collect::<Vec<_>>(),
        [(0, 100), (2, 103)]
    );
}

#[test]
fn ip19_aux_data_stays_with_the_original() {
    let aux: Vec<u32> = (1..=5).collect();
    let mut l = PatchList::with_aux(&p0(), aux.clone()).unwrap();
    l.replace(n(2), &abc()).unwrap();
    l.insert_before(n(4), &[mov64_imm(0, 0)]).unwrap();
    *l.aux_mut(n(0)).unwrap() = 50;
    let (.., out) = linearize_env(&l, &[0], &[]);
    assert_eq!(out, [50, 2, 3, 0, 0, 4, 0, 5]);
    // The kernel leaves the original's entry on the patch's last slot instead.
    let mut b = ArrayProg {
        insns: p0(),
        aux,
        ..Default::default()
    };
    b.patch_insn_data(2, &abc()).unwrap();
    assert_eq!(b.aux, [1, 2, 0, 0, 3, 4, 5]);
}

#[test]
fn ip20_many_expansions_through_one_list() {
    // 50 000 expansions (both `mov`s of each group; the benchmark does 1M); every jump still
    // lands where it should.
    let mut prog = Vec::new();
    for i in 0..25_000 {
        prog.push(jmp_imm(jmp::JNE, 1, i, 2));
        prog.push(mov64_imm(0, i));
        prog.push(mov64_imm(2, i));
    }
    prog.push(exit());
    let mut l = list(&prog);
    let mut cur = l.cursor();
    while let Some(id) = cur.next(&l) {
        let i = l.insn(id).unwrap();
        if i.code == mov64_imm(0, 0).code {
            l.replace(
                id,
                &[mov64_imm(11, i.imm ^ 3), alu64_imm(alu::XOR, 11, 3), i],
            )
            .unwrap();
        }
    }
    let p = lin(&l);
    assert_eq!(p.len(), 175_001);
    for k in 0..25_000 {
        let pc = k * 7;
        assert_eq!(p[pc].off, 6);
        assert_eq!(lands(&p, pc), pc as i64 + 7);
    }
}

#[test]
fn fully_deleted_subprogram_is_dropped_with_its_func_info() {
    let p = vec![
        call_local(3), // to the third subprog at 4
        exit(),
        mov64_imm(0, 1), // subprog 1 at 2
        exit(),
        mov64_imm(0, 2), // subprog 2 at 4
        exit(),
    ];
    let mut l: PatchList<u32> = PatchList::new(&p).unwrap();
    l.delete(n(2)).unwrap();
    l.delete(n(3)).unwrap();
    let lines = [line(0), line(2), line(4)];
    let (out, starts, funcs, li, _) = linearize_env(&l, &[0, 2, 4], &lines);
    assert_eq!(out[0], call_local(1));
    assert_eq!(starts, [0, 2]);
    assert_eq!(
        funcs,
        [
            FuncInfo {
                insn_off: 0,
                type_id: 10
            },
            FuncInfo {
                insn_off: 2,
                type_id: 12
            }
        ]
    );
    assert_eq!(
        li.iter().map(|x| x.line_off).collect::<Vec<_>>(),
        [100, 104]
    );
}

#[test]
fn code_inserted_at_the_entry_belongs_to_the_first_subprog_and_line() {
    let mut l: PatchList<u32> = PatchList::new(&p1()).unwrap();
    l.insert_before(n(0), &[mov64_imm(6, 0)]).unwrap();
    let (out, starts, _, li, _) = linearize_env(&l, &[0], &[line(0), line(2)]);
    assert_eq!(out[0], mov64_imm(6, 0));
    assert_eq!(starts, [0]);
    assert_eq!(li.iter().map(|x| x.insn_off).collect::<Vec<_>>(), [0, 3]);
    // The back jump still lands on the original `r0 += 1`.
    assert_eq!(lands(&out, 3), 2);
}

#[test]
fn cursor_skips_its_own_output_and_deleted_nodes() {
    let mut l = list(&p0());
    let mut seen = Vec::new();
    let mut cur = l.cursor();
    while let Some(id) = cur.next(&l) {
        seen.push(id);
        if id == n(1) {
            l.replace(id, &[jmp_imm(jmp::JEQ, 1, 0, 1), mov64_imm(8, 8)])
                .unwrap();
            l.delete(n(2)).unwrap();
            l.insert_before(n(3), &[mov64_imm(9, 9)]).unwrap();
        }
    }
    assert_eq!(seen, [n(0), n(1), n(3), n(4)]);
    assert_eq!(l.len(), 6);
    assert_eq!(l.iter().count(), 6);
    assert_eq!(l.origin(n(2)), Some(Origin::Deleted));
    assert_eq!(l.insn(n(2)), None);
    assert_eq!(l.replace(n(2), &[exit()]), Err(Errno::EINVAL));
}

#[test]
fn malformed_side_tables_are_einval_and_write_nothing() {
    let l: PatchList<u32> = PatchList::new(&p0()).unwrap();
    let mut li = vec![line(2), line(1)];
    assert_eq!(l.linearize(&mut li, None), Err(Errno::EINVAL));
    assert_eq!(li, [line(2), line(1)]);
    let mut li = vec![line(9)];
    assert_eq!(l.linearize(&mut li, None), Err(Errno::EINVAL));
    let (mut s, mut f, mut a) = (vec![0, 3], vec![FuncInfo::default()], vec![7u32]);
    let r = l.linearize(
        &mut Vec::new(),
        Some(VerifierEnv {
            aux: &mut a,
            subprog_starts: &mut s,
            func_info: &mut f,
        }),
    );
    assert_eq!(r, Err(Errno::EINVAL));
    assert_eq!((s, a), (vec![0, 3], vec![7]));
    assert_eq!(
        PatchList::<()>::with_aux(&p0(), vec![(); 2]).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(PatchList::<()>::new(&[ja(5)]).err(), Some(Errno::EINVAL));
}
