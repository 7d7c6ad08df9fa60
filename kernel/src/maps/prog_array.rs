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
//!
//! Direct tail calls (JIT'd code that jumps straight to a slot's program) are kept in sync by
//! the array's poke table: every slot write re-patches the slot's sites, then exchanges the
//! slot, all under the poke lock; see [`poke`] for the protocol and its ordering against RCU.

mod poke;

pub use poke::{PokedSlots, TailCallTarget};

use crate::cpu::{CpuGuard, rcu};
use crate::jit::JitImage;
use crate::map::{Map, MapAttr, array_index};
use crate::prog::Prog;
use crate::sync::Arc;
use crate::uapi::UpdateFlags;
use crate::{Errno, Result};

/// The slots of a prog_array.
pub struct ProgArray {
    /// The slots and the direct tail-call sites naming them; the table's lock serializes
    /// every slot write.
    slots: PokedSlots<Prog>,
}

impl ProgArray {
    pub(crate) fn new(attr: &MapAttr) -> Result<ProgArray> {
        // Only program handles can be stored (`prog_array_map_alloc_check`).
        if attr.key_size != 4 || attr.value_size != 4 {
            return Err(Errno::EINVAL);
        }
        Ok(ProgArray {
            slots: PokedSlots::new(attr.max_entries as usize)?,
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
        self.slots.get(index)
    }

    /// [`ProgArray::get`] for a caller that has just checked `index` against
    /// [`ProgArray::max_entries`] (the interpreter's tail call, which checks it with the
    /// budget in one branch).
    ///
    /// # Safety
    /// `index < self.max_entries()`.
    #[inline]
    pub unsafe fn get_unchecked(&self, index: u32) -> *const Prog {
        // SAFETY: `max_entries` is the slot count; the caller's promise.
        unsafe { self.slots.get_unchecked(index) }
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
        self.slots.write(rcu(), index, Some(prog)).map(|_| ())
    }

    /// Empties slot `index`.
    pub(crate) fn delete(&self, index: u32) -> Result {
        if index >= self.max_entries() {
            return Err(Errno::E2BIG);
        }
        match self.slots.write(rcu(), index, None)? {
            true => Ok(()),
            false => Err(Errno::ENOENT),
        }
    }

    /// Empties every slot (`bpf_fd_array_map_clear`). A slot whose sites can't be re-patched
    /// keeps its program (and so stays safe to jump to).
    pub(crate) fn clear(&self) {
        self.slots.clear(rcu());
    }

    /// Number of direct tail-call sites currently tracked for this array.
    pub fn poke_sites(&self) -> usize {
        self.slots.poke_sites()
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

/// Tracks every direct tail-call site of `image` in the prog_array it names, pointing each at
/// its slot's current program (`map_poke_track` + `bpf_tail_call_direct_fixup`). Sites naming
/// a map the program does not use, a map that holds no programs, or an index past
/// `max_entries` stay falling through: a tail call there always falls through. On failure no
/// site of `image` stays tracked.
pub(crate) fn track_pokes(used_maps: &[Arc<Map>], image: &dyn JitImage) -> Result {
    for (site, s) in image.poke_sites().iter().enumerate() {
        let array = used_maps
            .iter()
            .find(|m| Arc::as_ptr(m) as u64 == s.map)
            .and_then(|m| m.as_prog_array());
        let Some(array) = array.filter(|a| s.index < a.max_entries()) else {
            continue;
        };
        if let Err(e) = array.slots.track(image, site, s.index) {
            untrack_pokes(used_maps, image);
            return Err(e);
        }
    }
    Ok(())
}

/// Forgets every site of `image` (`map_poke_untrack`); called before the image is freed.
pub(crate) fn untrack_pokes(used_maps: &[Arc<Map>], image: &dyn JitImage) {
    if image.poke_sites().is_empty() {
        return;
    }
    for array in used_maps.iter().filter_map(|m| m.as_prog_array()) {
        array.slots.untrack(image);
    }
}
