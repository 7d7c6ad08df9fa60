//! Conntrack from user space: the programs that probe and time the conntrack kfuncs
//! ([`progs`]), running them on kbpf, and the `kbpf ct` commands' formatting ([`show`]).

pub mod progs;
pub mod show;

use kbpf::syscall::{self, Fd, TestRun};
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

/// A network namespace owned by a handle: closing it (dropping this) makes the netns exit,
/// which flushes its conntrack entries.
#[derive(Debug)]
pub struct Netns {
    /// The handle (what [`TestRun::netns`] takes).
    pub fd: Fd,
    /// Its number (what conntrack entries are keyed by).
    pub num: u32,
}

impl Netns {
    /// A new netns, with the id programs name it by if `id` is given.
    pub fn new(id: Option<i32>) -> Result<Netns, Errno> {
        let fd = kbpf::net::fd::netns_create()?;
        let ns = Netns {
            fd,
            num: kbpf::net::fd::netns_get(fd)?.num(),
        };
        if let Some(id) = id {
            kbpf::net::fd::netns_set_id(fd, id)?;
        }
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = syscall::close(self.fd);
    }
}

/// Runs program `fd` once (in the netns behind `netns`, else the initial one) on [`frame`];
/// R0.
pub fn run_once(fd: u32, netns: Option<Fd>) -> Result<u32, Errno> {
    let mut data = frame();
    let mut r = TestRun {
        data: &mut data,
        netns,
        ..Default::default()
    };
    syscall::prog_test_run(fd, &mut r).map(|o| o.retval as u32)
}

/// Loads `p` on kbpf, runs it once in the netns behind `netns` (else the initial one), closes
/// it: the decoded answer.
pub fn probe(p: &Probe, netns: Option<Fd>) -> Result<ProbeResult, String> {
    let fd = load(p.hook.prog_type(), &p.asm(&KfuncIds::kbpf()))?;
    let r = run_once(fd, netns).map_err(|e| format!("test run: {e:?}"));
    let _ = syscall::close(fd);
    r.map(ProbeResult::decode)
}
