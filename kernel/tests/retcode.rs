//! The main program's return value at load, one scenario per program type whose range Linux
//! 6.18 restricts (`check_return_code`), through the whole load (`prog_load`): cgroup skb for
//! ingress [0, 1] and egress [0, 3], sk_lookup [SK_DROP, SK_PASS], netfilter [NF_DROP,
//! NF_ACCEPT]; and an unrestricted type beside them.

use kbpf::insn::assemble;
use kbpf::syscall;
use kbpf::uapi::{AttachType, ProgType};
use kbpf::{Errno, ProgLoadAttr};

/// Loads `asm` as `t` for `attach`: `Ok` or the errno and the log's line saying why.
fn load(
    t: ProgType,
    attach: Option<AttachType>,
    privileged: bool,
    asm: &str,
) -> Result<(), (Errno, String)> {
    let insns = assemble(asm).unwrap();
    let attr = ProgLoadAttr {
        expected_attach_type: attach,
        privileged,
        ..ProgLoadAttr::new(t, &insns)
    };
    let mut log = String::new();
    match syscall::prog_load_log(&attr, &mut log) {
        Ok(fd) => {
            syscall::close(fd).unwrap();
            Ok(())
        }
        Err(e) => {
            let why = log
                .lines()
                .rev()
                .find(|l| !l.is_empty() && !l.starts_with("processed"))
                .unwrap_or("");
            Err((e, why.to_string()))
        }
    }
}

/// `r0 = k; exit` loads, or is refused with the kernel's line naming the range.
fn check_const(t: ProgType, attach: Option<AttachType>, (lo, hi): (i64, i64)) {
    for k in [lo - 1, lo, hi, hi + 1, i64::from(i32::MIN)] {
        let got = load(t, attach, false, &format!("mov %r0, {k}\nexit"));
        if (lo..=hi).contains(&k) {
            assert_eq!(got, Ok(()), "{t:?} {attach:?} returns {k}");
        } else {
            let (e, why) = got.unwrap_err();
            assert_eq!(e, Errno::EINVAL, "{t:?} {attach:?} returns {k}");
            let want = format!(
                "At program exit the register R0 has smin={k} smax={k} should have been in \
                 [{lo}, {hi}]"
            );
            assert!(why.ends_with(&want), "{t:?} {attach:?}: {why}");
        }
    }
}

/// The pointer and unknown-scalar endings every restricted type refuses.
fn check_non_constants(t: ProgType, attach: Option<AttachType>, hi: i64) {
    // The context pointer leaks in the default mode; under root's rules it is no known value.
    let (e, why) = load(t, attach, false, "mov %r0, %r1\nexit").unwrap_err();
    assert_eq!(e, Errno::EACCES, "{why}");
    assert!(why.ends_with("R0 leaks addr as return value"), "{why}");
    let (e, why) = load(t, attach, true, "mov %r0, %r1\nexit").unwrap_err();
    assert_eq!(e, Errno::EINVAL, "{why}");
    assert!(why.contains("R0 is not a known value (ctx)"), "{why}");
    // A helper's result (`bpf_get_prandom_u32`, an integer: any 64-bit value); masked into
    // the range it loads, masked wider it does not.
    let (e, why) = load(t, attach, false, "call 7\nexit").unwrap_err();
    assert_eq!(e, Errno::EINVAL);
    let want = format!("R0 has unknown scalar value should have been in [0, {hi}]");
    assert!(why.ends_with(&want), "{why}");
    let fits = format!("call 7\nand %r0, {hi}\nexit");
    assert_eq!(load(t, attach, false, &fits), Ok(()));
    let wider = format!("call 7\nand %r0, {}\nexit", hi * 2 + 1);
    assert_eq!(load(t, attach, false, &wider).unwrap_err().0, Errno::EINVAL);
    // Pruning keeps the path that returns 2 (the exit marks R0 precise).
    let branch = format!(
        "call 7\nmov %r6, 0\njeq %r0, 0, +1\nmov %r6, {}\nmov %r0, %r6\nexit",
        hi + 1
    );
    assert_eq!(
        load(t, attach, false, &branch).unwrap_err().0,
        Errno::EINVAL
    );
}

#[test]
fn cgroup_skb_ingress_returns_drop_or_pass() {
    for attach in [None, Some(AttachType::CgroupInetIngress)] {
        check_const(ProgType::CgroupSkb, attach, (0, 1));
        check_non_constants(ProgType::CgroupSkb, attach, 1);
    }
}

#[test]
fn cgroup_skb_egress_may_also_notify_congestion() {
    let egress = Some(AttachType::CgroupInetEgress);
    check_const(ProgType::CgroupSkb, egress, (0, 3));
    check_non_constants(ProgType::CgroupSkb, egress, 3);
}

#[test]
fn sk_lookup_returns_a_verdict() {
    let a = Some(AttachType::SkLookup);
    check_const(ProgType::SkLookup, a, (0, 1));
    check_non_constants(ProgType::SkLookup, a, 1);
}

#[test]
fn netfilter_returns_drop_or_accept() {
    let a = Some(AttachType::Netfilter);
    check_const(ProgType::Netfilter, a, (0, 1));
    check_non_constants(ProgType::Netfilter, a, 1);
    // Without its attach type the load fails before the verifier.
    let nf = load(ProgType::Netfilter, None, false, "mov %r0, 1\nexit");
    assert_eq!(nf.unwrap_err().0, Errno::EINVAL);
}

#[test]
fn a_subprogram_returns_any_scalar() {
    let a = Some(AttachType::Netfilter);
    let sub = "call local +2\nand %r0, 1\nexit\nmov %r0, 7\nexit";
    assert_eq!(load(ProgType::Netfilter, a, false, sub), Ok(()));
    let unmasked = "call local +1\nexit\nmov %r0, 7\nexit";
    assert_eq!(
        load(ProgType::Netfilter, a, false, unmasked).unwrap_err().0,
        Errno::EINVAL
    );
}

#[test]
fn unrestricted_types_return_anything() {
    for (t, attach) in [
        (ProgType::SocketFilter, None),
        (ProgType::SchedCls, None),
        (ProgType::Xdp, None),
        (ProgType::SkReuseport, None),
    ] {
        for k in [-1, 2, 3, 4, i64::from(i32::MAX)] {
            let got = load(t, attach, false, &format!("mov %r0, {k}\nexit"));
            assert_eq!(got, Ok(()), "{t:?} returns {k}");
        }
        assert_eq!(load(t, attach, false, "call 5\nexit"), Ok(()), "{t:?}");
        assert_eq!(load(t, attach, true, "mov %r0, %r1\nexit"), Ok(()), "{t:?}");
    }
}
