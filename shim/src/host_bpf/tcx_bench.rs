//! The host kernel's tcx walk on real packets, per attached program (the oracle's `tcx-bench`,
//! through kbpf's own `bpf(2)` code): for each N, a private network namespace whose `lo` has N
//! `SCHED_CLS` programs `r0 = TCX_NEXT; exit` on tcx ingress, a UDP receiver on 127.0.0.1 and an
//! `AF_PACKET` socket on `lo` with `PACKET_QDISC_BYPASS` that sends hand-built 60-byte
//! Ethernet/IPv4/UDP frames (127.0.0.2 → 127.0.0.1, so the namespace sets
//! `route_localnet`). `lo` hands each frame to the receive path in the sender's `sendmmsg`
//! (`__netif_receive_skb_core` → `tcx_run` → `ip_rcv` → the UDP socket, whose full queue drops
//! it), so the time per packet includes every attached program once. It is measured as the
//! thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`: the receive path runs in the sender's softirq
//! and is charged to it), which other jobs on a shared CPU do not inflate, and as wall time.
//! Rounds visit the N values in a shuffled order; the figure is the least-squares slope of the
//! per-N medians over N ≥ 1: ns per attached program. Every measurement checks in the namespace's UDP counters
//! that all packets got through, and a control namespace whose chain ends in `TCX_DROP` must
//! keep them all from UDP (so the hook is on the path).

use super::netns::{self, Netns};
use super::sys::{self, OwnedFd, bpf, pack};
use crate::bench::slope;
use kbpf::insn::{exit, mov64_imm};
use kbpf::uapi::{AttachType, ProgType, tcx_action};
use std::time::Instant;

const BPF_PROG_ATTACH: libc::c_long = 8;
/// `PACKET_QDISC_BYPASS` (`linux/if_packet.h`).
const PACKET_QDISC_BYPASS: libc::c_int = 20;
/// UDP payload bytes: a 60-byte frame.
const PAYLOAD: usize = 18;
/// Packets per `sendmmsg`.
const BATCH: usize = 64;
/// Packets a new namespace is primed with, uncounted.
const PRIME: usize = 2000;

/// What to measure.
#[derive(Clone, Debug)]
pub struct TcxHostOpts {
    /// The N values (0..=63).
    pub counts: Vec<usize>,
    /// Packets per measurement.
    pub packets: usize,
    /// Rounds (each visits every N once).
    pub rounds: usize,
    /// Packets sent before each measurement, untimed.
    pub warmup: usize,
}

impl Default for TcxHostOpts {
    fn default() -> Self {
        TcxHostOpts {
            counts: vec![0, 1, 2, 4, 8, 16, 32, 63],
            packets: 20_000,
            rounds: 31,
            warmup: 2_000,
        }
    }
}

/// The results.
#[derive(Clone, Debug)]
pub struct TcxHostReport {
    /// `(N, median CPU ns per packet, median wall ns per packet)`.
    pub rows: Vec<(usize, f64, f64)>,
    /// Slope of the CPU-time medians over N ≥ 1: ns per attached program.
    pub ns_per_prog: f64,
    /// Slope of the wall-time medians over N ≥ 1.
    pub wall_ns_per_prog: f64,
    /// Bytes of JIT'd code of one program.
    pub jited_len: u32,
}

/// One namespace: its `lo`, receiver and sender.
struct Inst {
    ns: Netns,
    n: usize,
    _rx: OwnedFd,
    tx: OwnedFd,
    frame: Vec<u8>,
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn load_ret(r0: i32) -> Result<OwnedFd, String> {
    let insns = [mov64_imm(0, r0), exit()];
    let fd = sys::prog_load(ProgType::SchedCls as u32, &insns, 0, None)
        .map_err(|e| format!("BPF_PROG_LOAD: errno {e}"))?;
    Ok(fd)
}

fn attach(ifindex: u32, prog: &OwnedFd) -> Result<(), String> {
    // target_ifindex | attach_bpf_fd, attach_type | attach_flags: append, no relative.
    let mut attr = [0u64; 16];
    attr[0] = pack(ifindex, prog.0 as u32);
    attr[1] = pack(AttachType::TcxIngress as u32, 0);
    bpf(BPF_PROG_ATTACH, &mut attr)
        .map(drop)
        .map_err(|e| format!("BPF_PROG_ATTACH (tcx ingress of lo): errno {e}"))
}

/// The RFC 1071 checksum of an IPv4 header.
fn ip_csum(h: &[u8]) -> u16 {
    let mut s: u32 = h
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(c[1]))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Ethernet (`lo`'s all-zero address: `PACKET_HOST`) + IPv4 127.0.0.2 → 127.0.0.1 + UDP to
/// `dport` (checksum 0: none) + payload.
fn frame(dport: u16) -> Vec<u8> {
    let ip_len = 20 + 8 + PAYLOAD;
    let mut f = vec![0u8; 14 + ip_len];
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = libc::IPPROTO_UDP as u8;
    ip[12..16].copy_from_slice(&[127, 0, 0, 2]);
    ip[16..20].copy_from_slice(&[127, 0, 0, 1]);
    let c = ip_csum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut f[34..];
    udp[0..2].copy_from_slice(&9u16.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + PAYLOAD) as u16).to_be_bytes());
    for (i, b) in udp[8..].iter_mut().enumerate() {
        *b = b'a' + (i % 26) as u8;
    }
    f
}

fn socket(domain: libc::c_int, ty: libc::c_int) -> Result<OwnedFd, String> {
    // SAFETY: creates a socket; the descriptor is owned by the returned value.
    let s = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(os_err("socket"));
    }
    Ok(OwnedFd(s))
}

impl Inst {
    /// A fresh namespace with `progs` attached in order.
    fn create(progs: &[&OwnedFd]) -> Result<Inst, String> {
        let ns = Netns::create()?;
        netns::sysctl("/proc/sys/net/ipv4/conf/lo/route_localnet", "1")?;
        let rx = socket(libc::AF_INET, libc::SOCK_DGRAM)?;
        // SAFETY: a zeroed `sockaddr_in` is valid; bind/getsockname read and write it.
        let port = unsafe {
            let mut a: libc::sockaddr_in = std::mem::zeroed();
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
            let mut len = std::mem::size_of_val(&a) as libc::socklen_t;
            let p = &mut a as *mut libc::sockaddr_in as *mut libc::sockaddr;
            if libc::bind(rx.0, p, len) != 0 || libc::getsockname(rx.0, p, &mut len) != 0 {
                return Err(os_err("UDP receiver on 127.0.0.1"));
            }
            u16::from_be(a.sin_port)
        };
        let tx = socket(libc::AF_PACKET, libc::SOCK_RAW)?;
        // SAFETY: a zeroed `sockaddr_ll` is valid; bind and setsockopt read what they are given.
        unsafe {
            let mut ll: libc::sockaddr_ll = std::mem::zeroed();
            ll.sll_family = libc::AF_PACKET as u16;
            ll.sll_ifindex = ns.lo as i32;
            let p = &ll as *const libc::sockaddr_ll as *const libc::sockaddr;
            if libc::bind(tx.0, p, std::mem::size_of_val(&ll) as libc::socklen_t) != 0 {
                return Err(os_err("AF_PACKET socket on lo"));
            }
            let one: libc::c_int = 1;
            if libc::setsockopt(
                tx.0,
                libc::SOL_PACKET,
                PACKET_QDISC_BYPASS,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of_val(&one) as libc::socklen_t,
            ) != 0
            {
                return Err(os_err("PACKET_QDISC_BYPASS"));
            }
        }
        for p in progs {
            attach(ns.lo, p)?;
        }
        let inst = Inst {
            ns,
            n: progs.len(),
            _rx: rx,
            tx,
            frame: frame(port),
        };
        // A fresh namespace loses some of its first packets (found here: about 150 of the
        // first 600); prime it before anything counts them.
        inst.send(PRIME)?;
        Ok(inst)
    }

    /// Sends `n` frames in `sendmmsg` batches.
    fn send(&self, n: usize) -> Result<(), String> {
        let mut iov = libc::iovec {
            iov_base: self.frame.as_ptr() as *mut libc::c_void,
            iov_len: self.frame.len(),
        };
        // SAFETY: zeroed `mmsghdr`s are valid; each points to the one iovec, which points to
        // the frame, both alive across the calls.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for m in msgs.iter_mut() {
            m.msg_hdr.msg_iov = &mut iov;
            m.msg_hdr.msg_iovlen = 1;
        }
        let mut left = n;
        while left > 0 {
            let b = left.min(BATCH);
            // SAFETY: `msgs` holds `b` valid headers; `tx` is our socket.
            let r = unsafe { libc::sendmmsg(self.tx.0, msgs.as_mut_ptr(), b as u32, 0) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR | libc::ENOBUFS | libc::EAGAIN) => continue,
                    _ => return Err(format!("sendmmsg: {e}")),
                }
            }
            left -= r as usize;
        }
        Ok(())
    }

    /// Packets that reached UDP in this namespace: `InDatagrams + InErrors + NoPorts`.
    fn udp_seen(&self) -> Result<u64, String> {
        self.ns.enter()?;
        let t = std::fs::read_to_string("/proc/thread-self/net/snmp")
            .map_err(|e| format!("snmp: {e}"))?;
        let mut udp = t.lines().filter(|l| l.starts_with("Udp:"));
        let (Some(h), Some(v)) = (udp.next(), udp.next()) else {
            return Err("no Udp lines in snmp".into());
        };
        Ok(h.split_whitespace()
            .zip(v.split_whitespace())
            .filter(|(k, _)| matches!(*k, "InDatagrams" | "InErrors" | "NoPorts"))
            .filter_map(|(_, v)| v.parse::<u64>().ok())
            .sum())
    }

    /// Waits (up to a second) until UDP has seen `want` packets; returns how many it saw.
    fn settle(&self, want: u64) -> Result<u64, String> {
        let t = Instant::now();
        loop {
            let seen = self.udp_seen()?;
            if seen >= want || t.elapsed().as_secs() >= 1 {
                return Ok(seen);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// One measurement: (wall, CPU) ns per packet. The receive path normally runs in the
    /// sender's softirq; when the kernel deferred some of it to `ksoftirqd` (UDP had not seen
    /// every packet when `sendmmsg` returned), the CPU time is not all ours, so the measurement
    /// is repeated (up to 5 times). An error if packets are lost.
    fn timed(&self, o: &TcxHostOpts) -> Result<(f64, f64), String> {
        self.ns.enter()?;
        for _ in 0..5 {
            let base = self.udp_seen()?;
            self.send(o.warmup)?;
            let before = self.settle(base + o.warmup as u64)?;
            let (t, c) = (Instant::now(), cpu_ns());
            self.send(o.packets)?;
            let wall = t.elapsed().as_nanos() as f64 / o.packets as f64;
            let cpu = (cpu_ns() - c) / o.packets as f64;
            let want = before + o.packets as u64;
            if self.udp_seen()? == want {
                return Ok((wall, cpu));
            }
            let seen = self.settle(want)?;
            if seen != want {
                return Err(format!(
                    "N={}: UDP saw {} of {} packets",
                    self.n,
                    seen - before,
                    o.packets
                ));
            }
        }
        Err(format!(
            "N={}: the receive path kept being deferred to ksoftirqd",
            self.n
        ))
    }

    /// Sends `n` frames and returns how many reached UDP.
    fn send_counted(&self, n: usize) -> Result<u64, String> {
        let before = self.udp_seen()?;
        self.send(n)?;
        Ok(self.settle(before + n as u64)? - before)
    }
}

/// The calling thread's CPU time in ns.
fn cpu_ns() -> f64 {
    // SAFETY: a zeroed `timespec` is valid; the call writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

/// A small xorshift for the round order.
fn shuffle(v: &mut [usize], rng: &mut u64) {
    for i in (1..v.len()).rev() {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        v.swap(i, (*rng % (i as u64 + 1)) as usize);
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn measure_here(o: &TcxHostOpts) -> Result<TcxHostReport, String> {
    super::tailcall::pin();
    let max = o.counts.iter().copied().max().unwrap_or(0);
    if max > 63 || o.counts.is_empty() || o.rounds == 0 || o.packets == 0 {
        return Err("N must be 0..=63; rounds and packets at least 1".into());
    }
    let next: Vec<OwnedFd> = (0..max.max(1))
        .map(|_| load_ret(tcx_action::NEXT))
        .collect::<Result<_, _>>()?;
    let jited_len = sys::prog_info(&next[0], false)
        .map_err(|e| format!("prog info: errno {e}"))?
        .jited_len;
    if jited_len == 0 {
        return Err("the host kernel did not JIT the programs (bpf_jit_enable is 0?)".into());
    }
    // The control: NEXT then DROP keeps every packet from UDP.
    let drop = load_ret(tcx_action::DROP)?;
    let control = Inst::create(&[&next[0], &drop])?;
    let seen = control.send_counted(1000)?;
    if seen != 0 {
        return Err(format!(
            "control: UDP saw {seen} of 1000 packets dropped at tcx ingress"
        ));
    }
    let insts: Vec<Inst> = o
        .counts
        .iter()
        .map(|&n| Inst::create(&next.iter().take(n).collect::<Vec<_>>()))
        .collect::<Result<_, _>>()?;
    let mut wall = vec![Vec::with_capacity(o.rounds); insts.len()];
    let mut cpu = wall.clone();
    let mut order: Vec<usize> = (0..insts.len()).collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..o.rounds {
        shuffle(&mut order, &mut rng);
        for &i in &order {
            let inst = &insts[i];
            let (w, c) = inst.timed(o)?;
            wall[i].push(w);
            cpu[i].push(c);
        }
    }
    let rows: Vec<(usize, f64, f64)> = insts
        .iter()
        .zip(wall.iter_mut().zip(&mut cpu))
        .map(|(inst, (w, c))| (inst.n, median(c), median(w)))
        .collect();
    let fit = |pick: fn(&(usize, f64, f64)) -> f64| {
        let pts: Vec<_> = rows.iter().filter(|r| r.0 >= 1).collect();
        let xs: Vec<f64> = pts.iter().map(|r| r.0 as f64).collect();
        let ys: Vec<f64> = pts.iter().map(|r| pick(r)).collect();
        slope(&xs, &ys)
    };
    Ok(TcxHostReport {
        ns_per_prog: fit(|r| r.1),
        wall_ns_per_prog: fit(|r| r.2),
        rows,
        jited_len,
    })
}

/// Measures on a thread of its own (the namespaces are that thread's and go away with it).
/// An error says why the host can't run it (root, BPF, tcx and `AF_PACKET` are needed).
pub fn measure(o: &TcxHostOpts) -> Result<TcxHostReport, String> {
    let o = o.clone();
    std::thread::spawn(move || measure_here(&o))
        .join()
        .map_err(|_| "the measuring thread panicked".to_string())?
}

/// Prints the report; with `json`, the last line is one JSON object.
pub fn print(r: &TcxHostReport, json: bool, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "host tcx ingress of lo, real packets (AF_PACKET, PACKET_QDISC_BYPASS), {} B of JIT'd code per program",
        r.jited_len
    )?;
    for (n, cpu, wall) in &r.rows {
        writeln!(
            out,
            "  N={n:>2}: {cpu:8.1} CPU ns per packet, {wall:8.1} wall (medians)"
        )?;
    }
    writeln!(
        out,
        "  slope over N >= 1: {:.2} ns per program (CPU time), {:.2} (wall)",
        r.ns_per_prog, r.wall_ns_per_prog
    )?;
    if json {
        let rows: serde_json::Map<String, serde_json::Value> = r
            .rows
            .iter()
            .map(|(n, med, _)| (n.to_string(), crate::bench::json_num(*med)))
            .collect();
        let j = serde_json::json!({
            "engine": "host",
            "ns_per_prog": crate::bench::json_num(r.ns_per_prog),
            "wall_ns_per_prog": crate::bench::json_num(r.wall_ns_per_prog),
            "ns_per_pkt": rows,
        });
        writeln!(out, "{j}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_is_60_bytes_with_a_valid_ip_checksum() {
        let f = frame(4242);
        assert_eq!(f.len(), 60);
        // Summing a header with its checksum in place gives 0xffff, whose complement is 0.
        assert_eq!(ip_csum(&f[14..34]), 0);
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 4242);
    }

    #[test]
    fn shuffles_are_permutations() {
        let mut rng = 1;
        let mut v: Vec<usize> = (0..8).collect();
        shuffle(&mut v, &mut rng);
        let mut s = v.clone();
        s.sort_unstable();
        assert_eq!(s, (0..8).collect::<Vec<_>>());
    }
}
