//! Packet helpers and `BPF_PROG_TEST_RUN` on real packet buffers, with the expected results
//! written out: each helper's effect and errnos, the test run's size rules, context round
//! trips, `repeat`, `bpf_loop` — the interpreter first, then the JIT (registering the JIT is
//! process-wide, so one test does both phases in order). `bpf_xdp_adjust_meta` is checked
//! here only: the host kernel this was written on does not offer it, so the recorded host
//! answers (`pkt_golden.rs`) have nothing to say about it.

mod pkt_cases;

use kbpf::insn::assemble;
use kbpf::syscall::{self, TestRun, TestRunResult};
use kbpf::uapi::ProgType;
use kbpf::{Errno, ProgLoadAttr};
use kbpf_shim::conformance::Engine;
use pkt_cases::ipv4;

fn load(ty: ProgType, src: &str) -> u32 {
    let insns = assemble(src).unwrap();
    let mut log = String::new();
    syscall::prog_load_log(&ProgLoadAttr::new(ty, &insns), &mut log)
        .unwrap_or_else(|e| panic!("{e:?}: {log}"))
}

/// Runs `fd` on `data` with `ctx_in`; returns the result, the packet and the context out.
fn run(
    fd: u32,
    data: &[u8],
    ctx_in: Option<&[u8]>,
    flags: u32,
) -> (Result<TestRunResult, Errno>, Vec<u8>, Vec<u8>) {
    let mut data = data.to_vec();
    let mut out = vec![0u8; 8192];
    let mut ctx_out = vec![0u8; 256];
    let mut r = TestRun {
        data: &mut data,
        data_out: Some(&mut out),
        ctx_in,
        ctx_out: ctx_in.map(|_| &mut ctx_out[..]),
        flags,
        ..Default::default()
    };
    let res = syscall::prog_test_run(fd, &mut r);
    let o = r.out;
    out.truncate(o.data_size_out as usize);
    ctx_out.truncate(o.ctx_size_out as usize);
    (res, out, ctx_out)
}

fn xdp_md(data: u32, data_end: u32) -> Vec<u8> {
    let mut c = vec![0u8; 24];
    c[..4].copy_from_slice(&data.to_ne_bytes());
    c[4..8].copy_from_slice(&data_end.to_ne_bytes());
    c
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
}

/// `bpf_xdp_adjust_meta(delta)`, then R0 = the helper's result.
fn adjust_meta(delta: i32) -> String {
    format!("mov %r2, {delta}\ncall 54\nexit")
}

fn check_adjust_meta() {
    let pkt = ipv4(60, false);
    let mut with8 = vec![0xa5u8; 8];
    with8.extend_from_slice(&pkt);
    let ok = load(ProgType::Xdp, &adjust_meta(-8));
    // Grow the metadata from 8 to 16 bytes: 8 new bytes in front, zeroed headroom.
    let (r, out, ctx) = run(ok, &with8, Some(&xdp_md(8, 68)), 0);
    assert_eq!(r.unwrap().retval, 0);
    assert_eq!((u32_at(&ctx, 0), u32_at(&ctx, 4)), (16, 76));
    assert_eq!(&out[..8], &[0; 8]);
    assert_eq!(&out[8..16], &[0xa5; 8]);
    assert_eq!(&out[16..], &pkt[..]);
    // Errors: past the room for a `struct xdp_frame` (-EINVAL), not a multiple of 4
    // (-EACCES), past `data` (-EINVAL), more than 255 bytes (-EACCES after `adjust_head`).
    for (delta, want) in [(-220, -22i64), (-2, -13), (12, -22), (4, 0)] {
        let fd = load(ProgType::Xdp, &adjust_meta(delta));
        let (r, _, ctx) = run(fd, &with8, Some(&xdp_md(8, 68)), 0);
        assert_eq!(r.unwrap().retval as i32 as i64, want, "delta {delta}");
        if want != 0 {
            assert_eq!(u32_at(&ctx, 0), 8, "a failed adjustment changes nothing");
        }
        syscall::close(fd).unwrap();
    }
    let far = load(
        ProgType::Xdp,
        "mov %r6, %r1\nmov %r2, 40\ncall 44\nmov %r1, %r6\nmov %r2, -256\ncall 54\nexit",
    );
    let (r, _, _) = run(far, &pkt, Some(&xdp_md(0, 60)), 0);
    assert_eq!(r.unwrap().retval as i32, -13);
    let fit = load(
        ProgType::Xdp,
        "mov %r6, %r1\nmov %r2, 40\ncall 44\nmov %r1, %r6\nmov %r2, -252\ncall 54\nexit",
    );
    let (r, _, ctx) = run(fit, &pkt, Some(&xdp_md(0, 60)), 0);
    assert_eq!(r.unwrap().retval, 0);
    assert_eq!(u32_at(&ctx, 0), 252);
}

fn check_xdp_frames() {
    let pkt = ipv4(60, false);
    // adjust_head(+14) drops the Ethernet header; adjust_tail(-6) the last 6 bytes.
    let fd = load(
        ProgType::Xdp,
        "mov %r6, %r1\nmov %r2, 14\ncall 44\nmov %r1, %r6\nmov %r2, -6\ncall 65\nmov %r0, 2\nexit",
    );
    let (r, out, _) = run(fd, &pkt, None, 0);
    assert_eq!(r.unwrap().retval, 2);
    assert_eq!(out, pkt[14..54]);
    // Growing the tail zero-fills; the linear part ends 320 bytes before the page does.
    let grow = load(ProgType::Xdp, "mov %r2, 3460\ncall 65\nexit");
    let (r, out, _) = run(grow, &pkt, None, 0);
    assert_eq!(r.unwrap().retval, 0);
    assert_eq!(out.len(), 3520);
    assert!(out[60..].iter().all(|&b| b == 0));
    let too_far = load(ProgType::Xdp, "mov %r2, 3461\ncall 65\nexit");
    assert_eq!(run(too_far, &pkt, None, 0).0.unwrap().retval as i32, -22);
    // A 6000-byte frame: 3520 linear bytes, one fragment; load_bytes reads across them.
    let big = ipv4(6000, true);
    let across = load(
        ProgType::Xdp,
        "stdw [%r10-8], 0\nmov %r2, 3516\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 8\ncall 189\n\
         ldxdw %r0, [%r10-8]\nexit",
    );
    let (r, out, _) = run(across, &big, None, 0);
    let want = u64::from_ne_bytes(big[3516..3524].try_into().unwrap());
    assert_eq!(r.unwrap().retval, want);
    assert_eq!(out, big);
    // Shrinking by more than the fragment holds takes the rest off the linear part.
    let shrink = load(ProgType::Xdp, "mov %r2, -2490\ncall 65\nexit");
    let (r, out, _) = run(shrink, &big, None, 0);
    assert_eq!(r.unwrap().retval, 0);
    assert_eq!(out, big[..3510]);
}

fn check_skb_helpers() {
    let pkt = ipv4(60, false);
    // load_bytes out of range: -EFAULT and a zeroed buffer (seen in cb[0], via ctx_out).
    let fd = load(
        ProgType::SchedCls,
        "mov %r6, %r1\nstdw [%r10-8], -1\nmov %r2, 58\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 4\n\
         call 26\nldxw %r1, [%r10-8]\nstxw [%r6+48], %r1\nexit",
    );
    let (r, _, ctx) = run(fd, &pkt, Some(&[0; 192]), 0);
    assert_eq!(r.unwrap().retval as i32, -14);
    assert_eq!(u32_at(&ctx, 48), 0);
    // Rewrite the IPv4 destination with store_bytes + l3_csum_replace: the header stays valid.
    let new = u32::from_ne_bytes([10, 0, 0, 9]);
    let old = u32::from_ne_bytes([10, 0, 0, 2]);
    let fd = load(
        ProgType::SchedCls,
        &format!(
            "mov %r6, %r1\nmov %r1, {new}\nstxw [%r10-4], %r1\nmov %r1, %r6\nmov %r2, 30\n\
             mov %r3, %r10\nadd %r3, -4\nmov %r4, 4\nmov %r5, 0\ncall 9\nmov %r1, %r6\n\
             mov %r2, 24\nmov %r3, {old}\nmov %r4, {new}\nmov %r5, 4\ncall 10\nexit"
        ),
    );
    let (r, out, _) = run(fd, &pkt, None, 0);
    assert_eq!(r.unwrap().retval, 0);
    assert_eq!(&out[30..34], &[10, 0, 0, 9]);
    let sum: u32 = out[14..34]
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
        .sum();
    assert_eq!(
        (sum & 0xffff) + (sum >> 16),
        0xffff,
        "IP header checksum still valid"
    );
    // Checksum-complete runs: a store that does not recompute leaves skb->csum stale.
    let store = |flags: u32| {
        load(
            ProgType::SchedCls,
            &format!(
                "stw [%r10-4], 0x01020304\nmov %r2, 60\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 0\n\
                 mov %r2, 56\nmov %r3, %r10\nadd %r3, -4\nmov %r4, 4\nmov %r5, {flags}\ncall 9\nexit"
            ),
        )
    };
    let csum = pkt_cases::CSUM_COMPLETE;
    assert_eq!(run(store(0), &pkt, None, csum).0, Err(Errno::EBADMSG));
    assert_eq!(run(store(1), &pkt, None, csum).0.unwrap().retval, 0);
    assert_eq!(run(store(0), &pkt, None, 0).0.unwrap().retval, 0);
    // Unknown store flags: -EINVAL; redirect: TC_ACT_REDIRECT.
    assert_eq!(run(store(4), &pkt, None, 0).0.unwrap().retval as i32, -22);
    let redirect = load(ProgType::SchedCls, "mov %r1, 3\nmov %r2, 0\ncall 23\nexit");
    assert_eq!(run(redirect, &pkt, None, 0).0.unwrap().retval, 7);
}

fn check_run_rules() {
    let pkt = ipv4(60, false);
    let tc = load(
        ProgType::SchedCls,
        "ldxw %r0, [%r1+8]\nstw [%r1+8], 9\nexit",
    );
    // Frames: at least an Ethernet header, at most what a page holds with the headroom.
    for (n, ok) in [(13, false), (14, true), (3712, true), (3713, false)] {
        let data = vec![0u8; n];
        assert_eq!(run(tc, &data, None, 0).0.is_ok(), ok, "{n} bytes");
    }
    // mark in, mark out; anything not settable is EINVAL; a longer context must be zero.
    let mut c = vec![0u8; 192];
    c[8] = 5;
    let (r, _, ctx) = run(tc, &pkt, Some(&c), 0);
    assert_eq!(r.unwrap().retval, 5);
    assert_eq!((ctx.len(), ctx[8], u32_at(&ctx, 40)), (192, 9, 1));
    c[4] = 1;
    assert_eq!(run(tc, &pkt, Some(&c), 0).0, Err(Errno::EINVAL));
    c[4] = 0;
    c.extend([0, 0, 1]);
    assert_eq!(run(tc, &pkt, Some(&c), 0).0, Err(Errno::E2BIG));
    // data_out too small: ENOSPC, yet retval and the full size are reported.
    let mut data = pkt.clone();
    let mut small = vec![0u8; 10];
    let mut r = TestRun {
        data: &mut data,
        data_out: Some(&mut small),
        ..Default::default()
    };
    assert_eq!(syscall::prog_test_run(tc, &mut r), Err(Errno::ENOSPC));
    assert_eq!((r.out.data_size_out, r.out.retval), (60, 0));
    assert_eq!(small, pkt[..10]);
    // A socket filter sees the frame from the network header; the Ethernet header comes
    // back zeroed.
    let sf = load(ProgType::SocketFilter, "ldxw %r0, [%r1+0]\nexit");
    let (r, out, _) = run(sf, &pkt, None, 0);
    assert_eq!(r.unwrap().retval, 46);
    assert_eq!(&out[..14], &[0; 14]);
    assert_eq!(&out[14..], &pkt[14..]);
    // repeat: each run sees what the previous one left.
    let head = load(ProgType::Xdp, "mov %r2, 2\ncall 44\nmov %r0, 2\nexit");
    let mut data = pkt.clone();
    let mut out = vec![0u8; 100];
    let mut r = TestRun {
        data: &mut data,
        data_out: Some(&mut out),
        repeat: 5,
        ..Default::default()
    };
    assert_eq!(
        syscall::prog_test_run(head, &mut r).unwrap().data_size_out,
        50
    );
    // Raw buffers run in place and go to data_out too.
    let raw = load(ProgType::RawBuffer, "mov %r0, 7\nexit");
    let mut r = TestRun {
        data: &mut [],
        data_out: Some(&mut out),
        ..Default::default()
    };
    assert_eq!(syscall::prog_test_run(raw, &mut r).unwrap().retval, 7);
}

fn check_loop() {
    // Sum of 1..=10 through the callback's context; 10 calls.
    let fd = load(
        ProgType::Xdp,
        "stdw [%r10-8], 0\nmov %r1, 10\nlddw %r2, func cb\nmov %r3, %r10\nadd %r3, -8\n\
         mov %r4, 0\ncall 181\nldxdw %r1, [%r10-8]\nlsh %r1, 16\nadd %r0, %r1\nexit\n\
         cb:\nldxdw %r3, [%r2+0]\nadd %r3, %r1\nadd %r3, 1\nstxdw [%r2+0], %r3\nmov %r0, 0\nexit",
    );
    let pkt = ipv4(60, false);
    assert_eq!(run(fd, &pkt, None, 0).0.unwrap().retval, (55 << 16) | 10);
    // A callback that may return 2 is refused.
    let insns =
        assemble("mov %r1, 1\nlddw %r2, func cb\nmov %r3, 0\nmov %r4, 0\ncall 181\nexit\ncb:\nmov %r0, 2\nexit")
            .unwrap();
    let mut log = String::new();
    let r = syscall::prog_load_log(&ProgLoadAttr::new(ProgType::Xdp, &insns), &mut log);
    assert_eq!(r, Err(Errno::EINVAL));
    assert!(log.contains("should have been in [0, 1]"), "{log}");
}

#[test]
fn packet_helpers_and_test_runs_interpreted_then_jited() {
    kbpf_shim::host::install();
    for engine in [Engine::Interp, Engine::Jit] {
        engine.select();
        check_adjust_meta();
        check_xdp_frames();
        check_skb_helpers();
        check_run_rules();
        check_loop();
    }
}
