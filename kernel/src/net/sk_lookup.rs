//! `BPF_PROG_TYPE_SK_LOOKUP`: programs a netns runs on every listener or unconnected-socket
//! lookup, which may pick the socket (`bpf_sk_assign`) or refuse the packet.
//!
//! * [`ctx`]: `struct bpf_sk_lookup`, the kernel-side context, access rules and rewrite;
//! * [`assign`]: `bpf_sk_assign` and `bpf_sk_release` at run time;
//! * [`link`]: attachment through netns links (`kernel/bpf/net_namespace.c`);
//! * [`test_run`]: `BPF_PROG_TEST_RUN` (`bpf_prog_test_run_sk_lookup`);
//! * here: a netns's run array and how it runs (`BPF_PROG_SK_LOOKUP_RUN_ARRAY`,
//!   `include/linux/filter.h`; `bpf_sk_lookup_run_v4`/`_v6`).
//!
//! Programs run in attach order. Before each one, the most recent remembered selection is
//! put back into the context, so a later program sees it in `ctx->sk`. After a program: a
//! `SK_PASS` with a socket in the context makes that socket (and its no-reuseport flag) the
//! remembered selection; an `SK_DROP` notes that not all passed, and whatever it assigned is
//! forgotten. The verdict is `SK_PASS` with the remembered socket if any program left one,
//! else `SK_DROP` if any program dropped, else `SK_PASS` with no socket (the regular lookup
//! runs). A program that faults (only one loaded on the trusted path can) counts as a drop.

pub mod assign;
pub mod ctx;
pub mod link;
pub mod test_run;

use crate::cpu::CpuGuard;
use crate::prog::{Prog, RunBatch};
use crate::sync::atomic::{AtomicPtr, Ordering};
use crate::sync::rcu::RcuDomain;
use crate::sync::{Arc, SpinLock};
use alloc::boxed::Box;
use alloc::vec::Vec;
use ctx::SkLookupKern;

/// `SK_DROP`.
pub const SK_DROP: u32 = 0;
/// `SK_PASS`.
pub const SK_PASS: u32 = 1;

/// The most programs one netns may attach (`BPF_SK_LOOKUP` in `netns_bpf_max_progs`).
pub const MAX_PROGS: usize = 64;

/// Runs `progs` in order on `ctx` (see the module docs); `ctx.selected_sk` and
/// `ctx.no_reuseport` hold the result. Returns `SK_PASS` or `SK_DROP`.
#[inline]
pub fn run_progs<'p>(
    progs: impl IntoIterator<Item = &'p Prog>,
    batch: &mut RunBatch<'_>,
    ctx: &mut SkLookupKern,
) -> u32 {
    let mut selected = core::ptr::null();
    let mut no_reuseport = 0;
    let mut all_pass = true;
    for prog in progs {
        ctx.selected_sk = selected;
        ctx.no_reuseport = no_reuseport;
        match batch.run(prog, ctx.as_ctx()).map(|r0| r0 as u32) {
            Ok(SK_PASS) if !ctx.selected_sk.is_null() => {
                selected = ctx.selected_sk;
                no_reuseport = ctx.no_reuseport;
            }
            Ok(SK_DROP) | Err(_) => all_pass = false,
            Ok(_) => {}
        }
    }
    ctx.selected_sk = selected;
    ctx.no_reuseport = no_reuseport;
    if all_pass || !selected.is_null() {
        SK_PASS
    } else {
        SK_DROP
    }
}

/// The programs a netns runs, in order (`struct bpf_prog_array`).
pub(crate) struct RunArray {
    progs: Box<[Arc<Prog>]>,
}

/// A link's place in the run array.
pub(crate) struct Attached {
    /// The link's id (its identity).
    pub link_id: u32,
    /// Its program.
    pub prog: Arc<Prog>,
    /// Where the link points (cleared when the netns exits).
    pub slot: Arc<link::NetSlot>,
}

/// A netns's sk_lookup attachment: the published run array and the links behind it.
pub(crate) struct SkLookupHook {
    array: AtomicPtr<RunArray>,
    /// The links in attach order; changed under [`link::netns_bpf_lock`].
    pub(crate) links: SpinLock<Vec<Attached>>,
}

impl SkLookupHook {
    pub(crate) fn new() -> Self {
        SkLookupHook {
            array: AtomicPtr::new(core::ptr::null_mut()),
            links: SpinLock::new(Vec::new()),
        }
    }

    /// Fast path: runs the attached programs for a lookup of `t` (`bpf_sk_lookup_run_v4`/
    /// `_v6`). `None` when nothing is attached (the context is not even built); else the
    /// verdict, and the context with the selection in it.
    #[inline]
    pub fn run(&self, guard: &mut CpuGuard, t: &crate::net::Tuple) -> Option<(u32, SkLookupKern)> {
        // Acquire: pairs with the release store that published the array.
        let p = self.array.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        let mut ctx = SkLookupKern::new(t);
        // SAFETY: a published array is freed only after it was replaced and a grace period
        // passed; `guard` is a read-side section of `cpu::rcu()`, the writers' domain, and it
        // is mutably borrowed for this whole call, so the section outlives the borrow.
        let array = unsafe { &*p };
        let mut batch = match RunBatch::begin(guard) {
            Ok(b) => b,
            // A lookup inside a program run on this CPU: the programs can't run here.
            Err(_) => return Some((SK_PASS, ctx)),
        };
        let verdict = run_progs(array.progs.iter().map(|p| &**p), &mut batch, &mut ctx);
        Some((verdict, ctx))
    }

    /// Control path (netns bpf lock held): publishes the run array of the current links, or
    /// none, and frees the old one after a grace period.
    pub(crate) fn republish(&self, rcu: &RcuDomain, links: &[Attached]) {
        let new = if links.is_empty() {
            core::ptr::null_mut()
        } else {
            let progs: Box<[Arc<Prog>]> = links.iter().map(|a| a.prog.clone()).collect();
            Box::into_raw(Box::new(RunArray { progs }))
        };
        // INVARIANT: `array` is null or a fully built array; a replaced one is freed (and its
        // program references put) only after a grace period.
        let old = self.array.swap(new, Ordering::AcqRel);
        if !old.is_null() {
            let old = OldArray(old);
            rcu.call_rcu(Box::new(move || old.free()));
        }
    }

    /// The netns exits: every link is detached and goes defunct.
    pub(crate) fn pre_exit(&self) {
        link::pre_exit(self);
    }

    /// The ids of the attached programs in run order.
    pub(crate) fn prog_ids(&self) -> Vec<u32> {
        self.links.lock().iter().map(|a| a.prog.id()).collect()
    }
}

impl Drop for SkLookupHook {
    fn drop(&mut self) {
        let p = self.array.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: the hook is going away with its netns: no reader can reach it any more
            // (a lookup holds the netns), so the array is ours to free.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// A replaced run array on its way to `call_rcu`.
struct OldArray(*mut RunArray);

// SAFETY: the array is unpublished and owned by the callback alone.
unsafe impl Send for OldArray {}

impl OldArray {
    fn free(self) {
        // SAFETY: published by `republish` (a leaked `Box`), replaced, and a grace period has
        // passed: no reader holds it. Freed once, here.
        drop(unsafe { Box::from_raw(self.0) });
    }
}
