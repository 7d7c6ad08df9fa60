//! `prog_load`'s structural gate: programs that must be rejected with `EINVAL` (or `E2BIG`) and
//! a log line naming the reason, and what must be accepted. The gate runs before the verifier,
//! so these errnos and messages are the gate's; then the verifier's rejection reaches the
//! caller the same way (last tests).

use kbpf::insn::*;
use kbpf::syscall;
use kbpf::uapi::ProgType;
use kbpf::{Errno, ProgLoadAttr};

fn load(insns: &[Insn]) -> (Result<u32, Errno>, String) {
    kbpf_shim::host::install();
    let mut log = String::new();
    let r = syscall::prog_load_log(&ProgLoadAttr::new(ProgType::RawBuffer, insns), &mut log);
    (r, log)
}

fn rejects(insns: &[Insn], errno: Errno, fragment: &str) {
    let (r, log) = load(insns);
    assert_eq!(r, Err(errno), "log: {log}");
    assert!(
        log.contains(fragment),
        "expected {fragment:?} in log {log:?}"
    );
}

#[test]
fn unknown_opcode() {
    rejects(
        &[Insn::new(0xff, 0, 0, 0, 0), exit()],
        Errno::EINVAL,
        "unknown opcode",
    );
}

#[test]
fn internal_tail_call_opcode_is_not_user_visible() {
    rejects(
        &[Insn::new(TAIL_CALL_CODE, 0, 0, 0, 0), exit()],
        Errno::EINVAL,
        "unknown opcode",
    );
}

#[test]
fn bad_register() {
    rejects(
        &[Insn::new(0xb7, 11, 0, 0, 1), exit()],
        Errno::EINVAL,
        "R11 is invalid",
    );
}

#[test]
fn reserved_fields() {
    rejects(
        &[Insn::new(0xb7, 0, 3, 0, 1), exit()],
        Errno::EINVAL,
        "reserved field",
    );
    rejects(
        &[Insn::new(0x95, 0, 0, 1, 0)],
        Errno::EINVAL,
        "reserved field",
    );
}

#[test]
fn writes_to_r10() {
    rejects(
        &[mov64_imm(10, 0), exit()],
        Errno::EINVAL,
        "frame pointer is read only",
    );
    rejects(
        &[ldx_mem(Size::DW, 10, 1, 0), exit()],
        Errno::EINVAL,
        "frame pointer is read only",
    );
    rejects(
        &[atomic_op(Size::DW, 0xe1, 1, 10, 0), exit()],
        Errno::EINVAL,
        "frame pointer is read only",
    );
    // Storing through r10 is fine.
    assert!(
        load(&[st_mem(Size::DW, 10, -8, 1), mov64_imm(0, 0), exit()])
            .0
            .is_ok()
    );
}

#[test]
fn jumps_out_of_range() {
    rejects(&[ja(5), exit()], Errno::EINVAL, "jump out of range");
    rejects(&[ja(-3), exit()], Errno::EINVAL, "jump out of range");
    rejects(&[call_local(7), exit()], Errno::EINVAL, "jump out of range");
}

#[test]
fn jump_into_ld_imm64() {
    let l = ld_imm64(0, 1);
    rejects(
        &[ja(1), l[0], l[1], exit()],
        Errno::EINVAL,
        "middle of ldimm64",
    );
    rejects(&[l[0]], Errno::EINVAL, "BPF_LD_IMM");
}

#[test]
fn falling_off_the_end() {
    rejects(
        &[mov64_imm(0, 0)],
        Errno::EINVAL,
        "last insn is not an exit or jmp",
    );
    rejects(
        &[mov64_imm(0, 0), jmp_imm(kbpf::uapi::jmp::JEQ, 0, 0, -2)],
        Errno::EINVAL,
        "last insn",
    );
    // A subprogram that falls into the next one.
    rejects(
        &[
            call_local(1),
            exit(),
            mov64_imm(0, 1),
            call_local(0),
            exit(),
        ],
        Errno::EINVAL,
        "last insn",
    );
}

#[test]
fn unknown_helpers() {
    rejects(
        &[call_helper(9999), exit()],
        Errno::EINVAL,
        "invalid func unknown#9999",
    );
    // ktime_get_ns is not offered to raw-buffer programs (their id 5 is the test helper, whose
    // argument the verifier wants initialized).
    let (r, log) = load(&[mov64_imm(1, 1), call_helper(5), exit()]);
    assert!(r.is_ok(), "{log}");
    kbpf_shim::host::install();
    let r = syscall::prog_load(&ProgLoadAttr::new(
        ProgType::SocketFilter,
        &[call_helper(212), exit()],
    ));
    assert_eq!(r, Err(Errno::EINVAL));
}

#[test]
fn bad_map_references() {
    let l = ld_map_fd(1, 999);
    rejects(
        &[l[0], l[1], mov64_imm(0, 0), exit()],
        Errno::EBADF,
        "invalid ld_imm64",
    );
    let l = ld_imm64_raw(1, 3, 0);
    rejects(
        &[l[0], l[1], mov64_imm(0, 0), exit()],
        Errno::EINVAL,
        "invalid ld_imm64",
    );
    // A callback (`BPF_PSEUDO_FUNC`) whose target is the load's own second half.
    let l = ld_imm64_raw(1, 4, 0);
    rejects(
        &[l[0], l[1], mov64_imm(0, 0), exit()],
        Errno::EINVAL,
        "function starts in the middle of ldimm64 insn 1",
    );
}

#[test]
fn empty_and_too_large() {
    rejects(&[], Errno::EINVAL, "empty program");
    let big = vec![mov64_imm(0, 0); kbpf::uapi::limits::BPF_MAXINSNS + 1];
    rejects(&big, Errno::E2BIG, "limit");
}

#[test]
fn info_reports_the_program() {
    let (r, _) = load(&[mov64_imm(0, 7), exit()]);
    let fd = r.unwrap();
    let syscall::ObjInfo::Prog(info) = syscall::obj_get_info(fd).unwrap() else {
        panic!("not a prog")
    };
    assert_eq!(info.xlated_insns, 2);
    assert!(!info.jited);
    assert_eq!(info.prog_type, ProgType::RawBuffer);
    syscall::close(fd).unwrap();
    assert_eq!(syscall::close(fd), Err(Errno::EBADF));
    assert!(syscall::obj_get_info(fd).is_err());
}

#[test]
fn verifier_rejection_returns_its_errno_and_log() {
    // R1 (the buffer) and R2 (its length) are set on entry; R3 is not.
    rejects(&[mov64_reg(0, 3), exit()], Errno::EACCES, "0: R3 !read_ok");
    // Out of bounds of the raw buffer the program was verified for.
    let (r, log) = load(&[ldx_mem(Size::B, 0, 1, 0), exit()]);
    assert_eq!(r, Err(Errno::EACCES), "{log}");
    assert!(
        log.contains("processed"),
        "the log ends with the summary: {log}"
    );
}

#[test]
fn raw_buffer_runs_only_on_the_length_it_was_verified_for() {
    kbpf_shim::host::install();
    let insns = [ldx_mem(Size::B, 0, 1, 3), exit()];
    let fd = syscall::prog_load(&ProgLoadAttr::new(ProgType::RawBuffer, &insns).with_ctx_size(4))
        .unwrap();
    let run = |len: usize| {
        let mut data = vec![7u8; len];
        syscall::prog_test_run(
            fd,
            &mut syscall::TestRun {
                data: &mut data,
                repeat: 1,
                ..Default::default()
            },
        )
        .map(|r| r.retval)
    };
    assert_eq!(run(4), Ok(7));
    assert_eq!(run(3), Err(Errno::EINVAL), "shorter than verified");
    assert_eq!(run(5), Err(Errno::EINVAL), "longer: R2 would differ");
    syscall::close(fd).unwrap();
    // The trusted path records no length.
    let fd = syscall::prog_load_trusted(&ProgLoadAttr::new(ProgType::RawBuffer, &insns)).unwrap();
    let mut data = [1u8, 2, 3, 9, 5];
    let r = syscall::prog_test_run(
        fd,
        &mut syscall::TestRun {
            data: &mut data,
            repeat: 1,
            ..Default::default()
        },
    );
    assert_eq!(r.map(|r| r.retval), Ok(9));
    syscall::close(fd).unwrap();
}

#[test]
fn ctx_size_is_for_raw_buffer_programs_only() {
    kbpf_shim::host::install();
    let insns = [mov64_imm(0, 0), exit()];
    let mut log = String::new();
    let r = syscall::prog_load_log(
        &ProgLoadAttr::new(ProgType::SocketFilter, &insns).with_ctx_size(4),
        &mut log,
    );
    assert_eq!(r, Err(Errno::EINVAL));
    assert!(log.contains("ctx_size"), "{log}");
}

#[test]
fn privileged_mode_allows_what_root_may() {
    kbpf_shim::host::install();
    // Returning a pointer leaks it: refused by default, root's rules allow it.
    let insns = [mov64_reg(0, 10), exit()];
    let attr = ProgLoadAttr::new(ProgType::RawBuffer, &insns);
    let mut log = String::new();
    assert_eq!(
        syscall::prog_load_log(&attr, &mut log),
        Err(Errno::EACCES),
        "{log}"
    );
    let fd = syscall::prog_load(&attr.with_privileged(true)).unwrap();
    syscall::close(fd).unwrap();
}
