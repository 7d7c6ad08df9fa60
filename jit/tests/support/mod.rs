//! A minimal host for the JIT's own tests, so that `kbpf-jit` tests without the shim (which
//! depends on `kbpf-jit`: a dev-dependency on it would close a loop between the crates).
//!
//! CPUs are `kbpf::sync::cpu::CpuSlots` claimed per thread (nestable); executable memory is an
//! anonymous mapping written while read + write and then flipped to read + execute, never both
//! (`ExecRegion::rw == rx`). It places nothing near the helpers, so helper calls are the
//! `movabs; call rax` form; the shim's tests cover placement and live patching. It cannot
//! patch code other CPUs may be running: `text_poke` fails with `EOPNOTSUPP` and leaves the
//! bytes alone, which the `Host` contract allows (no JIT test re-points a direct tail call).

use kbpf::host::{ExecRegion, Host};
use kbpf::sync::cpu::{CpuSlots, Hold};
use kbpf::{Errno, Result};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

const NR_CPUS: usize = 4;

struct TestHost {
    cpus: CpuSlots,
    start: Instant,
    rnd: AtomicU32,
}

thread_local! {
    /// The CPU this thread holds and how deeply it entered it.
    static HELD: Hold = const { Hold::new() };
}

fn page_size() -> usize {
    // SAFETY: `sysconf` has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).unwrap_or(4096)
}

impl Host for TestHost {
    fn nr_cpus(&self) -> usize {
        self.cpus.nr()
    }

    fn cpu_enter(&self) -> usize {
        HELD.with(|h| self.cpus.enter(h, 0))
    }

    fn cpu_exit(&self, cpu: usize) {
        HELD.with(|h| self.cpus.exit(h, cpu))
    }

    fn ktime_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn random_u32(&self) -> u32 {
        // xorshift32: enough for constant blinding in tests.
        let mut x = self.rnd.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rnd.store(x, Ordering::Relaxed);
        x
    }

    fn exec_alloc(&self, len: usize) -> Result<ExecRegion> {
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = len.div_ceil(page_size()) * page_size();
        // SAFETY: a fresh anonymous private mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Errno::ENOMEM);
        }
        Ok(ExecRegion {
            rx: p as *const u8,
            rw: p as *mut u8,
            len,
            cookie: 0,
        })
    }

    fn exec_seal(&self, region: &ExecRegion) -> Result {
        // SAFETY: the region is a mapping of `len` bytes from `exec_alloc`; from here on it is
        // read + execute and nothing writes it.
        let r = unsafe {
            libc::mprotect(
                region.rx as *mut libc::c_void,
                region.len,
                libc::PROT_READ | libc::PROT_EXEC,
            )
        };
        if r != 0 {
            return Err(Errno::EFAULT);
        }
        Ok(())
    }

    fn text_poke(&self, _region: &ExecRegion, _offset: usize, _bytes: &[u8]) -> Result {
        Err(Errno::EOPNOTSUPP)
    }

    fn exec_free(&self, region: ExecRegion) {
        // SAFETY: the caller guarantees no CPU executes the region any more; it is a mapping
        // of `len` bytes from `exec_alloc`.
        let r = unsafe { libc::munmap(region.rx as *mut libc::c_void, region.len) };
        assert_eq!(r, 0, "munmap of a JIT region");
    }
}

/// Registers the test host (once per test binary).
pub fn install() {
    static HOST: OnceLock<TestHost> = OnceLock::new();
    let host = HOST.get_or_init(|| TestHost {
        cpus: CpuSlots::new(NR_CPUS),
        start: Instant::now(),
        rnd: AtomicU32::new(0x2545_f491),
    });
    kbpf::host::register(host);
}
