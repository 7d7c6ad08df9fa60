//! `kbpf bench map-lookup`: the cost of one `bpf_map_lookup_elem` in a loop of 1000 lookups,
//! the program and the variants of the host-kernel side (`host_bpf::map_bench`, the oracle's
//! `map-bench`), so `scripts/compare-maps` compares like with like:
//!
//! - `array`: an array loaded through the verifier, whose fix-ups (`kbpf::verifier::fixups`,
//!   the kernel's `array_map_gen_lookup`) inline the lookup when a JIT is requested (under the
//!   interpreter it stays a call);
//! - `array-call`: the same array created with `BPF_F_INNER_MAP`, which declines inlining: the
//!   call becomes a direct call of the array's own lookup (the kernel: `array_map_lookup_elem`);
//! - `hash`: a hash map holding keys 0..7, every lookup hits: a direct call of the hash map's
//!   lookup (the kernel's `htab_map_gen_lookup`: `__htab_map_lookup_elem`);
//! - `hash-miss`: the hash map holding keys 8..15 instead, every lookup misses;
//! - `hash-empty`: an empty hash map;
//! - `array-helper`, `hash-helper` (kbpf only): the generic helper call, the program loaded on
//!   the trusted path (no verifier facts, no fix-ups).
//!
//! Each figure is the loop's time minus that of the same loop with the lookup replaced by
//! `r0 = r2`, divided by the 1000 lookups; best of 5 trials.

use super::{best_ns, json_num};
use kbpf::insn::*;
use kbpf::syscall::{self, Fd};
use kbpf::uapi::{MapFlags, MapType, ProgType, alu, func, jmp};
use kbpf::{MapAttr, ProgLoadAttr, Result};
use std::io::Write;

/// Lookups per run.
pub const LOOKUPS: i32 = 1000;
/// Elements in each map (a power of two: the index is the loop counter masked).
pub const ENTRIES: u32 = 8;

/// `sum = 0; for i in 0..n { key = i & 7; v = lookup(map, &key); if v { sum += *v } }`, or
/// with `r0 = r2` (the key's address) in place of the call; `map` is the `ld_imm64` map fd.
pub fn lookup_loop(map: u32, with_call: bool, n: i32) -> Vec<Insn> {
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
        jmp_imm(jmp::JLT, 7, n, -14),
        mov64_reg(0, 6),
        exit(),
    ]);
    p
}

/// A map variant of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapVariant {
    /// The name in reports and JSON (`array-call` …).
    pub name: &'static str,
    /// The map type.
    pub map_type: MapType,
    /// Creation flags.
    pub flags: MapFlags,
    /// The first of the `count` keys the map holds (value = key).
    pub first: u32,
    /// How many keys it holds.
    pub count: u32,
}

impl MapVariant {
    /// The attributes: 4-byte keys, 8-byte values, [`ENTRIES`] entries.
    pub fn attr(&self) -> MapAttr {
        let mut a = MapAttr::new(self.map_type, 4, 8, ENTRIES);
        a.flags = self.flags;
        a
    }

    /// What the loop returns: the sum of the values of keys `0..8` found, 125 times.
    pub fn expected(&self) -> u64 {
        let hits: u64 = (0..ENTRIES)
            .filter(|k| (self.first..self.first + self.count).contains(k))
            .map(u64::from)
            .sum();
        hits * (LOOKUPS as u64 / ENTRIES as u64)
    }
}

/// The variants both sides measure, in report order.
pub const VARIANTS: [MapVariant; 5] = [
    MapVariant {
        name: "array",
        map_type: MapType::Array,
        flags: MapFlags::empty(),
        first: 0,
        count: ENTRIES,
    },
    MapVariant {
        name: "array-call",
        map_type: MapType::Array,
        flags: MapFlags::INNER_MAP,
        first: 0,
        count: ENTRIES,
    },
    MapVariant {
        name: "hash",
        map_type: MapType::Hash,
        flags: MapFlags::empty(),
        first: 0,
        count: ENTRIES,
    },
    MapVariant {
        name: "hash-miss",
        map_type: MapType::Hash,
        flags: MapFlags::empty(),
        first: ENTRIES,
        count: ENTRIES,
    },
    MapVariant {
        name: "hash-empty",
        map_type: MapType::Hash,
        flags: MapFlags::empty(),
        first: 0,
        count: 0,
    },
];

/// Results of one run: `(variant, ns per lookup)`, [`VARIANTS`] first, then kbpf's own
/// `array-helper` and `hash-helper`.
#[derive(Clone, Debug)]
pub struct MapLookupReport {
    /// ns per lookup by variant name.
    pub rows: Vec<(&'static str, f64)>,
}

fn load(insns: &[Insn], trusted: bool) -> Result<Fd> {
    let attr = ProgLoadAttr::new(ProgType::RawBuffer, insns);
    if trusted {
        syscall::prog_load_trusted(&attr)
    } else {
        syscall::prog_load(&attr)
    }
}

fn filled(v: &MapVariant) -> Result<Fd> {
    let m = syscall::map_create(&v.attr())?;
    for i in v.first..v.first + v.count {
        syscall::map_update_elem(m, &i.to_ne_bytes(), &u64::from(i).to_ne_bytes(), 0)?;
    }
    Ok(m)
}

/// Measures every variant; `scale` multiplies the repeat counts (1 = quick).
pub fn measure(scale: u32) -> Result<MapLookupReport> {
    let mut maps = Vec::new();
    let mut progs = Vec::new();
    for v in &VARIANTS {
        let m = filled(v)?;
        maps.push(m);
        progs.push((
            v.name,
            load(&lookup_loop(m, true, LOOKUPS), false)?,
            v.expected(),
        ));
    }
    // The generic helper: the array's and the hash map's lookups on the trusted path.
    for (name, i) in [("array-helper", 0), ("hash-helper", 2)] {
        let p = load(&lookup_loop(maps[i], true, LOOKUPS), true)?;
        progs.push((name, p, VARIANTS[i].expected()));
    }
    let base = load(&lookup_loop(maps[0], false, LOOKUPS), true)?;
    // The loops must compute the expected sums before they are timed.
    for &(_, fd, want) in &progs {
        let r = syscall::prog_test_run(
            fd,
            &mut syscall::TestRun {
                data: &mut [],
                repeat: 1,
                ..Default::default()
            },
        )?;
        if r.retval != want {
            return Err(kbpf::Errno::EINVAL);
        }
    }
    let base_ns = best_ns(base, &[], 200 * scale, 5)?;
    let mut rows = Vec::new();
    for &(name, fd, _) in &progs {
        let ns = best_ns(fd, &[], 200 * scale, 5)?;
        rows.push((name, (ns - base_ns) / LOOKUPS as f64));
    }
    for fd in progs.iter().map(|p| p.1).chain([base]).chain(maps) {
        let _ = syscall::close(fd);
    }
    Ok(MapLookupReport { rows })
}

/// Prints `rows` (ns per lookup by variant) under `title`; with `json`, the last line is one
/// JSON object with `engine` and one `<variant>_ns` field per row (dashes as underscores).
pub fn print_rows(
    rows: &[(&'static str, f64)],
    title: &str,
    engine: &str,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(out, "{title} (ns per lookup)")?;
    for (name, ns) in rows {
        writeln!(out, "  {name:<13} {ns:8.2}")?;
    }
    if json {
        let mut j = serde_json::Map::new();
        j.insert("engine".into(), engine.into());
        for (name, ns) in rows {
            j.insert(format!("{}_ns", name.replace('-', "_")), json_num(*ns));
        }
        writeln!(out, "{}", serde_json::Value::Object(j))?;
    }
    Ok(())
}

/// Prints the report; with `json`, the last line is one JSON object.
pub fn print(
    r: &MapLookupReport,
    engine: &str,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let title = format!("map lookups, engine {engine}");
    print_rows(&r.rows, &title, engine, json, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_sums_count_the_hits() {
        assert_eq!(VARIANTS[0].expected(), 28 * 125);
        assert_eq!(VARIANTS[3].expected(), 0, "keys 8..15: all miss");
        assert_eq!(VARIANTS[4].expected(), 0, "empty");
    }

    #[test]
    fn the_loop_is_the_oracles_18_slots() {
        assert_eq!(lookup_loop(3, true, LOOKUPS).len(), 18);
        assert_eq!(
            lookup_loop(3, false, 7)[15],
            jmp_imm(jmp::JLT, 7, 7, -14),
            "the loop count is the parameter"
        );
    }
}
