//! `kbpf prog dump xlated|jited FILE`: load a program from a `.data` file and print it as the
//! kernel holds it — the rewritten instructions, or the JIT's x86-64 with each BPF instruction's
//! index where its code begins (`bpftool prog dump xlated|jited`).

use crate::conformance::Engine;
use crate::data::{self, Parsed};
use kbpf::syscall;
use kbpf::uapi::ProgType;
use kbpf::{Errno, ProgLoadAttr};
use std::io::Write;
use std::path::Path;

/// What to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpKind {
    /// The instructions after the load-time rewrites.
    Xlated,
    /// The JIT image.
    Jited,
}

/// Loads the program in `path` and prints it.
pub fn run(kind: DumpKind, path: &Path, out: &mut dyn Write) -> Result<(), String> {
    let case = match data::parse_file(path)? {
        Parsed::Test(case) => case,
        Parsed::Skip(why) => return Err(format!("{}: {why}", path.display())),
    };
    let prog_type = match case.prog_type.as_deref() {
        None => ProgType::RawBuffer,
        Some(name) => {
            ProgType::from_name(name).ok_or_else(|| format!("unknown program type {name}"))?
        }
    };
    if kind == DumpKind::Jited {
        Engine::Jit.select();
    }
    let mut log = String::new();
    let fd = syscall::prog_load_log(&ProgLoadAttr::new(prog_type, &case.program), &mut log)
        .map_err(|e: Errno| format!("load: {e:?}: {}", log.trim()))?;
    let prog = syscall::prog_get(fd).map_err(|e| format!("{e:?}"))?;
    let io = |e: std::io::Error| e.to_string();
    match kind {
        DumpKind::Xlated => {
            let lines =
                kbpf::insn::disasm(prog.insns()).map_err(|(pc, e)| format!("insn {pc}: {e}"))?;
            for (pc, text) in lines {
                writeln!(out, "{pc:>5}: {text}").map_err(io)?;
            }
        }
        DumpKind::Jited => {
            let Some(jited) = prog.jited_code().map_err(|e| format!("{e:?}"))? else {
                return Err("the JIT refused this program; it runs interpreted".into());
            };
            let (code, entry, offsets) = (&jited.code, jited.entry, jited.insn_offsets);
            writeln!(
                out,
                "; {} bytes of x86-64 for {} BPF instruction slots",
                code.len(),
                offsets.len()
            )
            .map_err(io)?;
            // At the image's own address, so `call rel32` shows the helper it reaches.
            for line in kbpf_jit::disasm::disassemble(code, offsets, entry as u64) {
                writeln!(out, "{line}").map_err(io)?;
            }
        }
    }
    let _ = syscall::close(fd);
    Ok(())
}
