//! The generator's templates for the packet's socket and the socket helpers of the packet
//! program types (socket filter, TC, cgroup skb, XDP), in both privilege modes:
//!
//! - `skb_ctx_sock`: the `__sk_buff` bytes from `napi_id` to past `sk` (`family` ..
//!   `local_port`, `data_meta`, `flow_keys`, `tstamp`, `wire_len`, `gso_segs`, `sk`,
//!   `gso_size`) at every offset × size: loads, sign-extending loads, stores of a register
//!   and of an immediate;
//! - `skb_sk`: `skb->sk` at every size, then `struct bpf_sock` (a socket's common part)
//!   read through it at every offset × size, with and without a NULL check, and written;
//!   arithmetic on it;
//! - `skb_sk_ref`: `bpf_sk_lookup_tcp`/`_udp` and `bpf_skc_lookup_tcp` with every tuple size
//!   and ending (released, leaked, released twice, read before its NULL check, a full
//!   socket's field through a common part, assigned), `skb->sk` released or assigned, NULL
//!   and scalars into the helpers.

use super::{Gen, SIZES, both, make};
use kbpf::uapi::ProgType;

/// The program types whose context is `__sk_buff`.
const SKB_TYPES: [ProgType; 4] = [
    ProgType::SocketFilter,
    ProgType::SchedCls,
    ProgType::SchedAct,
    ProgType::CgroupSkb,
];

/// Every template of this file.
pub fn skb_sock(out: &mut Vec<Gen>) {
    ctx_sock(out);
    sk_fields(out);
    sk_refs(out);
}

fn ctx_sock(out: &mut Vec<Gen>) {
    for t in SKB_TYPES {
        for off in 84..184 {
            for (n, s) in SIZES {
                let mut cases = vec![
                    ("ldx", format!("ldx{s} %r0, [%r1{off:+}]\n")),
                    ("stx", format!("mov %r2, 0\nstx{s} [%r1{off:+}], %r2\n")),
                    ("st", format!("st{s} [%r1{off:+}], 0\n")),
                ];
                if n < 8 {
                    cases.push(("ldxs", format!("ldxs{s} %r0, [%r1{off:+}]\n")));
                }
                for (what, body) in cases {
                    let asm = format!("{body}mov %r0, 0\nexit");
                    let desc = format!("{t:?} {what}{s} off={off}");
                    both(out, make("skb_ctx_sock", desc, t, asm));
                }
            }
        }
    }
}

fn sk_fields(out: &mut Vec<Gen>) {
    for t in SKB_TYPES {
        for (_, s) in SIZES {
            let asm = format!("ldx{s} %r2, [%r1+168]\nmov %r0, 0\nexit");
            both(out, make("skb_sk", format!("{t:?} sk ldx{s}"), t, asm));
        }
        for off in -2..84 {
            for (_, s) in SIZES {
                let load = "ldxdw %r2, [%r1+168]\n";
                let cases = [
                    (
                        "checked",
                        format!("{load}jeq %r2, 0, +1\nldx{s} %r3, [%r2{off:+}]\n"),
                    ),
                    ("unchecked", format!("{load}ldx{s} %r3, [%r2{off:+}]\n")),
                    (
                        "store",
                        format!("{load}jeq %r2, 0, +1\nst{s} [%r2{off:+}], 0\n"),
                    ),
                ];
                for (what, body) in cases {
                    let asm = format!("{body}mov %r0, 0\nexit");
                    let desc = format!("{t:?} sock {what} ldx{s} off={off}");
                    both(out, make("skb_sk", desc, t, asm));
                }
            }
        }
        for (what, body) in [
            (
                "add",
                "ldxdw %r2, [%r1+168]\njeq %r2, 0, +2\nadd %r2, 4\nldxw %r3, [%r2+0]\n",
            ),
            (
                "jne 1",
                "ldxdw %r2, [%r1+168]\njne %r2, 1, +1\nldxw %r3, [%r2+4]\n",
            ),
            (
                "stack spill",
                "ldxdw %r2, [%r1+168]\nstxdw [%r10-8], %r2\nldxdw %r3, [%r10-8]\n\
                 jeq %r3, 0, +1\nldxw %r4, [%r3+4]\n",
            ),
            ("returned", "ldxdw %r0, [%r1+168]\nexit\n"),
        ] {
            let asm = format!("{body}mov %r0, 0\nexit");
            both(out, make("skb_sk", format!("{t:?} sock {what}"), t, asm));
        }
    }
}

/// `r7 = lookup(ctx, fp-40, size, netns, 0)` with a zeroed 40-byte tuple; r6 keeps the
/// context.
fn lookup(id: i32, size: i32, netns: i64) -> String {
    format!(
        "mov %r6, %r1\nstdw [%r10-8], 0\nstdw [%r10-16], 0\nstdw [%r10-24], 0\n\
         stdw [%r10-32], 0\nstdw [%r10-40], 0\nmov %r2, %r10\nadd %r2, -40\nmov %r3, {size}\n\
         mov %r4, {netns}\nmov %r5, 0\ncall {id}\nmov %r7, %r0\n"
    )
}

fn sk_refs(out: &mut Vec<Gen>) {
    let types = [
        ProgType::SocketFilter,
        ProgType::SchedCls,
        ProgType::SchedAct,
        ProgType::CgroupSkb,
        ProgType::Xdp,
    ];
    // The endings the sk_lookup templates use, and reads and a write a common part refuses.
    let mut endings = super::sk_lookup::REF_ENDINGS.to_vec();
    endings.extend([
        (
            "type read, released",
            "jeq %r7, 0, +3\nldxw %r2, [%r7+8]\nmov %r1, %r7\ncall 86\n",
        ),
        (
            "state read, released",
            "jeq %r7, 0, +3\nldxw %r2, [%r7+72]\nmov %r1, %r7\ncall 86\n",
        ),
        (
            "written",
            "jeq %r7, 0, +3\nstw [%r7+4], 0\nmov %r1, %r7\ncall 86\n",
        ),
        (
            "returned",
            "jeq %r7, 0, +3\nmov %r1, %r7\ncall 86\nmov %r0, %r7\nexit\n",
        ),
    ]);
    for t in types {
        for id in [84, 85, 99] {
            for &(what, end) in &endings {
                let asm = format!("{}{end}mov %r0, 0\nexit", lookup(id, 36, -1));
                let desc = format!("{t:?} call {id} {what}");
                both(out, make("skb_sk_ref", desc, t, asm));
            }
            for size in [0, 1, 12, 20, 36, 40, 48] {
                let asm = format!(
                    "{}jeq %r7, 0, +2\nmov %r1, %r7\ncall 86\nmov %r0, 0\nexit",
                    lookup(id, size, 0)
                );
                let desc = format!("{t:?} call {id} tuple size {size}");
                both(out, make("skb_sk_ref", desc, t, asm));
            }
        }
        for (what, body) in [
            (
                "release skb->sk",
                "ldxdw %r2, [%r1+168]\njeq %r2, 0, +2\nmov %r1, %r2\ncall 86\n",
            ),
            (
                "assign skb->sk",
                "ldxdw %r2, [%r1+168]\nmov %r3, 0\ncall 124\n",
            ),
            (
                "assign checked skb->sk",
                "ldxdw %r2, [%r1+168]\njeq %r2, 0, +2\nmov %r3, 0\ncall 124\n",
            ),
            ("assign NULL", "mov %r2, 0\nmov %r3, 0\ncall 124\n"),
            ("assign a scalar", "mov %r2, 4\nmov %r3, 0\ncall 124\n"),
            ("assign the context", "mov %r2, %r1\nmov %r3, 0\ncall 124\n"),
            ("release NULL", "mov %r1, 0\ncall 86\n"),
            ("release a scalar", "mov %r1, 8\ncall 86\n"),
            (
                "lookup with a scalar tuple",
                "mov %r2, 0\nmov %r3, 12\nmov %r4, 0\nmov %r5, 0\ncall 84\n\
                 jeq %r0, 0, +2\nmov %r1, %r0\ncall 86\n",
            ),
            (
                "lookup with an unknown size",
                "stdw [%r10-8], 0\nstdw [%r10-16], 0\nmov %r6, %r1\ncall 7\nand %r0, 15\n\
                 mov %r3, %r0\nmov %r1, %r6\nmov %r2, %r10\nadd %r2, -16\nmov %r4, 0\n\
                 mov %r5, 0\ncall 84\njeq %r0, 0, +2\nmov %r1, %r0\ncall 86\n",
            ),
        ] {
            let asm = format!("{body}mov %r0, 0\nexit");
            both(out, make("skb_sk_ref", format!("{t:?} {what}"), t, asm));
        }
    }
}
