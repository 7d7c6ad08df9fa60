//! An installed JIT image in host executable memory (Linux `bpf_jit_binary_pack_alloc` /
//! `bpf_jit_binary_pack_finalize` / `bpf_jit_free` in `kernel/bpf/core.c`, with the host's
//! W^X [`ExecRegion`] from `Host::exec_install` in place of the prog pack; the shim host packs
//! small images into shared pages like `bpf_prog_pack_alloc`). Direct tail-call sites are
//! re-pointed in place with the host's `text_poke` (Linux `bpf_arch_poke_desc_update` →
//! `__bpf_arch_text_poke`).

use super::tailcall_direct::{DirectSite, SITE_LEN, site_bytes};
use alloc::vec::Vec;
use kbpf::Errno;
use kbpf::host::{self, ExecRegion};
use kbpf::jit::PokeSite;

/// The machine signature of a compiled program: R1, R2 and the run's tail-call counter in, R0
/// out (the same as `kbpf::jit::JitEntry`).
pub type JitFunc = unsafe extern "sysv64" fn(u64, u64, *mut u32) -> u64;

/// A compiled program, owning its executable memory (freed on drop).
#[derive(Debug)]
pub struct JitImage {
    region: Option<ExecRegion>,
    size: usize,
    offsets: Vec<u32>,
    /// The direct tail calls as the kernel sees them, and their fallbacks (same order).
    pokes: Vec<PokeSite>,
    slow: Vec<u32>,
}

impl JitImage {
    /// Installs `code` in host executable memory with [`kbpf::host::Host::exec_install`]
    /// (copied, slack filled with `int3`, sealed read + execute) and returns the image.
    pub(crate) fn install(
        code: &[u8],
        offsets: Vec<u32>,
        direct: Vec<DirectSite>,
    ) -> Result<JitImage, Errno> {
        let mut pokes = Vec::new();
        pokes.try_reserve_exact(direct.len())?;
        let mut slow = Vec::new();
        slow.try_reserve_exact(direct.len())?;
        for d in &direct {
            if d.site as usize + SITE_LEN > code.len() || d.slow as usize >= code.len() {
                return Err(Errno::EFAULT);
            }
            pokes.push(PokeSite {
                map: d.map,
                index: d.index,
                offset: d.site,
            });
            slow.push(d.slow);
        }
        let h = host::get();
        let region = h.exec_install(code)?;
        if region.len < code.len() {
            // A host breaking its contract: `code()` must be able to read `size` bytes.
            h.exec_free(region);
            return Err(Errno::ENOMEM);
        }
        Ok(JitImage {
            region: Some(region),
            size: code.len(),
            offsets,
            pokes,
            slow,
        })
    }

    /// The direct tail-call sites (see [`kbpf::jit::JitImage::poke_sites`]).
    pub fn poke_sites(&self) -> &[PokeSite] {
        &self.pokes
    }

    /// The current 5 bytes of direct site `site`.
    pub fn site_code(&self, site: usize) -> Option<[u8; SITE_LEN]> {
        let (r, s) = (self.region.as_ref()?, self.pokes.get(site)?);
        let mut b = [0u8; SITE_LEN];
        for (i, v) in b.iter_mut().enumerate() {
            // SAFETY: the site lies inside the sealed code (checked at install). Another
            // thread may poke *other* sites of this image meanwhile, so read only these bytes,
            // volatile, through the executable view; pokes of this site are serialized with us
            // by the caller (the prog_array's poke lock).
            *v = unsafe { r.rx.add(s.offset as usize + i).read_volatile() };
        }
        Some(b)
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
    /// main prologue (at most `entry() + TAIL_CALL_OFFSET`; see `frame`).
    pub fn tail_call_entry(&self) -> usize {
        self.entry() + self.offsets.first().map_or(0, |&o| o as usize)
    }

    /// Code size in bytes (without the `int3` slack up to the region's end).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Per instruction slot, the offset of its code from [`JitImage::entry`].
    pub fn insn_offsets(&self) -> &[u32] {
        &self.offsets
    }

    /// The installed code bytes (read through the executable view).
    pub fn code(&self) -> &[u8] {
        match &self.region {
            // SAFETY: the sealed region stays mapped readable for the image's life and holds at
            // least `size` bytes we wrote.
            Some(r) => unsafe { core::slice::from_raw_parts(r.rx, self.size) },
            None => &[],
        }
    }

    /// The entry point as a callable function.
    ///
    /// # Safety
    /// Calling it runs the program: its memory accesses and helper arguments must be valid (the
    /// verifier's or the trusted loader's promise), and the image must outlive the call. The
    /// third argument must point to a `u32` tail-call counter (the caller sets it, normally to
    /// 0) that stays valid and unshared for the call, and every program the run can tail-call
    /// into must stay alive for it.
    pub unsafe fn func(&self) -> JitFunc {
        // SAFETY: `entry()` is the start of sealed code whose main prologue follows the SysV
        // ABI with this signature.
        unsafe { core::mem::transmute::<usize, JitFunc>(self.entry()) }
    }
}

impl Drop for JitImage {
    fn drop(&mut self) {
        if let Some(r) = self.region.take() {
            host::get().exec_free(r);
        }
    }
}
