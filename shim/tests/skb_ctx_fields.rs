//! The `__sk_buff` fields beyond `tc_classid` that kbpf's sk_buff carries: `tstamp`,
//! `wire_len`, `gso_segs`, `gso_size`, `hwtstamp` (set through a test run's context), `napi_id`
//! and `tstamp_type` (read as 0), and TC's stores into `tstamp` and `queue_mapping` (which
//! skips `NO_QUEUE_MAPPING` and more). Each program runs through `BPF_PROG_TEST_RUN` in the
//! interpreter, then the JIT (one test: registering the JIT is process-wide), and where the
//! host kernel runs BPF, on the host with the same frame and context; without it that part
//! says SKIPPED.

use kbpf::ProgLoadAttr;
use kbpf::insn::{Insn, assemble};
use kbpf::syscall::{self, TestRun};
use kbpf::uapi::ProgType;
use kbpf_shim::conformance::Engine;
use kbpf_shim::host_bpf::HostLoad;
use kbpf_shim::host_bpf::test_run::{HostRunAttr, HostTestRun};

/// `struct __sk_buff` offsets the context sets.
const TSTAMP: usize = 152;
const WIRE_LEN: usize = 160;
const GSO_SEGS: usize = 164;
const GSO_SIZE: usize = 176;
const HWTSTAMP: usize = 184;

/// The context every run starts from.
fn ctx_in() -> Vec<u8> {
    let mut c = vec![0u8; 192];
    c[TSTAMP..TSTAMP + 8].copy_from_slice(&0x1122_3344_5566_7788u64.to_ne_bytes());
    c[WIRE_LEN..WIRE_LEN + 4].copy_from_slice(&1000u32.to_ne_bytes());
    c[GSO_SEGS..GSO_SEGS + 4].copy_from_slice(&3u32.to_ne_bytes());
    c[GSO_SIZE..GSO_SIZE + 4].copy_from_slice(&0x5a4u32.to_ne_bytes());
    c[HWTSTAMP..HWTSTAMP + 8].copy_from_slice(&0x0102_0304_0506_0708u64.to_ne_bytes());
    c
}

/// (what, program type, program, the return value kbpf's model gives on [`ctx_in`]).
const CASES: &[(&str, ProgType, &str, u32)] = &[
    (
        "tstamp low",
        ProgType::SchedCls,
        "ldxdw %r0, [%r1+152]\nexit",
        0x5566_7788,
    ),
    (
        "tstamp high",
        ProgType::SchedCls,
        "ldxdw %r0, [%r1+152]\nrsh %r0, 32\nexit",
        0x1122_3344,
    ),
    (
        "hwtstamp",
        ProgType::SchedCls,
        "ldxdw %r0, [%r1+184]\nrsh %r0, 8\nexit",
        0x0405_0607,
    ),
    (
        "wire_len",
        ProgType::SchedCls,
        "ldxw %r0, [%r1+160]\nexit",
        1000,
    ),
    (
        "wire_len low half",
        ProgType::SchedCls,
        "ldxh %r0, [%r1+160]\nexit",
        1000,
    ),
    (
        "gso_segs",
        ProgType::SchedCls,
        "ldxw %r0, [%r1+164]\nexit",
        3,
    ),
    (
        "gso_size",
        ProgType::SocketFilter,
        "ldxw %r0, [%r1+176]\nexit",
        0x5a4,
    ),
    (
        "gso_size second byte",
        ProgType::SchedCls,
        "ldxb %r0, [%r1+177]\nexit",
        0x5,
    ),
    (
        "gso_segs in cgroup skb",
        ProgType::CgroupSkb,
        "ldxw %r0, [%r1+164]\nand %r0, 1\nexit",
        1,
    ),
    (
        "napi_id",
        ProgType::SocketFilter,
        "ldxw %r0, [%r1+84]\nexit",
        0,
    ),
    (
        "tstamp_type",
        ProgType::SchedCls,
        "ldxb %r0, [%r1+180]\nexit",
        0,
    ),
    (
        "tstamp stored and read back",
        ProgType::SchedCls,
        "lddw %r2, 0xaabbccdd00000005\nstxdw [%r1+152], %r2\nldxdw %r0, [%r1+152]\nexit",
        5,
    ),
    (
        "queue_mapping stored",
        ProgType::SchedCls,
        "stw [%r1+12], 7\nldxw %r0, [%r1+12]\nexit",
        7,
    ),
    (
        "queue_mapping: NO_QUEUE_MAPPING is not stored",
        ProgType::SchedCls,
        "stw [%r1+12], 2\nstw [%r1+12], 0xffff\nldxw %r0, [%r1+12]\nexit",
        2,
    ),
    (
        "queue_mapping from a register past the limit",
        ProgType::SchedCls,
        "stw [%r1+12], 4\nmov %r2, 0x10001\nstxw [%r1+12], %r2\nldxw %r0, [%r1+12]\nexit",
        4,
    ),
];

/// A 64-byte IPv6-less frame (protocol 0x88b5, a local experimental type).
fn frame() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[12] = 0x88;
    f[13] = 0xb5;
    f
}

fn kbpf_run(ty: ProgType, insns: &[Insn]) -> u32 {
    let mut log = String::new();
    let fd = syscall::prog_load_log(&ProgLoadAttr::new(ty, insns), &mut log)
        .unwrap_or_else(|e| panic!("{e:?}: {log}"));
    let (mut pkt, ctx) = (frame(), ctx_in());
    let r = syscall::prog_test_run(
        fd,
        &mut TestRun {
            data: &mut pkt,
            ctx_in: Some(&ctx),
            repeat: 1,
            ..Default::default()
        },
    );
    syscall::close(fd).unwrap();
    r.unwrap_or_else(|e| panic!("{e:?}")).retval as u32
}

fn host_run(host: &HostTestRun, ty: ProgType, insns: &[Insn]) -> u32 {
    let load = HostLoad {
        prog_type: ty,
        insns: insns.to_vec(),
        maps: Vec::new(),
        privileged: false,
        expected_attach_type: None,
    };
    let run = HostRunAttr {
        data: frame(),
        data_size_out: 256,
        ctx_in: Some(ctx_in()),
        repeat: 1,
        ..HostRunAttr::default()
    };
    match host.run(load, vec![run]) {
        Ok(Ok(out)) if out[0].errno == 0 => out[0].retval,
        other => panic!("host: {other:?}"),
    }
}

#[test]
fn skb_fields_read_and_written_in_both_engines_and_on_the_host() {
    kbpf_shim::host::install();
    let host = HostTestRun::open()
        .map_err(|why| eprintln!("SKIPPED (host part): {why}"))
        .ok();
    let mut compared = 0;
    for engine in [Engine::Interp, Engine::Jit] {
        engine.select();
        for &(what, ty, src, want) in CASES {
            let insns = assemble(src).unwrap();
            let got = kbpf_run(ty, &insns);
            assert_eq!(got, want, "{engine:?} {what}: {got:#x} != {want:#x}");
            if let Some(h) = &host {
                let theirs = host_run(h, ty, &insns);
                assert_eq!(
                    got, theirs,
                    "{engine:?} {what}: kbpf {got:#x}, host {theirs:#x}"
                );
                compared += 1;
            }
        }
    }
    println!("{compared} runs compared with the host kernel");
}
