//! The bundle: two entries and their control items, and the attach/detach/query algorithms of
//! the final kernel (`bpf_mprog_attach`, `bpf_mprog_detach`, `bpf_mprog_query` in
//! `kernel/bpf/mprog.c`, with the 2023 fixes for the size cap, the empty entry and the missing
//! entry). Errno order is the kernel's; see kernel-scenarios.md §1.2–§1.4.
//!
//! Positions follow the kernel's encoding: every rule (REPLACE, BEFORE, AFTER) computes a target
//! on its own and all rules present must agree (`ERANGE` otherwise). BEFORE yields the
//! relative's index − 1 (−1 = "prepend" without a relative), AFTER its index + 1 (`total` =
//! "append"); [`NONE`] stands for "no rule gave a position".

use super::{
    Cp, Dispatch, Entry, MPROG_MAX, MPROG_MAX_PROGS, MprogApi, MprogFlags, Obj, Query, Relative,
    pins, same, same_opt,
};
use crate::sync::Arc;
use crate::sync::atomic::Ordering;
use crate::sync::rcu::RcuDomain;
use crate::{Errno, Result};
use alloc::boxed::Box;

/// No rule produced a position (the kernel's `-ERANGE` sentinel).
pub(super) const NONE: isize = isize::MIN;

/// What a successful attach or detach changed, for the attach point to publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A slot of the active entry was rewritten; nothing to publish.
    InPlace,
    /// The peer entry became the active one: publish [`Bundle::active_entry`].
    Swapped,
}

/// A `bpf_mprog_bundle`: the entry pair, the control items, the revision and the item a
/// replace or delete leaves to put after the grace period.
///
/// As in the kernel, only the fast-path entries are doubled: the control items (`cp_items`)
/// are one array, kept in run order and shifted in place under the attach point's lock, since
/// no reader looks at them. A swap therefore moves no reference counts: it copies pointers.
///
/// Control path only: the attach point serializes every call on its lock. After each
/// successful [`Bundle::attach`]/[`Bundle::detach`] it publishes the active entry if it changed
/// and calls [`Bundle::commit`] before the next change.
pub struct Bundle<P, L> {
    entries: Box<[Entry<P>; 2]>,
    cp: [Option<Cp<P, L>>; MPROG_MAX],
    active: usize,
    revision: u64,
    /// The item a replace or delete took out, which readers of the old entry may still run:
    /// dropped by [`Bundle::commit`] after the grace period (`bundle->ref`).
    put: Option<Cp<P, L>>,
    /// The dispatch an in-place replace took off the active entry, which readers may still run:
    /// dropped by [`Bundle::commit`] with `put`.
    put_dispatch: Option<Box<Dispatch>>,
    api: MprogApi,
}

impl<P: Obj, L: Obj> Bundle<P, L> {
    /// An empty bundle at revision 1 (`bpf_mprog_create`).
    pub fn new(api: MprogApi) -> Self {
        Bundle {
            entries: Box::new([Entry::new(), Entry::new()]),
            cp: core::array::from_fn(|_| None),
            active: 0,
            revision: 1,
            put: None,
            put_dispatch: None,
            api,
        }
    }

    /// The rules this bundle follows.
    pub fn api(&self) -> MprogApi {
        self.api
    }

    /// The revision (`bpf_mprog_revision`).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The active entry, the one to publish.
    pub fn active_entry(&self) -> &Entry<P> {
        &self.entries[self.active]
    }

    /// The control items, in run order (the active entry's order).
    pub fn items(&self) -> impl Iterator<Item = &Cp<P, L>> + '_ {
        self.cp.iter().map_while(Option::as_ref)
    }

    /// Number of programs (`bpf_mprog_total`).
    pub fn total(&self) -> usize {
        self.items().count()
    }

    pub(super) fn item(&self, i: usize) -> &Cp<P, L> {
        self.cp[i].as_ref().expect("index below total")
    }

    /// Whether `prog` is attached (`bpf_mprog_exists`).
    pub fn contains(&self, prog: &P) -> bool {
        self.items().any(|c| same(&c.prog, prog))
    }

    /// The slot of `prog` owned by `link` (`bpf_mprog_pos_exact`): `EBUSY` if another owner
    /// holds it, `ENOENT` if it is not attached.
    fn pos_exact(&self, prog: &P, link: Option<&L>) -> Result<isize> {
        for (i, c) in self.items().enumerate() {
            if same(&c.prog, prog) {
                return if same_opt(c.link.as_ref(), link) {
                    Ok(i as isize)
                } else {
                    Err(Errno::EBUSY)
                };
            }
        }
        Err(Errno::ENOENT)
    }

    /// The relative's index plus `delta`, or `none` without a relative
    /// (`bpf_mprog_pos_before`/`_after`). A link relative must own the slot.
    pub(super) fn pos_rel(&self, rel: &Relative<P, L>, delta: isize, none: isize) -> Result<isize> {
        let Some(rp) = rel.prog.as_deref() else {
            return Ok(none);
        };
        for (i, c) in self.items().enumerate() {
            if same(&c.prog, rp)
                && (rel.link.is_none() || same_opt(c.link.as_ref(), rel.link.as_deref()))
            {
                return Ok(i as isize + delta);
            }
        }
        Err(Errno::ENOENT)
    }

    /// Applies BEFORE and AFTER on top of `idx` (from REPLACE or the program itself).
    fn pos_rules(&self, mut idx: isize, flags: MprogFlags, rel: &Relative<P, L>) -> Result<isize> {
        let total = self.total() as isize;
        if flags.contains(MprogFlags::BEFORE) {
            let t = self.pos_rel(rel, -1, -1)?;
            if idx != NONE && t != idx {
                return Err(Errno::ERANGE);
            }
            idx = t;
        }
        if flags.contains(MprogFlags::AFTER) {
            let t = self.pos_rel(rel, 1, total)?;
            if idx != NONE && t != idx {
                return Err(Errno::ERANGE);
            }
            idx = t;
        }
        Ok(idx)
    }

    /// `bpf_mprog_attach`: inserts `new` (owned by `link`, if any) or, with `REPLACE`, puts it in
    /// `old`'s slot. `resolve` turns the request's relative fd/id into objects; it runs after
    /// the revision and duplicate checks, as in the kernel.
    ///
    /// Like the kernel's, it does not check for unknown flag bits: `BPF_PROG_ATTACH` masks them
    /// before (the attach point's job) and `BPF_LINK_CREATE` passes them through, so they only
    /// count where no rule gave a position (any flag then is `EINVAL`). `FIRST`/`LAST` are pins
    /// only with [`MprogApi::FirstLast`]; otherwise they are such unknown bits.
    pub fn attach(
        &mut self,
        new: Arc<P>,
        link: Option<Arc<L>>,
        old: Option<&P>,
        flags: MprogFlags,
        expected_revision: u64,
        resolve: impl FnOnce(&Self) -> Result<Relative<P, L>>,
    ) -> Result<Change> {
        if expected_revision != 0 && expected_revision != self.revision {
            return Err(Errno::ESTALE);
        }
        if self.contains(&new) {
            return Err(Errno::EEXIST);
        }
        let rel = resolve(self)?;
        let pins = self.pins(flags);
        if !pins.is_empty() && !flags.contains(MprogFlags::REPLACE) {
            let pos = pins::head_tail(self, flags, &rel)?;
            self.insert(pos, new, link, pins);
            return Ok(Change::Swapped);
        }
        let total = self.total();
        let mut idx = NONE;
        if flags.contains(MprogFlags::REPLACE) {
            let old = old.ok_or(Errno::ENOENT)?;
            idx = self.pos_exact(old, link.as_deref())?;
        } else if total == MPROG_MAX_PROGS {
            return Err(Errno::ERANGE);
        }
        idx = self.pos_rules(idx, flags, &rel)?;
        if idx == NONE {
            if rel.prog.is_some() || !flags.is_empty() {
                return Err(Errno::EINVAL);
            }
            idx = total as isize;
        }
        if idx >= MPROG_MAX_PROGS as isize {
            return Err(Errno::ERANGE);
        }
        if flags.contains(MprogFlags::REPLACE) {
            let idx = idx as usize;
            let pins = if link.is_some() {
                // A link update keeps the slot's pins.
                self.item(idx).flags
            } else {
                pins::replace_flags(self, idx, flags)?
            };
            self.replace(idx, new, link, pins);
            return Ok(Change::InPlace);
        }
        // `bpf_mprog_insert`: BEFORE targets the slot before the one it takes.
        let mut pos = if idx == total as isize {
            total
        } else if flags.contains(MprogFlags::BEFORE) {
            (idx + 1) as usize
        } else {
            idx as usize
        };
        if self.api == MprogApi::FirstLast {
            pos = pins::clamp_insert(self, pos, &rel)?;
        }
        self.insert(pos, new, link, MprogFlags::empty());
        Ok(Change::Swapped)
    }

    /// The `FIRST`/`LAST` pins `flags` ask for: none unless the bundle has the extension.
    fn pins(&self, flags: MprogFlags) -> MprogFlags {
        match self.api {
            MprogApi::Final => MprogFlags::empty(),
            MprogApi::FirstLast => flags & (MprogFlags::FIRST | MprogFlags::LAST),
        }
    }

    /// `bpf_mprog_detach`: removes `prog` (owned by `link`, if any), or with no program the slot
    /// the BEFORE/AFTER rules select (the last one without rules). Unknown flag bits are the
    /// caller's to refuse, as for [`Bundle::attach`].
    pub fn detach(
        &mut self,
        prog: Option<&P>,
        link: Option<&L>,
        flags: MprogFlags,
        expected_revision: u64,
        resolve: impl FnOnce(&Self) -> Result<Relative<P, L>>,
    ) -> Result<Change> {
        if flags.contains(MprogFlags::REPLACE) {
            return Err(Errno::EINVAL);
        }
        if expected_revision != 0 && expected_revision != self.revision {
            return Err(Errno::ESTALE);
        }
        let total = self.total();
        if total == 0 {
            return Err(Errno::ENOENT);
        }
        let rel = resolve(self)?;
        let slot = if !self.pins(flags).is_empty() {
            pins::detach_slot(self, prog, flags, &rel)?
        } else {
            let mut idx = NONE;
            if let Some(p) = prog {
                idx = self.pos_exact(p, link)?;
            }
            idx = self.pos_rules(idx, flags, &rel)?;
            if idx == NONE {
                if rel.prog.is_some() || !flags.is_empty() {
                    return Err(Errno::EINVAL);
                }
                idx = total as isize;
            }
            if idx >= MPROG_MAX_PROGS as isize {
                return Err(Errno::ERANGE);
            }
            // `bpf_mprog_fetch`: "before the head" is the head, "after the tail" the tail.
            idx.clamp(0, total as isize - 1) as usize
        };
        let c = self.item(slot);
        if c.link.is_some() && link.is_none() {
            return Err(Errno::EBUSY);
        }
        self.delete(slot);
        Ok(Change::Swapped)
    }

    /// Inserts `new` at `pos` and makes the peer entry, rebuilt in the new order, active
    /// (`bpf_mprog_insert`). The peer is clean (cleared by the last commit, after a grace
    /// period), so plain stores suffice: the attach point's release store publishes them.
    fn insert(&mut self, pos: usize, new: Arc<P>, link: Option<Arc<L>>, flags: MprogFlags) {
        let total = self.total();
        self.cp[total] = Some(Cp {
            prog: new,
            link,
            flags,
        });
        self.cp[pos..=total].rotate_right(1);
        self.swap_to_peer(total + 1);
    }

    /// Removes slot `slot` and makes the peer entry, rebuilt without it, active
    /// (`bpf_mprog_delete`). Allocates nothing; the removed item is put by
    /// [`Bundle::commit`], after readers of the old entry are gone.
    fn delete(&mut self, slot: usize) {
        let total = self.total();
        debug_assert!(self.put.is_none(), "delete before commit");
        self.put = self.cp[slot].take();
        self.cp[slot..total].rotate_left(1);
        self.swap_to_peer(total - 1);
    }

    /// Fills the (clean) peer entry with the first `n` control items' programs and makes it
    /// the active one.
    fn swap_to_peer(&mut self, n: usize) {
        let p = 1 - self.active;
        debug_assert!(
            self.entries[p].get(0).is_null(),
            "peer reused before commit"
        );
        for (j, c) in self.cp[..n].iter().enumerate() {
            let c = c.as_ref().expect("control items are dense");
            self.entries[p].set(j, Arc::as_ptr(&c.prog), Ordering::Relaxed);
        }
        // INVARIANT: the new active entry names exactly the first `n` control items' programs,
        // each kept alive by its control item (`cp`) for as long as the entry names it. Its
        // slots are written (relaxed) before the attach point publishes the entry with a
        // release store, so a reader that acquires the entry sees them. The entry left inactive
        // may still have readers until `commit`'s grace period; only then is it cleared and
        // reused.
        self.active = p;
    }

    /// Replace in place (`bpf_mprog_replace`): readers see the old or the new program in the
    /// slot; the old one is put by [`Bundle::commit`].
    fn replace(&mut self, idx: usize, new: Arc<P>, link: Option<Arc<L>>, flags: MprogFlags) {
        // Release: pairs with the fast path's acquire load of the slot.
        self.entries[self.active].set(idx, Arc::as_ptr(&new), Ordering::Release);
        let old = self.cp[idx].replace(Cp {
            prog: new,
            link,
            flags,
        });
        debug_assert!(self.put.is_none(), "replace before commit");
        self.put = old;
    }

    /// Installs `d` as the active entry's dispatch (the compiled walk of exactly its programs;
    /// `None` to have readers walk), after a change and before the attach point publishes.
    /// The dispatch it replaces (after an in-place replace) is dropped by the next
    /// [`Bundle::commit`], after the grace period.
    pub fn install_dispatch(&mut self, d: Option<Box<Dispatch>>) {
        let old = self.entries[self.active].swap_dispatch(d);
        debug_assert!(
            old.is_none() || self.put_dispatch.is_none(),
            "dispatch replaced twice before commit"
        );
        if old.is_some() {
            self.put_dispatch = old;
        }
    }

    /// `bpf_mprog_commit` after the attach point published: waits for a grace period of `rcu`,
    /// then clears the inactive entry (its dispatch included), puts the replaced or deleted
    /// item and a replaced dispatch, and bumps the revision.
    pub fn commit(&mut self, rcu: &RcuDomain) {
        rcu.synchronize();
        let p = 1 - self.active;
        for i in 0..MPROG_MAX {
            if self.entries[p].get(i).is_null() {
                break;
            }
            self.entries[p].set(i, core::ptr::null(), Ordering::Relaxed);
        }
        drop(self.entries[p].swap_dispatch(None));
        self.put = None;
        self.put_dispatch = None;
        self.revision += 1;
    }

    /// `bpf_mprog_query` on `bundle`, or on a target with none (revision 1, count 0).
    pub fn query(bundle: Option<&Self>, q: &mut Query<'_>) -> Result {
        if q.query_flags != 0 || q.attach_flags != 0 {
            return Err(Errno::EINVAL);
        }
        let (revision, total) = bundle.map_or((1, 0), |b| (b.revision, b.total()));
        let room = q.count as usize;
        q.revision = revision;
        q.count = total as u32;
        let Some(bundle) = bundle else { return Ok(()) };
        if room == 0 || total == 0 || q.prog_ids.is_none() {
            return Ok(());
        }
        let n = room.min(total);
        let short = |s: &Option<&mut [u32]>| s.as_ref().is_some_and(|s| s.len() < n);
        if short(&q.prog_ids)
            || short(&q.prog_attach_flags)
            || short(&q.link_ids)
            || short(&q.link_attach_flags)
        {
            return Err(Errno::EFAULT);
        }
        let pins = bundle.api == MprogApi::FirstLast;
        for (i, c) in bundle.items().take(n).enumerate() {
            let link_id = c.link.as_ref().map_or(0, |l| l.id());
            let flags = if pins { c.flags.bits() } else { 0 };
            let (pf, lf) = if link_id == 0 { (flags, 0) } else { (0, flags) };
            if let Some(ids) = q.prog_ids.as_deref_mut() {
                ids[i] = c.prog.id();
            }
            if let Some(ids) = q.link_ids.as_deref_mut() {
                ids[i] = link_id;
            }
            if let Some(f) = q.prog_attach_flags.as_deref_mut() {
                f[i] = pf;
            }
            if let Some(f) = q.link_attach_flags.as_deref_mut() {
                f[i] = lf;
            }
        }
        if room < total {
            Err(Errno::ENOSPC)
        } else {
            Ok(())
        }
    }

    /// Takes every item out (device removal): for the attach point, after it unpublished the
    /// entry and waited for a grace period. Leaves the bundle empty.
    pub fn drain(&mut self) -> alloc::vec::Vec<Cp<P, L>> {
        for e in 0..2 {
            for i in 0..MPROG_MAX {
                self.entries[e].set(i, core::ptr::null(), Ordering::Relaxed);
            }
            drop(self.entries[e].swap_dispatch(None));
        }
        self.put = None;
        self.put_dispatch = None;
        self.cp.iter_mut().map_while(Option::take).collect()
    }
}
