//! `struct bpf_ct_opts` as the conntrack kfuncs read and write it (`nf_conntrack_bpf.c`), in
//! the final (16-byte) and the seed-era (12-byte) layouts:
//!
//! | offset | field | |
//! |---|---|---|
//! | 0 | `s32 netns_id` | in: -1 (`BPF_F_CURRENT_NETNS`) or a namespace id |
//! | 4 | `s32 error` | out: the negative errno of a failed call |
//! | 8 | `u8 l4proto` | in: `IPPROTO_TCP` or `IPPROTO_UDP` |
//! | 9 | `u8 dir` | out: the matched tuple's direction (lookup) |
//! | 10 | `u16 ct_zone_id` | in (16 bytes only; must be 0 with 12) |
//! | 12 | `u8 ct_zone_dir` | in/out (16 bytes only): 0 means both, and is written back as 3 |
//! | 13 | `u8 reserved[3]` | must be 0 |
//!
//! Any other size is `EINVAL` (`shared/research/decisions.md` #4). `error` is written only
//! where the caller's buffer covers it (`opts__sz` ≥ 8), so a short buffer is never written
//! past its end; the verifier has checked that `opts__sz` bytes are there.

use super::netns::CURRENT_NETNS;
use super::tuple::{DEFAULT_ZONE_DIR, Zone};
use crate::{Errno, Result};

/// `NF_BPF_CT_OPTS_SZ`.
pub const OPTS_SIZE: u32 = 16;
/// The seed era's size, still accepted.
pub const OPTS_SIZE_OLD: u32 = 12;

const OFF_NETNS_ID: usize = 0;
const OFF_ERROR: usize = 4;
const OFF_L4PROTO: usize = 8;
const OFF_DIR: usize = 9;
const OFF_ZONE_ID: usize = 10;
const OFF_ZONE_DIR: usize = 12;
const OFF_RESERVED: usize = 13;

/// A caller's `struct bpf_ct_opts`: its address and the size it claims.
#[derive(Clone, Copy, Debug)]
pub struct Opts {
    p: *mut u8,
    size: u32,
}

/// The input fields, once the size and reserved bytes are checked.
#[derive(Clone, Copy, Debug)]
pub struct OptsIn {
    /// `netns_id`.
    pub netns_id: i32,
    /// `l4proto`.
    pub l4proto: u8,
    /// `ct_zone_id` (0 in the 12-byte form).
    pub zone_id: u16,
    /// `ct_zone_dir` as given (16-byte form), or `None` (12-byte form: the default zone).
    pub zone_dir: Option<u8>,
}

impl Opts {
    /// The options at `p` (null allowed) of `size` bytes.
    ///
    /// # Safety
    /// `p` is null or points to `size` readable and writable bytes.
    #[inline]
    pub unsafe fn new(p: *mut u8, size: u32) -> Opts {
        Opts { p, size }
    }

    #[inline]
    fn read<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut b = [0u8; N];
        // SAFETY: callers read only inside the size they checked (`new`'s contract).
        unsafe { core::ptr::copy_nonoverlapping(self.p.add(off), b.as_mut_ptr(), N) };
        b
    }

    #[inline]
    fn write(&self, off: usize, bytes: &[u8]) {
        // SAFETY: callers write only inside the size they checked (`new`'s contract).
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.p.add(off), bytes.len()) };
    }

    /// Whether the pointer is null.
    #[inline]
    pub fn is_null(&self) -> bool {
        self.p.is_null()
    }

    /// The common checks, in the kernel's order: the size (16 or 12), then the reserved bytes
    /// of the 16-byte form or the zone id of the 12-byte form; all `EINVAL`. Reads the fields.
    #[inline]
    pub fn check(&self) -> Result<OptsIn> {
        let old = match self.size {
            OPTS_SIZE => false,
            OPTS_SIZE_OLD => true,
            _ => return Err(Errno::EINVAL),
        };
        let zone_id = u16::from_ne_bytes(self.read(OFF_ZONE_ID));
        let zone_dir = if old {
            if zone_id != 0 {
                return Err(Errno::EINVAL);
            }
            None
        } else {
            if self.read::<3>(OFF_RESERVED) != [0; 3] {
                return Err(Errno::EINVAL);
            }
            Some(self.read::<1>(OFF_ZONE_DIR)[0])
        };
        Ok(OptsIn {
            netns_id: i32::from_ne_bytes(self.read(OFF_NETNS_ID)),
            l4proto: self.read::<1>(OFF_L4PROTO)[0],
            zone_id,
            zone_dir,
        })
    }

    /// The zone the options select; a 16-byte form's `ct_zone_dir` of 0 means both directions
    /// and is written back so.
    #[inline]
    pub fn zone(&self, o: &OptsIn) -> Zone {
        match o.zone_dir {
            None => Zone::DEFAULT,
            Some(0) => {
                self.write(OFF_ZONE_DIR, &[DEFAULT_ZONE_DIR]);
                Zone::new(o.zone_id, DEFAULT_ZONE_DIR)
            }
            Some(d) => Zone::new(o.zone_id, d),
        }
    }

    /// Writes `dir` (after a successful lookup; the size is 12 or 16 by then).
    #[inline]
    pub fn set_dir(&self, dir: u8) {
        self.write(OFF_DIR, &[dir]);
    }

    /// Writes `-e` to `error`, if the buffer reaches that far.
    #[inline]
    pub fn set_error(&self, e: Errno) {
        if !self.p.is_null() && self.size as usize >= OFF_ERROR + 4 {
            self.write(OFF_ERROR, &(-e.to_errno()).to_ne_bytes());
        }
    }
}

/// Whether a `netns_id` is out of range (below `BPF_F_CURRENT_NETNS`).
#[inline]
pub fn netns_id_invalid(id: i32) -> bool {
    id < CURRENT_NETNS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(b: &mut [u8]) -> Opts {
        // SAFETY: the slice is readable and writable for its length.
        unsafe { Opts::new(b.as_mut_ptr(), b.len() as u32) }
    }

    #[test]
    fn sizes_and_reserved_bytes() {
        let mut b = [0xffu8, 0xff, 0xff, 0xff, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0];
        let o = opts(&mut b).check().unwrap();
        assert_eq!((o.netns_id, o.l4proto, o.zone_dir), (-1, 6, Some(0)));
        let mut c = b;
        c[15] = 1;
        assert_eq!(opts(&mut c).check().unwrap_err(), Errno::EINVAL);
        let mut d = [0u8; 12];
        d[10] = 1;
        assert_eq!(opts(&mut d).check().unwrap_err(), Errno::EINVAL);
        d[10] = 0;
        assert_eq!(opts(&mut d).check().unwrap().zone_dir, None);
        for n in [0usize, 4, 8, 11, 13, 20] {
            let mut e = [0u8; 24];
            assert_eq!(opts(&mut e[..n]).check().unwrap_err(), Errno::EINVAL);
        }
    }

    #[test]
    fn error_only_inside_the_buffer() {
        let mut b = [0u8; 24];
        opts(&mut b[..7]).set_error(Errno::EINVAL);
        assert_eq!(b, [0; 24]);
        opts(&mut b[..8]).set_error(Errno::EINVAL);
        assert_eq!(i32::from_ne_bytes(b[4..8].try_into().unwrap()), -22);
        // SAFETY: null is allowed and never written.
        unsafe { Opts::new(core::ptr::null_mut(), 16) }.set_error(Errno::EINVAL);
    }

    #[test]
    fn zone_dir_zero_is_written_back() {
        let mut b = [0u8; 16];
        b[10..12].copy_from_slice(&10u16.to_ne_bytes());
        let o = opts(&mut b);
        let i = o.check().unwrap();
        assert_eq!(o.zone(&i), Zone::new(10, DEFAULT_ZONE_DIR));
        assert_eq!(b[12], 3);
    }
}
