//! `prog_load`'s structural gate: programs that must be rejected with `EINVAL` (or `E2BIG`) and
//! a log line naming the reason, and what must be accepted.

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
        "unknown func #9999",
    );
    // ktime_get_ns is not offered to raw-buffer programs (their id 5 is the test helper).
    let (r, _) = load(&[call_helper(5), exit()]);
    assert!(r.is_ok());
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
    let l = ld_imm64_raw(1, 4, 0);
    rejects(
        &[l[0], l[1], mov64_imm(0, 0), exit()],
        Errno::EINVAL,
        "invalid ld_imm64",
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
