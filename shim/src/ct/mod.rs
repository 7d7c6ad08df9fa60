//! Conntrack from user space: the programs that probe and time the conntrack kfuncs
//! ([`progs`]), running them on kbpf, and the `kbpf ct` commands' formatting ([`show`]).

pub mod progs;
pub mod show;

use kbpf::syscall::{self, TestRun};
use kbpf::{Errno, ProgLoadAttr};
use progs::{KfuncIds, Probe, ProbeResult};

/// A 64-byte Ethernet + IPv4 + TCP frame to run programs on (the kfuncs never look at it).
pub fn frame() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&50u16.to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    f
}

/// Loads `text` as a program of `p`'s hook on kbpf; the handle, or the errno with the log.
pub fn load(ty: kbpf::uapi::ProgType, text: &str) -> Result<u32, String> {
    let insns = kbpf::insn::assemble(text).map_err(|e| format!("{e}\n{text}"))?;
    let mut log = String::new();
    syscall::prog_load_log(&ProgLoadAttr::new(ty, &insns), &mut log)
        .map_err(|e| format!("{e:?}: {log}"))
}

/// Runs program `fd` once (in namespace `netns`) on [`frame`]; R0.
pub fn run_once(fd: u32, netns: u32) -> Result<u32, Errno> {
    let mut data = frame();
    let mut r = TestRun {
        data: &mut data,
        netns,
        ..Default::default()
    };
    syscall::prog_test_run(fd, &mut r).map(|o| o.retval as u32)
}

/// Loads `p` on kbpf, runs it once in namespace `netns`, closes it: the decoded answer.
pub fn probe(p: &Probe, netns: u32) -> Result<ProbeResult, String> {
    let fd = load(p.hook.prog_type(), &p.asm(&KfuncIds::kbpf()))?;
    let r = run_once(fd, netns).map_err(|e| format!("test run: {e:?}"));
    let _ = syscall::close(fd);
    r.map(ProbeResult::decode)
}
