//! Abstract machine state: registers, per-frame stacks, the call stack.
//!
//! Mirrors `struct bpf_reg_state`, `struct bpf_stack_state`, `struct bpf_func_state` and
//! `struct bpf_verifier_state` of `include/linux/bpf_verifier.h`, and the comparison of
//! `states_equal`/`regsafe`/`stacksafe` in `kernel/bpf/verifier.c` (simplified: see
//! [`VState::subsumes`]).

use super::bounds::Scalar;
pub use super::stack::Stack;
use crate::kfunc::KernelStruct;
use crate::uapi::limits::{MAX_BPF_REG, MAX_BPF_STACK};
use alloc::vec::Vec;

/// What a register holds (`enum bpf_reg_type`, the subset tracked so far).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegType {
    /// Never written on this path (`NOT_INIT`).
    NotInit,
    /// A number (`SCALAR_VALUE`).
    Scalar,
    /// The program's context (`PTR_TO_CTX`).
    PtrToCtx,
    /// Into a frame's stack (`PTR_TO_STACK`); `frame` is the frame number.
    PtrToStack {
        /// Index of the frame whose stack this points into.
        frame: u8,
    },
    /// A map from `ld_imm64` (`CONST_PTR_TO_MAP`).
    ConstPtrToMap,
    /// Into a map value (`PTR_TO_MAP_VALUE`).
    PtrToMapValue,
    /// A map value or NULL (`PTR_TO_MAP_VALUE | PTR_MAYBE_NULL`).
    PtrToMapValueOrNull,
    /// Into the packet's data (`PTR_TO_PACKET`): see [`super::pkt`].
    PtrToPacket,
    /// Into the packet's metadata area before the data (`PTR_TO_PACKET_META`).
    PtrToPacketMeta,
    /// The end of the packet's data (`PTR_TO_PACKET_END`): only compared, never moved or read.
    PtrToPacketEnd,
    /// A full socket, `struct bpf_sock` to the program (`PTR_TO_SOCKET`).
    PtrToSocket,
    /// A socket or NULL (`PTR_TO_SOCKET | PTR_MAYBE_NULL`).
    PtrToSocketOrNull,
    /// The common part of a socket, `struct bpf_sock` less the fields only a full socket has
    /// (`PTR_TO_SOCK_COMMON`).
    PtrToSockCommon,
    /// A socket's common part or NULL (`PTR_TO_SOCK_COMMON | PTR_MAYBE_NULL`).
    PtrToSockCommonOrNull,
    /// A trusted kernel object of a named type (`PTR_TO_BTF_ID | PTR_TRUSTED`).
    PtrToBtfId(&'static KernelStruct),
    /// A kernel object or NULL (`PTR_TO_BTF_ID | PTR_MAYBE_NULL`).
    PtrToBtfIdOrNull(&'static KernelStruct),
    /// A BPF function of the program, by its first instruction (`PTR_TO_FUNC`).
    PtrToFunc(u32),
}

impl RegType {
    /// The kernel's name for the type in messages (`reg_type_str`).
    pub fn name(self) -> &'static str {
        match self {
            RegType::NotInit => "?",
            RegType::Scalar => "scalar",
            RegType::PtrToCtx => "ctx",
            RegType::PtrToStack { .. } => "fp",
            RegType::ConstPtrToMap => "map_ptr",
            RegType::PtrToMapValue => "map_value",
            RegType::PtrToMapValueOrNull => "map_value_or_null",
            RegType::PtrToPacket => "pkt",
            RegType::PtrToPacketMeta => "pkt_meta",
            RegType::PtrToPacketEnd => "pkt_end",
            RegType::PtrToSocket => "sock",
            RegType::PtrToSocketOrNull => "sock_or_null",
            RegType::PtrToSockCommon => "sock_common",
            RegType::PtrToSockCommonOrNull => "sock_common_or_null",
            RegType::PtrToBtfId(_) => "ptr_",
            RegType::PtrToBtfIdOrNull(_) => "ptr_or_null_",
            RegType::PtrToFunc(_) => "func",
        }
    }

    /// Whether this points to a socket (`type_is_sk_pointer`): read-only, no arithmetic, no
    /// atomics.
    pub fn is_sk_pointer(self) -> bool {
        matches!(self, RegType::PtrToSocket | RegType::PtrToSockCommon)
    }

    /// Whether this is a pointer type.
    pub fn is_pointer(self) -> bool {
        !matches!(self, RegType::NotInit | RegType::Scalar)
    }
}

/// One register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reg {
    /// The type.
    pub ty: RegType,
    /// Fixed offset of a pointer.
    pub off: i32,
    /// The value of a scalar, or the variable offset of a pointer.
    pub var: Scalar,
    /// For `_OR_NULL` pointers: registers with the same id are null-checked together.
    pub id: u32,
    /// For map pointers and values: the map's handle (the `ld_imm64` immediate).
    pub map: u32,
    /// For pointers to acquired objects: the id of the reference they hold (`ref_obj_id`),
    /// shared by every copy; 0 for unreferenced values.
    pub ref_obj_id: u32,
    /// For packet pointers: bytes from the pointer's base (fixed offset 0, variable part
    /// included) proven inside the packet by a comparison with the end (`range`); negative
    /// for a pointer known to be at or beyond the end ([`super::pkt::AT_PKT_END`],
    /// [`super::pkt::BEYOND_PKT_END`]).
    pub range: i32,
}

impl Reg {
    /// An uninitialized register.
    pub const NOT_INIT: Reg = Reg {
        ty: RegType::NotInit,
        off: 0,
        var: Scalar::UNKNOWN,
        id: 0,
        map: 0,
        ref_obj_id: 0,
        range: 0,
    };

    /// A scalar with the given bounds.
    pub const fn scalar(var: Scalar) -> Reg {
        Reg {
            ty: RegType::Scalar,
            off: 0,
            var,
            id: 0,
            map: 0,
            ref_obj_id: 0,
            range: 0,
        }
    }

    /// A pointer of `ty` with fixed offset `off` and no variable part.
    pub const fn ptr(ty: RegType, off: i32) -> Reg {
        Reg {
            ty,
            off,
            var: Scalar::konst(0),
            id: 0,
            map: 0,
            ref_obj_id: 0,
            range: 0,
        }
    }

    /// Whether `self` (an explored state's register) covers every value `cur` can hold
    /// (`regsafe`, simplified: scalars by range inclusion, pointers by equality).
    pub fn subsumes(&self, cur: &Reg) -> bool {
        self.subsumes_prec(cur, true, &mut IdMap::default())
    }

    /// [`Reg::subsumes`] where `precise` says whether the value of a scalar `self` matters:
    /// an imprecise scalar covers any scalar. A precise one also needs the same delta and a
    /// link id that `ids` renames consistently (`check_scalar_ids`): what a branch on a linked
    /// register taught the others must hold in `cur` too.
    pub fn subsumes_prec(&self, cur: &Reg, precise: bool, ids: &mut IdMap) -> bool {
        use super::linked::ADD_CONST;
        match (self.ty, cur.ty) {
            (RegType::NotInit, _) => true,
            (RegType::Scalar, RegType::Scalar) if ids.exact_scalars => {
                self.var == cur.var && self.off == cur.off && ids.check_scalar(self.id, cur.id)
            }
            (RegType::Scalar, RegType::Scalar) => {
                !precise
                    || (self.var.includes(&cur.var)
                        && self.id & ADD_CONST == cur.id & ADD_CONST
                        && (self.id & ADD_CONST == 0 || self.off == cur.off)
                        && ids.check_scalar(self.id, cur.id))
            }
            // `regsafe` for packet pointers: the old range no larger (an at/beyond-the-end
            // mark only equal to itself), same fixed offset and id, the old variable part
            // covering the new one.
            (RegType::PtrToPacket, RegType::PtrToPacket)
            | (RegType::PtrToPacketMeta, RegType::PtrToPacketMeta) => {
                (if self.range < 0 || cur.range < 0 {
                    self.range == cur.range
                } else {
                    self.range <= cur.range
                }) && self.off == cur.off
                    && self.id == cur.id
                    && self.var.includes(&cur.var)
            }
            _ => self == cur,
        }
    }
}

/// A consistent renaming of an explored state's scalar ids to the current state's, built while
/// two states are compared (`struct bpf_idmap`, `check_ids`, `check_scalar_ids`).
#[derive(Debug, Default)]
pub struct IdMap {
    pairs: Vec<(u64, u64)>,
    tmp: u64,
    /// Scalars must be equal, precise or not (`explore_alu_limits`).
    pub exact_scalars: bool,
}

impl IdMap {
    /// Whether old id `old` may stand for current id `cur`: an id 0 (unlinked) is a fresh id
    /// of its own, and no id may stand for two.
    pub fn check_scalar(&mut self, old: u32, cur: u32) -> bool {
        let mut fresh = |id: u32| {
            if id != 0 {
                return id as u64;
            }
            self.tmp += 1;
            (1 << 32) + self.tmp
        };
        let (old, cur) = (fresh(old), fresh(cur));
        for &(o, c) in &self.pairs {
            if o == old {
                return c == cur;
            }
            if c == cur {
                return false;
            }
        }
        self.pairs.push((old, cur));
        true
    }
}

/// The contents of one byte of stack (`enum bpf_stack_slot_type`: `STACK_INVALID`,
/// `STACK_MISC`, `STACK_ZERO`, `STACK_SPILL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteKind {
    /// Never written.
    Invalid,
    /// Written with some data.
    Misc,
    /// Known to be zero.
    Zero,
    /// Part of a spilled register ([`Slot::reg`]).
    Spill,
}

/// One 8-byte stack slot (`struct bpf_stack_state`): the kind of each byte and, when the
/// slot's first bytes hold a spilled register, that register.
///
/// A store of a register (a scalar of any size, a pointer only whole) or, for `st`, of an
/// immediate at the slot's start spills it: its `size` bytes become [`ByteKind::Spill`]
/// (`save_register_state`). Any other store into a slot holding a spill turns every written
/// byte of it into data (`scrub_spilled_slot`). `reg` is [`Reg::NOT_INIT`] whenever byte 0 is
/// not a spill, so that equal slots compare and hash equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Byte kinds; index 0 is the lowest address (offset `-8 (n + 1)` of slot `n` from the top).
    pub bytes: [ByteKind; 8],
    /// The spilled register (`spilled_ptr`).
    pub reg: Reg,
}

impl Slot {
    /// An unwritten slot.
    pub const INVALID: Slot = Slot {
        bytes: [ByteKind::Invalid; 8],
        reg: Reg::NOT_INIT,
    };

    /// The kind of byte `i`.
    #[inline]
    pub fn byte(&self, i: usize) -> ByteKind {
        self.bytes[i]
    }

    /// The spilled register, if the slot holds one (`is_spilled_reg`).
    #[inline]
    pub fn spill(&self) -> Option<&Reg> {
        (self.bytes[0] == ByteKind::Spill).then_some(&self.reg)
    }

    /// The spilled register, mutably.
    #[inline]
    pub fn spill_mut(&mut self) -> Option<&mut Reg> {
        (self.bytes[0] == ByteKind::Spill).then_some(&mut self.reg)
    }

    /// A register spilled whole (all 8 bytes).
    #[inline]
    pub fn spill64(&self) -> Option<&Reg> {
        (self.spill_size() == 8).then_some(&self.reg)
    }

    /// How many bytes the spill covers (0 when there is none).
    pub fn spill_size(&self) -> usize {
        self.bytes
            .iter()
            .take_while(|&&b| b == ByteKind::Spill)
            .count()
    }

    /// Spills `reg` with a store of `size` bytes at the slot's start; the slot's other bytes
    /// keep what they held, a former spill's bytes becoming data (`save_register_state`,
    /// `mark_stack_slot_misc`).
    pub fn spill_reg(&mut self, reg: Reg, size: usize) {
        for (i, b) in self.bytes.iter_mut().enumerate() {
            if i < size {
                *b = ByteKind::Spill;
            } else if *b == ByteKind::Spill {
                *b = ByteKind::Misc;
            }
        }
        self.reg = reg;
    }

    /// A store that is not a spill into this slot: a spill in it is destroyed, every byte of it
    /// that was written becoming data (`scrub_spilled_slot`).
    pub fn scrub_spill(&mut self) {
        if self.spill().is_some() {
            for b in &mut self.bytes {
                if *b != ByteKind::Invalid {
                    *b = ByteKind::Misc;
                }
            }
        }
        self.reg = Reg::NOT_INIT;
    }

    /// Byte `i` written with data of kind `k` by a store that is not a spill.
    pub fn write_byte(&mut self, i: usize, k: ByteKind) {
        self.scrub_spill();
        self.bytes[i] = k;
    }

    /// The scalar a load of the whole slot would give, when that is all the slot is: a scalar
    /// spilled whole, or data in every byte (an unknown value) (`scalar_reg_for_stack`).
    fn as_scalar(&self) -> Option<Reg> {
        if let Some(r) = self.spill64() {
            return (r.ty == RegType::Scalar).then_some(*r);
        }
        self.bytes
            .iter()
            .all(|&b| b == ByteKind::Misc)
            .then_some(Reg::scalar(Scalar::UNKNOWN))
    }

    /// Whether every load from `cur` is covered by the same load from `self`, an explored
    /// state's slot (`stacksafe` for one slot); `precise`: whether the spilled scalar's value
    /// matters.
    fn subsumes(&self, cur: &Slot, precise: bool, ids: &mut IdMap) -> bool {
        if self.bytes.iter().all(|&b| b == ByteKind::Invalid) {
            return true;
        }
        if let (Some(a), Some(b)) = (self.as_scalar(), cur.as_scalar()) {
            return a.subsumes_prec(&b, precise, ids);
        }
        for (&o, &c) in self.bytes.iter().zip(&cur.bytes) {
            match (o, c) {
                (ByteKind::Invalid, _) | (ByteKind::Misc, ByteKind::Zero) => {}
                (o, c) if o != c => return false,
                _ => {}
            }
        }
        match (self.spill(), cur.spill()) {
            (Some(a), Some(b)) => a.subsumes_prec(b, precise, ids),
            _ => true,
        }
    }
}

/// Number of 8-byte slots in a frame's stack.
pub const STACK_SLOTS: usize = MAX_BPF_STACK / 8;

/// One function frame (`struct bpf_func_state`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    /// R0..R10.
    pub regs: [Reg; MAX_BPF_REG],
    /// Slot `i` covers offsets `-(512 - 8 i)` .. `-(512 - 8 i) + 8` from the frame pointer
    /// (allocated as deep as written: [`Stack`]).
    pub stack: Stack,
    /// The instruction that called into this frame (`None` for the main program).
    pub callsite: Option<usize>,
    /// Index of the subprogram this frame runs.
    pub subprog: usize,
    /// Callback iterations this frame has started ([`super::callback`]); only the
    /// infinite-loop check sees it (`callback_unroll_depth`): successive iterations are
    /// progress, not a loop, while pruning ignores the count.
    pub callback_depth: u32,
}

impl Frame {
    /// A fresh frame for `subprog`: every register uninitialized but R10, stack unwritten.
    pub fn new(frameno: u8, subprog: usize, callsite: Option<usize>) -> Frame {
        let mut regs = [Reg::NOT_INIT; MAX_BPF_REG];
        regs[10] = Reg::ptr(RegType::PtrToStack { frame: frameno }, 0);
        Frame {
            regs,
            stack: Stack::new(),
            callsite,
            subprog,
            callback_depth: 0,
        }
    }
}

/// The whole abstract state of one path (`struct bpf_verifier_state`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VState {
    /// The call stack, innermost last.
    pub frames: Vec<Frame>,
    /// References held on this path, oldest first (`bpf_verifier_state::refs`).
    pub refs: Vec<RefState>,
}

/// One acquired reference (`struct bpf_reference_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RefState {
    /// The reference id (the `ref_obj_id` of the registers holding it).
    pub id: u32,
    /// The instruction that acquired it.
    pub insn: usize,
}

impl VState {
    /// The innermost frame.
    #[inline]
    pub fn cur(&self) -> &Frame {
        self.frames.last().expect("a state has a frame")
    }

    /// The innermost frame, mutably.
    #[inline]
    pub fn cur_mut(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("a state has a frame")
    }

    /// A register of the innermost frame.
    #[inline]
    pub fn reg(&self, r: u8) -> &Reg {
        &self.cur().regs[r as usize]
    }

    /// A register of the innermost frame, mutably.
    #[inline]
    pub fn reg_mut(&mut self, r: u8) -> &mut Reg {
        &mut self.cur_mut().regs[r as usize]
    }

    /// Whether every path from `cur` is covered by the already-verified paths from `self`:
    /// same call stack, each register and stack slot of `self` at least as general.
    ///
    /// Simplifications against the kernel: no liveness tracking (a register that is dead
    /// still has to match), pointers must match exactly (including ids), and a spilled
    /// scalar only covers fully initialized bytes. Every scalar counts as precise here; see
    /// [`VState::subsumes_prec`].
    pub fn subsumes(&self, cur: &VState) -> bool {
        self.subsumes_prec(cur, &super::precision::Precise::ALL, false)
    }

    /// [`VState::subsumes`] comparing only the scalars `marks` says are precise in `self`
    /// (`states_equal` with `regsafe`'s `!rold->precise` rule); `exact_scalars`: every scalar
    /// must be equal instead.
    pub(super) fn subsumes_prec(
        &self,
        cur: &VState,
        marks: &super::precision::Precise,
        exact_scalars: bool,
    ) -> bool {
        let ids = &mut IdMap {
            exact_scalars,
            ..IdMap::default()
        };
        self.frames.len() == cur.frames.len()
            && self.refs == cur.refs
            && self
                .frames
                .iter()
                .zip(&cur.frames)
                .enumerate()
                .all(|(f, (a, b))| {
                    a.callsite == b.callsite
                        && a.regs
                            .iter()
                            .zip(&b.regs)
                            .enumerate()
                            .all(|(r, (x, y))| x.subsumes_prec(y, marks.reg(f, r), ids))
                        && a.stack
                            .zip_allocated(&b.stack)
                            .all(|(s, (x, y))| x.subsumes(y, marks.slot(f, s), ids))
                })
    }

    /// Applies `f` to every register and spilled register of every frame.
    pub fn for_each_reg(&mut self, mut f: impl FnMut(&mut Reg)) {
        for fr in &mut self.frames {
            fr.regs.iter_mut().for_each(&mut f);
            for s in fr.stack.iter_mut() {
                if let Some(r) = s.spill_mut() {
                    f(r);
                }
            }
        }
    }
}
