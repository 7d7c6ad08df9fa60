//! Memory for conntrack entries and bucket arrays: `nf_conntrack_cachep` (a `kmem_cache` of
//! `struct nf_conn`) and `nf_ct_alloc_hashtable` (`kvzalloc`), as kbpf can have them.
//!
//! The kernel's objects live in its direct map, mapped with huge pages, so a lookup that misses
//! the cache rarely misses the TLB as well. kbpf asks the host for the same: entries are carved
//! out of 2 MiB chunks (64-byte aligned, so an entry's first 128 bytes — tuples, timeout,
//! reference count — span two cache lines), and chunks and large bucket arrays are allocated
//! 2 MiB-aligned and handed to [`crate::host::Host::hugepage_hint`].
//!
//! Free entries are kept on a list under a spin lock, like a slab's free list: allocation and
//! freeing are the kernel's allocating paths (alloc kfunc, control path), never a lookup. Chunks
//! go back only when the table is dropped (a cache that is never shrunk).

use super::conn::Conn;
use crate::sync::SpinLock;
use crate::{Errno, Result};
use alloc::vec::Vec;
use core::alloc::Layout;

/// `HPAGE_SIZE` on x86-64.
pub const HUGE: usize = 2 << 20;

/// Entries per chunk (a few under loom, whose models allocate one table per execution).
#[cfg(not(loom))]
const PER_CHUNK: usize = HUGE / core::mem::size_of::<Conn>();
#[cfg(loom)]
const PER_CHUNK: usize = 4;
/// A chunk's size: a whole huge page (what is left past the last entry stays unused).
#[cfg(not(loom))]
const CHUNK_BYTES: usize = HUGE;
#[cfg(loom)]
const CHUNK_BYTES: usize = PER_CHUNK * core::mem::size_of::<Conn>();

/// Allocates `size` bytes (uninitialized), aligned to 2 MiB when that large and given the
/// huge-page hint before anything touches them (pages already faulted in stay small);
/// `ENOMEM` on failure.
pub fn alloc_large(size: usize, align: usize) -> Result<(*mut u8, Layout)> {
    let huge = size >= HUGE;
    let align = if huge { align.max(HUGE) } else { align };
    let layout = Layout::from_size_align(size.max(1), align).map_err(|_| Errno::ENOMEM)?;
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { alloc::alloc::alloc(layout) };
    if p.is_null() {
        return Err(Errno::ENOMEM);
    }
    if huge && let Some(h) = crate::host::try_get() {
        h.hugepage_hint(p as usize, layout.size());
    }
    Ok((p, layout))
}

/// A free slot's link (its first word while free).
struct FreeList {
    head: usize,
    chunks: Vec<(usize, Layout)>,
}

// SAFETY: the list only holds addresses of memory the slab owns.
unsafe impl Send for FreeList {}

/// The entry cache of one table.
pub struct Slab {
    list: SpinLock<FreeList>,
}

impl Slab {
    /// An empty cache.
    pub fn new() -> Slab {
        Slab {
            list: SpinLock::new(FreeList {
                head: 0,
                chunks: Vec::new(),
            }),
        }
    }

    /// Room for one entry (uninitialized), from the free list or a new chunk.
    pub fn alloc(&self) -> Result<*mut Conn> {
        let mut l = self.list.lock();
        if l.head == 0 {
            let (p, layout) = alloc_large(CHUNK_BYTES, core::mem::align_of::<Conn>())?;
            l.chunks.try_reserve(1)?;
            l.chunks.push((p as usize, layout));
            for i in (0..PER_CHUNK).rev() {
                let slot = (p as usize) + i * core::mem::size_of::<Conn>();
                // SAFETY: a free slot of the new chunk, aligned for `Conn` (so for `usize`).
                unsafe { (slot as *mut usize).write(l.head) };
                l.head = slot;
            }
        }
        let slot = l.head;
        // SAFETY: `slot` is a free slot; its first word links the next one.
        l.head = unsafe { (slot as *const usize).read() };
        Ok(slot as *mut Conn)
    }

    /// Returns an entry's room to the cache.
    ///
    /// # Safety
    /// `p` came from [`Slab::alloc`] of this slab, its entry was dropped, and nothing refers to
    /// it any more.
    pub unsafe fn free(&self, p: *mut Conn) {
        let mut l = self.list.lock();
        // SAFETY: caller contract: the slot is ours again.
        unsafe { (p as *mut usize).write(l.head) };
        l.head = p as usize;
    }
}

impl Default for Slab {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Slab {
    /// Gives every chunk back (the table frees all entries first).
    fn drop(&mut self) {
        for &(p, layout) in &self.list.get_mut().chunks {
            // SAFETY: allocated in `alloc` with this layout; no entry is in use any more.
            unsafe { alloc::alloc::dealloc(p as *mut u8, layout) };
        }
    }
}
