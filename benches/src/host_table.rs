//! The side-by-side table of `BENCHMARKS.md`: the last JSON line of each `scripts/compare-*`
//! (host kernel and kbpf in interleaved rounds, medians), one row per fast path, with the
//! machine and the host kernel's mitigations the figures belong to.

use std::fmt::Write as _;

/// One row: what is measured, the script and the JSON fields of the host's and kbpf's medians.
struct Row {
    path: &'static str,
    script: &'static str,
    kernel: &'static str,
    kbpf: &'static str,
    unit: &'static str,
    target: &'static str,
}

const ROWS: [Row; 11] = [
    Row {
        path: "JIT tail call, constant key (per hop, body included)",
        script: "compare-tailcall",
        kernel: "kernel_const",
        kbpf: "kbpf_const",
        unit: "ns",
        target: "",
    },
    Row {
        path: "JIT tail call, register key (per hop, body included)",
        script: "compare-tailcall",
        kernel: "kernel_reg",
        kbpf: "kbpf_reg",
        unit: "ns",
        target: "≤ 0.6×",
    },
    Row {
        path: "tcx, cost per attached program (kbpf: dispatcher)",
        script: "compare-tcx",
        kernel: "kernel_ns_per_prog",
        kbpf: "kbpf_ns_per_prog",
        unit: "ns",
        target: "≤ 0.5×",
    },
    Row {
        path: "tcx, cost per attached program (kbpf: walked)",
        script: "compare-tcx",
        kernel: "kernel_ns_per_prog",
        kbpf: "kbpf_walk_ns_per_prog",
        unit: "ns",
        target: "",
    },
    Row {
        path: "JIT helper call (`bpf_csum_diff`, SCHED_CLS)",
        script: "compare-helper",
        kernel: "kernel",
        kbpf: "kbpf",
        unit: "ns",
        target: "≤ 0.8 ns",
    },
    Row {
        path: "JIT invocation (`r0 = 7; exit`, test-run loop)",
        script: "compare-invoke",
        kernel: "kernel",
        kbpf: "kbpf",
        unit: "ns",
        target: "≤ 1.5 ns",
    },
    Row {
        path: "hash map lookup, hit (JIT'd)",
        script: "compare-maps",
        kernel: "kernel_hash",
        kbpf: "kbpf_hash",
        unit: "ns",
        target: "≤ 0.7×",
    },
    Row {
        path: "hash map lookup, miss",
        script: "compare-maps",
        kernel: "kernel_hash_miss",
        kbpf: "kbpf_hash_miss",
        unit: "ns",
        target: "",
    },
    Row {
        path: "hash map lookup, empty map",
        script: "compare-maps",
        kernel: "kernel_hash_empty",
        kbpf: "kbpf_hash_empty",
        unit: "ns",
        target: "",
    },
    Row {
        path: "array lookup, inlined",
        script: "compare-maps",
        kernel: "kernel_array",
        kbpf: "kbpf_array",
        unit: "ns",
        target: "",
    },
    Row {
        path: "array lookup through a call (`BPF_F_INNER_MAP`)",
        script: "compare-maps",
        kernel: "kernel_array_call",
        kbpf: "kbpf_array_call",
        unit: "ns",
        target: "≤ 0.8×",
    },
];

/// The civil date (UTC) of a Unix time in seconds.
pub fn utc_date(secs: u64) -> String {
    // Days to (year, month, day): Howard Hinnant's civil_from_days.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The `compare` lines: `script-name {json}` each.
fn parse(lines: &str) -> Vec<(&str, serde_json::Value)> {
    lines
        .lines()
        .filter_map(|l| {
            let (name, json) = l.split_once(' ')?;
            Some((name, serde_json::from_str(json).ok()?))
        })
        .collect()
}

/// The section: the table of the scripts that ran (`compare` as `bench-peers` collected it),
/// the date and the machine, then `notes` verbatim.
pub fn section(compare: &str, date: &str, notes: &str) -> String {
    let runs = parse(compare);
    let mut md = String::from("\n## Against the host kernel\n\n");
    if runs.is_empty() {
        md.push_str(
            "Not measured in this run: the `scripts/compare-*` need root and the host kernel's \
             BPF JIT (each says why when it cannot run).\n",
        );
    } else {
        let machine = runs.iter().find_map(|(_, j)| j.get("machine"));
        let field = |m: Option<&serde_json::Value>, k: &str| {
            m.and_then(|m| m.get(k))
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_string()
        };
        let _ = writeln!(
            md,
            "Measured {date} on {} (Linux {}; `spectre_v2`: {}; `spec_rstack_overflow`: {}), \
             host kernel and kbpf in interleaved rounds by the `scripts/compare-*` named per \
             row, medians; each script's last line is its JSON. kbpf ÷ host below 1 means kbpf \
             is faster. Targets are the issue's (ratios side by side, or a bound).\n",
            field(machine, "cpu"),
            field(machine, "kernel"),
            field(machine, "spectre_v2"),
            field(machine, "srso"),
        );
        md.push_str("| path | host kernel | kbpf | kbpf ÷ host | target | script |\n");
        md.push_str("|---|---|---|---|---|---|\n");
        for r in &ROWS {
            let Some((_, j)) = runs.iter().find(|(n, _)| *n == r.script) else {
                continue;
            };
            let num = |k: &str| j.get(k).and_then(serde_json::Value::as_f64);
            let (Some(k), Some(b)) = (num(r.kernel), num(r.kbpf)) else {
                continue;
            };
            let _ = writeln!(
                md,
                "| {} | {k:.2} {u} | {b:.2} {u} | {:.3} | {} | `scripts/{}` |",
                r.path,
                b / k,
                r.target,
                r.script,
                u = r.unit
            );
        }
        md.push_str("\nThe last JSON lines:\n\n```text\n");
        for (name, j) in &runs {
            let _ = writeln!(md, "{name} {j}");
        }
        md.push_str("```\n");
    }
    if !notes.trim().is_empty() {
        md.push('\n');
        md.push_str(notes.trim_end());
        md.push('\n');
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_798_761_600), "2027-01-01");
    }

    #[test]
    fn rows_come_from_the_scripts_that_ran() {
        let lines =
            "compare-maps {\"kernel_hash\":10.0,\"kbpf_hash\":2.5,\"machine\":{\"cpu\":\"X\"}}\n";
        let md = section(lines, "2026-12-08", "notes here");
        assert!(md.contains("| hash map lookup, hit (JIT'd) | 10.00 ns | 2.50 ns | 0.250 |"));
        assert!(!md.contains("tail call"), "no row without its script");
        assert!(md.contains("on X (Linux ?;"));
        assert!(md.ends_with("notes here\n"));
        assert!(section("", "d", "").contains("Not measured"));
    }
}
