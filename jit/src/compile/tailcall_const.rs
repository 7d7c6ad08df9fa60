//! Finding tail calls whose prog_array and index are constants, which the JIT emits as direct,
//! patchable jumps (the part of Linux's `do_misc_fixups` in `kernel/bpf/verifier.c` that adds a
//! `bpf_jit_poke_descriptor` when the map pointer and the key are single known constants).
//!
//! The JIT sees instructions only — kbpf's verifier does not hand it the per-instruction map
//! and key it tracked (the kernel's `insn_aux_data`), and trusted-path programs were never
//! verified — so this is a local, conservative proof: walking back from the tail call in
//! its straight-line block, R2 must be set by an `ld_imm64` map reference and R3 by
//! `mov r3, imm` (64- or 32-bit) or a plain `ld_imm64`, with no instruction in between (nor the
//! tail call itself) being a jump target, no jump, call or exit in between, and nothing else
//! writing R2 or R3 after those definitions. Anything else stays an indirect tail call.
//!
//! A blinded constant index (`AX = a; AX ^= b; r3 = AX`, see [`kbpf::blind`]) counts as
//! `mov r3, a ^ b` when the three instructions are consecutive and neither the `xor` nor the
//! move is a jump target.

use super::subprog::Subprogs;
use alloc::vec;
use alloc::vec::Vec;
use kbpf::insn::{AluOp, BPF_REG_AX, Op, Operand, branch_target};
use kbpf::uapi::pseudo;

/// A tail call's constant prog_array (the `ld_imm64` value: the map's address) and index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConstKey {
    /// The map's address.
    pub map: u64,
    /// The index, truncated to `u32` as the tail call does.
    pub index: u32,
}

/// For every instruction slot, the constant key of the tail call there, if it has one.
pub fn const_keys(ops: &[Option<Op>], subs: &Subprogs) -> Vec<Option<ConstKey>> {
    let n = ops.len();
    let mut is_target = vec![false; n];
    for (pc, op) in ops.iter().enumerate() {
        if let Some(t) = op.as_ref().and_then(|op| branch_target(op, pc)) {
            if let Some(slot) = usize::try_from(t).ok().and_then(|t| is_target.get_mut(t)) {
                *slot = true;
            }
        }
    }
    (0..n)
        .map(|pc| match ops[pc] {
            Some(Op::TailCall) => {
                let start = subs.range(subs.of[pc] as usize).start;
                key_at(ops, &is_target, start, pc)
            }
            _ => None,
        })
        .collect()
}

/// Whether `op` may write register `r` (conservative for atomics).
fn writes(op: &Op, r: u8) -> bool {
    match *op {
        Op::Alu { dst, .. } | Op::End { dst, .. } | Op::Ldx { dst, .. } => dst == r,
        Op::LdImm64 { dst, .. } => dst == r,
        Op::Atomic { dst, src, .. } => dst == r || src == r,
        Op::St { .. } | Op::Stx { .. } => false,
        _ => true,
    }
}

/// Whether `op` ends a straight-line block (walking backwards, nothing before it counts).
fn ends_block(op: &Op) -> bool {
    matches!(
        op,
        Op::Ja { .. }
            | Op::Jmp { .. }
            | Op::MayGoto { .. }
            | Op::Call(_)
            | Op::TailCall
            | Op::Exit
            | Op::LdPacket { .. }
    )
}

fn key_at(ops: &[Option<Op>], is_target: &[bool], start: usize, pc: usize) -> Option<ConstKey> {
    let (mut map, mut index) = (None, None);
    let mut j = pc;
    loop {
        if let (Some(map), Some(index)) = (map, index) {
            return Some(ConstKey { map, index });
        }
        // Entering the block at `j` would skip the definitions found so far.
        if is_target[j] || j <= start {
            return None;
        }
        j -= 1;
        if ops[j].is_none() {
            // The second slot of an `ld_imm64`: its first slot is in the same subprogram.
            j = j.checked_sub(1)?;
        }
        let op = ops[j]?;
        match op {
            Op::LdImm64 {
                dst: 2,
                pseudo: pseudo::MAP_FD,
                imm,
            } if map.is_none() => map = Some(imm),
            Op::LdImm64 {
                dst: 3,
                pseudo: 0,
                imm,
            } if index.is_none() => index = Some(imm as u32),
            Op::Alu {
                op: AluOp::Mov,
                dst: 3,
                src: Operand::Imm(k),
                ..
            } if index.is_none() => index = Some(k as u32),
            Op::Alu {
                op: AluOp::Mov,
                dst: 3,
                src: Operand::Reg(BPF_REG_AX),
                ..
            } if index.is_none() => {
                index = Some(blinded_const(ops, is_target, start, j)?);
                // Continue above the `AX = a` (the loop checks it is no jump target).
                j -= 2;
            }
            op if ends_block(&op) => return None,
            op if (map.is_none() && writes(&op, 2)) || (index.is_none() && writes(&op, 3)) => {
                return None;
            }
            _ => {}
        }
    }
}

/// The value of AX at `j` when `j - 2` and `j - 1` are `AX = a; AX ^= b` (64-bit forms, as
/// blinding emits them) and neither `j - 1` nor `j` is a jump target: `a ^ b` as a `u32`.
fn blinded_const(ops: &[Option<Op>], is_target: &[bool], start: usize, j: usize) -> Option<u32> {
    if j < start + 2 || is_target[j] || is_target[j - 1] {
        return None;
    }
    let imm = |op: Option<Op>, want: AluOp| match op? {
        Op::Alu {
            wide: true,
            op,
            dst: BPF_REG_AX,
            src: Operand::Imm(k),
        } if op == want => Some(k),
        _ => None,
    };
    let a = imm(ops[j - 2], AluOp::Mov)?;
    let b = imm(ops[j - 1], AluOp::Xor)?;
    Some((a ^ b) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::subprog::analyze;
    use alloc::format;
    use alloc::string::String;
    use kbpf::insn::{Insn, decode_internal};

    fn keys(src: &str) -> Vec<Option<ConstKey>> {
        keys_of(&kbpf::insn::assemble(src).unwrap())
    }

    fn keys_of(insns: &[Insn]) -> Vec<Option<ConstKey>> {
        let mut ops = Vec::new();
        let mut pc = 0;
        while pc < insns.len() {
            let op = decode_internal(insns, pc).unwrap();
            ops.push(Some(op));
            if op.slots() == 2 {
                ops.push(None);
            }
            pc += op.slots();
        }
        // The tail-call opcode as the loader rewrites `call 12`.
        for op in ops.iter_mut() {
            if let Some(Op::Call(kbpf::insn::Call::Helper(12))) = op {
                *op = Some(Op::TailCall);
            }
        }
        let subs = analyze(&ops).unwrap();
        const_keys(&ops, &subs)
    }

    fn found(src: &str) -> Vec<ConstKey> {
        keys(src).into_iter().flatten().collect()
    }

    const MAP: &str = "lddw %r2, map_fd 7\n";

    #[test]
    fn constant_map_and_index_are_found() {
        let k = ConstKey { map: 7, index: 3 };
        assert_eq!(found(&format!("{MAP}mov %r3, 3\ncall 12\nexit\n")), vec![k]);
        assert_eq!(
            found(&format!("mov32 %r3, 3\nmov %r1, %r6\n{MAP}call 12\nexit\n")),
            vec![k]
        );
        assert_eq!(
            found(&format!("{MAP}lddw %r3, 0x100000003\ncall 12\nexit\n")),
            vec![k]
        );
        // A later definition wins over an earlier one.
        assert_eq!(
            found(&format!("mov %r3, 9\n{MAP}mov %r3, 3\ncall 12\nexit\n")),
            vec![k]
        );
        assert_eq!(
            found(&format!("{MAP}mov %r3, -1\ncall 12\nexit\n"))[0].index,
            u32::MAX
        );
    }

    #[test]
    fn anything_unproven_stays_indirect() {
        let none = |src: String| assert_eq!(found(&src), vec![], "{src}");
        none(format!("{MAP}mov %r3, %r4\ncall 12\nexit\n"));
        none(format!("{MAP}mov %r3, 1\nadd %r3, 1\ncall 12\nexit\n"));
        none(format!("{MAP}mov %r3, 1\nadd %r2, 8\ncall 12\nexit\n"));
        none(format!(
            "{MAP}mov %r3, 1\nldxdw %r2, [%r1+0]\ncall 12\nexit\n"
        ));
        none("lddw %r2, 5\nmov %r3, 1\ncall 12\nexit\n".into());
        none(format!("{MAP}mov %r3, 1\ncall 1\ncall 12\nexit\n"));
        // A jump target between the definitions and the tail call.
        none(format!(
            "jeq %r1, 0, t\n{MAP}mov %r3, 1\nt:\ncall 12\nexit\n"
        ));
        none(format!(
            "{MAP}jeq %r1, 0, t\nt:\nmov %r3, 1\ncall 12\nexit\n"
        ));
        // Defined in another subprogram.
        none(format!(
            "{MAP}mov %r3, 1\ncall local s\nexit\ns:\ncall 12\nexit\n"
        ));
    }

    #[test]
    fn a_blinded_index_is_a_constant() {
        use kbpf::insn::{alu64_imm, call_helper, exit, jmp_imm, ld_map_fd, mov64_imm, mov64_reg};
        use kbpf::uapi::{alu, jmp};
        let ax = BPF_REG_AX;
        let blinded = [
            mov64_imm(ax, 0x5a5a_5a5a),
            alu64_imm(alu::XOR, ax, 0x5a5a_5a59),
            mov64_reg(3, ax),
        ];
        let with = |pre: &[Insn], seq: &[Insn]| {
            let mut p = pre.to_vec();
            p.extend_from_slice(seq);
            p.extend(ld_map_fd(2, 7));
            p.extend([call_helper(12), exit()]);
            keys_of(&p).into_iter().flatten().collect::<Vec<_>>()
        };
        assert_eq!(with(&[], &blinded), vec![ConstKey { map: 7, index: 3 }]);
        // AX not built by `AX = a; AX ^= b` right before the move.
        let mut other = blinded;
        other[1] = alu64_imm(alu::ADD, ax, 1);
        assert_eq!(with(&[], &other), vec![]);
        assert_eq!(with(&[], &blinded[1..]), vec![]);
        // A jump into the sequence past `AX = a`.
        assert_eq!(with(&[jmp_imm(jmp::JEQ, 1, 0, 1)], &blinded), vec![]);
        // A jump to `AX = a` itself executes the whole sequence.
        let jump_to_start = [jmp_imm(jmp::JEQ, 1, 0, 0)];
        assert_eq!(with(&jump_to_start, &blinded).len(), 1);
    }

    #[test]
    fn a_jump_target_at_the_first_definition_is_fine() {
        let src = format!("jeq %r1, 0, t\nmov %r0, 1\nt:\n{MAP}mov %r3, 1\ncall 12\nexit\n");
        assert_eq!(found(&src).len(), 1);
    }
}
