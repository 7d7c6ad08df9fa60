//! The return-value template of the generator (`check_return_code`): every program type the
//! host can judge as kbpf does (and each expected attach type that changes the range) ends
//! with R0 set in each way below, in both privilege modes (the tracing types under root's
//! rules only: the default mode has no `CAP_PERFMON`, so the host refuses them at load).
//!
//! - constants spanning each range's edges: -1, 0 .. 4, 255, `i32::MAX`, `i32::MIN`, and
//!   `u32::MAX` from a 32-bit move;
//! - a helper's result (`bpf_ktime_get_ns`, `bpf_get_prandom_u32`: an integer the verifier
//!   knows nothing of), the latter masked with 1, 3 and 7;
//! - the context pointer and the frame pointer;
//! - R0 never written;
//! - a constant returned by a subprogram, as is and masked with 1;
//! - 1 on one side of a branch and a constant on the other, joined before the exit (pruning
//!   must keep the second path).

use super::{Gen, both, make};
use kbpf::uapi::{AttachType, ProgType};

/// The constants the template returns.
const CONSTS: [i64; 10] = [-1, 0, 1, 2, 3, 4, 255, 0x7fff_ffff, -0x8000_0000, 5];

/// Every program type (with its expected attach types) the template covers, and whether the
/// default mode may load it on the host.
const TYPES: [(ProgType, Option<AttachType>, bool); 13] = [
    (ProgType::SocketFilter, None, true),
    (ProgType::Kprobe, None, false),
    (ProgType::SchedCls, None, true),
    (ProgType::SchedAct, None, true),
    (ProgType::Tracepoint, None, false),
    (ProgType::Xdp, None, true),
    (ProgType::CgroupSkb, None, true),
    (
        ProgType::CgroupSkb,
        Some(AttachType::CgroupInetIngress),
        true,
    ),
    (
        ProgType::CgroupSkb,
        Some(AttachType::CgroupInetEgress),
        true,
    ),
    (ProgType::SkReuseport, None, true),
    (
        ProgType::SkReuseport,
        Some(AttachType::SkReuseportSelectOrMigrate),
        true,
    ),
    (ProgType::SkLookup, Some(AttachType::SkLookup), true),
    (ProgType::Netfilter, Some(AttachType::Netfilter), true),
];

/// The endings: a name and the program.
fn endings() -> Vec<(String, String)> {
    let mut e = Vec::new();
    for k in CONSTS {
        e.push((format!("const {k}"), format!("mov %r0, {k}\nexit")));
        e.push((
            format!("branch 1 or {k}"),
            format!("call 7\nmov %r6, 1\njeq %r0, 0, +1\nmov %r6, {k}\nmov %r0, %r6\nexit"),
        ));
    }
    e.push(("mov32 -1".into(), "mov32 %r0, -1\nexit".into()));
    e.push(("ktime_get_ns".into(), "call 5\nexit".into()));
    e.push(("get_prandom_u32".into(), "call 7\nexit".into()));
    for m in [1, 3, 7] {
        e.push((
            format!("unknown & {m}"),
            format!("call 7\nand %r0, {m}\nexit"),
        ));
    }
    e.push(("ctx pointer".into(), "mov %r0, %r1\nexit".into()));
    e.push(("frame pointer".into(), "mov %r0, %r10\nexit".into()));
    e.push(("unwritten".into(), "exit".into()));
    for k in [1, 2] {
        let sub = format!("mov %r0, {k}\nexit");
        e.push((
            format!("subprogram {k}"),
            format!("call local +1\nexit\n{sub}"),
        ));
        e.push((
            format!("subprogram {k} & 1"),
            format!("call local +2\nand %r0, 1\nexit\n{sub}"),
        ));
    }
    e
}

/// Every program of the template.
pub fn retcode(out: &mut Vec<Gen>) {
    let endings = endings();
    for (t, attach, default_ok) in TYPES {
        for (name, asm) in &endings {
            let desc = format!("{t:?} {attach:?} {name}");
            let g = Gen {
                attach,
                ..make("retcode", desc, t, asm.clone())
            };
            if default_ok {
                both(out, g);
            } else {
                out.push(Gen {
                    privileged: true,
                    ..g
                });
            }
        }
    }
}
