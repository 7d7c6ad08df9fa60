//! An installed JIT image in host executable memory (Linux `bpf_jit_binary_pack_alloc` /
//! `bpf_jit_binary_pack_finalize` / `bpf_jit_free` in `kernel/bpf/core.c`, with the host's
//! W^X [`ExecRegion`] from `Host::exec_install` in place of the prog pack; the shim host packs
//! small images into shared pages like `bpf_prog_pack_alloc`). Direct tail-call sites are
//! re-pointed in place with the host's `text_poke` (Linux `bpf_arch_poke_desc_update` →
//! `__bpf_arch_text_poke`).

use super::Emitted;
use super::tailcall_direct::{SITE_LEN, site_bytes};
use alloc::vec::Vec;
use kbpf::Errno;
use kbpf::host::{self, ExecRegion};
use kbpf::jit::PokeSite;

/// A compiled program, owning its executable memory (freed on drop).
#[derive(Debug)]
pub struct JitImage {
    region: Option<ExecRegion>,
    size: usize,
    offsets: Vec<u32>,
    tail_entry: u32,
    /// Offset of the test-run repeat runner (`super::repeat`), 0 when the image has none.
    runner: u32,
    /// The direct tail calls as the kernel sees them, and their fallbacks (same order).
    pokes: Vec<PokeSite>,
    slow: Vec<u32>,
}

impl JitImage {
    /// Installs emitted code in host executable memory with
    /// [`kbpf::host::Host::exec_install`] (copied, slack filled with `int3`, sealed read +
    /// execute) and returns the image.
    pub(crate) fn install(e: Emitted) -> Result<JitImage, Errno> {
        let meta = Meta::of(&e)?;
        let region = host::get().exec_install(&e.code)?;
        meta.finish(region, e.code.len(), e)
    }

    /// Installs position-dependent code: `emit(base)` produces the `len` bytes of an image
    /// whose first byte is at `base`, once the host has placed it (within reach of `near` if it
    /// can; [`kbpf::host::Host::exec_install_at`]). `emit`'s errors are returned as they are.
    pub(crate) fn install_at(
        len: usize,
        near: usize,
        mut emit: impl FnMut(usize) -> Result<Emitted, Errno>,
    ) -> Result<JitImage, Errno> {
        let mut placed = None;
        let h = host::get();
        let region = h.exec_install_at(len, near, &mut |base| {
            let mut e = emit(base)?;
            let meta = Meta::of(&e)?;
            let code = core::mem::take(&mut e.code);
            placed = Some((meta, e));
            Ok(code)
        })?;
        match placed {
            Some((meta, e)) => meta.finish(region, len, e),
            None => {
                // A host breaking its contract: it installed without asking for the code.
                h.exec_free(region);
                Err(Errno::EFAULT)
            }
        }
    }

    /// The direct tail-call sites (see [`kbpf::jit::JitImage::poke_sites`]).
    pub fn poke_sites(&self) -> &[PokeSite] {
        &self.pokes
    }

    /// The current 5 bytes of direct site `site`. Pokes of this site are serialized with the
    /// caller (the prog_array's poke lock), so they are the site's settled bytes.
    pub fn site_code(&self, site: usize) -> Option<[u8; SITE_LEN]> {
        let s = self.pokes.get(site)?;
        let mut b = [0u8; SITE_LEN];
        self.read_code(s.offset as usize, &mut b).then_some(b)
    }

    /// Copies the installed bytes from `offset` into `out`; `false` (nothing read) if they are
    /// not all inside the code.
    ///
    /// Another thread may `text_poke` a direct tail-call site of this image meanwhile, so the
    /// code is never borrowed as a `&[u8]`: each byte is read once, volatile, through the
    /// executable view, and a byte being poked reads as its old or its new value (a site being
    /// re-pointed may read as a mix of the two; only a caller holding the poke lock sees
    /// settled sites).
    fn read_code(&self, offset: usize, out: &mut [u8]) -> bool {
        let Some(r) = self.region.as_ref() else {
            return out.is_empty();
        };
        if offset
            .checked_add(out.len())
            .is_none_or(|end| end > self.size)
        {
            return false;
        }
        for (i, v) in out.iter_mut().enumerate() {
            // SAFETY: `offset + i < size`, and the sealed region stays mapped readable for the
            // image's life with at least `size` bytes (checked at install). No reference to
            // the bytes is made, and the read is volatile, so a concurrent `text_poke` of them
            // through the host's write alias is never assumed away.
            *v = unsafe { r.rx.add(offset + i).read_volatile() };
        }
        true
    }

    /// Re-points direct site `site` to `target` (0: fall through) with the host's `text_poke`
    /// (see [`kbpf::jit::JitImage::poke`]); does nothing if the bytes are already right.
    pub fn poke(&self, site: usize, target: usize) -> Result<(), Errno> {
        let (Some(r), Some(s), Some(cur)) = (
            self.region.as_ref(),
            self.pokes.get(site),
            self.site_code(site),
        ) else {
            return Err(Errno::EINVAL);
        };
        let rx = r.rx as usize;
        let off = s.offset as usize;
        let new = site_bytes(rx + off, rx + self.slow[site] as usize, target);
        if cur == new {
            return Ok(());
        }
        host::get().text_poke(r, off, &new)
    }

    /// Address of the program's first instruction (the main prologue).
    pub fn entry(&self) -> usize {
        self.region.as_ref().map_or(0, |r| r.rx as usize)
    }

    /// Where a tail call into this program jumps: its first instruction's code, past the
    /// main prologue (at most `entry() + TAIL_CALL_OFFSET`), or for a program without a frame
    /// its frameless tail entry (see `frame`).
    pub fn tail_call_entry(&self) -> usize {
        self.entry() + self.tail_entry as usize
    }

    /// The entry of the image's repeat runner (see `repeat`), 0 when it has none: code that
    /// runs the program `n` times with direct calls, entered with [`kbpf::jit::enter_runner`].
    pub fn repeat_entry(&self) -> usize {
        if self.runner == 0 {
            0
        } else {
            self.entry() + self.runner as usize
        }
    }

    /// Code size in bytes: the program's, without the repeat runner or the `int3` slack up to
    /// the region's end.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Per instruction slot, the offset of its code from [`JitImage::entry`].
    pub fn insn_offsets(&self) -> &[u32] {
        &self.offsets
    }

    /// A copy of the installed code, as it runs (read through the executable view the way
    /// [`JitImage::site_code`] reads a site, since direct sites may be poked meanwhile).
    /// `ENOMEM` if the copy cannot be allocated.
    pub fn code(&self) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        out.try_reserve_exact(self.size)?;
        out.resize(self.size, 0);
        if !self.read_code(0, &mut out) {
            return Err(Errno::EFAULT);
        }
        Ok(out)
    }

    /// Runs the program with R1 = `r1`, R2 = `r2` and the tail-call counter `tcc`, through
    /// [`kbpf::jit::enter`] (the convention of JIT'd code; see `frame`).
    ///
    /// # Safety
    /// Running the program: its memory accesses and helper arguments must be valid (the
    /// verifier's or the trusted loader's promise). `tcc` must point to a `u32` tail-call
    /// counter (the caller sets it, normally to 0) that stays valid and unshared for the call,
    /// and every program the run can tail-call into must stay alive for it.
    pub unsafe fn run(&self, r1: u64, r2: u64, tcc: *mut u32) -> u64 {
        // SAFETY: `entry()` is the start of this image's sealed code, compiled for `enter`'s
        // convention and alive for the call (we borrow `self`); the rest is the caller's.
        unsafe { kbpf::jit::enter(self.entry(), r1, r2, tcc) }
    }
}

/// The parts of a [`JitImage`] besides its region, checked against the code.
struct Meta {
    pokes: Vec<PokeSite>,
    slow: Vec<u32>,
}

impl Meta {
    fn of(e: &Emitted) -> Result<Meta, Errno> {
        let len = e.code.len();
        if e.tail_entry as usize >= len {
            return Err(Errno::EFAULT);
        }
        if e.runner
            .is_some_and(|r| r.prog_len > r.entry || r.entry as usize >= len)
        {
            return Err(Errno::EFAULT);
        }
        let mut pokes = Vec::new();
        pokes.try_reserve_exact(e.pokes.len())?;
        let mut slow = Vec::new();
        slow.try_reserve_exact(e.pokes.len())?;
        for d in &e.pokes {
            if d.site as usize + SITE_LEN > len || d.slow as usize >= len {
                return Err(Errno::EFAULT);
            }
            pokes.push(PokeSite {
                map: d.map,
                index: d.index,
                offset: d.site,
            });
            slow.push(d.slow);
        }
        Ok(Meta { pokes, slow })
    }

    /// The image owning `region`, which holds the `size` bytes of `e`'s code.
    fn finish(self, region: ExecRegion, size: usize, e: Emitted) -> Result<JitImage, Errno> {
        if region.len < size {
            // A host breaking its contract: `code()` must be able to read `size` bytes.
            host::get().exec_free(region);
            return Err(Errno::ENOMEM);
        }
        // The program's bytes end where the runner's padding begins.
        let (size, runner) = e
            .runner
            .map_or((size, 0), |r| (r.prog_len as usize, r.entry));
        Ok(JitImage {
            region: Some(region),
            size,
            offsets: e.offsets,
            tail_entry: e.tail_entry,
            runner,
            pokes: self.pokes,
            slow: self.slow,
        })
    }
}

impl Drop for JitImage {
    fn drop(&mut self) {
        if let Some(r) = self.region.take() {
            host::get().exec_free(r);
        }
    }
}
