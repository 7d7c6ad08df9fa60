//! libbpf's program section names → program type, expected attach type and load flags (the
//! `section_defs` table of `tools/lib/bpf/libbpf.c`), for the types kbpf has; plus kbpf's own
//! `raw_buffer` type (the conformance programs' byte-buffer context).

use kbpf::uapi::{AttachType, ProgFlags, ProgType};

/// What a program section's name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecDef {
    /// The program type.
    pub prog_type: ProgType,
    /// The expected attach type libbpf loads it with.
    pub attach: Option<AttachType>,
    /// Load flags the name implies (`xdp.frags`).
    pub flags: ProgFlags,
}

/// How a table entry matches: the whole name, or a prefix followed by anything (`kprobe/...`).
enum Match {
    Exact(&'static str),
    Prefix(&'static str),
}

const fn def(m: Match, prog_type: ProgType, attach: Option<AttachType>) -> (Match, SecDef) {
    (
        m,
        SecDef {
            prog_type,
            attach,
            flags: ProgFlags::empty(),
        },
    )
}

use Match::{Exact, Prefix};

static TABLE: [(Match, SecDef); 26] = [
    def(Exact("socket"), ProgType::SocketFilter, None),
    def(Prefix("socket/"), ProgType::SocketFilter, None),
    def(Exact("tc"), ProgType::SchedCls, None),
    def(
        Prefix("tc/ingress"),
        ProgType::SchedCls,
        Some(AttachType::TcxIngress),
    ),
    def(
        Prefix("tc/egress"),
        ProgType::SchedCls,
        Some(AttachType::TcxEgress),
    ),
    def(
        Exact("tcx/ingress"),
        ProgType::SchedCls,
        Some(AttachType::TcxIngress),
    ),
    def(
        Exact("tcx/egress"),
        ProgType::SchedCls,
        Some(AttachType::TcxEgress),
    ),
    def(Exact("classifier"), ProgType::SchedCls, None),
    def(Prefix("classifier/"), ProgType::SchedCls, None),
    def(Exact("action"), ProgType::SchedAct, None),
    def(Prefix("action/"), ProgType::SchedAct, None),
    def(Exact("xdp"), ProgType::Xdp, Some(AttachType::Xdp)),
    (
        Exact("xdp.frags"),
        SecDef {
            prog_type: ProgType::Xdp,
            attach: Some(AttachType::Xdp),
            flags: ProgFlags::XDP_HAS_FRAGS,
        },
    ),
    def(
        Exact("sk_lookup"),
        ProgType::SkLookup,
        Some(AttachType::SkLookup),
    ),
    def(
        Exact("sk_reuseport/migrate"),
        ProgType::SkReuseport,
        Some(AttachType::SkReuseportSelectOrMigrate),
    ),
    def(
        Exact("sk_reuseport"),
        ProgType::SkReuseport,
        Some(AttachType::SkReuseportSelect),
    ),
    def(
        Exact("cgroup_skb/ingress"),
        ProgType::CgroupSkb,
        Some(AttachType::CgroupInetIngress),
    ),
    def(
        Exact("cgroup_skb/egress"),
        ProgType::CgroupSkb,
        Some(AttachType::CgroupInetEgress),
    ),
    def(Exact("cgroup/skb"), ProgType::CgroupSkb, None),
    def(Prefix("kprobe/"), ProgType::Kprobe, None),
    def(Prefix("kretprobe/"), ProgType::Kprobe, None),
    def(Prefix("tracepoint/"), ProgType::Tracepoint, None),
    def(Prefix("tp/"), ProgType::Tracepoint, None),
    def(Exact("syscall"), ProgType::Syscall, None),
    def(
        Exact("netfilter"),
        ProgType::Netfilter,
        Some(AttachType::Netfilter),
    ),
    def(Exact("raw_buffer"), ProgType::RawBuffer, None),
];

/// The program type a section named `name` holds, or `None` when the name is none of libbpf's
/// conventional names for a type kbpf has.
pub fn sec_def(name: &str) -> Option<SecDef> {
    TABLE.iter().find_map(|(m, d)| {
        let hit = match m {
            Exact(e) => name == *e,
            Prefix(p) => name.starts_with(p),
        };
        hit.then_some(*d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libbpf_names() {
        let t = |n| sec_def(n).map(|d| (d.prog_type, d.attach));
        assert_eq!(t("socket"), Some((ProgType::SocketFilter, None)));
        assert_eq!(t("tc"), Some((ProgType::SchedCls, None)));
        assert_eq!(
            t("tcx/egress"),
            Some((ProgType::SchedCls, Some(AttachType::TcxEgress)))
        );
        assert_eq!(
            t("tc/ingress"),
            Some((ProgType::SchedCls, Some(AttachType::TcxIngress)))
        );
        assert_eq!(t("xdp"), Some((ProgType::Xdp, Some(AttachType::Xdp))));
        assert_eq!(
            t("sk_lookup"),
            Some((ProgType::SkLookup, Some(AttachType::SkLookup)))
        );
        assert_eq!(
            t("sk_reuseport"),
            Some((ProgType::SkReuseport, Some(AttachType::SkReuseportSelect)))
        );
        assert_eq!(t("kprobe/do_sys_open"), Some((ProgType::Kprobe, None)));
        assert_eq!(t("tcx/sideways"), None);
        assert_eq!(
            t("cgroup_skb/ingress"),
            Some((ProgType::CgroupSkb, Some(AttachType::CgroupInetIngress)))
        );
        assert_eq!(
            t("cgroup_skb/egress"),
            Some((ProgType::CgroupSkb, Some(AttachType::CgroupInetEgress)))
        );
        assert_eq!(t("cgroup/skb"), Some((ProgType::CgroupSkb, None)));
        assert_eq!(
            t("netfilter"),
            Some((ProgType::Netfilter, Some(AttachType::Netfilter)))
        );
        assert_eq!(t("xdpfoo"), None);
        assert!(sec_def("xdp.frags").unwrap().flags == ProgFlags::XDP_HAS_FRAGS);
    }
}
