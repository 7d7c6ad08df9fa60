//! `kbpf tcx attach|detach|query|script` (bpftool's `net attach tcx_*` and `prog query`;
//! `BPF_PROG_ATTACH`/`BPF_LINK_CREATE`/`BPF_PROG_DETACH`/`BPF_PROG_QUERY` on kbpf's tcx).
//! Devices are ifindexes, created on first use.

use super::CmdError;
use super::args::{DirArg, TcxCmd};
use super::state::State;
use kbpf::mprog::{MprogFlags, Query};
use kbpf::tcx::{self, AttachAttr, LinkCreateAttr};
use kbpf::uapi::AttachType;
use serde::Serialize;
use std::io::{Read, Write};

fn attach_type(d: DirArg) -> AttachType {
    match d {
        DirArg::Ingress => AttachType::TcxIngress,
        DirArg::Egress => AttachType::TcxEgress,
    }
}

/// Creates device `dev` unless it exists.
fn ensure_dev(dev: u32) -> Result<(), CmdError> {
    if tcx::dev_get(dev).is_ok() {
        return Ok(());
    }
    tcx::dev_create(dev).map_err(|e| CmdError::errno(format!("device {dev}"), e))
}

/// The hook's programs in run order: (prog id, link id), and the revision.
pub fn query(dev: u32, dir: DirArg) -> Result<(Vec<(u32, u32)>, u64), CmdError> {
    let mut ids = [0u32; 64];
    let mut links = [0u32; 64];
    let mut q = Query {
        count: 64,
        prog_ids: Some(&mut ids),
        link_ids: Some(&mut links),
        ..Query::default()
    };
    tcx::prog_query(dev, attach_type(dir), &mut q).map_err(|e| CmdError::errno("query", e))?;
    let n = (q.count as usize).min(64);
    let rev = q.revision;
    Ok((
        ids[..n]
            .iter()
            .copied()
            .zip(links[..n].iter().copied())
            .collect(),
        rev,
    ))
}

#[derive(Serialize)]
struct QueryJson {
    ifindex: u32,
    direction: &'static str,
    revision: u64,
    progs: Vec<QueryProg>,
}

#[derive(Serialize)]
struct QueryProg {
    id: u32,
    name: Option<String>,
    link_id: u32,
}

fn print_query(
    state: &State,
    dev: u32,
    dir: DirArg,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CmdError> {
    let (progs, revision) = query(dev, dir)?;
    let q = QueryJson {
        ifindex: dev,
        direction: if dir == DirArg::Ingress {
            "ingress"
        } else {
            "egress"
        },
        revision,
        progs: progs
            .into_iter()
            .map(|(id, link_id)| QueryProg {
                id,
                name: state.prog_name(id),
                link_id,
            })
            .collect(),
    };
    if json {
        let s = serde_json::to_string(&q).map_err(|e| CmdError::usage(e.to_string()))?;
        writeln!(out, "{s}")?;
        return Ok(());
    }
    let names: Vec<String> = q
        .progs
        .iter()
        .map(|p| {
            let n = p.name.clone().unwrap_or_else(|| format!("#{}", p.id));
            if p.link_id != 0 {
                format!("{n} (link {})", p.link_id)
            } else {
                n
            }
        })
        .collect();
    writeln!(
        out,
        "dev {dev} {}: revision {revision}: {}",
        q.direction,
        if names.is_empty() {
            "(empty)".into()
        } else {
            names.join(" -> ")
        }
    )?;
    Ok(())
}

/// `kbpf tcx …`.
pub fn run(
    cmd: TcxCmd,
    state: &mut State,
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<u8, CmdError> {
    match cmd {
        TcxCmd::Attach {
            dev,
            dir,
            prog,
            before,
            after,
            replace,
            link,
        } => {
            ensure_dev(dev)?;
            let fd = state.prog(&prog)?;
            let mut flags = MprogFlags::empty();
            let mut relative = 0;
            for (rel, flag) in [(&before, MprogFlags::BEFORE), (&after, MprogFlags::AFTER)] {
                if let Some(r) = rel {
                    flags |= flag;
                    if r != "-" {
                        relative = state.prog(r)?;
                    }
                }
            }
            if link {
                let lfd = tcx::link_create(&LinkCreateAttr {
                    prog_fd: fd,
                    target_ifindex: dev,
                    attach_type: attach_type(dir),
                    flags: flags.bits(),
                    relative_fd: relative,
                    expected_revision: 0,
                })
                .map_err(|e| CmdError::errno(format!("link_create {prog}"), e))?;
                state.links.push((prog, lfd));
            } else {
                let mut a = AttachAttr::new(dev, attach_type(dir));
                a.attach_bpf_fd = fd;
                if let Some(r) = &replace {
                    flags |= MprogFlags::REPLACE;
                    a.replace_bpf_fd = state.prog(r)?;
                }
                a.attach_flags = flags.bits();
                a.relative_fd = relative;
                tcx::prog_attach(&a).map_err(|e| CmdError::errno(format!("attach {prog}"), e))?;
            }
            print_query(state, dev, dir, false, out)?;
            Ok(0)
        }
        TcxCmd::Detach { dev, dir, prog } => {
            let mut a = AttachAttr::new(dev, attach_type(dir));
            a.attach_bpf_fd = state.prog(&prog)?;
            tcx::prog_detach(&a).map_err(|e| CmdError::errno(format!("detach {prog}"), e))?;
            print_query(state, dev, dir, false, out)?;
            Ok(0)
        }
        TcxCmd::Query { dev, dir, json } => {
            print_query(state, dev, dir, json, out)?;
            Ok(0)
        }
        TcxCmd::Script {
            echo,
            egress,
            first_last,
            host,
        } => {
            let mut script = String::new();
            input.read_to_string(&mut script)?;
            let text = if host {
                // The host cannot serve (no root, no BPF or tcx): exit 2, as compare-tailcall.
                crate::host_mprog::run_script(&script, echo, egress)
                    .map_err(|e| CmdError::usage(format!("tcx script --host: {e}")))?
            } else {
                let opts = crate::tcx_script::Options {
                    echo,
                    egress,
                    first_last,
                };
                crate::tcx_script::run_script(&script, opts)
                    .map_err(|e| CmdError::errno("tcx script", e))?
            };
            write!(out, "{text}")?;
            Ok(0)
        }
    }
}
