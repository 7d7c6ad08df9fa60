//! The kernel-side buffer an XDP program's context points to at run time (`struct xdp_buff`
//! and `struct xdp_rxq_info` of `include/net/xdp.h`).
//!
//! Programs are written against `struct xdp_md` (`include/uapi/linux/bpf.h`), whose fields
//! are all `__u32`; the load rewrites each context access into this struct
//! (`xdp_convert_ctx_access` of `net/core/filter.c`, here [`crate::verifier::convert`]):
//! `data`, `data_end` and `data_meta` become 64-bit pointer loads, `ingress_ifindex` and
//! `rx_queue_index` two loads through the receive-queue pointer.
//!
//! A frame may continue past its linear part in fragments ([`XdpFrags`], the
//! `skb_shared_info` of a multi-buffer `xdp_buff`): programs see only the linear part
//! directly; `bpf_xdp_load_bytes`/`_store_bytes` and `bpf_xdp_adjust_tail` reach the rest
//! ([`crate::helpers::xdp`]).

use crate::net::Net;
use core::mem::offset_of;

/// The receive queue a packet arrived on (`struct xdp_rxq_info`, with the device's ifindex
/// and netns in place of the device pointer).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XdpRxqInfo {
    /// The device's ifindex (`rxq->dev->ifindex`).
    pub ifindex: u32,
    /// The queue's index (`rxq->queue_index`).
    pub queue_index: u32,
    /// The number of the device's netns (`dev_net(rxq->dev)`, [`crate::net::Net::num`]), what
    /// the conntrack kfuncs key by; 0 is the initial one.
    pub netns: u32,
    /// The device's netns (`dev_net(rxq->dev)`), where `bpf_sk_lookup_*` look; its owner
    /// keeps it alive while programs run. Null: none (lookups find nothing).
    pub net: *const Net,
}

impl Default for XdpRxqInfo {
    /// Queue 0 of no device: ifindex 0, netns number 0 (the initial one), no netns object.
    fn default() -> Self {
        XdpRxqInfo {
            ifindex: 0,
            queue_index: 0,
            netns: 0,
            net: core::ptr::null(),
        }
    }
}

/// `XDP_PACKET_HEADROOM`: the headroom a driver leaves in front of a frame.
pub const XDP_PACKET_HEADROOM: u32 = 256;
/// `sizeof(struct xdp_frame)`, which the headroom must keep room for (x86-64).
pub const XDP_FRAME_SIZE: u32 = 40;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on x86-64: the tailroom a frame keeps
/// for the fragment table.
pub const XDP_TAILROOM: u32 = 320;
/// `PAGE_SIZE`: a test-run frame's size, and each fragment's.
pub const PAGE_SIZE: u32 = 4096;
/// `MAX_SKB_FRAGS`.
pub const MAX_FRAGS: usize = 17;

/// One fragment of a multi-buffer frame (`skb_frag_t`, offset 0 into its page).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XdpFrag {
    /// First byte.
    pub data: *mut u8,
    /// Bytes in use.
    pub size: u32,
    /// Bytes the fragment may grow to (the receive queue's `frag_size`).
    pub cap: u32,
}

/// The fragments after a frame's linear part (`skb_shared_info`'s `nr_frags`,
/// `xdp_frags_size` and `frags[]`).
#[repr(C)]
#[derive(Debug)]
pub struct XdpFrags {
    /// Fragments in use.
    pub nr_frags: u32,
    /// Their total size.
    pub size: u32,
    /// The fragments, `nr_frags` of them valid.
    pub frags: [XdpFrag; MAX_FRAGS],
}

impl XdpFrags {
    /// No fragments.
    pub const EMPTY: XdpFrags = XdpFrags {
        nr_frags: 0,
        size: 0,
        frags: [XdpFrag {
            data: core::ptr::null_mut(),
            size: 0,
            cap: 0,
        }; MAX_FRAGS],
    };
}

/// A packet as XDP programs see it (kbpf's `struct xdp_buff`).
#[repr(C)]
#[derive(Debug)]
pub struct XdpBuff {
    /// First byte of the packet data.
    pub data: *mut u8,
    /// One past the last byte.
    pub data_end: *mut u8,
    /// Start of the metadata area in front of `data` (equal to `data` when there is none).
    pub data_meta: *mut u8,
    /// Start of the headroom.
    pub data_hard_start: *mut u8,
    /// The receive queue; never null while a program runs.
    pub rxq: *const XdpRxqInfo,
    /// Bytes from `data_hard_start` the frame may use, the tailroom included (`frame_sz`).
    pub frame_sz: u32,
    /// The fragments after the linear part, or null for a single-buffer frame.
    pub frags: *mut XdpFrags,
}

impl XdpBuff {
    /// A buffer over `pkt` (no headroom, no tailroom, no metadata, no fragments) received
    /// on `rxq`.
    pub fn new(pkt: &mut [u8], rxq: &XdpRxqInfo) -> XdpBuff {
        let range = pkt.as_mut_ptr_range();
        XdpBuff {
            data: range.start,
            data_end: range.end,
            data_meta: range.start,
            data_hard_start: range.start,
            rxq,
            frame_sz: pkt.len() as u32 + XDP_TAILROOM,
            frags: core::ptr::null_mut(),
        }
    }

    /// The end of the room the linear part may grow into (`xdp_data_hard_end`).
    pub fn hard_end(&self) -> *mut u8 {
        self.data_hard_start
            .wrapping_add((self.frame_sz - XDP_TAILROOM) as usize)
    }

    /// Whether the frame has fragments (`xdp_buff_has_frags`).
    pub fn has_frags(&self) -> bool {
        // SAFETY: `frags` is null or points to the frame's fragment table, which lives as long
        // as the frame.
        !self.frags.is_null() && unsafe { (*self.frags).nr_frags } > 0
    }

    /// The metadata's length; 0 when metadata is not supported (`xdp_get_metalen`).
    pub fn metalen(&self) -> usize {
        (self.data as usize).saturating_sub(self.data_meta as usize)
    }

    /// Linear bytes plus fragments (`xdp_get_buff_len`).
    pub fn buff_len(&self) -> usize {
        let frags = if self.frags.is_null() {
            0
        } else {
            // SAFETY: as in `has_frags`.
            unsafe { (*self.frags).size as usize }
        };
        self.data_end as usize - self.data as usize + frags
    }

    /// The address a program's R1 gets.
    pub fn as_ctx(&mut self) -> u64 {
        self as *mut XdpBuff as u64
    }
}

/// Where each field is, for the context rewrite (byte offsets).
pub mod field {
    #![allow(missing_docs)]
    use super::*;
    pub const DATA: usize = offset_of!(XdpBuff, data);
    pub const DATA_END: usize = offset_of!(XdpBuff, data_end);
    pub const DATA_META: usize = offset_of!(XdpBuff, data_meta);
    pub const RXQ: usize = offset_of!(XdpBuff, rxq);
    pub const RXQ_IFINDEX: usize = offset_of!(XdpRxqInfo, ifindex);
    pub const RXQ_QUEUE_INDEX: usize = offset_of!(XdpRxqInfo, queue_index);
    pub const RXQ_NET: usize = offset_of!(XdpRxqInfo, net);
}
