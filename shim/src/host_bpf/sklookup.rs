//! The host Linux kernel's sk_lookup cost, measured as `kbpf bench sklookup` measures kbpf's
//! test runs, through kbpf's own `bpf(2)` code: the oracle's `sklookup-bench` in Rust. The
//! calling thread moves to a fresh network namespace (`unshare(CLONE_NEWNET)`), brings its
//! loopback up, listens on 127.0.0.1 with TCP, stores the listener in a SOCKMAP (8-byte
//! values) and loads the same programs [`crate::bench::sklookup`] builds; each is timed with
//! `BPF_PROG_TEST_RUN` on a `struct bpf_sk_lookup` (`ctx_in`), the best wall-clock mean per run
//! over the trials, and the kernel's own median beside it. Linux counterpart: none (the
//! measurement of `bpf_prog_test_run_sk_lookup`).

use super::sys::{self, OwnedFd, bpf, pack};
use crate::bench::sklookup::{DPORT, PREFIX, input, pass, steer};
use kbpf::insn::Insn;
use kbpf::map::MapAttr;
use kbpf::net::sk_lookup::ctx::BpfSkLookup;
use kbpf::uapi::{AttachType, MapType, ProgType};
use std::time::Instant;

/// `SO_COOKIE`.
const SO_COOKIE: libc::c_int = 57;

/// What one host run measured.
#[derive(Clone, Debug)]
pub struct HostSklookup {
    /// Best wall-clock ns per run: `pass`, `steer` matching, `steer` not matching, `noassign`.
    pub pass_ns: f64,
    /// `steer` on 192.0.2.55:80.
    pub assign_ns: f64,
    /// `steer` on 192.0.3.55:80.
    pub nomatch_ns: f64,
    /// `noassign` on 192.0.2.55:80.
    pub noassign_ns: f64,
    /// The kernel-reported median ns per run, in the same order.
    pub kernel_ns: [u32; 4],
    /// `steer`'s output cookie was the listener's `SO_COOKIE`.
    pub selected: bool,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Moves this thread into a new network namespace with its loopback up.
fn fresh_netns() -> Result<(), String> {
    // SAFETY: unshare only changes this thread's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!("unshare(CLONE_NEWNET): errno {}", errno()));
    }
    // SAFETY: plain socket creation.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(format!("socket: errno {}", errno()));
    }
    let s = OwnedFd(s);
    // SAFETY: an all-zero `ifreq` is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, c) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *c as libc::c_char;
    }
    // SAFETY: `ifr` is a valid ifreq for SIOCGIFFLAGS/SIOCSIFFLAGS on `s`.
    unsafe {
        if libc::ioctl(s.0, libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(format!("SIOCGIFFLAGS lo: errno {}", errno()));
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(s.0, libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(format!("SIOCSIFFLAGS lo up: errno {}", errno()));
        }
    }
    Ok(())
}

/// A TCP listener on 127.0.0.1 (an ephemeral port) and its `SO_COOKIE`.
fn listener() -> Result<(OwnedFd, u64), String> {
    // SAFETY: plain socket calls on a socket we own, with valid buffers.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(format!("socket: errno {}", errno()));
        }
        let fd = OwnedFd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(fd.0, &sa as *const _ as *const libc::sockaddr, len) != 0
            || libc::listen(fd.0, 16) != 0
        {
            return Err(format!("listener on 127.0.0.1: errno {}", errno()));
        }
        let mut cookie = 0u64;
        let mut cl = 8 as libc::socklen_t;
        if libc::getsockopt(
            fd.0,
            libc::SOL_SOCKET,
            SO_COOKIE,
            &mut cookie as *mut u64 as *mut libc::c_void,
            &mut cl,
        ) != 0
        {
            return Err(format!("SO_COOKIE: errno {}", errno()));
        }
        Ok((fd, cookie))
    }
}

/// `BPF_MAP_UPDATE_ELEM` of a `u32` key and a `u64` value (a socket fd for a SOCKMAP).
fn map_update_u64(map: &OwnedFd, key: u32, value: u64) -> Result<(), i32> {
    let mut attr = [0u64; 16];
    attr[0] = map.0 as u64;
    attr[1] = &key as *const u32 as u64;
    attr[2] = &value as *const u64 as u64;
    bpf(sys::BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// One `BPF_PROG_TEST_RUN` on `ctx`: (retval, kernel ns per run, wall ns per run, cookie out).
fn test_run(prog: &OwnedFd, ctx: &BpfSkLookup, repeat: u32) -> Result<(u32, u32, f64, u64), i32> {
    let inb = ctx.to_bytes();
    let mut outb = [0xffu8; 72];
    // prog_fd | retval, data sizes, data_in, data_out, repeat | duration, ctx_size_in |
    // ctx_size_out, ctx_in, ctx_out.
    let mut attr = [0u64; 16];
    attr[0] = prog.0 as u32 as u64;
    attr[4] = repeat as u64;
    attr[5] = pack(72, 72);
    attr[6] = inb.as_ptr() as u64;
    attr[7] = outb.as_mut_ptr() as u64;
    let t = Instant::now();
    bpf(sys::BPF_PROG_TEST_RUN, &mut attr)?;
    let wall = t.elapsed().as_nanos() as f64 / repeat as f64;
    let cookie = BpfSkLookup::from_bytes(&outb).cookie;
    Ok(((attr[0] >> 32) as u32, (attr[4] >> 32) as u32, wall, cookie))
}

fn load(insns: &[Insn], what: &str) -> Result<OwnedFd, String> {
    let mut log = vec![0u8; 1 << 16];
    sys::prog_load(
        ProgType::SkLookup as u32,
        insns,
        AttachType::SkLookup as u32,
        Some(&mut log),
    )
    .map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(0);
        format!(
            "load {what}: errno {e}: {}",
            String::from_utf8_lossy(&log[..end])
        )
    })
}

/// A private netns with a TCP listener on 127.0.0.1 in slot 0 of a SOCKMAP (8-byte values):
/// what the host side of a comparison loads its programs against.
pub struct HostEnv {
    _listener: OwnedFd,
    /// The listener's `SO_COOKIE`.
    pub cookie: u64,
    map: OwnedFd,
}

impl HostEnv {
    /// Moves the calling thread to a fresh netns and sets it up.
    pub fn new() -> Result<HostEnv, String> {
        fresh_netns()?;
        let (lfd, cookie) = listener()?;
        let map = sys::map_create(&MapAttr::new(MapType::Sockmap, 4, 8, 1))
            .map_err(|e| format!("sockmap: errno {e}"))?;
        map_update_u64(&map, 0, lfd.0 as u64).map_err(|e| format!("sockmap update: errno {e}"))?;
        Ok(HostEnv {
            _listener: lfd,
            cookie,
            map,
        })
    }

    /// The SOCKMAP's fd, for the programs' `ld_imm64`.
    pub fn map_fd(&self) -> u32 {
        self.map.0 as u32
    }

    /// Loads an sk_lookup program (the verifier's errno and log on refusal).
    pub fn load(&self, insns: &[Insn]) -> Result<OwnedFd, String> {
        load(insns, "prog")
    }

    /// One test run of `prog` on `ctx`: (retval, output cookie), or the errno.
    pub fn run(&self, prog: &OwnedFd, ctx: &BpfSkLookup, repeat: u32) -> Result<(u32, u64), i32> {
        test_run(prog, ctx, repeat).map(|(r, _, _, c)| (r, c))
    }
}

/// Runs `f` on a thread of its own inside a fresh [`HostEnv`] (the netns change stays on that
/// thread): its result, or why the host can't serve.
pub fn with_env<T: Send + 'static>(
    f: impl FnOnce(&HostEnv) -> T + Send + 'static,
) -> Result<T, String> {
    std::thread::spawn(move || HostEnv::new().map(|env| f(&env)))
        .join()
        .map_err(|_| String::from("the host thread panicked"))?
}

/// Measures on the calling thread, which moves to a fresh netns (see the module docs).
pub fn measure(repeat: u32, trials: u32) -> Result<HostSklookup, String> {
    let env = HostEnv::new()?;
    let so_cookie = env.cookie;
    let m = env.map_fd();
    let progs = [
        load(&pass(), "pass")?,
        load(&steer(m, true, PREFIX, DPORT), "steer")?,
        load(&steer(m, false, PREFIX, DPORT), "noassign")?,
    ];
    let hit = input([192, 0, 2, 55]);
    let other = input([192, 0, 3, 55]);
    let cases = [
        (&progs[0], &hit),
        (&progs[1], &hit),
        (&progs[1], &other),
        (&progs[2], &hit),
    ];
    let mut wall = [f64::INFINITY; 4];
    let mut kern: [Vec<u32>; 4] = Default::default();
    let mut selected = false;
    for _ in 0..trials.max(1) {
        for (c, (p, ctx)) in cases.iter().enumerate() {
            let e = |e| format!("BPF_PROG_TEST_RUN: errno {e}");
            test_run(p, ctx, repeat / 20 + 1).map_err(e)?;
            let (_, k, w, cookie) = test_run(p, ctx, repeat).map_err(e)?;
            kern[c].push(k);
            wall[c] = wall[c].min(w);
            if c == 1 {
                selected = cookie == so_cookie;
            }
        }
    }
    let kernel_ns = kern.map(|mut v| {
        v.sort_unstable();
        v[v.len() / 2]
    });
    Ok(HostSklookup {
        pass_ns: wall[0],
        assign_ns: wall[1],
        nomatch_ns: wall[2],
        noassign_ns: wall[3],
        kernel_ns,
        selected,
    })
}
