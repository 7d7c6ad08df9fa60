//! Sockets, kernel objects and reference tracking in the verifier: helpers that acquire and
//! release (`bpf_sk_lookup_tcp`, `bpf_sk_release`), kfunc calls against the registry (the
//! conntrack kfuncs), per-type helper availability, memory + size arguments, and the load's
//! refusal of programs whose helpers or kfuncs have no run-time side. Each negative case
//! asserts the kernel's errno and a log fragment; positive controls use the same rules.

#[macro_use]
mod corpus;

use corpus::maps;
use corpus::refs::{Mode, NEGATIVE, POSITIVE};
use kbpf::Errno;
use kbpf::insn::{Insn, assemble};
use kbpf::kfunc::{self, Kfunc, KfuncArg, KfuncArgKind, KfuncFlags, KfuncRet};
use kbpf::syscall;
use kbpf::uapi::ProgType;
use kbpf::verifier::{VerifierEnv, VerifyError, verify};
use kbpf::{ProgLoadAttr, helpers};

fn run(mode: Mode, asm: &str) -> Result<(), VerifyError> {
    let insns: Vec<Insn> = assemble(asm).unwrap_or_else(|e| panic!("{e}\n{asm}"));
    let env = VerifierEnv {
        prog_type: mode.prog_type(),
        maps: &maps,
        ctx_size: 0,
        privileged: mode.privileged(),
        allow_loops: true,
        expected_attach_type: None,
    };
    verify(&insns, &env).map(|_| ())
}

#[test]
fn negative_corpus() {
    let failures = corpus::negative_failures(NEGATIVE, run);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(NEGATIVE.len() >= 25);
}

#[test]
fn positive_controls() {
    let failures = corpus::positive_failures(POSITIVE, run);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A kfunc registered at run time with a fixed-size struct argument (no `__sz`) and a scalar:
/// the verifier judges calls to it by its registered prototype.
static TEST_FIXED: Kfunc = Kfunc {
    id: 200_001,
    name: "kbpf_test_fixed",
    args: &[
        KfuncArg {
            name: "tuple",
            kind: KfuncArgKind::Mem {
                pointee: "bpf_sock_tuple",
                size: 36,
            },
        },
        KfuncArg {
            name: "flags",
            kind: KfuncArgKind::Scalar,
        },
    ],
    ret: KfuncRet::Scalar,
    flags: KfuncFlags::empty(),
    prog_types: &[ProgType::Xdp],
    func: None,
};

#[test]
fn registered_kfunc_is_judged_by_its_prototype() {
    assert_eq!(kfunc::register(&TEST_FIXED), Ok(()));
    let ok = concat!(
        tuple!(),
        "mov %r1, %r10\nadd %r1, -40\nmov %r2, 0\ncall kfunc 200001\nexit"
    );
    run(Mode::Xdp, ok).unwrap();
    let small = concat!(
        tuple!(),
        "mov %r1, %r10\nadd %r1, -16\nmov %r2, 0\ncall kfunc 200001\nexit"
    );
    let e = run(Mode::Xdp, small).unwrap_err();
    assert_eq!(e.errno, Errno::EINVAL, "{e}");
    assert!(
        e.log.contains("invalid read from stack R1 off=-16 size=36"),
        "{e}"
    );
    let ptr_flags = concat!(
        tuple!(),
        "mov %r1, %r10\nadd %r1, -40\nmov %r2, %r10\ncall kfunc 200001\nexit"
    );
    let e = run(Mode::Xdp, ptr_flags).unwrap_err();
    assert_eq!(e.errno, Errno::EINVAL, "{e}");
    assert!(e.log.contains("R2 is not a scalar"), "{e}");
    let e = run(Mode::Tc, ok).unwrap_err();
    assert_eq!(e.errno, Errno::EACCES, "{e}");
    assert!(
        e.log
            .contains("calling kernel function kbpf_test_fixed is not allowed"),
        "{e}"
    );
}

/// "Has a run-time side" is a property of the helper table and the kfunc registry.
#[test]
fn runtime_is_a_table_property() {
    let tc = ProgType::SchedCls;
    assert!(helpers::func_proto(tc, 1).unwrap().has_runtime());
    assert!(helpers::func_proto(tc, 12).unwrap().has_runtime());
    assert!(helpers::func_proto(tc, 14).unwrap().has_runtime());
    // The socket helpers run since kbpf has sockets: bpf_sk_release (86), the TC / cgroup skb
    // lookups (84, 85, 99) and TC's bpf_sk_assign (124).
    for id in [9, 10, 11, 23, 26, 28, 84, 85, 86, 99, 124, 181] {
        assert!(helpers::func_proto(tc, id).unwrap().has_runtime(), "{id}");
    }
    // XDP's lookups and sk_lookup's bpf_sk_assign run too.
    for id in [84, 85, 86, 99] {
        assert!(
            helpers::func_proto(ProgType::Xdp, id)
                .unwrap()
                .has_runtime(),
            "{id}"
        );
    }
    assert!(
        helpers::func_proto(ProgType::SkLookup, 124)
            .unwrap()
            .has_runtime()
    );
    // Every helper of every program type has a run-time side.
    for t in [
        ProgType::SocketFilter,
        ProgType::SchedCls,
        ProgType::SchedAct,
        ProgType::CgroupSkb,
        ProgType::Xdp,
        ProgType::SkLookup,
        ProgType::SkReuseport,
    ] {
        for id in 0..helpers::FUNC_MAX_ID {
            if let Some(p) = helpers::func_proto(t, id) {
                assert!(p.has_runtime(), "{t:?} {id}");
            }
        }
    }
    let ct = kfunc::find(kfunc::ids::BPF_XDP_CT_LOOKUP as i32).unwrap();
    assert!(ct.has_runtime());
    let _ = kfunc::register(&TEST_NO_RUNTIME);
    assert!(!kfunc::find(200_002).unwrap().has_runtime());
}

/// A kfunc known to the verifier only: no run-time side.
static TEST_NO_RUNTIME: Kfunc = Kfunc {
    id: 200_002,
    name: "kbpf_test_no_runtime",
    args: &[],
    ret: KfuncRet::Scalar,
    flags: KfuncFlags::empty(),
    prog_types: &[ProgType::Xdp],
    func: None,
};

/// A TC program looking a socket up and releasing it verifies and loads (the lookup helpers
/// were verifier-only before kbpf's packets had a netns to look in).
#[test]
fn prog_load_accepts_tc_socket_lookup() {
    let asm = concat!(
        sk_lookup!(),
        "jeq %r0, 0, out\nmov %r1, %r0\ncall 86\nout: mov %r0, 0\nexit"
    );
    let insns = assemble(asm).unwrap();
    let mut log = String::new();
    for t in [ProgType::SchedCls, ProgType::CgroupSkb, ProgType::Xdp] {
        let r = syscall::prog_load_log(&ProgLoadAttr::new(t, &insns), &mut log);
        assert!(r.is_ok(), "{t:?}: {r:?} {log}");
        syscall::close(r.unwrap()).unwrap();
    }
}

/// A verifier rejection is the load's answer.
#[test]
fn prog_load_reports_the_verifier_first() {
    let insns = assemble(concat!(sk_lookup!(), "mov %r0, 0\nexit")).unwrap();
    let mut log = String::new();
    let r = syscall::prog_load_log(&ProgLoadAttr::new(ProgType::SchedCls, &insns), &mut log);
    assert_eq!(r, Err(Errno::EINVAL), "{log}");
    assert!(log.contains("Unreleased reference id="), "{log}");
}

/// The load refuses a kfunc whose run-time side is not implemented (after verifying).
#[test]
fn prog_load_refuses_kfunc_without_runtime() {
    let _ = kfunc::register(&TEST_NO_RUNTIME);
    let insns = assemble("call kfunc 200002\nexit").unwrap();
    let mut log = String::new();
    let r = syscall::prog_load_log(&ProgLoadAttr::new(ProgType::Xdp, &insns), &mut log);
    assert_eq!(r, Err(Errno::ENOTSUPP), "{log}");
    assert!(
        log.contains("kernel function kbpf_test_no_runtime has no run-time implementation"),
        "{log}"
    );
}

/// The conntrack kfuncs have their run-time side: a lookup + release program loads.
#[test]
fn prog_load_accepts_the_conntrack_kfuncs() {
    let asm = concat!(
        xdp_ct!(),
        "jeq %r0, 0, out\nmov %r1, %r0\ncall kfunc 100003\nout: mov %r0, 2\nexit"
    );
    let insns = assemble(asm).unwrap();
    let mut log = String::new();
    let fd = syscall::prog_load_log(&ProgLoadAttr::new(ProgType::Xdp, &insns), &mut log);
    assert!(fd.is_ok(), "{log}");
    syscall::close(fd.unwrap()).unwrap();
}

/// The trusted path skips the verifier, so the load itself refuses unknown kfunc ids.
#[test]
fn trusted_load_refuses_unknown_kfunc() {
    let insns = assemble("call kfunc 4242\nmov %r0, 2\nexit").unwrap();
    let mut log = String::new();
    let r = syscall::prog_load_trusted_log(&ProgLoadAttr::new(ProgType::Xdp, &insns), &mut log);
    assert_eq!(r, Err(Errno::EINVAL), "{log}");
    assert!(
        log.contains("kernel btf_id 4242 is not a function"),
        "{log}"
    );
}
