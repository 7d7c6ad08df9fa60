//! The fuzz input format shared by the `verifier` target and the seed converter: an 8-byte
//! header that picks the [`VerifierEnv`](kbpf::verifier::VerifierEnv) (program type, mode,
//! context size, two maps), then the program as raw 8-byte instruction slots (a trailing
//! partial slot is ignored). Linux has no counterpart: the kernel's verifier is fuzzed by
//! syzkaller through the `bpf()` syscall.
//!
//! Header bytes:
//! - 0: program type, an index into [`PROG_TYPES`] (modulo its length);
//! - 1: bit 0 root's rules (`privileged`), bit 1 back-edges refused (`!allow_loops`);
//! - 2..4: context size, little-endian, modulo 1024;
//! - 4, 5: map handle 0 and 1: bits 0..3 an index into [`MAP_TYPES`], bit 3 "no such map";
//! - 6: value size of both maps (0 means 8);
//! - 7: key sizes, low nibble map 0, high nibble map 1 (0 means 4).

#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use kbpf::insn::Insn;
use kbpf::map::MapAttr;
use kbpf::uapi::{MapType, ProgType};

/// Every program type `uapi::ProgType` has.
pub const PROG_TYPES: [ProgType; 12] = [
    ProgType::Unspec,
    ProgType::SocketFilter,
    ProgType::Kprobe,
    ProgType::SchedCls,
    ProgType::SchedAct,
    ProgType::Tracepoint,
    ProgType::Xdp,
    ProgType::CgroupSkb,
    ProgType::SkLookup,
    ProgType::Syscall,
    ProgType::Netfilter,
    ProgType::RawBuffer,
];

/// Every map type `uapi::MapType` has.
pub const MAP_TYPES: [MapType; 8] = [
    MapType::Unspec,
    MapType::Hash,
    MapType::Array,
    MapType::ProgArray,
    MapType::PercpuHash,
    MapType::PercpuArray,
    MapType::Sockmap,
    MapType::Sockhash,
];

/// Bytes before the first instruction.
pub const HEADER_LEN: usize = 8;

/// A decoded fuzz input.
#[derive(Clone, Debug)]
pub struct Input {
    /// The program type.
    pub prog_type: ProgType,
    /// Root's rules.
    pub privileged: bool,
    /// Bounded loops accepted.
    pub allow_loops: bool,
    /// The raw buffer's size.
    pub ctx_size: usize,
    /// Map handles 0 and 1.
    pub maps: [Option<MapAttr>; 2],
    /// The program.
    pub insns: Vec<Insn>,
}

impl Input {
    /// Decodes `data` (never fails: missing header bytes read as zero).
    pub fn decode(data: &[u8]) -> Input {
        let mut h = [0u8; HEADER_LEN];
        let n = data.len().min(HEADER_LEN);
        h[..n].copy_from_slice(&data[..n]);
        let value_size = if h[6] == 0 { 8 } else { h[6] as u32 };
        let map = |b: u8, key: u8| {
            (b & 8 == 0).then(|| {
                let key_size = if key == 0 { 4 } else { key as u32 };
                MapAttr::new(MAP_TYPES[(b & 7) as usize], key_size, value_size, 4)
            })
        };
        let insns = data[n..]
            .chunks_exact(8)
            .map(|c| Insn::from_bytes(c.try_into().expect("8-byte chunk")))
            .collect();
        Input {
            prog_type: PROG_TYPES[h[0] as usize % PROG_TYPES.len()],
            privileged: h[1] & 1 != 0,
            allow_loops: h[1] & 2 == 0,
            ctx_size: u16::from_le_bytes([h[2], h[3]]) as usize % 1024,
            maps: [map(h[4], h[7] & 0xf), map(h[5], h[7] >> 4)],
            insns,
        }
    }

    /// The inverse of [`Input::decode`] for inputs it can represent (sizes in range).
    pub fn encode(&self) -> Vec<u8> {
        let pt = PROG_TYPES.iter().position(|&t| t == self.prog_type);
        let map = |m: &Option<MapAttr>| match m {
            None => 8,
            Some(a) => MAP_TYPES.iter().position(|&t| t == a.map_type).unwrap_or(0) as u8,
        };
        let key = |m: &Option<MapAttr>| m.map_or(0, |a| (a.key_size & 0xf) as u8);
        let value = self
            .maps
            .iter()
            .flatten()
            .next()
            .map_or(8, |a| a.value_size);
        let ctx = (self.ctx_size % 1024) as u16;
        let mut out = Vec::with_capacity(HEADER_LEN + 8 * self.insns.len());
        out.extend_from_slice(&[
            pt.unwrap_or(0) as u8,
            self.privileged as u8 | ((!self.allow_loops as u8) << 1),
            ctx as u8,
            (ctx >> 8) as u8,
            map(&self.maps[0]),
            map(&self.maps[1]),
            value.min(255) as u8,
            key(&self.maps[0]) | (key(&self.maps[1]) << 4),
        ]);
        for i in &self.insns {
            out.extend_from_slice(&i.to_bytes());
        }
        out
    }
}
