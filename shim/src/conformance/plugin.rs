//! The plugin protocol of the upstream bpf_conformance runner (`bpf_conformance_runner
//! --plugin_path P --plugin_options O`): the runner starts the plugin once per test with
//! argv = `P [MEM] [O split on spaces...] [--elf]`, where MEM (only when the test has memory)
//! is the bytes as two hex digits each followed by two spaces; the program comes on stdin in the
//! same hex form. The plugin prints r0 as unsigned 64-bit hex and exits 0, or prints a message
//! on stderr and exits non-zero. Linux's own plugin (`libbpf_plugin`) is the model.
//!
//! Options: `--jit` runs on the JIT (else the interpreter). `--xdp` is the runner's
//! `--xdp_prolog true` mode: the program (prefixed by the runner with a prolog that reads
//! `data`/`data_end` from an `xdp_md` in r1 when the test has memory) loads as a privileged XDP
//! program, through the verifier with no fallback, and runs over the memory as its packet —
//! how Linux's plugin runs the suite. Without `--xdp`, programs run as raw-buffer programs as in
//! [`super::execute`] (the listed refusals on the trusted path). `--elf` (the runner's
//! `--elf true`) gives an ELF object instead of instructions: the runner's `main` (in `.text`,
//! or in `xdp` with its prolog), read by kbpf's ELF loader ([`program_insns`]).

use super::{Engine, check_engine, execute};
use kbpf::ProgLoadAttr;
use kbpf::cpu::CpuGuard;
use kbpf::insn::Insn;
use kbpf::syscall;
use kbpf::uapi::{AttachType, ProgType};
use kbpf::xdp::{XdpBuff, XdpRxqInfo};

/// What the options ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PluginOpts {
    /// `--jit`.
    pub jit: bool,
    /// `--xdp`: an XDP program over the memory as packet.
    pub xdp: bool,
    /// `--elf`: the input is an ELF object.
    pub elf: bool,
}

impl PluginOpts {
    /// The engine the options select.
    pub fn engine(&self) -> Engine {
        if self.jit {
            Engine::Jit
        } else {
            Engine::Interp
        }
    }
}

/// Decodes hex bytes, whitespace anywhere (`"b7 00 00 00"`, `"b7  00  "`, `"b7000000"`), an
/// optional leading `0x`. Anything else — an odd count, a non-hex character, non-ASCII text — is
/// an error that says what and where.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim_start();
    let text = text.strip_prefix("0x").unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut high: Option<u8> = None;
    for (at, c) in text.char_indices() {
        if c.is_whitespace() {
            continue;
        }
        let Some(v) = c.to_digit(16) else {
            return Err(format!("bad hex digit {c:?} at byte {at}"));
        };
        match high.take() {
            None => high = Some(v as u8),
            Some(h) => out.push(h << 4 | v as u8),
        }
    }
    if high.is_some() {
        return Err("odd number of hex digits".into());
    }
    Ok(out)
}

/// Splits the plugin's arguments into the memory (hex) and the options.
pub fn parse_args(args: &[String]) -> Result<(Vec<u8>, PluginOpts), String> {
    let (mem, rest) = match args.split_first() {
        Some((first, rest)) if !first.starts_with("--") => {
            let mem = decode_hex(first).map_err(|e| format!("memory argument: {e}"))?;
            (mem, rest)
        }
        _ => (Vec::new(), args),
    };
    let mut o = PluginOpts::default();
    for a in rest {
        match a.as_str() {
            // The runner splits `--plugin_options` on single spaces: doubled ones give "".
            "" => {}
            "--jit" => o.jit = true,
            "--xdp" => o.xdp = true,
            "--elf" => o.elf = true,
            other => {
                return Err(format!(
                    "unknown plugin option {other:?} (known: --jit, --xdp, --elf)"
                ));
            }
        }
    }
    Ok((mem, o))
}

/// The instructions of the program the runner sent (`bytes`, already decoded from hex): raw
/// instructions, or with `elf` an ELF object read by [`crate::elf`] (`.text`'s functions taken
/// as programs, as the runner writes `main` there; it uses no maps).
pub fn program_insns(bytes: &[u8], elf: bool) -> Result<Vec<Insn>, String> {
    if elf {
        let raw = crate::elf::section::sec_def("raw_buffer");
        let obj = crate::elf::Object::parse_with(bytes, raw).map_err(|e| format!("ELF: {e}"))?;
        let p = obj
            .progs
            .iter()
            .find(|p| p.name == "main")
            .or(obj.progs.first())
            .ok_or("ELF: the object has no program")?;
        if !p.map_refs.is_empty() {
            return Err(format!(
                "ELF: program {} uses maps, which the runner never sends",
                p.name
            ));
        }
        return Ok(p.insns.clone());
    }
    if bytes.len() % 8 != 0 {
        return Err(format!(
            "program: {} bytes are not whole 8-byte instructions",
            bytes.len()
        ));
    }
    kbpf::insn::from_byte_slice(bytes).map_err(|e| format!("program: {e:?}"))
}

/// The prolog the upstream runner puts before a test's program in `--xdp_prolog true` mode
/// when the test has `size` bytes of memory (`_generate_xdp_prolog`): r1 = `data`, r2 = `size`,
/// or return -1 when the packet is shorter than `size`.
pub fn xdp_prolog(size: i32) -> [Insn; 9] {
    [
        Insn::new(0xb7, 0, 0, 0, -1),   // mov r0, -1
        Insn::new(0xbf, 6, 1, 0, 0),    // mov r6, r1
        Insn::new(0x61, 1, 6, 0, 0),    // ldxw r1, [r6 + data]
        Insn::new(0x61, 2, 6, 4, 0),    // ldxw r2, [r6 + data_end]
        Insn::new(0xbf, 3, 1, 0, 0),    // mov r3, r1
        Insn::new(0x07, 3, 0, 0, size), // add r3, size
        Insn::new(0xbd, 3, 2, 1, 0),    // jle r3, r2, +1
        Insn::new(0x95, 0, 0, 0, 0),    // exit
        Insn::new(0xb7, 2, 0, 0, size), // mov r2, size
    ]
}

/// Loads `insns` as a privileged XDP program (through the verifier, no fallback) and runs it
/// once over `mem` as its packet, as Linux's plugin does; returns r0.
pub fn run_xdp(insns: &[Insn], mem: &mut [u8], engine: Engine) -> Result<u64, String> {
    let attr = ProgLoadAttr::new(ProgType::Xdp, insns)
        .with_attach_type(AttachType::Xdp)
        .with_privileged(true);
    let mut log = String::new();
    let fd = syscall::prog_load_log(&attr, &mut log).map_err(|e| {
        let first = log.lines().next().unwrap_or("");
        format!("verifier: {e:?}: {first}")
    })?;
    let ran = check_engine(fd, engine).and_then(|()| {
        let prog = syscall::prog_get(fd).map_err(|e| format!("{e:?}"))?;
        let rxq = XdpRxqInfo::default();
        let mut xdp = XdpBuff::new(mem, &rxq);
        let mut guard = CpuGuard::enter();
        prog.run(&mut guard, xdp.as_ctx(), 0)
            .map_err(|f| format!("run: {f:?}"))
    });
    let _ = syscall::close(fd);
    ran
}

/// Runs the program `bytes` (decoded from the runner's hex) on `mem` as `opts` ask; returns r0.
pub fn run_program(bytes: &[u8], mem: &mut [u8], opts: PluginOpts) -> Result<u64, String> {
    let insns = program_insns(bytes, opts.elf)?;
    let engine = opts.engine();
    engine.select();
    if opts.xdp {
        run_xdp(&insns, mem, engine)
    } else {
        execute(&insns, mem, engine, None).map(|(r0, _)| r0)
    }
}

/// The whole protocol: `args` are the plugin's arguments (after the program name),
/// `program_hex` its standard input. Returns r0 or the message for stderr.
pub fn plugin(args: &[String], program_hex: &str) -> Result<u64, String> {
    let (mut mem, opts) = parse_args(args)?;
    let bytes = decode_hex(program_hex).map_err(|e| format!("program: {e}"))?;
    run_program(&bytes, &mut mem, opts)
}
