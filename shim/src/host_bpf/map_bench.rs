//! The host kernel's `bpf_map_lookup_elem` from JIT'd code, measured as `kbpf bench map-lookup`
//! measures kbpf's (the oracle's `map-bench`, through kbpf's own `bpf(2)` code): the same
//! 18-slot loop of 1000 lookups ([`crate::bench::map_lookup::lookup_loop`]) on the same maps
//! ([`crate::bench::map_lookup::VARIANTS`]: the array the kernel inlines, the array created
//! `BPF_F_INNER_MAP` it calls directly, the hash map hit, missed and empty), loaded as
//! `SCHED_CLS` and run with `BPF_PROG_TEST_RUN` on a 64-byte packet. Trials visit the variants
//! and the baseline (`r0 = r2` for the call) in a shuffled order; per variant, the minimum
//! wall-clock ns per run around the syscall, minus the baseline's, divided by the 1000 lookups
//! (kbpf's formula; the test run's own cost per run cancels). Every program's return value is
//! checked before timing.

use super::sys::{self, OwnedFd};
use crate::bench::map_lookup::{LOOKUPS, VARIANTS, lookup_loop};
use kbpf::uapi::ProgType;
use std::time::Instant;

fn map_update(map: &OwnedFd, key: u32, value: u64) -> Result<(), String> {
    let mut attr = [0u64; 16];
    attr[0] = map.0 as u64;
    attr[1] = &key as *const u32 as u64;
    attr[2] = &value as *const u64 as u64;
    sys::bpf(sys::BPF_MAP_UPDATE_ELEM, &mut attr)
        .map(drop)
        .map_err(|e| format!("map update: errno {e}"))
}

fn load(map: &OwnedFd, with_call: bool) -> Result<OwnedFd, String> {
    let insns = lookup_loop(map.0 as u32, with_call, LOOKUPS);
    let fd = sys::prog_load(ProgType::SchedCls as u32, &insns, 0, None)
        .map_err(|e| format!("BPF_PROG_LOAD: errno {e}"))?;
    if sys::prog_info(&fd, false)
        .map_err(|e| format!("prog info: errno {e}"))?
        .jited_len
        == 0
    {
        return Err("the host kernel did not JIT the program (bpf_jit_enable is 0?)".into());
    }
    Ok(fd)
}

/// Wall ns per run of `repeat` runs, and the return value.
fn run(prog: &OwnedFd, repeat: u32) -> Result<(f64, u32), String> {
    let mut pkt = [0u8; 64];
    let t = Instant::now();
    let r = sys::test_run(prog, &mut pkt, repeat)
        .map_err(|e| format!("BPF_PROG_TEST_RUN: errno {e}"))?;
    Ok((t.elapsed().as_nanos() as f64 / repeat as f64, r.retval))
}

/// Measures every variant: `(name, ns per lookup)`; `repeat` runs per measurement, `trials`
/// rounds. An error says why the host can't run it.
pub fn measure(repeat: u32, trials: usize) -> Result<Vec<(&'static str, f64)>, String> {
    super::tailcall::pin();
    let mut maps = Vec::new();
    for v in &VARIANTS {
        let m = sys::map_create(&v.attr()).map_err(|e| format!("map create: errno {e}"))?;
        for k in v.first..v.first + v.count {
            map_update(&m, k, u64::from(k))?;
        }
        maps.push(m);
    }
    let mut progs = vec![load(&maps[0], false)?];
    for m in &maps {
        progs.push(load(m, true)?);
    }
    let want: Vec<u64> = std::iter::once(28 * (LOOKUPS as u64 / 8))
        .chain(VARIANTS.iter().map(|v| v.expected()))
        .collect();
    for (p, &w) in progs.iter().zip(&want) {
        let got = run(p, 1)?.1;
        if u64::from(got) != w {
            return Err(format!("a lookup loop returned {got}, not {w}"));
        }
    }
    let mut best = vec![f64::INFINITY; progs.len()];
    let mut order: Vec<usize> = (0..progs.len()).collect();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..trials {
        for i in (1..order.len()).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        for &i in &order {
            run(&progs[i], repeat / 10 + 1)?;
            best[i] = best[i].min(run(&progs[i], repeat)?.0);
        }
    }
    Ok(VARIANTS
        .iter()
        .zip(&best[1..])
        .map(|(v, &ns)| (v.name, (ns - best[0]) / LOOKUPS as f64))
        .collect())
}
