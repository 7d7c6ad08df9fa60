//! Reader for `.data` test files: the bpf_conformance format (its `lib/src/bpf_test_parser.cc`,
//! described in `testdata/bpf_conformance/README.md`) plus the header directives of
//! `testdata/data-format/README.md` that `kbpf verify` and `kbpf prog load` use. Linux has no
//! counterpart; the kernel's selftests embed their programs in C.
//!
//! Format: `#` starts a comment anywhere on a line; a line containing `--` opens a section,
//! picked by substring in the upstream order (`asm`, `result`, `mem`, `raw`,
//! `no register offset`, ` c`, `error`); any other directive skips the file. `-- raw` replaces
//! `-- asm`; the last non-empty line of `-- result` / `-- error` wins. A file needs a non-empty
//! program and a result or an error, except a file that declares `# type:`: those carry their
//! expectations in comments (`# kernel:`, `# errno:`) and are read for their program alone.
//!
//! Header directives live in whole-line comments: `# type: T`, `# attach: A`,
//! `# map: NAME TYPE key=K value=V max=N` (the i-th map is what an `ld_imm64` with `src_reg` 1
//! and immediate i refers to).

use std::path::{Path, PathBuf};

use kbpf::insn::{Insn, assemble};

/// A `# map:` declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDecl {
    /// The map's name in the file (`m0`).
    pub name: String,
    /// The map type as written (`hash`, `array`, `sockmap`, ...).
    pub map_type: String,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Maximum number of entries.
    pub max_entries: u32,
}

/// One test file's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataFile {
    /// The program (from `-- raw` if present, else assembled from `-- asm`).
    pub program: Vec<Insn>,
    /// The input memory (`-- mem`), empty if absent.
    pub mem: Vec<u8>,
    /// The expected `r0` (`-- result`).
    pub result: Option<u64>,
    /// The expected error text (`-- error`), trailing whitespace removed.
    pub error: Option<String>,
    /// `# type:` — the program type.
    pub prog_type: Option<String>,
    /// `# attach:` — the expected attach type (`none` = none).
    pub attach: Option<String>,
    /// `# map:` declarations, in order.
    pub maps: Vec<MapDecl>,
}

/// What reading a file gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A test to run.
    Test(DataFile),
    /// A file the format says to skip, and why.
    Skip(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Ignore,
    Asm,
    Raw,
    Mem,
    Result,
    Error,
}

/// The section a `--` line opens, or `None` for an unknown directive.
fn section_of(line: &str) -> Option<Section> {
    Some(if line.contains("asm") {
        Section::Asm
    } else if line.contains("result") {
        Section::Result
    } else if line.contains("mem") {
        Section::Mem
    } else if line.contains("raw") {
        Section::Raw
    } else if line.contains("no register offset") || line.contains(" c") {
        Section::Ignore
    } else if line.contains("error") {
        Section::Error
    } else {
        return None;
    })
}

/// The header directives collected from whole-line comments.
#[derive(Default)]
struct Header {
    prog_type: Option<String>,
    attach: Option<String>,
    maps: Vec<MapDecl>,
}

impl Header {
    fn take(&mut self, comment: &str, line: usize) -> Result<(), String> {
        let c = comment.trim();
        if let Some(v) = c.strip_prefix("type:") {
            self.prog_type = Some(one_word(v, "type", line)?);
        } else if let Some(v) = c.strip_prefix("attach:") {
            self.attach = Some(one_word(v, "attach", line)?);
        } else if let Some(v) = c.strip_prefix("map:") {
            self.maps
                .push(map_decl(v).map_err(|e| format!("line {line}: # map: {e}"))?);
        }
        Ok(())
    }
}

fn one_word(v: &str, what: &str, line: usize) -> Result<String, String> {
    let mut words = v.split_whitespace();
    match (words.next(), words.next()) {
        (Some(w), None) => Ok(w.to_string()),
        _ => Err(format!("line {line}: # {what}: needs exactly one word")),
    }
}

/// `NAME TYPE key=K value=V max=N` (the `key=`/`value=`/`max=` fields in any order).
fn map_decl(v: &str) -> Result<MapDecl, String> {
    let words: Vec<&str> = v.split_whitespace().collect();
    let [name, map_type, fields @ ..] = words.as_slice() else {
        return Err("expected NAME TYPE key=K value=V max=N".into());
    };
    let (mut key, mut value, mut max) = (None, None, None);
    for f in fields {
        let (k, n) = f
            .split_once('=')
            .ok_or_else(|| format!("bad field `{f}`"))?;
        let n: u32 = parse_u64(n)
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("bad number in `{f}`"))?;
        let slot = match k {
            "key" => &mut key,
            "value" => &mut value,
            "max" => &mut max,
            _ => return Err(format!("unknown field `{f}`")),
        };
        if slot.replace(n).is_some() {
            return Err(format!("`{k}` given twice"));
        }
    }
    let need = |v: Option<u32>, k: &str| v.ok_or_else(|| format!("missing `{k}=`"));
    Ok(MapDecl {
        name: name.to_string(),
        map_type: map_type.to_string(),
        key_size: need(key, "key")?,
        value_size: need(value, "value")?,
        max_entries: need(max, "max")?,
    })
}

/// A 64-bit number, `0x` hex or decimal (a leading `-` wraps, as the suite's `r0` is a u64).
fn parse_u64(s: &str) -> Result<u64, String> {
    let bad = || format!("bad number `{s}`");
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).map_err(|_| bad())
    } else if let Some(d) = s.strip_prefix('-') {
        d.parse::<i64>()
            .map(|v| v.wrapping_neg() as u64)
            .map_err(|_| bad())
    } else {
        s.parse().map_err(|_| bad())
    }
}

/// Parses the text of a `.data` file. `Err` means malformed (a bad number, an assembly error),
/// with the line number in the message.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut header = Header::default();
    let mut section = Section::Ignore;
    // Assembly lines with their line numbers in the file, for error messages.
    let (mut asm, mut raw, mut mem) = (Vec::<(usize, &str)>::new(), Vec::new(), Vec::new());
    let mut has_raw = false;
    let (mut result, mut error) = (None::<(usize, &str)>, None::<&str>);
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let (body, comment) = match line.split_once('#') {
            Some((b, c)) => (b, Some(c)),
            None => (line, None),
        };
        if let Some(c) = comment.filter(|_| body.trim().is_empty()) {
            header.take(c, n)?;
        }
        if body.contains("--") {
            match section_of(body) {
                Some(s) => section = s,
                None => return Ok(Parsed::Skip(format!("unknown directive `{}`", body.trim()))),
            }
            has_raw |= section == Section::Raw;
            continue;
        }
        // The error text keeps its leading whitespace, as upstream compares it.
        let untrimmed = body;
        let body = body.trim();
        if body.is_empty() {
            continue;
        }
        match section {
            Section::Ignore => {}
            Section::Asm => asm.push((n, body)),
            Section::Raw => {
                for w in body.split_whitespace() {
                    let v = parse_u64(w).map_err(|e| format!("line {n}: -- raw: {e}"))?;
                    raw.push(Insn::from_u64(v));
                }
            }
            Section::Mem => {
                for w in body.split_whitespace() {
                    let b = u8::from_str_radix(w, 16)
                        .map_err(|_| format!("line {n}: -- mem: bad byte `{w}`"))?;
                    mem.push(b);
                }
            }
            Section::Result => result = Some((n, body)),
            Section::Error => error = Some(untrimmed),
        }
    }
    let result = match result {
        Some((n, r)) => Some(parse_u64(r).map_err(|e| format!("line {n}: -- result: {e}"))?),
        None => None,
    };
    if result.is_none() && error.is_none() && header.prog_type.is_none() {
        return Ok(Parsed::Skip("no result or error".into()));
    }
    let program = if has_raw {
        raw
    } else {
        let text: String = asm.iter().flat_map(|(_, l)| [*l, "\n"]).collect();
        assemble(&text).map_err(|e| {
            let n = asm.get(e.line.wrapping_sub(1)).map_or(0, |(n, _)| *n);
            format!("line {n}: {}", e.msg)
        })?
    };
    if program.is_empty() {
        return Ok(Parsed::Skip("no instructions".into()));
    }
    Ok(Parsed::Test(DataFile {
        program,
        mem,
        result,
        error: error.map(|e| e.trim_end().to_string()),
        prog_type: header.prog_type,
        attach: header.attach,
        maps: header.maps,
    }))
}

/// Reads and parses one file; errors name the file.
pub fn parse_file(path: &Path) -> Result<Parsed, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Expands directories to their `*.data` files (sorted by name; not recursive) and keeps
/// other paths as given.
pub fn collect(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "data"))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(dir: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata")
            .join(dir)
    }

    fn test(text: &str) -> DataFile {
        match parse(text) {
            Ok(Parsed::Test(t)) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_conformance_file_is_a_test() {
        let files = collect(&[testdata("bpf_conformance")]);
        assert_eq!(files.len(), 313);
        let (mut with_mem, mut results) = (0, 0);
        for f in &files {
            match parse_file(f) {
                Ok(Parsed::Test(t)) => {
                    assert!(!t.program.is_empty());
                    assert!(t.error.is_none() && t.prog_type.is_none() && t.maps.is_empty());
                    with_mem += usize::from(!t.mem.is_empty());
                    results += usize::from(t.result.is_some());
                }
                other => panic!("{}: {other:?}", f.display()),
            }
        }
        assert_eq!((with_mem, results), (40, 313));
        let Ok(Parsed::Test(lddw)) = parse_file(&testdata("bpf_conformance").join("lddw.data"))
        else {
            panic!("lddw.data");
        };
        assert_eq!(lddw.program.len(), 3);
        assert_eq!(lddw.result, Some(0x1122334455667788));
    }

    #[test]
    fn data_format_headers() {
        let dir = testdata("data-format");
        let read = |name: &str| match parse_file(&dir.join(name)) {
            Ok(Parsed::Test(t)) => t,
            other => panic!("{name}: {other:?}"),
        };
        let t = read("030-map-hash-no-null-check.data");
        assert_eq!(t.prog_type.as_deref(), Some("socket_filter"));
        assert_eq!(t.attach, None);
        assert_eq!(
            t.maps,
            [MapDecl {
                name: "m0".into(),
                map_type: "hash".into(),
                key_size: 4,
                value_size: 8,
                max_entries: 4
            }]
        );
        assert_eq!(t.program.len(), 8);
        assert_eq!(t.program[3].to_u64(), 0x0000000000001118);
        assert_eq!((t.result, t.error), (None, None));
        let t = read("143-attach-none.data");
        assert_eq!(
            (t.prog_type.as_deref(), t.attach.as_deref()),
            (Some("sk_lookup"), Some("none"))
        );
        assert!(t.maps.is_empty());
        let t = read("161-sockmap-lookup-assign-release.data");
        assert_eq!(t.attach.as_deref(), Some("sk_lookup"));
        assert_eq!(t.maps[0].map_type, "sockmap");
        assert_eq!(t.program.len(), 17);
        assert_eq!(collect(&[dir]).len(), 3);
    }

    #[test]
    fn sections_and_rules() {
        let t = test(
            "# c\r\n-- asm\r\nmov %r0, 1 # one\nexit\n-- mem\n00 ff\n 0a\n\
             -- result\n0x5\n\n7\n-- error\nfirst\n  last text  \n",
        );
        assert_eq!(t.program.len(), 2);
        assert_eq!(t.mem, [0, 0xff, 0x0a]);
        assert_eq!(t.result, Some(7));
        assert_eq!(t.error.as_deref(), Some("  last text"));
        // raw replaces asm (which is not even assembled).
        let t = test("-- asm\nbogus\n-- raw\n0x95 0x95\n-- result\n-1");
        assert_eq!(t.program, [Insn::from_u64(0x95); 2]);
        assert_eq!(t.result, Some(u64::MAX));
        // c and no register offset are ignored; a `#` hides a directive.
        let t =
            test("-- c\nint x;\n-- asm\nexit\n# -- bogus\n-- no register offset\nx\n-- result\n0");
        assert_eq!(t.program.len(), 1);
        assert!(matches!(
            parse("-- asm\nexit\n-- bogus\n-- result\n0"),
            Ok(Parsed::Skip(_))
        ));
        assert!(matches!(parse("-- asm\nexit\n"), Ok(Parsed::Skip(_))));
        assert!(matches!(
            parse("-- asm\n# nothing\n-- result\n0"),
            Ok(Parsed::Skip(_))
        ));
    }

    #[test]
    fn malformed_files_name_the_line() {
        let e = parse("# h\n-- asm\nmov %r0, 1\n\n# x\nmov %r11, 0\n-- result\n0").unwrap_err();
        assert!(e.starts_with("line 6: "), "{e}");
        assert!(
            parse("-- asm\nexit\n-- result\n0xzz")
                .unwrap_err()
                .starts_with("line 4")
        );
        assert!(parse("-- asm\nexit\n-- mem\n1ff\n-- result\n0").is_err());
        assert!(
            parse("# map: m0 hash key=4 value=8\n-- raw\n0x95")
                .unwrap_err()
                .contains("max")
        );
        assert!(parse("# type: a b\n-- raw\n0x95").is_err());
    }
}
