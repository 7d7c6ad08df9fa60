//! Generated programs for the host-kernel differential of the verifier (`verifier_host.rs`):
//! templates, each swept over the parameters where kbpf and Linux could disagree, in both
//! privilege modes.
//!
//! - `ctx`: a load or store of every size at every offset around the context of each program
//!   type kbpf judges (`__sk_buff` for socket filters, TC and cgroup skb; `xdp_md`; sk_lookup).
//! - `stack`: loads and stores of every size at offsets around the frame, through R10 and
//!   through a moved stack pointer (alignment), over written and unwritten stack.
//! - `spill`: a register or an immediate stored with one width at a slot, read back with another
//!   at every offset of the slot; constants checked after the fill (a wrong constant takes a
//!   path that reads unwritten stack); pointers filled partly.
//! - `map`: lookups in arrays, per-CPU arrays and hashes with keys written as data or spilled,
//!   constant in range, out of range or unknown; the value used with and without a NULL check,
//!   at offsets around its end.
//! - `ptr`: pointer arithmetic on the context, stack, map values and packet, with constants and
//!   bounded variables, then an access.
//! - `pkt`: packet bounds checks against `data_end` with every comparison in both operand
//!   orders, then accesses around the proven range (XDP and TC).
//! - `pkt_end` (`pkt_end.rs`): the direction of a `data_end` check that proves the pointer
//!   at or beyond the end, in TC, XDP and SK_REUSEPORT: reads through it around the checked
//!   length, and a second comparison the first one decides.
//! - `linked`: a scalar copied (64/32-bit, sign-extending, through the stack, plus or minus a
//!   constant), one copy bounded by a branch, the other used as an index into a map value.
//! - `ld_abs`: the legacy packet loads in every program type, with R6 right and wrong, ABS and
//!   IND, in a subprogram, beside one, with a reference held.
//! - `helper`: a map key and value on the stack in every state (unwritten, partly written,
//!   zero, a spilled scalar of each width, a spilled pointer), at fixed and moved offsets.
//! - `atomic`: atomic operations on stack slots in every state and on map values, aligned and
//!   not, fetching or not, then the fetched value and the slot used.
//! - `sk_lookup_ctx`, `sk_lookup_sk`, `sk_lookup_ref`, `sk_reuseport_ctx` (`sk_lookup.rs`):
//!   the socket program types' contexts, `ctx->sk` and `struct bpf_sock` reads with and
//!   without NULL checks, socket-map lookups released or leaked, `bpf_sk_assign`, return
//!   values.
//! - `sk_reuseport_ptr` (`sk_reuseport.rs`): SK_REUSEPORT's packet through `data`/`data_end`,
//!   `sk` and `migrating_sk` read through, its helpers.
//! - `skb_ctx_sock`, `skb_sk`, `skb_sk_ref` (`skb_sock.rs`): the packet's socket in
//!   `__sk_buff` (`family` .. `local_port`, `sk`) for each packet type, `struct bpf_sock`
//!   through `skb->sk`, and the socket lookups of TC, cgroup skb and XDP with every tuple size
//!   and ending, `bpf_sk_release`, TC's `bpf_sk_assign`.
//! - `retcode` (`retcode.rs`): the main program's return value in every program type (and
//!   expected attach type where it matters): constants around each range's edges, unknown and
//!   bounded scalars, pointers, unwritten R0, values from a subprogram and from either side of
//!   a branch.
//! - `alu_bounds` (`bounds.rs`): every ALU operation, 64- and 32-bit, on destination and
//!   source values of known shapes (constants around the sign and 32-bit edges, masked,
//!   branch-bounded, signed ranges, unknown, 32-bit halves), the result a map value's offset.
//! - `branch_bounds` (`branch.rs`): every conditional jump, `JMP` and `JMP32`, immediate and
//!   register forms, with thresholds around 0, 15/16, -1 and the 32-bit edges, the refined
//!   register (or another bounded one it was compared with) a map value's offset on one side.
//! - `found`: programs wider runs of `combo` (other seeds, more programs) turned up, kept so
//!   that the fixed run covers their class too.
//! - `combo`: random sequences of small pieces of the above (spills, copies, checks, lookups,
//!   stores, pointer moves), so that their interactions — and pruning across them — are
//!   compared too.
//!
//! Each program is text in the conformance assembly; `maps` are the maps its `map_fd N` loads
//! name, by position.
#![allow(dead_code)]

use kbpf::map::MapAttr;
use kbpf::uapi::{AttachType, MapType, ProgType};

#[path = "../support/rng.rs"]
mod rng;
pub use rng::Rng;

mod bounds;
mod branch;
mod pkt_end;
mod retcode;
mod sk_lookup;
mod sk_reuseport;
mod skb_sock;

/// One generated program.
#[derive(Clone, Debug)]
pub struct Gen {
    /// The template it comes from.
    pub template: &'static str,
    /// Its parameters, for messages and for the list of known differences.
    pub desc: String,
    /// The program type.
    pub prog_type: ProgType,
    /// Root's rules.
    pub privileged: bool,
    /// The program.
    pub asm: String,
    /// The maps `map_fd N` refers to.
    pub maps: Vec<MapAttr>,
    /// The load's `expected_attach_type` (both sides).
    pub attach: Option<AttachType>,
}

/// The array every map template uses: 4 elements of 16 bytes.
pub const ARRAY: MapAttr = MapAttr::new(MapType::Array, 4, 16, 4);
const PERCPU: MapAttr = MapAttr::new(MapType::PercpuArray, 4, 16, 4);
const HASH: MapAttr = MapAttr::new(MapType::Hash, 4, 16, 4);

const SIZES: [(u8, &str); 4] = [(1, "b"), (2, "h"), (4, "w"), (8, "dw")];

/// Both privilege modes of `g`.
fn both(out: &mut Vec<Gen>, g: Gen) {
    out.push(Gen {
        privileged: true,
        ..g.clone()
    });
    out.push(Gen {
        privileged: false,
        ..g
    });
}

fn make(template: &'static str, desc: String, prog_type: ProgType, asm: String) -> Gen {
    Gen {
        template,
        desc,
        prog_type,
        privileged: false,
        asm,
        maps: Vec::new(),
        attach: default_attach(prog_type),
    }
}

/// The expected attach type a program of type `t` loads with unless a template says otherwise:
/// the one its type requires (`bpf_prog_load_check_attach`), else none.
fn default_attach(t: ProgType) -> Option<AttachType> {
    match t {
        ProgType::SkLookup => Some(AttachType::SkLookup),
        ProgType::Netfilter => Some(AttachType::Netfilter),
        _ => None,
    }
}

/// Every generated program, for `seed`; `combos` random combinations.
pub fn all(seed: u64, combos: usize) -> Vec<Gen> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    ctx(&mut out);
    stack(&mut out);
    spill(&mut out);
    map(&mut out, &mut rng);
    ptr(&mut out, &mut rng);
    pkt(&mut out, &mut rng);
    pkt_end::pkt_end(&mut out);
    linked(&mut out);
    ld_abs(&mut out);
    helper_mem(&mut out);
    atomic(&mut out);
    sk_lookup::sk_lookup(&mut out);
    sk_reuseport::sk_reuseport(&mut out);
    skb_sock::skb_sock(&mut out);
    retcode::retcode(&mut out);
    combo(&mut out, &mut rng, combos);
    found(&mut out);
    // The bounds templates draw from their own stream, so the programs above stay the same.
    let mut rng = Rng(seed.rotate_left(17) | 1);
    bounds::alu_bounds(&mut out, &mut rng);
    branch::branch_bounds(&mut out, &mut rng);
    out
}

/// Bytes of the context of `t` the sweep covers (a little past each struct's end).
fn ctx_len(t: ProgType) -> i32 {
    match t {
        ProgType::Xdp => 24,
        ProgType::SkLookup => 72,
        _ => 192,
    }
}

fn ctx(out: &mut Vec<Gen>) {
    let types = [
        ProgType::SocketFilter,
        ProgType::SchedCls,
        ProgType::SchedAct,
        ProgType::CgroupSkb,
        ProgType::Xdp,
        ProgType::SkLookup,
    ];
    for t in types {
        for off in -2..ctx_len(t) + 4 {
            for (n, s) in SIZES {
                let ld = format!("ldx{s} %r0, [%r1{off:+}]\nmov %r0, 0\nexit");
                let desc = format!("{t:?} ldx{s} off={off}");
                out.push(Gen {
                    privileged: true,
                    ..make("ctx", desc, t, ld)
                });
                let st = format!("mov %r2, 0\nstx{s} [%r1{off:+}], %r2\nmov %r0, 0\nexit");
                let desc = format!("{t:?} stx{s} off={off}");
                out.push(Gen {
                    privileged: true,
                    ..make("ctx", desc, t, st)
                });
                if n < 8 && off % 4 == 0 {
                    let sx = format!("ldxs{s} %r0, [%r1{off:+}]\nmov %r0, 0\nexit");
                    out.push(make("ctx", format!("{t:?} ldxs{s} off={off}"), t, sx));
                }
            }
        }
    }
}

fn stack(out: &mut Vec<Gen>) {
    let init = (1..=9)
        .map(|k| format!("stdw [%r10-{}], 0\n", 8 * k))
        .collect::<String>();
    let mut offs: Vec<i32> = (-80..4).collect();
    offs.extend(-528..-500);
    for &o in &offs {
        for (_, s) in SIZES {
            let t = ProgType::SocketFilter;
            let cases = [
                ("st", format!("st{s} [%r10{o:+}], 7\n")),
                ("stx", format!("mov %r2, 7\nstx{s} [%r10{o:+}], %r2\n")),
                ("ldx init", format!("{init}ldx{s} %r0, [%r10{o:+}]\n")),
                ("ldx uninit", format!("ldx{s} %r0, [%r10{o:+}]\n")),
            ];
            for (what, body) in cases {
                let asm = format!("{body}mov %r0, 0\nexit");
                both(out, make("stack", format!("{what}{s} off={o}"), t, asm));
            }
        }
    }
    // Through a moved pointer: the alignment counts the pointer's own offset.
    for k in [-1, -2, -3, -4, -6, -8, -9, -12, -16] {
        for o in -12..=0 {
            for (_, s) in SIZES {
                let asm = format!(
                    "{init}mov %r2, %r10\nadd %r2, {k}\nstx{s} [%r2{o:+}], %r2\nldx{s} %r0, [%r2{o:+}]\nmov %r0, 0\nexit"
                );
                let desc = format!("fp{k:+} stx/ldx{s} off={o}");
                both(out, make("stack", desc, ProgType::SocketFilter, asm));
            }
        }
    }
}

/// A branch on `r` that makes an access refused in both modes unless `r == want`.
fn expect(r: &str, want: &str) -> String {
    format!("jeq {r}, {want}, +2\nldxdw %r0, [%r10+0]\nexit\n")
}

fn spill(out: &mut Vec<Gen>) {
    let values = [
        ("const", "mov %r1, 0x1234\n"),
        ("big", "lddw %r1, 0x1122334455667788\n"),
        ("zero", "mov %r1, 0\n"),
        ("unknown", "call 7\nmov %r1, %r0\n"),
        ("ctx", ""),
        ("fp", "mov %r1, %r10\n"),
    ];
    let pre = [
        ("", ""),
        ("zeroed ", "stdw [%r10-16], 0\n"),
        ("data ", "mov %r3, -1\nstxdw [%r10-16], %r3\n"),
    ];
    for (vname, setv) in values {
        for (pname, setp) in pre {
            for (wn, ws) in SIZES {
                for (rn, rs) in SIZES {
                    for at in (0..8).step_by(rn as usize) {
                        let store = if vname == "const" && wn < 8 {
                            format!("st{ws} [%r10-16], 0x34\n")
                        } else {
                            format!("stx{ws} [%r10-16], %r1\n")
                        };
                        let fill = format!("ldx{rs} %r2, [%r10{:+}]\n", -16 + at);
                        let check = match vname {
                            "const" | "zero" => {
                                let v: u64 = if vname == "zero" { 0 } else { 0x1234 };
                                let mask = if rn == 8 {
                                    u64::MAX
                                } else {
                                    (1u64 << (8 * rn)) - 1
                                };
                                let w = if wn == 8 || vname == "zero" { v } else { 0x34 };
                                expect("%r2", &format!("{:#x}", (w >> (8 * at)) & mask))
                            }
                            _ => String::new(),
                        };
                        let asm = format!("{setp}{setv}{store}{fill}{check}mov %r0, 0\nexit");
                        let desc = format!("{pname}{vname} stx{ws} ldx{rs} at +{at}");
                        both(out, make("spill", desc, ProgType::SocketFilter, asm));
                    }
                }
            }
        }
    }
}

/// Map lookups: key written as data or spilled; the value used with and without a check.
fn map(out: &mut Vec<Gen>, rng: &mut Rng) {
    let maps = [("array", ARRAY), ("percpu", PERCPU), ("hash", HASH)];
    let keys = ["0", "1", "3", "4", "5", "-1", "unknown"];
    let writes = [
        "st fp-4",
        "st fp-8",
        "stx w fp-8",
        "stx dw fp-8",
        "stx w fp-4",
    ];
    for (mname, attr) in maps {
        for key in keys {
            for write in writes {
                let (set, at) = match (write, key) {
                    (_, "unknown") => {
                        let o = if write.ends_with("fp-4") { -4 } else { -8 };
                        (format!("call 7\nstxw [%r10{o:+}], %r0\n"), o)
                    }
                    ("st fp-4", k) => (format!("stw [%r10-4], {k}\n"), -4),
                    ("st fp-8", k) => (format!("stw [%r10-8], {k}\n"), -8),
                    ("stx w fp-8", k) => (format!("mov %r1, {k}\nstxw [%r10-8], %r1\n"), -8),
                    ("stx dw fp-8", k) => (format!("mov %r1, {k}\nstxdw [%r10-8], %r1\n"), -8),
                    (_, k) => (format!("mov %r1, {k}\nstxw [%r10-4], %r1\n"), -4),
                };
                for null_check in [false, true] {
                    let (off, (_, s)) = (rng.pick(&[-1, 0, 8, 12, 15, 16]), rng.pick(&SIZES));
                    let check = if null_check {
                        "jne %r0, 0, +2\nmov %r0, 0\nexit\n"
                    } else {
                        ""
                    };
                    let asm = format!(
                        "{set}mov %r2, %r10\nadd %r2, {at}\nlddw %r1, map_fd 0\ncall 1\n{check}ldx{s} %r1, [%r0{off:+}]\nmov %r0, 0\nexit"
                    );
                    let desc = format!("{mname} key={key} {write} check={null_check} ldx{s}@{off}");
                    let t = rng.pick(&[ProgType::SocketFilter, ProgType::Xdp]);
                    let g = Gen {
                        maps: vec![attr],
                        ..make("map", desc, t, asm)
                    };
                    both(out, g);
                }
            }
        }
    }
}

/// The lookup of key 0 in the array at `map_fd 0`, NULL-checked: the value in R0.
const LOOKUP: &str = "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, map_fd 0\ncall 1\njne %r0, 0, +2\nmov %r0, 0\nexit\n";

fn ptr(out: &mut Vec<Gen>, rng: &mut Rng) {
    let bases = [
        (
            "fp",
            "stdw [%r10-16], 0\nstdw [%r10-8], 0\nmov %r5, %r10\n",
            ProgType::SocketFilter,
        ),
        ("ctx", "mov %r5, %r1\n", ProgType::SocketFilter),
        ("map", "", ProgType::SocketFilter),
        (
            "pkt",
            "ldxw %r5, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r5\nadd %r4, 16\njle %r4, %r3, +2\nmov %r0, 0\nexit\n",
            ProgType::Xdp,
        ),
    ];
    let ops = [
        "add %r5, K",
        "sub %r5, K",
        "mov %r6, K\nadd %r5, %r6",
        "mov %r6, K\nsub %r5, %r6",
        "call 7\nmov %r6, %r0\nand %r6, 7\nadd %r5, %r6",
        "call 7\nmov %r6, %r0\njgt %r6, 7, +4\nadd %r5, %r6",
        "call 7\nmov %r6, %r0\nadd %r5, %r6",
        "add32 %r5, K",
        "mov %r6, %r5\nadd %r5, %r6",
        "neg %r5",
        "and %r5, K",
    ];
    for (bname, setup, t) in bases {
        for op in ops {
            for k in [-16, -8, -1, 0, 1, 4, 8, 16] {
                for (_, s) in SIZES {
                    let off = rng.pick(&[-8, -1, 0, 1, 4, 8]);
                    // Keep R5 across the prandom call: compute the base after it.
                    let (pre, op) = match op.split_once("call 7\n") {
                        Some((_, rest)) => ("call 7\nmov %r7, %r0\n", rest.replace("%r0", "%r7")),
                        None => ("", op.to_string()),
                    };
                    let base = if bname == "map" {
                        format!("{LOOKUP}mov %r5, %r0\n")
                    } else {
                        setup.to_string()
                    };
                    let body = op.replace('K', &k.to_string());
                    let asm =
                        format!("{pre}{base}{body}\nldx{s} %r0, [%r5{off:+}]\nmov %r0, 0\nexit");
                    let desc = format!("{bname} `{}` K={k} ldx{s}@{off}", op.replace('\n', "; "));
                    let maps = if bname == "map" {
                        vec![ARRAY]
                    } else {
                        Vec::new()
                    };
                    both(
                        out,
                        Gen {
                            maps,
                            ..make("ptr", desc, t, asm)
                        },
                    );
                }
            }
        }
    }
}

fn pkt(out: &mut Vec<Gen>, rng: &mut Rng) {
    // (prologue, data register, end register)
    let types = [
        (ProgType::Xdp, "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\n"),
        (
            ProgType::SchedCls,
            "ldxw %r2, [%r1+76]\nldxw %r3, [%r1+80]\n",
        ),
    ];
    // Each form jumps to `out` when the checked pointer is past the end.
    let forms = [
        "jgt %r4, %r3, +G",
        "jge %r4, %r3, +G",
        "jlt %r3, %r4, +G",
        "jle %r3, %r4, +G",
        "jle %r4, %r3, +1\nja +G",
        "jlt %r4, %r3, +1\nja +G",
        "jge %r3, %r4, +1\nja +G",
        "jgt %r3, %r4, +1\nja +G",
    ];
    for (t, pro) in types {
        for form in forms {
            for k in 0..10 {
                for _ in 0..3 {
                    let (n, s) = rng.pick(&SIZES);
                    let off = rng.below(k as u64 + 4) as i32 - 1;
                    let access = rng.pick(&["ldx", "st"]);
                    let acc = if access == "ldx" {
                        format!("ldx{s} %r0, [%r2{off:+}]\n")
                    } else {
                        format!("st{s} [%r2{off:+}], 1\n")
                    };
                    let body = format!("{acc}mov %r0, 0\nexit\n");
                    let gap = body.lines().count();
                    let f = form.replace('G', &gap.to_string());
                    let asm =
                        format!("{pro}mov %r4, %r2\nadd %r4, {k}\n{f}\n{body}mov %r0, 0\nexit");
                    let desc = format!(
                        "{t:?} `{}` K={k} {access}{n}@{off}",
                        form.replace('\n', "; ")
                    );
                    both(out, make("pkt", desc, t, asm));
                }
            }
        }
    }
}

fn linked(out: &mut Vec<Gen>) {
    // r6: an unknown u32 from the context; r7: a 16-byte map value.
    let pre = format!("mov %r9, %r1\n{LOOKUP}mov %r7, %r0\nldxw %r6, [%r9+0]\n");
    let copies = [
        ("mov", "mov %r0, %r6\n"),
        ("mov32", "mov32 %r0, %r6\n"),
        ("movsx3264", "movsx3264 %r0, %r6\n"),
        ("movsx1664", "and %r6, 0x7fff\nmovsx1664 %r0, %r6\n"),
        ("movsx832", "movsx832 %r0, %r6\n"),
        ("spill dw", "stxdw [%r10-16], %r6\nldxdw %r0, [%r10-16]\n"),
        ("spill w", "stxw [%r10-16], %r6\nldxw %r0, [%r10-16]\n"),
        (
            "spill dw fill w",
            "stxdw [%r10-16], %r6\nldxw %r0, [%r10-16]\n",
        ),
        ("+1", "mov %r0, %r6\nadd %r0, 1\n"),
        ("-1", "mov %r0, %r6\nadd %r0, -1\n"),
        ("sub 3", "mov %r0, %r6\nsub %r0, 3\n"),
        ("+1+1", "mov %r0, %r6\nadd %r0, 1\nadd %r0, 1\n"),
        ("add32 1", "mov %r0, %r6\nadd32 %r0, 1\n"),
        (
            "copy of +1",
            "mov %r0, %r6\nadd %r0, 1\nmov %r3, %r0\nmov %r0, %r3\n",
        ),
        (
            "mov then clobber",
            "mov %r0, %r6\nmov %r6, %r0\nadd %r6, 0\n",
        ),
        ("x2", "mov %r0, %r6\nmov %r3, %r0\nmov %r0, %r3\n"),
    ];
    for (cname, copy) in copies {
        for bound in [12, 15, 16, 17] {
            for checked in ["%r0", "%r6"] {
                let used = if checked == "%r0" { "%r6" } else { "%r0" };
                for cond in ["jgt", "jge", "jsgt", "jgt32"] {
                    let asm = format!(
                        "{pre}{copy}{cond} {checked}, {bound}, +2\nadd %r7, {used}\nldxb %r1, [%r7+0]\nmov %r0, 0\nexit"
                    );
                    let desc = format!("{cname} {cond} {checked}>{bound} use {used}");
                    let g = Gen {
                        maps: vec![ARRAY],
                        ..make("linked", desc, ProgType::SocketFilter, asm)
                    };
                    both(out, g);
                }
            }
        }
    }
}

fn ld_abs(out: &mut Vec<Gen>) {
    let types = [
        ProgType::SocketFilter,
        ProgType::SchedCls,
        ProgType::SchedAct,
        ProgType::Xdp,
        ProgType::CgroupSkb,
    ];
    let r6s = [
        ("ctx", "mov %r6, %r1\n"),
        ("ctx+8", "mov %r6, %r1\nadd %r6, 8\n"),
        ("scalar", "mov %r6, 0\n"),
        ("fp", "mov %r6, %r10\n"),
        ("uninit", ""),
    ];
    let loads = [
        "ldabsb 0",
        "ldabsh 12",
        "ldabsw 2",
        "ldabsb -1",
        "ldindb %r7, 1",
        "ldindw %r7, -4",
        "ldindh %r8, 0",
    ];
    for t in types {
        for (rname, r6) in r6s {
            for load in loads {
                for after in ["mov %r0, %r7", "mov %r0, %r1", "mov %r0, %r0"] {
                    let asm = format!("mov %r7, 3\n{r6}{load}\n{after}\nmov %r0, 0\nexit");
                    let desc = format!("{t:?} r6={rname} `{load}` then `{after}`");
                    both(out, make("ld_abs", desc, t, asm));
                }
                let sub = format!(
                    "mov %r7, 3\n{r6}call local +2\nmov %r0, 0\nexit\nmov %r7, 1\n{load}\nmov %r0, 0\nexit"
                );
                let desc = format!("{t:?} r6={rname} `{load}` in a subprogram");
                both(out, make("ld_abs", desc, t, sub));
                let main = format!(
                    "mov %r7, 3\n{r6}{load}\ncall local +2\nmov %r0, 0\nexit\nmov %r0, 1\nexit"
                );
                let desc = format!("{t:?} r6={rname} `{load}` beside a subprogram");
                both(out, make("ld_abs", desc, t, main));
            }
        }
    }
}

/// Ways a stack slot at fp-16 can be before a helper or an atomic reads it.
const SLOT_STATES: [(&str, &str); 9] = [
    ("unwritten", ""),
    ("zero", "stdw [%r10-16], 0\n"),
    ("data", "mov %r3, -1\nstxdw [%r10-16], %r3\n"),
    ("half", "stw [%r10-12], 0\n"),
    ("spill w", "mov %r3, 2\nstxw [%r10-16], %r3\n"),
    ("spill dw", "mov %r3, 2\nstxdw [%r10-16], %r3\n"),
    ("st w", "stw [%r10-16], 1\n"),
    ("spilled fp", "mov %r3, %r10\nstxdw [%r10-16], %r3\n"),
    ("spilled ctx", "stxdw [%r10-16], %r1\n"),
];

fn helper_mem(out: &mut Vec<Gen>) {
    for (sname, set) in SLOT_STATES {
        for key_off in [-16, -12, -8, -20, -14] {
            let asm = format!(
                "{set}mov %r2, %r10\nadd %r2, {key_off}\nlddw %r1, map_fd 0\ncall 1\nmov %r0, 0\nexit"
            );
            let desc = format!("lookup key@{key_off} over {sname}");
            let g = Gen {
                maps: vec![HASH],
                ..make("helper", desc, ProgType::SocketFilter, asm)
            };
            both(out, g);
            // An update whose value (16 bytes) starts at the slot.
            let asm = format!(
                "{set}stdw [%r10-8], 0\nstw [%r10-24], 0\nmov %r3, %r10\nadd %r3, {key_off}\nmov %r2, %r10\nadd %r2, -24\nlddw %r1, map_fd 0\nmov %r4, 0\ncall 2\nmov %r0, 0\nexit"
            );
            let desc = format!("update value@{key_off} over {sname}");
            let g = Gen {
                maps: vec![HASH],
                ..make("helper", desc, ProgType::SocketFilter, asm)
            };
            both(out, g);
        }
    }
}

fn atomic(out: &mut Vec<Gen>) {
    let ops = [
        "lock add",
        "lock fetch add",
        "lock xchg",
        "lock cmpxchg",
        "lock fetch or",
    ];
    for (sname, set) in SLOT_STATES {
        for op in ops {
            for (size, sfx) in [(4, "32"), (8, "")] {
                for off in [-16, -12, -14, -8] {
                    let body = format!(
                        "{set}mov %r0, 0\nmov %r4, 1\n{op}{sfx} [%r10{off:+}], %r4\nmov %r0, %r4\nadd %r0, 1\nldxdw %r5, [%r10-16]\nmov %r0, 0\nexit"
                    );
                    let desc = format!("{op}{sfx} size {size} @{off} over {sname}");
                    both(out, make("atomic", desc, ProgType::SocketFilter, body));
                }
            }
        }
    }
    for op in ops {
        for off in [0, 4, 2, 8, 12, 14, 16] {
            let asm = format!("{LOOKUP}mov %r4, 1\n{op} [%r0{off:+}], %r4\nmov %r0, 0\nexit");
            let g = Gen {
                maps: vec![ARRAY],
                ..make(
                    "atomic",
                    format!("{op} map value @{off}"),
                    ProgType::SocketFilter,
                    asm,
                )
            };
            both(out, g);
        }
    }
}

/// Random pieces over a fixed register plan: R6 an unknown u32, R7 a 16-byte map value, R8 a
/// copy or a derived scalar, R9 the context; the stack at fp-8..fp-32.
fn combo(out: &mut Vec<Gen>, rng: &mut Rng, n: usize) {
    let pieces: &[&str] = &[
        "mov %r8, %r6\n",
        "mov32 %r8, %r6\n",
        "mov %r8, %r6\nadd %r8, 3\n",
        "mov %r8, %r6\nsub %r8, 2\n",
        "mov %r8, %r6\nadd32 %r8, 1\n",
        "stxdw [%r10-16], %r6\n",
        "stxw [%r10-16], %r6\n",
        "ldxdw %r8, [%r10-16]\n",
        "ldxw %r8, [%r10-16]\n",
        "ldxb %r8, [%r10-16]\n",
        "stxdw [%r10-24], %r8\n",
        "ldxdw %r6, [%r10-24]\n",
        "jgt %r6, 15, +1\n",
        "jgt %r8, 15, +1\n",
        "jgt32 %r8, 15, +1\n",
        "jsgt %r8, 15, +1\n",
        "jlt %r6, 4, +1\n",
        "and %r6, 15\n",
        "and %r8, 7\n",
        "mov %r1, %r7\nadd %r1, %r6\nldxb %r2, [%r1+0]\n",
        "mov %r1, %r7\nadd %r1, %r8\nldxb %r2, [%r1+0]\n",
        "mov %r1, %r7\nadd %r1, %r8\nstb [%r1+0], 1\n",
        "stw [%r10-8], 1\nmov %r2, %r10\nadd %r2, -8\nlddw %r1, map_fd 0\ncall 1\nmov %r7, %r0\n",
        "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, map_fd 0\ncall 1\njeq %r0, 0, +1\nmov %r7, %r0\n",
        "stxw [%r10-8], %r8\nmov %r2, %r10\nadd %r2, -8\nlddw %r1, map_fd 0\ncall 1\njeq %r0, 0, +1\nmov %r7, %r0\n",
        "mov %r1, 1\nlock add [%r10-16], %r1\n",
        "stb [%r10-15], 0\n",
        "call 7\nmov %r8, %r0\n",
        "ldxw %r8, [%r9+0]\n",
        "mov %r8, 0\n",
        "lsh %r8, 1\n",
    ];
    for i in 0..n {
        let mut body =
            String::from("mov %r9, %r1\nstdw [%r10-16], 0\nstdw [%r10-24], 0\nmov %r8, 0\n");
        body.push_str(LOOKUP);
        body.push_str("mov %r7, %r0\nldxw %r6, [%r9+0]\n");
        let k = 2 + rng.below(5) as usize;
        let mut picked = Vec::new();
        for _ in 0..k {
            let p = rng.below(pieces.len() as u64) as usize;
            picked.push(p);
            body.push_str(pieces[p]);
        }
        body.push_str("mov %r0, 0\nexit");
        let desc = format!("#{i} pieces {picked:?}");
        let g = Gen {
            maps: vec![ARRAY],
            ..make("combo", desc, ProgType::SocketFilter, body)
        };
        both(out, g);
    }
}

/// Programs found by wider runs (`KBPF_GEN_SEED`, `KBPF_GEN_COMBOS`), each the smallest of its
/// class.
fn found(out: &mut Vec<Gen>) {
    let pro = "mov %r9, %r1\nstdw [%r10-16], 0\nstdw [%r10-24], 0\nmov %r8, 0\n";
    let cases = [
        (
            // Seed 11: a speculative path's error makes the host put a barrier before the
            // pointer arithmetic, which then needs no mask: the masks of the two real paths
            // (a variable and a constant offset) may differ there.
            "spectre nospec: masks differ between paths",
            "jgt %r6, 15, +1\nmov %r8, %r6\njgt %r8, 15, +1\nstxdw [%r10-16], %r6\nmov %r1, %r7\nadd %r1, %r8\nldxb %r2, [%r1+0]\n",
        ),
        (
            // Seed 0x6b62..: the 64-bit range of a linked copy narrowed by a 32-bit branch to
            // the next 2^32 window, then given back to the original.
            "jgt32 moves a linked range to the next 2^32 window",
            "mov %r8, %r6\nadd %r8, 3\njgt %r8, 15, +1\nldxdw %r6, [%r10-24]\njgt32 %r8, 15, +1\nmov %r1, %r7\nadd %r1, %r6\nldxb %r2, [%r1+0]\n",
        ),
    ];
    for (desc, body) in cases {
        let asm = format!("{pro}{LOOKUP}mov %r7, %r0\nldxw %r6, [%r9+0]\n{body}mov %r0, 0\nexit");
        let g = Gen {
            maps: vec![ARRAY],
            ..make("found", desc.to_string(), ProgType::SocketFilter, asm)
        };
        both(out, g);
    }
}
