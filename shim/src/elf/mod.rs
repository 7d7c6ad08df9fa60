//! The ELF object loader: objects that clang (`-target bpf`) builds for libbpf, loaded the way
//! libbpf's `bpf_object__open` / `bpf_object__load` (`tools/lib/bpf/libbpf.c`) load them.
//!
//! [`Object::parse`] reads an object without touching kbpf's state: program sections by
//! libbpf's names ([`section`]), several programs per object and per section, maps from BTF
//! `.maps` and legacy `maps` and the global-data sections ([`maps`]), BTF and `.BTF.ext`
//! ([`btf`], [`btf_ext`]), CO-RE relocations ([`core_relo`]), and each program linked with its
//! subprograms ([`link`]). [`Object::load`] then creates the maps, writes the global data,
//! loads every program through the verifier and fills prog_arrays from their `.values`
//! initializers ([`load`]). Every malformed or unsupported input is an [`ElfError`] naming the
//! section or symbol and the reason.
//!
//! ELF reading is the `object` crate's (gimli-rs; the reader rustc and backtrace use, fuzzed
//! upstream); BTF is read here, since kbpf needs only the parts listed above.

pub mod btf;
pub mod btf_ext;
pub mod core_relo;
pub mod link;
mod load;
pub mod maps;
pub mod section;
pub mod symbols;

pub use load::{LoadOpts, LoadedObject, LoadedProg, annotate, attr, bind};

use btf::{Btf, kind};
use btf_ext::BtfExt;
use kbpf::Errno;
use kbpf::insn::Insn;
use kbpf::patch::{FuncInfo, LineInfo};
use kbpf::uapi::{AttachType, ProgFlags, ProgType};
use link::{CodeSec, Func, MapRef, SymRef};
use maps::MapDef;
use object::elf;
use object::read::elf::{ElfFile64, FileHeader};
use object::{Endianness, Object as _, ObjectSection, ObjectSymbol, RelocationTarget};
use std::collections::HashMap;

/// Why an object could not be opened or loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfError {
    /// The errno a loader returns for it (`EINVAL` malformed, `ENOTSUPP` unsupported, or the
    /// kernel's for a refused map or program).
    pub errno: Errno,
    /// What went wrong, naming the section, symbol or program.
    pub msg: String,
    /// The verifier log, for a refused program.
    pub log: String,
    /// Whether kbpf refused a well-formed object (the verifier or a map create), rather than
    /// the object being unusable input.
    pub refused: bool,
}

impl ElfError {
    /// A malformed object.
    pub fn bad(msg: impl Into<String>) -> ElfError {
        ElfError {
            errno: Errno::EINVAL,
            msg: msg.into(),
            log: String::new(),
            refused: false,
        }
    }

    /// Something kbpf does not support.
    pub fn unsupported(msg: impl Into<String>) -> ElfError {
        ElfError {
            errno: Errno::ENOTSUPP,
            ..ElfError::bad(msg)
        }
    }
}

impl std::fmt::Display for ElfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {:?}", self.msg, self.errno)
    }
}

impl std::error::Error for ElfError {}

/// A program of an object, linked and ready to load.
#[derive(Clone, Debug)]
pub struct ProgDef {
    /// Its function's name.
    pub name: String,
    /// The section it is in.
    pub section: String,
    /// Its type, from the section name.
    pub prog_type: ProgType,
    /// Its expected attach type, from the section name.
    pub attach: Option<AttachType>,
    /// Load flags from the section name.
    pub flags: ProgFlags,
    /// The linked instructions (map references are filled at load).
    pub insns: Vec<Insn>,
    /// Map references to fill.
    pub map_refs: Vec<MapRef>,
    /// Function info.
    pub func_info: Vec<FuncInfo>,
    /// Line info.
    pub line_info: Vec<LineInfo>,
    /// For a raw-buffer program: its context's size, from its first parameter's BTF type.
    pub ctx_size: Option<u32>,
}

/// A parsed object.
#[derive(Clone, Debug)]
pub struct Object {
    /// The license string (`license` section), empty if none.
    pub license: String,
    /// Maps: definitions first, then global-data sections.
    pub maps: Vec<MapDef>,
    /// Programs, in section then symbol order.
    pub progs: Vec<ProgDef>,
    /// The object's BTF, if it has one (line info's strings live there).
    pub btf: Option<Btf>,
}

/// The largest map value (the kernel's `KMALLOC_MAX_SIZE` on x86-64, which `array_map_alloc`
/// checks): a global-data section must fit in one.
const MAX_VALUE_SIZE: u64 = 4 << 20;

/// `EM_BPF`.
const EM_BPF: u16 = 247;

impl Object {
    /// Parses and links an object (libbpf's `bpf_object__open_mem` and the relocation half of
    /// `bpf_object__load`). Touches no kbpf state.
    pub fn parse(data: &[u8]) -> Result<Object, ElfError> {
        Object::parse_with(data, None)
    }

    /// [`Object::parse`], with the global functions of `.text` taken as programs of
    /// `text_programs` (libbpf's custom section handlers; the bpf_conformance runner's `--elf`
    /// objects put their `main` there). Their raw-buffer context size is left to the caller.
    pub fn parse_with(
        data: &[u8],
        text_programs: Option<section::SecDef>,
    ) -> Result<Object, ElfError> {
        // The ELF reader borrows its headers in place, so they must be 8-aligned.
        let aligned;
        let data = if data.as_ptr() as usize % 8 == 0 {
            data
        } else {
            aligned = symbols::Aligned::new(data);
            aligned.bytes()
        };
        let file = ElfFile64::<Endianness>::parse(data)
            .map_err(|e| ElfError::bad(format!("not an ELF64 object: {e}")))?;
        let hdr = file.elf_header();
        let endian = file.endian();
        if !file.is_little_endian() {
            return Err(ElfError::bad(
                "object is big-endian; kbpf runs little-endian BPF",
            ));
        }
        if hdr.e_machine(endian) != EM_BPF {
            return Err(ElfError::bad(format!(
                "object is for machine {}, not BPF ({EM_BPF})",
                hdr.e_machine(endian)
            )));
        }
        if hdr.e_type(endian) != elf::ET_REL {
            return Err(ElfError::bad("object is not relocatable (ET_REL)"));
        }
        let btf = match file.section_by_name(".BTF") {
            Some(s) => Some(
                s.data()
                    .map_err(|e| ElfError::bad(format!("section .BTF: {e}")))
                    .and_then(|d| {
                        Btf::parse(d).map_err(|e| ElfError::bad(format!("section .BTF: {e}")))
                    })?,
            ),
            None => None,
        };
        let ext = match (file.section_by_name(".BTF.ext"), &btf) {
            (Some(s), Some(b)) => {
                let d = s
                    .data()
                    .map_err(|e| ElfError::bad(format!("section .BTF.ext: {e}")))?;
                BtfExt::parse(d, &|off| b.string(off).map(str::to_owned))
                    .map_err(|e| ElfError::bad(format!("section .BTF.ext: {e}")))?
            }
            _ => BtfExt::default(),
        };
        let mut p = Parser {
            file: &file,
            btf: btf.as_ref(),
            ext: &ext,
            maps: Vec::new(),
            map_by_sym: HashMap::new(),
            data_maps: HashMap::new(),
            code: Vec::new(),
            code_index: HashMap::new(),
            license: String::new(),
            text_programs,
        };
        p.sections()?;
        p.map_defs()?;
        p.code_relocs()?;
        p.apply_core()?;
        p.prog_array_inits()?;
        let progs = p.programs()?;
        Ok(Object {
            license: p.license,
            maps: p.maps,
            progs,
            btf,
        })
    }

    /// The program named `name` (its function's name).
    pub fn prog(&self, name: &str) -> Option<&ProgDef> {
        self.progs.iter().find(|p| p.name == name)
    }
}

/// State of one parse.
struct Parser<'a, 'd> {
    file: &'a ElfFile64<'d, Endianness>,
    btf: Option<&'a Btf>,
    ext: &'a BtfExt,
    maps: Vec<MapDef>,
    /// Map index by (section index, symbol offset) of map definitions.
    map_by_sym: HashMap<(usize, u64), usize>,
    /// Global-data map index by section index.
    data_maps: HashMap<usize, usize>,
    code: Vec<CodeSec>,
    /// Code section position in `code` by ELF section index.
    code_index: HashMap<usize, usize>,
    license: String,
    /// What `.text`'s global functions are, when they are programs.
    text_programs: Option<section::SecDef>,
}

impl Parser<'_, '_> {
    /// Classifies every section: code, global data, license; unknown sections with code are
    /// errors.
    fn sections(&mut self) -> Result<(), ElfError> {
        for s in self.file.sections() {
            let name = s
                .name()
                .map_err(|e| ElfError::bad(format!("section #{}: bad name: {e}", s.index().0)))?;
            let sec_err = |e: object::Error| ElfError::bad(format!("section {name}: {e}"));
            let exec = matches!(s.flags(), object::SectionFlags::Elf { sh_flags }
                if sh_flags & u64::from(elf::SHF_EXECINSTR) != 0);
            let is_prog_bits = matches!(s.kind(), object::SectionKind::Text);
            if exec && is_prog_bits {
                if name != ".text" && section::sec_def(name).is_none() {
                    return Err(ElfError::unsupported(format!(
                        "section {name}: not a program section kbpf knows (libbpf's names: \
                         socket, tc, tcx/ingress, tcx/egress, classifier, action, xdp, \
                         sk_lookup, cgroup_skb/ingress, kprobe/..., tracepoint/..., syscall, \
                         netfilter; kbpf's raw_buffer)"
                    )));
                }
                let data = s.data().map_err(sec_err)?;
                if data.len() % 8 != 0 {
                    return Err(ElfError::bad(format!(
                        "section {name}: size {} is not a multiple of 8",
                        data.len()
                    )));
                }
                self.code_index.insert(s.index().0, self.code.len());
                self.code.push(CodeSec {
                    name: name.to_string(),
                    insns: data
                        .chunks_exact(8)
                        .map(|c| Insn::from_bytes(c.try_into().expect("8 bytes")))
                        .collect(),
                    func_info: self.ext.func_info.get(name).cloned().unwrap_or_default(),
                    line_info: self.ext.line_info.get(name).cloned().unwrap_or_default(),
                    ..CodeSec::default()
                });
            } else if maps::is_data_section(name) {
                if s.size() > MAX_VALUE_SIZE {
                    return Err(ElfError {
                        errno: Errno::E2BIG,
                        ..ElfError::bad(format!(
                            "section {name}: {} bytes of global data, more than a map value may \
                             hold ({MAX_VALUE_SIZE})",
                            s.size()
                        ))
                    });
                }
                let init = if s.kind() == object::SectionKind::UninitializedData {
                    vec![0; s.size() as usize]
                } else {
                    s.data().map_err(sec_err)?.to_vec()
                };
                if init.is_empty() {
                    continue;
                }
                let def = maps::data_map(name, init)
                    .map_err(|e| ElfError::bad(format!("section {name}: {e}")))?;
                self.data_maps.insert(s.index().0, self.maps.len());
                self.maps.push(def);
            } else if name == "license" {
                let d = s.data().map_err(sec_err)?;
                let end = d.iter().position(|&c| c == 0).unwrap_or(d.len());
                self.license = String::from_utf8_lossy(&d[..end]).into_owned();
            }
        }
        // Functions of each code section.
        for sym in self.file.symbols() {
            let Some(&c) = sym.section_index().and_then(|i| self.code_index.get(&i.0)) else {
                continue;
            };
            if sym.kind() != object::SymbolKind::Text {
                continue;
            }
            let name = sym.name().unwrap_or("").to_string();
            let sec = &mut self.code[c];
            let (start, len) = (sym.address(), sym.size());
            if start % 8 != 0
                || len % 8 != 0
                || start
                    .checked_add(len)
                    .is_none_or(|end| end > sec.insns.len() as u64 * 8)
            {
                return Err(ElfError::bad(format!(
                    "section {}: function {name} at [{start}, +{len}) is misaligned or past the end",
                    sec.name
                )));
            }
            sec.funcs.push(Func {
                name,
                start: (start / 8) as usize,
                len: (len / 8) as usize,
                global: sym.is_global(),
            });
        }
        for sec in &mut self.code {
            sec.funcs.sort_by_key(|f| f.start);
        }
        Ok(())
    }

    /// Map definitions: BTF `.maps` and legacy `maps`.
    fn map_defs(&mut self) -> Result<(), ElfError> {
        let btf_maps = self.file.section_by_name(".maps").map(|s| s.index().0);
        let legacy = self.file.section_by_name("maps");
        let legacy_idx = legacy.as_ref().map(|s| s.index().0);
        let mut legacy_syms = Vec::new();
        for sym in self.file.symbols() {
            let Some(si) = sym.section_index().map(|i| i.0) else {
                continue;
            };
            let name = sym.name().unwrap_or("").to_string();
            if Some(si) == btf_maps && sym.kind() != object::SymbolKind::Section {
                let btf = self.btf.ok_or_else(|| {
                    ElfError::bad(format!("map {name}: .maps without BTF to describe it"))
                })?;
                let var = btf
                    .datasec(".maps")
                    .and_then(|ds| {
                        ds.members.iter().find_map(|m| {
                            let v = btf.get(m.type_id)?;
                            (v.kind == kind::VAR && v.name == name).then_some(v.size_or_type)
                        })
                    })
                    .ok_or_else(|| ElfError::bad(format!("map {name}: no BTF variable")))?;
                let mut def = maps::btf_map(btf, &name, var)
                    .map_err(|e| ElfError::unsupported(format!("map {name}: {e}")))?;
                def.sym_off = sym.address();
                def.sym_size = sym.size();
                self.map_by_sym.insert((si, sym.address()), self.maps.len());
                self.maps.push(def);
            } else if Some(si) == legacy_idx && sym.kind() != object::SymbolKind::Section {
                legacy_syms.push((name, sym.address()));
            }
        }
        if let Some(sec) = legacy {
            let data = sec
                .data()
                .map_err(|e| ElfError::bad(format!("section maps: {e}")))?;
            if !legacy_syms.is_empty() {
                // libbpf: every definition has the same size, the section's over the count.
                let size = data.len() / legacy_syms.len();
                for (name, off) in legacy_syms {
                    let def = (off as usize)
                        .checked_add(size)
                        .and_then(|end| data.get(off as usize..end))
                        .ok_or_else(|| {
                            ElfError::bad(format!("map {name}: definition past the section's end"))
                        })?;
                    let mut m = maps::legacy_map(&name, def)
                        .map_err(|e| ElfError::unsupported(format!("map {name}: {e}")))?;
                    m.sym_off = off;
                    m.sym_size = size as u64;
                    self.map_by_sym
                        .insert((sec.index().0, off), self.maps.len());
                    self.maps.push(m);
                }
            }
        }
        Ok(())
    }

    /// What symbol `idx` is, for a relocation.
    fn sym_ref(&self, idx: object::SymbolIndex) -> Result<(SymRef, String), ElfError> {
        let sym = self
            .file
            .symbol_by_index(idx)
            .map_err(|e| ElfError::bad(format!("relocation symbol #{}: {e}", idx.0)))?;
        let mut name = sym.name().unwrap_or("").to_string();
        if sym.is_undefined() {
            return Ok((SymRef::Extern(name.clone()), name));
        }
        let si = sym.section_index().map(|i| i.0);
        if name.is_empty() {
            if let Some(s) =
                si.and_then(|i| self.file.section_by_index(object::SectionIndex(i)).ok())
            {
                name = s.name().unwrap_or("?").to_string();
            }
        }
        let r = match si {
            Some(i) if self.code_index.contains_key(&i) => SymRef::Code {
                sec: self.code_index[&i],
                value: sym.address(),
            },
            Some(i) if self.data_maps.contains_key(&i) => SymRef::Data {
                map: self.data_maps[&i],
                value: sym.address(),
            },
            Some(i) => match self.map_by_sym.get(&(i, sym.address())) {
                Some(&m) => SymRef::Map(m),
                None => SymRef::Other(
                    "it is not a map, global data or a function kbpf can reference".into(),
                ),
            },
            None => SymRef::Other("it has no section".into()),
        };
        Ok((r, name))
    }

    /// Relocations of every code section.
    fn code_relocs(&mut self) -> Result<(), ElfError> {
        for s in self.file.sections() {
            let Some(&c) = self.code_index.get(&s.index().0) else {
                continue;
            };
            let mut relocs = HashMap::new();
            for (off, r) in s.relocations() {
                let sec_name = &self.code[c].name;
                if off % 8 != 0 || off / 8 >= self.code[c].insns.len() as u64 {
                    return Err(ElfError::bad(format!(
                        "section {sec_name}: relocation at byte {off} is outside its instructions"
                    )));
                }
                let RelocationTarget::Symbol(idx) = r.target() else {
                    return Err(ElfError::bad(format!(
                        "section {sec_name}: relocation at byte {off} has no symbol"
                    )));
                };
                let sr = self.sym_ref(idx)?;
                relocs.insert((off / 8) as usize, sr);
            }
            self.code[c].relocs = relocs;
        }
        Ok(())
    }

    /// CO-RE relocations, applied to the code sections in place.
    fn apply_core(&mut self) -> Result<(), ElfError> {
        for (sec_name, recs) in &self.ext.core_relos {
            let Some(sec) = self.code.iter_mut().find(|c| &c.name == sec_name) else {
                return Err(ElfError::bad(format!(
                    "CO-RE relocations for section {sec_name}, which has no code"
                )));
            };
            let btf = self.btf.expect("a .BTF.ext is only read with its .BTF");
            for (i, r) in recs.iter().enumerate() {
                let access = btf.string(r.access_str_off).unwrap_or("?");
                let tname = btf
                    .get(r.type_id)
                    .map(|t| t.name.clone())
                    .unwrap_or_else(|| format!("[{}]", r.type_id));
                core_relo::apply(
                    btf,
                    &mut sec.insns,
                    r.insn as usize,
                    r.type_id,
                    access,
                    r.kind,
                )
                .map_err(|e| {
                    ElfError::unsupported(format!(
                        "section {sec_name}: CO-RE relocation #{i} (kind {}, type {tname}, \
                             access {access}) at insn {}: {e}",
                        r.kind, r.insn
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// prog_array `.values = { [i] = &prog }` initializers (relocations in `.rel.maps`).
    fn prog_array_inits(&mut self) -> Result<(), ElfError> {
        let Some(sec) = self.file.section_by_name(".maps") else {
            return Ok(());
        };
        let si = sec.index().0;
        for (off, r) in sec.relocations() {
            let RelocationTarget::Symbol(idx) = r.target() else {
                return Err(ElfError::bad(format!(
                    ".maps: relocation at {off} has no symbol"
                )));
            };
            let (target, name) = self.sym_ref(idx)?;
            let m = self
                .maps
                .iter()
                .enumerate()
                .position(|(i, m)| {
                    self.map_by_sym.get(&(si, m.sym_off)) == Some(&i)
                        && m.sym_off <= off
                        && off < m.sym_off.saturating_add(m.sym_size)
                })
                .ok_or_else(|| ElfError::bad(format!(".maps: relocation at {off} is in no map")))?;
            let def = &mut self.maps[m];
            let Some(values) = def.values_off else {
                return Err(ElfError::bad(format!(
                    "map {}: relocation against {name} outside a values initializer",
                    def.name
                )));
            };
            let rel = off - def.sym_off;
            if rel < values as u64 || (rel - values as u64) % 8 != 0 {
                return Err(ElfError::bad(format!(
                    "map {}: relocation at {rel} is not a values slot",
                    def.name
                )));
            }
            let slot = ((rel - values as u64) / 8) as u32;
            if slot >= def.attr.max_entries {
                return Err(ElfError::bad(format!(
                    "map {}: values slot {slot} is past max_entries {}",
                    def.name, def.attr.max_entries
                )));
            }
            if !matches!(target, SymRef::Code { .. }) {
                return Err(ElfError::bad(format!(
                    "map {}: values slot {slot} names {name}, which is no program",
                    def.name
                )));
            }
            def.slots.push((slot, name));
        }
        Ok(())
    }

    /// Every program: each global function of each program section, linked.
    fn programs(&self) -> Result<Vec<ProgDef>, ElfError> {
        let kfunc_id = |n: &str| kbpf::kfunc::find_by_name(n).map(|k| k.id as i32);
        let mut progs = Vec::new();
        for (c, sec) in self.code.iter().enumerate() {
            let text = sec.name == ".text";
            let def = match (text, self.text_programs) {
                (true, None) => continue,
                (true, Some(d)) => d,
                (false, _) => section::sec_def(&sec.name).expect("checked in sections()"),
            };
            for (f, func) in sec.funcs.iter().enumerate() {
                if text && !func.global {
                    continue;
                }
                if !func.global {
                    return Err(ElfError::unsupported(format!(
                        "section {}: program {} is static; programs must be global (as libbpf \
                         requires)",
                        sec.name, func.name
                    )));
                }
                let linked = link::link(&self.code, c, f, &kfunc_id).map_err(ElfError::bad)?;
                if linked.insns.len() > kbpf::uapi::limits::BPF_MAXINSNS {
                    return Err(ElfError {
                        errno: Errno::E2BIG,
                        ..ElfError::bad(format!(
                            "program {}: {} instructions, more than the limit of {}",
                            func.name,
                            linked.insns.len(),
                            kbpf::uapi::limits::BPF_MAXINSNS
                        ))
                    });
                }
                let ctx_size = if def.prog_type == ProgType::RawBuffer && !text {
                    Some(self.ctx_size(&linked, &func.name)?)
                } else {
                    None
                };
                progs.push(ProgDef {
                    name: func.name.clone(),
                    section: sec.name.clone(),
                    prog_type: def.prog_type,
                    attach: def.attach,
                    flags: def.flags,
                    insns: linked.insns,
                    map_refs: linked.map_refs,
                    func_info: linked.func_info,
                    line_info: linked.line_info,
                    ctx_size,
                });
            }
        }
        Ok(progs)
    }

    /// A raw-buffer program's context size: the size of what its first parameter points to.
    fn ctx_size(&self, linked: &link::Linked, name: &str) -> Result<u32, ElfError> {
        let err = |why: &str| {
            ElfError::bad(format!(
                "program {name}: cannot tell its raw-buffer context size from BTF: {why}"
            ))
        };
        let btf = self.btf.ok_or_else(|| err("the object has no BTF"))?;
        let fi = linked
            .func_info
            .first()
            .ok_or_else(|| err("no function info"))?;
        let func = btf.get(fi.type_id).ok_or_else(|| err("bad type id"))?;
        let proto = btf
            .get(func.size_or_type)
            .ok_or_else(|| err("bad type id"))?;
        let arg = proto
            .members
            .first()
            .ok_or_else(|| err("it takes no argument"))?;
        let ptr = btf
            .skip_mods(arg.type_id)
            .ok()
            .and_then(|id| btf.get(id))
            .filter(|t| t.kind == kind::PTR)
            .ok_or_else(|| err("its argument is not a pointer"))?;
        let size = btf.size_of(ptr.size_or_type).map_err(|e| err(&e))?;
        u32::try_from(size)
            .ok()
            .filter(|&s| s > 0)
            .ok_or_else(|| err("the context type has no size"))
    }
}
