//! The sk_lookup scenarios of `research/kernel-scenarios.md` §3 (SK-01 … SK-58), shared by
//! `sk_lookup.rs` (JIT) and `sk_lookup_interp.rs` (interpreter), so the two engines are held
//! to one set of expected results. Each test names the rows it covers.
//!
//! * `ctx_access.rs`: the context access table (SK-01 … SK-13), and what each allowed read
//!   returns;
//! * `assign.rs`: `bpf_sk_assign`'s checks and flags (SK-14 … SK-24);
//! * `multi.rs`: programs in series (SK-25 … SK-34);
//! * `redirect.rs`: redirect and reuseport end to end, TCP/UDP × v4/v6/v4→dual-stack v6
//!   (SK-35 … SK-45);
//! * `attach.rs`: links, query and test runs (SK-46 … SK-58);
//! * `reuseport_ctx.rs`: `struct sk_reuseport_md` read at run time on real reuseport groups.

#[path = "../support/sk_lookup.rs"]
mod support;

mod assign;
mod attach;
mod ctx_access;
mod multi;
mod redirect;
mod reuseport_ctx;

use super::ENGINE;

fn setup() {
    support::setup(ENGINE);
}

fn prog(src: &str, maps: &[kbpf::syscall::Fd]) -> kbpf::syscall::Fd {
    support::load(ENGINE, src, maps)
}
