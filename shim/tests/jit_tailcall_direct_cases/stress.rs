//! Bounded stress for direct tail calls: threads run chains of constant-key tail calls (direct
//! sites under the JIT, re-patched live) while another thread updates and deletes slots, some
//! hops made from subprograms. Every run must end in an allowed result, nothing may crash, and
//! after the writer stops and a grace period passes no program reference is left behind.

use super::{BUMP, prog, prog_array, setup};
use kbpf::sync::Arc;
use kbpf::syscall::{self, Fd, TestRun};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SLOTS: u32 = 4;

#[test]
fn direct_chains_survive_concurrent_slot_updates() {
    setup();
    let map = prog_array(SLOTS);
    // Forwarder i: bump, tail-call slot i + 1 (from a subprogram for odd i), else return the
    // counter.
    let fwd: Vec<Fd> = (0..SLOTS)
        .map(|i| {
            let call = format!("lddw %r2, {{m0}}\nmov %r3, {}\ncall 12\n", i + 1);
            let src = if i % 2 == 1 {
                format!(
                    "mov %r6, %r1\n{BUMP}call local sub\nldxdw %r0, [%r6+0]\nexit\nsub:\n{call}mov %r0, 0\nexit\n"
                )
            } else {
                format!("mov %r6, %r1\n{BUMP}{call}ldxdw %r0, [%r6+0]\nexit\n")
            };
            // The last forwarder's key is out of range: the verifier poisons it, so that site
            // stays indirect (and falls through), as the kernel's `record_func_key` does.
            prog(&src, &[map], usize::from(i + 1 < SLOTS))
        })
        .collect();
    let term = prog(&format!("{BUMP}add %r0, 100\nexit\n"), &[], 0);
    for (i, &p) in fwd.iter().enumerate() {
        super::set(map, i as u32, p);
    }
    let entry = fwd[0];
    let stop = AtomicBool::new(false);
    let runs = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_millis(300);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < 2_000_000 {
                    let mut ctx = [0u8; super::CTX_LEN];
                    let r = syscall::prog_test_run(
                        entry,
                        &mut TestRun {
                            data: &mut ctx,
                            repeat: 1,
                            ..Default::default()
                        },
                    )
                    .unwrap();
                    let bodies = u64::from_ne_bytes(ctx[..8].try_into().unwrap());
                    assert!((1..=SLOTS as u64).contains(&bodies), "ran {bodies} bodies");
                    // A tail call from a subprogram returns there: the subprogram's caller
                    // then returns the counter, so 100 + bodies only comes back when every
                    // hop was from a main program; both are allowed.
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
