//! Program sets the demo, the benchmarks and the tests share: the seed's packet parser with its
//! per-protocol tail-call targets, and tail-call chains of counter-bumping programs.
//!
//! All of them are raw-buffer programs: R1 points at the buffer (a packet, or a small context
//! struct), R2 holds its length. They load through the verifier, which needs the buffer's
//! length at load time: the chain programs run on their [`CHAIN_CTX_LEN`]-byte context, and the
//! packet parser and its handlers on frames of [`PACKET_LEN`] bytes — Ethernet's minimum frame
//! size, to which shorter frames are padded with zeros on the wire too ([`pad_frame`]). (The
//! kernel's way to packets of any length, `data`/`data_end` pointers checked by the program,
//! belongs to the packet-pointer slice of the verifier.)

use kbpf::insn::*;
use kbpf::syscall::{self, Fd};
use kbpf::uapi::{MapType, ProgType, alu, jmp};
use kbpf::{MapAttr, ProgLoadAttr, Result};

/// `IPPROTO_*` numbers the parser dispatches on.
pub const IPPROTO_ICMP: u32 = 1;
/// TCP.
pub const IPPROTO_TCP: u32 = 6;
/// UDP.
pub const IPPROTO_UDP: u32 = 17;

/// What the parser returns when it does not tail-call: not IPv4, or a protocol with no program.
pub const VERDICT_UNKNOWN: u64 = 0xdead;

/// Verdict tags the per-protocol programs put in bits 16.. of R0.
pub const TAG_TCP: u64 = 1;
/// UDP tag.
pub const TAG_UDP: u64 = 2;
/// ICMP tag.
pub const TAG_ICMP: u64 = 3;

/// The length of the frames the packet parser runs on: `ETH_ZLEN`, Ethernet's minimum frame
/// (without the FCS). Every sample frame fits; shorter ones are zero-padded ([`pad_frame`]).
pub const PACKET_LEN: usize = 60;

/// Pads `frame` with zeros to [`PACKET_LEN`] bytes, as an Ethernet driver pads short frames.
/// Longer frames are left as they are (and the parser refuses to run on them).
pub fn pad_frame(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() < PACKET_LEN {
        frame.resize(PACKET_LEN, 0);
    }
    frame
}

/// Loads a verified raw-buffer program for a buffer of `ctx_len` bytes.
fn load(insns: &[Insn], name: &str, ctx_len: usize) -> Result<Fd> {
    let attr = ProgLoadAttr::new(ProgType::RawBuffer, insns)
        .with_ctx_size(ctx_len as u32)
        .with_name(name);
    syscall::prog_load(&attr)
}

/// The seed's dispatcher: parse Ethernet and IPv4, then `bpf_tail_call(ctx, &jmp_table,
/// ip->protocol)`; falls through to [`VERDICT_UNKNOWN`] when nothing is there.
pub fn packet_parser(jmp_table: Fd) -> Vec<Insn> {
    let mut p = vec![
        // if (len < 34) goto unknown  (14-byte Ethernet + 20-byte IPv4 header)
        jmp_imm(jmp::JLT, 2, 34, 0), // patched below
        // ethertype = be16 at 12
        ldx_mem(Size::H, 3, 1, 12),
        Insn::new(0xd4 | 0x08, 3, 0, 0, 16), // be16 r3
        jmp_imm(jmp::JNE, 3, 0x0800, 0),     // patched below
        // r3 = ip->protocol (byte 23)
        ldx_mem(Size::B, 3, 1, 23),
    ];
    p.extend(ld_map_fd(2, jmp_table));
    p.push(tail_call());
    let unknown = p.len();
    p.extend(ld_imm64(0, VERDICT_UNKNOWN));
    p.push(exit());
    p[0].off = (unknown - 1) as i16;
    p[3].off = (unknown - 4) as i16;
    p
}

/// A per-protocol program: bumps `stats[proto]` (an array map of u64) and returns
/// `tag << 16 | field`, where field is the L4 destination port (TCP/UDP) or the ICMP type.
pub fn protocol_handler(stats: Fd, proto: u32, tag: u64) -> Vec<Insn> {
    let mut p = vec![
        mov64_reg(6, 1),
        // key = proto on the stack
        st_mem(Size::W, 10, -4, proto as i32),
    ];
    p.extend(ld_map_fd(1, stats));
    p.extend([
        mov64_reg(2, 10),
        alu64_imm(alu::ADD, 2, -4),
        call_helper(kbpf::uapi::func::MAP_LOOKUP_ELEM),
        jmp_imm(jmp::JEQ, 0, 0, 2),
        mov64_imm(1, 1),
        atomic_add(Size::DW, 0, 1, 0),
    ]);
    if proto == IPPROTO_ICMP {
        p.push(ldx_mem(Size::B, 0, 6, 34));
    } else {
        p.push(ldx_mem(Size::H, 0, 6, 36));
        p.push(Insn::new(0xd4 | 0x08, 0, 0, 0, 16)); // be16: network order port
    }
    p.push(mov64_imm(1, tag as i32));
    p.push(alu64_imm(alu::LSH, 1, 16));
    p.push(alu64_reg(alu::OR, 0, 1));
    p.push(exit());
    p
}

/// The demo's program set, loaded: the parser and its jump table filled for TCP, UDP, ICMP.
pub struct ParserSet {
    /// The dispatcher program.
    pub parser: Fd,
    /// `BPF_MAP_TYPE_PROG_ARRAY` indexed by IP protocol.
    pub jmp_table: Fd,
    /// Per-protocol packet counters (array of u64, 256 entries).
    pub stats: Fd,
    /// `(protocol, name, program)` of each handler stored in the table.
    pub handlers: Vec<(u32, &'static str, Fd)>,
}

impl ParserSet {
    /// Creates the maps, loads every program and fills the jump table.
    pub fn load() -> Result<ParserSet> {
        let jmp_table = syscall::map_create(&MapAttr::new(MapType::ProgArray, 4, 4, 256))?;
        let stats = syscall::map_create(&MapAttr::new(MapType::Array, 4, 8, 256))?;
        let parser = load(&packet_parser(jmp_table), "packet_parser", PACKET_LEN)?;
        let mut handlers = Vec::new();
        for (proto, tag, name) in [
            (IPPROTO_TCP, TAG_TCP, "parse_tcp"),
            (IPPROTO_UDP, TAG_UDP, "parse_udp"),
            (IPPROTO_ICMP, TAG_ICMP, "parse_icmp"),
        ] {
            let fd = load(&protocol_handler(stats, proto, tag), name, PACKET_LEN)?;
            syscall::map_update_elem(jmp_table, &proto.to_ne_bytes(), &fd.to_ne_bytes(), 0)?;
            handlers.push((proto, name, fd));
        }
        Ok(ParserSet {
            parser,
            jmp_table,
            stats,
            handlers,
        })
    }

    /// Closes every handle.
    pub fn close(self) {
        for (_, _, fd) in self.handlers {
            let _ = syscall::close(fd);
        }
        for fd in [self.parser, self.jmp_table, self.stats] {
            let _ = syscall::close(fd);
        }
    }
}

/// Builds an Ethernet + IPv4 packet with the given protocol and L4 bytes.
pub fn ipv4_packet(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 14];
    p[12] = 0x08; // ethertype 0x0800
    let total = (20 + l4.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
    p.extend_from_slice(&ip);
    p.extend_from_slice(l4);
    p
}

/// A TCP or UDP header's first bytes with the given ports.
pub fn l4_ports(sport: u16, dport: u16) -> Vec<u8> {
    let mut v = sport.to_be_bytes().to_vec();
    v.extend_from_slice(&dport.to_be_bytes());
    v.resize(20, 0);
    v
}

/// How a chain program picks its next slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainKey {
    /// `r3 = i + 1`: a constant key (the JIT's direct-jump form).
    Const,
    /// `r3 = ctx->one + i`: the key comes from memory (the indirect form).
    Reg,
}

/// Context of a chain run: a counter every body bumps, then a u64 holding 1 that register-key
/// programs add their index to (so no static analysis can fold the key).
pub const CHAIN_CTX_LEN: usize = 16;

/// A fresh chain context.
pub fn chain_ctx() -> [u8; CHAIN_CTX_LEN] {
    let mut c = [0u8; CHAIN_CTX_LEN];
    c[8..].copy_from_slice(&1u64.to_ne_bytes());
    c
}

/// Chain program for slot `i`: bumps `ctx->counter`, tail-calls slot `i + 1`, and returns the
/// counter when the tail call falls through.
pub fn chain_prog(map: Fd, i: u32, key: ChainKey) -> Vec<Insn> {
    let mut p = vec![
        mov64_reg(6, 1),
        ldx_mem(Size::DW, 0, 1, 0),
        alu64_imm(alu::ADD, 0, 1),
        stx_mem(Size::DW, 1, 0, 0),
    ];
    match key {
        ChainKey::Const => p.push(mov64_imm(3, (i + 1) as i32)),
        ChainKey::Reg => p.extend([ldx_mem(Size::DW, 3, 1, 8), alu64_imm(alu::ADD, 3, i as i32)]),
    }
    p.extend(ld_map_fd(2, map));
    p.push(tail_call());
    p.push(ldx_mem(Size::DW, 0, 6, 0));
    p.push(exit());
    p
}

/// A loaded chain: slot 0's program is the entry; slots `1..=len` are filled.
pub struct Chain {
    /// The prog_array.
    pub map: Fd,
    /// Program handles by slot (index 0 is the entry, which is also stored in slot 0).
    pub progs: Vec<Fd>,
}

impl Chain {
    /// Loads `len + 1` programs into a prog_array of `slots` entries (slots 0..=len filled).
    pub fn load(len: u32, slots: u32, key: ChainKey) -> Result<Chain> {
        let map = syscall::map_create(&MapAttr::new(MapType::ProgArray, 4, 4, slots))?;
        let mut progs = Vec::new();
        for i in 0..=len {
            let fd = load(&chain_prog(map, i, key), "chain", CHAIN_CTX_LEN)?;
            syscall::map_update_elem(map, &i.to_ne_bytes(), &fd.to_ne_bytes(), 0)?;
            progs.push(fd);
        }
        Ok(Chain { map, progs })
    }

    /// The entry program.
    pub fn entry(&self) -> Fd {
        self.progs[0]
    }

    /// Closes every handle (the map's close clears its slots).
    pub fn close(self) {
        let _ = syscall::close(self.map);
        for fd in self.progs {
            let _ = syscall::close(fd);
        }
    }
}

/// Runs `fd` once on a fresh chain context; returns (R0, bodies run).
pub fn run_chain(fd: Fd) -> Result<(u64, u64)> {
    let mut ctx = chain_ctx();
    let r = syscall::prog_test_run(
        fd,
        &mut syscall::TestRun {
            data: &mut ctx,
            repeat: 1,
            ..Default::default()
        },
    )?;
    Ok((
        r.retval,
        u64::from_ne_bytes(ctx[..8].try_into().expect("8 bytes")),
    ))
}
