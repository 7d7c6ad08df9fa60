//! Tests of the prog-pack path of [`super::exec::ExecAllocator`] (`bpf_prog_pack` in
//! `kernel/bpf/core.c`): packing, running, poisoning and reuse, patching next to running
//! neighbours, and that no alias is ever left writable.

use super::exec::{ExecAllocator, INT3};
use super::pack::{CHUNK_SIZE, PACK_MAX_REQUEST, PACK_SIZE};
use kbpf::Errno;
use kbpf::host::ExecRegion;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// `mov eax, imm32; ret`
fn ret_imm(v: u32) -> [u8; 6] {
    let b = v.to_le_bytes();
    [0xb8, b[0], b[1], b[2], b[3], 0xc3]
}

/// `mov eax, imm32; ret` padded with `nop`s to `len` bytes.
fn ret_imm_padded(v: u32, len: usize) -> Vec<u8> {
    let mut code = ret_imm(v).to_vec();
    code.resize(len, 0x90);
    code
}

fn call(region: &ExecRegion) -> u32 {
    // SAFETY: every region these tests call is installed and holds `mov eax, imm32; ret` at
    // offset 0, a complete C-ABI function that touches nothing but eax.
    let f: extern "C" fn() -> u32 = unsafe { core::mem::transmute(region.rx) };
    f()
}

fn rx_bytes(region: &ExecRegion) -> &[u8] {
    // SAFETY: the executable view of a live region (or of a freed chunk of a pack that stays
    // mapped because other regions live in it) is readable for `len` bytes.
    unsafe { core::slice::from_raw_parts(region.rx, region.len) }
}

/// Permissions (`rwxp`/`rwxs` column) of every mapping in `/proc/self/maps` overlapping
/// `lo..hi`.
fn perms_overlapping(lo: usize, hi: usize) -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (a, b) = fields.next()?.split_once('-')?;
            let perms = fields.next()?;
            let a = usize::from_str_radix(a, 16).ok()?;
            let b = usize::from_str_radix(b, 16).ok()?;
            (a < hi && lo < b).then(|| perms.to_string())
        })
        .collect()
}

/// Every pack alias of `a` is mapped read-only and shared, nothing writable.
fn assert_aliases_read_only(a: &ExecAllocator) {
    let ranges = a.lock_packs().alias_ranges();
    assert!(!ranges.is_empty());
    for (lo, hi) in ranges {
        let perms = perms_overlapping(lo, hi);
        assert!(!perms.is_empty(), "pack alias not mapped");
        assert!(
            perms.iter().all(|p| p == "r--s"),
            "pack alias {lo:#x}..{hi:#x} has {perms:?}"
        );
    }
}

/// A write through `ptr` fails with `EFAULT` (the kernel writes for us: read(2) from a pipe).
fn assert_unwritable(ptr: *mut u8) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let buf = [0u8; 2];
    // SAFETY: writes 2 bytes into our pipe, then asks the kernel to read them into `ptr`, which
    // it checks for writability instead of faulting us.
    let n = unsafe {
        libc::write(fds[1], buf.as_ptr().cast(), 2);
        libc::read(fds[0], ptr.cast(), 2)
    };
    let err = std::io::Error::last_os_error().raw_os_error();
    // SAFETY: closing our own descriptors.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    assert_eq!((n, err), (-1, Some(libc::EFAULT)));
}

#[test]
fn small_images_share_a_pack_in_distinct_chunks() {
    let a = ExecAllocator::new();
    let regions: Vec<ExecRegion> = (0..40u32)
        .map(|i| a.install(&ret_imm(i)).expect("install"))
        .collect();
    assert_eq!(a.lock_packs().len(), 1);
    let (lo, hi) = a.lock_packs().alias_ranges()[0];
    for (i, r) in regions.iter().enumerate() {
        assert_eq!(r.len, CHUNK_SIZE);
        // First fit in an empty pack: chunk after chunk.
        assert_eq!(r.rx as usize, regions[0].rx as usize + i * CHUNK_SIZE);
        assert_eq!(r.rw as usize, regions[0].rw as usize + i * CHUNK_SIZE);
        assert!((lo..hi).contains(&(r.rw as usize)));
        assert_eq!(call(r), i as u32);
        assert_eq!(&rx_bytes(r)[..6], &ret_imm(i as u32));
        assert!(rx_bytes(r)[6..].iter().all(|&b| b == INT3), "tail not int3");
    }
    // Two chunks for 100 bytes.
    let big = a.install(&ret_imm_padded(7, 100)).unwrap();
    assert_eq!(big.len, 2 * CHUNK_SIZE);
    assert_eq!(call(&big), 7);
    assert_aliases_read_only(&a);
    a.free(big);
    for r in regions {
        a.free(r);
    }
    assert_eq!(a.lock_packs().len(), 1, "the last pack stays");
}

#[test]
fn freeing_poisons_and_chunks_are_reused() {
    let a = ExecAllocator::new();
    let r0 = a.install(&ret_imm(10)).unwrap();
    let r1 = a.install(&ret_imm(11)).unwrap();
    let r2 = a.install(&ret_imm(12)).unwrap();
    let (rx1, rw1, len1) = (r1.rx, r1.rw, r1.len);
    a.free(r1);
    let hole = ExecRegion {
        rx: rx1,
        rw: rw1,
        len: len1,
        cookie: 0,
    };
    assert!(
        rx_bytes(&hole).iter().all(|&b| b == INT3),
        "freed chunk not poisoned"
    );
    assert_aliases_read_only(&a);
    // Two chunks do not fit the one-chunk hole; one chunk does (first fit).
    let two = a.install(&ret_imm_padded(13, 65)).unwrap();
    assert_eq!(two.rx as usize, r2.rx as usize + CHUNK_SIZE);
    let one = a.install(&ret_imm(14)).unwrap();
    assert_eq!(one.rx, rx1);
    assert_eq!(call(&one), 14);
    assert_eq!((call(&r0), call(&r2), call(&two)), (10, 12, 13));
    // A freed region is no longer patchable or sealable.
    a.free(one);
    let stale = ExecRegion {
        rx: rx1,
        rw: rw1,
        len: len1,
        cookie: super::exec::pack_cookie(rx1 as usize, rw1 as usize, len1),
    };
    assert_eq!(a.text_poke(&stale, 0, &[0x90]), Err(Errno::EINVAL));
    assert_eq!(a.seal(&stale), Err(Errno::EINVAL));
    for r in [r0, r2, two] {
        a.free(r);
    }
    assert_aliases_read_only(&a);
}

#[test]
fn packs_grow_and_empty_packs_are_unmapped() {
    let a = ExecAllocator::new();
    let code = ret_imm_padded(3, PACK_MAX_REQUEST);
    let n = PACK_SIZE / PACK_MAX_REQUEST + 1;
    let regions: Vec<ExecRegion> = (0..n).map(|_| a.install(&code).unwrap()).collect();
    assert_eq!(a.lock_packs().len(), 2);
    assert!(
        regions
            .iter()
            .all(|r| r.len == PACK_MAX_REQUEST && call(r) == 3)
    );
    assert_aliases_read_only(&a);
    for r in regions {
        a.free(r);
    }
    assert_eq!(a.lock_packs().len(), 1);
}

#[test]
fn large_request_takes_the_dedicated_path() {
    let a = ExecAllocator::new();
    let code = ret_imm_padded(99, PACK_MAX_REQUEST + 1);
    let r = a.install(&code).unwrap();
    assert!(r.len >= code.len());
    assert_eq!(r.len % 4096, 0);
    assert_eq!(r.rx as usize % 4096, 0, "a dedicated mapping starts a page");
    assert_eq!(a.lock_packs().len(), 0, "no pack was made");
    assert_eq!(call(&r), 99);
    assert!(rx_bytes(&r)[code.len()..].iter().all(|&b| b == INT3));
    assert_unwritable(r.rw);
    a.text_poke(&r, 1, &[100]).unwrap();
    assert_eq!(call(&r), 100);
    a.free(r);
    assert_eq!(a.install(&[]).unwrap_err(), Errno::EINVAL);
}

/// One thread keeps calling a region while its neighbour in the same page is re-patched with the
/// multi-byte protocol and other threads call the patched one.
#[test]
fn text_poke_on_a_pack_region_while_a_neighbour_runs() {
    let a = ExecAllocator::new();
    let poked = a.install(&ret_imm(0x1111_1111)).unwrap();
    let neighbour = a.install(&ret_imm(0x5555_5555)).unwrap();
    assert_eq!(
        poked.rx as usize / 4096,
        neighbour.rx as usize / 4096,
        "same page"
    );
    assert_eq!(
        a.text_poke(&poked, poked.len - 1, &[1, 2]),
        Err(Errno::E2BIG)
    );
    let stop = AtomicBool::new(false);
    let calls = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(call(&neighbour), 0x5555_5555);
                calls.fetch_add(1, Ordering::Relaxed);
            }
        });
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let v = call(&poked);
                assert!(v == 0x1111_1111 || v == 0x2222_2222, "torn: {v:#x}");
            }
        });
        // Patch only once the neighbour is running, so the two overlap even when the machine
        // is loaded (bounded wait).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while calls.load(Ordering::Relaxed) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "neighbour thread never ran"
            );
            std::thread::yield_now();
        }
        for i in 0..200 {
            let v = if i % 2 == 0 { 0x2222_2222 } else { 0x1111_1111 };
            a.text_poke(&poked, 0, &ret_imm(v)).unwrap();
            if i == 0 {
                assert_aliases_read_only(&a);
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(calls.load(Ordering::Relaxed) > 0);
    assert_eq!(call(&poked), 0x1111_1111);
    a.text_poke(&poked, 1, &[0x42]).unwrap();
    assert_eq!(call(&poked), 0x1111_1142);
    assert_eq!(call(&neighbour), 0x5555_5555);
    assert_aliases_read_only(&a);
    assert_unwritable(poked.rw);
    assert_unwritable(neighbour.rw);
    a.free(poked);
    a.free(neighbour);
    assert_aliases_read_only(&a);
}

/// The installed code runs from a mapping that is executable and never writable.
#[test]
fn executable_view_is_never_writable() {
    let a = ExecAllocator::new();
    let r = a.install(&ret_imm(1)).unwrap();
    let lo = r.rx as usize;
    let perms = perms_overlapping(lo, lo + r.len);
    assert_eq!(perms, ["r-xs"]);
    a.free(r);
}
