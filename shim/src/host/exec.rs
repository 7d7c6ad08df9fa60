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
//! # Packs
//! [`ExecAllocator::install`] (the host's `exec_install`) puts images up to
//! [`pack::PACK_MAX_REQUEST`] bytes into shared 2 MiB packs of 64-byte chunks ([`super::pack`],
//! the kernel's `bpf_prog_pack`); larger ones get a dedicated memfd as above. A pack's alias is
//! `PROT_READ` at rest: installing, freeing and patching open a write window
//! ([`with_write_window`]) over just the alias pages they touch, under the text mutex, and close
//! it before the mutex is released. The `cookie` tells the two kinds of region apart.
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

use super::{pack, trap};
use kbpf::host::ExecRegion;
use kbpf::{Errno, Result};
use std::sync::atomic::{Ordering, fence};
use std::sync::{Mutex, OnceLock};

/// The x86 breakpoint instruction: fill for unused and freed executable memory.
pub(super) use kbpf::host::INT3;

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
pub(super) fn protect_error() -> Errno {
    match last_errno() {
        libc::ENOMEM | libc::EAGAIN => Errno::ENOMEM,
        _ => Errno::EFAULT,
    }
}

/// A new `kbpf-jit` memfd of `len` bytes (executable where the kernel asks us to say so).
pub(super) fn memfd(len: usize) -> Result<libc::c_int> {
    let size = libc::off_t::try_from(len).map_err(|_| Errno::ENOMEM)?;
    let name = c"kbpf-jit";
    // SAFETY: `name` is a NUL-terminated string; flags are plain bits.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | MFD_EXEC) };
    if fd < 0 {
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    }
    if fd < 0 {
        return Err(alloc_error());
    }
    // SAFETY: `fd` is our open memfd.
    if unsafe { libc::ftruncate(fd, size) } != 0 {
        let e = alloc_error();
        // SAFETY: `fd` is ours and closed once.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    Ok(fd)
}

/// A shared mapping of the first `len` bytes of `fd` at a kernel-chosen address.
pub(super) fn map(fd: libc::c_int, len: usize, prot: libc::c_int) -> Result<*mut u8> {
    // SAFETY: a fresh shared mapping of `fd` at a kernel-chosen address; aliases nothing.
    let p = unsafe { libc::mmap(core::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, 0) };
    if p == libc::MAP_FAILED {
        Err(alloc_error())
    } else {
        Ok(p.cast())
    }
}

/// [`map`], within `rel32` reach of `near` if the address space has room there (0: anywhere).
///
/// Tries fixed addresses from [`near_hint`] downwards with `MAP_FIXED_NOREPLACE`, which never
/// replaces a mapping (an older kernel that ignores the flag treats the address as a hint; a
/// mapping it put elsewhere is undone), then falls back to a kernel-chosen address. Callers
/// check where the mapping landed.
pub(super) fn map_near(
    fd: libc::c_int,
    len: usize,
    prot: libc::c_int,
    near: usize,
) -> Result<*mut u8> {
    const TRIES: usize = 32;
    if near != 0 {
        let step = len.next_multiple_of(2 << 20);
        let mut at = near_hint(near, len);
        for _ in 0..TRIES {
            if at == 0 || !reaches(at, len, near) {
                break;
            }
            let flags = libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE;
            // SAFETY: a fresh shared mapping of `fd`; `MAP_FIXED_NOREPLACE` fails rather than
            // replace an existing mapping, so this aliases nothing.
            let p = unsafe { libc::mmap(at as *mut libc::c_void, len, prot, flags, fd, 0) };
            if p as usize == at {
                return Ok(p.cast());
            }
            // SAFETY: the mapping just made, elsewhere; nothing refers to it.
            if p != libc::MAP_FAILED && unsafe { libc::munmap(p, len) } != 0 {
                return Err(alloc_error());
            }
            at = at.saturating_sub(step);
        }
    }
    map(fd, len, prot)
}

/// Largest distance a `rel32` reaches.
const REL32_REACH: usize = i32::MAX as usize;

/// The first address [`map_near`] tries for `len` bytes that should reach `near`: 1 GiB below
/// it, rounded down to 2 MiB, where a program's text (mapped above the null guard, with its heap
/// growing upwards after it) usually leaves room.
pub(super) fn near_hint(near: usize, len: usize) -> usize {
    near.checked_sub(1 << 30)
        .map_or(0, |h| h & !((2 << 20) - 1))
        .min(near.saturating_sub(len))
}

/// Whether every byte of `start..start + len` is within `rel32` reach of `near` (always, for
/// `near == 0`).
pub(super) fn reaches(start: usize, len: usize, near: usize) -> bool {
    near == 0 || (start.abs_diff(near) < REL32_REACH && (start + len).abs_diff(near) < REL32_REACH)
}

/// Runs `write` with the alias pages covering `start..start + len` made `PROT_READ |
/// PROT_WRITE`, then makes them `PROT_READ` again. Fails (`ENOMEM`/`EFAULT`) without calling
/// `write` if the pages cannot be made writable, and reports a failure to restore them.
///
/// # Safety
/// `start..start + len` (`len > 0`) must lie in an alias mapping of this allocator whose pages
/// are `PROT_READ` outside write windows (a sealed region or a pack), and the caller must hold
/// [`TEXT_MUTEX`], so no other write window over the same pages is open.
pub(super) unsafe fn with_write_window<T>(
    page_size: usize,
    start: *mut u8,
    len: usize,
    write: impl FnOnce() -> T,
) -> Result<T> {
    let addr = start as usize;
    let first = addr / page_size * page_size;
    let pages_len = (addr + len).next_multiple_of(page_size) - first;
    let pages = start.wrapping_sub(addr - first).cast::<libc::c_void>();
    let rw_prot = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: `pages..pages + pages_len` are whole pages of the caller's alias mapping (the
    // range rounded out to page boundaries stays inside a page-aligned mapping).
    if unsafe { libc::mprotect(pages, pages_len, rw_prot) } != 0 {
        return Err(protect_error());
    }
    let out = write();
    // SAFETY: as above; the pages go back to read-only, their state outside write windows.
    if unsafe { libc::mprotect(pages, pages_len, libc::PROT_READ) } != 0 {
        debug_assert!(false, "re-protecting a JIT alias failed");
        return Err(protect_error());
    }
    Ok(out)
}

/// The cookie of a pack region (see [`ExecAllocator::check`]): differs from a dedicated
/// region's cookie for the same fields.
pub(super) fn pack_cookie(rx: usize, rw: usize, len: usize) -> usize {
    ExecAllocator::cookie(rx, rw, len) ^ 0x7061_636b_0000_0001
}

/// What backs a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backing {
    /// Its own memfd and two mappings.
    Dedicated,
    /// Chunks of a shared pack.
    Pack,
}

/// Serializes patchers process-wide (`text_mutex`): the `SIGTRAP` handler's record of the
/// patch in progress is process-wide too, so two allocators must not patch at once.
static TEXT_MUTEX: Mutex<()> = Mutex::new(());

/// Hands out and patches executable regions. One per host.
///
/// Lock order: [`TEXT_MUTEX`], then `packs`.
#[derive(Debug)]
pub(super) struct ExecAllocator {
    page_size: usize,
    packs: Mutex<pack::Packs>,
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
            packs: Mutex::new(pack::Packs::default()),
        }
    }

    /// A cookie binding a region's fields together, so a region this allocator did not make
    /// (or a tampered copy) is rejected with `EINVAL`.
    fn cookie(rx: usize, rw: usize, len: usize) -> usize {
        (rx ^ rw.rotate_left(17) ^ len.rotate_left(41)) ^ 0x6b62_7066_5f6a_6974
    }

    /// Which kind of region this is by its cookie and shape (`EINVAL` if neither fits). A pack
    /// region must also be live in a pack: see [`ExecAllocator::check_live`].
    fn check(&self, region: &ExecRegion) -> Result<Backing> {
        let (rx, rw, len) = (region.rx as usize, region.rw as usize, region.len);
        if rx == 0 || rw == 0 || len == 0 {
            return Err(Errno::EINVAL);
        }
        if region.cookie == Self::cookie(rx, rw, len) && len % self.page_size == 0 {
            Ok(Backing::Dedicated)
        } else if region.cookie == pack_cookie(rx, rw, len) && len % pack::CHUNK_SIZE == 0 {
            Ok(Backing::Pack)
        } else {
            Err(Errno::EINVAL)
        }
    }

    /// [`ExecAllocator::check`], and for a pack region that its chunks are still allocated.
    fn check_live(&self, region: &ExecRegion) -> Result<Backing> {
        let backing = self.check(region)?;
        if backing == Backing::Pack {
            self.lock_packs().check_live(region)?;
        }
        Ok(backing)
    }

    /// The pack list, locked (after [`TEXT_MUTEX`] if both are taken).
    pub(super) fn lock_packs(&self) -> std::sync::MutexGuard<'_, pack::Packs> {
        self.packs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `len` bytes rounded up to pages: the `rw` alias read+write, the `rx` view read+exec,
    /// both full of `int3`.
    pub(super) fn alloc(&self, len: usize) -> Result<ExecRegion> {
        self.alloc_near(len, 0)
    }

    /// [`ExecAllocator::alloc`] with the `rx` view within reach of `near` if the address space
    /// allows (see [`map_near`]; 0: anywhere).
    fn alloc_near(&self, len: usize, near: usize) -> Result<ExecRegion> {
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = len
            .checked_next_multiple_of(self.page_size)
            .filter(|&l| l <= isize::MAX as usize)
            .ok_or(Errno::ENOMEM)?;
        let fd = memfd(len)?;
        let mapped = (|| {
            let rw = map(fd, len, libc::PROT_READ | libc::PROT_WRITE)?;
            match map_near(fd, len, libc::PROT_READ | libc::PROT_EXEC, near) {
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

    /// Installs `code` sealed (the host's `exec_install`): up to [`pack::PACK_MAX_REQUEST`]
    /// bytes into a pack, larger code into a dedicated region written before sealing. The rest
    /// of the region is `int3`. Empty code is `EINVAL`.
    pub(super) fn install(&self, code: &[u8]) -> Result<ExecRegion> {
        self.install_at(code.len(), 0, &mut |_| Ok(code.to_vec()))
    }

    /// Installs the `len` bytes `emit` produces for the address it is given, sealed (the
    /// host's `exec_install_at`), placed as [`ExecAllocator::install`] does and, where the
    /// address space allows, within reach of `near`. On any error nothing stays allocated.
    pub(super) fn install_at(
        &self,
        len: usize,
        near: usize,
        emit: &mut dyn FnMut(usize) -> Result<Vec<u8>>,
    ) -> Result<ExecRegion> {
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        if len <= pack::PACK_MAX_REQUEST {
            let _text_mutex = TEXT_MUTEX.lock().unwrap_or_else(|e| e.into_inner());
            return self.lock_packs().install(self.page_size, len, near, emit);
        }
        let region = self.alloc_near(len, near)?;
        let written = (|| {
            let code = emit(region.rx as usize)?;
            if code.len() != len {
                return Err(Errno::EINVAL);
            }
            // SAFETY: a fresh unsealed region of `region.len >= len` bytes (already
            // `int3`-filled), writable through `rw` and shared with no one.
            unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), region.rw, len) };
            self.seal(&region)
        })();
        match written {
            Ok(()) => Ok(region),
            Err(e) => {
                self.free(region);
                Err(e)
            }
        }
    }

    /// Makes the `rw` alias read-only; the `rx` view already is read+exec. A pack region is
    /// sealed from the start, so this only checks it.
    pub(super) fn seal(&self, region: &ExecRegion) -> Result {
        if self.check_live(region)? == Backing::Pack {
            return Ok(());
        }
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
        if bytes.is_empty() {
            return Ok(());
        }
        let _text_mutex = TEXT_MUTEX.lock().unwrap_or_else(|e| e.into_inner());
        // Under the text mutex, a live pack region stays live until we are done.
        self.check_live(region)?;
        trap::install();
        // SAFETY: `offset..end` lies inside the region's `rw` mapping.
        let dst = unsafe { region.rw.add(offset) };
        let rx_addr = region.rx as usize + offset;
        let write = |i: usize, b: u8| {
            debug_assert!(i < bytes.len());
            // SAFETY: `i < bytes.len()`, so `dst + i` is inside the alias, writable during the
            // window. Concurrent users only execute these bytes through `rx`, and a byte store
            // is atomic on x86: an executing thread sees the old byte or the new one.
            unsafe { dst.add(i).write_volatile(b) }
        };
        // SAFETY: `dst..dst + len` lies in the region's alias, `PROT_READ` since sealing (or
        // always, in a pack); we hold the text mutex. Pack pages shared with other programs are
        // made read-only again when the window closes.
        unsafe {
            with_write_window(self.page_size, dst, bytes.len(), || {
                // A one-byte patch places no `int3`, so no thread can trap on it.
                let traps = bytes.len() > 1;
                if traps {
                    trap::begin();
                }
                kbpf::host::text_poke_bp(bytes, write, serialize);
                if traps {
                    trap::end(rx_addr);
                }
            })
        }
    }

    /// Returns a region: a dedicated one is poisoned with `int3` through the alias and both
    /// views are unmapped; a pack region's chunks are poisoned and returned to its pack. The
    /// caller guarantees no thread still executes it (a grace period has passed).
    pub(super) fn free(&self, region: ExecRegion) {
        let freed = match self.check(&region) {
            Ok(Backing::Dedicated) => {
                self.free_dedicated(region);
                true
            }
            Ok(Backing::Pack) => {
                let _text_mutex = TEXT_MUTEX.lock().unwrap_or_else(|e| e.into_inner());
                self.lock_packs().free(self.page_size, &region)
            }
            Err(_) => false,
        };
        debug_assert!(freed, "exec_free of a region this host did not allocate");
    }

    fn free_dedicated(&self, region: ExecRegion) {
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
            // Patch only once the callers run: a caller parked on a transient int3 from the
            // first patch may otherwise sleep through all of them and leave `calls` at 0.
            while calls.load(Ordering::Relaxed) < 2 {
                std::thread::yield_now();
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
