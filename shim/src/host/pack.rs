//! Packs of small JIT images: the user-mode `bpf_prog_pack` (`kernel/bpf/core.c`:
//! `bpf_prog_pack_alloc`, `bpf_prog_pack_free`, `alloc_new_pack`).
//!
//! A pack is one 2 MiB memfd mapped twice: an `rx` view (`PROT_READ | PROT_EXEC`) that code runs
//! from and an `rw` alias that stays `PROT_READ` except while the host writes through it. Space
//! is handed out in 64-byte chunks (a bitmap, first fit of contiguous chunks), so many small
//! programs share a few pages instead of each taking pages of its own — fewer iTLB entries and
//! no page-aligned images aliasing each other in the branch predictors. Free chunks hold `int3`.
//!
//! Every write into a pack goes through [`super::exec::with_write_window`] under the text mutex:
//! only the alias pages covering the written range become writable, and only for the write
//! (the kernel writes packs with `text_poke_copy`, which keeps them read-only + executable).
//! Nothing in this module locks; [`super::exec::ExecAllocator`] calls it with the text mutex
//! held and the pack list locked.

use super::exec::{self, INT3};
use kbpf::host::ExecRegion;
use kbpf::{Errno, Result};

/// Bytes in one pack (`BPF_PROG_PACK_SIZE` on x86 with huge pages).
pub(super) const PACK_SIZE: usize = 2 << 20;
/// Allocation unit inside a pack (`BPF_PROG_CHUNK_SIZE`).
pub(super) const CHUNK_SIZE: usize = 64;
/// Requests up to this size go into packs; larger ones get dedicated pages.
pub(super) const PACK_MAX_REQUEST: usize = 64 << 10;

const CHUNKS: usize = PACK_SIZE / CHUNK_SIZE;
const WORDS: usize = CHUNKS / 64;

/// One pack: both views of the memfd and which chunks are in use.
#[derive(Debug)]
struct Pack {
    rx: *const u8,
    rw: *mut u8,
    /// Bit `i` set: chunk `i` belongs to a live region.
    bitmap: Box<[u64; WORDS]>,
    /// Chunks in use.
    used: usize,
}

// SAFETY: a `Pack` describes process-wide mappings; all access goes through `Packs`, which the
// allocator keeps behind a mutex.
unsafe impl Send for Pack {}

impl Pack {
    /// Maps a new pack, its executable view within `rel32` reach of `near` if the address space
    /// allows ([`exec::map_near`]; 0: anywhere): the alias is filled with `int3` while it is the only view, then made
    /// read-only before the executable view exists.
    fn new(near: usize) -> Result<Pack> {
        let fd = exec::memfd(PACK_SIZE)?;
        let mapped = (|| {
            let rw = exec::map(fd, PACK_SIZE, libc::PROT_READ | libc::PROT_WRITE)?;
            let unmap_rw = || {
                // SAFETY: `rw` is the mapping of `PACK_SIZE` bytes made above, not yet shared.
                unsafe { libc::munmap(rw.cast(), PACK_SIZE) };
            };
            // SAFETY: `rw` is a fresh writable mapping of `PACK_SIZE` bytes.
            unsafe { core::ptr::write_bytes(rw, INT3, PACK_SIZE) };
            // SAFETY: as above; from now on the alias is read-only.
            if unsafe { libc::mprotect(rw.cast(), PACK_SIZE, libc::PROT_READ) } != 0 {
                let e = exec::protect_error();
                unmap_rw();
                return Err(e);
            }
            match exec::map_near(fd, PACK_SIZE, libc::PROT_READ | libc::PROT_EXEC, near) {
                Ok(rx) => Ok((rx.cast_const(), rw)),
                Err(e) => {
                    unmap_rw();
                    Err(e)
                }
            }
        })();
        // The mappings keep the file alive.
        // SAFETY: `fd` is ours and closed once.
        unsafe { libc::close(fd) };
        let (rx, rw) = mapped?;
        Ok(Pack {
            rx,
            rw,
            bitmap: Box::new([0; WORDS]),
            used: 0,
        })
    }

    fn unmap(self) {
        // SAFETY: both views are our mappings of `PACK_SIZE` bytes; no region points into them.
        let (a, b) = unsafe {
            (
                libc::munmap(self.rw.cast(), PACK_SIZE),
                libc::munmap(self.rx as *mut libc::c_void, PACK_SIZE),
            )
        };
        debug_assert!(a == 0 && b == 0, "munmap of a prog pack failed");
    }

    fn is_set(&self, i: usize) -> bool {
        self.bitmap[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_range(&mut self, start: usize, n: usize, used: bool) {
        for i in start..start + n {
            if used {
                self.bitmap[i / 64] |= 1 << (i % 64);
            } else {
                self.bitmap[i / 64] &= !(1 << (i % 64));
            }
        }
        if used {
            self.used += n;
        } else {
            self.used -= n;
        }
    }

    /// The first chunk in `from..end` whose bit equals `used`.
    fn next_chunk(&self, from: usize, end: usize, used: bool) -> Option<usize> {
        let mut i = from;
        while i < end {
            let word = self.bitmap[i / 64];
            let word = if used { word } else { !word } >> (i % 64);
            if word != 0 {
                let found = i + word.trailing_zeros() as usize;
                return (found < end).then_some(found);
            }
            i = (i / 64 + 1) * 64;
        }
        None
    }

    /// First fit of `n` contiguous free chunks (`bitmap_find_next_zero_area`).
    fn find_area(&self, n: usize) -> Option<usize> {
        let mut start = 0;
        loop {
            start = self.next_chunk(start, CHUNKS, false)?;
            let end = start.checked_add(n).filter(|&e| e <= CHUNKS)?;
            match self.next_chunk(start, end, true) {
                None => return Some(start),
                Some(used) => start = used + 1,
            }
        }
    }

    /// The first chunk and chunk count of `region` if it is a live region of this pack.
    fn locate(&self, region: &ExecRegion) -> Option<(usize, usize)> {
        let off = (region.rx as usize).checked_sub(self.rx as usize)?;
        let end = off.checked_add(region.len)?;
        let consistent = end <= PACK_SIZE
            && off % CHUNK_SIZE == 0
            && region.len % CHUNK_SIZE == 0
            && region.rw as usize == self.rw as usize + off;
        let (start, n) = (off / CHUNK_SIZE, region.len / CHUNK_SIZE);
        (consistent && (start..start + n).all(|i| self.is_set(i))).then_some((start, n))
    }
}

/// The packs of one allocator.
#[derive(Debug, Default)]
pub(super) struct Packs {
    packs: Vec<Pack>,
    /// A pack mapped for a `near` request landed out of reach: the address space has no room
    /// there, so later requests stop asking (and stop mapping new packs for it).
    near_failed: bool,
}

impl Packs {
    /// Installs the `len` bytes `emit` produces for their executable address into the first fit
    /// of chunks — in a pack within `rel32` reach of `near` if one has room (a new pack mapped
    /// near it otherwise), else in any pack — fills the rest of the last chunk with `int3` and
    /// returns the region, sealed. The caller holds the text mutex and checked
    /// `0 < len <= PACK_MAX_REQUEST`. On failure nothing changed (apart from a new, empty pack
    /// that stays for later use).
    pub(super) fn install(
        &mut self,
        page_size: usize,
        len: usize,
        near: usize,
        emit: &mut dyn FnMut(usize) -> Result<Vec<u8>>,
    ) -> Result<ExecRegion> {
        debug_assert!(len > 0 && len <= PACK_MAX_REQUEST);
        let n = len.div_ceil(CHUNK_SIZE);
        let near = if self.near_failed { 0 } else { near };
        let fits = |pack: &Pack, want_near: bool| {
            if want_near && !exec::reaches(pack.rx as usize, PACK_SIZE, near) {
                return None;
            }
            pack.find_area(n)
        };
        let found = self
            .packs
            .iter()
            .enumerate()
            .find_map(|(p, pack)| fits(pack, true).map(|c| (p, c)))
            .or_else(|| {
                // Any pack will do when there is no preference or no room near it.
                (near == 0)
                    .then(|| {
                        self.packs
                            .iter()
                            .enumerate()
                            .find_map(|(p, pack)| fits(pack, false).map(|c| (p, c)))
                    })
                    .flatten()
            });
        let (p, chunk) = match found {
            Some(found) => found,
            None => {
                self.packs.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
                let pack = Pack::new(near)?;
                if near != 0 && !exec::reaches(pack.rx as usize, PACK_SIZE, near) {
                    self.near_failed = true;
                }
                self.packs.push(pack);
                (self.packs.len() - 1, 0)
            }
        };
        let pack = &mut self.packs[p];
        let off = chunk * CHUNK_SIZE;
        let size = n * CHUNK_SIZE;
        // SAFETY: `off + size <= PACK_SIZE`: both views have room.
        let (rx, rw) = unsafe { (pack.rx.add(off), pack.rw.add(off)) };
        let code = emit(rx as usize)?;
        if code.len() != len {
            return Err(Errno::EINVAL);
        }
        // SAFETY: `rw..rw + size` lies in the pack's alias, which is `PROT_READ` outside write
        // windows; the caller holds the text mutex. The chunks are free: no thread executes them.
        unsafe {
            exec::with_write_window(page_size, rw, size, || {
                core::ptr::copy_nonoverlapping(code.as_ptr(), rw, len);
                core::ptr::write_bytes(rw.add(len), INT3, size - len);
            })?;
        }
        pack.set_range(chunk, n, true);
        Ok(ExecRegion {
            rx,
            rw,
            len: size,
            cookie: exec::pack_cookie(rx as usize, rw as usize, size),
        })
    }

    /// Checks that `region` is a live region of one of the packs (`EINVAL` otherwise).
    pub(super) fn check_live(&self, region: &ExecRegion) -> Result {
        if self.packs.iter().any(|p| p.locate(region).is_some()) {
            Ok(())
        } else {
            Err(Errno::EINVAL)
        }
    }

    /// Poisons the region's chunks with `int3` and frees them; a pack left empty is unmapped
    /// unless it is the last one. The caller holds the text mutex and guarantees no thread
    /// executes the region. Returns `false` (and changes nothing) for a region that is not live
    /// here, or if the chunks could not be poisoned (they stay allocated, never reused stale).
    pub(super) fn free(&mut self, page_size: usize, region: &ExecRegion) -> bool {
        let Some((p, (chunk, n))) = self
            .packs
            .iter()
            .enumerate()
            .find_map(|(p, pack)| pack.locate(region).map(|c| (p, c)))
        else {
            return false;
        };
        // SAFETY: the region is live in pack `p` (just located), so `rw..rw + len` lies in its
        // alias; the caller holds the text mutex and nobody executes the region any more.
        let poisoned = unsafe {
            exec::with_write_window(page_size, region.rw, region.len, || {
                core::ptr::write_bytes(region.rw, INT3, region.len)
            })
        };
        if poisoned.is_err() {
            return false;
        }
        let pack = &mut self.packs[p];
        pack.set_range(chunk, n, false);
        if pack.used == 0 && self.packs.len() > 1 {
            self.packs.swap_remove(p).unmap();
        }
        true
    }

    /// Number of packs mapped (a diagnostic for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.packs.len()
    }

    /// The alias (`rw`) ranges of all packs (for tests that inspect their protection).
    #[cfg(test)]
    pub(super) fn alias_ranges(&self) -> Vec<(usize, usize)> {
        self.packs
            .iter()
            .map(|p| (p.rw as usize, p.rw as usize + PACK_SIZE))
            .collect()
    }
}

impl Drop for Packs {
    /// Unmaps the packs no region points into; packs with live regions are left mapped (their
    /// owners may still run them).
    fn drop(&mut self) {
        for pack in self.packs.drain(..) {
            if pack.used == 0 {
                pack.unmap();
            }
        }
    }
}
