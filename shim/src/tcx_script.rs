//! `kbpf tcx script [-e] [--egress] [--first-last]`: the mprog oracle's script language
//! (`../shared/oracle/README.md`, section mprog-oracle) run against kbpf's tcx, printing one
//! result line per operation in the oracle's format, so the two outputs compare line by line.
//!
//! Programs and links are numbered by the script (load order, creation order); queries print
//! those numbers, and `#id` for a kernel id the script did not create. The script runs on a
//! fresh device (the lowest free ifindex from 1), removed again at the end with every handle the
//! script opened. `--first-last` creates the device with kbpf's FIRST/LAST extension, whose
//! flags the script spells `first` and `last`.

use kbpf::insn::{exit, mov64_imm};
use kbpf::mprog::{MprogApi, MprogFlags, Query};
use kbpf::syscall::{self, Fd};
use kbpf::tcx::{self, AttachAttr, LinkCreateAttr};
use kbpf::uapi::{AttachType, ProgType, tcx_action};
use kbpf::{Errno, ProgLoadAttr};
use std::io::{Read, Write};
use std::process::ExitCode;

/// How a script runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Echo each operation, left-justified in 44 columns, before its result (`-e`).
    pub echo: bool,
    /// Use the egress hook (`--egress`, the oracle's `-E`).
    pub egress: bool,
    /// Create the device with the FIRST/LAST extension.
    pub first_last: bool,
}

/// A line that is not a valid operation (`EINVAL(script)`).
struct Malformed;

type Outcome = Result<String, Result<Errno, Malformed>>;

/// The state of one script: loaded programs, created links, the device.
struct Script {
    ifindex: u32,
    attach_type: AttachType,
    progs: Vec<Fd>,
    prog_ids: Vec<u32>,
    /// Link handles by script number (1-based); `None` once closed (by `linkclose` or `reset`):
    /// like the oracle, numbers are never reused and a closed link can't be named again.
    links: Vec<Option<Fd>>,
    link_ids: Vec<u32>,
}

fn num(s: Option<&str>) -> Result<u64, Malformed> {
    let s = s.ok_or(Malformed)?;
    let v = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    v.map_err(|_| Malformed)
}

fn flags(s: Option<&str>) -> Result<u32, Malformed> {
    let s = s.ok_or(Malformed)?;
    if s == "0" {
        return Ok(0);
    }
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
            n => u32::try_from(num(Some(n))?).map_err(|_| Malformed)?,
        };
    }
    Ok(bits)
}

impl Script {
    fn prog_fd(&self, n: u64) -> Result<Fd, Malformed> {
        match n {
            0 => Ok(0),
            n => self.progs.get(n as usize - 1).copied().ok_or(Malformed),
        }
    }

    fn link_fd(&self, n: u64) -> Result<Fd, Malformed> {
        self.links
            .get((n as usize).wrapping_sub(1))
            .copied()
            .flatten()
            .ok_or(Malformed)
    }

    /// REL: a program (or, with `link`, a link) number as a handle or, with `id`, as its id;
    /// `0` passes nothing and `=V` the raw value V.
    fn relative(&self, s: Option<&str>, bits: u32) -> Result<u32, Malformed> {
        let s = s.ok_or(Malformed)?;
        if let Some(raw) = s.strip_prefix('=') {
            return u32::try_from(num(Some(raw))?).map_err(|_| Malformed);
        }
        let n = num(Some(s))?;
        if n == 0 {
            return Ok(0);
        }
        let (link, id) = (
            bits & MprogFlags::LINK.bits() != 0,
            bits & MprogFlags::ID.bits() != 0,
        );
        let i = n as usize - 1;
        let v = match (link, id) {
            (true, true) => self.link_ids.get(i).copied(),
            (true, false) => self.links.get(i).copied().flatten(),
            (false, true) => self.prog_ids.get(i).copied(),
            (false, false) => self.progs.get(i).copied(),
        };
        v.ok_or(Malformed)
    }

    fn load(&mut self, n: u64, kind: Option<&str>) -> Outcome {
        let prog_type = match kind {
            None | Some("tc") => ProgType::SchedCls,
            Some("xdp") => ProgType::Xdp,
            Some(_) => return Err(Err(Malformed)),
        };
        let insns = [mov64_imm(0, tcx_action::NEXT), exit()];
        for _ in 0..n {
            let fd = syscall::prog_load(&ProgLoadAttr::new(prog_type, &insns)).map_err(Ok)?;
            self.prog_ids.push(syscall::prog_get(fd).map_err(Ok)?.id());
            self.progs.push(fd);
        }
        Ok("OK".into())
    }

    fn attach_attr(&self, w: &[&str]) -> Result<AttachAttr, Malformed> {
        let bits = flags(w.get(2).copied())?;
        let mut a = AttachAttr::new(self.ifindex, self.attach_type);
        a.attach_bpf_fd = self.prog_fd(num(w.get(1).copied())?)?;
        a.attach_flags = bits;
        a.relative_fd = self.relative(w.get(3).copied(), bits)?;
        a.expected_revision = num(w.get(4).copied())?;
        Ok(a)
    }

    fn name_of(numbers: &[u32], id: u32) -> String {
        match numbers.iter().position(|&x| x == id) {
            Some(i) => (i + 1).to_string(),
            None => format!("#{id}"),
        }
    }

    fn query(&self, room: u32) -> Outcome {
        let n = room as usize;
        let (mut progs, mut links) = (vec![0u32; n], vec![0u32; n]);
        let mut q = Query {
            count: room,
            prog_ids: Some(&mut progs),
            link_ids: Some(&mut links),
            ..Query::default()
        };
        let res = tcx::prog_query(self.ifindex, self.attach_type, &mut q);
        let (rev, count) = (q.revision, q.count);
        let status = match res {
            Ok(()) => "OK".to_string(),
            Err(Errno::ENOSPC) => "ENOSPC".to_string(),
            Err(e) => return Err(Ok(e)),
        };
        let shown = n.min(count as usize);
        let list = |v: &[u32], f: &dyn Fn(u32) -> String| {
            if shown == 0 {
                "-".to_string()
            } else {
                v[..shown]
                    .iter()
                    .map(|&x| f(x))
                    .collect::<Vec<_>>()
                    .join(",")
            }
        };
        let progs = list(&progs, &|id| Self::name_of(&self.prog_ids, id));
        let links = list(&links, &|id| match id {
            0 => "0".into(),
            id => Self::name_of(&self.link_ids, id),
        });
        Ok(format!(
            "{status} rev={rev} count={count} progs={progs} links={links}"
        ))
    }

    /// `reset`: close all links, detach all programs.
    fn reset(&mut self) -> Outcome {
        for fd in self.links.iter_mut().filter_map(Option::take) {
            let _ = syscall::close(fd);
        }
        loop {
            let mut a = AttachAttr::new(self.ifindex, self.attach_type);
            // BEFORE without a relative takes the head; AFTER would hit the full-bundle ERANGE.
            a.attach_flags = MprogFlags::BEFORE.bits();
            match tcx::prog_detach(&a) {
                Ok(()) => {}
                Err(Errno::ENOENT) => return Ok("OK".into()),
                Err(e) => return Err(Ok(e)),
            }
        }
    }

    fn op(&mut self, w: &[&str]) -> Outcome {
        let ok = |r: kbpf::Result| r.map(|()| "OK".to_string()).map_err(Ok);
        let arg = |i: usize| num(w.get(i).copied()).map_err(Err);
        match w[0] {
            "load" if w.len() <= 3 => self.load(arg(1)?, w.get(2).copied()),
            "attach" if (5..=6).contains(&w.len()) => {
                let mut a = self.attach_attr(w).map_err(Err)?;
                if a.attach_flags & MprogFlags::REPLACE.bits() != 0 {
                    let old = match w.get(5) {
                        Some(_) => self.prog_fd(arg(5)?).map_err(Err)?,
                        None => self.prog_fd(arg(3)?).map_err(Err)?,
                    };
                    a.replace_bpf_fd = old;
                }
                ok(tcx::prog_attach(&a))
            }
            "detach" if w.len() == 5 => ok(tcx::prog_detach(&self.attach_attr(w).map_err(Err)?)),
            "link" if w.len() == 5 => {
                let a = self.attach_attr(w).map_err(Err)?;
                let fd = tcx::link_create(&LinkCreateAttr {
                    prog_fd: a.attach_bpf_fd,
                    target_ifindex: a.target_ifindex,
                    attach_type: a.attach_type,
                    flags: a.attach_flags,
                    relative_fd: a.relative_fd,
                    expected_revision: a.expected_revision,
                })
                .map_err(Ok)?;
                let link = syscall::link_get(fd).map_err(Ok)?;
                self.links.push(Some(fd));
                self.link_ids.push(link.id());
                Ok(format!("OK link={}", self.links.len()))
            }
            "linkdetach" if w.len() == 2 => {
                ok(syscall::link_detach(self.link_fd(arg(1)?).map_err(Err)?))
            }
            "linkclose" if w.len() == 2 => {
                let fd = self.link_fd(arg(1)?).map_err(Err)?;
                self.links[arg(1)? as usize - 1] = None;
                ok(syscall::close(fd))
            }
            "linkupdate" if (3..=4).contains(&w.len()) => {
                let link = self.link_fd(arg(1)?).map_err(Err)?;
                let new = self.prog_fd(arg(2)?).map_err(Err)?;
                let old = match w.get(3) {
                    Some(_) => Some(self.prog_fd(arg(3)?).map_err(Err)?),
                    None => None,
                };
                ok(syscall::link_update(link, new, old))
            }
            "query" if w.len() <= 2 => {
                let room = if w.len() == 2 { arg(1)? } else { 64 };
                self.query(u32::try_from(room).map_err(|_| Err(Malformed))?)
            }
            "reset" if w.len() == 1 => self.reset(),
            _ => Err(Err(Malformed)),
        }
    }
}

/// Runs `script` and returns the output lines.
pub fn run_script(script: &str, opts: Options) -> Result<String, Errno> {
    let api = if opts.first_last {
        MprogApi::FirstLast
    } else {
        MprogApi::Final
    };
    let ifindex = (1..)
        .find(|&i| tcx::dev_create_api(i, api) != Err(Errno::EEXIST))
        .expect("a free ifindex");
    tcx::dev_get(ifindex)?;
    let attach_type = if opts.egress {
        AttachType::TcxEgress
    } else {
        AttachType::TcxIngress
    };
    let mut s = Script {
        ifindex,
        attach_type,
        progs: Vec::new(),
        prog_ids: Vec::new(),
        links: Vec::new(),
        link_ids: Vec::new(),
    };
    let mut out = String::new();
    for line in script.lines() {
        let op = line.split('#').next().unwrap_or("").trim();
        if op.is_empty() {
            continue;
        }
        let words: Vec<&str> = op.split_whitespace().collect();
        let result = match s.op(&words) {
            Ok(r) => r,
            Err(Ok(e)) => e.to_string(),
            Err(Err(Malformed)) => "EINVAL(script)".to_string(),
        };
        if opts.echo {
            out.push_str(&format!("{op:<44} {result}\n"));
        } else {
            out.push_str(&result);
            out.push('\n');
        }
    }
    for fd in s.links.iter().flatten().chain(&s.progs) {
        let _ = syscall::close(*fd);
    }
    tcx::dev_remove(ifindex)?;
    Ok(out)
}

/// The CLI entry: parses `args` (after `tcx`), reads the script from `input`, writes to `out`.
pub fn run(args: &[String], input: &mut dyn Read, out: &mut dyn Write) -> ExitCode {
    let mut opts = Options::default();
    let mut it = args.iter().map(String::as_str);
    if it.next() != Some("script") {
        eprintln!("kbpf tcx: usage: kbpf tcx script [-e] [--egress] [--first-last] < SCRIPT");
        return ExitCode::from(2);
    }
    for a in it {
        match a {
            "-e" => opts.echo = true,
            "--egress" | "-E" => opts.egress = true,
            "--first-last" => opts.first_last = true,
            other => {
                eprintln!("kbpf tcx script: unknown option {other}");
                return ExitCode::from(2);
            }
        }
    }
    let mut script = String::new();
    if let Err(e) = input.read_to_string(&mut script) {
        eprintln!("kbpf tcx script: reading the script: {e}");
        return ExitCode::FAILURE;
    }
    match run_script(&script, opts) {
        Ok(text) => match out.write_all(text.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!("kbpf tcx script: {e}");
            ExitCode::FAILURE
        }
    }
}
