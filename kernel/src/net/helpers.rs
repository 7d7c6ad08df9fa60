//! The socket helpers' prototypes and run-time sides (`net/core/filter.c`):
//! `bpf_sk_assign` in its sk_lookup form ([`super::sk_lookup::assign`]), `bpf_sk_release`,
//! `bpf_sk_select_reuseport` ([`super::reuseport_prog`]); and, known to the verifier only
//! (calling them loads with `ENOTSUPP`), TC's `bpf_sk_assign` and the XDP/TC socket lookups
//! `bpf_sk_lookup_tcp`/`_udp`.

use super::reuseport_prog::sk_select_reuseport;
use super::sk_lookup::assign::{sk_lookup_assign, sk_release};
use crate::helpers::ArgKind::{
    Anything, ConstMapPtr, ConstSize, None as No, PtrToCtx, PtrToMapKey, PtrToMem, PtrToSockCommon,
    PtrToSocketOrNull,
};
use crate::helpers::{ArgKind, HelperProto, RetKind};
use crate::uapi::func;

const SK_LOOKUP_ARGS: [ArgKind; 5] = [PtrToCtx, PtrToMem, ConstSize, Anything, Anything];

/// `bpf_sk_lookup_tcp(ctx, tuple, tuple_size, netns, flags)`: acquires a socket or NULL.
pub static SK_LOOKUP_TCP: HelperProto = HelperProto {
    acquire: true,
    ..HelperProto::verifier_only(
        func::SK_LOOKUP_TCP,
        "sk_lookup_tcp",
        SK_LOOKUP_ARGS,
        RetKind::PtrToSocketOrNull,
    )
};

/// `bpf_sk_lookup_udp(ctx, tuple, tuple_size, netns, flags)`: acquires a socket or NULL.
pub static SK_LOOKUP_UDP: HelperProto = HelperProto {
    acquire: true,
    ..HelperProto::verifier_only(
        func::SK_LOOKUP_UDP,
        "sk_lookup_udp",
        SK_LOOKUP_ARGS,
        RetKind::PtrToSocketOrNull,
    )
};

/// `bpf_sk_release(sock)`: releases a socket reference (a no-op for RCU-freed sockets, whose
/// lookups took none).
pub static SK_RELEASE: HelperProto = HelperProto {
    func: Some(sk_release),
    ..HelperProto::verifier_only(
        func::SK_RELEASE,
        "sk_release",
        [PtrToSockCommon { release: true }, No, No, No, No],
        RetKind::Integer,
    )
};

/// `bpf_sk_assign(skb, sk, flags)`, TC's form (`bpf_sk_assign_proto`): verifier only.
pub static SK_ASSIGN: HelperProto = HelperProto::verifier_only(
    func::SK_ASSIGN,
    "sk_assign",
    [
        PtrToCtx,
        PtrToSockCommon { release: false },
        Anything,
        No,
        No,
    ],
    RetKind::Integer,
);

/// `bpf_sk_assign(ctx, sk, flags)`, sk_lookup's form (`bpf_sk_lookup_assign_proto`): the socket
/// may be NULL (to clear a selection).
pub static SK_LOOKUP_ASSIGN: HelperProto = HelperProto {
    func: Some(sk_lookup_assign),
    ..HelperProto::verifier_only(
        func::SK_ASSIGN,
        "sk_assign",
        [PtrToCtx, PtrToSocketOrNull, Anything, No, No],
        RetKind::Integer,
    )
};

/// `bpf_sk_select_reuseport(ctx, map, key, flags)` (`sk_select_reuseport_proto`).
pub static SK_SELECT_REUSEPORT: HelperProto = HelperProto {
    func: Some(sk_select_reuseport),
    ..HelperProto::verifier_only(
        func::SK_SELECT_REUSEPORT,
        "sk_select_reuseport",
        [PtrToCtx, ConstMapPtr, PtrToMapKey, Anything, No],
        RetKind::Integer,
    )
};
