//! What the embedding host provides: CPUs, executable memory, time and randomness.
//!
//! In Linux these are the scheduler's `smp_processor_id()`/`preempt_disable()`, the
//! `bpf_prog_pack` allocator with `set_memory_rox()`, `ktime_get_ns()` and `get_random_u32()`.
//! A host registers one `'static` implementation with [`register`] before any program runs.

use crate::{Errno, Result};
use spin::Once;

/// A region of executable memory handed out by the host.
///
/// The JIT writes through `rw` while the region is writable; after [`Host::exec_seal`] only the
/// `rx` view may be used, and it must never be writable and executable in one mapping. `rw` and
/// `rx` may be the same address (a host that flips permissions) or two aliases of the same pages.
/// A region from [`Host::exec_install`] is sealed from the start and may share its pages with
/// other regions (a `bpf_prog_pack`).
#[derive(Debug)]
pub struct ExecRegion {
    /// Where the code runs from (read + execute once sealed).
    pub rx: *const u8,
    /// Where the JIT writes (read + write until sealed).
    pub rw: *mut u8,
    /// Usable length in bytes: a whole number of pages from [`Host::exec_alloc`]; at least the
    /// code's length from [`Host::exec_install`] (rounded up to the host's allocation unit).
    pub len: usize,
    /// Host-private cookie (e.g. the mapping's handle).
    pub cookie: usize,
}

// SAFETY: an `ExecRegion` is a description of host memory; the host's operations on it are
// thread-safe by the `Host` contract, and the JIT is the only writer before sealing.
unsafe impl Send for ExecRegion {}
// SAFETY: as above; shared references only read the descriptor.
unsafe impl Sync for ExecRegion {}

/// The services a host gives the BPF core.
///
/// # CPUs
/// A "CPU" is a slot `0..nr_cpus()` that a thread holds exclusively between
/// [`Host::cpu_enter`] and the matching [`Host::cpu_exit`] — the kernel's preempt-disabled
/// section. Per-CPU state (tail-call counters, per-CPU maps, RCU reader state) is indexed by it.
/// Entering is nestable on one thread and returns the same CPU while nested.
///
/// # Example
/// A host with two CPUs (slots that threads claim, [`crate::sync::cpu::CpuSlots`], nestable
/// through a per-thread [`Hold`](crate::sync::cpu::Hold)) and no executable memory: every
/// program runs in the interpreter. A host with a JIT also implements the `exec_*` methods and
/// `text_poke` (the shim's `kbpf_shim::host` is the full one).
///
/// ```
/// use kbpf::host::{ExecRegion, Host};
/// use kbpf::sync::cpu::{CpuSlots, Hold};
/// use kbpf::{Errno, Result};
/// use std::time::Instant;
///
/// struct MyHost {
///     cpus: CpuSlots,
///     start: Instant,
/// }
///
/// std::thread_local! {
///     /// The CPU this thread holds, and how deeply it entered it.
///     static HOLD: Hold = const { Hold::new() };
/// }
///
/// impl Host for MyHost {
///     fn nr_cpus(&self) -> usize {
///         self.cpus.nr()
///     }
///     fn cpu_enter(&self) -> usize {
///         HOLD.with(|h| self.cpus.enter(h, 0))
///     }
///     fn cpu_exit(&self, cpu: usize) {
///         HOLD.with(|h| self.cpus.exit(h, cpu))
///     }
///     fn ktime_ns(&self) -> u64 {
///         self.start.elapsed().as_nanos() as u64
///     }
///     fn random_u32(&self) -> u32 {
///         self.start.elapsed().subsec_nanos() // a real host has a better source
///     }
///     // No executable memory: a registered JIT's compile fails, so programs are interpreted.
///     fn exec_alloc(&self, _len: usize) -> Result<ExecRegion> {
///         Err(Errno::ENOMEM)
///     }
///     fn exec_seal(&self, _region: &ExecRegion) -> Result {
///         Err(Errno::EINVAL)
///     }
///     fn text_poke(&self, _region: &ExecRegion, _offset: usize, _bytes: &[u8]) -> Result {
///         Err(Errno::EINVAL)
///     }
///     fn exec_free(&self, _region: ExecRegion) {}
/// }
///
/// let host = MyHost { cpus: CpuSlots::new(2), start: Instant::now() };
/// // Once, before any other kbpf call; the host lives as long as the process.
/// kbpf::host::register(Box::leak(Box::new(host)));
/// let cpu = kbpf::cpu::CpuGuard::enter();
/// assert!(cpu.cpu() < 2);
/// ```
pub trait Host: Send + Sync {
    /// Number of CPU slots.
    fn nr_cpus(&self) -> usize;
    /// Enters a non-preemptible section and returns the CPU this thread now holds.
    fn cpu_enter(&self) -> usize;
    /// Leaves the section entered by the matching [`Host::cpu_enter`].
    fn cpu_exit(&self, cpu: usize);
    /// Monotonic time in nanoseconds (`ktime_get_ns`).
    fn ktime_ns(&self) -> u64;
    /// The same clock read coarsely, as cheaply as the host can (`ktime_get_coarse_ns`, which
    /// advances once a tick): what jiffies are made of. Defaults to [`Host::ktime_ns`].
    fn ktime_coarse_ns(&self) -> u64 {
        self.ktime_ns()
    }
    /// A pseudo-random number (`get_random_u32`/`bpf_user_rnd_u32`).
    fn random_u32(&self) -> u32;
    /// The calling task as `tgid << 32 | pid` (`bpf_get_current_pid_tgid`), or `None` when the
    /// host has no notion of a current task; the helper then returns `-EINVAL`, as the
    /// kernel's does when there is no current task.
    fn current_pid_tgid(&self) -> Option<u64> {
        None
    }
    /// Advises that the `len` bytes at `addr` (a large, 2 MiB-aligned allocation of kbpf's
    /// own data, such as the conntrack table's buckets and entries) be backed by huge pages
    /// where the host can (`madvise(MADV_HUGEPAGE)`): the kernel keeps such data in its
    /// huge-page direct map, so lookups that miss the cache do not miss the TLB too. A hint
    /// only; the default does nothing.
    fn hugepage_hint(&self, addr: usize, len: usize) {
        let _ = (addr, len);
    }
    /// Allocates `len` bytes (rounded up to pages) of writable, not yet executable memory.
    fn exec_alloc(&self, len: usize) -> Result<ExecRegion>;
    /// Makes the region read + execute and no longer writable.
    fn exec_seal(&self, region: &ExecRegion) -> Result;
    /// Writes `bytes` at `offset` into a sealed region that other CPUs may be executing,
    /// following a `text_poke_bp`-like protocol (see `docs/ARCHITECTURE.md`).
    fn text_poke(&self, region: &ExecRegion, offset: usize, bytes: &[u8]) -> Result;
    /// Returns the region to the host. The caller guarantees no CPU still executes it.
    fn exec_free(&self, region: ExecRegion);

    /// Installs `code` in one step: allocates at least `code.len()` bytes, copies `code` to the
    /// start, fills the rest of the region with `int3` (`0xcc`, the kernel's `jit_fill_hole`)
    /// and seals it read + execute — Linux's `bpf_jit_binary_pack_alloc` +
    /// `bpf_jit_binary_pack_finalize`, whose copy is a `text_poke_copy` into the prog pack.
    ///
    /// Because the host performs the write itself, it controls the write window: a host may
    /// place small images side by side in shared, already executable pages (as
    /// `bpf_prog_pack_alloc` does) as long as no mapping is ever writable and executable. The
    /// returned region is sealed (no [`Host::exec_seal`] needed), may be patched with
    /// [`Host::text_poke`] and is returned with [`Host::exec_free`]. On failure nothing is left
    /// allocated.
    ///
    /// The default implementation is [`Host::exec_install_at`]'s for these bytes: it returns
    /// `EINVAL` for empty code and `ENOMEM` if the host handed out fewer bytes than asked for.
    fn exec_install(&self, code: &[u8]) -> Result<ExecRegion> {
        self.exec_install_at(code.len(), 0, &mut |_| Ok(code.to_vec()))
    }

    /// Installs code that depends on where it runs, as [`Host::exec_install`] does: the host
    /// picks a region of at least `len` bytes, then calls `emit` once with the address the
    /// code's first byte will have in the executable view, and installs the `len` bytes it
    /// returns. This is Linux's order (`bpf_jit_binary_pack_alloc` hands the JIT its final
    /// address before the last pass; the x86 JIT then emits `call rel32` to helpers).
    ///
    /// `near` is an address the code wants to reach with a 32-bit displacement — the helpers'
    /// text. A host that can places the region within 2 GiB of it (the kernel's module area
    /// guarantees this for kernel text); `emit` checks the address it is given and fails with
    /// `ERANGE` if it can't use it. Errors from `emit`, and `EINVAL` if it returns other than
    /// `len` bytes, are returned with nothing left allocated.
    ///
    /// The default implementation ignores `near` and is [`Host::exec_alloc`], `emit`, a write
    /// through `rw`, then [`Host::exec_seal`]; `EINVAL` for `len == 0`, `ENOMEM` if the host
    /// handed out fewer bytes than asked for.
    fn exec_install_at(
        &self,
        len: usize,
        near: usize,
        emit: &mut dyn FnMut(usize) -> Result<alloc::vec::Vec<u8>>,
    ) -> Result<ExecRegion> {
        let _ = near;
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let region = self.exec_alloc(len)?;
        let written = (|| {
            if region.len < len {
                return Err(Errno::ENOMEM);
            }
            let code = emit(region.rx as usize)?;
            if code.len() != len {
                return Err(Errno::EINVAL);
            }
            // SAFETY: `exec_alloc` gave us `region.len >= len` writable bytes at `rw`, not
            // sealed yet and shared with no one; `code` cannot overlap fresh host memory.
            unsafe {
                core::ptr::copy_nonoverlapping(code.as_ptr(), region.rw, len);
                core::ptr::write_bytes(region.rw.add(len), 0xcc, region.len - len);
            }
            self.exec_seal(&region)
        })();
        match written {
            Ok(()) => Ok(region),
            Err(e) => {
                self.exec_free(region);
                Err(e)
            }
        }
    }
}

/// The first byte of an x86 breakpoint (`int3`), which [`text_poke_bp`] writes over an
/// instruction while it changes the rest.
pub const INT3: u8 = 0xcc;

/// The order in which a host rewrites an instruction other CPUs may be executing, for
/// [`Host::text_poke`] (`text_poke_bp` in `arch/x86/kernel/alternative.c`): [`INT3`] over the
/// first byte, every CPU serialized, the other bytes, serialized again, the new first byte,
/// serialized. A CPU reaching the instruction meanwhile runs the old one, traps on the `int3`
/// (the host's trap handler then waits for the patch and restarts it at the new one, or
/// emulates it), or runs the new one — never a mix of old and new bytes. A single byte is one
/// store and one serialization.
///
/// `write(i, b)` stores byte `i` of the instruction, one byte in one step (a byte store is
/// atomic on x86); `serialize()` returns once every CPU has executed a serializing instruction
/// since it was called (`text_poke_sync`; `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE)`
/// in user mode), so no CPU is still running bytes it fetched before. Writers of one
/// instruction are serialized by the host (the kernel's `text_mutex`). The shim's host and the
/// loom model of direct tail calls (`loom-tests/tests/poke.rs`) both write through this.
pub fn text_poke_bp(bytes: &[u8], mut write: impl FnMut(usize, u8), mut serialize: impl FnMut()) {
    let Some((&first, rest)) = bytes.split_first() else {
        return;
    };
    if rest.is_empty() {
        write(0, first);
        serialize();
        return;
    }
    write(0, INT3);
    serialize();
    for (i, &b) in rest.iter().enumerate() {
        write(1 + i, b);
    }
    serialize();
    write(0, first);
    serialize();
}

static HOST: Once<&'static dyn Host> = Once::new();

/// Registers the host. The first registration wins; later ones are ignored and return `false`.
pub fn register(host: &'static dyn Host) -> bool {
    let mut first = false;
    HOST.call_once(|| {
        first = true;
        host
    });
    first
}

/// The registered host.
///
/// # Panics
/// If no host was registered: running BPF without a host is a bug in the embedding.
#[inline]
pub fn get() -> &'static dyn Host {
    *HOST
        .get()
        .expect("kbpf: no host registered (call kbpf::host::register first)")
}

/// The registered host, if any.
#[inline]
pub fn try_get() -> Option<&'static dyn Host> {
    HOST.get().copied()
}
