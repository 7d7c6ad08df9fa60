//! `kbpf prog run` (`bpftool prog run`, `BPF_PROG_TEST_RUN`): an object's program or a `.data`
//! file's, on a raw buffer (the program's context: `--ctx-in`, else `--data-in`, else zeros,
//! else the file's `-- mem`; written back to `--data-out`/`--ctx-out`) or on a packet
//! (`--data-in`, with `--ctx-in` for the `__sk_buff`/`xdp_md` fields a caller may set; the
//! packet and context as the program left them to `--data-out`/`--ctx-out`), or for sk_lookup
//! on a `struct bpf_sk_lookup` alone (`--ctx-in`; `cookie=C` is the selected socket's). The last
//! line is `retval=R duration_ns=D`, R the kernel's u32.

use super::CmdError;
use super::args::Pick;
use super::prog_cmd::{is_object, load_data, pick_prog, read_data};
use super::state::State;
use kbpf::syscall::{self, TestRun};
use kbpf::uapi::ProgType;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Room for the packet after a run beyond its input length (XDP tail growth, encapsulation).
const DATA_OUT_SLACK: usize = 4096;
/// Room for the context after a run: larger than `struct __sk_buff` and `struct xdp_md`.
const CTX_OUT_LEN: usize = 256;

/// The files `prog run` reads and writes.
#[derive(Debug, Default)]
pub struct RunFiles {
    /// `--data-in`.
    pub data_in: Option<PathBuf>,
    /// `--data-out`.
    pub data_out: Option<PathBuf>,
    /// `--ctx-in`.
    pub ctx_in: Option<PathBuf>,
    /// `--ctx-out`.
    pub ctx_out: Option<PathBuf>,
}

fn read(p: &Option<PathBuf>) -> Result<Option<Vec<u8>>, CmdError> {
    p.as_ref()
        .map(|p| std::fs::read(p).map_err(|e| CmdError::usage(format!("{}: {e}", p.display()))))
        .transpose()
}

fn write(p: &Option<PathBuf>, bytes: &[u8]) -> Result<(), CmdError> {
    match p {
        Some(p) => {
            std::fs::write(p, bytes).map_err(|e| CmdError::usage(format!("{}: {e}", p.display())))
        }
        None => Ok(()),
    }
}

/// How `prog run` runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunHow {
    /// `--repeat`.
    pub repeat: u32,
    /// `--privileged`: load an object not loaded yet with root's rules.
    pub privileged: bool,
    /// `--netns`: the number of the namespace the run happens in (0 the initial one; else
    /// one of the session's).
    pub netns: u32,
}

/// `kbpf prog run FILE …`.
pub fn run(
    state: &mut State,
    file: &Path,
    pick: &Pick,
    files: &RunFiles,
    how: &RunHow,
    out: &mut dyn Write,
) -> Result<(), CmdError> {
    let repeat = how.repeat;
    let (data_in, ctx_in) = (read(&files.data_in)?, read(&files.ctx_in)?);
    // The program, its type, the buffer it runs on by default, and a handle to close after.
    let (fd, prog_type, default, temp) = if is_object(file) {
        let obj = state.object_or_load(file, how.privileged)?;
        let p = pick_prog(obj, pick, file)?;
        let def = &obj.object.progs[p.index];
        let zeros = def.ctx_size.map(|n| vec![0; n as usize]);
        let t = syscall::prog_get(p.fd).map_or(def.prog_type, |p| p.prog_type());
        (p.fd, t, zeros, None)
    } else {
        let case = read_data(file)?;
        let fd = load_data(&case, file)?;
        let t = syscall::prog_get(fd).map_or(ProgType::RawBuffer, |p| p.prog_type());
        (fd, t, Some(case.mem), Some(fd))
    };
    let r = if prog_type == ProgType::RawBuffer {
        let mut buf = ctx_in.or(data_in).or(default).unwrap_or_default();
        let r = syscall::prog_test_run(
            fd,
            &mut TestRun {
                data: &mut buf,
                repeat,
                ..Default::default()
            },
        );
        if r.is_ok() {
            write(&files.data_out, &buf)?;
            write(&files.ctx_out, &buf)?;
        }
        r
    } else if prog_type == ProgType::SkLookup {
        // A context only (`struct bpf_sk_lookup`); the cookie of the socket the program
        // selected comes back in it.
        let ctx = ctx_in.ok_or_else(|| {
            CmdError::usage(format!(
                "{}: an sk_lookup program needs --ctx-in (a struct bpf_sk_lookup)",
                file.display()
            ))
        })?;
        let mut cout = [0u8; 72];
        let mut run = TestRun {
            ctx_in: Some(&ctx),
            ctx_out: Some(&mut cout),
            repeat,
            ..Default::default()
        };
        let r = syscall::prog_test_run(fd, &mut run);
        if r.is_ok() {
            write(&files.ctx_out, &cout)?;
            let cookie = u64::from_ne_bytes(cout[..8].try_into().expect("8 bytes"));
            writeln!(out, "cookie={cookie}")?;
        }
        r
    } else {
        let mut data = data_in.or(default).ok_or_else(|| {
            CmdError::usage(format!(
                "{}: a {} program needs --data-in",
                file.display(),
                prog_type.name()
            ))
        })?;
        let mut dout = vec![0u8; data.len() + DATA_OUT_SLACK];
        let mut cout = vec![0u8; CTX_OUT_LEN];
        let mut run = TestRun {
            data: &mut data,
            data_out: files.data_out.as_ref().map(|_| dout.as_mut_slice()),
            ctx_in: ctx_in.as_deref(),
            ctx_out: files.ctx_out.as_ref().map(|_| cout.as_mut_slice()),
            repeat,
            netns: state.netns_by_num(how.netns)?,
            ..Default::default()
        };
        let r = syscall::prog_test_run(fd, &mut run);
        if let Ok(res) = &r {
            write(
                &files.data_out,
                &dout[..(res.data_size_out as usize).min(dout.len())],
            )?;
            write(
                &files.ctx_out,
                &cout[..(res.ctx_size_out as usize).min(cout.len())],
            )?;
        }
        r
    };
    if let Some(fd) = temp {
        let _ = syscall::close(fd);
    }
    let r = r.map_err(|e| CmdError::errno("prog_test_run", e))?;
    writeln!(
        out,
        "retval={} duration_ns={}",
        r.retval as u32, r.duration_ns
    )?;
    Ok(())
}
