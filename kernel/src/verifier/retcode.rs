//! The range of the main program's return value, per program type and expected attach type
//! (`check_return_code` and its table `return_retval_range` of `kernel/bpf/verifier.c`, Linux
//! 6.18), for the types kbpf has.
//!
//! Only the main program's `exit` is checked (a subprogram returns any scalar to its caller).
//! The order is the kernel's: R0 must be written (`R0 !read_ok`, `EACCES`); a pointer leaks
//! in the default mode (`R0 leaks addr as return value`, `EACCES`, every type); then, for a
//! type with a range, a pointer under root's rules is not a known value (`EINVAL`), and a
//! scalar's signed 64-bit bounds must lie within the range (`EINVAL`). The check marks R0
//! precise (`mark_chain_precision`), so pruning keeps paths whose return values differ.
//!
//! For a cgroup skb program loaded for egress, the kernel also notes a return value that can
//! be 2 or 3 (`enforce_expected_attach_type`) so that the program then attaches to egress
//! alone; kbpf has no cgroup attachment, so nothing reads the note.

use super::VerifierEnv;
use super::explore::Explorer;
use super::log::Reject;
use super::state::{Reg, RegType};
use crate::Errno;
use crate::uapi::{AttachType, ProgType};
use alloc::string::String;

/// `SK_DROP`, `SK_PASS` (sk_lookup verdicts).
const SK_DROP: i64 = 0;
const SK_PASS: i64 = 1;
/// `NF_DROP`, `NF_ACCEPT` (netfilter verdicts).
const NF_DROP: i64 = 0;
const NF_ACCEPT: i64 = 1;

/// The inclusive range the main program's R0 must be in at `exit`, or `None` when the type
/// does not restrict it (`return_retval_range`).
///
/// | program type | expected attach type | range |
/// |---|---|---|
/// | cgroup_skb | `BPF_CGROUP_INET_EGRESS` | [0, 3] (drop/pass, bit 1: congestion notification) |
/// | cgroup_skb | any other | [0, 1] |
/// | sk_lookup | — | [`SK_DROP`, `SK_PASS`] |
/// | netfilter | — | [`NF_DROP`, `NF_ACCEPT`] |
///
/// Every other type of kbpf's is unrestricted: socket filters, TC, XDP, tracepoints,
/// syscall, sk_reuseport (its verdict is read at run time), kprobes (the kernel restricts
/// only the session attach types, which kbpf does not have) and kbpf's raw buffer.
pub fn return_range(prog_type: ProgType, attach: Option<AttachType>) -> Option<(i64, i64)> {
    match (prog_type, attach) {
        (ProgType::CgroupSkb, Some(AttachType::CgroupInetEgress)) => Some((0, 3)),
        (ProgType::CgroupSkb, _) => Some((0, 1)),
        (ProgType::SkLookup, _) => Some((SK_DROP, SK_PASS)),
        (ProgType::Netfilter, _) => Some((NF_DROP, NF_ACCEPT)),
        _ => None,
    }
}

/// [`return_range`] of the program `env` describes.
pub(super) fn env_range(env: &VerifierEnv<'_>) -> Option<(i64, i64)> {
    return_range(env.prog_type, env.expected_attach_type)
}

impl Explorer<'_> {
    /// The main program's R0 at `exit` against [`return_range`]; the default mode's pointer
    /// leak has been refused before.
    pub(super) fn check_return_range(&self, pc: usize, r0: &Reg) -> Result<(), Reject> {
        let Some((lo, hi)) = env_range(self.env) else {
            return Ok(());
        };
        if r0.ty != RegType::Scalar {
            return Err(Reject::new(
                Errno::EINVAL,
                pc,
                format_args!(
                    "At program exit the register R0 is not a known value ({})",
                    r0.ty.name()
                ),
            ));
        }
        if r0.var.smin >= lo && r0.var.smax <= hi {
            return Ok(());
        }
        let mut what = String::new();
        if r0.var.smin > i64::MIN {
            what.push_str(&alloc::format!(" smin={}", r0.var.smin));
        }
        if r0.var.smax < i64::MAX {
            what.push_str(&alloc::format!(" smax={}", r0.var.smax));
        }
        if what.is_empty() {
            what.push_str(" unknown scalar value");
        }
        Err(Reject::new(
            Errno::EINVAL,
            pc,
            format_args!(
                "At program exit the register R0 has{what} should have been in [{lo}, {hi}]"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_skb_range_follows_the_attach_type() {
        assert_eq!(return_range(ProgType::CgroupSkb, None), Some((0, 1)));
        let ingress = Some(AttachType::CgroupInetIngress);
        assert_eq!(return_range(ProgType::CgroupSkb, ingress), Some((0, 1)));
        let egress = Some(AttachType::CgroupInetEgress);
        assert_eq!(return_range(ProgType::CgroupSkb, egress), Some((0, 3)));
    }

    #[test]
    fn socket_and_netfilter_verdicts() {
        let sk = Some(AttachType::SkLookup);
        assert_eq!(return_range(ProgType::SkLookup, sk), Some((0, 1)));
        let nf = Some(AttachType::Netfilter);
        assert_eq!(return_range(ProgType::Netfilter, nf), Some((0, 1)));
    }

    #[test]
    fn other_types_are_unrestricted() {
        for t in [
            ProgType::SocketFilter,
            ProgType::Kprobe,
            ProgType::SchedCls,
            ProgType::SchedAct,
            ProgType::Tracepoint,
            ProgType::Xdp,
            ProgType::SkReuseport,
            ProgType::Syscall,
            ProgType::RawBuffer,
        ] {
            assert_eq!(return_range(t, None), None, "{t:?}");
            let egress = Some(AttachType::CgroupInetEgress);
            assert_eq!(return_range(t, egress), None, "{t:?}");
        }
    }
}
