//! The branch-bounds template of the generator (`branch_bounds`): every conditional jump,
//! `JMP` and `JMP32`, immediate and register forms, on a register of each of the bounds
//! shapes ([`super::bounds::SHAPES`]), with thresholds around 0, 15/16, -1 and the 32-bit
//! edges (`is_branch_taken`, `regs_refine_cond_op`, `reg_bounds_sync`). On one direction of
//! the jump (each in turn) the refined register is the variable offset of a 1-byte read of a
//! 16-byte array value, so a range, or a direction, one side proves and the other does not
//! shows as a different verdict. Also a register compared with another bounded register, the
//! read through either of the two.
//!
//! Left out (`KBPF_GEN_ALL=1` puts it back): `jeq`/`jne` (64 and 32-bit) between two registers
//! whose ranges cross a sign boundary ([`CROSSING`]) and leave no common value: the 6.18 host
//! does not see that the equal direction is impossible and explores it with contradictory
//! bounds (a register comes out as one constant of the other's range), where kbpf finds the
//! refined bounds empty and prunes the direction (so it accepts programs the host refuses).

use super::bounds::{EPILOGUE, OFFS, PROLOGUE, SHAPES, SHAPES_32, set, use_as_offset};
use super::{ARRAY, Gen, Rng, both, make};
use kbpf::uapi::ProgType;

/// The conditions.
const CONDS: [&str; 11] = [
    "jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset",
];

/// The thresholds (immediates are sign-extended for `JMP`, the low half for `JMP32`).
const THRESHOLDS: [i64; 8] = [0, 15, 16, -1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 1];

/// Shapes of the compared register: those with a range a branch can narrow.
const COMPARED: [&str; 13] = [
    "u<=12",
    "s[-16,-1]",
    "u[2^63-8,2^63+7]",
    "u32[2^31-8,2^31+7]",
    "u64",
    "ctx u32",
    "and 15",
    "and 0x30",
    "u<=15",
    "u[16,31]",
    "s[-8,7]",
    "u32<=15 hi unknown",
    "s32[-8,7] hi unknown",
];

/// Shapes whose range crosses a sign boundary (64- or 32-bit, signed or unsigned view): left
/// out of `jeq`/`jne` against one another (module doc).
const CROSSING: [&str; 4] = [
    "s[-8,7]",
    "s32[-8,7] hi unknown",
    "u[2^63-8,2^63+7]",
    "u32[2^31-8,2^31+7]",
];

/// Whether the sweep leaves `cond` between `name` and `other` out.
fn left_out(cond: &str, name: &str, other: &str) -> bool {
    if std::env::var("KBPF_GEN_ALL").is_ok() || !CROSSING.contains(&name) {
        return false;
    }
    matches!(cond, "jeq" | "jne") && CROSSING.contains(&other)
}

/// Shapes of the second register of a register-register comparison.
const OTHERS: [&str; 8] = [
    "and 15",
    "u<=15",
    "u[16,31]",
    "s[-8,7]",
    "s[-16,-1]",
    "16",
    "0xffffffff",
    "u32[2^31-8,2^31+7]",
];

fn shape(name: &str) -> &'static str {
    SHAPES
        .iter()
        .chain(&SHAPES_32)
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .expect("a shape of bounds.rs")
}

/// `jump` (a conditional jump to the taken side) after `setup`, the read through `used` on
/// the taken side (`on_jump`) or on the fall-through.
fn program(setup: &str, jump: &str, used: &str, off: i32, on_jump: bool) -> String {
    let access = use_as_offset(used, off);
    let (fall, taken) = if on_jump {
        (String::new(), access)
    } else {
        (access, String::new())
    };
    format!("{PROLOGUE}{setup}{jump}, taken\n{fall}ja out\ntaken:\n{taken}{EPILOGUE}")
}

fn push(out: &mut Vec<Gen>, desc: String, asm: String) {
    let g = Gen {
        maps: vec![ARRAY],
        ..make("branch_bounds", desc, ProgType::SocketFilter, asm)
    };
    both(out, g);
}

/// Every program of the template.
pub fn branch_bounds(out: &mut Vec<Gen>, rng: &mut Rng) {
    for cond in CONDS {
        for j32 in ["", "32"] {
            let c = format!("{cond}{j32}");
            for name in COMPARED {
                let setup = set(shape(name), "%r2");
                for k in THRESHOLDS {
                    for on_jump in [false, true] {
                        let side = if on_jump { "jump" } else { "fall" };
                        let off = rng.pick(&OFFS);
                        let jump = format!("{c} %r2, {k}");
                        let asm = program(&setup, &jump, "%r2", off, on_jump);
                        push(out, format!("{name} `{jump}` on {side} @{off}"), asm);
                    }
                    // The threshold as a 64-bit register constant, one direction.
                    let on_jump = rng.below(2) == 1;
                    let side = if on_jump { "jump" } else { "fall" };
                    let off = rng.pick(&OFFS);
                    let setk = format!("{setup}lddw %r3, {k}\n");
                    let jump = format!("{c} %r2, %r3");
                    let asm = program(&setk, &jump, "%r2", off, on_jump);
                    push(out, format!("{name} `{jump}` r3={k} on {side} @{off}"), asm);
                }
                for other in OTHERS {
                    if left_out(cond, name, other) {
                        continue;
                    }
                    let setup = format!("{setup}{}", set(shape(other), "%r3"));
                    for on_jump in [false, true] {
                        let side = if on_jump { "jump" } else { "fall" };
                        let used = rng.pick(&["%r2", "%r3"]);
                        let off = rng.pick(&OFFS);
                        let jump = format!("{c} %r2, %r3");
                        let asm = program(&setup, &jump, used, off, on_jump);
                        let desc =
                            format!("{name} `{jump}` r3={other} on {side} use {used} @{off}");
                        push(out, desc, asm);
                    }
                }
            }
        }
    }
}
