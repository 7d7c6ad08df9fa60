//! Conntrack programs as BPF assembly, for kbpf and (with the host's BTF ids) for the host
//! kernel alike: a *probe* (one lookup, or one allocation + insertion, from XDP or TC, whose
//! return value says what happened), and the programs `kbpf bench ct` and
//! `scripts/compare-ct` time (fill a table, look up a fixed or rotating tuple), shaped after
//! `shared/oracle/ct_bench.c`.
//!
//! Stack layout of every program: the tuple at fp-48 (36 bytes), `struct bpf_ct_opts` at
//! fp-72 (up to 24 bytes), the state map's key at fp-4.

use std::fmt::Write;

/// The kfunc ids a program calls: kbpf's own, or the host kernel's BTF ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KfuncIds {
    /// `bpf_xdp_ct_lookup`.
    pub xdp_lookup: u32,
    /// `bpf_skb_ct_lookup`.
    pub skb_lookup: u32,
    /// `bpf_xdp_ct_alloc`.
    pub xdp_alloc: u32,
    /// `bpf_skb_ct_alloc`.
    pub skb_alloc: u32,
    /// `bpf_ct_insert_entry`.
    pub insert: u32,
    /// `bpf_ct_release`.
    pub release: u32,
    /// `bpf_ct_set_timeout`.
    pub set_timeout: u32,
    /// `bpf_ct_set_status`.
    pub set_status: u32,
}

impl KfuncIds {
    /// kbpf's ids.
    pub fn kbpf() -> KfuncIds {
        use kbpf::kfunc::ids;
        KfuncIds {
            xdp_lookup: ids::BPF_XDP_CT_LOOKUP,
            skb_lookup: ids::BPF_SKB_CT_LOOKUP,
            xdp_alloc: ids::BPF_XDP_CT_ALLOC,
            skb_alloc: ids::BPF_SKB_CT_ALLOC,
            insert: ids::BPF_CT_INSERT_ENTRY,
            release: ids::BPF_CT_RELEASE,
            set_timeout: ids::BPF_CT_SET_TIMEOUT,
            set_status: ids::BPF_CT_SET_STATUS,
        }
    }

    /// The ids by kfunc name (`name` → id), as a loader resolves them.
    pub fn resolve(mut id: impl FnMut(&str) -> Option<u32>) -> Option<KfuncIds> {
        Some(KfuncIds {
            xdp_lookup: id("bpf_xdp_ct_lookup")?,
            skb_lookup: id("bpf_skb_ct_lookup")?,
            xdp_alloc: id("bpf_xdp_ct_alloc")?,
            skb_alloc: id("bpf_skb_ct_alloc")?,
            insert: id("bpf_ct_insert_entry")?,
            release: id("bpf_ct_release")?,
            set_timeout: id("bpf_ct_set_timeout")?,
            set_status: id("bpf_ct_set_status")?,
        })
    }
}

/// Which hook a program is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// XDP (`bpf_xdp_ct_*`).
    Xdp,
    /// TC (`bpf_skb_ct_*`).
    Tc,
}

impl Hook {
    /// The program type.
    pub fn prog_type(self) -> kbpf::uapi::ProgType {
        match self {
            Hook::Xdp => kbpf::uapi::ProgType::Xdp,
            Hook::Tc => kbpf::uapi::ProgType::SchedCls,
        }
    }

    fn lookup(self, k: &KfuncIds) -> u32 {
        match self {
            Hook::Xdp => k.xdp_lookup,
            Hook::Tc => k.skb_lookup,
        }
    }

    fn alloc(self, k: &KfuncIds) -> u32 {
        match self {
            Hook::Xdp => k.xdp_alloc,
            Hook::Tc => k.skb_alloc,
        }
    }
}

/// Where the tuple and the options sit (fp-relative).
pub const TUPLE_OFF: i32 = -48;
/// See [`TUPLE_OFF`].
pub const OPTS_OFF: i32 = -72;

/// What a probe does after building its tuple and options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeOp {
    /// One lookup; releases what it finds.
    Lookup,
    /// One allocation, then (optionally) a timeout and a status, then insertion; releases
    /// what insertion returns.
    AllocInsert {
        /// `bpf_ct_set_timeout` argument, if any.
        timeout_ms: Option<u32>,
        /// `bpf_ct_set_status` argument, if any.
        status: Option<u32>,
    },
}

/// A probe's answer, decoded from its return value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// The lookup found an entry; `opts.dir` and `opts.error` afterwards.
    Found {
        /// `opts.dir`.
        dir: u8,
    },
    /// NULL; `opts.error` afterwards (the negative errno, or what the options held before if
    /// nothing wrote it).
    Null {
        /// `opts.error`.
        error: i32,
    },
    /// Allocated, but insertion returned NULL.
    InsertFailed,
    /// Allocated and inserted.
    Inserted,
}

const FOUND: u32 = 0x4000_0000;
const INSERT_FAILED: u32 = 0x4000_0100;
const INSERTED: u32 = 0x4000_0200;

impl ProbeResult {
    /// Decodes a probe's return value.
    pub fn decode(r0: u32) -> ProbeResult {
        match r0 {
            INSERT_FAILED => ProbeResult::InsertFailed,
            INSERTED => ProbeResult::Inserted,
            r if r & 0xffff_ff00 == FOUND => ProbeResult::Found { dir: r as u8 },
            r => ProbeResult::Null { error: r as i32 },
        }
    }
}

/// One lookup or allocation with the given tuple and options bytes.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The hook.
    pub hook: Hook,
    /// What it does.
    pub op: ProbeOp,
    /// Tuple bytes written at [`TUPLE_OFF`] (at most 36).
    pub tuple: Vec<u8>,
    /// `tuple__sz`.
    pub tuple_sz: u32,
    /// Pass NULL as the tuple (then `tuple__sz` should be 0 for the verifier).
    pub tuple_null: bool,
    /// Options bytes written at [`OPTS_OFF`] (at most 24).
    pub opts: Vec<u8>,
    /// `opts__sz`.
    pub opts_sz: u32,
}

/// Stores `bytes` at `fp + off`, one byte at a time.
fn store_bytes(s: &mut String, off: i32, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        let _ = writeln!(s, "stb [%r10{:+}], {b}", off + i as i32);
    }
}

impl Probe {
    /// The program text.
    pub fn asm(&self, k: &KfuncIds) -> String {
        assert!(self.tuple.len() <= 36 && self.opts.len() <= 24);
        let mut s = String::from("mov %r6, %r1\n");
        store_bytes(&mut s, TUPLE_OFF, &self.tuple);
        store_bytes(&mut s, OPTS_OFF, &self.opts);
        s.push_str("mov %r1, %r6\n");
        if self.tuple_null {
            s.push_str("mov %r2, 0\n");
        } else {
            let _ = writeln!(s, "mov %r2, %r10\nadd %r2, {TUPLE_OFF}");
        }
        let _ = writeln!(
            s,
            "mov %r3, {}\nmov %r4, %r10\nadd %r4, {OPTS_OFF}\nmov %r5, {}",
            self.tuple_sz, self.opts_sz
        );
        let err = format!("null: ldxw %r0, [%r10{:+}]\nexit\n", OPTS_OFF + 4);
        match self.op {
            ProbeOp::Lookup => {
                let _ = writeln!(s, "call kfunc {}", self.hook.lookup(k));
                let _ = writeln!(
                    s,
                    "jeq %r0, 0, null\nmov %r1, %r0\ncall kfunc {}\nldxb %r0, [%r10{:+}]\nor %r0, {FOUND}\nexit",
                    k.release,
                    OPTS_OFF + 9
                );
            }
            ProbeOp::AllocInsert { timeout_ms, status } => {
                let _ = writeln!(
                    s,
                    "call kfunc {}\njeq %r0, 0, null\nmov %r7, %r0",
                    self.hook.alloc(k)
                );
                if let Some(t) = timeout_ms {
                    let _ = writeln!(
                        s,
                        "mov %r1, %r7\nmov %r2, {t}\ncall kfunc {}",
                        k.set_timeout
                    );
                }
                if let Some(st) = status {
                    let _ = writeln!(
                        s,
                        "mov %r1, %r7\nmov %r2, {st}\ncall kfunc {}",
                        k.set_status
                    );
                }
                let _ = writeln!(
                    s,
                    "mov %r1, %r7\ncall kfunc {}\njeq %r0, 0, failed\nmov %r1, %r0\ncall kfunc {}\nmov %r0, {INSERTED}\nexit\nfailed: mov %r0, {INSERT_FAILED}\nexit",
                    k.insert, k.release
                );
            }
        }
        s.push_str(&err);
        s
    }
}

/// `struct bpf_ct_opts` bytes (16, the final layout): `netns_id`, `error` (a sentinel the
/// kfunc overwrites on failure), `l4proto`, `ct_zone_id`, `ct_zone_dir`, `reserved[0]`.
pub fn opts(netns_id: i32, l4proto: u8, zone_id: u16, zone_dir: u8, reserved0: u8) -> Vec<u8> {
    let mut o = vec![0u8; 16];
    o[0..4].copy_from_slice(&netns_id.to_ne_bytes());
    o[4..8].copy_from_slice(&0x7777i32.to_ne_bytes());
    o[8] = l4proto;
    o[9] = 0x55; // `dir`: written by a successful lookup
    o[10..12].copy_from_slice(&zone_id.to_ne_bytes());
    o[12] = zone_dir;
    o[13] = reserved0;
    o
}

/// The sentinel [`opts`] leaves in `error`.
pub const ERROR_SENTINEL: i32 = 0x7777;

/// A `struct bpf_sock_tuple` IPv4 form: addresses and ports in network order.
pub fn tuple_v4(saddr: [u8; 4], daddr: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut t = Vec::with_capacity(12);
    t.extend_from_slice(&saddr);
    t.extend_from_slice(&daddr);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t
}

/// The bench's tuple `i`: 10.0.0.1+(i>>16) : (i & 0xffff) -> daddr : 80 (`ct_bench.c`).
pub fn bench_tuple(i: u32, daddr: [u8; 4]) -> Vec<u8> {
    let s = (0x0A00_0001u32 + (i >> 16)).to_be_bytes();
    tuple_v4(s, daddr, (i & 0xffff) as u16, 80)
}

/// Destination of the bench's inserted tuples (10.1.0.1).
pub const BENCH_DADDR: [u8; 4] = [10, 1, 0, 1];
/// Destination no bench tuple has (10.2.0.1): every lookup misses.
pub const BENCH_DADDR_MISS: [u8; 4] = [10, 2, 0, 1];

/// The value of the bench's one-slot array map (`struct ct_state` of `ct_bench.c`).
pub mod state {
    /// `next`: the fill's next tuple index.
    pub const NEXT: i32 = 0;
    /// `ok`: entries inserted.
    pub const OK: i32 = 4;
    /// `fail_alloc`.
    pub const FAIL_ALLOC: i32 = 8;
    /// `fail_insert`.
    pub const FAIL_INSERT: i32 = 12;
    /// `err`: `opts.error` of the last failed allocation.
    pub const ERR: i32 = 16;
    /// `cursor`: the rotating lookup's next index.
    pub const CURSOR: i32 = 20;
    /// Value size.
    pub const SIZE: u32 = 32;
}

/// `r8 = &state` from map handle `map` (`lddw` by handle, which the host side rewrites), or
/// exit with `XDP_ABORTED`.
fn state_ptr(s: &mut String, map: u32) {
    let _ = writeln!(
        s,
        "stw [%r10-4], 0\nlddw %r1, map_fd {map}\nmov %r2, %r10\nadd %r2, -4\ncall 1\njne %r0, 0, +2\nmov %r0, 0\nexit\nmov %r8, %r0"
    );
}

/// The tuple of index `reg` (10.0.0.1+(i>>16):(i&0xffff) -> daddr:80), computed at run time.
fn tuple_from_reg(s: &mut String, reg: u8, daddr: [u8; 4]) {
    let d = u32::from_ne_bytes(daddr);
    let _ = writeln!(
        s,
        "mov %r1, %r{reg}\nrsh %r1, 16\nadd %r1, 0x0a000001\nbe32 %r1\nstxw [%r10{t0:+}], %r1\nstw [%r10{t4:+}], {d}\nmov %r1, %r{reg}\nand %r1, 0xffff\nbe16 %r1\nstxh [%r10{t8:+}], %r1\nsth [%r10{t10:+}], {dport}",
        t0 = TUPLE_OFF,
        t4 = TUPLE_OFF + 4,
        t8 = TUPLE_OFF + 8,
        t10 = TUPLE_OFF + 10,
        dport = 80u16.to_be() as i16,
    );
}

/// The default options (netns -1, TCP, zone 0), 16 bytes, stored as words.
fn default_opts(s: &mut String) {
    let _ = writeln!(
        s,
        "stw [%r10{a:+}], -1\nstw [%r10{b:+}], 0\nstw [%r10{c:+}], 6\nstw [%r10{d:+}], 0",
        a = OPTS_OFF,
        b = OPTS_OFF + 4,
        c = OPTS_OFF + 8,
        d = OPTS_OFF + 12
    );
}

fn ct_call(s: &mut String, kfunc: u32) {
    let _ = writeln!(
        s,
        "mov %r1, %r6\nmov %r2, %r10\nadd %r2, {TUPLE_OFF}\nmov %r3, 12\nmov %r4, %r10\nadd %r4, {OPTS_OFF}\nmov %r5, 16\ncall kfunc {kfunc}"
    );
}

fn inc(s: &mut String, off: i32) {
    let _ = writeln!(
        s,
        "ldxw %r1, [%r8{off:+}]\nadd %r1, 1\nstxw [%r8{off:+}], %r1"
    );
}

/// The fill program (XDP): inserts tuple `state.next++` with `timeout_ms`, counting successes
/// and failures in the state map (handle `map`). Run it with `repeat` = N to insert N entries.
pub fn fill(k: &KfuncIds, map: u32, timeout_ms: u32) -> String {
    let mut s = String::from("mov %r6, %r1\n");
    state_ptr(&mut s, map);
    let _ = writeln!(
        s,
        "ldxw %r7, [%r8{n:+}]\nmov %r1, %r7\nadd %r1, 1\nstxw [%r8{n:+}], %r1",
        n = state::NEXT
    );
    tuple_from_reg(&mut s, 7, BENCH_DADDR);
    default_opts(&mut s);
    ct_call(&mut s, k.xdp_alloc);
    s.push_str("jne %r0, 0, have\n");
    inc(&mut s, state::FAIL_ALLOC);
    let _ = writeln!(
        s,
        "ldxw %r1, [%r10{e:+}]\nstxw [%r8{err:+}], %r1\nja out",
        e = OPTS_OFF + 4,
        err = state::ERR
    );
    let _ = writeln!(
        s,
        "have: mov %r7, %r0\nmov %r1, %r7\nmov %r2, {timeout_ms}\ncall kfunc {}\nmov %r1, %r7\ncall kfunc {}\njne %r0, 0, ins",
        k.set_timeout, k.insert
    );
    inc(&mut s, state::FAIL_INSERT);
    s.push_str("ja out\nins: mov %r1, %r0\n");
    let _ = writeln!(s, "call kfunc {}", k.release);
    inc(&mut s, state::OK);
    s.push_str("out: mov %r0, 2\nexit\n");
    s
}

/// What a bench program does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchKind {
    /// Builds the tuple and options only (the baseline).
    Base,
    /// Builds them, then one lookup and a release of what it finds; returns `XDP_PASS` (2)
    /// when found, `XDP_DROP` (1) when not.
    Lookup,
}

/// A bench program (XDP): a fixed tuple (index `fixed` of the fill's tuples, towards `daddr`),
/// or a rotating one (`rotate` = (entries, stride): the index advances by `stride` modulo
/// `entries` in the state map, handle `map`, every run).
pub fn bench(
    k: &KfuncIds,
    kind: BenchKind,
    daddr: [u8; 4],
    fixed: u32,
    rotate: Option<(u32, u32)>,
    map: u32,
) -> String {
    let mut s = String::from("mov %r6, %r1\n");
    match rotate {
        Some((n, stride)) => {
            state_ptr(&mut s, map);
            let _ = writeln!(
                s,
                "ldxw %r7, [%r8{c:+}]\nmov %r1, %r7\nadd %r1, {stride}\njlt %r1, {n}, +1\nsub %r1, {n}\nstxw [%r8{c:+}], %r1",
                c = state::CURSOR
            );
            tuple_from_reg(&mut s, 7, daddr);
        }
        None => {
            let t = bench_tuple(fixed, daddr);
            for (i, w) in t.chunks(4).enumerate() {
                let v = u32::from_ne_bytes(w.try_into().expect("4 bytes"));
                let _ = writeln!(s, "stw [%r10{:+}], {v}", TUPLE_OFF + 4 * i as i32);
            }
        }
    }
    default_opts(&mut s);
    match kind {
        BenchKind::Base => s.push_str("mov %r0, 2\nexit\n"),
        BenchKind::Lookup => {
            ct_call(&mut s, k.xdp_lookup);
            let _ = writeln!(
                s,
                "jeq %r0, 0, miss\nmov %r1, %r0\ncall kfunc {}\nmov %r0, 2\nexit\nmiss: mov %r0, 1\nexit",
                k.release
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_assemble() {
        let k = KfuncIds::kbpf();
        let p = Probe {
            hook: Hook::Tc,
            op: ProbeOp::AllocInsert {
                timeout_ms: Some(1000),
                status: Some(0),
            },
            tuple: tuple_v4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2),
            tuple_sz: 12,
            tuple_null: false,
            opts: opts(-1, 6, 0, 0, 0),
            opts_sz: 16,
        };
        for text in [
            p.asm(&k),
            fill(&k, 3, 1000),
            bench(&k, BenchKind::Lookup, BENCH_DADDR, 5, Some((1000, 919)), 3),
            bench(&k, BenchKind::Base, BENCH_DADDR, 5, None, 3),
        ] {
            kbpf::insn::assemble(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
        assert_eq!(
            ProbeResult::decode(FOUND | 1),
            ProbeResult::Found { dir: 1 }
        );
        assert_eq!(
            ProbeResult::decode(-22i32 as u32),
            ProbeResult::Null { error: -22 }
        );
    }
}
