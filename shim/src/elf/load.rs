//! Loading a parsed object into kbpf (libbpf's `bpf_object__load`: `bpf_object__create_maps`,
//! `bpf_object__load_progs`, `bpf_object__init_prog_arrays`): maps are created and global data
//! written, every selected program is loaded through the verifier with its map references
//! filled in, then prog_arrays get the programs their `.values` initializers name. It never
//! stops half-way: on any error every handle it made is closed again.

use super::{ElfError, Object, ProgDef};
use kbpf::insn::Insn;
use kbpf::syscall::{self, Fd};
use kbpf::uapi::ProgType;
use kbpf::{Errno, ProgLoadAttr};

/// Which programs to load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOpts {
    /// Only programs of this section.
    pub section: Option<String>,
    /// Only the program with this function name.
    pub prog: Option<String>,
    /// Load as this type instead of the section's (bpftool's `type`).
    pub prog_type: Option<ProgType>,
    /// Root's rules (`CAP_SYS_ADMIN`, `CAP_PERFMON`: reading kernel objects such as
    /// `struct nf_conn`) instead of the default mode's `CAP_BPF` + `CAP_NET_ADMIN`.
    pub privileged: bool,
}

impl LoadOpts {
    /// Whether `p` is selected.
    pub fn selects(&self, p: &ProgDef) -> bool {
        self.section.as_ref().is_none_or(|s| *s == p.section)
            && self.prog.as_ref().is_none_or(|n| *n == p.name)
    }
}

/// A loaded program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedProg {
    /// Its function name.
    pub name: String,
    /// Its section.
    pub section: String,
    /// Its handle.
    pub fd: Fd,
    /// Index in [`Object::progs`].
    pub index: usize,
}

/// An object whose maps and programs are loaded.
#[derive(Debug)]
pub struct LoadedObject {
    /// The parsed object.
    pub object: Object,
    /// Map handles, in [`Object::maps`] order.
    pub map_fds: Vec<Fd>,
    /// The loaded programs.
    pub progs: Vec<LoadedProg>,
}

impl LoadedObject {
    /// The handle of the map named `name`.
    pub fn map(&self, name: &str) -> Option<Fd> {
        let i = self.object.maps.iter().position(|m| m.name == name)?;
        Some(self.map_fds[i])
    }

    /// The loaded program named `name`.
    pub fn prog(&self, name: &str) -> Option<&LoadedProg> {
        self.progs.iter().find(|p| p.name == name)
    }

    /// Closes every handle.
    pub fn close(self) {
        for p in &self.progs {
            let _ = syscall::close(p.fd);
        }
        for &fd in &self.map_fds {
            let _ = syscall::close(fd);
        }
    }
}

/// The instructions of `p` with its map references bound to `map_fds`.
pub fn bind(p: &ProgDef, map_fds: &[Fd]) -> Vec<Insn> {
    let mut insns = p.insns.clone();
    for r in &p.map_refs {
        insns[r.insn].imm = map_fds[r.map] as i32;
        if let Some(off) = r.value_off {
            insns[r.insn + 1].imm = off as i32;
        }
    }
    insns
}

/// The load attributes of `p` (its name truncated to 15 characters, as libbpf does).
pub fn attr<'a>(p: &'a ProgDef, insns: &'a [Insn], opts: &LoadOpts) -> ProgLoadAttr<'a> {
    let name = &p.name[..p.name.len().min(15)];
    let mut a = ProgLoadAttr::new(opts.prog_type.unwrap_or(p.prog_type), insns).with_name(name);
    a.expected_attach_type = p.attach;
    a.flags = p.flags;
    if let Some(n) = p.ctx_size {
        a = a.with_ctx_size(n);
    }
    a.with_line_info(&p.line_info)
        .with_privileged(opts.privileged)
}

/// `log` with the source lines of `p`'s line info (see [`crate::dump::annotate_log`]).
pub fn annotate(obj: &Object, p: &ProgDef, log: &str) -> String {
    match &obj.btf {
        Some(btf) => crate::dump::annotate_log(log, btf, &p.line_info),
        None => log.to_string(),
    }
}

impl Object {
    /// Creates the maps and writes the global data; on error closes what it made.
    pub fn create_maps(&self) -> Result<Vec<Fd>, ElfError> {
        let mut fds = Vec::new();
        let r = (|| {
            for m in &self.maps {
                let fd = syscall::map_create(&m.attr).map_err(|e| ElfError {
                    errno: e,
                    refused: true,
                    ..ElfError::bad(format!("map {}: map_create failed", m.name))
                })?;
                fds.push(fd);
                if let Some(init) = &m.init {
                    syscall::map_update_elem(fd, &0u32.to_ne_bytes(), init, 0).map_err(|e| {
                        ElfError {
                            errno: e,
                            refused: true,
                            ..ElfError::bad(format!("map {}: writing its initial data", m.name))
                        }
                    })?;
                }
            }
            Ok(())
        })();
        match r {
            Ok(()) => Ok(fds),
            Err(e) => {
                for fd in fds {
                    let _ = syscall::close(fd);
                }
                Err(e)
            }
        }
    }

    /// Loads the maps and the programs `opts` selects, then fills the prog_arrays.
    pub fn load(self, opts: &LoadOpts) -> Result<LoadedObject, ElfError> {
        if !self.progs.iter().any(|p| opts.selects(p)) {
            return Err(ElfError {
                errno: Errno::ENOENT,
                ..ElfError::bad(match (&opts.section, &opts.prog) {
                    (_, Some(n)) => format!("no program named {n}"),
                    (Some(s), None) => format!("no program in section {s}"),
                    (None, None) => "the object has no programs".into(),
                })
            });
        }
        let map_fds = self.create_maps()?;
        let mut loaded = LoadedObject {
            object: self,
            map_fds,
            progs: Vec::new(),
        };
        match loaded.load_progs(opts) {
            Ok(()) => Ok(loaded),
            Err(e) => {
                loaded.close();
                Err(e)
            }
        }
    }
}

impl LoadedObject {
    fn load_progs(&mut self, opts: &LoadOpts) -> Result<(), ElfError> {
        for (index, p) in self.object.progs.iter().enumerate() {
            if !opts.selects(p) {
                continue;
            }
            let insns = bind(p, &self.map_fds);
            let mut log = String::new();
            let fd =
                syscall::prog_load_log(&attr(p, &insns, opts), &mut log).map_err(|e| ElfError {
                    errno: e,
                    log,
                    refused: true,
                    ..ElfError::bad(format!(
                        "program {} (section {}): load failed",
                        p.name, p.section
                    ))
                })?;
            self.progs.push(LoadedProg {
                name: p.name.clone(),
                section: p.section.clone(),
                fd,
                index,
            });
        }
        // prog_arrays from their `.values` initializers, programs by name.
        for (m, def) in self.object.maps.iter().enumerate() {
            for (slot, name) in &def.slots {
                let Some(p) = self.progs.iter().find(|p| &p.name == name) else {
                    continue;
                };
                syscall::map_update_elem(
                    self.map_fds[m],
                    &slot.to_ne_bytes(),
                    &p.fd.to_ne_bytes(),
                    0,
                )
                .map_err(|e| ElfError {
                    errno: e,
                    refused: true,
                    ..ElfError::bad(format!("map {}: slot {slot} = program {name}", def.name))
                })?;
            }
        }
        Ok(())
    }
}
