//! tcx through its API: the data path (MP-111, MP-114..MP-116), query arrays (MP-69, MP-79),
//! device removal (MP-109, MP-110), link release and reference counts, and the opt-in
//! FIRST/LAST extension (kernel-scenarios.md §1.8).

use kbpf::cpu::{CpuGuard, rcu};
use kbpf::insn::{exit, mov64_imm};
use kbpf::mprog::{MprogApi, MprogFlags, Query};
use kbpf::sync::Arc;
use kbpf::syscall::{self, Fd};
use kbpf::tcx::{self, AttachAttr, Direction, LinkCreateAttr, TcxVerdict};
use kbpf::uapi::{AttachType, ProgType};
use kbpf::{Errno, ProgLoadAttr};
use std::sync::atomic::{AtomicU32, Ordering};

const ING: AttachType = AttachType::TcxIngress;

fn new_dev(api: MprogApi) -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1000);
    kbpf_shim::host::install();
    let i = NEXT.fetch_add(1, Ordering::Relaxed);
    tcx::dev_create_api(i, api).unwrap();
    i
}

/// A raw-buffer program that adds `tag` to the buffer's first byte and returns `ret`.
fn prog(tag: i32, ret: i32) -> Fd {
    use kbpf::insn::{Size, alu64_imm, ldx_mem, stx_mem};
    let insns = [
        ldx_mem(Size::B, 2, 1, 0),
        alu64_imm(kbpf::uapi::alu::ADD, 2, tag),
        stx_mem(Size::B, 1, 2, 0),
        mov64_imm(0, ret),
        exit(),
    ];
    // Verified for the one-byte buffer `send` runs it on.
    syscall::prog_load(&ProgLoadAttr::new(ProgType::RawBuffer, &insns).with_ctx_size(1)).unwrap()
}

fn attach(ifindex: u32, p: Fd, flags: MprogFlags, rel: u32) -> kbpf::Result {
    let mut a = AttachAttr::new(ifindex, ING);
    a.attach_bpf_fd = p;
    a.attach_flags = flags.bits();
    a.relative_fd = rel;
    tcx::prog_attach(&a)
}

fn link(ifindex: u32, p: Fd) -> Fd {
    tcx::link_create(&LinkCreateAttr {
        prog_fd: p,
        target_ifindex: ifindex,
        attach_type: ING,
        flags: 0,
        relative_fd: 0,
        expected_revision: 0,
    })
    .unwrap()
}

/// Runs ingress on a one-byte buffer; returns the verdict and the byte (sum of the tags run).
fn send(ifindex: u32) -> (TcxVerdict, u8) {
    let dev = tcx::dev_get(ifindex).unwrap();
    let mut buf = [0u8; 1];
    let mut g = CpuGuard::enter();
    let v = tcx::run(&dev, Direction::Ingress, &mut g, buf.as_mut_ptr() as u64, 1);
    (v, buf[0])
}

fn ids(ifindex: u32) -> (u64, Vec<u32>, Vec<u32>) {
    let (mut p, mut l) = (vec![0; 64], vec![0; 64]);
    let mut q = Query {
        count: 64,
        prog_ids: Some(&mut p),
        link_ids: Some(&mut l),
        ..Query::default()
    };
    tcx::prog_query(ifindex, ING, &mut q).unwrap();
    let n = q.count as usize;
    let rev = q.revision;
    (rev, p[..n].to_vec(), l[..n].to_vec())
}

fn id(fd: Fd) -> u32 {
    syscall::prog_get(fd).unwrap().id()
}

#[test]
fn data_path_runs_in_order_and_stops_at_a_verdict() {
    let dev = new_dev(MprogApi::Final);
    assert_eq!(send(dev), (TcxVerdict::Next, 0), "nothing attached");
    let (p1, p2, p6) = (prog(1, -1), prog(2, -1), prog(4, 0));
    attach(dev, p1, MprogFlags::empty(), 0).unwrap();
    attach(dev, p2, MprogFlags::empty(), 0).unwrap();
    assert_eq!(send(dev), (TcxVerdict::Next, 3), "both NEXT programs ran");
    attach(dev, p6, MprogFlags::BEFORE, 0).unwrap();
    assert_eq!(
        send(dev),
        (TcxVerdict::Pass, 4),
        "PASS first stops the walk"
    );
    let (drop, redirect, odd) = (prog(8, 2), prog(16, 7), prog(32, 42));
    let mut a = AttachAttr::new(dev, ING);
    a.attach_bpf_fd = drop;
    a.attach_flags = MprogFlags::REPLACE.bits();
    a.replace_bpf_fd = p6;
    tcx::prog_attach(&a).unwrap();
    assert_eq!(send(dev), (TcxVerdict::Drop, 8));
    a.attach_bpf_fd = redirect;
    a.replace_bpf_fd = drop;
    tcx::prog_attach(&a).unwrap();
    assert_eq!(send(dev), (TcxVerdict::Redirect, 16));
    a.attach_bpf_fd = odd;
    a.replace_bpf_fd = redirect;
    tcx::prog_attach(&a).unwrap();
    assert_eq!(
        send(dev),
        (TcxVerdict::Next, 32),
        "an unknown code stops the walk and acts as NEXT"
    );
    tcx::dev_remove(dev).unwrap();
}

#[test]
fn query_arrays_and_short_buffers() {
    let dev = new_dev(MprogApi::Final);
    let (p3, p2, p4) = (prog(1, -1), prog(1, -1), prog(1, -1));
    attach(dev, p3, MprogFlags::empty(), 0).unwrap();
    let (l2, l4) = (link(dev, p2), link(dev, p4));
    let lid = |fd| syscall::link_get(fd).unwrap().id();
    let (mut p, mut pf, mut l, mut lf) = ([7u32; 4], [7u32; 4], [7u32; 4], [7u32; 4]);
    let mut q = Query {
        count: 4,
        prog_ids: Some(&mut p),
        prog_attach_flags: Some(&mut pf),
        link_ids: Some(&mut l),
        link_attach_flags: Some(&mut lf),
        ..Query::default()
    };
    tcx::prog_query(dev, ING, &mut q).unwrap();
    assert_eq!((q.count, q.revision), (3, 4));
    assert_eq!(p, [id(p3), id(p2), id(p4), 7], "index 3 untouched");
    assert_eq!(l, [0, lid(l2), lid(l4), 7]);
    assert_eq!((pf, lf), ([0, 0, 0, 7], [0, 0, 0, 7]));
    let mut p = [9u32; 3];
    let mut q = Query {
        count: 2,
        prog_ids: Some(&mut p),
        ..Query::default()
    };
    assert_eq!(tcx::prog_query(dev, ING, &mut q), Err(Errno::ENOSPC));
    assert_eq!(q.count, 3, "count is the total even when truncated");
    assert_eq!(p, [id(p3), id(p2), 9]);
    let mut q = Query {
        query_flags: 1,
        ..Query::default()
    };
    assert_eq!(tcx::prog_query(dev, ING, &mut q), Err(Errno::EINVAL));
    let mut q = Query::default();
    assert_eq!(tcx::prog_query(dev + 5000, ING, &mut q), Err(Errno::ENODEV));
    for fd in [l2, l4] {
        syscall::close(fd).unwrap();
    }
    tcx::dev_remove(dev).unwrap();
}

#[test]
fn device_removal_drops_programs_and_leaves_defunct_links() {
    let dev = new_dev(MprogApi::Final);
    let (p1, p2) = (prog(1, -1), prog(2, -1));
    let prog1 = syscall::prog_get(p1).unwrap();
    let base = Arc::strong_count(&prog1);
    attach(dev, p1, MprogFlags::empty(), 0).unwrap();
    assert!(Arc::strong_count(&prog1) > base);
    let l = link(dev, p2);
    let lk = syscall::link_get(l).unwrap();
    assert_eq!(tcx::link_ifindex(&lk), dev);
    tcx::dev_remove(dev).unwrap();
    rcu().barrier();
    assert_eq!(
        Arc::strong_count(&prog1),
        base,
        "the plain attachment's reference is put"
    );
    assert_eq!(tcx::link_ifindex(&lk), 0);
    assert_eq!(syscall::link_update(l, p1, None), Err(Errno::ENOLINK));
    syscall::link_detach(l).unwrap();
    assert_eq!(attach(dev, p1, MprogFlags::empty(), 0), Err(Errno::ENODEV));
    drop(lk);
    syscall::close(l).unwrap();
}

#[test]
fn closing_a_link_releases_it_and_references_return_to_baseline() {
    let dev = new_dev(MprogApi::Final);
    let (p1, p2) = (prog(1, -1), prog(2, -1));
    let (a, b) = (
        syscall::prog_get(p1).unwrap(),
        syscall::prog_get(p2).unwrap(),
    );
    let (ba, bb) = (Arc::strong_count(&a), Arc::strong_count(&b));
    let l = link(dev, p1);
    assert_eq!(send(dev).1, 1);
    syscall::link_update(l, p2, Some(p1)).unwrap();
    assert_eq!(send(dev).1, 2);
    let (rev, progs, _) = ids(dev);
    assert_eq!((rev, progs), (3, vec![id(p2)]));
    syscall::close(l).unwrap();
    assert_eq!(send(dev), (TcxVerdict::Next, 0));
    assert_eq!(ids(dev).0, 1, "the emptied bundle was freed");
    rcu().barrier();
    assert_eq!((Arc::strong_count(&a), Arc::strong_count(&b)), (ba, bb));
    tcx::dev_remove(dev).unwrap();
}

#[test]
fn other_program_types_are_refused() {
    let dev = new_dev(MprogApi::Final);
    let insns = [mov64_imm(0, -1), exit()];
    let xdp = syscall::prog_load(&ProgLoadAttr::new(ProgType::Xdp, &insns)).unwrap();
    let cls = syscall::prog_load(&ProgLoadAttr::new(ProgType::SchedCls, &insns)).unwrap();
    let raw = prog(1, -1);
    assert_eq!(attach(dev, xdp, MprogFlags::empty(), 0), Err(Errno::EINVAL));
    attach(dev, cls, MprogFlags::empty(), 0).unwrap();
    assert_eq!(
        attach(dev, raw, MprogFlags::AFTER, cls),
        Err(Errno::EINVAL),
        "relative of another type"
    );
    assert_eq!(
        attach(dev, raw, MprogFlags::FIRST, 0),
        Err(Errno::EINVAL),
        "FIRST without the extension"
    );
    tcx::dev_remove(dev).unwrap();
}

#[test]
fn first_last_extension_pins_the_ends() {
    let dev = new_dev(MprogApi::FirstLast);
    let p: Vec<Fd> = (0..6).map(|_| prog(1, -1)).collect();
    let order = || ids(dev).1;
    attach(dev, p[0], MprogFlags::FIRST, 0).unwrap();
    assert_eq!(attach(dev, p[1], MprogFlags::FIRST, 0), Err(Errno::EBUSY));
    assert_eq!(
        attach(dev, p[1], MprogFlags::FIRST | MprogFlags::LAST, 0),
        Err(Errno::EBUSY)
    );
    assert_eq!(
        attach(dev, p[1], MprogFlags::BEFORE, p[0]),
        Err(Errno::EBUSY)
    );
    assert_eq!(
        attach(dev, p[1], MprogFlags::FIRST | MprogFlags::AFTER, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        attach(dev, p[1], MprogFlags::LAST, p[0]),
        Err(Errno::EINVAL),
        "a pin takes no relative"
    );
    attach(dev, p[1], MprogFlags::LAST, 0).unwrap();
    attach(dev, p[2], MprogFlags::BEFORE, 0).unwrap();
    attach(dev, p[3], MprogFlags::empty(), 0).unwrap();
    assert_eq!(
        attach(dev, p[4], MprogFlags::AFTER, p[1]),
        Err(Errno::EBUSY)
    );
    let want: Vec<u32> = [0, 2, 3, 1].iter().map(|&i| id(p[i])).collect();
    assert_eq!(order(), want, "inserts stay between the pins");
    let mut pf = [0u32; 4];
    let mut q = Query {
        count: 4,
        prog_ids: Some(&mut [0; 4]),
        prog_attach_flags: Some(&mut pf),
        ..Query::default()
    };
    tcx::prog_query(dev, ING, &mut q).unwrap();
    assert_eq!(
        pf,
        [MprogFlags::FIRST.bits(), 0, 0, MprogFlags::LAST.bits()]
    );
    // Detach by pin; a named program must sit at that end.
    let mut d = AttachAttr::new(dev, ING);
    d.attach_flags = MprogFlags::LAST.bits();
    d.attach_bpf_fd = p[0];
    assert_eq!(tcx::prog_detach(&d), Err(Errno::ENOENT));
    d.attach_bpf_fd = 0;
    tcx::prog_detach(&d).unwrap();
    let want: Vec<u32> = [0, 2, 3].iter().map(|&i| id(p[i])).collect();
    assert_eq!(order(), want);
    // REPLACE may move a pin only to its own end.
    let mut r = AttachAttr::new(dev, ING);
    r.attach_bpf_fd = p[5];
    r.attach_flags = (MprogFlags::REPLACE | MprogFlags::FIRST).bits();
    r.replace_bpf_fd = p[3];
    assert_eq!(tcx::prog_attach(&r), Err(Errno::EACCES));
    r.attach_flags = (MprogFlags::REPLACE | MprogFlags::LAST).bits();
    tcx::prog_attach(&r).unwrap();
    assert_eq!(attach(dev, p[4], MprogFlags::LAST, 0), Err(Errno::EBUSY));
    tcx::dev_remove(dev).unwrap();
}
