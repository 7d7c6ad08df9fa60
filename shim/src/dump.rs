//! `kbpf prog dump xlated|jited`: a loaded program as the kernel holds it — the rewritten
//! instructions, with the source lines of its `.BTF.ext` line info in front of the
//! instructions they cover (`; x = y + 1; @ file.c:12`), or the JIT's x86-64 with each BPF
//! instruction's index where its code begins (`bpftool prog dump xlated|jited`).

use crate::elf::btf::Btf;
use kbpf::patch::LineInfo;
use kbpf::syscall::{self, Fd};
use std::io::Write;

/// What to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpKind {
    /// The instructions after the load-time rewrites.
    Xlated,
    /// The JIT image.
    Jited,
}

/// The line `bpftool` prints for a line-info entry: `; SOURCE @ FILE:LINE`.
pub fn source_line(btf: &Btf, l: &LineInfo) -> String {
    let file = btf.string(l.file_name_off).unwrap_or("?");
    let file = file.rsplit('/').next().unwrap_or(file);
    let text = btf.string(l.line_off).unwrap_or("").trim();
    format!("; {text} @ {file}:{}", l.line_col >> 10)
}

/// The verifier log with source lines: before each line about instruction N (`N: …`) whose
/// source position differs from the previous such line's, the `; SOURCE @ FILE:LINE` line
/// of the line-info entry covering N (as the kernel's verifier prints them). `lines` index
/// the program as loaded, which is what the verifier's instruction numbers count.
pub fn annotate_log(log: &str, btf: &Btf, lines: &[LineInfo]) -> String {
    if lines.is_empty() {
        return log.to_string();
    }
    let mut out = String::with_capacity(log.len() * 2);
    let mut last: Option<usize> = None;
    for line in log.lines() {
        let insn = line
            .split_once(':')
            .and_then(|(n, _)| n.trim().parse::<u32>().ok());
        if let Some(n) = insn {
            let k = lines.partition_point(|l| l.insn_off <= n);
            if k > 0 && last != Some(k - 1) {
                out.push_str(&source_line(btf, &lines[k - 1]));
                out.push('\n');
                last = Some(k - 1);
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Prints the program behind `fd`; `lines` gives the BTF and the line info (indexed by
/// xlated instruction) to print source lines with.
pub fn prog(
    kind: DumpKind,
    fd: Fd,
    lines: Option<(&Btf, &[LineInfo])>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let prog = syscall::prog_get(fd).map_err(|e| format!("{e:?}"))?;
    let io = |e: std::io::Error| e.to_string();
    match kind {
        DumpKind::Xlated => {
            let insns =
                kbpf::insn::disasm(prog.insns()).map_err(|(pc, e)| format!("insn {pc}: {e}"))?;
            let mut next = lines.map(|(b, l)| (b, l.iter().peekable()));
            for (pc, text) in insns {
                if let Some((btf, it)) = next.as_mut() {
                    while let Some(l) = it.next_if(|l| l.insn_off as usize <= pc) {
                        writeln!(out, "{}", source_line(btf, l)).map_err(io)?;
                    }
                }
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
    Ok(())
}

/// Loads the program of the `.data` file at `path` the way `conformance` does (the `-- mem`
/// bytes as a raw-buffer context of their length) and prints it.
pub fn run(kind: DumpKind, path: &std::path::Path, out: &mut dyn Write) -> Result<(), String> {
    if kind == DumpKind::Jited {
        crate::conformance::Engine::Jit.select();
    }
    let case = crate::cli::prog_cmd::read_data(path).map_err(|e| e.msg)?;
    let fd = crate::cli::prog_cmd::load_data(&case, path)
        .map_err(|e| format!("load: {}: {}", e.msg, e.log.trim()))?;
    let r = prog(kind, fd, None, out);
    let _ = syscall::close(fd);
    r
}
