//! The socket program types' templates of the generator, in both privilege modes:
//!
//! - `sk_lookup_ctx`: every offset (and a little around `struct bpf_sk_lookup`) × every size,
//!   loads, sign-extending loads, stores of a register and of an immediate;
//! - `sk_lookup_sk`: `ctx->sk` read at every size, then a field of `struct bpf_sock` read at
//!   every offset × size, with and without a NULL check, through a checked copy, written;
//! - `sk_lookup_ref`: SOCKMAP and SOCKHASH lookups released, leaked, released twice, used
//!   unchecked, assigned, `ctx->sk` released or assigned, NULL assigned, every return value;
//! - `sk_reuseport_ctx`: `struct sk_reuseport_md` the same way as `sk_lookup_ctx`.

use super::{Gen, SIZES, both, make};
use kbpf::map::MapAttr;
use kbpf::uapi::{MapType, ProgType};

const SOCKMAP: MapAttr = MapAttr::new(MapType::Sockmap, 4, 8, 4);
const SOCKHASH: MapAttr = MapAttr::new(MapType::Sockhash, 4, 8, 4);

/// How a program may end with a socket reference in r7 (NULL or not) and its context in r6:
/// released, leaked, released twice, read, assigned (`bpf_sk_assign`), before or after its
/// NULL check.
pub(super) const REF_ENDINGS: [(&str, &str); 11] = [
    ("released", "jeq %r7, 0, +2\nmov %r1, %r7\ncall 86\n"),
    ("leaked", "jeq %r7, 0, +0\n"),
    ("released unchecked", "mov %r1, %r7\ncall 86\n"),
    (
        "released twice",
        "jeq %r7, 0, +4\nmov %r1, %r7\ncall 86\nmov %r1, %r7\ncall 86\n",
    ),
    (
        "read then released",
        "jeq %r7, 0, +3\nldxw %r2, [%r7+4]\nmov %r1, %r7\ncall 86\n",
    ),
    (
        "read unchecked",
        "ldxw %r2, [%r7+4]\njeq %r7, 0, +2\nmov %r1, %r7\ncall 86\n",
    ),
    (
        "assigned, released",
        "jeq %r7, 0, +6\nmov %r1, %r6\nmov %r2, %r7\nmov %r3, 0\ncall 124\nmov %r1, %r7\ncall 86\n",
    ),
    (
        "assigned unchecked",
        "mov %r1, %r6\nmov %r2, %r7\nmov %r3, 0\ncall 124\njeq %r7, 0, +2\nmov %r1, %r7\ncall 86\n",
    ),
    (
        "assigned, leaked",
        "jeq %r7, 0, +4\nmov %r1, %r6\nmov %r2, %r7\nmov %r3, 0\ncall 124\n",
    ),
    (
        "released, then assigned",
        "jeq %r7, 0, +6\nmov %r1, %r7\ncall 86\nmov %r1, %r6\nmov %r2, %r7\nmov %r3, 0\ncall 124\n",
    ),
    (
        "spilled, filled, released",
        "stxdw [%r10-16], %r7\nldxdw %r1, [%r10-16]\njeq %r1, 0, +1\ncall 86\n",
    ),
];

fn ctx_sweep(out: &mut Vec<Gen>, template: &'static str, t: ProgType, len: i32) {
    for off in -2..len + 4 {
        for (n, s) in SIZES {
            let cases = [
                ("ldx", format!("ldx{s} %r0, [%r1{off:+}]\n")),
                ("stx", format!("mov %r2, 0\nstx{s} [%r1{off:+}], %r2\n")),
                ("st", format!("st{s} [%r1{off:+}], 0\n")),
            ];
            for (what, body) in cases {
                let asm = format!("{body}mov %r0, 1\nexit");
                both(
                    out,
                    make(template, format!("{t:?} {what}{s} off={off}"), t, asm),
                );
            }
            if n < 8 {
                let asm = format!("ldxs{s} %r0, [%r1{off:+}]\nmov %r0, 1\nexit");
                both(
                    out,
                    make(template, format!("{t:?} ldxs{s} off={off}"), t, asm),
                );
            }
        }
    }
}

/// Every template of this file.
pub fn sk_lookup(out: &mut Vec<Gen>) {
    let t = ProgType::SkLookup;
    ctx_sweep(out, "sk_lookup_ctx", t, 72);
    ctx_sweep(out, "sk_reuseport_ctx", ProgType::SkReuseport, 56);

    // ctx->sk at each size; then bpf_sock fields through it.
    for (_, s) in SIZES {
        let asm = format!("ldx{s} %r2, [%r1+0]\nmov %r0, 1\nexit");
        both(out, make("sk_lookup_sk", format!("sk ldx{s}"), t, asm));
    }
    for off in -2..84 {
        for (_, s) in SIZES {
            let cases = [
                (
                    "checked",
                    format!("ldxdw %r2, [%r1+0]\njeq %r2, 0, +1\nldx{s} %r3, [%r2{off:+}]\n"),
                ),
                (
                    "unchecked",
                    format!("ldxdw %r2, [%r1+0]\nldx{s} %r3, [%r2{off:+}]\n"),
                ),
                (
                    "copy checked",
                    format!(
                        "ldxdw %r2, [%r1+0]\nmov %r4, %r2\njeq %r2, 0, +1\nldx{s} %r3, [%r4{off:+}]\n"
                    ),
                ),
                (
                    "store",
                    format!("ldxdw %r2, [%r1+0]\njeq %r2, 0, +1\nst{s} [%r2{off:+}], 0\n"),
                ),
            ];
            for (what, body) in cases {
                let asm = format!("{body}mov %r0, 1\nexit");
                both(
                    out,
                    make(
                        "sk_lookup_sk",
                        format!("sock {what} ldx{s} off={off}"),
                        t,
                        asm,
                    ),
                );
            }
        }
    }
    // Pointer arithmetic on ctx->sk, a compare against a non-zero value.
    for (what, body) in [
        (
            "add",
            "ldxdw %r2, [%r1+0]\njeq %r2, 0, +2\nadd %r2, 4\nldxw %r3, [%r2+0]\n",
        ),
        (
            "jne 1",
            "ldxdw %r2, [%r1+0]\njne %r2, 1, +1\nldxw %r3, [%r2+4]\n",
        ),
        (
            "stack spill",
            "ldxdw %r2, [%r1+0]\nstxdw [%r10-8], %r2\nldxdw %r3, [%r10-8]\njeq %r3, 0, +1\nldxw %r4, [%r3+4]\n",
        ),
    ] {
        let asm = format!("{body}mov %r0, 1\nexit");
        both(out, make("sk_lookup_sk", format!("sock {what}"), t, asm));
    }

    // References: sockmap/sockhash lookups with every ending.
    let lookup = "mov %r6, %r1\nstw [%r10-4], 0\nlddw %r1, map_fd 0\nmov %r2, %r10\nadd %r2, -4\ncall 1\nmov %r7, %r0\n";
    for map in [SOCKMAP, SOCKHASH] {
        for (what, end) in REF_ENDINGS {
            let asm = format!("{lookup}{end}mov %r0, 1\nexit");
            let mut g = make(
                "sk_lookup_ref",
                format!("{:?} {what}", map.map_type),
                t,
                asm,
            );
            g.maps = vec![map];
            both(out, g);
        }
    }
    // ctx->sk and NULL into the helpers; flags; return values.
    for (what, body) in [
        (
            "release ctx->sk",
            "ldxdw %r2, [%r1+0]\njeq %r2, 0, +2\nmov %r1, %r2\ncall 86\n",
        ),
        (
            "assign ctx->sk",
            "ldxdw %r2, [%r1+0]\nmov %r3, 0\ncall 124\n",
        ),
        (
            "assign checked ctx->sk",
            "ldxdw %r2, [%r1+0]\njeq %r2, 0, +2\nmov %r3, 1\ncall 124\n",
        ),
        ("assign NULL", "mov %r2, 0\nmov %r3, 1\ncall 124\n"),
        ("assign a scalar", "mov %r2, 4\nmov %r3, 0\ncall 124\n"),
        ("assign the context", "mov %r2, %r1\nmov %r3, 0\ncall 124\n"),
        (
            "assign unknown flags",
            "mov %r2, 0\ncall 7\nmov %r3, %r0\nmov %r1, %r6\nmov %r2, 0\ncall 124\n",
        ),
        ("release NULL", "mov %r1, 0\ncall 86\n"),
        ("tail call", "mov %r2, 0\nmov %r3, 0\ncall 12\n"),
    ] {
        let asm = format!("mov %r6, %r1\n{body}mov %r0, 1\nexit");
        both(out, make("sk_lookup_ref", what.to_string(), t, asm));
    }
    for (what, ret) in [
        ("0", "mov %r0, 0\n"),
        ("1", "mov %r0, 1\n"),
        ("2", "mov %r0, 2\n"),
        ("-1", "mov %r0, -1\n"),
        ("unknown", "call 7\n"),
        ("unknown & 1", "call 7\nand %r0, 1\n"),
        ("u32 1", "mov32 %r0, 1\n"),
        ("family", "ldxw %r0, [%r1+8]\n"),
        ("ctx", "mov %r0, %r1\n"),
        ("unset", ""),
    ] {
        let asm = format!("{ret}exit");
        both(out, make("sk_lookup_ref", format!("return {what}"), t, asm));
    }
}
