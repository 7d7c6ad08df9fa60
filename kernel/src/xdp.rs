//! The kernel-side buffer an XDP program's context points to at run time (`struct xdp_buff`
//! and `struct xdp_rxq_info` of `include/net/xdp.h`).
//!
//! Programs are written against `struct xdp_md` (`include/uapi/linux/bpf.h`), whose fields
//! are all `__u32`; the load rewrites each context access into this struct
//! (`xdp_convert_ctx_access` of `net/core/filter.c`, here [`crate::verifier::convert`]):
//! `data`, `data_end` and `data_meta` become 64-bit pointer loads, `ingress_ifindex` and
//! `rx_queue_index` two loads through the receive-queue pointer.

use core::mem::offset_of;

/// The receive queue a packet arrived on (`struct xdp_rxq_info`, with the device's ifindex
/// in place of the device pointer).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpRxqInfo {
    /// The device's ifindex (`rxq->dev->ifindex`).
    pub ifindex: u32,
    /// The queue's index (`rxq->queue_index`).
    pub queue_index: u32,
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
}

impl XdpBuff {
    /// A buffer over `pkt` (no headroom, no metadata) received on `rxq`.
    pub fn new(pkt: &mut [u8], rxq: &XdpRxqInfo) -> XdpBuff {
        let range = pkt.as_mut_ptr_range();
        XdpBuff {
            data: range.start,
            data_end: range.end,
            data_meta: range.start,
            data_hard_start: range.start,
            rxq,
        }
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
}
