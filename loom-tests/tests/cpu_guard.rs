//! Loom model of the run context (`kernel/src/cpu.rs`): the real `kbpf::cpu::Cpus` and
//! `HeldCpu` — a CPU taken from the host (nestable), a read-side section on it, the per-CPU
//! `CpuState` reached through `PerCpu`'s raw accessor — the recursion guard of
//! `begin_run`/`end_run`, and the per-CPU tail-call counter (`tail_call_budget_spent` and
//! `count_tail_call`, the interpreter's accounting).
//!
//! Threads contend for the model host's CPUs; each runs a "program" that nests a second guard
//! (which must get the same CPU and be refused as a recursive run), spends the whole tail-call
//! budget, and checks that the state it wrote is still its own. If two threads ever held one
//! CPU's state at once, some interleaving would show the other's entry R2 or counter. The
//! state's plain memory is not a loom cell, so loom checks the protocol's outcomes here, not
//! the happens-before of each byte (the CPU handoff itself is `CpuSlots`, modelled with cells
//! in `cpu_slots.rs`).
#![cfg(loom)]

use kbpf::cpu::{Cpus, Fault, count_tail_call, tail_call_budget_spent};
use kbpf::uapi::limits::MAX_TAIL_CALL_CNT;
use kbpf_loom::host::LoomHost;
use loom::sync::Arc;
use loom::thread;

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b
}

/// One run on whichever CPU the host gives this thread, with R2 = `r2` at entry.
fn run(cpus: &Cpus, host: &LoomHost, r2: u64) {
    let mut guard = cpus.enter(host);
    let state = guard.begin_run(r2).unwrap();
    {
        // A program run nested on this thread (say, from a helper): the host hands back the
        // same CPU, and the recursion guard refuses the run.
        let mut inner = cpus.enter(host);
        assert_eq!(inner.cpu(), guard.cpu());
        assert_eq!(inner.begin_run(0).err(), Some(Fault::Recursion));
        assert!(cpus.rcu().read_lock_held(guard.cpu()));
    }
    // Other threads may run here.
    thread::yield_now();
    let mut calls = 0;
    // The interpreter's accounting, with every slot filled: check the budget, count the call.
    // SAFETY: `state` is this run's (`begin_run` .. `end_run`) on the CPU this thread holds.
    while !unsafe { tail_call_budget_spent(state) } {
        // SAFETY: as above.
        unsafe { count_tail_call(state) };
        calls += 1;
    }
    assert_eq!(calls, MAX_TAIL_CALL_CNT);
    thread::yield_now();
    // SAFETY: as above; no other reference to the state is alive.
    let (cnt, entry_r2) = unsafe { ((*state).tail_call_cnt, (*state).entry_r2) };
    assert_eq!(
        (cnt, entry_r2),
        (MAX_TAIL_CALL_CNT, r2),
        "another run shared the CPU"
    );
    guard.end_run();
    // The counter starts afresh for the next run on this CPU.
    let again = guard.begin_run(r2 + 1).unwrap();
    // SAFETY: as above, for the new run.
    assert_eq!(unsafe { (*again).tail_call_cnt }, 0);
    guard.end_run();
}

fn contend(nr_cpus: usize) {
    builder().check(move || {
        let host = Arc::new(LoomHost::new(nr_cpus, &[]));
        let cpus = Arc::new(Cpus::new(nr_cpus));
        let other = {
            let (host, cpus) = (host.clone(), cpus.clone());
            thread::spawn(move || run(&cpus, &host, 200))
        };
        run(&cpus, &host, 100);
        other.join().unwrap();
        assert!(!cpus.rcu().read_lock_held(0));
    });
}

#[test]
fn two_threads_share_one_cpu_in_turn() {
    contend(1);
}

#[test]
fn two_threads_on_two_cpus() {
    contend(2);
}
