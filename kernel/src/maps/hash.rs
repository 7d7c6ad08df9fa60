//! `BPF_MAP_TYPE_HASH` (Linux `kernel/bpf/hashtab.c`, preallocated mode).
//!
//! All elements are allocated when the map is created: `max_entries` on per-CPU free lists
//! ([`PcpuFreelist`], the kernel's `pcpu_freelist`) and one spare per CPU (`extra_elems`).
//! Buckets are singly linked lists read without locks; writers take the bucket's spin lock and
//! nothing else: a new key pops an element from the writer's CPU's free list (stealing from the
//! other CPUs' when it is empty; all empty means the map is full, `E2BIG`), a replaced key's
//! new element is the CPU's spare and the old one becomes the spare, and a deleted element goes
//! back on the CPU's free list. No map-wide lock or counter is touched.
//!
//! As in Linux's preallocated hash maps, a deleted element is reused at once, not after a grace
//! period: a concurrent reader may see its bytes change. Memory stays valid (the pool lives as
//! long as the map). Each list ends in a *nulls* marker naming its bucket (`hlist_nulls`): a
//! reader whose element moved to another bucket mid-walk ends on the wrong marker and restarts,
//! so it never misses a key that stayed put.
//!
//! Keys of 4 and 8 bytes (the common `__u32`/`__u64` keys) are hashed and compared as one
//! integer; other sizes go through the general loop, which computes the same hash.

use super::storage::{Storage, round8};
use crate::map::MapAttr;
use crate::sync::SpinLock;
use crate::sync::freelist::PcpuFreelist;
use crate::sync::percpu::PerCpu;
// Element headers live in raw pool memory and are reached by casting addresses, which loom's
// model atomics cannot be; the hash map is not part of a loom model, so it uses `core` atomics.
use crate::uapi::UpdateFlags;
use crate::{Errno, Result, host};
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Header at the start of every element; key then value follow, each rounded to 8 bytes.
#[repr(C)]
struct ElemHdr {
    /// The next element's address, or a nulls marker `(bucket << 1) | 1`.
    next: AtomicUsize,
    hash: AtomicU32,
    _pad: u32,
}

const HDR: usize = core::mem::size_of::<ElemHdr>();
static_assertions::const_assert_eq!(HDR, 16);

struct Bucket {
    head: AtomicUsize,
    lock: SpinLock<()>,
}

/// A preallocated hash map.
pub(crate) struct HashMap {
    pool: Storage,
    /// The elements not in a bucket and not a CPU's spare.
    free: PcpuFreelist,
    /// Per CPU, the pool index of its spare element (`extra_elems`), used only by the thread
    /// holding that CPU.
    extra: PerCpu<u32>,
    buckets: alloc::boxed::Box<[Bucket]>,
    mask: usize,
    key_size: usize,
    value_size: usize,
    seed: u64,
}

#[inline]
const fn nulls(bucket: usize) -> usize {
    (bucket << 1) | 1
}

#[inline]
fn is_nulls(v: usize) -> bool {
    v & 1 == 1
}

const K: u64 = 0x517c_c1b7_2722_0a95;

#[inline(always)]
fn mix(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(K)
}

#[inline(always)]
fn fold(h: u64) -> u32 {
    (h ^ (h >> 29) ^ (h >> 47)) as u32
}

/// An FxHash-style mix over the key's 8-byte words (the last one zero-padded); seeded per map.
/// Out of line for sizes other than 4 and 8 (see [`hash_key`]).
///
/// # Safety
/// `key` points to `len` readable bytes.
#[inline(never)]
unsafe fn hash_general(seed: u64, key: *const u8, len: usize) -> u32 {
    // SAFETY: caller contract.
    let key = unsafe { core::slice::from_raw_parts(key, len) };
    let mut h = seed;
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        h = mix(h, u64::from_le_bytes(c.try_into().expect("8 bytes")));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = mix(h, u64::from_le_bytes(b));
    }
    fold(h)
}

/// The key's hash: [`hash_general`]'s value, computed in one step for a 4- or 8-byte key
/// (`N`; 0 for any other size, which takes the general loop).
///
/// # Safety
/// `key` points to `len` readable bytes, and `N` is 0 or `len`.
#[inline(always)]
unsafe fn hash_key<const N: usize>(seed: u64, key: *const u8, len: usize) -> u32 {
    // SAFETY: every arm reads inside the `len` bytes at `key` (caller contract).
    unsafe {
        match N {
            4 => fold(mix(seed, (key as *const u32).read_unaligned() as u64)),
            8 => fold(mix(seed, (key as *const u64).read_unaligned())),
            _ => hash_general(seed, key, len),
        }
    }
}

/// Whether the `len` bytes at `a` and `b` are equal (`N` as for [`hash_key`]).
///
/// # Safety
/// Both point to `len` readable bytes, and `N` is 0 or `len`.
#[inline(always)]
unsafe fn key_eq<const N: usize>(a: *const u8, b: *const u8, len: usize) -> bool {
    // SAFETY: every arm reads inside the `len` bytes of each (caller contract).
    unsafe {
        match N {
            4 => (a as *const u32).read_unaligned() == (b as *const u32).read_unaligned(),
            8 => (a as *const u64).read_unaligned() == (b as *const u64).read_unaligned(),
            _ => core::slice::from_raw_parts(a, len) == core::slice::from_raw_parts(b, len),
        }
    }
}

/// Runs `f` with the CPU this thread holds (entering one if it holds none, as the syscall path
/// does).
fn on_cpu<R>(f: impl FnOnce(usize) -> R) -> R {
    let h = host::get();
    let cpu = h.cpu_enter();
    let r = f(cpu);
    h.cpu_exit(cpu);
    r
}

impl HashMap {
    pub(crate) fn new(attr: &MapAttr, nr_cpus: usize) -> Result<HashMap> {
        if attr.value_size == 0 || attr.key_size > 512 {
            return Err(Errno::EINVAL);
        }
        let key_size = attr.key_size as usize;
        let value_size = attr.value_size as usize;
        let elem = HDR + round8(key_size) + round8(value_size);
        let nr_cpus = nr_cpus.max(1);
        let max = attr.max_entries as usize;
        let total = max.checked_add(nr_cpus).ok_or(Errno::E2BIG)?;
        if total >= u32::MAX as usize {
            return Err(Errno::E2BIG);
        }
        let pool = Storage::new(elem, total)?;
        let nbuckets = max.checked_next_power_of_two().ok_or(Errno::E2BIG)?;
        let mut buckets = alloc::vec::Vec::new();
        buckets.try_reserve_exact(nbuckets)?;
        buckets.extend((0..nbuckets).map(|b| Bucket {
            head: AtomicUsize::new(nulls(b)),
            lock: SpinLock::new(()),
        }));
        // Elements 0..max start on the free lists, max..total are the CPUs' spares.
        let free = PcpuFreelist::new(nr_cpus, max, total)?;
        let extra = PerCpu::new(nr_cpus, |cpu| (max + cpu) as u32);
        let seed = (host::get().random_u32() as u64) << 32 | host::get().random_u32() as u64;
        Ok(HashMap {
            pool,
            free,
            extra,
            buckets: buckets.into_boxed_slice(),
            mask: nbuckets - 1,
            key_size,
            value_size,
            seed,
        })
    }

    /// The hash of the `key_size` bytes at `key`, and its bucket.
    ///
    /// # Safety
    /// `key` points to `key_size` readable bytes.
    #[inline(always)]
    unsafe fn hash(&self, key: *const u8) -> (u32, usize) {
        // SAFETY: caller contract; each `N` is the key size or 0.
        let h = unsafe {
            match self.key_size {
                4 => hash_key::<4>(self.seed, key, 4),
                8 => hash_key::<8>(self.seed, key, 8),
                n => hash_key::<0>(self.seed, key, n),
            }
        };
        (h, h as usize & self.mask)
    }

    #[inline(always)]
    fn bucket(&self, b: usize) -> &Bucket {
        debug_assert!(b < self.buckets.len());
        // SAFETY: every bucket index is `hash & mask`, and `mask + 1` buckets exist.
        unsafe { self.buckets.get_unchecked(b & self.mask) }
    }

    #[inline]
    fn hdr(&self, e: usize) -> &ElemHdr {
        // SAFETY: `e` is the address of an element header inside the pool (only such addresses
        // are ever stored in lists); the header is plain atomics, valid for any bytes.
        unsafe { &*(e as *const ElemHdr) }
    }

    #[inline]
    fn key_ptr(&self, e: usize) -> *mut u8 {
        (e + HDR) as *mut u8
    }

    #[inline]
    fn value_ptr(&self, e: usize) -> *mut u8 {
        (e + HDR + round8(self.key_size)) as *mut u8
    }

    /// Whether element `e` holds `key`.
    ///
    /// # Safety
    /// `key` points to `key_size` readable bytes; `e` is an element address; `N` is 0 or the
    /// key size.
    #[inline(always)]
    unsafe fn key_eq<const N: usize>(&self, e: usize, key: *const u8) -> bool {
        // SAFETY: both ranges are `key_size` bytes inside live allocations (caller contract and
        // the pool). The element's key may be rewritten concurrently after a reuse; a torn read
        // only makes the comparison fail, as in Linux.
        unsafe { key_eq::<N>(self.key_ptr(e), key, self.key_size) }
    }

    /// Lock-free lookup; returns the element address or 0. One walk per key size, so the
    /// common 4- and 8-byte keys walk without a call (no registers to save).
    ///
    /// # Safety
    /// `key` points to `key_size` readable bytes.
    #[inline(always)]
    unsafe fn find(&self, key: *const u8) -> usize {
        // SAFETY: caller contract; each `N` is the key size or 0.
        unsafe {
            match self.key_size {
                4 => self.find_sized::<4>(key),
                8 => self.find_sized::<8>(key),
                _ => self.find_general(key),
            }
        }
    }

    /// [`HashMap::find`] for keys of any size, out of line.
    ///
    /// # Safety
    /// As for [`HashMap::find`].
    #[inline(never)]
    unsafe fn find_general(&self, key: *const u8) -> usize {
        // SAFETY: forwarded; `N` = 0 takes the general hash and compare.
        unsafe { self.find_sized::<0>(key) }
    }

    /// # Safety
    /// As for [`HashMap::find`]; `N` is 0 or the key size.
    #[inline(always)]
    unsafe fn find_sized<const N: usize>(&self, key: *const u8) -> usize {
        // SAFETY: caller contract.
        let h = unsafe { hash_key::<N>(self.seed, key, self.key_size) };
        let b = h as usize & self.mask;
        loop {
            let mut cur = self.bucket(b).head.load(Ordering::Acquire);
            while !is_nulls(cur) {
                let hdr = self.hdr(cur);
                // SAFETY: caller contract for `key`; `cur` is an element.
                if hdr.hash.load(Ordering::Relaxed) == h && unsafe { self.key_eq::<N>(cur, key) } {
                    return cur;
                }
                cur = hdr.next.load(Ordering::Acquire);
            }
            if cur == nulls(b) {
                return 0;
            }
            // Ended in another bucket's list: an element moved under us. Walk again.
            crate::sync::spin_loop();
        }
    }

    /// The value of `key`, or null: what the map's own lookup (a program's direct call) runs.
    ///
    /// # Safety
    /// `key` points to `key_size` readable bytes.
    #[inline(always)]
    pub(crate) unsafe fn lookup_raw(&self, key: *const u8) -> *mut u8 {
        // SAFETY: caller contract.
        let e = unsafe { self.find(key) };
        if e == 0 {
            core::ptr::null_mut()
        } else {
            self.value_ptr(e)
        }
    }

    /// [`HashMap::lookup_raw`] out of line, for the generic helper's dispatch on the map's
    /// type: the hash walk's registers are saved here, not in the dispatch every map type
    /// goes through.
    ///
    /// # Safety
    /// As for [`HashMap::lookup_raw`].
    #[inline(never)]
    pub(crate) unsafe fn lookup_raw_outlined(&self, key: *const u8) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { self.lookup_raw(key) }
    }

    pub(crate) fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result {
        // SAFETY: `key` has `key_size` bytes (checked by `Map`).
        let e = unsafe { self.find(key.as_ptr()) };
        if e == 0 {
            return Err(Errno::ENOENT);
        }
        // SAFETY: the value area has `value_size` bytes; `value.len() == value_size`.
        unsafe {
            core::ptr::copy_nonoverlapping(self.value_ptr(e), value.as_mut_ptr(), value.len())
        };
        Ok(())
    }

    pub(crate) fn update(&self, key: &[u8], value: &[u8], flags: UpdateFlags) -> Result {
        // SAFETY: slices of `key_size` and `value_size` bytes (checked by `Map`).
        unsafe { self.update_raw(key.as_ptr(), value.as_ptr(), flags) }
    }

    /// Inserts or replaces (`htab_map_update_elem`).
    ///
    /// # Safety
    /// `key` and `value` point to `key_size` and `value_size` readable bytes.
    pub(crate) unsafe fn update_raw(
        &self,
        key: *const u8,
        value: *const u8,
        flags: UpdateFlags,
    ) -> Result {
        if flags.contains(UpdateFlags::LOCK)
            || flags.contains(UpdateFlags::NOEXIST | UpdateFlags::EXIST)
        {
            return Err(Errno::EINVAL);
        }
        // SAFETY: caller contract.
        let (h, b) = unsafe { self.hash(key) };
        on_cpu(|cpu| {
            let bucket = self.bucket(b);
            let _guard = bucket.lock.lock();
            // SAFETY: caller contract; writers are serialized on this bucket by the lock.
            let old = unsafe { self.find_locked(b, h, key) };
            if old != 0 && flags.contains(UpdateFlags::NOEXIST) {
                return Err(Errno::EEXIST);
            }
            if old == 0 && flags.contains(UpdateFlags::EXIST) {
                return Err(Errno::ENOENT);
            }
            // A replacement takes this CPU's spare; a new key a free element (`alloc_htab_elem`).
            // SAFETY: this thread holds `cpu` (`on_cpu`), and the spare is only touched here,
            // by the holder, with no other reference alive.
            let spare = unsafe { self.extra.get_mut(cpu) };
            let idx = if old != 0 {
                *spare
            } else {
                self.free.pop(cpu).ok_or(Errno::E2BIG)?
            };
            // SAFETY: `idx` is the spare or came from the free list, so no list links to it.
            let new = unsafe { self.pool.elem(idx as usize) } as usize;
            // SAFETY: the new element is unpublished; key/value areas have room for the copies.
            unsafe {
                core::ptr::copy_nonoverlapping(key, self.key_ptr(new), self.key_size);
                core::ptr::copy_nonoverlapping(value, self.value_ptr(new), self.value_size);
            }
            let hdr = self.hdr(new);
            hdr.hash.store(h, Ordering::Relaxed);
            hdr.next
                .store(bucket.head.load(Ordering::Relaxed), Ordering::Relaxed);
            // Publish: readers that see the new head see its contents.
            bucket.head.store(new, Ordering::Release);
            if old != 0 {
                self.unlink_locked(b, old);
                *spare = self.index(old);
            }
            Ok(())
        })
    }

    pub(crate) fn delete(&self, key: &[u8]) -> Result {
        // SAFETY: `key` has `key_size` bytes.
        unsafe { self.delete_raw(key.as_ptr()) }
    }

    /// # Safety
    /// `key` points to `key_size` readable bytes.
    pub(crate) unsafe fn delete_raw(&self, key: *const u8) -> Result {
        // SAFETY: caller contract.
        let (h, b) = unsafe { self.hash(key) };
        on_cpu(|cpu| {
            let _guard = self.bucket(b).lock.lock();
            // SAFETY: caller contract; bucket lock held.
            let e = unsafe { self.find_locked(b, h, key) };
            if e == 0 {
                return Err(Errno::ENOENT);
            }
            self.unlink_locked(b, e);
            self.free.push(cpu, self.index(e));
            Ok(())
        })
    }

    /// # Safety
    /// `key` points to `key_size` bytes; bucket `b`'s lock is held.
    unsafe fn find_locked(&self, b: usize, h: u32, key: *const u8) -> usize {
        let mut cur = self.bucket(b).head.load(Ordering::Relaxed);
        while !is_nulls(cur) {
            let hdr = self.hdr(cur);
            // SAFETY: caller contract.
            if hdr.hash.load(Ordering::Relaxed) == h && unsafe { self.key_eq::<0>(cur, key) } {
                return cur;
            }
            cur = hdr.next.load(Ordering::Relaxed);
        }
        0
    }

    /// Removes `e` from bucket `b`'s list (lock held). Readers on `e` keep walking from its
    /// unchanged `next`.
    fn unlink_locked(&self, b: usize, e: usize) {
        let next = self.hdr(e).next.load(Ordering::Relaxed);
        let head = &self.bucket(b).head;
        if head.load(Ordering::Relaxed) == e {
            head.store(next, Ordering::Release);
            return;
        }
        let mut cur = head.load(Ordering::Relaxed);
        while !is_nulls(cur) {
            let hdr = self.hdr(cur);
            if hdr.next.load(Ordering::Relaxed) == e {
                hdr.next.store(next, Ordering::Release);
                return;
            }
            cur = hdr.next.load(Ordering::Relaxed);
        }
    }

    /// The pool index of element `e`.
    fn index(&self, e: usize) -> u32 {
        // SAFETY: index 0's address is the pool base; `e` is inside the pool.
        let base = unsafe { self.pool.elem(0) } as usize;
        ((e - base) / self.pool.elem_size()) as u32
    }

    /// `htab_map_get_next_key`: the key after `key` in bucket order; the first key when `key`
    /// is absent or not found.
    pub(crate) fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result {
        let mut start_bucket = 0;
        if let Some(key) = key {
            // SAFETY: `key` has `key_size` bytes (checked by `Map`).
            let (_, b) = unsafe { self.hash(key.as_ptr()) };
            // SAFETY: as above.
            let e = unsafe { self.find(key.as_ptr()) };
            if e != 0 {
                let n = self.hdr(e).next.load(Ordering::Acquire);
                if !is_nulls(n) {
                    return self.copy_key(n, next);
                }
                start_bucket = b + 1;
            }
        }
        for b in start_bucket..self.buckets.len() {
            let head = self.buckets[b].head.load(Ordering::Acquire);
            if !is_nulls(head) {
                return self.copy_key(head, next);
            }
        }
        Err(Errno::ENOENT)
    }

    fn copy_key(&self, e: usize, out: &mut [u8]) -> Result {
        // SAFETY: the key area holds `key_size` bytes; `out.len() == key_size`.
        unsafe { core::ptr::copy_nonoverlapping(self.key_ptr(e), out.as_mut_ptr(), out.len()) };
        Ok(())
    }
}
