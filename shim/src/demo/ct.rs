//! The demo's seed 004 section: conntrack from BPF C. `ct_track.o` (TC) records the
//! connections a host opens — `bpf_skb_ct_alloc`, a timeout, `IPS_ASSURED`, a mark,
//! `bpf_ct_insert_entry` — and refreshes them as packets go by; `synproxy.o` (XDP) looks every
//! incoming TCP segment up (`bpf_xdp_ct_lookup`): the replies of known connections pass, SYNs
//! of new ones pass, anything else is dropped. Both are loaded with root's rules: they read
//! `struct nf_conn`, which Linux allows only with `CAP_PERFMON`.
//!
//! The entries go into the process's conntrack table in a namespace of the demo's own, which
//! is listed, then destroyed.

use super::DynErr;
use crate::ct::Netns;
use crate::elf::{LoadOpts, LoadedObject, Object};
use kbpf::netfilter;
use kbpf::syscall::{self, TestRun};
use std::io::Write;
use std::net::Ipv4Addr;
use std::time::Instant;

/// `examples/bpf/synproxy.o`.
pub const SYNPROXY_O: &[u8] = include_bytes!("../../../examples/bpf/synproxy.o");
/// `examples/bpf/ct_track.o`.
pub const CT_TRACK_O: &[u8] = include_bytes!("../../../examples/bpf/ct_track.o");

/// What the conntrack section saw, for tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CtReport {
    /// `synproxy.o`'s XDP verdict per incoming packet (1 drop, 2 pass).
    pub verdicts: Vec<u32>,
    /// Its counters: established, new, dropped, not TCP.
    pub seen: [u64; 4],
    /// `ct_track.o`'s counters: created, refreshed, replies seen, clashes, failed allocations.
    pub track: [u64; 5],
    /// The marks `ct_track.o` left on the outgoing packets.
    pub marks: Vec<u32>,
    /// The table's entries afterwards, as `kbpf ct list` prints them.
    pub entries: Vec<String>,
}

/// TCP flags.
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// An Ethernet + IPv4 + TCP frame (60 bytes).
pub fn tcp_frame(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&40u16.to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&src.octets());
    f[30..34].copy_from_slice(&dst.octets());
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[46] = 0x50;
    f[47] = flags;
    f
}

fn load(name: &str, bytes: &[u8]) -> Result<LoadedObject, DynErr> {
    let obj = Object::parse(bytes).map_err(|e| format!("{name}: {e}"))?;
    let opts = LoadOpts {
        privileged: true,
        ..LoadOpts::default()
    };
    Ok(obj
        .load(&opts)
        .map_err(|e| format!("{name}: {e}\n{}", e.log))?)
}

/// One test run of program `fd` on `frame` in namespace `net`: (R0, the skb mark after; 0
/// for XDP, which has no context out here).
fn run(fd: u32, frame: &[u8], net: &Netns, skb: bool) -> Result<(u32, u32), DynErr> {
    let mut data = frame.to_vec();
    let mut ctx = [0u8; 192];
    let mut r = TestRun {
        data: &mut data,
        ctx_out: skb.then_some(&mut ctx[..]),
        netns: Some(net.fd),
        ..Default::default()
    };
    let out = syscall::prog_test_run(fd, &mut r).map_err(|e| format!("test run: {e:?}"))?;
    // `__sk_buff.mark` is at 8 (an XDP context has no mark: 0).
    let mark = u32::from_ne_bytes(ctx[8..12].try_into().expect("4 bytes"));
    Ok((out.retval as u32, mark))
}

/// The `u64` global `name` of `obj` (loaded from the ELF `bytes`), found by its symbol.
pub fn global_u64(bytes: &[u8], obj: &LoadedObject, name: &str) -> Result<u64, DynErr> {
    let (sec, off) = crate::elf::symbols::symbol_offset(bytes, name)
        .ok_or_else(|| format!("no symbol {name}"))?;
    let b = super::read_global(obj, &sec, off as usize, 8)?;
    Ok(u64::from_le_bytes(b[..8].try_into().expect("8 bytes")))
}

/// Runs the section.
pub fn run_section(rep: &mut CtReport, out: &mut dyn Write) -> Result<(), DynErr> {
    writeln!(
        out,
        "\nseed 004: conntrack kfuncs from BPF C (loaded with root's rules: they read struct \
         nf_conn)"
    )?;
    let track = load("ct_track.o", CT_TRACK_O)?;
    let proxy = load("synproxy.o", SYNPROXY_O)?;
    super::describe_loaded(&track, out)?;
    super::describe_loaded(&proxy, out)?;
    let (tfd, pfd) = (
        track.prog("ct_track").ok_or("no ct_track")?.fd,
        proxy.prog("syn_filter").ok_or("no syn_filter")?.fd,
    );
    let net = Netns::new(None).map_err(|e| format!("netns: {e:?}"))?;
    let r = section(rep, &track, &proxy, (tfd, pfd), &net, out);
    drop(net);
    track.close();
    proxy.close();
    r
}

fn section(
    rep: &mut CtReport,
    track: &LoadedObject,
    proxy: &LoadedObject,
    (tfd, pfd): (u32, u32),
    net: &Netns,
    out: &mut dyn Write,
) -> Result<(), DynErr> {
    let me = Ipv4Addr::new(10, 0, 0, 1);
    let web = Ipv4Addr::new(93, 184, 216, 34);
    let dns = Ipv4Addr::new(9, 9, 9, 9);
    writeln!(
        out,
        "  egress (ct_track, TC): this host opens two connections"
    )?;
    for (what, frame) in [
        (
            "tcp 10.0.0.1:40000 > 93.184.216.34:443 SYN",
            tcp_frame(me, web, 40000, 443, SYN),
        ),
        (
            "tcp 10.0.0.1:40001 > 9.9.9.9:853 SYN",
            tcp_frame(me, dns, 40001, 853, SYN),
        ),
    ] {
        let (_, mark) = run(tfd, &frame, net, true)?;
        rep.marks.push(mark);
        writeln!(out, "    {what:<45} -> entry created, skb mark {mark:#x}")?;
    }
    writeln!(
        out,
        "  ingress (synproxy, XDP): what comes back, and what does not belong"
    )?;
    let stray = Ipv4Addr::new(198, 51, 100, 7);
    let client = Ipv4Addr::new(203, 0, 113, 9);
    for (what, frame) in [
        (
            "tcp 93.184.216.34:443 > 10.0.0.1:40000 SYN-ACK",
            tcp_frame(web, me, 443, 40000, SYN | ACK),
        ),
        (
            "tcp 198.51.100.7:80 > 10.0.0.1:5555 ACK",
            tcp_frame(stray, me, 80, 5555, ACK),
        ),
        (
            "tcp 203.0.113.9:1234 > 10.0.0.1:22 SYN",
            tcp_frame(client, me, 1234, 22, SYN),
        ),
        (
            "tcp 9.9.9.9:853 > 10.0.0.1:40001 ACK",
            tcp_frame(dns, me, 853, 40001, ACK),
        ),
    ] {
        let (v, _) = run(pfd, &frame, net, false)?;
        rep.verdicts.push(v);
        let how = match v {
            2 => "XDP_PASS",
            1 => "XDP_DROP",
            _ => "?",
        };
        writeln!(out, "    {what:<45} -> {how}")?;
    }
    // The server's reply seen on the way out again: the entry learns it has seen a reply.
    let (_, mark) = run(tfd, &tcp_frame(web, me, 443, 40000, SYN | ACK), net, true)?;
    rep.marks.push(mark);
    let seen = map_u64s(proxy, "seen", 4)?;
    rep.seen.copy_from_slice(&seen);
    let mut t = [0u64; 5];
    for (v, name) in
        t.iter_mut()
            .zip(["created", "refreshed", "replies", "clashed", "alloc_failed"])
    {
        *v = global_u64(CT_TRACK_O, track, name)?;
    }
    rep.track = t;
    writeln!(
        out,
        "  synproxy: {} established, {} new, {} dropped; ct_track: {} created, {} refreshed, {} \
         replies seen",
        seen[0], seen[1], seen[2], t[0], t[1], t[2]
    )?;
    let ct = netfilter::conntrack().map_err(|e| format!("{e:?}"))?;
    writeln!(out, "  the table (kbpf ct list --netns {}):", net.num)?;
    for e in ct.list(Some(net.num)) {
        let l = crate::ct::show::line(&e);
        writeln!(out, "    {l}")?;
        rep.entries.push(l);
    }
    // What a lookup costs: the filter on an established flow's packet.
    let frame = tcp_frame(web, me, 443, 40000, ACK);
    let n = 20_000;
    let t0 = Instant::now();
    let mut data = frame.clone();
    syscall::prog_test_run(
        pfd,
        &mut TestRun {
            data: &mut data,
            repeat: n,
            netns: Some(net.fd),
            ..Default::default()
        },
    )
    .map_err(|e| format!("{e:?}"))?;
    writeln!(
        out,
        "  synproxy on an established flow's packet: {:.0} ns per run (lookup + release \
         included; kbpf bench ct measures the lookup alone)",
        t0.elapsed().as_nanos() as f64 / n as f64
    )?;
    Ok(())
}

/// An array map's `u64` values, keys 0..n.
fn map_u64s(obj: &LoadedObject, name: &str, n: usize) -> Result<Vec<u64>, DynErr> {
    let fd = obj.map(name).ok_or_else(|| format!("no map {name}"))?;
    (0..n as u32)
        .map(|k| {
            let mut v = [0u8; 8];
            syscall::map_lookup_elem(fd, &k.to_ne_bytes(), &mut v)
                .map_err(|e| format!("{name}[{k}]: {e:?}"))?;
            Ok(u64::from_le_bytes(v))
        })
        .collect()
}
