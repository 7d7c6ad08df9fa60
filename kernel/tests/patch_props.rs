//! Property tests: the list patcher against the kernel-style one-at-a-time baseline.
//!
//! Random programs (subprograms, conditional jumps, `ja32`, BPF-to-BPF calls, `ld_imm64`
//! including `BPF_PSEUDO_FUNC`, line and function info) get random sequences of edits, applied
//! to a [`PatchList`] and to a [`baseline::ArrayProg`]. After every edit the linearized list
//! must equal the array: instructions (so every jump and call offset), subprogram starts,
//! function info and line info; aux data must be the survivors' in order. Replace and delete
//! are checked against the kernel's functions; insert-before against its array model.
//!
//! Deletions are drawn where the kernel's arithmetic defines "the next live instruction" (no
//! outside jump lands strictly inside the deleted range, no subprogram starts strictly inside
//! it): elsewhere `bpf_remove_insns()` leaves such jumps pointing at unrelated code, which the
//! verifier never exercises because it only removes dead code.

use kbpf::insn::*;
use kbpf::patch::baseline::ArrayProg;
use kbpf::patch::{FuncInfo, LineInfo, NodeId, Origin, PatchList, VerifierEnv};
use kbpf::uapi::{alu, jmp, pseudo};
use proptest::prelude::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Alu,
    Ld,
    LdFunc,
    Cond,
    Ja32,
    Call,
    Helper,
    Exit,
}

/// A random valid program with its side tables; aux tag of slot i is i + 1.
fn gen_prog(seed: u64) -> ArrayProg<u32> {
    let mut rng = Rng(seed | 1);
    let nsub = 1 + rng.below(3);
    let mut kinds: Vec<Vec<Kind>> = Vec::new();
    for _ in 0..nsub {
        let n = 3 + rng.below(12);
        let mut body = Vec::new();
        for _ in 0..n {
            body.push(match rng.below(10) {
                0..=3 => Kind::Alu,
                4 => Kind::Ld,
                5 if nsub > 1 => Kind::LdFunc,
                5 | 6 => Kind::Cond,
                7 => Kind::Ja32,
                8 if nsub > 1 => Kind::Call,
                _ => Kind::Helper,
            });
        }
        body.push(Kind::Exit);
        kinds.push(body);
    }
    let slots = |k: &Kind| {
        if matches!(k, Kind::Ld | Kind::LdFunc) {
            2
        } else {
            1
        }
    };
    let mut starts = Vec::new();
    let mut at = 0u32;
    for body in &kinds {
        starts.push(at);
        at += body.iter().map(slots).sum::<u32>();
    }
    let len = at;
    // Instruction starts (not second slots) per subprogram, for jump targets.
    let mut heads: Vec<Vec<u32>> = Vec::new();
    for (s, body) in kinds.iter().enumerate() {
        let mut pc = starts[s];
        let mut h = Vec::new();
        for k in body {
            h.push(pc);
            pc += slots(k);
        }
        heads.push(h);
    }
    let mut insns = Vec::new();
    for (s, body) in kinds.iter().enumerate() {
        for k in body {
            let pc = insns.len() as i64;
            let rel = |t: u32| (t as i64 - pc - 1) as i32;
            match k {
                Kind::Alu => insns.push(alu64_imm(alu::ADD, rng.below(10) as u8, pc as i32)),
                Kind::Ld => insns.extend(ld_imm64(1, pc as u64 * 3)),
                Kind::LdFunc => {
                    let t = starts[1 + rng.below(nsub - 1)];
                    insns.extend(ld_imm64_raw(2, pseudo::FUNC, rel(t) as u32 as u64));
                }
                Kind::Cond | Kind::Ja32 => {
                    let t = heads[s][rng.below(heads[s].len())];
                    insns.push(match k {
                        Kind::Cond => jmp_imm(jmp::JGT, 1, pc as i32, rel(t) as i16),
                        _ => ja32(rel(t)),
                    });
                }
                Kind::Call => insns.push(call_local(rel(starts[1 + rng.below(nsub - 1)]))),
                Kind::Helper => insns.push(call_helper(1 + rng.below(100) as i32)),
                Kind::Exit => insns.push(exit()),
            }
        }
    }
    assert_eq!(insns.len() as u32, len);
    let mut lines: Vec<u32> = starts.clone();
    for _ in 0..len / 3 {
        let s = rng.below(nsub);
        lines.push(heads[s][rng.below(heads[s].len())]);
    }
    lines.sort();
    lines.dedup();
    ArrayProg {
        aux: (1..=len).collect(),
        func_info: (0..nsub as u32)
            .map(|k| FuncInfo {
                insn_off: starts[k as usize],
                type_id: 100 + k,
            })
            .collect(),
        line_info: lines
            .iter()
            .map(|&o| LineInfo {
                insn_off: o,
                file_name_off: 7,
                line_off: 1000 + o,
                line_col: (o << 10) | 3,
            })
            .collect(),
        subprog_starts: starts,
        insns,
    }
}

fn field_dist(insn: &Insn) -> Option<i64> {
    let op = insn.code & 0xf0;
    match insn.class() {
        c if c == kbpf::uapi::class::JMP || c == kbpf::uapi::class::JMP32 => {
            if op == jmp::EXIT || (op == jmp::CALL && insn.src() != pseudo::CALL) {
                None
            } else if op == jmp::CALL || insn.code == ja32(0).code {
                Some(insn.imm as i64)
            } else {
                Some(insn.off as i64)
            }
        }
        _ if insn.is_ld_imm64() && insn.src() == pseudo::FUNC => Some(insn.imm as i64),
        _ => None,
    }
}

fn is_tail(insn: &Insn) -> bool {
    insn.code == 0
}

/// The model of one test run: the list, the array, and the original side tables.
struct Pair {
    list: PatchList<u32>,
    arr: ArrayProg<u32>,
    orig: ArrayProg<u32>,
}

impl Pair {
    fn new(seed: u64) -> Pair {
        let arr = gen_prog(seed);
        let list = PatchList::with_aux(&arr.insns, arr.aux.clone()).expect("valid program");
        Pair {
            list,
            orig: arr.clone(),
            arr,
        }
    }

    fn ids(&self) -> Vec<NodeId> {
        let ids: Vec<NodeId> = self.list.iter().collect();
        assert_eq!(ids.len(), self.arr.insns.len(), "live count");
        ids
    }

    /// Linearizes and compares with the array.
    fn check(&self) {
        let mut line_info = self.orig.line_info.clone();
        let mut starts = self.orig.subprog_starts.clone();
        let mut funcs = self.orig.func_info.clone();
        let mut aux = Vec::new();
        let insns = self
            .list
            .linearize(
                &mut line_info,
                Some(VerifierEnv {
                    aux: &mut aux,
                    subprog_starts: &mut starts,
                    func_info: &mut funcs,
                }),
            )
            .expect("linearize");
        let mut arr = self.arr.clone();
        arr.entry_at_zero();
        assert_eq!(insns, arr.insns, "instructions");
        assert_eq!(starts, arr.subprog_starts, "subprog starts");
        assert_eq!(funcs, arr.func_info, "func info");
        assert_eq!(line_info, arr.line_info, "line info");
        // Aux: original nodes carry their original tag, in order; inserted ones the default.
        let survivors: Vec<u32> = self
            .list
            .iter()
            .filter_map(|id| match self.list.origin(id) {
                Some(Origin::Original(i)) => Some(i + 1),
                _ => None,
            })
            .collect();
        let nonzero: Vec<u32> = aux.iter().copied().filter(|&a| a != 0).collect();
        assert_eq!(nonzero, survivors, "aux carried over");
        assert_eq!(aux.len(), insns.len());
    }

    fn replace(&mut self, i: usize, variant: u32) {
        let ids = self.ids();
        let a = &self.arr.insns;
        let x = a[i];
        if x.is_ld_imm64() || is_tail(&x) {
            // Constant blinding of both halves, one patch each.
            let first = if is_tail(&x) { i - 1 } else { i };
            let lo = [
                mov64_imm(11, 1),
                alu64_imm(alu::XOR, 11, 2),
                mov64_reg(1, 11),
            ];
            let hi = [mov32_imm(11, 3), alu64_imm(alu::OR, 1, 11)];
            self.arr.patch_insn_data(first as u32, &lo).unwrap();
            self.arr.patch_insn_data(first as u32 + 3, &hi).unwrap();
            self.list.replace(ids[first], &lo).unwrap();
            self.list.replace(ids[first + 1], &hi).unwrap();
        } else if let Some(d) = field_dist(&x) {
            // Blinding of a jump or call: the original moves to the end of the patch.
            let mut moved = x;
            let nd = if d < 0 { d - 2 } else { d };
            if x.code == call_local(0).code || x.code == ja32(0).code {
                moved.imm = nd as i32;
            } else {
                moved.off = nd as i16;
            }
            let patch = [mov64_imm(11, 5), alu64_imm(alu::XOR, 11, 6), moved];
            self.arr.patch_insn_data(i as u32, &patch).unwrap();
            let t = self.list.target(ids[i]).expect("jump has a target");
            let mut placeholder = x;
            if x.code == call_local(0).code || x.code == ja32(0).code {
                placeholder.imm = -1;
            } else {
                placeholder.off = -1;
            }
            let span = self
                .list
                .replace(ids[i], &[patch[0], patch[1], placeholder])
                .unwrap();
            self.list.set_target(span.last, t).unwrap();
        } else {
            let last = i + 1 == a.len();
            let buf: Vec<Insn> = match variant % 4 {
                0 => vec![mov64_imm(3, 1), mov64_imm(4, 2)],
                1 => vec![jmp_imm(jmp::JGT, 2, 5, 1), mov64_imm(3, 3), x],
                2 if !last => vec![jmp_imm(jmp::JEQ, 3, 0, 2), mov64_imm(5, 1), x],
                _ => vec![
                    mov64_imm(6, 9),
                    alu64_imm(alu::ADD, 6, 1),
                    x,
                    mov64_imm(7, 0),
                ],
            };
            self.arr.patch_insn_data(i as u32, &buf).unwrap();
            self.list.replace(ids[i], &buf).unwrap();
        }
    }

    fn insert_before(&mut self, i: usize, variant: u32) {
        let ids = self.ids();
        if is_tail(&self.arr.insns[i]) {
            return;
        }
        let buf: Vec<Insn> = match variant % 3 {
            0 => vec![mov64_imm(8, 1)],
            1 => vec![jmp_imm(jmp::JNE, 8, 0, 1), mov64_imm(8, 2)],
            _ => vec![
                mov64_imm(8, 3),
                jmp_imm(jmp::JSGT, 8, 1, -2),
                mov64_imm(8, 4),
            ],
        };
        self.arr.insert_before(i as u32, &buf).unwrap();
        self.list.insert_before(ids[i], &buf).unwrap();
    }

    /// Deletes `[off, off + cnt)` after narrowing it to a range the kernel defines well.
    fn delete(&mut self, mut off: usize, mut cnt: usize) {
        let ids = self.ids();
        let a = self.arr.insns.clone();
        let len = a.len();
        if is_tail(&a[off]) {
            off -= 1;
            cnt += 1;
        }
        cnt = cnt.min(len - off);
        loop {
            let mut c = cnt;
            for (o, insn) in a.iter().enumerate() {
                if (off..off + c).contains(&o) {
                    continue;
                }
                if let Some(d) = field_dist(insn) {
                    let t = (o as i64 + 1 + d) as usize;
                    if t > off && t < off + c {
                        c = t - off;
                    }
                }
            }
            for &s in &self.arr.subprog_starts {
                let s = s as usize;
                if s > off && s < off + c {
                    c = s - off;
                }
            }
            if c == cnt {
                break;
            }
            cnt = c;
        }
        if off + cnt < len && is_tail(&a[off + cnt]) {
            cnt -= 1;
        }
        if cnt == 0 || cnt == len {
            return;
        }
        if off + cnt == len {
            let lands_in_tail = a.iter().enumerate().any(|(o, insn)| {
                o < off && field_dist(insn).is_some_and(|d| o as i64 + 1 + d >= off as i64)
            });
            if lands_in_tail {
                return;
            }
        }
        self.arr.remove_insns(off as u32, cnt as u32).unwrap();
        for o in off..off + cnt {
            if !is_tail(&a[o]) {
                self.list.delete(ids[o]).unwrap();
            }
        }
    }
}

fn run(seed: u64, ops: &[(u8, u32, u32)], with_insert: bool) {
    let mut p = Pair::new(seed);
    p.check();
    for &(kind, a, b) in ops {
        let len = p.arr.insns.len();
        let i = a as usize % len;
        match kind % 4 {
            0 => p.replace(i, b),
            1 => p.delete(i, 1 + b as usize % 4),
            2 => {
                let n = p.arr.subprog_starts.len();
                if n > 1 {
                    let k = b as usize % n;
                    let s = p.arr.subprog_starts[k] as usize;
                    let e = p.arr.subprog_starts.get(k + 1).map_or(len, |&e| e as usize);
                    p.delete(s, e - s);
                }
            }
            _ if with_insert => p.insert_before(i, b),
            _ => p.replace(i, b.wrapping_add(1)),
        }
        p.check();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn replace_and_delete_match_the_kernel(
        seed in any::<u64>(),
        ops in prop::collection::vec((0u8..3, any::<u32>(), any::<u32>()), 1..24),
    ) {
        run(seed, &ops, false);
    }

    #[test]
    fn insert_before_matches_its_array_rule(
        seed in any::<u64>(),
        ops in prop::collection::vec((0u8..4, any::<u32>(), any::<u32>()), 1..24),
    ) {
        run(seed, &ops, true);
    }
}
