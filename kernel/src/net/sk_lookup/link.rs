//! sk_lookup attachment to a netns (`kernel/bpf/net_namespace.c`): links only, several per
//! netns in attach order, at most [`MAX_PROGS`].
//!
//! * `BPF_PROG_ATTACH` / `BPF_PROG_DETACH` with `BPF_SK_LOOKUP`: `EINVAL` (only links).
//! * `BPF_LINK_CREATE` (`netns_bpf_link_create`): the program (`EBADF`/`EINVAL`), its type and
//!   expected attach type (`EINVAL`), non-zero flags (`EINVAL`), the netns handle (`EBADF`,
//!   `EINVAL` when it is not a netns), then `E2BIG` when the netns has [`MAX_PROGS`] links.
//! * detach and release take the link's program out of the run array; the link goes defunct
//!   (its netns reads 0). `BPF_LINK_UPDATE` (`bpf_netns_link_update_prog`): `EPERM` when an
//!   expected old program is not the link's, `EINVAL` for another program type, `ENOLINK`
//!   once detached or the netns exited; the program is replaced in place.
//! * `BPF_PROG_QUERY` (`netns_bpf_prog_query`): `query_flags` must be 0 (`EINVAL`); the ids
//!   in run order, `ENOSPC` when the room given is smaller (filled as far as it goes).
//! * the netns exiting detaches every link (`netns_bpf_pernet_pre_exit`).
//!
//! One lock serializes all of it across netns, like the kernel's `netns_bpf_mutex`.

use super::{Attached, MAX_PROGS, SkLookupHook};
use crate::cpu::rcu;
use crate::net::netns::Net;
use crate::prog::Prog;
use crate::sync::Arc;
use crate::syscall::{self, Fd, Object};

use crate::uapi::{AttachType, ProgType};
use crate::{Errno, Link, LinkOps, Result};
use alloc::boxed::Box;

static NETNS_BPF: spin::Mutex<()> = spin::Mutex::new(());

/// The lock all netns attachments change under (`netns_bpf_mutex`).
pub(crate) fn netns_bpf_lock() -> spin::MutexGuard<'static, ()> {
    NETNS_BPF.lock()
}

/// Where a netns link is attached (`bpf_netns_link::net`): its netns, `None` once detached or
/// the netns exited. Shared by the link and its place in the run array, so an exiting netns
/// can clear it.
pub(crate) struct NetSlot(spin::Mutex<Option<Arc<Net>>>);

impl NetSlot {
    /// Forgets the netns (the link goes defunct).
    pub(crate) fn clear(&self) {
        self.0.lock().take();
    }
}

/// A netns link's attach point (`struct bpf_netns_link`).
struct NetnsLink {
    net: Arc<NetSlot>,
}

impl NetnsLink {
    /// Takes `link` out of its netns's run array. Caller holds the netns bpf lock.
    fn take_out(&self, link: &Link) {
        let Some(net) = self.net.0.lock().take() else {
            return;
        };
        let hook = &net.sk_lookup;
        let mut links = hook.links.lock();
        links.retain(|a| a.link_id != link.id());
        hook.republish(rcu(), &links);
    }
}

impl LinkOps for NetnsLink {
    fn release(&self, link: &Link) {
        let _g = netns_bpf_lock();
        self.take_out(link);
    }

    fn detach(&self, link: &Link) -> Result {
        let _g = netns_bpf_lock();
        self.take_out(link);
        Ok(())
    }

    fn update_prog(&self, link: &Link, new: Arc<Prog>, old: Option<&Arc<Prog>>) -> Result {
        let cur = link.prog();
        if old.is_some_and(|o| !Arc::ptr_eq(o, &cur)) {
            return Err(Errno::EPERM);
        }
        if new.prog_type() != cur.prog_type() {
            return Err(Errno::EINVAL);
        }
        let _g = netns_bpf_lock();
        let guard = self.net.0.lock();
        let Some(net) = guard.as_ref().filter(|n| n.is_alive()) else {
            return Err(Errno::ENOLINK);
        };
        let hook = &net.sk_lookup;
        let mut links = hook.links.lock();
        let slot = links
            .iter_mut()
            .find(|a| a.link_id == link.id())
            .ok_or(Errno::ENOLINK)?;
        slot.prog = new.clone();
        hook.republish(rcu(), &links);
        drop(links);
        link.set_prog(new);
        Ok(())
    }

    fn as_any(&self) -> Option<&dyn core::any::Any> {
        Some(self)
    }
}

/// Attaches `prog` to `net` through a new link (`netns_bpf_link_attach`): `E2BIG` at
/// [`MAX_PROGS`]. The program's type and attach type are the caller's to check.
pub fn attach(net: &Arc<Net>, prog: Arc<Prog>) -> Result<Link> {
    let _g = netns_bpf_lock();
    if !net.is_alive() {
        return Err(Errno::ENOLINK);
    }
    let hook = &net.sk_lookup;
    let mut links = hook.links.lock();
    if links.len() >= MAX_PROGS {
        return Err(Errno::E2BIG);
    }
    links.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
    let slot = Arc::new(NetSlot(spin::Mutex::new(Some(net.clone()))));
    let ops = NetnsLink { net: slot.clone() };
    let link = Link::new(AttachType::SkLookup, prog.clone(), Box::new(ops));
    links.push(Attached {
        link_id: link.id(),
        prog,
        slot,
    });
    hook.republish(rcu(), &links);
    Ok(link)
}

/// Every link of an exiting netns is detached and goes defunct.
pub(super) fn pre_exit(hook: &SkLookupHook) {
    let _g = netns_bpf_lock();
    let mut links = hook.links.lock();
    for a in links.iter() {
        a.slot.clear();
    }
    links.clear();
    hook.republish(rcu(), &links);
}

/// The inode number of the netns a link is attached to; 0 once detached or the netns exited,
/// or for another kind of link (link info's `netns_ino`, `bpf_netns_link_fill_info`).
pub fn link_netns_ino(link: &Link) -> u32 {
    let Some(ops) = link.ops_any().and_then(|a| a.downcast_ref::<NetnsLink>()) else {
        return 0;
    };
    let _g = netns_bpf_lock();
    ops.net.0.lock().as_ref().map_or(0, |n| n.ino())
}

/// The netns behind handle `fd` (`get_net_ns_by_fd`): `EBADF` if none, `EINVAL` if it is
/// not a netns.
pub fn net_get(fd: Fd) -> Result<Arc<Net>> {
    match syscall::get(fd)? {
        Object::Netns(n) => Ok(n),
        _ => Err(Errno::EINVAL),
    }
}

/// `BPF_LINK_CREATE` for `BPF_SK_LOOKUP` (see the module docs for the order of checks).
pub fn link_create(prog_fd: Fd, target_fd: Fd, flags: u32) -> Result<Fd> {
    let prog = syscall::prog_get(prog_fd)?;
    if prog.prog_type() != ProgType::SkLookup
        || prog.expected_attach_type() != Some(AttachType::SkLookup)
    {
        return Err(Errno::EINVAL);
    }
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let net = net_get(target_fd)?;
    let link = attach(&net, prog)?;
    syscall::link_install(link)
}

/// `BPF_PROG_ATTACH` / `BPF_PROG_DETACH` with `BPF_SK_LOOKUP`: sk_lookup takes links only.
pub fn prog_attach(_prog_fd: Fd, _target_fd: Fd) -> Result {
    Err(Errno::EINVAL)
}

/// What `BPF_PROG_QUERY` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryResult {
    /// `prog_cnt`: how many programs are attached.
    pub prog_cnt: u32,
    /// `attach_flags`: always 0.
    pub attach_flags: u32,
}

/// `BPF_PROG_QUERY` for `BPF_SK_LOOKUP`: fills `prog_ids` with the ids in run order.
pub fn prog_query(target_fd: Fd, query_flags: u32, prog_ids: &mut [u32]) -> Result<QueryResult> {
    if query_flags != 0 {
        return Err(Errno::EINVAL);
    }
    let net = net_get(target_fd)?;
    let _g = netns_bpf_lock();
    let ids = net.sk_lookup.prog_ids();
    let res = QueryResult {
        prog_cnt: ids.len() as u32,
        attach_flags: 0,
    };
    if prog_ids.is_empty() {
        return Ok(res);
    }
    let n = ids.len().min(prog_ids.len());
    prog_ids[..n].copy_from_slice(&ids[..n]);
    if n < ids.len() {
        return Err(Errno::ENOSPC);
    }
    Ok(res)
}
