//! The host kernel's conntrack kfuncs, driven through kbpf's own `bpf(2)` calls: the same
//! probe and bench programs kbpf runs ([`crate::ct::progs`]), with the host's BTF ids, for the
//! run-time differential (`shim/tests/ct_host.rs`) and `scripts/compare-ct`
//! (`kbpf-host-ct`).
//!
//! `BPF_PROG_TEST_RUN` runs an XDP program on the loopback of the *calling thread's* network
//! namespace, and the kfuncs use that namespace's table: callers first move into a private
//! namespace ([`private_netns`]), so every entry goes away with it and the host's own
//! connections are never touched. Needs root.

use super::sys::{self, OwnedFd, bpf, pack};
use crate::bench::ct::CtRunner;
use crate::ct::progs::{KfuncIds, Probe, ProbeResult, state};
use kbpf::map::MapAttr;
use kbpf::uapi::MapType;

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
/// `BPF_PROG_TYPE_XDP` and `BPF_PROG_TYPE_SCHED_CLS`.
const XDP: u32 = 6;
const SCHED_CLS: u32 = 3;
/// The sysctl that bounds the table (global, writable from the initial namespace only).
pub const CT_MAX: &str = "/proc/sys/net/netfilter/nf_conntrack_max";

/// The host's ids of the conntrack kfuncs.
pub fn host_ids() -> Result<KfuncIds, String> {
    let mut err = String::new();
    KfuncIds::resolve(|n| super::btf_ids::func_id(n).map_err(|e| err = e).ok()).ok_or(err)
}

/// Moves the calling thread into a new network namespace (`unshare(CLONE_NEWNET)`).
pub fn private_netns() -> Result<(), String> {
    // SAFETY: unshare has no memory arguments; it changes only this thread's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn read_long(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `nf_conntrack_max` raised for a run, written back on drop. The sysctl is global but
/// writable only from the initial namespace: the file is opened there, before the caller moves
/// to a private one, and written back through that descriptor (as `ct_bench.c` does).
pub struct CtMax {
    file: std::fs::File,
    old: u64,
}

impl Drop for CtMax {
    fn drop(&mut self) {
        use std::os::unix::fs::FileExt;
        let _ = self.file.write_at(format!("{}\n", self.old).as_bytes(), 0);
    }
}

/// Raises `nf_conntrack_max` so that `need` entries stay under 90% of it (the host's garbage
/// collector evicts unassured entries above 95%); call from the initial namespace. `None`
/// when it is high enough already.
pub fn raise_ct_max(need: u64) -> Result<Option<CtMax>, String> {
    use std::os::unix::fs::FileExt;
    let max = read_long(CT_MAX).ok_or_else(|| format!("cannot read {CT_MAX} (no conntrack?)"))?;
    if max == 0 || need * 10 <= max * 9 {
        return Ok(None);
    }
    let want = need * 10 / 9 + 1;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(CT_MAX)
        .map_err(|e| format!("{CT_MAX}: {e}"))?;
    file.write_at(format!("{want}\n").as_bytes(), 0)
        .map_err(|e| format!("raising {CT_MAX} {max} -> {want}: {e}"))?;
    Ok(Some(CtMax { file, old: max }))
}

/// Loads program text for the host: kfunc ids already the host's, `lddw map_fd i` naming
/// `maps[i]`.
fn load(prog_type: u32, text: &str, maps: &[OwnedFd]) -> Result<OwnedFd, String> {
    let insns = kbpf::insn::assemble(text).map_err(|e| e.to_string())?;
    let insns = super::with_map_fds(&insns, maps);
    let mut log = vec![0u8; 1 << 16];
    sys::prog_load(prog_type, &insns, 0, Some(&mut log)).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        format!(
            "host load: errno {e}: {}",
            String::from_utf8_lossy(&log[..end])
        )
    })
}

/// Runs `p` once on the host (in the calling thread's namespace): the decoded answer, or why
/// the host refused it.
pub fn probe(ids: &KfuncIds, p: &Probe) -> Result<ProbeResult, String> {
    let ty = match p.hook {
        crate::ct::progs::Hook::Xdp => XDP,
        crate::ct::progs::Hook::Tc => SCHED_CLS,
    };
    let fd = load(ty, &p.asm(ids), &[])?;
    let mut data = crate::ct::frame();
    let r = sys::test_run(&fd, &mut data, 1).map_err(|e| format!("host test run: errno {e}"))?;
    Ok(ProbeResult::decode(r.retval))
}

/// The host as a [`CtRunner`] (call from a thread in a private namespace; threads it starts
/// inherit the namespace).
pub struct HostCtRunner {
    ids: KfuncIds,
    maps: Vec<OwnedFd>,
    progs: Vec<Option<OwnedFd>>,
}

impl HostCtRunner {
    /// Two state maps and the host's kfunc ids.
    pub fn new() -> Result<HostCtRunner, String> {
        let attr = MapAttr::new(MapType::Array, 4, state::SIZE, 1);
        let mk = || sys::map_create(&attr).map_err(|e| format!("host map create: errno {e}"));
        Ok(HostCtRunner {
            ids: host_ids()?,
            maps: vec![mk()?, mk()?],
            progs: Vec::new(),
        })
    }

    fn prog(&self, h: u32) -> Result<&OwnedFd, String> {
        self.progs
            .get(h as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("no program {h}"))
    }
}

impl CtRunner for HostCtRunner {
    fn ids(&self) -> KfuncIds {
        self.ids
    }

    fn state_map(&self, i: usize) -> u32 {
        i as u32
    }

    fn load(&mut self, text: &str) -> Result<u32, String> {
        let fd = load(XDP, text, &self.maps)?;
        self.progs.push(Some(fd));
        Ok(self.progs.len() as u32 - 1)
    }

    fn run(&mut self, prog: u32, repeat: u32) -> Result<(u32, f64), String> {
        let mut data = crate::ct::frame();
        let r = sys::test_run(self.prog(prog)?, &mut data, repeat)
            .map_err(|e| format!("host test run: errno {e}"))?;
        Ok((r.retval, r.duration as f64))
    }

    fn run_pair(&mut self, progs: [u32; 2], repeat: u32) -> Result<[f64; 2], String> {
        let fds = [self.prog(progs[0])?.0, self.prog(progs[1])?.0];
        std::thread::scope(|s| {
            let h: Vec<_> = fds
                .iter()
                .map(|&fd| {
                    s.spawn(move || {
                        let mut data = crate::ct::frame();
                        let fd = std::mem::ManuallyDrop::new(OwnedFd(fd));
                        sys::test_run(&fd, &mut data, repeat).map(|r| r.duration as f64)
                    })
                })
                .collect();
            let mut out = [0.0; 2];
            for (o, h) in out.iter_mut().zip(h) {
                *o = h
                    .join()
                    .map_err(|_| "thread panicked".to_string())?
                    .map_err(|e| format!("host test run: errno {e}"))?;
            }
            Ok(out)
        })
    }

    fn read_state(&mut self, i: usize) -> Result<Vec<u8>, String> {
        let key = 0u32;
        let mut v = vec![0u8; state::SIZE as usize];
        let mut attr = [0u64; 4];
        attr[0] = self.maps[i].0 as u64;
        attr[1] = &key as *const u32 as u64;
        attr[2] = v.as_mut_ptr() as u64;
        bpf(BPF_MAP_LOOKUP_ELEM, &mut attr).map_err(|e| format!("host map lookup: errno {e}"))?;
        Ok(v)
    }

    fn write_state(&mut self, i: usize, v: &[u8]) -> Result<(), String> {
        let key = 0u32;
        let mut attr = [0u64; 4];
        attr[0] = self.maps[i].0 as u64;
        attr[1] = &key as *const u32 as u64;
        attr[2] = v.as_ptr() as u64;
        attr[3] = pack(0, 0);
        bpf(sys::BPF_MAP_UPDATE_ELEM, &mut attr)
            .map(drop)
            .map_err(|e| format!("host map update: errno {e}"))
    }

    fn unload(&mut self, prog: u32) {
        if let Some(p) = self.progs.get_mut(prog as usize) {
            *p = None;
        }
    }
}
