//! Conntrack programs every verifier must refuse (`shim/tests/elf/ct_fail.c`: the cases of
//! the kernel's `progs/test_bpf_nf_fail.c` and the generic reference rules,
//! `shared/research/kernel-scenarios.md` §5.5), compiled from C: kbpf refuses each, with the
//! errno and log fragment listed, and accepts the two controls. With root's rules (the
//! programs read `struct nf_conn`); in the default mode every one is refused.
//!
//! Where the host kernel can load BPF, each program also goes to its verifier (kfunc calls
//! with the host's BTF ids): the verdicts must agree, and the host's log must contain the
//! kernel's fragment — the same text kbpf prints, except where [`CASES`] gives Linux's own.

use kbpf::Errno;
use kbpf::syscall;
use kbpf_shim::elf::{LoadOpts, Object, attr, bind};
use kbpf_shim::elf_host::host_verdict;
use kbpf_shim::host_bpf::{HostVerdict, HostVerifier};

const CT_FAIL_O: &[u8] = include_bytes!("elf/ct_fail.o");

/// (program, kbpf's errno, kbpf's log fragment, the host's fragment if its wording differs).
type Case = (
    &'static str,
    Option<Errno>,
    &'static str,
    Option<&'static str>,
);

const CASES: &[Case] = &[
    ("ok_lookup_release", None, "", None),
    ("ok_alloc_insert", None, "", None),
    (
        "alloc_release",
        Some(Errno::EINVAL),
        "kernel function bpf_ct_release args#0 expected pointer to STRUCT nf_conn but R1 has a pointer to STRUCT nf_conn___init",
        None,
    ),
    (
        "insert_insert",
        Some(Errno::EINVAL),
        "kernel function bpf_ct_insert_entry args#0 expected pointer to STRUCT nf_conn___init but R1 has a pointer to STRUCT nf_conn",
        None,
    ),
    (
        "lookup_insert",
        Some(Errno::EINVAL),
        "kernel function bpf_ct_insert_entry args#0 expected pointer to STRUCT nf_conn___init but R1 has a pointer to STRUCT nf_conn",
        None,
    ),
    (
        "write_not_allowlisted_field",
        Some(Errno::EACCES),
        "no write support to nf_conn at off 128",
        None,
    ),
    (
        "write_past_mark",
        Some(Errno::EACCES),
        "write access at off 168 with size 8 beyond the member of nf_conn ended at 172",
        None,
    ),
    (
        "set_timeout_after_insert",
        Some(Errno::EINVAL),
        "kernel function bpf_ct_set_timeout args#0 expected pointer to STRUCT nf_conn___init but R1 has a pointer to STRUCT nf_conn",
        None,
    ),
    (
        "set_status_after_insert",
        Some(Errno::EINVAL),
        "kernel function bpf_ct_set_status args#0 expected pointer to STRUCT nf_conn___init but R1 has a pointer to STRUCT nf_conn",
        None,
    ),
    (
        "change_timeout_after_alloc",
        Some(Errno::EINVAL),
        "kernel function bpf_ct_change_timeout args#0 expected pointer to STRUCT nf_conn but R1 has a pointer to STRUCT nf_conn___init",
        None,
    ),
    (
        "change_status_after_alloc",
        Some(Errno::EINVAL),
        "kernel function bpf_ct_change_status args#0 expected pointer to STRUCT nf_conn but R1 has a pointer to STRUCT nf_conn___init",
        None,
    ),
    (
        "lookup_null_bpf_tuple",
        Some(Errno::EACCES),
        "Possibly NULL pointer passed to trusted arg1",
        None,
    ),
    (
        "lookup_null_bpf_opts",
        Some(Errno::EACCES),
        "Possibly NULL pointer passed to trusted arg3",
        None,
    ),
    (
        "xdp_lookup_null_bpf_tuple",
        Some(Errno::EACCES),
        "Possibly NULL pointer passed to trusted arg1",
        None,
    ),
    (
        "xdp_lookup_null_bpf_opts",
        Some(Errno::EACCES),
        "Possibly NULL pointer passed to trusted arg3",
        None,
    ),
    ("leak", Some(Errno::EINVAL), "Unreleased reference", None),
    (
        "release_unchecked",
        Some(Errno::EACCES),
        "Possibly NULL pointer passed to trusted arg0",
        None,
    ),
    (
        "double_release",
        Some(Errno::EINVAL),
        "arg#0 pointer type STRUCT nf_conn must point to scalar, or struct with scalar",
        None,
    ),
    (
        "use_after_release",
        Some(Errno::EACCES),
        "R6 invalid mem access 'scalar'",
        None,
    ),
    (
        "release_at_offset",
        Some(Errno::EINVAL),
        "R1 must have zero offset when passed to release func or trusted arg to kfunc",
        None,
    ),
    (
        "tail_call_with_reference",
        Some(Errno::EINVAL),
        "tail_call would lead to reference leak",
        None,
    ),
    (
        "other_program_type",
        Some(Errno::EACCES),
        "calling kernel function bpf_skb_ct_lookup is not allowed",
        None,
    ),
    // Linux 6.18 classifies the XDP context as an untrusted `__sk_buff` object; kbpf says what
    // it is (decisions.md #7: the same programs refused).
    (
        "xdp_calls_skb_lookup",
        Some(Errno::EINVAL),
        "arg#0 expected pointer to STRUCT __sk_buff, but got ctx of xdp",
        Some("R1 must be referenced or trusted"),
    ),
];

fn verify(obj: &Object, fds: &[u32], name: &str, privileged: bool) -> (Result<(), Errno>, String) {
    let p = obj
        .prog(name)
        .unwrap_or_else(|| panic!("no program {name}"));
    let insns = bind(p, fds);
    let opts = LoadOpts {
        privileged,
        ..LoadOpts::default()
    };
    let mut log = String::new();
    let r = syscall::prog_verify_log(&attr(p, &insns, &opts), &mut log);
    (r.map(drop), log)
}

#[test]
fn kbpf_refuses_each_with_its_message() {
    kbpf_shim::host::install();
    let obj = Object::parse(CT_FAIL_O).unwrap();
    assert_eq!(obj.progs.len(), CASES.len(), "one case per program");
    let fds = obj.create_maps().unwrap();
    for &(name, errno, frag, _) in CASES {
        let (r, log) = verify(&obj, &fds, name, true);
        match errno {
            None => assert_eq!(r, Ok(()), "{name}: {log}"),
            Some(e) => {
                assert_eq!(r, Err(e), "{name}: {log}");
                assert!(log.contains(frag), "{name}: want {frag:?} in\n{log}");
            }
        }
        // The default mode refuses every one (at the latest when it reads nf_conn).
        let (r, log) = verify(&obj, &fds, name, false);
        assert!(r.is_err(), "{name} in the default mode: {log}");
    }
    for fd in fds {
        let _ = syscall::close(fd);
    }
}

#[test]
fn the_host_kernel_agrees() {
    kbpf_shim::host::install();
    let host = match HostVerifier::open() {
        Ok(h) => h,
        Err(why) => {
            eprintln!("SKIPPED: the host kernel's verifier is unavailable: {why}");
            return;
        }
    };
    let obj = Object::parse(CT_FAIL_O).unwrap();
    let fds = obj.create_maps().unwrap();
    let mut asked = 0;
    for &(name, errno, frag, host_frag) in CASES {
        let p = obj.prog(name).unwrap();
        let h = match host_verdict(&host, &obj, p, true) {
            Ok(h) => h,
            Err(why) => {
                eprintln!("SKIPPED {name}: {why}");
                continue;
            }
        };
        asked += 1;
        let (r, log) = verify(&obj, &fds, name, true);
        match (&h, errno) {
            (HostVerdict::Accepted, None) => {}
            (
                HostVerdict::Rejected {
                    log: hlog,
                    errno: he,
                },
                Some(e),
            ) => {
                assert_eq!(*he, e.to_errno(), "{name}: the errnos differ");
                let want = host_frag.unwrap_or(frag);
                assert!(
                    hlog.contains(want),
                    "{name}: the host's log lacks {want:?}:\n{hlog}"
                );
            }
            _ => panic!("{name}: kbpf {r:?} ({log}), host {h:?}"),
        }
    }
    for fd in fds {
        let _ = syscall::close(fd);
    }
    assert_eq!(asked, CASES.len(), "every program asked");
}

/// The run-time scenario object (`ct_nf.c`: alloc, timeout, status, mark, NAT, insert, lookup)
/// loads on both sides with root's rules and on neither without.
#[test]
fn the_scenario_object_loads_on_both_sides() {
    kbpf_shim::host::install();
    let obj = Object::parse(include_bytes!("elf/ct_nf.o")).unwrap();
    let fds = obj.create_maps().unwrap();
    let host = HostVerifier::open()
        .map_err(|why| eprintln!("SKIPPED (host part): {why}"))
        .ok();
    for p in &obj.progs {
        for privileged in [false, true] {
            let (r, log) = verify(&obj, &fds, &p.name, privileged);
            assert_eq!(
                r.is_ok(),
                privileged,
                "{} (privileged {privileged}): {log}",
                p.name
            );
            if let Some(h) = &host {
                let v = host_verdict(h, &obj, p, privileged).unwrap();
                assert_eq!(
                    v == HostVerdict::Accepted,
                    privileged,
                    "{}: host {v:?}",
                    p.name
                );
            }
        }
    }
    for fd in fds {
        let _ = syscall::close(fd);
    }
}
