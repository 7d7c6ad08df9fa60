//! The kernel-side socket buffer a TC, socket-filter or cgroup-skb program's context points
//! to at run time (`struct sk_buff` of `include/linux/skbuff.h`, reduced to what the
//! `__sk_buff` view exposes).
//!
//! Programs are written against `struct __sk_buff` (`include/uapi/linux/bpf.h`), a stable
//! view whose layout is not this struct's: after verification the load rewrites every
//! context access into an access of this struct (`bpf_convert_ctx_access` /
//! `tc_cls_act_convert_ctx_access` of `net/core/filter.c`, here
//! [`crate::verifier::convert`]). As in the kernel the fields are laid out for the kernel,
//! not for the view: pointers first, several fields narrower than the view's `__u32`
//! (`protocol`, `vlan_tci`, `vlan_proto`, `queue_mapping`, `tc_index`, `tc_classid` are 16
//! bits, `pkt_type` and `vlan_present` 8), `cb` where the qdisc control block keeps it.
//!
//! `protocol` and `vlan_proto` hold network byte order, as the kernel's `__be16`s do.
//!
//! Beyond the `__sk_buff` view the struct keeps what the packet helpers
//! ([`crate::helpers::skb`]) and `BPF_PROG_TEST_RUN` ([`crate::test_run`]) need: the
//! checksum state (`csum`, `ip_summed`), the time stamps, the wire length and the GSO figures
//! a test run's context may set.
//!
//! The packet's socket (`skb->sk`, what `__sk_buff.sk` and `family` .. `local_port` read) and
//! its netns (`dev_net(skb->dev)`, where the socket helpers look up) are pointers whose owner
//! keeps them valid for as long as programs run on the skb: a test run keeps its socket and
//! netns alive around its runs. A socket `bpf_sk_assign` attached holds the reference the
//! helper took, put when the skb is dropped (`skb->destructor`, `sock_pfree`).

use crate::helpers::csum::IpSummed;
use crate::net::Net;
use crate::net::sock::Sock;
use core::mem::offset_of;

/// A packet as TC and socket programs see it (kbpf's `struct sk_buff`).
#[repr(C)]
#[derive(Debug)]
pub struct SkBuff {
    /// First byte of the packet data (`skb->data`).
    pub data: *mut u8,
    /// One past the last byte of the linear data (`bpf_skb_cb(skb)->data_end`).
    pub data_end: *mut u8,
    /// Start of the metadata area in front of `data` (`skb->data - skb_metadata_len(skb)`);
    /// equal to `data` when there is none.
    pub data_meta: *mut u8,
    /// The socket the packet belongs to, or null (`skb->sk`); valid while programs run on the
    /// skb (see the module docs).
    pub sk: *const Sock,
    /// The netns of the packet's device (`dev_net(skb->dev)`): where `bpf_sk_lookup_*` look
    /// and what `bpf_sk_assign` checks a socket against; null for none (lookups find nothing).
    pub net: *const Net,
    /// Packet length (`skb->len`).
    pub len: u32,
    /// Packet mark (`skb->mark`).
    pub mark: u32,
    /// Queueing priority (`skb->priority`).
    pub priority: u32,
    /// Flow hash (`skb->hash`).
    pub hash: u32,
    /// Interface the packet arrived on (`skb->skb_iif`).
    pub ingress_ifindex: u32,
    /// Interface the packet is on (`skb->dev->ifindex`; 0 for no device).
    pub ifindex: u32,
    /// Ethernet protocol, network byte order (`skb->protocol`).
    pub protocol: u16,
    /// VLAN tag control information (`skb->vlan_tci`).
    pub vlan_tci: u16,
    /// VLAN protocol, network byte order (`skb->vlan_proto`).
    pub vlan_proto: u16,
    /// Transmit queue (`skb->queue_mapping`).
    pub queue_mapping: u16,
    /// Traffic control index (`skb->tc_index`).
    pub tc_index: u16,
    /// TC class id (`qdisc_skb_cb(skb)->tc_classid`).
    pub tc_classid: u16,
    /// Packet class (`skb->pkt_type`: host, broadcast, ...).
    pub pkt_type: u8,
    /// Whether a VLAN tag is present (`skb_vlan_tag_present`).
    pub vlan_present: u8,
    /// TC runs at ingress (`skb->tc_at_ingress`): only there may `bpf_sk_assign` steer it.
    pub tc_at_ingress: u8,
    /// `sk` was attached by `bpf_sk_assign` and is released with the skb (`skb->destructor ==
    /// sock_pfree`): a reference for a reference-counted socket, none for an RCU-freed one.
    pub sk_assigned: u8,
    /// Control block programs may use (`qdisc_skb_cb(skb)->data`, `__sk_buff.cb[0..5]`).
    pub cb: [u32; 5],
    /// How the checksum is kept (`skb->ip_summed`).
    pub ip_summed: IpSummed,
    /// With [`IpSummed::Complete`]: the partial sum of the packet from the network header
    /// (`skb->csum`).
    pub csum: u32,
    /// Length on the wire (`qdisc_skb_cb(skb)->pkt_len`, `__sk_buff.wire_len`).
    pub wire_len: u32,
    /// Segments of a GSO packet (`skb_shinfo(skb)->gso_segs`).
    pub gso_segs: u16,
    /// Segment size of a GSO packet (`skb_shinfo(skb)->gso_size`).
    pub gso_size: u16,
    /// Time stamp (`skb->tstamp`).
    pub tstamp: u64,
    /// Hardware time stamp (`skb_shinfo(skb)->hwtstamps.hwtstamp`).
    pub hwtstamp: u64,
    /// The number of the packet's device's netns (`dev_net(skb->dev)`, [`crate::net::Net::num`]),
    /// what the conntrack kfuncs key by; 0 is the initial one.
    pub netns: u32,
}

impl SkBuff {
    /// An skb over `pkt` (no metadata): `data`..`data_end` covers it, `len` and `wire_len`
    /// are its length, no checksum is known, no socket and no netns (set [`SkBuff::net`] for
    /// the socket helpers to look up), every other field 0.
    pub fn new(pkt: &mut [u8]) -> SkBuff {
        let range = pkt.as_mut_ptr_range();
        SkBuff {
            data: range.start,
            data_end: range.end,
            data_meta: range.start,
            sk: core::ptr::null(),
            net: core::ptr::null(),
            len: pkt.len() as u32,
            mark: 0,
            priority: 0,
            hash: 0,
            ingress_ifindex: 0,
            ifindex: 0,
            protocol: 0,
            vlan_tci: 0,
            vlan_proto: 0,
            queue_mapping: 0,
            tc_index: 0,
            tc_classid: 0,
            pkt_type: 0,
            vlan_present: 0,
            tc_at_ingress: 0,
            sk_assigned: 0,
            cb: [0; 5],
            ip_summed: IpSummed::None,
            csum: 0,
            wire_len: pkt.len() as u32,
            gso_segs: 0,
            gso_size: 0,
            tstamp: 0,
            hwtstamp: 0,
            netns: 0,
        }
    }

    /// The address a program's R1 gets.
    pub fn as_ctx(&mut self) -> u64 {
        self as *mut SkBuff as u64
    }

    /// Detaches the socket (`skb_orphan`): one `bpf_sk_assign` attached is released.
    pub fn orphan(&mut self) {
        let sk = core::mem::replace(&mut self.sk, core::ptr::null());
        if core::mem::take(&mut self.sk_assigned) != 0 {
            // SAFETY: `bpf_sk_assign` attached `sk` and, for a reference-counted socket, took
            // the reference the skb owns and gives up here; an RCU-freed one is alive for the
            // read-side section the skb is used in.
            unsafe { crate::net::sock::sock_pfree(sk) };
        }
    }
}

impl Drop for SkBuff {
    fn drop(&mut self) {
        self.orphan();
    }
}

/// Where each field is, for the context rewrite: `(offset, size)` in bytes.
pub mod field {
    #![allow(missing_docs)]
    use super::*;
    pub const DATA: (usize, usize) = (offset_of!(SkBuff, data), 8);
    pub const DATA_END: (usize, usize) = (offset_of!(SkBuff, data_end), 8);
    pub const DATA_META: (usize, usize) = (offset_of!(SkBuff, data_meta), 8);
    pub const SK: (usize, usize) = (offset_of!(SkBuff, sk), 8);
    pub const LEN: (usize, usize) = (offset_of!(SkBuff, len), 4);
    pub const MARK: (usize, usize) = (offset_of!(SkBuff, mark), 4);
    pub const PRIORITY: (usize, usize) = (offset_of!(SkBuff, priority), 4);
    pub const HASH: (usize, usize) = (offset_of!(SkBuff, hash), 4);
    pub const INGRESS_IFINDEX: (usize, usize) = (offset_of!(SkBuff, ingress_ifindex), 4);
    pub const IFINDEX: (usize, usize) = (offset_of!(SkBuff, ifindex), 4);
    pub const PROTOCOL: (usize, usize) = (offset_of!(SkBuff, protocol), 2);
    pub const VLAN_TCI: (usize, usize) = (offset_of!(SkBuff, vlan_tci), 2);
    pub const VLAN_PROTO: (usize, usize) = (offset_of!(SkBuff, vlan_proto), 2);
    pub const QUEUE_MAPPING: (usize, usize) = (offset_of!(SkBuff, queue_mapping), 2);
    pub const TC_INDEX: (usize, usize) = (offset_of!(SkBuff, tc_index), 2);
    pub const TC_CLASSID: (usize, usize) = (offset_of!(SkBuff, tc_classid), 2);
    pub const PKT_TYPE: (usize, usize) = (offset_of!(SkBuff, pkt_type), 1);
    pub const VLAN_PRESENT: (usize, usize) = (offset_of!(SkBuff, vlan_present), 1);
    pub const CB: (usize, usize) = (offset_of!(SkBuff, cb), 20);
    pub const WIRE_LEN: (usize, usize) = (offset_of!(SkBuff, wire_len), 4);
    pub const GSO_SEGS: (usize, usize) = (offset_of!(SkBuff, gso_segs), 2);
    pub const GSO_SIZE: (usize, usize) = (offset_of!(SkBuff, gso_size), 2);
    pub const TSTAMP: (usize, usize) = (offset_of!(SkBuff, tstamp), 8);
    pub const HWTSTAMP: (usize, usize) = (offset_of!(SkBuff, hwtstamp), 8);
}

// The control block keeps the alignment 8-byte `cb` accesses in `__sk_buff` have.
static_assertions::const_assert!(offset_of!(SkBuff, cb) % 8 == 0);
