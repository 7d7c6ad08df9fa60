//! Optional differential test against the host kernel: random attach/detach/link scripts run
//! through `mprog-oracle` (`../shared/oracle`, built here with the system C compiler; it needs
//! root, BPF and tcx, Linux 6.6+) and through `kbpf tcx script` must print identical lines.
//! When the oracle can't be built or the host kernel can't run it, the test says so plainly
//! and passes without comparing anything.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SCRIPTS: u64 = 40;
const OPS: usize = 40;

fn run(cmd: &Path, args: &[&str], script: &str) -> Option<String> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(script.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Builds the oracle, or says why it can't be used.
fn oracle() -> Result<PathBuf, String> {
    let src = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/oracle/mprog_oracle.c"
    ));
    if !src.exists() {
        return Err(format!("{} not found", src.display()));
    }
    let bin = std::env::temp_dir().join(format!("kbpf-mprog-oracle-{}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .map_err(|e| format!("{cc}: {e}"))?;
    if !status.success() {
        return Err(format!("{cc} failed to build the oracle"));
    }
    match run(&bin, &[], "query\n") {
        Some(out) if out.starts_with("OK rev=1 count=0") => Ok(bin),
        other => Err(format!(
            "the host kernel can't run it (root, BPF, tcx needed): {other:?}"
        )),
    }
}

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
}

fn flags(r: &mut Rng) -> String {
    let mut f: Vec<&str> = Vec::new();
    for (name, p) in [
        ("before", 4),
        ("after", 4),
        ("replace", 8),
        ("id", 6),
        ("link", 6),
    ] {
        if r.below(p) == 0 {
            f.push(name);
        }
    }
    if f.is_empty() {
        "0".into()
    } else {
        f.join(",")
    }
}

fn script(seed: u64) -> String {
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut s = String::from("load 8\n");
    let mut links = 0u64;
    for _ in 0..OPS {
        let p = 1 + r.below(8);
        let rel = r.below(6);
        let exprev = if r.below(5) == 0 { r.below(8) } else { 0 };
        let link = 1 + r.below(links.max(1));
        let line = match r.below(28) {
            // Plain appends and removals keep the bundle populated, so the placement rules
            // below meet real neighbours.
            0..=6 => format!("attach {p} 0 0 0"),
            7..=12 => format!(
                "attach {p} {} {rel} {exprev} {}",
                flags(&mut r),
                1 + r.below(8)
            ),
            13..=14 => format!("detach {p} 0 0 0"),
            15..=16 => format!("detach {} {} {rel} {exprev}", r.below(9), flags(&mut r)),
            17..=18 => {
                links += 1;
                format!("link {p} 0 0 0")
            }
            19 => {
                links += 1;
                format!("link {p} {} {rel} {exprev}", flags(&mut r))
            }
            20 if links > 0 => format!("linkdetach {link}"),
            21 if links > 0 => format!("linkclose {link}"),
            22 if links > 0 && r.below(2) == 0 => {
                format!("linkupdate {link} {p} {}", 1 + r.below(8))
            }
            22 if links > 0 => format!("linkupdate {link} {p}"),
            23 if r.below(4) == 0 => "reset".into(),
            24 => format!("query {}", r.below(5)),
            _ => "query".into(),
        };
        s.push_str(&line);
        s.push('\n');
    }
    s
}

#[test]
fn random_scripts_match_the_host_kernel() {
    let oracle = match oracle() {
        Ok(bin) => bin,
        Err(why) => {
            eprintln!("SKIPPED tcx differential test against the host kernel: {why}");
            return;
        }
    };
    let kbpf = PathBuf::from(env!("CARGO_BIN_EXE_kbpf"));
    let (mut lines, mut ok, mut non_empty_queries) = (0usize, 0usize, 0usize);
    for seed in 0..SCRIPTS {
        let text = script(seed);
        let want = run(&oracle, &["-e"], &text).expect("oracle run");
        let got = run(&kbpf, &["tcx", "script", "-e"], &text).expect("kbpf run");
        for l in want.lines() {
            let result = l.get(45..).unwrap_or("");
            lines += 1;
            ok += usize::from(result.starts_with("OK"));
            non_empty_queries +=
                usize::from(result.contains("rev=") && !result.contains("count=0"));
        }
        if want != got {
            let (w, g): (Vec<_>, Vec<_>) = (want.lines().collect(), got.lines().collect());
            let i = w
                .iter()
                .zip(&g)
                .position(|(a, b)| a != b)
                .unwrap_or(w.len().min(g.len()));
            panic!(
                "seed {seed}: line {} differs\n  kernel: {:?}\n  kbpf:   {:?}\nscript:\n{text}",
                i + 1,
                w.get(i),
                g.get(i)
            );
        }
    }
    let _ = std::fs::remove_file(oracle);
    eprintln!(
        "tcx differential test: {SCRIPTS} random scripts of {OPS} operations identical to the host kernel \
         ({ok} of {lines} lines OK, {non_empty_queries} queries with programs attached)"
    );
    // The generator must keep exercising successful paths, not only error returns.
    assert!(ok * 4 >= lines, "only {ok} of {lines} operations succeeded");
    assert!(
        non_empty_queries * 10 >= SCRIPTS as usize,
        "too few queries saw attached programs"
    );
}
