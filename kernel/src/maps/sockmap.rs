//! `BPF_MAP_TYPE_SOCKMAP` and `BPF_MAP_TYPE_SOCKHASH` (Linux `net/core/sock_map.c`): maps whose
//! values are sockets, stored from user space by socket fd and handed to programs as
//! referenced `struct bpf_sock` pointers.
//!
//! kbpf has no sockets yet, so these maps stay empty: creation applies the kernel's attribute
//! checks (`sock_map_alloc`, `sock_hash_alloc`), an update from user space or from a program
//! is `EOPNOTSUPP` (it needs a socket to store, which kbpf cannot name), and lookups, deletes
//! and key walks behave as the kernel's on an empty map. What the verifier judges of programs
//! using them (a lookup returns a socket or NULL holding a reference) is independent of this
//! and complete; at run time a lookup finds nothing and returns NULL.

use crate::map::{MapAttr, array_index};
use crate::uapi::{MapFlags, MapType, UpdateFlags};
use crate::{Errno, Result};

/// An (always empty) socket map or socket hash.
pub(crate) struct SockMap {
    hash: bool,
    value_size: u32,
    max_entries: u32,
}

impl SockMap {
    /// `sock_map_alloc` / `sock_hash_alloc`: 4-byte keys for the array form (any non-zero size
    /// for the hash), values a socket fd (4 bytes) or cookie (8); none of the creation flags
    /// kbpf has are among the kernel's allowed ones (`SOCK_CREATE_FLAG_MASK`).
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
        Ok(SockMap {
            hash,
            value_size: attr.value_size,
            max_entries: attr.max_entries,
        })
    }

    /// `BPF_MAP_LOOKUP_ELEM` from user space (`sock_map_lookup_sys`): the socket's cookie,
    /// which needs 8-byte values (`ENOSPC` otherwise); an empty map has none (`ENOENT`).
    pub(crate) fn lookup(&self, _key: &[u8], _value: &mut [u8]) -> Result {
        if self.value_size != 8 {
            return Err(Errno::ENOSPC);
        }
        Err(Errno::ENOENT)
    }

    /// `BPF_MAP_UPDATE_ELEM`: the value names a socket, which kbpf does not have.
    pub(crate) fn update(&self, key: &[u8], flags: UpdateFlags) -> Result {
        if flags.contains(UpdateFlags::LOCK) || flags.bits() > UpdateFlags::EXIST.bits() {
            return Err(Errno::EINVAL);
        }
        if !self.hash && array_index(key)? >= self.max_entries {
            return Err(Errno::E2BIG);
        }
        Err(Errno::EOPNOTSUPP)
    }

    /// `BPF_MAP_DELETE_ELEM` (`sock_map_delete_elem`, `sock_hash_delete_elem`): an index past
    /// the end or an empty slot is `EINVAL` for the array form; a missing key `ENOENT` for the
    /// hash.
    pub(crate) fn delete(&self, key: &[u8]) -> Result {
        if self.hash {
            return Err(Errno::ENOENT);
        }
        array_index(key)?;
        Err(Errno::EINVAL)
    }

    /// Whether this is the hash form (`BPF_MAP_TYPE_SOCKHASH`).
    pub(crate) fn is_hash(&self) -> bool {
        self.hash
    }

    /// `BPF_MAP_GET_NEXT_KEY` (`sock_map_get_next_key`, `sock_hash_get_next_key`): the array
    /// form walks indices like an array (a missing or out-of-range key restarts at 0, the last
    /// index has no next); an empty hash has no key at all.
    pub(crate) fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result {
        if self.hash {
            return Err(Errno::ENOENT);
        }
        let n = match key.map(array_index).transpose()? {
            Some(i) if i == self.max_entries - 1 => return Err(Errno::ENOENT),
            Some(i) if i < self.max_entries => i + 1,
            _ => 0,
        };
        next.copy_from_slice(&n.to_ne_bytes());
        Ok(())
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
    fn empty_map_answers() {
        let m = SockMap::new(&MapAttr::new(MapType::Sockmap, 4, 8, 4)).unwrap();
        let key = 1u32.to_ne_bytes();
        assert_eq!(m.lookup(&key, &mut [0; 8]), Err(Errno::ENOENT));
        assert_eq!(m.delete(&key), Err(Errno::EINVAL));
        assert_eq!(m.update(&key, UpdateFlags::ANY), Err(Errno::EOPNOTSUPP));
        assert_eq!(
            m.update(&9u32.to_ne_bytes(), UpdateFlags::ANY),
            Err(Errno::E2BIG)
        );
        let m4 = SockMap::new(&MapAttr::new(MapType::Sockmap, 4, 4, 4)).unwrap();
        assert_eq!(m4.lookup(&key, &mut [0; 4]), Err(Errno::ENOSPC));
        let mut next = [0; 4];
        assert_eq!(m.get_next_key(None, &mut next), Ok(()));
        assert_eq!(next, 0u32.to_ne_bytes());
        assert_eq!(m.get_next_key(Some(&key), &mut next), Ok(()));
        assert_eq!(next, 2u32.to_ne_bytes());
        assert_eq!(
            m.get_next_key(Some(&3u32.to_ne_bytes()), &mut next),
            Err(Errno::ENOENT)
        );
        let h = SockMap::new(&MapAttr::new(MapType::Sockhash, 4, 8, 4)).unwrap();
        assert_eq!(h.delete(&key), Err(Errno::ENOENT));
        assert_eq!(h.get_next_key(None, &mut next), Err(Errno::ENOENT));
    }
}
