//! One attach point's bundle and its RCU-published active entry: what tcx keeps per device and
//! direction (`tcx_entry_fetch_or_create`, `tcx_entry_update`, `tcx_entry_sync`,
//! `tcx_entry_free` in `include/net/tcx.h` / `kernel/bpf/tcx.c`), made generic.
//!
//! Writers serialize on the hook's lock (the kernel piggy-backs on rtnl), pass the RCU domain
//! their readers use, and follow the kernel's sequence: change the bundle, publish the new
//! active entry (release store), wait for a grace period and commit. A bundle that empties is
//! unpublished and freed after that grace period; the next attach creates a new one, at
//! revision 1 again. Readers load the published pointer once (acquire) inside a read-side section of the same
//! domain and walk the entry — or, on a hook built [`Hook::with_dispatch`], call the entry's
//! compiled walk ([`super::Dispatch`]) when it has one ([`Hook::run`]). The dispatch is built
//! after the bundle changed and before the entry is published; building never fails the
//! change (a declined build leaves the entry to be walked).

use super::{
    Bundle, Change, Cp, Dispatch, DispatchBuild, Entry, MPROG_MAX, MprogApi, MprogFlags, Obj,
    Query, Relative,
};
use crate::cpu::CpuGuard;
use crate::sync::atomic::{AtomicPtr, Ordering};
use crate::sync::rcu::{RcuDomain, RcuReadGuard};
use crate::sync::{Arc, SpinLock};
use crate::{Errno, Result};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ops::ControlFlow;

/// Proof of an open RCU read-side section.
///
/// # Safety
/// An implementor must only exist while its thread is inside a read-side section, which lasts
/// at least as long as the value is borrowed. A hook's readers must use the domain its writers
/// pass.
pub unsafe trait ReadSection {}

// SAFETY: the guard is the open section (`rcu_read_lock` until it drops).
unsafe impl ReadSection for RcuReadGuard<'_> {}
// SAFETY: a `CpuGuard` holds a read-side section of `cpu::rcu()` for its whole life.
unsafe impl ReadSection for CpuGuard {}

/// An attach point's multi-program list.
pub struct Hook<P: Obj, L: Obj> {
    /// The active entry of `bundle`, or null when there is none.
    active: AtomicPtr<Entry<P>>,
    bundle: SpinLock<Option<Box<Bundle<P, L>>>>,
    api: MprogApi,
    build: Option<DispatchBuild<P>>,
}

impl<P: Obj, L: Obj> Hook<P, L> {
    /// An attach point with nothing attached, following `api`'s rules; readers walk.
    pub fn new(api: MprogApi) -> Self {
        Hook {
            active: AtomicPtr::new(core::ptr::null_mut()),
            bundle: SpinLock::new(None),
            api,
            build: None,
        }
    }

    /// An attach point whose entries carry the dispatch `build` makes of their programs.
    pub fn with_dispatch(api: MprogApi, build: DispatchBuild<P>) -> Self {
        Hook {
            build: Some(build),
            ..Hook::new(api)
        }
    }

    /// The rules this hook follows.
    pub fn api(&self) -> MprogApi {
        self.api
    }

    /// Fast path: the published entry, valid while `section` is borrowed.
    #[inline]
    pub fn read<'a, S: ReadSection>(&'a self, section: &'a S) -> Option<&'a Entry<P>> {
        let _ = section;
        // Acquire: pairs with the release store that published the entry and its slots.
        let p = self.active.load(Ordering::Acquire);
        // SAFETY: a published entry lives in a bundle that is freed only after it was
        // unpublished and a grace period passed; `section` is a read-side section of the
        // writers' domain (`ReadSection` contract) that outlives the returned borrow.
        unsafe { p.as_ref() }
    }

    /// Fast path: calls `f` on each program in order, with the section mutably available
    /// (to run programs on a held CPU), until it breaks. `None` if nothing is attached or no
    /// program broke.
    #[inline]
    pub fn for_each<S: ReadSection, R>(
        &self,
        section: &mut S,
        mut f: impl FnMut(&mut S, &P) -> ControlFlow<R>,
    ) -> Option<R> {
        // Acquire: as in `read`.
        let p = self.active.load(Ordering::Acquire);
        // SAFETY: as in `read`: `section` is mutably borrowed for this whole call, so the
        // read-side section cannot end while the entry is in use.
        let entry = unsafe { p.as_ref() }?;
        for prog in entry.progs() {
            if let ControlFlow::Break(r) = f(section, prog) {
                return Some(r);
            }
        }
        None
    }

    /// Fast path: calls `dispatch` with the published entry's compiled walk if it has one,
    /// else `f` on each program in order until it breaks (as [`Hook::for_each`]). `None` if
    /// nothing is attached or (walking) no program broke.
    #[inline]
    pub fn run<S: ReadSection, R>(
        &self,
        section: &mut S,
        dispatch: impl FnOnce(&mut S, &Dispatch) -> R,
        mut f: impl FnMut(&mut S, &P) -> ControlFlow<R>,
    ) -> Option<R> {
        // Acquire: as in `read`.
        let p = self.active.load(Ordering::Acquire);
        // SAFETY: as in `for_each`.
        let entry = unsafe { p.as_ref() }?;
        if let Some(d) = entry.dispatch() {
            return Some(dispatch(section, d));
        }
        for prog in entry.progs() {
            if let ControlFlow::Break(r) = f(section, prog) {
                return Some(r);
            }
        }
        None
    }

    /// Whether the published entry has a compiled walk (for tests and benches).
    pub fn dispatched<S: ReadSection>(&self, section: &S) -> bool {
        self.read(section).is_some_and(|e| e.dispatch().is_some())
    }

    /// Builds and installs the active entry's dispatch, if this hook compiles its walks.
    fn redispatch(&self, b: &mut Bundle<P, L>) {
        let Some(build) = self.build else { return };
        let mut progs: [Option<&P>; MPROG_MAX] = [None; MPROG_MAX];
        let mut n = 0;
        for (slot, p) in progs.iter_mut().zip(b.active_entry().progs()) {
            *slot = Some(p);
            n += 1;
        }
        let mut list = alloc::vec::Vec::new();
        let d = if list.try_reserve_exact(n).is_ok() {
            list.extend(progs[..n].iter().flatten());
            build(&list)
        } else {
            None
        };
        drop(list);
        b.install_dispatch(d.map(Box::new));
    }

    fn publish(&self, b: Option<&Bundle<P, L>>) {
        let p = b.map_or(core::ptr::null(), |b| b.active_entry() as *const Entry<P>);
        // Release: the entry's slots and the programs behind them are visible to readers that
        // load the pointer.
        // INVARIANT: `active` is null or the bundle's active entry, fully written; the bundle
        // (and so the entry) is freed only after it is unpublished here and a grace period
        // has passed, so a reader inside a section may use what it loaded until the section
        // ends.
        self.active.store(p as *mut Entry<P>, Ordering::Release);
    }

    /// Attach (`tcx_prog_attach`/`tcx_link_prog_attach` around `bpf_mprog_attach`): creates
    /// the bundle if needed, and frees it again if the attach fails.
    #[allow(clippy::too_many_arguments)]
    pub fn attach(
        &self,
        rcu: &RcuDomain,
        new: Arc<P>,
        link: Option<Arc<L>>,
        old: Option<&P>,
        flags: MprogFlags,
        expected_revision: u64,
        resolve: impl FnOnce(&Bundle<P, L>) -> Result<Relative<P, L>>,
    ) -> Result {
        let mut slot = self.bundle.lock();
        let created = slot.is_none();
        let b = slot.get_or_insert_with(|| Box::new(Bundle::new(self.api)));
        match b.attach(new, link, old, flags, expected_revision, resolve) {
            Ok(change) => {
                self.redispatch(b);
                if change == Change::Swapped {
                    self.publish(Some(b));
                }
                b.commit(rcu);
                Ok(())
            }
            Err(e) => {
                if created {
                    *slot = None;
                }
                Err(e)
            }
        }
    }

    /// Detach (`tcx_prog_detach`, `tcx_link_release` around `bpf_mprog_detach`): `ENOENT`
    /// without a bundle; frees the bundle when it empties.
    pub fn detach(
        &self,
        rcu: &RcuDomain,
        prog: Option<&P>,
        link: Option<&L>,
        flags: MprogFlags,
        expected_revision: u64,
        resolve: impl FnOnce(&Bundle<P, L>) -> Result<Relative<P, L>>,
    ) -> Result {
        let mut slot = self.bundle.lock();
        let b = slot.as_mut().ok_or(Errno::ENOENT)?;
        b.detach(prog, link, flags, expected_revision, resolve)?;
        let empty = b.total() == 0;
        if !empty {
            self.redispatch(b);
        }
        self.publish(if empty { None } else { Some(b) });
        b.commit(rcu);
        if empty {
            *slot = None;
        }
        Ok(())
    }

    /// Query (`bpf_mprog_query`; revision 1 and count 0 without a bundle).
    pub fn query(&self, q: &mut Query<'_>) -> Result {
        let slot = self.bundle.lock();
        Bundle::query(slot.as_deref(), q)
    }

    /// Calls `f` on the bundle (none when nothing is attached), under the hook's lock.
    pub fn with_bundle<R>(&self, f: impl FnOnce(Option<&Bundle<P, L>>) -> R) -> R {
        f(self.bundle.lock().as_deref())
    }

    /// Removes everything (`dev_tcx_uninstall`): unpublishes, waits for a grace period, frees
    /// the bundle and returns its items for the attach point to put or mark defunct.
    pub fn clear(&self, rcu: &RcuDomain) -> Vec<Cp<P, L>> {
        let mut slot = self.bundle.lock();
        let Some(mut b) = slot.take() else {
            return Vec::new();
        };
        self.publish(None);
        rcu.synchronize();
        b.drain()
    }
}

impl<P: Obj, L: Obj> core::fmt::Debug for Hook<P, L> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.with_bundle(|b| {
            f.debug_struct("Hook")
                .field("api", &self.api)
                .field("revision", &b.map_or(1, |b| b.revision()))
                .field("count", &b.map_or(0, |b| b.total()))
                .finish()
        })
    }
}
