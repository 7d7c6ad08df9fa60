//! Linking one program out of an object's code sections, as libbpf does before `BPF_PROG_LOAD`
//! (`bpf_object__relocate`, `bpf_object__reloc_code`, `bpf_program__record_reloc`): the entry
//! function's instructions first; each BPF-to-BPF call (and `ld_imm64` of a function's address)
//! appends the called function once and gets its offset fixed; `ld_imm64` relocations against
//! maps and global data are recorded for the load to fill in with map handles; calls to
//! `extern ... __ksym` functions become `BPF_PSEUDO_KFUNC_CALL`s with the id kbpf's registry
//! gives that name. Function and line info follow every function to where it lands.

use super::btf_ext::{FuncRec, LineRec};
use kbpf::insn::Insn;
use kbpf::patch::{FuncInfo, LineInfo};
use kbpf::uapi::pseudo;
use std::collections::HashMap;

/// What a relocation's symbol is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SymRef {
    /// A map definition (index into the object's maps).
    Map(usize),
    /// A global-data section's map, at the symbol's offset.
    Data {
        /// Index into the object's maps.
        map: usize,
        /// The symbol's offset in its section (0 for the section symbol).
        value: u64,
    },
    /// Code: a function or the section symbol of a code section.
    Code {
        /// Index into the code sections.
        sec: usize,
        /// The symbol's offset in its section, in bytes.
        value: u64,
    },
    /// An undefined (`extern`) symbol.
    Extern(String),
    /// Anything else: what it is, for the error message.
    Other(String),
}

/// A function symbol in a code section.
#[derive(Clone, Debug)]
pub struct Func {
    /// Its name.
    pub name: String,
    /// First instruction slot in the section.
    pub start: usize,
    /// Length in slots.
    pub len: usize,
    /// Whether the symbol is global (programs must be).
    pub global: bool,
}

/// A section of code.
#[derive(Clone, Debug, Default)]
pub struct CodeSec {
    /// Its name.
    pub name: String,
    /// Its instructions.
    pub insns: Vec<Insn>,
    /// Relocations by instruction slot: the symbol, and its name for messages.
    pub relocs: HashMap<usize, (SymRef, String)>,
    /// Its functions, by start.
    pub funcs: Vec<Func>,
    /// `.BTF.ext` function info.
    pub func_info: Vec<FuncRec>,
    /// `.BTF.ext` line info.
    pub line_info: Vec<LineRec>,
}

impl CodeSec {
    /// The function that contains slot `slot`.
    fn func_at(&self, slot: usize) -> Option<usize> {
        self.funcs
            .iter()
            .position(|f| f.start <= slot && slot < f.start + f.len)
    }
}

/// A map reference for the load to fill in: `insns[insn]` is an `ld_imm64` of map `map`
/// (`BPF_PSEUDO_MAP_FD`), or of the address `value_off` bytes into its value
/// (`BPF_PSEUDO_MAP_VALUE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRef {
    /// The `ld_imm64`'s first slot.
    pub insn: usize,
    /// Index into the object's maps.
    pub map: usize,
    /// For global data: the offset into the value.
    pub value_off: Option<u32>,
}

/// A linked program.
#[derive(Clone, Debug, Default)]
pub struct Linked {
    /// Instructions; map references hold 0 until the load fills them.
    pub insns: Vec<Insn>,
    /// The map references.
    pub map_refs: Vec<MapRef>,
    /// Function info (one per function, starts increasing from 0).
    pub func_info: Vec<FuncInfo>,
    /// Line info, ordered by instruction.
    pub line_info: Vec<LineInfo>,
}

/// Links the program whose entry is function `func` of code section `sec`. `kfunc_id` resolves
/// an extern function's name to a kfunc id.
pub fn link(
    secs: &[CodeSec],
    sec: usize,
    func: usize,
    kfunc_id: &dyn Fn(&str) -> Option<i32>,
) -> Result<Linked, String> {
    let mut out = Linked::default();
    // The (section, slot) each output instruction came from.
    let mut origin: Vec<(usize, usize)> = Vec::new();
    let mut placed: HashMap<(usize, usize), usize> = HashMap::new();
    place(secs, sec, func, &mut out, &mut origin, &mut placed);
    let mut i = 0;
    while i < out.insns.len() {
        let (s, slot) = origin[i];
        let insn = out.insns[i];
        let reloc = secs[s].relocs.get(&slot);
        let here = || {
            let f = secs[s]
                .func_at(slot)
                .map_or("?", |f| secs[s].funcs[f].name.as_str());
            format!("section {}, function {f}, insn {slot}", secs[s].name)
        };
        if insn.code == 0x85 {
            // call
            let target = match (insn.src(), reloc) {
                (pseudo::CALL | 0, Some((SymRef::Extern(name), _))) => {
                    let id = kfunc_id(name).ok_or_else(|| {
                        format!("{}: kfunc {name} is not in kbpf's kfunc registry", here())
                    })?;
                    out.insns[i].set_src(pseudo::KFUNC_CALL);
                    out.insns[i].imm = id;
                    i += 1;
                    continue;
                }
                (pseudo::CALL, Some((SymRef::Code { sec: ts, value }, _))) => {
                    (*ts, (*value / 8) as i64 + insn.imm as i64 + 1)
                }
                (pseudo::CALL, None) => (s, slot as i64 + insn.imm as i64 + 1),
                (_, Some((_, name))) => {
                    return Err(format!(
                        "{}: call relocated against {name}, which is no function",
                        here()
                    ));
                }
                (_, None) => {
                    i += 1;
                    continue;
                }
            };
            let new = resolve(secs, target, &mut out, &mut origin, &mut placed)
                .map_err(|e| format!("{}: call {e}", here()))?;
            out.insns[i].imm = i32::try_from(new as i64 - i as i64 - 1)
                .map_err(|_| format!("{}: call distance overflows", here()))?;
        } else if insn.is_ld_imm64() {
            if i + 1 >= out.insns.len() || origin[i + 1] != (s, slot + 1) {
                return Err(format!("{}: ld_imm64 is cut off", here()));
            }
            match reloc {
                None => {}
                Some((SymRef::Map(m), _)) => {
                    out.insns[i].set_src(pseudo::MAP_FD);
                    out.map_refs.push(MapRef {
                        insn: i,
                        map: *m,
                        value_off: None,
                    });
                }
                Some((SymRef::Data { map, value }, name)) => {
                    let off = (*value as i64).saturating_add(insn.imm as i64);
                    let off = u32::try_from(off)
                        .map_err(|_| format!("{}: offset {off} into {name} is invalid", here()))?;
                    out.insns[i].set_src(pseudo::MAP_VALUE);
                    out.map_refs.push(MapRef {
                        insn: i,
                        map: *map,
                        value_off: Some(off),
                    });
                }
                Some((SymRef::Code { sec: ts, value }, _)) => {
                    // The address of a function (a callback): BPF_PSEUDO_FUNC.
                    let t = (*value as i64 + insn.imm as i64) / 8;
                    let new = resolve(secs, (*ts, t), &mut out, &mut origin, &mut placed)
                        .map_err(|e| format!("{}: function address {e}", here()))?;
                    out.insns[i].set_src(pseudo::FUNC);
                    out.insns[i].imm = i32::try_from(new as i64 - i as i64 - 1)
                        .map_err(|_| format!("{}: distance overflows", here()))?;
                }
                Some((SymRef::Extern(name), _)) => {
                    return Err(format!(
                        "{}: extern variable {name} is not supported (kbpf resolves extern \
                         functions as kfuncs; it has no __ksym variables or __kconfig)",
                        here()
                    ));
                }
                Some((SymRef::Other(what), name)) => {
                    return Err(format!("{}: relocation against {name}: {what}", here()));
                }
            }
            i += 2;
            continue;
        } else if let Some((_, name)) = reloc {
            return Err(format!(
                "{}: relocation against {name} on an instruction that is neither ld_imm64 nor call",
                here()
            ));
        }
        i += 1;
    }
    Ok(out)
}

/// The output index of section slot `target`, appending the function that holds it first.
fn resolve(
    secs: &[CodeSec],
    (ts, tslot): (usize, i64),
    out: &mut Linked,
    origin: &mut Vec<(usize, usize)>,
    placed: &mut HashMap<(usize, usize), usize>,
) -> Result<usize, String> {
    let sec = &secs[ts];
    let f = usize::try_from(tslot)
        .ok()
        .and_then(|t| sec.func_at(t))
        .ok_or_else(|| format!("target {tslot} in section {} is in no function", sec.name))?;
    let start = match placed.get(&(ts, f)) {
        Some(&p) => p,
        None => place(secs, ts, f, out, origin, placed),
    };
    Ok(start + (tslot as usize - sec.funcs[f].start))
}

/// Appends function `f` of section `s` with its function and line info; returns its start.
fn place(
    secs: &[CodeSec],
    s: usize,
    f: usize,
    out: &mut Linked,
    origin: &mut Vec<(usize, usize)>,
    placed: &mut HashMap<(usize, usize), usize>,
) -> usize {
    let sec = &secs[s];
    let func = &sec.funcs[f];
    let start = out.insns.len();
    placed.insert((s, f), start);
    let range = func.start..func.start + func.len;
    out.insns.extend_from_slice(&sec.insns[range.clone()]);
    origin.extend(range.clone().map(|slot| (s, slot)));
    let moved = |insn: u32| (insn as usize - func.start + start) as u32;
    if let Some(fi) = sec.func_info.iter().find(|r| r.insn as usize == func.start) {
        out.func_info.push(FuncInfo {
            insn_off: start as u32,
            type_id: fi.type_id,
        });
    }
    for l in sec
        .line_info
        .iter()
        .filter(|l| range.contains(&(l.insn as usize)))
    {
        out.line_info.push(LineInfo {
            insn_off: moved(l.insn),
            file_name_off: l.file_name_off,
            line_off: l.line_off,
            line_col: l.line_col,
        });
    }
    start
}
