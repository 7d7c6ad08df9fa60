//! `kbpf demo`: the C examples (`examples/bpf/`, built by clang-19 and committed, embedded in
//! the binary) loaded through the ELF loader, each landed seed feature run on sample traffic,
//! and a short report of what ran:
//!
//! - seed 000, networking: `parser.o` on a tcx device: the parser `bpf_tail_call`s by IP
//!   protocol into per-protocol programs (verdicts, tail calls counted per protocol, global
//!   data), then a slot is deleted and the same packet takes the default path;
//! - seed 000, dispatch: `syscall.o`, a raw-buffer dispatcher tail-calling by syscall number;
//! - seed 001: `tcx_chain.o`'s programs attached with before/after/replace, the order the
//!   multi-program API keeps, and the order they actually ran in;
//! - seed 002: `sk_lookup.o`'s two use cases linked to a netns and run through its lookup path
//!   on TCP connects ([`sk_lookup`]);
//! - seed 004: conntrack from BPF C ([`ct`]): `ct_track.o` (TC) creates entries for the
//!   connections a host opens, `synproxy.o` (XDP) passes their replies and new SYNs and drops
//!   the rest;
//! - seed 003: the list patcher against the kernel-style one on a large program;
//! - timings of one packet through each path.
//!
//! Packets run through the device's tcx hook (`tcx::run_skb`, the data path the programs are
//! for), so the demo needs no `BPF_PROG_TEST_RUN` support for TC programs.

pub mod ct;

use crate::conformance::Engine;
use crate::elf::{LoadOpts, LoadedObject, Object};
use crate::progs::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, ipv4_packet, l4_ports, pad_frame};
use kbpf::cpu::CpuGuard;
use kbpf::mprog::MprogFlags;
use kbpf::skb::SkBuff;
use kbpf::syscall::{self, Fd, ObjInfo, TestRun};
use kbpf::tcx::{self, AttachAttr, Direction, TcxVerdict};
use kbpf::uapi::AttachType;
use std::io::Write;
use std::time::Instant;

mod sk_lookup;

pub use sk_lookup::{SK_LOOKUP_O, SkLookupReport};

/// `examples/bpf/parser.o`.
pub const PARSER_O: &[u8] = include_bytes!("../../examples/bpf/parser.o");
/// `examples/bpf/syscall.o`.
pub const SYSCALL_O: &[u8] = include_bytes!("../../examples/bpf/syscall.o");
/// `examples/bpf/tcx_chain.o`.
pub const TCX_CHAIN_O: &[u8] = include_bytes!("../../examples/bpf/tcx_chain.o");

/// Verdict tags of `parser.c` (bits 16.. of `last_verdict`).
const TAG_TCP: u64 = 1;
const TAG_UDP: u64 = 2;
const TAG_ICMP: u64 = 3;
/// `parser.c`'s `VERDICT_UNKNOWN`.
const VERDICT_UNKNOWN: u64 = 0xdead;

type DynErr = Box<dyn std::error::Error>;

/// Who handled a packet, from `parser.c`'s `last_verdict`.
pub fn describe(verdict: u64) -> String {
    match (verdict >> 16, verdict & 0xffff) {
        _ if verdict == VERDICT_UNKNOWN => "packet_parser: default path".into(),
        (TAG_TCP, port) => format!("parse_tcp: dport {port}"),
        (TAG_UDP, port) => format!("parse_udp: dport {port}"),
        (TAG_ICMP, ty) => format!("parse_icmp: type {ty}"),
        _ => format!("unexpected verdict {verdict:#x}"),
    }
}

/// The sample packets: name and frame (zero-padded to Ethernet's minimum).
pub fn sample_packets() -> Vec<(&'static str, Vec<u8>)> {
    let mut arp = vec![0u8; 42];
    arp[12] = 0x08;
    arp[13] = 0x06;
    let mut icmp = vec![8u8, 0, 0, 0];
    icmp.resize(8, 0);
    vec![
        (
            "tcp 10.0.0.1:40000 > 10.0.0.2:443",
            ipv4_packet(IPPROTO_TCP as u8, &l4_ports(40000, 443)),
        ),
        (
            "tcp 10.0.0.1:40002 > 10.0.0.2:23",
            ipv4_packet(IPPROTO_TCP as u8, &l4_ports(40002, 23)),
        ),
        (
            "udp 10.0.0.1:5353 > 10.0.0.2:53",
            ipv4_packet(IPPROTO_UDP as u8, &l4_ports(5353, 53)),
        ),
        ("icmp echo request", ipv4_packet(IPPROTO_ICMP as u8, &icmp)),
        ("gre (no handler)", ipv4_packet(47, &[0u8; 8])),
        ("arp (not IPv4)", arp),
    ]
    .into_iter()
    .map(|(name, frame)| (name, pad_frame(frame)))
    .collect()
}

/// Parses and loads an embedded object.
pub fn load_object(name: &str, bytes: &[u8]) -> Result<LoadedObject, DynErr> {
    let obj = Object::parse(bytes).map_err(|e| format!("{name}: {e}"))?;
    Ok(obj
        .load(&LoadOpts::default())
        .map_err(|e| format!("{name}: {e}\n{}", e.log))?)
}

/// Reads the `u64` at `off` of a global-data map's value.
pub fn read_global(
    obj: &LoadedObject,
    section: &str,
    off: usize,
    len: usize,
) -> Result<Vec<u8>, DynErr> {
    let fd = obj
        .map(section)
        .ok_or_else(|| format!("no {section} map"))?;
    let size = syscall::map_get(fd)
        .map_err(|e| format!("{e:?}"))?
        .user_value_size();
    let mut v = vec![0; size];
    syscall::map_lookup_elem(fd, &0u32.to_ne_bytes(), &mut v).map_err(|e| format!("{e:?}"))?;
    v.get(off..off + len)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| format!("{section}: [{off}, +{len}) is outside the value").into())
}

fn u64_at(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
    u64::from_le_bytes(a)
}

/// One packet through a device's ingress hook: the verdict and the mark the programs left.
pub fn run_packet(ifindex: u32, frame: &[u8]) -> Result<(TcxVerdict, u32), DynErr> {
    let dev = tcx::dev_get(ifindex).map_err(|e| format!("{e:?}"))?;
    let mut pkt = frame.to_vec();
    let mut skb = SkBuff::new(&mut pkt);
    skb.protocol = 0x0800u16.to_be();
    skb.ifindex = ifindex;
    let mut guard = CpuGuard::enter();
    let v = tcx::run_skb(&dev, Direction::Ingress, &mut guard, &mut skb);
    Ok((v, skb.mark))
}

/// Creates a device with the lowest free ifindex.
fn new_device() -> u32 {
    (1..)
        .find(|&i| tcx::dev_create(i) != Err(kbpf::Errno::EEXIST))
        .expect("a free ifindex")
}

fn attach(
    ifindex: u32,
    prog: Fd,
    flags: MprogFlags,
    relative: Fd,
    replace: Fd,
) -> Result<(), DynErr> {
    let mut a = AttachAttr::new(ifindex, AttachType::TcxIngress);
    a.attach_bpf_fd = prog;
    a.attach_flags = flags.bits();
    a.relative_fd = relative;
    a.replace_bpf_fd = replace;
    tcx::prog_attach(&a).map_err(|e| format!("attach: {e:?}"))?;
    Ok(())
}

/// The names of the programs on a device's ingress hook, in run order.
fn order(ifindex: u32, obj: &LoadedObject) -> Result<Vec<String>, DynErr> {
    let (ids, _) =
        crate::cli::tcx_query(ifindex, crate::cli::args::DirArg::Ingress).map_err(|e| e.msg)?;
    Ok(ids
        .into_iter()
        .map(|(id, _)| {
            obj.progs
                .iter()
                .find(|p| prog_info(p.fd).is_some_and(|i| i.id == id))
                .map_or(format!("#{id}"), |p| p.name.clone())
        })
        .collect())
}

fn prog_info(fd: Fd) -> Option<syscall::ProgInfo> {
    match syscall::obj_get_info(fd) {
        Ok(ObjInfo::Prog(i)) => Some(i),
        _ => None,
    }
}

fn verdict_name(v: TcxVerdict) -> &'static str {
    match v {
        TcxVerdict::Next => "next",
        TcxVerdict::Pass => "pass",
        TcxVerdict::Drop => "drop",
        TcxVerdict::Redirect => "redirect",
    }
}

/// Mean nanoseconds of `f` over `n` calls.
fn time_ns(n: u32, mut f: impl FnMut() -> Result<(), DynErr>) -> Result<f64, DynErr> {
    let t = Instant::now();
    for _ in 0..n {
        f()?;
    }
    Ok(t.elapsed().as_nanos() as f64 / n as f64)
}

/// One attach of the tcx part: what to print, the program, flags, relative and replaced program.
type AttachStep<'a> = (
    &'a str,
    &'a str,
    MprogFlags,
    Option<&'a str>,
    Option<&'a str>,
);

/// What the demo saw, for tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DemoReport {
    /// Parser: (tcx verdict, `last_verdict`) per sample packet, then the TCP packet after its
    /// slot was deleted.
    pub parser: Vec<(TcxVerdict, u64)>,
    /// Tail calls counted per protocol (icmp, tcp, udp).
    pub tail_calls: [u64; 3],
    /// Dispatcher return values (write, read, openat).
    pub syscalls: Vec<u32>,
    /// The tcx order after the attaches, and the order the programs ran in on a packet.
    pub tcx_order: Vec<String>,
    /// Tags the programs traced for the telnet packet, then the https packet.
    pub tcx_ran: Vec<Vec<u32>>,
    /// The mark tcx_mark left on a packet.
    pub tcx_mark: u32,
    /// The sk_lookup part.
    pub sk_lookup: SkLookupReport,
    /// Seed 004's conntrack section.
    pub conntrack: ct::CtReport,
}

/// Runs the demo with `engine`, writing the report to `out`.
pub fn run(engine: Engine, out: &mut dyn Write) -> Result<DemoReport, DynErr> {
    let mut rep = DemoReport::default();
    writeln!(
        out,
        "kbpf demo: the C examples (examples/bpf, clang-19 -O2 -g -target bpf) through the ELF \
         loader, on the {}",
        match engine {
            Engine::Jit => "x86-64 JIT",
            Engine::Interp => "interpreter",
        }
    )?;
    parser(&mut rep, out)?;
    dispatcher(&mut rep, out)?;
    tcx_chain(&mut rep, out)?;
    sk_lookup::run(engine, &mut rep.sk_lookup, out)?;
    ct::run_section(&mut rep.conntrack, out)?;
    patcher(out)?;
    Ok(rep)
}

fn describe_loaded(obj: &LoadedObject, out: &mut dyn Write) -> Result<(), DynErr> {
    for p in &obj.progs {
        if let Some(i) = prog_info(p.fd) {
            writeln!(
                out,
                "  loaded {:<16} id {:>3}, {:>3} insns, {} ({})",
                p.name,
                i.id,
                i.xlated_insns,
                if i.jited { "jited" } else { "interpreted" },
                p.section
            )?;
        }
    }
    let maps: Vec<String> = obj
        .object
        .maps
        .iter()
        .map(|m| format!("{} ({:?}[{}])", m.name, m.attr.map_type, m.attr.max_entries))
        .collect();
    writeln!(out, "  maps: {}", maps.join(", "))?;
    Ok(())
}

fn parser(rep: &mut DemoReport, out: &mut dyn Write) -> Result<(), DynErr> {
    let obj = load_object("parser.o", PARSER_O)?;
    writeln!(
        out,
        "\nseed 000: packet parser, bpf_tail_call by IP protocol (parser.o, tc)"
    )?;
    describe_loaded(&obj, out)?;
    let jmp = &obj.object.maps[obj
        .object
        .maps
        .iter()
        .position(|m| m.name == "jmp_table")
        .ok_or("no jmp_table")?];
    let slots: Vec<String> = jmp
        .slots
        .iter()
        .map(|(s, n)| format!("[{s}] = {n}"))
        .collect();
    writeln!(
        out,
        "  jmp_table filled from its .values initializer: {}",
        slots.join(", ")
    )?;
    let ifindex = new_device();
    let parser = obj.prog("packet_parser").ok_or("no packet_parser")?.fd;
    attach(ifindex, parser, MprogFlags::empty(), 0, 0)?;
    writeln!(
        out,
        "  packet_parser attached to device {ifindex} ingress (tcx)"
    )?;
    let bss_verdict = |obj: &LoadedObject| read_global(obj, ".bss", 0, 8).map(|b| u64_at(&b));
    for (name, pkt) in sample_packets() {
        let (v, _) = run_packet(ifindex, &pkt)?;
        let last = bss_verdict(&obj)?;
        writeln!(
            out,
            "  {name:<34} -> {:<4}  {}",
            verdict_name(v),
            describe(last)
        )?;
        rep.parser.push((v, last));
    }
    let stats = obj.map("stats").ok_or("no stats map")?;
    for (i, proto) in [IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP]
        .into_iter()
        .enumerate()
    {
        let mut v = [0u8; 8];
        syscall::map_lookup_elem(stats, &proto.to_ne_bytes(), &mut v)
            .map_err(|e| format!("{e:?}"))?;
        rep.tail_calls[i] = u64::from_ne_bytes(v);
    }
    let seen = u64_at(&read_global(&obj, ".data", 0, 8)?);
    let blocked = u64_at(&read_global(&obj, ".rodata", 0, 2)?);
    writeln!(
        out,
        "  tail calls taken (stats map): icmp {}, tcp {}, udp {}; packets seen (.data, from 0x1000): {seen:#x}; \
         blocked_port (.rodata): {blocked}",
        rep.tail_calls[0], rep.tail_calls[1], rep.tail_calls[2]
    )?;
    let jfd = obj.map("jmp_table").ok_or("no jmp_table")?;
    syscall::map_delete_elem(jfd, &IPPROTO_TCP.to_ne_bytes()).map_err(|e| format!("{e:?}"))?;
    let (name, pkt) = sample_packets().swap_remove(0);
    let (v, _) = run_packet(ifindex, &pkt)?;
    let last = bss_verdict(&obj)?;
    writeln!(
        out,
        "  after deleting jmp_table[6]: {name} -> {}  {}",
        verdict_name(v),
        describe(last)
    )?;
    rep.parser.push((v, last));
    syscall::map_update_elem(
        jfd,
        &IPPROTO_TCP.to_ne_bytes(),
        &obj.prog("parse_tcp")
            .ok_or("no parse_tcp")?
            .fd
            .to_ne_bytes(),
        0,
    )
    .map_err(|e| format!("{e:?}"))?;
    let (_, pkt) = sample_packets().swap_remove(0);
    let ns = time_ns(100_000, || run_packet(ifindex, &pkt).map(|_| ()))?;
    writeln!(
        out,
        "  time: {ns:.0} ns per packet (tcx walk, parser, one tail call, handler)"
    )?;
    tcx::dev_remove(ifindex).map_err(|e| format!("{e:?}"))?;
    obj.close();
    Ok(())
}

fn dispatcher(rep: &mut DemoReport, out: &mut dyn Write) -> Result<(), DynErr> {
    let obj = load_object("syscall.o", SYSCALL_O)?;
    writeln!(
        out,
        "\nseed 000: syscall dispatcher, bpf_tail_call by syscall number (syscall.o, raw_buffer)"
    )?;
    describe_loaded(&obj, out)?;
    let entry = obj.prog("syscall_entry").ok_or("no syscall_entry")?.fd;
    // struct seccomp_data: nr, arch, instruction_pointer, args[6].
    let call = |nr: u32, args: [u64; 3]| {
        let mut c = vec![0u8; 64];
        c[..4].copy_from_slice(&nr.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            c[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        c
    };
    for (what, nr, args) in [
        ("write(1, buf, 12)", 1, [1, 0x1000, 12]),
        ("read(3, buf, 4096)", 0, [3, 0x2000, 4096]),
        ("openat(AT_FDCWD, path, 0)", 257, [u64::MAX - 99, 0x3000, 0]),
    ] {
        let mut ctx = call(nr, args);
        let r = syscall::prog_test_run(
            entry,
            &mut TestRun {
                data: &mut ctx,
                repeat: 1,
                ..Default::default()
            },
        )
        .map_err(|e| format!("{what}: {e:?}"))?;
        let who = match nr {
            0 => "sys_read_event (bytes asked)",
            1 => "sys_write_event (fd)",
            _ => "syscall_entry's default path",
        };
        writeln!(out, "  {what:<26} -> {:<6} {who}", r.retval as u32 as i32)?;
        rep.syscalls.push(r.retval as u32);
    }
    let unknown = u64_at(&read_global(&obj, ".bss", 0, 8)?);
    let mut ctx = call(1, [1, 0, 0]);
    let r = syscall::prog_test_run(
        entry,
        &mut TestRun {
            data: &mut ctx,
            repeat: 1_000_000,
            ..Default::default()
        },
    )
    .map_err(|e| format!("{e:?}"))?;
    writeln!(
        out,
        "  unknown_calls (.bss): {unknown}; time: {} ns per dispatched call",
        r.duration_ns
    )?;
    obj.close();
    Ok(())
}

fn tcx_chain(rep: &mut DemoReport, out: &mut dyn Write) -> Result<(), DynErr> {
    let obj = load_object("tcx_chain.o", TCX_CHAIN_O)?;
    writeln!(
        out,
        "\nseed 001: tcx programs chained with bpf_mprog (tcx_chain.o, tcx/ingress)"
    )?;
    describe_loaded(&obj, out)?;
    let fd = |n: &str| obj.prog(n).map(|p| p.fd).ok_or(format!("no {n}"));
    let ifindex = new_device();
    let steps: [AttachStep; 5] = [
        (
            "attach tcx_count",
            "tcx_count",
            MprogFlags::empty(),
            None,
            None,
        ),
        (
            "attach tcx_accept --after (last)",
            "tcx_accept",
            MprogFlags::AFTER,
            None,
            None,
        ),
        (
            "attach tcx_firewall --before tcx_accept",
            "tcx_firewall",
            MprogFlags::BEFORE,
            Some("tcx_accept"),
            None,
        ),
        (
            "attach tcx_mark --after tcx_count",
            "tcx_mark",
            MprogFlags::AFTER,
            Some("tcx_count"),
            None,
        ),
        (
            "attach tcx_audit --replace tcx_mark",
            "tcx_audit",
            MprogFlags::REPLACE,
            None,
            Some("tcx_mark"),
        ),
    ];
    let https = pad_frame(ipv4_packet(IPPROTO_TCP as u8, &l4_ports(40000, 443)));
    for (what, prog, flags, rel, replace) in steps {
        let rel = rel.map(fd).transpose()?.unwrap_or(0);
        let replace = replace.map(fd).transpose()?.unwrap_or(0);
        attach(ifindex, fd(prog)?, flags, rel, replace)?;
        writeln!(
            out,
            "  {what:<42} -> {}",
            order(ifindex, &obj)?.join(" -> ")
        )?;
        if prog == "tcx_mark" {
            // tcx_mark writes skb->mark through a CO-RE-relocated access.
            let (v, mark) = run_packet(ifindex, &https)?;
            writeln!(
                out,
                "    https packet -> {}, mark {mark:#x} (set by tcx_mark)",
                verdict_name(v)
            )?;
            rep.tcx_mark = mark;
        }
    }
    rep.tcx_order = order(ifindex, &obj)?;
    let tag_name = |t: u32| match t {
        1 => "tcx_count",
        2 => "tcx_mark",
        3 => "tcx_firewall",
        4 => "tcx_accept",
        5 => "tcx_audit",
        _ => "?",
    };
    let order_off = 0usize;
    for (name, pkt) in [
        (
            "tcp 10.0.0.1:40002 > 10.0.0.2:23",
            ipv4_packet(IPPROTO_TCP as u8, &l4_ports(40002, 23)),
        ),
        (
            "tcp 10.0.0.1:40000 > 10.0.0.2:443",
            ipv4_packet(IPPROTO_TCP as u8, &l4_ports(40000, 443)),
        ),
    ] {
        // Reset the trace (order_len is the u32 after order[8]).
        let bss = obj.map(".bss").ok_or("no .bss")?;
        let size = syscall::map_get(bss)
            .map_err(|e| format!("{e:?}"))?
            .user_value_size();
        syscall::map_update_elem(bss, &0u32.to_ne_bytes(), &vec![0u8; size], 0)
            .map_err(|e| format!("{e:?}"))?;
        let (v, mark) = run_packet(ifindex, &pad_frame(pkt))?;
        let b = read_global(&obj, ".bss", order_off, size)?;
        let n = u32::from_le_bytes(b[32..36].try_into().expect("4 bytes")) as usize;
        let tags: Vec<u32> = (0..n.min(8))
            .map(|i| u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().expect("4 bytes")))
            .collect();
        let ran: Vec<&str> = tags.iter().map(|&t| tag_name(t)).collect();
        writeln!(
            out,
            "  {name:<34} -> {:<4} ran: {} (mark {mark:#x})",
            verdict_name(v),
            ran.join(", ")
        )?;
        rep.tcx_ran.push(tags);
    }
    let ns = time_ns(100_000, || run_packet(ifindex, &https).map(|_| ()))?;
    writeln!(
        out,
        "  time: {ns:.0} ns per packet through the four programs"
    )?;
    tcx::dev_remove(ifindex).map_err(|e| format!("{e:?}"))?;
    obj.close();
    Ok(())
}

fn patcher(out: &mut dyn Write) -> Result<(), DynErr> {
    use crate::bench_patch::{run_baseline, run_list, workload};
    let n = 5_000;
    let w = workload(n);
    let t = Instant::now();
    let a = run_list(&w);
    let list = t.elapsed();
    let t = Instant::now();
    let b = run_baseline(&w);
    let base = t.elapsed();
    if a.insns != b.insns {
        return Err("the list patcher and the baseline disagree".into());
    }
    writeln!(
        out,
        "\nseed 003: list-based patching, {n} patches on a {}-insn program: list {:.2} ms, \
         kernel-style one-at-a-time {:.1} ms ({:.0}x)",
        w.insns.len(),
        list.as_secs_f64() * 1e3,
        base.as_secs_f64() * 1e3,
        base.as_secs_f64() / list.as_secs_f64().max(1e-9)
    )?;
    Ok(())
}
