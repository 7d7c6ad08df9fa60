//! The conformance runner: every `.data` case of the bpf_conformance suite through kbpf, and
//! the plugin protocol the upstream runner speaks ([`plugin`]; the `kbpf-conformance-plugin`
//! binary and `kbpf conformance-plugin`).
//!
//! Cases load as raw-buffer programs (R1 = the `-- mem` bytes, R2 = their length) through the
//! ordinary, verified `prog_load` path with the context size set to the memory's length, and
//! run through `prog_test_run`. Only the cases Linux's verifier refuses too, listed by name with
//! the rule in [`refused`] (the twelve shifts by an out-of-range immediate and `callx`), fall
//! back to the explicitly named trusted path (`prog_load_trusted`, like the kernel's
//! `lib/test_bpf.c`), and only when the verifier refused them for that rule; any other rejection
//! — or a listed case the verifier accepts — fails. The runner counts and lists which cases went
//! which way.

pub mod plugin;
pub mod refused;

pub use plugin::{decode_hex, plugin};

use crate::data::{self, DataFile, Parsed};
use kbpf::insn::Insn;
use kbpf::syscall::{self, TestRun};
use kbpf::uapi::ProgType;
use kbpf::{Errno, ProgLoadAttr};
use std::io::Write;
use std::path::PathBuf;

/// Which engine runs the programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The interpreter.
    Interp,
    /// The x86-64 JIT.
    Jit,
}

/// The outcome of one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Ran and matched.
    Pass,
    /// Did not match; the reason.
    Fail(String),
    /// The file asks for something the suite's format says to skip.
    Skip(String),
}

impl Engine {
    /// Makes this engine the one `prog_load` selects: registers the JIT for [`Engine::Jit`]. The
    /// registration is process-wide and permanent, as a kernel's JIT is.
    pub fn select(self) {
        if self == Engine::Jit {
            kbpf::jit::register(&kbpf_jit::X86_JIT);
        }
    }

    /// The name the CLI and JSON output use.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Interp => "interp",
            Engine::Jit => "jit",
        }
    }
}

/// How a case's program was loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadPath {
    /// Through the verifier.
    Verified,
    /// On the trusted path, after the verifier rejected it for the reason given (the first
    /// line of its log).
    Trusted(String),
}

/// Loads `insns` for a buffer of `mem_len` bytes through the verifier. A rejection falls back
/// to the trusted path only when it is a listed refusal ([`refused`]): the case named `case`
/// refused for its rule, or — without a name, for the plugin — any listed rule. Returns the
/// handle and the path taken, or why the case fails.
pub fn load(insns: &[Insn], mem_len: usize, case: Option<&str>) -> Result<(u32, LoadPath), String> {
    let len = u32::try_from(mem_len).map_err(|_| "memory too large".to_string())?;
    // Root's rules, as Linux's own plugin loads the suite (the listed refusals are Linux's
    // there): the default mode adds Spectre v1 refusals of pointer arithmetic by a register.
    let attr = ProgLoadAttr::new(ProgType::RawBuffer, insns)
        .with_ctx_size(len)
        .with_privileged(true);
    let mut log = String::new();
    let listed = case.and_then(refused::by_name);
    let verify_err = match syscall::prog_load_log(&attr, &mut log) {
        Ok(fd) => match listed {
            None => return Ok((fd, LoadPath::Verified)),
            Some(r) => {
                let _ = syscall::close(fd);
                return Err(format!(
                    "the verifier accepted it, but Linux refuses {}: {}",
                    r.file, r.reason
                ));
            }
        },
        Err(e) => e,
    };
    let first = log.lines().next().unwrap_or("");
    let allowed = match case {
        Some(_) => listed.filter(|r| r.matches(verify_err, &log)),
        None => refused::by_rule(verify_err, &log),
    };
    if allowed.is_none() {
        return Err(format!("verifier: {verify_err:?}: {first}"));
    }
    let mut tlog = String::new();
    match syscall::prog_load_trusted_log(&ProgLoadAttr::new(ProgType::RawBuffer, insns), &mut tlog)
    {
        Ok(fd) => Ok((fd, LoadPath::Trusted(format!("{verify_err:?}: {first}")))),
        Err(e) => Err(format!("load: {e:?}: {}", tlog.trim())),
    }
}

/// Loads and runs `insns` on `mem` with `engine` (see [`load`]; `case` names the file); returns
/// R0 and the load path, or an error message. With the JIT engine a program the JIT refused
/// (and so ran interpreted) is an error, and the other way round.
pub fn execute(
    insns: &[Insn],
    mem: &mut [u8],
    engine: Engine,
    case: Option<&str>,
) -> Result<(u64, LoadPath), String> {
    let (fd, path) = load(insns, mem.len(), case)?;
    let r = check_engine(fd, engine).and_then(|()| {
        syscall::prog_test_run(
            fd,
            &mut TestRun {
                data: mem,
                repeat: 1,
                ..Default::default()
            },
        )
        .map(|r| (r.retval, path))
        .map_err(|e: Errno| format!("run: {e:?}"))
    });
    let _ = syscall::close(fd);
    r
}

/// The program behind `fd` runs on `engine`: JIT-compiled with the JIT, interpreted without.
pub fn check_engine(fd: u32, engine: Engine) -> Result<(), String> {
    let jited = syscall::prog_get(fd).is_ok_and(|p| p.jited());
    if jited == (engine == Engine::Jit) {
        return Ok(());
    }
    let how = if jited { "jited" } else { "interpreted" };
    Err(format!("loaded {how} but the engine is {}", engine.name()))
}

/// Runs one parsed case from the file named `name`; also returns the load path when the
/// program loaded and ran.
pub fn run_case(case: &DataFile, name: &str, engine: Engine) -> (Outcome, Option<LoadPath>) {
    let mut mem = case.mem.clone();
    let ran = execute(&case.program, &mut mem, engine, Some(name));
    let path = ran.as_ref().ok().map(|(_, p)| p.clone());
    let outcome = match (ran.map(|(r0, _)| r0), &case.result, &case.error) {
        (Ok(r0), Some(want), _) if r0 == *want => Outcome::Pass,
        (Ok(r0), Some(want), _) => Outcome::Fail(format!("r0 = {r0:#x}, expected {want:#x}")),
        (Ok(r0), None, Some(err)) => {
            Outcome::Fail(format!("ran (r0 = {r0:#x}), expected error {err:?}"))
        }
        (Err(e), _, Some(err)) if e.trim_end() == err.trim_end() => Outcome::Pass,
        (Err(e), _, _) => Outcome::Fail(e),
        (Ok(_), None, None) => Outcome::Fail("case has neither result nor error".into()),
    };
    (outcome, path)
}

/// Totals of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed (malformed files count as failed).
    pub failed: usize,
    /// Files skipped per the format's rules.
    pub skipped: usize,
    /// Cases whose program the verifier accepted.
    pub verified: usize,
    /// Cases the verifier rejected that ran on the trusted path.
    pub trusted: usize,
}

/// Runs every `.data` file under `paths`, printing one line per failing case to `out`, one
/// `TRUSTED` line per case the verifier rejected (with its reason), the count of cases that
/// went each way, then the closing `N passed, M failed` line.
pub fn run_paths(
    paths: &[PathBuf],
    engine: Engine,
    out: &mut dyn Write,
) -> std::io::Result<Totals> {
    let mut t = Totals::default();
    let mut trusted_names = Vec::new();
    engine.select();
    for path in data::collect(paths) {
        let name = path.file_name().unwrap_or(path.as_os_str());
        let name = name.to_string_lossy();
        let (outcome, how) = match data::parse_file(&path) {
            Ok(Parsed::Test(case)) => run_case(&case, &name, engine),
            Ok(Parsed::Skip(why)) => (Outcome::Skip(why), None),
            Err(e) => (Outcome::Fail(format!("malformed: {e}")), None),
        };
        match how {
            Some(LoadPath::Verified) => t.verified += 1,
            Some(LoadPath::Trusted(why)) => {
                t.trusted += 1;
                writeln!(out, "TRUSTED {}: {why}", path.display())?;
                trusted_names.push(name.into_owned());
            }
            None => {}
        }
        match outcome {
            Outcome::Pass => t.passed += 1,
            Outcome::Skip(why) => {
                t.skipped += 1;
                writeln!(out, "SKIP {}: {why}", path.display())?;
            }
            Outcome::Fail(why) => {
                t.failed += 1;
                writeln!(out, "FAIL {}: {why}", path.display())?;
            }
        }
    }
    write!(out, "verified: {}, trusted: {}", t.verified, t.trusted)?;
    if trusted_names.is_empty() {
        writeln!(out)?;
    } else {
        writeln!(
            out,
            " (rejected by the verifier: {})",
            trusted_names.join(", ")
        )?;
    }
    if t.skipped > 0 {
        writeln!(
            out,
            "{} passed, {} failed, {} skipped",
            t.passed, t.failed, t.skipped
        )?;
    } else {
        writeln!(out, "{} passed, {} failed", t.passed, t.failed)?;
    }
    Ok(t)
}
