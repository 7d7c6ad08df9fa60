//! Helper functions and their prototypes (`struct bpf_func_proto`, `kernel/bpf/helpers.c`,
//! `bpf_base_func_proto` and the per-type `get_func_proto` of `net/core/filter.c`).
//!
//! A helper is an `extern "C"` function of five u64 arguments returning u64 — the BPF calling
//! convention, so the interpreter and JIT'd code call the same functions. Its prototype says
//! what the arguments are; the interpreter uses `ConstMapPtr` to validate map arguments against
//! the program's `used_maps` until the verifier issue proves them statically.

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
}

/// A helper's prototype.
#[derive(Debug)]
pub struct HelperProto {
    /// The helper id (`BPF_FUNC_*`).
    pub id: i32,
    /// The helper's name without the `bpf_` prefix.
    pub name: &'static str,
    /// The function; `None` for helpers the load path rewrites into instructions (`tail_call`).
    pub func: Option<HelperFn>,
    /// Argument kinds, R1..R5.
    pub args: [ArgKind; 5],
    /// Return kind.
    pub ret: RetKind,
    /// A zero return stops the program with r0 = 0 (the conformance suite's test helper).
    pub unwind_on_zero: bool,
}

use ArgKind::{Anything, ConstMapPtr, None as No, PtrToCtx, PtrToMapKey, PtrToMapValue};

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
};

/// `bpf_map_update_elem`.
pub static MAP_UPDATE_ELEM: HelperProto = HelperProto {
    id: func::MAP_UPDATE_ELEM,
    name: "map_update_elem",
    func: Some(map_update_elem),
    args: [ConstMapPtr, PtrToMapKey, PtrToMapValue, Anything, No],
    ret: RetKind::Integer,
    unwind_on_zero: false,
};

/// `bpf_map_delete_elem`.
pub static MAP_DELETE_ELEM: HelperProto = HelperProto {
    id: func::MAP_DELETE_ELEM,
    name: "map_delete_elem",
    func: Some(map_delete_elem),
    args: [ConstMapPtr, PtrToMapKey, No, No, No],
    ret: RetKind::Integer,
    unwind_on_zero: false,
};

/// `bpf_ktime_get_ns`.
pub static KTIME_GET_NS: HelperProto = HelperProto {
    id: func::KTIME_GET_NS,
    name: "ktime_get_ns",
    func: Some(ktime_get_ns),
    args: [No; 5],
    ret: RetKind::Integer,
    unwind_on_zero: false,
};

/// `bpf_get_prandom_u32`.
pub static GET_PRANDOM_U32: HelperProto = HelperProto {
    id: func::GET_PRANDOM_U32,
    name: "get_prandom_u32",
    func: Some(get_prandom_u32),
    args: [No; 5],
    ret: RetKind::Integer,
    unwind_on_zero: false,
};

/// `bpf_get_smp_processor_id`.
pub static GET_SMP_PROCESSOR_ID: HelperProto = HelperProto {
    id: func::GET_SMP_PROCESSOR_ID,
    name: "get_smp_processor_id",
    func: Some(get_smp_processor_id),
    args: [No; 5],
    ret: RetKind::Integer,
    unwind_on_zero: false,
};

/// `bpf_tail_call`: rewritten into the tail-call instruction at load.
pub static TAIL_CALL: HelperProto = HelperProto {
    id: func::TAIL_CALL,
    name: "tail_call",
    func: None,
    args: [PtrToCtx, ConstMapPtr, Anything, No, No],
    ret: RetKind::Void,
    unwind_on_zero: false,
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
};

/// The helper `id` as program type `prog_type` sees it (`get_func_proto`), or `None` when the
/// type does not offer it.
pub fn func_proto(prog_type: ProgType, id: i32) -> Option<&'static HelperProto> {
    let base = match id {
        func::MAP_LOOKUP_ELEM => Some(&MAP_LOOKUP_ELEM),
        func::MAP_UPDATE_ELEM => Some(&MAP_UPDATE_ELEM),
        func::MAP_DELETE_ELEM => Some(&MAP_DELETE_ELEM),
        func::GET_PRANDOM_U32 => Some(&GET_PRANDOM_U32),
        func::GET_SMP_PROCESSOR_ID => Some(&GET_SMP_PROCESSOR_ID),
        func::TAIL_CALL => Some(&TAIL_CALL),
        _ => None,
    };
    match prog_type {
        ProgType::RawBuffer if id == func::CONFORMANCE_UNWIND => Some(&CONFORMANCE_UNWIND),
        ProgType::RawBuffer => base,
        ProgType::Unspec => None,
        _ if id == func::KTIME_GET_NS => Some(&KTIME_GET_NS),
        _ => base,
    }
}
