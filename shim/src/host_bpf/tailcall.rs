//! The host Linux kernel's tail-call cost, measured the way `kbpf bench tailcall` measures
//! kbpf's, through kbpf's own `bpf(2)` calls ([`super::sys`]): chains of `SCHED_CLS` programs
//! linked through a `BPF_MAP_TYPE_PROG_ARRAY`, run with `BPF_PROG_TEST_RUN` on a 64-byte
//! packet with a zeroed `__sk_buff` as `ctx_in` — the oracle's `tailcall-bench`, program for
//! program and call for call. Program k bumps a counter in `skb->cb[0]` and tail-calls slot k+1 (key as an
//! immediate: the x86 JIT patches a direct jump; or from the counter: the indirect sequence);
//! when the tail call does not happen it returns the counter, so r0 is the number of programs
//! that ran. Chain lengths are visited in interleaved rounds; ns per run is the median of the
//! kernel-reported durations; the slope over the complete chains is ns per tail call. A
//! self-recursive program gives the limit. A program the kernel did not JIT (`jited_prog_len`
//! 0) is an error: the figures would be its interpreter's. Linux counterpart: none (the
//! measurement of `bpf_tail_call` in `kernel/bpf/core.c` / `arch/x86/net/bpf_jit_comp.c`).
//!
//! On an AMD Zen 4 host with `spectre_v2: Retpolines` and SRSO "Safe RET" the kernel's hop
//! costs several times what it does on an Intel host with eIBRS, for its code, not this
//! tool's: the register-key hop jumps through `__x86_indirect_thunk_rcx`, and the constant-key
//! hop counts through the `tcc_ptr` stack slot with `add qword [rax], 1` and reads it back
//! with `pop rax`, two base registers for one stack word (see `BENCHMARKS.md`).

use crate::bench::{TailcallReport, slope};
use crate::host_bpf::sys::{self, OwnedFd};
use crate::progs::ChainKey;
use kbpf::insn::{
    Insn, Size, alu64_imm, exit, ld_map_fd, ldx_mem, mov64_imm, mov64_reg, stx_mem, tail_call,
};
use kbpf::map::MapAttr;
use kbpf::uapi::alu;
use kbpf::uapi::{MapType, ProgType};

/// Chain lengths measured (as `kbpf bench tailcall`).
pub use crate::bench::tailcall::LENGTHS;

/// `sizeof(struct __sk_buff)` on Linux 6.18: the zeroed `ctx_in` every run passes.
const SK_BUFF: usize = 192;
/// `offsetof(struct __sk_buff, cb[0])` and `cb[1]`.
const CB0: i16 = 48;
const CB1: i16 = 52;
/// Programs loaded per chain: more than the limit, so the limit is what stops a long chain.
const PROGS: u32 = 41;

/// Program `k` of a chain through `map` (or, with `self_loop`, a program that tail-calls
/// slot 0 — itself — until the limit stops it).
fn prog(k: u32, key: ChainKey, map: &OwnedFd, self_loop: bool) -> Vec<Insn> {
    let first = k == 0 && !self_loop;
    let mut p = vec![
        mov64_reg(6, 1),
        // Program 0 starts the count from cb[1] (always 0), so that every repeat restarts it.
        ldx_mem(Size::W, 3, 6, if first { CB1 } else { CB0 }),
        alu64_imm(alu::ADD, 3, 1),
        stx_mem(Size::W, 6, 3, CB0),
    ];
    match (key, self_loop) {
        (ChainKey::Const, false) => p.push(mov64_imm(3, k as i32 + 1)),
        (ChainKey::Const, true) => p.push(mov64_imm(3, 0)),
        // The verifier only knows "some u32 + 1" (or cb[1]); at run time it is k + 1 (or 0).
        (ChainKey::Reg, false) => {}
        (ChainKey::Reg, true) => p.push(ldx_mem(Size::W, 3, 6, CB1)),
    }
    p.push(mov64_reg(1, 6));
    p.extend(ld_map_fd(2, map.0 as u32));
    p.extend([tail_call(), ldx_mem(Size::W, 0, 6, CB0), exit()]);
    p
}

/// Loads a `SCHED_CLS` program and checks that the kernel JIT'd it. A refused program is
/// loaded again with the verifier log on, to say why (a log on every load could fill up on a
/// long walk: `ENOSPC`).
pub(crate) fn load(insns: &[Insn]) -> Result<OwnedFd, String> {
    let fd = sys::prog_load(ProgType::SchedCls as u32, insns, 0, None).map_err(|e| {
        let mut log = vec![0u8; 1 << 20];
        let _ = sys::prog_load(ProgType::SchedCls as u32, insns, 0, Some(&mut log));
        let end = log.iter().position(|&b| b == 0).unwrap_or(0);
        let text = String::from_utf8_lossy(&log[end.saturating_sub(4000)..end]);
        format!("BPF_PROG_LOAD: errno {e}: {text}")
    })?;
    let info = sys::prog_info(&fd, false).map_err(|e| format!("prog info: errno {e}"))?;
    if info.jited_len == 0 {
        return Err("the host kernel did not JIT the program (bpf_jit_enable is 0?)".into());
    }
    Ok(fd)
}

fn prog_array(slots: u32) -> Result<OwnedFd, String> {
    sys::map_create(&MapAttr::new(MapType::ProgArray, 4, 4, slots))
        .map_err(|e| format!("prog_array: errno {e}"))
}

/// Slots 1..=len hold programs 1..=len; the rest are empty.
fn set_chain(map: &OwnedFd, progs: &[OwnedFd], len: u32) -> Result<(), String> {
    for k in 1..PROGS {
        if k <= len {
            sys::map_update_u32(map, k, progs[k as usize].0 as u32)
                .map_err(|e| format!("prog_array update: errno {e}"))?;
        } else {
            // ENOENT for an empty slot is fine.
            let _ = sys::map_delete_u32(map, k);
        }
    }
    Ok(())
}

fn run(prog: &OwnedFd, repeat: u32) -> Result<sys::TestRunOut, String> {
    let mut pkt = [0u8; 64];
    let ctx = [0u8; SK_BUFF];
    sys::test_run_ctx(prog, &mut pkt, Some(&ctx), repeat)
        .map_err(|e| format!("BPF_PROG_TEST_RUN: errno {e}"))
}

/// Pins the calling thread to CPU 0, as the oracle did (best effort).
pub(crate) fn pin() {
    // SAFETY: a zeroed `cpu_set_t` is a valid empty set; `CPU_SET` writes inside it and
    // `sched_setaffinity` reads `size_of` bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The limit: a self-recursive program run once; tail calls that happened.
fn limit(key: ChainKey) -> Result<u64, String> {
    let map = prog_array(1)?;
    let p = load(&prog(0, key, &map, true))?;
    sys::map_update_u32(&map, 0, p.0 as u32).map_err(|e| format!("update: errno {e}"))?;
    let ran = run(&p, 1);
    // Break the program <-> map cycle so both are freed.
    let _ = sys::map_delete_u32(&map, 0);
    Ok(u64::from(ran?.retval).saturating_sub(1))
}

/// Measures the host kernel's chains with `key`: `repeat` runs per test run, `trials` rounds.
/// An error says why the host can't run them (no root, no BPF).
pub fn measure(key: ChainKey, repeat: u32, trials: usize) -> Result<TailcallReport, String> {
    pin();
    let max_tail_calls = limit(key)?;
    let map = prog_array(64)?;
    let progs = (0..PROGS)
        .map(|k| load(&prog(k, key, &map, false)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut durations = vec![Vec::with_capacity(trials); LENGTHS.len()];
    let mut complete = vec![true; LENGTHS.len()];
    for _ in 0..trials {
        for (i, &len) in LENGTHS.iter().enumerate() {
            set_chain(&map, &progs, len)?;
            run(&progs[0], repeat / 20 + 1)?;
            let r = run(&progs[0], repeat)?;
            complete[i] &= r.retval == len + 1;
            durations[i].push(r.duration as f64);
        }
    }
    set_chain(&map, &progs, 0)?;
    let ns_per_run: Vec<(u32, f64)> = LENGTHS
        .iter()
        .zip(&mut durations)
        .map(|(&len, d)| {
            d.sort_by(f64::total_cmp);
            (len, d[d.len() / 2])
        })
        .collect();
    let (xs, ys): (Vec<f64>, Vec<f64>) = ns_per_run
        .iter()
        .zip(&complete)
        .filter(|(_, c)| **c)
        .map(|(&(len, ns), _)| (len as f64, ns))
        .unzip();
    Ok(TailcallReport {
        ns_per_tail_call: slope(&xs, &ys),
        max_tail_calls,
        ns_per_run,
    })
}
