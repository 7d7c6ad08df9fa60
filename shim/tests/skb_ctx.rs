//! TC and XDP programs run on the kernel-side context structs after the load rewrote their
//! `__sk_buff` / `xdp_md` accesses: the interpreter first, then the JIT (registering the JIT
//! is process-wide and permanent, so one test does both phases in order, in its own binary).

use kbpf::cpu::CpuGuard;
use kbpf::insn::assemble;
use kbpf::skb::SkBuff;
use kbpf::syscall;
use kbpf::tcx::{self, AttachAttr, Direction, TcxVerdict};
use kbpf::uapi::{AttachType, ProgType};
use kbpf::xdp::{XdpBuff, XdpRxqInfo};
use kbpf::{ProgLoadAttr, sync::Arc};
use kbpf_shim::conformance::Engine;

/// Reads `len`, `mark` (whole and its second byte), both halves of `protocol` (a u16 in the
/// kernel struct), `data`/`data_end` and packet byte 12; writes `mark`, `tc_index` and packet
/// byte 0. Returns `len + mark + (mark[1] << 32) + (pkt[12] << 40) + (proto_lo << 48) +
/// (proto_hi << 56)`, or 1 when the packet is shorter than 14 bytes.
const TC_PROG: &str = "
    ldxw %r0, [%r1+0]
    ldxw %r5, [%r1+8]
    add %r0, %r5
    ldxb %r5, [%r1+9]
    lsh %r5, 32
    add %r0, %r5
    ldxh %r5, [%r1+16]
    lsh %r5, 48
    add %r0, %r5
    ldxh %r5, [%r1+18]
    lsh %r5, 56
    add %r0, %r5
    stw [%r1+8], 7
    mov %r5, 0x10003
    stxw [%r1+44], %r5
    ldxw %r2, [%r1+76]
    ldxw %r3, [%r1+80]
    mov %r4, %r2
    add %r4, 14
    jgt %r4, %r3, short
    ldxb %r5, [%r2+12]
    lsh %r5, 40
    add %r0, %r5
    stb [%r2+0], 0xaa
    exit
short:
    mov %r0, 1
    exit
";

/// Returns `ingress_ifindex * 1000 + rx_queue_index * 10 + pkt[1]` after checking 2 bytes;
/// 1 when the packet is shorter.
const XDP_PROG: &str = "
    ldxw %r2, [%r1+0]
    ldxw %r3, [%r1+4]
    ldxw %r0, [%r1+12]
    mul %r0, 1000
    ldxw %r5, [%r1+16]
    mul %r5, 10
    add %r0, %r5
    mov %r4, %r2
    add %r4, 2
    jle %r4, %r3, ok
    mov %r0, 1
    exit
ok:
    ldxb %r5, [%r2+1]
    add %r0, %r5
    exit
";

fn load(ty: ProgType, src: &str) -> Arc<kbpf::Prog> {
    let insns = assemble(src).unwrap();
    let mut log = String::new();
    let fd = syscall::prog_load_log(&ProgLoadAttr::new(ty, &insns), &mut log)
        .unwrap_or_else(|e| panic!("{e:?}: {log}"));
    syscall::prog_get(fd).unwrap()
}

fn packet() -> Vec<u8> {
    let mut pkt = vec![0u8; 60];
    pkt[12] = 0x08;
    pkt
}

fn skb_over(pkt: &mut [u8]) -> SkBuff {
    let mut skb = SkBuff::new(pkt);
    skb.mark = 0x1234_5678;
    skb.protocol = 0x0800u16.to_be();
    skb
}

fn check_tc(jited: bool) {
    let prog = load(ProgType::SchedCls, TC_PROG);
    assert_eq!(prog.jited(), jited);
    // The rewrite touched the program: `data` became a 64-bit load.
    assert!(prog.insns().len() > assemble(TC_PROG).unwrap().len());
    let mut pkt = packet();
    let mut skb = skb_over(&mut pkt);
    let mut g = CpuGuard::enter();
    let r0 = prog.run(&mut g, skb.as_ctx(), 0).unwrap();
    drop(g);
    let proto = 0x0800u16.to_be() as u64;
    let want = 60 + 0x1234_5678 + (0x56 << 32) + (0x08 << 40) + (proto << 48);
    assert_eq!(r0, want, "{r0:#x} != {want:#x}");
    assert_eq!(skb.mark, 7);
    assert_eq!(skb.tc_index, 3, "stores truncate to the kernel's u16");
    assert_eq!(pkt[0], 0xaa);

    let mut short = vec![0u8; 10];
    let mut skb = skb_over(&mut short);
    let mut g = CpuGuard::enter();
    assert_eq!(prog.run(&mut g, skb.as_ctx(), 0).unwrap(), 1);
    drop(g);
    assert_eq!(short[0], 0, "no write past the failed check");
}

fn check_xdp(jited: bool) {
    let prog = load(ProgType::Xdp, XDP_PROG);
    assert_eq!(prog.jited(), jited);
    let rxq = XdpRxqInfo {
        ifindex: 3,
        queue_index: 5,
        ..XdpRxqInfo::default()
    };
    let mut pkt = packet();
    pkt[1] = 9;
    let mut xdp = XdpBuff::new(&mut pkt, &rxq);
    let mut g = CpuGuard::enter();
    assert_eq!(prog.run(&mut g, xdp.as_ctx(), 0).unwrap(), 3059);
    let mut one = [7u8];
    let mut xdp = XdpBuff::new(&mut one, &rxq);
    assert_eq!(prog.run(&mut g, xdp.as_ctx(), 0).unwrap(), 1);
}

/// A tcx hook runs its SCHED_CLS program on an skb: drop marked packets.
fn check_tcx() {
    const IFINDEX: u32 = 7700;
    let insns =
        assemble("ldxw %r2, [%r1+8]\nmov %r0, 0\njne %r2, 1, +1\nmov %r0, 2\nexit").unwrap();
    let fd = syscall::prog_load(&ProgLoadAttr::new(ProgType::SchedCls, &insns)).unwrap();
    tcx::dev_create(IFINDEX).unwrap();
    let mut a = AttachAttr::new(IFINDEX, AttachType::TcxIngress);
    a.attach_bpf_fd = fd;
    tcx::prog_attach(&a).unwrap();
    let dev = tcx::dev_get(IFINDEX).unwrap();
    let mut pkt = packet();
    let mut skb = SkBuff::new(&mut pkt);
    let mut g = CpuGuard::enter();
    assert_eq!(
        tcx::run_skb(&dev, Direction::Ingress, &mut g, &mut skb),
        TcxVerdict::Pass
    );
    skb.mark = 1;
    assert_eq!(
        tcx::run_skb(&dev, Direction::Ingress, &mut g, &mut skb),
        TcxVerdict::Drop
    );
    drop(g);
    tcx::dev_remove(IFINDEX).unwrap();
}

#[test]
fn context_rewrite_runs_interpreted_then_jited() {
    kbpf_shim::host::install();
    check_tc(false);
    check_xdp(false);
    check_tcx();
    Engine::Jit.select();
    check_tc(true);
    check_xdp(true);
}
