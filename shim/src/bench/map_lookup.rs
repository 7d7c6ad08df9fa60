//! `kbpf bench map-lookup`: the cost of one `bpf_map_lookup_elem` in a loop of 1000 lookups,
//! for an array map loaded through the verifier — whose fix-ups (`kbpf::verifier::fixups`, the
//! kernel's `array_map_gen_lookup`) inline the lookup when a JIT is requested, so under the
//! interpreter it stays a call — the same array through the helper call (the program loaded
//! on the trusted path, which skips the fix-ups), and a hash map (always a call). Each figure is the loop's time minus that of the same loop with the
//! lookup replaced by `r0 = r2`, divided by the 1000 lookups.

use super::{best_ns, json_num};
use kbpf::insn::*;
use kbpf::syscall::{self, Fd};
use kbpf::uapi::{MapType, ProgType, alu, func, jmp};
use kbpf::{MapAttr, ProgLoadAttr, Result};
use std::io::Write;

/// Lookups per run.
pub const LOOKUPS: i32 = 1000;
/// Elements in each map (a power of two: the index is the loop counter masked).
const ENTRIES: u32 = 8;

/// `sum = 0; for i in 0..1000 { key = i & 7; v = lookup(map, &key); if v { sum += *v } }`,
/// or with `r0 = r2` (the key's address) in place of the call.
pub fn lookup_loop(map: Fd, with_call: bool) -> Vec<Insn> {
    let mut p = vec![
        mov64_imm(6, 0),
        mov64_imm(7, 0),
        mov64_reg(1, 7),
        alu64_imm(alu::AND, 1, ENTRIES as i32 - 1),
        stx_mem(Size::DW, 10, 1, -8),
        mov64_reg(2, 10),
        alu64_imm(alu::ADD, 2, -8),
    ];
    p.extend(ld_map_fd(1, map));
    p.extend([
        if with_call {
            call_helper(func::MAP_LOOKUP_ELEM)
        } else {
            mov64_reg(0, 2)
        },
        jmp_imm(jmp::JEQ, 0, 0, 2),
        ldx_mem(Size::DW, 0, 0, 0),
        alu64_reg(alu::ADD, 6, 0),
        // Both directions reach the counter with the same R0: the verifier (no liveness yet)
        // can prune the path that skipped the load.
        mov64_imm(0, 0),
        alu64_imm(alu::ADD, 7, 1),
        jmp_imm(jmp::JLT, 7, LOOKUPS, -14),
        mov64_reg(0, 6),
        exit(),
    ]);
    p
}

/// Results of one run, in ns per lookup.
#[derive(Clone, Copy, Debug)]
pub struct MapLookupReport {
    /// Array map, verified load (the lookup inlined when JIT'd).
    pub array_inline_ns: f64,
    /// Array map, helper call.
    pub array_call_ns: f64,
    /// Hash map, helper call.
    pub hash_call_ns: f64,
}

fn load(insns: &[Insn], trusted: bool) -> Result<Fd> {
    let attr = ProgLoadAttr::new(ProgType::RawBuffer, insns);
    if trusted {
        syscall::prog_load_trusted(&attr)
    } else {
        syscall::prog_load(&attr)
    }
}

/// A map of `t` with 8-byte values, element `i` holding `i`.
fn filled(t: MapType) -> Result<Fd> {
    let m = syscall::map_create(&MapAttr::new(t, 4, 8, ENTRIES))?;
    for i in 0..ENTRIES {
        syscall::map_update_elem(m, &i.to_ne_bytes(), &u64::from(i).to_ne_bytes(), 0)?;
    }
    Ok(m)
}

/// Measures the three loops; `scale` multiplies the repeat counts (1 = quick).
pub fn measure(scale: u32) -> Result<MapLookupReport> {
    let (array, hash) = (filled(MapType::Array)?, filled(MapType::Hash)?);
    let progs = [
        load(&lookup_loop(array, false), true)?,
        load(&lookup_loop(array, true), false)?,
        load(&lookup_loop(array, true), true)?,
        load(&lookup_loop(hash, true), false)?,
    ];
    // The loops must compute the same sum (0 + 1 + … + 7, 125 times) before they are timed.
    for &fd in &progs[1..] {
        let r = syscall::prog_test_run(
            fd,
            &mut syscall::TestRun {
                data: &mut [],
                repeat: 1,
                ..Default::default()
            },
        )?;
        if r.retval != 28 * (LOOKUPS as u64 / 8) {
            return Err(kbpf::Errno::EINVAL);
        }
    }
    let mut ns = [0f64; 4];
    for (t, &fd) in ns.iter_mut().zip(&progs) {
        *t = best_ns(fd, &[], 200 * scale, 5)?;
    }
    for fd in progs.into_iter().chain([array, hash]) {
        let _ = syscall::close(fd);
    }
    let per = |t: f64| (t - ns[0]) / LOOKUPS as f64;
    Ok(MapLookupReport {
        array_inline_ns: per(ns[1]),
        array_call_ns: per(ns[2]),
        hash_call_ns: per(ns[3]),
    })
}

/// Prints the report; with `json`, the last line is one JSON object.
pub fn print(
    r: &MapLookupReport,
    engine: &str,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(out, "map lookups, engine {engine} (ns per lookup)")?;
    let how = if engine == "jit" {
        "inlined"
    } else {
        "verified"
    };
    writeln!(
        out,
        "  array, {how}:{:>w$.2}",
        r.array_inline_ns,
        w = 11 - how.len() + 4
    )?;
    writeln!(out, "  array, helper:     {:.2}", r.array_call_ns)?;
    writeln!(out, "  hash, helper:      {:.2}", r.hash_call_ns)?;
    if json {
        let j = serde_json::json!({
            "engine": engine,
            "array_inline_ns": json_num(r.array_inline_ns),
            "array_call_ns": json_num(r.array_call_ns),
            "hash_call_ns": json_num(r.hash_call_ns),
        });
        writeln!(out, "{j}")?;
    }
    Ok(())
}
