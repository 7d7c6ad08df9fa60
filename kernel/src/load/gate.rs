//! The structural gate every program passes before the verifier: the attribute checks of
//! `bpf_prog_load`, then the per-instruction rules of `bpf_check`'s early passes
//! (`check_subprogs`, `resolve_pseudo_ldimm64`, the opcode and reserved-field checks of
//! `do_check`) in `kernel/bpf/verifier.c`.
//!
//! It rejects unknown opcodes and non-zero reserved fields, bad registers, writes to the
//! read-only frame pointer R10, jumps out of range or into the second half of an `ld_imm64`,
//! and subprograms that fall off their end — all with `EINVAL` and a log line naming the
//! instruction — and resolves the maps the program's `ld_imm64`s name. It runs on the trusted
//! path too.

use super::{Load, Verification};
use crate::insn::{AtomicOp, Call, Insn, Op, TAIL_CALL_CODE, branch_target, decode};
use crate::map::{Map, MapImpl};
use crate::sync::Arc;
use crate::uapi::limits::BPF_MAXINSNS;
use crate::uapi::{AttachType, ProgType, func, pseudo};
use crate::{Errno, Result};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// What a `BPF_PSEUDO_FUNC` load leaves in its register, or'ed with the callback's first
/// instruction: a non-zero value (the verifier treats the register as a non-NULL pointer)
/// that looks like no address.
pub const FUNC_TOKEN: u64 = 0xfeed_0000_0000_0000;

/// Fails with `EINVAL` and a log line.
pub(super) fn reject(log: &mut String, msg: core::fmt::Arguments<'_>) -> Errno {
    let _ = log.write_fmt(msg);
    log.push('\n');
    Errno::EINVAL
}

/// The stage: [`check_attr`], then [`check_insns`].
pub(super) fn structural_gate(l: &mut Load<'_>) -> Result {
    check_attr(l)?;
    check_line_info(l)?;
    check_insns(l)
}

/// `check_btf_line`'s structural rules: entries start at instruction 0, strictly increase, and
/// each names a whole instruction of the program (never an `ld_imm64`'s second slot).
fn check_line_info(l: &mut Load<'_>) -> Result {
    let (lines, insns) = (l.attr.line_info, l.attr.insns);
    let mut prev: Option<u32> = None;
    for (i, li) in lines.iter().enumerate() {
        let off = li.insn_off as usize;
        let bad = match prev {
            None => li.insn_off != 0,
            Some(p) => li.insn_off <= p,
        } || off >= insns.len()
            || (off > 0 && insns[off - 1].is_ld_imm64());
        if bad {
            return Err(reject(
                l.log,
                format_args!("Invalid line_info[{i}].insn_off:{}", li.insn_off),
            ));
        }
        prev = Some(li.insn_off);
    }
    Ok(())
}

/// The load attributes: program size, type, name, attach type, context size.
fn check_attr(l: &mut Load<'_>) -> Result {
    let (attr, log) = (&l.attr, &mut *l.log);
    let insns = attr.insns;
    if insns.is_empty() {
        return Err(reject(log, format_args!("empty program")));
    }
    if insns.len() > BPF_MAXINSNS {
        let _ = writeln!(
            log,
            "program has {} insns, limit is {}",
            insns.len(),
            BPF_MAXINSNS
        );
        return Err(Errno::E2BIG);
    }
    if attr.prog_type == ProgType::Unspec {
        return Err(reject(log, format_args!("unknown program type")));
    }
    if attr.name.len() > 15
        || !attr
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        return Err(reject(log, format_args!("invalid program name")));
    }
    if !attach_type_fits(attr.prog_type, attr.expected_attach_type) {
        return Err(reject(
            log,
            format_args!(
                "{} programs cannot load with expected_attach_type {:?}",
                attr.prog_type.name(),
                attr.expected_attach_type
            ),
        ));
    }
    if attr.ctx_size.is_some() && attr.prog_type != ProgType::RawBuffer {
        return Err(reject(
            log,
            format_args!("ctx_size is only for raw_buffer programs"),
        ));
    }
    Ok(())
}

/// Whether a `prog_type` program may load with `attach` (`bpf_prog_load_check_attach`, after
/// `bpf_prog_load_fixup_attach_type`); `None` and `CgroupInetIngress` are both 0. Cgroup skb
/// programs are for ingress or egress; sk_lookup, sk_reuseport (select, or also migrate; 0
/// means select) and netfilter programs need their own; syscall programs take none; every other
/// type of kbpf's takes any (its attach type is checked, if at all, when it attaches).
fn attach_type_fits(prog_type: ProgType, attach: Option<AttachType>) -> bool {
    use AttachType as A;
    let zero = matches!(attach, None | Some(A::CgroupInetIngress));
    match prog_type {
        ProgType::CgroupSkb => zero || attach == Some(A::CgroupInetEgress),
        ProgType::SkLookup => attach == Some(A::SkLookup),
        ProgType::SkReuseport => {
            zero || matches!(
                attach,
                Some(A::SkReuseportSelect | A::SkReuseportSelectOrMigrate)
            )
        }
        ProgType::Netfilter => attach == Some(A::Netfilter),
        ProgType::Syscall => zero,
        _ => true,
    }
}

/// Decodes every instruction and checks it, its jump target and the end of every subprogram;
/// records the single-slot fix-ups and the maps the program uses.
fn check_insns(l: &mut Load<'_>) -> Result {
    let insns = l.insns();
    // Pass 1: decode, per-instruction rules, map references, subprogram starts.
    let mut second_half = alloc::vec![false; insns.len()];
    let mut subprog_starts: Vec<usize> = alloc::vec![0];
    let mut pc = 0;
    while pc < insns.len() {
        let op = decode(insns, pc).map_err(|e| reject(l.log, format_args!("insn {pc}: {e}")))?;
        if matches!(op, Op::TailCall(_)) {
            return Err(reject(
                l.log,
                format_args!("insn {pc}: unknown opcode {TAIL_CALL_CODE:#04x}"),
            ));
        }
        if writes_r10(&op) {
            return Err(reject(
                l.log,
                format_args!("insn {pc}: frame pointer is read only"),
            ));
        }
        match op {
            // Whether the type offers a helper is the verifier's to say (in its words), or
            // `check::runtime`'s on the trusted path.
            Op::Call(Call::Helper(func::TAIL_CALL)) => {
                l.fixups.try_reserve(1)?;
                l.fixups.push((pc, Insn::new(TAIL_CALL_CODE, 0, 0, 0, 0)));
            }
            Op::LdImm64 {
                pseudo: pseudo::FUNC,
                ..
            } => {
                // A callback's address: the load inlines the helpers that call it
                // ([`crate::verifier::loop_inline`]), so the value is only a non-zero token.
                let t = crate::verifier::callback_target(&op, pc).ok_or(Errno::EINVAL)?;
                if l.verification == Verification::Trusted || t < 0 || t as usize >= insns.len() {
                    return Err(reject(
                        l.log,
                        format_args!("insn {pc}: callbacks need the verifier and a target"),
                    ));
                }
                subprog_starts.push(t as usize);
                let [lo, hi] = crate::insn::ld_imm64(insns[pc].dst(), FUNC_TOKEN | t as u64);
                l.fixups.try_reserve(2)?;
                l.fixups.extend([(pc, lo), (pc + 1, hi)]);
            }
            Op::Call(Call::Helper(func::LOOP)) if l.verification == Verification::Trusted => {
                return Err(reject(
                    l.log,
                    format_args!("insn {pc}: bpf_loop needs the verifier"),
                ));
            }
            Op::LdImm64 { pseudo: p, imm, .. } if p != 0 => {
                let (addr, used) = resolve_ld_imm64(p, imm, l.resolve_map, &mut l.used_maps)
                    .inspect_err(|_| {
                        let _ =
                            writeln!(l.log, "insn {pc}: invalid ld_imm64 reference (src_reg {p})");
                    })?;
                if !l.handles.iter().any(|&(h, _)| h == imm as u32) {
                    l.handles.try_reserve(1)?;
                    l.handles.push((imm as u32, used));
                }
                let (mut lo, mut hi) = (insns[pc], insns[pc + 1]);
                lo.imm = addr as u32 as i32;
                hi.imm = (addr >> 32) as u32 as i32;
                l.fixups.try_reserve(2)?;
                l.fixups.extend([(pc, lo), (pc + 1, hi)]);
            }
            _ => {}
        }
        if let Op::Call(Call::Local(_)) = op {
            let t = branch_target(&op, pc).expect("local call has a target");
            if t >= 0 && (t as usize) < insns.len() {
                subprog_starts.push(t as usize);
            }
        }
        if op.slots() == 2 {
            second_half[pc + 1] = true;
        }
        l.ops.push((pc, op));
        pc += op.slots();
    }

    // Pass 2: jump targets.
    for &(pc, ref op) in &l.ops {
        if let Some(t) = branch_target(op, pc) {
            if t < 0 || t as usize >= insns.len() {
                return Err(reject(
                    l.log,
                    format_args!("jump out of range from insn {pc} to {t}"),
                ));
            }
            if second_half[t as usize] {
                return Err(reject(
                    l.log,
                    format_args!("jump into the middle of ldimm64 insn {t}"),
                ));
            }
        }
        if let Some(t) = crate::verifier::callback_target(op, pc) {
            if second_half[t as usize] {
                return Err(reject(
                    l.log,
                    format_args!("function starts in the middle of ldimm64 insn {t}"),
                ));
            }
        }
    }

    // Pass 3: every subprogram ends in `exit` or an unconditional jump.
    subprog_starts.sort_unstable();
    subprog_starts.dedup();
    let last_of = |end: usize| -> Option<&Op> {
        l.ops
            .iter()
            .rev()
            .find(|(pc, _)| *pc < end)
            .map(|(_, op)| op)
    };
    for (i, _) in subprog_starts.iter().enumerate() {
        let end = subprog_starts.get(i + 1).copied().unwrap_or(insns.len());
        if !matches!(last_of(end), Some(Op::Exit) | Some(Op::Ja { .. })) {
            return Err(reject(
                l.log,
                format_args!("last insn is not an exit or jmp"),
            ));
        }
    }
    Ok(())
}

/// Whether `op` writes the frame pointer.
fn writes_r10(op: &Op) -> bool {
    match *op {
        Op::Alu { dst, .. }
        | Op::End { dst, .. }
        | Op::Ldx { dst, .. }
        | Op::LdImm64 { dst, .. } => dst == 10,
        Op::Atomic {
            op: AtomicOp::LoadAcquire,
            dst,
            ..
        } => dst == 10,
        Op::Atomic { op, src, .. } => {
            src == 10
                && matches!(
                    op,
                    AtomicOp::Add { fetch: true }
                        | AtomicOp::Or { fetch: true }
                        | AtomicOp::And { fetch: true }
                        | AtomicOp::Xor { fetch: true }
                        | AtomicOp::Xchg
                )
        }
        _ => false,
    }
}

/// Resolves a pseudo `ld_imm64` into the address it stands for, adding the map to `used`;
/// also returns the map's index in `used`.
fn resolve_ld_imm64(
    kind: u8,
    imm: u64,
    resolve_map: &dyn Fn(u32) -> Result<Arc<Map>>,
    used: &mut Vec<Arc<Map>>,
) -> Result<(u64, usize)> {
    let (fd, off) = (imm as u32, (imm >> 32) as u32);
    let map = match kind {
        pseudo::MAP_FD if off == 0 => resolve_map(fd)?,
        pseudo::MAP_VALUE => resolve_map(fd)?,
        _ => return Err(Errno::EINVAL),
    };
    let addr = if kind == pseudo::MAP_FD {
        Arc::as_ptr(&map) as u64
    } else {
        // Direct value access: single-element array maps only (`array_map_direct_value_addr`).
        match &map.imp {
            MapImpl::Array(a) if map.attr().max_entries == 1 && off < map.attr().value_size => {
                // SAFETY: index 0 exists (max_entries == 1); `off < value_size`.
                unsafe { a.lookup_raw(0u32.to_ne_bytes().as_ptr()).add(off as usize) as u64 }
            }
            _ => return Err(Errno::EINVAL),
        }
    };
    let idx = match used.iter().position(|m| Arc::ptr_eq(m, &map)) {
        Some(i) => i,
        None => {
            used.try_reserve(1)?;
            used.push(map);
            used.len() - 1
        }
    };
    Ok((addr, idx))
}

#[cfg(test)]
mod tests {
    use super::attach_type_fits;
    use crate::uapi::{AttachType as A, ProgType as T};

    #[test]
    fn attach_types_each_type_accepts() {
        let fits = |t, a| attach_type_fits(t, a);
        // Cgroup skb: ingress (0) or egress.
        assert!(fits(T::CgroupSkb, None));
        assert!(fits(T::CgroupSkb, Some(A::CgroupInetIngress)));
        assert!(fits(T::CgroupSkb, Some(A::CgroupInetEgress)));
        assert!(!fits(T::CgroupSkb, Some(A::TcxIngress)));
        // Netfilter and sk_lookup: their own, not 0.
        assert!(fits(T::Netfilter, Some(A::Netfilter)));
        assert!(!fits(T::Netfilter, None));
        assert!(!fits(T::Netfilter, Some(A::CgroupInetEgress)));
        assert!(fits(T::SkLookup, Some(A::SkLookup)));
        assert!(!fits(T::SkLookup, None));
        // sk_reuseport: 0 is select.
        assert!(fits(T::SkReuseport, None));
        assert!(fits(T::SkReuseport, Some(A::CgroupInetIngress)));
        assert!(fits(T::SkReuseport, Some(A::SkReuseportSelectOrMigrate)));
        assert!(!fits(T::SkReuseport, Some(A::SkLookup)));
        // Syscall: none; the others: any.
        assert!(fits(T::Syscall, None));
        assert!(!fits(T::Syscall, Some(A::Xdp)));
        assert!(fits(T::Xdp, Some(A::Netfilter)));
        assert!(fits(T::SchedCls, Some(A::CgroupInetEgress)));
    }
}
