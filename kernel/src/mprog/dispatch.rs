//! A compiled walk: native code that runs one entry's programs in order with the attach point's
//! return-code rules between them, published with the entry (the idea of Linux's
//! `bpf_dispatcher` in `kernel/bpf/dispatcher.c`, which turns XDP's indirect call of one program
//! into a direct call, taken to the whole mprog chain).
//!
//! A hook built with [`super::Hook::with_dispatch`] asks its builder for a [`Dispatch`] each time
//! its active entry changes (insert and delete fill the peer entry; replace rewrites the active
//! one in place). The dispatch hangs off the entry it was built for ([`super::Entry::dispatch`]),
//! so the RCU a/b swap that publishes the entry publishes it too, and the grace period that
//! frees the old entry's slots for reuse frees its dispatch. A replace swaps the active entry's
//! dispatch pointer and puts the old one with the replaced program, after the same grace period.
//! A builder that declines (an interpreted program in the chain, no JIT, no memory) leaves the
//! pointer null and readers walk the entry as before.

use alloc::boxed::Box;
use core::any::Any;

/// A compiled walk of one entry, and the code it owns.
pub struct Dispatch {
    func: usize,
    _code: Box<dyn Any + Send + Sync>,
}

impl Dispatch {
    /// The dispatch whose entry point is `func`, kept valid by `code` (a JIT image, or a loom
    /// model's stand-in), which is dropped with it.
    pub fn new(func: usize, code: Box<dyn Any + Send + Sync>) -> Dispatch {
        Dispatch { func, _code: code }
    }

    /// The entry point: for tcx, JIT'd code called like a program (`kbpf::jit::enter`).
    #[inline]
    pub fn func(&self) -> usize {
        self.func
    }
}

impl core::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Dispatch")
            .field("func", &self.func)
            .finish()
    }
}

/// Builds the dispatch of an entry from its programs in run order; `None` declines (readers
/// walk). Called on the control path, under the hook's lock.
pub type DispatchBuild<P> = fn(&[&P]) -> Option<Dispatch>;
