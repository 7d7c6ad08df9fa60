//! Bounded stress: reader threads run tail-call chains while a writer updates and deletes slots.
//! Every run must end in an allowed result, nothing may crash, and once the writer stops and a
//! grace period passes, no program reference is left behind.

use kbpf::insn::assemble;
use kbpf::sync::Arc;
use kbpf::syscall::{self, Fd, TestRun};
use kbpf::uapi::{MapType, ProgType};
use kbpf::{MapAttr, ProgLoadAttr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SLOTS: u32 = 4;

fn load(src: &str) -> Fd {
    syscall::prog_load(&ProgLoadAttr::new(
        ProgType::RawBuffer,
        &assemble(src).unwrap(),
    ))
    .unwrap()
}

/// Bumps the counter and tail-calls `slot`; returns the counter if the call falls through.
fn forwarder(map: Fd, slot: u32) -> Fd {
    load(&format!(
        "mov %r6, %r1\nldxdw %r0, [%r1+0]\nadd %r0, 1\nstxdw [%r1+0], %r0\nlddw %r2, map_fd {map}\nmov %r3, {slot}\ncall 12\nldxdw %r0, [%r6+0]\nexit\n"
    ))
}

/// Bumps the counter and returns 100 + counter.
fn terminator() -> Fd {
    load("ldxdw %r0, [%r1+0]\nadd %r0, 1\nstxdw [%r1+0], %r0\nadd %r0, 100\nexit\n")
}

#[test]
fn chains_survive_concurrent_slot_updates() {
    kbpf_shim::host::install();
    let map = syscall::map_create(&MapAttr::new(MapType::ProgArray, 4, 4, SLOTS)).unwrap();
    let fwd: Vec<Fd> = (0..SLOTS).map(|i| forwarder(map, i + 1)).collect();
    let term = terminator();
    for (i, &p) in fwd.iter().enumerate() {
        syscall::map_update_elem(map, &(i as u32).to_ne_bytes(), &p.to_ne_bytes(), 0).unwrap();
    }
    let entry = fwd[0];
    let stop = AtomicBool::new(false);
    let runs = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_millis(400);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < 2_000_000 {
                    let mut ctx = [0u8; 8];
                    let r = syscall::prog_test_run(
                        entry,
                        &mut TestRun {
                            data: &mut ctx,
                            repeat: 1,
                        },
                    )
                    .unwrap();
                    let bodies = u64::from_ne_bytes(ctx);
                    assert!((1..=SLOTS as u64).contains(&bodies), "ran {bodies} bodies");
                    assert!(
                        r.retval == bodies || r.retval == 100 + bodies,
                        "r0 {} after {bodies} bodies",
                        r.retval
                    );
                    n += 1;
                }
                runs.fetch_add(n, Ordering::Relaxed);
            });
        }
        s.spawn(|| {
            let mut x = 0x9e37_79b9u32;
            let mut ops = 0u64;
            while Instant::now() < deadline && ops < 1_000_000 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let slot = 1 + x % (SLOTS - 1);
                let key = slot.to_ne_bytes();
                match x % 3 {
                    0 => {
                        let _ = syscall::map_delete_elem(map, &key);
                    }
                    1 => syscall::map_update_elem(map, &key, &term.to_ne_bytes(), 0).unwrap(),
                    _ => syscall::map_update_elem(map, &key, &fwd[slot as usize].to_ne_bytes(), 0)
                        .unwrap(),
                }
                ops += 1;
            }
            stop.store(true, Ordering::Relaxed);
        });
    });
    assert!(runs.load(Ordering::Relaxed) > 0);
    for i in 0..SLOTS {
        let _ = syscall::map_delete_elem(map, &i.to_ne_bytes());
    }
    kbpf::cpu::rcu().barrier();
    for &p in fwd.iter().chain([&term]) {
        let prog = syscall::prog_get(p).unwrap();
        assert_eq!(
            Arc::strong_count(&prog),
            2,
            "only the handle and this probe hold the program"
        );
    }
}
