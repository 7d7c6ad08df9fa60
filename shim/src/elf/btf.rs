//! A BTF reader for what the loader needs: the type section (every kind, so ids line up), the
//! string section, sizes, and the lookups the BTF-defined maps, raw-buffer context sizes and
//! CO-RE relocations use.
//!
//! The format is `include/uapi/linux/btf.h` (`struct btf_header`, `struct btf_type` and the
//! per-kind trailers); libbpf's reader is `tools/lib/bpf/btf.c` (`btf_parse_hdr`,
//! `btf_parse_type_sec`). Every offset and count is checked against the section's length: a
//! malformed section is an error naming what is wrong, never a panic.

use std::collections::HashMap;

/// `BTF_MAGIC`.
pub const MAGIC: u16 = 0xeb9f;

/// BTF kinds (`BTF_KIND_*`).
#[allow(missing_docs)]
pub mod kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const FWD: u32 = 7;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
}

/// A struct or union member (`struct btf_member`), or a function parameter (offset 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Name (empty for anonymous members).
    pub name: String,
    /// Its type id.
    pub type_id: u32,
    /// Offset in bits from the start of the struct.
    pub bit_offset: u32,
    /// Bitfield size in bits (0 for a plain member).
    pub bitfield_size: u32,
}

/// One type (`struct btf_type` and its trailer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Type {
    /// `BTF_KIND_*`.
    pub kind: u32,
    /// Name (empty when anonymous).
    pub name: String,
    /// `size` for sized kinds, the referenced type id for the others.
    pub size_or_type: u32,
    /// `vlen`: member/parameter/value count (for `FUNC`: the linkage).
    pub vlen: u32,
    /// `kind_flag`.
    pub kind_flag: bool,
    /// Members of a struct/union, parameters of a function prototype, variables of a datasec
    /// (`type_id` the variable, `bit_offset` its byte offset × 8, `bitfield_size` its size).
    pub members: Vec<Member>,
    /// For an array: element type, index type and element count.
    pub array: Option<(u32, u32, u32)>,
    /// For an int: its encoding word (`BTF_INT_ENCODING`, offset, bits).
    pub int_info: u32,
    /// Enum values by name (`ENUM`, `ENUM64`).
    pub enum_values: Vec<(String, i64)>,
}

/// A parsed `.BTF` section.
#[derive(Clone, Debug, Default)]
pub struct Btf {
    /// Types by id; index 0 is `void`.
    types: Vec<Type>,
    /// The string section.
    strings: Vec<u8>,
    /// Named types by name, for lookups.
    by_name: HashMap<String, Vec<u32>>,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

/// Little-endian u32 at `off`, if in bounds.
pub(crate) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// The NUL-terminated string at `off` of a string section.
pub(crate) fn str_at(strings: &[u8], off: u32) -> Result<&str, String> {
    let tail = strings
        .get(off as usize..)
        .ok_or_else(|| format!("string offset {off} is past the string section"))?;
    let end = tail
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| format!("string at {off} is not terminated"))?;
    std::str::from_utf8(&tail[..end]).map_err(|_| format!("string at {off} is not UTF-8"))
}

/// Types may nest this deep through modifiers, pointers and arrays before a walk gives up
/// (libbpf's `MAX_RESOLVE_DEPTH`).
const MAX_RESOLVE_DEPTH: u32 = 32;

impl Btf {
    /// Parses a `.BTF` section.
    pub fn parse(data: &[u8]) -> Result<Btf, String> {
        let magic = u16_at(data, 0).ok_or("too short for a header")?;
        if magic != MAGIC {
            return Err(format!("bad magic {magic:#06x} (BTF is {MAGIC:#06x})"));
        }
        match data.get(2) {
            Some(1) => {}
            Some(v) => return Err(format!("unsupported version {v}")),
            None => return Err("too short for a header".into()),
        }
        let hdr_len = u32_at(data, 4).ok_or("too short for a header")? as usize;
        let field = |i: usize| u32_at(data, 8 + 4 * i).ok_or("too short for a header");
        let (type_off, type_len, str_off, str_len) = (field(0)?, field(1)?, field(2)?, field(3)?);
        if hdr_len < 24 || hdr_len > data.len() {
            return Err(format!("header length {hdr_len} is invalid"));
        }
        let body = &data[hdr_len..];
        let range = |off: u32, len: u32, what: &str| {
            let (s, e) = (off as usize, off as usize + len as usize);
            body.get(s..e)
                .ok_or_else(|| format!("{what} [{s}, {e}) is past the section's end"))
        };
        let type_sec = range(type_off, type_len, "type section")?;
        let strings = range(str_off, str_len, "string section")?.to_vec();
        if strings.first().is_some_and(|&c| c != 0) {
            return Err("string section does not start with an empty string".into());
        }
        let mut btf = Btf {
            types: vec![Type {
                kind: 0,
                name: String::new(),
                size_or_type: 0,
                vlen: 0,
                kind_flag: false,
                members: Vec::new(),
                array: None,
                int_info: 0,
                enum_values: Vec::new(),
            }],
            strings,
            by_name: HashMap::new(),
        };
        let mut off = 0usize;
        while off < type_sec.len() {
            let id = btf.types.len() as u32;
            let (t, len) = btf
                .parse_type(type_sec, off)
                .map_err(|e| format!("type [{id}] at byte {off}: {e}"))?;
            if !t.name.is_empty() {
                btf.by_name.entry(t.name.clone()).or_default().push(id);
            }
            btf.types.push(t);
            off += len;
        }
        btf.check_refs()?;
        Ok(btf)
    }

    fn name(&self, off: u32) -> Result<String, String> {
        str_at(&self.strings, off).map(str::to_owned)
    }

    /// One type at `off`; returns it and its encoded length.
    fn parse_type(&self, sec: &[u8], off: usize) -> Result<(Type, usize), String> {
        let word = |i: usize| u32_at(sec, off + 4 * i).ok_or("truncated");
        let (name_off, info, size_or_type) = (word(0)?, word(1)?, word(2)?);
        let vlen = info & 0xffff;
        let k = (info >> 24) & 0x1f;
        let kind_flag = info >> 31 == 1;
        let mut t = Type {
            kind: k,
            name: self.name(name_off)?,
            size_or_type,
            vlen,
            kind_flag,
            members: Vec::new(),
            array: None,
            int_info: 0,
            enum_values: Vec::new(),
        };
        let base = off + 12;
        let at = |i: usize| u32_at(sec, base + 4 * i).ok_or("truncated trailer");
        let extra = match k {
            kind::INT => {
                t.int_info = at(0)?;
                4
            }
            kind::PTR
            | kind::FWD
            | kind::TYPEDEF
            | kind::VOLATILE
            | kind::CONST
            | kind::RESTRICT
            | kind::FUNC
            | kind::FLOAT
            | kind::TYPE_TAG => 0,
            kind::ARRAY => {
                t.array = Some((at(0)?, at(1)?, at(2)?));
                12
            }
            kind::STRUCT | kind::UNION | kind::DATASEC => {
                for i in 0..vlen as usize {
                    let (a, b, c) = (at(3 * i)?, at(3 * i + 1)?, at(3 * i + 2)?);
                    t.members.push(if k == kind::DATASEC {
                        Member {
                            name: String::new(),
                            type_id: a,
                            bit_offset: b.saturating_mul(8),
                            bitfield_size: c,
                        }
                    } else {
                        let (bit_offset, bitfield_size) = if kind_flag {
                            (c & 0xff_ffff, c >> 24)
                        } else {
                            (c, 0)
                        };
                        Member {
                            name: self.name(a)?,
                            type_id: b,
                            bit_offset,
                            bitfield_size,
                        }
                    });
                }
                12 * vlen as usize
            }
            kind::ENUM => {
                for i in 0..vlen as usize {
                    let v = at(2 * i + 1)? as i32 as i64;
                    t.enum_values.push((self.name(at(2 * i)?)?, v));
                }
                8 * vlen as usize
            }
            kind::ENUM64 => {
                for i in 0..vlen as usize {
                    let v = (at(3 * i + 1)? as u64 | (at(3 * i + 2)? as u64) << 32) as i64;
                    t.enum_values.push((self.name(at(3 * i)?)?, v));
                }
                12 * vlen as usize
            }
            kind::FUNC_PROTO => {
                for i in 0..vlen as usize {
                    t.members.push(Member {
                        name: self.name(at(2 * i)?)?,
                        type_id: at(2 * i + 1)?,
                        bit_offset: 0,
                        bitfield_size: 0,
                    });
                }
                8 * vlen as usize
            }
            kind::VAR | kind::DECL_TAG => {
                at(0)?;
                4
            }
            other => return Err(format!("unknown kind {other}")),
        };
        Ok((t, 12 + extra))
    }

    /// Every type id a type refers to must exist.
    fn check_refs(&self) -> Result<(), String> {
        let n = self.types.len() as u32;
        for (id, t) in self.types.iter().enumerate().skip(1) {
            let mut refs: Vec<u32> = t.members.iter().map(|m| m.type_id).collect();
            if let Some((e, i, _)) = t.array {
                refs.extend([e, i]);
            }
            if matches!(
                t.kind,
                kind::PTR
                    | kind::TYPEDEF
                    | kind::VOLATILE
                    | kind::CONST
                    | kind::RESTRICT
                    | kind::FUNC
                    | kind::FUNC_PROTO
                    | kind::VAR
                    | kind::DECL_TAG
                    | kind::TYPE_TAG
            ) {
                refs.push(t.size_or_type);
            }
            if let Some(bad) = refs.into_iter().find(|&r| r >= n) {
                return Err(format!(
                    "type [{id}] refers to type [{bad}], which does not exist"
                ));
            }
        }
        Ok(())
    }

    /// The type with id `id` (`None` past the end; id 0 is `void`).
    pub fn get(&self, id: u32) -> Option<&Type> {
        self.types.get(id as usize)
    }

    /// The string at `off` of the string section (line info's file names and source lines).
    pub fn string(&self, off: u32) -> Option<&str> {
        str_at(&self.strings, off).ok()
    }

    /// Ids of the types named `name`.
    pub fn by_name(&self, name: &str) -> &[u32] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// Follows typedefs, modifiers and type tags to the type they stand for.
    pub fn skip_mods(&self, mut id: u32) -> Result<u32, String> {
        for _ in 0..MAX_RESOLVE_DEPTH {
            let t = self.get(id).ok_or_else(|| format!("no type [{id}]"))?;
            match t.kind {
                kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return Ok(id),
            }
        }
        Err(format!("type [{id}] nests too deep"))
    }

    /// The size in bytes of type `id` (`btf__resolve_size`).
    pub fn size_of(&self, id: u32) -> Result<u64, String> {
        let mut id = id;
        let mut mult = 1u64;
        for _ in 0..MAX_RESOLVE_DEPTH {
            let t = self.get(id).ok_or_else(|| format!("no type [{id}]"))?;
            match t.kind {
                kind::INT
                | kind::STRUCT
                | kind::UNION
                | kind::ENUM
                | kind::ENUM64
                | kind::DATASEC
                | kind::FLOAT => return Ok(mult.saturating_mul(t.size_or_type as u64)),
                kind::PTR => return Ok(mult.saturating_mul(8)),
                kind::TYPEDEF
                | kind::VOLATILE
                | kind::CONST
                | kind::RESTRICT
                | kind::TYPE_TAG
                | kind::VAR => id = t.size_or_type,
                kind::ARRAY => {
                    let (elem, _, n) = t.array.expect("array trailer");
                    mult = mult.saturating_mul(n as u64);
                    id = elem;
                }
                _ => return Err(format!("type [{id}] ({}) has no size", kind_name(t.kind))),
            }
        }
        Err(format!("type [{id}] nests too deep"))
    }

    /// The DATASEC named `name`, if any.
    pub fn datasec(&self, name: &str) -> Option<&Type> {
        self.by_name(name)
            .iter()
            .filter_map(|&id| self.get(id))
            .find(|t| t.kind == kind::DATASEC)
    }
}

/// A kind's name, for messages.
pub fn kind_name(k: u32) -> &'static str {
    match k {
        0 => "void",
        kind::INT => "int",
        kind::PTR => "ptr",
        kind::ARRAY => "array",
        kind::STRUCT => "struct",
        kind::UNION => "union",
        kind::ENUM => "enum",
        kind::FWD => "fwd",
        kind::TYPEDEF => "typedef",
        kind::VOLATILE => "volatile",
        kind::CONST => "const",
        kind::RESTRICT => "restrict",
        kind::FUNC => "func",
        kind::FUNC_PROTO => "func_proto",
        kind::VAR => "var",
        kind::DATASEC => "datasec",
        kind::FLOAT => "float",
        kind::DECL_TAG => "decl_tag",
        kind::TYPE_TAG => "type_tag",
        kind::ENUM64 => "enum64",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header, then types and strings.
    fn section(types: &[u32], strings: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&MAGIC.to_le_bytes());
        v.extend_from_slice(&[1, 0]);
        let tl = (types.len() * 4) as u32;
        for w in [24, 0, tl, tl, strings.len() as u32] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        for w in types {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v.extend_from_slice(strings);
        v
    }

    #[test]
    fn parses_int_ptr_array_struct() {
        // [1] int "u32" size 4; [2] ptr -> 1; [3] array of 1 x 6; [4] struct "s" { u32 a; }
        let strings = b"\0u32\0s\0a\0";
        let types = [
            1,
            kind::INT << 24,
            4,
            32,
            0,
            kind::PTR << 24,
            1,
            0,
            kind::ARRAY << 24,
            0,
            1,
            1,
            6,
            5,
            kind::STRUCT << 24 | 1,
            4,
            7,
            1,
            0,
        ];
        let btf = Btf::parse(&section(&types, strings)).unwrap();
        assert_eq!(btf.size_of(1), Ok(4));
        assert_eq!(btf.size_of(2), Ok(8));
        assert_eq!(btf.size_of(3), Ok(24));
        assert_eq!(btf.by_name("s"), &[4]);
        assert_eq!(btf.get(4).unwrap().members[0].name, "a");
    }

    #[test]
    fn malformed_sections_are_errors() {
        assert!(Btf::parse(&[]).is_err());
        assert!(Btf::parse(&[0x9f, 0xeb, 2, 0]).is_err());
        let mut s = section(&[0, kind::PTR << 24, 7], b"\0");
        assert!(Btf::parse(&s).unwrap_err().contains("does not exist"));
        s.truncate(s.len() - 3);
        assert!(Btf::parse(&s).is_err());
        let bad_kind = section(&[0, 31 << 24, 0], b"\0");
        assert!(Btf::parse(&bad_kind).unwrap_err().contains("unknown kind"));
        // A self-referencing typedef nests too deep instead of looping.
        let lp = Btf::parse(&section(&[0, kind::TYPEDEF << 24, 1], b"\0")).unwrap();
        assert!(lp.size_of(1).is_err());
    }
}
