//! Time helpers beyond `bpf_ktime_get_ns`: `bpf_jiffies64` (`kernel/bpf/helpers.c`), the clock
//! conntrack timeouts run on ([`crate::netfilter::jiffies`], `HZ` =
//! [`crate::netfilter::HZ`]).

use super::{HelperProto, RetKind};
use crate::uapi::func;

unsafe extern "C" fn jiffies64(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    crate::netfilter::jiffies()
}

/// `bpf_jiffies64`: the 64-bit jiffies counter.
pub static JIFFIES64: HelperProto = HelperProto {
    func: Some(jiffies64),
    ..HelperProto::verifier_only(
        func::JIFFIES64,
        "jiffies64",
        [super::ArgKind::None; 5],
        RetKind::Integer,
    )
};
