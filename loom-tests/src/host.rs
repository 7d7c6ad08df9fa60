//! A `kbpf::host::Host` for loom models: CPUs are the real `kbpf::sync::cpu::CpuSlots`
//! claimed per thread (nestable, as the `Host` contract asks), and the executable text is a
//! few bytes of loom atomics that `text_poke` rewrites in the real order
//! ([`kbpf::host::text_poke_bp`]).
//!
//! # What the text models
//! Each byte is an `AtomicU8`: a store is one byte store (atomic on x86), an instruction fetch
//! is acquire loads of its bytes. A CPU executing an instruction ([`LoomHost::execute`]) marks
//! itself busy for the fetch (store, `fence(SeqCst)`, loads, release store), and `serialize`
//! (the host's `membarrier(SYNC_CORE)`) is `fence(SeqCst)` and then waiting until no CPU is
//! busy — the store-buffering pair with the fetch's fence, so after it returns no CPU is still
//! running bytes it fetched before. A fetch that finds `int3` first waits until the patch has
//! written the new first byte and fetches again, as the shim's trap handler parks the thread
//! and restarts it. A torn instruction (old and new bytes mixed) is therefore possible only if
//! the write order is wrong, and the models assert that they never execute one.

use kbpf::host::{ExecRegion, Host, INT3, text_poke_bp};
use kbpf::sync::cpu::{CpuSlots, Hold};
use kbpf::{Errno, Result};
use loom::sync::atomic::{AtomicBool, AtomicU8, Ordering, fence};

loom::thread_local! {
    /// The CPU this model thread holds and how deeply it entered it.
    static HELD: Hold = Hold::new();
}

/// A model host; see the module docs.
pub struct LoomHost {
    cpus: CpuSlots,
    text: Box<[AtomicU8]>,
    busy: Box<[AtomicBool]>,
}

impl LoomHost {
    /// `nr_cpus` CPUs and a text holding `text`.
    pub fn new(nr_cpus: usize, text: &[u8]) -> Self {
        LoomHost {
            cpus: CpuSlots::new(nr_cpus),
            text: text.iter().map(|&b| AtomicU8::new(b)).collect(),
            busy: (0..nr_cpus).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// The whole text as a sealed region (its `rx` is the text's address, for identity only:
    /// the bytes are read through [`LoomHost::execute`]).
    pub fn region(&self) -> ExecRegion {
        ExecRegion {
            rx: self.text.as_ptr() as *const u8,
            rw: self.text.as_ptr() as *mut u8,
            len: self.text.len(),
            cookie: 0,
        }
    }

    /// CPU `cpu` executes the instruction of `out.len()` bytes at `offset` and gets its bytes:
    /// all old or all new, waiting out a patch in progress as a trapped thread does.
    pub fn execute(&self, cpu: usize, offset: usize, out: &mut [u8]) {
        loop {
            self.busy[cpu].store(true, Ordering::Relaxed);
            // Pairs with the fence in `serialize`: either the patcher sees this CPU busy (and
            // waits for the fetch), or this fetch sees the bytes written before its fence.
            fence(Ordering::SeqCst);
            let first = self.text[offset].load(Ordering::Acquire);
            if first == INT3 {
                self.busy[cpu].store(false, Ordering::Release);
                // The trap: wait until the patch has put the new first byte in, then restart.
                while self.text[offset].load(Ordering::Acquire) == INT3 {
                    loom::thread::yield_now();
                }
                continue;
            }
            out[0] = first;
            for (i, b) in out.iter_mut().enumerate().skip(1) {
                *b = self.text[offset + i].load(Ordering::Acquire);
            }
            self.busy[cpu].store(false, Ordering::Release);
            return;
        }
    }

    /// The bytes at `offset`, as the patcher sees them (it holds the text lock).
    pub fn peek(&self, offset: usize, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.text[offset + i].load(Ordering::Acquire);
        }
    }

    /// `membarrier(SYNC_CORE)`: returns once no CPU is running bytes it fetched before.
    fn serialize(&self) {
        fence(Ordering::SeqCst);
        for b in self.busy.iter() {
            while b.load(Ordering::Acquire) {
                loom::thread::yield_now();
            }
        }
    }

    fn owns(&self, region: &ExecRegion) -> bool {
        region.rx == self.text.as_ptr() as *const u8 && region.len == self.text.len()
    }
}

impl Host for LoomHost {
    fn nr_cpus(&self) -> usize {
        self.cpus.nr()
    }

    fn cpu_enter(&self) -> usize {
        // Every thread prefers CPU 0, so that threads contend for it.
        HELD.with(|h| self.cpus.enter(h, 0))
    }

    fn cpu_exit(&self, cpu: usize) {
        HELD.with(|h| self.cpus.exit(h, cpu))
    }

    /// A model has no clock; no model reads time.
    fn ktime_ns(&self) -> u64 {
        0
    }

    /// A model must be deterministic; no model draws random numbers.
    fn random_u32(&self) -> u32 {
        0
    }

    /// The model's only text is the one it was built with ([`LoomHost::region`]).
    fn exec_alloc(&self, _len: usize) -> Result<ExecRegion> {
        Err(Errno::ENOMEM)
    }

    fn exec_seal(&self, region: &ExecRegion) -> Result {
        if self.owns(region) {
            Ok(())
        } else {
            Err(Errno::EINVAL)
        }
    }

    fn text_poke(&self, region: &ExecRegion, offset: usize, bytes: &[u8]) -> Result {
        let end = offset.checked_add(bytes.len()).ok_or(Errno::E2BIG)?;
        if !self.owns(region) || end > self.text.len() {
            return Err(Errno::EINVAL);
        }
        text_poke_bp(
            bytes,
            |i, b| self.text[offset + i].store(b, Ordering::Release),
            || self.serialize(),
        );
        Ok(())
    }

    /// The text belongs to the host for its whole life; nothing to give back.
    fn exec_free(&self, _region: ExecRegion) {}
}
