//! The `bpf(2)`-shaped facade (Linux `kernel/bpf/syscall.c`): objects behind numbered handles.
//!
//! A handle (fd) holds one reference to a program or map. Numbers are the lowest free ones from
//! 3 up, as a process's fds would be. Every call validates its arguments before it changes
//! anything; on error nothing changed. The CLI and the tests speak only through this module.
//!
//! # Example
//! An array map, a program that counts its runs in element 0, and a test run (the host is
//! registered as in [`crate::host::Host`]'s example):
//!
//! ```
//! # use kbpf::host::{ExecRegion, Host};
//! # use kbpf::sync::cpu::{CpuSlots, Hold};
//! # use kbpf::{Errno, Result};
//! # struct MyHost { cpus: CpuSlots, start: std::time::Instant }
//! # std::thread_local! { static HOLD: Hold = const { Hold::new() }; }
//! # impl Host for MyHost {
//! #     fn nr_cpus(&self) -> usize { self.cpus.nr() }
//! #     fn cpu_enter(&self) -> usize { HOLD.with(|h| self.cpus.enter(h, 0)) }
//! #     fn cpu_exit(&self, cpu: usize) { HOLD.with(|h| self.cpus.exit(h, cpu)) }
//! #     fn ktime_ns(&self) -> u64 { self.start.elapsed().as_nanos() as u64 }
//! #     fn random_u32(&self) -> u32 { self.start.elapsed().subsec_nanos() }
//! #     fn exec_alloc(&self, _len: usize) -> Result<ExecRegion> { Err(Errno::ENOMEM) }
//! #     fn exec_seal(&self, _region: &ExecRegion) -> Result { Err(Errno::EINVAL) }
//! #     fn text_poke(&self, _r: &ExecRegion, _o: usize, _b: &[u8]) -> Result { Err(Errno::EINVAL) }
//! #     fn exec_free(&self, _region: ExecRegion) {}
//! # }
//! # let host = MyHost { cpus: CpuSlots::new(2), start: std::time::Instant::now() };
//! # kbpf::host::register(Box::leak(Box::new(host)));
//! use kbpf::insn::*;
//! use kbpf::syscall::{self, TestRun};
//! use kbpf::uapi::{MapType, ProgType, alu, func, jmp};
//! use kbpf::{MapAttr, ProgLoadAttr};
//!
//! let map = syscall::map_create(&MapAttr::new(MapType::Array, 4, 8, 1))?;
//! let mut insns = vec![
//!     st_mem(Size::W, 10, -4, 0), // *(u32 *)(r10 - 4) = 0: the key
//!     mov64_reg(2, 10),
//!     alu64_imm(alu::ADD, 2, -4), // r2 = &key
//! ];
//! insns.extend(ld_map_fd(1, map)); // r1 = the map (by handle; the load resolves it)
//! insns.extend([
//!     call_helper(func::MAP_LOOKUP_ELEM), // r0 = &element 0, or NULL
//!     jmp_imm(jmp::JEQ, 0, 0, 2),         // if r0 == 0 goto out
//!     mov64_imm(1, 1),
//!     atomic_add(Size::DW, 0, 1, 0), // lock *(u64 *)(r0 + 0) += r1
//!     mov64_imm(0, 0),               // out: r0 = 0
//!     exit(),
//! ]);
//! let prog = syscall::prog_load(&ProgLoadAttr::new(ProgType::RawBuffer, &insns))?;
//! syscall::prog_test_run(prog, &mut TestRun { repeat: 3, ..Default::default() })?;
//! let mut count = [0u8; 8];
//! syscall::map_lookup_elem(map, &0u32.to_ne_bytes(), &mut count)?;
//! assert_eq!(u64::from_ne_bytes(count), 3);
//! # Ok::<(), kbpf::Errno>(())
//! ```

use crate::link::Link;
use crate::load::{Verification, prog_load as load_prog};
use crate::map::{Map, MapAttr, array_index};
use crate::prog::{Prog, ProgLoadAttr, check_map_compatible};
use crate::sync::Arc;
use crate::uapi::{MapType, ProgType, UpdateFlags};
use crate::{Errno, Result};
use alloc::collections::BTreeMap;
use alloc::string::String;

/// A handle number.
pub type Fd = u32;

/// What a handle refers to.
#[derive(Clone)]
pub enum Object {
    /// A program.
    Prog(Arc<Prog>),
    /// A map.
    Map(Arc<Map>),
    /// A link.
    Link(Arc<Link>),
    /// A socket ([`crate::net::fd`]); closing its last handle closes it.
    Sock(Arc<crate::net::Socket>),
    /// A network namespace ([`crate::net::fd`]).
    Netns(Arc<crate::net::Net>),
}

/// The handle table. A plain `spin::Mutex` rather than the loom facade: it is a static, and the
/// control path it serializes has no lock-free protocol to model.
static FDS: spin::Mutex<BTreeMap<Fd, Object>> = spin::Mutex::new(BTreeMap::new());

const FIRST_FD: Fd = 3;

fn install(obj: Object) -> Result<Fd> {
    let mut fds = FDS.lock();
    let mut fd = FIRST_FD;
    for &k in fds.keys() {
        if k != fd {
            break;
        }
        fd += 1;
    }
    match &obj {
        Object::Map(m) => m.user_get(),
        Object::Link(l) => l.user_get(),
        Object::Netns(n) => n.user_get(),
        Object::Prog(_) | Object::Sock(_) => {}
    }
    fds.insert(fd, obj);
    Ok(fd)
}

/// The object behind `fd`: `EBADF` if none; `EINVAL` for 0, 1 and 2, the standard streams,
/// which are open files but never bpf objects (`fdget` succeeds, the file is not a bpf one).
pub fn get(fd: Fd) -> Result<Object> {
    if fd < FIRST_FD {
        return Err(Errno::EINVAL);
    }
    FDS.lock().get(&fd).cloned().ok_or(Errno::EBADF)
}

/// The program behind `fd` (`EBADF` if none, `EINVAL` if it is not a program).
pub fn prog_get(fd: Fd) -> Result<Arc<Prog>> {
    match get(fd)? {
        Object::Prog(p) => Ok(p),
        _ => Err(Errno::EINVAL),
    }
}

/// The map behind `fd` (`EBADF` if none, `EINVAL` if it is not a map).
pub fn map_get(fd: Fd) -> Result<Arc<Map>> {
    match get(fd)? {
        Object::Map(m) => Ok(m),
        _ => Err(Errno::EINVAL),
    }
}

/// The link behind `fd` (`EBADF` if none, `EINVAL` if it is not a link).
pub fn link_get(fd: Fd) -> Result<Arc<Link>> {
    match get(fd)? {
        Object::Link(l) => Ok(l),
        _ => Err(Errno::EINVAL),
    }
}

/// Gives a new link its first handle (the tail of every attach point's `link_create`).
pub fn link_install(link: Link) -> Result<Fd> {
    install(Object::Link(Arc::new(link)))
}

/// `BPF_LINK_DETACH`: detaches once; a detached link keeps its handle.
pub fn link_detach(fd: Fd) -> Result {
    link_get(fd)?.detach()
}

/// `BPF_LINK_UPDATE`: gives the link `new_prog`; with `old_prog` (`BPF_F_REPLACE`), only if
/// the link holds that program — the attach point checks it.
pub fn link_update(fd: Fd, new_prog: Fd, old_prog: Option<Fd>) -> Result {
    match old_prog {
        Some(old) => link_update_flags(fd, new_prog, LINK_UPDATE_REPLACE, old),
        None => link_update_flags(fd, new_prog, 0, 0),
    }
}

/// `BPF_F_REPLACE`, the one flag `BPF_LINK_UPDATE` knows.
pub const LINK_UPDATE_REPLACE: u32 = 1 << 2;

/// `BPF_LINK_UPDATE` with its raw attributes, checked in `link_update`'s order
/// (`kernel/bpf/syscall.c`): a flag other than `BPF_F_REPLACE` (`EINVAL`), the link, the new
/// program, then the old one when `BPF_F_REPLACE` is set — without it, `old_prog_fd` must be 0
/// (`EINVAL`).
pub fn link_update_flags(fd: Fd, new_prog: Fd, flags: u32, old_prog_fd: Fd) -> Result {
    if flags & !LINK_UPDATE_REPLACE != 0 {
        return Err(Errno::EINVAL);
    }
    let link = link_get(fd)?;
    let new = prog_get(new_prog)?;
    let old = if flags & LINK_UPDATE_REPLACE != 0 {
        Some(prog_get(old_prog_fd)?)
    } else if old_prog_fd != 0 {
        return Err(Errno::EINVAL);
    } else {
        None
    };
    link.update(new, old.as_ref())
}

/// Closes a handle. The last user handle of a prog_array clears its slots.
pub fn close(fd: Fd) -> Result {
    let obj = FDS.lock().remove(&fd).ok_or(Errno::EBADF)?;
    match obj {
        Object::Map(m) => m.user_put(),
        Object::Link(l) => Link::user_put(l),
        Object::Netns(n) => n.user_put(),
        Object::Prog(_) | Object::Sock(_) => {}
    }
    Ok(())
}

/// The first object behind a handle for which `pred` holds (for id lookups such as
/// `bpf_prog_by_id`, which here search the handle table).
pub fn find_object(pred: &dyn Fn(&Object) -> bool) -> Option<Object> {
    FDS.lock().values().find(|o| pred(o)).cloned()
}

/// Gives `obj` a new handle (for objects created outside this module, e.g. by attach code).
pub fn install_object(obj: Object) -> Result<Fd> {
    install(obj)
}

/// `BPF_MAP_CREATE`.
pub fn map_create(attr: &MapAttr) -> Result<Fd> {
    let map = Map::create(*attr)?;
    install(Object::Map(Arc::new(map)))
}

/// `BPF_MAP_LOOKUP_ELEM`: copies the value into `value` (for a prog_array: the program id).
pub fn map_lookup_elem(fd: Fd, key: &[u8], value: &mut [u8]) -> Result {
    map_get(fd)?.lookup(key, value)
}

/// `BPF_MAP_UPDATE_ELEM`. For a prog_array, `value` is a program handle (u32).
pub fn map_update_elem(fd: Fd, key: &[u8], value: &[u8], flags: u64) -> Result {
    let map = map_get(fd)?;
    let flags = UpdateFlags::from_bits(flags).ok_or(Errno::EINVAL)?;
    let Some(array) = map.as_prog_array() else {
        return map.update(key, value, flags);
    };
    // `bpf_fd_array_map_update_elem`: flags, then index, then the handle, then compatibility.
    if key.len() != 4 || value.len() != 4 {
        return Err(Errno::EINVAL);
    }
    if flags != UpdateFlags::ANY {
        return Err(Errno::EINVAL);
    }
    let index = array_index(key)?;
    if index >= array.max_entries() {
        return Err(Errno::E2BIG);
    }
    let prog = prog_get(array_index(value)?)?;
    check_map_compatible(&map, &prog)?;
    array.update(index, prog, flags)
}

/// `BPF_MAP_DELETE_ELEM`.
pub fn map_delete_elem(fd: Fd, key: &[u8]) -> Result {
    map_get(fd)?.delete(key)
}

/// `BPF_MAP_GET_NEXT_KEY`.
pub fn map_get_next_key(fd: Fd, key: Option<&[u8]>, next: &mut [u8]) -> Result {
    map_get(fd)?.get_next_key(key, next)
}

/// `BPF_PROG_LOAD`: the load pipeline ([`crate::load`]: structural gate, verifier, rewrites,
/// runtime selection) and a handle to the program. A program the verifier rejects fails with
/// the verifier's errno; [`prog_load_log`] also returns its log.
///
/// ```
/// # use kbpf::host::{ExecRegion, Host};
/// # use kbpf::sync::cpu::{CpuSlots, Hold};
/// # use kbpf::{Errno, Result};
/// # struct MyHost { cpus: CpuSlots, start: std::time::Instant }
/// # std::thread_local! { static HOLD: Hold = const { Hold::new() }; }
/// # impl Host for MyHost {
/// #     fn nr_cpus(&self) -> usize { self.cpus.nr() }
/// #     fn cpu_enter(&self) -> usize { HOLD.with(|h| self.cpus.enter(h, 0)) }
/// #     fn cpu_exit(&self, cpu: usize) { HOLD.with(|h| self.cpus.exit(h, cpu)) }
/// #     fn ktime_ns(&self) -> u64 { self.start.elapsed().as_nanos() as u64 }
/// #     fn random_u32(&self) -> u32 { self.start.elapsed().subsec_nanos() }
/// #     fn exec_alloc(&self, _len: usize) -> Result<ExecRegion> { Err(Errno::ENOMEM) }
/// #     fn exec_seal(&self, _region: &ExecRegion) -> Result { Err(Errno::EINVAL) }
/// #     fn text_poke(&self, _r: &ExecRegion, _o: usize, _b: &[u8]) -> Result { Err(Errno::EINVAL) }
/// #     fn exec_free(&self, _region: ExecRegion) {}
/// # }
/// # let host = MyHost { cpus: CpuSlots::new(2), start: std::time::Instant::now() };
/// # kbpf::host::register(Box::leak(Box::new(host)));
/// use kbpf::insn::{exit, mov64_imm};
/// use kbpf::syscall;
/// use kbpf::uapi::ProgType;
/// use kbpf::ProgLoadAttr;
///
/// let fd = syscall::prog_load(&ProgLoadAttr::new(ProgType::SchedCls, &[mov64_imm(0, 0), exit()]))?;
/// assert_eq!(syscall::prog_get(fd)?.prog_type(), ProgType::SchedCls);
///
/// // Returning without setting R0 is refused, with the kernel's errno and log line.
/// let mut log = String::new();
/// let insns = [exit()];
/// let attr = ProgLoadAttr::new(ProgType::SchedCls, &insns);
/// assert_eq!(syscall::prog_load_log(&attr, &mut log), Err(Errno::EACCES));
/// assert!(log.contains("R0 !read_ok"), "{log}");
/// # Ok::<(), Errno>(())
/// ```
pub fn prog_load(attr: &ProgLoadAttr<'_>) -> Result<Fd> {
    let mut log = String::new();
    prog_load_log(attr, &mut log)
}

/// `BPF_PROG_LOAD` with the load log (`log_buf`) returned in `log`: the verifier's log, with
/// its errno, when it rejects the program; its summary line when it accepts it.
pub fn prog_load_log(attr: &ProgLoadAttr<'_>, log: &mut String) -> Result<Fd> {
    load_with(attr, log, Verification::Verify)
}

/// The in-kernel trusted path (like Linux's `lib/test_bpf.c`, which runs programs without
/// the verifier): the structural gate and the load-time rewrites, but no verifier. For
/// programs whose safety the caller vouches for — kbpf's own test programs, conformance cases
/// the verifier rightly rejects — never for untrusted input. A raw-buffer program loaded this
/// way runs on a buffer of any length.
pub fn prog_load_trusted(attr: &ProgLoadAttr<'_>) -> Result<Fd> {
    let mut log = String::new();
    prog_load_trusted_log(attr, &mut log)
}

/// [`prog_load_trusted`] with the load log returned in `log`.
pub fn prog_load_trusted_log(attr: &ProgLoadAttr<'_>, log: &mut String) -> Result<Fd> {
    load_with(attr, log, Verification::Trusted)
}

/// The checks of `BPF_PROG_LOAD` and the verifier, without loading (what `bpftool prog load`
/// reports of the verifier, for `kbpf verify`): `Ok` when the program verifies, with the
/// function it calls that kbpf cannot run yet, if any — [`prog_load`] would refuse such a
/// program with `ENOTSUPP`. A rejection is the load's errno, with the log in `log`.
pub fn prog_verify_log(
    attr: &ProgLoadAttr<'_>,
    log: &mut String,
) -> Result<Option<crate::load::RuntimeGap>> {
    crate::load::prog_verify(attr, &|fd| map_get(fd).map_err(|_| Errno::EBADF), log)
}

fn load_with(attr: &ProgLoadAttr<'_>, log: &mut String, mode: Verification) -> Result<Fd> {
    let prog = load_prog(attr, &|fd| map_get(fd).map_err(|_| Errno::EBADF), log, mode)?;
    install(Object::Prog(prog))
}

/// `BPF_PROG_TEST_RUN`'s arguments and results: the `test` member of `union bpf_attr`, with
/// slices in place of pointer and size pairs.
///
/// | `bpf_attr.test` | here |
/// |---|---|
/// | `data_in`, `data_size_in` | [`TestRun::data`] |
/// | `data_out`, `data_size_out` (in) | [`TestRun::data_out`] (its length) |
/// | `ctx_in`, `ctx_size_in` | [`TestRun::ctx_in`] |
/// | `ctx_out`, `ctx_size_out` (in) | [`TestRun::ctx_out`] (its length) |
/// | `repeat`, `flags`, `cpu`, `batch_size` | the fields of the same names |
/// | `retval`, `duration`, `data_size_out`, `ctx_size_out` (out) | [`TestRun::out`] |
///
/// Build one with `..Default::default()` for the fields you do not set.
#[derive(Debug, Default)]
pub struct TestRun<'a> {
    /// The packet (`data_in`). Socket filters and TC programs see it as an Ethernet frame in
    /// a socket buffer, XDP programs as a frame (after `ctx_in`'s metadata, if any); the
    /// slice itself is not changed. A raw-buffer program runs on the slice in place.
    pub data: &'a mut [u8],
    /// Where the packet as the program left it goes (`data_out`, `data_size_out` = its
    /// length): cut to the slice's length with `ENOSPC` when longer; an empty slice asks for
    /// the size alone, as `data_size_out = 0` does. `None`: not wanted.
    pub data_out: Option<&'a mut [u8]>,
    /// The context to start from (`ctx_in`): a `struct __sk_buff` (only the fields Linux
    /// lets a caller set; anything else non-zero is `EINVAL`) or a `struct xdp_md` (the
    /// metadata and linear lengths, the receive queue). Shorter than the struct is zero
    /// filled; longer must be zero past it (`E2BIG`).
    pub ctx_in: Option<&'a [u8]>,
    /// Where the context after the run goes (`ctx_out`), as [`TestRun::data_out`].
    pub ctx_out: Option<&'a mut [u8]>,
    /// How many times to run (0 means 1), on the same context: what one run changes, the
    /// next sees.
    pub repeat: u32,
    /// `BPF_F_TEST_*` flags: [`crate::test_run::F_TEST_SKB_CHECKSUM_COMPLETE`] for socket
    /// buffers; others are refused.
    pub flags: u32,
    /// `cpu`: must be 0 (`BPF_F_TEST_RUN_ON_CPU` is not offered).
    pub cpu: u32,
    /// `batch_size`: must be 0 (no live XDP frames).
    pub batch_size: u32,
    /// The network namespace the caller is in (`current->nsproxy->net_ns`), by handle from
    /// [`crate::net::fd`]; `None`: the initial one. A packet's device is this netns's loopback
    /// (or the device the context names), so it is what `BPF_F_CURRENT_NETNS` means to the
    /// socket helpers and the conntrack kfuncs alike, and the socket a socket buffer carries
    /// belongs to it.
    pub netns: Option<Fd>,
    /// What the run reported: written whenever the kernel would have written it back, which
    /// includes an `ENOSPC` error.
    pub out: TestRunResult,
}

/// What `BPF_PROG_TEST_RUN` reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TestRunResult {
    /// R0 of the last run (`retval` is its low 32 bits).
    pub retval: u64,
    /// Average duration of one run in nanoseconds.
    pub duration_ns: u64,
    /// Bytes of packet after the run (`data_size_out`), even where `data_out` was shorter.
    pub data_size_out: u32,
    /// Bytes of context after the run (`ctx_size_out`): the struct's size when `ctx_out` was
    /// given, else 0.
    pub ctx_size_out: u32,
}

/// `BPF_PROG_TEST_RUN`: runs the program `repeat` times on a context built from `run`, as
/// the kernel's `bpf_prog_test_run_skb` / `bpf_prog_test_run_xdp` build it (socket filter,
/// cgroup skb and TC programs; XDP), or on the raw buffer ([`crate::test_run`]). A verified
/// raw-buffer program runs only on a buffer of the length it was verified for (`EINVAL`
/// otherwise): the verifier's judgement holds for that length alone. Other program types
/// are `ENOTSUPP`.
pub fn prog_test_run(fd: Fd, run: &mut TestRun<'_>) -> Result<TestRunResult> {
    let prog = prog_get(fd)?;
    crate::test_run::run(&prog, run)
}

/// What `BPF_OBJ_GET_INFO_BY_FD` reports for a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgInfo {
    /// Program id.
    pub id: u32,
    /// Program type.
    pub prog_type: ProgType,
    /// Instruction slots after the load-time rewrites.
    pub xlated_insns: u32,
    /// Whether it runs JIT-compiled.
    pub jited: bool,
    /// JIT image size (0 when interpreted).
    pub jited_prog_len: u32,
    /// Name.
    pub name: String,
    /// Ids of the maps it uses.
    pub map_ids: alloc::vec::Vec<u32>,
}

/// What `BPF_OBJ_GET_INFO_BY_FD` reports for a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapInfo {
    /// Map id.
    pub id: u32,
    /// Map type.
    pub map_type: MapType,
    /// Key size.
    pub key_size: u32,
    /// Value size.
    pub value_size: u32,
    /// Number of elements.
    pub max_entries: u32,
}

/// What `BPF_OBJ_GET_INFO_BY_FD` reports for a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// Link id.
    pub id: u32,
    /// Id of the program it holds.
    pub prog_id: u32,
    /// Attach type.
    pub attach_type: crate::uapi::AttachType,
    /// Whether it was detached (defunct).
    pub detached: bool,
    /// An sk_lookup link's netns inode number, 0 once detached or the netns exited (or for
    /// another kind of link).
    pub netns_ino: u32,
}

/// Any kind of info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjInfo {
    /// A program's.
    Prog(ProgInfo),
    /// A map's.
    Map(MapInfo),
    /// A link's.
    Link(LinkInfo),
}

/// `BPF_OBJ_GET_INFO_BY_FD`.
pub fn obj_get_info(fd: Fd) -> Result<ObjInfo> {
    Ok(match get(fd)? {
        Object::Prog(p) => ObjInfo::Prog(ProgInfo {
            id: p.id(),
            prog_type: p.prog_type(),
            xlated_insns: p.insns().len() as u32,
            jited: p.jited(),
            jited_prog_len: p.jited_len() as u32,
            name: p.name().into(),
            map_ids: p.used_maps().iter().map(|m| m.id()).collect(),
        }),
        Object::Map(m) => {
            let a = m.attr();
            ObjInfo::Map(MapInfo {
                id: m.id(),
                map_type: a.map_type,
                key_size: a.key_size,
                value_size: a.value_size,
                max_entries: a.max_entries,
            })
        }
        Object::Link(l) => ObjInfo::Link(LinkInfo {
            id: l.id(),
            prog_id: l.prog().id(),
            attach_type: l.attach_type(),
            detached: l.is_detached(),
            netns_ino: crate::net::sk_lookup::link::link_netns_ino(&l),
        }),
        // Not bpf objects: the kernel's `bpf_obj_get_info_by_fd` finds no bpf file there.
        Object::Sock(_) | Object::Netns(_) => return Err(Errno::EINVAL),
    })
}
