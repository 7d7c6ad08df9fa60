//! What one `kbpf` process (a single command, or a whole `kbpf shell` session) holds between
//! commands: the objects and `.data` programs it loaded, the maps it created, the tcx links it
//! made. An object loaded with `prog load` stays loaded, so later `prog run` lines see the
//! maps and global data earlier runs left.

use super::CmdError;
use super::args::EngineArg;
use crate::conformance::Engine;
use crate::elf::{LoadOpts, LoadedObject, Object};
use kbpf::syscall::{self, Fd};
use std::path::{Path, PathBuf};

/// A `.data` file's program loaded with `prog load`.
#[derive(Debug)]
pub struct DataProg {
    /// Its name (the file's stem).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Its handle.
    pub fd: Fd,
    /// The file's `-- mem` bytes.
    pub mem: Vec<u8>,
}

/// The state of a CLI process.
#[derive(Debug, Default)]
pub struct State {
    /// Loaded objects by path.
    pub objects: Vec<(PathBuf, LoadedObject)>,
    /// Loaded `.data` programs.
    pub data_progs: Vec<DataProg>,
    /// Maps made with `map create`.
    pub maps: Vec<(String, Fd)>,
    /// tcx links: (program name, handle).
    pub links: Vec<(String, Fd)>,
    /// Sockets made with `sock create` or `sock accept`: (name, handle).
    pub socks: Vec<(String, Fd)>,
    /// Network namespaces made with `sock netns` or `ct netns-add`: (name, handle).
    pub netns: Vec<(String, Fd)>,
    /// sk_lookup links: (program name, handle).
    pub sk_links: Vec<(String, Fd)>,
}

impl State {
    /// Makes `engine` (the JIT when `None` and no engine was chosen yet) the one loads use.
    /// The JIT's registration is permanent, as a kernel's JIT is: asking for the interpreter
    /// afterwards is an error.
    pub fn engine(&self, engine: Option<EngineArg>) -> Result<Engine, CmdError> {
        match engine {
            Some(EngineArg::Interp) if kbpf::jit::enabled() => Err(CmdError::usage(
                "--engine interp: this process already registered the JIT (registration is \
                 permanent, as a kernel's JIT is); use a new process",
            )),
            Some(EngineArg::Interp) => Ok(Engine::Interp),
            None if !kbpf::jit::enabled() && self.any_loaded() => Ok(Engine::Interp),
            _ => {
                Engine::Jit.select();
                Ok(Engine::Jit)
            }
        }
    }

    fn any_loaded(&self) -> bool {
        !self.objects.is_empty() || !self.data_progs.is_empty()
    }

    /// The loaded object at `path`, if any.
    pub fn object(&self, path: &Path) -> Option<&LoadedObject> {
        self.objects.iter().find(|(p, _)| p == path).map(|(_, o)| o)
    }

    /// Loads the object at `path` (replacing an earlier load of it) and returns it.
    pub fn load_object(&mut self, path: &Path, opts: &LoadOpts) -> Result<&LoadedObject, CmdError> {
        let bytes =
            std::fs::read(path).map_err(|e| CmdError::usage(format!("{}: {e}", path.display())))?;
        let obj = Object::parse(&bytes).map_err(|e| CmdError::elf(path, e))?;
        let loaded = obj.load(opts).map_err(|e| CmdError::elf(path, e))?;
        if let Some(i) = self.objects.iter().position(|(p, _)| p == path) {
            let (_, old) = self.objects.remove(i);
            old.close();
        }
        self.objects.push((path.to_path_buf(), loaded));
        Ok(&self.objects.last().expect("just pushed").1)
    }

    /// The loaded object at `path`, loading it first if needed (with root's rules when
    /// `privileged`).
    pub fn object_or_load(
        &mut self,
        path: &Path,
        privileged: bool,
    ) -> Result<&LoadedObject, CmdError> {
        if self.object(path).is_none() {
            let opts = LoadOpts {
                privileged,
                ..LoadOpts::default()
            };
            self.load_object(path, &opts)?;
        }
        Ok(self.object(path).expect("loaded"))
    }

    /// The handle of the program named `name` (an object's function, or a `.data` program).
    pub fn prog(&self, name: &str) -> Result<Fd, CmdError> {
        self.objects
            .iter()
            .find_map(|(_, o)| o.prog(name).map(|p| p.fd))
            .or_else(|| {
                self.data_progs
                    .iter()
                    .find(|d| d.name == name)
                    .map(|d| d.fd)
            })
            .ok_or_else(|| CmdError::usage(format!("no loaded program named {name}")))
    }

    /// The name of the loaded program with id `id`, if this state holds it.
    pub fn prog_name(&self, id: u32) -> Option<String> {
        let id_of = |fd| match syscall::obj_get_info(fd) {
            Ok(syscall::ObjInfo::Prog(i)) => Some(i.id),
            _ => None,
        };
        self.objects
            .iter()
            .flat_map(|(_, o)| o.progs.iter().map(|p| (p.name.clone(), p.fd)))
            .chain(self.data_progs.iter().map(|d| (d.name.clone(), d.fd)))
            .find(|&(_, fd)| id_of(fd) == Some(id))
            .map(|(n, _)| n)
    }

    /// The handle of the map named `name` (made with `map create`, or an object's).
    pub fn map(&self, name: &str) -> Result<Fd, CmdError> {
        self.maps
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, fd)| fd)
            .or_else(|| self.objects.iter().find_map(|(_, o)| o.map(name)))
            .ok_or_else(|| CmdError::usage(format!("no map named {name}")))
    }

    /// The handle of the socket named `name`.
    pub fn sock(&self, name: &str) -> Result<Fd, CmdError> {
        self.socks
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, fd)| fd)
            .ok_or_else(|| CmdError::usage(format!("no socket named {name}")))
    }

    /// Creates a netns named `name` (its number when `None`), with the id `id` programs name
    /// it by if given: (its number, its handle). Nothing is left behind on error.
    pub fn netns_add(
        &mut self,
        name: Option<String>,
        id: Option<i32>,
    ) -> Result<(u32, Fd), CmdError> {
        let errno = |what: &'static str| move |e| CmdError::errno(what, e);
        let fd = kbpf::net::fd::netns_create().map_err(errno("netns add"))?;
        let made = kbpf::net::fd::netns_get(fd).and_then(|n| {
            if let Some(id) = id {
                n.set_id(id)?;
            }
            Ok(n.num())
        });
        let num = match made {
            Ok(num) => num,
            Err(e) => {
                let _ = syscall::close(fd);
                return Err(CmdError::errno("netns add: id", e));
            }
        };
        let name = name.unwrap_or_else(|| num.to_string());
        if name == "init" || self.netns.iter().any(|(n, _)| *n == name) {
            let _ = syscall::close(fd);
            return Err(CmdError::usage(format!("a netns named {name} exists")));
        }
        self.netns.push((name, fd));
        Ok((num, fd))
    }

    /// The index in [`State::netns`] of the netns numbered `num`.
    fn netns_index(&self, num: u32) -> Option<usize> {
        self.netns
            .iter()
            .position(|&(_, fd)| kbpf::net::fd::netns_get(fd).is_ok_and(|n| n.num() == num))
    }

    /// The handle of the session's netns numbered `num`: `None` for the initial one (0);
    /// `EINVAL` for a number no netns of the session has.
    pub fn netns_by_num(&self, num: u32) -> Result<Option<Fd>, CmdError> {
        if num == kbpf::net::nsid::INIT_NET {
            return Ok(None);
        }
        let i = self
            .netns_index(num)
            .ok_or(CmdError::errno("--netns", kbpf::Errno::EINVAL))?;
        Ok(Some(self.netns[i].1))
    }

    /// Closes the session's handle to the netns numbered `num` (`ip netns del`): `EINVAL` for
    /// the initial one, `ENOENT` for none. Returns whether it exited (it lives on while its
    /// sockets do; its conntrack entries go when it exits).
    pub fn netns_del(&mut self, num: u32) -> Result<bool, CmdError> {
        if num == kbpf::net::nsid::INIT_NET {
            return Err(CmdError::errno("netns del", kbpf::Errno::EINVAL));
        }
        let i = self
            .netns_index(num)
            .ok_or(CmdError::errno("netns del", kbpf::Errno::ENOENT))?;
        let (_, fd) = self.netns.remove(i);
        let net = kbpf::net::fd::netns_get(fd).map_err(|e| CmdError::errno("netns del", e))?;
        let _ = syscall::close(fd);
        Ok(!net.is_alive())
    }

    /// Closes every handle.
    pub fn close(self) {
        for (_, fd) in self
            .sk_links
            .into_iter()
            .chain(self.socks)
            .chain(self.netns)
        {
            let _ = syscall::close(fd);
        }
        for (_, fd) in self.links {
            let _ = syscall::close(fd);
        }
        for (_, o) in self.objects {
            o.close();
        }
        for d in self.data_progs {
            let _ = syscall::close(d.fd);
        }
        for (_, fd) in self.maps {
            let _ = syscall::close(fd);
        }
    }
}
