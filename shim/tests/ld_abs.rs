//! Legacy packet loads (`BPF_LD | BPF_ABS` and `BPF_LD | BPF_IND`, sizes B/H/W) run on real
//! packets: the interpreter first, then the JIT (registering the JIT is process-wide and
//! permanent, so one test does both phases in order, in its own binary), each against a model
//! of the kernel's semantics — the bytes at the offset in network order read into host order,
//! zero-extended; an offset whose bytes are not all in the packet ends the program with 0; an
//! IND offset is `src + imm` taken as a 32-bit int — and then through `BPF_PROG_TEST_RUN`
//! (`syscall::prog_test_run`, which builds the socket buffer as the kernel does: a socket
//! filter sees the frame after its Ethernet header) against the host kernel's own test run on
//! the same frames, TC programs and socket filters. Without a usable host that last part says
//! SKIPPED; the engine parts always run.
//!
//! Negative offsets (`SKF_NET_OFF`, `SKF_LL_OFF`: relative to the network and link-layer
//! headers) are not compared with the host: kbpf's `sk_buff` carries no header offsets, so they
//! read nothing (see `kbpf::helpers::skb_load`).

use kbpf::cpu::CpuGuard;
use kbpf::insn::{Insn, Size, assemble, disasm};
use kbpf::skb::SkBuff;
use kbpf::syscall::{self, TestRun};
use kbpf::uapi::ProgType;
use kbpf::{ProgLoadAttr, sync::Arc};
use kbpf_shim::conformance::Engine;
use kbpf_shim::host_bpf::HostLoad;
use kbpf_shim::host_bpf::test_run::{HostRunAttr, HostTestRun};

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

/// Set in the return value of a program that went on after its load.
const GOT: u64 = 1 << 40;

/// One load: its size, ABS or IND (with the index register's value) and the immediate.
#[derive(Clone, Copy, Debug)]
struct Case {
    size: Size,
    index: Option<u64>,
    imm: i32,
}

impl Case {
    fn load_text(&self) -> String {
        let s = match self.size {
            Size::B => "b",
            Size::H => "h",
            _ => "w",
        };
        match self.index {
            None => format!("ldabs{s} {}\n", self.imm),
            Some(i) => format!("lddw %r7, {i:#x}\nldind{s} %r7, {}\n", self.imm),
        }
    }

    /// The loaded value, the success marker or'ed in (or 0: the program ended).
    fn marked(&self) -> Vec<Insn> {
        let src = format!(
            "mov %r6, %r1\n{}lddw %r1, {GOT:#x}\nor %r0, %r1\nexit",
            self.load_text()
        );
        assemble(&src).unwrap()
    }

    /// The two 32-bit programs the host can compare (its return value is 32 bits): the
    /// value, and 1 if the program went on after the load.
    fn split(&self) -> [Vec<Insn>; 2] {
        let val = format!("mov %r6, %r1\n{}exit", self.load_text());
        let went_on = format!("mov %r6, %r1\n{}mov %r0, 1\nexit", self.load_text());
        [assemble(&val).unwrap(), assemble(&went_on).unwrap()]
    }

    /// What the kernel's semantics give on `pkt` (the data the program sees).
    fn model(&self, pkt: &[u8]) -> u64 {
        let off = match self.index {
            None => self.imm as i64,
            Some(i) => i.wrapping_add(self.imm as i64 as u64) as u32 as i32 as i64,
        };
        let n = self.size.bytes();
        if off < 0 || off as usize + n > pkt.len() {
            return 0;
        }
        let b = &pkt[off as usize..off as usize + n];
        b.iter().fold(0u64, |v, &x| v << 8 | x as u64) | GOT
    }
}

fn load(ty: ProgType, insns: &[Insn], blind: bool) -> Arc<kbpf::Prog> {
    let mut log = String::new();
    let attr = ProgLoadAttr {
        blind,
        ..ProgLoadAttr::new(ty, insns)
    };
    let fd = syscall::prog_load_log(&attr, &mut log).unwrap_or_else(|e| panic!("{e:?}: {log}"));
    let p = syscall::prog_get(fd).unwrap();
    syscall::close(fd).unwrap();
    p
}

fn run(prog: &kbpf::Prog, pkt: &mut [u8]) -> u64 {
    let mut skb = SkBuff::new(pkt);
    let mut g = CpuGuard::enter();
    prog.run(&mut g, skb.as_ctx(), 0).unwrap()
}

/// `insns` as `prog_type` run once by kbpf's `BPF_PROG_TEST_RUN` over the frame `pkt`.
fn test_run(prog_type: ProgType, insns: &[Insn], pkt: &mut [u8]) -> u32 {
    let mut log = String::new();
    let fd = syscall::prog_load_log(&ProgLoadAttr::new(prog_type, insns), &mut log)
        .unwrap_or_else(|e| panic!("{e:?}: {log}"));
    let r = syscall::prog_test_run(
        fd,
        &mut TestRun {
            data: pkt,
            repeat: 1,
            ..Default::default()
        },
    );
    syscall::close(fd).unwrap();
    r.unwrap_or_else(|e| panic!("test run: {e:?}\n{}", listing(insns)))
        .retval as u32
}

fn listing(insns: &[Insn]) -> String {
    disasm(insns)
        .map(|l| l.iter().map(|(pc, s)| format!("{pc}: {s}\n")).collect())
        .unwrap_or_default()
}

fn packet(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.next() as u8).collect()
}

/// Offsets around a packet of `len` bytes: just before, inside, at and just past the end.
fn cases(rng: &mut Rng, len: usize, n: usize) -> Vec<Case> {
    let sizes = [Size::B, Size::H, Size::W];
    (0..n)
        .map(|_| {
            let size = sizes[rng.below(3) as usize];
            let off = rng.below(len as u64 + 10) as i64 - 4;
            if rng.below(2) == 0 {
                return Case {
                    size,
                    index: None,
                    imm: off as i32,
                };
            }
            // Split the offset between the index register and the immediate, sometimes
            // through a 64-bit index that only its low 32 bits make right.
            let imm = rng.below(64) as i32 - 32;
            let mut index = (off - imm as i64) as u64;
            if rng.below(4) == 0 {
                index = index.wrapping_add(7 << 32);
            }
            Case {
                size,
                index: Some(index),
                imm,
            }
        })
        .collect()
}

/// The fixed cases: byte order, the last byte, one past it, a load straddling the end, a
/// negative offset, an index that wraps as a 32-bit int.
fn fixed(engine: Engine) {
    let mut pkt: Vec<u8> = (0x10..0x30).collect();
    let n = pkt.len() as i32;
    let abs = |size, imm| Case {
        size,
        index: None,
        imm,
    };
    let check = |pkt: &mut Vec<u8>, c: Case, want: u64| {
        let insns = c.marked();
        for ty in [ProgType::SocketFilter, ProgType::SchedCls] {
            for blind in [false, true] {
                let got = run(&load(ty, &insns, blind), pkt);
                assert_eq!(
                    got,
                    want,
                    "{engine:?} {ty:?} blind={blind} {c:?}:\n{}",
                    listing(&insns)
                );
            }
        }
    };
    check(&mut pkt, abs(Size::B, 0), 0x10 | GOT);
    check(&mut pkt, abs(Size::H, 2), 0x1213 | GOT);
    check(&mut pkt, abs(Size::W, 4), 0x1415_1617 | GOT);
    check(&mut pkt, abs(Size::B, n - 1), 0x2f | GOT);
    check(&mut pkt, abs(Size::B, n), 0);
    check(&mut pkt, abs(Size::W, n - 3), 0);
    check(&mut pkt, abs(Size::H, -1), 0);
    check(&mut pkt, abs(Size::W, -0x10_0000), 0);
    let wrap = Case {
        size: Size::H,
        index: Some(0xffff_ffff),
        imm: 3,
    };
    check(&mut pkt, wrap, 0x1213 | GOT);
    let neg_index = Case {
        size: Size::B,
        index: Some(0xffff_ffff),
        imm: 0,
    };
    check(&mut pkt, neg_index, 0);
    // The top bit of a word load: the helper returns it zero-extended, not as a failure.
    let mut ones = vec![0xffu8; 8];
    check(&mut ones, abs(Size::W, 0), 0xffff_ffff | GOT);
}

/// Callee-saved registers and BPF-to-BPF calls around the loads; an empty packet.
fn around_calls(engine: Engine) {
    let src = "mov %r6, %r1\nmov %r8, 0x100\nmov %r9, 2\ncall local sub\nldabsb 1\nmov %r7, %r0\n\
               add %r7, %r8\nldindh %r9, 0\nadd %r0, %r7\nexit\nsub:\nmov %r9, 77\nmov %r6, 0\nmov %r0, 0\nexit";
    let insns = assemble(src).unwrap();
    let mut pkt = vec![1, 2, 3, 4];
    // r0 = pkt[1] + 0x100, then + ntohs(pkt[2..4]) (R9 = 2 survives the call) =
    // 2 + 0x100 + 0x0304.
    let prog = load(ProgType::SchedCls, &insns, false);
    assert_eq!(prog.jited(), engine == Engine::Jit);
    assert_eq!(run(&prog, &mut pkt), 2 + 0x100 + 0x304, "{engine:?}");
    assert_eq!(run(&prog, &mut [9]), 0, "{engine:?}: past the end");
    assert_eq!(run(&prog, &mut []), 0, "{engine:?}: empty packet");
}

/// Random cases against the model; returns each case's results for the host comparison.
fn random(engine: Engine, seed: u64) -> usize {
    let mut rng = Rng(seed);
    let mut n = 0;
    for _ in 0..40 {
        let len = rng.below(40) as usize;
        let mut pkt = packet(&mut rng, len);
        for c in cases(&mut rng, len, 8) {
            let insns = c.marked();
            let ty = if rng.below(2) == 0 {
                ProgType::SocketFilter
            } else {
                ProgType::SchedAct
            };
            let got = run(&load(ty, &insns, false), &mut pkt);
            assert_eq!(
                got,
                c.model(&pkt),
                "{engine:?} {ty:?} {c:?} on {pkt:02x?}:\n{}",
                listing(&insns)
            );
            n += 1;
        }
    }
    n
}

/// `insns` as `prog_type` run once by the host over `pkt`: the return value.
fn host_retval(host: &HostTestRun, prog_type: ProgType, insns: &[Insn], pkt: &[u8]) -> u32 {
    let load = HostLoad {
        prog_type,
        insns: insns.to_vec(),
        maps: Vec::new(),
        privileged: false,
        expected_attach_type: None,
    };
    let run = HostRunAttr {
        data: pkt.to_vec(),
        data_size_out: pkt.len() as u32 + 256,
        repeat: 1,
        ..HostRunAttr::default()
    };
    match host.run(load, vec![run]) {
        Ok(Ok(out)) if out[0].errno == 0 => out[0].retval,
        other => panic!("host run failed: {other:?}\n{}", listing(insns)),
    }
}

/// The same cases on the host kernel and on kbpf's current engine; returns (compared, agreed).
fn against_host(engine: Engine, seed: u64) -> Option<(usize, usize)> {
    let host = match HostTestRun::open() {
        Ok(h) => h,
        Err(why) => {
            eprintln!("SKIPPED: host BPF_PROG_TEST_RUN not usable: {why}");
            return None;
        }
    };
    let mut rng = Rng(seed);
    let (mut compared, mut agreed) = (0, 0);
    let mut bad = Vec::new();
    for _ in 0..40 {
        // The host needs an Ethernet header; a socket filter sees what follows it.
        let len = 14 + rng.below(40) as usize;
        let mut pkt = packet(&mut rng, len);
        for c in cases(&mut rng, len, 6) {
            if c.model(&pkt) == 0 && c.index.is_none() && c.imm < 0 {
                continue; // negative offsets: not modelled (see the module docs)
            }
            for ty in [ProgType::SchedCls, ProgType::SocketFilter] {
                let [val, went_on] = c.split();
                let (hv, hw) = (
                    host_retval(&host, ty, &val, &pkt),
                    host_retval(&host, ty, &went_on, &pkt),
                );
                let mine = [
                    test_run(ty, &val, &mut pkt),
                    test_run(ty, &went_on, &mut pkt),
                ];
                compared += 1;
                if mine == [hv, hw] {
                    agreed += 1;
                } else {
                    bad.push(format!(
                        "{ty:?} {c:?} on {pkt:02x?}: kbpf {mine:x?}, host [{hv:x}, {hw:x}]"
                    ));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{engine:?} disagrees with the host:\n{}",
        bad.join("\n")
    );
    Some((compared, agreed))
}

#[test]
fn legacy_packet_loads_run_interpreted_then_jited() {
    kbpf_shim::host::install();
    for engine in [Engine::Interp, Engine::Jit] {
        engine.select();
        fixed(engine);
        around_calls(engine);
        let n = random(engine, 0x5eed_1234);
        println!("{engine:?}: {n} random loads matched the model");
        if let Some((c, a)) = against_host(engine, 0xbeef_0001) {
            println!("{engine:?}: {a}/{c} loads agree with the host kernel");
        }
    }
}
