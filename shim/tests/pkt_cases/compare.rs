//! Comparing kbpf's test runs with the host kernel's answers, live or recorded.
//!
//! An answer is a case's refusal (the load's errno) or, per run, what the run reported: the
//! errno, and where the run reported anything (success or `ENOSPC`) `retval`,
//! `data_size_out`, `ctx_size_out` and the bytes copied out, kept as length and FNV-1a hash
//! so that the recorded answers stay small.

use super::Case;
use kbpf::insn::assemble;
use kbpf::syscall::{self, TestRun};
use kbpf::{Errno, ProgLoadAttr};
use kbpf_shim::host_bpf::test_run::{HostRunAttr, HostRunOut};
use std::fmt::Write as _;

/// Programs the host kernel here refuses though Linux 6.18 offers what they call: the case
/// name fragment, the fragment of the host's log that says why, and the reason.
pub const KNOWN_HOST: &[(&str, &str, &str)] = &[
    (
        "xdp helper 54",
        "cannot use helper bpf_xdp_adjust_meta",
        "this host kernel does not offer bpf_xdp_adjust_meta to XDP programs (mainline's \
         xdp_func_proto does); kbpf offers it, and pkt_helpers.rs checks its semantics",
    ),
    (
        "then adjust_meta",
        "cannot use helper bpf_xdp_adjust_meta",
        "as above",
    ),
];

/// Programs kbpf refuses on purpose though the host loads them: the case name and why.
pub const KNOWN_KBPF: &[(&str, &str)] = &[(
    "callback differs by path",
    "kbpf runs bpf_loop only inlined, which needs one callback per call site; the kernel falls \
     back to calling its helper (ENOTSUPP, with the reason in the log)",
)];

/// One run's report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// 0 or the errno.
    pub errno: i32,
    /// `retval`.
    pub retval: u32,
    /// `data_size_out`.
    pub data_size_out: u32,
    /// Bytes of packet copied out, and their hash.
    pub data: (usize, u64),
    /// `ctx_size_out`.
    pub ctx_size_out: u32,
    /// Bytes of context copied out, and their hash.
    pub ctx: (usize, u64),
}

/// A case's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The load was refused with this errno; `known` when the refusal is one of
    /// [`KNOWN_HOST`].
    Refused {
        /// The load's errno.
        errno: i32,
        /// One of [`KNOWN_HOST`].
        known: bool,
    },
    /// Each run's report.
    Runs(Vec<RunSummary>),
}

/// FNV-1a, 64 bits.
pub fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// What a run reported, reduced to what is compared.
pub fn summary(o: &HostRunOut) -> RunSummary {
    if o.errno != 0 && o.errno != Errno::ENOSPC.to_errno() {
        return RunSummary {
            errno: o.errno,
            ..RunSummary::default()
        };
    }
    RunSummary {
        errno: o.errno,
        retval: o.retval,
        data_size_out: o.data_size_out,
        data: (o.data_out.len(), fnv(&o.data_out)),
        ctx_size_out: o.ctx_size_out,
        ctx: (o.ctx_out.len(), fnv(&o.ctx_out)),
    }
}

/// Whether a host refusal log is one of [`KNOWN_HOST`] for case `name`.
pub fn known_host(name: &str, log: &str) -> bool {
    KNOWN_HOST
        .iter()
        .any(|(n, why, _)| name.contains(n) && log.contains(why))
}

/// kbpf's answer to one run, in the host's terms.
pub fn kbpf_run(fd: u32, r: &HostRunAttr) -> HostRunOut {
    let mut data = r.data.clone();
    let mut data_out = vec![0u8; r.data_size_out as usize];
    let mut ctx_out = vec![0u8; r.ctx_size_out as usize];
    let want_ctx = r.ctx_in.is_some() || r.ctx_size_out > 0;
    let mut run = TestRun {
        data: &mut data,
        data_out: Some(&mut data_out[..]).filter(|d| !d.is_empty()),
        ctx_in: r.ctx_in.as_deref(),
        ctx_out: Some(&mut ctx_out[..]).filter(|_| want_ctx && r.ctx_size_out > 0),
        repeat: r.repeat,
        flags: r.flags,
        ..Default::default()
    };
    let res = syscall::prog_test_run(fd, &mut run);
    let out = run.out;
    let errno = res.err().map_or(0, |e| e.to_errno());
    // What the host reads back from an attr the kernel left alone is what went in.
    let data_size_out = if errno != 0 && out.data_size_out == 0 {
        r.data_size_out
    } else {
        out.data_size_out
    };
    let ctx_size_out = if out.ctx_size_out == 0 {
        r.ctx_size_out
    } else {
        out.ctx_size_out
    };
    data_out.truncate(data_size_out.min(r.data_size_out) as usize);
    ctx_out.truncate(ctx_size_out.min(r.ctx_size_out) as usize);
    HostRunOut {
        errno,
        retval: out.retval as u32,
        data_size_out,
        data_out,
        ctx_size_out,
        ctx_out,
    }
}

/// Counts of one comparison.
#[derive(Default)]
pub struct Tally {
    /// Loads and runs compared.
    pub compared: usize,
    /// Of those, identical.
    pub agreed: usize,
    /// Of those, one of the known differences.
    pub known: usize,
    /// The others, described.
    pub failures: Vec<String>,
}

/// Loads every case in kbpf (with the engine the process selected) and compares with
/// `answers`.
pub fn check(engine: &str, cases: &[Case], answers: &[Answer], t: &mut Tally) {
    for (c, want) in cases.iter().zip(answers) {
        let insns = assemble(&c.asm).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let mut log = String::new();
        let fd = syscall::prog_load_log(&ProgLoadAttr::new(c.prog_type, &insns), &mut log);
        t.compared += 1;
        let known_kbpf = KNOWN_KBPF.iter().any(|(n, _)| c.name.contains(n));
        match (fd, want) {
            (Err(e), Answer::Refused { errno, .. }) if e.to_errno() == *errno => t.agreed += 1,
            (Err(Errno::ENOTSUPP), Answer::Runs(_)) if known_kbpf => t.known += 1,
            (Err(e), _) => t.failures.push(format!(
                "{engine}: {}: kbpf refuses ({e:?}), the host: {want:?}\n{log}",
                c.name
            )),
            (Ok(fd), Answer::Refused { known: true, .. }) => {
                t.known += 1;
                syscall::close(fd).unwrap();
            }
            (Ok(fd), Answer::Refused { errno, .. }) => {
                t.failures.push(format!(
                    "{engine}: {}: kbpf loads what the host refuses (errno {errno})",
                    c.name
                ));
                syscall::close(fd).unwrap();
            }
            (Ok(fd), Answer::Runs(outs)) => {
                t.agreed += 1;
                for (k, (r, want)) in c.runs.iter().zip(outs).enumerate() {
                    let got = kbpf_run(fd, r);
                    t.compared += 1;
                    if summary(&got) == *want {
                        t.agreed += 1;
                    } else {
                        t.failures.push(format!(
                            "{engine}: {} run {k} (len {}, flags {}):\n  kbpf {:?} {got:?}\n  host {want:?}",
                            c.name,
                            r.data.len(),
                            r.flags,
                            summary(&got)
                        ));
                    }
                }
                syscall::close(fd).unwrap();
            }
        }
    }
}

/// A fingerprint of a case (name, program, runs), so that recorded answers are only used
/// for the cases they were recorded for.
pub fn fingerprint(c: &Case) -> u64 {
    fnv(format!("{}\n{:?}\n{}\n{:?}", c.name, c.prog_type, c.asm, c.runs).as_bytes())
}

/// The recorded form of `answers` for `cases`.
pub fn golden_text(release: &str, cases: &[Case], answers: &[Answer]) -> String {
    let mut s = format!(
        "# The host kernel's BPF_PROG_TEST_RUN answers to pkt_cases, recorded on Linux {release}\n\
         # by `KBPF_BLESS=1 cargo test -p kbpf-shim --release --test pkt_oracle`.\n\
         # case <fingerprint> refused <errno> <known> | case <fingerprint> runs <n>\n\
         # run <errno> <retval> <data_size_out> <bytes> <fnv> <ctx_size_out> <bytes> <fnv>\n"
    );
    for (c, a) in cases.iter().zip(answers) {
        match a {
            Answer::Refused { errno, known } => {
                let _ = writeln!(s, "case {:016x} refused {errno} {known}", fingerprint(c));
            }
            Answer::Runs(runs) => {
                let _ = writeln!(s, "case {:016x} runs {}", fingerprint(c), runs.len());
                for r in runs {
                    let _ = writeln!(
                        s,
                        "run {} {} {} {} {:016x} {} {} {:016x}",
                        r.errno,
                        r.retval,
                        r.data_size_out,
                        r.data.0,
                        r.data.1,
                        r.ctx_size_out,
                        r.ctx.0,
                        r.ctx.1
                    );
                }
            }
        }
    }
    s
}

/// Reads [`golden_text`]: the answers, or `None` when the file does not match `cases`.
pub fn parse_golden(text: &str, cases: &[Case]) -> Option<Vec<Answer>> {
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let mut out = Vec::new();
    for c in cases {
        let f: Vec<&str> = lines.next()?.split(' ').collect();
        if f.first() != Some(&"case") || f.get(1)? != &format!("{:016x}", fingerprint(c)) {
            return None;
        }
        match *f.get(2)? {
            "refused" => out.push(Answer::Refused {
                errno: f.get(3)?.parse().ok()?,
                known: f.get(4)?.parse().ok()?,
            }),
            _ => {
                let n: usize = f.get(3)?.parse().ok()?;
                let mut runs = Vec::new();
                for _ in 0..n {
                    let r: Vec<&str> = lines.next()?.split(' ').collect();
                    let num = |i: usize| r.get(i).and_then(|x| x.parse::<u64>().ok());
                    let hex = |i: usize| r.get(i).and_then(|x| u64::from_str_radix(x, 16).ok());
                    runs.push(RunSummary {
                        errno: num(1)? as i32,
                        retval: num(2)? as u32,
                        data_size_out: num(3)? as u32,
                        data: (num(4)? as usize, hex(5)?),
                        ctx_size_out: num(6)? as u32,
                        ctx: (num(7)? as usize, hex(8)?),
                    });
                }
                out.push(Answer::Runs(runs));
            }
        }
    }
    lines.next().is_none().then_some(out)
}
