//! Private network namespaces for the host-kernel tools: a thread enters a fresh one with
//! `unshare(CLONE_NEWNET)` (namespaces are per thread), so its devices, sockets and tcx
//! attachments go away with it; `setns` moves between several (`net/core/net_namespace.c`).

use std::io::Error;

/// A network namespace the thread created, kept by a descriptor of it.
#[derive(Debug)]
pub struct Netns {
    fd: i32,
    /// `lo`'s ifindex there.
    pub lo: u32,
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", Error::last_os_error())
}

/// Enters a fresh network namespace (the calling thread only) and finds its `lo`.
pub fn enter_new() -> Result<u32, String> {
    // SAFETY: `unshare` affects only the calling thread's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(os_err("unshare(CLONE_NEWNET)"));
    }
    lo_index()
}

fn lo_index() -> Result<u32, String> {
    // SAFETY: a NUL-terminated constant name.
    match unsafe { libc::if_nametoindex(c"lo".as_ptr()) } {
        0 => Err("no lo in the new namespace".into()),
        i => Ok(i),
    }
}

/// Brings the current namespace's `lo` up (127.0.0.1 exists only then).
pub fn lo_up() -> Result<(), String> {
    // SAFETY: a plain datagram socket, closed below.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(os_err("socket"));
    }
    // SAFETY: a zeroed `ifreq` is valid; the name fits with its NUL.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: the ioctls read and write `ifr`, a live `ifreq`; `s` is our socket.
    let r = unsafe {
        if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            -1
        } else {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr)
        }
    };
    let err = os_err("SIOCSIFFLAGS lo up");
    // SAFETY: closes the socket opened above.
    unsafe { libc::close(s) };
    if r < 0 { Err(err) } else { Ok(()) }
}

/// Writes a sysctl of the current namespace (`/proc/sys/net/...`).
pub fn sysctl(path: &str, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("{path}: {e}"))
}

impl Netns {
    /// Enters a fresh namespace, brings `lo` up and keeps a descriptor to come back to it.
    pub fn create() -> Result<Netns, String> {
        let lo = enter_new()?;
        lo_up()?;
        // SAFETY: opens the thread's own namespace file; the descriptor is owned by `Netns`.
        let fd = unsafe {
            libc::open(
                c"/proc/thread-self/ns/net".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(os_err("/proc/thread-self/ns/net"));
        }
        Ok(Netns { fd, lo })
    }

    /// Moves the calling thread into this namespace.
    pub fn enter(&self) -> Result<(), String> {
        // SAFETY: `fd` is a namespace descriptor we own.
        if unsafe { libc::setns(self.fd, libc::CLONE_NEWNET) } != 0 {
            return Err(os_err("setns"));
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // SAFETY: closes the descriptor this value owns.
        unsafe { libc::close(self.fd) };
    }
}
