//! The poke table of a prog_array: every direct tail-call site in JIT'd code that names one of
//! its slots, kept pointing at the slot's program (Linux `prog_array_map_poke_track`,
//! `prog_array_map_poke_untrack`, `prog_array_map_poke_run` and the JIT's
//! `bpf_tail_call_direct_fixup`, serialized by `array->aux->poke_mutex`).
//!
//! # Protocol
//! * **One lock.** The table's lock is the prog_array's `poke_mutex`: every writer of a slot
//!   (update, delete, clear) and every change to the table (a program loaded or freed) holds it.
//!   Invariant under the lock: each tracked site jumps to the tail-call target of the program in
//!   its slot, or falls through when the slot is empty (or holds an interpreted program).
//! * **Track** (program load, before the program is published): under the lock, read the slot,
//!   poke the site to match, record it. A slot changed later is seen by the writer's re-patch,
//!   because that writer takes the same lock.
//! * **Slot writes re-patch before they exchange.** A writer pokes every site of the slot to the
//!   new target (or to fall-through), and only then `xchg`es the slot, whose old reference
//!   `call_rcu` puts after a grace period. `Host::text_poke` returns only when every CPU has
//!   serialized after the new bytes, so a CPU that jumps to the old program through a site
//!   took that jump before the poke returned, hence inside a read-side section that began
//!   before the `call_rcu`: the grace period waits for it, exactly as for a tail call that
//!   loaded the old pointer from the slot. A site may jump to the new program an instant before
//!   the slot holds it; the writer's own reference keeps it alive until the `xchg` moves that
//!   reference into the slot, and a concurrent run may see either program — both are allowed
//!   outcomes of a racing update.
//! * **Untrack** (program free, before its image is freed): under the lock, drop the program's
//!   sites, so no writer pokes freed memory. A program's maps outlive it (it holds them), so
//!   the table is always there to untrack from.
//! * **Failures.** A poke that fails leaves its site unchanged ([`JitImage::poke`]). The sites
//!   poked so far are put back and the slot write fails with the slot unchanged. Should putting
//!   one back fail as well, that site keeps jumping to the program the writer meant to store:
//!   the writer then leaks one reference to it, so a site never jumps to freed code.
//!
//! The fast path (a CPU executing a site) takes no lock; it is ordered against the writer by
//! the host's text_poke serialization and the RCU grace period.
//!
//! [`PokedSlots`] is the protocol as one type: the slots and their poke table, generic over
//! what the slots hold and with the RCU domain passed in, so that `loom-tests/tests/poke.rs`
//! runs this exact code (slot writes, re-pointing, tracking) with model programs, a model JIT
//! image and a host whose text is loom atomics, against a CPU executing the site.

use crate::jit::JitImage;
use crate::prog::Prog;
use crate::sync::atomic::AtomicPtr;
use crate::sync::rcu::RcuDomain;
use crate::sync::{Arc, RcuSlots, SpinLock, SpinLockGuard};
use crate::{Errno, Result};
use alloc::vec::Vec;

/// What a direct tail-call site can jump to: a program, through its tail-call entry.
pub trait TailCallTarget: Send + Sync + 'static {
    /// Where a direct jump into it lands (past the prologue part a tail call skips); 0 for a
    /// program no site may jump to (an interpreted one).
    fn tail_call_target(&self) -> usize;
}

impl TailCallTarget for Prog {
    fn tail_call_target(&self) -> usize {
        Prog::tail_call_target(self)
    }
}

/// A prog_array's slots with their poke table: every write re-points the slot's direct sites
/// before it exchanges the slot, under the table's lock (see the module docs).
pub struct PokedSlots<P: TailCallTarget> {
    slots: RcuSlots<P>,
    pokes: PokeTab,
}

impl<P: TailCallTarget> PokedSlots<P> {
    /// `n` empty slots and no tracked sites (`ENOMEM` if the array can't be allocated).
    pub fn new(n: usize) -> Result<Self> {
        Ok(PokedSlots {
            slots: RcuSlots::new(n)?,
            pokes: PokeTab::new(),
        })
    }

    /// Number of slots.
    #[inline]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no slots at all.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The base of the slot array, which JIT'd tail calls index directly.
    #[inline]
    pub fn as_ptr(&self) -> *const AtomicPtr<P> {
        self.slots.as_ptr()
    }

    /// Fast path: the program in slot `index` (`< len()`), or null; valid until the caller's
    /// read-side section on the writers' domain ends.
    #[inline]
    pub fn get(&self, index: u32) -> *const P {
        self.slots.get(index as usize)
    }

    /// [`PokedSlots::get`] without the bounds check.
    ///
    /// # Safety
    /// `index < self.len()`.
    #[inline]
    pub unsafe fn get_unchecked(&self, index: u32) -> *const P {
        // SAFETY: the caller's promise is the one `RcuSlots::get_unchecked` needs.
        unsafe { self.slots.get_unchecked(index as usize) }
    }

    /// Writes slot `index` (`< len()`): re-points its direct sites to `new` (or to falling
    /// through), then exchanges the slot, whose old program is put after a grace period of
    /// `rcu`. Returns whether the slot held a program; emptying an empty slot does nothing.
    /// If a site cannot be re-pointed the slot is left as it was and the error returned.
    pub fn write(&self, rcu: &RcuDomain, index: u32, new: Option<Arc<P>>) -> Result<bool> {
        let pokes = self.pokes.lock();
        let cur = self.get(index);
        if cur.is_null() && new.is_none() {
            return Ok(false);
        }
        // SAFETY: the slot's program can't be put while we hold the poke lock.
        let old = unsafe { target_of(cur) };
        // Sites first, then the slot (whose old program is put after a grace period).
        pokes.repoint(index, old, new.as_ref())?;
        Ok(self.slots.xchg(rcu, index as usize, new))
    }

    /// Empties every slot (`bpf_fd_array_map_clear`). A slot whose sites can't be re-pointed
    /// keeps its program (and so stays safe to jump to).
    pub fn clear(&self, rcu: &RcuDomain) {
        let pokes = self.pokes.lock();
        for i in 0..self.slots.len() {
            let p = self.get(i as u32);
            if p.is_null() {
                continue;
            }
            // SAFETY: as in `write`.
            let old = unsafe { target_of(p) };
            if pokes.repoint::<P>(i as u32, old, None).is_ok() {
                self.slots.xchg(rcu, i, None);
            }
        }
    }

    /// Tracks site `site` of `image`, which names slot `index` (`< len()`), pointing it at the
    /// slot's current program (`map_poke_track` + `bpf_tail_call_direct_fixup`). The image
    /// must stay alive until [`PokedSlots::untrack`] forgets it.
    pub fn track(&self, image: &dyn JitImage, site: usize, index: u32) -> Result {
        let mut pokes = self.pokes.lock();
        // SAFETY: as in `write`.
        let target = unsafe { target_of(self.get(index)) };
        pokes.track(image, site, index, target)
    }

    /// Forgets every site of `image` (`map_poke_untrack`); called before the image is freed.
    pub fn untrack(&self, image: &dyn JitImage) {
        self.pokes.lock().untrack(image);
    }

    /// Number of tracked direct sites.
    pub fn poke_sites(&self) -> usize {
        self.pokes.lock().len()
    }

    /// How many slots are filled.
    pub fn filled(&self) -> usize {
        self.slots.filled()
    }
}

/// A JIT image whose sites are tracked. Dereferenced only under the table's lock.
#[derive(Clone, Copy)]
struct ImagePtr(*const dyn JitImage);

// SAFETY: the image is `Send + Sync`; the pointer is only dereferenced under the table's lock
// while the owning program is alive (it untracks itself before its image is freed).
unsafe impl Send for ImagePtr {}
// SAFETY: as above.
unsafe impl Sync for ImagePtr {}

impl ImagePtr {
    fn same(&self, image: &dyn JitImage) -> bool {
        core::ptr::addr_eq(self.0, image as *const dyn JitImage)
    }
}

/// One tracked site: which image, which of its sites, which slot.
#[derive(Clone, Copy)]
struct Tracked {
    image: ImagePtr,
    site: usize,
    index: u32,
}

/// A prog_array's poke table and its lock.
struct PokeTab {
    sites: SpinLock<Vec<Tracked>>,
}

/// The poke table, locked: what slot writers hold while they re-patch and exchange.
struct PokeGuard<'a> {
    sites: SpinLockGuard<'a, Vec<Tracked>>,
}

impl PokeTab {
    fn new() -> PokeTab {
        PokeTab {
            sites: SpinLock::new(Vec::new()),
        }
    }

    /// Takes the table's lock (`poke_mutex`).
    fn lock(&self) -> PokeGuard<'_> {
        PokeGuard {
            sites: self.sites.lock(),
        }
    }
}

/// The tail-call target of the program `p` points to (0 for none or an interpreted program).
///
/// # Safety
/// `p` is null or a program that a prog_array slot holds while the caller holds that array's
/// poke lock (so no writer can put it).
unsafe fn target_of<P: TailCallTarget>(p: *const P) -> usize {
    if p.is_null() {
        0
    } else {
        // SAFETY: the caller's contract.
        unsafe { (*p).tail_call_target() }
    }
}

impl PokeGuard<'_> {
    /// Number of tracked sites.
    fn len(&self) -> usize {
        self.sites.len()
    }

    /// Points every site of slot `index` at `new`'s tail-call target (`None`: fall through).
    /// `old` is the target of the slot's current program. On failure puts the sites already
    /// poked back to `old` and returns the error (see the module docs for a failing put-back).
    fn repoint<P: TailCallTarget>(&self, index: u32, old: usize, new: Option<&Arc<P>>) -> Result {
        let target = new.map_or(0, |p| p.tail_call_target());
        if old == target {
            return Ok(());
        }
        let of_slot = || self.sites.iter().filter(move |t| t.index == index);
        for (n, t) in of_slot().enumerate() {
            // SAFETY: tracked images are alive while tracked, and we hold the lock.
            if let Err(e) = unsafe { (*t.image.0).poke(t.site, target) } {
                for u in of_slot().take(n) {
                    // SAFETY: as above.
                    if unsafe { (*u.image.0).poke(u.site, old) }.is_err() {
                        // The site still jumps to `new`'s code: keep that program forever.
                        if let Some(p) = new {
                            core::mem::forget(p.clone());
                        }
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Records site `site` of `image` for slot `index` and pokes it to `target`, the slot's
    /// current program (`bpf_tail_call_direct_fixup`).
    fn track(&mut self, image: &dyn JitImage, site: usize, index: u32, target: usize) -> Result {
        self.sites.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        if target != 0 {
            image.poke(site, target)?;
        }
        let image: *const (dyn JitImage + '_) = image;
        // SAFETY: only erases the borrow's lifetime from a raw pointer; the pointer is used
        // only while the image lives (module docs: untracked before it is freed).
        let image = unsafe {
            core::mem::transmute::<*const (dyn JitImage + '_), *const (dyn JitImage + 'static)>(
                image,
            )
        };
        // INVARIANT: the site now matches slot `index` (poked above under the lock, or already
        // falling through for an empty slot), and it is tracked from now on, so every later
        // writer of the slot, who takes this lock, re-points it before its `xchg`.
        self.sites.push(Tracked {
            image: ImagePtr(image),
            site,
            index,
        });
        Ok(())
    }

    /// Forgets every site of `image` (`prog_array_map_poke_untrack`).
    fn untrack(&mut self, image: &dyn JitImage) {
        self.sites.retain(|t| !t.image.same(image));
    }
}
