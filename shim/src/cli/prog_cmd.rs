//! `kbpf prog load|run|show|dump` and `kbpf verify` (bpftool's `prog` object; `bpf_prog_load`,
//! `BPF_PROG_TEST_RUN`, `BPF_OBJ_GET_INFO_BY_FD` of `kernel/bpf/syscall.c`). Files are objects
//! (`.o`, through [`crate::elf`]) or `.data` programs, which every command reads the way
//! `conformance` does: the `-- mem` bytes are a raw-buffer context of their length.

use super::CmdError;
use super::args::{DumpArg, Pick, ProgCmd, VerifyArgs};
use super::state::{DataProg, State};
use crate::conformance::{self, Engine};
use crate::data::{self, DataFile, Parsed};
use crate::dump::{self, DumpKind};
use crate::elf::{LoadOpts, LoadedObject, Object};
use kbpf::syscall::{self, Fd, ObjInfo};
use kbpf::uapi::ProgType;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// Whether `path` names an ELF object (by its magic, else by its `.o` extension).
pub fn is_object(path: &Path) -> bool {
    let magic = std::fs::File::open(path).ok().and_then(|mut f| {
        let mut m = [0u8; 4];
        std::io::Read::read_exact(&mut f, &mut m).ok().map(|_| m)
    });
    match magic {
        Some(m) => m == *b"\x7fELF",
        None => path.extension().is_some_and(|e| e == "o"),
    }
}

/// Reads a `.data` file.
pub(crate) fn read_data(path: &Path) -> Result<DataFile, CmdError> {
    match data::parse_file(path) {
        Ok(Parsed::Test(case)) => Ok(case),
        Ok(Parsed::Skip(why)) => Err(CmdError::usage(format!("{}: {why}", path.display()))),
        Err(e) => Err(CmdError::usage(e)),
    }
}

/// Loads a `.data` file's program: as its `# type:` (verified), or as a raw buffer of its
/// memory's length the way `conformance` loads it.
pub(crate) fn load_data(case: &DataFile, path: &Path) -> Result<Fd, CmdError> {
    match case.prog_type.as_deref().map(ProgType::from_name) {
        Some(None) => Err(CmdError::usage(format!(
            "unknown program type {}",
            case.prog_type.as_deref().unwrap_or("")
        ))),
        Some(Some(t)) if t != ProgType::RawBuffer => {
            let mut log = String::new();
            syscall::prog_load_log(&kbpf::ProgLoadAttr::new(t, &case.program), &mut log).map_err(
                |e| CmdError {
                    log,
                    ..CmdError::errno("load", e)
                },
            )
        }
        // The conformance suite's own refusals (named by file) may take the trusted path.
        _ => {
            let name = path.file_name().and_then(|n| n.to_str());
            conformance::load(&case.program, case.mem.len(), name)
                .map(|(fd, _)| fd)
                .map_err(refused)
        }
    }
}

/// The program of `obj` that `pick` names; with no pick, the object's only program.
pub(crate) fn pick_prog<'a>(
    obj: &'a LoadedObject,
    pick: &Pick,
    path: &Path,
) -> Result<&'a crate::elf::LoadedProg, CmdError> {
    let hits: Vec<_> = obj
        .progs
        .iter()
        .filter(|p| pick.prog.as_ref().is_none_or(|n| *n == p.name))
        .filter(|p| pick.section.as_ref().is_none_or(|s| *s == p.section))
        .collect();
    match hits.as_slice() {
        [p] => Ok(p),
        [] => Err(CmdError::usage(format!(
            "{}: no such program (it has: {})",
            path.display(),
            obj.progs
                .iter()
                .map(|p| format!("{} in {}", p.name, p.section))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        more => Err(CmdError::usage(format!(
            "{}: {} programs match; pick one with --prog ({})",
            path.display(),
            more.len(),
            more.iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// `kbpf prog …`.
pub fn run(cmd: ProgCmd, state: &mut State, out: &mut dyn Write) -> Result<(), CmdError> {
    match cmd {
        ProgCmd::Load {
            file,
            section,
            prog_type,
            engine,
            privileged,
        } => {
            state.engine(engine)?;
            if !is_object(&file) {
                let case = read_data(&file)?;
                let fd = load_data(&case, &file)?;
                let name = file
                    .file_stem()
                    .map_or("prog".into(), |s| s.to_string_lossy().into_owned());
                print_prog(out, &name, &file.display().to_string(), fd)?;
                state.data_progs.push(DataProg {
                    name,
                    path: file,
                    fd,
                    mem: case.mem,
                });
                return Ok(());
            }
            let prog_type = prog_type
                .map(|t| {
                    ProgType::from_name(&t)
                        .ok_or_else(|| CmdError::usage(format!("unknown program type {t}")))
                })
                .transpose()?;
            let opts = LoadOpts {
                section,
                prog: None,
                prog_type,
                privileged,
            };
            let obj = state.load_object(&file, &opts)?;
            for p in &obj.progs {
                print_prog(out, &p.name, &p.section, p.fd)?;
            }
            for (m, fd) in obj.object.maps.iter().zip(&obj.map_fds) {
                let a = m.attr;
                writeln!(
                    out,
                    "map {:<12} {:?} key {} value {} max_entries {} (handle {fd})",
                    m.name, a.map_type, a.key_size, a.value_size, a.max_entries
                )?;
            }
            Ok(())
        }
        ProgCmd::Run {
            file,
            pick,
            engine,
            data_in,
            data_out,
            ctx_in,
            ctx_out,
            repeat,
            privileged,
            netns,
        } => {
            state.engine(engine)?;
            let files = super::run_cmd::RunFiles {
                data_in,
                data_out,
                ctx_in,
                ctx_out,
            };
            let how = super::run_cmd::RunHow {
                repeat,
                privileged,
                netns,
            };
            super::run_cmd::run(state, &file, &pick, &files, &how, out)
        }
        ProgCmd::Show { json } => show(state, json, out),
        ProgCmd::Dump { kind, file, pick } => {
            let kind = match kind {
                DumpArg::Xlated => DumpKind::Xlated,
                DumpArg::Jited => {
                    Engine::Jit.select();
                    DumpKind::Jited
                }
            };
            if !is_object(&file) {
                let case = read_data(&file)?;
                let fd = load_data(&case, &file)?;
                let r = dump::prog(kind, fd, None, out);
                let _ = syscall::close(fd);
                return r.map_err(refused);
            }
            let obj = state.object_or_load(&file, false)?;
            let progs: Vec<_> = match (&pick.prog, &pick.section) {
                (None, None) => obj.progs.iter().collect(),
                _ => vec![pick_prog(obj, &pick, &file)?],
            };
            for p in progs {
                writeln!(
                    out,
                    "{}: {} (section {}):",
                    file.display(),
                    p.name,
                    p.section
                )?;
                let prog = syscall::prog_get(p.fd).map_err(|e| CmdError::errno("prog", e))?;
                let lines = obj.object.btf.as_ref().map(|b| (b, prog.line_info()));
                dump::prog(kind, p.fd, lines, out).map_err(refused)?;
            }
            Ok(())
        }
    }
}

/// One line per loaded program.
fn print_prog(out: &mut dyn Write, name: &str, section: &str, fd: Fd) -> Result<(), CmdError> {
    if let Ok(ObjInfo::Prog(i)) = syscall::obj_get_info(fd) {
        writeln!(
            out,
            "prog {name:<16} id {:>3} {} ({section}), {} insns, {}",
            i.id,
            i.prog_type.name(),
            i.xlated_insns,
            if i.jited { "jited" } else { "interpreted" }
        )?;
    }
    Ok(())
}

/// What `prog show --json` prints per program.
#[derive(Serialize)]
struct ProgJson {
    id: u32,
    name: String,
    #[serde(rename = "type")]
    prog_type: &'static str,
    file: String,
    section: Option<String>,
    xlated_insns: u32,
    jited: bool,
    bytes_jited: u32,
    map_ids: Vec<u32>,
}

fn show(state: &State, json: bool, out: &mut dyn Write) -> Result<(), CmdError> {
    let mut rows = Vec::new();
    let all = state
        .objects
        .iter()
        .flat_map(|(path, o)| {
            o.progs
                .iter()
                .map(move |p| (p.name.clone(), path, Some(p.section.clone()), p.fd))
        })
        .chain(
            state
                .data_progs
                .iter()
                .map(|d| (d.name.clone(), &d.path, None, d.fd)),
        );
    for (name, path, section, fd) in all {
        let Ok(ObjInfo::Prog(i)) = syscall::obj_get_info(fd) else {
            continue;
        };
        rows.push(ProgJson {
            id: i.id,
            name,
            prog_type: i.prog_type.name(),
            file: path.display().to_string(),
            section,
            xlated_insns: i.xlated_insns,
            jited: i.jited,
            bytes_jited: i.jited_prog_len,
            map_ids: i.map_ids,
        });
    }
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&rows).map_err(|e| CmdError::usage(e.to_string()))?
        )?;
        return Ok(());
    }
    for r in rows {
        writeln!(
            out,
            "{}: {}  name {}  {}\n\t{}  xlated {}  {}  map_ids {:?}",
            r.id,
            r.prog_type,
            r.name,
            r.section.map_or(String::new(), |s| format!("section {s}")),
            r.file,
            r.xlated_insns,
            if r.jited {
                format!("jited {}B", r.bytes_jited)
            } else {
                "interpreted".into()
            },
            r.map_ids
        )?;
    }
    Ok(())
}

/// `kbpf verify`: exit status 0 when every selected program is accepted, 1 when one is
/// refused, 2 for unusable input (an error).
pub fn verify(v: &VerifyArgs, out: &mut dyn Write) -> Result<u8, CmdError> {
    if !is_object(&v.file) {
        let case = read_data(&v.file)?;
        let opts = crate::verify_cmd::VerifyOpts {
            prog_type: v.prog_type.clone(),
            attach: v.attach.clone(),
            privileged: v.privileged,
            host: v.host,
        };
        return crate::verify_cmd::report(&v.file.display().to_string(), &case, &opts, out)
            .map_err(CmdError::usage);
    }
    let bytes = std::fs::read(&v.file)
        .map_err(|e| CmdError::usage(format!("{}: {e}", v.file.display())))?;
    let obj = Object::parse(&bytes).map_err(|e| CmdError::elf(&v.file, e))?;
    let prog_type = v
        .prog_type
        .as_ref()
        .map(|t| {
            ProgType::from_name(t)
                .ok_or_else(|| CmdError::usage(format!("unknown program type {t}")))
        })
        .transpose()?;
    let opts = LoadOpts {
        section: v.pick.section.clone(),
        prog: v.pick.prog.clone(),
        prog_type,
        privileged: v.privileged,
    };
    if !obj.progs.iter().any(|p| opts.selects(p)) {
        return Err(CmdError::usage(format!(
            "{}: no program matches",
            v.file.display()
        )));
    }
    let fds = obj.create_maps().map_err(|e| CmdError::elf(&v.file, e))?;
    let host = v.host.then(crate::host_bpf::HostVerifier::open);
    let mut refused = false;
    for p in obj.progs.iter().filter(|p| opts.selects(p)) {
        let insns = crate::elf::bind(p, &fds);
        let attr = crate::elf::attr(p, &insns, &opts).with_privileged(v.privileged);
        let mut log = String::new();
        let r = syscall::prog_verify_log(&attr, &mut log);
        let verdict = match &r {
            Ok(_) => "accepted".to_string(),
            Err(e) => {
                refused = true;
                format!("rejected ({e:?})")
            }
        };
        writeln!(
            out,
            "{}: {} (section {}): {verdict}",
            v.file.display(),
            p.name,
            p.section
        )?;
        write!(out, "{}", crate::elf::annotate(&obj, p, &log))?;
        if let Ok(Some(gap)) = r {
            writeln!(
                out,
                "note: prog_load would refuse it ({:?}): {gap}",
                kbpf::Errno::ENOTSUPP
            )?;
        }
        match &host {
            Some(Ok(h)) => {
                let hv = crate::elf_host::host_verdict(h, &obj, p, v.privileged);
                writeln!(out, "host kernel: {}", crate::elf_host::describe(hv))?;
            }
            Some(Err(why)) => writeln!(out, "host kernel: unavailable: {why}")?,
            None => {}
        }
    }
    for fd in fds {
        let _ = syscall::close(fd);
    }
    Ok(u8::from(refused))
}

/// A refusal (exit status 1) with message `msg`.
fn refused(msg: String) -> CmdError {
    CmdError {
        status: 1,
        ..CmdError::usage(msg)
    }
}
