//! The mprog oracle's script language: one `bpf_mprog` operation through tcx per line, one
//! result line per operation, so that kbpf ([`crate::tcx_script`]) and the host Linux kernel
//! ([`crate::host_mprog`]) run the same text and their outputs compare line by line. Linux has
//! no counterpart; the language is the one `mprog-oracle` (`shared/oracle`) reads, extended as
//! noted below so that every field of every command can be driven.
//!
//! | line | call |
//! | --- | --- |
//! | `load N [tc\|xdp]` | load N trivial programs, numbered after those already loaded |
//! | `attach P FLAGS REL EXPREV [OLD]` | `BPF_PROG_ATTACH`; with `replace`, `replace_bpf_fd` = OLD (default REL) |
//! | `detach P FLAGS REL EXPREV` | `BPF_PROG_DETACH`; P = 0 passes no program |
//! | `link P FLAGS REL EXPREV` | `BPF_LINK_CREATE`, numbering the link (`OK link=L`) |
//! | `linkdetach L` | `BPF_LINK_DETACH` |
//! | `linkclose L` | closes the link's handle |
//! | `linkupdate L P [OLD [FLAGS]]` | `BPF_LINK_UPDATE`; OLD alone sets `BPF_F_REPLACE`; with FLAGS (extension), exactly those flags and `old_prog_fd` = OLD (0 = none) |
//! | `query [CNT [QFLAGS [AFLAGS]]]` | `BPF_PROG_QUERY` with room for CNT (default 64); the flags inputs are an extension |
//! | `reset` | closes every link, detaches every program |
//!
//! FLAGS is `0` or a comma list of `before`, `after`, `replace`, `id`, `link`, `first`, `last`
//! and numbers. REL is a program number, or a link number with `link`, passed as a handle or,
//! with `id`, as the object's id; `0` passes nothing and `=V` the raw value V. P and OLD are
//! program numbers (0 = none). A closed link keeps its number and id (a relative by id then
//! finds nothing) but can no longer be named by handle. A malformed line prints
//! `EINVAL(script)` without calling anything.

use kbpf::mprog::MprogFlags;

/// `BPF_F_REPLACE` for `BPF_LINK_UPDATE`.
const REPLACE: u32 = 1 << 2;

/// A failed call: the positive errno.
pub type Errno = i32;

/// `BPF_PROG_ATTACH`/`BPF_PROG_DETACH`/`BPF_LINK_CREATE` attributes, as handles and raw values.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttachReq {
    /// The program's handle (0 = none).
    pub prog: u32,
    /// `attach_flags` / link `flags`.
    pub flags: u32,
    /// `relative_fd` or `relative_id`.
    pub relative: u32,
    /// `expected_revision`.
    pub expected_revision: u64,
    /// `replace_bpf_fd` (attach only).
    pub replace: u32,
}

/// `BPF_PROG_QUERY`'s inputs and outputs.
#[derive(Clone, Debug, Default)]
pub struct QueryReq {
    /// Input `query_flags`.
    pub query_flags: u32,
    /// Input `attach_flags`.
    pub attach_flags: u32,
    /// Output: the revision.
    pub revision: u64,
    /// Output: the number of programs.
    pub count: u32,
    /// Room in and output of the program ids.
    pub prog_ids: Vec<u32>,
    /// Room in and output of the link ids.
    pub link_ids: Vec<u32>,
}

/// What runs the calls: kbpf's tcx or the host kernel's. Handles are `u32` fds.
pub trait Backend {
    /// Loads one trivial program (`r0 = TCX_NEXT; exit`, or XDP); its handle and id.
    fn load(&mut self, xdp: bool) -> Result<(u32, u32), Errno>;
    /// `BPF_PROG_ATTACH`.
    fn attach(&mut self, a: &AttachReq) -> Result<(), Errno>;
    /// `BPF_PROG_DETACH`.
    fn detach(&mut self, a: &AttachReq) -> Result<(), Errno>;
    /// `BPF_LINK_CREATE`: the link's handle and id.
    fn link_create(&mut self, a: &AttachReq) -> Result<(u32, u32), Errno>;
    /// `BPF_LINK_DETACH`.
    fn link_detach(&mut self, link: u32) -> Result<(), Errno>;
    /// `BPF_LINK_UPDATE`.
    fn link_update(&mut self, link: u32, new: u32, flags: u32, old: u32) -> Result<(), Errno>;
    /// `BPF_PROG_QUERY`; on `ENOSPC` the outputs are filled as far as there was room.
    fn query(&mut self, q: &mut QueryReq) -> Result<(), Errno>;
    /// Closes a handle.
    fn close(&mut self, fd: u32);
}

/// The errno's symbolic name (`EINVAL`), or `errno N` for one kbpf's table does not know.
pub fn errno_name(e: Errno) -> String {
    match kbpf::Errno::from_errno(e).and_then(|e| e.name()) {
        Some(name) => name.to_string(),
        None => format!("errno {e}"),
    }
}

/// A line that is not a valid operation.
struct Malformed;

/// The outcome of one line: a result text, an errno, or a malformed line.
type Outcome = Result<String, Result<Errno, Malformed>>;

/// One script's numbering of programs and links, over a backend.
pub struct Script<B: Backend> {
    backend: B,
    echo: bool,
    /// Program handles and ids by number (1-based).
    progs: Vec<(u32, u32)>,
    /// Link handles (`None` once closed) and ids by number (1-based).
    links: Vec<(Option<u32>, u32)>,
}

fn num(s: Option<&str>) -> Result<u64, Malformed> {
    let s = s.ok_or(Malformed)?;
    let v = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    v.map_err(|_| Malformed)
}

fn num32(s: Option<&str>) -> Result<u32, Malformed> {
    u32::try_from(num(s)?).map_err(|_| Malformed)
}

/// Parses FLAGS.
fn flags(s: Option<&str>) -> Result<u32, Malformed> {
    let s = s.ok_or(Malformed)?;
    let mut bits = 0u32;
    for part in s.split(',') {
        bits |= match part {
            "before" => MprogFlags::BEFORE.bits(),
            "after" => MprogFlags::AFTER.bits(),
            "replace" => MprogFlags::REPLACE.bits(),
            "id" => MprogFlags::ID.bits(),
            "link" => MprogFlags::LINK.bits(),
            "first" => MprogFlags::FIRST.bits(),
            "last" => MprogFlags::LAST.bits(),
            n => num32(Some(n))?,
        };
    }
    Ok(bits)
}

impl<B: Backend> Script<B> {
    /// A script over `backend`; with `echo`, each result follows its operation, left-justified
    /// in 44 columns.
    pub fn new(backend: B, echo: bool) -> Self {
        Script {
            backend,
            echo,
            progs: Vec::new(),
            links: Vec::new(),
        }
    }

    /// The backend.
    pub fn backend(&mut self) -> &mut B {
        &mut self.backend
    }

    fn prog(&self, s: Option<&str>) -> Result<u32, Malformed> {
        let s = s.ok_or(Malformed)?;
        if let Some(raw) = s.strip_prefix('=') {
            return num32(Some(raw));
        }
        match num(Some(s))? {
            0 => Ok(0),
            n => self.progs.get(n as usize - 1).map(|p| p.0).ok_or(Malformed),
        }
    }

    fn link(&self, s: Option<&str>) -> Result<u32, Malformed> {
        let n = num(s)? as usize;
        self.links
            .get(n.wrapping_sub(1))
            .and_then(|l| l.0)
            .ok_or(Malformed)
    }

    /// REL under `bits`.
    fn relative(&self, s: Option<&str>, bits: u32) -> Result<u32, Malformed> {
        let s = s.ok_or(Malformed)?;
        if let Some(raw) = s.strip_prefix('=') {
            return num32(Some(raw));
        }
        let i = match num(Some(s))? {
            0 => return Ok(0),
            n => n as usize - 1,
        };
        let by_id = bits & MprogFlags::ID.bits() != 0;
        let v = if bits & MprogFlags::LINK.bits() != 0 {
            self.links
                .get(i)
                .and_then(|&(fd, id)| if by_id { Some(id) } else { fd })
        } else {
            self.progs
                .get(i)
                .map(|&(fd, id)| if by_id { id } else { fd })
        };
        v.ok_or(Malformed)
    }

    fn attach_req(&self, w: &[&str]) -> Result<AttachReq, Malformed> {
        let bits = flags(w.get(2).copied())?;
        Ok(AttachReq {
            prog: self.prog(w.get(1).copied())?,
            flags: bits,
            relative: self.relative(w.get(3).copied(), bits)?,
            expected_revision: num(w.get(4).copied())?,
            replace: 0,
        })
    }

    fn load(&mut self, n: u64, kind: Option<&str>) -> Outcome {
        let xdp = match kind {
            None | Some("tc") => false,
            Some("xdp") => true,
            Some(_) => return Err(Err(Malformed)),
        };
        for _ in 0..n {
            let p = self.backend.load(xdp).map_err(Ok)?;
            self.progs.push(p);
        }
        Ok("OK".into())
    }

    fn name(numbers: impl Iterator<Item = u32>, id: u32) -> String {
        match numbers.into_iter().position(|x| x == id) {
            Some(i) => (i + 1).to_string(),
            None => format!("#{id}"),
        }
    }

    fn query(&mut self, w: &[&str]) -> Outcome {
        let room = match w.get(1) {
            Some(_) => num32(w.get(1).copied()).map_err(Err)?,
            None => 64,
        };
        let mut q = QueryReq {
            query_flags: w.get(2).map_or(Ok(0), |f| flags(Some(f))).map_err(Err)?,
            attach_flags: w.get(3).map_or(Ok(0), |f| flags(Some(f))).map_err(Err)?,
            prog_ids: vec![0; room.min(256) as usize],
            link_ids: vec![0; room.min(256) as usize],
            ..QueryReq::default()
        };
        let status = match self.backend.query(&mut q) {
            Ok(()) => "OK",
            Err(e) if e == kbpf::Errno::ENOSPC.to_errno() => "ENOSPC",
            Err(e) => return Err(Ok(e)),
        };
        let shown = q.prog_ids.len().min(q.count as usize);
        let list = |v: &[u32], f: &dyn Fn(u32) -> String| {
            if shown == 0 {
                "-".to_string()
            } else {
                let names: Vec<String> = v[..shown].iter().map(|&x| f(x)).collect();
                names.join(",")
            }
        };
        let progs = list(&q.prog_ids, &|id| {
            Self::name(self.progs.iter().map(|p| p.1), id)
        });
        let links = list(&q.link_ids, &|id| match id {
            0 => "0".into(),
            id => Self::name(self.links.iter().map(|l| l.1), id),
        });
        Ok(format!(
            "{status} rev={} count={} progs={progs} links={links}",
            q.revision, q.count
        ))
    }

    /// `reset`: closes every link, then detaches the head until nothing is left.
    fn reset(&mut self) {
        for l in &mut self.links {
            if let Some(fd) = l.0.take() {
                self.backend.close(fd);
            }
        }
        // BEFORE without a relative takes the head; AFTER would hit the full-bundle ERANGE.
        let head = AttachReq {
            flags: MprogFlags::BEFORE.bits(),
            ..AttachReq::default()
        };
        for _ in 0..4096 {
            if self.backend.detach(&head).is_err() {
                break;
            }
        }
    }

    fn op(&mut self, w: &[&str]) -> Outcome {
        let ok = |r: Result<(), Errno>| r.map(|()| "OK".to_string()).map_err(Ok);
        let arg = |i: usize| num(w.get(i).copied()).map_err(Err);
        match w[0] {
            "load" if (2..=3).contains(&w.len()) => self.load(arg(1)?, w.get(2).copied()),
            "attach" if (5..=6).contains(&w.len()) => {
                let mut a = self.attach_req(w).map_err(Err)?;
                if a.flags & MprogFlags::REPLACE.bits() != 0 {
                    let old = w.get(5).or(w.get(3)).copied();
                    a.replace = self.prog(old).map_err(Err)?;
                }
                ok(self.backend.attach(&a))
            }
            "detach" if w.len() == 5 => {
                let a = self.attach_req(w).map_err(Err)?;
                ok(self.backend.detach(&a))
            }
            "link" if w.len() == 5 => {
                let a = self.attach_req(w).map_err(Err)?;
                let (fd, id) = self.backend.link_create(&a).map_err(Ok)?;
                self.links.push((Some(fd), id));
                Ok(format!("OK link={}", self.links.len()))
            }
            "linkdetach" if w.len() == 2 => {
                let l = self.link(w.get(1).copied()).map_err(Err)?;
                ok(self.backend.link_detach(l))
            }
            "linkclose" if w.len() == 2 => {
                let l = self.link(w.get(1).copied()).map_err(Err)?;
                self.backend.close(l);
                self.links[arg(1)? as usize - 1].0 = None;
                Ok("OK".into())
            }
            "linkupdate" if (3..=5).contains(&w.len()) => {
                let l = self.link(w.get(1).copied()).map_err(Err)?;
                let new = self.prog(w.get(2).copied()).map_err(Err)?;
                let old = match w.get(3) {
                    Some(s) => self.prog(Some(s)).map_err(Err)?,
                    None => 0,
                };
                let bits = match (w.get(3), w.get(4)) {
                    (_, Some(f)) => flags(Some(f)).map_err(Err)?,
                    (Some(_), None) => REPLACE,
                    (None, None) => 0,
                };
                ok(self.backend.link_update(l, new, bits, old))
            }
            "query" if w.len() <= 4 => self.query(w),
            "reset" if w.len() == 1 => {
                self.reset();
                Ok("OK".into())
            }
            _ => Err(Err(Malformed)),
        }
    }

    /// Runs one line; `None` for a blank or comment-only line, else the output line (without
    /// its newline).
    pub fn line(&mut self, line: &str) -> Option<String> {
        let op = line.split('#').next().unwrap_or("").trim();
        if op.is_empty() {
            return None;
        }
        let words: Vec<&str> = op.split_whitespace().collect();
        let result = match self.op(&words) {
            Ok(r) => r,
            Err(Ok(e)) => errno_name(e),
            Err(Err(Malformed)) => "EINVAL(script)".to_string(),
        };
        Some(if self.echo {
            format!("{op:<44} {result}")
        } else {
            result
        })
    }

    /// Runs every line of `script`; the output, one line per operation.
    pub fn run(&mut self, script: &str) -> String {
        let mut out = String::new();
        for line in script.lines() {
            if let Some(r) = self.line(line) {
                out.push_str(&r);
                out.push('\n');
            }
        }
        out
    }

    /// Ends the script as the oracle does: `reset`, then closes every program; returns the
    /// backend.
    pub fn finish(mut self) -> B {
        self.reset();
        for &(fd, _) in &self.progs {
            self.backend.close(fd);
        }
        self.backend
    }
}
