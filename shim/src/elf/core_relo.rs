//! CO-RE relocations (`.BTF.ext` `bpf_core_relo` records) resolved against kbpf's own types:
//! the context structs programs are written against (`__sk_buff`, `xdp_md`), the kernel
//! objects kfuncs hand out (`nf_conn`), and the raw-buffer context of seed 000's dispatcher
//! (`seccomp_data`). libbpf resolves against the running kernel's BTF
//! (`bpf_core_calc_relo_insn` / `bpf_core_patch_insn` in `tools/lib/bpf/relo_core.c`); kbpf has
//! no kernel BTF, so the target layouts are this table.
//!
//! Supported kinds: field byte offset, byte size, existence and signedness, type existence and
//! size, local type id. A relocation of another kind, against a type kbpf does not know, or on
//! an instruction that does not hold the local value is an error naming it.

use super::btf::{Btf, kind};
use kbpf::insn::Insn;

/// A field of a target struct: name, byte offset, byte size, element size (for arrays; else the
/// size), signedness.
type Field = (&'static str, u32, u32, u32, bool);

/// A struct kbpf resolves CO-RE accesses against.
struct Target {
    name: &'static str,
    size: u32,
    fields: &'static [Field],
}

const fn f(name: &'static str, off: u32, size: u32) -> Field {
    (name, off, size, size, false)
}

/// `struct __sk_buff` (`include/uapi/linux/bpf.h`), the fields kbpf's context rules know.
static SK_BUFF: Target = Target {
    name: "__sk_buff",
    size: 192,
    fields: &[
        f("len", 0, 4),
        f("pkt_type", 4, 4),
        f("mark", 8, 4),
        f("queue_mapping", 12, 4),
        f("protocol", 16, 4),
        f("vlan_present", 20, 4),
        f("vlan_tci", 24, 4),
        f("vlan_proto", 28, 4),
        f("priority", 32, 4),
        f("ingress_ifindex", 36, 4),
        f("ifindex", 40, 4),
        f("tc_index", 44, 4),
        ("cb", 48, 20, 4, false),
        f("hash", 68, 4),
        f("tc_classid", 72, 4),
        f("data", 76, 4),
        f("data_end", 80, 4),
        f("data_meta", 140, 4),
    ],
};

/// `struct xdp_md`.
static XDP_MD: Target = Target {
    name: "xdp_md",
    size: 24,
    fields: &[
        f("data", 0, 4),
        f("data_end", 4, 4),
        f("data_meta", 8, 4),
        f("ingress_ifindex", 12, 4),
        f("rx_queue_index", 16, 4),
        f("egress_ifindex", 20, 4),
    ],
};

/// kbpf's `struct nf_conn`: the fields at Linux 6.18 x86-64's offsets
/// (`shared/research/decisions.md` #8, [`kbpf::kfunc::NF_CONN`]).
static NF_CONN: Target = Target {
    name: "nf_conn",
    size: kbpf::kfunc::NF_CONN.size,
    fields: &[
        f("timeout", 8, 4),
        f("status", 128, 8),
        f("master", 160, 8),
        f("mark", 168, 4),
    ],
};

/// `struct seccomp_data` (`include/uapi/linux/seccomp.h`), seed 000's dispatcher context.
static SECCOMP_DATA: Target = Target {
    name: "seccomp_data",
    size: 64,
    fields: &[
        ("nr", 0, 4, 4, true),
        f("arch", 4, 4),
        f("instruction_pointer", 8, 8),
        ("args", 16, 48, 8, false),
    ],
};

static TARGETS: [&Target; 4] = [&SK_BUFF, &XDP_MD, &NF_CONN, &SECCOMP_DATA];

/// The names of the types CO-RE relocations may target, for messages.
pub fn target_names() -> String {
    TARGETS
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `enum bpf_core_relo_kind`.
mod relo {
    pub const FIELD_BYTE_OFFSET: u32 = 0;
    pub const FIELD_BYTE_SIZE: u32 = 1;
    pub const FIELD_EXISTS: u32 = 2;
    pub const FIELD_SIGNED: u32 = 3;
    pub const TYPE_ID_LOCAL: u32 = 6;
    pub const TYPE_EXISTS: u32 = 8;
    pub const TYPE_SIZE: u32 = 9;
}

/// The local type name without its `___flavor` suffix (libbpf's `bpf_core_essential_name_len`).
fn essential(name: &str) -> &str {
    name.rfind("___").map_or(name, |i| &name[..i])
}

/// The local and target values of one relocation.
fn values(btf: &Btf, type_id: u32, access: &str, relo_kind: u32) -> Result<(u64, u64), String> {
    let root = btf.skip_mods(type_id)?;
    let t = btf.get(root).ok_or("no such type")?;
    let name = essential(&t.name);
    let target = TARGETS.iter().find(|x| x.name == name);
    match relo_kind {
        relo::TYPE_ID_LOCAL => return Ok((type_id as u64, type_id as u64)),
        relo::TYPE_EXISTS => return Ok((1, u64::from(target.is_some()))),
        relo::TYPE_SIZE => {
            let target = target.ok_or_else(|| unknown_type(name))?;
            return Ok((btf.size_of(root)?, target.size as u64));
        }
        relo::FIELD_BYTE_OFFSET
        | relo::FIELD_BYTE_SIZE
        | relo::FIELD_EXISTS
        | relo::FIELD_SIGNED => {}
        other => return Err(format!("relocation kind {other} is not supported")),
    }
    let idx: Vec<u32> = access
        .split(':')
        .map(|s| s.parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("access string {access:?} is malformed"))?;
    if idx.len() < 2 || ![kind::STRUCT, kind::UNION].contains(&t.kind) {
        return Err(format!(
            "access {access:?} on {name} is not a field access kbpf resolves"
        ));
    }
    let Some(target) = target else {
        if relo_kind == relo::FIELD_EXISTS {
            return Ok((1, 0));
        }
        return Err(unknown_type(name));
    };
    let m = t
        .members
        .get(idx[1] as usize)
        .ok_or_else(|| format!("{name} has no member #{}", idx[1]))?;
    let mut local_off = (idx[0] as u64)
        .saturating_mul(btf.size_of(root)?)
        .saturating_add(m.bit_offset as u64 / 8);
    let mut local_size = btf.size_of(m.type_id)?;
    let Some(&(_, off, size, elem, signed)) = target.fields.iter().find(|x| x.0 == m.name) else {
        if relo_kind == relo::FIELD_EXISTS {
            return Ok((1, 0));
        }
        return Err(format!("{name} has no field {} in kbpf", m.name));
    };
    let mut target_off = (idx[0] as u64)
        .saturating_mul(target.size as u64)
        .saturating_add(off as u64);
    let mut target_size = size as u64;
    match idx.len() {
        2 => {}
        3 if elem != size => {
            // An element of an array field.
            let lt = btf.get(btf.skip_mods(m.type_id)?).ok_or("no such type")?;
            let (le, _, _) = lt.array.ok_or("indexing a field that is not an array")?;
            let lsize = btf.size_of(le)?;
            local_off = local_off.saturating_add((idx[2] as u64).saturating_mul(lsize));
            local_size = lsize;
            if (idx[2] as u64 + 1) * elem as u64 > size as u64 {
                return Err(format!("{name}.{}[{}] is out of range", m.name, idx[2]));
            }
            target_off += idx[2] as u64 * elem as u64;
            target_size = elem as u64;
        }
        _ => {
            return Err(format!(
                "access {access:?} reaches into {name}.{}, which kbpf does not resolve",
                m.name
            ));
        }
    }
    if m.bitfield_size != 0 {
        return Err(format!("{name}.{} is a bitfield", m.name));
    }
    Ok(match relo_kind {
        relo::FIELD_BYTE_OFFSET => (local_off, target_off),
        relo::FIELD_BYTE_SIZE => (local_size, target_size),
        relo::FIELD_EXISTS => (1, 1),
        _ => {
            let lt = btf.get(btf.skip_mods(m.type_id)?).ok_or("no such type")?;
            let lsigned = lt.kind == kind::INT && lt.int_info >> 24 & 1 == 1;
            (u64::from(lsigned), u64::from(signed))
        }
    })
}

fn unknown_type(name: &str) -> String {
    format!(
        "type {name} is not one kbpf resolves CO-RE relocations against ({})",
        target_names()
    )
}

/// Applies one relocation to `insns[at]` (and its second slot for `ld_imm64`): computes the
/// local and target values, checks the instruction holds the local one, writes the target one.
pub fn apply(
    btf: &Btf,
    insns: &mut [Insn],
    at: usize,
    type_id: u32,
    access: &str,
    relo_kind: u32,
) -> Result<(), String> {
    let (local, target) = values(btf, type_id, access, relo_kind)?;
    let insn = insns
        .get(at)
        .copied()
        .ok_or("instruction is past the section's end")?;
    let class = insn.code & 7;
    let mismatch = |have: i64| {
        format!("instruction holds {have}, not the local value {local} the relocation expects")
    };
    match class {
        // ALU/ALU64 with an immediate operand.
        4 | 7 if insn.code & 0x08 == 0 => {
            if insn.imm as i64 != local as i64 {
                return Err(mismatch(insn.imm as i64));
            }
            insns[at].imm = i32::try_from(target).map_err(|_| "value does not fit imm")?;
        }
        // LDX, ST, STX: the offset.
        1..=3 => {
            if insn.off as i64 != local as i64 {
                return Err(mismatch(insn.off as i64));
            }
            insns[at].off = i16::try_from(target).map_err(|_| "value does not fit off")?;
        }
        // ld_imm64.
        0 if insn.code == 0x18 && at + 1 < insns.len() => {
            let have = insn.imm as u32 as u64 | (insns[at + 1].imm as u32 as u64) << 32;
            if have != local {
                return Err(mismatch(have as i64));
            }
            insns[at].imm = target as u32 as i32;
            insns[at + 1].imm = (target >> 32) as u32 as i32;
        }
        _ => {
            return Err(format!(
                "instruction code {:#04x} cannot be relocated",
                insn.code
            ));
        }
    }
    Ok(())
}
