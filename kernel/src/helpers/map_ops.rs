//! The map-type-specific functions a map helper call becomes when the verifier saw one map at
//! the call on every path and a JIT is requested: the part of `do_misc_fixups`
//! (`kernel/bpf/verifier.c`) that rewrites `bpf_map_lookup_elem` and friends into a direct call
//! of the map's own operation (`BPF_CALL_IMM(ops->map_lookup_elem)`), as for a hash map, whose
//! `htab_map_gen_lookup` emits `call __htab_map_lookup_elem` plus the value offset, and an array
//! that may not be inlined (`BPF_F_INNER_MAP`). See [`crate::verifier::fixups`].
//!
//! They take the generic helper's arguments and return what it returns, without the generic
//! helper's dispatch on the map's type: each knows its type (and returns the generic answer for
//! any other, which the verifier's record rules out). Programs cannot call them: their ids are
//! negative, which no program type offers ([`super::func_proto`]); only the engines resolve them
//! ([`super::runtime_proto`]).

use super::{ArgKind, HelperProto, RetKind};
use crate::map::{Map, MapImpl};

/// Ids of the map operations (internal: never offered to programs).
pub mod id {
    /// The hash map's lookup (`htab_map_lookup_elem`).
    pub const HASH_LOOKUP: i32 = -0x201;
    /// The hash map's update (`htab_map_update_elem`).
    pub const HASH_UPDATE: i32 = -0x202;
    /// The hash map's delete (`htab_map_delete_elem`).
    pub const HASH_DELETE: i32 = -0x203;
    /// The array's lookup (`array_map_lookup_elem`).
    pub const ARRAY_LOOKUP: i32 = -0x211;
}

/// The map a program passed, as the helpers take it.
///
/// # Safety
/// `map` is the address of a live [`Map`] (the verifier proved it one of the program's maps,
/// which the program keeps alive).
#[inline(always)]
unsafe fn map<'a>(map: u64) -> &'a Map {
    // SAFETY: the caller's contract.
    unsafe { &*(map as *const Map) }
}

/// The generic lookup, out of line: what a map operation answers for a map of another type
/// (which the verifier's record rules out), kept out of the operation's own code.
///
/// # Safety
/// As for [`Map::lookup_elem_raw`].
#[cold]
#[inline(never)]
unsafe fn generic_lookup(m: u64, key: u64) -> u64 {
    // SAFETY: forwarded.
    unsafe { map(m).lookup_elem_raw(key as *const u8) as u64 }
}

unsafe extern "C" fn hash_lookup(m: u64, key: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: R1 is a live hash map of the program and R2 points to `key_size` bytes (the
    // verifier's proof for the call this one replaces), inside a read-side section.
    unsafe {
        match &map(m).imp {
            MapImpl::Hash(h) => h.lookup_raw(key as *const u8) as u64,
            _ => generic_lookup(m, key),
        }
    }
}

unsafe extern "C" fn hash_update(m: u64, key: u64, value: u64, flags: u64, _: u64) -> u64 {
    // SAFETY: as for `hash_lookup`; R3 points to `value_size` bytes.
    unsafe { map(m).update_elem_raw(key as *const u8, value as *const u8, flags) as u64 }
}

unsafe extern "C" fn hash_delete(m: u64, key: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: as for `hash_lookup`.
    unsafe { map(m).delete_elem_raw(key as *const u8) as u64 }
}

unsafe extern "C" fn array_lookup(m: u64, key: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: R1 is a live array of the program and R2 points to its 4-byte key (the
    // verifier's proof for the call this one replaces).
    unsafe {
        match &map(m).imp {
            MapImpl::Array(a) => a.lookup_raw(key as *const u8) as u64,
            _ => generic_lookup(m, key),
        }
    }
}

use ArgKind::{Anything, ConstMapPtr, None as No, PtrToMapKey, PtrToMapValue};

const fn op(
    id: i32,
    name: &'static str,
    func: super::HelperFn,
    args: [ArgKind; 5],
    ret: RetKind,
) -> HelperProto {
    HelperProto::internal(id, name, func, args, ret)
}

static HASH_LOOKUP: HelperProto = op(
    id::HASH_LOOKUP,
    "htab_map_lookup_elem",
    hash_lookup,
    [ConstMapPtr, PtrToMapKey, No, No, No],
    RetKind::PtrToMapValueOrNull,
);
static HASH_UPDATE: HelperProto = op(
    id::HASH_UPDATE,
    "htab_map_update_elem",
    hash_update,
    [ConstMapPtr, PtrToMapKey, PtrToMapValue, Anything, No],
    RetKind::Integer,
);
static HASH_DELETE: HelperProto = op(
    id::HASH_DELETE,
    "htab_map_delete_elem",
    hash_delete,
    [ConstMapPtr, PtrToMapKey, No, No, No],
    RetKind::Integer,
);
static ARRAY_LOOKUP: HelperProto = op(
    id::ARRAY_LOOKUP,
    "array_map_lookup_elem",
    array_lookup,
    [ConstMapPtr, PtrToMapKey, No, No, No],
    RetKind::PtrToMapValueOrNull,
);

/// The map operation with internal id `id`, for any program type.
pub(crate) fn proto_for(id: i32) -> Option<&'static HelperProto> {
    match id {
        id::HASH_LOOKUP => Some(&HASH_LOOKUP),
        id::HASH_UPDATE => Some(&HASH_UPDATE),
        id::HASH_DELETE => Some(&HASH_DELETE),
        id::ARRAY_LOOKUP => Some(&ARRAY_LOOKUP),
        _ => None,
    }
}
