//! The conntrack kfuncs: their prototypes for the verifier (`BTF_ID_FLAGS` of
//! `nf_ct_kfunc_set` in `net/netfilter/nf_conntrack_bpf.c` and `nf_nat_bpf.c`, registered for
//! XDP and TC) and their run-time side, called by the interpreter and JIT'd code with the
//! helper calling convention (five `u64`s in, one out).
//!
//! Objects: a lookup or an insertion hands out `struct nf_conn *` (a reference the program must
//! release); an allocation hands out `struct nf_conn___init *`, a distinct type to the verifier
//! that only `bpf_ct_set_*` and `bpf_ct_insert_entry` accept, and which insertion consumes
//! whether or not it succeeds.
//!
//! Run-time checks follow the final kernel's order ([`lookup`] and [`alloc`]), errors go to
//! `opts->error` as negative errnos ([`super::opts`]). Lookup, release and the timeout and
//! status changes take no lock and allocate nothing; allocation and insertion are the kernel's
//! allocating, bucket-locking paths (`GFP_ATOMIC`, `nf_conntrack_double_lock`).

use super::conn::{Conn, ConnInit, msecs_to_jiffies};
use super::nat;
use super::netns::CURRENT_NETNS;
use super::opts::{Opts, netns_id_invalid};
use super::table::Table;
use super::tuple::{DIR_ORIGINAL, DIR_REPLY, IPPROTO_TCP, IPPROTO_UDP, SOCK_TUPLE_V6, Tuple};
use super::{HZ, conntrack};
use crate::kfunc::{KernelStruct, Kfunc, KfuncArg, KfuncArgKind, KfuncFlags, KfuncRet};
use crate::skb::SkBuff;
use crate::uapi::ProgType;
use crate::xdp::XdpBuff;
use crate::{Errno, Result};

/// The kfuncs' ids (a call's `imm`; kbpf's own numbers, where Linux has BTF ids).
pub mod ids {
    /// `bpf_xdp_ct_lookup`.
    pub const BPF_XDP_CT_LOOKUP: u32 = 100_001;
    /// `bpf_skb_ct_lookup`.
    pub const BPF_SKB_CT_LOOKUP: u32 = 100_002;
    /// `bpf_ct_release`.
    pub const BPF_CT_RELEASE: u32 = 100_003;
    /// `bpf_xdp_ct_alloc`.
    pub const BPF_XDP_CT_ALLOC: u32 = 100_004;
    /// `bpf_skb_ct_alloc`.
    pub const BPF_SKB_CT_ALLOC: u32 = 100_005;
    /// `bpf_ct_insert_entry`.
    pub const BPF_CT_INSERT_ENTRY: u32 = 100_006;
    /// `bpf_ct_set_timeout`.
    pub const BPF_CT_SET_TIMEOUT: u32 = 100_007;
    /// `bpf_ct_change_timeout`.
    pub const BPF_CT_CHANGE_TIMEOUT: u32 = 100_008;
    /// `bpf_ct_set_status`.
    pub const BPF_CT_SET_STATUS: u32 = 100_009;
    /// `bpf_ct_change_status`.
    pub const BPF_CT_CHANGE_STATUS: u32 = 100_010;
    /// `bpf_ct_set_nat_info`.
    pub const BPF_CT_SET_NAT_INFO: u32 = 100_011;
}

/// kbpf's `struct nf_conn` as programs see it: the fields up to and including `mark` at the
/// offsets Linux 6.18 x86-64 has them (`shared/research/decisions.md` #8); only `mark`
/// (u32 at 168) is writable.
pub static NF_CONN: KernelStruct = KernelStruct {
    name: "nf_conn",
    size: super::conn::offsets::READABLE,
    writable: &[(super::conn::offsets::MARK, 4)],
};

/// `struct nf_conn___init`: an allocated entry not yet inserted. The same layout as
/// [`NF_CONN`] (Linux wraps one in the other), the same writable `mark`, a distinct type.
pub static NF_CONN_INIT: KernelStruct = KernelStruct {
    name: "nf_conn___init",
    size: super::conn::offsets::READABLE,
    writable: &[(super::conn::offsets::MARK, 4)],
};

/// The program types the conntrack kfuncs are registered for.
const CT_TYPES: &[ProgType] = &[ProgType::Xdp, ProgType::SchedCls];

const fn arg(name: &'static str, kind: KfuncArgKind) -> KfuncArg {
    KfuncArg { name, kind }
}

/// `tuple, tuple__sz, opts, opts__sz` after the context.
const TUPLE_OPTS: [KfuncArg; 4] = [
    arg(
        "bpf_tuple",
        KfuncArgKind::Mem {
            pointee: "bpf_sock_tuple",
            size: SOCK_TUPLE_V6,
        },
    ),
    arg("tuple__sz", KfuncArgKind::Scalar),
    arg(
        "opts",
        KfuncArgKind::Mem {
            pointee: "bpf_ct_opts",
            size: super::opts::OPTS_SIZE,
        },
    ),
    arg("opts__sz", KfuncArgKind::Scalar),
];

const fn with_ctx(ctx: KfuncArg) -> [KfuncArg; 5] {
    let t = TUPLE_OPTS;
    [ctx, t[0], t[1], t[2], t[3]]
}

static XDP_ARGS: [KfuncArg; 5] = with_ctx(arg(
    "xdp_ctx",
    KfuncArgKind::Ctx {
        name: "xdp_md",
        types: &[ProgType::Xdp],
    },
));

static SKB_ARGS: [KfuncArg; 5] = with_ctx(arg(
    "skb_ctx",
    KfuncArgKind::Ctx {
        name: "__sk_buff",
        types: &[
            ProgType::SocketFilter,
            ProgType::SchedCls,
            ProgType::SchedAct,
            ProgType::CgroupSkb,
        ],
    },
));

const ACQ_NULL: KfuncFlags = KfuncFlags::ACQUIRE.union(KfuncFlags::RET_NULL);

const fn ct_fn(
    id: u32,
    name: &'static str,
    args: &'static [KfuncArg],
    ret: KfuncRet,
    flags: KfuncFlags,
    func: crate::helpers::HelperFn,
) -> Kfunc {
    Kfunc {
        id,
        name,
        args,
        ret,
        flags,
        prog_types: CT_TYPES,
        func: Some(func),
    }
}

/// `struct nf_conn *bpf_xdp_ct_lookup(struct xdp_md *xdp_ctx, struct bpf_sock_tuple *bpf_tuple,
/// u32 tuple__sz, struct bpf_ct_opts *opts, u32 opts__sz)`.
pub static BPF_XDP_CT_LOOKUP: Kfunc = ct_fn(
    ids::BPF_XDP_CT_LOOKUP,
    "bpf_xdp_ct_lookup",
    &XDP_ARGS,
    KfuncRet::Obj(&NF_CONN),
    ACQ_NULL,
    xdp_ct_lookup,
);

/// `struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb_ctx, ...)`.
pub static BPF_SKB_CT_LOOKUP: Kfunc = ct_fn(
    ids::BPF_SKB_CT_LOOKUP,
    "bpf_skb_ct_lookup",
    &SKB_ARGS,
    KfuncRet::Obj(&NF_CONN),
    ACQ_NULL,
    skb_ct_lookup,
);

/// `struct nf_conn___init *bpf_xdp_ct_alloc(struct xdp_md *xdp_ctx, ...)`.
pub static BPF_XDP_CT_ALLOC: Kfunc = ct_fn(
    ids::BPF_XDP_CT_ALLOC,
    "bpf_xdp_ct_alloc",
    &XDP_ARGS,
    KfuncRet::Obj(&NF_CONN_INIT),
    ACQ_NULL,
    xdp_ct_alloc,
);

/// `struct nf_conn___init *bpf_skb_ct_alloc(struct __sk_buff *skb_ctx, ...)`.
pub static BPF_SKB_CT_ALLOC: Kfunc = ct_fn(
    ids::BPF_SKB_CT_ALLOC,
    "bpf_skb_ct_alloc",
    &SKB_ARGS,
    KfuncRet::Obj(&NF_CONN_INIT),
    ACQ_NULL,
    skb_ct_alloc,
);

/// `struct nf_conn *bpf_ct_insert_entry(struct nf_conn___init *nfct_i)`.
pub static BPF_CT_INSERT_ENTRY: Kfunc = ct_fn(
    ids::BPF_CT_INSERT_ENTRY,
    "bpf_ct_insert_entry",
    &[arg("nfct_i", KfuncArgKind::Obj(&NF_CONN_INIT))],
    KfuncRet::Obj(&NF_CONN),
    ACQ_NULL.union(KfuncFlags::RELEASE),
    ct_insert_entry,
);

/// `void bpf_ct_release(struct nf_conn *nfct)`.
pub static BPF_CT_RELEASE: Kfunc = ct_fn(
    ids::BPF_CT_RELEASE,
    "bpf_ct_release",
    &[arg("nfct", KfuncArgKind::Obj(&NF_CONN))],
    KfuncRet::Void,
    KfuncFlags::RELEASE,
    ct_release,
);

/// `void bpf_ct_set_timeout(struct nf_conn___init *nfct, u32 timeout)`.
pub static BPF_CT_SET_TIMEOUT: Kfunc = ct_fn(
    ids::BPF_CT_SET_TIMEOUT,
    "bpf_ct_set_timeout",
    &[
        arg("nfct", KfuncArgKind::Obj(&NF_CONN_INIT)),
        arg("timeout", KfuncArgKind::Scalar),
    ],
    KfuncRet::Void,
    KfuncFlags::TRUSTED_ARGS,
    ct_set_timeout,
);

/// `int bpf_ct_change_timeout(struct nf_conn *nfct, u32 timeout)`.
pub static BPF_CT_CHANGE_TIMEOUT: Kfunc = ct_fn(
    ids::BPF_CT_CHANGE_TIMEOUT,
    "bpf_ct_change_timeout",
    &[
        arg("nfct", KfuncArgKind::Obj(&NF_CONN)),
        arg("timeout", KfuncArgKind::Scalar),
    ],
    KfuncRet::Scalar,
    KfuncFlags::TRUSTED_ARGS,
    ct_change_timeout,
);

/// `int bpf_ct_set_status(const struct nf_conn___init *nfct, u32 status)`.
pub static BPF_CT_SET_STATUS: Kfunc = ct_fn(
    ids::BPF_CT_SET_STATUS,
    "bpf_ct_set_status",
    &[
        arg("nfct", KfuncArgKind::Obj(&NF_CONN_INIT)),
        arg("status", KfuncArgKind::Scalar),
    ],
    KfuncRet::Scalar,
    KfuncFlags::TRUSTED_ARGS,
    ct_change_status,
);

/// `int bpf_ct_change_status(struct nf_conn *nfct, u32 status)`.
pub static BPF_CT_CHANGE_STATUS: Kfunc = ct_fn(
    ids::BPF_CT_CHANGE_STATUS,
    "bpf_ct_change_status",
    &[
        arg("nfct", KfuncArgKind::Obj(&NF_CONN)),
        arg("status", KfuncArgKind::Scalar),
    ],
    KfuncRet::Scalar,
    KfuncFlags::TRUSTED_ARGS,
    ct_change_status,
);

/// `int bpf_ct_set_nat_info(struct nf_conn___init *nfct, union nf_inet_addr *addr, int port,
/// enum nf_nat_manip_type manip)`.
pub static BPF_CT_SET_NAT_INFO: Kfunc = ct_fn(
    ids::BPF_CT_SET_NAT_INFO,
    "bpf_ct_set_nat_info",
    &[
        arg("nfct", KfuncArgKind::Obj(&NF_CONN_INIT)),
        arg(
            "addr",
            KfuncArgKind::Mem {
                pointee: "nf_inet_addr",
                size: 16,
            },
        ),
        arg("port", KfuncArgKind::Scalar),
        arg("manip", KfuncArgKind::Scalar),
    ],
    KfuncRet::Scalar,
    KfuncFlags::TRUSTED_ARGS,
    ct_set_nat_info,
);

/// Every conntrack kfunc.
pub static KFUNCS: [&Kfunc; 11] = [
    &BPF_XDP_CT_LOOKUP,
    &BPF_SKB_CT_LOOKUP,
    &BPF_CT_RELEASE,
    &BPF_XDP_CT_ALLOC,
    &BPF_SKB_CT_ALLOC,
    &BPF_CT_INSERT_ENTRY,
    &BPF_CT_SET_TIMEOUT,
    &BPF_CT_CHANGE_TIMEOUT,
    &BPF_CT_SET_STATUS,
    &BPF_CT_CHANGE_STATUS,
    &BPF_CT_SET_NAT_INFO,
];

/// The default timeout of an allocated entry (10 s, `__bpf_nf_ct_alloc_entry(..., 10)`).
const ALLOC_TIMEOUT: u64 = 10 * HZ;

/// The namespace a `netns_id` names from the caller's `net`: `EINVAL` below -1, `ENONET` for
/// an id nothing has (or a caller namespace that is gone).
#[inline]
fn resolve_net(t: &Table<'_>, caller: u32, netns_id: i32) -> Result<u32> {
    if netns_id == CURRENT_NETNS {
        return if t.nets.is_live(caller) {
            Ok(caller)
        } else {
            Err(Errno::ENONET)
        };
    }
    t.nets.by_id(netns_id).ok_or(Errno::ENONET)
}

/// `__bpf_nf_ct_lookup`: the checks in the final kernel's order — NULL tuple or opts,
/// `opts__sz`, reserved bytes (`EINVAL`); `l4proto` (`EPROTO`); `netns_id` < -1 (`EINVAL`);
/// `tuple__sz` (`EAFNOSUPPORT`); the namespace (`ENONET`); then the entry (`ENOENT`), whose
/// direction goes to `opts->dir`.
///
/// # Safety
/// Inside a program's run (a read-side section of `cpu::rcu()`); `tuple` is null or has
/// `tuple_sz` readable bytes, `opts` null or `opts_sz` readable and writable ones.
pub unsafe fn lookup(
    caller: u32,
    tuple: *const u8,
    tuple_sz: u32,
    opts: &Opts,
) -> Result<*const Conn> {
    if opts.is_null() || tuple.is_null() {
        return Err(Errno::EINVAL);
    }
    let o = opts.check()?;
    if o.l4proto != IPPROTO_TCP && o.l4proto != IPPROTO_UDP {
        return Err(Errno::EPROTO);
    }
    if netns_id_invalid(o.netns_id) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: caller contract.
    let t = unsafe { Tuple::from_bpf(tuple, tuple_sz, o.l4proto, DIR_ORIGINAL) }?;
    let table = conntrack()?;
    let net = resolve_net(table, caller, o.netns_id)?;
    let zone = opts.zone(&o);
    // SAFETY: inside a read-side section of the table's domain (caller contract).
    let found = unsafe { table.find_get(net, &zone, &t) }.ok_or(Errno::ENOENT)?;
    opts.set_dir(found.dir);
    Ok(found.conn)
}

/// `__bpf_nf_ct_alloc_entry`: NULL tuple or opts, `opts__sz`, reserved bytes, `netns_id` < -1
/// (`EINVAL`); `l4proto` (`EPROTO`); `tuple__sz` (`EAFNOSUPPORT`); the namespace (`ENONET`);
/// then a new unconfirmed entry with a 10-second timeout, or `ENOMEM` when the table is full.
///
/// # Safety
/// As [`lookup`].
pub unsafe fn alloc(
    caller: u32,
    tuple: *const u8,
    tuple_sz: u32,
    opts: &Opts,
) -> Result<*mut Conn> {
    if opts.is_null() || tuple.is_null() {
        return Err(Errno::EINVAL);
    }
    let o = opts.check()?;
    if netns_id_invalid(o.netns_id) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: caller contract.
    let orig = unsafe { Tuple::from_bpf(tuple, tuple_sz, o.l4proto, DIR_ORIGINAL) }?;
    // SAFETY: as above.
    let reply = unsafe { Tuple::from_bpf(tuple, tuple_sz, o.l4proto, DIR_REPLY) }?;
    let table = conntrack()?;
    let net = resolve_net(table, caller, o.netns_id)?;
    let zone = opts.zone(&o);
    let init = ConnInit {
        net,
        zone,
        orig,
        reply,
        timeout: ALLOC_TIMEOUT,
    };
    // SAFETY: inside a read-side section (caller contract).
    unsafe { table.alloc(&init) }
}

/// The caller's namespace from an XDP context (`dev_net(ctx->rxq->dev)`).
///
/// # Safety
/// `ctx` is the `XdpBuff` a program was started with.
#[inline]
unsafe fn xdp_net(ctx: u64) -> u32 {
    // SAFETY: caller contract; a running frame's receive queue is never null.
    unsafe { (*(*(ctx as *const XdpBuff)).rxq).netns }
}

/// The caller's namespace from a socket buffer (`dev_net(skb->dev)`).
///
/// # Safety
/// `ctx` is the `SkBuff` a program was started with.
#[inline]
unsafe fn skb_net(ctx: u64) -> u32 {
    // SAFETY: caller contract.
    unsafe { (*(ctx as *const SkBuff)).netns }
}

/// A result as the kfunc returns it: the object, or NULL with `-errno` in `opts->error`.
#[inline]
fn ret<T>(r: Result<*const T>, opts: &Opts) -> u64 {
    match r {
        Ok(p) => p as u64,
        Err(e) => {
            opts.set_error(e);
            0
        }
    }
}

/// An `int` return: 0 or `-errno`.
#[inline]
fn ret_int(r: Result) -> u64 {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_neg() as u64,
    }
}

/// `bpf_xdp_ct_lookup`.
///
/// # Safety
/// Called by a verified XDP or TC program: the verifier proved the arguments' types and sizes.
unsafe extern "C" fn xdp_ct_lookup(ctx: u64, t: u64, tsz: u64, o: u64, osz: u64) -> u64 {
    // SAFETY: the verifier checked `opts__sz` bytes at `o` (or a NULL `o`).
    let opts = unsafe { Opts::new(o as *mut u8, osz as u32) };
    // SAFETY: `ctx` is the program's context; the rest as above.
    ret(
        unsafe { lookup(xdp_net(ctx), t as *const u8, tsz as u32, &opts) },
        &opts,
    )
}

/// `bpf_skb_ct_lookup`.
///
/// # Safety
/// As [`xdp_ct_lookup`].
unsafe extern "C" fn skb_ct_lookup(ctx: u64, t: u64, tsz: u64, o: u64, osz: u64) -> u64 {
    // SAFETY: as in `xdp_ct_lookup`.
    let opts = unsafe { Opts::new(o as *mut u8, osz as u32) };
    // SAFETY: as in `xdp_ct_lookup`.
    ret(
        unsafe { lookup(skb_net(ctx), t as *const u8, tsz as u32, &opts) },
        &opts,
    )
}

/// `bpf_xdp_ct_alloc`.
///
/// # Safety
/// As [`xdp_ct_lookup`].
unsafe extern "C" fn xdp_ct_alloc(ctx: u64, t: u64, tsz: u64, o: u64, osz: u64) -> u64 {
    // SAFETY: as in `xdp_ct_lookup`.
    let opts = unsafe { Opts::new(o as *mut u8, osz as u32) };
    // SAFETY: as in `xdp_ct_lookup`.
    let r = unsafe { alloc(xdp_net(ctx), t as *const u8, tsz as u32, &opts) };
    ret(r.map(|p| p as *const Conn), &opts)
}

/// `bpf_skb_ct_alloc`.
///
/// # Safety
/// As [`xdp_ct_lookup`].
unsafe extern "C" fn skb_ct_alloc(ctx: u64, t: u64, tsz: u64, o: u64, osz: u64) -> u64 {
    // SAFETY: as in `xdp_ct_lookup`.
    let opts = unsafe { Opts::new(o as *mut u8, osz as u32) };
    // SAFETY: as in `xdp_ct_lookup`.
    let r = unsafe { alloc(skb_net(ctx), t as *const u8, tsz as u32, &opts) };
    ret(r.map(|p| p as *const Conn), &opts)
}

/// `bpf_ct_insert_entry`: inserts and returns the entry (a reference), or frees it and
/// returns NULL; the allocation's reference is consumed either way.
///
/// # Safety
/// `nfct` is a referenced `nf_conn___init` the program holds (verifier-proved).
unsafe extern "C" fn ct_insert_entry(nfct: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    let c = nfct as *mut Conn;
    let Ok(table) = conntrack() else { return 0 };
    // SAFETY: an unpublished entry the program holds the only reference to, inside its run.
    match unsafe { table.insert(c) } {
        Ok(()) => nfct,
        Err(_) => {
            // SAFETY: as above: never published, and the program's reference is consumed.
            unsafe { table.free_unpublished(c) };
            0
        }
    }
}

/// `bpf_ct_release`.
///
/// # Safety
/// `nfct` is a referenced `nf_conn` the program holds (verifier-proved).
unsafe extern "C" fn ct_release(nfct: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    if let Ok(table) = conntrack() {
        // SAFETY: caller contract.
        unsafe { table.put(nfct as *const Conn) };
    }
    0
}

/// `bpf_ct_set_timeout`.
///
/// # Safety
/// `nfct` is a referenced `nf_conn___init` the program holds.
unsafe extern "C" fn ct_set_timeout(nfct: u64, ms: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: caller contract.
    let c = unsafe { &*(nfct as *const Conn) };
    c.set_timeout(msecs_to_jiffies(ms as u32), super::jiffies());
    0
}

/// `bpf_ct_change_timeout`: 0, `-EPERM` (fixed timeout) or `-ETIME` (dying).
///
/// # Safety
/// `nfct` is a referenced `nf_conn` the program holds.
unsafe extern "C" fn ct_change_timeout(nfct: u64, ms: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: caller contract.
    let c = unsafe { &*(nfct as *const Conn) };
    ret_int(c.change_timeout(msecs_to_jiffies(ms as u32), super::jiffies()))
}

/// `bpf_ct_set_status` and `bpf_ct_change_status`: 0 or `-EBUSY`.
///
/// # Safety
/// `nfct` is a referenced entry the program holds.
unsafe extern "C" fn ct_change_status(nfct: u64, st: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: caller contract.
    let c = unsafe { &*(nfct as *const Conn) };
    ret_int(c.change_status(st as u32))
}

/// `bpf_ct_set_nat_info`: 0, `-EINVAL` or `-ENOMEM`.
///
/// # Safety
/// `nfct` is a referenced `nf_conn___init` the program holds alone; `addr` has 16 readable
/// bytes.
unsafe extern "C" fn ct_set_nat_info(nfct: u64, addr: u64, port: u64, manip: u64, _: u64) -> u64 {
    // SAFETY: caller contract: unpublished, so no one else reads it.
    let c = unsafe { &mut *(nfct as *mut Conn) };
    // SAFETY: caller contract.
    let a = unsafe { &*(addr as *const [u8; 16]) };
    ret_int(nat::set_nat_info(c, a, port as i32, manip as u32))
}
