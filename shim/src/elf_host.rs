//! An object's programs through the host Linux kernel's verifier, for `kbpf verify --host` on
//! `.o` files and the differential test of the C examples (`shim/tests/elf_host.rs`): each
//! program as the ELF loader linked it, its map references naming the object's maps by index
//! (what [`crate::host_bpf::HostLoad`] expects), loaded with `BPF_PROG_LOAD` on the host.

use crate::elf::{Object, ProgDef};
use crate::host_bpf::{HostLoad, HostVerdict, HostVerifier};
use kbpf::uapi::ProgType;

/// The host kernel's verdict on `p` of `obj`, or why it was not asked: the host has no program
/// type for kbpf's raw buffer. kfunc calls are shown to the host with its own BTF ids for the
/// same functions (not asked when its BTF lacks one).
pub fn host_verdict(
    host: &HostVerifier,
    obj: &Object,
    p: &ProgDef,
    privileged: bool,
) -> Result<HostVerdict, String> {
    if p.prog_type == ProgType::RawBuffer {
        return Err("not asked: the host has no raw_buffer program type".into());
    }
    let mut insns =
        crate::host_bpf::btf_ids::to_host(&p.insns).map_err(|e| format!("not asked: {e}"))?;
    for r in &p.map_refs {
        insns[r.insn].imm = r.map as i32;
        if let Some(off) = r.value_off {
            insns[r.insn + 1].imm = off as i32;
        }
    }
    host.load(HostLoad {
        prog_type: p.prog_type,
        insns,
        maps: obj.maps.iter().map(|m| m.attr).collect(),
        privileged,
        expected_attach_type: p.attach,
    })
}

/// One line for `kbpf verify --host`.
pub fn describe(v: Result<HostVerdict, String>) -> String {
    match v {
        Ok(HostVerdict::Accepted) => "accepted".into(),
        Ok(HostVerdict::Rejected { errno, log }) => {
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("rejected (errno {errno})\n{}", tail.join("\n"))
        }
        Err(e) => e,
    }
}
