//! Map semantics through the syscall facade and from programs: array, per-CPU array, hash.

use kbpf::insn::assemble;
use kbpf::syscall::{self, TestRun};
use kbpf::uapi::{MapType, ProgType};
use kbpf::{Errno, MapAttr, ProgLoadAttr};

fn setup() {
    kbpf_shim::host::install();
}

fn k(i: u32) -> [u8; 4] {
    i.to_ne_bytes()
}

#[test]
fn array_map() {
    setup();
    let m = syscall::map_create(&MapAttr::new(MapType::Array, 4, 8, 4)).unwrap();
    let mut v = [0u8; 8];
    syscall::map_lookup_elem(m, &k(3), &mut v).unwrap();
    assert_eq!(v, [0; 8], "zero-initialized");
    syscall::map_update_elem(m, &k(3), &7u64.to_ne_bytes(), 0).unwrap();
    syscall::map_lookup_elem(m, &k(3), &mut v).unwrap();
    assert_eq!(u64::from_ne_bytes(v), 7);
    assert_eq!(syscall::map_update_elem(m, &k(4), &v, 0), Err(Errno::E2BIG));
    assert_eq!(
        syscall::map_update_elem(m, &k(1), &v, 1),
        Err(Errno::EEXIST),
        "BPF_NOEXIST"
    );
    assert_eq!(
        syscall::map_update_elem(m, &k(1), &v, 8),
        Err(Errno::EINVAL),
        "unknown flag"
    );
    assert_eq!(
        syscall::map_lookup_elem(m, &k(4), &mut v),
        Err(Errno::ENOENT)
    );
    assert_eq!(syscall::map_delete_elem(m, &k(1)), Err(Errno::EINVAL));
    let mut next = [0u8; 4];
    syscall::map_get_next_key(m, None, &mut next).unwrap();
    assert_eq!(next, k(0));
    syscall::map_get_next_key(m, Some(&k(2)), &mut next).unwrap();
    assert_eq!(next, k(3));
    assert_eq!(
        syscall::map_get_next_key(m, Some(&k(3)), &mut next),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        syscall::map_create(&MapAttr::new(MapType::Array, 8, 8, 4)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        syscall::map_create(&MapAttr::new(MapType::Array, 4, 8, 0)),
        Err(Errno::EINVAL)
    );
}

#[test]
fn hash_map() {
    setup();
    let m = syscall::map_create(&MapAttr::new(MapType::Hash, 8, 4, 3)).unwrap();
    let key = |i: u64| i.to_ne_bytes();
    let mut v = [0u8; 4];
    assert_eq!(
        syscall::map_lookup_elem(m, &key(1), &mut v),
        Err(Errno::ENOENT)
    );
    for i in 1..=3u64 {
        syscall::map_update_elem(m, &key(i), &(i as u32 * 10).to_ne_bytes(), 1).unwrap();
    }
    assert_eq!(
        syscall::map_update_elem(m, &key(4), &v, 0),
        Err(Errno::E2BIG),
        "full"
    );
    assert_eq!(
        syscall::map_update_elem(m, &key(1), &v, 1),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        syscall::map_update_elem(m, &key(9), &v, 2),
        Err(Errno::ENOENT),
        "BPF_EXIST"
    );
    syscall::map_update_elem(m, &key(2), &99u32.to_ne_bytes(), 2).unwrap();
    syscall::map_lookup_elem(m, &key(2), &mut v).unwrap();
    assert_eq!(u32::from_ne_bytes(v), 99, "replace works when full");
    // Walk all keys.
    let mut seen = Vec::new();
    let mut cur: Option<[u8; 8]> = None;
    let mut next = [0u8; 8];
    while syscall::map_get_next_key(m, cur.as_ref().map(|c| &c[..]), &mut next).is_ok() {
        seen.push(u64::from_ne_bytes(next));
        cur = Some(next);
        assert!(seen.len() <= 3);
    }
    seen.sort();
    assert_eq!(seen, [1, 2, 3]);
    syscall::map_delete_elem(m, &key(1)).unwrap();
    assert_eq!(syscall::map_delete_elem(m, &key(1)), Err(Errno::ENOENT));
    syscall::map_update_elem(m, &key(4), &v, 0).unwrap();
}

#[test]
fn programs_use_maps() {
    setup();
    let h = syscall::map_create(&MapAttr::new(MapType::Hash, 4, 8, 16)).unwrap();
    let pc = syscall::map_create(&MapAttr::new(MapType::PercpuArray, 4, 8, 1)).unwrap();
    // h[7] = 5 (insert), then *lookup(h, 7) += 1, then pc[0] += 1; returns h[7].
    let src = format!(
        "stw [%r10-4], 7\nstdw [%r10-16], 5\nlddw %r1, map_fd {h}\nmov %r2, %r10\nadd %r2, -4\nmov %r3, %r10\nadd %r3, -16\nmov %r4, 0\ncall 2\n\
         lddw %r1, map_fd {h}\nmov %r2, %r10\nadd %r2, -4\ncall 1\njeq %r0, 0, out\nmov %r1, 1\nlock add [%r0+0], %r1\nldxdw %r6, [%r0+0]\n\
         stw [%r10-4], 0\nlddw %r1, map_fd {pc}\nmov %r2, %r10\nadd %r2, -4\ncall 1\njeq %r0, 0, out\nmov %r1, 1\nlock add [%r0+0], %r1\nmov %r0, %r6\nexit\nout:\nmov %r0, 0\nexit\n"
    );
    let p = syscall::prog_load(&ProgLoadAttr::new(
        ProgType::RawBuffer,
        &assemble(&src).unwrap(),
    ))
    .unwrap();
    let r = syscall::prog_test_run(
        p,
        &mut TestRun {
            data: &mut [],
            repeat: 3,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.retval, 6);
    let mut v = [0u8; 8];
    syscall::map_lookup_elem(h, &k(7), &mut v).unwrap();
    assert_eq!(u64::from_ne_bytes(v), 6);
    let mut all = vec![0u8; 8 * kbpf::host::get().nr_cpus()];
    syscall::map_lookup_elem(pc, &k(0), &mut all).unwrap();
    let total: u64 = all
        .chunks(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .sum();
    assert_eq!(total, 3, "three runs, summed over CPUs");
    assert_eq!(
        syscall::map_lookup_elem(pc, &k(0), &mut v),
        Err(Errno::EINVAL),
        "per-CPU value size"
    );
}

/// Threads insert, replace and delete in one hash map at once (each on its CPU's free list and
/// spare, stealing from the other's when its own list runs dry); then every element must still
/// be there exactly once: the map takes `max_entries` keys again and refuses one more.
#[test]
fn hash_map_churn_loses_and_duplicates_no_element() {
    setup();
    const MAX: u32 = 64;
    let m = syscall::map_create(&MapAttr::new(MapType::Hash, 4, 8, MAX)).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u32 {
            s.spawn(move || {
                let mut x = 0x9e37_79b9u32 ^ t;
                for _ in 0..20_000 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    // Keys overlap between threads, so replacements and deletes race.
                    let key = (x % (2 * MAX)).to_ne_bytes();
                    let v = u64::from(x).to_ne_bytes();
                    let r = match x % 3 {
                        0 => syscall::map_delete_elem(m, &key),
                        _ => syscall::map_update_elem(m, &key, &v, 0),
                    };
                    assert!(
                        matches!(r, Ok(()) | Err(Errno::ENOENT) | Err(Errno::E2BIG)),
                        "{r:?}"
                    );
                }
            });
        }
    });
    let mut next = [0u8; 4];
    while syscall::map_get_next_key(m, None, &mut next).is_ok() {
        syscall::map_delete_elem(m, &next).unwrap();
    }
    for i in 0..MAX {
        syscall::map_update_elem(m, &i.to_ne_bytes(), &[0; 8], 0).unwrap();
    }
    assert_eq!(
        syscall::map_update_elem(m, &MAX.to_ne_bytes(), &[0; 8], 0),
        Err(Errno::E2BIG)
    );
    // Every CPU's spare is still there: replacing works on a full map.
    for i in 0..MAX {
        syscall::map_update_elem(m, &i.to_ne_bytes(), &[1; 8], 0).unwrap();
    }
}
