//! Generated programs × packets for the packet test runs: every packet helper with offsets
//! and sizes in and out of range, checksum updates (with `BPF_F_TEST_SKB_CHECKSUM_COMPLETE`
//! runs that check the program's `skb->csum` bookkeeping), XDP head/tail/metadata
//! adjustments by many deltas, `bpf_loop`, `bpf_redirect` verdicts, context in/out and the
//! test-run size rules. Each case is a program (assembly) and the runs to make; the same
//! cases go through kbpf (both engines) and the host kernel (`pkt_oracle.rs`), and the host's
//! answers, recorded in `pkt_golden/`, go with kbpf everywhere (`pkt_golden.rs`).

#![allow(dead_code)]

pub mod compare;

use kbpf::uapi::ProgType;
use kbpf_shim::host_bpf::test_run::HostRunAttr;

/// One program and its runs.
pub struct Case {
    /// What it exercises.
    pub name: String,
    /// Program type.
    pub prog_type: ProgType,
    /// The program, in kbpf's assembly.
    pub asm: String,
    /// The runs.
    pub runs: Vec<HostRunAttr>,
}

/// `BPF_F_TEST_SKB_CHECKSUM_COMPLETE`.
pub const CSUM_COMPLETE: u32 = 1 << 2;

/// An Ethernet + IPv4 + TCP (or UDP) frame of `len` bytes (at least 54) with correct IP and
/// L4 checksums and a recognisable payload.
pub fn ipv4(len: usize, udp: bool) -> Vec<u8> {
    let mut f = vec![0u8; len.max(54)];
    f[..6].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (f.len() - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&[0x12, 0x34]);
    ip[8] = 64;
    ip[9] = if udp { 17 } else { 6 };
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
    for (k, b) in f[34..].iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(7).wrapping_add(3);
    }
    // Ports, lengths, and zeroed checksums before summing.
    f[34..38].copy_from_slice(&[0x30, 0x39, 0x00, 0x50]);
    if udp {
        let ulen = (f.len() - 34) as u16;
        f[38..40].copy_from_slice(&ulen.to_be_bytes());
        f[40..42].copy_from_slice(&[0, 0]);
    } else {
        f[46] = 0x50;
        f[50..52].copy_from_slice(&[0, 0]);
    }
    let ipsum = fold(sum(&f[14..34]));
    f[24..26].copy_from_slice(&ipsum.to_be_bytes());
    let l4 = f.len() - 34;
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&f[26..34]);
    pseudo.extend_from_slice(&[0, f[23]]);
    pseudo.extend_from_slice(&(l4 as u16).to_be_bytes());
    let s = sum(&pseudo) + sum(&f[34..]);
    let at = if udp { 40 } else { 50 };
    let c = fold(s);
    f[at..at + 2].copy_from_slice(&c.to_be_bytes());
    f
}

/// Big-endian 16-bit ones'-complement sum (unfolded).
fn sum(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// A run on `data` with room for all of it out.
pub fn run(data: Vec<u8>) -> HostRunAttr {
    HostRunAttr {
        data_size_out: data.len() as u32 + 512,
        data,
        repeat: 1,
        ..HostRunAttr::default()
    }
}

/// [`run`] with a context in and room for it out.
pub fn run_ctx(data: Vec<u8>, ctx: Vec<u8>) -> HostRunAttr {
    HostRunAttr {
        ctx_size_out: 256,
        ctx_in: Some(ctx),
        ..run(data)
    }
}

fn case(name: String, prog_type: ProgType, asm: String, runs: Vec<HostRunAttr>) -> Case {
    Case {
        name,
        prog_type,
        asm,
        runs,
    }
}

/// `bpf_skb_load_bytes` at `off` for `len` bytes into the stack; the bytes land in `cb[0..4]`
/// (visible in the context out), R0 is the helper's result.
fn skb_load(off: i64, len: u32) -> String {
    format!(
        "mov %r6, %r1
stdw [%r10-16], 0
stdw [%r10-8], 0
mov %r2, {off}
mov %r3, %r10
add %r3, -16
mov %r4, {len}
call 26
mov %r7, %r0
ldxw %r1, [%r10-16]
stxw [%r6+48], %r1
ldxw %r1, [%r10-12]
stxw [%r6+52], %r1
ldxw %r1, [%r10-8]
stxw [%r6+56], %r1
ldxw %r1, [%r10-4]
stxw [%r6+60], %r1
mov %r0, %r7
exit"
    )
}

/// The packet helpers of socket buffers.
pub fn skb_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let pkt = ipv4(74, false);
    for ty in [ProgType::SocketFilter, ProgType::SchedCls] {
        for off in [
            0i64,
            1,
            13,
            14,
            40,
            58,
            59,
            60,
            66,
            70,
            73,
            74,
            0x7fff_ffff,
            -1,
            -14,
        ] {
            for len in [1u32, 2, 4, 8, 15, 16] {
                v.push(case(
                    format!("{ty:?} skb_load_bytes off {off} len {len}"),
                    ty,
                    skb_load(off, len),
                    vec![run_ctx(pkt.clone(), vec![0; 192])],
                ));
            }
        }
    }
    // skb_store_bytes: a pattern from the stack; flags, offsets; plain and checksum-complete
    // runs (recompute keeps skb->csum right only where the store covers summed bytes).
    for off in [
        0i64,
        6,
        14,
        15,
        34,
        50,
        52,
        60,
        66,
        67,
        70,
        74,
        0x7fff_ffff,
        -1,
    ] {
        for len in [1u32, 2, 3, 4, 8] {
            for flags in [0u64, 1, 2, 3, 4, 0x10] {
                let asm = format!(
                    "mov %r6, %r1
lddw %r1, 0x8877665544332211
stxdw [%r10-8], %r1
mov %r1, %r6
mov %r2, {off}
mov %r3, %r10
add %r3, -8
mov %r4, {len}
lddw %r5, {flags}
call 9
exit"
                );
                let mut a = run(pkt.clone());
                let mut b = run(pkt.clone());
                b.flags = CSUM_COMPLETE;
                a.repeat = 1;
                b.repeat = 1;
                v.push(case(
                    format!("skb_store_bytes off {off} len {len} flags {flags:#x}"),
                    ProgType::SchedCls,
                    asm,
                    vec![a, b],
                ));
            }
        }
    }
    v
}

/// The checksum helpers: `bpf_l3_csum_replace`, `bpf_l4_csum_replace` and `bpf_csum_diff`.
pub fn csum_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let tcp = ipv4(80, false);
    let udp = ipv4(80, true);
    // Rewrite the IPv4 destination (offset 30) and fix both checksums, the helpers' way.
    let new_ip = u32::from_ne_bytes([10, 0, 0, 9]) as u64;
    let old_ip = u32::from_ne_bytes([10, 0, 0, 2]) as u64;
    for (l3off, l3flags) in [
        (24i64, 4u64),
        (25, 4),
        (24, 2),
        (24, 0),
        (24, 3),
        (24, 0x14),
        (0x10000, 4),
        (78, 4),
        (80, 4),
    ] {
        let (from, to) = if l3flags & 0xf == 2 {
            (0x0002, 0x0009)
        } else if l3flags & 0xf == 0 {
            (0, 0x1234_5678)
        } else {
            (old_ip, new_ip)
        };
        let asm = format!(
            "mov %r6, %r1
mov %r2, {l3off}
lddw %r3, {from}
lddw %r4, {to}
mov %r5, {l3flags}
call 10
exit"
        );
        v.push(case(
            format!("l3_csum_replace off {l3off} flags {l3flags:#x}"),
            ProgType::SchedCls,
            asm,
            vec![run(tcp.clone())],
        ));
    }
    for (udp_pkt, l4off) in [
        (false, 50i64),
        (true, 40),
        (false, 51),
        (false, 79),
        (false, 80),
    ] {
        for flags in [
            4u64, 0x14, 0x34, 0x74, 0x24, 2, 0x12, 0, 0x10, 0x90, 0x80, 3, 0x100, 0x64,
        ] {
            let (from, to) = match flags & 0xf {
                2 => (0x0002, 0x0009),
                0 => (0, 0x1234_5678),
                _ => (old_ip, new_ip),
            };
            let pkt = if udp_pkt { udp.clone() } else { tcp.clone() };
            // Store the new address with recompute, then fix the L4 checksum: a complete
            // checksum stays right only with the pseudo-header flag set.
            let asm = format!(
                "mov %r6, %r1
lddw %r1, {to}
stxw [%r10-4], %r1
mov %r1, %r6
mov %r2, 30
mov %r3, %r10
add %r3, -4
mov %r4, 4
mov %r5, 1
call 9
mov %r1, %r6
mov %r2, {l4off}
lddw %r3, {from}
lddw %r4, {to}
mov %r5, {flags}
call 11
exit"
            );
            let mut b = run(pkt.clone());
            b.flags = CSUM_COMPLETE;
            v.push(case(
                format!("l4_csum_replace udp {udp_pkt} off {l4off} flags {flags:#x}"),
                ProgType::SchedCls,
                asm,
                vec![run(pkt), b],
            ));
        }
    }
    // A zero UDP checksum with and without BPF_F_MARK_MANGLED_0 / _ENFORCE.
    let mut zero = udp.clone();
    zero[40] = 0;
    zero[41] = 0;
    for flags in [0x24u64, 0x64, 0x04] {
        let asm = format!(
            "mov %r2, 40
lddw %r3, {old_ip}
lddw %r4, {new_ip}
mov %r5, {flags}
call 11
exit"
        );
        v.push(case(
            format!("l4_csum_replace on a zero udp checksum flags {flags:#x}"),
            ProgType::SchedCls,
            asm,
            vec![run(zero.clone())],
        ));
    }
    // bpf_csum_diff: blocks of several sizes, NULL blocks, seeds; in TC and XDP.
    for ty in [ProgType::SchedCls, ProgType::Xdp] {
        for (fs, ts) in [
            (8u32, 8u32),
            (0, 8),
            (8, 0),
            (4, 12),
            (3, 8),
            (0, 0),
            (12, 5),
            (16, 16),
        ] {
            for seed in [0u64, 0x12345, 0xffff_ffff, 0x1_2345_6789] {
                let from = if fs == 0 {
                    "mov %r1, 0".to_string()
                } else {
                    "mov %r1, %r10\nadd %r1, -16".to_string()
                };
                let to = if ts == 0 {
                    "mov %r3, 0".to_string()
                } else {
                    "mov %r3, %r10\nadd %r3, -32".to_string()
                };
                let asm = format!(
                    "lddw %r1, 0x5566778811223344
stxdw [%r10-16], %r1
lddw %r1, 0x99aabbccddeeff00
stxdw [%r10-8], %r1
lddw %r1, 0x0123456789abcdef
stxdw [%r10-32], %r1
lddw %r1, 0xfedcba9876543210
stxdw [%r10-24], %r1
{from}
mov %r2, {fs}
{to}
mov %r4, {ts}
lddw %r5, {seed}
call 28
exit"
                );
                v.push(case(
                    format!("{ty:?} csum_diff {fs}/{ts} seed {seed:#x}"),
                    ty,
                    asm,
                    vec![run(tcp.clone())],
                ));
            }
        }
    }
    v
}

/// XDP: head, tail and metadata adjustments, the byte helpers across fragments.
pub fn xdp_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let pkt = ipv4(74, false);
    let meta_ctx = |meta: u32, len: u32| {
        let mut c = vec![0u8; 24];
        c[..4].copy_from_slice(&meta.to_ne_bytes());
        c[4..8].copy_from_slice(&(meta + len).to_ne_bytes());
        c
    };
    let with_meta = |meta: usize| {
        let mut d = vec![0xa5u8; meta];
        d.extend_from_slice(&pkt);
        d
    };
    // After the helper, read the first and last byte of the packet into R0's upper bytes.
    let tail = "mov %r7, %r0
ldxw %r2, [%r6+0]
ldxw %r3, [%r6+4]
mov %r4, %r2
add %r4, 1
jgt %r4, %r3, out
ldxb %r5, [%r2+0]
lsh %r5, 16
or %r7, %r5
out:
mov %r0, %r7
exit";
    for (helper, deltas) in [
        (
            44,
            &[
                -300i64, -217, -216, -215, -200, -32, -1, 0, 1, 13, 59, 60, 61, 200,
            ][..],
        ),
        (
            65,
            &[
                -100i64, -61, -60, -59, -1, 0, 1, 100, 3000, 3446, 3447, 3500, 4000,
            ][..],
        ),
        (
            54,
            &[-4i64, -32, -36, -40, -212, -216, -252, -256, 2, 4, 0][..],
        ),
    ] {
        for &d in deltas {
            for meta in [0u32, 8] {
                let asm = format!(
                    "mov %r6, %r1
mov %r2, {d}
call {helper}
{tail}"
                );
                v.push(case(
                    format!("xdp helper {helper} delta {d} meta {meta}"),
                    ProgType::Xdp,
                    asm,
                    vec![run_ctx(with_meta(meta as usize), meta_ctx(meta, 74))],
                ));
            }
        }
    }
    // Two adjustments in a row: head forward then meta back, and tail on a fragmented frame.
    for (a, b) in [(40i64, -40i64), (100, -60), (100, -100), (20, -24)] {
        let asm = format!(
            "mov %r6, %r1
mov %r2, {a}
call 44
mov %r1, %r6
mov %r2, {b}
call 54
{tail}"
        );
        v.push(case(
            format!("xdp adjust_head {a} then adjust_meta {b}"),
            ProgType::Xdp,
            asm,
            vec![run_ctx(pkt.clone(), meta_ctx(0, 74))],
        ));
    }
    let big = ipv4(6000, true);
    for d in [
        -10i64, -2480, -2481, -2500, -5000, -5987, -5986, 10, 1616, 1617, 3000,
    ] {
        let asm = format!(
            "mov %r6, %r1
mov %r2, {d}
call 65
{tail}"
        );
        v.push(case(
            format!("xdp adjust_tail {d} on fragments"),
            ProgType::Xdp,
            asm,
            vec![run(big.clone())],
        ));
    }
    // xdp_load_bytes / xdp_store_bytes across the linear part and the fragments.
    for (off, len) in [
        (0u32, 8u32),
        (3510, 16),
        (3520, 8),
        (5990, 10),
        (5995, 8),
        (6000, 1),
        (0x10000, 1),
        (70, 8),
    ] {
        for store in [false, true] {
            let asm = if store {
                format!(
                    "lddw %r3, 0x0102030405060708
stxdw [%r10-16], %r3
stxdw [%r10-8], %r3
mov %r2, {off}
mov %r3, %r10
add %r3, -16
mov %r4, {len}
call 190
exit"
                )
            } else {
                format!(
                    "mov %r6, %r1
stdw [%r10-16], 0
stdw [%r10-8], 0
mov %r2, {off}
mov %r3, %r10
add %r3, -16
mov %r4, {len}
call 189
ldxdw %r1, [%r10-16]
ldxdw %r2, [%r10-8]
xor %r1, %r2
lsh %r0, 32
xor %r0, %r1
rsh %r0, 16
exit"
                )
            };
            for data in [big.clone(), pkt.clone()] {
                v.push(case(
                    format!(
                        "xdp {} off {off} len {len} on {}",
                        if store { "store" } else { "load" },
                        data.len()
                    ),
                    ProgType::Xdp,
                    asm.clone(),
                    vec![run(data)],
                ));
            }
        }
    }
    v
}

/// `bpf_loop` (callback summing indices into the caller's stack) and `bpf_redirect`.
pub fn loop_redirect_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let pkt = ipv4(60, false);
    // R0: the calls made, plus the callback's running sum << 16. `flags` "pkt" takes the flags
    // from a packet byte (zero, but unknown to the verifier: the helper's semantics).
    for (n, flags, stop) in [
        ("0", "0", 100i64),
        ("1", "0", 100),
        ("10", "0", 100),
        ("10", "0", 3),
        ("0x800000", "0", 2),
        ("0x800001", "0", 2),
        ("10", "1", 100),
        ("-1", "0", 2),
        ("10", "pkt", 100),
        ("0x100000005", "pkt", 100),
        ("0x100000005", "0", 100),
        ("0x800001", "pkt", 2),
        ("-1", "pkt", 2),
    ] {
        for ty in [ProgType::SchedCls, ProgType::Xdp, ProgType::SocketFilter] {
            // "pkt": a context field that is zero in a test run but unknown to the verifier
            // (the skb's mark, the XDP receive queue).
            let flags_insn = match (flags, ty) {
                ("pkt", ProgType::Xdp) => "ldxw %r4, [%r1+16]".to_string(),
                ("pkt", _) => "ldxw %r4, [%r1+8]".to_string(),
                (f, _) => format!("mov %r4, {f}"),
            };
            let asm = format!(
                "stdw [%r10-8], 0
{flags_insn}
lddw %r1, {n}
lddw %r2, func cb
mov %r3, %r10
add %r3, -8
call 181
ldxdw %r1, [%r10-8]
lsh %r1, 16
add %r0, %r1
exit
cb:
ldxdw %r3, [%r2+0]
add %r3, %r1
add %r3, 1
stxdw [%r2+0], %r3
mov %r0, 0
jlt %r1, {stop}, +1
mov %r0, 1
exit"
            );
            v.push(case(
                format!("{ty:?} bpf_loop n {n} flags {flags} stop {stop}"),
                ty,
                asm,
                vec![run(pkt.clone())],
            ));
        }
    }
    // Callbacks the verifier must judge: return values, what they may touch, nesting,
    // a bpf_loop in a subprogram, NULL contexts.
    let callbacks = [
        ("returns 2", "mov %r0, 2\nexit"),
        ("returns unknown", "ldxdw %r0, [%r2+0]\nexit"),
        ("returns a pointer", "mov %r0, %r2\nexit"),
        ("returns its index masked", "mov %r0, %r1\nand %r0, 1\nexit"),
        (
            "writes below the caller's stack",
            "stdw [%r2-512], 1\nmov %r0, 0\nexit",
        ),
        ("reads the index as a size", "mov %r0, 0\nexit"),
        (
            "nests a bpf_loop",
            "mov %r1, 3\nlddw %r2, func inner\nmov %r3, 0\nmov %r4, 0\ncall 181\nmov %r0, 0\nexit\n\
             inner:\nmov %r0, 0\nexit",
        ),
        ("leaves R0 unset", "exit"),
    ];
    for (what, body) in callbacks {
        let asm = format!(
            "stdw [%r10-8], 0
mov %r1, 4
lddw %r2, func cb
mov %r3, %r10
add %r3, -8
mov %r4, 0
call 181
exit
cb:
{body}"
        );
        v.push(case(
            format!("callback {what}"),
            ProgType::SchedCls,
            asm,
            vec![run(pkt.clone())],
        ));
    }
    for (what, asm) in [
        (
            "NULL context",
            "mov %r1, 3\nlddw %r2, func cb\nmov %r3, 0\nmov %r4, 0\ncall 181\nexit\ncb:\nmov %r0, 0\nexit",
        ),
        (
            "map-free context pointer to the packet",
            "ldxw %r3, [%r1+76]\nmov %r1, 3\nlddw %r2, func cb\nmov %r4, 0\ncall 181\nexit\ncb:\nmov %r0, 0\nexit",
        ),
        (
            "bpf_loop in a subprogram",
            "call local sub\nexit\nsub:\nstdw [%r10-8], 0\nmov %r1, 5\nlddw %r2, func cb\nmov %r3, %r10\n\
             add %r3, -8\nmov %r4, 0\ncall 181\nldxdw %r1, [%r10-8]\nlsh %r1, 8\nadd %r0, %r1\nexit\n\
             cb:\nldxdw %r3, [%r2+0]\nadd %r3, 2\nstxdw [%r2+0], %r3\nmov %r0, 0\nexit",
        ),
        (
            "callback differs by path",
            "ldxw %r6, [%r1+0]\nmov %r1, 3\nlddw %r2, func cb\njgt %r6, 50, +2\nlddw %r2, func cb2\n\
             mov %r3, 0\nmov %r4, 0\ncall 181\nexit\ncb:\nmov %r0, 0\nexit\ncb2:\nmov %r0, 1\nexit",
        ),
        (
            "function pointer moved",
            "mov %r1, 3\nlddw %r2, func cb\nadd %r2, 8\nmov %r3, 0\nmov %r4, 0\ncall 181\nexit\ncb:\nmov %r0, 0\nexit",
        ),
        (
            "function pointer is a number",
            "mov %r1, 3\nmov %r2, 0\nmov %r3, 0\nmov %r4, 0\ncall 181\nexit",
        ),
    ] {
        v.push(case(
            what.to_string(),
            ProgType::SchedCls,
            asm.to_string(),
            vec![run(pkt.clone())],
        ));
    }
    // Packet pointers do not survive a helper that changes packet data.
    for (what, ty, asm) in [
        (
            "packet pointer used after skb_store_bytes",
            ProgType::SchedCls,
            "mov %r6, %r1\nldxw %r7, [%r1+76]\nldxw %r8, [%r1+80]\nmov %r2, %r7\nadd %r2, 14\n\
             jgt %r2, %r8, out\nstdw [%r10-8], 0\nmov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -8\n\
             mov %r4, 2\nmov %r5, 0\ncall 9\nldxb %r0, [%r7+0]\nexit\nout:\nmov %r0, 0\nexit",
        ),
        (
            "packet pointer reloaded after skb_store_bytes",
            ProgType::SchedCls,
            "mov %r6, %r1\nstdw [%r10-8], 0\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 2\n\
             mov %r5, 0\ncall 9\nldxw %r7, [%r6+76]\nldxw %r8, [%r6+80]\nmov %r2, %r7\nadd %r2, 14\n\
             jgt %r2, %r8, out\nldxb %r0, [%r7+13]\nexit\nout:\nmov %r0, 0\nexit",
        ),
        (
            "packet pointer spilled across l3_csum_replace",
            ProgType::SchedCls,
            "mov %r6, %r1\nldxw %r7, [%r1+76]\nldxw %r8, [%r1+80]\nmov %r2, %r7\nadd %r2, 14\n\
             jgt %r2, %r8, out\nstxdw [%r10-8], %r7\nmov %r1, %r6\nmov %r2, 24\nmov %r3, 0\nmov %r4, 0\n\
             mov %r5, 0\ncall 10\nldxdw %r7, [%r10-8]\nldxb %r0, [%r7+0]\nexit\nout:\nmov %r0, 0\nexit",
        ),
        (
            "packet pointer used after xdp_adjust_head",
            ProgType::Xdp,
            "mov %r6, %r1\nldxw %r7, [%r1+0]\nldxw %r8, [%r1+4]\nmov %r2, %r7\nadd %r2, 14\n\
             jgt %r2, %r8, out\nmov %r1, %r6\nmov %r2, 4\ncall 44\nldxb %r0, [%r7+0]\nexit\nout:\nmov %r0, 0\nexit",
        ),
        (
            "packet pointer kept across xdp_load_bytes",
            ProgType::Xdp,
            "mov %r6, %r1\nldxw %r7, [%r1+0]\nldxw %r8, [%r1+4]\nmov %r2, %r7\nadd %r2, 14\n\
             jgt %r2, %r8, out\nmov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 4\n\
             call 189\nldxb %r0, [%r7+13]\nexit\nout:\nmov %r0, 0\nexit",
        ),
    ] {
        v.push(case(
            what.to_string(),
            ty,
            asm.to_string(),
            vec![run(pkt.clone())],
        ));
    }
    for (ty, flags) in [
        (ProgType::SchedCls, 0i64),
        (ProgType::SchedCls, 1),
        (ProgType::SchedCls, 2),
        (ProgType::Xdp, 0),
        (ProgType::Xdp, 1),
    ] {
        v.push(case(
            format!("{ty:?} redirect flags {flags}"),
            ty,
            format!("mov %r1, 1\nmov %r2, {flags}\ncall 23\nexit"),
            vec![run(pkt.clone())],
        ));
    }
    v
}

/// Context in and out, and the size rules of the test run itself.
pub fn ctx_and_size_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let pkt = ipv4(60, false);
    // Reads the __sk_buff fields a test run sets and writes some back.
    let skb_fields = "mov %r0, 0
ldxw %r2, [%r1+0]
add %r0, %r2
ldxw %r2, [%r1+4]
lsh %r2, 8
add %r0, %r2
ldxw %r2, [%r1+8]
lsh %r2, 12
add %r0, %r2
ldxh %r2, [%r1+16]
lsh %r2, 16
xor %r0, %r2
ldxw %r2, [%r1+32]
lsh %r2, 20
xor %r0, %r2
ldxw %r2, [%r1+36]
lsh %r2, 24
xor %r0, %r2
ldxw %r2, [%r1+40]
lsh %r2, 28
xor %r0, %r2
ldxw %r2, [%r1+48]
xor %r0, %r2
ldxw %r2, [%r1+64]
xor %r0, %r2
stw [%r1+8], 77
stw [%r1+52], 99
exit";
    let mut ctxs = vec![];
    let base = || vec![0u8; 192];
    let set =
        |c: &mut Vec<u8>, off: usize, v: u32| c[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    let mut c = base();
    set(&mut c, 8, 5);
    set(&mut c, 32, 6);
    set(&mut c, 36, 7);
    set(&mut c, 48, 0x1111);
    set(&mut c, 64, 0x2222);
    ctxs.push(c.clone());
    let mut d = c.clone();
    set(&mut d, 40, 1);
    set(&mut d, 152, 123);
    set(&mut d, 160, 1500);
    set(&mut d, 164, 3);
    set(&mut d, 176, 1400);
    set(&mut d, 184, 456);
    ctxs.push(d);
    for (off, val) in [
        (0, 1u32),
        (4, 1),
        (16, 1),
        (44, 1),
        (68, 1),
        (72, 1),
        (160, 1),
        (160, 0x1_0001),
        (164, 0x1_0000),
        (180, 1),
        (40, 999),
    ] {
        let mut e = c.clone();
        set(&mut e, off, val);
        ctxs.push(e);
    }
    let mut long = c.clone();
    long.extend([0u8; 8]);
    ctxs.push(long.clone());
    long.push(1);
    ctxs.push(long);
    ctxs.push(c[..20].to_vec());
    for ty in [ProgType::SchedCls, ProgType::SocketFilter] {
        let body = if ty == ProgType::SchedCls {
            skb_fields.to_string()
        } else {
            // Socket filters may not read tc_classid nor write mark: a subset.
            skb_fields.replace("stw [%r1+8], 77\n", "")
        };
        let mut runs: Vec<HostRunAttr> = ctxs
            .iter()
            .map(|c| run_ctx(pkt.clone(), c.clone()))
            .collect();
        let mut small = run_ctx(pkt.clone(), ctxs[0].clone());
        small.ctx_size_out = 100;
        runs.push(small);
        let mut short = run(pkt.clone());
        short.data_size_out = 20;
        runs.push(short);
        let mut none = run(pkt.clone());
        none.data_size_out = 0;
        runs.push(none);
        for n in [13usize, 14, 15, 3712, 3713] {
            runs.push(run(ipv4(54, true).into_iter().cycle().take(n).collect()));
        }
        let mut bad = run(pkt.clone());
        bad.flags = 1;
        runs.push(bad);
        // Destination addresses: host, multicast, other host; 802.3 and LLC frames.
        for (d0, proto) in [
            (0u8, [8u8, 0]),
            (1, [8, 0]),
            (2, [8, 0]),
            (0, [0, 0x40]),
            (0, [5, 0xff]),
        ] {
            let mut p = pkt.clone();
            p[0] = d0;
            p[12..14].copy_from_slice(&proto);
            p[14] = 0xff;
            p[15] = 0xff;
            runs.push(run(p));
        }
        v.push(case(format!("{ty:?} context fields"), ty, body, runs));
    }
    // XDP: the xdp_md fields a run sets (data, data_end, ingress, queue), metadata sizes,
    // frames past the linear part.
    // R0: the first packet byte, the first metadata byte, the ingress ifindex and queue.
    let xdp_prog = "ldxw %r0, [%r1+16]
ldxw %r5, [%r1+12]
lsh %r5, 8
add %r0, %r5
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
ldxw %r4, [%r1+8]
mov %r6, %r2
add %r6, 1
jgt %r6, %r3, out
ldxb %r5, [%r2+0]
lsh %r5, 16
add %r0, %r5
mov %r6, %r4
add %r6, 1
jgt %r6, %r2, out
ldxb %r5, [%r4+0]
lsh %r5, 24
add %r0, %r5
out:
exit";
    let mut runs = Vec::new();
    for (meta, end, ing, q, eg) in [
        (0u32, 60u32, 0u32, 0u32, 0u32),
        (4, 64, 0, 0, 0),
        (32, 92, 0, 0, 0),
        (216, 276, 0, 0, 0),
        (220, 280, 0, 0, 0),
        (2, 62, 0, 0, 0),
        (0, 20, 0, 0, 0),
        (0, 13, 0, 0, 0),
        (0, 61, 0, 0, 0),
        (0, 60, 1, 0, 0),
        (0, 60, 1, 1, 0),
        (0, 60, 0, 1, 0),
        (0, 60, 0, 0, 1),
        (8, 4, 0, 0, 0),
    ] {
        let mut data = vec![0x5au8; meta as usize];
        data.extend_from_slice(&pkt);
        let data = data
            .into_iter()
            .take((meta + 60) as usize)
            .collect::<Vec<_>>();
        let mut c = vec![0u8; 24];
        for (k, x) in [meta, end, 0, ing, q, eg].into_iter().enumerate() {
            c[4 * k..4 * k + 4].copy_from_slice(&x.to_ne_bytes());
        }
        runs.push(run_ctx(data, c));
    }
    let mut meta_set = vec![0u8; 24];
    meta_set[8..12].copy_from_slice(&1u32.to_ne_bytes());
    runs.push(run_ctx(pkt.clone(), meta_set));
    for n in [
        13usize,
        14,
        3520,
        3521,
        5000,
        3520 + 17 * 4096,
        3520 + 17 * 4096 + 1,
    ] {
        runs.push(run(ipv4(54, true).into_iter().cycle().take(n).collect()));
    }
    let mut tight = run(ipv4(6000, true));
    tight.data_size_out = 3000;
    runs.push(tight);
    let mut tighter = run(ipv4(6000, true));
    tighter.data_size_out = 5000;
    runs.push(tighter);
    let mut live = run(pkt.clone());
    live.flags = 4;
    runs.push(live);
    v.push(case(
        "Xdp context fields".into(),
        ProgType::Xdp,
        xdp_prog.into(),
        runs,
    ));
    // repeat: the program's changes accumulate over the runs on one context.
    let mut rep = run(pkt.clone());
    rep.repeat = 5;
    v.push(case(
        "Xdp repeated adjust_head".into(),
        ProgType::Xdp,
        "mov %r2, 2\ncall 44\nmov %r0, 2\nexit".into(),
        vec![rep],
    ));
    v
}

/// Which program types may call which helper (`*_func_proto`): each helper with valid
/// arguments, loaded (and, where it loads, run) as every packet type.
pub fn availability_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let pkt = ipv4(60, false);
    let buf = "stdw [%r10-8], 0\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 4";
    let calls = [
        (26, format!("mov %r2, 0\n{buf}\ncall 26")),
        (9, format!("mov %r2, 0\n{buf}\nmov %r5, 0\ncall 9")),
        (
            10,
            "mov %r2, 24\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0\ncall 10".to_string(),
        ),
        (
            11,
            "mov %r2, 50\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0\ncall 11".to_string(),
        ),
        (
            28,
            "mov %r1, 0\nmov %r2, 0\nmov %r3, 0\nmov %r4, 0\nmov %r5, 7\ncall 28".to_string(),
        ),
        (44, "mov %r2, 0\ncall 44".to_string()),
        (65, "mov %r2, 0\ncall 65".to_string()),
        (189, format!("mov %r2, 0\n{buf}\ncall 189")),
        (190, format!("mov %r2, 0\n{buf}\ncall 190")),
        (23, "mov %r1, 0\nmov %r2, 0\ncall 23".to_string()),
        (
            181,
            "mov %r1, 1\nlddw %r2, func cb\nmov %r3, 0\nmov %r4, 0\ncall 181".to_string(),
        ),
        (7, "call 7\nand %r0, 0".to_string()),
        (5, "call 5\nand %r0, 0".to_string()),
    ];
    for ty in [
        ProgType::SocketFilter,
        ProgType::SchedCls,
        ProgType::SchedAct,
        ProgType::Xdp,
        ProgType::CgroupSkb,
    ] {
        for (id, call) in &calls {
            // Cgroup skb programs must return 0 or 1 (the host checks; kbpf does not yet).
            let ret = if ty == ProgType::CgroupSkb {
                "\nand %r0, 1"
            } else {
                ""
            };
            let cb = if *id == 181 {
                "\ncb:\nmov %r0, 0\nexit"
            } else {
                ""
            };
            v.push(case(
                format!("{ty:?} may call helper {id}"),
                ty,
                format!("{call}{ret}\nexit{cb}"),
                vec![run(pkt.clone())],
            ));
        }
    }
    v
}

/// Every case.
pub fn all() -> Vec<Case> {
    let mut v = skb_cases();
    v.extend(csum_cases());
    v.extend(xdp_cases());
    v.extend(loop_redirect_cases());
    v.extend(ctx_and_size_cases());
    v.extend(availability_cases());
    v
}
