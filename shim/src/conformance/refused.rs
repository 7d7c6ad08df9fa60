//! The bpf_conformance cases Linux's verifier refuses, by name, each with the rule that refuses
//! it: the only cases `kbpf conformance` runs on the trusted path (`prog_load_trusted`, like the
//! kernel's `lib/test_bpf.c`), and exactly the cases Linux 6.18 refuses when Linux's own plugin
//! loads the suite as XDP programs (`bpf_conformance_runner --xdp_prolog true`). Any other
//! rejection is a verifier regression and fails the run.

/// One case the verifier must refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The `.data` file name.
    pub file: &'static str,
    /// What the verifier's log says (a fragment of its first line).
    pub rule: &'static str,
    /// Why Linux refuses it, and where.
    pub reason: &'static str,
}

const SHIFT32: &str = "a 32-bit shift by an immediate outside 0..31: Linux's check_alu_op \
                       refuses it (EINVAL, \"invalid shift\")";
const SHIFT64: &str = "a 64-bit shift by an immediate outside 0..63: Linux's check_alu_op \
                       refuses it (EINVAL, \"invalid shift\")";

const fn shift(file: &'static str, reason: &'static str) -> Refusal {
    Refusal {
        file,
        rule: "invalid shift",
        reason,
    }
}

/// The thirteen cases: twelve shifts by an out-of-range immediate, and `callx`.
pub const REFUSED: [Refusal; 13] = [
    shift("arsh32-imm-high.data", SHIFT32),
    shift("arsh32-imm-neg.data", SHIFT32),
    shift("arsh64-imm-high.data", SHIFT64),
    shift("arsh64-imm-neg.data", SHIFT64),
    Refusal {
        file: "callx.data",
        rule: "unknown opcode 8d",
        reason: "a call through a register (callx, BPF_JMP|BPF_CALL|BPF_X) is not an \
                 instruction Linux's verifier knows: do_check refuses opcode 0x8d (EINVAL)",
    },
    shift("lsh32-imm-high.data", SHIFT32),
    shift("lsh32-imm-neg.data", SHIFT32),
    shift("lsh64-imm-high.data", SHIFT64),
    shift("lsh64-imm-neg.data", SHIFT64),
    shift("rsh32-imm-high.data", SHIFT32),
    shift("rsh32-imm-neg.data", SHIFT32),
    shift("rsh64-imm-high.data", SHIFT64),
    shift("rsh64-imm-neg.data", SHIFT64),
];

impl Refusal {
    /// Whether a rejection (errno, log) is this rule's.
    pub fn matches(&self, errno: kbpf::Errno, log: &str) -> bool {
        errno == kbpf::Errno::EINVAL && log.lines().next().unwrap_or("").contains(self.rule)
    }
}

/// The listed case named `file`, if any.
pub fn by_name(file: &str) -> Option<&'static Refusal> {
    REFUSED.iter().find(|r| r.file == file)
}

/// The listed rule a rejection is, if any (for the plugin, which gets no file name).
pub fn by_rule(errno: kbpf::Errno, log: &str) -> Option<&'static Refusal> {
    REFUSED.iter().find(|r| r.matches(errno, log))
}
