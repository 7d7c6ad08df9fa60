//! The ELF loader on malformed and unsupported objects: each is a clear error naming the
//! section, symbol or program and the reason, never a panic. Objects are the committed
//! examples cut or patched, or built here with `object`'s ELF writer.

use kbpf::Errno;
use kbpf_shim::demo::{PARSER_O, TCX_CHAIN_O};
use kbpf_shim::elf::{ElfError, LoadOpts, Object};
use object::write::{self, Relocation, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolKind,
    SymbolScope, elf,
};

fn err(bytes: &[u8]) -> ElfError {
    Object::parse(bytes).expect_err("the loader should refuse this object")
}

fn expect(bytes: &[u8], errno: Errno, words: &[&str]) {
    let e = err(bytes);
    assert_eq!(e.errno, errno, "{e}");
    for w in words {
        assert!(e.msg.contains(w), "{w:?} not in: {}", e.msg);
    }
}

/// `r0 = 0; exit`.
const RET0: [u8; 16] = [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
/// `r1 = 0 ll` (to be relocated), `r0 = 0`, `exit`.
const LD_MAP: [u8; 32] = [
    0x18, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0,
    0, 0, 0,
];

/// A BPF object with one code section `sec` holding one global function `f` of `code`.
fn obj_with(sec: &str, code: &[u8]) -> (write::Object<'static>, write::SectionId, write::SymbolId) {
    let mut o = write::Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);
    let s = o.add_section(Vec::new(), sec.as_bytes().to_vec(), SectionKind::Text);
    o.append_section_data(s, code, 8);
    let f = sym(
        &mut o,
        "f",
        code.len() as u64,
        SymbolKind::Text,
        SymbolSection::Section(s),
    );
    (o, s, f)
}

fn reloc_to(o: &mut write::Object<'static>, s: write::SectionId, sym: write::SymbolId) {
    o.add_relocation(
        s,
        Relocation {
            offset: 0,
            symbol: sym,
            addend: 0,
            flags: RelocationFlags::Elf {
                r_type: elf::R_BPF_64_64,
            },
        },
    )
    .unwrap();
}

/// Adds a global symbol `name` of `kind` in `section` (at offset 0).
fn sym(
    o: &mut write::Object<'static>,
    name: &str,
    size: u64,
    kind: SymbolKind,
    section: SymbolSection,
) -> write::SymbolId {
    o.add_symbol(Symbol {
        name: name.as_bytes().to_vec(),
        value: 0,
        size,
        kind,
        scope: SymbolScope::Dynamic,
        weak: false,
        section,
        flags: SymbolFlags::None,
    })
}

#[test]
fn a_minimal_object_parses() {
    let (o, _, _) = obj_with("socket", &RET0);
    let obj = Object::parse(&o.write().unwrap()).unwrap();
    assert_eq!(obj.progs.len(), 1);
    assert_eq!(obj.progs[0].name, "f");
    assert_eq!(obj.progs[0].insns.len(), 2);
}

#[test]
fn truncated_objects_are_errors() {
    for n in [
        0,
        3,
        16,
        63,
        64,
        200,
        PARSER_O.len() / 2,
        PARSER_O.len() - 1,
    ] {
        let e = err(&PARSER_O[..n]);
        assert_eq!(e.errno, Errno::EINVAL, "{n}: {e}");
        assert!(!e.msg.is_empty());
    }
}

#[test]
fn wrong_machine_is_an_error() {
    let mut b = PARSER_O.to_vec();
    b[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    expect(&b, Errno::EINVAL, &["machine 62", "not BPF"]);
}

#[test]
fn an_unknown_program_section_is_an_error() {
    let (o, _, _) = obj_with("nonsense/hook", &RET0);
    expect(
        &o.write().unwrap(),
        Errno::ENOTSUPP,
        &["section nonsense/hook", "not a program section"],
    );
}

#[test]
fn a_relocation_to_a_symbol_that_is_no_map_is_an_error() {
    let (mut o, s, _) = obj_with("xdp", &LD_MAP);
    let d = o.add_section(Vec::new(), b".notmaps".to_vec(), SectionKind::Data);
    o.append_section_data(d, b"hi\0", 1);
    let ghost = sym(
        &mut o,
        "ghost",
        3,
        SymbolKind::Data,
        SymbolSection::Section(d),
    );
    reloc_to(&mut o, s, ghost);
    expect(
        &o.write().unwrap(),
        Errno::EINVAL,
        &["section xdp", "function f", "ghost", "not a map"],
    );
}

#[test]
fn a_relocation_to_a_missing_symbol_is_an_error() {
    // An ld_imm64 against an undefined symbol: an extern variable kbpf cannot resolve.
    let (mut o, s, _) = obj_with("tc", &LD_MAP);
    let missing = sym(
        &mut o,
        "missing_map",
        0,
        SymbolKind::Data,
        SymbolSection::Undefined,
    );
    reloc_to(&mut o, s, missing);
    expect(
        &o.write().unwrap(),
        Errno::EINVAL,
        &["section tc", "extern variable missing_map"],
    );
    // A call to an undefined function that is no kfunc kbpf has.
    let call = [
        0x85, 0x10, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x95, 0, 0, 0, 0, 0, 0, 0,
    ];
    let (mut o, s, _) = obj_with("tc", &call);
    let ext = sym(
        &mut o,
        "bpf_no_such_kfunc",
        0,
        SymbolKind::Text,
        SymbolSection::Undefined,
    );
    o.add_relocation(
        s,
        Relocation {
            offset: 0,
            symbol: ext,
            addend: 0,
            flags: RelocationFlags::Elf {
                r_type: elf::R_BPF_64_32,
            },
        },
    )
    .unwrap();
    expect(
        &o.write().unwrap(),
        Errno::EINVAL,
        &["kfunc bpf_no_such_kfunc", "registry"],
    );
}

#[test]
fn a_map_definition_without_btf_is_an_error() {
    let (mut o, s, _) = obj_with("tc", &LD_MAP);
    let maps = o.add_section(Vec::new(), b".maps".to_vec(), SectionKind::Data);
    o.append_section_data(maps, &[0u8; 32], 8);
    let m = sym(
        &mut o,
        "counters",
        32,
        SymbolKind::Data,
        SymbolSection::Section(maps),
    );
    reloc_to(&mut o, s, m);
    expect(&o.write().unwrap(), Errno::EINVAL, &["map counters", "BTF"]);
}

#[test]
fn legacy_maps_are_read() {
    let (mut o, s, _) = obj_with("socket", &LD_MAP);
    let maps = o.add_section(Vec::new(), b"maps".to_vec(), SectionKind::Data);
    let def: Vec<u8> = [2u32, 4, 8, 16, 0]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    o.append_section_data(maps, &def, 4);
    let m = sym(
        &mut o,
        "legacy",
        20,
        SymbolKind::Data,
        SymbolSection::Section(maps),
    );
    reloc_to(&mut o, s, m);
    let obj = Object::parse(&o.write().unwrap()).unwrap();
    assert_eq!(obj.maps.len(), 1);
    assert_eq!(obj.maps[0].name, "legacy");
    assert_eq!(
        (obj.maps[0].attr.key_size, obj.maps[0].attr.value_size),
        (4, 8)
    );
    assert_eq!(obj.progs[0].map_refs.len(), 1);
    // A legacy map of a type kbpf does not have (array_of_maps) is a clear error.
    let mut def = def;
    def[0] = 12;
    let (mut o, s, _) = obj_with("socket", &LD_MAP);
    let maps = o.add_section(Vec::new(), b"maps".to_vec(), SectionKind::Data);
    o.append_section_data(maps, &def, 4);
    let m = sym(
        &mut o,
        "inner",
        20,
        SymbolKind::Data,
        SymbolSection::Section(maps),
    );
    reloc_to(&mut o, s, m);
    expect(
        &o.write().unwrap(),
        Errno::ENOTSUPP,
        &["map inner", "array_of_maps", "inner maps"],
    );
}

#[test]
fn an_oversized_program_is_e2big() {
    let n = kbpf::uapi::limits::BPF_MAXINSNS + 1;
    let mut code = Vec::with_capacity(n * 8);
    for _ in 0..n - 1 {
        code.extend_from_slice(&RET0[..8]);
    }
    code.extend_from_slice(&RET0[8..]);
    let (o, _, _) = obj_with("socket", &code);
    expect(
        &o.write().unwrap(),
        Errno::E2BIG,
        &["program f", "more than the limit"],
    );
}

#[test]
fn a_misaligned_code_section_is_an_error() {
    let (o, _, _) = obj_with("socket", &RET0[..12]);
    let e = err(&o.write().unwrap());
    assert_eq!(e.errno, Errno::EINVAL);
    assert!(e.msg.contains("section socket"), "{}", e.msg);
}

/// The file offset of section `name` in `bytes`.
fn section_offset(bytes: &[u8], name: &str) -> usize {
    use object::{Object as _, ObjectSection};
    let f = object::File::parse(bytes).unwrap();
    let s = f.section_by_name(name).unwrap();
    s.file_range().unwrap().0 as usize
}

#[test]
fn btf_that_does_not_parse_is_an_error() {
    let mut b = TCX_CHAIN_O.to_vec();
    let off = section_offset(&b, ".BTF");
    b[off] ^= 0xff; // magic
    expect(&b, Errno::EINVAL, &["section .BTF", "magic"]);
    let mut b = TCX_CHAIN_O.to_vec();
    // The string section's length (header word 5) past the section's end.
    b[off + 20..off + 24].copy_from_slice(&u32::MAX.to_le_bytes());
    expect(&b, Errno::EINVAL, &["section .BTF", "string section"]);
    let mut b = TCX_CHAIN_O.to_vec();
    let off = section_offset(&b, ".BTF.ext");
    b[off + 2] = 9; // version
    expect(&b, Errno::EINVAL, &["section .BTF.ext", "version"]);
}

#[test]
fn a_static_program_is_refused_as_libbpf_does() {
    let (mut o, _, f) = obj_with("socket", &RET0);
    o.symbol_mut(f).scope = SymbolScope::Compilation;
    expect(
        &o.write().unwrap(),
        Errno::ENOTSUPP,
        &["program f", "static"],
    );
}

#[test]
fn loading_nothing_selected_is_enoent_and_leaves_no_handles() {
    kbpf_shim::host::install();
    let obj = Object::parse(PARSER_O).unwrap();
    let opts = LoadOpts {
        prog: Some("nope".into()),
        ..LoadOpts::default()
    };
    assert_eq!(obj.load(&opts).unwrap_err().errno, Errno::ENOENT);
}

#[test]
fn runner_elf_objects_run_through_the_plugin() {
    kbpf_shim::host::install();
    // As the bpf_conformance runner's --elf mode writes them: `main` in `.text`, no BTF.
    // r0 = *(u32 *)(r1 + 4); exit
    let code = [0x61, 0x10, 4, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let (mut o, _, f) = obj_with(".text", &code);
    o.symbol_mut(f).name = b"main".to_vec();
    let hex: String = o
        .write()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x} "))
        .collect();
    let args = ["01 02 03 04 05 06 07 08".to_string(), "--elf".to_string()];
    let r0 = kbpf_shim::conformance::plugin(&args, &hex).unwrap();
    assert_eq!(r0, 0x0807_0605);
    // Without --elf the same text is not a program.
    assert!(kbpf_shim::conformance::plugin(&args[..1], &hex).is_err());
}
