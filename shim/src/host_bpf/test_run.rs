//! The host kernel's `BPF_PROG_TEST_RUN`, as a differential oracle for kbpf's test runs
//! (`bpf_prog_test_run` of `kernel/bpf/syscall.c`; `BPF_BTF_LOAD` for the function info that
//! programs with callbacks need).
//!
//! [`HostTestRun::open`] starts a thread with the default mode's capabilities (`CAP_BPF` +
//! `CAP_NET_ADMIN`, see [`super`]); each request loads one program, runs it on every
//! [`HostRunAttr`] and closes it. A program that loads `BPF_PSEUDO_FUNC` gets a minimal BTF
//! (one `int f<n>(void)` static function per subprogram) and the function info the kernel's
//! verifier insists on for callbacks; kbpf needs neither.

use super::{HostLoad, HostVerdict, OwnedFd, bpf, keep_only, maps_and_insns, pack, prog_load};
use kbpf::insn::Insn;
use std::sync::mpsc;
use std::thread;

const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_BTF_LOAD: libc::c_long = 18;

/// One test run's arguments (`bpf_attr.test`, inputs).
#[derive(Clone, Debug, Default)]
pub struct HostRunAttr {
    /// `data_in`.
    pub data: Vec<u8>,
    /// `data_size_out`: room for the packet out (0: the size only).
    pub data_size_out: u32,
    /// `ctx_in`, if any.
    pub ctx_in: Option<Vec<u8>>,
    /// `ctx_size_out`: room for the context out; 0 with no `ctx_in` means no `ctx_out`.
    pub ctx_size_out: u32,
    /// `repeat`.
    pub repeat: u32,
    /// `flags`.
    pub flags: u32,
}

/// What one test run reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostRunOut {
    /// 0, or the errno `BPF_PROG_TEST_RUN` failed with.
    pub errno: i32,
    /// `retval`.
    pub retval: u32,
    /// `data_size_out` as written back.
    pub data_size_out: u32,
    /// The packet out (as many bytes as were copied: `min(data_size_out in, out)`).
    pub data_out: Vec<u8>,
    /// `ctx_size_out` as written back.
    pub ctx_size_out: u32,
    /// The context out (as many bytes as were copied).
    pub ctx_out: Vec<u8>,
}

type Job = (
    HostLoad,
    Vec<HostRunAttr>,
    mpsc::Sender<Result<Result<Vec<HostRunOut>, HostVerdict>, String>>,
);

/// A connection to the host's `BPF_PROG_TEST_RUN`, through a thread with the default mode's
/// capabilities.
pub struct HostTestRun {
    jobs: mpsc::Sender<Job>,
}

impl HostTestRun {
    /// Starts the thread and probes the host with a trivial XDP run; says why the host can't
    /// serve (the caller skips).
    pub fn open() -> Result<HostTestRun, String> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        thread::Builder::new()
            .name(String::from("host-test-run"))
            .spawn(move || {
                let ready = keep_only(&[super::CAP_BPF, super::CAP_NET_ADMIN]);
                let ok = ready.is_ok();
                let _ = ready_tx.send(ready);
                if !ok {
                    return;
                }
                for (load, runs, reply) in rx {
                    let _ = reply.send(load_and_run(&load, &runs));
                }
            })
            .map_err(|e| e.to_string())?;
        ready_rx
            .recv()
            .map_err(|_| String::from("test-run thread died"))??;
        let h = HostTestRun { jobs: tx };
        let probe = HostLoad {
            prog_type: kbpf::uapi::ProgType::Xdp,
            insns: vec![Insn::new(0xb7, 0, 0, 0, 2), Insn::new(0x95, 0, 0, 0, 0)],
            maps: Vec::new(),
            privileged: false,
            expected_attach_type: None,
        };
        let run = HostRunAttr {
            data: vec![0; 64],
            data_size_out: 64,
            ..HostRunAttr::default()
        };
        match h.run(probe, vec![run])? {
            Ok(out) if out[0].errno == 0 && out[0].retval == 2 => Ok(h),
            Ok(out) => Err(format!("the host's test run misbehaves: {:?}", out[0])),
            Err(v) => Err(format!("the host refuses a trivial XDP program: {v:?}")),
        }
    }

    /// Loads `load` on the host and runs it on each of `runs`: the outputs, or the host
    /// verifier's refusal.
    pub fn run(
        &self,
        load: HostLoad,
        runs: Vec<HostRunAttr>,
    ) -> Result<Result<Vec<HostRunOut>, HostVerdict>, String> {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .send((load, runs, tx))
            .map_err(|_| String::from("test-run thread gone"))?;
        rx.recv()
            .map_err(|_| String::from("test-run thread gone"))?
    }
}

/// Starts of the subprograms: 0, BPF-to-BPF call targets and `BPF_PSEUDO_FUNC` targets.
fn subprogs(insns: &[Insn]) -> (Vec<u32>, bool) {
    let mut starts = vec![0u32];
    let mut funcs = false;
    let mut pc = 0;
    while pc < insns.len() {
        let i = insns[pc];
        let t = pc as i64 + 1 + i.imm as i64;
        if i.code == 0x85 && i.src() == kbpf::uapi::pseudo::CALL {
            starts.push(t as u32);
        }
        if i.code == 0x18 {
            if i.src() == kbpf::uapi::pseudo::FUNC {
                starts.push(t as u32);
                funcs = true;
            }
            pc += 1;
        }
        pc += 1;
    }
    starts.sort_unstable();
    starts.dedup();
    (starts, funcs)
}

/// A BTF blob with `int` and one `int f<k>(void)` static function per subprogram; the ids of
/// the functions are 3, 4, ...
fn btf(n: usize) -> Vec<u8> {
    let mut types: Vec<u32> = Vec::new();
    let mut strs = b"\0int\0".to_vec();
    // [1] int: INT, 4 bytes, signed 32 bits.
    types.extend([1, 1 << 24, 4, (1 << 24) | 32]);
    // [2] int (void): FUNC_PROTO, no parameters.
    types.extend([0, 13 << 24, 1]);
    for k in 0..n {
        let name = strs.len() as u32;
        strs.extend(format!("f{k}\0").bytes());
        // [3 + k] FUNC, static linkage, of type [2].
        types.extend([name, 12 << 24, 2]);
    }
    let type_len = (types.len() * 4) as u32;
    let mut out = Vec::new();
    out.extend(0xeb9fu16.to_ne_bytes());
    out.extend([1u8, 0]);
    for v in [24, 0, type_len, type_len, strs.len() as u32] {
        out.extend(v.to_ne_bytes());
    }
    for t in types {
        out.extend(t.to_ne_bytes());
    }
    out.extend(strs);
    out
}

fn load_btf(blob: &[u8]) -> Result<OwnedFd, String> {
    let mut log = vec![0u8; 1 << 16];
    // btf, btf_log_buf, btf_size | btf_log_size, btf_log_level.
    let mut attr = [0u64; 8];
    attr[0] = blob.as_ptr() as u64;
    attr[1] = log.as_mut_ptr() as u64;
    attr[2] = pack(blob.len() as u32, log.len() as u32);
    attr[3] = 1;
    bpf(BPF_BTF_LOAD, &mut attr).map(OwnedFd).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        format!(
            "BTF load: errno {e}: {}",
            String::from_utf8_lossy(&log[..end])
        )
    })
}

fn load_and_run(
    load: &HostLoad,
    runs: &[HostRunAttr],
) -> Result<Result<Vec<HostRunOut>, HostVerdict>, String> {
    let (maps, insns) = maps_and_insns(load)?;
    let (starts, funcs) = subprogs(&insns);
    let btf_fd = if funcs {
        Some(load_btf(&btf(starts.len()))?)
    } else {
        None
    };
    let func_info: Vec<[u32; 2]> = starts
        .iter()
        .enumerate()
        .map(|(k, &s)| [s, 3 + k as u32])
        .collect();
    let info = btf_fd.as_ref().map(|b| (b, &func_info[..]));
    let prog = match prog_load(load, &insns, info) {
        Ok(fd) => fd,
        Err(refused) => return Ok(Err(refused)),
    };
    let outs = runs.iter().map(|r| run_one(prog.0, r)).collect();
    drop(prog);
    drop(btf_fd);
    drop(maps);
    Ok(Ok(outs))
}

fn run_one(fd: i32, r: &HostRunAttr) -> HostRunOut {
    let mut data_out = vec![0u8; r.data_size_out as usize];
    let want_ctx_out = r.ctx_in.is_some() || r.ctx_size_out > 0;
    let mut ctx_out = vec![0u8; r.ctx_size_out as usize];
    let (ctx_in_ptr, ctx_in_len) = r
        .ctx_in
        .as_ref()
        .map_or((0, 0), |c| (c.as_ptr() as u64, c.len() as u32));
    let mut attr = [0u64; 16];
    attr[0] = fd as u32 as u64;
    attr[1] = pack(r.data.len() as u32, r.data_size_out);
    attr[2] = r.data.as_ptr() as u64;
    attr[3] = if r.data_size_out > 0 {
        data_out.as_mut_ptr() as u64
    } else {
        0
    };
    attr[4] = r.repeat as u64;
    attr[5] = pack(ctx_in_len, r.ctx_size_out);
    attr[6] = ctx_in_ptr;
    attr[7] = if want_ctx_out && r.ctx_size_out > 0 {
        ctx_out.as_mut_ptr() as u64
    } else {
        0
    };
    attr[8] = r.flags as u64;
    let errno = bpf(BPF_PROG_TEST_RUN, &mut attr).err().unwrap_or(0);
    let data_size_out = (attr[1] >> 32) as u32;
    let ctx_size_out = (attr[5] >> 32) as u32;
    data_out.truncate(data_size_out.min(r.data_size_out) as usize);
    ctx_out.truncate(ctx_size_out.min(r.ctx_size_out) as usize);
    HostRunOut {
        errno,
        retval: (attr[0] >> 32) as u32,
        data_size_out,
        data_out,
        ctx_size_out,
        ctx_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btf_blob_has_a_header_and_one_func_per_subprogram() {
        let b = btf(2);
        assert_eq!(&b[..2], &0xeb9fu16.to_ne_bytes());
        let type_len = u32::from_ne_bytes(b[12..16].try_into().unwrap());
        assert_eq!(type_len, (4 + 3 + 2 * 3) * 4);
        assert!(b.ends_with(b"f0\0f1\0"));
    }
}
