//! `kbpf demo`: the seed's packet-parser example. A dispatcher parses Ethernet and IPv4, then
//! `bpf_tail_call`s into a per-protocol program chosen by the IP protocol number; each handler
//! counts its packets in an array map and returns a verdict naming itself.

use crate::progs::{
    IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, ParserSet, TAG_ICMP, TAG_TCP, TAG_UDP, VERDICT_UNKNOWN,
    ipv4_packet, l4_ports, pad_frame,
};
use kbpf::syscall::{self, ObjInfo, TestRun};
use std::io::Write;

/// Who handled a packet, from the verdict.
pub fn describe(verdict: u64) -> String {
    match (verdict >> 16, verdict & 0xffff) {
        _ if verdict == VERDICT_UNKNOWN => {
            "packet_parser: default path (not IPv4, or the tail call found an empty slot)".into()
        }
        (TAG_TCP, port) => format!("parse_tcp: dport {port}"),
        (TAG_UDP, port) => format!("parse_udp: dport {port}"),
        (TAG_ICMP, ty) => format!("parse_icmp: type {ty}"),
        _ => format!("unexpected verdict {verdict:#x}"),
    }
}

/// The sample packets: name and bytes, each zero-padded to the parser's frame length
/// ([`crate::progs::PACKET_LEN`]).
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
            "udp 10.0.0.1:5353 > 10.0.0.2:53",
            ipv4_packet(IPPROTO_UDP as u8, &l4_ports(5353, 53)),
        ),
        ("icmp echo request", ipv4_packet(IPPROTO_ICMP as u8, &icmp)),
        ("gre (no handler)", ipv4_packet(47, &[0u8; 8])),
        ("arp (not IPv4)", arp),
        (
            "tcp 10.0.0.1:40001 > 10.0.0.2:80",
            ipv4_packet(IPPROTO_TCP as u8, &l4_ports(40001, 80)),
        ),
    ]
    .into_iter()
    .map(|(name, frame)| (name, pad_frame(frame)))
    .collect()
}

/// Runs the demo, writing what ran to `out`. Returns the verdicts.
pub fn run(out: &mut dyn Write) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let set = ParserSet::load().map_err(|e| format!("loading the program set: {e:?}"))?;
    writeln!(
        out,
        "kbpf demo: packet parser with bpf_tail_call dispatch (seed 000)"
    )?;
    for (name, fd) in std::iter::once(("packet_parser", set.parser))
        .chain(set.handlers.iter().map(|&(_, n, fd)| (n, fd)))
    {
        if let Ok(ObjInfo::Prog(info)) = syscall::obj_get_info(fd) {
            writeln!(
                out,
                "  loaded {name:<14} id {:>3}, {:>2} insns, {}",
                info.id,
                info.xlated_insns,
                if info.jited { "jited" } else { "interpreted" }
            )?;
        }
    }
    writeln!(
        out,
        "  jmp_table: prog_array[256], slots 1 (icmp), 6 (tcp), 17 (udp) filled"
    )?;
    let mut verdicts = Vec::new();
    for (name, mut pkt) in sample_packets() {
        let r = syscall::prog_test_run(
            set.parser,
            &mut TestRun {
                data: &mut pkt,
                repeat: 1,
                ..Default::default()
            },
        )
        .map_err(|e| format!("running on {name}: {e:?}"))?;
        writeln!(out, "  {name:<34} -> {}", describe(r.retval))?;
        verdicts.push(r.retval);
    }
    write!(out, "  per-protocol counters:")?;
    for proto in [IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP] {
        let mut v = [0u8; 8];
        syscall::map_lookup_elem(set.stats, &proto.to_ne_bytes(), &mut v)
            .map_err(|e| format!("{e:?}"))?;
        write!(out, " proto {proto}: {}", u64::from_ne_bytes(v))?;
    }
    writeln!(out)?;
    syscall::map_delete_elem(set.jmp_table, &IPPROTO_TCP.to_ne_bytes())
        .map_err(|e| format!("{e:?}"))?;
    let (name, mut pkt) = sample_packets().swap_remove(0);
    let r = syscall::prog_test_run(
        set.parser,
        &mut TestRun {
            data: &mut pkt,
            repeat: 1,
            ..Default::default()
        },
    )
    .map_err(|e| format!("{e:?}"))?;
    writeln!(
        out,
        "  after deleting slot 6: {name} -> {}",
        describe(r.retval)
    )?;
    verdicts.push(r.retval);
    set.close();
    Ok(verdicts)
}
