//! `kbpf tcx script [-e] [--egress] [--first-last] [--host]`: the mprog oracle's script language
//! ([`crate::mprog_script`]) run against kbpf's tcx — or, with `--host`, against the host Linux
//! kernel through `bpf(2)` ([`crate::host_mprog`]) — printing one result line per operation, so
//! the two outputs compare line by line.
//!
//! On kbpf the script runs on a fresh device (the lowest free ifindex from 1), removed again at
//! the end with every handle the script opened. `--first-last` creates the device with kbpf's
//! FIRST/LAST extension, whose flags the script spells `first` and `last`.

use crate::mprog_script::{self, AttachReq, Backend, QueryReq, Script};
use kbpf::insn::{exit, mov64_imm};
use kbpf::mprog::{MprogApi, Query};
use kbpf::syscall::{self, Fd};
use kbpf::tcx::{self, AttachAttr, LinkCreateAttr};
use kbpf::uapi::{AttachType, ProgType, tcx_action};
use kbpf::{Errno, ProgLoadAttr};

/// How a script runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Echo each operation, left-justified in 44 columns, before its result (`-e`).
    pub echo: bool,
    /// Use the egress hook (`--egress`, the oracle's `-E`).
    pub egress: bool,
    /// Create the device with the FIRST/LAST extension.
    pub first_last: bool,
}

/// kbpf's tcx as a script backend: one device, one direction.
pub struct KbpfTcx {
    ifindex: u32,
    attach_type: AttachType,
}

type CallResult<T> = Result<T, mprog_script::Errno>;

fn errno<T>(r: kbpf::Result<T>) -> CallResult<T> {
    r.map_err(Errno::to_errno)
}

impl KbpfTcx {
    /// Creates a fresh device (with the extension if `first_last`) and uses its ingress or
    /// egress hook.
    pub fn new(opts: Options) -> Result<KbpfTcx, Errno> {
        let api = if opts.first_last {
            MprogApi::FirstLast
        } else {
            MprogApi::Final
        };
        let ifindex = (1..)
            .find(|&i| tcx::dev_create_api(i, api) != Err(Errno::EEXIST))
            .expect("a free ifindex");
        tcx::dev_get(ifindex)?;
        let attach_type = if opts.egress {
            AttachType::TcxEgress
        } else {
            AttachType::TcxIngress
        };
        Ok(KbpfTcx {
            ifindex,
            attach_type,
        })
    }

    fn attr(&self, a: &AttachReq) -> AttachAttr {
        AttachAttr {
            target_ifindex: self.ifindex,
            attach_bpf_fd: a.prog,
            attach_type: self.attach_type,
            attach_flags: a.flags,
            replace_bpf_fd: a.replace,
            relative_fd: a.relative,
            expected_revision: a.expected_revision,
        }
    }

    /// Removes the device.
    pub fn remove(self) -> kbpf::Result {
        tcx::dev_remove(self.ifindex)
    }
}

impl Backend for KbpfTcx {
    fn load(&mut self, xdp: bool) -> CallResult<(u32, u32)> {
        let prog_type = if xdp {
            ProgType::Xdp
        } else {
            ProgType::SchedCls
        };
        let insns = [mov64_imm(0, tcx_action::NEXT), exit()];
        let fd = errno(syscall::prog_load(&ProgLoadAttr::new(prog_type, &insns)))?;
        Ok((fd, errno(syscall::prog_get(fd))?.id()))
    }

    fn attach(&mut self, a: &AttachReq) -> CallResult<()> {
        errno(tcx::prog_attach(&self.attr(a)))
    }

    fn detach(&mut self, a: &AttachReq) -> CallResult<()> {
        errno(tcx::prog_detach(&self.attr(a)))
    }

    fn link_create(&mut self, a: &AttachReq) -> CallResult<(u32, u32)> {
        let fd = errno(tcx::link_create(&LinkCreateAttr {
            prog_fd: a.prog,
            target_ifindex: self.ifindex,
            attach_type: self.attach_type,
            flags: a.flags,
            relative_fd: a.relative,
            expected_revision: a.expected_revision,
        }))?;
        Ok((fd, errno(syscall::link_get(fd))?.id()))
    }

    fn link_detach(&mut self, link: u32) -> CallResult<()> {
        errno(syscall::link_detach(link))
    }

    fn link_update(&mut self, link: u32, new: u32, flags: u32, old: u32) -> CallResult<()> {
        errno(syscall::link_update_flags(link, new, flags, old))
    }

    fn query(&mut self, q: &mut QueryReq) -> CallResult<()> {
        let mut kq = Query {
            query_flags: q.query_flags,
            attach_flags: q.attach_flags,
            count: q.prog_ids.len() as u32,
            prog_ids: Some(&mut q.prog_ids),
            link_ids: Some(&mut q.link_ids),
            ..Query::default()
        };
        let r = tcx::prog_query(self.ifindex, self.attach_type, &mut kq);
        (q.revision, q.count) = (kq.revision, kq.count);
        errno(r)
    }

    fn close(&mut self, fd: Fd) {
        let _ = syscall::close(fd);
    }
}

/// Runs `script` on kbpf and returns the output lines.
pub fn run_script(script: &str, opts: Options) -> Result<String, Errno> {
    let mut s = Script::new(KbpfTcx::new(opts)?, opts.echo);
    let out = s.run(script);
    s.finish().remove()?;
    Ok(out)
}
