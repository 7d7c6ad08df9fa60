//! `BPF_PROG_TEST_RUN` for XDP (`bpf_prog_test_run_xdp`, `xdp_convert_md_to_buff`,
//! `xdp_convert_buff_to_md` of `net/bpf/test_run.c`).
//!
//! The frame lives in a page: `XDP_PACKET_HEADROOM` (256) bytes of headroom, out of which
//! the metadata `ctx_in` asks for is carved (`xdp_md.data` bytes, a multiple of 4, at most
//! 216 so that a `struct xdp_frame` still fits), then the linear part (`xdp_md.data_end`
//! bytes from the metadata, at most what the page holds before its 320-byte tailroom), then
//! up to 17 page-sized fragments for the rest of the packet. `data_out` is the metadata, the
//! linear part and the fragments as the program left them; `ctx_out` has `data` and
//! `data_end` as offsets from the metadata again.
//!
//! Without a context the frame arrives on the loopback (ifindex 1), queue 0. A context may
//! name another device ([`crate::tcx`]'s; one receive queue each) and queue; `egress_ifindex`
//! must be 0.

use super::{ETH_HLEN, F_TEST_XDP_LIVE_FRAMES, ctx_finish, ctx_init, finish, repeat};
use crate::helpers::xdp::metalen_invalid;
use crate::net::Net;
use crate::prog::Prog;
use crate::sync::Arc;
use crate::syscall::{TestRun, TestRunResult};
use crate::xdp::{
    MAX_FRAGS, PAGE_SIZE, XDP_FRAME_SIZE, XDP_PACKET_HEADROOM, XDP_TAILROOM, XdpBuff, XdpFrag,
    XdpFrags, XdpRxqInfo,
};
use crate::{Errno, Result};
use alloc::vec::Vec;

/// `sizeof(struct xdp_md)`.
pub const XDP_MD_SIZE: usize = 24;

fn get32(c: &[u8], i: usize) -> u32 {
    u32::from_ne_bytes(c[4 * i..4 * i + 4].try_into().expect("4 bytes"))
}

fn put32(c: &mut [u8], i: usize, v: u32) {
    c[4 * i..4 * i + 4].copy_from_slice(&v.to_ne_bytes());
}

/// `struct xdp_md` fields, as indices of its `__u32`s.
mod md {
    pub const DATA: usize = 0;
    pub const DATA_END: usize = 1;
    pub const DATA_META: usize = 2;
    pub const INGRESS_IFINDEX: usize = 3;
    pub const RX_QUEUE_INDEX: usize = 4;
    pub const EGRESS_IFINDEX: usize = 5;
}

/// The receive queue `xdp_md` names (`xdp_convert_md_to_buff`): the loopback's first queue by
/// default; a named device must exist (`ENODEV`) and have the queue (`EINVAL`).
fn rx_queue(c: &[u8; XDP_MD_SIZE], net: *const Net) -> Result<XdpRxqInfo> {
    if get32(c, md::EGRESS_IFINDEX) != 0 {
        return Err(Errno::EINVAL);
    }
    let (ifindex, queue) = (get32(c, md::INGRESS_IFINDEX), get32(c, md::RX_QUEUE_INDEX));
    if ifindex == 0 {
        if queue != 0 {
            return Err(Errno::EINVAL);
        }
        return Ok(XdpRxqInfo {
            ifindex: super::skb::LOOPBACK_IFINDEX,
            net,
            ..XdpRxqInfo::default()
        });
    }
    if ifindex != super::skb::LOOPBACK_IFINDEX {
        crate::tcx::dev_get(ifindex)?;
    }
    if queue != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(XdpRxqInfo {
        ifindex,
        net,
        ..XdpRxqInfo::default()
    })
}

/// `bpf_prog_test_run_xdp`.
pub(super) fn run(prog: &Prog, run: &mut TestRun<'_>) -> Result<TestRunResult> {
    if run.flags & F_TEST_XDP_LIVE_FRAMES != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if run.flags != 0 || run.batch_size != 0 {
        return Err(Errno::EINVAL);
    }
    let size_in = run.data.len();
    let mut c = ctx_init::<XDP_MD_SIZE>(run)?;
    let mut headroom = XDP_PACKET_HEADROOM as usize;
    let (mut meta, mut linear) = (0, size_in);
    if let Some(c) = &c {
        let (data, end) = (get32(c, md::DATA) as usize, get32(c, md::DATA_END) as usize);
        if get32(c, md::DATA_META) != 0 || end > size_in || data > end {
            return Err(Errno::EINVAL);
        }
        if metalen_invalid(data) || data > headroom - XDP_FRAME_SIZE as usize {
            return Err(Errno::EINVAL);
        }
        headroom -= data;
        (meta, linear) = (data, end);
    }
    let max_linear = PAGE_SIZE as usize - headroom - XDP_TAILROOM as usize;
    linear = linear.min(max_linear);
    if size_in - meta < ETH_HLEN {
        return Err(Errno::EINVAL);
    }
    // The devices are the caller's netns's (`current->nsproxy->net_ns`).
    let net = super::caller_net(run)?;
    let mut rxq = match &c {
        Some(c) => rx_queue(c, Arc::as_ptr(&net))?,
        None => XdpRxqInfo {
            ifindex: super::skb::LOOPBACK_IFINDEX,
            net: Arc::as_ptr(&net),
            ..XdpRxqInfo::default()
        },
    };
    rxq.netns = net.num();
    let nfrags = (size_in - linear).div_ceil(PAGE_SIZE as usize);
    if nfrags > MAX_FRAGS {
        return Err(Errno::ENOMEM);
    }
    let page = PAGE_SIZE as usize;
    let mut buf = Vec::new();
    buf.try_reserve_exact(page * (1 + nfrags))?;
    buf.resize(page * (1 + nfrags), 0);
    buf[headroom..headroom + linear].copy_from_slice(&run.data[..linear]);
    for (k, chunk) in run.data[linear..].chunks(page).enumerate() {
        let at = page * (1 + k);
        buf[at..at + chunk.len()].copy_from_slice(chunk);
    }
    let base = buf.as_mut_ptr();
    let mut frags = XdpFrags::EMPTY;
    for (k, chunk) in run.data[linear..].chunks(page).enumerate() {
        frags.frags[k] = XdpFrag {
            data: base.wrapping_add(page * (1 + k)),
            size: chunk.len() as u32,
            cap: PAGE_SIZE,
        };
        frags.size += chunk.len() as u32;
    }
    frags.nr_frags = nfrags as u32;
    let meta_start = base.wrapping_add(headroom);
    let mut xdp = XdpBuff {
        data: meta_start.wrapping_add(meta),
        data_end: meta_start.wrapping_add(linear),
        data_meta: meta_start,
        data_hard_start: base,
        rxq: &rxq,
        frame_sz: PAGE_SIZE,
        frags: &mut frags,
    };
    let (retval, duration) = repeat(prog, xdp.as_ctx(), 0, run.repeat)?;
    if let Some(c) = &mut c {
        put32(
            c,
            md::DATA,
            (xdp.data as usize - xdp.data_meta as usize) as u32,
        );
        put32(
            c,
            md::DATA_END,
            (xdp.data_end as usize - xdp.data_meta as usize) as u32,
        );
    }
    let frame_len = xdp.data_end as usize - xdp.data_meta as usize;
    // SAFETY: `data_meta .. data_end` lies in the page `buf` holds (the helpers keep it there);
    // each fragment's `data .. data + size` in its page.
    let (linear_out, frag_out) = unsafe {
        let l = core::slice::from_raw_parts(xdp.data_meta as *const u8, frame_len);
        let f: Vec<&[u8]> = frags.frags[..frags.nr_frags as usize]
            .iter()
            .map(|f| core::slice::from_raw_parts(f.data as *const u8, f.size as usize))
            .collect();
        (l, f)
    };
    let mut pieces = Vec::new();
    pieces.try_reserve_exact(1 + frag_out.len())?;
    pieces.push(linear_out);
    pieces.extend(frag_out);
    finish(run, &pieces, frags.size as usize, retval, duration)?;
    ctx_finish(run, c.as_ref().map(|c| &c[..]))
}
