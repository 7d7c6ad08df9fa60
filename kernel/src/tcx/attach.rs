//! The tcx side of `BPF_PROG_ATTACH`, `BPF_PROG_DETACH`, `BPF_PROG_QUERY` and `BPF_LINK_CREATE`
//! (`bpf_prog_attach`/`bpf_prog_detach`/`link_create` in `kernel/bpf/syscall.c`, then
//! `tcx_prog_attach`, `tcx_prog_detach`, `tcx_prog_query`, `tcx_link_attach` in
//! `kernel/bpf/tcx.c`, and `bpf_mprog_tuple_relative` in `kernel/bpf/mprog.c`), taking handles
//! as the syscall facade does.
//!
//! Check order, as Linux 6.18 (`docs/kernel-compat.md` lists each check with its function):
//! * attach/detach: unknown `attach_flags` bits (`EINVAL`, `bpf_prog_attach`'s
//!   `BPF_F_ATTACH_MASK_MPROG`), the program (`EBADF`, or `EINVAL` for another type), the device
//!   (`ENODEV`), on attach with REPLACE the old program (`EBADF`/`EINVAL`), then the mprog rules.
//! * link create: the program, the device, then the mprog rules with the flags as given: the
//!   kernel's `link_create` does not mask them, so an unknown bit only counts where mprog asks
//!   whether any flag is set.
//! * query: `query_flags` other than `BPF_F_QUERY_EFFECTIVE` (`EINVAL`), the device, then
//!   `bpf_mprog_query` (`EINVAL` for any query or attach flag).
//!
//! `FIRST`/`LAST` are unknown bits except on a device created with the extension, where attach
//! and detach accept them. Handles 0–2 are the standard streams, never a program or link
//! (`EINVAL`, as for the kernel).

use super::link::TcxLink;
use super::{Direction, prog_type_ok, rtnl};
use crate::cpu::rcu;
use crate::mprog::{Bundle, MprogApi, MprogFlags, Query, Relative};
use crate::prog::Prog;
use crate::sync::Arc;
use crate::syscall::{self, Fd, Object};
use crate::uapi::{AttachType, ProgType};
use crate::{Errno, Link, Result};
use alloc::boxed::Box;

/// `BPF_PROG_ATTACH` / `BPF_PROG_DETACH` attributes for tcx.
#[derive(Clone, Copy, Debug)]
pub struct AttachAttr {
    /// `target_ifindex`.
    pub target_ifindex: u32,
    /// `attach_bpf_fd`: the program (0 on detach = none).
    pub attach_bpf_fd: Fd,
    /// `attach_type`: `TcxIngress` or `TcxEgress`.
    pub attach_type: AttachType,
    /// `attach_flags`: [`MprogFlags`] bits.
    pub attach_flags: u32,
    /// `replace_bpf_fd`: the program a `REPLACE` replaces.
    pub replace_bpf_fd: Fd,
    /// `relative_fd` or `relative_id` (with `BPF_F_ID`).
    pub relative_fd: u32,
    /// `expected_revision` (0 = unchecked).
    pub expected_revision: u64,
}

impl AttachAttr {
    /// No program, no flags, no relative, on `target_ifindex`'s `attach_type` hook.
    pub fn new(target_ifindex: u32, attach_type: AttachType) -> Self {
        AttachAttr {
            target_ifindex,
            attach_bpf_fd: 0,
            attach_type,
            attach_flags: 0,
            replace_bpf_fd: 0,
            relative_fd: 0,
            expected_revision: 0,
        }
    }
}

/// `BPF_LINK_CREATE` attributes for tcx.
#[derive(Clone, Copy, Debug)]
pub struct LinkCreateAttr {
    /// `prog_fd`.
    pub prog_fd: Fd,
    /// `target_ifindex`.
    pub target_ifindex: u32,
    /// `attach_type`.
    pub attach_type: AttachType,
    /// `flags`: [`MprogFlags`] bits (`REPLACE` always fails: a new link has no old program).
    pub flags: u32,
    /// `tcx.relative_fd` or `tcx.relative_id`.
    pub relative_fd: u32,
    /// `tcx.expected_revision`.
    pub expected_revision: u64,
}

/// `BPF_F_QUERY_EFFECTIVE`, the one query flag `bpf_prog_query` lets through to the attach point.
const QUERY_EFFECTIVE: u32 = 1;

/// `attach_flags` of `BPF_PROG_ATTACH`/`BPF_PROG_DETACH`, checked before anything else as
/// `bpf_prog_attach`/`bpf_prog_detach` do: bits outside `BPF_F_ATTACH_MASK_MPROG` are `EINVAL`,
/// except `FIRST`/`LAST` when the target device has the extension.
fn attach_flags(target_ifindex: u32, bits: u32) -> Result<MprogFlags> {
    let flags = MprogFlags::from_bits_retain(bits);
    if MprogApi::Final.accepted().contains(flags) {
        return Ok(flags);
    }
    let api = rtnl()
        .get(&target_ifindex)
        .map_or(MprogApi::Final, |d| d.hook(Direction::Ingress).api());
    if api.accepted().contains(flags) {
        Ok(flags)
    } else {
        Err(Errno::EINVAL)
    }
}

fn tcx_prog(fd: Fd) -> Result<Arc<Prog>> {
    let prog = syscall::prog_get(fd)?;
    if !prog_type_ok(prog.prog_type()) {
        return Err(Errno::EINVAL);
    }
    Ok(prog)
}

fn prog_by_id(b: &Bundle<Prog, Link>, id: u32) -> Result<Arc<Prog>> {
    if id == 0 {
        return Err(Errno::ENOENT);
    }
    if let Some(c) = b.items().find(|c| c.prog.id() == id) {
        return Ok(c.prog.clone());
    }
    match syscall::find_object(&|o| matches!(o, Object::Prog(p) if p.id() == id)) {
        Some(Object::Prog(p)) => Ok(p),
        _ => Err(Errno::ENOENT),
    }
}

fn link_by_id(b: &Bundle<Prog, Link>, id: u32) -> Result<Arc<Link>> {
    if id == 0 {
        return Err(Errno::ENOENT);
    }
    if let Some(l) = b
        .items()
        .filter_map(|c| c.link.as_ref())
        .find(|l| l.id() == id)
    {
        return Ok(l.clone());
    }
    match syscall::find_object(&|o| matches!(o, Object::Link(l) if l.id() == id)) {
        Some(Object::Link(l)) => Ok(l),
        _ => Err(Errno::ENOENT),
    }
}

/// `bpf_mprog_tuple_relative`: the relative object named by `id_or_fd` under `flags`
/// (REPLACE ignored), of type `ty` when one is known.
pub(super) fn resolve(
    b: &Bundle<Prog, Link>,
    flags: MprogFlags,
    id_or_fd: u32,
    ty: Option<ProgType>,
) -> Result<Relative<Prog, Link>> {
    let by_id = flags.contains(MprogFlags::ID);
    let check = |p: &Prog| {
        if ty.is_some_and(|t| p.prog_type() != t) {
            Err(Errno::EINVAL)
        } else {
            Ok(())
        }
    };
    if flags.contains(MprogFlags::LINK) {
        let link = if by_id {
            link_by_id(b, id_or_fd)?
        } else if id_or_fd != 0 {
            syscall::link_get(id_or_fd)?
        } else {
            return Err(Errno::EINVAL);
        };
        let prog = link.prog();
        check(&prog)?;
        return Ok(Relative {
            prog: Some(prog),
            link: Some(link),
        });
    }
    if !by_id && id_or_fd == 0 {
        return Ok(Relative::none());
    }
    let prog = if by_id {
        prog_by_id(b, id_or_fd)?
    } else {
        syscall::prog_get(id_or_fd)?
    };
    check(&prog)?;
    Ok(Relative {
        prog: Some(prog),
        link: None,
    })
}

/// `BPF_PROG_ATTACH` on a tcx hook.
pub fn prog_attach(attr: &AttachAttr) -> Result {
    let dir = Direction::from_attach_type(attr.attach_type)?;
    let flags = attach_flags(attr.target_ifindex, attr.attach_flags)?;
    let prog = tcx_prog(attr.attach_bpf_fd)?;
    let devs = rtnl();
    let dev = devs.get(&attr.target_ifindex).ok_or(Errno::ENODEV)?;
    let old = if flags.contains(MprogFlags::REPLACE) {
        let old = syscall::prog_get(attr.replace_bpf_fd)?;
        if old.prog_type() != prog.prog_type() {
            return Err(Errno::EINVAL);
        }
        Some(old)
    } else {
        None
    };
    let ty = prog.prog_type();
    dev.hook(dir).attach(
        rcu(),
        prog,
        None,
        old.as_deref(),
        flags,
        attr.expected_revision,
        |b| resolve(b, flags - MprogFlags::REPLACE, attr.relative_fd, Some(ty)),
    )
}

/// `BPF_PROG_DETACH` from a tcx hook; `attach_bpf_fd` 0 names no program.
pub fn prog_detach(attr: &AttachAttr) -> Result {
    let dir = Direction::from_attach_type(attr.attach_type)?;
    let flags = attach_flags(attr.target_ifindex, attr.attach_flags)?;
    let prog = match attr.attach_bpf_fd {
        0 => None,
        fd => Some(tcx_prog(fd)?),
    };
    let devs = rtnl();
    let dev = devs.get(&attr.target_ifindex).ok_or(Errno::ENODEV)?;
    let ty = prog.as_ref().map(|p| p.prog_type());
    dev.hook(dir).detach(
        rcu(),
        prog.as_deref(),
        None,
        flags,
        attr.expected_revision,
        |b| resolve(b, flags, attr.relative_fd, ty),
    )
}

/// `BPF_PROG_QUERY` on a tcx hook (`ENODEV` for an unknown device; revision 1 and count 0
/// when nothing is attached).
pub fn prog_query(target_ifindex: u32, attach_type: AttachType, q: &mut Query<'_>) -> Result {
    if q.query_flags & !QUERY_EFFECTIVE != 0 {
        return Err(Errno::EINVAL);
    }
    let dir = Direction::from_attach_type(attach_type)?;
    let devs = rtnl();
    let dev = devs.get(&target_ifindex).ok_or(Errno::ENODEV)?;
    dev.hook(dir).query(q)
}

/// `BPF_LINK_CREATE` for tcx (`tcx_link_attach`): a new link, attached with the same placement
/// rules as a program; returns its handle.
pub fn link_create(attr: &LinkCreateAttr) -> Result<Fd> {
    let flags = MprogFlags::from_bits_retain(attr.flags);
    let prog = tcx_prog(attr.prog_fd)?;
    let dir = Direction::from_attach_type(attr.attach_type)?;
    let devs = rtnl();
    let dev = devs.get(&attr.target_ifindex).ok_or(Errno::ENODEV)?;
    let ops = TcxLink::new(dev.clone(), dir);
    let fd = syscall::link_install(Link::new(attr.attach_type, prog.clone(), Box::new(ops)))?;
    let link = syscall::link_get(fd)?;
    let ty = prog.prog_type();
    let res = dev.hook(dir).attach(
        rcu(),
        prog,
        Some(link.clone()),
        None,
        flags,
        attr.expected_revision,
        |b| resolve(b, flags - MprogFlags::REPLACE, attr.relative_fd, Some(ty)),
    );
    match res {
        Ok(()) => Ok(fd),
        Err(e) => {
            // Never attached: nothing for the release to take out (`bpf_link_cleanup`).
            link.mark_defunct();
            drop(link);
            let _ = syscall::close(fd);
            Err(e)
        }
    }
}
