//! The load's judgement of a program that passed the gate: the verifier (`bpf_check` in
//! `kernel/bpf/verifier.c`), then whether every function it calls can run in kbpf.
//!
//! A program that verifies but calls a helper or kfunc whose run-time side kbpf does not have
//! yet is refused with `ENOTSUPP` and a log naming the function; [`super::prog_verify`] reports
//! it beside the verdict instead.

use super::gate::reject;
use super::{Load, Verification, Verified};
use crate::Errno;
use crate::Result;
use crate::helpers::func_proto;
use crate::insn::{Call, Op};
use crate::uapi::ProgType;
use crate::verifier::loop_inline;
use crate::verifier::{LoopSite, VerifierEnv, VerifierOutput, verify as bpf_check};
use alloc::string::String;
use core::fmt::Write;

/// A function a verified program calls whose run-time side kbpf does not have yet: the load
/// refuses the program with `ENOTSUPP`; [`crate::syscall::prog_verify_log`] reports it beside
/// the verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeGap {
    /// A helper (its id and name without `bpf_`).
    Helper {
        /// `BPF_FUNC_*`.
        id: i32,
        /// The name without the `bpf_` prefix.
        name: &'static str,
    },
    /// A kfunc, by name.
    Kfunc {
        /// The kernel function's name.
        name: &'static str,
    },
}

impl core::fmt::Display for RuntimeGap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RuntimeGap::Helper { id, name } => write!(
                f,
                "helper bpf_{name}#{id} has no run-time implementation in kbpf yet"
            ),
            RuntimeGap::Kfunc { name } => write!(
                f,
                "kernel function {name} has no run-time implementation in kbpf yet"
            ),
        }
    }
}

/// The stage: runs the verifier on the program as written, unless this is the trusted path; a
/// rejection appends the verifier's log and returns its errno. The gate has resolved every map
/// an `ld_imm64` names.
pub(super) fn verify(l: &mut Load<'_>) -> Result {
    if l.verification == Verification::Trusted {
        return Ok(());
    }
    let resolve_map = l.resolve_map;
    let maps = |h: u32| resolve_map(h).ok().map(|m| *m.attr());
    let env = VerifierEnv {
        prog_type: l.attr.prog_type,
        maps: &maps,
        ctx_size: l.attr.ctx_size.unwrap_or(0) as usize,
        privileged: l.attr.privileged,
        // Both modes are a loader with CAP_BPF, for which the kernel judges back-edges by
        // exploration (bounded loops are accepted).
        allow_loops: true,
        expected_attach_type: l.attr.expected_attach_type,
    };
    match bpf_check(l.attr.insns, &env) {
        Ok(out) => {
            l.log.push_str(&out.log);
            check_loop_sites(&out, l.log)?;
            l.verified = Some(Verified {
                ctx_access: out.ctx_access,
                seen: out.seen,
                call_map: out.call_map,
                call_key: out.call_key,
                loop_sites: out.loop_sites,
            });
            Ok(())
        }
        Err(e) => {
            l.log.push_str(&e.log);
            Err(e.errno)
        }
    }
}

/// Every `bpf_loop` call can be inlined ([`crate::verifier::loop_inline`]): one callback on
/// every path, and room in the caller's frame for the loop's spills. Otherwise `ENOTSUPP`
/// (the kernel would call the helper; kbpf has no helper that calls back into an engine).
fn check_loop_sites(out: &VerifierOutput, log: &mut String) -> Result {
    for (pc, site) in out.loop_sites.iter().enumerate() {
        let why = match site {
            LoopSite::None => continue,
            LoopSite::Varies => "its callback differs between paths",
            LoopSite::Fixed { .. } => {
                let sub = match out.subprogs.binary_search(&pc) {
                    Ok(i) => i,
                    Err(i) => i - 1,
                };
                if loop_inline::check_room(out.stack_depth[sub]) {
                    continue;
                }
                "its caller's stack leaves no room for the loop's 24 bytes"
            }
        };
        let _ = writeln!(
            log,
            "insn {pc}: bpf_loop cannot be inlined: {why}; kbpf runs bpf_loop only inlined"
        );
        return Err(Errno::ENOTSUPP);
    }
    Ok(())
}

/// The stage: records the first helper or kfunc the program calls whose run-time side kbpf
/// does not have yet ([`RuntimeGap`]). On the trusted path (no verifier) a helper must also be
/// offered to the program type and a kfunc id name a function it may call; those are refused
/// here. Whether a function runs is a property of its entry in the helper table
/// ([`crate::helpers::HelperProto::has_runtime`]) or the kfunc registry
/// ([`crate::kfunc::Kfunc::has_runtime`]).
pub(super) fn runtime(l: &mut Load<'_>) -> Result {
    l.gap = first_gap(&l.ops, l.attr.prog_type, l.log)?;
    Ok(())
}

/// The stage: a load refuses a program with a [`RuntimeGap`] (`ENOTSUPP`, the gap logged).
pub(super) fn refuse_gap(l: &mut Load<'_>) -> Result {
    match &l.gap {
        Some(gap) => {
            let _ = writeln!(l.log, "{gap}");
            Err(Errno::ENOTSUPP)
        }
        None => Ok(()),
    }
}

fn first_gap(
    ops: &[(usize, Op)],
    prog_type: ProgType,
    log: &mut String,
) -> Result<Option<RuntimeGap>> {
    for &(pc, op) in ops {
        match op {
            Op::Call(Call::Helper(id)) => {
                let Some(p) = func_proto(prog_type, id) else {
                    // The verifier's words (`check_helper_call`).
                    let name = crate::helpers::func_id_name(id);
                    let msg = if (0..crate::helpers::FUNC_MAX_ID).contains(&id) {
                        "program of this type cannot use helper"
                    } else {
                        "invalid func"
                    };
                    return Err(reject(log, format_args!("insn {pc}: {msg} {name}#{id}")));
                };
                if !p.has_runtime() {
                    return Ok(Some(RuntimeGap::Helper { id, name: p.name }));
                }
            }
            Op::Call(Call::Kfunc(id)) => match crate::kfunc::find(id) {
                None => {
                    return Err(reject(
                        log,
                        format_args!("insn {pc}: kernel btf_id {} is not a function", id as u32),
                    ));
                }
                Some(k) if !k.allowed_for(prog_type) => {
                    let _ = writeln!(log, "calling kernel function {} is not allowed", k.name);
                    return Err(Errno::EACCES);
                }
                Some(k) if !k.has_runtime() => {
                    return Ok(Some(RuntimeGap::Kfunc { name: k.name }));
                }
                Some(k) => k.prepare()?,
            },
            _ => {}
        }
    }
    Ok(None)
}
