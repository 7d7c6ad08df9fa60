//! The list-based instruction patcher: every rewrite pass edits one list, which is linearized
//! once at the end.
//!
//! Linux patches one instruction at a time (`bpf_patch_insn_single()` and `bpf_adj_branches()`
//! in `kernel/bpf/core.c`, `bpf_patch_insn_data()` and `verifier_remove_insns()` in
//! `kernel/bpf/verifier.c`). Each patch moves the tail of the program and walks every jump, so
//! N patches cost O(N²). This module follows the unmerged RFC "bpf: accelerate insn patching
//! speed" (Jiong Wang, July 2019) as reworked in Andrii Nakryiko's review: instructions become
//! nodes of a [`PatchList`], jumps and calls hold a direct link to their target node, each pass
//! replaces, inserts and deletes nodes in O(buffer length), and one [`PatchList::linearize`]
//! assigns the final indices and rewrites every offset. The kernel's one-at-a-time patcher is
//! kept as [`baseline`] for tests and benchmarks.
//!
//! # Data model
//!
//! The list is an arena (`Vec`) of nodes linked by `u32` indices. The original program's nodes
//! are allocated in one go, so the node of original slot `i` is `NodeId` `i`
//! ([`PatchList::orig_node`]); inserted buffers are appended. Each node holds one instruction
//! slot (an `ld_imm64` is two nodes, as it is two slots in the kernel: constant blinding
//! rewrites each half separately), its forward link and a `target` link when the instruction
//! is a jump or call (or a deleted marker) — 16 bytes. Its [`Origin`] follows from its id
//! (original slots first, inserted nodes after) and the deleted marker. The verifier's aux
//! data `A` (any `Default + Clone` type; `()` for the core layer) lives in a parallel `Vec`
//! (adopted as is from [`PatchList::with_aux`]), and the backward links in another one that is
//! only built when an `insert_before` or `delete` first needs it. Building reserves room for
//! two inserted slots per original one (constant blinding's ratio), so a typical pass never
//! copies the list to grow it.
//!
//! Instructions with a target are the ones `bpf_adj_branches()` relocates: every `JMP`/`JMP32`
//! class instruction except `exit`, helper and kfunc calls and the internal tail call, using
//! the 16-bit `off`, except `ja32` (`JMP32|JA`) and BPF-to-BPF calls (`src_reg` =
//! `BPF_PSEUDO_CALL`), which use the 32-bit `imm`; plus `ld_imm64` with `BPF_PSEUDO_FUNC`, whose
//! `imm` is a relative function offset.
//!
//! # Operations and where jumps land
//!
//! - [`PatchList::replace`] replaces one instruction by a buffer. The node keeps its id, its
//!   origin and its aux data and becomes the buffer's **first** instruction; the rest are new
//!   nodes with `A::default()`. **A jump to a replaced instruction lands on the first
//!   instruction of its replacement** (Linux's semantics; the verifier's fix-ups rely on it).
//! - [`PatchList::insert_before`] inserts a buffer in front of an instruction, which keeps its
//!   instruction and aux data. **A jump to that instruction still lands on it**, skipping the
//!   inserted code (the RFC's prepend, for prologues). A pass that wants jumps to run the new
//!   code replaces with `[new…, original]` instead.
//! - [`PatchList::delete`] deletes an instruction (both slots of an `ld_imm64`). **A jump to a
//!   deleted instruction lands on the next live instruction** (the one that followed it when
//!   it was deleted, or that one's successor if it was deleted too). A jump left with no live
//!   instruction after it makes [`PatchList::linearize`] fail with `EINVAL`.
//! - **Jumps inside an inserted buffer** are read relative to the buffer: `buf[j]` with offset
//!   `off` targets `buf[j + 1 + off]`; `j + 1 + off == buf.len()` means the instruction after
//!   the buffer (for `replace`, the node that followed the replaced one; for `insert_before`,
//!   the instruction it was inserted before). Any other target is `EINVAL`. To point a new jump
//!   outside its buffer (constant blinding rewrites `if r1 == K goto L` as three instructions,
//!   the last jumping to `L`), call [`PatchList::set_target`] with the node returned by
//!   [`PatchList::target`].
//! - [`PatchList::cursor`] walks the live instructions in order while the list is edited: after
//!   `replace` it continues after the replacement, after `insert_before` or `delete` with the
//!   next original neighbour, so a pass never revisits its own output.
//!
//! A pass looks like this:
//!
//! ```
//! use kbpf::insn::{alu64_imm, exit, mov64_imm};
//! use kbpf::patch::{LineInfo, PatchList};
//! use kbpf::uapi::alu;
//!
//! let mut list: PatchList<()> = PatchList::new(&[mov64_imm(0, 1), exit()])?;
//! let mut cur = list.cursor();
//! while let Some(id) = cur.next(&list) {
//!     if list.insn(id).is_some_and(|i| i.imm == 1) {
//!         list.replace(id, &[mov64_imm(0, 0), alu64_imm(alu::ADD, 0, 1)])?;
//!     }
//! }
//! let mut line_info: Vec<LineInfo> = Vec::new();
//! let insns = list.linearize(&mut line_info, None)?;
//! assert_eq!(insns, [mov64_imm(0, 0), alu64_imm(alu::ADD, 0, 1), exit()]);
//! # Ok::<(), kbpf::Errno>(())
//! ```
//!
//! # Linearize
//!
//! One function for both layers; the verifier-only parts (aux data, subprogram starts, function
//! info) are the optional [`VerifierEnv`] argument, as the review asked. It assigns final
//! indices, rewrites every jump's field from its target link (a value that no longer fits its
//! 16- or 32-bit field is `ERANGE`, never truncated), checks that every `ld_imm64` is still a
//! whole pair and that no jump lands on its second slot (`EINVAL`), and remaps the index-valued
//! side tables. Subprogram starts and line-info entries name an original instruction and move
//! like a jump to it; each covers the instructions up to the next one, and:
//! - an entry whose instructions were all deleted (it resolves to where the next entry does, or
//!   past the end) is dropped: a subprogram with its function-info entry; of line-info entries
//!   landing on one instruction the last one is kept (as the kernel's
//!   `bpf_adj_linfo_after_remove()` keeps the last removed entry for the next live instruction
//!   when that one has none);
//! - the first surviving subprogram and line-info entry start at 0, so code inserted before
//!   the first instruction belongs to them (the kernel requires both to start at 0);
//! - function info is set to the surviving subprograms' starts.
//!
//! On any error nothing is written and the list is unchanged.

mod jump;
mod linearize;
mod list;

#[doc(hidden)]
pub mod baseline;

pub use linearize::VerifierEnv;
pub use list::{Cursor, Iter, NodeId, Origin, PatchList, Span};

/// One `struct bpf_line_info` (uapi): source position of the instructions from `insn_off` on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct LineInfo {
    /// First instruction this entry covers.
    pub insn_off: u32,
    /// File name, as an offset into the BTF string section.
    pub file_name_off: u32,
    /// Source line text, as an offset into the BTF string section.
    pub line_off: u32,
    /// Line number (upper 22 bits) and column (lower 10 bits).
    pub line_col: u32,
}

/// One `struct bpf_func_info` (uapi): the BTF type of the function starting at `insn_off`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct FuncInfo {
    /// First instruction of the function (a subprogram start).
    pub insn_off: u32,
    /// BTF id of its `FUNC` type.
    pub type_id: u32,
}

static_assertions::assert_eq_size!(LineInfo, [u32; 4]);
static_assertions::assert_eq_size!(FuncInfo, [u32; 2]);
