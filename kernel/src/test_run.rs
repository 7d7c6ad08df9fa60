//! `BPF_PROG_TEST_RUN` (`net/bpf/test_run.c`): a program run on a packet and a context the
//! caller gives, with the packet and context it leaves behind handed back.
//!
//! - Socket filters, cgroup skb and TC programs ([`skb`], `bpf_prog_test_run_skb`): the
//!   packet is an Ethernet frame in a socket buffer received on a device (the loopback,
//!   ifindex 1, unless the context names another); TC programs see it from the Ethernet
//!   header, the others from the network header.
//! - XDP programs ([`xdp`], `bpf_prog_test_run_xdp`): the frame in a page with the kernel's
//!   headroom and tailroom, metadata in front of it, bytes past the linear part in fragments.
//! - The raw-buffer type (kbpf's conformance type): the program runs on the caller's buffer
//!   in place, R2 holding its length.
//!
//! The common parts are here: the repeat loop with its timing (`bpf_test_run`), the context
//! in and out (`bpf_ctx_init`, `bpf_ctx_finish`) and the packet out (`bpf_test_finish`), with
//! the kernel's size rules and errnos. The control path builds everything before the first
//! run; the runs themselves allocate nothing.

pub mod skb;
pub mod xdp;

use crate::cpu::CpuGuard;
use crate::prog::Prog;
use crate::syscall::{TestRun, TestRunResult};
use crate::uapi::ProgType;
use crate::{Errno, Result, host};

/// `BPF_F_TEST_RUN_ON_CPU`: run on the CPU `cpu` names (not offered: `EINVAL`).
pub const F_TEST_RUN_ON_CPU: u32 = 1 << 0;
/// `BPF_F_TEST_XDP_LIVE_FRAMES`: transmit XDP frames after the run (kbpf has no devices to
/// transmit on: `EOPNOTSUPP`).
pub const F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
/// `BPF_F_TEST_SKB_CHECKSUM_COMPLETE`: the socket buffer carries `CHECKSUM_COMPLETE` with the
/// sum of its packet from the network header, and after the run that sum must still match the
/// packet (`EBADMSG` otherwise) — what checks a program's `BPF_F_RECOMPUTE_CSUM` /
/// `BPF_F_PSEUDO_HDR` bookkeeping.
pub const F_TEST_SKB_CHECKSUM_COMPLETE: u32 = 1 << 2;
/// `ETH_HLEN`.
pub const ETH_HLEN: usize = 14;
/// `PAGE_SIZE`: the largest context accepted (`bpf_check_uarg_tail_zero`).
const PAGE_SIZE: usize = 4096;

/// Runs per read-side section in a repeated test run, so writers waiting for a grace period
/// are not held up by a long run (`bpf_test_timer_continue`).
const RUNS_PER_SECTION: u32 = 256;

/// `BPF_PROG_TEST_RUN` for `prog`: see the module docs.
pub(crate) fn run(prog: &Prog, run: &mut TestRun<'_>) -> Result<TestRunResult> {
    match prog.prog_type() {
        ProgType::RawBuffer => raw(prog, run),
        ProgType::SocketFilter | ProgType::CgroupSkb | ProgType::SchedCls | ProgType::SchedAct => {
            skb::run(prog, run)
        }
        ProgType::Xdp => xdp::run(prog, run),
        ProgType::SkLookup => crate::net::sk_lookup::test_run::run(prog, run),
        _ => Err(Errno::ENOTSUPP),
    }
}

/// The netns the caller runs in (`current->nsproxy->net_ns`): the one [`TestRun::netns`]
/// names, else the initial one.
pub(crate) fn caller_net(run: &TestRun<'_>) -> Result<crate::sync::Arc<crate::net::Net>> {
    match run.netns {
        Some(fd) => crate::net::fd::netns_get(fd),
        None => Ok(crate::net::init_net().clone()),
    }
}

/// The raw-buffer type: the buffer is the context; `data_out` receives it after the run.
fn raw(prog: &Prog, run: &mut TestRun<'_>) -> Result<TestRunResult> {
    if run.ctx_in.is_some() || run.ctx_out.is_some() || run.flags != 0 || run.cpu != 0 {
        return Err(Errno::EINVAL);
    }
    if run.batch_size != 0 {
        return Err(Errno::EINVAL);
    }
    if prog
        .ctx_size()
        .is_some_and(|n| n as usize != run.data.len())
    {
        return Err(Errno::EINVAL);
    }
    let (ctx, len) = (run.data.as_mut_ptr() as u64, run.data.len() as u64);
    let (retval, duration) = repeat(prog, ctx, len, run.repeat)?;
    let data = core::mem::take(&mut run.data);
    let r = finish(run, &[&*data], 0, retval, duration);
    run.data = data;
    r
}

/// The repeat loop (`bpf_test_run`): runs `prog` `repeat` times (at least once) with R1 =
/// `r1`, R2 = `r2`; returns the last R0 and the mean duration of one run.
pub(crate) fn repeat(prog: &Prog, r1: u64, r2: u64, repeat: u32) -> Result<(u64, u64)> {
    repeat_with(repeat, |guard, n| {
        prog.run_repeat(guard, r1, r2, n).map_err(|_| Errno::EFAULT)
    })
}

/// The repeat loop's frame (`bpf_test_timer`): calls `batch(guard, n)` to run `n` times in
/// one read-side section, sections of at most [`RUNS_PER_SECTION`] runs, `repeat` runs in all
/// (at least one); returns the last batch's R0 and the mean duration of one run.
pub(crate) fn repeat_with(
    repeat: u32,
    mut batch: impl FnMut(&mut CpuGuard, u32) -> Result<u64>,
) -> Result<(u64, u64)> {
    let repeat = repeat.max(1);
    let h = host::get();
    // The clock starts once the first section is entered, as `bpf_test_timer_enter` reads it
    // after `rcu_read_lock()`: a process's first run sets up the CPUs' state, which is not the
    // program's time.
    let mut guard = CpuGuard::enter();
    let start = h.ktime_ns();
    let mut done = 0;
    let retval = loop {
        let n = (repeat - done).min(RUNS_PER_SECTION);
        let r0 = batch(&mut guard, n)?;
        done += n;
        if done >= repeat {
            break r0;
        }
        // Let writers waiting for a grace period through between sections.
        drop(guard);
        guard = CpuGuard::enter();
    };
    let elapsed = h.ktime_ns().saturating_sub(start);
    drop(guard);
    Ok((retval, elapsed / repeat as u64))
}

/// The context the run starts from (`bpf_ctx_init`): `None` when the caller passed neither
/// `ctx_in` nor `ctx_out`; else `ctx_in` zero-extended to `N` bytes (`E2BIG` when it is
/// longer than a page, or longer than `N` with a non-zero byte past it).
pub(crate) fn ctx_init<const N: usize>(run: &TestRun<'_>) -> Result<Option<[u8; N]>> {
    if run.ctx_in.is_none() && run.ctx_out.is_none() {
        return Ok(None);
    }
    let mut ctx = [0u8; N];
    if let Some(cin) = run.ctx_in {
        if cin.len() > PAGE_SIZE || cin.iter().skip(N).any(|&b| b != 0) {
            return Err(Errno::E2BIG);
        }
        let n = cin.len().min(N);
        ctx[..n].copy_from_slice(&cin[..n]);
    }
    Ok(Some(ctx))
}

/// The context after the run (`bpf_ctx_finish`): copied to `ctx_out`, cut with `ENOSPC`
/// when that is shorter.
pub(crate) fn ctx_finish(run: &mut TestRun<'_>, ctx: Option<&[u8]>) -> Result<TestRunResult> {
    let (Some(ctx), Some(out)) = (ctx, run.ctx_out.as_deref_mut()) else {
        return Ok(run.out);
    };
    let n = ctx.len().min(out.len());
    out[..n].copy_from_slice(&ctx[..n]);
    run.out.ctx_size_out = ctx.len() as u32;
    if n < ctx.len() {
        return Err(Errno::ENOSPC);
    }
    Ok(run.out)
}

/// The packet after the run (`bpf_test_finish`): `pieces` are the linear part then the
/// fragments (`frags` bytes in all). With a `data_out` shorter than the packet the copy is cut
/// and the call fails with `ENOSPC` — the kernel's way: the cut comes off the linear part
/// when there are fragments, and if they alone do not fit nothing at all is reported.
/// Otherwise `retval`, the duration and `data_size_out` are reported, `ENOSPC` or not.
pub(crate) fn finish(
    run: &mut TestRun<'_>,
    pieces: &[&[u8]],
    frags: usize,
    retval: u64,
    duration: u64,
) -> Result<TestRunResult> {
    let size: usize = pieces.iter().map(|p| p.len()).sum();
    let mut copy = size;
    let mut nospc = false;
    if let Some(out) = run.data_out.as_deref_mut() {
        if !out.is_empty() && copy > out.len() {
            copy = out.len();
            nospc = true;
        }
        let Some(linear) = copy.checked_sub(frags) else {
            return Err(Errno::ENOSPC);
        };
        let mut put = |at: usize, src: &[u8]| {
            let end = (at + src.len()).min(out.len());
            if at < end {
                out[at..end].copy_from_slice(&src[..end - at]);
            }
        };
        put(0, &pieces[0][..linear.min(pieces[0].len())]);
        let mut at = linear;
        for frag in &pieces[1..] {
            if at >= copy {
                nospc = true;
                break;
            }
            let n = (copy - at).min(frag.len());
            put(at, &frag[..n]);
            at += n;
        }
    }
    run.out.data_size_out = size as u32;
    run.out.retval = retval;
    run.out.duration_ns = duration;
    if nospc {
        return Err(Errno::ENOSPC);
    }
    Ok(run.out)
}
