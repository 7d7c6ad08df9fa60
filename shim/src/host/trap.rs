//! The shim's `SIGTRAP` handler: the user-mode counterpart of the kernel's `poke_int3_handler`
//! (`arch/x86/kernel/alternative.c`).
//!
//! While [`super::exec`] patches an instruction it first writes `int3` over the instruction's
//! first byte. A thread that executes that byte meanwhile traps here. The kernel's handler
//! emulates the new instruction; this one instead waits until the patch is complete and then
//! restarts the thread at the patched instruction, so the thread runs the *new* instruction in
//! full — never a mix of old and new bytes. An `int3` this module did not place (a poisoned
//! freed image, JIT padding) is handed to the previous disposition (by default: a core dump).
//!
//! Everything the handler touches is a lock-free atomic, so it is async-signal-safe.

use kbpf::host::INT3;
use std::sync::Once;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A sequence count, odd while a patch is in progress (a seqlock: patches are serialized by
/// the text mutex, so there is one writer).
static POKE_SEQ: AtomicUsize = AtomicUsize::new(0);
/// The last few patched `rx` addresses: the handler runs after its thread trapped, by which time
/// the patch that placed the `int3` may be complete (and another one may have started).
static RECENT: [AtomicUsize; 32] = [const { AtomicUsize::new(0) }; 32];
static RECENT_NEXT: AtomicUsize = AtomicUsize::new(0);
/// How many threads were restarted after hitting a patching `int3` (a statistic).
static TRANSIENT_TRAPS: AtomicUsize = AtomicUsize::new(0);

/// Number of threads restarted after hitting a patching `int3` since start.
pub(super) fn transient_traps() -> usize {
    TRANSIENT_TRAPS.load(Ordering::Relaxed)
}

/// Installs the handler once per process. Returns false where it is unsupported.
pub(super) fn install() -> bool {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(imp::install);
    imp::SUPPORTED
}

/// Announces that an instruction is about to get an `int3` (before writing it).
pub(super) fn begin() {
    POKE_SEQ.fetch_add(1, Ordering::SeqCst);
}

/// Announces that the patch of the instruction at `rx` is complete and serialized.
pub(super) fn end(rx: usize) {
    let i = RECENT_NEXT.fetch_add(1, Ordering::Relaxed) % RECENT.len();
    RECENT[i].store(rx, Ordering::SeqCst);
    // A handler that sees the count even again also sees the address recorded in `RECENT`.
    POKE_SEQ.fetch_add(1, Ordering::SeqCst);
}

/// Decides what a trap after executing an `int3` at `addr` means: `true` if it was a transient
/// patching `int3` and the thread must restart at `addr`.
fn is_transient(addr: usize) -> bool {
    loop {
        let seq = POKE_SEQ.load(Ordering::SeqCst);
        if seq % 2 == 1 {
            // A patch is in progress (maybe of this very instruction): patches are short.
            core::hint::spin_loop();
            continue;
        }
        if !RECENT.iter().any(|r| r.load(Ordering::SeqCst) == addr) {
            return false;
        }
        // SAFETY: `addr` is the first byte of an instruction `text_poke` patched in a region
        // mapped readable (PROT_READ | PROT_EXEC), and this thread was executing it just now.
        let byte = unsafe { core::ptr::read_volatile(addr as *const u8) };
        if byte != INT3 {
            TRANSIENT_TRAPS.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        // Still `int3` with no patch in between: a real one. Otherwise a new patch started
        // after we looked; look again once it is done.
        if POKE_SEQ.load(Ordering::SeqCst) == seq {
            return false;
        }
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp {
    use super::*;

    pub(super) const SUPPORTED: bool = true;

    static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

    pub(super) fn install() {
        // SAFETY: an all-zero `sigaction` is a valid "default, no flags, empty mask" value.
        let mut action: libc::sigaction = unsafe { core::mem::zeroed() };
        action.sa_sigaction = on_sigtrap as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: as above; `previous` is written by `sigaction`.
        let mut previous: libc::sigaction = unsafe { core::mem::zeroed() };
        // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: both pointers are valid sigaction structs; the handler is async-signal-safe.
        let rc = unsafe { libc::sigaction(libc::SIGTRAP, &action, &mut previous) };
        if rc == 0 {
            let _ = PREVIOUS.set(previous);
        }
    }

    extern "C" fn on_sigtrap(
        _sig: libc::c_int,
        _info: *mut libc::siginfo_t,
        ctx: *mut libc::c_void,
    ) {
        let uc = ctx.cast::<libc::ucontext_t>();
        // SAFETY: with SA_SIGINFO the kernel passes the interrupted context as the third
        // argument; it is valid and writable for the duration of the handler.
        let rip = unsafe { &mut (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] };
        // `int3` is a trap: the saved RIP is the byte after it.
        let addr = (*rip as usize).wrapping_sub(1);
        if addr != 0 && is_transient(addr) {
            *rip = addr as libc::greg_t;
            return;
        }
        // Not ours: restore the previous disposition and re-raise; SIGTRAP is blocked while
        // this handler runs, so it is delivered with the old action as soon as we return.
        if let Some(previous) = PREVIOUS.get() {
            // SAFETY: `previous` is the action `sigaction` reported at install time.
            unsafe { libc::sigaction(libc::SIGTRAP, previous, core::ptr::null_mut()) };
        }
        // SAFETY: raise is async-signal-safe.
        unsafe { libc::raise(libc::SIGTRAP) };
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
mod imp {
    pub(super) const SUPPORTED: bool = false;
    pub(super) fn install() {}
}
