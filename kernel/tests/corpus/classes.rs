//! The verifier classes where kbpf followed Linux 6.18 after checks against the host kernel
//! (issue 11, section 2): legacy packet loads, array lookups with a constant key, stack
//! alignment, partial fills of spilled pointers, linked scalars. Each case runs in the privilege
//! modes it names (most in both: the default one, `CAP_BPF` without `CAP_PERFMON`, and root's);
//! a negative case has the kernel's errno and a log fragment. The exploration bound, whose
//! programs are 8,000 instructions long, is built in `verifier_classes.rs`.
//!
//! Maps: handle 0 is an array of 4 16-byte values, 1 a per-CPU array like it, 2 a hash like
//! it, 3 a prog array.

#![allow(dead_code)]

use kbpf::Errno;
use kbpf::map::MapAttr;
use kbpf::uapi::{MapType, ProgType};

/// The maps the cases use, by handle.
pub fn maps(h: u32) -> Option<MapAttr> {
    Some(match h {
        0 => MapAttr::new(MapType::Array, 4, 16, 4),
        1 => MapAttr::new(MapType::PercpuArray, 4, 16, 4),
        2 => MapAttr::new(MapType::Hash, 4, 16, 4),
        3 => MapAttr::new(MapType::ProgArray, 4, 4, 4),
        _ => return None,
    })
}

/// The privilege modes a case runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modes {
    /// Both.
    Both,
    /// `CAP_BPF` without `CAP_PERFMON` only.
    Default,
    /// Root's rules only.
    Priv,
}

impl Modes {
    /// The `privileged` values to run.
    pub fn each(self) -> &'static [bool] {
        match self {
            Modes::Both => &[false, true],
            Modes::Default => &[false],
            Modes::Priv => &[true],
        }
    }
}

/// A negative case: name, program type, modes, program, errno, log fragment.
pub type Negative = (
    &'static str,
    ProgType,
    Modes,
    &'static str,
    Errno,
    &'static str,
);

/// A positive case: name, program type, modes, program.
pub type Positive = (&'static str, ProgType, Modes, &'static str);

use Modes::{Both, Default, Priv};
use ProgType::{CgroupSkb, SchedCls, SocketFilter as Skb, Xdp};

/// `r7` = a NULL-checked value of the array, `r6` = an unknown u32 from the context (`r9`).
macro_rules! value_and_u32 {
    ($rest:expr) => {
        concat!(
            "mov %r9, %r1\nstw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, map_fd 0\n",
            "call 1\njne %r0, 0, +2\nmov %r0, 0\nexit\nmov %r7, %r0\nldxw %r6, [%r9+0]\n",
            $rest
        )
    };
}

/// Lookup in map `m` with the key at `fp-8`, then a load from the value without a NULL check.
macro_rules! lookup8_deref {
    ($m:literal) => {
        concat!(
            "mov %r2, %r10\nadd %r2, -8\nlddw %r1, map_fd ",
            $m,
            "\ncall 1\nldxw %r0, [%r0+0]\nmov %r0, 0\nexit"
        )
    };
}

/// Negative cases.
pub const NEGATIVE: &[Negative] = &[
    // --- legacy packet loads
    (
        "ld_abs in xdp",
        Xdp,
        Both,
        "mov %r6, %r1\nldabsb 12\nexit",
        Errno::EINVAL,
        "1: BPF_LD_[ABS|IND] instructions not allowed for this program type",
    ),
    (
        "ld_abs in cgroup skb",
        CgroupSkb,
        Both,
        "mov %r6, %r1\nldabsb 12\nmov %r0, 1\nexit",
        Errno::EINVAL,
        "BPF_LD_[ABS|IND] instructions not allowed for this program type",
    ),
    (
        "ld_abs with r6 a scalar",
        Skb,
        Both,
        "mov %r6, 0\nldabsb 12\nexit",
        Errno::EINVAL,
        "at the time of BPF_LD_ABS|IND R6 != pointer to skb",
    ),
    (
        "ld_abs with r6 unwritten",
        Skb,
        Both,
        "ldabsh 12\nexit",
        Errno::EACCES,
        "0: R6 !read_ok",
    ),
    (
        "ld_abs with r6 a moved context",
        SchedCls,
        Both,
        "mov %r6, %r1\nadd %r6, 8\nldabsw 12\nexit",
        Errno::EACCES,
        "dereference of modified ctx ptr R6 off=8 disallowed",
    ),
    (
        "ld_ind with an unwritten index",
        Skb,
        Both,
        "mov %r6, %r1\nldindb %r3, 12\nexit",
        Errno::EACCES,
        "R3 !read_ok",
    ),
    (
        "r1 is dead after ld_abs",
        Skb,
        Both,
        "mov %r6, %r1\nldabsb 12\nmov %r0, %r1\nexit",
        Errno::EACCES,
        "2: R1 !read_ok",
    ),
    (
        "r5 is dead after ld_ind",
        SchedCls,
        Both,
        "mov %r6, %r1\nmov %r5, 1\nldindh %r5, 0\nmov %r0, %r5\nexit",
        Errno::EACCES,
        "R5 !read_ok",
    ),
    (
        "ld_abs in a subprogram",
        Skb,
        Both,
        "mov %r6, %r1\ncall local +1\nexit\nmov %r6, %r1\nldabsb 12\nexit",
        Errno::EINVAL,
        "LD_ABS is not allowed in subprogs without BTF",
    ),
    (
        "ld_abs with a socket reference held",
        SchedCls,
        Both,
        "mov %r6, %r1\nstdw [%r10-40], 0\nstdw [%r10-32], 0\nstdw [%r10-24], 0\n\
         stdw [%r10-16], 0\nstdw [%r10-8], 0\nmov %r2, %r10\nadd %r2, -40\nmov %r3, 36\n\
         mov %r4, -1\nmov %r5, 0\ncall 84\nmov %r7, %r0\nldabsb 12\njeq %r7, 0, +2\n\
         mov %r1, %r7\ncall 86\nmov %r0, 0\nexit",
        Errno::EINVAL,
        "Unreleased reference id=2 alloc_insn=11\nBPF_LD_[ABS|IND] would lead to reference leak",
    ),
    // --- array lookups with a constant key: only an array, only a key known in range
    (
        "array key written as data at fp-4",
        Skb,
        Both,
        concat!(
            "stw [%r10-4], 1\n",
            "mov %r2, %r10\nadd %r2, -4\nlddw %r1, map_fd 0\ncall 1\nldxw %r0, [%r0+0]\nmov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "R0 invalid mem access 'map_value_or_null'",
    ),
    (
        "array key out of range",
        Skb,
        Both,
        concat!("stw [%r10-8], 4\n", lookup8_deref!("0")),
        Errno::EACCES,
        "R0 invalid mem access 'map_value_or_null'",
    ),
    (
        "array key spilled wider than the key",
        Skb,
        Both,
        concat!("mov %r1, 1\nstxdw [%r10-8], %r1\n", lookup8_deref!("0")),
        Errno::EACCES,
        "R0 invalid mem access 'map_value_or_null'",
    ),
    (
        "array key unknown",
        Xdp,
        Both,
        concat!("call 7\nstxw [%r10-8], %r0\n", lookup8_deref!("0")),
        Errno::EACCES,
        "R0 invalid mem access 'map_value_or_null'",
    ),
    (
        "hash key constant",
        Skb,
        Both,
        concat!("stw [%r10-8], 1\n", lookup8_deref!("2")),
        Errno::EACCES,
        "R0 invalid mem access 'map_value_or_null'",
    ),
    // --- stack alignment, in both modes
    (
        "misaligned 4-byte stack store",
        Skb,
        Both,
        "stw [%r10-6], 1\nmov %r0, 0\nexit",
        Errno::EACCES,
        "misaligned stack access off 0+0+-6 size 4",
    ),
    (
        "misaligned 2-byte stack load",
        Skb,
        Both,
        "stdw [%r10-8], 1\nldxh %r0, [%r10-3]\nexit",
        Errno::EACCES,
        "misaligned stack access off 0+0+-3 size 2",
    ),
    (
        "misaligned through a moved stack pointer",
        Skb,
        Priv,
        "mov %r2, %r10\nadd %r2, -3\nstw [%r2+1], 0\nmov %r0, 0\nexit",
        Errno::EACCES,
        "misaligned stack access off 0+-3+1 size 4",
    ),
    (
        "misaligned atomic on the stack",
        Skb,
        Both,
        "stdw [%r10-8], 0\nmov %r1, 1\nlock add32 [%r10-6], %r1\nmov %r0, 0\nexit",
        Errno::EACCES,
        "misaligned stack access off 0+0+-6 size 4",
    ),
    (
        "misaligned atomic on a map value",
        Skb,
        Both,
        concat!(
            "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, map_fd 0\ncall 1\n",
            "jeq %r0, 0, +2\nmov %r1, 1\nlock add32 [%r0+2], %r1\nmov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "misaligned value access off 0+0+2 size 4",
    ),
    // --- partial fills of a spilled pointer, refused under root's rules too
    (
        "4-byte fill of a spilled context pointer",
        Skb,
        Both,
        "stxdw [%r10-8], %r1\nldxw %r0, [%r10-8]\nmov %r0, 0\nexit",
        Errno::EACCES,
        "1: invalid size of register fill",
    ),
    (
        "1-byte fill of a spilled stack pointer, upper half",
        Skb,
        Both,
        "mov %r2, %r10\nstxdw [%r10-8], %r2\nldxb %r0, [%r10-4]\nmov %r0, 0\nexit",
        Errno::EACCES,
        "invalid size of register fill",
    ),
    (
        "atomic on a spilled pointer",
        Skb,
        Default,
        "stxdw [%r10-8], %r1\nmov %r1, 1\nlock add [%r10-8], %r1\nmov %r0, 0\nexit",
        Errno::EACCES,
        "leaking pointer from stack off -8",
    ),
    // --- linked scalars: what does not link
    (
        "32-bit add of a 64-bit value does not link",
        Skb,
        Both,
        value_and_u32!(
            "ldxdw %r6, [%r7+0]\nmov %r0, %r6\nadd32 %r0, 1\njgt %r6, 12, +2\nadd %r7, %r0\n\
             ldxb %r1, [%r7+0]\nmov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "R7 unbounded memory access",
    ),
    (
        "a second constant breaks the link",
        Skb,
        Both,
        value_and_u32!(
            "mov %r0, %r6\nadd %r0, 1\nadd %r0, 1\njgt %r0, 17, +2\nadd %r7, %r6\n\
             ldxb %r1, [%r7+0]\nmov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "R7 unbounded memory access",
    ),
    (
        "a bound on a 32-bit sum says nothing of the 64-bit original",
        Skb,
        Both,
        value_and_u32!(
            "mov %r0, %r6\nadd32 %r0, 1\njgt %r0, 15, +2\nadd %r7, %r6\nldxb %r1, [%r7+0]\n\
             mov %r0, 0\nexit"
        ),
        Errno::EACCES,
        "R7",
    ),
];

/// Positive cases.
pub const POSITIVE: &[Positive] = &[
    // --- legacy packet loads
    (
        "ld_abs b/h/w in a socket filter",
        Skb,
        Both,
        "mov %r6, %r1\nldabsb 0\nldabsh 12\nldabsw 2\nexit",
    ),
    (
        "ld_ind in tc",
        SchedCls,
        Both,
        "mov %r6, %r1\nmov %r7, 3\nldindh %r7, 12\nldindw %r7, -4\nexit",
    ),
    (
        "ld_abs in sched_act",
        ProgType::SchedAct,
        Both,
        "mov %r6, %r1\nldabsb 12\nexit",
    ),
    (
        "callee-saved registers survive ld_abs",
        Skb,
        Both,
        "mov %r6, %r1\nmov %r7, 1\nldabsb 12\nmov %r0, %r7\nexit",
    ),
    (
        "ld_abs in the main program beside a subprogram",
        Skb,
        Both,
        "mov %r6, %r1\nldabsb 12\ncall local +1\nexit\nmov %r0, 0\nexit",
    ),
    (
        "ld_ind with a pointer index",
        Skb,
        Both,
        "mov %r6, %r1\nldindb %r10, 0\nexit",
    ),
    // --- array lookups with a constant key need no NULL check
    (
        "array key spilled at fp-8",
        Skb,
        Both,
        concat!("stw [%r10-8], 1\n", lookup8_deref!("0")),
    ),
    (
        "array key zero at fp-4",
        Skb,
        Both,
        "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, map_fd 0\ncall 1\nldxw %r0, [%r0+0]\nmov %r0, 0\nexit",
    ),
    (
        "array key from a register spill",
        Skb,
        Both,
        concat!("mov %r1, 3\nstxw [%r10-8], %r1\n", lookup8_deref!("0")),
    ),
    (
        "per-CPU array key",
        Xdp,
        Both,
        concat!("stw [%r10-8], 2\n", lookup8_deref!("1")),
    ),
    (
        "the NULL branch is dead",
        Skb,
        Both,
        "stw [%r10-8], 1\nmov %r2, %r10\nadd %r2, -8\nlddw %r1, map_fd 0\ncall 1\njne %r0, 0, +2\nldxdw %r0, [%r10+0]\nexit\nmov %r0, 0\nexit",
    ),
    // --- stack alignment
    (
        "bytes at any offset",
        Skb,
        Both,
        "stb [%r10-7], 1\nldxb %r0, [%r10-7]\nexit",
    ),
    (
        "aligned through a moved pointer",
        Skb,
        Priv,
        "mov %r2, %r10\nadd %r2, -3\nstw [%r2-5], 0\nldxw %r0, [%r2-5]\nexit",
    ),
    (
        "narrow aligned accesses",
        Skb,
        Both,
        "sth [%r10-2], 1\nstw [%r10-8], 2\nldxh %r0, [%r10-2]\nldxw %r0, [%r10-8]\nexit",
    ),
    // --- fills
    (
        "a spilled pointer filled whole",
        Skb,
        Both,
        "stxdw [%r10-8], %r1\nldxdw %r1, [%r10-8]\nldxw %r0, [%r1+0]\nexit",
    ),
    (
        "part of a spilled scalar",
        Skb,
        Both,
        "mov %r1, 0x1234\nstxdw [%r10-8], %r1\nldxb %r2, [%r10-8]\njeq %r2, 0x34, +2\nldxdw %r0, [%r10+0]\nexit\nmov %r0, 0\nexit",
    ),
    (
        "atomic fetch from a spilled constant",
        Skb,
        Both,
        "mov %r1, 5\nstxdw [%r10-8], %r1\nmov %r1, 1\nlock fetch add [%r10-8], %r1\njeq %r1, 5, +2\nldxdw %r0, [%r10+0]\nexit\nmov %r0, 0\nexit",
    ),
    // --- linked scalars: a bound checked on a copy holds for the original, and back
    (
        "bound on a copy",
        Skb,
        Both,
        value_and_u32!(
            "mov %r0, %r6\njgt %r0, 15, +2\nadd %r7, %r6\nldxb %r1, [%r7+0]\nmov %r0, 0\nexit"
        ),
    ),
    (
        "bound on the original, copy used",
        Skb,
        Both,
        value_and_u32!(
            "mov %r0, %r6\njgt %r6, 15, +2\nadd %r7, %r0\nldxb %r1, [%r7+0]\nmov %r0, 0\nexit"
        ),
    ),
    (
        "copy plus a constant",
        Skb,
        Both,
        value_and_u32!(
            "mov %r0, %r6\nadd %r0, 1\njgt %r0, 16, +2\nadd %r7, %r6\nldxb %r1, [%r7+0]\nmov %r0, 0\nexit"
        ),
    ),
    (
        "copy minus a constant",
        Skb,
        Both,
        value_and_u32!(
            "mov %r0, %r6\nsub %r0, 3\njgt %r0, 12, +2\nadd %r7, %r6\nldxb %r1, [%r7+0]\nmov %r0, 0\nexit"
        ),
    ),
    (
        "two copies with different constants",
        Skb,
        Both,
        value_and_u32!(
            "mov %r0, %r6\nadd %r0, 1\nmov %r3, %r6\nadd %r3, 2\njgt %r3, 15, +2\nadd %r7, %r0\nldxb %r1, [%r7+0]\nmov %r0, 0\nexit"
        ),
    ),
    (
        "32-bit copy",
        Skb,
        Both,
        value_and_u32!(
            "mov32 %r0, %r6\njgt %r0, 15, +2\nadd %r7, %r6\nldxb %r1, [%r7+0]\nmov %r0, 0\nexit"
        ),
    ),
    (
        "32-bit copy plus a constant, original bounded",
        Skb,
        Both,
        value_and_u32!(
            "mov32 %r0, %r6\nadd32 %r0, 1\njgt %r6, 12, +2\nadd %r7, %r0\nldxb %r1, [%r7+0]\nmov %r0, 0\nexit"
        ),
    ),
    (
        "through a spill and a fill",
        Skb,
        Both,
        value_and_u32!(
            "stxdw [%r10-16], %r6\nldxdw %r0, [%r10-16]\njgt %r0, 15, +2\nadd %r7, %r6\nldxb %r1, [%r7+0]\nmov %r0, 0\nexit"
        ),
    ),
    (
        "through a 4-byte spill and fill",
        Skb,
        Both,
        value_and_u32!(
            "stxw [%r10-16], %r6\nldxw %r0, [%r10-16]\njgt %r0, 15, +2\nadd %r7, %r6\nldxb %r1, [%r7+0]\nmov %r0, 0\nexit"
        ),
    ),
    (
        "compared with a register",
        Skb,
        Both,
        value_and_u32!(
            "mov %r0, %r6\nmov %r1, 15\njgt %r0, %r1, +2\nadd %r7, %r6\nldxb %r1, [%r7+0]\nmov %r0, 0\nexit"
        ),
    ),
];

/// A case's mode: its program type and whether root's rules apply.
pub type Mode = (ProgType, bool);

/// A negative case in one mode (the shape the corpus checkers take).
pub type NegativeIn = (&'static str, Mode, &'static str, Errno, &'static str);

/// The negative cases, one per mode they run in.
pub fn negative_each() -> Vec<NegativeIn> {
    NEGATIVE
        .iter()
        .flat_map(|&(name, t, m, asm, errno, frag)| {
            m.each()
                .iter()
                .map(move |&p| (name, (t, p), asm, errno, frag))
        })
        .collect()
}

/// The positive cases, one per mode they run in.
pub fn positive_each() -> Vec<(&'static str, Mode, &'static str)> {
    POSITIVE
        .iter()
        .flat_map(|&(name, t, m, asm)| m.each().iter().map(move |&p| (name, (t, p), asm)))
        .collect()
}

/// A straight line of `n` conditional jumps on unknown values, each leaving a path to explore:
/// past 8192 waiting paths the kernel gives up ("The sequence of 8193 jumps is too complex.").
pub fn jump_sequence(n: usize) -> String {
    let mut s = String::from("ldxw %r1, [%r1+0]\nmov %r2, %r1\nrsh %r2, 1\n");
    for _ in 0..n {
        s.push_str("jeq %r1, %r2, +0\n");
    }
    s.push_str("mov %r0, 0\nexit");
    s
}
