//! A frame's stack slots, allocated only as deep as the program has written
//! (`bpf_func_state::stack` with `allocated_stack`, grown by `grow_stack_state` in
//! `kernel/bpf/verifier.c`).
//!
//! Slot `i` (0..[`STACK_SLOTS`]) covers offsets `-(512 - 8 i)` .. `-(512 - 8 i) + 8` from the
//! frame pointer, so the slots a program uses first are the high indices. Only the top
//! `len` slots are stored; reading a slot below them gives [`Slot::INVALID`], writing one
//! grows the storage. Stored states stay small for programs that use little stack (every
//! checkpoint keeps a copy of each frame). Equality and hashing are over the logical view:
//! an unallocated slot equals an allocated unwritten one.

use super::state::{STACK_SLOTS, Slot};
use alloc::vec::Vec;
use core::ops::{Index, IndexMut};

/// The stack slots of one frame.
#[derive(Clone, Debug, Default)]
pub struct Stack {
    /// The top `top.len()` slots: `top[k]` is slot `STACK_SLOTS - top.len() + k`.
    top: Vec<Slot>,
}

impl Stack {
    /// An unwritten stack.
    pub const fn new() -> Stack {
        Stack { top: Vec::new() }
    }

    /// Index of the first allocated slot.
    fn base(&self) -> usize {
        STACK_SLOTS - self.top.len()
    }

    /// Bytes allocated (`allocated_stack`): the deepest access so far, rounded up to a slot.
    pub fn allocated(&self) -> usize {
        self.top.len() * 8
    }

    /// Makes sure `bytes` bytes below the frame pointer are allocated (`grow_stack_state`).
    pub fn grow(&mut self, bytes: usize) {
        let slots = bytes.div_ceil(8).min(STACK_SLOTS);
        if slots > self.top.len() {
            let _ = &mut self[STACK_SLOTS - slots];
        }
    }

    /// The allocated slots, mutably (the others are unwritten).
    pub fn iter_mut(&mut self) -> core::slice::IterMut<'_, Slot> {
        self.top.iter_mut()
    }

    /// The allocated slots with their indices, lowest address first (the others are
    /// unwritten).
    pub fn iter_allocated(&self) -> impl Iterator<Item = (usize, &Slot)> {
        let base = self.base();
        self.top.iter().enumerate().map(move |(k, s)| (base + k, s))
    }

    /// Every slot, lowest address first.
    pub fn iter(&self) -> impl Iterator<Item = &Slot> {
        (0..STACK_SLOTS).map(move |i| &self[i])
    }

    /// Pairs of slots of `self` and `other` that either has allocated (the rest are
    /// unwritten in both).
    pub fn zip_allocated<'s>(
        &'s self,
        other: &'s Stack,
    ) -> impl Iterator<Item = (usize, (&'s Slot, &'s Slot))> {
        let from = self.base().min(other.base());
        (from..STACK_SLOTS).map(move |i| (i, (&self[i], &other[i])))
    }
}

impl Index<usize> for Stack {
    type Output = Slot;

    fn index(&self, i: usize) -> &Slot {
        let base = self.base();
        if i < base {
            assert!(i < STACK_SLOTS, "stack slot {i} out of range");
            &Slot::INVALID
        } else {
            &self.top[i - base]
        }
    }
}

impl IndexMut<usize> for Stack {
    fn index_mut(&mut self, i: usize) -> &mut Slot {
        assert!(i < STACK_SLOTS, "stack slot {i} out of range");
        let base = self.base();
        if i < base {
            let grow = base - i;
            self.top
                .splice(0..0, core::iter::repeat_n(Slot::INVALID, grow));
        }
        let base = self.base();
        &mut self.top[i - base]
    }
}

impl PartialEq for Stack {
    fn eq(&self, other: &Stack) -> bool {
        self.zip_allocated(other).all(|(_, (a, b))| a == b)
    }
}

impl Eq for Stack {}

impl core::hash::Hash for Stack {
    fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
        // Unwritten slots below the last written one hash like absent ones: skip them all.
        for (i, s) in self.top.iter().enumerate() {
            if *s != Slot::INVALID {
                (self.base() + i).hash(h);
                s.hash(h);
            }
        }
    }
}
