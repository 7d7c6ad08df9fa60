//! BPF links: a program attached to an attach point, owned by handles (Linux `struct bpf_link`
//! and `bpf_link_ops` in `include/linux/bpf.h`, the link syscalls in `kernel/bpf/syscall.c`).
//!
//! The generic object lives here; what attaching, detaching and replacing mean belongs to the
//! attach point, which implements [`LinkOps`] (tcx, sk_lookup, ... in their own rooms). The
//! generic rules:
//! - `link_detach` detaches once; later calls succeed and do nothing. A detached link is
//!   *defunct*: it keeps its handle and program, but `link_update` answers `ENOLINK`.
//! - Closing the last handle releases the link: if still attached, the attach point detaches it
//!   (`ops.release`); the object itself is freed after a grace period, since fast paths may
//!   still hold its program through the attach point's published entry.

use crate::cpu::call_rcu;
use crate::prog::Prog;
use crate::sync::{Arc, SpinLock};
use crate::uapi::AttachType;
use crate::{Errno, Result};
use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// What an attach point does for its links (`struct bpf_link_ops`).
pub trait LinkOps: Send + Sync {
    /// The last handle closed while the link was still attached: take it out of the attach
    /// point (`.release`). Must not fail.
    fn release(&self, link: &Link);
    /// `BPF_LINK_DETACH` on an attached link (`.detach`).
    fn detach(&self, link: &Link) -> Result;
    /// `BPF_LINK_UPDATE`: replace the link's program (`.update_prog`). `old`, when given, is
    /// the program the caller expects the link to hold. Attach points that can't replace
    /// programs keep the default, `EINVAL`.
    fn update_prog(&self, link: &Link, new: Arc<Prog>, old: Option<&Arc<Prog>>) -> Result {
        let _ = (link, new, old);
        Err(Errno::EINVAL)
    }
    /// The attach point's own state, for its link-info queries (what `.fill_link_info` reads).
    /// Attach points without any keep the default, `None`.
    fn as_any(&self) -> Option<&dyn core::any::Any> {
        None
    }
}

/// A BPF link.
pub struct Link {
    id: u32,
    attach_type: AttachType,
    prog: SpinLock<Arc<Prog>>,
    ops: Box<dyn LinkOps>,
    detached: AtomicBool,
    /// Open handles (like a map's `usercnt`).
    usercnt: AtomicU32,
}

impl Link {
    /// A new, attached link holding `prog` (`bpf_link_init` + `bpf_link_prime`).
    pub fn new(attach_type: AttachType, prog: Arc<Prog>, ops: Box<dyn LinkOps>) -> Link {
        Link {
            id: crate::id::next_link_id(),
            attach_type,
            prog: SpinLock::new(prog),
            ops,
            detached: AtomicBool::new(false),
            usercnt: AtomicU32::new(0),
        }
    }

    /// The link's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Its attach type.
    pub fn attach_type(&self) -> AttachType {
        self.attach_type
    }

    /// The program it holds.
    pub fn prog(&self) -> Arc<Prog> {
        self.prog.lock().clone()
    }

    /// Replaces the program the link holds, returning the previous one. For attach points,
    /// inside their `update_prog`, after they published the new program.
    pub fn set_prog(&self, new: Arc<Prog>) -> Arc<Prog> {
        core::mem::replace(&mut *self.prog.lock(), new)
    }

    /// The attach point's state ([`LinkOps::as_any`]).
    pub fn ops_any(&self) -> Option<&dyn core::any::Any> {
        self.ops.as_any()
    }

    /// Whether the link was detached (defunct).
    pub fn is_detached(&self) -> bool {
        self.detached.load(Ordering::Acquire)
    }

    /// Marks the link defunct without going through its ops: for attach points that drop
    /// their links themselves (a device going away).
    pub fn mark_defunct(&self) {
        self.detached.store(true, Ordering::Release);
    }

    /// `BPF_LINK_DETACH`: idempotent. On failure the link stays attached.
    pub fn detach(&self) -> Result {
        if self.is_detached() {
            return Ok(());
        }
        self.ops.detach(self)?;
        self.mark_defunct();
        Ok(())
    }

    /// `BPF_LINK_UPDATE`: `ENOLINK` once detached, else the attach point decides.
    pub fn update(&self, new: Arc<Prog>, old: Option<&Arc<Prog>>) -> Result {
        if self.is_detached() {
            return Err(Errno::ENOLINK);
        }
        self.ops.update_prog(self, new, old)
    }

    pub(crate) fn user_get(&self) {
        self.usercnt.fetch_add(1, Ordering::Relaxed);
    }

    /// A handle closed; the last one releases the link and frees it after a grace period.
    pub(crate) fn user_put(link: Arc<Link>) {
        if link.usercnt.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        if !link.detached.swap(true, Ordering::AcqRel) {
            link.ops.release(&link);
        }
        call_rcu(Box::new(move || drop(link)));
    }
}

impl core::fmt::Debug for Link {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Link")
            .field("id", &self.id)
            .field("attach_type", &self.attach_type)
            .field("prog", &self.prog.lock().id())
            .field("detached", &self.is_detached())
            .finish()
    }
}
