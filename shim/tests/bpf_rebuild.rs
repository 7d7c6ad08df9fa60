//! The committed BPF objects are what their sources build to: `examples/bpf/build.sh` (clang-19
//! `-O2 -g -target bpf` against libbpf's headers) into a scratch directory gives the same bytes
//! for every `examples/bpf/*.o` and `shim/tests/elf/*.o`. SKIPPED (said on stderr) when clang-19
//! is not installed; `scripts/test` installs it, so CI runs this.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.c` in `dir`, relative to the repository.
fn sources(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .map(|p| PathBuf::from(dir).join(p.file_name().unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn every_source_has_its_object_committed() {
    for src in sources("examples/bpf")
        .into_iter()
        .chain(sources("shim/tests/elf"))
    {
        let obj = root().join(src.with_extension("o"));
        assert!(obj.exists(), "{} has no {}", src.display(), obj.display());
    }
}

#[test]
fn a_rebuild_gives_the_same_bytes() {
    if Command::new("clang-19").arg("--version").output().is_err() {
        eprintln!("SKIPPED: clang-19 is not installed (scripts/test installs it)");
        return;
    }
    let scratch = std::env::temp_dir().join(format!("kbpf-bpf-rebuild-{}", std::process::id()));
    let status = Command::new(root().join("examples/bpf/build.sh"))
        .arg(&scratch)
        .status()
        .unwrap();
    assert!(status.success(), "build.sh failed");
    let mut checked = 0;
    for src in sources("examples/bpf")
        .into_iter()
        .chain(sources("shim/tests/elf"))
    {
        let name = src.with_extension("o");
        let committed = std::fs::read(root().join(&name)).unwrap();
        let rebuilt = std::fs::read(scratch.join(&name))
            .unwrap_or_else(|e| panic!("{}: {e}", scratch.join(&name).display()));
        assert!(
            committed == rebuilt,
            "{} differs from a rebuild of {}: run examples/bpf/build.sh and commit",
            name.display(),
            src.display()
        );
        checked += 1;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(checked >= 5, "only {checked} objects checked");
}
