//! The verifier log and the rejection it ends with.
//!
//! Mirrors `verbose()` and `struct bpf_verifier_log` of `kernel/bpf/log.c` in spirit: each
//! rejection is one line `N: reason` naming the instruction index, with the kernel's wording
//! where the kernel has one (so logs can be compared with `bpftool`'s), followed by the
//! processed-instruction summary line the kernel prints.

use crate::Errno;
use alloc::string::String;
use core::fmt::{Display, Write};

/// A rejection: the errno the kernel returns for it, the instruction and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// The errno (`EACCES` for most safety violations, `EINVAL` for malformed programs,
    /// `E2BIG` for complexity).
    pub errno: Errno,
    /// The instruction index the reason is about.
    pub insn: usize,
    /// The kernel-style message.
    pub msg: String,
}

impl Reject {
    /// A rejection at `insn` with message `msg`.
    pub fn new(errno: Errno, insn: usize, msg: impl Display) -> Reject {
        let mut s = String::new();
        let _ = write!(s, "{msg}");
        Reject {
            errno,
            insn,
            msg: s,
        }
    }

    /// An `EACCES` rejection, the kernel's errno for most safety violations.
    pub fn acces(insn: usize, msg: impl Display) -> Reject {
        Reject::new(Errno::EACCES, insn, msg)
    }
}

/// Appends the rejection line to `log`.
pub fn write_reject(log: &mut String, r: &Reject) {
    let _ = writeln!(log, "{}: {}", r.insn, r.msg);
}

/// Appends the summary line (`processed N insns ...`).
pub fn write_summary(log: &mut String, processed: usize, states: usize) {
    let _ = writeln!(
        log,
        "processed {processed} insns (limit 1000000) total_states {states}"
    );
}
