//! `bench-report CRITERION_DIR OUT_MD SVG_DIR [COMPARE_LINES [NOTES_MD]]`: turns the `peers`
//! bench's criterion estimates (`CRITERION_DIR/peers_*/*/new/estimates.json`) into
//! `BENCHMARKS.md` (a table per program: kbpf interpreter and JIT, rbpf interpreter and JIT, and
//! the ratios) and one SVG bar chart per program (log scale), plus the side-by-side table with the
//! host kernel from the `scripts/compare-*` last lines in COMPARE_LINES (`script {json}` per line,
//! [`kbpf_benches::host_table`]) and the notes in NOTES_MD. Run by `scripts/bench-peers`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const ENGINES: [&str; 4] = ["kbpf_interp", "kbpf_jit", "rbpf_interp", "rbpf_jit"];

/// The mean and its 95% interval, in ns.
fn estimate(dir: &Path) -> Option<(f64, f64, f64)> {
    let text = std::fs::read_to_string(dir.join("new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let m = &v["mean"];
    Some((
        m["point_estimate"].as_f64()?,
        m["confidence_interval"]["lower_bound"].as_f64()?,
        m["confidence_interval"]["upper_bound"].as_f64()?,
    ))
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.2} ns")
    }
}

/// A horizontal bar chart on a log scale.
fn svg(title: &str, rows: &[(&str, f64)]) -> String {
    let (w, bar, gap, left) = (640.0, 26.0, 10.0, 120.0);
    let h = 50.0 + rows.len() as f64 * (bar + gap);
    let max = rows
        .iter()
        .map(|r| r.1)
        .fold(1.0f64, f64::max)
        .log10()
        .ceil();
    let min = rows
        .iter()
        .map(|r| r.1)
        .fold(f64::MAX, f64::min)
        .log10()
        .floor()
        .min(0.0);
    let x = |ns: f64| left + (ns.log10() - min) / (max - min).max(1.0) * (w - left - 110.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"13\">\n<rect width=\"100%\" height=\"100%\" \
         fill=\"white\"/>\n<text x=\"10\" y=\"22\" font-size=\"15\">{title} (mean per run, log \
         scale)</text>\n"
    );
    for (i, (name, ns)) in rows.iter().enumerate() {
        let y = 40.0 + i as f64 * (bar + gap);
        let color = if name.starts_with("kbpf") {
            "#2b7bb9"
        } else {
            "#c0504d"
        };
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"{}\">{name}</text><rect x=\"{left}\" y=\"{y}\" width=\"{:.1}\" \
             height=\"{bar}\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{}\">{}</text>",
            y + 18.0,
            (x(*ns) - left).max(1.0),
            x(*ns) + 6.0,
            y + 18.0,
            fmt_ns(*ns)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [crit, out_md, svg_dir, rest @ ..] = args.as_slice() else {
        eprintln!("usage: bench-report CRITERION_DIR OUT_MD SVG_DIR [COMPARE_LINES [NOTES_MD]]");
        std::process::exit(2);
    };
    // COMPARE_LINES must be readable when given; NOTES_MD may be absent (no notes yet).
    let compare = rest
        .first()
        .map(|p| std::fs::read_to_string(p).expect("readable COMPARE_LINES"))
        .unwrap_or_default();
    let notes = rest
        .get(1)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let mut groups: Vec<String> = std::fs::read_dir(crit)
        .expect("criterion directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("peers_"))
        .collect();
    groups.sort();
    std::fs::create_dir_all(svg_dir).expect("svg directory");
    let mut md = String::from(
        "# Benchmarks\n\nRegenerate with `scripts/bench-peers` (criterion, then `bench-report`). \
         Figures from this project's 2-core machine; each is criterion's mean per run with its \
         95% interval. Programs (`benches/benches/peers.rs`): the 3003-instruction loop, `r0 = \
         7; exit` (the cost of one invocation), 64 one-byte loads summed from a 64-byte \
         buffer, and 1000 calls of a helper that returns its argument next to the same loop \
         with `r0 = r1` in place of the call (the difference over 1000 is one helper call). \
         kbpf runs a verified raw-buffer program through `Prog::run`; rbpf (crate \
         0.4, dev-dependency of the benches only) runs the same bytes through `EbpfVmRaw`, \
         whose interpreter checks every memory access at run time. This VM's speed drifts (by up \
         to 2x over minutes, and other jobs share its 2 cores): compare the engines within one \
         table, not figures across runs.\n",
    );
    for g in &groups {
        let name = g.trim_start_matches("peers_");
        let rows: Vec<(&str, (f64, f64, f64))> = ENGINES
            .iter()
            .filter_map(|e| Some((*e, estimate(&Path::new(crit).join(g).join(e))?)))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "\n## {name}\n\n| engine | mean | 95% interval |\n|---|---|---|"
        );
        for (e, (m, lo, hi)) in &rows {
            let _ = writeln!(
                md,
                "| {e} | {} | {} – {} |",
                fmt_ns(*m),
                fmt_ns(*lo),
                fmt_ns(*hi)
            );
        }
        let get = |e: &str| rows.iter().find(|r| r.0 == e).map(|r| r.1.0);
        if let (Some(ki), Some(kj), Some(ri), Some(rj)) = (
            get("kbpf_interp"),
            get("kbpf_jit"),
            get("rbpf_interp"),
            get("rbpf_jit"),
        ) {
            let _ = writeln!(
                md,
                "\nrbpf / kbpf: interpreter {:.1}x, JIT {:.1}x.",
                ri / ki,
                rj / kj
            );
        }
        let file = format!("peers_{name}.svg");
        let bars: Vec<(&str, f64)> = rows.iter().map(|(e, (m, _, _))| (*e, *m)).collect();
        std::fs::write(Path::new(svg_dir).join(&file), svg(name, &bars)).expect("write svg");
        let rel = Path::new(svg_dir).join(&file);
        let _ = writeln!(md, "\n![{name}]({})", rel.display());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    md.push_str(&kbpf_benches::host_table::section(
        &compare,
        &kbpf_benches::host_table::utc_date(now),
        &notes,
    ));
    std::fs::write(out_md, md).expect("write markdown");
}
