//! The socket helpers' prototypes (`net/core/filter.c`) and where their run-time sides are:
//! `bpf_sk_assign` in its sk_lookup form ([`super::sk_lookup::assign`]) and in TC's, the
//! lookups TC, cgroup skb and XDP programs call (`bpf_sk_lookup_tcp`/`_udp`,
//! `bpf_skc_lookup_tcp`: [`super::bpf_sk`]), `bpf_sk_release`, `bpf_sk_select_reuseport`
//! ([`super::reuseport_prog`]).

use super::bpf_sk::{
    skb_lookup_tcp, skb_lookup_udp, skb_sk_assign, xdp_lookup_tcp, xdp_lookup_udp,
};
use super::reuseport_prog::sk_select_reuseport;
use super::sk_lookup::assign::{sk_lookup_assign, sk_release};
use crate::helpers::ArgKind::{
    Anything, ConstMapPtr, ConstSizeOrZero, None as No, PtrToCtx, PtrToMapKey, PtrToMem,
    PtrToSockCommon, PtrToSocketOrNull,
};
use crate::helpers::{ArgKind, HelperFn, HelperProto, RetKind};
use crate::uapi::func;

const SK_LOOKUP_ARGS: [ArgKind; 5] = [PtrToCtx, PtrToMem, ConstSizeOrZero, Anything, Anything];

/// A lookup helper's prototype: `(ctx, tuple, tuple_size, netns, flags)`, acquiring what it
/// returns.
const fn lookup(id: i32, name: &'static str, f: HelperFn, ret: RetKind) -> HelperProto {
    HelperProto {
        func: Some(f),
        acquire: true,
        ..HelperProto::verifier_only(id, name, SK_LOOKUP_ARGS, ret)
    }
}

/// `bpf_sk_lookup_tcp(skb, tuple, tuple_size, netns, flags)` (TC, cgroup skb): a socket or NULL.
pub static SK_LOOKUP_TCP: HelperProto = lookup(
    func::SK_LOOKUP_TCP,
    "sk_lookup_tcp",
    skb_lookup_tcp,
    RetKind::PtrToSocketOrNull,
);

/// `bpf_sk_lookup_udp(skb, ...)` (TC, cgroup skb).
pub static SK_LOOKUP_UDP: HelperProto = lookup(
    func::SK_LOOKUP_UDP,
    "sk_lookup_udp",
    skb_lookup_udp,
    RetKind::PtrToSocketOrNull,
);

/// `bpf_skc_lookup_tcp(skb, ...)` (TC, cgroup skb): a socket's common part or NULL.
pub static SKC_LOOKUP_TCP: HelperProto = lookup(
    func::SKC_LOOKUP_TCP,
    "skc_lookup_tcp",
    skb_lookup_tcp,
    RetKind::PtrToSockCommonOrNull,
);

/// `bpf_xdp_sk_lookup_tcp(xdp, tuple, tuple_size, netns, flags)` (`netns` a `u32`).
pub static XDP_SK_LOOKUP_TCP: HelperProto = lookup(
    func::SK_LOOKUP_TCP,
    "sk_lookup_tcp",
    xdp_lookup_tcp,
    RetKind::PtrToSocketOrNull,
);

/// `bpf_xdp_sk_lookup_udp(xdp, ...)`.
pub static XDP_SK_LOOKUP_UDP: HelperProto = lookup(
    func::SK_LOOKUP_UDP,
    "sk_lookup_udp",
    xdp_lookup_udp,
    RetKind::PtrToSocketOrNull,
);

/// `bpf_xdp_skc_lookup_tcp(xdp, ...)`.
pub static XDP_SKC_LOOKUP_TCP: HelperProto = lookup(
    func::SKC_LOOKUP_TCP,
    "skc_lookup_tcp",
    xdp_lookup_tcp,
    RetKind::PtrToSockCommonOrNull,
);

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

/// `bpf_sk_assign(skb, sk, flags)`, TC's form (`bpf_sk_assign_proto`).
pub static SK_ASSIGN: HelperProto = HelperProto {
    func: Some(skb_sk_assign),
    ..HelperProto::verifier_only(
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
    )
};

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
