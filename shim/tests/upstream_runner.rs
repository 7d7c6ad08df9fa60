//! Optional: the real upstream bpf_conformance runner (its source and build script in
//! `../shared/tools/bpf_conformance/`, MIT) built into this target directory and run against
//! `kbpf-conformance-plugin` on the vendored suite, in every mode: the interpreter and the JIT
//! (313/313 each), and the `--xdp_prolog true` mode on both engines, where kbpf must give
//! Linux's verdicts (300 pass; the thirteen programs Linux refuses, refused). Says SKIPPED
//! when `../shared` or the build dependencies (cmake, a C++ compiler, boost) are missing; it
//! never installs anything.

use kbpf_shim::conformance::refused::REFUSED;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Builds the runner (once: the build script reuses an existing build), or says why not.
fn runner() -> Result<PathBuf, String> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/bpf_conformance/build.sh");
    if !script.exists() {
        return Err(format!("{} not found", script.display()));
    }
    for tool in ["cmake", "c++"] {
        if !have(tool) {
            return Err(format!("{tool} not installed"));
        }
    }
    for header in ["program_options.hpp", "filesystem.hpp"] {
        if !Path::new("/usr/include/boost").join(header).exists() {
            return Err(format!("boost's {header} not installed"));
        }
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bpfconf-runner");
    let built = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .output()
        .map_err(|e| format!("bash: {e}"))?;
    let bin = out.join("build/bin/bpf_conformance_runner");
    if !built.status.success() || !bin.exists() {
        return Err(format!(
            "the runner did not build: {}",
            String::from_utf8_lossy(&built.stderr)
        ));
    }
    Ok(bin)
}

/// Runs the runner on the suite with `plugin_options` (and the XDP prolog if asked); returns
/// its exit success, its last line and the files that did not pass.
fn run(bin: &Path, plugin_options: &str, xdp: bool) -> (bool, String, BTreeSet<String>) {
    let suite = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/bpf_conformance");
    let mut cmd = Command::new(bin);
    cmd.args(["--test_file_directory", suite])
        .args([
            "--plugin_path",
            env!("CARGO_BIN_EXE_kbpf-conformance-plugin"),
        ])
        .args(["--plugin_options", plugin_options])
        .args(["--cpu_version", "v4", "--include_groups", "callx", "packet"]);
    if xdp {
        cmd.args(["--xdp_prolog", "true"]);
    }
    let out = cmd.output().expect("run the runner");
    let text = String::from_utf8_lossy(&out.stdout);
    let results = text.split("Test results:").nth(1).unwrap_or("");
    let not_passed = results
        .lines()
        .filter(|l| !l.starts_with("PASS: ") && l.contains(".data\""))
        .map(|l| {
            let path = l.split('"').nth(1).unwrap_or(l);
            path.rsplit('/').next().unwrap_or(path).to_string()
        })
        .collect();
    let last = text.lines().last().unwrap_or("").to_string();
    (out.status.success(), last, not_passed)
}

#[test]
fn upstream_runner_in_every_mode() {
    let bin = match runner() {
        Ok(bin) => bin,
        Err(why) => {
            eprintln!("SKIPPED the upstream bpf_conformance runner: {why}");
            return;
        }
    };
    for opts in ["", "--jit"] {
        let (ok, last, failed) = run(&bin, opts, false);
        assert!(
            ok && failed.is_empty(),
            "options {opts:?}: {last}; {failed:?}"
        );
        assert_eq!(last, "Passed 313 out of 313 tests.", "options {opts:?}");
    }
    let listed: BTreeSet<String> = REFUSED.iter().map(|r| r.file.to_string()).collect();
    for opts in ["--xdp", "--xdp --jit"] {
        let (ok, last, refused) = run(&bin, opts, true);
        assert!(!ok, "options {opts:?}: thirteen cases must be refused");
        assert_eq!(refused, listed, "options {opts:?}");
        assert_eq!(last, "Passed 300 out of 313 tests.", "options {opts:?}");
    }
    eprintln!(
        "upstream runner: 313/313 on the interpreter and the JIT; XDP mode 300/313 on both, \
         the {} refusals Linux makes",
        listed.len()
    );
}
