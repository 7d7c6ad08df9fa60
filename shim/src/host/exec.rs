//! Executable memory for JIT images: the user-mode stand-in for the kernel's `bpf_prog_pack`
//! allocator with `set_memory_rox()` (`kernel/bpf/core.c`) and `text_poke_bp()`
//! (`arch/x86/kernel/alternative.c`).
//!
//! # W^X with two views
//! Each region is a memfd mapped twice (`MAP_SHARED`): an `rx` view (`PROT_READ | PROT_EXEC`)
//! that code runs from, and an `rw` alias that the JIT writes through. No mapping is ever
//! writable and executable at once. New regions are filled with `int3` (`0xcc`), like the
//! kernel's `jit_fill_hole`. [`ExecAllocator::seal`] makes the alias read-only, so after sealing
//! nothing is writable.
//!
//! # Live patching (`text_poke_bp`)
//! Under one process-wide mutex (the kernel's `text_mutex`), the alias page(s) holding the bytes are made
//! writable for the duration of the patch only. A one-byte patch is a single store. Longer ones
//! follow the kernel's order: `int3` over byte 0, serialize every CPU, bytes `1..`, serialize,
//! byte 0, serialize. "Serialize" is `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE)`,
//! which makes every thread of the process execute a core-serializing instruction before it
//! returns to this mm; if the kernel lacks it we fall back to `MEMBARRIER_CMD_PRIVATE_EXPEDITED`
//! (a full barrier on every running thread; sufficient in practice on x86, where the return to
//! user space after the IPI is `iret`/`sysret`-serialized) and, without membarrier at all, to a
//! local `fence(SeqCst)` (then only the patching thread is ordered; [`serialize_mode`] tells).
//! A thread that executes the transient `int3` is held in the `SIGTRAP` handler ([`super::trap`])
//! until the patch is complete and then re-executes the new instruction.

use super::trap;
use kbpf::host::ExecRegion;
use kbpf::{Errno, Result};
use std::sync::atomic::{Ordering, fence};
use std::sync::{Mutex, OnceLock};

const INT3: u8 = 0xcc;

// `linux/membarrier.h` (libc only exports these for Android).
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE: libc::c_int = 1 << 5;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: libc::c_int = 1 << 6;
// `linux/memfd.h`: ask for an executable memfd explicitly (Linux >= 6.3 warns otherwise and may
// refuse under `vm.memfd_noexec`); older kernels reject the flag with EINVAL.
const MFD_EXEC: libc::c_uint = 0x0010;

/// How `text_poke` makes other threads serialize.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SerializeMode {
    /// `MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE`: every thread runs a serializing instruction.
    SyncCore,
    /// `MEMBARRIER_CMD_PRIVATE_EXPEDITED`: every running thread executes a full memory barrier.
    Expedited,
    /// No usable membarrier: a local `fence(SeqCst)` only.
    Fence,
}

/// The serialization `text_poke` uses in this process (registers with membarrier on first call).
pub(super) fn serialize_mode() -> SerializeMode {
    static MODE: OnceLock<SerializeMode> = OnceLock::new();
    *MODE.get_or_init(|| {
        if membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) == 0 {
            SerializeMode::SyncCore
        } else if membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 {
            SerializeMode::Expedited
        } else {
            SerializeMode::Fence
        }
    })
}

fn membarrier(cmd: libc::c_int) -> libc::c_long {
    // SAFETY: membarrier takes (cmd, flags, cpu_id) by value and touches no user memory.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    }
}

/// Makes every thread of the process serialize its instruction stream (`text_poke_sync`).
fn serialize() {
    fence(Ordering::SeqCst);
    let cmd = match serialize_mode() {
        SerializeMode::SyncCore => MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE,
        SerializeMode::Expedited => MEMBARRIER_CMD_PRIVATE_EXPEDITED,
        SerializeMode::Fence => return,
    };
    let rc = membarrier(cmd);
    debug_assert_eq!(rc, 0, "membarrier failed after registering");
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Allocation failures are `ENOMEM` (as `bpf_jit_binary_alloc` reports them).
fn alloc_error() -> Errno {
    match last_errno() {
        libc::EFAULT => Errno::EFAULT,
        _ => Errno::ENOMEM,
    }
}

/// Protection changes fail only for a bad range (`EFAULT`) or lack of memory for the split.
fn protect_error() -> Errno {
    match last_errno() {
        libc::ENOMEM | libc::EAGAIN => Errno::ENOMEM,
        _ => Errno::EFAULT,
    }
}

/// Serializes patchers process-wide (`text_mutex`): the `SIGTRAP` handler's record of the
/// patch in progress is process-wide too, so two allocators must not patch at once.
static TEXT_MUTEX: Mutex<()> = Mutex::new(());

/// Hands out and patches executable regions. One per host.
#[derive(Debug)]
pub(super) struct ExecAllocator {
    page_size: usize,
}

impl ExecAllocator {
    pub(super) fn new() -> Self {
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Self {
            page_size: usize::try_from(page)
                .ok()
                .filter(|&p| p > 0)
                .unwrap_or(4096),
        }
    }

    /// A cookie binding a region's fields together, so a region this allocator did not make
    /// (or a tampered copy) is rejected with `EINVAL`.
    fn cookie(rx: usize, rw: usize, len: usize) -> usize {
        (rx ^ rw.rotate_left(17) ^ len.rotate_left(41)) ^ 0x6b62_7066_5f6a_6974
    }

    fn check(&self, region: &ExecRegion) -> Result {
        let ok = !region.rx.is_null()
            && !region.rw.is_null()
            && region.len != 0
            && region.len % self.page_size == 0
            && region.cookie == Self::cookie(region.rx as usize, region.rw as usize, region.len);
        if ok { Ok(()) } else { Err(Errno::EINVAL) }
    }

    fn memfd() -> Result<libc::c_int> {
        let name = c"kbpf-jit";
        // SAFETY: `name` is a NUL-terminated string; flags are plain bits.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | MFD_EXEC) };
        if fd >= 0 {
            return Ok(fd);
        }
        // SAFETY: as above.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd >= 0 { Ok(fd) } else { Err(alloc_error()) }
    }

    fn map(fd: libc::c_int, len: usize, prot: libc::c_int) -> Result<*mut u8> {
        // SAFETY: a fresh shared mapping of `fd` at a kernel-chosen address; aliases nothing.
        let p = unsafe { libc::mmap(core::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, 0) };
        if p == libc::MAP_FAILED {
            Err(alloc_error())
        } else {
            Ok(p.cast())
        }
    }

    /// `len` bytes rounded up to pages: the `rw` alias read+write, the `rx` view read+exec,
    /// both full of `int3`.
    pub(super) fn alloc(&self, len: usize) -> Result<ExecRegion> {
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = len
            .checked_next_multiple_of(self.page_size)
            .filter(|&l| l <= isize::MAX as usize)
            .ok_or(Errno::ENOMEM)?;
        let size = libc::off_t::try_from(len).map_err(|_| Errno::ENOMEM)?;
        let fd = Self::memfd()?;
        let mapped = (|| {
            // SAFETY: `fd` is our open memfd.
            if unsafe { libc::ftruncate(fd, size) } != 0 {
                return Err(alloc_error());
            }
            let rw = Self::map(fd, len, libc::PROT_READ | libc::PROT_WRITE)?;
            match Self::map(fd, len, libc::PROT_READ | libc::PROT_EXEC) {
                Ok(rx) => Ok((rx, rw)),
                Err(e) => {
                    // SAFETY: `rw` is the mapping of `len` bytes made just above.
                    unsafe { libc::munmap(rw.cast(), len) };
                    Err(e)
                }
            }
        })();
        // The mappings keep the file alive.
        // SAFETY: `fd` is ours and closed once.
        unsafe { libc::close(fd) };
        let (rx, rw) = mapped?;
        // SAFETY: `rw` is a fresh writable mapping of `len` bytes.
        unsafe { core::ptr::write_bytes(rw, INT3, len) };
        Ok(ExecRegion {
            rx,
            rw,
            len,
            cookie: Self::cookie(rx as usize, rw as usize, len),
        })
    }

    /// Makes the `rw` alias read-only; the `rx` view already is read+exec.
    pub(super) fn seal(&self, region: &ExecRegion) -> Result {
        self.check(region)?;
        // SAFETY: `region` is a live mapping of ours (checked cookie) of `len` bytes.
        if unsafe { libc::mprotect(region.rw.cast(), region.len, libc::PROT_READ) } != 0 {
            return Err(protect_error());
        }
        Ok(())
    }

    /// Writes `bytes` at `offset` while other threads may be executing the region (see the
    /// module documentation). A bad region or range is rejected (`EINVAL`, `E2BIG`) before
    /// anything is written.
    pub(super) fn text_poke(&self, region: &ExecRegion, offset: usize, bytes: &[u8]) -> Result {
        self.check(region)?;
        let end = offset.checked_add(bytes.len()).ok_or(Errno::E2BIG)?;
        if end > region.len {
            return Err(Errno::E2BIG);
        }
        let Some((&first, rest)) = bytes.split_first() else {
            return Ok(());
        };
        let _text_mutex = TEXT_MUTEX.lock().unwrap_or_else(|e| e.into_inner());
        trap::install();
        let page_start = offset / self.page_size * self.page_size;
        let page_len = end.next_multiple_of(self.page_size) - page_start;
        // SAFETY: `page_start..page_start + page_len` lies inside the region's `rw` mapping.
        let pages = unsafe { region.rw.add(page_start) };
        let rw_prot = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: `pages`/`page_len` is a page-aligned subrange of our mapping.
        if unsafe { libc::mprotect(pages.cast(), page_len, rw_prot) } != 0 {
            return Err(protect_error());
        }
        // SAFETY: `offset..end` lies inside the `rw` mapping, now writable.
        let dst = unsafe { region.rw.add(offset) };
        let rx_addr = region.rx as usize + offset;
        let write = |i: usize, b: u8| {
            debug_assert!(i < bytes.len());
            // SAFETY: `i < bytes.len()`, so `dst + i` is inside the writable alias. Concurrent
            // users only execute these bytes through `rx`, and a byte store is atomic on x86:
            // an executing thread sees the old byte or the new one, never a torn value.
            unsafe { dst.add(i).write_volatile(b) }
        };
        if rest.is_empty() {
            write(0, first);
            serialize();
        } else {
            trap::begin();
            write(0, INT3);
            serialize();
            for (i, &b) in rest.iter().enumerate() {
                write(1 + i, b);
            }
            serialize();
            write(0, first);
            serialize();
            trap::end(rx_addr);
        }
        // SAFETY: as for the mprotect above.
        if unsafe { libc::mprotect(pages.cast(), page_len, libc::PROT_READ) } != 0 {
            return Err(protect_error());
        }
        Ok(())
    }

    /// Poisons the region with `int3` through the alias and unmaps both views. The caller
    /// guarantees no thread still executes it (a grace period has passed).
    pub(super) fn free(&self, region: ExecRegion) {
        if self.check(&region).is_err() {
            debug_assert!(false, "exec_free of a region this host did not allocate");
            return;
        }
        let rw_prot = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: our live mapping of `len` bytes.
        if unsafe { libc::mprotect(region.rw.cast(), region.len, rw_prot) } == 0 {
            // SAFETY: the alias is writable again and nobody executes the region.
            unsafe { core::ptr::write_bytes(region.rw, INT3, region.len) };
        }
        // SAFETY: both views are our mappings of `len` bytes and are not used after this.
        let (a, b) = unsafe {
            (
                libc::munmap(region.rw.cast(), region.len),
                libc::munmap(region.rx as *mut libc::c_void, region.len),
            )
        };
        debug_assert!(a == 0 && b == 0, "munmap of a JIT region failed");
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64};

    /// `mov eax, imm32; ret`
    fn ret_imm(v: u32) -> [u8; 6] {
        let b = v.to_le_bytes();
        [0xb8, b[0], b[1], b[2], b[3], 0xc3]
    }

    fn call(region: &ExecRegion) -> u32 {
        // SAFETY: the region is sealed and holds `mov eax, imm32; ret` at offset 0, a complete
        // function with the C ABI that touches nothing but eax.
        let f: extern "C" fn() -> u32 = unsafe { core::mem::transmute(region.rx) };
        f()
    }

    #[test]
    fn alloc_write_seal_run_and_patch() {
        let a = ExecAllocator::new();
        let r = a.alloc(10).expect("exec_alloc");
        assert_eq!(r.len, a.page_size);
        // SAFETY: `rw` is writable before sealing and 6 <= len.
        unsafe {
            assert_eq!(*r.rx.add(r.len - 1), INT3, "fresh region is int3-filled");
            core::ptr::copy_nonoverlapping(ret_imm(42).as_ptr(), r.rw, 6);
        }
        a.seal(&r).expect("exec_seal");
        assert_eq!(call(&r), 42);
        // Single-byte poke (the immediate's low byte), then a multi-byte one (int3 protocol).
        a.text_poke(&r, 1, &[43]).expect("text_poke 1 byte");
        assert_eq!(call(&r), 43);
        a.text_poke(&r, 0, &ret_imm(0x1234_5678))
            .expect("text_poke 6 bytes");
        assert_eq!(call(&r), 0x1234_5678);
        a.free(r);
    }

    #[test]
    fn sealed_alias_is_read_only() {
        let a = ExecAllocator::new();
        let r = a.alloc(1).unwrap();
        a.seal(&r).unwrap();
        let buf = [0u8; 2];
        // A write through the alias must fail: ask the kernel to write into it (read(2) from a
        // pipe returns EFAULT instead of crashing us).
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: writes 2 bytes from `buf` into our pipe, then reads them into the sealed alias.
        let n = unsafe {
            libc::write(fds[1], buf.as_ptr().cast(), 2);
            libc::read(fds[0], r.rw.cast(), 2)
        };
        assert_eq!(n, -1);
        assert_eq!(last_errno(), libc::EFAULT);
        // SAFETY: closing our own descriptors.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        a.free(r);
    }

    #[test]
    fn bad_requests_are_rejected() {
        let a = ExecAllocator::new();
        assert_eq!(a.alloc(0).unwrap_err(), Errno::EINVAL);
        assert_eq!(a.alloc(usize::MAX).unwrap_err(), Errno::ENOMEM);
        let r = a.alloc(16).unwrap();
        a.seal(&r).unwrap();
        assert_eq!(a.text_poke(&r, r.len - 1, &[1, 2]), Err(Errno::E2BIG));
        assert_eq!(a.text_poke(&r, usize::MAX, &[1]), Err(Errno::E2BIG));
        let forged = ExecRegion {
            rx: r.rx,
            rw: r.rw,
            len: r.len,
            cookie: 0,
        };
        assert_eq!(a.seal(&forged), Err(Errno::EINVAL));
        assert_eq!(a.text_poke(&forged, 0, &[0x90]), Err(Errno::EINVAL));
        assert_eq!(a.text_poke(&r, 0, &[]), Ok(()));
        a.free(r);
    }

    /// Threads keep calling the function while it is re-patched with the multi-byte protocol;
    /// every call must return one of the two values (a thread that hits the transient int3 is
    /// restarted on the new instruction by the SIGTRAP handler).
    #[test]
    fn patching_under_concurrent_execution() {
        let a = ExecAllocator::new();
        let r = a.alloc(6).unwrap();
        // SAFETY: writable before sealing.
        unsafe { core::ptr::copy_nonoverlapping(ret_imm(0x1111_1111).as_ptr(), r.rw, 6) };
        a.seal(&r).unwrap();
        let stop = AtomicBool::new(false);
        let calls = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let v = call(&r);
                        assert!(v == 0x1111_1111 || v == 0x2222_2222, "torn: {v:#x}");
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            for i in 0..200 {
                let v = if i % 2 == 0 { 0x2222_2222 } else { 0x1111_1111 };
                a.text_poke(&r, 0, &ret_imm(v)).unwrap();
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert!(calls.load(Ordering::Relaxed) > 0);
        eprintln!(
            "serialize={:?} calls={} transient int3 traps={}",
            serialize_mode(),
            calls.load(Ordering::Relaxed),
            trap::transient_traps()
        );
        assert_eq!(call(&r), 0x1111_1111);
        a.free(r);
    }
}
