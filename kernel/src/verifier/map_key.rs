//! The constant key of an array lookup: `bpf_map_lookup_elem` on an array with a key the
//! verifier knows to be in range cannot fail, so it returns a map-value pointer that is not
//! NULL and needs no check (`get_constant_map_key` and `can_elide_value_nullness` of
//! `kernel/bpf/verifier.c`, Linux 6.13 on).
//!
//! The key is known when it is on the stack at a fixed offset and either its bytes are all
//! known zeros (`*(u32 *)(r10 - 4) = 0`) or it is the spill of a constant scalar exactly as
//! wide as the key (`*(u32 *)(r10 - 8) = 1`, or `r1 = 1; *(u32 *)(r10 - 8) = r1`). A key
//! written otherwise (`*(u32 *)(r10 - 4) = 1` is data, not a spill: the offset is not a slot
//! start) is unknown, as in the kernel. As there, the spill's bytes are counted from the key's
//! first byte up to the end of the slot, and the constant is the whole spilled value.
//!
//! When the spilled value decided it, that slot's value matters: it becomes precise.

use super::explore::Explorer;
use super::state::{ByteKind, Reg, RegType, VState};
use crate::map::MapAttr;
use crate::uapi::MapType;
use crate::uapi::limits::MAX_BPF_STACK;

/// Whether a lookup in a map of type `t` can be known to succeed (`can_elide_value_nullness`).
pub(super) fn can_elide_value_nullness(t: MapType) -> bool {
    matches!(t, MapType::Array | MapType::PercpuArray)
}

/// Whether a lookup in `attr` with key `key` returns a value for sure.
pub(super) fn key_in_range(attr: &MapAttr, key: Option<u64>) -> bool {
    can_elide_value_nullness(attr.map_type) && key.is_some_and(|k| k < attr.max_entries as u64)
}

impl Explorer<'_> {
    /// The constant the key that `key` points to holds, if the verifier knows it
    /// (`get_constant_map_key`).
    pub(super) fn constant_map_key(&mut self, st: &VState, key: &Reg, size: u32) -> Option<u64> {
        let RegType::PtrToStack { frame } = key.ty else {
            return None;
        };
        let off = key.off as i64 + key.var.as_const()? as i64;
        let a = off + MAX_BPF_STACK as i64;
        if !(0..MAX_BPF_STACK as i64).contains(&a) {
            return None;
        }
        let (s, b) = ((a / 8) as usize, (a % 8) as usize);
        let slot = &st.frames[frame as usize].stack[s];
        let run = |k: ByteKind| slot.bytes[b..].iter().take_while(|&&x| x == k).count();
        if run(ByteKind::Zero) >= size as usize {
            return Some(0);
        }
        let spilled = slot.spill().filter(|r| r.ty == RegType::Scalar)?;
        if run(ByteKind::Spill) != size as usize {
            return None;
        }
        let v = spilled.var.as_const()?;
        // The program relies on the value: keep paths with another one from being pruned.
        self.prec_req
            .get_or_insert_with(Default::default)
            .set_slot(frame as usize, s);
        Some(v)
    }
}
