//! A connection-tracking entry: `struct nf_conn` (`include/net/netfilter/nf_conntrack.h`),
//! its status bits (`enum ip_conntrack_status`, `include/uapi/linux/netfilter/nf_conntrack_common.h`)
//! and the timeout and status rules of `nf_conntrack_core.c` (`__nf_ct_set_timeout`,
//! `__nf_ct_change_timeout`, `nf_ct_change_status_common`).
//!
//! Programs hold pointers to entries and read them with plain loads, so the fields they may
//! touch sit where Linux 6.18 has them on x86-64 (`shared/research/decisions.md` #8): the
//! reference count at 0, `timeout` at 8, the zone at 12, `tuplehash[2]` at 16 (each a
//! 16-byte hash-chain node and a 40-byte tuple), `status` at 128, `master` at 160 and `mark` at
//! 168. Only `mark` is writable ([`crate::kfunc::NF_CONN`]). What kbpf adds lies past the 176
//! bytes programs may read.
//!
//! An entry is created by `alloc` with one reference (the creator's). Inserting it publishes
//! it in the table, which then holds a reference of its own until the entry is unlinked and a
//! grace period has passed. Lookups take references with get-unless-zero; whoever drops the
//! last one frees the entry (see [`super::table`]).

use super::tuple::{DIR_ORIGINAL, DIR_REPLY, Tuple, Zone};
use crate::sync::atomic::AtomicUsize;
use crate::sync::refcount::Refcount;
use crate::{Errno, Result};
// Fields programs load and store with plain instructions; not part of any loom-modelled
// protocol, so `core` atomics (with a fixed layout) rather than the facade's.
use core::sync::atomic::{AtomicU32 as CoreU32, AtomicU64 as CoreU64, Ordering as CoreOrdering};

/// `enum ip_conntrack_status` bits.
pub mod status {
    /// `IPS_EXPECTED`: an expected connection.
    pub const EXPECTED: u64 = 1 << 0;
    /// `IPS_SEEN_REPLY`: packets seen both ways.
    pub const SEEN_REPLY: u64 = 1 << 1;
    /// `IPS_ASSURED`: never early-dropped.
    pub const ASSURED: u64 = 1 << 2;
    /// `IPS_CONFIRMED`: in the table.
    pub const CONFIRMED: u64 = 1 << 3;
    /// `IPS_SRC_NAT`.
    pub const SRC_NAT: u64 = 1 << 4;
    /// `IPS_DST_NAT`.
    pub const DST_NAT: u64 = 1 << 5;
    /// `IPS_SEQ_ADJUST`.
    pub const SEQ_ADJUST: u64 = 1 << 6;
    /// `IPS_SRC_NAT_DONE`.
    pub const SRC_NAT_DONE: u64 = 1 << 7;
    /// `IPS_DST_NAT_DONE`.
    pub const DST_NAT_DONE: u64 = 1 << 8;
    /// `IPS_DYING`: being removed.
    pub const DYING: u64 = 1 << 9;
    /// `IPS_FIXED_TIMEOUT`: the timeout may not change.
    pub const FIXED_TIMEOUT: u64 = 1 << 10;
    /// `IPS_TEMPLATE`.
    pub const TEMPLATE: u64 = 1 << 11;
    /// `IPS_UNTRACKED`.
    pub const UNTRACKED: u64 = 1 << 12;
    /// `IPS_HELPER`.
    pub const HELPER: u64 = 1 << 13;
    /// `IPS_OFFLOAD`.
    pub const OFFLOAD: u64 = 1 << 14;
    /// `IPS_HW_OFFLOAD`.
    pub const HW_OFFLOAD: u64 = 1 << 15;
    /// `__IPS_MAX_BIT`: bits past these are ignored.
    pub const ALL: u64 = (1 << 16) - 1;
    /// `IPS_UNCHANGEABLE_MASK`: bits only conntrack itself changes.
    pub const UNCHANGEABLE: u64 = SRC_NAT_DONE
        | DST_NAT_DONE
        | SRC_NAT
        | DST_NAT
        | EXPECTED
        | CONFIRMED
        | DYING
        | SEQ_ADJUST
        | TEMPLATE
        | UNTRACKED
        | OFFLOAD
        | HW_OFFLOAD;

    /// Names as conntrack(8) prints them, lowest bit first.
    pub const NAMES: [&str; 16] = [
        "EXPECTED",
        "SEEN_REPLY",
        "ASSURED",
        "CONFIRMED",
        "SRC_NAT",
        "DST_NAT",
        "SEQ_ADJUST",
        "SRC_NAT_DONE",
        "DST_NAT_DONE",
        "DYING",
        "FIXED_TIMEOUT",
        "TEMPLATE",
        "UNTRACKED",
        "HELPER",
        "OFFLOAD",
        "HW_OFFLOAD",
    ];
}

/// `HZ`: kbpf's jiffies tick a thousand times a second.
pub const HZ: u64 = 1000;

/// `INT_MAX` jiffies: the longest timeout (`__nf_ct_set_timeout` clamps to it).
const MAX_TIMEOUT: u64 = i32::MAX as u64;

/// The jiffies counter (`jiffies_64`) from the host's coarse monotonic clock (0 before a host
/// is registered).
#[inline]
pub fn jiffies() -> u64 {
    crate::host::try_get().map_or(0, |h| h.ktime_coarse_ns()) / (1_000_000_000 / HZ)
}

/// `msecs_to_jiffies`.
#[inline]
pub fn msecs_to_jiffies(ms: u32) -> u64 {
    (ms as u64 * HZ).div_ceil(1000)
}

/// One direction's hash-chain node and tuple (`struct nf_conntrack_tuple_hash`).
#[repr(C)]
pub struct TupleHash {
    /// The next node in the bucket's chain, or the bucket's nulls marker
    /// (`hlist_nulls_node.next`).
    pub(super) next: AtomicUsize,
    /// This node's full hash (where Linux keeps `pprev`).
    pub(super) hash: u32,
    /// The entry's namespace and this direction's zone id, copied here so that comparing a
    /// key touches the node alone (the entry's own fields lie a cache line further).
    pub(super) net: u16,
    /// See `net`.
    pub(super) zone_id: u16,
    /// The tuple.
    pub tuple: Tuple,
}

/// `struct nf_conn`, the fields programs see at Linux 6.18 x86-64's offsets. Cache-line
/// aligned: a lookup touches the first two lines only (see [`super::table`]).
#[repr(C, align(64))]
pub struct Conn {
    /// `ct_general.use`.
    pub(super) refs: Refcount,
    _lock: u32,
    /// `timeout`: jiffies left before insertion, the (32-bit) jiffies it expires at after.
    pub(super) timeout: CoreU32,
    /// `zone`.
    pub(super) zone: Zone,
    /// `tuplehash[IP_CT_DIR_MAX]`.
    pub(super) tuplehash: [TupleHash; 2],
    /// `status` (`unsigned long`).
    pub(super) status: CoreU64,
    /// `ct_net`: kbpf's namespace id.
    pub(super) net: u64,
    _nat_bysource: [u64; 2],
    /// `master`: always NULL (kbpf has no expectations).
    master: u64,
    /// `mark`, which programs may write.
    pub(super) mark: CoreU32,
    _secmark: u32,
    // ---- kbpf's own, past what programs may read ----
    /// Link in the table's list of entries whose last reference went on the fast path.
    pub(super) dead_next: AtomicUsize,
    /// Read by loom models' readers and poisoned on free, so an unordered free shows up as a
    /// data race.
    #[cfg(loom)]
    pub(super) alive: loom::cell::UnsafeCell<u64>,
}

#[cfg(not(loom))]
mod layout {
    use super::Conn;
    use core::mem::offset_of;
    static_assertions::const_assert_eq!(offset_of!(Conn, refs), 0);
    static_assertions::const_assert_eq!(offset_of!(Conn, timeout), 8);
    static_assertions::const_assert_eq!(offset_of!(Conn, zone), 12);
    static_assertions::const_assert_eq!(offset_of!(Conn, tuplehash), 16);
    static_assertions::const_assert_eq!(core::mem::size_of::<super::TupleHash>(), 56);
    static_assertions::const_assert_eq!(offset_of!(Conn, status), 128);
    static_assertions::const_assert_eq!(offset_of!(Conn, net), 136);
    static_assertions::const_assert_eq!(offset_of!(Conn, master), 160);
    static_assertions::const_assert_eq!(offset_of!(Conn, mark), 168);
    static_assertions::const_assert_eq!(offset_of!(Conn, dead_next), 176);
}

/// Offsets of the program-visible fields, for the verifier's view of the struct and CO-RE.
pub mod offsets {
    /// `timeout` (u32).
    pub const TIMEOUT: u32 = 8;
    /// `tuplehash[0].tuple` (40 bytes; `tuplehash[1].tuple` is 56 further).
    pub const TUPLE_ORIGINAL: u32 = 32;
    /// `status` (unsigned long).
    pub const STATUS: u32 = 128;
    /// `master` (pointer).
    pub const MASTER: u32 = 160;
    /// `mark` (u32).
    pub const MARK: u32 = 168;
    /// Bytes programs may read.
    pub const READABLE: u32 = 176;
}

/// What a new entry starts from.
#[derive(Clone, Copy, Debug)]
pub struct ConnInit {
    /// Namespace.
    pub net: u32,
    /// Zone.
    pub zone: Zone,
    /// Original-direction tuple.
    pub orig: Tuple,
    /// Reply-direction tuple.
    pub reply: Tuple,
    /// Relative timeout in jiffies.
    pub timeout: u64,
}

impl Conn {
    /// A new, unconfirmed entry holding one reference (its creator's): `nf_conntrack_alloc`.
    pub(super) fn new(init: &ConnInit) -> Conn {
        let node = |t: &Tuple, dir| {
            let mut tuple = *t;
            tuple.dst.dir = dir;
            TupleHash {
                next: AtomicUsize::new(0),
                hash: 0,
                net: init.net as u16,
                zone_id: init.zone.id_for(dir),
                tuple,
            }
        };
        let c = Conn {
            refs: Refcount::new(1),
            _lock: 0,
            timeout: CoreU32::new(0),
            zone: init.zone,
            tuplehash: [node(&init.orig, DIR_ORIGINAL), node(&init.reply, DIR_REPLY)],
            status: CoreU64::new(0),
            net: init.net as u64,
            _nat_bysource: [0; 2],
            master: 0,
            mark: CoreU32::new(0),
            _secmark: 0,
            dead_next: AtomicUsize::new(0),
            #[cfg(loom)]
            alive: loom::cell::UnsafeCell::new(1),
        };
        c.set_timeout(init.timeout, 0);
        c
    }

    /// The tuple of direction `dir`.
    #[inline]
    pub fn tuple(&self, dir: u8) -> &Tuple {
        &self.tuplehash[dir as usize & 1].tuple
    }

    /// The entry's namespace.
    #[inline]
    pub fn net(&self) -> u32 {
        self.net as u32
    }

    /// The entry's zone.
    #[inline]
    pub fn zone(&self) -> Zone {
        self.zone
    }

    /// `status`.
    #[inline]
    pub fn status(&self) -> u64 {
        self.status.load(CoreOrdering::Relaxed)
    }

    /// `mark`.
    #[inline]
    pub fn mark(&self) -> u32 {
        self.mark.load(CoreOrdering::Relaxed)
    }

    /// Sets `mark`.
    pub fn set_mark(&self, mark: u32) {
        self.mark.store(mark, CoreOrdering::Relaxed);
    }

    /// The raw `timeout` field.
    #[inline]
    pub fn timeout_raw(&self) -> u32 {
        self.timeout.load(CoreOrdering::Relaxed)
    }

    /// `master` (always 0).
    pub fn master(&self) -> u64 {
        self.master
    }

    /// The current reference count (racy; for diagnostics and tests).
    pub fn refcount(&self) -> u32 {
        self.refs.read()
    }

    /// `nf_ct_is_confirmed`.
    #[inline]
    pub fn is_confirmed(&self) -> bool {
        self.status() & status::CONFIRMED != 0
    }

    /// `nf_ct_is_dying`.
    #[inline]
    pub fn is_dying(&self) -> bool {
        self.status() & status::DYING != 0
    }

    /// `nf_ct_is_expired` at jiffies `now`.
    #[inline]
    pub fn is_expired(&self, now: u64) -> bool {
        (self.timeout_raw().wrapping_sub(now as u32) as i32) <= 0
    }

    /// Jiffies until it expires at `now` (0 once expired); the relative timeout while
    /// unconfirmed.
    pub fn expires_in(&self, now: u64) -> u64 {
        if self.is_confirmed() {
            (self.timeout_raw().wrapping_sub(now as u32) as i32).max(0) as u64
        } else {
            self.timeout_raw() as u64
        }
    }

    /// `__nf_ct_set_timeout`: `jiffies_from_now` after jiffies `now` (clamped to `INT_MAX`),
    /// relative while unconfirmed.
    pub fn set_timeout(&self, jiffies_from_now: u64, now: u64) {
        let t = jiffies_from_now.min(MAX_TIMEOUT) as u32;
        let v = if self.is_confirmed() {
            (now as u32).wrapping_add(t)
        } else {
            t
        };
        self.timeout.store(v, CoreOrdering::Relaxed);
    }

    /// `__nf_ct_change_timeout`: `EPERM` with a fixed timeout; `ETIME` (after setting it)
    /// when the entry is dying.
    pub fn change_timeout(&self, jiffies_from_now: u64, now: u64) -> Result {
        if self.status() & status::FIXED_TIMEOUT != 0 {
            return Err(Errno::EPERM);
        }
        self.set_timeout(jiffies_from_now, now);
        if self.is_dying() {
            return Err(Errno::ETIME);
        }
        Ok(())
    }

    /// `nf_ct_change_status_common`: `EBUSY` for a change to `EXPECTED`, `CONFIRMED` or
    /// `DYING`, or for clearing `SEEN_REPLY` or `ASSURED`; otherwise sets the changeable
    /// bits of `new` (bits are only ever set here).
    pub fn change_status(&self, new: u32) -> Result {
        let new = new as u64;
        let d = self.status() ^ new;
        if d & (status::EXPECTED | status::CONFIRMED | status::DYING) != 0 {
            return Err(Errno::EBUSY);
        }
        if d & status::SEEN_REPLY != 0 && new & status::SEEN_REPLY == 0 {
            return Err(Errno::EBUSY);
        }
        if d & status::ASSURED != 0 && new & status::ASSURED == 0 {
            return Err(Errno::EBUSY);
        }
        self.set_status_bits(new & status::ALL & !status::UNCHANGEABLE);
        Ok(())
    }

    /// Sets status bits atomically (`set_bit`).
    #[inline]
    pub(super) fn set_status_bits(&self, bits: u64) {
        self.status.fetch_or(bits, CoreOrdering::Relaxed);
    }

    /// Replaces the reply tuple of an unconfirmed entry (`nf_conntrack_alter_reply`).
    pub(super) fn set_reply(&mut self, mut reply: Tuple) {
        reply.dst.dir = DIR_REPLY;
        self.tuplehash[1].tuple = reply;
    }

    /// The owning entry of a chain node: `nf_ct_tuplehash_to_ctrack`.
    ///
    /// # Safety
    /// `node` points to `tuplehash[d]` of a live entry, `d` being its tuple's direction.
    #[inline]
    pub(super) unsafe fn of_node(node: *const TupleHash) -> *const Conn {
        // SAFETY: caller contract: the node lives in an entry's array at index `dir`, so
        // stepping back `dir` nodes and the array's offset stays inside that entry.
        unsafe {
            let dir = (*node).tuple.dst.dir as usize & 1;
            (node.sub(dir) as *const u8).sub(core::mem::offset_of!(Conn, tuplehash)) as *const Conn
        }
    }

    /// Marks the entry alive for a loom model reader (a no-op outside loom).
    #[inline]
    pub fn touch(&self) {
        #[cfg(loom)]
        // SAFETY: loom checks this read against the poisoning write in `free`.
        self.alive
            .with(|v| assert_eq!(unsafe { *v }, 1, "use after free"));
    }

    /// Writes the loom cell as the entry is published, so that a reader seeing it without the
    /// publication's ordering is a data race (loom models only).
    pub(super) fn publish(&self) {
        #[cfg(loom)]
        // SAFETY: loom checks this write against every reader's `touch`.
        self.alive.with_mut(|v| unsafe { *v = 1 });
    }

    /// Poisons the entry before its memory goes (loom models only).
    pub(super) fn poison(&self) {
        #[cfg(loom)]
        // SAFETY: loom checks this write against every reader's `touch`.
        self.alive.with_mut(|v| unsafe { *v = 0 });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::netfilter::tuple::IPPROTO_TCP;

    fn conn() -> Conn {
        let orig = Tuple::new(&[1, 1, 1, 1], &[2, 2, 2, 2], 1, 2, IPPROTO_TCP).unwrap();
        Conn::new(&ConnInit {
            net: 0,
            zone: Zone::DEFAULT,
            orig,
            reply: orig.invert().unwrap(),
            timeout: 10 * HZ,
        })
    }

    #[test]
    fn nodes_lead_back_to_their_entry() {
        let c = conn();
        for d in 0..2 {
            // SAFETY: the node is `tuplehash[d]` of `c`.
            assert!(core::ptr::eq(unsafe { Conn::of_node(&c.tuplehash[d]) }, &c));
        }
        assert_eq!(c.tuple(1).dst.dir, 1);
    }

    #[test]
    fn status_rules() {
        let c = conn();
        assert_eq!(c.change_status(status::CONFIRMED as u32), Err(Errno::EBUSY));
        assert_eq!(c.change_status(status::SEEN_REPLY as u32), Ok(()));
        assert_eq!(
            c.change_status(0),
            Err(Errno::EBUSY),
            "SEEN_REPLY cannot be cleared"
        );
        assert_eq!(
            c.change_status((status::SEEN_REPLY | status::SRC_NAT) as u32),
            Ok(())
        );
        assert_eq!(c.status(), status::SEEN_REPLY, "unchangeable bits ignored");
        c.set_status_bits(status::FIXED_TIMEOUT);
        assert_eq!(c.change_timeout(5, 0), Err(Errno::EPERM));
    }

    #[test]
    fn timeouts_are_relative_until_confirmed() {
        let c = conn();
        assert_eq!(c.timeout_raw() as u64, 10 * HZ);
        c.set_timeout(u64::MAX, 0);
        assert_eq!(c.timeout_raw(), i32::MAX as u32);
        assert_eq!(msecs_to_jiffies(10_000), 10 * HZ);
        assert!(c.is_expired(c.timeout_raw() as u64));
        assert!(!c.is_expired(c.timeout_raw() as u64 - 1));
    }
}
