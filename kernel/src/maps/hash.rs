//! `BPF_MAP_TYPE_HASH` (Linux `kernel/bpf/hashtab.c`, preallocated mode).
//!
//! All elements are allocated when the map is created (`max_entries` plus one spare per CPU, so
//! replacing a key never fails for lack of an element) and kept on a free list. Buckets are
//! singly linked lists read without locks; writers take the bucket's spin lock.
//!
//! As in Linux's preallocated hash maps, a deleted element goes back on the free list at once,
//! not after a grace period: a concurrent reader may see its bytes change. Memory stays valid
//! (the pool lives as long as the map). Each list ends in a *nulls* marker naming its bucket
//! (`hlist_nulls`): a reader whose element moved to another bucket mid-walk ends on the wrong
//! marker and restarts, so it never misses a key that stayed put.

use super::storage::{Storage, round8};
use crate::map::MapAttr;
use crate::sync::SpinLock;
// Element headers live in raw pool memory and are reached by casting addresses, which loom's
// model atomics cannot be; the hash map is not part of a loom model, so it uses `core` atomics.
use crate::uapi::UpdateFlags;
use crate::{Errno, Result, host};
use alloc::vec::Vec;
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
    free: SpinLock<Vec<u32>>,
    buckets: alloc::boxed::Box<[Bucket]>,
    mask: usize,
    count: AtomicU32,
    key_size: usize,
    value_size: usize,
    max_entries: u32,
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

/// An FxHash-style mix over 8-byte words; seeded per map.
fn hash_key(seed: u64, key: &[u8]) -> u32 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = seed;
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        h = (h.rotate_left(5) ^ u64::from_le_bytes(c.try_into().expect("8 bytes"))).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
    }
    (h ^ (h >> 29) ^ (h >> 47)) as u32
}

impl HashMap {
    pub(crate) fn new(attr: &MapAttr, nr_cpus: usize) -> Result<HashMap> {
        if attr.value_size == 0 || attr.key_size > 512 {
            return Err(Errno::EINVAL);
        }
        let key_size = attr.key_size as usize;
        let value_size = attr.value_size as usize;
        let elem = HDR + round8(key_size) + round8(value_size);
        let total = (attr.max_entries as usize)
            .checked_add(nr_cpus)
            .ok_or(Errno::E2BIG)?;
        let pool = Storage::new(elem, total)?;
        let nbuckets = (attr.max_entries as usize)
            .checked_next_power_of_two()
            .ok_or(Errno::E2BIG)?;
        let mut buckets = Vec::new();
        buckets.try_reserve_exact(nbuckets)?;
        buckets.extend((0..nbuckets).map(|b| Bucket {
            head: AtomicUsize::new(nulls(b)),
            lock: SpinLock::new(()),
        }));
        let mut free = Vec::new();
        free.try_reserve_exact(total)?;
        free.extend((0..total as u32).rev());
        let seed = (host::get().random_u32() as u64) << 32 | host::get().random_u32() as u64;
        Ok(HashMap {
            pool,
            free: SpinLock::new(free),
            buckets: buckets.into_boxed_slice(),
            mask: nbuckets - 1,
            count: AtomicU32::new(0),
            key_size,
            value_size,
            max_entries: attr.max_entries,
            seed,
        })
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
    /// `key` points to `key_size` readable bytes; `e` is an element address.
    #[inline]
    unsafe fn key_eq(&self, e: usize, key: *const u8) -> bool {
        // SAFETY: both ranges are `key_size` bytes inside live allocations (caller contract and
        // the pool). The element's key may be rewritten concurrently after a reuse; a torn read
        // only makes the comparison fail, as in Linux.
        unsafe {
            let a = core::slice::from_raw_parts(self.key_ptr(e) as *const u8, self.key_size);
            let b = core::slice::from_raw_parts(key, self.key_size);
            a == b
        }
    }

    /// Lock-free lookup; returns the element address or 0.
    ///
    /// # Safety
    /// `key` points to `key_size` readable bytes.
    unsafe fn find(&self, key: *const u8) -> usize {
        // SAFETY: caller contract.
        let h = hash_key(self.seed, unsafe {
            core::slice::from_raw_parts(key, self.key_size)
        });
        let b = h as usize & self.mask;
        loop {
            let mut cur = self.buckets[b].head.load(Ordering::Acquire);
            while !is_nulls(cur) {
                let hdr = self.hdr(cur);
                // SAFETY: caller contract for `key`; `cur` is an element.
                if hdr.hash.load(Ordering::Relaxed) == h && unsafe { self.key_eq(cur, key) } {
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

    /// # Safety
    /// `key` points to `key_size` readable bytes.
    #[inline]
    pub(crate) unsafe fn lookup_raw(&self, key: *const u8) -> *mut u8 {
        // SAFETY: caller contract.
        let e = unsafe { self.find(key) };
        if e == 0 {
            core::ptr::null_mut()
        } else {
            self.value_ptr(e)
        }
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
        let h = hash_key(self.seed, unsafe {
            core::slice::from_raw_parts(key, self.key_size)
        });
        let b = h as usize & self.mask;
        let bucket = &self.buckets[b];
        let _guard = bucket.lock.lock();
        // SAFETY: caller contract; writers are serialized on this bucket by the lock.
        let old = unsafe { self.find_locked(b, h, key) };
        if old != 0 && flags.contains(UpdateFlags::NOEXIST) {
            return Err(Errno::EEXIST);
        }
        if old == 0 && flags.contains(UpdateFlags::EXIST) {
            return Err(Errno::ENOENT);
        }
        if old == 0 && self.count.load(Ordering::Relaxed) >= self.max_entries {
            return Err(Errno::E2BIG);
        }
        let Some(idx) = self.free.lock().pop() else {
            return Err(Errno::E2BIG);
        };
        // SAFETY: `idx` came from the free list, so it is a pool index no list links to.
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
            self.release(old);
        } else {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(crate) fn delete(&self, key: &[u8]) -> Result {
        // SAFETY: `key` has `key_size` bytes.
        unsafe { self.delete_raw(key.as_ptr()) }
    }

    /// # Safety
    /// `key` points to `key_size` readable bytes.
    pub(crate) unsafe fn delete_raw(&self, key: *const u8) -> Result {
        // SAFETY: caller contract.
        let h = hash_key(self.seed, unsafe {
            core::slice::from_raw_parts(key, self.key_size)
        });
        let b = h as usize & self.mask;
        let _guard = self.buckets[b].lock.lock();
        // SAFETY: caller contract; bucket lock held.
        let e = unsafe { self.find_locked(b, h, key) };
        if e == 0 {
            return Err(Errno::ENOENT);
        }
        self.unlink_locked(b, e);
        self.release(e);
        self.count.fetch_sub(1, Ordering::Relaxed);
        Ok(())
    }

    /// # Safety
    /// `key` points to `key_size` bytes; bucket `b`'s lock is held.
    unsafe fn find_locked(&self, b: usize, h: u32, key: *const u8) -> usize {
        let mut cur = self.buckets[b].head.load(Ordering::Relaxed);
        while !is_nulls(cur) {
            let hdr = self.hdr(cur);
            // SAFETY: caller contract.
            if hdr.hash.load(Ordering::Relaxed) == h && unsafe { self.key_eq(cur, key) } {
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
        let head = &self.buckets[b].head;
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

    fn release(&self, e: usize) {
        // SAFETY: index 0's address is the pool base; `e` is inside the pool.
        let base = unsafe { self.pool.elem(0) } as usize;
        let idx = (e - base) / self.pool.elem_size();
        self.free.lock().push(idx as u32);
    }

    /// `htab_map_get_next_key`: the key after `key` in bucket order; the first key when `key`
    /// is absent or not found.
    pub(crate) fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result {
        let mut start_bucket = 0;
        if let Some(key) = key {
            let h = hash_key(self.seed, key);
            let b = h as usize & self.mask;
            // SAFETY: `key` has `key_size` bytes.
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
