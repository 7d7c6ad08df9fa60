//! Packet pointers and the XDP / `__sk_buff` packet context: the negative corpus (one
//! program per rule, each with the kernel's errno and a log fragment), positive controls,
//! pruning's range rule and the context-access rewrite's output.

mod corpus;

use kbpf::Errno;
use kbpf::insn::{Insn, Size, assemble, decode};
use kbpf::map::MapAttr;
use kbpf::uapi::{MapType, ProgType};
use kbpf::verifier::bounds::Scalar;
use kbpf::verifier::convert::{CtxAccessInfo, convert_insn};
use kbpf::verifier::state::{Reg, RegType};
use kbpf::verifier::{VerifierEnv, VerifyError, verify};

/// Map handle 0: hash(4, 8).
fn maps(h: u32) -> Option<MapAttr> {
    (h == 0).then(|| MapAttr::new(MapType::Hash, 4, 8, 4))
}

#[derive(Clone, Copy)]
enum Mode {
    Xdp,
    Tc,
    Act,
    Skb,
    Cg,
    TcPriv,
}

fn run(mode: Mode, asm: &str) -> Result<kbpf::verifier::VerifierOutput, VerifyError> {
    let insns: Vec<Insn> = assemble(asm).unwrap_or_else(|e| panic!("{e}\n{asm}"));
    let ty = match mode {
        Mode::Xdp => ProgType::Xdp,
        Mode::Tc | Mode::TcPriv => ProgType::SchedCls,
        Mode::Act => ProgType::SchedAct,
        Mode::Skb => ProgType::SocketFilter,
        Mode::Cg => ProgType::CgroupSkb,
    };
    let env = VerifierEnv {
        prog_type: ty,
        maps: &maps,
        ctx_size: 0,
        privileged: matches!(mode, Mode::TcPriv),
        allow_loops: true,
        expected_attach_type: None,
    };
    verify(&insns, &env)
}

/// r2 = data, r3 = data_end of an `__sk_buff`.
macro_rules! skb_ptrs {
    ($rest:expr) => {
        concat!("ldxw %r2, [%r1+76]\nldxw %r3, [%r1+80]\n", $rest)
    };
}

/// r2 = data, r3 = data_end of an `xdp_md`.
macro_rules! xdp_ptrs {
    ($rest:expr) => {
        concat!("ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\n", $rest)
    };
}

/// r4 = data + 14; on `data + 14 > data_end` return 0.
macro_rules! eth_checked {
    ($rest:expr) => {
        concat!(
            "mov %r0, 0\nmov %r4, %r2\nadd %r4, 14\njgt %r4, %r3, +",
            "1\nja +1\nexit\n",
            $rest
        )
    };
}

const NEGATIVE: &[(&str, Mode, &str, Errno, &str)] = &[
    (
        "tc read without data_end check",
        Mode::Tc,
        skb_ptrs!("ldxb %r0, [%r2+0]\nexit"),
        Errno::EACCES,
        "invalid access to packet, off=0 size=1, R2(id=0,off=0,r=0)",
    ),
    (
        "xdp read without data_end check",
        Mode::Xdp,
        xdp_ptrs!("ldxb %r0, [%r2+0]\nexit"),
        Errno::EACCES,
        "R2 offset is outside of the packet",
    ),
    (
        "read beyond the checked range",
        Mode::Tc,
        skb_ptrs!(eth_checked!("ldxb %r0, [%r2+14]\nexit")),
        Errno::EACCES,
        "invalid access to packet, off=14 size=1, R2(id=0,off=14,r=14)",
    ),
    (
        "off-by-one: 4 bytes at 12 after checking 14",
        Mode::Xdp,
        xdp_ptrs!(eth_checked!("ldxw %r0, [%r2+12]\nexit")),
        Errno::EACCES,
        "off=12 size=4",
    ),
    (
        "jge leaves one more byte, not two",
        Mode::Tc,
        skb_ptrs!(
            "mov %r0, 0\nmov %r4, %r2\nadd %r4, 14\njge %r4, %r3, +1\nldxh %r0, [%r2+14]\nexit"
        ),
        Errno::EACCES,
        "off=14 size=2, R2(id=0,off=14,r=15)",
    ),
    (
        "access on the failed direction of the check",
        Mode::Tc,
        skb_ptrs!(
            "mov %r0, 0\nmov %r4, %r2\nadd %r4, 14\njle %r4, %r3, +1\nldxb %r0, [%r2+0]\nexit"
        ),
        Errno::EACCES,
        "invalid access to packet, off=0 size=1",
    ),
    (
        "reversed order on the failed direction",
        Mode::Xdp,
        xdp_ptrs!(
            "mov %r0, 0\nmov %r4, %r2\nadd %r4, 14\njgt %r3, %r4, +1\nldxb %r0, [%r2+0]\nexit"
        ),
        Errno::EACCES,
        "R2 offset is outside of the packet",
    ),
    (
        "negative offset after the check",
        Mode::Tc,
        skb_ptrs!(eth_checked!("ldxb %r0, [%r2-1]\nexit")),
        Errno::EACCES,
        "invalid access to packet, off=-1 size=1",
    ),
    (
        "packet write from cgroup_skb",
        Mode::Cg,
        skb_ptrs!(eth_checked!("stb [%r2+0], 1\nexit")),
        Errno::EACCES,
        "cannot write into packet",
    ),
    (
        "socket filter cannot read data",
        Mode::Skb,
        "ldxw %r2, [%r1+76]\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=76 size=4",
    ),
    (
        "socket filter cannot read data_end",
        Mode::Skb,
        "ldxw %r3, [%r1+80]\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=80 size=4",
    ),
    (
        "cgroup_skb has no data_meta",
        Mode::Cg,
        "ldxw %r2, [%r1+140]\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=140 size=4",
    ),
    (
        // Spectre v1: in the default mode only stack and map-value pointers may move by a
        // register, so a packet pointer may not (the rules above hold under root's).
        "pkt += register in the default mode",
        Mode::Tc,
        skb_ptrs!(eth_checked!(
            "ldxb %r5, [%r2+0]\nand %r5, 7\nadd %r2, %r5\nldxb %r0, [%r2+0]\nexit"
        )),
        Errno::EACCES,
        "R2 has pointer with unsupported alu operation, pointer arithmetic with it prohibited for !root",
    ),
    (
        "pkt += unbounded scalar",
        Mode::TcPriv,
        "mov %r6, %r1\ncall 7\nldxw %r2, [%r6+76]\nadd %r2, %r0\nmov %r0, 0\nexit",
        Errno::EINVAL,
        "math between pkt pointer and register with unbounded min value is not allowed",
    ),
    (
        "pkt += 32-bit length: the check proves nothing",
        Mode::TcPriv,
        concat!(
            "ldxw %r5, [%r1+0]\n",
            skb_ptrs!(
                "add %r2, %r5\nmov %r4, %r2\nadd %r4, 1\nmov %r0, 0\njgt %r4, %r3, +1\nldxb %r0, [%r2+0]\nexit"
            )
        ),
        Errno::EACCES,
        "R2 offset is outside of the packet",
    ),
    (
        "variable add drops the range",
        Mode::TcPriv,
        skb_ptrs!(eth_checked!(
            "ldxb %r5, [%r2+0]\nadd %r2, %r5\nldxb %r0, [%r2+0]\nexit"
        )),
        Errno::EACCES,
        "invalid access to packet, off=0 size=1",
    ),
    (
        "variable offset that may be negative",
        Mode::TcPriv,
        skb_ptrs!(eth_checked!(
            "ldxb %r5, [%r2+0]\nsub %r5, 5\nadd %r2, %r5\nldxb %r0, [%r2+0]\nexit"
        )),
        Errno::EACCES,
        "R2 min value is negative",
    ),
    (
        "data_end arithmetic",
        Mode::Tc,
        skb_ptrs!("add %r3, 1\nmov %r0, 0\nexit"),
        Errno::EACCES,
        "R3 pointer arithmetic on pkt_end prohibited",
    ),
    (
        "read through data_end",
        Mode::Xdp,
        xdp_ptrs!("ldxb %r0, [%r3+0]\nexit"),
        Errno::EACCES,
        "R3 invalid mem access 'pkt_end'",
    ),
    (
        "packet pointer stored in a map value",
        Mode::Tc,
        concat!(
            "ldxw %r6, [%r1+76]\n",
            "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, map_fd 0\ncall 1\n",
            "jeq %r0, 0, +1\nstxdw [%r0+0], %r6\nmov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "R6 leaks addr into map",
    ),
    (
        "packet pointer stored into the packet",
        Mode::Xdp,
        xdp_ptrs!(eth_checked!("stxdw [%r2+0], %r2\nexit")),
        Errno::EACCES,
        "R2 leaks addr into packet",
    ),
    (
        "packet pointer returned",
        Mode::Tc,
        skb_ptrs!("mov %r0, %r2\nexit"),
        Errno::EACCES,
        "R0 leaks addr as return value",
    ),
    (
        "xdp ctx write",
        Mode::Xdp,
        "stw [%r1+0], 0\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=0 size=4",
    ),
    (
        "xdp ctx read out of range",
        Mode::Xdp,
        "ldxw %r0, [%r1+24]\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=24 size=4",
    ),
    (
        "xdp ctx narrow read",
        Mode::Xdp,
        "ldxb %r0, [%r1+12]\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=12 size=1",
    ),
    (
        "xdp egress_ifindex without a devmap",
        Mode::Xdp,
        "ldxw %r0, [%r1+20]\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=20 size=4",
    ),
    (
        "__sk_buff data narrow read",
        Mode::Tc,
        "ldxh %r2, [%r1+76]\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=76 size=2",
    ),
    (
        "__sk_buff data_end 8-byte read",
        Mode::Tc,
        "ldxdw %r2, [%r1+80]\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=80 size=8",
    ),
    (
        "__sk_buff data write",
        Mode::Tc,
        "stw [%r1+76], 0\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=76 size=4",
    ),
    (
        "__sk_buff data sign-extending read",
        Mode::Tc,
        "ldxsw %r2, [%r1+76]\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid bpf_context access off=76 size=4",
    ),
    (
        "packet pointer compared with a scalar",
        Mode::Tc,
        skb_ptrs!("mov %r0, 0\njgt %r2, 10, +0\nexit"),
        Errno::EACCES,
        "R2 pointer comparison prohibited",
    ),
    (
        "packet pointers compared for equality",
        Mode::Xdp,
        xdp_ptrs!("mov %r0, 0\njeq %r2, %r3, +0\nexit"),
        Errno::EACCES,
        "R2 pointer comparison prohibited",
    ),
    (
        "32-bit packet bounds check",
        Mode::Tc,
        skb_ptrs!("mov %r0, 0\nmov %r4, %r2\nadd %r4, 14\njgt32 %r4, %r3, +0\nexit"),
        Errno::EACCES,
        "R4 pointer comparison prohibited",
    ),
    (
        "data_end minus data",
        Mode::Tc,
        skb_ptrs!("sub %r3, %r2\nmov %r0, 0\nexit"),
        Errno::EACCES,
        "R3 pointer -= pointer prohibited",
    ),
    (
        "atomic add into the packet",
        Mode::Xdp,
        xdp_ptrs!(eth_checked!("mov %r5, 1\nlock add [%r2+0], %r5\nexit")),
        Errno::EACCES,
        "BPF_ATOMIC stores into R2 pkt is not allowed",
    ),
    (
        "load-acquire from the rewritten context",
        Mode::Tc,
        "load_acquire32 %r0, [%r1+0]\nexit",
        Errno::EACCES,
        "BPF_ATOMIC loads from R1 ctx is not allowed",
    ),
    (
        "store-release into the packet",
        Mode::Xdp,
        xdp_ptrs!(eth_checked!("store_release32 [%r2+2], %r0\nexit")),
        Errno::EACCES,
        "BPF_ATOMIC stores into R2 pkt is not allowed",
    ),
    (
        // Atomics are checked for alignment whatever they point to, the packet with the
        // kernel's NET_IP_ALIGN of 2; the access is checked before the pointer's type.
        "misaligned store-release into the packet",
        Mode::Xdp,
        xdp_ptrs!(eth_checked!("store_release32 [%r2+0], %r0\nexit")),
        Errno::EACCES,
        "misaligned packet access off 2+0+0+0 size 4",
    ),
    (
        "tc data_meta read without check",
        Mode::Tc,
        "ldxw %r2, [%r1+140]\nldxb %r0, [%r2+0]\nexit",
        Errno::EACCES,
        "invalid access to packet, off=0 size=1",
    ),
    (
        "same load through ctx and stack",
        Mode::Tc,
        "ldxw %r0, [%r1+0]\nstw [%r10-8], 0\nmov %r2, %r10\nadd %r2, -8\n\
         jeq %r0, 0, +1\nmov %r2, %r1\nldxw %r0, [%r2+0]\nexit",
        Errno::EINVAL,
        "same insn cannot be used with different pointers",
    ),
    (
        "packet map key beyond the range",
        Mode::Tc,
        concat!(
            "ldxw %r2, [%r1+76]\nldxw %r3, [%r1+80]\nmov %r0, 0\nmov %r4, %r2\nadd %r4, 2\n",
            "jgt %r4, %r3, +3\nlddw %r1, map_fd 0\ncall 1\nmov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "invalid access to packet, off=0 size=4",
    ),
];

#[test]
fn negative_corpus() {
    assert!(NEGATIVE.len() >= 25);
    let failures = corpus::negative_failures(NEGATIVE, run);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const POSITIVE: &[(&str, Mode, &str)] = &[
    (
        "tc parses the ethernet header",
        Mode::Tc,
        skb_ptrs!(eth_checked!("ldxh %r0, [%r2+12]\nexit")),
    ),
    (
        "xdp parses the ethernet header",
        Mode::Xdp,
        xdp_ptrs!(eth_checked!("ldxh %r0, [%r2+12]\nldxb %r5, [%r2+13]\nexit")),
    ),
    (
        "sched_act parses the ethernet header",
        Mode::Act,
        skb_ptrs!(eth_checked!("ldxw %r0, [%r2+10]\nexit")),
    ),
    (
        "pkt' < end: good when taken",
        Mode::Tc,
        skb_ptrs!(
            "mov %r0, 0\nmov %r4, %r2\nadd %r4, 14\njlt %r4, %r3, +1\nexit\nldxb %r0, [%r2+14]\nexit"
        ),
    ),
    (
        "pkt' <= end: good when taken",
        Mode::Xdp,
        xdp_ptrs!(
            "mov %r0, 0\nmov %r4, %r2\nadd %r4, 14\njle %r4, %r3, +1\nexit\nldxb %r0, [%r2+13]\nexit"
        ),
    ),
    (
        "pkt' >= end: good on fall-through, one byte more",
        Mode::Tc,
        skb_ptrs!(
            "mov %r0, 0\nmov %r4, %r2\nadd %r4, 14\njge %r4, %r3, +1\nldxb %r0, [%r2+14]\nexit"
        ),
    ),
    (
        "end > pkt': good when taken",
        Mode::Tc,
        skb_ptrs!(
            "mov %r0, 0\nmov %r4, %r2\nadd %r4, 14\njgt %r3, %r4, +1\nexit\nldxb %r0, [%r2+14]\nexit"
        ),
    ),
    (
        "end < pkt': good on fall-through",
        Mode::Xdp,
        xdp_ptrs!(
            "mov %r0, 0\nmov %r4, %r2\nadd %r4, 14\njlt %r3, %r4, +1\nldxb %r0, [%r2+13]\nexit"
        ),
    ),
    (
        "end >= pkt': good when taken",
        Mode::Tc,
        skb_ptrs!(
            "mov %r0, 0\nmov %r4, %r2\nadd %r4, 14\njge %r3, %r4, +1\nexit\nldxb %r0, [%r2+13]\nexit"
        ),
    ),
    (
        "end <= pkt': good on fall-through, one byte more",
        Mode::Tc,
        skb_ptrs!(
            "mov %r0, 0\nmov %r4, %r2\nadd %r4, 14\njle %r3, %r4, +1\nldxb %r0, [%r2+14]\nexit"
        ),
    ),
    (
        "checked pointer itself is readable below its offset",
        Mode::Tc,
        skb_ptrs!(eth_checked!("ldxb %r0, [%r4-1]\nexit")),
    ),
    (
        "tc writes the packet",
        Mode::Tc,
        skb_ptrs!(eth_checked!("stb [%r2+0], 1\nstxh [%r2+12], %r0\nexit")),
    ),
    (
        "xdp writes the packet",
        Mode::Xdp,
        xdp_ptrs!(eth_checked!("stw [%r2+10], 7\nexit")),
    ),
    (
        // A cgroup skb program returns 0 or 1 (`check_return_code`): the byte read is masked.
        "cgroup_skb reads the packet",
        Mode::Cg,
        skb_ptrs!(eth_checked!("ldxb %r0, [%r2+0]\nand %r0, 1\nexit")),
    ),
    (
        "bounded variable offset checked after the add",
        Mode::TcPriv,
        skb_ptrs!(eth_checked!(
            "ldxb %r5, [%r2+0]\nand %r5, 0x3f\nadd %r2, %r5\nmov %r4, %r2\nadd %r4, 4\n\
             jgt %r4, %r3, +1\nldxw %r0, [%r2+0]\nmov %r0, 0\nexit"
        )),
    ),
    (
        "data_meta checked against data",
        Mode::Tc,
        "ldxw %r2, [%r1+140]\nldxw %r3, [%r1+76]\nmov %r0, 0\nmov %r4, %r2\nadd %r4, 4\n\
         jgt %r4, %r3, +1\nldxw %r0, [%r2+0]\nexit",
    ),
    (
        "xdp data_meta checked against data, reversed",
        Mode::Xdp,
        "ldxw %r2, [%r1+8]\nldxw %r3, [%r1+0]\nmov %r0, 0\nmov %r4, %r2\nadd %r4, 4\n\
         jlt %r3, %r4, +1\nldxw %r0, [%r2+0]\nexit",
    ),
    (
        "xdp reads the queue fields",
        Mode::Xdp,
        "ldxw %r2, [%r1+12]\nldxw %r0, [%r1+16]\nadd %r0, %r2\nexit",
    ),
    (
        "range survives a spill and fill",
        Mode::Tc,
        skb_ptrs!(eth_checked!(
            "stxdw [%r10-8], %r2\nldxdw %r6, [%r10-8]\nldxb %r0, [%r6+13]\nexit"
        )),
    ),
    (
        "packet bytes as a map key",
        Mode::Tc,
        concat!(
            "ldxw %r2, [%r1+76]\nldxw %r3, [%r1+80]\nmov %r0, 0\nmov %r4, %r2\nadd %r4, 4\n",
            "jgt %r4, %r3, +3\nlddw %r1, map_fd 0\ncall 1\nmov %r0, 0\nexit"
        ),
    ),
    (
        "privileged: packet pointer compared with a scalar",
        Mode::TcPriv,
        skb_ptrs!("mov %r0, 0\njgt %r2, 10, +0\nexit"),
    ),
    (
        "two checks on different paths join",
        Mode::Tc,
        skb_ptrs!(
            "ldxw %r5, [%r1+8]\nmov %r0, 0\nmov %r4, %r2\nadd %r4, 20\njeq %r5, 0, +1\nadd %r4, -6\n\
             jgt %r4, %r3, +1\nldxb %r0, [%r2+13]\nexit"
        ),
    ),
];

#[test]
fn positive_controls() {
    let failures = corpus::positive_failures(POSITIVE, run);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A state whose packet pointer had less range proven covers one with more, not the reverse
/// (`regsafe`).
#[test]
fn pruning_compares_ranges() {
    let mut small = Reg::ptr(RegType::PtrToPacket, 0);
    small.range = 14;
    let mut big = small;
    big.range = 20;
    assert!(small.subsumes(&big));
    assert!(!big.subsumes(&small));
    let mut moved = big;
    moved.off = 2;
    assert!(!small.subsumes(&moved));
    let mut var = small;
    var.var = Scalar::urange(0, 8);
    let mut narrower = big;
    narrower.var = Scalar::urange(2, 4);
    assert!(var.subsumes(&narrower));
    assert!(!narrower.subsumes(&var));
}

/// The verifier records context accesses; the rewrite maps them onto the kernel structs.
#[test]
fn ctx_accesses_are_recorded_and_converted() {
    let out = run(
        Mode::Tc,
        "ldxb %r0, [%r1+8]\nldxw %r2, [%r1+76]\nldxb %r3, [%r1+17]\nstw [%r1+44], 3\nexit",
    )
    .unwrap();
    let info = |off, size, write| Some(CtxAccessInfo { off, size, write });
    assert_eq!(
        out.ctx_access,
        vec![
            info(8, 1, false),
            info(76, 4, false),
            info(17, 1, false),
            info(44, 4, true),
            None
        ]
    );
    let insns =
        assemble("ldxb %r0, [%r1+8]\nldxw %r2, [%r1+76]\nldxb %r3, [%r1+17]\nstw [%r1+44], 3")
            .unwrap();
    let conv = |i: usize| {
        convert_insn(ProgType::SchedCls, insns[i], out.ctx_access[i].unwrap())
            .unwrap()
            .unwrap()
    };
    let mark = core::mem::offset_of!(kbpf::skb::SkBuff, mark) as i16;
    let data = core::mem::offset_of!(kbpf::skb::SkBuff, data) as i16;
    let proto = core::mem::offset_of!(kbpf::skb::SkBuff, protocol) as i16;
    let tc_index = core::mem::offset_of!(kbpf::skb::SkBuff, tc_index) as i16;
    // 1-byte read of mark: the same byte of the kernel's u32.
    assert_eq!(conv(0), vec![kbpf::insn::ldx_mem(Size::B, 0, 1, mark)]);
    // data: a 64-bit pointer load.
    assert_eq!(conv(1), vec![kbpf::insn::ldx_mem(Size::DW, 2, 1, data)]);
    // Byte 1 of protocol (a u16 in the kernel): load, shift, mask (little endian).
    let p = conv(2);
    assert_eq!(p.len(), 3);
    assert_eq!(p[0], kbpf::insn::ldx_mem(Size::H, 3, 1, proto));
    assert!(matches!(
        decode(&p[2..], 0).unwrap(),
        kbpf::insn::Op::Alu { wide: false, .. }
    ));
    // tc_index store truncates to the kernel's u16.
    assert_eq!(conv(3), vec![kbpf::insn::st_mem(Size::H, 1, tc_index, 3)]);
    // The raw buffer is not converted.
    assert_eq!(
        convert_insn(ProgType::RawBuffer, insns[0], out.ctx_access[0].unwrap()).unwrap(),
        None
    );
}
