//! Seed converter: turns `.data` programs (bpf_conformance format, read with
//! `kbpf_shim::data`) into `verifier` fuzz inputs (`kbpf_fuzz::Input`), one file per program.
//!
//! Usage: `seed OUT_DIR FILE_OR_DIR...`. Files the format skips are skipped; a declared
//! `# type:` and the first two `# map:` lines become the header, the `-- mem` size the
//! context size.

use kbpf::map::MapAttr;
use kbpf::uapi::{MapType, ProgType};
use kbpf_fuzz::Input;
use kbpf_shim::data::{self, Parsed};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let Some((out, inputs)) = args.split_first() else {
        eprintln!("usage: seed OUT_DIR FILE_OR_DIR...");
        return ExitCode::from(2);
    };
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("seed: {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let mut written = 0;
    for path in data::collect(inputs) {
        let Ok(Parsed::Test(f)) = data::parse_file(&path) else {
            continue;
        };
        let prog_type = f
            .prog_type
            .as_deref()
            .and_then(ProgType::from_name)
            .unwrap_or(ProgType::RawBuffer);
        let map = |i: usize| {
            let d = f.maps.get(i)?;
            let t = MapType::from_name(&d.map_type)?;
            Some(MapAttr::new(t, d.key_size, d.value_size, d.max_entries))
        };
        let input = Input {
            prog_type,
            privileged: false,
            allow_loops: true,
            ctx_size: f.mem.len(),
            maps: [map(0), map(1)],
            insns: f.program,
        };
        let name = path.file_stem().unwrap_or_default().to_string_lossy();
        let dest = out.join(format!("seed-{name}"));
        if let Err(e) = std::fs::write(&dest, input.encode()) {
            eprintln!("seed: {}: {e}", dest.display());
            return ExitCode::FAILURE;
        }
        written += 1;
    }
    println!("seed: {written} inputs in {}", out.display());
    ExitCode::SUCCESS
}
