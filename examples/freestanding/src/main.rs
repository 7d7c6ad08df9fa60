//! A freestanding host for kbpf: no std, no libc, no C runtime — only raw Linux system calls.
//!
//! It is what a unikernel or kernel-style host does to embed kbpf: provide an allocator, a
//! panic handler and a [`Host`] (one CPU, time, randomness, executable memory from `mmap` /
//! `mprotect`, never writable and executable at once), register it and the x86-64 JIT, then use
//! the syscall facade. It loads a JIT-compiled arithmetic program and a three-program JIT'd
//! tail-call chain (entry → slot 1 → slot 2, which returns 42), and exits with the chain's result
//! as its status: 42 on success, 1 if anything is off.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};
use core::arch::{asm, naked_asm};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use kbpf::host::{ExecRegion, Host};
use kbpf::insn::*;
use kbpf::syscall::{self, TestRun};
use kbpf::uapi::{MapType, ProgType, alu};
use kbpf::{Errno, MapAttr, ProgLoadAttr};

const SYS_MMAP: u64 = 9;
const SYS_MPROTECT: u64 = 10;
const SYS_MUNMAP: u64 = 11;
const SYS_CLOCK_GETTIME: u64 = 228;
const SYS_EXIT_GROUP: u64 = 231;
const PROT_READ: u64 = 1;
const PROT_WRITE: u64 = 2;
const PROT_EXEC: u64 = 4;
const MAP_PRIVATE: u64 = 2;
const MAP_ANONYMOUS: u64 = 0x20;
const PAGE: usize = 4096;

/// A raw Linux x86-64 system call.
///
/// # Safety
/// The caller passes arguments valid for system call `nr`.
unsafe fn syscall6(nr: u64, a: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: the Linux x86-64 system call ABI: number in rax, arguments in rdi, rsi, rdx, r10,
    // r8, r9; rcx and r11 are clobbered. Argument validity is the caller's contract.
    unsafe {
        asm!("syscall", inlateout("rax") nr as i64 => ret, in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
             in("r10") a[3], in("r8") a[4], in("r9") a[5], lateout("rcx") _, lateout("r11") _,
             options(nostack));
    }
    ret
}

fn exit_process(status: i32) -> ! {
    // SAFETY: exit_group takes a plain integer and does not return.
    unsafe { syscall6(SYS_EXIT_GROUP, [status as u64, 0, 0, 0, 0, 0]) };
    loop {
        core::hint::spin_loop();
    }
}

// The C memory primitives the compiler emits calls to. A kernel provides its own; so does this
// host, with x86 string instructions (which the compiler cannot turn back into calls to these).

/// `memcpy`.
///
/// # Safety
/// C's contract: `n` bytes readable at `src`, writable at `dst`, not overlapping.
#[unsafe(no_mangle)]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: `rep movsb` copies rcx bytes from rsi to rdi forwards (DF is clear per the ABI);
    // the ranges are valid by the caller's contract.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dst
}

/// `memmove`: like `memcpy`, for overlapping ranges.
///
/// # Safety
/// C's contract: `n` bytes readable at `src` and writable at `dst`.
#[unsafe(no_mangle)]
unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize).wrapping_add(n) {
        // SAFETY: copying forwards is correct when dst starts before src or after its end.
        return unsafe { memcpy(dst, src, n) };
    }
    if n > 0 {
        // SAFETY: copy backwards (DF set for the copy and cleared again, as the ABI requires)
        // from the last byte; the ranges are valid by the caller's contract.
        unsafe {
            asm!("std", "rep movsb", "cld", inout("rcx") n => _, inout("rdi") dst.add(n - 1) => _,
                 inout("rsi") src.add(n - 1) => _, options(nostack));
        }
    }
    dst
}

/// `memset`.
///
/// # Safety
/// C's contract: `n` bytes writable at `dst`.
#[unsafe(no_mangle)]
unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: `rep stosb` stores al into rcx bytes at rdi forwards; valid by the contract.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dst
}

/// `memcmp`.
///
/// # Safety
/// C's contract: `n` bytes readable at both pointers.
#[unsafe(no_mangle)]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: `i < n`; volatile reads keep the loop a loop rather than a call to memcmp.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return x as i32 - y as i32;
        }
    }
    0
}

/// `bcmp`: zero when equal.
///
/// # Safety
/// As `memcmp`.
#[unsafe(no_mangle)]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract.
    unsafe { memcmp(a, b, n) }
}

/// A bump allocator over a static arena: enough for a short-lived host; freeing is a no-op.
struct Bump;

const ARENA: usize = 32 << 20;
#[repr(align(4096))]
#[expect(
    dead_code,
    reason = "the bytes are reached through the arena's address only"
)]
struct Arena([u8; ARENA]);
static mut HEAP: Arena = Arena([0; ARENA]);
static NEXT: AtomicUsize = AtomicUsize::new(0);

// SAFETY: `alloc` hands out disjoint, aligned ranges of the arena (the bump pointer only grows,
// by compare-and-swap) and null when it is exhausted; `dealloc` never touches memory.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = core::ptr::addr_of_mut!(HEAP) as usize;
        let mut cur = NEXT.load(Ordering::Relaxed);
        loop {
            let start = (base + cur).next_multiple_of(layout.align()) - base;
            let Some(end) = start.checked_add(layout.size()).filter(|&e| e <= ARENA) else {
                return core::ptr::null_mut();
            };
            match NEXT.compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => cur = now,
            }
        }
    }

    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
}

#[global_allocator]
static ALLOC: Bump = Bump;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    exit_process(101)
}

/// The prebuilt `alloc` refers to the unwinding personality routine; with `panic = "abort"`
/// nothing unwinds, so it is never called.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

/// Likewise, the prebuilt `alloc`'s landing pads resume unwinding through `_Unwind_Resume`
/// (`format!` reaches one); with `panic = "abort"` no landing pad runs, so this never does.
#[unsafe(no_mangle)]
extern "C" fn _Unwind_Resume() -> ! {
    exit_process(102)
}

/// One CPU, raw-syscall time and memory.
struct FreestandingHost;

static RNG: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);

impl Host for FreestandingHost {
    fn nr_cpus(&self) -> usize {
        1
    }

    fn cpu_enter(&self) -> usize {
        // One thread on one CPU: entering is nesting, and the CPU is always 0.
        0
    }

    fn cpu_exit(&self, _: usize) {}

    fn ktime_ns(&self) -> u64 {
        let mut ts = [0u64; 2];
        // SAFETY: CLOCK_MONOTONIC (1) into a valid `struct timespec`.
        unsafe { syscall6(SYS_CLOCK_GETTIME, [1, ts.as_mut_ptr() as u64, 0, 0, 0, 0]) };
        ts[0] * 1_000_000_000 + ts[1]
    }

    fn random_u32(&self) -> u32 {
        let mut x = RNG.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        RNG.store(x, Ordering::Relaxed);
        (x >> 32) as u32
    }

    fn exec_alloc(&self, len: usize) -> kbpf::Result<ExecRegion> {
        let len = len.max(1).next_multiple_of(PAGE);
        let args = [
            0,
            len as u64,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            u64::MAX,
            0,
        ];
        // SAFETY: an anonymous private mapping; the kernel picks the address.
        let p = unsafe { syscall6(SYS_MMAP, args) };
        if p < 0 {
            return Err(Errno::ENOMEM);
        }
        Ok(ExecRegion {
            rx: p as *const u8,
            rw: p as *mut u8,
            len,
            cookie: 0,
        })
    }

    fn exec_seal(&self, r: &ExecRegion) -> kbpf::Result {
        // SAFETY: `r` is a mapping from `exec_alloc`; from now on it is read + execute only.
        let e = unsafe {
            syscall6(
                SYS_MPROTECT,
                [r.rx as u64, r.len as u64, PROT_READ | PROT_EXEC, 0, 0, 0],
            )
        };
        if e < 0 { Err(Errno::EFAULT) } else { Ok(()) }
    }

    fn text_poke(&self, r: &ExecRegion, offset: usize, bytes: &[u8]) -> kbpf::Result {
        if offset
            .checked_add(bytes.len())
            .is_none_or(|end| end > r.len)
        {
            return Err(Errno::EINVAL);
        }
        // One CPU: no one else can be executing the page while it is briefly writable (and not
        // executable) here.
        // SAFETY: `r` is our mapping; the range is inside it (checked above).
        unsafe {
            if syscall6(
                SYS_MPROTECT,
                [r.rx as u64, r.len as u64, PROT_READ | PROT_WRITE, 0, 0, 0],
            ) < 0
            {
                return Err(Errno::EFAULT);
            }
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), r.rw.add(offset), bytes.len());
        }
        self.exec_seal(r)
    }

    fn exec_free(&self, r: ExecRegion) {
        // SAFETY: the caller guarantees no CPU executes the region any more.
        unsafe { syscall6(SYS_MUNMAP, [r.rx as u64, r.len as u64, 0, 0, 0, 0]) };
    }
}

static HOST: FreestandingHost = FreestandingHost;

fn load(insns: &[Insn]) -> kbpf::Result<u32> {
    syscall::prog_load(&ProgLoadAttr::new(ProgType::RawBuffer, insns))
}

/// `bpf_tail_call(ctx, map, slot)`, then `return fallback`.
fn tail_calling(map: u32, slot: i32, fallback: i32) -> [Insn; 6] {
    let m = ld_map_fd(2, map);
    [
        m[0],
        m[1],
        mov64_imm(3, slot),
        tail_call(),
        mov64_imm(0, fallback),
        exit(),
    ]
}

fn run() -> kbpf::Result<u64> {
    kbpf::host::register(&HOST);
    kbpf::jit::register(&kbpf_jit::X86_JIT);

    // A program without tail calls must come out JIT-compiled and compute 6 * 7; 6 comes back
    // from helper 5 (which returns its argument). This host maps code wherever `mmap` puts it
    // (`exec_install_at`'s default), usually beyond `rel32` reach of the helpers in this
    // binary's text, and the JIT then calls them position-independently.
    let arith = load(&[
        mov64_imm(1, 6),
        call_helper(5),
        alu64_imm(alu::MUL, 0, 7),
        exit(),
    ])?;
    let prog = syscall::prog_get(arith)?;
    let r = syscall::prog_test_run(
        arith,
        &mut TestRun {
            data: &mut [],
            repeat: 1,
            ..Default::default()
        },
    )?;
    if !prog.jited() || r.retval != 42 {
        return Err(Errno::EPROTO);
    }

    // The chain: entry → slot 1 → slot 2 (tries empty slot 3, then returns 42).
    let map = syscall::map_create(&MapAttr::new(MapType::ProgArray, 4, 4, 4))?;
    let entry = load(&tail_calling(map, 1, 1))?;
    let middle = load(&tail_calling(map, 2, 2))?;
    let last = load(&tail_calling(map, 3, 42))?;
    syscall::map_update_elem(map, &1u32.to_ne_bytes(), &middle.to_ne_bytes(), 0)?;
    syscall::map_update_elem(map, &2u32.to_ne_bytes(), &last.to_ne_bytes(), 0)?;
    // The chain runs as native code: JIT'd tail calls jump from image to image.
    for fd in [entry, middle, last] {
        if !syscall::prog_get(fd)?.jited() {
            return Err(Errno::EPROTO);
        }
    }
    Ok(syscall::prog_test_run(
        entry,
        &mut TestRun {
            data: &mut [],
            repeat: 1,
            ..Default::default()
        },
    )?
    .retval)
}

#[unsafe(no_mangle)]
extern "C" fn start_rust() -> ! {
    match run() {
        Ok(r0) => exit_process(r0 as i32),
        Err(_) => exit_process(1),
    }
}

/// The process entry point: align the stack as a call would, then enter Rust.
#[unsafe(no_mangle)]
#[unsafe(naked)]
extern "C" fn _start() -> ! {
    naked_asm!("xor ebp, ebp", "and rsp, -16", "call start_rust", "ud2")
}
