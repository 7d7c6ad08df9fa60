//! `BPF_MAP_TYPE_ARRAY` (Linux `kernel/bpf/arraymap.c`): preallocated, zero-initialized values
//! indexed by a u32 key; elements cannot be deleted.
//!
//! The values sit in one allocation made at creation and freed with the map, so their
//! addresses are stable for the map's life: programs holding the map (`used_maps`) may compute
//! them inline ([`ArrayMap::gen_lookup_layout`], for `array_map_gen_lookup`).

use super::storage::Storage;
use crate::map::{MapAttr, array_index};
use crate::uapi::UpdateFlags;
use crate::{Errno, Result};

/// What an inlined lookup (the verifier's `array_map_gen_lookup`) needs to know about an
/// array: where element 0 is, how many elements there are and the distance between two of
/// them. The map gives it (`ArrayMap::gen_lookup_layout`); the verifier reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArrayLayout {
    /// Address of element 0's value, stable for the map's life.
    pub base: u64,
    /// Number of elements (`max_entries`, at least 1).
    pub max_entries: u32,
    /// Bytes from one element to the next (the value size rounded up to 8).
    pub elem_size: u32,
}

/// A plain array map.
pub(crate) struct ArrayMap {
    values: Storage,
    value_size: usize,
    max_entries: u32,
}

/// The flag checks every array-like update shares (`array_map_update_elem`).
pub(crate) fn check_array_update(flags: UpdateFlags) -> Result {
    if flags.contains(UpdateFlags::NOEXIST) {
        // All elements exist already.
        return Err(Errno::EEXIST);
    }
    if flags.contains(UpdateFlags::LOCK) {
        // No bpf_spin_lock in array values here.
        return Err(Errno::EINVAL);
    }
    Ok(())
}

impl ArrayMap {
    pub(crate) fn new(attr: &MapAttr) -> Result<ArrayMap> {
        if attr.key_size != 4 || attr.value_size == 0 {
            return Err(Errno::EINVAL);
        }
        Ok(ArrayMap {
            values: Storage::new(attr.value_size as usize, attr.max_entries as usize)?,
            value_size: attr.value_size as usize,
            max_entries: attr.max_entries,
        })
    }

    fn index(&self, key: &[u8]) -> Result<usize> {
        let i = array_index(key)?;
        if i >= self.max_entries {
            Err(Errno::ENOENT)
        } else {
            Ok(i as usize)
        }
    }

    pub(crate) fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result {
        let i = self.index(key)?;
        self.values.read(i, value);
        Ok(())
    }

    pub(crate) fn update(&self, key: &[u8], value: &[u8], flags: UpdateFlags) -> Result {
        check_array_update(flags)?;
        let i = array_index(key)?;
        if i >= self.max_entries {
            return Err(Errno::E2BIG);
        }
        self.values.write(i as usize, value);
        Ok(())
    }

    /// Where an inlined lookup finds the values (`array_map_gen_lookup`'s inputs): element `i`
    /// is at `base + i * elem_size` for `i < max_entries`, exactly what
    /// [`ArrayMap::lookup_raw`] returns.
    pub(crate) fn gen_lookup_layout(&self) -> Option<ArrayLayout> {
        if self.max_entries == 0 {
            return None;
        }
        // SAFETY: element 0 exists (`max_entries` elements, checked above).
        let base = unsafe { self.values.elem(0) } as u64;
        Some(ArrayLayout {
            base,
            max_entries: self.max_entries,
            elem_size: u32::try_from(self.values.elem_size()).ok()?,
        })
    }

    /// # Safety
    /// `key` points to 4 readable bytes.
    #[inline]
    pub(crate) unsafe fn lookup_raw(&self, key: *const u8) -> *mut u8 {
        // SAFETY: caller contract.
        let i = unsafe { (key as *const u32).read_unaligned() };
        if i >= self.max_entries {
            return core::ptr::null_mut();
        }
        // SAFETY: `i < max_entries` = the storage's element count.
        unsafe { self.values.elem(i as usize) }
    }

    /// # Safety
    /// `key` and `value` point to 4 and `value_size` readable bytes.
    pub(crate) unsafe fn update_raw(
        &self,
        key: *const u8,
        value: *const u8,
        flags: UpdateFlags,
    ) -> Result {
        // SAFETY: caller contract; a found element has `value_size` (rounded) bytes.
        unsafe { update_found(self.lookup_raw(key), value, self.value_size, flags) }
    }
}

/// A program's update of the element an array-like lookup found (`array_map_update_elem`).
///
/// # Safety
/// `elem` is null (index out of range) or an element of at least `size` bytes; `value` points
/// to `size` readable bytes.
pub(crate) unsafe fn update_found(
    elem: *mut u8,
    value: *const u8,
    size: usize,
    flags: UpdateFlags,
) -> Result {
    check_array_update(flags)?;
    if elem.is_null() {
        return Err(Errno::E2BIG);
    }
    // SAFETY: caller contract.
    unsafe { core::ptr::copy(value, elem, size) };
    Ok(())
}
