//! Bounded stress: threads run the tcx hook while another churns attach, detach, replace and
//! link update on it. Every walk must see a consistent list (the pinned sentinel program always
//! runs, no program twice), nothing crashes, and every program's reference count returns to its
//! baseline once the device is gone. Run by `tcx_stress.rs` (interpreter: the walk) and
//! `tcx_stress_jit.rs` (JIT: every entry swap builds, publishes and retires a dispatcher).

use kbpf::cpu::{CpuGuard, rcu};
use kbpf::insn::{Size, alu64_imm, exit, ldx_mem, mov64_imm, stx_mem};
use kbpf::mprog::{MprogFlags, Query};
use kbpf::sync::Arc;
use kbpf::syscall::{self, Fd};
use kbpf::tcx::{self, AttachAttr, Direction, LinkCreateAttr};
use kbpf::uapi::{AttachType, ProgType, alu};
use kbpf::{Errno, ProgLoadAttr};
use std::sync::atomic::{AtomicBool, Ordering};

use super::ENGINE;
use kbpf_shim::conformance::Engine;

const IFINDEX: u32 = 4242;
const ING: AttachType = AttachType::TcxIngress;

/// Adds `tag` to the u64 at the start of the buffer and returns TCX_NEXT.
fn prog(tag: i32) -> Fd {
    let insns = [
        ldx_mem(Size::DW, 2, 1, 0),
        alu64_imm(alu::ADD, 2, tag),
        stx_mem(Size::DW, 1, 2, 0),
        mov64_imm(0, -1),
        exit(),
    ];
    // Verified for the 8-byte buffer the walks run on.
    syscall::prog_load(&ProgLoadAttr::new(ProgType::RawBuffer, &insns).with_ctx_size(8)).unwrap()
}

fn attach(p: Fd, flags: MprogFlags, replace: Fd) -> kbpf::Result {
    let mut a = AttachAttr::new(IFINDEX, ING);
    a.attach_bpf_fd = p;
    a.attach_flags = flags.bits();
    a.replace_bpf_fd = replace;
    tcx::prog_attach(&a)
}

fn detach(p: Fd) -> kbpf::Result {
    let mut a = AttachAttr::new(IFINDEX, ING);
    a.attach_bpf_fd = p;
    tcx::prog_detach(&a)
}

#[test]
fn hook_runs_while_the_list_churns() {
    kbpf_shim::host::install();
    ENGINE.select();
    tcx::dev_create(IFINDEX).unwrap();
    let dev = tcx::dev_get(IFINDEX).unwrap();
    // Tags are distinct powers of two, so a walk's sum says which programs ran, each at most
    // once. The sentinel (tag 1 << 20) is attached first and never moved.
    let sentinel = prog(1 << 20);
    let progs: Vec<Fd> = (0..8).map(|i| prog(1 << i)).collect();
    let all: Vec<Arc<kbpf::Prog>> = progs
        .iter()
        .chain([&sentinel])
        .map(|&fd| syscall::prog_get(fd).unwrap())
        .collect();
    let base: Vec<usize> = all.iter().map(Arc::strong_count).collect();
    attach(sentinel, MprogFlags::empty(), 0).unwrap();
    assert_eq!(
        tcx::dispatched(&dev, Direction::Ingress),
        ENGINE == Engine::Jit,
        "a dispatcher exactly when the programs are JIT'd"
    );
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (dev, done) = (&dev, &done);
            s.spawn(move || {
                let mut walks = 0u64;
                while !done.load(Ordering::Relaxed) || walks == 0 {
                    let mut buf = [0u64; 1];
                    let mut g = CpuGuard::enter();
                    let v = tcx::run(dev, Direction::Ingress, &mut g, buf.as_mut_ptr() as u64, 8);
                    drop(g);
                    assert_eq!(v, tcx::TcxVerdict::Next);
                    assert_eq!(buf[0] >> 20, 1, "sentinel ran once: {:#x}", buf[0]);
                    assert!(buf[0] & !((1 << 21) - 1) == 0, "stray bits {:#x}", buf[0]);
                    walks += 1;
                }
            });
        }
        let mut link: Option<Fd> = None;
        for i in 0..400usize {
            let p = progs[i % 8];
            let q = progs[(i * 5 + 3) % 8];
            let r = match i % 5 {
                0 => attach(p, MprogFlags::AFTER, 0),
                1 => attach(p, MprogFlags::empty(), 0),
                2 => attach(q, MprogFlags::REPLACE, p),
                3 => detach(p),
                _ => match link {
                    None => tcx::link_create(&LinkCreateAttr {
                        prog_fd: q,
                        target_ifindex: IFINDEX,
                        attach_type: ING,
                        flags: MprogFlags::AFTER.bits(),
                        relative_fd: 0,
                        expected_revision: 0,
                    })
                    .map(|fd| link = Some(fd)),
                    Some(l) if i % 3 == 0 => {
                        link = None;
                        syscall::close(l)
                    }
                    Some(l) => syscall::link_update(l, p, None),
                },
            };
            // Only the errors the rules allow for these requests.
            if let Err(e) = r {
                assert!(
                    matches!(e, Errno::EEXIST | Errno::ENOENT | Errno::EBUSY),
                    "op {i}: {e:?}"
                );
            }
            let mut ids = [0u32; 64];
            let mut qr = Query {
                count: 64,
                prog_ids: Some(&mut ids),
                ..Query::default()
            };
            tcx::prog_query(IFINDEX, ING, &mut qr).unwrap();
            let n = qr.count as usize;
            let mut seen = ids[..n].to_vec();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), n, "a program listed twice");
        }
        done.store(true, Ordering::Relaxed);
        if let Some(l) = link {
            syscall::close(l).unwrap();
        }
    });
    tcx::dev_remove(IFINDEX).unwrap();
    drop(dev);
    rcu().barrier();
    let now: Vec<usize> = all.iter().map(Arc::strong_count).collect();
    assert_eq!(now, base, "references back to baseline");
}
