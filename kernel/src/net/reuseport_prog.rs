//! `BPF_PROG_TYPE_SK_REUSEPORT`: a program a reuseport group runs to choose the member that
//! gets a packet (`bpf_run_sk_reuseport`, `sk_reuseport_is_valid_access`,
//! `sk_reuseport_convert_ctx_access`, `sk_select_reuseport` in `net/core/filter.c`;
//! `reuseport_attach_prog` in `net/core/sock_reuseport.c`).
//!
//! The program returns `SK_PASS` with a member chosen by `bpf_sk_select_reuseport` (the
//! lookup's result), `SK_PASS` without one (the group falls back to the flow hash), or
//! anything else (the packet is refused, `-ECONNREFUSED`).
//!
//! Every field of `struct sk_reuseport_md` reads as in Linux 6.18, never written: `data` and
//! `data_end` (8 bytes, packet pointers: the program may read the packet), `len` and
//! `bind_inany` and `ip_protocol` (narrow reads), `eth_protocol` (2 or 4 bytes), `hash` (4
//! bytes), `sk` (8 bytes, the socket being looked up) and `migrating_sk` (8 bytes, a socket
//! common or NULL; always NULL in kbpf, which never migrates listeners). kbpf's lookups carry
//! no packet: the program sees the transport header the lookup stands for (a SYN's 20 bytes,
//! or a UDP header of an empty datagram), built from the lookup's tuple. `bpf_sk_select_reuseport`
//! takes a socket map or socket hash (kbpf has no `REUSEPORT_SOCKARRAY`); `bpf_skb_load_bytes`
//! copies from the packet (`sk_reuseport_load_bytes`).

use super::addr::Proto;
use super::lookup::Tuple;
use super::reuseport::ReuseGroup;
use super::sk_lookup::SK_PASS;
use super::sock::{Sock, SockRef};
use crate::cpu::CpuGuard;
use crate::insn::{Insn, Size, ldx_mem};
use crate::map::Map;
use crate::net::addr::Family;
use crate::prog::{Prog, RunBatch};
use crate::sync::atomic::Ordering;
use crate::uapi::{MapType, ProgType};
use crate::{Errno, Result};

/// `struct sk_reuseport_kern`: what the program's loads are rewritten to.
#[repr(C)]
#[derive(Debug)]
pub struct SkReuseportKern {
    /// The packet's first byte (`skb->data`, its transport header).
    pub data: *const u8,
    /// One past the packet's last byte (`data_end`).
    pub data_end: *const u8,
    /// The socket being looked up (`sk`).
    pub sk: *const Sock,
    /// The member chosen by `bpf_sk_select_reuseport`, or null.
    pub selected_sk: *const Sock,
    /// The listener whose requests migrate, or null (always null in kbpf).
    pub migrating_sk: *const Sock,
    /// The packet's length (`skb->len`).
    pub len: u32,
    /// The flow hash.
    pub hash: u32,
    /// The group's id.
    pub reuseport_id: u32,
    /// `eth_protocol`: `ETH_P_IP` or `ETH_P_IPV6`, network order, in the low 2 bytes (the
    /// skb's 16-bit `protocol`; the upper bytes are 0).
    pub eth_protocol: u32,
    /// `ip_protocol`: the socket's 16-bit `sk_protocol`, in the low 2 bytes (upper 0).
    pub ip_protocol: u32,
    /// `bind_inany`: the group is bound to the wildcard (a `bool`).
    pub bind_inany: u8,
}

/// Offsets in `struct sk_reuseport_md` (uapi).
pub mod md {
    #![allow(missing_docs)]
    pub const DATA: i64 = 0;
    pub const DATA_END: i64 = 8;
    pub const LEN: i64 = 16;
    pub const ETH_PROTOCOL: i64 = 20;
    pub const IP_PROTOCOL: i64 = 24;
    pub const BIND_INANY: i64 = 28;
    pub const HASH: i64 = 32;
    pub const SK: i64 = 40;
    pub const MIGRATING_SK: i64 = 48;
    /// `sizeof(struct sk_reuseport_md)`.
    pub const SIZE: i64 = 56;
}

/// The 4-byte fields that allow narrow reads, by their start.
const NARROW: [i64; 4] = [md::LEN, md::ETH_PROTOCOL, md::IP_PROTOCOL, md::BIND_INANY];

/// `sk_reuseport_is_valid_access`: reads only, aligned to their size; the pointers and `hash`
/// at their start and full size, the narrow fields (`bpf_ctx_narrow_access_ok`) at any
/// power-of-two size up to 4 (`eth_protocol` at least the skb's 2-byte `protocol`).
pub fn is_valid_access(off: i64, size: usize, write: bool) -> bool {
    let size = size as i64;
    if !(0..md::SIZE).contains(&off) || size == 0 || off % size != 0 || write {
        return false;
    }
    match off {
        md::DATA | md::DATA_END | md::SK | md::MIGRATING_SK => size == 8,
        md::HASH => size == 4,
        _ => match NARROW.iter().find(|&&f| (f..f + 4).contains(&off)) {
            Some(&md::ETH_PROTOCOL) if size < 2 => false,
            Some(_) => size <= 4 && size & (size - 1) == 0,
            None => false,
        },
    }
}

/// The pointer a read at `off` gives (`info->reg_type`): `data` a packet pointer, `data_end`
/// the packet's end, `sk` a socket, `migrating_sk` a socket common or NULL.
pub fn reg_type(off: i64) -> Option<crate::verifier::state::RegType> {
    use crate::verifier::state::RegType;
    Some(match off {
        md::DATA => RegType::PtrToPacket,
        md::DATA_END => RegType::PtrToPacketEnd,
        md::SK => RegType::PtrToSocket,
        md::MIGRATING_SK => RegType::PtrToSockCommonOrNull,
        _ => return None,
    })
}

/// `sk_reuseport_convert_ctx_access` with the verifier's narrowing: one load. A narrow read
/// loads the whole kernel field and keeps the bytes read when the field is wider than them
/// (`len`: the same bytes; `ip_protocol` one byte of the 16-bit protocol); a read as wide as
/// the kernel field or wider gives the field whole, wherever in the uapi field it is
/// (`eth_protocol` and `ip_protocol` at 2 or 4 bytes, `bind_inany` at any size).
pub fn convert_load(dst: u8, src: u8, off: i64, size: usize) -> Option<Insn> {
    use core::mem::offset_of;
    let at = |sz: Size, koff: usize| Some(ldx_mem(sz, dst, src, koff as i16));
    let within = |start: i64| off - start;
    let narrow = match size {
        1 => Size::B,
        2 => Size::H,
        _ => Size::W,
    };
    match off {
        md::DATA => at(Size::DW, offset_of!(SkReuseportKern, data)),
        md::DATA_END => at(Size::DW, offset_of!(SkReuseportKern, data_end)),
        md::SK => at(Size::DW, offset_of!(SkReuseportKern, sk)),
        md::MIGRATING_SK => at(Size::DW, offset_of!(SkReuseportKern, migrating_sk)),
        md::HASH => at(Size::W, offset_of!(SkReuseportKern, hash)),
        o if (md::LEN..md::LEN + 4).contains(&o) => at(
            narrow,
            offset_of!(SkReuseportKern, len) + within(md::LEN) as usize,
        ),
        o if (md::ETH_PROTOCOL..md::ETH_PROTOCOL + 4).contains(&o) => {
            at(Size::H, offset_of!(SkReuseportKern, eth_protocol))
        }
        o if (md::IP_PROTOCOL..md::IP_PROTOCOL + 4).contains(&o) => {
            let koff = offset_of!(SkReuseportKern, ip_protocol);
            if size == 1 {
                at(Size::B, koff + within(md::IP_PROTOCOL) as usize)
            } else {
                at(Size::H, koff)
            }
        }
        o if (md::BIND_INANY..md::BIND_INANY + 4).contains(&o) => {
            at(Size::B, offset_of!(SkReuseportKern, bind_inany))
        }
        _ => None,
    }
}

/// `ETH_P_IP` / `ETH_P_IPV6` in network order, as `skb->protocol` holds them.
fn eth_protocol(family: Family) -> u32 {
    let p: u16 = match family {
        Family::Inet => 0x0800,
        Family::Inet6 => 0x86dd,
    };
    u16::from_ne_bytes(p.to_be_bytes()) as u32
}

/// The longest transport header a lookup stands for (TCP's, without options).
pub const HDR_MAX: usize = 20;

/// The packet a lookup stands for, written to `buf`: its length. TCP: a SYN's header (the
/// ports, sequence and acknowledgment 0, data offset 5, `SYN`, window 0, checksum 0). UDP: the
/// header of an empty datagram (the ports, length 8, checksum 0).
pub fn packet(t: &Tuple, buf: &mut [u8; HDR_MAX]) -> usize {
    *buf = [0; HDR_MAX];
    buf[0..2].copy_from_slice(&t.remote.port.to_be_bytes());
    buf[2..4].copy_from_slice(&t.local.port.to_be_bytes());
    match t.proto {
        Proto::Tcp => {
            buf[12] = 5 << 4;
            buf[13] = 0x02;
            20
        }
        Proto::Udp => {
            buf[4..6].copy_from_slice(&8u16.to_be_bytes());
            8
        }
    }
}

/// Fast path (`reuseport_select_sock` with a program): `None` when the group has no program
/// or it passed without choosing (the flow hash decides); `Some(Some(sk))` for the chosen
/// member; `Some(None)` when it refused the packet.
#[inline]
pub(crate) fn run(
    group: &ReuseGroup,
    guard: &mut CpuGuard,
    sk: &Sock,
    t: &Tuple,
    hash: u32,
) -> Option<Option<*const Sock>> {
    // Acquire: pairs with the release store that attached the program.
    let p = group.prog.load(Ordering::Acquire);
    // SAFETY: an attached program is put only after it was detached and a grace period
    // passed; `guard` holds a read-side section for this whole call.
    let prog = unsafe { p.as_ref() }?;
    let mut pkt = [0u8; HDR_MAX];
    let len = packet(t, &mut pkt);
    let data = pkt.as_ptr();
    let mut kern = SkReuseportKern {
        data,
        data_end: data.wrapping_add(len),
        sk: sk as *const Sock,
        selected_sk: core::ptr::null(),
        migrating_sk: core::ptr::null(),
        len: len as u32,
        hash,
        reuseport_id: group.id(),
        eth_protocol: eth_protocol(t.family),
        ip_protocol: sk.proto() as u32,
        bind_inany: group.bind_inany() as u8,
    };
    let mut batch = RunBatch::begin(guard).ok()?;
    let r0 = batch.run(prog, &mut kern as *mut SkReuseportKern as u64);
    match r0.map(|r| r as u32) {
        Ok(SK_PASS) if kern.selected_sk.is_null() => None,
        Ok(SK_PASS) => Some(Some(kern.selected_sk)),
        _ => Some(None),
    }
}

/// `bpf_skb_load_bytes(ctx, offset, to, len)` for `SK_REUSEPORT` (`sk_reuseport_load_bytes`):
/// bytes of the lookup's packet, `-EFAULT` (and `to` zeroed) past its end.
pub(crate) unsafe extern "C" fn load_bytes(
    ctx: u64,
    offset: u64,
    to: u64,
    len: u64,
    _: u64,
) -> u64 {
    // SAFETY: the verifier proved R1 the program's context (an `SkReuseportKern` this run
    // owns, whose packet lives for the run) and `to` writable for `len` bytes.
    unsafe {
        let kern = &*(ctx as *const SkReuseportKern);
        crate::helpers::skb::load_bytes(kern.data as *mut u8, kern.len, offset, to, len)
    }
}

/// `bpf_sk_select_reuseport(ctx, map, key, flags)`: picks the member of the group stored in
/// the socket map under `key` (`ENOENT` if none; `EINVAL` if it is in no group; for a member
/// of another group `EPROTOTYPE`, `EAFNOSUPPORT` or `EBADFD` by what differs).
pub(crate) unsafe extern "C" fn sk_select_reuseport(
    ctx: u64,
    map: u64,
    key: u64,
    _flags: u64,
    _: u64,
) -> u64 {
    // SAFETY: the verifier proved R1 is the program's context (an `SkReuseportKern` this run
    // owns), R2 one of its maps and R3 a key of the map's size; the run is inside a read-side
    // section.
    let (kern, map) = unsafe { (&mut *(ctx as *mut SkReuseportKern), &*(map as *const Map)) };
    if !matches!(map.map_type(), MapType::Sockmap | MapType::Sockhash) {
        return Errno::EINVAL.to_neg() as u64;
    }
    // SAFETY: as above; the lookup returns a socket alive for the section, with a reference
    // taken when it is reference-counted.
    let p = unsafe { map.lookup_elem_raw(key as *const u8) } as *const Sock;
    // SAFETY: as above.
    let Some(sel) = (unsafe { p.as_ref() }) else {
        return Errno::ENOENT.to_neg() as u64;
    };
    let put = |e: Errno| {
        if sel.is_refcounted() {
            // SAFETY: the reference the lookup took for us.
            drop(unsafe { SockRef::from_raw(p) });
        }
        e.to_neg() as u64
    };
    let Some(group) = sel.reuse_group() else {
        return put(Errno::EINVAL);
    };
    if group.id() != kern.reuseport_id {
        // SAFETY: `sk` is the socket being looked up, alive for the run.
        let sk = unsafe { &*kern.sk };
        return put(if sk.proto() != sel.proto() {
            Errno::EPROTOTYPE
        } else if sk.family() != sel.family() {
            Errno::EAFNOSUPPORT
        } else {
            Errno::EBADFD
        });
    }
    kern.selected_sk = p;
    0
}

impl super::socket::Socket {
    /// Runs `f` on the socket's group under the netns lock (membership cannot change);
    /// `missing` when the socket is in none.
    fn with_group(&self, missing: Errno, f: impl FnOnce(&ReuseGroup) -> Result) -> Result {
        let net = self.sock().net().clone();
        let _ctl = net.ctl.lock();
        let group = self.sock().inner.lock().group.clone().ok_or(missing)?;
        f(&group)
    }

    /// `SO_ATTACH_REUSEPORT_EBPF`: the socket's group runs `prog` to choose members (`EINVAL`
    /// for another program type, or a socket in no group yet — kbpf does not start a group
    /// before the socket is hashed).
    pub fn attach_reuseport_prog(&self, prog: crate::sync::Arc<Prog>) -> Result {
        if prog.prog_type() != ProgType::SkReuseport {
            return Err(Errno::EINVAL);
        }
        self.with_group(Errno::EINVAL, |group| {
            let mut owner = group.prog_owner.lock();
            // INVARIANT: `prog` is null or the program `prog_owner` holds; a replaced program
            // is put only after a grace period.
            let p = crate::sync::Arc::as_ptr(&prog) as *mut Prog;
            group.prog.store(p, Ordering::Release);
            if let Some(old) = owner.replace(prog) {
                crate::cpu::call_rcu(alloc::boxed::Box::new(move || drop(old)));
            }
            Ok(())
        })
    }

    /// `SO_DETACH_REUSEPORT_BPF`: `ENOENT` when the group has no program (or there is no
    /// group).
    pub fn detach_reuseport_prog(&self) -> Result {
        self.with_group(Errno::ENOENT, |group| {
            let old = group.prog_owner.lock().take().ok_or(Errno::ENOENT)?;
            group.prog.store(core::ptr::null_mut(), Ordering::Release);
            crate::cpu::call_rcu(alloc::boxed::Box::new(move || drop(old)));
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_of_sk_reuseport_md() {
        let ok = |off, size| is_valid_access(off, size, false);
        for f in [md::DATA, md::DATA_END, md::SK, md::MIGRATING_SK] {
            assert!(ok(f, 8));
            assert!(!ok(f, 4) && !ok(f + 4, 4));
            assert!(!is_valid_access(f, 8, true));
        }
        assert!(ok(md::HASH, 4) && !ok(md::HASH, 2) && !ok(md::HASH, 8));
        assert!(!ok(36, 4), "the hole before sk");
        assert!(ok(md::ETH_PROTOCOL, 2) && ok(md::ETH_PROTOCOL + 2, 2));
        assert!(!ok(md::ETH_PROTOCOL, 1) && !ok(md::ETH_PROTOCOL, 8));
        for f in [md::LEN, md::IP_PROTOCOL, md::BIND_INANY] {
            assert!((0..4).all(|b| ok(f + b, 1)));
            assert!(ok(f + 2, 2) && ok(f, 4) && !ok(f + 1, 2));
        }
        assert!(!ok(md::SIZE, 1) && !ok(-1, 1));
        assert_eq!(eth_protocol(Family::Inet).to_ne_bytes()[..2], [0x08, 0x00]);
    }

    #[test]
    fn narrow_reads_of_16_bit_and_bool_fields_give_the_whole_field() {
        use core::mem::offset_of;
        let eth = offset_of!(SkReuseportKern, eth_protocol) as i16;
        for (off, size) in [(20, 2), (22, 2), (20, 4)] {
            let i = convert_load(0, 1, off, size).unwrap();
            assert_eq!((i.off, i.code), (eth, ldx_mem(Size::H, 0, 1, 0).code));
        }
        let ip = offset_of!(SkReuseportKern, ip_protocol) as i16;
        assert_eq!(convert_load(0, 1, 26, 2).unwrap().off, ip);
        assert_eq!(convert_load(0, 1, 27, 1).unwrap().off, ip + 3);
        let any = offset_of!(SkReuseportKern, bind_inany) as i16;
        assert!((28..32).all(|o| convert_load(0, 1, o, 1).unwrap().off == any));
        let len = offset_of!(SkReuseportKern, len) as i16;
        assert_eq!(convert_load(0, 1, 18, 2).unwrap().off, len + 2);
    }
}
