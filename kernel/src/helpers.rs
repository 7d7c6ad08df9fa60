//! Helper functions and their prototypes (`struct bpf_func_proto`, `kernel/bpf/helpers.c`,
//! `bpf_base_func_proto` and the per-type `get_func_proto` of `net/core/filter.c`).
//!
//! A helper is an `extern "C"` function of five u64 arguments returning u64 — the BPF calling
//! convention, so the interpreter and JIT'd code call the same functions. Its prototype says
//! what the arguments are. The verifier proves map arguments statically; the interpreter still
//! checks `ConstMapPtr` arguments against the program's `used_maps`, because programs loaded on
//! the trusted path (`syscall::prog_load_trusted`) were never verified.
//!
//! Availability per program type follows the final kernel's `*_func_proto` of
//! `net/core/filter.c` for the types kbpf has (`sk_filter_func_proto`, `tc_cls_act_func_proto`,
//! `xdp_func_proto`, `sk_lookup_func_proto`, `cg_skb_func_proto`) and `bpf_base_func_proto`
//! (which offers `get_current_pid_tgid` to every type since Linux 6.10). A helper known to the
//! verifier without a run-time side ([`HelperProto::has_runtime`] false) would verify and then
//! be refused at load with `ENOTSUPP`.
//!
//! The packet helpers live beside their context: [`skb`] (socket filters, TC), [`xdp`], and
//! the checksum arithmetic with `bpf_csum_diff` in [`csum`]; the socket helpers with the
//! sockets, in [`crate::net::helpers`]. `bpf_loop` is rewritten by the
//! load into an instruction loop calling its callback ([`crate::verifier::loop_inline`]), as
//! the kernel inlines it, so both engines run it without a helper calling back into them.

pub mod csum;
pub mod map_ops;
mod names;
pub mod skb;
pub mod skb_load;
pub mod time;
pub mod xdp;

pub use crate::net::helpers::{
    SK_ASSIGN, SK_LOOKUP_ASSIGN, SK_LOOKUP_TCP, SK_LOOKUP_UDP, SK_RELEASE, SK_SELECT_REUSEPORT,
    SKC_LOOKUP_TCP, XDP_SK_LOOKUP_TCP, XDP_SK_LOOKUP_UDP, XDP_SKC_LOOKUP_TCP,
};
pub use csum::CSUM_DIFF;
pub use names::{FUNC_MAX_ID, func_id_name};
pub use skb::{L3_CSUM_REPLACE, L4_CSUM_REPLACE, REDIRECT, SKB_LOAD_BYTES, SKB_STORE_BYTES};
pub use xdp::{
    XDP_ADJUST_HEAD, XDP_ADJUST_META, XDP_ADJUST_TAIL, XDP_LOAD_BYTES, XDP_REDIRECT_PROTO,
    XDP_STORE_BYTES,
};

use crate::Errno;
use crate::host;
use crate::map::Map;
use crate::uapi::{ProgType, func};

/// The machine signature of every helper.
pub type HelperFn = unsafe extern "C" fn(u64, u64, u64, u64, u64) -> u64;

/// What a helper argument must be (`enum bpf_arg_type`, the subset in use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// Not passed.
    None,
    /// Any scalar.
    Anything,
    /// The program's context pointer.
    PtrToCtx,
    /// A map reference from `ld_imm64` (`ARG_CONST_MAP_PTR`).
    ConstMapPtr,
    /// Pointer to `key_size` initialized bytes (`ARG_PTR_TO_MAP_KEY`).
    PtrToMapKey,
    /// Pointer to `value_size` initialized bytes (`ARG_PTR_TO_MAP_VALUE`).
    PtrToMapValue,
    /// Pointer to initialized memory the helper reads, of the size the next argument gives
    /// (`ARG_PTR_TO_MEM | MEM_RDONLY`).
    PtrToMem,
    /// [`ArgKind::PtrToMem`], or NULL when the size that follows may be 0
    /// (`ARG_PTR_TO_MEM | PTR_MAYBE_NULL | MEM_RDONLY`).
    PtrToMemOrNull,
    /// Pointer to memory the helper fills, of the size the next argument gives; it need not be
    /// initialized before (`ARG_PTR_TO_UNINIT_MEM`).
    PtrToUninitMem,
    /// The size in bytes of the previous memory argument, non-zero and bounded
    /// (`ARG_CONST_SIZE`).
    ConstSize,
    /// [`ArgKind::ConstSize`] that may be 0 (`ARG_CONST_SIZE_OR_ZERO`).
    ConstSizeOrZero,
    /// A BPF function from `ld_imm64` with `BPF_PSEUDO_FUNC`: the callback the helper calls
    /// (`ARG_PTR_TO_FUNC`).
    PtrToFunc,
    /// A pointer into the stack, or NULL: the callback's context (`ARG_PTR_TO_STACK_OR_NULL`).
    PtrToStackOrNull,
    /// A socket (`ARG_PTR_TO_BTF_ID_SOCK_COMMON`); with `release`, a referenced one the helper
    /// releases (`OBJ_RELEASE`).
    PtrToSockCommon {
        /// The helper releases the reference the socket holds.
        release: bool,
    },
    /// A socket or NULL (`ARG_PTR_TO_SOCKET_OR_NULL`).
    PtrToSocketOrNull,
}

/// What a helper returns (`enum bpf_return_type`, the subset in use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetKind {
    /// A scalar.
    Integer,
    /// Nothing meaningful (R0 unknown).
    Void,
    /// A map value pointer or NULL (`RET_PTR_TO_MAP_VALUE_OR_NULL`).
    PtrToMapValueOrNull,
    /// A socket or NULL (`RET_PTR_TO_SOCKET_OR_NULL`).
    PtrToSocketOrNull,
    /// A socket's common part or NULL (`RET_PTR_TO_SOCK_COMMON_OR_NULL`).
    PtrToSockCommonOrNull,
}

/// A helper's prototype.
#[derive(Debug)]
pub struct HelperProto {
    /// The helper id (`BPF_FUNC_*`).
    pub id: i32,
    /// The helper's name without the `bpf_` prefix.
    pub name: &'static str,
    /// The function; `None` for helpers the load path rewrites into instructions (`tail_call`,
    /// see `rewritten`) and for helpers without a run-time side yet.
    pub func: Option<HelperFn>,
    /// The load path replaces calls to it by instructions (`tail_call`).
    pub rewritten: bool,
    /// The returned pointer holds a reference the program must release
    /// (`is_acquire_function`).
    pub acquire: bool,
    /// Argument kinds, R1..R5.
    pub args: [ArgKind; 5],
    /// Return kind.
    pub ret: RetKind,
    /// A zero return stops the program with r0 = 0 (the conformance suite's test helper).
    pub unwind_on_zero: bool,
}

impl HelperProto {
    /// Whether a program calling it can run: the helper has a function, or the load rewrites
    /// its calls into instructions.
    pub fn has_runtime(&self) -> bool {
        self.func.is_some() || self.rewritten
    }

    /// An internal helper the load's own rewrites call ([`skb_load`], [`map_ops`]): a function,
    /// no acquire, no unwinding.
    pub(crate) const fn internal(
        id: i32,
        name: &'static str,
        func: HelperFn,
        args: [ArgKind; 5],
        ret: RetKind,
    ) -> Self {
        HelperProto {
            id,
            name,
            func: Some(func),
            rewritten: false,
            acquire: false,
            args,
            ret,
            unwind_on_zero: false,
        }
    }

    /// A prototype with no run-time side, no acquire, no unwinding.
    pub(crate) const fn verifier_only(
        id: i32,
        name: &'static str,
        args: [ArgKind; 5],
        ret: RetKind,
    ) -> Self {
        HelperProto {
            id,
            name,
            func: None,
            rewritten: false,
            acquire: false,
            args,
            ret,
            unwind_on_zero: false,
        }
    }
}

use ArgKind::{
    Anything, ConstMapPtr, None as No, PtrToCtx, PtrToFunc, PtrToMapKey, PtrToMapValue,
    PtrToStackOrNull,
};

unsafe extern "C" fn map_lookup_elem(map: u64, key: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: the caller (interpreter or verified JIT code) guarantees `map` is a live `Map`
    // from `used_maps` and `key` points to `key_size` bytes, inside a read-side section.
    unsafe { (*(map as *const Map)).lookup_elem_raw(key as *const u8) as u64 }
}

unsafe extern "C" fn map_update_elem(map: u64, key: u64, value: u64, flags: u64, _: u64) -> u64 {
    // SAFETY: as for `map_lookup_elem`; `value` points to `value_size` bytes.
    unsafe {
        (*(map as *const Map)).update_elem_raw(key as *const u8, value as *const u8, flags) as u64
    }
}

unsafe extern "C" fn map_delete_elem(map: u64, key: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: as for `map_lookup_elem`.
    unsafe { (*(map as *const Map)).delete_elem_raw(key as *const u8) as u64 }
}

unsafe extern "C" fn ktime_get_ns(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    host::get().ktime_ns()
}

unsafe extern "C" fn get_prandom_u32(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    host::get().random_u32() as u64
}

unsafe extern "C" fn get_smp_processor_id(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    let h = host::get();
    // The thread already holds its CPU while a program runs; a nested enter returns it.
    let cpu = h.cpu_enter();
    h.cpu_exit(cpu);
    cpu as u64
}

unsafe extern "C" fn get_current_pid_tgid(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // Without a current task the kernel's helper returns -EINVAL.
    host::get()
        .current_pid_tgid()
        .unwrap_or(Errno::EINVAL.to_neg() as u64)
}

unsafe extern "C" fn conformance_unwind(r1: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    r1
}

/// `bpf_map_lookup_elem`.
pub static MAP_LOOKUP_ELEM: HelperProto = HelperProto {
    id: func::MAP_LOOKUP_ELEM,
    name: "map_lookup_elem",
    func: Some(map_lookup_elem),
    args: [ConstMapPtr, PtrToMapKey, No, No, No],
    ret: RetKind::PtrToMapValueOrNull,
    unwind_on_zero: false,
    rewritten: false,
    acquire: false,
};

/// `bpf_map_update_elem`.
pub static MAP_UPDATE_ELEM: HelperProto = HelperProto {
    id: func::MAP_UPDATE_ELEM,
    name: "map_update_elem",
    func: Some(map_update_elem),
    args: [ConstMapPtr, PtrToMapKey, PtrToMapValue, Anything, No],
    ret: RetKind::Integer,
    unwind_on_zero: false,
    rewritten: false,
    acquire: false,
};

/// `bpf_map_delete_elem`.
pub static MAP_DELETE_ELEM: HelperProto = HelperProto {
    id: func::MAP_DELETE_ELEM,
    name: "map_delete_elem",
    func: Some(map_delete_elem),
    args: [ConstMapPtr, PtrToMapKey, No, No, No],
    ret: RetKind::Integer,
    unwind_on_zero: false,
    rewritten: false,
    acquire: false,
};

/// `bpf_ktime_get_ns`.
pub static KTIME_GET_NS: HelperProto = HelperProto {
    id: func::KTIME_GET_NS,
    name: "ktime_get_ns",
    func: Some(ktime_get_ns),
    args: [No; 5],
    ret: RetKind::Integer,
    unwind_on_zero: false,
    rewritten: false,
    acquire: false,
};

/// `bpf_get_prandom_u32`.
pub static GET_PRANDOM_U32: HelperProto = HelperProto {
    id: func::GET_PRANDOM_U32,
    name: "get_prandom_u32",
    func: Some(get_prandom_u32),
    args: [No; 5],
    ret: RetKind::Integer,
    unwind_on_zero: false,
    rewritten: false,
    acquire: false,
};

/// `bpf_get_smp_processor_id`.
pub static GET_SMP_PROCESSOR_ID: HelperProto = HelperProto {
    id: func::GET_SMP_PROCESSOR_ID,
    name: "get_smp_processor_id",
    func: Some(get_smp_processor_id),
    args: [No; 5],
    ret: RetKind::Integer,
    unwind_on_zero: false,
    rewritten: false,
    acquire: false,
};

/// `bpf_tail_call`: rewritten into the tail-call instruction at load.
pub static TAIL_CALL: HelperProto = HelperProto {
    id: func::TAIL_CALL,
    name: "tail_call",
    func: None,
    args: [PtrToCtx, ConstMapPtr, Anything, No, No],
    ret: RetKind::Void,
    unwind_on_zero: false,
    rewritten: true,
    acquire: false,
};

/// The conformance suite's helper 5 (raw-buffer programs only): returns its argument; a zero
/// argument stops the program with r0 = 0.
pub static CONFORMANCE_UNWIND: HelperProto = HelperProto {
    id: func::CONFORMANCE_UNWIND,
    name: "conformance_unwind",
    func: Some(conformance_unwind),
    args: [Anything, No, No, No, No],
    ret: RetKind::Integer,
    unwind_on_zero: true,
    rewritten: false,
    acquire: false,
};

/// `bpf_get_current_pid_tgid`: the calling task's `tgid << 32 | pid` (from the host).
pub static GET_CURRENT_PID_TGID: HelperProto = HelperProto {
    id: func::GET_CURRENT_PID_TGID,
    name: "get_current_pid_tgid",
    func: Some(get_current_pid_tgid),
    args: [No; 5],
    ret: RetKind::Integer,
    unwind_on_zero: false,
    rewritten: false,
    acquire: false,
};

/// `bpf_loop(nr_loops, callback, callback_ctx, flags)`: calls `callback(i, callback_ctx)` for
/// `i` from 0 while it returns 0, at most `nr_loops` times; returns the number of calls, or
/// `-EINVAL` for non-zero flags and `-E2BIG` for more than `BPF_MAX_LOOPS` loops. The load
/// rewrites every call into instructions ([`crate::verifier::loop_inline`]).
pub static LOOP: HelperProto = HelperProto {
    rewritten: true,
    ..HelperProto::verifier_only(
        func::LOOP,
        "loop",
        [Anything, PtrToFunc, PtrToStackOrNull, Anything, No],
        RetKind::Integer,
    )
};

/// Whether helper `id` may move or resize packet data, so that every packet pointer the
/// program holds is invalid after the call (`bpf_helper_changes_pkt_data`, for the helpers
/// kbpf offers).
pub fn changes_pkt_data(id: i32) -> bool {
    matches!(
        id,
        func::SKB_STORE_BYTES
            | func::L3_CSUM_REPLACE
            | func::L4_CSUM_REPLACE
            | func::XDP_ADJUST_HEAD
            | func::XDP_ADJUST_META
            | func::XDP_ADJUST_TAIL
    )
}

/// Whether helper `id` may be given packet pointers (its prototype's `pkt_access`: the map
/// helpers, `bpf_csum_diff` and the socket lookups, of the helpers kbpf offers); any other
/// refuses them, "helper access to the packet is not allowed".
pub fn pkt_access(id: i32) -> bool {
    matches!(
        id,
        func::MAP_LOOKUP_ELEM
            | func::MAP_UPDATE_ELEM
            | func::MAP_DELETE_ELEM
            | func::CSUM_DIFF
            | func::SK_LOOKUP_TCP
            | func::SK_LOOKUP_UDP
            | func::SKC_LOOKUP_TCP
    )
}

/// The helper `id` as program type `prog_type` sees it (`get_func_proto`), or `None` when the
/// type does not offer it.
pub fn func_proto(prog_type: ProgType, id: i32) -> Option<&'static HelperProto> {
    use ProgType::*;
    let base = match id {
        func::MAP_LOOKUP_ELEM => Some(&MAP_LOOKUP_ELEM),
        func::MAP_UPDATE_ELEM => Some(&MAP_UPDATE_ELEM),
        func::MAP_DELETE_ELEM => Some(&MAP_DELETE_ELEM),
        func::GET_PRANDOM_U32 => Some(&GET_PRANDOM_U32),
        func::GET_SMP_PROCESSOR_ID => Some(&GET_SMP_PROCESSOR_ID),
        func::TAIL_CALL => Some(&TAIL_CALL),
        func::LOOP => Some(&LOOP),
        _ => None,
    };
    let tc = matches!(prog_type, SchedCls | SchedAct);
    let skb = tc || matches!(prog_type, SocketFilter | CgroupSkb);
    // The types whose programs look sockets up by tuple on a socket buffer.
    let sk_skb = tc || prog_type == CgroupSkb;
    match (prog_type, id) {
        (RawBuffer, func::CONFORMANCE_UNWIND) => Some(&CONFORMANCE_UNWIND),
        (RawBuffer, _) => base,
        (Unspec, _) => None,
        (_, func::KTIME_GET_NS) => Some(&KTIME_GET_NS),
        (_, func::GET_CURRENT_PID_TGID) => Some(&GET_CURRENT_PID_TGID),
        (_, func::JIFFIES64) => Some(&time::JIFFIES64),
        (_, func::SKB_LOAD_BYTES) if skb => Some(&SKB_LOAD_BYTES),
        (_, func::SKB_STORE_BYTES) if tc => Some(&SKB_STORE_BYTES),
        (_, func::L3_CSUM_REPLACE) if tc => Some(&L3_CSUM_REPLACE),
        (_, func::L4_CSUM_REPLACE) if tc => Some(&L4_CSUM_REPLACE),
        (Xdp, func::CSUM_DIFF) => Some(&CSUM_DIFF),
        (_, func::CSUM_DIFF) if tc => Some(&CSUM_DIFF),
        (Xdp, func::XDP_ADJUST_HEAD) => Some(&XDP_ADJUST_HEAD),
        (Xdp, func::XDP_ADJUST_META) => Some(&XDP_ADJUST_META),
        (Xdp, func::XDP_ADJUST_TAIL) => Some(&XDP_ADJUST_TAIL),
        (Xdp, func::XDP_LOAD_BYTES) => Some(&XDP_LOAD_BYTES),
        (Xdp, func::XDP_STORE_BYTES) => Some(&XDP_STORE_BYTES),
        (Xdp, func::REDIRECT) => Some(&XDP_REDIRECT_PROTO),
        (_, func::REDIRECT) if tc => Some(&REDIRECT),
        (Xdp, func::SK_LOOKUP_TCP) => Some(&XDP_SK_LOOKUP_TCP),
        (_, func::SK_LOOKUP_TCP) if sk_skb => Some(&SK_LOOKUP_TCP),
        (Xdp, func::SK_LOOKUP_UDP) => Some(&XDP_SK_LOOKUP_UDP),
        (_, func::SK_LOOKUP_UDP) if sk_skb => Some(&SK_LOOKUP_UDP),
        (Xdp, func::SKC_LOOKUP_TCP) => Some(&XDP_SKC_LOOKUP_TCP),
        (_, func::SKC_LOOKUP_TCP) if sk_skb => Some(&SKC_LOOKUP_TCP),
        (Xdp | SkLookup, func::SK_RELEASE) => Some(&SK_RELEASE),
        (_, func::SK_RELEASE) if sk_skb => Some(&SK_RELEASE),
        (SkLookup, func::SK_ASSIGN) => Some(&SK_LOOKUP_ASSIGN),
        (SkReuseport, func::SK_SELECT_REUSEPORT) => Some(&SK_SELECT_REUSEPORT),
        (SkReuseport, func::SKB_LOAD_BYTES) => Some(&skb::SK_REUSEPORT_LOAD_BYTES),
        (_, func::SK_ASSIGN) if tc => Some(&SK_ASSIGN),
        _ => base,
    }
}

/// The helper `id` as the engines resolve it for a program of `prog_type`: what
/// [`func_proto`] offers, plus the internal helpers the load's own rewrites call (the legacy
/// packet loads' [`skb_load`] helpers, the map operations of [`map_ops`]), which no program
/// may call itself.
pub fn runtime_proto(prog_type: ProgType, id: i32) -> Option<&'static HelperProto> {
    func_proto(prog_type, id)
        .or_else(|| skb_load::proto_for(prog_type, id))
        .or_else(|| map_ops::proto_for(id))
}
