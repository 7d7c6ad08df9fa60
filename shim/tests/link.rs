//! The generic link object through the syscall facade, with a minimal attach point: a hook
//! that runs the one program published in an RCU slot (the shape tcx and sk_lookup take).

use kbpf::cpu::{CpuGuard, rcu};
use kbpf::insn::{exit, mov64_imm};
use kbpf::sync::{Arc, RcuSlots};
use kbpf::syscall::{self, Fd, ObjInfo};
use kbpf::uapi::{AttachType, ProgType};
use kbpf::{Errno, Link, LinkOps, Prog, ProgLoadAttr};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Hook {
    slot: RcuSlots<Prog>,
    releases: AtomicUsize,
}

impl Hook {
    fn new() -> Arc<Hook> {
        Arc::new(Hook {
            slot: RcuSlots::new(1).unwrap(),
            releases: AtomicUsize::new(0),
        })
    }

    /// The fast path: run whatever is attached, or `None`.
    fn run(&self) -> Option<u64> {
        let mut g = CpuGuard::enter();
        let p = self.slot.get(0);
        // SAFETY: loaded inside the read-side section `g` opened; RcuSlots defers puts.
        let prog = unsafe { p.as_ref() }?;
        Some(prog.run(&mut g, 0, 0).unwrap())
    }
}

struct HookLink(Arc<Hook>);

impl LinkOps for HookLink {
    fn release(&self, _: &Link) {
        self.0.releases.fetch_add(1, Ordering::Relaxed);
        self.0.slot.xchg(rcu(), 0, None);
    }

    fn detach(&self, _: &Link) -> kbpf::Result {
        self.0.slot.xchg(rcu(), 0, None);
        Ok(())
    }

    fn update_prog(&self, link: &Link, new: Arc<Prog>, old: Option<&Arc<Prog>>) -> kbpf::Result {
        if old.is_some_and(|o| !Arc::ptr_eq(o, &link.prog())) {
            return Err(Errno::EPERM);
        }
        self.0.slot.xchg(rcu(), 0, Some(new.clone()));
        link.set_prog(new);
        Ok(())
    }
}

fn ret(n: i32) -> Fd {
    syscall::prog_load(&ProgLoadAttr::new(
        ProgType::RawBuffer,
        &[mov64_imm(0, n), exit()],
    ))
    .unwrap()
}

fn attach(hook: &Arc<Hook>, prog: Fd) -> Fd {
    let p = syscall::prog_get(prog).unwrap();
    hook.slot.xchg(rcu(), 0, Some(p.clone()));
    syscall::link_install(Link::new(
        AttachType::Xdp,
        p,
        Box::new(HookLink(hook.clone())),
    ))
    .unwrap()
}

fn info(fd: Fd) -> kbpf::syscall::LinkInfo {
    match syscall::obj_get_info(fd).unwrap() {
        ObjInfo::Link(l) => l,
        other => panic!("not a link: {other:?}"),
    }
}

fn prog_id(fd: Fd) -> u32 {
    syscall::prog_get(fd).unwrap().id()
}

#[test]
fn update_detach_and_defunct_links() {
    kbpf_shim::host::install();
    let hook = Hook::new();
    let (a, b) = (ret(1), ret(2));
    let link = attach(&hook, a);
    assert_eq!(hook.run(), Some(1));
    assert_eq!(info(link).prog_id, prog_id(a));
    syscall::link_update(link, b, Some(a)).unwrap();
    assert_eq!(hook.run(), Some(2));
    assert_eq!(
        syscall::link_update(link, a, Some(a)),
        Err(Errno::EPERM),
        "holds b, not a"
    );
    assert_eq!(syscall::link_update(link, a, Some(999)), Err(Errno::EBADF));
    assert_eq!(
        syscall::link_update(a, b, None),
        Err(Errno::EINVAL),
        "a program is not a link"
    );
    assert_eq!(info(link).prog_id, prog_id(b));

    syscall::link_detach(link).unwrap();
    assert_eq!(hook.run(), None);
    syscall::link_detach(link).expect("detach is idempotent");
    assert_eq!(syscall::link_update(link, a, None), Err(Errno::ENOLINK));
    assert!(info(link).detached);
    syscall::close(link).unwrap();
    assert_eq!(
        hook.releases.load(Ordering::Relaxed),
        0,
        "a detached link has nothing to release"
    );
}

#[test]
fn closing_the_last_handle_releases_and_frees_after_a_grace_period() {
    kbpf_shim::host::install();
    let hook = Hook::new();
    let p = ret(7);
    let link = attach(&hook, p);
    let prog = syscall::prog_get(p).unwrap();
    assert_eq!(hook.run(), Some(7));
    let before = Arc::strong_count(&prog);
    syscall::close(link).unwrap();
    assert_eq!(hook.releases.load(Ordering::Relaxed), 1);
    assert_eq!(hook.run(), None);
    rcu().barrier();
    assert_eq!(
        Arc::strong_count(&prog),
        before - 2,
        "the link's and the hook slot's references are gone"
    );
}
