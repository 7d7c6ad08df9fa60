//! `BPF_PROG_TYPE_SK_REUSEPORT`: a program a reuseport group runs to choose the member that
//! gets a packet (`bpf_run_sk_reuseport`, `sk_reuseport_is_valid_access`,
//! `sk_reuseport_convert_ctx_access`, `sk_select_reuseport` in `net/core/filter.c`;
//! `reuseport_attach_prog` in `net/core/sock_reuseport.c`).
//!
//! The program returns `SK_PASS` with a member chosen by `bpf_sk_select_reuseport` (the
//! lookup's result), `SK_PASS` without one (the group falls back to the flow hash), or
//! anything else (the packet is refused, `-ECONNREFUSED`).
//!
//! kbpf's lookups carry no packet, so of `struct sk_reuseport_md` a program may read
//! `eth_protocol`, `ip_protocol`, `bind_inany` (narrow reads allowed), `hash` (4 bytes) and
//! `sk` (the socket being looked up, 8 bytes); `data`, `data_end`, `len` and `migrating_sk`
//! are refused at load (`docs/kernel-compat.md`). `bpf_sk_select_reuseport` takes a socket
//! map or socket hash (kbpf has no `REUSEPORT_SOCKARRAY`).

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
    /// The socket being looked up (`sk`).
    pub sk: *const Sock,
    /// The member chosen by `bpf_sk_select_reuseport`, or null.
    pub selected_sk: *const Sock,
    /// The flow hash.
    pub hash: u32,
    /// The group's id.
    pub reuseport_id: u32,
    /// `eth_protocol`: `ETH_P_IP` or `ETH_P_IPV6`, network order, zero-extended.
    pub eth_protocol: u32,
    /// `ip_protocol`.
    pub ip_protocol: u32,
    /// `bind_inany`: the group is bound to the wildcard.
    pub bind_inany: u32,
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

/// The kernel field an allowed read lands in: (uapi field start, kernel offset).
fn field(off: i64) -> Option<(i64, usize)> {
    use core::mem::offset_of;
    let within = |start: i64, len: i64| (start..start + len).contains(&off);
    Some(match off {
        _ if within(md::ETH_PROTOCOL, 4) => {
            (md::ETH_PROTOCOL, offset_of!(SkReuseportKern, eth_protocol))
        }
        _ if within(md::IP_PROTOCOL, 4) => {
            (md::IP_PROTOCOL, offset_of!(SkReuseportKern, ip_protocol))
        }
        _ if within(md::BIND_INANY, 4) => (md::BIND_INANY, offset_of!(SkReuseportKern, bind_inany)),
        _ if within(md::HASH, 4) => (md::HASH, offset_of!(SkReuseportKern, hash)),
        _ if within(md::SK, 8) => (md::SK, offset_of!(SkReuseportKern, sk)),
        _ => return None,
    })
}

/// `sk_reuseport_is_valid_access`, for the fields kbpf offers (see the module docs).
pub fn is_valid_access(off: i64, size: usize, write: bool) -> bool {
    let size = size as i64;
    if !(0..md::SIZE).contains(&off) || size == 0 || off % size != 0 || write {
        return false;
    }
    match field(off).map(|(start, _)| start) {
        Some(md::HASH) => size == 4,
        Some(md::SK) => size == 8,
        // `eth_protocol` is at least the skb's 2-byte `protocol`.
        Some(md::ETH_PROTOCOL) if size < 2 => false,
        Some(_) => size <= 4 && size & (size - 1) == 0,
        None => false,
    }
}

/// Whether the read at `off` gives the looked-up socket (`PTR_TO_SOCKET`).
pub fn is_sk(off: i64) -> bool {
    off == md::SK
}

/// `sk_reuseport_convert_ctx_access`: one load of the same bytes of the kernel field.
pub fn convert_load(dst: u8, src: u8, off: i64, size: usize) -> Option<Insn> {
    let (start, koff) = field(off)?;
    let sz = match size {
        1 => Size::B,
        2 => Size::H,
        4 => Size::W,
        _ => Size::DW,
    };
    Some(ldx_mem(sz, dst, src, (koff as i64 + off - start) as i16))
}

/// `ETH_P_IP` / `ETH_P_IPV6` in network order, as `skb->protocol` holds them.
fn eth_protocol(family: Family) -> u32 {
    let p: u16 = match family {
        Family::Inet => 0x0800,
        Family::Inet6 => 0x86dd,
    };
    u16::from_ne_bytes(p.to_be_bytes()) as u32
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
    let mut kern = SkReuseportKern {
        sk: sk as *const Sock,
        selected_sk: core::ptr::null(),
        hash,
        reuseport_id: group.id(),
        eth_protocol: eth_protocol(t.family),
        ip_protocol: t.proto as u32,
        bind_inany: group.bind_inany() as u32,
    };
    let mut batch = RunBatch::begin(guard).ok()?;
    let r0 = batch.run(prog, &mut kern as *mut SkReuseportKern as u64);
    match r0.map(|r| r as u32) {
        Ok(SK_PASS) if kern.selected_sk.is_null() => None,
        Ok(SK_PASS) => Some(Some(kern.selected_sk)),
        _ => Some(None),
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
    fn the_fields_kbpf_offers() {
        assert!(is_valid_access(md::HASH, 4, false));
        assert!(!is_valid_access(md::HASH, 2, false));
        assert!(is_valid_access(md::SK, 8, false));
        assert!(is_valid_access(md::ETH_PROTOCOL, 2, false));
        assert!(!is_valid_access(md::ETH_PROTOCOL, 1, false));
        assert!(is_valid_access(md::IP_PROTOCOL + 1, 1, false));
        assert!(!is_valid_access(md::DATA, 8, false));
        assert!(!is_valid_access(md::LEN, 4, false));
        assert!(!is_valid_access(md::MIGRATING_SK, 8, false));
        assert!(!is_valid_access(md::HASH, 4, true));
        assert_eq!(eth_protocol(Family::Inet).to_ne_bytes()[..2], [0x08, 0x00]);
    }
}
