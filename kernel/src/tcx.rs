//! tcx: BPF multi-program attachment on network devices' ingress and egress (Linux
//! `kernel/bpf/tcx.c`, `include/net/tcx.h`, and `tcx_run` in `net/core/dev.c`).
//!
//! A [`Device`] is a small struct with an ifindex and one [`crate::mprog::Hook`] per direction, kept in
//! a netns-like registry whose lock plays rtnl: every control operation (attach, detach, query,
//! link create/update/detach/release, device removal) holds it, so it must never be taken inside
//! a read-side section ([`CpuGuard`]). The fast path ([`run`]) takes no lock: it walks the
//! published entry inside the caller's read-side section. When every attached program is JIT'd,
//! each entry carries a dispatcher the JIT compiled for it ([`crate::mprog::Dispatch`]): one
//! piece of code that calls the programs directly, in order, with `tcx_run`'s return-code rule
//! between them, so a run is one call instead of a walk with an indirect call per program.
//! [`run`] calls it when the published entry has one and walks otherwise ([`run_walk`]); both
//! give the same verdict and run the same programs.
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
use crate::mprog::{Dispatch, Hook, MprogApi};
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
        ingress: Hook::with_dispatch(api, dispatch),
        egress: Hook::with_dispatch(api, dispatch),
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

/// The dispatcher of an entry whose programs are all JIT'd (the hooks' `DispatchBuild`).
fn dispatch(progs: &[&Prog]) -> Option<Dispatch> {
    let mut funcs = alloc::vec::Vec::new();
    funcs.try_reserve_exact(progs.len()).ok()?;
    for p in progs {
        match p.bpf_func() {
            0 => return None,
            f => funcs.push(f),
        }
    }
    let image = crate::jit::compile_dispatch(&funcs, tcx_action::NEXT)?;
    Some(Dispatch::new(image.entry(), alloc::boxed::Box::new(image)))
}

/// `tcx_action_code` applied to a walk's last R0: PASS, DROP and REDIRECT stop the walk with
/// their verdict, NEXT continues, anything else stops it and counts as NEXT.
#[inline]
fn action(r0: u64) -> ControlFlow<TcxVerdict> {
    match r0 as u32 as i32 {
        tcx_action::NEXT => ControlFlow::Continue(()),
        tcx_action::PASS => ControlFlow::Break(TcxVerdict::Pass),
        tcx_action::DROP => ControlFlow::Break(TcxVerdict::Drop),
        tcx_action::REDIRECT => ControlFlow::Break(TcxVerdict::Redirect),
        _ => ControlFlow::Break(TcxVerdict::Next),
    }
}

/// One program of the walk; a fault (which a verified program cannot cause; one loaded on the
/// trusted path can) drops the packet.
#[inline]
fn walk_one(g: &mut CpuGuard, prog: &Prog, r1: u64, r2: u64) -> ControlFlow<TcxVerdict> {
    match prog.run(g, r1, r2) {
        Ok(r0) => action(r0),
        Err(_) => ControlFlow::Break(TcxVerdict::Drop),
    }
}

/// Runs a device's programs in order (`tcx_run`): the walk stops at the first program that
/// returns anything but `TCX_NEXT`, and `tcx_action_code` turns codes other than PASS, DROP and
/// REDIRECT back into NEXT. The return value is R0's low 32 bits as a signed int. A program
/// fault (which a verified program cannot cause; one loaded on the trusted path can) drops the
/// packet. Through the entry's dispatcher when it has one: one run (one recursion-guard claim,
/// the tail-call counter reset before each program, as each program's own run resets it).
#[inline]
pub fn run(dev: &Device, dir: Direction, guard: &mut CpuGuard, r1: u64, r2: u64) -> TcxVerdict {
    dev.hook(dir)
        .run(
            guard,
            |g, d| run_dispatch(g, d, r1, r2),
            |g, prog| walk_one(g, prog, r1, r2),
        )
        .unwrap_or(TcxVerdict::Next)
}

/// [`run`] without the dispatcher: the walk, one program run at a time (what [`run`] does when
/// a program is interpreted; differential tests and benches compare the two).
pub fn run_walk(
    dev: &Device,
    dir: Direction,
    guard: &mut CpuGuard,
    r1: u64,
    r2: u64,
) -> TcxVerdict {
    dev.hook(dir)
        .for_each(guard, |g, prog| walk_one(g, prog, r1, r2))
        .unwrap_or(TcxVerdict::Next)
}

/// Whether `dev`'s published `dir` entry runs through a dispatcher.
pub fn dispatched(dev: &Device, dir: Direction) -> bool {
    let g = CpuGuard::enter();
    dev.hook(dir).dispatched(&g)
}

#[inline]
fn run_dispatch(g: &mut CpuGuard, d: &Dispatch, r1: u64, r2: u64) -> TcxVerdict {
    let Ok(state) = g.begin_run(r2) else {
        // A run nested in another on this CPU: refused, as each program's own run would be.
        return TcxVerdict::Drop;
    };
    // SAFETY: `d` is the published entry's dispatcher, code the JIT compiled for `enter`'s
    // convention that calls exactly the entry's programs (or, right after an in-place replace,
    // the previous ones); the caller's read-side section keeps it and every program it calls
    // alive (an entry's dispatcher and programs are put only after a grace period). We run on
    // the CPU `g` holds; the counter is this run's, valid and aligned.
    let r0 = unsafe {
        crate::jit::enter(
            d.func(),
            r1,
            r2,
            core::ptr::addr_of_mut!((*state).tail_call_cnt),
        )
    };
    g.end_run();
    match action(r0) {
        ControlFlow::Break(v) => v,
        ControlFlow::Continue(()) => TcxVerdict::Next,
    }
}

/// Runs a device's programs on `skb` (the context `SCHED_CLS` programs are verified and
/// rewritten for): [`run`] with R1 pointing to it, the skb marked as at ingress or not
/// (`tcx_set_ingress`: what `bpf_sk_assign` checks).
#[inline]
pub fn run_skb(
    dev: &Device,
    dir: Direction,
    guard: &mut CpuGuard,
    skb: &mut crate::skb::SkBuff,
) -> TcxVerdict {
    skb.tc_at_ingress = (dir == Direction::Ingress) as u8;
    run(dev, dir, guard, skb.as_ctx(), 0)
}

/// Whether tcx takes programs of this type (see the module doc).
fn prog_type_ok(t: ProgType) -> bool {
    matches!(t, ProgType::SchedCls | ProgType::RawBuffer)
}
