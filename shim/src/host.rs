//! The user-mode [`Host`]: what the kernel's scheduler, `bpf_prog_pack` allocator and
//! `text_poke_bp` (`arch/x86/kernel/alternative.c`) give BPF in Linux, provided by a process.
//!
//! * **CPUs** — a "CPU" is a slot of [`CpuSlots`] that a thread holds exclusively while it runs
//!   programs, the shim's stand-in for a preempt-disabled section. [`Host::cpu_enter`] claims a
//!   slot on the thread's first (outermost) entry and returns the same slot while nested;
//!   the outermost [`Host::cpu_exit`] releases it. With more runnable threads than slots, the
//!   extra threads spin in `cpu_enter` until one is released. A thread that exits while holding
//!   a slot releases it from its thread-local destructor. The count is `KBPF_NR_CPUS`
//!   (default 64).
//! * **Time** — `CLOCK_MONOTONIC` (`ktime_get_ns`).
//! * **Current task** — the process id (the kernel's tgid) and the calling thread's id (its
//!   pid), for `bpf_get_current_pid_tgid`.
//! * **Randomness** — a per-thread xorshift64* seeded from the clock and a thread index
//!   (`bpf_user_rnd_u32` is a per-CPU PRNG too; not for cryptography).
//! * **Executable memory** — W^X through two mappings of one memfd, small JIT images packed
//!   into shared 2 MiB packs of 64-byte chunks (`bpf_prog_pack`, see [`pack`]), and live
//!   patching with the `text_poke_bp` int3 protocol: see [`exec`].

mod exec;
#[cfg(all(test, target_arch = "x86_64"))]
mod install_at_tests;
mod pack;
#[cfg(all(test, target_arch = "x86_64"))]
mod pack_tests;
mod trap;

use core::cell::Cell;
use kbpf::Result;
use kbpf::host::{ExecRegion, Host};
use kbpf::sync::cpu::{CpuSlots, Hold};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// CPU count when `KBPF_NR_CPUS` is unset or not a positive number.
pub const DEFAULT_NR_CPUS: usize = 64;

/// The shim's host. One per process: get it with [`install`].
#[derive(Debug)]
pub struct ShimHost {
    cpus: CpuSlots,
    exec: exec::ExecAllocator,
}

pub use exec::SerializeMode;

static HOST: OnceLock<ShimHost> = OnceLock::new();

impl ShimHost {
    /// How [`Host::text_poke`] makes the other threads serialize on this system.
    pub fn serialize_mode(&self) -> SerializeMode {
        exec::serialize_mode()
    }

    /// How many times a thread hit a transient patching `int3` and was restarted on the new
    /// instruction (process-wide; a diagnostic).
    pub fn transient_int3_traps(&self) -> usize {
        trap::transient_traps()
    }
}

/// Creates the process's [`ShimHost`] on first call, registers it with [`kbpf::host::register`]
/// and returns it; later calls return the same host.
///
/// # Panics
/// If the process cannot create it (the page size is unavailable), which no Linux system does.
pub fn install() -> &'static ShimHost {
    let host = HOST.get_or_init(|| {
        let nr_cpus = std::env::var("KBPF_NR_CPUS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(DEFAULT_NR_CPUS);
        ShimHost {
            cpus: CpuSlots::new(nr_cpus),
            exec: exec::ExecAllocator::new(),
        }
    });
    // Idempotent: `register` keeps the first host, which is this one unless the embedding
    // registered its own before.
    kbpf::host::register(host);
    host
}

/// Per-thread state: the CPU held and how deeply `cpu_enter` is nested.
struct CpuHold {
    hold: Hold,
    /// Spreads threads over CPUs: the thread's creation index, used as the claim hint.
    hint: usize,
}

impl Drop for CpuHold {
    /// A thread that dies inside a section (a panic while running a program) gives its CPU back.
    fn drop(&mut self) {
        let (cpu, nest) = self.hold.get();
        if nest == 0 {
            return;
        }
        if let Some(host) = HOST.get() {
            host.cpus.release(cpu);
        }
    }
}

static THREAD_INDEX: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static CPU_HOLD: CpuHold = CpuHold {
        hold: Hold::new(),
        hint: THREAD_INDEX.fetch_add(1, Ordering::Relaxed),
    };
    static RNG: Cell<u64> = Cell::new(rng_seed());
}

/// The tick: `CLOCK_MONOTONIC_COARSE` as a thread last stored it (0 until it runs), what
/// [`Host::ktime_coarse_ns`] returns — a load, as reading the kernel's `jiffies` is.
static TICK_NS: AtomicU64 = AtomicU64::new(0);
/// How often the tick thread wakes (`HZ` = 1000).
const TICK: std::time::Duration = std::time::Duration::from_millis(1);

/// Starts the tick thread once; it stores the coarse clock every [`TICK`] for the life of the
/// process, and once a second runs the conntrack garbage collector (`gc_worker`'s period).
/// A late wake-up on a busy machine makes the value lag, as missed ticks would.
fn start_tick() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        TICK_NS.store(clock_ns(libc::CLOCK_MONOTONIC_COARSE), Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("kbpf-tick".into())
            .spawn(|| {
                for tick in 1u64.. {
                    std::thread::sleep(TICK);
                    TICK_NS.store(clock_ns(libc::CLOCK_MONOTONIC_COARSE), Ordering::Relaxed);
                    if tick % 1000 == 0 {
                        kbpf::netfilter::gc_pass();
                    }
                }
            });
        if spawned.is_err() {
            // No thread: readers fall back to reading the clock each time.
            TICK_NS.store(0, Ordering::Relaxed);
        }
    });
}

fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// `clock` in nanoseconds: `CLOCK_MONOTONIC`, or its tick-granular `_COARSE` twin (read from
/// the vDSO without touching the time-stamp counter).
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clocks always exist on Linux.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    debug_assert_eq!(rc, 0);
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

fn rng_seed() -> u64 {
    let index = THREAD_INDEX.fetch_add(1, Ordering::Relaxed) as u64;
    let seed = monotonic_ns() ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // xorshift must not start at zero.
    seed | 1
}

impl Host for ShimHost {
    fn nr_cpus(&self) -> usize {
        self.cpus.nr()
    }

    fn cpu_enter(&self) -> usize {
        CPU_HOLD.with(|h| self.cpus.enter(&h.hold, h.hint))
    }

    fn cpu_exit(&self, cpu: usize) {
        CPU_HOLD.with(|h| self.cpus.exit(&h.hold, cpu))
    }

    fn ktime_ns(&self) -> u64 {
        monotonic_ns()
    }

    fn hugepage_hint(&self, addr: usize, len: usize) {
        // SAFETY: advice only; the range is memory kbpf allocated and owns. A failure (no
        // transparent huge pages) leaves the memory as it was.
        unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
    }

    fn ktime_coarse_ns(&self) -> u64 {
        match TICK_NS.load(Ordering::Relaxed) {
            0 => {
                start_tick();
                clock_ns(libc::CLOCK_MONOTONIC_COARSE)
            }
            t => t,
        }
    }

    fn current_pid_tgid(&self) -> Option<u64> {
        // SAFETY: getpid and gettid have no preconditions and cannot fail.
        let (tgid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
        Some(((tgid as u32 as u64) << 32) | tid as u32 as u64)
    }

    fn random_u32(&self) -> u32 {
        RNG.with(|state| {
            // xorshift64* (Vigna): full 2^64-1 period, upper bits are good.
            let mut x = state.get();
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            state.set(x);
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
        })
    }

    fn exec_alloc(&self, len: usize) -> Result<ExecRegion> {
        self.exec.alloc(len)
    }

    fn exec_seal(&self, region: &ExecRegion) -> Result {
        self.exec.seal(region)
    }

    fn exec_install(&self, code: &[u8]) -> Result<ExecRegion> {
        self.exec.install(code)
    }

    fn exec_install_at(
        &self,
        len: usize,
        near: usize,
        emit: &mut dyn FnMut(usize) -> Result<Vec<u8>>,
    ) -> Result<ExecRegion> {
        self.exec.install_at(len, near, emit)
    }

    fn text_poke(&self, region: &ExecRegion, offset: usize, bytes: &[u8]) -> Result {
        self.exec.text_poke(region, offset, bytes)
    }

    fn exec_free(&self, region: ExecRegion) {
        self.exec.free(region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[test]
    fn install_is_idempotent_and_registers() {
        let a = install();
        let b = install();
        assert!(std::ptr::eq(a, b));
        assert!(kbpf::host::try_get().is_some());
        assert!(a.nr_cpus() >= 1);
    }

    #[test]
    fn nested_enters_keep_the_cpu() {
        let host = install();
        let cpu = host.cpu_enter();
        assert_eq!(host.cpu_enter(), cpu);
        host.cpu_exit(cpu);
        assert!(host.cpus.is_claimed(cpu), "released while still nested");
        host.cpu_exit(cpu);
        CPU_HOLD.with(|h| assert_eq!(h.hold.get().1, 0));
    }

    #[test]
    fn two_threads_hold_different_cpus() {
        let host = install();
        if host.nr_cpus() < 2 {
            return; // KBPF_NR_CPUS=1: two holders must serialize, nothing to compare.
        }
        let barrier = Barrier::new(2);
        let cpus: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let cpu = host.cpu_enter();
                        barrier.wait(); // both hold their CPU here
                        host.cpu_exit(cpu);
                        cpu
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_ne!(cpus[0], cpus[1]);
    }

    #[test]
    fn time_advances_and_random_varies() {
        let host = install();
        let t0 = host.ktime_ns();
        let draws: std::collections::HashSet<u32> = (0..64).map(|_| host.random_u32()).collect();
        assert!(draws.len() > 60);
        assert!(host.ktime_ns() >= t0);
    }
}
