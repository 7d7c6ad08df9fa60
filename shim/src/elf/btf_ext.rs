//! The `.BTF.ext` section: per-section function info, line info and CO-RE relocation records
//! (`struct btf_ext_header` and the `btf_ext_info_sec` blocks of `tools/lib/bpf/libbpf_internal.h`,
//! read by libbpf's `btf_ext__new`). Record offsets are in bytes from the start of their code
//! section; [`BtfExt`] keeps them in instruction slots.

use super::btf::u32_at;
use std::collections::HashMap;

/// A function-info record: the function starting at `insn` has BTF `FUNC` type `type_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FuncRec {
    /// Instruction slot in its section.
    pub insn: u32,
    /// Its `FUNC` type.
    pub type_id: u32,
}

/// A line-info record (`struct bpf_line_info` with a section-relative slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineRec {
    /// Instruction slot in its section.
    pub insn: u32,
    /// File name: string offset in `.BTF`.
    pub file_name_off: u32,
    /// Source line text: string offset in `.BTF`.
    pub line_off: u32,
    /// Line number << 10 | column.
    pub line_col: u32,
}

/// A CO-RE relocation record (`struct bpf_core_relo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreRec {
    /// Instruction slot in its section.
    pub insn: u32,
    /// The local (the object's) type the access starts from.
    pub type_id: u32,
    /// The access string (`"0:1:2"`): string offset in `.BTF`.
    pub access_str_off: u32,
    /// `enum bpf_core_relo_kind`.
    pub kind: u32,
}

/// A parsed `.BTF.ext`: records by code section name.
#[derive(Clone, Debug, Default)]
pub struct BtfExt {
    /// Function info per section.
    pub func_info: HashMap<String, Vec<FuncRec>>,
    /// Line info per section.
    pub line_info: HashMap<String, Vec<LineRec>>,
    /// CO-RE relocations per section.
    pub core_relos: HashMap<String, Vec<CoreRec>>,
}

impl BtfExt {
    /// Parses `data`; section names are strings of the `.BTF` string section `strings`.
    pub fn parse(data: &[u8], strings: &dyn Fn(u32) -> Option<String>) -> Result<BtfExt, String> {
        if data.len() < 8 || u16::from_le_bytes([data[0], data[1]]) != super::btf::MAGIC {
            return Err("bad magic".into());
        }
        if data[2] != 1 {
            return Err(format!("unsupported version {}", data[2]));
        }
        let hdr_len = u32_at(data, 4).ok_or("truncated header")? as usize;
        if hdr_len < 24 || hdr_len > data.len() {
            return Err(format!("header length {hdr_len} is invalid"));
        }
        let hw = |i: usize| u32_at(data, 8 + 4 * i).ok_or("truncated header");
        let body = &data[hdr_len..];
        let mut ext = BtfExt::default();
        let blocks = |off: u32, len: u32, min_rec: u32, what: &str| {
            read_blocks(body, off, len, min_rec, strings).map_err(|e| format!("{what}: {e}"))
        };
        for (sec, size, recs) in blocks(hw(0)?, hw(1)?, 8, "func_info")? {
            let v = recs.map(|r| FuncRec {
                insn: r[0] / 8,
                type_id: r[1],
            });
            ext.func_info.insert(sec, v.collect());
            let _ = size;
        }
        for (sec, _, recs) in blocks(hw(2)?, hw(3)?, 16, "line_info")? {
            let v = recs.map(|r| LineRec {
                insn: r[0] / 8,
                file_name_off: r[1],
                line_off: r[2],
                line_col: r[3],
            });
            ext.line_info.insert(sec, v.collect());
        }
        // CO-RE relocations came later: only when the header is long enough to name them.
        if hdr_len >= 32 {
            for (sec, _, recs) in blocks(hw(4)?, hw(5)?, 16, "core_relo")? {
                let v = recs.map(|r| CoreRec {
                    insn: r[0] / 8,
                    type_id: r[1],
                    access_str_off: r[2],
                    kind: r[3],
                });
                ext.core_relos.insert(sec, v.collect());
            }
        }
        Ok(ext)
    }
}

/// The record blocks of one info kind: `u32 rec_size`, then per section `sec_name_off`,
/// `num_info` and the records. Yields (section, record size, records as u32 words).
#[allow(clippy::type_complexity)]
fn read_blocks(
    body: &[u8],
    off: u32,
    len: u32,
    min_rec: u32,
    strings: &dyn Fn(u32) -> Option<String>,
) -> Result<Vec<(String, u32, std::vec::IntoIter<Vec<u32>>)>, String> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let start = off as usize;
    let end = start
        .checked_add(len as usize)
        .filter(|&e| e <= body.len())
        .ok_or_else(|| format!("[{off}, +{len}) is past the section's end"))?;
    let b = &body[start..end];
    let rec_size = u32_at(b, 0).ok_or("truncated")?;
    if rec_size < min_rec || rec_size % 4 != 0 {
        return Err(format!("record size {rec_size} is invalid"));
    }
    let mut out = Vec::new();
    let mut at = 4usize;
    while at < b.len() {
        let name_off = u32_at(b, at).ok_or("truncated block header")?;
        let n = u32_at(b, at + 4).ok_or("truncated block header")? as usize;
        let sec = strings(name_off)
            .ok_or_else(|| format!("section name offset {name_off} is invalid"))?;
        at += 8;
        let need = n
            .checked_mul(rec_size as usize)
            .filter(|&need| at.checked_add(need).is_some_and(|end| end <= b.len()))
            .ok_or_else(|| format!("section {sec}: {n} records run past the end"))?;
        let mut recs = Vec::with_capacity(n);
        for i in 0..n {
            let r = at + i * rec_size as usize;
            let words = (0..min_rec as usize / 4)
                .map(|w| u32_at(b, r + 4 * w).expect("in bounds"))
                .collect();
            recs.push(words);
        }
        at += need;
        out.push((sec, rec_size, recs.into_iter()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header (32 bytes) and a func_info part of `recs` words.
    fn ext(func_info: &[u32]) -> Vec<u8> {
        let mut v = vec![0x9f, 0xeb, 1, 0];
        let len = (func_info.len() * 4) as u32;
        for w in [32u32, 0, len, len, 0, len, 0] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        for w in func_info {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v
    }

    fn names(off: u32) -> Option<String> {
        (off == 1).then(|| "tc".to_string())
    }

    #[test]
    fn reads_records_in_slots() {
        // rec_size 8; section "tc": two records at bytes 0 and 16.
        let e = BtfExt::parse(&ext(&[8, 1, 2, 0, 5, 16, 6]), &names).unwrap();
        let f = &e.func_info["tc"];
        assert_eq!(
            f,
            &[
                FuncRec {
                    insn: 0,
                    type_id: 5
                },
                FuncRec {
                    insn: 2,
                    type_id: 6
                }
            ]
        );
    }

    #[test]
    fn counts_past_the_end_are_errors() {
        for bad in [
            vec![8, 1, u32::MAX, 0, 5],
            vec![8, 1, 2, 0, 5],
            vec![4, 1, 1, 0],
            vec![8, 9, 1, 0, 5],
        ] {
            assert!(BtfExt::parse(&ext(&bad), &names).is_err(), "{bad:?}");
        }
        assert!(BtfExt::parse(&[0x9f, 0xeb, 1], &names).is_err());
    }
}
