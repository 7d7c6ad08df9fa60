//! The kbpf extension: the seed's `BPF_F_FIRST`/`BPF_F_LAST` pins (the v2 patch's
//! `bpf_mprog_head_tail` and the pin checks of its `bpf_mprog_add`/`_del`/`_replace`), on top
//! of the final rules. Only a bundle created with [`MprogApi::FirstLast`] accepts the bits.
//!
//! v2 semantics kept (kernel-scenarios.md §1.6, §1.8):
//! * `FIRST` pins a program at the head, `LAST` at the tail, for the life of the bundle. A second
//!   `FIRST` (or `LAST`) → `EBUSY`; `FIRST|LAST` only on an empty bundle (else `EBUSY`).
//! * `FIRST|AFTER`, `LAST|BEFORE`, and a pin together with a relative or a position rule →
//!   `EINVAL`.
//! * Other inserts never displace a pin: BEFORE the `FIRST` holder or AFTER the `LAST` holder →
//!   `EBUSY`; BEFORE without a relative lands right after the `FIRST` holder, and AFTER without
//!   a relative (or a plain append) right before the `LAST` holder.
//! * `REPLACE` sets the replaced slot's pins to exactly what it asks (the admin override);
//!   asking for a pin away from that end → `EACCES`. A link update keeps the slot's pins.
//! * Detach with `FIRST` (`LAST`) selects the head (tail); a named program must be there
//!   (`ENOENT`).
//!
//! What follows the final kernel even with the extension: the u64 revision, `ERANGE` for a full
//! bundle and conflicting BEFORE/AFTER rules, `EEXIST` before every position check.

use super::bundle::Bundle;
use super::{MprogApi, MprogFlags, Obj, Relative, same};
use crate::{Errno, Result};

const PINS: MprogFlags = MprogFlags::FIRST.union(MprogFlags::LAST);
const RULES: MprogFlags = MprogFlags::BEFORE.union(MprogFlags::AFTER);

fn head_pinned<P: Obj, L: Obj>(b: &Bundle<P, L>) -> bool {
    b.total() > 0 && b.item(0).flags.contains(MprogFlags::FIRST)
}

fn tail_pinned<P: Obj, L: Obj>(b: &Bundle<P, L>) -> bool {
    let total = b.total();
    total > 0 && b.item(total - 1).flags.contains(MprogFlags::LAST)
}

/// Where an insert with `FIRST` and/or `LAST` goes (`bpf_mprog_head_tail`).
pub(super) fn head_tail<P: Obj, L: Obj>(
    b: &Bundle<P, L>,
    flags: MprogFlags,
    rel: &Relative<P, L>,
) -> Result<usize> {
    if flags.intersects(RULES) || rel.prog.is_some() {
        return Err(Errno::EINVAL);
    }
    let total = b.total();
    if flags.contains(PINS) {
        return if total == 0 { Ok(0) } else { Err(Errno::EBUSY) };
    }
    if total == super::MPROG_MAX_PROGS {
        return Err(Errno::ERANGE);
    }
    if flags.contains(MprogFlags::FIRST) {
        if head_pinned(b) {
            return Err(Errno::EBUSY);
        }
        Ok(0)
    } else {
        if tail_pinned(b) {
            return Err(Errno::EBUSY);
        }
        Ok(total)
    }
}

/// Keeps an ordinary insert at `pos` off the pinned ends.
pub(super) fn clamp_insert<P: Obj, L: Obj>(
    b: &Bundle<P, L>,
    mut pos: usize,
    rel: &Relative<P, L>,
) -> Result<usize> {
    let total = b.total();
    if pos == 0 && head_pinned(b) {
        if rel.prog.is_some() {
            return Err(Errno::EBUSY);
        }
        pos = 1;
    }
    if pos == total && tail_pinned(b) {
        if rel.prog.is_some() {
            return Err(Errno::EBUSY);
        }
        pos = total - 1;
    }
    // A sole program pinned at both ends leaves no room.
    if (pos == 0 && head_pinned(b)) || (pos == total && tail_pinned(b)) {
        return Err(Errno::EBUSY);
    }
    Ok(pos)
}

/// The pins a plain `REPLACE` gives slot `idx` (`bpf_mprog_replace`'s flag toggling).
pub(super) fn replace_flags<P: Obj, L: Obj>(
    b: &Bundle<P, L>,
    idx: usize,
    flags: MprogFlags,
) -> Result<MprogFlags> {
    if b.api() == MprogApi::Final {
        return Ok(MprogFlags::empty());
    }
    let want = flags & PINS;
    if want.contains(MprogFlags::FIRST) && idx != 0 {
        return Err(Errno::EACCES);
    }
    if want.contains(MprogFlags::LAST) && idx + 1 != b.total() {
        return Err(Errno::EACCES);
    }
    Ok(want)
}

/// The slot a detach with `FIRST`/`LAST` selects (v2 `bpf_mprog_del`).
pub(super) fn detach_slot<P: Obj, L: Obj>(
    b: &Bundle<P, L>,
    prog: Option<&P>,
    flags: MprogFlags,
    rel: &Relative<P, L>,
) -> Result<usize> {
    if flags.intersects(RULES) || rel.prog.is_some() {
        return Err(Errno::EINVAL);
    }
    let total = b.total();
    let slot = if flags.contains(MprogFlags::FIRST) {
        if flags.contains(MprogFlags::LAST) && total != 1 {
            return Err(Errno::ENOENT);
        }
        0
    } else {
        total - 1
    };
    if prog.is_some_and(|p| !same(&b.item(slot).prog, p)) {
        return Err(Errno::ENOENT);
    }
    Ok(slot)
}
