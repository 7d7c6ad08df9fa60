//! The host Linux kernel's own verifier, reached through `bpf(2)`, as a differential oracle
//! for kbpf's verifier (`BPF_MAP_CREATE` and `BPF_PROG_LOAD` of `kernel/bpf/syscall.c`).
//!
//! [`HostVerifier::open`] starts a thread that drops to the capabilities of kbpf's default mode
//! (`CAP_BPF` and `CAP_NET_ADMIN`, without `CAP_PERFMON` or `CAP_SYS_ADMIN`: Linux keeps
//! capabilities per thread, so the rest of the process keeps root's), or keeps root's for the
//! privileged mode. Each load creates the maps the program refers to, patches their fds into
//! its map loads, asks the kernel, and closes everything again. When the host
//! refuses `bpf(2)` itself (no root, no BPF, seccomp), `open` says so and callers skip.

pub mod btf_ids;
pub mod ct;
pub mod isa_bench;
pub mod machine;
pub mod map_bench;
pub mod netns;
pub mod sklookup;
pub mod sys;
pub mod tailcall;
pub mod tcx_bench;
pub mod test_run;

use kbpf::insn::Insn;
use kbpf::map::MapAttr;
use kbpf::uapi::{AttachType, ProgType};
use std::sync::mpsc;
use std::thread;
use sys::{BPF_PROG_LOAD, OwnedFd, bpf, pack};

const CAP_NET_ADMIN: u32 = 12;
const CAP_BPF: u32 = 39;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const LOG_SIZE: usize = 1 << 20;

/// The host kernel's verdict on one program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostVerdict {
    /// Loaded (and closed again).
    Accepted,
    /// Refused with this errno; the kernel's log.
    Rejected {
        /// The errno `BPF_PROG_LOAD` returned.
        errno: i32,
        /// The verifier log (level 1).
        log: String,
    },
}

/// One program to ask the host about.
#[derive(Clone, Debug)]
pub struct HostLoad {
    /// The program type.
    pub prog_type: ProgType,
    /// The instructions; the immediate `i` of a `BPF_PSEUDO_MAP_FD` or `BPF_PSEUDO_MAP_VALUE`
    /// load names `maps[i]`.
    pub insns: Vec<Insn>,
    /// The maps the program refers to, by handle.
    pub maps: Vec<MapAttr>,
    /// Root's rules (`CAP_SYS_ADMIN`) instead of `CAP_BPF` + `CAP_NET_ADMIN`.
    pub privileged: bool,
    /// `expected_attach_type`, if any.
    pub expected_attach_type: Option<AttachType>,
}

type Job = (HostLoad, mpsc::Sender<Result<HostVerdict, String>>);

/// A connection to the host's verifier: two threads, one with root's capabilities and one
/// with the default mode's.
pub struct HostVerifier {
    default: mpsc::Sender<Job>,
    privileged: mpsc::Sender<Job>,
}

impl HostVerifier {
    /// Starts the two loader threads, or says why the host can't serve (the caller skips).
    pub fn open() -> Result<HostVerifier, String> {
        let privileged = spawn(false)?;
        let default = spawn(true)?;
        let hv = HostVerifier {
            default,
            privileged,
        };
        // Probe: `r0 = 0; exit` must load in both modes.
        for privileged in [false, true] {
            let probe = HostLoad {
                prog_type: ProgType::SocketFilter,
                insns: vec![Insn::new(0xb7, 0, 0, 0, 0), Insn::new(0x95, 0, 0, 0, 0)],
                maps: Vec::new(),
                privileged,
                expected_attach_type: None,
            };
            match hv.load(probe)? {
                HostVerdict::Accepted => {}
                HostVerdict::Rejected { errno, log } => {
                    return Err(format!(
                        "the host kernel refuses a trivial program (errno {errno}): {log}"
                    ));
                }
            }
        }
        Ok(hv)
    }

    /// Asks the host kernel's verifier about `load`.
    pub fn load(&self, load: HostLoad) -> Result<HostVerdict, String> {
        let (tx, rx) = mpsc::channel();
        let to = if load.privileged {
            &self.privileged
        } else {
            &self.default
        };
        to.send((load, tx))
            .map_err(|_| String::from("loader thread gone"))?;
        rx.recv().map_err(|_| String::from("loader thread gone"))?
    }
}

fn spawn(drop_caps: bool) -> Result<mpsc::Sender<Job>, String> {
    let (tx, rx) = mpsc::channel::<Job>();
    let (ready_tx, ready_rx) = mpsc::channel();
    thread::Builder::new()
        .name(String::from("host-bpf"))
        .spawn(move || {
            let ready = if drop_caps {
                keep_only(&[CAP_BPF, CAP_NET_ADMIN])
            } else {
                Ok(())
            };
            let ok = ready.is_ok();
            let _ = ready_tx.send(ready);
            if !ok {
                return;
            }
            for (load, reply) in rx {
                let _ = reply.send(load_one(&load));
            }
        })
        .map_err(|e| e.to_string())?;
    ready_rx
        .recv()
        .map_err(|_| String::from("loader thread died"))??;
    Ok(tx)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drops this thread's capabilities to `caps` (`capset(2)` acts on the calling thread).
fn keep_only(caps: &[u32]) -> Result<(), String> {
    let mut data = [CapData::default(); 2];
    for &c in caps {
        let d = &mut data[(c / 32) as usize];
        d.effective |= 1 << (c % 32);
        d.permitted |= 1 << (c % 32);
    }
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: `capset` reads a v3 header and two data records, which we pass; both outlive
    // the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(format!("capset: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn create_map(m: &MapAttr) -> Result<OwnedFd, String> {
    sys::map_create(m).map_err(|e| format!("map create {:?}: errno {e}", m.map_type))
}

/// `insns` with each map handle of a `BPF_PSEUDO_MAP_FD`/`_VALUE` load replaced by the fd
/// of the host map created for it.
pub(crate) fn with_map_fds(insns: &[Insn], maps: &[OwnedFd]) -> Vec<Insn> {
    let mut insns = insns.to_vec();
    let mut pc = 0;
    while pc < insns.len() {
        let i = insns[pc];
        if i.code == 0x18 {
            let by_handle = matches!(
                i.src(),
                kbpf::uapi::pseudo::MAP_FD | kbpf::uapi::pseudo::MAP_VALUE
            );
            if by_handle && let Some(fd) = maps.get(i.imm as usize) {
                insns[pc].imm = fd.0;
            }
            pc += 1;
        }
        pc += 1;
    }
    insns
}

/// `BPF_PROG_LOAD` of `insns` as `load` says, with function info (a BTF fd and
/// `{insn_off, type_id}` records) when given: the program's fd, or the refusal with its log.
fn prog_load(
    load: &HostLoad,
    insns: &[Insn],
    func_info: Option<(&OwnedFd, &[[u32; 2]])>,
) -> Result<OwnedFd, HostVerdict> {
    prog_load_logged(load, insns, func_info, true)
}

/// [`prog_load`], with the verifier log (level 1) or without.
fn prog_load_logged(
    load: &HostLoad,
    insns: &[Insn],
    func_info: Option<(&OwnedFd, &[[u32; 2]])>,
    with_log: bool,
) -> Result<OwnedFd, HostVerdict> {
    let license = c"GPL";
    let mut log = vec![0u8; if with_log { LOG_SIZE } else { 1 }];
    // prog_type | insn_cnt, insns, license, log_level | log_size, log_buf, rest zero.
    let mut attr = [0u64; 16];
    attr[0] = pack(load.prog_type as u32, insns.len() as u32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    if with_log {
        attr[3] = pack(1, LOG_SIZE as u32);
        attr[4] = log.as_mut_ptr() as u64;
    }
    // prog_ifindex | expected_attach_type
    attr[8] = pack(0, load.expected_attach_type.map_or(0, |t| t as u32));
    if let Some((btf, info)) = func_info {
        // prog_btf_fd | func_info_rec_size, func_info, func_info_cnt.
        attr[9] = pack(btf.0 as u32, 8);
        attr[10] = info.as_ptr() as u64;
        attr[11] = info.len() as u64;
    }
    bpf(BPF_PROG_LOAD, &mut attr).map(OwnedFd).map_err(|errno| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        HostVerdict::Rejected {
            errno,
            log: String::from_utf8_lossy(&log[..end]).into_owned(),
        }
    })
}

/// The host maps `load` refers to, and its instructions naming them by fd.
fn maps_and_insns(load: &HostLoad) -> Result<(Vec<OwnedFd>, Vec<Insn>), String> {
    let maps = load
        .maps
        .iter()
        .map(create_map)
        .collect::<Result<Vec<_>, _>>()?;
    let insns = with_map_fds(&load.insns, &maps);
    Ok((maps, insns))
}

fn load_one(load: &HostLoad) -> Result<HostVerdict, String> {
    let (maps, insns) = maps_and_insns(load)?;
    let verdict = match prog_load(load, &insns, None) {
        Ok(fd) => {
            drop(fd);
            HostVerdict::Accepted
        }
        // The log of a long exploration can overflow the buffer: ENOSPC even when the
        // verifier accepted. The verdict is then the one without a log; the log kept is the
        // overflowed one's tail (the kernel rotates it), which ends with the reason.
        Err(HostVerdict::Rejected { errno, log }) if errno == libc::ENOSPC => {
            match prog_load_logged(load, &insns, None, false) {
                Ok(_) => HostVerdict::Accepted,
                Err(HostVerdict::Rejected { errno, .. }) => HostVerdict::Rejected { errno, log },
                Err(v) => v,
            }
        }
        Err(v) => v,
    };
    drop(maps);
    Ok(verdict)
}
