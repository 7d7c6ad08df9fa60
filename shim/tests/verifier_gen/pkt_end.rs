//! The packet-end template of the generator (`mark_pkt_end`, `is_pkt_ptr_branch_taken`, the
//! `EINVAL` of `check_packet_access`): in TC, XDP and SK_REUSEPORT, `pkt = data + K` is
//! compared with `data_end` by each of `>`, `>=`, `<`, `<=` in both operand orders, and on
//! either direction of the jump
//!
//! - `pkt` is read at offsets before, at and after the checked length (through the pointer
//!   proven at or beyond the end on one direction, within it on the other), at two sizes;
//! - `pkt` is compared with the end again by each condition, an unchecked read on one side
//!   (which the host skips when the first comparison decided the second).

use super::{Gen, both, make};
use kbpf::uapi::ProgType;

/// The program types with their `data`/`data_end` loads into R2 and R3.
const TYPES: [(ProgType, &str); 3] = [
    (ProgType::Xdp, "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\n"),
    (
        ProgType::SchedCls,
        "ldxw %r2, [%r1+76]\nldxw %r3, [%r1+80]\n",
    ),
    (
        ProgType::SkReuseport,
        "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\n",
    ),
];

/// The comparisons of `pkt` (R4) and `data_end` (R3), both operand orders.
const COMPARES: [&str; 8] = [
    "jgt %r4, %r3",
    "jge %r4, %r3",
    "jlt %r4, %r3",
    "jle %r4, %r3",
    "jgt %r3, %r4",
    "jge %r3, %r4",
    "jlt %r3, %r4",
    "jle %r3, %r4",
];

/// The checked lengths.
const LENS: [i32; 2] = [0, 4];

/// The bodies for one direction, given the checked length: a name and the instructions.
fn bodies(k: i32) -> Vec<(String, String)> {
    let mut b = Vec::new();
    for (n, s) in [(1, "b"), (4, "w")] {
        for from_base in [-1, 0, k - 1, k, k + 1] {
            let off = from_base - k;
            b.push((
                format!("ldx{n}@base{from_base:+}"),
                format!("ldx{s} %r0, [%r4{off:+}]\n"),
            ));
        }
    }
    for again in &COMPARES[..4] {
        b.push((
            format!("`{again}` then unchecked read on fall"),
            format!("{again}, +1\nldxb %r0, [%r2+0]\n"),
        ));
        b.push((
            format!("`{again}` then unchecked read on jump"),
            format!("{again}, +2\nmov %r0, 0\nexit\nldxb %r0, [%r2+0]\n"),
        ));
    }
    b
}

/// Every program of the template.
pub fn pkt_end(out: &mut Vec<Gen>) {
    for (t, pro) in TYPES {
        for cmp in COMPARES {
            for k in LENS {
                for (name, body) in bodies(k) {
                    for on_jump in [false, true] {
                        let rest = "mov %r0, 0\nexit\n";
                        let fall = if on_jump {
                            rest.to_string()
                        } else {
                            format!("{body}{rest}")
                        };
                        let jump = if on_jump {
                            format!("{body}{rest}")
                        } else {
                            rest.to_string()
                        };
                        let gap = fall.lines().count();
                        let asm =
                            format!("{pro}mov %r4, %r2\nadd %r4, {k}\n{cmp}, +{gap}\n{fall}{jump}");
                        let side = if on_jump { "jump" } else { "fall" };
                        let desc = format!("{t:?} `{cmp}` K={k} on {side}: {name}");
                        both(out, make("pkt_end", desc, t, asm));
                    }
                }
            }
        }
    }
}
