//! `kbpf bench tcx`: the cost of a tcx run per attached program (1, 2, 8, 32, 63 trivial
//! programs returning `TCX_NEXT`) — through the entry's dispatcher when the programs are JIT'd,
//! and the walk (`tcx::run_walk`, one program run at a time) for comparison — the program's own
//! run cost, and attach/detach cost with 0 and 62 programs already attached (with the JIT, that
//! includes compiling the new entry's dispatcher), the grace period measured on its own.

use super::{json_map, json_num, slope};
use kbpf::cpu::{CpuGuard, synchronize_rcu};
use kbpf::insn::{exit, mov64_imm};
use kbpf::skb::SkBuff;
use kbpf::syscall::{self, Fd};
use kbpf::tcx::{self, AttachAttr, Direction};
use kbpf::uapi::{AttachType, ProgType};
use kbpf::{ProgLoadAttr, Result};
use std::io::Write;
use std::time::Instant;

/// Program counts measured.
pub const COUNTS: [usize; 5] = [1, 2, 8, 32, 63];

/// Results of one run.
#[derive(Clone, Debug)]
pub struct TcxReport {
    /// `(programs attached, ns per tcx run)`.
    pub ns_per_run: Vec<(usize, f64)>,
    /// Least-squares slope: ns per attached program.
    pub ns_per_prog: f64,
    /// Whether the runs went through a dispatcher (every program JIT'd).
    pub dispatched: bool,
    /// `(programs attached, ns per walk)`: the same entries walked.
    pub walk_ns_per_run: Vec<(usize, f64)>,
    /// Least-squares slope of the walk.
    pub walk_ns_per_prog: f64,
    /// One trivial program run on its own.
    pub prog_run_ns: f64,
    /// `(programs already attached, ns)` for one attach, grace period excluded.
    pub attach_ns: Vec<(usize, f64)>,
    /// `(programs attached before, ns)` for one detach, grace period excluded.
    pub detach_ns: Vec<(usize, f64)>,
    /// One `synchronize_rcu` with no readers.
    pub grace_period_ns: f64,
}

fn next_prog() -> Result<Fd> {
    let insns = [mov64_imm(0, kbpf::uapi::tcx_action::NEXT), exit()];
    syscall::prog_load(&ProgLoadAttr::new(ProgType::SchedCls, &insns))
}

fn attach(ifindex: u32, fd: Fd) -> Result {
    let mut a = AttachAttr::new(ifindex, AttachType::TcxIngress);
    a.attach_bpf_fd = fd;
    tcx::prog_attach(&a)
}

fn detach(ifindex: u32, fd: Fd) -> Result {
    let mut a = AttachAttr::new(ifindex, AttachType::TcxIngress);
    a.attach_bpf_fd = fd;
    tcx::prog_detach(&a)
}

/// Best mean ns of `f` over `trials` batches of `n` calls.
fn best_of(trials: u32, n: u32, mut f: impl FnMut()) -> f64 {
    (0..trials)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// Measures on devices `base_ifindex..`; `repeat` walks per trial.
pub fn measure(base_ifindex: u32, repeat: u32) -> Result<TcxReport> {
    let progs: Vec<Fd> = (0..64).map(|_| next_prog()).collect::<Result<_>>()?;
    let grace_period_ns = best_of(5, 20, synchronize_rcu);

    // SCHED_CLS programs run on an skb (these never read it).
    let mut pkt = [0u8; 64];
    let mut skb = SkBuff::new(&mut pkt);
    let single = syscall::prog_get(progs[0])?;
    let prog_run_ns = {
        let mut g = CpuGuard::enter();
        let ctx = skb.as_ctx();
        best_of(5, repeat, || {
            std::hint::black_box(single.run(&mut g, ctx, 0).ok());
        })
    };

    let mut ns_per_run = Vec::new();
    let mut walk_ns_per_run = Vec::new();
    let mut dispatched = true;
    for (k, &n) in COUNTS.iter().enumerate() {
        let ifindex = base_ifindex + k as u32;
        tcx::dev_create(ifindex)?;
        for &fd in &progs[..n] {
            attach(ifindex, fd)?;
        }
        let dev = tcx::dev_get(ifindex)?;
        dispatched &= tcx::dispatched(&dev, Direction::Ingress);
        let mut g = CpuGuard::enter();
        let ctx = skb.as_ctx();
        let ns = best_of(5, repeat, || {
            std::hint::black_box(tcx::run(&dev, Direction::Ingress, &mut g, ctx, 0));
        });
        let walk = best_of(5, repeat, || {
            std::hint::black_box(tcx::run_walk(&dev, Direction::Ingress, &mut g, ctx, 0));
        });
        drop(g);
        ns_per_run.push((n, ns));
        walk_ns_per_run.push((n, walk));
        tcx::dev_remove(ifindex)?;
    }

    let mut attach_ns = Vec::new();
    let mut detach_ns = Vec::new();
    for (k, before) in [0usize, 62].into_iter().enumerate() {
        let ifindex = base_ifindex + 100 + k as u32;
        tcx::dev_create(ifindex)?;
        for &fd in &progs[..before] {
            attach(ifindex, fd)?;
        }
        let last = progs[63];
        let (mut a, mut d) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..10 {
            let t = Instant::now();
            attach(ifindex, last)?;
            a = a.min(t.elapsed().as_nanos() as f64);
            let t = Instant::now();
            detach(ifindex, last)?;
            d = d.min(t.elapsed().as_nanos() as f64);
        }
        attach_ns.push((before, (a - grace_period_ns).max(0.0)));
        detach_ns.push((before + 1, (d - grace_period_ns).max(0.0)));
        tcx::dev_remove(ifindex)?;
    }
    for fd in progs {
        let _ = syscall::close(fd);
    }
    let fit = |rows: &[(usize, f64)]| {
        let xs: Vec<f64> = rows.iter().map(|&(n, _)| n as f64).collect();
        let ys: Vec<f64> = rows.iter().map(|&(_, ns)| ns).collect();
        slope(&xs, &ys)
    };
    Ok(TcxReport {
        ns_per_prog: fit(&ns_per_run),
        walk_ns_per_prog: fit(&walk_ns_per_run),
        dispatched,
        ns_per_run,
        walk_ns_per_run,
        prog_run_ns,
        attach_ns,
        detach_ns,
        grace_period_ns,
    })
}

/// Prints the report; with `json`, the last line is one JSON object.
pub fn print(r: &TcxReport, engine: &str, json: bool, out: &mut dyn Write) -> std::io::Result<()> {
    let how = if r.dispatched { "dispatcher" } else { "walk" };
    writeln!(
        out,
        "tcx ingress runs, engine {engine} ({how}), programs returning TCX_NEXT"
    )?;
    for ((n, ns), (_, walk)) in r.ns_per_run.iter().zip(&r.walk_ns_per_run) {
        writeln!(
            out,
            "  {n:>2} programs: {ns:8.2} ns per run, walked {walk:8.2}"
        )?;
    }
    writeln!(
        out,
        "  slope: {:.2} ns per program (walked: {:.2}); one program alone: {:.2} ns",
        r.ns_per_prog, r.walk_ns_per_prog, r.prog_run_ns
    )?;
    for ((before, a), (_, d)) in r.attach_ns.iter().zip(&r.detach_ns) {
        writeln!(
            out,
            "  with {before:>2} attached: attach {a:.0} ns, detach {d:.0} ns (grace period excluded)"
        )?;
    }
    writeln!(
        out,
        "  grace period (synchronize_rcu, no readers): {:.0} ns",
        r.grace_period_ns
    )?;
    if json {
        let ns = |_: usize, v: f64| v;
        let j = serde_json::json!({
            "engine": engine,
            "dispatched": r.dispatched,
            "ns_per_prog": json_num(r.ns_per_prog),
            "walk_ns_per_prog": json_num(r.walk_ns_per_prog),
            "prog_run_ns": json_num(r.prog_run_ns),
            "ns_per_run": json_map(&r.ns_per_run, ns),
            "walk_ns_per_run": json_map(&r.walk_ns_per_run, ns),
            "attach_ns": json_map(&r.attach_ns, ns),
            "detach_ns": json_map(&r.detach_ns, ns),
            "grace_period_ns": json_num(r.grace_period_ns),
        });
        writeln!(out, "{j}")?;
    }
    Ok(())
}
