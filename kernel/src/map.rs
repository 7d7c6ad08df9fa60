//! BPF maps: the refcounted map object and its per-type implementations.
//!
//! Mirrors `struct bpf_map` (`include/linux/bpf.h`) and the map syscalls of
//! `kernel/bpf/syscall.c`. A map is shared by user handles (`usercnt`, like the kernel's
//! `map->usercnt`) and by the programs that use it (`Arc` strong count, like `map->refcnt`).
//! When the last user handle closes, a prog_array is cleared, which breaks the cycle
//! map → prog → map that tail calls create.
//!
//! Two kinds of access:
//! - control path (`lookup`, `update`, `delete`, `get_next_key`): byte slices, errno results;
//! - fast path (`lookup_elem_raw`, ...): raw key/value pointers, called by helpers from a
//!   running program inside an RCU read-side section; no allocation.

use crate::maps::{ArrayMap, HashMap, PercpuArrayMap, ProgArray, SockMap};
use crate::sync::SpinLock;
use crate::uapi::{AttachType, MapFlags, MapType, ProgType, UpdateFlags};
use crate::{Errno, Result, host, id};
use core::sync::atomic::{AtomicU32, Ordering};

/// What `map_create` is asked for (`union bpf_attr` for `BPF_MAP_CREATE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapAttr {
    /// The map type.
    pub map_type: MapType,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Number of elements.
    pub max_entries: u32,
    /// Creation flags.
    pub flags: MapFlags,
}

impl MapAttr {
    /// A map of `map_type` with the given sizes and no flags.
    pub const fn new(map_type: MapType, key_size: u32, value_size: u32, max_entries: u32) -> Self {
        MapAttr {
            map_type,
            key_size,
            value_size,
            max_entries,
            flags: MapFlags::empty(),
        }
    }
}

/// What a map that holds programs remembers of the first program that used it, and every later
/// one must match (`struct bpf_map_owner`, checked by `__bpf_prog_map_compatible`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgOwner {
    /// Program type.
    pub prog_type: ProgType,
    /// JIT-compiled or interpreted: the two can't tail-call each other.
    pub jited: bool,
    /// XDP frags awareness.
    pub xdp_has_frags: bool,
    /// Sleepable or not.
    pub sleepable: bool,
    /// Expected attach type (prog_array only, as in the final kernel).
    pub expected_attach_type: Option<AttachType>,
    /// The raw-buffer length the program was verified for (`None`: loaded on the trusted
    /// path). A kbpf rule: a tail-called program runs on its caller's buffer, so it must have
    /// been verified for the same length.
    pub ctx_size: Option<u32>,
}

/// The per-type part of a map.
pub(crate) enum MapImpl {
    Array(ArrayMap),
    PercpuArray(PercpuArrayMap),
    Hash(HashMap),
    ProgArray(ProgArray),
    SockMap(SockMap),
}

/// The part of a map that JIT'd code reads at fixed offsets: the prog_array bound and slot
/// array a tail call needs (`struct bpf_array`'s `map.max_entries` and `ptrs`).
#[derive(Debug)]
#[repr(C)]
pub struct MapHdr {
    /// `max_entries`.
    pub max_entries: u32,
    _pad: u32,
    /// For a prog_array, the address of its slot array (`*const AtomicPtr<Prog>`); else 0.
    pub prog_slots: usize,
}

/// Offset of `max_entries` in a [`Map`], for JIT'd tail calls.
pub const MAP_MAX_ENTRIES_OFFSET: usize =
    core::mem::offset_of!(Map, hdr) + core::mem::offset_of!(MapHdr, max_entries);
/// Offset of the prog_array slot array's address in a [`Map`], for JIT'd tail calls.
pub const MAP_PROG_SLOTS_OFFSET: usize =
    core::mem::offset_of!(Map, hdr) + core::mem::offset_of!(MapHdr, prog_slots);

static_assertions::const_assert_eq!(MAP_MAX_ENTRIES_OFFSET, 0);
static_assertions::const_assert_eq!(MAP_PROG_SLOTS_OFFSET, 8);
// JIT'd code loads a slot as a plain pointer-sized word.
#[cfg(not(loom))]
static_assertions::assert_eq_size!(crate::sync::atomic::AtomicPtr<()>, usize);

/// A BPF map. `#[repr(C)]` with [`MapHdr`] first: JIT'd code reads it at fixed offsets.
#[repr(C)]
pub struct Map {
    hdr: MapHdr,
    id: u32,
    attr: MapAttr,
    /// User handles open on this map (`usercnt`).
    usercnt: AtomicU32,
    /// The program attributes every program using or stored in a prog_array must match.
    pub(crate) owner: SpinLock<Option<ProgOwner>>,
    pub(crate) imp: MapImpl,
}

impl Map {
    /// Creates a map (`map_alloc` after the attribute checks of `map_create`).
    pub fn create(attr: MapAttr) -> Result<Map> {
        let known = MapFlags::NO_PREALLOC | MapFlags::RDONLY_PROG | MapFlags::WRONLY_PROG;
        // `BPF_F_INNER_MAP` only on arrays (the kernel's `ARRAY_CREATE_FLAG_MASK`).
        let inner = match attr.map_type {
            MapType::Array | MapType::PercpuArray => MapFlags::INNER_MAP,
            _ => MapFlags::empty(),
        };
        if !(known | inner).contains(attr.flags) {
            return Err(Errno::EINVAL);
        }
        if attr.key_size == 0 && attr.map_type != MapType::Unspec || attr.max_entries == 0 {
            return Err(Errno::EINVAL);
        }
        let nr_cpus = host::get().nr_cpus();
        let imp = match attr.map_type {
            MapType::Array => MapImpl::Array(ArrayMap::new(&attr)?),
            MapType::PercpuArray => MapImpl::PercpuArray(PercpuArrayMap::new(&attr, nr_cpus)?),
            MapType::Hash => MapImpl::Hash(HashMap::new(&attr, nr_cpus)?),
            MapType::ProgArray => MapImpl::ProgArray(ProgArray::new(&attr)?),
            MapType::Sockmap | MapType::Sockhash => MapImpl::SockMap(SockMap::new(&attr)?),
            _ => return Err(Errno::EINVAL),
        };
        let prog_slots = match &imp {
            MapImpl::ProgArray(a) => a.slots_base() as usize,
            _ => 0,
        };
        Ok(Map {
            hdr: MapHdr {
                max_entries: attr.max_entries,
                _pad: 0,
                prog_slots,
            },
            id: id::next_map_id(),
            attr,
            usercnt: AtomicU32::new(0),
            owner: SpinLock::new(None),
            imp,
        })
    }

    /// The map's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The map's type.
    pub fn map_type(&self) -> MapType {
        self.attr.map_type
    }

    /// The attributes it was created with.
    pub fn attr(&self) -> &MapAttr {
        &self.attr
    }

    /// Bytes a user-space value buffer must have (per-CPU maps: one rounded value per CPU).
    pub fn user_value_size(&self) -> usize {
        match &self.imp {
            MapImpl::PercpuArray(m) => m.user_value_size(),
            _ => self.attr.value_size as usize,
        }
    }

    /// The prog_array implementation, if this is one.
    pub(crate) fn as_prog_array(&self) -> Option<&ProgArray> {
        match &self.imp {
            MapImpl::ProgArray(a) => Some(a),
            _ => None,
        }
    }

    /// Whether this map type holds programs (`map_type_contains_progs`).
    pub fn contains_progs(&self) -> bool {
        matches!(self.imp, MapImpl::ProgArray(_))
    }

    /// A user handle was opened.
    pub(crate) fn user_get(&self) {
        self.usercnt.fetch_add(1, Ordering::Relaxed);
    }

    /// A user handle was closed; the last one clears a prog_array (`bpf_map_put_uref`).
    pub(crate) fn user_put(&self) {
        if self.usercnt.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let MapImpl::ProgArray(a) = &self.imp {
                a.clear();
            }
        }
    }

    fn check_key(&self, key: &[u8]) -> Result {
        if key.len() != self.attr.key_size as usize {
            Err(Errno::EINVAL)
        } else {
            Ok(())
        }
    }

    /// `BPF_MAP_LOOKUP_ELEM` for the map types whose values are plain bytes.
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result {
        self.check_key(key)?;
        if value.len() != self.user_value_size() {
            return Err(Errno::EINVAL);
        }
        match &self.imp {
            MapImpl::Array(m) => m.lookup(key, value),
            MapImpl::PercpuArray(m) => m.lookup(key, value),
            MapImpl::Hash(m) => m.lookup(key, value),
            MapImpl::ProgArray(m) => m.lookup_id(key, value),
            MapImpl::SockMap(m) => m.lookup(key, value),
        }
    }

    /// `BPF_MAP_UPDATE_ELEM` for the map types whose values are plain bytes. prog_array values
    /// are program handles and go through `syscall::map_update_elem`.
    pub fn update(&self, key: &[u8], value: &[u8], flags: UpdateFlags) -> Result {
        self.check_key(key)?;
        if value.len() != self.user_value_size() {
            return Err(Errno::EINVAL);
        }
        match &self.imp {
            MapImpl::Array(m) => m.update(key, value, flags),
            MapImpl::PercpuArray(m) => m.update(key, value, flags),
            MapImpl::Hash(m) => m.update(key, value, flags),
            MapImpl::ProgArray(_) => Err(Errno::EINVAL),
            MapImpl::SockMap(m) => m.update(key, value, flags),
        }
    }

    /// `BPF_MAP_DELETE_ELEM`.
    pub fn delete(&self, key: &[u8]) -> Result {
        self.check_key(key)?;
        match &self.imp {
            MapImpl::Array(_) | MapImpl::PercpuArray(_) => Err(Errno::EINVAL),
            MapImpl::Hash(m) => m.delete(key),
            MapImpl::ProgArray(m) => m.delete(array_index(key)?),
            MapImpl::SockMap(m) => m.delete(key),
        }
    }

    /// `BPF_MAP_GET_NEXT_KEY`: the key after `key`, or the first key when `key` is `None` (or,
    /// for a hash map, not present).
    pub fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result {
        if let Some(k) = key {
            self.check_key(k)?;
        }
        if next.len() != self.attr.key_size as usize {
            return Err(Errno::EINVAL);
        }
        match &self.imp {
            MapImpl::Hash(m) => m.get_next_key(key, next),
            MapImpl::SockMap(m) => m.get_next_key(key, next),
            _ => {
                let max = self.attr.max_entries;
                let n = match key.map(array_index).transpose()? {
                    Some(i) if i < max => {
                        if i == max - 1 {
                            return Err(Errno::ENOENT);
                        }
                        i + 1
                    }
                    _ => 0,
                };
                next.copy_from_slice(&n.to_ne_bytes());
                Ok(())
            }
        }
    }

    /// Fast path `bpf_map_lookup_elem`: a pointer to the value, or null.
    ///
    /// # Safety
    /// `key` points to `key_size` readable bytes, and the caller is inside an RCU read-side
    /// section on the CPU it holds (the pointer stays valid until the section ends).
    #[inline]
    pub unsafe fn lookup_elem_raw(&self, key: *const u8) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe {
            match &self.imp {
                MapImpl::Array(m) => m.lookup_raw(key),
                MapImpl::PercpuArray(m) => m.lookup_raw(key),
                MapImpl::Hash(m) => m.lookup_raw_outlined(key),
                MapImpl::SockMap(m) => m.lookup_raw(key),
                MapImpl::ProgArray(_) => core::ptr::null_mut(),
            }
        }
    }

    /// Fast path `bpf_map_update_elem`: 0 or a negative errno.
    ///
    /// # Safety
    /// `key` and `value` point to `key_size` and `value_size` readable bytes; the caller is
    /// inside an RCU read-side section.
    #[inline]
    pub unsafe fn update_elem_raw(&self, key: *const u8, value: *const u8, flags: u64) -> i64 {
        let Some(flags) = UpdateFlags::from_bits(flags) else {
            return Errno::EINVAL.to_neg();
        };
        // SAFETY: forwarded contract.
        let r = unsafe {
            match &self.imp {
                MapImpl::Array(m) => m.update_raw(key, value, flags),
                MapImpl::PercpuArray(m) => m.update_raw(key, value, flags),
                MapImpl::Hash(m) => m.update_raw(key, value, flags),
                // Programs may not update a prog_array (the verifier refuses the call).
                MapImpl::ProgArray(_) => Err(Errno::EINVAL),
                // Programs do not change socket maps in kbpf (`net::sockmap`).
                MapImpl::SockMap(_) => Err(Errno::EOPNOTSUPP),
            }
        };
        r.map_or_else(|e| e.to_neg(), |()| 0)
    }

    /// Fast path `bpf_map_delete_elem`: 0 or a negative errno.
    ///
    /// # Safety
    /// `key` points to `key_size` readable bytes; the caller is inside an RCU read-side section.
    #[inline]
    pub unsafe fn delete_elem_raw(&self, key: *const u8) -> i64 {
        // SAFETY: forwarded contract.
        let r = unsafe {
            match &self.imp {
                MapImpl::Hash(m) => m.delete_raw(key),
                // Programs do not change socket maps in kbpf (`net::sockmap`).
                MapImpl::SockMap(_) => Err(Errno::EOPNOTSUPP),
                _ => Err(Errno::EINVAL),
            }
        };
        r.map_or_else(|e| e.to_neg(), |()| 0)
    }
}

/// The u32 index of an array-like map's key.
pub(crate) fn array_index(key: &[u8]) -> Result<u32> {
    let b: [u8; 4] = key.try_into().map_err(|_| Errno::EINVAL)?;
    Ok(u32::from_ne_bytes(b))
}

impl core::fmt::Debug for Map {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Map")
            .field("id", &self.id)
            .field("attr", &self.attr)
            .finish()
    }
}
