//! `kbpf bench ct`: the cost of `bpf_xdp_ct_lookup` + `bpf_ct_release` from an XDP program,
//! measured as `shared/oracle/ct_bench.c` measures the host kernel's (RESULTS.md §4), so that
//! `scripts/compare-ct` can put the two side by side.
//!
//! A fill program inserts tuples `10.0.0.1+(i>>16):(i&0xffff) -> 10.1.0.1:80` (alloc, timeout,
//! insert, release; run with `repeat` = N). Per table size, six programs run in interleaved
//! trials: a baseline that only builds the tuple and options, a lookup of an inserted tuple
//! (hit) and one of a tuple never inserted (miss), each with the same tuple every run
//! (*fixed*: the entry stays in cache) and with a different one each run (*rotating*: the
//! index advances by a stride coprime with the table size — cold lookups). A lookup's cost is
//! the program's median ns per run minus its baseline's. Then the fixed and rotating hits run
//! on two threads at once (one program and state map each).
//!
//! The measuring code is generic over a [`CtRunner`]: kbpf ([`KbpfRunner`]) or the host kernel
//! (`host_bpf::ct`), so both sides run the same programs the same way.

use super::json_num;
use crate::ct::progs::{BENCH_DADDR, BENCH_DADDR_MISS, BenchKind, KfuncIds, bench, fill, state};
use std::io::Write;

/// Where programs run: loading, running and the state map.
pub trait CtRunner {
    /// The kfunc ids programs call.
    fn ids(&self) -> KfuncIds;
    /// The handle programs name state map `i` (0 or 1) by in `lddw map_fd`.
    fn state_map(&self, i: usize) -> u32;
    /// Loads an XDP program; its handle.
    fn load(&mut self, text: &str) -> Result<u32, String>;
    /// Runs program `prog` `repeat` times: R0 of the last run and the ns per run.
    fn run(&mut self, prog: u32, repeat: u32) -> Result<(u32, f64), String>;
    /// Runs two programs at once on two threads, `repeat` times each: their ns per run.
    fn run_pair(&mut self, progs: [u32; 2], repeat: u32) -> Result<[f64; 2], String>;
    /// State map `i`'s value.
    fn read_state(&mut self, i: usize) -> Result<Vec<u8>, String>;
    /// Writes state map `i`'s value.
    fn write_state(&mut self, i: usize, v: &[u8]) -> Result<(), String>;
    /// Unloads a program.
    fn unload(&mut self, prog: u32);
}

/// One table size's medians (ns per run).
#[derive(Clone, Copy, Debug, Default)]
pub struct SizeReport {
    /// Entries in the table.
    pub entries: u32,
    /// Fixed tuple: baseline, hit, miss.
    pub fixed: [f64; 3],
    /// Rotating tuple: baseline, hit, miss.
    pub rotating: [f64; 3],
    /// Two threads at once: the fixed hit and the rotating hit, minus the one-thread baselines.
    pub pair: [f64; 2],
    /// ns per inserted entry while filling up to this size (0 if nothing was inserted).
    pub fill_ns: f64,
    /// The rotating programs' stride.
    pub stride: u32,
}

impl SizeReport {
    /// Lookup + release of a cached, present entry.
    pub fn hit(&self) -> f64 {
        self.fixed[1] - self.fixed[0]
    }
    /// Lookup of an absent tuple.
    pub fn miss(&self) -> f64 {
        self.fixed[2] - self.fixed[0]
    }
    /// Lookup + release of a different present entry each run.
    pub fn cold(&self) -> f64 {
        self.rotating[1] - self.rotating[0]
    }
    /// Lookup of a different absent tuple each run.
    pub fn cold_miss(&self) -> f64 {
        self.rotating[2] - self.rotating[0]
    }
}

/// Options.
#[derive(Clone, Debug)]
pub struct CtBenchOpts {
    /// Table sizes, ascending (the table grows from one to the next).
    pub sizes: Vec<u32>,
    /// Runs per timed test run.
    pub repeat: u32,
    /// Interleaved trials per program (the median is reported).
    pub trials: usize,
    /// Timeout of the inserted entries, ms.
    pub timeout_ms: u32,
}

impl Default for CtBenchOpts {
    fn default() -> Self {
        CtBenchOpts {
            sizes: vec![1_000, 100_000, 1_000_000],
            repeat: 200_000,
            trials: 5,
            timeout_ms: 3_600_000,
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// `ct_bench.c`'s stride: 7919 mod N, moved up until coprime with N.
pub fn stride(n: u32) -> u32 {
    let mut s = 7919 % n;
    while s == 0 || gcd(s, n) != 1 {
        s = (s + 1) % n;
    }
    s
}

fn u32_at(v: &[u8], off: i32) -> u32 {
    let o = off as usize;
    u32::from_ne_bytes(v[o..o + 4].try_into().expect("4 bytes"))
}

/// Fills the table up to `n` entries (from `have`) with the fill program `prog`; ns per
/// inserted entry.
pub fn fill_to<R: CtRunner>(r: &mut R, prog: u32, have: u32, n: u32) -> Result<f64, String> {
    if n <= have {
        return Ok(0.0);
    }
    let mut left = n - have;
    let mut ns = 0.0;
    while left > 0 {
        let chunk = left.min(1_000_000);
        let (_, per) = r.run(prog, chunk)?;
        ns += per * chunk as f64;
        left -= chunk;
    }
    let s = r.read_state(0)?;
    let (ok, fa, fi) = (
        u32_at(&s, state::OK),
        u32_at(&s, state::FAIL_ALLOC),
        u32_at(&s, state::FAIL_INSERT),
    );
    if ok != n || fa != 0 || fi != 0 {
        return Err(format!(
            "fill to {n}: inserted {ok}, allocation failed {fa} times (last error {}), insertion {fi}",
            u32_at(&s, state::ERR) as i32
        ));
    }
    Ok(ns / (n - have) as f64)
}

/// Runs the benchmark on `r`.
pub fn measure<R: CtRunner>(r: &mut R, o: &CtBenchOpts) -> Result<Vec<SizeReport>, String> {
    let k = r.ids();
    let fill_prog = r.load(&fill(&k, r.state_map(0), o.timeout_ms))?;
    let mut out = Vec::new();
    let mut have = 0;
    for &n in &o.sizes {
        let fill_ns = fill_to(r, fill_prog, have, n)?;
        have = have.max(n);
        let st = stride(n);
        let hit = n / 2;
        let m = r.state_map(0);
        let texts = [
            bench(&k, BenchKind::Base, BENCH_DADDR, hit, None, m),
            bench(&k, BenchKind::Lookup, BENCH_DADDR, hit, None, m),
            bench(&k, BenchKind::Lookup, BENCH_DADDR_MISS, hit, None, m),
            bench(&k, BenchKind::Base, BENCH_DADDR, 0, Some((n, st)), m),
            bench(&k, BenchKind::Lookup, BENCH_DADDR, 0, Some((n, st)), m),
            bench(&k, BenchKind::Lookup, BENCH_DADDR_MISS, 0, Some((n, st)), m),
        ];
        let progs = texts
            .iter()
            .map(|t| r.load(t))
            .collect::<Result<Vec<_>, _>>()?;
        let want = [2, 2, 1, 2, 2, 1];
        let mut samples = vec![Vec::new(); 6];
        for _ in 0..o.trials {
            for (i, &p) in progs.iter().enumerate() {
                r.run(p, o.repeat / 20 + 1)?;
                let (ret, ns) = r.run(p, o.repeat)?;
                if ret != want[i] {
                    return Err(format!(
                        "{n} entries, program {i}: returned {ret}, expected {}",
                        want[i]
                    ));
                }
                samples[i].push(ns);
            }
        }
        let med: Vec<f64> = samples.into_iter().map(median).collect();
        // Two threads: the fixed hit, then the rotating hit with a state map each.
        let m1 = r.state_map(1);
        let rot1 = r.load(&bench(
            &k,
            BenchKind::Lookup,
            BENCH_DADDR,
            0,
            Some((n, st)),
            m1,
        ))?;
        let (mut fixed2, mut rot2) = (Vec::new(), Vec::new());
        for _ in 0..o.trials {
            let f = r.run_pair([progs[1], progs[1]], o.repeat)?;
            fixed2.push((f[0] + f[1]) / 2.0);
            let c = r.run_pair([progs[4], rot1], o.repeat)?;
            rot2.push((c[0] + c[1]) / 2.0);
        }
        r.unload(rot1);
        for p in progs {
            r.unload(p);
        }
        out.push(SizeReport {
            entries: n,
            fixed: [med[0], med[1], med[2]],
            rotating: [med[3], med[4], med[5]],
            pair: [median(fixed2) - med[0], median(rot2) - med[3]],
            fill_ns,
            stride: st,
        });
    }
    r.unload(fill_prog);
    Ok(out)
}

/// The size the headline figures are taken at: 100K entries (the anchor's cold figure), or
/// the largest measured below it.
fn headline(rows: &[SizeReport]) -> Option<&SizeReport> {
    rows.iter()
        .rev()
        .find(|s| s.entries <= 100_000)
        .or(rows.first())
}

/// Prints the table (and with `json` one JSON object as the last line: `lookup_ns` the cached
/// hit, `miss_ns` the miss, `cold_ns` the rotating hit, at 100K entries; per size too).
pub fn print(
    rows: &[SizeReport],
    who: &str,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "conntrack lookup + release from XDP, {who} (ns per run, median; lookup = program - baseline)"
    )?;
    writeln!(
        out,
        "{:>9} {:>8} | {:>6} {:>7} {:>7} | {:>8} {:>9} | {:>10} {:>10} | {:>7}",
        "entries", "tuple", "base", "hit", "miss", "hit-base", "miss-base", "2thr hit", "", "fill"
    )?;
    for s in rows {
        for (name, v, pair) in [
            ("fixed", s.fixed, s.pair[0]),
            ("rotating", s.rotating, s.pair[1]),
        ] {
            writeln!(
                out,
                "{:>9} {:>8} | {:>6.1} {:>7.1} {:>7.1} | {:>8.1} {:>9.1} | {:>10.1} {:>10} | {:>7.0}",
                s.entries,
                name,
                v[0],
                v[1],
                v[2],
                v[1] - v[0],
                v[2] - v[0],
                pair,
                "",
                s.fill_ns
            )?;
        }
    }
    if json {
        let per: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|s| {
                (
                    s.entries.to_string(),
                    serde_json::json!({
                        "lookup_ns": json_num(s.hit()),
                        "miss_ns": json_num(s.miss()),
                        "cold_ns": json_num(s.cold()),
                        "cold_miss_ns": json_num(s.cold_miss()),
                        "threads2_lookup_ns": json_num(s.pair[0]),
                        "threads2_cold_ns": json_num(s.pair[1]),
                        "fill_ns": json_num(s.fill_ns),
                    }),
                )
            })
            .collect();
        let h = headline(rows).copied().unwrap_or_default();
        let j = serde_json::json!({
            "who": who,
            "entries": h.entries,
            "lookup_ns": json_num(h.hit()),
            "miss_ns": json_num(h.miss()),
            "cold_ns": json_num(h.cold()),
            "sizes": per,
        });
        writeln!(out, "{j}")?;
    }
    Ok(())
}

/// kbpf as a [`CtRunner`]: programs through `prog_load`, runs through `BPF_PROG_TEST_RUN`,
/// the process's conntrack table (its limit raised to what the sizes need, flushed at the
/// end by [`KbpfRunner::finish`]).
pub struct KbpfRunner {
    maps: [u32; 2],
}

impl KbpfRunner {
    /// Two state maps; the table's limit raised to `largest` entries (and a margin).
    pub fn new(largest: u32) -> Result<KbpfRunner, String> {
        let attr = kbpf::MapAttr::new(kbpf::uapi::MapType::Array, 4, state::SIZE, 1);
        let mk = || kbpf::syscall::map_create(&attr).map_err(|e| format!("map: {e:?}"));
        let ct = kbpf::netfilter::conntrack().map_err(|e| format!("conntrack: {e:?}"))?;
        ct.flush(None);
        ct.set_max(ct.max().max(largest.saturating_add(largest / 8 + 16)));
        Ok(KbpfRunner {
            maps: [mk()?, mk()?],
        })
    }

    /// Flushes the table and closes the maps.
    pub fn finish(self) {
        if let Ok(ct) = kbpf::netfilter::conntrack() {
            ct.flush(None);
        }
        for m in self.maps {
            let _ = kbpf::syscall::close(m);
        }
    }
}

impl CtRunner for KbpfRunner {
    fn ids(&self) -> KfuncIds {
        KfuncIds::kbpf()
    }

    fn state_map(&self, i: usize) -> u32 {
        self.maps[i]
    }

    fn load(&mut self, text: &str) -> Result<u32, String> {
        crate::ct::load(kbpf::uapi::ProgType::Xdp, text)
    }

    fn run(&mut self, prog: u32, repeat: u32) -> Result<(u32, f64), String> {
        run_kbpf(prog, repeat)
    }

    fn run_pair(&mut self, progs: [u32; 2], repeat: u32) -> Result<[f64; 2], String> {
        std::thread::scope(|s| {
            let h: Vec<_> = progs
                .iter()
                .map(|&p| s.spawn(move || run_kbpf(p, repeat).map(|r| r.1)))
                .collect();
            let mut out = [0.0; 2];
            for (o, h) in out.iter_mut().zip(h) {
                *o = h.join().map_err(|_| "thread panicked".to_string())??;
            }
            Ok(out)
        })
    }

    fn read_state(&mut self, i: usize) -> Result<Vec<u8>, String> {
        let mut v = vec![0u8; state::SIZE as usize];
        kbpf::syscall::map_lookup_elem(self.maps[i], &0u32.to_ne_bytes(), &mut v)
            .map_err(|e| format!("{e:?}"))?;
        Ok(v)
    }

    fn write_state(&mut self, i: usize, v: &[u8]) -> Result<(), String> {
        kbpf::syscall::map_update_elem(self.maps[i], &0u32.to_ne_bytes(), v, 0)
            .map_err(|e| format!("{e:?}"))
    }

    fn unload(&mut self, prog: u32) {
        let _ = kbpf::syscall::close(prog);
    }
}

fn run_kbpf(prog: u32, repeat: u32) -> Result<(u32, f64), String> {
    let mut data = crate::ct::frame();
    let mut t = kbpf::syscall::TestRun {
        data: &mut data,
        repeat,
        ..Default::default()
    };
    let r = kbpf::syscall::prog_test_run(prog, &mut t).map_err(|e| format!("test run: {e:?}"))?;
    Ok((r.retval as u32, r.duration_ns as f64))
}
