//! The patchable program: an arena of instruction nodes and the edit operations on it.
//!
//! Mirrors the RFC's `struct bpf_list_insn` / `bpf_patchable_insn` (never merged into Linux)
//! with the review's changes: a direct `target` link, the aux data beside the instruction, an
//! original index with named markers, `replace` / `insert_before` instead of patch / pre-patch,
//! and an iterator that skips deleted nodes. The rules are in the parent module's doc.

use alloc::vec;
use alloc::vec::Vec;

use super::jump;
use crate::insn::Insn;
use crate::{Errno, Result};

/// "No node": the end of the list, or no target.
pub(super) const NIL: u32 = u32::MAX;
/// `target` marker of a deleted node (node ids stay below it).
pub(super) const DELETED: u32 = u32::MAX - 1;
/// Inserted slots per original slot the list reserves room for when it is built: constant
/// blinding, the heaviest rewrite, turns one instruction into three. Capacity beyond what is
/// used is only address space on a demand-paged host; a list that outgrows it doubles.
const INSERT_ESTIMATE: usize = 2;
/// Node ids must stay below the markers.
const MAX_NODES: usize = (u32::MAX - 2) as usize;

/// A node of a [`PatchList`]. The node of original instruction slot `i` is `NodeId(i)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(super) u32);

impl NodeId {
    /// The node of original instruction slot `idx` (valid in a list built from at least
    /// `idx + 1` slots; every operation checks its ids).
    pub const fn orig(idx: u32) -> NodeId {
        NodeId(idx)
    }

    /// The node's index in the list's arena.
    pub const fn index(self) -> u32 {
        self.0
    }
}

/// Where a node came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Original instruction slot `n` of the program the list was built from (also after it was
    /// replaced: a replaced node stays its original's first instruction).
    Original(u32),
    /// Part of an inserted buffer.
    Inserted,
    /// Deleted.
    Deleted,
}

/// The first and last node an edit created or kept, in list order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First node.
    pub first: NodeId,
    /// Last node.
    pub last: NodeId,
}

/// One instruction slot: 16 bytes, 4-aligned. The origin is implied by the id (below
/// `orig_len`: that original slot; above: inserted) and `target == DELETED`; the aux data lives
/// in a parallel `Vec` so that a list without aux data (`A = ()`) carries none, and the
/// backward links in another one that only the operations needing them build.
#[derive(Clone, Copy, Debug)]
pub(super) struct Node {
    pub(super) insn: Insn,
    pub(super) next: u32,
    /// The target node, `NIL`, or `DELETED` for a deleted node.
    pub(super) target: u32,
}

/// A program as a doubly linked list of instruction nodes, edited by rewrite passes and turned
/// back into an array once by [`PatchList::linearize`].
#[derive(Clone, Debug)]
pub struct PatchList<A> {
    pub(super) nodes: Vec<Node>,
    pub(super) aux: Vec<A>,
    /// The previous live node of each live node; empty until `insert_before` or `delete` first
    /// needs it (a replace-only pass, like constant blinding, never pays for it).
    prevs: Vec<u32>,
    pub(super) head: u32,
    tail: u32,
    pub(super) live: u32,
    pub(super) orig_len: u32,
}

impl<A: Default> PatchList<A> {
    /// Builds the list of `insns`, each with `A::default()` aux data.
    ///
    /// `EINVAL` if an `ld_imm64` is not a whole pair, or a jump or call targets an index outside
    /// the program or the second slot of an `ld_imm64`; `E2BIG` if the program is too long.
    pub fn new(insns: &[Insn]) -> Result<Self> {
        let mut aux = Vec::new();
        aux.resize_with(insns.len(), A::default);
        Self::build(insns, aux)
    }
}

impl<A> PatchList<A> {
    /// Builds the list of `insns` with their aux data (`EINVAL` if the lengths differ; the rest
    /// as [`PatchList::new`]).
    pub fn with_aux(insns: &[Insn], aux: Vec<A>) -> Result<Self> {
        if aux.len() != insns.len() {
            return Err(Errno::EINVAL);
        }
        Self::build(insns, aux)
    }

    fn build(insns: &[Insn], mut aux: Vec<A>) -> Result<Self> {
        let len = insns.len();
        if len >= MAX_NODES {
            return Err(Errno::E2BIG);
        }
        check_pairs(insns)?;
        // One reservation from an estimate instead of repeated doubling (each doubling copies
        // the list): room for [`INSERT_ESTIMATE`] inserted slots per original one.
        let cap = len.saturating_mul(1 + INSERT_ESTIMATE).min(MAX_NODES);
        let mut nodes = Vec::with_capacity(cap);
        aux.reserve(cap - len);
        for (i, insn) in insns.iter().enumerate() {
            let target = match jump::field(insn) {
                Some(f) => {
                    let t = i as i64 + 1 + jump::distance(insn, f);
                    if t < 0 || t >= len as i64 || jump::is_ld_imm64_tail(&insns[t as usize]) {
                        return Err(Errno::EINVAL);
                    }
                    t as u32
                }
                None => NIL,
            };
            nodes.push(Node {
                insn: *insn,
                next: if i + 1 < len { i as u32 + 1 } else { NIL },
                target,
            });
        }
        let (head, tail) = if len == 0 {
            (NIL, NIL)
        } else {
            (0, len as u32 - 1)
        };
        Ok(PatchList {
            nodes,
            aux,
            prevs: Vec::new(),
            head,
            tail,
            live: len as u32,
            orig_len: len as u32,
        })
    }

    /// Number of live instructions (slots) the list would linearize to.
    pub fn len(&self) -> usize {
        self.live as usize
    }

    /// Whether no instruction is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Length of the program the list was built from.
    pub fn orig_len(&self) -> usize {
        self.orig_len as usize
    }

    /// Reserves room for `additional` more nodes (inserted instructions).
    pub fn reserve(&mut self, additional: usize) {
        self.nodes.reserve(additional);
        self.aux.reserve(additional);
    }

    /// The node of original instruction slot `idx`, if the program had one.
    pub fn orig_node(&self, idx: u32) -> Option<NodeId> {
        (idx < self.orig_len).then_some(NodeId(idx))
    }

    fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id.0 as usize)
    }

    fn live_node(&self, id: NodeId) -> Result<&Node> {
        match self.node(id) {
            Some(n) if n.target != DELETED => Ok(n),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Whether `id` names a live instruction.
    pub fn is_live(&self, id: NodeId) -> bool {
        self.live_node(id).is_ok()
    }

    /// Where node `id` came from (`None` for an id this list never handed out).
    pub fn origin(&self, id: NodeId) -> Option<Origin> {
        self.node(id).map(|n| {
            if n.target == DELETED {
                Origin::Deleted
            } else if id.0 < self.orig_len {
                Origin::Original(id.0)
            } else {
                Origin::Inserted
            }
        })
    }

    /// The live instruction at `id`. Its jump field is stale: the target link decides.
    pub fn insn(&self, id: NodeId) -> Option<Insn> {
        self.live_node(id).ok().map(|n| n.insn)
    }

    /// The aux data of live node `id`.
    pub fn aux(&self, id: NodeId) -> Option<&A> {
        self.live_node(id).ok()?;
        Some(&self.aux[id.0 as usize])
    }

    /// The aux data of live node `id`, to update.
    pub fn aux_mut(&mut self, id: NodeId) -> Option<&mut A> {
        self.live_node(id).ok()?;
        Some(&mut self.aux[id.0 as usize])
    }

    /// The node live instruction `id` jumps to or calls, if it has a target. The target may be
    /// deleted: it then stands for the next live instruction.
    pub fn target(&self, id: NodeId) -> Option<NodeId> {
        let n = self.live_node(id).ok()?;
        (n.target != NIL).then_some(NodeId(n.target))
    }

    /// Points the jump or call at `id` to node `to` (a live node, or a deleted one meaning the
    /// next live instruction). `EINVAL` if `id` is not a live jump or call, `to` is no node, or
    /// `to` is the second slot of an `ld_imm64`.
    pub fn set_target(&mut self, id: NodeId, to: NodeId) -> Result<()> {
        let n = self.live_node(id)?;
        if jump::field(&n.insn).is_none() {
            return Err(Errno::EINVAL);
        }
        let t = self.node(to).ok_or(Errno::EINVAL)?;
        if t.target != DELETED && jump::is_ld_imm64_tail(&t.insn) {
            return Err(Errno::EINVAL);
        }
        self.nodes[id.0 as usize].target = to.0;
        Ok(())
    }

    /// The live instruction a jump to node `id` lands on: `id` itself if it is live, else the
    /// next live instruction after it (following the deleted nodes in between); `None` if
    /// there is none or `id` is no node.
    pub fn resolve(&self, id: NodeId) -> Option<NodeId> {
        let mut x = id.0;
        loop {
            let n = self.nodes.get(x as usize)?;
            if n.target != DELETED {
                return Some(NodeId(x));
            }
            x = n.next;
        }
    }

    /// The first live instruction.
    pub fn first(&self) -> Option<NodeId> {
        (self.head != NIL).then_some(NodeId(self.head))
    }

    /// The live instruction after live node `id`.
    pub fn next(&self, id: NodeId) -> Option<NodeId> {
        let n = self.live_node(id).ok()?.next;
        (n != NIL).then_some(NodeId(n))
    }

    /// The live instruction before live node `id`.
    /// Constant time once the list has done an `insert_before` or `delete`; before that, a walk
    /// from the first instruction.
    pub fn prev(&self, id: NodeId) -> Option<NodeId> {
        self.live_node(id).ok()?;
        let p = if self.prevs.is_empty() {
            let (mut p, mut at) = (NIL, self.head);
            while at != id.0 {
                p = at;
                at = self.nodes[at as usize].next;
            }
            p
        } else {
            self.prevs[id.0 as usize]
        };
        (p != NIL).then_some(NodeId(p))
    }

    /// Builds the backward links if they are not there yet.
    fn ensure_prevs(&mut self) {
        if !self.prevs.is_empty() || self.nodes.is_empty() {
            return;
        }
        let mut prevs = vec![NIL; self.nodes.len()];
        let (mut p, mut at) = (NIL, self.head);
        while at != NIL {
            prevs[at as usize] = p;
            p = at;
            at = self.nodes[at as usize].next;
        }
        self.prevs = prevs;
    }

    /// Iterates the live instructions in order (read-only; use [`PatchList::cursor`] to edit
    /// while walking).
    pub fn iter(&self) -> Iter<'_, A> {
        Iter {
            list: self,
            at: self.head,
        }
    }

    /// A cursor over the live instructions that tolerates edits between steps.
    pub fn cursor(&self) -> Cursor {
        Cursor { next: self.head }
    }

    /// Checks that every jump in `buf` targets the buffer or, when there is one (`after` is not
    /// `NIL`), the instruction after it.
    fn check_buffer(buf: &[Insn], after: u32) -> Result<()> {
        for (j, insn) in buf.iter().enumerate() {
            if let Some(f) = jump::field(insn) {
                let t = j as i64 + 1 + jump::distance(insn, f);
                if t < 0 || t > buf.len() as i64 || (t == buf.len() as i64 && after == NIL) {
                    return Err(Errno::EINVAL);
                }
            }
        }
        Ok(())
    }

    /// The target node of `buf[j]`: in the buffer (first node `first`, the others from `base`)
    /// or `after` it.
    fn buffer_target(buf: &[Insn], j: usize, first: u32, base: u32, after: u32) -> u32 {
        match jump::field(&buf[j]) {
            Some(f) => {
                let t = (j as i64 + 1 + jump::distance(&buf[j], f)) as usize;
                if t == buf.len() {
                    after
                } else {
                    node_of_buf(t, first, base)
                }
            }
            None => NIL,
        }
    }

    /// Replaces live instruction `id` by `buf`: `id` becomes `buf[0]` (keeping its origin and aux
    /// data, and receiving the jumps that targeted it), `buf[1..]` are new nodes after it with
    /// `A::default()`. Returns the span of the replacement. `EINVAL` if `id` is not live, `buf`
    /// is empty, or a jump in `buf` targets outside `buf` and the instruction after it.
    pub fn replace(&mut self, id: NodeId, buf: &[Insn]) -> Result<Span>
    where
        A: Default,
    {
        let after = self.live_node(id)?.next;
        if buf.is_empty() {
            return Err(Errno::EINVAL);
        }
        let base = self.alloc_check(buf.len() - 1)?;
        Self::check_buffer(buf, after)?;
        self.nodes.reserve(buf.len() - 1);
        self.aux.reserve(buf.len() - 1);
        let x = id.0;
        {
            let n = &mut self.nodes[x as usize];
            n.insn = buf[0];
            n.target = Self::buffer_target(buf, 0, x, base, after);
        }
        let mut prev = x;
        for j in 1..buf.len() {
            let me = base + j as u32 - 1;
            let next = if j + 1 < buf.len() { me + 1 } else { after };
            self.nodes.push(Node {
                insn: buf[j],
                next,
                target: Self::buffer_target(buf, j, x, base, after),
            });
            self.aux.push(A::default());
            if !self.prevs.is_empty() {
                self.prevs.push(prev);
            }
            prev = me;
        }
        if buf.len() > 1 {
            self.nodes[x as usize].next = base;
            if after == NIL {
                self.tail = prev;
            } else if !self.prevs.is_empty() {
                self.prevs[after as usize] = prev;
            }
        }
        self.live += buf.len() as u32 - 1;
        Ok(Span {
            first: id,
            last: NodeId(prev),
        })
    }

    /// Inserts `buf` in front of live instruction `id`, which keeps its instruction, aux data and
    /// the jumps that targeted it. The new nodes get `A::default()`. Returns their span. `EINVAL`
    /// if `id` is not live or is the second slot of an `ld_imm64`, `buf` is empty, or a jump in
    /// `buf` targets outside `buf` and `id`.
    pub fn insert_before(&mut self, id: NodeId, buf: &[Insn]) -> Result<Span>
    where
        A: Default,
    {
        let n = self.live_node(id)?;
        if buf.is_empty() || jump::is_ld_imm64_tail(&n.insn) {
            return Err(Errno::EINVAL);
        }
        let base = self.alloc_check(buf.len())?;
        Self::check_buffer(buf, id.0)?;
        self.ensure_prevs();
        let before = self.prevs[id.0 as usize];
        self.nodes.reserve(buf.len());
        self.aux.reserve(buf.len());
        for j in 0..buf.len() {
            let me = base + j as u32;
            self.nodes.push(Node {
                insn: buf[j],
                next: if j + 1 < buf.len() { me + 1 } else { id.0 },
                target: Self::buffer_target(buf, j, base, base + 1, id.0),
            });
            self.aux.push(A::default());
            self.prevs.push(if j > 0 { me - 1 } else { before });
        }
        let last = base + buf.len() as u32 - 1;
        if before == NIL {
            self.head = base;
        } else {
            self.nodes[before as usize].next = base;
        }
        self.prevs[id.0 as usize] = last;
        self.live += buf.len() as u32;
        Ok(Span {
            first: NodeId(base),
            last: NodeId(last),
        })
    }

    /// Deletes live instruction `id`; an `ld_imm64`'s first slot takes its second slot along.
    /// Jumps to a deleted node land on the next live instruction. `EINVAL` if `id` is not live
    /// or is the second slot of an `ld_imm64`.
    pub fn delete(&mut self, id: NodeId) -> Result<()> {
        let n = self.live_node(id)?;
        if jump::is_ld_imm64_tail(&n.insn) {
            return Err(Errno::EINVAL);
        }
        let pair = n.insn.is_ld_imm64()
            && n.next != NIL
            && jump::is_ld_imm64_tail(&self.nodes[n.next as usize].insn);
        let second = n.next;
        self.ensure_prevs();
        self.unlink(id.0);
        if pair {
            self.unlink(second);
        }
        Ok(())
    }

    fn unlink(&mut self, x: u32) {
        let p = self.prevs[x as usize];
        let n = {
            let node = &mut self.nodes[x as usize];
            node.target = DELETED;
            node.next
        };
        if p == NIL {
            self.head = n;
        } else {
            self.nodes[p as usize].next = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prevs[n as usize] = p;
        }
        self.live -= 1;
    }

    /// The id the next pushed node will get, after checking that `extra` more fit.
    fn alloc_check(&self, extra: usize) -> Result<u32> {
        if self.nodes.len() + extra >= MAX_NODES {
            return Err(Errno::E2BIG);
        }
        Ok(self.nodes.len() as u32)
    }

    /// Whether node `x` (an arena index) is deleted.
    #[inline]
    pub(super) fn is_deleted(&self, x: u32) -> bool {
        self.nodes[x as usize].target == DELETED
    }
}

/// The node of buffer position `t`: the replaced node itself for position 0, else `base + t - 1`.
#[inline]
fn node_of_buf(t: usize, first: u32, base: u32) -> u32 {
    if t == 0 { first } else { base + t as u32 - 1 }
}

/// Checks that every `ld_imm64` is a whole pair.
pub(super) fn check_pairs(insns: &[Insn]) -> Result<()> {
    for (i, insn) in insns.iter().enumerate() {
        let ok = if insn.is_ld_imm64() {
            insns.get(i + 1).is_some_and(jump::is_ld_imm64_tail)
        } else if jump::is_ld_imm64_tail(insn) {
            i > 0 && insns[i - 1].is_ld_imm64()
        } else {
            true
        };
        if !ok {
            return Err(Errno::EINVAL);
        }
    }
    Ok(())
}

/// Read-only iterator over the live instructions of a [`PatchList`].
pub struct Iter<'a, A> {
    list: &'a PatchList<A>,
    at: u32,
}

impl<A> Iterator for Iter<'_, A> {
    type Item = NodeId;

    fn next(&mut self) -> Option<NodeId> {
        if self.at == NIL {
            return None;
        }
        let id = self.at;
        self.at = self.list.nodes[id as usize].next;
        Some(NodeId(id))
    }
}

/// Walks the live instructions of a [`PatchList`] while a pass edits it (the review's
/// `foreach_list_insn`). Each step yields the instruction that followed the previous one when
/// it was yielded, skipping what was deleted since, so a replacement or an insertion made at
/// the yielded node is not visited.
#[derive(Clone, Copy, Debug)]
pub struct Cursor {
    next: u32,
}

impl Cursor {
    /// The next live instruction, or `None` at the end.
    pub fn next<A>(&mut self, list: &PatchList<A>) -> Option<NodeId> {
        let mut n = self.next;
        while n != NIL && list.is_deleted(n) {
            n = list.nodes[n as usize].next;
        }
        if n == NIL {
            self.next = NIL;
            return None;
        }
        self.next = list.nodes[n as usize].next;
        Some(NodeId(n))
    }
}
