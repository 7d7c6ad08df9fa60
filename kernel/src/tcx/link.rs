//! tcx links (`tcx_link_ops` in `kernel/bpf/tcx.c`): the [`LinkOps`] of a link attached to a
//! device's hook. All operations hold the registry lock (rtnl).
//!
//! * release (last handle closed) and detach take the link's program out of the hook; detach is
//!   idempotent (the generic `Link` skips it once defunct), and a device that went away has
//!   nothing left to take out.
//! * update (`tcx_link_update`): `ENOLINK` once the device is gone or the link detached,
//!   `EPERM` if an expected old program is not the link's, a no-op for the same program,
//!   otherwise a replace in place through mprog (`EEXIST` if the new program is already on the
//!   hook, `EINVAL` for another program type), revision + 1.

use super::{Device, Direction, rtnl};
use crate::cpu::rcu;
use crate::mprog::{MprogFlags, Relative};
use crate::prog::Prog;
use crate::sync::Arc;
use crate::{Errno, Link, LinkOps, Result};

/// A tcx link's attach point: its device and direction.
pub(super) struct TcxLink {
    dev: Arc<Device>,
    dir: Direction,
}

impl TcxLink {
    pub(super) fn new(dev: Arc<Device>, dir: Direction) -> Self {
        TcxLink { dev, dir }
    }

    /// Takes `link` out of the hook (`tcx_link_release`). Caller holds rtnl.
    fn take_out(&self, link: &Link) -> Result {
        let prog = link.prog();
        self.dev.hook(self.dir).detach(
            rcu(),
            Some(&prog),
            Some(link),
            MprogFlags::empty(),
            0,
            |_| Ok(Relative::none()),
        )
    }

    /// The bundle's reference to `link` (the mprog items own the link's identity).
    fn attached(&self, link: &Link) -> Option<Arc<Link>> {
        self.dev.hook(self.dir).with_bundle(|b| {
            b?.items()
                .filter_map(|c| c.link.as_ref())
                .find(|l| core::ptr::eq(&***l, link))
                .cloned()
        })
    }
}

impl LinkOps for TcxLink {
    fn release(&self, link: &Link) {
        let _rtnl = rtnl();
        if !self.dev.is_gone() {
            // ENOENT: a concurrent detach took it out first; nothing else can fail.
            let _ = self.take_out(link);
        }
    }

    fn detach(&self, link: &Link) -> Result {
        let _rtnl = rtnl();
        if self.dev.is_gone() || link.is_detached() {
            return Ok(());
        }
        match self.take_out(link) {
            Err(Errno::ENOENT) => Ok(()),
            r => r,
        }
    }

    fn update_prog(&self, link: &Link, new: Arc<Prog>, old: Option<&Arc<Prog>>) -> Result {
        let _rtnl = rtnl();
        if self.dev.is_gone() || link.is_detached() {
            return Err(Errno::ENOLINK);
        }
        let cur = link.prog();
        if old.is_some_and(|o| !Arc::ptr_eq(o, &cur)) {
            return Err(Errno::EPERM);
        }
        if Arc::ptr_eq(&new, &cur) {
            return Ok(());
        }
        let this = self.attached(link).ok_or(Errno::ENOENT)?;
        let rel = cur.clone();
        self.dev.hook(self.dir).attach(
            rcu(),
            new.clone(),
            Some(this),
            Some(&cur),
            MprogFlags::REPLACE | MprogFlags::ID,
            0,
            |_| {
                if rel.prog_type() != new.prog_type() {
                    return Err(Errno::EINVAL);
                }
                Ok(Relative {
                    prog: Some(rel.clone()),
                    link: None,
                })
            },
        )?;
        link.set_prog(new);
        Ok(())
    }
}
