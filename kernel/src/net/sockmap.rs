//! `BPF_MAP_TYPE_SOCKMAP` and `BPF_MAP_TYPE_SOCKHASH` (`net/core/sock_map.c`): maps whose
//! values are sockets, stored from user space by socket handle and handed to programs as
//! socket pointers.
//!
//! * Creation (`sock_map_alloc`, `sock_hash_alloc`): 4-byte keys for the array form (any
//!   non-zero size for the hash), 4- or 8-byte values, none of kbpf's creation flags.
//! * Update from user space (`sock_map_update_elem_sys`): the value is a socket handle (a
//!   4-byte or, for 8-byte values, a 64-bit one; above `INT_MAX` is `EINVAL`); no socket there
//!   is `EBADF`, something else `ENOTSOCK`; a TCP socket must be listening or established
//!   (`EOPNOTSUPP`); then the flags (`EINVAL` above `BPF_EXIST`), the index (`E2BIG`),
//!   `BPF_NOEXIST`/`BPF_EXIST` (`EEXIST`/`ENOENT`), a full hash (`E2BIG`). The map holds a
//!   reference to each socket it stores.
//! * Lookup from user space: the socket's cookie, 8-byte values only (`ENOSPC`); delete: an
//!   empty or out-of-range slot is `EINVAL` (array), a missing key `ENOENT` (hash).
//! * Lookup from a program: the socket, or NULL; for a reference-counted socket (not
//!   RCU-freed) a reference the program must release (`sock_map_lookup`: the verifier's
//!   reference tracking makes it), for the others none.
//! * A socket that closes leaves every map it is in (`sock_map_close`), and a map that goes
//!   away puts every socket it holds.
//!
//! Programs cannot change socket maps in kbpf: a program's `bpf_map_update_elem` or
//! `bpf_map_delete_elem` on one returns `-EOPNOTSUPP`. (The kernel lets some program types do
//! both, allocating and taking the socket's lock on the fast path, which kbpf's fast path
//! never does; `docs/kernel-compat.md`.)
//!
//! Changes serialize on one lock shared by every socket map, taken outside any socket lock.
//! Program lookups take no lock and allocate nothing: the array's slots are atomic pointers,
//! the hash's buckets RCU-published lists.

use super::rcu_chain::RcuChain;
use super::reuseport::jhash_3words;
use super::sock::{MapLink, Sock, SockRef, state};
use crate::cpu::rcu;
use crate::map::{MapAttr, array_index};
use crate::mprog::ReadSection;
use crate::net::addr::Proto;
use crate::net::socket::Socket;
use crate::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use crate::syscall::{self, Object};
use crate::uapi::{MapFlags, MapType, UpdateFlags};
use crate::{Errno, Result};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// Serializes every change to every socket map (the kernel's per-map locks plus the socket's
/// link lock, folded into one).
static SOCKMAP_LOCK: spin::Mutex<()> = spin::Mutex::new(());

/// Buckets of a socket hash.
const HASH_BUCKETS: usize = 64;

/// An element of a socket hash.
#[derive(Clone, Debug)]
struct Elem {
    key: Box<[u8]>,
    sk: *const Sock,
}

// SAFETY: the socket is referenced by the map while the element is published, and freed only a
// grace period after the last reference goes (`rcu_obj`).
unsafe impl Send for Elem {}
// SAFETY: as above.
unsafe impl Sync for Elem {}

/// A socket map or socket hash.
pub(crate) struct SockMap {
    hash: bool,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    /// The array form's slots (each holds a reference to its socket).
    slots: Box<[AtomicPtr<Sock>]>,
    /// The hash form's buckets.
    buckets: Box<[RcuChain<Elem>]>,
    /// Elements of the hash form.
    count: AtomicU32,
}

fn key_hash(key: &[u8]) -> usize {
    let mut h = 0u32;
    for chunk in key.chunks(4) {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        h = jhash_3words(h, u32::from_ne_bytes(w), chunk.len() as u32, 0x5eed);
    }
    h as usize % HASH_BUCKETS
}

impl SockMap {
    /// `sock_map_alloc` / `sock_hash_alloc` (see the module docs).
    pub(crate) fn new(attr: &MapAttr) -> Result<SockMap> {
        let hash = attr.map_type == MapType::Sockhash;
        let key_ok = if hash {
            attr.key_size != 0
        } else {
            attr.key_size == 4
        };
        let allowed = MapFlags::empty();
        if attr.max_entries == 0
            || !key_ok
            || !matches!(attr.value_size, 4 | 8)
            || !allowed.contains(attr.flags)
        {
            return Err(Errno::EINVAL);
        }
        let mut slots = Vec::new();
        if !hash {
            slots
                .try_reserve_exact(attr.max_entries as usize)
                .map_err(|_| Errno::ENOMEM)?;
            slots.extend((0..attr.max_entries).map(|_| AtomicPtr::new(core::ptr::null_mut())));
        }
        let buckets = if hash {
            (0..HASH_BUCKETS).map(|_| RcuChain::new()).collect()
        } else {
            Box::default()
        };
        Ok(SockMap {
            hash,
            key_size: attr.key_size,
            value_size: attr.value_size,
            max_entries: attr.max_entries,
            slots: slots.into_boxed_slice(),
            buckets,
            count: AtomicU32::new(0),
        })
    }

    /// Control path (lock held): the socket stored under `key`, if any.
    fn find(&self, key: &[u8]) -> Result<Option<*const Sock>> {
        if self.hash {
            let b = &self.buckets[key_hash(key)];
            return Ok(b.snapshot().iter().find(|e| &*e.key == key).map(|e| e.sk));
        }
        let i = array_index(key)?;
        Ok(self
            .slots
            .get(i as usize)
            .map(|s| s.load(Ordering::Acquire) as *const Sock)
            .filter(|p| !p.is_null()))
    }

    /// `BPF_MAP_LOOKUP_ELEM` from user space (`sock_map_lookup_sys`): the socket's cookie.
    pub(crate) fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result {
        if self.value_size != 8 {
            return Err(Errno::ENOSPC);
        }
        let _g = SOCKMAP_LOCK.lock();
        let sk = self.find(key)?.ok_or(Errno::ENOENT)?;
        // SAFETY: a stored socket is referenced by the map, and the lock keeps it stored.
        let cookie = unsafe { (*sk).cookie() };
        value.copy_from_slice(&cookie.to_ne_bytes());
        Ok(())
    }

    /// `BPF_MAP_UPDATE_ELEM` from user space: `value` is a socket handle (see the module docs).
    pub(crate) fn update(&self, key: &[u8], value: &[u8], flags: UpdateFlags) -> Result {
        if flags.contains(UpdateFlags::LOCK) {
            return Err(Errno::EINVAL);
        }
        let fd = if self.value_size == 8 {
            let v = u64::from_ne_bytes(value.try_into().map_err(|_| Errno::EINVAL)?);
            if v > i32::MAX as u64 {
                return Err(Errno::EINVAL);
            }
            v as u32
        } else {
            array_index(value)?
        };
        let sock = match syscall::get(fd) {
            Ok(Object::Sock(s)) => s,
            Ok(_) | Err(Errno::EINVAL) => return Err(Errno::ENOTSOCK),
            Err(e) => return Err(e),
        };
        self.store(key, &sock, flags)
    }

    /// Stores `sock` under `key` (the common part of `sock_map_update_common` and
    /// `sock_hash_update_common`).
    pub(crate) fn store(&self, key: &[u8], sock: &Socket, flags: UpdateFlags) -> Result {
        let sk = sock.sock_ref();
        let _g = SOCKMAP_LOCK.lock();
        if sk.proto() == Proto::Tcp && !matches!(sk.state(), state::ESTABLISHED | state::LISTEN) {
            return Err(Errno::EOPNOTSUPP);
        }
        if sk.inner.lock().closed {
            return Err(Errno::EOPNOTSUPP);
        }
        if flags.bits() > UpdateFlags::EXIST.bits() {
            return Err(Errno::EINVAL);
        }
        if !self.hash && array_index(key)? >= self.max_entries {
            return Err(Errno::E2BIG);
        }
        let old = self.find(key)?;
        if old.is_some() && flags == UpdateFlags::NOEXIST {
            return Err(Errno::EEXIST);
        }
        if old.is_none() && flags == UpdateFlags::EXIST {
            return Err(Errno::ENOENT);
        }
        if self.hash && old.is_none() && self.count.load(Ordering::Relaxed) >= self.max_entries {
            return Err(Errno::E2BIG);
        }
        let mut link_key = Vec::new();
        link_key
            .try_reserve_exact(key.len())
            .map_err(|_| Errno::ENOMEM)?;
        link_key.extend_from_slice(key);
        sk.inner
            .lock()
            .maps
            .try_reserve(1)
            .map_err(|_| Errno::ENOMEM)?;
        let new = sk.clone().into_raw();
        if self.hash {
            let elem = Elem {
                key: key.into(),
                sk: new,
            };
            let r = self.buckets[key_hash(key)].try_update(rcu(), |v| {
                v.retain(|e| &*e.key != key);
                v.push(elem);
            });
            if let Err(e) = r {
                // SAFETY: the reference taken above, never published.
                drop(unsafe { SockRef::from_raw(new) });
                return Err(e);
            }
            if old.is_none() {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            let i = array_index(key)? as usize;
            // INVARIANT: a slot is null or holds a socket the map references; a replaced
            // socket's reference is put after it is unpublished here.
            self.slots[i].store(new as *mut Sock, Ordering::Release);
        }
        sk.inner.lock().maps.push(MapLink {
            map: self as *const SockMap,
            key: link_key,
        });
        if let Some(old) = old {
            self.release_old(old, key);
        }
        Ok(())
    }

    /// An unpublished socket leaves the map: its link to the map goes and the map's reference
    /// is put. Lock held.
    fn release_old(&self, sk: *const Sock, key: &[u8]) {
        // SAFETY: the map still holds its reference to `sk`, which we take over and put.
        let sk = unsafe { SockRef::from_raw(sk) };
        let mut inner = sk.inner.lock();
        if let Some(i) = inner
            .maps
            .iter()
            .position(|l| core::ptr::eq(l.map, self) && *l.key == *key)
        {
            inner.maps.swap_remove(i);
        }
    }

    /// Takes the socket out of `key`'s slot (lock held): the socket, if there was one.
    fn unpublish(&self, key: &[u8]) -> Result<Option<*const Sock>> {
        let Some(sk) = self.find(key)? else {
            return Ok(None);
        };
        if self.hash {
            self.buckets[key_hash(key)].update(rcu(), |v| v.retain(|e| &*e.key != key));
            self.count.fetch_sub(1, Ordering::Relaxed);
        } else {
            let i = array_index(key)? as usize;
            self.slots[i].store(core::ptr::null_mut(), Ordering::Release);
        }
        Ok(Some(sk))
    }

    /// `BPF_MAP_DELETE_ELEM` from user space (`sock_map_delete_elem`, `sock_hash_delete_elem`).
    pub(crate) fn delete(&self, key: &[u8]) -> Result {
        let _g = SOCKMAP_LOCK.lock();
        if !self.hash && array_index(key)? >= self.max_entries {
            return Err(Errno::EINVAL);
        }
        match self.unpublish(key)? {
            Some(sk) => {
                self.release_old(sk, key);
                Ok(())
            }
            None if self.hash => Err(Errno::ENOENT),
            None => Err(Errno::EINVAL),
        }
    }

    /// A closing socket leaves this map's slot `key`, if it is still there (`sock_map_close`
    /// → `sock_map_unref`). Lock held by the caller.
    fn unlink(&self, key: &[u8], sk: &Sock) {
        if self.find(key).ok().flatten() == Some(sk as *const Sock) {
            if let Ok(Some(p)) = self.unpublish(key) {
                // SAFETY: the map's reference, taken over and put.
                drop(unsafe { SockRef::from_raw(p) });
            }
        }
    }

    /// `BPF_MAP_GET_NEXT_KEY` (`sock_map_get_next_key`, `sock_hash_get_next_key`): the array
    /// form walks indices like an array; the hash form walks its elements, restarting from
    /// the first when `key` is missing.
    pub(crate) fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result {
        if !self.hash {
            let n = match key.map(array_index).transpose()? {
                Some(i) if i == self.max_entries - 1 => return Err(Errno::ENOENT),
                Some(i) if i < self.max_entries => i + 1,
                _ => 0,
            };
            next.copy_from_slice(&n.to_ne_bytes());
            return Ok(());
        }
        let _g = SOCKMAP_LOCK.lock();
        let all: Vec<Box<[u8]>> = self
            .buckets
            .iter()
            .flat_map(|b| b.snapshot().into_iter().map(|e| e.key))
            .collect();
        let at = match key.and_then(|k| all.iter().position(|e| **e == *k)) {
            Some(i) => i + 1,
            None => 0,
        };
        let k = all.get(at).ok_or(Errno::ENOENT)?;
        next.copy_from_slice(k);
        Ok(())
    }

    /// Fast path `bpf_map_lookup_elem` from a program (`sock_map_lookup`,
    /// `sock_hash_lookup`): the socket, with a reference if it is reference-counted, or null.
    ///
    /// # Safety
    /// `key` points to `key_size` readable bytes; the caller is inside a read-side section of
    /// `cpu::rcu()`.
    #[inline]
    pub(crate) unsafe fn lookup_raw(&self, key: *const u8) -> *mut u8 {
        let sk = if self.hash {
            // SAFETY: the caller's contract.
            let key = unsafe { core::slice::from_raw_parts(key, self.key_size as usize) };
            // SAFETY: the caller is inside a read-side section (contract).
            let section = unsafe { InSection::assume() };
            match self.buckets[key_hash(key)]
                .read(&section)
                .iter()
                .find(|e| &*e.key == key)
            {
                Some(e) => e.sk,
                None => return core::ptr::null_mut(),
            }
        } else {
            // SAFETY: the caller's contract; keys are 4 bytes.
            let i = unsafe { key.cast::<u32>().read_unaligned() };
            match self.slots.get(i as usize) {
                // Acquire: pairs with the release store that published the socket.
                Some(s) => s.load(Ordering::Acquire),
                None => return core::ptr::null_mut(),
            }
        };
        // SAFETY: a socket read from a slot inside a section is allocated until the section
        // ends (`rcu_obj`).
        match unsafe { sk.as_ref() } {
            None => core::ptr::null_mut(),
            Some(s) if s.is_refcounted() && !s.get_unless_zero() => core::ptr::null_mut(),
            Some(_) => sk as *mut u8,
        }
    }
}

/// A read-side section a fast-path caller vouches for (helpers get no guard to borrow).
struct InSection(());

impl InSection {
    /// # Safety
    /// The caller is inside a read-side section of `cpu::rcu()` until the value drops.
    unsafe fn assume() -> InSection {
        InSection(())
    }
}

// SAFETY: only created (by `assume`) inside a read-side section of the domain the socket maps'
// writers use, and dropped before it ends.
unsafe impl ReadSection for InSection {}

use super::rcu_obj::RcuObj;

impl Drop for SockMap {
    fn drop(&mut self) {
        let _g = SOCKMAP_LOCK.lock();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        if self.hash {
            for b in self.buckets.iter() {
                keys.extend(b.snapshot().into_iter().map(|e| e.key.to_vec()));
            }
        } else {
            for (i, s) in self.slots.iter().enumerate() {
                if !s.load(Ordering::Acquire).is_null() {
                    keys.push((i as u32).to_ne_bytes().to_vec());
                }
            }
        }
        for key in keys {
            if let Ok(Some(sk)) = self.unpublish(&key) {
                self.release_old(sk, &key);
            }
        }
    }
}

/// A closing socket leaves every socket map it is in (`sock_map_close`).
pub(crate) fn unlink_all(sk: &Sock) {
    let _g = SOCKMAP_LOCK.lock();
    let links = core::mem::take(&mut sk.inner.lock().maps);
    for l in links {
        // SAFETY: a map removes every link to itself (under this lock, in its `Drop`) before
        // it goes away, so a link still on the socket points at a live map.
        unsafe { (*l.map).unlink(&l.key, sk) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_checks() {
        let ok = |t, k, v| SockMap::new(&MapAttr::new(t, k, v, 4)).is_ok();
        assert!(ok(MapType::Sockmap, 4, 8));
        assert!(ok(MapType::Sockmap, 4, 4));
        assert!(!ok(MapType::Sockmap, 8, 8));
        assert!(!ok(MapType::Sockmap, 4, 2));
        assert!(ok(MapType::Sockhash, 16, 8));
        assert!(!ok(MapType::Sockhash, 0, 8));
        let flagged = MapAttr {
            flags: MapFlags::RDONLY_PROG,
            ..MapAttr::new(MapType::Sockmap, 4, 8, 4)
        };
        assert_eq!(SockMap::new(&flagged).err(), Some(Errno::EINVAL));
    }

    #[test]
    fn keys_spread_over_buckets() {
        let mut seen = [false; HASH_BUCKETS];
        for i in 0u32..1000 {
            seen[key_hash(&i.to_ne_bytes())] = true;
        }
        assert!(seen.iter().filter(|&&b| b).count() > HASH_BUCKETS / 2);
    }
}
