//! The host kernel's BTF ids of kernel functions, from `/sys/kernel/btf/vmlinux`: what a
//! `BPF_PSEUDO_KFUNC_CALL` names on the host (libbpf's `find_ksym_btf_id` for functions built
//! into vmlinux). kbpf's kfunc ids are its own; programs shown to the host get these instead.

use crate::elf::btf::{Btf, kind};
use std::sync::OnceLock;

/// Where the running kernel exposes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

fn vmlinux() -> Result<&'static Btf, String> {
    static BTF: OnceLock<Result<Btf, String>> = OnceLock::new();
    BTF.get_or_init(|| {
        let bytes = std::fs::read(VMLINUX_BTF).map_err(|e| format!("{VMLINUX_BTF}: {e}"))?;
        Btf::parse(&bytes).map_err(|e| format!("{VMLINUX_BTF}: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The BTF id of the kernel function `name` in vmlinux.
pub fn func_id(name: &str) -> Result<u32, String> {
    let btf = vmlinux()?;
    btf.by_name(name)
        .iter()
        .copied()
        .find(|&id| btf.get(id).is_some_and(|t| t.kind == kind::FUNC))
        .ok_or_else(|| format!("{name} is not a function in the host's vmlinux BTF"))
}

/// `insns` with every kfunc call's kbpf id replaced by the host's BTF id of the same function.
pub fn to_host(insns: &[kbpf::insn::Insn]) -> Result<Vec<kbpf::insn::Insn>, String> {
    let mut out = insns.to_vec();
    for i in out.iter_mut() {
        if i.code == 0x85 && i.src() == kbpf::uapi::pseudo::KFUNC_CALL {
            let k = kbpf::kfunc::find(i.imm)
                .ok_or_else(|| format!("kfunc id {} is not kbpf's", i.imm))?;
            i.imm = func_id(k.name)? as i32;
        }
    }
    Ok(out)
}
