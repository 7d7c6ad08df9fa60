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
use super::{SK_DROP, run_progs};
use crate::net::addr::{AF_INET, AF_INET6};
use crate::prog::{Prog, RunBatch};
use crate::syscall::{TestRun, TestRunResult};
use crate::test_run::{ctx_finish, ctx_init, finish, repeat_with};
use crate::{Errno, Result};

/// The test run (see the module docs).
pub(crate) fn run(prog: &Prog, run: &mut TestRun<'_>) -> Result<TestRunResult> {
    if run.flags != 0 || run.cpu != 0 || run.batch_size != 0 {
        return Err(Errno::EINVAL);
    }
    if !run.data.is_empty() || run.data_out.is_some() {
        return Err(Errno::EINVAL);
    }
    let repeat = run.repeat;
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
        no_reuseport: 0,
    };
    // Each run starts with nothing selected; what the last run selected is the result, read
    // inside the section it was selected in (a socket is only valid there).
    let mut cookie = Ok(0);
    let (retval, duration) = repeat_with(repeat, |guard, n| {
        let mut batch = RunBatch::begin(guard).map_err(|_| Errno::EFAULT)?;
        let mut verdict = SK_DROP;
        for _ in 0..n {
            ctx.selected_sk = core::ptr::null();
            verdict = run_progs([prog], &mut batch, &mut ctx);
        }
        // SAFETY: a selected socket is one a program handed to `bpf_sk_assign` during this
        // read-side section, which is still open: it is allocated.
        cookie = match unsafe { ctx.selected_sk.as_ref() } {
            Some(sk) if sk.reuseport() && ctx.no_reuseport == 0 => Err(Errno::EOPNOTSUPP),
            Some(sk) => Ok(sk.cookie()),
            None => Ok(0),
        };
        Ok(verdict as u64)
    })?;
    user.cookie = cookie?;
    finish(run, &[&[]], 0, retval, duration)?;
    let out = user.to_bytes();
    ctx_finish(run, Some(&out))
}
