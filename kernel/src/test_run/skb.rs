//! `BPF_PROG_TEST_RUN` for socket buffers (`bpf_prog_test_run_skb`,
//! `convert___skb_to_skb`, `convert_skb_to___skb` of `net/bpf/test_run.c`; `eth_type_trans`
//! of `net/ethernet/eth.c`).
//!
//! The frame is copied behind `NET_SKB_PAD` bytes of headroom and received on a device:
//! `eth_type_trans` sets the protocol and the packet type from the Ethernet header and pulls
//! it. TC programs get the header pushed back (they see the frame from its first byte, with
//! `data`/`data_end`); socket filters and cgroup skb programs see it from the network header,
//! and afterwards the kernel pushes 14 zero bytes in front of what they leave, so `data_out`
//! starts with a zeroed Ethernet header. Cgroup skb programs get no packet pointers computed
//! (their `data_end` reads as 0, as in the kernel's test run).
//!
//! An IPv4 or IPv6 frame must hold the whole IP header (`EINVAL`: the kernel reads the
//! addresses for the socket it attaches). That socket ([`Sock::alloc_test_run`], the
//! kernel's dummy `sk`) is in the caller's netns ([`crate::syscall::TestRun::netns`]), as is
//! the device; TC programs run as at egress (`tc_at_ingress` 0), so `bpf_sk_assign` refuses
//! with `EOPNOTSUPP`.
//!
//! The `__sk_buff` context may set `mark`, `priority`, `ingress_ifindex`, `ifindex` (a device
//! that must exist: the loopback is 1; devices are [`crate::tcx`]'s), `cb`, `tstamp`,
//! `wire_len`, `gso_segs`, `gso_size` and `hwtstamp`; any other non-zero byte is `EINVAL`.
//! Devices have the loopback's all-zero hardware and broadcast addresses.

use super::{ETH_HLEN, F_TEST_SKB_CHECKSUM_COMPLETE, ctx_finish, ctx_init, finish, repeat};
use crate::helpers::csum::{self, IpSummed};
use crate::net::addr::{AF_INET, AF_INET6};
use crate::net::sock::Sock;
use crate::prog::Prog;
use crate::skb::SkBuff;
use crate::sync::Arc;
use crate::syscall::{TestRun, TestRunResult};
use crate::uapi::ProgType;
use crate::{Errno, Result};
use alloc::vec::Vec;

/// `NET_SKB_PAD` on x86-64: the headroom in front of the frame.
pub const NET_SKB_PAD: usize = 64;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on x86-64.
const SHINFO: usize = 320;
/// The largest frame (`PAGE_SIZE - headroom - tailroom`).
pub const MAX_FRAME: usize = 4096 - NET_SKB_PAD - SHINFO;
/// `sizeof(struct __sk_buff)`.
pub const SK_BUFF_SIZE: usize = 192;
/// `GSO_MAX_SEGS`.
const GSO_MAX_SEGS: u32 = 65535;
/// `GSO_LEGACY_MAX_SIZE`.
const GSO_LEGACY_MAX_SIZE: u32 = 65536;
/// The loopback device's ifindex.
pub const LOOPBACK_IFINDEX: u32 = 1;

/// Offsets of the `struct __sk_buff` fields the test run reads or writes.
pub mod ctx {
    #![allow(missing_docs)]
    pub const MARK: usize = 8;
    pub const PRIORITY: usize = 32;
    pub const INGRESS_IFINDEX: usize = 36;
    pub const IFINDEX: usize = 40;
    pub const CB: usize = 48;
    pub const TSTAMP: usize = 152;
    pub const WIRE_LEN: usize = 160;
    pub const GSO_SEGS: usize = 164;
    pub const GSO_SIZE: usize = 176;
    pub const HWTSTAMP: usize = 184;
}

/// The byte ranges of `__sk_buff` a caller may set (`convert___skb_to_skb`).
const SETTABLE: [(usize, usize); 8] = [
    (ctx::MARK, 4),
    // priority, ingress_ifindex, ifindex
    (ctx::PRIORITY, 12),
    (ctx::CB, 20),
    (ctx::TSTAMP, 8),
    (ctx::WIRE_LEN, 4),
    (ctx::GSO_SEGS, 4),
    (ctx::GSO_SIZE, 4),
    (ctx::HWTSTAMP, 8),
];

fn get32(c: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(c[off..off + 4].try_into().expect("4 bytes"))
}

fn get64(c: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(c[off..off + 8].try_into().expect("8 bytes"))
}

fn put32(c: &mut [u8], off: usize, v: u32) {
    c[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(c: &mut [u8], off: usize, v: u64) {
    c[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

/// The device with `ifindex` (0 and 1: the loopback), or `ENODEV`.
fn device(ifindex: u32) -> Result<u32> {
    if ifindex <= LOOPBACK_IFINDEX {
        return Ok(LOOPBACK_IFINDEX);
    }
    crate::tcx::dev_get(ifindex).map(|d| d.ifindex())
}

/// `eth_type_trans` for a device with all-zero addresses: (protocol in network byte order,
/// packet type) of `frame`, which holds at least `ETH_HLEN` bytes.
pub fn eth_type_trans(frame: &[u8]) -> (u16, u8) {
    const PACKET_MULTICAST: u8 = 2;
    const PACKET_OTHERHOST: u8 = 3;
    let dest = &frame[..6];
    let pkt_type = if dest.iter().all(|&b| b == 0) {
        0
    } else if dest[0] & 1 != 0 {
        // Multicast; the broadcast address is the device's, all zero: never matched.
        PACKET_MULTICAST
    } else {
        PACKET_OTHERHOST
    };
    let proto = [frame[12], frame[13]];
    let protocol = if u16::from_be_bytes(proto) >= 0x0600 {
        proto
    } else if frame.len() >= ETH_HLEN + 2 && frame[ETH_HLEN..ETH_HLEN + 2] == [0xff, 0xff] {
        // IPX over raw 802.3.
        0x0001u16.to_be_bytes()
    } else {
        // 802.2 LLC.
        0x0004u16.to_be_bytes()
    };
    (u16::from_ne_bytes(protocol), pkt_type)
}

/// `convert___skb_to_skb`: the settable fields of `c` into `skb` (`EINVAL` for anything
/// else set, a `wire_len` below the packet's length or over 64 KiB, too many GSO segments).
fn ctx_to_skb(c: &[u8; SK_BUFF_SIZE], skb: &mut SkBuff) -> Result<()> {
    let settable = |i: usize| SETTABLE.iter().any(|&(o, n)| (o..o + n).contains(&i));
    if c.iter().enumerate().any(|(i, &b)| b != 0 && !settable(i)) {
        return Err(Errno::EINVAL);
    }
    skb.mark = get32(c, ctx::MARK);
    skb.priority = get32(c, ctx::PRIORITY);
    skb.ingress_ifindex = get32(c, ctx::INGRESS_IFINDEX);
    skb.tstamp = get64(c, ctx::TSTAMP);
    for (k, cb) in skb.cb.iter_mut().enumerate() {
        *cb = get32(c, ctx::CB + 4 * k);
    }
    let wire_len = get32(c, ctx::WIRE_LEN);
    skb.wire_len = match wire_len {
        0 => skb.len,
        w if w < skb.len || w > GSO_LEGACY_MAX_SIZE => return Err(Errno::EINVAL),
        w => w,
    };
    let segs = get32(c, ctx::GSO_SEGS);
    if segs > GSO_MAX_SEGS {
        return Err(Errno::EINVAL);
    }
    skb.gso_segs = segs as u16;
    skb.gso_size = get32(c, ctx::GSO_SIZE) as u16;
    skb.hwtstamp = get64(c, ctx::HWTSTAMP);
    Ok(())
}

/// `convert_skb_to___skb`: what the run left in `skb` into `c` (`gso_size` stays as given).
fn skb_to_ctx(skb: &SkBuff, c: &mut [u8; SK_BUFF_SIZE]) {
    put32(c, ctx::MARK, skb.mark);
    put32(c, ctx::PRIORITY, skb.priority);
    put32(c, ctx::INGRESS_IFINDEX, skb.ingress_ifindex);
    put32(c, ctx::IFINDEX, skb.ifindex);
    put64(c, ctx::TSTAMP, skb.tstamp);
    for (k, cb) in skb.cb.iter().enumerate() {
        put32(c, ctx::CB + 4 * k, *cb);
    }
    put32(c, ctx::WIRE_LEN, skb.wire_len);
    put32(c, ctx::GSO_SEGS, skb.gso_segs as u32);
    put64(c, ctx::HWTSTAMP, skb.hwtstamp);
}

/// The sum of the packet from `net` (bytes from `data`) on (`skb_checksum`).
fn sum_from(skb: &SkBuff, net: usize) -> u32 {
    // SAFETY: `data .. data + len` is the packet, in the buffer `run` owns.
    let pkt = unsafe { core::slice::from_raw_parts(skb.data, skb.len as usize) };
    csum::partial(&pkt[net.min(pkt.len())..], 0)
}

/// `bpf_prog_test_run_skb`.
pub(super) fn run(prog: &Prog, run: &mut TestRun<'_>) -> Result<TestRunResult> {
    if run.flags & !F_TEST_SKB_CHECKSUM_COMPLETE != 0 || run.cpu != 0 || run.batch_size != 0 {
        return Err(Errno::EINVAL);
    }
    let size = run.data.len();
    if !(ETH_HLEN..=MAX_FRAME).contains(&size) {
        return Err(Errno::EINVAL);
    }
    let mut c = ctx_init::<SK_BUFF_SIZE>(run)?;
    let is_l2 = matches!(prog.prog_type(), ProgType::SchedCls | ProgType::SchedAct);
    let mut buf = Vec::new();
    buf.try_reserve_exact(NET_SKB_PAD + size)?;
    buf.resize(NET_SKB_PAD, 0);
    buf.extend_from_slice(run.data);
    let ifindex = match &c {
        Some(c) => device(get32(c, ctx::IFINDEX))?,
        None => LOOPBACK_IFINDEX,
    };
    let (protocol, pkt_type) = eth_type_trans(&buf[NET_SKB_PAD..]);
    // The socket the kernel hangs off the skb takes its addresses from an IP header, which
    // must then be whole.
    let l3 = size - ETH_HLEN;
    match u16::from_be(protocol) {
        0x0800 if l3 < 20 => return Err(Errno::EINVAL),
        0x86dd if l3 < 40 => return Err(Errno::EINVAL),
        _ => {}
    }
    // The skb points at the network header, then (TC) at the Ethernet header again.
    let start = if is_l2 {
        NET_SKB_PAD
    } else {
        NET_SKB_PAD + ETH_HLEN
    };
    // The socket the kernel hangs off the skb: of the caller's netns, with the family and
    // addresses of the IP header (`bpf_prog_test_run_skb`).
    let net = super::caller_net(run)?;
    let ip = &buf[NET_SKB_PAD + ETH_HLEN..];
    let (family, saddr, daddr): (u16, &[u8], &[u8]) = match u16::from_be(protocol) {
        0x0800 => (AF_INET, &ip[12..16], &ip[16..20]),
        0x86dd => (AF_INET6, &ip[8..24], &ip[24..40]),
        _ => (0, &[], &[]),
    };
    let sk = DummySk(Some(Sock::alloc_test_run(
        net.clone(),
        family,
        saddr,
        daddr,
    )));
    let mut skb = SkBuff::new(&mut buf[start..]);
    skb.protocol = protocol;
    skb.pkt_type = pkt_type;
    skb.ifindex = ifindex;
    skb.netns = net.num();
    skb.sk = sk.0.as_ref().map_or(core::ptr::null(), |s| s.as_ptr());
    skb.net = Arc::as_ptr(&net);
    if prog.prog_type() == ProgType::CgroupSkb {
        skb.data_end = core::ptr::null_mut();
    }
    if let Some(c) = &c {
        ctx_to_skb(c, &mut skb)?;
    }
    let checksum = run.flags & F_TEST_SKB_CHECKSUM_COMPLETE != 0;
    let net_off = if is_l2 { ETH_HLEN } else { 0 };
    if checksum {
        skb.csum = sum_from(&skb, net_off);
        skb.ip_summed = IpSummed::Complete;
    }
    let (retval, duration) = repeat(prog, skb.as_ctx(), 0, run.repeat)?;
    if !is_l2 {
        // The zeroed Ethernet header in front of what the program leaves.
        skb.data = skb.data.wrapping_sub(ETH_HLEN);
        // SAFETY: the buffer has `NET_SKB_PAD` bytes of headroom in front of the network
        // header, where `data` now points.
        unsafe { core::ptr::write_bytes(skb.data, 0, ETH_HLEN) };
        skb.len += ETH_HLEN as u32;
    }
    if let Some(c) = &mut c {
        skb_to_ctx(&skb, c);
    }
    if checksum && csum::fold(skb.csum) != csum::fold(sum_from(&skb, ETH_HLEN)) {
        return Err(Errno::EBADMSG);
    }
    // SAFETY: `data .. data + len` lies in `buf`, which the skb points into.
    let pkt = unsafe { core::slice::from_raw_parts(skb.data, skb.len as usize) };
    finish(run, &[pkt], 0, retval, duration)?;
    ctx_finish(run, c.as_ref().map(|c| &c[..]))
}

/// The test run's socket. Declared before the skb that points to it, it goes after it
/// (`kfree_skb`, then `sk_free`) on every return, and at once: nothing else ever reached it
/// ([`crate::net::sock::SockRef::free_unpublished`]), so no grace period is needed — a
/// stream of test runs leaves no backlog of sockets to free.
struct DummySk(Option<crate::net::sock::SockRef>);

impl Drop for DummySk {
    fn drop(&mut self) {
        if let Some(sk) = self.0.take() {
            sk.free_unpublished();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eth_type_trans_sorts_protocols_and_destinations() {
        let mut f = [0u8; 16];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(eth_type_trans(&f), (u16::from_ne_bytes([8, 0]), 0));
        f[0] = 1;
        assert_eq!(eth_type_trans(&f).1, 2);
        f[0] = 2;
        assert_eq!(eth_type_trans(&f).1, 3);
        f[12..16].copy_from_slice(&[0, 0x40, 0xff, 0xff]);
        assert_eq!(eth_type_trans(&f).0, u16::from_ne_bytes([0, 1]));
        f[14] = 0;
        assert_eq!(eth_type_trans(&f).0, u16::from_ne_bytes([0, 4]));
    }

    #[test]
    fn only_settable_fields_may_be_set() {
        let mut pkt = [0u8; 20];
        let mut skb = SkBuff::new(&mut pkt);
        let mut c = [0u8; SK_BUFF_SIZE];
        put32(&mut c, ctx::MARK, 5);
        put32(&mut c, ctx::WIRE_LEN, 1500);
        assert_eq!(ctx_to_skb(&c, &mut skb), Ok(()));
        assert_eq!((skb.mark, skb.wire_len), (5, 1500));
        put32(&mut c, ctx::WIRE_LEN, 19);
        assert_eq!(ctx_to_skb(&c, &mut skb), Err(Errno::EINVAL));
        put32(&mut c, ctx::WIRE_LEN, 0);
        c[180] = 1; // tstamp_type
        assert_eq!(ctx_to_skb(&c, &mut skb), Err(Errno::EINVAL));
    }
}
