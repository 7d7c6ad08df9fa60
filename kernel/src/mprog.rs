//! Multi-program attachment: Linux's `bpf_mprog` (`kernel/bpf/mprog.c`,
//! `include/linux/bpf_mprog.h`), the ordered list of programs an attach point such as tcx runs.
//!
//! # Data model
//! * An [`Entry`] is what the fast path walks: 64 program pointers packed in cache lines
//!   (`bpf_mprog_fp`), ended by the first null, so at most [`MPROG_MAX_PROGS`] = 63 programs.
//! * A [`Bundle`] owns two entries (`a`/`b`) and, per entry, the control-path items
//!   (`bpf_mprog_cp`: the owning link, the flags, and the reference that keeps the program
//!   alive). Insert and delete build the inactive *peer* entry and swap to it, so a delete never
//!   allocates; replace writes the active entry in place.
//! * [`Bundle::commit`] waits for a grace period before the old entry is reused (cleared, which
//!   also puts the programs only it referenced) and before a replaced program is put, then bumps
//!   the revision (u64, starts at 1, +1 per successful change, unchanged on failure).
//! * A [`Hook`] is one attach point's published pointer to the active entry plus its bundle
//!   under a control lock: it creates the bundle on first attach and frees it when it empties
//!   (the next attach starts at revision 1 again, and a query with no bundle reports revision 1,
//!   count 0 — the final kernel's behaviour).
//! * A [`Dispatch`] (`mprog/dispatch.rs`) is an entry's programs compiled into one piece of
//!   native code with the attach point's return-code rules, hung off the entry it runs, so the
//!   entry swap publishes and retires it; a hook without a builder, or whose builder declines,
//!   is walked.
//!
//! Everything is generic over the program and link types ([`Obj`]) and takes the RCU domain as
//! an argument, so the loom models in `loom-tests/` check this exact code with model payloads;
//! tcx instantiates it with [`crate::Prog`] and [`crate::Link`] on [`crate::cpu::rcu`].
//!
//! # API level
//! The final kernel's rules are the default (`../shared/research/decisions.md` item 2): flags
//! `REPLACE`, `BEFORE`, `AFTER`, `ID`, `LINK`; conflicting rules and a full bundle give
//! `ERANGE`. The seed's (v2 patch) `FIRST`/`LAST` pins are an opt-in extension, see
//! [`MprogApi::FirstLast`] and `mprog/pins.rs`.

mod bundle;
mod dispatch;
mod hook;
mod pins;

pub use bundle::{Bundle, Change};
pub use dispatch::{Dispatch, DispatchBuild};
pub use hook::{Hook, ReadSection};

use crate::sync::Arc;
use crate::sync::atomic::{AtomicPtr, Ordering};
pub use crate::uapi::MprogFlags;
use alloc::boxed::Box;

/// Slots per entry (`BPF_MPROG_MAX`); the last stays null as the terminator.
pub const MPROG_MAX: usize = 64;
/// Programs a bundle holds at most (`bpf_mprog_max()`).
pub const MPROG_MAX_PROGS: usize = MPROG_MAX - 1;

/// The flags the final kernel accepts for mprog attach and detach (`BPF_F_ATTACH_MASK_MPROG`).
pub const FINAL_FLAGS: MprogFlags = MprogFlags::REPLACE
    .union(MprogFlags::BEFORE)
    .union(MprogFlags::AFTER)
    .union(MprogFlags::ID)
    .union(MprogFlags::LINK);

/// Which rules a bundle follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MprogApi {
    /// The merged kernel (v6.6 and the 2023 fixes). `FIRST`/`LAST` are unknown bits (`EINVAL`).
    #[default]
    Final,
    /// The final rules plus the seed's `FIRST`/`LAST` pins with their v2 semantics
    /// (kernel-scenarios.md §1.6, §1.8): a kbpf extension, off unless asked for.
    FirstLast,
}

impl MprogApi {
    /// The flags this level accepts.
    pub fn accepted(self) -> MprogFlags {
        match self {
            MprogApi::Final => FINAL_FLAGS,
            MprogApi::FirstLast => FINAL_FLAGS | MprogFlags::FIRST | MprogFlags::LAST,
        }
    }
}

/// An object a bundle holds: a program or a link, known by its id in queries.
pub trait Obj: Send + Sync + 'static {
    /// The id queries report.
    fn id(&self) -> u32;
}

impl Obj for crate::Prog {
    fn id(&self) -> u32 {
        crate::Prog::id(self)
    }
}

impl Obj for crate::Link {
    fn id(&self) -> u32 {
        crate::Link::id(self)
    }
}

/// The fast-path array (`bpf_mprog_entry`'s `fp_items`): program pointers, null-terminated.
/// Readers load each slot once (acquire) and stop at the first null. With a hook that compiles
/// its walks, the entry also owns the [`Dispatch`] running exactly these programs, or null.
#[repr(C, align(64))]
pub struct Entry<P> {
    fp: [AtomicPtr<P>; MPROG_MAX],
    disp: AtomicPtr<Dispatch>,
}

impl<P: Obj> Entry<P> {
    fn new() -> Self {
        Entry {
            fp: core::array::from_fn(|_| AtomicPtr::new(core::ptr::null_mut())),
            disp: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// The compiled walk of this entry, if any. Valid while the caller's read-side section
    /// lasts (the entry borrow is tied to it).
    #[inline]
    pub fn dispatch(&self) -> Option<&Dispatch> {
        // Acquire: pairs with the release swap that installed it, so its code is visible.
        let d = self.disp.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from `Box::into_raw` in `swap_dispatch`; the box is
        // dropped only after it left the entry and a grace period passed (module doc), and the
        // borrow of `self` is bounded by the reader's section.
        unsafe { d.as_ref() }
    }

    /// Installs `new` as this entry's dispatch and returns the one it replaces, which readers
    /// may still run: the caller drops it only after a grace period.
    fn swap_dispatch(&self, new: Option<Box<Dispatch>>) -> Option<Box<Dispatch>> {
        let new = new.map_or(core::ptr::null_mut(), Box::into_raw);
        // Release: a reader that loads the pointer sees the dispatch's contents.
        // INVARIANT: `disp` is null or an owned `Box<Dispatch>` that runs exactly this entry's
        // programs (or, just after an in-place replace, the ones before it, which the bundle
        // keeps alive until the same grace period as the returned box).
        let old = self.disp.swap(new, Ordering::AcqRel);
        // SAFETY: `old` is null or came from `Box::into_raw` above and is no longer reachable
        // from the entry, so this is its one owner.
        (!old.is_null()).then(|| unsafe { Box::from_raw(old) })
    }

    /// Slot `i`, or null past the end. Valid while the caller's read-side section lasts.
    #[inline]
    pub fn get(&self, i: usize) -> *const P {
        self.fp[i].load(Ordering::Acquire)
    }

    /// The programs in run order. The references live as long as the entry borrow, which
    /// [`Hook::read`] ties to a read-side section.
    #[inline]
    pub fn progs(&self) -> impl Iterator<Item = &P> + '_ {
        self.fp.iter().map_while(|slot| {
            let p = slot.load(Ordering::Acquire);
            // SAFETY: a non-null slot points at a program the bundle's control items keep alive
            // until a grace period after it left every published entry (module doc); the
            // borrow of `self` is bounded by the reader's section (`Hook::read`).
            unsafe { p.as_ref() }
        })
    }

    fn set(&self, i: usize, p: *const P, order: Ordering) {
        self.fp[i].store(p as *mut P, order);
    }
}

impl<P> Drop for Entry<P> {
    fn drop(&mut self) {
        let d = self.disp.load(Ordering::Acquire);
        if !d.is_null() {
            // SAFETY: an entry is dropped with its bundle, after it was unpublished and a grace
            // period passed; the pointer is the entry's own box (see `swap_dispatch`).
            drop(unsafe { Box::from_raw(d) });
        }
    }
}

/// A control-path item (`bpf_mprog_cp`): the reference keeping the program alive, its owning
/// link (none for a plain program attachment) and its flags (pins, with the extension).
pub struct Cp<P, L> {
    /// The program.
    pub prog: Arc<P>,
    /// The link that owns the attachment.
    pub link: Option<Arc<L>>,
    /// `FIRST`/`LAST` pins (extension only; always empty with [`MprogApi::Final`]).
    pub flags: MprogFlags,
}

impl<P, L> Clone for Cp<P, L> {
    fn clone(&self) -> Self {
        Cp {
            prog: self.prog.clone(),
            link: self.link.clone(),
            flags: self.flags,
        }
    }
}

/// The relative object of an attach or detach (`bpf_tuple` from `bpf_mprog_tuple_relative`):
/// a program, or a link and its program, or nothing.
pub struct Relative<P, L> {
    /// The relative program (a link's program when `link` is set).
    pub prog: Option<Arc<P>>,
    /// The relative link, with `BPF_F_LINK`.
    pub link: Option<Arc<L>>,
}

impl<P, L> Relative<P, L> {
    /// No relative object.
    pub fn none() -> Self {
        Relative {
            prog: None,
            link: None,
        }
    }
}

/// `BPF_PROG_QUERY`'s mprog part: inputs and outputs (`bpf_mprog_query`).
#[derive(Debug, Default)]
pub struct Query<'a> {
    /// Input: must be 0.
    pub query_flags: u32,
    /// Input: must be 0. Output: always 0.
    pub attach_flags: u32,
    /// Input: room in the arrays. Output: the total, even when the arrays were too small.
    pub count: u32,
    /// Output: the revision.
    pub revision: u64,
    /// Program ids, in run order.
    pub prog_ids: Option<&'a mut [u32]>,
    /// Per-program attach flags of plain attachments (0; pins with the extension).
    pub prog_attach_flags: Option<&'a mut [u32]>,
    /// Owning link ids (0 for a plain attachment).
    pub link_ids: Option<&'a mut [u32]>,
    /// Per-link attach flags (0; pins with the extension).
    pub link_attach_flags: Option<&'a mut [u32]>,
}

fn same<T>(a: &Arc<T>, b: &T) -> bool {
    core::ptr::eq(Arc::as_ptr(a), b)
}

fn same_opt<T>(a: Option<&Arc<T>>, b: Option<&T>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => same(a, b),
        _ => false,
    }
}
