//! Fuzz target: the ELF loader must return (an object or an error naming what is wrong) on every
//! input, never panic (`kbpf_shim::elf::Object::parse`, libbpf's `bpf_object__open_mem`); an
//! object that parses is also loaded (maps, verifier, prog_arrays) and closed again, unless it
//! is large (the verifier has its own target) or asks for large maps.

#![no_main]

use kbpf_shim::elf::{LoadOpts, Object};
use libfuzzer_sys::fuzz_target;
use std::sync::Once;

/// Objects with more instructions than this are only parsed.
const LOAD_LIMIT: usize = 4096;
/// Nor are objects whose maps would take more memory than this: a map of two billion entries
/// is a valid request, but not one to make a million times under a memory limit.
const MAP_BYTES_LIMIT: u64 = 1 << 20;

static HOST: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    HOST.call_once(|| {
        kbpf_shim::host::install();
    });
    let Ok(obj) = Object::parse(data) else {
        return;
    };
    if obj.progs.iter().map(|p| p.insns.len()).sum::<usize>() > LOAD_LIMIT {
        return;
    }
    let map_bytes: u64 = obj
        .maps
        .iter()
        .map(|m| {
            let a = m.attr;
            (a.key_size as u64 + a.value_size as u64 + 64).saturating_mul(a.max_entries as u64)
        })
        .fold(0, u64::saturating_add);
    if map_bytes > MAP_BYTES_LIMIT {
        return;
    }
    if let Ok(loaded) = obj.load(&LoadOpts::default()) {
        loaded.close();
    }
});
