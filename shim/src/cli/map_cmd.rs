//! `kbpf map create|update|lookup|delete|dump` (bpftool's `map` object; `BPF_MAP_*` of
//! `kernel/bpf/syscall.c`). Maps are named: by `map create`, or by a loaded object.

use super::args::MapCmd;
use super::state::State;
use super::{CmdError, hex, parse_bytes};
use kbpf::MapAttr;
use kbpf::syscall::{self, Fd};
use kbpf::uapi::MapType;
use serde::Serialize;
use std::io::Write;

/// A map's key size and the value size user space sees.
fn sizes(fd: Fd) -> Result<(usize, usize), CmdError> {
    let m = syscall::map_get(fd).map_err(|e| CmdError::errno("map", e))?;
    Ok((m.attr().key_size as usize, m.user_value_size()))
}

/// The value bytes: `prog:NAME` is a loaded program's handle (for prog_arrays), `sock:NAME` a
/// socket's (for socket maps: 4 or 8 bytes, the map's `width`).
fn value_bytes(state: &State, s: &str, width: usize) -> Result<Vec<u8>, CmdError> {
    if let Some(name) = s.strip_prefix("sock:") {
        let fd = state.sock(name)? as u64;
        return Ok(fd.to_ne_bytes()[..width.min(8)].to_vec());
    }
    match s.strip_prefix("prog:") {
        Some(name) => Ok(state.prog(name)?.to_ne_bytes().to_vec()),
        None => parse_bytes(s),
    }
}

fn sized(what: &str, bytes: Vec<u8>, want: usize) -> Result<Vec<u8>, CmdError> {
    if bytes.len() != want {
        return Err(CmdError::usage(format!(
            "{what} is {} bytes, the map's is {want}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// One element as `map dump --json` prints it (bpftool's hex-string arrays).
#[derive(Serialize)]
struct Elem {
    key: Vec<String>,
    value: Vec<String>,
}

fn hex_list(b: &[u8]) -> Vec<String> {
    b.iter().map(|x| format!("{x:#04x}")).collect()
}

/// `kbpf map …`.
pub fn run(cmd: MapCmd, state: &mut State, out: &mut dyn Write) -> Result<(), CmdError> {
    match cmd {
        MapCmd::Create {
            name,
            map_type,
            key,
            value,
            entries,
        } => {
            if state.map(&name).is_ok() {
                return Err(CmdError::usage(format!("a map named {name} exists")));
            }
            let t = MapType::from_name(&map_type)
                .ok_or_else(|| CmdError::usage(format!("unknown map type {map_type}")))?;
            let fd = syscall::map_create(&MapAttr::new(t, key, value, entries))
                .map_err(|e| CmdError::errno("map_create", e))?;
            writeln!(
                out,
                "map {name}: {map_type} key {key} value {value} max_entries {entries}"
            )?;
            state.maps.push((name, fd));
            Ok(())
        }
        MapCmd::Update { map, key, value } => {
            let fd = state.map(&map)?;
            let (ks, vs) = sizes(fd)?;
            let is_progs = syscall::map_get(fd).is_ok_and(|m| m.contains_progs());
            let k = sized("key", parse_bytes(&key)?, ks)?;
            let v = value_bytes(state, &value, vs)?;
            let v = if is_progs { v } else { sized("value", v, vs)? };
            syscall::map_update_elem(fd, &k, &v, 0).map_err(|e| CmdError::errno("update", e))?;
            Ok(())
        }
        MapCmd::Lookup { map, key } => {
            let fd = state.map(&map)?;
            let (ks, vs) = sizes(fd)?;
            let k = sized("key", parse_bytes(&key)?, ks)?;
            let mut v = vec![0; vs];
            syscall::map_lookup_elem(fd, &k, &mut v).map_err(|e| CmdError::errno("lookup", e))?;
            writeln!(out, "key: {}  value: {}", hex(&k), hex(&v))?;
            Ok(())
        }
        MapCmd::Delete { map, key } => {
            let fd = state.map(&map)?;
            let (ks, _) = sizes(fd)?;
            let k = sized("key", parse_bytes(&key)?, ks)?;
            syscall::map_delete_elem(fd, &k).map_err(|e| CmdError::errno("delete", e))?;
            Ok(())
        }
        MapCmd::Dump { map, json } => {
            let fd = state.map(&map)?;
            let (ks, vs) = sizes(fd)?;
            let mut elems = Vec::new();
            let mut key: Option<Vec<u8>> = None;
            loop {
                let mut next = vec![0; ks];
                match syscall::map_get_next_key(fd, key.as_deref(), &mut next) {
                    Ok(()) => {}
                    Err(kbpf::Errno::ENOENT) => break,
                    Err(e) => return Err(CmdError::errno("get_next_key", e)),
                }
                let mut v = vec![0; vs];
                // An empty prog_array slot has no value: skip it, as bpftool does.
                if syscall::map_lookup_elem(fd, &next, &mut v).is_ok() {
                    elems.push((next.clone(), v));
                }
                key = Some(next);
            }
            if json {
                let rows: Vec<Elem> = elems
                    .iter()
                    .map(|(k, v)| Elem {
                        key: hex_list(k),
                        value: hex_list(v),
                    })
                    .collect();
                let s = serde_json::to_string(&rows).map_err(|e| CmdError::usage(e.to_string()))?;
                writeln!(out, "{s}")?;
            } else {
                for (k, v) in &elems {
                    writeln!(out, "key: {}  value: {}", hex(k), hex(v))?;
                }
                writeln!(out, "Found {} elements", elems.len())?;
            }
            Ok(())
        }
    }
}
