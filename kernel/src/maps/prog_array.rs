//! `BPF_MAP_TYPE_PROG_ARRAY`: the jump table of `bpf_tail_call` (Linux `kernel/bpf/arraymap.c`,
//! `prog_array_map_*` and `fd_array_map_*`).
//!
//! The slots are [`RcuSlots`]: each holds one program reference; updates and deletes come only
//! from the control path and `xchg` the slot, and the old program is put after a grace period,
//! because a tail call on another CPU may have loaded it an instant before. A tail call reads
//! its slot once, with an acquire load.
//!
//! Rules (the final kernel's): key and value are 4 bytes (value: a program handle; lookup from
//! user space yields the program id); update only with `BPF_ANY` (`EINVAL` otherwise); an index
//! past `max_entries` is `E2BIG`; deleting an empty slot is `ENOENT`; programs looking up a
//! prog_array get NULL; every slot is cleared when the last user handle closes.

use crate::cpu::{CpuGuard, rcu};
use crate::map::{MapAttr, array_index};
use crate::prog::Prog;
use crate::sync::{Arc, RcuSlots};
use crate::uapi::UpdateFlags;
use crate::{Errno, Result};

/// The slots of a prog_array.
pub struct ProgArray {
    slots: RcuSlots<Prog>,
}

impl ProgArray {
    pub(crate) fn new(attr: &MapAttr) -> Result<ProgArray> {
        // Only program handles can be stored (`prog_array_map_alloc_check`).
        if attr.key_size != 4 || attr.value_size != 4 {
            return Err(Errno::EINVAL);
        }
        Ok(ProgArray {
            slots: RcuSlots::new(attr.max_entries as usize)?,
        })
    }

    /// Number of slots (`max_entries`).
    #[inline]
    pub fn max_entries(&self) -> u32 {
        self.slots.len() as u32
    }

    /// The base of the slot array, which JIT'd tail calls index directly.
    pub fn slots_base(&self) -> *const crate::sync::atomic::AtomicPtr<Prog> {
        self.slots.as_ptr()
    }

    /// Fast path: the program in slot `index`, or null. Index must be `< max_entries`.
    ///
    /// The pointer is valid until the caller's RCU read-side section ends.
    #[inline]
    pub fn get(&self, index: u32) -> *const Prog {
        self.slots.get(index as usize)
    }

    /// Stores `prog` in slot `index` (compatibility already checked by the caller), putting the
    /// previous program after a grace period.
    pub(crate) fn update(&self, index: u32, prog: Arc<Prog>, flags: UpdateFlags) -> Result {
        if flags != UpdateFlags::ANY {
            return Err(Errno::EINVAL);
        }
        if index >= self.max_entries() {
            return Err(Errno::E2BIG);
        }
        self.slots.xchg(rcu(), index as usize, Some(prog));
        Ok(())
    }

    /// Empties slot `index`.
    pub(crate) fn delete(&self, index: u32) -> Result {
        if index >= self.max_entries() {
            return Err(Errno::E2BIG);
        }
        if self.slots.xchg(rcu(), index as usize, None) {
            Ok(())
        } else {
            Err(Errno::ENOENT)
        }
    }

    /// Empties every slot (`bpf_fd_array_map_clear`).
    pub(crate) fn clear(&self) {
        for i in 0..self.slots.len() {
            self.slots.xchg(rcu(), i, None);
        }
    }

    /// User-space lookup: the id of the program in the slot (`prog_fd_array_sys_lookup_elem`).
    pub(crate) fn lookup_id(&self, key: &[u8], value: &mut [u8]) -> Result {
        let i = array_index(key)?;
        if i >= self.max_entries() {
            return Err(Errno::ENOENT);
        }
        let _cpu = CpuGuard::enter();
        let p = self.get(i);
        if p.is_null() {
            return Err(Errno::ENOENT);
        }
        // SAFETY: inside a read-side section a loaded slot pointer stays valid (`RcuSlots`).
        let id = unsafe { (*p).id() };
        value.copy_from_slice(&id.to_ne_bytes());
        Ok(())
    }

    /// How many slots are filled.
    pub fn filled(&self) -> usize {
        self.slots.filled()
    }
}
