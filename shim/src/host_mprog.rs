//! The host Linux kernel's `bpf_mprog`, through tcx on `lo` of a private network namespace, as
//! a backend of the mprog script language ([`crate::mprog_script`]): kbpf's own `bpf(2)` calls
//! (`BPF_PROG_ATTACH`, `BPF_PROG_DETACH`, `BPF_LINK_CREATE`, `BPF_LINK_UPDATE`,
//! `BPF_LINK_DETACH`, `BPF_PROG_QUERY` of `kernel/bpf/syscall.c`), so the differential tests
//! need nothing outside the repository.
//!
//! A script runs on a thread of its own that first calls `unshare(CLONE_NEWNET)` (namespaces
//! are per thread), so the namespace's `lo`, its attachments and the script's objects go away
//! with the thread. It needs root (`CAP_BPF`, `CAP_NET_ADMIN`, `CAP_SYS_ADMIN`) and Linux 6.6 or
//! newer; [`HostScript::open`] says why when the host cannot serve.

use crate::host_bpf::sys::{self, bpf, pack};
use crate::mprog_script::{AttachReq, Backend, Errno, QueryReq, Script};
use kbpf::uapi::{AttachType, ProgType};
use std::sync::mpsc;
use std::thread;

const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_LINK_DETACH: libc::c_long = 34;

/// The host's tcx on one device and direction, as a script backend. Lives on the thread that
/// entered the namespace.
struct HostTcx {
    ifindex: u32,
    attach_type: AttachType,
}

/// The id of the bpf object behind `fd` (`bpf_prog_info` and `bpf_link_info` both start with
/// a `u32` type, then the `u32` id).
fn object_id(fd: u32) -> Result<u32, Errno> {
    let mut info = [0u32; 64];
    let mut attr = [0u64; 16];
    attr[0] = pack(fd, std::mem::size_of_val(&info) as u32);
    attr[1] = info.as_mut_ptr() as u64;
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info[1])
}

/// A new object's fd and id; the fd is closed again if the id can't be read.
fn with_id(fd: i32) -> Result<(u32, u32), Errno> {
    let fd = fd as u32;
    object_id(fd)
        .map(|id| (fd, id))
        .inspect_err(|_| close_fd(fd))
}

fn close_fd(fd: u32) {
    // SAFETY: closes a descriptor this backend opened and still owns; nothing else uses it.
    unsafe { libc::close(fd as i32) };
}

impl HostTcx {
    /// `attach_bpf_fd` | `attach_type` | ... words of `BPF_PROG_ATTACH`/`DETACH`.
    fn attach_attr(&self, a: &AttachReq) -> [u64; 16] {
        let mut attr = [0u64; 16];
        attr[0] = pack(self.ifindex, a.prog);
        attr[1] = pack(self.attach_type as u32, a.flags);
        attr[2] = pack(a.replace, a.relative);
        attr[3] = a.expected_revision;
        attr
    }
}

impl Backend for HostTcx {
    fn load(&mut self, xdp: bool) -> Result<(u32, u32), Errno> {
        const XDP_PASS: i32 = 2;
        const TCX_NEXT: i32 = -1;
        let (prog_type, r0) = if xdp {
            (ProgType::Xdp, XDP_PASS)
        } else {
            (ProgType::SchedCls, TCX_NEXT)
        };
        let insns = [kbpf::insn::mov64_imm(0, r0), kbpf::insn::exit()];
        // The script owns the descriptor from here on (closed by `close`).
        with_id(sys::prog_load(prog_type as u32, &insns, 0, None)?.into_raw())
    }

    fn attach(&mut self, a: &AttachReq) -> Result<(), Errno> {
        bpf(BPF_PROG_ATTACH, &mut self.attach_attr(a)).map(drop)
    }

    fn detach(&mut self, a: &AttachReq) -> Result<(), Errno> {
        bpf(BPF_PROG_DETACH, &mut self.attach_attr(a)).map(drop)
    }

    fn link_create(&mut self, a: &AttachReq) -> Result<(u32, u32), Errno> {
        // prog_fd | target_ifindex, attach_type | flags, tcx.relative_fd, expected_revision.
        let mut attr = [0u64; 16];
        attr[0] = pack(a.prog, self.ifindex);
        attr[1] = pack(self.attach_type as u32, a.flags);
        attr[2] = pack(a.relative, 0);
        attr[3] = a.expected_revision;
        with_id(bpf(BPF_LINK_CREATE, &mut attr)?)
    }

    fn link_detach(&mut self, link: u32) -> Result<(), Errno> {
        let mut attr = [0u64; 16];
        attr[0] = link as u64;
        bpf(BPF_LINK_DETACH, &mut attr).map(drop)
    }

    fn link_update(&mut self, link: u32, new: u32, flags: u32, old: u32) -> Result<(), Errno> {
        let mut attr = [0u64; 16];
        attr[0] = pack(link, new);
        attr[1] = pack(flags, old);
        bpf(BPF_LINK_UPDATE, &mut attr).map(drop)
    }

    fn query(&mut self, q: &mut QueryReq) -> Result<(), Errno> {
        // target_ifindex | attach_type, query_flags | attach_flags, prog_ids, count,
        // prog_attach_flags, link_ids, link_attach_flags, revision.
        let mut attr = [0u64; 16];
        attr[0] = pack(self.ifindex, self.attach_type as u32);
        attr[1] = pack(q.query_flags, q.attach_flags);
        attr[2] = q.prog_ids.as_mut_ptr() as u64;
        attr[3] = q.prog_ids.len() as u64;
        attr[5] = q.link_ids.as_mut_ptr() as u64;
        let r = bpf(BPF_PROG_QUERY, &mut attr);
        q.count = attr[3] as u32;
        q.revision = attr[7];
        r.map(drop)
    }

    fn close(&mut self, fd: u32) {
        close_fd(fd);
    }
}

/// Makes sure descriptors 0–2 are open (on `/dev/null` if not), so that no bpf object ever
/// gets one: the scripts rely on fd 0 meaning "none" or "not a bpf object", as for kbpf.
fn keep_std_fds_open() {
    for fd in 0..3 {
        // SAFETY: `fcntl(F_GETFD)` only inspects the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: opens a new descriptor (the lowest free one, `fd`) on a constant path;
            // it is kept open on purpose for the life of the process.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

enum Msg {
    Line(String, mpsc::Sender<Option<String>>),
    Finish(mpsc::Sender<()>),
}

/// A script running against the host kernel on its own thread and network namespace.
pub struct HostScript {
    tx: mpsc::Sender<Msg>,
}

impl HostScript {
    /// Starts a script on the host's tcx ingress (or egress) hook, or says why the host kernel
    /// can't serve (not root, no BPF or no tcx): the caller then skips.
    pub fn open(echo: bool, egress: bool) -> Result<HostScript, String> {
        keep_std_fds_open();
        let (tx, rx) = mpsc::channel::<Msg>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        thread::Builder::new()
            .name("host-mprog".into())
            .spawn(move || {
                let ifindex = match crate::host_bpf::netns::enter_new() {
                    Ok(i) => i,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let attach_type = if egress {
                    AttachType::TcxEgress
                } else {
                    AttachType::TcxIngress
                };
                let mut script = Script::new(
                    HostTcx {
                        ifindex,
                        attach_type,
                    },
                    echo,
                );
                let _ = ready_tx.send(probe(script.backend()));
                for msg in rx {
                    match msg {
                        Msg::Line(line, reply) => {
                            let _ = reply.send(script.line(&line));
                        }
                        Msg::Finish(done) => {
                            script.finish();
                            let _ = done.send(());
                            return;
                        }
                    }
                }
                script.finish();
            })
            .map_err(|e| e.to_string())?;
        ready_rx
            .recv()
            .map_err(|_| String::from("host-mprog thread died"))??;
        Ok(HostScript { tx })
    }

    /// Runs one line (see [`Script::line`]).
    pub fn line(&self, line: &str) -> Option<String> {
        let (tx, rx) = mpsc::channel();
        self.tx.send(Msg::Line(line.into(), tx)).ok()?;
        rx.recv().ok().flatten()
    }

    /// Ends the script: `reset`, every program closed, the namespace left.
    pub fn finish(self) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Finish(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

/// A trivial program must load, and the empty hook must answer a query: revision 1, count 0.
fn probe(b: &mut HostTcx) -> Result<(), String> {
    let (fd, _) = b
        .load(false)
        .map_err(|e| format!("BPF_PROG_LOAD: errno {e}"))?;
    b.close(fd);
    let mut q = QueryReq::default();
    b.query(&mut q)
        .map_err(|e| format!("BPF_PROG_QUERY on tcx (Linux 6.6+ needed): errno {e}"))?;
    if (q.revision, q.count) != (1, 0) {
        return Err(format!(
            "an empty tcx hook reports revision {} count {}",
            q.revision, q.count
        ));
    }
    Ok(())
}

/// Runs `script` against the host kernel; the output, one line per operation.
pub fn run_script(script: &str, echo: bool, egress: bool) -> Result<String, String> {
    let host = HostScript::open(echo, egress)?;
    let mut out = String::new();
    for line in script.lines() {
        if let Some(r) = host.line(line) {
            out.push_str(&r);
            out.push('\n');
        }
    }
    host.finish();
    Ok(out)
}
