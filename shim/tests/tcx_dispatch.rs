//! The JIT'd mprog dispatcher against the walk: random bundles of JIT'd programs with random
//! return codes (tcx's four, unknown ones, and codes whose high 32 bits are set), some of them
//! making tail calls, run through `tcx::run` (the entry's dispatcher) and `tcx::run_walk` (one
//! program run at a time) on the same entry. Both must give the same verdict and run the same
//! programs in the same order, each with its own tail-call budget; then a random change
//! (replace, detach, insert) and the same check on the new entry.
//!
//! Every program folds its tag into word 0 of the buffer (`w = w * 31 + tag`), so the word
//! names the sequence of programs that ran. A tail-calling program hands on to a program that
//! counts itself in word 1 and tail-calls itself until the budget of 33 is spent: word 1 grows
//! by 33 per such program only if each program starts with a fresh budget.

use kbpf::cpu::CpuGuard;
use kbpf::insn::*;
use kbpf::mprog::MprogFlags;
use kbpf::syscall::{self, Fd};
use kbpf::tcx::{self, AttachAttr, Direction, TcxVerdict};
use kbpf::uapi::{AttachType, MapType, ProgType, alu};
use kbpf::{MapAttr, ProgLoadAttr};
use kbpf_shim::conformance::Engine;
use proptest::prelude::*;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

const ING: AttachType = AttachType::TcxIngress;
/// The buffer: the order word, the tail-call count, a zero key.
const BUF: u32 = 24;

/// R0 values: NEXT, NEXT with high bits, PASS, PASS as a 64-bit value with high bits, DROP,
/// REDIRECT, and unknown codes (which stop the walk as NEXT).
const CODES: [u64; 8] = [
    0xffff_ffff_ffff_ffff,
    0x1234_5678_ffff_ffff,
    0,
    0x1_0000_0000,
    2,
    7,
    3,
    0xffff_fffe,
];

/// How a pool program ends.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Returns `CODES[i]`.
    Code(usize),
    /// Tail-calls the counting program with a constant key (a direct JIT'd jump), then NEXT.
    TailConst,
    /// The same with the key read from the buffer (an indirect tail call).
    TailReg,
}

struct Pool {
    progs: Vec<(Fd, Kind)>,
}

/// The counting program (slot 0 of the map): word 1 += 1, then tail-call itself.
fn counter(map: Fd) -> Vec<Insn> {
    let mut p = vec![
        mov64_reg(6, 1),
        ldx_mem(Size::DW, 2, 6, 8),
        alu64_imm(alu::ADD, 2, 1),
        stx_mem(Size::DW, 6, 2, 8),
        mov64_reg(1, 6),
        mov64_imm(3, 0),
    ];
    p.extend(ld_map_fd(2, map));
    p.extend([tail_call(), mov64_imm(0, -1), exit()]);
    p
}

fn member(tag: i32, kind: Kind, map: Fd) -> Vec<Insn> {
    let mut p = vec![
        mov64_reg(6, 1),
        ldx_mem(Size::DW, 2, 6, 0),
        alu64_imm(alu::MUL, 2, 31),
        alu64_imm(alu::ADD, 2, tag),
        stx_mem(Size::DW, 6, 2, 0),
    ];
    match kind {
        Kind::Code(c) => {
            p.extend(ld_imm64(0, CODES[c]));
        }
        Kind::TailConst | Kind::TailReg => {
            p.push(mov64_reg(1, 6));
            p.push(match kind {
                Kind::TailConst => mov64_imm(3, 0),
                _ => ldx_mem(Size::W, 3, 6, 16),
            });
            p.extend(ld_map_fd(2, map));
            p.extend([tail_call(), mov64_imm(0, -1)]);
        }
    }
    p.push(exit());
    p
}

fn load(insns: &[Insn]) -> Fd {
    let fd = syscall::prog_load(&ProgLoadAttr::new(ProgType::RawBuffer, insns).with_ctx_size(BUF))
        .expect("load");
    assert!(syscall::prog_get(fd).unwrap().jited(), "JIT'd");
    fd
}

/// 80 programs: codes in turn, every fifth one tail-calling (alternating key kinds).
fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        kbpf_shim::host::install();
        Engine::Jit.select();
        let map = syscall::map_create(&MapAttr::new(MapType::ProgArray, 4, 4, 1)).unwrap();
        let c = load(&counter(map));
        syscall::map_update_elem(map, &0u32.to_ne_bytes(), &(c as u32).to_ne_bytes(), 0).unwrap();
        let progs = (0..80)
            .map(|i| {
                let kind = match i % 10 {
                    4 => Kind::TailConst,
                    9 => Kind::TailReg,
                    _ => Kind::Code(i * 7 % CODES.len()),
                };
                (load(&member(i as i32 + 1, kind, map)), kind)
            })
            .collect();
        Pool { progs }
    })
}

fn attach(ifindex: u32, fd: Fd, flags: MprogFlags, rel: Fd, replace: Fd) -> kbpf::Result {
    let mut a = AttachAttr::new(ifindex, ING);
    a.attach_bpf_fd = fd;
    a.attach_flags = flags.bits();
    a.relative_fd = rel;
    a.replace_bpf_fd = replace;
    tcx::prog_attach(&a)
}

fn detach(ifindex: u32, fd: Fd) -> kbpf::Result {
    let mut a = AttachAttr::new(ifindex, ING);
    a.attach_bpf_fd = fd;
    tcx::prog_detach(&a)
}

/// One run each way on the same published entry: (verdict, buffer) for dispatch and walk.
fn both(dev: &tcx::Device) -> [(TcxVerdict, [u64; 3]); 2] {
    let mut g = CpuGuard::enter();
    let mut out = [(TcxVerdict::Next, [0u64; 3]); 2];
    for (i, o) in out.iter_mut().enumerate() {
        let mut buf = [0u64; 3];
        let (r1, r2) = (buf.as_mut_ptr() as u64, BUF as u64);
        o.0 = if i == 0 {
            tcx::run(dev, Direction::Ingress, &mut g, r1, r2)
        } else {
            tcx::run_walk(dev, Direction::Ingress, &mut g, r1, r2)
        };
        o.1 = buf;
    }
    out
}

static NEXT_IFINDEX: AtomicU32 = AtomicU32::new(7000);

fn check(order: &[usize], changes: &[(u8, usize, usize)]) {
    let pool = pool();
    let ifindex = NEXT_IFINDEX.fetch_add(1, Ordering::Relaxed);
    tcx::dev_create(ifindex).unwrap();
    let dev = tcx::dev_get(ifindex).unwrap();
    let fd = |i: usize| pool.progs[i].0;
    let mut attached: Vec<usize> = Vec::new();
    for (n, &i) in order.iter().enumerate() {
        // Half of them go right before a random attached program, the rest at the end.
        let before = (n % 2 == 1).then(|| attached[(i * 13) % attached.len()]);
        match before {
            Some(b) => attach(ifindex, fd(i), MprogFlags::BEFORE, fd(b), 0).unwrap(),
            None => attach(ifindex, fd(i), MprogFlags::empty(), 0, 0).unwrap(),
        }
        attached.push(i);
    }
    let step = |what: &str| {
        assert!(
            tcx::dispatched(&dev, Direction::Ingress),
            "{what}: dispatched"
        );
        let [d, w] = both(&dev);
        assert_eq!(d, w, "{what}: dispatcher against walk, programs {order:?}");
    };
    step("attached");
    for &(op, a, b) in changes {
        let x = attached[a % attached.len()];
        let y = (0..pool.progs.len())
            .map(|k| (b + k) % pool.progs.len())
            .find(|k| !attached.contains(k))
            .unwrap();
        match op % 3 {
            0 => {
                attach(ifindex, fd(y), MprogFlags::REPLACE, 0, fd(x)).unwrap();
                let at = attached.iter().position(|&k| k == x).unwrap();
                attached[at] = y;
            }
            1 if attached.len() > 1 => {
                detach(ifindex, fd(x)).unwrap();
                attached.retain(|&k| k != x);
            }
            _ if attached.len() < 63 => {
                attach(ifindex, fd(y), MprogFlags::AFTER, fd(x), 0).unwrap();
                attached.push(y);
            }
            _ => continue,
        }
        step("changed");
    }
    tcx::dev_remove(ifindex).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn dispatcher_runs_what_the_walk_runs(
        order in Just((0..80usize).collect::<Vec<_>>())
            .prop_shuffle()
            .prop_flat_map(|v| (1usize..=63).prop_map(move |n| v[..n].to_vec())),
        changes in prop::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 0..6),
    ) {
        check(&order, &changes);
    }
}

#[test]
fn full_bundle_of_next_runs_every_program_with_its_own_budget() {
    let pool = pool();
    // 63 programs that all say NEXT: the ones with plain codes 0 and 1, and every tail-caller.
    let next: Vec<usize> = (0..pool.progs.len())
        .filter(|&i| match pool.progs[i].1 {
            Kind::Code(c) => c < 2,
            _ => true,
        })
        .collect();
    let tails = next
        .iter()
        .filter(|&&i| !matches!(pool.progs[i].1, Kind::Code(_)))
        .count() as u64;
    assert!(tails > 0 && next.len() <= 63);
    let ifindex = NEXT_IFINDEX.fetch_add(1, Ordering::Relaxed);
    tcx::dev_create(ifindex).unwrap();
    for &i in &next {
        attach(ifindex, pool.progs[i].0, MprogFlags::empty(), 0, 0).unwrap();
    }
    let dev = tcx::dev_get(ifindex).unwrap();
    assert!(tcx::dispatched(&dev, Direction::Ingress));
    let [d, w] = both(&dev);
    assert_eq!(d, w);
    assert_eq!(d.0, TcxVerdict::Next);
    assert_eq!(d.1[1], 33 * tails, "33 tail calls per tail-calling program");
    let expect = next
        .iter()
        .fold(0u64, |h, &i| h.wrapping_mul(31).wrapping_add(i as u64 + 1));
    assert_eq!(d.1[0], expect, "every program once, in order");
    tcx::dev_remove(ifindex).unwrap();
}
