//! Map definitions in an object: BTF-defined maps in `.maps` (libbpf's `__uint`, `__type` and
//! `__array` forms, `parse_btf_map_def` in `tools/lib/bpf/libbpf.c`), legacy `struct
//! bpf_map_def` entries in `maps`, and the global-data sections (`.data`, `.rodata`, `.bss`,
//! `.data.*`, `.rodata.*`) that become single-element array maps (`bpf_object__init_internal_map`).

use super::btf::{Btf, kind};
use kbpf::MapAttr;
use kbpf::uapi::{MapFlags, MapType};

/// A map the object defines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDef {
    /// Its name: the variable's, or the data section's (`.bss`).
    pub name: String,
    /// What to create.
    pub attr: MapAttr,
    /// For a global-data map: the section's initial contents (zeros for `.bss`).
    pub init: Option<Vec<u8>>,
    /// For a prog_array: slots filled from the definition's `.values` initializer, by program
    /// name.
    pub slots: Vec<(u32, String)>,
    /// Byte offset of the `values` member in the definition (where `.rel.maps` entries for
    /// `.values` point), for BTF-defined prog_arrays.
    pub values_off: Option<u32>,
    /// The symbol's offset and size in its section.
    pub sym_off: u64,
    /// The symbol's size.
    pub sym_size: u64,
}

impl MapDef {
    /// A definition of `name` creating `attr`, with no initial data or slots.
    fn new(name: &str, attr: MapAttr) -> MapDef {
        MapDef {
            name: name.to_string(),
            attr,
            init: None,
            slots: Vec::new(),
            values_off: None,
            sym_off: 0,
            sym_size: 0,
        }
    }
}

/// The map type numbered `t`, with a clear error for the types kbpf does not have.
pub fn map_type(t: u32) -> Result<MapType, String> {
    Ok(match t {
        1 => MapType::Hash,
        2 => MapType::Array,
        3 => MapType::ProgArray,
        5 => MapType::PercpuHash,
        6 => MapType::PercpuArray,
        15 => MapType::Sockmap,
        18 => MapType::Sockhash,
        12 | 13 => {
            return Err(format!(
                "map type {t} ({}) holds inner maps, which kbpf does not have",
                if t == 12 {
                    "array_of_maps"
                } else {
                    "hash_of_maps"
                }
            ));
        }
        other => return Err(format!("map type {other} is not one kbpf has")),
    })
}

/// The value of an `__uint(name, N)` member: a pointer to an array of N elements.
fn uint_member(btf: &Btf, type_id: u32) -> Result<u32, String> {
    let p = btf.get(btf.skip_mods(type_id)?).ok_or("no such type")?;
    if p.kind != kind::PTR {
        return Err("is not an __uint() (pointer to array)".into());
    }
    let a = btf
        .get(btf.skip_mods(p.size_or_type)?)
        .ok_or("no such type")?;
    a.array
        .map(|(_, _, n)| n)
        .ok_or_else(|| "is not an __uint() (pointer to array)".into())
}

/// The size of the type an `__type(name, T)` member points to.
fn type_member(btf: &Btf, type_id: u32) -> Result<u32, String> {
    let p = btf.get(btf.skip_mods(type_id)?).ok_or("no such type")?;
    if p.kind != kind::PTR {
        return Err("is not a __type() (pointer)".into());
    }
    let n = btf.size_of(p.size_or_type)?;
    u32::try_from(n).map_err(|_| "is too large".into())
}

/// Parses the BTF-defined map `name` (a `.maps` variable) of BTF type `var_type`.
pub fn btf_map(btf: &Btf, name: &str, var_type: u32) -> Result<MapDef, String> {
    let st = btf.get(btf.skip_mods(var_type)?).ok_or("no such type")?;
    if st.kind != kind::STRUCT {
        return Err(format!(
            "definition is a {}, not a struct",
            super::btf::kind_name(st.kind)
        ));
    }
    let (mut t, mut key, mut value, mut max, mut flags) = (None, None, None, None, 0u32);
    let mut values_off = None;
    for m in &st.members {
        let field = |r: Result<u32, String>| r.map_err(|e| format!("field {}: {e}", m.name));
        match m.name.as_str() {
            "type" => t = Some(field(uint_member(btf, m.type_id))?),
            "max_entries" => max = Some(field(uint_member(btf, m.type_id))?),
            "map_flags" => flags = field(uint_member(btf, m.type_id))?,
            "key_size" => key = Some(field(uint_member(btf, m.type_id))?),
            "value_size" => value = Some(field(uint_member(btf, m.type_id))?),
            "key" => key = Some(field(type_member(btf, m.type_id))?),
            "value" => value = Some(field(type_member(btf, m.type_id))?),
            "values" => {
                // `__array(values, T)`: the inner programs (or maps) of a prog_array (or map
                // of maps), an array of pointers.
                let a = btf
                    .get(btf.skip_mods(m.type_id)?)
                    .and_then(|a| a.array)
                    .ok_or("field values: is not an __array()")?;
                let elem = btf.get(btf.skip_mods(a.0)?).ok_or("no such type")?;
                if elem.kind != kind::PTR {
                    return Err("field values: is not an array of pointers".into());
                }
                values_off = Some(m.bit_offset / 8);
            }
            "pinning" => {
                let p = field(uint_member(btf, m.type_id))?;
                if p != 0 {
                    return Err("pinning is not supported (kbpf has no BPF filesystem)".into());
                }
            }
            "numa_node" => {}
            other => return Err(format!("unknown field {other}")),
        }
    }
    let map_type = map_type(t.ok_or("no type field")?)?;
    if values_off.is_some() {
        if map_type != MapType::ProgArray {
            return Err("values initializers are only supported for prog_array maps".into());
        }
        value.get_or_insert(4);
    }
    let attr = MapAttr {
        flags: MapFlags::from_bits(flags)
            .ok_or_else(|| format!("map_flags {flags:#x} are not ones kbpf knows"))?,
        ..MapAttr::new(
            map_type,
            key.ok_or("no key or key_size field")?,
            value.ok_or("no value or value_size field")?,
            max.ok_or("no max_entries field")?,
        )
    };
    Ok(MapDef {
        values_off,
        ..MapDef::new(name, attr)
    })
}

/// A legacy `struct bpf_map_def` (type, key_size, value_size, max_entries, map_flags; at least
/// the first four words) at `def`.
pub fn legacy_map(name: &str, def: &[u8]) -> Result<MapDef, String> {
    if def.len() < 16 {
        return Err(format!(
            "definition is {} bytes, shorter than struct bpf_map_def",
            def.len()
        ));
    }
    let w = |i: usize| u32::from_le_bytes(def[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    let flags = if def.len() >= 20 { w(4) } else { 0 };
    let attr = MapAttr {
        flags: MapFlags::from_bits(flags)
            .ok_or_else(|| format!("map_flags {flags:#x} are not ones kbpf knows"))?,
        ..MapAttr::new(map_type(w(0))?, w(1), w(2), w(3))
    };
    Ok(MapDef::new(name, attr))
}

/// Whether a section named `name` holds global data.
pub fn is_data_section(name: &str) -> bool {
    matches!(name, ".data" | ".rodata" | ".bss")
        || [".data.", ".rodata.", ".bss."]
            .iter()
            .any(|p| name.starts_with(p))
}

/// The single-element array map for the global-data section `name` with contents `init`:
/// `.rodata*` is read-only to programs (libbpf also freezes it).
pub fn data_map(name: &str, init: Vec<u8>) -> Result<MapDef, String> {
    let size = u32::try_from(init.len()).map_err(|_| "section is too large".to_string())?;
    let mut attr = MapAttr::new(MapType::Array, 4, size, 1);
    if name.starts_with(".rodata") {
        attr.flags = MapFlags::RDONLY_PROG;
    }
    Ok(MapDef {
        init: Some(init),
        ..MapDef::new(name, attr)
    })
}
