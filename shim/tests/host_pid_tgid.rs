//! `bpf_get_current_pid_tgid` (helper 14) in a program run by the shim's host: the process id
//! (the kernel's tgid) in the high half, the calling thread's id (the kernel's pid) in the low
//! half, for the thread running the program.

use kbpf::cpu::CpuGuard;
use kbpf::insn::assemble;
use kbpf::uapi::ProgType;
use kbpf::{ProgLoadAttr, syscall};

#[test]
fn program_gets_the_real_tgid_and_tid() {
    kbpf_shim::host::install();
    let insns = assemble("call 14\nexit").unwrap();
    let mut log = String::new();
    let fd = syscall::prog_load_log(&ProgLoadAttr::new(ProgType::SchedCls, &insns), &mut log)
        .unwrap_or_else(|e| panic!("{e:?}: {log}"));
    let prog = syscall::prog_get(fd).unwrap();
    let run = || {
        let mut g = CpuGuard::enter();
        // The program does not read its context.
        let r0 = prog.run(&mut g, 0, 0).unwrap();
        // SAFETY: getpid and gettid have no preconditions.
        let (tgid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
        (r0, ((tgid as u64) << 32) | tid as u64)
    };
    let (r0, want) = run();
    assert_eq!(r0, want);
    // Another thread: same tgid, its own tid.
    let (r0_other, want_other) = std::thread::scope(|s| s.spawn(run).join().unwrap());
    assert_eq!(r0_other, want_other);
    assert_eq!(r0_other >> 32, r0 >> 32);
    assert_ne!(r0_other as u32, r0 as u32);
    syscall::close(fd).unwrap();
}
