//! `kbpf verify FILE [--type T] [--attach A] [--privileged] [--host]`: loads a `.data` file's
//! program through the verifier and prints the verdict and the verifier log (what `bpftool
//! prog load` with a log level shows; the load is `bpf_prog_load` in `kernel/bpf/syscall.c`).
//! `--host` also asks the host Linux kernel's verifier ([`crate::host_bpf`]) and prints its
//! verdict and the last lines of its log, for comparison.
//!
//! The file's headers say what the program needs: `# type:` (default `raw_buffer`, whose
//! context is the `-- mem` bytes), `# attach:` (`none` for none) and `# map:` lines, which
//! this command creates in order; an `ld_imm64` with `src_reg` 1 (`BPF_PSEUDO_MAP_FD`) or 2
//! (`BPF_PSEUDO_MAP_VALUE`) whose immediate is `i` refers to the `i`-th declared map, and is
//! rewritten to that map's handle before the load. `--type` and `--attach` override the
//! headers. The verdict is the verifier's (`syscall::prog_verify_log`): a program it accepts
//! that calls a helper or kfunc kbpf cannot run yet is accepted, with a `note:` line saying
//! that `prog_load` would refuse it. Exit status: 0 accepted, 1 rejected, 2 unusable input.

use crate::data::DataFile;
use kbpf::insn::{Insn, Op, decode};
use kbpf::syscall::{self, Fd};
use kbpf::uapi::{AttachType, MapType, ProgType, pseudo};
use kbpf::{Errno, MapAttr, ProgLoadAttr};
use std::io::Write;

/// What `kbpf verify` was asked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyOpts {
    /// `--type`: overrides `# type:`.
    pub prog_type: Option<String>,
    /// `--attach`: overrides `# attach:`.
    pub attach: Option<String>,
    /// `--privileged`: root's rules instead of `CAP_BPF` without `CAP_PERFMON`.
    pub privileged: bool,
    /// `--host`: ask the host kernel's verifier too.
    pub host: bool,
}

/// The verdict on one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// `None` when accepted, else the errno of the rejection.
    pub rejected: Option<Errno>,
    /// The verifier log (or why the program could not be loaded at all).
    pub log: String,
    /// For an accepted program: why `prog_load` would still refuse it (a function it calls has
    /// no run-time side in kbpf yet).
    pub note: Option<String>,
}

/// The attach type named `name` (`None` for `none`), or an error for a name kbpf does not know.
fn attach_type(name: &str) -> Result<Option<AttachType>, String> {
    Ok(Some(match name {
        "none" => return Ok(None),
        "sk_lookup" => AttachType::SkLookup,
        "xdp" => AttachType::Xdp,
        "tcx_ingress" => AttachType::TcxIngress,
        "tcx_egress" => AttachType::TcxEgress,
        "cgroup_inet_ingress" => AttachType::CgroupInetIngress,
        "cgroup_inet_egress" => AttachType::CgroupInetEgress,
        "netfilter" => AttachType::Netfilter,
        other => return Err(format!("unknown attach type {other}")),
    }))
}

/// Rewrites each map-referencing `ld_imm64` from a declaration index to the map's handle.
fn bind_maps(program: &[Insn], fds: &[Fd]) -> Result<Vec<Insn>, String> {
    let mut insns = program.to_vec();
    let mut pc = 0;
    while pc < insns.len() {
        let Ok(op) = decode(&insns, pc) else {
            // Malformed instructions are the verifier's to report.
            pc += 1;
            continue;
        };
        if let Op::LdImm64 { pseudo: p, .. } = op
            && (p == pseudo::MAP_FD || p == pseudo::MAP_VALUE)
        {
            let i = insns[pc].imm;
            let fd = usize::try_from(i)
                .ok()
                .and_then(|i| fds.get(i))
                .ok_or_else(|| format!("insn {pc}: ld_imm64 refers to map {i}, not declared"))?;
            insns[pc].imm = *fd as i32;
        }
        pc += op.slots();
    }
    Ok(insns)
}

/// Verifies `case` under `opts`. `Err` is unusable input (unknown type or attach type, a map
/// type kbpf does not know, a reference to an undeclared map).
pub fn verify_case(case: &DataFile, opts: &VerifyOpts) -> Result<Verdict, String> {
    let type_name = opts
        .prog_type
        .as_deref()
        .or(case.prog_type.as_deref())
        .unwrap_or("raw_buffer");
    let prog_type = ProgType::from_name(type_name)
        .ok_or_else(|| format!("unknown program type {type_name}"))?;
    let attach = match opts.attach.as_deref().or(case.attach.as_deref()) {
        Some(a) => attach_type(a)?,
        None => None,
    };
    let mut attrs = Vec::new();
    for m in &case.maps {
        let t = MapType::from_name(&m.map_type)
            .ok_or_else(|| format!("map {}: unknown map type {}", m.name, m.map_type))?;
        attrs.push((m, MapAttr::new(t, m.key_size, m.value_size, m.max_entries)));
    }
    let mut fds = Vec::new();
    let verdict = (|| {
        for (m, attr) in &attrs {
            match syscall::map_create(attr) {
                Ok(fd) => fds.push(fd),
                Err(e) => {
                    return Ok(Verdict {
                        rejected: Some(e),
                        log: format!(
                            "map {} ({}): map_create: {e:?}: kbpf does not model this map yet\n",
                            m.name, m.map_type
                        ),
                        note: None,
                    });
                }
            }
        }
        let insns = bind_maps(&case.program, &fds)?;
        let mut attr = ProgLoadAttr::new(prog_type, &insns).with_privileged(opts.privileged);
        attr.expected_attach_type = attach;
        if prog_type == ProgType::RawBuffer {
            let len = u32::try_from(case.mem.len()).map_err(|_| "memory too large")?;
            attr = attr.with_ctx_size(len);
        }
        // The verifier's verdict, not the load's: a program that verifies but calls a function
        // kbpf cannot run yet is accepted, with a note.
        let mut log = String::new();
        let r = syscall::prog_verify_log(&attr, &mut log);
        let note = match &r {
            Ok(Some(gap)) => Some(format!(
                "prog_load would refuse it ({:?}): {gap}",
                Errno::ENOTSUPP
            )),
            _ => None,
        };
        Ok(Verdict {
            rejected: r.err(),
            log,
            note,
        })
    })();
    for fd in fds {
        let _ = syscall::close(fd);
    }
    verdict
}

/// `kbpf verify` on a `.data` file: prints the verdict (`FILE: accepted` or `FILE: rejected
/// (ERRNO)`), the log, a note when `prog_load` would still refuse it, and with `--host` the
/// host kernel's verdict. Returns the exit status (0 accepted, 1 rejected); `Err` is unusable
/// input (exit status 2).
pub fn report(
    file: &str,
    case: &DataFile,
    opts: &VerifyOpts,
    out: &mut dyn Write,
) -> Result<u8, String> {
    let v = verify_case(case, opts).map_err(|e| format!("{file}: {e}"))?;
    let verdict = match v.rejected {
        None => "accepted".to_string(),
        Some(e) => format!("rejected ({e:?})"),
    };
    let io = |e: std::io::Error| e.to_string();
    writeln!(out, "{file}: {verdict}").map_err(io)?;
    write!(out, "{}", v.log).map_err(io)?;
    if let Some(note) = &v.note {
        writeln!(out, "note: {note}").map_err(io)?;
    }
    if opts.host {
        writeln!(out, "host kernel: {}", host_verdict(case, opts)).map_err(io)?;
    }
    Ok(u8::from(v.rejected.is_some()))
}

/// The host kernel's verdict on `case`, as one line plus the end of its log.
fn host_verdict(case: &DataFile, opts: &VerifyOpts) -> String {
    use crate::host_bpf::{HostLoad, HostVerdict, HostVerifier};
    let type_name = opts
        .prog_type
        .as_deref()
        .or(case.prog_type.as_deref())
        .unwrap_or("raw_buffer");
    let prog_type = match ProgType::from_name(type_name) {
        Some(ProgType::RawBuffer) | None => {
            return format!("not asked: it has no {type_name} program type");
        }
        Some(t) => t,
    };
    let mut maps = Vec::new();
    for m in &case.maps {
        match MapType::from_name(&m.map_type) {
            Some(t) => maps.push(MapAttr::new(t, m.key_size, m.value_size, m.max_entries)),
            None => return format!("not asked: unknown map type {}", m.map_type),
        }
    }
    let expected_attach_type = match opts.attach.as_deref().or(case.attach.as_deref()) {
        Some(a) => match attach_type(a) {
            Ok(t) => t,
            Err(e) => return format!("not asked: {e}"),
        },
        None => None,
    };
    let host = match HostVerifier::open() {
        Ok(h) => h,
        Err(why) => return format!("unavailable: {why}"),
    };
    let load = HostLoad {
        prog_type,
        insns: case.program.clone(),
        maps,
        privileged: opts.privileged,
        expected_attach_type,
    };
    match host.load(load) {
        Ok(HostVerdict::Accepted) => "accepted".into(),
        Ok(HostVerdict::Rejected { errno, log }) => {
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("rejected (errno {errno})\n{}", tail.join("\n"))
        }
        Err(e) => format!("unavailable: {e}"),
    }
}
