//! `BPF_PROG_TEST_RUN` for sk_lookup programs (`bpf_prog_test_run_sk_lookup`,
//! `net/bpf/test_run.c`): the program runs as a one-program run array on a context built from
//! `ctx_in`, and `ctx_out` gets the input back with the selected socket's cookie in `cookie`.
//!
//! Checks, in order: `flags`, `cpu` or `batch_size` set (`EINVAL`); packet data in or out
//! (`EINVAL`); no context at all (`EINVAL`; `E2BIG` for a longer one with non-zero bytes past
//! the struct); a non-zero `cookie`, or non-zero bytes after `local_port` (`EINVAL`); a
//! `local_port` above 65535 (`ERANGE`); a family other than `AF_INET`/`AF_INET6`
//! (`EAFNOSUPPORT`). After the runs, a selected socket with `SO_REUSEPORT` that was not
//! assigned with `BPF_SK_LOOKUP_F_NO_REUSEPORT` is `EOPNOTSUPP` (a test run cannot run the
//! group's selection).

use super::ctx::{BpfSkLookup, SkLookupKern, off};
use super::run_progs;
use crate::cpu::CpuGuard;
use crate::net::addr::{AF_INET, AF_INET6};
use crate::prog::{Prog, RunBatch};
use crate::syscall::{TestRun, TestRunResult};
use crate::test_run::{ctx_finish, ctx_init, finish};
use crate::{Errno, Result, host};

/// Runs per read-side section (as the other test runs).
const RUNS_PER_SECTION: u32 = 256;

/// The test run (see the module docs).
pub(crate) fn run(prog: &Prog, run: &mut TestRun<'_>) -> Result<TestRunResult> {
    if run.flags != 0 || run.cpu != 0 || run.batch_size != 0 {
        return Err(Errno::EINVAL);
    }
    if !run.data.is_empty() || run.data_out.is_some() {
        return Err(Errno::EINVAL);
    }
    let repeat = run.repeat.max(1);
    let Some(bytes) = ctx_init::<{ off::SIZE as usize }>(run)? else {
        return Err(Errno::EINVAL);
    };
    let mut user = BpfSkLookup::from_bytes(&bytes);
    if user.cookie != 0
        || bytes[off::INGRESS_IFINDEX as usize..]
            .iter()
            .any(|&b| b != 0)
    {
        return Err(Errno::EINVAL);
    }
    if user.local_port > u16::MAX as u32 {
        return Err(Errno::ERANGE);
    }
    let v4 = match user.family as u16 {
        AF_INET => true,
        AF_INET6 => false,
        _ => return Err(Errno::EAFNOSUPPORT),
    };
    let mut ctx = SkLookupKern {
        selected_sk: core::ptr::null(),
        family: user.family as u16,
        protocol: user.protocol as u16,
        sport: user.remote_port,
        dport: user.local_port as u16,
        saddr4: if v4 { user.remote_ip4 } else { 0 },
        daddr4: if v4 { user.local_ip4 } else { 0 },
        saddr6: if v4 { [0; 4] } else { user.remote_ip6 },
        daddr6: if v4 { [0; 4] } else { user.local_ip6 },
        ingress_ifindex: 0,
        no_reuseport: false,
    };
    let h = host::get();
    let start = h.ktime_ns();
    let mut retval = 0;
    let mut done = 0;
    // Each run starts with nothing selected; what the last run selected is the result.
    while done < repeat {
        let mut guard = CpuGuard::enter();
        let mut batch = RunBatch::begin(&mut guard).map_err(|_| Errno::EFAULT)?;
        let n = (repeat - done).min(RUNS_PER_SECTION);
        for _ in 0..n {
            ctx.selected_sk = core::ptr::null();
            retval = run_progs([prog], &mut batch, &mut ctx);
        }
        done += n;
        // The selected socket is only valid inside the section it was found in.
        if done == repeat {
            user.cookie = 0;
            // SAFETY: a selected socket is one a program handed to `bpf_sk_assign` during
            // this read-side section, which is still open (`guard` lives): it is allocated.
            if let Some(sk) = unsafe { ctx.selected_sk.as_ref() } {
                if sk.reuseport() && !ctx.no_reuseport {
                    return Err(Errno::EOPNOTSUPP);
                }
                user.cookie = sk.cookie();
            }
        }
    }
    let duration = h.ktime_ns().saturating_sub(start) / repeat as u64;
    finish(run, &[&[]], 0, retval as u64, duration)?;
    let out = user.to_bytes();
    ctx_finish(run, Some(&out))
}
