//! Zeroed, 8-byte aligned element storage shared by the array-like maps and the hash map's
//! element pool (the kernel's `bpf_map_area_alloc`).
//!
//! Programs write map values through raw pointers while user space reads them, exactly as in
//! Linux: value bytes are deliberately racy, and programs that need atomicity use atomic
//! instructions. The storage therefore only ever hands out raw pointers, never references.

use crate::{Errno, Result};
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use core::ptr::NonNull;

/// A fixed array of `count` elements of `elem_size` bytes (a multiple of 8).
pub(crate) struct Storage {
    base: NonNull<u8>,
    elem_size: usize,
    count: usize,
}

// SAFETY: the storage is plain bytes reached only through raw pointers; concurrent access to
// element bytes is the documented BPF semantics (see the module docs), and the allocation
// itself is owned by this value.
unsafe impl Send for Storage {}
// SAFETY: as above.
unsafe impl Sync for Storage {}

/// Rounds up to a multiple of 8 (`round_up(value_size, 8)`).
pub(crate) const fn round8(n: usize) -> usize {
    (n + 7) & !7
}

impl Storage {
    /// Allocates `count` zeroed elements of `round8(elem_size)` bytes.
    pub(crate) fn new(elem_size: usize, count: usize) -> Result<Storage> {
        let elem_size = round8(elem_size.max(1));
        let bytes = elem_size.checked_mul(count).ok_or(Errno::E2BIG)?;
        if bytes > isize::MAX as usize / 2 {
            return Err(Errno::E2BIG);
        }
        let layout = Layout::from_size_align(bytes.max(8), 8).map_err(|_| Errno::E2BIG)?;
        // SAFETY: the layout has a non-zero size.
        let base = NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or(Errno::ENOMEM)?;
        Ok(Storage {
            base,
            elem_size,
            count,
        })
    }

    /// The rounded element size.
    #[inline]
    pub(crate) fn elem_size(&self) -> usize {
        self.elem_size
    }

    /// A pointer to element `i`.
    ///
    /// # Safety
    /// `i < count`.
    #[inline]
    pub(crate) unsafe fn elem(&self, i: usize) -> *mut u8 {
        debug_assert!(i < self.count);
        // SAFETY: `i < count`, so the offset stays inside the allocation.
        unsafe { self.base.as_ptr().add(i * self.elem_size) }
    }

    /// Copies `out.len()` bytes (at most the element size) out of element `i`.
    pub(crate) fn read(&self, i: usize, out: &mut [u8]) {
        assert!(i < self.count && out.len() <= self.elem_size);
        // SAFETY: bounds checked above; the source is inside element `i`.
        unsafe { core::ptr::copy_nonoverlapping(self.elem(i), out.as_mut_ptr(), out.len()) }
    }

    /// Copies `src` into the start of element `i`.
    pub(crate) fn write(&self, i: usize, src: &[u8]) {
        assert!(i < self.count && src.len() <= self.elem_size);
        // SAFETY: bounds checked above; the destination is inside element `i`.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), self.elem(i), src.len()) }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.elem_size * self.count, 8)
            .expect("layout was valid at allocation");
        let layout = Layout::from_size_align(layout.size().max(8), 8).expect("valid");
        // SAFETY: allocated in `new` with this exact layout.
        unsafe { dealloc(self.base.as_ptr(), layout) }
    }
}
