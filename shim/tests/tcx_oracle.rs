//! Optional differential test against the host kernel: random mprog scripts run in lockstep
//! through kbpf's tcx and through the host kernel's (kbpf's own `bpf(2)` calls on `lo` of a
//! private network namespace, `kbpf_shim::host_mprog`; root, BPF and tcx, Linux 6.6+) must
//! print identical lines. Flags are drawn from all 32 bits on every command (attach, detach,
//! link create, link update, query); relatives mix handles and ids, raw values, links that
//! were detached or closed; expected revisions mix the current one with stale and future ones,
//! learnt from the queries the script makes. When the host kernel can't serve, the test says
//! SKIPPED and why, and compares nothing.

use kbpf_shim::host_mprog::HostScript;
use kbpf_shim::mprog_script::Script;
use kbpf_shim::tcx_script::{KbpfTcx, Options};
use std::collections::BTreeMap;

const SCRIPTS: u64 = 64;
const OPS: usize = 100;
/// Programs 1..=8 are tc, 9 and 10 XDP (refused by tcx, and as relatives of tc programs).
const PROGS: u64 = 10;

/// A small xorshift generator: deterministic scripts per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// What the generator knows of the script so far (from the outputs).
struct Gen {
    r: Rng,
    /// Per link number: still open.
    links: Vec<bool>,
    /// The revision the last query reported.
    rev: u64,
}

const LINK: u32 = 1 << 13;
const ID: u32 = 1 << 5;

impl Gen {
    fn prog(&mut self) -> u64 {
        // Mostly tc programs; now and then an XDP one.
        if self.r.one_in(12) {
            9 + self.r.below(2)
        } else {
            1 + self.r.below(8)
        }
    }

    /// FLAGS: named bits, and bits from all 32 (one at a time, or a random word).
    fn flags(&mut self) -> (String, u32) {
        let mut parts: Vec<String> = Vec::new();
        let mut bits = 0u32;
        for (name, bit, p) in [
            ("before", 1u32 << 3, 4),
            ("after", 1 << 4, 4),
            ("replace", 1 << 2, 8),
            ("id", ID, 5),
            ("link", LINK, 5),
        ] {
            if self.r.one_in(p) {
                parts.push(name.into());
                bits |= bit;
            }
        }
        if self.r.one_in(4) {
            let b = 1u32 << self.r.below(32);
            parts.push(format!("{b:#x}"));
            bits |= b;
        }
        if self.r.one_in(24) {
            let w = self.r.next() as u32;
            parts.push(format!("{w:#x}"));
            bits |= w;
        }
        if parts.is_empty() {
            ("0".into(), 0)
        } else {
            (parts.join(","), bits)
        }
    }

    fn open_link(&mut self) -> Option<usize> {
        let open: Vec<usize> = (0..self.links.len()).filter(|&i| self.links[i]).collect();
        if open.is_empty() {
            None
        } else {
            Some(1 + open[self.r.below(open.len() as u64) as usize])
        }
    }

    /// REL under `bits`: none, a program or link (by handle, or by id — closed links too),
    /// or a raw value that names nothing on either side.
    fn rel(&mut self, bits: u32) -> String {
        match self.r.below(20) {
            0..=4 => "0".into(),
            5 => "=0".into(),
            6 => "=4000000".into(),
            _ if bits & LINK != 0 => {
                let any = if self.links.is_empty() {
                    None
                } else {
                    Some(1 + self.r.below(self.links.len() as u64) as usize)
                };
                let l = if bits & ID != 0 {
                    any
                } else {
                    self.open_link()
                };
                l.map_or("0".into(), |l| l.to_string())
            }
            _ => self.prog().to_string(),
        }
    }

    fn exprev(&mut self) -> u64 {
        match self.r.below(10) {
            0..=5 => 0,
            6 | 7 => self.rev,
            8 => self.rev + 1 - 2 * self.r.below(2),
            _ => 1 + self.r.below(40),
        }
    }

    fn line(&mut self) -> String {
        let p = self.prog();
        match self.r.below(100) {
            0..=13 => format!("attach {p} 0 0 0"),
            14..=35 => {
                let (f, bits) = self.flags();
                let rel = self.rel(bits);
                let old = if self.r.one_in(6) {
                    0
                } else {
                    1 + self.r.below(PROGS)
                };
                format!("attach {p} {f} {rel} {} {old}", self.exprev())
            }
            36..=40 => format!("detach {p} 0 0 0"),
            41..=52 => {
                let (f, bits) = self.flags();
                let p = if self.r.one_in(3) { 0 } else { p };
                format!("detach {p} {f} {} {}", self.rel(bits), self.exprev())
            }
            53..=58 => format!("link {p} 0 0 0"),
            59..=66 => {
                let (f, bits) = self.flags();
                format!("link {p} {f} {} {}", self.rel(bits), self.exprev())
            }
            67..=69 => match self.open_link() {
                Some(l) => format!("linkdetach {l}"),
                None => "query".into(),
            },
            70..=72 => match self.open_link() {
                Some(l) => format!("linkclose {l}"),
                None => "query".into(),
            },
            73..=80 => match self.open_link() {
                Some(l) => {
                    let new = if self.r.one_in(10) { 0 } else { p };
                    match self.r.below(6) {
                        0 | 1 => format!("linkupdate {l} {new}"),
                        2 | 3 => format!("linkupdate {l} {new} {}", self.r.below(PROGS + 1)),
                        _ => {
                            let f = match self.r.below(4) {
                                0 => "0".to_string(),
                                1 => "replace".to_string(),
                                2 => format!("{:#x}", 1u32 << self.r.below(32)),
                                _ => format!("{:#x}", self.r.next() as u32),
                            };
                            format!("linkupdate {l} {new} {} {f}", self.r.below(PROGS + 1))
                        }
                    }
                }
                None => format!("link {p} 0 0 0"),
            },
            81..=82 => "reset".into(),
            83..=86 => {
                let qf = if self.r.one_in(2) {
                    0
                } else {
                    1u32 << self.r.below(32)
                };
                let af = if self.r.one_in(2) {
                    0
                } else {
                    1u32 << self.r.below(32)
                };
                format!("query {} {qf:#x} {af:#x}", self.r.below(6))
            }
            87..=89 => format!("query {}", self.r.below(5)),
            _ => "query".into(),
        }
    }

    /// Learns from a line and its (identical) result.
    fn learn(&mut self, line: &str, result: &str) {
        if let Some(l) = result.strip_prefix("OK link=") {
            let n: usize = l.parse().expect("link number");
            assert_eq!(n, self.links.len() + 1);
            self.links.push(true);
        }
        if let Some(l) = line.strip_prefix("linkclose ") {
            self.links[l.parse::<usize>().expect("link number") - 1] = false;
        }
        if line == "reset" {
            self.links.iter_mut().for_each(|l| *l = false);
        }
        if let Some(rev) = result.split(" rev=").nth(1) {
            let rev = rev.split(' ').next().unwrap_or("0");
            self.rev = rev.parse().expect("revision");
        }
    }
}

#[derive(Default)]
struct Counts {
    ops: usize,
    ok: usize,
    unknown_bits: usize,
    non_empty_queries: usize,
    by_command: BTreeMap<String, usize>,
    by_result: BTreeMap<String, usize>,
}

/// Runs script `seed` on both sides; the first difference panics.
fn run_one(seed: u64, c: &mut Counts) {
    let egress = seed % 2 == 1;
    let host = HostScript::open(false, egress).expect("host script");
    let opts = Options {
        egress,
        ..Options::default()
    };
    let mut kbpf = Script::new(KbpfTcx::new(opts).expect("kbpf device"), false);
    let mut g = Gen {
        r: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        links: Vec::new(),
        rev: 1,
    };
    let mut text = String::new();
    let setup = ["load 8".to_string(), "load 2 xdp".to_string()];
    for i in 0..setup.len() + OPS {
        let line = setup.get(i).cloned().unwrap_or_else(|| g.line());
        text.push_str(&line);
        text.push('\n');
        let want = host.line(&line).expect("an operation");
        let got = kbpf.line(&line).expect("an operation");
        assert_eq!(
            want,
            got,
            "seed {seed} ({}): `{line}` differs (kernel first)\nscript:\n{text}",
            if egress { "egress" } else { "ingress" }
        );
        g.learn(&line, &want);
        c.ops += 1;
        c.ok += usize::from(want.starts_with("OK"));
        c.non_empty_queries += usize::from(want.contains("rev=") && !want.contains("count=0"));
        let word = line.split(' ').next().unwrap_or("").to_string();
        let unknown = line.split(' ').nth(2).is_some_and(|f| f.contains("0x"))
            || (word != "attach" && line.split(' ').nth(4).is_some_and(|f| f.contains("0x")))
            || (word == "query" && line.contains("0x") && !line.ends_with(" 0x0 0x0"));
        c.unknown_bits += usize::from(unknown);
        *c.by_command.entry(word).or_default() += 1;
        let result = want.split(' ').next().unwrap_or("").to_string();
        *c.by_result.entry(result).or_default() += 1;
    }
    host.finish();
    kbpf.finish().remove().expect("device removed");
}

#[test]
fn random_scripts_match_the_host_kernel() {
    kbpf_shim::host::install();
    if let Err(why) = HostScript::open(false, false).map(HostScript::finish) {
        eprintln!("SKIPPED tcx differential test against the host kernel: {why}");
        return;
    }
    // Sequential: the host serializes tcx changes on rtnl across its RCU grace periods (about
    // 8 ms per change here), so threads would not help.
    let mut c = Counts::default();
    for seed in 0..SCRIPTS {
        run_one(seed, &mut c);
    }
    eprintln!(
        "tcx differential test: {SCRIPTS} scripts, {} operations identical to the host kernel \
         ({} OK, {} with flag bits beyond the named ones, {} queries with programs attached)\n  \
         commands: {:?}\n  results: {:?}",
        c.ops, c.ok, c.unknown_bits, c.non_empty_queries, c.by_command, c.by_result
    );
    // The generator must keep exercising successful paths, not only error returns.
    assert!(
        c.ok * 4 >= c.ops,
        "only {} of {} operations succeeded",
        c.ok,
        c.ops
    );
    assert!(
        c.non_empty_queries * 10 >= c.ops,
        "too few queries saw attached programs"
    );
}

/// The golden files of `tcx_golden.rs` are still what the host kernel prints.
#[test]
fn golden_files_are_the_host_kernels_output() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tcx_golden");
    if let Err(why) = HostScript::open(false, false).map(HostScript::finish) {
        eprintln!("SKIPPED golden files against the host kernel: {why}");
        return;
    }
    for name in ["mprog-sample", "mprog-edge", "mprog-flags"] {
        let script = std::fs::read_to_string(format!("{dir}/{name}.txt")).expect("script");
        let want = std::fs::read_to_string(format!("{dir}/{name}.out")).expect("output");
        for egress in [false, true] {
            let got = kbpf_shim::host_mprog::run_script(&script, true, egress).expect("host run");
            assert_eq!(got, want, "{name} (egress: {egress})");
        }
    }
}
