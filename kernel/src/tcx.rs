//! tcx: BPF multi-program attachment on network devices' ingress and egress (Linux
//! `kernel/bpf/tcx.c`, `include/net/tcx.h`, and `tcx_run` in `net/core/dev.c`).
//!
//! A [`Device`] is a small struct with an ifindex and one [`crate::mprog::Hook`] per direction, kept in
//! a netns-like registry whose lock plays rtnl: every control operation (attach, detach, query,
//! link create/update/detach/release, device removal) holds it, so it must never be taken inside
//! a read-side section ([`CpuGuard`]). The fast path ([`run`]) takes no lock: it walks the
//! published entry inside the caller's read-side section.
//!
//! Program types: the kernel attaches `SCHED_CLS` programs, whose context is an
//! [`crate::skb::SkBuff`] (their `__sk_buff` accesses are rewritten at load): run them with
//! [`run_skb`]. kbpf also accepts its raw-buffer type, which tests and benches run on a byte
//! buffer through [`run`]; every other type is `EINVAL`. A relative program must have the new
//! program's type (`EINVAL`), as in the kernel.
//!
//! Ids (`BPF_F_ID`): the kernel resolves any live object's id. Here an id is looked up among the
//! hook's own attachments, then among objects behind open handles.

mod attach;
mod link;

pub use attach::{AttachAttr, LinkCreateAttr, link_create, prog_attach, prog_detach, prog_query};

use crate::cpu::{CpuGuard, rcu};
use crate::mprog::{Hook, MprogApi};
use crate::prog::Prog;
use crate::sync::Arc;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::uapi::{AttachType, ProgType, tcx_action};
use crate::{Errno, Link, Result};
use alloc::collections::BTreeMap;
use core::ops::ControlFlow;

/// One direction's multi-program list.
pub type TcxHook = Hook<Prog, Link>;

/// Which hook of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `BPF_TCX_INGRESS`.
    Ingress,
    /// `BPF_TCX_EGRESS`.
    Egress,
}

impl Direction {
    /// The direction of a tcx attach type (`EINVAL` for any other).
    pub fn from_attach_type(t: AttachType) -> Result<Direction> {
        match t {
            AttachType::TcxIngress => Ok(Direction::Ingress),
            AttachType::TcxEgress => Ok(Direction::Egress),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The attach type naming it.
    pub fn attach_type(self) -> AttachType {
        match self {
            Direction::Ingress => AttachType::TcxIngress,
            Direction::Egress => AttachType::TcxEgress,
        }
    }
}

/// A network device as tcx sees it.
pub struct Device {
    ifindex: u32,
    ingress: TcxHook,
    egress: TcxHook,
    /// Set (under the registry lock) when the device is unregistered.
    gone: AtomicBool,
}

impl Device {
    /// Its ifindex.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The hook of one direction.
    pub fn hook(&self, dir: Direction) -> &TcxHook {
        match dir {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    /// Whether the device was removed.
    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }
}

impl core::fmt::Debug for Device {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Device")
            .field("ifindex", &self.ifindex)
            .field("ingress", &self.ingress)
            .field("egress", &self.egress)
            .finish()
    }
}

/// The device registry, whose lock is tcx's rtnl. A plain `spin::Mutex` (a static cannot hold the
/// loom facade's lock); the protocols it serializes are modelled at the `mprog::Hook` level.
static DEVS: spin::Mutex<BTreeMap<u32, Arc<Device>>> = spin::Mutex::new(BTreeMap::new());

fn rtnl() -> spin::MutexGuard<'static, BTreeMap<u32, Arc<Device>>> {
    DEVS.lock()
}

/// Registers a device following the final kernel's rules (`EINVAL` for ifindex 0, `EEXIST` if
/// taken).
pub fn dev_create(ifindex: u32) -> Result {
    dev_create_api(ifindex, MprogApi::Final)
}

/// Registers a device whose hooks follow `api` (the FIRST/LAST extension is opt-in per device).
pub fn dev_create_api(ifindex: u32, api: MprogApi) -> Result {
    if ifindex == 0 {
        return Err(Errno::EINVAL);
    }
    let mut devs = rtnl();
    if devs.contains_key(&ifindex) {
        return Err(Errno::EEXIST);
    }
    let dev = Device {
        ifindex,
        ingress: Hook::new(api),
        egress: Hook::new(api),
        gone: AtomicBool::new(false),
    };
    devs.insert(ifindex, Arc::new(dev));
    Ok(())
}

/// The device with `ifindex` (`ENODEV`). Not inside a read-side section: it takes the
/// registry lock.
pub fn dev_get(ifindex: u32) -> Result<Arc<Device>> {
    rtnl().get(&ifindex).cloned().ok_or(Errno::ENODEV)
}

/// Unregisters a device (`dev_tcx_uninstall`): plain attachments are dropped and their programs
/// put after a grace period; links stay, defunct (update → `ENOLINK`, detach a no-op, ifindex
/// 0), until their handles close.
pub fn dev_remove(ifindex: u32) -> Result {
    let mut devs = rtnl();
    let dev = devs.remove(&ifindex).ok_or(Errno::ENODEV)?;
    dev.gone.store(true, Ordering::Release);
    for dir in [Direction::Ingress, Direction::Egress] {
        for item in dev.hook(dir).clear(rcu()) {
            if let Some(link) = item.link {
                link.mark_defunct();
            }
        }
    }
    Ok(())
}

/// The ifindex a tcx link is attached to, 0 once defunct (link info's `ifindex`).
pub fn link_ifindex(link: &Link) -> u32 {
    if link.is_detached() {
        return 0;
    }
    let devs = rtnl();
    for dev in devs.values() {
        for dir in [Direction::Ingress, Direction::Egress] {
            let found = dev.hook(dir).with_bundle(|b| {
                b.is_some_and(|b| {
                    b.items()
                        .any(|c| c.link.as_ref().is_some_and(|l| core::ptr::eq(&**l, link)))
                })
            });
            if found {
                return dev.ifindex;
            }
        }
    }
    0
}

/// The verdict of a tcx walk (`enum tcx_action_base`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcxVerdict {
    /// Every program said next (or returned an unknown code): continue to the legacy tc path,
    /// which kbpf does not model, so the packet passes.
    Next,
    /// `TCX_PASS`.
    Pass,
    /// `TCX_DROP`.
    Drop,
    /// `TCX_REDIRECT`.
    Redirect,
}

/// Runs a device's programs in order (`tcx_run`): the walk stops at the first program that
/// returns anything but `TCX_NEXT`, and `tcx_action_code` turns codes other than PASS, DROP and
/// REDIRECT back into NEXT. The return value is R0's low 32 bits as a signed int. A program
/// fault (which a verified program cannot cause; one loaded on the trusted path can) drops the
/// packet.
#[inline]
pub fn run(dev: &Device, dir: Direction, guard: &mut CpuGuard, r1: u64, r2: u64) -> TcxVerdict {
    dev.hook(dir)
        .for_each(guard, |g, prog| match prog.run(g, r1, r2) {
            Ok(r0) => match r0 as u32 as i32 {
                tcx_action::NEXT => ControlFlow::Continue(()),
                tcx_action::PASS => ControlFlow::Break(TcxVerdict::Pass),
                tcx_action::DROP => ControlFlow::Break(TcxVerdict::Drop),
                tcx_action::REDIRECT => ControlFlow::Break(TcxVerdict::Redirect),
                _ => ControlFlow::Break(TcxVerdict::Next),
            },
            Err(_) => ControlFlow::Break(TcxVerdict::Drop),
        })
        .unwrap_or(TcxVerdict::Next)
}

/// Runs a device's programs on `skb` (the context `SCHED_CLS` programs are verified and
/// rewritten for): [`run`] with R1 pointing to it.
#[inline]
pub fn run_skb(
    dev: &Device,
    dir: Direction,
    guard: &mut CpuGuard,
    skb: &mut crate::skb::SkBuff,
) -> TcxVerdict {
    run(dev, dir, guard, skb.as_ctx(), 0)
}

/// Whether tcx takes programs of this type (see the module doc).
fn prog_type_ok(t: ProgType) -> bool {
    matches!(t, ProgType::SchedCls | ProgType::RawBuffer)
}
