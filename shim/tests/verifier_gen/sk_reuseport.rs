//! `BPF_PROG_TYPE_SK_REUSEPORT`'s pointers and helpers (template `sk_reuseport_ptr`), both
//! privilege modes (its context's offsets × sizes are `sk_reuseport_ctx` in `sk_lookup.rs`):
//!
//! - the packet through `data`/`data_end`: checked to each length, then read or written at
//!   offsets around the proven range at every size; read unchecked; `data_end` moved;
//! - `migrating_sk` (`sock_common_or_null`) and `sk` (a socket) read at every offset × size of
//!   `struct bpf_sock`, with and without a NULL check, and written;
//! - the helpers kbpf offers the type: `bpf_skb_load_bytes`, `bpf_sk_select_reuseport` with a
//!   socket map and hash (and a base helper, and one it does not offer). Linux 6.18 also offers
//!   `bpf_skb_load_bytes_relative`, `bpf_get_socket_cookie` and `bpf_ktime_get_coarse_ns`,
//!   which kbpf refuses (`docs/kernel-compat.md`).

use super::{Gen, SIZES, both, make};
use kbpf::map::MapAttr;
use kbpf::uapi::{MapType, ProgType};

const T: ProgType = ProgType::SkReuseport;
const TEMPLATE: &str = "sk_reuseport_ptr";

fn add(out: &mut Vec<Gen>, desc: String, body: &str) {
    let asm = format!("{body}mov %r0, 1\nexit");
    both(out, make(TEMPLATE, desc, T, asm));
}

/// Every program of the template.
pub fn sk_reuseport(out: &mut Vec<Gen>) {
    // The packet, proven `n` bytes long, accessed around its end.
    for n in [0, 1, 8, 20] {
        for off in -1..n + 2 {
            for (_, s) in SIZES {
                let check = format!(
                    "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nmov %r4, %r2\nadd %r4, {n}\njgt %r4, %r3, +1\n"
                );
                add(
                    out,
                    format!("pkt n={n} ldx{s} off={off}"),
                    &format!("{check}ldx{s} %r0, [%r2{off:+}]\n"),
                );
                add(
                    out,
                    format!("pkt n={n} st{s} off={off}"),
                    &format!("{check}st{s} [%r2{off:+}], 0\n"),
                );
            }
        }
    }
    for (what, body) in [
        ("unchecked", "ldxdw %r2, [%r1+0]\nldxb %r0, [%r2+0]\n"),
        ("data_end read", "ldxdw %r3, [%r1+8]\nldxb %r0, [%r3+0]\n"),
        ("data_end moved", "ldxdw %r3, [%r1+8]\nadd %r3, 1\n"),
        (
            "checked from the end",
            "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nmov %r4, %r2\nadd %r4, 4\njle %r3, %r4, +1\nldxw %r0, [%r2+0]\n",
        ),
        ("data spilled", "ldxdw %r2, [%r1+0]\nstxdw [%r10-8], %r2\n"),
    ] {
        add(out, format!("pkt {what}"), body);
    }

    pkt_helpers(out);

    // The sockets: `migrating_sk` may be NULL, `sk` may not.
    for (field, at) in [("migrating_sk", 48), ("sk", 40)] {
        for off in -2..84 {
            for (_, s) in SIZES {
                let load = format!("ldxdw %r2, [%r1+{at}]\n");
                for (what, body) in [
                    (
                        "checked",
                        format!("{load}jeq %r2, 0, +1\nldx{s} %r3, [%r2{off:+}]\n"),
                    ),
                    ("unchecked", format!("{load}ldx{s} %r3, [%r2{off:+}]\n")),
                    (
                        "store",
                        format!("{load}jeq %r2, 0, +1\nst{s} [%r2{off:+}], 0\n"),
                    ),
                ] {
                    add(out, format!("{field} {what} ldx{s} off={off}"), &body);
                }
            }
        }
        let load = format!("ldxdw %r2, [%r1+{at}]\n");
        for (what, body) in [
            (
                "add",
                format!("{load}jeq %r2, 0, +2\nadd %r2, 4\nldxw %r3, [%r2+0]\n"),
            ),
            (
                "released",
                format!("{load}jeq %r2, 0, +2\nmov %r1, %r2\ncall 86\n"),
            ),
        ] {
            add(out, format!("{field} {what}"), &body);
        }
    }

    // The helpers.
    let stack = "mov %r3, %r10\nadd %r3, -8\n";
    for (what, body) in [
        (
            "skb_load_bytes",
            format!("mov %r2, 0\n{stack}mov %r4, 8\ncall 26\n"),
        ),
        (
            "skb_load_bytes len 0",
            format!("mov %r2, 0\n{stack}mov %r4, 0\ncall 26\n"),
        ),
        (
            "skb_load_bytes into the packet",
            String::from(
                "ldxdw %r3, [%r1+0]\nldxdw %r4, [%r1+8]\nmov %r5, %r3\nadd %r5, 8\njgt %r5, %r4, +3\nmov %r2, 0\nmov %r4, 8\ncall 26\n",
            ),
        ),
        (
            "skb_load_bytes unknown offset",
            format!("ldxw %r2, [%r1+16]\n{stack}mov %r4, 4\ncall 26\n"),
        ),
        ("get_prandom_u32", String::from("call 7\n")),
        ("skb_pull_data", String::from("mov %r2, 0\ncall 39\n")),
    ] {
        add(out, format!("helper {what}"), &body);
    }
    let select = "mov %r6, %r1\nstw [%r10-4], 0\nmov %r1, %r6\nlddw %r2, map_fd 0\nmov %r3, %r10\nadd %r3, -4\nmov %r4, 0\ncall 82\n";
    for (mname, ty) in [
        ("sockmap", MapType::Sockmap),
        ("sockhash", MapType::Sockhash),
    ] {
        for (vs, flags) in [(8, 0), (8, 1)] {
            let asm = format!("{select}mov %r0, 1\nexit")
                .replace("mov %r4, 0", &format!("mov %r4, {flags}"));
            let mut g = make(TEMPLATE, format!("select {mname} flags={flags}"), T, asm);
            g.maps = vec![MapAttr::new(ty, 4, vs, 4)];
            both(out, g);
        }
        // The key in the packet, and a map lookup keyed from the packet.
        for (what, call) in [
            (
                "select key in the packet",
                "mov %r1, %r6
lddw %r2, map_fd 0
mov %r4, 0
call 82
",
            ),
            (
                "lookup key in the packet",
                "lddw %r1, map_fd 0
mov %r2, %r3
call 1
",
            ),
        ] {
            let asm = format!(
                "mov %r6, %r1
ldxdw %r3, [%r6+0]
ldxdw %r4, [%r6+8]
mov %r5, %r3
add %r5, 4
                 jgt %r5, %r4, +{}
{call}mov %r0, 1
exit",
                // `lddw` takes two slots.
                call.lines().count() + call.matches("lddw").count()
            );
            let mut g = make(TEMPLATE, format!("{what} {mname}"), T, asm);
            g.maps = vec![MapAttr::new(ty, 4, 8, 4)];
            both(out, g);
        }
    }
}

/// Template `pkt_helper`: packet pointers given to helpers, which only those with
/// `pkt_access` take (TC, XDP, SK_REUSEPORT).
fn pkt_helpers(out: &mut Vec<Gen>) {
    // (type, data and data_end loads, helpers: name, call with the packet pointer in r3).
    let types = [
        (
            ProgType::SchedCls,
            "ldxw %r3, [%r1+76]\nldxw %r7, [%r1+80]\n",
        ),
        (ProgType::Xdp, "ldxw %r3, [%r1+0]\nldxw %r7, [%r1+4]\n"),
        (T, "ldxdw %r3, [%r1+0]\nldxdw %r7, [%r1+8]\n"),
    ];
    let calls = [
        ("load_bytes to", "mov %r2, 0\nmov %r4, 4\ncall 26\n"),
        (
            "store_bytes from",
            "mov %r2, 0\nmov %r4, 4\nmov %r5, 0\ncall 9\n",
        ),
        (
            "csum_diff",
            "mov %r1, %r3\nmov %r2, 4\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0\ncall 28\n",
        ),
        ("xdp_load_bytes to", "mov %r2, 0\nmov %r4, 4\ncall 189\n"),
        (
            "as ctx",
            "mov %r1, %r3\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 4\ncall 26\n",
        ),
        (
            "as size",
            "mov %r4, %r3\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -8\ncall 26\n",
        ),
    ];
    for (t, loads) in types {
        for (what, call) in calls {
            let n = call.lines().count();
            let asm = format!(
                "{loads}mov %r5, %r3\nadd %r5, 8\njgt %r5, %r7, +{n}\n{call}mov %r0, 1\nexit"
            );
            both(out, make("pkt_helper", format!("{t:?} {what}"), t, asm));
        }
    }
}
